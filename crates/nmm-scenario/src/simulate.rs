//! Replaying a scenario through the engine, and the JSON lines of the scenario spec.

use crate::scenario::{Scenario, Step};
use anyhow::{anyhow, Result};
use nmm_core::memorymanager::state::Block;
use nmm_core::node::{AdmitResult, Node, RemoveResult, StartOptions, StartupError};
use nmm_core::pod::PodInfo;
use nmm_core::topology::hint::TopologyHint;
use serde_json::{json, Value};

#[derive(Debug, Clone)]
pub enum Event {
    Admit(Box<AdmitResult>),
    Remove(RemoveResult),
}

#[derive(Debug)]
pub struct Outcome {
    pub startup_error: Option<StartupError>,
    pub events: Vec<(usize, Event)>,
    /// Warnings about the scenario (e.g. removing a pod that is not there), by step.
    pub warnings: Vec<String>,
    pub node: Option<Node>,
    /// Engine time of each event (`Node::admit` / `Node::remove`), in microseconds,
    /// index for index with `events`.
    pub engine_micros: Vec<f64>,
}

/// Runs every step. `state_dir` is the directory the kubelet's messages name.
pub fn run(s: &Scenario, state_dir: &str) -> Result<Outcome> {
    run_with(s, state_dir, false)
}

/// [`run`], optionally listing every NUMA mask as the kubelet does (`enumerate`) instead
/// of the engine's described hint lists; the decisions are the same, tests check both.
pub fn run_with(s: &Scenario, state_dir: &str, enumerate: bool) -> Result<Outcome> {
    let opts = StartOptions {
        state_dir: state_dir.to_string(),
        memory_checkpoint: s.memory_state.clone(),
        cpu_checkpoint: s.cpu_state.clone(),
        enumerate,
        devices: s.devices.clone(),
        device_checkpoint: s.device_state.clone(),
        memory_capacity: s.memory_capacity,
        proc_iomem: s.proc_iomem.clone(),
        ..Default::default()
    };
    let mut node = match Node::start(s.machine.clone(), s.kubelet.clone(), opts) {
        Ok(n) => n,
        Err(e) => {
            return Ok(Outcome {
                startup_error: Some(e),
                events: vec![],
                warnings: s.warnings.clone(),
                node: None,
                engine_micros: vec![],
            })
        }
    };
    let pod_level = s.kubelet.feature_gate("PodLevelResources");
    let mut events = Vec::new();
    let mut warnings = s.warnings.clone();
    let mut engine_micros = Vec::new();
    let micros = |t: std::time::Instant| t.elapsed().as_secs_f64() * 1e6;
    for (i, step) in s.steps.iter().enumerate() {
        match step {
            Step::Admit(pod) => {
                let info = PodInfo::from_pod(pod, pod_level).map_err(|e| {
                    anyhow!(
                        "{}: steps[{i}].admit: {e}; quantities look like 2, 500m, 4Gi",
                        s.path.display()
                    )
                })?;
                let t = std::time::Instant::now();
                let r = node.admit(&info).map_err(|e| {
                    anyhow!("{}: steps[{i}].admit.metadata.uid: {e}", s.path.display())
                })?;
                engine_micros.push(micros(t));
                events.push((i, Event::Admit(Box::new(r))));
            }
            Step::Remove { uid } => {
                let t = std::time::Instant::now();
                let r = node.remove(uid);
                engine_micros.push(micros(t));
                if !r.removed {
                    warnings.push(format!(
                        "{}: steps[{i}].remove.uid: no running pod has uid {uid:?}; nothing was released",
                        s.path.display()
                    ));
                }
                events.push((i, Event::Remove(r)));
            }
        }
    }
    Ok(Outcome {
        startup_error: None,
        events,
        warnings,
        node: Some(node),
        engine_micros,
    })
}

fn hint_json(h: &TopologyHint) -> Value {
    json!({
        "numaAffinity": h.affinity.map(|m| json!(m.to_vec())).unwrap_or(Value::Null),
        "preferred": h.preferred,
    })
}

fn block_json(b: &Block) -> Value {
    json!({"type": b.kind, "size": b.size, "numaAffinity": b.numa_affinity})
}

/// One output line, with the field order of the spec.
pub fn event_json(step: usize, e: &Event) -> Value {
    match e {
        Event::Admit(r) => {
            let mut o = serde_json::Map::new();
            o.insert("step".into(), json!(step));
            o.insert("op".into(), json!("admit"));
            o.insert("uid".into(), json!(r.uid));
            o.insert("name".into(), json!(r.name));
            o.insert("admitted".into(), json!(r.admitted));
            if let Some(reason) = &r.reason {
                o.insert("reason".into(), json!(reason));
            }
            if let Some(m) = &r.message {
                o.insert("message".into(), json!(m));
            }
            let cs: Vec<Value> = r
                .containers
                .iter()
                .map(|c| {
                    let mut m = serde_json::Map::new();
                    m.insert("name".into(), json!(c.name));
                    if c.init {
                        m.insert("init".into(), json!(true));
                    }
                    m.insert(
                        "memory".into(),
                        Value::Array(c.memory.iter().map(block_json).collect()),
                    );
                    m.insert("cpus".into(), json!(c.cpus.to_string()));
                    if let Some(h) = &c.affinity {
                        m.insert("affinity".into(), hint_json(h));
                    }
                    if !c.devices.is_empty() {
                        m.insert("devices".into(), json!(c.devices));
                    }
                    if !r.admitted {
                        // What the managers handed out before the failure; the kubelet
                        // frees it, the pod holds nothing.
                        m.insert("partial".into(), json!(true));
                    }
                    Value::Object(m)
                })
                .collect();
            o.insert("containers".into(), Value::Array(cs));
            Value::Object(o)
        }
        Event::Remove(r) => {
            let mut o = serde_json::Map::new();
            o.insert("step".into(), json!(step));
            o.insert("op".into(), json!("remove"));
            o.insert("uid".into(), json!(r.uid));
            if let Some(n) = &r.name {
                o.insert("name".into(), json!(n));
            }
            o.insert("removed".into(), json!(r.removed));
            Value::Object(o)
        }
    }
}

/// The `device_manager_state_canonical` line (scenarios with devices or a device
/// checkpoint), `None` otherwise.
pub fn device_state_json(s: &Scenario, node: &Node) -> Option<Value> {
    if s.devices.is_empty() && s.device_state.is_none() {
        return None;
    }
    let v: Value = serde_json::from_str(&node.device_checkpoint()).ok()?;
    Some(json!({ "device_manager_state_canonical": v }))
}

pub fn startup_json(e: &StartupError) -> Value {
    json!({"stage": e.stage, "startupError": e.message})
}

/// What a run came to: admitted and rejected pods (by reason), removals.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Summary {
    pub admitted: usize,
    pub rejected: usize,
    pub by_reason: std::collections::BTreeMap<String, usize>,
    pub removed: usize,
}

impl Summary {
    /// `summary: 3 admitted, 2 rejected (TopologyAffinityError 1, UnexpectedAdmissionError 1), 1 removed`
    pub fn text(&self) -> String {
        let mut s = format!(
            "summary: {} admitted, {} rejected",
            self.admitted, self.rejected
        );
        if !self.by_reason.is_empty() {
            let parts: Vec<String> = self
                .by_reason
                .iter()
                .map(|(r, n)| format!("{r} {n}"))
                .collect();
            s.push_str(&format!(" ({})", parts.join(", ")));
        }
        s.push_str(&format!(", {} removed", self.removed));
        s
    }
}

pub fn summary(events: &[(usize, Event)]) -> Summary {
    let mut s = Summary::default();
    for (_, e) in events {
        match e {
            Event::Admit(r) if r.admitted => s.admitted += 1,
            Event::Admit(r) => {
                s.rejected += 1;
                *s.by_reason
                    .entry(r.reason.clone().unwrap_or_else(|| "-".into()))
                    .or_default() += 1;
            }
            Event::Remove(r) if r.removed => s.removed += 1,
            Event::Remove(_) => {}
        }
    }
    s
}
