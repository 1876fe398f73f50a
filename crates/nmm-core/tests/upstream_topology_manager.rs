//! The kubelet's Topology Manager unit tests (`pkg/kubelet/cm/topologymanager`, v1.32),
//! ported case by case from `shared/reference/topology-cpu-tests.md` onto nmm's public API.
//!
//! One `#[test]` per upstream test function (the shared merge tables run once per policy
//! and fixture, as upstream does); every case carries its upstream description string.

// Case tables are tuples, as upstream's are anonymous structs.
#![allow(clippy::type_complexity)]

use k8s_openapi::api::core::v1::Pod;
use nmm_core::bitmask::{iterate_masks, NumaMask};
use nmm_core::kubelet_config::KubeletConfig;
use nmm_core::machine::{Machine, NumaNode};
use nmm_core::pod::{ContainerInfo, PodInfo};
use nmm_core::topology::family::DENSE_UNIVERSE;
use nmm_core::topology::hint::{ProviderHints, TopologyHint};
use nmm_core::topology::merge::{best_non_preferred_affinity_count, filter_single_numa, Merger};
use nmm_core::topology::numa_info::NumaInfo;
use nmm_core::topology::options::{parse_policy_options, PolicyOptions};
use nmm_core::topology::policy::{Policy, PolicyKind};
use nmm_core::topology::{HintProvider, ProviderError, Scope, TopologyManager};
use serde_json::json;
use std::collections::BTreeMap;

// ---------------------------------------------------------------------------------------
// Fixtures and notation

fn m(ids: &[i64]) -> NumaMask {
    NumaMask::from_ids(ids.iter().copied()).unwrap()
}

/// `{ids}P`
fn p(ids: &[i64]) -> TopologyHint {
    TopologyHint::new(m(ids), true)
}

/// `{ids}N`
fn n(ids: &[i64]) -> TopologyHint {
    TopologyHint::new(m(ids), false)
}

/// `nil P` / `nil N`
fn nil(preferred: bool) -> TopologyHint {
    TopologyHint {
        affinity: None,
        preferred,
    }
}

/// A provider answering one list per resource.
fn prov(resources: &[(&str, Vec<TopologyHint>)]) -> ProviderHints {
    Some(
        resources
            .iter()
            .map(|(r, l)| (r.to_string(), Some(l.clone())))
            .collect(),
    )
}

/// A provider returning an empty (non-nil) map: `{}`.
fn empty_map() -> ProviderHints {
    Some(BTreeMap::new())
}

/// A provider whose map holds a nil list for resource `r`: `r:nil`.
fn nil_list(r: &str) -> ProviderHints {
    Some([(r.to_string(), None)].into())
}

fn two_nodes() -> Vec<Vec<u64>> {
    vec![vec![10, 11], vec![11, 10]]
}

fn four_nodes() -> Vec<Vec<u64>> {
    vec![
        vec![10, 11, 12, 12],
        vec![11, 10, 12, 12],
        vec![12, 12, 10, 11],
        vec![12, 12, 11, 10],
    ]
}

fn eight_nodes() -> Vec<Vec<u64>> {
    vec![
        vec![10, 11, 12, 12, 30, 30, 30, 30],
        vec![11, 10, 12, 12, 30, 30, 30, 30],
        vec![12, 12, 10, 11, 30, 30, 30, 30],
        vec![12, 12, 11, 10, 30, 30, 30, 30],
        vec![30, 30, 30, 30, 10, 11, 12, 12],
        vec![30, 30, 30, 30, 11, 10, 12, 12],
        vec![30, 30, 30, 30, 12, 12, 10, 11],
        // The asymmetric 13 is upstream's.
        vec![30, 30, 30, 30, 12, 12, 13, 10],
    ]
}

fn policy(kind: PolicyKind, distances: Vec<Vec<u64>>, closest: bool) -> Policy {
    Policy {
        kind,
        numa: NumaInfo::from_matrix(distances),
        options: PolicyOptions {
            prefer_closest_numa: closest,
            ..Default::default()
        },
        dense_universe: DENSE_UNIVERSE,
    }
}

/// What a case expects: a hint, or "all nodes of the fixture" with a preference.
#[derive(Clone, Copy, Debug)]
enum Want {
    Hint(TopologyHint),
    All(bool),
}

use Want::{All, Hint};

struct MergeCase {
    name: &'static str,
    providers: Vec<ProviderHints>,
    expected: Want,
}

fn case(name: &'static str, providers: Vec<ProviderHints>, expected: Want) -> MergeCase {
    MergeCase {
        name,
        providers,
        expected,
    }
}

/// `testPolicyMerge`: the merged hint must equal the expected one exactly.
fn test_policy_merge(policy: &Policy, cases: Vec<MergeCase>) {
    for c in cases {
        let want = match c.expected {
            Hint(h) => h,
            All(pref) => TopologyHint::new(policy.numa.all, pref),
        };
        let got = policy.merge(&c.providers);
        assert_eq!(got.hint, want, "{:?}: {}", policy.kind, c.name);
        // restricted and single-numa-node admit exactly the preferred results.
        let admit = match policy.kind {
            PolicyKind::None | PolicyKind::BestEffort => true,
            _ => want.preferred,
        };
        assert_eq!(got.admit, admit, "{:?}: {} (admit)", policy.kind, c.name);
    }
}

// ---------------------------------------------------------------------------------------
// §3 commonPolicyMergeTestCases

fn common_policy_merge_test_cases() -> Vec<MergeCase> {
    vec![
        case(
            "Two providers, 1 hint each, same mask, both preferred 1/2",
            vec![
                prov(&[("resource1", vec![p(&[0])])]),
                prov(&[("resource2", vec![p(&[0])])]),
            ],
            Hint(p(&[0])),
        ),
        case(
            "Two providers, 1 hint each, same mask, both preferred 2/2",
            vec![
                prov(&[("resource1", vec![p(&[1])])]),
                prov(&[("resource2", vec![p(&[1])])]),
            ],
            Hint(p(&[1])),
        ),
        case(
            "Two providers, 1 no hints, 1 single hint preferred 1/2",
            vec![empty_map(), prov(&[("resource", vec![p(&[0])])])],
            Hint(p(&[0])),
        ),
        case(
            "Two providers, 1 no hints, 1 single hint preferred 2/2",
            vec![empty_map(), prov(&[("resource", vec![p(&[1])])])],
            Hint(p(&[1])),
        ),
        case(
            "Two providers, 1 with 2 hints, 1 with single hint matching 1/2",
            vec![
                prov(&[("resource1", vec![p(&[0]), p(&[1])])]),
                prov(&[("resource2", vec![p(&[0])])]),
            ],
            Hint(p(&[0])),
        ),
        case(
            "Two providers, 1 with 2 hints, 1 with single hint matching 2/2",
            vec![
                prov(&[("resource1", vec![p(&[0]), p(&[1])])]),
                prov(&[("resource2", vec![p(&[1])])]),
            ],
            Hint(p(&[1])),
        ),
        case(
            "Two providers, both with 2 hints, matching narrower preferred hint from both",
            vec![
                prov(&[("resource1", vec![p(&[0]), p(&[1])])]),
                prov(&[("resource2", vec![p(&[0]), n(&[0, 1])])]),
            ],
            Hint(p(&[0])),
        ),
        case(
            "Ensure less narrow preferred hints are chosen over narrower non-preferred hints",
            vec![
                prov(&[("resource1", vec![p(&[1]), n(&[0, 1])])]),
                prov(&[("resource2", vec![p(&[0]), p(&[1]), n(&[0, 1])])]),
            ],
            Hint(p(&[1])),
        ),
        case(
            "Multiple resources, same provider",
            vec![prov(&[
                ("resource1", vec![p(&[1]), n(&[0, 1])]),
                ("resource2", vec![p(&[0]), p(&[1]), n(&[0, 1])]),
            ])],
            Hint(p(&[1])),
        ),
    ]
}

// §4 best-effort mergeTestCases (also restricted)
fn best_effort_merge_test_cases() -> Vec<MergeCase> {
    let two = |a: Vec<TopologyHint>, b: Vec<TopologyHint>| {
        vec![prov(&[("resource1", a)]), prov(&[("resource2", b)])]
    };
    let wide = || vec![n(&[0, 1, 2, 3]), n(&[0, 1])];
    vec![
        case(
            "Two providers, 2 hints each, same mask (some with different bits), same preferred",
            two(vec![p(&[0, 1]), p(&[0, 2])], vec![p(&[0, 1]), p(&[0, 2])]),
            Hint(p(&[0, 1])),
        ),
        case("TopologyHint not set", vec![], All(true)),
        case(
            "HintProvider returns empty non-nil map[string][]TopologyHint",
            vec![empty_map()],
            All(true),
        ),
        case(
            "HintProvider returns -nil map[string][]TopologyHint from provider",
            vec![nil_list("resource")],
            All(true),
        ),
        case(
            "HintProvider returns empty non-nil map[string][]TopologyHint from provider",
            vec![prov(&[("resource", vec![])])],
            All(false),
        ),
        case(
            "Single TopologyHint with Preferred as true and NUMANodeAffinity as nil",
            vec![prov(&[("resource", vec![nil(true)])])],
            All(true),
        ),
        case(
            "Single TopologyHint with Preferred as false and NUMANodeAffinity as nil",
            vec![prov(&[("resource", vec![nil(false)])])],
            All(false),
        ),
        case(
            "Two providers, 1 hint each, no common mask",
            two(vec![p(&[0])], vec![p(&[1])]),
            All(false),
        ),
        case(
            "Two providers, 1 hint each, same mask, 1 preferred, 1 not 1/2",
            two(vec![p(&[0])], vec![n(&[0])]),
            Hint(n(&[0])),
        ),
        case(
            "Two providers, 1 hint each, same mask, 1 preferred, 1 not 2/2",
            two(vec![p(&[1])], vec![n(&[1])]),
            Hint(n(&[1])),
        ),
        case(
            "Two providers, 1 hint each, 1 wider mask, both preferred 1/2",
            two(vec![p(&[0])], vec![p(&[0, 1])]),
            Hint(n(&[0])),
        ),
        case(
            "Two providers, 1 with 2 hints, 1 with single non-preferred hint matching",
            two(vec![p(&[0]), p(&[1])], vec![n(&[0, 1])]),
            Hint(n(&[0])),
        ),
        case(
            "Two providers, 1 hint each, 1 wider mask, both preferred 2/2",
            two(vec![p(&[1])], vec![p(&[0, 1])]),
            Hint(n(&[1])),
        ),
        case(
            "bestNonPreferredAffinityCount (1)",
            two(wide(), vec![n(&[0, 1])]),
            Hint(n(&[0, 1])),
        ),
        case(
            "bestNonPreferredAffinityCount (2)",
            two(wide(), vec![n(&[0, 3])]),
            Hint(n(&[0, 3])),
        ),
        case(
            "bestNonPreferredAffinityCount (3)",
            two(wide(), vec![n(&[1, 2])]),
            Hint(n(&[1, 2])),
        ),
        case(
            "bestNonPreferredAffinityCount (4)",
            two(wide(), vec![n(&[2, 3])]),
            Hint(n(&[2, 3])),
        ),
    ]
}

fn best_non_preferred_5_6(expected5: TopologyHint, expected6: TopologyHint) -> Vec<MergeCase> {
    let two = |a: Vec<TopologyHint>, b: Vec<TopologyHint>| {
        vec![prov(&[("resource1", a)]), prov(&[("resource2", b)])]
    };
    let wide = || vec![n(&[0, 1, 2, 3]), n(&[0, 1])];
    vec![
        case(
            "bestNonPreferredAffinityCount (5)",
            two(wide(), vec![n(&[1, 2]), n(&[2, 3])]),
            Hint(expected5),
        ),
        case(
            "bestNonPreferredAffinityCount (6)",
            two(
                wide(),
                vec![n(&[1, 2, 3]), n(&[1, 2]), n(&[1, 3]), n(&[2, 3])],
            ),
            Hint(expected6),
        ),
    ]
}

// §5 mergeTestCasesNoPolicies
fn merge_test_cases_no_policies() -> Vec<MergeCase> {
    best_non_preferred_5_6(n(&[1, 2]), n(&[1, 2]))
}

// §6 mergeTestCasesClosestNUMA
fn merge_test_cases_closest_numa() -> Vec<MergeCase> {
    let two = |a: Vec<TopologyHint>, b: Vec<TopologyHint>| {
        vec![prov(&[("resource1", a)]), prov(&[("resource2", b)])]
    };
    let mut v = vec![
        case(
            "Two providers, 2 hints each, same mask (some with different bits), same preferred",
            two(vec![p(&[0, 4]), p(&[0, 2])], vec![p(&[0, 4]), p(&[0, 2])]),
            Hint(p(&[0, 2])),
        ),
        case(
            "Two providers, 2 hints each, different mask",
            two(vec![p(&[4]), p(&[0, 2])], vec![p(&[4]), p(&[0, 2])]),
            Hint(p(&[4])),
        ),
    ];
    v.extend(best_non_preferred_5_6(n(&[2, 3]), n(&[2, 3])));
    v
}

// §7 single-numa-node mergeTestCases
fn single_numa_merge_test_cases() -> Vec<MergeCase> {
    let two = |a: Vec<TopologyHint>, b: Vec<TopologyHint>| {
        vec![prov(&[("resource1", a)]), prov(&[("resource2", b)])]
    };
    vec![
        case("TopologyHint not set", vec![], Hint(nil(true))),
        case(
            "HintProvider returns empty non-nil map[string][]TopologyHint",
            vec![empty_map()],
            Hint(nil(true)),
        ),
        case(
            "HintProvider returns -nil map[string][]TopologyHint from provider",
            vec![nil_list("resource")],
            Hint(nil(true)),
        ),
        case(
            "HintProvider returns empty non-nil map[string][]TopologyHint from provider",
            vec![prov(&[("resource", vec![])])],
            Hint(nil(false)),
        ),
        case(
            "Single TopologyHint with Preferred as true and NUMANodeAffinity as nil",
            vec![prov(&[("resource", vec![nil(true)])])],
            Hint(nil(true)),
        ),
        case(
            "Single TopologyHint with Preferred as false and NUMANodeAffinity as nil",
            vec![prov(&[("resource", vec![nil(false)])])],
            Hint(nil(false)),
        ),
        case(
            "Two providers, 1 hint each, no common mask",
            two(vec![p(&[0])], vec![p(&[1])]),
            Hint(nil(false)),
        ),
        case(
            "Two providers, 1 hint each, same mask, 1 preferred, 1 not 1/2",
            two(vec![p(&[0])], vec![n(&[0])]),
            Hint(nil(false)),
        ),
        case(
            "Two providers, 1 hint each, same mask, 1 preferred, 1 not 2/2",
            two(vec![p(&[1])], vec![n(&[1])]),
            Hint(nil(false)),
        ),
        case(
            "Two providers, 1 with 2 hints, 1 with single non-preferred hint matching",
            two(vec![p(&[0]), p(&[1])], vec![n(&[0, 1])]),
            Hint(nil(false)),
        ),
        case(
            "Single NUMA hint generation",
            vec![prov(&[
                ("resource1", vec![p(&[0, 1])]),
                ("resource2", vec![p(&[0]), p(&[1]), n(&[0, 1])]),
            ])],
            Hint(nil(false)),
        ),
        case(
            "One no-preference provider",
            vec![
                prov(&[("resource1", vec![p(&[0]), p(&[1]), n(&[0, 1])])]),
                None,
            ],
            Hint(p(&[0])),
        ),
    ]
}

fn best_effort_lists() -> Vec<MergeCase> {
    let mut v = common_policy_merge_test_cases();
    v.extend(best_effort_merge_test_cases());
    v.extend(merge_test_cases_no_policies());
    v
}

fn closest_lists() -> Vec<MergeCase> {
    let mut v = common_policy_merge_test_cases();
    v.extend(best_effort_merge_test_cases());
    v.extend(merge_test_cases_closest_numa());
    v
}

#[test]
fn test_policy_best_effort_merge() {
    test_policy_merge(
        &policy(PolicyKind::BestEffort, four_nodes(), false),
        best_effort_lists(),
    );
}

#[test]
fn test_policy_best_effort_merge_closest_numa() {
    test_policy_merge(
        &policy(PolicyKind::BestEffort, eight_nodes(), true),
        closest_lists(),
    );
}

#[test]
fn test_policy_restricted_merge() {
    test_policy_merge(
        &policy(PolicyKind::Restricted, four_nodes(), false),
        best_effort_lists(),
    );
}

#[test]
fn test_policy_restricted_merge_closest_numa() {
    test_policy_merge(
        &policy(PolicyKind::Restricted, eight_nodes(), true),
        closest_lists(),
    );
}

#[test]
fn test_policy_single_numa_node_merge() {
    let mut v = common_policy_merge_test_cases();
    v.extend(single_numa_merge_test_cases());
    test_policy_merge(&policy(PolicyKind::SingleNumaNode, four_nodes(), false), v);
}

/// none policy: Merge returns the zero hint and admits.
#[test]
fn test_policy_none_merge() {
    let pol = policy(PolicyKind::None, four_nodes(), false);
    assert_eq!(pol.kind.name(), "none");
    let got = pol.merge(&[prov(&[("resource", vec![p(&[0])])])]);
    assert_eq!(got.hint, TopologyHint::NONE);
    assert!(got.admit);
}

// ---------------------------------------------------------------------------------------
// §8 TestMaxOfMinAffinityCounts

#[test]
fn test_max_of_min_affinity_counts() {
    let cases: Vec<(Vec<Vec<TopologyHint>>, u32)> = vec![
        (vec![], 0),
        (vec![vec![p(&[])]], 0),
        (vec![vec![p(&[0])]], 1),
        (vec![vec![p(&[0, 1])]], 2),
        (vec![vec![p(&[0, 1]), p(&[0, 1, 2])]], 2),
        (
            vec![vec![p(&[0, 1]), p(&[0, 1, 2])], vec![p(&[0, 1, 2])]],
            3,
        ),
        (
            vec![
                vec![p(&[0, 1]), p(&[0, 1, 2])],
                vec![p(&[0, 1, 2]), p(&[0, 1, 2, 3])],
            ],
            3,
        ),
    ];
    for (lists, expected) in cases {
        assert_eq!(
            best_non_preferred_affinity_count(&lists),
            expected,
            "{lists:?}"
        );
    }
}

// ---------------------------------------------------------------------------------------
// §9 TestCompareHintsNarrowest

#[test]
fn test_compare_hints_narrowest() {
    #[derive(Debug, PartialEq, Clone, Copy)]
    enum Winner {
        Current,
        Candidate,
    }
    use Winner::{Candidate, Current};
    // Upstream passes B = -1 where the comparison never reads it (a preferred side or a
    // missing current); nmm's B is unsigned, 0 stands in for it there.
    let cases: Vec<(&str, u32, Option<TopologyHint>, TopologyHint, Winner)> = vec![
        (
            "candidate.NUMANodeAffinity.Count() == 0 (1)",
            0,
            None,
            n(&[]),
            Current,
        ),
        (
            "candidate.NUMANodeAffinity.Count() == 0 (2)",
            0,
            Some(p(&[])),
            n(&[]),
            Current,
        ),
        ("current == nil (1)", 0, None, p(&[0]), Candidate),
        ("current == nil (2)", 0, None, n(&[0]), Candidate),
        (
            "!current.Preferred && candidate.Preferred",
            0,
            Some(n(&[0])),
            p(&[0]),
            Candidate,
        ),
        (
            "current.Preferred && !candidate.Preferred",
            0,
            Some(p(&[0])),
            n(&[0]),
            Current,
        ),
        (
            "current.Preferred && candidate.Preferred (1)",
            0,
            Some(p(&[0])),
            p(&[0]),
            Current,
        ),
        (
            "current.Preferred && candidate.Preferred (2)",
            0,
            Some(p(&[0, 1])),
            p(&[0]),
            Candidate,
        ),
        (
            "current.Preferred && candidate.Preferred (3)",
            0,
            Some(p(&[0])),
            p(&[0, 1]),
            Current,
        ),
        (
            "!current.Preferred && !candidate.Preferred (1.1)",
            1,
            Some(n(&[0, 1])),
            n(&[0, 1]),
            Current,
        ),
        (
            "!current.Preferred && !candidate.Preferred (1.2)",
            1,
            Some(n(&[1, 2])),
            n(&[0, 1]),
            Candidate,
        ),
        (
            "!current.Preferred && !candidate.Preferred (1.3)",
            1,
            Some(n(&[0, 1])),
            n(&[1, 2]),
            Current,
        ),
        (
            "!current.Preferred && !candidate.Preferred (2.1)",
            2,
            Some(n(&[0, 1])),
            n(&[0]),
            Current,
        ),
        (
            "!current.Preferred && !candidate.Preferred (2.2)",
            2,
            Some(n(&[0, 1])),
            n(&[0, 1]),
            Current,
        ),
        (
            "!current.Preferred && !candidate.Preferred (2.3)",
            2,
            Some(n(&[1, 2])),
            n(&[0, 1]),
            Candidate,
        ),
        (
            "!current.Preferred && !candidate.Preferred (2.4)",
            2,
            Some(n(&[0, 1])),
            n(&[1, 2]),
            Current,
        ),
        (
            "!current.Preferred && !candidate.Preferred (3a)",
            2,
            Some(n(&[0])),
            n(&[0, 1, 2]),
            Current,
        ),
        (
            "!current.Preferred && !candidate.Preferred (3b)",
            2,
            Some(n(&[0])),
            n(&[0, 1]),
            Candidate,
        ),
        (
            "!current.Preferred && !candidate.Preferred (3ca.1)",
            3,
            Some(n(&[0])),
            n(&[0, 1]),
            Candidate,
        ),
        (
            "!current.Preferred && !candidate.Preferred (3ca.2)",
            3,
            Some(n(&[0])),
            n(&[1, 2]),
            Candidate,
        ),
        (
            "!current.Preferred && !candidate.Preferred (3ca.3)",
            4,
            Some(n(&[0, 1])),
            n(&[1, 2, 3]),
            Candidate,
        ),
        (
            "!current.Preferred && !candidate.Preferred (3cb)",
            4,
            Some(n(&[1, 2, 3])),
            n(&[0, 1]),
            Current,
        ),
        (
            "!current.Preferred && !candidate.Preferred (3cc.1)",
            4,
            Some(n(&[0, 1, 2])),
            n(&[0, 1, 2]),
            Current,
        ),
        (
            "!current.Preferred && !candidate.Preferred (3cc.2)",
            4,
            Some(n(&[0, 1, 2])),
            n(&[1, 2, 3]),
            Current,
        ),
        (
            "!current.Preferred && !candidate.Preferred (3cc.3)",
            4,
            Some(n(&[1, 2, 3])),
            n(&[0, 1, 2]),
            Candidate,
        ),
    ];
    let numa = NumaInfo::from_matrix(vec![]);
    let merger = Merger {
        numa: &numa,
        closest: false,
    };
    for (name, b, current, candidate, winner) in cases {
        let want = match winner {
            Current => current,
            Candidate => Some(candidate),
        };
        // Upstream checks object identity; hints are values here, so where current and
        // candidate are equal (1.1, 2.2, 3cc.1, preferred (1)) either answer passes.
        assert_eq!(merger.compare(current, candidate, b), want, "{name}");
    }
}

// ---------------------------------------------------------------------------------------
// §10 per-policy small tests

/// `CanAdmitPodResult` is not a separate function in nmm: admission is part of the merge
/// outcome. The cases feed providers whose merge yields `{nil-or-all, N}` / `{.., P}`.
#[test]
fn test_policy_can_admit_pod_result() {
    let not_preferred = vec![prov(&[("resource", vec![nil(false)])])];
    let preferred = vec![prov(&[("resource", vec![nil(true)])])];
    let cases = [
        (
            PolicyKind::BestEffort,
            "Preferred is set to false in topology hints",
            &not_preferred,
            true,
        ),
        (
            PolicyKind::BestEffort,
            "Preferred is set to true in topology hints",
            &preferred,
            true,
        ),
        (
            PolicyKind::Restricted,
            "Preferred is set to false in topology hints",
            &not_preferred,
            false,
        ),
        (
            PolicyKind::Restricted,
            "Preferred is set to true in topology hints",
            &preferred,
            true,
        ),
        (
            PolicyKind::SingleNumaNode,
            "Preferred is set to false in topology hints",
            &not_preferred,
            false,
        ),
    ];
    for (kind, name, providers, admit) in cases {
        let pol = policy(kind, two_nodes(), false);
        assert_eq!(pol.merge(providers).admit, admit, "{kind:?}: {name}");
    }
}

#[test]
fn test_policy_restricted_name() {
    assert_eq!(
        PolicyKind::Restricted.name(),
        "restricted",
        "New Restricted Policy"
    );
}

#[test]
fn test_policy_single_numa_node_filter_hints() {
    // A filtered list with no survivors is a nil list upstream; here simply empty.
    let cases: Vec<(&str, Vec<Vec<TopologyHint>>, Vec<Vec<TopologyHint>>)> = vec![
        ("filter empty resources", vec![], vec![]),
        (
            "filter hints with nil socket mask 1/2",
            vec![vec![nil(false)], vec![nil(true)]],
            vec![vec![], vec![nil(true)]],
        ),
        (
            "filter hints with nil socket mask 2/2",
            vec![vec![p(&[0]), nil(false)], vec![p(&[1]), nil(true)]],
            vec![vec![p(&[0])], vec![p(&[1]), nil(true)]],
        ),
        (
            "filter hints with empty resource socket mask",
            vec![vec![p(&[1]), p(&[0]), nil(false)], vec![]],
            vec![vec![p(&[1]), p(&[0])], vec![]],
        ),
        (
            "filter hints with wide sockemask",
            vec![
                vec![p(&[0]), p(&[1]), n(&[1, 2]), n(&[0, 1, 2]), nil(false)],
                vec![n(&[1, 2]), n(&[0, 1, 2]), n(&[0, 2]), n(&[3])],
                vec![n(&[1, 2]), n(&[0, 1, 2]), n(&[0, 2])],
            ],
            vec![vec![p(&[0]), p(&[1])], vec![], vec![]],
        ),
    ];
    for (name, input, expected) in cases {
        assert_eq!(filter_single_numa(input), expected, "{name}");
    }
}

// ---------------------------------------------------------------------------------------
// §11 numa_info_test.go

fn numa_machine(nodes: &[(u32, Vec<u64>)]) -> Machine {
    Machine {
        nodes: nodes
            .iter()
            .map(|(id, d)| NumaNode {
                id: *id,
                cpus: Default::default(),
                memory: 0,
                hugepages: BTreeMap::new(),
                distances: d.clone(),
            })
            .collect(),
        cpus: vec![],
    }
}

/// `NewNUMAInfo`. nmm keeps distances whether or not `prefer-closest-numa-nodes` is set
/// (they are only read when it is), so the "without" cases check the node set; the "with"
/// cases also check that every node has distances and the distances read back. The
/// missing-distances error is raised by `TopologyManager::new`.
#[test]
fn test_numa_info() {
    let four = four_nodes();
    let cases: Vec<(&str, Vec<(u32, Vec<u64>)>, bool)> = vec![
        ("positive test 1 node", vec![(0, vec![])], false),
        (
            "positive test 1 node, with PreferClosestNUMA",
            vec![(0, four[0].clone())],
            true,
        ),
        (
            "positive test 2 nodes",
            vec![(0, vec![]), (1, vec![])],
            false,
        ),
        (
            "positive test 2 nodes, with PreferClosestNUMA",
            vec![(0, four[0].clone()), (1, four[1].clone())],
            true,
        ),
        (
            "positive test 3 nodes",
            vec![(0, vec![]), (1, vec![]), (2, vec![])],
            false,
        ),
        (
            "positive test 3 nodes, with PreferClosestNUMA",
            (0..3).map(|i| (i, four[i as usize].clone())).collect(),
            true,
        ),
        (
            "positive test 4 nodes",
            (0..4).map(|i| (i, vec![])).collect(),
            false,
        ),
        (
            "positive test 4 nodes, with PreferClosestNUMA",
            (0..4).map(|i| (i, four[i as usize].clone())).collect(),
            true,
        ),
        ("one node and its id is 1", vec![(1, vec![])], false),
        (
            "one node and its id is 1, with PreferClosestNUMA",
            vec![(1, four[1].clone())],
            true,
        ),
        (
            "two nodes not sequential",
            vec![(0, four[0].clone()), (2, four[2].clone())],
            false,
        ),
        (
            "two nodes not sequential, with PreferClosestNUMA",
            vec![(0, four[0].clone()), (2, four[2].clone())],
            true,
        ),
    ];
    for (name, nodes, closest) in cases {
        let info = NumaInfo::new(&numa_machine(&nodes));
        let ids: Vec<i64> = nodes.iter().map(|(i, _)| *i as i64).collect();
        assert_eq!(info.all, m(&ids), "{name}");
        if closest {
            assert!(info.has_distances(), "{name}");
            // The distances read back: the average over {i, j} is the mean of the four
            // matrix entries d[i][i], d[i][j], d[j][i], d[j][j].
            let row = |i: u32| &nodes.iter().find(|(k, _)| *k == i).unwrap().1;
            for (i, _) in &nodes {
                for (j, _) in &nodes {
                    let (i, j) = (*i, *j);
                    let want = if i == j {
                        row(i)[i as usize] as f64
                    } else {
                        (row(i)[i as usize]
                            + row(i)[j as usize]
                            + row(j)[i as usize]
                            + row(j)[j as usize]) as f64
                            / 4.0
                    };
                    assert_eq!(
                        info.average_distance(m(&[i as i64, j as i64])),
                        want,
                        "{name}"
                    );
                }
            }
        }
    }

    let name = "negative test 1 node, no distance file with PreferClosestNUMA";
    let config = KubeletConfig {
        topology_manager_policy: Some("best-effort".into()),
        topology_manager_policy_options: Some(
            [("prefer-closest-numa-nodes".to_string(), "true".to_string())].into(),
        ),
        ..Default::default()
    };
    let e = TopologyManager::new(&numa_machine(&[(9, vec![])]), &config).unwrap_err();
    assert!(
        e.contains("error getting NUMA distances from cadvisor"),
        "{name}: {e}"
    );
}

#[test]
fn test_calculate_avg_distance_for() {
    let cases: Vec<(&str, NumaMask, Vec<Vec<u64>>, f64)> = vec![
        ("1 NUMA node", m(&[0]), vec![vec![10]], 10.0),
        ("2 NUMA node, 1 set in bitmask", m(&[0]), two_nodes(), 10.0),
        (
            "2 NUMA node, 2 set in bitmask",
            m(&[0, 1]),
            two_nodes(),
            10.5,
        ),
        (
            "4 NUMA node, 2 set in bitmask",
            m(&[0, 2]),
            four_nodes(),
            11.0,
        ),
        (
            "4 NUMA node, 3 set in bitmask",
            m(&[0, 2, 3]),
            four_nodes(),
            11.11111111111111,
        ),
        ("0 NUMA node, 0 set in bitmask", m(&[]), vec![], 0.0),
    ];
    for (name, mask, distances, expected) in cases {
        let info = NumaInfo::from_matrix(distances);
        assert_eq!(info.average_distance(mask), expected, "{name}");
    }
}

#[test]
fn test_closest() {
    let all10 = |k: usize| vec![vec![10u64; k]; k];
    let cases: Vec<(&str, NumaMask, NumaMask, Vec<Vec<u64>>, bool)> = vec![
        (
            "current and candidate length is not the same, current narrower",
            m(&[0]),
            m(&[0, 2]),
            vec![],
            false,
        ),
        (
            "current and candidate length is the same, distance is the same, current more lower bits set",
            m(&[0, 1]),
            m(&[0, 2]),
            all10(3),
            false,
        ),
        (
            "current and candidate length is the same, distance is the same, candidate more lower bits set",
            m(&[0, 3]),
            m(&[0, 2]),
            all10(4),
            true,
        ),
        (
            "current and candidate length is the same, candidate average distance is smaller",
            m(&[0, 3]),
            m(&[0, 1]),
            four_nodes(),
            true,
        ),
        (
            "current and candidate length is the same, current average distance is smaller",
            m(&[2, 3]),
            m(&[0, 3]),
            four_nodes(),
            false,
        ),
    ];
    for (name, current, candidate, distances, candidate_wins) in cases {
        let info = NumaInfo::from_matrix(distances);
        let want = if candidate_wins { candidate } else { current };
        // Called as upstream does: Closest(candidate, current).
        assert_eq!(info.closest(candidate, current), want, "{name}");
    }
}

// ---------------------------------------------------------------------------------------
// §12 policy_options_test.go

fn gates(beta: Option<bool>) -> KubeletConfig {
    KubeletConfig {
        feature_gates: beta.map(|b| [("TopologyManagerPolicyBetaOptions".to_string(), b)].into()),
        ..Default::default()
    }
}

/// `TestNewTopologyManagerOptions`. v1.32.10 words the gate errors capitalised
/// (`Topology Manager Policy Beta-level Options not enabled, …`, topology-cpu.md §A.8);
/// the catalogue's lower-case text is from a later release. The fake options upstream
/// registers (`fancy-new-option`, `fancy-alpha-option`; cases "test beta/alpha options
/// success/fail") cannot be registered in nmm and are not ported.
#[test]
fn test_new_topology_manager_options() {
    type Expect = Result<(bool, i64), &'static str>;
    let cases: Vec<(&str, Option<bool>, Vec<(&str, &str)>, Expect)> = vec![
        (
            "return TopologyManagerOptions with PreferClosestNUMA set to true",
            None,
            vec![
                ("prefer-closest-numa-nodes", "true"),
                ("max-allowable-numa-nodes", "8"),
            ],
            Ok((true, 8)),
        ),
        (
            "return TopologyManagerOptions with MaxAllowableNUMANodes set to 12",
            Some(true),
            vec![("max-allowable-numa-nodes", "12")],
            Ok((false, 12)),
        ),
        (
            "fail to set option when TopologyManagerPolicyBetaOptions feature gate is not set",
            Some(false),
            vec![("max-allowable-numa-nodes", "8")],
            Err("Topology Manager Policy Beta-level Options not enabled,"),
        ),
        (
            "return empty TopologyManagerOptions",
            None,
            vec![],
            Ok((false, 8)),
        ),
        (
            "fail to parse options with error PreferClosestNUMANodes",
            None,
            vec![("prefer-closest-numa-nodes", "not a boolean")],
            Err("bad value for option"),
        ),
        (
            "fail to parse options with error MaxAllowableNUMANodes",
            None,
            vec![("max-allowable-numa-nodes", "can't parse to int")],
            Err("unable to convert policy option to integer"),
        ),
    ];
    for (name, beta, opts, expected) in cases {
        let opts: BTreeMap<String, String> = opts
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let got = parse_policy_options(&opts, &gates(beta));
        match expected {
            Ok((closest, max)) => {
                let o = got.unwrap_or_else(|e| panic!("{name}: {e}"));
                assert_eq!(
                    o,
                    PolicyOptions {
                        prefer_closest_numa: closest,
                        max_allowable_numa_nodes: max
                    },
                    "{name}"
                );
            }
            Err(e) => {
                let got = got.unwrap_err();
                assert!(got.contains(e), "{name}: {got}");
            }
        }
    }
}

/// `TestPolicyDefaultsAvailable` / `TestPolicyOptionsAvailable` (real options only),
/// through the option parser: unavailable options are rejected by name.
#[test]
fn test_policy_options_available() {
    let cases: Vec<(&str, Option<bool>, bool)> = vec![
        ("this-option-does-not-exist", None, false),
        ("this-option-does-not-exist", Some(false), false),
        ("this-option-does-not-exist", Some(true), false),
        ("prefer-closest-numa-nodes", None, true),
        ("prefer-closest-numa-nodes", Some(false), true),
        ("max-allowable-numa-nodes", None, true),
    ];
    for (option, beta, available) in cases {
        let value = if option == "max-allowable-numa-nodes" {
            "8"
        } else {
            "true"
        };
        let opts: BTreeMap<String, String> = [(option.to_string(), value.to_string())].into();
        let got = parse_policy_options(&opts, &gates(beta));
        assert_eq!(
            got.is_ok(),
            available,
            "{option} (beta gate {beta:?}): {got:?}"
        );
        if !available {
            assert_eq!(
                got.unwrap_err(),
                format!("unknown Topology Manager Policy option: \"{option}\"")
            );
        }
    }
}

// ---------------------------------------------------------------------------------------
// §13 topology_manager_test.go

fn tm_config(policy: &str, scope: &str, options: &[(&str, &str)]) -> KubeletConfig {
    KubeletConfig {
        topology_manager_policy: Some(policy.into()),
        topology_manager_scope: Some(scope.into()),
        topology_manager_policy_options: if options.is_empty() {
            None
        } else {
            Some(
                options
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            )
        },
        ..Default::default()
    }
}

#[test]
fn test_new_manager() {
    let nil_topology = Machine::default();
    let no_distances = numa_machine(&[(0, vec![])]);
    let nine = numa_machine(&(0..9).map(|i| (i, vec![])).collect::<Vec<_>>());
    let cases: Vec<(&str, &str, Vec<(&str, &str)>, &Machine, Result<&str, &str>)> = vec![
        (
            "Policy is set to none",
            "none",
            vec![],
            &nil_topology,
            Ok("none"),
        ),
        (
            "Policy is set to best-effort",
            "best-effort",
            vec![],
            &nil_topology,
            Ok("best-effort"),
        ),
        (
            "Policy is set to restricted",
            "restricted",
            vec![],
            &nil_topology,
            Ok("restricted"),
        ),
        (
            "Policy is set to single-numa-node",
            "single-numa-node",
            vec![],
            &nil_topology,
            Ok("single-numa-node"),
        ),
        (
            "Policy is set to unknown",
            "unknown",
            vec![],
            &nil_topology,
            Err("unknown policy: \"unknown\""),
        ),
        (
            "Unknown policy name best-effort policy",
            "best-effort",
            vec![("unknown-option", "true")],
            &nil_topology,
            Err("unknown Topology Manager Policy option:"),
        ),
        (
            "Unknown policy name restricted policy",
            "restricted",
            vec![("unknown-option", "true")],
            &nil_topology,
            Err("unknown Topology Manager Policy option:"),
        ),
        (
            "can't get NUMA distances",
            "best-effort",
            vec![("prefer-closest-numa-nodes", "true")],
            &no_distances,
            Err("error getting NUMA distances from cadvisor"),
        ),
        (
            "more than 8 NUMA nodes",
            "best-effort",
            vec![],
            &nine,
            Err("unsupported on machines with more than 8 NUMA Nodes"),
        ),
    ];
    for (name, pol, opts, machine, expected) in cases {
        let got = TopologyManager::new(machine, &tm_config(pol, "container", &opts));
        match expected {
            Ok(kind) => {
                let tm = got.unwrap_or_else(|e| panic!("{name}: {e}"));
                assert_eq!(tm.policy.kind.name(), kind, "{name}");
            }
            Err(e) => {
                let got = got.unwrap_err();
                assert!(got.contains(e), "{name}: {got}");
            }
        }
    }
}

#[test]
fn test_manager_scope() {
    let machine = Machine::default();
    let cases: Vec<(&str, Result<Scope, &str>)> = vec![
        ("container", Ok(Scope::Container)),
        ("pod", Ok(Scope::Pod)),
        ("unknown", Err("unknown scope: \"unknown\"")),
    ];
    for (scope, expected) in cases {
        let got = TopologyManager::new(&machine, &tm_config("best-effort", scope, &[]))
            .map(|tm| tm.scope);
        assert_eq!(got, expected.map_err(str::to_string), "scope {scope}");
    }
}

/// A hint provider answering fixed hints (`mockHintProvider`).
struct FixedProvider(ProviderHints);

impl HintProvider for FixedProvider {
    fn name(&self) -> &'static str {
        "mock"
    }
    fn get_topology_hints(&mut self, _: &PodInfo, _: &ContainerInfo) -> ProviderHints {
        self.0.clone()
    }
    fn get_pod_topology_hints(&mut self, _: &PodInfo) -> ProviderHints {
        self.0.clone()
    }
    fn allocate(
        &mut self,
        _: &PodInfo,
        _: &ContainerInfo,
        _: TopologyHint,
    ) -> Result<(), ProviderError> {
        Ok(())
    }
}

#[test]
fn test_admit() {
    let machine = numa_machine(&[(0, vec![10, 11]), (1, vec![11, 10])]);
    let r = |l: Vec<TopologyHint>| Some(vec![prov(&[("resource", l)])]);
    // (name, policy, providers: None = no providers, admit)
    let cases: Vec<(&str, &str, Option<Vec<ProviderHints>>, bool)> = vec![
        (
            "QOSClass set as BestEffort. None Policy. No Hints.",
            "none",
            None,
            true,
        ),
        (
            "QOSClass set as Guaranteed. None Policy. No Hints.",
            "none",
            None,
            true,
        ),
        (
            "QOSClass set as BestEffort. single-numa-node Policy. No Hints.",
            "single-numa-node",
            Some(vec![None]),
            true,
        ),
        (
            "QOSClass set as BestEffort. Restricted Policy. No Hints.",
            "restricted",
            Some(vec![None]),
            true,
        ),
        (
            "QOSClass set as Guaranteed. BestEffort Policy. Preferred Affinity.",
            "best-effort",
            r(vec![p(&[0]), n(&[0, 1])]),
            true,
        ),
        (
            "QOSClass set as Guaranteed. BestEffort Policy. More than one Preferred Affinity.",
            "best-effort",
            r(vec![p(&[0]), p(&[1]), n(&[0, 1])]),
            true,
        ),
        (
            "QOSClass set as Burstable. BestEffort Policy. More than one Preferred Affinity.",
            "best-effort",
            r(vec![p(&[0]), p(&[1]), n(&[0, 1])]),
            true,
        ),
        (
            "QOSClass set as Guaranteed. BestEffort Policy. No Preferred Affinity.",
            "best-effort",
            r(vec![n(&[0, 1])]),
            true,
        ),
        (
            "QOSClass set as Guaranteed. Restricted Policy. Preferred Affinity.",
            "restricted",
            r(vec![p(&[0]), n(&[0, 1])]),
            true,
        ),
        (
            "QOSClass set as Burstable. Restricted Policy. Preferred Affinity.",
            "restricted",
            r(vec![p(&[0]), n(&[0, 1])]),
            true,
        ),
        (
            "QOSClass set as Guaranteed. Restricted Policy. More than one Preferred affinity.",
            "restricted",
            r(vec![p(&[0]), p(&[1]), n(&[0, 1])]),
            true,
        ),
        (
            "QOSClass set as Burstable. Restricted Policy. More than one Preferred affinity.",
            "restricted",
            r(vec![p(&[0]), p(&[1]), n(&[0, 1])]),
            true,
        ),
        (
            "QOSClass set as Guaranteed. Restricted Policy. No Preferred affinity.",
            "restricted",
            r(vec![n(&[0, 1])]),
            false,
        ),
        (
            "QOSClass set as Burstable. Restricted Policy. No Preferred affinity.",
            "restricted",
            r(vec![n(&[0, 1])]),
            false,
        ),
    ];
    for (name, pol, providers, admit) in cases {
        let qos = name
            .strip_prefix("QOSClass set as ")
            .and_then(|s| s.split('.').next())
            .unwrap();
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"uid": "fakeUID", "name": "fakePod"},
            "spec": {"containers": [{"name": "fakeContainer"}]},
            "status": {"qosClass": qos},
        }))
        .unwrap();
        let pod = PodInfo::from_pod(&pod, false).unwrap();
        for scope in ["container", "pod"] {
            let mut tm = TopologyManager::new(&machine, &tm_config(pol, scope, &[])).unwrap();
            let mut fakes: Vec<FixedProvider> = providers
                .clone()
                .unwrap_or_default()
                .into_iter()
                .map(FixedProvider)
                .collect();
            let mut refs: Vec<&mut dyn HintProvider> = fakes
                .iter_mut()
                .map(|f| f as &mut dyn HintProvider)
                .collect();
            let adm = tm.admit(&pod, &mut refs);
            assert_eq!(adm.admitted, admit, "{name} ({scope} scope)");
            if !admit {
                assert_eq!(
                    adm.reason.as_deref(),
                    Some("TopologyAffinityError"),
                    "{name} ({scope} scope)"
                );
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// §14 bitmask_test.go. nmm's `NumaMask` is a value type without `String()`, `Add` or
// `Remove`; the cases that map onto its API are ported (masks compared by value, an
// out-of-range bit is an error at construction rather than ignored).

#[test]
fn test_bitmask() {
    // TestNewBitMask / TestNewEmptyiBitMask
    assert_eq!(NumaMask::EMPTY.0, 0b00, "New empty BitMask");
    assert_eq!(m(&[0]).0, 0b01);
    assert_eq!(m(&[1]).0, 0b10);
    assert_eq!(m(&[0, 1]).0, 0b11);
    // TestAdd: bits outside 0-63
    assert!(
        NumaMask::from_ids([-1, 64]).is_err(),
        "Add BitMask with bits outside range 0-63"
    );
    // TestAnd
    assert_eq!(m(&[0, 1]).and(m(&[0, 1])), m(&[0, 1]));
    assert_eq!(m(&[0, 1]).and(m(&[1])), m(&[1]));
    assert_eq!(m(&[0]).and(m(&[0, 1])), m(&[0]));
    assert_eq!(m(&[0, 1]).and(m(&[0, 1])).and(m(&[1])), m(&[1]));
    assert_eq!(m(&[0]).and(m(&[0])).and(m(&[1])).and(m(&[0, 1])), m(&[]));
    assert_eq!(
        m(&[0, 1, 2, 3])
            .and(m(&[1, 2, 3]))
            .and(m(&[2, 3]))
            .and(m(&[3])),
        m(&[3])
    );
    // TestOr
    assert_eq!(m(&[0]).or(m(&[])), m(&[0]));
    assert_eq!(m(&[1]).or(m(&[1])), m(&[1]));
    assert_eq!(m(&[0]).or(m(&[1])), m(&[0, 1]));
    assert_eq!(m(&[0, 1]).or(m(&[0, 1])), m(&[0, 1]));
    assert_eq!(m(&[0]).or(m(&[1])).or(m(&[0, 1])), m(&[0, 1]));
    assert_eq!(
        m(&[3]).or(m(&[2])).or(m(&[1])).or(m(&[0])),
        m(&[0, 1, 2, 3])
    );
    // TestIsEmpty
    assert!(NumaMask::EMPTY.is_empty());
    assert!(!m(&[0]).is_empty());
    assert!(!m(&[0, 1]).is_empty());
    // TestIsSet
    assert!(!NumaMask::EMPTY.is_set(0));
    assert!(m(&[0]).is_set(0));
    assert!(m(&[0, 1]).is_set(1));
    assert!(!m(&[0, 1]).is_set(64));
    // TestIsEqual
    assert_eq!(NumaMask::EMPTY, NumaMask::EMPTY);
    assert_ne!(NumaMask::EMPTY, m(&[0]));
    assert_eq!(m(&[0]), m(&[0]));
    assert_ne!(m(&[0]), m(&[1]));
    assert_eq!(m(&[0, 1]), m(&[0, 1]));
    // TestCount
    assert_eq!(NumaMask::EMPTY.count(), 0);
    assert_eq!(m(&[0]).count(), 1);
    assert_eq!(m(&[0, 1]).count(), 2);
    // TestGetBits
    assert_eq!(NumaMask::EMPTY.to_vec(), Vec::<u32>::new());
    assert_eq!(m(&[0]).to_vec(), vec![0]);
    assert_eq!(m(&[0, 1]).to_vec(), vec![0, 1]);
    // TestIsNarrowerThan
    assert!(m(&[0]).is_narrower_than(m(&[0, 1])));
    assert!(!m(&[0, 1]).is_narrower_than(m(&[0])));
    assert!(m(&[0]).is_narrower_than(m(&[1])));
    assert!(!m(&[1]).is_narrower_than(m(&[0])));
}

#[test]
fn test_iterate_bit_masks() {
    for numbits in [1u32, 2, 4, 8, 16] {
        let ids: Vec<u32> = (0..numbits).collect();
        let mut count = 0u64;
        iterate_masks(&ids, |_| count += 1);
        assert_eq!(count, (1u64 << numbits) - 1, "{numbits} bits");
    }
}
