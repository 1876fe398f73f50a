//! The metrics listener's HTTP server under slow, idle and too many clients, and
//! `/healthz` / `/readyz` over real sockets.

use nmm_agent::daemon::{self, Endpoints};
use nmm_agent::http::HttpOptions;
use nmm_agent::testkit;
use nmm_agent::{Agent, AgentOptions};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn agent(dir: &std::path::Path) -> Arc<Agent> {
    let (a, _) = Agent::start(AgentOptions {
        machine: testkit::machine(),
        kubelet: testkit::kubelet_config(),
        state_dir: dir.to_path_buf(),
        reconcile: None,
        cgroup_root: None,
        devices: Default::default(),
    })
    .unwrap();
    Arc::new(a)
}

async fn get(addr: SocketAddr, path: &str) -> String {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut out))
        .await
        .expect("an answer within 10 s")
        .unwrap();
    String::from_utf8_lossy(&out).into_owned()
}

fn opts() -> HttpOptions {
    HttpOptions {
        header_timeout: Duration::from_millis(500),
        idle_timeout: Duration::from_millis(800),
        max_connections: 16,
        ..Default::default()
    }
}

fn endpoints() -> Endpoints {
    Endpoints {
        podresources_socket: None,
        metrics_addr: Some("127.0.0.1:0".parse().unwrap()),
    }
}

/// The old server gave up under 70 slow connections; with 200 clients that send half a
/// request head and stall (more than the connection limit), health checks still answer:
/// each new connection closes the oldest, and the header timeout closes the rest.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_clients_do_not_starve_the_probes() {
    let d = tempfile::tempdir().unwrap();
    let bound = daemon::bind_with(&endpoints(), false, opts())
        .await
        .unwrap();
    let addr = bound.metrics_addr.unwrap();
    let running = bound.start(agent(d.path()));
    let mut slow = Vec::new();
    for _ in 0..200 {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(b"GET /metrics HTTP/1.1\r\nHost: sl")
            .await
            .unwrap();
        slow.push(s);
    }
    let t0 = Instant::now();
    let r = get(addr, "/healthz").await;
    assert!(r.starts_with("HTTP/1.1 200 OK"), "{r}");
    // At worst bounded by the header timeout of the stalled heads.
    assert!(t0.elapsed() < Duration::from_secs(9), "{:?}", t0.elapsed());
    // The stalled connections were closed (EOF or reset), not left open.
    let mut closed = 0;
    for mut s in slow.into_iter().take(16) {
        let mut buf = [0u8; 256];
        match tokio::time::timeout(Duration::from_secs(3), s.read(&mut buf)).await {
            Ok(Ok(_)) | Ok(Err(_)) => closed += 1,
            Err(_) => {}
        }
    }
    assert_eq!(closed, 16);
    running.stop().await.unwrap();
}

/// A keep-alive connection serves several requests, then is closed when idle.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keep_alive_then_idle_close() {
    let d = tempfile::tempdir().unwrap();
    let bound = daemon::bind_with(&endpoints(), false, opts())
        .await
        .unwrap();
    let addr = bound.metrics_addr.unwrap();
    let running = bound.start(agent(d.path()));
    let mut s = TcpStream::connect(addr).await.unwrap();
    for _ in 0..3 {
        s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let mut buf = vec![0u8; 1024];
        let n = s.read(&mut buf).await.unwrap();
        let text = String::from_utf8_lossy(&buf[..n]);
        assert!(text.starts_with("HTTP/1.1 200 OK"), "{text}");
        assert!(text.ends_with("ok\n"), "{text}");
    }
    // Keep-alive is shown by the three answers on one connection; how long the server
    // waited before closing is not asserted (on a loaded machine the client can read
    // the close late or early against its own clock), only that it closes.
    let mut buf = [0u8; 16];
    let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf))
        .await
        .expect("closed by the idle timeout")
        .unwrap_or(0);
    assert_eq!(n, 0);
    running.stop().await.unwrap();
}

/// Bound but not started (the books are being restored): the process answers
/// `/healthz`, `/readyz` says why it is not ready, `/metrics` is not there yet.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probes_before_and_after_the_books() {
    let d = tempfile::tempdir().unwrap();
    let bound = daemon::bind_with(&endpoints(), true, opts()).await.unwrap();
    let addr = bound.metrics_addr.unwrap();
    assert!(get(addr, "/healthz").await.starts_with("HTTP/1.1 200"));
    let r = get(addr, "/readyz").await;
    assert!(r.starts_with("HTTP/1.1 503"), "{r}");
    assert!(r.contains("the books are not restored yet"), "{r}");
    assert!(get(addr, "/metrics").await.starts_with("HTTP/1.1 503"));
    let a = agent(d.path());
    let running = bound.start(a.clone());
    let r = get(addr, "/readyz").await;
    assert!(
        r.contains("not registered with the container runtime"),
        "{r}"
    );
    a.metrics.set_nri_connected(true);
    assert!(get(addr, "/readyz").await.starts_with("HTTP/1.1 200"));
    assert!(get(addr, "/metrics")
        .await
        .contains("topology_manager_admission_requests_total 0"));
    running.stop().await.unwrap();
}

/// A taken port fails `bind` with a message naming the address and the flag.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_taken_port_is_an_error_at_bind() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let ep = Endpoints {
        podresources_socket: None,
        metrics_addr: Some(taken.local_addr().unwrap()),
    };
    let e = daemon::bind(&ep, true).await.unwrap_err();
    let text = format!("{e:#}");
    assert!(
        text.contains("metrics: cannot listen on 127.0.0.1:"),
        "{text}"
    );
    assert!(text.contains("--metrics-addr"), "{text}");
}

/// Idle connections (connected, sending nothing) beyond the connection limit cannot
/// starve the probes: with a header timeout far longer than the test, the probe is only
/// answered because a new connection takes the oldest one's slot. The limit holds: the
/// oldest idle connections are the ones closed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_beyond_the_limit_do_not_starve_the_probes() {
    let d = tempfile::tempdir().unwrap();
    let patient = HttpOptions {
        header_timeout: Duration::from_secs(600),
        idle_timeout: Duration::from_secs(600),
        max_connections: 16,
        ..Default::default()
    };
    let bound = daemon::bind_with(&endpoints(), false, patient)
        .await
        .unwrap();
    let addr = bound.metrics_addr.unwrap();
    let running = bound.start(agent(d.path()));
    let mut idle = Vec::new();
    for _ in 0..100 {
        idle.push(TcpStream::connect(addr).await.unwrap());
    }
    for path in ["/healthz", "/readyz"] {
        let r = get(addr, path).await;
        assert!(r.starts_with("HTTP/1.1 200 OK"), "{path}: {r}");
    }
    // The first idle connections were closed to make room (EOF or reset).
    let mut buf = [0u8; 16];
    let first = tokio::time::timeout(Duration::from_secs(10), idle[0].read(&mut buf))
        .await
        .expect("the oldest idle connection is closed");
    assert!(matches!(first, Ok(0) | Err(_)), "{first:?}");
    drop(idle);
    running.stop().await.unwrap();
}
