//! Golden vectors (kubelet v1.32.10 runs and upstream tests, from the reference notes) and
//! the checkpoints recorded in the conformance scenarios.

use std::collections::BTreeMap;
use std::path::PathBuf;

use proptest::prelude::*;

use super::cpu::{self, CpuCheckpoint};
use super::fnv::fnv1a32;
use super::memory::{self, MemoryCheckpointFormat};
use super::CheckpointError;
use crate::cpumanager::policy_static::CpuAssignments;
use crate::cpuset::CpuSet;
use crate::memorymanager::state::{Assignments, Block, MachineState, MemoryTable, NumaNodeState};
use crate::vecmap::VecMap;

// ---------------------------------------------------------------------------------------
// helpers

fn table(
    total: u64,
    system_reserved: u64,
    allocatable: u64,
    reserved: u64,
    free: u64,
) -> MemoryTable {
    MemoryTable {
        total,
        system_reserved,
        allocatable,
        reserved,
        free,
    }
}

fn node(n: i64, tables: &[(&str, MemoryTable)], cells: &[u32]) -> NumaNodeState {
    NumaNodeState {
        number_of_assignments: n,
        memory_map: tables.iter().map(|(k, t)| (k.to_string(), *t)).collect(),
        cells: cells.to_vec(),
    }
}

fn block(numa: &[u32], kind: &str, size: u64) -> Block {
    Block {
        numa_affinity: numa.to_vec(),
        kind: kind.into(),
        size,
    }
}

fn assignments(items: &[(&str, &str, Vec<Block>)]) -> Assignments {
    let mut a = Assignments::new();
    for (pod, ctr, blocks) in items {
        a.get_or_default(pod)
            .insert(ctr.to_string(), blocks.clone());
    }
    a
}

/// `/work/shared/conformance`: `../shared/conformance` from the workspace root.
fn conformance_dir() -> Option<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/conformance");
    if dir.is_dir() {
        Some(dir)
    } else {
        println!("skipping: {} is absent", dir.display());
        None
    }
}

/// All `*.expected.jsonl` / `*.yaml` files one level below the conformance folder.
fn conformance_files(dir: &PathBuf, suffix: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for sub in std::fs::read_dir(dir).unwrap() {
        let sub = sub.unwrap().path();
        if !sub.is_dir() {
            continue;
        }
        for f in std::fs::read_dir(&sub).unwrap() {
            let f = f.unwrap().path();
            if f.to_string_lossy().ends_with(suffix) {
                out.push(f);
            }
        }
    }
    out.sort();
    out
}

// ---------------------------------------------------------------------------------------
// memory_manager_state golden vectors

/// Upstream `state_checkpoint_test.go` vector (checksum 4215593881).
const UPSTREAM_V1: &str = r#"{"policyName":"static","machineState":{"0":{"numberOfAssignments":0,"memoryMap":{"memory":{"total":2048,"systemReserved":512,"allocatable":1536,"reserved":512,"free":1024}},"cells":[]}},"entries":{"pod":{"container1":[{"numaAffinity":[0],"type":"memory","size":512}]}},"checksum":4215593881}"#;

/// The payload of the upstream V3 tests (DATA1).
const UPSTREAM_DATA1: &str = r#"{"policyName":"static","machineState":{"0":{"numberOfAssignments":0,"memoryMap":{"memory":{"total":2048,"systemReserved":512,"allocatable":1536,"reserved":512,"free":1024}},"cells":[]}},"entries":{"pod":{"container1":[{"numaAffinity":[0],"type":"memory","size":512}]}}}"#;

const UPSTREAM_POD_ENTRIES: &str =
    r#""podEntries":{"pod":{"memoryBlocks":[{"numaAffinity":[0],"type":"memory","size":512}]}}"#;

fn upstream_state() -> (MachineState, Assignments) {
    let ms = MachineState::from([(
        0,
        node(0, &[("memory", table(2048, 512, 1536, 512, 1024))], &[]),
    )]);
    let a = assignments(&[("pod", "container1", vec![block(&[0], "memory", 512)])]);
    (ms, a)
}

#[test]
fn upstream_vector_4215593881() {
    let (ms, a) = upstream_state();
    assert_eq!(memory::checksum("static", &ms, &a), 4215593881);
    assert_eq!(memory::encode("static", &ms, &a), UPSTREAM_V1);
    assert_eq!(
        memory::spew_text("static", &ms, &a),
        "(*state.MemoryManagerCheckpoint){PolicyName:(string)static MachineState:(state.NUMANodeMap)map[0:<*>{NumberOfAssignments:(int)0 MemoryMap:(map[v1.ResourceName]*state.MemoryTable)map[memory:<*>{TotalMemSize:(uint64)2048 SystemReserved:(uint64)512 Allocatable:(uint64)1536 Reserved:(uint64)512 Free:(uint64)1024}] Cells:([]int)[]}] Entries:(state.ContainerMemoryAssignments)map[pod:map[container1:[{NUMAAffinity:([]int)[0] Type:(v1.ResourceName)memory Size:(uint64)512}]]] Checksum:(checksum.Checksum)0}"
    );
    let cp = memory::decode_v132(UPSTREAM_V1.as_bytes()).unwrap();
    assert_eq!(
        (cp.policy_name.as_str(), &cp.machine_state, &cp.entries),
        ("static", &ms, &a)
    );
    assert_eq!(cp.encode(), UPSTREAM_V1);
    let (cp2, fmt, pods) = memory::decode_any(UPSTREAM_V1.as_bytes()).unwrap();
    assert_eq!((cp2, fmt, pods.len()), (cp, MemoryCheckpointFormat::V1, 0));
    // Whitespace as in the upstream test file does not matter.
    let spaced = UPSTREAM_V1.replace("\"checksum\":", "\"checksum\": ");
    assert!(memory::decode_v132(spaced.as_bytes()).is_ok());
}

#[test]
fn policy_none_4236770233() {
    let file = r#"{"policyName":"None","machineState":{},"checksum":4236770233}"#;
    assert_eq!(
        memory::encode("None", &MachineState::new(), &Assignments::new()),
        file
    );
    let cp = memory::decode_v132(file.as_bytes()).unwrap();
    assert_eq!(cp.policy_name, "None");
    assert!(cp.machine_state.is_empty() && cp.entries.is_empty());
    // Keys match case-insensitively, unknown keys are ignored.
    let odd =
        r#"{"PolicyName":"None","MACHINESTATE":{},"unknown":[1,{"x":null}],"checksum":4236770233}"#;
    assert_eq!(memory::decode_v132(odd.as_bytes()).unwrap(), cp);
    // "entries": null is a nil map: the checksum no longer matches.
    let null_entries =
        r#"{"policyName":"None","machineState":{},"entries":null,"checksum":4236770233}"#;
    assert_eq!(
        memory::decode_v132(null_entries.as_bytes()),
        Err(CheckpointError::Corrupted)
    );
    // An empty entries object is the same as an absent one.
    let empty_entries =
        r#"{"policyName":"None","machineState":{},"entries":{},"checksum":4236770233}"#;
    assert!(memory::decode_v132(empty_entries.as_bytes()).is_ok());
    // A stored checksum of 0 is not accepted by v1.32 (but by newer readers).
    let zero = r#"{"policyName":"None","machineState":{},"checksum":0}"#;
    assert_eq!(
        memory::decode_v132(zero.as_bytes()),
        Err(CheckpointError::Corrupted)
    );
    assert_eq!(
        memory::decode_any(zero.as_bytes()).unwrap().1,
        MemoryCheckpointFormat::V1
    );
}

#[test]
fn v3_none_example() {
    let file = r#"{"policyName":"None","machineState":{},"checksum":4236770233,"data":"{\"policyName\":\"None\",\"machineState\":{}}","dataChecksum":3093843326}"#;
    let cp = memory::decode_v132(file.as_bytes()).unwrap();
    assert_eq!(cp.policy_name, "None");
    let (cp3, fmt, pods) = memory::decode_any(file.as_bytes()).unwrap();
    assert_eq!((cp3, fmt, pods.len()), (cp, MemoryCheckpointFormat::V3, 0));
}

fn two_node_state() -> (MachineState, Assignments) {
    const GI: u64 = 1 << 30;
    let ms = MachineState::from([
        (
            0,
            node(
                2,
                &[
                    ("hugepages-1Gi", table(5 * GI, 0, 5 * GI, GI, 4 * GI)),
                    ("memory", table(10 * GI, GI, 4 * GI, GI, 3 * GI)),
                ],
                &[0],
            ),
        ),
        (
            1,
            node(
                0,
                &[
                    ("hugepages-1Gi", table(5 * GI, 0, 5 * GI, 0, 5 * GI)),
                    ("memory", table(10 * GI, GI, 4 * GI, 0, 4 * GI)),
                ],
                &[1],
            ),
        ),
    ]);
    // Block order as stored in the golden file (memory first).
    let a = assignments(&[(
        "fakePod1",
        "fakeContainer1",
        vec![block(&[0], "memory", GI), block(&[0], "hugepages-1Gi", GI)],
    )]);
    (ms, a)
}

const TWO_NODE_V1: &str = r#"{"policyName":"Static","machineState":{"0":{"numberOfAssignments":2,"memoryMap":{"hugepages-1Gi":{"total":5368709120,"systemReserved":0,"allocatable":5368709120,"reserved":1073741824,"free":4294967296},"memory":{"total":10737418240,"systemReserved":1073741824,"allocatable":4294967296,"reserved":1073741824,"free":3221225472}},"cells":[0]},"1":{"numberOfAssignments":0,"memoryMap":{"hugepages-1Gi":{"total":5368709120,"systemReserved":0,"allocatable":5368709120,"reserved":0,"free":5368709120},"memory":{"total":10737418240,"systemReserved":1073741824,"allocatable":4294967296,"reserved":0,"free":4294967296}},"cells":[1]}},"entries":{"fakePod1":{"fakeContainer1":[{"numaAffinity":[0],"type":"memory","size":1073741824},{"numaAffinity":[0],"type":"hugepages-1Gi","size":1073741824}]}},"checksum":2256908568}"#;

const TWO_NODE_V3_TAIL: &str = r#","data":"{\"policyName\":\"Static\",\"machineState\":{\"0\":{\"numberOfAssignments\":2,\"memoryMap\":{\"hugepages-1Gi\":{\"total\":5368709120,\"systemReserved\":0,\"allocatable\":5368709120,\"reserved\":1073741824,\"free\":4294967296},\"memory\":{\"total\":10737418240,\"systemReserved\":1073741824,\"allocatable\":4294967296,\"reserved\":1073741824,\"free\":3221225472}},\"cells\":[0]},\"1\":{\"numberOfAssignments\":0,\"memoryMap\":{\"hugepages-1Gi\":{\"total\":5368709120,\"systemReserved\":0,\"allocatable\":5368709120,\"reserved\":0,\"free\":5368709120},\"memory\":{\"total\":10737418240,\"systemReserved\":1073741824,\"allocatable\":4294967296,\"reserved\":0,\"free\":4294967296}},\"cells\":[1]}},\"entries\":{\"fakePod1\":{\"fakeContainer1\":[{\"numaAffinity\":[0],\"type\":\"memory\",\"size\":1073741824},{\"numaAffinity\":[0],\"type\":\"hugepages-1Gi\",\"size\":1073741824}]}}}","dataChecksum":2266547677}"#;

#[test]
fn two_node_vector_2256908568() {
    let (ms, a) = two_node_state();
    assert_eq!(
        memory::encode_preserving_block_order("Static", &ms, &a),
        TWO_NODE_V1
    );
    let cp = memory::decode_v132(TWO_NODE_V1.as_bytes()).unwrap();
    assert_eq!((&cp.machine_state, &cp.entries), (&ms, &a));
    // The canonical writer sorts blocks by type; the checksum follows the order.
    let sorted = memory::encode("Static", &ms, &a);
    assert!(sorted.contains(r#""fakeContainer1":[{"numaAffinity":[0],"type":"hugepages-1Gi""#));
    assert_ne!(memory::checksum("Static", &ms, &a), 2256908568);
    let reread = memory::decode_v132(sorted.as_bytes()).unwrap();
    assert_eq!(reread.encode(), sorted);

    // The full V3 file: v1.32 reads its V1 part (unknown keys ignored), newer readers the payload.
    let v3 = format!(
        "{}{}",
        &TWO_NODE_V1[..TWO_NODE_V1.len() - 1],
        TWO_NODE_V3_TAIL
    );
    assert_eq!(memory::decode_v132(v3.as_bytes()).unwrap(), cp);
    let (cp3, fmt, pods) = memory::decode_any(v3.as_bytes()).unwrap();
    assert_eq!((cp3, fmt, pods.len()), (cp, MemoryCheckpointFormat::V3, 0));
}

#[test]
fn docs_example_17296941() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/reference");
    let Ok(text) = std::fs::read_to_string(dir.join("checksum-example-spew.txt")) else {
        println!("skipping: {} is absent", dir.display());
        return;
    };
    let text = text.trim_end_matches('\n');
    assert_eq!(fnv1a32(text.as_bytes()), 17296941);
    let ms = MachineState::from([
        (
            0,
            node(
                1,
                &[
                    ("hugepages-1Gi", table(0, 0, 0, 0, 0)),
                    (
                        "memory",
                        table(134987354112, 3221225472, 131766128640, 131766128640, 0),
                    ),
                ],
                &[0, 1],
            ),
        ),
        (
            1,
            node(
                1,
                &[
                    ("hugepages-1Gi", table(0, 0, 0, 0, 0)),
                    (
                        "memory",
                        table(
                            135286722560,
                            2252341248,
                            133034381312,
                            29295144960,
                            103739236352,
                        ),
                    ),
                ],
                &[0, 1],
            ),
        ),
    ]);
    let a = assignments(&[(
        "fa9bdd38-6df9-4cf9-aa67-8c4814da37a8",
        "guaranteed",
        vec![block(&[0, 1], "memory", 161061273600)],
    )]);
    assert_eq!(memory::spew_text("Static", &ms, &a), text);
    assert_eq!(memory::checksum("Static", &ms, &a), 17296941);
    let file = memory::encode("Static", &ms, &a);
    assert!(file.ends_with(r#""checksum":17296941}"#));
    let cp = memory::decode_v132(file.as_bytes()).unwrap();
    assert_eq!((cp.machine_state, cp.entries), (ms, a));
}

#[test]
fn v2_file_is_corrupted_for_v132() {
    let v2 = format!(
        "{},{},\"checksum\":1278640530}}",
        &UPSTREAM_V1[..UPSTREAM_V1.find(",\"checksum\"").unwrap()],
        UPSTREAM_POD_ENTRIES
    );
    assert_eq!(
        memory::decode_v132(v2.as_bytes()),
        Err(CheckpointError::Corrupted)
    );
    let (cp, fmt, pods) = memory::decode_any(v2.as_bytes()).unwrap();
    let (ms, a) = upstream_state();
    assert_eq!(
        (cp.machine_state, cp.entries, fmt),
        (ms, a, MemoryCheckpointFormat::V2)
    );
    assert_eq!(
        pods,
        BTreeMap::from([("pod".to_string(), vec![block(&[0], "memory", 512)])])
    );
    // A V2 file with checksum 0 is accepted as V1 by newer readers, pod entries dropped.
    let zero = v2.replace("1278640530", "0");
    let (_, fmt, pods) = memory::decode_any(zero.as_bytes()).unwrap();
    assert_eq!((fmt, pods.len()), (MemoryCheckpointFormat::V1, 0));
    // Wrong checksum: corrupted for everyone.
    let bad = v2.replace("1278640530", "101010");
    assert_eq!(
        memory::decode_any(bad.as_bytes()).unwrap_err(),
        CheckpointError::Corrupted
    );
}

#[test]
fn upstream_v3_reader_cases() {
    let dc = |s: &str| fnv1a32(format!("(string){s}").as_bytes());
    assert_eq!(dc(UPSTREAM_DATA1), 1849615440);
    let legacy = &UPSTREAM_V1[..UPSTREAM_V1.len() - 1];
    let quoted = |s: &str| serde_json::to_string(s).unwrap();
    let expect = |file: String| memory::decode_any(file.as_bytes());

    // #2 without data section
    let e = expect(format!("{legacy},\"dataChecksum\":1234}}")).unwrap_err();
    assert_eq!(
        e.to_string(),
        "could not load v3 checkpoint: failed to deserialize memory manager checkpoint data: unexpected end of JSON input"
    );
    // #3 without dataChecksum
    let e = expect(format!("{legacy},\"data\":{}}}", quoted(UPSTREAM_DATA1))).unwrap_err();
    assert_eq!(e, CheckpointError::V3(Box::new(CheckpointError::Corrupted)));
    assert_eq!(
        e.to_string(),
        "could not load v3 checkpoint: checkpoint is corrupted"
    );
    // #4 legacy part corrupted, valid payload
    let corrupted_legacy = legacy.replace("4215593881", "1234");
    let file = format!(
        "{corrupted_legacy},\"data\":{},\"dataChecksum\":1849615440}}",
        quoted(UPSTREAM_DATA1)
    );
    let (cp, fmt, _) = expect(file.clone()).unwrap();
    let (ms, a) = upstream_state();
    assert_eq!(
        (cp.machine_state, cp.entries, fmt),
        (ms.clone(), a.clone(), MemoryCheckpointFormat::V3)
    );
    assert_eq!(
        memory::decode_v132(file.as_bytes()),
        Err(CheckpointError::Corrupted)
    );
    // #6 invalid data JSON
    let e = expect(format!("{legacy},\"data\":\"{{\",\"dataChecksum\":1234}}")).unwrap_err();
    assert_eq!(
        e.to_string(),
        "could not load v3 checkpoint: failed to deserialize memory manager checkpoint data: unexpected end of JSON input"
    );
    // #7 invalid JSON
    assert_eq!(
        expect("{".into()).unwrap_err().to_string(),
        "unexpected end of JSON input"
    );
    // #9 unknown field in the payload
    let data = UPSTREAM_DATA1.replacen('{', "{\"unknownField\":\"value\",", 1);
    assert_eq!(dc(&data), 2100279793);
    let file = format!(
        "{corrupted_legacy},\"data\":{},\"dataChecksum\":2100279793}}",
        quoted(&data)
    );
    assert_eq!(expect(file).unwrap().1, MemoryCheckpointFormat::V3);
    // #17 pod entries inside the payload
    let data = format!(
        "{},{UPSTREAM_POD_ENTRIES}}}",
        &UPSTREAM_DATA1[..UPSTREAM_DATA1.len() - 1]
    );
    assert_eq!(dc(&data), 637296054);
    let file = format!(
        "{corrupted_legacy},\"data\":{},\"dataChecksum\":637296054}}",
        quoted(&data)
    );
    let (cp, fmt, pods) = expect(file).unwrap();
    assert_eq!(
        (cp.machine_state, cp.entries, fmt),
        (ms, a, MemoryCheckpointFormat::V3)
    );
    assert_eq!(pods["pod"], vec![block(&[0], "memory", 512)]);
}

#[test]
fn upstream_v132_reader_cases() {
    // invalid checksum (block with the unknown key "affinity")
    let bad = UPSTREAM_V1
        .replace("\"numaAffinity\"", "\"affinity\"")
        .replace("4215593881", "101010");
    assert_eq!(
        memory::decode_v132(bad.as_bytes()),
        Err(CheckpointError::Corrupted)
    );
    // invalid JSON
    assert_eq!(
        memory::decode_v132(b"{"),
        Err(CheckpointError::Json("unexpected end of JSON input".into()))
    );
    assert_eq!(
        memory::decode_v132(b"").unwrap_err().to_string(),
        "unexpected end of JSON input"
    );
    assert_eq!(
        memory::decode_v132(b"xyz").unwrap_err().to_string(),
        "invalid character 'x' looking for beginning of value"
    );
    // `null` is no checkpoint at all: empty struct, checksum 0, corrupted.
    assert_eq!(
        memory::decode_v132(b"null"),
        Err(CheckpointError::Corrupted)
    );
}

#[test]
fn nil_versus_empty_cells_and_blocks() {
    // Checksum over the hand-written go-spew text with nil cells and a nil block list.
    let spew = "(*state.MemoryManagerCheckpoint){PolicyName:(string)Static MachineState:(state.NUMANodeMap)map[0:<*>{NumberOfAssignments:(int)0 MemoryMap:(map[v1.ResourceName]*state.MemoryTable)map[] Cells:([]int)<nil>}] Entries:(state.ContainerMemoryAssignments)map[p:map[c:<nil>]] Checksum:(checksum.Checksum)0}";
    let sum = fnv1a32(spew.as_bytes());
    let file = format!(
        r#"{{"policyName":"Static","machineState":{{"0":{{"numberOfAssignments":0,"memoryMap":{{}},"cells":null}}}},"entries":{{"p":{{"c":null}}}},"checksum":{sum}}}"#
    );
    let cp = memory::decode_v132(file.as_bytes()).unwrap();
    // Clone rules: nil cells and nil block lists become empty.
    assert_eq!(cp.machine_state[&0].cells, Vec::<u32>::new());
    assert_eq!(cp.entries["p"]["c"], Vec::<Block>::new());
    // The same file with [] instead of null no longer matches.
    let empty = file.replace("\"cells\":null", "\"cells\":[]");
    assert_eq!(
        memory::decode_v132(empty.as_bytes()),
        Err(CheckpointError::Corrupted)
    );
    // An absent "cells" is nil too.
    let absent = file.replace(",\"cells\":null", "");
    assert!(memory::decode_v132(absent.as_bytes()).is_ok());
    // A null numaAffinity renders <nil> inside the block.
    let spew = "(*state.MemoryManagerCheckpoint){PolicyName:(string)Static MachineState:(state.NUMANodeMap)map[] Entries:(state.ContainerMemoryAssignments)map[p:map[c:[{NUMAAffinity:([]int)<nil> Type:(v1.ResourceName)memory Size:(uint64)0}]]] Checksum:(checksum.Checksum)0}";
    let sum = fnv1a32(spew.as_bytes());
    let file = format!(
        r#"{{"policyName":"Static","machineState":{{}},"entries":{{"p":{{"c":[{{"numaAffinity":null,"type":"memory","size":null}}]}}}},"checksum":{sum}}}"#
    );
    let cp = memory::decode_v132(file.as_bytes()).unwrap();
    assert_eq!(cp.entries["p"]["c"], vec![block(&[], "memory", 0)]);
}

#[test]
fn unsupported_values() {
    let mk = |spew: &str, json: &str| {
        let sum = fnv1a32(spew.as_bytes());
        let file = json.replace("SUM", &sum.to_string());
        memory::decode_v132(file.as_bytes())
    };
    let e = mk(
        "(*state.MemoryManagerCheckpoint){PolicyName:(string)Static MachineState:(state.NUMANodeMap)map[-1:<*>{NumberOfAssignments:(int)0 MemoryMap:(map[v1.ResourceName]*state.MemoryTable)map[] Cells:([]int)[]}] Entries:(state.ContainerMemoryAssignments)map[] Checksum:(checksum.Checksum)0}",
        r#"{"policyName":"Static","machineState":{"-1":{"numberOfAssignments":0,"memoryMap":{},"cells":[]}},"checksum":SUM}"#,
    );
    assert!(matches!(e, Err(CheckpointError::Unsupported(_))), "{e:?}");
    let e = mk(
        "(*state.MemoryManagerCheckpoint){PolicyName:(string)Static MachineState:(state.NUMANodeMap)map[0:<*>{NumberOfAssignments:(int)0 MemoryMap:(map[v1.ResourceName]*state.MemoryTable)map[memory:<nil>] Cells:([]int)[]}] Entries:(state.ContainerMemoryAssignments)map[] Checksum:(checksum.Checksum)0}",
        r#"{"policyName":"Static","machineState":{"0":{"numberOfAssignments":0,"memoryMap":{"memory":null},"cells":[]}},"checksum":SUM}"#,
    );
    assert!(matches!(e, Err(CheckpointError::Unsupported(_))), "{e:?}");
    let e = mk(
        "(*state.MemoryManagerCheckpoint){PolicyName:(string)Static MachineState:(state.NUMANodeMap)map[0:<nil>] Entries:(state.ContainerMemoryAssignments)map[] Checksum:(checksum.Checksum)0}",
        r#"{"policyName":"Static","machineState":{"0":null},"checksum":SUM}"#,
    );
    assert!(matches!(e, Err(CheckpointError::Unsupported(_))), "{e:?}");
    // Go parses int map keys with ParseInt: "+0" and "00" are node 0 (the last one wins).
    let e = mk(
        "(*state.MemoryManagerCheckpoint){PolicyName:(string)Static MachineState:(state.NUMANodeMap)map[0:<*>{NumberOfAssignments:(int)3 MemoryMap:(map[v1.ResourceName]*state.MemoryTable)<nil> Cells:([]int)<nil>}] Entries:(state.ContainerMemoryAssignments)map[] Checksum:(checksum.Checksum)0}",
        r#"{"policyName":"Static","machineState":{"+0":{"numberOfAssignments":1},"00":{"numberOfAssignments":3}},"checksum":SUM}"#,
    );
    assert_eq!(e.unwrap().machine_state[&0].number_of_assignments, 3);
}

#[test]
fn json_type_errors_like_go() {
    let err = |json: &str| {
        memory::decode_v132(json.as_bytes())
            .unwrap_err()
            .to_string()
    };
    assert_eq!(
        err(r#"{"policyName":"x","machineState":{"0":{"memoryMap":{"memory":{"total":-1}}}},"checksum":1}"#),
        "json: cannot unmarshal number -1 into Go struct field MemoryTable.machineState.memoryMap.total of type uint64"
    );
    assert_eq!(
        err(r#"{"policyName":"x","entries":{"p":{"c":[{"size":1.5}]}},"checksum":1}"#),
        "json: cannot unmarshal number 1.5 into Go struct field Block.entries.size of type uint64"
    );
    assert_eq!(
        err(r#"{"policyName":"x","entries":{"p":{"c":[{"size":1e3}]}},"checksum":1}"#),
        "json: cannot unmarshal number 1e3 into Go struct field Block.entries.size of type uint64"
    );
    assert_eq!(
        err(r#"{"machineState":{"0":{"numberOfAssignments":"1"}}}"#),
        "json: cannot unmarshal string into Go struct field NUMANodeState.machineState.numberOfAssignments of type int"
    );
    assert_eq!(
        err(r#"{"machineState":{"x":{}}}"#),
        "json: cannot unmarshal number x into Go struct field MemoryManagerCheckpoint.machineState of type int"
    );
    assert_eq!(
        err(r#"{"machineState":{"0":"x"}}"#),
        "json: cannot unmarshal string into Go struct field MemoryManagerCheckpoint.machineState of type state.NUMANodeState"
    );
    assert_eq!(
        err(r#"{"policyName":1,"checksum":-1}"#),
        "json: cannot unmarshal number into Go struct field MemoryManagerCheckpoint.policyName of type string"
    );
    assert_eq!(
        err(r#"{"checksum":-1}"#),
        "json: cannot unmarshal number -1 into Go struct field MemoryManagerCheckpoint.checksum of type checksum.Checksum"
    );
    assert_eq!(
        err(r#"{"entries":{"p":[]}}"#),
        "json: cannot unmarshal array into Go struct field MemoryManagerCheckpoint.entries of type map[string][]state.Block"
    );
    assert_eq!(
        err(r#"{"entries":{"p":{"c":[{"numaAffinity":[true]}]}}}"#),
        "json: cannot unmarshal bool into Go struct field Block.entries.numaAffinity of type int"
    );
    assert_eq!(
        err("[]"),
        "json: cannot unmarshal array into Go value of type state.MemoryManagerCheckpoint"
    );
    // Syntax errors win over type errors anywhere in the document.
    assert_eq!(
        err(r#"{"checksum":-1,"x":}"#),
        "invalid character '}' looking for beginning of value"
    );
}

#[test]
fn special_strings_round_trip() {
    let ms = MachineState::from([
        (10, node(0, &[("memory", table(1, 0, 1, 0, 1))], &[10])),
        (2, node(0, &[], &[2])),
        (1, node(-1, &[], &[1])),
    ]);
    let a = assignments(&[
        (
            "p<&>\"\\\u{2028}\u{8}\u{1f}é",
            "c\n",
            vec![block(&[1, 2], "x", 1)],
        ),
        ("p2", "empty", vec![]),
    ]);
    let file = memory::encode("Static", &ms, &a);
    assert!(file.contains(r#""machineState":{"1":"#));
    assert!(file.contains(r#"}},"cells":[10]},"2":"#));
    assert!(file.contains(r#""p\u003c\u0026\u003e\"\\\u2028\b\u001fé":{"c\n":"#));
    let cp = memory::decode_v132(file.as_bytes()).unwrap();
    assert_eq!((cp.machine_state, cp.entries), (ms, a));
}

// ---------------------------------------------------------------------------------------
// cpu_manager_state

#[test]
fn cpu_golden_vectors() {
    let entries = CpuAssignments::from([(
        "pod1".to_string(),
        VecMap::from([("c1".to_string(), CpuSet::parse("1-2").unwrap())]),
    )]);
    let file = r#"{"policyName":"static","defaultCpuSet":"0,3-7","entries":{"pod1":{"c1":"1-2"}},"checksum":2455565647}"#;
    let default_set = CpuSet::parse("0,3-7").unwrap();
    assert_eq!(cpu::checksum("static", &default_set, &entries), 2455565647);
    assert_eq!(cpu::encode("static", &default_set, &entries), file);
    let cp = cpu::decode(file.as_bytes()).unwrap();
    assert_eq!(cp.default_cpu_set, "0,3-7");
    assert_eq!(cp.entries["pod1"]["c1"], "1-2");
    assert_eq!(cp.encode(), file);

    let none = r#"{"policyName":"none","defaultCpuSet":"","checksum":1353318690}"#;
    assert_eq!(
        cpu::encode("none", &CpuSet::new(), &CpuAssignments::new()),
        none
    );
    assert_eq!(
        cpu::decode(none.as_bytes()).unwrap(),
        CpuCheckpoint {
            policy_name: "none".into(),
            default_cpu_set: String::new(),
            entries: BTreeMap::new(),
        }
    );
}

#[test]
fn cpu_reader_rules() {
    let file = r#"{"policyName":"static","defaultCpuSet":"0,3-7","entries":{"pod1":{"c1":"1-2"}},"checksum":2455565647}"#;
    // Checksum 0 is accepted unverified.
    let zero = file.replace("2455565647", "0");
    assert_eq!(
        cpu::decode(zero.as_bytes()).unwrap().entries["pod1"]["c1"],
        "1-2"
    );
    // Any other mismatch is corruption.
    let bad = file.replace("\"1-2\"", "\"1-3\"");
    assert_eq!(cpu::decode(bad.as_bytes()), Err(CheckpointError::Corrupted));
    // Unknown keys (v1.36 podEntries) are ignored: the checksum still matches.
    let extra = file.replace(
        ",\"checksum\"",
        ",\"podEntries\":{\"pod1\":{\"cpuSet\":\"1-2\"}},\"checksum\"",
    );
    assert!(cpu::decode(extra.as_bytes()).is_ok());
    // JSON errors come from the v2 attempt.
    assert_eq!(
        cpu::decode(b"{").unwrap_err().to_string(),
        "unexpected end of JSON input"
    );
    assert_eq!(
        cpu::decode(br#"{"entries":{"a":1}}"#).unwrap_err().to_string(),
        "json: cannot unmarshal number into Go struct field CPUManagerCheckpoint.entries of type map[string]string"
    );
    // `null` decodes as v1 with checksum 0 and no entries: an empty checkpoint.
    assert_eq!(cpu::decode(b"null").unwrap(), CpuCheckpoint::default());
    // A null pod map: `<nil>` in the rendering, an empty pod afterwards.
    let spew = "(*state.CPUManagerCheckpoint){PolicyName:(string)static DefaultCPUSet:(string)0-3 Entries:(map[string]map[string]string)map[p:<nil>] Checksum:(checksum.Checksum)0}";
    let file = format!(
        r#"{{"policyName":"static","defaultCpuSet":"0-3","entries":{{"p":null}},"checksum":{}}}"#,
        fnv1a32(spew.as_bytes())
    );
    assert_eq!(
        cpu::decode(file.as_bytes()).unwrap().entries["p"],
        BTreeMap::new()
    );
}

#[test]
fn cpu_v1_layout() {
    let spew = "(*state.CPUManagerCheckpoint){PolicyName:(string)static DefaultCPUSet:(string)0-1 Entries:(map[string]string)map[cid1:2-3 cid2:4] Checksum:(checksum.Checksum)0}";
    let sum = fnv1a32(spew.as_bytes());
    let v1 = format!(
        r#"{{"policyName":"static","defaultCpuSet":"0-1","entries":{{"cid2":"4","cid1":"2-3"}},"checksum":{sum}}}"#
    );
    let e = cpu::decode(v1.as_bytes()).unwrap_err();
    assert_eq!(e, CheckpointError::CpuV1Migration("cid1".into()));
    assert_eq!(
        e.to_string(),
        "error migrating v1 checkpoint state to v2 checkpoint state: containerID 'cid1' not found in initial containers list"
    );
    let zero = v1.replace(&sum.to_string(), "0");
    assert!(matches!(
        cpu::decode(zero.as_bytes()),
        Err(CheckpointError::CpuV1Migration(_))
    ));
    // A v1 file whose checksum matches neither layout fails as v2 (type error).
    let bad = v1.replace(&sum.to_string(), "7");
    assert_eq!(
        cpu::decode(bad.as_bytes()).unwrap_err().to_string(),
        "json: cannot unmarshal string into Go struct field CPUManagerCheckpoint.entries of type map[string]string"
    );
    // A v1 file without entries migrates to an empty v2 state.
    let spew = "(*state.CPUManagerCheckpoint){PolicyName:(string)static DefaultCPUSet:(string)0-1 Entries:(map[string]string)map[] Checksum:(checksum.Checksum)0}";
    let v1 = format!(
        r#"{{"policyName":"static","defaultCpuSet":"0-1","checksum":{}}}"#,
        fnv1a32(spew.as_bytes())
    );
    let cp = cpu::decode(v1.as_bytes()).unwrap();
    assert_eq!(
        (cp.policy_name.as_str(), cp.default_cpu_set.as_str()),
        ("static", "0-1")
    );
}

// ---------------------------------------------------------------------------------------
// conformance checkpoints

/// `{"<key>":<object>}` lines: the object's exact bytes.
fn checkpoint_lines(key: &str) -> Option<Vec<(String, String)>> {
    let dir = conformance_dir()?;
    let prefix = format!("{{\"{key}\":");
    let mut out = Vec::new();
    for f in conformance_files(&dir, ".expected.jsonl") {
        let text = std::fs::read_to_string(&f).unwrap();
        for (i, line) in text.lines().enumerate() {
            if let Some(rest) = line.strip_prefix(&prefix) {
                let inner = rest.strip_suffix('}').expect("line ends with }");
                out.push((format!("{}:{}", f.display(), i + 1), inner.to_owned()));
            }
        }
    }
    Some(out)
}

#[test]
fn conformance_memory_checkpoints_round_trip() {
    let Some(lines) = checkpoint_lines("memory_manager_state_canonical") else {
        return;
    };
    assert!(!lines.is_empty());
    for (at, file) in &lines {
        let cp = memory::decode_v132(file.as_bytes()).unwrap_or_else(|e| panic!("{at}: {e}"));
        assert_eq!(&cp.encode(), file, "{at}");
        let value: serde_json::Value = serde_json::from_str(file).unwrap();
        assert_eq!(memory::decode_value_v132(&value).unwrap(), cp, "{at}");
        let (any, fmt, _) = memory::decode_any(file.as_bytes()).unwrap();
        assert_eq!((any, fmt), (cp, MemoryCheckpointFormat::V1), "{at}");
    }
    println!("{} memory checkpoints round-tripped", lines.len());
}

#[test]
fn conformance_cpu_checkpoints_round_trip() {
    let Some(lines) = checkpoint_lines("cpu_manager_state") else {
        return;
    };
    assert!(!lines.is_empty());
    for (at, file) in &lines {
        let cp = cpu::decode(file.as_bytes()).unwrap_or_else(|e| panic!("{at}: {e}"));
        assert_eq!(&cp.encode(), file, "{at}");
        let value: serde_json::Value = serde_json::from_str(file).unwrap();
        assert_eq!(cpu::decode_value(&value).unwrap(), cp, "{at}");
        // Through parsed cpusets too (the files hold canonical cpuset strings).
        let default_set = CpuSet::parse(&cp.default_cpu_set).unwrap();
        let entries = cp
            .entries
            .iter()
            .map(|(p, c)| {
                let c = c
                    .iter()
                    .map(|(n, s)| (n.clone(), CpuSet::parse(s).unwrap()))
                    .collect();
                (p.clone(), c)
            })
            .collect();
        assert_eq!(
            &cpu::encode(&cp.policy_name, &default_set, &entries),
            file,
            "{at}"
        );
    }
    println!("{} cpu checkpoints round-tripped", lines.len());
}

/// Restart scenarios inline the checkpoints as YAML; the expected startup errors say which
/// ones the kubelet found corrupted.
#[test]
fn conformance_restart_checkpoints() {
    let Some(dir) = conformance_dir() else {
        return;
    };
    let mut checked = 0;
    for yaml in conformance_files(&dir, ".yaml") {
        let text = std::fs::read_to_string(&yaml).unwrap();
        let doc: serde_json::Value = match serde_saphyr::from_str(&text) {
            Ok(v) => v,
            Err(e) => panic!("{}: {e}", yaml.display()),
        };
        let Some(state) = doc.get("state") else {
            continue;
        };
        let expected_path = yaml.to_string_lossy().replace(".yaml", ".expected.jsonl");
        let expected = std::fs::read_to_string(&expected_path).unwrap();
        let startup_error = |stage: &str| {
            expected.lines().find_map(|l| {
                let v: serde_json::Value = serde_json::from_str(l).ok()?;
                (v.get("stage")?.as_str()? == stage)
                    .then(|| v.get("startupError")?.as_str().map(str::to_owned))
                    .flatten()
            })
        };
        let cpu_error = startup_error("cpuManager");
        let mem_error = startup_error("memoryManager");
        let at = yaml.display();
        if let Some(cp) = state.get("cpuManager") {
            let got = cpu::decode_value(cp);
            match &cpu_error {
                Some(e) if e.contains(": checkpoint is corrupted,") => {
                    assert_eq!(got, Err(CheckpointError::Corrupted), "{at}")
                }
                _ => assert!(got.is_ok(), "{at}: {got:?}"),
            }
            checked += 1;
        }
        // The CPU manager starts first: after its failure the memory checkpoint is unknown.
        if let (Some(mm), None) = (state.get("memoryManager"), &cpu_error) {
            let got = memory::decode_value_v132(mm);
            match &mem_error {
                Some(e) if e.contains(": checkpoint is corrupted,") => {
                    assert_eq!(got, Err(CheckpointError::Corrupted), "{at}")
                }
                _ => assert!(got.is_ok(), "{at}: {got:?}"),
            }
            if text.contains("v136-podentries: memory_manager_state") {
                let (_, fmt, pods) = memory::decode_any_value(mm).unwrap();
                assert_eq!(fmt, MemoryCheckpointFormat::V2, "{at}");
                assert!(!pods.is_empty(), "{at}");
            }
            checked += 1;
        }
    }
    println!("{checked} restart checkpoints checked");
}

// ---------------------------------------------------------------------------------------
// property: encode -> decode is the identity

fn name_strategy() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z0-9-]{1,12}",
        any::<String>().prop_map(|s| s.chars().take(8).collect()),
    ]
}

fn table_strategy() -> impl Strategy<Value = MemoryTable> {
    (
        any::<u64>(),
        any::<u64>(),
        any::<u64>(),
        any::<u64>(),
        any::<u64>(),
    )
        .prop_map(
            |(total, system_reserved, allocatable, reserved, free)| MemoryTable {
                total,
                system_reserved,
                allocatable,
                reserved,
                free,
            },
        )
}

fn state_strategy() -> impl Strategy<Value = (String, MachineState, Assignments)> {
    let kind = prop_oneof![
        Just("memory".to_string()),
        Just("hugepages-2Mi".to_string()),
        Just("hugepages-1Gi".to_string()),
        name_strategy(),
    ];
    let node = (
        any::<i64>(),
        prop::collection::btree_map(kind.clone(), table_strategy(), 0..4),
        prop::collection::vec(0u32..64, 0..4),
    )
        .prop_map(|(n, memory_map, cells)| NumaNodeState {
            number_of_assignments: n,
            memory_map,
            cells,
        });
    let machine = prop::collection::btree_map(prop_oneof![0u32..16, any::<u32>()], node, 0..5);
    let block = (prop::collection::vec(0u32..16, 0..3), kind, any::<u64>()).prop_map(
        |(numa_affinity, kind, size)| Block {
            numa_affinity,
            kind,
            size,
        },
    );
    let containers =
        prop::collection::btree_map(name_strategy(), prop::collection::vec(block, 0..4), 0..3);
    let entries = prop::collection::btree_map(name_strategy(), containers, 0..4).prop_map(|e| {
        e.into_iter()
            .map(|(pod, c)| (pod, c.into_iter().collect()))
            .collect::<Assignments>()
    });
    (name_strategy(), machine, entries)
}

fn sorted_blocks(a: &Assignments) -> Assignments {
    let mut a = a.clone();
    for containers in a.values_mut() {
        for blocks in containers.values_mut() {
            blocks.sort_by(|x, y| x.kind.cmp(&y.kind));
        }
    }
    a
}

proptest! {
    #[test]
    fn memory_encode_decode_identity((policy, ms, entries) in state_strategy()) {
        let file = memory::encode(&policy, &ms, &entries);
        let cp = memory::decode_v132(file.as_bytes()).unwrap();
        prop_assert_eq!(&cp.policy_name, &policy);
        prop_assert_eq!(&cp.machine_state, &ms);
        prop_assert_eq!(&cp.entries, &sorted_blocks(&entries));
        prop_assert_eq!(&cp.encode(), &file);
        // The order-preserving writer round-trips the given order.
        let raw = memory::encode_preserving_block_order(&policy, &ms, &entries);
        prop_assert_eq!(memory::decode_v132(raw.as_bytes()).unwrap().entries, entries);
        // Valid JSON for other readers too.
        let value: serde_json::Value = serde_json::from_str(&file).unwrap();
        prop_assert_eq!(memory::decode_value_v132(&value).unwrap(), cp);
    }

    #[test]
    fn cpu_encode_decode_identity(
        policy in name_strategy(),
        default_ids in prop::collection::vec(0u32..256, 0..20),
        entries in prop::collection::btree_map(
            name_strategy(),
            prop::collection::btree_map(name_strategy(), prop::collection::vec(0u32..256, 0..8), 0..3),
            0..4,
        ),
    ) {
        let default_set = CpuSet::from_ids(default_ids);
        let entries: CpuAssignments = entries
            .into_iter()
            .map(|(p, c)| (p, c.into_iter().map(|(n, ids)| (n, CpuSet::from_ids(ids))).collect()))
            .collect();
        let file = cpu::encode(&policy, &default_set, &entries);
        let cp = cpu::decode(file.as_bytes()).unwrap();
        prop_assert_eq!(&cp.policy_name, &policy);
        prop_assert_eq!(&cp.default_cpu_set, &default_set.to_string());
        for (p, c) in &entries {
            for (n, s) in c {
                prop_assert_eq!(&cp.entries[p][n], &s.to_string());
            }
        }
        prop_assert_eq!(cp.entries.len(), entries.len());
        prop_assert_eq!(&cp.encode(), &file);
    }
}

fn jsonish() -> impl Strategy<Value = Vec<u8>> {
    let atom = prop_oneof![
        Just(b"{".to_vec()),
        Just(b"}".to_vec()),
        Just(b"[".to_vec()),
        Just(b"]".to_vec()),
        Just(b",".to_vec()),
        Just(b":".to_vec()),
        Just(b" ".to_vec()),
        Just(b"\"policyName\"".to_vec()),
        Just(b"\"machineState\"".to_vec()),
        Just(b"\"entries\"".to_vec()),
        Just(b"\"checksum\"".to_vec()),
        Just(b"\"0\"".to_vec()),
        Just(b"null".to_vec()),
        Just(b"-1".to_vec()),
        Just(b"1.5e3".to_vec()),
        Just(b"\"\\ud800\"".to_vec()),
        prop::collection::vec(any::<u8>(), 0..4),
    ];
    prop::collection::vec(atom, 0..40).prop_map(|v| v.concat())
}

proptest! {
    /// Readers never panic, and accept everything `serde_json` accepts as JSON syntax.
    #[test]
    fn readers_are_total(bytes in jsonish()) {
        let ours = super::gojson::parse(&bytes);
        if serde_json::from_slice::<serde_json::Value>(&bytes).is_ok() {
            prop_assert!(ours.is_ok(), "{:?}", ours);
        }
        let _ = memory::decode_v132(&bytes);
        let _ = memory::decode_any(&bytes);
        let _ = cpu::decode(&bytes);
    }
}
