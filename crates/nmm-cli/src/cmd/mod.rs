//! One module per subcommand. Each exposes `Args` (clap) and `execute`, which writes to
//! the given streams and returns the exit status; `main.rs` only dispatches.

pub mod agent;
pub mod explain;
pub mod node;
pub mod node_pci;
pub mod simulate;
pub mod state;
pub mod state_device;
pub mod validate;

/// Output format shared by the commands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Output {
    Table,
    Json,
    Yaml,
}
