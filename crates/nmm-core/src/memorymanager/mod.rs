//! Memory Manager (`pkg/kubelet/cm/memorymanager`): policy selection and start-up checks,
//! the static policy, and the hint-provider face the Topology Manager sees.

pub mod drift;
pub mod flat;
pub mod hint_family;
pub mod policy_static;
pub mod reserved_memory;
pub mod state;

use crate::kubelet_config::KubeletConfig;
use crate::machine::Machine;
use crate::pod::{ContainerInfo, PodInfo};
use crate::quantity::Quantity;
use crate::topology::hint::{to_large, LargeHints, ProviderHints, TopologyHint};
use crate::topology::{HintProvider, ProviderError};
use policy_static::StaticPolicy;
use state::{Assignments, MachineState};
use std::collections::BTreeMap;

pub const STATE_FILE: &str = "memory_manager_state";

// One per node: boxing the static policy would save no memory worth a pointer chase on
// every admission.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
pub enum MemoryPolicy {
    None,
    Static(StaticPolicy),
}

#[derive(Debug, Clone)]
pub struct MemoryManager {
    pub policy: MemoryPolicy,
    /// `memoryManagerPolicyOptions: {memory-drift-tolerance}` (KEP-6232).
    pub drift_setting: drift::DriftSetting,
}

impl MemoryManager {
    /// `memorymanager.NewManager`.
    pub fn new(
        machine: &Machine,
        config: &KubeletConfig,
        node_allocatable: &BTreeMap<String, Quantity>,
    ) -> Result<MemoryManager, String> {
        let drift_setting = drift::parse_policy_options(config)?;
        let policy = match config.memory_manager_policy() {
            "None" => MemoryPolicy::None,
            "Static" => {
                let list =
                    reserved_memory::flatten(config.reserved_memory.as_deref().unwrap_or(&[]))?;
                let reserved =
                    reserved_memory::system_reserved_memory(machine, &list, node_allocatable)
                        .map_err(|e| e.to_string())?;
                let total: u64 = reserved
                    .values()
                    .filter_map(|m| m.get(policy_static::MEMORY))
                    .sum();
                if total == 0 {
                    return Err(
                        "[memorymanager] you should specify the system reserved memory".into(),
                    );
                }
                MemoryPolicy::Static(StaticPolicy::new(reserved))
            }
            "BestEffort" => {
                return Err("policy \"BestEffort\" is not available for platform \"linux\"".into())
            }
            other => return Err(format!("unknown policy: \"{other}\"")),
        };
        Ok(MemoryManager {
            policy,
            drift_setting,
        })
    }

    pub fn policy_name(&self) -> &'static str {
        match self.policy {
            MemoryPolicy::None => "None",
            MemoryPolicy::Static(_) => "Static",
        }
    }

    /// `Start` after the checkpoint was read (`None`: no checkpoint file). The caller
    /// wraps checkpoint errors with the kubelet's drain-and-delete advice.
    ///
    /// `iomem` is the text of `/proc/iomem` for `memory-drift-tolerance: auto`. Returns
    /// what the restart observed (KEP-6232) when a checkpoint was validated.
    pub fn start(
        &mut self,
        machine: &Machine,
        restored: Option<(MachineState, Assignments)>,
        iomem: Option<&str>,
    ) -> Result<Option<drift::DriftReport>, String> {
        if let MemoryPolicy::Static(p) = &mut self.policy {
            if let Some((ms, a)) = restored {
                p.set_machine_state(ms);
                p.assignments = a;
            }
            let tolerance = drift::resolve(self.drift_setting, iomem);
            return p.start_with_tolerance(machine, &tolerance);
        }
        Ok(None)
    }

    pub fn machine_state(&self) -> MachineState {
        match &self.policy {
            MemoryPolicy::None => MachineState::new(),
            MemoryPolicy::Static(p) => p.machine_state().clone(),
        }
    }

    pub fn assignments(&self) -> Assignments {
        match &self.policy {
            MemoryPolicy::None => Assignments::new(),
            MemoryPolicy::Static(p) => p.assignments.clone(),
        }
    }

    pub fn static_policy(&self) -> Option<&StaticPolicy> {
        match &self.policy {
            MemoryPolicy::Static(p) => Some(p),
            MemoryPolicy::None => None,
        }
    }

    pub fn remove_pod(&mut self, uid: &str) {
        if let MemoryPolicy::Static(p) = &mut self.policy {
            p.remove_pod(uid);
        }
    }

    /// Containers of an admitted pod start (`AddContainer`).
    pub fn start_containers(&mut self, pod: &PodInfo) {
        if let MemoryPolicy::Static(p) = &mut self.policy {
            p.start_containers(pod);
        }
    }

    /// Describe hint lists instead of listing them (large machines).
    pub fn set_large(&mut self, large: bool) {
        if let MemoryPolicy::Static(p) = &mut self.policy {
            p.large = large;
        }
    }

    pub fn has_pod(&self, uid: &str) -> bool {
        self.static_policy()
            .is_some_and(|p| p.assignments.contains_key(uid))
    }
}

impl HintProvider for MemoryManager {
    fn name(&self) -> &'static str {
        "memory"
    }

    fn get_topology_hints(&mut self, pod: &PodInfo, c: &ContainerInfo) -> ProviderHints {
        match &self.policy {
            MemoryPolicy::None => None,
            MemoryPolicy::Static(p) => p.get_topology_hints(pod, c),
        }
    }

    fn get_pod_topology_hints(&mut self, pod: &PodInfo) -> ProviderHints {
        match &self.policy {
            MemoryPolicy::None => None,
            MemoryPolicy::Static(p) => p.get_pod_topology_hints(pod),
        }
    }

    fn get_topology_hint_families(&mut self, pod: &PodInfo, c: &ContainerInfo) -> LargeHints {
        match &mut self.policy {
            MemoryPolicy::None => to_large(None),
            MemoryPolicy::Static(p) => p.get_topology_hint_families(pod, c),
        }
    }

    fn get_pod_topology_hint_families(&mut self, pod: &PodInfo) -> LargeHints {
        match &mut self.policy {
            MemoryPolicy::None => to_large(None),
            MemoryPolicy::Static(p) => p.get_pod_topology_hint_families(pod),
        }
    }

    fn allocate(
        &mut self,
        pod: &PodInfo,
        c: &ContainerInfo,
        hint: TopologyHint,
    ) -> Result<(), ProviderError> {
        match &mut self.policy {
            MemoryPolicy::None => Ok(()),
            MemoryPolicy::Static(p) => p.allocate(pod, c, hint).map_err(ProviderError::plain),
        }
    }
}
