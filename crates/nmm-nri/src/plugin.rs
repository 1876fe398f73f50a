//! The plugin side: connect, register, get configured and synchronized, then serve the
//! runtime's events until the connection ends.
//!
//! The flow mirrors NRI's Go stub (`pkg/stub`): over one Unix socket the plugin serves
//! the `Plugin` ttrpc service on mux connection 1 and calls the runtime's `Runtime`
//! service on mux connection 2. It calls `RegisterPlugin{name, idx}`; the runtime then
//! calls `Configure` (answered with the event subscription [`crate::EVENT_MASK`]),
//! `Synchronize` (possibly in several batches flagged `more`, which are collected and
//! handed over at once), and from then on the subscribed events. Pod and container
//! events may arrive as dedicated calls (NRI v0.10+) or as `StateChange` (earlier
//! versions); both are served.

use crate::conn::*;
use crate::convert::adjustment_to_pb;
use crate::handler::{event, NriHandler, EVENT_MASK};
use crate::mux::{PLUGIN_SERVICE_CONN, READ_QUEUE_LEN, RUNTIME_SERVICE_CONN};
use crate::pb::nri as pb;
use crate::ttrpc::{code, Status};
use crate::types::*;
use crate::{PLUGIN_SERVICE, RUNTIME_SERVICE};
use prost::Message;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::UnixStream;
use tokio::sync::mpsc;

/// NRI's default socket for external plugins (`api.DefaultSocketPath`).
pub const DEFAULT_SOCKET_PATH: &str = "/var/run/nri/nri.sock";

/// At most this many bytes of `Synchronize` batches are collected before the final one.
pub const SYNC_COLLECT_MAX: usize = 256 << 20;

/// Plugin settings beyond name and index.
#[derive(Debug, Clone)]
pub struct PluginConfig {
    /// How long to wait for `RegisterPlugin` to be answered (NRI's default: 5 s).
    pub registration_timeout: Duration,
    /// Events to subscribe to; must be a subset of [`crate::EVENT_MASK`].
    pub events: i32,
}

impl Default for PluginConfig {
    fn default() -> Self {
        PluginConfig {
            registration_timeout: Duration::from_secs(5),
            events: EVENT_MASK,
        }
    }
}

/// Why the plugin stopped or could not start.
#[derive(Debug, thiserror::Error)]
pub enum NriError {
    #[error("invalid plugin identity: {0}")]
    InvalidIdentity(String),
    #[error("connecting to NRI socket {path}: {source}")]
    Connect {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("registering with the runtime: {0}")]
    Registration(String),
    /// The runtime broke the protocol (bad frame, oversized frame, truncated message...).
    /// The connection was closed.
    #[error("NRI protocol error: {0}")]
    Protocol(String),
    #[error("plugin is not running")]
    NotRunning,
    #[error("runtime call failed: {0}")]
    Call(String),
}

/// `api.CheckPluginName`: non-empty, characters from `[a-zA-Z0-9_.+-]`.
pub fn check_plugin_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("invalid plugin name: name is empty".into());
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '+')))
    {
        return Err(format!(
            "invalid plugin name {name:?}: contains invalid character {c:?}"
        ));
    }
    Ok(())
}

/// `api.CheckPluginIndex`: exactly two digits.
pub fn check_plugin_index(idx: &str) -> Result<(), String> {
    let b = idx.as_bytes();
    if b.len() != 2 {
        return Err(format!("invalid plugin index {idx:?}, must be 2 digits"));
    }
    if !b.iter().all(u8::is_ascii_digit) {
        return Err(format!("invalid plugin index {idx:?} (not [0-9][0-9])"));
    }
    Ok(())
}

/// Calls into the runtime from outside the event handlers.
#[derive(Clone, Default)]
pub struct PluginHandle {
    client: Arc<Mutex<Option<Client>>>,
}

impl PluginHandle {
    /// `Runtime.UpdateContainers`: unsolicited cpuset updates. Returns the updates the
    /// runtime failed to apply. Not to be called from inside an [`NriHandler`] method.
    pub async fn update_containers(
        &self,
        updates: &[ContainerUpdate],
    ) -> Result<Vec<ContainerUpdate>, NriError> {
        let client = self
            .client
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
            .ok_or(NriError::NotRunning)?;
        let req = pb::UpdateContainersRequest {
            update: updates.iter().map(Into::into).collect(),
            evict: vec![],
        };
        let resp = client
            .call(
                RUNTIME_SERVICE,
                "UpdateContainers",
                req.encode_to_vec(),
                None,
            )
            .await
            .map_err(|e| NriError::Call(e.to_string()))?;
        let resp = pb::UpdateContainersResponse::decode(&resp[..])
            .map_err(|e| NriError::Call(format!("bad UpdateContainers response: {e}")))?;
        Ok(resp.failed.iter().map(Into::into).collect())
    }
}

/// An external NRI plugin connected to a runtime.
pub struct NriPlugin {
    stream: UnixStream,
    name: String,
    idx: String,
    handler: Arc<dyn NriHandler>,
    config: PluginConfig,
    handle: PluginHandle,
}

impl NriPlugin {
    /// Connects to the runtime's NRI socket (`--nri-socket`, default
    /// [`DEFAULT_SOCKET_PATH`]). `name` and `idx` are the registration name and the
    /// two-digit invocation index (plugins are called in ascending index order).
    pub async fn connect(
        socket_path: impl AsRef<Path>,
        name: &str,
        idx: &str,
        handler: Arc<dyn NriHandler>,
    ) -> Result<NriPlugin, NriError> {
        check_plugin_name(name).map_err(NriError::InvalidIdentity)?;
        check_plugin_index(idx).map_err(NriError::InvalidIdentity)?;
        let path = socket_path.as_ref();
        let stream = UnixStream::connect(path)
            .await
            .map_err(|source| NriError::Connect {
                path: path.to_path_buf(),
                source,
            })?;
        NriPlugin::from_stream(stream, name, idx, handler)
    }

    /// Uses an already connected socket (e.g. one the runtime passed as
    /// `NRI_PLUGIN_SOCKET` to a plugin it launched).
    pub fn from_stream(
        stream: UnixStream,
        name: &str,
        idx: &str,
        handler: Arc<dyn NriHandler>,
    ) -> Result<NriPlugin, NriError> {
        check_plugin_name(name).map_err(NriError::InvalidIdentity)?;
        check_plugin_index(idx).map_err(NriError::InvalidIdentity)?;
        Ok(NriPlugin {
            stream,
            name: name.to_string(),
            idx: idx.to_string(),
            handler,
            config: PluginConfig::default(),
            handle: PluginHandle::default(),
        })
    }

    pub fn with_config(mut self, config: PluginConfig) -> Self {
        self.config = config;
        self
    }

    /// A handle for unsolicited updates, usable once [`NriPlugin::run`] has started.
    pub fn handle(&self) -> PluginHandle {
        self.handle.clone()
    }

    /// Registers and serves the runtime until the connection ends. `Ok(())` when the
    /// runtime closed the connection cleanly (e.g. it restarted: connect again);
    /// `Err` when registration failed or the runtime broke the protocol, in which case
    /// the connection has been closed. Dropping the future closes the connection.
    pub async fn run(self) -> Result<(), NriError> {
        let NriPlugin {
            stream,
            name,
            idx,
            handler,
            config,
            handle,
        } = self;
        if config.events & !EVENT_MASK != 0 {
            return Err(NriError::InvalidIdentity(format!(
                "events 0x{:x} include events the plugin does not handle",
                config.events
            )));
        }
        let (rd, wr) = stream.into_split();
        let writer = MuxWriter::new(wr);
        let (tx1, rx1) = mpsc::channel(READ_QUEUE_LEN);
        let (tx2, rx2) = mpsc::channel(READ_QUEUE_LEN);
        let (end_tx, mut end_rx) = mpsc::channel::<End>(8);
        let mut tasks = TaskSet::default();

        {
            let end_tx = end_tx.clone();
            tasks.spawn(async move {
                let routes = vec![(PLUGIN_SERVICE_CONN, tx1), (RUNTIME_SERVICE_CONN, tx2)];
                let r = demux(rd, routes.clone()).await;
                // Report before the routes drop, so the root cause is seen first.
                let _ = end_tx.send(End::Demux(r)).await;
                drop(routes);
            });
        }

        let (client, reader) =
            Client::new(writer.clone(), RUNTIME_SERVICE_CONN, StreamSource::new(rx2));
        tasks.spawn(async move {
            let _ = reader.await;
        });
        *handle.client.lock().unwrap_or_else(|e| e.into_inner()) = Some(client.clone());

        let svc = Arc::new(PluginService {
            handler,
            events: config.events,
            sync: Mutex::new(SyncState::default()),
            shutdown: AtomicBool::new(false),
        });
        {
            let end_tx = end_tx.clone();
            let writer = writer.clone();
            let svc = svc.clone();
            tasks.spawn(async move {
                let r = serve(StreamSource::new(rx1), writer, PLUGIN_SERVICE_CONN, &*svc).await;
                let _ = end_tx.send(End::Server(r)).await;
            });
        }
        drop(end_tx);

        let req = pb::RegisterPluginRequest {
            plugin_name: name,
            plugin_idx: idx,
            nri_version: String::new(),
        };
        let registered = client
            .call(
                RUNTIME_SERVICE,
                "RegisterPlugin",
                req.encode_to_vec(),
                Some(config.registration_timeout),
            )
            .await;

        let result = match registered {
            Err(e) => {
                // Prefer the trunk's own error, if that is why the call failed.
                let mut err = NriError::Registration(e.to_string());
                while let Ok(end) = end_rx.try_recv() {
                    if let End::Demux(Err(d)) = end {
                        err = NriError::Protocol(d);
                    }
                }
                Err(err)
            }
            Ok(_) => {
                let mut demux_err = None;
                let mut server_res = Ok(());
                while let Some(end) = end_rx.recv().await {
                    match end {
                        End::Demux(Err(e)) => demux_err = Some(e),
                        End::Demux(Ok(())) => {}
                        End::Server(r) => {
                            server_res = r;
                            break;
                        }
                    }
                }
                match (demux_err, server_res) {
                    (Some(e), _) | (None, Err(e)) => Err(NriError::Protocol(e)),
                    (None, Ok(())) => Ok(()),
                }
            }
        };
        *handle.client.lock().unwrap_or_else(|e| e.into_inner()) = None;
        writer.shutdown().await;
        drop(tasks);
        result
    }
}

enum End {
    Demux(Result<(), String>),
    Server(Result<(), String>),
}

#[derive(Default)]
struct SyncState {
    pods: Vec<pb::PodSandbox>,
    containers: Vec<pb::Container>,
    bytes: usize,
}

struct PluginService {
    handler: Arc<dyn NriHandler>,
    events: i32,
    sync: Mutex<SyncState>,
    shutdown: AtomicBool,
}

fn decode<M: Message + Default>(payload: &[u8]) -> Result<M, Status> {
    M::decode(payload).map_err(|e| {
        Status::new(
            code::INTERNAL,
            format!("ttrpc: error unmarshalling payload: {e}"),
        )
    })
}

fn missing(method: &str, what: &str) -> Status {
    Status::new(
        code::INVALID_ARGUMENT,
        format!("{method}: request without {what}"),
    )
}

fn pod_of(method: &str, p: &Option<pb::PodSandbox>) -> Result<PodSandbox, Status> {
    p.as_ref()
        .map(Into::into)
        .ok_or_else(|| missing(method, "pod"))
}

fn ctr_of(method: &str, c: &Option<pb::Container>) -> Result<Container, Status> {
    c.as_ref()
        .map(Into::into)
        .ok_or_else(|| missing(method, "container"))
}

/// Runs a handler method on the blocking pool; a panic becomes an internal error.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Result<T, Status> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Status::new(code::INTERNAL, format!("nmm NRI handler failed: {e}")))
}

impl PluginService {
    async fn configure(&self, payload: &[u8]) -> Result<Vec<u8>, Status> {
        let req: pb::ConfigureRequest = decode(payload)?;
        let info = RuntimeInfo {
            runtime_name: req.runtime_name,
            runtime_version: req.runtime_version,
            nri_version: req.nri_version,
            config: req.config,
            registration_timeout_ms: req.registration_timeout,
            request_timeout_ms: req.request_timeout,
        };
        let h = self.handler.clone();
        blocking(move || h.configure(&info)).await?;
        Ok(pb::ConfigureResponse {
            events: self.events,
            request_timeout: 0,
        }
        .encode_to_vec())
    }

    async fn synchronize(&self, payload: &[u8]) -> Result<Vec<u8>, Status> {
        let req: pb::SynchronizeRequest = decode(payload)?;
        let (pods, containers) = {
            let mut st = self.sync.lock().unwrap_or_else(|e| e.into_inner());
            st.bytes += payload.len();
            if st.bytes > SYNC_COLLECT_MAX {
                *st = SyncState::default();
                return Err(Status::new(
                    code::RESOURCE_EXHAUSTED,
                    format!(
                        "Synchronize: more than {SYNC_COLLECT_MAX} bytes of pods and containers"
                    ),
                ));
            }
            st.pods.extend(req.pods);
            st.containers.extend(req.containers);
            if req.more {
                return Ok(pb::SynchronizeResponse {
                    update: vec![],
                    more: true,
                }
                .encode_to_vec());
            }
            let st = std::mem::take(&mut *st);
            (st.pods, st.containers)
        };
        let pods: Vec<PodSandbox> = pods.iter().map(Into::into).collect();
        let containers: Vec<Container> = containers.iter().map(Into::into).collect();
        let h = self.handler.clone();
        let updates = blocking(move || h.synchronize(&pods, &containers)).await?;
        Ok(pb::SynchronizeResponse {
            update: updates.iter().map(Into::into).collect(),
            more: false,
        }
        .encode_to_vec())
    }

    async fn pod_event(&self, ev: i32, pod: PodSandbox) -> Result<(), Status> {
        let h = self.handler.clone();
        blocking(move || match ev {
            event::RUN_POD_SANDBOX => h.run_pod_sandbox(&pod),
            event::STOP_POD_SANDBOX => h.stop_pod_sandbox(&pod),
            event::REMOVE_POD_SANDBOX => h.remove_pod_sandbox(&pod),
            _ => {}
        })
        .await
    }

    async fn create_container(&self, payload: &[u8]) -> Result<Vec<u8>, Status> {
        let m = "CreateContainer";
        let req: pb::CreateContainerRequest = decode(payload)?;
        let (pod, ctr) = (pod_of(m, &req.pod)?, ctr_of(m, &req.container)?);
        let h = self.handler.clone();
        match blocking(move || h.create_container(&pod, &ctr)).await? {
            Ok(adj) => Ok(adjustment_to_pb(&adj).encode_to_vec()),
            Err(rej) => Err(Status::new(code::UNKNOWN, rej.to_status_message())),
        }
    }

    async fn update_container(&self, payload: &[u8]) -> Result<Vec<u8>, Status> {
        let m = "UpdateContainer";
        let req: pb::UpdateContainerRequest = decode(payload)?;
        let (pod, ctr) = (pod_of(m, &req.pod)?, ctr_of(m, &req.container)?);
        let res: Option<LinuxResources> = req.linux_resources.as_ref().map(Into::into);
        let h = self.handler.clone();
        let updates = blocking(move || h.update_container(&pod, &ctr, res.as_ref())).await?;
        Ok(pb::UpdateContainerResponse {
            update: updates.iter().map(Into::into).collect(),
            evict: vec![],
        }
        .encode_to_vec())
    }

    async fn stop_container(&self, payload: &[u8]) -> Result<Vec<u8>, Status> {
        let m = "StopContainer";
        let req: pb::StopContainerRequest = decode(payload)?;
        let (pod, ctr) = (pod_of(m, &req.pod)?, ctr_of(m, &req.container)?);
        let h = self.handler.clone();
        let updates = blocking(move || h.stop_container(&pod, &ctr)).await?;
        Ok(pb::StopContainerResponse {
            update: updates.iter().map(Into::into).collect(),
        }
        .encode_to_vec())
    }

    async fn remove_container(&self, pod: PodSandbox, ctr: Container) -> Result<(), Status> {
        let h = self.handler.clone();
        blocking(move || h.remove_container(&pod, &ctr)).await
    }

    async fn state_change(&self, payload: &[u8]) -> Result<Vec<u8>, Status> {
        let m = "StateChange";
        let ev: pb::StateChangeEvent = decode(payload)?;
        match ev.event {
            event::RUN_POD_SANDBOX | event::STOP_POD_SANDBOX | event::REMOVE_POD_SANDBOX => {
                let pod = pod_of(m, &ev.pod)?;
                self.pod_event(ev.event, pod).await?;
            }
            event::REMOVE_CONTAINER => {
                let (pod, ctr) = (pod_of(m, &ev.pod)?, ctr_of(m, &ev.container)?);
                self.remove_container(pod, ctr).await?;
            }
            // Post-events and StartContainer: not subscribed, nothing to do.
            _ => {}
        }
        Ok(pb::Empty {}.encode_to_vec())
    }
}

macro_rules! pod_request {
    ($self:ident, $payload:ident, $req:ty, $ev:expr, $m:literal) => {{
        let req: $req = decode(&$payload)?;
        let pod = pod_of($m, &req.pod)?;
        $self.pod_event($ev, pod).await?;
        Ok(Vec::new())
    }};
}

impl Service for PluginService {
    async fn call(&self, service: &str, method: &str, payload: Vec<u8>) -> Result<Vec<u8>, Status> {
        if service != PLUGIN_SERVICE {
            return Err(Status::new(
                code::UNIMPLEMENTED,
                format!("service {service}"),
            ));
        }
        match method {
            "Configure" => self.configure(&payload).await,
            "Synchronize" => self.synchronize(&payload).await,
            "Shutdown" => {
                let _: pb::Empty = decode(&payload)?;
                self.shutdown.store(true, Ordering::SeqCst);
                let h = self.handler.clone();
                blocking(move || h.shutdown()).await?;
                Ok(Vec::new())
            }
            "RunPodSandbox" => pod_request!(
                self,
                payload,
                pb::RunPodSandboxRequest,
                event::RUN_POD_SANDBOX,
                "RunPodSandbox"
            ),
            "StopPodSandbox" => pod_request!(
                self,
                payload,
                pb::StopPodSandboxRequest,
                event::STOP_POD_SANDBOX,
                "StopPodSandbox"
            ),
            "RemovePodSandbox" => pod_request!(
                self,
                payload,
                pb::RemovePodSandboxRequest,
                event::REMOVE_POD_SANDBOX,
                "RemovePodSandbox"
            ),
            "CreateContainer" => self.create_container(&payload).await,
            "UpdateContainer" => self.update_container(&payload).await,
            "StopContainer" => self.stop_container(&payload).await,
            "RemoveContainer" => {
                let m = "RemoveContainer";
                let req: pb::RemoveContainerRequest = decode(&payload)?;
                let (pod, ctr) = (pod_of(m, &req.pod)?, ctr_of(m, &req.container)?);
                self.remove_container(pod, ctr).await?;
                Ok(Vec::new())
            }
            "StateChange" => self.state_change(&payload).await,
            // Not subscribed; a runtime that calls anyway gets an empty success.
            "UpdatePodSandbox"
            | "PostUpdatePodSandbox"
            | "PostCreateContainer"
            | "StartContainer"
            | "PostStartContainer"
            | "PostUpdateContainer" => Ok(Vec::new()),
            "ValidateContainerAdjustment" => Ok(pb::ValidateContainerAdjustmentResponse {
                reject: false,
                reason: String::new(),
            }
            .encode_to_vec()),
            _ => Err(Status::new(code::UNIMPLEMENTED, format!("method {method}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_checks() {
        assert!(check_plugin_name("nmm").is_ok());
        assert!(check_plugin_name("a.b+c_d-1").is_ok());
        assert!(check_plugin_name("").is_err());
        assert!(check_plugin_name("a b").is_err());
        assert!(check_plugin_name("nmm/x").is_err());
        assert!(check_plugin_index("00").is_ok());
        assert!(check_plugin_index("90").is_ok());
        assert!(check_plugin_index("1").is_err());
        assert!(check_plugin_index("a1").is_err());
        assert!(check_plugin_index("100").is_err());
    }
}
