//! The device provider's hint lists for the large-machine merge.

use super::DeviceManager;
use crate::pod::{ContainerInfo, PodInfo};
use crate::topology::hint::{to_large, LargeHints};

impl DeviceManager {
    /// The hints as [`crate::topology::family::LargeList`]s.
    pub fn topology_hint_families(&self, pod: &PodInfo, c: Option<&ContainerInfo>) -> LargeHints {
        match c {
            Some(c) => to_large(self.topology_hints(pod, c)),
            None => to_large(self.pod_topology_hints(pod)),
        }
    }
}
