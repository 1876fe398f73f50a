//! The device_admission bench's machines and pods (shared with the
//! `device_admission_instructions` example, which counts instructions per admission).

use k8s_openapi::api::core::v1::Pod;
use nmm_core::devicemanager::Device;
use nmm_core::kubelet_config::KubeletConfig;
use nmm_core::machine::Machine;
use nmm_core::node::{Node, StartOptions};
use nmm_core::pod::PodInfo;
use serde_json::json;

pub const GI: u64 = 1 << 30;

/// A pod of one container; device counts of 0 are left out of its limits.
pub fn pod(uid: &str, cpu: u32, mem_gi: u64, gpus: u32, nics: u32) -> PodInfo {
    let mut limits = json!({"cpu": cpu.to_string(), "memory": format!("{mem_gi}Gi")});
    for (r, n) in [("nvidia.com/gpu", gpus), ("example.com/nic", nics)] {
        if n > 0 {
            limits[r] = json!(n.to_string());
        }
    }
    let p: Pod = serde_json::from_value(json!({
        "metadata": {"name": uid, "uid": uid},
        "spec": {"containers": [{"name": "c", "resources": {"limits": limits}}]}
    }))
    .unwrap();
    PodInfo::from_pod(&p, false).unwrap()
}

pub fn machine(nodes: u32) -> Machine {
    if nodes == 34 {
        Machine::synthetic(2, 36, 32, 480 * GI, 64 * GI)
    } else {
        Machine::synthetic(nodes, 8, 0, 64 * GI, 16 * GI)
    }
}

pub fn devices(nodes: u32) -> Vec<Device> {
    let attached = if nodes == 34 { 2 } else { nodes };
    let per = 2;
    let mut out = Vec::new();
    for r in ["nvidia.com/gpu", "example.com/nic"] {
        for n in 0..attached {
            for k in 0..per {
                out.push(Device {
                    resource: r.into(),
                    id: format!("{}-{}", &r[r.len() - 3..], n * per + k),
                    numa: Some(vec![n]),
                    healthy: true,
                });
            }
        }
    }
    out
}

/// `policy`: a Topology Manager policy, container scope; `POLICY/pod` for the pod scope.
pub fn config(policy: &str, nodes: u32) -> KubeletConfig {
    let (policy, scope) = policy.split_once('/').unwrap_or((policy, "container"));
    let c = KubeletConfig::static_managers(policy, scope).reserving("2", "1Gi");
    if nodes > 8 {
        c.topology_option("max-allowable-numa-nodes", &nodes.to_string())
    } else {
        c
    }
}

/// A started node where half of the devices and some CPUs and memory are taken.
pub fn half_full(nodes: u32, policy: &str) -> Node {
    let opts = StartOptions {
        devices: devices(nodes),
        ..Default::default()
    };
    let mut n = Node::start(machine(nodes), config(policy, nodes), opts).unwrap();
    let fill = if nodes == 34 { 2 } else { nodes };
    for i in 0..fill {
        let r = n.admit(&pod(&format!("fill-{i}"), 2, 8, 1, 1)).unwrap();
        assert!(r.admitted, "filling pod {i} rejected: {:?}", r.message);
    }
    n
}
