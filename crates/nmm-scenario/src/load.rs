//! Loading the inputs of the admin tools: a KubeletConfiguration file (or a scenario's
//! `kubelet:` block) and a machine file (a scenario's `machine:` block or `nmm node -o
//! yaml`'s output). Every error names the file and the field.

use crate::scenario::{parse_machine, parse_pod, parse_yaml, read_yaml_file};
use anyhow::{bail, Context, Result};
use k8s_openapi::api::core::v1::Pod;
use nmm_core::devicemanager::Device;
use nmm_core::kubelet_config::KubeletConfig;
use nmm_core::machine::Machine;
use serde_json::{json, Value};
use std::path::Path;

/// A loaded `--config` file.
#[derive(Debug, Clone)]
pub struct ConfigFile {
    pub config: KubeletConfig,
    /// The file was a whole scenario: its machine.
    pub machine: Option<Machine>,
    pub warnings: Vec<String>,
}

const API_VERSION: &str = "kubelet.config.k8s.io/v1beta1";

/// Reads a KubeletConfiguration (YAML or JSON; a whole real config file with every other
/// kubelet field loads) or a scenario's `kubelet:` block.
pub fn load_config(path: &Path) -> Result<ConfigFile> {
    let v = read_yaml_file(path)?;
    parse_config(&v, path)
}

pub fn parse_config(v: &Value, path: &Path) -> Result<ConfigFile> {
    let p = path.display();
    let Some(obj) = v.as_object() else {
        bail!("{p}: expected a KubeletConfiguration mapping (apiVersion: {API_VERSION}, kind: KubeletConfiguration, then fields such as memoryManagerPolicy and reservedMemory)");
    };
    let mut warnings = Vec::new();
    let is_scenario = !obj.contains_key("kind") && obj.contains_key("kubelet");
    let (cfg_v, prefix, machine) = if is_scenario {
        let machine = match obj.get("machine").filter(|m| !m.is_null()) {
            Some(m) => Some(parse_machine(m, path)?),
            None => None,
        };
        let k = obj.get("kubelet").filter(|k| !k.is_null());
        (k.cloned().unwrap_or(json!({})), "kubelet.", machine)
    } else {
        if let Some(kind) = obj.get("kind") {
            if kind.as_str() != Some("KubeletConfiguration") {
                bail!("{p}: kind: {kind}: expected KubeletConfiguration; pass the kubelet's own config file (its --config, usually /var/lib/kubelet/config.yaml)");
            }
        }
        if let Some(av) = obj.get("apiVersion") {
            if av.as_str() != Some(API_VERSION) {
                warnings.push(format!(
                    "{p}: apiVersion: {av}: kubelet v1.32 reads {API_VERSION}; the fields were read with that version's names"
                ));
            }
        }
        (v.clone(), "", None)
    };
    if !cfg_v.is_object() {
        bail!("{p}: {prefix}: expected a mapping of KubeletConfiguration fields");
    }
    let (config, unknown) = crate::kubelet_fields::decode_kubelet_config(&cfg_v, path, prefix)?;
    warnings.extend(unknown);
    Ok(ConfigFile {
        config,
        machine,
        warnings,
    })
}

/// A file holding a `machine:` block (a scenario, or `nmm node -o yaml`'s output) or the
/// block's contents (`numaNodes:` at the top).
pub fn load_machine(path: &Path) -> Result<Machine> {
    let v = read_yaml_file(path)?;
    if let Some(m) = v.get("machine").filter(|m| !m.is_null()) {
        return parse_machine(m, path);
    }
    if v.get("numaNodes").is_some() {
        return parse_machine(&v, path);
    }
    bail!(
        "{}: machine: missing; the file needs a `machine:` block with numaNodes (write one with `nmm node -o yaml > machine.yaml`, or pass a scenario file)",
        path.display()
    )
}

/// The device plugins' devices with their NUMA nodes (which no checkpoint records):
/// `machine.devices` of a machine or scenario file, or a `devices:` list at the top of a
/// file, checked against `machine` as the scenario format says. `None` when the file has
/// no devices list.
pub fn load_devices(path: &Path, machine: &Machine) -> Result<Option<Vec<Device>>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("{}: cannot read the file", path.display()))?;
    let v = parse_yaml(&text, path)?;
    let mv = v.get("machine").filter(|m| !m.is_null()).unwrap_or(&v);
    if mv.get("devices").is_none() {
        return Ok(None);
    }
    let devices = crate::scenario_devices::parse_devices(mv, machine, path)?;
    if !devices.is_empty() {
        crate::scenario_devices::check_healthy_spelling(&text, path)?;
    }
    Ok(Some(devices))
}

/// Reads a v1 Pod file (YAML or JSON), strictly as the API server reads it: an unknown
/// field is an error naming the file and the field's path (`spec.containers[0].resource`).
pub fn load_pod_file(path: &Path) -> Result<Pod> {
    let v = read_yaml_file(path)?;
    let p = path.display().to_string();
    match v.get("kind").and_then(Value::as_str) {
        None | Some("Pod") => {}
        Some(k) => bail!(
            "{p}: kind: {k}: expected a single Pod (e.g. kubectl get pod NAME -o yaml > pod.yaml)"
        ),
    }
    if !v.is_object() {
        bail!("{p}: expected a Pod (a mapping with metadata and spec)");
    }
    parse_pod(&v, path, "").map_err(|e| {
        // parse_pod prefixes field paths with `at.`; a file holding one pod has none.
        let text = format!("{e:#}")
            .replacen(&format!("{p}: ."), &format!("{p}: "), 1)
            .replacen(&format!("{p}: : "), &format!("{p}: "), 1);
        anyhow::anyhow!(text)
    })
}

/// MemTotal of `ROOT/proc/meminfo` in bytes (cadvisor's machine memory capacity), `None`
/// when the file is absent (a sysfs snapshot without it).
pub fn meminfo_total(root: &Path) -> Result<Option<u64>> {
    let f = root.join("proc/meminfo");
    let text = match std::fs::read_to_string(&f) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => bail!("{}: cannot read it: {e}", f.display()),
    };
    parse_meminfo_total(&text).map(Some).ok_or_else(|| {
        anyhow::anyhow!(
            "{}: no `MemTotal: N kB` line; is it a copy of /proc/meminfo?",
            f.display()
        )
    })
}

/// `MemTotal:       263939528 kB` -> bytes.
pub fn parse_meminfo_total(text: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.starts_with("MemTotal:"))?;
    let mut it = line["MemTotal:".len()..].split_whitespace();
    let n: u64 = it.next()?.parse().ok()?;
    match it.next() {
        Some("kB") => n.checked_mul(1024),
        None => Some(n),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meminfo() {
        assert_eq!(
            parse_meminfo_total("MemTotal:       263939528 kB\nMemFree: 1 kB\n"),
            Some(263939528 * 1024)
        );
        assert_eq!(parse_meminfo_total("MemFree: 1 kB\n"), None);
        assert_eq!(parse_meminfo_total("MemTotal: x kB\n"), None);
    }

    #[test]
    fn devices_from_machine_files_and_device_lists() {
        let dir = tempfile::tempdir().unwrap();
        let machine = Machine::synthetic(2, 2, 0, 1 << 30, 1 << 30);
        let file = |name: &str, text: &str| {
            let p = dir.path().join(name);
            std::fs::write(&p, text).unwrap();
            p
        };
        let m = file(
            "m.yaml",
            "machine:\n  numaNodes: []\n  devices:\n    - {resource: nvidia.com/gpu, id: gpu-0, numa: [1]}\n    - {resource: nvidia.com/gpu, id: gpu-1, healthy: false}\n",
        );
        let d = load_devices(&m, &machine).unwrap().unwrap();
        assert_eq!(d.len(), 2);
        assert_eq!(d[0].numa, Some(vec![1]));
        assert!(!d[1].healthy && d[1].numa.is_none());
        let top = file(
            "d.yaml",
            "devices:\n  - {resource: example.com/nic, id: nic-0}\n",
        );
        assert_eq!(
            load_devices(&top, &machine).unwrap().unwrap()[0].id,
            "nic-0"
        );
        let none = file("n.yaml", "machine:\n  numaNodes: []\n");
        assert!(load_devices(&none, &machine).unwrap().is_none());
        // A node the machine does not have, and a YAML 1.1 boolean: errors naming the field.
        let bad = file(
            "b.yaml",
            "machine:\n  devices:\n    - {resource: r, id: a, numa: [5]}\n",
        );
        let e = format!("{:#}", load_devices(&bad, &machine).unwrap_err());
        assert!(e.contains("b.yaml: machine.devices[0].numa[0]"), "{e}");
        let yes = file(
            "y.yaml",
            "machine:\n  devices:\n    - resource: r\n      id: a\n      healthy: yes\n",
        );
        let e = format!("{:#}", load_devices(&yes, &machine).unwrap_err());
        assert!(e.contains("machine.devices[0].healthy"), "{e}");
    }
}
