//! The reader against synthetic trees written by `nmm_sysfs::fake`.

use nmm_core::cpuset::CpuSet;
use nmm_core::machine::{Cpu, Machine, NumaNode};
use nmm_sysfs::fake::{FakeNode, FakeSysfs};
use nmm_sysfs::{SysfsError, SysfsReader};
use std::collections::BTreeMap;
use std::path::Path;

const GI: u64 = 1 << 30;
const MI: u64 = 1 << 20;

fn write(f: &FakeSysfs) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    f.write_to(dir.path()).unwrap();
    dir
}

fn read(f: &FakeSysfs) -> Machine {
    let dir = write(f);
    SysfsReader::new(dir.path()).read_machine().unwrap()
}

fn read_err(f: &FakeSysfs) -> (SysfsError, String) {
    let dir = write(f);
    let e = SysfsReader::new(dir.path()).read_machine().unwrap_err();
    let msg = e.to_string();
    (e, msg)
}

fn set(s: &str) -> CpuSet {
    CpuSet::parse(s).unwrap()
}

#[test]
fn uniform_two_nodes_with_smt() {
    let m = read(&FakeSysfs::uniform(2, 4, 2, 16 * GI));
    assert_eq!(m.node_ids(), vec![0, 1]);
    assert_eq!(m.nodes[0].cpus, set("0-3,8-11"));
    assert_eq!(m.nodes[1].cpus, set("4-7,12-15"));
    assert_eq!(m.nodes[0].memory, 16 * GI);
    assert!(m.nodes[0].hugepages.is_empty());
    assert_eq!(m.nodes[0].distances, vec![10, 20]);
    assert_eq!(m.nodes[1].distances, vec![20, 10]);
    assert_eq!(m.cpus.len(), 16);
    assert_eq!(
        m.cpus[9],
        Cpu {
            id: 9,
            core: 1,
            socket: 0,
            numa: 0
        }
    );
    assert_eq!(
        m.cpus[13],
        Cpu {
            id: 13,
            core: 1,
            socket: 1,
            numa: 1
        }
    );
    assert!(m.cpus.windows(2).all(|w| w[0].id < w[1].id));
}

#[test]
fn round_trip_through_fake() {
    let m = Machine {
        nodes: vec![
            NumaNode {
                id: 0,
                cpus: set("0-1"),
                memory: 8 * GI,
                hugepages: BTreeMap::from([(2 * MI, 512 * MI), (GI, 2 * GI)]),
                distances: vec![10, 21, 31],
            },
            NumaNode {
                id: 3,
                cpus: set("2-3"),
                memory: 8 * GI + 4096,
                hugepages: BTreeMap::from([(2 * MI, 0)]),
                distances: vec![21, 10, 31],
            },
            NumaNode {
                id: 7,
                cpus: CpuSet::new(),
                memory: 64 * GI,
                hugepages: BTreeMap::new(),
                distances: vec![31, 31, 10],
            },
        ],
        cpus: vec![
            Cpu {
                id: 0,
                core: 0,
                socket: 0,
                numa: 0,
            },
            Cpu {
                id: 1,
                core: 0,
                socket: 0,
                numa: 0,
            },
            Cpu {
                id: 2,
                core: 5,
                socket: 1,
                numa: 3,
            },
            Cpu {
                id: 3,
                core: 5,
                socket: 1,
                numa: 3,
            },
        ],
    };
    assert_eq!(read(&FakeSysfs::from_machine(&m)), m);
}

#[test]
fn cpu_less_and_memory_less_nodes_are_kept() {
    let f = FakeSysfs::new()
        .node(FakeNode::new(0).cpus([(0, 0, 0), (1, 1, 0)]).no_meminfo())
        .node(FakeNode::new(1).memory(128 * GI));
    let dir = write(&f);
    let (m, warnings) = SysfsReader::new(dir.path())
        .read_machine_with_warnings()
        .unwrap();
    assert_eq!(m.node_ids(), vec![0, 1]);
    assert_eq!(m.nodes[0].memory, 0);
    assert_eq!(m.nodes[1].memory, 128 * GI);
    assert!(m.nodes[1].cpus.is_empty());
    assert_eq!(m.cpus.len(), 2);
    assert!(
        warnings
            .iter()
            .any(|w| w.contains("node0/meminfo") && w.contains("missing")),
        "{warnings:?}"
    );
    assert!(
        warnings
            .iter()
            .any(|w| w.contains("node1") && w.contains("without any online CPU")),
        "{warnings:?}"
    );
}

#[test]
fn non_contiguous_ids_sorted_numerically() {
    // node10 sorts before node2 lexicographically, as cAdvisor globs them.
    let mut f = FakeSysfs::new();
    for id in [10, 2, 0, 11, 1] {
        f = f.node(FakeNode::new(id).cpu(id, 0, id).memory(GI));
    }
    let m = read(&f);
    assert_eq!(m.node_ids(), vec![0, 1, 2, 10, 11]);
    // Default distance rows are indexed by online-node order, not by node id.
    assert_eq!(m.node(10).unwrap().distances, vec![20, 20, 20, 10, 20]);
    assert_eq!(
        m.cpus.iter().map(|c| c.numa).collect::<Vec<_>>(),
        vec![0, 1, 2, 10, 11]
    );
}

#[test]
fn hugepages_sizes_and_totals() {
    let f = FakeSysfs::new().node(
        FakeNode::new(0)
            .cpu(0, 0, 0)
            .memory(32 * GI)
            .hugepages(2 * MI, 2560)
            .hugepages(GI, 0),
    );
    let m = read(&f);
    assert_eq!(
        m.nodes[0].hugepages,
        BTreeMap::from([(2 * MI, 5 * GI), (GI, 0)])
    );
    assert_eq!(m.hugepage_sizes(), vec![2 * MI, GI]);
}

#[test]
fn offline_cpus_are_skipped() {
    let f = FakeSysfs::uniform(1, 4, 2, GI).offline([2, 6]);
    let dir = write(&f);
    let online = std::fs::read_to_string(dir.path().join("sys/devices/system/cpu/online")).unwrap();
    assert_eq!(online.trim(), "0-1,3-5,7");
    let (m, warnings) = SysfsReader::new(dir.path())
        .read_machine_with_warnings()
        .unwrap();
    assert_eq!(m.nodes[0].cpus, set("0-1,3-5,7"));
    assert_eq!(m.all_cpus(), set("0-1,3-5,7"));
    // Skipped because offline, before their (absent) topology is looked at.
    assert!(warnings.is_empty(), "{warnings:?}");
}

#[test]
fn no_online_file_means_all_online() {
    let m = read(&FakeSysfs::uniform(2, 2, 1, GI).no_online_file());
    assert_eq!(m.all_cpus(), set("0-3"));
}

#[test]
fn cpu_without_topology_is_skipped_with_warning() {
    let f = FakeSysfs::uniform(1, 2, 1, GI).remove("devices/system/cpu/cpu1/topology/core_id");
    let dir = write(&f);
    let (m, warnings) = SysfsReader::new(dir.path())
        .read_machine_with_warnings()
        .unwrap();
    assert_eq!(m.all_cpus(), set("0"));
    assert!(
        warnings.iter().any(|w| w.contains("cpu1/topology/core_id")),
        "{warnings:?}"
    );
}

#[test]
fn package_id_minus_one_is_socket_zero() {
    let f = FakeSysfs::uniform(1, 2, 1, GI)
        .file(
            "devices/system/cpu/cpu0/topology/physical_package_id",
            "-1\n",
        )
        .file(
            "devices/system/cpu/cpu1/topology/physical_package_id",
            "-1\n",
        );
    let m = read(&f);
    assert!(m.cpus.iter().all(|c| c.socket == 0));
}

#[test]
fn fallback_one_pseudo_node_per_socket() {
    for f in [
        FakeSysfs::new().no_node_dir(),
        // A node directory with no node<N> entries behaves the same.
        FakeSysfs::new(),
    ] {
        let f = f
            .cpu(0, 0, 0)
            .cpu(1, 1, 0)
            .cpu(2, 0, 1)
            .cpu(3, 1, 1)
            .cpu(4, 0, 0)
            .offline([4]);
        let dir = write(&f);
        let (m, warnings) = SysfsReader::new(dir.path())
            .read_machine_with_warnings()
            .unwrap();
        assert_eq!(m.node_ids(), vec![0, 1]);
        assert_eq!(m.nodes[0].cpus, set("0-1"));
        assert_eq!(m.nodes[1].cpus, set("2-3"));
        assert!(m
            .nodes
            .iter()
            .all(|n| n.memory == 0 && n.hugepages.is_empty() && n.distances.is_empty()));
        assert_eq!(m.cpus[2].numa, 1);
        assert!(
            warnings.iter().any(|w| w.contains("pseudo-node")),
            "{warnings:?}"
        );
    }
}

#[test]
fn sys_dir_itself_is_accepted_as_root() {
    let dir = write(&FakeSysfs::uniform(2, 1, 1, GI));
    let a = SysfsReader::new(dir.path()).read_machine().unwrap();
    let b = SysfsReader::new(dir.path().join("sys"))
        .read_machine()
        .unwrap();
    assert_eq!(a, b);
    assert_eq!(
        SysfsReader::new(dir.path().join("sys")).sys_dir().unwrap(),
        dir.path().join("sys")
    );
}

#[test]
fn not_a_sysfs_root_suggests_candidates() {
    let outer = tempfile::tempdir().unwrap();
    FakeSysfs::uniform(1, 1, 1, GI)
        .write_to(&outer.path().join("machine-a"))
        .unwrap();
    let e = SysfsReader::new(outer.path()).read_machine().unwrap_err();
    let msg = e.to_string();
    assert!(matches!(e, SysfsError::NotSysfs { .. }), "{e:?}");
    assert!(
        msg.starts_with(&outer.path().display().to_string()),
        "{msg}"
    );
    assert!(msg.contains("--sysfs-root"), "{msg}");
    assert!(msg.contains("machine-a"), "{msg}");

    let e = SysfsReader::new("/nonexistent/nmm-sysfs-test")
        .read_machine()
        .unwrap_err();
    assert!(e.to_string().contains("/nonexistent/nmm-sysfs-test"));
}

#[test]
fn meminfo_without_mem_total() {
    let (e, msg) = read_err(&FakeSysfs::uniform(1, 1, 1, GI).file(
        "devices/system/node/node0/meminfo",
        "Node 0 MemFree: 5 kB\n",
    ));
    assert!(matches!(e, SysfsError::NoMemTotal { .. }));
    assert!(
        msg.ends_with(
            "sys/devices/system/node/node0/meminfo: no MemTotal line; is --sysfs-root \
             pointing at a sysfs tree?"
        ),
        "{msg}"
    );
}

#[test]
fn malformed_files_are_errors_naming_the_file() {
    let cases: [(&str, &str, &str); 7] = [
        (
            "devices/system/cpu/cpu0/topology/core_id",
            "zero\n",
            "cpu0/topology/core_id",
        ),
        (
            "devices/system/cpu/cpu0/topology/physical_package_id",
            "-7\n",
            "physical_package_id",
        ),
        (
            "devices/system/node/node0/distance",
            "10 x\n",
            "node0/distance",
        ),
        (
            "devices/system/node/node0/hugepages/hugepages-2048kB/nr_hugepages",
            "lots\n",
            "nr_hugepages",
        ),
        (
            "devices/system/node/node0/hugepages/hugepagesXL/nr_hugepages",
            "1\n",
            "hugepagesXL",
        ),
        ("devices/system/cpu/online", "0-a\n", "cpu/online"),
        ("devices/system/cpu/online", "\n", "cpu/online"),
    ];
    for (path, contents, named) in cases {
        let (e, msg) = read_err(&FakeSysfs::uniform(1, 2, 1, GI).file(path, contents));
        assert!(matches!(e, SysfsError::Malformed { .. }), "{path}: {e:?}");
        assert!(msg.contains(named), "{path}: {msg}");
        assert!(msg.contains("--sysfs-root"), "{path}: {msg}");
    }
}

#[test]
fn garbage_never_panics() {
    let garbage = [
        "",
        "\n",
        "\u{0}\u{1}\u{2}",
        "-",
        "18446744073709551616",
        "MemTotal: 99999999999999999999 kB",
        "MemTotal: 18014398509481984 kB",
        "1-0",
        "  \t ",
    ];
    let files = [
        "devices/system/cpu/online",
        "devices/system/cpu/cpu0/topology/core_id",
        "devices/system/cpu/cpu0/topology/physical_package_id",
        "devices/system/node/node0/meminfo",
        "devices/system/node/node0/distance",
        "devices/system/node/node0/hugepages/hugepages-2048kB/nr_hugepages",
        "devices/system/node/node0/hugepages/hugepages-99999999999999999999kB/nr_hugepages",
    ];
    for file in files {
        for g in garbage {
            let dir = write(&FakeSysfs::uniform(1, 2, 1, GI).file(file, g));
            // Either outcome is fine; an error must name a file under the tree.
            if let Err(e) = SysfsReader::new(dir.path()).read_machine() {
                assert!(
                    e.to_string().contains(&*dir.path().to_string_lossy()),
                    "{file} {g:?}: {e}"
                );
            }
        }
    }
}

#[test]
fn cpu_in_two_nodes_is_an_error() {
    let f = FakeSysfs::new()
        .node(FakeNode::new(0).cpu(0, 0, 0).memory(GI))
        .node(FakeNode::new(1).cpu(1, 1, 0).memory(GI));
    let dir = write(&f);
    std::os::unix::fs::symlink(
        "../../cpu/cpu0",
        dir.path().join("sys/devices/system/node/node1/cpu0"),
    )
    .unwrap();
    let e = SysfsReader::new(dir.path()).read_machine().unwrap_err();
    assert!(
        matches!(
            e,
            SysfsError::DuplicateCpu {
                cpu: 0,
                first: 0,
                second: 1,
                ..
            }
        ),
        "{e:?}"
    );
    assert!(e.to_string().contains("node1/cpu0"), "{e}");
}

#[test]
fn empty_tree_has_no_topology() {
    let (e, msg) = read_err(&FakeSysfs::new().no_online_file());
    assert!(matches!(e, SysfsError::NoTopology { .. }), "{e:?}");
    assert!(msg.contains("sys/devices/system/cpu"), "{msg}");
}

#[test]
fn missing_distance_file_is_empty_row() {
    let f = FakeSysfs::new()
        .no_default_distances()
        .node(FakeNode::new(0).cpu(0, 0, 0).memory(GI));
    let m = read(&f);
    assert!(m.nodes[0].distances.is_empty());
    assert_eq!(m.distance(0, 0), 0);
}

#[test]
fn reads_through_symlinked_cpu_dirs() {
    let dir = write(&FakeSysfs::uniform(1, 1, 1, GI));
    let link = dir.path().join("sys/devices/system/node/node0/cpu0");
    assert!(std::fs::symlink_metadata(&link)
        .unwrap()
        .file_type()
        .is_symlink());
    assert!(Path::new(&link).join("topology/core_id").is_file());
}

#[test]
fn numa_ids_the_engine_cannot_represent_are_refused_naming_the_directory() {
    for id in [64u64, 4_000_000_000] {
        let f = FakeSysfs::uniform(1, 1, 1, GI).file(
            format!("devices/system/node/node{id}/meminfo"),
            format!("Node {id} MemTotal:       1024 kB\n"),
        );
        let (e, msg) = read_err(&f);
        assert!(matches!(e, SysfsError::Malformed { .. }), "{e:?}");
        assert!(
            msg.contains(&format!("node{id}: NUMA node id {id} is above 63")),
            "{msg}"
        );
    }
    // 63 is the largest that works.
    let f = FakeSysfs::new().node(FakeNode::new(63).cpu(0, 0, 0).memory(GI));
    assert_eq!(read(&f).node_ids(), vec![63]);
}

#[test]
fn cpu_ids_beyond_the_cpuset_limit_are_refused() {
    let f = FakeSysfs::uniform(1, 1, 1, GI).file(
        "devices/system/node/node0/cpu4000000000/topology/core_id",
        "0\n",
    );
    let (_, msg) = read_err(&f);
    assert!(
        msg.contains("cpu4000000000: CPU id 4000000000 is above 1048575"),
        "{msg}"
    );
}

#[test]
fn pseudo_node_from_a_huge_package_id_is_refused() {
    let f = FakeSysfs::new().no_node_dir().cpu(0, 0, 0).cpu(1, 0, 64);
    let (_, msg) = read_err(&f);
    assert!(
        msg.contains("cpu1/topology/physical_package_id: package id 64 would be NUMA node 64"),
        "{msg}"
    );
}

#[test]
fn memory_totals_that_overflow_are_refused() {
    let kb = u64::MAX / 1024 / 2 + 1;
    let f = FakeSysfs::new()
        .node(FakeNode::new(0).cpu(0, 0, 0).mem_total_kb(kb))
        .node(FakeNode::new(1).cpu(1, 0, 0).mem_total_kb(kb));
    let (_, msg) = read_err(&f);
    assert!(msg.contains("more than 2^64 bytes"), "{msg}");
}

#[test]
fn distances_beyond_the_kernels_range_are_refused_naming_the_file() {
    let f = FakeSysfs::new()
        .node(
            FakeNode::new(0)
                .cpu(0, 0, 0)
                .memory(GI)
                .distances([10, 5_000_000_000]),
        )
        .node(FakeNode::new(1).cpu(1, 1, 0).memory(GI).distances([20, 10]));
    let (e, msg) = read_err(&f);
    assert!(matches!(e, SysfsError::Malformed { .. }), "{e:?}");
    assert!(msg.contains("node0/distance"), "{msg}");
    assert!(
        msg.contains("distance 5000000000 is above 4294967295"),
        "{msg}"
    );
    // the largest accepted value reads
    let f = FakeSysfs::new()
        .node(
            FakeNode::new(0)
                .cpu(0, 0, 0)
                .memory(GI)
                .distances([10, 4_294_967_295]),
        )
        .node(FakeNode::new(1).cpu(1, 1, 0).memory(GI).distances([20, 10]));
    assert_eq!(read(&f).distance(0, 1), 4_294_967_295);
}
