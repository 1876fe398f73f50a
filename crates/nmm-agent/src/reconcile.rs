//! Keeping the books equal to what the runtime runs, and containers on the cpusets the
//! books give them:
//!
//! * what the NRI plugin tracks of the runtime (`State`: sandboxes and containers,
//!   with the cpuset each container was last given, and when the plugin last saw each pod);
//! * the *drift*: containers whose cpuset is no longer what the books say (the shared
//!   pool widened or shrank), answered as NRI container updates;
//! * [`NriAgent::reconcile_runtime`]: the runtime's CRI lists ([`crate::cri`]) against
//!   the books: pods without a sandbox are released (containerd does not report removals
//!   of pods older than its last restart), containers the runtime no longer lists are
//!   forgotten;
//! * [`run_reconciler`]: the loop that does it after every NRI (re)connection, when a
//!   release widened the shared pool, and periodically (default every 3 s; a pod is
//!   released once two lists in a row miss it, so within about 6 s of its removal), sends the unsolicited `UpdateContainers` (the kubelet's
//!   CPU Manager reconcile), looks at the kubelet's device checkpoint again
//!   ([`crate::devices`]), and compacts the change journal when the agent is idle.

use crate::cri::{CriClient, RuntimeView};
use crate::nri::NriAgent;
use nmm_core::cpumanager::CpuPolicy;
use nmm_core::node::Node;
use nmm_nri::{Container, ContainerUpdate, PodSandbox};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// A container the runtime told us about, and the cpuset it was last given.
#[derive(Debug, Clone)]
pub(crate) struct Tracked {
    pub(crate) sandbox: String,
    pub(crate) uid: String,
    pub(crate) name: String,
    pub(crate) container: Container,
    pub(crate) stopped: bool,
    pub(crate) cpus: Option<String>,
    pub(crate) mems: Option<String>,
    /// When NRI last showed it.
    pub(crate) seen: Instant,
    /// CRI lists in a row that did not show it.
    pub(crate) absent: u8,
}

/// A pod or container is gone once this many CRI lists in a row do not show it.
pub const ABSENT_LISTS: u8 = 2;

#[derive(Debug, Default)]
pub(crate) struct State {
    /// Sandbox id -> pod.
    pub(crate) sandboxes: BTreeMap<String, PodSandbox>,
    /// Container id -> container.
    pub(crate) containers: BTreeMap<String, Tracked>,
    /// Pod uid -> when NRI last showed the pod (a CRI list taken before that moment
    /// cannot prove it gone).
    pub(crate) seen: HashMap<String, Instant>,
    /// Pod uid -> CRI lists in a row without its sandbox.
    pub(crate) absent_pods: HashMap<String, u8>,
    /// The shared pool's text at the last drift computation.
    pub(crate) pool_at_drift: Option<String>,
    /// Something else than the shared pool may have moved containers (a pod admitted
    /// again, a synchronization, a failed update): compute the drift in full.
    pub(crate) needs_drift: bool,
}

/// The cpuset texts the books give a container: (`cpuset.cpus`, `cpuset.mems`).
pub(crate) fn cpuset_texts(
    node: &Node,
    shared: Option<&str>,
    uid: &str,
    name: &str,
) -> (Option<String>, Option<String>) {
    let cpus = match &node.cpu.policy {
        CpuPolicy::None => None,
        CpuPolicy::Static(p) => match p.assignments.get(uid).and_then(|m| m.get(name)) {
            Some(s) => Some(s.to_string()),
            None => shared.map(str::to_string),
        },
    }
    .filter(|s| !s.is_empty());
    let mems = node
        .memory
        .static_policy()
        .and_then(|p| p.blocks(uid, name))
        .map(|blocks| {
            let ids: BTreeSet<u32> = blocks
                .iter()
                .flat_map(|b| b.numa_affinity.iter().copied())
                .collect();
            ids.iter()
                .map(|i| i.to_string())
                .collect::<Vec<_>>()
                .join(",")
        })
        .filter(|s| !s.is_empty());
    (cpus, mems)
}

/// The shared pool's text, if the CPU Manager is static.
pub(crate) fn shared_text(node: &Node) -> Option<String> {
    match &node.cpu.policy {
        CpuPolicy::Static(p) => Some(p.default_set.to_string()),
        CpuPolicy::None => None,
    }
}

/// What one CRI reconciliation did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RuntimeReconcile {
    /// Pod uids released: the runtime has no sandbox for them.
    pub released: Vec<String>,
    /// Containers forgotten: the runtime no longer lists them.
    pub forgotten_containers: usize,
}

impl State {
    /// Updates for tracked, running containers (other than `skip`) of pods in the books
    /// whose cpuset is no longer what they were given; marks them as given. Skipped
    /// (nothing can have moved) when the shared pool is unchanged and nothing else
    /// asked for it.
    pub(crate) fn drift(
        &mut self,
        node: &Node,
        knows: &dyn Fn(&str) -> bool,
        skip: Option<&str>,
    ) -> Vec<ContainerUpdate> {
        let shared = shared_text(node);
        if !self.needs_drift && shared == self.pool_at_drift {
            return Vec::new();
        }
        self.needs_drift = false;
        self.pool_at_drift = shared.clone();
        let mut out = Vec::new();
        for (id, t) in self.containers.iter_mut() {
            if Some(id.as_str()) == skip || t.stopped || !knows(&t.uid) {
                continue;
            }
            let (cpus, mems) = cpuset_texts(node, shared.as_deref(), &t.uid, &t.name);
            let cpus_changed = cpus.is_some() && cpus != t.cpus;
            let mems_changed = mems.is_some() && mems != t.mems;
            if !cpus_changed && !mems_changed {
                continue;
            }
            out.push(ContainerUpdate {
                container_id: id.clone(),
                cpuset_cpus: cpus.clone().filter(|_| cpus_changed),
                cpuset_mems: mems.clone().filter(|_| mems_changed),
                ignore_failure: false,
            });
            if cpus_changed {
                t.cpus = cpus;
            }
            if mems_changed {
                t.mems = mems;
            }
        }
        out
    }

    /// Updates that did not reach the runtime: send them again next time.
    pub(crate) fn unapplied(&mut self, updates: &[ContainerUpdate]) {
        for u in updates {
            if let Some(t) = self.containers.get_mut(&u.container_id) {
                if u.cpuset_cpus.is_some() {
                    t.cpus = None;
                }
                if u.cpuset_mems.is_some() {
                    t.mems = None;
                }
            }
        }
        self.needs_drift = true;
    }
}

impl NriAgent {
    /// The runtime's CRI lists, taken at `listed_at`, against the books: releases the
    /// pods the runtime has no sandbox for (unless NRI showed them after `listed_at`),
    /// forgets containers and sandboxes it no longer lists.
    pub fn reconcile_runtime(&self, view: &RuntimeView, listed_at: Instant) -> RuntimeReconcile {
        let mut st = self.lock_state();
        let live = view.pod_uids();
        let mut report = RuntimeReconcile::default();
        let newer = |seen: Option<&Instant>| seen.is_some_and(|t| *t >= listed_at);
        // Missing from two lists in a row: a pod or container the runtime is still
        // creating may be missing from one list although NRI already showed it.
        let missing: Vec<String> = self
            .agent()
            .uids()
            .into_iter()
            .filter(|u| !live.contains(u) && !newer(st.seen.get(u)))
            .collect();
        let before = std::mem::take(&mut st.absent_pods);
        let mut gone = Vec::new();
        for u in missing {
            let n = before.get(&u).copied().unwrap_or(0) + 1;
            if n >= ABSENT_LISTS {
                gone.push(u);
            } else {
                st.absent_pods.insert(u, n);
            }
        }
        if !gone.is_empty() {
            let r = self.agent().transaction(|tx| {
                for uid in &gone {
                    tx.remove(uid);
                }
            });
            match r {
                Ok(()) => {
                    for uid in &gone {
                        st.seen.remove(uid);
                    }
                    self.agent()
                        .metrics
                        .reconciled("cri", "removed", gone.len());
                    report.released = gone;
                }
                Err(e) => self.log(&format!("releasing pods the runtime no longer runs: {e}")),
            }
        }
        let sandboxes: HashSet<&str> = view.sandboxes.iter().map(|s| s.id.as_str()).collect();
        let containers: HashSet<&str> = view.containers.iter().map(|c| c.id.as_str()).collect();
        let before = st.containers.len();
        st.containers.retain(|id, t| {
            if containers.contains(id.as_str()) || t.seen >= listed_at {
                t.absent = 0;
                return true;
            }
            t.absent += 1;
            t.absent < ABSENT_LISTS
        });
        report.forgotten_containers = before - st.containers.len();
        let seen = st.seen.clone();
        st.sandboxes.retain(|id, p| {
            sandboxes.contains(id.as_str())
                || crate::nri::sandbox_uid(p).is_some_and(|u| newer(seen.get(&u)))
        });
        if !report.released.is_empty() {
            self.log(&format!(
                "released {} pods the runtime no longer runs (its CRI lists have no sandbox for them): {}",
                report.released.len(),
                report.released.join(", ")
            ));
        }
        report
    }

    /// Container updates the books call for now (the shared pool moved), marked as
    /// given; send them with `UpdateContainers`, and hand back what failed with
    /// [`NriAgent::updates_failed`].
    pub fn pending_updates(&self) -> Vec<ContainerUpdate> {
        let mut st = self.lock_state();
        self.agent()
            .inspect_known(|node, knows| st.drift(node, knows, None))
    }

    pub fn updates_failed(&self, updates: &[ContainerUpdate]) {
        self.lock_state().unapplied(updates);
    }

    /// Of updates just applied by the runtime, those whose container has been given
    /// another cpuset since (in an answer that may have reached the runtime first): the
    /// container's current cpuset, to send again.
    pub fn superseded(&self, sent: &[ContainerUpdate]) -> Vec<ContainerUpdate> {
        let st = self.lock_state();
        let mut out = Vec::new();
        for u in sent {
            let Some(t) = st.containers.get(&u.container_id) else {
                continue;
            };
            let cpus = u
                .cpuset_cpus
                .as_ref()
                .filter(|c| t.cpus.as_ref() != Some(*c))
                .and(t.cpus.clone());
            let mems = u
                .cpuset_mems
                .as_ref()
                .filter(|m| t.mems.as_ref() != Some(*m))
                .and(t.mems.clone());
            if cpus.is_some() || mems.is_some() {
                out.push(ContainerUpdate {
                    container_id: u.container_id.clone(),
                    cpuset_cpus: cpus,
                    cpuset_mems: mems,
                    ignore_failure: false,
                });
            }
        }
        out
    }
}

/// How the reconcile loop runs.
#[derive(Debug, Clone)]
pub struct ReconcileOptions {
    /// The runtime's CRI socket; `None`: removals the runtime does not report to NRI
    /// cannot be detected.
    pub cri_socket: Option<PathBuf>,
    /// How often to list the runtime's pods.
    pub interval: Duration,
    /// Compact the change journal once no change was made for this long.
    pub compact_idle: Duration,
}

impl Default for ReconcileOptions {
    fn default() -> Self {
        ReconcileOptions {
            cri_socket: Some(PathBuf::from(crate::cri::DEFAULT_CRI_SOCKET)),
            interval: Duration::from_secs(3),
            compact_idle: Duration::from_secs(2),
        }
    }
}

/// `fut`, unless the stop comes first (`None`). The runtime's calls are waited for this
/// way: a runtime that stops answering (containerd stuck, or its NRI connection
/// half-closed) must not keep the loop, and with it the agent and its state directory's
/// lock, from stopping.
async fn or_stop<T>(
    stop: &mut watch::Receiver<bool>,
    fut: impl std::future::Future<Output = T>,
) -> Option<T> {
    if *stop.borrow() {
        return None;
    }
    tokio::select! {
        v = fut => Some(v),
        // a dropped sender is a stop too
        _ = stop.wait_for(|s| *s) => None,
    }
}

/// The reconcile loop, until `stop` turns true: woken by [`NriAgent::wake`] (after each
/// synchronization, and when a release widened the shared pool) and every `interval`.
pub async fn run_reconciler(
    handler: Arc<NriAgent>,
    opts: ReconcileOptions,
    mut stop: watch::Receiver<bool>,
) {
    let mut cri: Option<CriClient> = None;
    let mut last_error = String::new();
    match &opts.cri_socket {
        None => handler.log(
            "no CRI socket: pods that existed before a runtime restart and are removed later are not detected (containerd does not report their removal to NRI plugins); give --cri-socket",
        ),
        Some(p) => handler.log(&format!(
            "listing the runtime's pods over CRI on {} every {:?}",
            p.display(),
            opts.interval
        )),
    }
    // The CRI list runs every `interval` and when `wake` asks for it; `wake_updates`
    // (a creation, a removal) only sends the pending cpuset updates, so a stream of
    // creations neither lists the runtime each time nor postpones the periodic list.
    let mut next_list = tokio::time::Instant::now();
    loop {
        tokio::select! {
            _ = stop.changed() => {}
            _ = tokio::time::sleep_until(next_list) => {}
            _ = handler.woken() => {}
        }
        if *stop.borrow() {
            return;
        }
        let now = tokio::time::Instant::now();
        let list_now = handler.take_list_due() || now >= next_list;
        if list_now {
            next_list = now + opts.interval;
        }
        if let (true, Some(path)) = (list_now, &opts.cri_socket) {
            if cri.is_none() {
                let Some(connected) = or_stop(&mut stop, CriClient::connect(path)).await else {
                    return;
                };
                match connected {
                    Ok(c) => {
                        handler.log(&format!(
                            "connected to {} over CRI on {}",
                            c.runtime,
                            path.display()
                        ));
                        last_error.clear();
                        cri = Some(c);
                    }
                    Err(e) => {
                        handler.agent().metrics.cri_list_errors.inc();
                        let msg = format!(
                            "{e}; until it answers, pods that existed before a runtime restart and are removed later are not detected; retrying"
                        );
                        if msg != last_error {
                            handler.log(&msg);
                            last_error = msg;
                        }
                    }
                }
            }
            if let Some(c) = cri.as_mut() {
                let listed_at = Instant::now();
                let Some(listed) = or_stop(&mut stop, c.list()).await else {
                    return;
                };
                match listed {
                    Ok(view) => {
                        handler.agent().metrics.cri_connected.set(1);
                        let h = handler.clone();
                        let _ = tokio::task::spawn_blocking(move || {
                            h.reconcile_runtime(&view, listed_at)
                        })
                        .await;
                    }
                    Err(e) => {
                        handler.agent().metrics.cri_list_errors.inc();
                        handler.agent().metrics.cri_connected.set(0);
                        handler.log(&format!("{e}; reconnecting"));
                        cri = None;
                    }
                }
            }
        }
        let h = handler.clone();
        let mut updates = tokio::task::spawn_blocking(move || h.pending_updates())
            .await
            .unwrap_or_default();
        // An answer to the runtime computed after these updates may reach the runtime
        // before them: once they are applied, send again what was superseded meanwhile
        // (a few rounds at most; each round only carries what changed during the last).
        for _ in 0..4 {
            if updates.is_empty() {
                break;
            }
            let Some(p) = handler.plugin_handle() else {
                handler.agent().metrics.unsolicited("failed", updates.len());
                handler.updates_failed(&updates);
                break;
            };
            let Some(sent) = or_stop(&mut stop, p.update_containers(&updates)).await else {
                // Stopping with no answer: the updates count as not applied.
                handler.updates_failed(&updates);
                return;
            };
            match sent {
                Ok(failed) => {
                    let m = &handler.agent().metrics;
                    m.unsolicited("applied", updates.len().saturating_sub(failed.len()));
                    m.unsolicited("failed", failed.len());
                    if !failed.is_empty() {
                        handler.log(&format!(
                            "the runtime failed {} cpuset updates",
                            failed.len()
                        ));
                        handler.updates_failed(&failed);
                    }
                    updates = handler.superseded(&updates);
                }
                Err(e) => {
                    handler.agent().metrics.unsolicited("failed", updates.len());
                    handler.log(&format!("UpdateContainers: {e}"));
                    handler.updates_failed(&updates);
                    break;
                }
            }
        }
        let agent = handler.agent().clone();
        let idle = opts.compact_idle;
        // The kubelet's device checkpoint, looked at again (read when it changed; a bad
        // one is logged and counted here even when nobody asks PodResources).
        let r = tokio::task::spawn_blocking(move || {
            agent.refresh_devices();
            agent.compact_if_idle(idle)
        })
        .await;
        if let Ok(Err(e)) = r {
            handler.log(&format!("compacting the change journal: {e}"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A runtime call that never answers ends at the stop; one that answers is waited for.
    #[tokio::test]
    async fn runtime_calls_give_way_to_a_stop() {
        let (tx, mut rx) = watch::channel(false);
        assert_eq!(or_stop(&mut rx, async { 7 }).await, Some(7));
        let stopper = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(20)).await;
            tx.send(true).unwrap();
            tx
        });
        let t0 = Instant::now();
        let hung = or_stop(&mut rx, std::future::pending::<()>()).await;
        assert_eq!(hung, None);
        assert!(t0.elapsed() < Duration::from_secs(5));
        // already stopped: not even started
        assert_eq!(or_stop(&mut rx, async { 7 }).await, None);
        // a dropped sender stops too
        let (tx2, mut rx2) = watch::channel(false);
        drop(tx2);
        assert_eq!(or_stop(&mut rx2, std::future::pending::<()>()).await, None);
        drop(stopper.await.unwrap());
    }
}
