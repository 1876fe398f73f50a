//! Containers of admitted pods: the cpuset the kubelet would give one, written into its
//! cgroup when the agent enforces (`--cgroup-root`), and the shared containers' cgroups
//! rewritten when the shared pool changes (the kubelet's CPU Manager reconcile loop).

use super::{Agent, AgentError, Inner};
use crate::cgroup::ContainerCpuset;
use nmm_core::cpumanager::CpuPolicy;
use nmm_core::node::Node;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// The cpuset the kubelet would give a container now.
pub fn container_cpuset(node: &Node, uid: &str, container: &str) -> ContainerCpuset {
    let (cpus, exclusive) = match &node.cpu.policy {
        CpuPolicy::None => (None, false),
        CpuPolicy::Static(p) => match p.assignments.get(uid).and_then(|m| m.get(container)) {
            Some(s) => (Some(s.clone()), true),
            None => (Some(p.default_set.clone()), false),
        },
    };
    let mems = node
        .memory
        .static_policy()
        .and_then(|p| p.blocks(uid, container))
        .map(|blocks| {
            let ids: BTreeSet<u32> = blocks
                .iter()
                .flat_map(|b| b.numa_affinity.iter().copied())
                .collect();
            ids.into_iter().collect::<Vec<_>>()
        })
        .filter(|v| !v.is_empty());
    ContainerCpuset {
        cpus,
        exclusive,
        mems,
    }
}

impl Agent {
    fn check_container(g: &Inner, uid: &str, container: &str) -> Result<(), AgentError> {
        match g.pods.iter().find(|(u, _)| u == uid) {
            Some((_, pod)) => {
                let spec = pod.spec.as_ref();
                let known = spec.is_some_and(|s| {
                    s.containers.iter().any(|c| c.name == container)
                        || s.init_containers
                            .iter()
                            .flatten()
                            .any(|c| c.name == container)
                });
                if known {
                    Ok(())
                } else {
                    Err(AgentError::UnknownContainer {
                        pod: uid.to_string(),
                        container: container.to_string(),
                    })
                }
            }
            None if g.unrecorded.contains(uid) || g.node.is_live(uid) => Ok(()),
            None => Err(AgentError::UnknownPod(uid.to_string())),
        }
    }

    /// A container of an admitted pod is being started: the cpuset it should get
    /// (exclusive CPUs or the shared pool; the NUMA nodes of its memory).
    pub fn container_started(
        &self,
        uid: &str,
        container: &str,
    ) -> Result<ContainerCpuset, AgentError> {
        let g = self.lock();
        Self::check_container(&g, uid, container)?;
        Ok(container_cpuset(&g.node, uid, container))
    }

    /// [`Agent::container_started`], and write the cpuset into the container's cgroup
    /// (`cgroup` relative to the cgroup root). The agent remembers the cgroup: when the
    /// shared pool changes, it rewrites the `cpuset.cpus` of every shared container.
    pub fn container_started_in(
        &self,
        uid: &str,
        container: &str,
        cgroup: &Path,
    ) -> Result<ContainerCpuset, AgentError> {
        let enforcer = self.enforcer.as_ref().ok_or(AgentError::NoEnforcer)?;
        let mut g = self.lock();
        Self::check_container(&g, uid, container)?;
        let set = container_cpuset(&g.node, uid, container);
        if let Err(e) = enforcer.apply(cgroup, &set) {
            self.metrics.cgroup_write_errors.inc();
            return Err(e.into());
        }
        g.cgroups.insert(
            (uid.to_string(), container.to_string()),
            cgroup.to_path_buf(),
        );
        Ok(set)
    }

    /// Containers whose cgroup the agent writes, with their cgroup path.
    pub fn enforced_cgroups(&self) -> Vec<(String, String, PathBuf)> {
        let g = self.lock();
        g.cgroups
            .iter()
            .map(|((u, c), p)| (u.clone(), c.clone(), p.clone()))
            .collect()
    }

    /// The kubelet's CPU Manager reconcile loop: shared containers follow the default set
    /// (rewritten when it changed).
    pub(super) fn refresh_shared_cgroups(&self, g: &mut Inner) {
        let Some(enforcer) = &self.enforcer else {
            return;
        };
        let pool = match &g.node.cpu.policy {
            CpuPolicy::Static(p) => Some(p.default_set.clone()),
            CpuPolicy::None => None,
        };
        if pool == g.last_pool {
            return;
        }
        g.last_pool = pool;
        for ((uid, container), path) in &g.cgroups {
            let set = container_cpuset(&g.node, uid, container);
            if set.exclusive {
                continue;
            }
            if let Err(e) = enforcer.apply(path, &set) {
                self.metrics.cgroup_write_errors.inc();
                tracing::warn!("shared pool update of {uid}/{container}: {e}");
            }
        }
    }
}
