//! `bus/pci/devices` listing against fake trees, and the shared fixtures (which carry no
//! `bus/pci`, so they list nothing).

use nmm_sysfs::fake::FakeSysfs;
use nmm_sysfs::SysfsReader;

const GI: u64 = 1 << 30;

#[test]
fn gpus_and_nics_are_listed_with_their_numa_nodes_and_bridges_counted() {
    let f = FakeSysfs::uniform(2, 2, 1, GI)
        .pci("0000:17:00.0", "0", "0x020000", "0x15b3", "0x101d")
        .pci("0000:ca:00.0", "1", "0x030200", "0x10de", "0x2330")
        .pci("0000:00:00.0", "-1", "0x060000", "0x8086", "0x09a2")
        .pci("0000:01:00.0", "-1", "0x010802", "0x144d", "0xa80a");
    let dir = tempfile::tempdir().unwrap();
    f.write_to(dir.path()).unwrap();
    let l = SysfsReader::new(dir.path()).read_pci_devices().unwrap();
    assert!(l.warnings.is_empty(), "{:?}", l.warnings);
    assert_eq!(l.others, 1);
    let got: Vec<(&str, Option<u32>, &str, &str)> = l
        .devices
        .iter()
        .map(|d| (d.address.as_str(), d.numa_node, d.kind(), d.vendor.as_str()))
        .collect();
    assert_eq!(
        got,
        vec![
            ("0000:01:00.0", None, "nvme", "0x144d"),
            ("0000:17:00.0", Some(0), "network", "0x15b3"),
            ("0000:ca:00.0", Some(1), "gpu", "0x10de"),
        ]
    );
    assert_eq!(l.devices[2].class, 0x030200);
    assert_eq!(l.devices[2].device, "0x2330");
}

#[test]
fn a_bad_numa_node_skips_that_device_with_a_warning_naming_the_file() {
    let f = FakeSysfs::uniform(1, 2, 1, GI)
        .pci("0000:17:00.0", "zero", "0x020000", "0x15b3", "0x101d")
        .pci("0000:18:00.0", "64", "0x020000", "0x15b3", "0x101d")
        .pci("0000:19:00.0", "0", "junk", "0x15b3", "0x101d")
        .pci("0000:1a:00.0", "0", "0x020000", "0x15b3", "0x101d");
    let dir = tempfile::tempdir().unwrap();
    f.write_to(dir.path()).unwrap();
    let l = SysfsReader::new(dir.path()).read_pci_devices().unwrap();
    assert_eq!(l.devices.len(), 1);
    assert_eq!(l.devices[0].address, "0000:1a:00.0");
    assert_eq!(l.warnings.len(), 3, "{:?}", l.warnings);
    assert!(l.warnings[0]
        .contains("bus/pci/devices/0000:17:00.0/numa_node: \"zero\" is not a NUMA node id"));
    assert!(l.warnings[1].contains("0000:18:00.0/numa_node: \"64\""));
    assert!(l.warnings[2].contains("0000:19:00.0/class: not a PCI class code"));
}

#[test]
fn no_pci_directory_lists_nothing() {
    let dir = tempfile::tempdir().unwrap();
    FakeSysfs::uniform(1, 2, 1, GI)
        .write_to(dir.path())
        .unwrap();
    let l = SysfsReader::new(dir.path()).read_pci_devices().unwrap();
    assert_eq!(l, Default::default());
}
