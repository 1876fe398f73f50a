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

/// `engineMicros`, rounded to 0.1 us.
fn with_micros(mut v: serde_json::Value, us: f64) -> serde_json::Value {
    if let Some(o) = v.as_object_mut() {
        o.insert(
            "engineMicros".into(),
            serde_json::json!((us * 10.0).round() / 10.0),
        );
    }
    v
}

/// The closing line of `--timings`: how the engine times of the steps are spread.
pub fn timings_summary(micros: &[f64], steps: &[usize]) -> String {
    if micros.is_empty() {
        return "engine time: no steps".to_string();
    }
    let mut sorted: Vec<f64> = micros.to_vec();
    sorted.sort_by(f64::total_cmp);
    let at = |p: f64| sorted[((sorted.len() - 1) as f64 * p).round() as usize];
    let (worst, _) =
        micros.iter().enumerate().fold(
            (0, f64::MIN),
            |(wi, wv), (i, &v)| if v > wv { (i, v) } else { (wi, wv) },
        );
    format!(
        "engine time over {} steps: total {:.1} us, p50 {:.1} us, p99 {:.1} us, max {:.1} us (step {})",
        micros.len(),
        micros.iter().sum::<f64>(),
        at(0.5),
        at(0.99),
        sorted[sorted.len() - 1],
        steps.get(worst).copied().unwrap_or(worst)
    )
}

/// Runs `nmm simulate`; `svg` draws the final memory books; `timings` adds each step's
/// engine time (`engineMicros` in JSON/YAML, a line in tables) and a summary on stderr.
#[allow(clippy::too_many_arguments)]
pub fn execute(
    scenario: &Path,
    format: Format,
    state_dir: Option<&Path>,
    svg: Option<&Path>,
    fail_on_reject: bool,
    proc_iomem: Option<&Path>,
    timings: bool,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<i32> {
    let s = load_scenario(scenario)?;
    let dir_text = state_dir
        .map(|d| d.display().to_string().trim_end_matches('/').to_string())
        .unwrap_or_else(|| "/var/lib/kubelet".to_string());
    let run = Run {
        format,
        dir_text,
        state_dir,
        svg,
        fail_on_reject,
        proc_iomem,
        timings,
    };
    execute_loaded(s, &run, out, err)
}

/// How to run a loaded scenario: `dir_text` is the state directory the kubelet's messages
/// name; `state_dir` (if any) is where the final checkpoints are written.
pub struct Run<'a> {
    pub format: Format,
    pub dir_text: String,
    pub state_dir: Option<&'a Path>,
    pub svg: Option<&'a Path>,
    pub fail_on_reject: bool,
    pub proc_iomem: Option<&'a Path>,
    pub timings: bool,
}

/// [`execute`] on a scenario already loaded (a file, or the live node with pods).
pub fn execute_loaded(
    mut s: crate::scenario::Scenario,
    r: &Run,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<i32> {
    let (format, state_dir, svg, fail_on_reject, timings) =
        (r.format, r.state_dir, r.svg, r.fail_on_reject, r.timings);
    let scenario = s.path.clone();
    if let Some(p) = r.proc_iomem {
        s.proc_iomem = Some(std::fs::read_to_string(p).map_err(|e| {
            anyhow::anyhow!("{}: cannot read the /proc/iomem copy: {e}", p.display())
        })?);
    }
    let o = run(&s, &r.dir_text)?;
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
            .zip(&o.engine_micros)
            .map(|((step, e), &us)| {
                let v = event_json(*step, e);
                if timings {
                    with_micros(v, us)
                } else {
                    v
                }
            })
            .collect();
        write!(out, "{}", to_yaml(&serde_json::Value::Array(all))?)?;
    }
    for ((step, e), &us) in o.events.iter().zip(&o.engine_micros) {
        match format {
            Format::Json if timings => writeln!(out, "{}", with_micros(event_json(*step, e), us))?,
            Format::Json => writeln!(out, "{}", event_json(*step, e))?,
            Format::Table => {
                write!(out, "{}", event_text(*step, e))?;
                if timings {
                    writeln!(out, "  engine time: {us:.1} us")?;
                }
            }
            Format::Yaml => {}
        }
    }
    if timings {
        let steps: Vec<usize> = o.events.iter().map(|(s, _)| *s).collect();
        writeln!(err, "{}", timings_summary(&o.engine_micros, &steps))?;
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
        let picture = crate::svg::render_node_state(
            &node.memory.machine_state(),
            &title,
            &node.devices.placements(),
        );
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
