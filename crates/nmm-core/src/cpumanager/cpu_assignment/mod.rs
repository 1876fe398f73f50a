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
//! aliasing in its combination enumerator (see `GoSlices`).
//!
//! Implementation: a dense index of the topology (`Ctx`: CPUs and units renumbered, members
//! and parent/child relations as flat CSR arrays), built once per topology ([`CpuPacker`])
//! since the topology never changes between admissions; and an accumulator that keeps free counters per unit
//! and per (parent, child) pair, so every ordered list is a filter + small sort over `Vec`s
//! indexed by dense ids, with no hashing.

mod acc;
mod distributed;
mod index;
#[cfg(test)]
mod tests;

use crate::cpumanager::topology::CpuTopology;
use crate::cpuset::CpuSet;
use acc::Acc;
use distributed::distributed;
use index::{Ctx, CORE, NUMA, SOCKET};
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
    packed_with(cx, cand, available_len, n, spread, uncore, cx.core_once)
}

/// [`packed`], walking the core order (`walk`, only where `Ctx::core_once`) or building
/// it (the reference the walk is tested against).
fn packed_with(
    cx: &Ctx,
    cand: &[u32],
    available_len: usize,
    n: usize,
    spread: bool,
    uncore: bool,
    walk: bool,
) -> Result<Vec<u32>, String> {
    let mut acc = Acc::new(cx, cand, n);
    acc.walk = walk && cx.core_once;
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
