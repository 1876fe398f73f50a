//! `device-plugins/kubelet_internal_checkpoint`, the Device Manager's checkpoint.
//!
//! kubelet v1.32 writes `json.Marshal` of
//! `{"Data":{"PodDeviceEntries":[{PodUID,ContainerName,ResourceName,DeviceIDs,AllocResp}],
//! "RegisteredDevices":{resource:[ids]}},"Checksum":N}` where `DeviceIDs` maps NUMA node ids
//! (JSON object keys, `-1` for no topology) to ids, `AllocResp` is the marshalled
//! `ContainerAllocateResponse` as base64, and `N` is the FNV-1a-32 of the go-spew `%#v` text
//! of the `checkpointData` value. Go builds the entry list and id lists from maps, so the
//! kubelet's own file orders them at random; nmm writes the canonical form (entries sorted
//! by pod, container, resource; ids sorted) and its checksum, which the kubelet reads back.

use super::gojson::{self, Decoder, Value};
use super::spew::{self, Spew};
use super::CheckpointError;
use crate::devicemanager::ids::IdSet;
use crate::devicemanager::pod_devices::{AllocInfo, PodDevices};
use std::collections::{BTreeMap, BTreeSet};

/// The checkpoint's content.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeviceCheckpoint {
    pub pod_devices: PodDevices,
    /// resource -> healthy device ids at the time of writing.
    pub registered: BTreeMap<String, BTreeSet<String>>,
}

const DATA_TYPE: &str = "checkpoint.checkpointData";

fn ids_spew<'a>(ids: impl IntoIterator<Item = &'a String>) -> Spew {
    Spew::Slice(ids.into_iter().map(|s| Spew::str(s)).collect())
}

/// The checksum of this content in canonical order.
pub fn checksum(cp: &DeviceCheckpoint) -> u32 {
    let mut entries = Vec::new();
    for (pod, containers) in &cp.pod_devices.devs {
        for (name, resources) in containers {
            for (resource, info) in resources {
                entries.push(Spew::Struct(vec![
                    ("PodUID", "string".into(), Spew::str(pod)),
                    ("ContainerName", "string".into(), Spew::str(name)),
                    ("ResourceName", "string".into(), Spew::str(resource)),
                    (
                        "DeviceIDs",
                        "checkpoint.DevicesPerNUMA".into(),
                        Spew::Map(
                            info.by_numa
                                .iter()
                                .map(|(n, ids)| (Spew::int(*n), ids_spew(ids)))
                                .collect(),
                        ),
                    ),
                    (
                        "AllocResp",
                        "[]uint8".into(),
                        Spew::Bytes(info.alloc_resp.clone()),
                    ),
                ]));
            }
        }
    }
    let entries = if entries.is_empty() {
        Spew::Nil
    } else {
        Spew::Slice(entries)
    };
    let registered = Spew::Map(
        cp.registered
            .iter()
            .map(|(r, ids)| (Spew::str(r), ids_spew(ids)))
            .collect(),
    );
    let tree = Spew::Struct(vec![
        (
            "PodDeviceEntries",
            "[]checkpoint.PodDevicesEntry".into(),
            entries,
        ),
        (
            "RegisteredDevices",
            "map[string][]string".into(),
            registered,
        ),
    ]);
    spew::hash_typed(DATA_TYPE, &tree)
}

fn write_ids<'a>(out: &mut String, ids: impl IntoIterator<Item = &'a String>) {
    out.push('[');
    for (i, id) in ids.into_iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        gojson::write_string(out, id);
    }
    out.push(']');
}

/// The file bytes (compact JSON, canonical order, checksum included).
pub fn encode(cp: &DeviceCheckpoint) -> String {
    let mut out = String::from("{\"Data\":{\"PodDeviceEntries\":");
    let mut first = true;
    for (pod, containers) in &cp.pod_devices.devs {
        for (name, resources) in containers {
            for (resource, info) in resources {
                out.push(if first { '[' } else { ',' });
                first = false;
                out.push_str("{\"PodUID\":");
                gojson::write_string(&mut out, pod);
                out.push_str(",\"ContainerName\":");
                gojson::write_string(&mut out, name);
                out.push_str(",\"ResourceName\":");
                gojson::write_string(&mut out, resource);
                out.push_str(",\"DeviceIDs\":{");
                // encoding/json sorts map keys by their text ("-1" < "0" < "10" < "2").
                let mut keys: Vec<(String, &IdSet)> = info
                    .by_numa
                    .iter()
                    .map(|(n, ids)| (n.to_string(), ids))
                    .collect();
                keys.sort();
                for (i, (k, ids)) in keys.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    gojson::write_string(&mut out, k);
                    out.push(':');
                    write_ids(&mut out, *ids);
                }
                out.push_str("},\"AllocResp\":\"");
                out.push_str(&base64_encode(&info.alloc_resp));
                out.push_str("\"}");
            }
        }
    }
    out.push_str(if first { "null" } else { "]" });
    out.push_str(",\"RegisteredDevices\":{");
    for (i, (r, ids)) in cp.registered.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        gojson::write_string(&mut out, r);
        out.push(':');
        write_ids(&mut out, ids);
    }
    out.push_str("}},\"Checksum\":");
    out.push_str(&checksum(cp).to_string());
    out.push('}');
    out
}

/// One `PodDevicesEntry` as decoded.
#[derive(Debug, Default)]
struct RawEntry {
    pod: String,
    container: String,
    resource: String,
    ids: Option<BTreeMap<i64, Option<Vec<String>>>>,
    alloc: String,
}

#[derive(Debug, Default)]
struct RawData {
    entries: Option<Vec<RawEntry>>,
    registered: Option<BTreeMap<String, Option<Vec<String>>>>,
}

fn unmarshal(v: &Value) -> Result<(RawData, u64), String> {
    let mut d = Decoder::new();
    let mut data = RawData::default();
    let mut sum = 0u64;
    d.object(
        v,
        "Data",
        "checkpoint.Data",
        &["Data", "Checksum"],
        |d, i, v| {
            if i == 1 {
                // checksum.Checksum is a uint64.
                d.uint(v, "checksum.Checksum", &mut sum);
                return;
            }
            d.object(
                v,
                "checkpointData",
                "checkpoint.checkpointData",
                &["PodDeviceEntries", "RegisteredDevices"],
                |d, i, v| {
                    if i == 0 {
                        d.slice(
                            v,
                            "[]checkpoint.PodDevicesEntry",
                            &mut data.entries,
                            |d, v, e: &mut RawEntry| {
                                d.object(
                                    v,
                                    "PodDevicesEntry",
                                    "checkpoint.PodDevicesEntry",
                                    &[
                                        "PodUID",
                                        "ContainerName",
                                        "ResourceName",
                                        "DeviceIDs",
                                        "AllocResp",
                                    ],
                                    |d, i, v| match i {
                                        0 => d.string(v, "string", &mut e.pod),
                                        1 => d.string(v, "string", &mut e.container),
                                        2 => d.string(v, "string", &mut e.resource),
                                        3 => d.map(
                                            v,
                                            "checkpoint.DevicesPerNUMA",
                                            &mut e.ids,
                                            |d, k| d.int_key(k),
                                            |d, v, ids| {
                                                d.slice(v, "[]string", ids, |d, v, s| {
                                                    d.string(v, "string", s)
                                                })
                                            },
                                        ),
                                        _ => d.string(v, "[]uint8", &mut e.alloc),
                                    },
                                )
                            },
                        );
                    } else {
                        d.map(
                            v,
                            "map[string][]string",
                            &mut data.registered,
                            |_, k| Some(k.to_owned()),
                            |d, v, ids| {
                                d.slice(v, "[]string", ids, |d, v, s| d.string(v, "string", s))
                            },
                        );
                    }
                },
            );
        },
    );
    match d.into_error() {
        Some(e) => Err(e),
        None => Ok((data, sum)),
    }
}

fn from_tree(v: &Value) -> Result<DeviceCheckpoint, CheckpointError> {
    let (raw, stored) = unmarshal(v).map_err(CheckpointError::Json)?;
    let mut cp = DeviceCheckpoint::default();
    for e in raw.entries.iter().flatten() {
        let alloc = base64_decode(&e.alloc).ok_or_else(|| {
            CheckpointError::Json(format!(
                "illegal base64 data in AllocResp of pod {:?} container {:?}",
                e.pod, e.container
            ))
        })?;
        let mut info = AllocInfo {
            alloc_resp: alloc,
            ..Default::default()
        };
        for (n, ids) in e.ids.iter().flatten() {
            let set: IdSet = ids.iter().flatten().cloned().collect();
            info.by_numa.insert(*n, set);
        }
        cp.pod_devices
            .insert(&e.pod, &e.container, &e.resource, info);
    }
    for (r, ids) in raw.registered.iter().flatten() {
        let set: BTreeSet<String> = ids.iter().flatten().cloned().collect();
        cp.registered.insert(r.clone(), set);
    }
    // The kubelet hashes the content in file order (nmm's own files are canonical).
    // Duplicates collapse, as in the kubelet's sets and maps.
    if stored != file_order_checksum(&raw) {
        return Err(CheckpointError::Corrupted);
    }
    Ok(cp)
}

/// The checksum of the content in the order the file lists it (as the kubelet computes it).
fn file_order_checksum(raw: &RawData) -> u64 {
    let list = |ids: &Option<Vec<String>>| match ids {
        None => Spew::Nil,
        Some(v) => Spew::Slice(v.iter().map(|s| Spew::str(s)).collect()),
    };
    let entries = Spew::nullable(raw.entries.as_ref(), |es| {
        Spew::Slice(
            es.iter()
                .map(|e| {
                    Spew::Struct(vec![
                        ("PodUID", "string".into(), Spew::str(&e.pod)),
                        ("ContainerName", "string".into(), Spew::str(&e.container)),
                        ("ResourceName", "string".into(), Spew::str(&e.resource)),
                        (
                            "DeviceIDs",
                            "checkpoint.DevicesPerNUMA".into(),
                            Spew::nullable(e.ids.as_ref(), |m| {
                                Spew::Map(
                                    m.iter()
                                        .map(|(n, ids)| (Spew::int(*n), list(ids)))
                                        .collect(),
                                )
                            }),
                        ),
                        (
                            "AllocResp",
                            "[]uint8".into(),
                            match base64_decode(&e.alloc) {
                                Some(b) => Spew::Bytes(b),
                                None => Spew::Nil,
                            },
                        ),
                    ])
                })
                .collect(),
        )
    });
    let registered = Spew::nullable(raw.registered.as_ref(), |m| {
        Spew::Map(m.iter().map(|(r, ids)| (Spew::str(r), list(ids))).collect())
    });
    let tree = Spew::Struct(vec![
        (
            "PodDeviceEntries",
            "[]checkpoint.PodDevicesEntry".into(),
            entries,
        ),
        (
            "RegisteredDevices",
            "map[string][]string".into(),
            registered,
        ),
    ]);
    u64::from(spew::hash_typed(DATA_TYPE, &tree))
}

/// Reads the checkpoint as kubelet v1.32's `GetCheckpoint` does: JSON, then the checksum.
pub fn decode(bytes: &[u8]) -> Result<DeviceCheckpoint, CheckpointError> {
    let v = gojson::parse(bytes).map_err(CheckpointError::Json)?;
    from_tree(&v)
}

/// [`decode`] of an already parsed JSON value.
pub fn decode_value(v: &serde_json::Value) -> Result<DeviceCheckpoint, CheckpointError> {
    from_tree(&gojson::from_serde(v))
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Standard base64 with padding (Go `encoding/json` for `[]byte`).
pub fn base64_encode(b: &[u8]) -> String {
    let mut out = String::with_capacity(b.len().div_ceil(3) * 4);
    for chunk in b.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, &x)| acc | (u32::from(x) << (16 - 8 * i)));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(B64[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Standard base64 with padding; `None` for malformed text.
pub fn base64_decode(s: &str) -> Option<Vec<u8>> {
    let s = s.as_bytes();
    if !s.len().is_multiple_of(4) {
        return None;
    }
    let mut out = Vec::with_capacity(s.len() / 4 * 3);
    for (ci, chunk) in s.chunks(4).enumerate() {
        let last = ci == s.len() / 4 - 1;
        let pad = chunk.iter().rev().take_while(|&&c| c == b'=').count();
        if pad > 2 || (pad > 0 && !last) {
            return None;
        }
        let mut n = 0u32;
        for (i, &c) in chunk.iter().enumerate() {
            let v = if i >= 4 - pad {
                0
            } else {
                B64.iter().position(|&x| x == c)? as u32
            };
            n |= v << (18 - 6 * i);
        }
        let bytes = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
        out.extend_from_slice(&bytes[..3 - pad]);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one_entry() -> DeviceCheckpoint {
        let mut cp = DeviceCheckpoint::default();
        let mut info = AllocInfo::default();
        info.by_numa.insert(0, ["nic-0".to_string()].into());
        cp.pod_devices
            .insert("uid-app", "c", "example.com/nic", info);
        cp.registered
            .insert("example.com/nic".into(), ["nic-0".to_string()].into());
        cp.registered
            .insert("nvidia.com/gpu".into(), ["gpu-0".to_string()].into());
        cp
    }

    #[test]
    fn spec_example_bytes_and_checksum() {
        // The example line of the scenario format.
        let cp = one_entry();
        assert_eq!(checksum(&cp), 1190765333);
        assert_eq!(
            encode(&cp),
            r#"{"Data":{"PodDeviceEntries":[{"PodUID":"uid-app","ContainerName":"c","ResourceName":"example.com/nic","DeviceIDs":{"0":["nic-0"]},"AllocResp":""}],"RegisteredDevices":{"example.com/nic":["nic-0"],"nvidia.com/gpu":["gpu-0"]}},"Checksum":1190765333}"#
        );
    }

    #[test]
    fn round_trip_and_corruption() {
        let cp = one_entry();
        let text = encode(&cp);
        assert_eq!(decode(text.as_bytes()).unwrap(), cp);
        let bad = text.replace("[\"gpu-0\"]", "[\"gpu-1\"]");
        assert_ne!(bad, text);
        assert_eq!(decode(bad.as_bytes()), Err(CheckpointError::Corrupted));
        let tampered = text.replace("1190765333", "1190765334");
        assert_eq!(decode(tampered.as_bytes()), Err(CheckpointError::Corrupted));
        assert!(matches!(decode(b"{"), Err(CheckpointError::Json(_))));
        assert!(matches!(
            decode(br#"{"Data":{"PodDeviceEntries":"x"}}"#),
            Err(CheckpointError::Json(m)) if m.contains("cannot unmarshal string")
        ));
    }

    #[test]
    fn empty_state_writes_null_entries() {
        let mut cp = DeviceCheckpoint::default();
        cp.registered.insert("r".into(), BTreeSet::new());
        let text = encode(&cp);
        assert!(
            text.starts_with(r#"{"Data":{"PodDeviceEntries":null,"RegisteredDevices":{"r":[]}}"#)
        );
        assert_eq!(decode(text.as_bytes()).unwrap(), cp);
    }

    #[test]
    fn file_order_checksum_is_accepted() {
        // Ids listed out of order, checksum over that order (as a kubelet may write).
        let mut cp = DeviceCheckpoint::default();
        let mut info = AllocInfo::default();
        info.by_numa
            .insert(-1, ["b".to_string(), "a".to_string()].into());
        cp.pod_devices.insert("p", "c", "r", info);
        let raw = RawData {
            entries: Some(vec![RawEntry {
                pod: "p".into(),
                container: "c".into(),
                resource: "r".into(),
                ids: Some([(-1, Some(vec!["b".to_string(), "a".to_string()]))].into()),
                alloc: String::new(),
            }]),
            registered: Some(BTreeMap::new()),
        };
        let sum = file_order_checksum(&raw);
        let text = format!(
            r#"{{"Data":{{"PodDeviceEntries":[{{"PodUID":"p","ContainerName":"c","ResourceName":"r","DeviceIDs":{{"-1":["b","a"]}},"AllocResp":""}}],"RegisteredDevices":{{}}}},"Checksum":{sum}}}"#
        );
        assert_eq!(decode(text.as_bytes()).unwrap(), cp);
    }

    #[test]
    fn base64() {
        for b in [
            &b""[..],
            b"f",
            b"fo",
            b"foo",
            b"foob",
            b"fooba",
            b"foobar",
            &[0u8, 255, 10],
        ] {
            assert_eq!(base64_decode(&base64_encode(b)).as_deref(), Some(b));
        }
        assert_eq!(base64_encode(b"foobar"), "Zm9vYmFy");
        assert_eq!(base64_encode(b"fo"), "Zm8=");
        assert_eq!(base64_decode("Zm8"), None);
        assert_eq!(base64_decode("Z===="), None);
        assert_eq!(base64_decode("Zm=8"), None);
    }
}
