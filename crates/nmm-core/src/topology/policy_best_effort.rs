//! Policy `best-effort`: merge the hints, admit whatever the result.

use super::hint::ProviderHints;
use super::policy::{MergeOutcome, Policy};

pub fn merge(p: &Policy, providers: &[ProviderHints]) -> MergeOutcome {
    let (hint, lists) = p.merge_filtered(providers, false);
    MergeOutcome {
        hint,
        admit: true,
        lists,
        unranked: false,
    }
}
