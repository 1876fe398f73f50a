//! The dense index of a CPU topology that takeByTopology walks (`Ctx`).

use crate::cpumanager::topology::CpuTopology;
use crate::cpuset::CpuSet;

/// Unit kinds (index into `Ctx::members`).
pub(super) const CORE: usize = 0;
pub(super) const SOCKET: usize = 1;
pub(super) const NUMA: usize = 2;
pub(super) const UNCORE: usize = 3;

/// Relations (index into `Ctx::rels`), as (parent kind, child kind).
pub(super) const NUMA_SOCKET: usize = 0;
pub(super) const SOCKET_CORE: usize = 1;
pub(super) const NUMA_CORE: usize = 2;
pub(super) const NUMA_UNCORE: usize = 3;
pub(super) const UNCORE_CORE: usize = 4;
pub(super) const RELS: [(usize, usize); 5] = [
    (NUMA, SOCKET),
    (SOCKET, CORE),
    (NUMA, CORE),
    (NUMA, UNCORE),
    (UNCORE, CORE),
];

/// Compressed rows: row `i` is `data[off[i]..off[i + 1]]`.
pub(super) struct Csr {
    pub(super) off: Vec<u32>,
    pub(super) data: Vec<u32>,
}

impl Csr {
    pub(super) fn row(&self, i: u32) -> &[u32] {
        let i = i as usize;
        &self.data[self.off[i] as usize..self.off[i + 1] as usize]
    }

    pub(super) fn rows(&self) -> usize {
        self.off.len() - 1
    }

    /// Groups `0..key.len()` by `key` (values `< rows`), ascending within each row.
    pub(super) fn group(key: &[u32], rows: usize) -> Csr {
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
pub(super) fn densify(raw: &[u32]) -> (Vec<u32>, usize) {
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
pub(super) struct Rel {
    /// CPU position -> pair index.
    pub(super) pair_of: Vec<u32>,
    pub(super) pair_a: Vec<u32>,
    pub(super) pair_b: Vec<u32>,
    /// b -> its pairs (a contiguous, a-ascending range).
    pub(super) b_off: Vec<u32>,
    /// a -> its pairs, b ascending.
    pub(super) by_a: Csr,
}

impl Rel {
    /// Every `b` unit is in at most one pair.
    fn b_single(&self) -> bool {
        self.b_off.windows(2).all(|w| w[1] - w[0] <= 1)
    }

    /// Every `a` unit is in at most one pair.
    fn a_single(&self) -> bool {
        self.by_a.off.windows(2).all(|w| w[1] - w[0] <= 1)
    }

    pub(super) fn build(a_of: &[u32], na: usize, b_members: &Csr) -> Rel {
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
pub(super) struct Ctx {
    /// Position -> CPU id (ascending).
    pub(super) ids: Vec<u32>,
    /// Per kind: dense unit index -> its CPU positions in the topology, ascending.
    pub(super) members: [Csr; 4],
    pub(super) rels: [Rel; 5],
    /// Offsets of each kind's unit counters, then of each relation's pair counters, in
    /// the accumulator's flat counter array (`counters` long).
    pub(super) unit_base: [usize; 4],
    pub(super) pair_base: [usize; 5],
    pub(super) counters: usize,
    /// Per kind: CPUs of its smallest unit (a whole-unit walk needing fewer takes nothing).
    pub(super) smallest: [usize; 4],
    /// Per position: the counters its CPU belongs to (its 4 units, then its 5 pairs).
    pub(super) slots: Vec<[u32; 9]>,
    /// The counters when every CPU of the topology is free.
    pub(super) all_free: Vec<u32>,
    pub(super) cpus_per_core: usize,
    pub(super) cpus_per_socket: usize,
    pub(super) cpus_per_uncore: usize,
    /// `NumSockets >= NumNUMANodes`: NUMA nodes are the first level.
    pub(super) numa_first: bool,
    /// Every core is listed at most once in the core order (no NUMA node, socket or core
    /// under two parents along the chain it is expanded through): the whole-core and
    /// single-CPU steps may then walk the order parent by parent instead of building it
    /// (see `Acc::take_full_cores_walk`).
    pub(super) core_once: bool,
}

impl Ctx {
    pub(super) fn new(topo: &CpuTopology) -> Ctx {
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
        let numa_first = topo.num_sockets >= topo.num_numa_nodes;
        let core_once = if numa_first {
            rels[NUMA_SOCKET].b_single() && rels[SOCKET_CORE].b_single()
        } else {
            rels[NUMA_SOCKET].a_single() && rels[NUMA_CORE].b_single()
        };
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
            numa_first,
            core_once,
        }
    }

    /// Positions of the CPUs of `set` that the topology knows (Go's `KeepOnly`), by a
    /// merge walk of the two ascending id sequences (the ids themselves where the
    /// topology's ids are `0..n`).
    pub(super) fn positions(&self, set: &CpuSet) -> Vec<u32> {
        let n = self.ids.len();
        let mut out = Vec::with_capacity(n.min(set.len()));
        if self.ids.last().is_none_or(|&last| last as usize + 1 == n) {
            out.extend(set.iter().take_while(|&id| (id as usize) < n));
            return out;
        }
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

    pub(super) fn to_cpuset(&self, positions: &[u32]) -> CpuSet {
        CpuSet::from_ids(positions.iter().map(|&p| self.ids[p as usize]))
    }

    pub(super) fn units(&self, kind: usize) -> usize {
        self.members[kind].rows()
    }
}
