//! Messages and exit codes for CI and pipes, on the real binary: `simulate`'s summary
//! and `--fail-on-reject`, and a closed pipe ending quietly.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

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
fn simulate_table_ends_with_a_summary_and_fail_on_reject_exits_1() {
    let ex = example("single-numa-reject.yaml");
    let ex = ex.to_str().unwrap();
    let out = nmm(&["simulate", ex, "-o", "table"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let t = text(&out.stdout);
    assert_eq!(
        t.lines().last(),
        Some("summary: 3 admitted, 1 rejected (UnexpectedAdmissionError 1), 1 removed"),
        "{t}"
    );

    let out = nmm(&["simulate", ex, "-o", "json", "--fail-on-reject"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("error: 1 of 4 pods rejected (--fail-on-reject)"),
        "{}",
        text(&out.stderr)
    );
    // JSON lines stay one object per step (no summary line mixed in).
    for l in text(&out.stdout).lines() {
        let v: serde_json::Value = serde_json::from_str(l).unwrap();
        assert!(v.get("step").is_some() || v.get("devices").is_some(), "{l}");
    }

    // All admitted: --fail-on-reject passes.
    let ok = example("docs-150gi-two-numa.yaml");
    let out = nmm(&[
        "simulate",
        ok.to_str().unwrap(),
        "-o",
        "json",
        "--fail-on-reject",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
}

#[test]
fn closed_pipe_ends_quietly() {
    let ex = example("numa-64.yaml");
    let mut child = Command::new(env!("CARGO_BIN_EXE_nmm"))
        .args(["simulate", ex.to_str().unwrap(), "-o", "table"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // `| head -0`: the reader goes away before nmm writes.
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let e = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{e}");
    assert!(!e.contains("error"), "{e}");
    assert!(!e.contains("panicked"), "{e}");
}

#[test]
fn state_on_a_non_checkpoint_or_a_directory_says_so() {
    let d = tempfile::tempdir().unwrap();
    let pod = d.path().join("pod.yaml");
    std::fs::write(&pod, "apiVersion: v1\nkind: Pod\nmetadata: {name: x}\n").unwrap();
    let host = d.path().join("hostname");
    std::fs::write(&host, "node-1\n").unwrap();
    for verb in ["show", "verify"] {
        for f in [&pod, &host] {
            let out = nmm(&["state", verb, f.to_str().unwrap()]);
            assert_eq!(out.status.code(), Some(2));
            let e = text(&out.stderr);
            assert!(
                e.contains(&format!("{}: not a kubelet checkpoint", f.display())),
                "{e}"
            );
            assert!(
                !e.contains("drain"),
                "no drain advice for a non-checkpoint: {e}"
            );
        }
    }
    // A directory: the checkpoint inside, or a did-you-mean when there are two.
    let sd = d.path().join("state");
    let out = nmm(&[
        "simulate",
        example("docs-150gi-two-numa.yaml").to_str().unwrap(),
        "-o",
        "json",
        "--state-dir",
        sd.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0));
    let out = nmm(&["state", "show", sd.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains(&format!(
            "is a directory; did you mean {} or {}?",
            sd.join("memory_manager_state").display(),
            sd.join("cpu_manager_state").display()
        )),
        "{}",
        text(&out.stderr)
    );
    std::fs::remove_file(sd.join("cpu_manager_state")).unwrap();
    let out = nmm(&["state", "show", sd.to_str().unwrap(), "-o", "json"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
}

#[test]
fn agent_config_error_points_at_validate_and_state_dir_must_exist() {
    let d = tempfile::tempdir().unwrap();
    let cfg = d.path().join("config.yaml");
    std::fs::write(
        &cfg,
        "apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\nmemoryManagerPolicy: Static\nkubeReserved: {memory: 1Gi}\nevictionHard: {memory.available: 100Mi}\n",
    )
    .unwrap();
    let machine = example("docs-150gi-two-numa.yaml");
    let state = d.path().join("state");
    let args = |create: bool| {
        let mut v = vec![
            "agent".to_string(),
            "--config".into(),
            cfg.display().to_string(),
            "--machine".into(),
            machine.display().to_string(),
            "--state-dir".into(),
            state.display().to_string(),
        ];
        if create {
            v.push("--create-state-dir".into());
        }
        v
    };
    let run = |a: Vec<String>| {
        let a: Vec<&str> = a.iter().map(String::as_str).collect();
        nmm(&a)
    };
    // A missing state directory is an error unless asked to create it.
    let out = run(args(false));
    assert_eq!(out.status.code(), Some(2));
    let e = text(&out.stderr);
    assert!(
        e.contains("does not exist") && e.contains("--create-state-dir"),
        "{e}"
    );
    assert!(!state.exists());
    // The configuration is wrong: the hint is nmm validate, not --reconcile.
    let out = run(args(true));
    assert_eq!(out.status.code(), Some(1));
    let e = text(&out.stderr);
    assert!(state.is_dir());
    assert!(
        e.contains(&format!("run `nmm validate --config {}`", cfg.display())),
        "{e}"
    );
    assert!(
        e.contains("fix: add 1124Mi of memory on NUMA node 0"),
        "{e}"
    );
    assert!(!e.contains("start with --reconcile"), "{e}");
}
