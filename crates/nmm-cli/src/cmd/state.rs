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
use comfy_table::{CellAlignment, Table};
use nmm_core::checkpoint::memory::{MemoryCheckpoint, MemoryCheckpointFormat, PodEntries};
use nmm_core::checkpoint::{self, CheckpointError};
use nmm_core::cpuset::CpuSet;
use nmm_core::memorymanager::state::{Block, MachineState, MemoryTable};
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};

use nmm_core::diagnose::checkpoint::*;

/// A checkpoint file: the device checkpoint (path and bytes), or one of the others.
enum Found {
    Device(PathBuf, Vec<u8>),
    Other(std::result::Result<Loaded, String>),
}

/// Reads the file (or finds the one checkpoint in a directory) and tells which checkpoint
/// it is. `Other(Err(text))`: not a checkpoint nmm can identify (corrupt, exit 1). Recognises the device checkpoint (by its `Data` keys, or by its
/// name when it is not JSON).
fn load_any(path: &Path) -> Result<Found> {
    if path.is_dir() {
        let found: Vec<PathBuf> = [
            nmm_core::checkpoint::memory::FILE_NAME,
            nmm_core::checkpoint::cpu::FILE_NAME,
            DEVICE_STATE_FILE,
            "kubelet_internal_checkpoint",
        ]
        .iter()
        .map(|f| path.join(f))
        .filter(|p| p.is_file())
        .collect();
        match found.as_slice() {
            [one] => return load_any(one),
            [] => bail!(
                "{}: is a directory with none of memory_manager_state, cpu_manager_state and \
                 {DEVICE_STATE_FILE} in it; pass the checkpoint file (the kubelet keeps them in its root directory, usually /var/lib/kubelet)",
                path.display()
            ),
            _ => bail!(
                "{}: is a directory; did you mean {}?",
                path.display(),
                found
                    .iter()
                    .map(|f| f.display().to_string())
                    .collect::<Vec<_>>()
                    .join(" or ")
            ),
        }
    }
    let bytes = std::fs::read(path).with_context(|| {
        format!(
            "{}: cannot read the file (the kubelet keeps its checkpoints in its root directory, usually /var/lib/kubelet)",
            path.display()
        )
    })?;
    let json: Option<Value> = serde_json::from_slice(&bytes).ok();
    let named = path
        .file_name()
        .is_some_and(|n| n == "kubelet_internal_checkpoint");
    if json.as_ref().map_or(named, is_device_checkpoint) {
        return Ok(Found::Device(path.to_path_buf(), bytes));
    }
    Ok(Found::Other(identify(path, bytes).map_err(|e| anyhow!(e))?))
}

const SHOW_EXAMPLES: &str = "\
Examples:
  nmm state show /var/lib/kubelet/memory_manager_state
  nmm state show /var/lib/kubelet/cpu_manager_state -o json
  nmm state show /var/lib/kubelet/memory_manager_state --svg numa.svg
  nmm state show /var/lib/kubelet/device-plugins/kubelet_internal_checkpoint

The kind of checkpoint is detected from its keys (machineState: memory manager,
defaultCpuSet: CPU manager, Data.PodDeviceEntries: device manager). Exit status: 0 shown, 1 the file is corrupt (reported, not
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
    /// memory_manager_state, cpu_manager_state or device-plugins/kubelet_internal_checkpoint
    /// (usually in /var/lib/kubelet), or a directory holding exactly one of them.
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
    /// A copy of the node's /proc/iomem (read as root), for the kubelet config's
    /// `memory-drift-tolerance: auto` (KEP-6232); without it `auto` is the exact comparison.
    #[arg(long, value_name = "FILE")]
    pub proc_iomem: Option<PathBuf>,
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
pub(crate) struct Style {
    color: bool,
}

impl Style {
    pub(crate) fn new(mode: ColorMode) -> Style {
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
    pub(crate) fn good(&self, s: &str) -> String {
        self.paint("32", s)
    }
    pub(crate) fn bad(&self, s: &str) -> String {
        self.paint("1;31", s)
    }
    pub(crate) fn warn(&self, s: &str) -> String {
        self.paint("33", s)
    }
    pub(crate) fn bold(&self, s: &str) -> String {
        self.paint("1", s)
    }
}

use crate::render::new_table;

/// A pod UID (36 characters) is never cut across lines; the other columns wrap instead.
fn keep_uids_whole(t: &mut Table) {
    if let Some(c) = t.column_mut(0) {
        c.set_constraint(comfy_table::ColumnConstraint::LowerBoundary(
            comfy_table::Width::Fixed(36),
        ));
    }
}

fn align_right(t: &mut Table, from: usize) {
    let n = t.column_count();
    for i in from..n {
        if let Some(c) = t.column_mut(i) {
            c.set_cell_alignment(CellAlignment::Right);
        }
    }
}

pub(crate) fn write_structured(out: &mut dyn Write, v: &Value, fmt: Output) -> Result<()> {
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
// show

fn show(a: &ShowArgs, out: &mut dyn Write, err: &mut dyn Write) -> Result<i32> {
    let style = Style::new(a.color);
    let l = match load_any(&a.file)? {
        Found::Device(file, _) if a.svg.is_some() => bail!(
            "{}: --svg draws memory_manager_state; this is the Device Manager's checkpoint (show it without --svg)",
            file.display()
        ),
        Found::Device(file, bytes) => {
            let fmt = a.output.unwrap_or(Output::Table);
            return crate::cmd::state_device::show(&file, &bytes, fmt, style, out, err);
        }
        Found::Other(l) => l,
    };
    let l = match l {
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
        Output::Table | Output::Wide => {}
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
        // Narrow terminals: SYSTEM RESERVED, TOTAL, ASSIGNMENTS go first (-o wide keeps them).
        let dropped = crate::render::drop_to_fit(&mut t, &[5, 4, 2]);
        let _ = writeln!(s, "{t}");
        s.push_str(&crate::render::dropped_note(&dropped));
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
        let dropped = crate::render::drop_to_fit(&mut t, &[3, 2]);
        let _ = writeln!(s, "{t}");
        s.push_str(&crate::render::dropped_note(&dropped));
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
        keep_uids_whole(&mut t);
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
        Output::Table | Output::Wide => {}
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
        keep_uids_whole(&mut t);
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
    let proc_iomem = match &a.proc_iomem {
        Some(p) => Some(
            std::fs::read_to_string(p)
                .with_context(|| format!("{}: cannot read the /proc/iomem copy", p.display()))?,
        ),
        None => None,
    };
    Ok(Some(Target {
        machine,
        config,
        machine_src,
        config_src,
        proc_iomem,
    }))
}

fn verify(a: &VerifyArgs, out: &mut dyn Write, _err: &mut dyn Write) -> Result<i32> {
    let style = Style::new(a.color);
    let fmt = a.output.unwrap_or(Output::Table).table_or();
    let target = load_target(a)?;
    let l = match load_any(&a.file)? {
        Found::Device(file, bytes) => {
            return crate::cmd::state_device::verify(&file, &bytes, fmt, style, out);
        }
        Found::Other(l) => l,
    };
    let l = match l {
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
        Some(t) => Some(run_restart(&l, t).map_err(|e| anyhow!(e))?),
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
                None if r.lines.is_empty() => {
                    let _ = writeln!(
                        s,
                        "    kubelet v1.32 starts its {} with this file",
                        l.kind.manager()
                    );
                }
                None => {
                    // Accepted thanks to KEP-6232's memory-drift-tolerance only.
                    let _ = writeln!(
                        s,
                        "    the kubelet starts its {} with this file under memoryManagerPolicyOptions memory-drift-tolerance (KEP-6232; kubelet v1.32 itself would refuse it):",
                        l.kind.manager()
                    );
                    for line in &r.lines {
                        let _ = writeln!(s, "    {line}");
                    }
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
