//! `nmm explain` (being written).

use anyhow::Result;
use std::io::Write;

#[derive(Debug, clap::Args)]
pub struct Args {}

pub fn execute(_args: &Args, _out: &mut dyn Write, _err: &mut dyn Write) -> Result<i32> {
    anyhow::bail!("nmm explain is not available in this build yet")
}
