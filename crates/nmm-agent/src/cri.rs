//! The runtime's truth over CRI: which pod sandboxes and containers it really runs
//! (`runtime.v1.RuntimeService` `ListPodSandbox` / `ListContainers` on containerd's or
//! CRI-O's socket), and a fake CRI service whose lists a test sets.
//!
//! Why: containerd does not send `StopPodSandbox`/`RemovePodSandbox` (nor container
//! removals) to NRI plugins for pods that existed before it restarted (containerd issue
//! 8426); after a restart the plugin only sees `Configure` and `Synchronize`. The agent's
//! reconcile loop ([`crate::reconcile`]) lists the runtime's pods through this client
//! after every (re)connection and periodically, and releases what is gone.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tonic::transport::{Channel, Endpoint, Uri};

/// The generated CRI messages and services (`proto/cri_runtime_v1.proto`).
#[allow(clippy::all)]
pub mod proto {
    tonic::include_proto!("runtime.v1");
}

use proto::runtime_service_client::RuntimeServiceClient;
use proto::runtime_service_server::{RuntimeService, RuntimeServiceServer};

/// containerd's socket (CRI-O: `/var/run/crio/crio.sock`).
pub const DEFAULT_CRI_SOCKET: &str = "/run/containerd/containerd.sock";
/// The largest CRI answer read (the kubelet's limit for its CRI client).
pub const MAX_CRI_MESSAGE: usize = 16 << 20;
/// How long one CRI call may take.
pub const CRI_CALL_TIMEOUT: Duration = Duration::from_secs(5);

/// A pod sandbox as the runtime lists it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct CriSandbox {
    pub id: String,
    pub uid: String,
    pub name: String,
    pub namespace: String,
    pub ready: bool,
}

/// A container as the runtime lists it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct CriContainer {
    pub id: String,
    pub sandbox_id: String,
    pub name: String,
    /// `CONTAINER_EXITED`.
    pub exited: bool,
}

/// What the runtime runs, at one moment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RuntimeView {
    pub sandboxes: Vec<CriSandbox>,
    pub containers: Vec<CriContainer>,
}

impl RuntimeView {
    /// The uids of the pods that have a sandbox (ready or not): a pod whose sandbox is
    /// gone is gone.
    pub fn pod_uids(&self) -> BTreeSet<String> {
        self.sandboxes
            .iter()
            .filter(|s| !s.uid.is_empty())
            .map(|s| s.uid.clone())
            .collect()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CriError {
    #[error("CRI socket {path}: cannot connect: {message}")]
    Connect { path: PathBuf, message: String },
    #[error("CRI socket {path}: {call} failed: {message}")]
    Call {
        path: PathBuf,
        call: &'static str,
        message: String,
    },
}

/// A connected CRI runtime client.
#[derive(Debug, Clone)]
pub struct CriClient {
    client: RuntimeServiceClient<Channel>,
    path: PathBuf,
    /// `runtime_name runtime_version` from `Version`.
    pub runtime: String,
}

impl CriClient {
    /// Connects to the unix socket at `path` and asks the runtime's `Version`.
    pub async fn connect(path: &Path) -> Result<CriClient, CriError> {
        let p = path.to_path_buf();
        let connect_err = |message: String| CriError::Connect {
            path: path.to_path_buf(),
            message,
        };
        // Over a unix socket the URI only sets :authority.
        let channel = Endpoint::try_from("http://localhost")
            .map_err(|e| connect_err(e.to_string()))?
            .connect_timeout(CRI_CALL_TIMEOUT)
            .timeout(CRI_CALL_TIMEOUT)
            .connect_with_connector(tower::service_fn(move |_: Uri| {
                let p = p.clone();
                async move {
                    let s = tokio::net::UnixStream::connect(p).await?;
                    Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(s))
                }
            }))
            .await
            .map_err(|e| connect_err(error_chain(&e)))?;
        let mut client =
            RuntimeServiceClient::new(channel).max_decoding_message_size(MAX_CRI_MESSAGE);
        let v = client
            .version(proto::VersionRequest {
                version: "v1".into(),
            })
            .await
            .map_err(|e| CriError::Call {
                path: path.to_path_buf(),
                call: "Version",
                message: e.message().to_string(),
            })?
            .into_inner();
        Ok(CriClient {
            client,
            path: path.to_path_buf(),
            runtime: format!("{} {}", v.runtime_name, v.runtime_version),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Lists the sandboxes, then the containers.
    pub async fn list(&mut self) -> Result<RuntimeView, CriError> {
        let call_err = |call: &'static str, e: tonic::Status| CriError::Call {
            path: self.path.clone(),
            call,
            message: e.message().to_string(),
        };
        let pods = self
            .client
            .list_pod_sandbox(proto::ListPodSandboxRequest { filter: None })
            .await
            .map_err(|e| call_err("ListPodSandbox", e))?
            .into_inner();
        let ctrs = self
            .client
            .list_containers(proto::ListContainersRequest { filter: None })
            .await
            .map_err(|e| call_err("ListContainers", e))?
            .into_inner();
        Ok(view_from_pb(&pods, &ctrs))
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let t = c.to_string();
        if !s.contains(&t) {
            s.push_str(": ");
            s.push_str(&t);
        }
        cur = c.source();
    }
    s
}

fn view_from_pb(
    pods: &proto::ListPodSandboxResponse,
    ctrs: &proto::ListContainersResponse,
) -> RuntimeView {
    let sandboxes = pods
        .items
        .iter()
        .map(|p| {
            let m = p.metadata.clone().unwrap_or_default();
            CriSandbox {
                id: p.id.clone(),
                uid: m.uid,
                name: m.name,
                namespace: m.namespace,
                ready: p.state == proto::PodSandboxState::SandboxReady as i32,
            }
        })
        .collect();
    let containers = ctrs
        .containers
        .iter()
        .map(|c| CriContainer {
            id: c.id.clone(),
            sandbox_id: c.pod_sandbox_id.clone(),
            name: c
                .metadata
                .as_ref()
                .map(|m| m.name.clone())
                .unwrap_or_default(),
            exited: c.state == proto::ContainerState::ContainerExited as i32,
        })
        .collect();
    RuntimeView {
        sandboxes,
        containers,
    }
}

/// A fake CRI runtime service: answers `Version`, `ListPodSandbox` and `ListContainers`
/// from a [`RuntimeView`] the test sets (filters are ignored).
#[derive(Debug, Clone, Default)]
pub struct FakeCri {
    view: Arc<Mutex<RuntimeView>>,
    calls: Arc<Mutex<usize>>,
}

impl FakeCri {
    pub fn new() -> FakeCri {
        FakeCri::default()
    }

    /// What the runtime runs from now on.
    pub fn set(&self, view: RuntimeView) {
        *self.view.lock().unwrap_or_else(|e| e.into_inner()) = view;
    }

    pub fn view(&self) -> RuntimeView {
        self.view.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// `ListPodSandbox` calls answered so far.
    pub fn list_calls(&self) -> usize {
        *self.calls.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Serves on a unix socket at `path` until `stop` resolves. Must run inside a tokio
    /// runtime; returns once the socket listens.
    pub fn serve(
        &self,
        path: &Path,
        stop: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<tokio::task::JoinHandle<()>> {
        let _ = std::fs::remove_file(path);
        let l = tokio::net::UnixListener::bind(path)?;
        let incoming = tokio_stream::wrappers::UnixListenerStream::new(l);
        let svc = RuntimeServiceServer::new(self.clone());
        Ok(tokio::spawn(async move {
            let _ = tonic::transport::Server::builder()
                .add_service(svc)
                .serve_with_incoming_shutdown(incoming, stop)
                .await;
        }))
    }
}

#[tonic::async_trait]
impl RuntimeService for FakeCri {
    async fn version(
        &self,
        _req: tonic::Request<proto::VersionRequest>,
    ) -> Result<tonic::Response<proto::VersionResponse>, tonic::Status> {
        Ok(tonic::Response::new(proto::VersionResponse {
            version: "0.1.0".into(),
            runtime_name: "fake-cri".into(),
            runtime_version: "v2.1.0".into(),
            runtime_api_version: "v1".into(),
        }))
    }

    async fn list_pod_sandbox(
        &self,
        _req: tonic::Request<proto::ListPodSandboxRequest>,
    ) -> Result<tonic::Response<proto::ListPodSandboxResponse>, tonic::Status> {
        *self.calls.lock().unwrap_or_else(|e| e.into_inner()) += 1;
        let v = self.view();
        let items = v
            .sandboxes
            .iter()
            .map(|s| proto::PodSandbox {
                id: s.id.clone(),
                metadata: Some(proto::PodSandboxMetadata {
                    name: s.name.clone(),
                    uid: s.uid.clone(),
                    namespace: s.namespace.clone(),
                    attempt: 0,
                }),
                state: if s.ready {
                    proto::PodSandboxState::SandboxReady as i32
                } else {
                    proto::PodSandboxState::SandboxNotready as i32
                },
                ..Default::default()
            })
            .collect();
        Ok(tonic::Response::new(proto::ListPodSandboxResponse {
            items,
        }))
    }

    async fn list_containers(
        &self,
        _req: tonic::Request<proto::ListContainersRequest>,
    ) -> Result<tonic::Response<proto::ListContainersResponse>, tonic::Status> {
        let v = self.view();
        let containers = v
            .containers
            .iter()
            .map(|c| proto::Container {
                id: c.id.clone(),
                pod_sandbox_id: c.sandbox_id.clone(),
                metadata: Some(proto::ContainerMetadata {
                    name: c.name.clone(),
                    attempt: 0,
                }),
                state: if c.exited {
                    proto::ContainerState::ContainerExited as i32
                } else {
                    proto::ContainerState::ContainerRunning as i32
                },
                ..Default::default()
            })
            .collect();
        Ok(tonic::Response::new(proto::ListContainersResponse {
            containers,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn client_lists_what_the_fake_serves() {
        let d = tempfile::tempdir().unwrap();
        let sock = d.path().join("cri.sock");
        let fake = FakeCri::new();
        let view = RuntimeView {
            sandboxes: vec![CriSandbox {
                id: "s1".into(),
                uid: "u1".into(),
                name: "p".into(),
                namespace: "default".into(),
                ready: false,
            }],
            containers: vec![CriContainer {
                id: "c1".into(),
                sandbox_id: "s1".into(),
                name: "app".into(),
                exited: true,
            }],
        };
        fake.set(view.clone());
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = fake
            .serve(&sock, async {
                let _ = rx.await;
            })
            .unwrap();
        let mut c = CriClient::connect(&sock).await.unwrap();
        assert_eq!(c.runtime, "fake-cri v2.1.0");
        assert_eq!(c.list().await.unwrap(), view);
        assert_eq!(fake.list_calls(), 1);
        let _ = tx.send(());
        task.await.unwrap();
        let e = CriClient::connect(&d.path().join("none.sock"))
            .await
            .unwrap_err()
            .to_string();
        assert!(e.contains("none.sock: cannot connect"), "{e}");
    }
}
