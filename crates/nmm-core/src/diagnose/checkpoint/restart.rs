//! Restart validation: would the kubelet start with this checkpoint, and what to do.

use super::*;

pub struct Target {
    pub machine: Machine,
    pub config: KubeletConfig,
    pub machine_src: String,
    pub config_src: String,
}

/// The restart validation's result.
pub struct Restart {
    pub ok: bool,
    pub error: Option<StartupError>,
    /// Explanation lines (what the kubelet's error means here).
    pub lines: Vec<String>,
    pub differences: Vec<String>,
    pub advice: Vec<String>,
}

/// `validateState`'s expected state: the default state of the machine with every stored
/// block replayed onto it; blocks naming unknown nodes or types are skipped so that every
/// other difference can still be listed.
pub fn expected_machine_state(
    machine: &Machine,
    reserved: &SystemReserved,
    entries: &Assignments,
) -> MachineState {
    replay_assignments(default_machine_state(machine, reserved), entries, false)
        .expect("lenient replay does not fail")
}

/// What the differences between the stored and the expected state mean, and what to do.
pub fn memory_mismatch_advice(
    stored: &MachineState,
    expected: &MachineState,
    target: &Target,
) -> Vec<String> {
    let mut advice = Vec::new();
    let s_ids: Vec<u32> = stored.keys().copied().collect();
    let e_ids: Vec<u32> = expected.keys().copied().collect();
    if s_ids != e_ids {
        advice.push(format!(
            "The state describes NUMA nodes {}, the machine ({}) has {}: the file was written on another machine, \
             or the machine given is not this node. No kubelet setting changes that.",
            ids_text(&s_ids),
            target.machine_src,
            ids_text(&e_ids)
        ));
    }
    let mut totals = Vec::new();
    let mut reserved_changed = false;
    let mut hugepages_changed = Vec::new();
    let mut types_changed = Vec::new();
    for (id, s) in stored {
        let Some(e) = expected.get(id) else { continue };
        let st: Vec<&String> = s.memory_map.keys().collect();
        let et: Vec<&String> = e.memory_map.keys().collect();
        if st != et {
            types_changed.push(format!(
                "NUMA node {id}: {} in the state, {} on the machine",
                st.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", "),
                et.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
            ));
        }
        for (r, a) in &s.memory_map {
            let Some(b) = e.memory_map.get(r) else {
                continue;
            };
            if a.total != b.total {
                totals.push(format!(
                    "node {id} {r}: {} in the state, {} now ({})",
                    exact_quantity(a.total),
                    exact_quantity(b.total),
                    human_delta(a.total, b.total)
                ));
            }
            if a.system_reserved != b.system_reserved {
                reserved_changed = true;
            }
            if a.total == b.total
                && a.system_reserved == b.system_reserved
                && a.allocatable != b.allocatable
            {
                hugepages_changed.push(format!(
                    "node {id} {r}: allocatable {} in the state, {} now",
                    human(a.allocatable),
                    human(b.allocatable)
                ));
            }
        }
    }
    if !types_changed.is_empty() {
        advice.push(format!(
            "The memory types differ ({}): hugepage sizes were added or removed (kernel parameters hugepagesz=/hugepages=). \
             Restore the earlier hugepage configuration, or start from a fresh state.",
            types_changed.join("; ")
        ));
    }
    if !totals.is_empty() {
        advice.push(format!(
            "The memory of NUMA nodes changed since the file was written ({}). The kernel or firmware now reports a \
             different per-node MemTotal (even a few KiB make the kubelet refuse, kubernetes issue #131253), or \
             hugepage pools were resized. No kubelet setting brings the old sizes back.",
            totals.join("; ")
        ));
    }
    if !hugepages_changed.is_empty() && totals.is_empty() {
        advice.push(format!(
            "Allocatable memory changed with the same totals and reservations ({}): the hugepages carved out of the \
             node's memory changed.",
            hugepages_changed.join("; ")
        ));
    }
    if reserved_changed {
        // The reservation the state was written with, as a reservedMemory block.
        let mut yaml = String::from("reservedMemory:\n");
        let mut memory_sum = 0u64;
        for (id, n) in stored {
            let limits: Vec<String> = n
                .memory_map
                .iter()
                .filter(|(_, t)| t.system_reserved > 0)
                .map(|(r, t)| format!("{r}: {}", exact_quantity(t.system_reserved)))
                .collect();
            if let Some(t) = n.memory_map.get("memory") {
                memory_sum = memory_sum.saturating_add(t.system_reserved);
            }
            if !limits.is_empty() {
                let _ = writeln!(
                    yaml,
                    "- numaNode: {id}\n  limits: {{{}}}",
                    limits.join(", ")
                );
            }
        }
        let now: u64 = expected
            .values()
            .filter_map(|n| n.memory_map.get("memory"))
            .map(|t| t.system_reserved)
            .sum();
        let sum_note = if memory_sum == now {
            format!(
                "their memory sum, {}, is what kubeReserved + systemReserved + evictionHard memory.available give now",
                exact_quantity(memory_sum)
            )
        } else {
            format!(
                "their memory sum, {}, must also be kubeReserved + systemReserved + evictionHard memory.available, which give {} now",
                exact_quantity(memory_sum),
                exact_quantity(now)
            )
        };
        advice.push(format!(
            "The memory reserved per NUMA node changed since the file was written (config: {}): reservedMemory, or \
             kubeReserved/systemReserved/evictionHard. To keep the running pods, put back the reservation the state \
             was written with ({sum_note}):\n{}",
            target.config_src,
            yaml.trim_end()
        ));
    }
    if advice.is_empty() {
        advice.push(
            "The machine and the reservations match, but the assignments in the file do not add up to its machine \
             state (reserved/free per NUMA group, numberOfAssignments or cells): the file was edited, or written by a \
             kubelet with different accounting. Only a fresh state fixes that."
                .to_string(),
        );
    }
    advice
}

/// `CPU 3` or `CPUs 0,32`.
pub fn cpus_text(set: &CpuSet) -> String {
    if set.len() == 1 {
        format!("CPU {set}")
    } else {
        format!("CPUs {set}")
    }
}

pub fn quoted(msg: &str) -> Vec<String> {
    msg.split('"')
        .skip(1)
        .step_by(2)
        .map(str::to_string)
        .collect()
}

pub fn explain_memory_failure(
    e: &StartupError,
    l: &Loaded,
    target: &Target,
    reserved: &SystemReserved,
    r: &mut Restart,
) {
    let msg = &e.message;
    if msg.contains("could not restore state from checkpoint") {
        if msg.contains("configured policy") {
            let q = quoted(msg);
            let (configured, stored) = (
                q.first().cloned().unwrap_or_default(),
                q.get(1).cloned().unwrap_or_default(),
            );
            r.lines.push(format!(
                "the file was written with memoryManagerPolicy {stored:?}, the config ({}) says {configured:?}",
                target.config_src
            ));
            r.advice.push(format!(
                "Set memoryManagerPolicy: {stored} again to restart with this state, or switch policies on a drained node (below).",
            ));
        } else {
            r.lines
                .push("the kubelet cannot read the file (see the checksum check)".to_string());
        }
        return;
    }
    if msg.contains("machine state can not be empty") {
        r.lines.push(
            "the file has container assignments but an empty machineState: the kubelet cannot rebuild the per-node \
             tables from the assignments (a kubelet never writes this; the file was edited or made by a tool)"
                .to_string(),
        );
        return;
    }
    if msg.contains("uses the NUMA that does not exist") {
        r.lines.push(format!(
            "a container is pinned to a NUMA node the machine ({}) does not have (it has {})",
            target.machine_src,
            ids_text(&target.machine.node_ids())
        ));
        r.advice.push("Check that the machine given is this node; if it is, start from a fresh state (below).".to_string());
        return;
    }
    if msg.contains("uses memory resource that does not exist") {
        r.lines.push(
            "a container holds a memory type (hugepage size) the machine does not have on that node".to_string(),
        );
        r.advice.push("Restore the hugepage size (kernel parameters hugepagesz=/hugepages=), or start fresh (below).".to_string());
        return;
    }
    if msg.contains("the expected machine state is different from the real one") {
        let Ok(ck) = checkpoint::memory::decode_v132(&l.bytes) else {
            return;
        };
        let expected = expected_machine_state(&target.machine, reserved, &ck.entries);
        r.differences = state_differences(&ck.machine_state, &expected)
            .iter()
            .map(|d| humanize_bytes(d))
            .collect();
        r.lines.push(
            "the tables in the file are not what this machine and config give, plus the file's assignments"
                .to_string(),
        );
        r.advice = memory_mismatch_advice(&ck.machine_state, &expected, target);
    }
}

pub fn explain_cpu_failure(e: &StartupError, l: &Loaded, target: &Target, r: &mut Restart) {
    let msg = &e.message;
    let q = quoted(msg);
    let parse = |i: usize| CpuSet::parse(q.get(i).map_or("", String::as_str)).unwrap_or_default();
    let entries = checkpoint::cpu::decode(&l.bytes)
        .ok()
        .map(|c| c.entries)
        .unwrap_or_default();
    let owners = |cpus: &CpuSet| -> Vec<String> {
        let mut v = Vec::new();
        for (pod, ctrs) in &entries {
            for (ctr, s) in ctrs {
                let set = CpuSet::parse(s).unwrap_or_default();
                let both = set.intersection(cpus);
                if !both.is_empty() {
                    v.push(format!("pod {pod} container {ctr} ({})", cpus_text(&both)));
                }
            }
        }
        v
    };
    if msg.contains("could not restore state from checkpoint") {
        if msg.contains("configured policy") {
            let (configured, stored) = (
                q.first().cloned().unwrap_or_default(),
                q.get(1).cloned().unwrap_or_default(),
            );
            r.lines.push(format!(
                "the file was written with cpuManagerPolicy {stored:?}, the config ({}) says {configured:?}",
                target.config_src
            ));
            r.advice.push(format!(
                "Set cpuManagerPolicy: {stored} again to restart with this state, or switch policies on a drained node (below).",
            ));
        } else if msg.contains("could not parse") {
            r.lines
                .push("a CPU list in the file does not parse".to_string());
        } else {
            r.lines
                .push("the kubelet cannot read the file (see the checksum check)".to_string());
        }
        return;
    }
    if msg.starts_with("not all reserved cpus") {
        let reserved = parse(0);
        let default = parse(1);
        let missing = reserved.difference(&default);
        let held = owners(&missing);
        r.lines.push(format!(
            "the kubelet now reserves {} (reservedSystemCPUs, or the first CPUs for kubeReserved + \
             systemReserved cpu), but {} {} not in the file's shared set{}",
            cpus_text(&reserved),
            cpus_text(&missing),
            if missing.len() == 1 { "is" } else { "are" },
            if held.is_empty() {
                String::new()
            } else {
                format!(": held exclusively by {}", held.join(", "))
            }
        ));
        r.advice.push(format!(
            "Put the CPU reservation back as it was when the file was written (the reserved CPUs must all be in the \
             shared set {default}), or start fresh (below).",
        ));
        return;
    }
    if msg.starts_with("some of strictly reserved cpus") {
        r.lines.push(
            "the strict-cpu-reservation policy option is on, and the file's shared set still contains reserved CPUs (it was written without the option)"
                .to_string(),
        );
        r.advice.push("Remove strict-cpu-reservation from cpuManagerPolicyOptions to restart with this state, or enable it on a drained node (below).".to_string());
        return;
    }
    if msg.starts_with("current set of available CPUs") {
        let now = parse(0);
        let known = parse(1);
        let gone = known.difference(&now);
        let new = now.difference(&known);
        let mut parts = Vec::new();
        if !gone.is_empty() {
            let held = owners(&gone);
            parts.push(format!(
                "{} {} in the file but not available on the machine{}",
                cpus_text(&gone),
                if gone.len() == 1 { "is" } else { "are" },
                if held.is_empty() {
                    String::new()
                } else {
                    format!(" (held by {})", held.join(", "))
                }
            ));
        }
        if !new.is_empty() {
            parts.push(format!(
                "{} {} available but unknown to the file",
                cpus_text(&new),
                if new.len() == 1 { "is" } else { "are" }
            ));
        }
        r.lines.push(format!(
            "the machine ({}) has CPUs {now}, the file knows {known}: {}",
            target.machine_src,
            parts.join("; ")
        ));
        let mut undo = Vec::new();
        if !gone.is_empty() {
            let cpu = match gone.to_vec().as_slice() {
                [one] => format!("cpu{one}"),
                _ => "cpuN".to_string(),
            };
            undo.push(format!(
                "bring {} back online (echo 1 > /sys/devices/system/cpu/{cpu}/online)",
                cpus_text(&gone)
            ));
        }
        if !new.is_empty() {
            undo.push(format!("take {} offline again", cpus_text(&new)));
        }
        r.advice.push(format!(
            "CPUs went offline or online since the file was written (or the strict-cpu-reservation option changed, or \
             the file is from another machine). To restart with this state, {}; or start fresh (below).",
            undo.join(" and ")
        ));
        return;
    }
    if msg.contains("overlaps with default cpuset")
        || msg.contains("default cpuset cannot be empty")
    {
        r.lines.push(
            "the file contradicts itself (a container's exclusive CPUs are also shared, or exclusive CPUs without a shared set): it was edited or made by a tool"
                .to_string(),
        );
    }
}

/// `Err(text)`: the kubelet would not start with this machine and config even without
/// checkpoints.
pub fn run_restart(l: &Loaded, target: &Target) -> Result<Restart, String> {
    let state_dir = l
        .path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .map_or(".".to_string(), |p| p.display().to_string());
    // First without checkpoints: a failure here is the config's, not the file's.
    let base = Node::start(
        target.machine.clone(),
        target.config.clone(),
        StartOptions {
            state_dir: state_dir.clone(),
            ..Default::default()
        },
    )
    .map_err(|e| {
        format!(
            "the kubelet would not start with this machine ({}) and config ({}) even without checkpoints: {e}. \
             Fix the configuration first (nmm validate), then verify the checkpoint again.",
            target.machine_src,
            target.config_src
        )
    })?;
    let reserved = base
        .memory
        .static_policy()
        .map(|p| p.system_reserved().clone())
        .unwrap_or_default();
    let raw = RawCheckpoint::Bytes(l.bytes.clone());
    let opts = match l.kind {
        Kind::Memory => StartOptions {
            state_dir,
            memory_checkpoint: Some(raw),
            ..Default::default()
        },
        Kind::Cpu => StartOptions {
            state_dir,
            cpu_checkpoint: Some(raw),
            ..Default::default()
        },
    };
    let mut r = Restart {
        ok: true,
        error: None,
        lines: Vec::new(),
        differences: Vec::new(),
        advice: Vec::new(),
    };
    if let Err(e) = Node::start(target.machine.clone(), target.config.clone(), opts) {
        r.ok = false;
        match l.kind {
            Kind::Memory => explain_memory_failure(&e, l, target, &reserved, &mut r),
            Kind::Cpu => explain_cpu_failure(&e, l, target, &mut r),
        }
        r.error = Some(e);
    }
    Ok(r)
}
