//! Policy `none`: no merging; every pod is admitted with "any node".

use super::hint::TopologyHint;
use super::policy::MergeOutcome;

pub fn merge() -> MergeOutcome {
    MergeOutcome {
        hint: TopologyHint::NONE,
        admit: true,
        lists: Vec::new(),
        unranked: false,
    }
}
