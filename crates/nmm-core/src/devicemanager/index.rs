//! Per-resource device indices, so that an admission works on integers: the ids of a
//! resource sorted once at registration (bytewise, the order of the `BTreeSet<String>`s the
//! books keep), each device's NUMA mask, and bit sets of the healthy and the allocated
//! devices by position. The string books in [`DeviceManager`] stay the truth (checkpoint,
//! renderers); the allocated bits follow them: `DeviceManager::mark_allocated` sets both,
//! and every wholesale change of the books goes through `DeviceManager::set_allocated`.

use super::{Device, DeviceManager};
use crate::bitmask::NumaMask;
use std::collections::{BTreeMap, BTreeSet};

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

/// One registered resource's devices by position (ids ascending).
#[derive(Debug, Clone, Default)]
pub struct ResourceIndex {
    pub ids: Vec<String>,
    /// NUMA mask per device (empty without topology).
    pub masks: Vec<NumaMask>,
    /// `Topology != nil && len(Nodes) > 0`.
    pub has_nodes: Bits,
    /// `Topology != nil`.
    pub has_topology: Bits,
    pub healthy: Bits,
    /// Devices of this resource in the allocated books.
    pub allocated: Bits,
    /// `deviceHasTopologyAlignment`: some device has NUMA nodes.
    pub aligned: bool,
}

impl ResourceIndex {
    /// The index of the devices a plugin reported (`all`: id -> device).
    pub fn new(
        all: &BTreeMap<String, Device>,
        healthy: Option<&BTreeSet<String>>,
        allocated: Option<&BTreeSet<String>>,
    ) -> ResourceIndex {
        let n = all.len();
        let mut x = ResourceIndex {
            ids: Vec::with_capacity(n),
            masks: Vec::with_capacity(n),
            has_nodes: Bits::new(n),
            has_topology: Bits::new(n),
            healthy: Bits::new(n),
            allocated: Bits::new(n),
            aligned: false,
        };
        for (i, (id, d)) in all.iter().enumerate() {
            x.ids.push(id.clone());
            x.masks.push(d.mask());
            if d.has_nodes() {
                x.has_nodes.set(i);
                x.aligned = true;
            }
            if d.numa.is_some() {
                x.has_topology.set(i);
            }
            if healthy.is_some_and(|h| h.contains(id)) {
                x.healthy.set(i);
            }
        }
        x.set_allocated(allocated);
        x
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
    pub fn available_ones(&self) -> impl Iterator<Item = usize> + '_ {
        self.healthy.0.iter().enumerate().flat_map(|(k, &h)| {
            let mut w = h & !self.allocated.0.get(k).copied().unwrap_or(0);
            std::iter::from_fn(move || {
                if w == 0 {
                    return None;
                }
                let b = w.trailing_zeros() as usize;
                w &= w - 1;
                Some(k * 64 + b)
            })
        })
    }

    /// Whether a device is available (healthy and not allocated).
    pub fn is_available(&self, i: usize) -> bool {
        self.healthy.get(i) && !self.allocated.get(i)
    }
}

impl DeviceManager {
    /// Rebuilds a resource's index from the books (after its plugin reported devices).
    pub(super) fn reindex(&mut self, resource: &str) {
        match self.all.get(resource) {
            Some(all) => {
                let x = ResourceIndex::new(
                    all,
                    self.healthy.get(resource),
                    self.allocated.get(resource),
                );
                self.index.insert(resource.to_string(), x);
            }
            None => {
                self.index.remove(resource);
            }
        }
    }

    /// Replaces the allocated books (`allocatedDevices`) and their bits.
    pub(super) fn set_allocated(&mut self, allocated: BTreeMap<String, BTreeSet<String>>) {
        self.allocated = allocated;
        for (r, x) in self.index.iter_mut() {
            x.set_allocated(self.allocated.get(r));
        }
    }

    /// Adds one id to the allocated books and bits.
    pub(super) fn mark_allocated(&mut self, resource: &str, id: &str) {
        if let Some(x) = self.index.get_mut(resource) {
            if let Some(i) = x.pos(id) {
                x.allocated.set(i);
            }
        }
        match self.allocated.get_mut(resource) {
            Some(books) => {
                if !books.contains(id) {
                    books.insert(id.to_string());
                }
            }
            None => {
                self.allocated
                    .insert(resource.to_string(), [id.to_string()].into());
            }
        }
    }

    /// Adds devices of a registered resource, by position in its index, to the allocated
    /// books and bits.
    pub(super) fn mark_positions(&mut self, resource: &str, positions: &[usize]) {
        let Some(x) = self.index.get_mut(resource) else {
            return;
        };
        let books = match self.allocated.get_mut(resource) {
            Some(books) => books,
            None => self.allocated.entry(resource.to_string()).or_default(),
        };
        for &i in positions {
            x.allocated.set(i);
            books.insert(x.ids[i].clone());
        }
    }

    /// The index of a registered resource.
    pub(super) fn index_of(&self, resource: &str) -> Option<&ResourceIndex> {
        self.index.get(resource)
    }

    /// Whether every index agrees with the books (for tests).
    #[cfg(test)]
    pub(super) fn index_matches_books(&self) -> bool {
        let keys: Vec<&String> = self.index.keys().collect();
        keys == self.all.keys().collect::<Vec<_>>()
            && self.index.iter().all(|(r, x)| {
                let fresh =
                    ResourceIndex::new(&self.all[r], self.healthy.get(r), self.allocated.get(r));
                fresh.ids == x.ids
                    && fresh.masks == x.masks
                    && fresh.healthy == x.healthy
                    && fresh.allocated == x.allocated
                    && fresh.has_nodes == x.has_nodes
                    && fresh.has_topology == x.has_topology
                    && fresh.aligned == x.aligned
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
        let x = ResourceIndex::new(&all, Some(&healthy), Some(&used));
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
}
