//! The inputs of nmm and their replay, shared by the `nmm` CLI, the agent command, the
//! benchmarks and the tests:
//!
//! - [`doc`], [`fast_yaml`]: a YAML or JSON document as events, read without a tree
//!   for the forms scenarios are written in, and deserialized straight into typed pods;
//! - [`scenario`]: a scenario file (`../shared/spec/scenario-format.md`) into the machine
//!   model, the kubelet config, starting checkpoints and pod events;
//! - [`load`]: a KubeletConfiguration file, a machine file and a Pod file on their own;
//! - [`live`]: the live node (sysfs, `/proc/meminfo`, kubelet config, checkpoints) as a
//!   scenario without steps, for `nmm explain --pod` and `nmm simulate --node`;
//! - [`simulate`]: replaying a scenario through `nmm_core::node::Node`, step by step.
//!
//! Reading files is the only I/O here; nothing prints.

pub mod doc;
pub mod fast_yaml;
pub mod kubelet_fields;
pub mod live;
pub mod load;
pub mod scenario;
pub mod scenario_devices;
pub mod simulate;
pub mod suggest;
