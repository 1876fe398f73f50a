//! `NUMAInfo`: the machine's NUMA node ids and distances, and the two ways of choosing
//! between two masks of the same preference (narrowest, closest).

use crate::bitmask::NumaMask;
use crate::machine::Machine;

#[derive(Debug, Clone, PartialEq)]
pub struct NumaInfo {
    /// Mask of every NUMA node of the machine (CPU-less nodes included): the default
    /// affinity.
    pub all: NumaMask,
    /// `distances[i]` = row of node i (indexed by node id), empty when unknown.
    distances: Vec<Vec<u64>>,
    /// `nearest[i]`: the other nodes of `all` with their distance from node i, by
    /// ascending distance (ties by id). Built once per machine; the mean-distance bounds
    /// of the merge scan it.
    nearest: Vec<Vec<(u32, u64)>>,
}

impl NumaInfo {
    pub fn new(machine: &Machine) -> NumaInfo {
        let max = machine
            .nodes
            .iter()
            .map(|n| n.id as usize + 1)
            .max()
            .unwrap_or(0);
        let mut distances = vec![Vec::new(); max];
        let mut all = NumaMask::EMPTY;
        for n in &machine.nodes {
            all = all.or(NumaMask::single(n.id));
            distances[n.id as usize] = n.distances.clone();
        }
        NumaInfo::with_nearest(all, distances)
    }

    fn with_nearest(all: NumaMask, distances: Vec<Vec<u64>>) -> NumaInfo {
        let mut info = NumaInfo {
            all,
            distances,
            nearest: Vec::new(),
        };
        let max = all.ids().map(|i| i as usize + 1).max().unwrap_or(0);
        let mut nearest = vec![Vec::new(); max];
        for i in all.ids() {
            let mut row: Vec<(u32, u64)> = all
                .ids()
                .filter(|&j| j != i)
                .map(|j| (j, info.distance(i, j)))
                .collect();
            row.sort_by_key(|&(j, d)| (d, j));
            nearest[i as usize] = row;
        }
        info.nearest = nearest;
        info
    }

    /// The other nodes of the machine with their distance from `i`, by ascending
    /// distance.
    pub fn nearest(&self, i: u32) -> &[(u32, u64)] {
        self.nearest.get(i as usize).map_or(&[], |r| r.as_slice())
    }

    /// For tests: a NUMA info from a plain distance matrix for nodes 0..n.
    pub fn from_matrix(matrix: Vec<Vec<u64>>) -> NumaInfo {
        let all = NumaMask((0..matrix.len()).fold(0u64, |m, i| m | 1 << i));
        NumaInfo::with_nearest(all, matrix)
    }

    /// Every node has a distance row (what `prefer-closest-numa-nodes` requires).
    pub fn has_distances(&self) -> bool {
        self.all.ids().all(|i| {
            self.distances
                .get(i as usize)
                .is_some_and(|r| !r.is_empty())
        })
    }

    pub fn distance(&self, i: u32, j: u32) -> u64 {
        self.distances
            .get(i as usize)
            .and_then(|r| r.get(j as usize))
            .copied()
            .unwrap_or(0)
    }

    /// Mean distance over all ordered pairs of the mask's nodes, the pair (i, i) included.
    pub fn average_distance(&self, m: NumaMask) -> f64 {
        if m.is_empty() {
            return 0.0;
        }
        let mut sum = 0f64;
        let mut count = 0f64;
        for i in m.ids() {
            for j in m.ids() {
                sum += self.distance(i, j) as f64;
                count += 1.0;
            }
        }
        sum / count
    }

    pub fn narrowest(&self, m1: NumaMask, m2: NumaMask) -> NumaMask {
        if m1.is_narrower_than(m2) {
            m1
        } else {
            m2
        }
    }

    pub fn closest(&self, m1: NumaMask, m2: NumaMask) -> NumaMask {
        if m1.count() != m2.count() {
            return self.narrowest(m1, m2);
        }
        let (a1, a2) = (self.average_distance(m1), self.average_distance(m2));
        if a1 == a2 {
            if m1.0 < m2.0 {
                m1
            } else {
                m2
            }
        } else if a1 < a2 {
            m1
        } else {
            m2
        }
    }
}
