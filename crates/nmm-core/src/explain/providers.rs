//! The hint providers' answers and how their lists are described.

use super::*;

pub(super) fn subject_requests(pod: &PodInfo, c: Option<&ContainerInfo>) -> Requests {
    match c {
        Some(c) => container_requests(c).unwrap_or_default(),
        None => pod_requests(pod).unwrap_or_default(),
    }
}

/// A provider's answer in the large-machine shape (explicit lists stay explicit).
pub(super) type Answer = (&'static str, LargeHints);

/// The providers' answers of one merge: the described lists on large machines, else the
/// explicit ones.
pub(super) fn answers(
    hints: &[(&'static str, ProviderHints)],
    families: &[(&'static str, LargeHints)],
) -> Vec<Answer> {
    if hints.is_empty() && !families.is_empty() {
        families.to_vec()
    } else {
        hints
            .iter()
            .map(|(p, h)| (*p, to_large(h.clone())))
            .collect()
    }
}

/// The answers as explicit lists, when none is described.
pub(super) fn explicit(answers: &[Answer]) -> Option<Vec<ProviderHints>> {
    answers
        .iter()
        .map(|(_, h)| match h {
            None => Some(None),
            Some(m) => m
                .iter()
                .map(|(r, l)| match l {
                    None => Some((r.clone(), None)),
                    Some(LargeList::Explicit(v)) => Some((r.clone(), Some(v.clone()))),
                    Some(LargeList::Family(_)) => None,
                })
                .collect::<Option<BTreeMap<_, _>>>()
                .map(Some),
        })
        .collect()
}

/// At most this many single-node members are named when describing a family.
pub(super) const MAX_NAMED_MEMBERS: usize = 8;

pub(super) fn family_singles(f: &dyn HintFamily) -> Vec<NumaMask> {
    f.universe()
        .ids()
        .map(NumaMask::single)
        .filter(|&m| f.get(m) == Some(true))
        .collect()
}

pub(super) fn named(masks: &[NumaMask]) -> String {
    let mut parts: Vec<String> = masks
        .iter()
        .take(MAX_NAMED_MEMBERS)
        .map(|m| mask_text(*m))
        .collect();
    if masks.len() > MAX_NAMED_MEMBERS {
        parts.push(format!("… ({} in all)", masks.len()));
    }
    parts.join(", ")
}

/// A described list in words.
pub(super) fn family_text(f: &dyn HintFamily) -> String {
    let singles = family_singles(f);
    let mut sizes = f.preferred_sizes().to_vec();
    if let Some(min) = f.min_size() {
        sizes.retain(|&s| s >= min);
    }
    let universe = f.universe();
    let within = format!("{} NUMA nodes", universe.count());
    if !singles.is_empty() {
        let list: Vec<String> = named(&singles)
            .split(", ")
            .map(|s| {
                if s.starts_with('{') {
                    format!("{s} preferred")
                } else {
                    s.to_string()
                }
            })
            .collect();
        return format!(
            "{}, and wider masks of the {within} (described, not listed)",
            list.join(", ")
        );
    }
    let sizes: Vec<String> = sizes.iter().map(|s| s.to_string()).collect();
    match f.min_size() {
        None => "no hint: it cannot be satisfied".into(),
        Some(min) if sizes.is_empty() => format!(
            "masks of {min} or more of the {within}, none preferred (described, not listed)"
        ),
        Some(min) => format!(
            "masks of {min} or more of the {within}; preferred: masks of {} nodes (described, not listed)",
            sizes.join(" or ")
        ),
    }
}

/// What a provider said about one resource, before any filtering.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ListState {
    /// A nil answer: no preference.
    NoPreference,
    /// An empty answer (the memory manager found no place): read as no preference.
    NoHints,
    /// An empty list: the resource cannot be satisfied.
    CannotSatisfy,
    Hints,
}

/// One hint list of a merge, summarised.
#[derive(Debug, Clone)]
pub(super) struct ListInfo {
    pub(super) label: String,
    pub(super) state: ListState,
    /// Preferred masks in words (`{0}, {1}`, `masks of 2 nodes`), if any.
    pub(super) prefers: Option<String>,
    /// Has a preferred "any node" hint.
    pub(super) any_preferred: bool,
    /// The size of the narrowest preferred mask.
    pub(super) narrowest_preferred: Option<u32>,
    /// Something survives single-numa-node's filter (preferred single-node or any).
    pub(super) single_ok: bool,
    /// The size of the narrowest member.
    pub(super) min_size: Option<u32>,
}

pub(super) fn list_info(label: String, l: &LargeList) -> ListInfo {
    match l {
        LargeList::Explicit(v) => {
            let preferred: Vec<&TopologyHint> = v.iter().filter(|h| h.preferred).collect();
            let masks: Vec<NumaMask> = preferred.iter().filter_map(|h| h.affinity).collect();
            ListInfo {
                label,
                state: if v.is_empty() {
                    ListState::CannotSatisfy
                } else {
                    ListState::Hints
                },
                prefers: (!masks.is_empty()).then(|| named(&masks)),
                any_preferred: preferred.iter().any(|h| h.affinity.is_none()),
                narrowest_preferred: preferred
                    .iter()
                    .filter_map(|h| h.affinity.map(|m| m.count()))
                    .min(),
                single_ok: preferred
                    .iter()
                    .any(|h| h.affinity.is_none_or(|m| m.count() == 1)),
                min_size: v.iter().filter_map(|h| h.affinity.map(|m| m.count())).min(),
            }
        }
        LargeList::Family(f) => {
            let singles = family_singles(f.as_ref());
            let mut sizes = f.preferred_sizes().to_vec();
            // Preferred sizes below the narrowest member have no member.
            if let Some(min) = f.min_size() {
                sizes.retain(|&s| s >= min);
            }
            ListInfo {
                label,
                state: if f.min_size().is_none() {
                    ListState::CannotSatisfy
                } else {
                    ListState::Hints
                },
                prefers: if !singles.is_empty() {
                    Some(named(&singles))
                } else if sizes.is_empty() {
                    None
                } else {
                    Some(format!(
                        "masks of {} nodes",
                        sizes
                            .iter()
                            .map(|s| s.to_string())
                            .collect::<Vec<_>>()
                            .join(" or ")
                    ))
                },
                any_preferred: false,
                narrowest_preferred: sizes.iter().copied().min(),
                single_ok: !singles.is_empty(),
                min_size: f.min_size(),
            }
        }
    }
}

/// One entry per hint list the merge sees, in its order.
pub(super) fn list_infos(answers: &[Answer]) -> Vec<ListInfo> {
    let simple = |label: &str, state| ListInfo {
        label: label.to_string(),
        state,
        prefers: None,
        any_preferred: true,
        narrowest_preferred: None,
        single_ok: true,
        min_size: None,
    };
    let mut out = Vec::new();
    for (p, h) in answers {
        match h {
            None => out.push(simple(p, ListState::NoPreference)),
            // The Device Manager answers an empty map when the container asks for no
            // device resource: no preference, not "nothing fits".
            Some(m) if m.is_empty() && *p == "devices" => {
                out.push(simple(p, ListState::NoPreference))
            }
            Some(m) if m.is_empty() => out.push(simple(p, ListState::NoHints)),
            Some(m) => out.extend(m.iter().map(|(r, l)| match l {
                None => simple(r, ListState::NoPreference),
                Some(l) => list_info(r.clone(), l),
            })),
        }
    }
    out
}

pub(super) fn provider_view(
    node: &Node,
    pod: &PodInfo,
    c: Option<&ContainerInfo>,
    provider: &str,
    hints: &LargeHints,
) -> ProviderView {
    let no_pref = |why: String| ProviderView {
        provider: provider.to_string(),
        resources: Vec::new(),
        text: format!("{provider}: no preference ({why})"),
    };
    match hints {
        None => no_pref(if provider == "cpu" {
            cpu_no_preference(node, pod, c)
        } else {
            memory_no_preference(node, pod)
        }),
        Some(m) if m.is_empty() => {
            let req = subject_requests(pod, c);
            if provider != "memory" {
                no_pref("no hints".into())
            } else if req.is_empty() {
                no_pref("no memory or hugepages request".into())
            } else {
                ProviderView {
                    provider: provider.to_string(),
                    resources: Vec::new(),
                    text: format!(
                        "{provider}: no hints: no NUMA node or allowed group has {} free, and an empty answer reads as no preference",
                        match node.memory.static_policy() {
                            Some(p) => lacking_text(p.machine_state(), &req),
                            None => requests_text(&req),
                        }
                    ),
                }
            }
        }
        Some(m) => {
            let resources: Vec<ResourceHints> = m
                .iter()
                .map(|(r, l)| {
                    let (text, hints) = match l {
                        None => ("no preference".to_string(), None),
                        Some(LargeList::Explicit(v)) if v.is_empty() => (
                            "no hint: it cannot be satisfied".to_string(),
                            Some(Vec::new()),
                        ),
                        Some(LargeList::Explicit(v)) => (
                            list_text(v),
                            Some(v.iter().copied().map(HintView::from).collect()),
                        ),
                        Some(LargeList::Family(f)) => (family_text(f.as_ref()), None),
                    };
                    ResourceHints {
                        resource: r.clone(),
                        hints,
                        text,
                    }
                })
                .collect();
            let text = resources
                .iter()
                .map(|r| format!("{}: {}", r.resource, r.text))
                .collect::<Vec<_>>()
                .join("; ");
            ProviderView {
                provider: provider.to_string(),
                resources,
                text,
            }
        }
    }
}

/// Masks a merge can produce as preferred: every list holds the mask as a preferred hint
/// or has a preferred "any node" hint (the default mask when every list has one).
pub(super) fn preferred_candidates(lists: &[Vec<TopologyHint>], all: NumaMask) -> Vec<NumaMask> {
    let accepts = |l: &Vec<TopologyHint>, m: NumaMask| {
        l.iter()
            .any(|h| h.preferred && (h.affinity.is_none() || h.affinity == Some(m)))
    };
    let masks: BTreeSet<NumaMask> = lists
        .iter()
        .flatten()
        .filter(|h| h.preferred)
        .filter_map(|h| h.affinity)
        .collect();
    let mut out: Vec<NumaMask> = masks
        .into_iter()
        .filter(|&m| lists.iter().all(|l| accepts(l, m)))
        .collect();
    let all_any = lists
        .iter()
        .all(|l| l.iter().any(|h| h.preferred && h.affinity.is_none()));
    if all_any && !out.contains(&all) {
        out.push(all);
    }
    out.sort_by(|a, b| {
        if a.is_narrower_than(*b) {
            std::cmp::Ordering::Less
        } else if b.is_narrower_than(*a) {
            std::cmp::Ordering::Greater
        } else {
            std::cmp::Ordering::Equal
        }
    });
    out
}
