//! Heterogeneous machines and workloads, shared by the large-machine tests and the
//! admission benchmark: CPU-less nodes, nodes with and without 1Gi / 2Mi (and, with four
//! memory types, 32Mi) hugepages, uneven memory (8-96Gi), nodes whose allocatable memory
//! wraps (hugepages + reservation above their memory, as the kubelet allows), one- to
//! three-container pods asking cpu + memory + hugepages, removals while filling up.
#![allow(dead_code)]

use k8s_openapi::api::core::v1::Pod;
use nmm_core::cpuset::CpuSet;
use nmm_core::kubelet_config::{KubeletConfig, MemoryReservation};
use nmm_core::machine::{Cpu, Machine, NumaNode};
use nmm_core::pod::PodInfo;
use serde_json::json;
use std::collections::BTreeMap;

pub const MI: u64 = 1 << 20;
pub const GI: u64 = 1 << 30;

/// SplitMix64: deterministic, no dependency.
#[derive(Debug, Clone)]
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in `lo..=hi`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo + 1)
    }
    pub fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
}

/// What the generator may vary.
#[derive(Debug, Clone, Copy)]
pub struct Shape {
    pub nodes: u32,
    /// 1 to 4: memory, then hugepages-1Gi, hugepages-2Mi, hugepages-32Mi.
    pub memory_types: usize,
    /// Percent of nodes whose allocatable memory wraps.
    pub wrap_percent: u64,
}

pub const PAGE_SIZES: [u64; 3] = [GI, 2 * MI, 32 * MI];

/// A heterogeneous machine. Node 0 always has CPUs; about a quarter of the others are
/// CPU-less; sockets hold four nodes; distances 10 / 12 within a socket / 20-32 across.
pub fn machine(shape: Shape, rng: &mut Rng) -> Machine {
    let mut m = Machine::default();
    let mut next_cpu = 0u32;
    let sizes = &PAGE_SIZES[..shape.memory_types.saturating_sub(1)];
    for n in 0..shape.nodes {
        let with_cpus = n == 0 || !rng.chance(25);
        let count = if with_cpus {
            rng.range(2, 8) as u32 * 2
        } else {
            0
        };
        let cpus: CpuSet = (next_cpu..next_cpu + count).collect();
        for c in cpus.iter() {
            m.cpus.push(Cpu {
                id: c,
                core: c / 2,
                socket: n / 4,
                numa: n,
            });
        }
        next_cpu += count;
        let mut hugepages = BTreeMap::new();
        let mut pages_total = 0;
        for &size in sizes {
            let bytes = if rng.chance(40) {
                0
            } else if size == GI {
                rng.range(1, 8) * GI
            } else {
                rng.range(2, 8) * 128 * MI
            };
            pages_total += bytes;
            hugepages.insert(size, bytes);
        }
        let wrap = shape.wrap_percent > 0 && rng.chance(shape.wrap_percent);
        let memory = if wrap && pages_total > 0 {
            // hugepages (and node 0's reservation) at or above MemTotal: allocatable wraps
            pages_total
                .saturating_sub(rng.range(0, 1) * 512 * MI)
                .max(GI)
        } else {
            pages_total + rng.range(8, 96) * GI
        };
        let distances = (0..shape.nodes)
            .map(|j| {
                if j == n {
                    10
                } else if j / 4 == n / 4 {
                    12
                } else {
                    20 + ((n / 4 + j / 4) as u64 % 4) * 4
                }
            })
            .collect();
        m.nodes.push(NumaNode {
            id: n,
            cpus,
            memory,
            hugepages,
            distances,
        });
    }
    m
}

/// The kubelet configuration of a run: 1124Mi reserved on node 0 (kube-reserved 1Gi +
/// eviction 100Mi), CPU 0 reserved.
pub fn config(policy: &str, scope: &str, closest: bool, nodes: u32) -> KubeletConfig {
    let mut options = BTreeMap::new();
    if closest && policy != "single-numa-node" {
        options.insert("prefer-closest-numa-nodes".to_string(), "true".to_string());
    }
    if nodes > 8 {
        options.insert("max-allowable-numa-nodes".to_string(), nodes.to_string());
    }
    KubeletConfig {
        topology_manager_policy_options: (!options.is_empty()).then_some(options),
        reserved_system_cpus: Some("0".into()),
        kube_reserved: Some([("memory".to_string(), "1Gi".to_string())].into()),
        eviction_hard: Some([("memory.available".to_string(), "100Mi".to_string())].into()),
        reserved_memory: Some(vec![MemoryReservation {
            numa_node: 0,
            limits: vec![("memory".into(), "1124Mi".into())],
        }]),
        ..KubeletConfig::static_managers(policy, scope)
    }
}

fn container(name: &str, shape: Shape, rng: &mut Rng, scale: u64) -> serde_json::Value {
    let cpu = if rng.chance(10) {
        "500m".to_string()
    } else {
        rng.range(1, 6 * scale).to_string()
    };
    let mut limits = json!({"cpu": cpu, "memory": format!("{}Gi", rng.range(1, 12 * scale))});
    let names = ["hugepages-1Gi", "hugepages-2Mi", "hugepages-32Mi"];
    for (i, name) in names
        .iter()
        .enumerate()
        .take(shape.memory_types.saturating_sub(1))
    {
        if rng.chance(50) {
            let v = if i == 0 {
                format!("{}Gi", rng.range(1, 2 * scale))
            } else {
                format!("{}Mi", rng.range(1, 4 * scale) * 64)
            };
            limits[*name] = json!(v);
        }
    }
    json!({"name": name, "resources": {"limits": limits}})
}

/// A Guaranteed pod of one to three containers, sometimes with an init container.
/// `scale` grows the requests (larger machines get larger pods).
pub fn pod(i: usize, shape: Shape, rng: &mut Rng, scale: u64) -> PodInfo {
    let n = rng.range(1, 3);
    let cs: Vec<_> = (0..n)
        .map(|k| container(&format!("c{k}"), shape, rng, scale))
        .collect();
    let mut spec = json!({"containers": cs});
    if rng.chance(20) {
        spec["initContainers"] = json!([container("init", shape, rng, scale)]);
    }
    let p: Pod = serde_json::from_value(json!({
        "metadata": {"name": format!("p{i}"), "uid": format!("u{i}")}, "spec": spec,
    }))
    .expect("a valid pod");
    PodInfo::from_pod(&p, false).expect("a valid pod")
}

/// A filling-up sequence: mostly admissions, now and then a removal of a live pod.
#[derive(Debug, Clone)]
pub enum Op {
    Admit(PodInfo),
    /// Removes the k-th live pod (modulo their number).
    Remove(usize),
}

pub fn ops(steps: usize, shape: Shape, rng: &mut Rng) -> Vec<Op> {
    let scale = (shape.nodes as u64 / 8).clamp(1, 4);
    (0..steps)
        .map(|i| {
            if i > 3 && rng.chance(15) {
                Op::Remove(rng.next() as usize)
            } else {
                Op::Admit(pod(i, shape, rng, scale))
            }
        })
        .collect()
}

/// CPU time of the calling thread: what an admission costs the engine, without the time
/// the thread spends preempted on a shared machine (the harnesses time with it).
pub fn thread_cpu_time() -> std::time::Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec for the duration of the call, and
    // CLOCK_THREAD_CPUTIME_ID is a clock every Linux kernel since 2.6.12 provides; on
    // failure the call leaves `ts` as zero, which only gives a wrong (zero) reading.
    unsafe {
        libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts);
    }
    std::time::Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}
