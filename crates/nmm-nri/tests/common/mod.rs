//! Shared test fixtures: a recording handler and pod/container builders.
#![allow(dead_code)]

use nmm_core::pod::QosClass;
use nmm_nri::*;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Records every event; admits containers with `pod_info_from_nri`:
/// Guaranteed containers with integer CPUs get `cpus = "2-3"`, `mems = "0"` and the
/// shared containers seen so far are shrunk to `"0-1"`; others get `mems = "0-1"`.
/// Malformed pods are rejected with reason `InvalidPod`; a container annotated
/// `test/reject` is rejected as the kubelet would on a topology failure.
#[derive(Default)]
pub struct Recorder {
    pub events: Mutex<Vec<String>>,
    pub synced: Mutex<(Vec<PodSandbox>, Vec<Container>)>,
    pub shared: Mutex<Vec<String>>,
    pub runtime: Mutex<Option<RuntimeInfo>>,
    pub sleep: Mutex<Option<Duration>>,
    pub panic_next: Mutex<bool>,
}

impl Recorder {
    pub fn log(&self, s: String) {
        self.events.lock().unwrap().push(s);
    }
    pub fn events(&self) -> Vec<String> {
        self.events.lock().unwrap().clone()
    }
}

impl NriHandler for Recorder {
    fn configure(&self, rt: &RuntimeInfo) {
        *self.runtime.lock().unwrap() = Some(rt.clone());
        self.log(format!("configure {}", rt.runtime_name));
    }
    fn synchronize(&self, pods: &[PodSandbox], containers: &[Container]) -> Vec<ContainerUpdate> {
        self.log(format!("synchronize {} {}", pods.len(), containers.len()));
        *self.synced.lock().unwrap() = (pods.to_vec(), containers.to_vec());
        containers
            .iter()
            .map(|c| ContainerUpdate {
                container_id: c.id.clone(),
                cpuset_cpus: Some("0-7".into()),
                cpuset_mems: None,
                ignore_failure: true,
            })
            .collect()
    }
    fn run_pod_sandbox(&self, pod: &PodSandbox) {
        self.log(format!("run_pod_sandbox {}", pod.name));
    }
    fn stop_pod_sandbox(&self, pod: &PodSandbox) {
        self.log(format!("stop_pod_sandbox {}", pod.name));
    }
    fn remove_pod_sandbox(&self, pod: &PodSandbox) {
        self.log(format!("remove_pod_sandbox {}", pod.name));
    }
    fn create_container(
        &self,
        pod: &PodSandbox,
        container: &Container,
    ) -> Result<ContainerAdjustment, Rejection> {
        if let Some(d) = *self.sleep.lock().unwrap() {
            std::thread::sleep(d);
        }
        if std::mem::take(&mut *self.panic_next.lock().unwrap()) {
            panic!("handler bug");
        }
        self.log(format!("create_container {}/{}", pod.name, container.name));
        if container.annotations.contains_key("test/reject") {
            return Err(Rejection::new(
                "TopologyAffinityError",
                "Resources cannot be allocated with Topology locality",
            ));
        }
        let info = pod_info_from_nri(pod, std::slice::from_ref(container))
            .map_err(|e| Rejection::new("InvalidPod", e))?;
        let c = &info.containers[0];
        let cpu = c.requests.get("cpu").map(|q| q.milli_value()).unwrap_or(0);
        if info.qos == QosClass::Guaranteed && cpu % 1000 == 0 && cpu > 0 {
            let mut shared = self.shared.lock().unwrap();
            let updates = shared
                .iter()
                .map(|id| ContainerUpdate {
                    container_id: id.clone(),
                    cpuset_cpus: Some("0-1".into()),
                    cpuset_mems: None,
                    ignore_failure: false,
                })
                .collect();
            shared.clear();
            Ok(ContainerAdjustment {
                cpuset_cpus: Some("2-3".into()),
                cpuset_mems: Some("0".into()),
                annotations: BTreeMap::new(),
                updates,
            })
        } else {
            self.shared.lock().unwrap().push(container.id.clone());
            Ok(ContainerAdjustment {
                cpuset_mems: Some("0-1".into()),
                ..Default::default()
            })
        }
    }
    fn update_container(
        &self,
        pod: &PodSandbox,
        container: &Container,
        resources: Option<&LinuxResources>,
    ) -> Vec<ContainerUpdate> {
        self.log(format!(
            "update_container {}/{} {:?}",
            pod.name,
            container.name,
            resources.and_then(|r| r.cpu_shares)
        ));
        vec![ContainerUpdate {
            container_id: container.id.clone(),
            cpuset_cpus: Some("2-3".into()),
            cpuset_mems: Some("0".into()),
            ignore_failure: false,
        }]
    }
    fn stop_container(&self, pod: &PodSandbox, container: &Container) -> Vec<ContainerUpdate> {
        self.log(format!("stop_container {}/{}", pod.name, container.name));
        vec![]
    }
    fn remove_container(&self, pod: &PodSandbox, container: &Container) {
        self.log(format!("remove_container {}/{}", pod.name, container.name));
    }
    fn shutdown(&self) {
        self.log("shutdown".into());
    }
}

pub fn pod(name: &str, uid: &str, qos: &str) -> PodSandbox {
    let sys_uid = uid.replace('-', "_");
    let cgroup_parent = match qos {
        "guaranteed" => format!("kubepods-pod{sys_uid}.slice"),
        q => format!("kubepods-{q}-pod{sys_uid}.slice"),
    };
    PodSandbox {
        id: format!("sandbox-{name}"),
        name: name.into(),
        uid: uid.into(),
        namespace: "default".into(),
        cgroup_parent,
        ..Default::default()
    }
}

/// A container as containerd shows it: CFS quota for the CPU limit, shares for the
/// request, memory limit in bytes.
pub fn container(
    pod: &PodSandbox,
    name: &str,
    cpu_limit_m: Option<i64>,
    cpu_request_m: Option<u64>,
    mem_limit: Option<i64>,
) -> Container {
    let res = LinuxResources {
        cpu_shares: Some(cpu_request_m.map_or(2, |m| (m * 1024 / 1000).max(2))),
        cpu_quota: Some(cpu_limit_m.map_or(-1, |m| m * 100)),
        cpu_period: Some(100_000),
        memory_limit: mem_limit,
        ..Default::default()
    };
    Container {
        id: format!("ctr-{}-{name}", pod.name),
        pod_sandbox_id: pod.id.clone(),
        name: name.into(),
        state: ContainerState::Created,
        resources: Some(res),
        cgroups_path: format!(
            "{}:cri-containerd:ctr-{}-{name}",
            pod.cgroup_parent, pod.name
        ),
        ..Default::default()
    }
}

pub fn guaranteed(name: &str, uid: &str, cpus: i64) -> (PodSandbox, Container) {
    let p = pod(name, uid, "guaranteed");
    let c = container(
        &p,
        "app",
        Some(cpus * 1000),
        Some(cpus as u64 * 1000),
        Some(1 << 30),
    );
    (p, c)
}

pub fn burstable(name: &str, uid: &str) -> (PodSandbox, Container) {
    let p = pod(name, uid, "burstable");
    let c = container(&p, "app", None, Some(250), None);
    (p, c)
}

pub struct Env {
    pub _dir: tempfile::TempDir,
    pub path: PathBuf,
}

pub fn env() -> Env {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nri.sock");
    Env { _dir: dir, path }
}

/// Starts `NriPlugin::connect(..).run()` in the background.
pub fn spawn_plugin(
    path: &std::path::Path,
    handler: Arc<Recorder>,
) -> tokio::task::JoinHandle<Result<(), NriError>> {
    let path = path.to_path_buf();
    tokio::spawn(async move {
        let p = NriPlugin::connect(&path, "nmm", "10", handler).await?;
        p.run().await
    })
}

pub async fn join(h: tokio::task::JoinHandle<Result<(), NriError>>) -> Result<(), NriError> {
    tokio::time::timeout(Duration::from_secs(10), h)
        .await
        .expect("plugin did not stop")
        .expect("plugin task panicked")
}
