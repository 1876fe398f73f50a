//! `GetTopologyHints` / `GetPodTopologyHints` (`devicemanager/topology_hints.go`): per
//! requested device resource, the NUMA masks with enough available devices; preferred
//! when of the minimal size all of the resource's devices could fill.

use super::DeviceManager;
use crate::bitmask::{iterate_masks, NumaMask};
use crate::pod::{ContainerInfo, PodInfo};
use crate::topology::hint::{ProviderHints, TopologyHint};
use std::collections::{BTreeMap, BTreeSet};

/// A device count as the kubelet reads it (`int(quantity.Value())`).
fn count(q: &crate::quantity::Quantity) -> i64 {
    q.value()
}

impl DeviceManager {
    /// `getContainerDeviceRequest`: the container's device resources and counts (limits).
    pub fn container_device_request(&self, c: &ContainerInfo) -> BTreeMap<String, i64> {
        c.limits
            .iter()
            .filter(|(r, _)| self.is_device_plugin_resource(r))
            .map(|(r, q)| (r.clone(), count(q)))
            .collect()
    }

    /// `getPodDeviceRequest`: `resource.PodLimits` restricted to device resources: the
    /// larger of the app containers plus sidecars, and the peak of any init container
    /// (with the sidecars started before it).
    pub fn pod_device_request(&self, pod: &PodInfo) -> BTreeMap<String, i64> {
        let add = |into: &mut BTreeMap<String, i64>, from: &BTreeMap<String, i64>| {
            for (k, v) in from {
                *into.entry(k.clone()).or_default() += v;
            }
        };
        let max_into = |into: &mut BTreeMap<String, i64>, from: &BTreeMap<String, i64>| {
            for (k, v) in from {
                let e = into.entry(k.clone()).or_insert(*v);
                if *v > *e {
                    *e = *v;
                }
            }
        };
        let limits = |c: &ContainerInfo| -> BTreeMap<String, i64> {
            c.limits
                .iter()
                .map(|(r, q)| (r.clone(), count(q)))
                .collect()
        };
        let mut reqs = BTreeMap::new();
        for c in pod.app_containers() {
            add(&mut reqs, &limits(c));
        }
        let mut sidecars = BTreeMap::new();
        let mut init_peak = BTreeMap::new();
        for c in pod.init_containers() {
            let l = limits(c);
            let use_now = if c.restartable {
                add(&mut reqs, &l);
                add(&mut sidecars, &l);
                sidecars.clone()
            } else {
                let mut t = l;
                add(&mut t, &sidecars);
                t
            };
            max_into(&mut init_peak, &use_now);
        }
        max_into(&mut reqs, &init_peak);
        reqs.retain(|r, _| self.is_device_plugin_resource(r));
        reqs
    }

    /// `deviceHasTopologyAlignment`: some device of the resource has NUMA nodes.
    pub fn has_topology_alignment(&self, resource: &str) -> bool {
        self.all
            .get(resource)
            .is_some_and(|m| m.values().any(|d| d.has_nodes()))
    }

    /// `getAvailableDevices`: healthy and not allocated.
    pub fn available_devices(&self, resource: &str) -> BTreeSet<String> {
        let healthy = self.healthy.get(resource);
        let used = self.allocated.get(resource);
        healthy
            .into_iter()
            .flatten()
            .filter(|d| !used.is_some_and(|u| u.contains(*d)))
            .cloned()
            .collect()
    }

    /// The device's NUMA mask (empty when unknown or without topology).
    pub(super) fn device_mask(&self, resource: &str, id: &str) -> NumaMask {
        self.all
            .get(resource)
            .and_then(|m| m.get(id))
            .map_or(NumaMask::EMPTY, |d| d.mask())
    }

    /// Whether the device reports a topology at all (`Topology != nil`).
    fn device_has_topology(&self, resource: &str, id: &str) -> bool {
        self.all
            .get(resource)
            .and_then(|m| m.get(id))
            .is_some_and(|d| d.numa.is_some())
    }

    /// `generateDeviceTopologyHints`, listing every mask in `IterateBitMasks` order.
    pub fn generate_hints(
        &self,
        resource: &str,
        available: &BTreeSet<String>,
        reusable: &BTreeSet<String>,
        request: i64,
    ) -> Vec<TopologyHint> {
        let all_masks: Vec<NumaMask> = self
            .all
            .get(resource)
            .map(|m| m.values().map(|d| d.mask()).collect())
            .unwrap_or_default();
        let avail_masks: Vec<NumaMask> = available
            .iter()
            .map(|d| self.device_mask(resource, d))
            .collect();
        let reuse_masks: Vec<NumaMask> = reusable
            .iter()
            .filter(|d| self.device_has_topology(resource, d))
            .map(|d| self.device_mask(resource, d))
            .collect();
        let mut min_size = self.numa_nodes.len() as u32;
        let mut hints = Vec::new();
        iterate_masks(&self.numa_nodes, |mask| {
            let in_mask = all_masks.iter().filter(|m| !m.and(mask).is_empty()).count() as i64;
            if in_mask >= request && mask.count() < min_size {
                min_size = mask.count();
            }
            if reuse_masks.iter().any(|m| m.and(mask).is_empty()) {
                return;
            }
            let matching = reuse_masks.len() as i64
                + avail_masks
                    .iter()
                    .filter(|m| !m.and(mask).is_empty())
                    .count() as i64;
            if matching < request {
                return;
            }
            hints.push(TopologyHint::new(mask, false));
        });
        for h in &mut hints {
            h.preferred = h.affinity.is_some_and(|m| m.count() == min_size);
        }
        hints
    }

    /// `GetTopologyHints` for one container.
    pub fn topology_hints(&self, pod: &PodInfo, c: &ContainerInfo) -> ProviderHints {
        let mut out = BTreeMap::new();
        for (resource, requested) in self.container_device_request(c) {
            out.insert(
                resource.clone(),
                self.resource_hints(pod, Some(c), &resource, requested),
            );
        }
        Some(out)
    }

    /// `GetPodTopologyHints`.
    pub fn pod_topology_hints(&self, pod: &PodInfo) -> ProviderHints {
        let mut out = BTreeMap::new();
        for (resource, requested) in self.pod_device_request(pod) {
            out.insert(
                resource.clone(),
                self.resource_hints(pod, None, &resource, requested),
            );
        }
        Some(out)
    }

    /// One resource's answer: `None` (no preference) for a resource without topology, an
    /// empty list when the request cannot be met, else the generated hints. `c` is `None`
    /// for pod scope (no init-container reuse there).
    fn resource_hints(
        &self,
        pod: &PodInfo,
        c: Option<&ContainerInfo>,
        resource: &str,
        requested: i64,
    ) -> Option<Vec<TopologyHint>> {
        if !self.has_topology_alignment(resource) {
            return None;
        }
        let allocated = match c {
            Some(c) => self
                .pod_devices
                .container_devices(&pod.uid, &c.name, resource)
                .unwrap_or_default(),
            None => self.pod_devices.pod_devices(&pod.uid, resource),
        };
        if !allocated.is_empty() {
            if allocated.len() as i64 != requested {
                return Some(Vec::new());
            }
            return Some(self.generate_hints(resource, &allocated, &BTreeSet::new(), requested));
        }
        let available = self.available_devices(resource);
        let reusable = match c {
            Some(_) => self.reusable(&pod.uid, resource),
            None => BTreeSet::new(),
        };
        if (available.union(&reusable).count() as i64) < requested {
            return Some(Vec::new());
        }
        Some(self.generate_hints(resource, &available, &reusable, requested))
    }
}
