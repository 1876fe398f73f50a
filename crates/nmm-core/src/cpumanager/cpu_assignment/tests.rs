//! takeByTopology against the kubelet's fixtures and spec examples, and properties.

use super::acc::*;
use super::distributed::*;
use super::index::*;
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

/// A topology where every core sits in one socket and one NUMA node, and either every
/// socket in one NUMA node (`numa_first`: sockets >= NUMA nodes) or every NUMA node in
/// one socket, with 1-3 cores per innermost unit and 1-3 threads per core (so cores of
/// unequal sizes, against the machine-wide CPUs per core), CPU ids permuted by `perm`.
fn tree(numas: u32, sockets: u32, cores: &[u32], threads: &[u32], perm: &[u32]) -> CpuTopology {
    let (numa_first, units) = if sockets >= numas {
        (true, sockets)
    } else {
        (false, numas)
    };
    let mut rows = Vec::new();
    let mut core_id = 0;
    for u in 0..units {
        let (socket, numa) = if numa_first {
            (u, u % numas)
        } else {
            (u % sockets, u)
        };
        for _ in 0..cores[u as usize % cores.len()] {
            for _ in 0..threads[core_id as usize % threads.len()] {
                rows.push((core_id, socket, numa));
            }
            core_id += 1;
        }
    }
    let n = rows.len();
    let mut ids: Vec<u32> = (0..n as u32).collect();
    ids.sort_by_key(|&i| (perm[i as usize % perm.len()], i));
    topo(
        rows.into_iter()
            .zip(ids)
            .map(|((core, socket, numa), id)| (id, core, socket, numa, socket)),
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]
    /// Walking the core order parent by parent (whole cores, then single CPUs) takes
    /// exactly what building the whole order first takes, on every topology where each
    /// core is listed once; and topologies with a core under two NUMA nodes never walk.
    #[test]
    fn walked_core_order_takes_what_the_built_order_takes(
        numas in 1u32..=4,
        sockets in 1u32..=4,
        cores in proptest::collection::vec(1u32..=3, 1..=4),
        threads in proptest::collection::vec(1u32..=3, 1..=5),
        perm in proptest::collection::vec(0u32..64, 1..=8),
        mask in proptest::collection::vec(any::<bool>(), 64),
        pick in 0usize..=64,
        spread in any::<bool>(),
        uncore in any::<bool>(),
        split_a_core in any::<bool>(),
    ) {
        let mut t = tree(numas, sockets, &cores, &threads, &perm);
        let mut split = false;
        if split_a_core && numas > 1 {
            // A core whose threads sit in two NUMA nodes: listed under both.
            let mut by_core: BTreeMap<u32, Vec<u32>> = BTreeMap::new();
            for (&c, i) in &t.cpus {
                by_core.entry(i.core).or_default().push(c);
            }
            if let Some(two) = by_core.values().find(|v| v.len() >= 2) {
                let moved = two[1];
                let i = t.cpus.get_mut(&moved).unwrap();
                i.numa = (i.numa + 1) % numas;
                split = true;
            }
        }
        let cx = Ctx::new(&t);
        prop_assert!(cx.core_once != split, "core_once {} for split {split}", cx.core_once);
        let available: CpuSet = t.cpus.keys().copied().filter(|&c| mask[c as usize]).collect();
        let cand = cx.positions(&available);
        let n = pick % (t.num_cpus + 2);
        let walked = packed_with(&cx, &cand, available.len(), n, spread, uncore, true);
        let built = packed_with(&cx, &cand, available.len(), n, spread, uncore, false);
        prop_assert_eq!(
            walked.map(|v| cx.to_cpuset(&v)),
            built.map(|v| cx.to_cpuset(&v)),
            "n={} available={}", n, available
        );
    }
}
