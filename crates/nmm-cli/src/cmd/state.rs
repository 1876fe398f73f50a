//! `nmm state` (being written).

use anyhow::Result;
use std::io::Write;

#[derive(Debug, clap::Subcommand)]
pub enum Command {}

pub fn execute(_cmd: &Command, _out: &mut dyn Write, _err: &mut dyn Write) -> Result<i32> {
    anyhow::bail!("nmm state is not available in this build yet")
}
