//! The searches behind [`super::family::merge_large`]: masks of one size walked in numeric
//! order under exact pruning and the mean-distance bound of `prefer-closest-numa-nodes`.

use super::numa_info::NumaInfo;
use crate::bitmask::NumaMask;

/// Walks the masks of exactly `k` nodes of `u` in ascending numeric order, deciding nodes
/// from the highest down (left out before taken in: a mask is smaller when its highest
/// differing node is absent). `ok(inn, out)` is asked of every partial decision and must
/// return false only when no accepted mask `m` has `inn ⊆ m` and `m ∩ out = ∅`; `f` gets
/// every complete mask `ok` accepts and returns false to stop. Returns false if stopped.
pub fn walk(
    u: NumaMask,
    k: u32,
    ok: &mut dyn FnMut(NumaMask, NumaMask) -> bool,
    f: &mut dyn FnMut(NumaMask) -> bool,
) -> bool {
    let mut ids: Vec<u32> = u.ids().collect();
    ids.reverse();
    if k == 0 || k as usize > ids.len() {
        return true;
    }
    fn rec(
        ids: &[u32],
        k: u32,
        inn: NumaMask,
        out: NumaMask,
        ok: &mut dyn FnMut(NumaMask, NumaMask) -> bool,
        f: &mut dyn FnMut(NumaMask) -> bool,
    ) -> bool {
        if inn.count() == k {
            let out = ids.iter().fold(out, |o, &n| o.or(NumaMask::single(n)));
            return !ok(inn, out) || f(inn);
        }
        let Some((&n, rest)) = ids.split_first() else {
            return true;
        };
        let x = NumaMask::single(n);
        if inn.count() as usize + rest.len() >= k as usize
            && ok(inn, out.or(x))
            && !rec(rest, k, inn, out.or(x), ok, f)
        {
            return false;
        }
        if ok(inn.or(x), out) && !rec(rest, k, inn.or(x), out, ok, f) {
            return false;
        }
        true
    }
    rec(&ids, k, NumaMask::EMPTY, NumaMask::EMPTY, ok, f)
}

/// Sum of the distances over all ordered pairs of `m` (the pair (i, i) included): the
/// numerator of [`NumaInfo::average_distance`].
pub fn distance_sum(numa: &NumaInfo, m: NumaMask) -> u64 {
    m.ids()
        .map(|i| m.ids().map(|j| numa.distance(i, j)).sum::<u64>())
        .sum()
}

/// A lower bound of [`distance_sum`] over the masks of `k` nodes that contain `inn` and
/// avoid `out`, within `u`. A mask `inn ∪ A` sums the pairs inside `inn`, and for each
/// added node `a`: its self distance, its distances to and from `inn`, and its distances
/// to the other added nodes, at least the `|A| - 1` smallest from `a` to a candidate
/// (read from [`NumaInfo::nearest`]; a scan cut short counts the remaining ones at the
/// last distance read, which the sorted row makes a lower bound). The bound is the pairs
/// of `inn` plus the `|A|` smallest such per-node amounts. Distances need not be
/// symmetric: every ordered pair is counted once.
///
/// The walks ask this of every partial mask through [`DistanceBounds`], which gives the
/// same values with the sums over `inn` kept from one question to the next; this direct
/// form is the tests' oracle.
#[cfg(test)]
pub fn distance_bound(numa: &NumaInfo, u: NumaMask, k: u32, inn: NumaMask, out: NumaMask) -> u64 {
    let mut to_inn = [0u64; 64];
    for a in u.ids() {
        to_inn[a as usize] = numa.distance(a, a)
            + inn
                .ids()
                .map(|j| numa.distance(a, j) + numa.distance(j, a))
                .sum::<u64>();
    }
    bound_from(numa, u, k, inn, out, distance_sum(numa, inn), &to_inn)
}

/// The bound of [`distance_bound`] from `have`, the distance sum of `inn`, and
/// `to_inn[a]`, node `a`'s self distance plus its distances to and from `inn`.
fn bound_from(
    numa: &NumaInfo,
    u: NumaMask,
    k: u32,
    inn: NumaMask,
    out: NumaMask,
    have: u64,
    to_inn: &[u64; 64],
) -> u64 {
    let add = k.saturating_sub(inn.count()) as usize;
    if add == 0 {
        return have;
    }
    let cands = NumaMask(u.0 & !inn.0 & !out.0);
    if (cands.count() as usize) < add {
        return u64::MAX;
    }
    /// Row entries read per candidate before the rest is counted at the last distance.
    const SCAN: usize = 24;
    // The `add` smallest per-node amounts so far, ascending. A candidate whose partial
    // amount already reaches the largest of them cannot change their sum: it is
    // skipped before its row is scanned.
    let mut least = [0u64; 64];
    let mut len = 0usize;
    for a in cands.ids() {
        let mut v = to_inn[a as usize];
        if len == add && v >= least[add - 1] {
            continue;
        }
        let mut need = add - 1;
        let mut last = 0;
        let full = len == add;
        let mut dropped = false;
        for &(b, d) in numa.nearest(a).iter().take(SCAN) {
            if need == 0 {
                break;
            }
            last = d;
            if cands.is_set(b) {
                v += last;
                need -= 1;
            }
            // The row is sorted: every amount still to come is at least `last`, so the
            // candidate's final amount is at least this; once that reaches the largest
            // of the smallest amounts kept, the candidate cannot enter them.
            if full && v.saturating_add(need as u64 * last) >= least[add - 1] {
                dropped = true;
                break;
            }
        }
        if dropped {
            continue;
        }
        v += need as u64 * last;
        if len == add && v >= least[add - 1] {
            continue;
        }
        // insert, keeping the `add` smallest
        let mut i = len.min(add - 1);
        if len < add {
            len += 1;
        }
        while i > 0 && least[i - 1] > v {
            least[i] = least[i - 1];
            i -= 1;
        }
        least[i] = v;
    }
    have + least[..add].iter().sum::<u64>()
}

/// [`bound_from`] as first written (every candidate's row scanned in full): the oracle
/// its early exits are tested against.
#[cfg(test)]
fn bound_from_reference(
    numa: &NumaInfo,
    u: NumaMask,
    k: u32,
    inn: NumaMask,
    out: NumaMask,
    have: u64,
    to_inn: &[u64; 64],
) -> u64 {
    let add = k.saturating_sub(inn.count()) as usize;
    if add == 0 {
        return have;
    }
    let cands = NumaMask(u.0 & !inn.0 & !out.0);
    if (cands.count() as usize) < add {
        return u64::MAX;
    }
    /// Row entries read per candidate before the rest is counted at the last distance.
    const SCAN: usize = 24;
    // The `add` smallest per-node amounts so far, ascending. A candidate whose partial
    // amount already reaches the largest of them cannot change their sum: it is
    // skipped before its row is scanned.
    let mut least = [0u64; 64];
    let mut len = 0usize;
    for a in cands.ids() {
        let mut v = to_inn[a as usize];
        if len == add && v >= least[add - 1] {
            continue;
        }
        let mut need = add - 1;
        let mut last = 0;
        for &(b, _) in numa.nearest(a).iter().take(SCAN) {
            if need == 0 {
                break;
            }
            last = numa.distance(a, b);
            if cands.is_set(b) {
                v += last;
                need -= 1;
            }
        }
        v += need as u64 * last;
        if len == add && v >= least[add - 1] {
            continue;
        }
        // insert, keeping the `add` smallest
        let mut i = len.min(add - 1);
        if len < add {
            len += 1;
        }
        while i > 0 && least[i - 1] > v {
            least[i] = least[i - 1];
            i -= 1;
        }
        least[i] = v;
    }
    have + least[..add].iter().sum::<u64>()
}

/// [`distance_bound`] for the partial masks of one walk (`u` and `k` fixed), keeping
/// the sums over `inn` on a stack: a walk takes nodes in one at a time and backtracks,
/// so each question mostly adds one node to the `inn` of an earlier one, and the sums
/// of a node to `inn` grow by its two distances to the new node instead of being read
/// again over all of `inn`.
pub struct DistanceBounds<'a> {
    numa: &'a NumaInfo,
    u: NumaMask,
    k: u32,
    /// The nodes whose sums are kept: `u` and the machine's nodes.
    nodes: NumaMask,
    /// `(inn, distance_sum(inn), to_inn)`, each `inn` one node more than the previous.
    stack: Vec<(NumaMask, u64, [u64; 64])>,
}

impl<'a> DistanceBounds<'a> {
    pub fn new(numa: &'a NumaInfo, u: NumaMask, k: u32) -> DistanceBounds<'a> {
        let nodes = u.or(numa.all);
        let mut to_inn = [0u64; 64];
        for a in nodes.ids() {
            to_inn[a as usize] = numa.distance(a, a);
        }
        DistanceBounds {
            numa,
            u,
            k,
            nodes,
            stack: vec![(NumaMask::EMPTY, 0, to_inn)],
        }
    }

    /// [`distance_bound`]`(numa, u, k, inn, out)`, for `inn` within the machine's
    /// nodes and `u`.
    pub fn bound(&mut self, inn: NumaMask, out: NumaMask) -> u64 {
        // the bottom entry (no node) is a subset of every `inn`
        while !self.stack.last().is_some_and(|t| t.0.is_subset_of(inn)) {
            self.stack.pop();
        }
        let mut top = self.stack.len() - 1;
        let missing = NumaMask(inn.0 & !self.stack[top].0 .0);
        for x in missing.ids() {
            let (prev, have, row) = &self.stack[top];
            let (prev, have) = (*prev, *have);
            let mut next = *row;
            for a in self.nodes.ids() {
                next[a as usize] += self.numa.distance(a, x) + self.numa.distance(x, a);
            }
            // the pairs of `prev ∪ {x}`: those of `prev`, plus (x, x) and x to and
            // from `prev`, which is `row[x]`
            let have = have + row[x as usize];
            self.stack.push((prev.or(NumaMask::single(x)), have, next));
            top += 1;
        }
        let (_, have, row) = &self.stack[top];
        bound_from(self.numa, self.u, self.k, inn, out, *have, row)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn walk_is_numeric_order_and_pruned() {
        let u = NumaMask(0b1101_1011);
        // keep: sets avoiding node 3 and holding at most one of {0, 1}
        let keep = |m: NumaMask| !m.is_set(3) && (m.0 & 0b11).count_ones() <= 1;
        for k in 1..=7 {
            let mut plain = vec![];
            for m in 0..256u64 {
                let m = NumaMask(m);
                if m.count() == k && m.is_subset_of(u) && keep(m) {
                    plain.push(m.0);
                }
            }
            let mut walked = vec![];
            walk(u, k, &mut |inn, _| keep(inn), &mut |m| {
                walked.push(m.0);
                true
            });
            assert_eq!(plain, walked, "k = {k}");
        }
        let mut n = 0;
        walk(NumaMask(u64::MAX), 64, &mut |_, _| true, &mut |_| {
            n += 1;
            true
        });
        assert_eq!(n, 1);
    }

    #[test]
    fn distance_bound_is_a_lower_bound() {
        // deliberately not symmetric: sysfs distance tables need not be
        let d: Vec<Vec<u64>> = (0..6)
            .map(|i: u64| {
                (0..6)
                    .map(|j: u64| if i == j { 10 } else { 11 + (i * 3 + j) % 9 })
                    .collect()
            })
            .collect();
        let numa = NumaInfo::from_matrix(d);
        let u = NumaMask(0b11_1111);
        for (inn, out) in (0..64u64).flat_map(|i| [0u64, 0b10_0000, 0b00_0110].map(|o| (i, o))) {
            if inn & out != 0 {
                continue;
            }
            for k in 0..=6 {
                let b = distance_bound(&numa, u, k, NumaMask(inn), NumaMask(out));
                for m in 0..64u64 {
                    if m & inn == inn && m & out == 0 && m.count_ones() == k {
                        assert!(b <= distance_sum(&numa, NumaMask(m)), "{inn:b} {m:b}");
                    }
                }
            }
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(1500))]
        /// The bound's early exits (a candidate dropped once the rest of its sorted row
        /// cannot bring it under the kept amounts) leave every value as the full scan's,
        /// on machines past the scan's cut-off, with asymmetric and huge distances.
        #[test]
        fn early_exits_keep_the_bound(
            n in 2usize..40,
            seed in proptest::prelude::any::<u64>(),
            huge in proptest::prelude::any::<bool>(),
            k in 1u32..12,
        ) {
            let mut x = seed | 1;
            let mut next = move || { x ^= x << 13; x ^= x >> 7; x ^= x << 17; x };
            let d: Vec<Vec<u64>> = (0..n)
                .map(|i| (0..n).map(|j| {
                    let r = next();
                    if i == j { 10 } else if huge && r % 5 == 0 { u32::MAX as u64 - r % 7 } else { 11 + r % 40 }
                }).collect())
                .collect();
            let numa = NumaInfo::from_matrix(d);
            let all = numa.all.0;
            let u = NumaMask(next() & all | 1);
            let inn = NumaMask(next() & next() & u.0);
            let out = NumaMask(next() & next() & all & !inn.0);
            let mut to_inn = [0u64; 64];
            for a in u.ids() {
                to_inn[a as usize] = numa.distance(a, a)
                    + inn.ids().map(|j| numa.distance(a, j) + numa.distance(j, a)).sum::<u64>();
            }
            let have = distance_sum(&numa, inn);
            let k = k.max(inn.count());
            proptest::prop_assert_eq!(
                bound_from(&numa, u, k, inn, out, have, &to_inn),
                bound_from_reference(&numa, u, k, inn, out, have, &to_inn)
            );
        }
    }

    #[test]
    fn incremental_bounds_equal_the_direct_ones() {
        // a walk's questions, in its order, and then questions in random order
        let d: Vec<Vec<u64>> = (0..9)
            .map(|i: u64| {
                (0..9)
                    .map(|j: u64| {
                        if i == j {
                            10
                        } else {
                            12 + (i * 7 + j * 3) % 11
                        }
                    })
                    .collect()
            })
            .collect();
        let numa = NumaInfo::from_matrix(d);
        let u = NumaMask(0b1_1011_0111);
        for k in 1..=6 {
            let mut inc = DistanceBounds::new(&numa, u, k);
            let mut asked = 0;
            walk(
                u,
                k,
                &mut |inn, out| {
                    asked += 1;
                    assert_eq!(
                        inc.bound(inn, out),
                        distance_bound(&numa, u, k, inn, out),
                        "k {k} inn {inn:?} out {out:?}"
                    );
                    true
                },
                &mut |_| true,
            );
            assert!(asked > 0);
            let mut x = 0x9e37_79b9_7f4a_7c15u64;
            for _ in 0..500 {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let inn = NumaMask(x & u.0 & 0x1f3);
                let out = NumaMask((x >> 20) & u.0 & !inn.0);
                assert_eq!(inc.bound(inn, out), distance_bound(&numa, u, k, inn, out));
            }
        }
    }
}
