//! Quantities that are probably not what was meant lead to the fix: a hugepage page count
//! where bytes are expected, and decimal `GB` where nodes speak binary sizes. Also: a
//! typed pod's errors give the YAML line.

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

fn simulate(f: &Path) -> Output {
    nmm(&["simulate", f.to_str().unwrap(), "-o", "json"])
}

#[test]
fn hugepage_page_count_suggests_bytes() {
    let d = tempfile::tempdir().unwrap();
    let f = write(
        d.path(),
        "s.yaml",
        "machine:\n  numaNodes:\n  - id: 0\n    cpus: 0-3\n    memory: 8Gi\n    hugepages: {2Mi: \"512\"}\n",
    );
    let out = simulate(&f);
    assert_eq!(out.status.code(), Some(2));
    let e = text(&out.stderr);
    assert!(
        e.contains(&format!(
            "{}: machine.numaNodes[0].hugepages.2Mi: 512 bytes is not a whole number of 2Mi pages",
            f.display()
        )),
        "{e}"
    );
    assert!(e.contains("512 pages of 2Mi = 1Gi: write 1Gi"), "{e}");
    // A byte quantity that is not whole pages is not taken for a count.
    let f = write(
        d.path(),
        "t.yaml",
        "machine:\n  numaNodes:\n  - {id: 0, cpus: 0-3, memory: 8Gi, hugepages: {1Gi: 1536Mi}}\n",
    );
    let e = text(&simulate(&f).stderr);
    assert!(e.contains("is not a whole number of 1Gi pages"), "{e}");
    assert!(!e.contains("page count"), "{e}");
    // The fix is accepted.
    let f = write(
        d.path(),
        "u.yaml",
        "machine:\n  numaNodes:\n  - {id: 0, cpus: 0-3, memory: 8Gi, hugepages: {2Mi: 1Gi}}\n",
    );
    let out = simulate(&f);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
}

#[test]
fn decimal_gigabytes_suggest_binary() {
    let d = tempfile::tempdir().unwrap();
    let f = write(
        d.path(),
        "s.yaml",
        "machine:\n  numaNodes:\n  - {id: 0, cpus: 0-3, memory: 16GB}\n",
    );
    let out = simulate(&f);
    assert_eq!(out.status.code(), Some(2));
    let e = text(&out.stderr);
    assert!(
        e.contains(&format!(
            "{}: machine.numaNodes[0].memory: \"16GB\" is not a quantity",
            f.display()
        )),
        "{e}"
    );
    assert!(
        e.contains("GB means 10^9 bytes (written 16G = 14.9Gi)")
            && e.contains("nodes report memory in binary units")
            && e.contains("write 16Gi"),
        "{e}"
    );
    // In a pod's memory limit too.
    let f = write(
        d.path(),
        "p.yaml",
        "machine:\n  numaNodes:\n  - {id: 0, cpus: 0-3, memory: 16Gi}\nsteps:\n- admit:\n    metadata: {name: web, uid: u1}\n    spec:\n      containers:\n      - name: app\n        resources:\n          limits: {cpu: 1, memory: 2GB}\n",
    );
    let out = simulate(&f);
    assert_eq!(out.status.code(), Some(2));
    let e = text(&out.stderr);
    assert!(e.contains("steps[0].admit") && e.contains("\"2GB\""), "{e}");
    assert!(
        e.contains("written 2G = 1.9Gi") && e.contains("write 2Gi"),
        "{e}"
    );
    // GiB: the B goes.
    let f = write(
        d.path(),
        "g.yaml",
        "machine:\n  numaNodes:\n  - {id: 0, cpus: 0-3, memory: 16GiB}\n",
    );
    let e = text(&simulate(&f).stderr);
    assert!(e.contains("without the B: write 16Gi"), "{e}");
}

#[test]
fn pod_errors_give_the_yaml_line() {
    let d = tempfile::tempdir().unwrap();
    let head = "machine:\n  numaNodes:\n  - {id: 0, cpus: 0-3, memory: 8Gi}\nsteps:\n- admit:\n    metadata: {name: web, uid: u1}\n    spec:\n      containers:\n      - name: app\n";
    let f = write(
        d.path(),
        "typo.yaml",
        &format!("{head}        resource:\n          limits: {{cpu: 1}}\n"),
    );
    let e = text(&simulate(&f).stderr);
    assert!(
        e.contains("steps[0].admit.spec.containers[0].resource: unknown field")
            && e.contains(" at line 10")
            && e.contains("did you mean `resources`?"),
        "{e}"
    );
    let f = write(
        d.path(),
        "type.yaml",
        &format!("{head}        resources:\n          limits: {{cpu: 1}}\n        ports: 80\n"),
    );
    let e = text(&simulate(&f).stderr);
    assert!(
        e.contains("steps[0].admit.spec.containers[0].ports: invalid type")
            && e.contains(" at line 12"),
        "{e}"
    );
    // The same pod as JSON: same error, no line.
    let f = write(
        d.path(),
        "typo.json",
        r#"{"machine": {"numaNodes": [{"id": 0, "cpus": "0-3", "memory": "8Gi"}]}, "steps": [{"admit": {"metadata": {"name": "web", "uid": "u1"}, "spec": {"containers": [{"name": "app", "resource": {}}]}}}]}"#,
    );
    let e = text(&simulate(&f).stderr);
    assert!(
        e.contains("steps[0].admit.spec.containers[0].resource: unknown field")
            && !e.contains("at line"),
        "{e}"
    );
}
