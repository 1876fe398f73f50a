//! Read-only views of the Device Manager's books for renderers and the PodResources API:
//! every device with its NUMA nodes and holder (the SVG), and the PodResources
//! `ContainerDevices` lists (`List`: what a container holds, per NUMA node, as kubelet
//! v1.32's `getContainerDevices`; `GetAllocatableResources`: the healthy registered
//! devices, one entry per device and NUMA node, as `containerDevicesFromResourceDeviceInstances`).

use super::{DeviceManager, NODE_WITHOUT_TOPOLOGY};

/// PodResources `ContainerDevices`: ids of one resource with their topology.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopologyDevices {
    pub resource: String,
    pub ids: Vec<String>,
    /// `TopologyInfo.Nodes` ids; `None`: no topology reported.
    pub nodes: Option<Vec<i64>>,
}

/// One known device, where it sits and who holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DevicePlacement {
    pub resource: String,
    pub id: String,
    /// `None`: the plugin reports no topology.
    pub numa: Option<Vec<u32>>,
    pub healthy: bool,
    /// (pod uid, container name) holding it.
    pub holder: Option<(String, String)>,
}

impl DeviceManager {
    /// `List`'s devices of one container: per resource (sorted), one entry per NUMA node
    /// the ids were recorded under, ids sorted; devices without topology get none.
    pub fn topology_devices_of(&self, pod: &str, container: &str) -> Vec<TopologyDevices> {
        let Some(resources) = self
            .pod_devices
            .devs
            .get(pod)
            .and_then(|c| c.get(container))
        else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for (resource, info) in resources {
            for (node, ids) in &info.by_numa {
                out.push(TopologyDevices {
                    resource: resource.clone(),
                    ids: ids.iter().cloned().collect(),
                    nodes: (*node != NODE_WITHOUT_TOPOLOGY).then(|| vec![*node]),
                });
            }
        }
        out
    }

    /// `GetAllocatableResources`' devices: every healthy device of a registered resource,
    /// one entry per NUMA node of its topology (one without topology when it has none).
    pub fn allocatable_topology_devices(&self) -> Vec<TopologyDevices> {
        let mut out = Vec::new();
        for d in self.allocatable_devices() {
            match &d.numa {
                None => out.push(TopologyDevices {
                    resource: d.resource.clone(),
                    ids: vec![d.id.clone()],
                    nodes: None,
                }),
                Some(nodes) => out.extend(nodes.iter().map(|&n| TopologyDevices {
                    resource: d.resource.clone(),
                    ids: vec![d.id.clone()],
                    nodes: Some(vec![i64::from(n)]),
                })),
            }
        }
        out
    }

    /// Every device the plugins reported (resources in registration order, ids sorted),
    /// with its holder, plus devices the books hold that no plugin reports (from a
    /// checkpoint; their NUMA node is the one recorded).
    pub fn placements(&self) -> Vec<DevicePlacement> {
        let mut holder = std::collections::BTreeMap::new();
        let mut recorded = std::collections::BTreeMap::new();
        for (pod, containers) in &self.pod_devices.devs {
            for (c, resources) in containers {
                for (r, info) in resources {
                    for (node, ids) in &info.by_numa {
                        for id in ids {
                            holder.insert((r.as_str(), id.as_str()), (pod.clone(), c.clone()));
                            let e = recorded
                                .entry((r.as_str(), id.as_str()))
                                .or_insert_with(Vec::new);
                            if let Ok(n) = u32::try_from(*node) {
                                e.push(n);
                            }
                        }
                    }
                }
            }
        }
        let mut out = Vec::new();
        for r in &self.order {
            for d in self.devices_of(r) {
                out.push(DevicePlacement {
                    resource: d.resource.clone(),
                    id: d.id.clone(),
                    numa: d.numa.clone(),
                    healthy: d.healthy,
                    holder: holder.remove(&(r.as_str(), d.id.as_str())),
                });
            }
        }
        for ((r, id), h) in holder {
            let nodes = recorded.remove(&(r, id)).unwrap_or_default();
            out.push(DevicePlacement {
                resource: r.to_string(),
                id: id.to_string(),
                numa: (!nodes.is_empty()).then_some(nodes),
                healthy: false,
                holder: Some(h),
            });
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::devicemanager::pod_devices::AllocInfo;
    use crate::devicemanager::Device;
    use crate::machine::Machine;

    fn dev(id: &str, numa: Option<Vec<u32>>, healthy: bool) -> Device {
        Device {
            resource: "example.com/nic".into(),
            id: id.into(),
            numa,
            healthy,
        }
    }

    fn manager() -> DeviceManager {
        let m = Machine::synthetic(2, 2, 0, 1 << 30, 1 << 30);
        let mut dm = DeviceManager::new(&m);
        dm.register_all(&[
            dev("nic-0", Some(vec![0]), true),
            dev("nic-1", Some(vec![1]), true),
            dev("nic-2", Some(vec![0, 1]), true),
            dev("nic-3", None, true),
            dev("nic-4", Some(vec![1]), false),
        ]);
        let mut info = AllocInfo::default();
        info.by_numa.insert(1, ["nic-1".to_string()].into());
        info.by_numa.insert(-1, ["nic-3".to_string()].into());
        dm.pod_devices.insert("uid-a", "c", "example.com/nic", info);
        dm
    }

    #[test]
    fn a_container_lists_its_devices_per_numa_node() {
        let dm = manager();
        let got = dm.topology_devices_of("uid-a", "c");
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].ids, vec!["nic-3".to_string()]);
        assert_eq!(got[0].nodes, None);
        assert_eq!(got[1].ids, vec!["nic-1".to_string()]);
        assert_eq!(got[1].nodes, Some(vec![1]));
        assert!(dm.topology_devices_of("uid-a", "other").is_empty());
    }

    #[test]
    fn allocatable_is_every_healthy_device_per_node() {
        let dm = manager();
        let got = dm.allocatable_topology_devices();
        let ids: Vec<(String, Option<Vec<i64>>)> = got
            .into_iter()
            .map(|t| (t.ids[0].clone(), t.nodes))
            .collect();
        assert_eq!(
            ids,
            vec![
                ("nic-0".into(), Some(vec![0])),
                ("nic-1".into(), Some(vec![1])),
                ("nic-2".into(), Some(vec![0])),
                ("nic-2".into(), Some(vec![1])),
                ("nic-3".into(), None),
            ]
        );
    }

    #[test]
    fn placements_name_holders_and_free_devices() {
        let dm = manager();
        let p = dm.placements();
        assert_eq!(p.len(), 5);
        let held: Vec<&str> = p
            .iter()
            .filter(|d| d.holder.is_some())
            .map(|d| d.id.as_str())
            .collect();
        assert_eq!(held, vec!["nic-1", "nic-3"]);
        assert_eq!(p[1].holder, Some(("uid-a".to_string(), "c".to_string())));
        assert!(!p[4].healthy && p[4].holder.is_none());
    }
}
