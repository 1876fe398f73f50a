//! Serving: the PodResources gRPC API on a unix socket (mode 0600) and the metrics on
//! HTTP, until told to stop (SIGTERM or SIGINT in [`run_until_signal`]).

use crate::agent::Agent;
use crate::podresources::PodResourcesService;
use anyhow::{anyhow, bail, Context, Result};
use std::future::Future;
use std::net::SocketAddr;
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UnixListener};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Where to serve.
#[derive(Debug, Clone, Default)]
pub struct Endpoints {
    pub podresources_socket: Option<PathBuf>,
    pub metrics_addr: Option<SocketAddr>,
}

/// The default metrics address.
pub const DEFAULT_METRICS_ADDR: &str = "127.0.0.1:9781";
/// The largest HTTP request head the metrics endpoint reads.
pub const MAX_HTTP_REQUEST: usize = 8192;
const HTTP_READ_TIMEOUT: Duration = Duration::from_secs(5);
/// Metrics connections served at once.
pub const MAX_HTTP_CONNECTIONS: usize = 64;

/// Servers started by [`serve`].
#[derive(Debug)]
pub struct Running {
    /// The metrics address actually bound (port 0 picks a free one).
    pub metrics_addr: Option<SocketAddr>,
    pub podresources_socket: Option<PathBuf>,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<Result<()>>>,
}

impl Running {
    /// Stops the servers and removes the socket file.
    pub async fn stop(self) -> Result<()> {
        let _ = self.stop.send(true);
        let mut first_err = None;
        for t in self.tasks {
            match t.await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    first_err.get_or_insert(e);
                }
                Err(e) => {
                    first_err.get_or_insert(anyhow!("server task failed: {e}"));
                }
            }
        }
        if let Some(p) = &self.podresources_socket {
            let _ = std::fs::remove_file(p);
        }
        match first_err {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

async fn stopped(mut rx: watch::Receiver<bool>) {
    while !*rx.borrow() {
        if rx.changed().await.is_err() {
            return;
        }
    }
}

/// Binds a unix socket at `path` with mode 0600 and no window in which the final path
/// has other permissions: bind inside a private 0700 directory next to it, chmod, then
/// rename into place. A stale socket at `path` is replaced; a live one (another agent
/// answering) or any other kind of file is an error.
pub fn bind_private_socket(path: &Path) -> Result<UnixListener> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)
        .with_context(|| format!("{}: cannot create the socket directory", dir.display()))?;
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_socket() => {
            if std::os::unix::net::UnixStream::connect(path).is_ok() {
                bail!(
                    "{}: another process is serving on this socket; stop it first",
                    path.display()
                );
            }
            std::fs::remove_file(path)
                .with_context(|| format!("{}: cannot remove the stale socket", path.display()))?;
        }
        Ok(_) => bail!(
            "{}: exists and is not a socket; choose another --podresources-socket",
            path.display()
        ),
        Err(_) => {}
    }
    let private = dir.join(format!(".nmm-agent-sock.{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&private);
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(&private)
        .with_context(|| format!("{}: cannot create", private.display()))?;
    let result = (|| -> Result<UnixListener> {
        let tmp = private.join("sock");
        let l =
            UnixListener::bind(&tmp).with_context(|| format!("{}: cannot bind", path.display()))?;
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600))
            .with_context(|| format!("{}: cannot chmod 0600", tmp.display()))?;
        std::fs::rename(&tmp, path)
            .with_context(|| format!("{}: cannot move the socket into place", path.display()))?;
        Ok(l)
    })();
    let _ = std::fs::remove_dir_all(&private);
    result
}

/// Starts the servers named in `ep`. Must run inside a tokio runtime.
pub async fn serve(agent: Arc<Agent>, ep: &Endpoints) -> Result<Running> {
    let (stop, rx) = watch::channel(false);
    let mut tasks = Vec::new();
    let mut metrics_addr = None;
    if let Some(addr) = ep.metrics_addr {
        let l = TcpListener::bind(addr)
            .await
            .with_context(|| format!("metrics: cannot listen on {addr}"))?;
        metrics_addr = Some(l.local_addr()?);
        tasks.push(tokio::spawn(serve_metrics(l, agent.clone(), rx.clone())));
    }
    if let Some(path) = &ep.podresources_socket {
        let l = bind_private_socket(path)?;
        let incoming = tokio_stream::wrappers::UnixListenerStream::new(l);
        let svc = PodResourcesService::new(agent.clone()).into_server();
        let rx = rx.clone();
        let path = path.clone();
        tasks.push(tokio::spawn(async move {
            tonic::transport::Server::builder()
                .concurrency_limit_per_connection(32)
                .timeout(Duration::from_secs(30))
                .http2_keepalive_interval(Some(Duration::from_secs(60)))
                .add_service(svc)
                .serve_with_incoming_shutdown(incoming, stopped(rx))
                .await
                .with_context(|| format!("{}: PodResources server failed", path.display()))
        }));
    }
    Ok(Running {
        metrics_addr,
        podresources_socket: ep.podresources_socket.clone(),
        stop,
        tasks,
    })
}

async fn serve_metrics(l: TcpListener, agent: Arc<Agent>, rx: watch::Receiver<bool>) -> Result<()> {
    let stop = stopped(rx);
    tokio::pin!(stop);
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_HTTP_CONNECTIONS));
    loop {
        tokio::select! {
            _ = &mut stop => return Ok(()),
            accepted = l.accept() => {
                match accepted {
                    Ok((s, _)) => {
                        // Over the limit the connection is closed at once.
                        let Ok(permit) = slots.clone().try_acquire_owned() else { continue };
                        let agent = agent.clone();
                        tokio::spawn(async move {
                            let _ = tokio::time::timeout(HTTP_READ_TIMEOUT * 2, handle_http(s, &agent)).await;
                            drop(permit);
                        });
                    }
                    // Out of file descriptors and the like: wait a little, go on.
                    Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
                }
            }
        }
    }
}

/// Reads a request head (at most [`MAX_HTTP_REQUEST`] bytes); `None` when the client sent
/// too much, too slowly, or closed early.
async fn read_head(s: &mut TcpStream) -> Option<Result<String, ()>> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            return Some(String::from_utf8(buf[..end].to_vec()).map_err(|_| ()));
        }
        if buf.len() > MAX_HTTP_REQUEST {
            return Some(Err(()));
        }
        let n = match tokio::time::timeout(HTTP_READ_TIMEOUT, s.read(&mut chunk)).await {
            Ok(Ok(n)) if n > 0 => n,
            _ => return None,
        };
        buf.extend_from_slice(&chunk[..n]);
    }
}

async fn respond(s: &mut TcpStream, status: &str, ctype: &str, body: &str) {
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let _ = s.write_all(head.as_bytes()).await;
    let _ = s.write_all(body.as_bytes()).await;
    let _ = s.shutdown().await;
}

async fn handle_http(mut s: TcpStream, agent: &Agent) {
    let head = match read_head(&mut s).await {
        None => return,
        Some(Err(())) => {
            respond(&mut s, "400 Bad Request", "text/plain", "bad request\n").await;
            return;
        }
        Some(Ok(h)) => h,
    };
    let line = head.lines().next().unwrap_or("");
    let mut parts = line.split(' ');
    let (method, target, version) = (parts.next(), parts.next(), parts.next());
    let (Some(method), Some(target), Some(version)) = (method, target, version) else {
        respond(&mut s, "400 Bad Request", "text/plain", "bad request\n").await;
        return;
    };
    if !version.starts_with("HTTP/1.") {
        respond(&mut s, "400 Bad Request", "text/plain", "bad request\n").await;
        return;
    }
    if method != "GET" && method != "HEAD" {
        respond(&mut s, "405 Method Not Allowed", "text/plain", "only GET\n").await;
        return;
    }
    let path = target.split('?').next().unwrap_or("");
    match path {
        "/metrics" => {
            let body = agent.metrics.encode();
            respond(
                &mut s,
                "200 OK",
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
                if method == "HEAD" { "" } else { &body },
            )
            .await
        }
        "/" | "/healthz" => {
            respond(&mut s, "200 OK", "text/plain", "ok: metrics at /metrics\n").await
        }
        _ => {
            respond(
                &mut s,
                "404 Not Found",
                "text/plain",
                "not found; metrics at /metrics\n",
            )
            .await
        }
    }
}

/// Runs the servers until `shutdown` completes. `on_ready` is called once they listen.
pub async fn run(
    agent: Arc<Agent>,
    ep: &Endpoints,
    on_ready: impl FnOnce(&Running),
    shutdown: impl Future<Output = ()>,
) -> Result<()> {
    let running = serve(agent, ep).await?;
    on_ready(&running);
    shutdown.await;
    running.stop().await
}

/// Builds a runtime and serves until SIGTERM or SIGINT. The checkpoints are committed
/// after every change, so nothing needs saving on the way out.
pub fn run_until_signal(
    agent: Arc<Agent>,
    ep: &Endpoints,
    on_ready: impl FnOnce(&Running),
) -> Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    rt.block_on(async {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .context("cannot watch SIGTERM")?;
        let mut int = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())
            .context("cannot watch SIGINT")?;
        let shutdown = async move {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        };
        run(agent, ep, on_ready, shutdown).await
    })
}
