//! The kubelet's devices, read-only, for the PodResources `devices` fields.
//!
//! The agent never allocates devices: the kubelet's Device Manager does that in every
//! deployment mode (`cpuManagerPolicy: none` does not switch it off), and a choice of the
//! agent's own could differ from the kubelet's. So the device view is assembled from two
//! inputs the agent only reads:
//!
//! * the device plugins' devices ([`DeviceOptions::registered`], `machine.devices` of the
//!   machine file): healthy or not, with their NUMA nodes. `GetAllocatableResources`
//!   reports the healthy ones;
//! * the kubelet's `device-plugins/kubelet_internal_checkpoint` under its root directory
//!   ([`DeviceOptions::checkpoint`]): which container holds which devices, under the NUMA
//!   nodes the kubelet recorded at allocation (what the kubelet's own `List` reports).
//!   Resources the checkpoint registers but `machine.devices` does not name count as
//!   registered, their devices healthy and without topology (no checkpoint records the
//!   plugins' topology).
//!
//! [`KubeletDevices::refresh`] looks at the checkpoint again (one `stat`; the file is read
//! and decoded, checksum verified, only when its identity, size or times changed). A
//! missing file means no allocations. A file that cannot be used (a bad checksum,
//! malformed JSON, over [`MAX_CHECKPOINT_BYTES`], unreadable) changes nothing: the last
//! good view stays, a warning names the file and what to do, and
//! `nmm_device_checkpoint_read_errors_total` counts it (once per version of the file).

use crate::metrics::Metrics;
use nmm_core::checkpoint::device::{self, DeviceCheckpoint};
use nmm_core::devicemanager::{Device, DeviceManager, STATE_FILE};
use nmm_core::machine::Machine;
use std::collections::BTreeSet;
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// The largest device checkpoint read: 16 MiB. The kubelet's file holds one entry per
/// container and device resource with the plugin's `Allocate` response (environment,
/// mounts, device nodes: typically well under 2 KiB): 250 pods of 5 containers with two
/// device resources each stay under 4 MiB. Reading a file costs about 5 times its size in
/// memory for a moment (JSON tree, the decoded responses twice for the checksum), so the
/// limit keeps that under 100 MiB (docs/BENCHMARKS.md).
pub const MAX_CHECKPOINT_BYTES: u64 = 16 << 20;

/// The kubelet's default root directory (`--root-dir`).
pub const DEFAULT_KUBELET_ROOT_DIR: &str = "/var/lib/kubelet";

/// Where the device view comes from. The default reads nothing: no devices.
#[derive(Debug, Clone, Default)]
pub struct DeviceOptions {
    /// The device plugins' devices (`machine.devices`), healthy or not.
    pub registered: Vec<Device>,
    /// The kubelet's device checkpoint; `None`: not read (no allocations).
    pub checkpoint: Option<PathBuf>,
}

impl DeviceOptions {
    /// `registered`, and the checkpoint under the kubelet's root directory `root`
    /// (`ROOT/device-plugins/kubelet_internal_checkpoint`).
    pub fn kubelet_root(root: &Path, registered: Vec<Device>) -> DeviceOptions {
        DeviceOptions {
            registered,
            checkpoint: Some(root.join(STATE_FILE)),
        }
    }
}

/// What the last look at the checkpoint found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckpointStatus {
    /// No checkpoint configured.
    NotRead,
    /// The file does not exist: no allocations.
    Missing,
    /// Read and verified: this many pods hold devices.
    Loaded { pods: usize },
    /// The file cannot be used (the text says why); the last good view is kept.
    Rejected(String),
}

/// What [`KubeletDevices::refresh`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refresh {
    /// The file is as last seen (or no checkpoint is configured).
    Unchanged,
    /// The view changed: a new checkpoint was loaded, or the file went away.
    Updated,
    /// The file changed but cannot be used; the last good view stays.
    Rejected,
}

/// A file's identity and version, as `stat` gives them: a checkpoint replaced by
/// rename gets a new inode, one rewritten in place a new size or times.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    dev: u64,
    ino: u64,
    len: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

impl Stamp {
    fn of(m: &std::fs::Metadata) -> Stamp {
        Stamp {
            dev: m.dev(),
            ino: m.ino(),
            len: m.len(),
            mtime: (m.mtime(), m.mtime_nsec()),
            ctime: (m.ctime(), m.ctime_nsec()),
        }
    }
}

#[derive(Debug)]
struct State {
    view: Arc<DeviceManager>,
    /// `None`: never looked; `Some(None)`: the file was missing.
    seen: Option<Option<Stamp>>,
    status: CheckpointStatus,
}

/// The device view: the registered devices and the kubelet's last good checkpoint.
#[derive(Debug)]
pub struct KubeletDevices {
    machine: Machine,
    opts: DeviceOptions,
    state: Mutex<State>,
}

/// The view from the registered devices and a checkpoint's content.
pub fn build_view(
    machine: &Machine,
    registered: &[Device],
    cp: Option<DeviceCheckpoint>,
) -> DeviceManager {
    let named: BTreeSet<&str> = registered.iter().map(|d| d.resource.as_str()).collect();
    let extra: Vec<Device> = cp
        .iter()
        .flat_map(|cp| cp.registered.iter())
        .filter(|(r, _)| !named.contains(r.as_str()))
        .flat_map(|(r, ids)| {
            ids.iter().map(move |id| Device {
                resource: r.clone(),
                id: id.clone(),
                numa: None,
                healthy: true,
            })
        })
        .collect();
    let mut dm = DeviceManager::new(machine);
    dm.start(cp.map(Ok));
    dm.register_all(registered);
    dm.register_all(&extra);
    dm
}

/// Reads at most [`MAX_CHECKPOINT_BYTES`] of `path`: the bytes and the stamp of the file
/// read (`Ok(None)`: missing).
fn read_bounded(path: &Path) -> Result<Option<(Vec<u8>, Stamp)>, String> {
    let f = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("cannot open the file: {e}")),
    };
    let meta = f
        .metadata()
        .map_err(|e| format!("cannot stat the file: {e}"))?;
    let stamp = Stamp::of(&meta);
    if !meta.is_file() {
        return Err("not a regular file".into());
    }
    let too_large = || {
        format!("over {MAX_CHECKPOINT_BYTES} bytes, more than any kubelet writes; it was not read")
    };
    if meta.len() > MAX_CHECKPOINT_BYTES {
        return Err(too_large());
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    f.take(MAX_CHECKPOINT_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("cannot read the file: {e}"))?;
    if bytes.len() as u64 > MAX_CHECKPOINT_BYTES {
        return Err(too_large());
    }
    Ok(Some((bytes, stamp)))
}

impl KubeletDevices {
    /// The registered devices, no allocations yet: call [`KubeletDevices::refresh`].
    pub fn new(machine: &Machine, opts: DeviceOptions) -> KubeletDevices {
        let view = build_view(machine, &opts.registered, None);
        let status = match opts.checkpoint {
            None => CheckpointStatus::NotRead,
            Some(_) => CheckpointStatus::Missing,
        };
        KubeletDevices {
            machine: machine.clone(),
            opts,
            state: Mutex::new(State {
                view: Arc::new(view),
                seen: None,
                status,
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The view now (cheap: shared, never changed in place).
    pub fn view(&self) -> Arc<DeviceManager> {
        self.lock().view.clone()
    }

    pub fn status(&self) -> CheckpointStatus {
        self.lock().status.clone()
    }

    pub fn options(&self) -> &DeviceOptions {
        &self.opts
    }

    /// Looks at the checkpoint again; reads it if it changed (see the module
    /// documentation). Logs what changed; counts reads and unusable files in `metrics`.
    pub fn refresh(&self, metrics: &Metrics) -> Refresh {
        let Some(path) = &self.opts.checkpoint else {
            return Refresh::Unchanged;
        };
        let mut st = self.lock();
        let now = match std::fs::metadata(path) {
            Ok(m) => Some(Stamp::of(&m)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => {
                // An unreadable directory and the like: said once, looked at again
                // every time.
                let why = format!("cannot stat the file: {e}");
                if st.status == CheckpointStatus::Rejected(why.clone()) {
                    return Refresh::Unchanged;
                }
                st.seen = None;
                return self.reject(&mut st, metrics, why);
            }
        };
        if st.seen == Some(now) {
            return Refresh::Unchanged;
        }
        let file = path.display();
        match read_bounded(path) {
            Ok(None) => {
                let had = st.seen.is_some_and(|s| s.is_some());
                st.seen = Some(None);
                st.status = CheckpointStatus::Missing;
                st.view = Arc::new(build_view(&self.machine, &self.opts.registered, None));
                if had {
                    tracing::info!(
                        "{file}: gone; PodResources reports no device allocations until the kubelet writes it again"
                    );
                } else {
                    tracing::info!(
                        "{file}: not found; PodResources reports no device allocations (the kubelet writes it once a device plugin registers or a device is allocated)"
                    );
                }
                Refresh::Updated
            }
            Ok(Some((bytes, stamp))) => {
                st.seen = Some(Some(stamp));
                match device::decode(&bytes) {
                    Ok(cp) => {
                        let pods = cp.pod_devices.devs.len();
                        st.view =
                            Arc::new(build_view(&self.machine, &self.opts.registered, Some(cp)));
                        st.status = CheckpointStatus::Loaded { pods };
                        metrics.device_checkpoint_reads.inc();
                        tracing::info!("{file}: read the kubelet's device allocations ({pods} pods hold devices)");
                        Refresh::Updated
                    }
                    Err(e) => self.reject(&mut st, metrics, format!("{e}")),
                }
            }
            Err(why) => {
                st.seen = Some(now);
                self.reject(&mut st, metrics, why)
            }
        }
    }

    fn reject(&self, st: &mut State, metrics: &Metrics, why: String) -> Refresh {
        let file = self
            .opts
            .checkpoint
            .as_deref()
            .unwrap_or(Path::new(""))
            .display();
        metrics.device_checkpoint_read_errors.inc();
        let kept = match &st.status {
            CheckpointStatus::Loaded { pods } => {
                format!("the device allocations read before ({pods} pods) stay")
            }
            _ => "no device allocations are reported".to_string(),
        };
        tracing::warn!(
            "{file}: the kubelet's device checkpoint cannot be used ({why}); {kept}. The kubelet rewrites this file at its next device allocation or restart; if this persists, check that --kubelet-root-dir is the kubelet's --root-dir and that nothing else writes the file (`nmm state show {file}` says what is wrong with it)"
        );
        st.status = CheckpointStatus::Rejected(why);
        Refresh::Rejected
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nmm_core::devicemanager::pod_devices::AllocInfo;

    fn gpu(id: &str, numa: Option<Vec<u32>>, healthy: bool) -> Device {
        Device {
            resource: "nvidia.com/gpu".into(),
            id: id.into(),
            numa,
            healthy,
        }
    }

    fn machine() -> Machine {
        Machine::synthetic(2, 2, 0, 1 << 30, 1 << 30)
    }

    fn registered() -> Vec<Device> {
        vec![
            gpu("gpu-0", Some(vec![0]), true),
            gpu("gpu-1", Some(vec![1]), true),
            gpu("gpu-2", Some(vec![1]), false),
        ]
    }

    /// A checkpoint in which `uid`/`c` holds `ids` (recorded under NUMA node `node`).
    fn checkpoint(uid: &str, node: i64, ids: &[&str]) -> String {
        let mut cp = DeviceCheckpoint::default();
        let mut info = AllocInfo::default();
        info.by_numa
            .insert(node, ids.iter().map(|s| s.to_string()).collect());
        cp.pod_devices.insert(uid, "c", "nvidia.com/gpu", info);
        cp.registered.insert(
            "nvidia.com/gpu".into(),
            ["gpu-0".to_string(), "gpu-1".to_string()].into(),
        );
        device::encode(&cp)
    }

    fn held(v: &DeviceManager, uid: &str) -> Vec<(Vec<String>, Option<Vec<i64>>)> {
        v.topology_devices_of(uid, "c")
            .into_iter()
            .map(|t| (t.ids, t.nodes))
            .collect()
    }

    fn ids(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn missing_good_bad_and_rewritten_checkpoints() {
        let dir = tempfile::tempdir().unwrap();
        let opts = DeviceOptions::kubelet_root(dir.path(), registered());
        let path = opts.checkpoint.clone().unwrap();
        let m = Metrics::new();
        let d = KubeletDevices::new(&machine(), opts);

        // Missing: no allocations, the healthy registered devices allocatable.
        assert_eq!(d.refresh(&m), Refresh::Updated);
        assert_eq!(d.status(), CheckpointStatus::Missing);
        assert!(held(&d.view(), "uid-a").is_empty());
        let alloc: Vec<String> = d
            .view()
            .allocatable_topology_devices()
            .into_iter()
            .flat_map(|t| t.ids)
            .collect();
        assert_eq!(alloc, ids(&["gpu-0", "gpu-1"]));
        assert_eq!(d.refresh(&m), Refresh::Unchanged);

        // A good checkpoint.
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, checkpoint("uid-a", 1, &["gpu-1"])).unwrap();
        assert_eq!(d.refresh(&m), Refresh::Updated);
        assert_eq!(d.status(), CheckpointStatus::Loaded { pods: 1 });
        assert_eq!(
            held(&d.view(), "uid-a"),
            vec![(ids(&["gpu-1"]), Some(vec![1]))]
        );
        assert_eq!(d.refresh(&m), Refresh::Unchanged);
        assert_eq!(m.device_checkpoint_reads.get(), 1);

        // A bad checksum: the last good view stays, counted once per version.
        let good = checkpoint("uid-b", 0, &["gpu-0"]);
        let bad = good.replace("\"Checksum\":", "\"Checksum\":1");
        assert_ne!(good, bad);
        std::fs::write(&path, &bad).unwrap();
        assert_eq!(d.refresh(&m), Refresh::Rejected);
        assert_eq!(
            d.status(),
            CheckpointStatus::Rejected("checkpoint is corrupted".into())
        );
        assert_eq!(
            held(&d.view(), "uid-a"),
            vec![(ids(&["gpu-1"]), Some(vec![1]))]
        );
        assert!(held(&d.view(), "uid-b").is_empty());
        assert_eq!(d.refresh(&m), Refresh::Unchanged);
        assert_eq!(m.device_checkpoint_read_errors.get(), 1);

        // Malformed JSON: the same.
        std::fs::write(&path, "{\"Data\":").unwrap();
        assert_eq!(d.refresh(&m), Refresh::Rejected);
        assert!(
            matches!(d.status(), CheckpointStatus::Rejected(t) if t.contains("unexpected end of JSON input"))
        );
        assert_eq!(held(&d.view(), "uid-a").len(), 1);
        assert_eq!(m.device_checkpoint_read_errors.get(), 2);

        // Rewritten by rename (as the kubelet writes it): picked up.
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, &good).unwrap();
        std::fs::rename(&tmp, &path).unwrap();
        assert_eq!(d.refresh(&m), Refresh::Updated);
        assert!(held(&d.view(), "uid-a").is_empty());
        assert_eq!(
            held(&d.view(), "uid-b"),
            vec![(ids(&["gpu-0"]), Some(vec![0]))]
        );

        // Gone: no allocations.
        std::fs::remove_file(&path).unwrap();
        assert_eq!(d.refresh(&m), Refresh::Updated);
        assert!(held(&d.view(), "uid-b").is_empty());
        assert_eq!(d.status(), CheckpointStatus::Missing);
    }

    #[test]
    fn an_oversized_or_odd_file_is_refused_and_the_view_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cp");
        let m = Metrics::new();
        let d = KubeletDevices::new(
            &machine(),
            DeviceOptions {
                registered: registered(),
                checkpoint: Some(path.clone()),
            },
        );
        std::fs::write(&path, checkpoint("uid-a", 0, &["gpu-0"])).unwrap();
        assert_eq!(d.refresh(&m), Refresh::Updated);
        // Sparse: no disk used, but over the limit by its size.
        let f = std::fs::File::create(&path).unwrap();
        f.set_len(MAX_CHECKPOINT_BYTES + 1).unwrap();
        drop(f);
        assert_eq!(d.refresh(&m), Refresh::Rejected);
        assert!(
            matches!(d.status(), CheckpointStatus::Rejected(t) if t.contains(&format!("over {MAX_CHECKPOINT_BYTES} bytes")))
        );
        assert_eq!(held(&d.view(), "uid-a").len(), 1);
        // A directory in its place.
        std::fs::remove_file(&path).unwrap();
        std::fs::create_dir(&path).unwrap();
        assert_eq!(d.refresh(&m), Refresh::Rejected);
        assert_eq!(held(&d.view(), "uid-a").len(), 1);
        assert_eq!(m.device_checkpoint_read_errors.get(), 2);
    }

    #[test]
    fn devices_outside_machine_devices() {
        // The checkpoint registers a resource machine.devices does not name, and holds a
        // device machine.devices does not list: both reported, as the kubelet recorded them.
        let mut cp = DeviceCheckpoint::default();
        let mut info = AllocInfo::default();
        info.by_numa.insert(-1, ["nic-7".to_string()].into());
        cp.pod_devices.insert("uid-a", "c", "example.com/nic", info);
        let mut info = AllocInfo::default();
        info.by_numa.insert(0, ["gpu-9".to_string()].into());
        cp.pod_devices.insert("uid-a", "c", "nvidia.com/gpu", info);
        cp.registered.insert(
            "example.com/nic".into(),
            ["nic-6".to_string(), "nic-7".to_string()].into(),
        );
        let v = build_view(&machine(), &registered(), Some(cp));
        let got: Vec<(String, Vec<String>, Option<Vec<i64>>)> = v
            .topology_devices_of("uid-a", "c")
            .into_iter()
            .map(|t| (t.resource, t.ids, t.nodes))
            .collect();
        assert_eq!(
            got,
            vec![
                ("example.com/nic".into(), ids(&["nic-7"]), None),
                ("nvidia.com/gpu".into(), ids(&["gpu-9"]), Some(vec![0])),
            ]
        );
        let alloc: Vec<(String, Option<Vec<i64>>)> = v
            .allocatable_topology_devices()
            .into_iter()
            .map(|t| (t.ids.join(","), t.nodes))
            .collect();
        assert_eq!(
            alloc,
            vec![
                ("nic-6".into(), None),
                ("nic-7".into(), None),
                ("gpu-0".into(), Some(vec![0])),
                ("gpu-1".into(), Some(vec![1])),
            ]
        );
    }

    #[test]
    fn no_checkpoint_configured_reads_nothing() {
        let m = Metrics::new();
        let d = KubeletDevices::new(&machine(), DeviceOptions::default());
        assert_eq!(d.refresh(&m), Refresh::Unchanged);
        assert_eq!(d.status(), CheckpointStatus::NotRead);
        assert!(d.view().allocatable_topology_devices().is_empty());
    }
}
