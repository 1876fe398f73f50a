//! The Device Manager's admission on `BTreeSet<String>` id sets, as it was before the
//! per-resource indices ([`super::index`]): the oracle the property tests below hold the
//! fast path to (same hints, same described lists, same devices, same books, same errors).

use super::allocate::go_quote;
use super::types::preferred_allocation;
use super::*;
use crate::bitmask::{iterate_masks, NumaMask};
use crate::devicemanager::allocate::{Filtered, Picked};
use crate::devicemanager::hint_family::DeviceFamily;
use crate::topology::family::{HintFamily, LargeList};
use std::rc::Rc;

impl DeviceManager {
    fn reusable_ref(&self, pod: &str, resource: &str) -> BTreeSet<String> {
        self.reuse
            .get(pod)
            .and_then(|m| m.get(resource))
            .cloned()
            .unwrap_or_default()
    }

    /// `deviceHasTopologyAlignment`: some device of the resource has NUMA nodes.
    fn has_topology_alignment_ref(&self, resource: &str) -> bool {
        self.all
            .get(resource)
            .is_some_and(|m| m.values().any(|d| d.has_nodes()))
    }

    /// `getAvailableDevices`: healthy and not allocated.
    pub(super) fn available_devices_ref(&self, resource: &str) -> BTreeSet<String> {
        let healthy = self.healthy_ids(resource);
        let used = self.allocated_ids(resource);
        healthy
            .into_iter()
            .flatten()
            .filter(|d| !used.as_ref().is_some_and(|u| u.contains(*d)))
            .cloned()
            .collect()
    }

    /// The device's NUMA mask (empty when unknown or without topology).
    fn device_mask_ref(&self, resource: &str, id: &str) -> NumaMask {
        self.all
            .get(resource)
            .and_then(|m| m.get(id))
            .map_or(NumaMask::EMPTY, |d| d.mask())
    }

    /// Whether the device reports a topology at all (`Topology != nil`).
    fn device_has_topology_ref(&self, resource: &str, id: &str) -> bool {
        self.all
            .get(resource)
            .and_then(|m| m.get(id))
            .is_some_and(|d| d.numa.is_some())
    }

    /// `generateDeviceTopologyHints`, listing every mask in `IterateBitMasks` order.
    fn generate_hints_ref(
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
            .map(|d| self.device_mask_ref(resource, d))
            .collect();
        let reuse_masks: Vec<NumaMask> = reusable
            .iter()
            .filter(|d| self.device_has_topology_ref(resource, d))
            .map(|d| self.device_mask_ref(resource, d))
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

    /// One resource's answer: `None` (no preference) for a resource without topology, an
    /// empty list when the request cannot be met, else the generated hints. `c` is `None`
    /// for pod scope (no init-container reuse there).
    pub(super) fn resource_hints_ref(
        &self,
        pod: &PodInfo,
        c: Option<&ContainerInfo>,
        resource: &str,
        requested: i64,
    ) -> Option<Vec<TopologyHint>> {
        if !self.has_topology_alignment_ref(resource) {
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
            return Some(self.generate_hints_ref(
                resource,
                &allocated,
                &BTreeSet::new(),
                requested,
            ));
        }
        let available = self.available_devices_ref(resource);
        let reusable = match c {
            Some(_) => self.reusable_ref(&pod.uid, resource),
            None => BTreeSet::new(),
        };
        if (available.union(&reusable).count() as i64) < requested {
            return Some(Vec::new());
        }
        Some(self.generate_hints_ref(resource, &available, &reusable, requested))
    }

    /// [`DeviceManager::devices_to_allocate_ref`] in the shape `Allocate` takes: every
    /// device named by id.
    pub(super) fn pick_devices_ref(
        &mut self,
        pod: &str,
        container: &str,
        resource: &str,
        required: i64,
        reusable: &BTreeSet<String>,
        hint: TopologyHint,
    ) -> Result<Picked, String> {
        self.devices_to_allocate_ref(pod, container, resource, required, reusable, hint)
            .map(Picked::ids)
    }

    /// `devicesToAllocate`: the ids to hand to the plugin's `Allocate` (empty: nothing to do).
    pub(super) fn devices_to_allocate_ref(
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
        let Some(healthy) = self.healthy_ids(resource) else {
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
        if self.take_from_ref(resource, reusable, &mut allocated, &mut needed) {
            return Ok(allocated);
        }
        let available = self.available_devices_ref(resource);
        if (available.len() as i64) < needed {
            return Err(format!(
                "requested number of devices unavailable for {resource}. Requested: {needed}, Available: {}",
                available.len()
            ));
        }
        let f = self.filter_by_affinity_ref(resource, &available, hint);
        let size = required.max(0) as usize;
        if needed < f.aligned.len() as i64 {
            let offered: BTreeSet<String> = f.aligned.union(&allocated).cloned().collect();
            let preferred = preferred_allocation(&offered, &allocated, size);
            let pick: BTreeSet<String> = preferred.intersection(&f.aligned).cloned().collect();
            if self.take_from_ref(resource, &pick, &mut allocated, &mut needed)
                || self.take_from_ref(resource, &f.aligned, &mut allocated, &mut needed)
            {
                return Ok(allocated);
            }
            return Err(super::allocate::short_for_tests(required, needed));
        }
        if self.take_from_ref(resource, &f.aligned, &mut allocated, &mut needed) {
            return Ok(allocated);
        }
        let offered: BTreeSet<String> = available.union(&allocated).cloned().collect();
        let preferred = preferred_allocation(&offered, &allocated, size);
        let pick: BTreeSet<String> = preferred.intersection(&available).cloned().collect();
        if self.take_from_ref(resource, &pick, &mut allocated, &mut needed)
            || self.take_from_ref(resource, &f.unaligned, &mut allocated, &mut needed)
            || self.take_from_ref(resource, &f.no_affinity, &mut allocated, &mut needed)
        {
            return Ok(allocated);
        }
        Err(super::allocate::short_for_tests(required, needed))
    }

    /// `allocateRemainingFrom`: takes devices of `from` not taken yet (marking them
    /// allocated at once, as the kubelet does) until none is needed; true when done.
    fn take_from_ref(
        &mut self,
        resource: &str,
        from: &BTreeSet<String>,
        allocated: &mut BTreeSet<String>,
        needed: &mut i64,
    ) -> bool {
        self.ensure_allocated_entry(resource);
        for d in from {
            if allocated.contains(d) {
                continue;
            }
            self.mark_allocated(resource, d);
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
    fn filter_by_affinity_ref(
        &self,
        resource: &str,
        available: &BTreeSet<String>,
        hint: TopologyHint,
    ) -> Filtered {
        let mut f = Filtered::default();
        let affinity = match hint.affinity {
            Some(a) if self.has_topology_alignment_ref(resource) => a,
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
            let mask = self.device_mask_ref(resource, d);
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

    pub(super) fn resource_family_ref(
        &self,
        pod: &PodInfo,
        c: Option<&ContainerInfo>,
        resource: &str,
        requested: i64,
    ) -> Option<LargeList> {
        if !self.has_topology_alignment_ref(resource) {
            return None;
        }
        let allocated = match c {
            Some(c) => self
                .pod_devices
                .container_devices(&pod.uid, &c.name, resource)
                .unwrap_or_default(),
            None => self.pod_devices.pod_devices(&pod.uid, resource),
        };
        let (available, reusable) = if !allocated.is_empty() {
            if allocated.len() as i64 != requested {
                return Some(LargeList::Explicit(Vec::new()));
            }
            (allocated, BTreeSet::new())
        } else {
            let available = self.available_devices_ref(resource);
            let reusable = match c {
                Some(_) => self.reusable_ref(&pod.uid, resource),
                None => BTreeSet::new(),
            };
            if (available.union(&reusable).count() as i64) < requested {
                return Some(LargeList::Explicit(Vec::new()));
            }
            (available, reusable)
        };
        let universe = self
            .numa_nodes
            .iter()
            .fold(NumaMask::EMPTY, |m, &n| m.or(NumaMask::single(n)));
        let all: Vec<NumaMask> = self.devices_of(resource).map(|d| d.mask()).collect();
        let avail: Vec<NumaMask> = available
            .iter()
            .map(|d| self.device_mask_ref(resource, d))
            .collect();
        let reuse: Vec<NumaMask> = reusable
            .iter()
            .filter(|d| {
                self.devices_of(resource)
                    .any(|x| &x.id == *d && x.numa.is_some())
            })
            .map(|d| self.device_mask_ref(resource, d))
            .collect();
        let family = DeviceFamily::new(universe, &all, &avail, &reuse, requested);
        // No member at all (e.g. only topology-less devices left) is the kubelet's empty
        // list, which the policies read as "cannot satisfy" / "any node, not preferred".
        if family.min_size().is_none() {
            return Some(LargeList::Explicit(Vec::new()));
        }
        Some(LargeList::Family(Rc::new(family)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pod::QosClass;
    use crate::quantity::Quantity;
    use crate::topology::hint::TopologyHint;
    use proptest::prelude::*;

    /// Ids whose bytewise order differs from their numeric order.
    const IDS: [&str; 8] = ["d2", "d10", "d1", "e", "d11", "d0", "a9", "d100"];
    const RESOURCES: [&str; 2] = ["example.com/nic", "nvidia.com/gpu"];

    /// A device: 0 no topology, 1 a topology without nodes, else the nodes of `bits`.
    type DevSpec = (u8, u8, bool);

    #[derive(Debug, Clone)]
    enum Op {
        /// Containers (0 app, 1 init, 2 sidecar; count per resource) and the hint's nodes.
        Admit(Vec<(u8, Vec<u8>)>, u8),
        Remove(u8),
        /// A device of a resource changes health; the plugin reports its list again.
        Health(u8, u8),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => (
                prop::collection::vec((0u8..3, prop::collection::vec(0u8..4, 2)), 1..4),
                any::<u8>()
            )
                .prop_map(|(c, h)| Op::Admit(c, h)),
            1 => any::<u8>().prop_map(Op::Remove),
            1 => (0u8..2, 0u8..8).prop_map(|(r, d)| Op::Health(r, d)),
        ]
    }

    fn devices(nodes: u32, r: usize, specs: &[DevSpec]) -> Vec<Device> {
        specs
            .iter()
            .enumerate()
            .map(|(i, &(kind, bits, healthy))| {
                let on: Vec<u32> = (0..nodes).filter(|n| bits & (1 << n) != 0).collect();
                Device {
                    resource: RESOURCES[r].into(),
                    id: IDS[i].into(),
                    numa: match kind {
                        0 => None,
                        1 => Some(vec![]),
                        _ if on.is_empty() => Some(vec![0]),
                        _ => Some(on),
                    },
                    healthy,
                }
            })
            .collect()
    }

    fn pod(uid: &str, spec: &[(u8, Vec<u8>)]) -> PodInfo {
        let mut containers: Vec<ContainerInfo> = spec
            .iter()
            .enumerate()
            .map(|(i, (kind, counts))| {
                let limits: BTreeMap<String, Quantity> = counts
                    .iter()
                    .enumerate()
                    .filter(|(_, &n)| n > 0)
                    .map(|(r, &n)| {
                        let q = Quantity::parse(&n.to_string()).unwrap();
                        (RESOURCES[r].to_string(), q)
                    })
                    .collect();
                ContainerInfo {
                    name: format!("c{i}"),
                    init: *kind != 0,
                    restartable: *kind == 2,
                    requests: limits.clone(),
                    limits,
                }
            })
            .collect();
        // Init containers first, as the pod spec lists them.
        containers.sort_by_key(|c| !c.init);
        PodInfo {
            uid: uid.into(),
            name: uid.into(),
            namespace: "default".into(),
            qos: QosClass::Guaranteed,
            containers,
        }
    }

    fn same_list(a: &Option<LargeList>, b: &Option<LargeList>, nodes: &[u32]) -> bool {
        match (a, b) {
            (None, None) => true,
            (Some(LargeList::Explicit(x)), Some(LargeList::Explicit(y))) => x == y,
            (Some(LargeList::Family(f)), Some(LargeList::Family(g))) => {
                let mut same = f.universe() == g.universe()
                    && f.min_size() == g.min_size()
                    && f.preferred_sizes() == g.preferred_sizes();
                iterate_masks(nodes, |m| same &= f.get(m) == g.get(m));
                let all = 1u64 << nodes.len();
                for inn in 0..all {
                    for out in (0..all).filter(|o| o & inn == 0) {
                        for k in [None, Some(1), Some(2)] {
                            let (i, o) = (NumaMask(inn), NumaMask(out));
                            same &= f.extends(i, o, k) == g.extends(i, o, k);
                        }
                    }
                }
                same
            }
            _ => false,
        }
    }

    /// Hints (listed and described, container and pod scope) agree with the oracle.
    fn check_hints(m: &DeviceManager, p: &PodInfo, c: Option<&ContainerInfo>) {
        let requests = match c {
            Some(c) => m.container_device_request(c),
            None => m.pod_device_request(p),
        };
        let listed = match c {
            Some(c) => m.topology_hints(p, c),
            None => m.pod_topology_hints(p),
        }
        .unwrap();
        let described = m.topology_hint_families(p, c).unwrap();
        for (r, n) in requests {
            let want = m.resource_hints_ref(p, c, &r, n);
            assert_eq!(listed[&r], want, "{r} hints");
            let want = m.resource_family_ref(p, c, &r, n);
            assert!(same_list(&described[&r], &want, &m.numa_nodes), "{r}");
        }
    }

    /// The reusable devices as they read: empty sets and maps are no entries.
    fn reuse_view(m: &DeviceManager) -> BTreeMap<String, BTreeMap<String, BTreeSet<String>>> {
        m.reuse
            .iter()
            .map(|(p, rs)| {
                let rs: BTreeMap<String, BTreeSet<String>> = rs
                    .iter()
                    .filter(|(_, ids)| !ids.is_empty())
                    .map(|(r, ids)| (r.clone(), ids.clone()))
                    .collect();
                (p.clone(), rs)
            })
            .filter(|(_, rs)| !rs.is_empty())
            .collect()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// On random inventories and admission sequences, the indexed admission gives the
        /// same hints, devices, errors and books as the set-based one, and the indices
        /// stay equal to the books.
        #[test]
        fn indexed_admission_is_the_set_based_one(
            nodes in 1u32..5,
            inventory in prop::collection::vec(
                prop::collection::vec((0u8..4, any::<u8>(), prop::bool::weighted(0.8)), 0..8),
                2,
            ),
            ops in prop::collection::vec(op(), 1..12),
        ) {
            let mut m = DeviceManager {
                numa_nodes: (0..nodes).collect(),
                ..Default::default()
            };
            let mut inventory = inventory;
            for (r, specs) in inventory.iter().enumerate() {
                if !specs.is_empty() {
                    m.register(RESOURCES[r], &devices(nodes, r, specs));
                }
            }
            let mut pods = 0u32;
            for op in ops {
                match op {
                    Op::Remove(k) if pods > 0 => m.remove_pod(&format!("p{}", u32::from(k) % pods)),
                    Op::Remove(_) => {}
                    Op::Health(r, d) => {
                        let specs = &mut inventory[r as usize];
                        if let Some(s) = specs.get_mut(d as usize) {
                            s.2 = !s.2;
                            m.register(RESOURCES[r as usize], &devices(nodes, r as usize, specs));
                        }
                    }
                    Op::Admit(spec, bits) => {
                        let p = pod(&format!("p{pods}"), &spec);
                        pods += 1;
                        check_hints(&m, &p, None);
                        let mask = NumaMask(u64::from(bits) & ((1 << nodes) - 1));
                        let hint = if mask.is_empty() {
                            TopologyHint::NONE
                        } else {
                            TopologyHint::new(mask, true)
                        };
                        for c in &p.containers {
                            check_hints(&m, &p, Some(c));
                            let mut r = m.clone();
                            let want = r.allocate_container_with(
                                &p, c, hint, DeviceManager::pick_devices_ref,
                            );
                            let got = m.allocate_container(&p, c, hint);
                            prop_assert_eq!(&got, &want);
                            prop_assert_eq!(&m.pod_devices, &r.pod_devices);
                            prop_assert_eq!(m.allocated_books(), r.allocated_books());
                            prop_assert_eq!(reuse_view(&m), reuse_view(&r));
                            prop_assert!(m.index_matches_books());
                            for res in RESOURCES {
                                prop_assert_eq!(
                                    m.available_devices(res),
                                    m.available_devices_ref(res)
                                );
                            }
                            if got.is_err() {
                                m.remove_pod(&p.uid);
                                break;
                            }
                        }
                        // Pods with devices are admitted again after a removal sometimes:
                        // the held-devices path of the hints.
                        if m.has_pod(&p.uid) {
                            for c in &p.containers {
                                check_hints(&m, &p, Some(c));
                            }
                            check_hints(&m, &p, None);
                        }
                    }
                }
                prop_assert!(m.index_matches_books());
            }
        }
    }
}
