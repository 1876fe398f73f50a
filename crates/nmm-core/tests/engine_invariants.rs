//! Property tests of the whole engine: after any sequence of admissions and removals the
//! books balance, and removing every pod gives back the initial state exactly; every
//! checkpoint the engine writes is one a restarting kubelet accepts.

use k8s_openapi::api::core::v1::Pod;
use nmm_core::cpuset::CpuSet;
use nmm_core::kubelet_config::{KubeletConfig, MemoryReservation};
use nmm_core::machine::{Cpu, Machine, NumaNode};
use nmm_core::node::{Node, RawCheckpoint, StartOptions};
use nmm_core::pod::PodInfo;
use proptest::prelude::*;
use serde_json::json;
use std::collections::BTreeMap;

const GI: u64 = 1 << 30;

fn machine(nodes: usize, cpus_per_node: u32, hp_pages: u64) -> Machine {
    let mut m = Machine::default();
    for n in 0..nodes as u32 {
        let cpus: CpuSet = (n * cpus_per_node..(n + 1) * cpus_per_node).collect();
        for c in cpus.iter() {
            m.cpus.push(Cpu {
                id: c,
                core: c / 2,
                socket: n,
                numa: n,
            });
        }
        m.nodes.push(NumaNode {
            id: n,
            cpus,
            memory: 16 * GI,
            hugepages: [(GI, hp_pages * GI), (2 << 20, 256 << 20)].into(),
            distances: vec![],
        });
    }
    m.default_distances();
    m
}

fn config(policy: &str, scope: &str, nodes: usize) -> KubeletConfig {
    KubeletConfig {
        memory_manager_policy: Some("Static".into()),
        cpu_manager_policy: Some("static".into()),
        topology_manager_policy: Some(policy.into()),
        topology_manager_scope: Some(scope.into()),
        kube_reserved: Some(
            [
                ("cpu".to_string(), "1".to_string()),
                ("memory".to_string(), "1Gi".to_string()),
            ]
            .into(),
        ),
        eviction_hard: Some(BTreeMap::new()),
        reserved_memory: Some(
            (0..nodes as i32)
                .map(|n| MemoryReservation {
                    numa_node: n,
                    limits: vec![(
                        "memory".into(),
                        if n == 0 { "1Gi".into() } else { "0".into() },
                    )],
                })
                .filter(|r| r.numa_node == 0)
                .collect(),
        ),
        ..Default::default()
    }
}

#[derive(Debug, Clone)]
enum Op {
    Admit {
        cpu: u32,
        mem_gi: u64,
        hp_gi: u64,
        init: bool,
        sidecar: bool,
        burstable: bool,
    },
    Remove(usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0u32..6, 1u64..20, 0u64..3, any::<bool>(), any::<bool>(), prop::bool::weighted(0.15))
            .prop_map(|(cpu, mem_gi, hp_gi, init, sidecar, burstable)| Op::Admit { cpu, mem_gi, hp_gi, init, sidecar, burstable }),
        1 => (0usize..20).prop_map(Op::Remove),
    ]
}

fn container(name: &str, cpu: u32, mem_gi: u64, hp_gi: u64, burstable: bool) -> serde_json::Value {
    let mut limits = json!({"cpu": if cpu == 0 { "500m".to_string() } else { cpu.to_string() }, "memory": format!("{mem_gi}Gi")});
    if hp_gi > 0 {
        limits["hugepages-1Gi"] = json!(format!("{hp_gi}Gi"));
    }
    let mut res = json!({"limits": limits});
    if burstable {
        res["requests"] = json!({"cpu": "100m", "memory": "1Gi"});
    } else {
        res["requests"] = res["limits"].clone();
    }
    json!({"name": name, "resources": res})
}

fn pod(i: usize, op: &Op) -> PodInfo {
    let Op::Admit {
        cpu,
        mem_gi,
        hp_gi,
        init,
        sidecar,
        burstable,
    } = *op
    else {
        unreachable!()
    };
    let mut spec = json!({"containers": [container("app", cpu, mem_gi, hp_gi, burstable), container("app2", 1, 1, 0, burstable)]});
    if init {
        let mut c = container("init", cpu.max(1), mem_gi / 2 + 1, hp_gi, burstable);
        if sidecar {
            c["restartPolicy"] = json!("Always");
        }
        spec["initContainers"] = json!([c]);
    }
    let p: Pod = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": format!("p{i}"), "uid": format!("uid-{i}")},
        "spec": spec,
    }))
    .unwrap();
    PodInfo::from_pod(&p, false).unwrap()
}

fn check_books(node: &Node) -> Result<(), TestCaseError> {
    let ms = node.memory.machine_state();
    for (id, ns) in &ms {
        for (r, t) in &ns.memory_map {
            prop_assert_eq!(t.reserved + t.free, t.allocatable, "node {} {}", id, r);
        }
        prop_assert!(ns.number_of_assignments >= 0);
        prop_assert!(ns.cells.contains(id));
        // Group members usually agree on the group, but not always: like the kubelet, a
        // single-node hint may put a single-node block on a grouped node.
    }
    // Exclusive CPUs never overlap the shared pool or each other.
    let mut seen = node.cpu.default_set();
    for (_, ctrs) in node.cpu.assignments() {
        let mut pod_cpus = CpuSet::new();
        for (_, s) in ctrs {
            pod_cpus = pod_cpus.union(&s);
        }
        prop_assert!(
            seen.intersection(&pod_cpus).is_empty(),
            "cpus handed out twice"
        );
        seen = seen.union(&pod_cpus);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]
    #[test]
    fn books_balance_and_removal_restores(
        nodes in 1usize..=4,
        policy in prop::sample::select(vec!["none", "best-effort", "restricted", "single-numa-node"]),
        scope in prop::sample::select(vec!["container", "pod"]),
        ops in prop::collection::vec(op(), 1..25),
    ) {
        let m = machine(nodes, 4, 2);
        let cfg = config(policy, scope, nodes);
        let mut node = Node::start(m.clone(), cfg.clone(), StartOptions::default()).unwrap();
        let initial_mem = node.memory.machine_state();
        let initial_cpu = node.cpu.default_set();
        let mut live: Vec<String> = Vec::new();
        let mut ever_inconsistent = false;
        for (i, o) in ops.iter().enumerate() {
            match o {
                Op::Admit { .. } => {
                    let r = node.admit(&pod(i, o)).unwrap();
                    if r.admitted { live.push(r.uid); }
                }
                Op::Remove(k) => {
                    if !live.is_empty() {
                        let uid = live.remove(k % live.len());
                        prop_assert!(node.remove(&uid).removed);
                    }
                }
            }
            check_books(&node)?;
            // A kubelet restarting from these checkpoints accepts them, as long as the
            // groups are consistent: a single-node block on a grouped node (possible, as in the
            // kubelet, when the memory manager has no hint and another provider's wins) makes the kubelet refuse its own state.
            let ms = node.memory.machine_state();
            let consistent = ms.values().all(|ns| ns.cells.iter().all(|c| ms[c].cells == ns.cells));
            if !consistent || ever_inconsistent {
                // Any policy can get here: when the memory manager has no hint at all
                // ("no preference"), another provider's single-node hint may land a block
                // on a grouped node.
                ever_inconsistent = true;
                continue;
            }
            let opts = StartOptions {
                state_dir: "/x".into(),
                memory_checkpoint: Some(RawCheckpoint::Bytes(node.memory_checkpoint().into_bytes())),
                cpu_checkpoint: Some(RawCheckpoint::Bytes(node.cpu_checkpoint().into_bytes())),
                ..Default::default()
            };
            let restarted = Node::start(m.clone(), cfg.clone(), opts);
            prop_assert!(restarted.is_ok(), "restart refused: {:?}", restarted.err());
        }
        for uid in live {
            node.remove(&uid);
        }
        if ever_inconsistent {
            // The kubelet releases a block greedily from the lowest node of its mask; once a
            // single-node block sits on a grouped node, that can free another pod's bytes and
            // strand some: removal no longer restores the initial books (kubelet behaviour,
            // reproduced on purpose). Only the CPU pool must come back.
            prop_assert_eq!(node.cpu.default_set(), initial_cpu);
            return Ok(());
        }
        prop_assert_eq!(node.memory.machine_state(), initial_mem);
        prop_assert!(node.memory.assignments().is_empty());
        prop_assert_eq!(node.cpu.default_set(), initial_cpu);
        prop_assert!(node.cpu.assignments().is_empty());
    }
}
