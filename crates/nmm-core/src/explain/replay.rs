//! Replaying the history on a node to reach the node the pod met.

use super::*;

pub(super) struct Replayed {
    pub(super) node: Node,
    /// Live pods that may hold resources: uid -> name (None for pods restored from the
    /// checkpoints).
    pub(super) live: BTreeMap<String, Option<String>>,
    /// Per history step: the admission's outcome (None for removals and failed steps).
    pub(super) outcomes: Vec<Option<bool>>,
}

pub(super) fn replay(
    h: &History,
    config: &KubeletConfig,
    strict: bool,
) -> Result<Replayed, ExplainError> {
    let mut node = Node::start(h.machine.clone(), config.clone(), h.start.clone())
        .map_err(ExplainError::Startup)?;
    if h.machine.nodes.len() <= MAX_ENUMERATED_NODES {
        // Small enough to list every mask as the kubelet does: the explanation can then
        // show each provider's full hint list (the decisions are the same either way).
        node.topology.large = false;
        node.cpu.set_large(false);
        node.memory.set_large(false);
    }
    let mut live: BTreeMap<String, Option<String>> = BTreeMap::new();
    for uid in node
        .memory
        .assignments()
        .keys()
        .chain(node.cpu.assignments().keys())
    {
        live.insert(uid.clone(), None);
    }
    let mut outcomes = Vec::with_capacity(h.steps.len());
    for (index, s) in h.steps.iter().enumerate() {
        match s {
            HistoryStep::Admit(p) => match node.admit(p) {
                Ok(r) => {
                    if r.admitted {
                        live.insert(p.uid.clone(), Some(p.name.clone()));
                    }
                    outcomes.push(Some(r.admitted));
                }
                Err(error) if strict => return Err(ExplainError::Step { index, error }),
                Err(_) => outcomes.push(None),
            },
            HistoryStep::Remove(uid) => {
                node.remove(uid);
                live.remove(uid);
                outcomes.push(None);
            }
        }
    }
    live.retain(|uid, _| node.is_live(uid));
    Ok(Replayed {
        node,
        live,
        outcomes,
    })
}

/// The node as container `k` met it: the node before the pod, with the containers before
/// `k` allocated with their stored hints.
pub(super) fn met_node(before: &Node, pod: &PodInfo, trace: &Admission, k: usize) -> Node {
    let mut n = before.clone();
    for (c, t) in pod.containers.iter().zip(&trace.containers).take(k) {
        let hint = t.affinity.unwrap_or(TopologyHint::NONE);
        let _ = n.cpu.allocate(pod, c, hint);
        let _ = n.memory.allocate(pod, c, hint);
    }
    n
}

// ---------------------------------------------------------------------------------------
// Memory state analysis.
