//! Conversions between the wire messages ([`crate::pb`]) and the plain types.

use crate::pb::nri as pb;
use crate::types::*;

fn opt_u64(v: &Option<pb::OptionalUInt64>) -> Option<u64> {
    v.as_ref().map(|o| o.value)
}
fn opt_i64(v: &Option<pb::OptionalInt64>) -> Option<i64> {
    v.as_ref().map(|o| o.value)
}
fn some_u64(v: Option<u64>) -> Option<pb::OptionalUInt64> {
    v.map(|value| pb::OptionalUInt64 { value })
}
fn some_i64(v: Option<i64>) -> Option<pb::OptionalInt64> {
    v.map(|value| pb::OptionalInt64 { value })
}

impl From<&pb::LinuxResources> for LinuxResources {
    fn from(r: &pb::LinuxResources) -> Self {
        let cpu = r.cpu.clone().unwrap_or_default();
        let mem = r.memory.unwrap_or_default();
        LinuxResources {
            cpu_shares: opt_u64(&cpu.shares),
            cpu_quota: opt_i64(&cpu.quota),
            cpu_period: opt_u64(&cpu.period),
            cpuset_cpus: cpu.cpus,
            cpuset_mems: cpu.mems,
            memory_limit: opt_i64(&mem.limit),
            memory_reservation: opt_i64(&mem.reservation),
            memory_swap: opt_i64(&mem.swap),
            hugepage_limits: r
                .hugepage_limits
                .iter()
                .map(|h| HugepageLimit {
                    page_size: h.page_size.clone(),
                    limit: h.limit,
                })
                .collect(),
            unified: r.unified.clone(),
            pids_limit: r.pids.as_ref().map(|p| p.limit),
        }
    }
}

impl From<&LinuxResources> for pb::LinuxResources {
    fn from(r: &LinuxResources) -> Self {
        let cpu = pb::LinuxCpu {
            shares: some_u64(r.cpu_shares),
            quota: some_i64(r.cpu_quota),
            period: some_u64(r.cpu_period),
            cpus: r.cpuset_cpus.clone(),
            mems: r.cpuset_mems.clone(),
            ..Default::default()
        };
        let mem = pb::LinuxMemory {
            limit: some_i64(r.memory_limit),
            reservation: some_i64(r.memory_reservation),
            swap: some_i64(r.memory_swap),
            ..Default::default()
        };
        pb::LinuxResources {
            cpu: (cpu != pb::LinuxCpu::default()).then_some(cpu),
            memory: (mem != pb::LinuxMemory::default()).then_some(mem),
            hugepage_limits: r
                .hugepage_limits
                .iter()
                .map(|h| pb::HugepageLimit {
                    page_size: h.page_size.clone(),
                    limit: h.limit,
                })
                .collect(),
            unified: r.unified.clone(),
            pids: r.pids_limit.map(|limit| pb::LinuxPids { limit }),
            ..Default::default()
        }
    }
}

impl From<&pb::PodSandbox> for PodSandbox {
    fn from(p: &pb::PodSandbox) -> Self {
        let linux = p.linux.clone().unwrap_or_default();
        PodSandbox {
            id: p.id.clone(),
            name: p.name.clone(),
            uid: p.uid.clone(),
            namespace: p.namespace.clone(),
            labels: p.labels.clone(),
            annotations: p.annotations.clone(),
            runtime_handler: p.runtime_handler.clone(),
            cgroup_parent: linux.cgroup_parent,
            cgroups_path: linux.cgroups_path,
            pod_resources: linux.pod_resources.as_ref().map(Into::into),
            pod_overhead: linux.pod_overhead.as_ref().map(Into::into),
        }
    }
}

impl From<&PodSandbox> for pb::PodSandbox {
    fn from(p: &PodSandbox) -> Self {
        pb::PodSandbox {
            id: p.id.clone(),
            name: p.name.clone(),
            uid: p.uid.clone(),
            namespace: p.namespace.clone(),
            labels: p.labels.clone(),
            annotations: p.annotations.clone(),
            runtime_handler: p.runtime_handler.clone(),
            linux: Some(pb::LinuxPodSandbox {
                pod_overhead: p.pod_overhead.as_ref().map(Into::into),
                pod_resources: p.pod_resources.as_ref().map(Into::into),
                cgroup_parent: p.cgroup_parent.clone(),
                cgroups_path: p.cgroups_path.clone(),
                ..Default::default()
            }),
            ..Default::default()
        }
    }
}

fn state_from_pb(s: i32) -> ContainerState {
    match pb::ContainerState::try_from(s) {
        Ok(pb::ContainerState::ContainerCreated) => ContainerState::Created,
        Ok(pb::ContainerState::ContainerPaused) => ContainerState::Paused,
        Ok(pb::ContainerState::ContainerRunning) => ContainerState::Running,
        Ok(pb::ContainerState::ContainerStopped) => ContainerState::Stopped,
        _ => ContainerState::Unknown,
    }
}

fn state_to_pb(s: ContainerState) -> i32 {
    (match s {
        ContainerState::Unknown => pb::ContainerState::ContainerUnknown,
        ContainerState::Created => pb::ContainerState::ContainerCreated,
        ContainerState::Paused => pb::ContainerState::ContainerPaused,
        ContainerState::Running => pb::ContainerState::ContainerRunning,
        ContainerState::Stopped => pb::ContainerState::ContainerStopped,
    }) as i32
}

impl From<&pb::Container> for Container {
    fn from(c: &pb::Container) -> Self {
        let linux = c.linux.clone().unwrap_or_default();
        Container {
            id: c.id.clone(),
            pod_sandbox_id: c.pod_sandbox_id.clone(),
            name: c.name.clone(),
            state: state_from_pb(c.state),
            labels: c.labels.clone(),
            annotations: c.annotations.clone(),
            resources: linux.resources.as_ref().map(Into::into),
            cgroups_path: linux.cgroups_path,
            pid: c.pid,
        }
    }
}

impl From<&Container> for pb::Container {
    fn from(c: &Container) -> Self {
        pb::Container {
            id: c.id.clone(),
            pod_sandbox_id: c.pod_sandbox_id.clone(),
            name: c.name.clone(),
            state: state_to_pb(c.state),
            labels: c.labels.clone(),
            annotations: c.annotations.clone(),
            linux: Some(pb::LinuxContainer {
                resources: c.resources.as_ref().map(Into::into),
                cgroups_path: c.cgroups_path.clone(),
                ..Default::default()
            }),
            pid: c.pid,
            ..Default::default()
        }
    }
}

fn cpuset_resources(cpus: &Option<String>, mems: &Option<String>) -> Option<pb::LinuxResources> {
    let cpus = cpus.clone().unwrap_or_default();
    let mems = mems.clone().unwrap_or_default();
    if cpus.is_empty() && mems.is_empty() {
        return None;
    }
    Some(pb::LinuxResources {
        cpu: Some(pb::LinuxCpu {
            cpus,
            mems,
            ..Default::default()
        }),
        ..Default::default()
    })
}

fn non_empty(s: &str) -> Option<String> {
    (!s.is_empty()).then(|| s.to_string())
}

impl From<&ContainerUpdate> for pb::ContainerUpdate {
    fn from(u: &ContainerUpdate) -> Self {
        pb::ContainerUpdate {
            container_id: u.container_id.clone(),
            linux: Some(pb::LinuxContainerUpdate {
                resources: cpuset_resources(&u.cpuset_cpus, &u.cpuset_mems),
            }),
            ignore_failure: u.ignore_failure,
        }
    }
}

impl From<&pb::ContainerUpdate> for ContainerUpdate {
    fn from(u: &pb::ContainerUpdate) -> Self {
        let cpu = u
            .linux
            .as_ref()
            .and_then(|l| l.resources.as_ref())
            .and_then(|r| r.cpu.clone())
            .unwrap_or_default();
        ContainerUpdate {
            container_id: u.container_id.clone(),
            cpuset_cpus: non_empty(&cpu.cpus),
            cpuset_mems: non_empty(&cpu.mems),
            ignore_failure: u.ignore_failure,
        }
    }
}

impl From<&ContainerAdjustment> for pb::ContainerAdjustment {
    fn from(a: &ContainerAdjustment) -> Self {
        let resources = cpuset_resources(&a.cpuset_cpus, &a.cpuset_mems);
        pb::ContainerAdjustment {
            annotations: a.annotations.clone(),
            linux: resources.map(|r| pb::LinuxContainerAdjustment {
                resources: Some(r),
                ..Default::default()
            }),
            ..Default::default()
        }
    }
}

/// The plain view of a create response: adjustment plus updates to other containers.
pub fn adjustment_from_pb(resp: &pb::CreateContainerResponse) -> ContainerAdjustment {
    let adj = resp.adjust.clone().unwrap_or_default();
    let cpu = adj
        .linux
        .as_ref()
        .and_then(|l| l.resources.as_ref())
        .and_then(|r| r.cpu.clone())
        .unwrap_or_default();
    ContainerAdjustment {
        cpuset_cpus: non_empty(&cpu.cpus),
        cpuset_mems: non_empty(&cpu.mems),
        annotations: adj.annotations,
        updates: resp.update.iter().map(Into::into).collect(),
    }
}

/// The wire response for an adjustment.
pub fn adjustment_to_pb(a: &ContainerAdjustment) -> pb::CreateContainerResponse {
    let adjust: pb::ContainerAdjustment = a.into();
    pb::CreateContainerResponse {
        adjust: (adjust != pb::ContainerAdjustment::default()).then_some(adjust),
        update: a.updates.iter().map(Into::into).collect(),
        evict: vec![],
    }
}
