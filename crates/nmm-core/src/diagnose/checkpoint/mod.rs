//! Diagnosis of the kubelet's checkpoints (`nmm state show|verify`, the agent): which
//! checkpoint a file is, whether its checksum holds and what a mismatch means, and whether
//! the kubelet would restart with it on a machine and config, with advice. Pure: the
//! callers read the files and render the results.

mod checksum;
mod device;
mod restart;
mod text;

pub use self::checksum::*;
pub use self::device::*;
pub use self::restart::*;
pub use self::text::*;

use crate::checkpoint::memory::{MemoryCheckpoint, MemoryCheckpointFormat, PodEntries};
use crate::checkpoint::{self, CheckpointError};
use crate::cpuset::CpuSet;
use crate::kubelet_config::KubeletConfig;
use crate::machine::Machine;
use crate::memorymanager::policy_static::{
    default_machine_state, replay_assignments, state_differences, SystemReserved,
};
use crate::memorymanager::state::{Assignments, Block, MachineState, MemoryTable};
use crate::node::{Node, RawCheckpoint, StartOptions, StartupError};
use serde_json::Value;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Memory,
    Cpu,
}

impl Kind {
    pub fn file_name(self) -> &'static str {
        match self {
            Kind::Memory => checkpoint::memory::FILE_NAME,
            Kind::Cpu => checkpoint::cpu::FILE_NAME,
        }
    }
    pub fn manager(self) -> &'static str {
        match self {
            Kind::Memory => "memory manager",
            Kind::Cpu => "CPU manager",
        }
    }
}

pub struct Loaded {
    pub path: PathBuf,
    pub bytes: Vec<u8>,
    /// The file as JSON, when it is JSON at all (for stored checksums and key names).
    pub json: Option<Value>,
    pub kind: Kind,
}

impl Loaded {
    pub fn name(&self) -> String {
        self.path.display().to_string()
    }
    /// A top-level key, matched case-insensitively like Go's decoder.
    pub fn key(&self, k: &str) -> Option<&Value> {
        self.json
            .as_ref()?
            .as_object()?
            .iter()
            .find(|(x, _)| x.eq_ignore_ascii_case(k))
            .map(|(_, v)| v)
    }
    pub fn stored_u64(&self, k: &str) -> Option<u64> {
        self.key(k).and_then(Value::as_u64)
    }
}

/// The kubelet's remedy for a checkpoint it refuses, made concrete.
pub fn drain_advice(kind: Kind, file: &str) -> String {
    format!(
        "To start the kubelet with a fresh {m} state: drain the node (kubectl drain NODE --ignore-daemonsets), \
         stop the kubelet, delete {file}, start the kubelet (it writes a new {f}), then kubectl uncordon NODE. \
         Draining first matters: the running pods' recorded {what} would be lost.",
        m = kind.manager(),
        f = kind.file_name(),
        what = match kind {
            Kind::Memory => "NUMA memory pinning",
            Kind::Cpu => "exclusive CPUs",
        }
    )
}

/// Reads the file and tells which checkpoint it is. `Ok(Err(text))`: the file is not a
/// checkpoint nmm can identify (reported as corrupt, exit 1).
/// Tells which checkpoint the bytes read from `path` are. `Err(text)`: the file is JSON
/// with neither checkpoint's keys (an input error, exit 2); `Ok(Err(text))`: the file is
/// not a checkpoint nmm can identify (reported as corrupt, exit 1).
#[allow(clippy::type_complexity)]
pub fn identify(path: &Path, bytes: Vec<u8>) -> Result<Result<Loaded, String>, String> {
    let json: Option<Value> = serde_json::from_slice(&bytes).ok();
    let name = path.display();
    let kind = match json.as_ref().and_then(Value::as_object) {
        Some(m) => {
            let has = |k: &str| m.keys().any(|x| x.eq_ignore_ascii_case(k));
            let data_has = |k: &str| {
                m.iter()
                    .find(|(x, _)| x.eq_ignore_ascii_case("data"))
                    .and_then(|(_, v)| v.as_str())
                    .is_some_and(|d| d.contains(k))
            };
            if has("machineState") || data_has("machineState") {
                Kind::Memory
            } else if has("defaultCpuSet") {
                Kind::Cpu
            } else {
                let keys: Vec<&str> = m.keys().map(String::as_str).collect();
                return Err(format!(
                    "{name}: has neither a `machineState` key (memory_manager_state) nor a `defaultCpuSet` key \
                     (cpu_manager_state); its keys are [{}]. Pass the kubelet's memory_manager_state or \
                     cpu_manager_state (in its root directory, usually /var/lib/kubelet).",
                    keys.join(", ")
                ));
            }
        }
        None => {
            // Not a JSON object. A file named like a checkpoint is a damaged one (the
            // kubelet's own reader says what is wrong with it); anything else, or text
            // that is plainly a Kubernetes manifest, is simply not a checkpoint, and the
            // drain-and-delete remedy must not be offered for it.
            let file = path
                .file_name()
                .map(|n| n.to_string_lossy().to_lowercase())
                .unwrap_or_default();
            let text = String::from_utf8_lossy(&bytes[..bytes.len().min(4096)]).into_owned();
            let manifest = text.lines().any(|l| {
                let l = l.trim_start();
                l.starts_with("apiVersion:") || l.starts_with("kind:")
            });
            if file.contains("cpu") && !manifest {
                Kind::Cpu
            } else if file.contains("mem") && !manifest {
                Kind::Memory
            } else {
                let why = if manifest {
                    "a Kubernetes manifest (YAML with apiVersion/kind)".to_string()
                } else {
                    match serde_json::from_slice::<Value>(&bytes) {
                        Err(e) => format!("not JSON ({e})"),
                        Ok(_) => "JSON but not an object".to_string(),
                    }
                };
                return Err(format!(
                    "{name}: not a kubelet checkpoint: {why}. The kubelet's checkpoints are JSON files named \
                     memory_manager_state and cpu_manager_state in its root directory (usually /var/lib/kubelet); \
                     pass one of those, e.g. nmm state show /var/lib/kubelet/memory_manager_state"
                ));
            }
        }
    };
    Ok(Ok(Loaded {
        path: path.to_path_buf(),
        bytes,
        json,
        kind,
    }))
}

pub fn contains_null(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Array(a) => a.iter().any(contains_null),
        Value::Object(m) => m.values().any(contains_null),
        _ => false,
    }
}

pub fn u32_list(v: &Value) -> Option<Vec<u32>> {
    v.as_array()?
        .iter()
        .map(|x| x.as_u64().and_then(|x| u32::try_from(x).ok()))
        .collect()
}

pub fn blocks_of(v: &Value) -> Option<Vec<Block>> {
    v.as_array()?
        .iter()
        .map(|b| {
            let b = b.as_object()?;
            Some(Block {
                numa_affinity: u32_list(b.get("numaAffinity")?)?,
                kind: b.get("type")?.as_str()?.to_string(),
                size: b.get("size")?.as_u64()?,
            })
        })
        .collect()
}

/// What the stored checksum should be for this content, when the content can be read
/// without the kubelet's decoder (V1 layout, every field present, no `null`s). Used to
/// show how a corrupt file differs; never to accept it.
pub fn memory_content_checksum(v: &Value) -> Option<u64> {
    if contains_null(v) {
        return None;
    }
    let m = v.as_object()?;
    if m.contains_key("podEntries") || m.contains_key("data") {
        return None;
    }
    let policy = m.get("policyName")?.as_str()?;
    let mut ms = MachineState::new();
    for (k, n) in m.get("machineState")?.as_object()? {
        let id: u32 = k.parse().ok()?;
        let n = n.as_object()?;
        let mut map = BTreeMap::new();
        for (r, t) in n.get("memoryMap")?.as_object()? {
            let t = t.as_object()?;
            let f = |k: &str| t.get(k).and_then(Value::as_u64);
            map.insert(
                r.clone(),
                MemoryTable {
                    total: f("total")?,
                    system_reserved: f("systemReserved")?,
                    allocatable: f("allocatable")?,
                    reserved: f("reserved")?,
                    free: f("free")?,
                },
            );
        }
        ms.insert(
            id,
            crate::memorymanager::state::NumaNodeState {
                number_of_assignments: n.get("numberOfAssignments")?.as_i64()?,
                memory_map: map,
                cells: u32_list(n.get("cells")?)?,
            },
        );
    }
    let mut entries = Assignments::new();
    if let Some(e) = m.get("entries") {
        for (pod, ctrs) in e.as_object()? {
            let mut c = crate::vecmap::VecMap::new();
            for (name, blocks) in ctrs.as_object()? {
                c.insert(name.clone(), blocks_of(blocks)?);
            }
            entries.insert(pod.clone(), c);
        }
    }
    let text = checkpoint::memory::encode_preserving_block_order(policy, &ms, &entries);
    serde_json::from_str::<Value>(&text).ok()?["checksum"].as_u64()
}

pub fn cpu_content_checksum(v: &Value) -> Option<u64> {
    if contains_null(v) {
        return None;
    }
    let m = v.as_object()?;
    if m.contains_key("podEntries") {
        return None;
    }
    let s = |k: &str| -> Option<String> {
        match m.get(k) {
            None => Some(String::new()),
            Some(v) => v.as_str().map(str::to_string),
        }
    };
    let mut entries = BTreeMap::new();
    if let Some(e) = m.get("entries") {
        for (pod, ctrs) in e.as_object()? {
            let mut c = BTreeMap::new();
            for (name, set) in ctrs.as_object()? {
                c.insert(name.clone(), set.as_str()?.to_string());
            }
            entries.insert(pod.clone(), c);
        }
    }
    Some(u64::from(checkpoint::cpu::checksum_raw(
        &s("policyName")?,
        &s("defaultCpuSet")?,
        &entries,
    )))
}

pub fn format_name(f: MemoryCheckpointFormat) -> &'static str {
    match f {
        MemoryCheckpointFormat::V1 => "V1",
        MemoryCheckpointFormat::V2 => "V2",
        MemoryCheckpointFormat::V3 => "V3",
    }
}

pub fn format_text(f: MemoryCheckpointFormat) -> &'static str {
    match f {
        MemoryCheckpointFormat::V1 => "V1 (written by kubelets up to v1.35, including v1.32)",
        MemoryCheckpointFormat::V2 => "V2 (kubelet v1.36: podEntries)",
        MemoryCheckpointFormat::V3 => "V3 (kubelet v1.37+: data/dataChecksum envelope)",
    }
}
