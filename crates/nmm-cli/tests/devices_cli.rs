//! `nmm simulate` with `machine.devices` on the real binary: the per-container `devices`
//! field, the `device_manager_state_canonical` line, the device checkpoint under
//! `--state-dir`, restarting from it, and bad device input (exit 2, the field named).

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

const MACHINE: &str = r#"machine:
  numaNodes:
    - {id: 0, cpus: "0-3", memory: 8Gi}
    - {id: 1, cpus: "4-7", memory: 8Gi}
  devices:
    - {resource: example.com/nic, id: nic-0, numa: [0]}
    - {resource: example.com/nic, id: nic-1, numa: [1]}
    - {resource: example.com/nic, id: nic-2, numa: [1], healthy: false}
    - {resource: nvidia.com/gpu, id: gpu-0, numa: [0, 1]}
kubelet:
  cpuManagerPolicy: static
  kubeReserved: {cpu: "1"}
  topologyManagerPolicy: single-numa-node
"#;

fn pod(uid: &str, nics: &str, gpus: &str) -> String {
    format!(
        "  - admit:\n      metadata: {{name: {uid}, uid: {uid}}}\n      spec:\n        containers:\n          - {{name: c, resources: {{limits: {{cpu: \"1\", memory: 1Gi, example.com/nic: \"{nics}\", nvidia.com/gpu: {gpus}}}}}}}\n"
    )
}

#[test]
fn devices_field_state_line_and_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let body = format!(
        "{MACHINE}steps:\n{}{}{}",
        pod("a", "1", "1"),
        pod("b", "1", "0"),
        pod("c", "1", "0")
    );
    let s = write(dir.path(), "s.yaml", &body);
    let state = dir.path().join("state");
    std::fs::create_dir(&state).unwrap();
    let out = nmm(&[
        "simulate",
        s.to_str().unwrap(),
        "-o",
        "json",
        "--state-dir",
        state.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let lines: Vec<serde_json::Value> = text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines[0]["admitted"], true);
    assert_eq!(
        lines[0]["containers"][0]["devices"]["example.com/nic"][0],
        "nic-0"
    );
    assert_eq!(
        lines[0]["containers"][0]["devices"]["nvidia.com/gpu"][0],
        "gpu-0"
    );
    assert_eq!(
        lines[1]["containers"][0]["devices"]["example.com/nic"][0],
        "nic-1"
    );
    // No healthy NIC left: single-numa-node finds no hint for it.
    assert_eq!(lines[2]["admitted"], false);
    assert_eq!(lines[2]["reason"], "TopologyAffinityError");
    let canonical = &lines[3]["device_manager_state_canonical"];
    assert_eq!(
        canonical["Data"]["RegisteredDevices"]["example.com/nic"],
        serde_json::json!(["nic-0", "nic-1"])
    );
    let file = state.join("device-plugins/kubelet_internal_checkpoint");
    let written: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    assert_eq!(&written, canonical);

    // Restart from that checkpoint: pods a and b still hold their devices; removing a
    // frees nic-0 for a new pod.
    let body = format!(
        "{MACHINE}state:\n  deviceManager: state/device-plugins/kubelet_internal_checkpoint\nsteps:\n{}  - remove: {{uid: a}}\n{}",
        pod("d", "1", "0"),
        pod("e", "1", "1")
    );
    let s2 = write(dir.path(), "restart.yaml", &body);
    let out = nmm(&["simulate", s2.to_str().unwrap(), "-o", "json"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let lines: Vec<serde_json::Value> = text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines[0]["admitted"], false, "{}", lines[0]);
    assert_eq!(lines[1]["removed"], true);
    assert_eq!(lines[2]["admitted"], true, "{}", lines[2]);
    assert_eq!(
        lines[2]["containers"][0]["devices"]["example.com/nic"][0],
        "nic-0"
    );

    // A corrupted checkpoint is ignored with a warning, as the kubelet does.
    let bad = std::fs::read_to_string(&file)
        .unwrap()
        .replace("nic-1", "nic-9");
    std::fs::write(&file, bad).unwrap();
    let out = nmm(&["simulate", s2.to_str().unwrap(), "-o", "json"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(
        text(&out.stderr).contains("checkpoint is corrupted"),
        "{}",
        text(&out.stderr)
    );
    assert!(text(&out.stdout)
        .lines()
        .next()
        .unwrap()
        .contains("\"admitted\":true"));
}

#[test]
fn bad_device_input_names_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            MACHINE.replace("id: nic-1,", "id: nic-0,"),
            "machine.devices[1].id",
        ),
        (
            MACHINE.replace("numa: [1]}", "numa: [7]}"),
            "machine.devices[1].numa[0]",
        ),
        (
            MACHINE.replace("healthy: false", "healthy: maybe"),
            "machine.devices[2].healthy",
        ),
        (
            MACHINE.replace("resource: nvidia.com/gpu, ", ""),
            "machine.devices[3].resource",
        ),
        (
            MACHINE.replace("healthy: false", "helthy: false"),
            "machine.devices[2].helthy: unknown field; did you mean `healthy`?",
        ),
        (
            MACHINE.replace("numa: [0, 1]", "numa: []"),
            "machine.devices[3].numa: empty",
        ),
        (
            MACHINE.replace("numa: [0, 1]", "numa: [1, 1]"),
            "machine.devices[3].numa[1]: NUMA node 1 is listed twice",
        ),
        (
            MACHINE.replace("healthy: false", "healthy: no"),
            "machine.devices[2].healthy: expected true or false, got no",
        ),
        (
            MACHINE.replace("numa: [0]}", "numa: [0], healthy: yes}"),
            "machine.devices[0].healthy: expected true or false, got yes",
        ),
    ];
    for (m, field) in cases {
        let s = write(dir.path(), "bad.yaml", &format!("{m}steps: []\n"));
        let out = nmm(&["simulate", s.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(2), "{field}: {}", text(&out.stdout));
        let e = text(&out.stderr);
        assert!(e.contains("bad.yaml") && e.contains(field), "{field}: {e}");
    }
    for (count, list) in [("1.5", "limits"), ("500m", "limits"), ("-1", "limits")] {
        let body = format!("{MACHINE}steps:\n{}", pod("a", count, "0"));
        let s = write(dir.path(), "bad.yaml", &body);
        let out = nmm(&["simulate", s.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(2), "{count}");
        let e = text(&out.stderr);
        assert!(
            e.contains(&format!(
                "steps[0].admit.spec.containers[0].resources.{list}[\"example.com/nic\"]"
            )),
            "{count}: {e}"
        );
    }
}

#[test]
fn state_show_and_verify_read_the_device_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let body = format!(
        "{MACHINE}steps:\n{}{}",
        pod("a", "1", "1"),
        pod("b", "1", "0")
    );
    let s = write(dir.path(), "s.yaml", &body);
    let state = dir.path().join("state");
    std::fs::create_dir(&state).unwrap();
    let out = nmm(&[
        "simulate",
        s.to_str().unwrap(),
        "--state-dir",
        state.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let plugins = state.join("device-plugins");
    let file = plugins.join("kubelet_internal_checkpoint");

    // The directory finds the file; the table names holder, resource, device and node.
    let out = nmm(&["state", "show", plugins.to_str().unwrap()]);
    let t = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{t}{}", text(&out.stderr));
    assert!(
        t.contains("device manager, checksum") && t.contains("verified"),
        "{t}"
    );
    let row_a = t
        .lines()
        .find(|l| l.contains("│ a ") && l.contains("example.com/nic"));
    assert!(
        row_a.is_some_and(|l| l.contains("nic-0") && l.contains("0: nic-0")),
        "{t}"
    );
    assert!(t.contains("nvidia.com/gpu") && t.contains("gpu-0"), "{t}");

    let out = nmm(&["state", "show", file.to_str().unwrap(), "-o", "json"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let v: serde_json::Value = serde_json::from_str(&text(&out.stdout)).unwrap();
    assert_eq!(v["kind"], "device");
    let b = v["podDevices"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["podUID"] == "b")
        .unwrap();
    assert_eq!(b["resourceName"], "example.com/nic");
    assert_eq!(b["deviceIDs"], serde_json::json!(["nic-1"]));
    assert_eq!(b["numaNodes"]["1"], serde_json::json!(["nic-1"]));
    // nic-2 is unhealthy, so not registered; both healthy NICs are held.
    assert_eq!(
        v["registeredDevices"]["example.com/nic"]["free"],
        serde_json::json!([])
    );

    let out = nmm(&["state", "verify", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));
    assert!(text(&out.stdout).contains("OK"));

    // A changed checksum: the kubelet's "checkpoint is corrupted", exit 1 for both.
    let body = std::fs::read_to_string(&file).unwrap();
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    let c = v["Checksum"].as_u64().unwrap();
    std::fs::write(&file, body.replace(&c.to_string(), &(c ^ 1).to_string())).unwrap();
    let out = nmm(&["state", "show", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("checkpoint is corrupted"),
        "{}",
        text(&out.stderr)
    );
    let out = nmm(&["state", "verify", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stdout).contains("CORRUPT"),
        "{}",
        text(&out.stdout)
    );
}

#[test]
fn svg_shows_each_device_under_its_numa_node() {
    let dir = tempfile::tempdir().unwrap();
    let body = format!("{MACHINE}steps:\n{}", pod("a", "1", "1"));
    let s = write(dir.path(), "s.yaml", &body);
    let svg = dir.path().join("n.svg");
    let out = nmm(&[
        "simulate",
        s.to_str().unwrap(),
        "--svg",
        svg.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let svg = std::fs::read_to_string(svg).unwrap();
    let n0 = svg.find(">devices on NUMA 0<").expect("a NUMA 0 heading");
    let n1 = svg.find(">devices on NUMA 1<").expect("a NUMA 1 heading");
    let held = svg
        .find("nic-0 (example.com/nic): pod a, container c")
        .expect("nic-0 held by a");
    let free = svg
        .find("nic-1 (example.com/nic): free")
        .expect("nic-1 free");
    assert!(n0 < held && held < n1 && n1 < free);
    assert!(svg.contains("nic-2 (example.com/nic): free (unhealthy)"));
    // gpu-0 sits on both nodes: listed under each.
    assert_eq!(
        svg.matches(">gpu-0 (nvidia.com/gpu): pod a, container c</text>")
            .count(),
        2
    );
}

#[test]
fn node_lists_pci_devices_with_their_numa_nodes() {
    use nmm_sysfs::fake::FakeSysfs;
    let dir = tempfile::tempdir().unwrap();
    FakeSysfs::uniform(2, 2, 1, 1 << 30)
        .pci("0000:17:00.0", "0", "0x020000", "0x15b3", "0x101d")
        .pci("0000:ca:00.0", "1", "0x030200", "0x10de", "0x2330")
        .pci("0000:00:00.0", "-1", "0x060000", "0x8086", "0x09a2")
        .pci("0000:cb:00.0", "one", "0x030200", "0x10de", "0x2330")
        .write_to(dir.path())
        .unwrap();
    let root = dir.path().to_str().unwrap();
    let out = nmm(&["node", "--sysfs-root", root]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let t = text(&out.stdout);
    let gpu = t
        .lines()
        .find(|l| l.contains("0000:ca:00.0"))
        .expect("gpu row");
    assert!(
        gpu.contains("gpu") && gpu.contains("0x10de:0x2330") && gpu.contains(" 1 "),
        "{t}"
    );
    assert!(t.contains("1 other PCI functions"), "{t}");
    // The odd device is skipped with a warning naming its file.
    let e = text(&out.stderr);
    assert!(
        e.contains("0000:cb:00.0/numa_node: \"one\" is not a NUMA node id"),
        "{e}"
    );
    assert!(!t.contains("0000:cb:00.0"));

    let out = nmm(&["node", "--sysfs-root", root, "-o", "json"]);
    let v: serde_json::Value = serde_json::from_str(&text(&out.stdout)).unwrap();
    assert_eq!(v["pciDevices"][0]["address"], "0000:17:00.0");
    assert_eq!(v["pciDevices"][0]["numaNode"], 0);
    assert_eq!(v["pciDevices"][1]["kind"], "gpu");

    // YAML: the machine block is unchanged and loads as a scenario machine.
    let out = nmm(&["node", "--sysfs-root", root, "-o", "yaml"]);
    let y = text(&out.stdout);
    assert!(
        y.contains("#    - {resource: example.com/gpu, id: \"0000:ca:00.0\", numa: [1]}"),
        "{y}"
    );
    let s = write(dir.path(), "s.yaml", &format!("{y}steps: []\n"));
    let out = nmm(&["simulate", s.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
}

#[test]
fn explain_names_a_device_shortage() {
    let ex = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/gb200-34-numa.yaml");
    let out = nmm(&["explain", ex.to_str().unwrap(), "--step", "2"]);
    let t = text(&out.stdout);
    assert!(t.contains("REJECTED (TopologyAffinityError)"), "{t}");
    assert!(t.contains("devices") && t.contains("nvidia.com/gpu"), "{t}");
    assert!(t.contains("nvidia.com/gpu: device shortage"), "{t}");
}
