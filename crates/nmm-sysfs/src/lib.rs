//! Reads a node's NUMA topology from sysfs into nmm's machine model
//! ([`nmm_core::machine::Machine`]), the way cAdvisor v0.51 (vendored by kubelet v1.32)
//! builds `MachineInfo.Topology`.
//!
//! # Where the tree is
//!
//! [`SysfsReader::new`] takes a *root*. The reader looks for `devices/system` in
//! `<root>/sys` first, then in `<root>` itself, so all of these work:
//!
//! * `/` — the running machine (`/sys/devices/system/...`);
//! * a directory that contains a captured `sys/` tree (the layout of the snapshots in
//!   `shared/fixtures/sysfs`, e.g. `sysfs/desktop` or `sample2` after extraction);
//! * the captured `sys` directory itself.
//!
//! # What is read (cAdvisor v0.51 `GetNodesInfo`)
//!
//! * Nodes: entries `node<N>` of `devices/system/node`, id `N`. The result is sorted by id
//!   (cAdvisor keeps the lexicographic glob order; the kubelet does not depend on it).
//! * CPUs of a node: its `cpu<M>` entries (symlinks to `devices/system/cpu/cpu<M>`); a CPU
//!   not in `devices/system/cpu/online` is skipped (no `online` file: every CPU is online).
//!   Per CPU `topology/core_id` and `topology/physical_package_id`; a CPU missing either file
//!   is skipped with a warning, as cAdvisor does. A node without CPUs is kept.
//! * Memory: `MemTotal:\s*([0-9]+) kB` in the node's `meminfo`, times 1024. No `meminfo`:
//!   0 bytes and a warning; a `meminfo` without a MemTotal line is an error.
//! * Hugepages: `hugepages/hugepages-<size>kB/nr_hugepages`; size -> `nr * size` bytes. No
//!   `hugepages` directory: none.
//! * Distances: the node's `distance` file as is (index k is the k-th online node in kernel
//!   order). No file: empty, with a warning.
//! * No node directories at all (kernel without NUMA): one pseudo-node per
//!   `physical_package_id` of the CPUs under `devices/system/cpu`, id = the package id, with
//!   no memory, hugepages or distances.
//!
//! Malformed files are reported as [`SysfsError`]s naming the file; nothing here panics on
//! file contents.

pub mod fake;
pub mod pci;

use nmm_core::cpuset::CpuSet;
use nmm_core::machine::{Cpu, Machine, NumaNode, MAX_CPU_ID, MAX_NUMA_NODE_ID};
use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// Hint appended to errors caused by file contents.
const TREE_HINT: &str = "is --sysfs-root pointing at an intact sysfs tree?";

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SysfsError {
    /// Neither `<root>/sys/devices/system` nor `<root>/devices/system` exists.
    #[error(
        "{}: no devices/system directory in it or in its sys/ subdirectory; --sysfs-root must \
         name a directory that contains sys/devices/system (\"/\" for this machine) or a sys \
         directory itself{}",
        .root.display(),
        did_you_mean(.candidates)
    )]
    NotSysfs {
        root: PathBuf,
        /// Subdirectories of `root` that do look like sysfs roots (e.g. the machines of an
        /// extracted snapshot archive).
        candidates: Vec<PathBuf>,
    },

    /// A file or directory exists (or must exist) but could not be read.
    #[error(
        "{}: cannot {action}: {error}; check that it exists and is readable by this user",
        .path.display()
    )]
    Io {
        path: PathBuf,
        action: &'static str,
        error: io::Error,
    },

    /// A file's contents are not what the kernel writes there.
    #[error("{}: {problem}; {TREE_HINT}", .path.display())]
    Malformed { path: PathBuf, problem: String },

    /// A node's `meminfo` has no `MemTotal: <n> kB` line.
    #[error("{}: no MemTotal line; is --sysfs-root pointing at a sysfs tree?", .path.display())]
    NoMemTotal { path: PathBuf },

    /// The same logical CPU is linked from two node directories.
    #[error(
        "{}: CPU {cpu} is listed under both node{first} and node{second}; a CPU belongs to \
         exactly one NUMA node, so this tree is inconsistent (re-capture it from a live \
         /sys)",
        .path.display()
    )]
    DuplicateCpu {
        path: PathBuf,
        cpu: u32,
        first: u32,
        second: u32,
    },

    /// No node directories, and no CPU with a readable package id to fall back on.
    #[error(
        "{}: no NUMA node directories (node<N>) and no CPU with a readable \
         topology/physical_package_id, so there is no topology to report; {TREE_HINT}",
        .path.display()
    )]
    NoTopology { path: PathBuf },
}

fn did_you_mean(candidates: &[PathBuf]) -> String {
    if candidates.is_empty() {
        return String::new();
    }
    let list: Vec<String> = candidates.iter().map(|p| p.display().to_string()).collect();
    format!(" (sysfs roots found inside it: {})", list.join(", "))
}

/// Reads the NUMA topology of a machine from a sysfs tree. See the crate docs for the root
/// layouts accepted and what is read.
#[derive(Debug, Clone)]
pub struct SysfsReader {
    root: PathBuf,
}

impl SysfsReader {
    /// `root` is `/` for the running machine, or a directory holding a captured `sys/` tree,
    /// or the captured `sys` directory itself.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        SysfsReader { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The `sys` directory this reader uses: `<root>/sys` when it has `devices/system`,
    /// else `<root>` when it has `devices/system`.
    pub fn sys_dir(&self) -> Result<PathBuf, SysfsError> {
        if let Some(s) = sys_dir_of(&self.root) {
            return Ok(s);
        }
        let mut candidates = Vec::new();
        if let Ok(rd) = fs::read_dir(&self.root) {
            for e in rd.flatten() {
                let p = e.path();
                if sys_dir_of(&p).is_some() {
                    candidates.push(p);
                }
            }
        }
        candidates.sort();
        Err(SysfsError::NotSysfs {
            root: self.root.clone(),
            candidates,
        })
    }

    /// The PCI devices worth listing for `machine.devices`, with their NUMA nodes (see
    /// [`pci`]).
    pub fn read_pci_devices(&self) -> Result<pci::PciListing, SysfsError> {
        pci::read_pci(&self.sys_dir()?)
    }

    /// Reads the machine. Warnings (skipped CPUs, missing optional files) are dropped; use
    /// [`SysfsReader::read_machine_with_warnings`] to show them.
    pub fn read_machine(&self) -> Result<Machine, SysfsError> {
        self.read_machine_with_warnings().map(|(m, _)| m)
    }

    /// Reads the machine and returns, along with it, the warnings cAdvisor would log
    /// (each one names the file concerned).
    pub fn read_machine_with_warnings(&self) -> Result<(Machine, Vec<String>), SysfsError> {
        let sys = self.sys_dir()?;
        let mut r = Reading {
            warnings: Vec::new(),
        };
        let machine = r.machine(&sys)?;
        Ok((machine, r.warnings))
    }
}

fn sys_dir_of(root: &Path) -> Option<PathBuf> {
    let with_sys = root.join("sys");
    if with_sys.join("devices/system").is_dir() {
        return Some(with_sys);
    }
    if root.join("devices/system").is_dir() {
        return Some(root.to_path_buf());
    }
    None
}

/// State of one read: the warnings collected so far.
struct Reading {
    warnings: Vec<String>,
}

impl Reading {
    fn warn(&mut self, msg: String) {
        self.warnings.push(msg);
    }

    fn machine(&mut self, sys: &Path) -> Result<Machine, SysfsError> {
        let system = sys.join("devices/system");
        let node_root = system.join("node");
        let cpu_root = system.join("cpu");
        let online = read_online(&cpu_root.join("online"))?;

        let node_dirs = if node_root.is_dir() {
            numbered_entries(&node_root, "node")?
        } else {
            Vec::new()
        };
        // Refuse ids the engine cannot represent before reading (or sizing) anything by them.
        if let Some((id, dir)) = node_dirs.iter().find(|(id, _)| *id > MAX_NUMA_NODE_ID) {
            return Err(SysfsError::Malformed {
                path: dir.clone(),
                problem: format!(
                    "NUMA node id {id} is above {MAX_NUMA_NODE_ID}, the largest the kubelet's \
                     NUMA bitmask (and nmm) can represent"
                ),
            });
        }
        if node_dirs.is_empty() {
            self.warn(format!(
                "{}: no NUMA node directories; reporting one pseudo-node per CPU socket, \
                 without memory, hugepages or distances",
                node_root.display()
            ));
            return self.fallback_by_socket(&cpu_root, online.as_ref());
        }

        let mut nodes = Vec::with_capacity(node_dirs.len());
        let mut cpus: BTreeMap<u32, Cpu> = BTreeMap::new();
        for (id, dir) in &node_dirs {
            let (node, node_cpus) = self.node(*id, dir, online.as_ref())?;
            for c in node_cpus {
                if let Some(prev) = cpus.get(&c.id) {
                    return Err(SysfsError::DuplicateCpu {
                        path: dir.join(format!("cpu{}", c.id)),
                        cpu: c.id,
                        first: prev.numa,
                        second: *id,
                    });
                }
                cpus.insert(c.id, c);
            }
            nodes.push(node);
        }
        nodes.sort_by_key(|n| n.id);
        let machine = Machine {
            nodes,
            cpus: cpus.into_values().collect(),
        };
        machine.check_limits().map_err(|e| SysfsError::Malformed {
            path: node_root.clone(),
            problem: e.to_string(),
        })?;
        Ok(machine)
    }

    fn node(
        &mut self,
        id: u32,
        dir: &Path,
        online: Option<&CpuSet>,
    ) -> Result<(NumaNode, Vec<Cpu>), SysfsError> {
        let mut cpus = Vec::new();
        for (cpu_id, cpu_dir) in numbered_entries(dir, "cpu")? {
            check_cpu_id(cpu_id, &cpu_dir)?;
            if online.is_some_and(|o| !o.contains(cpu_id)) {
                continue;
            }
            if let Some((core, socket)) = self.cpu_topology(&cpu_dir)? {
                cpus.push(Cpu {
                    id: cpu_id,
                    core,
                    socket,
                    numa: id,
                });
            }
        }
        if cpus.is_empty() {
            // cAdvisor: "Found node without any CPU" — kept (memory-only nodes, e.g. PMEM/CXL).
            self.warn(format!(
                "{}: node without any online CPU (memory-only node)",
                dir.display()
            ));
        }
        let memory = self.mem_total(&dir.join("meminfo"))?;
        let hugepages = hugepages(&dir.join("hugepages"))?;
        let distances = self.distances(&dir.join("distance"))?;
        let node = NumaNode {
            id,
            cpus: cpus.iter().map(|c| c.id).collect(),
            memory,
            hugepages,
            distances,
        };
        Ok((node, cpus))
    }

    /// `(core_id, physical_package_id)` of a CPU directory, or `None` (with a warning) when
    /// either file is missing.
    fn cpu_topology(&mut self, cpu_dir: &Path) -> Result<Option<(u32, u32)>, SysfsError> {
        let core_path = cpu_dir.join("topology/core_id");
        let Some(core_raw) = read_optional(&core_path)? else {
            self.warn(format!(
                "{}: missing; CPU skipped (it has no topology, as offline CPUs do)",
                core_path.display()
            ));
            return Ok(None);
        };
        let pkg_path = cpu_dir.join("topology/physical_package_id");
        let Some(pkg_raw) = read_optional(&pkg_path)? else {
            self.warn(format!(
                "{}: missing; CPU skipped (it has no topology, as offline CPUs do)",
                pkg_path.display()
            ));
            return Ok(None);
        };
        let core = parse_int(&core_path, &core_raw)?;
        let core = u32::try_from(core).map_err(|_| SysfsError::Malformed {
            path: core_path.clone(),
            problem: format!("core id {core} is not a non-negative 32-bit number"),
        })?;
        let pkg = parse_int(&pkg_path, &pkg_raw)?;
        let socket = match u32::try_from(pkg) {
            Ok(s) => s,
            Err(_) if pkg == -1 => {
                // Some ARM kernels without a PPTT table report -1 for every CPU; the kubelet
                // would see one socket "-1". Relabel it socket 0.
                self.warn(format!(
                    "{}: package id -1 (firmware gives none); using socket 0",
                    pkg_path.display()
                ));
                0
            }
            Err(_) => {
                return Err(SysfsError::Malformed {
                    path: pkg_path,
                    problem: format!("package id {pkg} is not a non-negative 32-bit number"),
                })
            }
        };
        Ok(Some((core, socket)))
    }

    fn mem_total(&mut self, path: &Path) -> Result<u64, SysfsError> {
        let Some(text) = read_optional(path)? else {
            self.warn(format!(
                "{}: missing; node memory taken as 0 (cAdvisor: \"Found node without memory \
                 information\")",
                path.display()
            ));
            return Ok(0);
        };
        let kb = find_mem_total_kb(&text).ok_or_else(|| SysfsError::NoMemTotal {
            path: path.to_path_buf(),
        })?;
        let kb: u64 = kb.parse().map_err(|_| SysfsError::Malformed {
            path: path.to_path_buf(),
            problem: format!("MemTotal {kb} kB does not fit in 64 bits"),
        })?;
        kb.checked_mul(1024).ok_or_else(|| SysfsError::Malformed {
            path: path.to_path_buf(),
            problem: format!("MemTotal {kb} kB overflows 64 bits in bytes"),
        })
    }

    fn distances(&mut self, path: &Path) -> Result<Vec<u64>, SysfsError> {
        let Some(text) = read_optional(path)? else {
            self.warn(format!("{}: missing; no distances", path.display()));
            return Ok(Vec::new());
        };
        text.split_whitespace()
            .map(|w| match w.parse::<u64>() {
                Ok(d) if d <= u32::MAX as u64 => Ok(d),
                Ok(d) => Err(SysfsError::Malformed {
                    path: path.to_path_buf(),
                    problem: format!(
                        "distance {d} is above {} (the kernel's are 10 to 255)",
                        u32::MAX
                    ),
                }),
                Err(_) => Err(SysfsError::Malformed {
                    path: path.to_path_buf(),
                    problem: format!("cannot convert {w:?} to a distance (unsigned integer)"),
                }),
            })
            .collect()
    }

    /// No node directories: cAdvisor's `getCPUTopology`, one node per physical package.
    fn fallback_by_socket(
        &mut self,
        cpu_root: &Path,
        online: Option<&CpuSet>,
    ) -> Result<Machine, SysfsError> {
        let entries = if cpu_root.is_dir() {
            numbered_entries(cpu_root, "cpu")?
        } else {
            Vec::new()
        };
        let mut sockets: BTreeMap<u32, Vec<Cpu>> = BTreeMap::new();
        for (cpu_id, dir) in entries {
            check_cpu_id(cpu_id, &dir)?;
            let pkg_path = dir.join("topology/physical_package_id");
            if !pkg_path.exists() {
                // cAdvisor reads the package id of every CPU, online or not; a CPU without
                // one is left out (offline CPUs typically have no topology/ directory).
                if online.is_none_or(|o| o.contains(cpu_id)) {
                    self.warn(format!("{}: missing; CPU skipped", pkg_path.display()));
                }
                continue;
            }
            if online.is_some_and(|o| !o.contains(cpu_id)) {
                let pkg = parse_int(&pkg_path, &read_file(&pkg_path)?)?;
                let socket = u32::try_from(pkg).unwrap_or(0);
                check_pseudo_node_id(socket, &pkg_path)?;
                sockets.entry(socket).or_default();
                continue;
            }
            if let Some((core, socket)) = self.cpu_topology(&dir)? {
                check_pseudo_node_id(socket, &pkg_path)?;
                sockets.entry(socket).or_default().push(Cpu {
                    id: cpu_id,
                    core,
                    socket,
                    numa: socket,
                });
            }
        }
        if sockets.is_empty() {
            return Err(SysfsError::NoTopology {
                path: cpu_root.to_path_buf(),
            });
        }
        let mut machine = Machine::default();
        for (socket, cpus) in sockets {
            machine.nodes.push(NumaNode {
                id: socket,
                cpus: cpus.iter().map(|c| c.id).collect(),
                memory: 0,
                hugepages: BTreeMap::new(),
                distances: Vec::new(),
            });
            machine.cpus.extend(cpus);
        }
        machine.cpus.sort_by_key(|c| c.id);
        Ok(machine)
    }
}

/// A CPU directory whose number no CPU set can hold without gigabytes of bitset.
fn check_cpu_id(id: u32, dir: &Path) -> Result<(), SysfsError> {
    if id > MAX_CPU_ID {
        return Err(SysfsError::Malformed {
            path: dir.to_path_buf(),
            problem: format!("CPU id {id} is above {MAX_CPU_ID}, the largest nmm accepts"),
        });
    }
    Ok(())
}

/// Without node directories a package id becomes a NUMA node id, with the same limit.
fn check_pseudo_node_id(socket: u32, pkg_path: &Path) -> Result<(), SysfsError> {
    if socket > MAX_NUMA_NODE_ID {
        return Err(SysfsError::Malformed {
            path: pkg_path.to_path_buf(),
            problem: format!(
                "package id {socket} would be NUMA node {socket} (no node directories), above \
                 {MAX_NUMA_NODE_ID}, the largest the kubelet's NUMA bitmask (and nmm) can \
                 represent"
            ),
        });
    }
    Ok(())
}

/// `<dir>/hugepages/hugepages-<size>kB/nr_hugepages` -> page size bytes -> total bytes.
fn hugepages(dir: &Path) -> Result<BTreeMap<u64, u64>, SysfsError> {
    let mut out = BTreeMap::new();
    let rd = match fs::read_dir(dir) {
        Ok(rd) => rd,
        // Kernels and machines can be configured without hugepage support.
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(out),
        Err(error) => {
            return Err(SysfsError::Io {
                path: dir.to_path_buf(),
                action: "list the directory",
                error,
            })
        }
    };
    for e in rd {
        let e = e.map_err(|error| SysfsError::Io {
            path: dir.to_path_buf(),
            action: "list the directory",
            error,
        })?;
        let name = e.file_name();
        let name = name.to_string_lossy();
        let entry = dir.join(&*name);
        let size_kb = name
            .strip_prefix("hugepages-")
            .and_then(|s| s.strip_suffix("kB"))
            .filter(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|s| s.parse::<u64>().ok())
            .ok_or_else(|| SysfsError::Malformed {
                path: entry.clone(),
                problem: "not named hugepages-<size>kB".to_string(),
            })?;
        let nr_path = entry.join("nr_hugepages");
        let raw = read_file(&nr_path)?;
        let nr = leading_uint(&raw).ok_or_else(|| SysfsError::Malformed {
            path: nr_path.clone(),
            problem: format!("could not parse a page count from {:?}", raw.trim()),
        })?;
        let total = size_kb
            .checked_mul(1024)
            .and_then(|size| nr.checked_mul(size).map(|t| (size, t)))
            .ok_or_else(|| SysfsError::Malformed {
                path: nr_path.clone(),
                problem: format!("{nr} pages of {size_kb} kB overflow 64 bits"),
            })?;
        out.insert(total.0, total.1);
    }
    Ok(out)
}

/// Entries `<prefix><digits>` of a directory, sorted by number.
fn numbered_entries(dir: &Path, prefix: &str) -> Result<Vec<(u32, PathBuf)>, SysfsError> {
    let io_err = |error| SysfsError::Io {
        path: dir.to_path_buf(),
        action: "list the directory",
        error,
    };
    let mut out = Vec::new();
    for e in fs::read_dir(dir).map_err(io_err)? {
        let e = e.map_err(io_err)?;
        let name = e.file_name();
        let Some(name) = name.to_str() else { continue };
        let Some(num) = name.strip_prefix(prefix) else {
            continue;
        };
        if num.is_empty() || !num.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        let id = num.parse::<u32>().map_err(|_| SysfsError::Malformed {
            path: dir.join(name),
            problem: format!("id {num} does not fit in 32 bits"),
        })?;
        out.push((id, dir.join(name)));
    }
    out.sort();
    Ok(out)
}

/// The `online` CPU list; `None` when the file does not exist (no CPU hotplug: all online).
fn read_online(path: &Path) -> Result<Option<CpuSet>, SysfsError> {
    let Some(text) = read_optional(path)? else {
        return Ok(None);
    };
    let list = text.trim();
    if list.is_empty() {
        return Err(SysfsError::Malformed {
            path: path.to_path_buf(),
            problem: "empty CPU list (at least one CPU is always online)".to_string(),
        });
    }
    CpuSet::parse(list)
        .map(Some)
        .map_err(|e| SysfsError::Malformed {
            path: path.to_path_buf(),
            problem: format!("not a CPU list ({e})"),
        })
}

fn read_file(path: &Path) -> Result<String, SysfsError> {
    fs::read(path)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .map_err(|error| SysfsError::Io {
            path: path.to_path_buf(),
            action: "read the file",
            error,
        })
}

/// Reads a file, `None` when it does not exist.
fn read_optional(path: &Path) -> Result<Option<String>, SysfsError> {
    match fs::read(path) {
        Ok(b) => Ok(Some(String::from_utf8_lossy(&b).into_owned())),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(error) => Err(SysfsError::Io {
            path: path.to_path_buf(),
            action: "read the file",
            error,
        }),
    }
}

/// A signed integer file (`core_id`, `physical_package_id`), like Go's `strconv.Atoi` of the
/// trimmed contents.
fn parse_int(path: &Path, raw: &str) -> Result<i64, SysfsError> {
    let t = raw.trim();
    t.parse::<i64>().map_err(|_| SysfsError::Malformed {
        path: path.to_path_buf(),
        problem: format!("{t:?} is not an integer"),
    })
}

/// The first unsigned integer at the start of the text (after whitespace), like
/// `fmt.Sscanf(s, "%d", &n)` as cAdvisor reads `nr_hugepages`.
fn leading_uint(raw: &str) -> Option<u64> {
    let t = raw.trim_start();
    let t = t.strip_prefix('+').unwrap_or(t);
    let end = t.bytes().take_while(u8::is_ascii_digit).count();
    if end == 0 {
        return None;
    }
    t[..end].parse().ok()
}

/// The digits of the first match of `MemTotal:\s*([0-9]+) kB`.
fn find_mem_total_kb(text: &str) -> Option<&str> {
    let mut rest = text;
    while let Some(i) = rest.find("MemTotal:") {
        let after = &rest[i + "MemTotal:".len()..];
        let num = after.trim_start();
        let n = num.bytes().take_while(u8::is_ascii_digit).count();
        if n > 0 && num[n..].starts_with(" kB") {
            return Some(&num[..n]);
        }
        rest = after;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mem_total_regex_equivalent() {
        assert_eq!(
            find_mem_total_kb("Node 0 MemTotal:       32404120 kB\nNode 0 MemFree: 1 kB\n"),
            Some("32404120")
        );
        assert_eq!(find_mem_total_kb("MemTotal:\n  5 kB"), Some("5"));
        assert_eq!(find_mem_total_kb("MemTotal: x\nMemTotal: 7 kB"), Some("7"));
        assert_eq!(find_mem_total_kb("MemTotal: 5 MB"), None);
        assert_eq!(find_mem_total_kb("MemFree: 5 kB"), None);
        assert_eq!(find_mem_total_kb(""), None);
    }

    #[test]
    fn sscanf_like_page_counts() {
        assert_eq!(leading_uint("2560\n"), Some(2560));
        assert_eq!(leading_uint("  0"), Some(0));
        assert_eq!(leading_uint("12abc"), Some(12));
        assert_eq!(leading_uint("abc"), None);
        assert_eq!(leading_uint(""), None);
        assert_eq!(leading_uint("99999999999999999999999"), None);
    }
}
