//! The CPU Manager's static policy: exclusive CPUs for Guaranteed containers with integer
//! CPU requests, NUMA hints for them, and topology-aware allocation.

use super::cpu_assignment::{CpuPacker, TakeOptions};
use super::hint_family::CpuHintFamily;
use super::options::StaticPolicyOptions;
use super::topology::CpuTopology;
use crate::bitmask::{iterate_masks, NumaMask};
use crate::cpuset::CpuSet;
use crate::pod::{ContainerInfo, PodInfo, QosClass};
use crate::topology::family::{HintFamily, LargeList};
use crate::topology::hint::{to_large, LargeHints, ProviderHints, TopologyHint};
use crate::topology::ProviderError;
use std::collections::BTreeMap;
use std::rc::Rc;
use std::sync::Arc;

pub type CpuAssignments = crate::bypod::ByPod<crate::vecmap::VecMap<CpuSet>>;

#[derive(Debug)]
struct NumaFacts {
    /// NUMA node of each CPU id (u32::MAX for ids the topology lacks).
    numa_of: Vec<u32>,
    /// CPUs per NUMA node.
    numa_totals: Vec<(u32, usize)>,
    /// The CPUs of each NUMA node.
    numa_cpus: Vec<(u32, CpuSet)>,
}

#[derive(Debug, Clone)]
pub struct StaticPolicy {
    pub topology: CpuTopology,
    pub options: StaticPolicyOptions,
    pub reserved: CpuSet,
    pub reserved_physical: CpuSet,
    pub default_set: CpuSet,
    pub assignments: CpuAssignments,
    /// CPUs of regular init containers the pod's later containers may take (in memory).
    cpus_to_reuse: BTreeMap<String, CpuSet>,
    /// Describe hint lists instead of listing them (large machines).
    pub large: bool,
    /// Fixed facts of the topology every admission reads; shared by copies of the
    /// policy (a copied node reads them from warm memory).
    numa: Arc<NumaFacts>,
    /// takeByTopology's index of `topology`, built once.
    packer: CpuPacker,
}

fn take_options(o: &StaticPolicyOptions) -> TakeOptions {
    TakeOptions {
        distribute_cpus_across_numa: o.distribute_cpus_across_numa,
        full_pcpus_only: o.full_physical_cpus_only,
        distribute_cpus_across_cores: o.distribute_cpus_across_cores,
        prefer_align_by_uncore_cache: o.prefer_align_by_uncore_cache,
    }
}

fn smt_error(message: String) -> ProviderError {
    ProviderError {
        kind: Some("SMTAlignmentError".into()),
        message,
    }
}

fn lookup(v: &[(u32, usize)], n: u32) -> usize {
    v.iter().find(|(id, _)| *id == n).map_or(0, |e| e.1)
}

/// `guaranteedCPUs`: the integer CPU request of a container of a Guaranteed pod, else 0.
pub fn guaranteed_cpus(pod: &PodInfo, c: &ContainerInfo) -> usize {
    if pod.qos != QosClass::Guaranteed {
        return 0;
    }
    match c.requests.get("cpu") {
        Some(q) if q.value().checked_mul(1000) == Some(q.milli_value()) && q.value() > 0 => {
            q.value() as usize
        }
        _ => 0,
    }
}

/// `podGuaranteedCPUs`.
pub fn pod_guaranteed_cpus(pod: &PodInfo) -> usize {
    let mut by_init = 0;
    let mut by_sidecars = 0;
    for c in pod.init_containers() {
        if !c.requests.contains_key("cpu") {
            continue;
        }
        let n = guaranteed_cpus(pod, c);
        if c.restartable {
            by_sidecars += n;
        } else if by_sidecars + n > by_init {
            by_init = by_sidecars + n;
        }
    }
    let by_app: usize = pod
        .app_containers()
        .filter(|c| c.requests.contains_key("cpu"))
        .map(|c| guaranteed_cpus(pod, c))
        .sum();
    by_init.max(by_app + by_sidecars)
}

impl StaticPolicy {
    /// `NewStaticPolicy` after option validation: the reserved set.
    pub fn new(
        topology: CpuTopology,
        options: StaticPolicyOptions,
        num_reserved: usize,
        reserved_cpus: &CpuSet,
    ) -> Result<StaticPolicy, String> {
        let packer = CpuPacker::new(&topology);
        let reserved = if !reserved_cpus.is_empty() {
            reserved_cpus.clone()
        } else {
            packer
                .take(&topology.all_cpus(), num_reserved, &take_options(&options))
                .unwrap_or_default()
        };
        if reserved.len() != num_reserved {
            return Err(format!(
                "[cpumanager] unable to reserve the required amount of CPUs (size of {reserved} did not equal {num_reserved})"
            ));
        }
        let reserved_physical = topology.core_siblings(&reserved).map_err(|id| {
            format!("[cpumanager] unable to build the reserved physical CPUs from the reserved set: unknown CPU ID: {id}")
        })?;
        let max_cpu = topology
            .cpus
            .keys()
            .next_back()
            .map_or(0, |&c| c as usize + 1);
        let mut numa_of = vec![u32::MAX; max_cpu];
        let mut totals: BTreeMap<u32, usize> = BTreeMap::new();
        for (&c, i) in &topology.cpus {
            numa_of[c as usize] = i.numa;
            *totals.entry(i.numa).or_default() += 1;
        }
        let numa_totals: Vec<(u32, usize)> = totals.into_iter().collect();
        let numa_cpus = numa_totals
            .iter()
            .map(|&(n, _)| (n, topology.cpus_in_numa_nodes(|x| x == n)))
            .collect();
        Ok(StaticPolicy {
            topology,
            options,
            reserved,
            reserved_physical,
            default_set: CpuSet::new(),
            assignments: CpuAssignments::new(),
            cpus_to_reuse: BTreeMap::new(),
            large: false,
            numa: Arc::new(NumaFacts {
                numa_of,
                numa_totals,
                numa_cpus,
            }),
            packer,
        })
    }

    /// `validateState` at start, on the restored (or empty) state.
    pub fn start(&mut self) -> Result<(), String> {
        let mut all = self.topology.all_cpus();
        if self.options.strict_cpu_reservation {
            all = all.difference(&self.reserved);
        }
        if self.default_set.is_empty() {
            if !self.assignments.is_empty() {
                return Err("default cpuset cannot be empty".into());
            }
            self.default_set = all;
            return Ok(());
        }
        let d = &self.default_set;
        if self.options.strict_cpu_reservation {
            if !self.reserved.intersection(d).is_empty() {
                return Err(format!(
                    "some of strictly reserved cpus: \"{}\" are present in defaultCpuSet: \"{d}\"",
                    self.reserved.intersection(d)
                ));
            }
        } else if self.reserved.intersection(d) != self.reserved {
            return Err(format!(
                "not all reserved cpus: \"{}\" are present in defaultCpuSet: \"{d}\"",
                self.reserved
            ));
        }
        for (pod, ctrs) in &self.assignments {
            for (ctr, set) in ctrs {
                if !d.intersection(set).is_empty() {
                    return Err(format!(
                        "pod: {pod}, container: {ctr} cpuset: \"{set}\" overlaps with default cpuset \"{d}\""
                    ));
                }
            }
        }
        let known = self
            .assignments
            .values()
            .flat_map(|m| m.values())
            .fold(d.clone(), |acc, s| acc.union(s));
        if known != all {
            return Err(format!(
                "current set of available CPUs \"{all}\" doesn't match with CPUs in state \"{known}\""
            ));
        }
        Ok(())
    }

    fn available(&self) -> CpuSet {
        self.default_set.difference(&self.reserved)
    }

    /// The pod's reusable init-container CPUs (none when it has no entry).
    fn reusable_cpus(&self, pod_uid: &str) -> &CpuSet {
        static NONE: CpuSet = CpuSet::EMPTY;
        self.cpus_to_reuse.get(pod_uid).unwrap_or(&NONE)
    }

    fn update_reuse(&mut self, pod: &PodInfo, c: &ContainerInfo, set: &CpuSet) {
        self.cpus_to_reuse.retain(|uid, _| uid == &pod.uid);
        if c.is_regular_init() {
            let e = self.cpus_to_reuse.entry(pod.uid.clone()).or_default();
            *e = e.union(set);
        } else if let Some(e) = self.cpus_to_reuse.get_mut(&pod.uid) {
            // (a missing entry is the empty set: nothing to take away)
            *e = e.difference(set);
        }
    }

    /// Sockets holding CPUs of the NUMA nodes of `m` (`align-by-socket`).
    fn sockets_of(&self, m: NumaMask) -> std::collections::BTreeSet<u32> {
        self.topology
            .cpus
            .values()
            .filter(|i| m.is_set(i.numa))
            .map(|i| i.socket)
            .collect()
    }

    /// Available CPUs per NUMA node, and the NUMA nodes of the reusable CPUs.
    fn numa_counts(&self, available: &CpuSet, reusable: &CpuSet) -> (Vec<(u32, usize)>, NumaMask) {
        let numa = |c: u32| {
            self.numa
                .numa_of
                .get(c as usize)
                .copied()
                .filter(|&n| n != u32::MAX)
        };
        // Per node: the available CPUs among its CPUs (ids the topology lacks count nowhere).
        let avail: Vec<(u32, usize)> = self
            .numa
            .numa_cpus
            .iter()
            .map(|(n, cpus)| (*n, available.intersection_len(cpus)))
            .collect();
        let reuse_mask = reusable
            .iter()
            .filter_map(numa)
            .fold(NumaMask::EMPTY, |m, n| m.or(NumaMask::single(n)));
        (avail, reuse_mask)
    }

    /// `generateCPUTopologyHints`.
    pub fn generate_hints(
        &self,
        available: &CpuSet,
        reusable: &CpuSet,
        request: usize,
    ) -> Vec<TopologyHint> {
        let nodes = self.topology.numa_nodes();
        let mut min_affinity = nodes.len() as u32;
        let mut hints = Vec::new();
        // CPUs per NUMA node, total and available.
        let (avail, reuse_mask) = self.numa_counts(available, reusable);
        let reusable_count = reusable.len();
        iterate_masks(&nodes, |mask| {
            let t: usize = mask.ids().map(|n| lookup(&self.numa.numa_totals, n)).sum();
            if t >= request && mask.count() < min_affinity {
                min_affinity = mask.count();
            }
            if !reuse_mask.is_subset_of(mask) {
                return;
            }
            let count = reusable_count + mask.ids().map(|n| lookup(&avail, n)).sum::<usize>();
            if count >= request {
                hints.push(TopologyHint::new(mask, false));
            }
        });
        let numa_per_socket = self
            .topology
            .num_numa_nodes
            .checked_div(self.topology.num_sockets)
            .unwrap_or(0);
        for h in &mut hints {
            let m = h.affinity.expect("generated with a mask");
            if m.count() == min_affinity {
                h.preferred = true;
            } else if self.options.align_by_socket && numa_per_socket > 0 {
                let want = (min_affinity as usize).div_ceil(numa_per_socket);
                if self.sockets_of(m).len() == want {
                    h.preferred = true;
                }
            }
        }
        hints
    }

    /// The hint family of `generateCPUTopologyHints(available, reusable, request)`.
    fn family(&self, available: &CpuSet, reusable: &CpuSet, request: usize) -> CpuHintFamily {
        let (avail, reuse_mask) = self.numa_counts(available, reusable);
        let sockets = self.options.align_by_socket.then(|| {
            let pairs: Vec<(u32, u32)> = self
                .topology
                .cpus
                .values()
                .map(|i| (i.numa, i.socket))
                .collect();
            let per = self
                .topology
                .num_numa_nodes
                .checked_div(self.topology.num_sockets)
                .unwrap_or(0);
            (pairs, per)
        });
        CpuHintFamily::new(
            &self.numa.numa_totals,
            &avail,
            reusable.len(),
            reuse_mask,
            request,
            sockets,
        )
    }

    fn wrap_family(f: CpuHintFamily) -> LargeHints {
        // No mask holds the request: an empty list ("cannot be satisfied"), as the
        // enumerating path returns.
        let list = if f.min_size().is_none() {
            LargeList::Explicit(Vec::new())
        } else {
            LargeList::Family(Rc::new(f))
        };
        Some([("cpu".to_string(), Some(list))].into())
    }

    pub fn get_topology_hint_families(&self, pod: &PodInfo, c: &ContainerInfo) -> LargeHints {
        let n = guaranteed_cpus(pod, c);
        if !self.large
            || n == 0
            || self
                .assignments
                .get(&pod.uid)
                .is_some_and(|m| m.contains_key(&c.name))
        {
            return to_large(self.get_topology_hints(pod, c));
        }
        let reuse = self.reusable_cpus(&pod.uid);
        Self::wrap_family(self.family(&self.available(), reuse, n))
    }

    pub fn get_pod_topology_hint_families(&self, pod: &PodInfo) -> LargeHints {
        let n = pod_guaranteed_cpus(pod);
        let any_assigned = self.assignments.contains_key(&pod.uid);
        if !self.large || n == 0 || any_assigned {
            return to_large(self.get_pod_topology_hints(pod));
        }
        let reuse = self.reusable_cpus(&pod.uid);
        Self::wrap_family(self.family(&self.available(), reuse, n))
    }

    pub fn get_topology_hints(&self, pod: &PodInfo, c: &ContainerInfo) -> ProviderHints {
        let n = guaranteed_cpus(pod, c);
        if n == 0 {
            return None;
        }
        let list = match self.assignments.get(&pod.uid).and_then(|m| m.get(&c.name)) {
            Some(a) if a.len() != n => Vec::new(),
            Some(a) => self.generate_hints(a, &CpuSet::new(), n),
            None => {
                let reuse = self
                    .cpus_to_reuse
                    .get(&pod.uid)
                    .cloned()
                    .unwrap_or_default();
                self.generate_hints(&self.available(), &reuse, n)
            }
        };
        Some([("cpu".to_string(), Some(list))].into())
    }

    pub fn get_pod_topology_hints(&self, pod: &PodInfo) -> ProviderHints {
        let n = pod_guaranteed_cpus(pod);
        if n == 0 {
            return None;
        }
        let mut assigned = CpuSet::new();
        for c in &pod.containers {
            let nc = guaranteed_cpus(pod, c);
            if let Some(a) = self.assignments.get(&pod.uid).and_then(|m| m.get(&c.name)) {
                if a.len() != nc {
                    return Some([("cpu".to_string(), Some(Vec::new()))].into());
                }
                assigned = assigned.union(a);
            }
        }
        let list = if assigned.len() == n {
            self.generate_hints(&assigned, &CpuSet::new(), n)
        } else {
            let reuse = self
                .cpus_to_reuse
                .get(&pod.uid)
                .cloned()
                .unwrap_or_default()
                .union(&assigned);
            self.generate_hints(&self.available(), &reuse, n)
        };
        Some([("cpu".to_string(), Some(list))].into())
    }

    /// `allocateCPUs`: first from the hinted NUMA nodes, the rest from anywhere.
    fn allocate_cpus(
        &mut self,
        n: usize,
        affinity: Option<NumaMask>,
        reusable: &CpuSet,
    ) -> Result<CpuSet, String> {
        let allocatable = self.available().union(reusable);
        let opts = take_options(&self.options);
        let mut result = CpuSet::new();
        if let Some(m) = affinity {
            let aligned_cpus = if self.options.align_by_socket {
                let sockets = self.sockets_of(m);
                self.topology
                    .cpus
                    .iter()
                    .filter(|(_, i)| sockets.contains(&i.socket))
                    .map(|(&c, _)| c)
                    .collect()
            } else {
                self.numa
                    .numa_cpus
                    .iter()
                    .filter(|(n, _)| m.is_set(*n))
                    .fold(CpuSet::new(), |acc, (_, c)| acc.union(c))
            };
            let aligned = allocatable.intersection(&aligned_cpus);
            let k = n.min(aligned.len());
            result = self.packer.take(&aligned, k, &opts)?;
        }
        // The spill outside the hinted nodes (nothing to take when the hint held them all;
        // takeByTopology of 0 CPUs is empty, so skipping the call changes nothing).
        if n > result.len() {
            let rest =
                self.packer
                    .take(&allocatable.difference(&result), n - result.len(), &opts)?;
            result = result.union(&rest);
        }
        self.default_set = self.default_set.difference(&result);
        Ok(result)
    }

    pub fn allocate(
        &mut self,
        pod: &PodInfo,
        c: &ContainerInfo,
        hint: TopologyHint,
    ) -> Result<(), ProviderError> {
        let n = guaranteed_cpus(pod, c);
        if n == 0 {
            return Ok(());
        }
        if self.options.full_physical_cpus_only {
            let per_core = self.topology.cpus_per_core();
            if per_core == 0 || !n.is_multiple_of(per_core) {
                return Err(smt_error(format!(
                    "SMT Alignment Error: requested {n} cpus not multiple cpus per core = {per_core}"
                )));
            }
            let avail = self.default_set.difference(&self.reserved_physical).len();
            if n > avail {
                return Err(smt_error(format!(
                    "SMT Alignment Error: not enough free physical CPUs: available physical CPUs = {avail}, requested CPUs = {n}, CPUs per core = {per_core}"
                )));
            }
        }
        if let Some(set) = self
            .assignments
            .get(&pod.uid)
            .and_then(|m| m.get(&c.name))
            .cloned()
        {
            self.update_reuse(pod, c, &set);
            return Ok(());
        }
        let reuse = self.reusable_cpus(&pod.uid).clone();
        let set = self
            .allocate_cpus(n, hint.affinity, &reuse)
            .map_err(ProviderError::plain)?;
        self.assignments
            .get_or_default(&pod.uid)
            .insert(c.name.clone(), set.clone());
        self.update_reuse(pod, c, &set);
        Ok(())
    }

    /// `RemoveContainer`: CPUs no sibling container still holds go back to the shared pool.
    pub fn remove_container(&mut self, pod: &str, container: &str) {
        let Some(m) = self.assignments.get_mut(pod) else {
            return;
        };
        let Some(set) = m.remove(container) else {
            return;
        };
        let in_use = m.values().fold(CpuSet::new(), |a, s| a.union(s));
        if m.is_empty() {
            self.assignments.remove(pod);
        }
        self.default_set = self.default_set.union(&set.difference(&in_use));
    }

    pub fn remove_pod(&mut self, pod: &str) {
        let names: Vec<String> = self
            .assignments
            .get(pod)
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default();
        for n in names {
            self.remove_container(pod, &n);
        }
        self.cpus_to_reuse.remove(pod);
    }
}
