//! The `nmm` binary as the CLI tests that check content run it: an unlimited width and a
//! UTF-8 locale, so that wrapping and ASCII borders (checked by `output_cli.rs`) never
//! change the text asserted on.
#![allow(dead_code)]

use std::process::Command;

/// `nmm` with `COLUMNS=1000` and `LANG=C.UTF-8` (no `LC_ALL` / `LC_CTYPE` overriding it).
pub fn nmm_command() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_nmm"));
    c.env("COLUMNS", "1000")
        .env("LANG", "C.UTF-8")
        .env_remove("LC_ALL")
        .env_remove("LC_CTYPE");
    c
}
