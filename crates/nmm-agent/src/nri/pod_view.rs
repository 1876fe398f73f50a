//! What the plugin makes of NRI's view of a pod: its uid and key, the Kubernetes pod
//! the agent admits (with placeholders for containers not created yet), and the
//! rejections it answers the runtime with.

use super::{INVALID_POD, UNEXPECTED_ADMISSION_ERROR};
use crate::agent::AgentError;
use k8s_openapi::api::core::v1::{
    Container as K8sContainer, Pod, PodSpec, PodStatus, ResourceRequirements,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity as K8sQuantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use nmm_core::node::AdmitResult;
use nmm_core::pod::{ContainerInfo, PodInfo, QosClass};
use nmm_core::quantity::Quantity;
use nmm_nri::podinfo::{
    annotation_names, parse_kubepods_cgroup, INIT_CONTAINERS_ANNOTATION,
    SIDECAR_CONTAINERS_ANNOTATION,
};
use nmm_nri::{
    Container, ContainerState, LinuxResources, PodSandbox, Rejection, REQUESTS_ANNOTATION,
};
use std::collections::{BTreeMap, BTreeSet};

/// The pod UID NRI shows: `uid`, else the one in the pod's cgroup parent.
pub fn sandbox_uid(pod: &PodSandbox) -> Option<String> {
    if !pod.uid.is_empty() {
        return Some(pod.uid.clone());
    }
    parse_kubepods_cgroup(&pod.cgroup_parent).and_then(|(_, u)| u)
}

pub(super) fn pod_key(pod: &PodSandbox) -> String {
    let ns = if pod.namespace.is_empty() {
        "default"
    } else {
        &pod.namespace
    };
    format!("{ns}/{}", pod.name)
}

fn k8s_list(m: &BTreeMap<String, Quantity>) -> Option<BTreeMap<String, K8sQuantity>> {
    (!m.is_empty()).then(|| {
        m.iter()
            .map(|(k, q)| (k.clone(), K8sQuantity(q.to_string())))
            .collect()
    })
}

pub(super) fn k8s_container(c: &ContainerInfo) -> K8sContainer {
    let requests = k8s_list(&c.requests);
    let limits = k8s_list(&c.limits);
    K8sContainer {
        name: c.name.clone(),
        resources: (requests.is_some() || limits.is_some()).then(|| ResourceRequirements {
            requests,
            limits,
            ..Default::default()
        }),
        restart_policy: c.restartable.then(|| "Always".to_string()),
        ..Default::default()
    }
}

/// A v1 Pod carrying exactly what the managers read of `info` (the form the agent
/// admits and records). The QoS class is pinned in `status.qosClass`.
///
/// One difference with `info`: a resource with a limit and no request gets its limit as
/// request when read back ([`PodInfo::from_pod`] does the API server's defaulting). NRI
/// cannot show a Burstable container's memory request (without MemoryQoS), so such a
/// container is recorded with request = limit; the managers allocate nothing for
/// Burstable pods either way.
pub fn pod_from_info(info: &PodInfo) -> Pod {
    let init: Vec<K8sContainer> = info.init_containers().map(k8s_container).collect();
    Pod {
        metadata: ObjectMeta {
            name: Some(info.name.clone()),
            namespace: Some(info.namespace.clone()),
            uid: Some(info.uid.clone()),
            ..Default::default()
        },
        spec: Some(PodSpec {
            containers: info.app_containers().map(k8s_container).collect(),
            init_containers: (!init.is_empty()).then_some(init),
            ..Default::default()
        }),
        status: Some(PodStatus {
            qos_class: Some(info.qos.as_str().to_string()),
            ..Default::default()
        }),
    }
}

/// Containers named by the pod's annotations (`nmm.io/init-containers`, then the keys
/// of `nmm.io/requests` in their order) that are not in `have`, with resources built
/// from the annotation's requests the way the kubelet would hand them to the runtime
/// (shares from the CPU request; for Guaranteed pods also the CFS quota and the memory
/// limit), so that [`pod_info_from_nri`] reads them back as the annotation says.
pub(super) fn placeholders(pod: &PodSandbox, have: &[Container]) -> Vec<Container> {
    let mut names: Vec<String> = Vec::new();
    names.extend(annotation_names(pod, INIT_CONTAINERS_ANNOTATION));
    names.extend(annotation_names(pod, SIDECAR_CONTAINERS_ANNOTATION));
    let requests: serde_json::Map<String, serde_json::Value> = pod
        .annotations
        .get(REQUESTS_ANNOTATION)
        .and_then(|t| serde_json::from_str::<serde_json::Value>(t).ok())
        .and_then(|v| v.as_object().cloned())
        .unwrap_or_default();
    names.extend(requests.keys().cloned());
    let guaranteed =
        parse_kubepods_cgroup(&pod.cgroup_parent).is_some_and(|(q, _)| q == QosClass::Guaranteed);
    let mut seen: BTreeSet<String> = have.iter().map(|c| c.name.clone()).collect();
    let mut out = Vec::new();
    for name in names {
        if !seen.insert(name.clone()) {
            continue;
        }
        let q = |res: &str| -> Option<Quantity> {
            let v = requests.get(&name)?.get(res)?;
            let text = match v {
                serde_json::Value::String(s) => s.clone(),
                serde_json::Value::Number(n) => n.to_string(),
                _ => return None,
            };
            Quantity::parse(text.trim()).ok()
        };
        let mut r = LinuxResources::default();
        if let Some(cpu) = q("cpu") {
            let m = cpu.milli_value();
            r.cpu_shares = Some(((m.max(0) as u64) * 1024 / 1000).max(2));
            if guaranteed {
                r.cpu_quota = Some(m * 100);
                r.cpu_period = Some(100_000);
            }
        }
        if guaranteed {
            r.memory_limit = q("memory").map(|m| m.value());
        }
        out.push(Container {
            id: String::new(),
            pod_sandbox_id: pod.id.clone(),
            name,
            state: ContainerState::Unknown,
            resources: Some(r),
            ..Default::default()
        });
    }
    out
}

pub(super) fn rejection(r: &AdmitResult) -> Rejection {
    Rejection::new(
        r.reason
            .clone()
            .unwrap_or_else(|| UNEXPECTED_ADMISSION_ERROR.into()),
        r.message.clone().unwrap_or_default(),
    )
}

/// The kubelet's wording for an admission that failed for another reason than the
/// managers' verdict (`UnexpectedAdmissionError`, "Allocate failed due to ..., which is
/// unexpected").
pub(super) fn agent_rejection(e: &AgentError) -> Rejection {
    match e {
        AgentError::MalformedPod { .. } => Rejection::new(INVALID_POD, e.to_string()),
        _ => Rejection::new(
            UNEXPECTED_ADMISSION_ERROR,
            format!("Allocate failed due to {e}, which is unexpected"),
        ),
    }
}

/// Whether the recorded pod holds a container of that name.
pub(super) fn holds(pod: &Pod, name: &str) -> bool {
    pod.spec.as_ref().is_some_and(|s| {
        s.containers.iter().any(|x| x.name == name)
            || s.init_containers.iter().flatten().any(|x| x.name == name)
    })
}
