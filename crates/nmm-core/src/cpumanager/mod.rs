//! CPU Manager, static policy (`pkg/kubelet/cm/cpumanager`).

pub mod cpu_assignment;
pub mod topology;
