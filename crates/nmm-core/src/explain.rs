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

/// One event of the history before the pod being explained.
#[derive(Debug, Clone)]
pub enum HistoryStep {
    Admit(PodInfo),
    /// A pod deletion, by uid.
    Remove(String),
}

/// What a node started from and went through before the pod being explained.
#[derive(Debug, Clone, Copy)]
pub struct History<'a> {
    pub machine: &'a Machine,
    pub config: &'a KubeletConfig,
    pub start: &'a StartOptions,
    pub steps: &'a [HistoryStep],
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExplainError {
    #[error("the kubelet would not start ({}): {}", .0.stage, .0.message)]
    Startup(StartupError),
    /// `index` is the position in the history (`steps.len()` for the pod itself).
    #[error("step {index}: {error}")]
    Step { index: usize, error: StepError },
}

/// A topology hint for people and scripts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HintView {
    /// NUMA node ids; `null` = any node.
    pub numa_nodes: Option<Vec<u32>>,
    pub preferred: bool,
    /// `{0,1} preferred`, `any`.
    pub text: String,
}

impl From<TopologyHint> for HintView {
    fn from(h: TopologyHint) -> Self {
        HintView {
            numa_nodes: h.affinity.map(NumaMask::to_vec),
            preferred: h.preferred,
            text: hint_text(&h),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PodView {
    pub name: String,
    pub uid: String,
    pub namespace: String,
    pub qos: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeView {
    pub topology_policy: String,
    pub topology_scope: String,
    pub prefer_closest_numa_nodes: bool,
    pub cpu_policy: String,
    pub memory_policy: String,
    pub numa_nodes: Vec<u32>,
}

/// One resource's hint list as a provider gave it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ResourceHints {
    pub resource: String,
    /// `null`: no preference for this resource; `[]`: it cannot be satisfied.
    pub hints: Option<Vec<HintView>>,
    pub text: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ProviderView {
    pub provider: String,
    /// Empty when the provider has no preference at all.
    pub resources: Vec<ResourceHints>,
    /// `memory: {0} preferred, {1} preferred, {0,1}`, `cpu: no preference (...)`.
    pub text: String,
}

/// What a policy would have made of the same hints.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PolicyVerdict {
    pub policy: String,
    pub merged: HintView,
    pub admit: bool,
}

/// One merge of the Topology Manager: per container (container scope) or for the pod.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Decision {
    /// `container` or `pod`.
    pub scope: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub container: Option<String>,
    pub providers: Vec<ProviderView>,
    pub merged: HintView,
    pub admit: bool,
    /// Why the merged hint won.
    pub why_merged: String,
    /// The configured policy's verdict on it.
    pub verdict: String,
    /// The same hints under every policy.
    pub under_each_policy: Vec<PolicyVerdict>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BlockView {
    pub resource: String,
    pub size: u64,
    pub numa_nodes: Vec<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Failure {
    /// `cpu`, `memory`, or `topology` (the policy rejected the merged hint).
    pub provider: String,
    pub error: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerView {
    pub name: String,
    pub init: bool,
    pub sidecar: bool,
    /// Resource -> quantity as written (canonical form).
    pub requests: BTreeMap<String, String>,
    pub exclusive_cpus: usize,
    /// `admitted`, `released` (allocated, then released because a later container
    /// failed), `topology-rejected`, `allocation-failed` or `not-reached`.
    pub outcome: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub affinity: Option<HintView>,
    pub cpus: String,
    pub memory: Vec<BlockView>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure: Option<Failure>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeMemory {
    pub node: u32,
    pub allocatable: u64,
    pub free: u64,
    pub assignments: i64,
    /// The NUMA group the node belongs to (itself alone when not grouped).
    pub group: Vec<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Amount {
    pub numa_nodes: Vec<u32>,
    pub bytes: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MemoryFact {
    pub resource: String,
    pub request: u64,
    pub nodes: Vec<NodeMemory>,
    /// The most free memory on one node that may be used alone.
    pub largest_free_node: Option<Amount>,
    /// The most free memory on a group of several nodes the memory manager would allow.
    pub largest_free_group: Option<Amount>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeCpus {
    pub node: u32,
    /// Free exclusive CPUs (the shared pool minus the reserved CPUs).
    pub free: usize,
    pub cpus: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CpuFact {
    pub request: usize,
    pub reserved: String,
    pub nodes: Vec<NodeCpus>,
}

/// The machine state the failing container (or the pod) met, for its requests.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Facts {
    /// Whose requests these are: `container c` or `pod p`.
    pub subject: String,
    pub memory: Vec<MemoryFact>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu: Option<CpuFact>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Removal {
    pub uid: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub memory_bytes: u64,
    pub cpus: usize,
    /// `memory 10Gi on node 0, 2 exclusive CPUs`.
    pub frees: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PolicyAlternative {
    pub policy: String,
    /// `null` when the kubelet would not start with it.
    pub admitted: Option<bool>,
    pub detail: String,
    /// Earlier admissions that would end differently under this policy.
    pub earlier_changes: usize,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Alternatives {
    /// Running pods that hold exclusive CPUs or pinned memory.
    pub running_pods: usize,
    /// Single removals after which the pod is admitted, smallest first.
    pub single_removals: Vec<Removal>,
    /// When no single removal is enough: the smallest pair that is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pair_removal: Option<Vec<Removal>>,
    pub fits_on_empty_node: bool,
    pub policies: Vec<PolicyAlternative>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Explanation {
    pub pod: PodView,
    pub node: NodeView,
    pub admitted: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// One sentence: what happened.
    pub verdict: String,
    pub decisions: Vec<Decision>,
    pub containers: Vec<ContainerView>,
    /// Why the rejection happened, in plain words (empty when admitted).
    pub why: Vec<String>,
    /// What would make it fit (empty when admitted).
    pub fixes: Vec<String>,
    pub facts: Facts,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alternatives: Option<Alternatives>,
}

// ---------------------------------------------------------------------------------------
// Words.

/// `{0,1}`; runs of three or more nodes as ranges: `{0-33}`.
pub fn mask_text(m: NumaMask) -> String {
    let ids: Vec<u32> = m.ids().collect();
    let mut parts: Vec<String> = Vec::new();
    let mut i = 0;
    while i < ids.len() {
        let mut j = i;
        while j + 1 < ids.len() && ids[j + 1] == ids[j] + 1 {
            j += 1;
        }
        if j >= i + 2 {
            parts.push(format!("{}-{}", ids[i], ids[j]));
        } else {
            parts.extend(ids[i..=j].iter().map(|x| x.to_string()));
        }
        i = j + 1;
    }
    format!("{{{}}}", parts.join(","))
}

fn affinity_text(a: Option<NumaMask>) -> String {
    a.map_or_else(|| "any".to_string(), mask_text)
}

/// `{0} preferred`, `{0,1}`, `any preferred`.
pub fn hint_text(h: &TopologyHint) -> String {
    format!(
        "{}{}",
        affinity_text(h.affinity),
        if h.preferred { " preferred" } else { "" }
    )
}

/// At most this many hints are named in a list.
const MAX_LISTED_HINTS: usize = 16;

fn list_text(l: &[TopologyHint]) -> String {
    let mut parts: Vec<String> = l.iter().take(MAX_LISTED_HINTS).map(hint_text).collect();
    if l.len() > MAX_LISTED_HINTS {
        parts.push(format!("… ({} in all)", l.len()));
    }
    parts.join(", ")
}

/// `{0}, preferred`, `any node, not preferred`.
pub fn hint_words(h: &TopologyHint) -> String {
    format!(
        "{}, {}",
        h.affinity.map_or_else(|| "any node".to_string(), mask_text),
        if h.preferred {
            "preferred"
        } else {
            "not preferred"
        }
    )
}

/// `100Gi`, `23.9Gi`.
pub fn bytes_text(b: u64) -> String {
    format_human_bytes(b)
}

/// Like [`bytes_text`], rounded down (for "at most" amounts): `123.8Gi` for 123.898Gi.
pub fn bytes_at_most(b: u64) -> String {
    const UNITS: [&str; 6] = ["Ki", "Mi", "Gi", "Ti", "Pi", "Ei"];
    if b < 1024 {
        return b.to_string();
    }
    let mut idx = 0usize;
    while idx + 1 < UNITS.len() && b >= 1u64 << (10 * (idx + 2)) {
        idx += 1;
    }
    let unit = 1u128 << (10 * (idx + 1));
    let tenths = b as u128 * 10 / unit;
    let (whole, frac) = (tenths / 10, tenths % 10);
    if frac == 0 {
        format!("{whole}{}", UNITS[idx])
    } else {
        format!("{whole}.{frac}{}", UNITS[idx])
    }
}

/// `a`, `a and b`, `a, b and c`.
fn and_list(items: &[String]) -> String {
    match items {
        [] => String::new(),
        [a] => a.clone(),
        [rest @ .., last] => format!("{} and {last}", rest.join(", ")),
    }
}

fn nodes_text(nodes: &[u32]) -> String {
    let ids: Vec<String> = nodes.iter().map(|n| n.to_string()).collect();
    if ids.len() == 1 {
        format!("node {}", ids[0])
    } else {
        format!("nodes {}", and_list(&ids))
    }
}

fn requests_text(req: &Requests) -> String {
    let parts: Vec<String> = req
        .iter()
        .map(|(r, b)| format!("{} {r}", bytes_text(*b)))
        .collect();
    and_list(&parts)
}

fn pod_ref(name: Option<&str>, uid: &str) -> String {
    match name {
        Some(n) if !n.is_empty() => format!("pod {n}"),
        _ => format!("pod with uid {uid}"),
    }
}

fn mask_of(ids: &[u32]) -> NumaMask {
    ids.iter()
        .fold(NumaMask::EMPTY, |m, &i| m.or(NumaMask::single(i)))
}

// ---------------------------------------------------------------------------------------
// Replays.

struct Replayed {
    node: Node,
    /// Live pods that may hold resources: uid -> name (None for pods restored from the
    /// checkpoints).
    live: BTreeMap<String, Option<String>>,
    /// Per history step: the admission's outcome (None for removals and failed steps).
    outcomes: Vec<Option<bool>>,
}

fn replay(h: &History, config: &KubeletConfig, strict: bool) -> Result<Replayed, ExplainError> {
    let mut node = Node::start(h.machine.clone(), config.clone(), h.start.clone())
        .map_err(ExplainError::Startup)?;
    if h.machine.nodes.len() <= MAX_ENUMERATED_NODES {
        // Small enough to list every mask as the kubelet does: the explanation can then
        // show each provider's full hint list (the decisions are the same either way).
        node.topology.large = false;
        node.cpu.set_large(false);
        node.memory.set_large(false);
    }
    let mut live: BTreeMap<String, Option<String>> = BTreeMap::new();
    for uid in node
        .memory
        .assignments()
        .keys()
        .chain(node.cpu.assignments().keys())
    {
        live.insert(uid.clone(), None);
    }
    let mut outcomes = Vec::with_capacity(h.steps.len());
    for (index, s) in h.steps.iter().enumerate() {
        match s {
            HistoryStep::Admit(p) => match node.admit(p) {
                Ok(r) => {
                    if r.admitted {
                        live.insert(p.uid.clone(), Some(p.name.clone()));
                    }
                    outcomes.push(Some(r.admitted));
                }
                Err(error) if strict => return Err(ExplainError::Step { index, error }),
                Err(_) => outcomes.push(None),
            },
            HistoryStep::Remove(uid) => {
                node.remove(uid);
                live.remove(uid);
                outcomes.push(None);
            }
        }
    }
    live.retain(|uid, _| node.is_live(uid));
    Ok(Replayed {
        node,
        live,
        outcomes,
    })
}

/// The node as container `k` met it: the node before the pod, with the containers before
/// `k` allocated with their stored hints.
fn met_node(before: &Node, pod: &PodInfo, trace: &Admission, k: usize) -> Node {
    let mut n = before.clone();
    for (c, t) in pod.containers.iter().zip(&trace.containers).take(k) {
        let hint = t.affinity.unwrap_or(TopologyHint::NONE);
        let _ = n.cpu.allocate(pod, c, hint);
        let _ = n.memory.allocate(pod, c, hint);
    }
    n
}

// ---------------------------------------------------------------------------------------
// Memory state analysis.

fn table(ms: &MachineState, node: u32, r: &str) -> MemoryTable {
    ms.get(&node)
        .and_then(|n| n.memory_map.get(r))
        .copied()
        .unwrap_or_default()
}

fn sum(ms: &MachineState, m: NumaMask, r: &str, f: fn(&MemoryTable) -> u64) -> u64 {
    m.ids()
        .map(|n| f(&table(ms, n, r)))
        .fold(0u64, u64::wrapping_add)
}

fn usable_alone(ms: &MachineState, n: u32) -> bool {
    ms.get(&n).is_none_or(|s| s.cells.len() <= 1)
}

/// Why the memory manager would not place anything on `mask` (its group rules in
/// `calculateHints`), per node; empty when the mask is allowed.
fn group_obstacles(ms: &MachineState, mask: NumaMask) -> Vec<(u32, String)> {
    let mut out = Vec::new();
    if mask.count() == 1 {
        let n = mask.to_vec()[0];
        if let Some(s) = ms.get(&n).filter(|s| s.cells.len() > 1) {
            out.push((
                n,
                format!("belongs to the group {}", mask_text(mask_of(&s.cells))),
            ));
        }
        return out;
    }
    for n in mask.ids() {
        let Some(s) = ms.get(&n) else { continue };
        if s.number_of_assignments <= 0 {
            continue;
        }
        if s.cells.len() == 1 {
            out.push((n, "already holds single-NUMA allocations".to_string()));
        } else if mask_of(&s.cells) != mask || s.cells.len() != mask.count() as usize {
            out.push((
                n,
                format!("belongs to the group {}", mask_text(mask_of(&s.cells))),
            ));
        }
    }
    out
}

/// `node 1 already holds single-NUMA allocations`, `nodes 0 and 1 already hold ...`.
fn obstacle_sentence(obstacles: &BTreeMap<u32, String>) -> String {
    let mut by_reason: BTreeMap<&str, Vec<u32>> = BTreeMap::new();
    for (n, why) in obstacles {
        by_reason.entry(why.as_str()).or_default().push(*n);
    }
    let parts: Vec<String> = by_reason
        .into_iter()
        .map(|(why, nodes)| {
            let why = if nodes.len() > 1 {
                why.replacen("holds", "hold", 1)
                    .replacen("belongs", "belong", 1)
            } else {
                why.to_string()
            };
            format!("{} {why}", nodes_text(&nodes))
        })
        .collect();
    and_list(&parts)
}

/// The most free `r` on one node usable alone.
fn largest_free_node(ms: &MachineState, r: &str) -> Option<(u32, u64)> {
    let mut best: Option<(u32, u64)> = None;
    for &n in ms.keys() {
        if !usable_alone(ms, n) {
            continue;
        }
        let f = table(ms, n, r).free;
        if best.is_none_or(|(_, b)| f > b) {
            best = Some((n, f));
        }
    }
    best
}

fn largest_allocatable_node(ms: &MachineState, r: &str) -> Option<(u32, u64)> {
    let mut best: Option<(u32, u64)> = None;
    for &n in ms.keys() {
        let a = table(ms, n, r).allocatable;
        if best.is_none_or(|(_, b)| a > b) {
            best = Some((n, a));
        }
    }
    best
}

/// How many NUMA nodes an empty machine needs for `want` of `r` (the largest first).
fn nodes_needed(ms: &MachineState, r: &str, want: u64) -> u32 {
    let mut alloc: Vec<u64> = ms.keys().map(|&n| table(ms, n, r).allocatable).collect();
    alloc.sort_unstable_by(|a, b| b.cmp(a));
    let mut total = 0u64;
    for (i, a) in alloc.iter().enumerate() {
        total = total.saturating_add(*a);
        if total >= want {
            return i as u32 + 1;
        }
    }
    alloc.len() as u32
}

fn enumerable(ms: &MachineState) -> bool {
    ms.len() <= MAX_ENUMERATED_NODES
}

/// The allowed multi-node group with the most free `r`.
fn largest_free_group(ms: &MachineState, r: &str) -> Option<(NumaMask, u64)> {
    if !enumerable(ms) {
        return None;
    }
    let ids: Vec<u32> = ms.keys().copied().collect();
    let mut best: Option<(NumaMask, u64)> = None;
    iterate_masks(&ids, |m| {
        if m.count() < 2 || !group_obstacles(ms, m).is_empty() {
            return;
        }
        let f = sum(ms, m, r, |t| t.free);
        if best.is_none_or(|(_, b)| f > b) {
            best = Some((m, f));
        }
    });
    best
}

/// Why no group of several nodes among `candidates` can hold `req`, in words.
fn spanning_sentence(
    ms: &MachineState,
    req: &Requests,
    candidates: impl Fn(NumaMask) -> bool,
    wider: bool,
) -> String {
    if !enumerable(ms) {
        return String::new();
    }
    let ids: Vec<u32> = ms.keys().copied().collect();
    let mut big_enough = false;
    let mut fits: Option<NumaMask> = None;
    let mut blocked: BTreeMap<u32, String> = BTreeMap::new();
    let mut short: Option<(NumaMask, String)> = None;
    let mut short_free = 0u64;
    iterate_masks(&ids, |m| {
        if m.count() < 2 || !candidates(m) || fits.is_some() {
            return;
        }
        if req
            .iter()
            .any(|(r, &want)| sum(ms, m, r, |t| t.allocatable) < want)
        {
            return;
        }
        big_enough = true;
        let obstacles = group_obstacles(ms, m);
        if !obstacles.is_empty() {
            blocked.extend(obstacles);
            return;
        }
        let lacking: Vec<(&String, u64)> = req
            .keys()
            .map(|r| (r, sum(ms, m, r, |t| t.free)))
            .filter(|(r, f)| *f < req[*r])
            .collect();
        if lacking.is_empty() {
            fits = Some(m);
            return;
        }
        let total: u64 = lacking.iter().map(|(_, f)| f).sum();
        if short.is_none() || total > short_free {
            short_free = total;
            let text = lacking
                .iter()
                .map(|(r, f)| format!("{} {r}", bytes_text(*f)))
                .collect::<Vec<_>>();
            short = Some((m, and_list(&text)));
        }
    });
    let group = if wider {
        "wider group"
    } else {
        "group of nodes"
    };
    if let Some(m) = fits {
        return format!("the group {} could hold it", mask_text(m));
    }
    if !big_enough {
        return format!("no {group} could hold it even if it were empty");
    }
    match short {
        None => format!(
            "no {group} is allowed because {}",
            obstacle_sentence(&blocked)
        ),
        Some((m, free)) => {
            let mut s = format!(
                "the largest allowed {group} {} has only {free} free",
                mask_text(m)
            );
            if !blocked.is_empty() {
                s.push_str(&format!(
                    "; others are not allowed because {}",
                    obstacle_sentence(&blocked)
                ));
            }
            s
        }
    }
}

/// `memory: needs 100Gi on one NUMA node; the largest free single node has 23.9Gi (node 1)`,
/// then why spanning nodes does not help.
fn single_node_sentence(ms: &MachineState, r: &str, want: u64, kind: PolicyKind) -> String {
    let mut s = format!("{r}: needs {} on one NUMA node; ", bytes_text(want));
    match largest_allocatable_node(ms, r) {
        Some((n, a)) if a < want => s.push_str(&format!(
            "no NUMA node can hold that even when empty (the largest allocatable is {} on node {n})",
            bytes_text(a)
        )),
        _ => match largest_free_node(ms, r) {
            Some((n, f)) => s.push_str(&format!(
                "the largest free single node has {} (node {n})",
                bytes_text(f)
            )),
            None => s.push_str("every NUMA node belongs to a multi-node group and cannot be used alone"),
        },
    }
    if kind == PolicyKind::SingleNumaNode {
        s.push_str("; single-numa-node forbids spanning nodes");
    } else if ms.len() > 1 {
        let one: Requests = [(r.to_string(), want)].into();
        let span = spanning_sentence(ms, &one, |_| true, false);
        if !span.is_empty() {
            s.push_str("; ");
            s.push_str(&span);
        }
    }
    s
}

// ---------------------------------------------------------------------------------------
// Hints and merges in words.

fn cpu_no_preference(node: &Node, pod: &PodInfo, c: Option<&ContainerInfo>) -> String {
    if matches!(node.cpu.policy, CpuPolicy::None) {
        return "the CPU manager policy is none: no exclusive CPUs".into();
    }
    if pod.qos != QosClass::Guaranteed {
        return format!(
            "the pod is {}, not Guaranteed: it runs on the shared CPU pool",
            pod.qos.as_str()
        );
    }
    match c {
        Some(c) => match c.requests.get("cpu") {
            None => "the container requests no CPU".into(),
            Some(q) => format!(
                "the CPU request {} is not a whole number: the container runs on the shared pool",
                q.canonical()
            ),
        },
        None => "no container asks for whole exclusive CPUs".into(),
    }
}

fn memory_no_preference(node: &Node, pod: &PodInfo) -> String {
    if matches!(node.memory.policy, MemoryPolicy::None) {
        return "the memory manager policy is None".into();
    }
    if pod.qos != QosClass::Guaranteed {
        return format!(
            "the pod is {}, not Guaranteed: its memory is not pinned",
            pod.qos.as_str()
        );
    }
    "its existing allocation does not match the request".into()
}

fn subject_requests(pod: &PodInfo, c: Option<&ContainerInfo>) -> Requests {
    match c {
        Some(c) => container_requests(c).unwrap_or_default(),
        None => pod_requests(pod).unwrap_or_default(),
    }
}

/// A provider's answer in the large-machine shape (explicit lists stay explicit).
type Answer = (&'static str, LargeHints);

/// The providers' answers of one merge: the described lists on large machines, else the
/// explicit ones.
fn answers(
    hints: &[(&'static str, ProviderHints)],
    families: &[(&'static str, LargeHints)],
) -> Vec<Answer> {
    if hints.is_empty() && !families.is_empty() {
        families.to_vec()
    } else {
        hints
            .iter()
            .map(|(p, h)| (*p, to_large(h.clone())))
            .collect()
    }
}

/// The answers as explicit lists, when none is described.
fn explicit(answers: &[Answer]) -> Option<Vec<ProviderHints>> {
    answers
        .iter()
        .map(|(_, h)| match h {
            None => Some(None),
            Some(m) => m
                .iter()
                .map(|(r, l)| match l {
                    None => Some((r.clone(), None)),
                    Some(LargeList::Explicit(v)) => Some((r.clone(), Some(v.clone()))),
                    Some(LargeList::Family(_)) => None,
                })
                .collect::<Option<BTreeMap<_, _>>>()
                .map(Some),
        })
        .collect()
}

/// At most this many single-node members are named when describing a family.
const MAX_NAMED_MEMBERS: usize = 8;

fn family_singles(f: &dyn HintFamily) -> Vec<NumaMask> {
    f.universe()
        .ids()
        .map(NumaMask::single)
        .filter(|&m| f.get(m) == Some(true))
        .collect()
}

fn named(masks: &[NumaMask]) -> String {
    let mut parts: Vec<String> = masks
        .iter()
        .take(MAX_NAMED_MEMBERS)
        .map(|m| mask_text(*m))
        .collect();
    if masks.len() > MAX_NAMED_MEMBERS {
        parts.push(format!("… ({} in all)", masks.len()));
    }
    parts.join(", ")
}

/// A described list in words.
fn family_text(f: &dyn HintFamily) -> String {
    let singles = family_singles(f);
    let mut sizes = f.preferred_sizes();
    if let Some(min) = f.min_size() {
        sizes.retain(|&s| s >= min);
    }
    let universe = f.universe();
    let within = format!("{} NUMA nodes", universe.count());
    if !singles.is_empty() {
        let list: Vec<String> = named(&singles)
            .split(", ")
            .map(|s| {
                if s.starts_with('{') {
                    format!("{s} preferred")
                } else {
                    s.to_string()
                }
            })
            .collect();
        return format!(
            "{}, and wider masks of the {within} (described, not listed)",
            list.join(", ")
        );
    }
    let sizes: Vec<String> = sizes.iter().map(|s| s.to_string()).collect();
    match f.min_size() {
        None => "no hint: it cannot be satisfied".into(),
        Some(min) if sizes.is_empty() => format!(
            "masks of {min} or more of the {within}, none preferred (described, not listed)"
        ),
        Some(min) => format!(
            "masks of {min} or more of the {within}; preferred: masks of {} nodes (described, not listed)",
            sizes.join(" or ")
        ),
    }
}

/// What a provider said about one resource, before any filtering.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ListState {
    /// A nil answer: no preference.
    NoPreference,
    /// An empty answer (the memory manager found no place): read as no preference.
    NoHints,
    /// An empty list: the resource cannot be satisfied.
    CannotSatisfy,
    Hints,
}

/// One hint list of a merge, summarised.
#[derive(Debug, Clone)]
struct ListInfo {
    label: String,
    state: ListState,
    /// Preferred masks in words (`{0}, {1}`, `masks of 2 nodes`), if any.
    prefers: Option<String>,
    /// Has a preferred "any node" hint.
    any_preferred: bool,
    /// The size of the narrowest preferred mask.
    narrowest_preferred: Option<u32>,
    /// Something survives single-numa-node's filter (preferred single-node or any).
    single_ok: bool,
    /// The size of the narrowest member.
    min_size: Option<u32>,
}

fn list_info(label: String, l: &LargeList) -> ListInfo {
    match l {
        LargeList::Explicit(v) => {
            let preferred: Vec<&TopologyHint> = v.iter().filter(|h| h.preferred).collect();
            let masks: Vec<NumaMask> = preferred.iter().filter_map(|h| h.affinity).collect();
            ListInfo {
                label,
                state: if v.is_empty() {
                    ListState::CannotSatisfy
                } else {
                    ListState::Hints
                },
                prefers: (!masks.is_empty()).then(|| named(&masks)),
                any_preferred: preferred.iter().any(|h| h.affinity.is_none()),
                narrowest_preferred: preferred
                    .iter()
                    .filter_map(|h| h.affinity.map(|m| m.count()))
                    .min(),
                single_ok: preferred
                    .iter()
                    .any(|h| h.affinity.is_none_or(|m| m.count() == 1)),
                min_size: v.iter().filter_map(|h| h.affinity.map(|m| m.count())).min(),
            }
        }
        LargeList::Family(f) => {
            let singles = family_singles(f.as_ref());
            let mut sizes = f.preferred_sizes();
            // Preferred sizes below the narrowest member have no member.
            if let Some(min) = f.min_size() {
                sizes.retain(|&s| s >= min);
            }
            ListInfo {
                label,
                state: if f.min_size().is_none() {
                    ListState::CannotSatisfy
                } else {
                    ListState::Hints
                },
                prefers: if !singles.is_empty() {
                    Some(named(&singles))
                } else if sizes.is_empty() {
                    None
                } else {
                    Some(format!(
                        "masks of {} nodes",
                        sizes
                            .iter()
                            .map(|s| s.to_string())
                            .collect::<Vec<_>>()
                            .join(" or ")
                    ))
                },
                any_preferred: false,
                narrowest_preferred: sizes.iter().copied().min(),
                single_ok: !singles.is_empty(),
                min_size: f.min_size(),
            }
        }
    }
}

/// One entry per hint list the merge sees, in its order.
fn list_infos(answers: &[Answer]) -> Vec<ListInfo> {
    let simple = |label: &str, state| ListInfo {
        label: label.to_string(),
        state,
        prefers: None,
        any_preferred: true,
        narrowest_preferred: None,
        single_ok: true,
        min_size: None,
    };
    let mut out = Vec::new();
    for (p, h) in answers {
        match h {
            None => out.push(simple(p, ListState::NoPreference)),
            Some(m) if m.is_empty() => out.push(simple(p, ListState::NoHints)),
            Some(m) => out.extend(m.iter().map(|(r, l)| match l {
                None => simple(r, ListState::NoPreference),
                Some(l) => list_info(r.clone(), l),
            })),
        }
    }
    out
}

fn provider_view(
    node: &Node,
    pod: &PodInfo,
    c: Option<&ContainerInfo>,
    provider: &str,
    hints: &LargeHints,
) -> ProviderView {
    let no_pref = |why: String| ProviderView {
        provider: provider.to_string(),
        resources: Vec::new(),
        text: format!("{provider}: no preference ({why})"),
    };
    match hints {
        None => no_pref(if provider == "cpu" {
            cpu_no_preference(node, pod, c)
        } else {
            memory_no_preference(node, pod)
        }),
        Some(m) if m.is_empty() => {
            let req = subject_requests(pod, c);
            if provider != "memory" {
                no_pref("no hints".into())
            } else if req.is_empty() {
                no_pref("no memory or hugepages request".into())
            } else {
                ProviderView {
                    provider: provider.to_string(),
                    resources: Vec::new(),
                    text: format!(
                        "{provider}: no hints: no NUMA node or allowed group has {} free, and an empty answer reads as no preference",
                        requests_text(&req)
                    ),
                }
            }
        }
        Some(m) => {
            let resources: Vec<ResourceHints> = m
                .iter()
                .map(|(r, l)| {
                    let (text, hints) = match l {
                        None => ("no preference".to_string(), None),
                        Some(LargeList::Explicit(v)) if v.is_empty() => (
                            "no hint: it cannot be satisfied".to_string(),
                            Some(Vec::new()),
                        ),
                        Some(LargeList::Explicit(v)) => (
                            list_text(v),
                            Some(v.iter().copied().map(HintView::from).collect()),
                        ),
                        Some(LargeList::Family(f)) => (family_text(f.as_ref()), None),
                    };
                    ResourceHints {
                        resource: r.clone(),
                        hints,
                        text,
                    }
                })
                .collect();
            let text = resources
                .iter()
                .map(|r| format!("{}: {}", r.resource, r.text))
                .collect::<Vec<_>>()
                .join("; ");
            ProviderView {
                provider: provider.to_string(),
                resources,
                text,
            }
        }
    }
}

/// Masks a merge can produce as preferred: every list holds the mask as a preferred hint
/// or has a preferred "any node" hint (the default mask when every list has one).
fn preferred_candidates(lists: &[Vec<TopologyHint>], all: NumaMask) -> Vec<NumaMask> {
    let accepts = |l: &Vec<TopologyHint>, m: NumaMask| {
        l.iter()
            .any(|h| h.preferred && (h.affinity.is_none() || h.affinity == Some(m)))
    };
    let masks: BTreeSet<NumaMask> = lists
        .iter()
        .flatten()
        .filter(|h| h.preferred)
        .filter_map(|h| h.affinity)
        .collect();
    let mut out: Vec<NumaMask> = masks
        .into_iter()
        .filter(|&m| lists.iter().all(|l| accepts(l, m)))
        .collect();
    let all_any = lists
        .iter()
        .all(|l| l.iter().any(|h| h.preferred && h.affinity.is_none()));
    if all_any && !out.contains(&all) {
        out.push(all);
    }
    out.sort_by(|a, b| {
        if a.is_narrower_than(*b) {
            std::cmp::Ordering::Less
        } else if b.is_narrower_than(*a) {
            std::cmp::Ordering::Greater
        } else {
            std::cmp::Ordering::Equal
        }
    });
    out
}

/// `cpu prefers {0}, {1}; memory prefers {0,1}`.
fn preferences_text(infos: &[ListInfo]) -> String {
    infos
        .iter()
        .map(|i| {
            let label = &i.label;
            match i.state {
                ListState::CannotSatisfy => format!("{label} cannot be satisfied"),
                ListState::NoHints => format!("{label} offered no hints"),
                ListState::NoPreference => format!("{label} has no preference"),
                ListState::Hints if i.any_preferred => format!("{label} has no preference"),
                ListState::Hints => match &i.prefers {
                    Some(p) => format!("{label} prefers {p}"),
                    None => format!("{label} prefers no mask"),
                },
            }
        })
        .collect::<Vec<_>>()
        .join("; ")
}

fn how_ranked(policy: &Policy) -> &'static str {
    if policy.options.prefer_closest_numa && policy.kind != PolicyKind::SingleNumaNode {
        "the closest (fewest nodes, then the lowest average NUMA distance)"
    } else {
        "the narrowest (fewest nodes, then the lowest ids)"
    }
}

/// The explicit hint lists of a merge, before and after the policy's filter.
type RawAndFiltered<'a> = (&'a [Vec<TopologyHint>], &'a [Vec<TopologyHint>]);

fn why_merged(
    policy: &Policy,
    infos: &[ListInfo],
    lists: Option<RawAndFiltered>,
    outcome: &MergeOutcome,
) -> String {
    let cannot: Vec<String> = infos
        .iter()
        .filter(|i| i.state == ListState::CannotSatisfy)
        .map(|i| i.label.clone())
        .collect();
    if !cannot.is_empty() && !outcome.hint.preferred {
        return format!(
            "{} cannot be satisfied (an empty hint list), so no merge can be preferred; the result is {}",
            and_list(&cannot),
            hint_words(&outcome.hint)
        );
    }
    let single = policy.kind == PolicyKind::SingleNumaNode;
    let emptied: Vec<String> = infos
        .iter()
        .filter(|i| single && i.state == ListState::Hints && !i.single_ok)
        .map(|i| i.label.clone())
        .collect();
    if !emptied.is_empty() {
        return format!(
            "single-numa-node keeps only preferred single-node hints, which leaves {} with none; no merge can be preferred, so the result is {}",
            and_list(&emptied),
            hint_words(&outcome.hint)
        );
    }
    let Some((raw, lists)) = lists else {
        // Described lists (large machines): the search finds the kubelet's winner without
        // listing the candidates.
        return if outcome.hint.preferred {
            format!(
                "{} is preferred by every provider and wins as {} (the hint lists of this machine are described and searched in the kubelet's order, not listed)",
                affinity_text(outcome.hint.affinity),
                how_ranked(policy)
            )
        } else {
            format!(
                "no mask is preferred by all providers ({}); best non-preferred is {}",
                preferences_text(infos),
                affinity_text(outcome.hint.affinity)
            )
        };
    };
    let prefix = if single && raw != lists {
        "single-numa-node keeps only preferred single-node hints; "
    } else {
        ""
    };
    let cands = preferred_candidates(lists, policy.numa.all);
    if outcome.hint.preferred {
        let only_any = lists.iter().all(|l| l.iter().all(|h| h.affinity.is_none()));
        if only_any {
            let silent: Vec<String> = infos
                .iter()
                .filter(|i| i.state == ListState::NoHints)
                .map(|i| i.label.clone())
                .collect();
            let note = if silent.is_empty() {
                String::new()
            } else {
                format!(
                    " ({} offered no hints because nothing fits, which reads as no preference)",
                    and_list(&silent)
                )
            };
            return format!(
                "{prefix}no provider has a NUMA preference{note}, so the merged hint is any node"
            );
        }
        let winner = outcome.hint.affinity.unwrap_or(policy.numa.all);
        if cands.len() <= 1 {
            return format!(
                "{prefix}the only preferred mask every provider accepts is {}",
                mask_text(winner)
            );
        }
        let names: Vec<String> = cands.iter().map(|m| mask_text(*m)).collect();
        return format!(
            "{prefix}{} are preferred by every provider; {} wins as {}",
            and_list(&names),
            mask_text(winner),
            how_ranked(policy)
        );
    }
    format!(
        "{prefix}no mask is preferred by all providers ({}); best non-preferred is {}",
        preferences_text(infos),
        affinity_text(outcome.hint.affinity)
    )
}

fn verdict_text(kind: PolicyKind, outcome: &MergeOutcome) -> String {
    match kind {
        PolicyKind::None => "none admits every pod without merging hints".into(),
        PolicyKind::BestEffort => format!(
            "best-effort admits any merged hint; the providers allocate with {}",
            hint_text(&outcome.hint)
        ),
        k if outcome.admit => format!("{} admits: the merged hint is preferred", k.name()),
        k => format!(
            "{} rejects: the merged hint ({}) is not preferred (TopologyAffinityError)",
            k.name(),
            outcome
                .hint
                .affinity
                .map_or_else(|| "any node".to_string(), mask_text)
        ),
    }
}

const ALL_POLICIES: [PolicyKind; 4] = [
    PolicyKind::None,
    PolicyKind::BestEffort,
    PolicyKind::Restricted,
    PolicyKind::SingleNumaNode,
];

fn decision(
    node: &Node,
    pod: &PodInfo,
    c: Option<&ContainerInfo>,
    answers: &[Answer],
    outcome: &MergeOutcome,
) -> Decision {
    let policy = &node.topology.policy;
    let providers = answers
        .iter()
        .map(|(p, h)| provider_view(node, pod, c, p, h))
        .collect();
    let infos = list_infos(answers);
    let only = explicit(answers);
    let raw = only.as_deref().map(filter_providers_hints);
    let large: Vec<LargeHints> = answers.iter().map(|(_, h)| h.clone()).collect();
    let under_each_policy = ALL_POLICIES
        .iter()
        .map(|&kind| {
            let p = Policy {
                kind,
                numa: policy.numa.clone(),
                options: policy.options,
                dense_universe: policy.dense_universe,
            };
            let o = match &only {
                Some(only) => p.merge(only),
                None => p.merge_large(&large),
            };
            PolicyVerdict {
                policy: kind.name().to_string(),
                merged: o.hint.into(),
                admit: o.admit,
            }
        })
        .collect();
    let lists = match &raw {
        Some(raw) if !outcome.lists.is_empty() => Some((raw.as_slice(), outcome.lists.as_slice())),
        _ => None,
    };
    Decision {
        scope: if c.is_some() { "container" } else { "pod" }.to_string(),
        container: c.map(|c| c.name.clone()),
        providers,
        merged: outcome.hint.into(),
        admit: outcome.admit,
        why_merged: why_merged(policy, &infos, lists, outcome),
        verdict: verdict_text(policy.kind, outcome),
        under_each_policy,
    }
}

// ---------------------------------------------------------------------------------------
// Facts.

fn memory_facts(node: &Node, req: &Requests) -> Vec<MemoryFact> {
    let Some(p) = node.memory.static_policy() else {
        return Vec::new();
    };
    let ms = &p.machine_state;
    req.iter()
        .map(|(r, &want)| MemoryFact {
            resource: r.clone(),
            request: want,
            nodes: ms
                .iter()
                .map(|(&n, s)| {
                    let t = table(ms, n, r);
                    NodeMemory {
                        node: n,
                        allocatable: t.allocatable,
                        free: t.free,
                        assignments: s.number_of_assignments,
                        group: s.cells.clone(),
                    }
                })
                .collect(),
            largest_free_node: largest_free_node(ms, r).map(|(n, b)| Amount {
                numa_nodes: vec![n],
                bytes: b,
            }),
            largest_free_group: largest_free_group(ms, r).map(|(m, b)| Amount {
                numa_nodes: m.to_vec(),
                bytes: b,
            }),
        })
        .collect()
}

fn free_cpus(node: &Node) -> Option<(CpuSet, &crate::cpumanager::policy_static::StaticPolicy)> {
    match &node.cpu.policy {
        CpuPolicy::Static(p) => Some((p.default_set.difference(&p.reserved), p)),
        CpuPolicy::None => None,
    }
}

fn cpu_fact(node: &Node, want: usize) -> Option<CpuFact> {
    let (free, p) = free_cpus(node)?;
    let nodes = p
        .topology
        .numa_nodes()
        .into_iter()
        .map(|n| {
            let set = p
                .topology
                .cpus_in_numa_nodes(|x| x == n)
                .intersection(&free);
            NodeCpus {
                node: n,
                free: set.len(),
                cpus: set.to_string(),
            }
        })
        .collect();
    Some(CpuFact {
        request: want,
        reserved: p.reserved.to_string(),
        nodes,
    })
}

/// CPUs the container `c` may take over from the pod's earlier regular init containers
/// (the CPU manager's `cpusToReuse` as `c` meets it), and whose they are.
fn cpu_reusable(node: &Node, pod: &PodInfo, c: Option<&ContainerInfo>) -> (CpuSet, Vec<String>) {
    let (CpuPolicy::Static(p), Some(c)) = (&node.cpu.policy, c) else {
        return (CpuSet::new(), Vec::new());
    };
    let Some(a) = p.assignments.get(&pod.uid) else {
        return (CpuSet::new(), Vec::new());
    };
    let mut reuse = CpuSet::new();
    let mut from = Vec::new();
    for earlier in pod.containers.iter().take_while(|x| x.name != c.name) {
        let Some(set) = a.get(&earlier.name) else {
            continue;
        };
        if earlier.is_regular_init() {
            reuse = reuse.union(set);
            from.push(format!("init container {}", earlier.name));
        } else {
            reuse = reuse.difference(set);
        }
    }
    (reuse, from)
}

fn cpu_free_text(f: &CpuFact) -> String {
    let parts: Vec<String> = f
        .nodes
        .iter()
        .map(|n| format!("{} on node {}", n.free, n.node))
        .collect();
    and_list(&parts)
}

// ---------------------------------------------------------------------------------------
// Why, and what would make it fit.

/// A smaller request to try: (resource, bytes) for the failing container.
type SizeFix = (String, u64);

/// The pod with `c`'s request (and limit) of `r` set to `bytes`.
fn with_request(pod: &PodInfo, c: usize, r: &str, bytes: u64) -> PodInfo {
    let mut p = pod.clone();
    let q = crate::quantity::Quantity::from_i64(bytes as i64, crate::quantity::Format::BinarySI);
    if let Some(c) = p.containers.get_mut(c) {
        c.requests.insert(r.to_string(), q.clone());
        if c.limits.contains_key(r) {
            c.limits.insert(r.to_string(), q);
        }
    }
    p
}

struct Failing<'a> {
    /// The container the admission stopped at (None: the pod-scope merge).
    index: Option<usize>,
    container: Option<&'a ContainerInfo>,
    provider: Option<&'static str>,
}

fn topology_why(
    node: &Node,
    pod: &PodInfo,
    c: Option<&ContainerInfo>,
    answers: &[Answer],
    outcome: &MergeOutcome,
    facts: &Facts,
    fixes: &mut Vec<SizeFix>,
) -> Vec<String> {
    let kind = node.topology.policy.kind;
    let infos = list_infos(answers);
    let single = kind == PolicyKind::SingleNumaNode;
    let ms = node.memory.static_policy().map(|p| &p.machine_state);
    let req = subject_requests(pod, c);
    let want_cpus = match c {
        Some(c) => guaranteed_cpus(pod, c),
        None => pod_guaranteed_cpus(pod),
    };
    let size_fix = |fixes: &mut Vec<SizeFix>, ms: &MachineState, r: &str, want: u64| {
        if let Some((_, f)) = largest_free_node(ms, r) {
            if f > 0 && f < want {
                fixes.push((r.to_string(), f));
            }
        }
    };
    let mut why = Vec::new();
    for info in &infos {
        let label = &info.label;
        match info.state {
            ListState::CannotSatisfy if label == "cpu" => {
                why.push(cpu_short_sentence(facts, want_cpus));
            }
            ListState::CannotSatisfy => {
                why.push(format!("{label}: no placement can satisfy the request"));
            }
            ListState::NoHints => {
                if let Some(ms) = ms {
                    for (r, &want) in &req {
                        if largest_free_node(ms, r).is_none_or(|(_, f)| f < want) {
                            why.push(format!(
                                "{}, so the memory manager offered no hints",
                                single_node_sentence(ms, r, want, kind)
                            ));
                            size_fix(fixes, ms, r, want);
                        }
                    }
                }
            }
            ListState::Hints if single && !info.single_ok => {
                if let (Some(ms), Some(&want)) = (ms, req.get(label)) {
                    why.push(single_node_sentence(ms, label, want, kind));
                    size_fix(fixes, ms, label, want);
                } else if label == "cpu" {
                    let best = facts.cpu.as_ref().and_then(|f| {
                        f.nodes
                            .iter()
                            .max_by_key(|n| (n.free, std::cmp::Reverse(n.node)))
                    });
                    why.push(format!(
                        "cpu: needs {want_cpus} exclusive CPUs on one NUMA node; the most free on a single node is {} (node {}); single-numa-node forbids spanning nodes",
                        best.map_or(0, |b| b.free),
                        best.map_or(0, |b| b.node)
                    ));
                } else {
                    why.push(format!(
                        "{label}: single-numa-node leaves no usable hint (only multi-node or non-preferred ones)"
                    ));
                }
            }
            _ => {}
        }
    }
    let blocked = infos.iter().any(|i| {
        i.state == ListState::CannotSatisfy
            || (single && i.state == ListState::Hints && !i.single_ok)
    });
    if !blocked {
        why.push(format!(
            "no mask is preferred by all providers ({}); best non-preferred is {}",
            preferences_text(&infos),
            affinity_text(outcome.hint.affinity)
        ));
        let cpu_unpreferred = infos.iter().any(|i| {
            i.label == "cpu"
                && i.state == ListState::Hints
                && !i.any_preferred
                && i.prefers.is_none()
        });
        if cpu_unpreferred {
            if let (Some(f), CpuPolicy::Static(p)) = (facts.cpu.as_ref(), &node.cpu.policy) {
                let mut totals: Vec<usize> = p
                    .topology
                    .numa_nodes()
                    .into_iter()
                    .map(|n| p.topology.cpus_in_numa_nodes(|x| x == n).len())
                    .collect();
                totals.sort_unstable_by(|a, b| b.cmp(a));
                let mut k = 0;
                let mut sum = 0;
                for t in totals {
                    if sum >= want_cpus {
                        break;
                    }
                    sum += t;
                    k += 1;
                }
                let (reuse, from) = cpu_reusable(node, pod, c);
                let plural = if k == 1 { "" } else { "s" };
                if reuse.is_empty() {
                    why.push(format!(
                        "cpu: no hint is preferred: {want_cpus} exclusive CPUs would fit on {k} NUMA node{plural} of an empty machine, but no such placement has them free ({}; reserved: {})",
                        cpu_free_text(f),
                        if f.reserved.is_empty() { "none" } else { &f.reserved }
                    ));
                } else {
                    let nodes: BTreeSet<u32> = reuse
                        .iter()
                        .filter_map(|cpu| p.topology.cpus.get(&cpu).map(|i| i.numa))
                        .collect();
                    let nodes: Vec<u32> = nodes.into_iter().collect();
                    let free_there: usize = f
                        .nodes
                        .iter()
                        .filter(|n| nodes.contains(&n.node))
                        .map(|n| n.free)
                        .sum();
                    why.push(format!(
                        "cpu: no hint is preferred: it may reuse the CPUs {reuse} of {} (on {}), so only placements including {} count; {} free there plus {} reusable fall short of the {want_cpus} needed on {k} NUMA node{plural}",
                        and_list(&from),
                        nodes_text(&nodes),
                        if nodes.len() == 1 { "that node" } else { "those nodes" },
                        free_there,
                        reuse.len()
                    ));
                }
            }
        }
        if let Some(ms) = ms {
            for info in &infos {
                let label = &info.label;
                let Some(&want) = req.get(label) else {
                    continue;
                };
                if info.state != ListState::Hints || info.any_preferred || info.prefers.is_some() {
                    continue;
                }
                let k = nodes_needed(ms, label, want);
                if k > 1 {
                    why.push(format!(
                        "{label}: no hint is preferred: {} would fit on {k} NUMA nodes of an empty machine, but with what is in use the narrowest placement has {}",
                        bytes_text(want),
                        info.min_size
                            .map_or("more nodes".to_string(), |m| format!("{m} nodes"))
                    ));
                    continue;
                }
                let mut reasons: BTreeMap<u32, String> = BTreeMap::new();
                for (&n, st) in ms {
                    if st.cells.len() > 1 {
                        reasons.insert(
                            n,
                            format!("belongs to the group {}", mask_text(mask_of(&st.cells))),
                        );
                    } else if table(ms, n, label).free < want {
                        reasons.insert(
                            n,
                            format!("has only {} free", bytes_text(table(ms, n, label).free)),
                        );
                    }
                }
                if reasons.len() < ms.len() {
                    // Some node could take this resource alone: another resource is the cause.
                    continue;
                }
                why.push(format!(
                    "{label}: no hint is preferred: a single NUMA node is big enough for {}, but none can take it alone ({})",
                    bytes_text(want),
                    obstacle_sentence(&reasons)
                ));
            }
        }
        // A memory request wider than any single node while another resource prefers
        // single nodes: shrinking it would align them.
        if let Some(ms) = ms {
            for info in &infos {
                let label = &info.label;
                let Some(&want) = req.get(label) else {
                    continue;
                };
                if info.narrowest_preferred.is_some_and(|n| n > 1)
                    && largest_allocatable_node(ms, label).is_some_and(|(_, a)| a < want)
                {
                    why.push(format!(
                        "{label}: needs {} — more than one NUMA node can offer — so it prefers only multi-node groups",
                        bytes_text(want)
                    ));
                    if let Some((_, f)) = largest_free_node(ms, label) {
                        fixes.push((label.clone(), f));
                    }
                }
            }
        }
    }
    why.push(format!(
        "{} admits only preferred merged hints, so the pod is rejected with TopologyAffinityError",
        kind.name()
    ));
    why
}

fn memory_allocation_why(
    node: &Node,
    req: &Requests,
    hint: Option<TopologyHint>,
    message: &str,
    memory_gave_no_hints: bool,
    fixes: &mut Vec<SizeFix>,
) -> Vec<String> {
    let kind = node.topology.policy.kind;
    let Some(ms) = node.memory.static_policy().map(|p| &p.machine_state) else {
        return vec![format!("the memory manager's Allocate failed: {message}")];
    };
    let mut why = Vec::new();
    let merged = hint.and_then(|h| h.affinity);
    let largest_fix = |fixes: &mut Vec<SizeFix>, r: &str, want: u64| {
        if let Some((_, f)) = largest_free_node(ms, r) {
            if f > 0 && f < want {
                fixes.push((r.to_string(), f));
            }
        }
    };
    if message.contains("failed to get the default NUMA affinity") {
        for (r, &want) in req {
            if largest_free_node(ms, r).is_none_or(|(_, f)| f < want) {
                why.push(single_node_sentence(ms, r, want, kind));
                largest_fix(fixes, r, want);
            }
        }
        if why.is_empty() {
            why.push(format!(
                "no single NUMA node has all of {} free at once",
                requests_text(req)
            ));
        }
        why.push("so the memory manager offered no hints, which the Topology Manager reads as no preference; the merged hint was any node".into());
        why.push(format!(
            "the memory manager's Allocate then found no NUMA node or allowed group with {} free ({message})",
            requests_text(req)
        ));
    } else if message.contains("failed to find NUMA nodes to extend the current topology hint")
        || message.contains("failed to find the extended preferred hint")
    {
        let m = merged.unwrap_or_default();
        if memory_gave_no_hints {
            why.push(format!(
                "the memory manager offered no hints (no NUMA node or allowed group has {} free), which reads as no preference, so the merged hint {} came from the other providers alone",
                requests_text(req),
                mask_text(m)
            ));
        }
        for (r, &want) in req {
            if sum(ms, m, r, |t| t.free) < want {
                largest_fix(fixes, r, want);
            }
        }
        let short: Vec<String> = req
            .iter()
            .filter_map(|(r, &want)| {
                let f = sum(ms, m, r, |t| t.free);
                (f < want).then(|| {
                    format!(
                        "{} {r} free of the {} needed",
                        bytes_text(f),
                        bytes_text(want)
                    )
                })
            })
            .collect();
        let mut s = format!(
            "the merged hint's nodes {} lack free memory (only {})",
            mask_text(m),
            and_list(&short)
        );
        if message.contains("extended preferred") {
            s.push_str(
                "; the wider groups that could hold it are not preferred while the merged hint was",
            );
        } else {
            let span = spanning_sentence(ms, req, |w| m.is_subset_of(w) && w != m, true);
            if !span.is_empty() {
                s.push_str(" and ");
                s.push_str(&span);
            }
        }
        why.push(s);
    } else if message.contains("preferred hint violates NUMA node allocation") {
        let m = merged.unwrap_or_default();
        let obstacles: BTreeMap<u32, String> = group_obstacles(ms, m).into_iter().collect();
        why.push(format!(
            "the merged hint {} spans several nodes, but {}",
            mask_text(m),
            obstacle_sentence(&obstacles)
        ));
    } else if message.contains("failed to find the default preferred hint") {
        why.push("the merged hint was any node and preferred, but the memory manager's own best placement is not preferred (it needs more nodes than the narrowest fit)".into());
    } else if message.contains("int64") {
        why.push("a memory or hugepages request is not a whole number of bytes".into());
    } else {
        why.push(format!("the memory manager's Allocate failed: {message}"));
    }
    why
}

/// `cpu: needs 8 exclusive CPUs but only 3 are free (3 on node 0 and 0 on node 1;
/// reserved: 0)`.
fn cpu_short_sentence(facts: &Facts, want: usize) -> String {
    let Some(f) = facts.cpu.as_ref() else {
        return format!("cpu: needs {want} exclusive CPUs, more than are free");
    };
    let total: usize = f.nodes.iter().map(|n| n.free).sum();
    format!(
        "cpu: needs {want} exclusive CPUs but only {total} {} free ({}; reserved: {})",
        if total == 1 { "is" } else { "are" },
        cpu_free_text(f),
        if f.reserved.is_empty() {
            "none"
        } else {
            &f.reserved
        }
    )
}

fn cpu_allocation_why(facts: &Facts, message: &str, want: usize) -> Vec<String> {
    if message.contains("not enough cpus available") {
        return vec![cpu_short_sentence(facts, want)];
    }
    if message.contains("SMT Alignment Error") {
        return vec![format!(
            "cpu: with full-pcpus-only the CPU manager hands out whole physical cores only: {message}"
        )];
    }
    vec![format!("the CPU manager's Allocate failed: {message}")]
}

fn held(node: &Node, uid: &str) -> (u64, usize, String) {
    let mut parts = Vec::new();
    let mut bytes = 0u64;
    if let Some(p) = node.memory.static_policy() {
        let mut by: BTreeMap<(String, Vec<u32>), u64> = BTreeMap::new();
        for blocks in p.assignments.get(uid).into_iter().flat_map(|m| m.values()) {
            for b in blocks {
                *by.entry((b.kind.clone(), b.numa_affinity.clone()))
                    .or_default() += b.size;
                bytes += b.size;
            }
        }
        for ((kind, nodes), size) in by {
            if size > 0 {
                parts.push(format!(
                    "{kind} {} on {}",
                    bytes_text(size),
                    nodes_text(&nodes)
                ));
            }
        }
    }
    let cpus = node
        .cpu
        .assignments()
        .get(uid)
        .map(|m| m.values().fold(CpuSet::new(), |a, s| a.union(s)))
        .unwrap_or_default();
    if !cpus.is_empty() {
        parts.push(format!("{} exclusive CPUs ({cpus})", cpus.len()));
    }
    (bytes, cpus.len(), parts.join(", "))
}

fn admits(node: &Node, pod: &PodInfo, remove: &[&str]) -> bool {
    let mut n = node.clone();
    for uid in remove {
        n.remove(uid);
    }
    n.admit(pod).is_ok_and(|r| r.admitted)
}

/// `c: NUMA {0}, CPUs 2-3, memory 100Gi on node 0`, per container.
fn placement_text(r: &crate::node::AdmitResult) -> String {
    r.containers
        .iter()
        .map(|c| {
            let mut parts = Vec::new();
            if let Some(h) = c.affinity {
                parts.push(format!("NUMA {}", affinity_text(h.affinity)));
            }
            if !c.cpus.is_empty() {
                parts.push(format!("CPUs {}", c.cpus));
            }
            for b in &c.memory {
                parts.push(format!(
                    "{} {} on {}",
                    b.kind,
                    bytes_text(b.size),
                    nodes_text(&b.numa_affinity)
                ));
            }
            if parts.is_empty() {
                parts.push("shared CPUs and memory".into());
            }
            format!("{}: {}", c.name, parts.join(", "))
        })
        .collect::<Vec<_>>()
        .join("; ")
}

fn alternatives(h: &History, base: &Replayed, pod: &PodInfo) -> (Alternatives, Vec<String>) {
    let node = &base.node;
    // Pods holding exclusive CPUs or pinned memory.
    let mut removals: Vec<Removal> = base
        .live
        .iter()
        .filter_map(|(uid, name)| {
            let (memory_bytes, cpus, frees) = held(node, uid);
            (memory_bytes > 0 || cpus > 0).then(|| Removal {
                uid: uid.clone(),
                name: name.clone(),
                memory_bytes,
                cpus,
                frees,
            })
        })
        .collect();
    removals
        .sort_by(|a, b| (a.memory_bytes, a.cpus, &a.uid).cmp(&(b.memory_bytes, b.cpus, &b.uid)));
    let running_pods = removals.len();
    let single: Vec<Removal> = removals
        .iter()
        .filter(|r| admits(node, pod, &[r.uid.as_str()]))
        .cloned()
        .collect();
    let mut pair = None;
    if single.is_empty() && removals.len() >= 2 && removals.len() <= MAX_PAIR_CANDIDATES {
        let mut best: Option<(u64, usize, usize, usize)> = None;
        for i in 0..removals.len() {
            for j in i + 1..removals.len() {
                let (a, b) = (&removals[i], &removals[j]);
                let key = (a.memory_bytes + b.memory_bytes, a.cpus + b.cpus);
                if best.is_some_and(|(m, c, _, _)| (m, c) <= key) {
                    continue;
                }
                if admits(node, pod, &[a.uid.as_str(), b.uid.as_str()]) {
                    best = Some((key.0, key.1, i, j));
                }
            }
        }
        pair = best.map(|(_, _, i, j)| vec![removals[i].clone(), removals[j].clone()]);
    }
    let everyone: Vec<&str> = base.live.keys().map(String::as_str).collect();
    let fits_on_empty_node = admits(node, pod, &everyone);

    let current = node.topology.policy.kind;
    let mut policies = Vec::new();
    let nodes = h.machine.nodes.len();
    for kind in ALL_POLICIES {
        if kind == current {
            continue;
        }
        if kind == PolicyKind::None && nodes > MAX_NONE_NODES {
            // Without a hint the memory manager looks for its own default placement among
            // every NUMA mask, as the kubelet does: far too many here.
            policies.push(PolicyAlternative {
                policy: kind.name().into(),
                admitted: None,
                detail: format!(
                    "not tried: without a merged hint the memory manager would search all 2^{nodes}-1 NUMA masks of this machine for a default placement"
                ),
                earlier_changes: 0,
            });
            continue;
        }
        let mut config = h.config.clone();
        config.topology_manager_policy = Some(kind.name().to_string());
        let alt = match replay(h, &config, false) {
            Err(e) => PolicyAlternative {
                policy: kind.name().into(),
                admitted: None,
                detail: format!("{e}"),
                earlier_changes: 0,
            },
            Ok(mut r) => {
                let earlier_changes = r
                    .outcomes
                    .iter()
                    .zip(&base.outcomes)
                    .filter(|(a, b)| a.is_some() && b.is_some() && a != b)
                    .count();
                match r.node.admit(pod) {
                    Ok(res) => PolicyAlternative {
                        policy: kind.name().into(),
                        admitted: Some(res.admitted),
                        detail: if res.admitted {
                            placement_text(&res)
                        } else {
                            format!(
                                "{}: {}",
                                res.reason.unwrap_or_default(),
                                res.message.unwrap_or_default()
                            )
                        },
                        earlier_changes,
                    },
                    Err(e) => PolicyAlternative {
                        policy: kind.name().into(),
                        admitted: None,
                        detail: e.to_string(),
                        earlier_changes,
                    },
                }
            }
        };
        policies.push(alt);
    }

    let mut fixes = Vec::new();
    let who = |r: &Removal| pod_ref(r.name.as_deref(), &r.uid);
    if let Some(r) = single.first() {
        let mut s = format!("it fits after removing {} (frees {})", who(r), r.frees);
        if single.len() > 1 {
            let others: Vec<String> = single[1..].iter().map(who).collect();
            s.push_str(&format!(
                "; removing {} instead also works",
                others.join(" or ")
            ));
        }
        fixes.push(s);
    } else if let Some(p) = &pair {
        fixes.push(format!(
            "no single removal is enough; it fits after removing both {} and {}",
            who(&p[0]),
            who(&p[1])
        ));
    } else if running_pods > 0 && fits_on_empty_node {
        fixes.push("removing one or two pods is not enough; it fits only once every running pod is removed".into());
    } else if !fits_on_empty_node {
        fixes.push(
            "it does not fit even on an empty node with this machine and configuration".into(),
        );
    }
    let changes = |n: usize| {
        format!(
            "{n} earlier admission{} would also end differently",
            if n == 1 { "" } else { "s" }
        )
    };
    let mut rejecting: Vec<(&str, usize)> = Vec::new();
    for p in &policies {
        match p.admitted {
            Some(true) => {
                let mut s = format!("under {} it would be admitted ({})", p.policy, p.detail);
                if p.earlier_changes > 0 {
                    s.push_str(&format!("; {}", changes(p.earlier_changes)));
                }
                fixes.push(s);
            }
            Some(false) => rejecting.push((p.policy.as_str(), p.earlier_changes)),
            None => fixes.push(format!("under {}: {}", p.policy, p.detail)),
        }
    }
    if !rejecting.is_empty() {
        let counts: BTreeSet<usize> = rejecting.iter().map(|(_, n)| *n).collect();
        let s = if counts.len() == 1 {
            let names: Vec<String> = rejecting.iter().map(|(p, _)| p.to_string()).collect();
            let n = rejecting[0].1;
            let mut s = format!("it would be rejected under {} as well", and_list(&names));
            if n > 0 {
                s.push_str(&format!(
                    " ({}, {})",
                    if names.len() > 1 {
                        "under each"
                    } else {
                        "there"
                    },
                    changes(n)
                ));
            }
            s
        } else {
            let names: Vec<String> = rejecting
                .iter()
                .map(|(p, n)| match n {
                    0 => p.to_string(),
                    n => format!("{p} (where {})", changes(*n)),
                })
                .collect();
            format!("it would be rejected under {} as well", and_list(&names))
        };
        fixes.push(s);
    }
    (
        Alternatives {
            running_pods,
            single_removals: single,
            pair_removal: pair,
            fits_on_empty_node,
            policies,
        },
        fixes,
    )
}

// ---------------------------------------------------------------------------------------

/// Replays `h`, then explains the admission of `pod` on the node it leads to.
pub fn explain(h: &History, pod: &PodInfo) -> Result<Explanation, ExplainError> {
    let base = replay(h, h.config, true)?;
    let before = &base.node;
    let result = before
        .clone()
        .admit(pod)
        .map_err(|error| ExplainError::Step {
            index: h.steps.len(),
            error,
        })?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kubelet_config::MemoryReservation;
    use crate::machine::{Cpu, NumaNode};
    use crate::pod::compute_qos;
    use crate::quantity::Quantity;

    const GI: u64 = 1 << 30;

    /// Two NUMA nodes of 4 CPUs and 16Gi (8Gi when `small`), 1Gi reserved on each.
    fn machine(mem: u64) -> Machine {
        let nodes: Vec<NumaNode> = (0..2u32)
            .map(|id| NumaNode {
                id,
                cpus: CpuSet::from_ids(id * 4..id * 4 + 4),
                memory: mem,
                hugepages: BTreeMap::new(),
                distances: Vec::new(),
            })
            .collect();
        let cpus = (0..8u32)
            .map(|id| Cpu {
                id,
                core: id,
                socket: id / 4,
                numa: id / 4,
            })
            .collect();
        let mut m = Machine { nodes, cpus };
        m.default_distances();
        m
    }

    fn config(policy: &str, cpu_static: bool) -> KubeletConfig {
        let map = |kv: &[(&str, &str)]| {
            Some(
                kv.iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect::<BTreeMap<_, _>>(),
            )
        };
        KubeletConfig {
            memory_manager_policy: Some("Static".into()),
            reserved_memory: Some(
                (0..2)
                    .map(|n| MemoryReservation {
                        numa_node: n,
                        limits: vec![("memory".into(), "1Gi".into())],
                    })
                    .collect(),
            ),
            kube_reserved: if cpu_static {
                map(&[("memory", "1Gi"), ("cpu", "1")])
            } else {
                map(&[("memory", "1Gi")])
            },
            system_reserved: map(&[("memory", "924Mi")]),
            eviction_hard: map(&[("memory.available", "100Mi")]),
            cpu_manager_policy: cpu_static.then(|| "static".to_string()),
            topology_manager_policy: Some(policy.into()),
            ..Default::default()
        }
    }

    /// A Guaranteed single-container pod (or several containers: `(name, cpu, memory)`).
    fn pod(name: &str, containers: &[(&str, &str, &str)]) -> PodInfo {
        let containers: Vec<ContainerInfo> = containers
            .iter()
            .map(|(c, cpu, mem)| {
                let r: BTreeMap<String, Quantity> = [
                    ("cpu".to_string(), Quantity::parse(cpu).unwrap()),
                    ("memory".to_string(), Quantity::parse(mem).unwrap()),
                ]
                .into();
                ContainerInfo {
                    name: c.to_string(),
                    init: false,
                    restartable: false,
                    requests: r.clone(),
                    limits: r,
                }
            })
            .collect();
        PodInfo {
            uid: format!("uid-{name}"),
            name: name.into(),
            namespace: "default".into(),
            qos: compute_qos(&containers),
            containers,
        }
    }

    fn run(
        m: &Machine,
        c: &KubeletConfig,
        steps: &[HistoryStep],
        p: &PodInfo,
    ) -> Result<Explanation, ExplainError> {
        let start = StartOptions::default();
        explain(
            &History {
                machine: m,
                config: c,
                start: &start,
                steps,
            },
            p,
        )
    }

    #[test]
    fn words() {
        assert_eq!(mask_text(NumaMask(0b101)), "{0,2}");
        assert_eq!(
            hint_text(&TopologyHint::new(NumaMask(1), true)),
            "{0} preferred"
        );
        assert_eq!(hint_text(&TopologyHint::NONE), "any");
        assert_eq!(hint_words(&TopologyHint::NONE), "any node, not preferred");
        assert_eq!(
            and_list(&["a".into(), "b".into(), "c".into()]),
            "a, b and c"
        );
        assert_eq!(mask_text(NumaMask(0b1111_0111)), "{0-2,4-7}");
        assert_eq!(mask_text(NumaMask(0b1011)), "{0,1,3}");
        assert_eq!(bytes_at_most(133034381312), "123.8Gi");
        assert_eq!(bytes_text(133034381312), "123.9Gi");
        assert_eq!(nodes_text(&[1]), "node 1");
        assert_eq!(nodes_text(&[0, 1]), "nodes 0 and 1");
        let o: BTreeMap<u32, String> = [
            (0, "already holds single-NUMA allocations".to_string()),
            (1, "already holds single-NUMA allocations".to_string()),
        ]
        .into();
        assert_eq!(
            obstacle_sentence(&o),
            "nodes 0 and 1 already hold single-NUMA allocations"
        );
    }

    #[test]
    fn preferred_candidates_follow_the_kubelet_merge() {
        let h = |m: u64, p: bool| TopologyHint::new(NumaMask(m), p);
        let any = TopologyHint {
            affinity: None,
            preferred: true,
        };
        let all = NumaMask(0b11);
        // {0},{1} preferred by both.
        let lists = vec![
            vec![h(1, true), h(2, true), h(3, false)],
            vec![h(1, true), h(2, true)],
        ];
        assert_eq!(
            preferred_candidates(&lists, all),
            vec![NumaMask(1), NumaMask(2)]
        );
        // A list without preference accepts any mask.
        let lists = vec![vec![any], vec![h(2, true)]];
        assert_eq!(preferred_candidates(&lists, all), vec![NumaMask(2)]);
        // No common preferred mask.
        let lists = vec![vec![h(1, true)], vec![h(3, true)]];
        assert!(preferred_candidates(&lists, all).is_empty());
        // Nobody has a preference: the default mask.
        assert_eq!(
            preferred_candidates(&[vec![any], vec![any]], all),
            vec![all]
        );
    }

    /// a (10Gi) and b (4Gi) fill node 0, c (12Gi) node 1; `big` (12Gi) fits on no single
    /// node and single-numa-node forbids spanning; removing c (and only c) makes room.
    #[test]
    fn single_numa_node_rejection_fits_after_removing_one_pod() {
        let m = machine(16 * GI);
        let c = config("single-numa-node", false);
        let steps = vec![
            HistoryStep::Admit(pod("a", &[("c", "1", "10Gi")])),
            HistoryStep::Admit(pod("b", &[("c", "1", "4Gi")])),
            HistoryStep::Admit(pod("c", &[("c", "1", "12Gi")])),
        ];
        let e = run(&m, &c, &steps, &pod("big", &[("app", "2", "12Gi")])).unwrap();
        assert!(!e.admitted);
        assert_eq!(e.reason.as_deref(), Some("UnexpectedAdmissionError"));
        assert_eq!(
            e.verdict,
            "pod big is rejected: the memory manager could not allocate container app (UnexpectedAdmissionError)"
        );
        assert_eq!(
            e.why[0],
            "memory: needs 12Gi on one NUMA node; the largest free single node has 3Gi (node 1); single-numa-node forbids spanning nodes"
        );
        assert!(
            e.why[1].starts_with("so the memory manager offered no hints"),
            "{:?}",
            e.why
        );
        assert_eq!(
            e.fixes[0],
            "it fits after removing pod c (frees memory 12Gi on node 1)"
        );
        assert_eq!(
            e.fixes[1],
            "or lower its memory request to at most 3Gi so that one NUMA node can hold it"
        );
        assert_eq!(
            e.fixes[2],
            "it would be rejected under none, best-effort and restricted as well"
        );
        let alt = e.alternatives.as_ref().unwrap();
        assert_eq!(alt.running_pods, 3);
        assert_eq!(alt.single_removals.len(), 1);
        assert_eq!(alt.single_removals[0].uid, "uid-c");
        assert!(alt.fits_on_empty_node);
        // The machine state the container met.
        let mem = &e.facts.memory[0];
        assert_eq!(mem.request, 12 * GI);
        assert_eq!(
            mem.nodes.iter().map(|n| n.free).collect::<Vec<_>>(),
            vec![GI, 3 * GI]
        );
        assert_eq!(mem.largest_free_node.as_ref().unwrap().numa_nodes, vec![1]);
        // Groups are not allowed: both nodes hold single-NUMA allocations.
        assert!(mem.largest_free_group.is_none());
        let d = &e.decisions[0];
        assert_eq!(
            d.providers[1].text,
            "memory: no hints: no NUMA node or allowed group has 12Gi memory free, and an empty answer reads as no preference"
        );
        assert_eq!(e.containers[0].outcome, "allocation-failed");
        assert_eq!(e.containers[0].failure.as_ref().unwrap().provider, "memory");
    }

    /// cpu prefers single nodes, memory (10Gi > 7Gi per node) only {0,1}: restricted
    /// rejects the non-preferred {0,1}; best-effort and none would admit.
    #[test]
    fn restricted_rejects_the_best_non_preferred_hint() {
        let m = machine(8 * GI);
        let c = config("restricted", true);
        let e = run(&m, &c, &[], &pod("wide", &[("app", "2", "10Gi")])).unwrap();
        assert_eq!(e.reason.as_deref(), Some("TopologyAffinityError"));
        let d = &e.decisions[0];
        assert_eq!(
            d.providers[0].text,
            "cpu: {0} preferred, {1} preferred, {0,1}"
        );
        assert_eq!(d.providers[1].text, "memory: {0,1} preferred");
        assert_eq!(
            d.why_merged,
            "no mask is preferred by all providers (cpu prefers {0}, {1}; memory prefers {0,1}); best non-preferred is {0,1}"
        );
        assert_eq!(
            d.verdict,
            "restricted rejects: the merged hint ({0,1}) is not preferred (TopologyAffinityError)"
        );
        let admit: Vec<(&str, bool)> = d
            .under_each_policy
            .iter()
            .map(|v| (v.policy.as_str(), v.admit))
            .collect();
        assert_eq!(
            admit,
            vec![
                ("none", true),
                ("best-effort", true),
                ("restricted", false),
                ("single-numa-node", false)
            ]
        );
        assert!(e
            .why
            .contains(&"memory: needs 10Gi — more than one NUMA node can offer — so it prefers only multi-node groups".to_string()));
        assert_eq!(
            e.fixes,
            vec![
                "it does not fit even on an empty node with this machine and configuration",
                "lower its memory request to at most 7Gi so that one NUMA node can hold it",
                "under none it would be admitted (app: CPUs 1-2, memory 10Gi on nodes 0 and 1)",
                "under best-effort it would be admitted (app: NUMA {0,1}, CPUs 1-2, memory 10Gi on nodes 0 and 1)",
                "it would be rejected under single-numa-node as well",
            ]
        );
        let cpu = e.facts.cpu.as_ref().unwrap();
        assert_eq!(cpu.reserved, "0");
        assert_eq!(
            cpu.nodes.iter().map(|n| n.free).collect::<Vec<_>>(),
            vec![3, 4]
        );
    }

    /// A pod on node 0 leaves 6Gi there; memory offers no hints for 10Gi (the group {0,1}
    /// is not allowed), cpu's {0} wins, and the memory manager cannot extend it.
    #[test]
    fn extension_failure_names_the_blocking_node() {
        let m = machine(8 * GI);
        let c = config("restricted", true);
        let steps = vec![HistoryStep::Admit(pod("small", &[("app", "1", "1Gi")]))];
        let e = run(&m, &c, &steps, &pod("wide", &[("app", "2", "10Gi")])).unwrap();
        assert!(e
            .message
            .as_deref()
            .unwrap()
            .contains("failed to find NUMA nodes to extend the current topology hint"));
        assert_eq!(
            e.decisions[0].why_merged,
            "{0} and {1} are preferred by every provider; {0} wins as the narrowest (fewest nodes, then the lowest ids)"
        );
        assert!(
            e.why.contains(&"the merged hint's nodes {0} lack free memory (only 6Gi memory free of the 10Gi needed) and no wider group is allowed because node 0 already holds single-NUMA allocations".to_string()),
            "{:?}",
            e.why
        );
    }

    #[test]
    fn admitted_pod_says_why_its_hint_won() {
        let m = machine(8 * GI);
        let c = config("restricted", true);
        let e = run(&m, &c, &[], &pod("fits", &[("app", "2", "1Gi")])).unwrap();
        assert!(e.admitted);
        assert!(e.why.is_empty() && e.fixes.is_empty() && e.alternatives.is_none());
        assert_eq!(
            e.verdict,
            "pod fits is admitted (app: NUMA {0}, CPUs 1-2, memory 1Gi on node 0)"
        );
        assert_eq!(
            e.decisions[0].why_merged,
            "{0} and {1} are preferred by every provider; {0} wins as the narrowest (fewest nodes, then the lowest ids)"
        );
        assert_eq!(e.containers[0].outcome, "admitted");
        assert_eq!(e.containers[0].exclusive_cpus, 2);
        assert_eq!(e.facts.subject, "pod fits");
    }

    /// Container scope: the second container's hints see the first one's CPUs.
    #[test]
    fn second_container_sees_the_first_ones_cpus() {
        let m = machine(8 * GI);
        let c = config("single-numa-node", true);
        let p = pod("two", &[("first", "3", "1Gi"), ("second", "4", "1Gi")]);
        let e = run(&m, &c, &[], &p).unwrap();
        assert!(e.admitted, "{:?}", e.why);
        assert_eq!(e.decisions.len(), 2);
        // first took CPUs 1-3 (0 is reserved): node 0 has nothing left for second.
        assert_eq!(e.decisions[1].container.as_deref(), Some("second"));
        assert_eq!(
            e.decisions[1].providers[0].text,
            "cpu: {1} preferred, {0,1}"
        );
        assert_eq!(
            e.decisions[1].why_merged,
            "single-numa-node keeps only preferred single-node hints; the only preferred mask every provider accepts is {1}"
        );
        assert_eq!(e.containers[1].cpus, "4-7");
    }

    /// When the second container cannot get its CPUs, the first one's are released.
    #[test]
    fn cpu_shortage_at_the_second_container() {
        let m = machine(8 * GI);
        let c = config("single-numa-node", true);
        let p = pod("two", &[("first", "3", "1Gi"), ("second", "5", "1Gi")]);
        let e = run(&m, &c, &[], &p).unwrap();
        assert_eq!(e.reason.as_deref(), Some("TopologyAffinityError"));
        assert_eq!(e.containers[0].outcome, "released");
        assert_eq!(e.containers[1].outcome, "topology-rejected");
        assert_eq!(e.facts.subject, "container second");
        assert_eq!(
            e.why[0],
            "cpu: needs 5 exclusive CPUs but only 4 are free (0 on node 0 and 4 on node 1; reserved: 0)"
        );
        assert_eq!(
            e.decisions[1].why_merged,
            "cpu cannot be satisfied (an empty hint list), so no merge can be preferred; the result is any node, not preferred"
        );
        assert!(e
            .alternatives
            .as_ref()
            .is_some_and(|a| !a.fits_on_empty_node));
    }

    /// Too many CPUs and too much memory for one node: a smaller memory request alone
    /// would not help, so it is not suggested.
    #[test]
    fn size_fixes_are_checked_by_the_engine() {
        let m = machine(8 * GI);
        let c = config("single-numa-node", true);
        let e = run(&m, &c, &[], &pod("huge", &[("app", "5", "10Gi")])).unwrap();
        assert_eq!(e.reason.as_deref(), Some("TopologyAffinityError"));
        assert!(e.why.contains(&"cpu: needs 5 exclusive CPUs on one NUMA node; the most free on a single node is 4 (node 1); single-numa-node forbids spanning nodes".to_string()), "{:?}", e.why);
        assert!(e.why.contains(&"memory: needs 10Gi on one NUMA node; no NUMA node can hold that even when empty (the largest allocatable is 7Gi on node 0); single-numa-node forbids spanning nodes".to_string()), "{:?}", e.why);
        assert!(
            !e.fixes.iter().any(|f| f.contains("lower its")),
            "{:?}",
            e.fixes
        );
        // Alone, the memory is the only obstacle: the suggestion is checked and kept.
        let e = run(&m, &c, &[], &pod("mem", &[("app", "4", "10Gi")])).unwrap();
        assert!(
            e.fixes.contains(
                &"lower its memory request to at most 7Gi so that one NUMA node can hold it"
                    .to_string()
            ),
            "{:?}",
            e.fixes
        );
    }

    /// An app container may reuse its init container's CPUs, which pins its placements to
    /// their node.
    #[test]
    fn reusable_init_cpus_explain_a_missing_preference() {
        let m = machine(8 * GI);
        let c = config("restricted", true);
        let steps = vec![HistoryStep::Admit(pod("p0", &[("app", "2", "1Gi")]))];
        let mut p = pod("p1", &[("init0", "1", "512Mi"), ("c0", "4", "512Mi")]);
        p.containers[0].init = true;
        let e = run(&m, &c, &steps, &p).unwrap();
        assert_eq!(e.reason.as_deref(), Some("TopologyAffinityError"));
        assert_eq!(e.decisions[1].providers[0].text, "cpu: {0,1}");
        assert!(
            e.why.contains(&"cpu: no hint is preferred: it may reuse the CPUs 3 of init container init0 (on node 0), so only placements including that node count; 0 free there plus 1 reusable fall short of the 4 needed on 1 NUMA node".to_string()),
            "{:?}",
            e.why
        );
        // Even on an empty node init0 lands on node 0 (CPU 0 is reserved), leaving 2 + 1.
        assert_eq!(
            e.fixes[0],
            "it does not fit even on an empty node with this machine and configuration"
        );
    }

    #[test]
    fn pod_scope_has_one_decision() {
        let m = machine(8 * GI);
        let mut c = config("restricted", true);
        c.topology_manager_scope = Some("pod".into());
        let p = pod("pair", &[("a", "2", "4Gi"), ("b", "2", "4Gi")]);
        let e = run(&m, &c, &[], &p).unwrap();
        assert_eq!(e.decisions.len(), 1);
        assert_eq!(e.decisions[0].scope, "pod");
        assert_eq!(e.decisions[0].providers[1].text, "memory: {0,1} preferred");
        assert!(!e.admitted);
        assert!(e
            .containers
            .iter()
            .all(|c| c.outcome == "topology-rejected"));
    }

    #[test]
    fn errors_name_the_step() {
        let m = machine(8 * GI);
        let c = config("restricted", true);
        let steps = vec![HistoryStep::Admit(pod("a", &[("app", "1", "1Gi")]))];
        let err = run(&m, &c, &steps, &pod("a", &[("app", "1", "1Gi")])).unwrap_err();
        assert!(matches!(err, ExplainError::Step { index: 1, .. }), "{err}");
        let mut bad = c.clone();
        bad.topology_manager_policy = Some("fancy".into());
        let err = run(&m, &bad, &[], &pod("a", &[("app", "1", "1Gi")])).unwrap_err();
        assert!(matches!(err, ExplainError::Startup(_)), "{err}");
    }
}
