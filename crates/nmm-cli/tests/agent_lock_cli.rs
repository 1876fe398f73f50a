//! One agent per state directory, on the real binary: a second `nmm agent` on a directory
//! another agent holds exits 2 before touching it, naming the directory and the holder's
//! PID; a SIGKILLed holder leaves nothing that blocks the next start (flock semantics).

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

const SCENARIO: &str = r#"
machine:
  numaNodes:
    - {id: 0, cpus: "0-3", memory: "4294967296"}
    - {id: 1, cpus: "4-7", memory: "4294967296"}
kubelet:
  cpuManagerPolicy: static
  memoryManagerPolicy: Static
  topologyManagerPolicy: single-numa-node
  kubeReserved: {cpu: "1", memory: 500Mi}
  evictionHard: {memory.available: 100Mi}
  reservedMemory:
    - {numaNode: 0, limits: {memory: 600Mi}}
"#;

struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn agent(cfg: &Path, state: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_nmm"));
    c.arg("agent")
        .arg("--config")
        .arg(cfg)
        .arg("--state-dir")
        .arg(state)
        .args(["--no-nri", "--metrics-addr", "off"])
        .env_remove("RUST_LOG");
    c
}

/// Spawns an agent and waits for its `serving` line; its stderr lines go to the receiver.
fn spawn_serving(cfg: &Path, state: &Path) -> (KillOnDrop, Receiver<String>) {
    let mut child = agent(cfg, state)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let err = BufReader::new(child.stderr.take().unwrap());
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for l in err.lines() {
            let Ok(l) = l else { break };
            if tx.send(l).is_err() {
                break;
            }
        }
    });
    let child = KillOnDrop(child);
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut seen = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(l) if l.contains("serving") => return (child, rx),
            Ok(l) => seen.push(l),
            Err(_) => panic!("the agent did not start; log:\n{}", seen.join("\n")),
        }
    }
}

fn wait_exit(c: &mut Child) -> std::process::ExitStatus {
    let t0 = Instant::now();
    loop {
        if let Some(s) = c.try_wait().unwrap() {
            return s;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "the agent did not stop"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_second_agent_on_the_state_dir_exits_2_and_a_killed_holder_blocks_nothing() {
    let d = tempfile::tempdir().unwrap();
    let cfg = d.path().join("node.yaml");
    std::fs::write(&cfg, SCENARIO).unwrap();
    let state = d.path().join("state");
    std::fs::create_dir(&state).unwrap();

    let (mut first, _log) = spawn_serving(&cfg, &state);
    let holder = first.0.id();
    let lock = std::fs::read_to_string(state.join("agent.lock")).unwrap();
    assert_eq!(lock.trim(), holder.to_string());

    // The state directory as the holder left it, to show the second agent changes nothing.
    let before = files(&state);
    let out = agent(&cfg, &state).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains(&state.display().to_string()), "{err}");
    assert!(err.contains(&format!("pid {holder}")), "{err}");
    assert!(
        err.contains("Stop that agent first") && err.contains("--state-dir"),
        "{err}"
    );
    // Refused before it bound anything or read the books: no "restored" line.
    assert!(!err.contains("restored"), "{err}");
    let after = files(&state);
    assert_eq!(before, after);
    // The holder still serves: its socket answers.
    assert!(std::os::unix::net::UnixStream::connect(state.join("pod-resources.sock")).is_ok());

    // SIGKILL: no clean-up runs, yet the kernel drops the lock with the process.
    first.0.kill().unwrap();
    wait_exit(&mut first.0);
    assert!(state.join("agent.lock").exists());
    let (mut next, rx) = spawn_serving(&cfg, &state);
    let lock = std::fs::read_to_string(state.join("agent.lock")).unwrap();
    assert_eq!(lock.trim(), next.0.id().to_string());
    let st = Command::new("kill")
        .args(["-TERM", &next.0.id().to_string()])
        .status()
        .unwrap();
    assert!(st.success());
    let status = wait_exit(&mut next.0);
    let rest: Vec<String> = rx.try_iter().collect();
    assert_eq!(status.code(), Some(0), "{}", rest.join("\n"));
}

/// The regular files of `dir` with their contents, by name.
fn files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.file_type().unwrap().is_file())
        .map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            (name, std::fs::read(e.path()).unwrap())
        })
        .collect();
    v.sort();
    v
}
