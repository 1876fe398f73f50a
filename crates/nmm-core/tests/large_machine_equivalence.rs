//! The large-machine path (described hint lists, searched instead of enumerated) makes
//! exactly the decisions of the enumerating path — which itself equals the kubelet's
//! cross-product merge (see `topology::merge` tests and the conformance scenarios).
//! Random machines with CPU-less nodes, every policy and scope, prefer-closest on/off;
//! and heterogeneous machines of up to 12 nodes (1-4 memory types, wrapped allocatable
//! memory, multi-container pods, removals). `NMM_EQUIV_CASES` sets the number of
//! heterogeneous cases (default 300; run thousands locally).

#[path = "support/hetero.rs"]
mod hetero;

use k8s_openapi::api::core::v1::Pod;
use nmm_core::cpuset::CpuSet;
use nmm_core::kubelet_config::KubeletConfig;
use nmm_core::machine::{Cpu, Machine, NumaNode};
use nmm_core::node::{AdmitResult, Node, StartOptions};
use nmm_core::pod::PodInfo;
use nmm_core::topology::policy::MergeOutcome;
use proptest::prelude::*;
use serde_json::json;
use std::collections::BTreeMap;

const GI: u64 = 1 << 30;

fn machine(cpu_nodes: usize, memory_only: usize, dist: &[u64]) -> Machine {
    let mut m = Machine::default();
    let total = cpu_nodes + memory_only;
    for n in 0..total as u32 {
        let cpus: CpuSet = if (n as usize) < cpu_nodes {
            (n * 4..n * 4 + 4).collect()
        } else {
            CpuSet::new()
        };
        for c in cpus.iter() {
            m.cpus.push(Cpu {
                id: c,
                core: c / 2,
                socket: n / 2,
                numa: n,
            });
        }
        m.nodes.push(NumaNode {
            id: n,
            cpus,
            memory: if (n as usize) < cpu_nodes {
                16 * GI
            } else {
                8 * GI
            },
            hugepages: if (n as usize) < cpu_nodes {
                [(GI, 2 * GI)].into()
            } else {
                BTreeMap::new()
            },
            distances: (0..total as u32)
                .map(|j| {
                    if j == n {
                        10
                    } else {
                        10 + dist[((n + j) as usize) % dist.len()]
                    }
                })
                .collect(),
        });
    }
    m
}

fn config(policy: &str, scope: &str, closest: bool, align: bool) -> KubeletConfig {
    let align = align && policy != "single-numa-node";
    let mut c = KubeletConfig::static_managers(policy, scope).reserving("1", "1Gi");
    if closest {
        c = c.topology_option("prefer-closest-numa-nodes", "true");
    }
    if align {
        c.cpu_manager_policy_options =
            Some([("align-by-socket".to_string(), "true".to_string())].into());
        c.feature_gates = Some([("CPUManagerPolicyAlphaOptions".to_string(), true)].into());
    }
    c
}

#[derive(Debug, Clone)]
enum Op {
    Admit {
        cpu: u32,
        mem_gi: u64,
        hp_gi: u64,
        init: bool,
        two: bool,
    },
    Remove(usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0u32..7, 1u64..30, 0u64..3, any::<bool>(), any::<bool>())
            .prop_map(|(cpu, mem_gi, hp_gi, init, two)| Op::Admit { cpu, mem_gi, hp_gi, init, two }),
        1 => (0usize..20).prop_map(Op::Remove),
    ]
}

fn container(name: &str, cpu: u32, mem_gi: u64, hp_gi: u64) -> serde_json::Value {
    let mut limits = json!({"cpu": if cpu == 0 { "500m".to_string() } else { cpu.to_string() }, "memory": format!("{mem_gi}Gi")});
    if hp_gi > 0 {
        limits["hugepages-1Gi"] = json!(format!("{hp_gi}Gi"));
    }
    json!({"name": name, "resources": {"limits": limits}})
}

fn pod(i: usize, op: &Op) -> PodInfo {
    let Op::Admit {
        cpu,
        mem_gi,
        hp_gi,
        init,
        two,
    } = *op
    else {
        unreachable!()
    };
    let mut cs = vec![container("app", cpu, mem_gi, hp_gi)];
    if two {
        cs.push(container("app2", 1, 1 + mem_gi / 3, 0));
    }
    let mut spec = json!({"containers": cs});
    if init {
        spec["initContainers"] = json!([container("init", cpu.max(1), mem_gi / 2 + 1, hp_gi)]);
    }
    let p: Pod = serde_json::from_value(json!({
        "metadata": {"name": format!("p{i}"), "uid": format!("uid-{i}")}, "spec": spec,
    }))
    .unwrap();
    PodInfo::from_pod(&p, false).unwrap()
}

fn view(r: &AdmitResult) -> String {
    let cs: Vec<String> = r
        .containers
        .iter()
        .map(|c| format!("{}:{:?}:{}:{:?}", c.name, c.memory, c.cpus, c.affinity))
        .collect();
    format!(
        "{} {:?} {:?} {}",
        r.admitted,
        r.reason,
        r.message,
        cs.join(" | ")
    )
}

/// The merged hints of an admission's trail (pod scope, then per container), with
/// rejections decided unranked ranked again: the kubelet's merged hint, as explanations
/// and the agent's log show it.
fn merges(r: &mut AdmitResult, node: &Node) -> String {
    r.trace.rank_merges(&node.topology.policy);
    let one = |m: &Option<MergeOutcome>| {
        m.as_ref()
            .map(|m| format!("{:?}/{}/{}", m.hint, m.admit, m.unranked))
    };
    let cs: Vec<Option<String>> = r.trace.containers.iter().map(|t| one(&t.merge)).collect();
    format!("{:?} {:?}", one(&r.trace.pod_merge), cs)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(800))]
    #[test]
    fn large_path_decides_like_enumeration(
        cpu_nodes in 1usize..=4,
        memory_only in 0usize..=4,
        dist in prop::collection::vec(1u64..20, 3),
        policy in prop::sample::select(vec!["none", "best-effort", "restricted", "single-numa-node"]),
        scope in prop::sample::select(vec!["container", "pod"]),
        closest in any::<bool>(),
        align in any::<bool>(),
        ops in prop::collection::vec(op(), 1..16),
    ) {
        let m = machine(cpu_nodes, memory_only, &dist);
        let cfg = config(policy, scope, closest, align);
        let start = |force: bool, dense: Option<usize>| {
            Node::start(m.clone(), cfg.clone(), StartOptions { force_large: force, large_dense_universe: dense, ..Default::default() }).unwrap()
        };
        let enumerating = Node::start(m.clone(), cfg.clone(), StartOptions { enumerate: true, ..Default::default() }).unwrap();
        let mut nodes = [enumerating, start(true, None), start(true, Some(0))];
        let mut live: Vec<String> = Vec::new();
        for (i, o) in ops.iter().enumerate() {
            match o {
                Op::Admit { .. } => {
                    let p = pod(i, o);
                    let mut rs: Vec<AdmitResult> = nodes.iter_mut().map(|n| n.admit(&p).unwrap()).collect();
                    prop_assert_eq!(view(&rs[0]), view(&rs[1]), "projection path differs at step {}", i);
                    prop_assert_eq!(view(&rs[0]), view(&rs[2]), "search path differs at step {}", i);
                    let ranked: Vec<String> = rs.iter_mut().zip(&nodes).map(|(r, n)| merges(r, n)).collect();
                    prop_assert_eq!(&ranked[0], &ranked[1], "projection path's merge at step {}", i);
                    prop_assert_eq!(&ranked[0], &ranked[2], "search path's merge at step {}", i);
                    if rs[0].admitted { live.push(rs[0].uid.clone()); }
                }
                Op::Remove(k) => {
                    if !live.is_empty() {
                        let uid = live.remove(k % live.len());
                        for n in nodes.iter_mut() { n.remove(&uid); }
                    }
                }
            }
        }
        prop_assert_eq!(nodes[0].memory_checkpoint(), nodes[1].memory_checkpoint());
        prop_assert_eq!(nodes[0].cpu_checkpoint(), nodes[2].cpu_checkpoint());
    }
}

fn hetero_cases() -> u32 {
    std::env::var("NMM_EQUIV_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(hetero_cases()))]
    #[test]
    fn heterogeneous_large_path_decides_like_enumeration(
        nodes in 2u32..=12,
        memory_types in 1usize..=4,
        wrap_percent in prop::sample::select(vec![0u64, 20, 50]),
        policy in prop::sample::select(vec!["none", "best-effort", "restricted", "single-numa-node"]),
        scope in prop::sample::select(vec!["container", "pod"]),
        closest in any::<bool>(),
        seed in any::<u64>(),
        steps in 1usize..40,
    ) {
        let shape = hetero::Shape { nodes, memory_types, wrap_percent };
        let mut rng = hetero::Rng(seed);
        let m = hetero::machine(shape, &mut rng);
        let cfg = hetero::config(policy, scope, closest, nodes);
        let start = |enumerate: bool| {
            Node::start(m.clone(), cfg.clone(), StartOptions { enumerate, ..Default::default() })
        };
        let (Ok(mut exact), Ok(mut large)) = (start(true), start(false)) else {
            // both refuse to start alike (checked below) or the machine is invalid
            prop_assert_eq!(start(true).err(), start(false).err());
            return Ok(());
        };
        let mut live: Vec<String> = Vec::new();
        for (i, op) in hetero::ops(steps, shape, &mut rng).into_iter().enumerate() {
            match op {
                hetero::Op::Admit(p) => {
                    let mut a = exact.admit(&p).unwrap();
                    let mut b = large.admit(&p).unwrap();
                    prop_assert_eq!(view(&a), view(&b), "step {} on {:?}", i, shape);
                    // a rejection decided without ranking has the kubelet's hint once ranked
                    prop_assert_eq!(merges(&mut a, &exact), merges(&mut b, &large), "step {} on {:?}", i, shape);
                    if a.admitted { live.push(a.uid.clone()); }
                }
                hetero::Op::Remove(k) => {
                    if !live.is_empty() {
                        let uid = live.remove(k % live.len());
                        exact.remove(&uid);
                        large.remove(&uid);
                    }
                }
            }
        }
        prop_assert_eq!(exact.memory_checkpoint(), large.memory_checkpoint());
        prop_assert_eq!(exact.cpu_checkpoint(), large.cpu_checkpoint());
    }
}
