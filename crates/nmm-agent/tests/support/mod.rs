//! Set-up shared by the agent's gRPC tests.

use hyper_util::rt::TokioIo;
use nmm_agent::podresources::proto::pod_resources_lister_client::PodResourcesListerClient;
use std::path::Path;
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
