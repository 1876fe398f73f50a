//! The Devices part of a scenario (`machine.devices`, device counts in pods), with the
//! checks of the scenario format: every error names the file and the field.

use anyhow::{anyhow, bail, Result};
use nmm_core::devicemanager::Device;
use nmm_core::machine::Machine;
use nmm_core::quantity::Quantity;
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::Path;

/// `machine.devices`: one entry per device, in the order the plugins report them.
pub fn parse_devices(machine_v: &Value, machine: &Machine, path: &Path) -> Result<Vec<Device>> {
    let p = path.display();
    let Some(list) = machine_v.get("devices").filter(|v| !v.is_null()) else {
        return Ok(Vec::new());
    };
    let list = list.as_array().ok_or_else(|| {
        anyhow!("{p}: machine.devices: expected a list like - {{resource: example.com/nic, id: nic-0, numa: [0]}}")
    })?;
    let mut out: Vec<Device> = Vec::new();
    let mut seen: BTreeSet<(String, String)> = BTreeSet::new();
    for (i, d) in list.iter().enumerate() {
        let at = format!("machine.devices[{i}]");
        let Some(keys) = d.as_object() else {
            bail!(
                "{p}: {at}: expected a mapping with resource, id and optionally numa and healthy"
            );
        };
        check_device_keys(keys.keys(), path, &at)?;
        let text = |k: &str| -> Result<String> {
            match d.get(k) {
                None | Some(Value::Null) => {
                    bail!("{p}: {at}.{k}: missing; every device needs a resource name and an id")
                }
                Some(Value::String(s)) if s.trim().is_empty() => {
                    bail!("{p}: {at}.{k}: empty; give the device plugin's {k}")
                }
                Some(Value::String(s)) => Ok(s.clone()),
                Some(Value::Number(n)) if k == "id" => Ok(n.to_string()),
                Some(other) => bail!("{p}: {at}.{k}: expected a string, got {other}"),
            }
        };
        let resource = text("resource")?;
        let id = text("id")?;
        if !seen.insert((resource.clone(), id.clone())) {
            bail!("{p}: {at}.id: device {id:?} of {resource} is listed twice; device ids are unique within a resource");
        }
        let numa = match d.get("numa") {
            None | Some(Value::Null) => None,
            Some(Value::Array(ids)) => {
                let mut nodes = Vec::new();
                for (j, n) in ids.iter().enumerate() {
                    let node = n.as_u64().filter(|&x| machine.node(x as u32).is_some() && x <= 63);
                    match node {
                        Some(x) if nodes.contains(&(x as u32)) => bail!(
                            "{p}: {at}.numa[{j}]: NUMA node {x} is listed twice; list each node the device is attached to once"
                        ),
                        Some(x) => nodes.push(x as u32),
                        None => bail!(
                            "{p}: {at}.numa[{j}]: {n} is not a NUMA node of machine.numaNodes (ids {:?}); list the nodes the device is attached to",
                            machine.node_ids()
                        ),
                    }
                }
                if nodes.is_empty() {
                    bail!("{p}: {at}.numa: empty; list the NUMA nodes the device is attached to, or leave numa out for a device without topology");
                }
                Some(nodes)
            }
            Some(other) => bail!(
                "{p}: {at}.numa: expected a list of NUMA node ids like [0] (or no numa for a device without topology), got {other}"
            ),
        };
        let healthy = match d.get("healthy") {
            None | Some(Value::Null) => true,
            Some(Value::Bool(b)) => *b,
            Some(other) => bail!("{p}: {at}.healthy: expected true or false, got {other}"),
        };
        out.push(Device {
            resource,
            id,
            numa,
            healthy,
        });
    }
    Ok(out)
}

/// The fields of a `machine.devices` entry.
const DEVICE_FIELDS: &[&str] = &["resource", "id", "numa", "healthy"];

/// Refuses a field a device entry does not have (a misspelt `helthy: false` would
/// otherwise leave the device healthy without a word), with a did-you-mean.
fn check_device_keys<'a>(
    keys: impl Iterator<Item = &'a String>,
    path: &Path,
    at: &str,
) -> Result<()> {
    for k in keys {
        if !DEVICE_FIELDS.contains(&k.as_str()) {
            let hint = match crate::suggest::closest(k, DEVICE_FIELDS) {
                Some(known) => format!("did you mean `{known}`?"),
                None => "a device has resource, id, numa and healthy".to_string(),
            };
            bail!("{}: {at}.{k}: unknown field; {hint}", path.display());
        }
    }
    Ok(())
}

/// YAML 1.1 spells booleans `yes`, `no`, `on`, `off`, `y`, `n`; the scenario parser
/// takes them as booleans, so `healthy: yes` would pass as `true`. The scenario format
/// wants `true` or `false` for `healthy`: this re-reads the scenario text with YAML 1.2
/// booleans only (when it mentions `healthy` at all) and refuses any other spelling,
/// naming the field.
pub fn check_healthy_spelling(text: &str, path: &Path) -> Result<()> {
    if !text.contains("healthy") || text.trim_start().starts_with('{') {
        return Ok(());
    }
    let mut options = serde_saphyr::Options::default();
    options.strict_booleans = true;
    if let Some(b) = options.budget.as_mut() {
        b.max_nodes = 50_000_000;
        b.max_events = 200_000_000;
        b.max_total_scalar_bytes = 1 << 30;
    }
    // The first parse already reported syntax errors; a failure here changes nothing.
    let Ok(v) = serde_saphyr::from_str_with_options::<Value>(text, options) else {
        return Ok(());
    };
    let list = v.pointer("/machine/devices").and_then(|d| d.as_array());
    for (i, d) in list.into_iter().flatten().enumerate() {
        if let Some(Value::String(s)) = d.get("healthy") {
            bail!(
                "{}: machine.devices[{i}].healthy: expected true or false, got {s} (a YAML 1.1 spelling); write true or false",
                path.display()
            );
        }
    }
    Ok(())
}

fn count_of(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.trim().to_string()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// A device count: a non-negative integer quantity.
fn device_count(v: &Value) -> std::result::Result<i64, String> {
    let text = count_of(v).ok_or_else(|| format!("expected a device count, got {v}"))?;
    let q = Quantity::parse(&text).map_err(|e| format!("{text:?} is not a quantity ({e})"))?;
    match q.as_int64() {
        Some(n) if n >= 0 => Ok(n),
        _ => Err(format!(
            "{text:?} is not a whole, non-negative number of devices; write e.g. 1 or \"2\""
        )),
    }
}

/// Device counts in every container of the pod at `at` (`steps[2].admit`): whole and
/// non-negative, and `requests` equal to `limits` where given.
pub fn check_pod_devices(
    pod: &Value,
    resources: &BTreeSet<String>,
    path: &Path,
    at: &str,
) -> Result<()> {
    if resources.is_empty() {
        return Ok(());
    }
    let p = path.display();
    let spec = pod.get("spec");
    for list in ["initContainers", "containers"] {
        let Some(cs) = spec.and_then(|s| s.get(list)).and_then(|c| c.as_array()) else {
            continue;
        };
        for (i, c) in cs.iter().enumerate() {
            let res = c.get("resources");
            let get = |k: &str| res.and_then(|r| r.get(k)).and_then(|m| m.as_object());
            let (limits, requests) = (get("limits"), get("requests"));
            let field =
                |kind: &str, r: &str| format!("{at}.spec.{list}[{i}].resources.{kind}[{r:?}]");
            let mut limit_counts = std::collections::BTreeMap::new();
            for (r, v) in limits.into_iter().flatten() {
                if resources.contains(r) {
                    let n =
                        device_count(v).map_err(|e| anyhow!("{p}: {}: {e}", field("limits", r)))?;
                    limit_counts.insert(r.clone(), n);
                }
            }
            for (r, v) in requests.into_iter().flatten() {
                if resources.contains(r) {
                    let n = device_count(v)
                        .map_err(|e| anyhow!("{p}: {}: {e}", field("requests", r)))?;
                    match limit_counts.get(r) {
                        Some(&l) if l == n => {}
                        Some(&l) => bail!(
                            "{p}: {}: {n} differs from the limit {l}; device requests must equal their limits (or be left out)",
                            field("requests", r)
                        ),
                        None => bail!(
                            "{p}: {}: a device request needs the same count in limits (devices are not overcommitted)",
                            field("requests", r)
                        ),
                    }
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn machine() -> Machine {
        let v = json!({"numaNodes": [{"id": 0, "cpus": "0-1", "memory": "1Gi"}, {"id": 1, "cpus": "2-3", "memory": "1Gi"}]});
        crate::scenario::parse_machine(&v, Path::new("s.yaml")).unwrap()
    }

    fn err(devices: Value) -> String {
        let v = json!({ "devices": devices });
        format!(
            "{:#}",
            parse_devices(&v, &machine(), Path::new("s.yaml")).unwrap_err()
        )
    }

    #[test]
    fn devices_parse_with_defaults() {
        let v = json!({"devices": [
            {"resource": "example.com/nic", "id": "nic-0", "numa": [0]},
            {"resource": "example.com/nic", "id": "nic-1", "numa": [1, 0], "healthy": false},
            {"resource": "example.com/accel", "id": "a0"},
        ]});
        let d = parse_devices(&v, &machine(), Path::new("s.yaml")).unwrap();
        assert_eq!(d.len(), 3);
        assert!(d[0].healthy && !d[1].healthy);
        assert_eq!(d[1].numa, Some(vec![1, 0]));
        assert_eq!(d[2].numa, None);
    }

    #[test]
    fn bad_devices_name_the_field() {
        let e = err(json!([{"resource": "r", "id": "a"}, {"resource": "r", "id": "a"}]));
        assert!(
            e.contains("s.yaml: machine.devices[1].id") && e.contains("twice"),
            "{e}"
        );
        let e = err(json!([{"resource": "r", "id": "a", "numa": [2]}]));
        assert!(e.contains("machine.devices[0].numa[0]"), "{e}");
        let e = err(json!([{"resource": "r", "id": "a", "healthy": "yes"}]));
        assert!(e.contains("machine.devices[0].healthy"), "{e}");
        let e = err(json!([{"id": "a"}]));
        assert!(e.contains("machine.devices[0].resource: missing"), "{e}");
        let e = err(json!([{"resource": "r", "id": ""}]));
        assert!(e.contains("machine.devices[0].id: empty"), "{e}");
        let e = err(json!([{"resource": "r", "id": "a", "helthy": false}]));
        assert!(
            e.contains("s.yaml: machine.devices[0].helthy: unknown field; did you mean `healthy`?"),
            "{e}"
        );
        let e = err(json!([{"resource": "r", "id": "a", "colour": "red"}]));
        assert!(
            e.contains("machine.devices[0].colour: unknown field"),
            "{e}"
        );
        let e = err(json!([{"resource": "r", "id": "a", "numa": []}]));
        assert!(e.contains("machine.devices[0].numa: empty"), "{e}");
        let e = err(json!([{"resource": "r", "id": "a", "numa": [1, 1]}]));
        assert!(
            e.contains("machine.devices[0].numa[1]: NUMA node 1 is listed twice"),
            "{e}"
        );
        // Same id under another resource is fine.
        let v = json!({"devices": [{"resource": "r", "id": "a"}, {"resource": "s", "id": "a"}]});
        assert!(parse_devices(&v, &machine(), Path::new("s.yaml")).is_ok());
    }

    #[test]
    fn yaml11_booleans_are_refused_for_healthy() {
        let text = |h: &str| {
            format!("machine:\n  devices:\n    - {{resource: r, id: a}}\n    - {{resource: r, id: b, healthy: {h}}}\n")
        };
        for bad in ["yes", "no", "on", "Off", "y"] {
            let e = format!(
                "{:#}",
                check_healthy_spelling(&text(bad), Path::new("s.yaml")).unwrap_err()
            );
            assert!(
                e.contains("s.yaml: machine.devices[1].healthy: expected true or false"),
                "{e}"
            );
        }
        for good in ["true", "false", "True", "FALSE"] {
            assert!(check_healthy_spelling(&text(good), Path::new("s.yaml")).is_ok());
        }
    }

    #[test]
    fn device_counts() {
        let rs: BTreeSet<String> = ["example.com/nic".to_string()].into();
        let pod = |limits: Value, requests: Value| json!({"spec": {"containers": [{"name": "c", "resources": {"limits": limits, "requests": requests}}]}});
        let check = |p: Value| check_pod_devices(&p, &rs, Path::new("s.yaml"), "steps[2].admit");
        assert!(check(pod(json!({"example.com/nic": 1}), json!({}))).is_ok());
        assert!(check(pod(
            json!({"example.com/nic": "2"}),
            json!({"example.com/nic": 2})
        ))
        .is_ok());
        for bad in [json!("1.5"), json!("500m"), json!(-1), json!(1.5)] {
            let e = format!(
                "{:#}",
                check(pod(json!({"example.com/nic": bad}), json!({}))).unwrap_err()
            );
            assert!(
                e.contains(
                    "steps[2].admit.spec.containers[0].resources.limits[\"example.com/nic\"]"
                ),
                "{e}"
            );
        }
        let e = format!(
            "{:#}",
            check(pod(
                json!({"example.com/nic": 1}),
                json!({"example.com/nic": 2})
            ))
            .unwrap_err()
        );
        assert!(
            e.contains("resources.requests[\"example.com/nic\"]") && e.contains("differs"),
            "{e}"
        );
        // Other resources are not checked here.
        assert!(check(pod(json!({"cpu": "500m"}), json!({}))).is_ok());
    }
}
