//! A node: the three managers wired as the kubelet's container manager wires them, from
//! start-up checks to admissions and removals. This is the engine behind `nmm simulate`,
//! `nmm explain` and the agent; it reports through return values and never prints.

use crate::checkpoint;
use crate::cpumanager::policy_static::CpuAssignments;
use crate::cpumanager::{CpuManager, CpuPolicy};
use crate::cpuset::CpuSet;
use crate::devicemanager::ids::IdSet;
use crate::devicemanager::{Device, DeviceManager};
use crate::kubelet_config::KubeletConfig;
use crate::machine::Machine;
use crate::memorymanager::state::{Assignments, Block, MachineState};
use crate::memorymanager::{MemoryManager, MemoryPolicy};
use crate::node_allocatable::node_allocatable_reservation;
use crate::pod::PodInfo;
use crate::quantity::Quantity;
use crate::topology::hint::TopologyHint;
use crate::topology::policy::PolicyKind;
use crate::topology::{Admission, HintProvider, TopologyManager};
use crate::validation::validate_kubelet_config;
use crate::vecmap::VecMap;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

type UidHasher = foldhash::fast::RandomState;

/// A checkpoint a node starts from: file bytes, or an already parsed JSON object.
#[derive(Debug, Clone)]
pub enum RawCheckpoint {
    Bytes(Vec<u8>),
    Json(serde_json::Value),
}

/// Why the kubelet would refuse to start, and which part of it says so.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StartupError {
    /// `validation`, `topologyManager`, `cpuManager` or `memoryManager`.
    pub stage: &'static str,
    pub message: String,
}

impl std::fmt::Display for StartupError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.stage, self.message)
    }
}

#[derive(Debug, Clone, Default)]
pub struct StartOptions {
    /// Where the checkpoints live, as named in the kubelet's error messages.
    pub state_dir: String,
    pub memory_checkpoint: Option<RawCheckpoint>,
    pub cpu_checkpoint: Option<RawCheckpoint>,
    /// Use the large-machine (described hint lists) path whatever the machine size: the
    /// decisions are the same; tests use this to compare both paths.
    pub force_large: bool,
    /// With `force_large`: the projection threshold of the large merge (0 makes every
    /// merge use the search paths).
    pub large_dense_universe: Option<usize>,
    /// List every NUMA mask as the kubelet does instead of describing hint lists (slow
    /// above ~12 nodes; tests compare both paths with it).
    pub enumerate: bool,
    /// The text of `/proc/iomem`, for `memory-drift-tolerance: auto` (KEP-6232).
    pub proc_iomem: Option<String>,
    /// The devices the device plugins report (`machine.devices` of a scenario); the
    /// plugins register after the managers have started.
    pub devices: Vec<Device>,
    /// `device-plugins/kubelet_internal_checkpoint` to start from.
    pub device_checkpoint: Option<RawCheckpoint>,
    /// cadvisor's machine memory capacity (MemTotal of /proc/meminfo), which Node
    /// Allocatable and percentage eviction thresholds use; `None`: the sum of the NUMA
    /// nodes' memory (`machine.memoryCapacity` of a scenario).
    pub memory_capacity: Option<u64>,
}

/// One container after an admission attempt: what the managers hold for it.
#[derive(Debug, Clone)]
pub struct ContainerResult {
    pub name: String,
    pub init: bool,
    pub memory: Vec<Block>,
    pub cpus: CpuSet,
    /// The Topology Manager's stored hint (absent under policy `none`, or when admission
    /// stopped before this container).
    pub affinity: Option<TopologyHint>,
    /// Devices the Device Manager allocated to the container: resource -> sorted ids.
    pub devices: VecMap<IdSet>,
}

#[derive(Debug, Clone)]
pub struct AdmitResult {
    pub uid: String,
    pub name: String,
    pub admitted: bool,
    pub reason: Option<String>,
    pub message: Option<String>,
    pub containers: Vec<ContainerResult>,
    /// The full trail (provider hints, merges) for explanations.
    pub trace: Admission,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoveResult {
    pub uid: String,
    /// Known only for pods admitted by this node (not for pods restored from state).
    pub name: Option<String>,
    pub removed: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StepError {
    #[error("pod uid {0:?} is already running on this node (admitted earlier and not removed); give every pod its own metadata.uid")]
    DuplicateUid(String),
    #[error("pod {0:?} has no metadata.uid; set one (it is the pod's key in the checkpoints)")]
    MissingUid(String),
}

/// cpu_manager_state entries as read: pod uid -> container -> cpuset text.
type RawCpuEntries = BTreeMap<String, BTreeMap<String, String>>;

#[derive(Debug, Clone)]
pub struct Node {
    pub machine: Machine,
    pub config: KubeletConfig,
    pub topology: TopologyManager,
    pub cpu: CpuManager,
    pub memory: MemoryManager,
    pub devices: DeviceManager,
    // Hashed, not ordered: these are only asked about one uid at a time, and an ordered
    // map's insert shifts a leaf of keys (cold lines on every admission). foldhash with a
    // random seed: fast on short keys, and not predictable by whoever picks the uids.
    /// Live pods admitted here: uid -> name.
    admitted: HashMap<String, String, UidHasher>,
    /// Pods that came with the restored checkpoints.
    restored: HashSet<String, UidHasher>,
    /// uids whose admission was refused and not yet named by a removal.
    rejected: HashSet<String, UidHasher>,
    /// What a `None` memory policy / `none` CPU policy read from its checkpoint; written back
    /// unchanged.
    memory_passthrough: Option<(MachineState, Assignments)>,
    cpu_passthrough: Option<(String, RawCpuEntries)>,
    /// What the Memory Manager's restart observed (KEP-6232 drift tolerance): the bound in
    /// effect and the per-node drift; `rebased` when the checkpoint must be rewritten.
    pub memory_drift: Option<crate::memorymanager::drift::DriftReport>,
}

fn err(stage: &'static str) -> impl Fn(String) -> StartupError {
    move |message| StartupError { stage, message }
}

impl Node {
    /// Starts a node as the kubelet does: config validation, Topology Manager, CPU
    /// Manager, Memory Manager construction, then the CPU and Memory Managers' `Start`
    /// (checkpoint restore and state validation).
    pub fn start(
        machine: Machine,
        config: KubeletConfig,
        opts: StartOptions,
    ) -> Result<Node, StartupError> {
        machine.check_limits().map_err(|e| StartupError {
            stage: "machine",
            message: e.to_string(),
        })?;
        validate_kubelet_config(&config).map_err(err("validation"))?;
        let memory_capacity: u64 = opts
            .memory_capacity
            .unwrap_or_else(|| machine.nodes.iter().map(|n| n.memory).sum());
        let mut reservation =
            node_allocatable_reservation(&config, memory_capacity).map_err(err("validation"))?;

        // --reserved-cpus: must name online CPUs; replaces the cpu reservation.
        let reserved_cpus = CpuSet::parse(config.reserved_system_cpus.as_deref().unwrap_or(""))
            .map_err(|e| StartupError {
                stage: "validation",
                message: format!("unable to parse reserved-cpus list: {e}"),
            })?;
        if !reserved_cpus.is_empty() {
            let all = machine.all_cpus();
            if !reserved_cpus.is_subset_of(&all) {
                return Err(StartupError {
                    stage: "cpuManager",
                    message: format!(
                        "reserved-cpus: {} is not a subset of online-cpus: {}",
                        config.reserved_system_cpus.as_deref().unwrap_or(""),
                        all
                    ),
                });
            }
            reservation.insert(
                "cpu".into(),
                Quantity::from_i64(
                    reserved_cpus.len() as i64,
                    crate::quantity::Format::DecimalSI,
                ),
            );
        }

        let mut topology =
            TopologyManager::new(&machine, &config).map_err(err("topologyManager"))?;
        if opts.force_large && topology.policy.kind != PolicyKind::None {
            topology.large = true;
            if let Some(d) = opts.large_dense_universe {
                topology.policy.dense_universe = d;
            }
        }
        if opts.enumerate && !opts.force_large {
            // The kubelet's own path: every provider lists every mask, the merge takes
            // the lists (the option was declared but not wired before).
            topology.large = false;
        }
        let mut cpu = CpuManager::new(&machine, &config, &reservation, &reserved_cpus)
            .map_err(err("cpuManager"))?;
        let mut memory =
            MemoryManager::new(&machine, &config, &reservation).map_err(err("memoryManager"))?;

        cpu.set_large(topology.large);
        memory.set_large(
            topology.large || machine.nodes.len() > crate::topology::LARGE_MACHINE_NODES,
        );
        let mut node_restored = BTreeSet::new();

        // CPU manager Start.
        let cpu_path = format!("{}/{}", opts.state_dir, crate::cpumanager::STATE_FILE);
        let wrap_cpu = |e: String| {
            StartupError {
            stage: "cpuManager",
            message: format!(
                "could not restore state from checkpoint: {e}, please drain this node and delete the CPU manager checkpoint file \"{cpu_path}\" before restarting Kubelet"
            ),
        }
        };
        let mut cpu_passthrough = None;
        let cpu_restored = match &opts.cpu_checkpoint {
            None => None,
            Some(raw) => {
                let ck = match raw {
                    RawCheckpoint::Bytes(b) => checkpoint::cpu::decode(b),
                    RawCheckpoint::Json(v) => checkpoint::cpu::decode_value(v),
                }
                .map_err(|e| wrap_cpu(e.to_string()))?;
                if ck.policy_name != cpu.policy_name() {
                    return Err(wrap_cpu(format!(
                        "configured policy \"{}\" differs from state checkpoint policy \"{}\"",
                        cpu.policy_name(),
                        ck.policy_name
                    )));
                }
                let d = CpuSet::parse(&ck.default_cpu_set).map_err(|e| {
                    wrap_cpu(format!(
                        "could not parse default cpu set \"{}\": {e}",
                        ck.default_cpu_set
                    ))
                })?;
                let mut a = CpuAssignments::new();
                for (pod, ctrs) in &ck.entries {
                    node_restored.insert(pod.clone());
                    for (ctr, s) in ctrs {
                        let set = CpuSet::parse(s).map_err(|e| {
                            wrap_cpu(format!(
                                "could not parse cpuset \"{s}\" for container \"{ctr}\" in pod \"{pod}\": {e}"
                            ))
                        })?;
                        a.get_or_default(pod).insert(ctr.clone(), set);
                    }
                }
                if matches!(cpu.policy, CpuPolicy::None) {
                    cpu_passthrough = Some((ck.default_cpu_set.clone(), ck.entries.clone()));
                }
                Some((d, a))
            }
        };
        cpu.start(cpu_restored).map_err(err("cpuManager"))?;

        // Memory manager Start.
        let mem_path = format!("{}/{}", opts.state_dir, crate::memorymanager::STATE_FILE);
        let wrap_mem = |e: String| {
            StartupError {
            stage: "memoryManager",
            message: format!(
                "could not restore state from checkpoint: {e}, please drain this node and delete the memory manager checkpoint file \"{mem_path}\" before restarting Kubelet"
            ),
        }
        };
        let mut memory_passthrough = None;
        let mem_restored = match &opts.memory_checkpoint {
            None => None,
            Some(raw) => {
                let ck = match raw {
                    RawCheckpoint::Bytes(b) => checkpoint::memory::decode_v132(b),
                    RawCheckpoint::Json(v) => checkpoint::memory::decode_value_v132(v),
                }
                .map_err(|e| wrap_mem(e.to_string()))?;
                if ck.policy_name != memory.policy_name() {
                    return Err(wrap_mem(format!(
                        "[memorymanager] configured policy \"{}\" differs from state checkpoint policy \"{}\"",
                        memory.policy_name(),
                        ck.policy_name
                    )));
                }
                node_restored.extend(ck.entries.keys().cloned());
                if matches!(memory.policy, MemoryPolicy::None) {
                    memory_passthrough = Some((ck.machine_state.clone(), ck.entries.clone()));
                }
                Some((ck.machine_state, ck.entries))
            }
        };
        let memory_drift = memory
            .start(&machine, mem_restored, opts.proc_iomem.as_deref())
            .map_err(err("memoryManager"))?;

        // Device Manager Start (checkpoint; a bad one is logged and ignored, as in the
        // kubelet), then the plugins register.
        let mut devices = DeviceManager::new(&machine);
        devices.large = topology.large;
        devices.start(opts.device_checkpoint.as_ref().map(|raw| {
            match raw {
                RawCheckpoint::Bytes(b) => checkpoint::device::decode(b),
                RawCheckpoint::Json(v) => checkpoint::device::decode_value(v),
            }
            .map_err(|e| e.to_string())
        }));
        node_restored.extend(devices.pods());
        devices.register_all(&opts.devices);

        Ok(Node {
            machine,
            config,
            topology,
            cpu,
            memory,
            devices,
            admitted: HashMap::default(),
            restored: node_restored.into_iter().collect(),
            rejected: HashSet::default(),
            memory_passthrough,
            cpu_passthrough,
            memory_drift,
        })
    }

    pub fn is_live(&self, uid: &str) -> bool {
        self.admitted.contains_key(uid) || self.restored.contains(uid)
    }

    /// Admits a pod (the Topology Manager's admit handler with the CPU and Memory
    /// Managers as hint providers). A rejected pod's partial allocations are released
    /// right after, as the kubelet's stale-state cleanup would.
    pub fn admit(&mut self, pod: &PodInfo) -> Result<AdmitResult, StepError> {
        if pod.uid.is_empty() {
            return Err(StepError::MissingUid(pod.name.clone()));
        }
        // A pod restored from the checkpoints is admitted again after a restart (the
        // kubelet's re-admission; the managers find its allocation already present).
        if self.admitted.contains_key(&pod.uid) || self.rejected.contains(&pod.uid) {
            return Err(StepError::DuplicateUid(pod.uid.clone()));
        }
        let trace = {
            // The kubelet's order: Device Manager, CPU Manager, Memory Manager. Without
            // any device plugin the Device Manager answers "no preference" and allocates
            // nothing, so it is left out (explanations stay as they were).
            if self.devices.is_active() {
                let mut providers: [&mut dyn HintProvider; 3] =
                    [&mut self.devices, &mut self.cpu, &mut self.memory];
                self.topology.admit(pod, &mut providers)
            } else {
                let mut providers: [&mut dyn HintProvider; 2] = [&mut self.cpu, &mut self.memory];
                self.topology.admit(pod, &mut providers)
            }
        };
        let show_affinity = self.topology.policy.kind != PolicyKind::None;
        let containers = pod
            .containers
            .iter()
            .zip(&trace.containers)
            .map(|(c, t)| {
                let mut memory = self
                    .memory
                    .static_policy()
                    .and_then(|p| p.blocks(&pod.uid, &c.name))
                    .cloned()
                    .unwrap_or_default();
                memory.sort_by(|a, b| a.kind.cmp(&b.kind));
                ContainerResult {
                    name: c.name.clone(),
                    init: c.init,
                    memory,
                    cpus: self.cpu.cpus_of(&pod.uid, &c.name),
                    affinity: if show_affinity { t.affinity } else { None },
                    devices: self.devices.container_devices(&pod.uid, &c.name),
                }
            })
            .collect();
        let result = AdmitResult {
            uid: pod.uid.clone(),
            name: pod.name.clone(),
            admitted: trace.admitted,
            reason: trace.reason.clone(),
            message: trace.message.clone(),
            containers,
            trace,
        };
        if result.admitted {
            self.restored.remove(&pod.uid);
            self.admitted.insert(pod.uid.clone(), pod.name.clone());
            // The kubelet starts the containers next; the memory manager's AddContainer
            // releases regular init containers' memory as the app containers start.
            self.memory.start_containers(pod);
        } else {
            self.rejected.insert(pod.uid.clone());
            self.release(&pod.uid);
        }
        Ok(result)
    }

    fn release(&mut self, uid: &str) {
        self.cpu.remove_pod(uid);
        self.memory.remove_pod(uid);
        self.devices.remove_pod(uid);
    }

    /// The pod is deleted: its resources go back.
    pub fn remove(&mut self, uid: &str) -> RemoveResult {
        let name = self.admitted.remove(uid);
        let removed = name.is_some() || self.restored.remove(uid);
        self.rejected.remove(uid);
        if removed {
            self.release(uid);
        }
        RemoveResult {
            uid: uid.to_string(),
            name,
            removed,
        }
    }

    /// `memory_manager_state` as the kubelet would have written it now.
    pub fn memory_checkpoint(&self) -> String {
        let (ms, a) = match (&self.memory.policy, &self.memory_passthrough) {
            (MemoryPolicy::None, Some((ms, a))) => (ms.clone(), a.clone()),
            _ => (self.memory.machine_state(), self.memory.assignments()),
        };
        checkpoint::memory::encode(self.memory.policy_name(), &ms, &a)
    }

    /// `device-plugins/kubelet_internal_checkpoint` as the kubelet would have written it
    /// now (canonical order).
    pub fn device_checkpoint(&self) -> String {
        checkpoint::device::encode(&self.devices.checkpoint())
    }

    /// `cpu_manager_state` as the kubelet would have written it now.
    pub fn cpu_checkpoint(&self) -> String {
        if let (CpuPolicy::None, Some((d, e))) = (&self.cpu.policy, &self.cpu_passthrough) {
            let d = CpuSet::parse(d).unwrap_or_default();
            let e = e
                .iter()
                .map(|(p, m)| {
                    let m = m
                        .iter()
                        .map(|(c, s)| (c.clone(), CpuSet::parse(s).unwrap_or_default()))
                        .collect();
                    (p.clone(), m)
                })
                .collect();
            return checkpoint::cpu::encode(self.cpu.policy_name(), &d, &e);
        }
        checkpoint::cpu::encode(
            self.cpu.policy_name(),
            &self.cpu.default_set(),
            &self.cpu.assignments(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A library caller's machine with a NUMA node id the engine's 64-bit masks cannot
    /// hold is refused at start, naming the id, instead of running with an empty mask.
    #[test]
    fn start_refuses_numa_ids_the_masks_cannot_hold() {
        let ok = Machine::synthetic(2, 2, 0, 4 << 30, 0);
        assert!(Node::start(
            ok.clone(),
            KubeletConfig::default(),
            StartOptions::default()
        )
        .is_ok());
        for id in [64, 4_000_000_000] {
            let mut m = ok.clone();
            m.nodes[1].id = id;
            for c in m.cpus.iter_mut().filter(|c| c.numa == 1) {
                c.numa = id;
            }
            let Err(e) = Node::start(m, KubeletConfig::default(), StartOptions::default()) else {
                panic!("node id {id} accepted");
            };
            assert_eq!(e.stage, "machine");
            assert!(e.message.contains(&id.to_string()), "{e}");
        }
    }

    fn one_container(uid: &str, cpu: &str, memory: &str) -> PodInfo {
        let p: k8s_openapi::api::core::v1::Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": uid, "uid": uid},
            "spec": {"containers": [{"name": "c", "resources": {"limits": {"cpu": cpu, "memory": memory}}}]}
        }))
        .unwrap();
        PodInfo::from_pod(&p, false).unwrap()
    }

    /// The trace keeps the providers' hints of an admitted pod only when asked
    /// (`keep_hints`, as `explain` does), and always those of a rejecting merge.
    #[test]
    fn the_trace_keeps_hints_when_asked_or_rejected() {
        for scope in ["container", "pod"] {
            let cfg =
                KubeletConfig::static_managers("single-numa-node", scope).reserving("1", "1Gi");
            let node = Node::start(
                Machine::synthetic(2, 4, 0, 8 << 30, 0),
                cfg,
                StartOptions::default(),
            )
            .unwrap();
            let kept = |r: &AdmitResult| {
                r.trace.pod_families.len()
                    + r.trace.pod_hints.len()
                    + r.trace
                        .containers
                        .iter()
                        .map(|t| t.provider_families.len() + t.provider_hints.len())
                        .sum::<usize>()
            };
            let fits = one_container("a", "2", "1Gi");
            let r = node.clone().admit(&fits).unwrap();
            assert!(r.admitted);
            assert_eq!(kept(&r), 0, "{scope}: hints of an admitted pod kept");
            let mut asked = node.clone();
            asked.topology.keep_hints = true;
            let r = asked.admit(&fits).unwrap();
            assert!(r.admitted);
            assert_eq!(kept(&r), 2, "{scope}: cpu and memory hints, when asked");
            // more CPUs than one NUMA node has (8): single-numa-node rejects
            let r = node
                .clone()
                .admit(&one_container("b", "10", "1Gi"))
                .unwrap();
            assert!(!r.admitted);
            assert_eq!(kept(&r), 2, "{scope}: a rejecting merge's hints");
        }
    }
}
