//! Why the Topology Manager rejected the pod, and the request sizes that would fit.

use super::*;

/// A smaller request to try: (resource, bytes) for the failing container.
pub(super) type SizeFix = (String, u64);

/// The pod with `c`'s request (and limit) of `r` set to `bytes`.
pub(super) fn with_request(pod: &PodInfo, c: usize, r: &str, bytes: u64) -> PodInfo {
    let mut p = pod.clone();
    let q = crate::quantity::Quantity::from_i64(bytes as i64, crate::quantity::Format::BinarySI);
    if let Some(c) = p.containers.get_mut(c) {
        c.requests.insert(r.to_string(), q.clone());
        if c.limits.contains_key(r) {
            c.limits.insert(r.to_string(), q);
        }
    }
    p
}

pub(super) struct Failing<'a> {
    /// The container the admission stopped at (None: the pod-scope merge).
    pub(super) index: Option<usize>,
    pub(super) container: Option<&'a ContainerInfo>,
    pub(super) provider: Option<&'static str>,
}

pub(super) fn topology_why(
    node: &Node,
    pod: &PodInfo,
    c: Option<&ContainerInfo>,
    answers: &[Answer],
    outcome: &MergeOutcome,
    facts: &Facts,
    fixes: &mut Vec<SizeFix>,
) -> Vec<String> {
    let kind = node.topology.policy.kind;
    let infos = list_infos(answers);
    let single = kind == PolicyKind::SingleNumaNode;
    let ms = node.memory.static_policy().map(|p| p.machine_state());
    let req = subject_requests(pod, c);
    let want_cpus = match c {
        Some(c) => guaranteed_cpus(pod, c),
        None => pod_guaranteed_cpus(pod),
    };
    let size_fix = |fixes: &mut Vec<SizeFix>, ms: &MachineState, r: &str, want: u64| {
        if let Some((_, f)) = largest_free_node(ms, r) {
            if f > 0 && f < want {
                fixes.push((r.to_string(), f));
            }
        }
    };
    let mut why = Vec::new();
    for info in &infos {
        let label = &info.label;
        match info.state {
            ListState::CannotSatisfy if label == "cpu" => {
                why.push(cpu_short_sentence(facts, want_cpus));
            }
            // Extended resources here are device-plugin resources (Device Manager).
            ListState::CannotSatisfy if label.contains('/') => {
                why.push(format!(
                    "{label}: device shortage: fewer free healthy devices than requested (devices held by other pods or unhealthy do not count)"
                ));
            }
            ListState::CannotSatisfy => {
                why.push(format!("{label}: no placement can satisfy the request"));
            }
            ListState::NoHints => {
                if let Some(ms) = ms {
                    for (r, &want) in &req {
                        if largest_free_node(ms, r).is_none_or(|(_, f)| f < want) {
                            why.push(format!(
                                "{}, so the memory manager offered no hints",
                                single_node_sentence(ms, r, want, kind)
                            ));
                            size_fix(fixes, ms, r, want);
                        }
                    }
                }
            }
            ListState::Hints if single && !info.single_ok => {
                if let (Some(ms), Some(&want)) = (ms, req.get(label)) {
                    why.push(single_node_sentence(ms, label, want, kind));
                    size_fix(fixes, ms, label, want);
                } else if label == "cpu" {
                    let best = facts.cpu.as_ref().and_then(|f| {
                        f.nodes
                            .iter()
                            .max_by_key(|n| (n.free, std::cmp::Reverse(n.node)))
                    });
                    why.push(format!(
                        "cpu: needs {want_cpus} exclusive CPUs on one NUMA node; the most free on a single node is {} (node {}); single-numa-node forbids spanning nodes",
                        best.map_or(0, |b| b.free),
                        best.map_or(0, |b| b.node)
                    ));
                } else {
                    why.push(format!(
                        "{label}: single-numa-node leaves no usable hint (only multi-node or non-preferred ones)"
                    ));
                }
            }
            _ => {}
        }
    }
    let blocked = infos.iter().any(|i| {
        i.state == ListState::CannotSatisfy
            || (single && i.state == ListState::Hints && !i.single_ok)
    });
    if !blocked {
        why.push(format!(
            "no mask is preferred by all providers ({}); best non-preferred is {}",
            preferences_text(&infos),
            affinity_text(outcome.hint.affinity)
        ));
        let cpu_unpreferred = infos.iter().any(|i| {
            i.label == "cpu"
                && i.state == ListState::Hints
                && !i.any_preferred
                && i.prefers.is_none()
        });
        if cpu_unpreferred {
            if let (Some(f), CpuPolicy::Static(p)) = (facts.cpu.as_ref(), &node.cpu.policy) {
                let mut totals: Vec<usize> = p
                    .topology
                    .numa_nodes()
                    .into_iter()
                    .map(|n| p.topology.cpus_in_numa_nodes(|x| x == n).len())
                    .collect();
                totals.sort_unstable_by(|a, b| b.cmp(a));
                let mut k = 0;
                let mut sum = 0;
                for t in totals {
                    if sum >= want_cpus {
                        break;
                    }
                    sum += t;
                    k += 1;
                }
                let (reuse, from) = cpu_reusable(node, pod, c);
                let plural = if k == 1 { "" } else { "s" };
                if reuse.is_empty() {
                    why.push(format!(
                        "cpu: no hint is preferred: {want_cpus} exclusive CPUs would fit on {k} NUMA node{plural} of an empty machine, but no such placement has them free ({}; {})",
                        cpu_free_text(f),
                        reserved_cpus_text(&f.reserved)
                    ));
                } else {
                    let nodes: BTreeSet<u32> = reuse
                        .iter()
                        .filter_map(|cpu| p.topology.cpus.get(&cpu).map(|i| i.numa))
                        .collect();
                    let nodes: Vec<u32> = nodes.into_iter().collect();
                    let free_there: usize = f
                        .nodes
                        .iter()
                        .filter(|n| nodes.contains(&n.node))
                        .map(|n| n.free)
                        .sum();
                    why.push(format!(
                        "cpu: no hint is preferred: it may reuse the CPUs {reuse} of {} (on {}), so only placements including {} count; {} free there plus {} reusable fall short of the {want_cpus} needed on {k} NUMA node{plural}",
                        and_list(&from),
                        nodes_text(&nodes),
                        if nodes.len() == 1 { "that node" } else { "those nodes" },
                        free_there,
                        reuse.len()
                    ));
                }
            }
        }
        if let Some(ms) = ms {
            for info in &infos {
                let label = &info.label;
                let Some(&want) = req.get(label) else {
                    continue;
                };
                if info.state != ListState::Hints || info.any_preferred || info.prefers.is_some() {
                    continue;
                }
                let k = nodes_needed(ms, label, want);
                if k > 1 {
                    why.push(format!(
                        "{label}: no hint is preferred: {} would fit on {k} NUMA nodes of an empty machine, but with what is in use the narrowest placement has {}",
                        bytes_text(want),
                        info.min_size
                            .map_or("more nodes".to_string(), |m| format!("{m} nodes"))
                    ));
                    continue;
                }
                let mut reasons: BTreeMap<u32, String> = BTreeMap::new();
                for (&n, st) in ms {
                    if st.cells.len() > 1 {
                        reasons.insert(
                            n,
                            format!("belongs to the group {}", mask_text(mask_of(&st.cells))),
                        );
                    } else if table(ms, n, label).free < want {
                        reasons.insert(
                            n,
                            format!("has only {} free", bytes_text(table(ms, n, label).free)),
                        );
                    }
                }
                if reasons.len() < ms.len() {
                    // Some node could take this resource alone: another resource is the cause.
                    continue;
                }
                why.push(format!(
                    "{label}: no hint is preferred: a single NUMA node is big enough for {}, but none can take it alone ({})",
                    bytes_text(want),
                    obstacle_sentence(&reasons)
                ));
            }
        }
        // A memory request wider than any single node while another resource prefers
        // single nodes: shrinking it would align them.
        if let Some(ms) = ms {
            for info in &infos {
                let label = &info.label;
                let Some(&want) = req.get(label) else {
                    continue;
                };
                if info.narrowest_preferred.is_some_and(|n| n > 1)
                    && largest_allocatable_node(ms, label).is_some_and(|(_, a)| a < want)
                {
                    why.push(format!(
                        "{label}: needs {} — more than one NUMA node can offer — so it prefers only multi-node groups",
                        bytes_text(want)
                    ));
                    if let Some((_, f)) = largest_free_node(ms, label) {
                        fixes.push((label.clone(), f));
                    }
                }
            }
        }
    }
    why.push(format!(
        "{} admits only preferred merged hints, so the pod is rejected with TopologyAffinityError",
        kind.name()
    ));
    why
}
