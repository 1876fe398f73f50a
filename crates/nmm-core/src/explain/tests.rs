use super::*;
use crate::kubelet_config::MemoryReservation;
use crate::machine::{Cpu, NumaNode};
use crate::pod::compute_qos;
use crate::quantity::Quantity;

const GI: u64 = 1 << 30;

/// Two NUMA nodes of 4 CPUs and 16Gi (8Gi when `small`), 1Gi reserved on each.
fn machine(mem: u64) -> Machine {
    let nodes: Vec<NumaNode> = (0..2u32)
        .map(|id| NumaNode {
            id,
            cpus: CpuSet::from_ids(id * 4..id * 4 + 4),
            memory: mem,
            hugepages: BTreeMap::new(),
            distances: Vec::new(),
        })
        .collect();
    let cpus = (0..8u32)
        .map(|id| Cpu {
            id,
            core: id,
            socket: id / 4,
            numa: id / 4,
        })
        .collect();
    let mut m = Machine { nodes, cpus };
    m.default_distances();
    m
}

fn config(policy: &str, cpu_static: bool) -> KubeletConfig {
    let map = |kv: &[(&str, &str)]| {
        Some(
            kv.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<BTreeMap<_, _>>(),
        )
    };
    KubeletConfig {
        memory_manager_policy: Some("Static".into()),
        reserved_memory: Some(
            (0..2)
                .map(|n| MemoryReservation {
                    numa_node: n,
                    limits: vec![("memory".into(), "1Gi".into())],
                })
                .collect(),
        ),
        kube_reserved: if cpu_static {
            map(&[("memory", "1Gi"), ("cpu", "1")])
        } else {
            map(&[("memory", "1Gi")])
        },
        system_reserved: map(&[("memory", "924Mi")]),
        eviction_hard: map(&[("memory.available", "100Mi")]),
        cpu_manager_policy: cpu_static.then(|| "static".to_string()),
        topology_manager_policy: Some(policy.into()),
        ..Default::default()
    }
}

/// A Guaranteed single-container pod (or several containers: `(name, cpu, memory)`).
fn pod(name: &str, containers: &[(&str, &str, &str)]) -> PodInfo {
    let containers: Vec<ContainerInfo> = containers
        .iter()
        .map(|(c, cpu, mem)| {
            let r: BTreeMap<String, Quantity> = [
                ("cpu".to_string(), Quantity::parse(cpu).unwrap()),
                ("memory".to_string(), Quantity::parse(mem).unwrap()),
            ]
            .into();
            ContainerInfo {
                name: c.to_string(),
                init: false,
                restartable: false,
                requests: r.clone(),
                limits: r,
            }
        })
        .collect();
    PodInfo {
        uid: format!("uid-{name}"),
        name: name.into(),
        namespace: "default".into(),
        qos: compute_qos(&containers),
        containers,
    }
}

fn run(
    m: &Machine,
    c: &KubeletConfig,
    steps: &[HistoryStep],
    p: &PodInfo,
) -> Result<Explanation, ExplainError> {
    run_from(m, c, &StartOptions::default(), steps, p)
}

/// [`run`] on a node started with `start` (checkpoints, devices).
fn run_from(
    m: &Machine,
    c: &KubeletConfig,
    start: &StartOptions,
    steps: &[HistoryStep],
    p: &PodInfo,
) -> Result<Explanation, ExplainError> {
    explain(
        &History {
            machine: m,
            config: c,
            start,
            steps,
        },
        p,
    )
}

#[test]
fn words() {
    assert_eq!(mask_text(NumaMask(0b101)), "{0,2}");
    assert_eq!(
        hint_text(&TopologyHint::new(NumaMask(1), true)),
        "{0} preferred"
    );
    assert_eq!(hint_text(&TopologyHint::NONE), "any");
    assert_eq!(hint_words(&TopologyHint::NONE), "any node, not preferred");
    assert_eq!(
        and_list(&["a".into(), "b".into(), "c".into()]),
        "a, b and c"
    );
    assert_eq!(mask_text(NumaMask(0b1111_0111)), "{0-2,4-7}");
    assert_eq!(mask_text(NumaMask(0b1011)), "{0,1,3}");
    assert_eq!(bytes_at_most(133034381312), "123.8Gi");
    assert_eq!(bytes_text(133034381312), "123.9Gi");
    assert_eq!(nodes_text(&[1]), "node 1");
    assert_eq!(nodes_text(&[0, 1]), "nodes 0 and 1");
    let o: BTreeMap<u32, String> = [
        (0, "already holds single-NUMA allocations".to_string()),
        (1, "already holds single-NUMA allocations".to_string()),
    ]
    .into();
    assert_eq!(
        obstacle_sentence(&o),
        "nodes 0 and 1 already hold single-NUMA allocations"
    );
}

#[test]
fn preferred_candidates_follow_the_kubelet_merge() {
    let h = |m: u64, p: bool| TopologyHint::new(NumaMask(m), p);
    let any = TopologyHint {
        affinity: None,
        preferred: true,
    };
    let all = NumaMask(0b11);
    // {0},{1} preferred by both.
    let lists = vec![
        vec![h(1, true), h(2, true), h(3, false)],
        vec![h(1, true), h(2, true)],
    ];
    assert_eq!(
        preferred_candidates(&lists, all),
        vec![NumaMask(1), NumaMask(2)]
    );
    // A list without preference accepts any mask.
    let lists = vec![vec![any], vec![h(2, true)]];
    assert_eq!(preferred_candidates(&lists, all), vec![NumaMask(2)]);
    // No common preferred mask.
    let lists = vec![vec![h(1, true)], vec![h(3, true)]];
    assert!(preferred_candidates(&lists, all).is_empty());
    // Nobody has a preference: the default mask.
    assert_eq!(
        preferred_candidates(&[vec![any], vec![any]], all),
        vec![all]
    );
}

/// a (10Gi) and b (4Gi) fill node 0, c (12Gi) node 1; `big` (12Gi) fits on no single
/// node and single-numa-node forbids spanning; removing c (and only c) makes room.
#[test]
fn single_numa_node_rejection_fits_after_removing_one_pod() {
    let m = machine(16 * GI);
    let c = config("single-numa-node", false);
    let steps = vec![
        HistoryStep::Admit(pod("a", &[("c", "1", "10Gi")])),
        HistoryStep::Admit(pod("b", &[("c", "1", "4Gi")])),
        HistoryStep::Admit(pod("c", &[("c", "1", "12Gi")])),
    ];
    let e = run(&m, &c, &steps, &pod("big", &[("app", "2", "12Gi")])).unwrap();
    assert!(!e.admitted);
    assert_eq!(e.reason.as_deref(), Some("UnexpectedAdmissionError"));
    assert_eq!(
        e.verdict,
        "pod big is rejected: the memory manager could not allocate container app (UnexpectedAdmissionError)"
    );
    assert_eq!(
        e.why[0],
        "memory: needs 12Gi on one NUMA node; the largest free single node has 3Gi (node 1); single-numa-node forbids spanning nodes"
    );
    assert!(
        e.why[1].starts_with("so the memory manager offered no hints"),
        "{:?}",
        e.why
    );
    assert_eq!(
        e.fixes[0],
        "it fits after removing pod c (frees memory 12Gi on node 1)"
    );
    assert_eq!(
        e.fixes[1],
        "or lower its memory request to at most 3Gi so that one NUMA node can hold it"
    );
    assert_eq!(
        e.fixes[2],
        "it would be rejected under none, best-effort and restricted as well"
    );
    let alt = e.alternatives.as_ref().unwrap();
    assert_eq!(alt.running_pods, 3);
    assert_eq!(alt.single_removals.len(), 1);
    assert_eq!(alt.single_removals[0].uid, "uid-c");
    assert!(alt.fits_on_empty_node);
    // The machine state the container met.
    let mem = &e.facts.memory[0];
    assert_eq!(mem.request, 12 * GI);
    assert_eq!(
        mem.nodes.iter().map(|n| n.free).collect::<Vec<_>>(),
        vec![GI, 3 * GI]
    );
    assert_eq!(mem.largest_free_node.as_ref().unwrap().numa_nodes, vec![1]);
    // Groups are not allowed: both nodes hold single-NUMA allocations.
    assert!(mem.largest_free_group.is_none());
    let d = &e.decisions[0];
    assert_eq!(
        d.providers[1].text,
        "memory: no hints: no NUMA node or allowed group has 12Gi memory free, and an empty answer reads as no preference"
    );
    assert_eq!(e.containers[0].outcome, "allocation-failed");
    assert_eq!(e.containers[0].failure.as_ref().unwrap().provider, "memory");
}

/// cpu prefers single nodes, memory (10Gi > 7Gi per node) only {0,1}: restricted
/// rejects the non-preferred {0,1}; best-effort and none would admit.
#[test]
fn restricted_rejects_the_best_non_preferred_hint() {
    let m = machine(8 * GI);
    let c = config("restricted", true);
    let e = run(&m, &c, &[], &pod("wide", &[("app", "2", "10Gi")])).unwrap();
    assert_eq!(e.reason.as_deref(), Some("TopologyAffinityError"));
    let d = &e.decisions[0];
    assert_eq!(
        d.providers[0].text,
        "cpu: {0} preferred, {1} preferred, {0,1}"
    );
    assert_eq!(d.providers[1].text, "memory: {0,1} preferred");
    assert_eq!(
        d.why_merged,
        "no mask is preferred by all providers (cpu prefers {0}, {1}; memory prefers {0,1}); best non-preferred is {0,1}"
    );
    assert_eq!(
        d.verdict,
        "restricted rejects: the merged hint ({0,1}) is not preferred (TopologyAffinityError)"
    );
    let admit: Vec<(&str, bool)> = d
        .under_each_policy
        .iter()
        .map(|v| (v.policy.as_str(), v.admit))
        .collect();
    assert_eq!(
        admit,
        vec![
            ("none", true),
            ("best-effort", true),
            ("restricted", false),
            ("single-numa-node", false)
        ]
    );
    assert!(e
        .why
        .contains(&"memory: needs 10Gi — more than one NUMA node can offer — so it prefers only multi-node groups".to_string()));
    assert_eq!(
        e.fixes,
        vec![
            "it does not fit even on an empty node with this machine and configuration",
            "lower its memory request to at most 7Gi so that one NUMA node can hold it",
            "under none it would be admitted (app: CPUs 1-2, memory 10Gi on nodes 0 and 1)",
            "under best-effort it would be admitted (app: NUMA {0,1}, CPUs 1-2, memory 10Gi on nodes 0 and 1)",
            "it would be rejected under single-numa-node as well",
        ]
    );
    let cpu = e.facts.cpu.as_ref().unwrap();
    assert_eq!(cpu.reserved, "0");
    assert_eq!(
        cpu.nodes.iter().map(|n| n.free).collect::<Vec<_>>(),
        vec![3, 4]
    );
}

/// A pod on node 0 leaves 6Gi there; memory offers no hints for 10Gi (the group {0,1}
/// is not allowed), cpu's {0} wins, and the memory manager cannot extend it.
#[test]
fn extension_failure_names_the_blocking_node() {
    let m = machine(8 * GI);
    let c = config("restricted", true);
    let steps = vec![HistoryStep::Admit(pod("small", &[("app", "1", "1Gi")]))];
    let e = run(&m, &c, &steps, &pod("wide", &[("app", "2", "10Gi")])).unwrap();
    assert!(e
        .message
        .as_deref()
        .unwrap()
        .contains("failed to find NUMA nodes to extend the current topology hint"));
    assert_eq!(
        e.decisions[0].why_merged,
        "{0} and {1} are preferred by every provider; {0} wins as the narrowest (fewest nodes, then the lowest ids)"
    );
    assert!(
        e.why.contains(&"the merged hint's nodes {0} lack free memory (only 6Gi memory free of the 10Gi needed) and no wider group is allowed because node 0 already holds single-NUMA allocations".to_string()),
        "{:?}",
        e.why
    );
}

#[test]
fn admitted_pod_says_why_its_hint_won() {
    let m = machine(8 * GI);
    let c = config("restricted", true);
    let e = run(&m, &c, &[], &pod("fits", &[("app", "2", "1Gi")])).unwrap();
    assert!(e.admitted);
    assert!(e.why.is_empty() && e.fixes.is_empty() && e.alternatives.is_none());
    assert_eq!(
        e.verdict,
        "pod fits is admitted (app: NUMA {0}, CPUs 1-2, memory 1Gi on node 0)"
    );
    assert_eq!(
        e.decisions[0].why_merged,
        "{0} and {1} are preferred by every provider; {0} wins as the narrowest (fewest nodes, then the lowest ids)"
    );
    assert_eq!(e.containers[0].outcome, "admitted");
    assert_eq!(e.containers[0].exclusive_cpus, 2);
    assert_eq!(e.facts.subject, "pod fits");
}

/// Container scope: the second container's hints see the first one's CPUs.
#[test]
fn second_container_sees_the_first_ones_cpus() {
    let m = machine(8 * GI);
    let c = config("single-numa-node", true);
    let p = pod("two", &[("first", "3", "1Gi"), ("second", "4", "1Gi")]);
    let e = run(&m, &c, &[], &p).unwrap();
    assert!(e.admitted, "{:?}", e.why);
    assert_eq!(e.decisions.len(), 2);
    // first took CPUs 1-3 (0 is reserved): node 0 has nothing left for second.
    assert_eq!(e.decisions[1].container.as_deref(), Some("second"));
    assert_eq!(
        e.decisions[1].providers[0].text,
        "cpu: {1} preferred, {0,1}"
    );
    assert_eq!(
        e.decisions[1].why_merged,
        "single-numa-node keeps only preferred single-node hints; the only preferred mask every provider accepts is {1}"
    );
    assert_eq!(e.containers[1].cpus, "4-7");
}

/// When the second container cannot get its CPUs, the first one's are released.
#[test]
fn cpu_shortage_at_the_second_container() {
    let m = machine(8 * GI);
    let c = config("single-numa-node", true);
    let p = pod("two", &[("first", "3", "1Gi"), ("second", "5", "1Gi")]);
    let e = run(&m, &c, &[], &p).unwrap();
    assert_eq!(e.reason.as_deref(), Some("TopologyAffinityError"));
    assert_eq!(e.containers[0].outcome, "released");
    assert_eq!(e.containers[1].outcome, "topology-rejected");
    assert_eq!(e.facts.subject, "container second");
    assert_eq!(
        e.why[0],
        "cpu: needs 5 exclusive CPUs but only 4 are free (0 on node 0 and 4 on node 1; CPU 0 reserved)"
    );
    assert_eq!(
        e.decisions[1].why_merged,
        "cpu cannot be satisfied (an empty hint list), so no merge can be preferred; the result is any node, not preferred"
    );
    assert!(e
        .alternatives
        .as_ref()
        .is_some_and(|a| !a.fits_on_empty_node));
}

/// Too many CPUs and too much memory for one node: a smaller memory request alone
/// would not help, so it is not suggested.
#[test]
fn size_fixes_are_checked_by_the_engine() {
    let m = machine(8 * GI);
    let c = config("single-numa-node", true);
    let e = run(&m, &c, &[], &pod("huge", &[("app", "5", "10Gi")])).unwrap();
    assert_eq!(e.reason.as_deref(), Some("TopologyAffinityError"));
    assert!(e.why.contains(&"cpu: needs 5 exclusive CPUs on one NUMA node; the most free on a single node is 4 (node 1); single-numa-node forbids spanning nodes".to_string()), "{:?}", e.why);
    assert!(e.why.contains(&"memory: needs 10Gi on one NUMA node; no NUMA node can hold that even when empty (the largest allocatable is 7Gi on node 0); single-numa-node forbids spanning nodes".to_string()), "{:?}", e.why);
    assert!(
        !e.fixes.iter().any(|f| f.contains("lower its")),
        "{:?}",
        e.fixes
    );
    // Alone, the memory is the only obstacle: the suggestion is checked and kept.
    let e = run(&m, &c, &[], &pod("mem", &[("app", "4", "10Gi")])).unwrap();
    assert!(
        e.fixes.contains(
            &"lower its memory request to at most 7Gi so that one NUMA node can hold it"
                .to_string()
        ),
        "{:?}",
        e.fixes
    );
}

/// An app container may reuse its init container's CPUs, which pins its placements to
/// their node.
#[test]
fn reusable_init_cpus_explain_a_missing_preference() {
    let m = machine(8 * GI);
    let c = config("restricted", true);
    let steps = vec![HistoryStep::Admit(pod("p0", &[("app", "2", "1Gi")]))];
    let mut p = pod("p1", &[("init0", "1", "512Mi"), ("c0", "4", "512Mi")]);
    p.containers[0].init = true;
    let e = run(&m, &c, &steps, &p).unwrap();
    assert_eq!(e.reason.as_deref(), Some("TopologyAffinityError"));
    assert_eq!(e.decisions[1].providers[0].text, "cpu: {0,1}");
    assert!(
        e.why.contains(&"cpu: no hint is preferred: it may reuse the CPUs 3 of init container init0 (on node 0), so only placements including that node count; 0 free there plus 1 reusable fall short of the 4 needed on 1 NUMA node".to_string()),
        "{:?}",
        e.why
    );
    // Even on an empty node init0 lands on node 0 (CPU 0 is reserved), leaving 2 + 1.
    assert_eq!(
        e.fixes[0],
        "it does not fit even on an empty node with this machine and configuration"
    );
}

#[test]
fn pod_scope_has_one_decision() {
    let m = machine(8 * GI);
    let mut c = config("restricted", true);
    c.topology_manager_scope = Some("pod".into());
    let p = pod("pair", &[("a", "2", "4Gi"), ("b", "2", "4Gi")]);
    let e = run(&m, &c, &[], &p).unwrap();
    assert_eq!(e.decisions.len(), 1);
    assert_eq!(e.decisions[0].scope, "pod");
    assert_eq!(e.decisions[0].providers[1].text, "memory: {0,1} preferred");
    assert!(!e.admitted);
    assert!(e
        .containers
        .iter()
        .all(|c| c.outcome == "topology-rejected"));
}

#[test]
fn errors_name_the_step() {
    let m = machine(8 * GI);
    let c = config("restricted", true);
    let steps = vec![HistoryStep::Admit(pod("a", &[("app", "1", "1Gi")]))];
    let err = run(&m, &c, &steps, &pod("a", &[("app", "1", "1Gi")])).unwrap_err();
    assert!(matches!(err, ExplainError::Step { index: 1, .. }), "{err}");
    let mut bad = c.clone();
    bad.topology_manager_policy = Some("fancy".into());
    let err = run(&m, &bad, &[], &pod("a", &[("app", "1", "1Gi")])).unwrap_err();
    assert!(matches!(err, ExplainError::Startup(_)), "{err}");
}

/// A pod known only from the checkpoints (a restarted node) has no name: the fix names it
/// by uid and the containers the books hold for it.
#[test]
fn removal_of_a_checkpoint_pod_names_its_uid_and_containers() {
    let m = machine(16 * GI);
    let c = config("single-numa-node", false);
    let mut node = Node::start(m.clone(), c.clone(), StartOptions::default()).unwrap();
    for p in [
        pod("a", &[("c", "1", "10Gi")]),
        pod("b", &[("c", "1", "4Gi")]),
        pod("c", &[("web", "1", "8Gi"), ("sidecar", "1", "4Gi")]),
    ] {
        assert!(node.admit(&p).unwrap().admitted);
    }
    let start = StartOptions {
        memory_checkpoint: Some(crate::node::RawCheckpoint::Bytes(
            node.memory_checkpoint().into_bytes(),
        )),
        cpu_checkpoint: Some(crate::node::RawCheckpoint::Bytes(
            node.cpu_checkpoint().into_bytes(),
        )),
        ..Default::default()
    };
    let e = run_from(&m, &c, &start, &[], &pod("big", &[("app", "2", "12Gi")])).unwrap();
    assert!(!e.admitted);
    assert_eq!(
        e.fixes[0],
        "it fits after removing pod with uid uid-c (containers sidecar and web) (frees memory 12Gi on node 1)"
    );
    let r = &e.alternatives.as_ref().unwrap().single_removals[0];
    assert_eq!((r.uid.as_str(), r.name.as_deref()), ("uid-c", None));
    assert_eq!(r.containers, vec!["sidecar".to_string(), "web".to_string()]);
}

/// The Device Manager answers an empty map for a container that asks for no device: no
/// preference, which the merge text does not call "nothing fits".
#[test]
fn a_container_without_devices_is_no_preference_for_the_device_manager() {
    let m = machine(8 * GI);
    let c = config("single-numa-node", true);
    let mut p = pod("plain", &[("app", "1", "1Gi")]);
    p.containers[0]
        .requests
        .insert("cpu".into(), Quantity::parse("500m").unwrap());
    p.qos = compute_qos(&p.containers);
    let start = StartOptions {
        devices: vec![crate::devicemanager::Device {
            resource: "example.com/nic".into(),
            id: "nic-0".into(),
            numa: Some(vec![0]),
            healthy: true,
        }],
        ..Default::default()
    };
    let e = run_from(&m, &c, &start, &[], &p).unwrap();
    assert!(e.admitted);
    let why = &e.decisions[0].why_merged;
    assert!(why.contains("no provider has a NUMA preference"), "{why}");
    assert!(!why.contains("offered no hints"), "{why}");
}
