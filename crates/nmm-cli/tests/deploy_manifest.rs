//! deploy/daemonset.yaml is a valid apps/v1 DaemonSet whose every flag, path, port and
//! probe exists in `nmm agent`, and deploy/Dockerfile builds the binary it runs.

use clap::Parser;
use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::{Container, PodSpec};
use nmm::cmd::agent::Args;
use std::path::{Path, PathBuf};

#[derive(Parser)]
#[command(name = "nmm-agent-args")]
struct AgentCli {
    #[command(flatten)]
    args: Args,
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn manifest() -> DaemonSet {
    let path = repo().join("deploy/daemonset.yaml");
    let text = std::fs::read_to_string(&path).unwrap();
    // Through serde_json::Value: serde-saphyr reads the YAML, k8s-openapi's own
    // Deserialize checks the object; it drops unknown fields silently, so the round trip
    // must give the same object back (a misspelt field fails here).
    let v: serde_json::Value = serde_saphyr::from_str(&text).unwrap();
    let ds: DaemonSet = serde_json::from_value(v.clone()).unwrap();
    let back = serde_json::to_value(&ds).unwrap();
    assert_eq!(
        v,
        back,
        "fields k8s-openapi does not know (typos) in {}",
        path.display()
    );
    ds
}

fn spec(ds: &DaemonSet) -> &PodSpec {
    ds.spec
        .as_ref()
        .unwrap()
        .template
        .spec
        .as_ref()
        .expect("a pod spec")
}

fn agent(ds: &DaemonSet) -> &Container {
    let s = spec(ds);
    assert_eq!(s.containers.len(), 1);
    &s.containers[0]
}

#[test]
fn the_manifest_is_a_daemonset_with_a_node_selector_resources_and_probes() {
    let ds = manifest();
    assert_eq!(ds.metadata.name.as_deref(), Some("nmm-agent"));
    let s = spec(&ds);
    let sel = s.node_selector.as_ref().expect("a node selector");
    assert_eq!(sel.get("nmm.io/agent").map(String::as_str), Some("enabled"));
    let c = agent(&ds);
    let r = c.resources.as_ref().expect("resources");
    assert!(r.requests.as_ref().unwrap().contains_key("memory"));
    assert!(r.limits.as_ref().unwrap().contains_key("memory"));
    let live = c
        .liveness_probe
        .as_ref()
        .unwrap()
        .http_get
        .as_ref()
        .unwrap();
    let ready = c
        .readiness_probe
        .as_ref()
        .unwrap()
        .http_get
        .as_ref()
        .unwrap();
    assert_eq!(live.path.as_deref(), Some("/healthz"));
    assert_eq!(ready.path.as_deref(), Some("/readyz"));
}

#[test]
fn every_flag_value_port_and_probe_exists_in_the_agent() {
    let ds = manifest();
    let c = agent(&ds);
    let args = c.args.clone().unwrap();
    assert_eq!(args[0], "agent");
    // clap accepts every flag and value exactly as `nmm agent` parses them.
    let parsed = AgentCli::try_parse_from(
        std::iter::once("nmm-agent-args".to_string()).chain(args[1..].iter().cloned()),
    )
    .unwrap_or_else(|e| panic!("nmm agent refuses the manifest's args: {e}"))
    .args;
    // The binary's own help names every flag too.
    let help = std::process::Command::new(env!("CARGO_BIN_EXE_nmm"))
        .args(["agent", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8(help.stdout).unwrap();
    for a in args.iter().filter(|a| a.starts_with("--")) {
        assert!(
            help.contains(&format!("{a} ")) || help.contains(&format!("{a}\n")),
            "{a} not in nmm agent --help"
        );
    }

    // The metrics port is the container port the probes use.
    let addr: std::net::SocketAddr = parsed.metrics_addr.parse().unwrap();
    assert!(
        addr.ip().is_unspecified(),
        "probes come from the kubelet, not loopback"
    );
    let ports = c.ports.as_ref().unwrap();
    let metrics = ports
        .iter()
        .find(|p| p.name.as_deref() == Some("metrics"))
        .unwrap();
    assert_eq!(metrics.container_port, i32::from(addr.port()));
    for probe in [&c.liveness_probe, &c.readiness_probe] {
        let g = probe.as_ref().unwrap().http_get.as_ref().unwrap();
        match &g.port {
            k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::String(n) => {
                assert_eq!(n, "metrics")
            }
            k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(p) => {
                assert_eq!(*p, i32::from(addr.port()))
            }
        }
        // The agent's HTTP server answers the path (200 or 503, never 404).
        let state = nmm_agent::http::HttpState::new(true);
        let status = nmm_agent::http::respond(
            &state,
            &nmm_agent::http::Method::GET,
            g.path.as_deref().unwrap(),
        )
        .status();
        assert_ne!(status.as_u16(), 404, "{:?}", g.path);
    }

    // Every path the flags name lies on a volume mount backed by a hostPath.
    let mounts = c.volume_mounts.as_ref().unwrap();
    let volumes = spec(&ds).volumes.as_ref().unwrap();
    let sysfs_probe = parsed.sysfs_root.clone().unwrap().join("sys");
    let mut paths: Vec<(&str, PathBuf)> = vec![
        ("--config", parsed.config.clone()),
        ("--state-dir", parsed.state_dir.clone()),
        ("--sysfs-root", sysfs_probe),
        ("--nri-socket", parsed.nri_socket.clone().unwrap()),
        ("--cri-socket", parsed.cri_socket.clone().unwrap()),
    ];
    if let Some(p) = &parsed.podresources_socket {
        paths.push(("--podresources-socket", p.clone()));
    }
    for (flag, p) in &paths {
        let m = mounts
            .iter()
            .find(|m| p.starts_with(&m.mount_path))
            .unwrap_or_else(|| panic!("{flag} {}: on no volume mount", p.display()));
        let v = volumes.iter().find(|v| v.name == m.name).unwrap();
        assert!(
            v.host_path.is_some(),
            "{flag}: volume {} is not a hostPath",
            v.name
        );
    }
    // Sockets lie in a mounted directory, never a mounted socket file: containerd
    // re-creates its sockets when it restarts, and a file mount keeps the old one.
    for (flag, p) in [
        ("--nri-socket", parsed.nri_socket.clone().unwrap()),
        ("--cri-socket", parsed.cri_socket.clone().unwrap()),
    ] {
        let m = mounts
            .iter()
            .find(|m| p.starts_with(&m.mount_path))
            .unwrap();
        assert_ne!(
            Path::new(&m.mount_path),
            p,
            "{flag}: the socket file is mounted"
        );
        let v = volumes.iter().find(|v| v.name == m.name).unwrap();
        let kind = v.host_path.as_ref().unwrap().type_.as_deref();
        assert!(
            matches!(kind, Some("Directory") | Some("DirectoryOrCreate")),
            "{flag}: volume {} is a {kind:?}, not a directory",
            v.name
        );
    }
    // The node's files the agent only reads are mounted read-only.
    for (flag, p) in [
        ("--config", &parsed.config),
        (
            "--sysfs-root",
            &parsed.sysfs_root.clone().unwrap().join("sys"),
        ),
    ] {
        let m = mounts
            .iter()
            .find(|m| p.starts_with(&m.mount_path))
            .unwrap();
        assert_eq!(m.read_only, Some(true), "{flag}");
    }
    // The kubelet's device checkpoint (PodResources devices) lies in a mounted directory,
    // read-only: the kubelet replaces the file by rename, which a file mount would miss.
    let device_checkpoint = parsed
        .kubelet_root_dir
        .join(nmm_core::devicemanager::STATE_FILE);
    let m = mounts
        .iter()
        .find(|m| device_checkpoint.starts_with(&m.mount_path))
        .expect("the kubelet's device checkpoint is on a volume mount");
    assert_ne!(Path::new(&m.mount_path), device_checkpoint);
    assert_eq!(m.read_only, Some(true), "--kubelet-root-dir");
    let v = volumes.iter().find(|v| v.name == m.name).unwrap();
    let kind = v.host_path.as_ref().unwrap().type_.as_deref();
    assert!(
        matches!(kind, Some("Directory") | Some("DirectoryOrCreate")),
        "{kind:?}"
    );
    let cg = mounts
        .iter()
        .find(|m| m.mount_path == "/sys/fs/cgroup")
        .expect("the cgroup tree is mounted (for --cgroup-root)");
    assert_eq!(cg.read_only, Some(true));
    assert!(matches!(
        parsed.log_format,
        nmm::cmd::agent::LogFormatArg::Json
    ));
}

#[test]
fn the_dockerfile_builds_and_exposes_what_the_manifest_runs() {
    let text = std::fs::read_to_string(repo().join("deploy/Dockerfile")).unwrap();
    assert!(text.contains("cargo build --release --locked"), "{text}");
    assert!(text.contains("-p nmm --bin nmm"));
    assert!(
        text.contains("objcopy --only-keep-debug"),
        "split debug info"
    );
    assert!(text.contains("--strip-all"), "a stripped binary");
    assert!(text.contains("ENTRYPOINT [\"/usr/bin/nmm\"]"));
    assert!(text.contains("EXPOSE 9781"));
    assert!(text
        .lines()
        .any(|l| l.starts_with("USER ") && !l.contains("root")));
    // The image's toolchain is the workspace's minimum Rust version.
    let cargo = std::fs::read_to_string(repo().join("Cargo.toml")).unwrap();
    let msrv = cargo
        .lines()
        .find_map(|l| l.strip_prefix("rust-version = "))
        .unwrap()
        .trim_matches('"');
    assert!(text.contains(&format!("ARG RUST_VERSION={msrv}")), "{msrv}");
    // Every crate of the workspace declares it.
    for krate in [
        "nmm-agent",
        "nmm-cli",
        "nmm-core",
        "nmm-nri",
        "nmm-scenario",
        "nmm-sysfs",
    ] {
        let toml =
            std::fs::read_to_string(repo().join("crates").join(krate).join("Cargo.toml")).unwrap();
        assert!(
            toml.lines()
                .any(|l| l.trim() == "rust-version.workspace = true"),
            "{krate} does not inherit rust-version"
        );
    }
    let ds = manifest();
    let c = agent(&ds);
    assert!(c.image.as_deref().unwrap().contains("nmm:"));
}

fn version_tuple(v: &str) -> Vec<u32> {
    let mut t: Vec<u32> = v.split('.').map(|p| p.parse().unwrap()).collect();
    t.resize(3, 0);
    t
}

/// The declared minimum Rust version is true: no locked dependency (for Linux, dev
/// dependencies included) declares a newer one, so `cargo build --locked` with that
/// toolchain (the Dockerfile's) resolves. Reads the lockfile through `cargo metadata`.
#[test]
fn the_declared_rust_version_covers_every_locked_dependency() {
    let cargo = option_env!("CARGO").unwrap_or("cargo");
    let out = std::process::Command::new(cargo)
        .current_dir(repo())
        .args(["metadata", "--format-version", "1", "--locked", "--offline"])
        .args(["--filter-platform", "x86_64-unknown-linux-gnu"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let text = std::fs::read_to_string(repo().join("Cargo.toml")).unwrap();
    let msrv = text
        .lines()
        .find_map(|l| l.strip_prefix("rust-version = "))
        .unwrap()
        .trim_matches('"');
    let declared = version_tuple(msrv);
    let mut checked = 0;
    for p in meta["packages"].as_array().unwrap() {
        if let Some(rv) = p["rust_version"].as_str() {
            checked += 1;
            assert!(
                version_tuple(rv) <= declared,
                "{} {} needs Rust {rv}, the workspace declares {msrv}",
                p["name"],
                p["version"]
            );
        }
    }
    assert!(
        checked > 10,
        "only {checked} packages declare a rust-version"
    );
}
