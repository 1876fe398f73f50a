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
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut body = String::new();
    s.read_to_string(&mut body).unwrap();
    body
}

/// `nmm agent` as a child process; its stderr (the log) read line by line.
struct Running {
    child: KillOnDrop,
    lines: std::sync::mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Running {
    fn spawn(args: &[&std::ffi::OsStr]) -> Running {
        let mut child = Command::new(env!("CARGO_BIN_EXE_nmm"))
            .arg("agent")
            .args(args)
            .env_remove("RUST_LOG")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let err = BufReader::new(child.stderr.take().unwrap());
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for l in err.lines() {
                let Ok(l) = l else { break };
                if tx.send(l).is_err() {
                    break;
                }
            }
        });
        Running {
            child: KillOnDrop(child),
            lines,
            seen: Vec::new(),
        }
    }

    /// The first log line (after those already read) containing `text`.
    fn wait_for(&mut self, text: &str) -> String {
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(l) => {
                    self.seen.push(l.clone());
                    if l.contains(text) {
                        return l;
                    }
                }
                Err(_) => panic!(
                    "no log line with {text:?}; log so far:\n{}",
                    self.seen.join("\n")
                ),
            }
        }
    }

    /// The metrics address from the `serving ...` line.
    fn metrics_addr(&mut self) -> String {
        let line = self.wait_for("serving");
        line.split("metrics on http://")
            .nth(1)
            .and_then(|s| s.split("/metrics").next())
            .unwrap_or_else(|| panic!("{line}"))
            .to_string()
    }

    /// SIGTERM, then the exit status and the rest of the log.
    fn terminate(mut self) -> (std::process::ExitStatus, Vec<String>) {
        let st = Command::new("kill")
            .args(["-TERM", &self.child.0.id().to_string()])
            .status()
            .unwrap();
        assert!(st.success());
        let status = wait_timeout(&mut self.child.0, Duration::from_secs(20));
        while let Ok(l) = self.lines.recv_timeout(Duration::from_secs(2)) {
            self.seen.push(l);
        }
        (status, self.seen)
    }
}

fn config(d: &std::path::Path) -> std::path::PathBuf {
    let cfg = d.join("node.yaml");
    std::fs::write(&cfg, SCENARIO).unwrap();
    cfg
}

/// `nmm agent` on a fresh state directory (`<d>/state`, the node of `SCENARIO`),
/// connecting to a fake runtime's NRI socket, metrics on a free port; `extra`
/// arguments are appended.
struct NriAgentRun {
    d: tempfile::TempDir,
    cfg: std::path::PathBuf,
    rt: tokio::runtime::Runtime,
    fake: FakeRuntime,
    agent: Running,
}

impl NriAgentRun {
    fn start(extra: &[&str]) -> NriAgentRun {
        let d = tempfile::tempdir().unwrap();
        let cfg = config(d.path());
        let sock = d.path().join("nri.sock");
        let rt = nmm_agent::nri::runtime().unwrap();
        let fake = rt.block_on(async { FakeRuntime::listen(&sock) }).unwrap();
        let state = d.path().join("state");
        let mut args: Vec<&std::ffi::OsStr> = vec![
            "--config".as_ref(),
            cfg.as_os_str(),
            "--state-dir".as_ref(),
            state.as_os_str(),
            "--create-state-dir".as_ref(),
            "--nri-socket".as_ref(),
            sock.as_os_str(),
            "--metrics-addr".as_ref(),
            "127.0.0.1:0".as_ref(),
        ];
        args.extend(extra.iter().map(|a| std::ffi::OsStr::new(*a)));
        let agent = Running::spawn(&args);
        NriAgentRun {
            d,
            cfg,
            rt,
            fake,
            agent,
        }
    }
}

#[test]
fn agent_serves_nri_metrics_and_stops_on_sigterm() {
    // the directory lives as long as the test
    let NriAgentRun {
        d: _d,
        cfg: _,
        rt,
        fake,
        mut agent,
    } = NriAgentRun::start(&[]);
    agent.wait_for("restored 0 pods");
    let line = agent.wait_for("serving");
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
    assert!(body.contains("\nnmm_nri_reconnects_total 1\n"), "{body}");

    let (status, log) = agent.terminate();
    let log = log.join("\n");
    assert_eq!(status.code(), Some(0), "{log}");
    assert!(log.contains("stopped"), "{log}");
    assert!(log.contains("registered with containerd"), "{log}");
    assert!(log.contains("reconnecting"), "{log}");
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

/// `2026-12-04T03:12:04.123456Z` and the like (RFC 3339, UTC or an offset).
fn is_rfc3339(t: &str) -> bool {
    let b = t.as_bytes();
    let digits =
        |r: std::ops::Range<usize>| b.get(r).is_some_and(|s| s.iter().all(u8::is_ascii_digit));
    if b.len() < 20
        || !digits(0..4)
        || b[4] != b'-'
        || !digits(5..7)
        || b[7] != b'-'
        || !digits(8..10)
        || b[10] != b'T'
        || !digits(11..13)
        || b[13] != b':'
        || !digits(14..16)
        || b[16] != b':'
        || !digits(17..19)
    {
        return false;
    }
    let mut rest = &t[19..];
    if let Some(f) = rest.strip_prefix('.') {
        let n = f.bytes().take_while(u8::is_ascii_digit).count();
        if n == 0 {
            return false;
        }
        rest = &f[n..];
    }
    rest == "Z"
        || (rest.len() == 6
            && (rest.starts_with('+') || rest.starts_with('-'))
            && rest.as_bytes()[3] == b':')
}

#[test]
fn rfc3339_checker() {
    assert!(is_rfc3339("2026-12-04T03:12:04.123456Z"));
    assert!(is_rfc3339("2026-12-04T03:12:04+01:00"));
    assert!(!is_rfc3339("2026-12-04 03:12:04Z"));
    assert!(!is_rfc3339("INFO"));
}

/// A metrics port that is taken stops the agent with an error exit, and it never
/// connects to the NRI socket (containerd would log `ttrpc: closed` otherwise).
#[test]
fn a_taken_metrics_port_exits_before_any_nri_connection() {
    let d = tempfile::tempdir().unwrap();
    let cfg = config(d.path());
    let sock = d.path().join("nri.sock");
    let rt = nmm_agent::nri::runtime().unwrap();
    let fake = rt.block_on(async { FakeRuntime::listen(&sock) }).unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let out = Command::new(env!("CARGO_BIN_EXE_nmm"))
        .arg("agent")
        .arg("--config")
        .arg(&cfg)
        .arg("--state-dir")
        .arg(d.path().join("state"))
        .arg("--create-state-dir")
        .arg("--nri-socket")
        .arg(&sock)
        .args(["--metrics-addr", &addr])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains(&format!("metrics: cannot listen on {addr}")),
        "{err}"
    );
    assert!(err.contains("ERROR"), "{err}");
    // Nothing in the runtime's accept queue: the agent never dialled the socket.
    let dialled = rt.block_on(async {
        tokio::time::timeout(Duration::from_millis(300), fake.accept_raw()).await
    });
    assert!(dialled.is_err(), "the agent connected to the NRI socket");
    // ... and it did not start on the state directory either.
    assert!(!d.path().join("state").join("memory_manager_state").exists());
}

/// `/healthz` 200; `/readyz` 503 until the agent is registered with the runtime, then
/// 200; after an admission the kubelet-named metrics count it; every log line starts
/// with an RFC 3339 timestamp and a level, and the admission is one event.
#[test]
fn probes_kubelet_metrics_and_timestamped_logs() {
    // the directory lives as long as the test
    let NriAgentRun {
        d: _d,
        cfg: _,
        rt,
        fake,
        mut agent,
    } = NriAgentRun::start(&[]);
    let addr = agent.metrics_addr();
    assert!(http_get(&addr, "/healthz").starts_with("HTTP/1.1 200"));
    // The agent has dialled the socket, but the runtime has not accepted it yet.
    let r = http_get(&addr, "/readyz");
    assert!(r.starts_with("HTTP/1.1 503"), "{r}");
    assert!(
        r.contains("not registered with the container runtime"),
        "{r}"
    );

    let mut fp = rt.block_on(fake.accept(&[], &[])).unwrap();
    let t0 = std::time::Instant::now();
    loop {
        let r = http_get(&addr, "/readyz");
        if r.starts_with("HTTP/1.1 200") {
            break;
        }
        assert!(t0.elapsed() < Duration::from_secs(10), "never ready: {r}");
        std::thread::sleep(Duration::from_millis(20));
    }
    let (p, c) = guaranteed("db", "00000000-0000-4000-8000-000000000001", 2);
    let (big, bc) = guaranteed("big", "00000000-0000-4000-8000-000000000002", 9);
    rt.block_on(async {
        fp.run_pod_sandbox(&p).await.unwrap();
        fp.create_container(&p, &c).await.unwrap();
        fp.run_pod_sandbox(&big).await.unwrap();
        fp.create_container(&big, &bc).await.unwrap_err();
    });
    let body = http_get(&addr, "/metrics");
    for line in [
        "topology_manager_admission_requests_total 2",
        "topology_manager_admission_errors_total 1",
        "topology_manager_admission_duration_ms_count 2",
        "cpu_manager_pinning_requests_total 1",
        "cpu_manager_pinning_errors_total 0",
        "memory_manager_pinning_requests_total 1",
        "memory_manager_pinning_errors_total 0",
        "nmm_nri_connected 1",
    ] {
        assert!(body.lines().any(|l| l == line), "{line} missing in\n{body}");
    }
    agent.wait_for("admission rejected");
    let (status, log) = agent.terminate();
    assert_eq!(status.code(), Some(0), "{}", log.join("\n"));
    assert!(log.len() >= 5, "{log:?}");
    for l in &log {
        let mut words = l.split_whitespace();
        let ts = words.next().unwrap_or("");
        assert!(is_rfc3339(ts), "no RFC 3339 timestamp: {l}");
        let level = words.next().unwrap_or("");
        assert!(
            ["ERROR", "WARN", "INFO", "DEBUG", "TRACE"].contains(&level),
            "no level: {l}"
        );
    }
    let admitted = log
        .iter()
        .find(|l| l.contains("admission admitted"))
        .expect("an admission event");
    for field in [
        "pod=\"default/db\"",
        "container=app",
        "verdict=\"admitted\"",
        "hint=\"{0} preferred\"",
    ] {
        assert!(admitted.contains(field), "{field} missing in {admitted}");
    }
    let rejected = log
        .iter()
        .find(|l| l.contains("admission rejected"))
        .unwrap();
    assert!(
        rejected.contains("reason=\"TopologyAffinityError\""),
        "{rejected}"
    );
}

/// `--log-format json`: every line is a JSON object with an RFC 3339 timestamp and a
/// level; the admission event's fields are JSON fields. `--log-level warn` drops info.
#[test]
fn json_logs_parse_and_the_level_filters() {
    let NriAgentRun {
        d,
        cfg,
        rt,
        fake,
        mut agent,
    } = NriAgentRun::start(&["--log-format", "json"]);
    agent.wait_for("serving");
    let mut fp = rt.block_on(fake.accept(&[], &[])).unwrap();
    let (p, c) = guaranteed("db", "00000000-0000-4000-8000-000000000001", 2);
    rt.block_on(async {
        fp.run_pod_sandbox(&p).await.unwrap();
        fp.create_container(&p, &c).await.unwrap();
    });
    agent.wait_for("admission admitted");
    let (status, log) = agent.terminate();
    assert_eq!(status.code(), Some(0), "{}", log.join("\n"));
    let events: Vec<serde_json::Value> = log
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    for e in &events {
        assert!(is_rfc3339(e["timestamp"].as_str().unwrap()), "{e}");
        assert!(e["level"].is_string(), "{e}");
    }
    let adm = events
        .iter()
        .find(|e| e["fields"]["message"] == "admission admitted")
        .unwrap();
    assert_eq!(adm["fields"]["pod"], "default/db");
    assert_eq!(adm["fields"]["container"], "app");
    assert_eq!(adm["fields"]["verdict"], "admitted");
    assert_eq!(adm["fields"]["hint"], "{0} preferred");

    // --log-level warn: no info lines at all (a clean start and stop log nothing).
    let mut quiet = Running::spawn(&[
        "--config".as_ref(),
        cfg.as_os_str(),
        "--state-dir".as_ref(),
        d.path().join("state2").as_os_str(),
        "--create-state-dir".as_ref(),
        "--no-nri".as_ref(),
        "--metrics-addr".as_ref(),
        "off".as_ref(),
        "--log-level".as_ref(),
        "warn".as_ref(),
    ]);
    // Started once the checkpoints are written; the signal handlers follow at once.
    let t0 = std::time::Instant::now();
    while !d.path().join("state2/memory_manager_state").exists() {
        assert!(t0.elapsed() < Duration::from_secs(10));
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(300));
    while let Ok(l) = quiet.lines.try_recv() {
        quiet.seen.push(l);
    }
    let (status, log) = quiet.terminate();
    assert_eq!(status.code(), Some(0), "{log:?}");
    assert!(log.iter().all(|l| !l.contains(" INFO ")), "{log:?}");
}

/// `--memory-drift-tolerance`: a value the kubelet would refuse is the flag's problem
/// (exit 2, naming the flag, never the `--reconcile` hint meant for checkpoints); a good
/// value is the bound in effect, in the log and in the metrics.
#[test]
fn memory_drift_tolerance_flag() {
    let d = tempfile::tempdir().unwrap();
    let gated = d.path().join("gated.yaml");
    std::fs::write(
        &gated,
        format!("{SCENARIO}  featureGates: {{MemoryManagerDriftTolerance: true}}\n"),
    )
    .unwrap();
    let ungated = config(d.path());
    let state = d.path().join("state");
    let run = |cfg: &std::path::Path, value: &str| {
        let o = Command::new(env!("CARGO_BIN_EXE_nmm"))
            .arg("agent")
            .arg("--config")
            .arg(cfg)
            .arg("--state-dir")
            .arg(&state)
            .args(["--create-state-dir", "--no-nri", "--metrics-addr", "off"])
            .arg(format!("--memory-drift-tolerance={value}"))
            .env_remove("RUST_LOG")
            .output()
            .unwrap();
        (o.status.code(), String::from_utf8(o.stderr).unwrap())
    };
    for (cfg, value, why) in [
        (&gated, "lots", "neither \"off\", \"auto\" nor a quantity"),
        (&gated, "-1Mi", "is negative"),
        (&gated, "1e999999999", "--memory-drift-tolerance"),
        (
            &ungated,
            "64Mi",
            "needs the feature gate MemoryManagerDriftTolerance",
        ),
    ] {
        let (code, err) = run(cfg, value);
        assert_eq!(code, Some(2), "{value}: {err}");
        assert!(err.contains("--memory-drift-tolerance"), "{value}: {err}");
        assert!(err.contains(why), "{value}: {err}");
        assert!(!err.contains("--reconcile"), "{value}: {err}");
    }

    // The bound is compared against at a restart: a first start writes checkpoints.
    let args: [&std::ffi::OsStr; 8] = [
        "--config".as_ref(),
        gated.as_os_str(),
        "--state-dir".as_ref(),
        state.as_os_str(),
        "--create-state-dir".as_ref(),
        "--no-nri".as_ref(),
        "--metrics-addr".as_ref(),
        "127.0.0.1:0".as_ref(),
    ];
    let mut first = Running::spawn(&args);
    first.metrics_addr();
    let (status, log) = first.terminate();
    assert_eq!(status.code(), Some(0), "{}", log.join("\n"));
    let mut with_flag = args.to_vec();
    with_flag.extend([
        std::ffi::OsStr::new("--memory-drift-tolerance"),
        "64Mi".as_ref(),
    ]);
    let mut agent = Running::spawn(&with_flag);
    agent.wait_for("memory-drift-tolerance 64Mi: explicit bound");
    let addr = agent.metrics_addr();
    let body = http_get(&addr, "/metrics");
    assert!(
        body.contains("nmm_memory_drift_tolerance_bytes 67108864"),
        "{body}"
    );
    let (status, log) = agent.terminate();
    assert_eq!(status.code(), Some(0), "{}", log.join("\n"));
}

/// PodResources devices: `machine.devices` of the scenario given as `--config`, and the
/// kubelet's device checkpoint under `--kubelet-root-dir`, read at start. A corrupted
/// checkpoint is a warning naming the file and a metric, never a stop; a bad `--devices`
/// file is exit 2 naming the file and the field.
#[test]
fn devices_from_machine_devices_and_the_kubelets_checkpoint() {
    use nmm_core::checkpoint::device::{encode, DeviceCheckpoint};
    use nmm_core::devicemanager::pod_devices::AllocInfo;
    let d = tempfile::tempdir().unwrap();
    let cfg = d.path().join("node.yaml");
    let devices = "  devices:\n    - {resource: nvidia.com/gpu, id: gpu-0, numa: [0]}\n    - {resource: nvidia.com/gpu, id: gpu-1, numa: [1]}\nkubelet:\n";
    std::fs::write(&cfg, SCENARIO.replacen("kubelet:\n", devices, 1)).unwrap();
    let root = d.path().join("kubelet");
    let file = root.join("device-plugins/kubelet_internal_checkpoint");
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    let mut cp = DeviceCheckpoint::default();
    let mut info = AllocInfo::default();
    info.by_numa.insert(1, ["gpu-1".to_string()].into());
    cp.pod_devices
        .insert("uid-a", "app", "nvidia.com/gpu", info);
    let good = encode(&cp);
    let state = d.path().join("state");
    let args: [&std::ffi::OsStr; 10] = [
        "--config".as_ref(),
        cfg.as_os_str(),
        "--state-dir".as_ref(),
        state.as_os_str(),
        "--create-state-dir".as_ref(),
        "--no-nri".as_ref(),
        "--metrics-addr".as_ref(),
        "127.0.0.1:0".as_ref(),
        "--kubelet-root-dir".as_ref(),
        root.as_os_str(),
    ];
    let metric = |body: &str, name: &str| {
        body.lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_else(|| panic!("{name} not in {body}"))
            .to_string()
    };
    for (text, line, reads, errors) in [
        (
            good.clone(),
            "read the kubelet's device allocations (1 pods hold devices)",
            1,
            0,
        ),
        (
            good.replace("\"Checksum\":", "\"Checksum\":9"),
            "the kubelet's device checkpoint cannot be used (checkpoint is corrupted)",
            0,
            1,
        ),
    ] {
        std::fs::write(&file, text).unwrap();
        let mut agent = Running::spawn(&args);
        agent.wait_for("PodResources devices: 2 registered devices (machine.devices)");
        let l = agent.wait_for(line);
        assert!(l.contains(&file.display().to_string()), "{l}");
        let addr = agent.metrics_addr();
        let body = http_get(&addr, "/metrics");
        assert_eq!(
            metric(&body, "nmm_device_checkpoint_reads_total"),
            format!("nmm_device_checkpoint_reads_total {reads}")
        );
        assert_eq!(
            metric(&body, "nmm_device_checkpoint_read_errors_total"),
            format!("nmm_device_checkpoint_read_errors_total {errors}")
        );
        let (status, log) = agent.terminate();
        assert_eq!(status.code(), Some(0), "{}", log.join("\n"));
    }

    // --devices: a NUMA node the machine does not have, or no devices list at all.
    let bad = d.path().join("bad.yaml");
    for (text, want) in [
        (
            "devices:\n  - {resource: nvidia.com/gpu, id: gpu-0, numa: [7]}\n",
            "bad.yaml: machine.devices[0].numa[0]: 7 is not a NUMA node",
        ),
        ("numaNodes: []\n", "bad.yaml: devices: missing"),
    ] {
        std::fs::write(&bad, text).unwrap();
        let o = Command::new(env!("CARGO_BIN_EXE_nmm"))
            .arg("agent")
            .args(args)
            .arg("--devices")
            .arg(&bad)
            .env_remove("RUST_LOG")
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{err}");
        assert!(err.contains(want), "{want}: {err}");
    }
}
