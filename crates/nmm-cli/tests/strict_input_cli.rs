//! Strict input on the real binary: a pod with a misspelt field or one the API server would
//! refuse is an error naming the file and the field (exit 2), never a silently different
//! pod; unknown KubeletConfiguration fields are warnings with a did-you-mean.

#[path = "support/cli.rs"]
mod cli;

use std::path::{Path, PathBuf};
use std::process::Output;

fn nmm(args: &[&str]) -> Output {
    cli::nmm_command()
        .args(args)
        // Content, not layout (output_cli.rs checks the 80-column fit).
        .output()
        .expect("run nmm")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn write(dir: &Path, name: &str, body: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, body).unwrap();
    p
}

const HEAD: &str = "machine:\n  numaNodes:\n  - {id: 0, cpus: \"0-3\", memory: 8Gi}\nkubelet: {cpuManagerPolicy: static, reservedSystemCPUs: \"0\"}\nsteps:\n";

fn pod(resources: &str) -> String {
    format!("{HEAD}- admit:\n    metadata: {{name: web, uid: u1}}\n    spec:\n      containers:\n      - name: app\n{resources}")
}

#[test]
fn misspelt_resources_is_refused_with_file_and_field() {
    let d = tempfile::tempdir().unwrap();
    let f = write(
        d.path(),
        "typo.yaml",
        &pod("        resource:\n          limits: {cpu: 1, memory: 1Gi}\n"),
    );
    let out = nmm(&["simulate", f.to_str().unwrap(), "-o", "json"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stdout));
    let e = text(&out.stderr);
    assert!(
        e.contains(&format!(
            "{}: steps[0].admit.spec.containers[0].resource: unknown field",
            f.display()
        )),
        "{e}"
    );
    assert!(e.contains("did you mean `resources`?"), "{e}");
    assert!(
        out.stdout.is_empty(),
        "nothing simulated: {}",
        text(&out.stdout)
    );
}

#[test]
fn api_server_validation_in_its_wording() {
    let d = tempfile::tempdir().unwrap();
    let cases = [
        (
            "        resources:\n          requests: {cpu: 2}\n          limits: {cpu: 1}\n",
            "spec.containers[0].resources.requests: Invalid value: \"2\": must be less than or equal to cpu limit of 1",
        ),
        (
            "        resources:\n          limits: {memory: -1Gi}\n",
            "spec.containers[0].resources.limits[memory]: Invalid value: \"-1Gi\": must be greater than or equal to 0",
        ),
        (
            "        resources:\n          requests: {memory: 1Gi, hugepages-2Mi: 2Mi}\n          limits: {memory: 1Gi, hugepages-2Mi: 4Mi}\n",
            "spec.containers[0].resources.requests: Invalid value: \"2Mi\": must be equal to hugepages-2Mi limit of 4Mi",
        ),
        (
            "        resources:\n          limits: {cpu: 1, example.com/gpu: 500m}\n",
            "spec.containers[0].resources.limits[example.com/gpu]: Invalid value: \"500m\": must be an integer",
        ),
        (
            "      - name: app\n",
            "spec.containers[1].name: Duplicate value: \"app\"",
        ),
    ];
    for (i, (body, want)) in cases.iter().enumerate() {
        let f = write(d.path(), &format!("p{i}.yaml"), &pod(body));
        let out = nmm(&["simulate", f.to_str().unwrap(), "-o", "json"]);
        assert_eq!(out.status.code(), Some(2), "{want}");
        let e = text(&out.stderr);
        assert!(
            e.contains(&format!("{}: steps[0].admit: the API server would refuse this pod: The Pod \"web\" is invalid: ", f.display())),
            "{e}"
        );
        assert!(e.contains(want), "want {want}\ngot {e}");
    }
}

#[test]
fn unknown_kubelet_field_is_a_warning_with_did_you_mean() {
    let d = tempfile::tempdir().unwrap();
    let k = write(
        d.path(),
        "config.yaml",
        "apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\nmemoryManagerPolicy: Static\nreservedMemorys:\n- numaNode: 0\n  limits: {memory: 1124Mi}\nauthentication: {anonymous: {enabled: false}}\nclusterDNS: [10.96.0.10]\nkubeReserved: {memory: 1Gi}\nevictionHard: {memory.available: 100Mi}\n",
    );
    let m = write(
        d.path(),
        "machine.yaml",
        "machine:\n  numaNodes:\n  - {id: 0, cpus: \"0-3\", memory: 8Gi}\n",
    );
    let out = nmm(&[
        "validate",
        "--config",
        k.to_str().unwrap(),
        "--machine",
        m.to_str().unwrap(),
        "-o",
        "json",
    ]);
    // The typo drops the reservation, so the Static policy's check fails.
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let w = v["warnings"].as_array().unwrap();
    assert_eq!(
        w.len(),
        1,
        "real kubelet fields are not warned about: {w:?}"
    );
    let w = w[0].as_str().unwrap();
    assert!(
        w.starts_with(&format!("{}: reservedMemorys: unknown field", k.display())),
        "{w}"
    );
    assert!(w.ends_with("did you mean `reservedMemory`?"), "{w}");

    // In a scenario's kubelet: block, simulate warns on stderr and goes on.
    let s = write(
        d.path(),
        "s.yaml",
        &HEAD.replace("reservedSystemCPUs", "reservedSystemCPU"),
    );
    let out = nmm(&["simulate", s.to_str().unwrap(), "-o", "json"]);
    let e = text(&out.stderr);
    assert!(
        e.contains(&format!(
            "warning: {}: kubelet.reservedSystemCPU: unknown field",
            s.display()
        )) && e.contains("did you mean `reservedSystemCPUs`?"),
        "{e}"
    );
}

/// 5% of machine.memoryCapacity (10Gi) + 512Mi kubeReserved = 1Gi exactly; against the sum
/// of the nodes (8Gi) the kubelet would want 966367641 bytes instead.
const CAPACITY: &str = "machine:\n  numaNodes:\n  - {id: 0, cpus: \"0-3\", memory: 8Gi}\n  memoryCapacity: 10Gi\nkubelet:\n  memoryManagerPolicy: Static\n  kubeReserved: {memory: 512Mi}\n  evictionHard: {memory.available: \"5%\"}\n  reservedMemory: [{numaNode: 0, limits: {memory: 1Gi}}]\nsteps:\n- admit:\n    metadata: {name: web, uid: u1}\n    spec:\n      containers:\n      - name: app\n        resources:\n          limits: {cpu: 1, memory: 1Gi}\n";

#[test]
fn memory_capacity_is_used_for_a_percentage_threshold() {
    let d = tempfile::tempdir().unwrap();
    let with = write(d.path(), "with.yaml", CAPACITY);
    let out = nmm(&["simulate", with.to_str().unwrap(), "-o", "json"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));
    assert!(text(&out.stdout).contains("\"admitted\":true"));

    let without = write(
        d.path(),
        "without.yaml",
        &CAPACITY.replace("  memoryCapacity: 10Gi\n", ""),
    );
    let out = nmm(&["simulate", without.to_str().unwrap(), "-o", "json"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stdout).contains(
            r#"is not equal to the value \"966367641\" determined by Node Allocatable feature"#
        ),
        "{}",
        text(&out.stdout)
    );

    // validate: the same capacity, and a tip to use an absolute threshold.
    let out = nmm(&["validate", "--config", with.to_str().unwrap(), "-o", "json"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["valid"], true);
    let w = v["warnings"].to_string();
    assert!(w.contains("memory.available: 5% is a percentage"), "{w}");
    assert!(w.contains("an absolute value"), "{w}");

    let bad = write(
        d.path(),
        "bad.yaml",
        &CAPACITY.replace("memoryCapacity: 10Gi", "memoryCapacity: lots"),
    );
    let out = nmm(&["simulate", bad.to_str().unwrap(), "-o", "json"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains(&format!("{}: machine.memoryCapacity", bad.display())),
        "{}",
        text(&out.stderr)
    );
}
