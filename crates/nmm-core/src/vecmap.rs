//! [`VecMap`]: a name → value map kept as a sorted vector while it is small, for the
//! books' small inner maps (a pod's containers, a container's device resources) and the
//! providers' per-resource answers.
//!
//! Those maps hold one to a few entries. A `BTreeMap` gives each of them an eleven-slot
//! node (544 to 800 bytes, its length at the far end), so recording one container wrote
//! three or four fresh cache lines where one does; and pods are recorded on books that
//! are cold in the cache (docs/BENCHMARKS.md). Here the entries sit side by side in key
//! order: lookups are a binary search, walks are in key order exactly as the `BTreeMap`'s
//! were (`Debug` and serde print the same text).
//!
//! Inserting into a sorted vector shifts what follows, so a pod author who lists
//! thousands of containers in reverse name order would make the books quadratic (100,000
//! containers: seconds). Past [`SMALL_MAX`] entries the map becomes a `BTreeMap` and stays
//! one; nothing outside can tell the two apart.

use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use serde::ser::{Serialize, SerializeMap, Serializer};
use std::collections::{btree_map, BTreeMap};
use std::fmt;
use std::marker::PhantomData;

/// The most entries kept as a sorted vector.
pub const SMALL_MAX: usize = 32;

/// Name → `V`, walked in name order (see the module's doc).
#[derive(Clone)]
pub struct VecMap<V> {
    repr: Repr<V>,
}

#[derive(Clone)]
enum Repr<V> {
    Small(Vec<(String, V)>),
    Large(BTreeMap<String, V>),
}

impl<V> Default for VecMap<V> {
    fn default() -> Self {
        VecMap::new()
    }
}

impl<V> VecMap<V> {
    pub const fn new() -> Self {
        VecMap {
            repr: Repr::Small(Vec::new()),
        }
    }

    /// Room for `more` entries beyond those held, and no more (a no-op once large).
    pub fn reserve_exact(&mut self, more: usize) {
        if let Repr::Small(items) = &mut self.repr {
            if items.len() + more <= SMALL_MAX {
                items.reserve_exact(more)
            }
        }
    }

    pub fn len(&self) -> usize {
        match &self.repr {
            Repr::Small(items) => items.len(),
            Repr::Large(m) => m.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn find(items: &[(String, V)], key: &str) -> Result<usize, usize> {
        items.binary_search_by(|(k, _)| k.as_str().cmp(key))
    }

    pub fn contains_key(&self, key: &str) -> bool {
        self.get(key).is_some()
    }

    pub fn get(&self, key: &str) -> Option<&V> {
        match &self.repr {
            Repr::Small(items) => Self::find(items, key).ok().map(|i| &items[i].1),
            Repr::Large(m) => m.get(key),
        }
    }

    pub fn get_mut(&mut self, key: &str) -> Option<&mut V> {
        match &mut self.repr {
            Repr::Small(items) => match Self::find(items, key) {
                Ok(i) => Some(&mut items[i].1),
                Err(_) => None,
            },
            Repr::Large(m) => m.get_mut(key),
        }
    }

    /// Sets `key`'s value; returns the one it replaces. The first entry gets room for
    /// exactly one (the usual map holds one); past that the vector doubles as vectors do,
    /// and the entry past [`SMALL_MAX`] turns the map into a `BTreeMap`.
    pub fn insert(&mut self, key: String, v: V) -> Option<V> {
        if let Repr::Small(items) = &mut self.repr {
            match Self::find(items, &key) {
                Ok(i) => return Some(std::mem::replace(&mut items[i].1, v)),
                Err(i) if items.len() < SMALL_MAX => {
                    if items.capacity() == 0 {
                        items.reserve_exact(1);
                    }
                    items.insert(i, (key, v));
                    return None;
                }
                Err(_) => {
                    let large: BTreeMap<String, V> = std::mem::take(items).into_iter().collect();
                    self.repr = Repr::Large(large);
                }
            }
        }
        match &mut self.repr {
            Repr::Large(m) => m.insert(key, v),
            Repr::Small(_) => unreachable!("a small map returned above"),
        }
    }

    pub fn remove(&mut self, key: &str) -> Option<V> {
        match &mut self.repr {
            Repr::Small(items) => Self::find(items, key).ok().map(|i| items.remove(i).1),
            Repr::Large(m) => m.remove(key),
        }
    }

    /// `key`'s value, made with `V::default()` first when absent (the key is copied only
    /// when it is new).
    pub fn get_or_default(&mut self, key: &str) -> &mut V
    where
        V: Default,
    {
        if !self.contains_key(key) {
            self.insert(key.to_owned(), V::default());
        }
        self.get_mut(key)
            .unwrap_or_else(|| unreachable!("inserted just above"))
    }

    /// Moves every entry of `other` in (replacing equal keys), leaving it empty, as
    /// `BTreeMap::append` does.
    pub fn append(&mut self, other: &mut VecMap<V>) {
        for (k, v) in std::mem::take(other) {
            self.insert(k, v);
        }
    }

    pub fn retain(&mut self, mut keep: impl FnMut(&str, &mut V) -> bool) {
        match &mut self.repr {
            Repr::Small(items) => items.retain_mut(|(k, v)| keep(k, v)),
            Repr::Large(m) => m.retain(|k, v| keep(k, v)),
        }
    }

    /// The entries in key order.
    pub fn iter(&self) -> Iter<'_, V> {
        match &self.repr {
            Repr::Small(items) => Iter::Small(items.iter()),
            Repr::Large(m) => Iter::Large(m.iter()),
        }
    }

    /// The entries in key order, values mutable.
    pub fn iter_mut(&mut self) -> IterMut<'_, V> {
        match &mut self.repr {
            Repr::Small(items) => IterMut::Small(items.iter_mut()),
            Repr::Large(m) => IterMut::Large(m.iter_mut()),
        }
    }

    pub fn keys(&self) -> impl DoubleEndedIterator<Item = &String> + ExactSizeIterator {
        self.iter().map(|(k, _)| k)
    }

    pub fn values(&self) -> impl DoubleEndedIterator<Item = &V> + ExactSizeIterator {
        self.iter().map(|(_, v)| v)
    }

    pub fn values_mut(&mut self) -> impl DoubleEndedIterator<Item = &mut V> + ExactSizeIterator {
        self.iter_mut().map(|(_, v)| v)
    }

    pub fn into_keys(self) -> impl DoubleEndedIterator<Item = String> + ExactSizeIterator {
        self.into_iter().map(|(k, _)| k)
    }

    pub fn into_values(self) -> impl DoubleEndedIterator<Item = V> + ExactSizeIterator {
        self.into_iter().map(|(_, v)| v)
    }
}

/// The walk of a [`VecMap`], in key order.
pub enum Iter<'a, V> {
    Small(std::slice::Iter<'a, (String, V)>),
    Large(btree_map::Iter<'a, String, V>),
}

impl<'a, V> Iterator for Iter<'a, V> {
    type Item = (&'a String, &'a V);

    fn next(&mut self) -> Option<Self::Item> {
        match self {
            Iter::Small(i) => i.next().map(|(k, v)| (k, v)),
            Iter::Large(i) => i.next(),
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        match self {
            Iter::Small(i) => i.size_hint(),
            Iter::Large(i) => i.size_hint(),
        }
    }
}

impl<V> DoubleEndedIterator for Iter<'_, V> {
    fn next_back(&mut self) -> Option<Self::Item> {
        match self {
            Iter::Small(i) => i.next_back().map(|(k, v)| (k, v)),
            Iter::Large(i) => i.next_back(),
        }
    }
}

impl<V> ExactSizeIterator for Iter<'_, V> {}

/// The walk of a [`VecMap`] in key order, values mutable.
pub enum IterMut<'a, V> {
    Small(std::slice::IterMut<'a, (String, V)>),
    Large(btree_map::IterMut<'a, String, V>),
}

impl<'a, V> Iterator for IterMut<'a, V> {
    type Item = (&'a String, &'a mut V);

    fn next(&mut self) -> Option<Self::Item> {
        match self {
            IterMut::Small(i) => i.next().map(|(k, v)| (&*k, v)),
            IterMut::Large(i) => i.next(),
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        match self {
            IterMut::Small(i) => i.size_hint(),
            IterMut::Large(i) => i.size_hint(),
        }
    }
}

impl<V> DoubleEndedIterator for IterMut<'_, V> {
    fn next_back(&mut self) -> Option<Self::Item> {
        match self {
            IterMut::Small(i) => i.next_back().map(|(k, v)| (&*k, v)),
            IterMut::Large(i) => i.next_back(),
        }
    }
}

impl<V> ExactSizeIterator for IterMut<'_, V> {}

/// The entries of a [`VecMap`] taken out, in key order.
pub enum IntoIter<V> {
    Small(std::vec::IntoIter<(String, V)>),
    Large(btree_map::IntoIter<String, V>),
}

impl<V> Iterator for IntoIter<V> {
    type Item = (String, V);

    fn next(&mut self) -> Option<Self::Item> {
        match self {
            IntoIter::Small(i) => i.next(),
            IntoIter::Large(i) => i.next(),
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        match self {
            IntoIter::Small(i) => i.size_hint(),
            IntoIter::Large(i) => i.size_hint(),
        }
    }
}

impl<V> DoubleEndedIterator for IntoIter<V> {
    fn next_back(&mut self) -> Option<Self::Item> {
        match self {
            IntoIter::Small(i) => i.next_back(),
            IntoIter::Large(i) => i.next_back(),
        }
    }
}

impl<V> ExactSizeIterator for IntoIter<V> {}

impl<V> IntoIterator for VecMap<V> {
    type Item = (String, V);
    type IntoIter = IntoIter<V>;

    fn into_iter(self) -> Self::IntoIter {
        match self.repr {
            Repr::Small(items) => IntoIter::Small(items.into_iter()),
            Repr::Large(m) => IntoIter::Large(m.into_iter()),
        }
    }
}

impl<'a, V> IntoIterator for &'a VecMap<V> {
    type Item = (&'a String, &'a V);
    type IntoIter = Iter<'a, V>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

impl<'a, V> IntoIterator for &'a mut VecMap<V> {
    type Item = (&'a String, &'a mut V);
    type IntoIter = IterMut<'a, V>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter_mut()
    }
}

impl<V> FromIterator<(String, V)> for VecMap<V> {
    /// A key given twice keeps its last value, as a `BTreeMap` collected would.
    fn from_iter<I: IntoIterator<Item = (String, V)>>(items: I) -> Self {
        let mut items: Vec<(String, V)> = items.into_iter().collect();
        if items.len() > SMALL_MAX {
            return VecMap {
                repr: Repr::Large(items.into_iter().collect()),
            };
        }
        // Stable: equal keys stay in the order given, and the last of each run is kept.
        items.sort_by(|a, b| a.0.cmp(&b.0));
        let mut out: Vec<(String, V)> = Vec::with_capacity(items.len());
        for (k, v) in items {
            match out.last_mut() {
                Some(last) if last.0 == k => last.1 = v,
                _ => out.push((k, v)),
            }
        }
        VecMap {
            repr: Repr::Small(out),
        }
    }
}

impl<V> Extend<(String, V)> for VecMap<V> {
    fn extend<I: IntoIterator<Item = (String, V)>>(&mut self, items: I) {
        for (k, v) in items {
            self.insert(k, v);
        }
    }
}

impl<V, const N: usize> From<[(String, V); N]> for VecMap<V> {
    fn from(items: [(String, V); N]) -> Self {
        items.into_iter().collect()
    }
}

impl<V: PartialEq> PartialEq for VecMap<V> {
    /// Equal entries, whichever way each map keeps them.
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && self.iter().eq(other.iter())
    }
}

impl<V: Eq> Eq for VecMap<V> {}

impl<V> std::ops::Index<&str> for VecMap<V> {
    type Output = V;

    /// Panics when the key is absent, as `BTreeMap`'s indexing does (tests only).
    fn index(&self, key: &str) -> &V {
        match self.get(key) {
            Some(v) => v,
            None => panic!("no key {key:?} in the map"),
        }
    }
}

impl<V: fmt::Debug> fmt::Debug for VecMap<V> {
    /// As a `BTreeMap` prints: `{"key": value, ...}`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

impl<V: Serialize> Serialize for VecMap<V> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        serialize_pairs(s, self.len(), self.iter())
    }
}

impl<'de, V: Deserialize<'de>> Deserialize<'de> for VecMap<V> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        deserialize_pairs(d, "a map")
    }
}

/// A string-keyed map written as serde's map, in the order given (the maps here give
/// key order). Shared with [`crate::bypod::ByPod`].
pub(crate) fn serialize_pairs<'a, S: Serializer, V: Serialize + 'a>(
    s: S,
    len: usize,
    pairs: impl Iterator<Item = (&'a String, &'a V)>,
) -> Result<S::Ok, S::Error> {
    let mut m = s.serialize_map(Some(len))?;
    for (k, v) in pairs {
        m.serialize_entry(k, v)?;
    }
    m.end()
}

/// A string-keyed map read from serde's map, entry by entry (a key given twice keeps its
/// last value, as a `BTreeMap` read would). Shared with [`crate::bypod::ByPod`].
pub(crate) fn deserialize_pairs<'de, D, V, M>(d: D, expecting: &'static str) -> Result<M, D::Error>
where
    D: Deserializer<'de>,
    V: Deserialize<'de>,
    M: Default + Extend<(String, V)>,
{
    struct PairsVisitor<V, M>(&'static str, PhantomData<(V, M)>);
    impl<'de, V: Deserialize<'de>, M: Default + Extend<(String, V)>> Visitor<'de>
        for PairsVisitor<V, M>
    {
        type Value = M;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str(self.0)
        }
        fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<M, A::Error> {
            let mut out = M::default();
            while let Some(pair) = a.next_entry::<String, V>()? {
                out.extend(std::iter::once(pair));
            }
            Ok(out)
        }
    }
    d.deserialize_map(PairsVisitor(expecting, PhantomData))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    #[test]
    fn prints_and_serializes_as_a_btreemap() {
        let m: VecMap<u8> = [
            ("b".to_string(), 2),
            ("a".to_string(), 1),
            ("b".to_string(), 3),
        ]
        .into_iter()
        .collect();
        assert_eq!(format!("{m:?}"), r#"{"a": 1, "b": 3}"#);
        assert_eq!(serde_json::to_string(&m).unwrap(), r#"{"a":1,"b":3}"#);
        let back: VecMap<u8> = serde_json::from_str(r#"{"z":1,"a":2}"#).unwrap();
        assert_eq!(back.keys().collect::<Vec<_>>(), ["a", "z"]);
    }

    #[test]
    fn append_moves_everything_and_replaces_equal_keys() {
        let mut a = VecMap::from([("x".to_string(), 1), ("y".to_string(), 2)]);
        let mut b = VecMap::from([("y".to_string(), 20), ("a".to_string(), 0)]);
        a.append(&mut b);
        assert!(b.is_empty());
        assert_eq!(
            a.iter().map(|(k, v)| (k.as_str(), *v)).collect::<Vec<_>>(),
            [("a", 0), ("x", 1), ("y", 20)]
        );
        *a.get_or_default("b") += 5;
        *a.get_or_default("b") += 5;
        assert_eq!(a["b"], 10);
    }

    #[test]
    fn past_small_max_it_becomes_a_btreemap_that_looks_the_same() {
        let n = SMALL_MAX + 8;
        // Reverse name order: every insert would go in front of the vector.
        let mut big: VecMap<usize> = VecMap::new();
        for i in (0..n).rev() {
            big.insert(format!("c{i:03}"), i);
        }
        assert!(matches!(big.repr, Repr::Large(_)));
        assert_eq!(big.len(), n);
        let keys: Vec<String> = big.keys().cloned().collect();
        let mut sorted = keys.clone();
        sorted.sort();
        assert_eq!(keys, sorted);
        assert_eq!(big.iter().next_back().map(|(_, v)| *v), Some(n - 1));
        // The same entries kept small compare equal, whichever way each is kept.
        for i in SMALL_MAX..n {
            big.remove(&format!("c{i:03}"));
        }
        let small: VecMap<usize> = (0..SMALL_MAX).map(|i| (format!("c{i:03}"), i)).collect();
        assert!(matches!(small.repr, Repr::Small(_)));
        assert_eq!(big, small);
        assert_eq!(format!("{big:?}"), format!("{small:?}"));
        assert_eq!(
            serde_json::to_string(&big).unwrap(),
            serde_json::to_string(&small).unwrap()
        );
    }

    proptest! {
        /// Any sequence of inserts, removes and get_or_default leaves the same walk, the
        /// same Debug text and the same JSON as a `BTreeMap` given the same sequence; the
        /// keys reach past `SMALL_MAX`, so both ways of keeping the entries are walked.
        #[test]
        fn behaves_as_a_btreemap(ops in proptest::collection::vec((0u8..4, 0u8..48, any::<u16>()), 0..160)) {
            let mut ours = VecMap::new();
            let mut theirs = BTreeMap::new();
            for (op, k, v) in ops {
                let k = format!("c{k}");
                match op {
                    0 => prop_assert_eq!(ours.insert(k.clone(), v), theirs.insert(k, v)),
                    1 => prop_assert_eq!(ours.remove(&k), theirs.remove(&k)),
                    2 => {
                        let e = ours.get_or_default(&k);
                        *e = e.wrapping_add(v);
                        let e = theirs.entry(k).or_default();
                        *e = e.wrapping_add(v);
                    }
                    _ => prop_assert_eq!(ours.get(&k), theirs.get(&k)),
                }
            }
            prop_assert_eq!(ours.iter().collect::<Vec<_>>(), theirs.iter().collect::<Vec<_>>());
            prop_assert_eq!(format!("{ours:?}"), format!("{theirs:?}"));
            prop_assert_eq!(serde_json::to_string(&ours).unwrap(), serde_json::to_string(&theirs).unwrap());
            prop_assert_eq!(ours.iter().rev().collect::<Vec<_>>(), theirs.iter().rev().collect::<Vec<_>>());
            prop_assert_eq!(ours.len(), theirs.len());
            let collected: VecMap<u16> = theirs.clone().into_iter().collect();
            prop_assert_eq!(&collected, &ours);
            prop_assert_eq!(ours.into_iter().collect::<Vec<_>>(), theirs.into_iter().collect::<Vec<_>>());
        }
    }
}
