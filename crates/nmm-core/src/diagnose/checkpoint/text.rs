//! Wording shared by the checkpoint diagnosis and its renderers.

use crate::quantity::format_human_bytes;
use std::fmt::Write as _;

pub fn ids_text(ids: &[u32]) -> String {
    let v: Vec<String> = ids.iter().map(u32::to_string).collect();
    format!("{{{}}}", v.join(","))
}

pub fn human(b: u64) -> String {
    format_human_bytes(b)
}

/// A signed byte difference for people: `+32Ki`, `-1.5Gi`, `0`.
pub fn human_delta(from: u64, to: u64) -> String {
    if to >= from {
        format!("+{}", human(to - from))
    } else {
        format!("-{}", human(from - to))
    }
}

/// An exact Kubernetes quantity for a byte count (largest binary suffix dividing it).
pub fn exact_quantity(bytes: u64) -> String {
    if bytes == 0 {
        return "0".into();
    }
    let mut v = bytes;
    let mut suffix = "";
    for s in ["Ki", "Mi", "Gi", "Ti", "Pi", "Ei"] {
        if v & 1023 != 0 {
            break;
        }
        v /= 1024;
        suffix = s;
    }
    format!("{v}{suffix}")
}

/// Adds human units after every `N bytes` of a sentence: `1073741824 bytes (1Gi)`.
pub fn humanize_bytes(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(pos) = rest.find(" bytes") {
        let head = &rest[..pos];
        let digits = head
            .char_indices()
            .rev()
            .take_while(|(_, c)| c.is_ascii_digit())
            .last()
            .map(|(i, _)| i);
        out.push_str(head);
        out.push_str(" bytes");
        if let Some(i) = digits {
            if let Ok(n) = head[i..].parse::<u64>() {
                if n >= 1024 {
                    let _ = write!(out, " ({})", human(n));
                }
            }
        }
        rest = &rest[pos + " bytes".len()..];
    }
    out.push_str(rest);
    out
}
