//! The PodResources device view ([`nmm_agent::devices`]): what looking at the kubelet's
//! device checkpoint costs when it did not change (one `stat`, paid by every PodResources
//! call), reading a changed one (read, Go JSON, checksum, the view rebuilt) for 1000 pods
//! and for a file just under the 16 MiB limit (the most a file can cost before it is
//! refused unread), the device hints of one admission out of a 1000-pod view and an
//! admission with and without them, and `List` for 300 pods holding devices.
//!
//! ```text
//! cargo bench -p nmm-agent --bench devices
//! ```

use criterion::{criterion_group, criterion_main, Criterion};
use nmm_agent::agent::device_hints::{self, PodDeviceHints};
use nmm_agent::devices::{DeviceOptions, KubeletDevices, Refresh, MAX_CHECKPOINT_BYTES};
use nmm_agent::metrics::Metrics;
use nmm_agent::podresources::PodResourcesService;
use nmm_agent::testkit;
use nmm_agent::{Agent, AgentOptions};
use nmm_core::checkpoint::device::{encode, DeviceCheckpoint};
use nmm_core::devicemanager::pod_devices::AllocInfo;
use nmm_core::devicemanager::Device;
use nmm_core::node::{Node, StartOptions};
use nmm_core::pod::PodInfo;
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

    // Admission hints (mode B device awareness): the pod's devices out of a view of 1000
    // pods (3000 containers; every one of them is looked at for the devices' NUMA
    // nodes), and one admission of a 2-CPU pod holding a GPU with those hints against
    // the same admission without them.
    let view = d.view();
    let target = uid(999);
    g.bench_function("hints_from_view_1000_pods", |b| {
        b.iter(|| {
            let h = PodDeviceHints::from_view(&view, &target).unwrap();
            assert_eq!(h.containers.len(), 3);
        })
    });
    let hints = PodDeviceHints::from_view(&view, &target).unwrap();
    let pod = testkit::pod(&target, "p", &[("c0", "2", "1Gi", None)], &[]);
    let info = PodInfo::from_pod(&pod, false).unwrap();
    let fresh = Node::start(
        testkit::machine(),
        testkit::kubelet_config(),
        StartOptions::default(),
    )
    .unwrap();
    for (name, with) in [
        ("admit_2cpu_pod_with_gpu_hints", true),
        ("admit_2cpu_pod_without_hints", false),
    ] {
        g.bench_function(name, |b| {
            b.iter_batched(
                || fresh.clone(),
                |mut node| {
                    let r = device_hints::admit(&mut node, &info, with.then_some(&hints)).unwrap();
                    assert!(r.admitted);
                    node
                },
                criterion::BatchSize::SmallInput,
            )
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

// The allocator the `nmm` binary runs with (see its main.rs), so that the figures are
// the binary's.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
