//! Direct cgroup enforcement, for nodes without NRI: the agent writes a container's
//! `cpuset.cpus` and `cpuset.mems` itself, with the values the kubelet would hand the
//! runtime (`containerConfig.Linux.Resources.CpusetCpus` / `CpusetMems`).
//!
//! Both cgroup versions: on cgroup v2 the files are in the unified hierarchy (the cpuset
//! controller enabled in the parents' `cgroup.subtree_control`); on cgroup v1 (and
//! hybrid hosts, where v1 controllers sit next to a v2 mount at
//! `/sys/fs/cgroup/unified`) in the cpuset hierarchy, usually `/sys/fs/cgroup/cpuset`.
//! Which one holds the cpuset controller is read from `/proc/self/mountinfo`
//! ([`find_cpuset_mount`], [`resolve_root`]): a controller is bound to at most one
//! hierarchy, so a mounted v1 cpuset hierarchy wins over a v2 mount.

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
    #[error("{path}: no cpuset.cpus here: this is not in the cgroup v1 cpuset hierarchy (pass its mount point, e.g. /sys/fs/cgroup/cpuset, as --cgroup-root)")]
    NotCpusetV1 { path: PathBuf },
    #[error("{path}: {message}")]
    Mountinfo { path: PathBuf, message: String },
    #[error("{path}: cannot write {value:?}: {source}")]
    Write {
        path: PathBuf,
        value: String,
        source: io::Error,
    },
}

/// The cgroup version of the hierarchy the cpuset controller is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CgroupVersion {
    V1,
    V2,
}

impl std::fmt::Display for CgroupVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            CgroupVersion::V1 => "v1",
            CgroupVersion::V2 => "v2",
        })
    }
}

/// Writes cpusets under a cgroup mount: the v2 unified hierarchy (`/sys/fs/cgroup`) or
/// the v1 cpuset hierarchy (`/sys/fs/cgroup/cpuset`), or a directory laid out like one
/// in tests.
#[derive(Debug, Clone)]
pub struct CgroupEnforcer {
    pub root: PathBuf,
    pub version: CgroupVersion,
}

impl CgroupEnforcer {
    /// The version is told by the root's files: a v2 root has `cgroup.controllers`, a v1
    /// cpuset root has `cpuset.cpus` and no `cgroup.controllers` (use [`resolve_root`]
    /// to find the root from the mount table).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        let root = root.into();
        let version =
            if !root.join("cgroup.controllers").exists() && root.join("cpuset.cpus").exists() {
                CgroupVersion::V1
            } else {
                CgroupVersion::V2
            };
        CgroupEnforcer { root, version }
    }

    pub fn with_version(root: impl Into<PathBuf>, version: CgroupVersion) -> Self {
        CgroupEnforcer {
            root: root.into(),
            version,
        }
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
                return Err(match self.version {
                    CgroupVersion::V2 => CgroupError::NoCpuset { path: dir },
                    CgroupVersion::V1 => CgroupError::NotCpusetV1 { path: dir },
                });
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

/// A cgroup mount from the mount table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CgroupMount {
    pub version: CgroupVersion,
    pub mount_point: PathBuf,
}

/// Undoes mountinfo's octal escapes (`\040` for a space, `\134` for a backslash, ...).
fn unescape(field: &str) -> String {
    let b = field.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            let v = (b[i + 1] - b'0') as u32 * 64
                + (b[i + 2] - b'0') as u32 * 8
                + (b[i + 3] - b'0') as u32;
            out.push(v as u8);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The cgroup mounts listed in a `/proc/PID/mountinfo` text: `(fstype, mount point,
/// super options)` of every `cgroup` and `cgroup2` line. Malformed lines are an error
/// naming the line.
fn cgroup_mounts(text: &str) -> Result<Vec<(String, PathBuf, Vec<String>)>, String> {
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let fields: Vec<&str> = line.split(' ').collect();
        let Some(sep) = fields.iter().position(|f| *f == "-") else {
            return Err(format!("line {}: no \" - \" separator: {line:?}", n + 1));
        };
        if sep < 6 || fields.len() < sep + 4 {
            return Err(format!("line {}: too few fields: {line:?}", n + 1));
        }
        let fstype = fields[sep + 1];
        if fstype != "cgroup" && fstype != "cgroup2" {
            continue;
        }
        let opts = fields[sep + 3].split(',').map(String::from).collect();
        out.push((fstype.to_string(), PathBuf::from(unescape(fields[4])), opts));
    }
    Ok(out)
}

/// The hierarchy holding the cpuset controller: the v1 `cpuset` hierarchy when one is
/// mounted (v1-only and hybrid hosts), else the cgroup v2 mount. `None` when neither is.
pub fn find_cpuset_mount(mountinfo: &str) -> Result<Option<CgroupMount>, String> {
    let mounts = cgroup_mounts(mountinfo)?;
    let v1 = mounts
        .iter()
        .find(|(t, _, o)| t == "cgroup" && o.iter().any(|x| x == "cpuset"));
    if let Some((_, p, _)) = v1 {
        return Ok(Some(CgroupMount {
            version: CgroupVersion::V1,
            mount_point: p.clone(),
        }));
    }
    // Several v2 mounts (bind mounts, a container's view): the shortest path.
    Ok(mounts
        .iter()
        .filter(|(t, _, _)| t == "cgroup2")
        .min_by_key(|(_, p, _)| p.as_os_str().len())
        .map(|(_, p, _)| CgroupMount {
            version: CgroupVersion::V2,
            mount_point: p.clone(),
        }))
}

/// The enforcer for `--cgroup-root DIR` on a host whose mount table is `mountinfo`
/// (read from `mountinfo_path`, named in errors). `DIR` may be the cpuset hierarchy's
/// mount point or a directory inside it, or the directory above it (`/sys/fs/cgroup` on
/// a v1 host, where the cpuset hierarchy is `/sys/fs/cgroup/cpuset`); anything else is an
/// error naming the mount point to use. `DIR = None`: the mount point itself.
pub fn resolve_root(
    dir: Option<&Path>,
    mountinfo: &str,
    mountinfo_path: &Path,
) -> Result<CgroupEnforcer, CgroupError> {
    let err = |message: String| CgroupError::Mountinfo {
        path: mountinfo_path.to_path_buf(),
        message,
    };
    let Some(m) = find_cpuset_mount(mountinfo).map_err(err)? else {
        return Err(err(
            "no cgroup v2 mount and no cgroup v1 cpuset hierarchy is mounted; mount one (or run without --cgroup-root, with NRI)".into(),
        ));
    };
    let root = match dir {
        None => m.mount_point.clone(),
        Some(d) if d.starts_with(&m.mount_point) => d.to_path_buf(),
        Some(d) if m.mount_point.starts_with(d) => m.mount_point.clone(),
        Some(d) => {
            return Err(err(format!(
                "--cgroup-root {}: the cpuset controller is on the cgroup {} hierarchy mounted at {}; pass that (or a directory inside it)",
                d.display(),
                m.version,
                m.mount_point.display()
            )))
        }
    };
    Ok(CgroupEnforcer::with_version(root, m.version))
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

    /// This build host's table: v1 controllers with a v2 mount at .../unified (hybrid).
    const HYBRID: &str = "\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
34 31 0:31 / /sys/fs/cgroup/cpuset rw,relatime - cgroup cgroup rw,cpuset
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";
    const UNIFIED: &str = "\
22 1 259:2 / / rw,relatime shared:1 - ext4 /dev/nvme0n1p2 rw
26 22 0:23 / /sys rw,nosuid,nodev,noexec,relatime shared:2 - sysfs sysfs rw
30 26 0:26 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot
";

    #[test]
    fn the_cpuset_hierarchy_from_mountinfo() {
        let p = Path::new("/proc/self/mountinfo");
        let e = resolve_root(None, HYBRID, p).unwrap();
        assert_eq!(e.version, CgroupVersion::V1);
        assert_eq!(e.root, Path::new("/sys/fs/cgroup/cpuset"));
        // The base directory is understood as the v1 cpuset hierarchy below it.
        let e = resolve_root(Some(Path::new("/sys/fs/cgroup")), HYBRID, p).unwrap();
        assert_eq!(e.root, Path::new("/sys/fs/cgroup/cpuset"));
        let e = resolve_root(Some(Path::new("/sys/fs/cgroup/cpuset/kubepods")), HYBRID, p).unwrap();
        assert_eq!(e.root, Path::new("/sys/fs/cgroup/cpuset/kubepods"));
        let e = resolve_root(Some(Path::new("/sys/fs/cgroup")), UNIFIED, p).unwrap();
        assert_eq!(
            (e.version, e.root.as_path()),
            (CgroupVersion::V2, Path::new("/sys/fs/cgroup"))
        );
        // A directory outside the hierarchy: the error names the mount point.
        let err = resolve_root(Some(Path::new("/sys/fs/cgroup/memory")), HYBRID, p)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("cgroup v1 hierarchy mounted at /sys/fs/cgroup/cpuset"),
            "{err}"
        );
        assert!(
            err.starts_with("/proc/self/mountinfo: --cgroup-root"),
            "{err}"
        );
        let err = resolve_root(None, "22 1 259:2 / / rw - ext4 /dev/x rw\n", p).unwrap_err();
        assert!(err.to_string().contains("no cgroup v2 mount"), "{err}");
        let err = resolve_root(None, "garbage line\n", p).unwrap_err();
        assert!(
            err.to_string().contains("line 1: no \" - \" separator"),
            "{err}"
        );
    }

    #[test]
    fn mount_points_are_unescaped() {
        let t = "1 2 0:1 / /mnt/cg\\040v1 rw - cgroup cgroup rw,cpuset,cpu\n";
        let m = find_cpuset_mount(t).unwrap().unwrap();
        assert_eq!(m.mount_point, Path::new("/mnt/cg v1"));
        assert_eq!(m.version, CgroupVersion::V1);
    }

    fn set() -> ContainerCpuset {
        ContainerCpuset {
            cpus: Some(CpuSet::from_ids([2, 3])),
            exclusive: true,
            mems: Some(vec![1]),
        }
    }

    /// A fake v1 cpuset tree (files exist in every cgroup of the hierarchy) and a fake
    /// v2 tree (cpuset files only where the controller is enabled).
    #[test]
    fn writes_on_fake_v1_and_v2_trees() {
        let d = tempfile::tempdir().unwrap();
        let v1 = d.path().join("cpuset");
        let ctr = v1.join("kubepods/podx/ctr");
        std::fs::create_dir_all(&ctr).unwrap();
        for dir in [&v1, &ctr] {
            std::fs::write(dir.join("cpuset.cpus"), "0-7\n").unwrap();
            std::fs::write(dir.join("cpuset.mems"), "0-1\n").unwrap();
        }
        let mountinfo = format!(
            "34 31 0:31 / {} rw,relatime - cgroup cgroup rw,cpuset\n",
            v1.display()
        );
        let e = resolve_root(Some(d.path()), &mountinfo, Path::new("mi")).unwrap();
        assert_eq!(e.version, CgroupVersion::V1);
        assert_eq!(CgroupEnforcer::new(&v1).version, CgroupVersion::V1);
        let written = e.apply(Path::new("/kubepods/podx/ctr"), &set()).unwrap();
        assert_eq!(written.len(), 2);
        assert_eq!(
            std::fs::read_to_string(ctr.join("cpuset.cpus")).unwrap(),
            "2-3\n"
        );
        assert_eq!(
            std::fs::read_to_string(ctr.join("cpuset.mems")).unwrap(),
            "1\n"
        );
        // Not a cpuset cgroup: the v1 message.
        std::fs::create_dir_all(v1.join("other")).unwrap();
        let err = e.apply(Path::new("other"), &set()).unwrap_err();
        assert!(matches!(err, CgroupError::NotCpusetV1 { .. }), "{err}");

        let v2 = d.path().join("unified");
        let ctr = v2.join("kubepods.slice/x.scope");
        std::fs::create_dir_all(&ctr).unwrap();
        std::fs::write(v2.join("cgroup.controllers"), "cpuset cpu memory\n").unwrap();
        let e = CgroupEnforcer::new(&v2);
        assert_eq!(e.version, CgroupVersion::V2);
        let err = e
            .apply(Path::new("kubepods.slice/x.scope"), &set())
            .unwrap_err();
        assert!(matches!(err, CgroupError::NoCpuset { .. }), "{err}");
        std::fs::write(ctr.join("cpuset.cpus"), "").unwrap();
        std::fs::write(ctr.join("cpuset.mems"), "").unwrap();
        e.apply(Path::new("kubepods.slice/x.scope"), &set())
            .unwrap();
        assert_eq!(
            std::fs::read_to_string(ctr.join("cpuset.cpus")).unwrap(),
            "2-3\n"
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
