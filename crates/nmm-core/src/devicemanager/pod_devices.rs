//! `podDevices`: which devices every container of every pod holds, per resource, with the
//! NUMA nodes they were recorded under and the plugin's stored `Allocate` response.

use super::ids::{ByNuma, IdSet};
use crate::vecmap::VecMap;
use std::collections::{BTreeMap, BTreeSet};

/// `deviceAllocateInfo`: device ids per NUMA node id (`-1`: no topology; a device on two
/// nodes is listed under both) and the marshalled `ContainerAllocateResponse`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AllocInfo {
    pub by_numa: ByNuma,
    pub alloc_resp: Vec<u8>,
}

impl AllocInfo {
    /// `DevicesPerNUMA.Devices()`: every id, once.
    pub fn ids(&self) -> IdSet {
        let mut sets = self.by_numa.values();
        match (sets.next(), sets.next()) {
            (None, _) => IdSet::new(),
            // The usual case: devices of one node (or none) only.
            (Some(one), None) => one.clone(),
            _ => self.by_numa.values().flatten().cloned().collect(),
        }
    }

    /// [`AllocInfo::ids`] as a `BTreeSet`.
    pub fn devices(&self) -> BTreeSet<String> {
        self.ids().into_iter().collect()
    }
}

/// pod uid -> container name -> resource -> allocation.
pub type PodMap = crate::bypod::ByPod<crate::vecmap::VecMap<crate::vecmap::VecMap<AllocInfo>>>;

/// `set[r]`, created empty when missing (without allocating a key when present).
fn entry<'a>(set: &'a mut BTreeMap<String, BTreeSet<String>>, r: &str) -> &'a mut BTreeSet<String> {
    if !set.contains_key(r) {
        set.insert(r.to_string(), BTreeSet::new());
    }
    set.get_mut(r).expect("inserted above")
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PodDevices {
    pub devs: PodMap,
}

impl PodDevices {
    pub fn has_pod(&self, pod: &str) -> bool {
        self.devs.contains_key(pod)
    }

    pub fn insert(&mut self, pod: &str, container: &str, resource: &str, info: AllocInfo) {
        // Keys are copied only when new (a container's second resource reuses them).
        let resources = self.devs.get_or_default(pod).get_or_default(container);
        match resources.get_mut(resource) {
            Some(old) => *old = info,
            None => {
                resources.insert(resource.to_string(), info);
            }
        }
    }

    /// [`PodDevices::insert`] of every resource of one container (nothing when empty).
    pub fn insert_container(
        &mut self,
        pod: &str,
        container: &str,
        mut resources: VecMap<AllocInfo>,
    ) {
        if resources.is_empty() {
            return;
        }
        let containers = self.devs.get_or_default(pod);
        match containers.get_mut(container) {
            // A resource recorded before is replaced.
            Some(old) => old.append(&mut resources),
            None => {
                containers.insert(container.to_string(), resources);
            }
        }
    }

    pub fn delete(&mut self, pod: &str) -> bool {
        self.devs.remove(pod).is_some()
    }

    /// `containerDevices`: `None` when the container has no entry for the resource.
    pub fn container_devices(
        &self,
        pod: &str,
        container: &str,
        resource: &str,
    ) -> Option<BTreeSet<String>> {
        self.devs
            .get(pod)?
            .get(container)?
            .get(resource)
            .map(AllocInfo::devices)
    }

    /// `podDevices`: the union over the pod's containers.
    pub fn pod_devices(&self, pod: &str, resource: &str) -> BTreeSet<String> {
        self.devs
            .get(pod)
            .into_iter()
            .flat_map(|c| c.values())
            .filter_map(|r| r.get(resource))
            .flat_map(AllocInfo::devices)
            .collect()
    }

    /// Everything one container holds: resource -> ids.
    pub fn container_all(&self, pod: &str, container: &str) -> VecMap<IdSet> {
        let Some(held) = self.devs.get(pod).and_then(|c| c.get(container)) else {
            return VecMap::new();
        };
        let mut out = VecMap::new();
        out.reserve_exact(held.len());
        // In order already: each insert appends.
        for (k, v) in held {
            out.insert(k.clone(), v.ids());
        }
        out
    }

    /// `addContainerAllocatedResources`: add the container's devices to `set`.
    pub fn add_container_to(
        &self,
        pod: &str,
        container: &str,
        set: &mut BTreeMap<String, BTreeSet<String>>,
    ) {
        for (r, info) in self.container_resources(pod, container) {
            let e = entry(set, r);
            e.extend(info.by_numa.values().flatten().cloned());
        }
    }

    /// `removeContainerAllocatedResources`: take the container's devices out of `set`.
    pub fn remove_container_from(
        &self,
        pod: &str,
        container: &str,
        set: &mut BTreeMap<String, BTreeSet<String>>,
    ) {
        for (r, info) in self.container_resources(pod, container) {
            if let Some(e) = set.get_mut(r) {
                for id in info.by_numa.values().flatten() {
                    e.remove(id);
                }
            }
        }
    }

    /// One container's allocations by resource.
    fn container_resources(
        &self,
        pod: &str,
        container: &str,
    ) -> impl Iterator<Item = (&String, &AllocInfo)> {
        self.devs
            .get(pod)
            .and_then(|c| c.get(container))
            .into_iter()
            .flatten()
    }

    /// `devices()`: resource -> every id any container holds (the allocated devices).
    pub fn devices(&self) -> BTreeMap<String, BTreeSet<String>> {
        let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        // A union: the order of the pods does not matter.
        for containers in self.devs.values_any_order() {
            for resources in containers.values() {
                for (r, info) in resources {
                    out.entry(r.clone()).or_default().extend(info.devices());
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(pairs: &[(i64, &[&str])]) -> AllocInfo {
        AllocInfo {
            by_numa: pairs
                .iter()
                .map(|(n, ids)| (*n, ids.iter().map(|s| s.to_string()).collect()))
                .collect(),
            alloc_resp: Vec::new(),
        }
    }

    #[test]
    fn container_pod_and_all_devices() {
        let mut p = PodDevices::default();
        p.insert("p", "init", "r", info(&[(0, &["a"]), (1, &["a", "b"])]));
        p.insert("p", "app", "r", info(&[(-1, &["c"])]));
        p.insert("q", "x", "s", info(&[(0, &["z"])]));
        let ids = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<BTreeSet<_>>();
        assert_eq!(
            p.container_devices("p", "init", "r"),
            Some(ids(&["a", "b"]))
        );
        assert_eq!(p.container_devices("p", "init", "s"), None);
        assert_eq!(p.container_devices("p", "nope", "r"), None);
        assert_eq!(p.pod_devices("p", "r"), ids(&["a", "b", "c"]));
        let all = p.devices();
        assert_eq!(all["r"], ids(&["a", "b", "c"]));
        assert_eq!(all["s"], ids(&["z"]));
        let mut reuse = BTreeMap::new();
        p.add_container_to("p", "init", &mut reuse);
        assert_eq!(reuse["r"], ids(&["a", "b"]));
        p.insert("p", "app", "r", info(&[(0, &["a"])]));
        p.remove_container_from("p", "app", &mut reuse);
        assert_eq!(reuse["r"], ids(&["b"]));
        assert!(p.delete("p"));
        assert!(!p.has_pod("p"));
        assert!(!p.delete("p"));
    }

    #[test]
    fn a_containers_records_go_in_together_as_single_inserts_would() {
        let ids = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<BTreeSet<_>>();
        let mut p = PodDevices::default();
        p.insert_container("p", "c", VecMap::new());
        assert!(!p.has_pod("p"), "nothing to record: no pod entry");
        p.insert("p", "c", "r", info(&[(0, &["a"])]));
        p.insert("p", "c", "s", info(&[(0, &["s0"])]));
        let more = VecMap::from([
            ("r".to_string(), info(&[(1, &["b"])])),
            ("t".to_string(), info(&[(-1, &["t0"])])),
        ]);
        let mut single = p.clone();
        for (r, i) in &more {
            single.insert("p", "c", r, i.clone());
        }
        p.insert_container("p", "c", more.clone());
        assert_eq!(p, single);
        assert_eq!(p.container_devices("p", "c", "r"), Some(ids(&["b"])));
        assert_eq!(p.container_devices("p", "c", "s"), Some(ids(&["s0"])));
        p.insert_container("q", "d", more);
        assert_eq!(p.container_devices("q", "d", "t"), Some(ids(&["t0"])));
    }
}
