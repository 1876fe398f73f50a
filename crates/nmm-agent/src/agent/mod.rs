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
//!
//! Split by concern: this file holds the agent's types, start-up, transactions and
//! compaction; `pods.rs` the pod record (trimmed pods, `nmm_agent_pods`, allocation
//! text), `load.rs` how the books are built from the state directory (checkpoints,
//! journal replay, re-admission), `tx.rs` one change ([`Tx`]), `containers.rs` container
//! starts and the cgroups the agent writes, [`device_hints`] the kubelet's devices of a
//! pod as hints of its admission.

mod containers;
pub mod device_hints;
mod load;
mod pods;
mod tx;

pub use containers::container_cpuset;
pub use pods::{allocation_text, pod_key, trim_pod};
pub use tx::Tx;

use crate::cgroup::{CgroupEnforcer, CgroupError};
use crate::devices::{DeviceOptions, KubeletDevices, Refresh};
use crate::journal::Journal;
use crate::lock::{LockError, StateDirLock};
use crate::metrics::Metrics;
use crate::store::{Snapshot, Store, StoreError};
use k8s_openapi::api::core::v1::Pod;
use load::load_books;
use nmm_core::cpumanager::CpuPolicy;
use nmm_core::kubelet_config::KubeletConfig;
use nmm_core::machine::Machine;
use nmm_core::node::{AdmitResult, Node, RemoveResult, StartupError, StepError};
use pods::encode_record;
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tx::panic_text;

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

fn snapshot(g: &Inner) -> Snapshot {
    Snapshot {
        memory: g.node.memory_checkpoint(),
        cpu: g.node.cpu_checkpoint(),
        pods: encode_record(&g.pods, g.journal.last_seq()),
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
        // The kubelet's devices first: pods admitted again at start get their hints.
        let metrics = Metrics::new();
        let devices = KubeletDevices::new(&opts.machine, opts.devices.clone());
        devices.refresh(&metrics);
        let l = load_books(&opts, &mut report, &|uid| {
            device_hints::PodDeviceHints::from_view(&devices.view(), uid)
        })?;
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
            metrics,
            enforcer,
            state_dir: opts.state_dir.clone(),
            pod_level_resources,
            sidecars,
            devices,
            lock_file: Mutex::new(Some(lock)),
        };
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

    /// The devices the kubelet's checkpoint records for pod `uid` as last read: what an
    /// admission takes as the Device Manager's hints ([`device_hints`]; every
    /// [`Agent::transaction`] looks at the file again before it takes the books' lock).
    /// `None` without a checkpoint or an entry for the pod.
    pub fn kubelet_devices_of(&self, uid: &str) -> Option<device_hints::PodDeviceHints> {
        self.devices.options().checkpoint.as_ref()?;
        device_hints::PodDeviceHints::from_view(&self.devices.view(), uid)
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
        // The kubelet has written a pod's devices before the runtime creates its
        // containers: look at its checkpoint again (one `stat`; a read only when it
        // changed) and take the view the change's admissions use, outside the books'
        // lock (a concurrent re-read never holds the books up).
        let devices = self.devices.options().checkpoint.is_some().then(|| {
            self.devices.refresh(&self.metrics);
            self.devices.view()
        });
        let mut g = self.lock();
        let (r, ops, poisoned) = {
            let mut tx = Tx {
                g: &mut g,
                agent: self,
                ops: Vec::new(),
                poisoned: None,
                devices,
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
        let hints = |uid: &str| self.kubelet_devices_of(uid);
        match load_books(&opts, &mut StartReport::default(), &hints) {
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
