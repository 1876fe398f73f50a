//! Hint lists of machines too large to enumerate (the kubelet lists all 2^N - 1 NUMA
//! masks per resource; at 34 or 64 nodes that never finishes), and the exact merge over
//! them.
//!
//! A provider describes its list as a [`HintFamily`]: a membership test plus one exact
//! oracle, [`HintFamily::extends`] ("is there a member that contains these nodes, avoids
//! those, and has this many nodes?"). [`merge_large`] returns the hint the kubelet's
//! cross product of the lists would return, for every input and without a step budget,
//! by searching masks in the order the kubelet's comparison ranks them:
//!
//! * **Preferred.** A preferred merged hint is a mask every list holds as a preferred
//!   member, and any preferred hint beats every non-preferred one; smaller masks beat
//!   larger ones. So for each size a preferred mask can have (ascending), masks of that
//!   size are walked in numeric order, deciding nodes from the highest down, and a partial
//!   decision is dropped as soon as one list has no member of that size extending it. The
//!   first mask found is the narrowest; under `prefer-closest-numa-nodes` the walk goes on
//!   with a lower bound of the mean distance pruning it.
//! * **Not preferred.** Every merged mask T is the AND of one member per list. With B the
//!   largest of the lists' smallest member sizes, the comparison ranks masks of B nodes
//!   first, then B-1, ..., 1, then B+1, B+2, .... For each size in that order, masks T are
//!   walked under "every list has a member containing T" (closed under taking subsets,
//!   so it prunes partial masks), and each is checked by a covering search: every node
//!   outside T must be left out by some list whose member still contains T without it
//!   ([`super::covering`]; a list that has T itself as a member settles it at once,
//!   nodes outside a list's span of T cost it nothing to leave out, and families that
//!   can bound what a member leaves out, by per-node weights, prune the search). Nodes no list can
//!   leave out from any member are in every merged mask, so masks without them are never
//!   walked (with "any node" lists only, the one merged mask is every node).
//!
//! Both walks are also pruned by [`HintFamily::span`] (a mask of `c` nodes that every
//! list must contain in a member lies within the intersection of the lists' spans of the
//! partial mask, so fewer than `c` nodes there drop it) and, under prefer-closest, by a
//! lower bound of the distance sum (`search::distance_bound`, kept incrementally by
//! `search::DistanceBounds`) against the best
//! mask found so far, ties included when every mask left in the subtree is numerically
//! above it (see `best_of_size`).
//!
//! Every pruning step is exact (an oracle answers "no" only when no mask of the subtree
//! can qualify), so the result is the kubelet's; only the time depends on the input.
//! Memory stays linear in the number of nodes (no 2^N tables; the covering memo is
//! capped and only caches).
//!
//! ## Adding a provider
//!
//! Implement [`HintFamily`] for the provider's list and hand it to the merge as
//! [`LargeList::Family`] (one `Rc` per resource; lists that are the same `Rc` are
//! recognised as interchangeable). `get` and `extends` must agree with the kubelet's list
//! exactly; nothing else is assumed — in particular the members need not be described by
//! per-node sums. A device provider, where a device with several NUMA nodes counts for a
//! mask when any of its nodes is in it, answers `extends(inn, out, None)` by checking the
//! largest candidate (`universe \ out`, its list being closed under adding nodes) and the
//! sized question by its own search (e.g. [`super::sums::Sums::exists`] with a leaf
//! predicate that counts the devices a mask reaches). Lists that are cheap to list can
//! stay [`LargeList::Explicit`]. A family whose members are sums reaching a need can also
//! give [`HintFamily::capacity`] and [`HintFamily::and_bound`] (both only prune, so leaving
//! them at `None` is always right; a bound that is not a necessary condition is a bug).

use super::covering::{covering, AndBound, Capacity, Lists};
use super::hint::TopologyHint;
use super::merge::{best_non_preferred_affinity_count, dense_and_closure_on, Merger};
use super::search::{distance_sum, walk, DistanceBounds};
use crate::bitmask::NumaMask;
use std::fmt::Debug;
use std::rc::Rc;

/// A set of mask sizes (0 to 64 nodes), one bit each: what
/// [`HintFamily::preferred_sizes`] answers, without a heap allocation per question.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SizeSet(u128);

impl SizeSet {
    pub const EMPTY: SizeSet = SizeSet(0);

    /// The one size `k` (sizes above 127 cannot occur: masks have 64 nodes at most).
    pub fn single(k: u32) -> SizeSet {
        SizeSet(1u128.checked_shl(k).unwrap_or(0))
    }

    /// Every size from 1 to `n`.
    pub fn up_to(n: u32) -> SizeSet {
        (1..=n)
            .map(SizeSet::single)
            .fold(SizeSet::EMPTY, SizeSet::or)
    }

    pub fn or(self, o: SizeSet) -> SizeSet {
        SizeSet(self.0 | o.0)
    }

    pub fn and(self, o: SizeSet) -> SizeSet {
        SizeSet(self.0 & o.0)
    }

    pub fn contains(self, k: u32) -> bool {
        k < 128 && self.0 >> k & 1 == 1
    }

    /// The sizes, smallest first.
    pub fn iter(self) -> impl Iterator<Item = u32> {
        let mut rest = self.0;
        std::iter::from_fn(move || {
            if rest == 0 {
                return None;
            }
            let k = rest.trailing_zeros();
            rest &= rest - 1;
            Some(k)
        })
    }

    pub fn to_vec(self) -> Vec<u32> {
        self.iter().collect()
    }
}

impl FromIterator<u32> for SizeSet {
    fn from_iter<I: IntoIterator<Item = u32>>(it: I) -> SizeSet {
        it.into_iter()
            .map(SizeSet::single)
            .fold(SizeSet::EMPTY, SizeSet::or)
    }
}

/// One resource's hint list, described instead of listed.
pub trait HintFamily: Debug {
    /// `Some(preferred)` if `m` is in the list.
    fn get(&self, m: NumaMask) -> Option<bool>;
    /// Every mask of the list lies within this set.
    fn universe(&self) -> NumaMask;
    /// Sizes a preferred mask can have.
    fn preferred_sizes(&self) -> SizeSet;
    /// The size of the smallest member, `None` for an empty list.
    fn min_size(&self) -> Option<u32>;
    /// Whether some member `m` has `inn ⊆ m`, `m ∩ out = ∅` and, when `size` is given,
    /// exactly `size` nodes. Must be exact (the merge prunes on it).
    fn extends(&self, inn: NumaMask, out: NumaMask, size: Option<u32>) -> bool;
    /// [`HintFamily::extends`], with the member that proves a yes when the family's
    /// search found one: the merge keeps such members and answers later questions they
    /// also answer without asking again. The default names none.
    fn extends_witness(
        &self,
        inn: NumaMask,
        out: NumaMask,
        size: Option<u32>,
    ) -> (bool, Option<NumaMask>) {
        (self.extends(inn, out, size), None)
    }
    /// A superset of the union of the members that contain `inn` (the nodes that can
    /// join `inn` in a member). Only prunes the merge's walk, so any superset is right;
    /// the default is the universe.
    fn span(&self, inn: NumaMask) -> NumaMask {
        let _ = inn;
        self.universe()
    }
    /// A superset of the union of the members with `size` nodes that contain `inn` and
    /// avoid `out`: the preferred walk asks every list for its members within the
    /// others' spans, so a family that can narrow its span by size and exclusions (the
    /// largest completion by per-node sums) prunes what the others' answers alone
    /// would not. Only prunes, so any superset is right; the default is
    /// [`HintFamily::span`].
    fn sized_span(&self, inn: NumaMask, out: NumaMask, size: u32) -> NumaMask {
        let _ = (out, size);
        self.span(inn)
    }
    /// What a member containing `inn` can leave out, as weights against a capacity (see
    /// [`Capacity`]), when the family can bound it: the covering search of the
    /// non-preferred merge uses it to stop early. Only prunes, so `None` (the default)
    /// is always right; a bound that is not necessary would make the merge wrong.
    fn capacity(&self, inn: NumaMask) -> Option<Capacity> {
        let _ = inn;
        None
    }
    /// A bound on the masks that can be the AND of picks from `copies` copies of this
    /// list, when no other list can leave out the nodes of `alone` (see [`AndBound`]).
    /// Only prunes the non-preferred walk: `None` (the default) is always right.
    fn and_bound(&self, copies: u32, alone: NumaMask) -> Option<AndBound> {
        let _ = (copies, alone);
        None
    }
    /// The numerically smallest member with exactly `k` nodes that contains `base`.
    fn smallest_member(&self, base: NumaMask, k: u32) -> Option<NumaMask> {
        smallest_by_extends(self, base, k)
    }
}

/// [`HintFamily::smallest_member`] from [`HintFamily::extends`] alone: nodes decided from
/// the highest down, each left out when a member without it remains.
pub fn smallest_by_extends<F: HintFamily + ?Sized>(
    f: &F,
    base: NumaMask,
    k: u32,
) -> Option<NumaMask> {
    if !f.extends(base, NumaMask::EMPTY, Some(k)) {
        return None;
    }
    let (mut inn, mut out) = (base, NumaMask::EMPTY);
    let ids: Vec<u32> = f.universe().ids().collect();
    for &n in ids.iter().rev() {
        if inn.is_set(n) {
            continue;
        }
        let x = NumaMask::single(n);
        if inn.count() == k || f.extends(inn, out.or(x), Some(k)) {
            out = out.or(x);
        } else {
            inn = inn.or(x);
        }
    }
    f.get(inn).map(|_| inn)
}

/// A resource's hint list in a large-machine merge.
#[derive(Debug, Clone)]
pub enum LargeList {
    Explicit(Vec<TopologyHint>),
    Family(Rc<dyn HintFamily>),
}

fn list_universe(l: &LargeList, all: NumaMask) -> NumaMask {
    match l {
        LargeList::Family(f) => f.universe(),
        LargeList::Explicit(v) => v
            .iter()
            .fold(NumaMask::EMPTY, |u, h| u.or(h.affinity.unwrap_or(all))),
    }
}

/// [`HintFamily::span`] for either kind of list (exact for explicit lists).
fn list_span(l: &LargeList, inn: NumaMask, all: NumaMask) -> NumaMask {
    match l {
        LargeList::Family(f) => f.span(inn),
        LargeList::Explicit(v) => v
            .iter()
            .map(|h| h.affinity.unwrap_or(all))
            .filter(|&m| inn.is_subset_of(m))
            .fold(NumaMask::EMPTY, NumaMask::or),
    }
}

fn has_preferred_any(l: &LargeList) -> bool {
    matches!(l, LargeList::Explicit(v) if v.iter().any(|h| h.preferred && h.affinity.is_none()))
}

fn is_wildcard(l: &LargeList) -> bool {
    matches!(l, LargeList::Explicit(v) if v.iter().all(|h| h.affinity.is_none()))
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

/// [`HintFamily::extends`] for either kind of list ("any node" counts as every node).
fn extends(l: &LargeList, inn: NumaMask, out: NumaMask, size: Option<u32>, all: NumaMask) -> bool {
    match l {
        LargeList::Family(f) => f.extends(inn, out, size),
        LargeList::Explicit(v) => v.iter().any(|h| {
            let m = h.affinity.unwrap_or(all);
            inn.is_subset_of(m) && m.and(out).is_empty() && size.is_none_or(|k| m.count() == k)
        }),
    }
}

/// A list of the merge with the members its family named while answering
/// [`HintFamily::extends`] (a few, the latest kept): the walks ask about nested partial
/// masks, and the member that proved a parent usually proves one of its children.
#[derive(Debug)]
struct Cached<'a> {
    list: &'a LargeList,
    all: NumaMask,
    seen: std::cell::RefCell<(usize, Vec<NumaMask>)>,
}

/// Members remembered per list.
const WITNESSES: usize = 16;

impl<'a> Cached<'a> {
    fn new(list: &'a LargeList, all: NumaMask) -> Cached<'a> {
        Cached {
            list,
            all,
            seen: std::cell::RefCell::new((0, Vec::with_capacity(WITNESSES))),
        }
    }

    /// [`extends`], answered from a remembered member when one fits.
    fn extends(&self, inn: NumaMask, out: NumaMask, size: Option<u32>) -> bool {
        let LargeList::Family(f) = self.list else {
            return extends(self.list, inn, out, size, self.all);
        };
        let fits = |m: &NumaMask| {
            inn.is_subset_of(*m) && m.and(out).is_empty() && size.is_none_or(|k| m.count() == k)
        };
        if self.seen.borrow().1.iter().any(fits) {
            return true;
        }
        let (yes, member) = f.extends_witness(inn, out, size);
        if let Some(m) = member.filter(|m| yes && fits(m)) {
            let mut seen = self.seen.borrow_mut();
            let (next, v) = &mut *seen;
            if v.len() < WITNESSES {
                v.push(m);
            } else {
                v[*next] = m;
            }
            *next = (*next + 1) % WITNESSES;
        }
        yes
    }
}

fn same_list(a: &LargeList, b: &LargeList) -> bool {
    match (a, b) {
        (LargeList::Family(x), LargeList::Family(y)) => Rc::ptr_eq(x, y),
        (LargeList::Explicit(x), LargeList::Explicit(y)) => x == y,
        _ => false,
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

/// Universes up to this many nodes are merged by projection onto them (the exact AND
/// closure of [`super::merge`]); 0 in the engine, raised by tests to compare the paths.
pub const DENSE_UNIVERSE: usize = 0;

/// The merged hint of `lists`, equal to the kubelet's cross-product merge.
pub fn merge_large(lists: &[LargeList], merger: &Merger) -> TopologyHint {
    merge_large_with(lists, merger, DENSE_UNIVERSE)
}

/// The best mask of exactly `k` nodes of `u` that `ok` lets through and `accept` takes,
/// in the merger's order: the numerically first one, or under prefer-closest the one of
/// least mean distance (ties to the lower mask), the walk pruned by a distance bound.
///
/// Under prefer-closest, with `best` the best mask found so far and `s` its distance
/// sum, a partial decision `(inn, out)` is dropped when the bound of its masks reaches
/// `s`: the walk is in ascending numeric order, so every mask of a subtree entered after
/// `best` was found lies numerically above it, and such a mask can at best tie (the
/// same node count makes equal mean distances equal sums), and ties go to the lower
/// mask. Every mask `ok` lets through holds the nodes of `must`, so the bound counts
/// them as taken.
#[allow(clippy::too_many_arguments)]
fn best_of_size(
    merger: &Merger,
    b: u32,
    preferred: bool,
    u: NumaMask,
    k: u32,
    must: NumaMask,
    ok: &dyn Fn(NumaMask, NumaMask) -> bool,
    accept: &dyn Fn(NumaMask) -> bool,
) -> Option<TopologyHint> {
    let mut found: Option<TopologyHint> = None;
    let best = std::cell::Cell::new(None::<u64>);
    let closest = merger.closest;
    let mut bounds = closest.then(|| DistanceBounds::new(merger.numa, u, k));
    walk(
        u,
        k,
        &mut |inn, out| {
            if !ok(inn, out) {
                return false;
            }
            match (&mut bounds, best.get()) {
                (Some(d), Some(s)) => d.bound(inn.or(must), out) < s,
                _ => true,
            }
        },
        &mut |m| {
            if !accept(m) {
                return true;
            }
            found = merger.compare(found, TopologyHint::new(m, preferred), b);
            if !closest {
                // numeric order: the first hit is the narrowest
                return false;
            }
            if found.and_then(|h| h.affinity) == Some(m) {
                best.set(Some(distance_sum(merger.numa, m)));
            }
            true
        },
    );
    found
}

/// [`merge_large`] with the projection threshold given (tests raise it to compare the
/// search with the projection onto the universe).
pub fn merge_large_with(
    lists: &[LargeList],
    merger: &Merger,
    dense_universe: usize,
) -> TopologyHint {
    merge_large_inner(lists, merger, dense_universe, false)
        .unwrap_or(TopologyHint::new(merger.numa.all, false))
}

/// The merged hint of `lists` when it is preferred, `None` when it is not: what
/// policies `restricted` and `single-numa-node` need to decide (they reject every
/// non-preferred hint). Equal to [`merge_large`] whenever that is preferred; the search
/// for the best non-preferred mask, the costly part of a rejection, is not run.
pub fn merge_large_preferred(lists: &[LargeList], merger: &Merger) -> Option<TopologyHint> {
    merge_large_inner(lists, merger, DENSE_UNIVERSE, true)
}

/// [`merge_large_with`]; with `preferred_only`, `None` instead of a non-preferred hint.
fn merge_large_inner(
    lists: &[LargeList],
    merger: &Merger,
    dense_universe: usize,
    preferred_only: bool,
) -> Option<TopologyHint> {
    let all = merger.numa.all;
    if lists
        .iter()
        .any(|l| matches!(l, LargeList::Explicit(v) if v.is_empty()))
    {
        return (!preferred_only).then_some(TopologyHint::new(all, false));
    }
    let cached: Vec<Cached> = lists.iter().map(|l| Cached::new(l, all)).collect();
    if let Some(h) = best_preferred(&cached, merger) {
        return Some(h);
    }
    if preferred_only {
        return None;
    }
    // `BestNonPreferredAffinityCount` ranks non-preferred hints only: asked for (a
    // family may have to search for its smallest member) once none is preferred
    let b = lists.iter().map(min_count).max().unwrap_or(0);
    Some(best_non_preferred(
        lists,
        &cached,
        merger,
        b,
        dense_universe,
    ))
}

/// The best non-preferred merged hint (when no preferred one exists).
fn best_non_preferred(
    lists: &[LargeList],
    cached: &[Cached],
    merger: &Merger,
    b: u32,
    dense_universe: usize,
) -> TopologyHint {
    let all = merger.numa.all;

    // No preferred candidate: the best AND of one member per list.
    let u = lists.iter().fold(all, |u, l| u.and(list_universe(l, all)));
    if u.is_empty() {
        return TopologyHint::new(all, false);
    }
    let nodes: Vec<u32> = u.ids().collect();
    if nodes.len() <= dense_universe {
        let projected: Vec<Vec<NumaMask>> =
            lists.iter().map(|l| projected(l, u, &nodes, all)).collect();
        let closure = dense_and_closure_on(&projected, &nodes);
        return fold_best(merger, b, false, closure).unwrap_or(TopologyHint::new(all, false));
    }
    // Lists of "any node" only leave every node in: they take no part below.
    let real: Vec<&Cached> = cached.iter().filter(|l| !is_wildcard(l.list)).collect();
    // A merged mask of `c` nodes containing `inn` lies, for every list, within the
    // nodes that can join `inn` in one of its members.
    let room = |inn: NumaMask, out: NumaMask, c: u32| {
        real.iter()
            .fold(NumaMask(u.0 & !out.0), |p, l| {
                p.and(list_span(l.list, inn, all))
            })
            .count()
            >= c
    };
    let contained =
        |inn: NumaMask, _out: NumaMask| real.iter().all(|l| l.extends(inn, NumaMask::EMPTY, None));
    // Nodes of `u` that no list can leave out are in every merged mask (a list that
    // cannot drop a node from any member cannot drop it from one containing T either):
    // masks without them are never achievable, so the walks skip them. With no list
    // but "any node" lists this is all of `u`, the only merged mask.
    let forced = u.ids().fold(NumaMask::EMPTY, |f, n| {
        let x = NumaMask::single(n);
        if real.iter().any(|l| l.extends(NumaMask::EMPTY, x, None)) {
            f
        } else {
            f.or(x)
        }
    });
    // Per kind of list (copies of one list are one kind), the bound its family gives
    // on the ANDs of its copies, with the nodes no other kind can ever leave out.
    let never_left_out = |l: &Cached| {
        u.ids()
            .filter(|&n| !l.extends(NumaMask::EMPTY, NumaMask::single(n), None))
            .fold(NumaMask::EMPTY, |m, n| m.or(NumaMask::single(n)))
    };
    let build_bounds = || -> Vec<AndBound> {
        (0..real.len())
            .filter(|&i| (0..i).all(|j| !same_list(real[i].list, real[j].list)))
            .filter_map(|i| {
                let LargeList::Family(f) = real[i].list else {
                    return None;
                };
                let kind = |j: usize| same_list(real[i].list, real[j].list);
                let copies = (0..real.len()).filter(|&j| kind(j)).count() as u32;
                let mut alone = u;
                for j in (0..real.len()).filter(|&j| !kind(j)) {
                    if alone.is_empty() {
                        break;
                    }
                    alone = alone.and(never_left_out(real[j]));
                }
                f.and_bound(copies, alone)
            })
            .collect()
    };
    // The bounds cost searches per node and list to build, and only prune: a walk that
    // ends within a few questions does not need them, so they are built once it has
    // asked this many (the same masks are found either way).
    const UNBOUNDED_QUESTIONS: u32 = 16;
    let bounds: std::cell::OnceCell<Vec<AndBound>> = std::cell::OnceCell::new();
    let asked = std::cell::Cell::new(0u32);
    let bounds_allow = |inn: NumaMask, out: NumaMask, c: u32| {
        asked.set(asked.get() + 1);
        asked.get() <= UNBOUNDED_QUESTIONS
            || bounds
                .get_or_init(build_bounds)
                .iter()
                .all(|b| b.allows(inn, out, c))
    };
    let only = match real[..] {
        [l] => Some(l),
        _ => None,
    };
    let mut order: Vec<u32> = vec![b];
    order.extend((1..b).rev());
    order.extend(b + 1..=nodes.len() as u32);
    for c in order
        .into_iter()
        .filter(|&c| c >= 1.max(forced.count()) && c as usize <= nodes.len())
    {
        let ok = |inn: NumaMask, out: NumaMask| {
            out.and(forced).is_empty()
                && room(inn, out, c)
                && match only {
                    // one list: the merged masks are its members (within `u`, which is
                    // then its universe), so the walk keeps the partial masks that have
                    // a member of this size
                    Some(l) => l.extends(inn, out, Some(c)),
                    None => contained(inn, out),
                }
                && bounds_allow(inn, out, c)
        };
        let accept = |t: NumaMask| achievable(&real, t, u);
        let found = best_of_size(merger, b, false, u, c, forced, &ok, &accept);
        if let Some(h) = found {
            return h;
        }
    }
    TopologyHint::new(all, false)
}

/// The best preferred merged hint, if there is one.
fn best_preferred(lists: &[Cached], merger: &Merger) -> Option<TopologyHint> {
    // the merger's comparison reads `BestNonPreferredAffinityCount` only between two
    // non-preferred hints: any value ranks preferred ones alike
    let b = 0;
    let all = merger.numa.all;
    let constraining: Vec<&Cached> = lists
        .iter()
        .filter(|l| !has_preferred_any(l.list))
        .collect();
    if constraining.is_empty() {
        // Every list has a preferred "any node": the default mask, and every preferred
        // mask of a list (the others picking "any") are preferred candidates.
        let masks = lists.iter().flat_map(|l| match l.list {
            LargeList::Explicit(v) => v
                .iter()
                .filter(|h| h.preferred)
                .map(|h| h.affinity.unwrap_or(all))
                .collect::<Vec<_>>(),
            LargeList::Family(_) => Vec::new(),
        });
        return fold_best(merger, b, true, std::iter::once(all).chain(masks));
    }
    let is_preferred_everywhere =
        |m: NumaMask| constraining.iter().all(|l| get(l.list, m) == Some(true));
    let explicit_seed = constraining.iter().find_map(|l| match l.list {
        LargeList::Explicit(v) => Some(v),
        _ => None,
    });
    if let Some(v) = explicit_seed {
        let seeds = v.iter().filter(|h| h.preferred).filter_map(|h| h.affinity);
        return fold_best(
            merger,
            b,
            true,
            seeds.filter(|&m| is_preferred_everywhere(m)),
        );
    }
    let u = constraining
        .iter()
        .fold(all, |u, l| u.and(list_universe(l.list, all)));
    let mut distinct: Vec<&Cached> = Vec::new();
    for l in &constraining {
        if !distinct.iter().any(|d| same_list(d.list, l.list)) {
            distinct.push(l);
        }
    }
    let mut sizes: Option<SizeSet> = None;
    for l in &distinct {
        if let LargeList::Family(f) = l.list {
            let s = f.preferred_sizes();
            sizes = Some(sizes.map_or(s, |prev| prev.and(s)));
        }
    }
    for k in sizes.unwrap_or_default().iter() {
        if k == 1 {
            // One-node masks: asking each node of `u` directly is cheaper than the walk,
            // and folding them in ascending order with the merger's comparison is what
            // the walk's visit order and pruning amount to.
            let best = u
                .ids()
                .map(NumaMask::single)
                .filter(|&m| is_preferred_everywhere(m))
                .fold(None, |found, m| {
                    merger.compare(found, TopologyHint::new(m, true), b)
                });
            if best.is_some() {
                return best;
            }
            continue;
        }
        // A preferred mask is a member of every list: it lies within their spans of
        // `inn` (and within `u`), so each list is asked for a member there, not only
        // for one avoiding `out`. A list whose own members reach outside the others'
        // spans then answers for the members they could share (a CPU list among nodes
        // rich in CPUs, a memory list among unassigned nodes, say).
        let ok = |inn: NumaMask, out: NumaMask| {
            let fits = |w: NumaMask| w.count() >= k && inn.is_subset_of(w);
            let mut within = distinct.iter().fold(NumaMask(u.0 & !out.0), |p, l| {
                p.and(list_span(l.list, inn, all))
            });
            for l in &distinct {
                if let LargeList::Family(f) = l.list {
                    if !fits(within) {
                        return false;
                    }
                    within = within.and(f.sized_span(inn, NumaMask(!within.0), k));
                }
            }
            let out = NumaMask(!within.0);
            fits(within) && distinct.iter().all(|l| l.extends(inn, out, Some(k)))
        };
        // a smaller preferred size always beats a larger one
        if let Some(h) = best_of_size(
            merger,
            b,
            true,
            u,
            k,
            NumaMask::EMPTY,
            &ok,
            &is_preferred_everywhere,
        ) {
            return Some(h);
        }
    }
    None
}

/// Can one member per list be picked so that their intersection (within `u`) is exactly
/// `t`? Every list must have a member containing `t`, and every node of `u` outside `t`
/// must be left out by some list's pick. A node outside a list's span of `t` is in none
/// of its members containing `t`: that list leaves it out at no cost, so only the nodes
/// every list can hold with `t` are searched.
fn achievable(lists: &[&Cached], t: NumaMask, u: NumaMask) -> bool {
    if !lists.iter().all(|l| l.extends(t, NumaMask::EMPTY, None)) {
        return false;
    }
    let rest = lists.iter().fold(NumaMask(u.0 & !t.0), |r, l| {
        r.and(list_span(l.list, t, l.all))
    });
    // The covering search's first answers, before the capacities it may need are
    // built (each a table per list; most masks are decided here).
    if rest.is_empty() || lists.iter().any(|l| l.extends(t, rest, None)) {
        return true;
    }
    let caps: Vec<Option<Capacity>> = lists
        .iter()
        .map(|l| match l.list {
            LargeList::Family(f) => f.capacity(t),
            LargeList::Explicit(_) => None,
        })
        .collect();
    covering(
        &Lists {
            count: lists.len(),
            extends: &|i, out| lists[i].extends(t, out, None),
            same: &|i, j| same_list(lists[i].list, lists[j].list),
            caps: &caps,
        },
        rest,
    )
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
                walk(u, k, &mut |_, _| true, &mut |x| {
                    if f.extends(x, NumaMask(u.0 & !x.0), None) {
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
    use crate::topology::merge::merge_brute_force;
    use crate::topology::numa_info::NumaInfo;
    use proptest::prelude::*;

    /// A family given by its members, answering every question by looking at all of
    /// them: any list at all, not only the providers' kinds.
    #[derive(Debug)]
    struct Listed(Vec<(NumaMask, bool)>);

    impl HintFamily for Listed {
        fn get(&self, m: NumaMask) -> Option<bool> {
            let mut r = None;
            for &(x, p) in &self.0 {
                if x == m {
                    r = Some(r.unwrap_or(false) || p);
                }
            }
            r
        }
        fn universe(&self) -> NumaMask {
            self.0.iter().fold(NumaMask::EMPTY, |u, (m, _)| u.or(*m))
        }
        fn preferred_sizes(&self) -> SizeSet {
            self.0.iter().filter(|x| x.1).map(|x| x.0.count()).collect()
        }
        fn min_size(&self) -> Option<u32> {
            self.0.iter().map(|x| x.0.count()).min()
        }
        fn span(&self, inn: NumaMask) -> NumaMask {
            self.0
                .iter()
                .filter(|(m, _)| inn.is_subset_of(*m))
                .fold(NumaMask::EMPTY, |u, (m, _)| u.or(*m))
        }
        fn extends(&self, inn: NumaMask, out: NumaMask, size: Option<u32>) -> bool {
            self.0.iter().any(|&(m, _)| {
                inn.is_subset_of(m) && m.and(out).is_empty() && size.is_none_or(|k| k == m.count())
            })
        }
    }

    /// Lists of "any node" only (a pod-scope merge where every provider had no hint):
    /// the only merged mask is every node, not preferred; and nodes no list can leave
    /// out are in the result. (At 16 nodes this once walked all 2^16 masks.)
    #[test]
    fn size_sets() {
        let a: SizeSet = [3, 1, 64, 3].into_iter().collect();
        assert_eq!(a.to_vec(), vec![1, 3, 64]);
        assert!(a.contains(64) && !a.contains(2) && !a.contains(500));
        assert_eq!(SizeSet::up_to(4).to_vec(), vec![1, 2, 3, 4]);
        assert_eq!(a.and(SizeSet::up_to(4)).to_vec(), vec![1, 3]);
        assert_eq!(SizeSet::single(0).to_vec(), vec![0]);
        assert_eq!(SizeSet::single(200), SizeSet::EMPTY);
        assert_eq!(SizeSet::EMPTY.iter().count(), 0);
    }

    #[test]
    fn wildcards_and_undroppable_nodes() {
        let numa = NumaInfo::from_matrix(
            (0..16u64)
                .map(|i| {
                    (0..16u64)
                        .map(|j| if i == j { 10 } else { 20 + (i + j) % 7 })
                        .collect()
                })
                .collect(),
        );
        for closest in [false, true] {
            let merger = Merger {
                numa: &numa,
                closest,
            };
            let any = vec![TopologyHint {
                affinity: None,
                preferred: false,
            }];
            let plain = vec![any.clone(), any.clone()];
            let large = vec![
                LargeList::Explicit(any.clone()),
                LargeList::Explicit(any.clone()),
            ];
            assert_eq!(
                merge_large(&large, &merger),
                merge_brute_force(&plain, &merger)
            );
            assert_eq!(
                merge_large(&large, &merger),
                TopologyHint::new(numa.all, false)
            );
            // a family whose members all hold nodes 0 and 5, next to a wildcard
            let members: Vec<(NumaMask, bool)> = [0b10_0001u64, 0b1110_0001, 0b1_0000_0010_0001]
                .iter()
                .map(|&m| (NumaMask(m), false))
                .collect();
            let hints: Vec<TopologyHint> = members
                .iter()
                .map(|&(m, p)| TopologyHint::new(m, p))
                .collect();
            let large = vec![
                LargeList::Family(Rc::new(Listed(members))),
                LargeList::Explicit(any.clone()),
            ];
            let got = merge_large(&large, &merger);
            assert_eq!(got, merge_brute_force(&[hints, any.clone()], &merger));
            assert_eq!(got, TopologyHint::new(NumaMask(0b10_0001), false));
        }
    }

    fn arb_lists(n: u32) -> impl Strategy<Value = Vec<(u8, Vec<(u64, bool)>)>> {
        let member = (1u64..(1u64 << n), any::<bool>());
        // kind: 0-5 a family, 6 the same family as the previous list, 7 explicit
        prop::collection::vec((0u8..8, prop::collection::vec(member, 1..7)), 1..5)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]
        /// The large merge equals the kubelet's cross product for arbitrary lists, as
        /// families, repeated families and explicit lists, under both comparisons.
        #[test]
        fn large_merge_equals_cross_product(
            (n, lists, dist) in (1u32..=6).prop_flat_map(|n| (
                Just(n),
                arb_lists(n),
                prop::collection::vec(prop::collection::vec(11u64..40, n as usize), n as usize),
            )),
            closest in any::<bool>(),
            wildcard in 0u8..3,
        ) {
            let mut dist = dist;
            for (i, row) in dist.iter_mut().enumerate() {
                row[i] = 10;
            }
            let numa = NumaInfo::from_matrix(dist);
            let merger = Merger { numa: &numa, closest };
            let mut large: Vec<LargeList> = Vec::new();
            let mut plain: Vec<Vec<TopologyHint>> = Vec::new();
            for (kind, members) in &lists {
                let hints: Vec<TopologyHint> =
                    members.iter().map(|&(m, p)| TopologyHint::new(NumaMask(m), p)).collect();
                let l = match (kind, large.last()) {
                    (6, Some(prev @ LargeList::Family(_))) => {
                        plain.push(plain.last().cloned().expect("a previous list"));
                        large.push(prev.clone());
                        continue;
                    }
                    (7, _) => LargeList::Explicit(hints.clone()),
                    _ => LargeList::Family(Rc::new(Listed(
                        members.iter().map(|&(m, p)| (NumaMask(m), p)).collect(),
                    ))),
                };
                plain.push(hints);
                large.push(l);
            }
            if wildcard > 0 {
                let any = vec![TopologyHint { affinity: None, preferred: wildcard == 1 }];
                plain.push(any.clone());
                large.push(LargeList::Explicit(any));
            }
            let expected = merge_brute_force(&plain, &merger);
            prop_assert_eq!(merge_large_with(&large, &merger, 0), expected);
            // the preferred-only merge (restricted and single-numa-node decisions)
            prop_assert_eq!(merge_large_preferred(&large, &merger), expected.preferred.then_some(expected));
            prop_assert_eq!(merge_large_with(&large, &merger, 64), expected);
            let _ = n;
        }
    }
}
