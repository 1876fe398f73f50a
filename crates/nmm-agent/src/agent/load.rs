//! The books from the state directory: the checkpoints' restore and restart validation
//! (nmm-core's `Node::start`), the change journal replayed through the engine, and
//! re-admission of the live pods when a checkpoint is missing or `reconcile` is asked for.

use super::device_hints::{self, PodDeviceHints};
use super::pods::{parse_record, pod_key, trim_pod};
use super::tx::panic_text;
use super::{allocation_text, Agent, AgentError, AgentOptions, Reconciled, StartReport};
use crate::journal::{Journal, Op, Replay, OPS_FILE};
use crate::store::{Store, CPU_FILE, MEMORY_FILE, PODS_FILE};
use k8s_openapi::api::core::v1::Pod;
use nmm_core::node::{Node, RawCheckpoint, StartOptions};
use nmm_core::pod::PodInfo;
use std::collections::BTreeSet;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;

/// The uids that the managers hold allocations for.
fn checkpoint_uids(node: &Node) -> BTreeSet<String> {
    let mut s: BTreeSet<String> = node.memory.assignments().into_keys().collect();
    s.extend(node.cpu.assignments().into_keys());
    s
}

/// The books as loaded from a state directory.
pub(super) struct Loaded {
    pub(super) store: Store,
    pub(super) journal: Journal,
    pub(super) node: Node,
    pub(super) pods: Vec<(String, Pod)>,
    pub(super) unrecorded: BTreeSet<String>,
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
                    // The kubelet's devices as the admission saw them, not as now.
                    let hints = PodDeviceHints::from_annotation(pod)
                        .map_err(|e| format!("record {seq}: pod {key}: {e}"))?;
                    let r = catch_unwind(AssertUnwindSafe(|| {
                        device_hints::admit(node, &info, hints.as_ref())
                    }))
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
/// The kubelet's devices of a pod now (for re-admissions), by pod uid.
pub(super) type LiveHints<'a> = &'a dyn Fn(&str) -> Option<PodDeviceHints>;

pub(super) fn load_books(
    opts: &AgentOptions,
    report: &mut StartReport,
    hints: LiveHints<'_>,
) -> Result<Loaded, AgentError> {
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
                    let (pods, rec) = readmit(&mut node, &live, plr, hints, cause)?;
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
                            let (pods, rec) = readmit(&mut node, live, plr, hints, message)?;
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
                let (pods, rec) = readmit(&mut node, live, plr, hints, cause.to_string())?;
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

impl Agent {
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
}

/// Admits `live` in order into `node` (fresh books, or books missing a checkpoint), with
/// the kubelet's devices of each pod as they are now.
fn readmit(
    node: &mut Node,
    live: &[Pod],
    pod_level_resources: bool,
    hints: LiveHints<'_>,
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
        let h = hints(&info.uid);
        let admitted = catch_unwind(AssertUnwindSafe(|| {
            device_hints::admit(node, &info, h.as_ref())
        }));
        match admitted.map_err(panic_text) {
            Ok(Ok(r)) if r.admitted => {
                let mut trimmed = trim_pod(pod);
                if let Some(h) = &h {
                    h.annotate(&mut trimmed);
                }
                pods.push((info.uid.clone(), trimmed));
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
