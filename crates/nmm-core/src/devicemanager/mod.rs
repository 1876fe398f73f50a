//! Device Manager (`pkg/kubelet/cm/devicemanager`): the devices the device plugins
//! report, the Topology Manager's first hint provider, allocation of device-plugin
//! resources and the `kubelet_internal_checkpoint` state.
//!
//! * [`types`]: the plugins' devices and their `GetPreferredAllocation` answer.
//! * [`pod_devices`]: which container holds which devices.
//! * [`topology_hints`]: `GetTopologyHints` / `GetPodTopologyHints`.
//! * [`allocate`]: `Allocate` and `devicesToAllocate`.
//! * [`hint_family`]: the hint list described for large machines.
//! * [`index`]: per-resource device positions and bit sets (the admission's hot path).
//!
//! The checkpoint bytes live in [`crate::checkpoint::device`].

pub mod allocate;
pub mod hint_family;
pub mod ids;
pub mod index;
pub mod pod_devices;
pub mod topology_hints;
pub mod types;
pub mod view;

use crate::checkpoint::device::DeviceCheckpoint;
use crate::machine::Machine;
use crate::pod::{ContainerInfo, PodInfo};
use crate::topology::hint::{LargeHints, ProviderHints, TopologyHint};
use crate::topology::{HintProvider, ProviderError};
use crate::vecmap::VecMap;
use ids::IdSet;
use pod_devices::PodDevices;
use std::collections::{BTreeMap, BTreeSet};
pub use types::Device;

/// The checkpoint file, relative to the kubelet root directory.
pub const STATE_FILE: &str = "device-plugins/kubelet_internal_checkpoint";

/// The NUMA node id devices without topology are recorded under.
pub const NODE_WITHOUT_TOPOLOGY: i64 = -1;

#[derive(Debug, Clone, Default)]
pub struct DeviceManager {
    /// The machine's NUMA node ids (`numaNodes`).
    numa_nodes: Vec<u32>,
    /// resource -> id -> device, as the plugins last reported (`allDevices`).
    all: BTreeMap<String, BTreeMap<String, Device>>,
    unhealthy: BTreeMap<String, BTreeSet<String>>,
    /// Per resource, what an admission asks about it (one look-up): its keys in
    /// `healthyDevices`, `allocatedDevices` and `endpoints`, and its index.
    books: BTreeMap<String, Books>,
    pub pod_devices: PodDevices,
    /// `devicesToReuse`: pod uid -> resource -> ids its finished init containers left.
    reuse: BTreeMap<String, BTreeMap<String, BTreeSet<String>>>,
    /// Plugins in registration order.
    order: Vec<String>,
    /// Bit `len % 64` set for the length of every resource name that has had a
    /// `healthyDevices` or `allocatedDevices` key (never cleared): a name whose bit is clear
    /// (`cpu`, `memory` next to `nvidia.com/gpu`) is no device-plugin resource, without
    /// looking it up. Every key goes in through [`DeviceManager::note_resource`].
    resource_lens: u64,
    /// Describe hint lists instead of listing every mask.
    pub large: bool,
    /// Why the checkpoint could not be read (the kubelet logs it and starts empty).
    pub checkpoint_error: Option<String>,
}

/// One resource's entries in the Device Manager's maps (`None`: no key there).
#[derive(Debug, Clone, Default)]
struct Books {
    /// `healthyDevices[resource]`.
    healthy: Option<BTreeSet<String>>,
    /// `allocatedDevices[resource]` (the ids in use): the ids the index does not have
    /// (all of them without an index); the indexed ones are the index's allocated bits
    /// (see [`index`]).
    allocated_unindexed: Option<BTreeSet<String>>,
    /// `endpoints[resource]`: registered (`false`: known only from the checkpoint).
    endpoint: Option<bool>,
    /// A registered resource's devices by position, healthy and allocated bits.
    index: Option<index::ResourceIndex>,
}

impl DeviceManager {
    /// `NewManagerImpl`: knows the machine's NUMA nodes, nothing else yet.
    pub fn new(machine: &Machine) -> DeviceManager {
        DeviceManager {
            numa_nodes: machine.node_ids(),
            ..Default::default()
        }
    }

    /// `Start`'s `readCheckpoint`: pod devices from the checkpoint, every resource it
    /// names as a plugin that has not registered yet (no healthy devices). A checkpoint
    /// that fails to read is reported in [`DeviceManager::checkpoint_error`] and ignored,
    /// as the kubelet does ("Continue after failing to read checkpoint file").
    pub fn start(&mut self, checkpoint: Option<Result<DeviceCheckpoint, String>>) {
        match checkpoint {
            None => {}
            Some(Err(e)) => self.checkpoint_error = Some(e),
            Some(Ok(cp)) => {
                self.pod_devices = cp.pod_devices;
                self.set_allocated(self.pod_devices.devices());
                for r in cp.registered.keys() {
                    self.note_resource(r);
                    let b = self.books_mut(r);
                    b.healthy = Some(BTreeSet::new());
                    b.endpoint = Some(false);
                    self.unhealthy.insert(r.clone(), BTreeSet::new());
                }
            }
        }
    }

    /// A plugin registers and reports its devices (`genericDeviceUpdateCallback`).
    pub fn register(&mut self, resource: &str, devices: &[Device]) {
        let mut healthy = BTreeSet::new();
        let mut unhealthy = BTreeSet::new();
        let mut all = BTreeMap::new();
        for d in devices {
            if d.healthy {
                healthy.insert(d.id.clone());
            } else {
                unhealthy.insert(d.id.clone());
            }
            all.insert(d.id.clone(), d.clone());
        }
        self.note_resource(resource);
        self.books_mut(resource).healthy = Some(healthy);
        self.unhealthy.insert(resource.to_string(), unhealthy);
        self.all.insert(resource.to_string(), all);
        self.reindex(resource);
        if self.books_mut(resource).endpoint.replace(true).is_none()
            || !self.order.iter().any(|r| r == resource)
        {
            self.order.push(resource.to_string());
        }
    }

    /// Registers every plugin of a device list, in order of first appearance.
    pub fn register_all(&mut self, devices: &[Device]) {
        let mut order: Vec<&str> = Vec::new();
        for d in devices {
            if !order.contains(&d.resource.as_str()) {
                order.push(&d.resource);
            }
        }
        for r in order {
            let list: Vec<Device> = devices
                .iter()
                .filter(|d| d.resource == r)
                .cloned()
                .collect();
            self.register(r, &list);
        }
    }

    /// `isDevicePluginResource`: a registered resource or one with allocations.
    pub fn is_device_plugin_resource(&self, resource: &str) -> bool {
        self.plugin_books(resource).is_some()
    }

    /// The books of a device-plugin resource (`None` for any other).
    fn plugin_books(&self, resource: &str) -> Option<&Books> {
        if self.resource_lens & Self::len_bit(resource) == 0 {
            return None;
        }
        self.books
            .get(resource)
            .filter(|b| b.healthy.is_some() || b.allocated_unindexed.is_some())
    }

    /// The resource's books, made empty when it has none.
    fn books_mut(&mut self, resource: &str) -> &mut Books {
        if !self.books.contains_key(resource) {
            self.books.insert(resource.to_string(), Books::default());
        }
        self.books.get_mut(resource).expect("inserted above")
    }

    fn len_bit(resource: &str) -> u64 {
        1 << (resource.len() % 64)
    }

    /// A resource name is about to get a `healthyDevices` or `allocatedDevices` key.
    fn note_resource(&mut self, resource: &str) {
        self.resource_lens |= Self::len_bit(resource);
    }

    /// `UpdateAllocatedDevices` for a pod that is gone (removed, or rejected).
    pub fn remove_pod(&mut self, uid: &str) {
        if self.pod_devices.delete(uid) {
            self.set_allocated(self.pod_devices.devices());
        }
    }

    pub fn has_pod(&self, uid: &str) -> bool {
        self.pod_devices.has_pod(uid)
    }

    /// Pods the checkpoint named.
    pub fn pods(&self) -> Vec<String> {
        self.pod_devices.devs.keys().cloned().collect()
    }

    /// Whether any plugin is known (the scenario has devices or the checkpoint named some).
    pub fn is_active(&self) -> bool {
        self.books.values().any(|b| b.endpoint.is_some())
    }

    /// What one container holds: resource -> sorted ids.
    pub fn container_devices(&self, pod: &str, container: &str) -> VecMap<IdSet> {
        self.pod_devices.container_all(pod, container)
    }

    /// Every known device of a resource, healthy or not.
    pub fn devices_of(&self, resource: &str) -> impl Iterator<Item = &Device> {
        self.all.get(resource).into_iter().flat_map(|m| m.values())
    }

    /// Resources in registration order.
    pub fn resources(&self) -> &[String] {
        &self.order
    }

    pub fn healthy_ids(&self, resource: &str) -> Option<&BTreeSet<String>> {
        self.books.get(resource)?.healthy.as_ref()
    }

    /// `GetAllocatableDevices`: the healthy devices of every registered resource.
    pub fn allocatable_devices(&self) -> Vec<&Device> {
        self.all
            .iter()
            .flat_map(|(r, m)| {
                let h = self.healthy_ids(r);
                m.values()
                    .filter(move |d| h.is_some_and(|h| h.contains(&d.id)))
            })
            .collect()
    }

    /// The checkpoint content now (`writeCheckpoint`): pod devices and the healthy ids of
    /// every resource.
    pub fn checkpoint(&self) -> DeviceCheckpoint {
        DeviceCheckpoint {
            pod_devices: self.pod_devices.clone(),
            registered: self
                .books
                .iter()
                .filter_map(|(r, b)| Some((r.clone(), b.healthy.clone()?)))
                .collect(),
        }
    }

    /// The container's devices as `NUMA node -> ids` (for renderers).
    pub fn numa_of(&self, resource: &str, id: &str) -> Option<Vec<u32>> {
        self.all.get(resource)?.get(id)?.numa.clone()
    }
}

impl HintProvider for DeviceManager {
    fn name(&self) -> &'static str {
        "devices"
    }

    fn get_topology_hints(&mut self, pod: &PodInfo, c: &ContainerInfo) -> ProviderHints {
        self.topology_hints(pod, c)
    }

    fn get_pod_topology_hints(&mut self, pod: &PodInfo) -> ProviderHints {
        self.pod_topology_hints(pod)
    }

    fn get_topology_hint_families(&mut self, pod: &PodInfo, c: &ContainerInfo) -> LargeHints {
        self.topology_hint_families(pod, Some(c))
    }

    fn get_pod_topology_hint_families(&mut self, pod: &PodInfo) -> LargeHints {
        self.topology_hint_families(pod, None)
    }

    fn allocate(
        &mut self,
        pod: &PodInfo,
        c: &ContainerInfo,
        hint: TopologyHint,
    ) -> Result<(), ProviderError> {
        self.allocate_container(pod, c, hint)
            .map_err(ProviderError::plain)
    }
}

#[cfg(test)]
mod reference;
#[cfg(test)]
mod tests;
