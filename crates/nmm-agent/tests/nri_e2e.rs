//! The agent as an NRI plugin against the fake runtime (`nmm_nri::fake`), checked
//! against the managers run directly (`nmm_core::node::Node`).

mod support;

use k8s_openapi::api::core::v1::Pod;
use nmm_agent::agent::container_cpuset;
use nmm_agent::testkit;
use nmm_agent::{Agent, AgentOptions};
use nmm_core::node::{Node, StartOptions};
use nmm_core::pod::PodInfo;
use nmm_nri::fake::{FakePlugin, FakeRuntime};
use nmm_nri::*;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use support::Plugin;

const GI: i64 = 1 << 30;

fn start_agent(dir: &Path) -> Arc<Agent> {
    let (agent, _) = Agent::start(AgentOptions {
        machine: testkit::machine(),
        kubelet: testkit::kubelet_config(),
        state_dir: dir.to_path_buf(),
        reconcile: None,
        cgroup_root: None,
        devices: Default::default(),
    })
    .unwrap();
    Arc::new(agent)
}

/// The managers alone, fresh books.
fn direct_node(dir: &Path) -> Node {
    Node::start(
        testkit::machine(),
        testkit::kubelet_config(),
        StartOptions {
            state_dir: dir.display().to_string(),
            ..Default::default()
        },
    )
    .unwrap()
}

fn admit_direct(node: &mut Node, pod: &Pod) -> bool {
    node.admit(&PodInfo::from_pod(pod, false).unwrap())
        .unwrap()
        .admitted
}

async fn accept(rt: &FakeRuntime, pods: &[PodSandbox], ctrs: &[Container]) -> FakePlugin {
    tokio::time::timeout(Duration::from_secs(10), rt.accept(pods, ctrs))
        .await
        .expect("the plugin connects")
        .unwrap()
}

/// A pod as NRI shows it (systemd cgroup driver).
fn sandbox(name: &str, uid: &str, qos: &str) -> PodSandbox {
    let sys_uid = uid.replace('-', "_");
    let cgroup_parent = match qos {
        "guaranteed" => format!("kubepods-pod{sys_uid}.slice"),
        q => format!("kubepods-{q}-pod{sys_uid}.slice"),
    };
    PodSandbox {
        id: format!("sandbox-{name}"),
        name: name.into(),
        uid: uid.into(),
        namespace: "default".into(),
        cgroup_parent,
        ..Default::default()
    }
}

/// A container as containerd shows it: quota for the CPU limit, shares for the request.
fn ctr(
    pod: &PodSandbox,
    name: &str,
    limit_m: Option<i64>,
    req_m: Option<u64>,
    mem: Option<i64>,
) -> Container {
    Container {
        id: format!("ctr-{}-{name}", pod.name),
        pod_sandbox_id: pod.id.clone(),
        name: name.into(),
        state: ContainerState::Created,
        resources: Some(LinuxResources {
            cpu_shares: Some(req_m.map_or(2, |m| (m * 1024 / 1000).max(2))),
            cpu_quota: Some(limit_m.map_or(-1, |m| m * 100)),
            cpu_period: Some(100_000),
            memory_limit: mem,
            ..Default::default()
        }),
        cgroups_path: format!(
            "{}:cri-containerd:ctr-{}-{name}",
            pod.cgroup_parent, pod.name
        ),
        ..Default::default()
    }
}

fn guaranteed(name: &str, uid: &str, cpus: i64, mem: i64) -> (PodSandbox, Container) {
    let p = sandbox(name, uid, "guaranteed");
    let c = ctr(
        &p,
        "app",
        Some(cpus * 1000),
        Some(cpus as u64 * 1000),
        Some(mem),
    );
    (p, c)
}

fn burstable(name: &str, uid: &str) -> (PodSandbox, Container) {
    let p = sandbox(name, uid, "burstable");
    let c = ctr(&p, "app", None, Some(250), None);
    (p, c)
}

const U1: &str = "00000000-0000-4000-8000-000000000001";
const U2: &str = "00000000-0000-4000-8000-000000000002";
const U3: &str = "00000000-0000-4000-8000-000000000003";
const U4: &str = "00000000-0000-4000-8000-000000000004";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guaranteed_and_burstable_match_the_managers() {
    let d = tempfile::tempdir().unwrap();
    let agent = start_agent(&d.path().join("state"));
    let rt = FakeRuntime::listen(d.path().join("nri.sock")).unwrap();
    let plugin = Plugin::spawn(agent.clone(), rt.path());
    let mut fp = accept(&rt, &[], &[]).await;
    assert_eq!(fp.name(), "nmm");
    assert_eq!(fp.index(), "10");

    let mut node = direct_node(&d.path().join("direct"));

    // Burstable: the shared pool (every CPU), no memory nodes, no exclusive CPUs.
    let (bp, bc) = burstable("web", U1);
    fp.run_pod_sandbox(&bp).await.unwrap();
    let r = fp.create_container(&bp, &bc).await.unwrap();
    assert!(admit_direct(
        &mut node,
        &testkit::pod(U1, "web", &[("app", "", "256Mi", None)], &[])
    ));
    let want = container_cpuset(&node, U1, "app");
    assert!(!want.exclusive);
    assert_eq!(r.adjustment.cpuset_cpus, want.cpus_text());
    assert_eq!(r.adjustment.cpuset_cpus.as_deref(), Some("0-15"));
    assert_eq!(r.adjustment.cpuset_mems, None);
    assert!(r.adjustment.updates.is_empty());

    // Guaranteed, 2 CPUs and 1Gi: exactly what the managers choose. The answer carries
    // the new container's cpuset only; the burstable container's shrunk shared pool
    // goes out separately (the reconcile loop's UpdateContainers; here, with no loop,
    // the next answer).
    let (gp, gc) = guaranteed("db", U2, 2, GI);
    fp.run_pod_sandbox(&gp).await.unwrap();
    let r = fp.create_container(&gp, &gc).await.unwrap();
    assert!(admit_direct(
        &mut node,
        &testkit::pod(U2, "db", &[("app", "2", "1Gi", None)], &[])
    ));
    let want = container_cpuset(&node, U2, "app");
    assert!(want.exclusive);
    assert_eq!(r.adjustment.cpuset_cpus, want.cpus_text());
    assert_eq!(r.adjustment.cpuset_mems, want.mems_text());
    assert_eq!(r.adjustment.cpuset_mems.as_deref(), Some("0"));
    assert!(
        r.adjustment.updates.is_empty(),
        "{:?}",
        r.adjustment.updates
    );
    let shared = container_cpuset(&node, U1, "app");
    assert_eq!(
        fp.update_container(&bp, &bc, None).await.unwrap(),
        vec![ContainerUpdate {
            container_id: bc.id.clone(),
            cpuset_cpus: shared.cpus_text(),
            cpuset_mems: None,
            ignore_failure: false,
        }]
    );
    let books = agent.books();
    assert_eq!(books.cpu_checkpoint, node.cpu_checkpoint());
    assert_eq!(books.memory_checkpoint, node.memory_checkpoint());
    assert_eq!(books.pods, vec![U1.to_string(), U2.to_string()]);

    // Too big for one NUMA node under single-numa-node: the kubelet's rejection.
    let (xp, xc) = guaranteed("huge", U3, 10, GI);
    fp.run_pod_sandbox(&xp).await.unwrap();
    let err = fp.create_container(&xp, &xc).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "rpc error: code = Unknown desc = TopologyAffinityError: Resources cannot be allocated with Topology locality"
    );
    let rej = err.rejection().unwrap();
    assert_eq!(rej.reason, "TopologyAffinityError");
    assert!(fp.closed().is_none(), "a rejection keeps the plugin");
    assert_eq!(
        agent.books(),
        books,
        "a rejected pod leaves the books alone"
    );

    // UpdateContainer keeps the container's cpuset.
    let ups = fp.update_container(&gp, &gc, None).await.unwrap();
    assert_eq!(ups.len(), 1);
    assert_eq!(ups[0].cpuset_cpus, want.cpus_text());
    assert_eq!(ups[0].cpuset_mems.as_deref(), Some("0"));

    // Removal: the pool grows back; the next answer updates the shared container.
    fp.stop_container(&gp, &gc).await.unwrap();
    fp.remove_container(&gp, &gc).await.unwrap();
    fp.remove_pod_sandbox(&gp).await.unwrap();
    assert_eq!(agent.books().pods, vec![U1.to_string()]);
    let ups = fp.update_container(&bp, &bc, None).await.unwrap();
    assert_eq!(ups[0].container_id, bc.id);
    assert_eq!(ups[0].cpuset_cpus.as_deref(), Some("0-15"));

    // A malformed pod (Guaranteed cgroup, no memory limit) is refused with a reason.
    let (mp, mut mc) = guaranteed("bad", U4, 1, GI);
    mc.resources.as_mut().unwrap().memory_limit = None;
    let err = fp.create_container(&mp, &mc).await.unwrap_err();
    assert_eq!(err.rejection().unwrap().reason, "InvalidPod");

    plugin.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removal_releases_resources() {
    let d = tempfile::tempdir().unwrap();
    let agent = start_agent(&d.path().join("state"));
    let rt = FakeRuntime::listen(d.path().join("nri.sock")).unwrap();
    let plugin = Plugin::spawn(agent.clone(), rt.path());
    let mut fp = accept(&rt, &[], &[]).await;

    // Node 0 has 7 allocatable CPUs (one reserved), node 1 has 8: two 6-CPU pods fit,
    // a third does not.
    let (ap, ac) = guaranteed("a", U1, 6, GI);
    let (bp, bc) = guaranteed("b", U2, 6, GI);
    let (cp, cc) = guaranteed("c", U3, 6, GI);
    for (p, c) in [(&ap, &ac), (&bp, &bc)] {
        fp.run_pod_sandbox(p).await.unwrap();
        let r = fp.create_container(p, c).await.unwrap();
        assert_eq!(
            r.adjustment.cpuset_cpus.as_deref().map(|s| !s.is_empty()),
            Some(true)
        );
    }
    fp.run_pod_sandbox(&cp).await.unwrap();
    let err = fp.create_container(&cp, &cc).await.unwrap_err();
    assert_eq!(
        err.rejection().unwrap(),
        Rejection::new(
            "TopologyAffinityError",
            "Resources cannot be allocated with Topology locality"
        )
    );

    fp.stop_container(&ap, &ac).await.unwrap();
    fp.remove_container(&ap, &ac).await.unwrap();
    // Resources go back when the pod goes, as in the kubelet.
    assert_eq!(agent.books().pods.len(), 2);
    fp.remove_pod_sandbox(&ap).await.unwrap();
    assert_eq!(agent.books().pods, vec![U2.to_string()]);

    // The kubelet retries the creation: now it fits, where pod a was.
    let r = fp.create_container(&cp, &cc).await.unwrap();
    let mut node = direct_node(&d.path().join("direct"));
    let k8s = |uid: &str, name: &str| testkit::pod(uid, name, &[("app", "6", "1Gi", None)], &[]);
    assert!(admit_direct(&mut node, &k8s(U1, "a")));
    assert!(admit_direct(&mut node, &k8s(U2, "b")));
    node.remove(U1);
    assert!(admit_direct(&mut node, &k8s(U3, "c")));
    let want = container_cpuset(&node, U3, "app");
    assert_eq!(r.adjustment.cpuset_cpus, want.cpus_text());
    assert_eq!(r.adjustment.cpuset_mems, want.mems_text());
    assert_eq!(agent.books().cpu_checkpoint, node.cpu_checkpoint());
    assert_eq!(agent.books().memory_checkpoint, node.memory_checkpoint());
    plugin.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whole_pods_from_the_annotation_or_container_by_container() {
    let d = tempfile::tempdir().unwrap();
    let agent = start_agent(&d.path().join("state"));
    let rt = FakeRuntime::listen(d.path().join("nri.sock")).unwrap();
    let plugin = Plugin::spawn(agent.clone(), rt.path());
    let mut fp = accept(&rt, &[], &[]).await;
    let mut node = direct_node(&d.path().join("direct"));

    // The annotation names both containers: the pod is admitted whole at the first.
    let mut p = sandbox("two", U1, "guaranteed");
    p.annotations = BTreeMap::from([(
        REQUESTS_ANNOTATION.to_string(),
        r#"{"app": {"cpu": "2", "memory": "1Gi"}, "side": {"cpu": "1", "memory": "512Mi"}}"#
            .to_string(),
    )]);
    let app = ctr(&p, "app", Some(2000), Some(2000), Some(GI));
    let side = ctr(&p, "side", Some(1000), Some(1000), Some(GI / 2));
    fp.run_pod_sandbox(&p).await.unwrap();
    let ra = fp.create_container(&p, &app).await.unwrap();
    let two = testkit::pod(
        U1,
        "two",
        &[("app", "2", "1Gi", None), ("side", "1", "512Mi", None)],
        &[],
    );
    assert!(admit_direct(&mut node, &two));
    assert_eq!(
        agent.books().cpu_checkpoint,
        node.cpu_checkpoint(),
        "both containers are allocated at the first CreateContainer"
    );
    let rs = fp.create_container(&p, &side).await.unwrap();
    for (r, name) in [(&ra, "app"), (&rs, "side")] {
        let want = container_cpuset(&node, U1, name);
        assert_eq!(r.adjustment.cpuset_cpus, want.cpus_text(), "{name}");
        assert_eq!(r.adjustment.cpuset_mems, want.mems_text(), "{name}");
    }

    // Without the annotation, containers are added one by one (container scope: the
    // same allocations as the whole pod).
    let q = sandbox("seq", U2, "guaranteed");
    let a2 = ctr(&q, "app", Some(1000), Some(1000), Some(GI));
    let s2 = ctr(&q, "side", Some(2000), Some(2000), Some(GI));
    fp.run_pod_sandbox(&q).await.unwrap();
    let ra = fp.create_container(&q, &a2).await.unwrap();
    let rs = fp.create_container(&q, &s2).await.unwrap();
    let seq = testkit::pod(
        U2,
        "seq",
        &[("app", "1", "1Gi", None), ("side", "2", "1Gi", None)],
        &[],
    );
    assert!(admit_direct(&mut node, &seq));
    for (r, name) in [(&ra, "app"), (&rs, "side")] {
        let want = container_cpuset(&node, U2, name);
        assert_eq!(r.adjustment.cpuset_cpus, want.cpus_text(), "{name}");
        assert_eq!(r.adjustment.cpuset_mems, want.mems_text(), "{name}");
    }
    assert_eq!(agent.books().cpu_checkpoint, node.cpu_checkpoint());
    assert_eq!(agent.books().memory_checkpoint, node.memory_checkpoint());

    // A later container that does not fit is refused; the pod keeps what it had.
    let before = agent.books();
    let big = ctr(&q, "big", Some(9000), Some(9000), Some(GI));
    let err = fp.create_container(&q, &big).await.unwrap_err();
    assert_eq!(err.rejection().unwrap().reason, "TopologyAffinityError");
    assert_eq!(agent.books(), before);
    plugin.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn synchronize_after_restart_and_reconnect() {
    let d = tempfile::tempdir().unwrap();
    let state = d.path().join("state");
    let agent = start_agent(&state);
    let rt = FakeRuntime::listen(d.path().join("nri.sock")).unwrap();
    let plugin = Plugin::spawn(agent.clone(), rt.path());
    let mut fp = accept(&rt, &[], &[]).await;

    let (bp, bc) = burstable("web", U1);
    let (gp, gc) = guaranteed("db", U2, 2, GI);
    let (hp, hc) = guaranteed("cache", U3, 3, 2 * GI);
    let mut pods = Vec::new();
    let mut ctrs = Vec::new();
    for (p, c) in [(&bp, &bc), (&gp, &gc), (&hp, &hc)] {
        fp.run_pod_sandbox(p).await.unwrap();
        let r = fp.create_container(p, c).await.unwrap();
        pods.push(p.clone());
        ctrs.push(r.container);
    }
    // The runtime applied the shared pool's updates to the burstable container.
    let ups = fp.update_container(&bp, &bc, None).await.unwrap();
    ctrs[0].resources.as_mut().unwrap().cpuset_cpus = ups[0].cpuset_cpus.clone().unwrap();
    let books = agent.books();
    assert_eq!(books.pods.len(), 3);

    // The runtime restarts: the plugin reconnects and is synchronized; nothing changes.
    fp.close("runtime restart").await;
    let fp2 = accept(&rt, &pods, &ctrs).await;
    assert!(fp2.sync_updates().is_empty(), "{:?}", fp2.sync_updates());
    assert_eq!(agent.books(), books);
    plugin.stop().await;
    drop(fp2);
    // One agent per state directory: the old one must be gone (its connection tasks may
    // still hold it for a moment after the plugin loop stopped; its drop compacts the
    // journal) before the next starts on the same files.
    let old = Arc::downgrade(&agent);
    drop(agent);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while old.strong_count() > 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the old agent is never dropped"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // ... and its drop (which runs after the count reached 0) has released the lock.
    assert!(testkit::wait_until_unlocked(
        &state,
        Duration::from_secs(10)
    ));

    // The agent restarts on its state directory: books restored, synchronize agrees.
    let agent = start_agent(&state);
    assert_eq!(agent.books(), books);
    let plugin = Plugin::spawn(agent.clone(), rt.path());
    let fp3 = accept(&rt, &pods, &ctrs).await;
    assert!(fp3.sync_updates().is_empty(), "{:?}", fp3.sync_updates());
    assert_eq!(agent.books(), books);
    let rep = plugin.handler.last_sync().unwrap();
    assert!(rep.admitted.is_empty() && rep.removed.is_empty(), "{rep:?}");
    plugin.stop().await;
    drop(fp3);

    // A fresh state directory: synchronize rebuilds the same books from the runtime.
    let fresh = start_agent(&d.path().join("fresh"));
    let plugin = Plugin::spawn(fresh.clone(), rt.path());
    let fp4 = accept(&rt, &pods, &ctrs).await;
    assert_eq!(fresh.books(), books);
    assert!(fp4.sync_updates().is_empty(), "{:?}", fp4.sync_updates());
    let rep = plugin.handler.last_sync().unwrap();
    assert_eq!(
        rep.admitted,
        vec!["default/web", "default/db", "default/cache"]
    );
    plugin.stop().await;
    drop(fp4);

    // A pod that went away while the agent was down leaves the books; the shared
    // container gets the pool back.
    let plugin = Plugin::spawn(fresh.clone(), rt.path());
    let fp5 = accept(&rt, &pods[..2], &ctrs[..2]).await;
    assert_eq!(fresh.books().pods, vec![U1.to_string(), U2.to_string()]);
    let rep = plugin.handler.last_sync().unwrap();
    assert_eq!(rep.removed, vec![U3.to_string()]);
    assert_eq!(fp5.sync_updates().len(), 1);
    assert_eq!(fp5.sync_updates()[0].container_id, bc.id);
    plugin.stop().await;
}
