//! The `device_admission` bench's admissions (same half-full machines and pods), repeated
//! on copies of the node made beforehand, for counting instructions per admission with
//! callgrind (wall time on a shared VM swings 2-3 times; instruction counts do not):
//!
//!   cargo build --release -p nmm-core --example device_admission_instructions
//!   valgrind --tool=callgrind --toggle-collect='*measured_admit*' \
//!     target/release/examples/device_admission_instructions 8 best-effort gpu+nic 100
//!
//! The instructions callgrind reports (only those of the measured admissions, not of the
//! ones that fill the machine) divided by the count (last argument) are one admission's. Arguments: NUMA nodes (8 or 34), policy,
//! `gpu+nic` or `no-devices`, count. It also prints the median thread CPU time per
//! admission (a rough figure; not meaningful under valgrind).

#[path = "../benches/support/device_node.rs"]
mod device_node;

use device_node::{half_full, pod};
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

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let usage = "usage: device_admission_instructions NODES POLICY gpu+nic|no-devices COUNT";
    if args.len() != 5 {
        eprintln!("{usage}");
        std::process::exit(2);
    }
    let nodes: u32 = args[1].parse().unwrap_or_else(|_| {
        eprintln!("{usage}");
        std::process::exit(2)
    });
    let count: usize = args[4].parse().unwrap_or_else(|_| {
        eprintln!("{usage}");
        std::process::exit(2)
    });
    let p = match args[3].as_str() {
        "gpu+nic" => pod("bench-gpu", 4, 16, 1, 1),
        "no-devices" => pod("bench-plain", 4, 16, 0, 0),
        _ => {
            eprintln!("{usage}");
            std::process::exit(2)
        }
    };
    let base = half_full(nodes, &args[2]);
    // NMM_TIMES=1: copy the node right before each admission (warm caches, as criterion
    // does) instead of making every copy beforehand (what callgrind should count).
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
        assert!(r.admitted, "rejected: {:?}", r.message);
        results.push(r);
    }
    times.sort();
    println!(
        "{nodes} {} {}: {count} admissions, thread CPU time median {:.2} us, fastest {:.2} us",
        args[2],
        args[3],
        times[count / 2].as_secs_f64() * 1e6,
        times[0].as_secs_f64() * 1e6
    );
}
