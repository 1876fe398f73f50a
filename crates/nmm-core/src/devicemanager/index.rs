//! Per-resource device indices, so that an admission works on integers: the ids of a
//! resource sorted once at registration (bytewise, the order of the `BTreeSet<String>`s the
//! books keep), each device's NUMA mask, and bit sets of the healthy and the allocated
//! devices by position. The string books in [`DeviceManager`] stay the truth for the
//! devices (checkpoint, renderers); the devices in use (`allocatedDevices`) are the
//! allocated bits of the index plus, by id, the ids the index does not have (devices of a
//! checkpoint no plugin reports): `DeviceManager::mark_allocated` and the picks of
//! `devicesToAllocate` add to them, every wholesale change goes through `DeviceManager::set_allocated`, and
//! `DeviceManager::allocated_ids` reads the whole set.

use super::{Device, DeviceManager};
use crate::bitmask::NumaMask;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

/// A set of device positions, one bit each.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Bits(Vec<u64>);

impl Bits {
    pub fn new(len: usize) -> Bits {
        Bits(vec![0; len.div_ceil(64)])
    }

    pub fn set(&mut self, i: usize) {
        self.0[i / 64] |= 1 << (i % 64);
    }

    pub fn get(&self, i: usize) -> bool {
        self.0.get(i / 64).is_some_and(|w| w & (1 << (i % 64)) != 0)
    }

    pub fn count(&self) -> usize {
        self.0.iter().map(|w| w.count_ones() as usize).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.0.iter().all(|&w| w == 0)
    }

    /// `self & !other`.
    pub fn minus(&self, other: &Bits) -> Bits {
        Bits(
            self.0
                .iter()
                .enumerate()
                .map(|(i, w)| w & !other.0.get(i).copied().unwrap_or(0))
                .collect(),
        )
    }

    /// The positions set, ascending.
    pub fn ones(&self) -> impl Iterator<Item = usize> + '_ {
        self.0.iter().enumerate().flat_map(|(i, &w)| {
            let mut w = w;
            std::iter::from_fn(move || {
                if w == 0 {
                    return None;
                }
                let b = w.trailing_zeros() as usize;
                w &= w - 1;
                Some(i * 64 + b)
            })
        })
    }
}

/// One registered resource's devices by position (ids ascending): the facts fixed at
/// registration, shared by copies of the books (an admission on a copied node reads them
/// from warm memory), and the healthy and allocated bits, which change.
#[derive(Debug, Clone, Default)]
pub struct ResourceIndex {
    facts: Arc<IndexFacts>,
    pub healthy: Bits,
    /// Devices of this resource in the allocated books.
    pub allocated: Bits,
}

/// What a plugin's registration fixes of a resource's index (read through
/// [`ResourceIndex`]'s `Deref`).
#[derive(Debug, Default)]
pub struct IndexFacts {
    pub ids: Vec<String>,
    /// NUMA mask per device (empty without topology).
    pub masks: Vec<NumaMask>,
    /// `Topology != nil && len(Nodes) > 0`.
    pub has_nodes: Bits,
    /// Per NUMA node id, the devices with that node in their mask (empty past the last
    /// node with a device).
    pub by_node: Vec<Bits>,
    /// `Topology != nil`.
    pub has_topology: Bits,
    /// `deviceHasTopologyAlignment`: some device has NUMA nodes.
    pub aligned: bool,
    /// The machine's NUMA nodes (the universe of the resource's hint lists).
    pub universe: NumaMask,
    /// When no device has more than one NUMA node (NICs, GPUs): the device counts of the
    /// universe's nodes, largest first, summed (`fewest[k]`: the most devices `k + 1`
    /// nodes hold), so that `minAffinitySize` is a look-up instead of a search over the
    /// devices at every admission. `None` when some device has several nodes.
    pub fewest: Option<Vec<i64>>,
}

impl std::ops::Deref for ResourceIndex {
    type Target = IndexFacts;
    fn deref(&self) -> &IndexFacts {
        &self.facts
    }
}

impl ResourceIndex {
    /// The index of the devices a plugin reported (`all`: id -> device) on a machine of
    /// `universe`'s NUMA nodes.
    pub fn new(
        universe: NumaMask,
        all: &BTreeMap<String, Device>,
        healthy: Option<&BTreeSet<String>>,
        allocated: Option<&BTreeSet<String>>,
    ) -> ResourceIndex {
        let n = all.len();
        let mut f = IndexFacts {
            ids: Vec::with_capacity(n),
            masks: Vec::with_capacity(n),
            has_nodes: Bits::new(n),
            by_node: Vec::new(),
            has_topology: Bits::new(n),
            aligned: false,
            universe,
            fewest: None,
        };
        let mut healthy_bits = Bits::new(n);
        for (i, (id, d)) in all.iter().enumerate() {
            f.ids.push(id.clone());
            f.masks.push(d.mask());
            for node in d.mask().ids() {
                let node = node as usize;
                if f.by_node.len() <= node {
                    f.by_node.resize(node + 1, Bits::default());
                }
                if f.by_node[node].0.is_empty() {
                    f.by_node[node] = Bits::new(n);
                }
                f.by_node[node].set(i);
            }
            if d.has_nodes() {
                f.has_nodes.set(i);
                f.aligned = true;
            }
            if d.numa.is_some() {
                f.has_topology.set(i);
            }
            if healthy.is_some_and(|h| h.contains(id)) {
                healthy_bits.set(i);
            }
        }
        f.fewest = fewest_table(universe, &f.masks);
        let mut x = ResourceIndex {
            facts: Arc::new(f),
            healthy: healthy_bits,
            allocated: Bits::new(n),
        };
        x.set_allocated(allocated);
        x
    }

    /// The fewest nodes whose devices number at least `request` (0 for a request of 0
    /// or less), `None` when all of the universe's devices are too few; only for
    /// resources whose devices have one node each (else `None` outside).
    pub fn fewest_nodes(&self, request: i64) -> Option<Option<u32>> {
        let sums = self.fewest.as_ref()?;
        if request <= 0 {
            return Some(Some(0));
        }
        Some(
            sums.iter()
                .position(|&s| s >= request)
                .map(|k| k as u32 + 1),
        )
    }

    /// Whether a device with NUMA nodes has exactly one (the per-node counts describe
    /// the resource): [`ResourceIndex::fewest`] is `Some`.
    pub fn single_node(&self) -> bool {
        self.fewest.is_some()
    }

    /// The position of an id, if the plugin reports it.
    pub fn pos(&self, id: &str) -> Option<usize> {
        self.ids.binary_search_by(|x| x.as_str().cmp(id)).ok()
    }

    fn set_allocated(&mut self, allocated: Option<&BTreeSet<String>>) {
        self.allocated = Bits::new(self.ids.len());
        for id in allocated.into_iter().flatten() {
            if let Some(i) = self.pos(id) {
                self.allocated.set(i);
            }
        }
    }

    /// `getAvailableDevices`: healthy and not allocated.
    pub fn available(&self) -> Bits {
        self.healthy.minus(&self.allocated)
    }

    /// The positions of [`ResourceIndex::available`], ascending, without building it.
    pub fn available_ones(&self) -> AvailableOnes<'_> {
        AvailableOnes {
            healthy: &self.healthy.0,
            allocated: &self.allocated.0,
            k: 0,
            w: self.available_word(0),
        }
    }

    /// Word `k` of [`ResourceIndex::available`] (0 past the end).
    pub fn available_word(&self, k: usize) -> u64 {
        self.healthy.0.get(k).copied().unwrap_or(0) & !self.allocated.0.get(k).copied().unwrap_or(0)
    }

    /// How many devices are available (healthy and not allocated).
    pub fn available_count(&self) -> usize {
        self.healthy
            .0
            .iter()
            .enumerate()
            .map(|(k, &h)| {
                (h & !self.allocated.0.get(k).copied().unwrap_or(0)).count_ones() as usize
            })
            .sum()
    }

    /// Word `k` of the devices with NUMA nodes that meet `affinity` (`filterByAffinity`'s
    /// aligned devices, before availability).
    pub fn aligned_word(&self, affinity: NumaMask, k: usize) -> u64 {
        let mut w = 0;
        for n in affinity.ids() {
            if let Some(b) = self.by_node.get(n as usize) {
                w |= b.0.get(k).copied().unwrap_or(0);
            }
        }
        w & self.has_nodes.0.get(k).copied().unwrap_or(0)
    }

    /// Words of the available devices (healthy and not allocated), lowest first.
    pub fn available_words(&self) -> impl Iterator<Item = u64> + '_ {
        (0..self.healthy.0.len()).map(|k| self.available_word(k))
    }

    /// Whether a device is available (healthy and not allocated).
    pub fn is_available(&self, i: usize) -> bool {
        self.healthy.get(i) && !self.allocated.get(i)
    }
}

/// [`ResourceIndex::available_ones`]: the set bits of `healthy & !allocated`, word by word.
pub struct AvailableOnes<'a> {
    healthy: &'a [u64],
    allocated: &'a [u64],
    /// The word `w` is what is left of.
    k: usize,
    w: u64,
}

impl Iterator for AvailableOnes<'_> {
    type Item = usize;

    fn next(&mut self) -> Option<usize> {
        while self.w == 0 {
            self.k += 1;
            let h = *self.healthy.get(self.k)?;
            self.w = h & !self.allocated.get(self.k).copied().unwrap_or(0);
        }
        let b = self.w.trailing_zeros() as usize;
        self.w &= self.w - 1;
        Some(self.k * 64 + b)
    }
}

/// [`ResourceIndex::fewest`] of these device masks.
fn fewest_table(universe: NumaMask, masks: &[NumaMask]) -> Option<Vec<i64>> {
    let mut counts = [0i64; 64];
    for m in masks {
        if m.0 & m.0.wrapping_sub(1) != 0 {
            return None;
        }
        if !m.and(universe).is_empty() {
            counts[m.0.trailing_zeros() as usize] += 1;
        }
    }
    let mut per_node: Vec<i64> = counts.into_iter().filter(|&c| c > 0).collect();
    per_node.sort_unstable_by(|a, b| b.cmp(a));
    let mut sum = 0;
    for c in per_node.iter_mut() {
        sum += *c;
        *c = sum;
    }
    Some(per_node)
}

impl DeviceManager {
    /// The machine's NUMA nodes as a mask.
    pub(super) fn universe(&self) -> NumaMask {
        self.numa_nodes
            .iter()
            .fold(NumaMask::EMPTY, |m, &n| m.or(NumaMask::single(n)))
    }

    /// Rebuilds a resource's index from the books (after its plugin reported devices):
    /// the devices in use stay in use, whether the new index has them or not.
    pub(super) fn reindex(&mut self, resource: &str) {
        let in_use = self.allocated_ids(resource);
        let x = self.all.get(resource).map(|all| {
            ResourceIndex::new(
                self.universe(),
                all,
                self.healthy_ids(resource),
                in_use.as_ref(),
            )
        });
        if x.is_some() || self.books.contains_key(resource) {
            self.books_mut(resource).index = x;
        }
        if let Some(ids) = in_use {
            let unindexed = self.unindexed(resource, ids);
            self.note_resource(resource);
            self.books_mut(resource).allocated_unindexed = Some(unindexed);
        }
    }

    /// The ids of `ids` the resource's index does not have.
    fn unindexed(&self, resource: &str, mut ids: BTreeSet<String>) -> BTreeSet<String> {
        if let Some(x) = self.index_of(resource) {
            ids.retain(|id| x.pos(id).is_none());
        }
        ids
    }

    /// Replaces the allocated books (`allocatedDevices`: resource -> ids in use).
    pub(super) fn set_allocated(&mut self, mut allocated: BTreeMap<String, BTreeSet<String>>) {
        for r in allocated.keys() {
            self.note_resource(r);
        }
        for (r, b) in self.books.iter_mut() {
            let ids = allocated.remove(r);
            if let Some(x) = b.index.as_mut() {
                x.set_allocated(ids.as_ref());
            }
            b.allocated_unindexed = ids.map(|mut ids| {
                if let Some(x) = &b.index {
                    ids.retain(|id| x.pos(id).is_none());
                }
                ids
            });
        }
        // Resources with allocations only (no index: every id is kept by name).
        for (r, ids) in allocated {
            self.books.entry(r).or_default().allocated_unindexed = Some(ids);
        }
    }

    /// `allocatedDevices[resource]`: every id in use (`None`: no entry).
    pub fn allocated_ids(&self, resource: &str) -> Option<BTreeSet<String>> {
        let b = self.books.get(resource)?;
        let mut ids = b.allocated_unindexed.clone()?;
        if let Some(x) = &b.index {
            ids.extend(x.allocated.ones().map(|i| x.ids[i].clone()));
        }
        Some(ids)
    }

    /// `allocatedDevices` whole (for tests and the reference path).
    #[cfg(test)]
    pub(super) fn allocated_books(&self) -> BTreeMap<String, BTreeSet<String>> {
        self.books
            .keys()
            .filter_map(|r| Some((r.clone(), self.allocated_ids(r)?)))
            .collect()
    }

    /// Gives the resource an `allocatedDevices` entry (empty if it had none).
    pub(super) fn ensure_allocated_entry(&mut self, resource: &str) {
        if self
            .books
            .get(resource)
            .is_none_or(|b| b.allocated_unindexed.is_none())
        {
            self.note_resource(resource);
            self.books_mut(resource).allocated_unindexed = Some(BTreeSet::new());
        }
    }

    /// Adds one id to the allocated books: its bit when the index has it, else by id.
    pub(super) fn mark_allocated(&mut self, resource: &str, id: &str) {
        self.ensure_allocated_entry(resource);
        let b = self.books_mut(resource);
        if let Some(x) = b.index.as_mut() {
            if let Some(i) = x.pos(id) {
                x.allocated.set(i);
                return;
            }
        }
        if let Some(ids) = b.allocated_unindexed.as_mut() {
            if !ids.contains(id) {
                ids.insert(id.to_string());
            }
        }
    }

    /// The index of a registered resource.
    pub(super) fn index_of(&self, resource: &str) -> Option<&ResourceIndex> {
        self.books.get(resource)?.index.as_ref()
    }

    /// Whether every index agrees with the books (for tests): built afresh from the
    /// devices and the ids in use it is the same, and no id kept by name is indexed.
    #[cfg(test)]
    pub(super) fn index_matches_books(&self) -> bool {
        let indexed: Vec<&String> = self
            .books
            .iter()
            .filter(|(_, b)| b.index.is_some())
            .map(|(r, _)| r)
            .collect();
        indexed == self.all.keys().collect::<Vec<_>>()
            && self.books.iter().all(|(r, b)| {
                let Some(x) = &b.index else {
                    return true;
                };
                let fresh = ResourceIndex::new(
                    self.universe(),
                    &self.all[r],
                    self.healthy_ids(r),
                    self.allocated_ids(r).as_ref(),
                );
                fresh.ids == x.ids
                    && fresh.masks == x.masks
                    && fresh.healthy == x.healthy
                    && fresh.allocated == x.allocated
                    && fresh.has_nodes == x.has_nodes
                    && fresh.by_node == x.by_node
                    && fresh.has_topology == x.has_topology
                    && fresh.aligned == x.aligned
                    && fresh.universe == x.universe
                    && fresh.fewest == x.fewest
                    && (b.allocated_unindexed.is_some() || x.allocated.is_empty())
            })
            && self.books.iter().all(|(r, b)| {
                (b.healthy.is_none() && b.allocated_unindexed.is_none())
                    || self.resource_lens & Self::len_bit(r) != 0
            })
            && self.books.values().all(|b| {
                b.allocated_unindexed
                    .iter()
                    .flatten()
                    .all(|id| b.index.as_ref().is_none_or(|x| x.pos(id).is_none()))
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bits_set_count_ones_minus() {
        let mut a = Bits::new(130);
        for i in [0, 5, 63, 64, 129] {
            a.set(i);
        }
        assert_eq!(a.count(), 5);
        assert!(a.get(63) && a.get(64) && !a.get(65) && !a.get(1000));
        assert_eq!(a.ones().collect::<Vec<_>>(), vec![0, 5, 63, 64, 129]);
        let mut b = Bits::new(130);
        b.set(5);
        b.set(129);
        assert_eq!(a.minus(&b).ones().collect::<Vec<_>>(), vec![0, 63, 64]);
        assert!(!a.is_empty() && Bits::new(3).is_empty());
    }

    #[test]
    fn index_orders_ids_bytewise_and_finds_them() {
        let dev = |id: &str, numa: Option<Vec<u32>>| Device {
            resource: "r".into(),
            id: id.into(),
            numa,
            healthy: true,
        };
        let all: BTreeMap<String, Device> = [
            dev("d2", Some(vec![1])),
            dev("d10", Some(vec![])),
            dev("d1", None),
        ]
        .into_iter()
        .map(|d| (d.id.clone(), d))
        .collect();
        let healthy: BTreeSet<String> = ["d2".to_string(), "d1".to_string()].into();
        let used: BTreeSet<String> = ["d2".to_string(), "gone".to_string()].into();
        let x = ResourceIndex::new(NumaMask(0b11), &all, Some(&healthy), Some(&used));
        assert_eq!(x.ids, vec!["d1", "d10", "d2"]);
        assert_eq!(x.pos("d2"), Some(2));
        assert_eq!(x.pos("gone"), None);
        assert!(x.aligned);
        assert_eq!(x.has_nodes.ones().collect::<Vec<_>>(), vec![2]);
        assert_eq!(x.has_topology.ones().collect::<Vec<_>>(), vec![1, 2]);
        assert_eq!(x.available().ones().collect::<Vec<_>>(), vec![0]);
        assert_eq!(x.available_ones().collect::<Vec<_>>(), vec![0]);
        assert!(x.is_available(0) && !x.is_available(1) && !x.is_available(2));
    }

    /// One change of the books in [`allocated_books_are_a_plain_map`].
    #[derive(Debug, Clone)]
    enum BooksOp {
        /// A plugin reports these of the ids (bits), healthy ones per bit.
        Register(usize, u8, u8),
        /// `allocatedDevices` replaced: per resource, no entry or these ids.
        Set(Vec<Option<u8>>),
        Mark(usize, usize),
        Ensure(usize),
        /// A container takes devices through `devicesToAllocate` (by position).
        Pick(usize, i64),
    }

    const RS: [&str; 2] = ["example.com/nic", "nvidia.com/gpu"];
    const IDS: [&str; 6] = ["d2", "d10", "d1", "e", "gone", "d0"];

    fn ids_of(bits: u8) -> BTreeSet<String> {
        (0..IDS.len())
            .filter(|i| bits & (1 << i) != 0)
            .map(|i| IDS[i].to_string())
            .collect()
    }

    fn books_op() -> impl proptest::strategy::Strategy<Value = BooksOp> {
        use proptest::prelude::*;
        prop_oneof![
            (0..2usize, any::<u8>(), any::<u8>()).prop_map(|(r, a, h)| BooksOp::Register(r, a, h)),
            proptest::collection::vec(proptest::option::of(any::<u8>()), 2).prop_map(BooksOp::Set),
            (0..2usize, 0..IDS.len()).prop_map(|(r, i)| BooksOp::Mark(r, i)),
            (0..2usize).prop_map(BooksOp::Ensure),
            (0..2usize, 1..3i64).prop_map(|(r, n)| BooksOp::Pick(r, n)),
        ]
    }

    proptest::proptest! {
        /// `allocatedDevices` kept as index bits plus unindexed ids reads as the plain
        /// map of id sets it stands for, through registrations that add and drop ids,
        /// wholesale replacements, single marks and picks; the indices stay fresh and
        /// `isDevicePluginResource` follows the entries.
        #[test]
        fn allocated_books_are_a_plain_map(
            ops in proptest::collection::vec(books_op(), 1..20),
        ) {
            let mut m = DeviceManager {
                numa_nodes: vec![0, 1],
                ..Default::default()
            };
            let mut model: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
            let mut healthy: BTreeSet<String> = BTreeSet::new();
            for op in ops {
                match op {
                    BooksOp::Register(r, present, good) => {
                        let devices: Vec<Device> = (0..IDS.len())
                            .filter(|i| present & (1 << i) != 0)
                            .map(|i| Device {
                                resource: RS[r].into(),
                                id: IDS[i].into(),
                                numa: Some(vec![(i % 2) as u32]),
                                healthy: good & (1 << i) != 0,
                            })
                            .collect();
                        m.register(RS[r], &devices);
                        healthy.insert(RS[r].to_string());
                    }
                    BooksOp::Set(per) => {
                        model = per
                            .iter()
                            .enumerate()
                            .filter_map(|(r, bits)| Some((RS[r].to_string(), ids_of((*bits)?))))
                            .collect();
                        m.set_allocated(model.clone());
                    }
                    BooksOp::Mark(r, i) => {
                        m.mark_allocated(RS[r], IDS[i]);
                        model.entry(RS[r].to_string()).or_default().insert(IDS[i].to_string());
                    }
                    BooksOp::Ensure(r) => {
                        m.ensure_allocated_entry(RS[r]);
                        model.entry(RS[r].to_string()).or_default();
                    }
                    BooksOp::Pick(r, n) => {
                        let none = BTreeSet::new();
                        let hint = crate::topology::hint::TopologyHint::NONE;
                        // The resource gets its entry once it has healthy devices, whether
                        // enough are available or not (`allocateRemainingFrom`).
                        match m.pick_devices("p", "c", RS[r], n, &none, hint) {
                            Ok(p) => {
                                let x = m.index_of(RS[r]).expect("picked from an index");
                                let got: BTreeSet<String> =
                                    p.positions.iter().map(|&i| x.ids[i].clone()).collect();
                                model.entry(RS[r].to_string()).or_default().extend(got);
                            }
                            Err(e) if e.starts_with("requested number of devices unavailable") => {
                                model.entry(RS[r].to_string()).or_default();
                            }
                            Err(_) => {}
                        }
                    }
                }
                proptest::prop_assert_eq!(m.allocated_books(), model.clone());
                proptest::prop_assert!(m.index_matches_books());
                for r in RS {
                    proptest::prop_assert_eq!(
                        m.is_device_plugin_resource(r),
                        healthy.contains(r) || model.contains_key(r)
                    );
                }
            }
        }
    }
}
