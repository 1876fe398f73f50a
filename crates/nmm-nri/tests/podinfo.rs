//! How requests, limits and QoS are derived from what NRI shows.

use nmm_core::pod::QosClass;
use nmm_nri::podinfo::{hugepage_resource_name, parse_kubepods_cgroup};
use nmm_nri::*;
use proptest::prelude::*;

fn q(info: &nmm_core::pod::ContainerInfo, list: &str, res: &str) -> Option<String> {
    let m = if list == "req" {
        &info.requests
    } else {
        &info.limits
    };
    m.get(res).map(|q| q.to_string())
}

fn pod(cgroup_parent: &str) -> PodSandbox {
    PodSandbox {
        id: "sb".into(),
        name: "p".into(),
        uid: "0f1e2d3c-0000-4000-8000-000000000001".into(),
        namespace: "ns".into(),
        cgroup_parent: cgroup_parent.into(),
        ..Default::default()
    }
}

fn ctr(name: &str, res: LinuxResources) -> Container {
    Container {
        id: format!("id-{name}"),
        name: name.into(),
        resources: Some(res),
        ..Default::default()
    }
}

fn res(shares: u64, quota: i64, mem: Option<i64>) -> LinuxResources {
    LinuxResources {
        cpu_shares: Some(shares),
        cpu_quota: Some(quota),
        cpu_period: Some(100_000),
        memory_limit: mem,
        ..Default::default()
    }
}

const UID: &str = "0f1e2d3c-0000-4000-8000-000000000001";

#[test]
fn cgroup_paths_of_both_drivers() {
    let sys = UID.replace('-', "_");
    let cases = [
        (format!("kubepods-pod{sys}.slice"), QosClass::Guaranteed),
        (
            format!("kubepods-burstable-pod{sys}.slice"),
            QosClass::Burstable,
        ),
        (
            format!("kubepods-besteffort-pod{sys}.slice"),
            QosClass::BestEffort,
        ),
        (
            format!("/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{sys}.slice"),
            QosClass::Burstable,
        ),
        (
            format!("kubepods-besteffort-pod{sys}.slice:cri-containerd:abc"),
            QosClass::BestEffort,
        ),
        (format!("/kubepods/pod{UID}"), QosClass::Guaranteed),
        (format!("/kubepods/burstable/pod{UID}"), QosClass::Burstable),
        (
            format!("/kubepods/besteffort/pod{UID}/0123abcd"),
            QosClass::BestEffort,
        ),
        (
            format!("/custom-root/kubepods/pod{UID}"),
            QosClass::Guaranteed,
        ),
    ];
    for (path, qos) in cases {
        let (got, uid) = parse_kubepods_cgroup(&path).unwrap_or_else(|| panic!("{path}"));
        assert_eq!(got, qos, "{path}");
        assert_eq!(uid.as_deref(), Some(UID), "{path}");
        assert_eq!(qos_from_cgroup_path(&path), Some(qos));
    }
    for path in [
        "",
        "/",
        "system.slice",
        "kubepods.slice",
        "/kubepods",
        "/kubepods/weird/x",
        "kube-pods-pod1.slice",
        "/sys/fs/cgroup/foo",
    ] {
        assert_eq!(qos_from_cgroup_path(path), None, "{path}");
    }
}

#[test]
fn guaranteed_requests_equal_limits() {
    let p = pod(&format!("kubepods-pod{}.slice", UID.replace('-', "_")));
    let c = ctr("app", res(2048, 200_000, Some(4 << 30)));
    let info = pod_info_from_nri(&p, &[c]).unwrap();
    assert_eq!(info.qos, QosClass::Guaranteed);
    assert_eq!(
        (
            info.uid.as_str(),
            info.name.as_str(),
            info.namespace.as_str()
        ),
        (UID, "p", "ns")
    );
    let c = &info.containers[0];
    assert_eq!(q(c, "req", "cpu").as_deref(), Some("2"));
    assert_eq!(q(c, "lim", "cpu").as_deref(), Some("2"));
    assert_eq!(q(c, "req", "memory").as_deref(), Some("4Gi"));
    assert_eq!(q(c, "lim", "memory").as_deref(), Some("4Gi"));
    assert_eq!(c.requests["cpu"].milli_value(), 2000);
}

#[test]
fn guaranteed_without_cfs_quota_uses_shares() {
    // cpuCFSQuota: false: no quota, the request is in the shares.
    let p = pod(&format!("/kubepods/pod{UID}"));
    let mut r = res(1536, -1, Some(1 << 30));
    r.cpu_period = None;
    let info = pod_info_from_nri(&p, &[ctr("app", r)]).unwrap();
    assert_eq!(
        q(&info.containers[0], "req", "cpu").as_deref(),
        Some("1500m")
    );
    assert_eq!(
        q(&info.containers[0], "lim", "cpu").as_deref(),
        Some("1500m")
    );
}

#[test]
fn burstable_shares_quota_and_memory_min() {
    let p = pod(&format!("/kubepods/burstable/pod{UID}"));
    let mut r = res(256, 50_000, Some(512 << 20));
    r.unified
        .insert("memory.min".into(), (128u64 << 20).to_string());
    let other = ctr("logger", res(2, -1, None));
    let info = pod_info_from_nri(&p, &[ctr("app", r), other]).unwrap();
    assert_eq!(info.qos, QosClass::Burstable);
    let c = &info.containers[0];
    assert_eq!(q(c, "req", "cpu").as_deref(), Some("250m"));
    assert_eq!(q(c, "lim", "cpu").as_deref(), Some("500m"));
    assert_eq!(q(c, "req", "memory").as_deref(), Some("128Mi"));
    assert_eq!(q(c, "lim", "memory").as_deref(), Some("512Mi"));
    let l = &info.containers[1];
    assert!(l.requests.is_empty() && l.limits.is_empty(), "{l:?}");
}

#[test]
fn shares_invert_the_kubelet_formula_exactly() {
    for m in 2u64..5000 {
        let shares = (m * 1024 / 1000).max(2);
        if shares <= 2 {
            continue;
        }
        let p = pod(&format!("/kubepods/burstable/pod{UID}"));
        let info = pod_info_from_nri(&p, &[ctr("a", res(shares, -1, None))]).unwrap();
        assert_eq!(
            info.containers[0].requests["cpu"].milli_value(),
            m as i64,
            "{m}m"
        );
    }
}

#[test]
fn besteffort_has_nothing() {
    let p = pod(&format!(
        "kubepods-besteffort-pod{}.slice",
        UID.replace('-', "_")
    ));
    let info = pod_info_from_nri(&p, &[ctr("a", res(2, -1, None))]).unwrap();
    assert_eq!(info.qos, QosClass::BestEffort);
    assert!(info.containers[0].requests.is_empty());
    let err = pod_info_from_nri(&p, &[ctr("a", res(2, -1, Some(1 << 30)))]).unwrap_err();
    assert!(err.contains("BestEffort pod has CPU or memory"), "{err}");
}

#[test]
fn hugepages_skip_zero_limits() {
    assert_eq!(hugepage_resource_name("2MB").unwrap(), "hugepages-2Mi");
    assert_eq!(hugepage_resource_name("1GB").unwrap(), "hugepages-1Gi");
    assert_eq!(hugepage_resource_name("64KB").unwrap(), "hugepages-64Ki");
    assert!(hugepage_resource_name("2XB").is_err());
    assert!(hugepage_resource_name("MB").is_err());
    let p = pod(&format!("/kubepods/pod{UID}"));
    let mut r = res(1024, 100_000, Some(1 << 30));
    r.hugepage_limits = vec![
        HugepageLimit {
            page_size: "2MB".into(),
            limit: 0,
        },
        HugepageLimit {
            page_size: "1GB".into(),
            limit: 2 << 30,
        },
    ];
    let info = pod_info_from_nri(&p, &[ctr("a", r)]).unwrap();
    let c = &info.containers[0];
    assert_eq!(q(c, "req", "hugepages-1Gi").as_deref(), Some("2Gi"));
    assert_eq!(q(c, "lim", "hugepages-1Gi").as_deref(), Some("2Gi"));
    assert!(!c.requests.contains_key("hugepages-2Mi"));
    assert_eq!(info.qos, QosClass::Guaranteed);
}

#[test]
fn annotation_overrides_and_adds_requests() {
    let mut p = pod(&format!("/kubepods/burstable/pod{UID}"));
    p.annotations.insert(
        REQUESTS_ANNOTATION.into(),
        r#"{"app": {"memory": "256Mi", "example.com/gpu": "1", "cpu": 0.5}, "not-yet-created": {"cpu": "4"}}"#.into(),
    );
    let info = pod_info_from_nri(&p, &[ctr("app", res(2, -1, Some(1 << 30)))]).unwrap();
    let c = &info.containers[0];
    assert_eq!(q(c, "req", "memory").as_deref(), Some("256Mi"));
    assert_eq!(q(c, "req", "example.com/gpu").as_deref(), Some("1"));
    assert_eq!(c.requests["cpu"].milli_value(), 500);
    assert_eq!(info.containers.len(), 1);
}

#[test]
fn annotation_errors_are_refusals() {
    let base = pod(&format!("/kubepods/burstable/pod{UID}"));
    for bad in [
        "not json",
        "[1]",
        r#"{"app": 3}"#,
        r#"{"app": {"cpu": "lots"}}"#,
        r#"{"app": {"cpu": true}}"#,
        r#"{"app": {"cpu": "-1"}}"#,
    ] {
        let mut p = base.clone();
        p.annotations.insert(REQUESTS_ANNOTATION.into(), bad.into());
        let err = pod_info_from_nri(&p, &[ctr("app", res(2, -1, None))]).unwrap_err();
        assert!(err.contains(REQUESTS_ANNOTATION), "{bad}: {err}");
    }
    // A request over the limit.
    let mut p = base.clone();
    p.annotations.insert(
        REQUESTS_ANNOTATION.into(),
        r#"{"app": {"memory": "2Gi"}}"#.into(),
    );
    let err = pod_info_from_nri(&p, &[ctr("app", res(2, -1, Some(1 << 30)))]).unwrap_err();
    assert!(err.contains("exceeds its limit"), "{err}");
    // An override that breaks a Guaranteed pod.
    let mut p = pod(&format!("/kubepods/pod{UID}"));
    p.annotations.insert(
        REQUESTS_ANNOTATION.into(),
        r#"{"app": {"cpu": "1"}}"#.into(),
    );
    let err = pod_info_from_nri(&p, &[ctr("app", res(2048, 200_000, Some(1 << 30)))]).unwrap_err();
    assert!(
        err.contains("cgroup says Guaranteed but its resources make it Burstable"),
        "{err}"
    );
}

#[test]
fn init_and_sidecar_containers_come_first() {
    let mut p = pod(&format!("/kubepods/burstable/pod{UID}"));
    p.annotations
        .insert("nmm.io/init-containers".into(), "setup, proxy".into());
    p.annotations
        .insert("nmm.io/sidecar-containers".into(), "proxy".into());
    let cs = [
        ctr("app", res(2, -1, None)),
        ctr("proxy", res(2, -1, None)),
        ctr("setup", res(2, -1, None)),
    ];
    let info = pod_info_from_nri(&p, &cs).unwrap();
    let order: Vec<_> = info
        .containers
        .iter()
        .map(|c| (c.name.as_str(), c.init, c.restartable))
        .collect();
    assert_eq!(
        order,
        vec![
            ("setup", true, false),
            ("proxy", true, true),
            ("app", false, false)
        ]
    );
    p.annotations
        .insert("nmm.io/sidecar-containers".into(), "app".into());
    assert!(pod_info_from_nri(&p, &cs).is_err());
}

#[test]
fn malformed_pods_are_refused() {
    let g = pod(&format!("/kubepods/pod{UID}"));
    // Guaranteed without memory limit / without any CPU information.
    assert!(pod_info_from_nri(&g, &[ctr("a", res(1024, 100_000, None))])
        .unwrap_err()
        .contains("no memory limit"));
    let mut r = res(2, -1, Some(1 << 30));
    r.cpu_shares = None;
    assert!(pod_info_from_nri(&g, &[ctr("a", r)])
        .unwrap_err()
        .contains("neither a CPU quota nor CPU shares"));
    // No name, duplicate names.
    assert!(pod_info_from_nri(&g, &[ctr("", res(1024, 100_000, Some(1)))]).is_err());
    let c = ctr("a", res(1024, 100_000, Some(1)));
    assert!(pod_info_from_nri(&g, &[c.clone(), c])
        .unwrap_err()
        .contains("two containers"));
    // No UID anywhere; UID contradicting the cgroup.
    let mut p = pod("");
    p.uid.clear();
    assert!(pod_info_from_nri(&p, &[])
        .unwrap_err()
        .contains("no pod UID"));
    let mut p = g.clone();
    p.uid = "something-else".into();
    assert!(pod_info_from_nri(&p, &[]).unwrap_err().contains("differs"));
    // Bad memory.min.
    let mut r = res(256, -1, None);
    r.unified.insert("memory.min".into(), "max".into());
    assert!(pod_info_from_nri(
        &pod(&format!("/kubepods/burstable/pod{UID}")),
        &[ctr("a", r)]
    )
    .is_err());
    // Absurd quota/shares do not overflow.
    let mut r = res(u64::MAX, i64::MAX, Some(i64::MAX));
    r.cpu_period = Some(1);
    assert!(pod_info_from_nri(&g, &[ctr("a", r)]).is_err());
}

#[test]
fn uid_from_cgroup_and_unknown_qos() {
    // No UID field, but the cgroup has it.
    let mut p = pod(&format!(
        "kubepods-burstable-pod{}.slice",
        UID.replace('-', "_")
    ));
    p.uid.clear();
    assert_eq!(pod_info_from_nri(&p, &[]).unwrap().uid, UID);
    // No cgroup information at all: QoS computed; memory request assumed = limit.
    let p = pod("");
    let info = pod_info_from_nri(&p, &[ctr("a", res(1024, 100_000, Some(1 << 30)))]).unwrap();
    assert_eq!(info.qos, QosClass::Guaranteed);
    let info = pod_info_from_nri(&p, &[ctr("a", res(512, -1, None))]).unwrap();
    assert_eq!(info.qos, QosClass::Burstable);
    let info = pod_info_from_nri(&p, &[ctr("a", res(2, -1, None))]).unwrap();
    assert_eq!(info.qos, QosClass::BestEffort);
    // The container's cgroups path is the fallback for the pod's.
    let mut c = ctr("a", res(2, -1, None));
    c.cgroups_path = format!(
        "kubepods-besteffort-pod{}.slice:cri-containerd:x",
        UID.replace('-', "_")
    );
    assert_eq!(
        pod_info_from_nri(&pod(""), &[c]).unwrap().qos,
        QosClass::BestEffort
    );
}

fn arb_resources() -> impl Strategy<Value = LinuxResources> {
    (
        proptest::option::of(any::<u64>()),
        proptest::option::of(any::<i64>()),
        proptest::option::of(any::<u64>()),
        proptest::option::of(any::<i64>()),
        proptest::collection::vec(("[0-9]{0,3}[KMGTPX]?B?", any::<u64>()), 0..3),
        proptest::option::of("[0-9a-z-]{0,6}"),
    )
        .prop_map(|(shares, quota, period, mem, hp, min)| LinuxResources {
            cpu_shares: shares,
            cpu_quota: quota,
            cpu_period: period,
            memory_limit: mem,
            hugepage_limits: hp
                .into_iter()
                .map(|(page_size, limit)| HugepageLimit { page_size, limit })
                .collect(),
            unified: min
                .into_iter()
                .map(|v| ("memory.min".to_string(), v))
                .collect(),
            ..Default::default()
        })
}

proptest! {
    #[test]
    fn never_panics_on_arbitrary_input(
        cg in prop_oneof![Just(String::new()), "[a-z/_.:-]{0,40}", Just(format!("/kubepods/pod{UID}")),
                          Just(format!("/kubepods/burstable/pod{UID}")), Just(format!("kubepods-besteffort-pod{UID}.slice"))],
        uid in prop_oneof![Just(String::new()), Just(UID.to_string()), "[a-z0-9-]{0,12}"],
        ann in proptest::option::of(prop_oneof![".{0,40}", Just(r#"{"a":{"cpu":"1"}}"#.to_string())]),
        names in proptest::collection::vec(prop_oneof![Just("a".to_string()), Just("b".to_string()), "[a-z]{0,3}"], 0..4),
        rs in proptest::collection::vec(arb_resources(), 4),
    ) {
        let mut p = pod(&cg);
        p.uid = uid;
        if let Some(a) = ann { p.annotations.insert(REQUESTS_ANNOTATION.into(), a); }
        let cs: Vec<Container> = names.iter().zip(rs).map(|(n, r)| ctr(n, r)).collect();
        if let Ok(info) = pod_info_from_nri(&p, &cs) {
            prop_assert_eq!(info.containers.len(), cs.len());
            for c in &info.containers {
                for (k, r) in &c.requests {
                    if let Some(l) = c.limits.get(k) {
                        prop_assert!(r.cmp_value(l) != std::cmp::Ordering::Greater);
                    }
                }
            }
        }
    }
}

fn annotated(key: &str, value: String) -> PodSandbox {
    let mut p = pod("");
    p.annotations.insert(key.into(), value);
    p
}

#[test]
fn huge_exponents_in_the_requests_annotation_are_refused_naming_the_field() {
    let p = annotated(
        "nmm.io/requests",
        r#"{"app": {"memory": "1e999999999", "cpu": "1e999999999", "hugepages-1Gi": "1e999999999"}}"#
            .into(),
    );
    let err = pod_info_from_nri(&p, &[ctr("app", res(2, -1, Some(1 << 30)))]).unwrap_err();
    assert!(
        err.starts_with("pod ns/p: annotation nmm.io/requests: \"app\".memory: \"1e999999999\": quantity is too large"),
        "{err}"
    );
}

#[test]
fn oversized_fields_are_refused_with_the_limit() {
    let c = [ctr("app", res(2, -1, Some(1 << 30)))];
    let big = annotated(
        "nmm.io/requests",
        format!("{{\"app\": {{}}, \"x\": \"{}\"}}", "y".repeat(70_000)),
    );
    let err = pod_info_from_nri(&big, &c).unwrap_err();
    assert!(
        err.contains("annotation nmm.io/requests is 70020 bytes, above the limit of 65536"),
        "{err}"
    );

    let names = (0..300)
        .map(|i| format!("c{i}"))
        .collect::<Vec<_>>()
        .join(",");
    let err = pod_info_from_nri(&annotated("nmm.io/init-containers", names), &c).unwrap_err();
    assert!(
        err.contains("annotation nmm.io/init-containers: 300 names, above the limit of 256"),
        "{err}"
    );

    let many: String = (0..300)
        .map(|i| format!("\"c{i}\": {{}}"))
        .collect::<Vec<_>>()
        .join(",");
    let err =
        pod_info_from_nri(&annotated("nmm.io/requests", format!("{{{many}}}")), &c).unwrap_err();
    assert!(
        err.contains("300 containers, above the limit of 256"),
        "{err}"
    );

    let resources: String = (0..65)
        .map(|i| format!("\"r{i}\": \"1\""))
        .collect::<Vec<_>>()
        .join(",");
    let err = pod_info_from_nri(
        &annotated("nmm.io/requests", format!("{{\"app\": {{{resources}}}}}")),
        &c,
    )
    .unwrap_err();
    assert!(
        err.contains("\"app\": 65 resources, above the limit of 64"),
        "{err}"
    );

    let long_q = format!("{{\"app\": {{\"memory\": \"1{}\"}}}}", "0".repeat(80));
    let err = pod_info_from_nri(&annotated("nmm.io/requests", long_q), &c).unwrap_err();
    assert!(
        err.contains("\"app\".memory is 81 bytes, above the limit of 64"),
        "{err}"
    );

    let ctrs: Vec<Container> = (0..257)
        .map(|i| ctr(&format!("c{i}"), res(2, -1, None)))
        .collect();
    let err = pod_info_from_nri(&pod(""), &ctrs).unwrap_err();
    assert_eq!(
        err,
        "pod ns/p: 257 containers, above the limit of 256 per pod"
    );

    let mut p = pod("");
    p.cgroup_parent = "/".repeat(5000);
    let err = pod_info_from_nri(&p, &c).unwrap_err();
    assert!(
        err.contains("linux.cgroup_parent is 5000 bytes, above the limit of 4096"),
        "{err}"
    );

    let long_name = "n".repeat(400);
    let err = pod_info_from_nri(&pod(""), &[ctr(&long_name, res(2, -1, None))]).unwrap_err();
    assert!(
        err.contains(": name is 400 bytes, above the limit of 317"),
        "{err}"
    );

    let mut p = pod("");
    p.name = "é".repeat(1000);
    let err = pod_info_from_nri(&p, &ctrs).unwrap_err();
    assert!(
        err.len() < 600,
        "the message quotes a clipped name: {}",
        err.len()
    );
}

#[test]
fn the_largest_accepted_pod_is_processed() {
    // 256 containers with distinct names, all init containers, one sidecar: the lookups are
    // by set, so this stays linear-logarithmic.
    let ctrs: Vec<Container> = (0..256)
        .map(|i| ctr(&format!("c{i}"), res(2, -1, None)))
        .collect();
    let names = (0..256)
        .rev()
        .map(|i| format!("c{i}"))
        .collect::<Vec<_>>()
        .join(",");
    let mut p = annotated("nmm.io/init-containers", names);
    p.annotations
        .insert("nmm.io/sidecar-containers".into(), "c7".into());
    let info = pod_info_from_nri(&p, &ctrs).unwrap();
    assert_eq!(info.containers.len(), 256);
    assert_eq!(info.containers[0].name, "c255");
    assert!(info.containers.iter().all(|c| c.init));
    assert_eq!(info.containers.iter().filter(|c| c.restartable).count(), 1);
}
