//! One module per subcommand.

pub mod node;
pub mod simulate;
