//! Direct cgroup v2 enforcement, for nodes without NRI: the agent writes a container's
//! `cpuset.cpus` and `cpuset.mems` itself, with the values the kubelet would hand the
//! runtime (`containerConfig.Linux.Resources.CpusetCpus` / `CpusetMems`).

use nmm_core::cpuset::CpuSet;
use std::io::{self, Write};
use std::path::{Component, Path, PathBuf};

/// What a container's cpuset should hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerCpuset {
    /// `None` under the CPU Manager's `none` policy: the kubelet leaves the cpuset to the
    /// runtime and so does the agent.
    pub cpus: Option<CpuSet>,
    /// The CPUs are the container's own (static policy, integer request of a Guaranteed
    /// pod); otherwise they are the shared pool, which changes as pods come and go.
    pub exclusive: bool,
    /// NUMA nodes of the container's memory blocks, ascending; `None` when the Memory
    /// Manager holds no blocks for it (the kubelet then leaves `cpuset.mems` alone).
    pub mems: Option<Vec<u32>>,
}

impl ContainerCpuset {
    /// `cpuset.cpus` text: the Linux list format (`0-3,8`).
    pub fn cpus_text(&self) -> Option<String> {
        self.cpus.as_ref().map(|c| c.to_string())
    }

    /// `cpuset.mems` text as the kubelet builds it: NUMA ids joined with `,` (`0,1`).
    pub fn mems_text(&self) -> Option<String> {
        self.mems.as_ref().map(|m| {
            m.iter()
                .map(|n| n.to_string())
                .collect::<Vec<_>>()
                .join(",")
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    #[error("cgroup path {0:?} must be relative to the cgroup root and must not contain `..`")]
    BadPath(PathBuf),
    #[error("{0}: no such cgroup")]
    NoCgroup(PathBuf),
    #[error("{path}: the cpuset controller is not enabled for this cgroup (add +cpuset to the parent's cgroup.subtree_control)")]
    NoCpuset { path: PathBuf },
    #[error("{path}: cannot write {value:?}: {source}")]
    Write {
        path: PathBuf,
        value: String,
        source: io::Error,
    },
}

/// Writes cpusets under a cgroup v2 mount (`/sys/fs/cgroup`, or a directory laid out
/// like it in tests).
#[derive(Debug, Clone)]
pub struct CgroupEnforcer {
    pub root: PathBuf,
}

impl CgroupEnforcer {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        CgroupEnforcer { root: root.into() }
    }

    /// The directory of the cgroup `cgroup` (relative to the root; a leading `/` is
    /// accepted, as in `/proc/PID/cgroup`).
    pub fn cgroup_dir(&self, cgroup: &Path) -> Result<PathBuf, CgroupError> {
        let mut dir = self.root.clone();
        for c in cgroup.components() {
            match c {
                Component::RootDir | Component::CurDir => {}
                Component::Normal(n) => dir.push(n),
                Component::ParentDir | Component::Prefix(_) => {
                    return Err(CgroupError::BadPath(cgroup.to_path_buf()))
                }
            }
        }
        Ok(dir)
    }

    /// Writes `cpuset.cpus` then `cpuset.mems` of the cgroup (each only when the value is
    /// known; see [`ContainerCpuset`]). Returns the files written.
    pub fn apply(&self, cgroup: &Path, set: &ContainerCpuset) -> Result<Vec<PathBuf>, CgroupError> {
        let dir = self.cgroup_dir(cgroup)?;
        if !dir.is_dir() {
            return Err(CgroupError::NoCgroup(dir));
        }
        let mut written = Vec::new();
        for (file, value) in [
            ("cpuset.cpus", set.cpus_text()),
            ("cpuset.mems", set.mems_text()),
        ] {
            let Some(value) = value else { continue };
            let path = dir.join(file);
            if !path.exists() {
                return Err(CgroupError::NoCpuset { path: dir });
            }
            write_control(&path, &value).map_err(|source| CgroupError::Write {
                path: path.clone(),
                value: value.clone(),
                source,
            })?;
            written.push(path);
        }
        Ok(written)
    }
}

/// A cgroup control file takes one write(2) of the whole value; no temp file or rename
/// (cgroupfs has neither).
fn write_control(path: &Path, value: &str) -> io::Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(path)?;
    f.write_all(format!("{value}\n").as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_paths_leaving_the_root() {
        let e = CgroupEnforcer::new("/sys/fs/cgroup");
        assert!(matches!(
            e.cgroup_dir(Path::new("kubepods/../../etc")),
            Err(CgroupError::BadPath(_))
        ));
        assert_eq!(
            e.cgroup_dir(Path::new("/kubepods.slice/x.scope")).unwrap(),
            Path::new("/sys/fs/cgroup/kubepods.slice/x.scope")
        );
    }

    #[test]
    fn texts() {
        let s = ContainerCpuset {
            cpus: Some(CpuSet::from_ids([0, 1, 2, 3, 8])),
            exclusive: true,
            mems: Some(vec![0, 1]),
        };
        assert_eq!(s.cpus_text().unwrap(), "0-3,8");
        assert_eq!(s.mems_text().unwrap(), "0,1");
    }
}
