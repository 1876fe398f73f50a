//! The live node in one command (`nmm explain --pod`, `nmm simulate --node --pod`) on the
//! real binary: a real sysfs snapshot (`../shared/fixtures/sysfs`, 2 sockets, 4 NUMA
//! nodes, 80 CPUs) with a `proc/meminfo` beside it, a kubelet config, and checkpoints that
//! `nmm simulate --state-dir` wrote for a scenario whose machine is `nmm node -o yaml` of
//! the same snapshot. Skipped, with a message, when ../shared or `tar` is absent.

#[path = "support/cli.rs"]
mod cli;

use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

const ARCHIVE: &str = "2socket-4node-40core.tar.bz2";
const MACHINE: &str = "sysfs/2-socket-4-node-40-core";

/// Static CPU and memory managers under single-numa-node; reserved memory on node 0.
const KUBELET: &str = "\
cpuManagerPolicy: static
memoryManagerPolicy: Static
topologyManagerPolicy: single-numa-node
kubeReserved: {cpu: \"2\", memory: 1Gi}
evictionHard: {memory.available: 100Mi}
reservedMemory:
  - {numaNode: 0, limits: {memory: 1124Mi}}
";

/// Three databases fill nodes 1-3 (8 CPUs, 40Gi each); cache (redis + exporter, 5 CPUs,
/// 21Gi) goes to node 0, which then has 13 free exclusive CPUs.
const STEPS: &str = "\
steps:
  - admit: {metadata: {name: db-0, uid: 6f1d2c3a-db-0}, spec: {containers: [{name: postgres, resources: {limits: {cpu: \"8\", memory: 40Gi}}}]}}
  - admit: {metadata: {name: db-1, uid: 8a7b9c0d-db-1}, spec: {containers: [{name: postgres, resources: {limits: {cpu: \"8\", memory: 40Gi}}}]}}
  - admit: {metadata: {name: db-2, uid: 2e4f6a8b-db-2}, spec: {containers: [{name: postgres, resources: {limits: {cpu: \"8\", memory: 40Gi}}}]}}
  - admit: {metadata: {name: cache, uid: 9c1e3d5f-cache}, spec: {containers: [{name: redis, resources: {limits: {cpu: \"4\", memory: 20Gi}}}, {name: exporter, resources: {limits: {cpu: \"1\", memory: 1Gi}}}]}}
";

const CACHE_UID: &str = "9c1e3d5f-cache";

/// 16 exclusive CPUs on one NUMA node: no node has that many free.
const BIG: &str = "\
apiVersion: v1
kind: Pod
metadata:
  name: analytics
  namespace: default
  uid: 3b6e1f0a-analytics
spec:
  containers:
    - name: spark
      image: spark:3.5
      resources:
        limits: {cpu: \"16\", memory: 8Gi}
status:
  phase: Failed
  reason: TopologyAffinityError
  message: 'Pod was rejected: Resources cannot be allocated with Topology locality'
";

const SMALL: &str = "\
apiVersion: v1
kind: Pod
metadata: {name: small, uid: 0d1e2f3a-small}
spec:
  containers:
    - name: app
      resources:
        limits: {cpu: \"2\", memory: 2Gi}
";

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

fn nmm(args: &[&str]) -> Run {
    let o = cli::nmm_command()
        .args(args)
        .env("NO_COLOR", "1")
        // Content, not layout (output_cli.rs checks the 80-column fit).
        .output()
        .expect("run nmm");
    Run {
        code: o.status.code().unwrap_or(-1),
        stdout: String::from_utf8(o.stdout).expect("utf-8 stdout"),
        stderr: String::from_utf8(o.stderr).expect("utf-8 stderr"),
    }
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

#[track_caller]
fn has(out: &str, needle: &str) {
    assert!(out.contains(needle), "missing {needle:?} in:\n{out}");
}

/// A node snapshot: sysfs root (with proc/meminfo), kubelet config, kubelet root dir.
struct Node {
    _dir: tempfile::TempDir,
    dir: PathBuf,
    root: PathBuf,
    config: PathBuf,
    state: PathBuf,
}

impl Node {
    /// `nmm explain --pod POD` (or any command) with this node's flags appended.
    fn args<'a>(&'a self, head: &[&'a str]) -> Vec<&'a str> {
        let mut v = head.to_vec();
        v.extend([
            "--sysfs-root",
            s(&self.root),
            "--config",
            s(&self.config),
            "--state-dir",
            s(&self.state),
        ]);
        v
    }
}

/// Extracts the fixture, writes the config and the checkpoints (`nmm simulate
/// --state-dir`); `None` (after printing why) when the fixtures are absent.
fn node() -> Option<Node> {
    let archive = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/fixtures/sysfs")
        .join(ARCHIVE);
    if !archive.is_file() {
        eprintln!(
            "SKIP: {} not found (the shared sysfs fixtures are not next to this workspace)",
            archive.display()
        );
        return None;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_path_buf();
    let ok = Command::new("tar")
        .arg("-xf")
        .arg(&archive)
        .arg("-C")
        .arg(&dir)
        .arg("--wildcards")
        .arg(format!("{MACHINE}/sys/devices/system/node/*"))
        .arg(format!("{MACHINE}/sys/devices/system/cpu/online"))
        .arg(format!("{MACHINE}/sys/devices/system/cpu/cpu*/topology/*"))
        .status()
        .is_ok_and(|st| st.success());
    if !ok {
        eprintln!("SKIP: cannot extract {} with tar", archive.display());
        return None;
    }
    let root = dir.join(MACHINE);
    std::fs::create_dir_all(root.join("proc")).unwrap();
    // cadvisor's capacity: less than the NUMA nodes' sum, as on real machines.
    write(
        &root.join("proc"),
        "meminfo",
        "MemTotal:       196000000 kB\nMemFree:        1000 kB\n",
    );
    let m = nmm(&["node", "--sysfs-root", s(&root), "-o", "yaml"]);
    assert_eq!(m.code, 0, "{}", m.stderr);
    // `nmm node` reads MemTotal beside sys/ into the machine block.
    assert!(
        m.stdout.contains("\n  memoryCapacity: 196000000Ki\n"),
        "{}",
        m.stdout
    );
    let indented: String = KUBELET.lines().map(|l| format!("  {l}\n")).collect();
    let history = write(
        &dir,
        "history.yaml",
        &format!("{}kubelet:\n{indented}{STEPS}", m.stdout),
    );
    let state = dir.join("kubelet");
    std::fs::create_dir(&state).unwrap();
    let r = nmm(&[
        "simulate",
        s(&history),
        "--state-dir",
        s(&state),
        "-o",
        "json",
    ]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert_eq!(
        r.stdout.matches("\"admitted\":true").count(),
        4,
        "{}",
        r.stdout
    );
    let config = write(
        &dir,
        "config.yaml",
        &format!(
            "apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\n{KUBELET}"
        ),
    );
    Some(Node {
        _dir: tmp,
        dir,
        root,
        config,
        state,
    })
}

macro_rules! need_node {
    () => {
        match node() {
            Some(n) => n,
            None => return,
        }
    };
}

fn json(out: &str) -> Value {
    serde_json::from_str(out).unwrap_or_else(|e| panic!("{e}: {out}"))
}

#[test]
fn a_pod_that_fits_is_admitted_with_its_placement() {
    let n = need_node!();
    let pod = write(&n.dir, "small.yaml", SMALL);
    let r = nmm(&n.args(&["explain", "--pod", s(&pod)]));
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    has(&r.stdout, "read from the node:");
    has(&r.stdout, "proc/meminfo: MemTotal 186.9Gi");
    has(
        &r.stdout,
        "4 pods holding exclusive CPUs or pinned memory in the checkpoints",
    );
    has(
        &r.stdout,
        &format!(
            "{} on this node: pod small (uid 0d1e2f3a-small, Guaranteed): ADMITTED",
            pod.display()
        ),
    );
    // Node 0 is the only one with 2Gi free memory left.
    has(&r.stdout, "memory 2Gi on NUMA {0}");
    let r = nmm(&n.args(&["explain", "--pod", s(&pod), "-o", "json"]));
    assert_eq!(r.code, 0, "{}", r.stderr);
    let v = json(&r.stdout);
    assert_eq!(v["admitted"], true);
    assert_eq!(v["podFile"], s(&pod));
    assert_eq!(v["snapshot"]["memoryCapacity"], 196000000u64 * 1024);
    assert_eq!(
        v["snapshot"]["holders"][CACHE_UID],
        serde_json::json!(["exporter", "redis"])
    );
    assert_eq!(
        v["containers"][0]["memory"][0]["numaNodes"],
        serde_json::json!([0])
    );
}

#[test]
fn a_rejected_pod_is_told_which_checkpoint_pod_to_remove() {
    let n = need_node!();
    let pod = write(&n.dir, "pod.yaml", BIG);
    let r = nmm(&n.args(&["explain", "--pod", s(&pod)]));
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    has(
        &r.stdout,
        "pod analytics (uid 3b6e1f0a-analytics, Guaranteed): REJECTED (TopologyAffinityError)",
    );
    has(
        &r.stdout,
        "needs 16 exclusive CPUs on one NUMA node; the most free on a single node is 13 (node 0)",
    );
    // The kubelet's earlier answer, from the file's status, next to nmm's.
    has(
        &r.stdout,
        "(the kubelet's earlier answer): Failed, TopologyAffinityError: Pod was rejected: Resources cannot be allocated with Topology locality",
    );
    // The smallest holder, named as the checkpoints name it: uid and containers.
    has(
        &r.stdout,
        &format!("it fits after removing pod with uid {CACHE_UID} (containers exporter and redis) (frees memory 21Gi on node 0, 5 exclusive CPUs"),
    );
    has(&r.stdout, "pod with uid 6f1d2c3a-db-0 (container postgres)");
    let r = nmm(&n.args(&["explain", "--pod", s(&pod), "-o", "json"]));
    let v = json(&r.stdout);
    assert_eq!(v["admitted"], false);
    assert_eq!(v["reason"], "TopologyAffinityError");
    assert_eq!(
        v["recordedStatus"],
        "Failed, TopologyAffinityError: Pod was rejected: Resources cannot be allocated with Topology locality"
    );
    let first = &v["alternatives"]["singleRemovals"][0];
    assert_eq!(first["uid"], CACHE_UID);
    assert_eq!(
        first["containers"],
        serde_json::json!(["exporter", "redis"])
    );
    assert!(first.get("name").is_none(), "{first}");

    // The fix holds: the same history with cache removed admits the pod.
    let m = nmm(&["node", "--sysfs-root", s(&n.root), "-o", "yaml"]);
    let indented: String = KUBELET.lines().map(|l| format!("  {l}\n")).collect();
    let big: String = BIG.lines().map(|l| format!("      {l}\n")).collect();
    let check = write(
        &n.dir,
        "check.yaml",
        &format!(
            "{}kubelet:\n{indented}{STEPS}  - remove: {{uid: {CACHE_UID}}}\n  - admit:\n{big}",
            m.stdout
        ),
    );
    let r = nmm(&["simulate", s(&check), "-o", "json"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let last = r.stdout.lines().last().unwrap();
    has(last, "\"name\":\"analytics\"");
    has(last, "\"admitted\":true");
}

#[test]
fn simulate_node_admits_several_pods_in_order_on_the_live_books() {
    let n = need_node!();
    let small = write(&n.dir, "small.yaml", SMALL);
    let big = write(&n.dir, "big.yaml", BIG);
    let r = nmm(&n.args(&[
        "simulate",
        "--node",
        "--pod",
        s(&small),
        "--pod",
        s(&big),
        "-o",
        "json",
    ]));
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let lines: Vec<Value> = r.stdout.lines().map(json).collect();
    assert_eq!(lines.len(), 2, "{}", r.stdout);
    assert_eq!(lines[0]["uid"], "0d1e2f3a-small");
    assert_eq!(lines[0]["admitted"], true);
    assert_eq!(lines[1]["uid"], "3b6e1f0a-analytics");
    assert_eq!(lines[1]["reason"], "TopologyAffinityError");
    // --fail-on-reject works the same as for scenarios.
    let r = nmm(&n.args(&[
        "simulate",
        "--node",
        "--pod",
        s(&big),
        "--fail-on-reject",
        "-o",
        "json",
    ]));
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
}

#[test]
fn a_pod_field_typo_is_refused_naming_file_and_field() {
    let n = need_node!();
    let bad = write(&n.dir, "bad.yaml", &BIG.replace("resources:", "resource:"));
    for head in [
        vec!["explain", "--pod", s(&bad)],
        vec!["simulate", "--node", "--pod", s(&bad)],
    ] {
        let r = nmm(&n.args(&head));
        assert_eq!(r.code, 2, "{}{}", r.stdout, r.stderr);
        has(
            &r.stderr,
            &format!(
                "{}: spec.containers[0].resource: unknown field",
                bad.display()
            ),
        );
        has(&r.stderr, "did you mean `resources`?");
        assert!(r.stdout.is_empty(), "{}", r.stdout);
    }
}

#[test]
fn missing_or_foreign_inputs_name_the_file_and_what_to_pass() {
    let n = need_node!();
    let pod = write(&n.dir, "pod.yaml", BIG);
    let missing = n.dir.join("no-such-dir");
    let r = nmm(&[
        "explain",
        "--pod",
        s(&pod),
        "--sysfs-root",
        s(&n.root),
        "--config",
        s(&n.config),
        "--state-dir",
        s(&missing),
    ]);
    assert_eq!(r.code, 2, "{}{}", r.stdout, r.stderr);
    has(
        &r.stderr,
        &format!("{}: cannot open the directory", missing.display()),
    );
    has(
        &r.stderr,
        "kubelet's root directory (its --root-dir, usually /var/lib/kubelet)",
    );

    // A directory without the checkpoints.
    let empty = n.dir.join("empty");
    std::fs::create_dir(&empty).unwrap();
    let r = nmm(&[
        "explain",
        "--pod",
        s(&pod),
        "--sysfs-root",
        s(&n.root),
        "--config",
        s(&n.config),
        "--state-dir",
        s(&empty),
    ]);
    assert_eq!(r.code, 2);
    has(
        &r.stderr,
        &format!(
            "{}: not found; the kubelet writes memory_manager_state",
            empty.join("memory_manager_state").display()
        ),
    );

    // A pod manifest where a checkpoint should be.
    std::fs::copy(
        n.state.join("cpu_manager_state"),
        empty.join("cpu_manager_state"),
    )
    .unwrap();
    write(&empty, "memory_manager_state", BIG);
    let r = nmm(&[
        "explain",
        "--pod",
        s(&pod),
        "--sysfs-root",
        s(&n.root),
        "--config",
        s(&n.config),
        "--state-dir",
        s(&empty),
    ]);
    assert_eq!(r.code, 2);
    has(
        &r.stderr,
        "memory_manager_state: not a kubelet checkpoint: a Kubernetes manifest",
    );

    // No config, no sysfs.
    let sysfs_parent = n.dir.join("sysfs");
    let r = nmm(&[
        "explain",
        "--pod",
        s(&pod),
        "--sysfs-root",
        s(&n.root),
        "--config",
        s(&n.dir.join("nope.yaml")),
        "--state-dir",
        s(&n.state),
    ]);
    assert_eq!(r.code, 2);
    has(
        &r.stderr,
        "nope.yaml: not found; pass the kubelet's config file with --config",
    );
    let r = nmm(&[
        "explain",
        "--pod",
        s(&pod),
        "--sysfs-root",
        s(&sysfs_parent),
        "--config",
        s(&n.config),
        "--state-dir",
        s(&n.state),
    ]);
    assert_eq!(r.code, 2);
    has(&r.stderr, "reading the machine from sysfs");
    has(
        &r.stderr,
        &format!("{}: no devices/system directory", sysfs_parent.display()),
    );
    has(&r.stderr, "sysfs roots found inside it");
}

#[test]
fn checkpoints_that_fail_restart_validation_are_not_explained_against() {
    let n = need_node!();
    let pod = write(&n.dir, "pod.yaml", BIG);
    // The reservation moved to node 1 since the kubelet wrote its books.
    let moved = write(
        &n.dir,
        "moved.yaml",
        &std::fs::read_to_string(&n.config)
            .unwrap()
            .replace("numaNode: 0,", "numaNode: 1,"),
    );
    let args = [
        "explain",
        "--pod",
        s(&pod),
        "--sysfs-root",
        s(&n.root),
        "--config",
        s(&moved),
        "--state-dir",
        s(&n.state),
    ];
    let r = nmm(&args);
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
    has(
        &r.stdout,
        "the kubelet would refuse to start with the checkpoints in",
    );
    has(
        &r.stdout,
        "[memorymanager] the expected machine state is different from the real one",
    );
    has(&r.stdout, "nmm state verify");
    assert!(
        !r.stdout.contains("REJECTED") && !r.stdout.contains("ADMITTED"),
        "{}",
        r.stdout
    );
    let mut j = args.to_vec();
    j.extend(["-o", "json"]);
    let v = json(&nmm(&j).stdout);
    assert_eq!(v["cause"], "checkpoints");
    assert_eq!(v["stage"], "memoryManager");
    let r = nmm(&[
        "simulate",
        "--node",
        "--pod",
        s(&pod),
        "--sysfs-root",
        s(&n.root),
        "--config",
        s(&moved),
        "--state-dir",
        s(&n.state),
    ]);
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
    has(
        &r.stdout,
        "the kubelet would refuse to start with the checkpoints in",
    );
}

/// Every file under `dir` with its bytes.
fn tree(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                out.insert(p.clone(), Vec::new());
                todo.push(p);
            } else {
                out.insert(p.clone(), std::fs::read(&p).unwrap());
            }
        }
    }
    out
}

#[test]
fn the_state_dir_is_left_byte_identical() {
    let n = need_node!();
    // A device checkpoint too, so that every file the command reads is watched.
    let dp = n.state.join("device-plugins");
    std::fs::create_dir(&dp).unwrap();
    let devices = write(
        &n.dir,
        "devices.yaml",
        "machine:\n  devices:\n    - {resource: example.com/nic, id: nic-0, numa: [0]}\n",
    );
    let before = tree(&n.state);
    let pod = write(&n.dir, "pod.yaml", BIG);
    let small = write(&n.dir, "small.yaml", SMALL);
    for head in [
        vec!["explain", "--pod", s(&pod)],
        vec!["explain", "--pod", s(&small), "-o", "json"],
        vec!["explain", "--pod", s(&pod), "--devices", s(&devices)],
        vec!["simulate", "--node", "--pod", s(&small), "--pod", s(&pod)],
    ] {
        let r = nmm(&n.args(&head));
        assert_eq!(r.code, 0, "{head:?}: {}{}", r.stdout, r.stderr);
    }
    assert_eq!(tree(&n.state), before, "the kubelet's directory changed");
}

#[test]
fn the_scenario_form_and_the_pod_form_do_not_mix() {
    let n = need_node!();
    let pod = write(&n.dir, "pod.yaml", BIG);
    let scenario = n.dir.join("history.yaml");
    for args in [
        vec!["explain", s(&scenario), "--pod", s(&pod)],
        vec!["explain", s(&scenario), "--state-dir", s(&n.state)],
        vec!["explain", "--pod", s(&pod), "--step", "1"],
        vec!["simulate", s(&scenario), "--pod", s(&pod)],
        vec!["simulate", "--node"],
    ] {
        let r = nmm(&args);
        assert_eq!(r.code, 2, "{args:?}: {}{}", r.stdout, r.stderr);
        assert!(
            r.stderr.contains("cannot be used with") || r.stderr.contains("required"),
            "{args:?}: {}",
            r.stderr
        );
    }
    // The scenario form is unchanged.
    let r = nmm(&["explain", s(&scenario), "--step", "3"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    has(
        &r.stdout,
        "step 3: pod cache (uid 9c1e3d5f-cache, Guaranteed): ADMITTED",
    );
}
