//! Per-admission engine time on heterogeneous machines filling up (the machines of
//! `tests/large_machine_no_refusal.rs`): p50 / p99 / max per machine size, over every
//! policy, both scopes, prefer-closest on and off and several seeds. Run in release:
//!
//!   cargo run --release -p nmm-core --example admission_percentiles [SEEDS]
//!
//! Times are the thread's CPU time (`CLOCK_THREAD_CPUTIME_ID`), so that a loaded
//! machine's preemptions do not pass for engine time; a reading above 100 us is also
//! retaken (up to four more times, on copies of the node before the admission) and the
//! fastest kept, against cache and frequency noise. `docs/BENCHMARKS.md` reports its output. (Criterion's `admission` benchmark has the
//! same machines as `heterogeneous/...`; this harness shows the tail, which a mean hides.)

#[path = "../tests/support/hetero.rs"]
mod hetero;

use hetero::{config, machine, ops, thread_cpu_time, Op, Rng, Shape};
use nmm_core::node::{Node, StartOptions};
use std::time::Duration;

fn pct(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

fn main() {
    let seeds: u64 = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(3);
    // NMM_SLOW=US prints every admission slower than US microseconds, with its config.
    let slow_us: Option<u128> = std::env::var("NMM_SLOW").ok().and_then(|s| s.parse().ok());
    let only: Option<u32> = std::env::var("NMM_NODES").ok().and_then(|s| s.parse().ok());
    // NMM_CONFIG=policy/scope/closest runs that configuration only; NMM_REPEAT=STEP
    // admits that step 200 more times (for a profiler).
    let filter: Option<String> = std::env::var("NMM_CONFIG").ok();
    // NMM_TRACE=1 names every admission before it starts (to find one that never ends)
    let trace = std::env::var("NMM_TRACE").is_ok();
    // NMM_FULL=1 prints every admission's full outcome (message, and per container the
    // CPUs, memory blocks, devices and hint) to stderr, timeless: a digest of the
    // decisions to compare before and after a change that must not alter any.
    let full = std::env::var("NMM_FULL").is_ok();
    let repeat: Option<usize> = std::env::var("NMM_REPEAT")
        .ok()
        .and_then(|s| s.parse().ok());
    // NMM_SEED=S runs that seed only (of the SEEDS given)
    let only_seed: Option<u64> = std::env::var("NMM_SEED").ok().and_then(|s| s.parse().ok());
    println!("| nodes | admissions | p50 | p99 | max | slowest run |");
    println!("|---:|---:|---:|---:|---:|---|");
    for nodes in [8u32, 16, 34, 64] {
        if only.is_some_and(|o| o != nodes) {
            continue;
        }
        let mut times: Vec<Duration> = Vec::new();
        let mut worst = (Duration::ZERO, String::new());
        for policy in ["none", "best-effort", "restricted", "single-numa-node"] {
            for scope in ["container", "pod"] {
                for closest in [false, true] {
                    let tag = format!("{policy}/{scope}/{closest}");
                    if filter.as_ref().is_some_and(|f| *f != tag) {
                        continue;
                    }
                    for seed in (0..seeds).filter(|s| only_seed.is_none_or(|o| o == *s)) {
                        let shape = Shape {
                            nodes,
                            memory_types: 1 + (seed % 4) as usize,
                            wrap_percent: 10,
                        };
                        let mut rng = Rng(seed.wrapping_mul(7919) ^ nodes as u64);
                        let m = machine(shape, &mut rng);
                        let cfg = config(policy, scope, closest, nodes);
                        let mut node = Node::start(m, cfg, StartOptions::default())
                            .expect("generated machines start");
                        let mut live = Vec::new();
                        for (i, op) in ops(150, shape, &mut rng).into_iter().enumerate() {
                            match op {
                                Op::Admit(p) => {
                                    if trace {
                                        eprintln!("{nodes} {tag} seed {seed} step {i}");
                                    }
                                    let before = node.clone();
                                    if repeat == Some(i) {
                                        for _ in 0..200 {
                                            let mut again = before.clone();
                                            let _ = again.admit(&p);
                                        }
                                    }
                                    let t = thread_cpu_time();
                                    let r = node.admit(&p).expect("admission");
                                    let mut d = thread_cpu_time() - t;
                                    // On a shared machine a slow reading is mostly the
                                    // process losing its CPU: rerun the same admission on
                                    // copies of the node and keep the fastest.
                                    for _ in 0..4 {
                                        if d.as_micros() < 100 {
                                            break;
                                        }
                                        let mut again = before.clone();
                                        let t = thread_cpu_time();
                                        let _ = again.admit(&p);
                                        d = d.min(thread_cpu_time() - t);
                                    }
                                    if d > worst.0 {
                                        worst = (
                                            d,
                                            format!("{policy}/{scope}/closest={closest}/seed {seed}/step {i}"),
                                        );
                                    }
                                    times.push(d);
                                    if slow_us.is_some_and(|t| d.as_micros() > t) {
                                        let cs: Vec<String> = r
                                            .containers
                                            .iter()
                                            .map(|c| format!("{}:{:?}", c.name, c.affinity))
                                            .collect();
                                        eprintln!("{nodes} {policy}/{scope}/closest={closest}/seed {seed}/step {i}: {} us admitted={} {}", d.as_micros(), r.admitted, cs.join(" "));
                                    }
                                    if full {
                                        eprintln!(
                                            "{nodes} {tag} seed {seed} step {i}: admitted={} {:?} {:?}",
                                            r.admitted, r.message, r.containers
                                        );
                                    }
                                    if r.admitted {
                                        live.push(r.uid);
                                    }
                                }
                                Op::Remove(k) if !live.is_empty() => {
                                    let uid = live.remove(k % live.len());
                                    node.remove(&uid);
                                }
                                Op::Remove(_) => {}
                            }
                        }
                    }
                }
            }
        }
        times.sort();
        println!(
            "| {nodes} | {} | {:.1} us | {:.1} us | {:.1} us | {} |",
            times.len(),
            pct(&times, 0.5).as_secs_f64() * 1e6,
            pct(&times, 0.99).as_secs_f64() * 1e6,
            times.last().copied().unwrap_or_default().as_secs_f64() * 1e6,
            worst.1
        );
    }
}

// The allocator the `nmm` binary runs with (see its main.rs), so that the figures are
// the binary's.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
