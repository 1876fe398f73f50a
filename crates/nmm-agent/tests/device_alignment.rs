//! The kubelet's device allocations as hints of the agent's admissions, over NRI (the fake
//! runtime): the kubelet's Device Manager has allocated a pod's devices and written them
//! into `device-plugins/kubelet_internal_checkpoint` before containerd creates its
//! containers; the agent's Topology Manager merge then takes their NUMA nodes, so the
//! CPUs and memory follow the devices, and `single-numa-node` rejects what cannot be
//! aligned. NRI shows no extended resources: the devices come from the checkpoint only.
//!
//! The oracle is the kubelet with its own managers on (nmm-core's `Node` with the same
//! devices and the same device checkpoint, the pod's device limits in its spec).

mod support;

use support::Plugin;

use k8s_openapi::api::core::v1::Pod;
use nmm_agent::agent::container_cpuset;
use nmm_agent::agent::device_hints::ANNOTATION;
use nmm_agent::daemon::{self, Endpoints};
use nmm_agent::devices::DeviceOptions;
use nmm_agent::testkit;
use nmm_agent::{Agent, AgentOptions};
use nmm_core::checkpoint::device::{encode, DeviceCheckpoint};
use nmm_core::devicemanager::pod_devices::AllocInfo;
use nmm_core::devicemanager::Device;
use nmm_core::node::{Node, RawCheckpoint, StartOptions};
use nmm_core::pod::PodInfo;
use nmm_nri::fake::{FakePlugin, FakeRuntime};
use nmm_nri::*;
use serde_json::json;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

const GI: i64 = 1 << 30;
const NIC: &str = "example.com/nic";
/// Pods the kubelet gave a NIC on node 1.
const U1: &str = "00000000-0000-4000-8000-0000000000a1";
const U2: &str = "00000000-0000-4000-8000-0000000000a2";
/// A pod the checkpoint does not name.
const U3: &str = "00000000-0000-4000-8000-0000000000a3";
/// A pod the checkpoint names but the agent never sees.
const GHOST: &str = "00000000-0000-4000-8000-0000000000ff";

/// `machine.devices`: one NIC on node 0, two on node 1.
fn registered() -> Vec<Device> {
    [("nic-0", 0), ("nic-1", 1), ("nic-2", 1)]
        .into_iter()
        .map(|(id, n)| Device {
            resource: NIC.into(),
            id: id.into(),
            numa: Some(vec![n]),
            healthy: true,
        })
        .collect()
}

/// The kubelet's device checkpoint: (pod uid, container, NUMA node, NIC id).
fn checkpoint(entries: &[(&str, &str, i64, &str)]) -> String {
    let mut cp = DeviceCheckpoint::default();
    for (uid, c, node, id) in entries {
        let mut info = AllocInfo::default();
        info.by_numa.insert(*node, [id.to_string()].into());
        cp.pod_devices.insert(uid, c, NIC, info);
    }
    cp.registered.insert(
        NIC.into(),
        ["nic-0", "nic-1", "nic-2"]
            .into_iter()
            .map(String::from)
            .collect(),
    );
    encode(&cp)
}

/// The kubelet's allocations of this test: U1 and U2 on node 1, GHOST on node 0.
fn kubelet_checkpoint() -> String {
    checkpoint(&[
        (U1, "app", 1, "nic-1"),
        (U2, "app", 1, "nic-2"),
        (GHOST, "app", 0, "nic-0"),
    ])
}

/// Replaces the file as the kubelet's checkpoint store does: temporary file, rename.
fn replace(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

fn start_agent(state: &Path, kubelet_root: &Path) -> Arc<Agent> {
    let (agent, _) = Agent::start(AgentOptions {
        machine: testkit::machine(),
        kubelet: testkit::kubelet_config(),
        state_dir: state.to_path_buf(),
        reconcile: None,
        cgroup_root: None,
        devices: DeviceOptions::kubelet_root(kubelet_root, registered()),
    })
    .unwrap();
    Arc::new(agent)
}

/// The kubelet with its own managers on: same devices, same device checkpoint.
fn kubelet_node(dir: &Path, device_checkpoint: &str) -> Node {
    Node::start(
        testkit::machine(),
        testkit::kubelet_config(),
        StartOptions {
            state_dir: dir.display().to_string(),
            devices: registered(),
            device_checkpoint: Some(RawCheckpoint::Bytes(device_checkpoint.as_bytes().to_vec())),
            ..Default::default()
        },
    )
    .unwrap()
}

/// The pod as the API server has it: CPUs, memory and one NIC (when `nic`).
fn api_pod(uid: &str, name: &str, cpus: i64, nic: bool) -> Pod {
    let mut r = json!({"cpu": cpus.to_string(), "memory": "1Gi"});
    if nic {
        r[NIC] = json!("1");
    }
    serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": "default", "uid": uid},
        "spec": {"containers": [{"name": "app", "image": "x",
            "resources": {"requests": r.clone(), "limits": r}}]}
    }))
    .unwrap()
}

/// A Guaranteed pod as NRI shows it (systemd cgroup driver): no extended resources.
fn nri_pod(name: &str, uid: &str, cpus: i64) -> (PodSandbox, Container) {
    let cg = format!("kubepods-pod{}.slice", uid.replace('-', "_"));
    let p = PodSandbox {
        id: format!("sandbox-{name}"),
        name: name.into(),
        uid: uid.into(),
        namespace: "default".into(),
        cgroup_parent: cg.clone(),
        ..Default::default()
    };
    let c = Container {
        id: format!("ctr-{name}"),
        pod_sandbox_id: p.id.clone(),
        name: "app".into(),
        state: ContainerState::Created,
        resources: Some(LinuxResources {
            cpu_shares: Some(cpus as u64 * 1024),
            cpu_quota: Some(cpus * 100_000),
            cpu_period: Some(100_000),
            memory_limit: Some(GI),
            ..Default::default()
        }),
        cgroups_path: format!("{cg}:cri-containerd:ctr-{name}"),
        ..Default::default()
    };
    (p, c)
}

async fn accept(rt: &FakeRuntime) -> FakePlugin {
    tokio::time::timeout(Duration::from_secs(10), rt.accept(&[], &[]))
        .await
        .expect("the plugin connects")
        .unwrap()
}

fn node1_cpus() -> nmm_core::cpuset::CpuSet {
    testkit::machine().nodes[1].cpus.clone()
}

struct Fixture {
    _dir: tempfile::TempDir,
    state: PathBuf,
    kubelet_root: PathBuf,
    kubelet_dir: PathBuf,
    socket: PathBuf,
}

fn fixture() -> Fixture {
    let d = tempfile::tempdir().unwrap();
    Fixture {
        state: d.path().join("state"),
        kubelet_root: d.path().join("kubelet"),
        kubelet_dir: d.path().join("kubelet-oracle"),
        socket: d.path().join("nri.sock"),
        _dir: d,
    }
}

fn device_checkpoint_path(root: &Path) -> PathBuf {
    root.join(nmm_core::devicemanager::STATE_FILE)
}

/// A NIC on node 1 pulls the pod's CPUs and memory to node 1; a pod whose NIC is on a
/// node without room is rejected under `single-numa-node` with the kubelet's words,
/// although it would fit on the other node; a pod the checkpoint does not name goes
/// where it went before. Each answer is the kubelet's with its own managers on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nic_on_node_1_pulls_cpus_and_memory_and_single_numa_node_rejects() {
    let fx = fixture();
    let cp = kubelet_checkpoint();
    replace(&device_checkpoint_path(&fx.kubelet_root), &cp);
    let agent = start_agent(&fx.state, &fx.kubelet_root);
    let rt = FakeRuntime::listen(&fx.socket).unwrap();
    let plugin = Plugin::spawn(agent.clone(), rt.path());
    let mut fp = accept(&rt).await;
    let mut kubelet = kubelet_node(&fx.kubelet_dir, &cp);

    // U1: 2 CPUs, 1Gi, its NIC on node 1. Without the NIC it would get node 0.
    let (p1, c1) = nri_pod("p1", U1, 2);
    fp.run_pod_sandbox(&p1).await.unwrap();
    let r = fp.create_container(&p1, &c1).await.unwrap();
    let k = kubelet
        .admit(&PodInfo::from_pod(&api_pod(U1, "p1", 2, true), false).unwrap())
        .unwrap();
    assert!(k.admitted);
    let want = container_cpuset(&kubelet, U1, "app");
    assert_eq!(r.adjustment.cpuset_mems.as_deref(), Some("1"));
    assert_eq!(r.adjustment.cpuset_cpus, want.cpus_text());
    assert_eq!(r.adjustment.cpuset_mems, want.mems_text());
    let cpus = want.cpus.clone().unwrap();
    assert_eq!(cpus.len(), 2);
    assert!(cpus.is_subset_of(&node1_cpus()), "{cpus}");
    // The agent's record keeps the hints it admitted with (for journal replay).
    let recorded = agent.inspect(|_, pods| pods[0].1.clone());
    let note = &recorded.metadata.annotations.as_ref().unwrap()[ANNOTATION];
    assert!(note.contains("nic-1"), "{note}");

    // U2: 7 CPUs, its NIC on node 1, where 6 are left: the kubelet's rejection, though
    // node 0 has 7 free.
    let (p2, c2) = nri_pod("p2", U2, 7);
    fp.run_pod_sandbox(&p2).await.unwrap();
    let err = fp.create_container(&p2, &c2).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "rpc error: code = Unknown desc = TopologyAffinityError: Resources cannot be allocated with Topology locality"
    );
    let k = kubelet
        .admit(&PodInfo::from_pod(&api_pod(U2, "p2", 7, true), false).unwrap())
        .unwrap();
    assert!(!k.admitted);
    assert_eq!(k.reason.as_deref(), Some("TopologyAffinityError"));
    assert_eq!(agent.books().pods, vec![U1.to_string()]);

    // U3: the same 7 CPUs, no device in the checkpoint: node 0, as without devices.
    let (p3, c3) = nri_pod("p3", U3, 7);
    fp.run_pod_sandbox(&p3).await.unwrap();
    let r = fp.create_container(&p3, &c3).await.unwrap();
    let k = kubelet
        .admit(&PodInfo::from_pod(&api_pod(U3, "p3", 7, false), false).unwrap())
        .unwrap();
    assert!(k.admitted);
    assert_eq!(r.adjustment.cpuset_mems.as_deref(), Some("0"));
    assert_eq!(
        r.adjustment.cpuset_cpus,
        container_cpuset(&kubelet, U3, "app").cpus_text()
    );

    // The books are the kubelet's (the pod the agent never saw, GHOST, changes nothing).
    let books = agent.books();
    assert_eq!(books.cpu_checkpoint, kubelet.cpu_checkpoint());
    assert_eq!(books.memory_checkpoint, kubelet.memory_checkpoint());
    assert_eq!(books.pods, vec![U1.to_string(), U3.to_string()]);

    // PodResources over gRPC says the same: U1's CPUs, memory and NIC all on node 1.
    let running = daemon::serve(
        agent.clone(),
        &Endpoints {
            podresources_socket: Some(fx.state.join("pr.sock")),
            metrics_addr: None,
        },
    )
    .await
    .unwrap();
    let mut grpc = support::client(&fx.state.join("pr.sock")).await;
    let got = support::get_pod(&mut grpc, "p1").await;
    let c = &got.containers[0];
    let node1: Vec<i64> = node1_cpus().iter().map(i64::from).collect();
    assert_eq!(c.cpu_ids.len(), 2);
    assert!(
        c.cpu_ids.iter().all(|id| node1.contains(id)),
        "{:?}",
        c.cpu_ids
    );
    let mem_nodes: Vec<i64> = c
        .memory
        .iter()
        .flat_map(|m| m.topology.iter().flat_map(|t| t.nodes.iter().map(|n| n.id)))
        .collect();
    assert_eq!(mem_nodes, vec![1]);
    let devs: Vec<(String, Vec<String>, Vec<i64>)> = c
        .devices
        .iter()
        .map(|d| {
            (
                d.resource_name.clone(),
                d.device_ids.clone(),
                d.topology
                    .iter()
                    .flat_map(|t| t.nodes.iter().map(|n| n.id))
                    .collect(),
            )
        })
        .collect();
    assert_eq!(
        devs,
        vec![(NIC.to_string(), vec!["nic-1".to_string()], vec![1])]
    );
    running.stop().await.unwrap();
    plugin.stop().await;
}

/// No checkpoint yet: no device hints (node 0). The kubelet writes it: the next
/// admission reads it (no PodResources call, no reconcile loop) and follows the NIC. A
/// checkpoint replaced by a corrupted one keeps the last good allocations.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_then_written_then_corrupted_checkpoint() {
    let fx = fixture();
    let agent = start_agent(&fx.state, &fx.kubelet_root);
    let rt = FakeRuntime::listen(&fx.socket).unwrap();
    let plugin = Plugin::spawn(agent.clone(), rt.path());
    let mut fp = accept(&rt).await;

    let (p1, c1) = nri_pod("p1", U1, 2);
    fp.run_pod_sandbox(&p1).await.unwrap();
    let r = fp.create_container(&p1, &c1).await.unwrap();
    assert_eq!(r.adjustment.cpuset_mems.as_deref(), Some("0"));

    replace(
        &device_checkpoint_path(&fx.kubelet_root),
        &kubelet_checkpoint(),
    );
    let (p2, c2) = nri_pod("p2", U2, 2);
    fp.run_pod_sandbox(&p2).await.unwrap();
    let r = fp.create_container(&p2, &c2).await.unwrap();
    assert_eq!(r.adjustment.cpuset_mems.as_deref(), Some("1"));
    let cpus = nmm_core::cpuset::CpuSet::parse(&r.adjustment.cpuset_cpus.unwrap()).unwrap();
    assert!(cpus.is_subset_of(&node1_cpus()), "{cpus}");

    // A checkpoint with a bad checksum: the allocations read before stay.
    let bad = kubelet_checkpoint().replace("\"Checksum\":", "\"Checksum\":1");
    assert_ne!(bad, kubelet_checkpoint());
    replace(&device_checkpoint_path(&fx.kubelet_root), &bad);
    fp.remove_pod_sandbox(&p2).await.unwrap();
    let (p2b, c2b) = nri_pod("p2b", U2, 2);
    let p2b = PodSandbox {
        id: "sandbox-p2-again".into(),
        ..p2b
    };
    let c2b = Container {
        pod_sandbox_id: p2b.id.clone(),
        ..c2b
    };
    fp.run_pod_sandbox(&p2b).await.unwrap();
    let r = fp.create_container(&p2b, &c2b).await.unwrap();
    assert_eq!(r.adjustment.cpuset_mems.as_deref(), Some("1"));
    plugin.stop().await;
}

/// The hints are part of the change journal: an agent killed before compaction replays
/// its admissions with the devices they were made with, even after the kubelet's
/// checkpoint is gone (replayed without them, U1 would get node 0 and the start stop).
#[test]
fn journal_replay_uses_the_devices_recorded_with_the_admission() {
    let fx = fixture();
    replace(
        &device_checkpoint_path(&fx.kubelet_root),
        &kubelet_checkpoint(),
    );
    let agent = start_agent(&fx.state, &fx.kubelet_root);
    let pod = testkit::pod(U1, "p1", &[("app", "2", "1Gi", None)], &[]);
    let r = agent.admit_pod(&pod).unwrap();
    assert!(r.admitted);
    assert_eq!(
        container_cpuset_of(&agent, U1).mems_text().as_deref(),
        Some("1")
    );
    let other = testkit::pod(U3, "p3", &[("app", "2", "1Gi", None)], &[]);
    assert!(agent.admit_pod(&other).unwrap().admitted);
    let books = agent.books();
    assert!(agent.pending_changes() > 0);
    let journal = std::fs::read_to_string(fx.state.join("nmm_agent_ops")).unwrap();
    assert!(journal.contains("nmm.io/kubelet-devices"), "{journal}");
    // "SIGKILL": no clean-stop compaction, the lock released as the kernel would.
    agent.release_lock_as_if_killed();
    std::mem::forget(agent);

    std::fs::remove_file(device_checkpoint_path(&fx.kubelet_root)).unwrap();
    let (agent, report) = Agent::start(AgentOptions {
        machine: testkit::machine(),
        kubelet: testkit::kubelet_config(),
        state_dir: fx.state.clone(),
        reconcile: None,
        cgroup_root: None,
        devices: DeviceOptions::kubelet_root(&fx.kubelet_root, registered()),
    })
    .unwrap();
    assert_eq!(report.replayed_changes, 2);
    assert_eq!(agent.books(), books);
    assert_eq!(
        container_cpuset_of(&agent, U1).mems_text().as_deref(),
        Some("1")
    );
}

fn container_cpuset_of(agent: &Agent, uid: &str) -> nmm_agent::ContainerCpuset {
    agent.container_started(uid, "app").unwrap()
}
