//! Did-you-mean for misspelt field names.

/// Levenshtein distance, bounded by the inputs' lengths (field names are short).
pub fn distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(!ca.eq_ignore_ascii_case(cb));
            cur[j + 1] = sub.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

/// The known name closest to `name`, when it is close enough to be a typo (at most a
/// third of its letters differ, and at most 3).
pub fn closest<'a>(name: &str, known: &[&'a str]) -> Option<&'a str> {
    if name.len() > 64 {
        return None;
    }
    let limit = (name.chars().count() / 3).clamp(1, 3);
    known
        .iter()
        .map(|k| (distance(name, k), *k))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_typos_only() {
        assert_eq!(
            closest("resource", &["resources", "limits"]),
            Some("resources")
        );
        assert_eq!(
            closest("reservedMemorys", &["reservedMemory", "kind"]),
            Some("reservedMemory")
        );
        assert_eq!(closest("zzzzzz", &["resources", "limits"]), None);
        assert_eq!(distance("kitten", "sitting"), 3);
    }
}
