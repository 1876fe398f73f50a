//! Loading scenarios: MB/s of YAML and JSON scenario files read into the machine, the
//! kubelet config and typed pods (`load_scenario`), and whole `nmm simulate` runs of a
//! long scenario (load, replay, JSON lines). `docs/BENCHMARKS.md` reports the figures.
//!
//!   cargo bench -p nmm-scenario --bench parse

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use nmm_scenario::scenario::load_scenario;
use nmm_scenario::simulate::{event_json, run};
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::Path;
use std::time::Duration;

/// A scenario of `steps` admit/remove steps on 8 NUMA nodes, written as PyYAML's
/// `safe_dump` writes it (block style): pods of 1-8 CPUs, 1-64Gi, 0-2Gi of 1Gi
/// hugepages, requests equal to limits; about half the steps remove a running pod.
fn yaml_scenario(steps: usize) -> String {
    let mut seed: u64 = 7;
    let mut rnd = move |n: u64| {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (seed >> 33) % n
    };
    let mut s = String::from("machine:\n  numaNodes:\n");
    for n in 0..8 {
        let _ = write!(
            s,
            "  - id: {n}\n    cpus: {}-{}\n    memory: 128Gi\n    hugepages:\n      1Gi: 16Gi\n",
            n * 16,
            n * 16 + 15
        );
    }
    s.push_str("kubelet:\n  memoryManagerPolicy: Static\n  cpuManagerPolicy: static\n  topologyManagerPolicy: single-numa-node\n  kubeReserved:\n    cpu: '2'\n    memory: 1Gi\n  evictionHard: {}\n  reservedMemory:\n  - numaNode: 0\n    limits:\n      memory: 1Gi\nsteps:\n");
    let mut live: Vec<String> = Vec::new();
    for i in 0..steps {
        if !live.is_empty() && (rnd(2) == 0 || live.len() > 40) {
            let k = rnd(live.len() as u64) as usize;
            let _ = writeln!(s, "- remove:\n    uid: {}", live.swap_remove(k));
        } else {
            let uid = format!("u{i}");
            let cpu = [1, 2, 4, 8][rnd(4) as usize];
            let mem = [1, 2, 4, 8, 16, 64][rnd(6) as usize];
            let mut lim = format!("cpu: '{cpu}'\n            memory: {mem}Gi\n");
            let hp = rnd(3);
            if hp > 0 {
                let _ = writeln!(lim, "            hugepages-1Gi: {hp}Gi");
            }
            let _ = write!(
                s,
                "- admit:\n    metadata:\n      name: {uid}\n      uid: {uid}\n      namespace: default\n    spec:\n      containers:\n      - name: c\n        image: busybox\n        resources:\n          limits:\n            {lim}          requests:\n            {lim}"
            );
            live.push(uid);
        }
    }
    s
}

fn bench(c: &mut Criterion) {
    let dir = std::env::temp_dir().join(format!("nmm-parse-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut g = c.benchmark_group("load");
    g.sample_size(10)
        .measurement_time(Duration::from_secs(10))
        .warm_up_time(Duration::from_secs(1));
    for steps in [2_000usize, 20_000] {
        let yaml = yaml_scenario(steps);
        let y = dir.join(format!("s{steps}.yaml"));
        std::fs::write(&y, &yaml).unwrap();
        let json = serde_json::to_string(
            &nmm_scenario::scenario::parse_yaml(&yaml, Path::new("s.yaml")).unwrap(),
        )
        .unwrap();
        let j = dir.join(format!("s{steps}.json"));
        std::fs::write(&j, &json).unwrap();
        g.throughput(Throughput::Bytes(yaml.len() as u64));
        g.bench_function(format!("yaml-{steps}-steps"), |b| {
            b.iter(|| load_scenario(&y).unwrap().steps.len())
        });
        g.throughput(Throughput::Bytes(json.len() as u64));
        g.bench_function(format!("json-{steps}-steps"), |b| {
            b.iter(|| load_scenario(&j).unwrap().steps.len())
        });
    }
    g.finish();
    let mut g = c.benchmark_group("whole-run");
    g.sample_size(10)
        .measurement_time(Duration::from_secs(10))
        .warm_up_time(Duration::from_secs(1));
    for steps in [2_000usize, 20_000] {
        let y = dir.join(format!("s{steps}.yaml"));
        g.bench_function(format!("yaml-{steps}-steps"), |b| {
            b.iter(|| {
                let s = load_scenario(&y).unwrap();
                let o = run(&s, "/var/lib/kubelet").unwrap();
                let mut out = std::io::BufWriter::new(std::io::sink());
                for (step, e) in &o.events {
                    writeln!(out, "{}", event_json(*step, e)).unwrap();
                }
                o.events.len()
            })
        });
    }
    g.finish();
    let _ = std::fs::remove_dir_all(&dir);
}

criterion_group!(benches, bench);
criterion_main!(benches);
