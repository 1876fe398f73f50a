//! Topology Manager (`pkg/kubelet/cm/topologymanager`): collects NUMA hints from the hint
//! providers, merges them under the configured policy and scope, stores the merged hint
//! per container and asks every provider to allocate with it.

pub mod covering;
pub mod family;
pub mod hint;
pub mod merge;
pub mod numa_info;
pub mod options;
pub mod policy;
mod policy_best_effort;
mod policy_none;
mod policy_restricted;
mod policy_single_numa_node;
mod scope_container;
mod scope_pod;
mod search;
pub mod sums;

use crate::kubelet_config::KubeletConfig;
use crate::machine::Machine;
use crate::pod::{ContainerInfo, PodInfo};
use hint::{LargeHints, ProviderHints, TopologyHint};
use numa_info::NumaInfo;
use options::PolicyOptions;
use policy::{MergeOutcome, Policy, PolicyKind};

/// A hint provider (CPU manager, memory manager), as the Topology Manager calls it.
pub trait HintProvider {
    /// Short name for explanations: "cpu", "memory".
    fn name(&self) -> &'static str;
    fn get_topology_hints(&mut self, pod: &PodInfo, container: &ContainerInfo) -> ProviderHints;
    fn get_pod_topology_hints(&mut self, pod: &PodInfo) -> ProviderHints;
    /// Hints for machines too large to enumerate (see `family`); by default the
    /// explicit lists.
    fn get_topology_hint_families(
        &mut self,
        pod: &PodInfo,
        container: &ContainerInfo,
    ) -> LargeHints {
        hint::to_large(self.get_topology_hints(pod, container))
    }
    fn get_pod_topology_hint_families(&mut self, pod: &PodInfo) -> LargeHints {
        hint::to_large(self.get_pod_topology_hints(pod))
    }
    /// Allocate for one container with the merged hint the Topology Manager stored for it.
    fn allocate(
        &mut self,
        pod: &PodInfo,
        container: &ContainerInfo,
        hint: TopologyHint,
    ) -> Result<(), ProviderError>;
}

/// An allocation error. `kind` is the Go error's `Type()` when it has one
/// (`SMTAlignmentError`), which then becomes the admission reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderError {
    pub kind: Option<String>,
    pub message: String,
}

impl ProviderError {
    pub fn plain(message: impl Into<String>) -> Self {
        ProviderError {
            kind: None,
            message: message.into(),
        }
    }

    /// `admission.GetPodAdmitResult`: reason and message as set on the pod status.
    pub fn admit_reason(&self) -> (String, String) {
        match &self.kind {
            Some(k) => (k.clone(), self.message.clone()),
            None => (
                "UnexpectedAdmissionError".to_string(),
                format!(
                    "Allocate failed due to {}, which is unexpected",
                    self.message
                ),
            ),
        }
    }
}

/// Above this many NUMA nodes hints are described, not listed.
pub const LARGE_MACHINE_NODES: usize = 0;

pub const TOPOLOGY_AFFINITY_ERROR: &str = "TopologyAffinityError";
pub const TOPOLOGY_AFFINITY_MESSAGE: &str = "Resources cannot be allocated with Topology locality";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    Container,
    Pod,
    /// Policy `none`: no hints, no merge, allocate only.
    None,
}

/// What happened to one container during admission.
#[derive(Debug, Clone, Default)]
pub struct ContainerTrace {
    pub name: String,
    /// Each provider's answer (name, hints), container scope only. Kept when the
    /// container's merge rejected, or always with [`TopologyManager::keep_hints`].
    pub provider_hints: Vec<(&'static str, ProviderHints)>,
    /// Large machines: each provider's described lists (container scope); kept as
    /// `provider_hints` is.
    pub provider_families: Vec<(&'static str, LargeHints)>,
    /// The merge for this container (container scope).
    pub merge: Option<MergeOutcome>,
    /// The hint stored for the container (absent if admission stopped before it).
    pub affinity: Option<TopologyHint>,
    /// The provider whose `Allocate` failed for this container, if any.
    pub failed_provider: Option<&'static str>,
}

/// Result of one pod admission, with the trail that led to it.
#[derive(Debug, Clone)]
pub struct Admission {
    pub admitted: bool,
    pub reason: Option<String>,
    pub message: Option<String>,
    pub containers: Vec<ContainerTrace>,
    /// Pod scope: the providers' pod-level hints and the merge (the hints kept as
    /// [`ContainerTrace::provider_hints`] are).
    pub pod_hints: Vec<(&'static str, ProviderHints)>,
    pub pod_merge: Option<MergeOutcome>,
    pub pod_families: Vec<(&'static str, LargeHints)>,
}

impl Admission {
    fn new(pod: &PodInfo) -> Admission {
        Admission {
            admitted: true,
            reason: None,
            message: None,
            containers: pod
                .containers
                .iter()
                .map(|c| ContainerTrace {
                    name: c.name.clone(),
                    ..Default::default()
                })
                .collect(),
            pod_hints: Vec::new(),
            pod_merge: None,
            pod_families: Vec::new(),
        }
    }

    /// Replaces every [`MergeOutcome::unranked`] merge of the trail by the full one,
    /// with the kubelet's non-preferred mask (see [`Policy::decide_large`]): for what
    /// shows the merged hint of a rejection (explanations, the agent's log line). The
    /// decision stays as it is.
    pub fn rank_merges(&mut self, policy: &Policy) {
        if let Some(m) = self.pod_merge.as_mut().filter(|m| m.unranked) {
            *m = m.ranked(policy, &self.pod_families);
        }
        for t in &mut self.containers {
            if let Some(m) = t.merge.as_mut().filter(|m| m.unranked) {
                *m = m.ranked(policy, &t.provider_families);
            }
        }
    }

    fn reject(&mut self, reason: String, message: String) {
        self.admitted = false;
        self.reason = Some(reason);
        self.message = Some(message);
    }

    fn reject_topology(&mut self) {
        self.reject(
            TOPOLOGY_AFFINITY_ERROR.to_string(),
            TOPOLOGY_AFFINITY_MESSAGE.to_string(),
        );
    }
}

/// The kubelet also stores each container's merged hint (`podTopologyHints`) for the
/// providers' `Allocate` to read back through `GetAffinity`; here `allocate` is handed
/// the hint and the admission trace keeps it, so no such store is kept (it cost each
/// admission a map insert into cold memory and read nothing back).
#[derive(Debug, Clone)]
pub struct TopologyManager {
    pub policy: Policy,
    pub scope: Scope,
    /// Merge with described hint lists (machines above [`LARGE_MACHINE_NODES`] NUMA nodes,
    /// or when forced for tests): same decisions, no enumeration of every mask.
    pub large: bool,
    /// Keep every provider's hints in the admission trace, for whoever shows them
    /// (`explain`). Otherwise only a rejecting merge's hints are kept (what
    /// [`Admission::rank_merges`] needs): an admitted pod's result would otherwise hold
    /// the hint families alive, several kilobytes of fresh heap per admission that the
    /// next one cannot reuse, the largest share of its cold memory writes.
    pub keep_hints: bool,
}

impl TopologyManager {
    /// `topologymanager.NewManager`, with the kubelet's errors in its order.
    pub fn new(machine: &Machine, config: &KubeletConfig) -> Result<TopologyManager, String> {
        let numa = NumaInfo::new(machine);
        let policy_name = config.topology_manager_policy();
        if policy_name == "none" {
            return Ok(TopologyManager {
                policy: Policy {
                    kind: PolicyKind::None,
                    numa,
                    options: PolicyOptions::default(),
                    dense_universe: family::DENSE_UNIVERSE,
                },
                scope: Scope::None,
                large: false,
                keep_hints: false,
            });
        }
        let options = options::parse_policy_options(
            &config
                .topology_manager_policy_options
                .clone()
                .unwrap_or_default(),
            config,
        )?;
        if options.prefer_closest_numa && !numa.has_distances() {
            return Err(
                "cannot discover NUMA topology: error getting NUMA distances from cadvisor"
                    .to_string(),
            );
        }
        if machine.nodes.len() as i64 > options.max_allowable_numa_nodes {
            return Err(format!(
                "unsupported on machines with more than {} NUMA Nodes",
                options.max_allowable_numa_nodes
            ));
        }
        let kind = PolicyKind::parse(policy_name)
            .ok_or_else(|| format!("unknown policy: \"{policy_name}\""))?;
        let scope = match config.topology_manager_scope() {
            "container" => Scope::Container,
            "pod" => Scope::Pod,
            s => return Err(format!("unknown scope: \"{s}\"")),
        };
        Ok(TopologyManager {
            policy: Policy {
                kind,
                numa,
                options,
                dense_universe: family::DENSE_UNIVERSE,
            },
            scope,
            large: machine.nodes.len() > LARGE_MACHINE_NODES,
            keep_hints: false,
        })
    }

    /// The pod admit handler: hints, merge, store, allocate, per the scope.
    pub fn admit(&mut self, pod: &PodInfo, providers: &mut [&mut dyn HintProvider]) -> Admission {
        match self.scope {
            Scope::None => self.admit_none(pod, providers),
            Scope::Container => scope_container::admit(self, pod, providers),
            Scope::Pod => scope_pod::admit(self, pod, providers),
        }
    }

    fn admit_none(&mut self, pod: &PodInfo, providers: &mut [&mut dyn HintProvider]) -> Admission {
        let mut adm = Admission::new(pod);
        for (i, c) in pod.containers.iter().enumerate() {
            if !allocate_all(&mut adm, i, pod, c, TopologyHint::NONE, providers) {
                return adm;
            }
        }
        adm
    }
}

/// Calls every provider's `Allocate` for one container; records a rejection on error.
fn allocate_all(
    adm: &mut Admission,
    index: usize,
    pod: &PodInfo,
    c: &ContainerInfo,
    hint: TopologyHint,
    providers: &mut [&mut dyn HintProvider],
) -> bool {
    for p in providers.iter_mut() {
        if let Err(e) = p.allocate(pod, c, hint) {
            adm.containers[index].failed_provider = Some(p.name());
            let (reason, message) = e.admit_reason();
            adm.reject(reason, message);
            return false;
        }
    }
    true
}
