//! The agent: one [`Node`] (the kubelet's three managers) behind a mutex, fed by pod
//! events, with its books committed to the state directory after every change.
//!
//! A change is a transaction ([`Agent::transaction`]): the engine's admissions and
//! removals, then one record appended to the change journal ([`crate::journal`]) and
//! `fdatasync`ed before the caller hears of it. The kubelet-format checkpoints are
//! rewritten from the books by a compaction: when the journal grows long, at start, at a
//! clean stop and when the daemon is idle ([`Agent::compact_if_idle`]). A change that
//! cannot be made durable (or an engine panic) is undone by rebuilding the books from
//! the state directory, which holds exactly the acknowledged changes.

use crate::cgroup::{CgroupEnforcer, CgroupError, ContainerCpuset};
use crate::devices::{DeviceOptions, KubeletDevices, Refresh};
use crate::journal::{Journal, Op, Replay, OPS_FILE};
use crate::lock::{LockError, StateDirLock};
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
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Compact when the journal holds this many records ...
pub const COMPACT_RECORDS: usize = 2048;
/// ... or this many bytes.
pub const COMPACT_BYTES: u64 = 16 << 20;

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
    /// The devices PodResources reports: the device plugins' devices and the kubelet's
    /// device checkpoint, read only ([`crate::devices`]). The default reads nothing.
    pub devices: DeviceOptions,
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
    /// Replaying the change journal gave other allocations than the ones recorded.
    #[error("{path}: {message}")]
    Replay { path: PathBuf, message: String },
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
    /// Another agent holds the state directory (or its lock file cannot be taken).
    #[error(transparent)]
    Locked(#[from] LockError),
    #[error(
        "the lock passed to Agent::start_locked is for {lock}, not for the state directory {dir}"
    )]
    WrongLock { lock: PathBuf, dir: PathBuf },
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
    /// Changes replayed from the change journal (made since the last compaction).
    pub replayed_changes: usize,
    /// Bytes of an incomplete last journal record dropped (a crash during an append,
    /// before the change was acknowledged).
    pub torn_journal_tail: Option<usize>,
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
    /// The last change-journal record these files hold.
    #[serde(default, skip_serializing_if = "is_zero")]
    seq: u64,
    pods: Vec<Pod>,
}

fn is_zero(v: &u64) -> bool {
    *v == 0
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
    /// The uids of `pods`.
    recorded: HashSet<String>,
    store: Store,
    journal: Journal,
    /// When the last change was made (for idle compaction).
    last_change: Instant,
    /// (pod uid, container) -> cgroup path, for shared-pool updates.
    cgroups: BTreeMap<(String, String), PathBuf>,
    /// The shared pool the cgroups were last written with.
    last_pool: Option<nmm_core::cpuset::CpuSet>,
}

pub struct Agent {
    inner: Mutex<Inner>,
    /// How the books were started (to rebuild them from the state directory).
    machine: Machine,
    kubelet: KubeletConfig,
    pub metrics: Metrics,
    enforcer: Option<CgroupEnforcer>,
    state_dir: PathBuf,
    pod_level_resources: bool,
    pub(crate) sidecars: bool,
    /// The kubelet's devices (not the books': the agent allocates none).
    devices: KubeletDevices,
    /// The state directory's lock, held while the agent lives (dropped after the
    /// compaction of `Drop for Agent`), or until [`Agent::release_lock_as_if_killed`].
    lock_file: Mutex<Option<StateDirLock>>,
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

fn encode_record(pods: &[(String, Pod)], seq: u64) -> String {
    let rec = PodRecord {
        version: 1,
        seq,
        pods: pods.iter().map(|(_, p)| p.clone()).collect(),
    };
    serde_json::to_string(&rec).expect("pods always serialise")
}

fn snapshot(g: &Inner) -> Snapshot {
    Snapshot {
        memory: g.node.memory_checkpoint(),
        cpu: g.node.cpu_checkpoint(),
        pods: encode_record(&g.pods, g.journal.last_seq()),
    }
}

/// What an admission allocated, as recorded in the journal and compared on replay: per
/// container, its exclusive CPUs and memory blocks.
pub fn allocation_text(r: &AdmitResult) -> String {
    let mut out = String::new();
    for c in &r.containers {
        out.push_str(&c.name);
        out.push(':');
        out.push_str(&c.cpus.to_string());
        for b in &c.memory {
            let ids: Vec<String> = b.numa_affinity.iter().map(|i| i.to_string()).collect();
            out.push_str(&format!(" {}={}@{}", b.kind, b.size, ids.join(",")));
        }
        out.push(';');
    }
    out
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

/// The books as loaded from a state directory.
struct Loaded {
    store: Store,
    journal: Journal,
    node: Node,
    pods: Vec<(String, Pod)>,
    unrecorded: BTreeSet<String>,
}

/// Applies the journal's operations to a list of pods (no engine): the pods on record.
fn apply_to_list(pods: &mut Vec<(String, Pod)>, replay: &Replay) {
    for (_, ops) in &replay.records {
        for op in ops {
            match op {
                Op::Admit { pod, .. } => {
                    let uid = pod.metadata.uid.clone().unwrap_or_default();
                    match pods.iter_mut().find(|(u, _)| *u == uid) {
                        Some(slot) => slot.1 = (**pod).clone(),
                        None => pods.push((uid, (**pod).clone())),
                    }
                }
                Op::Remove { uid } => pods.retain(|(u, _)| u != uid),
            }
        }
    }
}

/// Replays the journal's records through the engine, checking that every admission
/// gets the allocation it got when it was made.
fn replay_records(
    node: &mut Node,
    pods: &mut Vec<(String, Pod)>,
    unrecorded: &mut BTreeSet<String>,
    replay: &Replay,
    pod_level_resources: bool,
) -> Result<(), String> {
    for (seq, ops) in &replay.records {
        for op in ops {
            match op {
                Op::Admit { pod, allocation } => {
                    let key = pod_key(pod);
                    let info = PodInfo::from_pod(pod, pod_level_resources)
                        .map_err(|e| format!("record {seq}: pod {key}: {e}"))?;
                    let r = catch_unwind(AssertUnwindSafe(|| node.admit(&info)))
                        .map_err(panic_text)
                        .and_then(|r| r.map_err(|e| e.to_string()))
                        .map_err(|e| format!("record {seq}: pod {key}: {e}"))?;
                    let got = allocation_text(&r);
                    if !r.admitted || got != *allocation {
                        let now = if r.admitted {
                            got
                        } else {
                            format!(
                                "a rejection ({}: {})",
                                r.reason.unwrap_or_default(),
                                r.message.unwrap_or_default()
                            )
                        };
                        return Err(format!(
                            "record {seq}: pod {key} was admitted with {allocation:?}, but replayed under the current kubelet configuration and machine it gets {now:?}: they changed while this change was not yet compacted into the checkpoints. Start once with the previous configuration, or with --reconcile to admit the recorded pods again"
                        ));
                    }
                    let trimmed = (**pod).clone();
                    match pods.iter_mut().find(|(u, _)| *u == info.uid) {
                        Some(slot) => slot.1 = trimmed,
                        None => pods.push((info.uid.clone(), trimmed)),
                    }
                    unrecorded.remove(&info.uid);
                }
                Op::Remove { uid } => {
                    node.remove(uid);
                    pods.retain(|(u, _)| u != uid);
                    unrecorded.remove(uid);
                }
            }
        }
    }
    Ok(())
}

/// Opens the state directory and builds the books: the checkpoints' restore and
/// restart validation, then the change journal replayed.
fn load_books(opts: &AgentOptions, report: &mut StartReport) -> Result<Loaded, AgentError> {
    let (store, loaded) = Store::open(&opts.state_dir)?;
    report.journal_recovered = loaded.journal_recovered;
    report.removed_temp_files = loaded.removed_temp_files.clone();
    let record_path = opts.state_dir.join(PODS_FILE);
    let (base_seq, mut record) = match &loaded.pods {
        Some(b) => parse_record(b, &record_path)?,
        None => (0, Vec::new()),
    };
    let (journal, replay) = Journal::open(&opts.state_dir, base_seq)?;
    report.replayed_changes = replay.records.iter().map(|(_, ops)| ops.len()).sum();
    report.torn_journal_tail = replay.torn_tail;
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
    let plr = opts.kubelet.feature_gate("PodLevelResources");
    let fresh = |dir_text: String| {
        Node::start(
            opts.machine.clone(),
            opts.kubelet.clone(),
            StartOptions {
                state_dir: dir_text,
                ..Default::default()
            },
        )
        .map_err(AgentError::Startup)
    };
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
                apply_to_list(&mut record, &replay);
                if !missing.is_empty() && !record.is_empty() {
                    // A checkpoint was deleted (as the kubelet's message advises) but pods
                    // are on record: like a restarting kubelet, admit them again.
                    let live: Vec<Pod> = record.into_iter().map(|(_, p)| p).collect();
                    let cause = format!(
                        "{} missing in {dir_text} while {} pods are on record",
                        missing.join(" and "),
                        live.len()
                    );
                    let (pods, rec) = readmit(&mut node, &live, plr, cause)?;
                    report.reconciled = Some(rec);
                    (node, pods, BTreeSet::new())
                } else {
                    // Back to the base's pods, then the journal through the engine.
                    let (_, mut pods) = match &loaded.pods {
                        Some(b) => parse_record(b, &record_path)?,
                        None => (0, Vec::new()),
                    };
                    let held = checkpoint_uids(&node);
                    let recorded: BTreeSet<&String> = pods.iter().map(|(u, _)| u).collect();
                    let mut unrecorded: BTreeSet<String> = held
                        .iter()
                        .filter(|u| !recorded.contains(u))
                        .cloned()
                        .collect();
                    match replay_records(&mut node, &mut pods, &mut unrecorded, &replay, plr) {
                        Ok(()) => {
                            report.restored_pods = pods.len();
                            report.unrecorded_pods = unrecorded.iter().cloned().collect();
                            (node, pods, unrecorded)
                        }
                        Err(message) => {
                            let Some(live) = &opts.reconcile else {
                                return Err(AgentError::Replay {
                                    path: opts.state_dir.join(OPS_FILE),
                                    message,
                                });
                            };
                            let mut node = fresh(dir_text)?;
                            let (pods, rec) = readmit(&mut node, live, plr, message)?;
                            report.reconciled = Some(rec);
                            (node, pods, BTreeSet::new())
                        }
                    }
                }
            }
            Err(cause) => {
                let Some(live) = &opts.reconcile else {
                    return Err(AgentError::Startup(cause));
                };
                let mut node = fresh(dir_text)?;
                let (pods, rec) = readmit(&mut node, live, plr, cause.to_string())?;
                report.reconciled = Some(rec);
                (node, pods, BTreeSet::new())
            }
        };
    Ok(Loaded {
        store,
        journal,
        node,
        pods,
        unrecorded,
    })
}

/// One change to the books, made inside [`Agent::transaction`]: the engine's
/// admissions and removals, recorded for the journal.
pub struct Tx<'a> {
    g: &'a mut Inner,
    agent: &'a Agent,
    ops: Vec<Op>,
    poisoned: Option<String>,
}

impl Tx<'_> {
    /// The managers, as changed so far.
    pub fn node(&self) -> &Node {
        &self.g.node
    }

    /// The pod is in the books (admitted, or known from the checkpoints).
    pub fn knows(&self, uid: &str) -> bool {
        self.g.recorded.contains(uid) || self.g.unrecorded.contains(uid)
    }

    /// The pod as recorded (what was admitted), if the agent admitted it.
    pub fn recorded(&self, uid: &str) -> Option<&Pod> {
        if !self.g.recorded.contains(uid) {
            return None;
        }
        self.g.pods.iter().find(|(u, _)| u == uid).map(|(_, p)| p)
    }

    /// The uids in the books (recorded and unrecorded).
    pub fn uids(&self) -> Vec<String> {
        let mut v: Vec<String> = self.g.pods.iter().map(|(u, _)| u.clone()).collect();
        v.extend(self.g.unrecorded.iter().cloned());
        v
    }

    /// Admits a pod (see [`Agent::admit_pod`]).
    pub fn admit(&mut self, pod: &Pod) -> Result<AdmitResult, AgentError> {
        let r = self.admit_inner(pod);
        if let Err(e) = &r {
            self.agent.metrics.error(e.reason());
        }
        r
    }

    fn admit_inner(&mut self, pod: &Pod) -> Result<AdmitResult, AgentError> {
        if let Some(why) = &self.poisoned {
            return Err(AgentError::Internal(why.clone()));
        }
        let info = PodInfo::from_pod(pod, self.agent.pod_level_resources).map_err(|e| {
            AgentError::MalformedPod {
                pod: pod_key(pod),
                message: e.to_string(),
            }
        })?;
        let t0 = Instant::now();
        let node = &mut self.g.node;
        let r = match catch_unwind(AssertUnwindSafe(|| node.admit(&info))) {
            Ok(r) => r?,
            Err(p) => {
                let why = panic_text(p);
                self.poisoned = Some(why.clone());
                return Err(AgentError::Internal(why));
            }
        };
        let elapsed = t0.elapsed();
        let m = &self.agent.metrics;
        let policies = crate::metrics::Policies {
            cpu_static: matches!(self.g.node.cpu.policy, CpuPolicy::Static(_)),
            memory_static: self.g.node.memory.static_policy().is_some(),
            topology_none: self.g.node.topology.policy.kind
                == nmm_core::topology::policy::PolicyKind::None,
        };
        m.observe_admission(&info, &r, elapsed, policies);
        crate::logging::admission(&pod_key(pod), &r, elapsed);
        if r.admitted {
            let trimmed = trim_pod(pod);
            if self.g.recorded.contains(&info.uid) {
                if let Some(slot) = self.g.pods.iter_mut().find(|(u, _)| *u == info.uid) {
                    slot.1 = trimmed.clone();
                }
            } else {
                self.g.pods.push((info.uid.clone(), trimmed.clone()));
                self.g.recorded.insert(info.uid.clone());
            }
            self.g.unrecorded.remove(&info.uid);
            self.ops.push(Op::Admit {
                pod: Box::new(trimmed),
                allocation: allocation_text(&r),
            });
        }
        Ok(r)
    }

    /// The pod is gone: its resources go back to the pools.
    pub fn remove(&mut self, uid: &str) -> RemoveResult {
        let g = &mut *self.g;
        let mut r = g.node.remove(uid);
        let recorded = g.recorded.remove(uid);
        if recorded {
            g.pods.retain(|(u, _)| u != uid);
        }
        let unrecorded = g.unrecorded.remove(uid);
        r.removed |= recorded || unrecorded;
        g.cgroups.retain(|(u, _), _| u != uid);
        if r.removed {
            self.ops.push(Op::Remove {
                uid: uid.to_string(),
            });
        }
        r
    }
}

impl Agent {
    /// Starts the agent as the kubelet starts its managers: config validation, then the
    /// checkpoints' restore and restart validation, then the changes made since the last
    /// compaction replayed from the journal (and compacted). A commit that a crash
    /// interrupted is finished first. Before reading anything it creates the state
    /// directory if missing and takes its lock ([`crate::lock`]): [`AgentError::Locked`] if another agent holds it.
    pub fn start(opts: AgentOptions) -> Result<(Agent, StartReport), AgentError> {
        crate::store::ensure_dir(&opts.state_dir)?;
        let lock = StateDirLock::acquire(&opts.state_dir)?;
        Self::start_locked(opts, lock)
    }

    /// [`Agent::start`] with the state directory's lock already taken (a caller that
    /// reads the directory before starting the agent, e.g. for `--reconcile`).
    pub fn start_locked(
        opts: AgentOptions,
        lock: StateDirLock,
    ) -> Result<(Agent, StartReport), AgentError> {
        if lock.dir() != opts.state_dir {
            return Err(AgentError::WrongLock {
                lock: lock.dir().to_path_buf(),
                dir: opts.state_dir.clone(),
            });
        }
        let mut report = StartReport::default();
        let l = load_books(&opts, &mut report)?;
        let pod_level_resources = opts.kubelet.feature_gate("PodLevelResources");
        let sidecars = opts
            .kubelet
            .feature_gates
            .as_ref()
            .and_then(|g| g.get("SidecarContainers").copied())
            .unwrap_or(true);
        let enforcer = opts.cgroup_root.clone().map(CgroupEnforcer::new);
        let recorded = l.pods.iter().map(|(u, _)| u.clone()).collect();
        let agent = Agent {
            inner: Mutex::new(Inner {
                node: l.node,
                pods: l.pods,
                unrecorded: l.unrecorded,
                recorded,
                store: l.store,
                journal: l.journal,
                last_change: Instant::now(),
                cgroups: BTreeMap::new(),
                last_pool: None,
            }),
            machine: opts.machine.clone(),
            kubelet: opts.kubelet.clone(),
            metrics: Metrics::new(),
            enforcer,
            state_dir: opts.state_dir.clone(),
            pod_level_resources,
            sidecars,
            devices: KubeletDevices::new(&opts.machine, opts.devices.clone()),
            lock_file: Mutex::new(Some(lock)),
        };
        agent.devices.refresh(&agent.metrics);
        {
            let mut g = agent.lock();
            report.wrote_state = agent.compact_locked(&mut g)?;
            agent.update_gauges(&g);
        }
        if let Some(r) = &report.reconciled {
            let m = &agent.metrics;
            m.reconciled("startup", "admitted", r.admitted.len());
            m.reconciled("startup", "rejected", r.rejected.len());
        }
        Ok((agent, report))
    }

    /// The pods recorded in a state directory (admission order, the change journal
    /// applied), without starting anything: the default list for `reconcile`. A commit
    /// interrupted by a crash is finished first.
    pub fn recorded_pods(state_dir: &Path) -> Result<Vec<Pod>, AgentError> {
        let (_, loaded) = Store::open(state_dir)?;
        let (seq, mut pods) = match &loaded.pods {
            Some(b) => parse_record(b, &state_dir.join(PODS_FILE))?,
            None => (0, Vec::new()),
        };
        let (_, replay) = Journal::open(state_dir, seq)?;
        apply_to_list(&mut pods, &replay);
        Ok(pods.into_iter().map(|(_, p)| p).collect())
    }

    pub fn state_dir(&self) -> &Path {
        &self.state_dir
    }

    /// For tests that simulate a SIGKILL inside one process (the agent leaked, never
    /// dropped): releases the state directory's lock as the kernel does when a killed
    /// process's files close, so that the next agent can start on the directory. This
    /// agent must not be used for changes afterwards.
    #[doc(hidden)]
    pub fn release_lock_as_if_killed(&self) {
        self.lock_file
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
    }

    /// Looks at the kubelet's device checkpoint again and reads it if it changed
    /// ([`KubeletDevices::refresh`]).
    pub fn refresh_devices(&self) -> Refresh {
        self.devices.refresh(&self.metrics)
    }

    /// The kubelet's devices as last read: registered devices and who holds which.
    pub fn devices(&self) -> &KubeletDevices {
        &self.devices
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic inside a change is caught and undone before the lock is released, so a
        // poisoned lock still guards consistent books.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs `f` on the managers and a test of whether a pod uid is in the books.
    pub fn inspect_known<R>(&self, f: impl FnOnce(&Node, &dyn Fn(&str) -> bool) -> R) -> R {
        let g = self.lock();
        let knows = |u: &str| g.recorded.contains(u) || g.unrecorded.contains(u);
        f(&g.node, &knows)
    }

    /// The pod uids in the books (recorded, in admission order, then unrecorded).
    pub fn uids(&self) -> Vec<String> {
        let g = self.lock();
        let mut v: Vec<String> = g.pods.iter().map(|(u, _)| u.clone()).collect();
        v.extend(g.unrecorded.iter().cloned());
        v
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
        if let Some(d) = &g.node.memory_drift {
            self.metrics.set_drift(d);
        }
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

    /// Runs `f` on the books as one change: what it admits and removes becomes one
    /// journal record, durable (`fdatasync`) before this returns. If the record cannot
    /// be written, or the engine panicked, the books are rebuilt from the state directory
    /// (the change is undone) and the error returned.
    pub fn transaction<R>(&self, f: impl FnOnce(&mut Tx<'_>) -> R) -> Result<R, AgentError> {
        let mut g = self.lock();
        let (r, ops, poisoned) = {
            let mut tx = Tx {
                g: &mut g,
                agent: self,
                ops: Vec::new(),
                poisoned: None,
            };
            let r = catch_unwind(AssertUnwindSafe(|| f(&mut tx)));
            let (ops, mut poisoned) = (std::mem::take(&mut tx.ops), tx.poisoned.take());
            let r = match r {
                Ok(r) => Some(r),
                Err(p) => {
                    poisoned.get_or_insert(panic_text(p));
                    None
                }
            };
            (r, ops, poisoned)
        };
        if let Some(why) = poisoned {
            if !ops.is_empty() {
                self.rebuild(&mut g);
            }
            return Err(AgentError::Internal(why));
        }
        let r = r.expect("no panic");
        if ops.is_empty() {
            return Ok(r);
        }
        if let Err(e) = g.journal.append(ops) {
            self.metrics.checkpoint_write_errors.inc();
            self.metrics.error("CheckpointWriteFailed");
            self.rebuild(&mut g);
            return Err(AgentError::Persist(e));
        }
        g.last_change = Instant::now();
        self.update_gauges(&g);
        self.refresh_shared_cgroups(&mut g);
        if g.journal.records() >= COMPACT_RECORDS || g.journal.bytes() >= COMPACT_BYTES {
            if let Err(e) = self.compact_locked(&mut g) {
                tracing::warn!(
                    "compacting the change journal: {e}; the changes stay in the journal"
                );
            }
        }
        Ok(r)
    }

    /// Rebuilds the books from the state directory (after a change that could not be
    /// made durable): they then hold exactly the acknowledged changes.
    fn rebuild(&self, g: &mut Inner) {
        let opts = AgentOptions {
            machine: self.machine.clone(),
            kubelet: self.kubelet.clone(),
            state_dir: self.state_dir.clone(),
            reconcile: None,
            cgroup_root: None,
            devices: DeviceOptions::default(),
        };
        match load_books(&opts, &mut StartReport::default()) {
            Ok(l) => {
                g.recorded = l.pods.iter().map(|(u, _)| u.clone()).collect();
                g.node = l.node;
                g.pods = l.pods;
                g.unrecorded = l.unrecorded;
                g.store = l.store;
                g.journal = l.journal;
            }
            Err(e) => tracing::error!("the books could not be reloaded from {} after a failed change ({e}); they keep the change in memory",
                self.state_dir.display()
            ),
        }
        self.update_gauges(g);
    }

    /// Writes the books into the kubelet-format checkpoints and the pod record and
    /// empties the change journal. Returns whether the files changed.
    fn compact_locked(&self, g: &mut Inner) -> Result<bool, StoreError> {
        let snap = snapshot(g);
        let wrote = match g.store.commit(&snap) {
            Ok(w) => w,
            Err(e) if e.committed => {
                // The store's own journal holds the new base: the next commit or start
                // finishes writing the files, so the change journal may go.
                self.metrics.checkpoint_write_errors.inc();
                tracing::warn!(
                    "{}; the change is in the journal and will be written again",
                    e.source
                );
                true
            }
            Err(e) => {
                self.metrics.checkpoint_write_errors.inc();
                return Err(e.source);
            }
        };
        if wrote {
            self.metrics.checkpoint_writes.inc();
        }
        if g.journal.records() > 0 {
            g.journal.reset()?;
        }
        Ok(wrote)
    }

    /// Compacts now: the checkpoints on disk then say what the books say.
    pub fn compact(&self) -> Result<bool, AgentError> {
        let mut g = self.lock();
        Ok(self.compact_locked(&mut g)?)
    }

    /// Compacts if the journal holds changes and none was made for `idle`.
    pub fn compact_if_idle(&self, idle: Duration) -> Result<bool, AgentError> {
        let mut g = self.lock();
        if g.journal.records() == 0 || g.last_change.elapsed() < idle {
            return Ok(false);
        }
        Ok(self.compact_locked(&mut g)?)
    }

    /// Records in the change journal (changes not yet in the checkpoint files).
    pub fn pending_changes(&self) -> usize {
        self.lock().journal.records()
    }

    /// The pod is in the books (admitted, or known from the checkpoints).
    pub fn knows(&self, uid: &str) -> bool {
        let g = self.lock();
        g.recorded.contains(uid) || g.unrecorded.contains(uid)
    }

    /// Admits a pod (the kubelet's admit handler: Topology Manager with the CPU and Memory
    /// Managers as hint providers) and commits the books. A rejected pod's books are
    /// unchanged.
    pub fn admit_pod(&self, pod: &Pod) -> Result<AdmitResult, AgentError> {
        self.transaction(|tx| tx.admit(pod))?
    }

    /// The pod is gone: its resources go back to the pools.
    pub fn remove_pod(&self, uid: &str) -> Result<RemoveResult, AgentError> {
        self.transaction(|tx| tx.remove(uid))
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

    /// The kubelet's CPU Manager reconcile loop: shared containers follow the default set
    /// (rewritten when it changed).
    fn refresh_shared_cgroups(&self, g: &mut Inner) {
        let Some(enforcer) = &self.enforcer else {
            return;
        };
        let pool = match &g.node.cpu.policy {
            CpuPolicy::Static(p) => Some(p.default_set.clone()),
            CpuPolicy::None => None,
        };
        if pool == g.last_pool {
            return;
        }
        g.last_pool = pool;
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

fn parse_record(bytes: &[u8], path: &Path) -> Result<(u64, Vec<(String, Pod)>), AgentError> {
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
    let pods = rec
        .pods
        .into_iter()
        .map(|p| (p.metadata.uid.clone().unwrap_or_default(), p))
        .collect();
    Ok((rec.seq, pods))
}

impl Drop for Agent {
    /// A clean stop leaves the checkpoints current (the journal compacted).
    fn drop(&mut self) {
        let mut g = self.lock();
        if g.journal.records() > 0 {
            if let Err(e) = self.compact_locked(&mut g) {
                tracing::warn!("compacting at stop: {e}; the next start replays the journal");
            }
        }
    }
}
