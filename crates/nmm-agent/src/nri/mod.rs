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

use crate::agent::{Agent, Tx};
use crate::reconcile::{cpuset_texts, shared_text, State, Tracked};
use k8s_openapi::api::core::v1::Pod;
use nmm_nri::{
    pod_info_from_nri, Container, ContainerAdjustment, ContainerState, ContainerUpdate,
    LinuxResources, NriHandler, PluginHandle, PodSandbox, Rejection, RuntimeInfo,
};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;
use tokio::sync::Notify;

mod pod_view;
mod serve;

use pod_view::{agent_rejection, holds, k8s_container, placeholders, pod_key, rejection};
pub use pod_view::{pod_from_info, sandbox_uid};
pub use serve::{
    run_bound, run_until_signal, runtime, serve_nri, stderr_logger, tracing_logger, NriOptions,
};

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
