//! `nmm node`'s PCI listing: GPUs, NICs, NVMe and accelerators with their NUMA nodes, read
//! from `bus/pci/devices` by `nmm_sysfs::pci`, as a hint for writing `machine.devices` (the
//! device ids a device plugin reports are its own, not PCI addresses).

use comfy_table::{presets, ContentArrangement, Table};
use nmm_sysfs::pci::{PciDevice, PciListing};
use serde_json::{json, Value};
use std::fmt::Write as _;

fn numa_text(d: &PciDevice) -> String {
    d.numa_node.map_or("-".to_string(), |n| n.to_string())
}

fn others_line(l: &PciListing) -> String {
    if l.others == 0 {
        String::new()
    } else {
        format!(
            "{} other PCI functions (bridges, USB, system peripherals, ...) not listed.\n",
            l.others
        )
    }
}

/// The table after the machine's: nothing when there are no PCI devices worth listing.
pub fn render_pci_table(l: &PciListing) -> String {
    if l.devices.is_empty() {
        return String::new();
    }
    let mut t = Table::new();
    t.load_preset(presets::UTF8_FULL_CONDENSED)
        .set_content_arrangement(ContentArrangement::Disabled)
        .force_no_tty()
        .set_header(vec![
            "PCI ADDRESS",
            "KIND",
            "CLASS",
            "VENDOR:DEVICE",
            "NUMA NODE",
        ]);
    for d in &l.devices {
        t.add_row(vec![
            d.address.clone(),
            d.kind().to_string(),
            format!("0x{:06x}", d.class),
            format!("{}:{}", d.vendor, d.device),
            numa_text(d),
        ]);
    }
    format!(
        "\nPCI devices (a hint for machine.devices; \"-\": the kernel reports no NUMA node):\n{t}\n{}",
        others_line(l)
    )
}

/// Comment lines to append to the `machine:` YAML block: a `machine.devices` sketch, all
/// commented out, so the block stays exactly what the scenario parser accepts.
pub fn render_pci_yaml_hint(l: &PciListing) -> String {
    if l.devices.is_empty() {
        return String::new();
    }
    let mut out = String::from(
        "# PCI devices and their NUMA nodes, a hint for machine.devices (use the resource\n\
         # names and device ids your device plugins report, not these PCI addresses):\n\
         #  devices:\n",
    );
    for d in &l.devices {
        let numa = d
            .numa_node
            .map_or(String::new(), |n| format!(", numa: [{n}]"));
        let _ = writeln!(
            out,
            "#    - {{resource: example.com/{}, id: \"{}\"{numa}}}   # {}:{} class 0x{:06x}",
            d.kind(),
            d.address,
            d.vendor,
            d.device,
            d.class
        );
    }
    for line in others_line(l).lines() {
        let _ = writeln!(out, "# {line}");
    }
    out
}

/// `pciDevices` for `-o json`: one object per listed device.
pub fn pci_json(l: &PciListing) -> Value {
    Value::Array(
        l.devices
            .iter()
            .map(|d| {
                json!({
                    "address": d.address,
                    "kind": d.kind(),
                    "class": format!("0x{:06x}", d.class),
                    "vendor": d.vendor,
                    "device": d.device,
                    "numaNode": d.numa_node,
                })
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listing() -> PciListing {
        PciListing {
            devices: vec![
                PciDevice {
                    address: "0000:17:00.0".into(),
                    numa_node: Some(1),
                    class: 0x020000,
                    vendor: "0x15b3".into(),
                    device: "0x101d".into(),
                },
                PciDevice {
                    address: "0000:01:00.0".into(),
                    numa_node: None,
                    class: 0x030200,
                    vendor: "0x10de".into(),
                    device: "0x2330".into(),
                },
            ],
            others: 3,
            warnings: vec![],
        }
    }

    #[test]
    fn yaml_hint_is_all_comments_and_keeps_the_machine_block_valid() {
        let machine = "machine:\n  numaNodes:\n    - {id: 0, cpus: \"0-1\", memory: 1Gi}\n    - {id: 1, cpus: \"2-3\", memory: 1Gi}\n";
        let hint = render_pci_yaml_hint(&listing());
        assert!(hint.lines().all(|l| l.starts_with('#')), "{hint}");
        assert!(hint.contains("{resource: example.com/network, id: \"0000:17:00.0\", numa: [1]}"));
        assert!(hint.contains("{resource: example.com/gpu, id: \"0000:01:00.0\"}"));
        let v = crate::scenario::parse_yaml(
            &format!("{machine}{hint}"),
            std::path::Path::new("m.yaml"),
        )
        .unwrap();
        assert_eq!(v.as_object().unwrap().len(), 1);
        assert!(v["machine"].get("devices").is_none());
        // Uncommenting the sketch gives a machine.devices list the scenario parser accepts.
        let uncommented: String = hint
            .lines()
            .filter(|l| l.starts_with("#  devices:") || l.starts_with("#    - "))
            .map(|l| format!("{}\n", l[1..].split("   #").next().unwrap()))
            .collect();
        let v = crate::scenario::parse_yaml(
            &format!("{machine}{uncommented}"),
            std::path::Path::new("m.yaml"),
        )
        .unwrap();
        let m =
            crate::scenario::parse_machine(&v["machine"], std::path::Path::new("m.yaml")).unwrap();
        let d = nmm_scenario::scenario_devices::parse_devices(
            &v["machine"],
            &m,
            std::path::Path::new("m.yaml"),
        )
        .unwrap();
        assert_eq!(d.len(), 2);
        assert_eq!(d[0].numa, Some(vec![1]));
    }

    #[test]
    fn table_and_json_name_the_numa_node() {
        let t = render_pci_table(&listing());
        assert!(
            t.contains("0000:17:00.0") && t.contains("network") && t.contains("0x15b3:0x101d"),
            "{t}"
        );
        assert!(t.contains("3 other PCI functions"), "{t}");
        assert!(render_pci_table(&PciListing::default()).is_empty());
        let j = pci_json(&listing());
        assert_eq!(j[0]["numaNode"], 1);
        assert_eq!(j[1]["numaNode"], Value::Null);
        assert_eq!(j[1]["class"], "0x030200");
    }
}
