//! What the device plugins report (`pluginapi.Device`) and how they answer
//! `GetPreferredAllocation`.

use crate::bitmask::NumaMask;
use std::collections::BTreeSet;

/// One device as its plugin reports it in `ListAndWatch`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Device {
    /// The extended resource the plugin serves (`example.com/nic`).
    pub resource: String,
    pub id: String,
    /// `TopologyInfo.Nodes`: `None` when the plugin reports no topology. `Some(vec![])`
    /// (a topology without nodes) behaves as the kubelet treats it: never inside a mask,
    /// allocated as a device without NUMA node.
    pub numa: Option<Vec<u32>>,
    pub healthy: bool,
}

impl Device {
    /// The device's NUMA nodes as a mask (empty without topology).
    pub fn mask(&self) -> NumaMask {
        self.numa
            .iter()
            .flatten()
            .fold(NumaMask::EMPTY, |m, &n| m.or(NumaMask::single(n)))
    }

    /// Topology with at least one node (`Topology != nil && len(Nodes) > 0`).
    pub fn has_nodes(&self) -> bool {
        self.numa.as_ref().is_some_and(|n| !n.is_empty())
    }
}

/// The `GetPreferredAllocation` answer of the scenario's plugins: the must-include ids,
/// then the lowest other available ids in bytewise order, until `size` ids are chosen.
/// (`devicesToAllocate` applies the same rule on device positions, see
/// [`super::index`]; this form is the tests' oracle.)
pub fn preferred_allocation(
    available: &BTreeSet<String>,
    must_include: &BTreeSet<String>,
    size: usize,
) -> BTreeSet<String> {
    let mut out: BTreeSet<String> = must_include.clone();
    for id in available {
        if out.len() >= size {
            break;
        }
        out.insert(id.clone());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(ids: &[&str]) -> BTreeSet<String> {
        ids.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn preferred_is_must_include_then_lowest_bytewise() {
        let avail = set(&["nic-2", "nic-10", "nic-1", "nic-3"]);
        assert_eq!(
            preferred_allocation(&avail, &set(&[]), 2),
            set(&["nic-1", "nic-10"])
        );
        assert_eq!(
            preferred_allocation(&avail, &set(&["nic-3"]), 2),
            set(&["nic-3", "nic-1"])
        );
        // Must-include ids are all kept even beyond the size.
        assert_eq!(
            preferred_allocation(&avail, &set(&["nic-3", "nic-2"]), 1),
            set(&["nic-3", "nic-2"])
        );
    }

    #[test]
    fn masks() {
        let d = Device {
            resource: "r".into(),
            id: "a".into(),
            numa: Some(vec![0, 3]),
            healthy: true,
        };
        assert_eq!(d.mask().to_vec(), vec![0, 3]);
        assert!(d.has_nodes());
        let e = Device {
            numa: Some(vec![]),
            ..d.clone()
        };
        assert!(!e.has_nodes());
        assert!(e.mask().is_empty());
        let f = Device { numa: None, ..d };
        assert!(!f.has_nodes());
    }
}
