//! Wording shared by the explanation: masks, hints, byte amounts, lists.

use super::*;

/// `{0,1}`; runs of three or more nodes as ranges: `{0-33}`.
pub fn mask_text(m: NumaMask) -> String {
    let ids: Vec<u32> = m.ids().collect();
    let mut parts: Vec<String> = Vec::new();
    let mut i = 0;
    while i < ids.len() {
        let mut j = i;
        while j + 1 < ids.len() && ids[j + 1] == ids[j] + 1 {
            j += 1;
        }
        if j >= i + 2 {
            parts.push(format!("{}-{}", ids[i], ids[j]));
        } else {
            parts.extend(ids[i..=j].iter().map(|x| x.to_string()));
        }
        i = j + 1;
    }
    format!("{{{}}}", parts.join(","))
}

pub(super) fn affinity_text(a: Option<NumaMask>) -> String {
    a.map_or_else(|| "any".to_string(), mask_text)
}

/// `{0} preferred`, `{0,1}`, `any preferred`.
pub fn hint_text(h: &TopologyHint) -> String {
    format!(
        "{}{}",
        affinity_text(h.affinity),
        if h.preferred { " preferred" } else { "" }
    )
}

/// At most this many hints are named in a list.
pub(super) const MAX_LISTED_HINTS: usize = 16;

pub(super) fn list_text(l: &[TopologyHint]) -> String {
    let mut parts: Vec<String> = l.iter().take(MAX_LISTED_HINTS).map(hint_text).collect();
    if l.len() > MAX_LISTED_HINTS {
        parts.push(format!("… ({} in all)", l.len()));
    }
    parts.join(", ")
}

/// `{0}, preferred`, `any node, not preferred`.
pub fn hint_words(h: &TopologyHint) -> String {
    format!(
        "{}, {}",
        h.affinity.map_or_else(|| "any node".to_string(), mask_text),
        if h.preferred {
            "preferred"
        } else {
            "not preferred"
        }
    )
}

/// `100Gi`, `23.9Gi`.
pub fn bytes_text(b: u64) -> String {
    format_human_bytes(b)
}

/// Like [`bytes_text`], rounded down (for "at most" amounts): `123.8Gi` for 123.898Gi.
pub fn bytes_at_most(b: u64) -> String {
    const UNITS: [&str; 6] = ["Ki", "Mi", "Gi", "Ti", "Pi", "Ei"];
    if b < 1024 {
        return b.to_string();
    }
    let mut idx = 0usize;
    while idx + 1 < UNITS.len() && b >= 1u64 << (10 * (idx + 2)) {
        idx += 1;
    }
    let unit = 1u128 << (10 * (idx + 1));
    let tenths = b as u128 * 10 / unit;
    let (whole, frac) = (tenths / 10, tenths % 10);
    if frac == 0 {
        format!("{whole}{}", UNITS[idx])
    } else {
        format!("{whole}.{frac}{}", UNITS[idx])
    }
}

/// `a`, `a and b`, `a, b and c`.
pub(super) fn and_list(items: &[String]) -> String {
    match items {
        [] => String::new(),
        [a] => a.clone(),
        [rest @ .., last] => format!("{} and {last}", rest.join(", ")),
    }
}

pub(super) fn nodes_text(nodes: &[u32]) -> String {
    let ids: Vec<String> = nodes.iter().map(|n| n.to_string()).collect();
    if ids.len() == 1 {
        format!("node {}", ids[0])
    } else {
        format!("nodes {}", and_list(&ids))
    }
}

pub(super) fn requests_text(req: &Requests) -> String {
    let parts: Vec<String> = req
        .iter()
        .map(|(r, b)| format!("{} {r}", bytes_text(*b)))
        .collect();
    and_list(&parts)
}

pub(super) fn pod_ref(name: Option<&str>, uid: &str) -> String {
    match name {
        Some(n) if !n.is_empty() => format!("pod {n}"),
        _ => format!("pod with uid {uid}"),
    }
}

pub(super) fn mask_of(ids: &[u32]) -> NumaMask {
    ids.iter()
        .fold(NumaMask::EMPTY, |m, &i| m.or(NumaMask::single(i)))
}

// ---------------------------------------------------------------------------------------
// Replays.

/// The reserved CPUs in words: `CPU 0 reserved`, `CPUs 0,8 reserved`, `no CPUs reserved`
/// (a cpulist, as the CPU manager's reserved set prints).
pub fn reserved_cpus_text(cpulist: &str) -> String {
    if cpulist.is_empty() {
        "no CPUs reserved".into()
    } else if cpulist.contains([',', '-']) {
        format!("CPUs {cpulist} reserved")
    } else {
        format!("CPU {cpulist} reserved")
    }
}
