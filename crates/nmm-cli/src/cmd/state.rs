//! `nmm state show` and `nmm state verify`: the kubelet's `memory_manager_state` and
//! `cpu_manager_state` checkpoints, read as kubelets write them (v1.32's V1 format, and the
//! V2 `podEntries` / V3 `data`+`dataChecksum` formats of newer kubelets).
//!
//! * `show` prints the content: per NUMA node and per NUMA group, for each memory type,
//!   total, system reserved, allocatable, reserved and free (group sums computed), and the
//!   blocks of every pod and container; for the CPU manager, the shared (default) set and
//!   each container's exclusive CPUs. `--svg` draws the memory state.
//! * `verify` checks the checksum and, given the machine and the kubelet config, runs the
//!   kubelet v1.32 start (checkpoint restore and restart validation). On a mismatch it says
//!   what differs and what to do.
//!
//! A corrupt file is reported, never repaired. Exit status: 0 fine, 1 corrupt or mismatch,
//! 2 usage or I/O error (returned as `Err`).

use crate::cmd::Output;
use crate::scenario::{parse_kubelet, parse_machine, read_yaml_file};
use anyhow::{anyhow, bail, Context, Result};
use comfy_table::{presets::UTF8_FULL_CONDENSED, CellAlignment, ContentArrangement, Table};
use nmm_core::checkpoint::memory::{MemoryCheckpoint, MemoryCheckpointFormat, PodEntries};
use nmm_core::checkpoint::{self, CheckpointError};
use nmm_core::cpuset::CpuSet;
use nmm_core::kubelet_config::KubeletConfig;
use nmm_core::machine::Machine;
use nmm_core::memorymanager::policy_static::{
    default_machine_state, replay_assignments, state_differences, SystemReserved,
};
use nmm_core::memorymanager::state::{Assignments, Block, MachineState, MemoryTable};
use nmm_core::node::{Node, RawCheckpoint, StartOptions, StartupError};
use nmm_core::quantity::format_human_bytes;
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};

const SHOW_EXAMPLES: &str = "\
Examples:
  nmm state show /var/lib/kubelet/memory_manager_state
  nmm state show /var/lib/kubelet/cpu_manager_state -o json
  nmm state show /var/lib/kubelet/memory_manager_state --svg numa.svg

The kind of checkpoint is detected from its keys (machineState: memory manager,
defaultCpuSet: CPU manager). Exit status: 0 shown, 1 the file is corrupt (reported, not
repaired), 2 usage or I/O error.";

const VERIFY_EXAMPLES: &str = "\
Examples:
  nmm state verify /var/lib/kubelet/memory_manager_state
  nmm state verify /var/lib/kubelet/memory_manager_state --sysfs-root / --config /var/lib/kubelet/config.yaml
  nmm state verify cpu_manager_state --machine scenario.yaml -o json

Without a machine only the checksum is checked. With --machine (or --sysfs-root) and
--config, nmm starts kubelet v1.32's CPU and Memory Managers on the file, as the kubelet does
after a restart. A whole scenario file works as --machine (its kubelet: block is the config
unless --config is given) or as --config (its machine: block is the machine).
Exit status: 0 the kubelet would accept the file, 1 corrupt or mismatch, 2 usage or I/O error.";

#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Show a checkpoint: memory per NUMA node and group with every pod's blocks
    /// (memory_manager_state), or shared and exclusive CPUs (cpu_manager_state).
    #[command(after_help = SHOW_EXAMPLES)]
    Show(ShowArgs),
    /// Check a checkpoint's checksum and whether the kubelet would restart with it on a
    /// machine and config; on a mismatch, say what differs and what to do.
    #[command(after_help = VERIFY_EXAMPLES)]
    Verify(VerifyArgs),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum ColorMode {
    /// Colour when stdout is a terminal and NO_COLOR is not set.
    #[default]
    Auto,
    Always,
    Never,
}

#[derive(Debug, clap::Args)]
pub struct ShowArgs {
    /// memory_manager_state or cpu_manager_state (usually in /var/lib/kubelet).
    pub file: PathBuf,
    /// Output format: a table (default), or JSON / YAML for scripts.
    #[arg(short, long, value_enum)]
    pub output: Option<Output>,
    /// Also draw the memory state (NUMA nodes as bars of reserved and free memory per type,
    /// groups joined) into this SVG file; `-` writes the SVG to stdout instead of the table.
    #[arg(long, value_name = "OUT.svg")]
    pub svg: Option<PathBuf>,
    /// When to colour the output.
    #[arg(long, value_enum, default_value_t = ColorMode::Auto)]
    pub color: ColorMode,
}

#[derive(Debug, clap::Args)]
pub struct VerifyArgs {
    /// memory_manager_state or cpu_manager_state (usually in /var/lib/kubelet).
    pub file: PathBuf,
    /// The machine: a file with a top-level `machine:` block (e.g. `nmm node -o yaml`), or a
    /// whole scenario (whose `kubelet:` block is then the config unless --config is given).
    #[arg(long, value_name = "FILE", conflicts_with = "sysfs_root")]
    pub machine: Option<PathBuf>,
    /// Read the machine from sysfs under this root (`/` for this node).
    #[arg(long, value_name = "DIR")]
    pub sysfs_root: Option<PathBuf>,
    /// The kubelet config: a KubeletConfiguration file, or a whole scenario (its `kubelet:`
    /// block, and its `machine:` when no machine is given).
    #[arg(long, value_name = "KUBELET_CONFIG")]
    pub config: Option<PathBuf>,
    /// Output format: text (default), or JSON / YAML for scripts.
    #[arg(short, long, value_enum)]
    pub output: Option<Output>,
    /// When to colour the output.
    #[arg(long, value_enum, default_value_t = ColorMode::Auto)]
    pub color: ColorMode,
}

pub fn execute(cmd: &Command, out: &mut dyn Write, err: &mut dyn Write) -> Result<i32> {
    match cmd {
        Command::Show(a) => show(a, out, err),
        Command::Verify(a) => verify(a, out, err),
    }
}

// ---------------------------------------------------------------------------------------
// Presentation helpers

#[derive(Debug, Clone, Copy)]
struct Style {
    color: bool,
}

impl Style {
    fn new(mode: ColorMode) -> Style {
        let color = match mode {
            ColorMode::Always => true,
            ColorMode::Never => false,
            ColorMode::Auto => {
                std::io::stdout().is_terminal()
                    && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
                    && std::env::var("TERM").map_or(true, |t| t != "dumb")
            }
        };
        Style { color }
    }
    fn paint(&self, code: &str, s: &str) -> String {
        if self.color {
            format!("\x1b[{code}m{s}\x1b[0m")
        } else {
            s.to_string()
        }
    }
    fn good(&self, s: &str) -> String {
        self.paint("32", s)
    }
    fn bad(&self, s: &str) -> String {
        self.paint("1;31", s)
    }
    fn warn(&self, s: &str) -> String {
        self.paint("33", s)
    }
    fn bold(&self, s: &str) -> String {
        self.paint("1", s)
    }
}

fn new_table(header: &[&str]) -> Table {
    let mut t = Table::new();
    t.load_preset(UTF8_FULL_CONDENSED)
        .set_content_arrangement(ContentArrangement::Disabled)
        .force_no_tty()
        .set_header(header.iter().map(|s| s.to_string()).collect::<Vec<_>>());
    t
}

fn align_right(t: &mut Table, from: usize) {
    let n = t.column_count();
    for i in from..n {
        if let Some(c) = t.column_mut(i) {
            c.set_cell_alignment(CellAlignment::Right);
        }
    }
}

fn ids_text(ids: &[u32]) -> String {
    let v: Vec<String> = ids.iter().map(u32::to_string).collect();
    format!("{{{}}}", v.join(","))
}

fn human(b: u64) -> String {
    format_human_bytes(b)
}

/// A signed byte difference for people: `+32Ki`, `-1.5Gi`, `0`.
fn human_delta(from: u64, to: u64) -> String {
    if to >= from {
        format!("+{}", human(to - from))
    } else {
        format!("-{}", human(from - to))
    }
}

/// An exact Kubernetes quantity for a byte count (largest binary suffix dividing it).
fn exact_quantity(bytes: u64) -> String {
    if bytes == 0 {
        return "0".into();
    }
    let mut v = bytes;
    let mut suffix = "";
    for s in ["Ki", "Mi", "Gi", "Ti", "Pi", "Ei"] {
        if v & 1023 != 0 {
            break;
        }
        v /= 1024;
        suffix = s;
    }
    format!("{v}{suffix}")
}

/// Adds human units after every `N bytes` of a sentence: `1073741824 bytes (1Gi)`.
fn humanize_bytes(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(pos) = rest.find(" bytes") {
        let head = &rest[..pos];
        let digits = head
            .char_indices()
            .rev()
            .take_while(|(_, c)| c.is_ascii_digit())
            .last()
            .map(|(i, _)| i);
        out.push_str(head);
        out.push_str(" bytes");
        if let Some(i) = digits {
            if let Ok(n) = head[i..].parse::<u64>() {
                if n >= 1024 {
                    let _ = write!(out, " ({})", human(n));
                }
            }
        }
        rest = &rest[pos + " bytes".len()..];
    }
    out.push_str(rest);
    out
}

fn write_structured(out: &mut dyn Write, v: &Value, fmt: Output) -> Result<()> {
    match fmt {
        Output::Yaml => {
            let s = serde_saphyr::to_string(v).map_err(|e| anyhow!("cannot write YAML: {e}"))?;
            out.write_all(s.as_bytes())?;
            if !s.ends_with('\n') {
                writeln!(out)?;
            }
        }
        _ => {
            writeln!(out, "{}", serde_json::to_string_pretty(v)?)?;
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Reading the file

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Memory,
    Cpu,
}

impl Kind {
    fn file_name(self) -> &'static str {
        match self {
            Kind::Memory => checkpoint::memory::FILE_NAME,
            Kind::Cpu => checkpoint::cpu::FILE_NAME,
        }
    }
    fn manager(self) -> &'static str {
        match self {
            Kind::Memory => "memory manager",
            Kind::Cpu => "CPU manager",
        }
    }
}

struct Loaded {
    path: PathBuf,
    bytes: Vec<u8>,
    /// The file as JSON, when it is JSON at all (for stored checksums and key names).
    json: Option<Value>,
    kind: Kind,
}

impl Loaded {
    fn name(&self) -> String {
        self.path.display().to_string()
    }
    /// A top-level key, matched case-insensitively like Go's decoder.
    fn key(&self, k: &str) -> Option<&Value> {
        self.json
            .as_ref()?
            .as_object()?
            .iter()
            .find(|(x, _)| x.eq_ignore_ascii_case(k))
            .map(|(_, v)| v)
    }
    fn stored_u64(&self, k: &str) -> Option<u64> {
        self.key(k).and_then(Value::as_u64)
    }
}

/// The kubelet's remedy for a checkpoint it refuses, made concrete.
fn drain_advice(kind: Kind, file: &str) -> String {
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
fn load(path: &Path) -> Result<std::result::Result<Loaded, String>> {
    let bytes = std::fs::read(path).with_context(|| {
        format!(
            "{}: cannot read the file (the kubelet keeps its checkpoints in its root directory, usually /var/lib/kubelet)",
            path.display()
        )
    })?;
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
                bail!(format!(
                    "{name}: has neither a `machineState` key (memory_manager_state) nor a `defaultCpuSet` key \
                     (cpu_manager_state); its keys are [{}]. Pass the kubelet's memory_manager_state or \
                     cpu_manager_state (in its root directory, usually /var/lib/kubelet).",
                    keys.join(", ")
                ));
            }
        }
        None => {
            // Not a JSON object: guess from the name, so that the kubelet's own reader can
            // say what is wrong with it.
            let file = path
                .file_name()
                .map(|n| n.to_string_lossy().to_lowercase())
                .unwrap_or_default();
            if file.contains("cpu") {
                Kind::Cpu
            } else if file.contains("mem") {
                Kind::Memory
            } else {
                let why = match serde_json::from_slice::<Value>(&bytes) {
                    Err(e) => format!("not valid JSON ({e})"),
                    Ok(_) => "JSON but not an object".to_string(),
                };
                return Ok(Err(format!(
                    "{name}: {why}, so neither a memory_manager_state nor a cpu_manager_state the kubelet would read. \
                     If it is one of them, it is corrupt: the kubelet refuses to start with it. nmm does not repair \
                     checkpoints; drain the node, delete the file and restart the kubelet."
                )));
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

fn contains_null(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Array(a) => a.iter().any(contains_null),
        Value::Object(m) => m.values().any(contains_null),
        _ => false,
    }
}

fn u32_list(v: &Value) -> Option<Vec<u32>> {
    v.as_array()?
        .iter()
        .map(|x| x.as_u64().and_then(|x| u32::try_from(x).ok()))
        .collect()
}

fn blocks_of(v: &Value) -> Option<Vec<Block>> {
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
fn memory_content_checksum(v: &Value) -> Option<u64> {
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
            nmm_core::memorymanager::state::NumaNodeState {
                number_of_assignments: n.get("numberOfAssignments")?.as_i64()?,
                memory_map: map,
                cells: u32_list(n.get("cells")?)?,
            },
        );
    }
    let mut entries = Assignments::new();
    if let Some(e) = m.get("entries") {
        for (pod, ctrs) in e.as_object()? {
            let mut c = BTreeMap::new();
            for (name, blocks) in ctrs.as_object()? {
                c.insert(name.clone(), blocks_of(blocks)?);
            }
            entries.insert(pod.clone(), c);
        }
    }
    let text = checkpoint::memory::encode_preserving_block_order(policy, &ms, &entries);
    serde_json::from_str::<Value>(&text).ok()?["checksum"].as_u64()
}

fn cpu_content_checksum(v: &Value) -> Option<u64> {
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

fn format_name(f: MemoryCheckpointFormat) -> &'static str {
    match f {
        MemoryCheckpointFormat::V1 => "V1",
        MemoryCheckpointFormat::V2 => "V2",
        MemoryCheckpointFormat::V3 => "V3",
    }
}

fn format_text(f: MemoryCheckpointFormat) -> &'static str {
    match f {
        MemoryCheckpointFormat::V1 => "V1 (written by kubelets up to v1.35, including v1.32)",
        MemoryCheckpointFormat::V2 => "V2 (kubelet v1.36: podEntries)",
        MemoryCheckpointFormat::V3 => "V3 (kubelet v1.37+: data/dataChecksum envelope)",
    }
}

// ---------------------------------------------------------------------------------------
// The checksum check, shared by show (for corrupt files) and verify

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    Ok,
    /// Fine in itself but not what kubelet v1.32 accepts (newer format, checksum 0, ...).
    Mismatch,
    Corrupt,
}

impl Verdict {
    fn word(self) -> &'static str {
        match self {
            Verdict::Ok => "ok",
            Verdict::Mismatch => "mismatch",
            Verdict::Corrupt => "corrupt",
        }
    }
    fn worst(self, other: Verdict) -> Verdict {
        let rank = |v: Verdict| match v {
            Verdict::Ok => 0,
            Verdict::Mismatch => 1,
            Verdict::Corrupt => 2,
        };
        if rank(other) > rank(self) {
            other
        } else {
            self
        }
    }
}

struct ChecksumCheck {
    verdict: Verdict,
    /// One line per finding.
    lines: Vec<String>,
    advice: Vec<String>,
    warnings: Vec<String>,
    /// Decoded content (memory: as the newest kubelets read it).
    memory: Option<(MemoryCheckpoint, MemoryCheckpointFormat, PodEntries)>,
    cpu: Option<checkpoint::cpu::CpuCheckpoint>,
}

fn corrupt_explanation(l: &Loaded, e: &CheckpointError) -> String {
    let name = l.name();
    match e {
        CheckpointError::Corrupted => {
            let stored = l.stored_u64("checksum");
            let computed = l.json.as_ref().and_then(|v| match l.kind {
                Kind::Memory => memory_content_checksum(v),
                Kind::Cpu => cpu_content_checksum(v),
            });
            let mut s = format!("{name}: field checksum: ");
            match stored {
                Some(st) => {
                    let _ = write!(s, "the stored checksum {st} does not match the content");
                }
                None => s.push_str("no usable stored checksum; the content cannot be verified"),
            }
            if let (Some(c), Some(st)) = (computed, stored) {
                if c != st {
                    let _ = write!(s, " (the content hashes to {c})");
                }
            }
            s.push_str(
                ": the file was changed after the kubelet wrote it (edited by hand, copied partially, or damaged on disk). \
                 The kubelet reports \"checkpoint is corrupted\" and refuses to start.",
            );
            s
        }
        CheckpointError::Json(m) => format!(
            "{name}: not a {} the kubelet can read: {m}. The kubelet refuses to start with it.",
            l.kind.file_name()
        ),
        CheckpointError::Unsupported(m) => format!(
            "{name}: the checksum is fine but the content is unusable: {m}."
        ),
        CheckpointError::V3(inner) => format!(
            "{name}: fields data/dataChecksum: a V3 checkpoint (kubelet v1.37+) whose envelope does not load: {inner}."
        ),
        CheckpointError::CpuV1Migration(id) => format!(
            "{name}: a legacy v1 cpu_manager_state (entries keyed by container ID, e.g. {id:?}). Kubelet v1.32 migrates it \
             only if every container ID in it is still running, and refuses to start otherwise; nmm cannot see the \
             running containers, so it cannot read it."
        ),
    }
}

fn check_memory_checksum(l: &Loaded) -> ChecksumCheck {
    let name = l.name();
    let v132 = checkpoint::memory::decode_v132(&l.bytes);
    let any = checkpoint::memory::decode_any(&l.bytes);
    let mut c = ChecksumCheck {
        verdict: Verdict::Ok,
        lines: Vec::new(),
        advice: Vec::new(),
        warnings: Vec::new(),
        memory: None,
        cpu: None,
    };
    let stored = l.stored_u64("checksum");
    let stored_text = stored.map_or("-".to_string(), |s| s.to_string());
    match (&v132, &any) {
        (Ok(_), Ok((_, f, _))) => {
            c.lines.push(format!(
                "checksum {stored_text} matches the content: kubelet v1.32 reads the file"
            ));
            if *f == MemoryCheckpointFormat::V3 {
                c.lines.push(format!(
                    "dataChecksum {} matches data: kubelets v1.37+ read the file",
                    l.stored_u64("dataChecksum").unwrap_or(0)
                ));
            }
            if *f == MemoryCheckpointFormat::V1 && l.key("podEntries").is_some() {
                c.warnings.push(format!(
                    "{name}: field podEntries is not covered by the checksum: kubelet v1.32 ignores it and newer kubelets drop it"
                ));
            }
        }
        (Ok(_), Err(e)) => {
            c.verdict = Verdict::Corrupt;
            c.lines.push(format!(
                "checksum {stored_text} matches the legacy fields, so kubelet v1.32 reads the file, but newer kubelets refuse it: {e}"
            ));
            c.lines.push(corrupt_explanation(l, e));
            c.advice.push("Kubelet v1.32 starts with this file, but a kubelet v1.37+ would refuse it: before upgrading, start from a fresh state (below).".to_string());
        }
        (Err(CheckpointError::Corrupted), Ok((_, MemoryCheckpointFormat::V2, pods))) => {
            c.verdict = Verdict::Mismatch;
            c.lines.push(format!(
                "checksum {stored_text} is a V2 checksum (kubelet v1.36, podEntries for {} pods): it covers podEntries, so \
                 kubelet v1.32 reports \"checkpoint is corrupted\" and refuses to start",
                pods.len()
            ));
            c.advice.push("The file is intact for the kubelet v1.36+ that wrote it. Going back to kubelet v1.32 needs a fresh state (below).".to_string());
        }
        (Err(CheckpointError::Corrupted), Ok((_, MemoryCheckpointFormat::V1, _)))
            if stored == Some(0) =>
        {
            c.verdict = Verdict::Mismatch;
            c.lines.push(
                "checksum 0: newer kubelets (v1.36+) accept it unverified, kubelet v1.32 reports \"checkpoint is corrupted\""
                    .to_string(),
            );
            c.advice.push("No kubelet writes a checksum of 0; the file was made by a tool. Kubelet v1.32 needs a fresh state (below).".to_string());
        }
        (Err(e), Ok((_, f, _))) => {
            // v1.32 refuses, a newer reader accepts (V3 payload with broken legacy fields).
            c.verdict = Verdict::Corrupt;
            c.lines.push(format!(
                "the {} content loads for newer kubelets, but kubelet v1.32 refuses it: {e}",
                format_name(*f)
            ));
            c.lines.push(corrupt_explanation(l, e));
        }
        (Err(e1), Err(e2)) => {
            c.verdict = Verdict::Corrupt;
            // Prefer the explanation of the newest format the file claims to be.
            let e = if matches!(e2, CheckpointError::V3(_)) {
                e2
            } else {
                e1
            };
            c.lines.push(corrupt_explanation(l, e));
            c.advice.push("nmm does not repair checkpoints, and neither does the kubelet: start from a fresh state (below).".to_string());
        }
    }
    c.memory = any.ok();
    c
}

fn check_cpu_checksum(l: &Loaded) -> ChecksumCheck {
    let name = l.name();
    let mut c = ChecksumCheck {
        verdict: Verdict::Ok,
        lines: Vec::new(),
        advice: Vec::new(),
        warnings: Vec::new(),
        memory: None,
        cpu: None,
    };
    let stored = l.stored_u64("checksum");
    match checkpoint::cpu::decode(&l.bytes) {
        Ok(ck) => {
            if stored == Some(0) {
                c.lines.push(
                    "checksum 0: the kubelet accepts it without verifying the content".to_string(),
                );
                c.warnings.push(format!(
                    "{name}: field checksum is 0, so nothing protects the content; no kubelet writes 0"
                ));
            } else {
                c.lines.push(format!(
                    "checksum {} matches the content: kubelet v1.32 reads the file",
                    stored.unwrap_or(0)
                ));
            }
            // The kubelet parses the cpusets next; a bad one refuses the file.
            let mut bad = Vec::new();
            if let Err(e) = CpuSet::parse(&ck.default_cpu_set) {
                bad.push(format!(
                    "{name}: field defaultCpuSet: {:?} is not a CPU list ({e})",
                    ck.default_cpu_set
                ));
            }
            for (pod, ctrs) in &ck.entries {
                for (ctr, s) in ctrs {
                    if let Err(e) = CpuSet::parse(s) {
                        bad.push(format!(
                            "{name}: field entries.{pod}.{ctr}: {s:?} is not a CPU list ({e})"
                        ));
                    }
                }
            }
            if !bad.is_empty() {
                c.verdict = Verdict::Corrupt;
                c.lines.extend(bad);
                c.lines.push(
                    "the kubelet reports \"could not parse ... cpu set\" and refuses to start"
                        .to_string(),
                );
                c.advice.push("nmm does not repair checkpoints, and neither does the kubelet: start from a fresh state (below).".to_string());
            }
            c.cpu = Some(ck);
        }
        Err(CheckpointError::Corrupted) if l.key("podEntries").is_some() => {
            c.verdict = Verdict::Mismatch;
            c.lines.push(format!(
                "checksum {} covers podEntries (written by a kubelet v1.36+ with pod-level resource managers): \
                 kubelet v1.32 reports \"checkpoint is corrupted\" and refuses to start",
                stored.map_or("-".into(), |s| s.to_string())
            ));
            c.advice.push("The file is intact for the newer kubelet that wrote it. Going back to kubelet v1.32 needs a fresh state (below).".to_string());
        }
        Err(e @ CheckpointError::CpuV1Migration(_)) => {
            c.verdict = Verdict::Mismatch;
            c.lines.push(corrupt_explanation(l, &e));
        }
        Err(e) => {
            c.verdict = Verdict::Corrupt;
            c.lines.push(corrupt_explanation(l, &e));
            c.advice.push("nmm does not repair checkpoints, and neither does the kubelet: start from a fresh state (below).".to_string());
        }
    }
    c
}

// ---------------------------------------------------------------------------------------
// show

fn show(a: &ShowArgs, out: &mut dyn Write, err: &mut dyn Write) -> Result<i32> {
    let style = Style::new(a.color);
    let l = match load(&a.file)? {
        Ok(l) => l,
        Err(msg) => {
            writeln!(err, "{}: {msg}", style.bad("corrupt"))?;
            return Ok(1);
        }
    };
    if l.kind == Kind::Cpu && a.svg.is_some() {
        bail!(
            "{}: --svg draws memory_manager_state; this is a cpu_manager_state (show it without --svg)",
            l.name()
        );
    }
    let check = match l.kind {
        Kind::Memory => check_memory_checksum(&l),
        Kind::Cpu => check_cpu_checksum(&l),
    };
    if check.verdict == Verdict::Corrupt || (check.memory.is_none() && check.cpu.is_none()) {
        writeln!(
            err,
            "{}: {} is corrupt; nothing is shown (nmm never repairs a checkpoint).",
            style.bad("corrupt"),
            l.name()
        )?;
        for line in &check.lines {
            writeln!(err, "  {line}")?;
        }
        for line in &check.advice {
            writeln!(err, "  what to do: {line}")?;
        }
        writeln!(err, "  what to do: {}", drain_advice(l.kind, &l.name()))?;
        return Ok(1);
    }
    for w in &check.warnings {
        writeln!(err, "{}: {w}", style.warn("warning"))?;
    }
    match l.kind {
        Kind::Memory => show_memory(a, &l, &check, style, out, err),
        Kind::Cpu => show_cpu(a, &l, &check, style, out),
    }
}

/// The tables of one NUMA group (or of the whole machine): member -> type -> sums.
fn sum_tables(ms: &MachineState, ids: &[u32]) -> BTreeMap<String, MemoryTable> {
    let mut out: BTreeMap<String, MemoryTable> = BTreeMap::new();
    for id in ids {
        let Some(n) = ms.get(id) else { continue };
        for (r, t) in &n.memory_map {
            let s = out.entry(r.clone()).or_default();
            s.total = s.total.saturating_add(t.total);
            s.system_reserved = s.system_reserved.saturating_add(t.system_reserved);
            s.allocatable = s.allocatable.saturating_add(t.allocatable);
            s.reserved = s.reserved.saturating_add(t.reserved);
            s.free = s.free.saturating_add(t.free);
        }
    }
    out
}

/// The NUMA groups of a state: every node's `cells` (sorted), distinct, by first member.
fn numa_groups(ms: &MachineState) -> Vec<Vec<u32>> {
    let mut groups: Vec<Vec<u32>> = ms
        .iter()
        .map(|(&id, n)| {
            let mut g = n.cells.clone();
            g.sort_unstable();
            g.dedup();
            if g.is_empty() {
                vec![id]
            } else {
                g
            }
        })
        .collect();
    groups.sort();
    groups.dedup();
    groups
}

/// Inconsistencies a reader should know about (the kubelet itself only notices them in
/// its restart validation).
fn memory_warnings(ms: &MachineState) -> Vec<String> {
    let mut out = Vec::new();
    for (id, n) in ms {
        if n.number_of_assignments < 0 {
            out.push(format!(
                "NUMA node {id}: numberOfAssignments is negative ({})",
                n.number_of_assignments
            ));
        }
        if !n.cells.is_empty() && !n.cells.contains(id) {
            out.push(format!(
                "NUMA node {id}: cells {} do not include the node itself",
                ids_text(&n.cells)
            ));
        }
        for c in &n.cells {
            match ms.get(c) {
                None => out.push(format!(
                    "NUMA node {id}: cells name NUMA node {c}, which is not in the state"
                )),
                Some(o) if *c > *id => {
                    let (mut a, mut b) = (n.cells.clone(), o.cells.clone());
                    a.sort_unstable();
                    b.sort_unstable();
                    if a != b {
                        out.push(format!(
                            "NUMA nodes {id} and {c} disagree on their group: {} vs {}",
                            ids_text(&a),
                            ids_text(&b)
                        ));
                    }
                }
                Some(_) => {}
            }
        }
        for (r, t) in &n.memory_map {
            if t.reserved.checked_add(t.free) != Some(t.allocatable) {
                out.push(format!(
                    "NUMA node {id}, {r}: reserved {} + free {} is not allocatable {}",
                    t.reserved, t.free, t.allocatable
                ));
            }
            if t.system_reserved
                .checked_add(t.allocatable)
                .is_none_or(|s| s > t.total)
            {
                out.push(format!(
                    "NUMA node {id}, {r}: systemReserved {} + allocatable {} exceeds total {}",
                    t.system_reserved, t.allocatable, t.total
                ));
            }
        }
    }
    out
}

fn table_json(t: &MemoryTable) -> Value {
    json!({
        "total": t.total,
        "systemReserved": t.system_reserved,
        "allocatable": t.allocatable,
        "reserved": t.reserved,
        "free": t.free,
    })
}

fn tables_json(m: &BTreeMap<String, MemoryTable>) -> Value {
    Value::Object(
        m.iter()
            .map(|(k, t)| (k.clone(), table_json(t)))
            .collect::<Map<String, Value>>(),
    )
}

fn block_json(b: &Block) -> Value {
    json!({"type": b.kind, "size": b.size, "numaAffinity": b.numa_affinity})
}

fn memory_json(
    l: &Loaded,
    ck: &MemoryCheckpoint,
    format: MemoryCheckpointFormat,
    pods: &PodEntries,
    v132: &std::result::Result<MemoryCheckpoint, CheckpointError>,
    warnings: &[String],
) -> Value {
    let ms = &ck.machine_state;
    let nodes: Vec<Value> = ms
        .iter()
        .map(|(id, n)| {
            json!({
                "id": id,
                "numberOfAssignments": n.number_of_assignments,
                "cells": n.cells,
                "memory": tables_json(&n.memory_map),
            })
        })
        .collect();
    let groups: Vec<Value> = numa_groups(ms)
        .iter()
        .map(|g| json!({"nodes": g, "memory": tables_json(&sum_tables(ms, g))}))
        .collect();
    let all: Vec<u32> = ms.keys().copied().collect();
    let mut uids: BTreeSet<&String> = ck.entries.keys().collect();
    uids.extend(pods.keys());
    let pods_json: Vec<Value> = uids
        .into_iter()
        .map(|uid| {
            let containers: Vec<Value> = ck
                .entries
                .get(uid)
                .into_iter()
                .flatten()
                .map(|(name, blocks)| {
                    json!({"name": name, "blocks": blocks.iter().map(block_json).collect::<Vec<_>>()})
                })
                .collect();
            let mut p = json!({"uid": uid, "containers": containers});
            if let Some(b) = pods.get(uid) {
                p["podBlocks"] = Value::Array(b.iter().map(block_json).collect());
            }
            p
        })
        .collect();
    let mut v = json!({
        "file": l.name(),
        "kind": l.kind.file_name(),
        "format": format_name(format),
        "policyName": ck.policy_name,
        "checksum": l.stored_u64("checksum"),
    });
    if format == MemoryCheckpointFormat::V3 {
        v["dataChecksum"] = json!(l.stored_u64("dataChecksum"));
    }
    v["kubeletV132"] = match v132 {
        Ok(_) => json!({"reads": true}),
        Err(e) => json!({"reads": false, "error": e.to_string()}),
    };
    v["numaNodes"] = Value::Array(nodes);
    v["groups"] = Value::Array(groups);
    v["totals"] = tables_json(&sum_tables(ms, &all));
    v["pods"] = Value::Array(pods_json);
    v["warnings"] = json!(warnings);
    v
}

fn memory_rows(t: &mut Table, lead: Vec<String>, tables: &BTreeMap<String, MemoryTable>) {
    let width = lead.len();
    let mut lead = Some(lead);
    if tables.is_empty() {
        let mut row = lead.take().unwrap_or_default();
        row.push("-".into());
        t.add_row(row);
    }
    for (r, m) in tables {
        let mut row = lead.take().unwrap_or_else(|| vec![String::new(); width]);
        row.extend([
            r.clone(),
            human(m.total),
            human(m.system_reserved),
            human(m.allocatable),
            human(m.reserved),
            human(m.free),
        ]);
        t.add_row(row);
    }
}

fn show_memory(
    a: &ShowArgs,
    l: &Loaded,
    check: &ChecksumCheck,
    style: Style,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<i32> {
    let Some((ck, format, pods)) = &check.memory else {
        bail!("{}: the checkpoint could not be decoded", l.name());
    };
    let v132 = checkpoint::memory::decode_v132(&l.bytes);
    let ms = &ck.machine_state;
    let warnings = memory_warnings(ms);
    let title = format!(
        "{} \u{2014} {} (policy {})",
        l.kind.file_name(),
        l.name(),
        ck.policy_name
    );
    let mut svg_to_stdout = false;
    if let Some(p) = &a.svg {
        let svg = crate::svg::render_memory_state(ms, &title);
        if p.as_os_str() == "-" {
            svg_to_stdout = true;
            out.write_all(svg.as_bytes())?;
        } else {
            std::fs::write(p, svg)
                .with_context(|| format!("{}: cannot write the SVG file", p.display()))?;
            writeln!(err, "wrote {}", p.display())?;
        }
    }
    if svg_to_stdout {
        return Ok(0);
    }
    match a.output.unwrap_or(Output::Table) {
        Output::Json | Output::Yaml => {
            let v = memory_json(l, ck, *format, pods, &v132, &warnings);
            write_structured(out, &v, a.output.unwrap_or(Output::Json))?;
            return Ok(0);
        }
        Output::Table => {}
    }
    let mut s = String::new();
    let _ = writeln!(s, "{} {}", style.bold(l.kind.file_name()), l.name());
    let _ = write!(
        s,
        "  format {}, policy {}, checksum {}",
        format_text(*format),
        ck.policy_name,
        l.stored_u64("checksum")
            .map_or("-".into(), |c| c.to_string())
    );
    if *format == MemoryCheckpointFormat::V3 {
        let _ = write!(
            s,
            ", dataChecksum {}",
            l.stored_u64("dataChecksum").unwrap_or(0)
        );
    }
    s.push('\n');
    match &v132 {
        Ok(_) => {
            let _ = writeln!(s, "  kubelet v1.32 reads it: {}", style.good("yes"));
        }
        Err(e) => {
            let _ = writeln!(
                s,
                "  kubelet v1.32 reads it: {} ({e}; see `nmm state verify`)",
                style.bad("no")
            );
        }
    }
    s.push('\n');
    if ms.is_empty() {
        let _ = writeln!(
            s,
            "No NUMA nodes in the state{}.",
            if ck.policy_name == "None" {
                " (the None policy keeps no memory state)"
            } else {
                " (the kubelet fills in the default state at its next start)"
            }
        );
    } else {
        let _ = writeln!(s, "{}", style.bold("NUMA nodes"));
        let mut t = new_table(&[
            "NODE",
            "GROUP",
            "ASSIGNMENTS",
            "TYPE",
            "TOTAL",
            "SYSTEM RESERVED",
            "ALLOCATABLE",
            "RESERVED",
            "FREE",
        ]);
        for (id, n) in ms {
            let group = if n.cells.len() > 1 {
                ids_text(&n.cells)
            } else {
                "-".into()
            };
            let lead = vec![id.to_string(), group, n.number_of_assignments.to_string()];
            memory_rows(&mut t, lead, &n.memory_map);
        }
        align_right(&mut t, 4);
        if let Some(c) = t.column_mut(2) {
            c.set_cell_alignment(CellAlignment::Right);
        }
        let _ = writeln!(s, "{t}");
        let groups: Vec<Vec<u32>> = numa_groups(ms)
            .into_iter()
            .filter(|g| g.len() > 1)
            .collect();
        let _ = writeln!(s);
        let _ = writeln!(
            s,
            "{}",
            style.bold("NUMA groups and machine totals (sums over the member nodes)")
        );
        let mut t = new_table(&[
            "GROUP",
            "TYPE",
            "TOTAL",
            "SYSTEM RESERVED",
            "ALLOCATABLE",
            "RESERVED",
            "FREE",
        ]);
        for g in &groups {
            memory_rows(&mut t, vec![ids_text(g)], &sum_tables(ms, g));
        }
        let all: Vec<u32> = ms.keys().copied().collect();
        memory_rows(&mut t, vec!["all nodes".into()], &sum_tables(ms, &all));
        align_right(&mut t, 2);
        let _ = writeln!(s, "{t}");
        if groups.is_empty() {
            let _ = writeln!(
                s,
                "(no multi-node NUMA groups: every allocation fits on one node)"
            );
        }
    }
    let _ = writeln!(s);
    let mut uids: BTreeSet<&String> = ck.entries.keys().collect();
    uids.extend(pods.keys());
    if uids.is_empty() {
        let _ = writeln!(s, "No containers hold exclusive memory.");
    } else {
        let _ = writeln!(
            s,
            "{}",
            style.bold("Memory blocks of pods and containers (pods by uid)")
        );
        let mut t = new_table(&["POD UID", "CONTAINER", "TYPE", "SIZE", "NUMA NODES"]);
        for uid in uids {
            let mut first = true;
            let mut lead = |t: &mut Table, ctr: &str, b: Option<&Block>| {
                let pod = if first { uid.clone() } else { String::new() };
                first = false;
                match b {
                    Some(b) => t.add_row(vec![
                        pod,
                        ctr.to_string(),
                        b.kind.clone(),
                        human(b.size),
                        ids_text(&b.numa_affinity),
                    ]),
                    None => t.add_row(vec![pod, ctr.to_string(), "-".into()]),
                };
            };
            if let Some(blocks) = pods.get(uid) {
                for b in blocks {
                    lead(&mut t, "(pod-level)", Some(b));
                }
            }
            for (ctr, blocks) in ck.entries.get(uid).into_iter().flatten() {
                if blocks.is_empty() {
                    lead(&mut t, ctr, None);
                }
                let mut name = Some(ctr.as_str());
                for b in blocks {
                    lead(&mut t, name.take().unwrap_or(""), Some(b));
                }
            }
        }
        if let Some(c) = t.column_mut(3) {
            c.set_cell_alignment(CellAlignment::Right);
        }
        let _ = writeln!(s, "{t}");
    }
    if !warnings.is_empty() {
        let _ = writeln!(s);
        let _ = writeln!(s, "{}", style.warn("Inconsistencies in the state"));
        for w in &warnings {
            let _ = writeln!(s, "  - {w}");
        }
    }
    out.write_all(s.as_bytes())?;
    Ok(0)
}

fn show_cpu(
    a: &ShowArgs,
    l: &Loaded,
    check: &ChecksumCheck,
    style: Style,
    out: &mut dyn Write,
) -> Result<i32> {
    let Some(ck) = &check.cpu else {
        bail!("{}: the checkpoint could not be decoded", l.name());
    };
    // The cpusets parse: the checksum check reports the file as corrupt otherwise.
    let default = CpuSet::parse(&ck.default_cpu_set).unwrap_or_default();
    let mut rows = Vec::new();
    let mut all = default.clone();
    for (pod, ctrs) in &ck.entries {
        for (ctr, s) in ctrs {
            let set = CpuSet::parse(s).unwrap_or_default();
            all = all.union(&set);
            rows.push((pod.clone(), ctr.clone(), set));
        }
    }
    match a.output.unwrap_or(Output::Table) {
        Output::Json | Output::Yaml => {
            let containers: Vec<Value> = rows
                .iter()
                .map(|(p, c, s)| json!({"pod": p, "container": c, "cpus": s.to_string(), "count": s.len()}))
                .collect();
            let v = json!({
                "file": l.name(),
                "kind": l.kind.file_name(),
                "policyName": ck.policy_name,
                "checksum": l.stored_u64("checksum"),
                "defaultCpuSet": default.to_string(),
                "defaultCpuCount": default.len(),
                "containers": containers,
                "cpusInState": all.to_string(),
                "cpusInStateCount": all.len(),
            });
            write_structured(out, &v, a.output.unwrap_or(Output::Json))?;
            return Ok(0);
        }
        Output::Table => {}
    }
    let mut s = String::new();
    let _ = writeln!(s, "{} {}", style.bold(l.kind.file_name()), l.name());
    let _ = writeln!(
        s,
        "  policy {}, checksum {}",
        ck.policy_name,
        l.stored_u64("checksum")
            .map_or("-".into(), |c| c.to_string())
    );
    let _ = writeln!(s);
    if default.is_empty() && rows.is_empty() {
        let _ = writeln!(
            s,
            "Default (shared) CPU set: empty{}",
            if ck.policy_name == "none" {
                " (the none policy keeps no CPU state)"
            } else {
                " (the kubelet fills it with every CPU at its next start)"
            }
        );
        out.write_all(s.as_bytes())?;
        return Ok(0);
    }
    let _ = writeln!(
        s,
        "Default (shared) CPU set: {} ({} CPUs; includes the reserved CPUs)",
        default,
        default.len()
    );
    let _ = writeln!(s, "CPUs in the state: {} ({} CPUs)", all, all.len());
    let _ = writeln!(s);
    if rows.is_empty() {
        let _ = writeln!(s, "No containers hold exclusive CPUs.");
    } else {
        let _ = writeln!(s, "{}", style.bold("Exclusive CPUs (pods by uid)"));
        let mut t = new_table(&["POD UID", "CONTAINER", "CPUS", "#CPUS"]);
        let mut last_pod = String::new();
        for (p, c, set) in &rows {
            let pod = if *p == last_pod {
                String::new()
            } else {
                p.clone()
            };
            last_pod = p.clone();
            t.add_row(vec![pod, c.clone(), set.to_string(), set.len().to_string()]);
        }
        if let Some(c) = t.column_mut(3) {
            c.set_cell_alignment(CellAlignment::Right);
        }
        let _ = writeln!(s, "{t}");
    }
    out.write_all(s.as_bytes())?;
    Ok(0)
}

// ---------------------------------------------------------------------------------------
// verify

struct Target {
    machine: Machine,
    config: KubeletConfig,
    machine_src: String,
    config_src: String,
}

fn field<'a>(v: &'a Value, k: &str) -> Option<&'a Value> {
    v.as_object()?.get(k).filter(|v| !v.is_null())
}

fn load_target(a: &VerifyArgs) -> Result<Option<Target>> {
    let mut embedded: Option<(Value, PathBuf)> = None;
    let (machine, machine_src) = match (&a.machine, &a.sysfs_root) {
        (Some(p), _) => {
            let v = read_yaml_file(p)?;
            let mv = match field(&v, "machine") {
                Some(m) => m,
                None if field(&v, "numaNodes").is_some() => &v,
                None => bail!(
                    "{}: machine: missing; give a file with a top-level `machine:` block (e.g. the output of `nmm node -o yaml`) or a whole scenario",
                    p.display()
                ),
            };
            let m = parse_machine(mv, p)?;
            if let Some(k) = field(&v, "kubelet") {
                embedded = Some((k.clone(), p.clone()));
            }
            (m, p.display().to_string())
        }
        (None, Some(root)) => {
            let m = nmm_sysfs::SysfsReader::new(root)
                .read_machine()
                .map_err(|e| {
                    anyhow!(
                        "{}: cannot read the machine from sysfs: {e}",
                        root.display()
                    )
                })?;
            (m, format!("sysfs under {}", root.display()))
        }
        (None, None) => {
            let Some(c) = &a.config else {
                return Ok(None);
            };
            // A scenario given as the config brings its machine.
            let v = read_yaml_file(c)?;
            let Some(mv) = field(&v, "machine") else {
                bail!(
                    "--config {}: restart validation needs the machine too; add --sysfs-root / (this node) or --machine FILE",
                    c.display()
                );
            };
            (parse_machine(mv, c)?, c.display().to_string())
        }
    };
    let (config, config_src) = match (&a.config, embedded) {
        (Some(p), _) => {
            let v = read_yaml_file(p)?;
            let kv = field(&v, "kubelet").unwrap_or(&v);
            (parse_kubelet(Some(kv), p)?, p.display().to_string())
        }
        (None, Some((k, p))) => (
            parse_kubelet(Some(&k), &p)?,
            format!("{} (kubelet block)", p.display()),
        ),
        (None, None) => bail!(
            "{}: restart validation needs the kubelet config too; add --config /var/lib/kubelet/config.yaml \
             (the KubeletConfiguration file), or give --machine a scenario with a kubelet: block",
            machine_src
        ),
    };
    Ok(Some(Target {
        machine,
        config,
        machine_src,
        config_src,
    }))
}

/// The restart validation's result.
struct Restart {
    ok: bool,
    error: Option<StartupError>,
    /// Explanation lines (what the kubelet's error means here).
    lines: Vec<String>,
    differences: Vec<String>,
    advice: Vec<String>,
}

/// `validateState`'s expected state: the default state of the machine with every stored
/// block replayed onto it; blocks naming unknown nodes or types are skipped so that every
/// other difference can still be listed.
fn expected_machine_state(
    machine: &Machine,
    reserved: &SystemReserved,
    entries: &Assignments,
) -> MachineState {
    replay_assignments(default_machine_state(machine, reserved), entries, false)
        .expect("lenient replay does not fail")
}

/// What the differences between the stored and the expected state mean, and what to do.
fn memory_mismatch_advice(
    stored: &MachineState,
    expected: &MachineState,
    target: &Target,
) -> Vec<String> {
    let mut advice = Vec::new();
    let s_ids: Vec<u32> = stored.keys().copied().collect();
    let e_ids: Vec<u32> = expected.keys().copied().collect();
    if s_ids != e_ids {
        advice.push(format!(
            "The state describes NUMA nodes {}, the machine ({}) has {}: the file was written on another machine, \
             or the machine given is not this node. No kubelet setting changes that.",
            ids_text(&s_ids),
            target.machine_src,
            ids_text(&e_ids)
        ));
    }
    let mut totals = Vec::new();
    let mut reserved_changed = false;
    let mut hugepages_changed = Vec::new();
    let mut types_changed = Vec::new();
    for (id, s) in stored {
        let Some(e) = expected.get(id) else { continue };
        let st: Vec<&String> = s.memory_map.keys().collect();
        let et: Vec<&String> = e.memory_map.keys().collect();
        if st != et {
            types_changed.push(format!(
                "NUMA node {id}: {} in the state, {} on the machine",
                st.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", "),
                et.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
            ));
        }
        for (r, a) in &s.memory_map {
            let Some(b) = e.memory_map.get(r) else {
                continue;
            };
            if a.total != b.total {
                totals.push(format!(
                    "node {id} {r}: {} in the state, {} now ({})",
                    exact_quantity(a.total),
                    exact_quantity(b.total),
                    human_delta(a.total, b.total)
                ));
            }
            if a.system_reserved != b.system_reserved {
                reserved_changed = true;
            }
            if a.total == b.total
                && a.system_reserved == b.system_reserved
                && a.allocatable != b.allocatable
            {
                hugepages_changed.push(format!(
                    "node {id} {r}: allocatable {} in the state, {} now",
                    human(a.allocatable),
                    human(b.allocatable)
                ));
            }
        }
    }
    if !types_changed.is_empty() {
        advice.push(format!(
            "The memory types differ ({}): hugepage sizes were added or removed (kernel parameters hugepagesz=/hugepages=). \
             Restore the earlier hugepage configuration, or start from a fresh state.",
            types_changed.join("; ")
        ));
    }
    if !totals.is_empty() {
        advice.push(format!(
            "The memory of NUMA nodes changed since the file was written ({}). The kernel or firmware now reports a \
             different per-node MemTotal (even a few KiB make the kubelet refuse, kubernetes issue #131253), or \
             hugepage pools were resized. No kubelet setting brings the old sizes back.",
            totals.join("; ")
        ));
    }
    if !hugepages_changed.is_empty() && totals.is_empty() {
        advice.push(format!(
            "Allocatable memory changed with the same totals and reservations ({}): the hugepages carved out of the \
             node's memory changed.",
            hugepages_changed.join("; ")
        ));
    }
    if reserved_changed {
        // The reservation the state was written with, as a reservedMemory block.
        let mut yaml = String::from("reservedMemory:\n");
        let mut memory_sum = 0u64;
        for (id, n) in stored {
            let limits: Vec<String> = n
                .memory_map
                .iter()
                .filter(|(_, t)| t.system_reserved > 0)
                .map(|(r, t)| format!("{r}: {}", exact_quantity(t.system_reserved)))
                .collect();
            if let Some(t) = n.memory_map.get("memory") {
                memory_sum = memory_sum.saturating_add(t.system_reserved);
            }
            if !limits.is_empty() {
                let _ = writeln!(
                    yaml,
                    "- numaNode: {id}\n  limits: {{{}}}",
                    limits.join(", ")
                );
            }
        }
        let now: u64 = expected
            .values()
            .filter_map(|n| n.memory_map.get("memory"))
            .map(|t| t.system_reserved)
            .sum();
        let sum_note = if memory_sum == now {
            format!(
                "their memory sum, {}, is what kubeReserved + systemReserved + evictionHard memory.available give now",
                exact_quantity(memory_sum)
            )
        } else {
            format!(
                "their memory sum, {}, must also be kubeReserved + systemReserved + evictionHard memory.available, which give {} now",
                exact_quantity(memory_sum),
                exact_quantity(now)
            )
        };
        advice.push(format!(
            "The memory reserved per NUMA node changed since the file was written (config: {}): reservedMemory, or \
             kubeReserved/systemReserved/evictionHard. To keep the running pods, put back the reservation the state \
             was written with ({sum_note}):\n{}",
            target.config_src,
            yaml.trim_end()
        ));
    }
    if advice.is_empty() {
        advice.push(
            "The machine and the reservations match, but the assignments in the file do not add up to its machine \
             state (reserved/free per NUMA group, numberOfAssignments or cells): the file was edited, or written by a \
             kubelet with different accounting. Only a fresh state fixes that."
                .to_string(),
        );
    }
    advice
}

/// `CPU 3` or `CPUs 0,32`.
fn cpus_text(set: &CpuSet) -> String {
    if set.len() == 1 {
        format!("CPU {set}")
    } else {
        format!("CPUs {set}")
    }
}

fn quoted(msg: &str) -> Vec<String> {
    msg.split('"')
        .skip(1)
        .step_by(2)
        .map(str::to_string)
        .collect()
}

fn explain_memory_failure(
    e: &StartupError,
    l: &Loaded,
    target: &Target,
    reserved: &SystemReserved,
    r: &mut Restart,
) {
    let msg = &e.message;
    if msg.contains("could not restore state from checkpoint") {
        if msg.contains("configured policy") {
            let q = quoted(msg);
            let (configured, stored) = (
                q.first().cloned().unwrap_or_default(),
                q.get(1).cloned().unwrap_or_default(),
            );
            r.lines.push(format!(
                "the file was written with memoryManagerPolicy {stored:?}, the config ({}) says {configured:?}",
                target.config_src
            ));
            r.advice.push(format!(
                "Set memoryManagerPolicy: {stored} again to restart with this state, or switch policies on a drained node (below).",
            ));
        } else {
            r.lines
                .push("the kubelet cannot read the file (see the checksum check)".to_string());
        }
        return;
    }
    if msg.contains("machine state can not be empty") {
        r.lines.push(
            "the file has container assignments but an empty machineState: the kubelet cannot rebuild the per-node \
             tables from the assignments (a kubelet never writes this; the file was edited or made by a tool)"
                .to_string(),
        );
        return;
    }
    if msg.contains("uses the NUMA that does not exist") {
        r.lines.push(format!(
            "a container is pinned to a NUMA node the machine ({}) does not have (it has {})",
            target.machine_src,
            ids_text(&target.machine.node_ids())
        ));
        r.advice.push("Check that the machine given is this node; if it is, start from a fresh state (below).".to_string());
        return;
    }
    if msg.contains("uses memory resource that does not exist") {
        r.lines.push(
            "a container holds a memory type (hugepage size) the machine does not have on that node".to_string(),
        );
        r.advice.push("Restore the hugepage size (kernel parameters hugepagesz=/hugepages=), or start fresh (below).".to_string());
        return;
    }
    if msg.contains("the expected machine state is different from the real one") {
        let Ok(ck) = checkpoint::memory::decode_v132(&l.bytes) else {
            return;
        };
        let expected = expected_machine_state(&target.machine, reserved, &ck.entries);
        r.differences = state_differences(&ck.machine_state, &expected)
            .iter()
            .map(|d| humanize_bytes(d))
            .collect();
        r.lines.push(
            "the tables in the file are not what this machine and config give, plus the file's assignments"
                .to_string(),
        );
        r.advice = memory_mismatch_advice(&ck.machine_state, &expected, target);
    }
}

fn explain_cpu_failure(e: &StartupError, l: &Loaded, target: &Target, r: &mut Restart) {
    let msg = &e.message;
    let q = quoted(msg);
    let parse = |i: usize| CpuSet::parse(q.get(i).map_or("", String::as_str)).unwrap_or_default();
    let entries = checkpoint::cpu::decode(&l.bytes)
        .ok()
        .map(|c| c.entries)
        .unwrap_or_default();
    let owners = |cpus: &CpuSet| -> Vec<String> {
        let mut v = Vec::new();
        for (pod, ctrs) in &entries {
            for (ctr, s) in ctrs {
                let set = CpuSet::parse(s).unwrap_or_default();
                let both = set.intersection(cpus);
                if !both.is_empty() {
                    v.push(format!("pod {pod} container {ctr} ({})", cpus_text(&both)));
                }
            }
        }
        v
    };
    if msg.contains("could not restore state from checkpoint") {
        if msg.contains("configured policy") {
            let (configured, stored) = (
                q.first().cloned().unwrap_or_default(),
                q.get(1).cloned().unwrap_or_default(),
            );
            r.lines.push(format!(
                "the file was written with cpuManagerPolicy {stored:?}, the config ({}) says {configured:?}",
                target.config_src
            ));
            r.advice.push(format!(
                "Set cpuManagerPolicy: {stored} again to restart with this state, or switch policies on a drained node (below).",
            ));
        } else if msg.contains("could not parse") {
            r.lines
                .push("a CPU list in the file does not parse".to_string());
        } else {
            r.lines
                .push("the kubelet cannot read the file (see the checksum check)".to_string());
        }
        return;
    }
    if msg.starts_with("not all reserved cpus") {
        let reserved = parse(0);
        let default = parse(1);
        let missing = reserved.difference(&default);
        let held = owners(&missing);
        r.lines.push(format!(
            "the kubelet now reserves {} (reservedSystemCPUs, or the first CPUs for kubeReserved + \
             systemReserved cpu), but {} {} not in the file's shared set{}",
            cpus_text(&reserved),
            cpus_text(&missing),
            if missing.len() == 1 { "is" } else { "are" },
            if held.is_empty() {
                String::new()
            } else {
                format!(": held exclusively by {}", held.join(", "))
            }
        ));
        r.advice.push(format!(
            "Put the CPU reservation back as it was when the file was written (the reserved CPUs must all be in the \
             shared set {default}), or start fresh (below).",
        ));
        return;
    }
    if msg.starts_with("some of strictly reserved cpus") {
        r.lines.push(
            "the strict-cpu-reservation policy option is on, and the file's shared set still contains reserved CPUs (it was written without the option)"
                .to_string(),
        );
        r.advice.push("Remove strict-cpu-reservation from cpuManagerPolicyOptions to restart with this state, or enable it on a drained node (below).".to_string());
        return;
    }
    if msg.starts_with("current set of available CPUs") {
        let now = parse(0);
        let known = parse(1);
        let gone = known.difference(&now);
        let new = now.difference(&known);
        let mut parts = Vec::new();
        if !gone.is_empty() {
            let held = owners(&gone);
            parts.push(format!(
                "{} {} in the file but not available on the machine{}",
                cpus_text(&gone),
                if gone.len() == 1 { "is" } else { "are" },
                if held.is_empty() {
                    String::new()
                } else {
                    format!(" (held by {})", held.join(", "))
                }
            ));
        }
        if !new.is_empty() {
            parts.push(format!(
                "{} {} available but unknown to the file",
                cpus_text(&new),
                if new.len() == 1 { "is" } else { "are" }
            ));
        }
        r.lines.push(format!(
            "the machine ({}) has CPUs {now}, the file knows {known}: {}",
            target.machine_src,
            parts.join("; ")
        ));
        let mut undo = Vec::new();
        if !gone.is_empty() {
            let cpu = match gone.to_vec().as_slice() {
                [one] => format!("cpu{one}"),
                _ => "cpuN".to_string(),
            };
            undo.push(format!(
                "bring {} back online (echo 1 > /sys/devices/system/cpu/{cpu}/online)",
                cpus_text(&gone)
            ));
        }
        if !new.is_empty() {
            undo.push(format!("take {} offline again", cpus_text(&new)));
        }
        r.advice.push(format!(
            "CPUs went offline or online since the file was written (or the strict-cpu-reservation option changed, or \
             the file is from another machine). To restart with this state, {}; or start fresh (below).",
            undo.join(" and ")
        ));
        return;
    }
    if msg.contains("overlaps with default cpuset")
        || msg.contains("default cpuset cannot be empty")
    {
        r.lines.push(
            "the file contradicts itself (a container's exclusive CPUs are also shared, or exclusive CPUs without a shared set): it was edited or made by a tool"
                .to_string(),
        );
    }
}

fn run_restart(l: &Loaded, target: &Target) -> Result<Restart> {
    let state_dir = l
        .path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .map_or(".".to_string(), |p| p.display().to_string());
    // First without checkpoints: a failure here is the config's, not the file's.
    let base = Node::start(
        target.machine.clone(),
        target.config.clone(),
        StartOptions {
            state_dir: state_dir.clone(),
            ..Default::default()
        },
    )
    .map_err(|e| {
        anyhow!(
            "the kubelet would not start with this machine ({}) and config ({}) even without checkpoints: {e}. \
             Fix the configuration first (nmm validate), then verify the checkpoint again.",
            target.machine_src,
            target.config_src
        )
    })?;
    let reserved = base
        .memory
        .static_policy()
        .map(|p| p.system_reserved().clone())
        .unwrap_or_default();
    let raw = RawCheckpoint::Bytes(l.bytes.clone());
    let opts = match l.kind {
        Kind::Memory => StartOptions {
            state_dir,
            memory_checkpoint: Some(raw),
            ..Default::default()
        },
        Kind::Cpu => StartOptions {
            state_dir,
            cpu_checkpoint: Some(raw),
            ..Default::default()
        },
    };
    let mut r = Restart {
        ok: true,
        error: None,
        lines: Vec::new(),
        differences: Vec::new(),
        advice: Vec::new(),
    };
    if let Err(e) = Node::start(target.machine.clone(), target.config.clone(), opts) {
        r.ok = false;
        match l.kind {
            Kind::Memory => explain_memory_failure(&e, l, target, &reserved, &mut r),
            Kind::Cpu => explain_cpu_failure(&e, l, target, &mut r),
        }
        r.error = Some(e);
    }
    Ok(r)
}

fn verify(a: &VerifyArgs, out: &mut dyn Write, _err: &mut dyn Write) -> Result<i32> {
    let style = Style::new(a.color);
    let fmt = a.output.unwrap_or(Output::Table);
    let target = load_target(a)?;
    let l = match load(&a.file)? {
        Ok(l) => l,
        Err(msg) => {
            let v = json!({
                "file": a.file.display().to_string(),
                "kind": Value::Null,
                "result": "corrupt",
                "checksum": {"ok": false, "messages": [msg]},
                "restartValidation": Value::Null,
                "differences": [],
                "advice": [],
            });
            if fmt == Output::Table {
                writeln!(out, "{} {}", style.bold("verify"), a.file.display())?;
                writeln!(out, "  {}: {msg}", style.bad("corrupt"))?;
                writeln!(out, "{}", style.bad("CORRUPT"))?;
            } else {
                write_structured(out, &v, fmt)?;
            }
            return Ok(1);
        }
    };
    let check = match l.kind {
        Kind::Memory => check_memory_checksum(&l),
        Kind::Cpu => check_cpu_checksum(&l),
    };
    let restart = match &target {
        Some(t) => Some(run_restart(&l, t)?),
        None => None,
    };
    let mut verdict = check.verdict;
    if restart.as_ref().is_some_and(|r| !r.ok) {
        verdict = verdict.worst(Verdict::Mismatch);
    }
    let mut advice = check.advice.clone();
    if let Some(r) = &restart {
        for x in &r.advice {
            if !advice.contains(x) {
                advice.push(x.clone());
            }
        }
    }
    // The kubelet's own remedy, once, at the end.
    if verdict != Verdict::Ok {
        advice.push(drain_advice(l.kind, &l.name()));
    }
    let (format, policy) = match (&check.memory, &check.cpu) {
        (Some((ck, f, _)), _) => (Some(format_name(*f)), Some(ck.policy_name.clone())),
        (None, Some(ck)) => (None, Some(ck.policy_name.clone())),
        _ => (None, None),
    };
    let differences = restart
        .as_ref()
        .map(|r| r.differences.clone())
        .unwrap_or_default();

    if fmt != Output::Table {
        let restart_json = match (&restart, &target) {
            (Some(r), Some(t)) => json!({
                "ok": r.ok,
                "machine": t.machine_src,
                "config": t.config_src,
                "stage": r.error.as_ref().map(|e| e.stage),
                "kubeletError": r.error.as_ref().map(|e| e.message.clone()),
                "messages": r.lines,
            }),
            _ => Value::Null,
        };
        let mut v = json!({
            "file": l.name(),
            "kind": l.kind.file_name(),
        });
        if let Some(f) = format {
            v["format"] = json!(f);
        }
        v["policyName"] = json!(policy);
        v["result"] = json!(verdict.word());
        v["checksum"] = json!({
            "ok": check.verdict == Verdict::Ok,
            "stored": l.stored_u64("checksum"),
            "messages": check.lines,
        });
        v["restartValidation"] = restart_json;
        v["differences"] = json!(differences);
        v["advice"] = json!(advice);
        v["warnings"] = json!(check.warnings);
        write_structured(out, &v, fmt)?;
        return Ok(if verdict == Verdict::Ok { 0 } else { 1 });
    }

    let mut s = String::new();
    let _ = write!(
        s,
        "{} {} ({}",
        style.bold("verify"),
        l.name(),
        l.kind.file_name()
    );
    if let Some(f) = format {
        let _ = write!(s, ", format {f}");
    }
    if let Some(p) = &policy {
        let _ = write!(s, ", policy {p}");
    }
    s.push_str(")\n");
    let status = |v: Verdict| match v {
        Verdict::Ok => style.good("ok"),
        Verdict::Mismatch => style.bad("MISMATCH"),
        Verdict::Corrupt => style.bad("CORRUPT"),
    };
    let _ = writeln!(s, "  checksum:           {}", status(check.verdict));
    for line in &check.lines {
        let _ = writeln!(s, "    {line}");
    }
    for w in &check.warnings {
        let _ = writeln!(s, "    {}: {w}", style.warn("warning"));
    }
    match (&restart, &target) {
        (Some(r), Some(t)) => {
            let _ = writeln!(
                s,
                "  restart validation: {}",
                if r.ok {
                    style.good("ok")
                } else {
                    style.bad("FAILED")
                }
            );
            let _ = writeln!(
                s,
                "    machine: {}; kubelet config: {}",
                t.machine_src, t.config_src
            );
            match &r.error {
                None => {
                    let _ = writeln!(
                        s,
                        "    kubelet v1.32 starts its {} with this file",
                        l.kind.manager()
                    );
                }
                Some(e) => {
                    let _ = writeln!(s, "    kubelet v1.32 refuses to start ({}):", e.stage);
                    let _ = writeln!(s, "      {}", e.message);
                    for line in &r.lines {
                        let _ = writeln!(s, "    {line}");
                    }
                }
            }
        }
        _ => {
            let _ = writeln!(
                s,
                "  restart validation: skipped (give --machine FILE or --sysfs-root DIR, and --config KUBELET_CONFIG)"
            );
        }
    }
    if !differences.is_empty() {
        let _ = writeln!(s, "\n{}", style.bold("What differs"));
        for d in &differences {
            let _ = writeln!(s, "  - {d}");
        }
    }
    if !advice.is_empty() {
        let _ = writeln!(s, "\n{}", style.bold("What to do"));
        for x in &advice {
            let mut lines = x.lines();
            if let Some(first) = lines.next() {
                let _ = writeln!(s, "  - {first}");
            }
            for more in lines {
                let _ = writeln!(s, "      {more}");
            }
        }
    }
    let _ = writeln!(
        s,
        "\n{}",
        match verdict {
            Verdict::Ok => style.good("OK"),
            Verdict::Mismatch => style.bad("MISMATCH"),
            Verdict::Corrupt => style.bad("CORRUPT"),
        }
    );
    out.write_all(s.as_bytes())?;
    Ok(if verdict == Verdict::Ok { 0 } else { 1 })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn humanize_adds_units() {
        assert_eq!(
            humanize_bytes("free is 1073741824 bytes in the state, 512 bytes expected (+1073741312 bytes)"),
            "free is 1073741824 bytes (1Gi) in the state, 512 bytes expected (+1073741312 bytes (1Gi))"
        );
        assert_eq!(humanize_bytes("no numbers"), "no numbers");
    }

    #[test]
    fn quantities() {
        assert_eq!(exact_quantity(868 << 20), "868Mi");
        assert_eq!(exact_quantity(1536), "1536");
        assert_eq!(exact_quantity(0), "0");
        assert_eq!(human_delta(16 << 30, (16 << 30) - (32 << 10)), "-32Ki");
    }

    #[test]
    fn quoted_strings() {
        assert_eq!(
            quoted(r#"not all reserved cpus: "0,32" are present in defaultCpuSet: "0,6-15""#),
            vec!["0,32".to_string(), "0,6-15".to_string()]
        );
    }
}
