//! The static policy's hint list as a [`HintFamily`], for machines too large to list
//! every NUMA mask. Membership follows `calculateHints` rule by rule, its sums included:
//! they are Go `uint64` sums and wrap (a node whose hugepages and reservation exceed its
//! memory has an allocatable just below 2^64), so no search here assumes that members
//! stay members when nodes are added; they use [`Sums`], exact under the wrap.

use super::policy_static::{Requests, StaticPolicy};
use crate::bitmask::NumaMask;
use crate::topology::covering::{AndBound, Capacity};
use crate::topology::family::{HintFamily, SizeSet};
use crate::topology::hint::TopologyHint;
use crate::topology::sums::Sums;
use std::cell::OnceCell;

#[derive(Debug, Clone)]
pub struct MemoryHintFamily {
    /// What the family was built from (the per-node tables, the request, groups and
    /// reusable memory).
    i: FamilyInputs,
    /// Nodes with no assignments: free to join a new group.
    zero: NumaMask,
    /// The members among singles, existing groups and reusable masks (fixed for the
    /// family, so found once).
    listed_members: Vec<NumaMask>,
    /// The sums a new group of unassigned nodes must reach: per node id, allocatable
    /// per resource, then free for the resources where some unassigned node's free
    /// differs from its allocatable, each against the request. Allocatable only when a
    /// reusable mask lies among the unassigned nodes (its free sum gets the reusable
    /// bytes added, so free sums alone are no bound for new groups). Built on first use
    /// (see [`Self::group`]): most admissions never ask about new groups.
    group: OnceCell<Sums>,
    /// Whether a reusable mask lies among the unassigned nodes (see `group`).
    reusable_in_zero: bool,
    min_affinity: u32,
    /// The smallest member's size: only a non-preferred merge ranks by it (and the
    /// default hint's search starts there), so it is found on first use.
    min_size: OnceCell<Option<u32>>,
    /// Some new group of unassigned nodes, if there is one (found on first use).
    any_group: OnceCell<Option<NumaMask>>,
}

/// Go's `uint64` sum of resource `r` over the nodes of `m`, from a flat per-node table
/// with `stride` resources per node.
fn sum(v: &[u64], stride: usize, m: NumaMask, r: usize) -> u64 {
    m.ids()
        .map(|n| v.get(n as usize * stride + r).copied().unwrap_or(0))
        .fold(0u64, u64::wrapping_add)
}

/// What a family is built from: the request and, read from the policy's books, the
/// per-node tables, groups and this pod's reusable memory. Two families built from equal
/// inputs are equal, so what is known of a family holds while its inputs still read the
/// same (the policy keeps the inputs of a family without members, see `no_member`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FamilyInputs {
    universe: NumaMask,
    /// Per resource (request order): requested bytes.
    req: Vec<u64>,
    /// Per node id and resource (`id * resources + r`): allocatable and free.
    alloc: Vec<u64>,
    free: Vec<u64>,
    assigned: NumaMask,
    cells: Vec<NumaMask>,
    cells_len: Vec<usize>,
    /// Masks holding this pod's reusable init-container memory, per resource.
    reusable: Vec<(NumaMask, Vec<u64>)>,
    /// Existing groups of several nodes.
    groups: Vec<NumaMask>,
    /// Rows of the per-node tables (highest node id + 1).
    rows: usize,
}

impl FamilyInputs {
    pub fn read(p: &StaticPolicy, pod_uid: &str, req: &Requests) -> FamilyInputs {
        // From the flat mirror of the books: a column per requested resource, copied.
        let f = p.flat();
        let stride = req.len();
        let max = f.rows;
        let columns: Vec<Option<usize>> = req.keys().map(|n| f.column(n)).collect();
        let mut alloc = vec![0u64; max * stride];
        let mut free = vec![0u64; max * stride];
        let fs = f.names.len();
        for id in f.universe.ids() {
            let i = id as usize;
            for (r, c) in columns.iter().enumerate() {
                if let Some(c) = *c {
                    alloc[i * stride + r] = f.alloc[i * fs + c];
                    free[i * stride + r] = f.free[i * fs + c];
                }
            }
        }
        let mut groups: Vec<NumaMask> = Vec::new();
        for id in f.assigned.ids() {
            let i = id as usize;
            if f.cells_len[i] > 1 && !groups.contains(&f.cells[i]) {
                groups.push(f.cells[i]);
            }
        }
        let reusable: Vec<(NumaMask, Vec<u64>)> = p
            .reusable_masks(pod_uid)
            .into_iter()
            .map(|(m, per)| {
                (
                    m,
                    req.keys()
                        .map(|n| per.get(n).copied().unwrap_or(0))
                        .collect(),
                )
            })
            .collect();
        FamilyInputs {
            universe: f.universe,
            req: req.values().copied().collect(),
            alloc,
            free,
            assigned: f.assigned,
            cells: f.cells.clone(),
            cells_len: f.cells_len.clone(),
            reusable,
            groups,
            rows: max,
        }
    }
}

impl MemoryHintFamily {
    pub fn new(p: &StaticPolicy, pod_uid: &str, req: &Requests) -> MemoryHintFamily {
        MemoryHintFamily::from_inputs(FamilyInputs::read(p, pod_uid, req))
    }

    /// The inputs this family was built from, back (the family is dropped).
    pub fn into_inputs(self) -> FamilyInputs {
        self.i
    }

    pub fn from_inputs(inputs: FamilyInputs) -> MemoryHintFamily {
        let FamilyInputs {
            universe,
            ref req,
            ref alloc,
            assigned,
            ref reusable,
            rows: max,
            ..
        } = inputs;
        let stride = req.len();
        let zero = NumaMask(universe.0 & !assigned.0);
        let reusable_in_zero = reusable.iter().any(|(m, _)| m.is_subset_of(zero));
        // minAffinitySize: the fewest nodes of any mask whose allocatable sums (wrapping)
        // reach the request, every node counted (groups and assignments play no part).
        // One node reaching it alone makes it 1 (no search).
        let single_fits = universe
            .ids()
            .any(|n| (0..stride).all(|d| alloc[n as usize * stride + d] >= req[d]));
        let mut alloc_sums = None;
        let min_affinity = if single_fits {
            1
        } else {
            let sums = Sums::from_fn(max, req.clone(), |i, d| alloc[i * stride + d]);
            let leaf = |m: NumaMask| sums.satisfied(m);
            let least = sums.least_count(universe).max(1);
            let k = if least <= universe.count() && sums.greedy(universe, least, &leaf).is_some() {
                least
            } else {
                (least..=universe.count())
                    .find(|&k| sums.exists(NumaMask::EMPTY, universe, Some(k), 0, &leaf))
                    .unwrap_or(universe.count())
            };
            alloc_sums = Some(sums);
            k
        };
        let mut f = MemoryHintFamily {
            i: inputs,
            zero,
            listed_members: Vec::new(),
            group: OnceCell::new(),
            reusable_in_zero,
            min_affinity,
            min_size: OnceCell::new(),
            any_group: OnceCell::new(),
        };
        // The new-group sums are often these very allocatable sums (see `group_columns`):
        // then they are not built twice.
        if let Some(sums) = alloc_sums {
            if f.group_columns().iter().all(|&(is_free, _)| !is_free) {
                let _ = f.group.set(sums);
            }
        }
        let mut members: Vec<NumaMask> = f.listed().filter(|&m| f.get(m).is_some()).collect();
        members.sort_unstable();
        members.dedup();
        f.listed_members = members;
        f
    }

    /// Whether the list has any member (an empty list is "no preference" to the
    /// Topology Manager): one search at most, where the smallest size takes one per size.
    pub fn has_member(&self) -> bool {
        !self.listed_members.is_empty() || self.any_group().is_some()
    }

    fn any_group(&self) -> Option<NumaMask> {
        *self
            .any_group
            .get_or_init(|| self.group_member(NumaMask::EMPTY, self.zero, None))
    }

    /// The sums a new group must reach (the `group` field), built once on first use.
    fn group(&self) -> &Sums {
        self.group.get_or_init(|| {
            let (alloc, free, stride) = (&self.i.alloc, &self.i.free, self.i.req.len());
            let req = &self.i.req;
            let cols = self.group_columns();
            let need = cols.iter().map(|&(_, d)| req[d]).collect();
            Sums::from_fn(self.i.rows, need, |i, c| {
                let (is_free, d) = cols[c];
                if is_free {
                    free[i * stride + d]
                } else {
                    alloc[i * stride + d]
                }
            })
        })
    }

    /// The columns of the new-group sums, `(is_free, resource)`: every resource's
    /// allocatable, then the free of the resources where it can bound more. A
    /// resource's free sums bound new groups only where they differ from its allocatable
    /// sums on some unassigned node: new groups lie among those nodes, so an equal column
    /// would only repeat the same test (on a valid state a node without assignments has
    /// all of its allocatable free, and every dimension costs the searches time). None
    /// when a reusable mask lies among the unassigned nodes (its free sum gets the
    /// reusable bytes added, so free sums alone are no bound for new groups).
    fn group_columns(&self) -> Vec<(bool, usize)> {
        let (alloc, free, stride) = (&self.i.alloc, &self.i.free, self.i.req.len());
        let differs = |d: usize| {
            !self.reusable_in_zero
                && self
                    .zero
                    .ids()
                    .any(|n| alloc[n as usize * stride + d] != free[n as usize * stride + d])
        };
        (0..stride)
            .map(|d| (false, d))
            .chain((0..stride).filter(|&d| differs(d)).map(|d| (true, d)))
            .collect()
    }

    fn reusable_for(&self, m: NumaMask, r: usize) -> u64 {
        self.i
            .reusable
            .iter()
            .filter(|(rm, _)| *rm == m)
            .map(|(_, v)| v[r])
            .next()
            .unwrap_or(0)
    }

    /// A new group of at least two unassigned nodes, `inn ⊆ m ⊆ pool`, with `size`
    /// nodes if given, that is a member.
    fn group_member(&self, inn: NumaMask, pool: NumaMask, size: Option<u32>) -> Option<NumaMask> {
        if !inn.is_subset_of(self.zero) {
            return None;
        }
        let leaf = |m: NumaMask| m.count() >= 2 && self.get(m).is_some();
        self.group().find(inn, pool.and(self.zero), size, 2, &leaf)
    }

    fn group_exists(&self, inn: NumaMask, pool: NumaMask, size: Option<u32>) -> bool {
        self.group_member(inn, pool, size).is_some()
    }

    /// Singles, existing groups and masks with reusable memory: the members that are
    /// not new groups of unassigned nodes.
    fn listed(&self) -> impl Iterator<Item = NumaMask> + '_ {
        self.i
            .universe
            .ids()
            .map(NumaMask::single)
            .chain(self.i.groups.iter().copied())
            .chain(self.i.reusable.iter().map(|(m, _)| *m))
    }

    fn compute_min_size(&self) -> Option<u32> {
        let listed = self.listed_members.iter().map(|m| m.count()).min();
        if listed == Some(1) {
            return Some(1);
        }
        // One search for any new group gives an upper bound, so only the sizes between
        // the sums' lower bound and it are asked one by one (asking every size from 2,
        // each failing size an exhaustive search, was half of some 64-node admissions).
        let Some(some) = self.any_group() else {
            return listed;
        };
        let upper = some.count();
        let limit = listed.map_or(upper, |l| l.min(upper));
        let from = self.group().least_count(self.zero).max(2);
        let leaf = |m: NumaMask| m.count() >= 2 && self.get(m).is_some();
        let group = if from < limit && self.group().greedy(self.zero, from, &leaf).is_some() {
            Some(from)
        } else {
            (from..limit)
                .find(|&k| self.group_exists(NumaMask::EMPTY, self.zero, Some(k)))
                .or(Some(upper))
        };
        match (listed, group) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// `findBestHint` over the members that contain `base`: preferred first, then the
    /// narrowest. `None` when no member contains it.
    pub fn best_member(&self, base: NumaMask) -> Option<TopologyHint> {
        let first_of_size = |s: u32| self.smallest_member(base, s);
        if let Some(m) = first_of_size(self.min_affinity) {
            return Some(TopologyHint::new(m, true));
        }
        let from = base.count().max(self.min_size().unwrap_or(1));
        (from..=self.i.universe.count())
            .find_map(first_of_size)
            .map(|m| TopologyHint::new(m, m.count() == self.min_affinity))
    }
}

impl HintFamily for MemoryHintFamily {
    fn get(&self, m: NumaMask) -> Option<bool> {
        if m.is_empty() || !m.is_subset_of(self.i.universe) {
            return None;
        }
        for (r, &want) in self.i.req.iter().enumerate() {
            if sum(&self.i.alloc, self.i.req.len(), m, r) < want {
                return None;
            }
        }
        if m.count() == 1 {
            let n = m.ids().next().expect("one node") as usize;
            if self.i.cells_len[n] > 1 {
                return None;
            }
        } else {
            for n in m.and(self.i.assigned).ids() {
                let n = n as usize;
                if self.i.cells_len[n] == 1
                    || self.i.cells[n] != m
                    || self.i.cells_len[n] != m.count() as usize
                {
                    return None;
                }
            }
        }
        for (r, &want) in self.i.req.iter().enumerate() {
            if sum(&self.i.free, self.i.req.len(), m, r).wrapping_add(self.reusable_for(m, r))
                < want
            {
                return None;
            }
        }
        Some(m.count() == self.min_affinity)
    }

    fn universe(&self) -> NumaMask {
        self.i.universe
    }

    fn preferred_sizes(&self) -> SizeSet {
        SizeSet::single(self.min_affinity)
    }

    fn min_size(&self) -> Option<u32> {
        *self.min_size.get_or_init(|| self.compute_min_size())
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
        if !inn.is_subset_of(self.i.universe) || !inn.and(out).is_empty() {
            return (false, None);
        }
        let fits = |m: &&NumaMask| {
            inn.is_subset_of(**m) && m.and(out).is_empty() && size.is_none_or(|k| m.count() == k)
        };
        let member = self.listed_members.iter().find(fits).copied().or_else(|| {
            size.is_none_or(|k| k >= 2)
                .then(|| self.group_member(inn, NumaMask(self.zero.0 & !out.0), size))
                .flatten()
        });
        (member.is_some(), member)
    }

    /// Members of two or more nodes are existing groups (every assigned node of a member
    /// has it as its cells) or lie among the unassigned nodes; singles and reusable masks
    /// are listed.
    fn span(&self, inn: NumaMask) -> NumaMask {
        let listed = self
            .listed_members
            .iter()
            .filter(|&&m| inn.is_subset_of(m))
            .fold(NumaMask::EMPTY, |u, &m| u.or(m));
        if inn.is_subset_of(self.zero) {
            listed.or(self.zero)
        } else {
            listed
        }
    }

    /// Listed members that fit, and the new groups' nodes by the largest completion of
    /// their sums.
    fn sized_span(&self, inn: NumaMask, out: NumaMask, size: u32) -> NumaMask {
        let listed = self
            .listed_members
            .iter()
            .filter(|&&m| inn.is_subset_of(m) && m.and(out).is_empty() && m.count() == size)
            .fold(NumaMask::EMPTY, |u, &m| u.or(m));
        if size >= 2 && inn.is_subset_of(self.zero) && inn.and(out).is_empty() {
            listed.or(self
                .group()
                .sized_span(inn, NumaMask(self.zero.0 & !out.0), size))
        } else {
            listed
        }
    }

    /// Members containing `inn` other than listed ones are new groups of unassigned
    /// nodes, whose sums reach the request in every dimension of `group`.
    fn capacity(&self, inn: NumaMask) -> Option<Capacity> {
        if !inn.is_subset_of(self.zero) || self.listed_members.iter().any(|m| inn.is_subset_of(*m))
        {
            return None;
        }
        self.group().capacity(inn, self.zero)
    }

    /// New groups lie among the unassigned nodes; listed members are not bounded.
    fn and_bound(&self, copies: u32, alone: NumaMask) -> Option<AndBound> {
        self.group()
            .and_bound(self.zero, alone, copies, self.listed_members.clone())
    }

    fn smallest_member(&self, base: NumaMask, k: u32) -> Option<NumaMask> {
        if k < base.count() || k == 0 || !base.is_subset_of(self.i.universe) {
            return None;
        }
        let listed = self
            .listed_members
            .iter()
            .copied()
            .filter(|&m| m.count() == k && base.is_subset_of(m))
            .min();
        let group = (k >= 2 && base.is_subset_of(self.zero))
            .then(|| {
                let leaf = |m: NumaMask| self.get(m).is_some();
                self.group().smallest(base, self.zero, k, &leaf)
            })
            .flatten();
        match (listed, group) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}
