//! nmm-agent: the kubelet's Topology, CPU and Memory Managers (nmm-core) running as a
//! node agent.
//!
//! * [`agent::Agent`]: the books behind a mutex, an event API (`admit_pod`, `remove_pod`,
//!   `container_started`, `transaction`) for the NRI plugin or any other caller; every
//!   change appended to a crash-safe journal ([`journal`]) and compacted into checkpoints
//!   in kubelet format ([`store`]); restart validation as the kubelet does it, and
//!   `reconcile` to rebuild the books from the live pods.
//! * [`lock`]: one agent per state directory (an exclusive `flock` on `agent.lock`,
//!   released by the kernel when the process ends).
//! * [`cgroup::CgroupEnforcer`]: writes `cpuset.cpus` / `cpuset.mems` on cgroup v2 or
//!   in the cgroup v1 cpuset hierarchy (chosen from `/proc/self/mountinfo`).
//! * [`podresources`]: the kubelet's PodResources v1 gRPC service; its `devices` come from
//!   [`devices`]: the device plugins' devices and the kubelet's own device checkpoint,
//!   read only (the agent allocates no devices). Admissions take the devices the
//!   kubelet allocated to the pod as the Device Manager's hints
//!   ([`agent::device_hints`]), so CPUs and memory land next to them.
//! * [`nri`]: the agent as an NRI plugin (pod and container lifecycle from the runtime).
//! * [`cri`], [`reconcile`]: the runtime's CRI lists, so that the books release pods the
//!   runtime no longer runs (containerd does not report removals of pods older than its
//!   last restart), and unsolicited cpuset updates when the shared pool widens.
//! * [`metrics`]: Prometheus metrics (kubelet names where the meaning is the same);
//!   [`http`] serves them with `/healthz` and `/readyz`; [`daemon`] binds and serves
//!   both listeners until SIGTERM/SIGINT.
//! * [`logging`]: `tracing` set-up (text or JSON lines, RFC 3339 timestamps) and the
//!   per-admission event.
//! * [`testkit`]: a fixed small node and a deterministic event stream for tests.

pub mod agent;
pub mod cgroup;
pub mod cri;
pub mod daemon;
pub mod devices;
pub mod http;
pub mod journal;
pub mod lock;
pub mod logging;
pub mod metrics;
pub mod nri;
pub mod podresources;
pub mod reconcile;
pub mod store;
pub mod testkit;

pub use agent::{Agent, AgentError, AgentOptions, Books, StartReport, Tx};
pub use cgroup::{CgroupEnforcer, ContainerCpuset};
