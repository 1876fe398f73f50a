//! What to write instead of a byte quantity that is probably not what was meant: a unit
//! Kubernetes does not have (`16GB`, `16GiB`), or a hugepage page count where the
//! kubelet wants bytes (`hugepages: {2Mi: 512}`, as sysfs's nr_hugepages shows it).

use crate::quantity::{format_binary_bytes, format_human_bytes};

/// A hint for `text` written with a byte unit that Kubernetes quantities do not have:
/// `16GB` (decimal gigabytes are written `16G`, and nodes report binary sizes: `16Gi`),
/// `16GiB` (`16Gi`). `None` for anything else.
pub fn byte_unit_hint(text: &str) -> Option<String> {
    let t = text.trim();
    let digits = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .filter(|&i| i > 0 && i <= 12)?;
    let (num, unit) = t.split_at(digits);
    let unit = unit.trim_start();
    let value: f64 = num.parse().ok()?;
    let u = unit.as_bytes();
    if !(u.len() == 2 || u.len() == 3) || !matches!(u[u.len() - 1], b'B' | b'b') {
        return None;
    }
    let power = match u[0].to_ascii_uppercase() {
        b'K' => 1,
        b'M' => 2,
        b'G' => 3,
        b'T' => 4,
        b'P' => 5,
        b'E' => 6,
        _ => return None,
    };
    let letter = if power == 1 {
        'k'
    } else {
        u[0].to_ascii_uppercase() as char
    };
    let binary = format!("{num}{}i", u[0].to_ascii_uppercase() as char);
    if u.len() == 3 {
        if !matches!(u[1], b'i' | b'I') {
            return None;
        }
        return Some(format!(
            "Kubernetes writes binary units without the B: write {binary}"
        ));
    }
    let bytes = value * 1000f64.powi(power);
    let human = if bytes.is_finite() && bytes < 1.8e19 {
        format!(" = {}", format_human_bytes(bytes as u64))
    } else {
        String::new()
    };
    Some(format!(
        "{unit} is not a Kubernetes unit; {unit} means 10^{} bytes (written {num}{letter}{human}), while nodes report memory in binary units: if you meant {num} binary {}B, write {binary}",
        3 * power,
        letter.to_ascii_uppercase(),
    ))
}

/// A hint for a hugepage total of `total` bytes that is not a whole number of `page`
/// byte pages, when `text` is a bare number: it is probably a page count.
pub fn page_count_hint(text: &str, total: u64, page: u64) -> Option<String> {
    let t = text.trim();
    if t.is_empty() || !t.bytes().all(|c| c.is_ascii_digit()) || page == 0 {
        return None;
    }
    let bytes = total.checked_mul(page)?;
    let size = format_binary_bytes(page);
    let want = format_binary_bytes(bytes);
    Some(format!(
        "if {total} is a page count (as sysfs's nr_hugepages shows it), {total} pages of {size} = {want}: write {want}"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimal_and_b_units() {
        let h = byte_unit_hint("16GB").unwrap();
        assert!(
            h.contains("GB means 10^9 bytes (written 16G = 14.9Gi)"),
            "{h}"
        );
        assert!(h.ends_with("write 16Gi"), "{h}");
        let h = byte_unit_hint("512MB").unwrap();
        assert!(
            h.contains("512M = 488.3Mi") && h.ends_with("write 512Mi"),
            "{h}"
        );
        assert!(byte_unit_hint("1kb").unwrap().ends_with("write 1Ki"));
        assert_eq!(
            byte_unit_hint("16GiB").unwrap(),
            "Kubernetes writes binary units without the B: write 16Gi"
        );
        for none in [
            "16Gi",
            "16G",
            "lots",
            "GB",
            "16XB",
            "1234567890123456GB",
            "",
        ] {
            assert_eq!(byte_unit_hint(none), None, "{none}");
        }
    }

    #[test]
    fn page_counts() {
        assert_eq!(
            page_count_hint("512", 512, 2 << 20).unwrap(),
            "if 512 is a page count (as sysfs's nr_hugepages shows it), 512 pages of 2Mi = 1Gi: write 1Gi"
        );
        assert!(page_count_hint("1Ki", 1024, 2 << 20).is_none());
        assert!(page_count_hint("99999999999999999", u64::MAX, 1 << 30).is_none());
    }
}
