//! Why a pod was admitted or rejected, in plain words: each hint provider's hints, the
//! merged hint and why it won, the policy's verdict, the allocation that failed, and what
//! would make the pod fit (removing a running pod, another topology policy, a smaller
//! request).
//!
//! Pure engine knowledge: [`explain`] replays a history on a [`Node`], admits the pod on a
//! clone of the node it met to get the trace, and re-runs the admission on further clones
//! for the counterfactuals. `nmm explain` renders the [`Explanation`].

use crate::bitmask::{iterate_masks, NumaMask};
use crate::cpumanager::policy_static::{guaranteed_cpus, pod_guaranteed_cpus};
use crate::cpumanager::CpuPolicy;
use crate::cpuset::CpuSet;
use crate::kubelet_config::KubeletConfig;
use crate::machine::Machine;
use crate::memorymanager::policy_static::{container_requests, pod_requests, Requests};
use crate::memorymanager::state::{MachineState, MemoryTable};
use crate::memorymanager::MemoryPolicy;
use crate::node::{Node, StartOptions, StartupError, StepError};
use crate::pod::{ContainerInfo, PodInfo, QosClass};
use crate::quantity::format_human_bytes;
use crate::topology::family::{HintFamily, LargeList};
use crate::topology::hint::{to_large, LargeHints, ProviderHints, TopologyHint};
use crate::topology::merge::filter_providers_hints;
use crate::topology::policy::{MergeOutcome, Policy, PolicyKind};
use crate::topology::{Admission, HintProvider, Scope};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};

/// Up to this many NUMA nodes hint lists are listed in full and the group analysis (which
/// walks every node subset) runs; above, lists stay described.
const MAX_ENUMERATED_NODES: usize = 12;
/// Above this many NUMA nodes the `none` policy is not tried as an alternative: without a
/// merged hint the memory manager searches the masks for its own default placement.
const MAX_NONE_NODES: usize = 16;
/// Pairs of removals are only tried when at most this many pods hold resources.
const MAX_PAIR_CANDIDATES: usize = 12;

mod alternatives;
mod cpu;
mod memory;
mod merge;
mod providers;
mod replay;
#[cfg(test)]
mod tests;
mod text;
mod view;
mod why;

pub use self::text::*;
pub use self::view::*;
use self::{alternatives::*, cpu::*, memory::*, merge::*, providers::*, replay::*, why::*};

/// Replays `h`, then explains the admission of `pod` on the node it leads to.
pub fn explain(h: &History, pod: &PodInfo) -> Result<Explanation, ExplainError> {
    let base = replay(h, h.config, true)?;
    let before = &base.node;
    let mut after = before.clone();
    after.topology.keep_hints = true;
    let mut result = after.admit(pod).map_err(|error| ExplainError::Step {
        index: h.steps.len(),
        error,
    })?;
    // a rejection's merged hint, as the kubelet would report it
    result.trace.rank_merges(&before.topology.policy);
    let trace = &result.trace;
    let policy = &before.topology.policy;

    let pod_merge_rejected = trace.pod_merge.as_ref().is_some_and(|m| !m.admit);
    let failing = if result.admitted {
        None
    } else if pod_merge_rejected {
        Some(Failing {
            index: None,
            container: None,
            provider: None,
        })
    } else {
        trace
            .containers
            .iter()
            .position(|t| t.failed_provider.is_some() || t.merge.as_ref().is_some_and(|m| !m.admit))
            .map(|i| Failing {
                index: Some(i),
                container: pod.containers.get(i),
                provider: trace.containers[i].failed_provider,
            })
            // Stopped before any merge or allocation (the large-machine merge gave up).
            .or(Some(Failing {
                index: None,
                container: None,
                provider: None,
            }))
    };

    // Decisions: the pod-scope merge, or one per evaluated container.
    let mut decisions = Vec::new();
    if let Some(m) = &trace.pod_merge {
        let a = answers(&trace.pod_hints, &trace.pod_families);
        decisions.push(decision(before, pod, None, &a, m));
    }
    for (i, t) in trace.containers.iter().enumerate() {
        if let Some(m) = &t.merge {
            let met = met_node(before, pod, trace, i);
            let a = answers(&t.provider_hints, &t.provider_families);
            decisions.push(decision(&met, pod, pod.containers.get(i), &a, m));
        }
    }

    // Containers.
    let fail_index = failing.as_ref().and_then(|f| f.index);
    let containers = pod
        .containers
        .iter()
        .zip(&result.containers)
        .zip(&trace.containers)
        .enumerate()
        .map(|(i, ((c, r), t))| {
            let outcome = if result.admitted {
                "admitted"
            } else if pod_merge_rejected {
                "topology-rejected"
            } else {
                match fail_index {
                    Some(f) if f == i && t.failed_provider.is_some() => "allocation-failed",
                    Some(f) if f == i => "topology-rejected",
                    Some(f) if i > f => "not-reached",
                    _ => "released",
                }
            };
            let failure = if fail_index == Some(i) {
                Some(Failure {
                    provider: t.failed_provider.unwrap_or("topology").to_string(),
                    error: result.message.clone().unwrap_or_default(),
                })
            } else {
                None
            };
            ContainerView {
                name: c.name.clone(),
                init: c.init,
                sidecar: c.restartable,
                requests: c
                    .requests
                    .iter()
                    .map(|(k, q)| (k.clone(), q.canonical()))
                    .collect(),
                exclusive_cpus: if matches!(before.cpu.policy, CpuPolicy::Static(_)) {
                    guaranteed_cpus(pod, c)
                } else {
                    0
                },
                outcome: outcome.to_string(),
                affinity: r.affinity.or(t.affinity).map(HintView::from),
                cpus: r.cpus.to_string(),
                memory: r
                    .memory
                    .iter()
                    .map(|b| BlockView {
                        resource: b.kind.clone(),
                        size: b.size,
                        numa_nodes: b.numa_affinity.clone(),
                    })
                    .collect(),
                failure,
            }
        })
        .collect();

    // Facts: the state the failing container (or the pod) met, for its requests.
    let (subject, met, req, want_cpus) = match &failing {
        Some(Failing {
            index: Some(k),
            container: Some(c),
            ..
        }) => (
            format!("container {}", c.name),
            met_node(before, pod, trace, *k),
            container_requests(c).unwrap_or_default(),
            guaranteed_cpus(pod, c),
        ),
        _ => (
            format!("pod {}", pod.name),
            before.clone(),
            pod_requests(pod).unwrap_or_default(),
            pod_guaranteed_cpus(pod),
        ),
    };
    let facts = Facts {
        subject,
        memory: memory_facts(&met, &req),
        cpu: cpu_fact(&met, want_cpus),
    };

    // Why.
    let mut size_fixes = Vec::new();
    let why = match &failing {
        None => Vec::new(),
        Some(f) => match f.provider {
            Some("memory") => {
                let hint = f.index.and_then(|i| trace.containers[i].affinity);
                let hints = match f.index {
                    Some(i) if trace.pod_merge.is_none() => answers(
                        &trace.containers[i].provider_hints,
                        &trace.containers[i].provider_families,
                    ),
                    _ => answers(&trace.pod_hints, &trace.pod_families),
                };
                let no_hints = hints
                    .iter()
                    .any(|(p, h)| *p == "memory" && h.as_ref().is_some_and(|m| m.is_empty()));
                memory_allocation_why(
                    &met,
                    &req,
                    hint,
                    result.message.as_deref().unwrap_or(""),
                    no_hints,
                    &mut size_fixes,
                )
            }
            Some("cpu") => {
                cpu_allocation_why(&facts, result.message.as_deref().unwrap_or(""), want_cpus)
            }
            Some(other) => vec![format!(
                "the {other} manager's Allocate failed: {}",
                result.message.as_deref().unwrap_or("")
            )],
            None => {
                let (hints, outcome) = match f.index {
                    Some(i) => (
                        answers(
                            &trace.containers[i].provider_hints,
                            &trace.containers[i].provider_families,
                        ),
                        trace.containers[i].merge.as_ref(),
                    ),
                    None => (
                        answers(&trace.pod_hints, &trace.pod_families),
                        trace.pod_merge.as_ref(),
                    ),
                };
                match outcome {
                    Some(o) => {
                        topology_why(&met, pod, f.container, &hints, o, &facts, &mut size_fixes)
                    }
                    None => vec![format!(
                        "the admission stopped before any merge: {}: {}",
                        result.reason.as_deref().unwrap_or(""),
                        result.message.as_deref().unwrap_or("")
                    )],
                }
            }
        },
    };

    // The same sentence twice (one per provider's pass over the same shortage) says nothing new.
    let mut said = BTreeSet::new();
    let why: Vec<String> = why.into_iter().filter(|w| said.insert(w.clone())).collect();

    let verdict = match &failing {
        None => format!("pod {} is admitted ({})", pod.name, placement_text(&result)),
        Some(f) => {
            let at = f
                .container
                .map(|c| format!(" at container {}", c.name))
                .unwrap_or_default();
            let reason = result.reason.clone().unwrap_or_default();
            match f.provider {
                None => format!(
                    "pod {} is rejected by the {} policy{at} ({reason})",
                    pod.name,
                    policy.kind.name()
                ),
                Some(p) => format!(
                    "pod {} is rejected: the {} manager could not allocate{} ({reason})",
                    pod.name,
                    if p == "cpu" { "CPU" } else { p },
                    f.container
                        .map(|c| format!(" container {}", c.name))
                        .unwrap_or_default()
                ),
            }
        }
    };

    let (alternatives, mut fixes) = if failing.is_some() {
        let (a, f) = alternatives(h, &base, pod);
        (Some(a), f)
    } else {
        (None, Vec::new())
    };
    // Request-size suggestions come after removals (they start with "or").
    let insert_at = fixes
        .iter()
        .position(|f| f.starts_with("under ") || f.starts_with("it would be rejected under"))
        .unwrap_or(fixes.len());
    // A smaller request is suggested only if the engine admits the pod with it.
    let mut seen = BTreeSet::new();
    size_fixes.retain(|f| seen.insert(f.clone()));
    let target = failing.as_ref().and_then(|f| f.index).or_else(|| {
        // Pod scope: the one container that asks for the resource.
        let r = size_fixes.first().map(|(r, _)| r.as_str())?;
        let mut with = pod
            .containers
            .iter()
            .enumerate()
            .filter(|(_, c)| c.requests.contains_key(r));
        match (with.next(), with.next()) {
            (Some((i, _)), None) => Some(i),
            _ => None,
        }
    });
    let mut size_fixes: Vec<String> = match target {
        None => Vec::new(),
        Some(k) => size_fixes
            .into_iter()
            .filter(|(r, b)| admits(before, &with_request(pod, k, r, *b), &[]))
            .map(|(r, b)| {
                format!(
                    "or lower its {r} request to at most {} so that one NUMA node can hold it",
                    bytes_at_most(b)
                )
            })
            .collect(),
    };
    let follows_a_fit = insert_at > 0
        && fixes.get(insert_at - 1).is_some_and(|f| {
            f.starts_with("it fits")
                || f.starts_with("no single removal")
                || f.starts_with("removing one or two")
        });
    if !follows_a_fit {
        // No removal that works to follow: drop the leading "or".
        for f in size_fixes.iter_mut() {
            if let Some(rest) = f.strip_prefix("or ") {
                *f = rest.to_string();
            }
        }
    }
    for (k, f) in size_fixes.into_iter().enumerate() {
        fixes.insert(insert_at + k, f);
    }

    Ok(Explanation {
        pod: PodView {
            name: pod.name.clone(),
            uid: pod.uid.clone(),
            namespace: pod.namespace.clone(),
            qos: pod.qos.as_str().to_string(),
        },
        node: NodeView {
            topology_policy: policy.kind.name().to_string(),
            topology_scope: match before.topology.scope {
                Scope::Pod => "pod",
                _ => before.config.topology_manager_scope(),
            }
            .to_string(),
            prefer_closest_numa_nodes: policy.options.prefer_closest_numa,
            cpu_policy: before.cpu.policy_name().to_string(),
            memory_policy: before.memory.policy_name().to_string(),
            numa_nodes: before.machine.node_ids(),
        },
        admitted: result.admitted,
        reason: result.reason.clone(),
        message: result.message.clone(),
        verdict,
        decisions,
        containers,
        why,
        fixes,
        facts,
        alternatives,
    })
}
