//! The Memory Manager's `Static` policy: NUMA hints for memory and hugepages, allocation
//! with the Topology Manager's hint (default hint, extension), NUMA groups, init-container
//! memory reuse, release, and restart validation.

use super::drift::{
    accept_drifted_state, observed_drift, resolve, DriftReport, DriftSetting, Tolerance,
};
use super::flat::Flat;
use super::hint_family::{FamilyInputs, MemoryHintFamily};
use super::state::{Assignments, Block, MachineState, MemoryTable, NumaNodeState};
use crate::bitmask::{iterate_masks, NumaMask};
use crate::machine::{hugepage_resource_name, Machine};
use crate::pod::{ContainerInfo, PodInfo, QosClass};
use crate::topology::family::{HintFamily, LargeList};
use crate::topology::hint::{to_large, LargeHints, ProviderHints, TopologyHint};
use crate::vecmap::VecMap;
use std::cell::OnceCell;
use std::collections::BTreeMap;
use std::rc::Rc;

pub const MEMORY: &str = "memory";

/// Reserved memory per NUMA node and resource (from `reservedMemory`).
pub type SystemReserved = BTreeMap<u32, BTreeMap<String, u64>>;

/// Requested bytes per memory resource.
pub type Requests = BTreeMap<String, u64>;

#[derive(Debug, Clone, Default)]
pub struct StaticPolicy {
    /// The books (read with [`Self::machine_state`], replaced with
    /// [`Self::set_machine_state`]: private so that `flat` cannot go stale).
    machine_state: MachineState,
    /// The books flattened for the admission path (see [`Flat`]); built on first use.
    flat: OnceCell<Flat>,
    pub assignments: Assignments,
    /// Init-container memory reusable by later containers of the pod being admitted:
    /// pod uid -> mask -> resource -> bytes. In memory only, like the kubelet's.
    reusable: BTreeMap<String, BTreeMap<NumaMask, BTreeMap<String, u64>>>,
    system_reserved: SystemReserved,
    /// Describe hint lists instead of listing them (large machines).
    pub large: bool,
    /// The inputs of the last hint family found to have no member at all. `Allocate`
    /// then looks for a default or extended hint among the same members (none) when
    /// its inputs read the same: the rejection of a container whose memory fits nowhere
    /// is not searched for twice. Compared by content, so no change of the books can
    /// leave it stale.
    no_member: Option<Box<FamilyInputs>>,
}

pub fn is_memory_resource(name: &str) -> bool {
    name == MEMORY || name.starts_with("hugepages-")
}

/// §7.1: the container's memory and hugepages requests, in bytes.
pub fn container_requests(c: &ContainerInfo) -> Result<Requests, String> {
    let mut out = Requests::new();
    for (k, q) in &c.requests {
        if is_memory_resource(k) {
            let v = q
                .as_int64()
                .ok_or("[memorymanager] failed to represent quantity as int64")?;
            out.insert(k.clone(), v as u64);
        }
    }
    Ok(out)
}

/// §7.2: the pod's requests for pod scope (sidecars add up, regular init containers
/// overlap; only resources some app container requests are kept).
pub fn pod_requests(pod: &PodInfo) -> Result<Requests, String> {
    let mut restartable: Requests = Requests::new();
    let mut init_max: Requests = Requests::new();
    for c in pod.init_containers() {
        for (r, q) in container_requests(c)? {
            if c.restartable {
                *restartable.entry(r).or_default() += q;
            } else {
                let v = restartable.get(&r).copied().unwrap_or(0) + q;
                let e = init_max.entry(r).or_default();
                *e = (*e).max(v);
            }
        }
    }
    let mut app: Requests = Requests::new();
    for c in pod.app_containers() {
        for (r, q) in container_requests(c)? {
            *app.entry(r).or_default() += q;
        }
    }
    Ok(app
        .into_iter()
        .map(|(r, a)| {
            let v = (a + restartable.get(&r).copied().unwrap_or(0))
                .max(init_max.get(&r).copied().unwrap_or(0));
            (r, v)
        })
        .collect())
}

/// §5: the machine state of a node nobody has allocated on.
pub fn default_machine_state(machine: &Machine, reserved: &SystemReserved) -> MachineState {
    let mut ms = MachineState::new();
    for n in &machine.nodes {
        let res = reserved.get(&n.id);
        let get = |r: &str| res.and_then(|m| m.get(r)).copied().unwrap_or(0);
        let mut map = BTreeMap::new();
        let mut hp_total = 0u64;
        for (&size, &total) in &n.hugepages {
            let name = hugepage_resource_name(size);
            let sr = get(&name);
            let alloc = total.wrapping_sub(sr);
            hp_total = hp_total.wrapping_add(total);
            map.insert(
                name,
                MemoryTable {
                    total,
                    system_reserved: sr,
                    allocatable: alloc,
                    reserved: 0,
                    free: alloc,
                },
            );
        }
        let sr = get(MEMORY);
        let alloc = n.memory.wrapping_sub(sr).wrapping_sub(hp_total);
        map.insert(
            MEMORY.to_string(),
            MemoryTable {
                total: n.memory,
                system_reserved: sr,
                allocatable: alloc,
                reserved: 0,
                free: alloc,
            },
        );
        ms.insert(
            n.id,
            NumaNodeState {
                number_of_assignments: 0,
                memory_map: map,
                cells: vec![n.id],
            },
        );
    }
    ms
}

fn mask_of(ids: &[u32]) -> Option<NumaMask> {
    NumaMask::from_ids(ids.iter().map(|&i| i as i64)).ok()
}

fn same_group(cells: &[u32], mask: NumaMask) -> bool {
    mask_of(cells) == Some(mask) && cells.len() == mask.count() as usize
}

fn table(ms: &MachineState, node: u32, r: &str) -> MemoryTable {
    ms.get(&node)
        .and_then(|n| n.memory_map.get(r))
        .copied()
        .unwrap_or_default()
}

/// Moves up to `left` bytes from free to reserved in one table (the kubelet's greedy
/// per-node fill); `left` shrinks by what was taken.
fn take_free(t: &mut MemoryTable, left: &mut u64) {
    if *left == 0 || t.free == 0 {
        return;
    }
    let n = t.free.min(*left);
    t.reserved += n;
    t.free -= n;
    *left -= n;
}

/// `validateState`'s expected state: `default` with every stored block replayed onto it
/// (pods, containers, blocks, nodes in stored order). `strict` reports blocks naming a
/// NUMA node or memory type the machine lacks with the kubelet's errors; otherwise they
/// are skipped (for tools that want the differences rather than the first error).
pub fn replay_assignments(
    expected: MachineState,
    entries: &Assignments,
    strict: bool,
) -> Result<MachineState, String> {
    replay(expected, entries, strict, false)
}

/// [`replay_assignments`], strict, and refusing a block that no longer fits the free
/// memory of its nodes (KEP-6232: a drifted machine must still hold every assignment).
pub fn replay_assignments_checked(
    expected: MachineState,
    entries: &Assignments,
) -> Result<MachineState, String> {
    replay(expected, entries, true, true)
}

fn replay(
    mut expected: MachineState,
    entries: &Assignments,
    strict: bool,
    must_fit: bool,
) -> Result<MachineState, String> {
    for (pod, ctrs) in entries {
        for (ctr, blocks) in ctrs {
            for b in blocks {
                let mut left = b.size;
                for n in &b.numa_affinity {
                    let Some(ns) = expected.get_mut(n) else {
                        if strict {
                            return Err(format!("[memorymanager] (pod: {pod}, container: {ctr}) the memory assignment uses the NUMA that does not exist"));
                        }
                        continue;
                    };
                    ns.number_of_assignments += 1;
                    ns.cells = b.numa_affinity.clone();
                    let Some(t) = ns.memory_map.get_mut(&b.kind) else {
                        if strict {
                            return Err(format!("[memorymanager] (pod: {pod}, container: {ctr}) the memory assignment uses memory resource that does not exist"));
                        }
                        continue;
                    };
                    take_free(t, &mut left);
                }
                if must_fit && left > 0 {
                    return Err(format!(
                        "[memorymanager] (pod: {pod}, container: {ctr}) the {} assignment of {} bytes on NUMA nodes {:?} no longer fits this machine: {left} bytes short after the memory drift; drain the node and delete the memory manager checkpoint",
                        b.kind, b.size, b.numa_affinity
                    ));
                }
            }
        }
    }
    Ok(expected)
}

/// `findBestHint`: preferred beats non-preferred, then narrower.
pub fn find_best_hint(hints: &[TopologyHint]) -> TopologyHint {
    let mut best = match hints.first() {
        Some(h) => *h,
        None => return TopologyHint::NONE,
    };
    for h in &hints[1..] {
        let narrower = h
            .affinity
            .unwrap_or_default()
            .is_narrower_than(best.affinity.unwrap_or_default());
        if (h.preferred && !best.preferred) || (h.preferred == best.preferred && narrower) {
            best = *h;
        }
    }
    best
}

impl StaticPolicy {
    pub fn new(system_reserved: SystemReserved) -> StaticPolicy {
        StaticPolicy {
            system_reserved,
            ..Default::default()
        }
    }

    /// The books: per NUMA node, a table per memory type, its group and assignments.
    pub fn machine_state(&self) -> &MachineState {
        &self.machine_state
    }

    /// Replaces the books (a restored checkpoint, a test's state).
    pub fn set_machine_state(&mut self, ms: MachineState) {
        self.machine_state = ms;
        self.flat = OnceCell::new();
    }

    /// The books flattened (built on first use; kept equal to them).
    pub(crate) fn flat(&self) -> &Flat {
        let f = self.flat.get_or_init(|| Flat::read(&self.machine_state));
        debug_assert_eq!(*f, Flat::read(&self.machine_state), "stale flat books");
        f
    }

    pub fn system_reserved(&self) -> &SystemReserved {
        &self.system_reserved
    }

    /// This pod's reusable init-container memory: mask -> resource -> bytes.
    pub fn reusable_masks(&self, pod: &str) -> Vec<(NumaMask, BTreeMap<String, u64>)> {
        self.reusable
            .get(pod)
            .map(|m| m.iter().map(|(k, v)| (*k, v.clone())).collect())
            .unwrap_or_default()
    }

    fn reusable_for(&self, pod: &str, mask: NumaMask, r: &str) -> u64 {
        self.reusable
            .get(pod)
            .and_then(|m| m.get(&mask))
            .and_then(|m| m.get(r))
            .copied()
            .unwrap_or(0)
    }

    /// §7.4 `calculateHints`: every NUMA mask that can hold the request, by increasing
    /// size; preferred = as narrow as the narrowest mask with enough allocatable memory.
    /// No mask at all gives an empty map ("no preference" to the Topology Manager).
    pub fn calculate_hints(
        &self,
        pod_uid: &str,
        req: &Requests,
    ) -> BTreeMap<String, Vec<TopologyHint>> {
        let ms = &self.machine_state;
        let nodes: Vec<u32> = ms.keys().copied().collect();
        let mut min_affinity = nodes.len() as u32;
        let mut accepted: Vec<NumaMask> = Vec::new();
        iterate_masks(&nodes, |mask| {
            let ids = mask.to_vec();
            for (r, &want) in req {
                let alloc: u64 = ids
                    .iter()
                    .map(|&n| table(ms, n, r).allocatable)
                    .fold(0u64, u64::wrapping_add);
                if alloc < want {
                    return;
                }
            }
            min_affinity = min_affinity.min(mask.count());
            if ids.len() == 1 {
                if ms[&ids[0]].cells.len() > 1 {
                    return;
                }
            } else {
                for n in &ids {
                    let ns = &ms[n];
                    if ns.number_of_assignments > 0
                        && (ns.cells.len() == 1 || !same_group(&ns.cells, mask))
                    {
                        return;
                    }
                }
            }
            for (r, &want) in req {
                let free: u64 = ids
                    .iter()
                    .map(|&n| table(ms, n, r).free)
                    .fold(0u64, u64::wrapping_add);
                if free.wrapping_add(self.reusable_for(pod_uid, mask, r)) < want {
                    return;
                }
            }
            accepted.push(mask);
        });
        let list: Vec<TopologyHint> = accepted
            .into_iter()
            .map(|m| TopologyHint::new(m, m.count() == min_affinity))
            .collect();
        if list.is_empty() {
            return BTreeMap::new();
        }
        req.keys().map(|r| (r.clone(), list.clone())).collect()
    }

    /// `regenerateHints`: hints from an existing allocation, or nil when it does not match
    /// the request.
    fn regenerate_hints(blocks: &[Block], req: &Requests) -> ProviderHints {
        let mut hints: BTreeMap<String, Option<Vec<TopologyHint>>> =
            req.keys().map(|r| (r.clone(), Some(Vec::new()))).collect();
        if blocks.len() != req.len() {
            return None;
        }
        for b in blocks {
            let want = req.get(&b.kind)?;
            if *want != b.size {
                return None;
            }
            let mask = mask_of(&b.numa_affinity)?;
            hints
                .get_mut(&b.kind)?
                .as_mut()?
                .push(TopologyHint::new(mask, true));
        }
        Some(hints)
    }

    fn wrap(h: BTreeMap<String, Vec<TopologyHint>>) -> ProviderHints {
        Some(h.into_iter().map(|(k, v)| (k, Some(v))).collect())
    }

    fn family_hints(&mut self, pod_uid: &str, req: &Requests) -> LargeHints {
        let f = MemoryHintFamily::new(self, pod_uid, req);
        if !f.has_member() {
            self.no_member = Some(Box::new(f.into_inputs()));
            // No mask at all: an empty map, "no preference" to the Topology Manager.
            return Some(VecMap::new());
        }
        let f: Rc<dyn HintFamily> = Rc::new(f);
        Some(
            req.keys()
                .map(|r| (r.clone(), Some(LargeList::Family(f.clone()))))
                .collect(),
        )
    }

    pub fn get_topology_hint_families(&mut self, pod: &PodInfo, c: &ContainerInfo) -> LargeHints {
        if !self.large
            || pod.qos != QosClass::Guaranteed
            || self.blocks(&pod.uid, &c.name).is_some()
        {
            return to_large(self.get_topology_hints(pod, c));
        }
        let req = container_requests(c).ok()?;
        self.family_hints(&pod.uid, &req)
    }

    pub fn get_pod_topology_hint_families(&mut self, pod: &PodInfo) -> LargeHints {
        let allocated = pod
            .containers
            .iter()
            .any(|c| self.blocks(&pod.uid, &c.name).is_some());
        if !self.large || pod.qos != QosClass::Guaranteed || allocated {
            return to_large(self.get_pod_topology_hints(pod));
        }
        let req = pod_requests(pod).ok()?;
        self.family_hints(&pod.uid, &req)
    }

    /// `findBestHint` over the memory hints containing `base` (all hints for an empty
    /// base), without listing every mask on large machines.
    fn best_memory_hint(
        &self,
        pod_uid: &str,
        req: &Requests,
        base: NumaMask,
    ) -> Option<TopologyHint> {
        if self.large {
            if base.is_empty() {
                if let Some(n) = self.first_single_member(pod_uid, req) {
                    return Some(TopologyHint::new(NumaMask::single(n), true));
                }
            }
            let inputs = FamilyInputs::read(self, pod_uid, req);
            if self.no_member.as_deref() == Some(&inputs) {
                return None;
            }
            let f = MemoryHintFamily::from_inputs(inputs);
            f.min_size()?;
            return f.best_member(base);
        }
        let hints = self.calculate_hints(pod_uid, req);
        let wider: Vec<TopologyHint> = hints
            .get(MEMORY)
            .into_iter()
            .flatten()
            .filter(|h| h.affinity.is_some_and(|m| base.is_subset_of(m)))
            .copied()
            .collect();
        if wider.is_empty() {
            return None;
        }
        Some(find_best_hint(&wider))
    }

    /// The lowest node that alone is a member of the hint list (`calculateHints`: enough
    /// allocatable, not in a group, enough free memory with the pod's reusable memory).
    /// Such a node is the narrowest preferred hint (`minAffinitySize` is then 1), so it is
    /// `findBestHint` over all hints, found without describing the whole list.
    fn first_single_member(&self, pod_uid: &str, req: &Requests) -> Option<u32> {
        let reusable = self.reusable.get(pod_uid);
        let reuse = |id: u32, r: &str| {
            reusable
                .and_then(|m| m.get(&NumaMask::single(id)))
                .and_then(|m| m.get(r))
                .copied()
                .unwrap_or(0)
        };
        self.machine_state
            .iter()
            .find(|(&id, ns)| {
                id < 64
                    && ns.cells.len() <= 1
                    && req.iter().all(|(r, &want)| {
                        let t = ns.memory_map.get(r).copied().unwrap_or_default();
                        t.allocatable >= want && t.free.wrapping_add(reuse(id, r)) >= want
                    })
            })
            .map(|(&id, _)| id)
    }

    pub fn get_topology_hints(&self, pod: &PodInfo, c: &ContainerInfo) -> ProviderHints {
        if pod.qos != QosClass::Guaranteed {
            return None;
        }
        let req = container_requests(c).ok()?;
        if let Some(blocks) = self.blocks(&pod.uid, &c.name) {
            return Self::regenerate_hints(blocks, &req);
        }
        Self::wrap(self.calculate_hints(&pod.uid, &req))
    }

    pub fn get_pod_topology_hints(&self, pod: &PodInfo) -> ProviderHints {
        if pod.qos != QosClass::Guaranteed {
            return None;
        }
        let req = pod_requests(pod).ok()?;
        for c in &pod.containers {
            if let Some(blocks) = self.blocks(&pod.uid, &c.name) {
                return Self::regenerate_hints(blocks, &req);
            }
        }
        Self::wrap(self.calculate_hints(&pod.uid, &req))
    }

    pub fn blocks(&self, pod: &str, container: &str) -> Option<&Vec<Block>> {
        self.assignments.get(pod).and_then(|m| m.get(container))
    }

    fn satisfies(&self, mask: NumaMask, req: &Requests) -> bool {
        let f = self.flat();
        let stride = f.names.len();
        req.iter().all(|(r, &want)| {
            let free = match f.column(r) {
                Some(c) => mask
                    .ids()
                    .filter(|&n| (n as usize) < f.rows)
                    .map(|n| f.free[n as usize * stride + c])
                    .fold(0u64, u64::wrapping_add),
                None => 0,
            };
            free >= want
        })
    }

    /// §7.6 `Allocate`.
    pub fn allocate(
        &mut self,
        pod: &PodInfo,
        c: &ContainerInfo,
        hint: TopologyHint,
    ) -> Result<(), String> {
        if pod.qos != QosClass::Guaranteed {
            return Ok(());
        }
        if let Some(blocks) = self.blocks(&pod.uid, &c.name).cloned() {
            self.update_reusable(pod, c, &blocks);
            return Ok(());
        }
        let req = container_requests(c)?;
        let mut best = hint;
        if hint.affinity.is_none() {
            // The hint map is empty exactly when no mask has room; `memory` is always
            // requested by a Guaranteed container.
            let Some(default) = self.best_memory_hint(&pod.uid, &req, NumaMask::EMPTY) else {
                return Err("[memorymanager] failed to get the default NUMA affinity, no NUMA nodes with enough memory is available".into());
            };
            if !default.preferred && hint.preferred {
                return Err("[memorymanager] failed to find the default preferred hint".into());
            }
            best = default;
        }
        let Some(mut mask) = best.affinity else {
            // Go dereferences a nil mask here (no `memory` request): report, don't panic.
            return Err("[memorymanager] failed to get the default NUMA affinity, no NUMA nodes with enough memory is available".into());
        };
        if !self.satisfies(mask, &req) {
            let Some(extended) = self.best_memory_hint(&pod.uid, &req, mask) else {
                return Err(
                    "[memorymanager] failed to find NUMA nodes to extend the current topology hint"
                        .into(),
                );
            };
            if !extended.preferred && best.preferred {
                return Err("[memorymanager] failed to find the extended preferred hint".into());
            }
            mask = extended.affinity.expect("members have masks");
        }
        if mask.count() > 1 {
            for n in mask.ids() {
                if let Some(ns) = self.machine_state.get(&n) {
                    if ns.number_of_assignments > 0
                        && (ns.cells.len() == 1 || !same_group(&ns.cells, mask))
                    {
                        return Err(
                            "[memorymanager] preferred hint violates NUMA node allocation".into(),
                        );
                    }
                }
            }
        }
        let ids = mask.to_vec();
        // kept in the books: no spare capacity
        let mut blocks = Vec::with_capacity(req.len());
        for (r, &size) in &req {
            let effective = size.saturating_sub(self.reusable_for(&pod.uid, mask, r));
            self.reserve(&ids, r, effective);
            blocks.push(Block {
                numa_affinity: ids.clone(),
                kind: r.clone(),
                size,
            });
        }
        self.update_reusable(pod, c, &blocks);
        self.update_init_containers_blocks(pod, c, &blocks);
        self.assignments
            .get_or_default(&pod.uid)
            .insert(c.name.clone(), blocks);
        Ok(())
    }

    /// `updateMachineState`: count the assignment on every node of the group, take the
    /// bytes greedily from the lowest node first.
    fn reserve(&mut self, ids: &[u32], r: &str, mut left: u64) {
        let mut flat = self.flat.take();
        let col = flat.as_ref().and_then(|f| f.column(r));
        for n in ids {
            let Some(ns) = self.machine_state.get_mut(n) else {
                continue;
            };
            ns.number_of_assignments += 1;
            if ns.cells != ids {
                ns.cells = ids.to_vec();
            }
            let t = ns.memory_map.get_mut(r).map(|t| {
                if left > 0 {
                    take_free(t, &mut left);
                }
                *t
            });
            follow(&mut flat, *n, ns, col.zip(t));
        }
        if let Some(f) = flat {
            let _ = self.flat.set(f);
        }
    }

    /// `updatePodReusableMemory`.
    fn update_reusable(&mut self, pod: &PodInfo, c: &ContainerInfo, blocks: &[Block]) {
        self.reusable.retain(|uid, _| uid == &pod.uid);
        if !c.is_regular_init() && !self.reusable.contains_key(&pod.uid) {
            return; // nothing reusable to take from (a missing entry reads as empty)
        }
        let entry = self.reusable.entry(pod.uid.clone()).or_default();
        for b in blocks {
            let Some(mask) = mask_of(&b.numa_affinity) else {
                continue;
            };
            if c.is_regular_init() {
                let v = entry
                    .entry(mask)
                    .or_default()
                    .entry(b.kind.clone())
                    .or_default();
                *v = (*v).max(b.size);
            } else if let Some(v) = entry.get_mut(&mask).and_then(|m| m.get_mut(&b.kind)) {
                if *v > 0 {
                    *v = v.saturating_sub(b.size);
                }
            }
        }
    }

    /// `updateInitContainersMemoryBlocks`: shrink earlier regular init containers' blocks
    /// by what this container reuses, so block sizes add up to what the pod reserved.
    fn update_init_containers_blocks(
        &mut self,
        pod: &PodInfo,
        c: &ContainerInfo,
        blocks: &[Block],
    ) {
        let Some(pod_entry) = self.assignments.get_mut(&pod.uid) else {
            return;
        };
        for b in blocks {
            let mut left = b.size;
            for init in pod.init_containers() {
                if init.name == c.name || left == 0 {
                    break;
                }
                if init.restartable {
                    continue;
                }
                let Some(ib) = pod_entry.get_mut(&init.name) else {
                    continue;
                };
                for ib in ib.iter_mut() {
                    if ib.size == 0
                        || ib.kind != b.kind
                        || !same_set(&ib.numa_affinity, &b.numa_affinity)
                    {
                        continue;
                    }
                    if ib.size > left {
                        ib.size -= left;
                        left = 0;
                    } else {
                        left -= ib.size;
                        ib.size = 0;
                    }
                }
            }
        }
    }

    /// §7.9 `RemoveContainer`.
    pub fn remove_container(&mut self, pod: &str, container: &str) {
        let Some(pod_entry) = self.assignments.get_mut(pod) else {
            return;
        };
        let Some(blocks) = pod_entry.remove(container) else {
            return;
        };
        if pod_entry.is_empty() {
            self.assignments.remove(pod);
        }
        let mut flat = self.flat.take();
        for b in &blocks {
            let mut left = b.size;
            let col = flat.as_ref().and_then(|f| f.column(&b.kind));
            for n in &b.numa_affinity {
                let Some(ns) = self.machine_state.get_mut(n) else {
                    continue;
                };
                ns.number_of_assignments -= 1;
                if ns.number_of_assignments == 0 {
                    ns.cells = vec![*n];
                }
                let t = ns.memory_map.get_mut(&b.kind).map(|t| {
                    if left > 0 {
                        release_reserved(t, &mut left);
                    }
                    *t
                });
                follow(&mut flat, *n, ns, col.zip(t));
            }
        }
        if let Some(f) = flat {
            let _ = self.flat.set(f);
        }
    }

    /// The manager's `AddContainer` for every container of an admitted pod, in start
    /// order: starting a container releases the regular init containers before it, so
    /// once the app containers run only sidecars keep init-container memory.
    pub fn start_containers(&mut self, pod: &PodInfo) {
        for c in pod.init_containers().filter(|c| c.is_regular_init()) {
            self.remove_container(&pod.uid, &c.name);
        }
    }

    /// Removes every container of a pod (the kubelet's stale-state cleanup for it).
    pub fn remove_pod(&mut self, pod: &str) {
        let names: Vec<String> = self
            .assignments
            .get(pod)
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default();
        for n in names {
            self.remove_container(pod, &n);
        }
        self.reusable.remove(pod);
    }

    /// §6 `validateState` on start: a stored state must equal the default state with
    /// every stored assignment replayed onto it (group sums of free/reserved).
    pub fn start(&mut self, machine: &Machine) -> Result<(), String> {
        self.start_with_tolerance(machine, &resolve(DriftSetting::Off, None))
            .map(|_| ())
    }

    /// [`StaticPolicy::start`] with KEP-6232's drift tolerance (bound 0: exactly
    /// `start`). Returns what the restart observed when a stored state was validated; a
    /// drifted state accepted thanks to the bound is re-based onto this machine.
    pub fn start_with_tolerance(
        &mut self,
        machine: &Machine,
        tolerance: &Tolerance,
    ) -> Result<Option<DriftReport>, String> {
        let expected_default = default_machine_state(machine, &self.system_reserved);
        if self.machine_state.is_empty() {
            if !self.assignments.is_empty() {
                return Err(
                    "[memorymanager] machine state can not be empty when it has memory assignments"
                        .into(),
                );
            }
            self.set_machine_state(expected_default);
            return Ok(None);
        }
        let drift = observed_drift(&self.machine_state, &expected_default);
        let expected = replay_assignments(expected_default.clone(), &self.assignments, true)?;
        if states_match(&self.machine_state, &expected) {
            return Ok(Some(DriftReport {
                tolerance: tolerance.clone(),
                drift,
                rebased: false,
            }));
        }
        if tolerance.bound == 0 {
            return Err(
                "[memorymanager] the expected machine state is different from the real one".into(),
            );
        }
        let rebased = accept_drifted_state(
            &self.machine_state,
            expected_default,
            &self.assignments,
            tolerance.bound,
        )?;
        self.set_machine_state(rebased);
        Ok(Some(DriftReport {
            tolerance: tolerance.clone(),
            drift,
            rebased: true,
        }))
    }
}

/// Node `n` (now `ns`) changed its assignments, group and at most one table (`changed`:
/// its column in the mirror and its new content): the mirror, when there is one,
/// follows, or is dropped to be read again.
fn follow(
    flat: &mut Option<Flat>,
    n: u32,
    ns: &NumaNodeState,
    changed: Option<(usize, MemoryTable)>,
) {
    if let Some(f) = flat {
        if !f.update(n, ns, changed.as_ref().map(|(c, t)| (*c, t))) {
            *flat = None;
        }
    }
}

/// Gives back up to `left` of a table's reserved bytes (`RemoveContainer`'s loop body).
fn release_reserved(t: &mut MemoryTable, left: &mut u64) {
    if t.reserved < *left {
        *left -= t.reserved;
        t.free += t.reserved;
        t.reserved = 0;
    } else {
        t.free += *left;
        t.reserved -= *left;
        *left = 0;
    }
}

fn same_set(a: &[u32], b: &[u32]) -> bool {
    let mut a = a.to_vec();
    let mut b = b.to_vec();
    a.sort_unstable();
    b.sort_unstable();
    a == b
}

/// The comparison of `validateState` (v1.32: group sums of free and reserved).
pub fn states_match(stored: &MachineState, expected: &MachineState) -> bool {
    state_differences(stored, expected).is_empty()
}

/// Every way the stored state differs from the expected one, in words (for
/// `nmm state verify`); empty when the kubelet would accept it.
pub fn state_differences(stored: &MachineState, expected: &MachineState) -> Vec<String> {
    let mut out = Vec::new();
    if stored.len() != expected.len() {
        out.push(format!(
            "the state has {} NUMA nodes, the machine has {}",
            stored.len(),
            expected.len()
        ));
    }
    for (id, s) in stored {
        let Some(e) = expected.get(id) else {
            out.push(format!(
                "NUMA node {id} is in the state but not on the machine"
            ));
            continue;
        };
        if s.number_of_assignments != e.number_of_assignments {
            out.push(format!(
                "NUMA node {id}: numberOfAssignments is {}, the assignments add up to {}",
                s.number_of_assignments, e.number_of_assignments
            ));
        }
        if !same_set(&s.cells, &e.cells) {
            out.push(format!(
                "NUMA node {id}: cells are {:?}, the assignments give {:?}",
                s.cells, e.cells
            ));
        }
        if s.memory_map.len() != e.memory_map.len() {
            out.push(format!(
                "NUMA node {id}: the state has {} memory types ({}), the machine has {} ({})",
                s.memory_map.len(),
                s.memory_map.keys().cloned().collect::<Vec<_>>().join(", "),
                e.memory_map.len(),
                e.memory_map.keys().cloned().collect::<Vec<_>>().join(", ")
            ));
        }
        for (r, st) in &s.memory_map {
            let Some(et) = e.memory_map.get(r) else {
                out.push(format!(
                    "NUMA node {id}: {r} is in the state but not on the machine"
                ));
                continue;
            };
            for (what, a, b) in [
                ("total", st.total, et.total),
                ("systemReserved", st.system_reserved, et.system_reserved),
                ("allocatable", st.allocatable, et.allocatable),
            ] {
                if a != b {
                    out.push(format!(
                        "NUMA node {id}: {r} {what} is {a} bytes in the state, {b} bytes expected ({}{} bytes)",
                        if a > b { "+" } else { "-" },
                        a.abs_diff(b)
                    ));
                }
            }
            let sum = |ms: &MachineState, f: fn(&MemoryTable) -> u64| -> Option<u64> {
                let mut t = 0u64;
                for c in &s.cells {
                    t = t.wrapping_add(f(ms.get(c)?.memory_map.get(r)?));
                }
                Some(t)
            };
            for (what, f) in [
                (
                    "free",
                    (|t: &MemoryTable| t.free) as fn(&MemoryTable) -> u64,
                ),
                ("reserved", |t: &MemoryTable| t.reserved),
            ] {
                let (a, b) = (sum(stored, f), sum(expected, f));
                if a != b || a.is_none() {
                    out.push(format!(
                        "NUMA group {:?}: {r} {what} is {} in the state, the assignments give {}",
                        s.cells,
                        a.map_or("unknown".into(), |v| format!("{v} bytes")),
                        b.map_or("unknown".into(), |v| format!("{v} bytes")),
                    ));
                }
            }
        }
    }
    out
}

#[cfg(test)]
#[path = "default_hint_tests.rs"]
mod default_hint_tests;
