//! PodResources `devices` over the real gRPC server: the registered devices
//! (`machine.devices`) and the kubelet's `device-plugins/kubelet_internal_checkpoint`,
//! written here with nmm-core's encoder (valid checksum) and replaced the way the kubelet
//! replaces it (temporary file, rename). A corrupted or malformed checkpoint keeps the
//! last good view and is counted; a rewritten one is picked up; a removed one means no
//! allocations.

mod support;

use k8s_openapi::api::core::v1::Pod;
use nmm_agent::daemon::{self, Endpoints};
use nmm_agent::devices::{CheckpointStatus, DeviceOptions};
use nmm_agent::podresources::proto::pod_resources_lister_client::PodResourcesListerClient;
use nmm_agent::podresources::proto::{
    AllocatableResourcesRequest, ContainerDevices, ListPodResourcesRequest,
};
use nmm_agent::testkit;
use nmm_agent::{Agent, AgentOptions};
use nmm_core::checkpoint::device::{encode, DeviceCheckpoint};
use nmm_core::devicemanager::pod_devices::AllocInfo;
use nmm_core::devicemanager::Device;
use serde_json::json;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use support::client;
use tonic::transport::Channel;

const UID_TRAIN: &str = "aaaaaaaa-0000-4000-8000-000000000001";
const UID_WEB: &str = "bbbbbbbb-0000-4000-8000-000000000002";
/// A pod the kubelet's checkpoint names but the agent's books do not.
const UID_GONE: &str = "cccccccc-0000-4000-8000-000000000003";

fn dev(resource: &str, id: &str, numa: Option<Vec<u32>>, healthy: bool) -> Device {
    Device {
        resource: resource.into(),
        id: id.into(),
        numa,
        healthy,
    }
}

/// `machine.devices`: two GPUs, one per NUMA node, a broken one on node 1, a NIC
/// without topology.
fn registered() -> Vec<Device> {
    vec![
        dev("nvidia.com/gpu", "gpu-0", Some(vec![0]), true),
        dev("nvidia.com/gpu", "gpu-1", Some(vec![1]), true),
        dev("nvidia.com/gpu", "gpu-2", Some(vec![1]), false),
        dev("example.com/nic", "nic-0", None, true),
    ]
}

fn pod(uid: &str, name: &str, limits: serde_json::Value) -> Pod {
    serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": "default", "uid": uid},
        "spec": {"containers": [{"name": "main", "image": "x",
            "resources": {"requests": limits.clone(), "limits": limits}}]}
    }))
    .unwrap()
}

/// A device checkpoint: (pod uid, container, resource, NUMA node, ids).
fn checkpoint(entries: &[(&str, &str, &str, i64, &[&str])]) -> String {
    let mut cp = DeviceCheckpoint::default();
    for (uid, c, r, node, ids) in entries {
        let mut info = cp
            .pod_devices
            .devs
            .get(uid)
            .and_then(|m| m.get(c))
            .and_then(|m| m.get(r))
            .cloned()
            .unwrap_or_else(AllocInfo::default);
        info.by_numa
            .insert(*node, ids.iter().map(|s| s.to_string()).collect());
        cp.pod_devices.insert(uid, c, r, info);
    }
    cp.registered.insert(
        "nvidia.com/gpu".into(),
        ["gpu-0".to_string(), "gpu-1".to_string()].into(),
    );
    cp.registered
        .insert("example.com/nic".into(), ["nic-0".to_string()].into());
    encode(&cp)
}

/// Replaces the file as the kubelet's checkpoint store does: temporary file, rename.
fn replace(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// (resource, ids, NUMA nodes or None without topology).
type Devs = Vec<(String, Vec<String>, Option<Vec<i64>>)>;

fn devs(list: &[ContainerDevices]) -> Devs {
    list.iter()
        .map(|d| {
            (
                d.resource_name.clone(),
                d.device_ids.clone(),
                d.topology
                    .as_ref()
                    .map(|t| t.nodes.iter().map(|n| n.id).collect()),
            )
        })
        .collect()
}

fn d(
    resource: &str,
    ids: &[&str],
    nodes: Option<Vec<i64>>,
) -> (String, Vec<String>, Option<Vec<i64>>) {
    (
        resource.to_string(),
        ids.iter().map(|s| s.to_string()).collect(),
        nodes,
    )
}

/// Devices of `main` in every listed pod, by pod name.
async fn listed(c: &mut PodResourcesListerClient<Channel>) -> Vec<(String, Devs)> {
    let list = c
        .list(ListPodResourcesRequest {})
        .await
        .unwrap()
        .into_inner();
    list.pod_resources
        .iter()
        .map(|p| {
            assert_eq!(p.containers.len(), 1);
            (p.name.clone(), devs(&p.containers[0].devices))
        })
        .collect()
}

struct Fixture {
    _dirs: (tempfile::TempDir, tempfile::TempDir),
    agent: Arc<Agent>,
    socket: PathBuf,
    checkpoint: PathBuf,
}

async fn fixture(initial: Option<&str>) -> (Fixture, daemon::Running) {
    let state = tempfile::tempdir().unwrap();
    let kubelet_root = tempfile::tempdir().unwrap();
    let opts = DeviceOptions::kubelet_root(kubelet_root.path(), registered());
    let checkpoint = opts.checkpoint.clone().unwrap();
    assert!(checkpoint.ends_with("device-plugins/kubelet_internal_checkpoint"));
    if let Some(text) = initial {
        replace(&checkpoint, text);
    }
    let (agent, _) = Agent::start(AgentOptions {
        machine: testkit::machine(),
        kubelet: testkit::kubelet_config(),
        state_dir: state.path().to_path_buf(),
        reconcile: None,
        cgroup_root: None,
        devices: opts,
    })
    .unwrap();
    // The agent admits pods asking for devices without allocating any: the kubelet does.
    let train = pod(
        UID_TRAIN,
        "train",
        json!({"cpu": "1", "memory": "1Gi", "nvidia.com/gpu": "1", "example.com/nic": "1"}),
    );
    let web = pod(UID_WEB, "web", json!({"cpu": "1", "memory": "1Gi"}));
    for p in [&train, &web] {
        let r = agent.admit_pod(p).unwrap();
        assert!(r.admitted, "{:?}", r.message);
    }
    assert!(!agent.inspect(|node, _| node.devices.is_active()));
    let agent = Arc::new(agent);
    let socket = state.path().join("pod-resources.sock");
    let running = daemon::serve(
        agent.clone(),
        &Endpoints {
            podresources_socket: Some(socket.clone()),
            metrics_addr: None,
        },
    )
    .await
    .unwrap();
    (
        Fixture {
            _dirs: (state, kubelet_root),
            agent,
            socket,
            checkpoint,
        },
        running,
    )
}

fn errors_metric(agent: &Agent) -> String {
    agent
        .metrics
        .encode()
        .lines()
        .find(|l| l.starts_with("nmm_device_checkpoint_read_errors_total "))
        .unwrap()
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_get_and_allocatable_report_the_kubelets_devices() {
    let first = checkpoint(&[
        (UID_TRAIN, "main", "nvidia.com/gpu", 1, &["gpu-1"]),
        (UID_TRAIN, "main", "example.com/nic", -1, &["nic-0"]),
        (UID_GONE, "x", "nvidia.com/gpu", 0, &["gpu-0"]),
    ]);
    let (f, running) = fixture(Some(&first)).await;
    assert_eq!(
        f.agent.devices().status(),
        CheckpointStatus::Loaded { pods: 2 }
    );
    let mut c = client(&f.socket).await;

    // What each live container holds, with the NUMA nodes the kubelet recorded; the NIC
    // without topology; pods the books do not hold are not listed.
    let train = vec![
        d("example.com/nic", &["nic-0"], None),
        d("nvidia.com/gpu", &["gpu-1"], Some(vec![1])),
    ];
    assert_eq!(
        listed(&mut c).await,
        vec![
            ("train".to_string(), train.clone()),
            ("web".to_string(), vec![])
        ]
    );
    let got = support::get_pod(&mut c, "train").await;
    assert_eq!(devs(&got.containers[0].devices), train);
    // CPUs and memory are still the books'.
    assert_eq!(got.containers[0].cpu_ids.len(), 1);

    // Allocatable: every healthy registered device (broken gpu-2 is not), one entry per
    // device and NUMA node, whoever holds it.
    let alloc = c
        .get_allocatable_resources(AllocatableResourcesRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        devs(&alloc.devices),
        vec![
            d("example.com/nic", &["nic-0"], None),
            d("nvidia.com/gpu", &["gpu-0"], Some(vec![0])),
            d("nvidia.com/gpu", &["gpu-1"], Some(vec![1])),
        ]
    );
    assert_eq!(
        errors_metric(&f.agent),
        "nmm_device_checkpoint_read_errors_total 0"
    );

    // A bad checksum: the agent keeps serving the last good view, says so, counts it.
    // (Two GPUs on one node: one entry each, as the kubelet sends them.)
    let moved = checkpoint(&[(UID_TRAIN, "main", "nvidia.com/gpu", 0, &["gpu-0", "gpu-3"])]);
    let corrupted = moved.replace("\"Checksum\":", "\"Checksum\":9");
    replace(&f.checkpoint, &corrupted);
    assert_eq!(
        listed(&mut c).await,
        vec![
            ("train".to_string(), train.clone()),
            ("web".to_string(), vec![])
        ]
    );
    assert_eq!(
        f.agent.devices().status(),
        CheckpointStatus::Rejected("checkpoint is corrupted".into())
    );
    assert_eq!(
        errors_metric(&f.agent),
        "nmm_device_checkpoint_read_errors_total 1"
    );
    // Malformed JSON: the same.
    replace(&f.checkpoint, &moved[..moved.len() / 2]);
    assert_eq!(listed(&mut c).await[0].1, train);
    assert_eq!(
        errors_metric(&f.agent),
        "nmm_device_checkpoint_read_errors_total 2"
    );

    // The kubelet writes a new checkpoint: the next call reports it.
    replace(&f.checkpoint, &moved);
    assert_eq!(
        listed(&mut c).await,
        vec![
            (
                "train".to_string(),
                vec![
                    d("nvidia.com/gpu", &["gpu-0"], Some(vec![0])),
                    d("nvidia.com/gpu", &["gpu-3"], Some(vec![0]))
                ]
            ),
            ("web".to_string(), vec![])
        ]
    );
    assert_eq!(
        errors_metric(&f.agent),
        "nmm_device_checkpoint_read_errors_total 2"
    );
    assert!(f
        .agent
        .metrics
        .encode()
        .contains("nmm_device_checkpoint_reads_total 2"));

    // Gone: no allocations; allocatable unchanged.
    std::fs::remove_file(&f.checkpoint).unwrap();
    assert_eq!(
        listed(&mut c).await,
        vec![("train".to_string(), vec![]), ("web".to_string(), vec![])]
    );
    let alloc2 = c
        .get_allocatable_resources(AllocatableResourcesRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(alloc2.devices, alloc.devices);
    running.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_checkpoint_at_start_is_no_allocations_and_a_good_one_later_is_read() {
    let good = checkpoint(&[(UID_TRAIN, "main", "nvidia.com/gpu", 1, &["gpu-1"])]);
    let bad = good.replace("\"Checksum\":", "\"Checksum\":9");
    let (f, running) = fixture(Some(&bad)).await;
    assert!(matches!(
        f.agent.devices().status(),
        CheckpointStatus::Rejected(_)
    ));
    let mut c = client(&f.socket).await;
    assert_eq!(
        listed(&mut c).await,
        vec![("train".to_string(), vec![]), ("web".to_string(), vec![])]
    );
    assert_eq!(
        errors_metric(&f.agent),
        "nmm_device_checkpoint_read_errors_total 1"
    );
    replace(&f.checkpoint, &good);
    assert_eq!(
        listed(&mut c).await[0].1,
        vec![d("nvidia.com/gpu", &["gpu-1"], Some(vec![1]))]
    );
    running.stop().await.unwrap();
}

/// With NRI the reconcile loop looks at the checkpoint on every pass: a new version is read
/// and a bad one logged and counted even when no client calls PodResources.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_reconcile_loop_reads_the_checkpoint_without_any_call() {
    use nmm_agent::nri::NriAgent;
    use nmm_agent::reconcile::{run_reconciler, ReconcileOptions};
    use std::time::Duration;
    let state = tempfile::tempdir().unwrap();
    let root = tempfile::tempdir().unwrap();
    let opts = DeviceOptions::kubelet_root(root.path(), registered());
    let path = opts.checkpoint.clone().unwrap();
    let (agent, _) = Agent::start(AgentOptions {
        machine: testkit::machine(),
        kubelet: testkit::kubelet_config(),
        state_dir: state.path().to_path_buf(),
        reconcile: None,
        cgroup_root: None,
        devices: opts,
    })
    .unwrap();
    assert_eq!(agent.devices().status(), CheckpointStatus::Missing);
    let handler = Arc::new(NriAgent::with_logger(Arc::new(agent), |_| {}));
    let (stop, rx) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(run_reconciler(
        handler.clone(),
        ReconcileOptions {
            cri_socket: None,
            interval: Duration::from_millis(20),
            compact_idle: Duration::from_secs(60),
        },
        rx,
    ));
    // Eventually (bounded at 10 s, a liveness bound, not a timing assertion).
    async fn until(what: &str, f: impl Fn() -> bool) {
        for _ in 0..1000 {
            if f() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("the reconcile loop never got to: {what}");
    }
    let good = checkpoint(&[(UID_TRAIN, "main", "nvidia.com/gpu", 1, &["gpu-1"])]);
    replace(&path, &good);
    let agent = handler.agent().clone();
    until("the new checkpoint read", || {
        agent.devices().status() == CheckpointStatus::Loaded { pods: 1 }
    })
    .await;
    replace(&path, &good.replace("\"Checksum\":", "\"Checksum\":9"));
    until("the corrupted checkpoint counted", || {
        errors_metric(&agent) == "nmm_device_checkpoint_read_errors_total 1"
    })
    .await;
    // The last good view stayed.
    assert_eq!(
        agent
            .devices()
            .view()
            .topology_devices_of(UID_TRAIN, "main")
            .len(),
        1
    );
    stop.send(true).unwrap();
    task.await.unwrap();
}
