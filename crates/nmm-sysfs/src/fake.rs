//! A synthetic sysfs tree for tests: describe nodes, CPUs, memory, hugepages, distances and
//! offline CPUs, then [`FakeSysfs::write_to`] a directory and point a
//! [`SysfsReader`](crate::SysfsReader) at it.
//!
//! The tree mirrors the kernel's: `sys/devices/system/cpu/cpu<M>/topology/{core_id,
//! physical_package_id}`, `sys/devices/system/cpu/{online,possible,present}`,
//! `sys/devices/system/node/node<N>/{cpu<M> -> ../../cpu/cpu<M>, cpulist, meminfo, distance,
//! hugepages/hugepages-<size>kB/nr_hugepages}`. Offline CPUs keep their directory (with
//! `online` = 0) but have no `topology/`, as on a live kernel.
//!
//! ```
//! use nmm_sysfs::{fake::{FakeNode, FakeSysfs}, SysfsReader};
//! let dir = tempfile::tempdir().unwrap();
//! FakeSysfs::new()
//!     .node(FakeNode::new(0).cpus([(0, 0, 0), (1, 0, 0)]).memory(4 << 30).hugepages(2 << 20, 512))
//!     .node(FakeNode::new(1).memory(8 << 30)) // memory-only node
//!     .write_to(dir.path())
//!     .unwrap();
//! let m = SysfsReader::new(dir.path()).read_machine().unwrap();
//! assert_eq!(m.nodes.len(), 2);
//! assert_eq!(m.nodes[0].hugepages[&(2 << 20)], 1 << 30);
//! ```

use nmm_core::cpuset::CpuSet;
use nmm_core::machine::Machine;
use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// One logical CPU of the fake tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FakeCpu {
    pub id: u32,
    pub core: u32,
    pub socket: u32,
}

impl Default for FakeSysfs {
    fn default() -> Self {
        FakeSysfs::new()
    }
}

/// One `node<N>` directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakeNode {
    pub id: u32,
    pub cpus: Vec<FakeCpu>,
    /// `MemTotal` in kB; `None` writes no `meminfo` file.
    pub mem_total_kb: Option<u64>,
    /// Page size in kB -> number of pages.
    pub hugepages: BTreeMap<u64, u64>,
    /// `None` writes no `distance` file.
    pub distances: Option<Vec<u64>>,
}

impl FakeNode {
    /// A node without CPUs, with `MemTotal: 0 kB`, no hugepages directory and no distance
    /// file ([`FakeSysfs::write_to`] fills in kernel-default distances unless told not to).
    pub fn new(id: u32) -> Self {
        FakeNode {
            id,
            cpus: Vec::new(),
            mem_total_kb: Some(0),
            hugepages: BTreeMap::new(),
            distances: None,
        }
    }

    /// Adds a CPU: `(id, core_id, physical_package_id)`.
    pub fn cpu(mut self, id: u32, core: u32, socket: u32) -> Self {
        self.cpus.push(FakeCpu { id, core, socket });
        self
    }

    /// Adds CPUs given as `(id, core_id, physical_package_id)`.
    pub fn cpus(mut self, cpus: impl IntoIterator<Item = (u32, u32, u32)>) -> Self {
        self.cpus.extend(
            cpus.into_iter()
                .map(|(id, core, socket)| FakeCpu { id, core, socket }),
        );
        self
    }

    /// MemTotal in bytes (rounded down to whole kB, as the kernel reports it).
    pub fn memory(mut self, bytes: u64) -> Self {
        self.mem_total_kb = Some(bytes / 1024);
        self
    }

    pub fn mem_total_kb(mut self, kb: u64) -> Self {
        self.mem_total_kb = Some(kb);
        self
    }

    /// No `meminfo` file at all.
    pub fn no_meminfo(mut self) -> Self {
        self.mem_total_kb = None;
        self
    }

    /// `nr_pages` pages of `page_size_bytes` (a multiple of 1024). A size with 0 pages still
    /// gets its directory, as on a live kernel.
    pub fn hugepages(mut self, page_size_bytes: u64, nr_pages: u64) -> Self {
        self.hugepages.insert(page_size_bytes / 1024, nr_pages);
        self
    }

    /// The node's `distance` row.
    pub fn distances(mut self, row: impl IntoIterator<Item = u64>) -> Self {
        self.distances = Some(row.into_iter().collect());
        self
    }
}

/// Builder of a whole fake sysfs tree.
#[derive(Debug, Clone)]
pub struct FakeSysfs {
    nodes: Vec<FakeNode>,
    /// CPUs under `devices/system/cpu` that no node links (for the no-NUMA fallback).
    loose_cpus: Vec<FakeCpu>,
    offline: CpuSet,
    no_online_file: bool,
    no_node_dir: bool,
    default_distances: bool,
    /// Raw overrides, relative to the `sys` directory; `None` deletes.
    files: Vec<(PathBuf, Option<String>)>,
}

impl FakeSysfs {
    /// An empty tree. Nodes without explicit distances get the kernel default row (10 to
    /// itself, 20 to others) unless [`FakeSysfs::no_default_distances`] is called.
    pub fn new() -> Self {
        FakeSysfs {
            nodes: Vec::new(),
            loose_cpus: Vec::new(),
            offline: CpuSet::new(),
            no_online_file: false,
            no_node_dir: false,
            default_distances: true,
            files: Vec::new(),
        }
    }

    /// `nodes` NUMA nodes, one socket each, `cores` cores per node with `threads` SMT threads,
    /// numbered like x86 Linux: thread `t` of core `c` of node `n` is CPU
    /// `t * nodes * cores + n * cores + c`, core id `c`. Every node has `memory` bytes.
    pub fn uniform(nodes: u32, cores: u32, threads: u32, memory: u64) -> Self {
        let mut f = FakeSysfs::new();
        for n in 0..nodes {
            let mut node = FakeNode::new(n).memory(memory);
            for t in 0..threads {
                for c in 0..cores {
                    node = node.cpu(t * nodes * cores + n * cores + c, c, n);
                }
            }
            f = f.node(node);
        }
        f
    }

    /// The tree a kernel would show for `m` (memory rounded down to kB, hugepage totals to
    /// whole pages). Reading it back gives `m` again when those are exact.
    pub fn from_machine(m: &Machine) -> Self {
        let mut f = FakeSysfs::new().no_default_distances();
        for n in &m.nodes {
            let mut node = FakeNode::new(n.id).memory(n.memory);
            for c in m.cpus.iter().filter(|c| c.numa == n.id) {
                node = node.cpu(c.id, c.core, c.socket);
            }
            for (&size, &total) in &n.hugepages {
                node = node.hugepages(size, total.checked_div(size).unwrap_or(0));
            }
            if !n.distances.is_empty() {
                node = node.distances(n.distances.iter().copied());
            }
            f = f.node(node);
        }
        f
    }

    pub fn node(mut self, node: FakeNode) -> Self {
        self.nodes.push(node);
        self
    }

    /// A CPU under `devices/system/cpu` that belongs to no node directory.
    pub fn cpu(mut self, id: u32, core: u32, socket: u32) -> Self {
        self.loose_cpus.push(FakeCpu { id, core, socket });
        self
    }

    /// Marks CPUs offline: left out of `cpu/online`, their `topology/` is not written.
    pub fn offline(mut self, cpus: impl IntoIterator<Item = u32>) -> Self {
        for c in cpus {
            self.offline.insert(c);
        }
        self
    }

    /// Writes no `cpu/online` file (a kernel without CPU hotplug: all CPUs online).
    pub fn no_online_file(mut self) -> Self {
        self.no_online_file = true;
        self
    }

    /// Writes no `devices/system/node` directory at all (kernel without NUMA support).
    pub fn no_node_dir(mut self) -> Self {
        self.no_node_dir = true;
        self
    }

    /// Nodes without explicit distances get no `distance` file.
    pub fn no_default_distances(mut self) -> Self {
        self.default_distances = false;
        self
    }

    /// Writes `contents` at `path` (relative to the `sys` directory, e.g.
    /// `devices/system/node/node0/meminfo`) after everything else, replacing what is there.
    pub fn file(mut self, path: impl Into<PathBuf>, contents: impl Into<String>) -> Self {
        self.files.push((path.into(), Some(contents.into())));
        self
    }

    /// A PCI function `bus/pci/devices/<address>` with these `numa_node`, `class`, `vendor`
    /// and `device` file contents (written as given, so tests can write bad ones).
    pub fn pci(
        self,
        address: &str,
        numa_node: &str,
        class: &str,
        vendor: &str,
        device: &str,
    ) -> Self {
        let d = format!("bus/pci/devices/{address}");
        self.file(format!("{d}/numa_node"), format!("{numa_node}\n"))
            .file(format!("{d}/class"), format!("{class}\n"))
            .file(format!("{d}/vendor"), format!("{vendor}\n"))
            .file(format!("{d}/device"), format!("{device}\n"))
    }

    /// Removes `path` (relative to the `sys` directory; a file or a whole directory) after
    /// everything else is written.
    pub fn remove(mut self, path: impl Into<PathBuf>) -> Self {
        self.files.push((path.into(), None));
        self
    }

    fn all_cpus(&self) -> Vec<FakeCpu> {
        let mut v: Vec<FakeCpu> = self
            .nodes
            .iter()
            .flat_map(|n| n.cpus.iter().copied())
            .chain(self.loose_cpus.iter().copied())
            .collect();
        v.sort_by_key(|c| c.id);
        v.dedup_by_key(|c| c.id);
        v
    }

    /// Writes the tree as `<root>/sys/devices/system/...`, so that `SysfsReader::new(root)`
    /// reads it.
    pub fn write_to(&self, root: &Path) -> io::Result<()> {
        let sys = root.join("sys");
        let system = sys.join("devices/system");
        let cpu_root = system.join("cpu");
        fs::create_dir_all(&cpu_root)?;

        let cpus = self.all_cpus();
        let all: CpuSet = cpus.iter().map(|c| c.id).collect();
        let online = all.difference(&self.offline);

        for c in &cpus {
            let dir = cpu_root.join(format!("cpu{}", c.id));
            fs::create_dir_all(&dir)?;
            let is_online = online.contains(c.id);
            fs::write(dir.join("online"), if is_online { "1\n" } else { "0\n" })?;
            if is_online {
                let topo = dir.join("topology");
                fs::create_dir_all(&topo)?;
                fs::write(topo.join("core_id"), format!("{}\n", c.core))?;
                fs::write(topo.join("physical_package_id"), format!("{}\n", c.socket))?;
                fs::write(topo.join("die_id"), "0\n")?;
            }
        }
        if !self.no_online_file {
            fs::write(cpu_root.join("online"), format!("{online}\n"))?;
        }
        fs::write(cpu_root.join("possible"), format!("{all}\n"))?;
        fs::write(cpu_root.join("present"), format!("{all}\n"))?;

        if !self.no_node_dir {
            let node_root = system.join("node");
            fs::create_dir_all(&node_root)?;
            let ids: CpuSet = self.nodes.iter().map(|n| n.id).collect();
            for f in ["online", "possible", "has_memory", "has_normal_memory"] {
                fs::write(node_root.join(f), format!("{ids}\n"))?;
            }
            let with_cpu: CpuSet = self
                .nodes
                .iter()
                .filter(|n| !n.cpus.is_empty())
                .map(|n| n.id)
                .collect();
            fs::write(node_root.join("has_cpu"), format!("{with_cpu}\n"))?;
            for n in &self.nodes {
                self.write_node(&node_root, n, &cpu_root)?;
            }
        }

        for (rel, contents) in &self.files {
            let p = sys.join(rel);
            match contents {
                Some(text) => {
                    if let Some(parent) = p.parent() {
                        fs::create_dir_all(parent)?;
                    }
                    fs::write(&p, text)?;
                }
                None => match fs::symlink_metadata(&p) {
                    Ok(md) if md.is_dir() => fs::remove_dir_all(&p)?,
                    Ok(_) => fs::remove_file(&p)?,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => return Err(e),
                },
            }
        }
        Ok(())
    }

    fn write_node(&self, node_root: &Path, n: &FakeNode, cpu_root: &Path) -> io::Result<()> {
        let dir = node_root.join(format!("node{}", n.id));
        fs::create_dir_all(&dir)?;
        let list: CpuSet = n.cpus.iter().map(|c| c.id).collect();
        fs::write(dir.join("cpulist"), format!("{list}\n"))?;
        for c in &n.cpus {
            link_cpu(cpu_root, c.id, &dir.join(format!("cpu{}", c.id)))?;
        }
        if let Some(kb) = n.mem_total_kb {
            let id = n.id;
            let hp_total: u64 = n.hugepages.values().sum();
            fs::write(
                dir.join("meminfo"),
                format!(
                    "Node {id} MemTotal:       {kb:>8} kB\n\
                     Node {id} MemFree:        {kb:>8} kB\n\
                     Node {id} MemUsed:        {:>8} kB\n\
                     Node {id} HugePages_Total: {hp_total:>5}\n",
                    0
                ),
            )?;
        }
        if !n.hugepages.is_empty() {
            for (kb, nr) in &n.hugepages {
                let hp = dir.join(format!("hugepages/hugepages-{kb}kB"));
                fs::create_dir_all(&hp)?;
                fs::write(hp.join("nr_hugepages"), format!("{nr}\n"))?;
                fs::write(hp.join("free_hugepages"), format!("{nr}\n"))?;
                fs::write(hp.join("surplus_hugepages"), "0\n")?;
            }
        }
        let row = match &n.distances {
            Some(row) => Some(row.clone()),
            None if self.default_distances => {
                // Kernel default without a SLIT table; indexed by online node order.
                let mut ids: Vec<u32> = self.nodes.iter().map(|m| m.id).collect();
                ids.sort_unstable();
                Some(
                    ids.iter()
                        .map(|&j| if j == n.id { 10 } else { 20 })
                        .collect(),
                )
            }
            None => None,
        };
        if let Some(row) = row {
            let text: Vec<String> = row.iter().map(u64::to_string).collect();
            fs::write(dir.join("distance"), format!("{}\n", text.join(" ")))?;
        }
        Ok(())
    }
}

/// `node<N>/cpu<M>` -> `../../cpu/cpu<M>`, a relative symlink as in a live sysfs (a copy of
/// the CPU directory where there are no symlinks).
#[cfg(unix)]
fn link_cpu(_cpu_root: &Path, id: u32, link: &Path) -> io::Result<()> {
    std::os::unix::fs::symlink(format!("../../cpu/cpu{id}"), link)
}

#[cfg(not(unix))]
fn link_cpu(cpu_root: &Path, id: u32, link: &Path) -> io::Result<()> {
    copy_dir(&cpu_root.join(format!("cpu{id}")), link)
}

#[cfg(not(unix))]
fn copy_dir(from: &Path, to: &Path) -> io::Result<()> {
    fs::create_dir_all(to)?;
    for e in fs::read_dir(from)? {
        let e = e?;
        let dest = to.join(e.file_name());
        if e.file_type()?.is_dir() {
            copy_dir(&e.path(), &dest)?;
        } else {
            fs::copy(e.path(), &dest)?;
        }
    }
    Ok(())
}
