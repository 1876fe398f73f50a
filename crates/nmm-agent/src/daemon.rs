//! Serving: the PodResources gRPC API on a unix socket (mode 0600) and the metrics,
//! `/healthz` and `/readyz` on HTTP ([`crate::http`]), until told to stop (SIGTERM or
//! SIGINT in [`run_until_signal`]). [`bind`] opens both listeners before anything
//! else; [`Bound::start`] serves them once the books are restored.

use crate::agent::Agent;
use crate::http::{HttpOptions, HttpState};
use crate::podresources::PodResourcesService;
use anyhow::{anyhow, bail, Context, Result};
use std::future::Future;
use std::net::SocketAddr;
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, UnixListener};
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

/// The listeners of [`bind`]: the metrics server answers already (`/healthz` 200,
/// `/readyz` and `/metrics` 503), PodResources waits in the accept queue until
/// [`Bound::start`] hands over the restored books. Dropped without `start`, it stops
/// the metrics server and removes the socket.
#[derive(Debug)]
pub struct Bound {
    pub metrics_addr: Option<SocketAddr>,
    pub podresources_socket: Option<PathBuf>,
    pub http: Arc<HttpState>,
    podresources: Option<UnixListener>,
    stop: Option<watch::Sender<bool>>,
    tasks: Vec<JoinHandle<Result<()>>>,
}

impl Drop for Bound {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(true);
            if let Some(p) = &self.podresources_socket {
                let _ = std::fs::remove_file(p);
            }
        }
    }
}

/// Opens the metrics listener (first: a taken port fails here, before anything else
/// happens) and the PodResources socket, and starts the metrics server. `nri`: the
/// agent will register with the runtime, so `/readyz` waits for that too. Must run
/// inside a tokio runtime.
pub async fn bind(ep: &Endpoints, nri: bool) -> Result<Bound> {
    bind_with(ep, nri, HttpOptions::default()).await
}

/// [`bind`] with the HTTP server's limits.
pub async fn bind_with(ep: &Endpoints, nri: bool, http: HttpOptions) -> Result<Bound> {
    let (stop, rx) = watch::channel(false);
    let state = HttpState::new(nri);
    let mut tasks = Vec::new();
    let mut metrics_addr = None;
    if let Some(addr) = ep.metrics_addr {
        let l = TcpListener::bind(addr).await.with_context(|| {
            format!("metrics: cannot listen on {addr}; is another agent running? choose another --metrics-addr, or off")
        })?;
        metrics_addr = Some(l.local_addr()?);
        tasks.push(tokio::spawn(crate::http::serve(
            l,
            state.clone(),
            http,
            stopped(rx.clone()),
        )));
    }
    let podresources = match &ep.podresources_socket {
        Some(path) => match bind_private_socket(path) {
            Ok(l) => Some(l),
            Err(e) => {
                let _ = stop.send(true);
                return Err(e);
            }
        },
        None => None,
    };
    Ok(Bound {
        metrics_addr,
        podresources_socket: ep.podresources_socket.clone(),
        http: state,
        podresources,
        stop: Some(stop),
        tasks,
    })
}

impl Bound {
    /// The books are restored: metrics and readiness answer from `agent`, and the
    /// PodResources service starts.
    pub fn start(mut self, agent: Arc<Agent>) -> Running {
        self.http.set_agent(agent.clone());
        let stop = self.stop.take().expect("start consumes the Bound");
        let rx = stop.subscribe();
        let mut tasks = std::mem::take(&mut self.tasks);
        if let (Some(l), Some(path)) = (self.podresources.take(), &self.podresources_socket) {
            let incoming = tokio_stream::wrappers::UnixListenerStream::new(l);
            let svc = PodResourcesService::new(agent).into_server();
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
        Running {
            metrics_addr: self.metrics_addr,
            podresources_socket: self.podresources_socket.clone(),
            stop,
            tasks,
        }
    }
}

/// Starts the servers named in `ep` for books already restored (no NRI readiness).
/// Must run inside a tokio runtime.
pub async fn serve(agent: Arc<Agent>, ep: &Endpoints) -> Result<Running> {
    Ok(bind(ep, false).await?.start(agent))
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
        let shutdown = signals()?;
        run(agent, ep, on_ready, shutdown).await
    })
}

/// Completes at the first SIGTERM or SIGINT. Must be called inside a tokio runtime.
pub fn signals() -> Result<impl Future<Output = ()>> {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("cannot watch SIGTERM")?;
    let mut int = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())
        .context("cannot watch SIGINT")?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
    })
}
