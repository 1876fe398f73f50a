//! Strict input on the real binary: a pod with a misspelt field or one the API server would
//! refuse is an error naming the file and the field (exit 2), never a silently different
//! pod; unknown KubeletConfiguration fields are warnings with a did-you-mean.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn nmm(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_nmm"))
        .args(args)
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
