//! Loading the inputs of the admin tools: a KubeletConfiguration file (or a scenario's
//! `kubelet:` block) and a machine file (a scenario's `machine:` block or `nmm node -o
//! yaml`'s output). Every error names the file and the field.

use crate::scenario::{parse_machine, read_yaml_file};
use anyhow::{anyhow, bail, Result};
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
    let config = serde_path_to_error::deserialize::<_, KubeletConfig>(cfg_v).map_err(|e| {
        anyhow!(
            "{p}: {prefix}{}: {}; write it as the KubeletConfiguration reference does (e.g. reservedMemory: [{{numaNode: 0, limits: {{memory: 1Gi}}}}])",
            e.path(),
            e.inner()
        )
    })?;
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
