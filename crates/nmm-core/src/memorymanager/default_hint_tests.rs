//! The default and extended hints of `Allocate` (`best_memory_hint`) on the described-list
//! path — the lowest single-node member found directly, the family's minAffinitySize
//! without a search — equal `findBestHint` over the listed hints (`calculateHints`), on
//! random machine states: groups, assignments, reusable init-container memory, and
//! allocatable memory that wraps Go's uint64 sums.

use super::*;
use proptest::prelude::*;

const GI: u64 = 1 << 30;
const POD: &str = "pod";
const RESOURCES: [&str; 2] = [MEMORY, "hugepages-1Gi"];

/// One node: per resource (allocatable GiB or wrapped, free GiB), group partner, assignments.
type NodeSpec = (Vec<(u64, bool, u64)>, Option<u32>, i64);

fn state(nodes: &[NodeSpec], reusable: &[(u64, u64, u64)]) -> StaticPolicy {
    let n = nodes.len() as u32;
    let mut p = StaticPolicy::default();
    for (id, (tables, partner, assignments)) in nodes.iter().enumerate() {
        let id = id as u32;
        let mut ns = NumaNodeState {
            number_of_assignments: *assignments,
            cells: vec![id],
            ..Default::default()
        };
        if let Some(o) = partner.map(|o| o % n).filter(|&o| o != id) {
            ns.cells = vec![id.min(o), id.max(o)];
        }
        for (r, &(alloc, wrap, free)) in RESOURCES.iter().zip(tables) {
            let allocatable = if wrap {
                u64::MAX - alloc * GI
            } else {
                alloc * GI
            };
            ns.memory_map.insert(
                r.to_string(),
                MemoryTable {
                    allocatable,
                    free: (free * GI).min(allocatable),
                    ..Default::default()
                },
            );
        }
        p.machine_state.insert(id, ns);
    }
    let per_pod = p.reusable.entry(POD.to_string()).or_default();
    for &(bits, mem, huge) in reusable {
        let mask = NumaMask(bits & ((1u64 << n) - 1));
        if !mask.is_empty() {
            let e = per_pod.entry(mask).or_default();
            e.insert(MEMORY.to_string(), mem * GI);
            e.insert("hugepages-1Gi".to_string(), huge * GI);
        }
    }
    p
}

fn node() -> impl Strategy<Value = NodeSpec> {
    (
        proptest::collection::vec((0u64..=12, prop::bool::weighted(0.1), 0u64..=12), 2),
        prop::option::weighted(0.2, 0u32..8),
        prop_oneof![3 => Just(0i64), 1 => 1i64..=2],
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3000))]
    #[test]
    fn described_default_and_extended_hints_equal_the_listed_ones(
        nodes in proptest::collection::vec(node(), 1..=7),
        reusable in proptest::collection::vec((0u64..128, 0u64..=4, 0u64..=2), 0..=3),
        mem in 1u64..=20,
        huge in prop::option::weighted(0.3, 0u64..=6),
        base_bits in 0u64..128,
    ) {
        let mut p = state(&nodes, &reusable);
        let mut req: Requests = [(MEMORY.to_string(), mem * GI)].into();
        if let Some(h) = huge {
            req.insert("hugepages-1Gi".to_string(), h * GI);
        }
        let n = nodes.len() as u32;
        let base = NumaMask(base_bits & ((1u64 << n) - 1));
        for base in [NumaMask::EMPTY, base] {
            p.large = false;
            let listed = p.best_memory_hint(POD, &req, base);
            p.large = true;
            let described = p.best_memory_hint(POD, &req, base);
            prop_assert_eq!(described, listed, "base {:?}", base);
            // the same after the hints found no member (Allocate then reuses that)
            let _ = p.family_hints(POD, &req);
            prop_assert_eq!(p.best_memory_hint(POD, &req, base), listed, "base {:?}", base);
        }
        // The direct answer, where there is one, is findBestHint's.
        if let Some(id) = p.first_single_member(POD, &req) {
            p.large = false;
            prop_assert_eq!(
                p.best_memory_hint(POD, &req, NumaMask::EMPTY),
                Some(TopologyHint::new(NumaMask::single(id), true))
            );
        }
    }
}

/// `Allocate` answers "no member" from the hints' family only while the books read the
/// same: once a node has room, the default hint is found.
#[test]
fn no_member_memo_follows_the_books() {
    let node: NodeSpec = (vec![(4, false, 4), (0, false, 0)], None, 0);
    let mut p = state(&[node.clone(), node], &[]);
    p.large = true;
    let req: Requests = [(MEMORY.to_string(), 10 * GI)].into();
    assert!(p.family_hints(POD, &req).is_some_and(|m| m.is_empty()));
    assert!(p.no_member.is_some());
    assert_eq!(p.best_memory_hint(POD, &req, NumaMask::EMPTY), None);
    let mut books = p.machine_state().clone();
    let t = books
        .get_mut(&1)
        .and_then(|ns| ns.memory_map.get_mut(MEMORY))
        .expect("node 1 memory");
    t.allocatable = 12 * GI;
    t.free = 12 * GI;
    p.set_machine_state(books);
    assert_eq!(
        p.best_memory_hint(POD, &req, NumaMask::EMPTY),
        Some(TopologyHint::new(NumaMask::single(1), true))
    );
}
