//! The Topology Manager policies: how provider hints become one hint, and whether the
//! pod may run with it. One type per kubelet policy file, behind one enum.

use super::family::{merge_large_preferred, merge_large_with, LargeList};
use super::hint::{LargeHints, ProviderHints, TopologyHint};
use super::merge::{filter_providers_hints, filter_single_numa, merge, Merger};
use super::numa_info::NumaInfo;
use super::options::PolicyOptions;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PolicyKind {
    None,
    BestEffort,
    Restricted,
    SingleNumaNode,
}

impl PolicyKind {
    pub fn parse(name: &str) -> Option<PolicyKind> {
        Some(match name {
            "none" => PolicyKind::None,
            "best-effort" => PolicyKind::BestEffort,
            "restricted" => PolicyKind::Restricted,
            "single-numa-node" => PolicyKind::SingleNumaNode,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            PolicyKind::None => "none",
            PolicyKind::BestEffort => "best-effort",
            PolicyKind::Restricted => "restricted",
            PolicyKind::SingleNumaNode => "single-numa-node",
        }
    }
}

/// The outcome of `Policy.Merge`, with what went into it (for `nmm explain`).
#[derive(Debug, Clone, PartialEq)]
pub struct MergeOutcome {
    pub hint: TopologyHint,
    pub admit: bool,
    /// The per-resource hint lists that were merged (after the policy's filtering).
    pub lists: Vec<Vec<TopologyHint>>,
    /// A rejection decided without ranking the non-preferred masks
    /// ([`Policy::decide_large`]): `hint` is then "any node, not preferred", not the
    /// kubelet's merged hint; [`MergeOutcome::ranked`] gives that.
    pub unranked: bool,
}

impl MergeOutcome {
    /// The outcome with the kubelet's merged hint: an [`MergeOutcome::unranked`]
    /// rejection merged again in full from the described lists it was decided on (the
    /// same decision; the hint is the kubelet's non-preferred mask). Others as they are.
    pub fn ranked(&self, policy: &Policy, families: &[(&'static str, LargeHints)]) -> MergeOutcome {
        if !self.unranked {
            return self.clone();
        }
        policy.merge_large(families.iter().map(|(_, h)| h))
    }
}

#[derive(Debug, Clone)]
pub struct Policy {
    pub kind: PolicyKind,
    pub numa: NumaInfo,
    pub options: PolicyOptions,
    /// Large-machine merge: universes up to this size are merged by projection.
    pub dense_universe: usize,
}

impl Policy {
    pub fn merge(&self, providers: &[ProviderHints]) -> MergeOutcome {
        match self.kind {
            PolicyKind::None => super::policy_none::merge(),
            PolicyKind::BestEffort => super::policy_best_effort::merge(self, providers),
            PolicyKind::Restricted => super::policy_restricted::merge(self, providers),
            PolicyKind::SingleNumaNode => super::policy_single_numa_node::merge(self, providers),
        }
    }

    /// [`Policy::merge`] for described hint lists (large machines): the same outcome.
    pub fn merge_large<'a>(
        &self,
        providers: impl IntoIterator<Item = &'a LargeHints>,
    ) -> MergeOutcome {
        self.merge_large_as(providers, false)
    }

    /// [`Policy::merge_large`] as admission needs it: the same decision, but a
    /// `restricted` or `single-numa-node` rejection stops once no preferred mask exists
    /// (every non-preferred hint is rejected, so which one the kubelet would report does
    /// not change the decision, and searching for it is the costly part of a rejection
    /// on a large machine). The outcome is then [`MergeOutcome::unranked`];
    /// [`MergeOutcome::ranked`] finds the kubelet's mask for whoever shows it.
    pub fn decide_large<'a>(
        &self,
        providers: impl IntoIterator<Item = &'a LargeHints>,
    ) -> MergeOutcome {
        self.merge_large_as(providers, true)
    }

    fn merge_large_as<'a>(
        &self,
        providers: impl IntoIterator<Item = &'a LargeHints>,
        decide_only: bool,
    ) -> MergeOutcome {
        if self.kind == PolicyKind::None {
            return super::policy_none::merge();
        }
        let single = self.kind == PolicyKind::SingleNumaNode;
        let any = |p: bool| {
            LargeList::Explicit(vec![TopologyHint {
                affinity: None,
                preferred: p,
            }])
        };
        let mut lists: Vec<LargeList> = Vec::new();
        for p in providers {
            match p {
                None => lists.push(any(true)),
                Some(m) if m.is_empty() => lists.push(any(true)),
                Some(m) => {
                    for l in m.values() {
                        lists.push(match l {
                            None => any(true),
                            Some(LargeList::Explicit(v)) if v.is_empty() => any(false),
                            Some(l) => l.clone(),
                        });
                    }
                }
            }
        }
        if single {
            let keep = |v: Vec<TopologyHint>| {
                LargeList::Explicit(
                    v.into_iter()
                        .filter(|h| h.preferred && h.affinity.is_none_or(|m| m.count() == 1))
                        .collect(),
                )
            };
            // The resources of one provider often share one family (memory and its
            // hugepages): its single-node members are listed once.
            let mut done: Vec<(std::rc::Rc<dyn super::family::HintFamily>, LargeList)> = Vec::new();
            lists = lists
                .into_iter()
                .map(|l| match l {
                    LargeList::Explicit(v) => keep(v),
                    LargeList::Family(f) => {
                        if let Some((_, l)) = done.iter().find(|(g, _)| std::rc::Rc::ptr_eq(g, &f))
                        {
                            return l.clone();
                        }
                        let l = keep(
                            f.universe()
                                .ids()
                                .map(crate::bitmask::NumaMask::single)
                                .filter_map(|m| f.get(m).map(|p| TopologyHint::new(m, p)))
                                .collect(),
                        );
                        done.push((f, l.clone()));
                        l
                    }
                })
                .collect();
        }
        let merger = Merger {
            numa: &self.numa,
            closest: self.options.prefer_closest_numa && !single,
        };
        let mut unranked = false;
        let mut hint = if decide_only && self.kind != PolicyKind::BestEffort {
            merge_large_preferred(&lists, &merger).unwrap_or_else(|| {
                unranked = true;
                TopologyHint::NONE
            })
        } else {
            merge_large_with(&lists, &merger, self.dense_universe)
        };
        if single && hint.affinity == Some(self.numa.all) {
            hint.affinity = None;
        }
        let admit = match self.kind {
            PolicyKind::BestEffort => true,
            _ => hint.preferred,
        };
        MergeOutcome {
            hint,
            admit,
            lists: Vec::new(),
            unranked,
        }
    }

    /// best-effort's merge, shared by restricted.
    pub(super) fn merge_filtered(
        &self,
        providers: &[ProviderHints],
        single_numa: bool,
    ) -> (TopologyHint, Vec<Vec<TopologyHint>>) {
        let mut lists = filter_providers_hints(providers);
        if single_numa {
            lists = filter_single_numa(lists);
        }
        let merger = Merger {
            numa: &self.numa,
            closest: self.options.prefer_closest_numa && !single_numa,
        };
        (merge(&lists, &merger), lists)
    }
}
