//! Diagnosis and fix-finding for the admin tools and the agent: pure functions from
//! loaded inputs to findings, each with the kubelet's message and what to change. The
//! CLI commands and the agent render these values; nothing here reads files or prints.

pub mod checkpoint;
pub mod config;
