//! The agent's record of the live pods (`nmm_agent_pods`): pods trimmed to what the
//! managers read, the record's encoding, and the allocation text the journal compares on
//! replay.

use super::AgentError;
use k8s_openapi::api::core::v1::{Container, Pod, PodSpec, PodStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use nmm_core::node::AdmitResult;
use serde::{Deserialize, Serialize};
use std::path::Path;

/// The agent's record of the live pods, in admission order, committed with the
/// checkpoints (`nmm_agent_pods`).
#[derive(Debug, Serialize, Deserialize)]
struct PodRecord {
    version: u32,
    /// The last change-journal record these files hold.
    #[serde(default, skip_serializing_if = "is_zero")]
    seq: u64,
    pods: Vec<Pod>,
}

fn is_zero(v: &u64) -> bool {
    *v == 0
}

/// `namespace/name` of a pod.
pub fn pod_key(pod: &Pod) -> String {
    format!(
        "{}/{}",
        pod.metadata.namespace.as_deref().unwrap_or("default"),
        pod.metadata.name.as_deref().unwrap_or("")
    )
}

/// What the managers read of a pod, and nothing else (no images, no environment): the
/// form kept in the pod record.
pub fn trim_pod(pod: &Pod) -> Pod {
    let keep = |c: &Container| Container {
        name: c.name.clone(),
        resources: c.resources.clone(),
        restart_policy: c.restart_policy.clone(),
        ..Default::default()
    };
    Pod {
        metadata: ObjectMeta {
            name: pod.metadata.name.clone(),
            namespace: pod.metadata.namespace.clone(),
            uid: pod.metadata.uid.clone(),
            ..Default::default()
        },
        spec: pod.spec.as_ref().map(|s| PodSpec {
            containers: s.containers.iter().map(keep).collect(),
            init_containers: s
                .init_containers
                .as_ref()
                .map(|v| v.iter().map(keep).collect()),
            resources: s.resources.clone(),
            ..Default::default()
        }),
        status: pod
            .status
            .as_ref()
            .and_then(|s| s.qos_class.clone())
            .map(|q| PodStatus {
                qos_class: Some(q),
                ..Default::default()
            }),
    }
}

pub(super) fn encode_record(pods: &[(String, Pod)], seq: u64) -> String {
    let rec = PodRecord {
        version: 1,
        seq,
        pods: pods.iter().map(|(_, p)| p.clone()).collect(),
    };
    serde_json::to_string(&rec).expect("pods always serialise")
}

/// What an admission allocated, as recorded in the journal and compared on replay: per
/// container, its exclusive CPUs and memory blocks.
pub fn allocation_text(r: &AdmitResult) -> String {
    let mut out = String::new();
    for c in &r.containers {
        out.push_str(&c.name);
        out.push(':');
        out.push_str(&c.cpus.to_string());
        for b in &c.memory {
            let ids: Vec<String> = b.numa_affinity.iter().map(|i| i.to_string()).collect();
            out.push_str(&format!(" {}={}@{}", b.kind, b.size, ids.join(",")));
        }
        out.push(';');
    }
    out
}

pub(super) fn parse_record(
    bytes: &[u8],
    path: &Path,
) -> Result<(u64, Vec<(String, Pod)>), AgentError> {
    let rec: PodRecord = serde_json::from_slice(bytes).map_err(|e| AgentError::PodRecord {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    if rec.version != 1 {
        return Err(AgentError::PodRecord {
            path: path.to_path_buf(),
            message: format!("unknown version {}", rec.version),
        });
    }
    let pods = rec
        .pods
        .into_iter()
        .map(|p| (p.metadata.uid.clone().unwrap_or_default(), p))
        .collect();
    Ok((rec.seq, pods))
}
