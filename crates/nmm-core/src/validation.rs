//! `ValidateKubeletConfiguration`, the part of it that concerns these managers. All errors
//! are collected and reported together, as the kubelet's aggregate error does.

use crate::cpuset::CpuSet;
use crate::kubelet_config::KubeletConfig;
use crate::memorymanager::policy_static::is_memory_resource;
use crate::quantity::Quantity;
use std::collections::BTreeSet;

/// Each finding, without the aggregate wrapping.
pub fn kubelet_config_errors(c: &KubeletConfig) -> Vec<String> {
    let mut errs = Vec::new();
    let tm = c.topology_manager_policy();
    if !["none", "best-effort", "restricted", "single-numa-node"].contains(&tm) {
        errs.push(format!("invalid configuration: topologyManagerPolicy (--topology-manager-policy) \"{tm}\" must be one of: [\"none\" \"best-effort\" \"restricted\" \"single-numa-node\"]"));
    }
    let scope = c.topology_manager_scope();
    if scope != "container" && scope != "pod" {
        errs.push(format!("invalid configuration: topologyManagerScope (--topology-manager-scope) \"{scope}\" must be one of: \"container\", or \"pod\""));
    }
    if let Some(r) = c.reserved_system_cpus.as_deref().filter(|s| !s.is_empty()) {
        if c.system_reserved_cgroup
            .as_deref()
            .is_some_and(|s| !s.is_empty())
            || c.kube_reserved_cgroup
                .as_deref()
                .is_some_and(|s| !s.is_empty())
        {
            errs.push("invalid configuration: can't use reservedSystemCPUs (--reserved-cpus) with systemReservedCgroup (--system-reserved-cgroup) or kubeReservedCgroup (--kube-reserved-cgroup)".into());
        }
        if let Err(e) = CpuSet::parse(r) {
            errs.push(format!(
                "invalid configuration: unable to parse reservedSystemCPUs (--reserved-cpus) {r}, error: {e}"
            ));
        }
    }
    if c.memory_manager_policy_options
        .as_ref()
        .is_some_and(|o| !o.is_empty())
        && !c.feature_gate(crate::memorymanager::drift::DRIFT_TOLERANCE_GATE)
    {
        errs.push(format!(
            "invalid configuration: memoryManagerPolicyOptions requires feature gate {}",
            crate::memorymanager::drift::DRIFT_TOLERANCE_GATE
        ));
    }
    let mut seen: BTreeSet<(i32, String)> = BTreeSet::new();
    for (i, e) in c.reserved_memory.iter().flatten().enumerate() {
        let n = e.numa_node;
        for (r, v) in &e.limits {
            if !is_memory_resource(r) {
                errs.push(format!("invalid configuration: the limit type \"{r}\" for NUMA node {n} is not supported, only [memory hugepages-<HugePageSize>] is accepted"));
            }
            match Quantity::parse(v.trim()) {
                Ok(q) if q.is_zero() => errs.push(format!(
                    "invalid configuration: reserved memory may not be zero for NUMA node {n} and resource \"{r}\""
                )),
                Ok(_) => {}
                Err(err) => errs.push(format!(
                    "invalid configuration: reservedMemory[{i}].limits.{r}: {v:?} is not a quantity: {err}"
                )),
            }
            if !seen.insert((n, r.clone())) {
                errs.push(format!("invalid configuration: the reserved memory has a duplicate value for NUMA node {n} and resource \"{r}\""));
            }
        }
    }
    errs
}

/// Go's `utilerrors.NewAggregate(...).Error()`: one message alone, several in brackets,
/// duplicates dropped.
pub fn aggregate(errs: &[String]) -> String {
    let mut seen = BTreeSet::new();
    let uniq: Vec<&String> = errs.iter().filter(|e| seen.insert(e.as_str())).collect();
    match uniq.len() {
        0 => String::new(),
        1 => uniq[0].clone(),
        _ => format!(
            "[{}]",
            uniq.iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// The kubelet's start-up failure text for an invalid configuration.
pub fn validate_kubelet_config(c: &KubeletConfig) -> Result<(), String> {
    let errs = kubelet_config_errors(c);
    if errs.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "failed to validate kubelet configuration, error: {}",
            aggregate(&errs)
        ))
    }
}
