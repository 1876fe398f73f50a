//! The static CPU policy's hint list as a [`HintFamily`] (`generateCPUTopologyHints`
//! without listing every mask): masks of NUMA nodes with CPUs that hold every reusable
//! CPU and enough available + reusable CPUs. Such masks are closed under adding nodes.

use crate::bitmask::NumaMask;
use crate::topology::covering::Capacity;
use crate::topology::family::{HintFamily, SizeSet};
use crate::topology::sums::Sums;
use std::cell::OnceCell;

#[derive(Debug, Clone)]
pub struct CpuHintFamily {
    universe: NumaMask,
    /// Indexed by NUMA id.
    avail: Vec<usize>,
    /// `avail` as one-dimensional sums, against what they must reach beyond the
    /// reusable CPUs; built on first use (only the capacity bound asks for it).
    sums: OnceCell<Sums>,
    /// Node ids by available CPUs, most first (ties: lower id).
    by_avail: Vec<u32>,
    reusable_count: usize,
    reuse_mask: NumaMask,
    request: usize,
    min_affinity: u32,
    /// `align-by-socket`: socket mask of each NUMA node, and the socket count that is
    /// also preferred. Given to `new` as (numa, socket) pairs and NUMA nodes per socket.
    socket_of: Option<(Vec<u64>, usize)>,
}

impl CpuHintFamily {
    pub fn new(
        numa_total: &[(u32, usize)],
        avail_per_numa: &[(u32, usize)],
        reusable_count: usize,
        reuse_mask: NumaMask,
        request: usize,
        socket_of: Option<(Vec<(u32, u32)>, usize)>,
    ) -> CpuHintFamily {
        let max = numa_total
            .iter()
            .map(|&(n, _)| n as usize + 1)
            .max()
            .unwrap_or(0);
        let mut avail = vec![0usize; max];
        for &(n, c) in avail_per_numa {
            avail[n as usize] = c;
        }
        let universe = numa_total
            .iter()
            .fold(NumaMask::EMPTY, |m, &(n, _)| m.or(NumaMask::single(n)));
        let mut totals: Vec<usize> = numa_total.iter().map(|&(_, t)| t).collect();
        totals.sort_unstable_by(|a, b| b.cmp(a));
        let mut acc = 0;
        let mut min_affinity = universe.count();
        for (i, t) in totals.iter().enumerate() {
            acc += t;
            if acc >= request {
                min_affinity = i as u32 + 1;
                break;
            }
        }
        // `socket_of` carries NUMA nodes per socket; the preferred socket count follows
        // from the minimal affinity.
        let socket_of = socket_of.filter(|(_, per)| *per > 0).map(|(pairs, per)| {
            let mut v = vec![0u64; max];
            for (numa, socket) in pairs {
                v[numa as usize] |= 1u64 << (socket % 64);
            }
            (v, (min_affinity as usize).div_ceil(per))
        });
        let mut by_avail: Vec<u32> = universe.ids().collect();
        by_avail.sort_by_key(|&n| (std::cmp::Reverse(avail[n as usize]), n));
        CpuHintFamily {
            universe,
            by_avail,
            sums: OnceCell::new(),
            avail,
            reusable_count,
            reuse_mask,
            request,
            min_affinity,
            socket_of,
        }
    }

    fn sums(&self) -> &Sums {
        self.sums.get_or_init(|| {
            Sums::from_fn(
                self.avail.len(),
                vec![self.request.saturating_sub(self.reusable_count) as u64],
                |i, _| self.avail[i] as u64,
            )
        })
    }

    fn count(&self, m: NumaMask) -> usize {
        self.reusable_count + m.ids().map(|n| self.avail[n as usize]).sum::<usize>()
    }
}

impl HintFamily for CpuHintFamily {
    fn get(&self, m: NumaMask) -> Option<bool> {
        if m.is_empty() || !m.is_subset_of(self.universe) || !self.reuse_mask.is_subset_of(m) {
            return None;
        }
        if self.count(m) < self.request {
            return None;
        }
        let mut preferred = m.count() == self.min_affinity;
        if let Some((sockets, want)) = &self.socket_of {
            let s = m.ids().fold(0u64, |a, n| a | sockets[n as usize]);
            preferred |= s.count_ones() as usize == *want;
        }
        Some(preferred)
    }

    fn universe(&self) -> NumaMask {
        self.universe
    }

    fn preferred_sizes(&self) -> SizeSet {
        if self.socket_of.is_some() {
            SizeSet::up_to(self.universe.count())
        } else {
            SizeSet::single(self.min_affinity)
        }
    }

    fn min_size(&self) -> Option<u32> {
        let base = self.reuse_mask.and(self.universe);
        let mut have = self.count(base);
        let mut size = base.count();
        // the other nodes, most available CPUs first (`by_avail` holds every node of
        // the universe in that order)
        let mut it = self
            .by_avail
            .iter()
            .filter(|&&n| !base.is_set(n))
            .map(|&n| self.avail[n as usize]);
        while have < self.request || size == 0 {
            have += it.next()?;
            size += 1;
        }
        Some(size)
    }

    /// Members hold the reusable CPUs' nodes and enough available CPUs beyond them.
    fn capacity(&self, inn: NumaMask) -> Option<Capacity> {
        self.sums()
            .capacity(inn.or(self.reuse_mask).and(self.universe), self.universe)
    }

    /// Members of `size` nodes hold `inn`, the reusable CPUs' nodes, and CPUs reaching
    /// the request: a node is in one exactly when it completes to a member with the
    /// richest other nodes.
    fn sized_span(&self, inn: NumaMask, out: NumaMask, size: u32) -> NumaMask {
        let inn = inn.or(self.reuse_mask);
        let pool = NumaMask(self.universe.0 & !out.0);
        if !inn.is_subset_of(pool) {
            return NumaMask::EMPTY;
        }
        self.sums().sized_span(inn, pool, size)
    }

    fn extends(&self, inn: NumaMask, out: NumaMask, size: Option<u32>) -> bool {
        self.extends_witness(inn, out, size).0
    }

    fn extends_witness(
        &self,
        inn: NumaMask,
        out: NumaMask,
        size: Option<u32>,
    ) -> (bool, Option<NumaMask>) {
        let inn = inn.or(self.reuse_mask);
        let pool = NumaMask(self.universe.0 & !out.0);
        if !inn.is_subset_of(pool) {
            return (false, None);
        }
        let member = match size {
            // Members are closed under adding nodes: the largest candidate decides.
            None => self.get(pool).is_some().then_some(pool),
            // Membership is a sum reaching the request, so the `k`-node mask with the
            // most CPUs is `inn` plus the pool's richest nodes: it decides, no search.
            Some(k) if inn.count() <= k => {
                let mut m = inn;
                for &n in &self.by_avail {
                    if m.count() == k {
                        break;
                    }
                    if pool.is_set(n) {
                        m = m.or(NumaMask::single(n));
                    }
                }
                (m.count() == k && self.get(m).is_some()).then_some(m)
            }
            Some(_) => None,
        };
        (member.is_some(), member)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]
        /// `sized_span` is exactly the union of the members of that size containing
        /// `inn` and avoiding `out` (the preferred walk's pruning relies on the superset).
        #[test]
        fn sized_span_is_the_union_of_members(
            totals in prop::collection::vec(0usize..8, 1..=8),
            avail_seed in prop::collection::vec(0usize..8, 8),
            reuse in 0u64..256, reusable_count in 0usize..4,
            request in 0usize..30, inn in 0u64..256, out in 0u64..256, k in 0u32..9,
        ) {
            // nodes without CPUs are not in the universe
            let numa_total: Vec<(u32, usize)> = totals
                .iter()
                .enumerate()
                .filter(|(_, &t)| t > 0)
                .map(|(n, &t)| (n as u32, t))
                .collect();
            let avail: Vec<(u32, usize)> = numa_total
                .iter()
                .map(|&(n, t)| (n, avail_seed[n as usize].min(t)))
                .collect();
            let universe = numa_total.iter().fold(0u64, |m, &(n, _)| m | 1 << n);
            let reuse_mask = NumaMask(reuse & universe & 0b11);
            let f = CpuHintFamily::new(&numa_total, &avail, reusable_count, reuse_mask, request, None);
            let (inn, out) = (NumaMask(inn & !out), NumaMask(out));
            let union = (1u64..256)
                .map(NumaMask)
                .filter(|&m| {
                    m.count() == k && inn.is_subset_of(m) && m.and(out).is_empty() && f.get(m).is_some()
                })
                .fold(NumaMask::EMPTY, NumaMask::or);
            prop_assert_eq!(f.sized_span(inn, out, k), union);
        }
    }
}
