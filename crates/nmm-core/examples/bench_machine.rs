//! Times, one by one, the admissions of criterion's `heterogeneous/...` benchmark
//! (`benches/admission.rs`): the bench's own machine (seed `0xbe9c ^ nodes`, 4 memory
//! types), filled by 75 steps, then each of the next pods admitted on a copy of it.
//! Prints every fill step slower than NMM_SLOW us (default 1000; the fastest of up to five
//! runs on copies) and every measured admission.
//!
//!   cargo run --release -p nmm-core --example bench_machine [NODES] [policy/scope/closest]
//!
//! NMM_REPEAT=STEP admits that fill step 300 more times, for a profiler.

#[path = "../tests/support/hetero.rs"]
mod hetero;

use hetero::{config, machine, ops, thread_cpu_time, Op, Rng, Shape};
use nmm_core::node::{Node, StartOptions};

fn main() {
    let nodes: u32 = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(16);
    let filter = std::env::args().nth(2);
    // NMM_REPEAT=STEP admits that fill step 300 more times (for a profiler)
    let repeat: Option<usize> = std::env::var("NMM_REPEAT")
        .ok()
        .and_then(|s| s.parse().ok());
    let slow_us: u128 = std::env::var("NMM_SLOW")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1000);
    for policy in ["best-effort", "restricted"] {
        for scope in ["container", "pod"] {
            for closest in [false, true] {
                let tag = format!("{policy}/{scope}/{closest}");
                if filter.as_ref().is_some_and(|f| *f != tag) {
                    continue;
                }
                let shape = Shape {
                    nodes,
                    memory_types: 4,
                    wrap_percent: 10,
                };
                let mut rng = Rng(0xbe9c ^ nodes as u64);
                let m = machine(shape, &mut rng);
                let cfg = config(policy, scope, closest, nodes);
                let mut base = Node::start(m, cfg, StartOptions::default()).expect("starts");
                let mut live = Vec::new();
                let steps = ops(83, shape, &mut rng);
                let (fill, next) = steps.split_at(75);
                for (i, op) in fill.iter().enumerate() {
                    match op {
                        Op::Admit(p) => {
                            // a slow reading is retaken on copies and the fastest kept,
                            // so that a loaded machine's preemptions do not count
                            let mut d = u128::MAX;
                            for _ in 0..5 {
                                let mut copy = base.clone();
                                let t = thread_cpu_time();
                                copy.admit(p).expect("admission");
                                d = d.min((thread_cpu_time() - t).as_micros());
                                if d <= 100 {
                                    break;
                                }
                            }
                            if repeat == Some(i) {
                                for _ in 0..300 {
                                    base.clone().admit(p).expect("admission");
                                }
                            }
                            let r = base.admit(p).expect("admission");
                            if d > slow_us {
                                println!(
                                    "{nodes} {tag} fill step {i}: {d} us admitted={}",
                                    r.admitted
                                );
                            }
                            if r.admitted {
                                live.push(r.uid);
                            }
                        }
                        Op::Remove(k) if !live.is_empty() => {
                            let uid = live.remove(k % live.len());
                            base.remove(&uid);
                        }
                        Op::Remove(_) => {}
                    }
                }
                for (i, op) in next.iter().enumerate() {
                    if let Op::Admit(p) = op {
                        let mut d = u128::MAX;
                        let mut r = None;
                        for _ in 0..5 {
                            let mut n = base.clone();
                            let t = thread_cpu_time();
                            let got = n.admit(p).expect("admission");
                            d = d.min((thread_cpu_time() - t).as_micros());
                            r = Some(got);
                        }
                        let r = r.expect("admitted at least once");
                        let cs: Vec<String> = r
                            .containers
                            .iter()
                            .map(|c| format!("{}:{:?}", c.name, c.affinity))
                            .collect();
                        println!(
                            "{nodes} {tag} next pod {i}: {d} us admitted={} {}",
                            r.admitted,
                            cs.join(" ")
                        );
                    }
                }
            }
        }
    }
}
