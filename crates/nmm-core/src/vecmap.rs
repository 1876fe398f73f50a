//! [`VecMap`]: a name → value map kept as a sorted vector, for the books' small inner maps
//! (a pod's containers, a container's device resources).
//!
//! Those maps hold one to a few entries. A `BTreeMap` gives each of them an eleven-slot
//! node (544 to 800 bytes, its length at the far end), so recording one container wrote
//! three or four fresh cache lines where one does; and pods are recorded on books that
//! are cold in the cache (docs/BENCHMARKS.md). Here the entries sit side by side in key
//! order: lookups are a binary search, walks are in key order exactly as the `BTreeMap`'s
//! were (`Debug` and serde print the same text), and inserting into a large map costs a
//! shift, which is fine for maps this small.

use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use serde::ser::{Serialize, SerializeMap, Serializer};
use std::fmt;
use std::marker::PhantomData;

/// Name → `V`, sorted by name (see the module's doc).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct VecMap<V> {
    items: Vec<(String, V)>,
}

impl<V> Default for VecMap<V> {
    fn default() -> Self {
        VecMap::new()
    }
}

impl<V> VecMap<V> {
    pub const fn new() -> Self {
        VecMap { items: Vec::new() }
    }

    fn find(&self, key: &str) -> Result<usize, usize> {
        self.items.binary_search_by(|(k, _)| k.as_str().cmp(key))
    }

    /// Room for `more` entries beyond those held, and no more.
    pub fn reserve_exact(&mut self, more: usize) {
        self.items.reserve_exact(more)
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    pub fn contains_key(&self, key: &str) -> bool {
        self.find(key).is_ok()
    }

    pub fn get(&self, key: &str) -> Option<&V> {
        self.find(key).ok().map(|i| &self.items[i].1)
    }

    pub fn get_mut(&mut self, key: &str) -> Option<&mut V> {
        match self.find(key) {
            Ok(i) => Some(&mut self.items[i].1),
            Err(_) => None,
        }
    }

    /// Sets `key`'s value; returns the one it replaces.
    pub fn insert(&mut self, key: String, v: V) -> Option<V> {
        match self.find(&key) {
            Ok(i) => Some(std::mem::replace(&mut self.items[i].1, v)),
            Err(i) => {
                // The usual map here holds one entry: room for exactly what it holds.
                self.items.reserve_exact(1);
                self.items.insert(i, (key, v));
                None
            }
        }
    }

    pub fn remove(&mut self, key: &str) -> Option<V> {
        self.find(key).ok().map(|i| self.items.remove(i).1)
    }

    /// `key`'s value, made with `V::default()` first when absent (the key is copied only
    /// when it is new).
    pub fn get_or_default(&mut self, key: &str) -> &mut V
    where
        V: Default,
    {
        let i = match self.find(key) {
            Ok(i) => i,
            Err(i) => {
                self.items.reserve_exact(1);
                self.items.insert(i, (key.to_owned(), V::default()));
                i
            }
        };
        &mut self.items[i].1
    }

    /// Moves every entry of `other` in (replacing equal keys), leaving it empty, as
    /// `BTreeMap::append` does.
    pub fn append(&mut self, other: &mut VecMap<V>) {
        for (k, v) in std::mem::take(&mut other.items) {
            self.insert(k, v);
        }
    }

    pub fn retain(&mut self, mut keep: impl FnMut(&str, &mut V) -> bool) {
        self.items.retain_mut(|(k, v)| keep(k, v))
    }

    /// The entries in key order.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = (&String, &V)> + ExactSizeIterator {
        self.items.iter().map(|(k, v)| (k, v))
    }

    /// The entries in key order, values mutable.
    pub fn iter_mut(
        &mut self,
    ) -> impl DoubleEndedIterator<Item = (&String, &mut V)> + ExactSizeIterator {
        self.items.iter_mut().map(|(k, v)| (&*k, v))
    }

    pub fn keys(&self) -> impl DoubleEndedIterator<Item = &String> + ExactSizeIterator {
        self.items.iter().map(|(k, _)| k)
    }

    pub fn values(&self) -> impl DoubleEndedIterator<Item = &V> + ExactSizeIterator {
        self.items.iter().map(|(_, v)| v)
    }

    pub fn values_mut(&mut self) -> impl DoubleEndedIterator<Item = &mut V> + ExactSizeIterator {
        self.items.iter_mut().map(|(_, v)| v)
    }

    pub fn into_keys(self) -> impl DoubleEndedIterator<Item = String> + ExactSizeIterator {
        self.items.into_iter().map(|(k, _)| k)
    }

    pub fn into_values(self) -> impl DoubleEndedIterator<Item = V> + ExactSizeIterator {
        self.items.into_iter().map(|(_, v)| v)
    }
}

impl<V> IntoIterator for VecMap<V> {
    type Item = (String, V);
    type IntoIter = std::vec::IntoIter<(String, V)>;

    fn into_iter(self) -> Self::IntoIter {
        self.items.into_iter()
    }
}

/// `(&key, &value)` from a `&(key, value)`: the `BTreeMap` walk's item shape.
type Pair<'a, V> = fn(&'a (String, V)) -> (&'a String, &'a V);
/// The same, values mutable.
type PairMut<'a, V> = fn(&'a mut (String, V)) -> (&'a String, &'a mut V);

impl<'a, V> IntoIterator for &'a VecMap<V> {
    type Item = (&'a String, &'a V);
    type IntoIter = std::iter::Map<std::slice::Iter<'a, (String, V)>, Pair<'a, V>>;

    fn into_iter(self) -> Self::IntoIter {
        self.items.iter().map(|(k, v)| (k, v))
    }
}

impl<'a, V> IntoIterator for &'a mut VecMap<V> {
    type Item = (&'a String, &'a mut V);
    type IntoIter = std::iter::Map<std::slice::IterMut<'a, (String, V)>, PairMut<'a, V>>;

    fn into_iter(self) -> Self::IntoIter {
        self.items.iter_mut().map(|(k, v)| (&*k, v))
    }
}

impl<V> FromIterator<(String, V)> for VecMap<V> {
    /// A key given twice keeps its last value, as a `BTreeMap` collected would.
    fn from_iter<I: IntoIterator<Item = (String, V)>>(items: I) -> Self {
        let mut items: Vec<(String, V)> = items.into_iter().collect();
        // Stable: equal keys stay in the order given, and the last of each run is kept.
        items.sort_by(|a, b| a.0.cmp(&b.0));
        let mut out: Vec<(String, V)> = Vec::with_capacity(items.len());
        for (k, v) in items {
            match out.last_mut() {
                Some(last) if last.0 == k => last.1 = v,
                _ => out.push((k, v)),
            }
        }
        VecMap { items: out }
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
        let mut m = s.serialize_map(Some(self.len()))?;
        for (k, v) in self.iter() {
            m.serialize_entry(k, v)?;
        }
        m.end()
    }
}

impl<'de, V: Deserialize<'de>> Deserialize<'de> for VecMap<V> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct MapVisitor<V>(PhantomData<V>);
        impl<'de, V: Deserialize<'de>> Visitor<'de> for MapVisitor<V> {
            type Value = VecMap<V>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a map")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<Self::Value, A::Error> {
                let mut out = VecMap::new();
                while let Some((k, v)) = a.next_entry::<String, V>()? {
                    out.insert(k, v);
                }
                Ok(out)
            }
        }
        d.deserialize_map(MapVisitor(PhantomData))
    }
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

    proptest! {
        /// Any sequence of inserts, removes and get_or_default leaves the same walk, the
        /// same Debug text and the same JSON as a `BTreeMap` given the same sequence.
        #[test]
        fn behaves_as_a_btreemap(ops in proptest::collection::vec((0u8..4, 0u8..10, any::<u16>()), 0..60)) {
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
            let collected: VecMap<u16> = theirs.clone().into_iter().collect();
            prop_assert_eq!(&collected, &ours);
        }
    }
}
