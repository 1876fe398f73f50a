//! nmm-agent: the kubelet's Topology, CPU and Memory Managers (nmm-core) running as a
//! node agent.
//!
//! * [`agent::Agent`]: the books behind a mutex, an event API (`admit_pod`, `remove_pod`,
//!   `container_started`) for the NRI plugin or any other caller, checkpoints in kubelet
//!   format committed crash-safely after every change ([`store`]), restart validation as
//!   the kubelet does it, and `reconcile` to rebuild the books from the live pods.
//! * [`cgroup::CgroupEnforcer`]: writes `cpuset.cpus` / `cpuset.mems` on cgroup v2.
//! * [`podresources`]: the kubelet's PodResources v1 gRPC service.
//! * [`nri`]: the agent as an NRI plugin (pod and container lifecycle from the runtime).
//! * [`metrics`]: Prometheus metrics (kubelet names where the meaning is the same);
//!   [`http`] serves them with `/healthz` and `/readyz`; [`daemon`] binds and serves
//!   both listeners until SIGTERM/SIGINT.
//! * [`logging`]: `tracing` set-up (text or JSON lines, RFC 3339 timestamps) and the
//!   per-admission event.
//! * [`testkit`]: a fixed small node and a deterministic event stream for tests.

pub mod agent;
pub mod cgroup;
pub mod daemon;
pub mod http;
pub mod logging;
pub mod metrics;
pub mod nri;
pub mod podresources;
pub mod store;
pub mod testkit;

pub use agent::{Agent, AgentError, AgentOptions, Books, StartReport};
pub use cgroup::{CgroupEnforcer, ContainerCpuset};
