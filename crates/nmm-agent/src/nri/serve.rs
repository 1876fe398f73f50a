//! Connecting to the runtime and staying connected: the plugin's loggers, the connect /
//! serve / reconnect-with-backoff loop, and the agent's run until a signal.

use super::{NriAgent, PLUGIN_INDEX, PLUGIN_NAME};
use crate::agent::Agent;
use crate::daemon::{self, Endpoints, Running};
use crate::reconcile::{run_reconciler, ReconcileOptions};
use anyhow::{Context, Result};
use nmm_nri::{NriHandler, NriPlugin};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// The plugin's log lines as `tracing` events (target `nmm_agent::nri`): a line starting
/// with `warning: ` is a warning, others are information.
pub fn tracing_logger(m: &str) {
    match m.strip_prefix("warning: ") {
        Some(w) => tracing::warn!(target: "nmm_agent::nri", "{w}"),
        None => tracing::info!(target: "nmm_agent::nri", "{m}"),
    }
}

/// Writes `prefix` + message lines to a duplicate of the stderr file descriptor,
/// bypassing `std::io::stderr()`'s lock: `nmm` holds that lock for the whole command,
/// so `eprintln!` from the plugin's threads would block forever.
pub fn stderr_logger(prefix: &str) -> impl Fn(&str) + Send + Sync + 'static {
    use std::io::Write;
    use std::os::fd::AsFd;
    let prefix = prefix.to_string();
    let file = std::io::stderr()
        .as_fd()
        .try_clone_to_owned()
        .ok()
        .map(|fd| Mutex::new(std::fs::File::from(fd)));
    move |m: &str| {
        if let Some(f) = &file {
            let mut f = f.lock().unwrap_or_else(|e| e.into_inner());
            let _ = f.write_all(format!("{prefix}{m}\n").as_bytes());
        }
    }
}

/// Where and how to connect.
#[derive(Debug, Clone)]
pub struct NriOptions {
    pub socket: PathBuf,
    pub name: String,
    pub index: String,
    /// First wait before reconnecting; doubled after each quick failure.
    pub min_backoff: Duration,
    pub max_backoff: Duration,
}

impl NriOptions {
    pub fn new(socket: impl Into<PathBuf>) -> NriOptions {
        NriOptions {
            socket: socket.into(),
            name: PLUGIN_NAME.into(),
            index: PLUGIN_INDEX.into(),
            min_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(30),
        }
    }
}

async fn stopped(rx: &mut watch::Receiver<bool>) {
    while !*rx.borrow() {
        if rx.changed().await.is_err() {
            // The sender is gone: nobody can stop us any more; never resolve.
            std::future::pending::<()>().await;
        }
    }
}

/// Connects to the runtime's NRI socket and serves `handler`, reconnecting with
/// exponential backoff whenever the socket is missing, registration fails or the
/// runtime closes the connection (it restarted, or dropped the plugin), until `stop`
/// turns true.
pub async fn serve_nri(handler: Arc<NriAgent>, opts: NriOptions, mut stop: watch::Receiver<bool>) {
    let mut backoff = opts.min_backoff;
    let mut last_error = String::new();
    loop {
        if *stop.borrow() {
            return;
        }
        let started = Instant::now();
        let h: Arc<dyn NriHandler> = handler.clone();
        let outcome = tokio::select! {
            _ = stopped(&mut stop) => {
                // The handle holds the connection, whose tasks hold the handler: let go
                // of it so that the agent (and its state directory's lock) can drop.
                handler.set_plugin_handle(None);
                return;
            }
            r = async {
                let plugin = NriPlugin::connect(&opts.socket, &opts.name, &opts.index, h).await?;
                handler.set_plugin_handle(Some(plugin.handle()));
                plugin.run().await
            } => r,
        };
        handler.set_plugin_handle(None);
        handler.agent.metrics.set_nri_connected(false);
        handler.agent.metrics.nri_reconnects.inc();
        let msg = match outcome {
            Ok(()) => "the runtime closed the NRI connection; reconnecting".to_string(),
            Err(e) => format!("warning: {e}; retrying"),
        };
        if started.elapsed() > Duration::from_secs(10) {
            backoff = opts.min_backoff;
        }
        if msg != last_error {
            handler.log(&msg);
            last_error = msg;
        }
        tokio::select! {
            _ = stopped(&mut stop) => return,
            _ = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(opts.max_backoff);
    }
}

/// A multi-threaded tokio runtime (2 workers), as the agent uses.
pub fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

/// [`crate::daemon::run_until_signal`], plus the NRI plugin when `nri` is given (with
/// its reconcile loop, see [`crate::reconcile`]): serves PodResources and metrics and the
/// runtime's events until SIGTERM or SIGINT, then compacts the change journal. The
/// listeners are bound before the runtime is contacted.
pub fn run_until_signal(
    agent: Arc<Agent>,
    ep: &Endpoints,
    nri: Option<NriOptions>,
    reconcile: ReconcileOptions,
    on_ready: impl FnOnce(&Running),
) -> Result<()> {
    let rt = runtime()?;
    rt.block_on(async {
        let bound = daemon::bind(ep, nri.is_some()).await?;
        run_bound(agent, bound, nri, reconcile, on_ready, daemon::signals()?).await
    })
}

/// Serves listeners bound earlier ([`daemon::bind`]) with the restored books, then (only
/// then) connects to the runtime as an NRI plugin with its reconcile loop, until
/// `shutdown` completes; then compacts the change journal.
pub async fn run_bound(
    agent: Arc<Agent>,
    bound: daemon::Bound,
    nri: Option<NriOptions>,
    reconcile: ReconcileOptions,
    on_ready: impl FnOnce(&Running),
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<()> {
    let running = bound.start(agent.clone());
    on_ready(&running);
    let (stop_tx, stop_rx) = watch::channel(false);
    let plugin = nri.map(|opts| {
        let handler = Arc::new(NriAgent::new(agent.clone()));
        let loop_task = tokio::spawn(run_reconciler(handler.clone(), reconcile, stop_rx.clone()));
        (tokio::spawn(serve_nri(handler, opts, stop_rx)), loop_task)
    });
    shutdown.await;
    let _ = stop_tx.send(true);
    if let Some((p, l)) = plugin {
        let _ = tokio::time::timeout(Duration::from_secs(5), p).await;
        let _ = tokio::time::timeout(Duration::from_secs(5), l).await;
    }
    agent.metrics.set_nri_connected(false);
    let r = running.stop().await;
    if let Err(e) = agent.compact() {
        tracing::warn!("compacting at stop: {e}; the next start replays the journal");
    }
    r
}
