//! Repeated admissions of one pod on copies of one node, for the `*_instructions`
//! examples: callgrind counts inside [`measured_admit`] only
//! (`--toggle-collect='*measured_admit*'`), and each admission's thread CPU time is kept.

use nmm_core::node::{AdmitResult, Node};
use nmm_core::pod::PodInfo;
use std::time::Duration;

/// One measured admission (callgrind counts inside this function only).
#[inline(never)]
pub fn measured_admit(n: &mut Node, p: &PodInfo) -> AdmitResult {
    n.admit(p).expect("admit")
}

pub fn thread_cpu_time() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid timespec for the call to fill.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// `count` admissions of `p`, each on its own copy of `base`: the copies are made
/// beforehand (what callgrind should count), or with NMM_TIMES=1 right before each
/// admission (warm caches, as criterion does). Returns the sorted times and the results.
pub fn admit_copies(base: &Node, p: &PodInfo, count: usize) -> (Vec<Duration>, Vec<AdmitResult>) {
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
        let r = measured_admit(n, p);
        times.push(thread_cpu_time() - t);
        results.push(r);
    }
    times.sort();
    (times, results)
}
