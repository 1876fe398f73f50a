//! nmm-core: a faithful, I/O-free re-implementation of kubelet v1.32's Topology Manager,
//! CPU Manager (static policy) and Memory Manager.
//!
//! Everything here is deterministic: the same inputs give the same bytes out. Files,
//! sysfs, sockets and clocks live in the crates on top (`nmm-sysfs`, `nmm`).

pub mod bitmask;
pub mod bypod;
pub mod checkpoint;
pub mod cpumanager;
pub mod cpuset;
pub mod devicemanager;
pub mod diagnose;
pub mod explain;
pub mod kubelet_config;
pub mod machine;
pub mod memorymanager;
pub mod node;
pub mod node_allocatable;
pub mod pod;
pub mod pod_validation;
pub mod quantity;
pub mod quantity_hint;
pub mod reserved_memory_flag;
pub mod topology;
pub mod validation;
pub mod vecmap;
