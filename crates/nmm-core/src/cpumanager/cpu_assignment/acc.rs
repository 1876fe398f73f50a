//! Go's `cpuAccumulator` over the dense index: free counters per unit and per pair, the
//! ordered unit lists, and the take steps of the packed algorithm.

use super::index::*;

pub(super) const FREE: u8 = 1;
pub(super) const TAKEN: u8 = 2;

/// Go's `cpuAccumulator`: `details` (the free CPUs, here a flag per position plus free
/// counters per unit and per pair), `numCPUsNeeded` and `result`.
pub(super) struct Acc<'c> {
    pub(super) cx: &'c Ctx,
    /// Per position: FREE (in details) | TAKEN (in result).
    pub(super) flags: Vec<u8>,
    pub(super) n_free: usize,
    pub(super) result: Vec<u32>,
    pub(super) needed: i64,
    /// Free CPUs per unit (at `unit_base[kind]`) and per pair (at `pair_base[rel]`).
    pub(super) counts: Vec<u32>,
    /// Walk the core order parent by parent (`Ctx::core_once`; tests turn it off to
    /// compare with the built order).
    pub(super) walk: bool,
}

impl<'c> Acc<'c> {
    pub(super) fn new(cx: &'c Ctx, cand: &[u32], needed: usize) -> Acc<'c> {
        let n = cx.ids.len();
        let mut flags = vec![0u8; n];
        let mut n_free = 0;
        // The counters are the free CPUs per unit and pair however they are counted:
        // from the candidates when they are few, else from "all free" minus the others.
        let counts = if 2 * cand.len() < n {
            let mut counts = vec![0u32; cx.counters];
            for &p in cand {
                let f = &mut flags[p as usize];
                if *f == 0 {
                    *f = FREE;
                    n_free += 1;
                    for &c in &cx.slots[p as usize] {
                        counts[c as usize] += 1;
                    }
                }
            }
            counts
        } else {
            for &p in cand {
                let f = &mut flags[p as usize];
                n_free += usize::from(*f == 0);
                *f = FREE;
            }
            let mut counts = cx.all_free.clone();
            for (slot, _) in cx.slots.iter().zip(&flags).filter(|(_, &f)| f == 0) {
                for &c in slot {
                    counts[c as usize] -= 1;
                }
            }
            counts
        };
        Acc {
            cx,
            flags,
            n_free,
            result: Vec::new(),
            needed: needed as i64,
            counts,
            walk: cx.core_once,
        }
    }

    pub(super) fn ufree(&self, kind: usize, unit: u32) -> u32 {
        self.counts[self.cx.unit_base[kind] + unit as usize]
    }

    pub(super) fn pfree(&self, rel: usize, pair: u32) -> u32 {
        self.counts[self.cx.pair_base[rel] + pair as usize]
    }

    pub(super) fn is_free(&self, p: u32) -> bool {
        self.flags[p as usize] & FREE != 0
    }

    pub(super) fn is_satisfied(&self) -> bool {
        self.needed < 1
    }

    pub(super) fn is_failed(&self) -> bool {
        self.needed > self.n_free as i64
    }

    /// Go's `take(S)`: result ∪= S; details −= S; needed −= |S| (even for CPUs already taken
    /// or not free, exactly like Go). `set` must not repeat a position.
    pub(super) fn take(&mut self, set: &[u32]) {
        let cx = self.cx;
        for &p in set {
            let pi = p as usize;
            if self.flags[pi] & FREE != 0 {
                self.flags[pi] &= !FREE;
                self.n_free -= 1;
                for &c in &cx.slots[pi] {
                    self.counts[c as usize] -= 1;
                }
            }
            if self.flags[pi] & TAKEN == 0 {
                self.flags[pi] |= TAKEN;
                self.result.push(p);
            }
        }
        self.needed -= set.len() as i64;
    }

    /// Sorts `v[start..]` by (free CPUs of the unit, unit id).
    pub(super) fn sort_tail(&self, kind: usize, v: &mut [u32], start: usize) {
        let free = &self.counts[self.cx.unit_base[kind]..];
        v[start..].sort_unstable_by_key(|&u| (free[u as usize], u));
    }

    /// Units of `kind` with at least one free CPU, sorted.
    pub(super) fn sorted_present(&self, kind: usize) -> Vec<u32> {
        let mut v: Vec<u32> = (0..self.cx.units(kind) as u32)
            .filter(|&u| self.ufree(kind, u) > 0)
            .collect();
        self.sort_tail(kind, &mut v, 0);
        v
    }

    /// For each parent in `parents` (in order), append its children that share a free CPU
    /// with it, sorted by the children's own free counts. The parent is the relation's `a`
    /// side when `parent_is_a`, else its `b` side.
    pub(super) fn expand(
        &self,
        parents: &[u32],
        rel: usize,
        parent_is_a: bool,
        child_kind: usize,
    ) -> Vec<u32> {
        let r = &self.cx.rels[rel];
        let mut out = Vec::with_capacity(self.cx.units(child_kind));
        for &p in parents {
            let start = out.len();
            if parent_is_a {
                out.extend(
                    r.by_a
                        .row(p)
                        .iter()
                        .filter(|&&pair| self.pfree(rel, pair) > 0)
                        .map(|&pair| r.pair_b[pair as usize]),
                );
            } else {
                let (lo, hi) = (r.b_off[p as usize], r.b_off[p as usize + 1]);
                out.extend(
                    (lo..hi)
                        .filter(|&pair| self.pfree(rel, pair) > 0)
                        .map(|pair| r.pair_a[pair as usize]),
                );
            }
            self.sort_tail(child_kind, &mut out, start);
        }
        out
    }

    pub(super) fn numa_order(&self) -> Vec<u32> {
        if self.cx.numa_first {
            self.sorted_present(NUMA)
        } else {
            self.expand(&self.sorted_present(SOCKET), NUMA_SOCKET, false, NUMA)
        }
    }

    pub(super) fn socket_order(&self) -> Vec<u32> {
        if self.cx.numa_first {
            self.expand(&self.numa_order(), NUMA_SOCKET, true, SOCKET)
        } else {
            self.sorted_present(SOCKET)
        }
    }

    pub(super) fn core_order(&self) -> Vec<u32> {
        if self.cx.numa_first {
            self.expand(&self.socket_order(), SOCKET_CORE, true, CORE)
        } else {
            self.expand(&self.numa_order(), NUMA_CORE, true, CORE)
        }
    }

    pub(super) fn uncore_order(&self) -> Vec<u32> {
        self.expand(&self.numa_order(), NUMA_UNCORE, true, UNCORE)
    }

    /// Appends the free CPUs of a unit, ascending.
    pub(super) fn free_in(&self, kind: usize, unit: u32, out: &mut Vec<u32>) {
        out.extend(
            self.cx.members[kind]
                .row(unit)
                .iter()
                .copied()
                .filter(|&p| self.is_free(p)),
        );
    }

    /// The "fully free" test of §CPU-assignment.6.
    pub(super) fn is_unit_free(&self, kind: usize, unit: u32) -> bool {
        let free = self.ufree(kind, unit) as usize;
        match kind {
            SOCKET => free == self.cx.cpus_per_socket,
            CORE => free == self.cx.cpus_per_core,
            _ => free == self.cx.members[kind].row(unit).len(),
        }
    }

    /// takeFullNUMANodes / takeFullSockets / takeFullCores / takeFullUncore: the fully free
    /// units (list built once, in order), each taken whole (all its CPUs of the topology)
    /// while the request still needs at least that many CPUs.
    pub(super) fn take_full(&mut self, kind: usize) {
        if self.needed < self.cx.smallest[kind] as i64 {
            return;
        }
        if kind == CORE && self.walk {
            return self.take_full_cores_walk();
        }
        let mut order = match kind {
            NUMA => self.numa_order(),
            SOCKET => self.socket_order(),
            CORE => self.core_order(),
            _ => self.uncore_order(),
        };
        order.retain(|&u| self.is_unit_free(kind, u));
        let cx = self.cx;
        for u in order {
            let all = cx.members[kind].row(u);
            if self.needed >= all.len() as i64 {
                self.take(all);
            }
        }
    }

    /// takeUncoreCache (step 3 of §CPU-assignment.7).
    pub(super) fn take_uncore_caches(&mut self) {
        for u in self.uncore_order() {
            if self.needed >= self.cx.cpus_per_uncore as i64 {
                self.take_full(UNCORE);
            }
            if self.is_satisfied() {
                return;
            }
            self.take_partial_uncore(u);
            if self.is_satisfied() {
                return;
            }
        }
    }

    /// takePartialUncore: the lowest-id `needed / CPUsPerCore` cores having a free CPU in
    /// cache `u`; their free CPUs are taken only if they are exactly `needed`.
    pub(super) fn take_partial_uncore(&mut self, u: u32) {
        let k = match self.cx.cpus_per_core {
            0 => 0,
            per => (self.needed / per as i64).max(0) as usize,
        };
        let r = &self.cx.rels[UNCORE_CORE];
        let mut set = Vec::new();
        for &pair in r
            .by_a
            .row(u)
            .iter()
            .filter(|&&pair| self.pfree(UNCORE_CORE, pair) > 0)
            .take(k)
        {
            self.free_in(CORE, r.pair_b[pair as usize], &mut set);
        }
        if set.len() as i64 == self.needed {
            self.take(&set);
        }
    }

    /// takeRemainingCPUs: single CPUs in the packed (core by core) or spread (socket by
    /// socket, ascending ids) order, computed once.
    pub(super) fn take_remaining(&mut self, spread: bool) {
        if !spread && self.walk {
            return self.take_remaining_walk();
        }
        let mut order = Vec::new();
        if spread {
            for s in self.socket_order() {
                self.free_in(SOCKET, s, &mut order);
            }
        } else {
            for c in self.core_order() {
                self.free_in(CORE, c, &mut order);
            }
        }
        for p in order {
            self.take(&[p]);
            if self.is_satisfied() {
                return;
            }
        }
    }

    /// The parents the core order expands, in order, and the relation to their cores.
    fn core_parents(&self) -> (Vec<u32>, usize) {
        if self.cx.numa_first {
            (self.socket_order(), SOCKET_CORE)
        } else {
            (self.numa_order(), NUMA_CORE)
        }
    }

    /// [`Self::take_full`] of cores without building the order, when every core is listed
    /// once (`Ctx::core_once`). The parents' order is the built one's (made before any
    /// take). A core's counters (its free CPUs, its pair with its parent) change only
    /// when its own CPUs are taken, so judging a core when its parent is reached sees
    /// what the built list saw. Among fully free cores the (free CPUs, id) order is the
    /// id order, which is the relation's row order. No core is taken once the request
    /// needs fewer CPUs than the smallest core.
    fn take_full_cores_walk(&mut self) {
        let cx = self.cx;
        let (parents, rel) = self.core_parents();
        let r = &cx.rels[rel];
        for p in parents {
            if self.needed < cx.smallest[CORE] as i64 {
                return;
            }
            for &pair in r.by_a.row(p) {
                let c = r.pair_b[pair as usize];
                if self.pfree(rel, pair) > 0 && self.is_unit_free(CORE, c) {
                    let all = cx.members[CORE].row(c);
                    if self.needed >= all.len() as i64 {
                        self.take(all);
                    }
                }
            }
        }
    }

    /// [`Self::take_remaining`] (packed order) without building the order, when every
    /// core is listed once: a parent's cores are sorted when it is reached, before any
    /// of their CPUs is taken, so they sort as in the built list.
    fn take_remaining_walk(&mut self) {
        let cx = self.cx;
        let (parents, rel) = self.core_parents();
        let r = &cx.rels[rel];
        let mut cores: Vec<u32> = Vec::new();
        let mut cpus: Vec<u32> = Vec::new();
        for p in parents {
            cores.clear();
            cores.extend(
                r.by_a
                    .row(p)
                    .iter()
                    .filter(|&&pair| self.pfree(rel, pair) > 0)
                    .map(|&pair| r.pair_b[pair as usize]),
            );
            self.sort_tail(CORE, &mut cores, 0);
            for &c in &cores {
                cpus.clear();
                self.free_in(CORE, c, &mut cpus);
                for &cpu in &cpus {
                    self.take(&[cpu]);
                    if self.is_satisfied() {
                        return;
                    }
                }
            }
        }
    }

    /// rangeNUMANodesNeededToSatisfy.
    pub(super) fn numa_range(&self, group: usize) -> (usize, usize) {
        let num_numa = self.cx.units(NUMA).max(1);
        let available_numa = (0..num_numa as u32)
            .filter(|&x| self.ufree(NUMA, x) > 0)
            .count();
        let num_cpus = self.cx.ids.len().max(1);
        let groups = (num_cpus - 1) / group + 1;
        let groups_per_numa = (groups - 1) / num_numa + 1;
        let needed = self.needed.max(1) as usize;
        let groups_needed = (needed - 1) / group + 1;
        let min = (groups_needed - 1) / groups_per_numa + 1;
        (min, groups_needed.min(available_numa))
    }
}
