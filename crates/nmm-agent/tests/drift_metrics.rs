//! KEP-6232 in the agent: a checkpoint written before the node's per-NUMA memory drifted
//! is accepted within `memory-drift-tolerance`, rewritten for this machine at start, and
//! the bound and the drift per node are exported as metrics.

use nmm_agent::{Agent, AgentOptions};
use nmm_core::cpuset::CpuSet;
use nmm_core::kubelet_config::{KubeletConfig, MemoryReservation};
use nmm_core::machine::{Cpu, Machine, NumaNode};
use nmm_core::node::{Node, RawCheckpoint, StartOptions};
use std::collections::BTreeMap;

const GI: u64 = 1 << 30;
const MI: u64 = 1 << 20;

fn machine(mem: [u64; 2]) -> Machine {
    let mut m = Machine::default();
    for n in 0..2u32 {
        let cpus: CpuSet = (n * 4..(n + 1) * 4).collect();
        for c in cpus.iter() {
            m.cpus.push(Cpu {
                id: c,
                core: c,
                socket: 0,
                numa: n,
            });
        }
        m.nodes.push(NumaNode {
            id: n,
            cpus,
            memory: mem[n as usize],
            hugepages: BTreeMap::new(),
            distances: vec![],
        });
    }
    m.default_distances();
    m
}

fn config(tolerance: Option<&str>) -> KubeletConfig {
    KubeletConfig {
        memory_manager_policy: Some("Static".into()),
        topology_manager_policy: Some("best-effort".into()),
        kube_reserved: Some([("memory".to_string(), "1Gi".to_string())].into()),
        eviction_hard: Some(BTreeMap::new()),
        reserved_memory: Some(vec![MemoryReservation {
            numa_node: 0,
            limits: vec![("memory".into(), "1Gi".into())],
        }]),
        memory_manager_policy_options: tolerance
            .map(|t| [("memory-drift-tolerance".to_string(), t.to_string())].into()),
        feature_gates: tolerance
            .map(|_| [("MemoryManagerDriftTolerance".to_string(), true)].into()),
        ..Default::default()
    }
}

#[test]
fn drifted_checkpoint_is_rebased_rewritten_and_exported() {
    let dir = tempfile::tempdir().unwrap();
    let before = Node::start(
        machine([16 * GI, 16 * GI]),
        config(None),
        StartOptions::default(),
    )
    .unwrap();
    let file = dir.path().join("memory_manager_state");
    std::fs::write(&file, before.memory_checkpoint()).unwrap();
    let drifted = machine([16 * GI - 30 * MI, 16 * GI + 30 * MI]);

    let opts = |t: Option<&str>| AgentOptions {
        machine: drifted.clone(),
        kubelet: config(t),
        state_dir: dir.path().to_path_buf(),
        reconcile: None,
        cgroup_root: None,
        devices: Default::default(),
    };
    // The exact comparison refuses it, as kubelet v1.32 does.
    let e = Agent::start(opts(None)).unwrap_err().to_string();
    assert!(
        e.contains("the expected machine state is different from the real one"),
        "{e}"
    );

    let (agent, report) = Agent::start(opts(Some("64Mi"))).unwrap();
    assert!(report.wrote_state);
    let m = agent.metrics.encode();
    assert!(
        m.contains("nmm_memory_drift_tolerance_bytes 67108864\n"),
        "{m}"
    );
    assert!(
        m.contains("nmm_memory_drift_bytes{numa_node=\"0\"} -31457280\n"),
        "{m}"
    );
    assert!(
        m.contains("nmm_memory_drift_bytes{numa_node=\"1\"} 31457280\n"),
        "{m}"
    );
    drop(agent);
    // The rewritten checkpoint passes the exact comparison on this machine.
    let bytes = std::fs::read(&file).unwrap();
    Node::start(
        drifted,
        config(None),
        StartOptions {
            memory_checkpoint: Some(RawCheckpoint::Bytes(bytes)),
            ..Default::default()
        },
    )
    .unwrap();
}
