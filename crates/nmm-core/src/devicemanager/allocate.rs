//! `Allocate` (`devicemanager/manager.go`): init-container reuse, then per device resource
//! `devicesToAllocate` — reused devices, the devices aligned with the container's stored
//! hint (the plugin's preferred allocation among them), then the rest — and the record in
//! `podDevices`.
//!
//! Where Go ranges over a set or map and takes the first few elements, the result could
//! depend on Go's random iteration order; nmm takes them in sorted order. The plugins'
//! `GetPreferredAllocation` answer removes that freedom in every case but two (more
//! reusable devices than needed; several resources of one container running short), which
//! the scenario format calls out.

use super::pod_devices::AllocInfo;
use super::types::preferred_allocation;
use super::{DeviceManager, NODE_WITHOUT_TOPOLOGY};
use crate::pod::{ContainerInfo, PodInfo};
use crate::topology::hint::TopologyHint;
use std::collections::{BTreeMap, BTreeSet};

/// `filterByAffinity`'s three groups of available devices.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Filtered {
    pub aligned: BTreeSet<String>,
    pub unaligned: BTreeSet<String>,
    pub no_affinity: BTreeSet<String>,
}

impl DeviceManager {
    /// `Allocate(pod, container)`.
    pub fn allocate_container(
        &mut self,
        pod: &PodInfo,
        c: &ContainerInfo,
        hint: TopologyHint,
    ) -> Result<(), String> {
        self.reuse.retain(|uid, _| *uid == pod.uid);
        let mut reuse = self.reuse.remove(&pod.uid).unwrap_or_default();
        let result = self.allocate_container_resources(pod, c, hint, &reuse);
        if result.is_ok() {
            if c.is_regular_init() {
                self.pod_devices
                    .add_container_to(&pod.uid, &c.name, &mut reuse);
            } else {
                // Sidecars keep their devices; app containers have taken theirs.
                self.pod_devices
                    .remove_container_from(&pod.uid, &c.name, &mut reuse);
            }
        }
        self.reuse.insert(pod.uid.clone(), reuse);
        result
    }

    /// `allocateContainerResources`: every device resource in the container's limits.
    fn allocate_container_resources(
        &mut self,
        pod: &PodInfo,
        c: &ContainerInfo,
        hint: TopologyHint,
        reuse: &BTreeMap<String, BTreeSet<String>>,
    ) -> Result<(), String> {
        // Go ranges over the limits map; sorted here (see the module comment).
        for (resource, q) in &c.limits {
            if !self.is_device_plugin_resource(resource) {
                continue;
            }
            let needed = q.value();
            let empty = BTreeSet::new();
            let reusable = reuse.get(resource).unwrap_or(&empty);
            let devs =
                self.devices_to_allocate(&pod.uid, &c.name, resource, needed, reusable, hint)?;
            if devs.is_empty() {
                continue;
            }
            if !self.endpoints.contains_key(resource.as_str()) {
                self.allocated = self.pod_devices.devices();
                return Err(format!("unknown Device Plugin {resource}"));
            }
            if self.endpoints.get(resource.as_str()) == Some(&false) {
                // A plugin known only from the checkpoint, not registered again.
                self.allocated = self.pod_devices.devices();
                return Err(format!("endpoint {resource} has been stopped"));
            }
            let mut info = AllocInfo::default();
            for d in &devs {
                let nodes = self
                    .all
                    .get(resource)
                    .and_then(|m| m.get(d))
                    .and_then(|dev| dev.numa.clone())
                    .unwrap_or_default();
                if nodes.is_empty() {
                    info.by_numa
                        .entry(NODE_WITHOUT_TOPOLOGY)
                        .or_default()
                        .insert(d.clone());
                }
                for n in nodes {
                    info.by_numa
                        .entry(i64::from(n))
                        .or_default()
                        .insert(d.clone());
                }
            }
            self.pod_devices.insert(&pod.uid, &c.name, resource, info);
        }
        Ok(())
    }

    /// `devicesToAllocate`: the ids to hand to the plugin's `Allocate` (empty: nothing to do).
    pub fn devices_to_allocate(
        &mut self,
        pod: &str,
        container: &str,
        resource: &str,
        required: i64,
        reusable: &BTreeSet<String>,
        hint: TopologyHint,
    ) -> Result<BTreeSet<String>, String> {
        let mut needed = required;
        let held = self.pod_devices.container_devices(pod, container, resource);
        if let Some(h) = &held {
            needed -= h.len() as i64;
            if needed != 0 {
                return Err(format!(
                    "pod {} container {} changed request for resource {} from {} to {}",
                    go_quote(pod),
                    go_quote(container),
                    go_quote(resource),
                    h.len(),
                    required
                ));
            }
        }
        // nmm models a kubelet whose sources are ready (no restart in progress), so the
        // "container already running" short cut never applies.
        let Some(healthy) = self.healthy.get(resource) else {
            return Err(format!("cannot allocate unregistered device {resource}"));
        };
        if healthy.is_empty() {
            return Err(format!(
                "no healthy devices present; cannot allocate unhealthy devices {resource}"
            ));
        }
        if held.as_ref().is_some_and(|h| !h.is_subset(healthy)) {
            return Err(format!(
                "previously allocated devices are no longer healthy; cannot allocate unhealthy devices {resource}"
            ));
        }
        if needed <= 0 {
            return Ok(BTreeSet::new());
        }
        let mut allocated: BTreeSet<String> = BTreeSet::new();
        // Reusable devices first.
        if self.take_from(resource, reusable, &mut allocated, &mut needed) {
            return Ok(allocated);
        }
        let available = self.available_devices(resource);
        if (available.len() as i64) < needed {
            return Err(format!(
                "requested number of devices unavailable for {resource}. Requested: {needed}, Available: {}",
                available.len()
            ));
        }
        let f = self.filter_by_affinity(resource, &available, hint);
        let size = required.max(0) as usize;
        if needed < f.aligned.len() as i64 {
            let offered: BTreeSet<String> = f.aligned.union(&allocated).cloned().collect();
            let preferred = preferred_allocation(&offered, &allocated, size);
            let pick: BTreeSet<String> = preferred.intersection(&f.aligned).cloned().collect();
            if self.take_from(resource, &pick, &mut allocated, &mut needed)
                || self.take_from(resource, &f.aligned, &mut allocated, &mut needed)
            {
                return Ok(allocated);
            }
            return Err(short(required, needed));
        }
        if self.take_from(resource, &f.aligned, &mut allocated, &mut needed) {
            return Ok(allocated);
        }
        let offered: BTreeSet<String> = available.union(&allocated).cloned().collect();
        let preferred = preferred_allocation(&offered, &allocated, size);
        let pick: BTreeSet<String> = preferred.intersection(&available).cloned().collect();
        if self.take_from(resource, &pick, &mut allocated, &mut needed)
            || self.take_from(resource, &f.unaligned, &mut allocated, &mut needed)
            || self.take_from(resource, &f.no_affinity, &mut allocated, &mut needed)
        {
            return Ok(allocated);
        }
        Err(short(required, needed))
    }

    /// `allocateRemainingFrom`: takes devices of `from` not taken yet (marking them
    /// allocated at once, as the kubelet does) until none is needed; true when done.
    fn take_from(
        &mut self,
        resource: &str,
        from: &BTreeSet<String>,
        allocated: &mut BTreeSet<String>,
        needed: &mut i64,
    ) -> bool {
        let books = self.allocated.entry(resource.to_string()).or_default();
        for d in from {
            if allocated.contains(d) {
                continue;
            }
            books.insert(d.clone());
            allocated.insert(d.clone());
            *needed -= 1;
            if *needed == 0 {
                return true;
            }
        }
        false
    }

    /// `filterByAffinity`: available devices on a node of the hint, on other nodes, and
    /// without topology. Without a hint affinity (or a NUMA-aware resource) all are the
    /// last group. A device on several nodes is aligned when any of them is in the hint.
    pub fn filter_by_affinity(
        &self,
        resource: &str,
        available: &BTreeSet<String>,
        hint: TopologyHint,
    ) -> Filtered {
        let mut f = Filtered::default();
        let affinity = match hint.affinity {
            Some(a) if self.has_topology_alignment(resource) => a,
            _ => {
                f.no_affinity = available.clone();
                return f;
            }
        };
        for d in available {
            let has_nodes = self
                .all
                .get(resource)
                .and_then(|m| m.get(d))
                .is_some_and(|dev| dev.has_nodes());
            let mask = self.device_mask(resource, d);
            if !has_nodes {
                f.no_affinity.insert(d.clone());
            } else if !mask.and(affinity).is_empty() {
                f.aligned.insert(d.clone());
            } else {
                f.unaligned.insert(d.clone());
            }
        }
        f
    }
}

fn short(required: i64, needed: i64) -> String {
    format!(
        "unexpectedly allocated less resources than required. Requested: {required}, Got: {}",
        required - needed
    )
}

/// Go's `%q` for the ids and names nmm handles (printable text; control characters and
/// quotes escaped).
pub(crate) fn go_quote(s: &str) -> String {
    let mut out = String::from("\"");
    for ch in s.chars() {
        match ch {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32))
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}
