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
//! * [`metrics`]: Prometheus metrics; [`daemon`] serves both until SIGTERM/SIGINT.
//! * [`testkit`]: a fixed small node and a deterministic event stream for tests.

pub mod agent;
pub mod cgroup;
pub mod daemon;
pub mod metrics;
pub mod nri;
pub mod podresources;
pub mod store;
pub mod testkit;

pub use agent::{Agent, AgentError, AgentOptions, Books, StartReport};
pub use cgroup::{CgroupEnforcer, ContainerCpuset};
