//! The `nmm` command line: thin commands over `nmm-core` (the engine) and `nmm-sysfs`
//! (the node reader). Library half, so that tests can drive the commands without a
//! process per call.

pub mod cmd;
pub mod fsio;
pub mod render;
pub mod scenario;
pub mod scenario_devices;
pub mod simulate;
pub mod svg;
