//! `nmm validate`: every start-up check kubelet v1.32 runs for the Topology, CPU and Memory
//! Managers, on a KubeletConfiguration and a machine, before the kubelet is restarted.
//!
//! The kubelet stops at its first error; `validate` reports every independent problem, each
//! with the kubelet's exact message and what to change, and proposes a complete valid
//! `reservedMemory` when that list is wrong. Exit status: 0 valid, 1 invalid, 2 when an
//! input cannot be read (the error from `main`).

use crate::cmd::Output;
pub use crate::load::{load_config, load_machine, parse_config, ConfigFile};
use crate::render::new_table;
use anyhow::{anyhow, Result};
use comfy_table::ContentArrangement;
pub use nmm_core::diagnose::config::{analyze, Analysis, Finding, Suggestion};
use nmm_core::machine::Machine;
use nmm_core::quantity::format_binary_bytes;
use serde_json::{json, Map, Value};
use std::fmt::Write as _;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};

const EXAMPLES: &str = "\
Examples:
  # This node, its kubelet config:
  nmm validate --config /var/lib/kubelet/config.yaml

  # A machine file (a `machine:` block, e.g. from `nmm node -o yaml`, or a whole scenario),
  # and the kubelet's --reserved-memory flags, which replace the file's reservedMemory:
  nmm validate --config kubelet.yaml --machine machine.yaml \\
      --reserved-memory '0:memory=3Gi;1:memory=2148Mi'

  # For scripts: exit status 0 valid, 1 invalid, 2 unreadable input.
  nmm validate --config kubelet.yaml --machine machine.yaml -o json";

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Color {
    /// Colour when standard output is a terminal and NO_COLOR is not set.
    Auto,
    Always,
    Never,
}

#[derive(Debug, Clone, clap::Args)]
#[command(after_help = EXAMPLES)]
pub struct Args {
    /// The kubelet's configuration file (KubeletConfiguration, YAML or JSON).
    #[arg(long, value_name = "KUBELET_CONFIG")]
    pub config: PathBuf,
    /// The machine, from a file holding a `machine:` block or a whole scenario
    /// [default: read sysfs under --sysfs-root].
    #[arg(long, value_name = "FILE", conflicts_with = "sysfs_root")]
    pub machine: Option<PathBuf>,
    /// Read the machine from the sysfs under this directory [default: /].
    #[arg(long, value_name = "DIR")]
    pub sysfs_root: Option<PathBuf>,
    /// The kubelet's --reserved-memory flag, e.g. '0:memory=1Gi,hugepages-1Gi=2Gi;1:memory=2Gi'.
    /// Repeatable; replaces the config file's reservedMemory as the kubelet's flag does.
    #[arg(
        long = "reserved-memory",
        value_name = "FLAG",
        allow_hyphen_values = true
    )]
    pub reserved_memory: Vec<String>,
    /// Output format.
    #[arg(short, long, value_enum, default_value = "table")]
    pub output: Output,
    /// When to colour the table output.
    #[arg(long, value_enum, default_value = "auto")]
    pub color: Color,
}

// ---------------------------------------------------------------------------------------
// Output
// ---------------------------------------------------------------------------------------

pub fn report_json(a: &Analysis, config: &Path, machine: &str) -> Value {
    let findings: Vec<Value> = a
        .findings
        .iter()
        .map(|f| {
            json!({
                "check": f.check,
                "kubeletError": f.kubelet_error,
                "fix": f.fix,
                "kubeletStopsHere": f.kubelet_stops_here,
            })
        })
        .collect();
    let suggested = a.suggestion.as_ref().map(|s| {
        s.memory
            .iter()
            .map(|(n, b)| json!({"numaNode": n, "limits": {"memory": format_binary_bytes(*b)}}))
            .collect::<Vec<_>>()
    });
    let mut m = Map::new();
    m.insert("valid".into(), json!(a.valid()));
    m.insert("config".into(), json!(config.display().to_string()));
    m.insert("machine".into(), json!(machine));
    m.insert(
        "reservedMemoryFrom".into(),
        json!(if a.reserved_memory_from_flags {
            "flags"
        } else {
            "config"
        }),
    );
    m.insert(
        "kubeletStopsWith".into(),
        match &a.kubelet_error {
            Some((stage, msg)) => json!({"stage": stage, "message": msg}),
            None => Value::Null,
        },
    );
    m.insert("findings".into(), Value::Array(findings));
    m.insert("warnings".into(), json!(a.warnings));
    m.insert("suggestedReservedMemory".into(), json!(suggested));
    m.insert(
        "suggestedReservedMemoryFlag".into(),
        json!(a.suggestion.as_ref().map(Suggestion::flag_value)),
    );
    m.insert(
        "nodeAllocatableMemory".into(),
        match &a.suggestion {
            Some(s) => json!({"total": s.total, "from": s.explanation}),
            None => Value::Null,
        },
    );
    if !a.summary.is_empty() {
        let s: Map<String, Value> = a
            .summary
            .iter()
            .map(|(k, v)| (k.clone(), json!(v)))
            .collect();
        m.insert("summary".into(), Value::Object(s));
    }
    Value::Object(m)
}

struct Paint(bool);

impl Paint {
    fn wrap(&self, code: &str, s: &str) -> String {
        if self.0 {
            format!("\x1b[{code}m{s}\x1b[0m")
        } else {
            s.to_string()
        }
    }
    fn red(&self, s: &str) -> String {
        self.wrap("1;31", s)
    }
    fn green(&self, s: &str) -> String {
        self.wrap("1;32", s)
    }
    fn yellow(&self, s: &str) -> String {
        self.wrap("33", s)
    }
    fn bold(&self, s: &str) -> String {
        self.wrap("1", s)
    }
}

pub fn render_table(a: &Analysis, config: &Path, machine: &str, color: bool, tty: bool) -> String {
    let p = Paint(color);
    let mut s = String::new();
    let _ = writeln!(s, "config:  {}", config.display());
    let _ = writeln!(s, "machine: {machine}");
    if a.reserved_memory_from_flags {
        let _ = writeln!(
            s,
            "reservedMemory: from --reserved-memory (replaces the config file's)"
        );
    }
    s.push('\n');
    if a.valid() {
        let _ = writeln!(
            s,
            "{} the kubelet v1.32 starts with this configuration on this machine",
            p.green("VALID:")
        );
        for (k, v) in &a.summary {
            let _ = writeln!(s, "  {k}: {v}");
        }
    } else {
        let _ = writeln!(
            s,
            "{} the kubelet v1.32 would not start ({} problem{}). It stops with:",
            p.red("INVALID:"),
            a.findings.len(),
            if a.findings.len() == 1 { "" } else { "s" }
        );
        if let Some((_, msg)) = &a.kubelet_error {
            let _ = writeln!(s, "  {msg}");
        }
        s.push('\n');
        let mut t = new_table(&["#", "check", "kubelet's error", "fix"]);
        t.set_content_arrangement(ContentArrangement::Dynamic);
        if tty {
            t.enforce_styling();
        } else {
            let width = std::env::var("COLUMNS")
                .ok()
                .and_then(|c| c.parse::<u16>().ok())
                .filter(|w| *w >= 60)
                .unwrap_or(120);
            t.force_no_tty().set_width(width);
        }
        for (i, f) in a.findings.iter().enumerate() {
            let mut check = f.check.clone();
            if f.kubelet_stops_here {
                check.push_str(" (kubelet stops here)");
            }
            t.add_row(vec![
                (i + 1).to_string(),
                check,
                f.kubelet_error.clone(),
                f.fix.clone(),
            ]);
        }
        s.push_str(&t.to_string());
        s.push('\n');
    }
    if let Some(sg) = &a.suggestion {
        let _ = writeln!(
            s,
            "\n{} (memory totals {} = {}):\n",
            p.bold("Suggested reservedMemory"),
            sg.total,
            sg.explanation
        );
        for line in sg.yaml().lines() {
            let _ = writeln!(s, "  {line}");
        }
        let _ = writeln!(
            s,
            "\nor on the kubelet's command line:\n\n  --reserved-memory '{}'",
            sg.flag_value()
        );
    }
    if !a.warnings.is_empty() {
        s.push('\n');
        for w in &a.warnings {
            let _ = writeln!(s, "{} {w}", p.yellow("warning:"));
        }
    }
    s
}

fn machine_text(m: &Machine, source: &str) -> String {
    let mem: u64 = m.nodes.iter().map(|n| n.memory).sum();
    let ids: Vec<String> = m.node_ids().iter().map(|i| i.to_string()).collect();
    format!(
        "{source}: {} NUMA node{} ({}), {} CPUs, {} memory",
        m.nodes.len(),
        if m.nodes.len() == 1 { "" } else { "s" },
        ids.join(", "),
        m.cpus.len(),
        nmm_core::quantity::format_human_bytes(mem)
    )
}

/// `machine.memoryCapacity` of a machine or scenario file.
fn file_memory_capacity(path: &Path) -> Result<Option<u64>> {
    let v = crate::scenario::read_yaml_file(path)?;
    let mv = v.get("machine").filter(|m| !m.is_null()).unwrap_or(&v);
    let m = crate::scenario::parse_machine(mv, path)?;
    crate::scenario::memory_capacity(mv, &m, path)
}

pub fn execute(args: &Args, out: &mut dyn Write, _err: &mut dyn Write) -> Result<i32> {
    let capacity: Option<u64>;
    let cf = load_config(&args.config)?;
    let (machine, source) = match (&args.machine, &args.sysfs_root, cf.machine.clone()) {
        (Some(path), _, _) => {
            capacity = file_memory_capacity(path)?;
            (load_machine(path)?, path.display().to_string())
        }
        (None, None, Some(m)) => {
            capacity = file_memory_capacity(&args.config)?;
            (m, format!("{} (machine:)", args.config.display()))
        }
        (None, root, _) => {
            let root = root.clone().unwrap_or_else(|| PathBuf::from("/"));
            let m = nmm_sysfs::SysfsReader::new(&root)
                .read_machine()
                .map_err(|e| {
                    anyhow!("reading the machine from sysfs: {e}; or pass --machine FILE")
                })?;
            capacity = crate::load::meminfo_total(&root)?;
            (m, format!("sysfs under {}", root.display()))
        }
    };
    // The config file's own warnings (unknown fields, apiVersion) come first, in the
    // report (and `-o json`'s `warnings`), not only on stderr.
    let mut a = nmm_core::diagnose::config::analyze_with_capacity(
        &machine,
        &cf.config,
        &args.reserved_memory,
        capacity,
    );
    a.warnings.splice(0..0, cf.warnings.iter().cloned());
    let mtext = machine_text(&machine, &source);
    match args.output {
        Output::Json => {
            let v = report_json(&a, &args.config, &mtext);
            writeln!(out, "{}", serde_json::to_string_pretty(&v)?)?;
        }
        Output::Yaml => {
            let v = report_json(&a, &args.config, &mtext);
            // Long messages stay on one line (no folded scalars), for grep.
            let mut o = serde_saphyr::SerializerOptions::default();
            o.prefer_block_scalars = false;
            let y = serde_saphyr::to_string_with_options(&v, o)
                .map_err(|e| anyhow!("rendering YAML: {e}"))?;
            write!(out, "{y}")?;
            if !y.ends_with('\n') {
                writeln!(out)?;
            }
        }
        Output::Table | Output::Wide => {
            let stdout_tty = std::io::stdout().is_terminal();
            let color = match args.color {
                Color::Always => true,
                Color::Never => false,
                Color::Auto => stdout_tty && std::env::var_os("NO_COLOR").is_none(),
            };
            write!(
                out,
                "{}",
                render_table(&a, &args.config, &mtext, color, color && stdout_tty)
            )?;
        }
    }
    Ok(if a.valid() { 0 } else { 1 })
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;
    use nmm_core::diagnose::config::propose;
    use nmm_core::kubelet_config::KubeletConfig;
    use nmm_core::quantity::Quantity;

    fn machine(nodes: &[(u32, &str, &str)]) -> Machine {
        let v = json!({
            "numaNodes": nodes
                .iter()
                .map(|(id, cpus, mem)| json!({"id": id, "cpus": cpus, "memory": mem}))
                .collect::<Vec<_>>()
        });
        crate::scenario::parse_machine(&v, Path::new("m.yaml")).unwrap()
    }

    fn two_nodes() -> Machine {
        machine(&[(0, "0-7", "64Gi"), (1, "8-15", "64Gi")])
    }

    fn config(yaml: &str) -> KubeletConfig {
        let v = crate::scenario::parse_yaml(yaml, Path::new("k.yaml")).unwrap();
        parse_config(&v, Path::new("k.yaml")).unwrap().config
    }

    const DOCS: &str = "
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
memoryManagerPolicy: Static
cpuManagerPolicy: static
kubeReserved: {cpu: \"4\", memory: 4Gi}
systemReserved: {cpu: \"1\", memory: 1Gi}
";

    fn checks(a: &Analysis) -> Vec<&str> {
        a.findings.iter().map(|f| f.check.as_str()).collect()
    }

    #[test]
    fn docs_example_valid_split() {
        let c = config(&format!(
            "{DOCS}reservedMemory:\n- numaNode: 0\n  limits: {{memory: 3Gi}}\n- numaNode: 1\n  limits: {{memory: 2148Mi}}\n"
        ));
        let a = analyze(&two_nodes(), &c, &[]);
        assert!(a.valid(), "{:?}", a.findings);
        assert!(a.suggestion.is_none());
        assert!(
            a.summary[2].1.contains("node 1 memory 2148Mi"),
            "{:?}",
            a.summary
        );
    }

    #[test]
    fn docs_example_missing_node_1() {
        let c = config(&format!(
            "{DOCS}reservedMemory:\n- numaNode: 0\n  limits: {{memory: 3Gi}}\n- numaNode: 1\n  limits: {{memory: 1Gi}}\n"
        ));
        let a = analyze(&two_nodes(), &c, &[]);
        assert!(!a.valid());
        assert_eq!(checks(&a), ["reservedMemory.total"]);
        let f = &a.findings[0];
        assert_eq!(f.kubelet_error, "the total amount \"4Gi\" of type \"memory\" is not equal to the value \"5220Mi\" determined by Node Allocatable feature");
        assert!(f.kubelet_stops_here);
        assert!(
            f.fix.starts_with("add 1124Mi of memory on NUMA node 1:"),
            "{}",
            f.fix
        );
        assert!(f.fix.contains("systemReserved.memory 1Gi + kubeReserved.memory 4Gi + evictionHard memory.available 100Mi, the kubelet's default"), "{}", f.fix);
        let s = a.suggestion.unwrap();
        assert_eq!(s.memory, [(0, 3 << 30), (1, 2148 << 20)]);
        assert_eq!(s.total, "5220Mi");
        assert_eq!(s.flag_value(), "0:memory=3Gi;1:memory=2148Mi");
        assert_eq!(
            s.yaml(),
            "reservedMemory:\n- numaNode: 0\n  limits:\n    memory: 3Gi\n- numaNode: 1\n  limits:\n    memory: 2148Mi\n"
        );
        assert_eq!(a.kubelet_error.unwrap().0, "memoryManager");
    }

    #[test]
    fn forgotten_eviction_threshold_removes_from_last_node() {
        // 5Gi reserved on node 1 only, with evictionHard memory.available 1Gi set
        // explicitly and 0 kube/system: target 1Gi, so 4Gi must go.
        let c = config("memoryManagerPolicy: Static\nevictionHard: {memory.available: 1Gi}\nreservedMemory: [{numaNode: 1, limits: {memory: 5Gi}}]\n");
        let a = analyze(&two_nodes(), &c, &[]);
        assert_eq!(checks(&a), ["reservedMemory.total"]);
        assert!(a.findings[0]
            .fix
            .starts_with("remove 4Gi of memory from NUMA node 1:"));
        assert_eq!(a.suggestion.unwrap().memory, [(1, 1 << 30)]);
    }

    #[test]
    fn removal_spreads_backwards_over_nodes() {
        let m = two_nodes();
        let list = vec![
            (0, "memory".to_string(), Quantity::must_parse("2Gi")),
            (1, "memory".to_string(), Quantity::must_parse("1Gi")),
        ];
        let (split, actions) = propose(&m, &list, 1 << 30);
        assert_eq!(split, [(0, 1 << 30)]);
        assert_eq!(
            actions,
            [
                "remove 1Gi of memory from NUMA node 0",
                "drop the memory reservation of NUMA node 1 (1Gi)"
            ]
        );
    }

    #[test]
    fn static_without_reservation_puts_all_on_node_0() {
        let c = config("memoryManagerPolicy: Static\n");
        let a = analyze(&two_nodes(), &c, &[]);
        assert_eq!(checks(&a), ["reservedMemory.total"]);
        assert_eq!(a.findings[0].kubelet_error, "the total amount \"0\" of type \"memory\" is not equal to the value \"100Mi\" determined by Node Allocatable feature");
        assert!(a.findings[0]
            .fix
            .starts_with("add 100Mi of memory on NUMA node 0: the Static policy needs"));
        assert_eq!(a.suggestion.unwrap().flag_value(), "0:memory=100Mi");
    }

    #[test]
    fn static_with_nothing_reserved_anywhere() {
        let c = config("memoryManagerPolicy: Static\nevictionHard: {nodefs.available: 10%}\n");
        let a = analyze(&two_nodes(), &c, &[]);
        assert_eq!(checks(&a), ["reservedMemory.required"]);
        assert_eq!(
            a.findings[0].kubelet_error,
            "[memorymanager] you should specify the system reserved memory"
        );
        assert!(a.findings[0].kubelet_stops_here);
        assert!(a.suggestion.is_none());
    }

    #[test]
    fn unknown_nodes_zero_duplicates_and_hugepages_are_all_reported() {
        let c = config(&format!(
            "{DOCS}reservedMemory:
- numaNode: 0
  limits: {{memory: 3Gi, hugepages-1Gi: 1Gi, hugepages-2Mi: \"0\"}}
- numaNode: 0
  limits: {{memory: 1Gi}}
- numaNode: 3
  limits: {{memory: 1124Mi}}
"
        ));
        let a = analyze(&two_nodes(), &c, &[]);
        assert_eq!(
            checks(&a),
            [
                "reservedMemory.zero",
                "reservedMemory.duplicate",
                "reservedMemory.numaNode",
                "reservedMemory.hugepages"
            ]
        );
        assert_eq!(a.findings[0].kubelet_error, "invalid configuration: reserved memory may not be zero for NUMA node 0 and resource \"hugepages-2Mi\"");
        assert!(a.findings[0].kubelet_stops_here);
        assert_eq!(a.findings[1].kubelet_error, "invalid configuration: the reserved memory has a duplicate value for NUMA node 0 and resource \"memory\"");
        assert_eq!(a.findings[2].kubelet_error, "the reserved memory configuration references a NUMA node 3 that does not exist on this machine");
        assert!(a.findings[2].fix.contains("NUMA nodes 0, 1"));
        assert_eq!(a.findings[3].kubelet_error, "the total amount \"1Gi\" of type \"hugepages-1Gi\" is not equal to the value \"0\" determined by Node Allocatable feature");
        assert!(a.findings[3].fix.contains("can never accept"));
        // The memory total (3Gi + 1Gi + 1124Mi) is right; the node-3 share moves to node 0.
        let s = a.suggestion.unwrap();
        assert_eq!(s.flag_value(), "0:memory=5220Mi");
        let (stage, msg) = a.kubelet_error.unwrap();
        assert_eq!(stage, "validation");
        assert!(msg.starts_with("failed to validate kubelet configuration, error: ["));
    }

    #[test]
    fn flags_replace_the_file_and_their_errors_are_the_kubelets() {
        let c = config(&format!(
            "{DOCS}reservedMemory: [{{numaNode: 0, limits: {{memory: 1Gi}}}}]\n"
        ));
        let ok = analyze(
            &two_nodes(),
            &c,
            &["0:memory=3Gi".into(), "1:memory=2148Mi".into()],
        );
        assert!(ok.valid(), "{:?}", ok.findings);
        assert!(ok.reserved_memory_from_flags);

        let bad = analyze(&two_nodes(), &c, &["0:memory=3Gi;".into()]);
        assert_eq!(checks(&bad), ["--reserved-memory"]);
        assert_eq!(bad.findings[0].kubelet_error, "failed to parse kubelet flag: invalid argument \"0:memory=3Gi;\" for \"--reserved-memory\" flag: the reserved memory has incorrect format, expected numaNodeID:type=quantity[,type=quantity...], got ");
        assert!(bad.findings[0].fix.starts_with("remove the empty part"));
        assert_eq!(bad.kubelet_error.unwrap().0, "flags");
        assert!(bad.suggestion.is_none());

        let mismatch = analyze(&two_nodes(), &c, &["0:memory=3Gi".into()]);
        assert!(mismatch.findings[0]
            .fix
            .contains("--reserved-memory must total"));
    }

    #[test]
    fn topology_names_options_and_numa_limit() {
        let nine: Vec<(u32, String, &str)> = (0..9)
            .map(|i| (i, format!("{}-{}", i * 2, i * 2 + 1), "8Gi"))
            .collect();
        let nine: Vec<(u32, &str, &str)> =
            nine.iter().map(|(i, c, m)| (*i, c.as_str(), *m)).collect();
        let m = machine(&nine);
        let c = config("topologyManagerPolicy: single-numa-node\n");
        let a = analyze(&m, &c, &[]);
        assert_eq!(checks(&a), ["numaNodeLimit"]);
        assert_eq!(
            a.findings[0].kubelet_error,
            "unsupported on machines with more than 8 NUMA Nodes"
        );
        assert!(a.findings[0]
            .fix
            .contains("max-allowable-numa-nodes: \"9\""));
        let fixed = config("topologyManagerPolicy: single-numa-node\ntopologyManagerPolicyOptions: {max-allowable-numa-nodes: \"9\"}\n");
        assert!(analyze(&m, &fixed, &[]).valid());
        // With policy none the kubelet does not look.
        assert!(analyze(&m, &config("{}"), &[]).valid());

        let c = config("topologyManagerPolicy: single_numa_node\ntopologyManagerScope: Pod\ntopologyManagerPolicyOptions: {foo: \"1\"}\n");
        let a = analyze(&m, &c, &[]);
        assert_eq!(
            checks(&a),
            [
                "topologyManagerPolicy",
                "topologyManagerScope",
                "topologyManagerPolicyOptions",
                "numaNodeLimit"
            ]
        );
        assert!(a.findings[0]
            .fix
            .contains("(did you mean \"single-numa-node\"?)"));
        assert!(a.findings[1].fix.contains("(did you mean \"pod\"?)"));
        assert_eq!(
            a.findings[2].kubelet_error,
            "unknown Topology Manager Policy option: \"foo\""
        );
    }

    #[test]
    fn cpu_checks() {
        let m = two_nodes();
        let a = analyze(&m, &config("cpuManagerPolicy: static\n"), &[]);
        assert_eq!(checks(&a), ["cpuReservation"]);
        assert_eq!(
            a.findings[0].kubelet_error,
            "[cpumanager] unable to determine reserved CPU resources for static policy"
        );
        let a = analyze(
            &m,
            &config("cpuManagerPolicy: static\nkubeReserved: {cpu: \"0\"}\n"),
            &[],
        );
        assert_eq!(checks(&a), ["cpuReservation"]);
        let a = analyze(
            &m,
            &config("cpuManagerPolicy: static\nreservedSystemCPUs: \"0,16\"\n"),
            &[],
        );
        assert_eq!(checks(&a), ["reservedSystemCPUs", "cpuReservation"]);
        assert_eq!(
            a.findings[0].kubelet_error,
            "reserved-cpus: 0,16 is not a subset of online-cpus: 0-15"
        );
        assert!(analyze(
            &m,
            &config("cpuManagerPolicy: static\nreservedSystemCPUs: \"0,8\"\n"),
            &[]
        )
        .valid());
        let a = analyze(
            &m,
            &config("cpuManagerPolicy: Static\nmemoryManagerPolicy: static\n"),
            &[],
        );
        assert_eq!(
            checks(&a),
            [
                "cpuManagerPolicy",
                "memoryManagerPolicy",
                "reservedMemory.total"
            ]
        );
        assert!(a.findings[0].fix.contains("did you mean \"static\""));
        assert!(a.findings[1].fix.contains("did you mean \"Static\""));
        let a = analyze(
            &m,
            &config("cpuManagerPolicy: static\nkubeReserved: {cpu: \"1\"}\ncpuManagerPolicyOptions: {full-pcpus-only: \"yes\", bogus: \"true\"}\n"),
            &[],
        );
        assert_eq!(
            checks(&a),
            ["cpuManagerPolicyOptions", "cpuManagerPolicyOptions"]
        );
    }

    #[test]
    fn node_allocatable_refuses_hugepages() {
        let c = config("memoryManagerPolicy: Static\nkubeReserved: {memory: 1Gi, hugepages-2Mi: 2Mi}\nreservedMemory: [{numaNode: 0, limits: {memory: 1124Mi}}]\n");
        let a = analyze(&two_nodes(), &c, &[]);
        assert_eq!(checks(&a), ["nodeAllocatable"]);
        assert_eq!(
            a.findings[0].kubelet_error,
            "cannot reserve \"hugepages-2Mi\" resource"
        );
        assert!(a.findings[0].kubelet_stops_here);
    }

    #[test]
    fn fractional_bytes() {
        let c = config("memoryManagerPolicy: Static\nevictionHard: {memory.available: 1.5Gi}\nreservedMemory: [{numaNode: 0, limits: {memory: 1.5Gi}}]\n");
        let a = analyze(&two_nodes(), &c, &[]);
        assert_eq!(checks(&a), ["reservedMemory.int64"]);
        assert_eq!(
            a.findings[0].kubelet_error,
            "could not covert a variable of type Quantity to int64"
        );
        assert!(
            a.findings[0].fix.contains("1.5Gi -> 1536Mi"),
            "{}",
            a.findings[0].fix
        );
    }

    #[test]
    fn warnings() {
        let a = analyze(
            &two_nodes(),
            &config("reservedMemory: [{numaNode: 0, limits: {memory: 1Gi}}]\n"),
            &[],
        );
        assert!(a.valid());
        assert!(a.warnings[0].contains("ignored"));
    }

    #[test]
    fn config_files() {
        // A real kubelet config with many other fields, in JSON.
        let v = json!({
            "apiVersion": "kubelet.config.k8s.io/v1beta1",
            "kind": "KubeletConfiguration",
            "authentication": {"anonymous": {"enabled": false}},
            "cgroupDriver": "systemd",
            "clusterDNS": ["10.96.0.10"],
            "memoryManagerPolicy": "Static",
            "reservedMemory": [{"numaNode": 0, "limits": {"memory": "100Mi"}}]
        });
        let c = parse_config(&v, Path::new("k.json")).unwrap();
        assert_eq!(c.config.memory_manager_policy(), "Static");
        let e = parse_config(&json!({"kind": "Pod"}), Path::new("p.yaml")).unwrap_err();
        assert!(e
            .to_string()
            .starts_with("p.yaml: kind: \"Pod\": expected KubeletConfiguration"));
        let e = parse_config(
            &json!({"reservedMemory": [{"numaNode": "x", "limits": {}}]}),
            Path::new("k.yaml"),
        )
        .unwrap_err();
        assert!(
            e.to_string()
                .starts_with("k.yaml: reservedMemory[0].numaNode: invalid type"),
            "{e}"
        );
        // A scenario: its kubelet block and machine.
        let s = json!({"machine": {"numaNodes": [{"id": 0, "cpus": "0-1", "memory": "1Gi"}]}, "kubelet": {"cpuManagerPolicy": "static"}});
        let c = parse_config(&s, Path::new("s.yaml")).unwrap();
        assert_eq!(c.config.cpu_manager_policy(), "static");
        assert_eq!(c.machine.unwrap().nodes.len(), 1);
    }

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: Args,
    }

    fn run(argv: &[&str]) -> (i32, String) {
        let mut full = vec!["nmm-validate"];
        full.extend_from_slice(argv);
        let cli = Cli::try_parse_from(full).unwrap();
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let code = execute(&cli.args, &mut out, &mut err).unwrap();
        (code, String::from_utf8(out).unwrap())
    }

    #[test]
    fn execute_prints_table_json_and_yaml() {
        let dir = tempfile::tempdir().unwrap();
        let k = dir.path().join("kubelet.yaml");
        std::fs::write(&k, format!("{DOCS}reservedMemory: [{{numaNode: 0, limits: {{memory: 3Gi}}}}, {{numaNode: 1, limits: {{memory: 1Gi}}}}]\n")).unwrap();
        let m = dir.path().join("machine.yaml");
        std::fs::write(&m, "machine:\n  numaNodes:\n  - {id: 0, cpus: 0-7, memory: 64Gi}\n  - {id: 1, cpus: 8-15, memory: 64Gi}\n").unwrap();
        let (k, m) = (k.to_str().unwrap(), m.to_str().unwrap());

        let (code, text) = run(&["--config", k, "--machine", m, "--color", "never"]);
        assert_eq!(code, 1);
        assert!(text.contains("INVALID:"), "{text}");
        assert!(text.contains("  the total amount \"4Gi\" of type \"memory\" is not equal to the value \"5220Mi\" determined by Node Allocatable feature\n"), "{text}");
        assert!(
            text.contains("--reserved-memory '0:memory=3Gi;1:memory=2148Mi'"),
            "{text}"
        );
        assert!(!text.contains('\x1b'));

        let (code, text) = run(&["--config", k, "--machine", m, "-o", "json"]);
        assert_eq!(code, 1);
        let v: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["valid"], false);
        assert_eq!(
            v["findings"][0]["fix"]
                .as_str()
                .unwrap()
                .split(':')
                .next()
                .unwrap(),
            "add 1124Mi of memory on NUMA node 1"
        );
        assert_eq!(
            v["suggestedReservedMemory"][1],
            json!({"numaNode": 1, "limits": {"memory": "2148Mi"}})
        );

        let (code, text) = run(&["--config", k, "--machine", m, "-o", "yaml"]);
        assert_eq!(code, 1);
        let y = crate::scenario::parse_yaml(&text, Path::new("out.yaml")).unwrap();
        assert_eq!(y, v);

        let (code, text) = run(&[
            "--config",
            k,
            "--machine",
            m,
            "--reserved-memory",
            "0:memory=3Gi;1:memory=2148Mi",
            "--color",
            "always",
        ]);
        assert_eq!(code, 0, "{text}");
        assert!(text.contains("\x1b[1;32mVALID:\x1b[0m"), "{text}");
    }
}
