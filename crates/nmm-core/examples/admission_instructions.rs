//! The `admission` bench's uniform admissions (same half-full machines and pods),
//! repeated on copies of the node made beforehand, for counting instructions per
//! admission with callgrind (wall time on a shared VM swings 2-3 times; instruction
//! counts do not):
//!
//!   cargo build --release -p nmm-core --example admission_instructions
//!   valgrind --tool=callgrind --toggle-collect='*measured_admit*' \
//!     target/release/examples/admission_instructions 8 best-effort pod needs-group 100
//!
//! The instructions callgrind reports (only those of the measured admissions) divided
//! by the count (last argument) are one admission's. Arguments: NUMA nodes, policy,
//! scope, kind (`fits-1-node`, `needs-group`, `needs-4-nodes`), count. It also prints
//! the median thread CPU time per admission (a rough figure; not meaningful under
//! valgrind). NMM_TIMES=1 copies the node right before each admission (warm caches, as
//! criterion does) instead of making every copy beforehand.

#[path = "../benches/support/uniform_node.rs"]
mod uniform_node;

use nmm_core::node::{AdmitResult, Node};
use nmm_core::pod::PodInfo;
use std::time::Duration;

/// One measured admission (callgrind counts inside this function only).
#[inline(never)]
fn measured_admit(n: &mut Node, p: &PodInfo) -> AdmitResult {
    n.admit(p).expect("admit")
}

fn thread_cpu_time() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid timespec for the call to fill.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

fn usage() -> ! {
    eprintln!(
        "usage: admission_instructions NODES POLICY SCOPE fits-1-node|needs-group|needs-4-nodes COUNT"
    );
    std::process::exit(2)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 6 {
        usage();
    }
    let nodes: u32 = args[1].parse().unwrap_or_else(|_| usage());
    let count: usize = args[5].parse().unwrap_or_else(|_| usage());
    let Some((_, p)) = uniform_node::kinds(nodes)
        .into_iter()
        .find(|(k, _)| *k == args[4])
    else {
        usage()
    };
    let base = uniform_node::half_full(nodes, &args[2], &args[3]);
    let warm = std::env::var("NMM_TIMES").is_ok();
    let mut copies: Vec<_> = (0..if warm { 0 } else { count })
        .map(|_| base.clone())
        .collect();
    let mut copies = copies.iter_mut();
    let mut times = Vec::with_capacity(count);
    let mut results = Vec::with_capacity(count);
    for _ in 0..count {
        let mut fresh = None;
        let n = match copies.next() {
            Some(n) => n,
            None => fresh.insert(base.clone()),
        };
        let t = thread_cpu_time();
        let r = measured_admit(n, &p);
        times.push(thread_cpu_time() - t);
        results.push(r);
    }
    times.sort();
    println!(
        "{nodes} {} {} {}: {count} admissions ({}), thread CPU time median {:.2} us, fastest {:.2} us",
        args[2],
        args[3],
        args[4],
        if results[0].admitted { "admitted" } else { "rejected" },
        times[count / 2].as_secs_f64() * 1e6,
        times[0].as_secs_f64() * 1e6
    );
}
