//! `nmm validate` run as a process on config and machine files, checking what it prints
//! and its exit status (0 valid, 1 invalid, 2 unreadable input). Test names start with
//! `validate_` so that `cargo test -p nmm validate` runs them.

use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::Command;

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

fn nmm(args: &[&str]) -> Run {
    let o = Command::new(env!("CARGO_BIN_EXE_nmm"))
        .args(args)
        .env_remove("NO_COLOR")
        // Content, not layout, is checked here (output_cli.rs checks the 80-column fit):
        // a width no line reaches, and box drawing.
        .env("COLUMNS", "1000")
        .env("LANG", "C.UTF-8")
        .env_remove("LC_ALL")
        .env_remove("LC_CTYPE")
        .output()
        .expect("run nmm");
    Run {
        code: o.status.code().expect("exit status"),
        stdout: String::from_utf8(o.stdout).unwrap(),
        stderr: String::from_utf8(o.stderr).unwrap(),
    }
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

/// Two NUMA nodes of 8 CPUs and 64Gi each.
const MACHINE: &str = "\
machine:
  numaNodes:
  - id: 0
    cpus: 0-7
    memory: 64Gi
  - id: 1
    cpus: 8-15
    memory: 64Gi
";

/// A whole kubeadm-style kubelet config, with the Kubernetes docs' Memory Manager example
/// (kubeReserved memory 4Gi, systemReserved memory 1Gi, default evictionHard 100Mi: the
/// reservedMemory must total 5Gi + 100Mi = 5220Mi).
fn kubelet_config(reserved_memory: &str) -> String {
    format!(
        "\
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
authentication:
  anonymous:
    enabled: false
  webhook:
    cacheTTL: 0s
    enabled: true
  x509:
    clientCAFile: /etc/kubernetes/pki/ca.crt
authorization:
  mode: Webhook
  webhook:
    cacheAuthorizedTTL: 0s
    cacheUnauthorizedTTL: 0s
cgroupDriver: systemd
clusterDNS:
- 10.96.0.10
clusterDomain: cluster.local
containerRuntimeEndpoint: unix:///var/run/containerd/containerd.sock
cpuManagerReconcilePeriod: 0s
evictionPressureTransitionPeriod: 0s
fileCheckFrequency: 0s
healthzBindAddress: 127.0.0.1
healthzPort: 10248
httpCheckFrequency: 0s
imageMinimumGCAge: 0s
logging:
  flushFrequency: 0
  options:
    json:
      infoBufferSize: \"0\"
  verbosity: 0
memorySwap: {{}}
nodeStatusReportFrequency: 0s
nodeStatusUpdateFrequency: 0s
rotateCertificates: true
runtimeRequestTimeout: 0s
shutdownGracePeriod: 0s
shutdownGracePeriodCriticalPods: 0s
staticPodPath: /etc/kubernetes/manifests
streamingConnectionIdleTimeout: 0s
syncFrequency: 0s
volumeStatsAggPeriod: 0s
featureGates:
  MemoryManager: true
cpuManagerPolicy: static
memoryManagerPolicy: Static
topologyManagerPolicy: single-numa-node
kubeReserved:
  cpu: \"4\"
  memory: 4Gi
systemReserved:
  cpu: \"1\"
  memory: 1Gi
{reserved_memory}"
    )
}

const DOCS_SPLIT: &str = "\
reservedMemory:
- numaNode: 0
  limits:
    memory: 3Gi
- numaNode: 1
  limits:
    memory: 2148Mi
";

const SHORT_BY_1124MI: &str = "\
reservedMemory:
- numaNode: 0
  limits:
    memory: 3Gi
- numaNode: 1
  limits:
    memory: 1Gi
";

fn json_of(r: &Run) -> Value {
    serde_json::from_str(&r.stdout).unwrap_or_else(|e| panic!("{e}: {}", r.stdout))
}

#[test]
fn validate_docs_example_is_valid() {
    let d = tempfile::tempdir().unwrap();
    let k = write(d.path(), "config.yaml", &kubelet_config(DOCS_SPLIT));
    let m = write(d.path(), "machine.yaml", MACHINE);
    let r = nmm(&[
        "validate",
        "--config",
        k.to_str().unwrap(),
        "--machine",
        m.to_str().unwrap(),
    ]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stdout
            .contains("VALID: the kubelet v1.32 starts with this configuration on this machine"),
        "{}",
        r.stdout
    );
    assert!(r
        .stdout
        .contains("policy Static, reserved node 0 memory 3Gi, node 1 memory 2148Mi"));
    // Not a terminal: no colour.
    assert!(!r.stdout.contains('\x1b'));

    let r = nmm(&[
        "validate",
        "--config",
        k.to_str().unwrap(),
        "--machine",
        m.to_str().unwrap(),
        "-o",
        "json",
    ]);
    assert_eq!(r.code, 0);
    let v = json_of(&r);
    assert_eq!(v["valid"], true);
    assert_eq!(v["findings"], json!([]));
    assert_eq!(v["kubeletStopsWith"], Value::Null);
    assert_eq!(v["suggestedReservedMemory"], Value::Null);
}

#[test]
fn validate_docs_example_with_the_wrong_total() {
    let d = tempfile::tempdir().unwrap();
    let k = write(d.path(), "config.yaml", &kubelet_config(SHORT_BY_1124MI));
    let m = write(d.path(), "machine.yaml", MACHINE);
    let (k, m) = (k.to_str().unwrap(), m.to_str().unwrap());
    let kubelet_text = "the total amount \"4Gi\" of type \"memory\" is not equal to the value \"5220Mi\" determined by Node Allocatable feature";

    let r = nmm(&["validate", "--config", k, "--machine", m]);
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
    assert!(r
        .stdout
        .contains("INVALID: the kubelet v1.32 would not start (1 problem). It stops with:\n"));
    // The kubelet's message on a line of its own, unwrapped.
    assert!(
        r.stdout.contains(&format!("\n  {kubelet_text}\n")),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("reservedMemory.total"));
    assert!(r.stdout.contains(
        "Suggested reservedMemory (memory totals 5220Mi = systemReserved.memory 1Gi + kubeReserved.memory 4Gi + evictionHard memory.available 100Mi, the kubelet's default):"
    ), "{}", r.stdout);
    assert!(r.stdout.contains(
        "  reservedMemory:\n  - numaNode: 0\n    limits:\n      memory: 3Gi\n  - numaNode: 1\n    limits:\n      memory: 2148Mi\n"
    ));
    assert!(r
        .stdout
        .contains("  --reserved-memory '0:memory=3Gi;1:memory=2148Mi'\n"));

    let r = nmm(&["validate", "--config", k, "--machine", m, "-o", "json"]);
    assert_eq!(r.code, 1);
    let v = json_of(&r);
    assert_eq!(v["valid"], false);
    assert_eq!(
        v["kubeletStopsWith"],
        json!({"stage": "memoryManager", "message": kubelet_text})
    );
    let f = &v["findings"][0];
    assert_eq!(f["check"], "reservedMemory.total");
    assert_eq!(f["kubeletError"], kubelet_text);
    assert_eq!(
        f["fix"],
        "add 1124Mi of memory on NUMA node 1: reservedMemory must total 5220Mi of memory = systemReserved.memory 1Gi + kubeReserved.memory 4Gi + evictionHard memory.available 100Mi, the kubelet's default; it totals 4Gi"
    );
    assert_eq!(
        v["suggestedReservedMemory"],
        json!([
            {"numaNode": 0, "limits": {"memory": "3Gi"}},
            {"numaNode": 1, "limits": {"memory": "2148Mi"}}
        ])
    );
    assert_eq!(
        v["suggestedReservedMemoryFlag"],
        "0:memory=3Gi;1:memory=2148Mi"
    );

    // YAML carries the same object.
    let r = nmm(&["validate", "--config", k, "--machine", m, "-o", "yaml"]);
    assert_eq!(r.code, 1);
    assert!(r.stdout.contains("valid: false"), "{}", r.stdout);
    assert!(r.stdout.contains("suggestedReservedMemoryFlag:"));

    // The suggestion, given back as the kubelet's flag, is valid.
    let r = nmm(&[
        "validate",
        "--config",
        k,
        "--machine",
        m,
        "--reserved-memory",
        "0:memory=3Gi;1:memory=2148Mi",
    ]);
    assert_eq!(r.code, 0, "{}", r.stdout);
    assert!(r
        .stdout
        .contains("reservedMemory: from --reserved-memory (replaces the config file's)"));
    // Repeated flags append, as the kubelet's do.
    let r = nmm(&[
        "validate",
        "--config",
        k,
        "--machine",
        m,
        "--reserved-memory",
        "0:memory=3Gi",
        "--reserved-memory=1:memory=2148Mi",
    ]);
    assert_eq!(r.code, 0, "{}", r.stdout);
}

#[test]
fn validate_forgotten_eviction_threshold() {
    // The classic mistake: reservedMemory = kubeReserved + systemReserved, without the
    // 100Mi hard-eviction threshold.
    let d = tempfile::tempdir().unwrap();
    let k = write(
        d.path(),
        "config.json",
        r#"{"apiVersion": "kubelet.config.k8s.io/v1beta1", "kind": "KubeletConfiguration",
            "memoryManagerPolicy": "Static", "kubeReserved": {"memory": "16Gi"},
            "reservedMemory": [{"numaNode": 0, "limits": {"memory": "16Gi"}}]}"#,
    );
    let m = write(d.path(), "machine.yaml", MACHINE);
    let r = nmm(&[
        "validate",
        "--config",
        k.to_str().unwrap(),
        "--machine",
        m.to_str().unwrap(),
        "-o",
        "json",
    ]);
    assert_eq!(r.code, 1);
    let v = json_of(&r);
    assert_eq!(v["findings"][0]["kubeletError"], "the total amount \"16Gi\" of type \"memory\" is not equal to the value \"16484Mi\" determined by Node Allocatable feature");
    assert!(v["findings"][0]["fix"]
        .as_str()
        .unwrap()
        .starts_with("add 100Mi of memory on NUMA node 0:"));
    assert_eq!(v["suggestedReservedMemoryFlag"], "0:memory=16484Mi");
}

#[test]
fn validate_every_independent_problem_is_listed() {
    let d = tempfile::tempdir().unwrap();
    let k = write(
        d.path(),
        "config.yaml",
        "\
kind: KubeletConfiguration
apiVersion: kubelet.config.k8s.io/v1beta1
memoryManagerPolicy: Static
cpuManagerPolicy: static
topologyManagerScope: Pod
reservedMemory:
- numaNode: 0
  limits: {memory: 1Gi, hugepages-1Gi: 2Gi}
- numaNode: 2
  limits: {memory: \"0\"}
",
    );
    let m = write(d.path(), "machine.yaml", MACHINE);
    let r = nmm(&[
        "validate",
        "--config",
        k.to_str().unwrap(),
        "--machine",
        m.to_str().unwrap(),
        "-o",
        "json",
    ]);
    assert_eq!(r.code, 1);
    let v = json_of(&r);
    let checks: Vec<&str> = v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["check"].as_str().unwrap())
        .collect();
    assert_eq!(
        checks,
        [
            "topologyManagerScope",
            "reservedMemory.zero",
            "cpuReservation",
            "reservedMemory.numaNode",
            "reservedMemory.hugepages",
            "reservedMemory.total"
        ]
    );
    // The kubelet stops at config validation, with both validation errors aggregated.
    assert_eq!(
        v["kubeletStopsWith"]["message"],
        "failed to validate kubelet configuration, error: [invalid configuration: topologyManagerScope (--topology-manager-scope) \"Pod\" must be one of: \"container\", or \"pod\", invalid configuration: reserved memory may not be zero for NUMA node 2 and resource \"memory\"]"
    );
    assert_eq!(v["findings"][0]["kubeletStopsHere"], true);
    assert_eq!(v["findings"][1]["kubeletStopsHere"], true);
    assert_eq!(v["findings"][2]["kubeletStopsHere"], false);
    let hp = &v["findings"][4];
    assert_eq!(hp["kubeletError"], "the total amount \"2Gi\" of type \"hugepages-1Gi\" is not equal to the value \"0\" determined by Node Allocatable feature");
    assert!(hp["fix"]
        .as_str()
        .unwrap()
        .contains("kubelet v1.32 can never accept a hugepages reservation"));
    assert_eq!(
        v["findings"][3]["kubeletError"],
        "the reserved memory configuration references a NUMA node 2 that does not exist on this machine"
    );
    assert_eq!(v["suggestedReservedMemoryFlag"], "0:memory=100Mi");
}

#[test]
fn validate_reserved_memory_flag_errors_are_the_kubelets() {
    let d = tempfile::tempdir().unwrap();
    let k = write(d.path(), "config.yaml", &kubelet_config(DOCS_SPLIT));
    let m = write(d.path(), "machine.yaml", MACHINE);
    let (k, m) = (k.to_str().unwrap(), m.to_str().unwrap());
    let cases: &[(&[&str], &str)] = &[
        (
            &["0:memory=3Gi;"],
            "failed to parse kubelet flag: invalid argument \"0:memory=3Gi;\" for \"--reserved-memory\" flag: the reserved memory has incorrect format, expected numaNodeID:type=quantity[,type=quantity...], got ",
        ),
        (
            &["x:memory=3Gi"],
            "failed to parse kubelet flag: invalid argument \"x:memory=3Gi\" for \"--reserved-memory\" flag: failed to convert the NUMA node ID, exptected integer, got x",
        ),
        (
            &["0:memory"],
            "failed to parse kubelet flag: invalid argument \"0:memory\" for \"--reserved-memory\" flag: the reserved limit has incorrect value, expected type=quantatity, got memory",
        ),
        (
            &["0:cpu=1"],
            "failed to parse kubelet flag: invalid argument \"0:cpu=1\" for \"--reserved-memory\" flag: memory type conversion error, unknown type: \"cpu\"",
        ),
        (
            &["0:memory=3GB"],
            "failed to parse kubelet flag: invalid argument \"0:memory=3GB\" for \"--reserved-memory\" flag: failed to parse the quantatity, expected quantatity, got 3GB",
        ),
        (
            &["", "0:memory=5220Mi"],
            "failed to parse kubelet flag: invalid argument \"0:memory=5220Mi\" for \"--reserved-memory\" flag: no target (nil pointer to *[]MemoryReservation",
        ),
    ];
    for (flags, want) in cases {
        let mut args = vec!["validate", "--config", k, "--machine", m, "-o", "json"];
        for f in *flags {
            args.push("--reserved-memory");
            args.push(f);
        }
        let r = nmm(&args);
        assert_eq!(r.code, 1, "{flags:?}: {}{}", r.stdout, r.stderr);
        let v = json_of(&r);
        assert_eq!(v["findings"][0]["check"], "--reserved-memory", "{flags:?}");
        assert_eq!(v["findings"][0]["kubeletError"], *want, "{flags:?}");
        assert_eq!(v["kubeletStopsWith"]["stage"], "flags");
    }
    // The table says it too, with what to do.
    let r = nmm(&[
        "validate",
        "--config",
        k,
        "--machine",
        m,
        "--reserved-memory",
        "0:Memory=1Gi",
    ]);
    assert_eq!(r.code, 1);
    assert!(r.stdout.contains("  failed to parse kubelet flag: invalid argument \"0:Memory=1Gi\" for \"--reserved-memory\" flag: memory type conversion error, unknown type: \"Memory\"\n"), "{}", r.stdout);
    assert!(
        r.stdout.contains("did you mean \"memory\"?"),
        "{}",
        r.stdout
    );
    // An empty flag alone keeps the file's list.
    let r = nmm(&[
        "validate",
        "--config",
        k,
        "--machine",
        m,
        "--reserved-memory",
        "",
    ]);
    assert_eq!(r.code, 0, "{}", r.stdout);
}

#[test]
fn validate_numa_node_limit_suggests_the_option() {
    let d = tempfile::tempdir().unwrap();
    let mut machine = String::from("machine:\n  numaNodes:\n");
    for i in 0..10 {
        machine.push_str(&format!(
            "  - {{id: {i}, cpus: \"{}-{}\", memory: 16Gi}}\n",
            i * 4,
            i * 4 + 3
        ));
    }
    let m = write(d.path(), "machine.yaml", &machine);
    let k = write(
        d.path(),
        "config.yaml",
        "kind: KubeletConfiguration\ntopologyManagerPolicy: restricted\n",
    );
    let r = nmm(&[
        "validate",
        "--config",
        k.to_str().unwrap(),
        "--machine",
        m.to_str().unwrap(),
        "-o",
        "json",
    ]);
    assert_eq!(r.code, 1);
    let v = json_of(&r);
    assert_eq!(v["findings"][0]["check"], "numaNodeLimit");
    assert_eq!(
        v["findings"][0]["kubeletError"],
        "unsupported on machines with more than 8 NUMA Nodes"
    );
    assert!(v["findings"][0]["fix"]
        .as_str()
        .unwrap()
        .contains("topologyManagerPolicyOptions: {max-allowable-numa-nodes: \"10\"}"));
}

#[test]
fn validate_a_scenario_file_serves_as_machine_and_config() {
    let d = tempfile::tempdir().unwrap();
    let s = write(
        d.path(),
        "scenario.yaml",
        &format!("{MACHINE}kubelet:\n  memoryManagerPolicy: Static\n  reservedMemory: [{{numaNode: 1, limits: {{memory: 100Mi}}}}]\nsteps: []\n"),
    );
    let s = s.to_str().unwrap();
    let r = nmm(&["validate", "--config", s]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(r
        .stdout
        .contains("(machine:): 2 NUMA nodes (0, 1), 16 CPUs, 128Gi memory"));
    let k = write(d.path(), "config.yaml", "kind: KubeletConfiguration\n");
    let r = nmm(&["validate", "--config", k.to_str().unwrap(), "--machine", s]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
}

#[test]
fn validate_unreadable_inputs_exit_2_naming_file_and_field() {
    let d = tempfile::tempdir().unwrap();
    let m = write(d.path(), "machine.yaml", MACHINE);
    let m = m.to_str().unwrap();
    let missing = d.path().join("nope.yaml");
    let r = nmm(&[
        "validate",
        "--config",
        missing.to_str().unwrap(),
        "--machine",
        m,
    ]);
    assert_eq!(r.code, 2);
    assert!(
        r.stderr.contains("nope.yaml: cannot read the file"),
        "{}",
        r.stderr
    );

    let k = write(
        d.path(),
        "config.yaml",
        "kind: KubeletConfiguration\nreservedMemory:\n- numaNode: zero\n  limits: {memory: 1Gi}\n",
    );
    let r = nmm(&["validate", "--config", k.to_str().unwrap(), "--machine", m]);
    assert_eq!(r.code, 2);
    assert!(
        r.stderr
            .contains("config.yaml: reservedMemory[0].numaNode: invalid type"),
        "{}",
        r.stderr
    );

    let k = write(d.path(), "pod.yaml", "apiVersion: v1\nkind: Pod\n");
    let r = nmm(&["validate", "--config", k.to_str().unwrap(), "--machine", m]);
    assert_eq!(r.code, 2);
    assert!(r
        .stderr
        .contains("pod.yaml: kind: \"Pod\": expected KubeletConfiguration"));

    let k = write(d.path(), "ok.yaml", "kind: KubeletConfiguration\n");
    let bad_machine = write(d.path(), "bad-machine.yaml", "numaNodes: []\n");
    let r = nmm(&[
        "validate",
        "--config",
        k.to_str().unwrap(),
        "--machine",
        bad_machine.to_str().unwrap(),
    ]);
    assert_eq!(r.code, 2);
    assert!(
        r.stderr
            .contains("bad-machine.yaml: machine.numaNodes: empty"),
        "{}",
        r.stderr
    );

    let r = nmm(&[
        "validate",
        "--config",
        k.to_str().unwrap(),
        "--sysfs-root",
        d.path().to_str().unwrap(),
    ]);
    assert_eq!(r.code, 2);
    assert!(
        r.stderr.contains("reading the machine from sysfs"),
        "{}",
        r.stderr
    );
}

#[test]
fn validate_help_has_an_example() {
    let r = nmm(&["validate", "--help"]);
    assert_eq!(r.code, 0);
    assert!(r.stdout.contains("--reserved-memory <FLAG>"));
    assert!(r
        .stdout
        .contains("nmm validate --config kubelet.yaml --machine machine.yaml"));
}

#[test]
fn validate_colour_only_when_asked_or_on_a_terminal() {
    let d = tempfile::tempdir().unwrap();
    let k = write(d.path(), "config.yaml", &kubelet_config(SHORT_BY_1124MI));
    let m = write(d.path(), "machine.yaml", MACHINE);
    let (k, m) = (k.to_str().unwrap(), m.to_str().unwrap());
    let r = nmm(&["validate", "--config", k, "--machine", m]);
    assert!(!r.stdout.contains('\x1b'));
    let r = nmm(&[
        "validate",
        "--config",
        k,
        "--machine",
        m,
        "--color",
        "always",
    ]);
    assert!(
        r.stdout.contains("\x1b[1;31mINVALID:\x1b[0m"),
        "{}",
        r.stdout
    );
}
