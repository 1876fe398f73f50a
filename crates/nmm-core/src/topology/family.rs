//! Hint lists of machines too large to enumerate (the kubelet lists all 2^N - 1 NUMA
//! masks per resource; at 34 or 64 nodes that never finishes).
//!
//! A provider describes its list as a [`HintFamily`]: a membership test plus the few
//! facts the merge needs. [`merge_large`] then finds the same hint the kubelet's cross
//! product would, by searching masks in the order the kubelet's comparison ranks them
//! instead of visiting them all:
//!
//! * a preferred hint always wins, and preferred masks all have the size the provider
//!   calls minimal, so the search walks masks of that size only (in numeric order for
//!   "narrowest", which makes the first hit the winner);
//! * otherwise every merged mask lies inside the intersection U of the lists' universes
//!   (the CPU provider only names NUMA nodes with CPUs); when U is small the lists are
//!   projected onto U, which keeps every merged mask, and the exact closure of
//!   [`super::merge`] runs there;
//! * a single remaining list needs no closure: its narrowest members win.
//!
//! What is left — several memory types, no preferred hint, a wide universe — is
//! enumerated within a budget, and reported as an error beyond it rather than guessed.

use super::hint::TopologyHint;
use super::merge::{best_non_preferred_affinity_count, dense_and_closure_on, Merger};
use crate::bitmask::NumaMask;
use std::fmt::Debug;
use std::rc::Rc;

/// One resource's hint list, described instead of listed.
pub trait HintFamily: Debug {
    /// `Some(preferred)` if `m` is in the list.
    fn get(&self, m: NumaMask) -> Option<bool>;
    /// Every mask of the list lies within this set.
    fn universe(&self) -> NumaMask;
    /// Sizes a preferred mask can have.
    fn preferred_sizes(&self) -> Vec<u32>;
    /// The size of the smallest member, `None` for an empty list.
    fn min_size(&self) -> Option<u32>;
    /// Whether some member `m` has `m ∩ u == x` (`x` non-empty, `x ⊆ u`).
    fn has_projection(&self, x: NumaMask, u: NumaMask) -> bool;
    /// Whether some member contains `t` and avoids every node of `excluded`.
    fn member_within(&self, t: NumaMask, excluded: NumaMask) -> bool;
    /// The numerically smallest member with exactly `k` nodes that contains `base`.
    fn smallest_member(&self, base: NumaMask, k: u32) -> Option<NumaMask>;
    /// The members closed under adding nodes, as sum constraints; every other member is
    /// in [`HintFamily::special_members`].
    fn monotone(&self) -> Monotone;
    fn special_members(&self) -> Vec<NumaMask>;
}

/// Members `m` with `must ⊆ m ⊆ pool`, at least `min_count` nodes, and per-node values
/// (`vals[node]`) summing to at least `need` in every dimension.
#[derive(Debug, Clone)]
pub struct Monotone {
    pub pool: NumaMask,
    pub must: NumaMask,
    pub vals: Vec<Vec<u64>>,
    pub need: Vec<u64>,
    pub min_count: u32,
}

/// The numerically smallest mask of `k` nodes that is a member of every family, for
/// families whose members are their monotone part plus a few listed ones.
fn smallest_common_member(families: &[&Rc<dyn HintFamily>], k: u32) -> Option<NumaMask> {
    if k == 1 {
        // Single nodes in ascending order: the first common one is the smallest.
        let u = families
            .iter()
            .fold(NumaMask(u64::MAX), |u, f| u.and(f.universe()));
        return u
            .ids()
            .map(NumaMask::single)
            .find(|&m| families.iter().all(|f| f.get(m).is_some()));
    }
    let parts: Vec<Monotone> = families.iter().map(|f| f.monotone()).collect();
    let all_member = |m: NumaMask| families.iter().all(|f| f.get(m).is_some());
    let mut best: Option<NumaMask> = None;
    let mut consider = |m: NumaMask| {
        if m.count() == k && all_member(m) && best.is_none_or(|b| m.0 < b.0) {
            best = Some(m);
        }
    };
    for f in families {
        for m in f.special_members() {
            consider(m);
        }
    }
    let pool = parts.iter().fold(NumaMask(u64::MAX), |p, m| p.and(m.pool));
    let must = parts.iter().fold(NumaMask::EMPTY, |p, m| p.or(m.must));
    let min_count = parts.iter().map(|m| m.min_count).max().unwrap_or(1);
    if k >= min_count && must.is_subset_of(pool) && k >= must.count() {
        let width = pool
            .ids()
            .chain(must.ids())
            .map(|n| n as usize + 1)
            .max()
            .unwrap_or(0);
        let mut vals = vec![Vec::new(); width];
        let mut need = Vec::new();
        for m in &parts {
            let dims = m.need.len();
            for (n, v) in vals.iter_mut().enumerate() {
                match m.vals.get(n) {
                    Some(x) => v.extend_from_slice(x),
                    None => v.extend(std::iter::repeat_n(0, dims)),
                }
            }
            for (r, &nd) in m.need.iter().enumerate() {
                let have: u64 = must
                    .ids()
                    .map(|n| m.vals.get(n as usize).map_or(0, |x| x[r]))
                    .sum();
                need.push(nd.saturating_sub(have));
            }
        }
        let rest = NumaMask(pool.0 & !must.0);
        if let Some(c) = smallest_k_subset(rest, k - must.count(), &vals, &need) {
            consider(must.or(c));
        }
    }
    best
}

/// The numerically smallest set of exactly `k` nodes of `pool` whose values reach `need`
/// in every dimension (`vals[node][r]`), found highest node first: a mask is smaller when
/// its highest node is lower, so the highest node is the lowest one that still leaves a
/// feasible choice below it, and so on down.
pub fn smallest_k_subset(
    pool: NumaMask,
    k: u32,
    vals: &[Vec<u64>],
    need: &[u64],
) -> Option<NumaMask> {
    let ids: Vec<u32> = pool.ids().collect();
    fn feasible(ids: &[u32], k: usize, vals: &[Vec<u64>], need: &[u64]) -> bool {
        if need.iter().all(|&x| x == 0) && k <= ids.len() {
            return true;
        }
        if k == 0 || ids.len() < k {
            return false;
        }
        // optimistic bound per dimension: the k largest values
        for (r, &nd) in need.iter().enumerate() {
            let mut v: Vec<u64> = ids.iter().map(|&n| vals[n as usize][r]).collect();
            v.sort_unstable_by(|a, b| b.cmp(a));
            if v.iter().take(k).fold(0u64, |a, &b| a.saturating_add(b)) < nd {
                return false;
            }
        }
        for i in (0..ids.len()).rev() {
            let rest: Vec<u64> = need
                .iter()
                .enumerate()
                .map(|(r, &x)| x.saturating_sub(vals[ids[i] as usize][r]))
                .collect();
            if feasible(&ids[..i], k - 1, vals, &rest) {
                return true;
            }
        }
        false
    }
    fn pick(ids: &[u32], k: usize, vals: &[Vec<u64>], need: &[u64]) -> Option<u64> {
        if k == 0 {
            return need.iter().all(|&x| x == 0).then_some(0);
        }
        for i in (k - 1)..ids.len() {
            let rest: Vec<u64> = need
                .iter()
                .enumerate()
                .map(|(r, &x)| x.saturating_sub(vals[ids[i] as usize][r]))
                .collect();
            if feasible(&ids[..i], k - 1, vals, &rest) {
                return pick(&ids[..i], k - 1, vals, &rest).map(|m| m | 1u64 << ids[i]);
            }
        }
        None
    }
    pick(&ids, k as usize, vals, need).map(NumaMask)
}

/// A resource's hint list in a large-machine merge.
#[derive(Debug, Clone)]
pub enum LargeList {
    Explicit(Vec<TopologyHint>),
    Family(Rc<dyn HintFamily>),
}

/// Most masks [`merge_large`] will enumerate before giving up.
pub const ENUMERATION_BUDGET: u64 = 1 << 22;

/// Masks of exactly `k` nodes of `universe`, ascending numerically (Gosper's hack on the
/// compressed positions). `f` returns false to stop. Returns false if stopped.
/// [`for_each_mask_of_size`] in the same (numeric) order, skipping every mask that
/// contains a set `keep` rejects. `keep` must be closed under taking subsets (if it accepts
/// a set it accepts every subset), so a rejected partial choice prunes all its extensions.
/// Returns false if `f` stopped the walk.
pub fn for_each_mask_of_size_pruned(
    universe: NumaMask,
    k: u32,
    keep: &dyn Fn(NumaMask) -> bool,
    f: &mut dyn FnMut(NumaMask) -> bool,
) -> bool {
    let ids: Vec<u32> = universe.ids().collect();
    // Masks with highest node ids[h] come after all masks with a lower highest node; within
    // them, the rest is again in numeric order: choose the highest node first.
    fn rec(
        ids: &[u32],
        k: usize,
        high: NumaMask,
        keep: &dyn Fn(NumaMask) -> bool,
        f: &mut dyn FnMut(NumaMask) -> bool,
    ) -> bool {
        if k == 0 {
            return f(high);
        }
        for h in (k - 1)..ids.len() {
            let m = high.or(NumaMask::single(ids[h]));
            if !keep(m) {
                continue;
            }
            if !rec(&ids[..h], k - 1, m, keep, f) {
                return false;
            }
        }
        true
    }
    if k == 0 || k as usize > ids.len() {
        return true;
    }
    rec(&ids, k as usize, NumaMask::EMPTY, keep, f)
}

pub fn for_each_mask_of_size(
    universe: NumaMask,
    k: u32,
    mut f: impl FnMut(NumaMask) -> bool,
) -> bool {
    let ids: Vec<u32> = universe.ids().collect();
    let n = ids.len() as u32;
    if k == 0 || k > n {
        return true;
    }
    let expand = |c: u64| -> NumaMask {
        let mut m = 0u64;
        let mut c = c;
        while c != 0 {
            let i = c.trailing_zeros();
            m |= 1u64 << ids[i as usize];
            c &= c - 1;
        }
        NumaMask(m)
    };
    let mut c: u64 = if k == 64 { u64::MAX } else { (1u64 << k) - 1 };
    loop {
        if !f(expand(c)) {
            return false;
        }
        // next combination with the same popcount
        let t = c | c.wrapping_sub(1);
        let next = (t.wrapping_add(1))
            | (((!t & t.wrapping_add(1)).wrapping_sub(1)) >> (c.trailing_zeros() + 1));
        if t == u64::MAX || next >= (if n == 64 { u64::MAX } else { 1u64 << n }) || next <= c {
            return true;
        }
        c = next;
    }
}

fn list_universe(l: &LargeList, all: NumaMask) -> NumaMask {
    match l {
        LargeList::Family(f) => f.universe(),
        LargeList::Explicit(v) => v
            .iter()
            .fold(NumaMask::EMPTY, |u, h| u.or(h.affinity.unwrap_or(all))),
    }
}

fn has_preferred_any(l: &LargeList) -> bool {
    matches!(l, LargeList::Explicit(v) if v.iter().any(|h| h.preferred && h.affinity.is_none()))
}

fn get(l: &LargeList, m: NumaMask) -> Option<bool> {
    match l {
        LargeList::Family(f) => f.get(m),
        LargeList::Explicit(v) => {
            let mut r = None;
            for h in v.iter().filter(|h| h.affinity == Some(m)) {
                r = Some(r.unwrap_or(false) || h.preferred);
            }
            r
        }
    }
}

fn min_count(l: &LargeList) -> u32 {
    match l {
        LargeList::Family(f) => f.min_size().unwrap_or(0),
        LargeList::Explicit(v) => best_non_preferred_affinity_count(std::slice::from_ref(v)),
    }
}

/// The best of `candidates` under the merger's comparison (all of equal preference).
fn fold_best(
    merger: &Merger,
    b: u32,
    preferred: bool,
    masks: impl IntoIterator<Item = NumaMask>,
) -> Option<TopologyHint> {
    let mut best = None;
    for m in masks {
        best = merger.compare(best, TopologyHint::new(m, preferred), b);
    }
    best
}

/// Universes up to this many nodes are merged by projection onto them.
pub const DENSE_UNIVERSE: usize = 0;

/// The merged hint of `lists`, equal to the kubelet's cross-product merge.
pub fn merge_large(lists: &[LargeList], merger: &Merger) -> Result<TopologyHint, String> {
    merge_large_with(lists, merger, DENSE_UNIVERSE)
}

/// [`merge_large`] with the projection threshold given (tests lower it to exercise the
/// search paths on small machines).
pub fn merge_large_with(
    lists: &[LargeList],
    merger: &Merger,
    dense_universe: usize,
) -> Result<TopologyHint, String> {
    let all = merger.numa.all;
    if lists
        .iter()
        .any(|l| matches!(l, LargeList::Explicit(v) if v.is_empty()))
    {
        return Ok(TopologyHint::new(all, false));
    }
    let b = lists.iter().map(min_count).max().unwrap_or(0);

    // 1. Preferred candidates.
    let constraining: Vec<&LargeList> = lists.iter().filter(|l| !has_preferred_any(l)).collect();
    let is_preferred_everywhere =
        |m: NumaMask| constraining.iter().all(|l| get(l, m) == Some(true));
    let mut best: Option<TopologyHint> = None;
    if constraining.is_empty() {
        best = merger.compare(best, TopologyHint::new(all, true), b);
    }
    let explicit_seed = constraining.iter().find_map(|l| match l {
        LargeList::Explicit(v) => Some(v),
        _ => None,
    });
    if let Some(v) = explicit_seed {
        let seeds = v.iter().filter(|h| h.preferred).filter_map(|h| h.affinity);
        best = fold_best(
            merger,
            b,
            true,
            seeds.filter(|&m| is_preferred_everywhere(m)),
        )
        .or(best);
    } else if !constraining.is_empty() {
        let u = constraining
            .iter()
            .fold(all, |u, l| u.and(list_universe(l, all)));
        let mut sizes: Option<Vec<u32>> = None;
        for l in &constraining {
            if let LargeList::Family(f) = l {
                let s = f.preferred_sizes();
                sizes = Some(match sizes {
                    None => s,
                    Some(prev) => prev.into_iter().filter(|x| s.contains(x)).collect(),
                });
            }
        }
        let mut sizes = sizes.unwrap_or_default();
        sizes.sort_unstable();
        sizes.dedup();
        let families: Vec<&Rc<dyn HintFamily>> = constraining
            .iter()
            .filter_map(|l| match l {
                LargeList::Family(f) => Some(f),
                _ => None,
            })
            .collect();
        let mut distinct: Vec<&Rc<dyn HintFamily>> = Vec::new();
        for f in &families {
            if !distinct.iter().any(|d| Rc::ptr_eq(d, f)) {
                distinct.push(f);
            }
        }
        // Every member of the size is preferred when a family prefers one size only (not so
        // under align-by-socket, which prefers some masks of other sizes too).
        let size_decides = distinct.iter().all(|f| f.preferred_sizes().len() == 1);
        for k in sizes {
            let mut found = None;
            if !merger.closest && size_decides {
                // Narrowest: the numerically smallest common member of this size (every
                // member of that size is preferred by its family).
                if let Some(m) =
                    smallest_common_member(&distinct, k).filter(|&m| is_preferred_everywhere(m))
                {
                    best = merger.compare(best, TopologyHint::new(m, true), b);
                    break;
                }
                continue;
            }
            let contained = |t: NumaMask| {
                constraining
                    .iter()
                    .all(|l| member_within(l, t, NumaMask::EMPTY, all))
            };
            for_each_mask_of_size_pruned(u, k, &contained, &mut |m| {
                if is_preferred_everywhere(m) {
                    found = merger.compare(found, TopologyHint::new(m, true), b);
                    // numeric order: the first hit is the narrowest
                    return merger.closest;
                }
                true
            });
            if let Some(h) = found {
                best = merger.compare(best, h, b);
                // a smaller preferred size always beats a larger one
                break;
            }
        }
    }
    if let Some(h) = best.filter(|h| h.preferred) {
        return Ok(h);
    }

    // 2. No preferred candidate: the best AND of one mask per list.
    let u = lists.iter().fold(all, |u, l| u.and(list_universe(l, all)));
    if u.is_empty() {
        return Ok(TopologyHint::new(all, false));
    }
    let nodes: Vec<u32> = u.ids().collect();
    if nodes.len() <= dense_universe {
        let projected: Vec<Vec<NumaMask>> =
            lists.iter().map(|l| projected(l, u, &nodes, all)).collect();
        let closure = dense_and_closure_on(&projected, &nodes);
        return Ok(fold_best(merger, b, false, closure).unwrap_or(TopologyHint::new(all, false)));
    }
    let non_wild: Vec<&LargeList> = lists
        .iter()
        .filter(|l| !matches!(l, LargeList::Explicit(v) if v.iter().all(|h| h.affinity.is_none())))
        .collect();
    if non_wild.len() == 1 {
        // One real list: the merged masks are its members; the best has the smallest size.
        if let LargeList::Family(f) = non_wild[0] {
            let Some(s) = f.min_size() else {
                return Ok(TopologyHint::new(all, false));
            };
            if !merger.closest {
                return Ok(f
                    .smallest_member(NumaMask::EMPTY, s)
                    .map_or(TopologyHint::new(all, false), |m| {
                        TopologyHint::new(m, false)
                    }));
            }
            let mut found = None;
            for_each_mask_of_size(u, s, |m| {
                if f.get(m).is_some() {
                    found = merger.compare(found, TopologyHint::new(m, false), b);
                }
                true
            });
            return Ok(found.unwrap_or(TopologyHint::new(all, false)));
        }
    }
    // General case: walk candidate masks T in the order the comparison ranks them
    // (node count B first, then fewer nodes, then more) and keep the first count that has
    // an achievable T — one where every list has a member containing T and the lists'
    // members can be picked so that their intersection is exactly T.
    let mut order: Vec<u32> = vec![b];
    order.extend((1..b).rev());
    order.extend(b + 1..=nodes.len() as u32);
    let mut budget = ENUMERATION_BUDGET;
    for c in order
        .into_iter()
        .filter(|&c| c >= 1 && c as usize <= nodes.len())
    {
        let mut found: Option<TopologyHint> = None;
        let mut failed = false;
        // A mask is achievable only if every list has a member containing it, and that
        // holds for its subsets too: prune on it while walking.
        let contained = |t: NumaMask| {
            lists
                .iter()
                .all(|l| member_within(l, t, NumaMask::EMPTY, all))
        };
        for_each_mask_of_size_pruned(u, c, &contained, &mut |t| match achievable(
            lists,
            t,
            u,
            all,
            &mut budget,
        ) {
            Some(true) => {
                found = merger.compare(found, TopologyHint::new(t, false), b);
                merger.closest
            }
            Some(false) => true,
            None => {
                failed = true;
                false
            }
        });
        if failed {
            return Err(format!(
                "no NUMA mask is preferred by every provider and deciding the best non-preferred mask over {} NUMA nodes exceeded {ENUMERATION_BUDGET} steps; nmm refuses to guess rather than risk a decision the kubelet would not make; please report the scenario (nmm simulate reproduces it)",
                nodes.len()
            ));
        }
        if let Some(h) = found {
            return Ok(h);
        }
    }
    Ok(TopologyHint::new(all, false))
}

fn member_within(l: &LargeList, t: NumaMask, excluded: NumaMask, all: NumaMask) -> bool {
    match l {
        LargeList::Family(f) => f.member_within(t, excluded),
        LargeList::Explicit(v) => v.iter().any(|h| {
            let m = h.affinity.unwrap_or(all);
            t.is_subset_of(m) && m.and(excluded).is_empty()
        }),
    }
}

/// Can one member per list be picked so that their intersection (within `u`) is exactly
/// `t`? `None` when the search budget ran out.
fn achievable(
    lists: &[LargeList],
    t: NumaMask,
    u: NumaMask,
    all: NumaMask,
    budget: &mut u64,
) -> Option<bool> {
    if !lists
        .iter()
        .all(|l| member_within(l, t, NumaMask::EMPTY, all))
    {
        return Some(false);
    }
    if lists
        .iter()
        .any(|l| get(l, t).is_some() || member_within(l, t, NumaMask(u.0 & !t.0), all))
    {
        return Some(true);
    }
    // Every node of u outside t must be left out by at least one list's pick.
    let rest: Vec<u32> = NumaMask(u.0 & !t.0).ids().collect();
    let mut excluded = vec![NumaMask::EMPTY; lists.len()];
    fn dfs(
        lists: &[LargeList],
        t: NumaMask,
        all: NumaMask,
        rest: &[u32],
        i: usize,
        excluded: &mut Vec<NumaMask>,
        budget: &mut u64,
    ) -> Option<bool> {
        if i == rest.len() {
            return Some(true);
        }
        let x = NumaMask::single(rest[i]);
        for l in 0..lists.len() {
            // Lists that are the same family with the same exclusions so far are
            // interchangeable: try only the first of them.
            let dup = (0..l).any(|k| {
                excluded[k] == excluded[l]
                    && matches!((&lists[k], &lists[l]), (LargeList::Family(a), LargeList::Family(b)) if Rc::ptr_eq(a, b))
            });
            if dup {
                continue;
            }
            *budget = budget.checked_sub(1)?;
            let next = excluded[l].or(x);
            if member_within(&lists[l], t, next, all) {
                let saved = excluded[l];
                excluded[l] = next;
                if dfs(lists, t, all, rest, i + 1, excluded, budget)? {
                    return Some(true);
                }
                excluded[l] = saved;
            }
        }
        Some(false)
    }
    dfs(lists, t, all, &rest, 0, &mut excluded, budget)
}

/// The non-empty masks `m ∩ u` of a list's members.
fn projected(l: &LargeList, u: NumaMask, nodes: &[u32], all: NumaMask) -> Vec<NumaMask> {
    match l {
        LargeList::Explicit(v) => v
            .iter()
            .map(|h| h.affinity.unwrap_or(all).and(u))
            .filter(|m| !m.is_empty())
            .collect(),
        LargeList::Family(f) => {
            let mut out = Vec::new();
            for k in 1..=nodes.len() as u32 {
                for_each_mask_of_size(u, k, |x| {
                    if f.has_projection(x, u) {
                        out.push(x);
                    }
                    true
                });
            }
            out
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pruned_walk_is_the_filtered_walk() {
        let u = NumaMask(0b1101_1011);
        // keep: sets avoiding node 3 and holding at most one of {0, 1}: closed under subsets
        let keep = |m: NumaMask| !m.is_set(3) && (m.0 & 0b11).count_ones() <= 1;
        for k in 0..=7 {
            let mut plain = vec![];
            for_each_mask_of_size(u, k, |m| {
                if keep(m) {
                    plain.push(m.0);
                }
                true
            });
            let mut pruned = vec![];
            for_each_mask_of_size_pruned(u, k, &keep, &mut |m| {
                pruned.push(m.0);
                true
            });
            assert_eq!(plain, pruned, "k = {k}");
        }
    }

    #[test]
    fn masks_of_size_in_numeric_order() {
        let mut got = vec![];
        for_each_mask_of_size(NumaMask(0b1011), 2, |m| {
            got.push(m.0);
            true
        });
        assert_eq!(got, vec![0b0011, 0b1001, 0b1010]);
        let mut n = 0;
        for_each_mask_of_size(NumaMask(u64::MAX), 2, |_| {
            n += 1;
            true
        });
        assert_eq!(n, 64 * 63 / 2);
        let mut n = 0;
        for_each_mask_of_size(NumaMask(u64::MAX), 64, |_| {
            n += 1;
            true
        });
        assert_eq!(n, 1);
    }
}
