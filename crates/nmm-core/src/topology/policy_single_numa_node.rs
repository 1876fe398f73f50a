//! Policy `single-numa-node`: only preferred single-node (or "any") hints take part; a
//! result covering every node becomes "any node"; admitted only when preferred.
//! `prefer-closest-numa-nodes` does not apply.

use super::hint::ProviderHints;
use super::policy::{MergeOutcome, Policy};

pub fn merge(p: &Policy, providers: &[ProviderHints]) -> MergeOutcome {
    let (mut hint, lists) = p.merge_filtered(providers, true);
    if hint.affinity == Some(p.numa.all) {
        hint.affinity = None;
    }
    MergeOutcome {
        admit: hint.preferred,
        hint,
        lists,
        unranked: false,
    }
}
