//! `nmm explain` on the real binary: scenarios written here and the shared conformance
//! example, checked sentence by sentence.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

/// a (10Gi) and b (4Gi) fill node 0, c (12Gi) goes to node 1; big (12Gi) then fits on no
/// single node, single-numa-node forbids spanning, and removing c makes room.
const SINGLE: &str = r#"
machine:
  numaNodes:
    - {id: 0, cpus: "0-3", memory: 16Gi}
    - {id: 1, cpus: "4-7", memory: 16Gi}
kubelet:
  memoryManagerPolicy: Static
  kubeReserved: {memory: 1Gi}
  systemReserved: {memory: 924Mi}
  evictionHard: {memory.available: 100Mi}
  reservedMemory:
    - {numaNode: 0, limits: {memory: 1Gi}}
    - {numaNode: 1, limits: {memory: 1Gi}}
  topologyManagerPolicy: single-numa-node
steps:
  - admit: {metadata: {name: a, uid: uid-a}, spec: {containers: [{name: c, resources: {limits: {cpu: "1", memory: 10Gi}}}]}}
  - admit: {metadata: {name: b, uid: uid-b}, spec: {containers: [{name: c, resources: {limits: {cpu: "1", memory: 4Gi}}}]}}
  - admit: {metadata: {name: c, uid: uid-c}, spec: {containers: [{name: c, resources: {limits: {cpu: "1", memory: 12Gi}}}]}}
  - admit: {metadata: {name: big, uid: uid-big}, spec: {containers: [{name: app, resources: {limits: {cpu: "2", memory: 12Gi}}}]}}
"#;

/// Static CPU and memory managers under restricted, 7Gi allocatable per node: `fits` is
/// admitted; `wide` (10Gi) is rejected (memory prefers {0,1}, cpu single nodes); after
/// `small` takes node 0, `wide2` gets cpu's {0} and the memory manager cannot extend it.
const RESTRICTED: &str = r#"
machine:
  numaNodes:
    - {id: 0, cpus: "0-3", memory: 8Gi}
    - {id: 1, cpus: "4-7", memory: 8Gi}
kubelet:
  cpuManagerPolicy: static
  memoryManagerPolicy: Static
  kubeReserved: {cpu: "1", memory: 1Gi}
  systemReserved: {memory: 924Mi}
  evictionHard: {memory.available: 100Mi}
  reservedMemory:
    - {numaNode: 0, limits: {memory: 1Gi}}
    - {numaNode: 1, limits: {memory: 1Gi}}
  topologyManagerPolicy: restricted
steps:
  - admit: {metadata: {name: fits, uid: uid-fits}, spec: {containers: [{name: app, resources: {limits: {cpu: "2", memory: 1Gi}}}]}}
  - remove: {uid: uid-fits}
  - admit: {metadata: {name: wide, uid: uid-wide}, spec: {containers: [{name: app, resources: {limits: {cpu: "2", memory: 10Gi}}}]}}
  - admit: {metadata: {name: small, uid: uid-small}, spec: {containers: [{name: app, resources: {limits: {cpu: "1", memory: 1Gi}}}]}}
  - admit: {metadata: {name: wide2, uid: uid-wide2}, spec: {containers: [{name: app, resources: {limits: {cpu: "2", memory: 10Gi}}}]}}
"#;

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
        code: o.status.code().unwrap_or(-1),
        stdout: String::from_utf8(o.stdout).expect("utf-8 stdout"),
        stderr: String::from_utf8(o.stderr).expect("utf-8 stderr"),
    }
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[track_caller]
fn has(out: &str, needle: &str) {
    assert!(out.contains(needle), "missing {needle:?} in:\n{out}");
}

fn json(args: &[&str]) -> Value {
    let r = nmm(args);
    assert_eq!(r.code, 0, "{}", r.stderr);
    serde_json::from_str(&r.stdout).unwrap_or_else(|e| panic!("{e}: {}", r.stdout))
}

#[test]
fn explain_single_numa_node_rejection_in_words() {
    let d = tempfile::tempdir().unwrap();
    let f = write(d.path(), "single.yaml", SINGLE);
    // No --step: the first rejected admission.
    let r = nmm(&["explain", s(&f)]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let out = &r.stdout;
    assert!(
        out.starts_with(
            "step 3: pod big (uid uid-big, Guaranteed): REJECTED (UnexpectedAdmissionError)\n"
        ),
        "{out}"
    );
    has(out, "node: topology policy single-numa-node, scope container; CPU manager none; memory manager Static; NUMA nodes 0, 1");
    has(out, "pod big is rejected: the memory manager could not allocate container app (UnexpectedAdmissionError)");
    has(
        out,
        "no preference (the CPU manager policy is none: no exclusive CPUs)",
    );
    has(out, "no hints: no NUMA node or allowed group has 12Gi memory free, and an empty answer reads as no preference");
    has(out, "merged hint: any preferred — no provider has a NUMA preference (memory offered no hints because nothing fits, which reads as no preference), so the merged hint is any node");
    has(out, "Why it was rejected\n  - memory: needs 12Gi on one NUMA node; the largest free single node has 3Gi (node 1); single-numa-node forbids spanning nodes\n");
    has(out, "What would make it fit\n  - it fits after removing pod c (frees memory 12Gi on node 1)\n  - or lower its memory request to at most 3Gi so that one NUMA node can hold it\n  - it would be rejected under none, best-effort and restricted as well\n");
    has(out, "memory as container app met it (request 12Gi)");
    has(out, "largest free single node: 3Gi (node 1)");
    // Not a terminal: no colour.
    assert!(!out.contains('\x1b'), "{out}");
}

#[test]
fn explain_json_and_yaml_carry_the_same_explanation() {
    let d = tempfile::tempdir().unwrap();
    let f = write(d.path(), "single.yaml", SINGLE);
    let j = json(&["explain", s(&f), "-o", "json"]);
    assert_eq!(j["scenario"], s(&f));
    assert_eq!(j["step"], 3);
    assert_eq!(j["admitted"], false);
    assert_eq!(j["reason"], "UnexpectedAdmissionError");
    assert_eq!(
        j["fixes"][0],
        "it fits after removing pod c (frees memory 12Gi on node 1)"
    );
    assert_eq!(j["alternatives"]["runningPods"], 3);
    assert_eq!(j["alternatives"]["singleRemovals"][0]["uid"], "uid-c");
    assert_eq!(
        j["alternatives"]["singleRemovals"][0]["memoryBytes"],
        12u64 << 30
    );
    assert_eq!(j["alternatives"]["fitsOnEmptyNode"], true);
    let frees: Vec<u64> = j["facts"]["memory"][0]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["free"].as_u64().unwrap())
        .collect();
    assert_eq!(frees, vec![1 << 30, 3 << 30]);
    assert_eq!(j["containers"][0]["outcome"], "allocation-failed");
    assert_eq!(j["containers"][0]["failure"]["provider"], "memory");
    assert_eq!(j["decisions"][0]["merged"]["numaNodes"], Value::Null);
    assert_eq!(j["decisions"][0]["merged"]["preferred"], true);

    let r = nmm(&["explain", s(&f), "-o", "yaml"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.starts_with("scenario: "), "{}", r.stdout);
    let y: Value = serde_saphyr::from_str(&r.stdout).unwrap();
    assert_eq!(y, j);
}

#[test]
fn explain_restricted_rejection_names_the_non_preferred_merge() {
    let d = tempfile::tempdir().unwrap();
    let f = write(d.path(), "restricted.yaml", RESTRICTED);
    let r = nmm(&["explain", s(&f)]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let out = &r.stdout;
    has(
        out,
        "step 2: pod wide (uid uid-wide, Guaranteed): REJECTED (TopologyAffinityError)",
    );
    has(
        out,
        "container app — requests cpu 2, memory 10Gi, 2 exclusive CPUs; topology-rejected",
    );
    has(
        out,
        "│ cpu      ┆ cpu      ┆ {0} preferred, {1} preferred, {0,1} │",
    );
    has(
        out,
        "│ memory   ┆ memory   ┆ {0,1} preferred                     │",
    );
    has(out, "merged hint: {0,1} — no mask is preferred by all providers (cpu prefers {0}, {1}; memory prefers {0,1}); best non-preferred is {0,1}");
    has(out, "verdict: restricted rejects: the merged hint ({0,1}) is not preferred (TopologyAffinityError)");
    has(out, "same hints under each policy: none any (hint accepted) · best-effort {0,1} (hint accepted) · restricted {0,1} (hint rejected) · single-numa-node any (hint rejected)");
    has(out, "  - memory: needs 10Gi — more than one NUMA node can offer — so it prefers only multi-node groups\n");
    has(out, "  - restricted admits only preferred merged hints, so the pod is rejected with TopologyAffinityError\n");
    has(out, "  - it does not fit even on an empty node with this machine and configuration\n  - lower its memory request to at most 7Gi so that one NUMA node can hold it\n");
    has(out, "  - under best-effort it would be admitted (app: NUMA {0,1}, CPUs 1-2, memory 10Gi on nodes 0 and 1)\n");
    has(
        out,
        "  - it would be rejected under single-numa-node as well\n",
    );
    has(
        out,
        "exclusive CPUs as container app met them (request 2, CPU 0 reserved)",
    );
}

#[test]
fn explain_allocation_failure_after_the_merge_is_explained() {
    let d = tempfile::tempdir().unwrap();
    let f = write(d.path(), "restricted.yaml", RESTRICTED);
    let r = nmm(&["explain", s(&f), "--step", "4"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let out = &r.stdout;
    has(
        out,
        "step 4: pod wide2 (uid uid-wide2, Guaranteed): REJECTED (UnexpectedAdmissionError)",
    );
    has(out, "merged hint: {0} preferred — {0} and {1} are preferred by every provider; {0} wins as the narrowest (fewest nodes, then the lowest ids)");
    has(out, "memory manager failed: Allocate failed due to [memorymanager] failed to find NUMA nodes to extend the current topology hint, which is unexpected");
    has(out, "  - the merged hint's nodes {0} lack free memory (only 6Gi memory free of the 10Gi needed) and no wider group is allowed because node 0 already holds single-NUMA allocations\n");
    has(out, "│ 0    ┆ 7Gi         ┆ 6Gi  ┆ 1           ┆ {0}   │");
}

#[test]
fn explain_admitted_pod_shows_why_its_hint_won() {
    let d = tempfile::tempdir().unwrap();
    let f = write(d.path(), "restricted.yaml", RESTRICTED);
    let r = nmm(&["explain", s(&f), "--step", "0"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let out = &r.stdout;
    has(
        out,
        "step 0: pod fits (uid uid-fits, Guaranteed): ADMITTED\n",
    );
    has(
        out,
        "pod fits is admitted (app: NUMA {0}, CPUs 1-2, memory 1Gi on node 0)",
    );
    has(
        out,
        "{0} and {1} are preferred by every provider; {0} wins as the narrowest",
    );
    has(
        out,
        "verdict: restricted accepts the merged hint: it is preferred",
    );
    has(
        out,
        "placed: affinity {0} preferred, CPUs 1-2, memory 1Gi on NUMA {0}",
    );
    assert!(!out.contains("Why it was rejected"), "{out}");
    let j = json(&["explain", s(&f), "--step", "0", "-o", "json"]);
    assert_eq!(j["admitted"], true);
    assert!(j.get("alternatives").is_none());
    assert_eq!(j["fixes"], Value::Array(vec![]));
}

#[test]
fn explain_colour_only_when_asked_or_on_a_terminal() {
    let d = tempfile::tempdir().unwrap();
    let f = write(d.path(), "single.yaml", SINGLE);
    let r = nmm(&["explain", s(&f), "--color", "always"]);
    has(
        &r.stdout,
        "\x1b[1;31mREJECTED (UnexpectedAdmissionError)\x1b[0m",
    );
    has(&r.stdout, "\x1b[1mWhy it was rejected\x1b[0m");
    let r = nmm(&["explain", s(&f), "--color", "never"]);
    assert!(!r.stdout.contains('\x1b'));
    // JSON never has colour.
    let r = nmm(&["explain", s(&f), "--color", "always", "-o", "json"]);
    assert!(!r.stdout.contains('\x1b'));
}

#[test]
fn explain_bad_steps_and_files_say_what_to_do() {
    let d = tempfile::tempdir().unwrap();
    let f = write(d.path(), "restricted.yaml", RESTRICTED);
    let r = nmm(&["explain", s(&f), "--step", "1"]);
    assert_eq!(r.code, 2);
    assert_eq!(
        r.stderr.trim_end(),
        format!(
            "error: {}: --step 1: steps[1] removes pod uid \"uid-fits\"; only admissions can be explained; admit steps: 0, 2, 3, 4",
            f.display()
        )
    );
    let r = nmm(&["explain", s(&f), "--step", "9"]);
    assert_eq!(r.code, 2);
    has(
        &r.stderr,
        "--step 9: out of range; the scenario has 5 steps (0-4); admit steps: 0, 2, 3, 4",
    );
    assert!(r.stdout.is_empty());

    let missing = d.path().join("nope.yaml");
    let r = nmm(&["explain", s(&missing)]);
    assert_eq!(r.code, 2);
    has(
        &r.stderr,
        &format!("{}: cannot read the file", missing.display()),
    );

    let bad = write(
        d.path(),
        "bad.yaml",
        &RESTRICTED.replace(
            "memory: 10Gi}}}]}}\n  - admit: {metadata: {name: small",
            "memory: lots}}}]}}\n  - admit: {metadata: {name: small",
        ),
    );
    let r = nmm(&["explain", s(&bad)]);
    assert_eq!(r.code, 2);
    has(&r.stderr, &format!("{}: steps[2].admit", bad.display()));
    has(&r.stderr, "quantities look like 2, 500m, 4Gi");

    let dup = write(
        d.path(),
        "dup.yaml",
        &RESTRICTED.replace("uid: uid-small}", "uid: uid-wide}"),
    );
    let r = nmm(&["explain", s(&dup), "--step", "3"]);
    assert_eq!(r.code, 2);
    has(
        &r.stderr,
        &format!("{}: steps[3].admit.metadata.uid", dup.display()),
    );

    let none = write(
        d.path(),
        "none.yaml",
        &RESTRICTED[..RESTRICTED.find("steps:").unwrap()],
    );
    let r = nmm(&["explain", s(&none)]);
    assert_eq!(r.code, 2);
    has(
        &r.stderr,
        "steps: the scenario admits no pod, so there is nothing to explain",
    );
}

#[test]
fn explain_help_has_an_example() {
    let r = nmm(&["explain", "--help"]);
    assert_eq!(r.code, 0);
    has(&r.stdout, "Examples:");
    has(&r.stdout, "nmm explain scenario.yaml --step 3");
    has(&r.stdout, "--step <N>");
    has(&r.stdout, "[possible values: table, wide, json, yaml]");
}

fn shared_example(name: &str) -> Option<PathBuf> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/conformance/examples")
        .join(name);
    if p.exists() {
        Some(p)
    } else {
        eprintln!("skipped: {} is absent", p.display());
        None
    }
}

#[test]
fn explain_conformance_example_02() {
    let Some(f) = shared_example("02-single-numa-node-reject-then-fit.yaml") else {
        return;
    };
    // Step 0: 150Gi fits on no NUMA node even when empty.
    let r = nmm(&["explain", s(&f)]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    has(
        &r.stdout,
        "step 0: pod big (uid uid-big, Guaranteed): REJECTED (TopologyAffinityError)",
    );
    has(&r.stdout, "│ memory   ┆ memory   ┆ {0,1} preferred");
    has(&r.stdout, "merged hint: any — single-numa-node keeps only preferred single-node hints, which leaves memory with none; no merge can be preferred, so the result is any node, not preferred");
    has(&r.stdout, "  - memory: needs 150Gi on one NUMA node; no NUMA node can hold that even when empty (the largest allocatable is 123.9Gi on node 1); single-numa-node forbids spanning nodes\n");
    has(&r.stdout, "  - it does not fit even on an empty node with this machine and configuration\n  - lower its memory request to at most 123.8Gi so that one NUMA node can hold it\n");
    has(&r.stdout, "  - under best-effort it would be admitted (c: NUMA {0,1}, memory 150Gi on nodes 0 and 1)\n");

    // Step 3: the issue's example — 100Gi, node 1 has 23.9Gi free, fits after removing a.
    let r = nmm(&["explain", s(&f), "--step", "3"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    has(&r.stdout, "  - memory: needs 100Gi on one NUMA node; the largest free single node has 23.9Gi (node 1); single-numa-node forbids spanning nodes\n");
    has(&r.stdout, "  - it fits after removing pod a (frees memory 100Gi on node 0); removing pod b instead also works\n");
    has(
        &r.stdout,
        "│ 0    ┆ 122.7Gi     ┆ 22.7Gi ┆ 1           ┆ {0}   │",
    );

    // Step 5: after the removal, c2 is admitted on node 0.
    let j = json(&["explain", s(&f), "--step", "5", "-o", "json"]);
    assert_eq!(j["admitted"], true);
    assert_eq!(
        j["decisions"][0]["whyMerged"],
        "the only preferred mask every provider accepts is {0}"
    );
    assert_eq!(
        j["containers"][0]["memory"][0]["numaNodes"],
        serde_json::json!([0])
    );

    let r = nmm(&["explain", s(&f), "--step", "4"]);
    assert_eq!(r.code, 2);
    has(&r.stderr, "--step 4: steps[4] removes pod uid \"uid-a\"; only admissions can be explained; admit steps: 0, 1, 2, 3, 5, 6");
}

#[test]
fn explain_conformance_pod_scope_example() {
    let Some(f) = shared_example("04-pod-scope-restricted-closest-numa.yaml") else {
        return;
    };
    let r = nmm(&["explain", s(&f)]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    has(
        &r.stdout,
        "step 2: pod p3 (uid uid-p3, Guaranteed): REJECTED (TopologyAffinityError)",
    );
    has(&r.stdout, "Pod-scope hints for pod p3");
    has(&r.stdout, "  - memory: no hint is preferred: a single NUMA node is big enough for 2Gi, but none can take it alone (nodes 0 and 2 belong to the group {0,2} and nodes 1 and 3 belong to the group {1,3})\n");
    has(&r.stdout, "  - it fits after removing pod p1 (frees memory 20Gi on nodes 0 and 2, 12 exclusive CPUs (2-7,16-21)); removing pod p2 instead also works\n");
}
