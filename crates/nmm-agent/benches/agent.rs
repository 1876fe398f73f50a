//! The agent's time per NRI request at scale, in process (the NRI handler called
//! directly, so the figures are the agent's own time, journal `fdatasync` included, not
//! the socket's): a Synchronize of 1000 pods / 3000 containers the agent does not know,
//! one CreateContainer with 300 pods admitted (a new Burstable pod, and a new Guaranteed
//! pod whose exclusive CPU shrinks the shared pool; the answer carries the new
//! container's cpuset only), and the reconcile loop's work right after that Guaranteed
//! CreateContainer: the 855 shared containers' updates it sends unsolicited
//! (`pending_updates`).
//!
//! The state directory is under `NMM_BENCH_DIR` (default: the system's temporary
//! directory, a real disk on the development machine).
//!
//! ```text
//! cargo bench -p nmm-agent --bench agent
//! ```

use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use nmm_agent::nri::NriAgent;
use nmm_agent::testkit::{self, nri};
use nmm_agent::{Agent, AgentOptions};
use nmm_core::machine::Machine;
use nmm_nri::NriHandler;
use std::sync::Arc;
use std::time::{Duration, Instant};

const GI: u64 = 1 << 30;

fn tempdir() -> tempfile::TempDir {
    match std::env::var("NMM_BENCH_DIR") {
        Ok(d) => tempfile::tempdir_in(d).unwrap(),
        Err(_) => tempfile::tempdir().unwrap(),
    }
}

/// 8 NUMA nodes of 16 two-thread cores (256 CPUs), 256Gi each.
fn machine() -> Machine {
    Machine::synthetic(8, 16, 0, 256 * GI, 0)
}

fn handler(dir: &std::path::Path) -> NriAgent {
    let (agent, _) = Agent::start(AgentOptions {
        machine: machine(),
        kubelet: testkit::kubelet_config(),
        state_dir: dir.to_path_buf(),
        reconcile: None,
        cgroup_root: None,
        devices: Default::default(),
    })
    .unwrap();
    NriAgent::with_logger(Arc::new(agent), |_| {})
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("agent");
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(20));

    // 1000 pods, 3 containers each; one in twenty Guaranteed (150 exclusive CPUs).
    let (pods, ctrs) = nri::population(1000, 3, 20);
    g.bench_function("synchronize_1000_pods_3000_containers", |b| {
        b.iter_batched(
            || {
                let d = tempdir();
                let h = handler(&d.path().join("state"));
                (d, h)
            },
            |(d, h)| {
                let updates = h.synchronize(&pods, &ctrs);
                assert_eq!(h.agent().uids().len(), 1000);
                (h, d, updates)
            },
            BatchSize::PerIteration,
        )
    });

    // 300 pods admitted (900 containers, 15 Guaranteed pods), then one new pod's
    // container per iteration, removed again outside the measurement.
    let d = tempdir();
    let h = handler(&d.path().join("state"));
    let (pods, ctrs) = nri::population(300, 3, 20);
    h.synchronize(&pods, &ctrs);
    for (name, qos) in [
        ("create_container_300_pods_burstable", "burstable"),
        ("create_container_300_pods_guaranteed", "guaranteed"),
    ] {
        let mut i = 100_000u64;
        g.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    i += 1;
                    let p = nri::sandbox(&format!("new{i}"), &nri::uid(i), qos);
                    let c = if qos == "guaranteed" {
                        nri::container(&p, "app", Some(1000), Some(1000), Some(256 << 20))
                    } else {
                        nri::container(&p, "app", None, Some(100), None)
                    };
                    let t0 = Instant::now();
                    let r = h.create_container(&p, &c);
                    total += t0.elapsed();
                    assert!(r.unwrap().updates.is_empty());
                    h.remove_pod_sandbox(&p);
                    // What the reconcile loop does next: the shared containers get the
                    // widened pool, so the next Guaranteed pod has to shrink it for all.
                    h.pending_updates();
                }
                total
            })
        });
    }
    let mut i = 200_000u64;
    g.bench_function(
        "unsolicited_updates_after_guaranteed_create_300_pods",
        |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    i += 1;
                    let p = nri::sandbox(&format!("new{i}"), &nri::uid(i), "guaranteed");
                    let c = nri::container(&p, "app", Some(1000), Some(1000), Some(256 << 20));
                    h.create_container(&p, &c).unwrap();
                    let t0 = Instant::now();
                    let updates = h.pending_updates();
                    total += t0.elapsed();
                    assert_eq!(updates.len(), 855);
                    h.remove_pod_sandbox(&p);
                    h.pending_updates();
                }
                total
            })
        },
    );
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);

// The allocator the `nmm` binary runs with (see its main.rs), so that the figures are
// the binary's.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
