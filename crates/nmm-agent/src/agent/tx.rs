//! One change to the books ([`Tx`]): the engine's admissions and removals inside
//! [`Agent::transaction`], recorded for the change journal.

use super::device_hints;
use super::pods::{allocation_text, pod_key, trim_pod};
use super::{Agent, AgentError, Inner};
use crate::journal::Op;
use k8s_openapi::api::core::v1::Pod;
use nmm_core::cpumanager::CpuPolicy;
use nmm_core::devicemanager::DeviceManager;
use nmm_core::node::{AdmitResult, Node, RemoveResult};
use nmm_core::pod::PodInfo;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::time::Instant;

pub(super) fn panic_text(p: Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        s.to_string()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "panic".into()
    }
}

/// One change to the books, made inside [`Agent::transaction`]: the engine's
/// admissions and removals, recorded for the journal.
pub struct Tx<'a> {
    pub(super) g: &'a mut Inner,
    pub(super) agent: &'a Agent,
    pub(super) ops: Vec<Op>,
    pub(super) poisoned: Option<String>,
    /// The kubelet's device view this change's admissions take their hints from (`None`:
    /// no device checkpoint configured).
    pub(super) devices: Option<Arc<DeviceManager>>,
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
        // The kubelet has allocated the pod's devices before its containers are created:
        // their NUMA nodes are the Device Manager's hints.
        let hints = self
            .devices
            .as_ref()
            .and_then(|v| device_hints::PodDeviceHints::from_view(v, &info.uid));
        let node = &mut self.g.node;
        let r = match catch_unwind(AssertUnwindSafe(|| {
            device_hints::admit(node, &info, hints.as_ref())
        })) {
            Ok(r) => r?,
            Err(p) => {
                let why = panic_text(p);
                self.poisoned = Some(why.clone());
                return Err(AgentError::Internal(why));
            }
        };
        let elapsed = t0.elapsed();
        let mut r = r;
        if !r.admitted {
            // the log line shows a rejection's merged hint as the kubelet would report it
            r.trace.rank_merges(&self.g.node.topology.policy);
        }
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
            let mut trimmed = trim_pod(pod);
            if let Some(h) = &hints {
                h.annotate(&mut trimmed);
            }
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
