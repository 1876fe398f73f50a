//! The static policy's CPU packing (`cpu_assignment.go`, kubelet v1.32.10): which CPU ids a
//! container (or the reserved set) gets out of a candidate set.
//!
//! Two algorithms sit behind [`take_by_topology`]:
//! - **NUMA-packed** (default): take whole NUMA nodes / sockets (order depends on which is
//!   higher in the hierarchy), optionally whole or exactly-fitting uncore caches, then whole
//!   cores (unless the `spread` order is used), then single CPUs.
//! - **NUMA-distributed** (`distribute-cpus-across-numa`, KEP-2902): spread the request evenly
//!   over the smallest number of NUMA nodes, choosing the combination that leaves the free
//!   CPU counts most balanced, then pack inside each chosen node.
//!
//! Every ordering follows spec §CPU-assignment.6: units are sorted by their number of free
//! (candidate) CPUs ascending, ties by ascending id, and the lists are rebuilt from the
//! current state whenever the kubelet rebuilds them. The kubelet's quirks are kept on purpose
//! (they decide which ids are picked): "fully free" sockets/cores are judged against the
//! machine-wide constants, a whole unit is taken with *all* its CPUs of the topology, and a
//! unit listed twice is taken twice. The distributed algorithm also reproduces Go's slice
//! aliasing in its combination enumerator (see [`GoSlices`]).
//!
//! Implementation: a dense index of the topology (`Ctx`: CPUs and units renumbered, members
//! and parent/child relations as flat CSR arrays), built once per topology ([`CpuPacker`])
//! since the topology never changes between admissions; and an accumulator that keeps free counters per unit
//! and per (parent, child) pair, so every ordered list is a filter + small sort over `Vec`s
//! indexed by dense ids, with no hashing.

use crate::cpumanager::topology::CpuTopology;
use crate::cpuset::CpuSet;
use std::sync::Arc;

/// The static-policy options that change packing (`cpuManagerPolicyOptions`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TakeOptions {
    /// `distribute-cpus-across-numa`: use the NUMA-distributed algorithm.
    pub distribute_cpus_across_numa: bool,
    /// `full-pcpus-only`: with `distribute-cpus-across-numa`, distribute in groups of
    /// CPUsPerCore instead of single CPUs.
    pub full_pcpus_only: bool,
    /// `distribute-cpus-across-cores`: the `spread` CPU order (no whole-core step).
    pub distribute_cpus_across_cores: bool,
    /// `prefer-align-cpus-by-uncorecache`: the uncore-cache step of the packed algorithm.
    pub prefer_align_by_uncore_cache: bool,
}

/// The static policy's takeByTopology dispatcher. Errors are the kubelet's texts, e.g.
/// "not enough cpus available to satisfy request: requested=17, available=16", "failed to allocate cpus",
/// "accounting error, not enough CPUs allocated, remaining: 2".
///
/// `available` may contain ids unknown to `topo` (they are ignored, but counted in the
/// "available=" of the error text, as in Go). Builds the topology's index on every call;
/// callers packing repeatedly against one topology keep a [`CpuPacker`].
pub fn take_by_topology(
    topo: &CpuTopology,
    available: &CpuSet,
    n: usize,
    opts: &TakeOptions,
) -> Result<CpuSet, String> {
    CpuPacker::new(topo).take(available, n, opts)
}

/// takeByTopology against one topology, its dense index built once: the kubelet packs
/// against the same topology on every admission. Cloning shares the index.
#[derive(Clone)]
pub struct CpuPacker {
    cx: Arc<Ctx>,
}

impl std::fmt::Debug for CpuPacker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CpuPacker({} cpus)", self.cx.ids.len())
    }
}

impl CpuPacker {
    pub fn new(topo: &CpuTopology) -> CpuPacker {
        CpuPacker {
            cx: Arc::new(Ctx::new(topo)),
        }
    }

    /// [`take_by_topology`] on the packer's topology.
    pub fn take(&self, available: &CpuSet, n: usize, opts: &TakeOptions) -> Result<CpuSet, String> {
        let cx = &*self.cx;
        let cand = cx.positions(available);
        let spread = opts.distribute_cpus_across_cores;
        let taken = if opts.distribute_cpus_across_numa {
            let group = if opts.full_pcpus_only {
                cx.cpus_per_core
            } else {
                1
            };
            distributed(cx, &cand, available.len(), n, group, spread)?
        } else {
            packed(
                cx,
                &cand,
                available.len(),
                n,
                spread,
                opts.prefer_align_by_uncore_cache,
            )?
        };
        Ok(cx.to_cpuset(&taken))
    }
}

// ---------------------------------------------------------------------------------------
// Dense view of the topology
// ---------------------------------------------------------------------------------------

/// Unit kinds (index into `Ctx::members`).
const CORE: usize = 0;
const SOCKET: usize = 1;
const NUMA: usize = 2;
const UNCORE: usize = 3;

/// Relations (index into `Ctx::rels`), as (parent kind, child kind).
const NUMA_SOCKET: usize = 0;
const SOCKET_CORE: usize = 1;
const NUMA_CORE: usize = 2;
const NUMA_UNCORE: usize = 3;
const UNCORE_CORE: usize = 4;
const RELS: [(usize, usize); 5] = [
    (NUMA, SOCKET),
    (SOCKET, CORE),
    (NUMA, CORE),
    (NUMA, UNCORE),
    (UNCORE, CORE),
];

/// Compressed rows: row `i` is `data[off[i]..off[i + 1]]`.
struct Csr {
    off: Vec<u32>,
    data: Vec<u32>,
}

impl Csr {
    fn row(&self, i: u32) -> &[u32] {
        let i = i as usize;
        &self.data[self.off[i] as usize..self.off[i + 1] as usize]
    }

    fn rows(&self) -> usize {
        self.off.len() - 1
    }

    /// Groups `0..key.len()` by `key` (values `< rows`), ascending within each row.
    fn group(key: &[u32], rows: usize) -> Csr {
        let mut off = vec![0u32; rows + 1];
        for &k in key {
            off[k as usize + 1] += 1;
        }
        for i in 0..rows {
            off[i + 1] += off[i];
        }
        let mut cursor = off.clone();
        let mut data = vec![0u32; key.len()];
        for (i, &k) in key.iter().enumerate() {
            let c = &mut cursor[k as usize];
            data[*c as usize] = i as u32;
            *c += 1;
        }
        Csr { off, data }
    }
}

/// Renumbers `raw` densely in ascending value order; returns (dense values, count).
fn densify(raw: &[u32]) -> (Vec<u32>, usize) {
    let max = raw.iter().copied().max().unwrap_or(0) as usize;
    if max <= 4 * raw.len() + 64 {
        const ABSENT: u32 = u32::MAX;
        let mut table = vec![ABSENT; max + 1];
        for &v in raw {
            table[v as usize] = 0;
        }
        let mut next = 0;
        for t in table.iter_mut().filter(|t| **t != ABSENT) {
            *t = next;
            next += 1;
        }
        (
            raw.iter().map(|&v| table[v as usize]).collect(),
            next as usize,
        )
    } else {
        let mut uniq = raw.to_vec();
        uniq.sort_unstable();
        uniq.dedup();
        let dense = raw
            .iter()
            .map(|v| uniq.binary_search(v).unwrap_or_default() as u32)
            .collect();
        (dense, uniq.len())
    }
}

/// The distinct (a, b) unit pairs that share at least one CPU of the topology, grouped by
/// b (ascending) and, within b, by ascending a.
struct Rel {
    /// CPU position -> pair index.
    pair_of: Vec<u32>,
    pair_a: Vec<u32>,
    pair_b: Vec<u32>,
    /// b -> its pairs (a contiguous, a-ascending range).
    b_off: Vec<u32>,
    /// a -> its pairs, b ascending.
    by_a: Csr,
}

impl Rel {
    fn build(a_of: &[u32], na: usize, b_members: &Csr) -> Rel {
        let nb = b_members.rows();
        let mut pair_of = vec![0u32; a_of.len()];
        let (mut pair_a, mut pair_b) = (Vec::with_capacity(nb), Vec::with_capacity(nb));
        let mut b_off = Vec::with_capacity(nb + 1);
        b_off.push(0);
        let mut local: Vec<u32> = Vec::new();
        for b in 0..nb as u32 {
            let cpus = b_members.row(b);
            local.clear();
            for &p in cpus {
                let a = a_of[p as usize];
                if !local.contains(&a) {
                    local.push(a);
                }
            }
            local.sort_unstable();
            let base = pair_a.len() as u32;
            for &p in cpus {
                let a = a_of[p as usize];
                let i = if local.len() == 1 {
                    0
                } else {
                    local.iter().position(|&x| x == a).unwrap_or_default()
                };
                pair_of[p as usize] = base + i as u32;
            }
            for &a in &local {
                pair_a.push(a);
                pair_b.push(b);
            }
            b_off.push(pair_a.len() as u32);
        }
        let by_a = Csr::group(&pair_a, na);
        Rel {
            pair_of,
            pair_a,
            pair_b,
            b_off,
            by_a,
        }
    }
}

/// The topology with every CPU and unit renumbered densely. CPU positions follow ascending
/// CPU id; unit indices follow ascending unit id, so "ties by id" is "ties by index".
struct Ctx {
    /// Position -> CPU id (ascending).
    ids: Vec<u32>,
    /// Per kind: dense unit index -> its CPU positions in the topology, ascending.
    members: [Csr; 4],
    rels: [Rel; 5],
    /// Offsets of each kind's unit counters, then of each relation's pair counters, in
    /// the accumulator's flat counter array (`counters` long).
    unit_base: [usize; 4],
    pair_base: [usize; 5],
    counters: usize,
    /// Per kind: CPUs of its smallest unit (a whole-unit walk needing fewer takes nothing).
    smallest: [usize; 4],
    /// Per position: the counters its CPU belongs to (its 4 units, then its 5 pairs).
    slots: Vec<[u32; 9]>,
    /// The counters when every CPU of the topology is free.
    all_free: Vec<u32>,
    cpus_per_core: usize,
    cpus_per_socket: usize,
    cpus_per_uncore: usize,
    /// `NumSockets >= NumNUMANodes`: NUMA nodes are the first level.
    numa_first: bool,
}

impl Ctx {
    fn new(topo: &CpuTopology) -> Ctx {
        let n = topo.cpus.len();
        let mut ids = Vec::with_capacity(n);
        let mut raw: [Vec<u32>; 4] = std::array::from_fn(|_| Vec::with_capacity(n));
        for (&id, info) in &topo.cpus {
            ids.push(id);
            raw[CORE].push(info.core);
            raw[SOCKET].push(info.socket);
            raw[NUMA].push(info.numa);
            raw[UNCORE].push(info.uncore);
        }
        let dense = raw.map(|r| densify(&r));
        let members: [Csr; 4] = std::array::from_fn(|k| Csr::group(&dense[k].0, dense[k].1));
        let of = dense.map(|(of, _)| of);
        let rels = RELS.map(|(a, b)| Rel::build(&of[a], members[a].rows(), &members[b]));
        let mut counters = 0;
        let unit_base = std::array::from_fn(|k| {
            counters += members[k].rows();
            counters - members[k].rows()
        });
        let pair_base = std::array::from_fn(|r| {
            counters += rels[r].pair_a.len();
            counters - rels[r].pair_a.len()
        });
        let smallest = std::array::from_fn(|k| {
            let off = &members[k].off;
            off.windows(2)
                .map(|w| (w[1] - w[0]) as usize)
                .min()
                .unwrap_or(0)
        });
        let slots: Vec<[u32; 9]> = (0..n)
            .map(|p| {
                std::array::from_fn(|i| {
                    if i < 4 {
                        (unit_base[i] + of[i][p] as usize) as u32
                    } else {
                        (pair_base[i - 4] + rels[i - 4].pair_of[p] as usize) as u32
                    }
                })
            })
            .collect();
        let mut all_free = vec![0u32; counters];
        for slot in &slots {
            for &c in slot {
                all_free[c as usize] += 1;
            }
        }
        Ctx {
            ids,
            members,
            rels,
            unit_base,
            pair_base,
            counters,
            smallest,
            slots,
            all_free,
            cpus_per_core: topo.cpus_per_core(),
            cpus_per_socket: topo.cpus_per_socket(),
            cpus_per_uncore: topo.cpus_per_uncore(),
            numa_first: topo.num_sockets >= topo.num_numa_nodes,
        }
    }

    /// Positions of the CPUs of `set` that the topology knows (Go's `KeepOnly`), by a
    /// merge walk of the two ascending id sequences.
    fn positions(&self, set: &CpuSet) -> Vec<u32> {
        let mut out = Vec::with_capacity(self.ids.len().min(set.len()));
        let mut p = 0;
        for id in set.iter() {
            while p < self.ids.len() && self.ids[p] < id {
                p += 1;
            }
            if p == self.ids.len() {
                break;
            }
            if self.ids[p] == id {
                out.push(p as u32);
            }
        }
        out
    }

    fn to_cpuset(&self, positions: &[u32]) -> CpuSet {
        CpuSet::from_ids(positions.iter().map(|&p| self.ids[p as usize]))
    }

    fn units(&self, kind: usize) -> usize {
        self.members[kind].rows()
    }
}

// ---------------------------------------------------------------------------------------
// The accumulator
// ---------------------------------------------------------------------------------------

const FREE: u8 = 1;
const TAKEN: u8 = 2;

/// Go's `cpuAccumulator`: `details` (the free CPUs, here a flag per position plus free
/// counters per unit and per pair), `numCPUsNeeded` and `result`.
struct Acc<'c> {
    cx: &'c Ctx,
    /// Per position: FREE (in details) | TAKEN (in result).
    flags: Vec<u8>,
    n_free: usize,
    result: Vec<u32>,
    needed: i64,
    /// Free CPUs per unit (at `unit_base[kind]`) and per pair (at `pair_base[rel]`).
    counts: Vec<u32>,
}

impl<'c> Acc<'c> {
    fn new(cx: &'c Ctx, cand: &[u32], needed: usize) -> Acc<'c> {
        let n = cx.ids.len();
        let mut flags = vec![0u8; n];
        let mut n_free = 0;
        for &p in cand {
            let f = &mut flags[p as usize];
            n_free += usize::from(*f == 0);
            *f = FREE;
        }
        // Count the candidates, or start from "all free" and drop the others.
        let counts = if 2 * n_free >= n {
            let mut counts = cx.all_free.clone();
            for (slot, _) in cx.slots.iter().zip(&flags).filter(|(_, &f)| f == 0) {
                for &c in slot {
                    counts[c as usize] -= 1;
                }
            }
            counts
        } else {
            let mut counts = vec![0u32; cx.counters];
            for (slot, _) in cx.slots.iter().zip(&flags).filter(|(_, &f)| f != 0) {
                for &c in slot {
                    counts[c as usize] += 1;
                }
            }
            counts
        };
        Acc {
            cx,
            flags,
            n_free,
            result: Vec::new(),
            needed: needed as i64,
            counts,
        }
    }

    fn ufree(&self, kind: usize, unit: u32) -> u32 {
        self.counts[self.cx.unit_base[kind] + unit as usize]
    }

    fn pfree(&self, rel: usize, pair: u32) -> u32 {
        self.counts[self.cx.pair_base[rel] + pair as usize]
    }

    fn is_free(&self, p: u32) -> bool {
        self.flags[p as usize] & FREE != 0
    }

    fn is_satisfied(&self) -> bool {
        self.needed < 1
    }

    fn is_failed(&self) -> bool {
        self.needed > self.n_free as i64
    }

    /// Go's `take(S)`: result ∪= S; details −= S; needed −= |S| (even for CPUs already taken
    /// or not free, exactly like Go). `set` must not repeat a position.
    fn take(&mut self, set: &[u32]) {
        let cx = self.cx;
        for &p in set {
            let pi = p as usize;
            if self.flags[pi] & FREE != 0 {
                self.flags[pi] &= !FREE;
                self.n_free -= 1;
                for &c in &cx.slots[pi] {
                    self.counts[c as usize] -= 1;
                }
            }
            if self.flags[pi] & TAKEN == 0 {
                self.flags[pi] |= TAKEN;
                self.result.push(p);
            }
        }
        self.needed -= set.len() as i64;
    }

    /// Sorts `v[start..]` by (free CPUs of the unit, unit id).
    fn sort_tail(&self, kind: usize, v: &mut [u32], start: usize) {
        let free = &self.counts[self.cx.unit_base[kind]..];
        v[start..].sort_unstable_by_key(|&u| (free[u as usize], u));
    }

    /// Units of `kind` with at least one free CPU, sorted.
    fn sorted_present(&self, kind: usize) -> Vec<u32> {
        let mut v: Vec<u32> = (0..self.cx.units(kind) as u32)
            .filter(|&u| self.ufree(kind, u) > 0)
            .collect();
        self.sort_tail(kind, &mut v, 0);
        v
    }

    /// For each parent in `parents` (in order), append its children that share a free CPU
    /// with it, sorted by the children's own free counts. The parent is the relation's `a`
    /// side when `parent_is_a`, else its `b` side.
    fn expand(
        &self,
        parents: &[u32],
        rel: usize,
        parent_is_a: bool,
        child_kind: usize,
    ) -> Vec<u32> {
        let r = &self.cx.rels[rel];
        let mut out = Vec::new();
        for &p in parents {
            let start = out.len();
            if parent_is_a {
                out.extend(
                    r.by_a
                        .row(p)
                        .iter()
                        .filter(|&&pair| self.pfree(rel, pair) > 0)
                        .map(|&pair| r.pair_b[pair as usize]),
                );
            } else {
                let (lo, hi) = (r.b_off[p as usize], r.b_off[p as usize + 1]);
                out.extend(
                    (lo..hi)
                        .filter(|&pair| self.pfree(rel, pair) > 0)
                        .map(|pair| r.pair_a[pair as usize]),
                );
            }
            self.sort_tail(child_kind, &mut out, start);
        }
        out
    }

    fn numa_order(&self) -> Vec<u32> {
        if self.cx.numa_first {
            self.sorted_present(NUMA)
        } else {
            self.expand(&self.sorted_present(SOCKET), NUMA_SOCKET, false, NUMA)
        }
    }

    fn socket_order(&self) -> Vec<u32> {
        if self.cx.numa_first {
            self.expand(&self.numa_order(), NUMA_SOCKET, true, SOCKET)
        } else {
            self.sorted_present(SOCKET)
        }
    }

    fn core_order(&self) -> Vec<u32> {
        if self.cx.numa_first {
            self.expand(&self.socket_order(), SOCKET_CORE, true, CORE)
        } else {
            self.expand(&self.numa_order(), NUMA_CORE, true, CORE)
        }
    }

    fn uncore_order(&self) -> Vec<u32> {
        self.expand(&self.numa_order(), NUMA_UNCORE, true, UNCORE)
    }

    /// Appends the free CPUs of a unit, ascending.
    fn free_in(&self, kind: usize, unit: u32, out: &mut Vec<u32>) {
        out.extend(
            self.cx.members[kind]
                .row(unit)
                .iter()
                .copied()
                .filter(|&p| self.is_free(p)),
        );
    }

    /// The "fully free" test of §CPU-assignment.6.
    fn is_unit_free(&self, kind: usize, unit: u32) -> bool {
        let free = self.ufree(kind, unit) as usize;
        match kind {
            SOCKET => free == self.cx.cpus_per_socket,
            CORE => free == self.cx.cpus_per_core,
            _ => free == self.cx.members[kind].row(unit).len(),
        }
    }

    /// takeFullNUMANodes / takeFullSockets / takeFullCores / takeFullUncore: the fully free
    /// units (list built once, in order), each taken whole (all its CPUs of the topology)
    /// while the request still needs at least that many CPUs.
    fn take_full(&mut self, kind: usize) {
        if self.needed < self.cx.smallest[kind] as i64 {
            return;
        }
        let mut order = match kind {
            NUMA => self.numa_order(),
            SOCKET => self.socket_order(),
            CORE => self.core_order(),
            _ => self.uncore_order(),
        };
        order.retain(|&u| self.is_unit_free(kind, u));
        let cx = self.cx;
        for u in order {
            let all = cx.members[kind].row(u);
            if self.needed >= all.len() as i64 {
                self.take(all);
            }
        }
    }

    /// takeUncoreCache (step 3 of §CPU-assignment.7).
    fn take_uncore_caches(&mut self) {
        for u in self.uncore_order() {
            if self.needed >= self.cx.cpus_per_uncore as i64 {
                self.take_full(UNCORE);
            }
            if self.is_satisfied() {
                return;
            }
            self.take_partial_uncore(u);
            if self.is_satisfied() {
                return;
            }
        }
    }

    /// takePartialUncore: the lowest-id `needed / CPUsPerCore` cores having a free CPU in
    /// cache `u`; their free CPUs are taken only if they are exactly `needed`.
    fn take_partial_uncore(&mut self, u: u32) {
        let k = match self.cx.cpus_per_core {
            0 => 0,
            per => (self.needed / per as i64).max(0) as usize,
        };
        let r = &self.cx.rels[UNCORE_CORE];
        let mut set = Vec::new();
        for &pair in r
            .by_a
            .row(u)
            .iter()
            .filter(|&&pair| self.pfree(UNCORE_CORE, pair) > 0)
            .take(k)
        {
            self.free_in(CORE, r.pair_b[pair as usize], &mut set);
        }
        if set.len() as i64 == self.needed {
            self.take(&set);
        }
    }

    /// takeRemainingCPUs: single CPUs in the packed (core by core) or spread (socket by
    /// socket, ascending ids) order, computed once.
    fn take_remaining(&mut self, spread: bool) {
        let mut order = Vec::new();
        if spread {
            for s in self.socket_order() {
                self.free_in(SOCKET, s, &mut order);
            }
        } else {
            for c in self.core_order() {
                self.free_in(CORE, c, &mut order);
            }
        }
        for p in order {
            self.take(&[p]);
            if self.is_satisfied() {
                return;
            }
        }
    }

    /// rangeNUMANodesNeededToSatisfy.
    fn numa_range(&self, group: usize) -> (usize, usize) {
        let num_numa = self.cx.units(NUMA).max(1);
        let available_numa = (0..num_numa as u32)
            .filter(|&x| self.ufree(NUMA, x) > 0)
            .count();
        let num_cpus = self.cx.ids.len().max(1);
        let groups = (num_cpus - 1) / group + 1;
        let groups_per_numa = (groups - 1) / num_numa + 1;
        let needed = self.needed.max(1) as usize;
        let groups_needed = (needed - 1) / group + 1;
        let min = (groups_needed - 1) / groups_per_numa + 1;
        (min, groups_needed.min(available_numa))
    }
}

fn not_enough(n: usize, available: usize) -> String {
    format!("not enough cpus available to satisfy request: requested={n}, available={available}")
}

/// takeByTopologyNUMAPacked (§CPU-assignment.7). `available_len` is only the "available="
/// of the error text.
fn packed(
    cx: &Ctx,
    cand: &[u32],
    available_len: usize,
    n: usize,
    spread: bool,
    uncore: bool,
) -> Result<Vec<u32>, String> {
    let mut acc = Acc::new(cx, cand, n);
    if acc.is_satisfied() {
        return Ok(Vec::new());
    }
    if acc.is_failed() {
        return Err(not_enough(n, available_len));
    }
    let (first, second) = if cx.numa_first {
        (NUMA, SOCKET)
    } else {
        (SOCKET, NUMA)
    };
    acc.take_full(first);
    if acc.is_satisfied() {
        return Ok(acc.result);
    }
    acc.take_full(second);
    if acc.is_satisfied() {
        return Ok(acc.result);
    }
    if uncore {
        acc.take_uncore_caches();
        if acc.is_satisfied() {
            return Ok(acc.result);
        }
    }
    if !spread {
        acc.take_full(CORE);
        if acc.is_satisfied() {
            return Ok(acc.result);
        }
    }
    acc.take_remaining(spread);
    if acc.is_satisfied() {
        return Ok(acc.result);
    }
    Err("failed to allocate cpus".to_string())
}

// ---------------------------------------------------------------------------------------
// NUMA-distributed
// ---------------------------------------------------------------------------------------

/// Go's `math.Round(x*1000)/1000` (half away from zero, like `f64::round`).
fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// Population standard deviation with the kubelet's rounding of mean and result.
fn balance(values: impl Iterator<Item = i64> + Clone) -> f64 {
    let len = values.clone().count() as f64;
    let mean = round3(values.clone().map(|v| v as f64).sum::<f64>() / len);
    let sq: f64 = values.map(|v| (v as f64 - mean) * (v as f64 - mean)).sum();
    round3((sq / len).sqrt())
}

/// A Go slice header over a [`GoSlices`] backing array (offset always 0).
#[derive(Debug, Clone, Copy)]
struct GoSlice {
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
struct GoSlices {
    arrs: Vec<Vec<u32>>,
}

impl GoSlices {
    fn new() -> GoSlices {
        // Array 0: the `[]int{}` the enumeration starts from (capacity 0).
        GoSlices {
            arrs: vec![Vec::new()],
        }
    }

    fn append(&mut self, s: GoSlice, x: u32) -> GoSlice {
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

    fn view(&self, s: GoSlice) -> &[u32] {
        &self.arrs[s.arr][..s.len]
    }
}

/// `iterateCombinations(n, k, f)`: every k-subset of `n` in lexicographic order of
/// positions; `f` returns `true` to break. Returns the backing arrays so that slices kept by
/// `f` can be read afterwards (with Go's aliasing).
fn go_combinations(n: &[u32], k: usize, f: &mut dyn FnMut(&GoSlices, GoSlice) -> bool) -> GoSlices {
    fn helper(
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
fn hand_out(after: &mut [i64], subset: &[u32], mut r: i64, g: i64) -> Option<()> {
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
fn distributed(
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cpumanager::topology::CpuInfo;
    use crate::machine::{Cpu, Machine, NumaNode};
    use proptest::prelude::*;
    use std::collections::{BTreeMap, BTreeSet};

    fn set(s: &str) -> CpuSet {
        CpuSet::parse(s).unwrap()
    }

    /// A topology from (cpu, core, socket, numa, uncore) tuples; the machine constants are
    /// the distinct counts, as `Discover` (and the Go fixtures) have them.
    fn topo(cpus: impl IntoIterator<Item = (u32, u32, u32, u32, u32)>) -> CpuTopology {
        let mut map = BTreeMap::new();
        for (id, core, socket, numa, uncore) in cpus {
            let info = CpuInfo {
                numa,
                socket,
                core,
                uncore,
            };
            assert!(map.insert(id, info).is_none(), "cpu {id} twice");
        }
        let count = |f: fn(&CpuInfo) -> u32| map.values().map(f).collect::<BTreeSet<_>>().len();
        let (num_cores, num_sockets) = (count(|i| i.core), count(|i| i.socket));
        let (num_numa_nodes, num_uncore_caches) = (count(|i| i.numa), count(|i| i.uncore));
        CpuTopology {
            num_cpus: map.len(),
            num_cores,
            num_sockets,
            num_numa_nodes,
            num_uncore_caches,
            cpus: map,
        }
    }

    // ----- Go fixtures (cpumanager/policy_test.go); uncore cache = socket unless stated -----

    /// 1 socket, 4 cores × 2 threads, siblings (c, c+4).
    fn single_socket_ht() -> CpuTopology {
        topo((0..8).map(|c| (c, c % 4, 0, 0, 0)))
    }
    /// 2 sockets (= NUMA nodes), 3 cores each, siblings (c, c+6); even cores on socket 0.
    fn dual_socket_ht() -> CpuTopology {
        topo((0..12).map(|c| (c, c % 6, c % 2, c % 2, c % 2)))
    }
    fn dual_socket_no_ht() -> CpuTopology {
        topo((0..8).map(|c| (c, c, c / 4, c / 4, c / 4)))
    }
    /// Cores 0-2 on socket 1, 3-5 on socket 0, 6-8 on socket 2; siblings (2k, 2k+1).
    fn triple_socket_ht() -> CpuTopology {
        topo((0..18).map(|c| {
            let socket = [1, 0, 2][(c / 6) as usize];
            (c, c / 2, socket, socket, socket)
        }))
    }
    /// Dual Xeon Gold 6230: NUMA k = CPUs 10k..10k+9 and +40; 2 NUMA nodes per socket.
    fn dual_socket_multi_numa_ht() -> CpuTopology {
        topo((0..80).map(|c| {
            let core = c % 40;
            (c, core, core / 20, core / 10, core / 20)
        }))
    }
    /// The same with sockets and NUMA nodes flipped: 2 sockets per NUMA node.
    fn multi_socket_dual_socket_per_numa_ht() -> CpuTopology {
        topo((0..80).map(|c| {
            let core = c % 40;
            (c, core, core / 10, core / 20, core / 10)
        }))
    }
    /// 2 × 64 cores, NPS=4: NUMA k = CPUs 16k..16k+15 and +128.
    fn dual_socket_multi_numa_ht_large() -> CpuTopology {
        topo((0..256).map(|c| {
            let core = c % 128;
            (c, core, core / 64, core / 16, core / 64)
        }))
    }
    /// KNL SNC4: 4 sockets (= NUMA nodes) × 18 cores × 4 threads with scattered ids.
    fn quad_socket_four_way_ht() -> CpuTopology {
        #[rustfmt::skip]
        const CORES: [(u32, u32, [u32; 4]); 72] = [
            (0, 0, [0, 169, 109, 229]), (0, 1, [50, 170, 110, 230]), (0, 64, [1, 25, 13, 38]),
            (0, 65, [2, 26, 14, 39]), (0, 72, [9, 33, 21, 46]), (0, 73, [10, 34, 22, 47]),
            (0, 8, [57, 177, 117, 237]), (0, 9, [58, 178, 118, 238]), (0, 24, [71, 191, 131, 251]),
            (0, 25, [72, 192, 132, 252]), (0, 32, [79, 199, 139, 259]), (0, 33, [80, 200, 140, 260]),
            (0, 40, [87, 207, 147, 267]), (0, 41, [88, 208, 148, 268]), (0, 48, [95, 215, 155, 275]),
            (0, 49, [96, 216, 156, 276]), (0, 56, [103, 223, 163, 283]), (0, 57, [104, 224, 164, 284]),
            (1, 66, [3, 27, 15, 40]), (1, 67, [4, 28, 16, 41]), (1, 74, [11, 35, 23, 48]),
            (1, 75, [12, 36, 24, 49]), (1, 2, [51, 171, 111, 231]), (1, 3, [52, 172, 112, 232]),
            (1, 10, [59, 179, 119, 239]), (1, 11, [60, 180, 120, 240]), (1, 18, [65, 185, 125, 245]),
            (1, 19, [66, 186, 126, 246]), (1, 26, [73, 193, 133, 253]), (1, 27, [74, 194, 134, 254]),
            (1, 34, [81, 201, 141, 261]), (1, 35, [82, 202, 142, 262]), (1, 42, [89, 209, 149, 269]),
            (1, 43, [90, 210, 150, 270]), (1, 50, [97, 217, 157, 277]), (1, 51, [98, 218, 158, 278]),
            (2, 68, [5, 29, 17, 42]), (2, 69, [6, 30, 18, 43]), (2, 4, [53, 173, 113, 233]),
            (2, 5, [54, 174, 114, 234]), (2, 12, [61, 181, 121, 241]), (2, 13, [62, 182, 122, 242]),
            (2, 20, [67, 187, 127, 247]), (2, 21, [68, 188, 128, 248]), (2, 28, [75, 195, 135, 255]),
            (2, 29, [76, 196, 136, 256]), (2, 36, [83, 203, 143, 263]), (2, 37, [84, 204, 144, 264]),
            (2, 44, [91, 211, 151, 271]), (2, 45, [92, 212, 152, 272]), (2, 52, [99, 219, 159, 279]),
            (2, 53, [100, 220, 160, 280]), (2, 60, [105, 225, 165, 285]), (2, 61, [106, 226, 166, 286]),
            (3, 70, [7, 31, 19, 44]), (3, 71, [8, 32, 20, 45]), (3, 63, [37, 168, 108, 228]),
            (3, 62, [107, 227, 167, 287]), (3, 6, [55, 175, 115, 235]), (3, 7, [56, 176, 116, 236]),
            (3, 14, [63, 183, 123, 243]), (3, 15, [64, 184, 124, 244]), (3, 22, [69, 189, 129, 249]),
            (3, 23, [70, 190, 130, 250]), (3, 30, [77, 197, 137, 257]), (3, 31, [78, 198, 138, 258]),
            (3, 38, [85, 205, 145, 265]), (3, 39, [86, 206, 146, 266]), (3, 46, [93, 213, 153, 273]),
            (3, 47, [94, 214, 154, 274]), (3, 54, [101, 221, 161, 281]), (3, 55, [102, 222, 162, 282]),
        ];
        let t = topo(
            CORES
                .iter()
                .flat_map(|&(s, core, cpus)| cpus.map(|c| (c, core, s, s, s))),
        );
        assert_eq!((t.num_cpus, t.num_cores), (288, 72));
        t
    }
    /// 16 cores, no SMT, 4 uncore caches of 4 cores, 1 NUMA node.
    fn uncore_single_socket_no_smt() -> CpuTopology {
        topo((0..16).map(|c| (c, c, 0, 0, c / 4)))
    }
    /// 2 sockets (= NUMA nodes) × 8 cores, no SMT, 4 uncore caches of 4 cores.
    fn uncore_dual_socket_no_smt() -> CpuTopology {
        topo((0..16).map(|c| (c, c, c / 8, c / 8, c / 4)))
    }
    /// 1 socket, 8 cores × 2 threads (siblings c, c+8), caches: cores 0-3 / 4-7.
    fn uncore_single_socket_smt() -> CpuTopology {
        topo((0..16).map(|c| (c, c % 8, 0, 0, (c % 8) / 4)))
    }
    /// 1 socket, 2 NUMA nodes (0-7 / 8-15), 16 cores, no SMT, 4 caches of 4 cores.
    fn uncore_single_socket_multi_numa() -> CpuTopology {
        topo((0..16).map(|c| (c, c, 0, c / 8, c / 4)))
    }

    // ----- the machines of spec §CPU-assignment -----

    /// Machine A: 2 sockets, NUMA k = socket k, 4 cores per socket, siblings (c, c+8),
    /// built through `CpuTopology::discover` from a machine model.
    fn machine_a() -> CpuTopology {
        let cpus: Vec<Cpu> = (0..16)
            .map(|c| Cpu {
                id: c,
                core: c % 4,
                socket: (c % 8) / 4,
                numa: (c % 8) / 4,
            })
            .collect();
        let nodes = (0..2)
            .map(|n| NumaNode {
                id: n,
                cpus: cpus.iter().filter(|c| c.numa == n).map(|c| c.id).collect(),
                memory: 1 << 30,
                hugepages: BTreeMap::new(),
                distances: vec![10, 20],
            })
            .collect();
        CpuTopology::discover(&Machine { nodes, cpus }).unwrap()
    }
    /// Machine B: 1 socket, 2 NUMA nodes (cores 0-3 / 4-7), siblings (c, c+8).
    fn machine_b() -> CpuTopology {
        topo((0..16).map(|c| (c, c % 8, 0, (c % 8) / 4, 0)))
    }
    /// Machine U: 1 socket, 1 NUMA, 8 cores × 2 threads, caches: cores 0-3 / 4-7.
    fn machine_u() -> CpuTopology {
        uncore_single_socket_smt()
    }
    /// Machine C: 2 sockets × 2 NUMA × 3 cores × 2 threads, NUMA k = cores 3k..3k+2,
    /// siblings (c, c+12).
    fn machine_c() -> CpuTopology {
        topo((0..24).map(|c| {
            let core = c % 12;
            (c, core, core / 6, core / 3, core / 6)
        }))
    }

    const PACKED: TakeOptions = TakeOptions {
        distribute_cpus_across_numa: false,
        full_pcpus_only: false,
        distribute_cpus_across_cores: false,
        prefer_align_by_uncore_cache: false,
    };
    const SPREAD: TakeOptions = TakeOptions {
        distribute_cpus_across_cores: true,
        ..PACKED
    };
    const UNCORE: TakeOptions = TakeOptions {
        prefer_align_by_uncore_cache: true,
        ..PACKED
    };
    const DISTRIBUTE: TakeOptions = TakeOptions {
        distribute_cpus_across_numa: true,
        ..PACKED
    };
    const DISTRIBUTE_FULL: TakeOptions = TakeOptions {
        distribute_cpus_across_numa: true,
        full_pcpus_only: true,
        ..PACKED
    };

    /// `want`: expected set in list format, or `!<error text>`.
    fn check(t: &CpuTopology, avail: &str, n: usize, opts: TakeOptions, want: &str) {
        let got = take_by_topology(t, &set(avail), n, &opts).map(|s| s.to_string());
        let want = match want.strip_prefix('!') {
            Some(e) => Err(e.to_string()),
            None => Ok(set(want).to_string()),
        };
        assert_eq!(got, want, "available={avail} n={n} {opts:?}");
    }

    /// takeByTopologyNUMADistributed with an explicit group size (packed order).
    fn check_distributed(t: &CpuTopology, avail: &str, n: usize, group: usize, want: &str) {
        let cx = Ctx::new(t);
        let a = set(avail);
        let got = distributed(&cx, &cx.positions(&a), a.len(), n, group, false)
            .map(|v| cx.to_cpuset(&v).to_string());
        let want = match want.strip_prefix('!') {
            Some(e) => Err(e.to_string()),
            None => Ok(set(want).to_string()),
        };
        assert_eq!(got, want, "available={avail} n={n} group={group}");
    }

    /// A fixture constructor.
    type Fixture = fn() -> CpuTopology;

    type Case = (&'static str, Fixture, &'static str, usize, &'static str);

    /// commonTakeByTopologyTestCases: same answer packed and distributed (group 1).
    #[rustfmt::skip]
    const COMMON: [Case; 13] = [
        ("more than available", single_socket_ht, "0,2,4,6", 5,
         "!not enough cpus available to satisfy request: requested=5, available=4"),
        ("zero cpus", single_socket_ht, "0-7", 0, ""),
        ("one cpu", single_socket_ht, "0-7", 1, "0"),
        ("one cpu, some taken", single_socket_ht, "1,3,5-7", 1, "6"),
        ("two cpus", single_socket_ht, "0-7", 2, "0,4"),
        ("all cpus", single_socket_ht, "0-7", 8, "0-7"),
        ("two cpus, one core free", single_socket_ht, "0-3,6", 2, "2,6"),
        ("a socket", dual_socket_ht, "0-11", 6, "0,2,4,6,8,10"),
        ("a socket, multi-numa", dual_socket_multi_numa_ht, "0-79", 40, "0-19,40-59"),
        ("a NUMA node, multi-numa", dual_socket_multi_numa_ht, "0-79", 20, "0-9,40-49"),
        ("a NUMA node, one taken", dual_socket_multi_numa_ht, "10-39,50-79", 20, "10-19,50-59"),
        ("a socket and a NUMA node", dual_socket_multi_numa_ht, "0-79", 60, "0-29,40-69"),
        ("a socket and a NUMA node, a core taken", dual_socket_multi_numa_ht, "1-39,41-79", 60,
         "10-39,50-79"),
    ];

    #[test]
    fn take_by_topology_numa_packed() {
        #[rustfmt::skip]
        let extra: [(&str, Fixture, TakeOptions, &str, usize, &str); 10] = [
            ("one cpu, core from socket 0", dual_socket_ht, PACKED, "1-5,7-11", 1, "2"),
            ("4 full cores, 3 filling NUMA 0 then 1 from NUMA 1", dual_socket_ht, PACKED, "0-11", 8,
             "0-2,4,6-8,10"),
            ("32 full cores: 3 NUMA nodes then 2 cores of the fourth", dual_socket_multi_numa_ht,
             PACKED, "0-79", 64, "0-31,40-71"),
            ("two full caches and a partial one", uncore_single_socket_no_smt, UNCORE, "1-15", 10,
             "1-2,4-11"),
            ("first available cache of the first socket", uncore_dual_socket_no_smt, UNCORE,
             "0-15", 4, "0-3"),
            ("all available caches of the first socket", uncore_dual_socket_no_smt, UNCORE,
             "2-15", 6, "2-7"),
            ("first available cache of the second socket", uncore_dual_socket_no_smt, UNCORE,
             "8-15", 4, "8-11"),
            ("first available cache of the available NUMA node", uncore_single_socket_multi_numa,
             UNCORE, "3-8,12", 2, "4-5"),
            ("best cache, SMT", uncore_single_socket_smt, UNCORE, "2-7,10-15", 6, "4-6,12-14"),
            ("several caches, SMT", uncore_single_socket_smt, UNCORE, "1-7,9-15", 10,
             "1,4-7,9,12-15"),
        ];
        for (what, t, avail, n, want) in COMMON {
            eprintln!("{what}");
            check(&t(), avail, n, PACKED, want);
        }
        for (what, t, opts, avail, n, want) in extra {
            eprintln!("{what}");
            check(&t(), avail, n, opts, want);
        }
    }

    #[test]
    fn take_by_topology_spread() {
        #[rustfmt::skip]
        let cases: [(Fixture, &str, usize, &str); 8] = [
            (single_socket_ht, "0-7", 3, "0-2"),
            (dual_socket_ht, "0-11", 2, "0,2"),
            (dual_socket_ht, "0-11", 3, "0,2,4"),
            (dual_socket_ht, "0-11", 6, "0,2,4,6,8,10"),
            (dual_socket_ht, "0-11", 8, "0-4,6,8,10"),
            (dual_socket_no_ht, "0-7", 2, "0-1"),
            (dual_socket_multi_numa_ht, "0-79", 8, "0-7"),
            (quad_socket_four_way_ht, "0-287", 12, "0-2,9-10,13-14,21-22,25-26,33"),
        ];
        for (t, avail, n, want) in cases {
            check(&t(), avail, n, SPREAD, want);
        }
    }

    #[test]
    fn take_by_topology_numa_distributed() {
        #[rustfmt::skip]
        let extended: [(Fixture, &str, usize, usize, &str); 16] = [
            (dual_socket_ht, "0-11", 8, 1, "0-3,6-9"),
            (dual_socket_multi_numa_ht, "0-79", 64, 1,
             "0-7,10-17,20-27,30-37,40-47,50-57,60-67,70-77"),
            (dual_socket_multi_numa_ht, "0-79", 48, 1, "0-7,10-17,20-27,40-47,50-57,60-67"),
            (dual_socket_multi_numa_ht, "1-29,32-39,41-69,72-79", 48, 1,
             "1-8,10-17,20-27,41-48,50-57,60-67"),
            (dual_socket_multi_numa_ht, "2-29,31-39,42-69,71-79", 48, 1,
             "10-17,20-27,31-38,50-57,60-67,71-78"),
            (dual_socket_multi_numa_ht, "0-2,10-12,20-22,30-32,40-41,50-51,60-61,70-71", 16, 1,
             "0-1,10-11,20-21,30-31,40-41,50-51,60-61,70-71"),
            (dual_socket_ht, "1-5,7-11", 1, 1, "1"),
            (dual_socket_ht, "1-5,7-11", 1, 2, "2"),
            (dual_socket_multi_numa_ht, "0-79", 26, 1, "0-6,10-16,40-45,50-55"),
            (dual_socket_multi_numa_ht, "0-79", 26, 2, "0-6,10-15,40-46,50-55"),
            (dual_socket_multi_numa_ht, "0-79", 62, 1,
             "0-7,10-17,20-27,30-37,40-47,50-57,60-66,70-76"),
            (dual_socket_multi_numa_ht, "0-79", 62, 2,
             "0-7,10-17,20-27,30-36,40-47,50-57,60-67,70-76"),
            (dual_socket_multi_numa_ht, "0-8,10-18,20-39,40-48,50-58,60-79", 62, 1,
             "0-7,10-17,20-27,30-37,40-46,50-56,60-67,70-77"),
            (dual_socket_multi_numa_ht, "0-8,10-18,20-39,40-48,50-58,60-79", 62, 2,
             "0-7,10-16,20-27,30-37,40-47,50-56,60-67,70-77"),
            (dual_socket_multi_numa_ht, "0-3,10-13,20-23,30-36,40-43,50-53,60-63,70-76", 34, 1,
             "0-3,10-13,20-23,30-34,40-43,50-53,60-63,70-74"),
            (dual_socket_multi_numa_ht_large,
             "0,128,30,31,158,159,43-47,171-175,62,63,190,191,75-79,203-207,94,96,222,223,101-111,229-239,126,127,254,255",
             28, 1, "43-47,75-79,96,101-105,171-174,203-206,229-232"),
        ];
        for (what, t, avail, n, want) in COMMON {
            eprintln!("{what}");
            check_distributed(&t(), avail, n, 1, want);
            check(&t(), avail, n, DISTRIBUTE, want);
        }
        for (t, avail, n, group, want) in extended {
            check_distributed(&t(), avail, n, group, want);
        }
    }

    // ----- internal orders (TestCPUAccumulatorFree*) -----

    fn unit_ids(t: &CpuTopology, cx: &Ctx, kind: usize, units: &[u32]) -> Vec<u32> {
        units
            .iter()
            .map(|&u| {
                let info = t.cpus[&cx.ids[cx.members[kind].row(u)[0] as usize]];
                [info.core, info.socket, info.numa, info.uncore][kind]
            })
            .collect()
    }

    fn free_units(t: &CpuTopology, avail: &str, kind: usize) -> Vec<u32> {
        let cx = Ctx::new(t);
        let acc = Acc::new(&cx, &cx.positions(&set(avail)), 0);
        let order = match kind {
            NUMA => acc.numa_order(),
            SOCKET => acc.socket_order(),
            _ => acc.core_order(),
        };
        let free: Vec<u32> = order
            .into_iter()
            .filter(|&u| acc.is_unit_free(kind, u))
            .collect();
        unit_ids(t, &cx, kind, &free)
    }

    #[test]
    fn accumulator_free_sockets_and_numa_nodes() {
        #[rustfmt::skip]
        let sockets: [(Fixture, &str, &[u32]); 13] = [
            (single_socket_ht, "0-7", &[0]),
            (single_socket_ht, "1-7", &[]),
            (dual_socket_ht, "0-11", &[0, 1]),
            (dual_socket_ht, "0-9,11", &[1]),
            (dual_socket_ht, "0,2-9,11", &[]),
            (dual_socket_multi_numa_ht, "0-79", &[0, 1]),
            (dual_socket_multi_numa_ht, "1-79", &[1]),
            (dual_socket_multi_numa_ht, "1-78", &[]),
            (multi_socket_dual_socket_per_numa_ht, "0-79", &[0, 1, 2, 3]),
            (multi_socket_dual_socket_per_numa_ht, "0-19,21-79", &[0, 1, 3]),
            (multi_socket_dual_socket_per_numa_ht, "0-59,61-78", &[0, 1]),
            (multi_socket_dual_socket_per_numa_ht, "1-19,21-38,41-60,61-78", &[1]),
            (multi_socket_dual_socket_per_numa_ht, "0-40,42-49,51-68,71-79", &[]),
        ];
        for (t, avail, want) in sockets {
            let mut got = free_units(&t(), avail, SOCKET);
            got.sort_unstable();
            assert_eq!(got, want, "sockets of {avail}");
        }
        #[rustfmt::skip]
        let numas: [(Fixture, &str, &[u32]); 14] = [
            (single_socket_ht, "0-7", &[0]),
            (single_socket_ht, "1-7", &[]),
            (dual_socket_ht, "0-11", &[0, 1]),
            (dual_socket_ht, "0-9,11", &[1]),
            (dual_socket_ht, "0,2-9,11", &[]),
            (dual_socket_multi_numa_ht, "0-79", &[0, 1, 2, 3]),
            (dual_socket_multi_numa_ht, "1-79", &[1, 2, 3]),
            (dual_socket_multi_numa_ht, "1-9,11-79", &[2, 3]),
            (dual_socket_multi_numa_ht, "1-9,11-59,61-79", &[3]),
            (dual_socket_multi_numa_ht, "1-9,11-59,61-78", &[]),
            (dual_socket_multi_numa_ht, "1-59,61-79", &[1, 3]),
            (multi_socket_dual_socket_per_numa_ht, "0-79", &[0, 1]),
            (multi_socket_dual_socket_per_numa_ht, "0-9,11-79", &[1]),
            (multi_socket_dual_socket_per_numa_ht, "0-9,11-59,61-79", &[]),
        ];
        for (t, avail, want) in numas {
            assert_eq!(free_units(&t(), avail, NUMA), want, "NUMA nodes of {avail}");
        }
    }

    #[test]
    fn accumulator_free_cores_and_cpus() {
        #[rustfmt::skip]
        let cores: [(Fixture, &str, &[u32]); 8] = [
            (single_socket_ht, "0-7", &[0, 1, 2, 3]),
            (single_socket_ht, "0-2,4-6", &[0, 1, 2]),
            (single_socket_ht, "0-6", &[0, 1, 2]),
            (single_socket_ht, "", &[]),
            (single_socket_ht, "0-3", &[]),
            (dual_socket_ht, "0-11", &[0, 2, 4, 1, 3, 5]),
            (dual_socket_ht, "1-5,7-11", &[2, 4, 1, 3, 5]),
            (dual_socket_ht, "2-5,8-11", &[2, 4, 3, 5]),
        ];
        for (t, avail, want) in cores {
            assert_eq!(free_units(&t(), avail, CORE), want, "cores of {avail}");
        }
        #[rustfmt::skip]
        let cpus: [(Fixture, &str, &[u32]); 6] = [
            (single_socket_ht, "0-7", &[0, 4, 1, 5, 2, 6, 3, 7]),
            (single_socket_ht, "3-7", &[4, 5, 6, 3, 7]),
            (dual_socket_ht, "0-11", &[0, 6, 2, 8, 4, 10, 1, 7, 3, 9, 5, 11]),
            (dual_socket_ht, "1-11", &[6, 2, 8, 4, 10, 1, 7, 3, 9, 5, 11]),
            (dual_socket_ht, "1-5,7-11", &[2, 8, 4, 10, 1, 7, 3, 9, 5, 11]),
            (triple_socket_ht, "0-3,6-13", &[12, 13, 0, 1, 2, 3, 6, 7, 8, 9, 10, 11]),
        ];
        for (t, avail, want) in cpus {
            let t = t();
            let cx = Ctx::new(&t);
            let acc = Acc::new(&cx, &cx.positions(&set(avail)), 0);
            let mut order = Vec::new();
            for c in acc.core_order() {
                acc.free_in(CORE, c, &mut order);
            }
            let got: Vec<u32> = order.iter().map(|&p| cx.ids[p as usize]).collect();
            assert_eq!(got, want, "cpus of {avail}");
        }
    }

    // ----- spec §CPU-assignment worked examples (v1.32.10 runs) -----

    #[test]
    fn spec_2_reserved_set_with_default_options() {
        let one = topo((0..8).map(|c| (c, c % 4, 0, 0, 0)));
        for (n, want) in [(1, "0"), (2, "0,4"), (3, "0-1,4"), (5, "0-2,4-5")] {
            check(&one, "0-7", n, PACKED, want);
        }
        let two = machine_a();
        for (n, want) in [(1, "0"), (2, "0,8"), (3, "0-1,8"), (5, "0-2,8-9")] {
            check(&two, "0-15", n, PACKED, want);
        }
    }

    #[test]
    fn spec_4_reuse_of_init_container_cpus() {
        // Reserved `0`; the app container's candidates are the free CPUs plus the
        // regular init container's CPUs (no extra priority).
        let a = machine_a();
        // init 2 + app 2
        check(&a, "1-15", 2, PACKED, "1,9");
        check(&a, "1-15", 2, PACKED, "1,9");
        // init 2 + app 1: the half-used core 0 wins over the reusable core
        check(&a, "1-15", 1, PACKED, "8");
        // init 4 + app 2
        check(&a, "1-15", 4, PACKED, "1-2,9-10");
        check(&a, "1-15", 2, PACKED, "1,9");
    }

    #[test]
    fn spec_5_spill_outside_the_hint() {
        // Reserved 0, CPUs 4,5,12,13,14 exclusive, hint {1}, n = 6.
        let a = machine_a();
        let allocatable = set("1-3,6-11,15");
        let aligned = allocatable.intersection(&a.cpus_in_numa_nodes(|n| n == 1));
        assert_eq!(aligned.to_string(), "6-7,15");
        let first = take_by_topology(&a, &aligned, 3, &PACKED).unwrap();
        assert_eq!(first.to_string(), "6-7,15");
        let rest = take_by_topology(&a, &allocatable.difference(&first), 3, &PACKED).unwrap();
        assert_eq!(rest.to_string(), "1,8-9");
        assert_eq!(first.union(&rest).to_string(), "1,6-9,15");
    }

    #[test]
    fn spec_7_machine_a() {
        let a = machine_a();
        check(&a, "0-15", 1, PACKED, "0");
        check(&a, "0-15", 3, PACKED, "0-1,8");
        check(&a, "0-15", 9, PACKED, "0-4,8-11");
        check(&a, "1-15", 1, PACKED, "8");
        check(&a, "1-15", 3, PACKED, "1,8-9");
        check(&a, "2-15", 2, PACKED, "2,10");
        check(&a, "0-15", 3, SPREAD, "0-2");
        check(&a, "1-15", 3, SPREAD, "1-3");
        check(
            &a,
            "0-15",
            17,
            PACKED,
            "!not enough cpus available to satisfy request: requested=17, available=16",
        );
    }

    #[test]
    fn spec_7_machine_b_sockets_first() {
        check(&machine_b(), "1-15", 4, PACKED, "1-2,9-10");
    }

    #[test]
    fn spec_7_machine_u_uncore() {
        let u = machine_u();
        check(&u, "1-15", 2, UNCORE, "4,12");
        check(&u, "1-15", 2, PACKED, "1,9");
        check(&u, "3-15", 6, UNCORE, "4-6,12-14");
        check(&u, "3-15", 6, PACKED, "3-5,11-13");
        check(&u, "0-15", 10, UNCORE, "0-4,8-12");
        check(&u, "0-15", 10, PACKED, "0-4,8-12");
    }

    #[test]
    fn spec_8_machine_c_distributed() {
        let c = machine_c();
        let all_but_0 = "1-23";
        check(&c, all_but_0, 4, DISTRIBUTE, "3-4,15-16");
        check(&c, all_but_0, 6, DISTRIBUTE, "3-5,15-17");
        check(&c, all_but_0, 8, DISTRIBUTE, "3-4,6-7,15-16,18-19");
        check(&c, all_but_0, 10, DISTRIBUTE, "3-8,15-16,18-19");
        check(&c, all_but_0, 10, DISTRIBUTE_FULL, "3-7,15-19");
    }

    #[test]
    fn distributed_errors_and_fallbacks() {
        let c = machine_c();
        check(
            &c,
            "1-23",
            24,
            DISTRIBUTE,
            "!not enough cpus available to satisfy request: requested=24, available=23",
        );
        // Not a multiple of the group size: plain packing (whole core 1, then CPU 12 of
        // the half-used core 0).
        check(&c, "1-23", 3, DISTRIBUTE_FULL, "1,12-13");
        check(&c, "1-23", 3, PACKED, "1,12-13");
        check(&c, "1-23", 0, DISTRIBUTE, "");
        // Unknown ids are ignored but counted in the error text, as in Go.
        check(
            &c,
            "20-23,100",
            5,
            PACKED,
            "!not enough cpus available to satisfy request: requested=5, available=5",
        );
    }

    /// `iterateCombinations` builds combinations with `append`, so from depth 4 on siblings
    /// share one backing array: a kept slice reads back as a later sibling.
    #[test]
    fn go_combinations_alias_like_go_slices() {
        let mut seen = Vec::new();
        let mut first = None;
        let arena = go_combinations(&[0, 1, 2, 3, 4], 4, &mut |ar, h| {
            seen.push(ar.view(h).to_vec());
            first.get_or_insert(h);
            false
        });
        let want: [[u32; 4]; 5] = [
            [0, 1, 2, 3],
            [0, 1, 2, 4],
            [0, 1, 3, 4],
            [0, 2, 3, 4],
            [1, 2, 3, 4],
        ];
        assert_eq!(seen, want);
        assert_eq!(arena.view(first.unwrap()), &[0, 1, 2, 4]);

        let mut first = None;
        let arena = go_combinations(&[0, 1, 2, 3], 3, &mut |_, h| {
            first.get_or_insert(h);
            false
        });
        assert_eq!(arena.view(first.unwrap()), &[0, 1, 2]);

        let mut count = 0;
        go_combinations(&[5, 6, 7], 2, &mut |_, _| {
            count += 1;
            count == 2
        });
        assert_eq!(count, 2);
        go_combinations(&[5, 6], 3, &mut |_, _| panic!("no 3-subsets of 2 elements"));
    }

    /// Consequence of the aliasing on a 5-NUMA machine: the best 4-node combination {0,1,2,3}
    /// reads back as its sibling {0,1,2,4} (same score), so Go allocates from that one.
    #[test]
    fn distributed_reproduces_go_combination_aliasing() {
        let five = topo((0..20).map(|c| (c, c, c / 4, c / 4, c / 4)));
        check(&five, "0-19", 16, DISTRIBUTE, "0-11,16-19");
    }

    // ----- properties -----

    /// A regular machine: `sockets` sockets, NUMA nodes inside sockets (or one NUMA node
    /// holding every socket), cores numbered socket by socket, SMT siblings c + num_cores.
    fn regular(
        sockets: u32,
        numa_per_socket: u32,
        numa_spans_sockets: bool,
        cores_per_numa: u32,
        threads: u32,
        caches_per_numa: u32,
    ) -> CpuTopology {
        let numas = if numa_spans_sockets {
            1
        } else {
            sockets * numa_per_socket
        };
        let cores = if numa_spans_sockets {
            sockets * numa_per_socket * cores_per_numa
        } else {
            numas * cores_per_numa
        };
        let cores_per_socket = cores / sockets;
        let cores_per_node = cores / numas;
        topo((0..cores * threads).map(|c| {
            let core = c % cores;
            let numa = core / cores_per_node;
            let within = core % cores_per_node;
            let cache = numa * caches_per_numa + within * caches_per_numa / cores_per_node;
            (c, core, core / cores_per_socket, numa, cache)
        }))
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(400))]
        #[test]
        fn result_is_an_exact_subset_of_available(
            sockets in 1u32..=2,
            numa_per_socket in 1u32..=2,
            numa_spans_sockets in any::<bool>(),
            cores_per_numa in 1u32..=4,
            threads in 1u32..=2,
            caches_per_numa in 1u32..=2,
            mask in proptest::collection::vec(any::<bool>(), 64),
            extra in 0usize..=3,
            pick in 0usize..=64,
            opts in (any::<bool>(), any::<bool>(), any::<bool>(), any::<bool>()),
        ) {
            let t = regular(sockets, numa_per_socket, numa_spans_sockets, cores_per_numa,
                            threads, caches_per_numa);
            let available: CpuSet = t.cpus.keys().copied().filter(|&c| mask[c as usize]).collect();
            let n = (pick % (t.num_cpus + 1)) + if pick % 5 == 0 { extra } else { 0 };
            let opts = TakeOptions {
                distribute_cpus_across_numa: opts.0,
                full_pcpus_only: opts.1,
                distribute_cpus_across_cores: opts.2,
                prefer_align_by_uncore_cache: opts.3,
            };
            match take_by_topology(&t, &available, n, &opts) {
                Ok(got) => {
                    prop_assert!(n <= available.len());
                    prop_assert!(got.is_subset_of(&available), "{got} not in {available}");
                    prop_assert_eq!(got.len(), n);
                }
                Err(e) => {
                    prop_assert!(n > available.len(), "unexpected error {e}");
                    prop_assert_eq!(e, format!(
                        "not enough cpus available to satisfy request: requested={n}, available={}",
                        available.len()));
                }
            }
        }
    }
}
