//! The Topology Manager and CPU Manager checks.

use super::*;

/// The reserved CPU set the kubelet uses, after the subset check.
pub(super) fn check_reserved_cpus(cx: &mut Ctx, config: &KubeletConfig) -> CpuSet {
    let text = config.reserved_system_cpus.as_deref().unwrap_or("");
    let Ok(set) = CpuSet::parse(text) else {
        return CpuSet::new(); // reported by config validation
    };
    if set.is_empty() {
        return set;
    }
    // The kubelet's own check, on a configuration that holds nothing else.
    let only = KubeletConfig {
        reserved_system_cpus: Some(text.to_string()),
        ..KubeletConfig::default()
    };
    if let Err(e) = Node::start(cx.machine.clone(), only, StartOptions::default()) {
        let all = cx.machine.all_cpus();
        cx.add(
            "reservedSystemCPUs",
            e.message,
            format!(
                "reservedSystemCPUs may name only this machine's online CPUs ({all}); reserve e.g. \"{}\"",
                all.iter()
                    .take(set.len().max(1))
                    .map(|c| c.to_string())
                    .collect::<Vec<_>>()
                    .join(",")
            ),
        );
        return CpuSet::new();
    }
    set
}

pub(super) fn check_topology(cx: &mut Ctx, config: &KubeletConfig) {
    let policy = config.topology_manager_policy();
    if policy == "none" {
        return; // the kubelet checks nothing else then
    }
    let mut c = config.clone();
    // An unknown policy or scope is reported by config validation; look past it.
    if crate::topology::policy::PolicyKind::parse(policy).is_none() {
        c.topology_manager_policy = Some("best-effort".into());
    }
    if !["container", "pod"].contains(&c.topology_manager_scope()) {
        c.topology_manager_scope = Some("container".into());
    }
    let mut opts = c
        .topology_manager_policy_options
        .clone()
        .unwrap_or_default();
    for (k, v) in opts.clone() {
        let one: BTreeMap<String, String> = [(k.clone(), v.clone())].into();
        if let Err(e) = parse_policy_options(&one, &c) {
            let fix = if e.contains("not enabled") {
                format!("enable the feature gate (featureGates: {{TopologyManagerPolicyBetaOptions: true}}) or remove \"{k}\" from topologyManagerPolicyOptions")
            } else if e.starts_with("unknown") {
                format!("topologyManagerPolicyOptions knows prefer-closest-numa-nodes and max-allowable-numa-nodes: remove or correct \"{k}\"{}", did_you_mean(&k, &["prefer-closest-numa-nodes", "max-allowable-numa-nodes"]))
            } else if k == "prefer-closest-numa-nodes" {
                "write \"true\" or \"false\"".to_string()
            } else {
                format!(
                    "write a whole number of at least 8 (this machine has {} NUMA nodes)",
                    cx.machine.nodes.len()
                )
            };
            cx.add("topologyManagerPolicyOptions", e, fix);
            opts.remove(&k);
        }
    }
    c.topology_manager_policy_options = Some(opts);
    for _ in 0..3 {
        let Err(e) = TopologyManager::new(cx.machine, &c) else {
            return;
        };
        if e.starts_with("cannot discover NUMA topology") {
            cx.add("topologyManagerPolicyOptions", e, "prefer-closest-numa-nodes needs the NUMA distances, which this machine does not report: remove the option (or give machine.distances)");
            if let Some(o) = c.topology_manager_policy_options.as_mut() {
                o.remove("prefer-closest-numa-nodes");
            }
        } else if e.starts_with("unsupported on machines with more than") {
            let n = cx.machine.nodes.len();
            let gate = if c.feature_gate("TopologyManagerPolicyBetaOptions") {
                String::new()
            } else {
                " and enable featureGates: {TopologyManagerPolicyBetaOptions: true}".into()
            };
            cx.add(
                "numaNodeLimit",
                e,
                format!("this machine has {n} NUMA nodes: set topologyManagerPolicyOptions: {{max-allowable-numa-nodes: \"{n}\"}}{gate} (the kubelet warns that admission may be slower), or use topologyManagerPolicy: none"),
            );
            return;
        } else {
            cx.add(
                "topologyManager",
                e,
                "correct the topologyManager* setting the message names",
            );
            return;
        }
    }
}

/// The CPU reservation the CPU Manager sees: systemReserved.cpu + kubeReserved.cpu, or the
/// size of reservedSystemCPUs.
pub(super) fn cpu_reservation(
    config: &KubeletConfig,
    reservation: Option<&BTreeMap<String, Quantity>>,
    reserved_cpus: &CpuSet,
) -> BTreeMap<String, Quantity> {
    let mut r = match reservation {
        Some(r) => r.clone(),
        None => {
            node_allocatable_reservation(&sanitized_reservations(config), 0).unwrap_or_default()
        }
    };
    if !reserved_cpus.is_empty() {
        r.insert(
            "cpu".into(),
            Quantity::from_i64(
                reserved_cpus.len() as i64,
                crate::quantity::Format::DecimalSI,
            ),
        );
    }
    r
}

pub(super) fn cpu_option_fix(e: &str, name: &str) -> String {
    if e.contains("Alpha-level Options not enabled") {
        format!("enable featureGates: {{CPUManagerPolicyAlphaOptions: true}} or remove \"{name}\" from cpuManagerPolicyOptions")
    } else if e.contains("Beta-level Options not enabled") {
        format!("enable featureGates: {{CPUManagerPolicyBetaOptions: true}} or remove \"{name}\" from cpuManagerPolicyOptions")
    } else if e.contains("unknown CPU Manager Policy option") {
        let known = [
            "full-pcpus-only",
            "distribute-cpus-across-numa",
            "align-by-socket",
            "distribute-cpus-across-cores",
            "strict-cpu-reservation",
            "prefer-align-cpus-by-uncorecache",
        ];
        format!(
            "remove or correct \"{name}\"{}; the static policy knows {}",
            did_you_mean(name, &known),
            known.join(", ")
        )
    } else if e.contains("bad value") {
        format!("write \"true\" or \"false\" for \"{name}\"")
    } else if e.contains("can not be used at the same time") {
        "keep only one of the two options".into()
    } else if e.contains("single-numa-node policy is incompatible") {
        "remove align-by-socket, or use another topologyManagerPolicy".into()
    } else if e.contains("Align by socket is not compatible") {
        "remove align-by-socket: this machine has more sockets than NUMA nodes".into()
    } else {
        "correct cpuManagerPolicyOptions as the message says".into()
    }
}

pub(super) fn check_cpu(
    cx: &mut Ctx,
    config: &KubeletConfig,
    reservation: Option<&BTreeMap<String, Quantity>>,
    reserved_cpus: &CpuSet,
) {
    let mut c = config.clone();
    let mut res = cpu_reservation(config, reservation, reserved_cpus);
    let mut reserved = reserved_cpus.clone();
    // Each option alone first, so that every bad one is named.
    if c.cpu_manager_policy() == "static" && c.feature_gate("CPUManagerPolicyOptions") {
        if let Ok(topo) = CpuTopology::discover(cx.machine) {
            let mut opts = c.cpu_manager_policy_options.clone().unwrap_or_default();
            for (k, v) in opts.clone() {
                let one: BTreeMap<String, String> = [(k.clone(), v)].into();
                if let Err(e) = cpu_options::parse(&one, &c, &topo, c.topology_manager_policy()) {
                    let fix = cpu_option_fix(&e, &k);
                    cx.add(
                        "cpuManagerPolicyOptions",
                        format!("new static policy error: {e}"),
                        fix,
                    );
                    opts.remove(&k);
                }
            }
            c.cpu_manager_policy_options = Some(opts);
        }
    }
    for _ in 0..4 {
        let e = match CpuManager::new(cx.machine, &c, &res, &reserved) {
            Ok(mut m) => {
                if let Err(e) = m.start(None) {
                    cx.add("cpuManager", e, "correct the CPU Manager settings");
                }
                return;
            }
            Err(e) => e,
        };
        if e.contains("require feature gates") {
            cx.add("cpuManagerPolicyOptions", e, "enable featureGates: {CPUManagerPolicyOptions: true}, or remove cpuManagerPolicyOptions");
            c.cpu_manager_policy_options = None;
        } else if e.starts_with("new none policy error") {
            cx.add("cpuManagerPolicyOptions", e, "cpuManagerPolicyOptions work only with cpuManagerPolicy: static; remove them or set the static policy");
            return;
        } else if e.starts_with("unknown policy") {
            let v = c.cpu_manager_policy().to_string();
            cx.add(
                "cpuManagerPolicy",
                e,
                format!(
                    "set cpuManagerPolicy to none or static{}",
                    did_you_mean(&v, &["none", "static"])
                ),
            );
            return;
        } else if e.contains("requires systemreserved.cpu + kubereserved.cpu")
            || e.contains("unable to determine reserved CPU")
        {
            cx.add("cpuReservation", e, "the static CPU policy needs CPUs reserved for the system: set kubeReserved.cpu or systemReserved.cpu (e.g. kubeReserved: {cpu: \"1\"}; fractions round up to whole CPUs), or reservedSystemCPUs: \"0\"");
            res.insert("cpu".into(), Quantity::must_parse("1"));
            reserved = CpuSet::new();
        } else if e.contains("unable to reserve the required amount of CPUs") {
            cx.add(
                "cpuReservation",
                e,
                format!(
                    "reserve fewer CPUs: this machine has {} CPUs",
                    cx.machine.cpus.len()
                ),
            );
            return;
        } else if e.starts_with("new static policy error") {
            let name = quoted_after(&e, "option").unwrap_or("").to_string();
            let fix = cpu_option_fix(&e, &name);
            cx.add("cpuManagerPolicyOptions", e, fix);
            return;
        } else {
            cx.add(
                "cpuManager",
                e,
                "the CPU Manager cannot start on this machine with these settings",
            );
            return;
        }
    }
}
