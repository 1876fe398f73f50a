//! The plugin against the fake runtime: registration, configuration, synchronization
//! and every subscribed event, as containerd's NRI adaptation drives them.

mod common;

use common::*;
use nmm_nri::fake::{EventDelivery, FakeRuntime, FakeRuntimeConfig, RuntimeError};
use nmm_nri::handler::event;
use nmm_nri::*;
use std::sync::Arc;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_lifecycle() {
    let env = env();
    let rt = FakeRuntime::listen(&env.path).unwrap();
    let rec = Arc::new(Recorder::default());
    let plugin = spawn_plugin(&env.path, rec.clone());

    let (old_pod, old_ctr) = burstable("old", "11111111-2222-3333-4444-555555555555");
    let mut fp = rt
        .accept(
            std::slice::from_ref(&old_pod),
            std::slice::from_ref(&old_ctr),
        )
        .await
        .unwrap();
    assert_eq!(fp.name(), "nmm");
    assert_eq!(fp.index(), "10");
    assert_eq!(fp.events(), EVENT_MASK);
    assert!(fp.subscribed(event::CREATE_CONTAINER));
    assert!(!fp.subscribed(event::START_CONTAINER));
    assert_eq!(fp.sync_messages(), 1);
    assert_eq!(
        fp.sync_updates(),
        &[ContainerUpdate {
            container_id: old_ctr.id.clone(),
            cpuset_cpus: Some("0-7".into()),
            cpuset_mems: None,
            ignore_failure: true,
        }]
    );
    {
        let synced = rec.synced.lock().unwrap();
        assert_eq!(synced.0, vec![old_pod.clone()]);
        assert_eq!(synced.1, vec![old_ctr.clone()]);
    }
    let info = rec.runtime.lock().unwrap().clone().unwrap();
    assert_eq!(info.runtime_name, "containerd");
    assert_eq!(info.request_timeout_ms, 2000);
    assert_eq!(info.registration_timeout_ms, 5000);

    // A burstable pod: shared CPUs, memory nodes given.
    let (bp, bc) = burstable("web", "aaaaaaaa-0000-0000-0000-000000000001");
    fp.run_pod_sandbox(&bp).await.unwrap();
    let r = fp.create_container(&bp, &bc).await.unwrap();
    assert_eq!(r.adjustment.cpuset_mems.as_deref(), Some("0-1"));
    assert_eq!(r.adjustment.cpuset_cpus, None);
    let cpu = r
        .raw
        .adjust
        .as_ref()
        .unwrap()
        .linux
        .as_ref()
        .unwrap()
        .resources
        .as_ref()
        .unwrap()
        .cpu
        .as_ref()
        .unwrap();
    assert_eq!(cpu.mems, "0-1");
    assert_eq!(cpu.cpus, "");
    assert_eq!(r.container.resources.as_ref().unwrap().cpuset_mems, "0-1");

    // A guaranteed pod with 2 CPUs: exclusive cpus and mems, the shared one shrinks.
    let (gp, gc) = guaranteed("db", "bbbbbbbb-0000-0000-0000-000000000002", 2);
    fp.run_pod_sandbox(&gp).await.unwrap();
    let r = fp.create_container(&gp, &gc).await.unwrap();
    assert_eq!(r.adjustment.cpuset_cpus.as_deref(), Some("2-3"));
    assert_eq!(r.adjustment.cpuset_mems.as_deref(), Some("0"));
    assert_eq!(r.raw.update.len(), 1);
    assert_eq!(r.adjustment.updates[0].container_id, bc.id);
    assert_eq!(r.adjustment.updates[0].cpuset_cpus.as_deref(), Some("0-1"));
    let res = r.container.resources.unwrap();
    assert_eq!(
        (res.cpuset_cpus.as_str(), res.cpuset_mems.as_str()),
        ("2-3", "0")
    );

    // Rejected: the runtime fails creation with the kubelet's reason and message.
    let mut bad = gc.clone();
    bad.name = "rejected".into();
    bad.id = "ctr-rejected".into();
    bad.annotations.insert("test/reject".into(), "1".into());
    let err = fp.create_container(&gp, &bad).await.unwrap_err();
    let rej = err.rejection().expect("a rejection");
    assert_eq!(rej.reason, "TopologyAffinityError");
    assert_eq!(
        rej.message,
        "Resources cannot be allocated with Topology locality"
    );
    assert_eq!(
        err.to_string(),
        "rpc error: code = Unknown desc = TopologyAffinityError: Resources cannot be allocated with Topology locality"
    );
    assert!(fp.closed().is_none(), "a rejection keeps the plugin");

    let res = LinuxResources {
        cpu_shares: Some(2048),
        ..Default::default()
    };
    let ups = fp.update_container(&gp, &gc, Some(&res)).await.unwrap();
    assert_eq!(ups.len(), 1);
    assert_eq!(ups[0].cpuset_cpus.as_deref(), Some("2-3"));
    assert!(fp.stop_container(&gp, &gc).await.unwrap().is_empty());
    fp.remove_container(&gp, &gc).await.unwrap();
    fp.stop_pod_sandbox(&gp).await.unwrap(); // not subscribed: not sent
    fp.remove_pod_sandbox(&gp).await.unwrap();
    assert!(!fp.uses_state_change());
    fp.shutdown().await.unwrap();
    fp.close("test done").await;
    join(plugin).await.unwrap();

    assert_eq!(
        rec.events(),
        vec![
            "configure containerd",
            "synchronize 1 1",
            "run_pod_sandbox web",
            "create_container web/app",
            "run_pod_sandbox db",
            "create_container db/app",
            "create_container db/rejected",
            "update_container db/app Some(2048)",
            "stop_container db/app",
            "remove_container db/app",
            "remove_pod_sandbox db",
            "shutdown",
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_change_delivery_of_older_runtimes() {
    let env = env();
    let rt = FakeRuntime::listen(&env.path)
        .unwrap()
        .with_config(FakeRuntimeConfig {
            delivery: EventDelivery::StateChange,
            runtime_version: "v2.0.4".into(),
            nri_version: String::new(),
            ..Default::default()
        });
    let rec = Arc::new(Recorder::default());
    let plugin = spawn_plugin(&env.path, rec.clone());
    let mut fp = rt.accept(&[], &[]).await.unwrap();
    assert!(fp.uses_state_change());
    let (p, c) = guaranteed("db", "bbbbbbbb-0000-0000-0000-000000000002", 1);
    fp.run_pod_sandbox(&p).await.unwrap();
    fp.create_container(&p, &c).await.unwrap();
    fp.remove_container(&p, &c).await.unwrap();
    fp.remove_pod_sandbox(&p).await.unwrap();
    fp.close("done").await;
    join(plugin).await.unwrap();
    assert_eq!(
        rec.events(),
        vec![
            "configure containerd",
            "synchronize 0 0",
            "run_pod_sandbox db",
            "create_container db/app",
            "remove_container db/app",
            "remove_pod_sandbox db",
        ]
    );
}

fn many(n: usize, annotation_bytes: usize) -> (Vec<PodSandbox>, Vec<Container>) {
    let mut pods = vec![];
    let mut ctrs = vec![];
    for i in 0..n {
        let (mut p, c) = burstable(
            &format!("p{i}"),
            &format!("00000000-0000-0000-0000-{i:012}"),
        );
        p.annotations
            .insert("big".into(), "x".repeat(annotation_bytes));
        pods.push(p);
        ctrs.push(c.clone());
        let mut c2 = c;
        c2.name = "side".into();
        c2.id = format!("{}-side", c2.id);
        ctrs.push(c2);
    }
    (pods, ctrs)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn synchronize_in_batches() {
    let env = env();
    let rt = FakeRuntime::listen(&env.path)
        .unwrap()
        .with_config(FakeRuntimeConfig {
            sync_batch: Some(2),
            ..Default::default()
        });
    let rec = Arc::new(Recorder::default());
    let plugin = spawn_plugin(&env.path, rec.clone());
    let (pods, ctrs) = many(5, 10);
    let fp = rt.accept(&pods, &ctrs).await.unwrap();
    // 5 pods / 10 containers, 2 of each per message: 5 messages, the last one final.
    assert_eq!(fp.sync_messages(), 5);
    assert_eq!(fp.sync_updates().len(), 10);
    let synced = rec.synced.lock().unwrap().clone();
    assert_eq!(synced.0, pods);
    assert_eq!(synced.1, ctrs);
    assert_eq!(rec.events()[1], "synchronize 5 10");
    fp.close("done").await;
    join(plugin).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_synchronize_is_split_like_containerd() {
    let env = env();
    let rt = FakeRuntime::listen(&env.path).unwrap();
    let rec = Arc::new(Recorder::default());
    let plugin = spawn_plugin(&env.path, rec.clone());
    // ~6 MiB of pods: over ttrpc's 4 MiB, so the runtime splits the request.
    let (pods, ctrs) = many(600, 10 << 10);
    let fp = rt.accept(&pods, &ctrs).await.unwrap();
    assert!(fp.sync_messages() >= 2, "{} messages", fp.sync_messages());
    // The answer (1200 updates, > 4 KiB) was read the way a Go runtime reads.
    assert_eq!(fp.sync_updates().len(), 1200);
    let synced = rec.synced.lock().unwrap().clone();
    assert_eq!(synced.0.len(), 600);
    assert_eq!(synced.1, ctrs);
    fp.close("done").await;
    join(plugin).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsolicited_updates_through_the_handle() {
    let env = env();
    let rt = FakeRuntime::listen(&env.path).unwrap();
    let rec = Arc::new(Recorder::default());
    let plugin = NriPlugin::connect(&env.path, "nmm", "10", rec.clone())
        .await
        .unwrap();
    let handle = plugin.handle();
    assert!(matches!(
        handle.update_containers(&[]).await,
        Err(NriError::NotRunning)
    ));
    let task = tokio::spawn(plugin.run());
    let fp = rt.accept(&[], &[]).await.unwrap();
    let up = ContainerUpdate {
        container_id: "c1".into(),
        cpuset_cpus: Some("4-5".into()),
        cpuset_mems: Some("1".into()),
        ignore_failure: false,
    };
    let failed = handle
        .update_containers(std::slice::from_ref(&up))
        .await
        .unwrap();
    assert!(failed.is_empty());
    assert_eq!(fp.unsolicited_updates(), vec![up]);
    fp.close("done").await;
    join(task).await.unwrap();
    assert!(matches!(
        handle.update_containers(&[]).await,
        Err(NriError::NotRunning)
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_handler_gets_the_plugin_dropped() {
    let env = env();
    let rt = FakeRuntime::listen(&env.path)
        .unwrap()
        .with_config(FakeRuntimeConfig {
            request_timeout: Duration::from_millis(200),
            ..Default::default()
        });
    let rec = Arc::new(Recorder::default());
    let plugin = spawn_plugin(&env.path, rec.clone());
    let mut fp = rt.accept(&[], &[]).await.unwrap();
    *rec.sleep.lock().unwrap() = Some(Duration::from_millis(600));
    let (p, c) = guaranteed("db", "bbbbbbbb-0000-0000-0000-000000000002", 1);
    let err = fp.create_container(&p, &c).await.unwrap_err();
    assert!(
        matches!(err, RuntimeError::PluginClosed(ref m) if m.contains("deadline")),
        "{err}"
    );
    // The runtime closed the connection: the plugin's run() ends.
    let _ = join(plugin).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handler_panic_is_an_error_answer_not_a_crash() {
    let env = env();
    let rt = FakeRuntime::listen(&env.path).unwrap();
    let rec = Arc::new(Recorder::default());
    let plugin = spawn_plugin(&env.path, rec.clone());
    let mut fp = rt.accept(&[], &[]).await.unwrap();
    *rec.panic_next.lock().unwrap() = true;
    let (p, c) = guaranteed("db", "bbbbbbbb-0000-0000-0000-000000000002", 1);
    let err = fp.create_container(&p, &c).await.unwrap_err();
    assert!(
        matches!(err, RuntimeError::Plugin(ref st) if st.code == ttrpc::code::INTERNAL),
        "{err}"
    );
    // Still serving.
    let r = fp.create_container(&p, &c).await.unwrap();
    assert_eq!(r.adjustment.cpuset_cpus.as_deref(), Some("2-3"));
    fp.close("done").await;
    join(plugin).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_pod_is_rejected_with_a_reason() {
    let env = env();
    let rt = FakeRuntime::listen(&env.path).unwrap();
    let rec = Arc::new(Recorder::default());
    let plugin = spawn_plugin(&env.path, rec.clone());
    let mut fp = rt.accept(&[], &[]).await.unwrap();
    let (p, mut c) = guaranteed("db", "bbbbbbbb-0000-0000-0000-000000000002", 1);
    c.resources.as_mut().unwrap().memory_limit = None;
    let err = fp.create_container(&p, &c).await.unwrap_err();
    let rej = err.rejection().unwrap();
    assert_eq!(rej.reason, "InvalidPod");
    assert!(
        rej.message.contains("has no memory limit"),
        "{}",
        rej.message
    );
    fp.close("done").await;
    join(plugin).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identity_is_checked() {
    let env = env();
    let _rt = FakeRuntime::listen(&env.path).unwrap();
    let rec = Arc::new(Recorder::default());
    for (name, idx) in [("", "10"), ("a b", "10"), ("nmm", "1"), ("nmm", "xx")] {
        let r = NriPlugin::connect(&env.path, name, idx, rec.clone()).await;
        assert!(
            matches!(r, Err(NriError::InvalidIdentity(_))),
            "{name:?} {idx:?}"
        );
    }
    let missing = env.path.with_file_name("nope.sock");
    let r = NriPlugin::connect(&missing, "nmm", "10", rec).await;
    assert!(matches!(r, Err(NriError::Connect { .. })));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registration_times_out_without_a_runtime_answer() {
    let env = env();
    let rt = FakeRuntime::listen(&env.path).unwrap();
    let rec = Arc::new(Recorder::default());
    let path = env.path.clone();
    let task = tokio::spawn(async move {
        NriPlugin::connect(&path, "nmm", "10", rec)
            .await?
            .with_config(PluginConfig {
                registration_timeout: Duration::from_millis(200),
                ..Default::default()
            })
            .run()
            .await
    });
    let _silent = rt.accept_raw().await.unwrap();
    let r = join(task).await;
    assert!(
        matches!(r, Err(NriError::Registration(ref m)) if m.contains("no response")),
        "{r:?}"
    );
}
