//! The static policy's hint list as a [`HintFamily`], for machines too large to list
//! every NUMA mask. Membership follows `calculateHints` rule by rule.

use super::policy_static::{Requests, StaticPolicy};
use crate::bitmask::NumaMask;
use crate::topology::family::{smallest_k_subset, HintFamily, Monotone};
use crate::topology::hint::TopologyHint;

#[derive(Debug, Clone)]
pub struct MemoryHintFamily {
    universe: NumaMask,
    /// Per resource (request order): requested bytes.
    req: Vec<u64>,
    /// Per node id (index = id): allocatable and free per resource.
    alloc: Vec<Vec<u64>>,
    free: Vec<Vec<u64>>,
    assigned: NumaMask,
    cells: Vec<NumaMask>,
    cells_len: Vec<usize>,
    /// Masks holding this pod's reusable init-container memory, per resource.
    reusable: Vec<(NumaMask, Vec<u64>)>,
    /// Nodes with no assignments: free to join a new group.
    zero: NumaMask,
    groups: Vec<NumaMask>,
    min_affinity: u32,
    min_size: Option<u32>,
}

fn sum(v: &[Vec<u64>], m: NumaMask, r: usize) -> u64 {
    m.ids()
        .map(|n| v[n as usize][r])
        .fold(0u64, u64::wrapping_add)
}

/// Is there a subset of `pool` with exactly `k` nodes whose sums reach `need`?
/// Depth-first with an optimistic bound per resource.
fn exists_subset(vals: &[Vec<u64>], pool: &[u32], k: usize, need: &[u64]) -> bool {
    fn rec(vals: &[Vec<u64>], pool: &[u32], start: usize, k: usize, need: &mut Vec<u64>) -> bool {
        if need.iter().all(|&x| x == 0) {
            return true;
        }
        if k == 0 || pool.len() - start < k {
            return false;
        }
        // Bound: the k largest remaining values per resource.
        for (r, &nd) in need.iter().enumerate() {
            let mut rest: Vec<u64> = pool[start..].iter().map(|&n| vals[n as usize][r]).collect();
            rest.sort_unstable_by(|a, b| b.cmp(a));
            let best: u64 = rest.iter().take(k).fold(0u64, |a, &b| a.saturating_add(b));
            if best < nd {
                return false;
            }
        }
        for i in start..pool.len() {
            let n = pool[i] as usize;
            let saved = need.clone();
            for (r, x) in need.iter_mut().enumerate() {
                *x = x.saturating_sub(vals[n][r]);
            }
            if rec(vals, pool, i + 1, k - 1, need) {
                return true;
            }
            *need = saved;
        }
        false
    }
    let mut need = need.to_vec();
    rec(vals, pool, 0, k, &mut need)
}

impl MemoryHintFamily {
    pub fn new(p: &StaticPolicy, pod_uid: &str, req: &Requests) -> MemoryHintFamily {
        let ms = &p.machine_state;
        let max = ms.keys().map(|&n| n as usize + 1).max().unwrap_or(0);
        let names: Vec<&String> = req.keys().collect();
        let mut alloc = vec![vec![0u64; names.len()]; max];
        let mut free = vec![vec![0u64; names.len()]; max];
        let mut cells = vec![NumaMask::EMPTY; max];
        let mut cells_len = vec![0usize; max];
        let mut universe = NumaMask::EMPTY;
        let mut assigned = NumaMask::EMPTY;
        let mut groups: Vec<NumaMask> = Vec::new();
        for (&id, ns) in ms {
            let i = id as usize;
            universe = universe.or(NumaMask::single(id));
            for (r, name) in names.iter().enumerate() {
                let t = ns.memory_map.get(*name).copied().unwrap_or_default();
                alloc[i][r] = t.allocatable;
                free[i][r] = t.free;
            }
            cells[i] = NumaMask::from_ids(ns.cells.iter().map(|&c| c as i64)).unwrap_or_default();
            cells_len[i] = ns.cells.len();
            if ns.number_of_assignments > 0 {
                assigned = assigned.or(NumaMask::single(id));
                if ns.cells.len() > 1 && !groups.contains(&cells[i]) {
                    groups.push(cells[i]);
                }
            }
        }
        let reusable = p
            .reusable_masks(pod_uid)
            .into_iter()
            .map(|(m, per)| {
                (
                    m,
                    names
                        .iter()
                        .map(|n| per.get(*n).copied().unwrap_or(0))
                        .collect(),
                )
            })
            .collect();
        let mut f = MemoryHintFamily {
            universe,
            req: req.values().copied().collect(),
            alloc,
            free,
            assigned,
            cells,
            cells_len,
            reusable,
            zero: NumaMask(universe.0 & !assigned.0),
            groups,
            min_affinity: universe.count(),
            min_size: None,
        };
        let all: Vec<u32> = universe.ids().collect();
        let one_node = all.iter().any(|&n| {
            f.req
                .iter()
                .enumerate()
                .all(|(r, &want)| f.alloc[n as usize][r] >= want)
        });
        f.min_affinity = if one_node {
            1
        } else {
            (2..=all.len())
                .find(|&k| exists_subset(&f.alloc, &all, k, &f.req))
                .map_or(universe.count(), |k| k as u32)
        };
        f.min_size = f.compute_min_size();
        f
    }

    fn reusable_for(&self, m: NumaMask, r: usize) -> u64 {
        self.reusable
            .iter()
            .filter(|(rm, _)| *rm == m)
            .map(|(_, v)| v[r])
            .next()
            .unwrap_or(0)
    }

    fn compute_min_size(&self) -> Option<u32> {
        let mut best: Option<u32> = None;
        let consider = |best: &mut Option<u32>, s: u32| *best = Some(best.map_or(s, |b| b.min(s)));
        if self
            .universe
            .ids()
            .any(|n| self.get(NumaMask::single(n)).is_some())
        {
            return Some(1);
        }
        for &g in &self.groups {
            if self.get(g).is_some() {
                consider(&mut best, g.count());
            }
        }
        for (m, _) in &self.reusable {
            if self.get(*m).is_some() {
                consider(&mut best, m.count());
            }
        }
        let zero: Vec<u32> = self.zero.ids().collect();
        let limit = best.map_or(zero.len(), |b| (b as usize).min(zero.len()));
        if let Some(k) = (2..=limit).find(|&k| exists_subset(&self.free, &zero, k, &self.req)) {
            consider(&mut best, k as u32);
        }
        best
    }

    /// `findBestHint` over the members that contain `base`: preferred first, then the
    /// narrowest. `None` when no member contains it.
    pub fn best_member(&self, base: NumaMask) -> Option<TopologyHint> {
        let first_of_size = |s: u32| self.smallest_member(base, s);
        if let Some(m) = first_of_size(self.min_affinity) {
            return Some(TopologyHint::new(m, true));
        }
        let from = base.count().max(self.min_size.unwrap_or(1));
        (from..=self.universe.count())
            .find_map(first_of_size)
            .map(|m| TopologyHint::new(m, m.count() == self.min_affinity))
    }
}

impl HintFamily for MemoryHintFamily {
    fn get(&self, m: NumaMask) -> Option<bool> {
        if m.is_empty() || !m.is_subset_of(self.universe) {
            return None;
        }
        for (r, &want) in self.req.iter().enumerate() {
            if sum(&self.alloc, m, r) < want {
                return None;
            }
        }
        if m.count() == 1 {
            let n = m.ids().next().expect("one node") as usize;
            if self.cells_len[n] > 1 {
                return None;
            }
        } else {
            for n in m.and(self.assigned).ids() {
                let n = n as usize;
                if self.cells_len[n] == 1
                    || self.cells[n] != m
                    || self.cells_len[n] != m.count() as usize
                {
                    return None;
                }
            }
        }
        for (r, &want) in self.req.iter().enumerate() {
            if sum(&self.free, m, r).wrapping_add(self.reusable_for(m, r)) < want {
                return None;
            }
        }
        Some(m.count() == self.min_affinity)
    }

    fn universe(&self) -> NumaMask {
        self.universe
    }

    fn preferred_sizes(&self) -> Vec<u32> {
        vec![self.min_affinity]
    }

    fn min_size(&self) -> Option<u32> {
        self.min_size
    }

    fn member_within(&self, t: NumaMask, excluded: NumaMask) -> bool {
        if t.is_empty() || !t.is_subset_of(self.universe) || !t.and(excluded).is_empty() {
            return false;
        }
        // New groups of unassigned nodes are closed under adding unassigned nodes.
        if t.is_subset_of(self.zero) {
            let m = NumaMask(self.zero.0 & !excluded.0);
            if m.count() >= 2 && self.get(m).is_some() {
                return true;
            }
        }
        // Single nodes, existing groups and masks with reusable memory.
        if t.count() == 1 && self.get(t).is_some() {
            return true;
        }
        self.groups
            .iter()
            .chain(self.reusable.iter().map(|(m, _)| m))
            .any(|&g| t.is_subset_of(g) && g.and(excluded).is_empty() && self.get(g).is_some())
    }

    fn smallest_member(&self, base: NumaMask, k: u32) -> Option<NumaMask> {
        if k < base.count() || k == 0 || !base.is_subset_of(self.universe) {
            return None;
        }
        // Singles, existing groups and masks with reusable memory are listed...
        let mut best: Option<NumaMask> = None;
        let mut consider = |m: NumaMask| {
            if m.count() == k
                && base.is_subset_of(m)
                && self.get(m).is_some()
                && best.is_none_or(|b| m.0 < b.0)
            {
                best = Some(m);
            }
        };
        if k == 1 {
            for n in self.universe.ids() {
                consider(NumaMask::single(n));
            }
        }
        for &g in &self.groups {
            consider(g);
        }
        for (m, _) in &self.reusable {
            consider(*m);
        }
        // ... new groups of unassigned nodes are found by their free memory.
        if k >= 2 && base.is_subset_of(self.zero) {
            let need: Vec<u64> = (0..self.req.len())
                .map(|r| self.req[r].saturating_sub(sum(&self.free, base, r)))
                .collect();
            let pool = NumaMask(self.zero.0 & !base.0);
            if let Some(c) = smallest_k_subset(pool, k - base.count(), &self.free, &need) {
                let m = base.or(c);
                if self.get(m).is_some() && best.is_none_or(|b| m.0 < b.0) {
                    best = Some(m);
                }
            }
        }
        best
    }

    fn monotone(&self) -> Monotone {
        Monotone {
            pool: self.zero,
            must: NumaMask::EMPTY,
            vals: self.free.clone(),
            need: self.req.clone(),
            min_count: 2,
        }
    }

    fn special_members(&self) -> Vec<NumaMask> {
        let singles = self.universe.ids().map(NumaMask::single);
        singles
            .chain(self.groups.iter().copied())
            .chain(self.reusable.iter().map(|(m, _)| *m))
            .filter(|&m| self.get(m).is_some())
            .collect()
    }

    fn has_projection(&self, x: NumaMask, u: NumaMask) -> bool {
        if self.get(x).is_some() {
            return true;
        }
        if x.is_subset_of(self.zero) {
            let m = x.or(NumaMask(self.zero.0 & !u.0));
            if m != x
                && m.count() >= 2
                && (0..self.req.len()).all(|r| sum(&self.free, m, r) >= self.req[r])
                && self.get(m).is_some()
            {
                return true;
            }
        }
        self.groups
            .iter()
            .chain(self.reusable.iter().map(|(m, _)| m))
            .any(|&g| g.and(u) == x && self.get(g).is_some())
    }
}
