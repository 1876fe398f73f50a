//! Merging the providers' hints into one hint per container (or pod).
//!
//! The kubelet enumerates the full cross product of every resource's hint list and keeps
//! the best merged permutation under `HintMerger.compare`. That comparison is a total
//! order over (mask, preferred) candidates, so the winner only depends on the *set* of
//! candidates the cross product can produce, not on the order it visits them in:
//!
//! * preferred candidates are masks M such that every list holds M as a preferred hint
//!   or has a preferred "any node" hint (and the default mask when every list has one);
//! * any preferred candidate beats every non-preferred one, and when there is none,
//!   every permutation is non-preferred and its mask is the AND of the picked masks.
//!
//! [`merge`] computes those two sets directly (the AND closure with subset-sum
//! transforms, O(lists * N * 2^N) instead of O(product of list lengths)) and folds the
//! kubelet's own `compare` over them. [`merge_brute_force`] is the kubelet's algorithm,
//! kept as the oracle the property tests compare against.

use super::hint::{ProviderHints, TopologyHint};
use super::numa_info::NumaInfo;
use crate::bitmask::NumaMask;

/// `filterProvidersHints`: one hint list per resource; nil maps and nil lists become
/// `[{any, preferred}]`, empty lists `[{any, not preferred}]`.
pub fn filter_providers_hints(providers: &[ProviderHints]) -> Vec<Vec<TopologyHint>> {
    let mut out = Vec::new();
    for p in providers {
        match p {
            None => out.push(vec![TopologyHint {
                affinity: None,
                preferred: true,
            }]),
            Some(m) if m.is_empty() => out.push(vec![TopologyHint {
                affinity: None,
                preferred: true,
            }]),
            Some(m) => {
                for list in m.values() {
                    match list {
                        None => out.push(vec![TopologyHint {
                            affinity: None,
                            preferred: true,
                        }]),
                        Some(l) if l.is_empty() => out.push(vec![TopologyHint::NONE]),
                        Some(l) => out.push(l.clone()),
                    }
                }
            }
        }
    }
    out
}

/// `filterSingleNumaHints`: keep preferred hints that are "any node" or a single node.
pub fn filter_single_numa(lists: Vec<Vec<TopologyHint>>) -> Vec<Vec<TopologyHint>> {
    lists
        .into_iter()
        .map(|l| {
            l.into_iter()
                .filter(|h| h.preferred && h.affinity.is_none_or(|m| m.count() == 1))
                .collect()
        })
        .collect()
}

/// How two candidate masks of equal preference are told apart.
#[derive(Debug, Clone, Copy)]
pub struct Merger<'a> {
    pub numa: &'a NumaInfo,
    /// `prefer-closest-numa-nodes` under a policy other than single-numa-node.
    pub closest: bool,
}

impl Merger<'_> {
    fn compare_masks(&self, current: TopologyHint, candidate: TopologyHint) -> TopologyHint {
        let (c, d) = (
            current.affinity.unwrap_or_default(),
            candidate.affinity.unwrap_or_default(),
        );
        if c == d {
            return current;
        }
        let best = if self.closest {
            self.numa.closest(c, d)
        } else {
            self.numa.narrowest(c, d)
        };
        if best == c {
            current
        } else {
            candidate
        }
    }

    /// `HintMerger.compare`; `b` is `BestNonPreferredAffinityCount`.
    pub fn compare(
        &self,
        current: Option<TopologyHint>,
        candidate: TopologyHint,
        b: u32,
    ) -> Option<TopologyHint> {
        let count = candidate.affinity.map_or(0, |m| m.count());
        if count == 0 {
            return current;
        }
        let Some(cur) = current else {
            return Some(candidate);
        };
        let r = match (cur.preferred, candidate.preferred) {
            (false, true) => candidate,
            (true, false) => cur,
            (true, true) => self.compare_masks(cur, candidate),
            (false, false) => {
                let c = cur.affinity.map_or(0, |m| m.count());
                let d = count;
                if c > b {
                    self.compare_masks(cur, candidate)
                } else if c == b {
                    if d != b {
                        cur
                    } else {
                        self.compare_masks(cur, candidate)
                    }
                } else if d > b {
                    cur
                } else if d == b || d > c {
                    // a count of exactly B, or closer to B from below, is better
                    candidate
                } else if d < c {
                    cur
                } else {
                    self.compare_masks(cur, candidate)
                }
            }
        };
        Some(r)
    }
}

/// `maxOfMinAffinityCounts`: the largest, over lists, of the narrowest mask's node count.
pub fn best_non_preferred_affinity_count(lists: &[Vec<TopologyHint>]) -> u32 {
    lists
        .iter()
        .map(|l| {
            l.iter()
                .filter_map(|h| h.affinity)
                .fold(None::<NumaMask>, |best, m| match best {
                    Some(b) if !m.is_narrower_than(b) => Some(b),
                    _ => Some(m),
                })
                .map_or(0, |m| m.count())
        })
        .max()
        .unwrap_or(0)
}

/// The kubelet's algorithm: every permutation of the cross product, merged and compared.
/// Exponential; only for tests and small inputs.
pub fn merge_brute_force(lists: &[Vec<TopologyHint>], merger: &Merger) -> TopologyHint {
    let all = merger.numa.all;
    let b = best_non_preferred_affinity_count(lists);
    let mut best: Option<TopologyHint> = None;
    let mut idx = vec![0usize; lists.len()];
    if lists.iter().any(|l| l.is_empty()) {
        return TopologyHint::new(all, false);
    }
    loop {
        let mut preferred = true;
        let mut first: Option<NumaMask> = None;
        let mut merged = all;
        for (l, &i) in lists.iter().zip(&idx) {
            let h = l[i];
            if let Some(m) = h.affinity {
                match first {
                    None => first = Some(m),
                    Some(f) if f != m => preferred = false,
                    _ => {}
                }
                merged = merged.and(m);
            }
            if !h.preferred {
                preferred = false;
            }
        }
        best = merger.compare(best, TopologyHint::new(merged, preferred), b);
        // next permutation (last list innermost)
        let mut k = lists.len();
        loop {
            if k == 0 {
                return best.unwrap_or(TopologyHint::new(all, false));
            }
            k -= 1;
            idx[k] += 1;
            if idx[k] < lists[k].len() {
                break;
            }
            idx[k] = 0;
        }
    }
}

/// Largest machine (in NUMA nodes) for which [`merge`] uses the exact AND closure over a
/// dense 2^N table; beyond it the sparse closure is used.
const DENSE_LIMIT: usize = 16;

/// Same result as [`merge_brute_force`], without the cross product.
pub fn merge(lists: &[Vec<TopologyHint>], merger: &Merger) -> TopologyHint {
    let all = merger.numa.all;
    if lists.iter().any(|l| l.is_empty()) {
        return TopologyHint::new(all, false);
    }
    let b = best_non_preferred_affinity_count(lists);

    // Preferred candidates.
    let mut best: Option<TopologyHint> = None;
    if lists
        .iter()
        .all(|l| l.iter().any(|h| h.preferred && h.affinity.is_none()))
    {
        best = merger.compare(best, TopologyHint::new(all, true), b);
    }
    // A preferred candidate must appear as a preferred mask in every list that has no
    // preferred "any" hint: take the shortest such list's masks as the candidates.
    let constraining: Vec<&Vec<TopologyHint>> = lists
        .iter()
        .filter(|l| !l.iter().any(|h| h.preferred && h.affinity.is_none()))
        .collect();
    let seeds: Vec<NumaMask> = match constraining.iter().min_by_key(|l| l.len()) {
        Some(l) => l
            .iter()
            .filter(|h| h.preferred)
            .filter_map(|h| h.affinity)
            .collect(),
        // every list has a preferred "any": any preferred mask of any list is a candidate
        None => lists
            .iter()
            .flat_map(|l| l.iter().filter(|h| h.preferred).filter_map(|h| h.affinity))
            .collect(),
    };
    for m in seeds {
        let ok = constraining
            .iter()
            .all(|l| l.iter().any(|h| h.preferred && h.affinity == Some(m)));
        if ok {
            best = merger.compare(best, TopologyHint::new(all.and(m), true), b);
        }
    }
    if best.is_some_and(|h| h.preferred) {
        return best.expect("checked");
    }

    // No preferred candidate: every permutation is non-preferred; its mask is the AND of
    // the picked masks ("any" counts as all nodes).
    let mut best = None;
    for m in and_closure(lists, all) {
        best = merger.compare(best, TopologyHint::new(m, false), b);
    }
    best.unwrap_or(TopologyHint::new(all, false))
}

/// Every distinct non-empty mask `all AND h1 AND ... AND hk` with hi taken from list i.
fn and_closure(lists: &[Vec<TopologyHint>], all: NumaMask) -> Vec<NumaMask> {
    let nodes: Vec<u32> = all.ids().collect();
    if nodes.len() <= DENSE_LIMIT {
        dense_and_closure(lists, &nodes)
    } else {
        sparse_and_closure(lists, all)
    }
}

fn compress(m: NumaMask, nodes: &[u32]) -> usize {
    nodes
        .iter()
        .enumerate()
        .filter(|(_, &id)| m.is_set(id))
        .fold(0usize, |acc, (i, _)| acc | 1 << i)
}

fn expand(c: usize, nodes: &[u32]) -> NumaMask {
    NumaMask(
        nodes
            .iter()
            .enumerate()
            .filter(|(i, _)| c & (1 << i) != 0)
            .fold(0u64, |acc, (_, &id)| acc | 1u64 << id),
    )
}

/// Superset-sum transform: c[T] = sum of v[U] for U ⊇ T.
fn superset_zeta(v: &mut [i128], n: usize) {
    for bit in 0..n {
        let b = 1usize << bit;
        for t in 0..v.len() {
            if t & b == 0 {
                v[t] += v[t | b];
            }
        }
    }
}

/// Inverse of [`superset_zeta`].
fn superset_mobius(v: &mut [i128], n: usize) {
    for bit in 0..n {
        let b = 1usize << bit;
        for t in 0..v.len() {
            if t & b == 0 {
                v[t] -= v[t | b];
            }
        }
    }
}

/// `dense_and_closure` for plain mask lists over the given node ids.
pub fn dense_and_closure_on(lists: &[Vec<NumaMask>], nodes: &[u32]) -> Vec<NumaMask> {
    let hl: Vec<Vec<TopologyHint>> = lists
        .iter()
        .map(|l| l.iter().map(|&m| TopologyHint::new(m, false)).collect())
        .collect();
    dense_and_closure(&hl, nodes)
}

/// Exact closure over a dense table: with s(T) = #reachable sets ⊇ T and l(T) = #list
/// masks ⊇ T, s(T)·l(T) counts pairs whose AND ⊇ T; Möbius inversion turns that into pairs
/// whose AND is exactly T. Counts are reset to 0/1 after each list, so they stay below
/// 4^N and fit an i128.
fn dense_and_closure(lists: &[Vec<TopologyHint>], nodes: &[u32]) -> Vec<NumaMask> {
    let n = nodes.len();
    let size = 1usize << n;
    let full = size - 1;
    let mut reach = vec![0i128; size];
    reach[full] = 1;
    let mut list_t = vec![0i128; size];
    for l in lists {
        list_t.iter_mut().for_each(|x| *x = 0);
        for h in l {
            let c = h.affinity.map_or(full, |m| compress(m, nodes) & full);
            list_t[c] = 1;
        }
        superset_zeta(&mut reach, n);
        superset_zeta(&mut list_t, n);
        for (r, l) in reach.iter_mut().zip(&list_t) {
            *r *= *l;
        }
        superset_mobius(&mut reach, n);
        for r in reach.iter_mut() {
            *r = (*r > 0) as i128;
        }
    }
    (1..size)
        .filter(|&c| reach[c] > 0)
        .map(|c| expand(c, nodes))
        .collect()
}

/// Closure by set products, deduplicated after every list. Used above [`DENSE_LIMIT`]
/// nodes, where hint lists are short (the providers only list masks that can win).
fn sparse_and_closure(lists: &[Vec<TopologyHint>], all: NumaMask) -> Vec<NumaMask> {
    let mut reach: Vec<NumaMask> = vec![all];
    for l in lists {
        let mut next: Vec<NumaMask> = Vec::with_capacity(reach.len() * l.len());
        for r in &reach {
            for h in l {
                let m = r.and(h.affinity.unwrap_or(all));
                next.push(m);
            }
        }
        next.sort_unstable();
        next.dedup();
        reach = next;
    }
    reach.into_iter().filter(|m| !m.is_empty()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn h(ids: &[u32], p: bool) -> TopologyHint {
        TopologyHint::new(NumaMask(ids.iter().fold(0, |a, i| a | 1 << i)), p)
    }
    fn any_node(p: bool) -> TopologyHint {
        TopologyHint {
            affinity: None,
            preferred: p,
        }
    }

    #[test]
    fn preferred_needs_equal_masks() {
        let numa = NumaInfo::from_matrix(vec![vec![10, 20], vec![20, 10]]);
        let m = Merger {
            numa: &numa,
            closest: false,
        };
        // {0} preferred + {0,1} preferred merges to {0} not preferred
        let lists = vec![vec![h(&[0], true)], vec![h(&[0, 1], true)]];
        assert_eq!(merge_brute_force(&lists, &m), h(&[0], false));
        assert_eq!(merge(&lists, &m), h(&[0], false));
    }

    #[test]
    fn no_providers_is_all_preferred() {
        let numa = NumaInfo::from_matrix(vec![vec![10, 20], vec![20, 10]]);
        let m = Merger {
            numa: &numa,
            closest: false,
        };
        let lists = filter_providers_hints(&[None, Some(Default::default())]);
        assert_eq!(merge(&lists, &m), h(&[0, 1], true));
    }

    fn arb_hint(n: u32) -> impl Strategy<Value = TopologyHint> {
        (0u64..(1u64 << n), any::<bool>()).prop_map(|(m, p)| {
            if m == 0 {
                TopologyHint {
                    affinity: None,
                    preferred: p,
                }
            } else {
                TopologyHint::new(NumaMask(m), p)
            }
        })
    }

    fn arb_case() -> impl Strategy<Value = (u32, Vec<Vec<TopologyHint>>, bool, Vec<Vec<u64>>)> {
        (1u32..=6).prop_flat_map(|n| {
            (
                Just(n),
                prop::collection::vec(prop::collection::vec(arb_hint(n), 1..6), 1..5),
                any::<bool>(),
                prop::collection::vec(prop::collection::vec(10u64..40, n as usize), n as usize),
            )
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(3000))]
        /// The fast merge equals the kubelet's cross-product merge, for every policy's
        /// filtering and both mask comparisons.
        #[test]
        fn fast_merge_equals_brute_force((n, lists, closest, dist) in arb_case(), single in any::<bool>()) {
            let _ = n;
            let numa = NumaInfo::from_matrix(dist);
            let m = Merger { numa: &numa, closest: closest && !single };
            let lists = if single { filter_single_numa(lists) } else { lists };
            prop_assert_eq!(merge(&lists, &m), merge_brute_force(&lists, &m));
        }

        #[test]
        fn sparse_closure_equals_dense((n, lists, _c, _d) in arb_case()) {
            let all = NumaMask((1u64 << n) - 1);
            let nodes: Vec<u32> = (0..n).collect();
            let mut a = dense_and_closure(&lists, &nodes);
            let mut b = sparse_and_closure(&lists, all);
            a.sort(); b.sort();
            prop_assert_eq!(a, b);
        }
    }

    #[test]
    fn any_node_wildcard_lets_other_lists_decide() {
        let numa = NumaInfo::from_matrix(vec![vec![10, 20], vec![20, 10]]);
        let m = Merger {
            numa: &numa,
            closest: false,
        };
        let lists = vec![vec![any_node(true)], vec![h(&[1], true), h(&[0, 1], false)]];
        assert_eq!(merge(&lists, &m), h(&[1], true));
        assert_eq!(merge_brute_force(&lists, &m), h(&[1], true));
        // An unsatisfiable provider (empty list -> any, not preferred) forces non-preferred.
        let lists = vec![vec![any_node(false)], vec![h(&[1], true)]];
        assert_eq!(merge(&lists, &m), h(&[1], false));
    }
}
