//! A whole `nmm simulate` run: 100,000 admit/remove events on an 8-NUMA-node machine
//! (single-numa-node policy, static CPU and memory managers), from scenario file to JSON
//! lines. `docs/BENCHMARKS.md` reports the figure.
//!
//!   cargo bench -p nmm --bench simulate

use criterion::{criterion_group, criterion_main, Criterion};
use nmm_scenario::scenario::load_scenario;
use nmm_scenario::simulate::{event_json, run};
use serde_json::json;
use std::io::Write;
use std::time::Duration;

/// A deterministic event stream: pods of 1-8 CPUs, 1-64Gi, 0-2Gi of 1Gi hugepages; about
/// half the events remove a running pod.
fn scenario(events: usize) -> serde_json::Value {
    let mut seed: u64 = 7;
    let mut rnd = move |n: u64| {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (seed >> 33) % n
    };
    let nodes: Vec<_> = (0..8)
        .map(|n| json!({"id": n, "cpus": format!("{}-{}", n * 16, n * 16 + 15), "memory": "128Gi", "hugepages": {"1Gi": "16Gi"}}))
        .collect();
    let mut steps = Vec::with_capacity(events);
    let mut live: Vec<String> = Vec::new();
    for i in 0..events {
        if !live.is_empty() && (rnd(2) == 0 || live.len() > 40) {
            let k = rnd(live.len() as u64) as usize;
            steps.push(json!({"remove": {"uid": live.swap_remove(k)}}));
        } else {
            let uid = format!("u{i}");
            let cpu = [1, 2, 4, 8][rnd(4) as usize];
            let mem = [1, 2, 4, 8, 16, 64][rnd(6) as usize];
            let mut limits = json!({"cpu": cpu.to_string(), "memory": format!("{mem}Gi")});
            let hp = rnd(3);
            if hp > 0 {
                limits["hugepages-1Gi"] = json!(format!("{hp}Gi"));
            }
            steps.push(json!({"admit": {"metadata": {"name": uid, "uid": uid}, "spec": {"containers": [{"name": "c", "resources": {"limits": limits}}]}}}));
            live.push(uid);
        }
    }
    json!({
        "machine": {"numaNodes": nodes},
        "kubelet": {"memoryManagerPolicy": "Static", "cpuManagerPolicy": "static", "topologyManagerPolicy": "single-numa-node",
                    "kubeReserved": {"cpu": "2", "memory": "1Gi"}, "evictionHard": {},
                    "reservedMemory": [{"numaNode": 0, "limits": {"memory": "1Gi"}}]},
        "steps": steps,
    })
}

fn bench(c: &mut Criterion) {
    let dir = std::env::temp_dir().join(format!("nmm-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("events-100k.json");
    std::fs::write(&path, serde_json::to_vec(&scenario(100_000)).unwrap()).unwrap();
    let mut g = c.benchmark_group("simulate");
    g.sample_size(10)
        .measurement_time(Duration::from_secs(20))
        .warm_up_time(Duration::from_secs(1));
    g.bench_function("100k-events-8-numa", |b| {
        b.iter(|| {
            let s = load_scenario(&path).unwrap();
            let o = run(&s, "/var/lib/kubelet").unwrap();
            let mut out = std::io::BufWriter::new(std::io::sink());
            for (step, e) in &o.events {
                writeln!(out, "{}", event_json(*step, e)).unwrap();
            }
            o.events.len()
        })
    });
    g.finish();
    let _ = std::fs::remove_dir_all(&dir);
}

criterion_group!(benches, bench);
criterion_main!(benches);

// The allocator the `nmm` binary runs with (see its main.rs), so that the figures are
// the binary's.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
