//! `nmm`: a NUMA-aware memory manager for Kubernetes nodes.

use anyhow::Result;
use clap::{Parser, Subcommand};
use nmm::cmd;
use nmm::cmd::Output;
use std::io::IsTerminal;
use std::path::PathBuf;

#[derive(Parser)]
#[command(
    name = "nmm",
    version,
    about = "NUMA-aware memory manager for Kubernetes nodes: the kubelet's Topology, CPU and Memory Managers, simulated, explained and validated"
)]
struct Cli {
    /// Draw tables with ASCII (+-|) borders and punctuation; the default when the locale
    /// (LC_ALL, LC_CTYPE, LANG) is not UTF-8.
    #[arg(long, global = true)]
    ascii: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Replay a scenario (machine, kubelet config, pod events) as kubelet v1.32 would.
    ///
    /// Example: nmm simulate examples/docs-150gi-two-numa.yaml --state-dir /tmp/state
    ///
    /// With --node: the pods of --pod admitted in order on this node as it is now (sysfs,
    /// /proc/meminfo, the kubelet config, its checkpoints in --state-dir, which is then
    /// read and never written), e.g. nmm simulate --node --pod a.yaml --pod b.yaml
    Simulate {
        /// The scenario file (YAML or JSON).
        #[arg(required_unless_present = "node", conflicts_with = "node")]
        scenario: Option<PathBuf>,
        /// Start from this node instead of a scenario: its sysfs (--sysfs-root), kubelet
        /// config (--config) and checkpoints (--state-dir, read only).
        #[arg(long, requires = "pod")]
        node: bool,
        /// With --node: a v1 Pod file to admit (YAML or JSON); repeat for several, admitted
        /// in the order given.
        #[arg(
            long,
            value_name = "POD.yaml",
            requires = "node",
            conflicts_with = "scenario"
        )]
        pod: Vec<PathBuf>,
        /// With --node: the directory holding sys/ (and proc/meminfo) [default: /].
        #[arg(long, value_name = "DIR", requires = "node")]
        sysfs_root: Option<PathBuf>,
        /// With --node: the kubelet's config file [default: /var/lib/kubelet/config.yaml].
        #[arg(long, value_name = "KUBELET_CONFIG", requires = "node")]
        config: Option<PathBuf>,
        /// With --node: the device plugins' devices with their NUMA nodes (a file with
        /// `machine.devices`).
        #[arg(long, value_name = "FILE", requires = "node")]
        devices: Option<PathBuf>,
        /// Output format: table on a terminal, else JSON lines (one per step); yaml gives a
        /// list of the same objects; wide is a table with every column.
        #[arg(short, long, value_enum)]
        output: Option<Output>,
        /// Write memory_manager_state and cpu_manager_state (and, with devices,
        /// device-plugins/kubelet_internal_checkpoint) here at the end. With --node:
        /// the kubelet's root directory to read them from (never written)
        /// [default: /var/lib/kubelet].
        #[arg(long)]
        state_dir: Option<PathBuf>,
        /// Draw the NUMA nodes' memory (reserved/free per type, groups joined) after the
        /// last step as an SVG picture; with machine.devices, also each device under its
        /// NUMA node with its resource and holder (or free).
        #[arg(long)]
        svg: Option<PathBuf>,
        /// Exit 1 when any pod is rejected (for CI: a scenario that must admit everything).
        #[arg(long)]
        fail_on_reject: bool,
        /// A copy of the node's /proc/iomem (read as root), for the kubelet config's
        /// `memory-drift-tolerance: auto` when the scenario restarts from checkpoints.
        #[arg(long, value_name = "FILE")]
        proc_iomem: Option<PathBuf>,
        /// Show each step's engine time in microseconds (`engineMicros` in JSON and YAML,
        /// a line in tables) and a p50/p99/max summary on stderr.
        #[arg(long)]
        timings: bool,
    },
    /// Show this node's (or a sysfs snapshot's) NUMA topology, and its GPUs, NICs, NVMe
    /// and accelerators with their NUMA nodes (from bus/pci/devices, a hint for
    /// machine.devices: a table, commented lines after the YAML machine block, or
    /// `pciDevices` in JSON).
    ///
    /// Example: nmm node -o yaml > machine.yaml
    Node {
        /// A directory holding a sysfs snapshot (containing sys/devices/system/...).
        #[arg(long, default_value = "/")]
        sysfs_root: PathBuf,
        /// Output format: table (default; wide keeps the distance column however long),
        /// json, or yaml (a scenario's `machine:` block).
        #[arg(short, long, value_enum)]
        output: Option<Output>,
    },
    /// Check a kubelet configuration against a machine before restarting the kubelet.
    ///
    /// Example: nmm validate --config /var/lib/kubelet/config.yaml --sysfs-root /
    Validate(cmd::validate::Args),
    /// Read kubelet checkpoints (memory_manager_state, cpu_manager_state).
    ///
    /// Example: nmm state show /var/lib/kubelet/memory_manager_state
    #[command(subcommand)]
    State(cmd::state::Command),
    /// Explain, provider by provider, why a pod of a scenario (or a pod on this node, with
    /// --pod) was admitted or rejected, and what would make it fit.
    ///
    /// Examples: nmm explain examples/single-numa-reject.yaml --step 2;
    /// nmm explain --pod pod.yaml (on this node: its sysfs, kubelet config and checkpoints)
    Explain(cmd::explain::Args),
    /// Run the node agent: restore the books, serve PodResources and metrics, enforce
    /// placements in cgroups.
    ///
    /// Example: nmm agent --config /var/lib/kubelet/config.yaml --state-dir /var/lib/nmm
    Agent(Box<cmd::agent::Args>),
    /// Print a shell completion script.
    ///
    /// Example: nmm completions bash > /etc/bash_completion.d/nmm
    Completions { shell: clap_complete::Shell },
}

// mimalloc: admissions allocate many small short-lived objects (hint families, sums,
// masks); with glibc's malloc they take about 15% more instructions (docs/BENCHMARKS.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => std::process::exit(code),
        // A closed pipe (`nmm simulate ... | head`) is the reader's choice, not an error.
        Err(e) if is_broken_pipe(&e) => std::process::exit(0),
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::exit(2);
        }
    }
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// Whether the command prints for people (tables, reports: fitted to the width) and
/// whether `-o wide` asked for every column.
fn human_output(c: &Command, tty: bool) -> (bool, bool) {
    let human = |o: Option<Output>, default: bool| {
        (o.map_or(default, Output::is_human), o == Some(Output::Wide))
    };
    match c {
        Command::Simulate { output, .. } => human(*output, tty),
        Command::Node { output, .. } => human(*output, true),
        Command::Validate(a) => human(Some(a.output), true),
        Command::Explain(a) => human(Some(a.output), true),
        Command::State(cmd::state::Command::Show(a)) => {
            let svg_to_stdout = a.svg.as_deref() == Some(std::path::Path::new("-"));
            let (h, w) = human(a.output, true);
            (h && !svg_to_stdout, w)
        }
        Command::State(cmd::state::Command::Verify(a)) => human(a.output, true),
        Command::Agent(_) | Command::Completions { .. } => (false, false),
    }
}

fn run(cli: Cli) -> Result<i32> {
    let tty = std::io::stdout().is_terminal();
    let (human, wide) = human_output(&cli.command, tty);
    let style = nmm::render::Style::from_env(cli.ascii, wide);
    nmm::render::set_style(style);
    let stdout = std::io::BufWriter::new(std::io::stdout().lock());
    let mut out: Box<dyn std::io::Write> = if human {
        Box::new(nmm::render::FitWriter::new(stdout, style))
    } else {
        Box::new(stdout)
    };
    // Not locked: the agent logs from other threads through eprintln!.
    let mut err = std::io::stderr();
    let code = match cli.command {
        Command::Simulate {
            scenario,
            node,
            pod,
            sysfs_root,
            config,
            devices,
            output,
            state_dir,
            svg,
            fail_on_reject,
            proc_iomem,
            timings,
        } => {
            let f = match output {
                Some(Output::Table | Output::Wide) => cmd::simulate::Format::Table,
                Some(Output::Json) => cmd::simulate::Format::Json,
                Some(Output::Yaml) => cmd::simulate::Format::Yaml,
                None if tty => cmd::simulate::Format::Table,
                None => cmd::simulate::Format::Json,
            };
            match scenario {
                Some(scenario) if !node => cmd::simulate::execute(
                    &scenario,
                    f,
                    state_dir.as_deref(),
                    svg.as_deref(),
                    fail_on_reject,
                    proc_iomem.as_deref(),
                    timings,
                    &mut out,
                    &mut err,
                ),
                _ => {
                    let node_args = cmd::live::NodeArgs {
                        sysfs_root,
                        config,
                        kubelet_dir: state_dir,
                        devices,
                    };
                    let run = cmd::simulate::Run {
                        format: f,
                        dir_text: String::new(),
                        state_dir: None,
                        svg: svg.as_deref(),
                        fail_on_reject,
                        proc_iomem: proc_iomem.as_deref(),
                        timings,
                    };
                    cmd::live::simulate(&pod, &node_args, run, &mut out, &mut err)
                }
            }
        }
        Command::Node { sysfs_root, output } => {
            use std::io::Write;
            let reader = nmm_sysfs::SysfsReader::new(&sysfs_root);
            let m = reader.read_machine()?;
            let pci = reader.read_pci_devices()?;
            // cadvisor's machine memory capacity: MemTotal of proc/meminfo beside sys/.
            let capacity = nmm::load::meminfo_total(&sysfs_root)?;
            for w in &pci.warnings {
                writeln!(err, "warning: {w}")?;
            }
            let text = match output {
                Some(Output::Yaml) => format!(
                    "{}{}",
                    cmd::node::render_machine_yaml_with_capacity(&m, capacity),
                    cmd::node_pci::render_pci_yaml_hint(&pci)
                ),
                Some(Output::Json) => cmd::node::render_json_with_pci(&m, capacity, &pci),
                Some(Output::Table | Output::Wide) | None => format!(
                    "{}{}",
                    cmd::node::render_table_with_capacity(&m, capacity),
                    cmd::node_pci::render_pci_table(&pci)
                ),
            };
            write!(out, "{text}")?;
            Ok(0)
        }
        Command::Validate(a) => cmd::validate::execute(&a, &mut out, &mut err),
        Command::State(c) => cmd::state::execute(&c, &mut out, &mut err),
        Command::Explain(a) => cmd::explain::execute(&a, &mut out, &mut err),
        Command::Agent(a) => cmd::agent::execute(&a, &mut out, &mut err),
        Command::Completions { shell } => {
            use clap::CommandFactory;
            clap_complete::generate(shell, &mut Cli::command(), "nmm", &mut out);
            Ok(0)
        }
    }?;
    use std::io::Write as _;
    out.flush()?;
    Ok(code)
}
