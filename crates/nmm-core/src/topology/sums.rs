//! Subsets of NUMA nodes whose per-node values reach a need, summed the way the kubelet
//! sums them: Go `uint64` additions, which wrap modulo 2^64.
//!
//! The wrap is real input, not an overflow to guard against: a node whose hugepages and
//! reservation exceed its memory has an allocatable of "2^64 minus a little", and adding
//! it to a mask's sum subtracts a little (the kubelet starts on such machines; `nmm
//! validate` warns). With wrapping, the sets that reach a need are no longer closed under
//! adding nodes, so every search here works on exact sums (`i128`, no wrap) and asks, of
//! the range of sums still reachable, whether it meets a value whose residue modulo 2^64
//! is at least the need. That test only prunes; every accepted set is checked exactly by
//! the caller's `leaf` predicate, so the searches are exact for every input.

use crate::bitmask::NumaMask;

const WRAP: i128 = 1i128 << 64;

/// Go's `uint64` sum of `vals[n][dim]` over the nodes of `m`.
pub fn wrapping_sum(vals: &[Vec<u64>], m: NumaMask, dim: usize) -> u64 {
    m.ids()
        .map(|n| vals.get(n as usize).map_or(0, |v| v[dim]))
        .fold(0u64, u64::wrapping_add)
}

/// Whether some integer `s` in `[lo, hi]` has `s mod 2^64 >= need` (`0 <= lo <= hi`).
fn range_meets(lo: i128, hi: i128, need: u64) -> bool {
    if hi < lo {
        return false;
    }
    let need = need as i128;
    let block = lo.div_euclid(WRAP);
    let start = block * WRAP;
    // this block: [start + need, start + 2^64 - 1] against [lo, hi]
    if lo.max(start + need) <= hi.min(start + WRAP - 1) {
        return true;
    }
    // the next block starts at residue 0 and reaches `need` at start + 2^64 + need
    start + WRAP + need <= hi
}

/// Necessary sum conditions of a search: every set the leaf predicate accepts has, in
/// every dimension, a wrapped sum of at least `need[dim]`.
#[derive(Debug, Clone, Copy)]
pub struct Sums<'a> {
    /// `vals[node][dim]`, indexed by node id (missing rows count as zeros).
    pub vals: &'a [Vec<u64>],
    pub need: &'a [u64],
}

impl Sums<'_> {
    fn val(&self, n: u32, d: usize) -> i128 {
        self.vals.get(n as usize).map_or(0, |v| v[d] as i128)
    }

    /// Whether the wrapped sums of `m` reach the need in every dimension.
    pub fn satisfied(&self, m: NumaMask) -> bool {
        (0..self.need.len()).all(|d| wrapping_sum(self.vals, m, d) >= self.need[d])
    }

    /// Whether some set `m` with `inn ⊆ m ⊆ inn ∪ pool`, `|m| >= min_count` and, when
    /// `size` is given, `|m| == size`, is accepted by `leaf`. Pruned by the sums (which
    /// `leaf` must imply), exact through `leaf`.
    pub fn exists(
        &self,
        inn: NumaMask,
        pool: NumaMask,
        size: Option<u32>,
        min_count: u32,
        leaf: &dyn Fn(NumaMask) -> bool,
    ) -> bool {
        let pool = NumaMask(pool.0 & !inn.0);
        // Nodes with a wrapped value first: deciding them early narrows the reachable
        // ranges below one wrap, where the bound prunes.
        let mut ids: Vec<u32> = pool.ids().collect();
        let big = |n: u32| (0..self.need.len()).any(|d| self.val(n, d) >= 1i128 << 63);
        ids.sort_by_key(|&n| (!big(n), n));
        let cur: Vec<i128> = (0..self.need.len())
            .map(|d| inn.ids().map(|n| self.val(n, d)).sum())
            .collect();
        let (lo_count, hi_count) = match size {
            Some(k) => (k.max(min_count), k),
            None => (min_count, u32::MAX),
        };
        self.rec(&ids, inn, &cur, lo_count, hi_count, leaf)
    }

    fn rec(
        &self,
        ids: &[u32],
        inn: NumaMask,
        cur: &[i128],
        lo_count: u32,
        hi_count: u32,
        leaf: &dyn Fn(NumaMask) -> bool,
    ) -> bool {
        let have = inn.count();
        if have > hi_count {
            return false;
        }
        let add_min = lo_count.saturating_sub(have) as usize;
        let add_max = ((hi_count - have) as usize).min(ids.len());
        if add_min > add_max {
            return false;
        }
        let take_all = inn.or(ids
            .iter()
            .fold(NumaMask::EMPTY, |m, &n| m.or(NumaMask::single(n))));
        if add_max == ids.len() && leaf(take_all) {
            return true;
        }
        if add_max == 0 {
            return leaf(inn);
        }
        // Bound: the reachable sums lie between the add_min smallest and the add_max
        // largest additions, per dimension.
        let mut v: Vec<i128> = Vec::with_capacity(ids.len());
        for (d, &need) in self.need.iter().enumerate() {
            v.clear();
            v.extend(ids.iter().map(|&n| self.val(n, d)));
            let (lo, hi) = if add_min == 0 && add_max == v.len() {
                // no count bound: nothing to sort
                (cur[d], cur[d] + v.iter().sum::<i128>())
            } else {
                // partial selections, not a sort: this runs at every step of the search
                let len = v.len();
                let lo = if add_min == 0 {
                    0
                } else {
                    v.select_nth_unstable(add_min - 1);
                    v[..add_min].iter().sum::<i128>()
                };
                let hi = if add_max == 0 {
                    0
                } else {
                    v.select_nth_unstable(len - add_max);
                    v[len - add_max..].iter().sum::<i128>()
                };
                (cur[d] + lo, cur[d] + hi)
            };
            if !range_meets(lo, hi, need) {
                return false;
            }
        }
        let (first, rest) = (ids[0], &ids[1..]);
        let with: Vec<i128> = cur
            .iter()
            .enumerate()
            .map(|(d, &c)| c + self.val(first, d))
            .collect();
        if self.rec(
            rest,
            inn.or(NumaMask::single(first)),
            &with,
            lo_count,
            hi_count,
            leaf,
        ) {
            return true;
        }
        rest.len() >= add_min && self.rec(rest, inn, cur, lo_count, hi_count, leaf)
    }

    /// The numerically smallest set of exactly `k` nodes with `inn ⊆ m ⊆ inn ∪ pool`
    /// that `leaf` accepts: nodes are decided from the highest down, each left out when
    /// a set without it still exists (a mask is smaller when its highest differing node
    /// is absent).
    pub fn smallest(
        &self,
        inn: NumaMask,
        pool: NumaMask,
        k: u32,
        leaf: &dyn Fn(NumaMask) -> bool,
    ) -> Option<NumaMask> {
        let mut pool = NumaMask(pool.0 & !inn.0);
        let mut inn = inn;
        if !self.exists(inn, pool, Some(k), 0, leaf) {
            return None;
        }
        let mut ids: Vec<u32> = pool.ids().collect();
        ids.reverse();
        for n in ids {
            if inn.count() == k {
                break;
            }
            let without = NumaMask(pool.0 & !NumaMask::single(n).0);
            if self.exists(inn, without, Some(k), 0, leaf) {
                pool = without;
            } else {
                inn = inn.or(NumaMask::single(n));
                pool = without;
            }
        }
        (inn.count() == k && leaf(inn)).then_some(inn)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn brute(
        vals: &[Vec<u64>],
        need: &[u64],
        inn: NumaMask,
        pool: NumaMask,
        size: Option<u32>,
    ) -> Vec<NumaMask> {
        let s = Sums { vals, need };
        let all = inn.or(pool);
        let mut out = vec![];
        for m in 0..(1u64 << vals.len()) {
            let m = NumaMask(m);
            if inn.is_subset_of(m)
                && m.is_subset_of(all)
                && size.is_none_or(|k| m.count() == k)
                && s.satisfied(m)
            {
                out.push(m);
            }
        }
        out
    }

    #[test]
    fn range_meets_follows_the_residue() {
        let w = 1i128 << 64;
        assert!(range_meets(5, 5, 5));
        assert!(!range_meets(4, 4, 5));
        assert!(!range_meets(w, w + 4, 5));
        assert!(range_meets(w - 1, w + 1, 5)); // w - 1 has residue 2^64 - 1
        assert!(range_meets(w + 5, w + 5, 5));
        assert!(!range_meets(0, 4, 5));
    }

    fn value() -> impl Strategy<Value = u64> {
        prop_oneof![
            4 => 0u64..20,
            1 => (1u64..20).prop_map(|d| 0u64.wrapping_sub(d)),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1500))]
        /// The pruned searches find exactly what a brute force over all subsets finds,
        /// wrapped values included.
        #[test]
        fn searches_equal_brute_force(
            vals in (1usize..=7, 1usize..=3).prop_flat_map(|(n, d)| prop::collection::vec(prop::collection::vec(value(), d), n)),
            need_seed in prop::collection::vec(0u64..40, 3),
            inn in 0u64..128, pool in 0u64..128, k in 0u32..8, sized in any::<bool>(),
        ) {
            let n = vals.len();
            let full = (1u64 << n) - 1;
            let need: Vec<u64> = need_seed[..vals[0].len()].to_vec();
            let (inn, pool) = (NumaMask(inn & full & !pool), NumaMask(pool & full));
            let s = Sums { vals: &vals, need: &need };
            let size = sized.then_some(k);
            let leaf = |m: NumaMask| s.satisfied(m);
            let found = brute(&vals, &need, inn, pool, size);
            prop_assert_eq!(s.exists(inn, pool, size, 0, &leaf), !found.is_empty());
            let smallest = brute(&vals, &need, inn, pool, Some(k)).into_iter().min();
            prop_assert_eq!(s.smallest(inn, pool, k, &leaf), smallest);
        }
    }
}
