//! The books follow what the runtime really runs, against a fake containerd
//! (`nmm_nri::fake_containerd`: restarts drop the plugin, no removal events for pods
//! older than the last restart) and a fake CRI service showing the same pods:
//!
//! * a pod that existed before a containerd restart and is removed after it is released
//!   (the CRI lists), its CPUs then admit a new pod, and the shared containers get the
//!   widened pool by unsolicited `UpdateContainers`;
//! * a container created while the agent was down, in a pod it knows, is adopted at
//!   synchronize;
//! * random sequences of pod and container events, containerd restarts and agent kills
//!   (the agent dropped without its clean-stop compaction, the NRI connection cut):
//!   after each step settles, the books hold exactly the pods that run, every container
//!   that runs is in its pod's record, and every container's cpuset is what the books
//!   give it (`NMM_BOOKS_SEED` to replay one seed, `NMM_BOOKS_STEPS` for longer runs).

use nmm_agent::agent::container_cpuset;
use nmm_agent::cri::{CriContainer, CriSandbox, FakeCri, RuntimeView};
use nmm_agent::nri::{serve_nri, NriAgent, NriOptions};
use nmm_agent::reconcile::{run_reconciler, ReconcileOptions};
use nmm_agent::testkit::{self, nri};
use nmm_agent::{Agent, AgentOptions};
use nmm_nri::fake_containerd::FakeContainerd;
use nmm_nri::{Container, ContainerState, PodSandbox};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::watch;

const MI: i64 = 1 << 20;

fn view_of(pods: &[PodSandbox], ctrs: &[Container]) -> RuntimeView {
    RuntimeView {
        sandboxes: pods
            .iter()
            .map(|p| CriSandbox {
                id: p.id.clone(),
                uid: p.uid.clone(),
                name: p.name.clone(),
                namespace: p.namespace.clone(),
                ready: true,
            })
            .collect(),
        containers: ctrs
            .iter()
            .map(|c| CriContainer {
                id: c.id.clone(),
                sandbox_id: c.pod_sandbox_id.clone(),
                name: c.name.clone(),
                exited: c.state == ContainerState::Stopped,
            })
            .collect(),
    }
}

/// An agent serving NRI with its reconcile loop.
struct Running {
    handler: Arc<NriAgent>,
    stop: watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    log: Arc<Mutex<Vec<String>>>,
    state: PathBuf,
}

impl Running {
    fn start(state: &Path, nri_sock: &Path, cri_sock: Option<PathBuf>) -> Running {
        let (agent, _) = Agent::start(AgentOptions {
            machine: testkit::machine(),
            kubelet: testkit::kubelet_config(),
            state_dir: state.to_path_buf(),
            reconcile: None,
            cgroup_root: None,
            devices: Default::default(),
        })
        .unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let l = log.clone();
        let handler = Arc::new(NriAgent::with_logger(Arc::new(agent), move |m| {
            l.lock().unwrap().push(m.to_string())
        }));
        let (stop, rx) = watch::channel(false);
        let mut opts = NriOptions::new(nri_sock);
        opts.min_backoff = Duration::from_millis(10);
        opts.max_backoff = Duration::from_millis(50);
        let tasks = vec![
            tokio::spawn(serve_nri(handler.clone(), opts, rx.clone())),
            tokio::spawn(run_reconciler(
                handler.clone(),
                ReconcileOptions {
                    cri_socket: cri_sock,
                    interval: Duration::from_millis(100),
                    compact_idle: Duration::from_millis(300),
                },
                rx,
            )),
        ];
        Running {
            handler,
            stop,
            tasks,
            log,
            state: state.to_path_buf(),
        }
    }

    fn agent(&self) -> &Agent {
        self.handler.agent()
    }

    /// SIGKILL, as far as a test process can: the tasks die where they are, the agent is
    /// never dropped (no clean-stop compaction), the connection goes.
    async fn kill(self) {
        for t in &self.tasks {
            t.abort();
        }
        // Let a change already handed to a blocking thread finish (a real SIGKILL would
        // stop it too, but never leave two agents writing one state directory).
        tokio::time::sleep(Duration::from_millis(30)).await;
        let _ = self.agent().uids();
        // The kernel would release the state directory's flock with the process.
        self.agent().release_lock_as_if_killed();
        std::mem::forget(self.handler);
        std::mem::forget(self.stop);
    }

    /// A clean stop: the tasks end, the agent is dropped and its state directory's lock
    /// released (the next `start` on the directory would fail otherwise).
    async fn stop(self) {
        let _ = self.stop.send(true);
        for t in self.tasks {
            let _ = tokio::time::timeout(Duration::from_secs(5), t).await;
        }
        let agent = Arc::downgrade(&self.handler);
        drop(self.handler);
        let t0 = std::time::Instant::now();
        while agent.strong_count() > 0 {
            assert!(
                t0.elapsed() < Duration::from_secs(10),
                "the agent was not dropped after its tasks stopped"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        // Its drop (the clean-stop compaction) may still be running: the lock tells.
        assert!(testkit::wait_until_unlocked(
            &self.state,
            Duration::from_secs(10)
        ));
    }
}

/// What is wrong with the books against the runtime, if anything.
fn mismatch(rt: &FakeContainerd, agent: &Agent) -> Option<String> {
    let running: BTreeSet<String> = rt.sandboxes().iter().map(|p| p.uid.clone()).collect();
    let books: BTreeSet<String> = agent.books().pods.into_iter().collect();
    if running != books {
        return Some(format!("pods: runtime {running:?}, books {books:?}"));
    }
    agent.inspect(|node, pods| {
        for c in rt.container_list() {
            let uid = rt
                .sandboxes()
                .into_iter()
                .find(|p| p.id == c.pod_sandbox_id)
                .map(|p| p.uid)
                .unwrap_or_default();
            let Some((_, pod)) = pods.iter().find(|(u, _)| *u == uid) else {
                return Some(format!("container {} of {uid}: pod not recorded", c.name));
            };
            let spec = pod.spec.as_ref().unwrap();
            let held = spec.containers.iter().any(|x| x.name == c.name)
                || spec
                    .init_containers
                    .iter()
                    .flatten()
                    .any(|x| x.name == c.name);
            if !held {
                return Some(format!(
                    "container {} of {uid} not in its pod's record",
                    c.name
                ));
            }
            let want = container_cpuset(node, &uid, &c.name)
                .cpus_text()
                .unwrap_or_default();
            let have = c
                .resources
                .as_ref()
                .map(|r| r.cpuset_cpus.clone())
                .unwrap_or_default();
            if want != have {
                return Some(format!(
                    "container {} of {uid}: cpuset {have:?}, the books say {want:?}",
                    c.name
                ));
            }
        }
        None
    })
}

/// Waits (up to 10 s: the bound for releasing what is gone) until the books
/// match the runtime.
async fn settle(rt: &mut FakeContainerd, agent: &Agent, what: &str) -> Duration {
    let t0 = Instant::now();
    loop {
        rt.collect_unsolicited();
        let m = mismatch(rt, agent);
        let Some(m) = m else {
            return t0.elapsed();
        };
        if t0.elapsed() > Duration::from_secs(10) {
            let unsolicited = rt
                .plugin()
                .map(|p| p.unsolicited_updates())
                .unwrap_or_default();
            panic!("{what}: not settled after 10 s: {m}\nunsolicited updates of this connection: {unsolicited:?}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn guaranteed(i: u64, cpus: i64, mem_mi: i64) -> (PodSandbox, Vec<Container>) {
    let p = nri::sandbox(&format!("g{i}"), &nri::uid(i), "guaranteed");
    let c = nri::container(
        &p,
        "app",
        Some(cpus * 1000),
        Some(cpus as u64 * 1000),
        Some(mem_mi * MI),
    );
    (p, vec![c])
}

fn burstable(i: u64, containers: usize) -> (PodSandbox, Vec<Container>) {
    let p = nri::sandbox(&format!("b{i}"), &nri::uid(i), "burstable");
    let cs = (0..containers)
        .map(|k| nri::container(&p, &format!("c{k}"), None, Some(100), None))
        .collect();
    (p, cs)
}

struct Fixture {
    _dir: tempfile::TempDir,
    state: PathBuf,
    nri_sock: PathBuf,
    cri_sock: PathBuf,
    _cri_stop: tokio::sync::oneshot::Sender<()>,
}

async fn fixture() -> (Fixture, FakeContainerd) {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let nri_sock = dir.path().join("nri.sock");
    let cri_sock = dir.path().join("cri.sock");
    let cri = FakeCri::new();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    cri.serve(&cri_sock, async {
        let _ = rx.await;
    })
    .unwrap();
    let mut rt = FakeContainerd::listen(&nri_sock).unwrap();
    rt.on_change(Box::new(move |p: &[PodSandbox], c: &[Container]| {
        cri.set(view_of(p, c))
    }));
    (
        Fixture {
            _dir: dir,
            state,
            nri_sock,
            cri_sock,
            _cri_stop: tx,
        },
        rt,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pods_removed_after_a_runtime_restart_are_released_and_the_pool_widens() {
    let (fx, mut rt) = fixture().await;
    let agent = Running::start(&fx.state, &fx.nri_sock, Some(fx.cri_sock.clone()));
    rt.accept().await.unwrap();
    // 16 CPUs, CPU 0 reserved: node 0's other 7 CPUs, node 1's 8 CPUs, a shared pod.
    for (i, cpus) in [(1, 7), (2, 8)] {
        let (p, cs) = guaranteed(i, cpus, 512);
        rt.run_pod(p).await.unwrap();
        for c in cs {
            rt.create_container(c).await.unwrap();
        }
    }
    let (p, cs) = burstable(3, 2);
    rt.run_pod(p).await.unwrap();
    for c in cs {
        rt.create_container(c).await.unwrap();
    }
    settle(&mut rt, agent.agent(), "start").await;
    let shared = rt
        .container("ctr-b3-c0")
        .unwrap()
        .resources
        .clone()
        .unwrap()
        .cpuset_cpus;
    assert_eq!(shared, "0", "the shared pool is the reserved CPU alone");

    // containerd restarts; the 7-CPU pods are from before the restart.
    rt.restart().await;
    rt.accept().await.unwrap();
    settle(&mut rt, agent.agent(), "after restart").await;
    assert!(rt.older_than_restart("sandbox-g1"));
    let lists = agent.log.lock().unwrap().len();
    // Removed after the restart: containerd tells the plugin nothing.
    rt.remove_pod("sandbox-g1").await.unwrap();
    let took = settle(
        &mut rt,
        agent.agent(),
        "removal of a pod older than the restart",
    )
    .await;
    assert!(took < Duration::from_secs(10), "{took:?}");
    let log = agent.log.lock().unwrap()[lists..].join("\n");
    assert!(
        log.contains("released 1 pods the runtime no longer runs"),
        "{log}"
    );
    // The shared containers were told by UpdateContainers (no event answer carried it).
    let unsolicited = rt.plugin().unwrap().unsolicited_updates();
    assert!(
        unsolicited.iter().any(|u| u.container_id == "ctr-b3-c0"),
        "{unsolicited:?}"
    );
    let shared = rt
        .container("ctr-b3-c0")
        .unwrap()
        .resources
        .clone()
        .unwrap()
        .cpuset_cpus;
    assert_eq!(shared, "0-3,8-11", "node 0's CPUs are shared again");
    // Its CPUs admit a new pod needing them (before the fix: TopologyAffinityError).
    let (p, cs) = guaranteed(4, 7, 512);
    rt.run_pod(p).await.unwrap();
    rt.create_container(cs[0].clone())
        .await
        .expect("the released CPUs are free again");
    settle(&mut rt, agent.agent(), "new pod").await;
    agent.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn containers_created_while_the_agent_was_down_are_adopted() {
    let (fx, mut rt) = fixture().await;
    let agent = Running::start(&fx.state, &fx.nri_sock, Some(fx.cri_sock.clone()));
    rt.accept().await.unwrap();
    let (p, cs) = burstable(1, 1);
    rt.run_pod(p.clone()).await.unwrap();
    rt.create_container(cs[0].clone()).await.unwrap();
    settle(&mut rt, agent.agent(), "start").await;
    agent.kill().await;
    rt.plugin_gone().await;
    // The kubelet starts a second container while the agent is away.
    let c = nri::container(&p, "sidecar", None, Some(100), None);
    rt.create_container(c).await.unwrap();
    let agent = Running::start(&fx.state, &fx.nri_sock, Some(fx.cri_sock.clone()));
    rt.accept().await.unwrap();
    settle(&mut rt, agent.agent(), "after the agent's restart").await;
    let sync = agent.handler.last_sync().unwrap();
    assert_eq!(
        sync.adopted,
        vec!["default/b1/sidecar".to_string()],
        "{sync:?}"
    );
    agent.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_cri_socket_the_agent_says_what_it_cannot_see() {
    let (fx, mut rt) = fixture().await;
    let agent = Running::start(&fx.state, &fx.nri_sock, None);
    rt.accept().await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    let log = agent.log.lock().unwrap().join("\n");
    assert!(
        log.contains("no CRI socket: pods that existed before a runtime restart"),
        "{log}"
    );
    agent.stop().await;
    // Unreachable socket: said once, and the loop keeps trying.
    let agent = Running::start(&fx.state, &fx.nri_sock, Some(fx.state.join("none.sock")));
    rt.accept().await.unwrap();
    tokio::time::sleep(Duration::from_millis(350)).await;
    let log = agent.log.lock().unwrap().join("\n");
    assert_eq!(log.matches("none.sock: cannot connect").count(), 1, "{log}");
    assert!(log.contains("are not detected; retrying"), "{log}");
    agent.stop().await;
}

struct Rng(u64);
impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

async fn random_run(seed: u64, steps: usize) -> (usize, usize) {
    let (fx, mut rt) = fixture().await;
    let mut rng = Rng(seed | 1);
    let mut agent = Some(Running::start(
        &fx.state,
        &fx.nri_sock,
        Some(fx.cri_sock.clone()),
    ));
    rt.accept().await.unwrap();
    let mut next = 1u64;
    let (mut kills, mut restarts, mut rejected, mut unreported) = (0, 0, 0, 0);
    for step in 0..steps {
        let what;
        let up = agent.is_some();
        match rng.below(100) {
            // A new pod: only while the plugin can vet it (containerd without the plugin
            // would run it unchecked, and it might not fit later).
            // The agent comes back soon after a kill.
            0..=49 if !up => {
                what = "agent starts".into();
                agent = Some(Running::start(
                    &fx.state,
                    &fx.nri_sock,
                    Some(fx.cri_sock.clone()),
                ));
                rt.accept().await.unwrap();
            }
            0..=49 => {
                next += 1;
                let (p, cs) = match rng.below(3) {
                    0 | 1 => guaranteed(
                        next,
                        1 + rng.below(3) as i64,
                        256 * (1 + rng.below(4) as i64),
                    ),
                    _ => burstable(next, 1 + rng.below(2) as usize),
                };
                what = format!("new pod {}", p.name);
                rt.run_pod(p.clone()).await.unwrap();
                for c in cs {
                    if let Err(e) = rt.create_container(c).await {
                        assert!(e.rejection().is_some(), "step {step}: {e}");
                        // The kubelet gives up on the pod: containerd removes it.
                        rejected += 1;
                        rt.remove_pod(&p.id).await.unwrap();
                        break;
                    }
                }
            }
            50..=64 => {
                let pods = rt.sandboxes();
                if pods.is_empty() {
                    continue;
                }
                let p = &pods[rng.below(pods.len() as u64) as usize];
                let older = rt.older_than_restart(&p.id);
                unreported += usize::from(older && up);
                what = format!(
                    "remove pod {}{}",
                    p.name,
                    if older {
                        " (older than the restart)"
                    } else {
                        ""
                    }
                );
                rt.remove_pod(&p.id).await.unwrap();
            }
            65..=74 => {
                // A container more in a Burstable pod (it always fits).
                let pods: Vec<PodSandbox> = rt
                    .sandboxes()
                    .into_iter()
                    .filter(|p| p.name.starts_with('b'))
                    .collect();
                if pods.is_empty() {
                    continue;
                }
                let p = &pods[rng.below(pods.len() as u64) as usize];
                next += 1;
                let c = nri::container(p, &format!("x{next}"), None, Some(50), None);
                what = format!("container {} in {}", c.name, p.name);
                rt.create_container(c).await.unwrap();
            }
            75..=86 => {
                restarts += 1;
                what = "containerd restarts".into();
                rt.restart().await;
                if up {
                    rt.accept().await.unwrap();
                }
            }
            _ => {
                if let Some(a) = agent.take() {
                    kills += 1;
                    what = "agent killed".into();
                    a.kill().await;
                    rt.plugin_gone().await;
                } else {
                    what = "agent starts".into();
                    agent = Some(Running::start(
                        &fx.state,
                        &fx.nri_sock,
                        Some(fx.cri_sock.clone()),
                    ));
                    rt.accept().await.unwrap();
                }
            }
        }
        eprintln!("seed {seed} step {step}: {what}");
        if let Some(a) = &agent {
            settle(
                &mut rt,
                a.agent(),
                &format!("seed {seed} step {step} ({what})"),
            )
            .await;
        }
    }
    if agent.is_none() {
        agent = Some(Running::start(
            &fx.state,
            &fx.nri_sock,
            Some(fx.cri_sock.clone()),
        ));
        rt.accept().await.unwrap();
    }
    let a = agent.unwrap();
    settle(&mut rt, a.agent(), &format!("seed {seed}: end")).await;
    eprintln!(
        "seed {seed}: {steps} steps, {kills} agent kills, {restarts} containerd restarts, {rejected} pods rejected, {unreported} unreported removals released over CRI, {} pods running at the end",
        rt.sandboxes().len()
    );
    a.stop().await;
    (rejected, unreported)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_runtime_events_restarts_and_agent_kills_keep_the_books_true() {
    let steps: usize = std::env::var("NMM_BOOKS_STEPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(60);
    let seeds: Vec<u64> = match std::env::var("NMM_BOOKS_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        Some(s) => vec![s],
        None => vec![
            3,
            11,
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64,
        ],
    };
    let (mut rejected, mut unreported) = (0, 0);
    for seed in &seeds {
        eprintln!("NMM_BOOKS_SEED={seed}");
        let (r, u) = random_run(*seed, steps).await;
        rejected += r;
        unreported += u;
    }
    if seeds.len() > 1 {
        // The fixed seeds exercise what matters: full nodes and unreported removals.
        assert!(
            rejected > 0 && unreported > 0,
            "{rejected} rejections, {unreported} unreported removals"
        );
    }
}
