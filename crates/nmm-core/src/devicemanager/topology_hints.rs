//! `GetTopologyHints` / `GetPodTopologyHints` (`devicemanager/topology_hints.go`): per
//! requested device resource, the NUMA masks with enough available devices; preferred
//! when of the minimal size all of the resource's devices could fill.

use super::index::ResourceIndex;
use super::DeviceManager;
use crate::bitmask::{iterate_masks, NumaMask};
use crate::pod::{ContainerInfo, PodInfo};
use crate::topology::hint::{ProviderHints, TopologyHint};
use smallvec::SmallVec;
use std::collections::{BTreeMap, BTreeSet};

/// A device count as the kubelet reads it (`int(quantity.Value())`).
fn count(q: &crate::quantity::Quantity) -> i64 {
    q.value()
}

/// A device resource, its count and its index (`None`: no device reported).
pub(super) type Request<'s, 'p> = (&'p String, i64, Option<&'s ResourceIndex>);

/// Device resources and counts, resources ascending (see
/// [`DeviceManager::pod_requests`]).
pub(super) type Requests<'s, 'p> = SmallVec<[Request<'s, 'p>; 4]>;

/// Who asks for hints, and what every resource's answer reads (see
/// [`DeviceManager::hint_query`]).
#[derive(Debug, Clone, Copy)]
pub(super) struct HintQuery<'a> {
    pod: &'a PodInfo,
    /// `None` for pod scope.
    c: Option<&'a ContainerInfo>,
    /// Whether the pod holds devices already (a pod admitted for the first time does not).
    holds: bool,
    /// The pod's reusable devices (container scope only).
    reuse: Option<&'a BTreeMap<String, BTreeSet<String>>>,
}

/// See [`DeviceManager::hint_inputs`].
pub(super) enum HintInputs<'a> {
    NoPreference,
    Unsatisfiable,
    Masks {
        x: &'a ResourceIndex,
        counted: Counted,
        reuse: Vec<NumaMask>,
    },
}

/// The devices a resource's hints count.
pub(super) enum Counted {
    /// The masks of the devices the container or pod holds already.
    Held(Vec<NumaMask>),
    /// The resource's available devices (healthy, not allocated).
    Available,
}

impl Counted {
    /// The counted devices' masks.
    pub(super) fn masks(&self, x: &ResourceIndex) -> Vec<NumaMask> {
        match self {
            Counted::Held(m) => m.clone(),
            Counted::Available => x.available_ones().map(|i| x.masks[i]).collect(),
        }
    }
}

/// The masks of the reusable devices that report a topology (`Topology != nil`).
fn reuse_masks(x: &ResourceIndex, reusable: &BTreeSet<String>) -> Vec<NumaMask> {
    reusable
        .iter()
        .filter_map(|d| x.pos(d).filter(|&i| x.has_topology.get(i)))
        .map(|i| x.masks[i])
        .collect()
}

impl DeviceManager {
    /// `getContainerDeviceRequest`: the container's device resources and counts (limits).
    pub fn container_device_request(&self, c: &ContainerInfo) -> BTreeMap<String, i64> {
        self.container_requests(c)
            .map(|(r, n, _)| (r.clone(), n))
            .collect()
    }

    /// [`DeviceManager::container_device_request`] without copying, resources ascending,
    /// each with its index (looked up once).
    pub(super) fn container_requests<'s, 'c>(
        &'s self,
        c: &'c ContainerInfo,
    ) -> impl Iterator<Item = Request<'s, 'c>> + use<'s, 'c> {
        c.limits.iter().filter_map(|(r, q)| {
            let b = self.plugin_books(r)?;
            Some((r, count(q), b.index.as_ref()))
        })
    }

    /// `getPodDeviceRequest`: `resource.PodLimits` restricted to device resources: the
    /// larger of the app containers plus sidecars, and the peak of any init container
    /// (with the sidecars started before it).
    pub fn pod_device_request(&self, pod: &PodInfo) -> BTreeMap<String, i64> {
        self.pod_requests(pod)
            .into_iter()
            .map(|(r, n, _)| (r.clone(), n))
            .collect()
    }

    /// [`DeviceManager::pod_device_request`] without copying: resources ascending.
    pub(super) fn pod_requests<'s, 'p>(&'s self, pod: &'p PodInfo) -> Requests<'s, 'p> {
        // Only device resources are summed (the others are dropped at the end anyway,
        // and sums and maxima are per resource). The lists are short: no heap.
        fn add<'s, 'p>(into: &mut Requests<'s, 'p>, from: impl Iterator<Item = Request<'s, 'p>>) {
            for (r, n, x) in from {
                match into.binary_search_by(|(y, _, _)| y.as_str().cmp(r)) {
                    Ok(k) => into[k].1 += n,
                    Err(k) => into.insert(k, (r, n, x)),
                }
            }
        }
        fn max_into<'s, 'p>(into: &mut Requests<'s, 'p>, from: &Requests<'s, 'p>) {
            for &(r, n, x) in from {
                match into.binary_search_by(|(y, _, _)| y.as_str().cmp(r)) {
                    Ok(k) => into[k].1 = into[k].1.max(n),
                    Err(k) => into.insert(k, (r, n, x)),
                }
            }
        }
        let mut reqs = Requests::new();
        // The usual pod: one app container, no init containers: its own request.
        if let [only] = pod.containers.as_slice() {
            if !only.init {
                reqs.extend(self.container_requests(only));
                return reqs;
            }
        }
        for c in pod.app_containers() {
            add(&mut reqs, self.container_requests(c));
        }
        let mut sidecars = Requests::new();
        let mut init_peak = Requests::new();
        for c in pod.init_containers() {
            let use_now = if c.restartable {
                add(&mut reqs, self.container_requests(c));
                add(&mut sidecars, self.container_requests(c));
                sidecars.clone()
            } else {
                let mut t: Requests<'s, 'p> = self.container_requests(c).collect();
                add(&mut t, sidecars.iter().copied());
                t
            };
            max_into(&mut init_peak, &use_now);
        }
        max_into(&mut reqs, &init_peak);
        reqs
    }

    /// `deviceHasTopologyAlignment`: some device of the resource has NUMA nodes.
    pub fn has_topology_alignment(&self, resource: &str) -> bool {
        self.index_of(resource).is_some_and(|x| x.aligned)
    }

    /// `getAvailableDevices`: healthy and not allocated.
    pub fn available_devices(&self, resource: &str) -> BTreeSet<String> {
        self.index_of(resource)
            .map(|x| x.available().ones().map(|i| x.ids[i].clone()).collect())
            .unwrap_or_default()
    }

    /// The device's NUMA mask (empty when unknown or without topology).
    pub(super) fn device_mask(&self, resource: &str, id: &str) -> NumaMask {
        self.index_of(resource)
            .and_then(|x| Some(x.masks[x.pos(id)?]))
            .unwrap_or(NumaMask::EMPTY)
    }

    /// `generateDeviceTopologyHints`, listing every mask in `IterateBitMasks` order.
    /// `available` and `reusable` are ids (reusable ones without topology do not count).
    pub fn generate_hints(
        &self,
        resource: &str,
        available: &BTreeSet<String>,
        reusable: &BTreeSet<String>,
        request: i64,
    ) -> Vec<TopologyHint> {
        let Some(x) = self.index_of(resource) else {
            return self.hints_of_masks(&[], &[], &[], request);
        };
        let avail: Vec<NumaMask> = available
            .iter()
            .map(|d| self.device_mask(resource, d))
            .collect();
        let reuse = reuse_masks(x, reusable);
        self.hints_of_masks(&x.masks, &avail, &reuse, request)
    }

    /// `generateDeviceTopologyHints` on masks: of every device of the resource, of the
    /// available ones and of the reusable ones with topology.
    fn hints_of_masks(
        &self,
        all_masks: &[NumaMask],
        avail_masks: &[NumaMask],
        reuse_masks: &[NumaMask],
        request: i64,
    ) -> Vec<TopologyHint> {
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

    /// What every resource's [`DeviceManager::hint_inputs`] reads, looked up once.
    pub(super) fn hint_query<'a>(
        &'a self,
        pod: &'a PodInfo,
        c: Option<&'a ContainerInfo>,
    ) -> HintQuery<'a> {
        HintQuery {
            pod,
            c,
            holds: self.pod_devices.has_pod(&pod.uid),
            reuse: c.and_then(|_| self.reuse.get(&pod.uid)),
        }
    }

    /// What one resource's hints are made of (shared by the listed and the described
    /// hints): no preference for a resource without topology, nothing when the request
    /// cannot be met, else the masks of the resource's devices, of the devices to count
    /// (the ones the container or pod holds already, or the available ones) and of the
    /// reusable ones with topology. `q.c` is `None` for pod scope (no init-container
    /// reuse).
    pub(super) fn hint_inputs<'s>(
        &self,
        q: &HintQuery<'_>,
        (resource, requested, x): Request<'s, '_>,
    ) -> HintInputs<'s> {
        let pod = q.pod;
        let Some(x) = x.filter(|x| x.aligned) else {
            return HintInputs::NoPreference;
        };
        // (A pod being admitted for the first time holds nothing: no look-up per resource.)
        let allocated = match q.c {
            _ if !q.holds => BTreeSet::new(),
            Some(c) => self
                .pod_devices
                .container_devices(&pod.uid, &c.name, resource)
                .unwrap_or_default(),
            None => self.pod_devices.pod_devices(&pod.uid, resource),
        };
        if !allocated.is_empty() {
            if allocated.len() as i64 != requested {
                return HintInputs::Unsatisfiable;
            }
            let held = allocated
                .iter()
                .map(|d| x.pos(d).map_or(NumaMask::EMPTY, |i| x.masks[i]))
                .collect();
            return HintInputs::Masks {
                x,
                counted: Counted::Held(held),
                reuse: Vec::new(),
            };
        }
        let reusable = q.reuse.and_then(|m| m.get(resource));
        let outside = reusable.map_or(0, |r| {
            r.iter()
                .filter(|d| !x.pos(d).is_some_and(|i| x.is_available(i)))
                .count()
        });
        if ((x.available_count() + outside) as i64) < requested {
            return HintInputs::Unsatisfiable;
        }
        HintInputs::Masks {
            x,
            counted: Counted::Available,
            reuse: reusable.map_or_else(Vec::new, |r| reuse_masks(x, r)),
        }
    }

    /// `GetTopologyHints` for one container.
    pub fn topology_hints(&self, pod: &PodInfo, c: &ContainerInfo) -> ProviderHints {
        let mut out = BTreeMap::new();
        let q = self.hint_query(pod, Some(c));
        for request in self.container_requests(c) {
            let hints = self.resource_hints(&q, request);
            out.insert(request.0.clone(), hints);
        }
        Some(out)
    }

    /// `GetPodTopologyHints`.
    pub fn pod_topology_hints(&self, pod: &PodInfo) -> ProviderHints {
        let mut out = BTreeMap::new();
        let q = self.hint_query(pod, None);
        for request in self.pod_requests(pod) {
            let hints = self.resource_hints(&q, request);
            out.insert(request.0.clone(), hints);
        }
        Some(out)
    }

    /// One resource's answer: `None` (no preference) for a resource without topology, an
    /// empty list when the request cannot be met, else the generated hints.
    fn resource_hints(
        &self,
        q: &HintQuery<'_>,
        request: Request<'_, '_>,
    ) -> Option<Vec<TopologyHint>> {
        let requested = request.1;
        match self.hint_inputs(q, request) {
            HintInputs::NoPreference => None,
            HintInputs::Unsatisfiable => Some(Vec::new()),
            HintInputs::Masks { x, counted, reuse } => {
                let avail = counted.masks(x);
                Some(self.hints_of_masks(&x.masks, &avail, &reuse, requested))
            }
        }
    }
}
