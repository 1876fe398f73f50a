//! CPU Manager (`pkg/kubelet/cm/cpumanager`): the `none` and `static` policies, start-up
//! checks, and the hint-provider face the Topology Manager sees.

pub mod cpu_assignment;
pub mod hint_family;
pub mod options;
pub mod policy_static;
pub mod topology;

use crate::cpuset::CpuSet;
use crate::kubelet_config::KubeletConfig;
use crate::machine::Machine;
use crate::pod::{ContainerInfo, PodInfo};
use crate::quantity::Quantity;
use crate::topology::hint::{to_large, LargeHints, ProviderHints, TopologyHint};
use crate::topology::{HintProvider, ProviderError};
use policy_static::{CpuAssignments, StaticPolicy};
use std::collections::BTreeMap;
use topology::CpuTopology;

pub const STATE_FILE: &str = "cpu_manager_state";

#[derive(Debug, Clone)]
pub enum CpuPolicy {
    None,
    Static(Box<StaticPolicy>),
}

#[derive(Debug, Clone)]
pub struct CpuManager {
    pub policy: CpuPolicy,
}

impl CpuManager {
    /// `cpumanager.NewManager`. `node_allocatable` is the reservation (its `cpu` entry is
    /// systemReserved.cpu + kubeReserved.cpu, or the size of reservedSystemCPUs).
    pub fn new(
        machine: &Machine,
        config: &KubeletConfig,
        node_allocatable: &BTreeMap<String, Quantity>,
        reserved_cpus: &CpuSet,
    ) -> Result<CpuManager, String> {
        let opts = config
            .cpu_manager_policy_options
            .clone()
            .unwrap_or_default();
        if !opts.is_empty() && !config.feature_gate("CPUManagerPolicyOptions") {
            return Err(format!(
                "CPU Manager policy options {} require feature gates \"CPUManager\", \"CPUManagerPolicyOptions\" enabled",
                options::go_map(&opts)
            ));
        }
        let policy = match config.cpu_manager_policy() {
            "none" => {
                if !opts.is_empty() {
                    return Err(format!(
                        "new none policy error: None policy: received unsupported options={}",
                        options::go_map(&opts)
                    ));
                }
                CpuPolicy::None
            }
            "static" => {
                let topo = CpuTopology::discover(machine)?;
                let reserved = node_allocatable.get("cpu").ok_or(
                    "[cpumanager] unable to determine reserved CPU resources for static policy",
                )?;
                if reserved.is_zero() {
                    return Err("[cpumanager] the static policy requires systemreserved.cpu + kubereserved.cpu to be greater than zero".into());
                }
                let num = (reserved.milli_value() as f64 / 1000.0).ceil() as usize;
                let wrap = |e: String| format!("new static policy error: {e}");
                let o = options::parse(&opts, config, &topo, config.topology_manager_policy())
                    .map_err(wrap)?;
                let p = StaticPolicy::new(topo, o, num, reserved_cpus).map_err(wrap)?;
                CpuPolicy::Static(Box::new(p))
            }
            other => return Err(format!("unknown policy: \"{other}\"")),
        };
        Ok(CpuManager { policy })
    }

    pub fn policy_name(&self) -> &'static str {
        match self.policy {
            CpuPolicy::None => "none",
            CpuPolicy::Static(_) => "static",
        }
    }

    /// `Start` with the restored state (default set, assignments), or `None` when there
    /// was no checkpoint.
    pub fn start(&mut self, restored: Option<(CpuSet, CpuAssignments)>) -> Result<(), String> {
        if let CpuPolicy::Static(p) = &mut self.policy {
            if let Some((d, a)) = restored {
                p.default_set = d;
                p.assignments = a;
            }
            p.start()?;
        }
        Ok(())
    }

    pub fn default_set(&self) -> CpuSet {
        match &self.policy {
            CpuPolicy::None => CpuSet::new(),
            CpuPolicy::Static(p) => p.default_set.clone(),
        }
    }

    pub fn assignments(&self) -> CpuAssignments {
        match &self.policy {
            CpuPolicy::None => CpuAssignments::new(),
            CpuPolicy::Static(p) => p.assignments.clone(),
        }
    }

    pub fn cpus_of(&self, pod: &str, container: &str) -> CpuSet {
        match &self.policy {
            CpuPolicy::None => CpuSet::new(),
            CpuPolicy::Static(p) => p
                .assignments
                .get(pod)
                .and_then(|m| m.get(container))
                .cloned()
                .unwrap_or_default(),
        }
    }

    pub fn remove_pod(&mut self, uid: &str) {
        if let CpuPolicy::Static(p) = &mut self.policy {
            p.remove_pod(uid);
        }
    }

    /// Describe hint lists instead of listing them (large machines).
    pub fn set_large(&mut self, large: bool) {
        if let CpuPolicy::Static(p) = &mut self.policy {
            p.large = large;
        }
    }

    pub fn has_pod(&self, uid: &str) -> bool {
        matches!(&self.policy, CpuPolicy::Static(p) if p.assignments.contains_key(uid))
    }
}

impl HintProvider for CpuManager {
    fn name(&self) -> &'static str {
        "cpu"
    }

    fn get_topology_hints(&mut self, pod: &PodInfo, c: &ContainerInfo) -> ProviderHints {
        match &self.policy {
            CpuPolicy::None => None,
            CpuPolicy::Static(p) => p.get_topology_hints(pod, c),
        }
    }

    fn get_pod_topology_hints(&mut self, pod: &PodInfo) -> ProviderHints {
        match &self.policy {
            CpuPolicy::None => None,
            CpuPolicy::Static(p) => p.get_pod_topology_hints(pod),
        }
    }

    fn get_topology_hint_families(&mut self, pod: &PodInfo, c: &ContainerInfo) -> LargeHints {
        match &self.policy {
            CpuPolicy::None => to_large(None),
            CpuPolicy::Static(p) => p.get_topology_hint_families(pod, c),
        }
    }

    fn get_pod_topology_hint_families(&mut self, pod: &PodInfo) -> LargeHints {
        match &self.policy {
            CpuPolicy::None => to_large(None),
            CpuPolicy::Static(p) => p.get_pod_topology_hint_families(pod),
        }
    }

    fn allocate(
        &mut self,
        pod: &PodInfo,
        c: &ContainerInfo,
        hint: TopologyHint,
    ) -> Result<(), ProviderError> {
        match &mut self.policy {
            CpuPolicy::None => Ok(()),
            CpuPolicy::Static(p) => p.allocate(pod, c, hint),
        }
    }
}
