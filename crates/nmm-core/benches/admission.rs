//! One admission (hint generation, merge, allocation) of a Guaranteed pod asking for cpu,
//! memory and hugepages-1Gi, on a half-full machine of 2 to 64 NUMA nodes, under every
//! Topology Manager policy and both scopes. `docs/BENCHMARKS.md` reports the figures.
//!
//! `heterogeneous/...`: machines of 16, 34 and 64 nodes like those of
//! `tests/large_machine_no_refusal.rs` (CPU-less nodes, uneven memory, 1-3 hugepage
//! sizes, wrapped allocatable), filled by 75 steps of one- to three-container pods asking
//! cpu + memory + hugepages, then one more admission of the next eight pods in turn.
//! The tail (p99, max) of those admissions comes from `examples/admission_percentiles.rs`.
//!
//!   cargo bench -p nmm-core --bench admission

use criterion::{criterion_group, criterion_main, BatchSize, BenchmarkId, Criterion};
use k8s_openapi::api::core::v1::Pod;
use nmm_core::kubelet_config::KubeletConfig;
use nmm_core::machine::Machine;
use nmm_core::node::{Node, StartOptions};
use nmm_core::pod::PodInfo;
use serde_json::json;
use std::time::Duration;

#[path = "../tests/support/hetero.rs"]
mod hetero;

const GI: u64 = 1 << 30;

fn pod(uid: &str, cpu: u32, mem_gi: u64, hp_gi: u64) -> PodInfo {
    let p: Pod = serde_json::from_value(json!({
        "metadata": {"name": uid, "uid": uid},
        "spec": {"containers": [{"name": "c", "resources": {"limits": {
            "cpu": cpu.to_string(), "memory": format!("{mem_gi}Gi"), "hugepages-1Gi": format!("{hp_gi}Gi")}}}]}
    }))
    .unwrap();
    PodInfo::from_pod(&p, false).unwrap()
}

/// The machine of a benchmark: GB200-like at 34 nodes (2 with CPUs), uniform otherwise.
fn machine(nodes: u32) -> Machine {
    if nodes == 34 {
        Machine::synthetic(2, 36, 32, 480 * GI, 64 * GI)
    } else {
        Machine::synthetic(nodes, 8, 0, 64 * GI, 16 * GI)
    }
}

fn config(policy: &str, scope: &str, nodes: u32) -> KubeletConfig {
    let c = KubeletConfig::static_managers(policy, scope).reserving("2", "1Gi");
    if nodes > 8 {
        c.topology_option("max-allowable-numa-nodes", &nodes.to_string())
    } else {
        c
    }
}

/// A started node with about half of every CPU node's memory and CPUs taken.
fn half_full(nodes: u32, policy: &str, scope: &str) -> Node {
    let mut n = Node::start(
        machine(nodes),
        config(policy, scope, nodes),
        StartOptions::default(),
    )
    .unwrap();
    let cpu_nodes = if nodes == 34 { 2 } else { nodes };
    let per_node = if nodes == 34 { 4 } else { 2 };
    let mem = if nodes == 34 { 50 } else { 12 };
    for i in 0..cpu_nodes * per_node {
        let r = n.admit(&pod(&format!("fill-{i}"), 4, mem, 2)).unwrap();
        assert!(
            r.admitted,
            "filling pod {i} rejected on {nodes} nodes under {policy}: {:?}",
            r.message
        );
    }
    n
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("admission");
    g.measurement_time(Duration::from_secs(2))
        .warm_up_time(Duration::from_millis(300))
        .sample_size(30);
    for nodes in [2u32, 4, 8, 16, 34, 64] {
        for policy in ["none", "best-effort", "restricted", "single-numa-node"] {
            for scope in ["container", "pod"] {
                if policy == "none" && scope == "pod" {
                    continue; // policy none ignores the scope
                }
                let base = half_full(nodes, policy, scope);
                // A pod that fits one node (preferred single-node hint) ...
                let one = pod("bench-one", 4, 8, 2);
                // ... and one that needs a group of nodes (no single node has room).
                let wide = pod("bench-wide", 4, if nodes == 34 { 500 } else { 90 }, 2);
                // ... and, from 8 nodes up, one that needs 4 nodes by capacity.
                let four = pod("bench-four", 4, if nodes == 34 { 1000 } else { 180 }, 2);
                let mut kinds = vec![("fits-1-node", &one), ("needs-group", &wide)];
                if nodes >= 8 {
                    kinds.push(("needs-4-nodes", &four));
                }
                for (label, p) in kinds {
                    let id = BenchmarkId::new(format!("{policy}/{scope}/{label}"), nodes);
                    g.bench_with_input(id, p, |b, p| {
                        b.iter_batched_ref(
                            || base.clone(),
                            |n| n.admit(p).unwrap(),
                            BatchSize::SmallInput,
                        )
                    });
                }
            }
        }
    }
    g.finish();
}

fn bench_heterogeneous(c: &mut Criterion) {
    let mut g = c.benchmark_group("heterogeneous");
    g.measurement_time(Duration::from_secs(2))
        .warm_up_time(Duration::from_millis(300))
        .sample_size(30);
    for nodes in [16u32, 34, 64] {
        for policy in ["best-effort", "restricted"] {
            for scope in ["container", "pod"] {
                for closest in [false, true] {
                    let shape = hetero::Shape {
                        nodes,
                        memory_types: 4,
                        wrap_percent: 10,
                    };
                    let mut rng = hetero::Rng(0xbe9c ^ nodes as u64);
                    let m = hetero::machine(shape, &mut rng);
                    let cfg = hetero::config(policy, scope, closest, nodes);
                    let mut base = Node::start(m, cfg, StartOptions::default()).unwrap();
                    let mut live = Vec::new();
                    let steps = hetero::ops(83, shape, &mut rng);
                    let (fill, next) = steps.split_at(75);
                    for op in fill {
                        match op {
                            hetero::Op::Admit(p) => {
                                let r = base.admit(p).unwrap();
                                if r.admitted {
                                    live.push(r.uid);
                                }
                            }
                            hetero::Op::Remove(k) if !live.is_empty() => {
                                let uid = live.remove(k % live.len());
                                base.remove(&uid);
                            }
                            hetero::Op::Remove(_) => {}
                        }
                    }
                    let pods: Vec<&PodInfo> = next
                        .iter()
                        .filter_map(|o| match o {
                            hetero::Op::Admit(p) => Some(p),
                            hetero::Op::Remove(_) => None,
                        })
                        .collect();
                    let label =
                        format!("{policy}/{scope}{}", if closest { "/closest" } else { "" });
                    let mut turn = 0usize;
                    g.bench_function(BenchmarkId::new(label, nodes), |b| {
                        b.iter_batched_ref(
                            || base.clone(),
                            |n| {
                                turn = (turn + 1) % pods.len();
                                n.admit(pods[turn]).unwrap()
                            },
                            BatchSize::SmallInput,
                        )
                    });
                }
            }
        }
    }
    g.finish();
}

criterion_group!(benches, bench, bench_heterogeneous);
criterion_main!(benches);
