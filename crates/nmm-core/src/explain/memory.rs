//! Memory: the state of the NUMA nodes, why memory could not be placed, memory facts.

use super::*;

pub(super) fn table(ms: &MachineState, node: u32, r: &str) -> MemoryTable {
    ms.get(&node)
        .and_then(|n| n.memory_map.get(r))
        .copied()
        .unwrap_or_default()
}

pub(super) fn sum(ms: &MachineState, m: NumaMask, r: &str, f: fn(&MemoryTable) -> u64) -> u64 {
    m.ids()
        .map(|n| f(&table(ms, n, r)))
        .fold(0u64, u64::wrapping_add)
}

pub(super) fn usable_alone(ms: &MachineState, n: u32) -> bool {
    ms.get(&n).is_none_or(|s| s.cells.len() <= 1)
}

/// Why the memory manager would not place anything on `mask` (its group rules in
/// `calculateHints`), per node; empty when the mask is allowed.
pub(super) fn group_obstacles(ms: &MachineState, mask: NumaMask) -> Vec<(u32, String)> {
    let mut out = Vec::new();
    if mask.count() == 1 {
        let n = mask.to_vec()[0];
        if let Some(s) = ms.get(&n).filter(|s| s.cells.len() > 1) {
            out.push((
                n,
                format!("belongs to the group {}", mask_text(mask_of(&s.cells))),
            ));
        }
        return out;
    }
    for n in mask.ids() {
        let Some(s) = ms.get(&n) else { continue };
        if s.number_of_assignments <= 0 {
            continue;
        }
        if s.cells.len() == 1 {
            out.push((n, "already holds single-NUMA allocations".to_string()));
        } else if mask_of(&s.cells) != mask || s.cells.len() != mask.count() as usize {
            out.push((
                n,
                format!("belongs to the group {}", mask_text(mask_of(&s.cells))),
            ));
        }
    }
    out
}

/// `node 1 already holds single-NUMA allocations`, `nodes 0 and 1 already hold ...`.
pub(super) fn obstacle_sentence(obstacles: &BTreeMap<u32, String>) -> String {
    let mut by_reason: BTreeMap<&str, Vec<u32>> = BTreeMap::new();
    for (n, why) in obstacles {
        by_reason.entry(why.as_str()).or_default().push(*n);
    }
    let parts: Vec<String> = by_reason
        .into_iter()
        .map(|(why, nodes)| {
            let why = if nodes.len() > 1 {
                why.replacen("holds", "hold", 1)
                    .replacen("belongs", "belong", 1)
            } else {
                why.to_string()
            };
            format!("{} {why}", nodes_text(&nodes))
        })
        .collect();
    and_list(&parts)
}

/// The most free `r` on one node usable alone.
pub(super) fn largest_free_node(ms: &MachineState, r: &str) -> Option<(u32, u64)> {
    let mut best: Option<(u32, u64)> = None;
    for &n in ms.keys() {
        if !usable_alone(ms, n) {
            continue;
        }
        let f = table(ms, n, r).free;
        if best.is_none_or(|(_, b)| f > b) {
            best = Some((n, f));
        }
    }
    best
}

pub(super) fn largest_allocatable_node(ms: &MachineState, r: &str) -> Option<(u32, u64)> {
    let mut best: Option<(u32, u64)> = None;
    for &n in ms.keys() {
        let a = table(ms, n, r).allocatable;
        if best.is_none_or(|(_, b)| a > b) {
            best = Some((n, a));
        }
    }
    best
}

/// How many NUMA nodes an empty machine needs for `want` of `r` (the largest first).
pub(super) fn nodes_needed(ms: &MachineState, r: &str, want: u64) -> u32 {
    let mut alloc: Vec<u64> = ms.keys().map(|&n| table(ms, n, r).allocatable).collect();
    alloc.sort_unstable_by(|a, b| b.cmp(a));
    let mut total = 0u64;
    for (i, a) in alloc.iter().enumerate() {
        total = total.saturating_add(*a);
        if total >= want {
            return i as u32 + 1;
        }
    }
    alloc.len() as u32
}

pub(super) fn enumerable(ms: &MachineState) -> bool {
    ms.len() <= MAX_ENUMERATED_NODES
}

/// The allowed multi-node group with the most free `r`.
pub(super) fn largest_free_group(ms: &MachineState, r: &str) -> Option<(NumaMask, u64)> {
    if !enumerable(ms) {
        return None;
    }
    let ids: Vec<u32> = ms.keys().copied().collect();
    let mut best: Option<(NumaMask, u64)> = None;
    iterate_masks(&ids, |m| {
        if m.count() < 2 || !group_obstacles(ms, m).is_empty() {
            return;
        }
        let f = sum(ms, m, r, |t| t.free);
        if best.is_none_or(|(_, b)| f > b) {
            best = Some((m, f));
        }
    });
    best
}

/// Why no group of several nodes among `candidates` can hold `req`, in words.
pub(super) fn spanning_sentence(
    ms: &MachineState,
    req: &Requests,
    candidates: impl Fn(NumaMask) -> bool,
    wider: bool,
) -> String {
    if !enumerable(ms) {
        return String::new();
    }
    let ids: Vec<u32> = ms.keys().copied().collect();
    let mut big_enough = false;
    let mut fits: Option<NumaMask> = None;
    let mut blocked: BTreeMap<u32, String> = BTreeMap::new();
    let mut short: Option<(NumaMask, String)> = None;
    let mut short_free = 0u64;
    iterate_masks(&ids, |m| {
        if m.count() < 2 || !candidates(m) || fits.is_some() {
            return;
        }
        if req
            .iter()
            .any(|(r, &want)| sum(ms, m, r, |t| t.allocatable) < want)
        {
            return;
        }
        big_enough = true;
        let obstacles = group_obstacles(ms, m);
        if !obstacles.is_empty() {
            blocked.extend(obstacles);
            return;
        }
        let lacking: Vec<(&String, u64)> = req
            .keys()
            .map(|r| (r, sum(ms, m, r, |t| t.free)))
            .filter(|(r, f)| *f < req[*r])
            .collect();
        if lacking.is_empty() {
            fits = Some(m);
            return;
        }
        let total: u64 = lacking.iter().map(|(_, f)| f).sum();
        if short.is_none() || total > short_free {
            short_free = total;
            let text = lacking
                .iter()
                .map(|(r, f)| format!("{} {r}", bytes_text(*f)))
                .collect::<Vec<_>>();
            short = Some((m, and_list(&text)));
        }
    });
    let group = if wider {
        "wider group"
    } else {
        "group of nodes"
    };
    if let Some(m) = fits {
        return format!("the group {} could hold it", mask_text(m));
    }
    if !big_enough {
        return format!("no {group} could hold it even if it were empty");
    }
    match short {
        None => format!(
            "no {group} is allowed because {}",
            obstacle_sentence(&blocked)
        ),
        Some((m, free)) => {
            let mut s = format!(
                "the largest allowed {group} {} has only {free} free",
                mask_text(m)
            );
            if !blocked.is_empty() {
                s.push_str(&format!(
                    "; others are not allowed because {}",
                    obstacle_sentence(&blocked)
                ));
            }
            s
        }
    }
}

/// `memory: needs 100Gi on one NUMA node; the largest free single node has 23.9Gi (node 1)`,
/// then why spanning nodes does not help.
pub(super) fn single_node_sentence(
    ms: &MachineState,
    r: &str,
    want: u64,
    kind: PolicyKind,
) -> String {
    let mut s = format!("{r}: needs {} on one NUMA node; ", bytes_text(want));
    match largest_allocatable_node(ms, r) {
        Some((n, a)) if a < want => s.push_str(&format!(
            "no NUMA node can hold that even when empty (the largest allocatable is {} on node {n})",
            bytes_text(a)
        )),
        _ => match largest_free_node(ms, r) {
            Some((n, f)) => s.push_str(&format!(
                "the largest free single node has {} (node {n})",
                bytes_text(f)
            )),
            None => s.push_str("every NUMA node belongs to a multi-node group and cannot be used alone"),
        },
    }
    if kind == PolicyKind::SingleNumaNode {
        s.push_str("; single-numa-node forbids spanning nodes");
    } else if ms.len() > 1 {
        let one: Requests = [(r.to_string(), want)].into();
        let span = spanning_sentence(ms, &one, |_| true, false);
        if !span.is_empty() {
            s.push_str("; ");
            s.push_str(&span);
        }
    }
    s
}

// ---------------------------------------------------------------------------------------
// Hints and merges in words.
pub(super) fn memory_no_preference(node: &Node, pod: &PodInfo) -> String {
    if matches!(node.memory.policy, MemoryPolicy::None) {
        return "the memory manager policy is None".into();
    }
    if pod.qos != QosClass::Guaranteed {
        return format!(
            "the pod is {}, not Guaranteed: its memory is not pinned",
            pod.qos.as_str()
        );
    }
    "its existing allocation does not match the request".into()
}
pub(super) fn memory_facts(node: &Node, req: &Requests) -> Vec<MemoryFact> {
    let Some(p) = node.memory.static_policy() else {
        return Vec::new();
    };
    let ms = p.machine_state();
    req.iter()
        .map(|(r, &want)| MemoryFact {
            resource: r.clone(),
            request: want,
            nodes: ms
                .iter()
                .map(|(&n, s)| {
                    let t = table(ms, n, r);
                    NodeMemory {
                        node: n,
                        allocatable: t.allocatable,
                        free: t.free,
                        assignments: s.number_of_assignments,
                        group: s.cells.clone(),
                    }
                })
                .collect(),
            largest_free_node: largest_free_node(ms, r).map(|(n, b)| Amount {
                numa_nodes: vec![n],
                bytes: b,
            }),
            largest_free_group: largest_free_group(ms, r).map(|(m, b)| Amount {
                numa_nodes: m.to_vec(),
                bytes: b,
            }),
        })
        .collect()
}
/// The requests no NUMA node or allowed group has free on its own — the resources that
/// really fail (`83.2Gi memory`, not the hugepages that fit). When each fits somewhere on
/// its own (only together they do not), or the groups are too many to walk, all of them
/// with "at once".
pub(super) fn lacking_text(ms: &MachineState, req: &Requests) -> String {
    if enumerable(ms) {
        let lacking: Requests = req
            .iter()
            .filter(|(r, &want)| {
                let node = largest_free_node(ms, r).map_or(0, |(_, f)| f);
                let group = largest_free_group(ms, r).map_or(0, |(_, f)| f);
                node.max(group) < want
            })
            .map(|(r, &w)| (r.clone(), w))
            .collect();
        if !lacking.is_empty() {
            return requests_text(&lacking);
        }
    }
    if req.len() > 1 {
        format!("{} at once", requests_text(req))
    } else {
        requests_text(req)
    }
}

pub(super) fn memory_allocation_why(
    node: &Node,
    req: &Requests,
    hint: Option<TopologyHint>,
    message: &str,
    memory_gave_no_hints: bool,
    fixes: &mut Vec<SizeFix>,
) -> Vec<String> {
    let kind = node.topology.policy.kind;
    let Some(ms) = node.memory.static_policy().map(|p| p.machine_state()) else {
        return vec![format!("the memory manager's Allocate failed: {message}")];
    };
    let mut why = Vec::new();
    let merged = hint.and_then(|h| h.affinity);
    let largest_fix = |fixes: &mut Vec<SizeFix>, r: &str, want: u64| {
        if let Some((_, f)) = largest_free_node(ms, r) {
            if f > 0 && f < want {
                fixes.push((r.to_string(), f));
            }
        }
    };
    if message.contains("failed to get the default NUMA affinity") {
        for (r, &want) in req {
            if largest_free_node(ms, r).is_none_or(|(_, f)| f < want) {
                why.push(single_node_sentence(ms, r, want, kind));
                largest_fix(fixes, r, want);
            }
        }
        if why.is_empty() {
            why.push(format!(
                "no single NUMA node has all of {} free at once",
                requests_text(req)
            ));
        }
        why.push("so the memory manager offered no hints, which the Topology Manager reads as no preference; the merged hint was any node".into());
        why.push(format!(
            "the memory manager's Allocate then found no NUMA node or allowed group with {} free ({message})",
            lacking_text(ms, req)
        ));
    } else if message.contains("failed to find NUMA nodes to extend the current topology hint")
        || message.contains("failed to find the extended preferred hint")
    {
        let m = merged.unwrap_or_default();
        if memory_gave_no_hints {
            why.push(format!(
                "the memory manager offered no hints (no NUMA node or allowed group has {} free), which reads as no preference, so the merged hint {} came from the other providers alone",
                lacking_text(ms, req),
                mask_text(m)
            ));
        }
        for (r, &want) in req {
            if sum(ms, m, r, |t| t.free) < want {
                largest_fix(fixes, r, want);
            }
        }
        let short: Vec<String> = req
            .iter()
            .filter_map(|(r, &want)| {
                let f = sum(ms, m, r, |t| t.free);
                (f < want).then(|| {
                    format!(
                        "{} {r} free of the {} needed",
                        bytes_text(f),
                        bytes_text(want)
                    )
                })
            })
            .collect();
        let mut s = format!(
            "the merged hint's nodes {} lack free memory (only {})",
            mask_text(m),
            and_list(&short)
        );
        if message.contains("extended preferred") {
            s.push_str(
                "; the wider groups that could hold it are not preferred while the merged hint was",
            );
        } else {
            let span = spanning_sentence(ms, req, |w| m.is_subset_of(w) && w != m, true);
            if !span.is_empty() {
                s.push_str(" and ");
                s.push_str(&span);
            }
        }
        why.push(s);
    } else if message.contains("preferred hint violates NUMA node allocation") {
        let m = merged.unwrap_or_default();
        let obstacles: BTreeMap<u32, String> = group_obstacles(ms, m).into_iter().collect();
        why.push(format!(
            "the merged hint {} spans several nodes, but {}",
            mask_text(m),
            obstacle_sentence(&obstacles)
        ));
    } else if message.contains("failed to find the default preferred hint") {
        why.push("the merged hint was any node and preferred, but the memory manager's own best placement is not preferred (it needs more nodes than the narrowest fit)".into());
    } else if message.contains("int64") {
        why.push("a memory or hugepages request is not a whole number of bytes".into());
    } else {
        why.push(format!("the memory manager's Allocate failed: {message}"));
    }
    why
}
