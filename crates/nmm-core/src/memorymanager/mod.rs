//! Memory Manager (`pkg/kubelet/cm/memorymanager`).

pub mod state;
