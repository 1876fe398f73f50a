//! On heterogeneous 16-64-node machines filling up over 150 steps (CPU-less nodes,
//! uneven memory, nodes with and without each hugepage size, wrapped allocatable
//! memory, multi-container pods, removals), under every policy, both scopes and
//! prefer-closest on and off, the engine decides every admission: none ends in an
//! `nmm:` error (the kubelet's merge has a definite result for every pod).

#[path = "support/hetero.rs"]
mod hetero;

use hetero::{config, machine, ops, Op, Rng, Shape};
use nmm_core::node::{Node, StartOptions};

const POLICIES: [&str; 4] = ["best-effort", "restricted", "single-numa-node", "none"];

#[test]
fn no_admission_is_refused_on_large_heterogeneous_machines() {
    let mut run = 0u64;
    let mut decided = 0usize;
    for nodes in [16u32, 24, 34, 48, 64] {
        // every policy x scope x prefer-closest appears across the sizes
        for k in 0..4u64 {
            let combo = run * 5 + k;
            run += 1;
            let policy = POLICIES[(combo % 4) as usize];
            let scope = if (combo / 4).is_multiple_of(2) {
                "container"
            } else {
                "pod"
            };
            let closest = combo / 8 % 2 == 1;
            let mut rng = Rng(0x5eed ^ (nodes as u64) << 8 ^ combo);
            let shape = Shape {
                nodes,
                memory_types: 1 + (combo % 4) as usize,
                wrap_percent: 10,
            };
            let m = machine(shape, &mut rng);
            let what = format!("{nodes} nodes, {policy}, {scope} scope, closest {closest}");
            let mut node = Node::start(
                m,
                config(policy, scope, closest, nodes),
                StartOptions::default(),
            )
            .unwrap_or_else(|e| panic!("{what}: start: {e:?}"));
            let mut live: Vec<String> = Vec::new();
            for (i, op) in ops(150, shape, &mut rng).into_iter().enumerate() {
                match op {
                    Op::Admit(p) => {
                        let r = node
                            .admit(&p)
                            .unwrap_or_else(|e| panic!("{what}: step {i}: {e:?}"));
                        let msg = r.message.clone().unwrap_or_default();
                        assert!(!msg.starts_with("nmm:"), "{what}: step {i}: {msg}");
                        decided += 1;
                        if r.admitted {
                            live.push(r.uid);
                        }
                    }
                    Op::Remove(k) if !live.is_empty() => {
                        let uid = live.remove(k % live.len());
                        node.remove(&uid);
                    }
                    Op::Remove(_) => {}
                }
            }
        }
    }
    assert!(decided > 2000, "only {decided} admissions ran");
}
