//! KEP-6232: restart despite memory drift. The KEP's own cases, through `Node::start` with
//! the checkpoint a previous boot wrote.

use k8s_openapi::api::core::v1::Pod;
use nmm_core::cpuset::CpuSet;
use nmm_core::kubelet_config::{KubeletConfig, MemoryReservation};
use nmm_core::machine::{Cpu, Machine, NumaNode};
use nmm_core::memorymanager::drift::{
    kernel_image_span, parse_policy_options, resolve, DriftSetting, AUTO_GRACE_BYTES,
};
use nmm_core::node::{Node, RawCheckpoint, StartOptions};
use nmm_core::pod::PodInfo;
use serde_json::json;
use std::collections::BTreeMap;

const GI: u64 = 1 << 30;
const MI: u64 = 1 << 20;

fn machine(mem: [u64; 2]) -> Machine {
    let mut m = Machine::default();
    for n in 0..2u32 {
        let cpus: CpuSet = (n * 4..(n + 1) * 4).collect();
        for c in cpus.iter() {
            m.cpus.push(Cpu {
                id: c,
                core: c,
                socket: 0,
                numa: n,
            });
        }
        m.nodes.push(NumaNode {
            id: n,
            cpus,
            memory: mem[n as usize],
            hugepages: [(GI, 2 * GI)].into(),
            distances: vec![],
        });
    }
    m.default_distances();
    m
}

fn config(policy: &str, tolerance: Option<&str>, gate: bool) -> KubeletConfig {
    KubeletConfig {
        memory_manager_policy: Some("Static".into()),
        topology_manager_policy: Some(policy.into()),
        kube_reserved: Some([("memory".to_string(), "1Gi".to_string())].into()),
        eviction_hard: Some(BTreeMap::new()),
        reserved_memory: Some(vec![MemoryReservation {
            numa_node: 0,
            limits: vec![("memory".into(), "1Gi".into())],
        }]),
        memory_manager_policy_options: tolerance
            .map(|t| [("memory-drift-tolerance".to_string(), t.to_string())].into()),
        feature_gates: gate.then(|| [("MemoryManagerDriftTolerance".to_string(), true)].into()),
        ..Default::default()
    }
}

fn pod(i: usize, memory: &str) -> PodInfo {
    let res = json!({"cpu": "1", "memory": memory});
    let p: Pod = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": format!("p{i}"), "uid": format!("uid-{i}")},
        "spec": {"containers": [{"name": "app", "resources": {"limits": res, "requests": res}}]},
    }))
    .unwrap();
    PodInfo::from_pod(&p, false).unwrap()
}

/// The checkpoint a first boot on `m` writes after admitting `pods`.
fn first_boot(m: Machine, policy: &str, pods: &[&str]) -> String {
    let mut node = Node::start(m, config(policy, None, false), StartOptions::default()).unwrap();
    for (i, mem) in pods.iter().enumerate() {
        let r = node.admit(&pod(i, mem)).unwrap();
        assert!(r.admitted, "{:?}", r.message);
    }
    node.memory_checkpoint()
}

fn restart(
    m: Machine,
    cfg: KubeletConfig,
    checkpoint: &str,
    iomem: Option<&str>,
) -> Result<Node, String> {
    Node::start(
        m,
        cfg,
        StartOptions {
            memory_checkpoint: Some(RawCheckpoint::Bytes(checkpoint.as_bytes().to_vec())),
            proc_iomem: iomem.map(String::from),
            ..Default::default()
        },
    )
    .map_err(|e| e.to_string())
}

const DIFFERENT: &str = "the expected machine state is different from the real one";

fn reserved(node: &Node, id: u32) -> u64 {
    node.memory.machine_state()[&id].memory_map["memory"].reserved
}

#[test]
fn small_drift_without_assignments_is_accepted_and_rebased() {
    let ck = first_boot(machine([16 * GI, 16 * GI]), "best-effort", &[]);
    let drifted = machine([16 * GI - 20 * MI, 16 * GI + 20 * MI]);
    // v1.32 (and the option off, or the gate off) refuses it.
    for cfg in [
        config("best-effort", None, true),
        config("best-effort", Some("off"), true),
    ] {
        let e = restart(drifted.clone(), cfg, &ck, None).unwrap_err();
        assert!(e.contains(DIFFERENT), "{e}");
    }
    let node = restart(
        drifted.clone(),
        config("best-effort", Some("128Mi"), true),
        &ck,
        None,
    )
    .unwrap();
    let report = node.memory_drift.clone().unwrap();
    assert!(report.rebased);
    assert_eq!(report.tolerance.bound, 128 * MI);
    assert_eq!(
        report.drift,
        [(0, -20 * MI as i128), (1, 20 * MI as i128)].into()
    );
    // Re-based: the books are those of a fresh start on this machine, so the rewritten
    // checkpoint passes the exact comparison on the next start.
    let fresh = Node::start(
        drifted.clone(),
        config("best-effort", None, false),
        StartOptions::default(),
    )
    .unwrap();
    assert_eq!(node.memory_checkpoint(), fresh.memory_checkpoint());
    let again = restart(
        drifted,
        config("best-effort", None, false),
        &node.memory_checkpoint(),
        None,
    )
    .unwrap();
    assert!(!again.memory_drift.unwrap().rebased);
}

#[test]
fn small_drift_with_assignments_that_still_fit() {
    let ck = first_boot(
        machine([16 * GI, 16 * GI]),
        "single-numa-node",
        &["4Gi", "6Gi"],
    );
    let drifted = machine([16 * GI + 30 * MI, 16 * GI - 30 * MI]);
    let mut node = restart(
        drifted.clone(),
        config("single-numa-node", Some("64Mi"), true),
        &ck,
        None,
    )
    .unwrap();
    assert!(node.memory_drift.as_ref().unwrap().rebased);
    assert_eq!(node.memory.assignments().len(), 2);
    assert_eq!(reserved(&node, 0) + reserved(&node, 1), 10 * GI);
    let ms = node.memory.machine_state();
    for id in [0, 1] {
        let t = ms[&id].memory_map["memory"];
        assert_eq!(t.total, drifted.nodes[id as usize].memory);
        assert_eq!(t.free + t.reserved, t.allocatable);
    }
    // The books keep working and the rewritten checkpoint is exact on the next start.
    assert!(node.admit(&pod(7, "1Gi")).unwrap().admitted);
    restart(
        drifted,
        config("single-numa-node", None, false),
        &node.memory_checkpoint(),
        None,
    )
    .unwrap();
}

#[test]
fn a_reduction_that_no_longer_fits_fails_whatever_the_bound() {
    // Node 1 has 14Gi allocatable (16Gi - 2Gi hugepages); the pod takes all of it.
    let ck = first_boot(machine([16 * GI, 16 * GI]), "single-numa-node", &["14Gi"]);
    let shrunk = machine([16 * GI, 16 * GI - 50 * MI]);
    let e = restart(
        shrunk,
        config("single-numa-node", Some("1Gi"), true),
        &ck,
        None,
    )
    .unwrap_err();
    assert!(e.contains("(pod: uid-0, container: app) the memory assignment of 15032385536 bytes on NUMA nodes [1] no longer fits this machine: 52428800 bytes short"), "{e}");
}

#[test]
fn a_drift_above_the_bound_is_refused() {
    let ck = first_boot(machine([16 * GI, 16 * GI]), "best-effort", &["2Gi"]);
    let drifted = machine([16 * GI - 200 * MI, 16 * GI + 200 * MI]);
    let e = restart(
        drifted.clone(),
        config("best-effort", Some("128Mi"), true),
        &ck,
        None,
    )
    .unwrap_err();
    assert!(e.contains(DIFFERENT), "{e}");
    // The bound is inclusive.
    restart(
        drifted,
        config("best-effort", Some("200Mi"), true),
        &ck,
        None,
    )
    .unwrap();
}

#[test]
fn hugepages_and_topology_must_be_exact() {
    let ck = first_boot(machine([16 * GI, 16 * GI]), "best-effort", &[]);
    let mut m = machine([16 * GI, 16 * GI]);
    m.nodes[1].hugepages.insert(GI, 3 * GI);
    let e = restart(m, config("best-effort", Some("8Gi"), true), &ck, None).unwrap_err();
    assert!(e.contains(DIFFERENT), "{e}");
    // A node less.
    let mut m = machine([16 * GI, 16 * GI]);
    m.nodes.pop();
    m.cpus.retain(|c| c.numa == 0);
    let e = restart(m, config("best-effort", Some("8Gi"), true), &ck, None).unwrap_err();
    assert!(e.contains(DIFFERENT), "{e}");
    // SystemReserved changed: refused even within the bound.
    let mut cfg = config("best-effort", Some("8Gi"), true);
    cfg.kube_reserved = Some([("memory".to_string(), "1100Mi".to_string())].into());
    cfg.reserved_memory.as_mut().unwrap()[0].limits[0].1 = "1100Mi".into();
    let e = restart(machine([16 * GI, 16 * GI]), cfg, &ck, None).unwrap_err();
    assert!(e.contains(DIFFERENT), "{e}");
}

#[test]
fn a_cross_numa_split_moves_with_the_drift() {
    // 20Gi cannot fit one node: the group {0,1}, node 0 filled first (13Gi), node 1 7Gi.
    let ck = first_boot(machine([16 * GI, 16 * GI]), "restricted", &["20Gi"]);
    let drifted = machine([16 * GI - 40 * MI, 16 * GI + 40 * MI]);
    let node = restart(drifted, config("restricted", Some("64Mi"), true), &ck, None).unwrap();
    assert_eq!(reserved(&node, 0), 13 * GI - 40 * MI);
    assert_eq!(reserved(&node, 1), 7 * GI + 40 * MI);
    let ms = node.memory.machine_state();
    assert_eq!(ms[&0].cells, vec![0, 1]);
    assert_eq!(ms[&0].memory_map["memory"].free, 0);
}

#[test]
fn the_gate_off_is_a_configuration_error() {
    let e = Node::start(
        machine([16 * GI, 16 * GI]),
        config("best-effort", Some("128Mi"), false),
        StartOptions::default(),
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("invalid configuration: memoryManagerPolicyOptions requires feature gate MemoryManagerDriftTolerance"),
        "{e}"
    );
}

#[test]
fn option_errors() {
    let err = |policy: &str, k: &str, v: &str| {
        let mut c = config("best-effort", None, true);
        c.memory_manager_policy = Some(policy.into());
        c.memory_manager_policy_options = Some([(k.to_string(), v.to_string())].into());
        parse_policy_options(&c).unwrap_err()
    };
    assert_eq!(
        err("Static", "memory-drift", "1Mi"),
        "unknown Memory Manager Policy option: \"memory-drift\""
    );
    assert!(err("Static", "memory-drift-tolerance", "lots")
        .starts_with("bad value for option \"memory-drift-tolerance\": \"lots\" is neither"));
    assert_eq!(
        err("Static", "memory-drift-tolerance", "-1Mi"),
        "bad value for option \"memory-drift-tolerance\": \"-1Mi\" is negative; give a size such as \"128Mi\""
    );
    assert!(err("Static", "memory-drift-tolerance", "0.5").contains("not a whole number of bytes"));
    assert_eq!(
        err("None", "memory-drift-tolerance", "auto"),
        "memory manager policy options are only supported with the \"Static\" policy, not \"None\""
    );
    // Through Node::start: the Memory Manager's start-up error.
    let mut c = config("best-effort", Some("sometimes"), true);
    c.memory_manager_policy = Some("Static".into());
    let e = Node::start(machine([16 * GI, 16 * GI]), c, StartOptions::default()).unwrap_err();
    assert_eq!(e.stage, "memoryManager");
    let ok = |v: &str| parse_policy_options(&config("best-effort", Some(v), true)).unwrap();
    assert_eq!(ok("off"), DriftSetting::Off);
    assert_eq!(ok("auto"), DriftSetting::Auto);
    assert_eq!(ok("128Mi"), DriftSetting::Bytes(128 * MI));
    assert_eq!(ok("0"), DriftSetting::Bytes(0));
}

/// `/proc/iomem` of an x86 guest read as root (excerpt, 6.1 kernel).
const IOMEM_ROOT: &str = "\
00000000-00000fff : Reserved
00001000-0009fbff : System RAM
00100000-bffdffff : System RAM
  14e00000-15e01fff : Kernel code
  15e02000-1682dfff : Kernel rodata
  16a00000-16c4a27f : Kernel data
  172a8000-175fffff : Kernel bss
feb00000-febfffff : PCI Bus 0000:00
100000000-23fffffff : System RAM
";

/// The same file read by a non-root user: every address zeroed.
const IOMEM_ZEROED: &str = "\
00000000-00000000 : Reserved
00000000-00000000 : System RAM
  00000000-00000000 : Kernel code
  00000000-00000000 : Kernel rodata
  00000000-00000000 : Kernel data
  00000000-00000000 : Kernel bss
";

#[test]
fn auto_from_captured_proc_iomem() {
    let span = 0x175fffff - 0x14e00000 + 1;
    assert_eq!(kernel_image_span(IOMEM_ROOT), Some(span));
    let t = resolve(DriftSetting::Auto, Some(IOMEM_ROOT));
    assert_eq!(t.bound, span + AUTO_GRACE_BYTES);
    assert!(t.source.contains("kernel image span"), "{}", t.source);
    for text in [Some(IOMEM_ZEROED), Some(""), None] {
        let t = resolve(DriftSetting::Auto, text);
        assert_eq!(t.bound, 0);
        assert!(t.source.contains("exact comparison"), "{}", t.source);
        assert!(t.source.contains("to a quantity"), "{}", t.source);
    }
    // End to end: a 40Mi drift passes with auto on the root file (span ~40Mi + 64Mi)...
    let ck = first_boot(machine([16 * GI, 16 * GI]), "best-effort", &["2Gi"]);
    let drifted = machine([16 * GI - 40 * MI, 16 * GI + 40 * MI]);
    let node = restart(
        drifted.clone(),
        config("best-effort", Some("auto"), true),
        &ck,
        Some(IOMEM_ROOT),
    )
    .unwrap();
    assert_eq!(
        node.memory_drift.unwrap().tolerance.bound,
        span + AUTO_GRACE_BYTES
    );
    // ...and is refused when the addresses are zeroed (the exact comparison).
    let e = restart(
        drifted,
        config("best-effort", Some("auto"), true),
        &ck,
        Some(IOMEM_ZEROED),
    )
    .unwrap_err();
    assert!(e.contains(DIFFERENT), "{e}");
}
