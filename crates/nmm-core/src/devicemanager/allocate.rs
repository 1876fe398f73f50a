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
use super::{DeviceManager, NODE_WITHOUT_TOPOLOGY};
use crate::bitmask::NumaMask;
use crate::pod::{ContainerInfo, PodInfo};
use crate::topology::hint::TopologyHint;
use crate::vecmap::VecMap;
use smallvec::SmallVec;
use std::collections::{BTreeMap, BTreeSet};

/// `filterByAffinity`'s three groups of available devices.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Filtered {
    pub aligned: BTreeSet<String>,
    pub unaligned: BTreeSet<String>,
    pub no_affinity: BTreeSet<String>,
}

/// What `devicesToAllocate` picked: devices named by id (the reused ones), and devices
/// by position in the resource's index (the others), never the same device twice.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct Picked {
    pub ids: BTreeSet<String>,
    pub positions: SmallVec<[usize; 4]>,
}

impl Picked {
    /// Devices named by id only.
    pub fn ids(ids: BTreeSet<String>) -> Picked {
        Picked {
            ids,
            positions: SmallVec::new(),
        }
    }

    fn is_empty(&self) -> bool {
        self.ids.is_empty() && self.positions.is_empty()
    }
}

/// Why [`DeviceManager::allocate_each`] stopped.
enum Stop {
    /// `devicesToAllocate` failed.
    Error(String),
    /// The resource's plugin is unknown or stopped (the picks are undone).
    Endpoint(String),
}

/// The signature of [`DeviceManager::pick_devices`].
pub(super) type DevicesToAllocate = fn(
    &mut DeviceManager,
    &str,
    &str,
    &str,
    i64,
    &BTreeSet<String>,
    TopologyHint,
) -> Result<Picked, String>;

impl DeviceManager {
    /// `Allocate(pod, container)`.
    pub fn allocate_container(
        &mut self,
        pod: &PodInfo,
        c: &ContainerInfo,
        hint: TopologyHint,
    ) -> Result<(), String> {
        self.allocate_container_with(pod, c, hint, Self::pick_devices)
    }

    /// `Allocate` with a given `devicesToAllocate` (the tests compare two of them).
    pub(super) fn allocate_container_with(
        &mut self,
        pod: &PodInfo,
        c: &ContainerInfo,
        hint: TopologyHint,
        to_allocate: DevicesToAllocate,
    ) -> Result<(), String> {
        self.reuse.retain(|uid, _| *uid == pod.uid);
        let mut reuse = self.reuse.remove(&pod.uid).unwrap_or_default();
        let result = self.allocate_container_resources(pod, c, hint, &reuse, to_allocate);
        if result.is_ok() {
            if c.is_regular_init() {
                self.pod_devices
                    .add_container_to(&pod.uid, &c.name, &mut reuse);
            } else if !reuse.is_empty() {
                // Sidecars keep their devices; app containers have taken theirs.
                self.pod_devices
                    .remove_container_from(&pod.uid, &c.name, &mut reuse);
            }
        }
        // An empty entry would read as no reusable devices, as no entry does.
        if !reuse.is_empty() {
            self.reuse.insert(pod.uid.clone(), reuse);
        }
        result
    }

    /// `allocateContainerResources`: every device resource in the container's limits.
    /// The container's allocations are recorded in `podDevices` together once the loop
    /// stops (one look-up of the pod and the container instead of one per resource);
    /// nothing in the loop reads another resource's record, and an error stops it only
    /// after the record is made, so the books read as after the kubelet's per-resource
    /// inserts.
    fn allocate_container_resources(
        &mut self,
        pod: &PodInfo,
        c: &ContainerInfo,
        hint: TopologyHint,
        reuse: &BTreeMap<String, BTreeSet<String>>,
        to_allocate: DevicesToAllocate,
    ) -> Result<(), String> {
        let mut done = VecMap::new();
        let stopped = self.allocate_each(pod, c, hint, reuse, to_allocate, &mut done);
        self.pod_devices.insert_container(&pod.uid, &c.name, done);
        match stopped {
            Ok(()) => Ok(()),
            Err(Stop::Error(e)) => Err(e),
            Err(Stop::Endpoint(e)) => {
                // The devices just picked go back: the books are what `podDevices` holds.
                self.set_allocated(self.pod_devices.devices());
                Err(e)
            }
        }
    }

    /// The loop of [`DeviceManager::allocate_container_resources`], its allocations into
    /// `done` (resource -> record).
    fn allocate_each(
        &mut self,
        pod: &PodInfo,
        c: &ContainerInfo,
        hint: TopologyHint,
        reuse: &BTreeMap<String, BTreeSet<String>>,
        to_allocate: DevicesToAllocate,
        done: &mut VecMap<AllocInfo>,
    ) -> Result<(), Stop> {
        // Go ranges over the limits map; sorted here (see the module comment).
        let empty = BTreeSet::new();
        // The record is kept in the books: room for each device resource, once.
        done.reserve_exact(
            c.limits
                .keys()
                .filter(|r| self.is_device_plugin_resource(r))
                .count(),
        );
        for (resource, q) in &c.limits {
            if !self.is_device_plugin_resource(resource) {
                continue;
            }
            let needed = q.value();
            let reusable = reuse.get(resource).unwrap_or(&empty);
            let devs = to_allocate(self, &pod.uid, &c.name, resource, needed, reusable, hint)
                .map_err(Stop::Error)?;
            if devs.is_empty() {
                continue;
            }
            let books = self.books.get(resource.as_str());
            match books.and_then(|b| b.endpoint) {
                None => return Err(Stop::Endpoint(format!("unknown Device Plugin {resource}"))),
                Some(false) => {
                    // A plugin known only from the checkpoint, not registered again.
                    return Err(Stop::Endpoint(format!(
                        "endpoint {resource} has been stopped"
                    )));
                }
                Some(true) => {}
            }
            let mut info = AllocInfo::default();
            let x = books.and_then(|b| b.index.as_ref());
            // The device's NUMA nodes (none: unknown, or without topology).
            let mut record = |d: String, mask: NumaMask| {
                let mut nodes = mask.ids().map(i64::from);
                let first = nodes.next().unwrap_or(NODE_WITHOUT_TOPOLOGY);
                for n in nodes {
                    info.by_numa.node_mut(n).insert(d.clone());
                }
                info.by_numa.node_mut(first).insert(d);
            };
            for d in devs.ids {
                let mask = x
                    .and_then(|x| Some(x.masks[x.pos(&d)?]))
                    .unwrap_or(NumaMask::EMPTY);
                record(d, mask);
            }
            if let Some(x) = x {
                for &i in &devs.positions {
                    record(x.ids[i].clone(), x.masks[i]);
                }
            }
            done.insert(resource.clone(), info);
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
        let picked = self.pick_devices(pod, container, resource, required, reusable, hint)?;
        let mut ids = picked.ids;
        if let Some(x) = self.index_of(resource) {
            ids.extend(picked.positions.iter().map(|&i| x.ids[i].clone()));
        }
        Ok(ids)
    }

    /// [`DeviceManager::devices_to_allocate`] naming the devices it takes from the index by
    /// position (see [`super::index`]): ids ascend with positions, so "the first ids of a
    /// set in sorted order" is "its lowest positions".
    pub(super) fn pick_devices(
        &mut self,
        pod: &str,
        container: &str,
        resource: &str,
        required: i64,
        reusable: &BTreeSet<String>,
        hint: TopologyHint,
    ) -> Result<Picked, String> {
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
        let Some(books) = self.books.get_mut(resource).filter(|b| b.healthy.is_some()) else {
            return Err(format!("cannot allocate unregistered device {resource}"));
        };
        let healthy = books.healthy.as_ref().expect("filtered above");
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
            return Ok(Picked::default());
        }
        // The books get an entry for the resource, taken from or not (`allocateRemainingFrom`;
        // its name has a `healthyDevices` key, so its length is noted already).
        books.allocated_unindexed.get_or_insert_with(BTreeSet::new);
        // Reusable devices first (by id: they may be devices no plugin reports any more).
        let mut reused: BTreeSet<String> = BTreeSet::new();
        let index = if reusable.is_empty() {
            books.index.as_mut()
        } else {
            for d in reusable {
                if reused.contains(d) {
                    continue;
                }
                self.mark_allocated(resource, d);
                reused.insert(d.clone());
                needed -= 1;
                if needed == 0 {
                    return Ok(Picked::ids(reused));
                }
            }
            self.books.get_mut(resource).and_then(|b| b.index.as_mut())
        };
        // Healthy devices are reported ones, so a resource with healthy devices has an index.
        let Some(x) = index else {
            return Err(format!(
                "requested number of devices unavailable for {resource}. Requested: {needed}, Available: 0"
            ));
        };
        // `filterByAffinity`'s aligned devices: on a node of the hint's affinity (none
        // without an affinity or for a resource without topology).
        let affinity = hint.affinity.filter(|_| x.aligned);
        // The reused devices are allocated already, hence never available: the preferred
        // allocation (must-include: the devices chosen so far, then the lowest others
        // offered, up to `required` in all) adds the lowest `needed` offered positions:
        // the aligned ones first (only they are offered when there are more than
        // needed), then the lowest of the others. One pass over the words of available
        // devices finds both.
        let want = needed as usize;
        let mut chosen: SmallVec<[usize; 4]> = SmallVec::new();
        let mut others: SmallVec<[usize; 4]> = SmallVec::new();
        for (k, available) in x.available_words().enumerate() {
            let aligned = affinity.map_or(0, |a| available & x.aligned_word(a, k));
            take_lowest(aligned, k, want, &mut chosen);
            if chosen.len() == want {
                break;
            }
            take_lowest(available & !aligned, k, want, &mut others);
        }
        if chosen.len() < want {
            // No aligned devices enough: the others are all the rest (up to `want`).
            if chosen.len() + others.len() < want {
                let n_available = x.available_count();
                return Err(format!(
                    "requested number of devices unavailable for {resource}. Requested: {needed}, Available: {n_available}"
                ));
            }
            let more = want - chosen.len();
            chosen.extend_from_slice(&others[..more]);
        }
        if (chosen.len() as i64) < needed {
            // Not reached: at least `needed` devices are available.
            needed -= chosen.len() as i64;
            return Err(short(required, needed));
        }
        // Into the allocated books (the resource has its entry, see above): bits only.
        for &i in &chosen {
            x.allocated.set(i);
        }
        Ok(Picked {
            ids: reused,
            positions: chosen,
        })
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
        let Some(x) = self.index_of(resource) else {
            return Filtered {
                no_affinity: available.clone(),
                ..Default::default()
            };
        };
        let mut bits = super::index::Bits::new(x.ids.len());
        let mut unknown = BTreeSet::new();
        for d in available {
            match x.pos(d) {
                Some(i) => bits.set(i),
                None => {
                    unknown.insert(d.clone());
                }
            }
        }
        let p = filter_positions(x, &bits, hint);
        let ids = |v: &[usize]| v.iter().map(|&i| x.ids[i].clone()).collect();
        let mut f = Filtered {
            aligned: ids(&p.aligned),
            unaligned: ids(&p.unaligned),
            no_affinity: ids(&p.no_affinity),
        };
        // Devices no plugin reports have no topology.
        f.no_affinity.extend(unknown);
        f
    }
}

/// Adds the positions of word `k`'s set bits to `into`, lowest first, until it holds `want`.
fn take_lowest(mut w: u64, k: usize, want: usize, into: &mut SmallVec<[usize; 4]>) {
    while w != 0 && into.len() < want {
        into.push(k * 64 + w.trailing_zeros() as usize);
        w &= w - 1;
    }
}

/// [`Filtered`] by position, ascending.
#[derive(Debug, Default)]
struct FilteredPositions {
    aligned: Vec<usize>,
    unaligned: Vec<usize>,
    no_affinity: Vec<usize>,
}

fn filter_positions(
    x: &super::index::ResourceIndex,
    available: &super::index::Bits,
    hint: TopologyHint,
) -> FilteredPositions {
    let mut f = FilteredPositions::default();
    let affinity = match hint.affinity {
        Some(a) if x.aligned => a,
        _ => {
            f.no_affinity = available.ones().collect();
            return f;
        }
    };
    for i in available.ones() {
        if !x.has_nodes.get(i) {
            f.no_affinity.push(i);
        } else if !x.masks[i].and(affinity).is_empty() {
            f.aligned.push(i);
        } else {
            f.unaligned.push(i);
        }
    }
    f
}

#[cfg(test)]
pub(super) fn short_for_tests(required: i64, needed: i64) -> String {
    short(required, needed)
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
