//! `nmm simulate` on the real binary: the built-in example, checkpoint files, and bad
//! input (every error names the file and the field, exits 2, never panics).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn nmm(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_nmm"))
        .args(args)
        .output()
        .expect("run nmm")
}

fn example(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples")
        .join(name)
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn docs_example_json_and_checkpoints() {
    let dir = tempfile::tempdir().unwrap();
    let ex = example("docs-150gi-two-numa.yaml");
    let out = nmm(&[
        "simulate",
        ex.to_str().unwrap(),
        "-o",
        "json",
        "--state-dir",
        dir.path().to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let line: serde_json::Value =
        serde_json::from_str(text(&out.stdout).lines().next().unwrap()).unwrap();
    assert_eq!(line["admitted"], true);
    assert_eq!(line["containers"][0]["memory"][0]["size"], 161061273600u64);
    assert_eq!(
        line["containers"][0]["affinity"]["numaAffinity"],
        serde_json::json!([0, 1])
    );
    // The docs' checkpoint, checksum included.
    let mm = std::fs::read_to_string(dir.path().join("memory_manager_state")).unwrap();
    assert!(mm.ends_with(",\"checksum\":17296941}"), "{mm}");
    let cpu = std::fs::read_to_string(dir.path().join("cpu_manager_state")).unwrap();
    assert_eq!(
        cpu,
        "{\"policyName\":\"none\",\"defaultCpuSet\":\"\",\"checksum\":1353318690}"
    );
    // No temporary files left behind.
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names.len(), 2, "{names:?}");
}

#[test]
fn table_output_and_svg() {
    let dir = tempfile::tempdir().unwrap();
    let svg = dir.path().join("m.svg");
    let ex = example("single-numa-reject.yaml");
    let out = nmm(&[
        "simulate",
        ex.to_str().unwrap(),
        "-o",
        "table",
        "--svg",
        svg.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let t = text(&out.stdout);
    assert!(
        t.contains("step 2: admit big (uid-big): REJECTED UnexpectedAdmissionError"),
        "{t}"
    );
    assert!(
        t.contains("step 4: admit big-again (uid-big-2): ADMITTED"),
        "{t}"
    );
    assert!(std::fs::read_to_string(&svg).unwrap().starts_with("<svg"));
}

#[test]
fn large_examples_run() {
    for ex in ["gb200-34-numa.yaml", "numa-64.yaml"] {
        let p = example(ex);
        let out = nmm(&["simulate", p.to_str().unwrap(), "-o", "json"]);
        assert_eq!(out.status.code(), Some(0), "{ex}: {}", text(&out.stderr));
        let admitted = text(&out.stdout)
            .lines()
            .filter(|l| l.contains("\"admitted\":true"))
            .count();
        assert!(admitted >= 3, "{ex}: {admitted} admitted");
        assert!(
            !text(&out.stdout).contains("nmm:"),
            "{ex}: the engine gave up somewhere"
        );
    }
}

fn scenario(dir: &Path, body: &str) -> PathBuf {
    let p = dir.join("s.yaml");
    std::fs::write(&p, body).unwrap();
    p
}

const MACHINE: &str = "machine:\n  numaNodes:\n    - {id: 0, cpus: \"0-3\", memory: 8Gi}\n    - {id: 1, cpus: \"4-7\", memory: 8Gi}\n";

/// (scenario text, words the error must contain)
fn bad_inputs() -> Vec<(String, Vec<&'static str>)> {
    let pod = |uid: &str| {
        format!("  - admit:\n      metadata: {{name: p, uid: {uid}}}\n      spec:\n        containers:\n          - {{name: c, resources: {{limits: {{cpu: \"1\", memory: 1Gi}}}}}}\n")
    };
    vec![
        ("machine: [\n".to_string(), vec!["s.yaml", "not valid YAML"]),
        ("kubelet: {}\nsteps: []\n".to_string(), vec!["s.yaml", "machine"]),
        (
            "machine:\n  numaNodes:\n    - {id: 0, cpus: \"0-3\", memory: 8Gx}\n".to_string(),
            vec!["machine.numaNodes[0].memory", "8Gx"],
        ),
        (
            "machine:\n  numaNodes:\n    - {id: 0, cpus: \"3-1\", memory: 8Gi}\n".to_string(),
            vec!["machine.numaNodes[0].cpus", "invalid range"],
        ),
        (format!("{MACHINE}kubelet:\n  kubeReserved: [1]\n"), vec!["kubelet.kubeReserved"]),
        (format!("{MACHINE}steps:\n{}{}", pod("u1"), pod("u1")), vec!["steps[1].admit.metadata.uid", "u1"]),
        (
            format!("{MACHINE}steps:\n  - admit:\n      metadata: {{name: p, uid: u}}\n      spec:\n        containers:\n          - {{name: c, resources: {{limits: {{memory: lots}}}}}}\n"),
            vec!["steps[0].admit", "memory", "lots"],
        ),
        (format!("{MACHINE}steps:\n  - evict: {{uid: x}}\n"), vec!["steps[0]", "admit", "remove"]),
    ]
}

#[test]
fn bad_input_names_file_and_field() {
    let dir = tempfile::tempdir().unwrap();
    for (body, words) in bad_inputs() {
        let p = scenario(dir.path(), &body);
        let out = nmm(&["simulate", p.to_str().unwrap(), "-o", "json"]);
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{body}\n{err}");
        assert!(!err.contains("panicked"), "{err}");
        for w in words {
            assert!(err.contains(w), "missing {w:?} in {err:?} for\n{body}");
        }
    }
}

#[test]
fn kubelet_refusals_are_startup_errors() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        ("memoryManagerPolicy: static", "memoryManager", "unknown policy: \"static\""),
        ("topologyManagerPolicy: strict", "validation", "topologyManagerPolicy (--topology-manager-policy) \"strict\""),
        ("cpuManagerPolicy: static", "cpuManager", "[cpumanager] unable to determine reserved CPU resources for static policy"),
        ("topologyManagerPolicyOptions: {prefer-closest: \"true\"}\n  topologyManagerPolicy: restricted", "topologyManager", "unknown Topology Manager Policy option: \"prefer-closest\""),
    ];
    for (kubelet, stage, msg) in cases {
        let p = scenario(dir.path(), &format!("{MACHINE}kubelet:\n  {kubelet}\n"));
        let out = nmm(&["simulate", p.to_str().unwrap(), "-o", "json"]);
        assert_eq!(out.status.code(), Some(1), "{kubelet}");
        let v: serde_json::Value = serde_json::from_str(text(&out.stdout).trim()).unwrap();
        assert_eq!(v["stage"], stage, "{kubelet}");
        assert!(v["startupError"].as_str().unwrap().contains(msg), "{v}");
    }
}

#[test]
fn corrupt_starting_checkpoint_is_the_kubelets_error() {
    let dir = tempfile::tempdir().unwrap();
    let ck = dir.path().join("mm.json");
    std::fs::write(
        &ck,
        r#"{"policyName":"None","machineState":{},"checksum":1}"#,
    )
    .unwrap();
    let p = scenario(
        dir.path(),
        &format!("{MACHINE}state:\n  memoryManager: mm.json\n"),
    );
    let out = nmm(&[
        "simulate",
        p.to_str().unwrap(),
        "-o",
        "json",
        "--state-dir",
        "/srv/k",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stdout).contains("could not restore state from checkpoint: checkpoint is corrupted, please drain this node and delete the memory manager checkpoint file \\\"/srv/k/memory_manager_state\\\" before restarting Kubelet"), "{}", text(&out.stdout));
}

#[test]
fn removing_an_unknown_pod_is_reported_not_fatal() {
    let dir = tempfile::tempdir().unwrap();
    let p = scenario(
        dir.path(),
        &format!("{MACHINE}steps:\n  - remove: {{uid: ghost}}\n"),
    );
    let out = nmm(&["simulate", p.to_str().unwrap(), "-o", "json"]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(
        text(&out.stdout).trim(),
        r#"{"step":0,"op":"remove","uid":"ghost","removed":false}"#
    );
    assert!(
        text(&out.stderr).contains("steps[0].remove.uid"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn completions_and_help() {
    let out = nmm(&["completions", "bash"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(text(&out.stdout).contains("nmm"));
    let out = nmm(&["simulate", "--help"]);
    assert!(text(&out.stdout).contains("Example: nmm simulate"));
}

#[test]
fn yaml_output_is_the_same_data() {
    let ex = example("docs-150gi-two-numa.yaml");
    let json = nmm(&["simulate", ex.to_str().unwrap(), "-o", "json"]);
    let yaml = nmm(&["simulate", ex.to_str().unwrap(), "-o", "yaml"]);
    assert_eq!(yaml.status.code(), Some(0));
    let from_yaml: serde_json::Value = serde_saphyr::from_str(&text(&yaml.stdout)).unwrap();
    let from_json: Vec<serde_json::Value> = text(&json.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(from_yaml, serde_json::Value::Array(from_json));
}
