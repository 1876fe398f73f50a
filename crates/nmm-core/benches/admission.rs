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
use nmm_core::node::{Node, StartOptions};
use nmm_core::pod::PodInfo;
use std::time::Duration;

#[path = "../tests/support/hetero.rs"]
mod hetero;

#[path = "support/uniform_node.rs"]
mod uniform_node;

use uniform_node::half_full;

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
                for (label, p) in uniform_node::kinds(nodes) {
                    let id = BenchmarkId::new(format!("{policy}/{scope}/{label}"), nodes);
                    g.bench_with_input(id, &p, |b, p| {
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

// The allocator the `nmm` binary runs with (see its main.rs), so that the figures are
// the binary's.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
