//! The device provider's hint list as a [`HintFamily`] (`generateDeviceTopologyHints`
//! without listing every mask), so that 34- and 64-node machines stay fast.
//!
//! A mask is in the list when it meets every reusable device that has a topology and
//! touches enough available devices (reusable ones count once each). Both conditions
//! only get easier when nodes are added, so members are closed under adding nodes. They
//! are not a per-node sum: a device on several nodes counts once if any of its nodes is in
//! the mask. The searches below (`min_extra`) are exact: single-node
//! devices (the common case: NICs, GPUs) take the best nodes greedily, which is optimal
//! since such devices never overlap; devices on several nodes use a depth-first search
//! bounded by the best remaining gains.

use super::index::ResourceIndex;
use super::topology_hints::{Counted, HintInputs, HintQuery, Request};
use super::DeviceManager;
use crate::bitmask::NumaMask;
use crate::pod::{ContainerInfo, PodInfo};
use crate::topology::family::{HintFamily, LargeList, SizeSet};
use crate::topology::hint::LargeHints;
use crate::vecmap::VecMap;
use std::rc::Rc;

/// Masks of the devices a mask may touch, and how many of them it must touch.
#[derive(Debug, Clone)]
struct Coverage {
    /// One entry per device (its NUMA mask; empty masks never count). Left empty by
    /// [`Coverage::per_node`], whose questions never reach the device walk.
    devices: Vec<NumaMask>,
    need: i64,
    /// The devices counted per node, when none of them has more than one node (NICs,
    /// GPUs): then the searches below are sums over nodes, without walking the devices.
    per_node: Option<PerNode>,
}

/// Device counts per NUMA node (devices with one node each; empty masks never count).
#[derive(Debug, Clone)]
struct PerNode {
    counts: [u32; 64],
    /// The nodes with a count.
    nodes: NumaMask,
}

impl PerNode {
    /// `None` when some device has several nodes.
    fn of(devices: &[NumaMask]) -> Option<PerNode> {
        let mut pn = PerNode {
            counts: [0; 64],
            nodes: NumaMask::EMPTY,
        };
        for d in devices {
            // (Bit tricks rather than a population count, which the default x86-64
            // target computes in software.)
            if d.0 == 0 {
                continue;
            }
            if d.0 & (d.0 - 1) != 0 {
                return None;
            }
            pn.counts[d.0.trailing_zeros() as usize] += 1;
            pn.nodes = pn.nodes.or(*d);
        }
        Some(pn)
    }

    const EMPTY: PerNode = PerNode {
        counts: [0; 64],
        nodes: NumaMask::EMPTY,
    };

    /// Counts the available devices of a resource whose devices have one node each
    /// (into an empty count, in place: the family is built where it stays).
    fn add_available(&mut self, x: &ResourceIndex) {
        for i in x.available_ones() {
            let d = x.masks[i];
            if d.0 != 0 {
                self.counts[d.0.trailing_zeros() as usize] += 1;
                self.nodes = self.nodes.or(d);
            }
        }
    }

    /// How many devices `m` touches.
    fn covered(&self, m: NumaMask) -> i64 {
        m.and(self.nodes)
            .ids()
            .map(|n| i64::from(self.counts[n as usize]))
            .sum()
    }

    /// [`min_extra`] for these devices when every open hit mask has at most one node in
    /// `allowed` (`None` inside: the general search must answer).
    fn min_extra(
        &self,
        need: i64,
        base: NumaMask,
        allowed: NumaMask,
        hit: &[NumaMask],
    ) -> Option<Option<u32>> {
        let allowed = NumaMask(allowed.0 & !base.0);
        // Nodes every member must add: the one allowed node of each hit `base` misses.
        let mut forced = NumaMask::EMPTY;
        for h in hit.iter().filter(|h| h.and(base).is_empty()) {
            let a = h.and(allowed);
            if a.is_empty() {
                return Some(None);
            }
            if a.0 & (a.0 - 1) != 0 {
                return None;
            }
            forced = forced.or(a);
        }
        // A device is open when its node is allowed (so outside `base`).
        let need = (need - self.covered(base)).max(0);
        if need > self.covered(allowed) {
            return Some(None);
        }
        // Disjoint single-node contributions: forced nodes first, then the best ones.
        let mut left = need - self.covered(forced);
        let mut extra = forced.count();
        if left <= 0 {
            return Some(Some(extra));
        }
        let mut gains = [0u32; 64];
        let mut k = 0;
        let mut best = 0;
        for n in NumaMask(allowed.0 & !forced.0).and(self.nodes).ids() {
            gains[k] = self.counts[n as usize];
            best = best.max(gains[k]);
            k += 1;
        }
        // Often one node is enough: no sort then.
        if i64::from(best) >= left {
            return Some(Some(extra + 1));
        }
        let gains = &mut gains[..k];
        gains.sort_unstable_by(|a, b| b.cmp(a));
        for &x in gains.iter() {
            left -= i64::from(x);
            extra += 1;
            if left <= 0 {
                return Some(Some(extra));
            }
        }
        Some(None)
    }
}

impl Coverage {
    fn new(devices: Vec<NumaMask>, need: i64) -> Coverage {
        Coverage {
            per_node: PerNode::of(&devices),
            devices,
            need,
        }
    }

    /// Devices given as per-node counts only: for questions without hits, which
    /// [`PerNode::min_extra`] always answers.
    fn per_node(pn: PerNode, need: i64) -> Coverage {
        Coverage {
            devices: Vec::new(),
            need,
            per_node: Some(pn),
        }
    }

    fn covered(&self, m: NumaMask) -> i64 {
        match &self.per_node {
            Some(pn) => pn.covered(m),
            None => covered(&self.devices, m),
        }
    }

    /// Whether `m` touches `need` devices (`covered(m) >= need`); for a request of one,
    /// per-node counts answer without summing (their nodes are the ones with devices).
    fn covers(&self, m: NumaMask) -> bool {
        match &self.per_node {
            Some(pn) if self.need == 1 => !m.and(pn.nodes).is_empty(),
            _ => self.covered(m) >= self.need,
        }
    }

    /// The fewest nodes of `allowed` (outside `base`) to add to `base` so that every
    /// `hit` mask is met and `need` devices are touched; `None` if impossible.
    fn min_extra(&self, base: NumaMask, allowed: NumaMask, hit: &[NumaMask]) -> Option<u32> {
        if let Some(found) = self
            .per_node
            .as_ref()
            .and_then(|pn| pn.min_extra(self.need, base, allowed, hit))
        {
            return found;
        }
        min_extra(&self.devices, self.need, base, allowed, hit)
    }
}

fn covered(devices: &[NumaMask], m: NumaMask) -> i64 {
    devices.iter().filter(|d| !d.and(m).is_empty()).count() as i64
}

/// [`Coverage::min_extra`] of `devices` and `need`.
fn min_extra(
    devices: &[NumaMask],
    need: i64,
    base: NumaMask,
    allowed: NumaMask,
    hit: &[NumaMask],
) -> Option<u32> {
    let allowed = NumaMask(allowed.0 & !base.0);
    let open_hits: Vec<NumaMask> = hit
        .iter()
        .copied()
        .filter(|h| h.and(base).is_empty())
        .collect();
    if open_hits.iter().any(|h| h.and(allowed).is_empty()) {
        return None;
    }
    let is_open = |d: &NumaMask| d.and(base).is_empty() && !d.and(allowed).is_empty();
    let n_open = devices.iter().filter(|d| is_open(d)).count();
    let need = (need - covered(devices, base)).max(0);
    if need > n_open as i64 {
        return None;
    }
    let single = devices
        .iter()
        .filter(|d| is_open(d))
        .chain(&open_hits)
        .all(|d| d.and(allowed).count() == 1);
    if single {
        // Disjoint single-node contributions: forced nodes first, then the best ones.
        let forced = open_hits
            .iter()
            .fold(NumaMask::EMPTY, |m, h| m.or(h.and(allowed)));
        let mut left = need
            - devices
                .iter()
                .filter(|d| is_open(d) && !d.and(forced).is_empty())
                .count() as i64;
        let mut extra = forced.count();
        if left <= 0 {
            return Some(extra);
        }
        // Devices per node (a mask has at most 64 nodes), best nodes first (only the
        // nodes with devices are sorted: the others gain nothing).
        let mut gains = [0i64; 64];
        for d in devices.iter().filter(|d| is_open(d)) {
            let n = d.and(allowed);
            if n.and(forced).is_empty() {
                gains[n.ids().next().unwrap_or(0) as usize] += 1;
            }
        }
        let mut k = 0;
        for i in 0..gains.len() {
            if gains[i] > 0 {
                gains[k] = gains[i];
                k += 1;
            }
        }
        let gains = &mut gains[..k];
        gains.sort_unstable_by(|a, b| b.cmp(a));
        for &x in gains.iter() {
            left -= x;
            extra += 1;
            if left <= 0 {
                return Some(extra);
            }
        }
        return None;
    }
    let open: Vec<NumaMask> = devices.iter().copied().filter(is_open).collect();
    let nodes: Vec<u32> = allowed
        .ids()
        .filter(|&n| open.iter().chain(&open_hits).any(|d| d.is_set(n)))
        .collect();
    (0..=nodes.len() as u32)
        .find(|&j| search(&nodes, 0, j, NumaMask::EMPTY, &open, &open_hits, need))
}

/// Whether `j` more nodes of `nodes[from..]` added to `chosen` meet every hit mask and
/// touch `need` of `open`.
fn search(
    nodes: &[u32],
    from: usize,
    j: u32,
    chosen: NumaMask,
    open: &[NumaMask],
    hits: &[NumaMask],
    need: i64,
) -> bool {
    let unmet_hits = hits.iter().filter(|h| h.and(chosen).is_empty()).count();
    let got = open.iter().filter(|d| !d.and(chosen).is_empty()).count() as i64;
    if unmet_hits == 0 && got >= need {
        return true;
    }
    if j == 0 || from >= nodes.len() {
        return false;
    }
    // Bound: the j best gains among the remaining nodes.
    let mut gains: Vec<i64> = nodes[from..]
        .iter()
        .map(|&n| {
            open.iter()
                .filter(|d| d.and(chosen).is_empty() && d.is_set(n))
                .count() as i64
        })
        .collect();
    gains.sort_unstable_by(|a, b| b.cmp(a));
    let best: i64 = gains.iter().take(j as usize).sum();
    if got + best < need {
        return false;
    }
    for i in from..nodes.len() {
        let c = chosen.or(NumaMask::single(nodes[i]));
        if search(nodes, i + 1, j - 1, c, open, hits, need) {
            return true;
        }
    }
    false
}

/// One device resource's hint list.
#[derive(Debug, Clone)]
pub struct DeviceFamily {
    universe: NumaMask,
    /// Available devices plus the reusable ones (each reusable device with topology is
    /// also a mask every member must meet).
    avail: Coverage,
    reuse_hits: Vec<NumaMask>,
    /// `minAffinitySize`: the smallest mask size all of the resource's devices could fill.
    preferred_size: u32,
    /// [`HintFamily::min_size`], searched once when the family is made (the merge asks
    /// for it again).
    min_size: Option<u32>,
}

impl DeviceFamily {
    /// `all`: every device of the resource; `available` / `reusable` as in
    /// `generateDeviceTopologyHints` (`None` topology reusable devices are skipped).
    pub fn new(
        universe: NumaMask,
        all: &[NumaMask],
        available: &[NumaMask],
        reusable_with_topology: &[NumaMask],
        request: i64,
    ) -> DeviceFamily {
        DeviceFamily::from_vecs(
            universe,
            all,
            available.to_vec(),
            reusable_with_topology.to_vec(),
            request,
        )
    }

    /// [`DeviceFamily::new`] keeping the vectors it is given.
    fn from_vecs(
        universe: NumaMask,
        all: &[NumaMask],
        available: Vec<NumaMask>,
        reusable_with_topology: Vec<NumaMask>,
        request: i64,
    ) -> DeviceFamily {
        let fewest = PerNode::of(all)
            .and_then(|pn| pn.min_extra(request, NumaMask::EMPTY, universe, &[]))
            .unwrap_or_else(|| min_extra(all, request, NumaMask::EMPTY, universe, &[]));
        DeviceFamily::with_min_size(
            universe,
            Coverage::new(available, request - reusable_with_topology.len() as i64),
            reusable_with_topology,
            preferred_size(universe, fewest),
        )
    }

    /// The family of a registered resource's devices (what [`DeviceFamily::new`] makes of
    /// the index's masks), from what the index keeps: `minAffinitySize` from its per-node
    /// sums, and for single-node devices without reusable ones the available devices'
    /// per-node counts straight from its bits, without a list of masks, counted into the
    /// family where it will stay (it is large: moves would copy it).
    pub(super) fn of_index(
        x: &ResourceIndex,
        counted: Counted,
        reusable_with_topology: Vec<NumaMask>,
        request: i64,
    ) -> Rc<DeviceFamily> {
        let universe = x.universe;
        let fewest = match x.fewest_nodes(request) {
            Some(fewest) => fewest,
            None => min_extra(&x.masks, request, NumaMask::EMPTY, universe, &[]),
        };
        let need = request - reusable_with_topology.len() as i64;
        let preferred_size = preferred_size(universe, fewest);
        match counted {
            // Without hits every question is a per-node sum: no list of masks is kept.
            Counted::Available if x.single_node() && reusable_with_topology.is_empty() => {
                let mut family = Rc::new(DeviceFamily {
                    universe,
                    avail: Coverage::per_node(PerNode::EMPTY, need),
                    reuse_hits: reusable_with_topology,
                    preferred_size,
                    min_size: None,
                });
                let f = Rc::get_mut(&mut family).expect("not shared yet");
                if let Some(pn) = f.avail.per_node.as_mut() {
                    pn.add_available(x);
                }
                f.min_size = match (need, &f.avail.per_node) {
                    // What `min_extra` answers for these: nothing to touch, one node;
                    // one device, any node that has one.
                    (..=0, _) => Some(1),
                    (1, Some(pn)) => (!pn.nodes.and(universe).is_empty()).then_some(1),
                    _ => f
                        .avail
                        .min_extra(NumaMask::EMPTY, universe, &[])
                        .map(|k| k.max(1)),
                };
                family
            }
            counted => Rc::new(DeviceFamily::with_min_size(
                universe,
                Coverage::new(counted.masks(x), need),
                reusable_with_topology,
                preferred_size,
            )),
        }
    }

    fn with_min_size(
        universe: NumaMask,
        avail: Coverage,
        reuse_hits: Vec<NumaMask>,
        preferred_size: u32,
    ) -> DeviceFamily {
        let min_size = avail
            .min_extra(NumaMask::EMPTY, universe, &reuse_hits)
            .map(|k| k.max(1));
        DeviceFamily {
            universe,
            avail,
            reuse_hits,
            preferred_size,
            min_size,
        }
    }
}

/// `minAffinitySize` from the fewest nodes all of the resource's devices need: at least
/// 1, the whole machine when no smaller mask has enough.
fn preferred_size(universe: NumaMask, fewest: Option<u32>) -> u32 {
    let n = universe.count();
    fewest.map(|k| k.max(1)).filter(|&k| k < n).unwrap_or(n)
}

impl HintFamily for DeviceFamily {
    fn get(&self, m: NumaMask) -> Option<bool> {
        if m.is_empty() || !m.is_subset_of(self.universe) {
            return None;
        }
        if self.reuse_hits.iter().any(|h| h.and(m).is_empty()) || !self.avail.covers(m) {
            return None;
        }
        Some(m.count() == self.preferred_size)
    }

    fn universe(&self) -> NumaMask {
        self.universe
    }

    fn preferred_sizes(&self) -> SizeSet {
        SizeSet::single(self.preferred_size)
    }

    fn min_size(&self) -> Option<u32> {
        self.min_size
    }

    fn extends(&self, inn: NumaMask, out: NumaMask, size: Option<u32>) -> bool {
        let pool = NumaMask(self.universe.0 & !out.0);
        if !inn.is_subset_of(pool) || pool.is_empty() {
            return false;
        }
        let Some(extra) = self.avail.min_extra(inn, pool, &self.reuse_hits) else {
            return false;
        };
        match size {
            None => true,
            Some(k) => {
                let least = (inn.count() + extra).max(1);
                k >= least && k <= pool.count()
            }
        }
    }
}

impl DeviceManager {
    /// The hints as [`LargeList`]s: the same answers as [`DeviceManager::topology_hints`]
    /// for resources without topology or without enough devices, a [`DeviceFamily`]
    /// instead of the list of masks otherwise.
    pub fn topology_hint_families(&self, pod: &PodInfo, c: Option<&ContainerInfo>) -> LargeHints {
        let mut out = VecMap::new();
        let q = self.hint_query(pod, c);
        match c {
            Some(c) => {
                for request in self.container_requests(c) {
                    let family = self.resource_family(&q, request);
                    out.insert(request.0.clone(), family);
                }
            }
            None => {
                for request in self.pod_requests(pod) {
                    let family = self.resource_family(&q, request);
                    out.insert(request.0.clone(), family);
                }
            }
        }
        Some(out)
    }

    fn resource_family(&self, q: &HintQuery<'_>, request: Request<'_, '_>) -> Option<LargeList> {
        let requested = request.1;
        let (x, counted, reuse) = match self.hint_inputs(q, request) {
            HintInputs::NoPreference => return None,
            HintInputs::Unsatisfiable => return Some(LargeList::Explicit(Vec::new())),
            HintInputs::Masks { x, counted, reuse } => (x, counted, reuse),
        };
        let family = DeviceFamily::of_index(x, counted, reuse, requested);
        // No member at all (e.g. only topology-less devices left) is the kubelet's empty
        // list, which the policies read as "cannot satisfy" / "any node, not preferred".
        if family.min_size().is_none() {
            return Some(LargeList::Explicit(Vec::new()));
        }
        Some(LargeList::Family(family))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bitmask::iterate_masks;

    fn m(ids: &[u32]) -> NumaMask {
        ids.iter()
            .fold(NumaMask::EMPTY, |a, &n| a.or(NumaMask::single(n)))
    }

    /// The family agrees with listing every mask, and its searches with brute force.
    fn check(nodes: u32, all: &[NumaMask], avail: &[NumaMask], reuse: &[NumaMask], request: i64) {
        let ids: Vec<u32> = (0..nodes).collect();
        let u = m(&ids);
        let f = DeviceFamily::new(u, all, avail, reuse, request);
        // The kubelet's loop.
        let mut min = nodes;
        let mut listed = Vec::new();
        iterate_masks(&ids, |mask| {
            let inm = all.iter().filter(|d| !d.and(mask).is_empty()).count() as i64;
            if inm >= request && mask.count() < min {
                min = mask.count();
            }
            if reuse.iter().any(|r| r.and(mask).is_empty()) {
                return;
            }
            let k = reuse.len() as i64
                + avail.iter().filter(|d| !d.and(mask).is_empty()).count() as i64;
            if k >= request {
                listed.push(mask);
            }
        });
        let mut members = Vec::new();
        iterate_masks(&ids, |mask| {
            if let Some(p) = f.get(mask) {
                members.push(mask);
                assert_eq!(p, mask.count() == min, "preferred {mask:?}");
            }
        });
        assert_eq!(members, listed);
        assert_eq!(f.min_size(), listed.iter().map(|x| x.count()).min());
        // extends against brute force over small inn/out pairs.
        for inn in 0..(1u64 << nodes) {
            for out in 0..(1u64 << nodes) {
                if inn & out != 0 {
                    continue;
                }
                for size in [None, Some(1), Some(2), Some(nodes)] {
                    let want = listed.iter().any(|x| {
                        x.0 & inn == inn && x.0 & out == 0 && size.is_none_or(|k| x.count() == k)
                    });
                    assert_eq!(
                        f.extends(NumaMask(inn), NumaMask(out), size),
                        want,
                        "inn {inn:b} out {out:b} {size:?}"
                    );
                }
            }
        }
    }

    proptest::proptest! {
        /// The per-node sums answer what the device walk answers, for single-node and
        /// topology-less devices, hits on one or several nodes, any base and allowed set.
        #[test]
        fn per_node_min_extra_is_the_device_walk(
            nodes in proptest::collection::vec(proptest::option::of(0u32..6), 0..12),
            hits in proptest::collection::vec(1u64..64, 0..3),
            need in -1i64..10,
            base in 0u64..64,
            allowed in 0u64..64,
        ) {
            let devices: Vec<NumaMask> = nodes
                .iter()
                .map(|n| n.map_or(NumaMask::EMPTY, NumaMask::single))
                .collect();
            let hits: Vec<NumaMask> = hits.into_iter().map(NumaMask).collect();
            let pn = PerNode::of(&devices).expect("single-node devices");
            let (base, allowed) = (NumaMask(base), NumaMask(allowed));
            let walk = min_extra(&devices, need, base, allowed, &hits);
            if let Some(fast) = pn.min_extra(need, base, allowed, &hits) {
                proptest::prop_assert_eq!(fast, walk);
            }
            let c = Coverage::new(devices.clone(), need);
            proptest::prop_assert_eq!(c.min_extra(base, allowed, &hits), walk);
            proptest::prop_assert_eq!(c.covered(allowed), covered(&devices, allowed));
            proptest::prop_assert_eq!(c.covers(allowed), covered(&devices, allowed) >= need);
        }
    }

    #[test]
    fn single_node_devices() {
        let all = [
            m(&[0]),
            m(&[0]),
            m(&[1]),
            m(&[2]),
            m(&[3]),
            m(&[3]),
            m(&[3]),
        ];
        check(4, &all, &all[1..], &[], 2);
        check(4, &all, &all[2..], &[m(&[0])], 3);
        check(4, &all, &all[..2], &[], 2);
        check(4, &all, &[], &[], 1);
        check(4, &all, &all, &[], 0);
    }

    #[test]
    fn multi_node_and_topology_less_devices() {
        let all = [
            m(&[0, 1]),
            m(&[1, 2]),
            m(&[3]),
            NumaMask::EMPTY,
            m(&[0, 3]),
            m(&[2]),
        ];
        for req in 0..=5 {
            check(4, &all, &all, &[], req);
            check(4, &all, &all[1..], &[m(&[0, 1])], req);
            check(4, &all, &all[2..], &[m(&[1, 2]), m(&[3])], req);
        }
        // A reusable device with a topology but no nodes: nothing fits.
        check(3, &[m(&[0])], &[m(&[0])], &[NumaMask::EMPTY], 1);
    }
}
