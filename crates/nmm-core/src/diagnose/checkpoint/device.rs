//! The Device Manager's checkpoint (`device-plugins/kubelet_internal_checkpoint`) for
//! `nmm state show|verify`: recognised by its keys, read as kubelet v1.32 reads it (JSON,
//! then the checksum), and summarised as rows (who holds which device of which resource,
//! on which NUMA node) plus the registered devices. Pure: the caller reads the file.

use crate::checkpoint::device::{decode, DeviceCheckpoint};
use serde_json::Value;
use std::collections::BTreeMap;

/// Whether the JSON `v` has the device checkpoint's shape: a `Data` object with
/// `PodDeviceEntries` or `RegisteredDevices` (keys matched case-insensitively, as Go does).
pub fn is_device_checkpoint(v: &Value) -> bool {
    let Some(m) = v.as_object() else {
        return false;
    };
    let data = m
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("data"))
        .and_then(|(_, d)| d.as_object());
    data.is_some_and(|d| {
        d.keys().any(|k| {
            k.eq_ignore_ascii_case("PodDeviceEntries")
                || k.eq_ignore_ascii_case("RegisteredDevices")
        })
    })
}

/// The device checkpoint's path under the kubelet's root directory.
pub use crate::devicemanager::STATE_FILE as DEVICE_STATE_FILE;

/// One container's devices of one resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceHolding {
    pub pod_uid: String,
    pub container: String,
    pub resource: String,
    /// NUMA node id (`-1`: the device has no topology) -> device ids, sorted.
    pub by_numa: BTreeMap<i64, Vec<String>>,
    /// Every id once, sorted.
    pub devices: Vec<String>,
}

/// What the checkpoint holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceReport {
    /// The stored `Checksum` (verified: a mismatch is an error of [`read_device_checkpoint`]).
    pub checksum: u64,
    pub holdings: Vec<DeviceHolding>,
    /// resource -> healthy registered ids, sorted.
    pub registered: BTreeMap<String, Vec<String>>,
}

impl DeviceReport {
    /// Registered ids of `resource` that no container holds.
    pub fn free(&self, resource: &str) -> Vec<String> {
        let held: std::collections::BTreeSet<&String> = self
            .holdings
            .iter()
            .filter(|h| h.resource == resource)
            .flat_map(|h| &h.devices)
            .collect();
        self.registered
            .get(resource)
            .into_iter()
            .flatten()
            .filter(|id| !held.contains(id))
            .cloned()
            .collect()
    }
}

/// Reads the checkpoint bytes as the kubelet does. `Err`: the kubelet's own reason
/// (`checkpoint is corrupted` for a checksum mismatch, or the JSON error), which makes the
/// kubelet start without the file.
pub fn read_device_checkpoint(bytes: &[u8]) -> Result<DeviceReport, String> {
    let cp = decode(bytes).map_err(|e| e.to_string())?;
    let checksum = serde_json::from_slice::<Value>(bytes)
        .ok()
        .and_then(|v| {
            v.as_object()?
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case("checksum"))
                .and_then(|(_, c)| c.as_u64())
        })
        .unwrap_or_else(|| crate::checkpoint::device::checksum(&cp).into());
    Ok(report(&cp, checksum))
}

/// The rows of a decoded checkpoint.
pub fn report(cp: &DeviceCheckpoint, checksum: u64) -> DeviceReport {
    let mut holdings = Vec::new();
    for (pod, containers) in &cp.pod_devices.devs {
        for (container, resources) in containers {
            for (resource, info) in resources {
                holdings.push(DeviceHolding {
                    pod_uid: pod.clone(),
                    container: container.clone(),
                    resource: resource.clone(),
                    by_numa: info
                        .by_numa
                        .iter()
                        .map(|(n, ids)| (*n, ids.iter().cloned().collect()))
                        .collect(),
                    devices: info.devices().into_iter().collect(),
                });
            }
        }
    }
    DeviceReport {
        checksum,
        holdings,
        registered: cp
            .registered
            .iter()
            .map(|(r, ids)| (r.clone(), ids.iter().cloned().collect()))
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkpoint::device::encode;
    use crate::devicemanager::pod_devices::AllocInfo;

    fn sample() -> DeviceCheckpoint {
        let mut cp = DeviceCheckpoint::default();
        let mut info = AllocInfo::default();
        info.by_numa.insert(1, ["nic-1".to_string()].into());
        cp.pod_devices.insert("uid-a", "c", "example.com/nic", info);
        cp.registered.insert(
            "example.com/nic".into(),
            ["nic-0".to_string(), "nic-1".to_string()].into(),
        );
        cp
    }

    #[test]
    fn a_written_checkpoint_reads_back_with_holders_and_free_devices() {
        let text = encode(&sample());
        let v: Value = serde_json::from_str(&text).unwrap();
        assert!(is_device_checkpoint(&v));
        let r = read_device_checkpoint(text.as_bytes()).unwrap();
        assert_eq!(r.holdings.len(), 1);
        let h = &r.holdings[0];
        assert_eq!((h.pod_uid.as_str(), h.container.as_str()), ("uid-a", "c"));
        assert_eq!(h.by_numa.get(&1), Some(&vec!["nic-1".to_string()]));
        assert_eq!(r.free("example.com/nic"), vec!["nic-0".to_string()]);
        assert_eq!(
            r.checksum,
            u64::from(crate::checkpoint::device::checksum(&sample()))
        );
    }

    #[test]
    fn a_changed_checksum_is_the_kubelets_corruption() {
        let text = encode(&sample());
        let v: Value = serde_json::from_str(&text).unwrap();
        let c = v["Checksum"].as_u64().unwrap();
        let bad = text.replace(&c.to_string(), &(c + 1).to_string());
        assert_eq!(
            read_device_checkpoint(bad.as_bytes()).unwrap_err(),
            "checkpoint is corrupted"
        );
        let mem: Value = serde_json::json!({"machineState": {}, "checksum": 1});
        assert!(!is_device_checkpoint(&mem));
    }
}
