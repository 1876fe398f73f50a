//! takeByTopologyNUMADistributed (`distribute-cpus-across-numa`, KEP-2902), with Go's
//! slice aliasing in its combination enumerator.

use super::acc::Acc;
use super::index::{Ctx, NUMA};
use super::{not_enough, packed};

/// Go's `math.Round(x*1000)/1000` (half away from zero, like `f64::round`).
pub(super) fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// Population standard deviation with the kubelet's rounding of mean and result.
pub(super) fn balance(values: impl Iterator<Item = i64> + Clone) -> f64 {
    let len = values.clone().count() as f64;
    let mean = round3(values.clone().map(|v| v as f64).sum::<f64>() / len);
    let sq: f64 = values.map(|v| (v as f64 - mean) * (v as f64 - mean)).sum();
    round3((sq / len).sqrt())
}

/// A Go slice header over a [`GoSlices`] backing array (offset always 0).
#[derive(Debug, Clone, Copy)]
pub(super) struct GoSlice {
    arr: usize,
    len: usize,
}

/// Backing arrays of Go `[]int` slices, to reproduce `iterateCombinations` exactly: it builds
/// each combination with `append(accum, n[i])`, so from depth 4 on (a length-3 slice has
/// capacity 4) sibling combinations are written **in place** into one shared array. A
/// combination saved by the caller (`bestCombo = combo`, `bestLocalRemainder = subset`) thus
/// reads back as the last sibling written into that array, not as the one that was scored.
/// The vectors' lengths are the Go capacities (growth 0 → 1 → 2 → 4 → 8 …, Go's doubling
/// for small slices; NUMA counts never reach the 256-element regime).
pub(super) struct GoSlices {
    arrs: Vec<Vec<u32>>,
}

impl GoSlices {
    pub(super) fn new() -> GoSlices {
        // Array 0: the `[]int{}` the enumeration starts from (capacity 0).
        GoSlices {
            arrs: vec![Vec::new()],
        }
    }

    pub(super) fn append(&mut self, s: GoSlice, x: u32) -> GoSlice {
        let cap = self.arrs[s.arr].len();
        if s.len < cap {
            self.arrs[s.arr][s.len] = x;
            return GoSlice {
                arr: s.arr,
                len: s.len + 1,
            };
        }
        let mut grown = vec![0; if cap == 0 { 1 } else { cap * 2 }];
        grown[..s.len].copy_from_slice(&self.arrs[s.arr][..s.len]);
        grown[s.len] = x;
        self.arrs.push(grown);
        GoSlice {
            arr: self.arrs.len() - 1,
            len: s.len + 1,
        }
    }

    pub(super) fn view(&self, s: GoSlice) -> &[u32] {
        &self.arrs[s.arr][..s.len]
    }
}

/// `iterateCombinations(n, k, f)`: every k-subset of `n` in lexicographic order of
/// positions; `f` returns `true` to break. Returns the backing arrays so that slices kept by
/// `f` can be read afterwards (with Go's aliasing).
pub(super) fn go_combinations(
    n: &[u32],
    k: usize,
    f: &mut dyn FnMut(&GoSlices, GoSlice) -> bool,
) -> GoSlices {
    pub(super) fn helper(
        arena: &mut GoSlices,
        n: &[u32],
        k: usize,
        start: usize,
        accum: GoSlice,
        f: &mut dyn FnMut(&GoSlices, GoSlice) -> bool,
    ) -> bool {
        if k == 0 {
            return f(arena, accum);
        }
        let mut i = start;
        while i + k <= n.len() {
            let next = arena.append(accum, n[i]);
            if helper(arena, n, k - 1, i + 1, next, f) {
                return true;
            }
            i += 1;
        }
        false
    }
    let mut arena = GoSlices::new();
    if k >= 1 {
        helper(&mut arena, n, k, 0, GoSlice { arr: 0, len: 0 }, f);
    }
    arena
}

/// Hands out `r` CPUs in groups of `g` round-robin over `subset` (nodes with fewer than `g`
/// left are skipped). `None` where Go would loop forever (a round without progress).
pub(super) fn hand_out(after: &mut [i64], subset: &[u32], mut r: i64, g: i64) -> Option<()> {
    while r > 0 {
        let mut progress = false;
        for &x in subset {
            if r == 0 {
                break;
            }
            if after[x as usize] < g {
                continue;
            }
            after[x as usize] -= g;
            r -= g;
            progress = true;
        }
        if !progress {
            return None;
        }
    }
    Some(())
}

/// takeByTopologyNUMADistributed (§CPU-assignment.8).
pub(super) fn distributed(
    cx: &Ctx,
    cand: &[u32],
    available_len: usize,
    n: usize,
    group: usize,
    spread: bool,
) -> Result<Vec<u32>, String> {
    let group = group.max(1);
    if !n.is_multiple_of(group) {
        return packed(cx, cand, available_len, n, spread, false);
    }
    let mut acc = Acc::new(cx, cand, n);
    if acc.is_satisfied() {
        return Ok(Vec::new());
    }
    if acc.is_failed() {
        return Err(not_enough(n, available_len));
    }

    let numas = acc.numa_order();
    // The NUMA nodes whose free counts enter the balance score (distinct, ascending).
    let mut scored: Vec<u32> = numas.clone();
    scored.sort_unstable();
    scored.dedup();
    let (min_k, max_k) = acc.numa_range(group);
    let (n_i, g_i) = (n as i64, group as i64);

    for k in min_k..=max_k {
        let mut best = f64::MAX;
        let mut best_combo: Option<GoSlice> = None;
        let mut best_remainder: Vec<u32> = Vec::new();
        let arena = {
            let acc = &acc;
            let free = |x: u32| acc.ufree(NUMA, x) as i64;
            let mut seen = vec![false; cx.units(NUMA)];
            go_combinations(&numas, k, &mut |arena, handle| {
                if best == 0.0 {
                    return true;
                }
                let combo = arena.view(handle);
                // Enough candidate CPUs in the union of the combination?
                let mut total = 0;
                for &x in combo {
                    if !std::mem::replace(&mut seen[x as usize], true) {
                        total += free(x);
                    }
                }
                for &x in combo {
                    seen[x as usize] = false;
                }
                if total < n_i {
                    return false;
                }
                // Enough whole groups?
                let groups: i64 = combo.iter().map(|&x| free(x) / g_i).sum();
                if groups * g_i < n_i {
                    return false;
                }
                // The even share must fit every node.
                let dist = (n_i / combo.len() as i64 / g_i) * g_i;
                if combo.iter().any(|&x| free(x) < dist) {
                    return false;
                }
                let mut after: Vec<i64> = (0..cx.units(NUMA) as u32).map(free).collect();
                for &x in combo {
                    after[x as usize] -= dist;
                }
                let remainder = n_i - dist * combo.len() as i64;
                let candidates: Vec<u32> = combo
                    .iter()
                    .copied()
                    .filter(|&x| after[x as usize] >= g_i)
                    .collect();

                let mut best_local = f64::MAX;
                let mut best_local_remainder: Vec<u32> = Vec::new();
                if remainder == 0 {
                    best_local = balance(scored.iter().map(|&x| after[x as usize]));
                }
                let mut j = candidates.len();
                while remainder > 0 && j >= 1 {
                    let mut kept: Option<GoSlice> = None;
                    let sub_arena = go_combinations(&candidates, j, &mut |ar, sub_handle| {
                        let subset = ar.view(sub_handle);
                        let mut a = after.clone();
                        if subset.iter().map(|&x| a[x as usize]).sum::<i64>() < remainder {
                            return false;
                        }
                        if hand_out(&mut a, subset, remainder, g_i).is_none() {
                            return false;
                        }
                        let score = balance(scored.iter().map(|&x| a[x as usize]));
                        if score < best_local {
                            best_local = score;
                            kept = Some(sub_handle);
                        }
                        false
                    });
                    if let Some(h) = kept {
                        best_local_remainder = sub_arena.view(h).to_vec();
                    }
                    j -= 1;
                }
                if best_local < best {
                    best = best_local;
                    best_remainder = best_local_remainder;
                    best_combo = Some(handle);
                }
                false
            })
        };
        let Some(handle) = best_combo else {
            continue;
        };
        let combo = arena.view(handle).to_vec();

        // Even share from every node of the combination, then the remainder in groups.
        let dist = ((n / combo.len()) / group) * group;
        let mut cands = Vec::new();
        for &x in &combo {
            cands.clear();
            acc.free_in(NUMA, x, &mut cands);
            let got = packed(cx, &cands, cands.len(), dist, spread, false).unwrap_or_default();
            acc.take(&got);
        }
        let mut remainder = n as i64 - (dist * combo.len()) as i64;
        while remainder > 0 {
            let mut progress = false;
            for &x in &best_remainder {
                if remainder == 0 {
                    break;
                }
                if (acc.ufree(NUMA, x) as i64) < g_i {
                    continue;
                }
                cands.clear();
                acc.free_in(NUMA, x, &mut cands);
                let got = packed(cx, &cands, cands.len(), group, spread, false).unwrap_or_default();
                acc.take(&got);
                remainder -= g_i;
                progress = true;
            }
            if !progress {
                // Go would spin here forever; report what is missing instead.
                break;
            }
        }
        if acc.needed > 0 {
            return Err(format!(
                "accounting error, not enough CPUs allocated, remaining: {}",
                acc.needed
            ));
        }
        if acc.needed < 0 {
            return Err(format!(
                "accounting error, too many CPUs allocated, remaining: {}",
                acc.needed
            ));
        }
        return Ok(acc.result);
    }

    packed(cx, cand, available_len, n, spread, false)
}
