//! The live node as a scenario: this node's (or a snapshot's) sysfs, `/proc/meminfo`, the
//! kubelet's config file and its checkpoints, assembled into a [`Scenario`] with no steps,
//! so that `nmm explain --pod` and `nmm simulate --node` ask the engine "would this pod be
//! admitted here now" with the books the kubelet keeps. Only reads; nothing is written.
//!
//! Every error names the file and says what to pass instead.

pub use crate::load::load_pod_file;
use crate::load::{load_config, meminfo_total};
use crate::scenario::{read_yaml_file, Scenario, Step};
use anyhow::{anyhow, bail, Result};
use k8s_openapi::api::core::v1::Pod;
use nmm_core::devicemanager::Device;
use nmm_core::explain::{explain, ExplainError, Explanation, History};
use nmm_core::node::{Node, RawCheckpoint, StartOptions, StartupError};
use nmm_core::pod::PodInfo;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The kubelet's default config file (`--config` of the kubelet's systemd unit on kubeadm
/// nodes).
pub const DEFAULT_CONFIG: &str = "/var/lib/kubelet/config.yaml";
/// The kubelet's root directory (`--root-dir`), where its checkpoints live.
pub const DEFAULT_STATE_DIR: &str = "/var/lib/kubelet";

/// Where to read the node from.
#[derive(Debug, Clone)]
pub struct NodeSnapshot {
    /// The directory holding `sys/` (and `proc/meminfo` beside it): `/` on the node.
    pub sysfs_root: PathBuf,
    /// The kubelet's config file.
    pub config: PathBuf,
    /// The kubelet's root directory: `memory_manager_state`, `cpu_manager_state`,
    /// `device-plugins/kubelet_internal_checkpoint`.
    pub state_dir: PathBuf,
    /// A file with `machine.devices` (the device plugins' devices with their NUMA nodes),
    /// which no checkpoint records.
    pub devices: Option<PathBuf>,
}

impl Default for NodeSnapshot {
    fn default() -> Self {
        NodeSnapshot {
            sysfs_root: PathBuf::from("/"),
            config: PathBuf::from(DEFAULT_CONFIG),
            state_dir: PathBuf::from(DEFAULT_STATE_DIR),
            devices: None,
        }
    }
}

/// The node as read: a scenario without steps, and what was read from where.
#[derive(Debug, Clone)]
pub struct LiveNode {
    pub snapshot: NodeSnapshot,
    /// Machine, kubelet config, checkpoints, devices; `path` is the config file.
    pub scenario: Scenario,
    /// One line per input: `sysfs under /: 4 NUMA nodes, 80 CPUs`, ...
    pub sources: Vec<String>,
    /// Unknown kubelet fields, devices without topology, sysfs oddities.
    pub warnings: Vec<String>,
}

/// Why the kubelet would not start on this node as read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartRefusal {
    /// The config itself (on this machine), checkpoints or not.
    Config(StartupError),
    /// The checkpoints: they fail the kubelet's restore or restart validation.
    Checkpoints(StartupError),
}

/// `DIR/memory_manager_state` and so on.
fn state_file(dir: &Path, name: &str) -> PathBuf {
    dir.join(name)
}

/// Reads a checkpoint the kubelet always writes (memory or CPU manager); a missing or
/// foreign file is an error saying what to pass.
fn read_checkpoint(dir: &Path, name: &str) -> Result<Vec<u8>> {
    let f = state_file(dir, name);
    let bytes = match std::fs::read(&f) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => bail!(
            "{}: not found; the kubelet writes {name} in its root directory at every start, whatever the policy. \
             Pass the kubelet's root directory (its --root-dir, usually {DEFAULT_STATE_DIR}) with --state-dir, \
             or a copy of it holding memory_manager_state and cpu_manager_state",
            f.display()
        ),
        Err(e) => bail!(
            "{}: cannot read the checkpoint: {e}; run as a user that can read the kubelet's root directory (root), or copy the file",
            f.display()
        ),
    };
    use nmm_core::diagnose::checkpoint::{identify, Kind};
    let want = if name == nmm_core::memorymanager::STATE_FILE {
        Kind::Memory
    } else {
        Kind::Cpu
    };
    match identify(&f, bytes.clone()) {
        Err(text) | Ok(Err(text)) => bail!("{text}"),
        Ok(Ok(l)) if l.kind != want => bail!(
            "{}: holds a {} checkpoint, not the {}'s; the files in --state-dir must keep the kubelet's names",
            f.display(),
            l.kind.file_name(),
            want.manager()
        ),
        Ok(Ok(_)) => Ok(bytes),
    }
}

/// `machine.devices` of a scenario or machine file (or a `devices:` list at the top).
fn load_devices(path: &Path, machine: &nmm_core::machine::Machine) -> Result<Vec<Device>> {
    let v = read_yaml_file(path)?;
    let mv = v.get("machine").filter(|m| !m.is_null()).unwrap_or(&v);
    if mv.get("devices").is_none() {
        bail!(
            "{}: devices: missing; write the device plugins' devices as a list, e.g. devices: [{{resource: nvidia.com/gpu, id: gpu-0, numa: [0]}}] (the scenario format's machine.devices)",
            path.display()
        );
    }
    crate::scenario_devices::parse_devices(mv, machine, path)
}

/// The devices a device checkpoint names, without topology (no checkpoint records it).
fn checkpoint_devices(bytes: &[u8]) -> Vec<Device> {
    match nmm_core::checkpoint::device::decode(bytes) {
        Ok(cp) => cp
            .registered
            .iter()
            .flat_map(|(r, ids)| {
                ids.iter().map(move |id| Device {
                    resource: r.clone(),
                    id: id.clone(),
                    numa: None,
                    healthy: true,
                })
            })
            .collect(),
        Err(_) => Vec::new(),
    }
}

/// Reads the node: sysfs (and `proc/meminfo` beside it), the kubelet config, the
/// checkpoints. Nothing is started yet; see [`LiveNode::start`].
pub fn load_node(snap: &NodeSnapshot) -> Result<LiveNode> {
    let dir = &snap.state_dir;
    match std::fs::metadata(dir) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => bail!(
            "{}: not a directory; --state-dir is the kubelet's root directory (its --root-dir, usually {DEFAULT_STATE_DIR}), which holds memory_manager_state and cpu_manager_state",
            dir.display()
        ),
        Err(e) => bail!(
            "{}: cannot open the directory ({e}); --state-dir is the kubelet's root directory (its --root-dir, usually {DEFAULT_STATE_DIR}), which holds memory_manager_state and cpu_manager_state",
            dir.display()
        ),
    }
    let root = &snap.sysfs_root;
    let (machine, sysfs_warnings) = nmm_sysfs::SysfsReader::new(root)
        .read_machine_with_warnings()
        .map_err(|e| anyhow!("reading the machine from sysfs: {e}"))?;
    let capacity = meminfo_total(root)?;
    let meminfo = root.join("proc/meminfo");
    if !snap.config.exists() {
        bail!(
            "{}: not found; pass the kubelet's config file with --config (the kubelet's --config flag: see `systemctl cat kubelet` or `ps -o args= -C kubelet`; kubeadm writes {DEFAULT_CONFIG})",
            snap.config.display()
        );
    }
    let cf = load_config(&snap.config)?;
    let memory = read_checkpoint(dir, nmm_core::memorymanager::STATE_FILE)?;
    let cpu = read_checkpoint(dir, nmm_core::cpumanager::STATE_FILE)?;
    let device_file = state_file(dir, nmm_core::devicemanager::STATE_FILE);
    let device_state = match std::fs::read(&device_file) {
        Ok(b) => Some(b),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => bail!(
            "{}: cannot read the device checkpoint: {e}; run as a user that can read the kubelet's root directory (root)",
            device_file.display()
        ),
    };
    let mut warnings: Vec<String> = sysfs_warnings;
    warnings.extend(cf.warnings.iter().cloned());
    let devices = match (&snap.devices, &device_state) {
        (Some(f), _) => load_devices(f, &machine)?,
        (None, Some(b)) => {
            let d = checkpoint_devices(b);
            if !d.is_empty() {
                let resources: BTreeSet<&str> = d.iter().map(|x| x.resource.as_str()).collect();
                warnings.push(format!(
                    "{}: the devices of {} are taken from the checkpoint without NUMA nodes (the device plugins report those, no checkpoint records them); pass --devices FILE with their machine.devices for topology-aware hints",
                    device_file.display(),
                    resources.into_iter().collect::<Vec<_>>().join(", ")
                ));
            }
            d
        }
        (None, None) => Vec::new(),
    };
    let mut sources = vec![
        format!(
            "sysfs under {}: {} NUMA nodes, {} CPUs",
            root.display(),
            machine.nodes.len(),
            machine.cpus.len()
        ),
        match capacity {
            Some(b) => format!(
                "{}: MemTotal {}",
                meminfo.display(),
                nmm_core::quantity::format_human_bytes(b)
            ),
            None => format!(
                "{}: absent; machine memory capacity taken as the sum of the NUMA nodes",
                meminfo.display()
            ),
        },
        format!("kubelet config: {}", snap.config.display()),
        format!(
            "checkpoints: {}, {}{}",
            state_file(dir, nmm_core::memorymanager::STATE_FILE).display(),
            state_file(dir, nmm_core::cpumanager::STATE_FILE).display(),
            if device_state.is_some() {
                format!(", {}", device_file.display())
            } else {
                String::new()
            }
        ),
    ];
    if let Some(f) = &snap.devices {
        sources.push(format!("devices: {}", f.display()));
    }
    let scenario = Scenario {
        path: snap.config.clone(),
        machine,
        kubelet: cf.config,
        memory_state: Some(RawCheckpoint::Bytes(memory)),
        cpu_state: Some(RawCheckpoint::Bytes(cpu)),
        steps: Vec::new(),
        warnings: Vec::new(),
        memory_capacity: capacity,
        devices,
        device_state: device_state.map(RawCheckpoint::Bytes),
        proc_iomem: None,
    };
    Ok(LiveNode {
        snapshot: snap.clone(),
        scenario,
        sources,
        warnings,
    })
}

impl LiveNode {
    /// The kubelet's start options for this node: its checkpoints, devices and memory
    /// capacity; the messages name the real state directory.
    pub fn start_options(&self) -> StartOptions {
        let s = &self.scenario;
        StartOptions {
            state_dir: self.state_dir_text(),
            memory_checkpoint: s.memory_state.clone(),
            cpu_checkpoint: s.cpu_state.clone(),
            devices: s.devices.clone(),
            device_checkpoint: s.device_state.clone(),
            memory_capacity: s.memory_capacity,
            proc_iomem: s.proc_iomem.clone(),
            ..Default::default()
        }
    }

    /// The state directory as the kubelet's messages name it.
    pub fn state_dir_text(&self) -> String {
        let t = self.snapshot.state_dir.display().to_string();
        match t.trim_end_matches('/') {
            "" => "/".to_string(),
            t => t.to_string(),
        }
    }

    /// Starts the managers as the kubelet would on this node: first without the
    /// checkpoints (a failure there is the config's), then with them (a failure there is
    /// the checkpoints': restore or restart validation).
    pub fn start(&self) -> Result<Node, StartRefusal> {
        let s = &self.scenario;
        let bare = StartOptions {
            state_dir: self.state_dir_text(),
            memory_capacity: s.memory_capacity,
            devices: s.devices.clone(),
            ..Default::default()
        };
        Node::start(s.machine.clone(), s.kubelet.clone(), bare).map_err(StartRefusal::Config)?;
        Node::start(s.machine.clone(), s.kubelet.clone(), self.start_options())
            .map_err(StartRefusal::Checkpoints)
    }

    /// The pods holding exclusive CPUs, pinned memory or devices in the checkpoints:
    /// pod uid -> container names, as the checkpoints have them.
    pub fn holders(node: &Node) -> BTreeMap<String, BTreeSet<String>> {
        let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for (uid, cs) in node.memory.assignments() {
            out.entry(uid).or_default().extend(cs.into_keys());
        }
        for (uid, cs) in node.cpu.assignments() {
            out.entry(uid).or_default().extend(cs.into_keys());
        }
        out
    }

    /// The node with `pods` to admit, in order (`nmm simulate --node`). A pod without
    /// `metadata.uid` gets `<no uid: FILE>` (`<no uid: FILE #2>` for its second copy; the
    /// uid is the pods' key in the books); two files with one uid are an error naming
    /// both.
    pub fn with_pods(&self, pods: &[(PathBuf, Pod)]) -> Result<Scenario> {
        let mut s = self.scenario.clone();
        let mut seen: BTreeMap<String, &Path> = BTreeMap::new();
        for (path, pod) in pods {
            let mut pod = pod.clone();
            let mut uid = pod_uid(&pod, path);
            if pod.metadata.uid.as_deref().unwrap_or("").is_empty() {
                // The same uid-less file given twice: two pods like it.
                let base = uid.trim_end_matches('>').to_string();
                let mut k = 1;
                while seen.contains_key(&uid) {
                    k += 1;
                    uid = format!("{base} #{k}>");
                }
            }
            if let Some(first) = seen.insert(uid.clone(), path) {
                bail!(
                    "{}: metadata.uid: {uid:?} is also the uid of {}; every pod needs its own uid (the books key pods by it)",
                    path.display(),
                    first.display()
                );
            }
            pod.metadata.uid = Some(uid);
            s.steps.push(Step::Admit(Box::new(pod)));
        }
        Ok(s)
    }
}

/// One pod explained on the live node.
#[derive(Debug, Clone)]
pub struct LiveExplanation {
    pub explanation: Explanation,
    /// The pods holding resources in the checkpoints: uid -> containers.
    pub holders: BTreeMap<String, BTreeSet<String>>,
    /// The pod's uid is already in the checkpoints: the kubelet re-admits it with the
    /// allocation they record, so "admitted" says nothing about a new copy of it.
    pub already_held: bool,
    /// What the pod file's `status` records (`kubectl get pod -o yaml` of a rejected pod):
    /// `Failed, TopologyAffinityError: Pod was rejected: ...`.
    pub recorded_status: Option<String>,
}

/// `phase, reason: message` of a pod's status, when it has a reason.
fn recorded_status(pod: &Pod) -> Option<String> {
    let st = pod.status.as_ref()?;
    let reason = st.reason.as_deref().filter(|r| !r.is_empty())?;
    let mut s = String::new();
    if let Some(phase) = st.phase.as_deref() {
        s.push_str(&format!("{phase}, "));
    }
    s.push_str(reason);
    if let Some(m) = st.message.as_deref().filter(|m| !m.is_empty()) {
        s.push_str(&format!(": {m}"));
    }
    Some(s)
}

/// What the kubelet would make of a pod on the live node.
#[derive(Debug, Clone)]
pub enum LiveOutcome {
    Explained(Box<LiveExplanation>),
    /// The kubelet would not start as the node is: no admission to explain.
    Refused(StartRefusal),
}

impl LiveNode {
    /// Would `pod` (read from `path`) be admitted on this node now, why or why not, and
    /// what would make it fit: the explain engine on the books the checkpoints hold.
    pub fn explain_pod(&self, pod: &Pod, path: &Path) -> Result<LiveOutcome> {
        let node = match self.start() {
            Ok(n) => n,
            Err(r) => return Ok(LiveOutcome::Refused(r)),
        };
        let holders = Self::holders(&node);
        let mut pod = pod.clone();
        let uid = pod_uid(&pod, path);
        pod.metadata.uid = Some(uid.clone());
        let info = PodInfo::from_pod(
            &pod,
            self.scenario.kubelet.feature_gate("PodLevelResources"),
        )
        .map_err(|e| anyhow!("{}: {e}; quantities look like 2, 500m, 4Gi", path.display()))?;
        let start = self.start_options();
        let h = History {
            machine: &self.scenario.machine,
            config: &self.scenario.kubelet,
            start: &start,
            steps: &[],
        };
        let explanation = explain(&h, &info).map_err(|e| match e {
            ExplainError::Step { error, .. } => {
                anyhow!("{}: metadata.uid: {error}", path.display())
            }
            ExplainError::Startup(e) => {
                anyhow!("the kubelet would not start ({}): {}", e.stage, e.message)
            }
        })?;
        Ok(LiveOutcome::Explained(Box::new(LiveExplanation {
            explanation,
            already_held: holders.contains_key(&uid),
            holders,
            recorded_status: recorded_status(&pod),
        })))
    }
}

/// The pod's uid, or a stand-in naming its file.
pub fn pod_uid(pod: &Pod, path: &Path) -> String {
    match pod.metadata.uid.as_deref() {
        Some(u) if !u.is_empty() => u.to_string(),
        _ => format!("<no uid: {}>", path.display()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let f = dir.join(name);
        std::fs::write(&f, text).unwrap();
        f
    }

    #[test]
    fn pod_file_errors_name_the_field_path_without_a_prefix() {
        let d = std::env::temp_dir().join(format!("nmm-live-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        let f = write(
            &d,
            "pod.yaml",
            "apiVersion: v1\nkind: Pod\nmetadata: {name: p, uid: u}\nspec:\n  containers:\n    - name: c\n      resource: {limits: {memory: 1Gi}}\n",
        );
        let e = format!("{:#}", load_pod_file(&f).unwrap_err());
        assert!(
            e.starts_with(&format!(
                "{}: spec.containers[0].resource: unknown field",
                f.display()
            )),
            "{e}"
        );
        let f = write(&d, "list.yaml", "apiVersion: v1\nkind: List\nitems: []\n");
        let e = format!("{:#}", load_pod_file(&f).unwrap_err());
        assert!(e.contains("kind: List: expected a single Pod"), "{e}");
        let f = write(
            &d,
            "ok.yaml",
            "metadata: {name: p}\nspec: {containers: [{name: c}]}\n",
        );
        let pod = load_pod_file(&f).unwrap();
        assert_eq!(pod_uid(&pod, &f), format!("<no uid: {}>", f.display()));
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn a_missing_state_dir_says_what_it_should_be() {
        let snap = NodeSnapshot {
            state_dir: PathBuf::from("/nonexistent/nmm-state"),
            ..Default::default()
        };
        let e = format!("{:#}", load_node(&snap).unwrap_err());
        assert!(
            e.starts_with("/nonexistent/nmm-state: cannot open the directory"),
            "{e}"
        );
        assert!(e.contains("--root-dir"), "{e}");
    }
}
