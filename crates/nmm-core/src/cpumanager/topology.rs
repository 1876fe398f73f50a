//! The CPU manager's view of the machine (`cpumanager/topology.Discover`): per logical CPU
//! its NUMA node, socket, core and uncore cache, plus the machine constants the packing
//! algorithms divide by.

use crate::cpuset::CpuSet;
use crate::machine::Machine;
use std::collections::{BTreeMap, BTreeSet};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CpuInfo {
    pub numa: u32,
    pub socket: u32,
    /// The kubelet's core id: the lowest logical CPU id of the core (so it is unique
    /// machine-wide even where sysfs core ids repeat across sockets).
    pub core: u32,
    /// Uncore (L3) cache id; the socket id when the machine model has no cache data.
    pub uncore: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CpuTopology {
    pub cpus: BTreeMap<u32, CpuInfo>,
    pub num_cpus: usize,
    pub num_cores: usize,
    pub num_sockets: usize,
    /// NUMA nodes that have CPUs.
    pub num_numa_nodes: usize,
    pub num_uncore_caches: usize,
}

impl CpuTopology {
    /// `Discover`: groups CPUs into cores by (NUMA node, socket, sysfs core id), as cAdvisor
    /// does per node.
    pub fn discover(machine: &Machine) -> Result<CpuTopology, String> {
        if machine.cpus.is_empty() {
            return Err("could not detect number of cpus".to_string());
        }
        let mut cores: BTreeMap<(u32, u32, u32), Vec<u32>> = BTreeMap::new();
        for c in &machine.cpus {
            cores
                .entry((c.numa, c.socket, c.core))
                .or_default()
                .push(c.id);
        }
        let mut cpus = BTreeMap::new();
        for ((numa, socket, _), threads) in &cores {
            let core = *threads.iter().min().expect("non-empty core");
            for &t in threads {
                cpus.insert(
                    t,
                    CpuInfo {
                        numa: *numa,
                        socket: *socket,
                        core,
                        uncore: *socket,
                    },
                );
            }
        }
        let sockets: BTreeSet<u32> = machine.cpus.iter().map(|c| c.socket).collect();
        let numas: BTreeSet<u32> = cpus.values().map(|c| c.numa).collect();
        let uncores: BTreeSet<u32> = cpus.values().map(|c| c.uncore).collect();
        Ok(CpuTopology {
            num_cpus: machine.cpus.len(),
            num_cores: cores.len(),
            num_sockets: sockets.len(),
            num_numa_nodes: numas.len(),
            num_uncore_caches: uncores.len(),
            cpus,
        })
    }

    pub fn cpus_per_core(&self) -> usize {
        div(self.num_cpus, self.num_cores)
    }
    pub fn cpus_per_socket(&self) -> usize {
        div(self.num_cpus, self.num_sockets)
    }
    pub fn cpus_per_uncore(&self) -> usize {
        div(self.num_cpus, self.num_uncore_caches)
    }

    pub fn all_cpus(&self) -> CpuSet {
        self.cpus.keys().copied().collect()
    }

    /// Ascending ids of NUMA nodes that have CPUs.
    pub fn numa_nodes(&self) -> Vec<u32> {
        let s: BTreeSet<u32> = self.cpus.values().map(|c| c.numa).collect();
        s.into_iter().collect()
    }

    pub fn cpus_in_numa_nodes(&self, nodes: impl Fn(u32) -> bool) -> CpuSet {
        self.cpus
            .iter()
            .filter(|(_, i)| nodes(i.numa))
            .map(|(&c, _)| c)
            .collect()
    }

    /// All CPUs sharing a core with any CPU of `set` (unknown ids are an error).
    pub fn core_siblings(&self, set: &CpuSet) -> Result<CpuSet, u32> {
        let mut cores = BTreeSet::new();
        for c in set.iter() {
            cores.insert(self.cpus.get(&c).ok_or(c)?.core);
        }
        Ok(self
            .cpus
            .iter()
            .filter(|(_, i)| cores.contains(&i.core))
            .map(|(&c, _)| c)
            .collect())
    }
}

fn div(a: usize, b: usize) -> usize {
    a.checked_div(b).unwrap_or(0)
}
