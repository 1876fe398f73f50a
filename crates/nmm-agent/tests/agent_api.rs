//! The agent's event API, restart, restart validation, reconcile and cgroup enforcement.

use nmm_agent::agent::AgentError;
use nmm_agent::cgroup::CgroupError;
use nmm_agent::testkit::{self, pod};
use nmm_agent::{Agent, AgentOptions};
use nmm_core::cpuset::CpuSet;
use serde_json::json;
use std::path::{Path, PathBuf};

fn opts(dir: &Path) -> AgentOptions {
    AgentOptions {
        machine: testkit::machine(),
        kubelet: testkit::kubelet_config(),
        state_dir: dir.to_path_buf(),
        reconcile: None,
        cgroup_root: None,
        devices: Default::default(),
    }
}

const UID_A: &str = "aaaaaaaa-0000-4000-8000-000000000001";
const UID_B: &str = "bbbbbbbb-0000-4000-8000-000000000002";
const UID_C: &str = "cccccccc-0000-4000-8000-000000000003";

#[test]
fn admit_start_containers_remove_and_restart() {
    let d = tempfile::tempdir().unwrap();
    let (agent, report) = Agent::start(opts(d.path())).unwrap();
    assert!(
        report.wrote_state,
        "a fresh state dir gets its checkpoints at once"
    );
    assert!(d.path().join("memory_manager_state").exists());

    // Guaranteed, 2 exclusive CPUs, 1Gi + 128Mi hugepages: one NUMA node.
    let a = pod(UID_A, "web", &[("app", "2", "1Gi", Some("128Mi"))], &[]);
    let r = agent.admit_pod(&a).unwrap();
    assert!(r.admitted, "{r:?}");
    let set = agent.container_started(UID_A, "app").unwrap();
    assert!(set.exclusive);
    assert_eq!(set.cpus.as_ref().unwrap().len(), 2);
    assert_eq!(set.mems, Some(vec![0]));
    assert_eq!(set.mems_text().unwrap(), "0");

    // BestEffort: the shared pool, no memory blocks.
    let b = pod(UID_B, "batch", &[("work", "", "", None)], &[]);
    assert!(agent.admit_pod(&b).unwrap().admitted);
    let shared = agent.container_started(UID_B, "work").unwrap();
    assert!(!shared.exclusive);
    assert_eq!(shared.mems, None);
    let pool = shared.cpus.unwrap();
    assert_eq!(pool.len(), 14, "16 CPUs less the 2 exclusive ones: {pool}");
    assert!(pool.intersection(set.cpus.as_ref().unwrap()).is_empty());

    assert!(matches!(
        agent.container_started(UID_A, "nope"),
        Err(AgentError::UnknownContainer { .. })
    ));
    assert!(matches!(
        agent.container_started("no-such-uid", "app"),
        Err(AgentError::UnknownPod(_))
    ));

    let books = agent.books();
    assert_eq!(books.pods, vec![UID_A.to_string(), UID_B.to_string()]);
    drop(agent);

    // Restart: same books, the BestEffort pod (absent from both checkpoints) included.
    let (agent, report) = Agent::start(opts(d.path())).unwrap();
    assert_eq!(report.restored_pods, 2);
    assert!(!report.wrote_state, "nothing changed");
    assert_eq!(agent.books(), books);
    assert_eq!(agent.container_started(UID_A, "app").unwrap(), set);

    let rm = agent.remove_pod(UID_A).unwrap();
    assert!(rm.removed);
    assert!(!agent.remove_pod(UID_A).unwrap().removed);
    let pool = agent
        .container_started(UID_B, "work")
        .unwrap()
        .cpus
        .unwrap();
    assert_eq!(pool.len(), 16);
    // The freed memory is back.
    let m = nmm_core::checkpoint::memory::decode_v132(agent.books().memory_checkpoint.as_bytes())
        .unwrap();
    assert!(!m.entries.contains_key(UID_A));
    assert!(m
        .machine_state
        .values()
        .all(|n| n.memory_map.values().all(|t| t.reserved == 0)));
}

#[test]
fn malformed_and_duplicate_pods_are_refused_without_harm() {
    let d = tempfile::tempdir().unwrap();
    let (agent, _) = Agent::start(opts(d.path())).unwrap();
    let before = agent.books();

    let mut bad: k8s_openapi::api::core::v1::Pod = serde_json::from_value(json!({
        "metadata": {"name": "bad", "namespace": "default", "uid": UID_C},
        "spec": {"containers": [{"name": "c", "resources": {"limits": {"cpu": "two", "memory": "1Gi"}}}]}
    }))
    .unwrap();
    let e = agent.admit_pod(&bad).unwrap_err();
    assert!(matches!(e, AgentError::MalformedPod { .. }), "{e}");
    assert!(e.to_string().contains("resources.limits.cpu"), "{e}");

    // Absurd sizes parse but cannot fit: a rejection, not a crash.
    bad = serde_json::from_value(json!({
        "metadata": {"name": "huge", "namespace": "default", "uid": UID_C},
        "spec": {"containers": [{"name": "c", "resources": {"limits": {"cpu": "100000", "memory": "900Ei"}}}]}
    }))
    .unwrap();
    let r = agent.admit_pod(&bad);
    assert!(r.as_ref().map(|r| !r.admitted).unwrap_or(true), "{r:?}");

    // No uid, no spec, no containers.
    let no_uid = pod("", "nouid", &[("c", "1", "1Gi", None)], &[]);
    assert!(matches!(
        agent.admit_pod(&no_uid),
        Err(AgentError::Step(nmm_core::node::StepError::MissingUid(_)))
    ));
    let no_spec: k8s_openapi::api::core::v1::Pod =
        serde_json::from_value(json!({"metadata": {"name": "x", "uid": "u-nospec"}})).unwrap();
    let r = agent.admit_pod(&no_spec).unwrap();
    assert!(
        r.admitted,
        "an empty pod is BestEffort with nothing to allocate"
    );
    agent.remove_pod("u-nospec").unwrap();

    // Duplicate uid.
    let ok = pod(UID_A, "ok", &[("c", "1", "256Mi", None)], &[]);
    assert!(agent.admit_pod(&ok).unwrap().admitted);
    assert!(matches!(
        agent.admit_pod(&ok),
        Err(AgentError::Step(nmm_core::node::StepError::DuplicateUid(_)))
    ));
    agent.remove_pod(UID_A).unwrap();
    assert_eq!(agent.books().memory_checkpoint, before.memory_checkpoint);
    assert_eq!(agent.books().cpu_checkpoint, before.cpu_checkpoint);

    let text = agent.metrics.encode();
    assert!(
        text.contains("nmm_admission_errors_total{reason=\"MalformedPod\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("nmm_admission_errors_total{reason=\"MissingUid\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("nmm_admission_errors_total{reason=\"DuplicateUid\"} 1"),
        "{text}"
    );
}

#[test]
fn restart_validation_mismatch_refuses_then_reconcile_rebuilds() {
    let d = tempfile::tempdir().unwrap();
    {
        let (agent, _) = Agent::start(opts(d.path())).unwrap();
        for (uid, name, cpu, mem) in [
            (UID_A, "a", "2", "2Gi"),
            (UID_B, "b", "1", "1Gi"),
            (UID_C, "c", "", ""),
        ] {
            let p = pod(uid, name, &[("main", cpu, mem, None)], &[]);
            assert!(agent.admit_pod(&p).unwrap().admitted);
        }
    }
    // The admin moves reserved memory from node 1 to node 0: the memory checkpoint's
    // machine state no longer matches.
    let mut o = opts(d.path());
    o.kubelet = serde_json::from_value({
        let mut v = serde_json::to_value(testkit::kubelet_config()).unwrap();
        v["reservedMemory"] = json!([
            {"numaNode": 0, "limits": {"memory": "700Mi"}},
            {"numaNode": 1, "limits": {"memory": "400Mi"}}
        ]);
        v
    })
    .unwrap();
    let e = Agent::start(o.clone()).unwrap_err();
    let text = e.to_string();
    assert_eq!(
        text,
        "the kubelet would refuse to start: memoryManager: [memorymanager] the expected machine state is different from the real one"
    );
    // Nothing was touched.
    assert!(Agent::start(opts(d.path())).is_ok());

    o.reconcile = Some(Agent::recorded_pods(d.path()).unwrap());
    assert_eq!(o.reconcile.as_ref().unwrap().len(), 3);
    let (agent, report) = Agent::start(o.clone()).unwrap();
    let rec = report.reconciled.expect("reconciled");
    assert!(
        rec.cause.contains("machine state is different"),
        "{}",
        rec.cause
    );
    assert_eq!(rec.admitted, vec!["default/a", "default/b", "default/c"]);
    assert!(rec.rejected.is_empty());
    assert!(report.wrote_state);
    let books = agent.books();
    assert_eq!(books.pods.len(), 3);
    let m = nmm_core::checkpoint::memory::decode_v132(books.memory_checkpoint.as_bytes()).unwrap();
    assert_eq!(
        m.machine_state[&0].memory_map["memory"].system_reserved,
        700 << 20
    );
    drop(agent);
    // The rebuilt books pass restart validation with the new config.
    let (agent, report) = Agent::start(AgentOptions {
        reconcile: None,
        ..o
    })
    .unwrap();
    assert!(report.reconciled.is_none());
    assert_eq!(agent.books(), books);
}

#[test]
fn a_deleted_checkpoint_readmits_the_recorded_pods() {
    let d = tempfile::tempdir().unwrap();
    let books = {
        let (agent, _) = Agent::start(opts(d.path())).unwrap();
        for (uid, name, cpu, mem) in [(UID_A, "a", "2", "2Gi"), (UID_B, "b", "", "")] {
            let p = pod(uid, name, &[("main", cpu, mem, None)], &[]);
            assert!(agent.admit_pod(&p).unwrap().admitted);
        }
        agent.books()
    };
    std::fs::remove_file(d.path().join("memory_manager_state")).unwrap();
    let (agent, report) = Agent::start(opts(d.path())).unwrap();
    let rec = report.reconciled.expect("re-admitted");
    assert!(
        rec.cause.starts_with("memory_manager_state missing in"),
        "{}",
        rec.cause
    );
    assert_eq!(rec.admitted, vec!["default/a", "default/b"]);
    // The CPU checkpoint kept pod a's CPUs; the memory is allocated again, as before.
    assert_eq!(agent.books(), books);
}

#[test]
fn a_broken_checkpoint_is_reported_with_the_kubelets_words() {
    let d = tempfile::tempdir().unwrap();
    drop(Agent::start(opts(d.path())).unwrap());
    let p = d.path().join("cpu_manager_state");
    let mut text = std::fs::read_to_string(&p).unwrap();
    text = text.replace("\"checksum\":", "\"checksum\":1");
    std::fs::write(&p, text).unwrap();
    let e = Agent::start(opts(d.path())).unwrap_err().to_string();
    assert!(
        e.contains("cpuManager: could not restore state from checkpoint")
            && e.contains("delete the CPU manager checkpoint file"),
        "{e}"
    );
}

fn cgroupfs(root: &Path, cg: &str) -> PathBuf {
    let d = root.join(cg);
    std::fs::create_dir_all(&d).unwrap();
    std::fs::write(d.join("cpuset.cpus"), "").unwrap();
    std::fs::write(d.join("cpuset.mems"), "").unwrap();
    d
}

#[test]
fn cgroup_enforcement_writes_cpusets_and_follows_the_shared_pool() {
    let d = tempfile::tempdir().unwrap();
    let cg = tempfile::tempdir().unwrap();
    let mut o = opts(&d.path().join("state"));
    o.cgroup_root = Some(cg.path().to_path_buf());
    let (agent, _) = Agent::start(o).unwrap();

    let be = pod(UID_B, "be", &[("work", "", "", None)], &[]);
    agent.admit_pod(&be).unwrap();
    let be_cg = "kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-podbbbbbbbb.slice/cri-containerd-1.scope";
    let be_dir = cgroupfs(cg.path(), be_cg);
    agent
        .container_started_in(UID_B, "work", Path::new(be_cg))
        .unwrap();
    assert_eq!(
        std::fs::read_to_string(be_dir.join("cpuset.cpus")).unwrap(),
        "0-15\n"
    );
    assert_eq!(
        std::fs::read_to_string(be_dir.join("cpuset.mems")).unwrap(),
        "",
        "no blocks: left alone"
    );

    // Guaranteed pod spanning... one node: 3 CPUs, 2Gi.
    let g = pod(UID_A, "g", &[("app", "3", "2Gi", Some("64Mi"))], &[]);
    assert!(agent.admit_pod(&g).unwrap().admitted);
    let g_cg = "/kubepods.slice/kubepods-podaaaaaaaa.slice/cri-containerd-2.scope";
    let g_dir = cgroupfs(cg.path(), g_cg.trim_start_matches('/'));
    let set = agent
        .container_started_in(UID_A, "app", Path::new(g_cg))
        .unwrap();
    let cpus = set.cpus.clone().unwrap();
    assert_eq!(
        std::fs::read_to_string(g_dir.join("cpuset.cpus")).unwrap(),
        format!("{cpus}\n")
    );
    assert_eq!(
        std::fs::read_to_string(g_dir.join("cpuset.mems")).unwrap(),
        "0\n"
    );
    // The shared container lost those CPUs at once (the kubelet's reconcile loop).
    let pool = CpuSet::from_ids(0..16).difference(&cpus);
    assert_eq!(
        std::fs::read_to_string(be_dir.join("cpuset.cpus")).unwrap(),
        format!("{pool}\n")
    );
    agent.remove_pod(UID_A).unwrap();
    assert_eq!(
        std::fs::read_to_string(be_dir.join("cpuset.cpus")).unwrap(),
        "0-15\n"
    );
    assert_eq!(agent.enforced_cgroups().len(), 1);

    // No cpuset controller in that cgroup; a path leaving the root.
    std::fs::create_dir_all(cg.path().join("nocpuset")).unwrap();
    let c = pod(UID_C, "c", &[("x", "1", "256Mi", None)], &[]);
    agent.admit_pod(&c).unwrap();
    let e = agent
        .container_started_in(UID_C, "x", Path::new("nocpuset"))
        .unwrap_err();
    assert!(
        matches!(e, AgentError::Cgroup(CgroupError::NoCpuset { .. })),
        "{e}"
    );
    assert!(e.to_string().contains("cgroup.subtree_control"), "{e}");
    let e = agent
        .container_started_in(UID_C, "x", Path::new("../../etc"))
        .unwrap_err();
    assert!(
        matches!(e, AgentError::Cgroup(CgroupError::BadPath(_))),
        "{e}"
    );
    assert!(agent
        .metrics
        .encode()
        .contains("nmm_cgroup_write_errors_total 2"));
}

#[test]
fn init_and_sidecar_containers() {
    let d = tempfile::tempdir().unwrap();
    let (agent, _) = Agent::start(opts(d.path())).unwrap();
    let mut p = pod(
        UID_A,
        "with-init",
        &[("app", "2", "1Gi", None)],
        &[("init", "1", "512Mi", None), ("side", "1", "256Mi", None)],
    );
    // `side` is a sidecar (restartPolicy: Always).
    p.spec.as_mut().unwrap().init_containers.as_mut().unwrap()[1].restart_policy =
        Some("Always".into());
    let r = agent.admit_pod(&p).unwrap();
    assert!(r.admitted, "{r:?}");
    let side = agent.container_started(UID_A, "side").unwrap();
    assert!(side.exclusive);
    let app = agent.container_started(UID_A, "app").unwrap();
    assert!(app
        .cpus
        .unwrap()
        .intersection(&side.cpus.unwrap())
        .is_empty());
}
