//! What would make the pod fit: removing running pods, another topology policy.

use super::*;

/// What pod `uid` holds: pinned memory bytes, exclusive CPUs, the containers holding
/// them, and those resources in words.
pub(super) fn held(node: &Node, uid: &str) -> (u64, usize, Vec<String>, String) {
    let mut parts = Vec::new();
    let mut bytes = 0u64;
    let mut containers: BTreeSet<String> = BTreeSet::new();
    if let Some(p) = node.memory.static_policy() {
        let mut by: BTreeMap<(String, Vec<u32>), u64> = BTreeMap::new();
        for (container, blocks) in p.assignments.get(uid).into_iter().flat_map(|m| m.iter()) {
            if blocks.iter().any(|b| b.size > 0) {
                containers.insert(container.clone());
            }
            for b in blocks {
                *by.entry((b.kind.clone(), b.numa_affinity.clone()))
                    .or_default() += b.size;
                bytes += b.size;
            }
        }
        for ((kind, nodes), size) in by {
            if size > 0 {
                parts.push(format!(
                    "{kind} {} on {}",
                    bytes_text(size),
                    nodes_text(&nodes)
                ));
            }
        }
    }
    let mut cpus = CpuSet::new();
    for (container, set) in node.cpu.assignments().get(uid).into_iter().flatten() {
        if !set.is_empty() {
            containers.insert(container.clone());
            cpus = cpus.union(set);
        }
    }
    if !cpus.is_empty() {
        parts.push(format!("{} exclusive CPUs ({cpus})", cpus.len()));
    }
    (
        bytes,
        cpus.len(),
        containers.into_iter().collect(),
        parts.join(", "),
    )
}

pub(super) fn admits(node: &Node, pod: &PodInfo, remove: &[&str]) -> bool {
    let mut n = node.clone();
    for uid in remove {
        n.remove(uid);
    }
    n.admit(pod).is_ok_and(|r| r.admitted)
}

/// `c: NUMA {0}, CPUs 2-3, memory 100Gi on node 0`, per container.
pub(super) fn placement_text(r: &crate::node::AdmitResult) -> String {
    r.containers
        .iter()
        .map(|c| {
            let mut parts = Vec::new();
            if let Some(h) = c.affinity {
                parts.push(format!("NUMA {}", affinity_text(h.affinity)));
            }
            if !c.cpus.is_empty() {
                parts.push(format!("CPUs {}", c.cpus));
            }
            for b in &c.memory {
                parts.push(format!(
                    "{} {} on {}",
                    b.kind,
                    bytes_text(b.size),
                    nodes_text(&b.numa_affinity)
                ));
            }
            if parts.is_empty() {
                parts.push("shared CPUs and memory".into());
            }
            format!("{}: {}", c.name, parts.join(", "))
        })
        .collect::<Vec<_>>()
        .join("; ")
}

pub(super) fn alternatives(
    h: &History,
    base: &Replayed,
    pod: &PodInfo,
) -> (Alternatives, Vec<String>) {
    let node = &base.node;
    // Pods holding exclusive CPUs or pinned memory.
    let mut removals: Vec<Removal> = base
        .live
        .iter()
        .filter_map(|(uid, name)| {
            let (memory_bytes, cpus, containers, frees) = held(node, uid);
            (memory_bytes > 0 || cpus > 0).then(|| Removal {
                uid: uid.clone(),
                name: name.clone(),
                memory_bytes,
                cpus,
                containers,
                frees,
            })
        })
        .collect();
    removals
        .sort_by(|a, b| (a.memory_bytes, a.cpus, &a.uid).cmp(&(b.memory_bytes, b.cpus, &b.uid)));
    let running_pods = removals.len();
    let single: Vec<Removal> = removals
        .iter()
        .filter(|r| admits(node, pod, &[r.uid.as_str()]))
        .cloned()
        .collect();
    let mut pair = None;
    if single.is_empty() && removals.len() >= 2 && removals.len() <= MAX_PAIR_CANDIDATES {
        let mut best: Option<(u64, usize, usize, usize)> = None;
        for i in 0..removals.len() {
            for j in i + 1..removals.len() {
                let (a, b) = (&removals[i], &removals[j]);
                let key = (a.memory_bytes + b.memory_bytes, a.cpus + b.cpus);
                if best.is_some_and(|(m, c, _, _)| (m, c) <= key) {
                    continue;
                }
                if admits(node, pod, &[a.uid.as_str(), b.uid.as_str()]) {
                    best = Some((key.0, key.1, i, j));
                }
            }
        }
        pair = best.map(|(_, _, i, j)| vec![removals[i].clone(), removals[j].clone()]);
    }
    let everyone: Vec<&str> = base.live.keys().map(String::as_str).collect();
    let fits_on_empty_node = admits(node, pod, &everyone);

    let current = node.topology.policy.kind;
    let mut policies = Vec::new();
    let nodes = h.machine.nodes.len();
    for kind in ALL_POLICIES {
        if kind == current {
            continue;
        }
        if kind == PolicyKind::None && nodes > MAX_NONE_NODES {
            // Without a hint the memory manager looks for its own default placement among
            // every NUMA mask, as the kubelet does: far too many here.
            policies.push(PolicyAlternative {
                policy: kind.name().into(),
                admitted: None,
                detail: format!(
                    "not tried: without a merged hint the memory manager would search all 2^{nodes}-1 NUMA masks of this machine for a default placement"
                ),
                earlier_changes: 0,
            });
            continue;
        }
        let mut config = h.config.clone();
        config.topology_manager_policy = Some(kind.name().to_string());
        let alt = match replay(h, &config, false) {
            Err(e) => PolicyAlternative {
                policy: kind.name().into(),
                admitted: None,
                detail: format!("{e}"),
                earlier_changes: 0,
            },
            Ok(mut r) => {
                let earlier_changes = r
                    .outcomes
                    .iter()
                    .zip(&base.outcomes)
                    .filter(|(a, b)| a.is_some() && b.is_some() && a != b)
                    .count();
                match r.node.admit(pod) {
                    Ok(res) => PolicyAlternative {
                        policy: kind.name().into(),
                        admitted: Some(res.admitted),
                        detail: if res.admitted {
                            placement_text(&res)
                        } else {
                            format!(
                                "{}: {}",
                                res.reason.unwrap_or_default(),
                                res.message.unwrap_or_default()
                            )
                        },
                        earlier_changes,
                    },
                    Err(e) => PolicyAlternative {
                        policy: kind.name().into(),
                        admitted: None,
                        detail: e.to_string(),
                        earlier_changes,
                    },
                }
            }
        };
        policies.push(alt);
    }

    let mut fixes = Vec::new();
    // Pods known only from the checkpoints are named as the books name them: uid and
    // containers.
    let who = |r: &Removal| match (&r.name, r.containers.as_slice()) {
        (None, [c]) => format!("{} (container {c})", pod_ref(None, &r.uid)),
        (None, cs) if !cs.is_empty() => {
            format!("{} (containers {})", pod_ref(None, &r.uid), and_list(cs))
        }
        _ => pod_ref(r.name.as_deref(), &r.uid),
    };
    if let Some(r) = single.first() {
        let mut s = format!("it fits after removing {} (frees {})", who(r), r.frees);
        if single.len() > 1 {
            let others: Vec<String> = single[1..].iter().map(who).collect();
            s.push_str(&format!(
                "; removing {} instead also works",
                others.join(" or ")
            ));
        }
        fixes.push(s);
    } else if let Some(p) = &pair {
        fixes.push(format!(
            "no single removal is enough; it fits after removing both {} and {}",
            who(&p[0]),
            who(&p[1])
        ));
    } else if running_pods > 0 && fits_on_empty_node {
        fixes.push("removing one or two pods is not enough; it fits only once every running pod is removed".into());
    } else if !fits_on_empty_node {
        fixes.push(
            "it does not fit even on an empty node with this machine and configuration".into(),
        );
    }
    let changes = |n: usize| {
        format!(
            "{n} earlier admission{} would also end differently",
            if n == 1 { "" } else { "s" }
        )
    };
    let mut rejecting: Vec<(&str, usize)> = Vec::new();
    for p in &policies {
        match p.admitted {
            Some(true) => {
                let mut s = format!("under {} it would be admitted ({})", p.policy, p.detail);
                if p.earlier_changes > 0 {
                    s.push_str(&format!("; {}", changes(p.earlier_changes)));
                }
                fixes.push(s);
            }
            Some(false) => rejecting.push((p.policy.as_str(), p.earlier_changes)),
            None => fixes.push(format!("under {}: {}", p.policy, p.detail)),
        }
    }
    if !rejecting.is_empty() {
        let counts: BTreeSet<usize> = rejecting.iter().map(|(_, n)| *n).collect();
        let s = if counts.len() == 1 {
            let names: Vec<String> = rejecting.iter().map(|(p, _)| p.to_string()).collect();
            let n = rejecting[0].1;
            let mut s = format!("it would be rejected under {} as well", and_list(&names));
            if n > 0 {
                s.push_str(&format!(
                    " ({}, {})",
                    if names.len() > 1 {
                        "under each"
                    } else {
                        "there"
                    },
                    changes(n)
                ));
            }
            s
        } else {
            let names: Vec<String> = rejecting
                .iter()
                .map(|(p, n)| match n {
                    0 => p.to_string(),
                    n => format!("{p} (where {})", changes(*n)),
                })
                .collect();
            format!("it would be rejected under {} as well", and_list(&names))
        };
        fixes.push(s);
    }
    (
        Alternatives {
            running_pods,
            single_removals: single,
            pair_removal: pair,
            fits_on_empty_node,
            policies,
        },
        fixes,
    )
}

// ---------------------------------------------------------------------------------------
