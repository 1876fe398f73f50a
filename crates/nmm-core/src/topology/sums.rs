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

use super::covering::{AndBound, Capacity};
use crate::bitmask::NumaMask;
use smallvec::SmallVec;

/// Per-dimension sums of one search: inline for up to eight dimensions (four resources'
/// allocatable and free), the searches run hundreds of times per admission.
type DimSums = SmallVec<[i128; 8]>;

const WRAP: i128 = 1i128 << 64;

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
/// every dimension, a wrapped sum of at least `need[dim]`. Built once per hint list
/// ([`Sums::from_fn`] sorts each dimension), then asked many times during a merge.
#[derive(Debug, Clone)]
pub struct Sums {
    /// `vals[node * dims + dim]` for node ids below `rows` (other nodes count as zeros):
    /// one flat table, as a list is built at every admission.
    vals: Vec<u64>,
    rows: usize,
    need: Vec<u64>,
    /// Per dimension (`order[dim * rows..][..rows]`), the node ids by value, largest
    /// first (ties: lower id). The bound reads the largest and smallest values of a pool
    /// from these without sorting at every step of the search.
    order: Vec<u32>,
    /// `sorted[i]` is the value of node `order[i]` in its dimension (read without
    /// indexing the table again in the search's bound).
    sorted: Vec<u64>,
    /// The order the search decides nodes in: nodes with a wrapped value first
    /// (deciding them early narrows the reachable ranges below one wrap, where the
    /// bound prunes), then the nodes that go furthest towards the need (so the first
    /// branch taken usually holds a member), then by id.
    rank: Vec<u32>,
    /// Per dimension, whether the sum over every node stays below 2^64 (then no sum
    /// of any set wraps).
    wrap_free: Vec<bool>,
}

/// The state of one [`Sums::find`] search.
struct Search<'a> {
    s: &'a Sums,
    lo_count: u32,
    hi_count: u32,
    leaf: &'a dyn Fn(NumaMask) -> bool,
    /// Exact sums of the nodes taken so far, and of the nodes still undecided.
    cur: DimSums,
    rest_sum: DimSums,
}

impl Sums {
    /// `vals[node][dim]`, indexed by node id (missing rows count as zeros). The tests'
    /// form; the providers fill their tables with [`Sums::from_fn`].
    #[cfg(test)]
    pub fn new(vals: Vec<Vec<u64>>, need: Vec<u64>) -> Sums {
        Sums::from_fn(vals.len(), need, |i, d| vals[i][d])
    }

    /// Node `i`'s value in dimension `d` is `val(i, d)`, for nodes `0..rows`.
    pub fn from_fn(rows: usize, need: Vec<u64>, val: impl Fn(usize, usize) -> u64) -> Sums {
        let dims = need.len();
        let rows = rows.min(64);
        let mut vals = Vec::with_capacity(rows * dims);
        for i in 0..rows {
            vals.extend((0..dims).map(|d| val(i, d)));
        }
        let at = |i: u32, d: usize| vals[i as usize * dims + d];
        let mut order = Vec::with_capacity(rows * dims);
        // largest first, ties to the lower id: `!v` sorts descending values ascending
        let mut keyed: Vec<(u64, u32)> = Vec::with_capacity(rows);
        for d in 0..dims {
            keyed.clear();
            keyed.extend((0..rows as u32).map(|i| (!at(i, d), i)));
            keyed.sort_unstable();
            order.extend(keyed.iter().map(|k| k.1));
        }
        let sorted = order
            .iter()
            .enumerate()
            .map(|(i, &n)| at(n, i / rows.max(1)))
            .collect();
        let big = |i: u32| (0..dims).any(|d| at(i, d) >= 1u64 << 63);
        // How far a node goes towards the need, each dimension capped at its need.
        let reach = |i: u32| -> f64 {
            (0..dims)
                .filter(|&d| need[d] > 0)
                .map(|d| at(i, d).min(need[d]) as f64 / need[d] as f64)
                .sum()
        };
        let mut ranked: Vec<(bool, f64, u32)> =
            (0..rows as u32).map(|i| (!big(i), -reach(i), i)).collect();
        // ids are distinct, so an unstable sort gives the one order
        ranked.sort_unstable_by(|a, b| a.0.cmp(&b.0).then(a.1.total_cmp(&b.1)).then(a.2.cmp(&b.2)));
        let rank = ranked.into_iter().map(|k| k.2).collect();
        let wrap_free = (0..dims)
            .map(|d| (0..rows as u32).map(|i| at(i, d) as i128).sum::<i128>() < WRAP)
            .collect();
        Sums {
            wrap_free,
            vals,
            rows,
            need,
            order,
            sorted,
            rank,
        }
    }

    fn row(&self, n: u32) -> Option<&[u64]> {
        let dims = self.need.len();
        ((n as usize) < self.rows).then(|| &self.vals[n as usize * dims..][..dims])
    }

    fn val(&self, n: u32, d: usize) -> i128 {
        self.row(n).map_or(0, |r| r[d] as i128)
    }

    /// What a set `m` with `base ⊆ m ⊆ base ∪ pool` whose sums reach the need can leave
    /// out of `pool`: the nodes of the pool weigh their values, and the capacity is what
    /// the pool holds beyond the need not met by `base`. A dimension counts only where no
    /// sum over `base ∪ pool` can wrap (then wrapped and exact sums agree, and reaching
    /// the need is closed under adding nodes): in the others nothing is bounded, as a
    /// set can also meet the need by wrapping. `None` when no dimension counts, and when
    /// the pool cannot meet the need at all.
    pub fn capacity(&self, base: NumaMask, pool: NumaMask) -> Option<Capacity> {
        let pool = NumaMask(pool.0 & !base.0);
        let dims = self.need.len();
        let mut cap = vec![u64::MAX; dims];
        let mut counts = vec![false; dims];
        for (d, &need) in self.need.iter().enumerate() {
            let total = |m: NumaMask| m.ids().map(|n| self.val(n, d)).sum::<i128>();
            let (have, spare) = (total(base), total(pool));
            if have + spare >= WRAP {
                continue;
            }
            let short = (need as i128 - have).max(0);
            if spare < short {
                return None;
            }
            cap[d] = (spare - short) as u64;
            counts[d] = true;
        }
        if !counts.contains(&true) {
            return None;
        }
        Some(Capacity::for_nodes(self.rows, cap, |n, d| {
            if counts[d] && pool.is_set(n) {
                self.val(n, d) as u64
            } else {
                0
            }
        }))
    }

    /// The [`AndBound`] of sets `T ∪ X` (`X` within `pool`) reaching the need, for
    /// `copies` copies with the nodes of `alone` left out by no other list; dimensions
    /// whose sums over the pool can wrap are not bounded.
    pub fn and_bound(
        &self,
        pool: NumaMask,
        alone: NumaMask,
        copies: u32,
        unbounded: Vec<NumaMask>,
    ) -> Option<AndBound> {
        let total = |m: NumaMask, d: usize| m.ids().map(|n| self.val(n, d)).sum::<i128>();
        AndBound::new(
            pool,
            unbounded,
            self.need.len(),
            |n, d| self.val(n, d) as u64,
            |d| {
                let z = total(pool, d);
                if z >= WRAP {
                    return None;
                }
                let need = self.need[d] as i128;
                let w = total(pool.and(alone), d);
                Some(need.min(w - copies as i128 * (z - need)))
            },
        )
    }

    /// A lower bound of `|m|` over the sets `m ⊆ pool` whose sums reach the need: in
    /// each dimension whose sum over the pool cannot wrap, the fewest of the pool's
    /// largest values that reach it (the pool's size plus one when they never do).
    /// Searches by size start here instead of at one.
    pub fn least_count(&self, pool: NumaMask) -> u32 {
        let mut least = 0;
        for (d, &need) in self.need.iter().enumerate() {
            if pool.ids().map(|n| self.val(n, d)).sum::<i128>() >= WRAP {
                continue;
            }
            let order = &self.order[d * self.rows..][..self.rows];
            let mut have = 0i128;
            let mut k = 0u32;
            // nodes without a row are zeros: they never help
            for &n in order.iter().filter(|&&n| pool.is_set(n)) {
                if have >= need as i128 {
                    break;
                }
                have += self.val(n, d);
                k += 1;
            }
            if have < need as i128 {
                return pool.count() + 1;
            }
            least = least.max(k);
        }
        least
    }

    /// A superset of the union of the sets `m` with `inn ⊆ m ⊆ inn ∪ pool`, `|m| = k`,
    /// whose wrapped sums reach the need: `inn` and the nodes `x` of the pool such that,
    /// in every dimension whose sums over `inn ∪ pool` cannot wrap, `inn`, `x` and the
    /// `k - |inn| - 1` largest other values of the pool reach the need (the largest
    /// completion of `inn ∪ {x}`). Empty when that leaves no set. Exact with one
    /// dimension that cannot wrap; a superset otherwise (each dimension is judged
    /// alone, and wrapping ones not at all).
    pub fn sized_span(&self, inn: NumaMask, pool: NumaMask, k: u32) -> NumaMask {
        let pool = NumaMask(pool.0 & !inn.0);
        let Some(add) = k.checked_sub(inn.count()) else {
            return NumaMask::EMPTY;
        };
        if pool.count() < add {
            return NumaMask::EMPTY;
        }
        let dims = self.need.len();
        let mut have: DimSums = SmallVec::from_elem(0, dims);
        for row in inn.ids().filter_map(|n| self.row(n)) {
            for (a, &v) in have.iter_mut().zip(row) {
                *a += v as i128;
            }
        }
        // with no node to add, `inn` is the only set
        let mut cands = if add == 0 { NumaMask::EMPTY } else { pool };
        for (d, &need) in self.need.iter().enumerate() {
            let have = have[d];
            let need = need as i128;
            if have >= need {
                continue;
            }
            let wraps = || have + pool.ids().map(|n| self.val(n, d)).sum::<i128>() >= WRAP;
            if !self.wrap_free[d] && wraps() {
                continue;
            }
            if add == 0 {
                return NumaMask::EMPTY;
            }
            // the `add` largest values of the pool: their sum, the smallest of them
            // (0 when nodes without a row, zeros, complete them) and which nodes they are
            let order = &self.order[d * self.rows..][..self.rows];
            let sorted = &self.sorted[d * self.rows..][..self.rows];
            let (mut top, mut last, mut left, mut taken) = (0i128, 0i128, add, NumaMask::EMPTY);
            for (&n, &v) in order.iter().zip(sorted) {
                if left == 0 {
                    break;
                }
                if pool.is_set(n) {
                    top += v as i128;
                    last = v as i128;
                    taken = taken.or(NumaMask::single(n));
                    left -= 1;
                }
            }
            if left > 0 {
                last = 0;
            }
            if have + top < need {
                return NumaMask::EMPTY;
            }
            // a node outside the largest ones takes the place of their smallest: it
            // needs at least `least`
            let least = need - have - top + last;
            if least > 0 {
                let short = NumaMask(cands.0 & !taken.0)
                    .ids()
                    .filter(|&x| self.val(x, d) < least)
                    .fold(0u64, |m, x| m | 1u64 << x);
                cands = NumaMask(cands.0 & !short);
            }
        }
        if cands.count() < add {
            return NumaMask::EMPTY;
        }
        inn.or(cands)
    }

    /// A set of exactly `k` nodes of `pool` that `leaf` accepts, among the likeliest
    /// few: per dimension, the pool's `k` largest values. `None` says nothing (a search
    /// must decide); a set returned was accepted. Where `k` is the sums' lower bound
    /// ([`Sums::least_count`]) and such a set passes, `k` is the fewest nodes without a
    /// search.
    pub fn greedy(
        &self,
        pool: NumaMask,
        k: u32,
        leaf: &dyn Fn(NumaMask) -> bool,
    ) -> Option<NumaMask> {
        let mut last = None;
        for d in 0..self.need.len() {
            let order = &self.order[d * self.rows..][..self.rows];
            let (mut m, mut left) = (NumaMask::EMPTY, k);
            for &n in order {
                if left == 0 {
                    break;
                }
                if pool.is_set(n) {
                    m = m.or(NumaMask::single(n));
                    left -= 1;
                }
            }
            // (pool nodes without a row are zeros: never among the largest)
            if left > 0 || last == Some(m) {
                continue;
            }
            last = Some(m);
            if leaf(m) {
                return Some(m);
            }
        }
        None
    }

    /// Whether the wrapped sums of `m` reach the need in every dimension.
    pub fn satisfied(&self, m: NumaMask) -> bool {
        (0..self.need.len()).all(|d| {
            m.ids()
                .map(|n| self.row(n).map_or(0, |r| r[d]))
                .fold(0u64, u64::wrapping_add)
                >= self.need[d]
        })
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
        self.find(inn, pool, size, min_count, leaf).is_some()
    }

    /// The exact sums of `m`, node by node, every dimension at once (rows are per node).
    #[inline(always)]
    fn dim_sums(&self, m: NumaMask) -> DimSums {
        let mut acc: DimSums = SmallVec::from_elem(0, self.need.len());
        for n in m.ids() {
            if let Some(row) = self.row(n) {
                for (a, &v) in acc.iter_mut().zip(row) {
                    *a += v as i128;
                }
            }
        }
        acc
    }

    /// [`Sums::exists`], returning the set `leaf` accepted.
    pub fn find(
        &self,
        inn: NumaMask,
        pool: NumaMask,
        size: Option<u32>,
        min_count: u32,
        leaf: &dyn Fn(NumaMask) -> bool,
    ) -> Option<NumaMask> {
        let pool = NumaMask(pool.0 & !inn.0);
        // Nodes without a row have only zeros: they go last, after the ranked ones.
        let mut ids = [0u32; 64];
        let mut len = 0;
        let ranked = self.rank.len() as u32;
        let rowless = pool.ids().filter(|&n| n >= ranked);
        for n in self
            .rank
            .iter()
            .copied()
            .filter(|&n| pool.is_set(n))
            .chain(rowless)
        {
            ids[len] = n;
            len += 1;
        }
        let cur = self.dim_sums(inn);
        let rest_sum = self.dim_sums(pool);
        let (lo_count, hi_count) = match size {
            Some(k) => (k.max(min_count), k),
            None => (min_count, u32::MAX),
        };
        let mut search = Search {
            s: self,
            lo_count,
            hi_count,
            leaf,
            cur,
            rest_sum,
        };
        search.rec(&ids[..len], inn, pool)
    }

    /// The sum of the `t` largest (`top`) or smallest values of dimension `d` over the
    /// nodes of `pool`, read from the sorted order.
    fn extreme(&self, d: usize, pool: NumaMask, t: usize, top: bool) -> i128 {
        if t == 0 {
            return 0;
        }
        let order = &self.order[d * self.rows..][..self.rows];
        let sorted = &self.sorted[d * self.rows..][..self.rows];
        let with_rows = if order.len() >= 64 {
            u64::MAX
        } else {
            (1u64 << order.len()) - 1
        };
        // nodes of the pool without a row count as zeros: the smallest values
        let rowless = (pool.0 & !with_rows).count_ones() as usize;
        let mut left = if top { t } else { t.saturating_sub(rowless) };
        let mut sum = 0i128;
        let mut add = |n: u32, v: u64| {
            if left == 0 {
                return false;
            }
            if pool.is_set(n) {
                sum += v as i128;
                left -= 1;
            }
            true
        };
        if top {
            for (&n, &v) in order.iter().zip(sorted) {
                if !add(n, v) {
                    break;
                }
            }
        } else {
            for (&n, &v) in order.iter().zip(sorted).rev() {
                if !add(n, v) {
                    break;
                }
            }
        }
        sum
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
        // a set found is a witness: while it avoids the node being dropped, a set
        // without that node exists and no search is needed
        let mut witness = self.find(inn, pool, Some(k), 0, leaf)?;
        let mut ids: Vec<u32> = pool.ids().collect();
        ids.reverse();
        for n in ids {
            if inn.count() == k {
                break;
            }
            let without = NumaMask(pool.0 & !NumaMask::single(n).0);
            if !witness.is_set(n) {
                pool = without;
            } else if let Some(w) = self.find(inn, without, Some(k), 0, leaf) {
                witness = w;
                pool = without;
            } else {
                inn = inn.or(NumaMask::single(n));
                pool = without;
            }
        }
        (inn.count() == k && leaf(inn)).then_some(inn)
    }
}

impl Search<'_> {
    /// `ids` are the undecided nodes (their mask is `rest`), `inn` the nodes taken.
    fn rec(&mut self, ids: &[u32], inn: NumaMask, rest: NumaMask) -> Option<NumaMask> {
        let have = inn.count();
        if have > self.hi_count {
            return None;
        }
        let len = ids.len();
        let add_min = self.lo_count.saturating_sub(have) as usize;
        let add_max = ((self.hi_count - have) as usize).min(len);
        if add_min > add_max {
            return None;
        }
        if add_max == len && (self.leaf)(inn.or(rest)) {
            return Some(inn.or(rest));
        }
        if add_max == 0 {
            return (self.leaf)(inn).then_some(inn);
        }
        // Bound: the reachable sums lie between the add_min smallest and the add_max
        // largest additions, per dimension.
        let s = self.s;
        for d in 0..s.need.len() {
            let total = self.rest_sum[d];
            let (cur, need) = (self.cur[d], s.need[d] as i128);
            if cur + total < WRAP {
                // No reachable sum wraps: a sum meets the need when it is at least the
                // need, so only the largest reachable sum matters.
                if cur >= need {
                    continue;
                }
                if cur + total < need {
                    return None;
                }
                if add_max < len {
                    let hi = if add_max * 2 <= len {
                        s.extreme(d, rest, add_max, true)
                    } else {
                        total - s.extreme(d, rest, len - add_max, false)
                    };
                    if cur + hi < need {
                        return None;
                    }
                }
                continue;
            }
            let lo = if add_min == 0 {
                0
            } else if add_min * 2 <= len {
                s.extreme(d, rest, add_min, false)
            } else {
                total - s.extreme(d, rest, len - add_min, true)
            };
            let hi = if add_max == len {
                total
            } else if add_max * 2 <= len {
                s.extreme(d, rest, add_max, true)
            } else {
                total - s.extreme(d, rest, len - add_max, false)
            };
            if !range_meets(self.cur[d] + lo, self.cur[d] + hi, s.need[d]) {
                return None;
            }
        }
        let (first, tail) = (ids[0], &ids[1..]);
        let x = NumaMask::single(first);
        let tail_mask = NumaMask(rest.0 & !x.0);
        for d in 0..s.need.len() {
            let v = s.val(first, d);
            self.rest_sum[d] -= v;
            self.cur[d] += v;
        }
        let with = self.rec(tail, inn.or(x), tail_mask);
        for d in 0..s.need.len() {
            self.cur[d] -= s.val(first, d);
        }
        let found = with.or_else(|| {
            if tail.len() >= add_min {
                self.rec(tail, inn, tail_mask)
            } else {
                None
            }
        });
        for d in 0..s.need.len() {
            self.rest_sum[d] += s.val(first, d);
        }
        found
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
        let s = Sums::new(vals.to_vec(), need.to_vec());
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
            let s = Sums::new(vals.clone(), need.clone());
            let size = sized.then_some(k);
            let leaf = |m: NumaMask| s.satisfied(m);
            let found = brute(&vals, &need, inn, pool, size);
            prop_assert_eq!(s.exists(inn, pool, size, 0, &leaf), !found.is_empty());
            let smallest = brute(&vals, &need, inn, pool, Some(k)).into_iter().min();
            prop_assert_eq!(s.smallest(inn, pool, k, &leaf), smallest);
            // the greedy guess: only sets of `k` nodes of the pool that reach the need,
            // and the fewest-node answer it gives at the sums' bound is the brute force's
            if let Some(m) = s.greedy(pool, k, &leaf) {
                prop_assert!(m.count() == k && m.is_subset_of(pool) && s.satisfied(m), "{:?}", m);
            }
            let least = s.least_count(pool).max(1);
            if least <= pool.count() && s.greedy(pool, least, &leaf).is_some() {
                let fewest = brute(&vals, &need, NumaMask::EMPTY, pool, None)
                    .into_iter()
                    .map(|m| m.count().max(1))
                    .min();
                prop_assert_eq!(fewest, Some(least));
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1500))]
        /// `capacity` and `and_bound` are necessary conditions: every set that reaches
        /// the need leaves out no more than the capacity, and every AND of 1-3 such sets
        /// that leaves out each node of `alone` passes the bound, wrapped values included.
        #[test]
        fn capacity_and_and_bound_hold_for_every_member(
            vals in (1usize..=6, 1usize..=3).prop_flat_map(|(n, d)| prop::collection::vec(prop::collection::vec(value(), d), n)),
            need_seed in prop::collection::vec(0u64..40, 3),
            base in 0u64..64, pool in 0u64..64, alone in 0u64..64, copies in 1u32..=3,
        ) {
            let n = vals.len();
            let full = (1u64 << n) - 1;
            let need: Vec<u64> = need_seed[..vals[0].len()].to_vec();
            let pool = NumaMask(pool & full);
            let s = Sums::new(vals.clone(), need.clone());
            let base = NumaMask(base & pool.0);
            let members = brute(&vals, &need, base, NumaMask(pool.0 & !base.0), None);
            if let Some(cap) = s.capacity(base, pool) {
                for m in &members {
                    prop_assert!(cap.admits(NumaMask(pool.0 & !m.0)), "member {:?}", m);
                }
            }
            let copies = if n > 4 { copies.min(2) } else { copies };
            let alone = NumaMask(alone & full);
            let Some(bound) = s.and_bound(pool, alone, copies, vec![]) else {
                return Ok(());
            };
            // every T within the pool, and the members of the pool containing it
            for t in 1..(1u64 << n) {
                let t = NumaMask(t);
                if !t.is_subset_of(pool) {
                    continue;
                }
                let with_t: Vec<NumaMask> = brute(&vals, &need, t, NumaMask(pool.0 & !t.0), None);
                let mut picks: Vec<NumaMask> = with_t.clone();
                for _ in 1..copies {
                    picks = picks
                        .iter()
                        .flat_map(|&a| with_t.iter().map(move |&b| a.and(b)))
                        .collect();
                    picks.sort_unstable();
                    picks.dedup();
                }
                if picks.iter().any(|&m| m.and(alone).is_subset_of(t)) {
                    prop_assert!(bound.allows(t, NumaMask(pool.0 & !t.0), t.count()), "T {:?}", t);
                    prop_assert!(bound.allows(t, NumaMask::EMPTY, t.count()), "T {:?}", t);
                }
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(3000))]
        /// `sized_span` holds every set of `k` nodes reaching the need (wrapped values
        /// included), and with one dimension without wrapped values it is exactly
        /// their union.
        #[test]
        fn sized_span_holds_every_member(
            vals in (1usize..=7, 1usize..=3).prop_flat_map(|(n, d)| prop::collection::vec(prop::collection::vec(value(), d), n)),
            need_seed in prop::collection::vec(0u64..60, 3),
            inn in 0u64..128, pool in 0u64..128, k in 0u32..8,
        ) {
            let n = vals.len();
            let full = (1u64 << n) - 1;
            let need: Vec<u64> = need_seed[..vals[0].len()].to_vec();
            let (inn, pool) = (NumaMask(inn & full & !pool), NumaMask(pool & full));
            let s = Sums::new(vals.clone(), need.clone());
            let span = s.sized_span(inn, pool, k);
            let union = brute(&vals, &need, inn, pool, Some(k))
                .into_iter()
                .fold(NumaMask::EMPTY, NumaMask::or);
            prop_assert!(union.is_subset_of(span), "{:?} not within {:?}", union, span);
            let plain = vals.iter().all(|r| r[0] < 1 << 63);
            if vals[0].len() == 1 && plain {
                prop_assert_eq!(span, union);
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1500))]
        /// `least_count` is at most the size of every set reaching the need.
        #[test]
        fn least_count_is_a_lower_bound(
            vals in (1usize..=7, 1usize..=3).prop_flat_map(|(n, d)| prop::collection::vec(prop::collection::vec(value(), d), n)),
            need_seed in prop::collection::vec(0u64..40, 3),
            pool in 0u64..128,
        ) {
            let full = (1u64 << vals.len()) - 1;
            let need: Vec<u64> = need_seed[..vals[0].len()].to_vec();
            let pool = NumaMask(pool & full);
            let s = Sums::new(vals.clone(), need.clone());
            let least = s.least_count(pool);
            for m in brute(&vals, &need, NumaMask::EMPTY, pool, None) {
                prop_assert!(least <= m.count(), "{:?} reaches the need below {}", m, least);
            }
        }
    }
}
