//! PCI devices and their NUMA nodes (`bus/pci/devices/*/{numa_node,class,vendor,device}`),
//! as a hint for writing `machine.devices` (`nmm node`). The kubelet does not read these
//! files (device plugins report topology); nmm only lists them.
//!
//! * Listed: functions whose class is storage (`0x01`), network (`0x02`), display (`0x03`,
//!   GPUs; `0x0302` is a 3D controller), processor (`0x0b`) or processing accelerator
//!   (`0x12`), sorted by PCI address. Bridges, USB, system peripherals and the rest are only
//!   counted.
//! * `numa_node`: `-1` (the kernel's "no NUMA node", single-node machines and devices
//!   behind no NUMA-local root port) is reported as no node. No `bus/pci/devices` directory
//!   (a captured topology without it): no devices, no warning.
//! * A bad file of one device (a `numa_node` that is not a number or is above 63, an
//!   unreadable `class`) skips that device with a warning naming the file: the listing is a
//!   hint, and one odd function should not hide the others or stop `nmm node`. An unreadable
//!   `bus/pci/devices` directory is an error.

use crate::SysfsError;
use nmm_core::machine::MAX_NUMA_NODE_ID;
use std::fs;
use std::path::Path;

/// One PCI function worth listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PciDevice {
    /// `0000:17:00.0`.
    pub address: String,
    /// `None`: the kernel reports `-1` (no NUMA node) or no `numa_node` file.
    pub numa_node: Option<u32>,
    /// The 24-bit class code, e.g. `0x030200`.
    pub class: u32,
    /// `0x10de`.
    pub vendor: String,
    /// `0x2330`.
    pub device: String,
}

impl PciDevice {
    /// A short name of the class (`network`, `gpu`, `nvme`, ...).
    pub fn kind(&self) -> &'static str {
        kind_of(self.class).unwrap_or("other")
    }
}

/// What was read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PciListing {
    pub devices: Vec<PciDevice>,
    /// Functions of other classes (bridges, USB, ...), not listed.
    pub others: usize,
    pub warnings: Vec<String>,
}

fn kind_of(class: u32) -> Option<&'static str> {
    match (class >> 16, (class >> 8) & 0xff) {
        (0x01, 0x08) => Some("nvme"),
        (0x01, _) => Some("storage"),
        (0x02, _) => Some("network"),
        (0x03, _) => Some("gpu"),
        (0x0b, _) => Some("processor"),
        (0x12, _) => Some("accelerator"),
        _ => None,
    }
}

fn read_trim(p: &Path) -> Option<String> {
    fs::read_to_string(p).ok().map(|s| s.trim().to_string())
}

/// Reads `<sys>/bus/pci/devices`.
pub fn read_pci(sys: &Path) -> Result<PciListing, SysfsError> {
    let dir = sys.join("bus/pci/devices");
    let mut out = PciListing::default();
    let rd = match fs::read_dir(&dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(error) => {
            return Err(SysfsError::Io {
                path: dir,
                action: "list the PCI devices",
                error,
            })
        }
    };
    let mut names: Vec<String> = rd
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    for address in names {
        let d = dir.join(&address);
        let class_file = d.join("class");
        let Some(class) = read_trim(&class_file)
            .and_then(|c| u32::from_str_radix(c.trim_start_matches("0x"), 16).ok())
        else {
            out.warnings.push(format!(
                "{}: not a PCI class code (like 0x020000); device {address} skipped",
                class_file.display()
            ));
            continue;
        };
        if kind_of(class).is_none() {
            out.others += 1;
            continue;
        }
        let numa_file = d.join("numa_node");
        let numa_node = match read_trim(&numa_file) {
            None => None,
            Some(t) => match t.parse::<i64>() {
                Ok(-1) => None,
                Ok(n) if (0..=i64::from(MAX_NUMA_NODE_ID)).contains(&n) => Some(n as u32),
                _ => {
                    out.warnings.push(format!(
                        "{}: {t:?} is not a NUMA node id (0-{MAX_NUMA_NODE_ID}, or -1 for none); device {address} skipped",
                        numa_file.display()
                    ));
                    continue;
                }
            },
        };
        out.devices.push(PciDevice {
            address,
            numa_node,
            class,
            vendor: read_trim(&d.join("vendor")).unwrap_or_else(|| "?".into()),
            device: read_trim(&d.join("device")).unwrap_or_else(|| "?".into()),
        });
    }
    Ok(out)
}
