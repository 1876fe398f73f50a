//! A small fixed node and a deterministic stream of pod events, shared by the robustness
//! test, the `event_stream` example and the other tests. Not needed to run the agent.

use k8s_openapi::api::core::v1::Pod;
use nmm_core::cpuset::CpuSet;
use nmm_core::kubelet_config::KubeletConfig;
use nmm_core::machine::{Cpu, Machine, NumaNode};
use serde_json::json;
use std::collections::BTreeMap;

const GI: u64 = 1 << 30;
const MI: u64 = 1 << 20;

/// Two NUMA nodes (one socket each), 4 cores x 2 threads per node: node 0 has CPUs 0-3
/// and their siblings 8-11, node 1 has 4-7 and 12-15. 8 GiB per node, 512 MiB of it in
/// 2 MiB hugepages.
pub fn machine() -> Machine {
    let mut m = Machine::default();
    for node in 0..2u32 {
        let mut cpus = Vec::new();
        for core in 0..4u32 {
            let core_id = node * 4 + core;
            for thread in 0..2u32 {
                let id = core_id + thread * 8;
                cpus.push(id);
                m.cpus.push(Cpu {
                    id,
                    core: core_id,
                    socket: node,
                    numa: node,
                });
            }
        }
        m.nodes.push(NumaNode {
            id: node,
            cpus: CpuSet::from_ids(cpus),
            memory: 8 * GI,
            hugepages: BTreeMap::from([(2 * MI, 512 * MI)]),
            distances: vec![],
        });
    }
    m.cpus.sort_by_key(|c| c.id);
    m.default_distances();
    m
}

/// Static CPU and Memory Managers, `single-numa-node` Topology Manager, one reserved CPU
/// and 1100Mi of reserved memory (600Mi on node 0, 500Mi on node 1).
pub fn kubelet_config() -> KubeletConfig {
    serde_json::from_value(json!({
        "memoryManagerPolicy": "Static",
        "cpuManagerPolicy": "static",
        "topologyManagerPolicy": "single-numa-node",
        "topologyManagerScope": "container",
        "kubeReserved": {"cpu": "1", "memory": "500Mi"},
        "systemReserved": {"memory": "500Mi"},
        "evictionHard": {"memory.available": "100Mi"},
        "reservedMemory": [
            {"numaNode": 0, "limits": {"memory": "600Mi"}},
            {"numaNode": 1, "limits": {"memory": "500Mi"}}
        ]
    }))
    .expect("the test config parses")
}

/// A pod from a list of containers: `(name, cpu, memory, hugepages-2Mi)`, requests =
/// limits (Guaranteed when every container has cpu and memory).
pub fn pod(
    uid: &str,
    name: &str,
    containers: &[(&str, &str, &str, Option<&str>)],
    init: &[(&str, &str, &str, Option<&str>)],
) -> Pod {
    let c = |(n, cpu, mem, hp): &(&str, &str, &str, Option<&str>)| {
        let mut r = serde_json::Map::new();
        if !cpu.is_empty() {
            r.insert("cpu".into(), json!(cpu));
        }
        if !mem.is_empty() {
            r.insert("memory".into(), json!(mem));
        }
        if let Some(h) = hp {
            r.insert("hugepages-2Mi".into(), json!(h));
        }
        if r.is_empty() {
            json!({"name": n, "image": "busybox"})
        } else {
            json!({"name": n, "image": "busybox", "resources": {"requests": r, "limits": r}})
        }
    };
    let mut spec = json!({"containers": containers.iter().map(c).collect::<Vec<_>>()});
    if !init.is_empty() {
        spec["initContainers"] = json!(init.iter().map(c).collect::<Vec<_>>());
    }
    serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "default", "uid": uid},
        "spec": spec,
    }))
    .expect("test pods parse")
}

#[derive(Debug, Clone)]
pub enum Event {
    Admit(Box<Pod>),
    Remove(String),
}

/// An endless, deterministic stream of admissions and removals: the same seed gives the
/// same events. Pods are mostly Guaranteed (1-3 exclusive CPUs, 256Mi-2Gi, some with
/// hugepages or an init container, some with a fractional CPU), some Burstable or
/// BestEffort; removals name a pod announced earlier (admitted or not).
#[derive(Debug, Clone)]
pub struct EventStream {
    state: u64,
    next_pod: u64,
    announced: Vec<String>,
}

impl EventStream {
    pub fn new(seed: u64) -> Self {
        EventStream {
            state: seed ^ 0x9e37_79b9_7f4a_7c15,
            next_pod: 0,
            announced: Vec::new(),
        }
    }

    /// splitmix64
    fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
}

impl Iterator for EventStream {
    type Item = Event;

    fn next(&mut self) -> Option<Event> {
        let remove =
            !self.announced.is_empty() && (self.announced.len() > 10 || self.below(100) < 40);
        if remove {
            let i = self.below(self.announced.len() as u64) as usize;
            return Some(Event::Remove(self.announced.swap_remove(i)));
        }
        let k = self.next_pod;
        self.next_pod += 1;
        let uid = format!("00000000-0000-4000-8000-{k:012}");
        let name = format!("pod-{k}");
        let kind = self.below(100);
        let mems = ["256Mi", "512Mi", "1Gi", "1536Mi", "2Gi"];
        let cpus = ["1", "2", "3"];
        let mut cs: Vec<(String, String, String, Option<String>)> = Vec::new();
        let mut init: Vec<(String, String, String, Option<String>)> = Vec::new();
        let n = 1 + self.below(2) as usize;
        for j in 0..n {
            let cpu = cpus[self.below(3) as usize].to_string();
            let mem = mems[self.below(5) as usize].to_string();
            let hp = if self.below(100) < 20 {
                Some(["64Mi", "128Mi", "256Mi"][self.below(3) as usize].to_string())
            } else {
                None
            };
            cs.push((format!("c{j}"), cpu, mem, hp));
        }
        match kind {
            // BestEffort
            0..=11 => cs.iter_mut().for_each(|c| {
                c.1.clear();
                c.2.clear();
                c.3 = None;
            }),
            // Guaranteed with a fractional CPU: shared CPUs, memory blocks.
            12..=16 => cs.iter_mut().for_each(|c| {
                c.1 = "500m".into();
                c.3 = None;
            }),
            // Burstable (memory only): neither exclusive CPUs nor memory blocks.
            17..=21 => cs.iter_mut().for_each(|c| {
                c.1.clear();
                c.3 = None;
            }),
            // Guaranteed with an init container
            22..=31 => init.push((
                "init".to_string(),
                "1".to_string(),
                "512Mi".to_string(),
                None,
            )),
            _ => {}
        }
        let borrowed: Vec<(&str, &str, &str, Option<&str>)> = cs
            .iter()
            .map(|(a, b, c, d)| (a.as_str(), b.as_str(), c.as_str(), d.as_deref()))
            .collect();
        let init_b: Vec<(&str, &str, &str, Option<&str>)> = init
            .iter()
            .map(|(a, b, c, d)| (a.as_str(), b.as_str(), c.as_str(), d.as_deref()))
            .collect();
        self.announced.push(uid.clone());
        Some(Event::Admit(Box::new(pod(&uid, &name, &borrowed, &init_b))))
    }
}

/// NRI-shaped pods and containers, as containerd shows them (systemd cgroup driver), for
/// the NRI tests and benchmarks.
pub mod nri {
    use nmm_nri::{Container, ContainerState, LinuxResources, PodSandbox};

    /// A pod sandbox; `qos` is `guaranteed`, `burstable` or `besteffort`.
    pub fn sandbox(name: &str, uid: &str, qos: &str) -> PodSandbox {
        let sys_uid = uid.replace('-', "_");
        let cgroup_parent = match qos {
            "guaranteed" => format!("kubepods-pod{sys_uid}.slice"),
            q => format!("kubepods-{q}-pod{sys_uid}.slice"),
        };
        PodSandbox {
            id: format!("sandbox-{name}"),
            name: name.into(),
            uid: uid.into(),
            namespace: "default".into(),
            cgroup_parent,
            ..Default::default()
        }
    }

    /// A container: quota for the CPU limit (millicores), shares for the request, the
    /// memory limit in bytes.
    pub fn container(
        pod: &PodSandbox,
        name: &str,
        limit_m: Option<i64>,
        req_m: Option<u64>,
        mem: Option<i64>,
    ) -> Container {
        Container {
            id: format!("ctr-{}-{name}", pod.name),
            pod_sandbox_id: pod.id.clone(),
            name: name.into(),
            state: ContainerState::Created,
            resources: Some(LinuxResources {
                cpu_shares: Some(req_m.map_or(2, |m| (m * 1024 / 1000).max(2))),
                cpu_quota: Some(limit_m.map_or(-1, |m| m * 100)),
                cpu_period: Some(100_000),
                memory_limit: mem,
                ..Default::default()
            }),
            cgroups_path: format!(
                "{}:cri-containerd:ctr-{}-{name}",
                pod.cgroup_parent, pod.name
            ),
            ..Default::default()
        }
    }

    /// A uid for pod number `i`.
    pub fn uid(i: u64) -> String {
        format!("00000000-0000-4000-8000-{i:012}")
    }

    /// `n` pods of `per_pod` containers each: every `guaranteed_every`-th pod
    /// Guaranteed (1 exclusive CPU and 256Mi per container), the others Burstable.
    pub fn population(
        n: u64,
        per_pod: usize,
        guaranteed_every: u64,
    ) -> (Vec<PodSandbox>, Vec<Container>) {
        let mut pods = Vec::new();
        let mut ctrs = Vec::new();
        for i in 0..n {
            let g = guaranteed_every > 0 && i % guaranteed_every == 0;
            let p = sandbox(
                &format!("pod{i}"),
                &uid(i),
                if g { "guaranteed" } else { "burstable" },
            );
            for k in 0..per_pod {
                let name = format!("c{k}");
                ctrs.push(if g {
                    container(&p, &name, Some(1000), Some(1000), Some(256 << 20))
                } else {
                    container(&p, &name, None, Some(100), None)
                });
            }
            pods.push(p);
        }
        (pods, ctrs)
    }
}

/// Waits (polling, up to `timeout`) until no agent holds the state directory `dir`: an
/// agent's `Drop` (its compaction) may still run on another thread after the last `Arc`
/// to it is gone, and the lock is released only at its end. Returns whether it was freed.
pub fn wait_until_unlocked(dir: &std::path::Path, timeout: std::time::Duration) -> bool {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        match crate::lock::StateDirLock::acquire(dir) {
            Ok(_) => return true,
            Err(crate::lock::LockError::Held { .. }) if std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(5))
            }
            Err(_) => return false,
        }
    }
}
