//! Policy `restricted`: best-effort's merge, admitted only when the result is preferred.

use super::hint::ProviderHints;
use super::policy::{MergeOutcome, Policy};

pub fn merge(p: &Policy, providers: &[ProviderHints]) -> MergeOutcome {
    let (hint, lists) = p.merge_filtered(providers, false);
    MergeOutcome {
        admit: hint.preferred,
        hint,
        lists,
        unranked: false,
    }
}
