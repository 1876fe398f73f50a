//! The PodResources device view ([`nmm_agent::devices`]): what looking at the kubelet's
//! device checkpoint costs when it did not change (one `stat`, paid by every PodResources
//! call), reading a changed one (read, Go JSON, checksum, the view rebuilt) for 1000 pods
//! and for a file just under the 16 MiB limit (the most a file can cost before it is
//! refused unread), and `List` for 300 pods holding devices.
//!
//! ```text
//! cargo bench -p nmm-agent --bench devices
//! ```

use criterion::{criterion_group, criterion_main, Criterion};
use nmm_agent::devices::{DeviceOptions, KubeletDevices, Refresh, MAX_CHECKPOINT_BYTES};
use nmm_agent::metrics::Metrics;
use nmm_agent::podresources::PodResourcesService;
use nmm_agent::testkit;
use nmm_agent::{Agent, AgentOptions};
use nmm_core::checkpoint::device::{encode, DeviceCheckpoint};
use nmm_core::devicemanager::pod_devices::AllocInfo;
use nmm_core::devicemanager::Device;
use std::path::Path;
use std::time::{Duration, Instant};

fn uid(i: usize) -> String {
    format!("{i:08x}-0000-4000-8000-000000000000")
}

/// `pods` pods of `containers` containers, each holding one GPU (on node i % 2) with an
/// `Allocate` response of `resp` bytes.
fn checkpoint(pods: usize, containers: usize, resp: usize) -> String {
    let mut cp = DeviceCheckpoint::default();
    for p in 0..pods {
        for c in 0..containers {
            let mut info = AllocInfo {
                alloc_resp: vec![0x5a; resp],
                ..Default::default()
            };
            let n = (p * containers + c) as i64;
            info.by_numa.insert(n % 2, [format!("gpu-{n}")].into());
            cp.pod_devices
                .insert(&uid(p), &format!("c{c}"), "nvidia.com/gpu", info);
        }
    }
    encode(&cp)
}

fn registered(n: usize) -> Vec<Device> {
    (0..n)
        .map(|i| Device {
            resource: "nvidia.com/gpu".into(),
            id: format!("gpu-{i}"),
            numa: Some(vec![(i % 2) as u32]),
            healthy: true,
        })
        .collect()
}

fn replace(path: &Path, text: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("devices");
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(10));
    let dir = tempfile::tempdir().unwrap();
    let m = Metrics::new();
    let opts = DeviceOptions::kubelet_root(dir.path(), registered(3000));
    let path = opts.checkpoint.clone().unwrap();
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let small = checkpoint(1000, 3, 200);
    replace(&path, &small);
    let d = KubeletDevices::new(&testkit::machine(), opts);
    assert_eq!(d.refresh(&m), Refresh::Updated);

    g.bench_function("refresh_unchanged", |b| {
        b.iter(|| assert_eq!(d.refresh(&m), Refresh::Unchanged))
    });
    for (name, text) in [
        ("refresh_changed_1000_pods_3000_containers", small),
        // Just under the limit: 1250 pods x 3 containers, 3000-byte Allocate responses.
        ("refresh_changed_near_16MiB", checkpoint(1250, 3, 3000)),
    ] {
        assert!(text.len() as u64 <= MAX_CHECKPOINT_BYTES, "{}", text.len());
        eprintln!("{name}: {} bytes", text.len());
        g.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    replace(&path, &text);
                    let t0 = Instant::now();
                    assert_eq!(d.refresh(&m), Refresh::Updated);
                    total += t0.elapsed();
                }
                total
            })
        });
    }

    // List: 300 pods in the books, each container holding a GPU in the checkpoint.
    let state = tempfile::tempdir().unwrap();
    let root = tempfile::tempdir().unwrap();
    let opts = DeviceOptions::kubelet_root(root.path(), registered(300));
    let path = opts.checkpoint.clone().unwrap();
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    replace(&path, &checkpoint(300, 1, 200));
    let (agent, _) = Agent::start(AgentOptions {
        machine: nmm_core::machine::Machine::synthetic(2, 64, 0, 512 << 30, 0),
        kubelet: testkit::kubelet_config(),
        state_dir: state.path().to_path_buf(),
        reconcile: None,
        cgroup_root: None,
        devices: opts,
    })
    .unwrap();
    agent
        .transaction(|tx| {
            for p in 0..300 {
                let pod = testkit::pod(&uid(p), &format!("p{p}"), &[("c0", "", "", None)], &[]);
                assert!(tx.admit(&pod).unwrap().admitted);
            }
        })
        .unwrap();
    g.bench_function("list_300_pods_with_devices", |b| {
        b.iter(|| {
            let l = PodResourcesService::list(&agent);
            assert_eq!(l.pod_resources[299].containers[0].devices.len(), 1);
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
