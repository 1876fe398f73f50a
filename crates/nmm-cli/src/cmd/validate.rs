//! `nmm validate`: every start-up check kubelet v1.32 runs for the Topology, CPU and Memory
//! Managers, on a KubeletConfiguration and a machine, before the kubelet is restarted.
//!
//! The kubelet stops at its first error; `validate` reports every independent problem, each
//! with the kubelet's exact message and what to change, and proposes a complete valid
//! `reservedMemory` when that list is wrong. Exit status: 0 valid, 1 invalid, 2 when an
//! input cannot be read (the error from `main`).

use crate::cmd::Output;
pub use crate::load::{load_config, load_machine, parse_config, ConfigFile};
use crate::render::new_table;
use anyhow::{anyhow, Result};
use comfy_table::ContentArrangement;
use nmm_core::cpumanager::topology::CpuTopology;
use nmm_core::cpumanager::{options as cpu_options, CpuManager, CpuPolicy};
use nmm_core::cpuset::CpuSet;
use nmm_core::kubelet_config::{KubeletConfig, MemoryReservation};
use nmm_core::machine::Machine;
use nmm_core::memorymanager::policy_static::{is_memory_resource, MEMORY};
use nmm_core::memorymanager::reserved_memory::{reserved_memory_mismatches, ReservedMemoryError};
use nmm_core::memorymanager::{MemoryManager, MemoryPolicy};
use nmm_core::node::{Node, StartOptions};
use nmm_core::node_allocatable::node_allocatable_reservation;
use nmm_core::quantity::{format_binary_bytes, Quantity};
use nmm_core::reserved_memory_flag::{self, FlagError, ReservedMemoryFlagError};
use nmm_core::topology::options::parse_policy_options;
use nmm_core::topology::TopologyManager;
use nmm_core::validation::kubelet_config_errors;
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};

const EXAMPLES: &str = "\
Examples:
  # This node, its kubelet config:
  nmm validate --config /var/lib/kubelet/config.yaml

  # A machine file (a `machine:` block, e.g. from `nmm node -o yaml`, or a whole scenario),
  # and the kubelet's --reserved-memory flags, which replace the file's reservedMemory:
  nmm validate --config kubelet.yaml --machine machine.yaml \\
      --reserved-memory '0:memory=3Gi;1:memory=2148Mi'

  # For scripts: exit status 0 valid, 1 invalid, 2 unreadable input.
  nmm validate --config kubelet.yaml --machine machine.yaml -o json";

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Color {
    /// Colour when standard output is a terminal and NO_COLOR is not set.
    Auto,
    Always,
    Never,
}

#[derive(Debug, Clone, clap::Args)]
#[command(after_help = EXAMPLES)]
pub struct Args {
    /// The kubelet's configuration file (KubeletConfiguration, YAML or JSON).
    #[arg(long, value_name = "KUBELET_CONFIG")]
    pub config: PathBuf,
    /// The machine, from a file holding a `machine:` block or a whole scenario
    /// [default: read sysfs under --sysfs-root].
    #[arg(long, value_name = "FILE", conflicts_with = "sysfs_root")]
    pub machine: Option<PathBuf>,
    /// Read the machine from the sysfs under this directory [default: /].
    #[arg(long, value_name = "DIR")]
    pub sysfs_root: Option<PathBuf>,
    /// The kubelet's --reserved-memory flag, e.g. '0:memory=1Gi,hugepages-1Gi=2Gi;1:memory=2Gi'.
    /// Repeatable; replaces the config file's reservedMemory as the kubelet's flag does.
    #[arg(
        long = "reserved-memory",
        value_name = "FLAG",
        allow_hyphen_values = true
    )]
    pub reserved_memory: Vec<String>,
    /// Output format.
    #[arg(short, long, value_enum, default_value = "table")]
    pub output: Output,
    /// When to colour the table output.
    #[arg(long, value_enum, default_value = "auto")]
    pub color: Color,
}

// ---------------------------------------------------------------------------------------
// Analysis (no I/O)
// ---------------------------------------------------------------------------------------

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

/// The reserved CPU set the kubelet uses, after the subset check.
fn check_reserved_cpus(cx: &mut Ctx, config: &KubeletConfig) -> CpuSet {
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

fn check_topology(cx: &mut Ctx, config: &KubeletConfig) {
    let policy = config.topology_manager_policy();
    if policy == "none" {
        return; // the kubelet checks nothing else then
    }
    let mut c = config.clone();
    // An unknown policy or scope is reported by config validation; look past it.
    if nmm_core::topology::policy::PolicyKind::parse(policy).is_none() {
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
fn cpu_reservation(
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
                nmm_core::quantity::Format::DecimalSI,
            ),
        );
    }
    r
}

fn cpu_option_fix(e: &str, name: &str) -> String {
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

fn check_cpu(
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

/// reservedMemory as (node, resource, quantity), skipping values that are not quantities
/// (config validation reports those).
fn lenient_list(config: &KubeletConfig) -> Vec<(i32, String, Quantity)> {
    let mut out = Vec::new();
    for e in config.reserved_memory.iter().flatten() {
        for (r, v) in &e.limits {
            if let Ok(q) = Quantity::parse(v.trim()) {
                out.push((e.numa_node, r.clone(), q));
            }
        }
    }
    out
}

fn bytes_of(q: &Quantity) -> i64 {
    q.value()
}

fn human(b: i64) -> String {
    format_binary_bytes(b.unsigned_abs())
}

/// How the kubelet arrives at the memory reservation.
fn memory_explanation(config: &KubeletConfig, capacity: u64) -> String {
    let mut parts = Vec::new();
    for (name, m) in [
        ("systemReserved", &config.system_reserved),
        ("kubeReserved", &config.kube_reserved),
    ] {
        if let Some(v) = m.as_ref().and_then(|m| m.get(MEMORY)) {
            if Quantity::parse(v).is_ok_and(|q| !q.is_zero()) {
                parts.push(format!("{name}.memory {v}"));
            }
        }
    }
    if let Some(v) = config.eviction_hard().get("memory.available") {
        let default = if config.eviction_hard.is_none() {
            ", the kubelet's default"
        } else {
            ""
        };
        match v.strip_suffix('%') {
            Some(p) => {
                let pct: f64 = p.trim().parse().unwrap_or(0.0);
                let b = (capacity as f64 * (pct / 100.0)) as u64;
                parts.push(format!(
                    "evictionHard memory.available {v} of {} = {}{default}",
                    format_binary_bytes(capacity),
                    format_binary_bytes(b)
                ));
            }
            None => {
                if Quantity::parse(v).is_ok_and(|q| !q.is_zero()) {
                    parts.push(format!("evictionHard memory.available {v}{default}"));
                }
            }
        }
    }
    if parts.is_empty() {
        "nothing is reserved for the system".into()
    } else {
        parts.join(" + ")
    }
}

/// A valid memory reservation per node: the user's split kept, the difference added to (or
/// taken from) the last listed node; all on the first node when nothing usable was listed.
/// Returns the new split and the changes, in words.
fn propose(
    machine: &Machine,
    list: &[(i32, String, Quantity)],
    target: i64,
) -> (Vec<(u32, u64)>, Vec<String>) {
    // The user's memory per node, in the order the nodes are first listed.
    let mut old: Vec<(i32, i64)> = Vec::new();
    for (n, r, q) in list {
        if r != MEMORY {
            continue;
        }
        match old.iter_mut().find(|(m, _)| m == n) {
            Some(slot) => slot.1 += bytes_of(q),
            None => old.push((*n, bytes_of(q))),
        }
    }
    let exists = |n: i32| n >= 0 && machine.node(n as u32).is_some();
    let mut new: Vec<(u32, i64)> = old
        .iter()
        .filter(|(n, b)| exists(*n) && *b > 0)
        .map(|&(n, b)| (n as u32, b))
        .collect();
    if new.is_empty() {
        if let Some(first) = machine.nodes.first() {
            new.push((first.id, target));
        }
    } else {
        let sum: i64 = new.iter().map(|(_, b)| b).sum();
        let mut diff = target - sum;
        if diff > 0 {
            if let Some(last) = new.last_mut() {
                last.1 += diff;
            }
        }
        while diff < 0 {
            let Some(last) = new.last_mut() else { break };
            if last.1 + diff > 0 {
                last.1 += diff;
                diff = 0;
            } else {
                diff += last.1;
                new.pop();
            }
        }
    }
    let mut actions = Vec::new();
    let mut nodes: Vec<i32> = old.iter().map(|(n, _)| *n).collect();
    for (n, _) in &new {
        if !nodes.contains(&(*n as i32)) {
            nodes.push(*n as i32);
        }
    }
    for n in nodes {
        let before = old
            .iter()
            .find(|(m, _)| *m == n)
            .map(|(_, b)| *b)
            .unwrap_or(0);
        let after = new
            .iter()
            .find(|(m, _)| *m as i32 == n)
            .map(|(_, b)| *b)
            .unwrap_or(0);
        if !exists(n) {
            actions.push(format!(
                "drop NUMA node {n} (not on this machine){}",
                if before > 0 {
                    format!(" and its {} of memory", human(before))
                } else {
                    String::new()
                }
            ));
        } else if after > before {
            actions.push(format!(
                "add {} of memory on NUMA node {n}",
                human(after - before)
            ));
        } else if after < before && after > 0 {
            actions.push(format!(
                "remove {} of memory from NUMA node {n}",
                human(before - after)
            ));
        } else if after < before {
            actions.push(format!(
                "drop the memory reservation of NUMA node {n} ({})",
                human(before)
            ));
        }
    }
    let split = new
        .into_iter()
        .filter(|(_, b)| *b > 0)
        .map(|(n, b)| (n, b as u64))
        .collect::<Vec<_>>();
    let mut sorted = split;
    sorted.sort_by_key(|(n, _)| *n);
    (sorted, actions)
}

/// The Memory Manager's start-up checks. Returns the proposed reservedMemory when the list
/// has to change.
fn check_memory(
    cx: &mut Ctx,
    config: &KubeletConfig,
    reservation: Option<&BTreeMap<String, Quantity>>,
    capacity: u64,
) -> Option<Suggestion> {
    let policy = config.memory_manager_policy();
    match policy {
        "None" => return None,
        "Static" => {}
        other => {
            let e = match MemoryManager::new(cx.machine, config, &BTreeMap::new()) {
                Err(e) => e,
                Ok(_) => return None,
            };
            let fix = if other == "BestEffort" {
                "BestEffort exists only on Windows: use memoryManagerPolicy: Static (or None) on Linux".to_string()
            } else {
                format!(
                    "set memoryManagerPolicy to None or Static (capitalised){}",
                    did_you_mean(other, &["None", "Static"])
                )
            };
            cx.add("memoryManagerPolicy", e, fix);
            if !other.eq_ignore_ascii_case("static") {
                return None;
            }
            // The user meant Static: check the rest as Static would.
        }
    }
    let rm = cx.rm;
    let list = lenient_list(config);
    let mut needs_change = cx
        .findings
        .iter()
        .any(|f| f.check.starts_with("reservedMemory"));

    // Unknown NUMA nodes.
    let mut seen = Vec::new();
    for (n, _, _) in &list {
        if seen.contains(n) {
            continue;
        }
        seen.push(*n);
        if *n < 0 || cx.machine.node(*n as u32).is_none() {
            needs_change = true;
            let ids = cx.node_ids();
            cx.add(
                "reservedMemory.numaNode",
                ReservedMemoryError::UnknownNode(*n).to_string(),
                format!("this machine has NUMA nodes {ids}: move NUMA node {n}'s reservation in {rm} to one of them (see the suggested reservedMemory)"),
            );
        }
    }

    // Totals against Node Allocatable.
    let na = reservation?;
    let explanation = memory_explanation(config, capacity);
    let target = na.get(MEMORY).map(bytes_of).unwrap_or(0);
    let (split, actions) = propose(cx.machine, &list, target);
    for m in reserved_memory_mismatches(&list, na) {
        needs_change = true;
        let msg = m.message();
        if m.resource == MEMORY {
            let sum = bytes_of(&m.reserved_sum);
            let todo = if actions.is_empty() {
                String::new()
            } else {
                format!("{}: ", actions.join(", "))
            };
            let fix = if target == 0 {
                format!("{todo}{rm} reserves {} of memory but nothing is reserved for the system ({explanation}); the Static policy needs both: set kubeReserved.memory or systemReserved.memory, then make {rm} total their sum plus evictionHard memory.available", m.reserved_sum)
            } else if sum == 0 {
                format!("{todo}the Static policy needs {rm} to total {} of memory over the NUMA nodes = {explanation}", m.node_allocatable)
            } else {
                format!(
                    "{todo}{rm} must total {} of memory = {explanation}; it totals {}",
                    m.node_allocatable, m.reserved_sum
                )
            };
            cx.add("reservedMemory.total", msg, fix);
        } else if m.resource.starts_with("hugepages-") {
            cx.add(
                "reservedMemory.hugepages",
                msg,
                format!("remove {} from {rm}: kubelet v1.32 can never accept a hugepages reservation (kubeReserved/systemReserved cannot hold hugepages, so Node Allocatable reserves none of them and any non-zero {} entry fails this check); keep pages from pods by pre-allocating fewer of them", m.resource, m.resource),
            );
        } else {
            cx.add(
                "reservedMemory.limitType",
                msg,
                format!(
                    "remove \"{}\" from {rm}: it is not a memory type",
                    m.resource
                ),
            );
        }
    }

    // Whole bytes.
    let mut fractional: Vec<String> = Vec::new();
    for e in config.reserved_memory.iter().flatten() {
        for (r, v) in &e.limits {
            if let Ok(q) = Quantity::parse(v.trim()) {
                if q.as_int64().is_none() {
                    fractional.push(format!(
                        "NUMA node {} {r}: {v} -> {}",
                        e.numa_node,
                        human(bytes_of(&q))
                    ));
                }
            }
        }
    }
    if !fractional.is_empty() {
        needs_change = true;
        cx.add(
            "reservedMemory.int64",
            ReservedMemoryError::NotInt64.to_string(),
            format!(
                "write whole numbers of bytes in {rm} ({})",
                fractional.join("; ")
            ),
        );
    }

    // The Static policy's own requirement.
    let memory_total: i64 = list
        .iter()
        .filter(|(_, r, _)| r == MEMORY)
        .map(|(_, _, q)| bytes_of(q))
        .sum();
    if target == 0 && memory_total == 0 {
        let only = KubeletConfig {
            memory_manager_policy: Some("Static".into()),
            ..KubeletConfig::default()
        };
        if let Err(e) = MemoryManager::new(cx.machine, &only, &BTreeMap::new()) {
            cx.add("reservedMemory.required", e, format!("the Static policy needs memory reserved for the system: set kubeReserved.memory or systemReserved.memory (e.g. systemReserved: {{memory: 1Gi}}) or an evictionHard memory.available threshold ({explanation} now), and make {rm} total it"));
        }
    }

    if !needs_change || target <= 0 {
        return None;
    }
    Some(Suggestion {
        memory: split,
        total: na.get(MEMORY).map(|q| q.to_string()).unwrap_or_default(),
        explanation,
    })
}

fn memory_warnings(w: &mut Vec<String>, machine: &Machine, config: &KubeletConfig) {
    let list = lenient_list(config);
    if config.memory_manager_policy() == "None" {
        if !list.is_empty() {
            w.push("reservedMemory is ignored while memoryManagerPolicy is None (the default); set memoryManagerPolicy: Static to use it".into());
        }
        return;
    }
    let mut per_node: BTreeMap<u32, i64> = BTreeMap::new();
    for (n, r, q) in &list {
        if *n >= 0 && is_memory_resource(r) {
            *per_node.entry(*n as u32).or_default() += bytes_of(q);
        }
    }
    for (n, b) in per_node {
        if let Some(node) = machine.node(n) {
            let hugepages: u64 = node.hugepages.values().sum();
            if b > 0 && b as u64 + hugepages > node.memory {
                w.push(format!(
                    "NUMA node {n} reserves {} while it has {} of memory ({} of it in hugepages): the kubelet starts, but its allocatable memory there wraps around",
                    human(b),
                    format_binary_bytes(node.memory),
                    format_binary_bytes(hugepages)
                ));
            }
        }
    }
}

fn summary(node: &Node) -> Vec<(String, String)> {
    let mut s = Vec::new();
    let tm = &node.topology;
    let scope = match tm.scope {
        nmm_core::topology::Scope::Container => "container",
        nmm_core::topology::Scope::Pod => "pod",
        nmm_core::topology::Scope::None => "-",
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

// ---------------------------------------------------------------------------------------
// Output
// ---------------------------------------------------------------------------------------

pub fn report_json(a: &Analysis, config: &Path, machine: &str) -> Value {
    let findings: Vec<Value> = a
        .findings
        .iter()
        .map(|f| {
            json!({
                "check": f.check,
                "kubeletError": f.kubelet_error,
                "fix": f.fix,
                "kubeletStopsHere": f.kubelet_stops_here,
            })
        })
        .collect();
    let suggested = a.suggestion.as_ref().map(|s| {
        s.memory
            .iter()
            .map(|(n, b)| json!({"numaNode": n, "limits": {"memory": format_binary_bytes(*b)}}))
            .collect::<Vec<_>>()
    });
    let mut m = Map::new();
    m.insert("valid".into(), json!(a.valid()));
    m.insert("config".into(), json!(config.display().to_string()));
    m.insert("machine".into(), json!(machine));
    m.insert(
        "reservedMemoryFrom".into(),
        json!(if a.reserved_memory_from_flags {
            "flags"
        } else {
            "config"
        }),
    );
    m.insert(
        "kubeletStopsWith".into(),
        match &a.kubelet_error {
            Some((stage, msg)) => json!({"stage": stage, "message": msg}),
            None => Value::Null,
        },
    );
    m.insert("findings".into(), Value::Array(findings));
    m.insert("warnings".into(), json!(a.warnings));
    m.insert("suggestedReservedMemory".into(), json!(suggested));
    m.insert(
        "suggestedReservedMemoryFlag".into(),
        json!(a.suggestion.as_ref().map(Suggestion::flag_value)),
    );
    m.insert(
        "nodeAllocatableMemory".into(),
        match &a.suggestion {
            Some(s) => json!({"total": s.total, "from": s.explanation}),
            None => Value::Null,
        },
    );
    if !a.summary.is_empty() {
        let s: Map<String, Value> = a
            .summary
            .iter()
            .map(|(k, v)| (k.clone(), json!(v)))
            .collect();
        m.insert("summary".into(), Value::Object(s));
    }
    Value::Object(m)
}

struct Paint(bool);

impl Paint {
    fn wrap(&self, code: &str, s: &str) -> String {
        if self.0 {
            format!("\x1b[{code}m{s}\x1b[0m")
        } else {
            s.to_string()
        }
    }
    fn red(&self, s: &str) -> String {
        self.wrap("1;31", s)
    }
    fn green(&self, s: &str) -> String {
        self.wrap("1;32", s)
    }
    fn yellow(&self, s: &str) -> String {
        self.wrap("33", s)
    }
    fn bold(&self, s: &str) -> String {
        self.wrap("1", s)
    }
}

pub fn render_table(a: &Analysis, config: &Path, machine: &str, color: bool, tty: bool) -> String {
    let p = Paint(color);
    let mut s = String::new();
    let _ = writeln!(s, "config:  {}", config.display());
    let _ = writeln!(s, "machine: {machine}");
    if a.reserved_memory_from_flags {
        let _ = writeln!(
            s,
            "reservedMemory: from --reserved-memory (replaces the config file's)"
        );
    }
    s.push('\n');
    if a.valid() {
        let _ = writeln!(
            s,
            "{} the kubelet v1.32 starts with this configuration on this machine",
            p.green("VALID:")
        );
        for (k, v) in &a.summary {
            let _ = writeln!(s, "  {k}: {v}");
        }
    } else {
        let _ = writeln!(
            s,
            "{} the kubelet v1.32 would not start ({} problem{}). It stops with:",
            p.red("INVALID:"),
            a.findings.len(),
            if a.findings.len() == 1 { "" } else { "s" }
        );
        if let Some((_, msg)) = &a.kubelet_error {
            let _ = writeln!(s, "  {msg}");
        }
        s.push('\n');
        let mut t = new_table(&["#", "check", "kubelet's error", "fix"]);
        t.set_content_arrangement(ContentArrangement::Dynamic);
        if tty {
            t.enforce_styling();
        } else {
            let width = std::env::var("COLUMNS")
                .ok()
                .and_then(|c| c.parse::<u16>().ok())
                .filter(|w| *w >= 60)
                .unwrap_or(120);
            t.force_no_tty().set_width(width);
        }
        for (i, f) in a.findings.iter().enumerate() {
            let mut check = f.check.clone();
            if f.kubelet_stops_here {
                check.push_str(" (kubelet stops here)");
            }
            t.add_row(vec![
                (i + 1).to_string(),
                check,
                f.kubelet_error.clone(),
                f.fix.clone(),
            ]);
        }
        s.push_str(&t.to_string());
        s.push('\n');
    }
    if let Some(sg) = &a.suggestion {
        let _ = writeln!(
            s,
            "\n{} (memory totals {} = {}):\n",
            p.bold("Suggested reservedMemory"),
            sg.total,
            sg.explanation
        );
        for line in sg.yaml().lines() {
            let _ = writeln!(s, "  {line}");
        }
        let _ = writeln!(
            s,
            "\nor on the kubelet's command line:\n\n  --reserved-memory '{}'",
            sg.flag_value()
        );
    }
    if !a.warnings.is_empty() {
        s.push('\n');
        for w in &a.warnings {
            let _ = writeln!(s, "{} {w}", p.yellow("warning:"));
        }
    }
    s
}

fn machine_text(m: &Machine, source: &str) -> String {
    let mem: u64 = m.nodes.iter().map(|n| n.memory).sum();
    let ids: Vec<String> = m.node_ids().iter().map(|i| i.to_string()).collect();
    format!(
        "{source}: {} NUMA node{} ({}), {} CPUs, {} memory",
        m.nodes.len(),
        if m.nodes.len() == 1 { "" } else { "s" },
        ids.join(", "),
        m.cpus.len(),
        format_binary_bytes(mem)
    )
}

pub fn execute(args: &Args, out: &mut dyn Write, err: &mut dyn Write) -> Result<i32> {
    let cf = load_config(&args.config)?;
    let (machine, source) = match (&args.machine, &args.sysfs_root, cf.machine.clone()) {
        (Some(path), _, _) => (load_machine(path)?, path.display().to_string()),
        (None, None, Some(m)) => (m, format!("{} (machine:)", args.config.display())),
        (None, root, _) => {
            let root = root.clone().unwrap_or_else(|| PathBuf::from("/"));
            let m = nmm_sysfs::SysfsReader::new(&root)
                .read_machine()
                .map_err(|e| {
                    anyhow!("reading the machine from sysfs: {e}; or pass --machine FILE")
                })?;
            (m, format!("sysfs under {}", root.display()))
        }
    };
    for w in &cf.warnings {
        writeln!(err, "warning: {w}")?;
    }
    let a = analyze(&machine, &cf.config, &args.reserved_memory);
    let mtext = machine_text(&machine, &source);
    match args.output {
        Output::Json => {
            let v = report_json(&a, &args.config, &mtext);
            writeln!(out, "{}", serde_json::to_string_pretty(&v)?)?;
        }
        Output::Yaml => {
            let v = report_json(&a, &args.config, &mtext);
            // Long messages stay on one line (no folded scalars), for grep.
            let mut o = serde_saphyr::SerializerOptions::default();
            o.prefer_block_scalars = false;
            let y = serde_saphyr::to_string_with_options(&v, o)
                .map_err(|e| anyhow!("rendering YAML: {e}"))?;
            write!(out, "{y}")?;
            if !y.ends_with('\n') {
                writeln!(out)?;
            }
        }
        Output::Table => {
            let stdout_tty = std::io::stdout().is_terminal();
            let color = match args.color {
                Color::Always => true,
                Color::Never => false,
                Color::Auto => stdout_tty && std::env::var_os("NO_COLOR").is_none(),
            };
            write!(
                out,
                "{}",
                render_table(&a, &args.config, &mtext, color, color && stdout_tty)
            )?;
        }
    }
    Ok(if a.valid() { 0 } else { 1 })
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn machine(nodes: &[(u32, &str, &str)]) -> Machine {
        let v = json!({
            "numaNodes": nodes
                .iter()
                .map(|(id, cpus, mem)| json!({"id": id, "cpus": cpus, "memory": mem}))
                .collect::<Vec<_>>()
        });
        crate::scenario::parse_machine(&v, Path::new("m.yaml")).unwrap()
    }

    fn two_nodes() -> Machine {
        machine(&[(0, "0-7", "64Gi"), (1, "8-15", "64Gi")])
    }

    fn config(yaml: &str) -> KubeletConfig {
        let v = crate::scenario::parse_yaml(yaml, Path::new("k.yaml")).unwrap();
        parse_config(&v, Path::new("k.yaml")).unwrap().config
    }

    const DOCS: &str = "
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
memoryManagerPolicy: Static
cpuManagerPolicy: static
kubeReserved: {cpu: \"4\", memory: 4Gi}
systemReserved: {cpu: \"1\", memory: 1Gi}
";

    fn checks(a: &Analysis) -> Vec<&str> {
        a.findings.iter().map(|f| f.check.as_str()).collect()
    }

    #[test]
    fn docs_example_valid_split() {
        let c = config(&format!(
            "{DOCS}reservedMemory:\n- numaNode: 0\n  limits: {{memory: 3Gi}}\n- numaNode: 1\n  limits: {{memory: 2148Mi}}\n"
        ));
        let a = analyze(&two_nodes(), &c, &[]);
        assert!(a.valid(), "{:?}", a.findings);
        assert!(a.suggestion.is_none());
        assert!(
            a.summary[2].1.contains("node 1 memory 2148Mi"),
            "{:?}",
            a.summary
        );
    }

    #[test]
    fn docs_example_missing_node_1() {
        let c = config(&format!(
            "{DOCS}reservedMemory:\n- numaNode: 0\n  limits: {{memory: 3Gi}}\n- numaNode: 1\n  limits: {{memory: 1Gi}}\n"
        ));
        let a = analyze(&two_nodes(), &c, &[]);
        assert!(!a.valid());
        assert_eq!(checks(&a), ["reservedMemory.total"]);
        let f = &a.findings[0];
        assert_eq!(f.kubelet_error, "the total amount \"4Gi\" of type \"memory\" is not equal to the value \"5220Mi\" determined by Node Allocatable feature");
        assert!(f.kubelet_stops_here);
        assert!(
            f.fix.starts_with("add 1124Mi of memory on NUMA node 1:"),
            "{}",
            f.fix
        );
        assert!(f.fix.contains("systemReserved.memory 1Gi + kubeReserved.memory 4Gi + evictionHard memory.available 100Mi, the kubelet's default"), "{}", f.fix);
        let s = a.suggestion.unwrap();
        assert_eq!(s.memory, [(0, 3 << 30), (1, 2148 << 20)]);
        assert_eq!(s.total, "5220Mi");
        assert_eq!(s.flag_value(), "0:memory=3Gi;1:memory=2148Mi");
        assert_eq!(
            s.yaml(),
            "reservedMemory:\n- numaNode: 0\n  limits:\n    memory: 3Gi\n- numaNode: 1\n  limits:\n    memory: 2148Mi\n"
        );
        assert_eq!(a.kubelet_error.unwrap().0, "memoryManager");
    }

    #[test]
    fn forgotten_eviction_threshold_removes_from_last_node() {
        // 5Gi reserved on node 1 only, with evictionHard memory.available 1Gi set
        // explicitly and 0 kube/system: target 1Gi, so 4Gi must go.
        let c = config("memoryManagerPolicy: Static\nevictionHard: {memory.available: 1Gi}\nreservedMemory: [{numaNode: 1, limits: {memory: 5Gi}}]\n");
        let a = analyze(&two_nodes(), &c, &[]);
        assert_eq!(checks(&a), ["reservedMemory.total"]);
        assert!(a.findings[0]
            .fix
            .starts_with("remove 4Gi of memory from NUMA node 1:"));
        assert_eq!(a.suggestion.unwrap().memory, [(1, 1 << 30)]);
    }

    #[test]
    fn removal_spreads_backwards_over_nodes() {
        let m = two_nodes();
        let list = vec![
            (0, "memory".to_string(), Quantity::must_parse("2Gi")),
            (1, "memory".to_string(), Quantity::must_parse("1Gi")),
        ];
        let (split, actions) = propose(&m, &list, 1 << 30);
        assert_eq!(split, [(0, 1 << 30)]);
        assert_eq!(
            actions,
            [
                "remove 1Gi of memory from NUMA node 0",
                "drop the memory reservation of NUMA node 1 (1Gi)"
            ]
        );
    }

    #[test]
    fn static_without_reservation_puts_all_on_node_0() {
        let c = config("memoryManagerPolicy: Static\n");
        let a = analyze(&two_nodes(), &c, &[]);
        assert_eq!(checks(&a), ["reservedMemory.total"]);
        assert_eq!(a.findings[0].kubelet_error, "the total amount \"0\" of type \"memory\" is not equal to the value \"100Mi\" determined by Node Allocatable feature");
        assert!(a.findings[0]
            .fix
            .starts_with("add 100Mi of memory on NUMA node 0: the Static policy needs"));
        assert_eq!(a.suggestion.unwrap().flag_value(), "0:memory=100Mi");
    }

    #[test]
    fn static_with_nothing_reserved_anywhere() {
        let c = config("memoryManagerPolicy: Static\nevictionHard: {nodefs.available: 10%}\n");
        let a = analyze(&two_nodes(), &c, &[]);
        assert_eq!(checks(&a), ["reservedMemory.required"]);
        assert_eq!(
            a.findings[0].kubelet_error,
            "[memorymanager] you should specify the system reserved memory"
        );
        assert!(a.findings[0].kubelet_stops_here);
        assert!(a.suggestion.is_none());
    }

    #[test]
    fn unknown_nodes_zero_duplicates_and_hugepages_are_all_reported() {
        let c = config(&format!(
            "{DOCS}reservedMemory:
- numaNode: 0
  limits: {{memory: 3Gi, hugepages-1Gi: 1Gi, hugepages-2Mi: \"0\"}}
- numaNode: 0
  limits: {{memory: 1Gi}}
- numaNode: 3
  limits: {{memory: 1124Mi}}
"
        ));
        let a = analyze(&two_nodes(), &c, &[]);
        assert_eq!(
            checks(&a),
            [
                "reservedMemory.zero",
                "reservedMemory.duplicate",
                "reservedMemory.numaNode",
                "reservedMemory.hugepages"
            ]
        );
        assert_eq!(a.findings[0].kubelet_error, "invalid configuration: reserved memory may not be zero for NUMA node 0 and resource \"hugepages-2Mi\"");
        assert!(a.findings[0].kubelet_stops_here);
        assert_eq!(a.findings[1].kubelet_error, "invalid configuration: the reserved memory has a duplicate value for NUMA node 0 and resource \"memory\"");
        assert_eq!(a.findings[2].kubelet_error, "the reserved memory configuration references a NUMA node 3 that does not exist on this machine");
        assert!(a.findings[2].fix.contains("NUMA nodes 0, 1"));
        assert_eq!(a.findings[3].kubelet_error, "the total amount \"1Gi\" of type \"hugepages-1Gi\" is not equal to the value \"0\" determined by Node Allocatable feature");
        assert!(a.findings[3].fix.contains("can never accept"));
        // The memory total (3Gi + 1Gi + 1124Mi) is right; the node-3 share moves to node 0.
        let s = a.suggestion.unwrap();
        assert_eq!(s.flag_value(), "0:memory=5220Mi");
        let (stage, msg) = a.kubelet_error.unwrap();
        assert_eq!(stage, "validation");
        assert!(msg.starts_with("failed to validate kubelet configuration, error: ["));
    }

    #[test]
    fn flags_replace_the_file_and_their_errors_are_the_kubelets() {
        let c = config(&format!(
            "{DOCS}reservedMemory: [{{numaNode: 0, limits: {{memory: 1Gi}}}}]\n"
        ));
        let ok = analyze(
            &two_nodes(),
            &c,
            &["0:memory=3Gi".into(), "1:memory=2148Mi".into()],
        );
        assert!(ok.valid(), "{:?}", ok.findings);
        assert!(ok.reserved_memory_from_flags);

        let bad = analyze(&two_nodes(), &c, &["0:memory=3Gi;".into()]);
        assert_eq!(checks(&bad), ["--reserved-memory"]);
        assert_eq!(bad.findings[0].kubelet_error, "failed to parse kubelet flag: invalid argument \"0:memory=3Gi;\" for \"--reserved-memory\" flag: the reserved memory has incorrect format, expected numaNodeID:type=quantity[,type=quantity...], got ");
        assert!(bad.findings[0].fix.starts_with("remove the empty part"));
        assert_eq!(bad.kubelet_error.unwrap().0, "flags");
        assert!(bad.suggestion.is_none());

        let mismatch = analyze(&two_nodes(), &c, &["0:memory=3Gi".into()]);
        assert!(mismatch.findings[0]
            .fix
            .contains("--reserved-memory must total"));
    }

    #[test]
    fn topology_names_options_and_numa_limit() {
        let nine: Vec<(u32, String, &str)> = (0..9)
            .map(|i| (i, format!("{}-{}", i * 2, i * 2 + 1), "8Gi"))
            .collect();
        let nine: Vec<(u32, &str, &str)> =
            nine.iter().map(|(i, c, m)| (*i, c.as_str(), *m)).collect();
        let m = machine(&nine);
        let c = config("topologyManagerPolicy: single-numa-node\n");
        let a = analyze(&m, &c, &[]);
        assert_eq!(checks(&a), ["numaNodeLimit"]);
        assert_eq!(
            a.findings[0].kubelet_error,
            "unsupported on machines with more than 8 NUMA Nodes"
        );
        assert!(a.findings[0]
            .fix
            .contains("max-allowable-numa-nodes: \"9\""));
        let fixed = config("topologyManagerPolicy: single-numa-node\ntopologyManagerPolicyOptions: {max-allowable-numa-nodes: \"9\"}\n");
        assert!(analyze(&m, &fixed, &[]).valid());
        // With policy none the kubelet does not look.
        assert!(analyze(&m, &config("{}"), &[]).valid());

        let c = config("topologyManagerPolicy: single_numa_node\ntopologyManagerScope: Pod\ntopologyManagerPolicyOptions: {foo: \"1\"}\n");
        let a = analyze(&m, &c, &[]);
        assert_eq!(
            checks(&a),
            [
                "topologyManagerPolicy",
                "topologyManagerScope",
                "topologyManagerPolicyOptions",
                "numaNodeLimit"
            ]
        );
        assert!(a.findings[0]
            .fix
            .contains("(did you mean \"single-numa-node\"?)"));
        assert!(a.findings[1].fix.contains("(did you mean \"pod\"?)"));
        assert_eq!(
            a.findings[2].kubelet_error,
            "unknown Topology Manager Policy option: \"foo\""
        );
    }

    #[test]
    fn cpu_checks() {
        let m = two_nodes();
        let a = analyze(&m, &config("cpuManagerPolicy: static\n"), &[]);
        assert_eq!(checks(&a), ["cpuReservation"]);
        assert_eq!(
            a.findings[0].kubelet_error,
            "[cpumanager] unable to determine reserved CPU resources for static policy"
        );
        let a = analyze(
            &m,
            &config("cpuManagerPolicy: static\nkubeReserved: {cpu: \"0\"}\n"),
            &[],
        );
        assert_eq!(checks(&a), ["cpuReservation"]);
        let a = analyze(
            &m,
            &config("cpuManagerPolicy: static\nreservedSystemCPUs: \"0,16\"\n"),
            &[],
        );
        assert_eq!(checks(&a), ["reservedSystemCPUs", "cpuReservation"]);
        assert_eq!(
            a.findings[0].kubelet_error,
            "reserved-cpus: 0,16 is not a subset of online-cpus: 0-15"
        );
        assert!(analyze(
            &m,
            &config("cpuManagerPolicy: static\nreservedSystemCPUs: \"0,8\"\n"),
            &[]
        )
        .valid());
        let a = analyze(
            &m,
            &config("cpuManagerPolicy: Static\nmemoryManagerPolicy: static\n"),
            &[],
        );
        assert_eq!(
            checks(&a),
            [
                "cpuManagerPolicy",
                "memoryManagerPolicy",
                "reservedMemory.total"
            ]
        );
        assert!(a.findings[0].fix.contains("did you mean \"static\""));
        assert!(a.findings[1].fix.contains("did you mean \"Static\""));
        let a = analyze(
            &m,
            &config("cpuManagerPolicy: static\nkubeReserved: {cpu: \"1\"}\ncpuManagerPolicyOptions: {full-pcpus-only: \"yes\", bogus: \"true\"}\n"),
            &[],
        );
        assert_eq!(
            checks(&a),
            ["cpuManagerPolicyOptions", "cpuManagerPolicyOptions"]
        );
    }

    #[test]
    fn node_allocatable_refuses_hugepages() {
        let c = config("memoryManagerPolicy: Static\nkubeReserved: {memory: 1Gi, hugepages-2Mi: 2Mi}\nreservedMemory: [{numaNode: 0, limits: {memory: 1124Mi}}]\n");
        let a = analyze(&two_nodes(), &c, &[]);
        assert_eq!(checks(&a), ["nodeAllocatable"]);
        assert_eq!(
            a.findings[0].kubelet_error,
            "cannot reserve \"hugepages-2Mi\" resource"
        );
        assert!(a.findings[0].kubelet_stops_here);
    }

    #[test]
    fn fractional_bytes() {
        let c = config("memoryManagerPolicy: Static\nevictionHard: {memory.available: 1.5Gi}\nreservedMemory: [{numaNode: 0, limits: {memory: 1.5Gi}}]\n");
        let a = analyze(&two_nodes(), &c, &[]);
        assert_eq!(checks(&a), ["reservedMemory.int64"]);
        assert_eq!(
            a.findings[0].kubelet_error,
            "could not covert a variable of type Quantity to int64"
        );
        assert!(
            a.findings[0].fix.contains("1.5Gi -> 1536Mi"),
            "{}",
            a.findings[0].fix
        );
    }

    #[test]
    fn warnings() {
        let a = analyze(
            &two_nodes(),
            &config("reservedMemory: [{numaNode: 0, limits: {memory: 1Gi}}]\n"),
            &[],
        );
        assert!(a.valid());
        assert!(a.warnings[0].contains("ignored"));
    }

    #[test]
    fn config_files() {
        // A real kubelet config with many other fields, in JSON.
        let v = json!({
            "apiVersion": "kubelet.config.k8s.io/v1beta1",
            "kind": "KubeletConfiguration",
            "authentication": {"anonymous": {"enabled": false}},
            "cgroupDriver": "systemd",
            "clusterDNS": ["10.96.0.10"],
            "memoryManagerPolicy": "Static",
            "reservedMemory": [{"numaNode": 0, "limits": {"memory": "100Mi"}}]
        });
        let c = parse_config(&v, Path::new("k.json")).unwrap();
        assert_eq!(c.config.memory_manager_policy(), "Static");
        let e = parse_config(&json!({"kind": "Pod"}), Path::new("p.yaml")).unwrap_err();
        assert!(e
            .to_string()
            .starts_with("p.yaml: kind: \"Pod\": expected KubeletConfiguration"));
        let e = parse_config(
            &json!({"reservedMemory": [{"numaNode": "x", "limits": {}}]}),
            Path::new("k.yaml"),
        )
        .unwrap_err();
        assert!(
            e.to_string()
                .starts_with("k.yaml: reservedMemory[0].numaNode: invalid type"),
            "{e}"
        );
        // A scenario: its kubelet block and machine.
        let s = json!({"machine": {"numaNodes": [{"id": 0, "cpus": "0-1", "memory": "1Gi"}]}, "kubelet": {"cpuManagerPolicy": "static"}});
        let c = parse_config(&s, Path::new("s.yaml")).unwrap();
        assert_eq!(c.config.cpu_manager_policy(), "static");
        assert_eq!(c.machine.unwrap().nodes.len(), 1);
    }

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: Args,
    }

    fn run(argv: &[&str]) -> (i32, String) {
        let mut full = vec!["nmm-validate"];
        full.extend_from_slice(argv);
        let cli = Cli::try_parse_from(full).unwrap();
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let code = execute(&cli.args, &mut out, &mut err).unwrap();
        (code, String::from_utf8(out).unwrap())
    }

    #[test]
    fn execute_prints_table_json_and_yaml() {
        let dir = tempfile::tempdir().unwrap();
        let k = dir.path().join("kubelet.yaml");
        std::fs::write(&k, format!("{DOCS}reservedMemory: [{{numaNode: 0, limits: {{memory: 3Gi}}}}, {{numaNode: 1, limits: {{memory: 1Gi}}}}]\n")).unwrap();
        let m = dir.path().join("machine.yaml");
        std::fs::write(&m, "machine:\n  numaNodes:\n  - {id: 0, cpus: 0-7, memory: 64Gi}\n  - {id: 1, cpus: 8-15, memory: 64Gi}\n").unwrap();
        let (k, m) = (k.to_str().unwrap(), m.to_str().unwrap());

        let (code, text) = run(&["--config", k, "--machine", m, "--color", "never"]);
        assert_eq!(code, 1);
        assert!(text.contains("INVALID:"), "{text}");
        assert!(text.contains("  the total amount \"4Gi\" of type \"memory\" is not equal to the value \"5220Mi\" determined by Node Allocatable feature\n"), "{text}");
        assert!(
            text.contains("--reserved-memory '0:memory=3Gi;1:memory=2148Mi'"),
            "{text}"
        );
        assert!(!text.contains('\x1b'));

        let (code, text) = run(&["--config", k, "--machine", m, "-o", "json"]);
        assert_eq!(code, 1);
        let v: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["valid"], false);
        assert_eq!(
            v["findings"][0]["fix"]
                .as_str()
                .unwrap()
                .split(':')
                .next()
                .unwrap(),
            "add 1124Mi of memory on NUMA node 1"
        );
        assert_eq!(
            v["suggestedReservedMemory"][1],
            json!({"numaNode": 1, "limits": {"memory": "2148Mi"}})
        );

        let (code, text) = run(&["--config", k, "--machine", m, "-o", "yaml"]);
        assert_eq!(code, 1);
        let y = crate::scenario::parse_yaml(&text, Path::new("out.yaml")).unwrap();
        assert_eq!(y, v);

        let (code, text) = run(&[
            "--config",
            k,
            "--machine",
            m,
            "--reserved-memory",
            "0:memory=3Gi;1:memory=2148Mi",
            "--color",
            "always",
        ]);
        assert_eq!(code, 0, "{text}");
        assert!(text.contains("\x1b[1;32mVALID:\x1b[0m"), "{text}");
    }
}
