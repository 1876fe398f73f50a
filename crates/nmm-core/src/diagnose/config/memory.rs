//! The Memory Manager checks, the Node Allocatable memory reservation and the proposed
//! `reservedMemory`.

use super::*;

/// reservedMemory as (node, resource, quantity), skipping values that are not quantities
/// (config validation reports those).
pub(super) fn lenient_list(config: &KubeletConfig) -> Vec<(i32, String, Quantity)> {
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

pub(super) fn bytes_of(q: &Quantity) -> i64 {
    q.value()
}

pub(super) fn human(b: i64) -> String {
    format_binary_bytes(b.unsigned_abs())
}

/// How the kubelet arrives at the memory reservation.
pub(super) fn memory_explanation(config: &KubeletConfig, capacity: u64) -> String {
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
pub fn propose(
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
pub(super) fn check_memory(
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

pub(super) fn memory_warnings(w: &mut Vec<String>, machine: &Machine, config: &KubeletConfig) {
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
