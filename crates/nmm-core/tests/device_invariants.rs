//! Property tests of the Device Manager inside the whole engine: after any sequence of
//! admissions and removals each device is held by at most one running container (a regular
//! init container's devices are handed on to later containers of its pod, as in the
//! kubelet), only healthy devices are handed out, admitted containers hold exactly their
//! request, the checkpoint reads back to the same books, and removing every pod gives
//! every device back.

use k8s_openapi::api::core::v1::Pod;
use nmm_core::checkpoint::device;
use nmm_core::cpuset::CpuSet;
use nmm_core::devicemanager::Device;
use nmm_core::kubelet_config::KubeletConfig;
use nmm_core::machine::{Cpu, Machine, NumaNode};
use nmm_core::node::{Node, RawCheckpoint, StartOptions};
use nmm_core::pod::PodInfo;
use proptest::prelude::*;
use serde_json::json;
use std::collections::{BTreeMap, BTreeSet};

const GI: u64 = 1 << 30;
const RESOURCES: [&str; 2] = ["example.com/nic", "nvidia.com/gpu"];

fn machine(nodes: u32) -> Machine {
    let mut m = Machine::default();
    for n in 0..nodes {
        let cpus: CpuSet = (n * 4..(n + 1) * 4).collect();
        for c in cpus.iter() {
            m.cpus.push(Cpu {
                id: c,
                core: c,
                socket: n,
                numa: n,
            });
        }
        m.nodes.push(NumaNode {
            id: n,
            cpus,
            memory: 16 * GI,
            hugepages: BTreeMap::new(),
            distances: vec![],
        });
    }
    m.default_distances();
    m
}

fn config(policy: &str, scope: &str) -> KubeletConfig {
    KubeletConfig::static_managers(policy, scope).reserving("1", "1Gi")
}

/// (resource index, topology kind, healthy): kind 0 = no topology, 1 = one node, 2 = two.
fn devices(nodes: u32, spec: &[(usize, u8, u32, bool)]) -> Vec<Device> {
    spec.iter()
        .enumerate()
        .map(|(i, &(r, kind, n, healthy))| Device {
            resource: RESOURCES[r].into(),
            id: format!("d-{i}"),
            numa: match kind {
                0 => None,
                1 => Some(vec![n % nodes]),
                _ => Some(vec![n % nodes, (n + 1) % nodes]),
            },
            healthy,
        })
        .collect()
}

#[derive(Debug, Clone)]
enum Op {
    /// Device counts (nic, gpu) of: the init container (if any), app 1, app 2.
    Admit {
        init: Option<(u8, u8, bool)>,
        app: (u8, u8),
        app2: (u8, u8),
    },
    Remove(usize),
}

fn op() -> impl Strategy<Value = Op> {
    let pair = || (0u8..3, 0u8..3);
    prop_oneof![
        3 => (prop::option::of((0u8..3, 0u8..3, any::<bool>())), pair(), pair())
            .prop_map(|(init, app, app2)| Op::Admit { init, app, app2 }),
        1 => (0usize..20).prop_map(Op::Remove),
    ]
}

fn container(name: &str, counts: (u8, u8)) -> serde_json::Value {
    let mut limits = json!({"cpu": "1", "memory": "1Gi"});
    for (r, n) in RESOURCES.iter().zip([counts.0, counts.1]) {
        if n > 0 {
            limits[*r] = json!(n.to_string());
        }
    }
    json!({"name": name, "resources": {"limits": limits}})
}

fn pod(i: usize, op: &Op) -> PodInfo {
    let Op::Admit { init, app, app2 } = op else {
        unreachable!()
    };
    let mut spec = json!({"containers": [container("app", *app), container("app2", *app2)]});
    if let Some((a, b, sidecar)) = init {
        let mut c = container("init", (*a, *b));
        if *sidecar {
            c["restartPolicy"] = json!("Always");
        }
        spec["initContainers"] = json!([c]);
    }
    let p: Pod = serde_json::from_value(json!({
        "metadata": {"name": format!("p{i}"), "uid": format!("uid-{i:02}")}, "spec": spec,
    }))
    .unwrap();
    PodInfo::from_pod(&p, false).unwrap()
}

fn check(node: &Node, pods: &BTreeMap<String, PodInfo>) -> Result<(), TestCaseError> {
    let dm = &node.devices;
    let mut owner: BTreeMap<(String, String), String> = BTreeMap::new();
    for (uid, p) in pods {
        for c in &p.containers {
            let held = dm.container_devices(uid, &c.name);
            for (r, q) in &c.limits {
                // (A resource no plugin serves is not the Device Manager's.)
                if dm.is_device_plugin_resource(r) {
                    let n = held.get(r).map_or(0, |s| s.len()) as i64;
                    prop_assert_eq!(n, q.value(), "{} {} {}", uid, c.name, r);
                }
            }
            // Regular init containers have finished: their devices live on in the
            // containers that reused them.
            if c.is_regular_init() {
                continue;
            }
            for (r, ids) in held {
                for id in ids {
                    let healthy = dm.devices_of(&r).any(|d| d.id == id && d.healthy);
                    prop_assert!(
                        healthy,
                        "{} {} holds unhealthy or unknown {}",
                        uid,
                        c.name,
                        id
                    );
                    let who = format!("{uid}/{}", c.name);
                    if let Some(prev) = owner.insert((r.clone(), id.clone()), who.clone()) {
                        prop_assert!(false, "{} held by {} and {}", id, prev, who);
                    }
                }
            }
        }
    }
    // Nothing is held by a pod that is not running.
    for uid in dm.pods() {
        prop_assert!(pods.contains_key(&uid), "stale pod {}", uid);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]
    #[test]
    fn devices_are_held_once_and_come_back(
        nodes in 1u32..=4,
        policy in prop::sample::select(vec!["none", "best-effort", "restricted", "single-numa-node"]),
        scope in prop::sample::select(vec!["container", "pod"]),
        spec in prop::collection::vec((0usize..2, 0u8..3, 0u32..4, prop::bool::weighted(0.85)), 1..10),
        ops in prop::collection::vec(op(), 1..20),
        enumerate in any::<bool>(),
    ) {
        let m = machine(nodes);
        let cfg = config(policy, scope);
        let devs = devices(nodes, &spec);
        let opts = StartOptions { devices: devs.clone(), enumerate, ..Default::default() };
        let mut node = Node::start(m.clone(), cfg.clone(), opts).unwrap();
        let initial = node.device_checkpoint();
        let mut live: BTreeMap<String, PodInfo> = BTreeMap::new();
        for (i, o) in ops.iter().enumerate() {
            match o {
                Op::Admit { .. } => {
                    let p = pod(i, o);
                    let r = node.admit(&p).unwrap();
                    if r.admitted {
                        live.insert(r.uid.clone(), p);
                    }
                }
                Op::Remove(k) => {
                    if !live.is_empty() {
                        let uid = live.keys().nth(k % live.len()).unwrap().clone();
                        live.remove(&uid);
                        prop_assert!(node.remove(&uid).removed);
                    }
                }
            }
            check(&node, &live)?;
            // The checkpoint reads back to the same books, and a restart keeps them.
            let text = node.device_checkpoint();
            let back = device::decode(text.as_bytes());
            prop_assert!(back.is_ok(), "{:?}", back.err());
            prop_assert_eq!(&back.unwrap(), &node.devices.checkpoint());
            let ropts = StartOptions {
                devices: devs.clone(),
                device_checkpoint: Some(RawCheckpoint::Bytes(text.clone().into_bytes())),
                ..Default::default()
            };
            let restarted = Node::start(m.clone(), cfg.clone(), ropts).unwrap();
            prop_assert!(restarted.devices.checkpoint_error.is_none());
            prop_assert_eq!(restarted.device_checkpoint(), text);
        }
        for uid in live.keys() {
            node.remove(uid);
        }
        prop_assert_eq!(node.device_checkpoint(), initial);
        let free: BTreeSet<String> = RESOURCES.iter().flat_map(|r| node.devices.available_devices(r)).collect();
        let healthy: BTreeSet<String> = devs.iter().filter(|d| d.healthy).map(|d| d.id.clone()).collect();
        prop_assert_eq!(free, healthy);
    }
}

fn summary(node: &mut Node, ops: &[Op]) -> Vec<String> {
    let mut live: Vec<String> = Vec::new();
    let mut out = Vec::new();
    for (i, o) in ops.iter().enumerate() {
        match o {
            Op::Admit { .. } => {
                let r = node.admit(&pod(i, o)).unwrap();
                let cs: Vec<String> = r
                    .containers
                    .iter()
                    .map(|c| format!("{}:{:?}:{}:{:?}", c.name, c.affinity, c.cpus, c.devices))
                    .collect();
                out.push(format!(
                    "{} {:?} {:?} {}",
                    r.admitted,
                    r.reason,
                    r.message,
                    cs.join(",")
                ));
                if r.admitted {
                    live.push(r.uid);
                }
            }
            Op::Remove(k) => {
                if !live.is_empty() {
                    let uid = live.remove(k % live.len());
                    node.remove(&uid);
                }
            }
        }
    }
    out.push(node.device_checkpoint());
    out.push(node.cpu_checkpoint());
    out.push(node.memory_checkpoint());
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(150))]
    /// The described hint lists (device families) decide exactly as listing every mask.
    #[test]
    fn described_lists_decide_like_listing(
        nodes in 1u32..=5,
        policy in prop::sample::select(vec!["best-effort", "restricted", "single-numa-node"]),
        scope in prop::sample::select(vec!["container", "pod"]),
        spec in prop::collection::vec((0usize..2, 0u8..3, 0u32..5, prop::bool::weighted(0.85)), 1..12),
        ops in prop::collection::vec(op(), 1..16),
    ) {
        let m = machine(nodes);
        let cfg = config(policy, scope);
        let devs = devices(nodes, &spec);
        let start = |enumerate| {
            let opts = StartOptions { devices: devs.clone(), enumerate, ..Default::default() };
            Node::start(m.clone(), cfg.clone(), opts).unwrap()
        };
        let listed = summary(&mut start(true), &ops);
        let described = summary(&mut start(false), &ops);
        prop_assert_eq!(listed, described);
    }
}
