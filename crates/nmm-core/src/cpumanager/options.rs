//! `cpuManagerPolicyOptions` of the static policy (v1.32: `full-pcpus-only` beta, the
//! others alpha).

use super::topology::CpuTopology;
use crate::kubelet_config::KubeletConfig;
use crate::topology::options::parse_go_bool;
use std::collections::BTreeMap;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StaticPolicyOptions {
    pub full_physical_cpus_only: bool,
    pub distribute_cpus_across_numa: bool,
    pub align_by_socket: bool,
    pub distribute_cpus_across_cores: bool,
    pub strict_cpu_reservation: bool,
    pub prefer_align_by_uncore_cache: bool,
}

const BETA: &[&str] = &["full-pcpus-only"];
const ALPHA: &[&str] = &[
    "distribute-cpus-across-numa",
    "align-by-socket",
    "distribute-cpus-across-cores",
    "strict-cpu-reservation",
    "prefer-align-cpus-by-uncorecache",
];

/// Go's `%v` of a `map[string]string`: `map[k1:v1 k2:v2]`, keys sorted.
pub fn go_map(m: &BTreeMap<String, String>) -> String {
    let items: Vec<String> = m.iter().map(|(k, v)| format!("{k}:{v}")).collect();
    format!("map[{}]", items.join(" "))
}

/// `NewStaticPolicyOptions` then `ValidateStaticPolicyOptions`.
pub fn parse(
    opts: &BTreeMap<String, String>,
    config: &KubeletConfig,
    topo: &CpuTopology,
    topology_policy: &str,
) -> Result<StaticPolicyOptions, String> {
    let mut o = StaticPolicyOptions::default();
    for (name, value) in opts {
        if BETA.contains(&name.as_str()) {
            if !config.feature_gate("CPUManagerPolicyBetaOptions") {
                return Err(format!(
                    "CPU Manager Policy Beta-level Options not enabled, but option \"{name}\" provided"
                ));
            }
        } else if ALPHA.contains(&name.as_str()) {
            if !config.feature_gate("CPUManagerPolicyAlphaOptions") {
                return Err(format!(
                    "CPU Manager Policy Alpha-level Options not enabled, but option \"{name}\" provided"
                ));
            }
        } else {
            return Err(format!("unknown CPU Manager Policy option: \"{name}\""));
        }
        let v =
            parse_go_bool(value).map_err(|e| format!("bad value for option \"{name}\": {e}"))?;
        match name.as_str() {
            "full-pcpus-only" => o.full_physical_cpus_only = v,
            "distribute-cpus-across-numa" => o.distribute_cpus_across_numa = v,
            "align-by-socket" => o.align_by_socket = v,
            "distribute-cpus-across-cores" => o.distribute_cpus_across_cores = v,
            "strict-cpu-reservation" => o.strict_cpu_reservation = v,
            _ => o.prefer_align_by_uncore_cache = v,
        }
    }
    let excl = |a: bool, b: bool, x: &str, y: &str| {
        if a && b {
            Err(format!(
                "static policy options {x} and {y} can not be used at the same time"
            ))
        } else {
            Ok(())
        }
    };
    excl(
        o.full_physical_cpus_only,
        o.distribute_cpus_across_cores,
        "full-pcpus-only",
        "distribute-cpus-across-cores",
    )?;
    excl(
        o.distribute_cpus_across_numa,
        o.distribute_cpus_across_cores,
        "distribute-cpus-across-numa",
        "distribute-cpus-across-cores",
    )?;
    excl(
        o.prefer_align_by_uncore_cache,
        o.distribute_cpus_across_cores,
        "prefer-align-cpus-by-uncorecache",
        "distribute-cpus-across-cores",
    )?;
    excl(
        o.prefer_align_by_uncore_cache,
        o.distribute_cpus_across_numa,
        "prefer-align-cpus-by-uncorecache",
        "distribute-cpus-across-numa",
    )?;
    if o.align_by_socket {
        if topology_policy == "single-numa-node" {
            return Err("Topolgy manager single-numa-node policy is incompatible with CPUManager align-by-socket policy option".into());
        }
        if topo.num_sockets > topo.num_numa_nodes {
            return Err("Align by socket is not compatible with hardware where number of sockets are more than number of NUMA".into());
        }
    }
    Ok(o)
}
