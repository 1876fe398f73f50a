//! The kubelet's device allocation as a hint provider of the agent's admissions.
//!
//! The agent allocates no devices: the kubelet's Device Manager has allocated a pod's
//! devices (and written them into `device-plugins/kubelet_internal_checkpoint`) when it
//! admitted the pod, before any container of it is created, in every deployment mode.
//! What the agent can do is what the kubelet's Topology Manager does for a container
//! whose devices are already allocated (`GetTopologyHints`' short cut, after a kubelet
//! restart for example): take the devices' NUMA nodes as the Device Manager's hints, so
//! that the CPUs and memory land next to them under the configured policy, and
//! `single-numa-node` / `restricted` reject the pod, in the kubelet's words, when they
//! cannot.
//!
//! [`PodDeviceHints`] is that allocation for one pod: per container the ids it holds,
//! per resource every device the agent knows with its NUMA nodes (the kubelet's
//! `allDevices`: which masks are preferred depends on all of them). [`admit`] runs one
//! admission with a Device Manager that holds exactly this (nmm-core's own, so hints,
//! merge and explanations are the kubelet's) in place of the books' empty one, and puts
//! the empty one back however the admission ends. The Device Manager's `Allocate` then
//! has nothing to do: every container's request is, by construction, what it holds.
//!
//! Where the hints come from:
//! * a new admission: the kubelet's checkpoint as the agent reads it now (every
//!   [`super::Agent::transaction`] looks at the file again before it takes the books'
//!   lock, [`crate::devices::KubeletDevices::refresh`]: one `stat`, a read only when it
//!   changed; a file that cannot be used keeps the last good allocations). No
//!   checkpoint, a pod it does not name, a container it does not name: no device hints
//!   there, as before. Entries for pods the agent does not admit are never looked at;
//! * a re-admission at start (a missing checkpoint with pods on record, `reconcile`):
//!   the kubelet's checkpoint as read at start;
//! * a replayed journal record: the hints recorded with the admission (the annotation
//!   [`ANNOTATION`] on the trimmed pod, written by the agent only), so that replay gets
//!   the allocation it got even after the kubelet's checkpoint has moved on.

use k8s_openapi::api::core::v1::Pod;
use nmm_core::checkpoint::device::DeviceCheckpoint;
use nmm_core::devicemanager::pod_devices::{AllocInfo, PodDevices};
use nmm_core::devicemanager::{Device, DeviceManager, NODE_WITHOUT_TOPOLOGY};
use nmm_core::node::{AdmitResult, Node, StepError};
use nmm_core::pod::PodInfo;
use nmm_core::quantity::{Format, Quantity};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// The annotation of a recorded pod holding the device hints it was admitted with.
pub const ANNOTATION: &str = "nmm.io/kubelet-devices";

/// One device of a resource and its NUMA nodes (`None`: no topology).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HintDevice {
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub numa: Option<Vec<u32>>,
}

/// The kubelet's devices of one pod, as an admission uses them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PodDeviceHints {
    /// Resource -> every device of it the agent knows (held by this pod or not).
    pub resources: BTreeMap<String, Vec<HintDevice>>,
    /// Container -> resource -> the ids it holds.
    pub containers: BTreeMap<String, BTreeMap<String, BTreeSet<String>>>,
}

/// A device's NUMA nodes from the NUMA node id the kubelet recorded it under.
fn numa_of_key(k: i64) -> Option<u32> {
    (k != NODE_WITHOUT_TOPOLOGY)
        .then(|| u32::try_from(k).ok())
        .flatten()
}

/// Resource `r`'s device ids -> the NUMA nodes the kubelet recorded them under when it
/// allocated them (to any pod).
fn recorded_numa<'a>(view: &'a DeviceManager, r: &str) -> BTreeMap<&'a str, BTreeSet<u32>> {
    let mut out: BTreeMap<&str, BTreeSet<u32>> = BTreeMap::new();
    for by_container in view.pod_devices.devs.values() {
        for info in by_container.values().filter_map(|m| m.get(r)) {
            for (k, ids) in &info.by_numa {
                for id in ids {
                    out.entry(id.as_str()).or_default().extend(numa_of_key(*k));
                }
            }
        }
    }
    out
}

impl PodDeviceHints {
    /// The devices the kubelet's device view (`crate::devices`) records for pod `uid`;
    /// `None` when it records none. A device's NUMA nodes are the registered ones
    /// (`machine.devices`), else those the kubelet recorded it under when it allocated it
    /// (to this pod or another), else none.
    ///
    /// Of the devices the pod does not hold, only as many per set of NUMA nodes as the
    /// pod holds devices of the resource are kept: the kubelet's hints depend on the
    /// other devices only through `minAffinitySize`, whether a mask reaches the request
    /// (never more than the pod holds), so the hints are the same and their size (the
    /// journal record, the admission's cost) does not grow with the node's devices.
    pub fn from_view(view: &DeviceManager, uid: &str) -> Option<PodDeviceHints> {
        let held = view.pod_devices.devs.get(uid)?;
        let mut containers: BTreeMap<String, BTreeMap<String, BTreeSet<String>>> = BTreeMap::new();
        for (c, by_resource) in held {
            for (r, info) in by_resource {
                let ids = info.devices();
                if !ids.is_empty() {
                    containers
                        .entry(c.clone())
                        .or_default()
                        .insert(r.clone(), ids);
                }
            }
        }
        if containers.is_empty() {
            return None;
        }
        let wanted: BTreeSet<&String> = containers.values().flat_map(|m| m.keys()).collect();
        let mut resources = BTreeMap::new();
        for r in wanted {
            let mine: BTreeSet<&String> = containers
                .values()
                .filter_map(|m| m.get(r))
                .flatten()
                .collect();
            let cap: usize = containers
                .values()
                .filter_map(|m| m.get(r))
                .map(|s| s.len())
                .sum();
            // The NUMA nodes the kubelet recorded, read only if a device needs them.
            let mut recorded: Option<BTreeMap<&str, BTreeSet<u32>>> = None;
            let mut from_checkpoint = |id: &str| -> Option<Vec<u32>> {
                let map = recorded.get_or_insert_with(|| recorded_numa(view, r));
                let nodes = map.get(id)?;
                (!nodes.is_empty()).then(|| nodes.iter().copied().collect())
            };
            let mut list: Vec<HintDevice> = Vec::new();
            // Devices kept per set of NUMA nodes (only those the pod does not hold).
            let mut per_set: BTreeMap<Option<Vec<u32>>, usize> = BTreeMap::new();
            let mut found: BTreeSet<&String> = BTreeSet::new();
            for d in view.devices_of(r) {
                let fallback;
                let numa = if d.numa.is_some() {
                    &d.numa
                } else {
                    fallback = from_checkpoint(&d.id);
                    &fallback
                };
                if mine.contains(&d.id) {
                    found.insert(&d.id);
                } else {
                    match per_set.get_mut(numa) {
                        Some(n) if *n >= cap => continue,
                        Some(n) => *n += 1,
                        None => {
                            per_set.insert(numa.clone(), 1);
                        }
                    }
                }
                list.push(HintDevice {
                    id: d.id.clone(),
                    numa: numa.clone(),
                });
            }
            // Held devices the registered list does not name.
            for id in mine.iter().filter(|id| !found.contains(*id)) {
                let numa = from_checkpoint(id);
                list.push(HintDevice {
                    id: (*id).clone(),
                    numa,
                });
            }
            list.sort_by(|a, b| a.id.cmp(&b.id));
            resources.insert(r.clone(), list);
        }
        Some(PodDeviceHints {
            resources,
            containers,
        })
    }

    /// The hints recorded on a pod of the agent's record (`Ok(None)`: none).
    pub fn from_annotation(pod: &Pod) -> Result<Option<PodDeviceHints>, String> {
        let Some(text) = pod
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(ANNOTATION))
        else {
            return Ok(None);
        };
        serde_json::from_str(text)
            .map(Some)
            .map_err(|e| format!("annotation {ANNOTATION}: {e}"))
    }

    /// Records the hints on a (trimmed) pod.
    pub fn annotate(&self, pod: &mut Pod) {
        let text = serde_json::to_string(self).expect("hints always serialise");
        pod.metadata
            .annotations
            .get_or_insert_with(Default::default)
            .insert(ANNOTATION.to_string(), text);
    }

    /// The devices of the containers `info` has, per resource.
    fn held_by<'a>(
        &'a self,
        info: &PodInfo,
    ) -> BTreeMap<&'a str, BTreeMap<&'a str, &'a BTreeSet<String>>> {
        let mut out: BTreeMap<&str, BTreeMap<&str, &BTreeSet<String>>> = BTreeMap::new();
        for c in &info.containers {
            let Some((name, held)) = self.containers.get_key_value(&c.name) else {
                continue;
            };
            for (r, ids) in held.iter().filter(|(_, ids)| !ids.is_empty()) {
                out.entry(name.as_str()).or_default().insert(r, ids);
            }
        }
        out
    }

    /// A Device Manager holding the devices of the containers `info` has: every device of
    /// their resources registered (healthy: whether a device still is does not change
    /// where the kubelet put it), the pod's allocations as the kubelet's checkpoint
    /// would restore them. `None` when no container of `info` holds a device.
    fn device_manager(&self, node: &Node, pod: &PodInfo) -> Option<DeviceManager> {
        let held = self.held_by(pod);
        if held.is_empty() {
            return None;
        }
        let numa: BTreeMap<(&str, &str), Option<&Vec<u32>>> = self
            .resources
            .iter()
            .flat_map(|(r, list)| {
                list.iter()
                    .map(move |d| ((r.as_str(), d.id.as_str()), d.numa.as_ref()))
            })
            .collect();
        let mut pod_devices = PodDevices::default();
        let mut used: BTreeSet<&str> = BTreeSet::new();
        for (c, by_resource) in &held {
            for (r, ids) in by_resource {
                used.insert(r);
                let mut info = AllocInfo::default();
                for id in *ids {
                    let nodes = numa.get(&(*r, id.as_str())).copied().flatten();
                    match nodes.filter(|n| !n.is_empty()) {
                        Some(n) => {
                            for k in n {
                                info.by_numa.node_mut(i64::from(*k)).insert(id.clone());
                            }
                        }
                        None => {
                            info.by_numa
                                .node_mut(NODE_WITHOUT_TOPOLOGY)
                                .insert(id.clone());
                        }
                    }
                }
                pod_devices.insert(&pod.uid, c, r, info);
            }
        }
        let mut dm = DeviceManager::new(&node.machine);
        dm.large = node.devices.large;
        dm.start(Some(Ok(DeviceCheckpoint {
            pod_devices,
            registered: BTreeMap::new(),
        })));
        for r in used {
            let devices: Vec<Device> = self
                .resources
                .get(r)
                .into_iter()
                .flatten()
                .map(|d| Device {
                    resource: r.to_string(),
                    id: d.id.clone(),
                    numa: d.numa.clone(),
                    healthy: true,
                })
                .collect();
            dm.register(r, &devices);
        }
        Some(dm)
    }

    /// `pod` with its device requests as the kubelet allocated them: for every resource
    /// these hints know, a container's limit (and request) is the number of devices it
    /// holds, or none. The Device Manager reads limits.
    fn requests(&self, pod: &PodInfo) -> PodInfo {
        let mut pod = pod.clone();
        for c in &mut pod.containers {
            for r in self.resources.keys() {
                c.limits.remove(r);
                c.requests.remove(r);
            }
            for (r, ids) in self.containers.get(&c.name).into_iter().flatten() {
                if ids.is_empty() {
                    continue;
                }
                let q = Quantity::from_i64(ids.len() as i64, Format::DecimalSI);
                c.limits.insert(r.clone(), q.clone());
                c.requests.insert(r.clone(), q);
            }
        }
        pod
    }
}

/// Puts the books' own Device Manager back when dropped (also when the admission
/// panics: the books must never keep the borrowed one).
struct Borrowed<'a> {
    node: &'a mut Node,
    own: Option<DeviceManager>,
}

impl Drop for Borrowed<'_> {
    fn drop(&mut self) {
        if let Some(own) = self.own.take() {
            self.node.devices = own;
        }
    }
}

/// Admits `pod` into `node`, with the kubelet's devices of the pod as the Device
/// Manager's hints when `hints` holds some for its containers (see the module
/// documentation); otherwise exactly `node.admit`.
pub fn admit(
    node: &mut Node,
    pod: &PodInfo,
    hints: Option<&PodDeviceHints>,
) -> Result<AdmitResult, StepError> {
    let Some((h, dm)) = hints.and_then(|h| Some((h, h.device_manager(node, pod)?))) else {
        return node.admit(pod);
    };
    let pod = h.requests(pod);
    let own = std::mem::replace(&mut node.devices, dm);
    let b = Borrowed {
        node,
        own: Some(own),
    };
    b.node.admit(&pod)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit;
    use nmm_core::node::{RawCheckpoint, StartOptions};
    use serde_json::json;

    const NIC: &str = "example.com/nic";
    const UID: &str = "00000000-0000-4000-8000-000000000001";

    fn nic(id: &str, numa: Option<Vec<u32>>) -> Device {
        Device {
            resource: NIC.into(),
            id: id.into(),
            numa,
            healthy: true,
        }
    }

    /// (pod, container, NUMA key, id).
    fn checkpoint(entries: &[(&str, &str, i64, &str)], registered: &[&str]) -> DeviceCheckpoint {
        let mut cp = DeviceCheckpoint::default();
        for (uid, c, k, id) in entries {
            let mut info = cp
                .pod_devices
                .devs
                .get(uid)
                .and_then(|m| m.get(c))
                .and_then(|m| m.get(NIC))
                .cloned()
                .unwrap_or_default();
            info.by_numa.node_mut(*k).insert(id.to_string());
            cp.pod_devices.insert(uid, c, NIC, info);
        }
        cp.registered.insert(
            NIC.into(),
            registered.iter().map(|s| s.to_string()).collect(),
        );
        cp
    }

    fn view(registered: &[Device], cp: DeviceCheckpoint) -> DeviceManager {
        crate::devices::build_view(&testkit::machine(), registered, Some(cp))
    }

    #[test]
    fn from_view_takes_numa_from_the_registered_devices_else_the_checkpoint() {
        // machine.devices names nic-0 (without topology) and nic-2 (no NUMA nodes known);
        // nic-1 is known from the checkpoint only; nic-2 was recorded on node 1 for
        // another pod; nic-3, in the checkpoint's registered list only, is not a device
        // of a resource machine.devices names.
        let cp = checkpoint(
            &[
                (UID, "app", 1, "nic-1"),
                ("other", "app", 1, "nic-2"),
                (UID, "side", -1, "nic-0"),
            ],
            &["nic-0", "nic-1", "nic-2", "nic-3"],
        );
        let v = view(&[nic("nic-0", None), nic("nic-2", None)], cp);
        let h = PodDeviceHints::from_view(&v, UID).unwrap();
        assert_eq!(
            h.resources[NIC],
            vec![
                HintDevice {
                    id: "nic-0".into(),
                    numa: None
                },
                HintDevice {
                    id: "nic-1".into(),
                    numa: Some(vec![1])
                },
                HintDevice {
                    id: "nic-2".into(),
                    numa: Some(vec![1])
                },
            ]
        );
        assert_eq!(h.containers["app"][NIC], ["nic-1".to_string()].into());
        assert_eq!(h.containers["side"][NIC], ["nic-0".to_string()].into());
        assert_eq!(PodDeviceHints::from_view(&v, "unknown"), None);
        // Through the annotation and back.
        let mut pod = Pod::default();
        h.annotate(&mut pod);
        assert_eq!(PodDeviceHints::from_annotation(&pod).unwrap(), Some(h));
        pod.metadata
            .annotations
            .as_mut()
            .unwrap()
            .insert(ANNOTATION.into(), "{".into());
        let e = PodDeviceHints::from_annotation(&pod).unwrap_err();
        assert!(e.starts_with("annotation nmm.io/kubelet-devices: "), "{e}");
    }

    fn pod_with_init(scope: &str) -> (nmm_core::kubelet_config::KubeletConfig, PodInfo) {
        let mut cfg = testkit::kubelet_config();
        cfg.topology_manager_scope = Some(scope.to_string());
        let r = json!({"cpu": "2", "memory": "1Gi"});
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": "p", "namespace": "default", "uid": UID},
            "spec": {
                "initContainers": [{"name": "init", "image": "x",
                    "resources": {"requests": r.clone(), "limits": r.clone()}}],
                "containers": [{"name": "app", "image": "x",
                    "resources": {"requests": r.clone(), "limits": r}}]}
        }))
        .unwrap();
        (cfg, PodInfo::from_pod(&pod, false).unwrap())
    }

    /// Init container and app container hold the same NIC (the kubelet's reuse): in
    /// both scopes the pod lands on the NIC's node, as the kubelet with its own Device
    /// Manager places it, and the books' Device Manager is left empty.
    #[test]
    fn init_reuse_in_container_and_pod_scope_matches_the_kubelet() {
        for scope in ["container", "pod"] {
            let (cfg, info) = pod_with_init(scope);
            let registered = vec![nic("nic-0", Some(vec![0])), nic("nic-1", Some(vec![1]))];
            let cp = checkpoint(
                &[(UID, "init", 1, "nic-1"), (UID, "app", 1, "nic-1")],
                &["nic-0", "nic-1"],
            );
            let v = view(&registered, cp.clone());
            let hints = PodDeviceHints::from_view(&v, UID).unwrap();
            let mut books =
                Node::start(testkit::machine(), cfg.clone(), StartOptions::default()).unwrap();
            let r = admit(&mut books, &info, Some(&hints)).unwrap();
            assert!(r.admitted, "{scope}: {:?}", r.message);
            assert!(!books.devices.is_active(), "{scope}");
            let mut kubelet = Node::start(
                testkit::machine(),
                cfg,
                StartOptions {
                    devices: registered,
                    device_checkpoint: Some(RawCheckpoint::Bytes(
                        nmm_core::checkpoint::device::encode(&cp).into_bytes(),
                    )),
                    ..Default::default()
                },
            )
            .unwrap();
            let mut with_nic = info.clone();
            for c in &mut with_nic.containers {
                let one = Quantity::from_i64(1, Format::DecimalSI);
                c.limits.insert(NIC.into(), one.clone());
                c.requests.insert(NIC.into(), one);
            }
            let k = kubelet.admit(&with_nic).unwrap();
            assert!(k.admitted, "{scope}");
            assert_eq!(books.cpu_checkpoint(), kubelet.cpu_checkpoint(), "{scope}");
            assert_eq!(
                books.memory_checkpoint(),
                kubelet.memory_checkpoint(),
                "{scope}"
            );
            let app = crate::agent::container_cpuset(&books, UID, "app");
            assert_eq!(app.mems, Some(vec![1]), "{scope}");
        }
    }

    /// Hints for containers the pod does not have (a stale entry) or a pod without
    /// devices: exactly `Node::admit`.
    #[test]
    fn hints_for_other_containers_change_nothing() {
        let (cfg, info) = pod_with_init("container");
        let cp = checkpoint(&[(UID, "gone", 1, "nic-1")], &["nic-1"]);
        let v = view(&[nic("nic-1", Some(vec![1]))], cp);
        let hints = PodDeviceHints::from_view(&v, UID).unwrap();
        let mut a = Node::start(testkit::machine(), cfg.clone(), StartOptions::default()).unwrap();
        let mut b = Node::start(testkit::machine(), cfg, StartOptions::default()).unwrap();
        assert!(admit(&mut a, &info, Some(&hints)).unwrap().admitted);
        assert!(b.admit(&info).unwrap().admitted);
        assert_eq!(a.cpu_checkpoint(), b.cpu_checkpoint());
        assert_eq!(a.memory_checkpoint(), b.memory_checkpoint());
    }

    /// The hint lists are kept short (other devices capped per set of NUMA nodes at what
    /// the pod holds); the admission must still be the kubelet's with every device
    /// registered: random layouts of 12 NICs on 4 nodes (one node, two, none), 1-3 held,
    /// 1-6 CPUs, under best-effort (where `preferred` decides) and single-numa-node.
    #[test]
    fn capped_device_lists_admit_as_the_kubelet_with_every_device() {
        let machine = nmm_core::machine::Machine::synthetic(4, 4, 0, 8 << 30, 0);
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = |n: u64| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x % n
        };
        let mut shortened = 0;
        for case in 0..80 {
            let policy = ["best-effort", "single-numa-node", "restricted"][case % 3];
            let cfg: nmm_core::kubelet_config::KubeletConfig = serde_json::from_value(json!({
                "cpuManagerPolicy": "static",
                "topologyManagerPolicy": policy,
                "kubeReserved": {"cpu": "1"},
            }))
            .unwrap();
            let devices: Vec<Device> = (0..12)
                .map(|i| {
                    let numa = match next(6) {
                        0 => None,
                        1 => {
                            let a = next(4) as u32;
                            Some(vec![a, (a + 1) % 4])
                        }
                        _ => Some(vec![next(4) as u32]),
                    };
                    nic(&format!("nic-{i:02}"), numa)
                })
                .collect();
            let held = 1 + next(3) as usize;
            let mut ids: Vec<usize> = (0..12).collect();
            for k in 0..held {
                let j = k + next((12 - k) as u64) as usize;
                ids.swap(k, j);
            }
            let mut cp = DeviceCheckpoint::default();
            let mut info = AllocInfo::default();
            for &i in &ids[..held] {
                match &devices[i].numa {
                    Some(n) => {
                        for k in n {
                            info.by_numa
                                .node_mut(i64::from(*k))
                                .insert(devices[i].id.clone());
                        }
                    }
                    None => {
                        info.by_numa
                            .node_mut(NODE_WITHOUT_TOPOLOGY)
                            .insert(devices[i].id.clone());
                    }
                }
            }
            cp.pod_devices.insert(UID, "app", NIC, info);
            let cpus = 1 + next(6);
            let r = json!({"cpu": cpus.to_string(), "memory": "1Gi"});
            let pod: Pod = serde_json::from_value(json!({
                "metadata": {"name": "p", "namespace": "default", "uid": UID},
                "spec": {"containers": [{"name": "app", "image": "x",
                    "resources": {"requests": r.clone(), "limits": r}}]}
            }))
            .unwrap();
            let info = PodInfo::from_pod(&pod, false).unwrap();

            let v = crate::devices::build_view(&machine, &devices, Some(cp.clone()));
            let hints = PodDeviceHints::from_view(&v, UID).unwrap();
            if hints.resources[NIC].len() < devices.len() {
                shortened += 1;
            }
            let mut books =
                Node::start(machine.clone(), cfg.clone(), StartOptions::default()).unwrap();
            let got = admit(&mut books, &info, Some(&hints)).unwrap();

            let mut kubelet = Node::start(
                machine.clone(),
                cfg,
                StartOptions {
                    devices: devices.clone(),
                    device_checkpoint: Some(RawCheckpoint::Bytes(
                        nmm_core::checkpoint::device::encode(&cp).into_bytes(),
                    )),
                    ..Default::default()
                },
            )
            .unwrap();
            let mut with_nic = info.clone();
            let q = Quantity::from_i64(held as i64, Format::DecimalSI);
            with_nic.containers[0].limits.insert(NIC.into(), q.clone());
            with_nic.containers[0].requests.insert(NIC.into(), q);
            let want = kubelet.admit(&with_nic).unwrap();
            let ctx = format!(
                "case {case} ({policy}, {cpus} CPUs, {devices:?}, held {:?})",
                &ids[..held]
            );
            assert_eq!(got.admitted, want.admitted, "{ctx}");
            assert_eq!(got.reason, want.reason, "{ctx}");
            assert_eq!(
                format!("{:?}", got.containers[0].affinity),
                format!("{:?}", want.containers[0].affinity),
                "{ctx}"
            );
            assert_eq!(books.cpu_checkpoint(), kubelet.cpu_checkpoint(), "{ctx}");
        }
        assert!(shortened > 40, "{shortened}");
    }
}
