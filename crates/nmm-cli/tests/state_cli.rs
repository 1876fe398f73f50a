//! `nmm state show` and `nmm state verify` run as processes on checkpoint files the way
//! kubelets write them: the golden files of the reference (V1, V2, V3), the final
//! checkpoints of every conformance scenario (kubelet v1.32 output), and the restart
//! scenarios, some of which the kubelet refuses. Checks what the commands print and their
//! exit status (0 fine, 1 corrupt or mismatch, 2 usage or I/O error).
//!
//! Tests that need `../shared` skip with a message when it is absent.

use nmm_core::checkpoint;
use nmm_core::memorymanager::state::{
    Assignments, Block, MachineState, MemoryTable, NumaNodeState,
};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("not JSON ({e}):\n{}\n{}", self.stdout, self.stderr))
    }
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

fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let f = dir.join(name);
    std::fs::write(&f, text).unwrap();
    f
}

fn shared() -> Option<PathBuf> {
    let d = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared");
    d.join("conformance").is_dir().then_some(d)
}

macro_rules! need_shared {
    () => {
        match shared() {
            Some(d) => d,
            None => {
                eprintln!("skipping: ../shared (conformance scenarios, fixtures) is absent");
                return;
            }
        }
    };
}

/// The reference's golden V3 file (memory-manager.md §3.7, Go output): two NUMA nodes,
/// one container with 1Gi memory and 1Gi hugepages on node 0.
const GOLDEN_V3: &str = r##"{"policyName":"Static","machineState":{"0":{"numberOfAssignments":2,"memoryMap":{"hugepages-1Gi":{"total":5368709120,"systemReserved":0,"allocatable":5368709120,"reserved":1073741824,"free":4294967296},"memory":{"total":10737418240,"systemReserved":1073741824,"allocatable":4294967296,"reserved":1073741824,"free":3221225472}},"cells":[0]},"1":{"numberOfAssignments":0,"memoryMap":{"hugepages-1Gi":{"total":5368709120,"systemReserved":0,"allocatable":5368709120,"reserved":0,"free":5368709120},"memory":{"total":10737418240,"systemReserved":1073741824,"allocatable":4294967296,"reserved":0,"free":4294967296}},"cells":[1]}},"entries":{"fakePod1":{"fakeContainer1":[{"numaAffinity":[0],"type":"memory","size":1073741824},{"numaAffinity":[0],"type":"hugepages-1Gi","size":1073741824}]}},"checksum":2256908568,"data":"{\"policyName\":\"Static\",\"machineState\":{\"0\":{\"numberOfAssignments\":2,\"memoryMap\":{\"hugepages-1Gi\":{\"total\":5368709120,\"systemReserved\":0,\"allocatable\":5368709120,\"reserved\":1073741824,\"free\":4294967296},\"memory\":{\"total\":10737418240,\"systemReserved\":1073741824,\"allocatable\":4294967296,\"reserved\":1073741824,\"free\":3221225472}},\"cells\":[0]},\"1\":{\"numberOfAssignments\":0,\"memoryMap\":{\"hugepages-1Gi\":{\"total\":5368709120,\"systemReserved\":0,\"allocatable\":5368709120,\"reserved\":0,\"free\":5368709120},\"memory\":{\"total\":10737418240,\"systemReserved\":1073741824,\"allocatable\":4294967296,\"reserved\":0,\"free\":4294967296}},\"cells\":[1]}},\"entries\":{\"fakePod1\":{\"fakeContainer1\":[{\"numaAffinity\":[0],\"type\":\"memory\",\"size\":1073741824},{\"numaAffinity\":[0],\"type\":\"hugepages-1Gi\",\"size\":1073741824}]}}}","dataChecksum":2266547677}"##;

/// The V1 file of the same state: the V3 text up to the legacy checksum (§3.7).
fn golden_v1() -> String {
    let end = GOLDEN_V3.find(",\"data\"").unwrap();
    format!("{}}}", &GOLDEN_V3[..end])
}

/// The upstream V2 vector (§3.3): one node, one container, plus its pod-level entry.
const GOLDEN_V2: &str = r#"{"policyName":"static","machineState":{"0":{"numberOfAssignments":0,"memoryMap":{"memory":{"total":2048,"systemReserved":512,"allocatable":1536,"reserved":512,"free":1024}},"cells":[]}},"entries":{"pod":{"container1":[{"numaAffinity":[0],"type":"memory","size":512}]}},"podEntries":{"pod":{"memoryBlocks":[{"numaAffinity":[0],"type":"memory","size":512}]}},"checksum":1278640530}"#;

const GI: u64 = 1 << 30;

/// A three-node state with a NUMA group {0,1} holding a 20Gi two-node allocation, written
/// with the kubelet's encoder.
fn grouped_state() -> String {
    let table = |total: u64, sr: u64, reserved: u64| MemoryTable {
        total,
        system_reserved: sr,
        allocatable: total - sr,
        reserved,
        free: total - sr - reserved,
    };
    let mut ms = MachineState::new();
    for (id, reserved, cells) in [
        (0u32, 15 * GI, vec![0, 1]),
        (1, 5 * GI, vec![0, 1]),
        (2, 2 * GI, vec![2]),
    ] {
        let mut map = BTreeMap::new();
        map.insert("memory".to_string(), table(16 * GI, GI, reserved));
        ms.insert(
            id,
            NumaNodeState {
                number_of_assignments: 1,
                memory_map: map,
                cells,
            },
        );
    }
    let mut a = Assignments::new();
    a.get_or_default("uid-big").insert(
        "db".into(),
        vec![Block {
            numa_affinity: vec![0, 1],
            kind: "memory".into(),
            size: 20 * GI,
        }],
    );
    a.get_or_default("uid-small").insert(
        "web".into(),
        vec![Block {
            numa_affinity: vec![2],
            kind: "memory".into(),
            size: 2 * GI,
        }],
    );
    checkpoint::memory::encode("Static", &ms, &a)
}

fn cpu_state(default: &str, entries: &[(&str, &str, &str)]) -> String {
    let mut e: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    for (pod, ctr, set) in entries {
        e.entry(pod.to_string())
            .or_default()
            .insert(ctr.to_string(), set.to_string());
    }
    checkpoint::cpu::encode_raw("static", default, &e)
}

#[test]
fn help_shows_examples() {
    for sub in ["show", "verify"] {
        let r = nmm(&["state", sub, "--help"]);
        assert_eq!(r.code, 0, "{}", r.stderr);
        assert!(r.stdout.contains("Examples:"), "{}", r.stdout);
        assert!(
            r.stdout
                .contains(&format!("nmm state {sub} /var/lib/kubelet/")),
            "{}",
            r.stdout
        );
        assert!(r.stdout.contains("-o, --output"), "{}", r.stdout);
        assert!(r.stdout.contains("Exit status"), "{}", r.stdout);
    }
    let r = nmm(&["state", "verify", "--help"]);
    assert!(r.stdout.contains("--sysfs-root") && r.stdout.contains("--config"));
    let r = nmm(&["state", "show", "--help"]);
    assert!(r.stdout.contains("--svg"));
}

#[test]
fn show_memory_table_has_nodes_groups_and_blocks() {
    let dir = tempfile::tempdir().unwrap();
    let f = write(dir.path(), "memory_manager_state", &grouped_state());
    let r = nmm(&["state", "show", p(&f)]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let out = &r.stdout;
    assert!(!out.contains('\x1b'), "colour on a pipe:\n{out}");
    assert!(out.contains("format V1"), "{out}");
    assert!(out.contains("policy Static"), "{out}");
    assert!(out.contains("kubelet v1.32 reads it: yes"), "{out}");
    for h in [
        "NODE",
        "GROUP",
        "TOTAL",
        "SYSTEM RESERVED",
        "ALLOCATABLE",
        "RESERVED",
        "FREE",
    ] {
        assert!(out.contains(h), "missing column {h}:\n{out}");
    }
    // The group {0,1}: 32Gi total, 2Gi reserved by the system, 20Gi reserved, 10Gi free.
    let group_line = out
        .lines()
        .find(|l| l.contains("{0,1}") && l.contains("32Gi"))
        .unwrap_or_else(|| panic!("no group sum row:\n{out}"));
    for v in ["2Gi", "30Gi", "20Gi", "10Gi"] {
        assert!(group_line.contains(v), "{v} not in {group_line:?}");
    }
    let all = out.lines().find(|l| l.contains("all nodes")).unwrap();
    assert!(
        all.contains("48Gi") && all.contains("22Gi") && all.contains("23Gi"),
        "{all}"
    );
    // Blocks of every pod and container.
    let db = out.lines().find(|l| l.contains("uid-big")).unwrap();
    assert!(
        db.contains("db") && db.contains("20Gi") && db.contains("{0,1}"),
        "{db}"
    );
    let web = out.lines().find(|l| l.contains("uid-small")).unwrap();
    assert!(
        web.contains("web") && web.contains("2Gi") && web.contains("{2}"),
        "{web}"
    );
    assert!(r.stderr.is_empty(), "{}", r.stderr);
}

#[test]
fn show_memory_json_and_yaml() {
    let dir = tempfile::tempdir().unwrap();
    let f = write(dir.path(), "memory_manager_state", &grouped_state());
    let r = nmm(&["state", "show", p(&f), "-o", "json"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let v = r.json();
    assert_eq!(v["kind"], "memory_manager_state");
    assert_eq!(v["format"], "V1");
    assert_eq!(v["policyName"], "Static");
    assert_eq!(v["kubeletV132"]["reads"], true);
    assert_eq!(v["numaNodes"].as_array().unwrap().len(), 3);
    assert_eq!(v["numaNodes"][1]["cells"], serde_json::json!([0, 1]));
    assert_eq!(v["numaNodes"][0]["memory"]["memory"]["reserved"], 15 * GI);
    let groups = v["groups"].as_array().unwrap();
    assert_eq!(groups.len(), 2);
    assert_eq!(groups[0]["nodes"], serde_json::json!([0, 1]));
    let g = &groups[0]["memory"]["memory"];
    assert_eq!(g["total"], 32 * GI);
    assert_eq!(g["systemReserved"], 2 * GI);
    assert_eq!(g["allocatable"], 30 * GI);
    assert_eq!(g["reserved"], 20 * GI);
    assert_eq!(g["free"], 10 * GI);
    assert_eq!(v["totals"]["memory"]["free"], 23 * GI);
    let pods = v["pods"].as_array().unwrap();
    assert_eq!(pods[0]["uid"], "uid-big");
    assert_eq!(
        pods[0]["containers"][0]["blocks"][0],
        serde_json::json!({"type": "memory", "size": 20 * GI, "numaAffinity": [0, 1]})
    );
    assert_eq!(v["warnings"], serde_json::json!([]));

    let y = nmm(&["state", "show", p(&f), "-o", "yaml"]);
    assert_eq!(y.code, 0, "{}", y.stderr);
    let from_yaml: Value = serde_saphyr::from_str(&y.stdout).unwrap();
    assert_eq!(from_yaml, v, "YAML and JSON differ:\n{}", y.stdout);
}

#[test]
fn show_and_verify_v1_v2_v3_formats() {
    let dir = tempfile::tempdir().unwrap();
    let v3 = write(dir.path(), "v3", GOLDEN_V3);
    let v1 = write(dir.path(), "v1", &golden_v1());
    let v2 = write(dir.path(), "v2", GOLDEN_V2);

    let r = nmm(&["state", "show", p(&v3), "-o", "json"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let j = r.json();
    assert_eq!(j["format"], "V3");
    assert_eq!(j["checksum"], 2256908568u64);
    assert_eq!(j["dataChecksum"], 2266547677u64);
    assert_eq!(j["kubeletV132"]["reads"], true);
    let blocks = &j["pods"][0]["containers"][0]["blocks"];
    assert_eq!(j["pods"][0]["uid"], "fakePod1");
    assert_eq!(blocks.as_array().unwrap().len(), 2);
    assert_eq!(j["numaNodes"][0]["memory"]["hugepages-1Gi"]["free"], 4 * GI);

    let r = nmm(&["state", "show", p(&v3)]);
    assert!(r.stdout.contains("format V3"), "{}", r.stdout);
    assert!(r.stdout.contains("dataChecksum 2266547677"), "{}", r.stdout);
    assert!(r.stdout.contains("fakeContainer1"), "{}", r.stdout);

    // V1 and V3 show the same content.
    let r1 = nmm(&["state", "show", p(&v1), "-o", "json"]).json();
    assert_eq!(r1["format"], "V1");
    assert_eq!(r1["numaNodes"], j["numaNodes"]);
    assert_eq!(r1["pods"], j["pods"]);

    let r = nmm(&["state", "verify", p(&v3)]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stdout.contains("checksum 2256908568 matches"),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout.contains("dataChecksum 2266547677 matches data"),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout.contains("restart validation: skipped"),
        "{}",
        r.stdout
    );
    assert!(r.stdout.trim_end().ends_with("OK"), "{}", r.stdout);
    assert_eq!(nmm(&["state", "verify", p(&v1)]).code, 0);

    // V2: shown with its pod-level blocks; kubelet v1.32 refuses it.
    let r = nmm(&["state", "show", p(&v2), "-o", "json"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let j = r.json();
    assert_eq!(j["format"], "V2");
    assert_eq!(j["kubeletV132"]["reads"], false);
    assert_eq!(j["kubeletV132"]["error"], "checkpoint is corrupted");
    assert_eq!(
        j["pods"][0]["podBlocks"],
        serde_json::json!([{"type": "memory", "size": 512, "numaAffinity": [0]}])
    );
    let r = nmm(&["state", "show", p(&v2)]);
    assert!(r.stdout.contains("(pod-level)"), "{}", r.stdout);
    assert!(
        r.stdout.contains("kubelet v1.32 reads it: no"),
        "{}",
        r.stdout
    );
    let r = nmm(&["state", "verify", p(&v2), "-o", "json"]);
    assert_eq!(r.code, 1);
    let j = r.json();
    assert_eq!(j["result"], "mismatch");
    assert_eq!(j["format"], "V2");
    let msgs = j["checksum"]["messages"].to_string();
    assert!(
        msgs.contains("V2 checksum") && msgs.contains("podEntries"),
        "{msgs}"
    );
    let advice = j["advice"].to_string();
    assert!(advice.contains("drain the node"), "{advice}");
}

#[test]
fn corrupt_files_are_reported_never_repaired() {
    let dir = tempfile::tempdir().unwrap();
    let v1 = golden_v1();
    // One byte of content changed, checksum kept.
    let edited = v1.replacen("\"free\":3221225472", "\"free\":3221225473", 1);
    let f = write(dir.path(), "memory_manager_state", &edited);
    let r = nmm(&["state", "show", p(&f)]);
    assert_eq!(r.code, 1, "{}", r.stdout);
    assert!(r.stdout.is_empty(), "{}", r.stdout);
    assert!(r.stderr.contains(p(&f)), "{}", r.stderr);
    assert!(r.stderr.contains("field checksum"), "{}", r.stderr);
    assert!(
        r.stderr
            .contains("stored checksum 2256908568 does not match the content"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("content hashes to"), "{}", r.stderr);
    assert!(r.stderr.contains("drain the node"), "{}", r.stderr);
    let r = nmm(&["state", "verify", p(&f), "-o", "json"]);
    assert_eq!(r.code, 1);
    let j = r.json();
    assert_eq!(j["result"], "corrupt");
    assert_eq!(j["checksum"]["ok"], false);
    assert_eq!(j["checksum"]["stored"], 2256908568u64);
    // Never repaired: the file is as it was.
    assert_eq!(std::fs::read_to_string(&f).unwrap(), edited);

    // Truncated: Go's own error text.
    let t = write(dir.path(), "memory_manager_state.trunc", &v1[..120]);
    let r = nmm(&["state", "verify", p(&t)]);
    assert_eq!(r.code, 1);
    assert!(
        r.stdout.contains("unexpected end of JSON input"),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("CORRUPT"), "{}", r.stdout);

    // A V3 file whose data was changed: v1.32 reads its legacy fields, newer kubelets refuse.
    let bad = GOLDEN_V3.replacen(
        "\\\"reserved\\\":1073741824,\\\"free\\\":3221225472",
        "\\\"reserved\\\":1073741824,\\\"free\\\":3221225473",
        1,
    );
    assert_ne!(bad, GOLDEN_V3);
    let f3 = write(dir.path(), "v3-bad", &bad);
    let r = nmm(&["state", "show", p(&f3)]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("data/dataChecksum"), "{}", r.stderr);
    let r = nmm(&["state", "verify", p(&f3), "-o", "json"]);
    assert_eq!(r.code, 1);
    assert_eq!(r.json()["result"], "corrupt");
    assert!(r.json()["checksum"]["messages"]
        .to_string()
        .contains("kubelet v1.32 reads the file"));

    // A stored checksum of 0: newer kubelets accept it, v1.32 does not.
    let zero = write(
        dir.path(),
        "zero",
        &v1.replace("\"checksum\":2256908568", "\"checksum\":0"),
    );
    assert_eq!(nmm(&["state", "show", p(&zero)]).code, 0);
    let r = nmm(&["state", "verify", p(&zero)]);
    assert_eq!(r.code, 1);
    assert!(r.stdout.contains("checksum 0"), "{}", r.stdout);

    // Valid JSON of another kind, and a file that is not JSON with an unhelpful name.
    let other = write(dir.path(), "other.json", r#"{"hello":1}"#);
    let r = nmm(&["state", "show", p(&other)]);
    assert_eq!(r.code, 2);
    assert!(
        r.stderr.contains("neither a `machineState` key"),
        "{}",
        r.stderr
    );
    // Not named like a checkpoint and not JSON: not a checkpoint at all (exit 2), and no
    // drain-and-delete advice for it.
    let junk = write(dir.path(), "junk", "not json");
    let r = nmm(&["state", "verify", p(&junk)]);
    assert_eq!(r.code, 2);
    assert!(
        r.stderr.contains("not a kubelet checkpoint: not JSON"),
        "{}",
        r.stderr
    );
    assert!(!r.stderr.contains("drain"), "{}", r.stderr);
}

#[test]
fn show_and_verify_cpu_manager_state() {
    let dir = tempfile::tempdir().unwrap();
    let text = cpu_state(
        "0,5-7",
        &[
            ("uid-a", "app", "1-2"),
            ("uid-a", "side", "3"),
            ("uid-b", "x", "4"),
        ],
    );
    let f = write(dir.path(), "cpu_manager_state", &text);
    let r = nmm(&["state", "show", p(&f)]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.contains("cpu_manager_state"), "{}", r.stdout);
    assert!(
        r.stdout.contains("Default (shared) CPU set: 0,5-7 (4 CPUs"),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout.contains("CPUs in the state: 0-7 (8 CPUs)"),
        "{}",
        r.stdout
    );
    let a = r.stdout.lines().find(|l| l.contains("uid-a")).unwrap();
    assert!(
        a.contains("app") && a.contains("1-2") && a.contains(" 2 "),
        "{a}"
    );
    let j = nmm(&["state", "show", p(&f), "-o", "json"]).json();
    assert_eq!(j["kind"], "cpu_manager_state");
    assert_eq!(j["defaultCpuSet"], "0,5-7");
    assert_eq!(j["defaultCpuCount"], 4);
    assert_eq!(j["containers"].as_array().unwrap().len(), 3);
    assert_eq!(
        j["containers"][1],
        serde_json::json!({"pod": "uid-a", "container": "side", "cpus": "3", "count": 1})
    );
    let y = nmm(&["state", "show", p(&f), "-o", "yaml"]);
    let from_yaml: Value = serde_saphyr::from_str(&y.stdout).unwrap();
    assert_eq!(from_yaml, j);
    assert_eq!(nmm(&["state", "verify", p(&f)]).code, 0);

    // Content changed after writing.
    let edited = text.replace("\"0,5-7\"", "\"0,5-6\"");
    let e = write(dir.path(), "cpu_manager_state.edited", &edited);
    let r = nmm(&["state", "verify", p(&e)]);
    assert_eq!(r.code, 1);
    assert!(
        r.stdout.contains("does not match the content"),
        "{}",
        r.stdout
    );
    let r = nmm(&["state", "show", p(&e)]);
    assert_eq!(r.code, 1);
    assert!(r.stdout.is_empty());

    // A checksum that matches but a CPU list the kubelet cannot parse.
    let bad = write(dir.path(), "cpu_manager_state.bad", &cpu_state("0-x", &[]));
    let r = nmm(&["state", "verify", p(&bad)]);
    assert_eq!(r.code, 1);
    assert!(r.stdout.contains("field defaultCpuSet"), "{}", r.stdout);
    assert!(r.stdout.contains("\"0-x\""), "{}", r.stdout);
}

#[test]
fn svg_picture() {
    let dir = tempfile::tempdir().unwrap();
    let f = write(dir.path(), "memory_manager_state", &grouped_state());
    let out = dir.path().join("numa.svg");
    let r = nmm(&["state", "show", p(&f), "--svg", p(&out)]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stdout.contains("NUMA nodes"),
        "the table is still printed"
    );
    assert!(r.stderr.contains("wrote"), "{}", r.stderr);
    let svg = std::fs::read_to_string(&out).unwrap();
    assert!(svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""));
    assert!(svg.trim_end().ends_with("</svg>"));
    for n in [
        "NUMA 0",
        "NUMA 1",
        "NUMA 2",
        "group {0,1}",
        "reserved by pods",
        "free",
    ] {
        assert!(svg.contains(n), "{n} missing from the SVG");
    }
    assert!(
        svg.contains("reserved 20Gi \u{b7} free 10Gi of 30Gi"),
        "group sum"
    );
    // `--svg -`: the picture on stdout, nothing else.
    let r = nmm(&["state", "show", p(&f), "--svg", "-"]);
    assert_eq!(r.code, 0);
    assert!(r.stdout.starts_with("<svg "));
    assert_eq!(r.stdout.matches("</svg>").count(), 1);
    // Only the memory manager's state has a picture.
    let c = write(dir.path(), "cpu_manager_state", &cpu_state("0-3", &[]));
    let r = nmm(&["state", "show", p(&c), "--svg", p(&out)]);
    assert_eq!(r.code, 2);
    assert!(
        r.stderr.contains("--svg draws memory_manager_state"),
        "{}",
        r.stderr
    );
}

#[test]
fn colour_only_when_a_terminal_or_asked() {
    let dir = tempfile::tempdir().unwrap();
    let f = write(dir.path(), "memory_manager_state", &grouped_state());
    assert!(!nmm(&["state", "show", p(&f)]).stdout.contains('\x1b'));
    assert!(!nmm(&["state", "verify", p(&f)]).stdout.contains('\x1b'));
    assert!(nmm(&["state", "show", p(&f), "--color", "always"])
        .stdout
        .contains("\x1b["));
    assert!(nmm(&["state", "verify", p(&f), "--color", "always"])
        .stdout
        .contains("\x1b[32mok"));
    let j = nmm(&["state", "show", p(&f), "-o", "json", "--color", "always"]);
    assert!(!j.stdout.contains('\x1b'));
}

#[test]
fn usage_errors_name_the_file_and_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("memory_manager_state");
    let r = nmm(&["state", "show", p(&missing)]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains(p(&missing)), "{}", r.stderr);
    assert!(r.stderr.contains("/var/lib/kubelet"), "{}", r.stderr);

    let f = write(dir.path(), "memory_manager_state", &golden_v1());
    let cfg = write(dir.path(), "config.yaml", "memoryManagerPolicy: Static\n");
    let r = nmm(&["state", "verify", p(&f), "--config", p(&cfg)]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("--sysfs-root"), "{}", r.stderr);

    let machine = write(
        dir.path(),
        "machine.yaml",
        "machine:\n  numaNodes:\n  - {id: 0, cpus: 0-3, memory: 16Gi}\n",
    );
    let r = nmm(&["state", "verify", p(&f), "--machine", p(&machine)]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("--config"), "{}", r.stderr);

    let bad_machine = write(dir.path(), "bad.yaml", "machine:\n  numaNodes: []\n");
    let r = nmm(&[
        "state",
        "verify",
        p(&f),
        "--machine",
        p(&bad_machine),
        "--config",
        p(&cfg),
    ]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("machine.numaNodes"), "{}", r.stderr);

    // A config the kubelet rejects on its own is reported as the config's problem.
    let bad_cfg = write(
        dir.path(),
        "bad-config.yaml",
        "memoryManagerPolicy: Static\n",
    );
    let r = nmm(&[
        "state",
        "verify",
        p(&f),
        "--machine",
        p(&machine),
        "--config",
        p(&bad_cfg),
    ]);
    assert_eq!(r.code, 2);
    assert!(
        r.stderr.contains("even without checkpoints"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("bad-config.yaml"), "{}", r.stderr);
    assert!(r.stderr.contains("Node Allocatable"), "{}", r.stderr);
}

/// A KubeletConfiguration file (the kind the kubelet reads with --config).
const KUBELET_CONFIG: &str = "\
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
memoryManagerPolicy: Static
cpuManagerPolicy: static
kubeReserved: {memory: 1Gi, cpu: '1'}
evictionHard: {memory.available: 100Mi}
reservedMemory:
- numaNode: 0
  limits: {memory: 1124Mi}
";

#[test]
fn verify_against_sysfs_and_a_kubelet_config() {
    use nmm_core::node::{Node, StartOptions};
    use nmm_sysfs::fake::{FakeNode, FakeSysfs};
    let dir = tempfile::tempdir().unwrap();
    let machine_yaml =
        "numaNodes:\n- {id: 0, cpus: 0-3, memory: 16Gi}\n- {id: 1, cpus: 4-7, memory: 16Gi}\n";
    let mv: Value = serde_saphyr::from_str(machine_yaml).unwrap();
    let machine = nmm_scenario::scenario::parse_machine(&mv, Path::new("machine")).unwrap();
    let root = dir.path().join("root");
    FakeSysfs::from_machine(&machine).write_to(&root).unwrap();
    let cfg = write(dir.path(), "config.yaml", KUBELET_CONFIG);
    let config = nmm_scenario::scenario::parse_kubelet(
        Some(&serde_saphyr::from_str::<Value>(KUBELET_CONFIG).unwrap()),
        Path::new("config.yaml"),
    )
    .unwrap();
    // The checkpoints a freshly started kubelet writes on this machine.
    let node = Node::start(
        machine.clone(),
        config,
        StartOptions {
            state_dir: "/var/lib/kubelet".into(),
            ..Default::default()
        },
    )
    .unwrap();
    let mem = write(
        dir.path(),
        "memory_manager_state",
        &node.memory_checkpoint(),
    );
    let cpu = write(dir.path(), "cpu_manager_state", &node.cpu_checkpoint());
    for f in [&mem, &cpu] {
        let r = nmm(&[
            "state",
            "verify",
            p(f),
            "--sysfs-root",
            p(&root),
            "--config",
            p(&cfg),
        ]);
        assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
        assert!(r.stdout.contains("restart validation: ok"), "{}", r.stdout);
        assert!(r.stdout.contains("sysfs under"), "{}", r.stdout);
    }

    // Reserved memory moved to node 1: the state was written with 1124Mi on node 0.
    let moved = write(
        dir.path(),
        "moved.yaml",
        &KUBELET_CONFIG.replace("numaNode: 0", "numaNode: 1"),
    );
    let r = nmm(&[
        "state",
        "verify",
        p(&mem),
        "--sysfs-root",
        p(&root),
        "--config",
        p(&moved),
        "-o",
        "json",
    ]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    let j = r.json();
    assert_eq!(j["result"], "mismatch");
    assert_eq!(j["restartValidation"]["stage"], "memoryManager");
    assert_eq!(
        j["restartValidation"]["kubeletError"],
        "[memorymanager] the expected machine state is different from the real one"
    );
    let diffs = j["differences"].to_string();
    assert!(
        diffs.contains("NUMA node 0: memory systemReserved is 1178599424 bytes (1.1Gi) in the state, 0 bytes expected"),
        "{diffs}"
    );
    let advice = j["advice"].to_string();
    assert!(
        advice.contains("- numaNode: 0\\n  limits: {memory: 1124Mi}"),
        "{advice}"
    );

    // Node 1 reports 32Ki less memory after a firmware update.
    let root2 = dir.path().join("root2");
    let mut fake = FakeSysfs::new();
    for n in &machine.nodes {
        let cpus: Vec<(u32, u32, u32)> = n.cpus.iter().map(|c| (c, c, 0)).collect();
        let kb = n.memory / 1024 - if n.id == 1 { 32 } else { 0 };
        fake = fake.node(FakeNode::new(n.id).cpus(cpus).mem_total_kb(kb));
    }
    fake.write_to(&root2).unwrap();
    let r = nmm(&[
        "state",
        "verify",
        p(&mem),
        "--sysfs-root",
        p(&root2),
        "--config",
        p(&cfg),
    ]);
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stdout.contains("NUMA node 1: memory total"),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("(-32Ki)"), "{}", r.stdout);
    assert!(r.stdout.contains("#131253"), "{}", r.stdout);

    // A CPU taken offline.
    let root3 = dir.path().join("root3");
    FakeSysfs::from_machine(&machine)
        .offline([7])
        .write_to(&root3)
        .unwrap();
    let r = nmm(&[
        "state",
        "verify",
        p(&cpu),
        "--sysfs-root",
        p(&root3),
        "--config",
        p(&cfg),
    ]);
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stdout
            .contains("CPU 7 is in the file but not available on the machine"),
        "{}",
        r.stdout
    );
}

/// Every checkpoint line of the conformance outputs, as (scenario, kind, compact JSON).
fn conformance_checkpoints(shared: &Path) -> Vec<(PathBuf, &'static str, String)> {
    let mut out = Vec::new();
    let mut dirs = vec![shared.join("conformance")];
    let mut files = Vec::new();
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let f = e.unwrap().path();
            if f.is_dir() {
                dirs.push(f);
            } else if f.to_string_lossy().ends_with(".expected.jsonl") {
                files.push(f);
            }
        }
    }
    files.sort();
    for f in files {
        let scenario = PathBuf::from(f.to_string_lossy().replace(".expected.jsonl", ".yaml"));
        for line in std::fs::read_to_string(&f).unwrap().lines() {
            let Ok(v) = serde_json::from_str::<Value>(line) else {
                continue;
            };
            if let Some(m) = v.get("memory_manager_state_canonical") {
                out.push((scenario.clone(), "memory_manager_state", m.to_string()));
            }
            if let Some(c) = v.get("cpu_manager_state") {
                out.push((scenario.clone(), "cpu_manager_state", c.to_string()));
            }
        }
    }
    out
}

#[test]
fn every_conformance_checkpoint_shows_and_verifies() {
    let shared = need_shared!();
    let cps = conformance_checkpoints(&shared);
    assert!(cps.len() > 100, "only {} checkpoints found", cps.len());
    let dir = tempfile::tempdir().unwrap();
    let mut failures = Vec::new();
    for (i, (scenario, kind, text)) in cps.iter().enumerate() {
        let sub = dir.path().join(i.to_string());
        std::fs::create_dir(&sub).unwrap();
        let f = write(&sub, kind, text);
        let name = format!("{} ({kind})", scenario.display());
        let r = nmm(&["state", "show", p(&f), "-o", "json"]);
        if r.code != 0 {
            failures.push(format!("{name}: show exit {}: {}", r.code, r.stderr));
            continue;
        }
        let j = r.json();
        if j["kind"] != *kind {
            failures.push(format!("{name}: detected as {}", j["kind"]));
        }
        let input: Value = serde_json::from_str(text).unwrap();
        if *kind == "memory_manager_state" {
            let ms = input["machineState"].as_object().unwrap();
            if j["numaNodes"].as_array().unwrap().len() != ms.len() {
                failures.push(format!("{name}: node count"));
            }
            // Group sums are the sums of the members' tables.
            for g in j["groups"].as_array().unwrap() {
                for (kind, sums) in g["memory"].as_object().unwrap() {
                    for field in ["total", "reserved", "free"] {
                        let want: u64 = g["nodes"]
                            .as_array()
                            .unwrap()
                            .iter()
                            .map(|n| {
                                ms[&n.to_string()]["memoryMap"][kind][field]
                                    .as_u64()
                                    .unwrap_or(0)
                            })
                            .sum();
                        if sums[field].as_u64() != Some(want) {
                            failures.push(format!("{name}: group {} {kind} {field}", g["nodes"]));
                        }
                    }
                }
            }
            let entries = input["entries"].as_object().map_or(0, |e| e.len());
            if j["pods"].as_array().unwrap().len() != entries {
                failures.push(format!("{name}: pod count"));
            }
        } else {
            let entries: usize = input["entries"].as_object().map_or(0, |e| {
                e.values().map(|c| c.as_object().unwrap().len()).sum()
            });
            if j["containers"].as_array().unwrap().len() != entries {
                failures.push(format!("{name}: container count"));
            }
        }
        // Kubelet-written: the checksum verifies, and the kubelet that wrote it restarts
        // with it on the same machine and config.
        let r = nmm(&[
            "state",
            "verify",
            p(&f),
            "--machine",
            p(scenario),
            "-o",
            "json",
        ]);
        if r.code != 0 {
            failures.push(format!(
                "{name}: verify exit {}: {}{}",
                r.code, r.stdout, r.stderr
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The `# restart variant: ...` comment of a restart scenario.
fn variant(text: &str) -> String {
    text.lines()
        .find_map(|l| l.strip_prefix("# restart variant: "))
        .unwrap_or("")
        .to_string()
}

#[test]
fn restart_scenarios_verify_like_the_kubelet() {
    let shared = need_shared!();
    let dir_in = shared.join("conformance/restart");
    let mut scenarios: Vec<PathBuf> = std::fs::read_dir(&dir_in)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|f| f.extension().is_some_and(|x| x == "yaml"))
        .collect();
    scenarios.sort();
    assert!(!scenarios.is_empty());
    let tmp = tempfile::tempdir().unwrap();
    let mut failures = Vec::new();
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for scenario in &scenarios {
        let name = scenario.file_stem().unwrap().to_string_lossy().to_string();
        let text = std::fs::read_to_string(scenario).unwrap();
        let variant = variant(&text);
        let v = nmm_scenario::scenario::read_yaml_file(scenario).unwrap();
        let first: Value = serde_json::from_str(
            std::fs::read_to_string(scenario.with_extension("expected.jsonl"))
                .unwrap()
                .lines()
                .next()
                .unwrap(),
        )
        .unwrap();
        let stage = first["stage"].as_str();
        let sub = tmp.path().join(&name);
        std::fs::create_dir(&sub).unwrap();
        for (key, file, this_stage) in [
            ("memoryManager", "memory_manager_state", "memoryManager"),
            ("cpuManager", "cpu_manager_state", "cpuManager"),
        ] {
            let Some(state) = v.get("state").and_then(|s| s.get(key)) else {
                continue;
            };
            if !state.is_object() {
                continue;
            }
            // As the kubelet writes it: compact JSON.
            let f = write(&sub, file, &serde_json::to_string(state).unwrap());
            let r = nmm(&[
                "state",
                "verify",
                p(&f),
                "--machine",
                p(scenario),
                "-o",
                "json",
            ]);
            let label = format!("{name} [{variant}] {file}");
            let j = match serde_json::from_str::<Value>(&r.stdout) {
                Ok(j) => j,
                Err(_) => {
                    failures.push(format!("{label}: exit {} {}", r.code, r.stderr));
                    continue;
                }
            };
            // The scenario as --config brings its machine too: same verdict.
            let alt = nmm(&["state", "verify", p(&f), "--config", p(scenario)]);
            if alt.code != r.code {
                failures.push(format!(
                    "{label}: exit {} with --machine, {} with --config",
                    r.code, alt.code
                ));
            }
            let refused = stage == Some(this_stage);
            if refused != (r.code == 1) {
                failures.push(format!(
                    "{label}: kubelet stage {stage:?}, nmm exit {}: {}",
                    r.code, r.stdout
                ));
                continue;
            }
            if refused {
                // nmm's restart names the file it read; the kubelet's, /var/lib/kubelet.
                let got = j["restartValidation"]["kubeletError"]
                    .as_str()
                    .unwrap_or("")
                    .replace(p(&sub), "/var/lib/kubelet");
                if got != first["startupError"].as_str().unwrap() {
                    failures.push(format!(
                        "{label}: kubelet said {:?}, nmm {got:?}",
                        first["startupError"]
                    ));
                }
                if !j["advice"].to_string().contains("drain the node") {
                    failures.push(format!("{label}: no drain advice"));
                }
                let kind = variant.split(':').next().unwrap_or("").to_string();
                *seen.entry(kind.clone()).or_default() += 1;
                let text = j.to_string();
                let want: &[&str] = match kind.as_str() {
                    "reserved-memory-moved" => &["systemReserved", "reservedMemory:", "numaNode"],
                    "node-memory-changed" => &["memory total", "#131253"],
                    "policy-changed" => {
                        &["differs from state checkpoint policy", "again to restart"]
                    }
                    "machine-state-emptied" => &["empty machineState"],
                    "v136-podentries" => &["podEntries", "\"result\":\"mismatch\""],
                    "checksum-corrupted" => {
                        &["\"result\":\"corrupt\"", "does not match the content"]
                    }
                    "cpu-reserved-changed" => &["now reserves", "shared set"],
                    "cpus-offlined" => &["not available on the machine", "online"],
                    _ => &[],
                };
                for w in want {
                    if !text.contains(w) {
                        failures.push(format!("{label}: {w:?} missing from {text}"));
                    }
                }
            } else if j["result"] != "ok" {
                failures.push(format!("{label}: result {}", j["result"]));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // The refusals exercised more than one kind of change.
    assert!(seen.len() >= 5, "refusal kinds seen: {seen:?}");
}

#[test]
fn verify_against_a_real_sysfs_snapshot() {
    let shared = need_shared!();
    let archive = shared.join("fixtures/sysfs/sample1.tar.xz");
    let dir = tempfile::tempdir().unwrap();
    let ok = Command::new("tar")
        .args(["-xJf", p(&archive), "-C", p(dir.path())])
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        eprintln!("skipping: cannot extract {} with tar", archive.display());
        return;
    }
    let root = dir.path().join("sample1");
    // The file kubelet v1.32 writes for memory manager policy None.
    let f = write(
        dir.path(),
        "memory_manager_state",
        r#"{"policyName":"None","machineState":{},"checksum":4236770233}"#,
    );
    let none = write(dir.path(), "none.yaml", "kind: KubeletConfiguration\n");
    let r = nmm(&[
        "state",
        "verify",
        p(&f),
        "--sysfs-root",
        p(&root),
        "--config",
        p(&none),
    ]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let r = nmm(&["state", "show", p(&f)]);
    assert!(
        r.stdout.contains("None policy keeps no memory state"),
        "{}",
        r.stdout
    );
    // Switching to Static with this file in place: the kubelet refuses.
    let cfg = write(dir.path(), "static.yaml", KUBELET_CONFIG);
    let r = nmm(&[
        "state",
        "verify",
        p(&f),
        "--sysfs-root",
        p(&root),
        "--config",
        p(&cfg),
    ]);
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stdout.contains("Set memoryManagerPolicy: None again"),
        "{}",
        r.stdout
    );
}
