//! The pod as the managers see it: containers in admission order with their requests and
//! limits parsed, and the QoS class computed exactly as `pkg/apis/core/v1/helper/qos` does.

use crate::quantity::Quantity;
use k8s_openapi::api::core::v1::{Container, Pod};
use std::collections::BTreeMap;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QosClass {
    Guaranteed,
    Burstable,
    BestEffort,
}

impl QosClass {
    pub fn as_str(self) -> &'static str {
        match self {
            QosClass::Guaranteed => "Guaranteed",
            QosClass::Burstable => "Burstable",
            QosClass::BestEffort => "BestEffort",
        }
    }
}

#[derive(Debug, Clone)]
pub struct ContainerInfo {
    pub name: String,
    pub init: bool,
    /// A restartable init container (sidecar): `restartPolicy: Always`.
    pub restartable: bool,
    pub requests: BTreeMap<String, Quantity>,
    pub limits: BTreeMap<String, Quantity>,
}

impl ContainerInfo {
    /// A regular (run-to-completion) init container.
    pub fn is_regular_init(&self) -> bool {
        self.init && !self.restartable
    }
}

#[derive(Debug, Clone)]
pub struct PodInfo {
    pub uid: String,
    pub name: String,
    pub namespace: String,
    pub qos: QosClass,
    /// Init containers first (spec order), then app containers (spec order).
    pub containers: Vec<ContainerInfo>,
}

impl PodInfo {
    pub fn init_containers(&self) -> impl Iterator<Item = &ContainerInfo> {
        self.containers.iter().filter(|c| c.init)
    }
    pub fn app_containers(&self) -> impl Iterator<Item = &ContainerInfo> {
        self.containers.iter().filter(|c| !c.init)
    }
    pub fn container(&self, name: &str) -> Option<&ContainerInfo> {
        self.containers.iter().find(|c| c.name == name)
    }
}

/// A quantity in a pod that does not parse: which container, which list, which resource.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("container {container:?}: resources.{list}.{resource}: {value:?}: {message}")]
pub struct PodQuantityError {
    pub container: String,
    pub list: &'static str,
    pub resource: String,
    pub value: String,
    pub message: String,
}

fn parse_list(
    c: &Container,
    list: &'static str,
    m: Option<&BTreeMap<String, k8s_openapi::apimachinery::pkg::api::resource::Quantity>>,
) -> Result<BTreeMap<String, Quantity>, PodQuantityError> {
    let mut out = BTreeMap::new();
    for (k, v) in m.into_iter().flatten() {
        let q = Quantity::parse(v.0.trim()).map_err(|e| {
            let bytes = k == "memory" || k == "ephemeral-storage" || k.starts_with("hugepages-");
            let hint = if bytes {
                crate::quantity_hint::byte_unit_hint(&v.0)
            } else {
                None
            };
            PodQuantityError {
                container: c.name.clone(),
                list,
                resource: k.clone(),
                value: v.0.clone(),
                message: match hint {
                    Some(h) => format!("{e}; {h}"),
                    None => e.to_string(),
                },
            }
        })?;
        out.insert(k.clone(), q);
    }
    Ok(out)
}

fn container_info(c: &Container, init: bool) -> Result<ContainerInfo, PodQuantityError> {
    let res = c.resources.as_ref();
    let limits = parse_list(c, "limits", res.and_then(|r| r.limits.as_ref()))?;
    let mut requests = parse_list(c, "requests", res.and_then(|r| r.requests.as_ref()))?;
    // API-server defaulting: a resource with a limit and no request requests its limit.
    for (k, v) in &limits {
        requests.entry(k.clone()).or_insert_with(|| v.clone());
    }
    Ok(ContainerInfo {
        name: c.name.clone(),
        init,
        restartable: init && c.restart_policy.as_deref() == Some("Always"),
        requests,
        limits,
    })
}

impl PodInfo {
    /// Builds the managers' view of a v1 Pod (requests defaulted from limits as the API
    /// server does). `pod_level_resources` is the v1.32 `PodLevelResources` gate.
    pub fn from_pod(pod: &Pod, pod_level_resources: bool) -> Result<PodInfo, PodQuantityError> {
        let spec = pod.spec.clone().unwrap_or_default();
        let mut containers = Vec::new();
        for c in spec.init_containers.iter().flatten() {
            containers.push(container_info(c, true)?);
        }
        for c in &spec.containers {
            containers.push(container_info(c, false)?);
        }
        let status_qos = pod
            .status
            .as_ref()
            .and_then(|s| s.qos_class.clone())
            .filter(|s| !s.is_empty());
        let qos = match status_qos.as_deref() {
            Some("Guaranteed") => QosClass::Guaranteed,
            Some("Burstable") => QosClass::Burstable,
            Some("BestEffort") => QosClass::BestEffort,
            _ => {
                let pod_level = if pod_level_resources {
                    spec.resources
                        .as_ref()
                        .map(|r| {
                            let fake = Container {
                                name: String::new(),
                                resources: Some(r.clone()),
                                ..Default::default()
                            };
                            container_info(&fake, false)
                        })
                        .transpose()?
                } else {
                    None
                };
                match pod_level {
                    Some(p) => compute_qos(std::slice::from_ref(&p)),
                    None => compute_qos(&containers),
                }
            }
        };
        let meta = &pod.metadata;
        Ok(PodInfo {
            uid: meta.uid.clone().unwrap_or_default(),
            name: meta.name.clone().unwrap_or_default(),
            namespace: meta.namespace.clone().unwrap_or_else(|| "default".into()),
            qos,
            containers,
        })
    }
}

/// `ComputePodQOS`: sums of cpu/memory requests and limits over all containers; every
/// container needs both limits; zero values count as absent.
pub fn compute_qos(containers: &[ContainerInfo]) -> QosClass {
    let tracked = |k: &str| k == "cpu" || k == "memory";
    let mut requests: BTreeMap<&str, Quantity> = BTreeMap::new();
    let mut limits: BTreeMap<&str, Quantity> = BTreeMap::new();
    let mut guaranteed = true;
    for c in containers {
        for (k, q) in &c.requests {
            if tracked(k) && q.sign() > 0 {
                requests.entry(k).or_insert_with(Quantity::zero).add(q);
            }
        }
        let mut has = 0;
        for (k, q) in &c.limits {
            if tracked(k) && q.sign() > 0 {
                has += 1;
                limits.entry(k).or_insert_with(Quantity::zero).add(q);
            }
        }
        if has != 2 {
            guaranteed = false;
        }
    }
    if requests.is_empty() && limits.is_empty() {
        return QosClass::BestEffort;
    }
    if guaranteed {
        for (k, r) in &requests {
            match limits.get(k) {
                Some(l) if l.cmp_value(r) == std::cmp::Ordering::Equal => {}
                _ => {
                    guaranteed = false;
                    break;
                }
            }
        }
    }
    if guaranteed && requests.len() == limits.len() {
        QosClass::Guaranteed
    } else {
        QosClass::Burstable
    }
}
