//! The agent as an NRI plugin: pod and container lifecycle events from the container
//! runtime (containerd, CRI-O) drive the agent's books, and the answers carry the
//! cpusets the kubelet would give (`linux.resources.cpu.cpus` / `.mems`).
//!
//! * [`NriAgent`] implements [`nmm_nri::NriHandler`] over an [`Agent`].
//! * [`serve_nri`] connects, serves, and reconnects with backoff until told to stop.
//! * [`run_until_signal`] is [`crate::daemon::run_until_signal`] plus the NRI plugin.
//!
//! How a pod is rebuilt from what NRI shows (limits, cgroup parent, annotations) is
//! [`nmm_nri::pod_info_from_nri`]; see `docs/nri.md` and `docs/agent.md`.
//!
//! **Whole pods from one container at a time.** The kubelet admits a pod with all its
//! containers; NRI shows one container per `CreateContainer`. The pod is admitted when
//! its first container is created, with the containers named by the pod annotations
//! `nmm.io/requests` and `nmm.io/init-containers` (placeholders built from the
//! annotation's requests for those not created yet) plus the containers created so far.
//! A later container the admitted pod does not hold is added by admitting the pod again
//! with it (remove, then admit; on rejection the previous pod is admitted back and the
//! container is refused). Under the `container` Topology Manager scope, with containers
//! created in spec order, that gives the kubelet's allocations; under the `pod` scope
//! the first admission only saw part of the pod.

use crate::agent::{Agent, AgentError, Tx};
use crate::daemon::{self, Endpoints, Running};
use crate::reconcile::{cpuset_texts, shared_text, State, Tracked};
use crate::reconcile::{run_reconciler, ReconcileOptions};
use anyhow::{Context, Result};
use k8s_openapi::api::core::v1::{
    Container as K8sContainer, Pod, PodSpec, PodStatus, ResourceRequirements,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity as K8sQuantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use nmm_core::node::AdmitResult;
use nmm_core::pod::{ContainerInfo, PodInfo, QosClass};
use nmm_core::quantity::Quantity;
use nmm_nri::podinfo::{
    parse_kubepods_cgroup, INIT_CONTAINERS_ANNOTATION, SIDECAR_CONTAINERS_ANNOTATION,
};
use nmm_nri::{
    pod_info_from_nri, Container, ContainerAdjustment, ContainerState, ContainerUpdate,
    LinuxResources, NriHandler, NriPlugin, PluginHandle, PodSandbox, Rejection, RuntimeInfo,
    REQUESTS_ANNOTATION,
};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tokio::sync::{watch, Notify};

/// The NRI plugin library, re-exported (its fake runtime serves tests of `nmm agent`).
pub use nmm_nri;

/// The plugin's registration name.
pub const PLUGIN_NAME: &str = "nmm";
/// The plugin's invocation index (plugins are called in ascending index order).
pub const PLUGIN_INDEX: &str = "10";

/// The kubelet's reason for admission failures that are not the managers' verdict.
pub const UNEXPECTED_ADMISSION_ERROR: &str = "UnexpectedAdmissionError";
/// The reason given when NRI's view of a pod cannot be turned into a pod.
pub const INVALID_POD: &str = "InvalidPod";

/// What one synchronization did (also logged).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyncReport {
    /// `namespace/name` of pods admitted because the books did not know them.
    pub admitted: Vec<String>,
    /// `namespace/name/container` of containers the runtime created while the agent
    /// was away, in pods the books knew: added to their pods.
    pub adopted: Vec<String>,
    /// `namespace/name` and why, for running pods (or adopted containers) that could
    /// not be admitted.
    pub rejected: Vec<(String, String)>,
    /// Pod uids removed from the books because the runtime no longer runs them.
    pub removed: Vec<String>,
    /// Containers whose cpuset is to be updated.
    pub updates: usize,
}

/// [`NriHandler`] over an [`Agent`].
pub struct NriAgent {
    agent: Arc<Agent>,
    state: Mutex<State>,
    last_sync: Mutex<Option<SyncReport>>,
    log: Box<dyn Fn(&str) + Send + Sync>,
    /// The connected plugin, for unsolicited updates.
    handle: Mutex<Option<PluginHandle>>,
    wake: Notify,
    list_due: AtomicBool,
}

impl std::fmt::Debug for NriAgent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NriAgent").finish_non_exhaustive()
    }
}

/// The pod UID NRI shows: `uid`, else the one in the pod's cgroup parent.
pub fn sandbox_uid(pod: &PodSandbox) -> Option<String> {
    if !pod.uid.is_empty() {
        return Some(pod.uid.clone());
    }
    parse_kubepods_cgroup(&pod.cgroup_parent).and_then(|(_, u)| u)
}

fn pod_key(pod: &PodSandbox) -> String {
    let ns = if pod.namespace.is_empty() {
        "default"
    } else {
        &pod.namespace
    };
    format!("{ns}/{}", pod.name)
}

fn k8s_list(m: &BTreeMap<String, Quantity>) -> Option<BTreeMap<String, K8sQuantity>> {
    (!m.is_empty()).then(|| {
        m.iter()
            .map(|(k, q)| (k.clone(), K8sQuantity(q.to_string())))
            .collect()
    })
}

fn k8s_container(c: &ContainerInfo) -> K8sContainer {
    let requests = k8s_list(&c.requests);
    let limits = k8s_list(&c.limits);
    K8sContainer {
        name: c.name.clone(),
        resources: (requests.is_some() || limits.is_some()).then(|| ResourceRequirements {
            requests,
            limits,
            ..Default::default()
        }),
        restart_policy: c.restartable.then(|| "Always".to_string()),
        ..Default::default()
    }
}

/// A v1 Pod carrying exactly what the managers read of `info` (the form the agent
/// admits and records). The QoS class is pinned in `status.qosClass`.
///
/// One difference with `info`: a resource with a limit and no request gets its limit as
/// request when read back ([`PodInfo::from_pod`] does the API server's defaulting). NRI
/// cannot show a Burstable container's memory request (without MemoryQoS), so such a
/// container is recorded with request = limit; the managers allocate nothing for
/// Burstable pods either way.
pub fn pod_from_info(info: &PodInfo) -> Pod {
    let init: Vec<K8sContainer> = info.init_containers().map(k8s_container).collect();
    Pod {
        metadata: ObjectMeta {
            name: Some(info.name.clone()),
            namespace: Some(info.namespace.clone()),
            uid: Some(info.uid.clone()),
            ..Default::default()
        },
        spec: Some(PodSpec {
            containers: info.app_containers().map(k8s_container).collect(),
            init_containers: (!init.is_empty()).then_some(init),
            ..Default::default()
        }),
        status: Some(PodStatus {
            qos_class: Some(info.qos.as_str().to_string()),
            ..Default::default()
        }),
    }
}

/// Containers named by the pod's annotations (`nmm.io/init-containers`, then the keys
/// of `nmm.io/requests` in their order) that are not in `have`, with resources built
/// from the annotation's requests the way the kubelet would hand them to the runtime
/// (shares from the CPU request; for Guaranteed pods also the CFS quota and the memory
/// limit), so that [`pod_info_from_nri`] reads them back as the annotation says.
fn placeholders(pod: &PodSandbox, have: &[Container]) -> Vec<Container> {
    let mut names: Vec<String> = Vec::new();
    let list = |key: &str| -> Vec<String> {
        pod.annotations
            .get(key)
            .map(|v| {
                v.split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(String::from)
                    .collect()
            })
            .unwrap_or_default()
    };
    names.extend(list(INIT_CONTAINERS_ANNOTATION));
    names.extend(list(SIDECAR_CONTAINERS_ANNOTATION));
    let requests: serde_json::Map<String, serde_json::Value> = pod
        .annotations
        .get(REQUESTS_ANNOTATION)
        .and_then(|t| serde_json::from_str::<serde_json::Value>(t).ok())
        .and_then(|v| v.as_object().cloned())
        .unwrap_or_default();
    names.extend(requests.keys().cloned());
    let guaranteed =
        parse_kubepods_cgroup(&pod.cgroup_parent).is_some_and(|(q, _)| q == QosClass::Guaranteed);
    let mut seen: BTreeSet<String> = have.iter().map(|c| c.name.clone()).collect();
    let mut out = Vec::new();
    for name in names {
        if !seen.insert(name.clone()) {
            continue;
        }
        let q = |res: &str| -> Option<Quantity> {
            let v = requests.get(&name)?.get(res)?;
            let text = match v {
                serde_json::Value::String(s) => s.clone(),
                serde_json::Value::Number(n) => n.to_string(),
                _ => return None,
            };
            Quantity::parse(text.trim()).ok()
        };
        let mut r = LinuxResources::default();
        if let Some(cpu) = q("cpu") {
            let m = cpu.milli_value();
            r.cpu_shares = Some(((m.max(0) as u64) * 1024 / 1000).max(2));
            if guaranteed {
                r.cpu_quota = Some(m * 100);
                r.cpu_period = Some(100_000);
            }
        }
        if guaranteed {
            r.memory_limit = q("memory").map(|m| m.value());
        }
        out.push(Container {
            id: String::new(),
            pod_sandbox_id: pod.id.clone(),
            name,
            state: ContainerState::Unknown,
            resources: Some(r),
            ..Default::default()
        });
    }
    out
}

fn rejection(r: &AdmitResult) -> Rejection {
    Rejection::new(
        r.reason
            .clone()
            .unwrap_or_else(|| UNEXPECTED_ADMISSION_ERROR.into()),
        r.message.clone().unwrap_or_default(),
    )
}

/// The kubelet's wording for an admission that failed for another reason than the
/// managers' verdict (`UnexpectedAdmissionError`, "Allocate failed due to ..., which is
/// unexpected").
fn agent_rejection(e: &AgentError) -> Rejection {
    match e {
        AgentError::MalformedPod { .. } => Rejection::new(INVALID_POD, e.to_string()),
        _ => Rejection::new(
            UNEXPECTED_ADMISSION_ERROR,
            format!("Allocate failed due to {e}, which is unexpected"),
        ),
    }
}

/// Whether the recorded pod holds a container of that name.
fn holds(pod: &Pod, name: &str) -> bool {
    pod.spec.as_ref().is_some_and(|s| {
        s.containers.iter().any(|x| x.name == name)
            || s.init_containers.iter().flatten().any(|x| x.name == name)
    })
}

impl NriAgent {
    /// A handler logging through `tracing` (see [`tracing_logger`]).
    pub fn new(agent: Arc<Agent>) -> NriAgent {
        NriAgent::with_logger(agent, tracing_logger)
    }

    pub fn with_logger(agent: Arc<Agent>, log: impl Fn(&str) + Send + Sync + 'static) -> Self {
        NriAgent {
            agent,
            state: Mutex::new(State::default()),
            last_sync: Mutex::new(None),
            log: Box::new(log),
            handle: Mutex::new(None),
            wake: Notify::new(),
            list_due: AtomicBool::new(false),
        }
    }

    pub fn agent(&self) -> &Arc<Agent> {
        &self.agent
    }

    pub(crate) fn log(&self, m: &str) {
        (self.log)(m)
    }

    /// What the last `synchronize` did.
    pub fn last_sync(&self) -> Option<SyncReport> {
        self.last_sync
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub(crate) fn lock_state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The plugin connection for unsolicited updates (set while connected).
    pub fn set_plugin_handle(&self, h: Option<PluginHandle>) {
        *self.handle.lock().unwrap_or_else(|e| e.into_inner()) = h;
    }

    pub fn plugin_handle(&self) -> Option<PluginHandle> {
        self.handle
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Wakes the reconcile loop ([`crate::reconcile::run_reconciler`]).
    pub fn wake(&self) {
        self.list_due.store(true, Ordering::Release);
        self.wake.notify_one();
    }

    /// Wakes the reconcile loop to send the shared containers' pending cpuset updates
    /// only (no CRI list).
    pub fn wake_updates(&self) {
        self.wake.notify_one();
    }

    /// Whether [`NriAgent::wake`] asked for a CRI list since the last call.
    pub(crate) fn take_list_due(&self) -> bool {
        self.list_due.swap(false, Ordering::AcqRel)
    }

    pub(crate) async fn woken(&self) {
        self.wake.notified().await
    }

    /// Admits `pod`; a rejected pod is then forgotten by the managers (as the kubelet
    /// forgets a pod it rejected), so that it can be admitted again later.
    fn admit(tx: &mut Tx<'_>, pod: &Pod) -> Result<(), Rejection> {
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        let verdict = match tx.admit(pod) {
            Ok(r) if r.admitted => return Ok(()),
            Ok(r) => rejection(&r),
            Err(e) => return Err(agent_rejection(&e)),
        };
        tx.remove(&uid);
        Err(verdict)
    }

    /// Admits a pod the books do not know, with `containers` plus the placeholders its
    /// annotations name.
    fn admit_new(
        tx: &mut Tx<'_>,
        pod: &PodSandbox,
        containers: &[Container],
    ) -> Result<(), Rejection> {
        let mut all = containers.to_vec();
        all.extend(placeholders(pod, containers));
        let info = pod_info_from_nri(pod, &all).map_err(|e| Rejection::new(INVALID_POD, e))?;
        Self::admit(tx, &pod_from_info(&info))
    }

    /// Adds a container the admitted pod `old` does not hold: admit the pod again with
    /// it; on rejection, admit `old` back.
    fn extend(
        &self,
        tx: &mut Tx<'_>,
        pod: &PodSandbox,
        old: &Pod,
        c: &Container,
    ) -> Result<(), Rejection> {
        let one = pod_info_from_nri(pod, std::slice::from_ref(c))
            .map_err(|e| Rejection::new(INVALID_POD, e))?;
        let info = one.containers.first().ok_or_else(|| {
            Rejection::new(INVALID_POD, format!("container {:?}: no resources", c.name))
        })?;
        let mut new = old.clone();
        let spec = new.spec.get_or_insert_with(Default::default);
        if info.init {
            spec.init_containers
                .get_or_insert_with(Vec::new)
                .push(k8s_container(info));
        } else {
            spec.containers.push(k8s_container(info));
        }
        let uid = old.metadata.uid.clone().unwrap_or_default();
        tx.remove(&uid);
        let Err(verdict) = Self::admit(tx, &new) else {
            return Ok(());
        };
        match Self::admit(tx, old) {
            Ok(()) => {}
            other => self.log(&format!(
                "pod {}: could not admit it back after container {:?} was refused: {other:?}",
                pod_key(pod),
                c.name
            )),
        }
        Err(verdict)
    }

    fn create(
        &self,
        st: &mut State,
        pod: &PodSandbox,
        c: &Container,
    ) -> Result<ContainerAdjustment, Rejection> {
        let uid = sandbox_uid(pod).ok_or_else(|| {
            Rejection::new(INVALID_POD, format!("pod {}: no pod UID", pod_key(pod)))
        })?;
        let now = Instant::now();
        st.sandboxes.insert(pod.id.clone(), pod.clone());
        st.seen.insert(uid.clone(), now);
        let siblings = &st.containers;
        let outcome = self.agent.transaction(|tx| -> Result<bool, Rejection> {
            if !tx.knows(&uid) {
                // The pod's first container: admit the pod with what is known of it.
                let mut known: Vec<Container> = siblings
                    .values()
                    .filter(|t| t.sandbox == pod.id && t.name != c.name)
                    .map(|t| t.container.clone())
                    .collect();
                known.insert(0, c.clone());
                Self::admit_new(tx, pod, &known)?;
                Ok(false)
            } else if let Some(old) = tx.recorded(&uid).cloned() {
                if holds(&old, &c.name) {
                    return Ok(false);
                }
                self.extend(tx, pod, &old, c)?;
                Ok(true)
            } else {
                // A pod known only from checkpoints a kubelet wrote; answer its cpuset.
                Ok(false)
            }
        });
        let readmitted = match outcome {
            Ok(Ok(r)) => r,
            Ok(Err(rej)) => return Err(rej),
            Err(e) => return Err(agent_rejection(&e)),
        };
        st.needs_drift |= readmitted;
        let (cpus, mems, updates) = self.agent.inspect_known(|node, _knows| {
            let shared = shared_text(node);
            let (cpus, mems) = cpuset_texts(node, shared.as_deref(), &uid, &c.name);
            st.containers.insert(
                c.id.clone(),
                Tracked {
                    sandbox: pod.id.clone(),
                    uid: uid.clone(),
                    name: c.name.clone(),
                    container: c.clone(),
                    stopped: false,
                    cpus: cpus.clone(),
                    mems: mems.clone(),
                    seen: now,
                    absent: 0,
                },
            );
            // Only the new container's cpuset: the shared containers' pool (which
            // shrank if this container took exclusive CPUs) goes out in an unsolicited
            // UpdateContainers from the reconcile loop right after (woken by
            // `create_container`), as the kubelet's reconcile loop moves them after
            // Allocate. Keeps this answer's cost independent of the number of pods.
            (cpus, mems, Vec::new())
        });
        Ok(ContainerAdjustment {
            cpuset_cpus: cpus,
            cpuset_mems: mems,
            annotations: BTreeMap::new(),
            updates,
        })
    }

    fn sync(
        &self,
        pods: &[PodSandbox],
        containers: &[Container],
    ) -> (Vec<ContainerUpdate>, SyncReport) {
        let mut st = self.lock_state();
        *st = State::default();
        let now = Instant::now();
        let mut report = SyncReport::default();
        let mut by_sandbox: HashMap<&str, Vec<&Container>> = HashMap::new();
        for c in containers {
            by_sandbox.entry(&c.pod_sandbox_id).or_default().push(c);
        }
        for p in pods {
            st.sandboxes.insert(p.id.clone(), p.clone());
        }
        let running: HashSet<String> = pods.iter().filter_map(sandbox_uid).collect();
        // One transaction, one journal record: a synchronization of thousands of pods
        // costs one fdatasync.
        let r = self.agent.transaction(|tx| {
            // Pods the books hold that the runtime no longer runs are gone.
            for uid in tx.uids() {
                if !running.contains(&uid) {
                    tx.remove(&uid);
                    report.removed.push(uid);
                }
            }
            // Pods the books do not know, admitted in the runtime's order; containers
            // created while the agent was away, added to the pods the books know.
            for p in pods {
                let Some(uid) = sandbox_uid(p) else {
                    continue;
                };
                let cs: Vec<Container> = by_sandbox
                    .get(p.id.as_str())
                    .map(|v| v.iter().map(|c| (*c).clone()).collect())
                    .unwrap_or_default();
                if !tx.knows(&uid) {
                    match Self::admit_new(tx, p, &cs) {
                        Ok(()) => report.admitted.push(pod_key(p)),
                        Err(r) => report.rejected.push((pod_key(p), r.to_string())),
                    }
                    continue;
                }
                for c in &cs {
                    let Some(cur) = tx.recorded(&uid).cloned() else {
                        break;
                    };
                    if holds(&cur, &c.name) {
                        continue;
                    }
                    let key = format!("{}/{}", pod_key(p), c.name);
                    match self.extend(tx, p, &cur, c) {
                        Ok(()) => report.adopted.push(key),
                        Err(r) => report.rejected.push((key, r.to_string())),
                    }
                }
            }
        });
        if let Err(e) = r {
            self.log(&format!(
                "synchronization could not be committed ({e}); the books stay as they were"
            ));
            report = SyncReport::default();
        }
        for p in pods {
            let Some(uid) = sandbox_uid(p) else {
                continue;
            };
            st.seen.insert(uid.clone(), now);
            for c in by_sandbox.get(p.id.as_str()).into_iter().flatten() {
                let res = c.resources.clone().unwrap_or_default();
                let text = |s: &str| (!s.is_empty()).then(|| s.to_string());
                st.containers.insert(
                    c.id.clone(),
                    Tracked {
                        sandbox: p.id.clone(),
                        uid: uid.clone(),
                        name: c.name.clone(),
                        stopped: c.state == ContainerState::Stopped,
                        cpus: text(&res.cpuset_cpus),
                        mems: text(&res.cpuset_mems),
                        container: (*c).clone(),
                        seen: now,
                        absent: 0,
                    },
                );
            }
        }
        st.needs_drift = true;
        let updates = self
            .agent
            .inspect_known(|node, knows| st.drift(node, knows, None));
        report.updates = updates.len();
        (updates, report)
    }
}

impl NriHandler for NriAgent {
    fn configure(&self, rt: &RuntimeInfo) {
        self.log(&format!(
            "registered with {} {}",
            rt.runtime_name, rt.runtime_version
        ));
    }

    fn synchronize(&self, pods: &[PodSandbox], containers: &[Container]) -> Vec<ContainerUpdate> {
        let (updates, report) = self.sync(pods, containers);
        self.log(&format!(
            "synchronized {} pods, {} containers: {} admitted, {} containers adopted, {} rejected, {} gone pods removed, {} cpuset updates",
            pods.len(),
            containers.len(),
            report.admitted.len(),
            report.adopted.len(),
            report.rejected.len(),
            report.removed.len(),
            report.updates
        ));
        for (p, why) in &report.rejected {
            self.log(&format!("warning: running pod {p} does not fit: {why}"));
        }
        let m = &self.agent.metrics;
        m.reconciled("nri-sync", "admitted", report.admitted.len());
        m.reconciled("nri-sync", "rejected", report.rejected.len());
        m.reconciled("nri-sync", "removed", report.removed.len());
        m.set_nri_connected(true);
        *self.last_sync.lock().unwrap_or_else(|e| e.into_inner()) = Some(report);
        // After every (re)connection: ask the runtime over CRI what it really runs.
        self.wake();
        updates
    }

    fn run_pod_sandbox(&self, pod: &PodSandbox) {
        let mut st = self.lock_state();
        st.sandboxes.insert(pod.id.clone(), pod.clone());
        if let Some(uid) = sandbox_uid(pod) {
            st.seen.insert(uid, Instant::now());
        }
    }

    fn remove_pod_sandbox(&self, pod: &PodSandbox) {
        let mut st = self.lock_state();
        st.sandboxes.remove(&pod.id);
        st.containers.retain(|_, t| t.sandbox != pod.id);
        if let Some(uid) = sandbox_uid(pod) {
            st.seen.remove(&uid);
            if self.agent.knows(&uid) {
                if let Err(e) = self.agent.remove_pod(&uid) {
                    self.log(&format!("removing pod {}: {e}", pod_key(pod)));
                }
                // The shared pool may have widened: the reconcile loop tells the
                // shared containers (no answer of this event carries updates).
                self.wake_updates();
            }
        }
    }

    fn create_container(
        &self,
        pod: &PodSandbox,
        container: &Container,
    ) -> Result<ContainerAdjustment, Rejection> {
        let mut st = self.lock_state();
        let r = self.create(&mut st, pod, container);
        drop(st);
        if r.is_ok() {
            self.wake_updates();
        }
        if let Err(rej) = &r {
            self.log(&format!(
                "refused container {}/{}: {rej}",
                pod_key(pod),
                container.name
            ));
        }
        r
    }

    fn update_container(
        &self,
        _pod: &PodSandbox,
        container: &Container,
        _resources: Option<&LinuxResources>,
    ) -> Vec<ContainerUpdate> {
        let mut st = self.lock_state();
        let st = &mut *st;
        self.agent.inspect_known(|node, knows| {
            let mut out = Vec::new();
            if let Some(t) = st.containers.get_mut(&container.id) {
                let shared = shared_text(node);
                let (cpus, mems) = cpuset_texts(node, shared.as_deref(), &t.uid, &t.name);
                if cpus.is_some() || mems.is_some() {
                    out.push(ContainerUpdate {
                        container_id: container.id.clone(),
                        cpuset_cpus: cpus.clone(),
                        cpuset_mems: mems.clone(),
                        ignore_failure: false,
                    });
                    t.cpus = cpus;
                    t.mems = mems;
                }
            }
            out.extend(st.drift(node, knows, Some(&container.id)));
            out
        })
    }

    fn stop_container(&self, _pod: &PodSandbox, container: &Container) -> Vec<ContainerUpdate> {
        let mut st = self.lock_state();
        if let Some(t) = st.containers.get_mut(&container.id) {
            t.stopped = true;
        }
        self.agent
            .inspect_known(|node, knows| st.drift(node, knows, Some(&container.id)))
    }

    fn remove_container(&self, _pod: &PodSandbox, container: &Container) {
        self.lock_state().containers.remove(&container.id);
    }
}

/// The plugin's log lines as `tracing` events (target `nmm_agent::nri`): a line starting
/// with `warning: ` is a warning, others are information.
pub fn tracing_logger(m: &str) {
    match m.strip_prefix("warning: ") {
        Some(w) => tracing::warn!(target: "nmm_agent::nri", "{w}"),
        None => tracing::info!(target: "nmm_agent::nri", "{m}"),
    }
}

/// Writes `prefix` + message lines to a duplicate of the stderr file descriptor,
/// bypassing `std::io::stderr()`'s lock: `nmm` holds that lock for the whole command,
/// so `eprintln!` from the plugin's threads would block forever.
pub fn stderr_logger(prefix: &str) -> impl Fn(&str) + Send + Sync + 'static {
    use std::io::Write;
    use std::os::fd::AsFd;
    let prefix = prefix.to_string();
    let file = std::io::stderr()
        .as_fd()
        .try_clone_to_owned()
        .ok()
        .map(|fd| Mutex::new(std::fs::File::from(fd)));
    move |m: &str| {
        if let Some(f) = &file {
            let mut f = f.lock().unwrap_or_else(|e| e.into_inner());
            let _ = f.write_all(format!("{prefix}{m}\n").as_bytes());
        }
    }
}

/// Where and how to connect.
#[derive(Debug, Clone)]
pub struct NriOptions {
    pub socket: PathBuf,
    pub name: String,
    pub index: String,
    /// First wait before reconnecting; doubled after each quick failure.
    pub min_backoff: Duration,
    pub max_backoff: Duration,
}

impl NriOptions {
    pub fn new(socket: impl Into<PathBuf>) -> NriOptions {
        NriOptions {
            socket: socket.into(),
            name: PLUGIN_NAME.into(),
            index: PLUGIN_INDEX.into(),
            min_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(30),
        }
    }
}

async fn stopped(rx: &mut watch::Receiver<bool>) {
    while !*rx.borrow() {
        if rx.changed().await.is_err() {
            // The sender is gone: nobody can stop us any more; never resolve.
            std::future::pending::<()>().await;
        }
    }
}

/// Connects to the runtime's NRI socket and serves `handler`, reconnecting with
/// exponential backoff whenever the socket is missing, registration fails or the
/// runtime closes the connection (it restarted, or dropped the plugin), until `stop`
/// turns true.
pub async fn serve_nri(handler: Arc<NriAgent>, opts: NriOptions, mut stop: watch::Receiver<bool>) {
    let mut backoff = opts.min_backoff;
    let mut last_error = String::new();
    loop {
        if *stop.borrow() {
            return;
        }
        let started = Instant::now();
        let h: Arc<dyn NriHandler> = handler.clone();
        let outcome = tokio::select! {
            _ = stopped(&mut stop) => {
                // The handle holds the connection, whose tasks hold the handler: let go
                // of it so that the agent (and its state directory's lock) can drop.
                handler.set_plugin_handle(None);
                return;
            }
            r = async {
                let plugin = NriPlugin::connect(&opts.socket, &opts.name, &opts.index, h).await?;
                handler.set_plugin_handle(Some(plugin.handle()));
                plugin.run().await
            } => r,
        };
        handler.set_plugin_handle(None);
        handler.agent.metrics.set_nri_connected(false);
        handler.agent.metrics.nri_reconnects.inc();
        let msg = match outcome {
            Ok(()) => "the runtime closed the NRI connection; reconnecting".to_string(),
            Err(e) => format!("warning: {e}; retrying"),
        };
        if started.elapsed() > Duration::from_secs(10) {
            backoff = opts.min_backoff;
        }
        if msg != last_error {
            handler.log(&msg);
            last_error = msg;
        }
        tokio::select! {
            _ = stopped(&mut stop) => return,
            _ = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(opts.max_backoff);
    }
}

/// A multi-threaded tokio runtime (2 workers), as the agent uses.
pub fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

/// [`crate::daemon::run_until_signal`], plus the NRI plugin when `nri` is given (with
/// its reconcile loop, see [`crate::reconcile`]): serves PodResources and metrics and the
/// runtime's events until SIGTERM or SIGINT, then compacts the change journal. The
/// listeners are bound before the runtime is contacted.
pub fn run_until_signal(
    agent: Arc<Agent>,
    ep: &Endpoints,
    nri: Option<NriOptions>,
    reconcile: ReconcileOptions,
    on_ready: impl FnOnce(&Running),
) -> Result<()> {
    let rt = runtime()?;
    rt.block_on(async {
        let bound = daemon::bind(ep, nri.is_some()).await?;
        run_bound(agent, bound, nri, reconcile, on_ready, daemon::signals()?).await
    })
}

/// Serves listeners bound earlier ([`daemon::bind`]) with the restored books, then (only
/// then) connects to the runtime as an NRI plugin with its reconcile loop, until
/// `shutdown` completes; then compacts the change journal.
pub async fn run_bound(
    agent: Arc<Agent>,
    bound: daemon::Bound,
    nri: Option<NriOptions>,
    reconcile: ReconcileOptions,
    on_ready: impl FnOnce(&Running),
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<()> {
    let running = bound.start(agent.clone());
    on_ready(&running);
    let (stop_tx, stop_rx) = watch::channel(false);
    let plugin = nri.map(|opts| {
        let handler = Arc::new(NriAgent::new(agent.clone()));
        let loop_task = tokio::spawn(run_reconciler(handler.clone(), reconcile, stop_rx.clone()));
        (tokio::spawn(serve_nri(handler, opts, stop_rx)), loop_task)
    });
    shutdown.await;
    let _ = stop_tx.send(true);
    if let Some((p, l)) = plugin {
        let _ = tokio::time::timeout(Duration::from_secs(5), p).await;
        let _ = tokio::time::timeout(Duration::from_secs(5), l).await;
    }
    agent.metrics.set_nri_connected(false);
    let r = running.stop().await;
    if let Err(e) = agent.compact() {
        tracing::warn!("compacting at stop: {e}; the next start replays the journal");
    }
    r
}
