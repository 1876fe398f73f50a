//! CPUs: free and reusable CPUs, why the CPU manager could not allocate.

use super::*;

pub(super) fn cpu_no_preference(node: &Node, pod: &PodInfo, c: Option<&ContainerInfo>) -> String {
    if matches!(node.cpu.policy, CpuPolicy::None) {
        return "the CPU manager policy is none: no exclusive CPUs".into();
    }
    if pod.qos != QosClass::Guaranteed {
        return format!(
            "the pod is {}, not Guaranteed: it runs on the shared CPU pool",
            pod.qos.as_str()
        );
    }
    match c {
        Some(c) => match c.requests.get("cpu") {
            None => "the container requests no CPU".into(),
            Some(q) => format!(
                "the CPU request {} is not a whole number: the container runs on the shared pool",
                q.canonical()
            ),
        },
        None => "no container asks for whole exclusive CPUs".into(),
    }
}
pub(super) fn free_cpus(
    node: &Node,
) -> Option<(CpuSet, &crate::cpumanager::policy_static::StaticPolicy)> {
    match &node.cpu.policy {
        CpuPolicy::Static(p) => Some((p.default_set.difference(&p.reserved), p)),
        CpuPolicy::None => None,
    }
}

pub(super) fn cpu_fact(node: &Node, want: usize) -> Option<CpuFact> {
    let (free, p) = free_cpus(node)?;
    let nodes = p
        .topology
        .numa_nodes()
        .into_iter()
        .map(|n| {
            let set = p
                .topology
                .cpus_in_numa_nodes(|x| x == n)
                .intersection(&free);
            NodeCpus {
                node: n,
                free: set.len(),
                cpus: set.to_string(),
            }
        })
        .collect();
    Some(CpuFact {
        request: want,
        reserved: p.reserved.to_string(),
        nodes,
    })
}

/// CPUs the container `c` may take over from the pod's earlier regular init containers
/// (the CPU manager's `cpusToReuse` as `c` meets it), and whose they are.
pub(super) fn cpu_reusable(
    node: &Node,
    pod: &PodInfo,
    c: Option<&ContainerInfo>,
) -> (CpuSet, Vec<String>) {
    let (CpuPolicy::Static(p), Some(c)) = (&node.cpu.policy, c) else {
        return (CpuSet::new(), Vec::new());
    };
    let Some(a) = p.assignments.get(&pod.uid) else {
        return (CpuSet::new(), Vec::new());
    };
    let mut reuse = CpuSet::new();
    let mut from = Vec::new();
    for earlier in pod.containers.iter().take_while(|x| x.name != c.name) {
        let Some(set) = a.get(&earlier.name) else {
            continue;
        };
        if earlier.is_regular_init() {
            reuse = reuse.union(set);
            from.push(format!("init container {}", earlier.name));
        } else {
            reuse = reuse.difference(set);
        }
    }
    (reuse, from)
}

pub(super) fn cpu_free_text(f: &CpuFact) -> String {
    let parts: Vec<String> = f
        .nodes
        .iter()
        .map(|n| format!("{} on node {}", n.free, n.node))
        .collect();
    and_list(&parts)
}

// ---------------------------------------------------------------------------------------
// Why, and what would make it fit.
/// `cpu: needs 8 exclusive CPUs but only 3 are free (3 on node 0 and 0 on node 1;
/// CPU 0 reserved)`.
pub(super) fn cpu_short_sentence(facts: &Facts, want: usize) -> String {
    let Some(f) = facts.cpu.as_ref() else {
        return format!("cpu: needs {want} exclusive CPUs, more than are free");
    };
    let total: usize = f.nodes.iter().map(|n| n.free).sum();
    format!(
        "cpu: needs {want} exclusive CPUs but only {total} {} free ({}; {})",
        if total == 1 { "is" } else { "are" },
        cpu_free_text(f),
        reserved_cpus_text(&f.reserved)
    )
}

pub(super) fn cpu_allocation_why(facts: &Facts, message: &str, want: usize) -> Vec<String> {
    if message.contains("not enough cpus available") {
        return vec![cpu_short_sentence(facts, want)];
    }
    if message.contains("SMT Alignment Error") {
        return vec![format!(
            "cpu: with full-pcpus-only the CPU manager hands out whole physical cores only: {message}"
        )];
    }
    vec![format!("the CPU manager's Allocate failed: {message}")]
}
