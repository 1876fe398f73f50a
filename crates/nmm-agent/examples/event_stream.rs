//! Starts an agent on a state directory and applies the deterministic event stream of
//! `nmm_agent::testkit` to it, printing `ack N` once event N is committed. The SIGKILL
//! robustness test kills it at random moments.
//!
//! ```text
//! cargo run -p nmm-agent --example event_stream -- --state-dir /tmp/s --from 0 --count 100 --seed 7
//! ```
//!
//! Output: `ready` after the start, `ack N` after each event, `done` at the end. A start
//! failure prints `start-failed: ...` and exits 1.

use nmm_agent::testkit::{self, Event, EventStream};
use nmm_agent::{Agent, AgentOptions};
use std::io::Write;
use std::path::PathBuf;

fn main() {
    let mut state_dir = None;
    let (mut from, mut count, mut seed) = (0usize, usize::MAX, 1u64);
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut val = || args.next().unwrap_or_else(|| panic!("{a} needs a value"));
        match a.as_str() {
            "--state-dir" => state_dir = Some(PathBuf::from(val())),
            "--from" => from = val().parse().expect("--from N"),
            "--count" => count = val().parse().expect("--count N"),
            "--seed" => seed = val().parse().expect("--seed N"),
            other => panic!("unknown argument {other}"),
        }
    }
    let state_dir = state_dir.expect("--state-dir DIR");
    let opts = AgentOptions {
        machine: testkit::machine(),
        kubelet: testkit::kubelet_config(),
        state_dir,
        reconcile: None,
        cgroup_root: None,
        devices: Default::default(),
    };
    let out = std::io::stdout();
    let agent = match Agent::start(opts) {
        Ok((a, _)) => a,
        Err(e) => {
            println!("start-failed: {e}");
            std::process::exit(1);
        }
    };
    writeln!(out.lock(), "ready").ok();
    for (i, ev) in EventStream::new(seed).enumerate().skip(from).take(count) {
        match ev {
            Event::Admit(pod) => {
                agent.admit_pod(&pod).expect("admission");
            }
            Event::Remove(uid) => {
                agent.remove_pod(&uid).expect("removal");
            }
        }
        // stdout is line-buffered: the line leaves with its newline.
        writeln!(out.lock(), "ack {i}").ok();
    }
    writeln!(out.lock(), "done").ok();
}
