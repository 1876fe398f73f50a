//! One module per subcommand. Each exposes `Args` (clap) and `execute`, which writes to
//! the given streams and returns the exit status; `main.rs` only dispatches.

pub mod agent;
pub mod explain;
pub mod live;
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
    // A table with every column (the default table drops some to fit the terminal).
    Wide,
    Json,
    Yaml,
}

impl Output {
    /// `wide` is a table (its columns come from [`crate::render::style`]).
    pub fn table_or(self) -> Output {
        match self {
            Output::Wide => Output::Table,
            o => o,
        }
    }
    pub fn is_human(self) -> bool {
        matches!(self, Output::Table | Output::Wide)
    }
}
