//! KEP-6232 through the binary: `nmm simulate` restarting from a checkpoint written on a
//! machine whose per-NUMA memory has since drifted, and `nmm state verify` on it, with
//! `memory-drift-tolerance` off, a quantity, and `auto` from a `/proc/iomem` copy.

#[path = "support/cli.rs"]
mod cli;

use std::path::{Path, PathBuf};

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

fn nmm(args: &[&str]) -> Run {
    let o = cli::nmm_command()
        .args(args)
        // Content, not layout (output_cli.rs checks the 80-column fit).
        .output()
        .expect("run nmm");
    Run {
        code: o.status.code().expect("exit status"),
        stdout: String::from_utf8(o.stdout).unwrap(),
        stderr: String::from_utf8(o.stderr).unwrap(),
    }
}

const GI: i64 = 1 << 30;
const MI: i64 = 1 << 20;

fn scenario(mem: [i64; 2], tolerance: Option<&str>, state: Option<&Path>, uid: &str) -> String {
    let opts = match tolerance {
        Some(t) => format!(
            "  featureGates: {{MemoryManagerDriftTolerance: true}}\n  memoryManagerPolicyOptions: {{memory-drift-tolerance: \"{t}\"}}\n"
        ),
        None => String::new(),
    };
    let state = match state {
        Some(p) => format!("state:\n  memoryManager: \"{}\"\n", p.display()),
        None => String::new(),
    };
    format!(
        "machine:
  numaNodes:
    - {{id: 0, cpus: \"0-3\", memory: {}}}
    - {{id: 1, cpus: \"4-7\", memory: {}}}
kubelet:
  memoryManagerPolicy: Static
  topologyManagerPolicy: best-effort
  kubeReserved: {{memory: 1Gi}}
  evictionHard: {{}}
  reservedMemory: [{{numaNode: 0, limits: {{memory: 1Gi}}}}]
{opts}{state}steps:
  - admit: {{metadata: {{name: {uid}, uid: {uid}}}, spec: {{containers: [{{name: app, resources: {{limits: {{cpu: \"1\", memory: 2Gi}}}}}}]}}}}
",
        mem[0], mem[1]
    )
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let f = dir.join(name);
    std::fs::write(&f, text).unwrap();
    f
}

/// A checkpoint written by `nmm simulate --state-dir` on the undrifted machine.
fn first_boot(dir: &Path) -> PathBuf {
    let s = write(
        dir,
        "boot1.yaml",
        &scenario([16 * GI, 16 * GI], None, None, "uid-a"),
    );
    let state = dir.join("state");
    std::fs::create_dir_all(&state).unwrap();
    let r = nmm(&[
        "simulate",
        s.to_str().unwrap(),
        "-o",
        "json",
        "--state-dir",
        state.to_str().unwrap(),
    ]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    state.join("memory_manager_state")
}

const IOMEM_ROOT: &str = "00100000-bffdffff : System RAM
  14e00000-15e01fff : Kernel code
  16a00000-16c4a27f : Kernel data
  172a8000-175fffff : Kernel bss
";
const IOMEM_ZEROED: &str = "00000000-00000000 : System RAM
  00000000-00000000 : Kernel code
  00000000-00000000 : Kernel data
  00000000-00000000 : Kernel bss
";

#[test]
fn simulate_restarts_within_the_bound_and_refuses_without_it() {
    let dir = tempfile::tempdir().unwrap();
    let ck = first_boot(dir.path());
    let drifted = [16 * GI - 30 * MI, 16 * GI + 30 * MI];

    let strict = write(
        dir.path(),
        "strict.yaml",
        &scenario(drifted, None, Some(&ck), "uid-b"),
    );
    let r = nmm(&["simulate", strict.to_str().unwrap(), "-o", "json"]);
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stdout
            .contains("the expected machine state is different from the real one"),
        "{}",
        r.stdout
    );

    let tolerant = write(
        dir.path(),
        "tolerant.yaml",
        &scenario(drifted, Some("64Mi"), Some(&ck), "uid-b"),
    );
    let out = dir.path().join("out");
    std::fs::create_dir_all(&out).unwrap();
    let r = nmm(&[
        "simulate",
        tolerant.to_str().unwrap(),
        "-o",
        "json",
        "--state-dir",
        out.to_str().unwrap(),
    ]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("\"admitted\":true"), "{}", r.stdout);
    assert!(r.stderr.contains("note: state.memoryManager: regular memory drifted since the checkpoint was written: node 0 -31457280 bytes, node 1 +31457280 bytes"), "{}", r.stderr);
    assert!(r.stderr.contains("re-bases the books"), "{}", r.stderr);
    // The rewritten checkpoint is exact for this machine: a strict restart accepts it.
    let again = write(
        dir.path(),
        "again.yaml",
        &scenario(
            drifted,
            None,
            Some(&out.join("memory_manager_state")),
            "uid-c",
        ),
    );
    let r = nmm(&["simulate", again.to_str().unwrap(), "-o", "json"]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);

    // auto: the bound comes from --proc-iomem; zeroed addresses leave the exact comparison.
    let auto = write(
        dir.path(),
        "auto.yaml",
        &scenario(drifted, Some("auto"), Some(&ck), "uid-b"),
    );
    let root = write(dir.path(), "iomem", IOMEM_ROOT);
    let zeroed = write(dir.path(), "iomem0", IOMEM_ZEROED);
    let r = nmm(&[
        "simulate",
        auto.to_str().unwrap(),
        "-o",
        "json",
        "--proc-iomem",
        root.to_str().unwrap(),
    ]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("auto: kernel image span"), "{}", r.stderr);
    for extra in [vec!["--proc-iomem", zeroed.to_str().unwrap()], vec![]] {
        let mut args = vec!["simulate", auto.to_str().unwrap(), "-o", "json"];
        args.extend(extra);
        let r = nmm(&args);
        assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
    }
}

#[test]
fn state_verify_honours_the_option() {
    let dir = tempfile::tempdir().unwrap();
    let ck = first_boot(dir.path());
    let drifted = [16 * GI - 30 * MI, 16 * GI + 30 * MI];
    let strict = write(
        dir.path(),
        "strict.yaml",
        &scenario(drifted, None, None, "uid-b"),
    );
    let tolerant = write(
        dir.path(),
        "tolerant.yaml",
        &scenario(drifted, Some("64Mi"), None, "uid-b"),
    );
    let auto = write(
        dir.path(),
        "auto.yaml",
        &scenario(drifted, Some("auto"), None, "uid-b"),
    );
    let root = write(dir.path(), "iomem", IOMEM_ROOT);
    let ck = ck.to_str().unwrap();

    let r = nmm(&["state", "verify", ck, "--machine", strict.to_str().unwrap()]);
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
    let r = nmm(&[
        "state",
        "verify",
        ck,
        "--machine",
        tolerant.to_str().unwrap(),
    ]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stdout
            .contains("accepted within the memory-drift-tolerance bound"),
        "{}",
        r.stdout
    );
    let r = nmm(&[
        "state",
        "verify",
        ck,
        "--machine",
        auto.to_str().unwrap(),
        "--proc-iomem",
        root.to_str().unwrap(),
    ]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let r = nmm(&["state", "verify", ck, "--machine", auto.to_str().unwrap()]);
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
    let r = nmm(&[
        "state",
        "verify",
        ck,
        "--machine",
        auto.to_str().unwrap(),
        "--proc-iomem",
        "/nonexistent/iomem",
    ]);
    assert_eq!(r.code, 2, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stderr.contains("/nonexistent/iomem: cannot read"),
        "{}",
        r.stderr
    );
}
