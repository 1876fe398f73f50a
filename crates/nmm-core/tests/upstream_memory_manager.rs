//! The kubelet's Memory Manager unit tests (`pkg/kubelet/cm/memorymanager`, v1.32 shape),
//! ported case by case from `shared/reference/memory-manager-tests.md` onto nmm's public API.
//!
//! One `#[test]` per upstream test function; every case carries its upstream description
//! string. Block lists are compared order-insensitively (as upstream does; nmm sorts
//! blocks by resource name), hint lists exactly.

// Case tables are tuples, as upstream's are anonymous structs.
#![allow(clippy::type_complexity)]

use k8s_openapi::api::core::v1::Pod;
use nmm_core::bitmask::NumaMask;
use nmm_core::checkpoint::memory::{decode_v132, encode};
use nmm_core::kubelet_config::{KubeletConfig, MemoryReservation};
use nmm_core::machine::{Machine, NumaNode};
use nmm_core::memorymanager::policy_static::{
    default_machine_state, pod_requests, Requests, StaticPolicy, SystemReserved,
};
use nmm_core::memorymanager::reserved_memory::system_reserved_memory;
use nmm_core::memorymanager::state::{
    Assignments, Block, MachineState, MemoryTable, NumaNodeState,
};
use nmm_core::memorymanager::MemoryManager;
use nmm_core::pod::PodInfo;
use nmm_core::quantity::Quantity;
use nmm_core::topology::hint::{ProviderHints, TopologyHint};
use nmm_core::topology::HintProvider;
use serde_json::{json, Value};
use std::collections::BTreeMap;

const MI: u64 = 1 << 20;
const GI: u64 = 1 << 30;
const MEM: &str = "memory";
const HP: &str = "hugepages-1Gi";
const HP2M: &str = "hugepages-2Mi";

// ---------------------------------------------------------------------------------------
// Fixtures

/// A memory table: (allocatable, free, reserved, systemReserved, total).
fn t(allocatable: u64, free: u64, reserved: u64, system_reserved: u64, total: u64) -> MemoryTable {
    MemoryTable {
        total,
        system_reserved,
        allocatable,
        reserved,
        free,
    }
}

fn node(asg: i64, cells: &[u32], tables: &[(&str, MemoryTable)]) -> NumaNodeState {
    NumaNodeState {
        number_of_assignments: asg,
        memory_map: tables.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
        cells: cells.to_vec(),
    }
}

fn ms(nodes: Vec<(u32, NumaNodeState)>) -> MachineState {
    nodes.into_iter().collect()
}

fn blk(numa: &[u32], kind: &str, size: u64) -> Block {
    Block {
        numa_affinity: numa.to_vec(),
        kind: kind.to_string(),
        size,
    }
}

fn asg(entries: Vec<(&str, &str, Vec<Block>)>) -> Assignments {
    let mut a = Assignments::new();
    for (p, c, b) in entries {
        a.get_or_default(p).insert(c.to_string(), b);
    }
    a
}

/// Blocks sorted by type then affinity: upstream compares them order-insensitively.
fn norm(mut a: Assignments) -> Assignments {
    for ctrs in a.values_mut() {
        for blocks in ctrs.values_mut() {
            blocks.sort_by(|x, y| (&x.kind, &x.numa_affinity).cmp(&(&y.kind, &y.numa_affinity)));
        }
    }
    a
}

fn reserved(nodes: &[(u32, &[(&str, u64)])]) -> SystemReserved {
    nodes
        .iter()
        .map(|(n, rs)| (*n, rs.iter().map(|(k, v)| (k.to_string(), *v)).collect()))
        .collect()
}

/// Nodes (id, MemTotal, number of 1Gi pages).
fn machine(nodes: &[(u32, u64, u64)]) -> Machine {
    Machine {
        nodes: nodes
            .iter()
            .map(|&(id, memory, pages)| NumaNode {
                id,
                cpus: Default::default(),
                memory,
                hugepages: [(GI, pages * GI)].into(),
                distances: vec![],
            })
            .collect(),
        cpus: vec![],
    }
}

/// `returnMachineInfo()`: 2 NUMA nodes, 10Gi each, 5 pages of 1Gi.
fn return_machine_info() -> Machine {
    machine(&[(0, 10 * GI, 5), (1, 10 * GI, 5)])
}

fn rl(pairs: &[(&str, &str)]) -> Value {
    Value::Object(
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), Value::String(v.to_string())))
            .collect(),
    )
}

fn ctr(name: &str, requests: &[(&str, &str)], limits: &[(&str, &str)]) -> Value {
    json!({"name": name, "resources": {"requests": rl(requests), "limits": rl(limits)}})
}

/// A Guaranteed container: requests = limits = {cpu 1000Mi, memory, hugepages-1Gi}.
fn guaranteed(name: &str, mem: &str, hp: &str) -> Value {
    let r = [("cpu", "1000Mi"), (MEM, mem), (HP, hp)];
    ctr(name, &r, &r)
}

/// `requirementsBurstable`.
fn burstable(name: &str) -> Value {
    ctr(
        name,
        &[("cpu", "1000Mi"), (MEM, "1Gi"), (HP, "1Gi")],
        &[("cpu", "1000Mi"), (MEM, "2Gi"), (HP, "2Gi")],
    )
}

fn restartable(mut c: Value) -> Value {
    c["restartPolicy"] = json!("Always");
    c
}

fn pod(uid: &str, init: Vec<Value>, containers: Vec<Value>) -> PodInfo {
    let p: Pod = serde_json::from_value(json!({
        "metadata": {"uid": uid},
        "spec": {"initContainers": init, "containers": containers},
    }))
    .expect("pod json");
    PodInfo::from_pod(&p, false).expect("pod")
}

/// `getPod(uid, ctr, req)`.
fn get_pod(uid: &str, c: Value) -> PodInfo {
    pod(uid, vec![], vec![c])
}

fn policy(sr: SystemReserved, state: MachineState, a: Assignments) -> StaticPolicy {
    let mut p = StaticPolicy::new(sr);
    p.set_machine_state(state);
    p.assignments = a;
    p
}

fn h(ids: &[i64], preferred: bool) -> TopologyHint {
    TopologyHint::new(NumaMask::from_ids(ids.iter().copied()).unwrap(), preferred)
}

fn hint_map(entries: &[(&str, Vec<TopologyHint>)]) -> ProviderHints {
    Some(
        entries
            .iter()
            .map(|(k, v)| (k.to_string(), Some(v.clone())))
            .collect(),
    )
}

/// "TM hint" `{}`: nil mask, not preferred.
const NO_HINT: TopologyHint = TopologyHint::NONE;
/// "TM hint" `{Preferred: true}`: nil mask, preferred.
const NIL_PREFERRED: TopologyHint = TopologyHint {
    affinity: None,
    preferred: true,
};

fn q(s: &str) -> Quantity {
    Quantity::parse(s).expect("quantity")
}

// ---------------------------------------------------------------------------------------
// A. policy_static_test.go

fn static_config(reservations: &[(i32, &str, &str)]) -> KubeletConfig {
    let mut by_node: BTreeMap<i32, Vec<(String, String)>> = BTreeMap::new();
    for (n, r, v) in reservations {
        by_node
            .entry(*n)
            .or_default()
            .push((r.to_string(), v.to_string()));
    }
    KubeletConfig {
        memory_manager_policy: Some("Static".into()),
        reserved_memory: Some(
            by_node
                .into_iter()
                .map(|(numa_node, limits)| MemoryReservation { numa_node, limits })
                .collect(),
        ),
        ..Default::default()
    }
}

fn na(pairs: &[(&str, &str)]) -> BTreeMap<String, Quantity> {
    pairs.iter().map(|(k, v)| (k.to_string(), q(v))).collect()
}

/// A.1. nmm checks "no system reserved memory" in `MemoryManager::new` (the kubelet does it
/// in `NewPolicyStatic`, which `NewManager` calls), so the cases go through the manager.
#[test]
fn test_static_policy_new() {
    struct Case {
        description: &'static str,
        reserved_memory: Vec<(i32, &'static str, &'static str)>,
        node_allocatable: Vec<(&'static str, &'static str)>,
        expected_error: Option<&'static str>,
    }
    let cases = [
        Case {
            description:
                "should fail, when machine does not have reserved memory for the system workloads",
            reserved_memory: vec![],
            node_allocatable: vec![],
            expected_error: Some("[memorymanager] you should specify the system reserved memory"),
        },
        Case {
            description: "should succeed, when at least one NUMA node has reserved memory",
            reserved_memory: vec![(1, MEM, "512Mi")],
            node_allocatable: vec![(MEM, "512Mi")],
            expected_error: None,
        },
    ];
    for c in cases {
        let r = MemoryManager::new(
            &return_machine_info(),
            &static_config(&c.reserved_memory),
            &na(&c.node_allocatable),
        );
        match c.expected_error {
            Some(e) => assert_eq!(r.unwrap_err(), e, "{}", c.description),
            None => {
                let m = r.unwrap_or_else(|e| panic!("{}: {e}", c.description));
                assert_eq!(
                    m.static_policy().unwrap().system_reserved(),
                    &reserved(&[(0, &[]), (1, &[(MEM, 512 * MI)])]),
                    "{}",
                    c.description
                );
            }
        }
    }
}

/// A.2.
#[test]
fn test_static_policy_name() {
    let description = "should return the correct policy name";
    let m = MemoryManager::new(
        &return_machine_info(),
        &static_config(&[(0, MEM, "512Mi")]),
        &na(&[(MEM, "512Mi")]),
    )
    .unwrap();
    assert_eq!(m.policy_name(), "Static", "{description}");
}

const STATE_DIFFERS: &str =
    "[memorymanager] the expected machine state is different from the real one";

/// A.3.
#[test]
fn test_static_policy_start() {
    struct Case {
        description: &'static str,
        system_reserved: SystemReserved,
        state: MachineState,
        assignments: Assignments,
        machine: Machine,
        expected_error: Option<&'static str>,
        /// `None`: the stored state is expected unchanged.
        expected_state: Option<MachineState>,
    }
    let sr512 = || reserved(&[(0, &[(MEM, 512 * MI)])]);
    let default_n0_2g = || {
        node(
            0,
            &[0],
            &[
                (MEM, t(1536 * MI, 1536 * MI, 0, 512 * MI, 2 * GI)),
                (HP, t(GI, GI, 0, 0, GI)),
            ],
        )
    };
    let cases = vec![
        Case {
            description: "should fail, if machine state is empty, but it has memory assignments",
            system_reserved: sr512(),
            state: MachineState::new(),
            assignments: asg(vec![("pod", "container1", vec![blk(&[0], MEM, 512 * MI)])]),
            machine: machine(&[(0, 2 * GI, 1)]),
            expected_error: Some(
                "[memorymanager] machine state can not be empty when it has memory assignments",
            ),
            expected_state: None,
        },
        Case {
            description: "should fill the state with default values, when the state is empty",
            system_reserved: sr512(),
            state: MachineState::new(),
            assignments: Assignments::new(),
            machine: machine(&[(0, 3 * GI, 1)]),
            expected_error: None,
            expected_state: Some(ms(vec![(
                0,
                node(
                    0,
                    &[0],
                    &[
                        (MEM, t(1536 * MI, 1536 * MI, 0, 512 * MI, 3 * GI)),
                        (HP, t(GI, GI, 0, 0, GI)),
                    ],
                ),
            )])),
        },
        Case {
            description: "should fail when machine state does not have all NUMA nodes",
            system_reserved: sr512(),
            state: ms(vec![(0, default_n0_2g())]),
            assignments: Assignments::new(),
            machine: machine(&[(0, 2 * GI, 1), (1, 2 * GI, 1)]),
            expected_error: Some(STATE_DIFFERS),
            expected_state: None,
        },
        Case {
            description: "should fail when machine state does not have memory resource",
            system_reserved: sr512(),
            state: ms(vec![(0, node(0, &[0], &[(HP, t(GI, GI, 0, 0, GI))]))]),
            assignments: Assignments::new(),
            machine: machine(&[(0, 2 * GI, 1)]),
            expected_error: Some(STATE_DIFFERS),
            expected_state: None,
        },
        Case {
            description: "should fail when machine state has wrong size of total memory",
            system_reserved: sr512(),
            state: ms(vec![(
                0,
                node(
                    0,
                    &[0],
                    &[
                        (MEM, t(1536 * MI, 1536 * MI, 0, 512 * MI, 1536 * MI)),
                        (HP, t(GI, GI, 0, 0, GI)),
                    ],
                ),
            )]),
            assignments: Assignments::new(),
            machine: machine(&[(0, 2 * GI, 1)]),
            expected_error: Some(STATE_DIFFERS),
            expected_state: None,
        },
        Case {
            description: "should fail when machine state has wrong size of system reserved memory",
            system_reserved: sr512(),
            state: ms(vec![(
                0,
                node(
                    0,
                    &[0],
                    &[
                        (MEM, t(1536 * MI, 1536 * MI, 0, 1024, 2 * GI)),
                        (HP, t(GI, GI, 0, 0, GI)),
                    ],
                ),
            )]),
            assignments: Assignments::new(),
            machine: machine(&[(0, 2 * GI, 1)]),
            expected_error: Some(STATE_DIFFERS),
            expected_state: None,
        },
        Case {
            description: "should fail when machine state reserved memory is different from the memory of all containers memory assignments",
            system_reserved: sr512(),
            state: ms(vec![(
                0,
                node(1, &[0], &[(MEM, t(1536 * MI, 1536 * MI, 0, 512 * MI, 2 * GI))]),
            )]),
            assignments: asg(vec![("pod", "container1", vec![blk(&[0], MEM, 512 * MI)])]),
            machine: machine(&[(0, 2 * GI, 1)]),
            expected_error: Some(STATE_DIFFERS),
            expected_state: None,
        },
        Case {
            description: "should fail when machine state has wrong size of hugepages",
            system_reserved: sr512(),
            state: ms(vec![(0, default_n0_2g())]),
            assignments: Assignments::new(),
            machine: machine(&[(0, 2 * GI, 2)]),
            expected_error: Some(STATE_DIFFERS),
            expected_state: None,
        },
        Case {
            description: "should fail when machine state has wrong size of system reserved hugepages",
            system_reserved: sr512(),
            state: ms(vec![(
                0,
                node(
                    0,
                    &[0],
                    &[
                        (MEM, t(1536 * MI, 1536 * MI, 0, 512 * MI, 2 * GI)),
                        (HP, t(GI, GI, 0, GI, 2 * GI)),
                    ],
                ),
            )]),
            assignments: Assignments::new(),
            machine: machine(&[(0, 2 * GI, 2)]),
            expected_error: Some(STATE_DIFFERS),
            expected_state: None,
        },
        Case {
            description: "should fail when the hugepages reserved machine state is different from the hugepages of all containers memory assignments",
            system_reserved: sr512(),
            state: ms(vec![(
                0,
                node(
                    2,
                    &[0],
                    &[
                        (MEM, t(1536 * MI, 1536 * MI, 0, 512 * MI, 2 * GI)),
                        (HP, t(4 * GI, GI, 3 * GI, 0, 4 * GI)),
                    ],
                ),
            )]),
            assignments: asg(vec![
                ("pod1", "container1", vec![blk(&[0], HP, GI)]),
                ("pod2", "container2", vec![blk(&[0], HP, GI)]),
            ]),
            machine: machine(&[(0, 2 * GI, 4)]),
            expected_error: Some(STATE_DIFFERS),
            expected_state: None,
        },
        Case {
            description: "should fail when machine state does not have NUMA node that used under the memory assignment",
            system_reserved: sr512(),
            state: ms(vec![(0, default_n0_2g())]),
            assignments: asg(vec![("pod1", "container1", vec![blk(&[1], MEM, GI)])]),
            machine: machine(&[(0, 2 * GI, 1)]),
            expected_error: Some("[memorymanager] (pod: pod1, container: container1) the memory assignment uses the NUMA that does not exist"),
            expected_state: None,
        },
        Case {
            description: "should fail when machine state does not have resource that used under the memory assignment",
            system_reserved: sr512(),
            state: ms(vec![(
                0,
                node(
                    2,
                    &[0],
                    &[
                        (MEM, t(1536 * MI, 1536 * MI, 0, 512 * MI, 2 * GI)),
                        (HP, t(GI, GI, 0, 0, GI)),
                    ],
                ),
            )]),
            assignments: asg(vec![(
                "pod1",
                "container1",
                vec![blk(&[0], MEM, GI), blk(&[0], HP2M, GI)],
            )]),
            machine: machine(&[(0, 2 * GI, 1)]),
            expected_error: Some("[memorymanager] (pod: pod1, container: container1) the memory assignment uses memory resource that does not exist"),
            expected_state: None,
        },
        Case {
            description: "should fail when machine state number of assignments is different from the expected one",
            system_reserved: sr512(),
            state: ms(vec![(
                0,
                node(
                    1,
                    &[0],
                    &[
                        (MEM, t(1536 * MI, 1536 * MI, 0, 512 * MI, 2 * GI)),
                        (HP, t(GI, GI, 0, 0, GI)),
                    ],
                ),
            )]),
            assignments: asg(vec![(
                "pod1",
                "container1",
                vec![blk(&[0], MEM, GI), blk(&[0], HP, GI)],
            )]),
            machine: machine(&[(0, 2 * GI, 1)]),
            expected_error: Some(STATE_DIFFERS),
            expected_state: None,
        },
        Case {
            description: "should validate cross NUMA reserved memory vs container assignments",
            system_reserved: reserved(&[(0, &[(MEM, 512 * MI)]), (1, &[(MEM, 512 * MI)])]),
            state: ms(vec![
                (
                    0,
                    node(
                        4,
                        &[0, 1],
                        &[
                            (MEM, t(640 * MI, 0, 640 * MI, 512 * MI, 2176 * MI)),
                            (HP, t(GI, 0, GI, 0, GI)),
                        ],
                    ),
                ),
                (
                    1,
                    node(
                        4,
                        &[0, 1],
                        &[
                            (MEM, t(640 * MI, 256 * MI, 384 * MI, 512 * MI, 2176 * MI)),
                            (HP, t(GI, 0, GI, 0, GI)),
                        ],
                    ),
                ),
            ]),
            assignments: asg(vec![
                (
                    "pod1",
                    "container1",
                    vec![blk(&[0, 1], MEM, 768 * MI), blk(&[0, 1], HP, GI)],
                ),
                (
                    "pod2",
                    "container2",
                    vec![blk(&[0, 1], MEM, 256 * MI), blk(&[0, 1], HP, GI)],
                ),
            ]),
            machine: machine(&[(0, 2176 * MI, 1), (1, 2176 * MI, 1)]),
            expected_error: None,
            expected_state: None,
        },
    ];
    for c in cases {
        let mut p = policy(c.system_reserved, c.state.clone(), c.assignments.clone());
        let r = p.start(&c.machine);
        match c.expected_error {
            Some(e) => assert_eq!(r.unwrap_err(), e, "{}", c.description),
            None => {
                r.unwrap_or_else(|e| panic!("{}: {e}", c.description));
                let want = c.expected_state.unwrap_or(c.state);
                assert_eq!(*p.machine_state(), want, "{}", c.description);
                assert_eq!(p.assignments, c.assignments, "{}", c.description);
            }
        }
    }
}

/// A.4.
#[test]
fn test_static_policy_allocate() {
    struct Case {
        description: &'static str,
        hint: TopologyHint,
        state: MachineState,
        assignments: Assignments,
        pod: PodInfo,
        expected_error: Option<&'static str>,
        /// On success: expected assignments and machine state (`None`: unchanged).
        expected: Option<(Assignments, MachineState)>,
    }
    let sr = |n: u32| -> SystemReserved {
        (0..n)
            .map(|i| (i, [(MEM.to_string(), 512 * MI)].into()))
            .collect()
    };
    let fresh_n0 = || {
        ms(vec![(
            0,
            node(
                0,
                &[0],
                &[
                    (MEM, t(1536 * MI, 1536 * MI, 0, 512 * MI, 2 * GI)),
                    (HP, t(GI, GI, 0, 0, GI)),
                ],
            ),
        )])
    };
    let full_n0 = || {
        ms(vec![(
            0,
            node(
                2,
                &[0],
                &[
                    (MEM, t(1536 * MI, 512 * MI, GI, 512 * MI, 2 * GI)),
                    (HP, t(GI, 0, GI, 0, GI)),
                ],
            ),
        )])
    };
    let three_nodes = || {
        ms(vec![
            (
                0,
                node(
                    1,
                    &[0],
                    &[
                        (MEM, t(GI, 512 * MI, 512 * MI, 512 * MI, 1536 * MI)),
                        (HP, t(GI, GI, 0, 0, GI)),
                    ],
                ),
            ),
            (
                1,
                node(
                    0,
                    &[1],
                    &[
                        (MEM, t(512 * MI, 512 * MI, 0, 512 * MI, 1536 * MI)),
                        (HP, t(GI, GI, 0, 0, GI)),
                    ],
                ),
            ),
            (
                2,
                node(
                    0,
                    &[2],
                    &[
                        (MEM, t(512 * MI, 512 * MI, 0, 512 * MI, 1536 * MI)),
                        (HP, t(GI, GI, 0, 0, GI)),
                    ],
                ),
            ),
        ])
    };
    let four_nodes =
        |i_state: &dyn Fn(u32) -> NumaNodeState| ms((0..4).map(|i| (i, i_state(i))).collect());
    let free_half = |i: u32| {
        node(
            0,
            &[i],
            &[
                (MEM, t(512 * MI, 512 * MI, 0, 512 * MI, GI)),
                (HP, t(GI, GI, 0, 0, GI)),
            ],
        )
    };
    let cases = vec![
        Case {
            description: "should do nothing for non-guaranteed pods",
            hint: NO_HINT,
            state: ms(vec![(
                0,
                node(
                    0,
                    &[],
                    &[
                        (MEM, t(1536 * MI, 1536 * MI, 0, 512 * MI, 2 * GI)),
                        (HP, t(GI, GI, 0, 0, GI)),
                    ],
                ),
            )]),
            assignments: Assignments::new(),
            pod: get_pod("pod1", burstable("container1")),
            expected_error: None,
            expected: None,
        },
        Case {
            description: "should do nothing once container already exists under the state file",
            hint: NO_HINT,
            state: ms(vec![(
                0,
                node(
                    1,
                    &[0],
                    &[
                        (MEM, t(1536 * MI, 512 * MI, 1024 * MI, 512 * MI, 2 * GI)),
                        (HP, t(GI, GI, 0, 0, GI)),
                    ],
                ),
            )]),
            assignments: asg(vec![("pod1", "container1", vec![blk(&[0], MEM, GI)])]),
            pod: get_pod("pod1", guaranteed("container1", "1Gi", "1Gi")),
            expected_error: None,
            expected: None,
        },
        Case {
            description: "should calculate a default topology hint when no NUMA affinity was provided by the topology manager hint",
            hint: NO_HINT,
            state: fresh_n0(),
            assignments: Assignments::new(),
            pod: get_pod("pod1", guaranteed("container1", "1Gi", "1Gi")),
            expected_error: None,
            expected: Some((
                asg(vec![(
                    "pod1",
                    "container1",
                    vec![blk(&[0], MEM, GI), blk(&[0], HP, GI)],
                )]),
                full_n0(),
            )),
        },
        Case {
            description: "should fail when no NUMA affinity was provided under the topology manager hint and calculation of the default hint failed",
            hint: NO_HINT,
            state: full_n0(),
            assignments: asg(vec![(
                "pod1",
                "container1",
                vec![blk(&[0], MEM, GI), blk(&[0], HP, GI)],
            )]),
            pod: get_pod("pod2", guaranteed("container2", "1Gi", "1Gi")),
            expected_error: Some("[memorymanager] failed to get the default NUMA affinity, no NUMA nodes with enough memory is available"),
            expected: None,
        },
        Case {
            description: "should fail when no NUMA affinity was provided under the topology manager preferred hint and default hint has preferred false",
            hint: NIL_PREFERRED,
            state: three_nodes(),
            assignments: asg(vec![("pod1", "container1", vec![blk(&[0], MEM, 512 * MI)])]),
            pod: get_pod("pod2", guaranteed("container2", "1Gi", "1Gi")),
            expected_error: Some("[memorymanager] failed to find the default preferred hint"),
            expected: None,
        },
        Case {
            description: "should fail when NUMA affinity provided under the topology manager hint did not satisfy container requirements and extended hint generation failed",
            hint: h(&[0], false),
            state: ms(vec![
                (
                    0,
                    node(
                        0,
                        &[0],
                        &[
                            (MEM, t(512 * MI, 512 * MI, 0, 512 * MI, GI)),
                            (HP, t(GI, GI, 0, 0, GI)),
                        ],
                    ),
                ),
                (
                    1,
                    node(
                        1,
                        &[1, 2],
                        &[
                            (MEM, t(1536 * MI, 512 * MI, GI, 512 * MI, 2 * GI)),
                            (HP, t(GI, GI, 0, 0, GI)),
                        ],
                    ),
                ),
                (
                    2,
                    node(
                        1,
                        &[1, 2],
                        &[
                            (MEM, t(1536 * MI, 512 * MI, GI, 512 * MI, 2 * GI)),
                            (HP, t(GI, GI, 0, 0, GI)),
                        ],
                    ),
                ),
            ]),
            assignments: Assignments::new(),
            pod: get_pod("pod1", guaranteed("container1", "1Gi", "1Gi")),
            expected_error: Some(
                "[memorymanager] failed to find NUMA nodes to extend the current topology hint",
            ),
            expected: None,
        },
        Case {
            description: "should fail when the topology manager provided the preferred hint and extended hint has preferred false",
            hint: h(&[1], true),
            state: three_nodes(),
            assignments: asg(vec![("pod1", "container1", vec![blk(&[0], MEM, 512 * MI)])]),
            pod: get_pod("pod2", guaranteed("container2", "1Gi", "1Gi")),
            expected_error: Some("[memorymanager] failed to find the extended preferred hint"),
            expected: None,
        },
        Case {
            description: "should succeed to allocate memory from multiple NUMA nodes",
            hint: NIL_PREFERRED,
            state: four_nodes(&free_half),
            assignments: Assignments::new(),
            pod: get_pod("pod1", guaranteed("container1", "1Gi", "1Gi")),
            expected_error: None,
            expected: Some((
                asg(vec![(
                    "pod1",
                    "container1",
                    vec![blk(&[0, 1], MEM, GI), blk(&[0, 1], HP, GI)],
                )]),
                four_nodes(&|i| match i {
                    0 => node(
                        2,
                        &[0, 1],
                        &[
                            (MEM, t(512 * MI, 0, 512 * MI, 512 * MI, GI)),
                            (HP, t(GI, 0, GI, 0, GI)),
                        ],
                    ),
                    1 => node(
                        2,
                        &[0, 1],
                        &[
                            (MEM, t(512 * MI, 0, 512 * MI, 512 * MI, GI)),
                            (HP, t(GI, GI, 0, 0, GI)),
                        ],
                    ),
                    i => free_half(i),
                }),
            )),
        },
    ];
    for c in cases {
        let n = c.state.len() as u32;
        let mut p = policy(sr(n), c.state.clone(), c.assignments.clone());
        let container = c.pod.app_containers().next().unwrap().clone();
        let r = p.allocate(&c.pod, &container, c.hint);
        match c.expected_error {
            Some(e) => {
                assert_eq!(r.unwrap_err(), e, "{}", c.description);
                // nmm checks before it writes: a failed Allocate leaves the books alone.
                assert_eq!(*p.machine_state(), c.state, "{}", c.description);
                assert_eq!(p.assignments, c.assignments, "{}", c.description);
            }
            None => {
                r.unwrap_or_else(|e| panic!("{}: {e}", c.description));
                let (a, s) = c.expected.unwrap_or((c.assignments, c.state));
                assert_eq!(norm(p.assignments.clone()), norm(a), "{}", c.description);
                assert_eq!(*p.machine_state(), s, "{}", c.description);
            }
        }
    }
}

/// Allocates every container of the pod in spec order (init containers first) with the
/// "TM hint" `{}`.
fn allocate_all(p: &mut StaticPolicy, pod: &PodInfo) {
    for c in &pod.containers {
        p.allocate(pod, c, NO_HINT)
            .unwrap_or_else(|e| panic!("allocate {}: {e}", c.name));
    }
}

fn blocks_mem_hp(numa: &[u32], gi: u64) -> Vec<Block> {
    vec![blk(numa, MEM, gi * GI), blk(numa, HP, gi * GI)]
}

fn sized(name: &str, gi: u64) -> Value {
    let s = format!("{gi}Gi");
    guaranteed(name, &s, &s)
}

/// A.5.
#[test]
fn test_static_policy_allocate_with_init_containers() {
    struct Case {
        description: &'static str,
        node_gi: u64,
        /// Memory allocatable (= free) of N0, in Mi.
        mem_alloc_mi: u64,
        init: [u64; 2],
        apps: [u64; 2],
        expected_blocks: [u64; 4],
        /// (memory free, memory reserved, hp free, hp reserved) in Mi / Gi.
        expected_n0: (u64, u64, u64, u64),
    }
    let cases = [
        Case {
            description: "should re-use init containers memory, init containers requests 1Gi and 2Gi, apps containers 3Gi and 4Gi",
            node_gi: 8,
            mem_alloc_mi: 7680,
            init: [1, 2],
            apps: [3, 4],
            expected_blocks: [0, 0, 3, 4],
            expected_n0: (512, 7 * 1024, 1, 7),
        },
        Case {
            description: "should re-use init containers memory, init containers requests 4Gi and 3Gi, apps containers 2Gi and 1Gi",
            node_gi: 8,
            mem_alloc_mi: 7680,
            init: [4, 3],
            apps: [2, 1],
            expected_blocks: [0, 1, 2, 1],
            expected_n0: (3584, 4 * 1024, 4, 4),
        },
        Case {
            description: "should re-use init containers memory, init containers requests 7Gi and 4Gi, apps containers 4Gi and 3Gi",
            node_gi: 8,
            mem_alloc_mi: 7680,
            init: [7, 4],
            apps: [4, 3],
            expected_blocks: [0, 0, 4, 3],
            expected_n0: (512, 7 * 1024, 1, 7),
        },
        // Upstream pre-seeds the reusable-memory map with an entry for another pod `pod0`;
        // that map is private in nmm (and the kubelet drops other pods' entries on the
        // first update anyway), so the case runs without the seed.
        Case {
            description: "should re-use init containers memory, init containers requests 7Gi and 4Gi, apps containers 5Gi and 2Gi",
            node_gi: 10,
            mem_alloc_mi: 10240,
            init: [7, 4],
            apps: [5, 2],
            expected_blocks: [0, 0, 5, 2],
            expected_n0: (3072, 7 * 1024, 3, 7),
        },
    ];
    for c in cases {
        let g = c.node_gi;
        let alloc = c.mem_alloc_mi * MI;
        let state = ms(vec![(
            0,
            node(
                0,
                &[0],
                &[
                    (MEM, t(alloc, alloc, 0, 512 * MI, g * GI)),
                    (HP, t(g * GI, g * GI, 0, 0, g * GI)),
                ],
            ),
        )]);
        let mut p = policy(
            reserved(&[(0, &[(MEM, 512 * MI)])]),
            state,
            Assignments::new(),
        );
        let pd = pod(
            "pod1",
            vec![
                sized("initContainer1", c.init[0]),
                sized("initContainer2", c.init[1]),
            ],
            vec![
                sized("container1", c.apps[0]),
                sized("container2", c.apps[1]),
            ],
        );
        allocate_all(&mut p, &pd);
        let names = [
            "initContainer1",
            "initContainer2",
            "container1",
            "container2",
        ];
        let want = asg(names
            .iter()
            .zip(c.expected_blocks)
            .map(|(n, s)| ("pod1", *n, blocks_mem_hp(&[0], s)))
            .collect());
        assert_eq!(norm(p.assignments.clone()), norm(want), "{}", c.description);
        let (mf, mr, hf, hr) = c.expected_n0;
        let want_state = ms(vec![(
            0,
            node(
                8,
                &[0],
                &[
                    (MEM, t(alloc, mf * MI, mr * MI, 512 * MI, g * GI)),
                    (HP, t(g * GI, hf * GI, hr * GI, 0, g * GI)),
                ],
            ),
        )]);
        assert_eq!(*p.machine_state(), want_state, "{}", c.description);
    }
}

/// A.6.
#[test]
fn test_static_policy_allocate_with_restartable_init_containers() {
    // 1
    let description = "should do nothing once containers already exist under the state file";
    let state = ms(vec![(
        0,
        node(
            0,
            &[],
            &[
                (MEM, t(2560 * MI, 512 * MI, 2048 * MI, 512 * MI, 3 * GI)),
                (HP, t(2 * GI, 2 * GI, 0, 0, 2 * GI)),
            ],
        ),
    )]);
    let a = asg(vec![
        ("pod1", "initContainer1", vec![blk(&[0], MEM, GI)]),
        ("pod1", "container1", vec![blk(&[0], MEM, GI)]),
    ]);
    let mut p = policy(
        reserved(&[(0, &[(MEM, 512 * MI)])]),
        state.clone(),
        a.clone(),
    );
    let pd = pod(
        "pod1",
        vec![restartable(sized("initContainer1", 1))],
        vec![sized("container1", 1)],
    );
    allocate_all(&mut p, &pd);
    assert_eq!(*p.machine_state(), state, "{description}");
    assert_eq!(p.assignments, a, "{description}");

    // 2
    let description = "should not re-use restartable init containers memory";
    let state = ms(vec![(
        0,
        node(
            0,
            &[0],
            &[
                (MEM, t(7 * GI, 7 * GI, 0, 512 * MI, 7680 * MI)),
                (HP, t(7 * GI, 7 * GI, 0, 0, 7 * GI)),
            ],
        ),
    )]);
    let mut p = policy(
        reserved(&[(0, &[(MEM, 512 * MI)])]),
        state,
        Assignments::new(),
    );
    let pd = pod(
        "pod1",
        vec![
            sized("initContainer1", 1),
            restartable(sized("restartableInitContainer2", 2)),
            sized("initContainer3", 3),
            restartable(sized("restartableInitContainer4", 4)),
        ],
        vec![sized("container1", 1)],
    );
    allocate_all(&mut p, &pd);
    let want = asg(vec![
        ("pod1", "initContainer1", blocks_mem_hp(&[0], 0)),
        ("pod1", "restartableInitContainer2", blocks_mem_hp(&[0], 2)),
        ("pod1", "initContainer3", blocks_mem_hp(&[0], 0)),
        ("pod1", "restartableInitContainer4", blocks_mem_hp(&[0], 4)),
        ("pod1", "container1", blocks_mem_hp(&[0], 1)),
    ]);
    assert_eq!(norm(p.assignments.clone()), norm(want), "{description}");
    let want_state = ms(vec![(
        0,
        node(
            10,
            &[0],
            &[
                (MEM, t(7 * GI, 0, 7 * GI, 512 * MI, 7680 * MI)),
                (HP, t(7 * GI, 0, 7 * GI, 0, 7 * GI)),
            ],
        ),
    )]);
    assert_eq!(*p.machine_state(), want_state, "{description}");
}

/// A.7.
#[test]
fn test_static_policy_remove_container() {
    let fresh = |id: u32, mem_alloc: u64, total: u64| {
        node(
            0,
            &[id],
            &[
                (MEM, t(mem_alloc, mem_alloc, 0, 512 * MI, total)),
                (HP, t(GI, GI, 0, 0, GI)),
            ],
        )
    };
    struct Case {
        description: &'static str,
        state: MachineState,
        assignments: Assignments,
        expected_state: MachineState,
    }
    let cases = vec![
        Case {
            description: "should do nothing when the container does not exist under the state",
            state: ms(vec![(0, fresh(0, 1536 * MI, 2 * GI))]),
            assignments: Assignments::new(),
            expected_state: ms(vec![(0, fresh(0, 1536 * MI, 2 * GI))]),
        },
        Case {
            description: "should delete the container assignment and update the machine state",
            state: ms(vec![(
                0,
                node(
                    2,
                    &[0],
                    &[
                        (MEM, t(1536 * MI, 512 * MI, GI, 512 * MI, 2 * GI)),
                        (HP, t(GI, 0, GI, 0, GI)),
                    ],
                ),
            )]),
            assignments: asg(vec![("pod1", "container1", blocks_mem_hp(&[0], 1))]),
            expected_state: ms(vec![(0, fresh(0, 1536 * MI, 2 * GI))]),
        },
        Case {
            description:
                "should delete the cross NUMA container assignment and update the machine state",
            state: ms(vec![
                (
                    0,
                    node(
                        2,
                        &[0, 1],
                        &[
                            (MEM, t(512 * MI, 0, 512 * MI, 512 * MI, GI)),
                            (HP, t(GI, 0, GI, 0, GI)),
                        ],
                    ),
                ),
                (
                    1,
                    node(
                        2,
                        &[0, 1],
                        &[
                            (MEM, t(512 * MI, 0, 512 * MI, 512 * MI, GI)),
                            (HP, t(GI, GI, 0, 0, GI)),
                        ],
                    ),
                ),
            ]),
            assignments: asg(vec![("pod1", "container1", blocks_mem_hp(&[0, 1], 1))]),
            expected_state: ms(vec![
                (0, fresh(0, 512 * MI, GI)),
                (1, fresh(1, 512 * MI, GI)),
            ]),
        },
    ];
    for c in cases {
        let mut p = policy(
            reserved(&[(0, &[(MEM, 512 * MI)]), (1, &[(MEM, 512 * MI)])]),
            c.state,
            c.assignments,
        );
        p.remove_container("pod1", "container1");
        assert_eq!(p.assignments, Assignments::new(), "{}", c.description);
        assert_eq!(*p.machine_state(), c.expected_state, "{}", c.description);
    }
}

/// A.8.
#[test]
fn test_static_policy_get_topology_hints() {
    struct Case {
        description: &'static str,
        state: MachineState,
        assignments: Assignments,
        pod: PodInfo,
        expected: ProviderHints,
    }
    let one_node = || {
        ms(vec![(
            0,
            node(
                0,
                &[0],
                &[
                    (MEM, t(1536 * MI, 1536 * MI, 0, 512 * MI, 2 * GI)),
                    (HP, t(GI, GI, 0, 0, GI)),
                ],
            ),
        )])
    };
    let g = |uid: &str, name: &str| get_pod(uid, guaranteed(name, "1Gi", "1Gi"));
    let cases = vec![
        Case {
            description: "should not provide topology hints for non-guaranteed pods",
            state: one_node(),
            assignments: Assignments::new(),
            pod: get_pod("pod1", burstable("container1")),
            expected: None,
        },
        Case {
            description: "should provide topology hints based on the existent memory assignment",
            state: one_node(),
            assignments: asg(vec![("pod1", "container1", blocks_mem_hp(&[0], 1))]),
            pod: g("pod1", "container1"),
            expected: hint_map(&[(MEM, vec![h(&[0], true)]), (HP, vec![h(&[0], true)])]),
        },
        Case {
            description: "should calculate new topology hints, when the container does not exist under assignments",
            state: ms(vec![
                (
                    0,
                    node(
                        2,
                        &[0, 1],
                        &[
                            (MEM, t(1536 * MI, 0, 1536 * MI, 512 * MI, 2 * GI)),
                            (HP, t(GI, 0, GI, 0, GI)),
                        ],
                    ),
                ),
                (
                    1,
                    node(
                        2,
                        &[0, 1],
                        &[
                            (MEM, t(1536 * MI, GI, 512 * MI, 512 * MI, 2 * GI)),
                            (HP, t(GI, 0, GI, 0, GI)),
                        ],
                    ),
                ),
                (2, one_node()[&0].clone()).map_cells(&[2]),
                (3, one_node()[&0].clone()).map_cells(&[3]),
            ]),
            assignments: asg(vec![(
                "pod1",
                "container1",
                vec![blk(&[0, 1], MEM, 2 * GI), blk(&[0, 1], HP, 2 * GI)],
            )]),
            pod: g("pod2", "container2"),
            expected: {
                let l = vec![h(&[2], true), h(&[3], true), h(&[2, 3], false)];
                hint_map(&[(MEM, l.clone()), (HP, l)])
            },
        },
        Case {
            description: "should fail when number of existing memory assignment resources are different from resources requested by container",
            state: one_node(),
            assignments: asg(vec![("pod1", "container1", vec![blk(&[0], MEM, GI)])]),
            pod: g("pod1", "container1"),
            expected: None,
        },
        Case {
            description: "should fail when existing memory assignment resources are different from resources requested by container",
            state: one_node(),
            assignments: asg(vec![(
                "pod1",
                "container1",
                vec![blk(&[0], MEM, GI), blk(&[0], HP2M, GI)],
            )]),
            pod: g("pod1", "container1"),
            expected: None,
        },
        Case {
            description: "should fail when existing memory assignment size is different from one requested by the container",
            state: one_node(),
            assignments: asg(vec![(
                "pod1",
                "container1",
                vec![blk(&[0], MEM, 512 * MI), blk(&[0], HP, GI)],
            )]),
            pod: g("pod1", "container1"),
            expected: None,
        },
        Case {
            description: "should not return preferred hints with multiple NUMA nodes for the pod with resources satisfied by a single NUMA node",
            state: ms(vec![
                (
                    0,
                    node(
                        2,
                        &[0, 1],
                        &[
                            (MEM, t(1536 * MI, 0, 1536 * MI, 512 * MI, 2 * GI)),
                            (HP2M, t(20 * MI, 0, 20 * MI, 0, 20 * MI)),
                        ],
                    ),
                ),
                (
                    1,
                    node(
                        2,
                        &[0, 1],
                        &[
                            (MEM, t(1536 * MI, GI, 512 * MI, 512 * MI, 2 * GI)),
                            (HP2M, t(20 * MI, 16 * MI, 4 * MI, 0, 20 * MI)),
                        ],
                    ),
                ),
            ]),
            assignments: asg(vec![(
                "pod1",
                "container1",
                vec![blk(&[0, 1], MEM, 2 * GI), blk(&[0, 1], HP2M, 24 * MI)],
            )]),
            pod: {
                let r = [("cpu", "1000Mi"), (MEM, "1Gi"), (HP2M, "16Mi")];
                get_pod("pod2", ctr("container2", &r, &r))
            },
            expected: hint_map(&[
                (MEM, vec![h(&[0, 1], false)]),
                (HP2M, vec![h(&[0, 1], false)]),
            ]),
        },
    ];
    for c in cases {
        let n = c.state.len() as u32;
        let sr = (0..n)
            .map(|i| (i, [(MEM.to_string(), 512 * MI)].into()))
            .collect();
        let p = policy(sr, c.state, c.assignments);
        let container = c.pod.app_containers().next().unwrap();
        assert_eq!(
            p.get_topology_hints(&c.pod, container),
            c.expected,
            "{}",
            c.description
        );
    }
}

trait MapCells {
    fn map_cells(self, cells: &[u32]) -> (u32, NumaNodeState);
}

impl MapCells for (u32, NumaNodeState) {
    fn map_cells(mut self, cells: &[u32]) -> (u32, NumaNodeState) {
        self.1.cells = cells.to_vec();
        self
    }
}

/// A.9 `getPodRequestedResources`.
#[test]
fn test_get_pod_requested_resources() {
    fn req(name: &str, mem: u64, hp: u64) -> Value {
        let (m, h) = (format!("{mem}Gi"), format!("{hp}Gi"));
        ctr(name, &[(MEM, &m), (HP, &h)], &[])
    }
    struct Case {
        description: &'static str,
        init: Vec<Value>,
        apps: Vec<Value>,
        expected: (u64, u64),
    }
    let cases = vec![
        Case {
            description: "maximum resources of init containers > total resources of containers",
            init: vec![req("initContainer1", 1, 1), req("initContainer2", 4, 4)],
            apps: vec![req("container1", 1, 1), req("container2", 2, 2)],
            expected: (4, 4),
        },
        Case {
            description: "maximum resources of init containers < total resources of containers",
            init: vec![req("initContainer1", 1, 1), req("initContainer2", 3, 3)],
            apps: vec![req("container1", 2, 2), req("container2", 3, 3)],
            expected: (5, 5),
        },
        Case {
            description: "calculate different resources independently",
            init: vec![req("initContainer1", 1, 1), req("initContainer2", 3, 4)],
            apps: vec![req("container1", 2, 1), req("container2", 3, 2)],
            expected: (5, 4),
        },
        Case {
            description: "maximum resources of init containers > total resources of long running containers, including restartable init containers",
            init: vec![
                restartable(req("restartableInit1", 2, 2)),
                req("initContainer2", 4, 4),
            ],
            apps: vec![req("container1", 1, 1), req("container2", 2, 2)],
            expected: (6, 6),
        },
        Case {
            description: "maximum resources of init containers < total resources of long running containers, including restartable init containers",
            init: vec![
                restartable(req("restartableInit1", 2, 2)),
                req("initContainer2", 4, 4),
            ],
            apps: vec![req("container1", 2, 2), req("container2", 3, 3)],
            expected: (7, 7),
        },
    ];
    for c in cases {
        let pd = pod("pod1", c.init, c.apps);
        let want: Requests = [
            (MEM.to_string(), c.expected.0 * GI),
            (HP.to_string(), c.expected.1 * GI),
        ]
        .into();
        assert_eq!(pod_requests(&pd).unwrap(), want, "{}", c.description);
    }
}

// ---------------------------------------------------------------------------------------
// B. memory_manager_test.go

/// `(numa node, resource, raw quantity text)` to the flattened reservation list.
fn reservations(list: &[(i32, &str, &str)]) -> Vec<(i32, String, Quantity)> {
    list.iter()
        .map(|(n, r, v)| (*n, r.to_string(), q(v)))
        .collect()
}

/// B.1 `validateReservedMemory`. nmm validates and converts in one function
/// (`getSystemReservedMemory`), so the cases run through it; only errors are asserted.
#[test]
fn test_validate_reserved_memory() {
    let m = return_machine_info();
    let full = [
        (0, MEM, "12"),
        (0, HP2M, "70"),
        (0, HP, "13"),
        (1, MEM, "5"),
        (1, HP2M, "7"),
    ];
    let cases: Vec<(&str, Vec<(&str, &str)>, Vec<(i32, &str, &str)>, Option<&str>)> = vec![
        ("Node Allocatable not set, reserved not set", vec![], vec![], None),
        (
            "Node Allocatable set to zero, reserved set to zero",
            vec![(MEM, "0")],
            vec![(0, MEM, "0")],
            None,
        ),
        (
            "Node Allocatable not set (equal zero), reserved set",
            vec![],
            vec![(0, MEM, "12")],
            Some("the total amount \"12\" of type \"memory\" is not equal to the value \"0\" determined by Node Allocatable feature"),
        ),
        (
            "Node Allocatable set, reserved not set",
            vec![(HP2M, "5")],
            vec![],
            Some("the total amount \"0\" of type \"hugepages-2Mi\" is not equal to the value \"5\" determined by Node Allocatable feature"),
        ),
        (
            "Reserved not equal to Node Allocatable",
            vec![(MEM, "5")],
            vec![(0, MEM, "12")],
            Some("the total amount \"12\" of type \"memory\" is not equal to the value \"5\" determined by Node Allocatable feature"),
        ),
        (
            "Reserved contains the NUMA node that does not exist under the machine",
            vec![(MEM, "17")],
            vec![(0, MEM, "12"), (2, MEM, "5")],
            Some("the reserved memory configuration references a NUMA node 2 that does not exist on this machine"),
        ),
        (
            "Reserved total equal to Node Allocatable",
            vec![(MEM, "17"), (HP2M, "77"), (HP, "13")],
            full.to_vec(),
            None,
        ),
        (
            "Reserved total hugapages-2M not equal to Node Allocatable",
            vec![(MEM, "17"), (HP2M, "14"), (HP, "13")],
            full.to_vec(),
            Some("the total amount \"77\" of type \"hugepages-2Mi\" is not equal to the value \"14\" determined by Node Allocatable feature"),
        ),
    ];
    for (description, node_alloc, rm, expected) in cases {
        let r = system_reserved_memory(&m, &reservations(&rm), &na(&node_alloc));
        match expected {
            Some(e) => assert_eq!(r.unwrap_err().to_string(), e, "{description}"),
            None => assert!(r.is_ok(), "{description}: {:?}", r.err()),
        }
    }
}

/// B.2 `convertReserved`.
#[test]
fn test_convert_pre_reserved() {
    let m = return_machine_info();
    let cases: Vec<(&str, Vec<(i32, &str, &str)>, SystemReserved)> = vec![
        ("Empty", vec![], reserved(&[(0, &[]), (1, &[])])),
        (
            "Single NUMA node is reserved",
            vec![(0, MEM, "12"), (0, HP2M, "70"), (0, HP, "13")],
            reserved(&[(0, &[(MEM, 12), (HP2M, 70), (HP, 13)]), (1, &[])]),
        ),
        (
            "Both NUMA nodes are reserved",
            vec![
                (0, MEM, "12"),
                (0, HP2M, "70"),
                (0, HP, "13"),
                (1, MEM, "5"),
                (1, HP2M, "7"),
            ],
            reserved(&[
                (0, &[(MEM, 12), (HP2M, 70), (HP, 13)]),
                (1, &[(MEM, 5), (HP2M, 7)]),
            ]),
        ),
    ];
    for (description, rm, expected) in cases {
        // Node Allocatable set to the sums, so that validation passes.
        let mut sums: BTreeMap<String, i64> = BTreeMap::new();
        for (_, r, v) in &rm {
            *sums.entry(r.to_string()).or_default() += v.parse::<i64>().unwrap();
        }
        let node_alloc: BTreeMap<String, Quantity> = sums
            .into_iter()
            .map(|(k, v)| (k, q(&v.to_string())))
            .collect();
        let got = system_reserved_memory(&m, &reservations(&rm), &node_alloc).unwrap();
        assert_eq!(got, expected, "{description}");
    }
}

/// B.3 `getSystemReservedMemory`.
#[test]
fn test_get_system_reserved_memory() {
    let m = return_machine_info();
    let cases: Vec<(&str, Vec<(&str, &str)>, Vec<(i32, &str, &str)>, Result<SystemReserved, &str>)> = vec![
        (
            "Should return empty map when reservation is not done",
            vec![],
            vec![],
            Ok(reserved(&[(0, &[]), (1, &[])])),
        ),
        (
            "Should return error when Allocatable reservation is not equal to the reserved memory",
            vec![],
            vec![(0, MEM, "1Gi")],
            Err("the total amount \"1Gi\" of type \"memory\" is not equal to the value \"0\" determined by Node Allocatable feature"),
        ),
        (
            "Reserved should be equal to systemReservedMemory",
            vec![(MEM, "2Gi")],
            vec![(0, MEM, "1Gi"), (1, MEM, "1Gi")],
            Ok(reserved(&[(0, &[(MEM, GI)]), (1, &[(MEM, GI)])])),
        ),
    ];
    for (description, node_alloc, rm, expected) in cases {
        let got = system_reserved_memory(&m, &reservations(&rm), &na(&node_alloc))
            .map_err(|e| e.to_string());
        assert_eq!(got, expected.map_err(str::to_string), "{description}");
    }
}

/// The hand-built node of `memory_manager_test.go`: memory (9/9/0/1/10) Gi, hp (5/5/0/0/5).
fn mm_fresh(id: u32) -> NumaNodeState {
    node(
        0,
        &[id],
        &[
            (MEM, t(9 * GI, 9 * GI, 0, GI, 10 * GI)),
            (HP, t(5 * GI, 5 * GI, 0, 0, 5 * GI)),
        ],
    )
}

/// A hand-built node: (asg, cells, memory free/reserved Gi, hp free/reserved Gi).
fn mm_node(asg: i64, cells: &[u32], mem: (u64, u64), hp: (u64, u64)) -> NumaNodeState {
    node(
        asg,
        cells,
        &[
            (MEM, t(9 * GI, mem.0 * GI, mem.1 * GI, GI, 10 * GI)),
            (HP, t(5 * GI, hp.0 * GI, hp.1 * GI, 0, 5 * GI)),
        ],
    )
}

fn mm_reserved() -> SystemReserved {
    reserved(&[(0, &[(MEM, GI)]), (1, &[(MEM, GI)])])
}

fn two_containers_on_n0() -> (MachineState, Assignments) {
    (
        ms(vec![
            (0, mm_node(4, &[0], (7, 2), (3, 2))),
            (1, mm_fresh(1)),
        ]),
        asg(vec![
            ("fakePod1", "fakeContainer1", blocks_mem_hp(&[0], 1)),
            ("fakePod1", "fakeContainer2", blocks_mem_hp(&[0], 1)),
        ]),
    )
}

/// B.4 `removeStaleState` with no active pods: every pod's containers are removed. Case 1
/// ("Should fail - policy returns an error") uses a mock policy that nmm does not have
/// (its policies are a closed set); not ported.
#[test]
fn test_remove_stale_state() {
    let cases = vec![
        (
            "Stale state successfully removed, without multi NUMA assignments",
            two_containers_on_n0(),
        ),
        (
            "Stale state successfully removed, with multi NUMA assignments",
            (
                ms(vec![
                    (0, mm_node(4, &[0, 1], (0, 9), (4, 1))),
                    (1, mm_node(4, &[0, 1], (5, 4), (4, 1))),
                ]),
                asg(vec![
                    (
                        "fakePod1",
                        "fakeContainer1",
                        vec![blk(&[0, 1], MEM, 12 * GI), blk(&[0, 1], HP, GI)],
                    ),
                    (
                        "fakePod1",
                        "fakeContainer2",
                        vec![blk(&[0, 1], MEM, GI), blk(&[0, 1], HP, GI)],
                    ),
                ]),
            ),
        ),
    ];
    for (description, (state, a)) in cases {
        let mut p = policy(mm_reserved(), state, a);
        let pods: Vec<String> = p.assignments.keys().cloned().collect();
        for uid in pods {
            p.remove_pod(&uid);
        }
        assert_eq!(p.assignments, Assignments::new(), "{description}");
        assert_eq!(
            *p.machine_state(),
            ms(vec![(0, mm_fresh(0)), (1, mm_fresh(1))]),
            "{description}"
        );
    }
}

/// B.5 `Allocate` then `AddContainer`. The container map is kubelet bookkeeping nmm does not
/// keep; case 3 ("Allocation should fail if policy returns an error") needs a mock policy
/// and is not ported.
#[test]
fn test_add_container() {
    let fresh = || ms(vec![(0, mm_fresh(0)), (1, mm_fresh(1))]);
    let small = || get_pod("fakePod1", guaranteed("fakeContainer1", "1Gi", "1Gi"));
    struct Case {
        description: &'static str,
        state: MachineState,
        assignments: Assignments,
        pod: PodInfo,
        expected_error: Option<&'static str>,
        expected_state: MachineState,
    }
    let one_on_n0 = || {
        ms(vec![
            (0, mm_node(2, &[0], (8, 1), (4, 1))),
            (1, mm_fresh(1)),
        ])
    };
    let cases = vec![
        Case {
            description: "Correct allocation and adding container on NUMA 0",
            state: fresh(),
            assignments: Assignments::new(),
            pod: small(),
            expected_error: None,
            expected_state: one_on_n0(),
        },
        Case {
            description: "Correct allocation of container requiring amount of memory higher than capacity of one NUMA node",
            state: fresh(),
            assignments: Assignments::new(),
            pod: get_pod("fakePod1", guaranteed("fakeContainer1", "12Gi", "4Gi")),
            expected_error: None,
            expected_state: ms(vec![
                (0, mm_node(2, &[0, 1], (0, 9), (1, 4))),
                (1, mm_node(2, &[0, 1], (6, 3), (5, 0))),
            ]),
        },
        Case {
            description: "Should fail if try to allocate container requiring amount of memory higher than capacity of one NUMA node but a small pod is already allocated",
            state: one_on_n0(),
            assignments: asg(vec![("fakePod1", "fakeContainer1", blocks_mem_hp(&[0], 1))]),
            pod: get_pod("fakePod2", guaranteed("fakeContainer2", "12Gi", "4Gi")),
            expected_error: Some("[memorymanager] failed to get the default NUMA affinity, no NUMA nodes with enough memory is available"),
            expected_state: one_on_n0(),
        },
    ];
    for c in cases {
        let mut p = policy(mm_reserved(), c.state, c.assignments);
        let container = c.pod.app_containers().next().unwrap().clone();
        let r = p.allocate(&c.pod, &container, NO_HINT);
        match c.expected_error {
            Some(e) => assert_eq!(r.unwrap_err(), e, "{}", c.description),
            None => r.unwrap_or_else(|e| panic!("{}: {e}", c.description)),
        }
        p.start_containers(&c.pod);
        assert_eq!(*p.machine_state(), c.expected_state, "{}", c.description);
    }

    let description = "Shouldn't return any error when policy is set as None";
    let config = KubeletConfig {
        memory_manager_policy: Some("None".into()),
        ..Default::default()
    };
    let mut m = MemoryManager::new(&return_machine_info(), &config, &BTreeMap::new()).unwrap();
    let pd = small();
    let container = pd.app_containers().next().unwrap().clone();
    m.allocate(&pd, &container, NO_HINT)
        .unwrap_or_else(|e| panic!("{description}: {e:?}"));
    m.start_containers(&pd);
    assert_eq!(m.machine_state(), MachineState::new(), "{description}");
    assert_eq!(m.assignments(), Assignments::new(), "{description}");
}

/// B.6 `RemoveContainer` by container ID (fakeID1 -> fakePod1/fakeContainer1, fakeID2 ->
/// fakePod1/fakeContainer2; fakeID3 is not in the map, so nothing is removed).
#[test]
fn test_remove_container() {
    let multi = || {
        (
            ms(vec![
                (0, mm_node(4, &[0, 1], (0, 9), (3, 2))),
                (1, mm_node(4, &[0, 1], (5, 4), (5, 0))),
            ]),
            asg(vec![
                ("fakePod1", "fakeContainer1", blocks_mem_hp(&[0, 1], 1)),
                (
                    "fakePod1",
                    "fakeContainer2",
                    vec![blk(&[0, 1], MEM, 12 * GI), blk(&[0, 1], HP, GI)],
                ),
            ]),
        )
    };
    let cases = vec![
        (
            "Correct removing of a container",
            Some("fakeContainer2"),
            two_containers_on_n0(),
            (
                asg(vec![("fakePod1", "fakeContainer1", blocks_mem_hp(&[0], 1))]),
                ms(vec![
                    (0, mm_node(2, &[0], (8, 1), (4, 1))),
                    (1, mm_fresh(1)),
                ]),
            ),
        ),
        (
            "Correct removing of a multi NUMA container",
            Some("fakeContainer2"),
            multi(),
            (
                asg(vec![(
                    "fakePod1",
                    "fakeContainer1",
                    blocks_mem_hp(&[0, 1], 1),
                )]),
                ms(vec![
                    (0, mm_node(2, &[0, 1], (9, 0), (4, 1))),
                    (1, mm_node(2, &[0, 1], (8, 1), (5, 0))),
                ]),
            ),
        ),
        (
            "Should do nothing if container is not in containerMap",
            None,
            two_containers_on_n0(),
            {
                let (s, a) = two_containers_on_n0();
                (a, s)
            },
        ),
    ];
    for (description, remove, (state, a), (want_a, want_s)) in cases {
        let mut p = policy(mm_reserved(), state, a);
        if let Some(ctr) = remove {
            p.remove_container("fakePod1", ctr);
        }
        assert_eq!(p.assignments, want_a, "{description}");
        assert_eq!(*p.machine_state(), want_s, "{description}");
    }
}

/// B.7 `NewManager`.
#[test]
fn test_new_manager() {
    let m = return_machine_info();
    struct Case {
        description: &'static str,
        policy: &'static str,
        node_allocatable: Vec<(&'static str, &'static str)>,
        reserved_memory: Vec<(i32, &'static str, &'static str)>,
        expected: Result<(&'static str, Option<SystemReserved>), &'static str>,
    }
    let cases = vec![
        Case {
            description: "Successful creation of Memory Manager instance",
            policy: "Static",
            node_allocatable: vec![(MEM, "2Gi")],
            reserved_memory: vec![(0, MEM, "1Gi"), (1, MEM, "1Gi")],
            expected: Ok(("Static", Some(reserved(&[(0, &[(MEM, GI)]), (1, &[(MEM, GI)])])))),
        },
        Case {
            description: "Should return an error when systemReservedMemory (configured with kubelet flag) does not comply with Node Allocatable feature values",
            policy: "Static",
            node_allocatable: vec![(MEM, "2Gi")],
            reserved_memory: vec![(0, MEM, "1Gi"), (1, MEM, "2Gi")],
            expected: Err("the total amount \"3Gi\" of type \"memory\" is not equal to the value \"2Gi\" determined by Node Allocatable feature"),
        },
        Case {
            description: "Should return an error when memory reserved for system is empty (systemReservedMemory)",
            policy: "Static",
            node_allocatable: vec![],
            reserved_memory: vec![],
            expected: Err("[memorymanager] you should specify the system reserved memory"),
        },
        Case {
            description: "Should return an error when policy name is not correct",
            policy: "fake",
            node_allocatable: vec![],
            reserved_memory: vec![],
            expected: Err("unknown policy: \"fake\""),
        },
        Case {
            description: "Should create manager with \"none\" policy",
            policy: "None",
            node_allocatable: vec![],
            reserved_memory: vec![],
            expected: Ok(("None", None)),
        },
    ];
    for c in cases {
        let mut config = static_config(&c.reserved_memory);
        config.memory_manager_policy = Some(c.policy.into());
        let r = MemoryManager::new(&m, &config, &na(&c.node_allocatable));
        match c.expected {
            Err(e) => assert_eq!(r.unwrap_err(), e, "{}", c.description),
            Ok((name, sr)) => {
                let mgr = r.unwrap_or_else(|e| panic!("{}: {e}", c.description));
                assert_eq!(mgr.policy_name(), name, "{}", c.description);
                assert_eq!(
                    mgr.static_policy().map(|p| p.system_reserved().clone()),
                    sr,
                    "{}",
                    c.description
                );
            }
        }
    }
}

/// B.8 manager-level `GetTopologyHints`: stale state (pods not in `activePods`) is removed
/// first, then the policy answers for fakePod2/fakeContainer1.
#[test]
fn test_get_topology_hints() {
    let cases: Vec<(&str, Vec<&str>, Vec<TopologyHint>)> = vec![
        (
            "Successful hint generation",
            vec!["fakePod1"],
            vec![h(&[0], true), h(&[1], true)],
        ),
        (
            "Successful hint generation",
            vec![],
            vec![h(&[0], true), h(&[1], true), h(&[0, 1], false)],
        ),
    ];
    for (description, active, want) in cases {
        let (state, a) = two_containers_on_n0();
        let mut p = policy(mm_reserved(), state, a);
        let stale: Vec<String> = p
            .assignments
            .keys()
            .filter(|uid| !active.contains(&uid.as_str()))
            .cloned()
            .collect();
        for uid in stale {
            p.remove_pod(&uid);
        }
        let pd = get_pod("fakePod2", guaranteed("fakeContainer1", "1Gi", "1Gi"));
        let c = pd.app_containers().next().unwrap();
        assert_eq!(
            p.get_topology_hints(&pd, c),
            hint_map(&[(MEM, want.clone()), (HP, want)]),
            "{description} (active pods {active:?})"
        );
    }
}

/// B.9.
#[test]
fn test_allocate_and_add_pod_with_init_containers() {
    let description =
        "should remove init containers from the state file, once app container started";
    let fresh = |id: u32| {
        node(
            0,
            &[id],
            &[
                (MEM, t(9728 * MI, 9728 * MI, 0, 512 * MI, 10 * GI)),
                (HP, t(5 * GI, 5 * GI, 0, 0, 5 * GI)),
            ],
        )
    };
    let mut p = policy(
        reserved(&[(0, &[(MEM, 512 * MI)])]),
        ms(vec![(0, fresh(0)), (1, fresh(1))]),
        Assignments::new(),
    );
    let pd = pod(
        "pod1",
        vec![guaranteed("initContainer1", "7Gi", "5Gi")],
        vec![guaranteed("container1", "4Gi", "4Gi")],
    );
    allocate_all(&mut p, &pd);
    p.start_containers(&pd);
    assert_eq!(
        norm(p.assignments.clone()),
        norm(asg(vec![("pod1", "container1", blocks_mem_hp(&[0], 4))])),
        "{description}"
    );
    let want = ms(vec![
        (
            0,
            node(
                2,
                &[0],
                &[
                    (MEM, t(9728 * MI, 5632 * MI, 4 * GI, 512 * MI, 10 * GI)),
                    (HP, t(5 * GI, GI, 4 * GI, 0, 5 * GI)),
                ],
            ),
        ),
        (1, fresh(1)),
    ]);
    assert_eq!(*p.machine_state(), want, "{description}");
}

// ---------------------------------------------------------------------------------------
// C. state/state_checkpoint_test.go (classic). nmm has no file I/O in the engine: the
// kubelet's "could not restore state from checkpoint: " prefix is added by the agent, so
// the cases assert the decoder's own error text. "Restore non-existing checkpoint" (a
// file-system case) is not ported.

const VALID_CHECKPOINT: &str = r#"{"policyName":"static","machineState":{"0":{"numberOfAssignments":0,"memoryMap":{"memory":{"total":2048,"systemReserved":512,"allocatable":1536,"reserved":512,"free":1024}},"cells":[]}},"entries":{"pod":{"container1":[{"numaAffinity":[0],"type":"memory","size":512}]}},"checksum": 4215593881}"#;

#[test]
fn test_checkpoint_state_restore() {
    let description = "Restore valid checkpoint";
    let cp =
        decode_v132(VALID_CHECKPOINT.as_bytes()).unwrap_or_else(|e| panic!("{description}: {e}"));
    assert_eq!(cp.policy_name, "static", "{description}");
    assert_eq!(
        cp.machine_state,
        ms(vec![(
            0,
            node(0, &[], &[(MEM, t(1536, 1024, 512, 512, 2048))])
        )]),
        "{description}"
    );
    assert_eq!(
        cp.entries,
        asg(vec![("pod", "container1", vec![blk(&[0], MEM, 512)])]),
        "{description}"
    );

    let description = "Restore checkpoint with invalid checksum";
    let bad = VALID_CHECKPOINT
        .replace("numaAffinity", "affinity")
        .replace("4215593881", "101010");
    let e = decode_v132(bad.as_bytes()).unwrap_err().to_string();
    assert!(e.contains("checkpoint is corrupted"), "{description}: {e}");

    let description = "Restore checkpoint with invalid JSON";
    let e = decode_v132(b"{").unwrap_err().to_string();
    assert!(
        e.contains("unexpected end of JSON input"),
        "{description}: {e}"
    );
}

/// TestCheckpointStateStore: what is written is read back identically.
#[test]
fn test_checkpoint_state_store() {
    let state = ms(vec![(
        0,
        node(0, &[], &[(MEM, t(1536, 512, 1024, 512, 2048))]),
    )]);
    let a = asg(vec![("pod", "container1", vec![blk(&[0], MEM, 1024)])]);
    let cp = decode_v132(encode("static", &state, &a).as_bytes()).unwrap();
    assert_eq!(cp.machine_state, state);
    assert_eq!(cp.entries, a);
}

/// TestCheckpointStateHelpers: the state setters/getters (and `Delete`) are plain maps in
/// nmm; the cases check that each assignment shape survives the checkpoint round trip.
#[test]
fn test_checkpoint_state_helpers() {
    let state = ms(vec![(
        0,
        node(0, &[], &[(MEM, t(1536, 512, 1024, 512, 2048))]),
    )]);
    let cases = vec![
        (
            "One container",
            asg(vec![("pod", "container1", vec![blk(&[0], MEM, 1024)])]),
        ),
        (
            "Two containers",
            asg(vec![
                ("pod", "container1", vec![blk(&[0], MEM, 512)]),
                ("pod", "container2", vec![blk(&[0], MEM, 512)]),
            ]),
        ),
        (
            "Container without assigned memory",
            asg(vec![("pod", "container1", vec![])]),
        ),
    ];
    for (description, a) in cases {
        let cp = decode_v132(encode("static", &state, &a).as_bytes()).unwrap();
        assert_eq!(cp.machine_state, state, "{description}");
        assert_eq!(cp.entries, a, "{description}");
    }
}

/// Sanity check the fixtures against nmm's default state (not an upstream case).
#[test]
fn fixtures_agree_with_default_machine_state() {
    assert_eq!(
        default_machine_state(
            &machine(&[(0, 3 * GI, 1)]),
            &reserved(&[(0, &[(MEM, 512 * MI)])])
        ),
        ms(vec![(
            0,
            node(
                0,
                &[0],
                &[
                    (MEM, t(1536 * MI, 1536 * MI, 0, 512 * MI, 3 * GI)),
                    (HP, t(GI, GI, 0, 0, GI)),
                ],
            ),
        )])
    );
}
