//! Human output on the real binary: every table and report fits 80 columns when stdout is
//! not a terminal and `COLUMNS` is unset (and `COLUMNS` when set), ASCII borders with a
//! non-UTF-8 locale or `--ascii`, `-o wide` keeps the columns the default drops, a
//! rejected pod's containers are marked as freed partial allocations, the shipped
//! examples run without warnings, and byte amounts read `51.9Gi` everywhere.

use std::path::{Path, PathBuf};
use std::process::Command;

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

/// Runs nmm (stdout is a pipe, so never a terminal) with `COLUMNS` unset and the given
/// locale and extra environment.
fn nmm_env(args: &[&str], env: &[(&str, &str)]) -> Run {
    let mut c = Command::new(env!("CARGO_BIN_EXE_nmm"));
    c.args(args)
        .env_remove("COLUMNS")
        .env_remove("LC_ALL")
        .env_remove("LC_CTYPE")
        .env("LANG", "C.UTF-8")
        .env("NO_COLOR", "1");
    for (k, v) in env {
        c.env(k, v);
    }
    let o = c.output().expect("run nmm");
    Run {
        code: o.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
    }
}

fn nmm(args: &[&str]) -> Run {
    nmm_env(args, &[])
}

fn examples() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples");
    let mut v: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    v.sort();
    assert!(v.len() >= 4, "examples: {v:?}");
    v
}

fn example(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples")
        .join(name)
        .to_str()
        .unwrap()
        .to_string()
}

fn widest(text: &str) -> (usize, String) {
    text.lines()
        .map(|l| (l.chars().count(), l.to_string()))
        .max_by_key(|(w, _)| *w)
        .unwrap_or_default()
}

fn assert_fits(what: &str, text: &str, width: usize) {
    let (w, line) = widest(text);
    assert!(
        w <= width,
        "{what}: a line of {w} columns:\n{line}\n\n{text}"
    );
}

/// A 16-node fake sysfs tree (its distance rows are too long for 80 columns).
fn sixteen_nodes() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    nmm_sysfs::fake::FakeSysfs::uniform(16, 2, 2, 8 << 30)
        .write_to(dir.path())
        .unwrap();
    dir
}

/// Every human output of every command on every shipped example (and on the checkpoints
/// and machine they lead to) fits 80 columns.
#[test]
fn every_human_output_fits_80_columns() {
    let state = tempfile::tempdir().unwrap();
    let sd = state.path().to_str().unwrap();
    for ex in examples() {
        let e = ex.to_str().unwrap();
        let r = nmm(&["simulate", e, "-o", "table"]);
        assert_eq!(r.code, 0, "{e}: {}", r.stderr);
        assert_fits(&format!("simulate {e}"), &r.stdout, 80);
        let r = nmm(&["explain", e]);
        assert_eq!(r.code, 0, "{e}: {}", r.stderr);
        assert_fits(&format!("explain {e}"), &r.stdout, 80);
        let r = nmm(&["validate", "--config", e, "--machine", e]);
        assert_fits(&format!("validate {e}"), &r.stdout, 80);
        let r = nmm(&["simulate", e, "-o", "json", "--state-dir", sd]);
        assert_eq!(r.code, 0, "{e}: {}", r.stderr);
        for f in ["memory_manager_state", "cpu_manager_state"] {
            let file = state.path().join(f);
            let file = file.to_str().unwrap();
            let r = nmm(&["state", "show", file]);
            assert_eq!(r.code, 0, "{e} {f}: {}", r.stderr);
            assert_fits(&format!("state show {f} of {e}"), &r.stdout, 80);
            let r = nmm(&["state", "verify", file, "--machine", e, "--config", e]);
            assert_fits(&format!("state verify {f} of {e}"), &r.stdout, 80);
        }
    }
    let root = sixteen_nodes();
    let r = nmm(&["node", "--sysfs-root", root.path().to_str().unwrap()]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_fits("node (16 NUMA nodes)", &r.stdout, 80);
}

/// The report wraps at spaces: no word is cut, continuation lines are indented.
#[test]
fn prose_wraps_between_words() {
    let r = nmm(&["explain", &example("single-numa-reject.yaml")]);
    assert!(
        r.stdout.contains(
            "  Allocate failed due to [memorymanager] failed to find NUMA nodes to extend the\n    current topology hint, which is unexpected\n"
        ),
        "{}",
        r.stdout
    );
}

#[test]
fn columns_sets_the_width() {
    let ex = example("gb200-34-numa.yaml");
    let wide = nmm_env(&["explain", &ex], &[("COLUMNS", "120")]);
    let (w, _) = widest(&wide.stdout);
    assert!(w > 80 && w <= 120, "COLUMNS=120: widest line {w}");
    let narrow = nmm_env(&["explain", &ex], &[("COLUMNS", "60")]);
    assert_fits("explain with COLUMNS=60", &narrow.stdout, 60);
}

fn assert_ascii(what: &str, text: &str) {
    let bad: Vec<&str> = text.lines().filter(|l| !l.is_ascii()).collect();
    assert!(
        bad.is_empty(),
        "{what}: non-ASCII lines:\n{}",
        bad.join("\n")
    );
}

#[test]
fn ascii_borders_without_a_utf8_locale_or_with_ascii() {
    let reject = example("single-numa-reject.yaml");
    for env in [
        vec![("LANG", "C")],
        vec![("LANG", "en_US.UTF-8"), ("LC_ALL", "POSIX")],
        vec![("LANG", "")],
    ] {
        let r = nmm_env(&["simulate", &reject, "-o", "table"], &env);
        assert_ascii(&format!("simulate with {env:?}"), &r.stdout);
        assert!(r.stdout.contains("+-----------+"), "{}", r.stdout);
        let r = nmm_env(&["explain", &reject], &env);
        assert_ascii(&format!("explain with {env:?}"), &r.stdout);
        assert!(r.stdout.contains("| PROVIDER | RESOURCE |"), "{}", r.stdout);
    }
    // --ascii in a UTF-8 locale, before or after the subcommand.
    for args in [
        vec!["--ascii", "explain", reject.as_str()],
        vec!["explain", reject.as_str(), "--ascii"],
    ] {
        let r = nmm(&args);
        assert_eq!(r.code, 0, "{}", r.stderr);
        assert_ascii("explain --ascii", &r.stdout);
        // The report's punctuation too: "container big - requests ...".
        assert!(
            r.stdout.contains("container big - requests cpu 4"),
            "{}",
            r.stdout
        );
    }
    // UTF-8 from LC_CTYPE even when LANG is C.
    let r = nmm_env(
        &["simulate", &reject, "-o", "table"],
        &[("LANG", "C"), ("LC_CTYPE", "en_US.utf8")],
    );
    assert!(r.stdout.contains("┌───────────┬"), "{}", r.stdout);
}

#[test]
fn wide_shows_the_columns_the_table_leaves_out() {
    let ex = example("single-numa-reject.yaml");
    let t = nmm(&["simulate", &ex, "-o", "table"]).stdout;
    let w = nmm(&["simulate", &ex, "-o", "wide"]).stdout;
    assert!(!t.contains("#CPUs") && !t.contains("devices"), "{t}");
    assert!(w.contains("┆ #CPUs ┆") && w.contains("┆ devices │"), "{w}");
    assert!(
        w.contains(
            "│ db        ┆ {0} preferred ┆ 1-2            ┆ 2     ┆ memory 32Gi on [0] ┆ -       │"
        ),
        "{w}"
    );

    // state show: SYSTEM RESERVED and TOTAL are dropped at 80 columns, kept by wide.
    let dir = tempfile::tempdir().unwrap();
    let sd = dir.path().to_str().unwrap();
    let docs = example("docs-150gi-two-numa.yaml");
    assert_eq!(
        nmm(&["simulate", &docs, "-o", "json", "--state-dir", sd]).code,
        0
    );
    let f = dir.path().join("memory_manager_state");
    let f = f.to_str().unwrap();
    let t = nmm(&["state", "show", f]).stdout;
    let header = t.lines().find(|l| l.starts_with("│ NODE")).unwrap();
    assert!(
        !header.contains("SYSTEM RESERVED") && !header.contains("TOTAL"),
        "{t}"
    );
    assert!(
        t.contains("(SYSTEM RESERVED, TOTAL left out to fit; -o wide shows every column)"),
        "{t}"
    );
    let w = nmm(&["state", "show", f, "-o", "wide"]).stdout;
    assert!(
        w.contains("SYSTEM RESERVED") && w.contains("TOTAL") && !w.contains("left out"),
        "{w}"
    );

    // node: the distance column is dropped when it does not fit, kept by wide.
    let root = sixteen_nodes();
    let root = root.path().to_str().unwrap();
    let t = nmm(&["node", "--sysfs-root", root]).stdout;
    assert!(!t.contains("DISTANCES"), "{t}");
    assert!(t.contains("`nmm node -o wide` shows them"), "{t}");
    let w = nmm(&["node", "--sysfs-root", root, "-o", "wide"]).stdout;
    assert!(w.contains("DISTANCES"), "{w}");
    assert!(w.contains("10 20 20 20"), "{w}");
}

#[test]
fn a_rejected_pods_containers_are_freed_partial_allocations() {
    let ex = example("single-numa-reject.yaml");
    let t = nmm(&["simulate", &ex, "-o", "table"]).stdout;
    let block = t
        .split("step 2: admit big")
        .nth(1)
        .and_then(|s| s.split("step 3").next())
        .unwrap();
    assert!(
        block.contains("partial 3-6, freed") && block.contains("not allocated"),
        "{block}"
    );
    assert!(!block.contains("┆ 3-6 "), "shown as holding CPUs:\n{block}");
    assert!(block.contains("rejected: the pod holds nothing"), "{block}");
    // Admitted steps are unmarked.
    let first = t.split("step 1:").next().unwrap();
    assert!(
        !first.contains("partial") && first.contains("┆ 1-2 "),
        "{first}"
    );

    let j = nmm(&["simulate", &ex, "-o", "json"]).stdout;
    for l in j.lines() {
        let v: serde_json::Value = serde_json::from_str(l).unwrap();
        if v["op"] != "admit" {
            continue;
        }
        for c in v["containers"].as_array().unwrap() {
            if v["admitted"] == true {
                assert!(c.get("partial").is_none(), "{l}");
            } else {
                assert_eq!(c["partial"], true, "{l}");
                // The spec's fields keep their values.
                assert_eq!(c["cpus"], "3-6", "{l}");
            }
        }
    }
}

#[test]
fn the_shipped_examples_run_without_warnings() {
    for ex in examples() {
        let e = ex.to_str().unwrap();
        for args in [
            vec!["simulate", e, "-o", "json"],
            vec!["simulate", e, "-o", "table"],
            vec!["explain", e],
            vec!["validate", "--config", e, "--machine", e],
        ] {
            let r = nmm(&args);
            assert!(
                r.stderr.is_empty(),
                "{args:?} printed on stderr:\n{}",
                r.stderr
            );
            assert!(!r.stdout.contains("warning"), "{args:?}:\n{}", r.stdout);
        }
        let r = nmm(&["validate", "--config", e, "--machine", e, "-o", "json"]);
        let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
        assert_eq!(v["warnings"], serde_json::json!([]), "{e}");
    }
}

#[test]
fn one_unit_style_in_human_output() {
    let root = sixteen_nodes();
    let t = nmm(&["node", "--sysfs-root", root.path().to_str().unwrap()]).stdout;
    assert!(t.contains("┆    8Gi ┆") || t.contains(" 8Gi "), "{t}");
    assert!(t.ends_with("; 128Gi memory\n"), "{t}");
    let docs = example("docs-150gi-two-numa.yaml");
    let v = nmm(&["validate", "--config", &docs, "--machine", &docs]).stdout;
    assert!(v.contains("64 CPUs, 251.7Gi memory"), "{v}");
    for ex in examples() {
        let e = ex.to_str().unwrap();
        for args in [
            vec!["simulate", e, "-o", "table"],
            vec!["explain", e],
            vec!["validate", "--config", e, "--machine", e],
        ] {
            let out = nmm(&args).stdout;
            for unit in ["GiB", "MiB", "KiB", " bytes"] {
                assert!(!out.contains(unit), "{args:?}: {unit}:\n{out}");
            }
        }
    }
}

#[test]
fn explain_does_not_read_as_success_for_a_pod_rejected_later() {
    let r = nmm(&["explain", &example("single-numa-reject.yaml")]);
    let out = r.stdout.replace("\n    ", " ");
    assert!(!out.contains("admits:"), "{out}");
    assert!(
        out.contains("verdict: single-numa-node accepts the merged hint: it is preferred; but the memory manager then failed to allocate (below)"),
        "{out}"
    );
    assert!(out.contains("(request 4, CPU 0 reserved)"), "{out}");
    assert!(!out.contains("reserved 0"), "{out}");
    // In colour the accepted hint is not green (1;32) for a rejected pod.
    let c = nmm(&[
        "explain",
        &example("single-numa-reject.yaml"),
        "--color",
        "always",
    ]);
    assert!(!c.stdout.contains("\x1b[1;32m"), "{}", c.stdout);
}
