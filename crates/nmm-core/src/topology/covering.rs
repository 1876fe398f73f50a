//! The covering question of [`super::family::merge_large`]: is a mask `t` the AND of one
//! member per list? Every node outside `t` must be left out by some list whose member
//! still contains `t` without it.
//!
//! The search assigns each such node to a list that leaves it out, depth first, with
//! forward checking. Two things keep it from trying every assignment when the answer is
//! no (at 34 nodes a pod-scope merge of two memory lists once never finished):
//!
//! * nodes that some list never has in a member containing `t` (outside its
//!   [`super::family::HintFamily::span`]) cost that list nothing to leave out, so they
//!   are settled before the search (the caller passes only the others);
//! * a [`Capacity`] per list, when its family has one: leaving nodes out is bounded by
//!   the weights the member can spare. Nodes that only lists of one kind (copies of one
//!   list, as the memory lists of a pod are) can still leave out must fit in what those
//!   copies have left between them, dimension by dimension.
//!
//! Both only drop assignments that cannot succeed, so the answer is exact.

use crate::bitmask::NumaMask;
use std::collections::HashSet;

/// What a list's member containing `t` can leave out: it exists only if, in every
/// dimension, the nodes left out weigh at most `cap` together (a necessary condition,
/// e.g. the per-node sums a member must reach, when no sum can wrap).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Capacity {
    dims: usize,
    /// `weight[node * dims + d]` for the nodes below some bound; the others weigh 0.
    weight: Vec<u64>,
    cap: Vec<u64>,
}

impl Capacity {
    /// `weight(node, d)` for every node id below 64 and dimension below `cap.len()`.
    pub fn new(cap: Vec<u64>, weight: impl Fn(u32, usize) -> u64) -> Capacity {
        Capacity::for_nodes(64, cap, weight)
    }

    /// [`Capacity::new`] where only the nodes below `rows` can weigh anything (a list's
    /// table covers the machine's node ids; the searches ask once per candidate mask,
    /// so an 8-node machine should not pay for 64 rows).
    pub fn for_nodes(rows: usize, cap: Vec<u64>, weight: impl Fn(u32, usize) -> u64) -> Capacity {
        let dims = cap.len();
        let rows = rows.min(64);
        let mut w = Vec::with_capacity(rows * dims);
        for n in 0..rows as u32 {
            w.extend((0..dims).map(|d| weight(n, d)));
        }
        Capacity {
            dims,
            weight: w,
            cap,
        }
    }

    /// Whether leaving out the nodes of `out` stays within the capacity.
    pub fn admits(&self, out: NumaMask) -> bool {
        (0..self.dims).all(|d| self.load(out, d) <= self.cap[d] as u128)
    }

    fn weight(&self, n: u32, d: usize) -> u128 {
        self.weight
            .get(n as usize * self.dims + d)
            .map_or(0, |&w| w as u128)
    }

    fn load(&self, m: NumaMask, d: usize) -> u128 {
        m.ids().map(|n| self.weight(n, d)).sum()
    }

    /// How much of the node's weight each dimension's capacity it takes, largest share:
    /// heavier nodes are assigned first.
    fn share(&self, n: u32) -> f64 {
        (0..self.dims)
            .map(|d| self.weight(n, d) as f64 / (self.cap[d] as f64 + 1.0))
            .fold(0.0, f64::max)
    }
}

/// A necessary condition on the masks `T` that can be the AND of picks from `copies`
/// copies of one list (a pod's memory lists are copies of one list) when the nodes of
/// `alone` can be left out by no other list. Built by a family that knows its sums
/// ([`crate::topology::sums::Sums::and_bound`]); checked on partial masks by the
/// non-preferred walk, so that masks that fail are not walked one by one.
///
/// The family's members containing `T` (outside the `unbounded` ones) are `T` plus nodes
/// of `pool` whose weights reach a need, so (see [`Capacity`]) a pick leaves out at
/// most `Z - need` of weight, `Z` the pool's total. Every node of `alone` outside `T`
/// must be left out by some copy: `W - weight(T) <= copies * (Z - need)`, `W` the
/// weight of `alone` within the pool, unless `T` alone meets the need. So
/// `weight(T) >= min(need, W - copies * (Z - need))` in every dimension that cannot
/// wrap, for `T` within the pool and within no `unbounded` member.
#[derive(Debug, Clone)]
pub struct AndBound {
    pool: NumaMask,
    /// Members (listed ones, e.g. existing groups) whose subsets are not bounded.
    unbounded: Vec<NumaMask>,
    /// Per bounded dimension: node weights (index = node id), the pool's nodes by
    /// weight (heaviest first), and the least weight `T` must have.
    dims: Vec<(Vec<u64>, Vec<u32>, i128)>,
}

impl AndBound {
    /// `lb(d)`: the least weight of `T` in dimension `d` (`None`: not bounded).
    pub fn new(
        pool: NumaMask,
        unbounded: Vec<NumaMask>,
        dims: usize,
        weight: impl Fn(u32, usize) -> u64,
        lb: impl Fn(usize) -> Option<i128>,
    ) -> Option<AndBound> {
        let dims: Vec<(Vec<u64>, Vec<u32>, i128)> = (0..dims)
            .filter_map(|d| {
                let least = lb(d).filter(|&l| l > 0)?;
                let w: Vec<u64> = (0..64).map(|n| weight(n, d)).collect();
                let mut order: Vec<u32> = pool.ids().collect();
                order.sort_by_key(|&n| (std::cmp::Reverse(w[n as usize]), n));
                Some((w, order, least))
            })
            .collect();
        (!dims.is_empty()).then_some(AndBound {
            pool,
            unbounded,
            dims,
        })
    }

    /// Whether some `T` of `c` nodes with `inn ⊆ T` and `T ∩ out = ∅` passes the bound.
    pub fn allows(&self, inn: NumaMask, out: NumaMask, c: u32) -> bool {
        if !inn.is_subset_of(self.pool) || self.unbounded.iter().any(|m| inn.is_subset_of(*m)) {
            return true;
        }
        // T within no unbounded member has all its members among the pool's groups,
        // so T itself lies within the pool: only pool nodes can join `inn`
        let add = c.saturating_sub(inn.count()) as usize;
        let taken = inn.or(out);
        self.dims.iter().all(|(w, order, least)| {
            let have: i128 = inn.ids().map(|n| w[n as usize] as i128).sum();
            let top: i128 = order
                .iter()
                .filter(|&&n| !taken.is_set(n))
                .take(add)
                .map(|&n| w[n as usize] as i128)
                .sum();
            have + top >= *least
        })
    }
}

/// Most failed states the search remembers before starting afresh (the memo only saves
/// work: clearing it never changes an answer).
const MEMO_LIMIT: usize = 1 << 16;

/// The lists of one covering question.
pub struct Lists<'a> {
    pub count: usize,
    /// `extends(i, out)`: list `i` has a member containing the mask and avoiding `out`
    /// (exactly; the sets a list can avoid are closed under taking subsets).
    pub extends: &'a dyn Fn(usize, NumaMask) -> bool,
    /// Lists `i` and `j` are the same list (picks with equal exclusions are then
    /// interchangeable, and their capacities are pooled).
    pub same: &'a dyn Fn(usize, usize) -> bool,
    /// Per list, its [`Capacity`] for the mask, if its family has one.
    pub caps: &'a [Option<Capacity>],
}

struct Search<'a, 'b> {
    l: &'b Lists<'a>,
    /// The first list of each list's kind (copies of one list share a kind).
    kind: Vec<usize>,
    /// The nodes to assign, in order, each with the lists able to leave it out.
    free: Vec<(u32, Vec<usize>)>,
    memo: HashSet<(usize, Vec<u64>)>,
}

/// Can one member per list be picked so that every node of `rest` is left out by at
/// least one pick? See the module documentation.
pub fn covering(lists: &Lists, rest: NumaMask) -> bool {
    let n = lists.count;
    if rest.is_empty() {
        return true;
    }
    if (0..n).any(|i| (lists.extends)(i, rest)) {
        return true;
    }
    if n == 1 {
        // one list must leave out every node of `rest` itself: answered just above
        return false;
    }
    let kind: Vec<usize> = (0..n)
        .map(|i| (0..i).find(|&j| (lists.same)(i, j)).unwrap_or(i))
        .collect();
    let mut cands: Vec<(u32, Vec<usize>)> = Vec::new();
    for m in rest.ids() {
        let c: Vec<usize> = (0..n)
            .filter(|&i| (lists.extends)(i, NumaMask::single(m)))
            .collect();
        if c.is_empty() {
            return false;
        }
        cands.push((m, c));
    }
    let share = |m: u32| {
        lists
            .caps
            .iter()
            .flatten()
            .map(|c| c.share(m))
            .fold(0.0, f64::max)
    };
    // the most constrained first, then the heaviest
    cands.sort_by(|(a, ca), (b, cb)| {
        ca.len()
            .cmp(&cb.len())
            .then(share(*b).total_cmp(&share(*a)))
            .then(a.cmp(b))
    });
    let mut excl = vec![NumaMask::EMPTY; n];
    // Nodes only one list can leave out are forced.
    let mut free = Vec::new();
    for (m, c) in cands {
        if c.len() == 1 {
            excl[c[0]] = excl[c[0]].or(NumaMask::single(m));
        } else {
            free.push((m, c));
        }
    }
    if (0..n).any(|i| !excl[i].is_empty() && !(lists.extends)(i, excl[i])) {
        return false;
    }
    // First fit, most constrained and heaviest nodes first: when the answer is yes
    // this usually finds an assignment with a question or two per node, before the
    // search below pays for its forward checks.
    let mut fit = excl.clone();
    let first_fit = free.iter().all(|(m, cs)| {
        cs.iter().any(|&j| {
            let next = fit[j].or(NumaMask::single(*m));
            let ok = (lists.extends)(j, next);
            if ok {
                fit[j] = next;
            }
            ok
        })
    });
    if first_fit {
        return true;
    }
    // can[k * n + j]: list j can still leave out free node k (kept up to date as
    // exclusions grow: only the list that just grew is asked again, and a list that
    // could not leave a node out never can again deeper in the search)
    let mut can = vec![false; free.len() * n];
    for (k, (m, cs)) in free.iter().enumerate() {
        for &j in cs {
            can[k * n + j] = (lists.extends)(j, excl[j].or(NumaMask::single(*m)));
        }
    }
    let mut s = Search {
        l: lists,
        kind,
        free,
        memo: HashSet::new(),
    };
    s.alive(0, &excl, &can) && s.rec(0, &mut excl, &can)
}

impl Search<'_, '_> {
    /// Whether the nodes from `at` on can still be left out: each by some list (`can`),
    /// and those only copies of one list can take within what the copies' capacities
    /// have left.
    fn alive(&self, at: usize, excl: &[NumaMask], can: &[bool]) -> bool {
        let l = self.l;
        let n = l.count;
        // per kind with a capacity: the weight only that kind can take, per dimension
        let mut demand: Vec<Option<Vec<u128>>> = (0..n)
            .map(|i| {
                l.caps
                    .get(i)
                    .and_then(|c| c.as_ref())
                    .filter(|_| self.kind[i] == i)
                    .map(|c| vec![0u128; c.dims])
            })
            .collect();
        for (k, (m, _)) in self.free.iter().enumerate().skip(at) {
            let mut only = None;
            let mut mixed = false;
            for j in (0..n).filter(|&j| can[k * n + j]) {
                match only {
                    None => only = Some(self.kind[j]),
                    Some(kd) if kd != self.kind[j] => mixed = true,
                    _ => {}
                }
            }
            let Some(kd) = only else {
                return false;
            };
            if mixed {
                continue;
            }
            if let (Some(d), Some(c)) = (demand[kd].as_mut(), l.caps[kd].as_ref()) {
                for (dim, v) in d.iter_mut().enumerate() {
                    *v += c.weight(*m, dim);
                }
            }
        }
        for (kd, d) in demand.iter().enumerate() {
            let (Some(d), Some(c)) = (d, l.caps[kd].as_ref()) else {
                continue;
            };
            for (dim, &want) in d.iter().enumerate() {
                let room: u128 = (0..n)
                    .filter(|&j| self.kind[j] == kd)
                    .map(|j| (c.cap[dim] as u128).saturating_sub(c.load(excl[j], dim)))
                    .sum();
                if want > room {
                    return false;
                }
            }
        }
        true
    }

    fn rec(&mut self, at: usize, excl: &mut Vec<NumaMask>, can: &[bool]) -> bool {
        if at == self.free.len() {
            return true;
        }
        let key = (at, excl.iter().map(|m| m.0).collect::<Vec<u64>>());
        if self.memo.contains(&key) {
            return false;
        }
        let n = self.l.count;
        let (m, c) = self.free[at].clone();
        let x = NumaMask::single(m);
        for (pos, &i) in c.iter().enumerate() {
            if !can[at * n + i]
                || c[..pos]
                    .iter()
                    .any(|&j| (self.l.same)(i, j) && excl[i] == excl[j])
            {
                continue;
            }
            let saved = excl[i];
            excl[i] = saved.or(x);
            let mut next = can.to_vec();
            let mut dead = false;
            for (k, (later, _)) in self.free.iter().enumerate().skip(at + 1) {
                let cell = k * n + i;
                if next[cell] {
                    next[cell] = (self.l.extends)(i, excl[i].or(NumaMask::single(*later)));
                    if !next[cell] && (0..n).all(|j| !next[k * n + j]) {
                        dead = true;
                        break;
                    }
                }
            }
            if !dead && self.alive(at + 1, excl, &next) && self.rec(at + 1, excl, &next) {
                return true;
            }
            excl[i] = saved;
        }
        if self.memo.len() >= MEMO_LIMIT {
            self.memo.clear();
        }
        self.memo.insert(key);
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    fn no_caps(n: usize) -> Vec<Option<Capacity>> {
        vec![None; n]
    }

    #[test]
    fn covering_needs_every_node_dropped() {
        // list 0 can drop at most one of {a, b}; list 1 can drop c only
        let ext = |i: usize, o: NumaMask| match i {
            0 => (o.0 & 0b011).count_ones() <= 1 && o.0 & 0b100 == 0,
            _ => o.0 & 0b011 == 0,
        };
        let caps = no_caps(3);
        let two = Lists {
            count: 2,
            extends: &ext,
            same: &|_, _| false,
            caps: &caps[..2],
        };
        assert!(covering(&two, NumaMask(0b101)));
        assert!(!covering(&two, NumaMask(0b111)));
        // a second copy of list 0 drops the other one
        let ext3 = |i: usize, o: NumaMask| ext(i.min(1) * (i % 2), o) || (i == 2 && ext(0, o));
        let three = Lists {
            count: 3,
            extends: &ext3,
            same: &|_, _| false,
            caps: &caps,
        };
        assert!(covering(&three, NumaMask(0b111)));
    }

    /// Two copies of one list whose members need 17 of 32 unit-weight nodes: no two
    /// members are disjoint, so the answer is no. Without capacities the search tries
    /// the assignments one by one (about C(32, 15) of them); with them it stops at once.
    /// The copies can also split 30 nodes when each needs 15, a yes.
    #[test]
    fn copies_of_one_list_are_bounded_by_their_capacity() {
        let pool = NumaMask((1u64 << 32) - 1);
        for (need, answer) in [(17u64, false), (15, true), (16, true)] {
            let calls = Cell::new(0u64);
            let ext = |_: usize, o: NumaMask| {
                calls.set(calls.get() + 1);
                32 - u64::from(o.and(pool).count()) >= need
            };
            let cap = Capacity::new(vec![32 - need], |n, _| u64::from(n < 32));
            let caps = vec![Some(cap.clone()), Some(cap)];
            let lists = Lists {
                count: 2,
                extends: &ext,
                same: &|_, _| true,
                caps: &caps,
            };
            assert_eq!(covering(&lists, pool), answer, "need {need}");
            assert!(calls.get() < 50_000, "need {need}: {} calls", calls.get());
        }
    }

    /// Nodes both lists can drop cheaply used to multiply the failed search by two per
    /// node; the capacity of the kind that must take the heavy nodes ends it at the root.
    #[test]
    fn cheap_nodes_do_not_multiply_a_failed_search() {
        // nodes 0-9 weigh 1 (members need 6 of them), nodes 10-49 weigh nothing
        let heavy = NumaMask((1u64 << 10) - 1);
        let rest = NumaMask((1u64 << 50) - 1);
        let calls = Cell::new(0u64);
        let ext = |_: usize, o: NumaMask| {
            calls.set(calls.get() + 1);
            10 - o.and(heavy).count() >= 6
        };
        let cap = Capacity::new(vec![4], |n, _| u64::from(n < 10));
        let caps = vec![Some(cap.clone()), Some(cap)];
        let lists = Lists {
            count: 2,
            extends: &ext,
            same: &|_, _| true,
            caps: &caps,
        };
        assert!(!covering(&lists, rest));
        assert!(calls.get() < 10_000, "{} calls", calls.get());
    }
}
