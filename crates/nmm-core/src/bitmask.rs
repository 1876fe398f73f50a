//! NUMA node bitmasks, as the kubelet's `topologymanager/bitmask`: bit i = NUMA node i,
//! at most 64 nodes.

use std::fmt;

#[derive(Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NumaMask(pub u64);

impl NumaMask {
    pub const EMPTY: NumaMask = NumaMask(0);

    /// The mask of one node. Ids above 63 cannot be represented and give the empty mask
    /// (never a wrapped bit); machines are checked at the boundary
    /// (`Machine::check_limits`), so the managers never pass one.
    pub fn single(id: u32) -> NumaMask {
        NumaMask(1u64.checked_shl(id).unwrap_or(0))
    }

    /// The mask of one node, or the kubelet's bitmask error for ids above 63.
    pub fn try_single(id: u32) -> Result<NumaMask, String> {
        NumaMask::from_ids([id as i64])
    }

    /// Like `bitmask.NewBitMask`: every bit must be in 0..=63.
    pub fn from_ids<I: IntoIterator<Item = i64>>(ids: I) -> Result<NumaMask, String> {
        let mut m = 0u64;
        for id in ids {
            if !(0..64).contains(&id) {
                return Err("bit number must be in range 0-63".to_string());
            }
            m |= 1u64 << id;
        }
        Ok(NumaMask(m))
    }

    pub fn count(self) -> u32 {
        self.0.count_ones()
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    pub fn is_set(self, id: u32) -> bool {
        id < 64 && self.0 & (1u64 << id) != 0
    }

    pub fn and(self, o: NumaMask) -> NumaMask {
        NumaMask(self.0 & o.0)
    }

    pub fn or(self, o: NumaMask) -> NumaMask {
        NumaMask(self.0 | o.0)
    }

    pub fn is_subset_of(self, o: NumaMask) -> bool {
        self.0 & !o.0 == 0
    }

    /// `IsNarrowerThan`: fewer nodes, or as many and numerically smaller.
    pub fn is_narrower_than(self, o: NumaMask) -> bool {
        let (a, b) = (self.count(), o.count());
        if a == b {
            self.0 < o.0
        } else {
            a < b
        }
    }

    /// Ascending node ids.
    pub fn ids(self) -> impl Iterator<Item = u32> {
        let mut w = self.0;
        std::iter::from_fn(move || {
            if w == 0 {
                return None;
            }
            let b = w.trailing_zeros();
            w &= w - 1;
            Some(b)
        })
    }

    pub fn to_vec(self) -> Vec<u32> {
        self.ids().collect()
    }
}

impl fmt::Debug for NumaMask {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.to_vec())
    }
}

/// All non-empty subsets of `ids`, by increasing size, lexicographic by position within a
/// size: the kubelet's `IterateBitMasks` order. Only for small inputs (tests, oracles).
pub fn iterate_masks(ids: &[u32], mut f: impl FnMut(NumaMask)) {
    fn rec(ids: &[u32], start: usize, left: usize, acc: u64, f: &mut dyn FnMut(NumaMask)) {
        if left == 0 {
            f(NumaMask(acc));
            return;
        }
        for i in start..=ids.len() - left {
            rec(ids, i + 1, left - 1, acc | NumaMask::single(ids[i]).0, f);
        }
    }
    for size in 1..=ids.len() {
        rec(ids, 0, size, 0, &mut f);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn narrower_is_count_then_numeric() {
        let m = |v: &[i64]| NumaMask::from_ids(v.iter().copied()).unwrap();
        assert!(m(&[1, 2]).is_narrower_than(m(&[0, 3])));
        assert!(m(&[3]).is_narrower_than(m(&[0, 1])));
        assert!(!m(&[0, 1]).is_narrower_than(m(&[0, 1])));
    }

    #[test]
    fn iterate_order_matches_kubelet() {
        let mut got = vec![];
        iterate_masks(&[0, 1, 2], |m| got.push(m.to_vec()));
        assert_eq!(
            got,
            vec![
                vec![0],
                vec![1],
                vec![2],
                vec![0, 1],
                vec![0, 2],
                vec![1, 2],
                vec![0, 1, 2]
            ]
        );
    }

    #[test]
    fn single_never_wraps() {
        assert_eq!(NumaMask::single(63).to_vec(), vec![63]);
        assert_eq!(NumaMask::single(64), NumaMask::EMPTY);
        assert_eq!(NumaMask::single(65), NumaMask::EMPTY);
        assert_eq!(NumaMask::single(u32::MAX), NumaMask::EMPTY);
        assert!(!NumaMask(u64::MAX).is_set(64));
        assert_eq!(NumaMask::try_single(5), Ok(NumaMask(1 << 5)));
        assert_eq!(
            NumaMask::try_single(64).unwrap_err(),
            "bit number must be in range 0-63"
        );
    }

    #[test]
    fn out_of_range_bit_is_rejected() {
        assert_eq!(
            NumaMask::from_ids([64]).unwrap_err(),
            "bit number must be in range 0-63"
        );
    }
}
