//! The explanation as data: the views of the pod, the providers, the decision, the facts and the alternatives.

use super::*;

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
    /// The containers holding the resources, by the names the books (checkpoints) have.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub containers: Vec<String>,
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
