//! The reader against real sysfs snapshots (`shared/fixtures/sysfs`, next to the workspace;
//! see its README). Archives are extracted with the `tar` command into a temporary directory
//! at test time; the tests are skipped, with a message, when the folder (or `tar`) is absent.
//!
//! Only the members the reader looks at are extracted (the node directories, `cpu/online`
//! and the CPUs' `topology/`): the full trees hold tens of thousands of files and take close
//! to a minute to write out.

use nmm_core::cpuset::CpuSet;
use nmm_core::machine::Machine;
use nmm_sysfs::SysfsReader;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

const KI: u64 = 1024;
const MI: u64 = 1 << 20;
const GI: u64 = 1 << 30;

fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/fixtures/sysfs")
}

/// Extracts machine `machine` (a directory holding `sys/`) of `archive` into a fresh temporary
/// directory; `None` (after printing why) when the fixtures are not available.
fn extract(archive: &str, machine: &str) -> Option<tempfile::TempDir> {
    let src = fixtures_dir().join(archive);
    if !src.is_file() {
        eprintln!(
            "SKIP: {} not found (the shared sysfs fixtures are not next to this workspace)",
            src.display()
        );
        return None;
    }
    let dir = tempfile::tempdir().unwrap();
    let out = match Command::new("tar")
        .arg("-xf")
        .arg(&src)
        .arg("-C")
        .arg(dir.path())
        .arg("--wildcards")
        .arg(format!("{machine}/sys/devices/system/node/*"))
        .arg(format!("{machine}/sys/devices/system/cpu/online"))
        .arg(format!("{machine}/sys/devices/system/cpu/cpu*/topology/*"))
        .output()
    {
        Ok(out) => out,
        Err(e) => {
            eprintln!("SKIP: cannot run tar to extract {}: {e}", src.display());
            return None;
        }
    };
    assert!(
        out.status.success(),
        "tar -xf {} failed: {}",
        src.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    Some(dir)
}

fn read(dir: &tempfile::TempDir, machine: &str) -> Machine {
    let root = dir.path().join(machine);
    let (m, warnings) = SysfsReader::new(&root)
        .read_machine_with_warnings()
        .unwrap_or_else(|e| panic!("{machine}: {e}"));
    // The only warnings real snapshots produce are for memory-only nodes.
    for w in &warnings {
        assert!(w.contains("without any online CPU"), "{machine}: {w}");
    }
    check_invariants(machine, &m);
    // The snapshots carry no bus/pci: the PCI listing is empty, without warnings.
    let pci = SysfsReader::new(&root).read_pci_devices().unwrap();
    assert!(
        pci.devices.is_empty() && pci.warnings.is_empty(),
        "{machine}: {pci:?}"
    );
    m
}

/// What must hold for any machine read from a consistent tree.
fn check_invariants(name: &str, m: &Machine) {
    assert!(m.nodes.windows(2).all(|w| w[0].id < w[1].id), "{name}");
    assert!(m.cpus.windows(2).all(|w| w[0].id < w[1].id), "{name}");
    let union = m
        .nodes
        .iter()
        .fold(CpuSet::new(), |acc, n| acc.union(&n.cpus));
    assert_eq!(union, m.all_cpus(), "{name}");
    for c in &m.cpus {
        assert!(m.node(c.numa).unwrap().cpus.contains(c.id), "{name}: {c:?}");
    }
    for n in &m.nodes {
        assert_eq!(n.distances.len(), m.nodes.len(), "{name}: node{}", n.id);
        assert_eq!(
            n.distances[m.nodes.iter().position(|x| x.id == n.id).unwrap()],
            10
        );
    }
}

fn set(s: &str) -> CpuSet {
    CpuSet::parse(s).unwrap()
}

fn kb(k: u64) -> u64 {
    k * KI
}

/// Hugepages of every node in the snapshots: 2Mi and 1Gi sizes present, `n2m` 2Mi pages.
fn hp(n2m: u64) -> BTreeMap<u64, u64> {
    BTreeMap::from([(2 * MI, n2m * 2 * MI), (GI, 0)])
}

/// Distinct (socket, core) pairs of a node: its physical cores.
fn cores_of(m: &Machine, node: u32) -> usize {
    m.cpus
        .iter()
        .filter(|c| c.numa == node)
        .map(|c| (c.socket, c.core))
        .collect::<BTreeSet<_>>()
        .len()
}

fn sockets_of(m: &Machine, node: u32) -> Vec<u32> {
    let s: BTreeSet<u32> = m
        .cpus
        .iter()
        .filter(|c| c.numa == node)
        .map(|c| c.socket)
        .collect();
    s.into_iter().collect()
}

#[test]
fn sample1_hybrid_desktop() {
    let Some(dir) = extract("sample1.tar.xz", "sample1") else {
        return;
    };
    let m = read(&dir, "sample1");
    assert_eq!(m.node_ids(), vec![0]);
    let n = &m.nodes[0];
    assert_eq!(n.cpus, set("0-15"));
    assert_eq!(n.memory, kb(40645580));
    assert_eq!(n.hugepages, hp(0));
    assert_eq!(n.distances, vec![10]);
    // 4 SMT cores (core ids 0,4,8,12; CPUs 0-7) and 8 single-thread cores (16-23; CPUs 8-15).
    assert_eq!(cores_of(&m, 0), 12);
    assert_eq!((m.cpus[0].core, m.cpus[1].core), (0, 0));
    assert_eq!((m.cpus[2].core, m.cpus[3].core), (4, 4));
    assert_eq!(m.cpus[8].core, 16);
    assert_eq!(m.cpus[15].core, 23);
    assert!(m.cpus.iter().all(|c| c.socket == 0 && c.numa == 0));
}

#[test]
fn sample2_eight_nodes_with_pmem() {
    let Some(dir) = extract("sample2-8node-pmem.tar.xz", "sample2") else {
        return;
    };
    let m = read(&dir, "sample2");
    assert_eq!(m.node_ids(), (0..8).collect::<Vec<_>>());
    assert_eq!(m.cpus.len(), 112);
    // CPU i is on node i % 4 (sub-NUMA clustering, two nodes per socket).
    for i in 0..4u32 {
        let expect: CpuSet = (0..28).map(|k| 4 * k + i).collect();
        assert_eq!(m.nodes[i as usize].cpus, expect, "node{i}");
        assert_eq!(cores_of(&m, i), 14, "node{i}");
    }
    assert_eq!(sockets_of(&m, 0), vec![0]);
    assert_eq!(sockets_of(&m, 1), vec![1]);
    assert_eq!(sockets_of(&m, 2), vec![0]);
    assert_eq!(sockets_of(&m, 3), vec![1]);
    let mems = [32404120, 33022772, 33022780, 33002800];
    for (i, k) in mems.iter().enumerate() {
        assert_eq!(m.nodes[i].memory, kb(*k), "node{i}");
    }
    // Memory-only PMEM nodes: 124 GiB each, no CPUs.
    for i in 4..8 {
        assert!(m.nodes[i].cpus.is_empty(), "node{i}");
        assert_eq!(m.nodes[i].memory, 124 * GI, "node{i}");
    }
    assert!(m.nodes.iter().all(|n| n.hugepages == hp(0)));
    let d: Vec<Vec<u64>> = m.nodes.iter().map(|n| n.distances.clone()).collect();
    assert_eq!(
        d,
        vec![
            vec![10, 21, 11, 21, 17, 28, 28, 28],
            vec![21, 10, 21, 11, 28, 28, 17, 28],
            vec![11, 21, 10, 21, 28, 17, 28, 28],
            vec![21, 11, 21, 10, 28, 28, 28, 17],
            vec![17, 28, 28, 28, 10, 28, 28, 28],
            vec![28, 28, 17, 28, 28, 10, 28, 28],
            vec![28, 17, 28, 28, 28, 28, 10, 28],
            vec![28, 28, 28, 17, 28, 28, 28, 10],
        ]
    );
    // SMT siblings are 56 apart: cpu0/cpu56 share core 0 of socket 0.
    assert_eq!(
        (m.cpus[0].core, m.cpus[0].socket),
        (m.cpus[56].core, m.cpus[56].socket)
    );
}

#[test]
fn desktop() {
    let Some(dir) = extract("desktop-server-4socket.tar.bz2", "sysfs/desktop") else {
        return;
    };
    let m = read(&dir, "sysfs/desktop");
    assert_eq!(m.node_ids(), vec![0]);
    assert_eq!(m.nodes[0].cpus, set("0-19"));
    assert_eq!(m.nodes[0].memory, kb(65621548));
    assert_eq!(m.nodes[0].hugepages, hp(0));
    assert_eq!(m.nodes[0].distances, vec![10]);
    // 10 cores x 2 threads; siblings 10 apart; core ids 0-4 and 8-12.
    assert_eq!(cores_of(&m, 0), 10);
    assert_eq!(m.cpus[3].core, m.cpus[13].core);
    let ids: BTreeSet<u32> = m.cpus.iter().map(|c| c.core).collect();
    assert_eq!(
        ids.into_iter().collect::<Vec<_>>(),
        vec![0, 1, 2, 3, 4, 8, 9, 10, 11, 12]
    );
}

#[test]
fn server_six_nodes_two_pmem() {
    let Some(dir) = extract("desktop-server-4socket.tar.bz2", "sysfs/server") else {
        return;
    };
    let m = read(&dir, "sysfs/server");
    assert_eq!(m.node_ids(), (0..6).collect::<Vec<_>>());
    assert_eq!(m.cpus.len(), 112);
    for i in 0..4u32 {
        let expect: CpuSet = (0..28).map(|k| 4 * k + i).collect();
        assert_eq!(m.nodes[i as usize].cpus, expect, "node{i}");
        assert_eq!(sockets_of(&m, i), vec![i % 2]);
    }
    let mems = [32372996, 33023416, 33023424, 33018848, 130023424, 130023424];
    for (i, k) in mems.iter().enumerate() {
        assert_eq!(m.nodes[i].memory, kb(*k), "node{i}");
    }
    assert!(m.nodes[4].cpus.is_empty() && m.nodes[5].cpus.is_empty());
    assert_eq!(m.nodes[0].distances, vec![10, 21, 11, 21, 17, 28]);
    assert_eq!(m.nodes[5].distances, vec![28, 28, 17, 28, 28, 10]);
    assert!(m.nodes.iter().all(|n| n.hugepages == hp(0)));
}

#[test]
fn four_socket_server_without_snc() {
    let Some(dir) = extract(
        "desktop-server-4socket.tar.bz2",
        "sysfs/4-socket-server-nosnc",
    ) else {
        return;
    };
    let m = read(&dir, "sysfs/4-socket-server-nosnc");
    assert_eq!(m.node_ids(), vec![0, 1, 2, 3]);
    assert_eq!(m.cpus.len(), 144);
    let lists = [
        "0-17,72-89",
        "18-35,90-107",
        "36-53,108-125",
        "54-71,126-143",
    ];
    let mems = [196726504, 198172236, 198137748, 198170672];
    for i in 0..4 {
        let n = &m.nodes[i];
        assert_eq!(n.cpus, set(lists[i]), "node{i}");
        assert_eq!(n.memory, kb(mems[i]), "node{i}");
        assert_eq!(sockets_of(&m, i as u32), vec![i as u32]);
        assert_eq!(cores_of(&m, i as u32), 18);
        assert_eq!(n.hugepages, hp(0));
        let row: Vec<u64> = (0..4).map(|j| if j == i { 10 } else { 21 }).collect();
        assert_eq!(n.distances, row, "node{i}");
    }
}

#[test]
fn two_sockets_four_nodes_with_hugepages() {
    let Some(dir) = extract(
        "2socket-4node-40core.tar.bz2",
        "sysfs/2-socket-4-node-40-core",
    ) else {
        return;
    };
    let m = read(&dir, "sysfs/2-socket-4-node-40-core");
    assert_eq!(m.node_ids(), vec![0, 1, 2, 3]);
    assert_eq!(m.cpus.len(), 80);
    let lists = [
        "0-2,5-6,10-12,15-16,40-42,45-46,50-52,55-56",
        "3-4,7-9,13-14,17-19,43-44,47-49,53-54,57-59",
        "20-22,25-26,30-32,35-36,60-62,65-66,70-72,75-76",
        "23-24,27-29,33-34,37-39,63-64,67-69,73-74,77-79",
    ];
    let mems = [48005604, 49507804, 49540688, 49539172];
    let dist = [
        [10, 11, 21, 21],
        [11, 10, 21, 21],
        [21, 21, 10, 11],
        [21, 21, 11, 10],
    ];
    for i in 0..4 {
        let n = &m.nodes[i];
        assert_eq!(n.cpus, set(lists[i]), "node{i}");
        assert_eq!(n.cpus.len(), 20);
        assert_eq!(cores_of(&m, i as u32), 10);
        assert_eq!(n.memory, kb(mems[i]), "node{i}");
        // 2560 x 2Mi = 5Gi per node.
        assert_eq!(n.hugepages, hp(2560), "node{i}");
        assert_eq!(n.hugepages[&(2 * MI)], 5 * GI);
        assert_eq!(n.distances, dist[i].to_vec(), "node{i}");
        assert_eq!(sockets_of(&m, i as u32), vec![i as u32 / 2]);
    }
}

/// The machine running the tests, when it has a sysfs.
#[test]
fn real_machine_when_present() {
    if !Path::new("/sys/devices/system/cpu").is_dir() {
        eprintln!("SKIP: no /sys/devices/system/cpu on this machine");
        return;
    }
    let m = SysfsReader::new("/")
        .read_machine()
        .unwrap_or_else(|e| panic!("reading this machine's /sys: {e}"));
    assert!(!m.nodes.is_empty());
    assert!(!m.cpus.is_empty());
}
