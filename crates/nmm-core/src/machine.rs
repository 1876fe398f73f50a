//! The machine model: what cAdvisor's `MachineInfo` tells the kubelet about NUMA nodes,
//! CPUs, memory, hugepages and distances. Built by the scenario loader or the sysfs reader;
//! the managers only read it.

use crate::cpuset::CpuSet;
use std::collections::BTreeMap;

/// One logical CPU. `core` is the core id as sysfs reports it (`topology/core_id`): SMT
/// siblings share it, and it may repeat across sockets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cpu {
    pub id: u32,
    pub core: u32,
    pub socket: u32,
    pub numa: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NumaNode {
    pub id: u32,
    /// Logical CPUs of the node; empty for CPU-less (memory-only) nodes.
    pub cpus: CpuSet,
    /// MemTotal of the node in bytes (hugepages included, as the kernel reports it).
    pub memory: u64,
    /// Page size in bytes -> total bytes in pages of that size. A size listed with 0 bytes
    /// still exists (the kubelet keeps an all-zero table for it).
    pub hugepages: BTreeMap<u64, u64>,
    /// Distances from this node, indexed like the sysfs `distance` file.
    pub distances: Vec<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Machine {
    /// Sorted by id.
    pub nodes: Vec<NumaNode>,
    /// Every logical CPU, sorted by id.
    pub cpus: Vec<Cpu>,
}

/// The largest NUMA node id the engine can represent: the kubelet's NUMA bitmask holds bits
/// 0-63 (`bitmask.NewBitMask`: "bit number must be in range 0-63").
pub const MAX_NUMA_NODE_ID: u32 = 63;

/// The largest logical CPU id accepted (the cpulist parser's bound: a CPU set is a bitset,
/// so an id costs id/8 bytes; 2^20 CPUs is far beyond any machine).
pub const MAX_CPU_ID: u32 = (1 << 20) - 1;

/// Why a machine cannot be handed to the managers.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MachineLimitError {
    #[error("NUMA node id {0} is above {MAX_NUMA_NODE_ID}, the largest the kubelet's NUMA bitmask (and nmm) can represent")]
    NodeId(u32),
    #[error("CPU id {0} is above {MAX_CPU_ID}, the largest logical CPU id nmm accepts")]
    CpuId(u32),
    #[error("CPU {cpu} belongs to NUMA node {numa}, which is not one of the machine's nodes")]
    CpuNode { cpu: u32, numa: u32 },
    #[error("the NUMA nodes' memory adds up to more than 2^64 bytes")]
    MemoryOverflow,
}

impl Machine {
    /// Checks that every id is one the engine can represent, before anything sized by an
    /// id is allocated (the managers index tables by node id and mask nodes in 64 bits).
    pub fn check_limits(&self) -> Result<(), MachineLimitError> {
        if let Some(n) = self.nodes.iter().find(|n| n.id > MAX_NUMA_NODE_ID) {
            return Err(MachineLimitError::NodeId(n.id));
        }
        let mut total = 0u64;
        for n in &self.nodes {
            if let Some(c) = n.cpus.iter().find(|&c| c > MAX_CPU_ID) {
                return Err(MachineLimitError::CpuId(c));
            }
            let hp = n
                .hugepages
                .values()
                .try_fold(0u64, |a, &b| a.checked_add(b));
            total = hp
                .and_then(|_| total.checked_add(n.memory))
                .ok_or(MachineLimitError::MemoryOverflow)?;
        }
        for c in &self.cpus {
            if c.id > MAX_CPU_ID {
                return Err(MachineLimitError::CpuId(c.id));
            }
            if self.node(c.numa).is_none() {
                return Err(MachineLimitError::CpuNode {
                    cpu: c.id,
                    numa: c.numa,
                });
            }
        }
        Ok(())
    }

    pub fn node(&self, id: u32) -> Option<&NumaNode> {
        self.nodes.iter().find(|n| n.id == id)
    }

    pub fn node_ids(&self) -> Vec<u32> {
        self.nodes.iter().map(|n| n.id).collect()
    }

    pub fn all_cpus(&self) -> CpuSet {
        self.cpus.iter().map(|c| c.id).collect()
    }

    /// Distance from node `from` to node `to`, as the kubelet reads it: the `to`-th entry of
    /// `from`'s row. Missing entries read as 0 (the kubelet would index out of range).
    pub fn distance(&self, from: u32, to: u32) -> u64 {
        self.node(from)
            .and_then(|n| n.distances.get(to as usize).copied())
            .unwrap_or(0)
    }

    /// Every hugepage size present on any node, in bytes.
    pub fn hugepage_sizes(&self) -> Vec<u64> {
        let mut v: Vec<u64> = self
            .nodes
            .iter()
            .flat_map(|n| n.hugepages.keys().copied())
            .collect();
        v.sort_unstable();
        v.dedup();
        v
    }

    /// Kernel default distances (10 local, 20 remote) for a machine whose firmware gives
    /// no SLIT table.
    /// Ids above [`MAX_NUMA_NODE_ID`] are left out of the rows (check [`Machine::check_limits`]
    /// first; this never sizes a row by an unchecked id).
    pub fn default_distances(&mut self) {
        let ids = self.node_ids();
        let max = ids
            .iter()
            .copied()
            .filter(|&m| m <= MAX_NUMA_NODE_ID)
            .max()
            .map_or(0, |m| m as usize + 1);
        for n in &mut self.nodes {
            n.distances = (0..max)
                .map(|j| if j as u32 == n.id { 10 } else { 20 })
                .collect();
        }
    }
}

/// The resource name the kubelet gives a hugepage size: `hugepages-` + the canonical
/// binary quantity of the page size (2097152 -> `hugepages-2Mi`).
pub fn hugepage_resource_name(page_size_bytes: u64) -> String {
    format!(
        "hugepages-{}",
        crate::quantity::format_binary_bytes(page_size_bytes)
    )
}

impl Machine {
    /// A synthetic machine for benchmarks and examples: `cpu_nodes` NUMA nodes with
    /// `cores_per_node` two-thread cores each (sibling of CPU c is c + half the CPUs),
    /// followed by `memory_only_nodes` CPU-less nodes; one socket per 8 CPU nodes.
    pub fn synthetic(
        cpu_nodes: u32,
        cores_per_node: u32,
        memory_only_nodes: u32,
        memory: u64,
        hugepages_1g: u64,
    ) -> Machine {
        let mut m = Machine::default();
        let half = cpu_nodes * cores_per_node;
        for n in 0..cpu_nodes + memory_only_nodes {
            let mut cpus = CpuSet::new();
            if n < cpu_nodes {
                for k in 0..cores_per_node {
                    let core = n * cores_per_node + k;
                    for id in [core, core + half] {
                        cpus.insert(id);
                        m.cpus.push(Cpu {
                            id,
                            core,
                            socket: n / 8,
                            numa: n,
                        });
                    }
                }
            }
            let hugepages = if n < cpu_nodes && hugepages_1g > 0 {
                [(1u64 << 30, hugepages_1g)].into()
            } else {
                BTreeMap::new()
            };
            m.nodes.push(NumaNode {
                id: n,
                cpus,
                memory,
                hugepages,
                distances: Vec::new(),
            });
        }
        m.cpus.sort_by_key(|c| c.id);
        m.default_distances();
        m
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_refuse_unrepresentable_ids() {
        let mut m = Machine::synthetic(2, 1, 0, 1 << 30, 0);
        assert_eq!(m.check_limits(), Ok(()));
        m.nodes[1].id = 64;
        assert_eq!(m.check_limits(), Err(MachineLimitError::NodeId(64)));
        m.nodes[1].id = 4_000_000_000;
        let e = m.check_limits().unwrap_err();
        assert!(e.to_string().contains("4000000000 is above 63"), "{e}");
        // Never sized by the bad id.
        m.default_distances();
        assert_eq!(m.nodes[0].distances.len(), 1);

        let mut m = Machine::synthetic(1, 1, 0, 1 << 30, 0);
        m.cpus[0].numa = 7;
        assert_eq!(
            m.check_limits(),
            Err(MachineLimitError::CpuNode { cpu: 0, numa: 7 })
        );
        let mut m = Machine::synthetic(1, 1, 0, 1 << 30, 0);
        m.nodes[0].cpus.insert(MAX_CPU_ID + 1);
        assert_eq!(
            m.check_limits(),
            Err(MachineLimitError::CpuId(MAX_CPU_ID + 1))
        );
        let mut m = Machine::synthetic(2, 1, 0, u64::MAX, 0);
        assert_eq!(m.check_limits(), Err(MachineLimitError::MemoryOverflow));
        m.nodes[1].memory = 0;
        m.nodes[0].hugepages.insert(1 << 30, u64::MAX);
        m.nodes[0].hugepages.insert(2 << 20, 1);
        assert_eq!(m.check_limits(), Err(MachineLimitError::MemoryOverflow));
    }
}
