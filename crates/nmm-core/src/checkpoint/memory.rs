//! `memory_manager_state`, the memory manager's checkpoint file.
//!
//! kubelet v1.32 writes and reads one format (V1):
//! `{"policyName":..,"machineState":{..},"entries":{..}(omitted when empty),"checksum":N}`
//! where `N` is FNV-1a-32 of the go-spew `%#v` text of `*state.MemoryManagerCheckpoint`
//! with `Checksum` 0 (see [`spew_text`]). On reading, the checksum is recomputed over the
//! struct exactly as decoded, so `null` vs `[]`/`{}` vs an absent key matter; a stored 0 is
//! not accepted. [`decode_v132`] does exactly that.
//!
//! Later kubelets write V2 (`podEntries`, v1.36) and V3 (`data` + `dataChecksum` envelope,
//! v1.37 development line); [`decode_any`] reads those like the newer kubelet does, for
//! display purposes only.

use crate::vecmap::VecMap;
use std::collections::BTreeMap;

use super::gojson::{self, Decoder, Value};
use super::spew::{self, Spew};
use super::CheckpointError;
use crate::memorymanager::state::{Assignments, Block, MachineState, MemoryTable, NumaNodeState};

/// File name in the kubelet root directory.
pub const FILE_NAME: &str = "memory_manager_state";

/// A decoded memory manager checkpoint, after the kubelet's clone rules (`null` cells and
/// block lists become empty, a `null` machine state or entries map becomes empty).
/// Blocks keep the order they had in the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemoryCheckpoint {
    pub policy_name: String,
    pub machine_state: MachineState,
    pub entries: Assignments,
}

impl MemoryCheckpoint {
    /// [`encode`] of this checkpoint.
    pub fn encode(&self) -> String {
        encode(&self.policy_name, &self.machine_state, &self.entries)
    }
}

/// Which on-disk layout [`decode_any`] recognised.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemoryCheckpointFormat {
    /// `policyName`, `machineState`, `entries`, `checksum`: what v1.32 writes.
    V1,
    /// V1 plus `podEntries` (v1.36, pod-level resource managers).
    V2,
    /// The `data` + `dataChecksum` envelope (v1.37 development line).
    V3,
}

// ---------------------------------------------------------------------------------------
// The Go-shaped model: every nullable Go value is an Option, ints are Go ints (i64).

#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct RawNode {
    number_of_assignments: i64,
    memory_map: Option<BTreeMap<String, Option<MemoryTable>>>,
    cells: Option<Vec<i64>>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct RawBlock {
    numa_affinity: Option<Vec<i64>>,
    kind: String,
    size: u64,
}

type RawMachineState = BTreeMap<i64, Option<RawNode>>;
type RawContainers = BTreeMap<String, Option<Vec<RawBlock>>>;
type RawEntries = BTreeMap<String, Option<RawContainers>>;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct RawPodEntry {
    memory_blocks: Option<Vec<RawBlock>>,
}

type RawPodEntries = BTreeMap<String, RawPodEntry>;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct RawCheckpoint {
    policy_name: String,
    machine_state: Option<RawMachineState>,
    entries: Option<RawEntries>,
    pod_entries: Option<RawPodEntries>,
    checksum: u64,
    data: String,
    data_checksum: u64,
}

/// The Go structs a checkpoint is unmarshalled into.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    /// `MemoryManagerCheckpoint` of v1.32.
    V1,
    /// `MemoryManagerCheckpointV2`.
    V2,
    /// The outer V3 struct: V1 fields plus `data`, `dataChecksum`.
    V3Outer,
    /// `MemoryManagerCheckpointData`, the V3 payload.
    V3Data,
}

impl Shape {
    fn fields(self) -> &'static [&'static str] {
        match self {
            Shape::V1 => &["policyName", "machineState", "entries", "checksum"],
            Shape::V2 => &[
                "policyName",
                "machineState",
                "entries",
                "podEntries",
                "checksum",
            ],
            Shape::V3Outer => &[
                "policyName",
                "machineState",
                "entries",
                "checksum",
                "data",
                "dataChecksum",
            ],
            Shape::V3Data => &["policyName", "machineState", "entries", "podEntries"],
        }
    }

    fn struct_name(self) -> &'static str {
        match self {
            Shape::V1 | Shape::V3Outer => "MemoryManagerCheckpoint",
            Shape::V2 => "MemoryManagerCheckpointV2",
            Shape::V3Data => "MemoryManagerCheckpointData",
        }
    }

    fn has_pod_entries(self) -> bool {
        matches!(self, Shape::V2 | Shape::V3Data)
    }
}

// ---------------------------------------------------------------------------------------
// JSON -> Go-shaped model

fn decode_table(d: &mut Decoder, v: &Value, t: &mut MemoryTable) {
    const FIELDS: &[&str] = &["total", "systemReserved", "allocatable", "reserved", "free"];
    d.object(v, "MemoryTable", "state.MemoryTable", FIELDS, |d, i, v| {
        let target = match i {
            0 => &mut t.total,
            1 => &mut t.system_reserved,
            2 => &mut t.allocatable,
            3 => &mut t.reserved,
            _ => &mut t.free,
        };
        d.uint(v, "uint64", target);
    });
}

fn decode_node(d: &mut Decoder, v: &Value, n: &mut RawNode) {
    const FIELDS: &[&str] = &["numberOfAssignments", "memoryMap", "cells"];
    d.object(
        v,
        "NUMANodeState",
        "state.NUMANodeState",
        FIELDS,
        |d, i, v| match i {
            0 => d.int(v, "int", &mut n.number_of_assignments),
            1 => d.map(
                v,
                "map[v1.ResourceName]*state.MemoryTable",
                &mut n.memory_map,
                |_, k| Some(k.to_owned()),
                |d, v, t| d.ptr(v, t, decode_table),
            ),
            _ => d.slice(v, "[]int", &mut n.cells, |d, v, x| d.int(v, "int", x)),
        },
    );
}

fn decode_machine_state(d: &mut Decoder, v: &Value, target: &mut Option<RawMachineState>) {
    d.map(
        v,
        "state.NUMANodeMap",
        target,
        |d, k| d.int_key(k),
        |d, v, node| d.ptr(v, node, decode_node),
    );
}

fn decode_block(d: &mut Decoder, v: &Value, b: &mut RawBlock) {
    const FIELDS: &[&str] = &["numaAffinity", "type", "size"];
    d.object(v, "Block", "state.Block", FIELDS, |d, i, v| match i {
        0 => d.slice(v, "[]int", &mut b.numa_affinity, |d, v, x| {
            d.int(v, "int", x)
        }),
        1 => d.string(v, "v1.ResourceName", &mut b.kind),
        _ => d.uint(v, "uint64", &mut b.size),
    });
}

fn decode_blocks(d: &mut Decoder, v: &Value, target: &mut Option<Vec<RawBlock>>) {
    d.slice(v, "[]state.Block", target, decode_block);
}

fn decode_entries(d: &mut Decoder, v: &Value, target: &mut Option<RawEntries>) {
    d.map(
        v,
        "state.ContainerMemoryAssignments",
        target,
        |_, k| Some(k.to_owned()),
        |d, v, containers| {
            d.map(
                v,
                "map[string][]state.Block",
                containers,
                |_, k| Some(k.to_owned()),
                decode_blocks,
            )
        },
    );
}

fn decode_pod_entries(d: &mut Decoder, v: &Value, target: &mut Option<RawPodEntries>) {
    d.map(
        v,
        "state.PodMemoryAssignments",
        target,
        |_, k| Some(k.to_owned()),
        |d, v, entry: &mut RawPodEntry| {
            d.object(
                v,
                "PodEntry",
                "state.PodEntry",
                &["memoryBlocks"],
                |d, _, v| decode_blocks(d, v, &mut entry.memory_blocks),
            )
        },
    );
}

/// `json.Unmarshal` into a freshly constructed Go struct of the given shape (maps
/// pre-initialised as the kubelet's constructors do). Type errors are left in `d`.
fn decode_raw(d: &mut Decoder, v: &Value, shape: Shape) -> RawCheckpoint {
    let mut cp = RawCheckpoint {
        machine_state: Some(BTreeMap::new()),
        entries: Some(BTreeMap::new()),
        pod_entries: shape.has_pod_entries().then(BTreeMap::new),
        ..RawCheckpoint::default()
    };
    let fields = shape.fields();
    let name = shape.struct_name();
    let ty = format!("state.{name}");
    d.object(v, name, &ty, fields, |d, i, v| match fields[i] {
        "policyName" => d.string(v, "string", &mut cp.policy_name),
        "machineState" => decode_machine_state(d, v, &mut cp.machine_state),
        "entries" => decode_entries(d, v, &mut cp.entries),
        "podEntries" => decode_pod_entries(d, v, &mut cp.pod_entries),
        "checksum" => d.uint(v, "checksum.Checksum", &mut cp.checksum),
        "data" => d.string(v, "string", &mut cp.data),
        _ => d.uint(v, "checksum.Checksum", &mut cp.data_checksum),
    });
    cp
}

/// [`decode_raw`] returning the first type error.
fn unmarshal(v: &Value, shape: Shape) -> Result<RawCheckpoint, String> {
    let mut d = Decoder::new();
    let cp = decode_raw(&mut d, v, shape);
    match d.into_error() {
        Some(e) => Err(e),
        None => Ok(cp),
    }
}

// ---------------------------------------------------------------------------------------
// Go-shaped model -> go-spew tree -> checksum

fn spew_ints(v: &Option<Vec<i64>>) -> Spew {
    Spew::nullable(v.as_ref(), |v| {
        Spew::Slice(v.iter().map(|&x| Spew::int(x)).collect())
    })
}

fn spew_table(t: &MemoryTable) -> Spew {
    Spew::ptr(Spew::Struct(vec![
        ("TotalMemSize", "uint64".into(), Spew::uint(t.total)),
        (
            "SystemReserved",
            "uint64".into(),
            Spew::uint(t.system_reserved),
        ),
        ("Allocatable", "uint64".into(), Spew::uint(t.allocatable)),
        ("Reserved", "uint64".into(), Spew::uint(t.reserved)),
        ("Free", "uint64".into(), Spew::uint(t.free)),
    ]))
}

fn spew_node(n: &RawNode) -> Spew {
    let memory_map = Spew::nullable(n.memory_map.as_ref(), |m| {
        Spew::Map(
            m.iter()
                .map(|(k, t)| (Spew::str(k), Spew::nullable(t.as_ref(), spew_table)))
                .collect(),
        )
    });
    Spew::ptr(Spew::Struct(vec![
        (
            "NumberOfAssignments",
            "int".into(),
            Spew::int(n.number_of_assignments),
        ),
        (
            "MemoryMap",
            "map[v1.ResourceName]*state.MemoryTable".into(),
            memory_map,
        ),
        ("Cells", "[]int".into(), spew_ints(&n.cells)),
    ]))
}

fn spew_blocks(blocks: &Option<Vec<RawBlock>>) -> Spew {
    Spew::nullable(blocks.as_ref(), |blocks| {
        Spew::Slice(
            blocks
                .iter()
                .map(|b| {
                    Spew::Struct(vec![
                        ("NUMAAffinity", "[]int".into(), spew_ints(&b.numa_affinity)),
                        ("Type", "v1.ResourceName".into(), Spew::str(&b.kind)),
                        ("Size", "uint64".into(), Spew::uint(b.size)),
                    ])
                })
                .collect(),
        )
    })
}

/// `*state.MemoryManagerCheckpoint` with `Checksum` 0; with `PodEntries` for V2.
fn spew_checkpoint(cp: &RawCheckpoint, with_pod_entries: bool) -> Spew {
    let machine_state = Spew::nullable(cp.machine_state.as_ref(), |m| {
        Spew::Map(
            m.iter()
                .map(|(&id, n)| (Spew::int(id), Spew::nullable(n.as_ref(), spew_node)))
                .collect(),
        )
    });
    let entries = Spew::nullable(cp.entries.as_ref(), |e| {
        Spew::Map(
            e.iter()
                .map(|(pod, containers)| {
                    let containers = Spew::nullable(containers.as_ref(), |c| {
                        Spew::Map(
                            c.iter()
                                .map(|(name, blocks)| (Spew::str(name), spew_blocks(blocks)))
                                .collect(),
                        )
                    });
                    (Spew::str(pod), containers)
                })
                .collect(),
        )
    });
    let mut fields = vec![
        ("PolicyName", "string".into(), Spew::str(&cp.policy_name)),
        ("MachineState", "state.NUMANodeMap".into(), machine_state),
        (
            "Entries",
            "state.ContainerMemoryAssignments".into(),
            entries,
        ),
    ];
    if with_pod_entries {
        let pods = Spew::nullable(cp.pod_entries.as_ref(), |p| {
            Spew::Map(
                p.iter()
                    .map(|(pod, e)| {
                        let entry = Spew::Struct(vec![(
                            "MemoryBlocks",
                            "[]state.Block".into(),
                            spew_blocks(&e.memory_blocks),
                        )]);
                        (Spew::str(pod), entry)
                    })
                    .collect(),
            )
        });
        fields.push(("PodEntries", "state.PodMemoryAssignments".into(), pods));
    }
    fields.push(("Checksum", "checksum.Checksum".into(), Spew::uint(0)));
    Spew::ptr(Spew::Struct(fields))
}

const CHECKPOINT_TYPE: &str = "*state.MemoryManagerCheckpoint";

fn v1_checksum(cp: &RawCheckpoint) -> u32 {
    spew::hash_typed(CHECKPOINT_TYPE, &spew_checkpoint(cp, false))
}

fn v2_checksum(cp: &RawCheckpoint) -> u32 {
    spew::hash_typed(CHECKPOINT_TYPE, &spew_checkpoint(cp, true))
}

// ---------------------------------------------------------------------------------------
// Go-shaped model -> JSON (V1, like json.Marshal)

fn write_ints(out: &mut String, v: &Option<Vec<i64>>) {
    match v {
        None => out.push_str("null"),
        Some(v) => {
            out.push('[');
            for (i, x) in v.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&x.to_string());
            }
            out.push(']');
        }
    }
}

fn write_table(out: &mut String, t: &MemoryTable) {
    out.push_str(&format!(
        "{{\"total\":{},\"systemReserved\":{},\"allocatable\":{},\"reserved\":{},\"free\":{}}}",
        t.total, t.system_reserved, t.allocatable, t.reserved, t.free
    ));
}

fn write_node(out: &mut String, n: &RawNode) {
    out.push_str("{\"numberOfAssignments\":");
    out.push_str(&n.number_of_assignments.to_string());
    out.push_str(",\"memoryMap\":");
    match &n.memory_map {
        None => out.push_str("null"),
        Some(m) => {
            out.push('{');
            for (i, (k, t)) in m.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                gojson::write_string(out, k);
                out.push(':');
                match t {
                    None => out.push_str("null"),
                    Some(t) => write_table(out, t),
                }
            }
            out.push('}');
        }
    }
    out.push_str(",\"cells\":");
    write_ints(out, &n.cells);
    out.push('}');
}

fn write_blocks(out: &mut String, blocks: &Option<Vec<RawBlock>>) {
    let Some(blocks) = blocks else {
        out.push_str("null");
        return;
    };
    out.push('[');
    for (i, b) in blocks.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str("{\"numaAffinity\":");
        write_ints(out, &b.numa_affinity);
        out.push_str(",\"type\":");
        gojson::write_string(out, &b.kind);
        out.push_str(",\"size\":");
        out.push_str(&b.size.to_string());
        out.push('}');
    }
    out.push(']');
}

fn write_v1_json(cp: &RawCheckpoint, checksum: u32) -> String {
    let mut out = String::from("{\"policyName\":");
    gojson::write_string(&mut out, &cp.policy_name);
    out.push_str(",\"machineState\":");
    match &cp.machine_state {
        None => out.push_str("null"),
        Some(m) => {
            // Go writes int map keys as decimal strings, sorted as strings.
            let mut nodes: Vec<(String, &Option<RawNode>)> =
                m.iter().map(|(id, n)| (id.to_string(), n)).collect();
            nodes.sort_by(|a, b| a.0.cmp(&b.0));
            out.push('{');
            for (i, (id, n)) in nodes.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                gojson::write_string(&mut out, id);
                out.push(':');
                match n {
                    None => out.push_str("null"),
                    Some(n) => write_node(&mut out, n),
                }
            }
            out.push('}');
        }
    }
    if let Some(entries) = cp.entries.as_ref().filter(|e| !e.is_empty()) {
        out.push_str(",\"entries\":{");
        for (i, (pod, containers)) in entries.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            gojson::write_string(&mut out, pod);
            out.push(':');
            match containers {
                None => out.push_str("null"),
                Some(c) => {
                    out.push('{');
                    for (j, (name, blocks)) in c.iter().enumerate() {
                        if j > 0 {
                            out.push(',');
                        }
                        gojson::write_string(&mut out, name);
                        out.push(':');
                        write_blocks(&mut out, blocks);
                    }
                    out.push('}');
                }
            }
        }
        out.push('}');
    }
    out.push_str(",\"checksum\":");
    out.push_str(&checksum.to_string());
    out.push('}');
    out
}

// ---------------------------------------------------------------------------------------
// nmm types <-> Go-shaped model

fn raw_blocks(blocks: &[Block], sort: bool) -> Vec<RawBlock> {
    let mut out: Vec<RawBlock> = blocks
        .iter()
        .map(|b| RawBlock {
            numa_affinity: Some(b.numa_affinity.iter().map(|&x| i64::from(x)).collect()),
            kind: b.kind.clone(),
            size: b.size,
        })
        .collect();
    if sort {
        // Stable: blocks of the same type keep their order.
        out.sort_by(|a, b| a.kind.cmp(&b.kind));
    }
    out
}

/// The Go struct the kubelet's writer builds from its (cloned, hence non-nil) state.
fn raw_from_state(
    policy_name: &str,
    machine_state: &MachineState,
    entries: &Assignments,
    sort_blocks: bool,
) -> RawCheckpoint {
    let machine_state = machine_state
        .iter()
        .map(|(&id, n)| {
            let node = RawNode {
                number_of_assignments: n.number_of_assignments,
                memory_map: Some(
                    n.memory_map
                        .iter()
                        .map(|(k, t)| (k.clone(), Some(*t)))
                        .collect(),
                ),
                cells: Some(n.cells.iter().map(|&c| i64::from(c)).collect()),
            };
            (i64::from(id), Some(node))
        })
        .collect();
    let entries = entries
        .iter()
        .map(|(pod, containers)| {
            let containers = containers
                .iter()
                .map(|(name, blocks)| (name.clone(), Some(raw_blocks(blocks, sort_blocks))))
                .collect();
            (pod.clone(), Some(containers))
        })
        .collect();
    RawCheckpoint {
        policy_name: policy_name.to_owned(),
        machine_state: Some(machine_state),
        entries: Some(entries),
        ..RawCheckpoint::default()
    }
}

fn numa_id(id: i64, what: impl FnOnce() -> String) -> Result<u32, CheckpointError> {
    u32::try_from(id).map_err(|_| {
        CheckpointError::Unsupported(format!(
            "{}: NUMA node id {id} is out of range (nmm supports 0..=4294967295)",
            what()
        ))
    })
}

fn numa_ids(ids: Option<Vec<i64>>, what: impl Fn() -> String) -> Result<Vec<u32>, CheckpointError> {
    ids.unwrap_or_default()
        .into_iter()
        .map(|x| numa_id(x, &what))
        .collect()
}

fn typed_blocks(
    blocks: Option<Vec<RawBlock>>,
    what: impl Fn() -> String,
) -> Result<Vec<Block>, CheckpointError> {
    blocks
        .unwrap_or_default()
        .into_iter()
        .map(|b| {
            Ok(Block {
                numa_affinity: numa_ids(b.numa_affinity, || format!("{} numaAffinity", what()))?,
                kind: b.kind,
                size: b.size,
            })
        })
        .collect()
}

/// The kubelet's clone rules (`NUMANodeMap.Clone`, `ContainerMemoryAssignments.Clone`) into
/// nmm's types: nil maps and lists become empty. What nmm cannot hold (or what makes
/// kubelet v1.32 crash: a nil memory table) is reported as [`CheckpointError::Unsupported`].
fn to_checkpoint(
    policy_name: String,
    machine_state: Option<RawMachineState>,
    entries: Option<RawEntries>,
) -> Result<MemoryCheckpoint, CheckpointError> {
    let mut ms = MachineState::new();
    for (id, node) in machine_state.unwrap_or_default() {
        let uid = numa_id(id, || "machineState".to_owned())?;
        let node = node.ok_or_else(|| {
            CheckpointError::Unsupported(format!("machineState: NUMA node {id} is null"))
        })?;
        let mut memory_map = BTreeMap::new();
        for (kind, table) in node.memory_map.unwrap_or_default() {
            let table = table.ok_or_else(|| {
                CheckpointError::Unsupported(format!(
                    "machineState: memory table {kind:?} of NUMA node {id} is null \
                     (kubelet v1.32 crashes cloning it)"
                ))
            })?;
            memory_map.insert(kind, table);
        }
        let cells = numa_ids(node.cells, || format!("machineState node {id} cells"))?;
        ms.insert(
            uid,
            NumaNodeState {
                number_of_assignments: node.number_of_assignments,
                memory_map,
                cells,
            },
        );
    }
    let mut assignments = Assignments::new();
    for (pod, containers) in entries.unwrap_or_default() {
        let mut out = VecMap::new();
        for (name, blocks) in containers.unwrap_or_default() {
            let blocks = typed_blocks(blocks, || format!("entries {pod:?}/{name:?}"))?;
            out.insert(name, blocks);
        }
        assignments.insert(pod, out);
    }
    Ok(MemoryCheckpoint {
        policy_name,
        machine_state: ms,
        entries: assignments,
    })
}

fn to_pod_entries(
    pods: Option<RawPodEntries>,
) -> Result<BTreeMap<String, Vec<Block>>, CheckpointError> {
    pods.unwrap_or_default()
        .into_iter()
        .map(|(pod, e)| {
            let blocks = typed_blocks(e.memory_blocks, || format!("podEntries {pod:?}"))?;
            Ok((pod, blocks))
        })
        .collect()
}

// ---------------------------------------------------------------------------------------
// Public API

/// The exact bytes kubelet v1.32 writes for this state (no trailing newline). Blocks of a
/// container are written sorted by resource type (stable), `entries` is omitted when empty,
/// NUMA ids are sorted as strings (`"1","10","2"`).
pub fn encode(policy_name: &str, machine_state: &MachineState, entries: &Assignments) -> String {
    let raw = raw_from_state(policy_name, machine_state, entries, true);
    write_v1_json(&raw, v1_checksum(&raw))
}

/// Like [`encode`] but with blocks in the order given (the kubelet itself writes them in
/// whatever order its map iteration produced).
pub fn encode_preserving_block_order(
    policy_name: &str,
    machine_state: &MachineState,
    entries: &Assignments,
) -> String {
    let raw = raw_from_state(policy_name, machine_state, entries, false);
    write_v1_json(&raw, v1_checksum(&raw))
}

/// The checksum [`encode`] stores.
pub fn checksum(policy_name: &str, machine_state: &MachineState, entries: &Assignments) -> u32 {
    v1_checksum(&raw_from_state(policy_name, machine_state, entries, true))
}

/// The go-spew text [`checksum`] hashes (blocks sorted as in [`encode`]).
pub fn spew_text(policy_name: &str, machine_state: &MachineState, entries: &Assignments) -> String {
    let raw = raw_from_state(policy_name, machine_state, entries, true);
    spew::sprint_typed(CHECKPOINT_TYPE, &spew_checkpoint(&raw, false))
}

fn v132_from_tree(v: &Value) -> Result<MemoryCheckpoint, CheckpointError> {
    let raw = unmarshal(v, Shape::V1).map_err(CheckpointError::Json)?;
    if raw.checksum != u64::from(v1_checksum(&raw)) {
        return Err(CheckpointError::Corrupted);
    }
    to_checkpoint(raw.policy_name, raw.machine_state, raw.entries)
}

/// Reads a checkpoint exactly as kubelet v1.32 does: V1 layout only, unknown keys (such as
/// `podEntries`, `data`, `dataChecksum`) ignored, keys matched case-insensitively, the
/// checksum verified over the struct as decoded (a stored 0 is not accepted), then the
/// clone rules applied.
pub fn decode_v132(bytes: &[u8]) -> Result<MemoryCheckpoint, CheckpointError> {
    let v = gojson::parse(bytes).map_err(CheckpointError::Json)?;
    v132_from_tree(&v)
}

/// [`decode_v132`] of an already parsed JSON value (e.g. a checkpoint inlined in a
/// scenario file).
pub fn decode_value_v132(v: &serde_json::Value) -> Result<MemoryCheckpoint, CheckpointError> {
    v132_from_tree(&gojson::from_serde(v))
}

/// Pod-level blocks (`podEntries` of V2/V3): pod uid -> blocks.
pub type PodEntries = BTreeMap<String, Vec<Block>>;

fn load_v3_data(data: &str, data_checksum: u64) -> Result<RawCheckpoint, CheckpointError> {
    let wrap = |e: String| {
        CheckpointError::Json(format!(
            "failed to deserialize memory manager checkpoint data: {e}"
        ))
    };
    let v = gojson::parse(data.as_bytes()).map_err(wrap)?;
    let payload = unmarshal(&v, Shape::V3Data).map_err(wrap)?;
    if data_checksum != u64::from(spew::hash_typed("string", &Spew::str(data))) {
        return Err(CheckpointError::Corrupted);
    }
    Ok(payload)
}

fn any_from_tree(
    v: &Value,
) -> Result<(MemoryCheckpoint, MemoryCheckpointFormat, PodEntries), CheckpointError> {
    // V3: the outer struct, then the payload in `data`, verified by `dataChecksum`.
    let mut d = Decoder::new();
    let outer = decode_raw(&mut d, v, Shape::V3Outer);
    let v3 = match d.into_error() {
        Some(e) => Err(CheckpointError::Json(format!(
            "failed to deserialize memory manager checkpoint: {e}"
        ))),
        None => load_v3_data(&outer.data, outer.data_checksum),
    };
    match v3 {
        Ok(p) => {
            let pods = to_pod_entries(p.pod_entries)?;
            let cp = to_checkpoint(p.policy_name, p.machine_state, p.entries)?;
            return Ok((cp, MemoryCheckpointFormat::V3, pods));
        }
        Err(e) if !outer.data.is_empty() || outer.data_checksum != 0 => {
            return Err(CheckpointError::V3(Box::new(e)));
        }
        Err(_) => {}
    }
    // V2: checksum over the rendering with PodEntries; zero not accepted.
    if let Ok(raw) = unmarshal(v, Shape::V2) {
        if raw.checksum == u64::from(v2_checksum(&raw)) {
            let pods = to_pod_entries(raw.pod_entries)?;
            let cp = to_checkpoint(raw.policy_name, raw.machine_state, raw.entries)?;
            return Ok((cp, MemoryCheckpointFormat::V2, pods));
        }
    }
    // V1: a stored 0 is accepted by these newer readers.
    let raw = unmarshal(v, Shape::V1).map_err(CheckpointError::Json)?;
    if raw.checksum != 0 && raw.checksum != u64::from(v1_checksum(&raw)) {
        return Err(CheckpointError::Corrupted);
    }
    let cp = to_checkpoint(raw.policy_name, raw.machine_state, raw.entries)?;
    Ok((cp, MemoryCheckpointFormat::V1, PodEntries::new()))
}

/// Reads a checkpoint like the newest kubelets do (for display, e.g. `nmm state show`):
/// V3 first; a file that has `data` or `dataChecksum` but fails as V3 is an error
/// ([`CheckpointError::V3`]); else V2 (checksum including `podEntries`), else V1 (stored
/// checksum 0 accepted). Returns the format recognised and the pod-level entries (empty for V1).
pub fn decode_any(
    bytes: &[u8],
) -> Result<(MemoryCheckpoint, MemoryCheckpointFormat, PodEntries), CheckpointError> {
    let v = gojson::parse(bytes).map_err(CheckpointError::Json)?;
    any_from_tree(&v)
}

/// [`decode_any`] of an already parsed JSON value.
pub fn decode_any_value(
    v: &serde_json::Value,
) -> Result<(MemoryCheckpoint, MemoryCheckpointFormat, PodEntries), CheckpointError> {
    any_from_tree(&gojson::from_serde(v))
}
