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

#[path = "../benches/support/measure.rs"]
mod measure;
#[path = "../benches/support/uniform_node.rs"]
mod uniform_node;

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
    let (times, results) = measure::admit_copies(&base, &p, count);
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

// The allocator the `nmm` binary runs with (see its main.rs), so that the figures are
// the binary's.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
