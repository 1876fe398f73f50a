//! The merge: how the policy ranked the candidates and why the merged hint won.

use super::*;

/// `cpu prefers {0}, {1}; memory prefers {0,1}`.
pub(super) fn preferences_text(infos: &[ListInfo]) -> String {
    infos
        .iter()
        .map(|i| {
            let label = &i.label;
            match i.state {
                ListState::CannotSatisfy => format!("{label} cannot be satisfied"),
                ListState::NoHints => format!("{label} offered no hints"),
                ListState::NoPreference => format!("{label} has no preference"),
                ListState::Hints if i.any_preferred => format!("{label} has no preference"),
                ListState::Hints => match &i.prefers {
                    Some(p) => format!("{label} prefers {p}"),
                    None => format!("{label} prefers no mask"),
                },
            }
        })
        .collect::<Vec<_>>()
        .join("; ")
}

pub(super) fn how_ranked(policy: &Policy) -> &'static str {
    if policy.options.prefer_closest_numa && policy.kind != PolicyKind::SingleNumaNode {
        "the closest (fewest nodes, then the lowest average NUMA distance)"
    } else {
        "the narrowest (fewest nodes, then the lowest ids)"
    }
}

/// The explicit hint lists of a merge, before and after the policy's filter.
pub(super) type RawAndFiltered<'a> = (&'a [Vec<TopologyHint>], &'a [Vec<TopologyHint>]);

pub(super) fn why_merged(
    policy: &Policy,
    infos: &[ListInfo],
    lists: Option<RawAndFiltered>,
    outcome: &MergeOutcome,
) -> String {
    let cannot: Vec<String> = infos
        .iter()
        .filter(|i| i.state == ListState::CannotSatisfy)
        .map(|i| i.label.clone())
        .collect();
    if !cannot.is_empty() && !outcome.hint.preferred {
        return format!(
            "{} cannot be satisfied (an empty hint list), so no merge can be preferred; the result is {}",
            and_list(&cannot),
            hint_words(&outcome.hint)
        );
    }
    let single = policy.kind == PolicyKind::SingleNumaNode;
    let emptied: Vec<String> = infos
        .iter()
        .filter(|i| single && i.state == ListState::Hints && !i.single_ok)
        .map(|i| i.label.clone())
        .collect();
    if !emptied.is_empty() {
        return format!(
            "single-numa-node keeps only preferred single-node hints, which leaves {} with none; no merge can be preferred, so the result is {}",
            and_list(&emptied),
            hint_words(&outcome.hint)
        );
    }
    let Some((raw, lists)) = lists else {
        // Described lists (large machines): the search finds the kubelet's winner without
        // listing the candidates.
        return if outcome.hint.preferred {
            format!(
                "{} is preferred by every provider and wins as {} (the hint lists of this machine are described and searched in the kubelet's order, not listed)",
                affinity_text(outcome.hint.affinity),
                how_ranked(policy)
            )
        } else {
            format!(
                "no mask is preferred by all providers ({}); best non-preferred is {}",
                preferences_text(infos),
                affinity_text(outcome.hint.affinity)
            )
        };
    };
    let prefix = if single && raw != lists {
        "single-numa-node keeps only preferred single-node hints; "
    } else {
        ""
    };
    let cands = preferred_candidates(lists, policy.numa.all);
    if outcome.hint.preferred {
        let only_any = lists.iter().all(|l| l.iter().all(|h| h.affinity.is_none()));
        if only_any {
            let silent: Vec<String> = infos
                .iter()
                .filter(|i| i.state == ListState::NoHints)
                .map(|i| i.label.clone())
                .collect();
            let note = if silent.is_empty() {
                String::new()
            } else {
                format!(
                    " ({} offered no hints because nothing fits, which reads as no preference)",
                    and_list(&silent)
                )
            };
            return format!(
                "{prefix}no provider has a NUMA preference{note}, so the merged hint is any node"
            );
        }
        let winner = outcome.hint.affinity.unwrap_or(policy.numa.all);
        if cands.len() <= 1 {
            return format!(
                "{prefix}the only preferred mask every provider accepts is {}",
                mask_text(winner)
            );
        }
        let names: Vec<String> = cands.iter().map(|m| mask_text(*m)).collect();
        return format!(
            "{prefix}{} are preferred by every provider; {} wins as {}",
            and_list(&names),
            mask_text(winner),
            how_ranked(policy)
        );
    }
    format!(
        "{prefix}no mask is preferred by all providers ({}); best non-preferred is {}",
        preferences_text(infos),
        affinity_text(outcome.hint.affinity)
    )
}

pub(super) fn verdict_text(kind: PolicyKind, outcome: &MergeOutcome) -> String {
    match kind {
        PolicyKind::None => "none accepts every pod without merging hints".into(),
        PolicyKind::BestEffort => format!(
            "best-effort accepts any merged hint; the providers allocate with {}",
            hint_text(&outcome.hint)
        ),
        k if outcome.admit => format!("{} accepts the merged hint: it is preferred", k.name()),
        k => format!(
            "{} rejects: the merged hint ({}) is not preferred (TopologyAffinityError)",
            k.name(),
            outcome
                .hint
                .affinity
                .map_or_else(|| "any node".to_string(), mask_text)
        ),
    }
}

pub(super) const ALL_POLICIES: [PolicyKind; 4] = [
    PolicyKind::None,
    PolicyKind::BestEffort,
    PolicyKind::Restricted,
    PolicyKind::SingleNumaNode,
];

pub(super) fn decision(
    node: &Node,
    pod: &PodInfo,
    c: Option<&ContainerInfo>,
    answers: &[Answer],
    outcome: &MergeOutcome,
) -> Decision {
    let policy = &node.topology.policy;
    let providers = answers
        .iter()
        .map(|(p, h)| provider_view(node, pod, c, p, h))
        .collect();
    let infos = list_infos(answers);
    let only = explicit(answers);
    let raw = only.as_deref().map(filter_providers_hints);
    let large: Vec<LargeHints> = answers.iter().map(|(_, h)| h.clone()).collect();
    let under_each_policy = ALL_POLICIES
        .iter()
        .map(|&kind| {
            let p = Policy {
                kind,
                numa: policy.numa.clone(),
                options: policy.options,
                dense_universe: policy.dense_universe,
            };
            let o = match &only {
                Some(only) => p.merge(only),
                None => p.merge_large(&large),
            };
            PolicyVerdict {
                policy: kind.name().to_string(),
                merged: o.hint.into(),
                admit: o.admit,
            }
        })
        .collect();
    let lists = match &raw {
        Some(raw) if !outcome.lists.is_empty() => Some((raw.as_slice(), outcome.lists.as_slice())),
        _ => None,
    };
    Decision {
        scope: if c.is_some() { "container" } else { "pod" }.to_string(),
        container: c.map(|c| c.name.clone()),
        providers,
        merged: outcome.hint.into(),
        admit: outcome.admit,
        why_merged: why_merged(policy, &infos, lists, outcome),
        verdict: verdict_text(policy.kind, outcome),
        under_each_policy,
    }
}

// ---------------------------------------------------------------------------------------
// Facts.
