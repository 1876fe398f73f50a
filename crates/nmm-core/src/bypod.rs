//! [`ByPod`]: the books' map from pod uid to what the pod holds, hashed for the admission
//! path and iterated in uid order everywhere.
//!
//! The kubelet keeps these books in Go maps (`map[string]map[string]...`), which are hash
//! maps; it sorts only where bytes come out (the checkpoint's JSON). We had them as
//! `BTreeMap`s, which made every uid lookup a string comparison per key on the way down,
//! and every new pod a shift of a B-tree leaf of keys and values. On a node copy that is
//! cold in the cache (an admission seconds after the last one), those comparisons and
//! shifts were the largest share of the lines an admission missed (docs/BENCHMARKS.md).
//!
//! A lookup here is one hash of the uid and a probe. Nothing of the hash order leaks:
//! every way to walk the map (`iter`, `keys`, `values`, `iter_mut`, `values_mut`,
//! `into_iter`, `Debug`, serde) goes in uid order, as the `BTreeMap` did, so the same
//! books give the same bytes, and the random seed of the hasher changes nothing outside.

use crate::vecmap::{deserialize_pairs, serialize_pairs};
use foldhash::fast::RandomState;
use serde::de::{Deserialize, Deserializer};
use serde::ser::{Serialize, Serializer};
use std::collections::HashMap;
use std::fmt;

/// Pod uid → `V`, walked in uid order (see the module's doc).
#[derive(Clone)]
pub struct ByPod<V> {
    map: HashMap<String, V, RandomState>,
}

impl<V> Default for ByPod<V> {
    fn default() -> Self {
        ByPod::new()
    }
}

impl<V> ByPod<V> {
    pub fn new() -> Self {
        ByPod {
            map: HashMap::default(),
        }
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    pub fn contains_key(&self, uid: &str) -> bool {
        self.map.contains_key(uid)
    }

    pub fn get(&self, uid: &str) -> Option<&V> {
        self.map.get(uid)
    }

    pub fn get_mut(&mut self, uid: &str) -> Option<&mut V> {
        self.map.get_mut(uid)
    }

    /// Sets the pod's value; returns the one it replaces.
    pub fn insert(&mut self, uid: String, v: V) -> Option<V> {
        self.map.insert(uid, v)
    }

    pub fn remove(&mut self, uid: &str) -> Option<V> {
        self.map.remove(uid)
    }

    /// The pod's value, made with `V::default()` first when the pod has none (what
    /// `entry(uid).or_default()` was; the uid is copied only when it is new).
    pub fn get_or_default(&mut self, uid: &str) -> &mut V
    where
        V: Default,
    {
        if !self.map.contains_key(uid) {
            self.map.insert(uid.to_owned(), V::default());
        }
        self.map
            .get_mut(uid)
            .unwrap_or_else(|| unreachable!("inserted just above"))
    }

    /// Keeps the pods for which `keep` is true. The order of the calls is the hash order:
    /// `keep` must not depend on it (it sees one pod at a time and changes nothing else).
    pub fn retain(&mut self, mut keep: impl FnMut(&str, &mut V) -> bool) {
        self.map.retain(|k, v| keep(k, v))
    }

    pub fn clear(&mut self) {
        self.map.clear()
    }

    /// The pods in uid order.
    pub fn iter(&self) -> std::vec::IntoIter<(&String, &V)> {
        let mut all: Vec<(&String, &V)> = self.map.iter().collect();
        all.sort_unstable_by(|a, b| a.0.cmp(b.0));
        all.into_iter()
    }

    /// The pods in uid order, their values mutable.
    pub fn iter_mut(&mut self) -> std::vec::IntoIter<(&String, &mut V)> {
        let mut all: Vec<(&String, &mut V)> = self.map.iter_mut().collect();
        all.sort_unstable_by(|a, b| a.0.cmp(b.0));
        all.into_iter()
    }

    /// The uids in order.
    pub fn keys(&self) -> impl Iterator<Item = &String> {
        self.iter().map(|(k, _)| k)
    }

    /// The values in uid order.
    pub fn values(&self) -> impl Iterator<Item = &V> {
        self.iter().map(|(_, v)| v)
    }

    /// The values in uid order, mutable.
    pub fn values_mut(&mut self) -> impl Iterator<Item = &mut V> {
        self.iter_mut().map(|(_, v)| v)
    }

    /// The uids in order, taken out.
    pub fn into_keys(self) -> impl Iterator<Item = String> {
        self.into_iter().map(|(k, _)| k)
    }

    /// The values in no particular order, without sorting: for folds whose result does not
    /// depend on the order (sums, unions, counts).
    pub fn values_any_order(&self) -> impl Iterator<Item = &V> {
        self.map.values()
    }
}

impl<V> IntoIterator for ByPod<V> {
    type Item = (String, V);
    type IntoIter = std::vec::IntoIter<(String, V)>;

    /// The pods in uid order.
    fn into_iter(self) -> Self::IntoIter {
        let mut all: Vec<(String, V)> = self.map.into_iter().collect();
        all.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        all.into_iter()
    }
}

impl<'a, V> IntoIterator for &'a ByPod<V> {
    type Item = (&'a String, &'a V);
    type IntoIter = std::vec::IntoIter<(&'a String, &'a V)>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

impl<'a, V> IntoIterator for &'a mut ByPod<V> {
    type Item = (&'a String, &'a mut V);
    type IntoIter = std::vec::IntoIter<(&'a String, &'a mut V)>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter_mut()
    }
}

impl<V> FromIterator<(String, V)> for ByPod<V> {
    /// A uid given twice keeps its last value, as a `BTreeMap` collected would.
    fn from_iter<I: IntoIterator<Item = (String, V)>>(items: I) -> Self {
        ByPod {
            map: items.into_iter().collect(),
        }
    }
}

impl<V> Extend<(String, V)> for ByPod<V> {
    fn extend<I: IntoIterator<Item = (String, V)>>(&mut self, items: I) {
        self.map.extend(items)
    }
}

impl<V, const N: usize> From<[(String, V); N]> for ByPod<V> {
    fn from(items: [(String, V); N]) -> Self {
        items.into_iter().collect()
    }
}

impl<V> std::ops::Index<&str> for ByPod<V> {
    type Output = V;

    /// Panics when the pod is absent, as `BTreeMap`'s indexing does (tests only).
    fn index(&self, uid: &str) -> &V {
        match self.map.get(uid) {
            Some(v) => v,
            None => panic!("no pod {uid:?} in the books"),
        }
    }
}

impl<V: PartialEq> PartialEq for ByPod<V> {
    fn eq(&self, other: &Self) -> bool {
        self.map == other.map
    }
}

impl<V: Eq> Eq for ByPod<V> {}

impl<V: fmt::Debug> fmt::Debug for ByPod<V> {
    /// As a `BTreeMap` prints: `{"uid": value, ...}` in uid order.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

impl<V: Serialize> Serialize for ByPod<V> {
    /// A map in uid order.
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        serialize_pairs(s, self.len(), self.iter())
    }
}

impl<'de, V: Deserialize<'de>> Deserialize<'de> for ByPod<V> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        deserialize_pairs(d, "a map from pod uid")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    #[test]
    fn walks_in_uid_order_whatever_the_insertion_order() {
        let mut m = ByPod::new();
        for uid in ["pod-c", "pod-a", "pod-b", "a", "zz"] {
            m.insert(uid.to_string(), uid.len());
        }
        let keys: Vec<&String> = m.keys().collect();
        assert_eq!(keys, ["a", "pod-a", "pod-b", "pod-c", "zz"]);
        assert_eq!(
            format!("{m:?}"),
            r#"{"a": 1, "pod-a": 5, "pod-b": 5, "pod-c": 5, "zz": 2}"#
        );
        assert_eq!(
            serde_json::to_string(&m).unwrap(),
            r#"{"a":1,"pod-a":5,"pod-b":5,"pod-c":5,"zz":2}"#
        );
        let back: ByPod<usize> = serde_json::from_str(r#"{"zz":2,"a":1}"#).unwrap();
        assert_eq!(back.keys().collect::<Vec<_>>(), ["a", "zz"]);
    }

    #[test]
    fn get_or_default_makes_the_value_once() {
        let mut m: ByPod<Vec<u32>> = ByPod::new();
        m.get_or_default("p").push(1);
        m.get_or_default("p").push(2);
        assert_eq!(m["p"], [1, 2]);
        assert_eq!(m.len(), 1);
    }

    proptest! {
        /// Any sequence of inserts and removes leaves the same walk, the same Debug text
        /// and the same JSON as a `BTreeMap` given the same sequence.
        #[test]
        fn behaves_as_a_btreemap(ops in proptest::collection::vec((0u8..3, 0u8..12, any::<u16>()), 0..60)) {
            let mut ours = ByPod::new();
            let mut theirs = BTreeMap::new();
            for (op, k, v) in ops {
                let k = format!("pod-{k}");
                match op {
                    0 | 1 => prop_assert_eq!(ours.insert(k.clone(), v), theirs.insert(k, v)),
                    _ => prop_assert_eq!(ours.remove(&k), theirs.remove(&k)),
                }
            }
            prop_assert_eq!(ours.iter().collect::<Vec<_>>(), theirs.iter().collect::<Vec<_>>());
            prop_assert_eq!(format!("{ours:?}"), format!("{theirs:?}"));
            prop_assert_eq!(serde_json::to_string(&ours).unwrap(), serde_json::to_string(&theirs).unwrap());
            prop_assert_eq!(ours.clone().into_iter().collect::<Vec<_>>(), theirs.into_iter().collect::<Vec<_>>());
        }
    }
}
