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
