//! The agent: one [`Node`] (the kubelet's three managers) behind a mutex, fed by pod
//! events, with its books committed to the state directory after every change.

use crate::cgroup::{CgroupEnforcer, CgroupError, ContainerCpuset};
use crate::metrics::Metrics;
use crate::store::{Snapshot, Store, StoreError, CPU_FILE, MEMORY_FILE, PODS_FILE};
use k8s_openapi::api::core::v1::{Container, Pod, PodSpec, PodStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use nmm_core::cpumanager::CpuPolicy;
use nmm_core::kubelet_config::KubeletConfig;
use nmm_core::machine::Machine;
use nmm_core::node::{
    AdmitResult, Node, RawCheckpoint, RemoveResult, StartOptions, StartupError, StepError,
};
use nmm_core::pod::PodInfo;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::Instant;

/// How to start an [`Agent`].
#[derive(Debug, Clone)]
pub struct AgentOptions {
    pub machine: Machine,
    pub kubelet: KubeletConfig,
    pub state_dir: PathBuf,
    /// `Some(live pods)`: when the checkpoints fail the kubelet's restart validation (the
    /// kubelet would say "please drain this node and delete the ... checkpoint file"),
    /// start from empty books and admit these pods again, in this order, instead of
    /// refusing to start. See [`Agent::recorded_pods`] for the pods the agent itself knew.
    pub reconcile: Option<Vec<Pod>>,
    /// Write `cpuset.cpus` / `cpuset.mems` of containers under this cgroup v2 root.
    pub cgroup_root: Option<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The kubelet's own start-up error (config validation, or a checkpoint that fails
    /// restart validation), word for word.
    #[error("the kubelet would refuse to start: {0}")]
    Startup(StartupError),
    #[error("{path}: the agent's pod record cannot be read: {message}")]
    PodRecord { path: PathBuf, message: String },
    #[error("pod {pod:?}: {message}")]
    MalformedPod { pod: String, message: String },
    #[error(transparent)]
    Step(#[from] StepError),
    #[error("pod uid {0:?} is not in the books")]
    UnknownPod(String),
    #[error("pod uid {pod:?} has no container {container:?}")]
    UnknownContainer { pod: String, container: String },
    #[error("the state directory could not be written, so the change was undone: {0}")]
    Persist(StoreError),
    #[error("internal error ({0}); the change was undone and the agent goes on")]
    Internal(String),
    #[error("the agent has no cgroup root (--cgroup-root) to write cpusets under")]
    NoEnforcer,
    #[error(transparent)]
    Cgroup(#[from] CgroupError),
}

impl AgentError {
    /// A short label for metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            AgentError::MalformedPod { .. } => "MalformedPod",
            AgentError::Step(StepError::MissingUid(_)) => "MissingUid",
            AgentError::Step(StepError::DuplicateUid(_)) => "DuplicateUid",
            AgentError::Persist(_) => "CheckpointWriteFailed",
            AgentError::Internal(_) => "Internal",
            _ => "Other",
        }
    }
}

/// The pods re-admitted by `reconcile`.
#[derive(Debug, Clone)]
pub struct Reconciled {
    /// Why the checkpoints could not be used: the kubelet's start-up error, or which
    /// checkpoint file was missing.
    pub cause: String,
    /// `namespace/name` of the pods admitted again.
    pub admitted: Vec<String>,
    /// `namespace/name` and why, for pods that no longer fit (or could not be read).
    pub rejected: Vec<(String, String)>,
}

/// What [`Agent::start`] found and did.
#[derive(Debug, Clone, Default)]
pub struct StartReport {
    /// A crash had interrupted a commit; the start finished it.
    pub journal_recovered: bool,
    pub removed_temp_files: Vec<String>,
    /// Pods of the agent's record found live again.
    pub restored_pods: usize,
    /// Pod uids the checkpoints hold but the agent's record does not (checkpoints
    /// written by a kubelet): kept in the books, their names unknown.
    pub unrecorded_pods: Vec<String>,
    /// The state directory was (re)written at start.
    pub wrote_state: bool,
    pub reconciled: Option<Reconciled>,
}

/// The agent's record of the live pods, in admission order, committed with the
/// checkpoints (`nmm_agent_pods`).
#[derive(Debug, Serialize, Deserialize)]
struct PodRecord {
    version: u32,
    pods: Vec<Pod>,
}

/// The books: what the restart test compares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Books {
    pub memory_checkpoint: String,
    pub cpu_checkpoint: String,
    /// Live pod uids (recorded and unrecorded), sorted.
    pub pods: Vec<String>,
}

pub(crate) struct Inner {
    pub(crate) node: Node,
    /// uid -> trimmed pod, in admission order.
    pub(crate) pods: Vec<(String, Pod)>,
    /// Live pods known only from the checkpoints.
    pub(crate) unrecorded: BTreeSet<String>,
    store: Store,
    /// (pod uid, container) -> cgroup path, for shared-pool updates.
    cgroups: BTreeMap<(String, String), PathBuf>,
}

pub struct Agent {
    inner: Mutex<Inner>,
    pub metrics: Metrics,
    enforcer: Option<CgroupEnforcer>,
    state_dir: PathBuf,
    pod_level_resources: bool,
    pub(crate) sidecars: bool,
}

impl std::fmt::Debug for Agent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Agent")
            .field("state_dir", &self.state_dir)
            .finish_non_exhaustive()
    }
}

/// `namespace/name` of a pod.
pub fn pod_key(pod: &Pod) -> String {
    format!(
        "{}/{}",
        pod.metadata.namespace.as_deref().unwrap_or("default"),
        pod.metadata.name.as_deref().unwrap_or("")
    )
}

/// What the managers read of a pod, and nothing else (no images, no environment): the
/// form kept in the pod record.
pub fn trim_pod(pod: &Pod) -> Pod {
    let keep = |c: &Container| Container {
        name: c.name.clone(),
        resources: c.resources.clone(),
        restart_policy: c.restart_policy.clone(),
        ..Default::default()
    };
    Pod {
        metadata: ObjectMeta {
            name: pod.metadata.name.clone(),
            namespace: pod.metadata.namespace.clone(),
            uid: pod.metadata.uid.clone(),
            ..Default::default()
        },
        spec: pod.spec.as_ref().map(|s| PodSpec {
            containers: s.containers.iter().map(keep).collect(),
            init_containers: s
                .init_containers
                .as_ref()
                .map(|v| v.iter().map(keep).collect()),
            resources: s.resources.clone(),
            ..Default::default()
        }),
        status: pod
            .status
            .as_ref()
            .and_then(|s| s.qos_class.clone())
            .map(|q| PodStatus {
                qos_class: Some(q),
                ..Default::default()
            }),
    }
}

fn encode_record(pods: &[(String, Pod)]) -> String {
    let rec = PodRecord {
        version: 1,
        pods: pods.iter().map(|(_, p)| p.clone()).collect(),
    };
    serde_json::to_string(&rec).expect("pods always serialise")
}

fn snapshot(g: &Inner) -> Snapshot {
    Snapshot {
        memory: g.node.memory_checkpoint(),
        cpu: g.node.cpu_checkpoint(),
        pods: encode_record(&g.pods),
    }
}

/// The uids that the managers hold allocations for.
fn checkpoint_uids(node: &Node) -> BTreeSet<String> {
    let mut s: BTreeSet<String> = node.memory.assignments().into_keys().collect();
    s.extend(node.cpu.assignments().into_keys());
    s
}

fn panic_text(p: Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        s.to_string()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "panic".into()
    }
}

/// The cpuset the kubelet would give a container now.
pub fn container_cpuset(node: &Node, uid: &str, container: &str) -> ContainerCpuset {
    let (cpus, exclusive) = match &node.cpu.policy {
        CpuPolicy::None => (None, false),
        CpuPolicy::Static(p) => match p.assignments.get(uid).and_then(|m| m.get(container)) {
            Some(s) => (Some(s.clone()), true),
            None => (Some(p.default_set.clone()), false),
        },
    };
    let mems = node
        .memory
        .static_policy()
        .and_then(|p| p.blocks(uid, container))
        .map(|blocks| {
            let ids: BTreeSet<u32> = blocks
                .iter()
                .flat_map(|b| b.numa_affinity.iter().copied())
                .collect();
            ids.into_iter().collect::<Vec<_>>()
        })
        .filter(|v| !v.is_empty());
    ContainerCpuset {
        cpus,
        exclusive,
        mems,
    }
}

impl Agent {
    /// Starts the agent as the kubelet starts its managers: config validation, then the
    /// checkpoints' restore and restart validation. A commit that a crash interrupted is
    /// finished first.
    pub fn start(opts: AgentOptions) -> Result<(Agent, StartReport), AgentError> {
        let (store, loaded) = Store::open(&opts.state_dir)?;
        let mut report = StartReport {
            journal_recovered: loaded.journal_recovered,
            removed_temp_files: loaded.removed_temp_files.clone(),
            ..Default::default()
        };
        let record_path = opts.state_dir.join(PODS_FILE);
        let record = match &loaded.pods {
            Some(b) => parse_record(b, &record_path)?,
            None => Vec::new(),
        };
        let dir_text = {
            let t = opts.state_dir.display().to_string();
            let t = t.trim_end_matches('/');
            if t.is_empty() {
                "/".to_string()
            } else {
                t.to_string()
            }
        };
        let start_opts = StartOptions {
            state_dir: dir_text.clone(),
            memory_checkpoint: loaded.memory.clone().map(RawCheckpoint::Bytes),
            cpu_checkpoint: loaded.cpu.clone().map(RawCheckpoint::Bytes),
            ..Default::default()
        };
        let pod_level_resources = opts.kubelet.feature_gate("PodLevelResources");
        let sidecars = opts
            .kubelet
            .feature_gates
            .as_ref()
            .and_then(|g| g.get("SidecarContainers").copied())
            .unwrap_or(true);
        let (node, pods, unrecorded) =
            match Node::start(opts.machine.clone(), opts.kubelet.clone(), start_opts) {
                Ok(mut node) => {
                    let missing: Vec<&str> = [
                        (MEMORY_FILE, loaded.memory.is_none()),
                        (CPU_FILE, loaded.cpu.is_none()),
                    ]
                    .into_iter()
                    .filter_map(|(n, gone)| gone.then_some(n))
                    .collect();
                    if !missing.is_empty() && !record.is_empty() {
                        // A checkpoint was deleted (as the kubelet's message advises) but
                        // pods are on record: like a restarting kubelet, admit them again.
                        let live: Vec<Pod> = record.into_iter().map(|(_, p)| p).collect();
                        let cause = format!(
                            "{} missing in {dir_text} while {} pods are on record",
                            missing.join(" and "),
                            live.len()
                        );
                        let (pods, rec) = readmit(&mut node, &live, pod_level_resources, cause)?;
                        report.reconciled = Some(rec);
                        (node, pods, BTreeSet::new())
                    } else {
                        let held = checkpoint_uids(&node);
                        let recorded: BTreeSet<&String> = record.iter().map(|(u, _)| u).collect();
                        let unrecorded: BTreeSet<String> = held
                            .iter()
                            .filter(|u| !recorded.contains(u))
                            .cloned()
                            .collect();
                        report.restored_pods = record.len();
                        report.unrecorded_pods = unrecorded.iter().cloned().collect();
                        (node, record, unrecorded)
                    }
                }
                Err(cause) => {
                    let Some(live) = &opts.reconcile else {
                        return Err(AgentError::Startup(cause));
                    };
                    let mut node = Node::start(
                        opts.machine.clone(),
                        opts.kubelet.clone(),
                        StartOptions {
                            state_dir: dir_text,
                            ..Default::default()
                        },
                    )
                    .map_err(AgentError::Startup)?;
                    let (pods, rec) =
                        readmit(&mut node, live, pod_level_resources, cause.to_string())?;
                    report.reconciled = Some(rec);
                    (node, pods, BTreeSet::new())
                }
            };
        let enforcer = opts.cgroup_root.clone().map(CgroupEnforcer::new);
        let agent = Agent {
            inner: Mutex::new(Inner {
                node,
                pods,
                unrecorded,
                store,
                cgroups: BTreeMap::new(),
            }),
            metrics: Metrics::new(),
            enforcer,
            state_dir: opts.state_dir.clone(),
            pod_level_resources,
            sidecars,
        };
        {
            let mut g = agent.lock();
            let snap = snapshot(&g);
            report.wrote_state = g.store.commit(&snap).map_err(|e| e.source)?;
            if report.wrote_state {
                agent.metrics.checkpoint_writes.inc();
            }
            agent.update_gauges(&g);
        }
        if let Some(r) = &report.reconciled {
            agent
                .metrics
                .reconciled("startup", "admitted", r.admitted.len());
            agent
                .metrics
                .reconciled("startup", "rejected", r.rejected.len());
        }
        Ok((agent, report))
    }

    /// The pods recorded in a state directory (admission order), without starting
    /// anything: the default list for `reconcile`. A commit interrupted by a crash is
    /// finished first.
    pub fn recorded_pods(state_dir: &Path) -> Result<Vec<Pod>, AgentError> {
        let (_, loaded) = Store::open(state_dir)?;
        match &loaded.pods {
            Some(b) => Ok(parse_record(b, &state_dir.join(PODS_FILE))?
                .into_iter()
                .map(|(_, p)| p)
                .collect()),
            None => Ok(Vec::new()),
        }
    }

    pub fn state_dir(&self) -> &Path {
        &self.state_dir
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic inside a change is caught and undone before the lock is released, so a
        // poisoned lock still guards consistent books.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs `f` on a read-only view of the books.
    pub fn inspect<R>(&self, f: impl FnOnce(&Node, &[(String, Pod)]) -> R) -> R {
        let g = self.lock();
        f(&g.node, &g.pods)
    }

    pub fn books(&self) -> Books {
        let g = self.lock();
        let mut pods: BTreeSet<String> = g.pods.iter().map(|(u, _)| u.clone()).collect();
        pods.extend(g.unrecorded.iter().cloned());
        Books {
            memory_checkpoint: g.node.memory_checkpoint(),
            cpu_checkpoint: g.node.cpu_checkpoint(),
            pods: pods.into_iter().collect(),
        }
    }

    fn update_gauges(&self, g: &Inner) {
        self.metrics.set_memory(&g.node.memory.machine_state());
        self.metrics
            .pods
            .set((g.pods.len() + g.unrecorded.len()) as i64);
        if let CpuPolicy::Static(p) = &g.node.cpu.policy {
            let exclusive: usize = p
                .assignments
                .values()
                .flat_map(|m| m.values())
                .map(|s| s.len())
                .sum();
            self.metrics.exclusive_cpus.set(exclusive as i64);
            self.metrics
                .shared_pool_cpus
                .set(p.default_set.len() as i64);
        }
    }

    /// Applies `f` to the books, then commits them. A failure (or a panic) inside `f`, or
    /// a commit that did not happen, restores the books as they were.
    fn change<R>(
        &self,
        g: &mut Inner,
        f: impl FnOnce(&mut Inner) -> Result<R, AgentError>,
    ) -> Result<R, AgentError> {
        let before = (g.node.clone(), g.pods.clone(), g.unrecorded.clone());
        let restore = |g: &mut Inner| {
            g.node = before.0.clone();
            g.pods = before.1.clone();
            g.unrecorded = before.2.clone();
        };
        let r = match catch_unwind(AssertUnwindSafe(|| f(g))) {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => {
                restore(g);
                return Err(e);
            }
            Err(p) => {
                restore(g);
                return Err(AgentError::Internal(panic_text(p)));
            }
        };
        let snap = snapshot(g);
        match g.store.commit(&snap) {
            Ok(wrote) => {
                if wrote {
                    self.metrics.checkpoint_writes.inc();
                }
            }
            Err(e) if e.committed => {
                // The journal holds the change: it stands, and the files catch up at the
                // next commit or start.
                self.metrics.checkpoint_write_errors.inc();
                tracing::warn!(
                    "{}; the change is in the journal and will be written again",
                    e.source
                );
            }
            Err(e) => {
                self.metrics.checkpoint_write_errors.inc();
                restore(g);
                return Err(AgentError::Persist(e.source));
            }
        }
        self.update_gauges(g);
        self.refresh_shared_cgroups(g);
        Ok(r)
    }

    /// Admits a pod (the kubelet's admit handler: Topology Manager with the CPU and Memory
    /// Managers as hint providers) and commits the books. A rejected pod's books are
    /// unchanged.
    pub fn admit_pod(&self, pod: &Pod) -> Result<AdmitResult, AgentError> {
        let result = self.admit_inner(pod);
        if let Err(e) = &result {
            self.metrics.error(e.reason());
        }
        result
    }

    fn admit_inner(&self, pod: &Pod) -> Result<AdmitResult, AgentError> {
        let info = PodInfo::from_pod(pod, self.pod_level_resources).map_err(|e| {
            AgentError::MalformedPod {
                pod: pod_key(pod),
                message: e.to_string(),
            }
        })?;
        let mut g = self.lock();
        let (r, elapsed) = self.change(&mut g, |g| {
            let t0 = Instant::now();
            let r = g.node.admit(&info)?;
            let elapsed = t0.elapsed();
            if r.admitted {
                let trimmed = trim_pod(pod);
                match g.pods.iter_mut().find(|(u, _)| *u == info.uid) {
                    Some(slot) => slot.1 = trimmed,
                    None => g.pods.push((info.uid.clone(), trimmed)),
                }
                g.unrecorded.remove(&info.uid);
            }
            Ok((r, elapsed))
        })?;
        let policies = crate::metrics::Policies {
            cpu_static: matches!(g.node.cpu.policy, CpuPolicy::Static(_)),
            memory_static: g.node.memory.static_policy().is_some(),
            topology_none: g.node.topology.policy.kind
                == nmm_core::topology::policy::PolicyKind::None,
        };
        self.metrics.observe_admission(&info, &r, elapsed, policies);
        crate::logging::admission(&pod_key(pod), &r, elapsed);
        Ok(r)
    }

    /// The pod is gone: its resources go back to the pools.
    pub fn remove_pod(&self, uid: &str) -> Result<RemoveResult, AgentError> {
        let mut g = self.lock();
        self.change(&mut g, |g| {
            let mut r = g.node.remove(uid);
            let before = g.pods.len();
            g.pods.retain(|(u, _)| u != uid);
            let recorded = g.pods.len() != before;
            let unrecorded = g.unrecorded.remove(uid);
            r.removed |= recorded || unrecorded;
            g.cgroups.retain(|(u, _), _| u != uid);
            Ok(r)
        })
    }

    fn check_container(g: &Inner, uid: &str, container: &str) -> Result<(), AgentError> {
        match g.pods.iter().find(|(u, _)| u == uid) {
            Some((_, pod)) => {
                let spec = pod.spec.as_ref();
                let known = spec.is_some_and(|s| {
                    s.containers.iter().any(|c| c.name == container)
                        || s.init_containers
                            .iter()
                            .flatten()
                            .any(|c| c.name == container)
                });
                if known {
                    Ok(())
                } else {
                    Err(AgentError::UnknownContainer {
                        pod: uid.to_string(),
                        container: container.to_string(),
                    })
                }
            }
            None if g.unrecorded.contains(uid) || g.node.is_live(uid) => Ok(()),
            None => Err(AgentError::UnknownPod(uid.to_string())),
        }
    }

    /// A container of an admitted pod is being started: the cpuset it should get
    /// (exclusive CPUs or the shared pool; the NUMA nodes of its memory).
    pub fn container_started(
        &self,
        uid: &str,
        container: &str,
    ) -> Result<ContainerCpuset, AgentError> {
        let g = self.lock();
        Self::check_container(&g, uid, container)?;
        Ok(container_cpuset(&g.node, uid, container))
    }

    /// [`Agent::container_started`], and write the cpuset into the container's cgroup
    /// (`cgroup` relative to the cgroup root). The agent remembers the cgroup: when the
    /// shared pool changes, it rewrites the `cpuset.cpus` of every shared container.
    pub fn container_started_in(
        &self,
        uid: &str,
        container: &str,
        cgroup: &Path,
    ) -> Result<ContainerCpuset, AgentError> {
        let enforcer = self.enforcer.as_ref().ok_or(AgentError::NoEnforcer)?;
        let mut g = self.lock();
        Self::check_container(&g, uid, container)?;
        let set = container_cpuset(&g.node, uid, container);
        if let Err(e) = enforcer.apply(cgroup, &set) {
            self.metrics.cgroup_write_errors.inc();
            return Err(e.into());
        }
        g.cgroups.insert(
            (uid.to_string(), container.to_string()),
            cgroup.to_path_buf(),
        );
        Ok(set)
    }

    /// Containers whose cgroup the agent writes, with their cgroup path.
    pub fn enforced_cgroups(&self) -> Vec<(String, String, PathBuf)> {
        let g = self.lock();
        g.cgroups
            .iter()
            .map(|((u, c), p)| (u.clone(), c.clone(), p.clone()))
            .collect()
    }

    /// The kubelet's CPU Manager reconcile loop: shared containers follow the default set.
    fn refresh_shared_cgroups(&self, g: &Inner) {
        let Some(enforcer) = &self.enforcer else {
            return;
        };
        for ((uid, container), path) in &g.cgroups {
            let set = container_cpuset(&g.node, uid, container);
            if set.exclusive {
                continue;
            }
            if let Err(e) = enforcer.apply(path, &set) {
                self.metrics.cgroup_write_errors.inc();
                tracing::warn!("shared pool update of {uid}/{container}: {e}");
            }
        }
    }
}

/// Admits `live` in order into `node` (fresh books, or books missing a checkpoint).
fn readmit(
    node: &mut Node,
    live: &[Pod],
    pod_level_resources: bool,
    cause: String,
) -> Result<(Vec<(String, Pod)>, Reconciled), AgentError> {
    let mut rec = Reconciled {
        cause,
        admitted: Vec::new(),
        rejected: Vec::new(),
    };
    let mut pods = Vec::new();
    for pod in live {
        let key = pod_key(pod);
        let info = match PodInfo::from_pod(pod, pod_level_resources) {
            Ok(i) => i,
            Err(e) => {
                rec.rejected.push((key, e.to_string()));
                continue;
            }
        };
        match catch_unwind(AssertUnwindSafe(|| node.admit(&info))).map_err(panic_text) {
            Ok(Ok(r)) if r.admitted => {
                pods.push((info.uid.clone(), trim_pod(pod)));
                rec.admitted.push(key);
            }
            Ok(Ok(r)) => {
                let why = format!(
                    "{}: {}",
                    r.reason.unwrap_or_default(),
                    r.message.unwrap_or_default()
                );
                node.remove(&info.uid);
                rec.rejected.push((key, why));
            }
            Ok(Err(e)) => rec.rejected.push((key, e.to_string())),
            Err(p) => return Err(AgentError::Internal(p)),
        }
    }
    Ok((pods, rec))
}

fn parse_record(bytes: &[u8], path: &Path) -> Result<Vec<(String, Pod)>, AgentError> {
    let rec: PodRecord = serde_json::from_slice(bytes).map_err(|e| AgentError::PodRecord {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    if rec.version != 1 {
        return Err(AgentError::PodRecord {
            path: path.to_path_buf(),
            message: format!("unknown version {}", rec.version),
        });
    }
    Ok(rec
        .pods
        .into_iter()
        .map(|p| (p.metadata.uid.clone().unwrap_or_default(), p))
        .collect())
}
