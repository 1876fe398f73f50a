//! Cases ported from the kubelet's `devicemanager/topology_hints_test.go`
//! (`getCommonTestCases`, `TestTopologyAlignedAllocation`, `TestGetPodDeviceRequest`) and
//! `manager_test.go` (init-container reuse, allocation errors), on nmm's types. The
//! scenario plugins answer `GetPreferredAllocation` with the lowest ids, so cases that
//! exercised custom plugin answers keep their alignment expectations only.

use super::*;
use crate::bitmask::NumaMask;
use crate::pod::QosClass;
use crate::quantity::Quantity;

fn dev(id: &str, numa: Option<&[u32]>) -> Device {
    Device {
        resource: String::new(),
        id: id.into(),
        numa: numa.map(|n| n.to_vec()),
        healthy: true,
    }
}

fn numa(id: &str, n: u32) -> Device {
    dev(id, Some(&[n]))
}

fn manager(nodes: &[u32], devices: &[(&str, Vec<Device>)]) -> DeviceManager {
    let mut m = DeviceManager {
        numa_nodes: nodes.to_vec(),
        ..Default::default()
    };
    for (r, list) in devices {
        let list: Vec<Device> = list
            .iter()
            .map(|d| Device {
                resource: r.to_string(),
                ..d.clone()
            })
            .collect();
        m.register(r, &list);
    }
    m
}

fn container(name: &str, init: bool, limits: &[(&str, &str)]) -> ContainerInfo {
    let limits: BTreeMap<String, Quantity> = limits
        .iter()
        .map(|(k, v)| (k.to_string(), Quantity::parse(v).unwrap()))
        .collect();
    ContainerInfo {
        name: name.into(),
        init,
        restartable: false,
        requests: limits.clone(),
        limits,
    }
}

fn pod(containers: Vec<ContainerInfo>) -> PodInfo {
    PodInfo {
        uid: "fakePod".into(),
        name: "fake".into(),
        namespace: "default".into(),
        qos: QosClass::Guaranteed,
        containers,
    }
}

fn mask(ids: &[u32]) -> NumaMask {
    ids.iter()
        .fold(NumaMask::EMPTY, |m, &n| m.or(NumaMask::single(n)))
}

fn h(ids: &[u32], preferred: bool) -> TopologyHint {
    TopologyHint::new(mask(ids), preferred)
}

/// Allocates `ids` to a container of the pod, as a previous admission would have.
fn hold(m: &mut DeviceManager, pod: &str, c: &str, resource: &str, ids: &[&str]) {
    let mut info = pod_devices::AllocInfo::default();
    for id in ids {
        let n = m.numa_of(resource, id).unwrap_or_default();
        for node in n {
            info.by_numa
                .node_mut(i64::from(node))
                .insert(id.to_string());
        }
    }
    m.pod_devices.insert(pod, c, resource, info);
    m.set_allocated(m.pod_devices.devices());
}

fn hints_of(m: &DeviceManager, p: &PodInfo, r: &str) -> Option<Vec<TopologyHint>> {
    m.topology_hints(p, &p.containers[0])
        .unwrap()
        .remove(r)
        .unwrap()
}

#[test]
fn hints_single_request_no_alignment() {
    let m = manager(
        &[0, 1],
        &[("testdevice", vec![dev("Dev1", None), dev("Dev2", None)])],
    );
    let p = pod(vec![container("c", false, &[("testdevice", "1")])]);
    assert_eq!(hints_of(&m, &p, "testdevice"), None);
}

#[test]
fn hints_only_one_with_alignment() {
    let m = manager(
        &[0, 1],
        &[("testdevice", vec![dev("Dev1", None), numa("Dev2", 1)])],
    );
    let p = pod(vec![container("c", false, &[("testdevice", "1")])]);
    assert_eq!(
        hints_of(&m, &p, "testdevice"),
        Some(vec![h(&[1], true), h(&[0, 1], false)])
    );
}

#[test]
fn hints_one_device_per_socket() {
    let m = manager(
        &[0, 1],
        &[("testdevice", vec![numa("Dev1", 0), numa("Dev2", 1)])],
    );
    let p = pod(vec![container("c", false, &[("testdevice", "1")])]);
    assert_eq!(
        hints_of(&m, &p, "testdevice"),
        Some(vec![h(&[0], true), h(&[1], true), h(&[0, 1], false)])
    );
    let p = pod(vec![container("c", false, &[("testdevice", "2")])]);
    assert_eq!(hints_of(&m, &p, "testdevice"), Some(vec![h(&[0, 1], true)]));
}

#[test]
fn hints_two_per_socket_and_forced_cross_numa() {
    let devs = vec![
        numa("Dev1", 0),
        numa("Dev2", 1),
        numa("Dev3", 0),
        numa("Dev4", 1),
    ];
    let mut m = manager(&[0, 1], &[("testdevice", devs)]);
    let p = pod(vec![container("c", false, &[("testdevice", "2")])]);
    assert_eq!(
        hints_of(&m, &p, "testdevice"),
        Some(vec![h(&[0], true), h(&[1], true), h(&[0, 1], false)])
    );
    // Another container of the pod holds one device per node: only both nodes fit, and
    // that is not the minimal size the resource could satisfy.
    hold(
        &mut m,
        "fakePod",
        "fakeOtherContainer",
        "testdevice",
        &["Dev1", "Dev2"],
    );
    assert_eq!(
        hints_of(&m, &p, "testdevice"),
        Some(vec![h(&[0, 1], false)])
    );
}

#[test]
fn hints_two_device_types() {
    let m = manager(
        &[0, 1],
        &[
            (
                "testdevice1",
                vec![
                    numa("Dev1", 0),
                    numa("Dev2", 1),
                    numa("Dev3", 0),
                    numa("Dev4", 1),
                ],
            ),
            ("testdevice2", vec![numa("Dev1", 0)]),
        ],
    );
    let p = pod(vec![container(
        "c",
        false,
        &[("testdevice1", "2"), ("testdevice2", "1")],
    )]);
    assert_eq!(
        hints_of(&m, &p, "testdevice1"),
        Some(vec![h(&[0], true), h(&[1], true), h(&[0, 1], false)])
    );
    assert_eq!(
        hints_of(&m, &p, "testdevice2"),
        Some(vec![h(&[0], true), h(&[0, 1], false)])
    );
}

#[test]
fn hints_more_requested_than_available() {
    let devs = vec![
        numa("Dev1", 0),
        numa("Dev2", 0),
        numa("Dev3", 1),
        numa("Dev4", 1),
    ];
    let m = manager(&[0, 1], &[("testdevice", devs)]);
    let p = pod(vec![container("c", false, &[("testdevice", "6")])]);
    assert_eq!(hints_of(&m, &p, "testdevice"), Some(vec![]));
}

#[test]
fn hints_regenerated_from_the_containers_allocation() {
    let mut m = manager(
        &[0, 1],
        &[("testdevice", vec![numa("Dev1", 0), numa("Dev2", 0)])],
    );
    hold(&mut m, "fakePod", "c", "testdevice", &["Dev1", "Dev2"]);
    let p = pod(vec![container("c", false, &[("testdevice", "2")])]);
    assert_eq!(
        hints_of(&m, &p, "testdevice"),
        Some(vec![h(&[0], true), h(&[0, 1], false)])
    );
    // Allocated with a different count than requested: no hint fits.
    let devs = vec![
        numa("Dev1", 0),
        numa("Dev2", 0),
        numa("Dev3", 1),
        numa("Dev4", 1),
    ];
    let mut m = manager(&[0, 1], &[("testdevice", devs)]);
    hold(&mut m, "fakePod", "c", "testdevice", &["Dev1", "Dev2"]);
    let p = pod(vec![container("c", false, &[("testdevice", "4")])]);
    assert_eq!(hints_of(&m, &p, "testdevice"), Some(vec![]));
    let p = pod(vec![container("c", false, &[("testdevice", "1")])]);
    assert_eq!(hints_of(&m, &p, "testdevice"), Some(vec![]));
}

#[test]
fn hints_count_unhealthy_devices_for_the_preferred_size_only() {
    // Two devices on node 0, one of them unhealthy; two on node 1 in use.
    let mut devs = vec![numa("a", 0), numa("b", 0), numa("c", 1), numa("d", 1)];
    devs[1].healthy = false;
    let mut m = manager(&[0, 1], &[("r", devs)]);
    hold(&mut m, "other", "x", "r", &["c"]);
    let p = pod(vec![container("c", false, &[("r", "2")])]);
    // Node 0 or 1 alone could hold 2 devices of the resource, so size 1 is preferred,
    // but only a and d are available: only {0,1} fits, not preferred.
    assert_eq!(hints_of(&m, &p, "r"), Some(vec![h(&[0, 1], false)]));
}

#[test]
fn hints_multi_numa_device_counts_once() {
    let m = manager(
        &[0, 1, 2],
        &[("gpu", vec![dev("g0", Some(&[0, 1])), numa("g1", 2)])],
    );
    let p = pod(vec![container("c", false, &[("gpu", "2")])]);
    assert_eq!(
        hints_of(&m, &p, "gpu"),
        Some(vec![
            h(&[0, 2], true),
            h(&[1, 2], true),
            h(&[0, 1, 2], false)
        ])
    );
}

#[test]
fn pod_device_request_init_and_app_containers() {
    let m = manager(&[0], &[("gpu", vec![]), ("nic", vec![])]);
    let init =
        |n: &str, g: &str, nic: &str| container(n, true, &[("gpu", g), ("nic", nic), ("cpu", "2")]);
    let app = |n: &str, g: &str, nic: Option<&str>| {
        let mut l = vec![("gpu", g), ("cpu", "1")];
        if let Some(x) = nic {
            l.push(("nic", x));
        }
        container(n, false, &l)
    };
    // Init containers ask for more than the app containers together.
    let p = pod(vec![
        init("i1", "2", "1"),
        init("i2", "3", "2"),
        app("a1", "1", Some("1")),
        app("a2", "1", None),
    ]);
    let r = m.pod_device_request(&p);
    assert_eq!(r, [("gpu".to_string(), 3), ("nic".to_string(), 2)].into());
    // The app containers ask for more.
    let p = pod(vec![
        init("i1", "2", "1"),
        init("i2", "2", "1"),
        app("a1", "3", Some("2")),
        app("a2", "3", Some("2")),
    ]);
    let r = m.pod_device_request(&p);
    assert_eq!(r, [("gpu".to_string(), 6), ("nic".to_string(), 4)].into());
    // Sidecars add up with the app containers and with later init containers.
    let mut side = init("s", "1", "0");
    side.restartable = true;
    let p = pod(vec![side, init("i", "2", "0"), app("a", "1", None)]);
    let r = m.pod_device_request(&p);
    assert_eq!(r["gpu"], 3);
}

/// Allocates `request` devices of `r` with the hint; returns the count per NUMA node.
fn aligned(
    nodes: &[u32],
    devs: Vec<Device>,
    request: &str,
    hint: TopologyHint,
) -> BTreeMap<u32, usize> {
    let mut m = manager(nodes, &[("resource", devs)]);
    let p = pod(vec![container("c", false, &[("resource", request)])]);
    m.allocate_container(&p, &p.containers[0], hint).unwrap();
    let got = m.container_devices("fakePod", "c")["resource"].clone();
    assert_eq!(got.len() as i64, Quantity::parse(request).unwrap().value());
    let mut out = BTreeMap::new();
    for d in got {
        if let Some(n) = m.numa_of("resource", &d).and_then(|n| n.first().copied()) {
            *out.entry(n).or_default() += 1;
        }
    }
    out
}

#[test]
fn topology_aligned_allocation() {
    let two = |n: usize| {
        (0..n)
            .map(|i| numa(&format!("Dev{}", i + 1), (i % 2) as u32))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        aligned(
            &[0, 1],
            vec![dev("Dev1", None), dev("Dev2", None)],
            "1",
            h(&[0, 1], true)
        ),
        BTreeMap::new()
    );
    assert_eq!(
        aligned(
            &[0, 1],
            vec![dev("Dev1", None), numa("Dev2", 1)],
            "1",
            h(&[1], true)
        ),
        [(1, 1)].into()
    );
    assert_eq!(
        aligned(&[0, 1], two(2), "1", h(&[0], true)),
        [(0, 1)].into()
    );
    assert_eq!(
        aligned(&[0, 1], two(2), "1", h(&[1], true)),
        [(1, 1)].into()
    );
    assert_eq!(
        aligned(&[0, 1], two(4), "2", h(&[0], true)),
        [(0, 2)].into()
    );
    assert_eq!(
        aligned(&[0, 1], two(4), "2", h(&[1], true)),
        [(1, 2)].into()
    );
    // Unsatisfiable on the hinted node: all of it, then the rest.
    assert_eq!(
        aligned(&[0, 1], two(6), "4", h(&[0], true)),
        [(0, 3), (1, 1)].into()
    );
    assert_eq!(
        aligned(&[0, 1], two(6), "4", h(&[1], true)),
        [(0, 1), (1, 3)].into()
    );
    let four: Vec<Device> = (0..8)
        .map(|i| numa(&format!("Dev{}", i + 1), i % 4))
        .collect();
    assert_eq!(
        aligned(&[0, 1, 2, 3], four, "4", h(&[1, 3], true)),
        [(1, 2), (3, 2)].into()
    );
    // Many aligned candidates: the plugin's preferred (lowest) ids among them.
    let many: Vec<Device> = (0..200)
        .map(|i| numa(&format!("Dev{i}"), (i >= 100) as u32))
        .collect();
    assert_eq!(aligned(&[0, 1], many, "5", h(&[0], true)), [(0, 5)].into());
}

#[test]
fn preferred_allocation_decides_among_aligned_devices() {
    let devs = vec![
        numa("nic-2", 0),
        numa("nic-10", 0),
        numa("nic-1", 0),
        numa("nic-3", 1),
    ];
    let mut m = manager(&[0, 1], &[("nic", devs)]);
    let p = pod(vec![container("c", false, &[("nic", "2")])]);
    m.allocate_container(&p, &p.containers[0], h(&[0], true))
        .unwrap();
    let got: Vec<String> = m.container_devices("fakePod", "c")["nic"]
        .iter()
        .cloned()
        .collect();
    assert_eq!(got, vec!["nic-1", "nic-10"]);
    // Without a hint affinity: the lowest available ids overall.
    let devs = vec![numa("b", 1), numa("a", 1), numa("c", 0)];
    let mut m = manager(&[0, 1], &[("nic", devs)]);
    m.allocate_container(&p, &p.containers[0], TopologyHint::NONE)
        .unwrap();
    let got: Vec<String> = m.container_devices("fakePod", "c")["nic"]
        .iter()
        .cloned()
        .collect();
    assert_eq!(got, vec!["a", "b"]);
}

#[test]
fn allocation_errors_are_the_kubelets() {
    let mut sick = numa("g0", 0);
    sick.healthy = false;
    let mut m = manager(&[0], &[("gpu", vec![sick]), ("nic", vec![numa("n0", 0)])]);
    let p = pod(vec![container("c", false, &[("gpu", "1")])]);
    assert_eq!(
        m.allocate_container(&p, &p.containers[0], TopologyHint::NONE),
        Err("no healthy devices present; cannot allocate unhealthy devices gpu".into())
    );
    let p = pod(vec![container("c", false, &[("nic", "2")])]);
    assert_eq!(
        m.allocate_container(&p, &p.containers[0], TopologyHint::NONE),
        Err("requested number of devices unavailable for nic. Requested: 2, Available: 1".into())
    );
    // A resource the checkpoint named whose plugin has not registered again.
    m.note_resource("old");
    m.books_mut("old").healthy = Some(BTreeSet::new());
    let p = pod(vec![container("c", false, &[("old", "1")])]);
    assert_eq!(
        m.allocate_container(&p, &p.containers[0], TopologyHint::NONE),
        Err("no healthy devices present; cannot allocate unhealthy devices old".into())
    );
    // Not a device resource at all: ignored.
    let p = pod(vec![container("c", false, &[("example.com/other", "1")])]);
    assert_eq!(
        m.allocate_container(&p, &p.containers[0], TopologyHint::NONE),
        Ok(())
    );
    // A held allocation whose device went unhealthy (a restarted kubelet's re-admission).
    let mut m = manager(&[0], &[("nic", vec![numa("n0", 0), numa("n1", 0)])]);
    hold(&mut m, "fakePod", "c", "nic", &["n0"]);
    let healthy = m.books_mut("nic").healthy.as_mut().unwrap();
    healthy.remove("n0");
    m.reindex("nic");
    let p = pod(vec![container("c", false, &[("nic", "1")])]);
    assert_eq!(
        m.allocate_container(&p, &p.containers[0], TopologyHint::NONE),
        Err("previously allocated devices are no longer healthy; cannot allocate unhealthy devices nic".into())
    );
    let p = pod(vec![container("c", false, &[("nic", "2")])]);
    assert_eq!(
        m.allocate_container(&p, &p.containers[0], TopologyHint::NONE),
        Err(
            "pod \"fakePod\" container \"c\" changed request for resource \"nic\" from 1 to 2"
                .into()
        )
    );
}

#[test]
fn init_container_devices_are_reused_by_app_containers() {
    let devs = vec![numa("a", 0), numa("b", 0), numa("c", 0), numa("d", 0)];
    let mut m = manager(&[0], &[("r", devs)]);
    let p = pod(vec![
        container("init", true, &[("r", "2")]),
        container("app1", false, &[("r", "2")]),
        container("app2", false, &[("r", "1")]),
    ]);
    for c in &p.containers {
        m.allocate_container(&p, c, TopologyHint::NONE).unwrap();
    }
    let ids = |c: &str| {
        m.container_devices("fakePod", c)["r"]
            .iter()
            .cloned()
            .collect::<Vec<_>>()
    };
    assert_eq!(ids("init"), vec!["a", "b"]);
    assert_eq!(ids("app1"), vec!["a", "b"]);
    assert_eq!(ids("app2"), vec!["c"]);
    // Hints for a container see the reusable devices.
    let mut m2 = manager(&[0, 1], &[("r", vec![numa("a", 0), numa("b", 1)])]);
    let p2 = pod(vec![
        container("init", true, &[("r", "1")]),
        container("app", false, &[("r", "1")]),
    ]);
    m2.allocate_container(&p2, &p2.containers[0], h(&[1], true))
        .unwrap();
    assert_eq!(m2.container_devices("fakePod", "init")["r"].len(), 1);
    let held = m2.container_devices("fakePod", "init")["r"].clone();
    let node = m2.numa_of("r", held.iter().next().unwrap()).unwrap()[0];
    let hints = m2.topology_hints(&p2, &p2.containers[1]).unwrap()["r"]
        .clone()
        .unwrap();
    // The reused device must be in every hint.
    assert!(hints.iter().all(|x| x.affinity.unwrap().is_set(node)));
}

#[test]
fn sidecar_devices_are_not_reused() {
    let devs = vec![numa("a", 0), numa("b", 0)];
    let mut m = manager(&[0], &[("r", devs)]);
    let mut side = container("side", true, &[("r", "1")]);
    side.restartable = true;
    let p = pod(vec![side, container("app", false, &[("r", "1")])]);
    for c in &p.containers {
        m.allocate_container(&p, c, TopologyHint::NONE).unwrap();
    }
    assert_ne!(
        m.container_devices("fakePod", "side")["r"],
        m.container_devices("fakePod", "app")["r"]
    );
}

#[test]
fn removal_frees_and_checkpoint_round_trips() {
    let mut m = manager(
        &[0, 1],
        &[(
            "r",
            vec![numa("a", 0), dev("x", None), dev("ab", Some(&[0, 1]))],
        )],
    );
    let p = pod(vec![container("c", false, &[("r", "3")])]);
    m.allocate_container(&p, &p.containers[0], TopologyHint::NONE)
        .unwrap();
    assert!(m.available_devices("r").is_empty());
    let cp = m.checkpoint();
    let info = &cp.pod_devices.devs["fakePod"]["c"]["r"];
    assert_eq!(info.by_numa[&-1], ["x".to_string()].into());
    assert_eq!(info.by_numa[&0], ["a".to_string(), "ab".to_string()].into());
    assert_eq!(info.by_numa[&1], ["ab".to_string()].into());
    // A restarted manager keeps the allocation; the plugin registers again.
    let text = crate::checkpoint::device::encode(&cp);
    let back = crate::checkpoint::device::decode(text.as_bytes()).unwrap();
    let mut r = DeviceManager {
        numa_nodes: vec![0, 1],
        ..Default::default()
    };
    r.start(Some(Ok(back)));
    assert!(r.is_device_plugin_resource("r"));
    assert_eq!(r.pods(), vec!["fakePod".to_string()]);
    r.register_all(&m.devices_of("r").cloned().collect::<Vec<_>>());
    assert!(r.available_devices("r").is_empty());
    r.remove_pod("fakePod");
    assert_eq!(r.available_devices("r").len(), 3);
    m.remove_pod("fakePod");
    assert_eq!(m.available_devices("r").len(), 3);
    assert!(m.pod_devices.devs.is_empty());
}

/// More devices than one word of bits (positions past 63 and 127), on one or two nodes,
/// some without topology, some taken: `devicesToAllocate` by words picks what the
/// set-based oracle picks (or fails with its error), and leaves the same books.
#[test]
fn picks_past_one_word_are_the_oracles() {
    let devs: Vec<Device> = (0..150u32)
        .map(|i| match i % 7 {
            0 => dev(&format!("d{i:03}"), None),
            1 => dev(&format!("d{i:03}"), Some(&[i % 4, (i + 1) % 4])),
            _ => numa(&format!("d{i:03}"), (i / 40) % 4),
        })
        .collect();
    let none = BTreeSet::new();
    let hints = [
        TopologyHint::NONE,
        h(&[0], true),
        h(&[3], true),
        h(&[1, 2], false),
    ];
    for used in [0usize, 3, 70, 140] {
        let mut base = manager(&[0, 1, 2, 3], &[("nic", devs.clone())]);
        for i in (0..used).map(|k| k * 150 / used.max(1)) {
            base.mark_allocated("nic", &format!("d{i:03}"));
        }
        for hint in hints {
            for n in [1i64, 2, 5, 40, 70, 149, 151] {
                let mut fast = base.clone();
                let mut slow = base.clone();
                let got = fast.devices_to_allocate("p", "c", "nic", n, &none, hint);
                let want = slow.devices_to_allocate_ref("p", "c", "nic", n, &none, hint);
                assert_eq!(got, want, "used {used} hint {hint:?} n {n}");
                assert_eq!(fast.allocated_books(), slow.allocated_books());
                assert!(fast.index_matches_books());
            }
        }
    }
}
