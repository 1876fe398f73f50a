//! `nmm simulate SCENARIO`: replay pod events through the engine.

use crate::fsio::write_atomic;
use crate::render::event_text;
use crate::scenario::load_scenario;
use crate::simulate::{device_state_json, event_json, run, startup_json, summary};
use anyhow::Result;
use std::io::Write;
use std::path::Path;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Json,
    Yaml,
    Table,
}

/// Returns the process exit status.
fn to_yaml(v: &serde_json::Value) -> Result<String> {
    serde_saphyr::to_string(v).map_err(|e| anyhow::anyhow!("cannot render YAML: {e}"))
}

/// Runs `nmm simulate`; `svg` draws the final memory books.
pub fn execute(
    scenario: &Path,
    format: Format,
    state_dir: Option<&Path>,
    svg: Option<&Path>,
    proc_iomem: Option<&Path>,
    fail_on_reject: bool,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<i32> {
    let mut s = load_scenario(scenario)?;
    if let Some(p) = proc_iomem {
        s.proc_iomem = Some(std::fs::read_to_string(p).map_err(|e| {
            anyhow::anyhow!("{}: cannot read the /proc/iomem copy: {e}", p.display())
        })?);
    }
    let dir_text = state_dir
        .map(|d| d.display().to_string().trim_end_matches('/').to_string())
        .unwrap_or_else(|| "/var/lib/kubelet".to_string());
    let o = run(&s, &dir_text)?;
    if let Some(d) = o.node.as_ref().and_then(|n| n.memory_drift.as_ref()) {
        for line in nmm_core::diagnose::checkpoint::drift_lines(d) {
            writeln!(err, "note: state.memoryManager: {line}")?;
        }
    }
    const SHOWN: usize = 10;
    for w in o.warnings.iter().take(SHOWN) {
        writeln!(err, "warning: {w}")?;
    }
    if o.warnings.len() > SHOWN {
        writeln!(
            err,
            "warning: ... and {} more like these",
            o.warnings.len() - SHOWN
        )?;
    }
    if let Some(e) = &o.startup_error {
        match format {
            Format::Json => writeln!(out, "{}", startup_json(e))?,
            Format::Yaml => write!(out, "{}", to_yaml(&startup_json(e))?)?,
            Format::Table => writeln!(
                out,
                "the kubelet would not start ({}): {}",
                e.stage, e.message
            )?,
        }
        return Ok(1);
    }
    if format == Format::Yaml {
        let all: Vec<serde_json::Value> = o
            .events
            .iter()
            .map(|(step, e)| event_json(*step, e))
            .collect();
        write!(out, "{}", to_yaml(&serde_json::Value::Array(all))?)?;
    }
    for (step, e) in &o.events {
        match format {
            Format::Json => writeln!(out, "{}", event_json(*step, e))?,
            Format::Table => write!(out, "{}", event_text(*step, e))?,
            Format::Yaml => {}
        }
    }
    let sum = summary(&o.events);
    if format == Format::Table {
        writeln!(out, "{}", sum.text())?;
    }
    if let (Format::Json, Some(node)) = (format, &o.node) {
        if let Some(line) = device_state_json(&s, node) {
            writeln!(out, "{line}")?;
        }
    }
    if let Some(e) = o
        .node
        .as_ref()
        .and_then(|n| n.devices.checkpoint_error.as_ref())
    {
        writeln!(
            err,
            "warning: {}: state.deviceManager: the device checkpoint was not used ({e}); the kubelet starts without it in that case",
            s.path.display()
        )?;
    }
    if let (Some(dir), Some(node)) = (state_dir, &o.node) {
        write_atomic(
            &dir.join(nmm_core::memorymanager::STATE_FILE),
            node.memory_checkpoint().as_bytes(),
        )?;
        write_atomic(
            &dir.join(nmm_core::cpumanager::STATE_FILE),
            node.cpu_checkpoint().as_bytes(),
        )?;
        if node.devices.is_active() {
            let f = dir.join(nmm_core::devicemanager::STATE_FILE);
            if let Some(parent) = f.parent() {
                std::fs::create_dir_all(parent).map_err(|e| {
                    anyhow::anyhow!("{}: cannot create the directory: {e}", parent.display())
                })?;
            }
            write_atomic(&f, node.device_checkpoint().as_bytes())?;
        }
    }
    if let (Some(path), Some(node)) = (svg, &o.node) {
        let title = format!("{}: memory after the last step", scenario.display());
        let picture = crate::svg::render_memory_state(&node.memory.machine_state(), &title);
        write_atomic(path, picture.as_bytes())?;
    }
    Ok(if fail_on_reject && sum.rejected > 0 {
        writeln!(
            err,
            "error: {} of {} pods rejected (--fail-on-reject)",
            sum.rejected,
            sum.rejected + sum.admitted
        )?;
        1
    } else {
        0
    })
}
