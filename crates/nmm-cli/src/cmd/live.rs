//! The live node in one command: `nmm explain --pod POD.yaml` and `nmm simulate --node
//! --pod ...` read this node (sysfs, /proc/meminfo, the kubelet config, its checkpoints)
//! through `nmm_scenario::live` and render what the engine makes of the pods. Nothing is
//! written.

use crate::cmd::explain::{render_text, Color, Explained, Paint};
use crate::cmd::Output;
use anyhow::{anyhow, Result};
use nmm_scenario::live::{
    load_node, load_pod_file, LiveExplanation, LiveNode, LiveOutcome, NodeSnapshot, StartRefusal,
    DEFAULT_CONFIG, DEFAULT_STATE_DIR,
};
use serde_json::{json, Value};
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};

/// Where the node is read from (the node itself by default, or a snapshot of it).
#[derive(Debug, Clone, clap::Args)]
pub struct NodeArgs {
    /// With --pod: the directory holding sys/ (and proc/meminfo beside it) [default: /].
    #[arg(long, value_name = "DIR", conflicts_with = "scenario")]
    pub sysfs_root: Option<PathBuf>,
    /// With --pod: the kubelet's config file [default: /var/lib/kubelet/config.yaml].
    #[arg(long, value_name = "KUBELET_CONFIG", conflicts_with = "scenario")]
    pub config: Option<PathBuf>,
    /// With --pod: the kubelet's root directory, read for memory_manager_state,
    /// cpu_manager_state and device-plugins/kubelet_internal_checkpoint (never written)
    /// [default: /var/lib/kubelet].
    #[arg(long = "state-dir", value_name = "DIR", conflicts_with = "scenario")]
    pub kubelet_dir: Option<PathBuf>,
    /// With --pod: the device plugins' devices with their NUMA nodes (a file with
    /// `machine.devices`), which no checkpoint records.
    #[arg(long, value_name = "FILE", conflicts_with = "scenario")]
    pub devices: Option<PathBuf>,
}

impl NodeArgs {
    pub fn snapshot(&self) -> NodeSnapshot {
        NodeSnapshot {
            sysfs_root: self
                .sysfs_root
                .clone()
                .unwrap_or_else(|| PathBuf::from("/")),
            config: self
                .config
                .clone()
                .unwrap_or_else(|| PathBuf::from(DEFAULT_CONFIG)),
            state_dir: self
                .kubelet_dir
                .clone()
                .unwrap_or_else(|| PathBuf::from(DEFAULT_STATE_DIR)),
            devices: self.devices.clone(),
        }
    }
}

/// Reads the node, printing its warnings.
pub fn read_node(args: &NodeArgs, err: &mut dyn Write) -> Result<LiveNode> {
    let live = load_node(&args.snapshot())?;
    for w in &live.warnings {
        writeln!(err, "warning: {w}")?;
    }
    Ok(live)
}

/// The command that shows why the kubelet refuses to start, and the refusal in words.
pub fn refusal_text(live: &LiveNode, r: &StartRefusal) -> (String, String) {
    let snap = &live.snapshot;
    match r {
        StartRefusal::Config(e) => (
            format!(
                "the kubelet would not start with {} on this machine, checkpoints or not ({}): {}",
                snap.config.display(),
                e.stage,
                e.message
            ),
            format!(
                "nmm validate --config {} --sysfs-root {} shows what to change",
                snap.config.display(),
                snap.sysfs_root.display()
            ),
        ),
        StartRefusal::Checkpoints(e) => {
            let file = match e.stage {
                "cpuManager" => nmm_core::cpumanager::STATE_FILE,
                _ => nmm_core::memorymanager::STATE_FILE,
            };
            (
                format!(
                    "the kubelet would refuse to start with the checkpoints in {} ({}): {}; the books there are not the ones this config would keep, so no admission is explained against them",
                    snap.state_dir.display(),
                    e.stage,
                    e.message
                ),
                format!(
                    "nmm state verify {} --config {} --sysfs-root {} shows what differs and what to do",
                    snap.state_dir.join(file).display(),
                    snap.config.display(),
                    snap.sysfs_root.display()
                ),
            )
        }
    }
}

fn refusal_json(live: &LiveNode, r: &StartRefusal) -> Value {
    let (e, cause) = match r {
        StartRefusal::Config(e) => (e, "config"),
        StartRefusal::Checkpoints(e) => (e, "checkpoints"),
    };
    let (text, next) = refusal_text(live, r);
    json!({"stage": e.stage, "startupError": e.message, "cause": cause, "text": text, "next": next})
}

fn snapshot_json(
    live: &LiveNode,
    holders: &std::collections::BTreeMap<String, std::collections::BTreeSet<String>>,
) -> Value {
    let s = &live.snapshot;
    json!({
        "sysfsRoot": s.sysfs_root.display().to_string(),
        "config": s.config.display().to_string(),
        "stateDir": s.state_dir.display().to_string(),
        "memoryCapacity": live.scenario.memory_capacity,
        "holders": holders,
    })
}

/// `nmm explain --pod POD.yaml`: 0 with a report (admitted or not), 1 when the kubelet
/// would not start as the node is, 2 for unreadable input.
pub fn explain(
    pod_path: &Path,
    node: &NodeArgs,
    output: Output,
    color: Color,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<i32> {
    let pod = load_pod_file(pod_path)?;
    let live = read_node(node, err)?;
    let x = match live.explain_pod(&pod, pod_path)? {
        LiveOutcome::Refused(r) => {
            match output {
                Output::Table => {
                    let (text, next) = refusal_text(&live, &r);
                    writeln!(out, "{text}\n  next: {next}")?;
                }
                _ => write_value(output, &refusal_json(&live, &r), out)?,
            }
            return Ok(1);
        }
        LiveOutcome::Explained(x) => x,
    };
    if x.already_held {
        writeln!(
            err,
            "note: {}: pod uid {:?} already holds resources in the checkpoints (containers {}): the kubelet takes this pod for that one, whose containers keep what the checkpoints record. To ask whether another pod like it would fit, remove metadata.uid from the file",
            pod_path.display(),
            x.explanation.pod.uid,
            x.holders
                .get(&x.explanation.pod.uid)
                .map(|c| c.iter().cloned().collect::<Vec<_>>().join(", "))
                .unwrap_or_default()
        )?;
    }
    match output {
        Output::Table => {
            let colour = match color {
                Color::Always => true,
                Color::Never => false,
                Color::Auto => {
                    std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none()
                }
            };
            write!(
                out,
                "{}",
                render_live_text(&live, pod_path, &x, Paint(colour))
            )?;
        }
        _ => {
            let mut obj = serde_json::Map::new();
            obj.insert("podFile".into(), json!(pod_path.display().to_string()));
            if let Some(st) = &x.recorded_status {
                obj.insert("recordedStatus".into(), json!(st));
            }
            obj.insert("snapshot".into(), snapshot_json(&live, &x.holders));
            if let Ok(Value::Object(m)) = serde_json::to_value(&x.explanation) {
                obj.extend(m);
            }
            write_value(output, &Value::Object(obj), out)?;
        }
    }
    Ok(0)
}

fn write_value(output: Output, v: &Value, out: &mut dyn Write) -> Result<()> {
    match output {
        Output::Yaml => {
            let y = serde_saphyr::to_string(v).map_err(|e| anyhow!("cannot write YAML: {e}"))?;
            write!(out, "{y}")?;
            if !y.ends_with('\n') {
                writeln!(out)?;
            }
        }
        _ => writeln!(out, "{}", serde_json::to_string_pretty(v)?)?,
    }
    Ok(())
}

/// What was read, then the same report as the scenario form.
pub fn render_live_text(
    live: &LiveNode,
    pod_path: &Path,
    x: &LiveExplanation,
    paint: Paint,
) -> String {
    let mut s = String::from("read from the node:\n");
    for l in &live.sources {
        s.push_str(&format!("  {l}\n"));
    }
    s.push_str(&format!(
        "  {} pod{} holding exclusive CPUs or pinned memory in the checkpoints\n\n",
        x.holders.len(),
        if x.holders.len() == 1 { "" } else { "s" }
    ));
    if let Some(st) = &x.recorded_status {
        s.push_str(&format!(
            "the status in {} (the kubelet's earlier answer): {st}\n\n",
            pod_path.display()
        ));
    }
    let e = Explained {
        label: format!("{} on this node", pod_path.display()),
        step: 0,
        explanation: x.explanation.clone(),
    };
    s.push_str(&render_text(&e, paint));
    s
}

/// `nmm simulate --node --pod A --pod B`: the pods admitted in order on the node as it is;
/// the output is `nmm simulate`'s. Exit 1 when the kubelet would not start as the node is.
pub fn simulate(
    pods: &[PathBuf],
    node: &NodeArgs,
    mut run: crate::cmd::simulate::Run,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<i32> {
    let pods = pods
        .iter()
        .map(|p| Ok((p.clone(), load_pod_file(p)?)))
        .collect::<Result<Vec<_>>>()?;
    let live = read_node(node, err)?;
    let started = live.start();
    if let Ok(n) = &started {
        let holders = LiveNode::holders(n);
        for (path, pod) in &pods {
            let uid = nmm_scenario::live::pod_uid(pod, path);
            if let Some(cs) = holders.get(&uid) {
                writeln!(
                    err,
                    "note: {}: pod uid {uid:?} already holds resources in the checkpoints (containers {}): the kubelet takes this pod for that one",
                    path.display(),
                    cs.iter().cloned().collect::<Vec<_>>().join(", ")
                )?;
            }
        }
    }
    if let Err(r) = started {
        use crate::cmd::simulate::Format;
        match run.format {
            Format::Table => {
                let (text, next) = refusal_text(&live, &r);
                writeln!(out, "{text}\n  next: {next}")?;
            }
            Format::Json => writeln!(out, "{}", refusal_json(&live, &r))?,
            Format::Yaml => write_value(Output::Yaml, &refusal_json(&live, &r), out)?,
        }
        return Ok(1);
    }
    let s = live.with_pods(&pods)?;
    run.dir_text = live.state_dir_text();
    run.state_dir = None;
    crate::cmd::simulate::execute_loaded(s, &run, out, err)
}
