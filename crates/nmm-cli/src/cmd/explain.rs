//! `nmm explain SCENARIO [--step N]`: why the pod of one admit step was admitted or
//! rejected — every hint provider's hints, the merged hint and why it won, the policy's
//! verdict, the allocation that failed, and what would make the pod fit. The reasoning
//! lives in `nmm_core::explain`; this module picks the step and renders the result.

use crate::cmd::Output;
use crate::render::new_table;
use crate::scenario::{load_scenario, Scenario, Step};
use crate::simulate::{run, Event};
use anyhow::{anyhow, bail, Result};
use nmm_core::explain::{explain, ExplainError, Explanation, History, HistoryStep};
use nmm_core::node::StartOptions;
use nmm_core::pod::PodInfo;
use serde_json::{json, Value};
use std::io::{IsTerminal, Write};
use std::path::PathBuf;

const STATE_DIR: &str = "/var/lib/kubelet";

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Color {
    /// Colour when stdout is a terminal and NO_COLOR is not set.
    Auto,
    Always,
    Never,
}

#[derive(Debug, clap::Args)]
#[command(after_help = "\
Examples:
  nmm explain scenario.yaml               # the first rejected admission (else the last one)
  nmm explain scenario.yaml --step 3      # the pod admitted at steps[3]
  nmm explain scenario.yaml -o json | jq '.fixes'
  nmm explain --pod pod.yaml              # would pod.yaml be admitted on this node now?
  nmm explain --pod pod.yaml --sysfs-root snap --config snap/config.yaml --state-dir snap/kubelet

Steps are numbered from 0, as in `nmm simulate`'s output. With --pod the node is read as
the kubelet sees it (sysfs, /proc/meminfo, its config, its checkpoints); nothing is written.")]
pub struct Args {
    /// The scenario file (YAML or JSON), as for `nmm simulate`.
    #[arg(required_unless_present = "pod", conflicts_with = "pod")]
    pub scenario: Option<PathBuf>,
    /// The admit step to explain (0-based). Default: the first rejected admission, else the
    /// last admission.
    #[arg(long, value_name = "N", conflicts_with = "pod")]
    pub step: Option<usize>,
    /// A v1 Pod (YAML or JSON, e.g. `kubectl get pod NAME -o yaml`): explain it on this
    /// node as it is now, with the pods the kubelet's checkpoints hold.
    #[arg(long, value_name = "POD.yaml")]
    pub pod: Option<PathBuf>,
    #[command(flatten)]
    pub node: crate::cmd::live::NodeArgs,
    /// Output format: a readable report (table), or json / yaml for scripts.
    #[arg(short, long, value_enum, default_value = "table")]
    pub output: Output,
    /// When to colour the report.
    #[arg(long, value_enum, default_value = "auto")]
    pub color: Color,
}

/// The explanation of one step, with where it comes from.
pub struct Explained {
    /// How the report names it: `step 3`, `pod.yaml on this node`.
    pub label: String,
    pub step: usize,
    pub explanation: Explanation,
}

fn admit_steps(s: &Scenario) -> Vec<usize> {
    s.steps
        .iter()
        .enumerate()
        .filter(|(_, st)| matches!(st, Step::Admit(_)))
        .map(|(i, _)| i)
        .collect()
}

fn steps_list(v: &[usize]) -> String {
    v.iter()
        .map(|i| i.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

fn pod_info(s: &Scenario, i: usize, pod: &k8s_openapi::api::core::v1::Pod) -> Result<PodInfo> {
    PodInfo::from_pod(pod, s.kubelet.feature_gate("PodLevelResources")).map_err(|e| {
        anyhow!(
            "{}: steps[{i}].admit: {e}; quantities look like 2, 500m, 4Gi",
            s.path.display()
        )
    })
}

/// Picks the step (checked against the scenario) and explains it.
pub fn explain_scenario(s: &Scenario, step: Option<usize>) -> Result<Explained> {
    let p = s.path.display();
    let outcome = run(s, STATE_DIR)?;
    if let Some(e) = &outcome.startup_error {
        bail!(
            "{p}: the kubelet would not start ({}): {}; no pod is admitted, so there is nothing to explain (fix the kubelet block first; `nmm simulate {p}` shows the same error)",
            e.stage,
            e.message
        );
    }
    let admits = admit_steps(s);
    if admits.is_empty() {
        bail!("{p}: steps: the scenario admits no pod, so there is nothing to explain; add a step like `- admit: {{metadata: {{name: a, uid: uid-a}}, spec: ...}}`");
    }
    let n = match step {
        Some(n) => {
            if n >= s.steps.len() {
                bail!(
                    "{p}: --step {n}: out of range; the scenario has {} steps (0-{}); admit steps: {}",
                    s.steps.len(),
                    s.steps.len() - 1,
                    steps_list(&admits)
                );
            }
            if let Step::Remove { uid } = &s.steps[n] {
                bail!(
                    "{p}: --step {n}: steps[{n}] removes pod uid {uid:?}; only admissions can be explained; admit steps: {}",
                    steps_list(&admits)
                );
            }
            n
        }
        None => outcome
            .events
            .iter()
            .find_map(|(i, e)| match e {
                Event::Admit(r) if !r.admitted => Some(*i),
                _ => None,
            })
            .unwrap_or(*admits.last().expect("checked non-empty")),
    };
    let mut history = Vec::with_capacity(n);
    for (i, st) in s.steps[..n].iter().enumerate() {
        history.push(match st {
            Step::Admit(pod) => HistoryStep::Admit(pod_info(s, i, pod)?),
            Step::Remove { uid } => HistoryStep::Remove(uid.clone()),
        });
    }
    let Step::Admit(pod) = &s.steps[n] else {
        unreachable!("checked above")
    };
    let pod = pod_info(s, n, pod)?;
    let start = StartOptions {
        state_dir: STATE_DIR.to_string(),
        memory_checkpoint: s.memory_state.clone(),
        cpu_checkpoint: s.cpu_state.clone(),
        devices: s.devices.clone(),
        device_checkpoint: s.device_state.clone(),
        memory_capacity: s.memory_capacity,
        proc_iomem: s.proc_iomem.clone(),
        ..Default::default()
    };
    let h = History {
        machine: &s.machine,
        config: &s.kubelet,
        start: &start,
        steps: &history,
    };
    let explanation = explain(&h, &pod).map_err(|e| match e {
        ExplainError::Step { index, error } => {
            anyhow!("{p}: steps[{index}].admit.metadata.uid: {error}")
        }
        ExplainError::Startup(e) => anyhow!(
            "{p}: the kubelet would not start ({}): {}",
            e.stage,
            e.message
        ),
    })?;
    Ok(Explained {
        label: format!("step {n}"),
        step: n,
        explanation,
    })
}

/// `{"scenario", "step", ...the explanation}`.
pub fn to_json(path: &std::path::Path, e: &Explained) -> Value {
    let mut obj = serde_json::Map::new();
    obj.insert("scenario".into(), json!(path.display().to_string()));
    obj.insert("step".into(), json!(e.step));
    if let Ok(Value::Object(m)) = serde_json::to_value(&e.explanation) {
        obj.extend(m);
    }
    Value::Object(obj)
}

/// ANSI styling, or none.
#[derive(Debug, Clone, Copy)]
pub struct Paint(pub bool);

impl Paint {
    fn wrap(self, code: &str, s: &str) -> String {
        if self.0 {
            format!("\x1b[{code}m{s}\x1b[0m")
        } else {
            s.to_string()
        }
    }
    fn bold(self, s: &str) -> String {
        self.wrap("1", s)
    }
    fn red(self, s: &str) -> String {
        self.wrap("1;31", s)
    }
    fn green(self, s: &str) -> String {
        self.wrap("1;32", s)
    }
    fn dim(self, s: &str) -> String {
        self.wrap("2", s)
    }
}

/// `CPU`, `memory`, `device`: the manager's name as the report says it.
fn manager_name(provider: &str) -> &str {
    if provider == "cpu" {
        "CPU"
    } else {
        provider
    }
}

fn bytes(b: u64) -> String {
    nmm_core::explain::bytes_text(b)
}

/// `{0,1}`.
fn nodes(ids: &[u32]) -> String {
    let ids: Vec<String> = ids.iter().map(|i| i.to_string()).collect();
    format!("{{{}}}", ids.join(","))
}

fn requests_line(c: &nmm_core::explain::ContainerView) -> String {
    if c.requests.is_empty() {
        return "no requests".into();
    }
    let mut parts: Vec<String> = c.requests.iter().map(|(k, v)| format!("{k} {v}")).collect();
    if c.exclusive_cpus > 0 {
        parts.push(format!("{} exclusive CPUs", c.exclusive_cpus));
    }
    format!("requests {}", parts.join(", "))
}

/// `failed_after`: the manager that failed after this hint was accepted (the pod was
/// rejected all the same), if any.
fn decision_text(
    d: &nmm_core::explain::Decision,
    paint: Paint,
    pod_rejected: bool,
    failed_after: Option<&str>,
) -> String {
    let mut s = String::new();
    let mut t = new_table(&["PROVIDER", "RESOURCE", "HINTS"]);
    for p in &d.providers {
        if p.resources.is_empty() {
            let text = p
                .text
                .strip_prefix(&format!("{}: ", p.provider))
                .unwrap_or(&p.text);
            t.add_row(vec![p.provider.clone(), "-".into(), text.to_string()]);
        }
        for r in &p.resources {
            t.add_row(vec![p.provider.clone(), r.resource.clone(), r.text.clone()]);
        }
    }
    s.push_str(&t.to_string());
    s.push('\n');
    s.push_str(&format!(
        "  {} {} — {}\n",
        paint.bold("merged hint:"),
        d.merged.text,
        d.why_merged
    ));
    // Green only when the pod was admitted: a hint the policy accepted for a pod that a
    // manager then rejected is no success.
    let verdict = match (d.admit, failed_after) {
        (true, Some(m)) => format!(
            "{}; {}",
            d.verdict,
            paint.red(&format!(
                "but the {m} manager then failed to allocate (below)"
            ))
        ),
        (true, None) if pod_rejected => d.verdict.clone(),
        (true, None) => paint.green(&d.verdict),
        (false, _) => paint.red(&d.verdict),
    };
    s.push_str(&format!("  {} {verdict}\n", paint.bold("verdict:")));
    let others: Vec<String> = d
        .under_each_policy
        .iter()
        .map(|v| {
            format!(
                "{} {} ({})",
                v.policy,
                v.merged.text,
                if v.admit {
                    "hint accepted"
                } else {
                    "hint rejected"
                }
            )
        })
        .collect();
    s.push_str(&format!(
        "  {}\n",
        paint.dim(&format!(
            "same hints under each policy: {}",
            others.join(" · ")
        ))
    ));
    s
}

/// The readable report.
pub fn render_text(e: &Explained, paint: Paint) -> String {
    let x = &e.explanation;
    let mut s = String::new();
    let status = if x.admitted {
        paint.green("ADMITTED")
    } else {
        paint.red(&format!(
            "REJECTED ({})",
            x.reason.as_deref().unwrap_or("unknown reason")
        ))
    };
    s.push_str(&format!(
        "{} pod {} (uid {}, {}): {status}\n",
        paint.bold(&format!("{}:", e.label)),
        x.pod.name,
        x.pod.uid,
        x.pod.qos
    ));
    if let Some(m) = &x.message {
        s.push_str(&format!("  {m}\n"));
    }
    s.push_str(&format!(
        "  node: topology policy {}, scope {}{}; CPU manager {}; memory manager {}; NUMA nodes {}\n\n",
        x.node.topology_policy,
        x.node.topology_scope,
        if x.node.prefer_closest_numa_nodes {
            ", prefer-closest-numa-nodes"
        } else {
            ""
        },
        x.node.cpu_policy,
        x.node.memory_policy,
        x.node
            .numa_nodes
            .iter()
            .map(|n| n.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    ));
    s.push_str(&format!("{}\n\n", x.verdict));

    if x.decisions.is_empty() {
        s.push_str(&format!(
            "{}\n\n",
            paint.dim("The topology policy is none: no hints are collected or merged; each manager allocates on its own.")
        ));
    }
    for d in x.decisions.iter().filter(|d| d.scope == "pod") {
        s.push_str(&format!(
            "{}\n",
            paint.bold(&format!("Pod-scope hints for pod {}", x.pod.name))
        ));
        let failed_after = x
            .containers
            .iter()
            .find_map(|c| c.failure.as_ref())
            .filter(|f| f.provider != "topology")
            .map(|f| manager_name(&f.provider));
        s.push_str(&decision_text(d, paint, !x.admitted, failed_after));
        s.push('\n');
    }
    for c in &x.containers {
        s.push_str(&format!(
            "{} {}{} — {}; {}\n",
            paint.bold("container"),
            paint.bold(&c.name),
            if c.sidecar {
                " (sidecar)"
            } else if c.init {
                " (init)"
            } else {
                ""
            },
            requests_line(c),
            c.outcome
        ));
        if let Some(d) = x
            .decisions
            .iter()
            .find(|d| d.container.as_deref() == Some(c.name.as_str()))
        {
            let failed_after = c
                .failure
                .as_ref()
                .filter(|f| f.provider != "topology")
                .map(|f| manager_name(&f.provider));
            s.push_str(&decision_text(d, paint, !x.admitted, failed_after));
        }
        if c.outcome == "admitted" {
            let mut parts = Vec::new();
            if let Some(a) = &c.affinity {
                parts.push(format!("affinity {}", a.text));
            }
            parts.push(if c.cpus.is_empty() {
                "shared CPUs".to_string()
            } else {
                format!("CPUs {}", c.cpus)
            });
            for b in &c.memory {
                parts.push(format!(
                    "{} {} on NUMA {}",
                    b.resource,
                    bytes(b.size),
                    nodes(&b.numa_nodes)
                ));
            }
            s.push_str(&format!(
                "  {} {}\n",
                paint.bold("placed:"),
                parts.join(", ")
            ));
        }
        if let Some(f) = &c.failure {
            if f.provider == "topology" {
                s.push_str(&format!(
                    "  {} the {} policy refused the merged hint: {}\n",
                    paint.red("rejected:"),
                    x.node.topology_policy,
                    f.error
                ));
            } else {
                s.push_str(&format!(
                    "  {} {}\n",
                    paint.red(&format!("{} manager failed:", manager_name(&f.provider))),
                    f.error
                ));
            }
        }
        s.push('\n');
    }

    if !x.why.is_empty() {
        s.push_str(&format!("{}\n", paint.bold("Why it was rejected")));
        for w in &x.why {
            s.push_str(&format!("  - {w}\n"));
        }
        s.push('\n');
    }
    if !x.fixes.is_empty() {
        s.push_str(&format!("{}\n", paint.bold("What would make it fit")));
        for f in &x.fixes {
            s.push_str(&format!("  - {f}\n"));
        }
        s.push('\n');
    }

    for m in &x.facts.memory {
        s.push_str(&format!(
            "{}\n",
            paint.bold(&format!(
                "{} as {} met it (request {})",
                m.resource,
                x.facts.subject,
                bytes(m.request)
            ))
        ));
        let mut t = new_table(&["NODE", "ALLOCATABLE", "FREE", "ASSIGNMENTS", "GROUP"]);
        for n in &m.nodes {
            t.add_row(vec![
                n.node.to_string(),
                bytes(n.allocatable),
                bytes(n.free),
                n.assignments.to_string(),
                nodes(&n.group),
            ]);
        }
        s.push_str(&t.to_string());
        s.push('\n');
        let mut notes = Vec::new();
        if let Some(a) = &m.largest_free_node {
            notes.push(format!(
                "largest free single node: {} (node {})",
                bytes(a.bytes),
                a.numa_nodes[0]
            ));
        }
        if let Some(a) = &m.largest_free_group {
            notes.push(format!(
                "largest free allowed group: {} ({})",
                bytes(a.bytes),
                nodes(&a.numa_nodes)
            ));
        }
        if !notes.is_empty() {
            s.push_str(&format!("  {}\n", notes.join("; ")));
        }
        s.push('\n');
    }
    if let Some(c) = &x.facts.cpu {
        s.push_str(&format!(
            "{}\n",
            paint.bold(&format!(
                "exclusive CPUs as {} met them (request {}, {})",
                x.facts.subject,
                c.request,
                nmm_core::explain::reserved_cpus_text(&c.reserved)
            ))
        ));
        let mut t = new_table(&["NODE", "FREE", "CPUS"]);
        for n in &c.nodes {
            t.add_row(vec![
                n.node.to_string(),
                n.free.to_string(),
                if n.cpus.is_empty() {
                    "-".into()
                } else {
                    n.cpus.clone()
                },
            ]);
        }
        s.push_str(&t.to_string());
        s.push_str("\n\n");
    }
    while s.ends_with("\n\n") {
        s.pop();
    }
    s
}

pub fn execute(args: &Args, out: &mut dyn Write, err: &mut dyn Write) -> Result<i32> {
    let scenario = match (&args.pod, &args.scenario) {
        (Some(pod), _) => {
            return crate::cmd::live::explain(pod, &args.node, args.output, args.color, out, err)
        }
        (None, Some(s)) => s,
        (None, None) => {
            bail!("give a scenario file, or --pod POD.yaml to explain a pod on this node")
        }
    };
    let s = load_scenario(scenario)?;
    let e = explain_scenario(&s, args.step)?;
    match args.output {
        Output::Json => {
            let v = to_json(scenario, &e);
            writeln!(out, "{}", serde_json::to_string_pretty(&v)?)?;
        }
        Output::Yaml => {
            let v = to_json(scenario, &e);
            let y =
                serde_saphyr::to_string(&v).map_err(|err| anyhow!("cannot write YAML: {err}"))?;
            write!(out, "{y}")?;
            if !y.ends_with('\n') {
                writeln!(out)?;
            }
        }
        Output::Table | Output::Wide => {
            let colour = match args.color {
                Color::Always => true,
                Color::Never => false,
                Color::Auto => {
                    std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none()
                }
            };
            write!(out, "{}", render_text(&e, Paint(colour)))?;
        }
    }
    Ok(0)
}
