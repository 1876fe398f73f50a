//! Every scenario of the kubelet-answered corpora under `../shared` (outputs produced by
//! kubelet v1.32 code) must give the same lines and the same checkpoints. On failure the
//! test names the scenario, the step and the difference.

use nmm_scenario::scenario::load_scenario;
use nmm_scenario::simulate::{device_state_json, event_json, run_with, startup_json};
use serde_json::Value;
use std::path::Path;

#[path = "support/corpora.rs"]
mod corpora;
use corpora::{all_scenarios, scenarios, shared_dir};

/// Runs one scenario; returns the differences found.
fn check(path: &Path, enumerate: bool) -> Vec<String> {
    let expected_path = path.with_extension("expected.jsonl");
    let expected: Vec<Value> = std::fs::read_to_string(&expected_path)
        .unwrap_or_else(|e| panic!("{}: {e}", expected_path.display()))
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let name = format!(
        "{}{}",
        path.display(),
        if enumerate {
            " (enumerating every mask)"
        } else {
            ""
        }
    );
    let mut diffs = Vec::new();
    let s = match load_scenario(path) {
        Ok(s) => s,
        Err(e) => return vec![format!("{name}: cannot load: {e:#}")],
    };
    let o = match run_with(&s, "/var/lib/kubelet", enumerate) {
        Ok(o) => o,
        Err(e) => return vec![format!("{name}: run failed: {e:#}")],
    };
    let mut got: Vec<Value> = Vec::new();
    if let Some(e) = &o.startup_error {
        got.push(startup_json(e));
    }
    for (step, e) in &o.events {
        let mut v = event_json(*step, e);
        // `partial` (a rejected pod's containers: freed partial allocations) is nmm's
        // addition to the spec's lines; the corpora predate it. Every container of a
        // rejected pod carries it, no other does.
        let admitted = v["admitted"] != false;
        if let Some(cs) = v.get_mut("containers").and_then(Value::as_array_mut) {
            for c in cs {
                let p = c.as_object_mut().and_then(|o| o.remove("partial"));
                assert_eq!(p.is_some(), !admitted, "{name}: step {step}: {c}");
            }
        }
        got.push(v);
    }
    if let Some(node) = &o.node {
        let m: Value = serde_json::from_str(&node.memory_checkpoint()).unwrap();
        got.push(serde_json::json!({"memory_manager_state_canonical": m}));
        let c: Value = serde_json::from_str(&node.cpu_checkpoint()).unwrap();
        got.push(serde_json::json!({"cpu_manager_state": c}));
        got.extend(device_state_json(&s, node));
    }
    for i in 0..expected.len().max(got.len()) {
        let (e, g) = (expected.get(i), got.get(i));
        if e != g {
            let what = e
                .and_then(|v| v.get("step"))
                .map(|s| format!("step {s}"))
                .unwrap_or_else(|| format!("line {}", i + 1));
            diffs.push(format!(
                "{name}: {what}:\n  expected {}\n  got      {}",
                e.map_or("(nothing)".into(), |v| v.to_string()),
                g.map_or("(nothing)".into(), |v| v.to_string())
            ));
        }
    }
    diffs
}

#[test]
fn kubelet_conformance_scenarios() {
    let Some(shared) = shared_dir() else {
        eprintln!("skipping: ../shared is not present next to this checkout");
        return;
    };
    let all = all_scenarios(&shared);
    let mut failed = Vec::new();
    // Both the engine's described hint lists and the kubelet-like enumeration of every
    // NUMA mask must reproduce the kubelet's output.
    for enumerate in [false, true] {
        for p in &all {
            let d = check(p, enumerate);
            if !d.is_empty() {
                failed.push(d);
            }
        }
    }
    if !failed.is_empty() {
        let shown: Vec<String> = failed.iter().take(15).map(|d| d.join("\n")).collect();
        panic!(
            "{} of {} conformance runs differ (first ones):\n{}",
            failed.len(),
            2 * all.len(),
            shown.join("\n\n")
        );
    }
    eprintln!("{} conformance scenarios passed", all.len());
}

/// `../shared/conformance-next/devices`: kubelet v1.32.10 answers with its real
/// devicemanager (both paths, as above).
#[test]
fn device_conformance_scenarios() {
    let d = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/conformance-next/devices");
    if !d.is_dir() {
        eprintln!("skipping: {} is not present", d.display());
        return;
    }
    let all = scenarios(&d);
    assert!(!all.is_empty(), "no scenarios under {}", d.display());
    let failed: Vec<String> = [false, true]
        .iter()
        .flat_map(|&enumerate| all.iter().flat_map(move |p| check(p, enumerate)))
        .collect();
    assert!(
        failed.is_empty(),
        "{} differences (first ones):\n{}",
        failed.len(),
        failed
            .iter()
            .take(15)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n\n")
    );
}
