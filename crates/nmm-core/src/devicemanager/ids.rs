//! The ids a container holds of one resource, per NUMA node (`DevicesPerNUMA`): kept as
//! sorted vectors, not ordered trees. A container holds a few devices of a resource, and
//! an ordered tree allocates a node of eleven slots (hundreds of bytes) even for one id;
//! every admission records one such entry per resource and keeps it, so the size is
//! fresh memory written on every admission.

use std::collections::BTreeSet;

/// Device ids, sorted bytewise and unique (`sets.Set[string]`); serialized as a list.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(transparent)]
pub struct IdSet(Vec<String>);

impl IdSet {
    pub fn new() -> IdSet {
        IdSet(Vec::new())
    }

    /// Adds `id`; false when it was there.
    pub fn insert(&mut self, id: String) -> bool {
        match self.0.binary_search(&id) {
            Ok(_) => false,
            Err(i) => {
                self.0.insert(i, id);
                true
            }
        }
    }

    pub fn contains(&self, id: &str) -> bool {
        self.0.binary_search_by(|x| x.as_str().cmp(id)).is_ok()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The ids in bytewise order.
    pub fn iter(&self) -> std::slice::Iter<'_, String> {
        self.0.iter()
    }
}

impl<const N: usize> From<[String; N]> for IdSet {
    fn from(ids: [String; N]) -> IdSet {
        ids.into_iter().collect()
    }
}

impl From<BTreeSet<String>> for IdSet {
    fn from(ids: BTreeSet<String>) -> IdSet {
        // already sorted and unique
        IdSet(ids.into_iter().collect())
    }
}

impl FromIterator<String> for IdSet {
    fn from_iter<I: IntoIterator<Item = String>>(it: I) -> IdSet {
        let mut v: Vec<String> = it.into_iter().collect();
        v.sort_unstable();
        v.dedup();
        IdSet(v)
    }
}

impl Extend<String> for IdSet {
    fn extend<I: IntoIterator<Item = String>>(&mut self, it: I) {
        for id in it {
            self.insert(id);
        }
    }
}

impl<'a> IntoIterator for &'a IdSet {
    type Item = &'a String;
    type IntoIter = std::slice::Iter<'a, String>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

impl IntoIterator for IdSet {
    type Item = String;
    type IntoIter = std::vec::IntoIter<String>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

/// NUMA node id (`-1`: no topology) -> ids, in node order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ByNuma(Vec<(i64, IdSet)>);

type Pair<'a> = (&'a i64, &'a IdSet);

impl ByNuma {
    pub fn new() -> ByNuma {
        ByNuma(Vec::new())
    }

    fn find(&self, node: i64) -> Result<usize, usize> {
        self.0.binary_search_by_key(&node, |(n, _)| *n)
    }

    /// Sets the ids of `node`, returning the ones it replaced.
    pub fn insert(&mut self, node: i64, ids: IdSet) -> Option<IdSet> {
        match self.find(node) {
            Ok(i) => Some(std::mem::replace(&mut self.0[i].1, ids)),
            Err(i) => {
                self.0.insert(i, (node, ids));
                None
            }
        }
    }

    /// The ids of `node`, created empty when missing.
    pub fn node_mut(&mut self, node: i64) -> &mut IdSet {
        let i = match self.find(node) {
            Ok(i) => i,
            Err(i) => {
                self.0.insert(i, (node, IdSet::new()));
                i
            }
        };
        &mut self.0[i].1
    }

    pub fn get(&self, node: &i64) -> Option<&IdSet> {
        self.find(*node).ok().map(|i| &self.0[i].1)
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// (node, ids) in node order.
    pub fn iter(&self) -> impl Iterator<Item = Pair<'_>> + '_ {
        self.0.iter().map(|(n, ids)| (n, ids))
    }

    pub fn keys(&self) -> impl Iterator<Item = &i64> + '_ {
        self.0.iter().map(|(n, _)| n)
    }

    pub fn values(&self) -> impl Iterator<Item = &IdSet> + '_ {
        self.0.iter().map(|(_, ids)| ids)
    }
}

impl std::ops::Index<&i64> for ByNuma {
    type Output = IdSet;
    fn index(&self, node: &i64) -> &IdSet {
        self.get(node).expect("no such NUMA node in the allocation")
    }
}

impl FromIterator<(i64, IdSet)> for ByNuma {
    fn from_iter<I: IntoIterator<Item = (i64, IdSet)>>(it: I) -> ByNuma {
        let mut out = ByNuma::new();
        for (n, ids) in it {
            out.insert(n, ids);
        }
        out
    }
}

impl<'a> IntoIterator for &'a ByNuma {
    type Item = Pair<'a>;
    type IntoIter =
        std::iter::Map<std::slice::Iter<'a, (i64, IdSet)>, fn(&'a (i64, IdSet)) -> Pair<'a>>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter().map(|(n, ids)| (n, ids))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn id_sets_stay_sorted_and_unique() {
        let mut a: IdSet = s(&["nic-2", "nic-10", "nic-2"]).into_iter().collect();
        assert_eq!(
            a.iter().cloned().collect::<Vec<_>>(),
            s(&["nic-10", "nic-2"])
        );
        assert!(a.insert("nic-1".into()));
        assert!(!a.insert("nic-10".into()));
        assert_eq!(a.len(), 3);
        assert!(a.contains("nic-1") && !a.contains("nic-3"));
        assert_eq!(
            a.iter().cloned().collect::<Vec<_>>(),
            s(&["nic-1", "nic-10", "nic-2"])
        );
        let b: IdSet = [
            "nic-2".to_string(),
            "nic-1".to_string(),
            "nic-10".to_string(),
        ]
        .into();
        assert_eq!(a, b);
        a.extend(s(&["a", "nic-1"]));
        assert_eq!(
            a.into_iter().collect::<Vec<_>>(),
            s(&["a", "nic-1", "nic-10", "nic-2"])
        );
    }

    #[test]
    fn by_numa_keeps_node_order() {
        let mut m = ByNuma::new();
        m.node_mut(3).insert("c".into());
        m.node_mut(-1).insert("x".into());
        m.node_mut(3).insert("a".into());
        assert_eq!(m.insert(0, ["z".to_string()].into()), None);
        assert_eq!(m.keys().copied().collect::<Vec<_>>(), vec![-1, 0, 3]);
        assert_eq!(m[&3], ["a".to_string(), "c".to_string()].into());
        assert_eq!(m.get(&7), None);
        let old = m.insert(0, IdSet::new());
        assert_eq!(old, Some(["z".to_string()].into()));
        assert_eq!(m.len(), 3);
        let pairs: Vec<(i64, usize)> = (&m).into_iter().map(|(n, i)| (*n, i.len())).collect();
        assert_eq!(pairs, vec![(-1, 1), (0, 0), (3, 2)]);
        let back: ByNuma = m.iter().map(|(n, i)| (*n, i.clone())).collect();
        assert_eq!(back, m);
    }
}
