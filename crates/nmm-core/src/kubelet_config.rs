//! The subset of `KubeletConfiguration` (kubelet.config.k8s.io/v1beta1) that the Topology,
//! CPU and Memory Managers read, with v1beta1 field names and defaults. Unknown fields of a
//! full kubelet config file are ignored, as the kubelet's own decoder would accept them.

use serde::{Deserialize, Deserializer, Serialize};
use std::collections::BTreeMap;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct KubeletConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_manager_policy: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reserved_memory: Option<Vec<MemoryReservation>>,
    #[serde(
        default,
        deserialize_with = "string_map",
        skip_serializing_if = "Option::is_none"
    )]
    pub kube_reserved: Option<BTreeMap<String, String>>,
    #[serde(
        default,
        deserialize_with = "string_map",
        skip_serializing_if = "Option::is_none"
    )]
    pub system_reserved: Option<BTreeMap<String, String>>,
    #[serde(
        default,
        deserialize_with = "string_map",
        skip_serializing_if = "Option::is_none"
    )]
    pub eviction_hard: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_manager_policy: Option<String>,
    #[serde(
        default,
        deserialize_with = "string_map",
        skip_serializing_if = "Option::is_none"
    )]
    pub cpu_manager_policy_options: Option<BTreeMap<String, String>>,
    #[serde(
        rename = "reservedSystemCPUs",
        default,
        deserialize_with = "opt_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub reserved_system_cpus: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topology_manager_policy: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topology_manager_scope: Option<String>,
    #[serde(
        default,
        deserialize_with = "string_map",
        skip_serializing_if = "Option::is_none"
    )]
    pub topology_manager_policy_options: Option<BTreeMap<String, String>>,
    /// KEP-6232 (not in kubelet v1.32): `{memory-drift-tolerance: off|auto|<quantity>}`,
    /// with the feature gate `MemoryManagerDriftTolerance`.
    #[serde(
        default,
        deserialize_with = "string_map",
        skip_serializing_if = "Option::is_none"
    )]
    pub memory_manager_policy_options: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub feature_gates: Option<BTreeMap<String, bool>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system_reserved_cgroup: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kube_reserved_cgroup: Option<String>,
}

/// One `reservedMemory` entry: `{numaNode: 0, limits: {memory: 1Gi}}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MemoryReservation {
    pub numa_node: i32,
    /// Resource name -> quantity text, in the order written (the kubelet keeps a map; the
    /// order only decides which of several errors is reported first).
    #[serde(deserialize_with = "string_vec_map")]
    pub limits: Vec<(String, String)>,
}

impl KubeletConfig {
    /// The static CPU Manager and the Static Memory Manager under the Topology Manager
    /// `policy` and `scope`, nothing reserved yet (see [`KubeletConfig::reserving`]).
    pub fn static_managers(policy: &str, scope: &str) -> KubeletConfig {
        KubeletConfig {
            memory_manager_policy: Some("Static".into()),
            cpu_manager_policy: Some("static".into()),
            topology_manager_policy: Some(policy.into()),
            topology_manager_scope: Some(scope.into()),
            ..Default::default()
        }
    }

    /// `cpu` and `memory` as kube-reserved, no hard eviction threshold, and that memory
    /// as NUMA node 0's `reservedMemory` (the Static Memory Manager starts only when the
    /// reservations add up to kube-reserved plus the eviction threshold).
    pub fn reserving(mut self, cpu: &str, memory: &str) -> KubeletConfig {
        self.kube_reserved = Some(
            [
                ("cpu".to_string(), cpu.to_string()),
                ("memory".to_string(), memory.to_string()),
            ]
            .into(),
        );
        self.eviction_hard = Some(BTreeMap::new());
        self.reserved_memory = Some(vec![MemoryReservation {
            numa_node: 0,
            limits: vec![("memory".into(), memory.into())],
        }]);
        self
    }

    /// One more `topologyManagerPolicyOptions` entry.
    pub fn topology_option(mut self, name: &str, value: &str) -> KubeletConfig {
        self.topology_manager_policy_options
            .get_or_insert_with(BTreeMap::new)
            .insert(name.into(), value.into());
        self
    }

    pub fn memory_manager_policy(&self) -> &str {
        self.memory_manager_policy.as_deref().unwrap_or("None")
    }
    pub fn cpu_manager_policy(&self) -> &str {
        self.cpu_manager_policy.as_deref().unwrap_or("none")
    }
    pub fn topology_manager_policy(&self) -> &str {
        self.topology_manager_policy.as_deref().unwrap_or("none")
    }
    pub fn topology_manager_scope(&self) -> &str {
        self.topology_manager_scope
            .as_deref()
            .unwrap_or("container")
    }
    /// `evictionHard`, with the kubelet's Linux defaults when the field is absent.
    pub fn eviction_hard(&self) -> BTreeMap<String, String> {
        match &self.eviction_hard {
            Some(m) => m.clone(),
            None => [
                ("memory.available", "100Mi"),
                ("nodefs.available", "10%"),
                ("nodefs.inodesFree", "5%"),
                ("imagefs.available", "15%"),
                ("imagefs.inodesFree", "5%"),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        }
    }
    /// A feature gate's value, with v1.32 defaults for the gates these managers read.
    pub fn feature_gate(&self, name: &str) -> bool {
        if let Some(v) = self.feature_gates.as_ref().and_then(|g| g.get(name)) {
            return *v;
        }
        matches!(
            name,
            "TopologyManagerPolicyOptions"
                | "TopologyManagerPolicyBetaOptions"
                | "CPUManagerPolicyOptions"
                | "CPUManagerPolicyBetaOptions"
                | "MemoryManager"
                | "CPUManager"
                | "TopologyManager"
        )
    }
}

fn scalar_to_string(v: serde_json::Value) -> Result<String, String> {
    match v {
        serde_json::Value::String(s) => Ok(s),
        serde_json::Value::Number(n) => Ok(n.to_string()),
        serde_json::Value::Bool(b) => Ok(b.to_string()),
        other => Err(format!("expected a string, got {other}")),
    }
}

fn string_map<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<BTreeMap<String, String>>, D::Error> {
    let v: Option<BTreeMap<String, serde_json::Value>> = Option::deserialize(d)?;
    v.map(|m| {
        m.into_iter()
            .map(|(k, v)| scalar_to_string(v).map(|s| (k, s)))
            .collect::<Result<_, _>>()
            .map_err(serde::de::Error::custom)
    })
    .transpose()
}

fn string_vec_map<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<(String, String)>, D::Error> {
    let v: serde_json::Map<String, serde_json::Value> = serde_json::Map::deserialize(d)?;
    v.into_iter()
        .map(|(k, v)| scalar_to_string(v).map(|s| (k, s)))
        .collect::<Result<_, _>>()
        .map_err(serde::de::Error::custom)
}

fn opt_string<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    let v: Option<serde_json::Value> = Option::deserialize(d)?;
    v.map(scalar_to_string)
        .transpose()
        .map_err(serde::de::Error::custom)
}
