//! A fake NRI runtime: the runtime's side of the protocol, written to behave as
//! containerd's NRI adaptation (`github.com/containerd/nri/pkg/adaptation`) does, so
//! that the plugin can be tested where no NRI-capable runtime is installed.
//!
//! What it reproduces:
//! * the socket: the runtime listens, the plugin connects; one trunk multiplexes
//!   conn 1 (runtime → `Plugin` service) and conn 2 (plugin → `Runtime` service);
//! * reading like a Go peer: a 4 KiB `bufio.Reader` over NRI's mux connection, which
//!   fails on a frame larger than the read buffer (see `conn::GoSource`); writing like
//!   one: messages cut into frames as Go's 4 KiB `bufio.Writer` does;
//! * registration: waits (5 s) for `RegisterPlugin`, checks name (`[a-zA-Z0-9_.+-]+`)
//!   and index (two digits);
//! * `Configure` with runtime name/version and timeouts; an events answer of 0 means
//!   all events, bits outside the valid events are an error;
//! * `Synchronize`: everything in one message, split only when the request would be
//!   over 4 MiB (or, as a test knob, into fixed batches), with `more` set on all but
//!   the last, and the plugin dropped if it answers a `more` batch with updates;
//! * events only if subscribed; every call with the request timeout (2 s), a timeout
//!   or a lost connection dropping the plugin; pod events and RemoveContainer as
//!   dedicated calls, falling back for good to `StateChange` when the plugin answers
//!   Unimplemented (NRI v0.10+), or always as `StateChange` (earlier NRI);
//! * `UpdateContainers` from the plugin, recorded and answered with no failures.
//!
//! Where containerd would carry on after dropping a plugin (a fatal error makes the
//! adaptation return no adjustment and no error), the fake reports
//! [`RuntimeError::PluginClosed`] so tests can see it.

use crate::conn::*;
use crate::convert::adjustment_from_pb;
use crate::handler::event;
use crate::mux::{PLUGIN_SERVICE_CONN, READ_QUEUE_LEN, RUNTIME_SERVICE_CONN};
use crate::pb::nri as pb;
use crate::plugin::{check_plugin_index, check_plugin_name};
use crate::ttrpc::{code, encode_message, Status, MESSAGE_LENGTH_MAX};
use crate::types::*;
use crate::{PLUGIN_SERVICE, RUNTIME_SERVICE};
use prost::Message;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{mpsc, oneshot, watch};

/// How pod events and RemoveContainer reach the plugin.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EventDelivery {
    /// NRI v0.10+: dedicated calls (`RunPodSandbox`, `RemoveContainer`, ...), falling
    /// back to `StateChange` once the plugin answers Unimplemented.
    #[default]
    Dedicated,
    /// NRI up to v0.9 (containerd 2.0/2.1, CRI-O 1.30-1.33): always `StateChange`.
    StateChange,
}

/// The fake runtime's settings; defaults are NRI's.
#[derive(Debug, Clone)]
pub struct FakeRuntimeConfig {
    pub runtime_name: String,
    pub runtime_version: String,
    pub nri_version: String,
    /// Plugin-specific configuration passed in `Configure`.
    pub plugin_config: String,
    pub registration_timeout: Duration,
    pub request_timeout: Duration,
    pub delivery: EventDelivery,
    /// Test knob: send at most this many pods and this many containers per
    /// `Synchronize` message. `None`: one message, split only if oversized.
    pub sync_batch: Option<usize>,
}

impl Default for FakeRuntimeConfig {
    fn default() -> Self {
        FakeRuntimeConfig {
            runtime_name: "containerd".into(),
            runtime_version: "v2.1.0".into(),
            nri_version: "v0.10.0".into(),
            plugin_config: String::new(),
            registration_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(2),
            delivery: EventDelivery::Dedicated,
            sync_batch: None,
        }
    }
}

/// Errors seen by the runtime side.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RuntimeError {
    #[error("I/O: {0}")]
    Io(String),
    #[error("failed to register plugin: {0}")]
    Registration(String),
    #[error("failed to configure plugin: {0}")]
    Configure(String),
    #[error("failed to synchronize plugin: {0}")]
    Sync(String),
    /// The plugin answered with an error status; the runtime fails the operation
    /// (for CreateContainer: the container is not created) and keeps the plugin.
    #[error("{0}")]
    Plugin(Status),
    /// The request would be over 4 MiB; not sent.
    #[error("request of {len} bytes exceeds maximum message size of {MESSAGE_LENGTH_MAX}")]
    Oversized { len: usize },
    #[error("bad response from plugin: {0}")]
    BadResponse(String),
    /// The plugin's connection is gone (closed, timed out, broke the protocol).
    #[error("plugin closed: {0}")]
    PluginClosed(String),
}

impl RuntimeError {
    /// The admission rejection carried by a plugin error, if any.
    pub fn rejection(&self) -> Option<Rejection> {
        match self {
            RuntimeError::Plugin(st) => Rejection::from_status_message(&st.message),
            _ => None,
        }
    }
}

/// What CreateContainer returned.
#[derive(Debug, Clone, PartialEq)]
pub struct CreateContainerResult {
    /// The plain view of the adjustment (and of `updates` to other containers).
    pub adjustment: ContainerAdjustment,
    /// The container with the adjustment applied, as the runtime would create it.
    pub container: Container,
    /// The response as received.
    pub raw: pb::CreateContainerResponse,
}

/// A listening fake runtime.
pub struct FakeRuntime {
    listener: UnixListener,
    path: PathBuf,
    config: FakeRuntimeConfig,
}

impl FakeRuntime {
    /// Listens on `path` (a stale socket file is removed first, as NRI does). Must be
    /// called inside a tokio runtime.
    pub fn listen(path: impl AsRef<Path>) -> io::Result<FakeRuntime> {
        let path = path.as_ref().to_path_buf();
        let _ = std::fs::remove_file(&path);
        let listener = UnixListener::bind(&path)?;
        Ok(FakeRuntime {
            listener,
            path,
            config: FakeRuntimeConfig::default(),
        })
    }

    pub fn with_config(mut self, config: FakeRuntimeConfig) -> Self {
        self.config = config;
        self
    }

    pub fn config(&self) -> &FakeRuntimeConfig {
        &self.config
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Accepts a connection without speaking: for tests that send raw bytes.
    pub async fn accept_raw(&self) -> io::Result<UnixStream> {
        Ok(self.listener.accept().await?.0)
    }

    /// Accepts a plugin and brings it up: registration, configuration, and
    /// synchronization with `pods` and `containers`.
    pub async fn accept(
        &self,
        pods: &[PodSandbox],
        containers: &[Container],
    ) -> Result<FakePlugin, RuntimeError> {
        let stream = self
            .accept_raw()
            .await
            .map_err(|e| RuntimeError::Io(e.to_string()))?;
        FakePlugin::start(stream, self.config.clone(), pods, containers).await
    }
}

#[derive(Default)]
struct Recorded {
    unsolicited: Vec<ContainerUpdate>,
}

type Registration = Result<(String, String), String>;

struct RuntimeService {
    reg: Mutex<Option<oneshot::Sender<Registration>>>,
    recorded: Arc<Mutex<Recorded>>,
}

impl Service for RuntimeService {
    async fn call(&self, service: &str, method: &str, payload: Vec<u8>) -> Result<Vec<u8>, Status> {
        if service != RUNTIME_SERVICE {
            return Err(Status::new(
                code::UNIMPLEMENTED,
                format!("service {service}"),
            ));
        }
        let bad = |e: prost::DecodeError| {
            Status::new(
                code::INTERNAL,
                format!("ttrpc: error unmarshalling payload: {e}"),
            )
        };
        match method {
            "RegisterPlugin" => {
                let req = pb::RegisterPluginRequest::decode(&payload[..]).map_err(bad)?;
                let checked = check_plugin_name(&req.plugin_name)
                    .map_err(|e| format!("invalid plugin name: {e}"))
                    .and_then(|()| {
                        check_plugin_index(&req.plugin_idx)
                            .map_err(|e| format!("invalid plugin index: {e}"))
                    });
                let tx = self.reg.lock().unwrap_or_else(|e| e.into_inner()).take();
                match checked {
                    Ok(()) => {
                        if let Some(tx) = tx {
                            let _ = tx.send(Ok((req.plugin_name, req.plugin_idx)));
                        }
                        Ok(pb::Empty {}.encode_to_vec())
                    }
                    Err(e) => {
                        if let Some(tx) = tx {
                            let _ = tx.send(Err(e.clone()));
                        }
                        Err(Status::new(code::UNKNOWN, e))
                    }
                }
            }
            "UpdateContainers" => {
                let req = pb::UpdateContainersRequest::decode(&payload[..]).map_err(bad)?;
                let mut r = self.recorded.lock().unwrap_or_else(|e| e.into_inner());
                r.unsolicited
                    .extend(req.update.iter().map(ContainerUpdate::from));
                Ok(pb::UpdateContainersResponse { failed: vec![] }.encode_to_vec())
            }
            _ => Err(Status::new(code::UNIMPLEMENTED, format!("method {method}"))),
        }
    }
}

/// A connected, registered, configured and synchronized plugin, seen from the runtime.
pub struct FakePlugin {
    writer: MuxWriter,
    client: Client,
    _tasks: TaskSet,
    config: FakeRuntimeConfig,
    name: String,
    idx: String,
    events: i32,
    sync_updates: Vec<ContainerUpdate>,
    sync_messages: usize,
    state_change_fallback: bool,
    closed_tx: Arc<watch::Sender<Option<String>>>,
    closed_rx: watch::Receiver<Option<String>>,
    recorded: Arc<Mutex<Recorded>>,
}

impl FakePlugin {
    async fn start(
        stream: UnixStream,
        config: FakeRuntimeConfig,
        pods: &[PodSandbox],
        containers: &[Container],
    ) -> Result<FakePlugin, RuntimeError> {
        let (rd, wr) = stream.into_split();
        let writer = MuxWriter::new(wr);
        let (tx1, rx1) = mpsc::channel(READ_QUEUE_LEN);
        let (tx2, rx2) = mpsc::channel(READ_QUEUE_LEN);
        let (closed_tx, closed_rx) = watch::channel(None::<String>);
        let closed_tx = Arc::new(closed_tx);
        let mut tasks = TaskSet::default();
        let close_with = |tx: &Arc<watch::Sender<Option<String>>>, why: String| {
            tx.send_if_modified(|v| {
                if v.is_none() {
                    *v = Some(why);
                    true
                } else {
                    false
                }
            });
        };
        {
            let closed_tx = closed_tx.clone();
            tasks.spawn(async move {
                let r = demux(
                    rd,
                    vec![(PLUGIN_SERVICE_CONN, tx1), (RUNTIME_SERVICE_CONN, tx2)],
                )
                .await;
                close_with(
                    &closed_tx,
                    match r {
                        Ok(()) => "connection closed by plugin".into(),
                        Err(e) => e,
                    },
                );
            });
        }
        let (client, reader) = Client::new(writer.clone(), PLUGIN_SERVICE_CONN, GoSource::new(rx1));
        {
            let closed_tx = closed_tx.clone();
            tasks.spawn(async move {
                if let Err(e) = reader.await {
                    close_with(&closed_tx, e);
                }
            });
        }
        let (reg_tx, reg_rx) = oneshot::channel();
        let recorded = Arc::new(Mutex::new(Recorded::default()));
        let svc = RuntimeService {
            reg: Mutex::new(Some(reg_tx)),
            recorded: recorded.clone(),
        };
        {
            let writer = writer.clone();
            let closed_tx = closed_tx.clone();
            tasks.spawn(async move {
                if let Err(e) = serve(GoSource::new(rx2), writer, RUNTIME_SERVICE_CONN, &svc).await
                {
                    close_with(&closed_tx, e);
                }
            });
        }

        let mut closed = closed_rx.clone();
        let reg = tokio::select! {
            r = tokio::time::timeout(config.registration_timeout, reg_rx) => match r {
                Err(_) => Err("plugin registration timed out".to_string()),
                Ok(Err(_)) => Err("failed to register plugin, connection closed".to_string()),
                Ok(Ok(r)) => r,
            },
            r = closed.wait_for(|c| c.is_some()) => {
                let why = r.map(|v| v.clone().unwrap_or_default()).unwrap_or_default();
                Err(format!("failed to register plugin, connection closed ({why})"))
            }
        };
        let (name, idx) = match reg {
            Ok(v) => v,
            Err(e) => {
                writer.shutdown().await;
                return Err(RuntimeError::Registration(e));
            }
        };

        let mut fp = FakePlugin {
            writer,
            client,
            _tasks: tasks,
            config,
            name,
            idx,
            events: 0,
            sync_updates: vec![],
            sync_messages: 0,
            state_change_fallback: false,
            closed_tx,
            closed_rx,
            recorded,
        };
        if let Err(e) = fp.configure().await {
            fp.close(&e.to_string()).await;
            return Err(e);
        }
        let pods: Vec<pb::PodSandbox> = pods.iter().map(Into::into).collect();
        let ctrs: Vec<pb::Container> = containers.iter().map(Into::into).collect();
        match fp.synchronize(&pods, &ctrs).await {
            Ok(u) => fp.sync_updates = u,
            Err(e) => {
                fp.close(&e.to_string()).await;
                return Err(e);
            }
        }
        Ok(fp)
    }

    /// The name the plugin registered with.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The index the plugin registered with.
    pub fn index(&self) -> &str {
        &self.idx
    }

    /// The event mask in force (after "0 means all").
    pub fn events(&self) -> i32 {
        self.events
    }

    pub fn subscribed(&self, ev: i32) -> bool {
        self.events & event::bit(ev) != 0
    }

    /// The updates the plugin answered `Synchronize` with.
    pub fn sync_updates(&self) -> &[ContainerUpdate] {
        &self.sync_updates
    }

    /// How many `Synchronize` messages were exchanged.
    pub fn sync_messages(&self) -> usize {
        self.sync_messages
    }

    /// Whether pod events now go through `StateChange`.
    pub fn uses_state_change(&self) -> bool {
        self.state_change_fallback || self.config.delivery == EventDelivery::StateChange
    }

    /// Updates the plugin sent with `UpdateContainers`, so far.
    pub fn unsolicited_updates(&self) -> Vec<ContainerUpdate> {
        self.recorded
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .unsolicited
            .clone()
    }

    /// Why the connection is gone, if it is.
    pub fn closed(&self) -> Option<String> {
        self.closed_rx.borrow().clone()
    }

    /// Waits up to `timeout` for the connection to go; the reason, if it went.
    pub async fn wait_closed(&self, timeout: Duration) -> Option<String> {
        let mut rx = self.closed_rx.clone();
        let _ = tokio::time::timeout(timeout, rx.wait_for(|c| c.is_some())).await;
        self.closed()
    }

    /// Drops the plugin: closes the connection.
    pub async fn close(&self, why: &str) {
        self.closed_tx.send_if_modified(|v| {
            if v.is_none() {
                *v = Some(why.to_string());
                true
            } else {
                false
            }
        });
        self.writer.shutdown().await;
    }

    async fn call(&mut self, method: &str, payload: Vec<u8>) -> Result<Vec<u8>, RuntimeError> {
        self.call_service(PLUGIN_SERVICE, method, payload).await
    }

    /// Calls any method of any service on the plugin's connection, with the runtime's
    /// error handling (fatal errors drop the plugin).
    pub async fn call_service(
        &mut self,
        service: &str,
        method: &str,
        payload: Vec<u8>,
    ) -> Result<Vec<u8>, RuntimeError> {
        if let Some(why) = self.closed() {
            return Err(RuntimeError::PluginClosed(why));
        }
        let r = self
            .client
            .call(service, method, payload, Some(self.config.request_timeout))
            .await;
        self.classify(r).await
    }

    async fn classify(&mut self, r: Result<Vec<u8>, CallError>) -> Result<Vec<u8>, RuntimeError> {
        match r {
            Ok(p) => Ok(p),
            Err(CallError::Status(st)) => Err(RuntimeError::Plugin(st)),
            Err(CallError::Oversized { len }) => Err(RuntimeError::Oversized { len }),
            Err(CallError::Timeout(d)) => {
                let why = format!("context deadline exceeded (no answer within {d:?})");
                self.close(&why).await;
                Err(RuntimeError::PluginClosed(why))
            }
            Err(CallError::Closed(why)) => {
                self.close(&why).await;
                Err(RuntimeError::PluginClosed(self.closed().unwrap_or(why)))
            }
        }
    }

    /// Sends a hand-made ttrpc message on conn 1 and waits for the answer on
    /// `stream_id` (for protocol tests). Stream ids of later calls stay above it.
    pub async fn send_ttrpc(
        &mut self,
        stream_id: u32,
        msg_type: u8,
        flags: u8,
        data: &[u8],
    ) -> Result<Vec<u8>, RuntimeError> {
        let msg = encode_message(stream_id, msg_type, flags, data)
            .map_err(|_| RuntimeError::Oversized { len: data.len() })?;
        let r = self
            .client
            .call_message(stream_id, &msg, Some(self.config.request_timeout))
            .await;
        self.classify(r).await
    }

    /// Writes bytes on the trunk as they are and waits for a response on conn 1's
    /// `stream_id` (for protocol tests that hand-make frames).
    pub async fn send_raw_expect(
        &mut self,
        stream_id: u32,
        trunk_bytes: &[u8],
    ) -> Result<Vec<u8>, RuntimeError> {
        let r = self
            .client
            .call_raw(stream_id, trunk_bytes, Some(self.config.request_timeout))
            .await;
        self.classify(r).await
    }

    /// Writes bytes on the trunk as they are.
    pub async fn send_raw(&self, bytes: &[u8]) -> io::Result<()> {
        self.writer.write_raw(bytes).await
    }

    async fn configure(&mut self) -> Result<(), RuntimeError> {
        let req = pb::ConfigureRequest {
            config: self.config.plugin_config.clone(),
            runtime_name: self.config.runtime_name.clone(),
            runtime_version: self.config.runtime_version.clone(),
            registration_timeout: self.config.registration_timeout.as_millis() as i64,
            request_timeout: self.config.request_timeout.as_millis() as i64,
            nri_version: self.config.nri_version.clone(),
        };
        let rpl = self
            .call("Configure", req.encode_to_vec())
            .await
            .map_err(|e| RuntimeError::Configure(e.to_string()))?;
        let rpl = pb::ConfigureResponse::decode(&rpl[..])
            .map_err(|e| RuntimeError::Configure(format!("bad response: {e}")))?;
        let events = if rpl.events == 0 {
            event::VALID_EVENTS
        } else {
            rpl.events
        };
        if events & !event::VALID_EVENTS != 0 {
            return Err(RuntimeError::Configure(format!(
                "invalid plugin events: 0x{:x}",
                events & !event::VALID_EVENTS
            )));
        }
        self.events = events;
        Ok(())
    }

    async fn synchronize(
        &mut self,
        pods: &[pb::PodSandbox],
        ctrs: &[pb::Container],
    ) -> Result<Vec<ContainerUpdate>, RuntimeError> {
        const MIN_OBJS_PER_MSG: usize = 8;
        let (mut pods_per, mut ctrs_per) = match self.config.sync_batch {
            Some(n) => (n.min(pods.len()), n.min(ctrs.len())),
            None => (pods.len(), ctrs.len()),
        };
        let (mut pods_left, mut ctrs_left) = (pods, ctrs);
        loop {
            let more = pods_left.len() > pods_per || ctrs_left.len() > ctrs_per;
            let req = pb::SynchronizeRequest {
                pods: pods_left[..pods_per].to_vec(),
                containers: ctrs_left[..ctrs_per].to_vec(),
                more,
            };
            match self.call("Synchronize", req.encode_to_vec()).await {
                Ok(bytes) => {
                    self.sync_messages += 1;
                    let rpl = pb::SynchronizeResponse::decode(&bytes[..])
                        .map_err(|e| RuntimeError::Sync(format!("bad response: {e}")))?;
                    if !more {
                        return Ok(rpl.update.iter().map(Into::into).collect());
                    }
                    if !rpl.update.is_empty() || rpl.more != more {
                        return Err(RuntimeError::Sync(
                            "plugin does not handle split sync requests".into(),
                        ));
                    }
                    pods_left = &pods_left[pods_per..];
                    ctrs_left = &ctrs_left[ctrs_per..];
                    pods_per = pods_per.min(pods_left.len());
                    ctrs_per = ctrs_per.min(ctrs_left.len());
                }
                Err(RuntimeError::Oversized { len }) => {
                    // recalcObjsPerSyncMsg
                    if pods_per + ctrs_per <= MIN_OBJS_PER_MSG {
                        return Err(RuntimeError::Sync(
                            "failed to synchronize plugin with split messages".into(),
                        ));
                    }
                    let factor = (MESSAGE_LENGTH_MAX as f64 / len as f64).min(0.9);
                    pods_per = (pods_per as f64 * factor) as usize;
                    ctrs_per = (ctrs_per as f64 * factor) as usize;
                    if pods_per + ctrs_per < MIN_OBJS_PER_MSG {
                        pods_per = MIN_OBJS_PER_MSG / 2;
                        ctrs_per = MIN_OBJS_PER_MSG / 2;
                    }
                    pods_per = pods_per.min(pods_left.len());
                    ctrs_per = ctrs_per.min(ctrs_left.len());
                }
                Err(e) => return Err(RuntimeError::Sync(e.to_string())),
            }
        }
    }

    /// Pod events and RemoveContainer: dedicated call or `StateChange`.
    async fn lifecycle_event(
        &mut self,
        method: &str,
        ev: i32,
        payload: Vec<u8>,
        pod: pb::PodSandbox,
        container: Option<pb::Container>,
    ) -> Result<(), RuntimeError> {
        if !self.subscribed(ev) {
            return Ok(());
        }
        if !self.uses_state_change() {
            match self.call(method, payload).await {
                Err(RuntimeError::Plugin(st)) if st.code == code::UNIMPLEMENTED => {
                    self.state_change_fallback = true;
                }
                r => return r.map(|_| ()),
            }
        }
        let sc = pb::StateChangeEvent {
            event: ev,
            pod: Some(pod),
            container,
        };
        self.call("StateChange", sc.encode_to_vec())
            .await
            .map(|_| ())
    }

    pub async fn run_pod_sandbox(&mut self, pod: &PodSandbox) -> Result<(), RuntimeError> {
        let p: pb::PodSandbox = pod.into();
        let req = pb::RunPodSandboxRequest {
            pod: Some(p.clone()),
        };
        self.lifecycle_event(
            "RunPodSandbox",
            event::RUN_POD_SANDBOX,
            req.encode_to_vec(),
            p,
            None,
        )
        .await
    }

    pub async fn stop_pod_sandbox(&mut self, pod: &PodSandbox) -> Result<(), RuntimeError> {
        let p: pb::PodSandbox = pod.into();
        let req = pb::StopPodSandboxRequest {
            pod: Some(p.clone()),
        };
        self.lifecycle_event(
            "StopPodSandbox",
            event::STOP_POD_SANDBOX,
            req.encode_to_vec(),
            p,
            None,
        )
        .await
    }

    pub async fn remove_pod_sandbox(&mut self, pod: &PodSandbox) -> Result<(), RuntimeError> {
        let p: pb::PodSandbox = pod.into();
        let req = pb::RemovePodSandboxRequest {
            pod: Some(p.clone()),
        };
        self.lifecycle_event(
            "RemovePodSandbox",
            event::REMOVE_POD_SANDBOX,
            req.encode_to_vec(),
            p,
            None,
        )
        .await
    }

    pub async fn remove_container(
        &mut self,
        pod: &PodSandbox,
        container: &Container,
    ) -> Result<(), RuntimeError> {
        let p: pb::PodSandbox = pod.into();
        let c: pb::Container = container.into();
        let req = pb::RemoveContainerRequest {
            pod: Some(p.clone()),
            container: Some(c.clone()),
        };
        self.lifecycle_event(
            "RemoveContainer",
            event::REMOVE_CONTAINER,
            req.encode_to_vec(),
            p,
            Some(c),
        )
        .await
    }

    /// CreateContainer. `Ok` with an empty adjustment if the plugin is not
    /// subscribed; `Err(RuntimeError::Plugin)` if it rejected the container (see
    /// [`RuntimeError::rejection`]).
    pub async fn create_container(
        &mut self,
        pod: &PodSandbox,
        container: &Container,
    ) -> Result<CreateContainerResult, RuntimeError> {
        let raw = if self.subscribed(event::CREATE_CONTAINER) {
            let req = pb::CreateContainerRequest {
                pod: Some(pod.into()),
                container: Some(container.into()),
            };
            let bytes = self.call("CreateContainer", req.encode_to_vec()).await?;
            pb::CreateContainerResponse::decode(&bytes[..])
                .map_err(|e| RuntimeError::BadResponse(e.to_string()))?
        } else {
            pb::CreateContainerResponse::default()
        };
        let adjustment = adjustment_from_pb(&raw);
        let mut created = container.clone();
        let res = created.resources.get_or_insert_with(Default::default);
        if let Some(c) = &adjustment.cpuset_cpus {
            res.cpuset_cpus = c.clone();
        }
        if let Some(m) = &adjustment.cpuset_mems {
            res.cpuset_mems = m.clone();
        }
        for (k, v) in &adjustment.annotations {
            created.annotations.insert(k.clone(), v.clone());
        }
        Ok(CreateContainerResult {
            adjustment,
            container: created,
            raw,
        })
    }

    /// UpdateContainer: the plugin's updates (empty if not subscribed).
    pub async fn update_container(
        &mut self,
        pod: &PodSandbox,
        container: &Container,
        resources: Option<&LinuxResources>,
    ) -> Result<Vec<ContainerUpdate>, RuntimeError> {
        if !self.subscribed(event::UPDATE_CONTAINER) {
            return Ok(vec![]);
        }
        let req = pb::UpdateContainerRequest {
            pod: Some(pod.into()),
            container: Some(container.into()),
            linux_resources: resources.map(Into::into),
        };
        let bytes = self.call("UpdateContainer", req.encode_to_vec()).await?;
        let rpl = pb::UpdateContainerResponse::decode(&bytes[..])
            .map_err(|e| RuntimeError::BadResponse(e.to_string()))?;
        Ok(rpl.update.iter().map(Into::into).collect())
    }

    /// StopContainer: the plugin's updates to remaining containers.
    pub async fn stop_container(
        &mut self,
        pod: &PodSandbox,
        container: &Container,
    ) -> Result<Vec<ContainerUpdate>, RuntimeError> {
        if !self.subscribed(event::STOP_CONTAINER) {
            return Ok(vec![]);
        }
        let req = pb::StopContainerRequest {
            pod: Some(pod.into()),
            container: Some(container.into()),
        };
        let bytes = self.call("StopContainer", req.encode_to_vec()).await?;
        let rpl = pb::StopContainerResponse::decode(&bytes[..])
            .map_err(|e| RuntimeError::BadResponse(e.to_string()))?;
        Ok(rpl.update.iter().map(Into::into).collect())
    }

    /// Shutdown: the runtime is going down.
    pub async fn shutdown(&mut self) -> Result<(), RuntimeError> {
        self.call("Shutdown", pb::Empty {}.encode_to_vec())
            .await
            .map(|_| ())
    }
}
