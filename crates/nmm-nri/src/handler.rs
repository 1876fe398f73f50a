//! The interface a plugin implements: one method per lifecycle event, on plain types.

use crate::types::*;

/// NRI `Event` numbers (api.proto `enum Event`).
pub mod event {
    pub const RUN_POD_SANDBOX: i32 = 1;
    pub const STOP_POD_SANDBOX: i32 = 2;
    pub const REMOVE_POD_SANDBOX: i32 = 3;
    pub const CREATE_CONTAINER: i32 = 4;
    pub const POST_CREATE_CONTAINER: i32 = 5;
    pub const START_CONTAINER: i32 = 6;
    pub const POST_START_CONTAINER: i32 = 7;
    pub const UPDATE_CONTAINER: i32 = 8;
    pub const POST_UPDATE_CONTAINER: i32 = 9;
    pub const STOP_CONTAINER: i32 = 10;
    pub const REMOVE_CONTAINER: i32 = 11;
    pub const UPDATE_POD_SANDBOX: i32 = 12;
    pub const POST_UPDATE_POD_SANDBOX: i32 = 13;
    pub const VALIDATE_CONTAINER_ADJUSTMENT: i32 = 14;
    pub const LAST: i32 = 15;

    /// `EventMask` bit of an event: `1 << (event - 1)`.
    pub const fn bit(e: i32) -> i32 {
        1 << (e - 1)
    }

    /// `ValidEvents`: every event below `LAST`.
    pub const VALID_EVENTS: i32 = (1 << (LAST - 1)) - 1;
}

/// The events an [`crate::NriPlugin`] subscribes to in `Configure`: RunPodSandbox,
/// RemovePodSandbox, CreateContainer, UpdateContainer, StopContainer, RemoveContainer.
pub const EVENT_MASK: i32 = event::bit(event::RUN_POD_SANDBOX)
    | event::bit(event::REMOVE_POD_SANDBOX)
    | event::bit(event::CREATE_CONTAINER)
    | event::bit(event::UPDATE_CONTAINER)
    | event::bit(event::STOP_CONTAINER)
    | event::bit(event::REMOVE_CONTAINER);

/// Receives the runtime's pod and container lifecycle events.
///
/// Methods are called one at a time, in the order the runtime sends the events, on a
/// blocking-capable thread (`tokio::task::spawn_blocking`), so they may take locks and
/// do CPU work. The runtime waits for each answer (by default for 2 s, after which it
/// drops the plugin). A panic in a method is caught and answered as an internal error.
/// Do not call [`crate::PluginHandle::update_containers`] from inside a method: the
/// runtime holds its lock while it waits for the method's answer.
pub trait NriHandler: Send + Sync + 'static {
    /// The runtime introduced itself (`Configure`). Called before `synchronize`.
    fn configure(&self, _runtime: &RuntimeInfo) {}

    /// Everything the runtime already runs (all `Synchronize` batches, joined). Answer
    /// with cpuset updates for existing containers.
    fn synchronize(&self, pods: &[PodSandbox], containers: &[Container]) -> Vec<ContainerUpdate>;

    fn run_pod_sandbox(&self, pod: &PodSandbox);

    /// Not subscribed to; called only if a runtime sends it anyway.
    fn stop_pod_sandbox(&self, _pod: &PodSandbox) {}

    fn remove_pod_sandbox(&self, pod: &PodSandbox);

    /// Admit a container: answer with its cpuset (and updates to other containers), or
    /// reject it, in which case the runtime fails the container's creation.
    fn create_container(
        &self,
        pod: &PodSandbox,
        container: &Container,
    ) -> Result<ContainerAdjustment, Rejection>;

    /// The kubelet changes a container's resources (`resources` is what it asks for).
    /// Answer with updates; one for this container supersedes the kubelet's.
    fn update_container(
        &self,
        pod: &PodSandbox,
        container: &Container,
        resources: Option<&LinuxResources>,
    ) -> Vec<ContainerUpdate>;

    /// The container stops; answer with updates to the remaining containers.
    fn stop_container(&self, pod: &PodSandbox, container: &Container) -> Vec<ContainerUpdate>;

    fn remove_container(&self, pod: &PodSandbox, container: &Container);

    /// The runtime shuts down.
    fn shutdown(&self) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mask_bits() {
        assert_eq!(EVENT_MASK, 1 | 4 | 8 | 128 | 512 | 1024);
        assert_eq!(event::VALID_EVENTS, 0x3fff);
        assert_eq!(EVENT_MASK & !event::VALID_EVENTS, 0);
    }
}
