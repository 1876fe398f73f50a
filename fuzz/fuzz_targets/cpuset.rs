//! Linux cpulists from sysfs, checkpoints and flags: never a panic, never a huge set built
//! from a short text.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nmm_core::cpuset::CpuSet;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(set) = CpuSet::parse(text) {
            let _ = set.to_string();
        }
    }
});
