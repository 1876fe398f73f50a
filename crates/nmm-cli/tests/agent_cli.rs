//! `nmm agent` as a process: it registers with a (fake) NRI runtime, answers
//! CreateContainer with cpusets or the kubelet's rejection, reconnects when the runtime
//! restarts, serves metrics, and exits 0 on SIGTERM.

use nmm_agent::nri::nmm_nri::fake::{FakePlugin, FakeRuntime};
use nmm_agent::nri::nmm_nri::{Container, ContainerState, LinuxResources, PodSandbox};
use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Command, Stdio};
use std::time::Duration;

const SCENARIO: &str = r#"
machine:
  numaNodes:
    - {id: 0, cpus: "0-7", memory: "8589934592"}
    - {id: 1, cpus: "8-15", memory: "8589934592"}
kubelet:
  cpuManagerPolicy: static
  memoryManagerPolicy: Static
  topologyManagerPolicy: single-numa-node
  kubeReserved: {cpu: "1", memory: 500Mi}
  systemReserved: {memory: 500Mi}
  evictionHard: {memory.available: 100Mi}
  reservedMemory:
    - {numaNode: 0, limits: {memory: 600Mi}}
    - {numaNode: 1, limits: {memory: 500Mi}}
"#;

fn guaranteed(name: &str, uid: &str, cpus: i64) -> (PodSandbox, Container) {
    let cg = format!("kubepods-pod{}.slice", uid.replace('-', "_"));
    let pod = PodSandbox {
        id: format!("sandbox-{name}"),
        name: name.into(),
        uid: uid.into(),
        namespace: "default".into(),
        cgroup_parent: cg.clone(),
        ..Default::default()
    };
    let c = Container {
        id: format!("ctr-{name}"),
        pod_sandbox_id: pod.id.clone(),
        name: "app".into(),
        state: ContainerState::Created,
        resources: Some(LinuxResources {
            cpu_shares: Some(cpus as u64 * 1024),
            cpu_quota: Some(cpus * 100_000),
            cpu_period: Some(100_000),
            memory_limit: Some(1 << 30),
            ..Default::default()
        }),
        cgroups_path: format!("{cg}:cri-containerd:ctr-{name}"),
        ..Default::default()
    };
    (pod, c)
}

fn http_get(addr: &str, path: &str) -> String {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut body = String::new();
    s.read_to_string(&mut body).unwrap();
    body
}

#[test]
fn agent_serves_nri_metrics_and_stops_on_sigterm() {
    let d = tempfile::tempdir().unwrap();
    let cfg = d.path().join("node.yaml");
    std::fs::write(&cfg, SCENARIO).unwrap();
    let sock = d.path().join("nri.sock");
    let rt = nmm_agent::nri::runtime().unwrap();
    let fake = rt.block_on(async { FakeRuntime::listen(&sock) }).unwrap();

    let mut child = Command::new(env!("CARGO_BIN_EXE_nmm"))
        .arg("agent")
        .arg("--config")
        .arg(&cfg)
        .arg("--state-dir")
        .arg(d.path().join("state"))
        .arg("--create-state-dir")
        .arg("--nri-socket")
        .arg(&sock)
        .args(["--metrics-addr", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut stderr = child.stderr.take().unwrap();
    let stderr = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let child = KillOnDrop(child);
    let mut line = String::new();
    out.read_line(&mut line).unwrap(); // restored 0 pods from ...
    assert!(line.starts_with("restored 0 pods"), "{line}");
    line.clear();
    out.read_line(&mut line).unwrap();
    assert!(line.contains("NRI plugin 10-nmm on"), "{line}");
    let metrics = line
        .split("metrics on http://")
        .nth(1)
        .and_then(|s| s.split("/metrics").next())
        .unwrap()
        .to_string();

    // The child is killed if the test fails (KillOnDrop); the fake runtime's own
    // timeouts (registration 5 s, requests 2 s) bound every wait below.
    let accept = |pods: &[PodSandbox], ctrs: &[Container]| -> FakePlugin {
        rt.block_on(fake.accept(pods, ctrs)).unwrap()
    };
    let mut fp = accept(&[], &[]);
    assert_eq!((fp.name(), fp.index()), ("nmm", "10"));

    let (p, c) = guaranteed("db", "00000000-0000-4000-8000-000000000001", 2);
    let (big, bc) = guaranteed("big", "00000000-0000-4000-8000-000000000002", 9);
    rt.block_on(async {
        fp.run_pod_sandbox(&p).await.unwrap();
        let r = fp.create_container(&p, &c).await.unwrap();
        let cpus = r.adjustment.cpuset_cpus.clone().unwrap();
        assert!(cpus == "1-2" || cpus.split(['-', ',']).count() == 2, "{cpus}");
        assert_eq!(r.adjustment.cpuset_mems.as_deref(), Some("0"));
        fp.run_pod_sandbox(&big).await.unwrap();
        let err = fp.create_container(&big, &bc).await.unwrap_err();
        assert_eq!(
            err.to_string(),
            "rpc error: code = Unknown desc = TopologyAffinityError: Resources cannot be allocated with Topology locality"
        );
        // The runtime restarts: the agent connects again and is synchronized.
        fp.close("restart").await;
    });
    let fp2 = accept(std::slice::from_ref(&p), std::slice::from_ref(&c));
    assert_eq!(fp2.name(), "nmm");

    let body = http_get(&metrics, "/metrics");
    assert!(body.starts_with("HTTP/1.1 200"), "{body}");
    assert!(body.contains("\nnmm_pods 1\n"), "{body}");
    assert!(body.contains("nmm_exclusive_cpus 2\n"), "{body}");
    assert!(
        body.contains("nmm_admission_rejections_total{reason=\"TopologyAffinityError\"} 1"),
        "{body}"
    );

    let mut child = child;
    let st = Command::new("kill")
        .args(["-TERM", &child.0.id().to_string()])
        .status()
        .unwrap();
    assert!(st.success());
    let status = wait_timeout(&mut child.0, Duration::from_secs(20));
    let mut rest = String::new();
    out.read_to_string(&mut rest).unwrap();
    let err = stderr.join().unwrap();
    assert_eq!(status.code(), Some(0), "stdout: {rest}\nstderr: {err}");
    assert!(rest.contains("stopped"), "{rest}");
    assert!(err.contains("registered with containerd"), "{err}");
    assert!(err.contains("reconnecting"), "{err}");
    drop(fp2);
}

struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn wait_timeout(c: &mut std::process::Child, t: Duration) -> std::process::ExitStatus {
    let t0 = std::time::Instant::now();
    loop {
        if let Some(s) = c.try_wait().unwrap() {
            return s;
        }
        assert!(t0.elapsed() < t, "nmm agent did not stop on SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    }
}
