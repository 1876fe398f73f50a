//! Diagnosis of a KubeletConfiguration on a machine (`nmm validate`, the agent's start-up):
//! every start-up check kubelet v1.32 runs for the Topology, CPU and Memory Managers, each
//! problem with the kubelet's exact message and what to change, and a complete valid
//! `reservedMemory` when that list is wrong. Pure: the callers load the inputs and render
//! the [`Analysis`].

use crate::cpumanager::topology::CpuTopology;
use crate::cpumanager::{options as cpu_options, CpuManager, CpuPolicy};
use crate::cpuset::CpuSet;
use crate::kubelet_config::{KubeletConfig, MemoryReservation};
use crate::machine::Machine;
use crate::memorymanager::policy_static::{is_memory_resource, MEMORY};
use crate::memorymanager::reserved_memory::{reserved_memory_mismatches, ReservedMemoryError};
use crate::memorymanager::{MemoryManager, MemoryPolicy};
use crate::node::{Node, StartOptions};
use crate::node_allocatable::node_allocatable_reservation;
use crate::quantity::{format_binary_bytes, Quantity};
use crate::reserved_memory_flag::{self, FlagError, ReservedMemoryFlagError};
use crate::topology::options::parse_policy_options;
use crate::topology::TopologyManager;
use crate::validation::kubelet_config_errors;
use std::collections::BTreeMap;
use std::fmt::Write as _;

mod cpu;
mod memory;

use self::cpu::*;
pub use self::memory::propose;
use self::memory::*;

/// One problem that stops the kubelet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// What is checked, named after the configuration field: `reservedMemory.total`,
    /// `topologyManagerPolicy`, `--reserved-memory`, ...
    pub check: String,
    /// The kubelet's exact message for it.
    pub kubelet_error: String,
    /// What to change.
    pub fix: String,
    /// The kubelet itself stops with this message (or, for config validation, with an
    /// aggregate holding it).
    pub kubelet_stops_here: bool,
}

/// A complete `reservedMemory` that passes the kubelet's checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Suggestion {
    /// NUMA node -> memory bytes, in NUMA-node order.
    pub memory: Vec<(u32, u64)>,
    /// The Node Allocatable memory reservation it must total, as the kubelet prints it.
    pub total: String,
    /// Where that total comes from.
    pub explanation: String,
}

impl Suggestion {
    pub fn reservations(&self) -> Vec<MemoryReservation> {
        self.memory
            .iter()
            .map(|&(n, b)| MemoryReservation {
                numa_node: n as i32,
                limits: vec![(MEMORY.to_string(), format_binary_bytes(b))],
            })
            .collect()
    }

    pub fn flag_value(&self) -> String {
        reserved_memory_flag::to_flag_value(&self.reservations())
    }

    /// The list as it goes into the config file.
    pub fn yaml(&self) -> String {
        let mut s = String::from("reservedMemory:\n");
        for (n, b) in &self.memory {
            let _ = write!(
                s,
                "- numaNode: {n}\n  limits:\n    memory: {}\n",
                format_binary_bytes(*b)
            );
        }
        s
    }
}

#[derive(Debug, Clone, Default)]
pub struct Analysis {
    pub findings: Vec<Finding>,
    /// What the kubelet stops with: (stage, message).
    pub kubelet_error: Option<(String, String)>,
    pub suggestion: Option<Suggestion>,
    /// Accepted by the kubelet, but probably not meant.
    pub warnings: Vec<String>,
    pub reserved_memory_from_flags: bool,
    /// What the managers look like when the kubelet starts.
    pub summary: Vec<(String, String)>,
}

impl Analysis {
    pub fn valid(&self) -> bool {
        self.findings.is_empty() && self.kubelet_error.is_none()
    }
}

struct Ctx<'a> {
    machine: &'a Machine,
    /// The field reservedMemory came from, for the fixes.
    rm: &'static str,
    findings: Vec<Finding>,
}

impl Ctx<'_> {
    fn add(&mut self, check: &str, kubelet_error: impl Into<String>, fix: impl Into<String>) {
        let kubelet_error = kubelet_error.into();
        if self
            .findings
            .iter()
            .any(|f| f.check == check && f.kubelet_error == kubelet_error)
        {
            return;
        }
        self.findings.push(Finding {
            check: check.to_string(),
            kubelet_error,
            fix: fix.into(),
            kubelet_stops_here: false,
        });
    }

    fn node_ids(&self) -> String {
        let ids: Vec<String> = self
            .machine
            .node_ids()
            .iter()
            .map(|i| i.to_string())
            .collect();
        ids.join(", ")
    }
}

/// Runs every check on the config file's settings, with `flags` (`--reserved-memory`
/// values) applied as the kubelet applies them.
pub fn analyze(machine: &Machine, file_config: &KubeletConfig, flags: &[String]) -> Analysis {
    let mut a = Analysis {
        reserved_memory_from_flags: !flags.is_empty(),
        ..Analysis::default()
    };
    let mut cx = Ctx {
        machine,
        rm: if flags.is_empty() {
            "reservedMemory"
        } else {
            "--reserved-memory"
        },
        findings: Vec::new(),
    };
    let mut config = file_config.clone();
    let mut flags_ok = true;
    if !flags.is_empty() {
        match reserved_memory_flag::apply(config.reserved_memory.take(), flags) {
            Ok(list) => config.reserved_memory = list,
            Err(e) => {
                flags_ok = false;
                let msg = e.kubelet_message();
                cx.add("--reserved-memory", msg.clone(), flag_fix(&e));
                a.kubelet_error = Some(("flags".into(), msg));
                config.reserved_memory = None;
            }
        }
    }

    check_config_validation(&mut cx, &config, flags_ok);
    let capacity: u64 = machine.nodes.iter().map(|n| n.memory).sum();
    let reservation = match node_allocatable_reservation(&config, capacity) {
        Ok(r) => Some(r),
        Err(e) => {
            let fix = node_allocatable_fix(&e);
            cx.add("nodeAllocatable", e, fix);
            node_allocatable_reservation(&sanitized_reservations(&config), capacity).ok()
        }
    };
    let reserved_cpus = check_reserved_cpus(&mut cx, &config);
    check_topology(&mut cx, &config);
    check_cpu(&mut cx, &config, reservation.as_ref(), &reserved_cpus);
    if flags_ok {
        a.suggestion = check_memory(&mut cx, &config, reservation.as_ref(), capacity);
    }
    memory_warnings(&mut a.warnings, machine, &config);

    // The kubelet's own verdict, and the first message it prints.
    if flags_ok {
        match Node::start(machine.clone(), config.clone(), StartOptions::default()) {
            Ok(node) => a.summary = summary(&node),
            Err(e) => a.kubelet_error = Some((e.stage.to_string(), e.message)),
        }
    }
    if let Some((stage, msg)) = &a.kubelet_error {
        // The finding with the kubelet's message; for config validation, every finding
        // inside the aggregate message.
        let mut hit = false;
        if let Some(f) = cx.findings.iter_mut().find(|f| f.kubelet_error == *msg) {
            f.kubelet_stops_here = true;
            hit = true;
        } else {
            for f in cx.findings.iter_mut() {
                if msg.contains(f.kubelet_error.as_str()) {
                    f.kubelet_stops_here = true;
                    hit = true;
                }
            }
        }
        if !hit {
            cx.findings.push(Finding {
                check: format!("kubelet.{stage}"),
                kubelet_error: msg.clone(),
                fix: "the kubelet refuses this configuration on this machine; change the setting the message names".into(),
                kubelet_stops_here: true,
            });
        }
    }
    a.findings = cx.findings;
    a
}

fn did_you_mean(value: &str, valid: &[&str]) -> String {
    let norm = |s: &str| -> String {
        s.chars()
            .filter(|c| *c != '-' && *c != '_' && *c != ' ')
            .flat_map(char::to_lowercase)
            .collect()
    };
    let v = norm(value);
    match valid.iter().find(|x| norm(x) == v) {
        Some(x) if *x != value => format!(" (did you mean \"{x}\"?)"),
        _ => String::new(),
    }
}

fn flag_fix(e: &FlagError) -> String {
    let grammar = "<numa>:<type>=<quantity>[,<type>=<quantity>...], nodes separated by ';', e.g. --reserved-memory '0:memory=1Gi;1:memory=2Gi'";
    match &e.error {
        ReservedMemoryFlagError::NoTarget => "an empty --reserved-memory \"\" detaches the kubelet's flag, so every --reserved-memory after it fails: remove the empty one".into(),
        ReservedMemoryFlagError::Format(part) if part.is_empty() => {
            format!("remove the empty part (a trailing or doubled ';'); write {grammar}")
        }
        ReservedMemoryFlagError::Format(part) => {
            format!("\"{part}\" is not <numa>:<limits>; write {grammar}")
        }
        ReservedMemoryFlagError::NumaNode(s) => format!(
            "\"{s}\" is not a NUMA node id: start each part with the node's number (no spaces); write {grammar}"
        ),
        ReservedMemoryFlagError::Limit(s) => format!(
            "\"{s}\" is not <type>=<quantity>: write each limit as e.g. memory=1Gi, separated by ',' (no trailing ',')"
        ),
        ReservedMemoryFlagError::UnknownType(t) => format!(
            "only memory and hugepages-<size> (e.g. hugepages-1Gi) can be reserved{}",
            did_you_mean(t, &["memory"])
        ),
        ReservedMemoryFlagError::Quantity(q) => format!(
            "\"{q}\" is not a Kubernetes quantity: write e.g. 1Gi, 512Mi or 1073741824 (no spaces; GB/MB are not units, use G/M or Gi/Mi)"
        ),
    }
}

/// Text between the first pair of double quotes after `after`.
fn quoted_after<'m>(msg: &'m str, after: &str) -> Option<&'m str> {
    let rest = &msg[msg.find(after)? + after.len()..];
    let start = rest.find('"')? + 1;
    let end = start + rest[start..].find('"')?;
    Some(&rest[start..end])
}

/// The NUMA node number after `"NUMA node "` in a message.
fn node_after(msg: &str) -> Option<&str> {
    let rest = &msg[msg.find("NUMA node ")? + "NUMA node ".len()..];
    rest.split(|c: char| !(c.is_ascii_digit() || c == '-'))
        .next()
}

fn check_config_validation(cx: &mut Ctx, config: &KubeletConfig, flags_ok: bool) {
    let rm = cx.rm;
    for e in kubelet_config_errors(config) {
        let body = e.strip_prefix("invalid configuration: ").unwrap_or(&e);
        if body.starts_with("topologyManagerPolicy ") {
            let v = config.topology_manager_policy();
            let valid = ["none", "best-effort", "restricted", "single-numa-node"];
            cx.add(
                "topologyManagerPolicy",
                e.clone(),
                format!(
                    "set topologyManagerPolicy to none, best-effort, restricted or single-numa-node{}",
                    did_you_mean(v, &valid)
                ),
            );
        } else if body.starts_with("topologyManagerScope ") {
            let v = config.topology_manager_scope();
            cx.add(
                "topologyManagerScope",
                e.clone(),
                format!(
                    "set topologyManagerScope to container or pod{}",
                    did_you_mean(v, &["container", "pod"])
                ),
            );
        } else if body.starts_with("can't use reservedSystemCPUs") {
            cx.add("reservedSystemCPUs", e.clone(), "either remove systemReservedCgroup and kubeReservedCgroup, or drop reservedSystemCPUs and reserve CPUs with kubeReserved.cpu / systemReserved.cpu");
        } else if body.starts_with("unable to parse reservedSystemCPUs") {
            cx.add(
                "reservedSystemCPUs",
                e.clone(),
                format!(
                    "write reservedSystemCPUs as a Linux CPU list of this machine's CPUs ({}), e.g. \"0-1\" or \"0,8\"",
                    cx.machine.all_cpus()
                ),
            );
        } else if !flags_ok && body.contains("NUMA node") {
            // reservedMemory was never reached: the flags stop the kubelet first.
        } else if body.starts_with("the limit type") {
            let t = quoted_after(body, "the limit type").unwrap_or("?");
            let n = node_after(body).unwrap_or("?");
            cx.add(
                "reservedMemory.limitType",
                e.clone(),
                format!(
                    "remove \"{t}\" from NUMA node {n}'s limits in {rm}: only memory and hugepages-<size> can be reserved per NUMA node{}",
                    did_you_mean(t, &["memory"])
                ),
            );
        } else if body.starts_with("reserved memory may not be zero") {
            let n = node_after(body).unwrap_or("?");
            let r = quoted_after(body, "resource").unwrap_or("?");
            cx.add(
                "reservedMemory.zero",
                e.clone(),
                format!("remove \"{r}\" from NUMA node {n}'s limits in {rm}: leave a resource out instead of reserving 0"),
            );
        } else if body.starts_with("the reserved memory has a duplicate value") {
            let n = node_after(body).unwrap_or("?");
            let r = quoted_after(body, "resource").unwrap_or("?");
            cx.add(
                "reservedMemory.duplicate",
                e.clone(),
                format!("list NUMA node {n} once in {rm}, with one \"{r}\" value (merge the entries; their sum is what counts towards the total)"),
            );
        } else if body.starts_with("reservedMemory[") {
            cx.add(
                "reservedMemory.quantity",
                e.clone(),
                "write a Kubernetes quantity such as 1Gi, 512Mi or 1073741824",
            );
        } else {
            cx.add(
                "kubeletConfiguration",
                e.clone(),
                "correct the field the message names",
            );
        }
    }
}

fn node_allocatable_fix(e: &str) -> String {
    if let Some(name) = quoted_after(e, "cannot reserve") {
        let hp = if name.starts_with("hugepages-") {
            "; hugepages cannot be reserved for the system in kubelet v1.32 (pre-allocate fewer pages instead)"
        } else {
            ""
        };
        return format!("kubeReserved and systemReserved take only cpu, memory, ephemeral-storage and pid: remove \"{name}\"{hp}");
    }
    if e.starts_with("evictionHard") {
        return "write evictionHard memory.available as a quantity (100Mi) or a percentage (5%)"
            .into();
    }
    "write kubeReserved / systemReserved values as non-negative quantities, e.g. memory: 1Gi, cpu: 500m".into()
}

/// kubeReserved/systemReserved/evictionHard without the entries the kubelet refuses, to
/// compute the reservation the other checks need.
fn sanitized_reservations(config: &KubeletConfig) -> KubeletConfig {
    let mut c = config.clone();
    let keep = |m: &mut Option<BTreeMap<String, String>>| {
        if let Some(m) = m {
            m.retain(|k, v| {
                ["cpu", "memory", "ephemeral-storage", "pid"].contains(&k.as_str())
                    && Quantity::parse(v).is_ok_and(|q| q.sign() >= 0)
            });
        }
    };
    keep(&mut c.kube_reserved);
    keep(&mut c.system_reserved);
    let mut ev = c.eviction_hard();
    if let Some(v) = ev.get("memory.available") {
        let ok = match v.strip_suffix('%') {
            Some(p) => p.trim().parse::<f64>().is_ok(),
            None => Quantity::parse(v).is_ok(),
        };
        if !ok {
            ev.remove("memory.available");
        }
    }
    c.eviction_hard = Some(ev);
    c
}

fn summary(node: &Node) -> Vec<(String, String)> {
    let mut s = Vec::new();
    let tm = &node.topology;
    let scope = match tm.scope {
        crate::topology::Scope::Container => "container",
        crate::topology::Scope::Pod => "pod",
        crate::topology::Scope::None => "-",
    };
    s.push((
        "Topology Manager".into(),
        format!("policy {}, scope {scope}", tm.policy.kind.name()),
    ));
    let cpu = match &node.cpu.policy {
        CpuPolicy::None => "policy none".to_string(),
        CpuPolicy::Static(p) => format!(
            "policy static, reserved CPUs {} ({} of {})",
            p.reserved,
            p.reserved.len(),
            p.topology.num_cpus
        ),
    };
    s.push(("CPU Manager".into(), cpu));
    let mem = match &node.memory.policy {
        MemoryPolicy::None => "policy None".to_string(),
        MemoryPolicy::Static(p) => {
            let parts: Vec<String> = p
                .system_reserved()
                .iter()
                .flat_map(|(n, m)| {
                    m.iter()
                        .map(move |(r, b)| format!("node {n} {r} {}", format_binary_bytes(*b)))
                })
                .collect();
            format!("policy Static, reserved {}", parts.join(", "))
        }
    };
    s.push(("Memory Manager".into(), mem));
    s
}
