//! Drives the agent without a container runtime: admits pods on a machine and writes the
//! cpuset of a container's cgroup with the cgroup v2 enforcer, as `Agent::container_started_in`
//! does for the NRI plugin. Used by the qemu end-to-end test (`tests/e2e/qemu_numa.sh`).
//!
//! ```text
//! nmm node -o json > machine.json          # the machine, read from sysfs
//! cargo run -p nmm-agent --example enforce -- \
//!     --machine machine.json [--kubelet-config kubelet.json] --state-dir /tmp/s \
//!     --cgroup-root /sys/fs/cgroup \
//!     --pod filler.json --pod app.json \
//!     --start UID:CONTAINER:CGROUP_PATH
//! ```
//!
//! `--machine` takes the JSON of `nmm node -o json` (or `{"machine": ...}`). The kubelet
//! config (JSON, KubeletConfiguration field names) defaults to: static CPU and Memory
//! Managers, `single-numa-node` Topology Manager, CPU 0 reserved, 100Mi kubeReserved +
//! 100Mi eviction threshold reserved on the lowest NUMA node. Pods (JSON) are admitted in
//! order; every `--start` then writes `cpuset.cpus` / `cpuset.mems` of that container's
//! cgroup (relative to `--cgroup-root`).
//!
//! Output, one line each: `admitted UID NAME containers=[c:cpus=..:mems=..]` or
//! `rejected UID NAME REASON: MESSAGE`, and `cpuset UID CONTAINER cpus=LIST mems=LIST
//! cgroup=PATH`. Exit status 1 when a pod is rejected or a start fails, 2 on bad input.

use nmm_agent::{Agent, AgentOptions, ContainerCpuset};
use nmm_core::cpuset::CpuSet;
use nmm_core::kubelet_config::KubeletConfig;
use nmm_core::machine::{Cpu, Machine, NumaNode};
use nmm_core::quantity::Quantity;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

fn die(msg: impl std::fmt::Display) -> ! {
    eprintln!("enforce: {msg}");
    std::process::exit(2)
}

fn read_json(path: &Path) -> Value {
    let text =
        std::fs::read_to_string(path).unwrap_or_else(|e| die(format!("{}: {e}", path.display())));
    serde_json::from_str(&text).unwrap_or_else(|e| die(format!("{}: {e}", path.display())))
}

fn u64_of(v: &Value, what: &str) -> u64 {
    v.as_u64()
        .unwrap_or_else(|| die(format!("{what}: expected an unsigned integer, got {v}")))
}

/// The machine from `nmm node -o json`.
fn machine_from_json(v: &Value) -> Machine {
    let v = v.get("machine").unwrap_or(v);
    let mut m = Machine::default();
    let nodes = v["numaNodes"]
        .as_array()
        .unwrap_or_else(|| die("machine: numaNodes: expected a list"));
    let rows = v.get("distances").and_then(Value::as_array);
    for (i, n) in nodes.iter().enumerate() {
        let id = u64_of(&n["id"], "numaNodes[].id") as u32;
        let cpus = CpuSet::parse(n["cpus"].as_str().unwrap_or(""))
            .unwrap_or_else(|e| die(format!("numaNodes[{i}].cpus: {e}")));
        let mut hugepages = BTreeMap::new();
        if let Some(hp) = n.get("hugepages").and_then(Value::as_object) {
            for (size, total) in hp {
                let q = Quantity::parse(size)
                    .unwrap_or_else(|e| die(format!("numaNodes[{i}].hugepages.{size}: {e}")));
                hugepages.insert(q.value() as u64, u64_of(total, "hugepages"));
            }
        }
        let distances = rows
            .and_then(|r| r.get(i))
            .and_then(Value::as_array)
            .map(|r| r.iter().map(|d| u64_of(d, "distances")).collect())
            .unwrap_or_default();
        m.nodes.push(NumaNode {
            id,
            cpus,
            memory: u64_of(&n["memory"], "numaNodes[].memory"),
            hugepages,
            distances,
        });
    }
    for c in v["cpus"].as_array().into_iter().flatten() {
        m.cpus.push(Cpu {
            id: u64_of(&c["id"], "cpus[].id") as u32,
            core: u64_of(&c["core"], "cpus[].core") as u32,
            socket: u64_of(&c["socket"], "cpus[].socket") as u32,
            numa: u64_of(&c["numa"], "cpus[].numa") as u32,
        });
    }
    m.nodes.sort_by_key(|n| n.id);
    m.cpus.sort_by_key(|c| c.id);
    if m.nodes.iter().all(|n| n.distances.is_empty()) {
        m.default_distances();
    }
    m
}

fn default_kubelet_config(m: &Machine) -> KubeletConfig {
    let first = m.nodes.first().map(|n| n.id).unwrap_or(0);
    serde_json::from_value(json!({
        "memoryManagerPolicy": "Static",
        "cpuManagerPolicy": "static",
        "topologyManagerPolicy": "single-numa-node",
        "topologyManagerScope": "container",
        "reservedSystemCPUs": "0",
        "kubeReserved": {"memory": "100Mi"},
        "evictionHard": {"memory.available": "100Mi"},
        "reservedMemory": [{"numaNode": first, "limits": {"memory": "200Mi"}}]
    }))
    .unwrap_or_else(|e| die(format!("the default kubelet config: {e}")))
}

fn cpuset_text(set: &ContainerCpuset) -> String {
    format!(
        "cpus={} mems={}",
        set.cpus_text().unwrap_or_else(|| "-".into()),
        set.mems_text().unwrap_or_else(|| "-".into())
    )
}

fn main() {
    let (mut machine, mut kubelet, mut state_dir, mut cgroup_root) = (None, None, None, None);
    let (mut pods, mut starts) = (Vec::new(), Vec::new());
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut val = || {
            args.next()
                .unwrap_or_else(|| die(format!("{a} needs a value")))
        };
        match a.as_str() {
            "--machine" => machine = Some(PathBuf::from(val())),
            "--kubelet-config" => kubelet = Some(PathBuf::from(val())),
            "--state-dir" => state_dir = Some(PathBuf::from(val())),
            "--cgroup-root" => cgroup_root = Some(PathBuf::from(val())),
            "--pod" => pods.push(PathBuf::from(val())),
            "--start" => starts.push(val()),
            other => die(format!("unknown argument {other}")),
        }
    }
    let machine = machine_from_json(&read_json(
        &machine.unwrap_or_else(|| die("--machine FILE is required")),
    ));
    let kubelet = match kubelet {
        Some(f) => serde_json::from_value(read_json(&f))
            .unwrap_or_else(|e| die(format!("{}: {e}", f.display()))),
        None => default_kubelet_config(&machine),
    };
    let state_dir = state_dir.unwrap_or_else(|| die("--state-dir DIR is required"));
    std::fs::create_dir_all(&state_dir)
        .unwrap_or_else(|e| die(format!("{}: {e}", state_dir.display())));
    let (agent, _) = Agent::start(AgentOptions {
        machine,
        kubelet,
        state_dir,
        reconcile: None,
        cgroup_root,
        devices: Default::default(),
    })
    .unwrap_or_else(|e| {
        eprintln!("enforce: the agent did not start: {e}");
        std::process::exit(1)
    });
    let mut status = 0;
    for p in &pods {
        let pod = serde_json::from_value(read_json(p))
            .unwrap_or_else(|e| die(format!("{}: {e}", p.display())));
        match agent.admit_pod(&pod) {
            Ok(r) if r.admitted => {
                let uid = r.uid.clone();
                let containers: Vec<String> = pod_containers(&pod)
                    .into_iter()
                    .map(|c| match agent.container_started(&uid, &c) {
                        Ok(s) => format!("{c}:{}", cpuset_text(&s).replace(' ', ":")),
                        Err(e) => format!("{c}:error={e}"),
                    })
                    .collect();
                println!(
                    "admitted {} {} containers=[{}]",
                    r.uid,
                    r.name,
                    containers.join(",")
                );
            }
            Ok(r) => {
                println!(
                    "rejected {} {} {}: {}",
                    r.uid,
                    r.name,
                    r.reason.unwrap_or_default(),
                    r.message.unwrap_or_default()
                );
                status = 1;
            }
            Err(e) => {
                println!("error {}: {e}", p.display());
                status = 1;
            }
        }
    }
    for s in &starts {
        let mut parts = s.splitn(3, ':');
        let (Some(uid), Some(container), Some(cgroup)) = (parts.next(), parts.next(), parts.next())
        else {
            die(format!("--start {s:?}: expected UID:CONTAINER:CGROUP_PATH"))
        };
        match agent.container_started_in(uid, container, Path::new(cgroup)) {
            Ok(set) => println!(
                "cpuset {uid} {container} {} cgroup={cgroup}",
                cpuset_text(&set)
            ),
            Err(e) => {
                println!("start-failed {uid} {container}: {e}");
                status = 1;
            }
        }
    }
    std::process::exit(status)
}

fn pod_containers(pod: &k8s_openapi::api::core::v1::Pod) -> Vec<String> {
    pod.spec
        .as_ref()
        .map(|s| s.containers.iter().map(|c| c.name.clone()).collect())
        .unwrap_or_default()
}
