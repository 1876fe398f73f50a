//! Quantity parsing and arithmetic on arbitrary text must never panic, and must stay
//! bounded in memory and time (libFuzzer's `-rss_limit_mb` / `-timeout` catch regressions,
//! e.g. `1e999999999` used to allocate ~1 GB in the first addition).
#![no_main]

use libfuzzer_sys::fuzz_target;
use nmm_core::quantity::Quantity;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // Two quantities separated by a newline exercise the binary operations.
    let mut parts = text.splitn(2, '\n');
    let Some(Ok(a)) = parts.next().map(Quantity::parse) else {
        return;
    };
    let _ = a.to_string();
    let _ = a.canonical();
    let _ = (a.value(), a.milli_value(), a.as_int64(), a.sign());
    if let Some(Ok(b)) = parts.next().map(Quantity::parse) {
        let mut s = a.clone();
        s.add(&b);
        let _ = s.canonical();
        let mut d = a.clone();
        d.sub(&b);
        let _ = (d.canonical(), d.value(), a.cmp_value(&b));
        let mut n = b;
        n.neg();
        let _ = n.to_string();
    }
});
