//! A fake containerd: the pods and containers a runtime runs, with containerd's NRI
//! behaviour around them, on top of the protocol-level [`crate::fake::FakeRuntime`].
//!
//! What it reproduces of containerd (v2.x, as tried against nmm-agent):
//! * pod sandboxes and containers exist whether or not a plugin is connected; events go
//!   to the plugin only while it is connected, and a container is not created when the
//!   plugin rejects it;
//! * a **restart** drops the plugin connection; the plugin reconnects and gets
//!   `Configure` and a `Synchronize` listing everything that runs (with the cpusets the
//!   containers have);
//! * **no removal events for pods older than the last restart** (containerd issue 8426):
//!   stopping or removing such a pod, or its containers, is not reported to plugins;
//! * container cpusets follow what the plugin answers: the CreateContainer adjustment,
//!   the updates carried by answers, and unsolicited `UpdateContainers`.
//!
//! What the runtime runs is handed to an observer after every change
//! ([`FakeContainerd::on_change`]), e.g. a fake CRI service, which is how the plugin can
//! learn about removals it is not told of.

use crate::fake::{FakePlugin, FakeRuntime, RuntimeError};
use crate::types::*;
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

/// Observer of what the runtime runs: (sandboxes, containers).
pub type ChangeObserver = Box<dyn Fn(&[PodSandbox], &[Container]) + Send + Sync>;

struct Pod {
    sandbox: PodSandbox,
    /// The restart generation that created it.
    generation: u64,
}

/// The fake runtime's world and its plugin connection.
pub struct FakeContainerd {
    nri: FakeRuntime,
    plugin: Option<FakePlugin>,
    /// Unsolicited updates of the current connection already applied.
    unsolicited_seen: usize,
    pods: BTreeMap<String, Pod>,
    containers: BTreeMap<String, Container>,
    generation: u64,
    observer: Option<ChangeObserver>,
    /// How long to wait for the plugin to (re)connect.
    pub connect_timeout: Duration,
}

impl FakeContainerd {
    /// Listens for the plugin on the NRI socket `path`. Must be called inside a tokio
    /// runtime.
    pub fn listen(path: impl AsRef<Path>) -> std::io::Result<FakeContainerd> {
        Ok(FakeContainerd {
            nri: FakeRuntime::listen(path)?,
            plugin: None,
            unsolicited_seen: 0,
            pods: BTreeMap::new(),
            containers: BTreeMap::new(),
            generation: 0,
            observer: None,
            connect_timeout: Duration::from_secs(10),
        })
    }

    /// Calls `f` with what runs, now and after every change.
    pub fn on_change(&mut self, f: ChangeObserver) {
        f(&self.sandboxes(), &self.container_list());
        self.observer = Some(f);
    }

    fn changed(&self) {
        if let Some(f) = &self.observer {
            f(&self.sandboxes(), &self.container_list());
        }
    }

    pub fn sandboxes(&self) -> Vec<PodSandbox> {
        self.pods.values().map(|p| p.sandbox.clone()).collect()
    }

    pub fn container_list(&self) -> Vec<Container> {
        self.containers.values().cloned().collect()
    }

    pub fn container(&self, id: &str) -> Option<&Container> {
        self.containers.get(id)
    }

    /// The connected plugin (protocol-level view), if any.
    pub fn plugin(&self) -> Option<&FakePlugin> {
        self.plugin.as_ref()
    }

    pub fn connected(&self) -> bool {
        self.plugin.as_ref().is_some_and(|p| p.closed().is_none())
    }

    /// Waits for the plugin to connect, and brings it up with what runs.
    pub async fn accept(&mut self) -> Result<(), RuntimeError> {
        let pods = self.sandboxes();
        let ctrs = self.container_list();
        let p = tokio::time::timeout(self.connect_timeout, self.nri.accept(&pods, &ctrs))
            .await
            .map_err(|_| RuntimeError::Io("the plugin did not connect".into()))??;
        let updates = p.sync_updates().to_vec();
        self.plugin = Some(p);
        self.unsolicited_seen = 0;
        self.apply(&updates);
        Ok(())
    }

    /// containerd restarts: the plugin's connection goes; it has to reconnect
    /// ([`FakeContainerd::accept`]). Pods running now are from then on "older than the
    /// restart": their removal is never reported.
    pub async fn restart(&mut self) {
        self.collect_unsolicited();
        if let Some(p) = self.plugin.take() {
            p.close("containerd restarts").await;
        }
        self.generation += 1;
    }

    /// The plugin went away (its process died): forget the connection.
    pub async fn plugin_gone(&mut self) {
        self.collect_unsolicited();
        if let Some(p) = self.plugin.take() {
            p.close("plugin gone").await;
        }
    }

    fn live_plugin(&mut self) -> Option<&mut FakePlugin> {
        match &self.plugin {
            Some(p) if p.closed().is_none() => self.plugin.as_mut(),
            _ => None,
        }
    }

    /// Applies container updates (from answers or `UpdateContainers`).
    fn apply(&mut self, updates: &[ContainerUpdate]) {
        for u in updates {
            if let Some(c) = self.containers.get_mut(&u.container_id) {
                let r = c.resources.get_or_insert_with(Default::default);
                if let Some(cpus) = &u.cpuset_cpus {
                    r.cpuset_cpus = cpus.clone();
                }
                if let Some(mems) = &u.cpuset_mems {
                    r.cpuset_mems = mems.clone();
                }
            }
        }
    }

    /// Applies the unsolicited updates the plugin sent since the last call.
    pub fn collect_unsolicited(&mut self) -> usize {
        let Some(p) = &self.plugin else {
            return 0;
        };
        let all = p.unsolicited_updates();
        let new = all[self.unsolicited_seen.min(all.len())..].to_vec();
        self.unsolicited_seen = all.len();
        self.apply(&new);
        new.len()
    }

    /// A new pod sandbox (RunPodSandbox).
    pub async fn run_pod(&mut self, sandbox: PodSandbox) -> Result<(), RuntimeError> {
        // Unsolicited updates received so far were applied as they came.
        self.collect_unsolicited();
        self.pods.insert(
            sandbox.id.clone(),
            Pod {
                sandbox: sandbox.clone(),
                generation: self.generation,
            },
        );
        self.changed();
        if let Some(p) = self.live_plugin() {
            p.run_pod_sandbox(&sandbox).await?;
        }
        Ok(())
    }

    /// CreateContainer (then started): the plugin's adjustment applied, or the
    /// container not created when the plugin rejects it. Without a plugin the container
    /// is created as it is.
    pub async fn create_container(
        &mut self,
        container: Container,
    ) -> Result<Container, RuntimeError> {
        // Unsolicited updates received so far were applied as they came.
        self.collect_unsolicited();
        let pod = self
            .pods
            .get(&container.pod_sandbox_id)
            .map(|p| p.sandbox.clone())
            .ok_or_else(|| RuntimeError::Io(format!("no sandbox {}", container.pod_sandbox_id)))?;
        let mut created = container.clone();
        if let Some(p) = self.live_plugin() {
            let r = p.create_container(&pod, &container).await?;
            created = r.container;
            self.apply(&r.adjustment.updates);
        }
        created.state = ContainerState::Running;
        self.containers.insert(created.id.clone(), created.clone());
        self.changed();
        Ok(created)
    }

    /// The container stops and is removed. Reported to the plugin only if its pod was
    /// created after the last restart.
    pub async fn remove_container(&mut self, id: &str) -> Result<(), RuntimeError> {
        // Unsolicited updates received so far were applied as they came.
        self.collect_unsolicited();
        let Some(c) = self.containers.remove(id) else {
            return Ok(());
        };
        self.changed();
        let Some(pod) = self.pods.get(&c.pod_sandbox_id) else {
            return Ok(());
        };
        let (sandbox, current) = (pod.sandbox.clone(), pod.generation == self.generation);
        if current {
            if let Some(p) = self.live_plugin() {
                let updates = p.stop_container(&sandbox, &c).await?;
                p.remove_container(&sandbox, &c).await?;
                self.apply(&updates);
            }
        }
        Ok(())
    }

    /// The pod is stopped and removed with its containers. Reported to the plugin only
    /// if it was created after the last restart (containerd issue 8426).
    pub async fn remove_pod(&mut self, sandbox_id: &str) -> Result<(), RuntimeError> {
        // Unsolicited updates received so far were applied as they came.
        self.collect_unsolicited();
        let Some(pod) = self.pods.remove(sandbox_id) else {
            return Ok(());
        };
        let ctrs: Vec<Container> = self
            .containers
            .values()
            .filter(|c| c.pod_sandbox_id == sandbox_id)
            .cloned()
            .collect();
        self.containers
            .retain(|_, c| c.pod_sandbox_id != sandbox_id);
        self.changed();
        if pod.generation != self.generation {
            return Ok(());
        }
        let mut updates = Vec::new();
        if let Some(p) = self.live_plugin() {
            for c in &ctrs {
                updates.extend(p.stop_container(&pod.sandbox, c).await?);
                p.remove_container(&pod.sandbox, c).await?;
            }
            p.stop_pod_sandbox(&pod.sandbox).await?;
            p.remove_pod_sandbox(&pod.sandbox).await?;
        }
        self.apply(&updates);
        Ok(())
    }

    /// Whether the pod was created before the last restart (its removal goes
    /// unreported).
    pub fn older_than_restart(&self, sandbox_id: &str) -> bool {
        self.pods
            .get(sandbox_id)
            .is_some_and(|p| p.generation != self.generation)
    }
}
