//! The PodResources v1 gRPC service through a real tonic client over the unix socket,
//! the metrics endpoint through a plain TCP client, and what both do with bad input.
//! `python_and_grpcurl_clients` runs `tests/py/run.sh` (Python grpcio and grpcurl).

mod support;

use nmm_agent::daemon::{self, Endpoints, Running};
use nmm_agent::podresources::proto::{
    AllocatableResourcesRequest, ContainerMemory, GetPodResourcesRequest, ListPodResourcesRequest,
};
use nmm_agent::testkit::{self, pod};
use nmm_agent::{Agent, AgentOptions};
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use support::client;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const MI: u64 = 1 << 20;
const UID_A: &str = "aaaaaaaa-0000-4000-8000-000000000001";
const UID_B: &str = "bbbbbbbb-0000-4000-8000-000000000002";
const UID_C: &str = "cccccccc-0000-4000-8000-000000000003";
const UID_X: &str = "dddddddd-0000-4000-8000-000000000004";

struct Fixture {
    _dirs: (tempfile::TempDir, tempfile::TempDir),
    agent: Arc<Agent>,
    socket: PathBuf,
    running: Running,
}

/// An agent with three pods (and one rejected) serving on a fresh socket and port.
async fn fixture() -> Fixture {
    let state = tempfile::tempdir().unwrap();
    let run = tempfile::tempdir().unwrap();
    let (agent, _) = Agent::start(AgentOptions {
        machine: testkit::machine(),
        kubelet: testkit::kubelet_config(),
        state_dir: state.path().to_path_buf(),
        reconcile: None,
        cgroup_root: None,
        devices: Default::default(),
    })
    .unwrap();
    let web = pod(UID_A, "web", &[("app", "2", "1Gi", Some("128Mi"))], &[]);
    let batch = pod(UID_B, "batch", &[("work", "", "", None)], &[]);
    let mut db = pod(
        UID_C,
        "db",
        &[("main", "1", "512Mi", None)],
        &[("proxy", "1", "256Mi", None)],
    );
    db.spec.as_mut().unwrap().init_containers.as_mut().unwrap()[0].restart_policy =
        Some("Always".into());
    db.metadata.namespace = Some("prod".into());
    for p in [&web, &batch, &db] {
        assert!(agent.admit_pod(p).unwrap().admitted);
    }
    // 9 CPUs never fit one NUMA node (8 CPUs each): single-numa-node rejects it.
    let big = pod(UID_X, "big", &[("x", "9", "1Gi", None)], &[]);
    let r = agent.admit_pod(&big).unwrap();
    assert_eq!(r.reason.as_deref(), Some("TopologyAffinityError"));
    let agent = Arc::new(agent);
    let socket = run.path().join("pod-resources").join("kubelet.sock");
    let running = daemon::serve(
        agent.clone(),
        &Endpoints {
            podresources_socket: Some(socket.clone()),
            metrics_addr: Some("127.0.0.1:0".parse().unwrap()),
        },
    )
    .await
    .unwrap();
    Fixture {
        _dirs: (state, run),
        agent,
        socket,
        running,
    }
}

fn mem(m: &ContainerMemory) -> (String, u64, Vec<i64>) {
    (
        m.memory_type.clone(),
        m.size,
        m.topology
            .as_ref()
            .map(|t| t.nodes.iter().map(|n| n.id).collect())
            .unwrap_or_default(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_allocatable_and_get_over_the_unix_socket() {
    let f = fixture().await;
    let meta = std::fs::metadata(&f.socket).unwrap();
    assert!(meta.file_type().is_socket());
    assert_eq!(meta.permissions().mode() & 0o777, 0o600, "socket mode");

    let mut c = client(&f.socket).await;
    let list = c
        .list(ListPodResourcesRequest {})
        .await
        .unwrap()
        .into_inner();
    let names: Vec<(&str, &str)> = list
        .pod_resources
        .iter()
        .map(|p| (p.namespace.as_str(), p.name.as_str()))
        .collect();
    assert_eq!(
        names,
        vec![("default", "web"), ("default", "batch"), ("prod", "db")]
    );

    // web: one core (CPU 1 and its sibling 9; CPU 0 is reserved), memory on node 0.
    let web = &list.pod_resources[0].containers;
    assert_eq!(web.len(), 1);
    assert_eq!(web[0].name, "app");
    assert_eq!(web[0].cpu_ids, vec![1, 9]);
    assert_eq!(
        web[0].memory.iter().map(mem).collect::<Vec<_>>(),
        vec![
            ("hugepages-2Mi".to_string(), 128 * MI, vec![0]),
            ("memory".to_string(), 1024 * MI, vec![0]),
        ]
    );
    // batch: BestEffort, shared pool: nothing exclusive.
    let batch = &list.pod_resources[1].containers;
    assert_eq!(batch[0].name, "work");
    assert!(batch[0].cpu_ids.is_empty() && batch[0].memory.is_empty());
    // db: the sidecar first, then the app container.
    let db = &list.pod_resources[2].containers;
    let db_names: Vec<&str> = db.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(db_names, vec!["proxy", "main"]);
    assert_eq!(db[0].cpu_ids.len(), 1);
    assert_eq!(db[1].cpu_ids.len(), 1);
    assert_eq!(
        mem(&db[0].memory[0]),
        ("memory".to_string(), 256 * MI, vec![0])
    );
    assert_eq!(
        mem(&db[1].memory[0]),
        ("memory".to_string(), 512 * MI, vec![0])
    );

    let alloc = c
        .get_allocatable_resources(AllocatableResourcesRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(alloc.cpu_ids, (1..16).collect::<Vec<i64>>());
    assert_eq!(
        alloc.memory.iter().map(mem).collect::<Vec<_>>(),
        vec![
            ("hugepages-2Mi".to_string(), 512 * MI, vec![0]),
            ("memory".to_string(), (8192 - 600 - 512) * MI, vec![0]),
            ("hugepages-2Mi".to_string(), 512 * MI, vec![1]),
            ("memory".to_string(), (8192 - 500 - 512) * MI, vec![1]),
        ]
    );

    let got = c
        .get(GetPodResourcesRequest {
            pod_name: "db".into(),
            pod_namespace: "prod".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(got.pod_resources.unwrap(), list.pod_resources[2]);
    let e = c
        .get(GetPodResourcesRequest {
            pod_name: "db".into(),
            pod_namespace: "default".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::Unknown);
    assert_eq!(e.message(), "pod db in namespace default not found");

    // After a removal the answer follows.
    f.agent.remove_pod(UID_A).unwrap();
    let list = c
        .list(ListPodResourcesRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(list.pod_resources.len(), 2);
    f.running.stop().await.unwrap();
    assert!(!f.socket.exists(), "the socket is removed at stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_frames_and_oversized_messages_are_refused_without_a_crash() {
    let f = fixture().await;
    // 1. Not HTTP/2 at all.
    let mut s = tokio::net::UnixStream::connect(&f.socket).await.unwrap();
    let junk: Vec<u8> = (0..65536u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    let _ = s.write_all(&junk).await;
    let mut buf = vec![0u8; 4096];
    let closed = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
    })
    .await;
    assert!(
        closed.is_ok(),
        "the server closes a connection speaking garbage"
    );

    // 2. A valid preface, then a frame claiming 16 MiB on stream 0.
    let mut s = tokio::net::UnixStream::connect(&f.socket).await.unwrap();
    let mut bytes = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    bytes.extend_from_slice(&[0, 0, 0, 0x4, 0, 0, 0, 0, 0]); // empty SETTINGS
    bytes.extend_from_slice(&[0xff, 0xff, 0xff, 0x0, 0x1, 0, 0, 0, 0]); // DATA, stream 0
    bytes.extend_from_slice(&[0xab; 1024]);
    let _ = s.write_all(&bytes).await;
    let closed = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
    })
    .await;
    assert!(
        closed.is_ok(),
        "the server closes a connection after a bad frame"
    );

    // 3. A request over the 4 MiB limit.
    let mut c = client(&f.socket).await;
    let e = c
        .get(GetPodResourcesRequest {
            pod_name: "x".repeat(5 << 20),
            pod_namespace: "default".into(),
        })
        .await
        .unwrap_err();
    assert!(
        matches!(
            e.code(),
            tonic::Code::OutOfRange | tonic::Code::ResourceExhausted
        ),
        "{e:?}"
    );

    // Still serving.
    let mut c = client(&f.socket).await;
    let list = c
        .list(ListPodResourcesRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(list.pod_resources.len(), 3);

    // A second server on the same socket refuses to start; after stop, the path is free.
    let again = daemon::serve(
        f.agent.clone(),
        &Endpoints {
            podresources_socket: Some(f.socket.clone()),
            metrics_addr: None,
        },
    )
    .await;
    assert!(again
        .unwrap_err()
        .to_string()
        .contains("another process is serving"));
    f.running.stop().await.unwrap();
    let r = daemon::serve(
        f.agent.clone(),
        &Endpoints {
            podresources_socket: Some(f.socket.clone()),
            metrics_addr: None,
        },
    )
    .await
    .unwrap();
    r.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_are_rate_limited_like_the_kubelets() {
    let f = fixture().await;
    let mut c = client(&f.socket).await;
    // The calls are sent all at once (one HTTP/2 connection, 200 streams), not one after
    // the other: sequential calls on a loaded machine can take longer than the bucket's
    // 10 ms refill each and never meet the limit. 200 calls are over the burst of 10 plus
    // 100/s unless the server needs more than 1.9 s for them.
    let mut calls = tokio::task::JoinSet::new();
    for _ in 0..200 {
        let mut c = c.clone();
        calls.spawn(async move { c.list(ListPodResourcesRequest {}).await });
    }
    let mut limited = 0;
    for r in calls.join_all().await {
        if let Err(e) = r {
            assert_eq!(e.code(), tonic::Code::ResourceExhausted);
            assert_eq!(e.message(), "rejected by rate limit");
            limited += 1;
        }
    }
    assert!(limited > 0, "200 calls at once go over a burst of 10");
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert!(c.list(ListPodResourcesRequest {}).await.is_ok());
    f.running.stop().await.unwrap();
}

async fn http(addr: std::net::SocketAddr, request: &[u8]) -> String {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let _ = s.write_all(request).await;
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

fn sample(text: &str, name_and_labels: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name_and_labels)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("{name_and_labels} missing in\n{text}"))
        .parse()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_scrape_has_concrete_values() {
    let f = fixture().await;
    let addr = f.running.metrics_addr.unwrap();
    assert!(addr.ip().is_loopback());
    let resp = http(
        addr,
        b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(resp.starts_with("HTTP/1.1 200 OK\r\n"), "{resp}");
    assert!(resp
        .to_ascii_lowercase()
        .contains("content-type: application/openmetrics-text"));
    let body = resp.split("\r\n\r\n").nth(1).unwrap();

    let gi8 = 8192.0 * MI as f64;
    let m = MI as f64;
    for (node, sr) in [(0, 600.0), (1, 500.0)] {
        let l = format!("{{numa_node=\"{node}\",resource=\"memory\"}}");
        assert_eq!(
            sample(body, &format!("nmm_numa_memory_total_bytes{l}")),
            gi8
        );
        assert_eq!(
            sample(body, &format!("nmm_numa_memory_system_reserved_bytes{l}")),
            sr * m
        );
        assert_eq!(
            sample(body, &format!("nmm_numa_memory_allocatable_bytes{l}")),
            (8192.0 - sr - 512.0) * m
        );
    }
    // web (1Gi) and db (256Mi + 512Mi) live on node 0.
    let l0 = "{numa_node=\"0\",resource=\"memory\"}";
    assert_eq!(
        sample(body, &format!("nmm_numa_memory_reserved_bytes{l0}")),
        1792.0 * m
    );
    assert_eq!(
        sample(body, &format!("nmm_numa_memory_free_bytes{l0}")),
        (8192.0 - 600.0 - 512.0 - 1792.0) * m
    );
    let hp0 = "{numa_node=\"0\",resource=\"hugepages-2Mi\"}";
    assert_eq!(
        sample(body, &format!("nmm_numa_memory_total_bytes{hp0}")),
        512.0 * m
    );
    assert_eq!(
        sample(body, &format!("nmm_numa_memory_reserved_bytes{hp0}")),
        128.0 * m
    );
    assert_eq!(
        sample(body, &format!("nmm_numa_memory_free_bytes{hp0}")),
        384.0 * m
    );
    let l1 = "{numa_node=\"1\",resource=\"memory\"}";
    assert_eq!(
        sample(body, &format!("nmm_numa_memory_reserved_bytes{l1}")),
        0.0
    );

    assert_eq!(sample(body, "nmm_admissions_total"), 3.0);
    assert_eq!(
        sample(
            body,
            "nmm_admission_rejections_total{reason=\"TopologyAffinityError\"}"
        ),
        1.0
    );
    assert_eq!(sample(body, "nmm_admission_duration_seconds_count"), 4.0);
    assert!(sample(body, "nmm_admission_duration_seconds_sum") > 0.0);
    assert_eq!(
        sample(body, "nmm_admission_duration_seconds_bucket{le=\"+Inf\"}"),
        4.0
    );
    assert_eq!(sample(body, "nmm_pods"), 3.0);
    assert_eq!(sample(body, "nmm_exclusive_cpus"), 4.0);
    assert_eq!(sample(body, "nmm_shared_pool_cpus"), 12.0);
    assert!(body.trim_end().ends_with("# EOF"));

    // Bad requests get an answer or a closed connection, never a dead server.
    assert!(http(addr, b"GARBAGE\r\n\r\n")
        .await
        .starts_with("HTTP/1.1 400"));
    assert!(
        http(addr, b"POST /metrics HTTP/1.1\r\nConnection: close\r\n\r\n")
            .await
            .starts_with("HTTP/1.1 405")
    );
    assert!(
        http(addr, b"GET /nope HTTP/1.1\r\nConnection: close\r\n\r\n")
            .await
            .starts_with("HTTP/1.1 404")
    );
    // A request head over the limit: 431 (hyper) and a closed connection.
    let huge = vec![b'a'; 64 * 1024];
    assert!(http(addr, &huge).await.starts_with("HTTP/1.1 4"));
    assert!(http(addr, &[0xff, 0xfe, b'\r', b'\n', b'\r', b'\n'])
        .await
        .starts_with("HTTP/1.1 400"));
    // A silent client does not block others.
    let _idle = tokio::net::TcpStream::connect(addr).await.unwrap();
    let resp = http(addr, b"GET /metrics HTTP/1.0\r\n\r\n").await;
    assert!(resp.starts_with("HTTP/1.0 200 OK"), "{resp}");
    f.running.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_and_grpcurl_clients() {
    let f = fixture().await;
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/py/run.sh");
    let socket = f.socket.clone();
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new("bash")
            .arg(script)
            .arg(&socket)
            .env(
                "NMM_PY_VENV",
                std::env::var("NMM_PY_VENV").unwrap_or_else(|_| {
                    format!("{}/nmm-agent-pyvenv", env!("CARGO_TARGET_TMPDIR"))
                }),
            )
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    if out.status.code() == Some(77) {
        eprintln!("SKIPPED python_and_grpcurl_clients: {}", stderr.trim());
        f.running.stop().await.unwrap();
        return;
    }
    assert!(
        out.status.success(),
        "run.sh failed\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    let mut sections = std::collections::BTreeMap::new();
    for line in stdout.lines() {
        if let Some((k, v)) = line.split_once('\t') {
            sections.insert(
                k.to_string(),
                serde_json::from_str::<serde_json::Value>(v).unwrap(),
            );
        }
    }
    eprintln!("calls answered: {:?}", sections.keys().collect::<Vec<_>>());
    // Python grpcio: field names as in the proto.
    let py_list = &sections["python.List"];
    assert_eq!(py_list["pod_resources"][0]["name"], "web");
    assert_eq!(
        py_list["pod_resources"][0]["containers"][0]["cpu_ids"],
        serde_json::json!(["1", "9"])
    );
    assert_eq!(
        py_list["pod_resources"][0]["containers"][0]["memory"][1],
        serde_json::json!({"memory_type": "memory", "size": "1073741824", "topology": {"nodes": [{}]}})
    );
    assert_eq!(py_list["pod_resources"][2]["namespace"], "prod");
    let py_alloc = &sections["python.GetAllocatableResources"];
    assert_eq!(py_alloc["cpu_ids"].as_array().unwrap().len(), 15);
    assert_eq!(py_alloc["memory"][3]["topology"]["nodes"][0]["ID"], "1");
    assert_eq!(sections["python.Get"]["pod_resources"]["name"], "db");
    assert_eq!(sections["python.GetMissing"]["code"], "UNKNOWN");
    assert_eq!(
        sections["python.GetMissing"]["details"],
        "pod nope in namespace default not found"
    );
    assert_eq!(sections["python.BadProtobuf"]["code"], "INTERNAL");
    // tonic answers OUT_OF_RANGE where grpc-go (the kubelet) says RESOURCE_EXHAUSTED.
    let code = sections["python.Oversized"]["code"].as_str().unwrap();
    assert!(
        code == "OUT_OF_RANGE" || code == "RESOURCE_EXHAUSTED",
        "{code}"
    );
    assert_eq!(sections["python.ListAfter"]["pods"], 3);
    // grpcurl (JSON names).
    if let Some(g) = sections.get("grpcurl.List") {
        assert_eq!(
            g["podResources"][0]["containers"][0]["cpuIds"],
            serde_json::json!(["1", "9"])
        );
        assert_eq!(
            sections["grpcurl.Get"]["podResources"]["containers"][0]["name"],
            "proxy"
        );
        assert_eq!(
            sections["grpcurl.GetAllocatableResources"]["memory"][1]["size"],
            ((8192 - 600 - 512) * MI).to_string()
        );
    } else {
        eprintln!("grpcurl part skipped: {}", stderr.trim());
    }
    f.running.stop().await.unwrap();
}
