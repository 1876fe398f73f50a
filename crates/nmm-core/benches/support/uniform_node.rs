//! The `admission` bench's uniform machines and pods (shared with the
//! `admission_instructions` example, which counts instructions per admission).

use k8s_openapi::api::core::v1::Pod;
use nmm_core::kubelet_config::KubeletConfig;
use nmm_core::machine::Machine;
use nmm_core::node::{Node, StartOptions};
use nmm_core::pod::PodInfo;
use serde_json::json;

pub const GI: u64 = 1 << 30;

pub fn pod(uid: &str, cpu: u32, mem_gi: u64, hp_gi: u64) -> PodInfo {
    let p: Pod = serde_json::from_value(json!({
        "metadata": {"name": uid, "uid": uid},
        "spec": {"containers": [{"name": "c", "resources": {"limits": {
            "cpu": cpu.to_string(), "memory": format!("{mem_gi}Gi"), "hugepages-1Gi": format!("{hp_gi}Gi")}}}]}
    }))
    .unwrap();
    PodInfo::from_pod(&p, false).unwrap()
}

/// The machine of a benchmark: GB200-like at 34 nodes (2 with CPUs), uniform otherwise.
pub fn machine(nodes: u32) -> Machine {
    if nodes == 34 {
        Machine::synthetic(2, 36, 32, 480 * GI, 64 * GI)
    } else {
        Machine::synthetic(nodes, 8, 0, 64 * GI, 16 * GI)
    }
}

pub fn config(policy: &str, scope: &str, nodes: u32) -> KubeletConfig {
    let c = KubeletConfig::static_managers(policy, scope).reserving("2", "1Gi");
    if nodes > 8 {
        c.topology_option("max-allowable-numa-nodes", &nodes.to_string())
    } else {
        c
    }
}

/// A started node with about half of every CPU node's memory and CPUs taken.
pub fn half_full(nodes: u32, policy: &str, scope: &str) -> Node {
    let mut n = Node::start(
        machine(nodes),
        config(policy, scope, nodes),
        StartOptions::default(),
    )
    .unwrap();
    let cpu_nodes = if nodes == 34 { 2 } else { nodes };
    let per_node = if nodes == 34 { 4 } else { 2 };
    let mem = if nodes == 34 { 50 } else { 12 };
    for i in 0..cpu_nodes * per_node {
        let r = n.admit(&pod(&format!("fill-{i}"), 4, mem, 2)).unwrap();
        assert!(
            r.admitted,
            "filling pod {i} rejected on {nodes} nodes under {policy}: {:?}",
            r.message
        );
    }
    n
}

/// The measured pods of a machine size: one that fits a node (preferred single-node
/// hint), one that needs a group of nodes (no single node has room) and, from 8 nodes
/// up, one that needs 4 nodes by capacity.
pub fn kinds(nodes: u32) -> Vec<(&'static str, PodInfo)> {
    let mut kinds = vec![
        ("fits-1-node", pod("bench-one", 4, 8, 2)),
        (
            "needs-group",
            pod("bench-wide", 4, if nodes == 34 { 500 } else { 90 }, 2),
        ),
    ];
    if nodes >= 8 {
        kinds.push((
            "needs-4-nodes",
            pod("bench-four", 4, if nodes == 34 { 1000 } else { 180 }, 2),
        ));
    }
    kinds
}
