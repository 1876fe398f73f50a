//! `cpu_manager_state`, the CPU manager's checkpoint file.
//!
//! kubelet v1.32 writes the v2 layout
//! `{"policyName":..,"defaultCpuSet":"<cpuset>","entries":{pod:{container:"<cpuset>"}}(omitted when empty),"checksum":N}`
//! with `N` the FNV-1a-32 of the go-spew `%#v` text of `*state.CPUManagerCheckpoint` with
//! `Checksum` 0. On reading it first tries the legacy v1 layout (entries keyed by container
//! ID), then v2; unlike the memory manager, a stored checksum of 0 is accepted unverified.
//! The cpuset strings are returned raw: the CPU manager parses them itself to produce its
//! own error texts.

use std::collections::BTreeMap;

use super::gojson::{self, Decoder, Value};
use super::spew::{self, Spew};
use super::CheckpointError;
use crate::cpumanager::policy_static::CpuAssignments;
use crate::cpuset::CpuSet;

/// File name in the kubelet root directory.
pub const FILE_NAME: &str = "cpu_manager_state";

/// A decoded CPU manager checkpoint (v2 shape), cpusets as stored.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CpuCheckpoint {
    pub policy_name: String,
    pub default_cpu_set: String,
    /// pod uid -> container name -> cpuset string. A `null` pod map reads as empty.
    pub entries: BTreeMap<String, BTreeMap<String, String>>,
}

impl CpuCheckpoint {
    /// The v1.32 file bytes for these (raw) strings; see [`encode_raw`].
    pub fn encode(&self) -> String {
        encode_raw(&self.policy_name, &self.default_cpu_set, &self.entries)
    }
}

/// The v2 Go struct as decoded (`None` = nil map).
#[derive(Debug, Default)]
struct RawV2 {
    policy_name: String,
    default_cpu_set: String,
    entries: Option<BTreeMap<String, Option<BTreeMap<String, String>>>>,
    checksum: u64,
}

/// The legacy v1 Go struct as decoded.
#[derive(Debug, Default)]
struct RawV1 {
    policy_name: String,
    default_cpu_set: String,
    entries: Option<BTreeMap<String, String>>,
    checksum: u64,
}

const FIELDS: &[&str] = &["policyName", "defaultCpuSet", "entries", "checksum"];
const CHECKPOINT_TYPE: &str = "*state.CPUManagerCheckpoint";

fn string_map(v: &BTreeMap<String, String>) -> Spew {
    Spew::Map(
        v.iter()
            .map(|(k, s)| (Spew::str(k), Spew::str(s)))
            .collect(),
    )
}

fn spew_struct(policy: &str, default_set: &str, entries_ty: &str, entries: Spew) -> Spew {
    Spew::ptr(Spew::Struct(vec![
        ("PolicyName", "string".into(), Spew::str(policy)),
        ("DefaultCPUSet", "string".into(), Spew::str(default_set)),
        ("Entries", entries_ty.into(), entries),
        ("Checksum", "checksum.Checksum".into(), Spew::uint(0)),
    ]))
}

fn v2_checksum(cp: &RawV2) -> u32 {
    let entries = Spew::nullable(cp.entries.as_ref(), |e| {
        Spew::Map(
            e.iter()
                .map(|(pod, c)| (Spew::str(pod), Spew::nullable(c.as_ref(), string_map)))
                .collect(),
        )
    });
    let tree = spew_struct(
        &cp.policy_name,
        &cp.default_cpu_set,
        "map[string]map[string]string",
        entries,
    );
    spew::hash_typed(CHECKPOINT_TYPE, &tree)
}

/// The v1 verification renders `*state.CPUManagerCheckpointV1` and replaces the first
/// `CPUManagerCheckpointV1` by `CPUManagerCheckpoint`, which is the type header.
fn v1_checksum(cp: &RawV1) -> u32 {
    let entries = Spew::nullable(cp.entries.as_ref(), string_map);
    let tree = spew_struct(
        &cp.policy_name,
        &cp.default_cpu_set,
        "map[string]string",
        entries,
    );
    spew::hash_typed(CHECKPOINT_TYPE, &tree)
}

fn unmarshal_v1(v: &Value) -> Result<RawV1, String> {
    let mut d = Decoder::new();
    let mut cp = RawV1 {
        entries: Some(BTreeMap::new()),
        ..RawV1::default()
    };
    d.object(
        v,
        "CPUManagerCheckpointV1",
        "state.CPUManagerCheckpointV1",
        FIELDS,
        |d, i, v| match i {
            0 => d.string(v, "string", &mut cp.policy_name),
            1 => d.string(v, "string", &mut cp.default_cpu_set),
            2 => d.map(
                v,
                "map[string]string",
                &mut cp.entries,
                |_, k| Some(k.to_owned()),
                |d, v, s| d.string(v, "string", s),
            ),
            _ => d.uint(v, "checksum.Checksum", &mut cp.checksum),
        },
    );
    match d.into_error() {
        Some(e) => Err(e),
        None => Ok(cp),
    }
}

fn unmarshal_v2(v: &Value) -> Result<RawV2, String> {
    let mut d = Decoder::new();
    let mut cp = RawV2 {
        entries: Some(BTreeMap::new()),
        ..RawV2::default()
    };
    d.object(
        v,
        "CPUManagerCheckpoint",
        "state.CPUManagerCheckpoint",
        FIELDS,
        |d, i, v| match i {
            0 => d.string(v, "string", &mut cp.policy_name),
            1 => d.string(v, "string", &mut cp.default_cpu_set),
            2 => d.map(
                v,
                "map[string]map[string]string",
                &mut cp.entries,
                |_, k| Some(k.to_owned()),
                |d, v, c| {
                    d.map(
                        v,
                        "map[string]string",
                        c,
                        |_, k| Some(k.to_owned()),
                        |d, v, s| d.string(v, "string", s),
                    )
                },
            ),
            _ => d.uint(v, "checksum.Checksum", &mut cp.checksum),
        },
    );
    match d.into_error() {
        Some(e) => Err(e),
        None => Ok(cp),
    }
}

fn from_tree(v: &Value) -> Result<CpuCheckpoint, CheckpointError> {
    // 1. The legacy v1 layout; checksum 0 accepted.
    if let Ok(v1) = unmarshal_v1(v) {
        if v1.checksum == 0 || v1.checksum == u64::from(v1_checksum(&v1)) {
            // Migration resolves container IDs through the running containers, of which
            // nmm has none: any entry fails (the kubelet reports a random one).
            if let Some(id) = v1.entries.as_ref().and_then(|e| e.keys().next()) {
                return Err(CheckpointError::CpuV1Migration(id.clone()));
            }
            return Ok(CpuCheckpoint {
                policy_name: v1.policy_name,
                default_cpu_set: v1.default_cpu_set,
                entries: BTreeMap::new(),
            });
        }
    }
    // 2. The v2 layout; its error is the one reported.
    let v2 = unmarshal_v2(v).map_err(CheckpointError::Json)?;
    if v2.checksum != 0 && v2.checksum != u64::from(v2_checksum(&v2)) {
        return Err(CheckpointError::Corrupted);
    }
    let entries = v2
        .entries
        .unwrap_or_default()
        .into_iter()
        .map(|(pod, c)| (pod, c.unwrap_or_default()))
        .collect();
    Ok(CpuCheckpoint {
        policy_name: v2.policy_name,
        default_cpu_set: v2.default_cpu_set,
        entries,
    })
}

/// Reads `cpu_manager_state` like kubelet v1.32 (`NewCheckpointState` up to, not including,
/// the policy-name comparison and the cpuset parsing): v1 layout, then v2; unknown keys
/// ignored; checksum 0 accepted. A v1 file with entries yields
/// [`CheckpointError::CpuV1Migration`].
pub fn decode(bytes: &[u8]) -> Result<CpuCheckpoint, CheckpointError> {
    let v = gojson::parse(bytes).map_err(CheckpointError::Json)?;
    from_tree(&v)
}

/// [`decode`] of an already parsed JSON value.
pub fn decode_value(v: &serde_json::Value) -> Result<CpuCheckpoint, CheckpointError> {
    from_tree(&gojson::from_serde(v))
}

/// The checksum v1.32 stores for these strings.
pub fn checksum_raw(
    policy_name: &str,
    default_cpu_set: &str,
    entries: &BTreeMap<String, BTreeMap<String, String>>,
) -> u32 {
    let raw = RawV2 {
        policy_name: policy_name.to_owned(),
        default_cpu_set: default_cpu_set.to_owned(),
        entries: Some(
            entries
                .iter()
                .map(|(k, v)| (k.clone(), Some(v.clone())))
                .collect(),
        ),
        checksum: 0,
    };
    v2_checksum(&raw)
}

/// The exact bytes kubelet v1.32 writes, from already formatted cpuset strings.
pub fn encode_raw(
    policy_name: &str,
    default_cpu_set: &str,
    entries: &BTreeMap<String, BTreeMap<String, String>>,
) -> String {
    let mut out = String::from("{\"policyName\":");
    gojson::write_string(&mut out, policy_name);
    out.push_str(",\"defaultCpuSet\":");
    gojson::write_string(&mut out, default_cpu_set);
    if !entries.is_empty() {
        out.push_str(",\"entries\":{");
        for (i, (pod, containers)) in entries.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            gojson::write_string(&mut out, pod);
            out.push_str(":{");
            for (j, (name, set)) in containers.iter().enumerate() {
                if j > 0 {
                    out.push(',');
                }
                gojson::write_string(&mut out, name);
                out.push(':');
                gojson::write_string(&mut out, set);
            }
            out.push('}');
        }
        out.push('}');
    }
    out.push_str(",\"checksum\":");
    out.push_str(&checksum_raw(policy_name, default_cpu_set, entries).to_string());
    out.push('}');
    out
}

fn format_entries(entries: &CpuAssignments) -> BTreeMap<String, BTreeMap<String, String>> {
    entries
        .iter()
        .map(|(pod, c)| {
            let c = c.iter().map(|(n, s)| (n.clone(), s.to_string())).collect();
            (pod.clone(), c)
        })
        .collect()
}

/// The exact bytes kubelet v1.32 writes for this state (cpusets in Linux list format).
pub fn encode(policy_name: &str, default_cpu_set: &CpuSet, entries: &CpuAssignments) -> String {
    encode_raw(
        policy_name,
        &default_cpu_set.to_string(),
        &format_entries(entries),
    )
}

/// The checksum [`encode`] stores.
pub fn checksum(policy_name: &str, default_cpu_set: &CpuSet, entries: &CpuAssignments) -> u32 {
    checksum_raw(
        policy_name,
        &default_cpu_set.to_string(),
        &format_entries(entries),
    )
}
