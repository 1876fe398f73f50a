//! The memory manager's books (`memorymanager/state`): per NUMA node a table per memory
//! type, NUMA groups ("cells"), and the blocks assigned to each container.

use std::collections::BTreeMap;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MemoryTable {
    pub total: u64,
    pub system_reserved: u64,
    pub allocatable: u64,
    pub reserved: u64,
    pub free: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NumaNodeState {
    /// Counts (block x node) pairs; Go int, can go negative on inconsistent input.
    pub number_of_assignments: i64,
    /// Resource name (`memory`, `hugepages-2Mi`, ...) -> table.
    pub memory_map: BTreeMap<String, MemoryTable>,
    /// The NUMA group this node belongs to (itself alone when not grouped).
    pub cells: Vec<u32>,
}

pub type MachineState = BTreeMap<u32, NumaNodeState>;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Block {
    /// Ascending NUMA ids.
    pub numa_affinity: Vec<u32>,
    /// Resource name.
    pub kind: String,
    pub size: u64,
}

/// pod uid -> container name -> blocks (sorted by resource name).
pub type Assignments = crate::bypod::ByPod<crate::vecmap::VecMap<Vec<Block>>>;
