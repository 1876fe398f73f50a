//! The metrics listener's HTTP/1.1 server (hyper): `/metrics`, `/healthz`, `/readyz`.
//!
//! * `/healthz`: 200 while the process serves.
//! * `/readyz`: 200 once the books are restored and, when the agent runs as an NRI
//!   plugin, while it is registered with the runtime and synchronized; 503 with the
//!   reason before (and while reconnecting).
//! * `/metrics`: the OpenMetrics text ([`crate::metrics`]); 503 before the books are
//!   restored.
//!
//! Bounded: at most [`HttpOptions::max_connections`] connections at once, a request head
//! must arrive within
//! [`HttpOptions::header_timeout`] and fit [`HttpOptions::max_request_head`] bytes, a
//! connection with no traffic for [`HttpOptions::idle_timeout`] is closed, and a request
//! body is never read.
//!
//! Idle or slow clients cannot starve the probes: the accept loop is never blocked by the
//! limit. A connection arriving when all slots are taken closes the oldest open one (a
//! keep-alive connection between requests, or a client that never finishes its request
//! head, since answers are computed at once) and takes its slot, so a kubelet probe is
//! answered at once however many idle connections are open.

use crate::agent::Agent;
use anyhow::Result;
use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::header::{HeaderValue, ALLOW, CONTENT_TYPE};
pub use hyper::Method;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;
use tokio::sync::Notify;

/// Limits of the metrics server.
#[derive(Debug, Clone)]
pub struct HttpOptions {
    /// A request head (request line and headers) must arrive within this time.
    pub header_timeout: Duration,
    /// A connection that sends and receives nothing for this long is closed.
    pub idle_timeout: Duration,
    /// Connections served at once; a further one closes the oldest.
    pub max_connections: usize,
    /// The largest request head read (bytes; hyper's minimum is 8192).
    pub max_request_head: usize,
}

impl Default for HttpOptions {
    fn default() -> Self {
        HttpOptions {
            header_timeout: Duration::from_secs(5),
            idle_timeout: Duration::from_secs(60),
            max_connections: 256,
            max_request_head: 16 * 1024,
        }
    }
}

/// What the server answers from: the agent once its books are restored, and whether
/// readiness waits for the NRI registration.
#[derive(Debug, Default)]
pub struct HttpState {
    agent: OnceLock<Arc<Agent>>,
    nri: AtomicBool,
}

impl HttpState {
    /// `nri`: the agent runs as an NRI plugin, so `/readyz` also waits for the runtime.
    pub fn new(nri: bool) -> Arc<HttpState> {
        Arc::new(HttpState {
            agent: OnceLock::new(),
            nri: AtomicBool::new(nri),
        })
    }

    /// A state whose books are restored already.
    pub fn with_agent(agent: Arc<Agent>, nri: bool) -> Arc<HttpState> {
        let s = HttpState::new(nri);
        s.set_agent(agent);
        s
    }

    /// The books are restored: serve metrics, and readiness may turn true.
    pub fn set_agent(&self, agent: Arc<Agent>) {
        let _ = self.agent.set(agent);
    }

    /// `Ok` when ready, else why not.
    pub fn readiness(&self) -> Result<(), &'static str> {
        let Some(agent) = self.agent.get() else {
            return Err("the books are not restored yet");
        };
        if self.nri.load(Ordering::Relaxed) && !agent.metrics.nri_is_connected() {
            return Err("not registered with the container runtime (NRI) yet");
        }
        Ok(())
    }
}

type Body = Full<Bytes>;

fn text(status: StatusCode, body: impl Into<Bytes>) -> Response<Body> {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = status;
    r.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

/// The answer to one request (no I/O: tests call it directly).
pub fn respond(state: &HttpState, method: &Method, path: &str) -> Response<Body> {
    if method != Method::GET && method != Method::HEAD {
        let mut r = text(StatusCode::METHOD_NOT_ALLOWED, "only GET and HEAD\n");
        r.headers_mut()
            .insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
        return r;
    }
    let mut r = match path {
        "/metrics" => match state.agent.get() {
            Some(a) => {
                let mut r = text(StatusCode::OK, a.metrics.encode());
                r.headers_mut().insert(
                    CONTENT_TYPE,
                    HeaderValue::from_static(
                        "application/openmetrics-text; version=1.0.0; charset=utf-8",
                    ),
                );
                r
            }
            None => text(
                StatusCode::SERVICE_UNAVAILABLE,
                "the books are not restored yet\n",
            ),
        },
        "/healthz" | "/livez" => text(StatusCode::OK, "ok\n"),
        "/readyz" => match state.readiness() {
            Ok(()) => text(StatusCode::OK, "ok\n"),
            Err(why) => text(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("not ready: {why}\n"),
            ),
        },
        "/" => text(StatusCode::OK, "nmm agent: /metrics, /healthz, /readyz\n"),
        _ => text(
            StatusCode::NOT_FOUND,
            "not found; try /metrics, /healthz or /readyz\n",
        ),
    };
    if method == Method::HEAD {
        *r.body_mut() = Full::new(Bytes::new());
    }
    r
}

/// A stream that records when it last moved a byte (for the idle timeout).
struct Activity<T> {
    inner: T,
    epoch: Instant,
    last_ms: Arc<AtomicU64>,
}

impl<T> Activity<T> {
    fn touch(&self) {
        self.last_ms
            .store(self.epoch.elapsed().as_millis() as u64, Ordering::Relaxed);
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Activity<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() != before {
            self.touch();
        }
        r
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Activity<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.touch();
        }
        r
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Serves `l` until `stop` completes; then open connections finish their request (at
/// most one header timeout) and are closed.
pub async fn serve(
    l: TcpListener,
    state: Arc<HttpState>,
    opts: HttpOptions,
    stop: impl Future<Output = ()>,
) -> Result<()> {
    tokio::pin!(stop);
    let slots = Arc::new(tokio::sync::Semaphore::new(opts.max_connections.max(1)));
    // The open connections, oldest first: each one's eviction signal.
    let open: Arc<Mutex<BTreeMap<u64, Arc<Notify>>>> = Arc::default();
    let mut next_id = 0u64;
    let (done_tx, done_rx) = tokio::sync::watch::channel(false);
    loop {
        let stream = tokio::select! {
            _ = &mut stop => break,
            a = l.accept() => match a {
                Ok((s, _)) => s,
                Err(e) => {
                    // Out of file descriptors and the like: wait a little, go on.
                    tracing::debug!("metrics: accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let permit = match slots.clone().try_acquire_owned() {
            Ok(p) => p,
            Err(_) => {
                // Full: the oldest connection gives its slot to this one.
                let oldest = open.lock().unwrap_or_else(|e| e.into_inner()).pop_first();
                if let Some((_, evict)) = oldest {
                    evict.notify_one();
                }
                tokio::select! {
                    _ = &mut stop => break,
                    p = slots.clone().acquire_owned() => p.expect("the semaphore is never closed"),
                }
            }
        };
        let id = next_id;
        next_id += 1;
        let evict = Arc::new(Notify::new());
        open.lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id, evict.clone());
        let state = state.clone();
        let opts = opts.clone();
        let mut done = done_rx.clone();
        let open = open.clone();
        tokio::spawn(async move {
            connection(stream, state, &opts, &mut done, &evict).await;
            open.lock().unwrap_or_else(|e| e.into_inner()).remove(&id);
            drop(permit);
        });
    }
    let _ = done_tx.send(true);
    Ok(())
}

async fn connection(
    stream: tokio::net::TcpStream,
    state: Arc<HttpState>,
    opts: &HttpOptions,
    done: &mut tokio::sync::watch::Receiver<bool>,
    evict: &Notify,
) {
    let last_ms = Arc::new(AtomicU64::new(0));
    let epoch = Instant::now();
    let io = TokioIo::new(Activity {
        inner: stream,
        epoch,
        last_ms: last_ms.clone(),
    });
    let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
        let r = respond(&state, req.method(), req.uri().path());
        async move { Ok::<_, std::convert::Infallible>(r) }
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(opts.header_timeout)
        .max_buf_size(opts.max_request_head.max(8192))
        .keep_alive(true)
        .serve_connection(io, svc);
    tokio::pin!(conn);
    let mut closing = false;
    loop {
        let idle_for = Duration::from_millis(
            (epoch.elapsed().as_millis() as u64).saturating_sub(last_ms.load(Ordering::Relaxed)),
        );
        let wait = opts.idle_timeout.saturating_sub(idle_for);
        tokio::select! {
            _ = conn.as_mut() => return,
            // A newer connection needs the slot: close this one now.
            _ = evict.notified() => return,
            _ = tokio::time::sleep(wait), if !closing => {
                let idle_for = (epoch.elapsed().as_millis() as u64)
                    .saturating_sub(last_ms.load(Ordering::Relaxed));
                if Duration::from_millis(idle_for) >= opts.idle_timeout {
                    // Idle: close now if between requests, else after this response.
                    conn.as_mut().graceful_shutdown();
                    closing = true;
                }
            }
            _ = done.wait_for(|d| *d), if !closing => {
                conn.as_mut().graceful_shutdown();
                closing = true;
            }
            _ = tokio::time::sleep(opts.header_timeout + opts.idle_timeout), if closing => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readiness_waits_for_the_books_and_the_runtime() {
        let s = HttpState::new(true);
        assert_eq!(respond(&s, &Method::GET, "/healthz").status(), 200);
        assert_eq!(respond(&s, &Method::GET, "/readyz").status(), 503);
        assert_eq!(respond(&s, &Method::GET, "/metrics").status(), 503);
        let d = tempfile::tempdir().unwrap();
        let (agent, _) = Agent::start(crate::AgentOptions {
            machine: crate::testkit::machine(),
            kubelet: crate::testkit::kubelet_config(),
            state_dir: d.path().to_path_buf(),
            reconcile: None,
            cgroup_root: None,
            devices: Default::default(),
        })
        .unwrap();
        let agent = Arc::new(agent);
        s.set_agent(agent.clone());
        assert_eq!(respond(&s, &Method::GET, "/metrics").status(), 200);
        assert_eq!(
            s.readiness(),
            Err("not registered with the container runtime (NRI) yet")
        );
        agent.metrics.set_nri_connected(true);
        assert_eq!(respond(&s, &Method::GET, "/readyz").status(), 200);
        agent.metrics.set_nri_connected(false);
        assert_eq!(respond(&s, &Method::GET, "/readyz").status(), 503);
        let no_nri = HttpState::with_agent(agent, false);
        assert_eq!(respond(&no_nri, &Method::GET, "/readyz").status(), 200);
    }

    #[test]
    fn methods_and_paths() {
        let s = HttpState::new(false);
        let r = respond(&s, &Method::POST, "/metrics");
        assert_eq!(r.status(), 405);
        assert_eq!(r.headers()[ALLOW], "GET, HEAD");
        assert_eq!(respond(&s, &Method::GET, "/nope").status(), 404);
        assert_eq!(respond(&s, &Method::HEAD, "/healthz").status(), 200);
    }
}
