//! nmm-nri: the external-plugin side of containerd's Node Resource Interface (NRI),
//! and a fake NRI runtime that speaks the protocol as containerd's NRI adaptation does.
//!
//! * [`NriPlugin`] connects to the runtime's NRI socket, registers, gets configured
//!   and synchronized, then relays pod and container lifecycle events to an
//!   [`NriHandler`] written against plain Rust types ([`types`]).
//! * [`pod_info_from_nri`] turns what NRI shows of a pod (limits, cgroup parent,
//!   annotations) into the managers' [`nmm_core::pod::PodInfo`].
//! * [`fake::FakeRuntime`] is the runtime side, for tests; [`fake_containerd::FakeContainerd`]
//!   adds the pods and containers it runs and containerd's restart behaviour.
//!
//! The protocol stack, bottom up: [`mux`] (two logical connections on one socket),
//! [`ttrpc`] (framing and unary calls), [`pb`] (NRI's protobuf messages). See
//! `docs/nri.md`.

pub mod convert;
pub mod fake;
pub mod fake_containerd;
pub mod handler;
pub mod mux;
pub mod plugin;
pub mod podinfo;
pub mod ttrpc;
pub mod types;

mod conn;

/// Generated protobuf messages.
pub mod pb {
    /// NRI's API subset, package `nri.pkg.api.v1alpha1`.
    #[allow(clippy::all, missing_docs)]
    pub mod nri {
        include!(concat!(env!("OUT_DIR"), "/nri.pkg.api.v1alpha1.rs"));
    }
    /// ttrpc's envelope messages, package `ttrpc`.
    #[allow(clippy::all, missing_docs)]
    pub mod ttrpc {
        include!(concat!(env!("OUT_DIR"), "/ttrpc.rs"));
    }
}

pub use handler::{NriHandler, EVENT_MASK};
pub use plugin::{NriError, NriPlugin, PluginConfig, PluginHandle, DEFAULT_SOCKET_PATH};
pub use podinfo::{pod_info_from_nri, qos_from_cgroup_path, REQUESTS_ANNOTATION};
pub use types::*;

/// Fully qualified ttrpc service names.
pub const PLUGIN_SERVICE: &str = "nri.pkg.api.v1alpha1.Plugin";
pub const RUNTIME_SERVICE: &str = "nri.pkg.api.v1alpha1.Runtime";
