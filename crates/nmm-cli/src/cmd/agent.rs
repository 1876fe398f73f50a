//! `nmm agent`: run the kubelet's Topology, CPU and Memory Managers as a node agent
//! (nmm-agent): checkpoints restored and validated as the kubelet does at start, the
//! PodResources v1 gRPC API on a unix socket, Prometheus metrics, optional direct cgroup
//! v2 cpuset enforcement, and pod lifecycle from the container runtime as an NRI plugin
//! (`--nri-socket`, reconnecting with backoff). Runs until SIGTERM or SIGINT. Logs
//! through `tracing` on stderr (`--log-format`, `--log-level`). See docs/agent.md and
//! docs/deploy.md.

use crate::load::{load_config, load_devices, load_machine};
use crate::scenario::{parse_pod, read_yaml_file};
use anyhow::{anyhow, bail, Context, Result};
use k8s_openapi::api::core::v1::Pod;
use nmm_agent::cri::DEFAULT_CRI_SOCKET;
use nmm_agent::daemon::{self, Endpoints, DEFAULT_METRICS_ADDR};
use nmm_agent::devices::{DeviceOptions, DEFAULT_KUBELET_ROOT_DIR};
use nmm_agent::logging::{self, LogFormat};
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
  # Without NRI, write container cpusets directly (cgroup v2, or v1's cpuset hierarchy):
  nmm agent --config kubelet.yaml --state-dir /var/lib/nmm --no-nri --cgroup-root /sys/fs/cgroup
  # PodResources devices: the device plugins' devices from a file, who holds which from
  # the kubelet's device checkpoint under its root directory (read only):
  nmm agent --config kubelet.yaml --state-dir /var/lib/nmm --devices devices.yaml --kubelet-root-dir /var/lib/kubelet
  # JSON logs at debug level for the NRI plugin:
  nmm agent --config kubelet.yaml --state-dir /var/lib/nmm --log-format json --log-level info,nmm_agent::nri=debug";

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
    /// Create --state-dir when it does not exist (first start). Without it a missing
    /// directory is an error: a typo, or a mount lost after a reboot, would start with
    /// empty books and forget every pinning.
    #[arg(long)]
    pub create_state_dir: bool,
    /// Read the machine from the sysfs under this directory [default: /].
    #[arg(long, value_name = "DIR")]
    pub sysfs_root: Option<PathBuf>,
    /// The machine from a file (a `machine:` block or a whole scenario) instead of sysfs.
    #[arg(long, value_name = "FILE", conflicts_with = "sysfs_root")]
    pub machine: Option<PathBuf>,
    /// The device plugins' devices with their NUMA nodes, for PodResources' `devices`: a
    /// file with `machine.devices` (or a `devices:` list)
    /// [default: the machine.devices of --machine FILE, if any].
    #[arg(long, value_name = "FILE")]
    pub devices: Option<PathBuf>,
    /// The kubelet's root directory (its --root-dir). The agent reads, never writes,
    /// `device-plugins/kubelet_internal_checkpoint` there: which container holds which
    /// device (the kubelet allocates them, not the agent).
    #[arg(long, value_name = "DIR", default_value = DEFAULT_KUBELET_ROOT_DIR)]
    pub kubelet_root_dir: PathBuf,
    /// When the checkpoints fail the kubelet's restart validation, rebuild the books by
    /// admitting the live pods again instead of refusing to start.
    #[arg(long)]
    pub reconcile: bool,
    /// With --reconcile: the live pods (a Pod, a list of pods or a PodList, YAML or JSON)
    /// [default: the pods in the agent's record in --state-dir].
    #[arg(long, value_name = "FILE", requires = "reconcile")]
    pub live_pods: Option<PathBuf>,
    /// Write cpuset.cpus / cpuset.mems of containers under this cgroup directory: the
    /// cgroup v2 mount, or on cgroup v1 / hybrid hosts the cpuset hierarchy (the base
    /// directory `/sys/fs/cgroup` is understood as its `cpuset` hierarchy). Which
    /// version holds the cpuset controller is read from --mountinfo.
    #[arg(long, value_name = "DIR")]
    pub cgroup_root: Option<PathBuf>,
    /// With --cgroup-root: the mount table telling cgroup v1 from v2.
    #[arg(
        long,
        value_name = "FILE",
        default_value = "/proc/self/mountinfo",
        requires = "cgroup_root"
    )]
    pub mountinfo: PathBuf,
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
    /// The runtime's CRI socket, listed after every NRI (re)connection and every 3 s so
    /// that pods the runtime no longer runs are released even when it does not report
    /// their removal (containerd after a restart); `off` to disable
    /// [default: /run/containerd/containerd.sock].
    #[arg(long, value_name = "PATH")]
    pub cri_socket: Option<PathBuf>,
    /// Log line format on stderr: `text` (RFC 3339 timestamp, level, target, message and
    /// fields) or `json` (one object per line).
    #[arg(long, value_enum, value_name = "FORMAT", default_value = "text")]
    pub log_format: LogFormatArg,
    /// Log level or filter (`error`, `warn`, `info`, `debug`, `trace`, or a RUST_LOG
    /// filter such as `info,nmm_agent::nri=debug`) [default: $RUST_LOG, else info].
    #[arg(long, value_name = "LEVEL")]
    pub log_level: Option<String>,
    /// KEP-6232: `off`, `auto` or a quantity (`128Mi`); overrides the kubelet config's
    /// `memoryManagerPolicyOptions: {memory-drift-tolerance}` (the feature gate
    /// MemoryManagerDriftTolerance must still be on).
    #[arg(long, value_name = "VALUE")]
    pub memory_drift_tolerance: Option<String>,
    /// Where `memory-drift-tolerance: auto` reads the kernel image span.
    #[arg(long, value_name = "FILE", default_value = "/proc/iomem")]
    pub proc_iomem: PathBuf,
}

/// The Memory Manager's refusal of a checkpoint whose machine state differs.
const MACHINE_STATE_DIFFERS: &str = "the expected machine state is different from the real one";

/// `--memory-drift-tolerance` checked as the kubelet checks the option it sets (value,
/// policy, feature gate), with an error naming the flag.
fn check_drift_flag(args: &Args, config: &nmm_core::kubelet_config::KubeletConfig) -> Result<()> {
    use nmm_core::memorymanager::drift::{self, DRIFT_TOLERANCE_GATE, DRIFT_TOLERANCE_OPTION};
    let Some(v) = &args.memory_drift_tolerance else {
        return Ok(());
    };
    let mut only_flag = config.clone();
    only_flag.memory_manager_policy_options = Some(
        [(DRIFT_TOLERANCE_OPTION.to_string(), v.clone())]
            .into_iter()
            .collect(),
    );
    if let Err(e) = drift::parse_policy_options(&only_flag) {
        bail!(
            "--memory-drift-tolerance {v:?}: {e}; give off, auto or a size such as 128Mi (it sets memoryManagerPolicyOptions: {{{DRIFT_TOLERANCE_OPTION}}} of {}; `nmm validate --config` checks the file)",
            args.config.display()
        );
    }
    if !config.feature_gate(DRIFT_TOLERANCE_GATE) {
        bail!(
            "--memory-drift-tolerance {v:?}: needs the feature gate {DRIFT_TOLERANCE_GATE} (featureGates: {{{DRIFT_TOLERANCE_GATE}: true}} in {}), as the kubelet does; drop the flag or turn the gate on",
            args.config.display()
        );
    }
    Ok(())
}

/// Applies `--memory-drift-tolerance` to the config and resolves `auto` here, at the
/// edge, from `--proc-iomem` (the engine does no I/O): the config handed to the agent then
/// holds the bound in bytes. Returns the line to log about the bound in effect.
fn apply_drift_tolerance(
    args: &Args,
    config: &mut nmm_core::kubelet_config::KubeletConfig,
) -> Option<String> {
    use nmm_core::memorymanager::drift::{self, DriftSetting, DRIFT_TOLERANCE_OPTION};
    if let Some(v) = &args.memory_drift_tolerance {
        config
            .memory_manager_policy_options
            .get_or_insert_with(Default::default)
            .insert(DRIFT_TOLERANCE_OPTION.to_string(), v.clone());
    }
    // Bad values are left for the start-up checks to report in the kubelet's words.
    let setting = drift::parse_policy_options(config).ok()?;
    let iomem = match setting {
        DriftSetting::Auto => std::fs::read_to_string(&args.proc_iomem).ok(),
        _ => None,
    };
    let t = drift::resolve(setting, iomem.as_deref());
    if setting == DriftSetting::Auto {
        config
            .memory_manager_policy_options
            .get_or_insert_with(Default::default)
            .insert(
                DRIFT_TOLERANCE_OPTION.to_string(),
                if t.bound == 0 {
                    "off".to_string()
                } else {
                    t.bound.to_string()
                },
            );
    }
    match setting {
        DriftSetting::Off => None,
        DriftSetting::Auto => Some(format!(
            "memory manager: {} (read {})",
            t.source,
            args.proc_iomem.display()
        )),
        DriftSetting::Bytes(_) => Some(format!("memory manager: {}", t.source)),
    }
}

/// `--log-format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormatArg {
    Text,
    Json,
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

/// The device plugins' devices: `--devices FILE`, else `machine.devices` of the file the
/// machine came from (`--machine FILE`, or a scenario given as `--config`).
fn registered_devices(
    args: &Args,
    machine: &nmm_core::machine::Machine,
    config_has_machine: bool,
) -> Result<Vec<nmm_core::devicemanager::Device>> {
    if let Some(f) = &args.devices {
        return load_devices(f, machine)?.ok_or_else(|| {
            anyhow!(
                "--devices {}: devices: missing; write the device plugins' devices as a list, e.g. devices: [{{resource: nvidia.com/gpu, id: gpu-0, numa: [0]}}] (the scenario format's machine.devices)",
                f.display()
            )
        });
    }
    let source = match (
        &args.machine,
        config_has_machine && args.sysfs_root.is_none(),
    ) {
        (Some(f), _) => f,
        (None, true) => &args.config,
        (None, false) => return Ok(Vec::new()),
    };
    Ok(load_devices(source, machine)?.unwrap_or_default())
}

fn metrics_addr(text: &str) -> Result<Option<SocketAddr>> {
    if text == "off" || text.is_empty() {
        return Ok(None);
    }
    text.parse()
        .map(Some)
        .map_err(|e| anyhow!("--metrics-addr {text:?}: {e}; write e.g. 127.0.0.1:9781, or off"))
}

/// Returns the exit status: 0 after a clean stop, 1 when the kubelet would refuse to
/// start, 2 on other errors (logged). Everything the agent says goes to the log
/// (stderr, see [`nmm_agent::logging`]); `out` is not written.
pub fn execute(args: &Args, _out: &mut dyn Write, _err: &mut dyn Write) -> Result<i32> {
    let format = match args.log_format {
        LogFormatArg::Text => LogFormat::Text,
        LogFormatArg::Json => LogFormat::Json,
    };
    logging::init(format, args.log_level.as_deref())?;
    match run(args) {
        Ok(code) => Ok(code),
        Err(e) => {
            tracing::error!("{e:#}");
            Ok(2)
        }
    }
}

fn run(args: &Args) -> Result<i32> {
    let cfg = load_config(&args.config)?;
    for w in &cfg.warnings {
        tracing::warn!("{w}");
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
    let devices = registered_devices(args, &machine, cfg.machine.is_some())?;
    let metrics = metrics_addr(&args.metrics_addr)?;
    if !args.state_dir.is_dir() {
        if args.state_dir.exists() {
            bail!(
                "--state-dir {}: not a directory; pass the directory holding memory_manager_state and cpu_manager_state",
                args.state_dir.display()
            );
        }
        if !args.create_state_dir {
            bail!(
                "--state-dir {}: does not exist. If this is the first start, add --create-state-dir; otherwise check the path (or the mount): starting with an empty state directory would forget every pod's pinning",
                args.state_dir.display()
            );
        }
        std::fs::create_dir_all(&args.state_dir).with_context(|| {
            format!("--state-dir {}: cannot create it", args.state_dir.display())
        })?;
    }
    // One agent per state directory, before anything in it is read (docs/agent.md): a
    // second agent stops here (exit 2) with the holder's PID.
    let lock = nmm_agent::lock::StateDirLock::acquire(&args.state_dir)?;
    // The flag is configuration too: a value the kubelet would refuse is the flag's
    // problem (exit 2, naming it), never the checkpoints'.
    let mut kubelet = cfg.config;
    check_drift_flag(args, &kubelet)?;
    let drift_line = apply_drift_tolerance(args, &mut kubelet);
    // A configuration the kubelet refuses is the configuration's problem, whatever the
    // checkpoints hold: say so, and point at the tool that finds the fix.
    let analysis = nmm_core::diagnose::config::analyze(&machine, &kubelet, &[]);
    if let Some((stage, msg)) = &analysis.kubelet_error {
        tracing::error!(
            "the kubelet would refuse to start with {} on this machine ({stage}): {msg}",
            args.config.display()
        );
        if let Some(f) = analysis.findings.iter().find(|f| f.kubelet_stops_here) {
            tracing::error!("fix: {}", f.fix);
        }
        tracing::error!(
            "hint: this is the kubelet configuration, not the checkpoints (--reconcile cannot fix it); run `nmm validate --config {}` for every problem and the exact fix",
            args.config.display()
        );
        return Ok(1);
    }
    let reconcile = if args.reconcile {
        Some(match &args.live_pods {
            Some(f) => load_live_pods(f)?,
            None => Agent::recorded_pods(&args.state_dir)?,
        })
    } else {
        None
    };
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
    let cri = ReconcileOptions {
        cri_socket: match &args.cri_socket {
            Some(p) if p.as_os_str() == "off" => None,
            Some(p) => Some(p.clone()),
            None => Some(PathBuf::from(DEFAULT_CRI_SOCKET)),
        },
        ..Default::default()
    };
    let cgroup_root = match &args.cgroup_root {
        None => None,
        Some(dir) => {
            let text = std::fs::read_to_string(&args.mountinfo).with_context(|| {
                format!(
                    "{}: cannot read the mount table (needed to tell cgroup v1 from v2 for --cgroup-root); pass --mountinfo FILE",
                    args.mountinfo.display()
                )
            })?;
            let e = nmm_agent::cgroup::resolve_root(Some(dir), &text, &args.mountinfo)?;
            tracing::info!(
                "cpusets are written under {} (cgroup {})",
                e.root.display(),
                e.version
            );
            Some(e.root)
        }
    };
    // Bind, then restore, then register: a taken port or socket stops the agent here,
    // before it touches the state directory or contacts the runtime.
    if let Some(line) = drift_line {
        tracing::info!("{line}");
    }
    let rt = nri::runtime()?;
    let bound = rt.block_on(daemon::bind(&ep, nri_opts.is_some()))?;
    let device_opts = DeviceOptions::kubelet_root(&args.kubelet_root_dir, devices);
    if let Some(cp) = &device_opts.checkpoint {
        tracing::info!(
            "PodResources devices: {} registered devices (machine.devices), held devices from {} (read only)",
            device_opts.registered.len(),
            cp.display()
        );
    }
    let started = Agent::start_locked(
        AgentOptions {
            machine,
            kubelet,
            state_dir: args.state_dir.clone(),
            reconcile,
            cgroup_root,
            devices: device_opts,
        },
        lock,
    );
    let (agent, report) = match started {
        Ok(x) => x,
        Err(AgentError::Startup(e)) if !args.reconcile => {
            tracing::error!("the kubelet would refuse to start: {e}");
            if e.to_string().contains(MACHINE_STATE_DIFFERS) {
                tracing::error!(
                    "hint: if only the nodes' memory sizes changed (firmware, kernel), KEP-6232's memory-drift-tolerance accepts a bounded drift: --memory-drift-tolerance 128Mi (or auto) with the feature gate {} on",
                    nmm_core::memorymanager::drift::DRIFT_TOLERANCE_GATE
                );
            }
            tracing::error!(
                "hint: start with --reconcile to rebuild the books from the live pods (the agent's record, or --live-pods FILE) instead of draining the node"
            );
            return Ok(1);
        }
        Err(AgentError::Startup(e)) => {
            tracing::error!("the kubelet would refuse to start: {e}");
            return Ok(1);
        }
        Err(e) => return Err(e.into()),
    };
    if report.journal_recovered {
        tracing::info!("finished a commit interrupted by a crash");
    }
    if report.replayed_changes > 0 {
        tracing::info!(
            "replayed {} changes from the journal into the checkpoints",
            report.replayed_changes
        );
    }
    if let Some(r) = &report.reconciled {
        tracing::warn!("the checkpoints failed restart validation: {}", r.cause);
        tracing::info!(
            "rebuilt the books: {} pods admitted again, {} rejected",
            r.admitted.len(),
            r.rejected.len()
        );
        for (pod, why) in &r.rejected {
            tracing::warn!("pod {pod} no longer fits: {why}");
        }
    } else {
        tracing::info!(
            "restored {} pods from {}",
            report.restored_pods + report.unrecorded_pods.len(),
            args.state_dir.display()
        );
    }
    let nri_text = nri_opts.as_ref().map(|o| {
        format!(
            ", NRI plugin {}-{} on {}",
            o.index,
            o.name,
            o.socket.display()
        )
    });
    if nri_opts.is_some() && cri.cri_socket.is_none() {
        tracing::warn!(
            "--cri-socket off: pods that existed before a runtime restart and are removed later will not be detected (containerd does not report their removal to NRI plugins)"
        );
    }
    let agent = Arc::new(agent);
    rt.block_on(async {
        let shutdown = daemon::signals()?;
        nri::run_bound(
            agent,
            bound,
            nri_opts,
            cri,
            |r| {
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
                tracing::info!("{line}");
            },
            shutdown,
        )
        .await
    })?;
    tracing::info!("stopped");
    Ok(0)
}
