//! A flat mirror of the static policy's machine state for the admission path.
//!
//! The books (`MachineState`) are maps of maps keyed by strings, as the checkpoint is;
//! reading a hint family's inputs from them means a string-keyed lookup per node and
//! resource and a dozen scattered heap lines per node. The mirror holds the same facts
//! in a few flat vectors: per node id and resource (sorted resource names), allocatable
//! and free; per node id, its group and whether it has assignments. The policy keeps it
//! equal to the books: built on first use, re-read node by node where the policy
//! changes a node, dropped when the books are replaced (a test checks
//! `Flat::read(books) == mirror` after every step of random sequences).

use super::state::{MachineState, MemoryTable, NumaNodeState};
use crate::bitmask::NumaMask;

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Flat {
    /// Every resource name some node's table has, sorted.
    pub names: Vec<String>,
    /// Highest node id + 1.
    pub rows: usize,
    /// Per node id and resource (`id * names.len() + r`); zero where a node lacks it.
    pub alloc: Vec<u64>,
    pub free: Vec<u64>,
    /// The group of each node id (`cells`, as a mask; empty when it cannot be one) and
    /// its length.
    pub cells: Vec<NumaMask>,
    pub cells_len: Vec<usize>,
    /// Nodes present in the books.
    pub universe: NumaMask,
    /// Nodes with at least one assignment.
    pub assigned: NumaMask,
}

impl Flat {
    pub fn read(ms: &MachineState) -> Flat {
        let mut names: Vec<String> = ms
            .values()
            .flat_map(|ns| ns.memory_map.keys().cloned())
            .collect();
        names.sort_unstable();
        names.dedup();
        let rows = ms.keys().map(|&n| n as usize + 1).max().unwrap_or(0);
        let stride = names.len();
        let mut f = Flat {
            names,
            rows,
            alloc: vec![0; rows * stride],
            free: vec![0; rows * stride],
            cells: vec![NumaMask::EMPTY; rows],
            cells_len: vec![0; rows],
            universe: NumaMask::EMPTY,
            assigned: NumaMask::EMPTY,
        };
        for (&id, ns) in ms {
            f.universe = f.universe.or(NumaMask::single(id));
            let fits = f.sync(ms, id);
            debug_assert!(fits, "every row and column is there: {ns:?}");
        }
        f
    }

    /// Node `id` (now `ns`) changed its assignments, its group and at most the table of
    /// column `changed`: the mirror follows without reading the other columns. False
    /// when the node is not in the mirror (the caller reads it all again).
    #[must_use]
    pub fn update(
        &mut self,
        id: u32,
        ns: &NumaNodeState,
        changed: Option<(usize, &MemoryTable)>,
    ) -> bool {
        let i = id as usize;
        if i >= self.rows || !self.universe.is_set(id) {
            return false;
        }
        if let Some((c, t)) = changed {
            let stride = self.names.len();
            self.alloc[i * stride + c] = t.allocatable;
            self.free[i * stride + c] = t.free;
        }
        self.node(id, ns);
        true
    }

    fn node(&mut self, id: u32, ns: &NumaNodeState) {
        let i = id as usize;
        self.cells[i] = NumaMask::from_ids(ns.cells.iter().map(|&c| c as i64)).unwrap_or_default();
        self.cells_len[i] = ns.cells.len();
        let bit = NumaMask::single(id);
        self.assigned = if ns.number_of_assignments > 0 {
            self.assigned.or(bit)
        } else {
            NumaMask(self.assigned.0 & !bit.0)
        };
    }

    /// Re-reads node `id`'s row from the books. False when the row no longer fits the
    /// mirror (a node or resource it does not know): the caller reads it all again.
    #[must_use]
    pub fn sync(&mut self, ms: &MachineState, id: u32) -> bool {
        let i = id as usize;
        let Some(ns) = ms.get(&id) else {
            return false;
        };
        if i >= self.rows {
            return false;
        }
        let stride = self.names.len();
        for r in 0..stride {
            self.alloc[i * stride + r] = 0;
            self.free[i * stride + r] = 0;
        }
        for (name, t) in &ns.memory_map {
            let Ok(r) = self.names.binary_search(name) else {
                return false;
            };
            self.alloc[i * stride + r] = t.allocatable;
            self.free[i * stride + r] = t.free;
        }
        self.node(id, ns);
        true
    }

    /// The column of resource `name`, if any node has it.
    pub fn column(&self, name: &str) -> Option<usize> {
        self.names.binary_search_by(|n| n.as_str().cmp(name)).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(assignments: i64, cells: Vec<u32>, tables: &[(&str, u64, u64)]) -> NumaNodeState {
        NumaNodeState {
            number_of_assignments: assignments,
            memory_map: tables
                .iter()
                .map(|&(n, a, f)| {
                    (
                        n.to_string(),
                        MemoryTable {
                            allocatable: a,
                            free: f,
                            ..Default::default()
                        },
                    )
                })
                .collect(),
            cells,
        }
    }

    #[test]
    fn reads_rows_columns_groups_and_assignments() {
        let mut ms = MachineState::new();
        ms.insert(
            0,
            node(2, vec![0, 2], &[("memory", 10, 4), ("hugepages-1Gi", 3, 1)]),
        );
        ms.insert(2, node(0, vec![2], &[("memory", 7, 7)]));
        let f = Flat::read(&ms);
        assert_eq!(f.names, ["hugepages-1Gi", "memory"]);
        assert_eq!(f.rows, 3);
        assert_eq!(f.alloc, [3, 10, 0, 0, 0, 7]);
        assert_eq!(f.free, [1, 4, 0, 0, 0, 7]);
        assert_eq!(f.cells, [NumaMask(0b101), NumaMask::EMPTY, NumaMask(0b100)]);
        assert_eq!(f.cells_len, [2, 0, 1]);
        assert_eq!(f.universe, NumaMask(0b101));
        assert_eq!(f.assigned, NumaMask(0b001));
        assert_eq!(f.column("memory"), Some(1));
        assert_eq!(f.column("hugepages-2Mi"), None);
    }

    #[test]
    fn update_follows_one_table_and_the_node_and_refuses_an_unknown_node() {
        let mut ms = MachineState::new();
        ms.insert(
            0,
            node(0, vec![0], &[("hugepages-1Gi", 4, 4), ("memory", 10, 10)]),
        );
        ms.insert(1, node(0, vec![1], &[("memory", 10, 10)]));
        let mut f = Flat::read(&ms);
        let n0 = ms.get_mut(&0).unwrap();
        n0.number_of_assignments = 2;
        n0.cells = vec![0, 1];
        let t = n0.memory_map.get_mut("memory").unwrap();
        t.free = 1;
        let t = *t;
        let col = f.column("memory").unwrap();
        assert!(f.update(0, &ms[&0], Some((col, &t))));
        assert_eq!(f, Flat::read(&ms));
        // A node the mirror has no row for: refused, the caller reads it all again.
        ms.insert(3, node(1, vec![3], &[("memory", 1, 1)]));
        assert!(!f.update(3, &ms[&3], None));
    }

    #[test]
    fn sync_follows_a_changed_node_and_refuses_an_unknown_one() {
        let mut ms = MachineState::new();
        ms.insert(0, node(1, vec![0], &[("memory", 10, 4)]));
        ms.insert(1, node(0, vec![1], &[("memory", 10, 10)]));
        let mut f = Flat::read(&ms);
        let n1 = ms.get_mut(&1).unwrap();
        n1.number_of_assignments = 1;
        n1.cells = vec![0, 1];
        n1.memory_map.get_mut("memory").unwrap().free = 3;
        let n0 = ms.get_mut(&0).unwrap();
        n0.number_of_assignments = 0;
        assert!(f.sync(&ms, 1) && f.sync(&ms, 0));
        assert_eq!(f, Flat::read(&ms));
        // A resource the mirror has no column for, or a node beyond its rows.
        ms.get_mut(&1)
            .unwrap()
            .memory_map
            .insert("hugepages-2Mi".into(), MemoryTable::default());
        assert!(!f.sync(&ms, 1));
        ms.insert(5, node(0, vec![5], &[]));
        assert!(!f.sync(&ms, 5));
        assert!(!f.sync(&ms, 9), "a node the books lack");
    }
}
