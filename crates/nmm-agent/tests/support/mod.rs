//! Set-up shared by the agent's gRPC and NRI tests (each test binary uses part of it).
#![allow(dead_code)]

use hyper_util::rt::TokioIo;
use nmm_agent::nri::{serve_nri, NriAgent, NriOptions};
use nmm_agent::podresources::proto::pod_resources_lister_client::PodResourcesListerClient;
use nmm_agent::podresources::proto::{GetPodResourcesRequest, PodResources};
use nmm_agent::Agent;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tonic::transport::{Channel, Endpoint, Uri};

/// A PodResources client over the agent's unix socket. Over a unix socket the URI only
/// sets `:authority` (localhost, like the kubelet's).
pub async fn client(socket: &Path) -> PodResourcesListerClient<Channel> {
    let path = socket.to_path_buf();
    let channel = Endpoint::try_from("http://localhost")
        .unwrap()
        .connect_with_connector(tower::service_fn(move |_: Uri| {
            let path = path.clone();
            async move {
                Ok::<_, std::io::Error>(TokioIo::new(tokio::net::UnixStream::connect(path).await?))
            }
        }))
        .await
        .unwrap();
    PodResourcesListerClient::new(channel)
}

/// PodResources `Get` of a pod in the `default` namespace.
pub async fn get_pod(c: &mut PodResourcesListerClient<Channel>, name: &str) -> PodResources {
    c.get(GetPodResourcesRequest {
        pod_name: name.into(),
        pod_namespace: "default".into(),
    })
    .await
    .unwrap()
    .into_inner()
    .pod_resources
    .unwrap()
}

/// The agent's NRI plugin loop on a runtime's socket, reconnecting quickly (tests restart
/// the fake runtime).
pub struct Plugin {
    pub handler: Arc<NriAgent>,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Plugin {
    pub fn spawn(agent: Arc<Agent>, socket: &Path) -> Plugin {
        let handler = Arc::new(NriAgent::with_logger(agent, |m| eprintln!("nri: {m}")));
        let (stop, rx) = watch::channel(false);
        let mut opts = NriOptions::new(socket);
        opts.min_backoff = Duration::from_millis(20);
        opts.max_backoff = Duration::from_millis(200);
        let task = tokio::spawn(serve_nri(handler.clone(), opts, rx));
        Plugin {
            handler,
            stop,
            task,
        }
    }

    /// Tells the loop to stop and waits for it (5 s at most).
    pub async fn stop(self) {
        self.stop.send(true).unwrap();
        tokio::time::timeout(Duration::from_secs(5), self.task)
            .await
            .expect("the plugin loop stops")
            .unwrap();
    }
}
