//! Plain Rust views of what NRI carries, so that a handler never touches protobuf.
//! Only what nmm reads or writes is kept; see [`crate::pb`] for the wire messages.

use std::collections::BTreeMap;

/// `PodSandbox`: a pod as the runtime describes it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PodSandbox {
    /// Sandbox (pause container) id.
    pub id: String,
    pub name: String,
    pub uid: String,
    pub namespace: String,
    pub labels: BTreeMap<String, String>,
    /// The pod's annotations, as the kubelet passes them in the sandbox config.
    pub annotations: BTreeMap<String, String>,
    pub runtime_handler: String,
    /// `linux.cgroup_parent`: the pod's cgroup, e.g. `kubepods-burstable-pod<uid>.slice`
    /// (systemd driver) or `/kubepods/burstable/pod<uid>` (cgroupfs driver).
    pub cgroup_parent: String,
    /// `linux.cgroups_path` (NRI v1 emulation; often empty).
    pub cgroups_path: String,
    /// `linux.pod_resources`: the kubelet's pod-level resources (sums), if given.
    pub pod_resources: Option<LinuxResources>,
    /// `linux.pod_overhead`, if given.
    pub pod_overhead: Option<LinuxResources>,
}

/// `ContainerState`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ContainerState {
    #[default]
    Unknown,
    Created,
    Paused,
    Running,
    Stopped,
}

/// `Container`: a container as the runtime describes it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Container {
    pub id: String,
    pub pod_sandbox_id: String,
    /// The container's name in the pod spec.
    pub name: String,
    pub state: ContainerState,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    /// `linux.resources`: what the kubelet asked the runtime to enforce (limits).
    pub resources: Option<LinuxResources>,
    /// `linux.cgroups_path`, e.g. `kubepods-pod<uid>.slice:cri-containerd:<id>`.
    pub cgroups_path: String,
    pub pid: u32,
}

/// `LinuxResources`, flattened. `None`/empty means "not set".
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LinuxResources {
    pub cpu_shares: Option<u64>,
    pub cpu_quota: Option<i64>,
    pub cpu_period: Option<u64>,
    /// `cpu.cpus` (cpuset.cpus), e.g. `"2-3,6"`; empty if unset.
    pub cpuset_cpus: String,
    /// `cpu.mems` (cpuset.mems), e.g. `"0"`; empty if unset.
    pub cpuset_mems: String,
    pub memory_limit: Option<i64>,
    pub memory_reservation: Option<i64>,
    pub memory_swap: Option<i64>,
    pub hugepage_limits: Vec<HugepageLimit>,
    /// cgroup v2 unified entries, e.g. `memory.min`, `memory.high`.
    pub unified: BTreeMap<String, String>,
    pub pids_limit: Option<i64>,
}

/// `HugepageLimit`: page size as the kubelet writes it (`2MB`, `1GB`, `64KB`, binary
/// units) and the limit in bytes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HugepageLimit {
    pub page_size: String,
    pub limit: u64,
}

/// What a plugin asks to change in a container being created (`ContainerAdjustment`),
/// plus updates to other, existing containers (`CreateContainerResponse.update`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContainerAdjustment {
    /// `linux.resources.cpu.cpus`; `None` (or empty) leaves the runtime's value.
    pub cpuset_cpus: Option<String>,
    /// `linux.resources.cpu.mems`; `None` (or empty) leaves the runtime's value.
    pub cpuset_mems: Option<String>,
    /// Annotations to add to the container.
    pub annotations: BTreeMap<String, String>,
    /// Updates to other containers (e.g. the shrunken shared CPU pool).
    pub updates: Vec<ContainerUpdate>,
}

/// `ContainerUpdate`: new cpuset of an existing container.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContainerUpdate {
    pub container_id: String,
    pub cpuset_cpus: Option<String>,
    pub cpuset_mems: Option<String>,
    /// Let the runtime ignore a failure to apply this update.
    pub ignore_failure: bool,
}

/// Why a container must not be created: the kubelet's admission `reason` (e.g.
/// `TopologyAffinityError`) and `message`. Sent to the runtime as an error status whose
/// text is `"<reason>: <message>"`; container creation then fails with it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rejection {
    pub reason: String,
    pub message: String,
}

impl Rejection {
    pub fn new(reason: impl Into<String>, message: impl Into<String>) -> Rejection {
        Rejection {
            reason: reason.into(),
            message: message.into(),
        }
    }

    /// The error text sent on the wire.
    pub fn to_status_message(&self) -> String {
        format!("{}: {}", self.reason, self.message)
    }

    /// Parses `"<reason>: <message>"` back (also when prefixed by a runtime, e.g.
    /// `"rpc error: code = Unknown desc = <reason>: <message>"`).
    pub fn from_status_message(text: &str) -> Option<Rejection> {
        let text = match text.find(" desc = ") {
            Some(i) => &text[i + " desc = ".len()..],
            None => text,
        };
        let (reason, message) = text.split_once(": ")?;
        if reason.is_empty() || reason.contains(char::is_whitespace) {
            return None;
        }
        Some(Rejection::new(reason, message))
    }
}

impl std::fmt::Display for Rejection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.reason, self.message)
    }
}

/// What the runtime said about itself in `Configure`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RuntimeInfo {
    pub runtime_name: String,
    pub runtime_version: String,
    /// NRI version of the runtime, if it says (empty before NRI v0.10).
    pub nri_version: String,
    /// Plugin-specific configuration from the runtime's NRI config, if any.
    pub config: String,
    pub registration_timeout_ms: i64,
    pub request_timeout_ms: i64,
}
