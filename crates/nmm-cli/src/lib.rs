//! The `nmm` command line: thin commands over `nmm-core` (the engine) and `nmm-sysfs`
//! (the node reader). Library half, so that tests can drive the commands without a
//! process per call.

pub mod cmd;
pub mod fsio;
pub mod render;
pub mod svg;

/// The loaders and the simulator live in `nmm-scenario`; re-exported under their old
/// paths.
pub use nmm_scenario::{load, scenario, scenario_devices, simulate};
