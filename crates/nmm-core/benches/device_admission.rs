//! One admission of a Guaranteed pod asking for cpu, memory, one GPU and one NIC (device
//! plugin resources: the Device Manager is the first hint provider) on a half-full machine
//! of 8 NUMA nodes (two GPUs and two NICs per node) and on a GB200-like tray of 34 nodes
//! (2 Grace nodes with CPUs, GPUs and NICs attached to them, 32 CPU-less GPU memory
//! nodes), under every Topology Manager policy and both scopes (`POLICY/pod`: pod scope);
//! and the same pod without devices, for the CPU and Memory Managers' share. `docs/BENCHMARKS.md` reports the figures.
//!
//!   cargo bench -p nmm-core --bench device_admission

#[path = "support/device_node.rs"]
mod device_node;

use criterion::{criterion_group, criterion_main, BatchSize, BenchmarkId, Criterion};
use device_node::{half_full, pod};
use std::time::Duration;

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("device_admission");
    g.measurement_time(Duration::from_secs(2))
        .warm_up_time(Duration::from_millis(300))
        .sample_size(30);
    for nodes in [8u32, 34] {
        for policy in [
            "none",
            "best-effort",
            "restricted",
            "single-numa-node",
            "best-effort/pod",
            "restricted/pod",
            "single-numa-node/pod",
        ] {
            let base = half_full(nodes, policy);
            // The same pod without devices: what the CPU and Memory Managers cost alone.
            for (what, p) in [
                ("gpu+nic", pod("bench-gpu", 4, 16, 1, 1)),
                ("no-devices", pod("bench-plain", 4, 16, 0, 0)),
            ] {
                let id = BenchmarkId::new(format!("{policy}/{what}"), nodes);
                g.bench_with_input(id, &p, |b, p| {
                    b.iter_batched_ref(
                        || base.clone(),
                        |n| {
                            let r = n.admit(p).unwrap();
                            assert!(r.admitted);
                            r
                        },
                        BatchSize::SmallInput,
                    )
                });
            }
        }
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);

// The allocator the `nmm` binary runs with (see its main.rs), so that the figures are
// the binary's.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
