//! `nmm agent`: run the kubelet's Topology, CPU and Memory Managers as a node agent
//! (nmm-agent): checkpoints restored and validated as the kubelet does at start, the
//! PodResources v1 gRPC API on a unix socket, Prometheus metrics, optional direct cgroup
//! v2 cpuset enforcement, and pod lifecycle from the container runtime as an NRI plugin
//! (`--nri-socket`, reconnecting with backoff). Runs until SIGTERM or SIGINT. See
//! docs/agent.md.

use crate::load::{load_config, load_machine};
use crate::scenario::{parse_pod, read_yaml_file};
use anyhow::{anyhow, bail, Context, Result};
use k8s_openapi::api::core::v1::Pod;
use nmm_agent::cri::DEFAULT_CRI_SOCKET;
use nmm_agent::daemon::{Endpoints, DEFAULT_METRICS_ADDR};
use nmm_agent::nri::{self, NriOptions};
use nmm_agent::reconcile::ReconcileOptions;
use nmm_agent::{Agent, AgentError, AgentOptions};
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

const EXAMPLES: &str = "\
Examples:
  # This node, its kubelet config; state in /var/lib/nmm:
  nmm agent --config /var/lib/kubelet/config.yaml --state-dir /var/lib/nmm
  # The checkpoints no longer match the config (the kubelet would say: drain the node and
  # delete the checkpoint): rebuild the books from the pods the agent knew instead:
  nmm agent --config kubelet.yaml --state-dir /var/lib/nmm --reconcile
  # ... or from the node's pods as the API server lists them:
  kubectl get pods -A --field-selector spec.nodeName=$(hostname) -o json > pods.json
  nmm agent --config kubelet.yaml --state-dir /var/lib/nmm --reconcile --live-pods pods.json
  # containerd's NRI socket elsewhere:
  nmm agent --config kubelet.yaml --state-dir /var/lib/nmm --nri-socket /run/nri/nri.sock
  # Without NRI, write container cpusets directly on cgroup v2:
  nmm agent --config kubelet.yaml --state-dir /var/lib/nmm --no-nri --cgroup-root /sys/fs/cgroup";

#[derive(Debug, Clone, clap::Args)]
#[command(after_help = EXAMPLES)]
pub struct Args {
    /// The kubelet's configuration file (KubeletConfiguration, YAML or JSON).
    #[arg(long, value_name = "KUBELET_CONFIG")]
    pub config: PathBuf,
    /// Where the checkpoints (memory_manager_state, cpu_manager_state, in kubelet format)
    /// and the agent's pod record live.
    #[arg(long, value_name = "DIR")]
    pub state_dir: PathBuf,
    /// Read the machine from the sysfs under this directory [default: /].
    #[arg(long, value_name = "DIR")]
    pub sysfs_root: Option<PathBuf>,
    /// The machine from a file (a `machine:` block or a whole scenario) instead of sysfs.
    #[arg(long, value_name = "FILE", conflicts_with = "sysfs_root")]
    pub machine: Option<PathBuf>,
    /// When the checkpoints fail the kubelet's restart validation, rebuild the books by
    /// admitting the live pods again instead of refusing to start.
    #[arg(long)]
    pub reconcile: bool,
    /// With --reconcile: the live pods (a Pod, a list of pods or a PodList, YAML or JSON)
    /// [default: the pods in the agent's record in --state-dir].
    #[arg(long, value_name = "FILE", requires = "reconcile")]
    pub live_pods: Option<PathBuf>,
    /// Write cpuset.cpus / cpuset.mems of containers under this cgroup v2 mount.
    #[arg(long, value_name = "DIR")]
    pub cgroup_root: Option<PathBuf>,
    /// The PodResources v1 gRPC socket (created with mode 0600)
    /// [default: STATE_DIR/pod-resources.sock].
    #[arg(long, value_name = "PATH")]
    pub podresources_socket: Option<PathBuf>,
    /// Serve Prometheus metrics on this address (`off` to disable).
    #[arg(long, value_name = "ADDR", default_value = DEFAULT_METRICS_ADDR)]
    pub metrics_addr: String,
    /// Connect to the container runtime's NRI socket as a plugin: pods are admitted at
    /// CreateContainer and containers get their cpusets from the answer. The agent
    /// reconnects with backoff while the socket is missing or the runtime restarts
    /// [default: /var/run/nri/nri.sock].
    #[arg(long, value_name = "PATH")]
    pub nri_socket: Option<PathBuf>,
    /// Do not connect to NRI (pod events then come from library callers only).
    #[arg(long, conflicts_with = "nri_socket")]
    pub no_nri: bool,
    /// The runtime's CRI socket, listed after every NRI (re)connection and every 5 s so
    /// that pods the runtime no longer runs are released even when it does not report
    /// their removal (containerd after a restart); `off` to disable
    /// [default: /run/containerd/containerd.sock].
    #[arg(long, value_name = "PATH")]
    pub cri_socket: Option<PathBuf>,
}

/// Reads the live pods: a Pod, a YAML/JSON list of pods, or a PodList (`items`). Sorted by
/// creationTimestamp when every pod has one, as the kubelet admits pods in creation order.
pub fn load_live_pods(path: &Path) -> Result<Vec<Pod>> {
    let v = read_yaml_file(path)?;
    let items: Vec<serde_json::Value> =
        match &v {
            serde_json::Value::Array(a) => a.clone(),
            serde_json::Value::Object(m) if m.contains_key("items") => m["items"]
                .as_array()
                .cloned()
                .ok_or_else(|| anyhow!("{}: items: expected a list of pods", path.display()))?,
            serde_json::Value::Object(_) => vec![v.clone()],
            _ => bail!(
                "{}: expected a Pod, a list of pods or a PodList",
                path.display()
            ),
        };
    let mut pods = items
        .iter()
        .enumerate()
        .map(|(i, p)| parse_pod(p, path, &format!("items[{i}]")))
        .collect::<Result<Vec<_>>>()?;
    if pods.iter().all(|p| p.metadata.creation_timestamp.is_some()) {
        pods.sort_by(|a, b| {
            let t = |p: &Pod| p.metadata.creation_timestamp.as_ref().map(|t| t.0);
            t(a).cmp(&t(b))
        });
    }
    Ok(pods)
}

fn metrics_addr(text: &str) -> Result<Option<SocketAddr>> {
    if text == "off" || text.is_empty() {
        return Ok(None);
    }
    text.parse()
        .map(Some)
        .map_err(|e| anyhow!("--metrics-addr {text:?}: {e}; write e.g. 127.0.0.1:9781, or off"))
}

/// Returns the exit status: 0 after a clean stop, 1 when the kubelet would refuse to start.
pub fn execute(args: &Args, out: &mut dyn Write, err: &mut dyn Write) -> Result<i32> {
    let cfg = load_config(&args.config)?;
    for w in &cfg.warnings {
        writeln!(err, "warning: {w}")?;
    }
    let machine = match (&args.machine, &cfg.machine) {
        (Some(f), _) => load_machine(f)?,
        (None, Some(m)) if args.sysfs_root.is_none() => m.clone(),
        _ => {
            let root = args
                .sysfs_root
                .clone()
                .unwrap_or_else(|| PathBuf::from("/"));
            nmm_sysfs::SysfsReader::new(&root)
                .read_machine()
                .with_context(|| format!("reading the machine under {}", root.display()))?
        }
    };
    let metrics = metrics_addr(&args.metrics_addr)?;
    let reconcile = if args.reconcile {
        Some(match &args.live_pods {
            Some(f) => load_live_pods(f)?,
            None => Agent::recorded_pods(&args.state_dir)?,
        })
    } else {
        None
    };
    let started = Agent::start(AgentOptions {
        machine,
        kubelet: cfg.config,
        state_dir: args.state_dir.clone(),
        reconcile,
        cgroup_root: args.cgroup_root.clone(),
    });
    let (agent, report) = match started {
        Ok(x) => x,
        Err(AgentError::Startup(e)) if !args.reconcile => {
            writeln!(err, "error: the kubelet would refuse to start: {e}")?;
            writeln!(
                err,
                "hint: start with --reconcile to rebuild the books from the live pods (the agent's record, or --live-pods FILE) instead of draining the node"
            )?;
            return Ok(1);
        }
        Err(AgentError::Startup(e)) => {
            writeln!(err, "error: the kubelet would refuse to start: {e}")?;
            return Ok(1);
        }
        Err(e) => return Err(e.into()),
    };
    if report.journal_recovered {
        writeln!(out, "finished a commit interrupted by a crash")?;
    }
    if report.replayed_changes > 0 {
        writeln!(
            out,
            "replayed {} changes from the journal into the checkpoints",
            report.replayed_changes
        )?;
    }
    if let Some(r) = &report.reconciled {
        writeln!(
            out,
            "the checkpoints failed restart validation: {}",
            r.cause
        )?;
        writeln!(
            out,
            "rebuilt the books: {} pods admitted again, {} rejected",
            r.admitted.len(),
            r.rejected.len()
        )?;
        for (pod, why) in &r.rejected {
            writeln!(err, "warning: pod {pod} no longer fits: {why}")?;
        }
    } else {
        writeln!(
            out,
            "restored {} pods from {}",
            report.restored_pods + report.unrecorded_pods.len(),
            args.state_dir.display()
        )?;
    }
    let socket = args
        .podresources_socket
        .clone()
        .unwrap_or_else(|| args.state_dir.join("pod-resources.sock"));
    let ep = Endpoints {
        podresources_socket: Some(socket),
        metrics_addr: metrics,
    };
    let nri_opts = (!args.no_nri).then(|| {
        NriOptions::new(
            args.nri_socket
                .clone()
                .unwrap_or_else(|| PathBuf::from(nri::nmm_nri::DEFAULT_SOCKET_PATH)),
        )
    });
    let nri_text = nri_opts.as_ref().map(|o| {
        format!(
            ", NRI plugin {}-{} on {}",
            o.index,
            o.name,
            o.socket.display()
        )
    });
    let reconcile = ReconcileOptions {
        cri_socket: match &args.cri_socket {
            Some(p) if p.as_os_str() == "off" => None,
            Some(p) => Some(p.clone()),
            None => Some(PathBuf::from(DEFAULT_CRI_SOCKET)),
        },
        ..Default::default()
    };
    if nri_opts.is_some() && reconcile.cri_socket.is_none() {
        writeln!(
            err,
            "warning: --cri-socket off: pods that existed before a runtime restart and are removed later will not be detected (containerd does not report their removal to NRI plugins)"
        )?;
    }
    let agent = Arc::new(agent);
    let mut ready_err = None;
    nri::run_until_signal(agent, &ep, nri_opts, reconcile, |r| {
        let mut line = String::from("serving");
        if let Some(s) = &r.podresources_socket {
            line += &format!(" PodResources v1 on unix://{}", s.display());
        }
        if let Some(a) = r.metrics_addr {
            line += &format!(", metrics on http://{a}/metrics");
        }
        if let Some(t) = &nri_text {
            line += t;
        }
        if let Err(e) = writeln!(out, "{line}").and_then(|_| out.flush()) {
            ready_err = Some(e);
        }
    })?;
    if let Some(e) = ready_err {
        return Err(e.into());
    }
    writeln!(out, "stopped")?;
    Ok(0)
}
