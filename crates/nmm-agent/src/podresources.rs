//! The kubelet's PodResources v1 gRPC service (`v1.PodResourcesLister`): `List`,
//! `GetAllocatableResources` and `Get`, answered from the agent's books the way
//! kubelet v1.32's `pkg/kubelet/apis/podresources/server_v1.go` answers them:
//!
//! * `cpu_ids` of a container are its exclusive CPUs (`GetExclusiveCPUs`): empty for
//!   containers in the shared pool and under the `none` policy.
//! * `memory` of a container is its Memory Manager blocks, one `ContainerMemory` per
//!   block with the block's NUMA nodes.
//! * `List` and `Get` report app containers, preceded by restartable init containers
//!   (sidecars) when the `SidecarContainers` gate is on (the v1.32 default).
//! * `GetAllocatableResources`: every CPU but the reserved ones (static policy), and per
//!   NUMA node and memory type with a non-zero allocatable amount, that amount.
//! * `devices` (both calls) come from the kubelet's devices as the agent reads them
//!   ([`crate::devices`]: `machine.devices` and the kubelet's device checkpoint, looked
//!   at again before every call), through `nmm_core::devicemanager::view`: what each
//!   container holds, under the NUMA nodes the kubelet recorded (none for devices without
//!   topology); allocatable = every healthy registered device. Both as the kubelet sends
//!   them: one entry per device and NUMA node ([`devices_of`]). The agent allocates no
//!   devices itself.
//! * Calls are rate limited like the kubelet's (100 per second, bursts of 10);
//!   over the limit the answer is `ResourceExhausted: rejected by rate limit`.
//! * Requests over [`MAX_REQUEST_BYTES`] are refused (gRPC's default server limit, which
//!   the kubelet keeps).
//!
//! Lists are sorted (CPU ids ascending, memory by NUMA node then type) where the kubelet
//! gives Go's map order.

use crate::agent::Agent;
use nmm_core::cpumanager::CpuPolicy;
use nmm_core::devicemanager::DeviceManager;
use nmm_core::memorymanager::state::Block;
use nmm_core::node::Node;
use std::sync::{Arc, Mutex};
use std::time::Instant;
use tonic::{Request, Response, Status};

#[allow(clippy::all, missing_docs)]
pub mod proto {
    tonic::include_proto!("v1");
}

use proto::pod_resources_lister_server::{PodResourcesLister, PodResourcesListerServer};
use proto::{
    AllocatableResourcesRequest, AllocatableResourcesResponse, ContainerDevices, ContainerMemory,
    ContainerResources, GetPodResourcesRequest, GetPodResourcesResponse, ListPodResourcesRequest,
    ListPodResourcesResponse, NumaNode, PodResources, TopologyInfo,
};

/// The largest request accepted: 4 MiB, gRPC's default server receive limit.
pub const MAX_REQUEST_BYTES: usize = 4 * 1024 * 1024;
/// The kubelet's `podresources.DefaultQPS` and `DefaultBurstTokens`.
pub const RATE_QPS: f64 = 100.0;
pub const RATE_BURST: f64 = 10.0;

#[derive(Debug)]
struct TokenBucket {
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    fn allow(&mut self) -> bool {
        let now = Instant::now();
        let dt = now.duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + dt * RATE_QPS).min(RATE_BURST);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[derive(Debug)]
pub struct PodResourcesService {
    agent: Arc<Agent>,
    limiter: Mutex<TokenBucket>,
}

fn memory_of(blocks: &[Block]) -> Vec<ContainerMemory> {
    blocks
        .iter()
        .map(|b| ContainerMemory {
            memory_type: b.kind.clone(),
            size: b.size,
            topology: Some(TopologyInfo {
                nodes: b
                    .numa_affinity
                    .iter()
                    .map(|&id| NumaNode { id: i64::from(id) })
                    .collect(),
            }),
        })
        .collect()
}

/// Device lists (`nmm_core::devicemanager::view`) as PodResources messages the way kubelet
/// v1.32's `containerDevicesFromResourceDeviceInstances` builds them: one
/// `ContainerDevices` per device and NUMA node (the library's lists group the ids recorded
/// under one node), one without topology for a device without it. Sorted by resource,
/// device id, then node (the kubelet iterates Go maps), so a device's nodes stay together.
pub fn devices_of(
    list: Vec<nmm_core::devicemanager::view::TopologyDevices>,
) -> Vec<ContainerDevices> {
    let mut flat: Vec<(String, String, Option<i64>)> = Vec::new();
    for d in list {
        for id in d.ids {
            match &d.nodes {
                None => flat.push((d.resource.clone(), id, None)),
                Some(nodes) => flat.extend(
                    nodes
                        .iter()
                        .map(|&n| (d.resource.clone(), id.clone(), Some(n))),
                ),
            }
        }
    }
    flat.sort();
    flat.dedup();
    flat.into_iter()
        .map(|(resource_name, id, node)| ContainerDevices {
            resource_name,
            device_ids: vec![id],
            topology: node.map(|id| TopologyInfo {
                nodes: vec![NumaNode { id }],
            }),
        })
        .collect()
}

/// `GetAllocatableResources`' answer for the books `node` and the device view `devices`.
pub fn allocatable_of(node: &Node, devices: &DeviceManager) -> AllocatableResourcesResponse {
    let cpu_ids = match &node.cpu.policy {
        CpuPolicy::Static(p) => p
            .topology
            .all_cpus()
            .difference(&p.reserved)
            .iter()
            .map(i64::from)
            .collect(),
        CpuPolicy::None => Vec::new(),
    };
    let mut memory = Vec::new();
    if node.memory.static_policy().is_some() {
        for (id, st) in node.memory.machine_state() {
            for (kind, t) in &st.memory_map {
                if t.allocatable == 0 {
                    continue;
                }
                memory.extend(memory_of(&[Block {
                    numa_affinity: vec![id],
                    kind: kind.clone(),
                    size: t.allocatable,
                }]));
            }
        }
    }
    AllocatableResourcesResponse {
        devices: devices_of(devices.allocatable_topology_devices()),
        cpu_ids,
        memory,
    }
}

fn container_resources(
    node: &Node,
    devices: &DeviceManager,
    uid: &str,
    name: &str,
) -> ContainerResources {
    let cpu_ids = match &node.cpu.policy {
        CpuPolicy::Static(p) => p
            .assignments
            .get(uid)
            .and_then(|m| m.get(name))
            .map(|s| s.iter().map(i64::from).collect())
            .unwrap_or_default(),
        CpuPolicy::None => Vec::new(),
    };
    let memory = node
        .memory
        .static_policy()
        .and_then(|p| p.blocks(uid, name))
        .map(|b| memory_of(b))
        .unwrap_or_default();
    ContainerResources {
        name: name.to_string(),
        devices: devices_of(devices.topology_devices_of(uid, name)),
        cpu_ids,
        memory,
        dynamic_resources: Vec::new(),
    }
}

fn pod_resources(
    node: &Node,
    devices: &DeviceManager,
    uid: &str,
    pod: &k8s_openapi::api::core::v1::Pod,
    sidecars: bool,
) -> PodResources {
    let mut containers = Vec::new();
    if let Some(spec) = &pod.spec {
        if sidecars {
            for c in spec.init_containers.iter().flatten() {
                if c.restart_policy.as_deref() == Some("Always") {
                    containers.push(container_resources(node, devices, uid, &c.name));
                }
            }
        }
        for c in &spec.containers {
            containers.push(container_resources(node, devices, uid, &c.name));
        }
    }
    PodResources {
        name: pod.metadata.name.clone().unwrap_or_default(),
        namespace: pod
            .metadata
            .namespace
            .clone()
            .unwrap_or_else(|| "default".into()),
        containers,
    }
}

impl PodResourcesService {
    pub fn new(agent: Arc<Agent>) -> Self {
        PodResourcesService {
            agent,
            limiter: Mutex::new(TokenBucket {
                tokens: RATE_BURST,
                last: Instant::now(),
            }),
        }
    }

    /// The tonic service, with the request size limit set.
    pub fn into_server(self) -> PodResourcesListerServer<Self> {
        PodResourcesListerServer::new(self).max_decoding_message_size(MAX_REQUEST_BYTES)
    }

    fn admit(&self) -> Result<(), Status> {
        let mut l = self.limiter.lock().unwrap_or_else(|e| e.into_inner());
        if l.allow() {
            Ok(())
        } else {
            Err(Status::resource_exhausted("rejected by rate limit"))
        }
    }

    /// The device view, the kubelet's checkpoint looked at again first.
    fn devices(agent: &Agent) -> Arc<DeviceManager> {
        agent.refresh_devices();
        agent.devices().view()
    }

    /// `List`'s answer.
    pub fn list(agent: &Agent) -> ListPodResourcesResponse {
        let sidecars = agent.sidecars;
        let devices = Self::devices(agent);
        agent.inspect(|node, pods| ListPodResourcesResponse {
            pod_resources: pods
                .iter()
                .map(|(uid, pod)| pod_resources(node, &devices, uid, pod, sidecars))
                .collect(),
        })
    }

    /// `GetAllocatableResources`' answer.
    pub fn allocatable(agent: &Agent) -> AllocatableResourcesResponse {
        let devices = Self::devices(agent);
        agent.inspect(|node, _| allocatable_of(node, &devices))
    }

    /// `Get`'s answer, or the kubelet's error text.
    pub fn get_pod(
        agent: &Agent,
        name: &str,
        namespace: &str,
    ) -> Result<GetPodResourcesResponse, String> {
        let sidecars = agent.sidecars;
        let devices = Self::devices(agent);
        agent.inspect(|node, pods| {
            pods.iter()
                .find(|(_, p)| {
                    p.metadata.name.as_deref() == Some(name)
                        && p.metadata.namespace.as_deref().unwrap_or("default") == namespace
                })
                .map(|(uid, pod)| GetPodResourcesResponse {
                    pod_resources: Some(pod_resources(node, &devices, uid, pod, sidecars)),
                })
                .ok_or_else(|| format!("pod {name} in namespace {namespace} not found"))
        })
    }
}

/// Runs an answer on the blocking pool: it may read and decode a changed device
/// checkpoint, and waits for the books' lock.
async fn blocking<R: Send + 'static>(f: impl FnOnce() -> R + Send + 'static) -> Result<R, Status> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Status::internal(format!("the answer could not be computed: {e}")))
}

#[tonic::async_trait]
impl PodResourcesLister for PodResourcesService {
    async fn list(
        &self,
        _req: Request<ListPodResourcesRequest>,
    ) -> Result<Response<ListPodResourcesResponse>, Status> {
        self.admit()?;
        let agent = self.agent.clone();
        blocking(move || Self::list(&agent))
            .await
            .map(Response::new)
    }

    async fn get_allocatable_resources(
        &self,
        _req: Request<AllocatableResourcesRequest>,
    ) -> Result<Response<AllocatableResourcesResponse>, Status> {
        self.admit()?;
        let agent = self.agent.clone();
        blocking(move || Self::allocatable(&agent))
            .await
            .map(Response::new)
    }

    async fn get(
        &self,
        req: Request<GetPodResourcesRequest>,
    ) -> Result<Response<GetPodResourcesResponse>, Status> {
        self.admit()?;
        let r = req.into_inner();
        let agent = self.agent.clone();
        // The kubelet returns a plain Go error here, which gRPC sends as code Unknown.
        blocking(move || Self::get_pod(&agent, &r.pod_name, &r.pod_namespace))
            .await?
            .map(Response::new)
            .map_err(Status::unknown)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nmm_core::devicemanager::Device;
    use nmm_core::kubelet_config::KubeletConfig;
    use nmm_core::machine::Machine;
    use nmm_core::node::StartOptions;
    use nmm_core::pod::PodInfo;

    fn gpu(id: &str, numa: Option<Vec<u32>>, healthy: bool) -> Device {
        Device {
            resource: "nvidia.com/gpu".into(),
            id: id.into(),
            numa,
            healthy,
        }
    }

    #[test]
    fn one_entry_per_device_and_numa_node_as_the_kubelet_sends_them() {
        use nmm_core::devicemanager::view::TopologyDevices;
        let t = |r: &str, ids: &[&str], nodes: Option<Vec<i64>>| TopologyDevices {
            resource: r.into(),
            ids: ids.iter().map(|s| s.to_string()).collect(),
            nodes,
        };
        let got: Vec<(String, Vec<String>, Option<Vec<i64>>)> = devices_of(vec![
            t("nvidia.com/gpu", &["gpu-1", "gpu-0"], Some(vec![1])),
            t("nvidia.com/gpu", &["gpu-1"], Some(vec![0])),
            t("example.com/nic", &["nic-0"], None),
        ])
        .into_iter()
        .map(|d| {
            (
                d.resource_name,
                d.device_ids,
                d.topology.map(|t| t.nodes.iter().map(|n| n.id).collect()),
            )
        })
        .collect();
        let e = |r: &str, id: &str, n: Option<Vec<i64>>| (r.to_string(), vec![id.to_string()], n);
        assert_eq!(
            got,
            vec![
                e("example.com/nic", "nic-0", None),
                e("nvidia.com/gpu", "gpu-0", Some(vec![1])),
                e("nvidia.com/gpu", "gpu-1", Some(vec![0])),
                e("nvidia.com/gpu", "gpu-1", Some(vec![1])),
            ]
        );
    }

    #[test]
    fn devices_are_reported_with_their_numa_nodes() {
        // Any Device Manager view: here one whose devices the engine allocated.
        let opts = StartOptions {
            devices: vec![
                gpu("gpu-0", Some(vec![0]), true),
                gpu("gpu-1", Some(vec![1]), true),
                gpu("gpu-2", Some(vec![1]), false),
                gpu("gpu-3", None, true),
            ],
            ..Default::default()
        };
        let machine = Machine::synthetic(2, 2, 0, 4 << 30, 1 << 30);
        let mut node = Node::start(machine, KubeletConfig::default(), opts).unwrap();
        let pod: k8s_openapi::api::core::v1::Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "p", "uid": "uid-p"},
            "spec": {"containers": [{"name": "c", "resources": {"limits": {"nvidia.com/gpu": "1"}}}]}
        }))
        .unwrap();
        let r = node
            .admit(&PodInfo::from_pod(&pod, false).unwrap())
            .unwrap();
        assert!(r.admitted, "{:?}", r.message);

        let c = container_resources(&node, &node.devices, "uid-p", "c");
        assert_eq!(c.devices.len(), 1, "{:?}", c.devices);
        let d = &c.devices[0];
        assert_eq!(d.resource_name, "nvidia.com/gpu");
        assert_eq!(d.device_ids, vec!["gpu-0".to_string()]);
        assert_eq!(d.topology.as_ref().unwrap().nodes, vec![NumaNode { id: 0 }]);

        let a = allocatable_of(&node, &node.devices);
        let got: Vec<(String, Option<Vec<i64>>)> = a
            .devices
            .iter()
            .map(|d| {
                (
                    d.device_ids.join(","),
                    d.topology
                        .as_ref()
                        .map(|t| t.nodes.iter().map(|n| n.id).collect()),
                )
            })
            .collect();
        // Unhealthy gpu-2 is not allocatable; gpu-3 has no topology.
        assert_eq!(
            got,
            vec![
                ("gpu-0".to_string(), Some(vec![0])),
                ("gpu-1".to_string(), Some(vec![1])),
                ("gpu-3".to_string(), None),
            ]
        );
        // A container without devices reports none.
        assert!(container_resources(&node, &node.devices, "uid-p", "other")
            .devices
            .is_empty());
    }
}
