//! Sets of logical CPU ids, printed and parsed in the Linux cpulist format
//! (`0-3,8,10-11`), with the same rules and error texts as `k8s.io/utils/cpuset`.
//!
//! Stored as a bitset: CPU ids are small and dense on real machines, and the CPU
//! manager does many unions/differences per admission.

use std::fmt;

#[derive(Clone, Default, PartialEq, Eq, Hash)]
pub struct CpuSet {
    /// Invariant: no trailing zero words, so derived equality is set equality.
    words: Vec<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct CpuSetParseError(pub String);

impl CpuSet {
    /// The empty set, as a constant (for `static` defaults).
    pub const EMPTY: CpuSet = CpuSet { words: Vec::new() };

    pub fn new() -> Self {
        Self::default()
    }

    pub fn from_ids<I: IntoIterator<Item = u32>>(ids: I) -> Self {
        let mut s = Self::new();
        for id in ids {
            s.insert(id);
        }
        s
    }

    fn trim(&mut self) {
        while self.words.last() == Some(&0) {
            self.words.pop();
        }
    }

    pub fn insert(&mut self, id: u32) {
        let w = (id / 64) as usize;
        if self.words.len() <= w {
            self.words.resize(w + 1, 0);
        }
        self.words[w] |= 1u64 << (id % 64);
    }

    pub fn remove(&mut self, id: u32) {
        let w = (id / 64) as usize;
        if w < self.words.len() {
            self.words[w] &= !(1u64 << (id % 64));
            self.trim();
        }
    }

    pub fn contains(&self, id: u32) -> bool {
        let w = (id / 64) as usize;
        w < self.words.len() && self.words[w] & (1u64 << (id % 64)) != 0
    }

    pub fn len(&self) -> usize {
        self.words.iter().map(|w| w.count_ones() as usize).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.words.is_empty()
    }

    pub fn union(&self, other: &CpuSet) -> CpuSet {
        let n = self.words.len().max(other.words.len());
        let words = (0..n)
            .map(|i| {
                self.words.get(i).copied().unwrap_or(0) | other.words.get(i).copied().unwrap_or(0)
            })
            .collect();
        CpuSet { words }
    }

    pub fn intersection(&self, other: &CpuSet) -> CpuSet {
        let n = self.words.len().min(other.words.len());
        let mut s = CpuSet {
            words: (0..n).map(|i| self.words[i] & other.words[i]).collect(),
        };
        s.trim();
        s
    }

    pub fn difference(&self, other: &CpuSet) -> CpuSet {
        let mut s = CpuSet {
            words: self
                .words
                .iter()
                .enumerate()
                .map(|(i, w)| w & !other.words.get(i).copied().unwrap_or(0))
                .collect(),
        };
        s.trim();
        s
    }

    /// `|self ∩ other|`, without building the intersection.
    pub fn intersection_len(&self, other: &CpuSet) -> usize {
        self.words
            .iter()
            .zip(&other.words)
            .map(|(a, b)| (a & b).count_ones() as usize)
            .sum()
    }

    pub fn is_subset_of(&self, other: &CpuSet) -> bool {
        self.difference(other).is_empty()
    }

    /// Ascending CPU ids.
    pub fn iter(&self) -> impl Iterator<Item = u32> + '_ {
        self.words.iter().enumerate().flat_map(|(i, &w)| {
            let mut w = w;
            std::iter::from_fn(move || {
                if w == 0 {
                    return None;
                }
                let b = w.trailing_zeros();
                w &= w - 1;
                Some(i as u32 * 64 + b)
            })
        })
    }

    pub fn to_vec(&self) -> Vec<u32> {
        self.iter().collect()
    }

    /// Parses a Linux cpulist exactly as `k8s.io/utils/cpuset.Parse` does (same accepted
    /// forms, same error texts: Go's `strconv.Atoi` messages and `invalid range`).
    pub fn parse(s: &str) -> Result<CpuSet, CpuSetParseError> {
        let mut set = CpuSet::new();
        if s.is_empty() {
            return Ok(set);
        }
        for r in s.split(',') {
            match r.split_once('-') {
                None => {
                    let e = atoi(r)?;
                    set.insert(e);
                }
                Some((a, b)) => {
                    let start = atoi(a)?;
                    let end = atoi(b)?;
                    if start > end {
                        return Err(CpuSetParseError(format!(
                            "invalid range \"{r}\" ({start} > {end})"
                        )));
                    }
                    for e in start..=end {
                        set.insert(e);
                    }
                }
            }
        }
        Ok(set)
    }
}

/// Go's `strconv.Atoi` restricted to what a CPU id can be. Negative ids parse in Go but
/// cannot name a CPU; we report them with the same "invalid syntax" shape.
fn atoi(s: &str) -> Result<u32, CpuSetParseError> {
    let digits = s.strip_prefix('+').unwrap_or(s);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(CpuSetParseError(format!(
            "strconv.Atoi: parsing \"{s}\": invalid syntax"
        )));
    }
    // CPU ids beyond this would need gigabytes of bitset; no machine has them.
    match digits.parse::<u64>() {
        Ok(v) if v < 1 << 20 => Ok(v as u32),
        _ => Err(CpuSetParseError(format!(
            "strconv.Atoi: parsing \"{s}\": value out of range"
        ))),
    }
}

impl fmt::Display for CpuSet {
    /// Linux list format: ascending, runs of two or more as `a-b`, comma separated.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        let mut it = self.iter().peekable();
        while let Some(start) = it.next() {
            let mut end = start;
            while it.peek() == Some(&(end + 1)) {
                end += 1;
                it.next();
            }
            if !first {
                f.write_str(",")?;
            }
            first = false;
            if end > start {
                write!(f, "{start}-{end}")?;
            } else {
                write!(f, "{start}")?;
            }
        }
        Ok(())
    }
}

impl fmt::Debug for CpuSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CpuSet(\"{self}\")")
    }
}

impl FromIterator<u32> for CpuSet {
    fn from_iter<I: IntoIterator<Item = u32>>(iter: I) -> Self {
        CpuSet::from_ids(iter)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_format_round_trip() {
        for (input, canon) in [
            ("", ""),
            ("0", "0"),
            ("0-3,8-11", "0-3,8-11"),
            ("3,1,2", "1-3"),
            ("1-1", "1"),
            ("0,2,4", "0,2,4"),
            ("63-65,127", "63-65,127"),
        ] {
            assert_eq!(CpuSet::parse(input).unwrap().to_string(), canon, "{input}");
        }
    }

    #[test]
    fn parse_errors_match_go() {
        assert_eq!(
            CpuSet::parse("3-1").unwrap_err().0,
            "invalid range \"3-1\" (3 > 1)"
        );
        assert_eq!(
            CpuSet::parse("a").unwrap_err().0,
            "strconv.Atoi: parsing \"a\": invalid syntax"
        );
        assert_eq!(
            CpuSet::parse("1,,2").unwrap_err().0,
            "strconv.Atoi: parsing \"\": invalid syntax"
        );
        assert!(CpuSet::parse("0-").is_err());
    }

    #[test]
    fn set_algebra() {
        let a = CpuSet::parse("0-7").unwrap();
        let b = CpuSet::parse("4-11").unwrap();
        assert_eq!(a.union(&b).to_string(), "0-11");
        assert_eq!(a.intersection(&b).to_string(), "4-7");
        assert_eq!(a.difference(&b).to_string(), "0-3");
        assert_eq!(b.difference(&b), CpuSet::new());
        assert!(CpuSet::parse("5-6").unwrap().is_subset_of(&a));
        assert_eq!(a.len(), 8);
        assert_eq!(a.intersection_len(&b), 4);
        assert_eq!(b.intersection_len(&a), 4);
        let far = CpuSet::parse("0,64-70,200").unwrap();
        assert_eq!(far.intersection_len(&CpuSet::parse("0-66").unwrap()), 4);
        assert_eq!(far.intersection_len(&CpuSet::new()), 0);
    }
}
