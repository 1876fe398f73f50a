//! The `device_admission` bench's admissions (same half-full machines and pods), repeated
//! on copies of the node made beforehand, for counting instructions per admission with
//! callgrind (wall time on a shared VM swings 2-3 times; instruction counts do not):
//!
//!   cargo build --release -p nmm-core --example device_admission_instructions
//!   valgrind --tool=callgrind --toggle-collect='*measured_admit*' \
//!     target/release/examples/device_admission_instructions 8 best-effort gpu+nic 100
//!
//! The instructions callgrind reports (only those of the measured admissions, not of the
//! ones that fill the machine) divided by the count (last argument) are one admission's. Arguments: NUMA nodes (8 or 34), policy
//! (`POLICY/pod` for the pod scope), `gpu+nic` or `no-devices`, count. It also prints the median thread CPU time per
//! admission (a rough figure; not meaningful under valgrind).

#[path = "../benches/support/device_node.rs"]
mod device_node;
#[path = "../benches/support/measure.rs"]
mod measure;

use device_node::{half_full, pod};

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
    let (times, results) = measure::admit_copies(&base, &p, count);
    if let Some(r) = results.iter().find(|r| !r.admitted) {
        panic!("rejected: {:?}", r.message);
    }
    println!(
        "{nodes} {} {}: {count} admissions, thread CPU time median {:.2} us, fastest {:.2} us",
        args[2],
        args[3],
        times[count / 2].as_secs_f64() * 1e6,
        times[0].as_secs_f64() * 1e6
    );
}

// The allocator the `nmm` binary runs with (see its main.rs), so that the figures are
// the binary's.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
