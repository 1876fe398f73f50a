//! Reading a scenario file (`../shared/spec/scenario-format.md`): YAML (or JSON) into the
//! machine model, the kubelet config, optional starting checkpoints and pod events.
//! Every error names the file and the field, and says what to write instead.

use crate::doc::{De, Doc, Kind, Scalar};
use anyhow::{anyhow, bail, Context, Result};
use k8s_openapi::api::core::v1::Pod;
use nmm_core::cpuset::CpuSet;
use nmm_core::kubelet_config::KubeletConfig;
use nmm_core::machine::{Cpu, Machine, NumaNode};
use nmm_core::node::RawCheckpoint;
use nmm_core::quantity::Quantity;
use serde_json::Value;
use std::cell::Cell;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

#[derive(Debug, Clone)]
pub enum Step {
    Admit(Box<Pod>),
    Remove { uid: String },
}

#[derive(Debug, Clone)]
pub struct Scenario {
    pub path: PathBuf,
    pub machine: Machine,
    pub kubelet: KubeletConfig,
    pub memory_state: Option<RawCheckpoint>,
    pub cpu_state: Option<RawCheckpoint>,
    pub steps: Vec<Step>,
    /// Accepted, but probably not meant (unknown kubelet fields).
    pub warnings: Vec<String>,
    /// `machine.memoryCapacity`: cadvisor's machine memory capacity (None: the sum of
    /// the NUMA nodes).
    pub memory_capacity: Option<u64>,
    /// `machine.devices` (see `scenario_devices`).
    pub devices: Vec<nmm_core::devicemanager::Device>,
    /// `state.deviceManager`: the `kubelet_internal_checkpoint` to start from.
    pub device_state: Option<RawCheckpoint>,
    /// The node's `/proc/iomem` text, for `memory-drift-tolerance: auto` (KEP-6232); set
    /// by `nmm simulate --proc-iomem`, never read from the scenario.
    pub proc_iomem: Option<String>,
}

/// Parses YAML (JSON is YAML) into a JSON value. JSON documents take the fast JSON
/// parser; YAML in the forms scenarios are written in takes the fast reader
/// ([`crate::fast_yaml`]); the rest goes to serde-saphyr, with a budget sized for long
/// scenarios (the default stops at 250,000 nodes) while keeping alias-bomb protection.
pub fn parse_yaml(text: &str, path: &Path) -> Result<Value> {
    if text.trim_start().starts_with('{') {
        if let Ok(v) = serde_json::from_str::<Value>(text) {
            return Ok(v);
        }
    }
    if let Some(d) = parse_doc(text) {
        return Ok(d.to_value(0));
    }
    parse_yaml_tree(text, path)
}

/// [`parse_yaml`] without the fast YAML reader: serde_json for JSON, else serde-saphyr.
pub fn parse_yaml_tree(text: &str, path: &Path) -> Result<Value> {
    if text.trim_start().starts_with('{') {
        if let Ok(v) = serde_json::from_str::<Value>(text) {
            return Ok(v);
        }
    }
    let mut options = serde_saphyr::Options::default();
    if let Some(b) = options.budget.as_mut() {
        b.max_nodes = 50_000_000;
        b.max_events = 200_000_000;
        b.max_total_scalar_bytes = 1 << 30;
    }
    serde_saphyr::from_str_with_options::<Value>(text, options)
        .map_err(|e| anyhow!("{}: not valid YAML: {e}", path.display()))
}

/// The events of a JSON document (after any `#` comment lines: JSON is YAML) or of YAML
/// the fast reader takes, `None` for the rest (read those with [`parse_yaml_tree`] and
/// [`Doc::from_value`]).
pub fn parse_doc(text: &str) -> Option<Doc<'_>> {
    if let Some(json) = json_body(text) {
        if let Some(d) = Doc::from_json(json) {
            return Some(d);
        }
        // Duplicate keys, deep nesting: the trees decide, as before.
        return None;
    }
    crate::fast_yaml::parse(text)
}

/// The text from the first line that is neither blank nor a comment, when it opens a
/// JSON object.
fn json_body(text: &str) -> Option<&str> {
    let mut rest = text;
    loop {
        let t = rest.trim_start_matches([' ', '\t', '\r', '\n']);
        if t.starts_with('{') {
            return Some(t);
        }
        if !t.starts_with('#') {
            return None;
        }
        rest = &t[t.find('\n')?..];
    }
}

pub fn read_yaml_file(path: &Path) -> Result<Value> {
    parse_yaml(&read_text(path)?, path)
}

fn read_text(path: &Path) -> Result<String> {
    std::fs::read_to_string(path)
        .with_context(|| format!("{}: cannot read the file", path.display()))
}

fn field<'a>(v: &'a Value, key: &str) -> Option<&'a Value> {
    v.as_object()
        .and_then(|m| m.get(key))
        .filter(|v| !v.is_null())
}

fn as_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// A byte count given as a Kubernetes quantity (`32Gi`) or plain bytes.
pub fn bytes(v: &Value, path: &Path, at: &str) -> Result<u64> {
    let text = as_text(v).ok_or_else(|| {
        anyhow!(
            "{}: {at}: expected a quantity like 32Gi or a byte count, got {v}",
            path.display()
        )
    })?;
    let q = Quantity::parse(text.trim()).map_err(
        |e| match nmm_core::quantity_hint::byte_unit_hint(&text) {
            Some(h) => anyhow!(
                "{}: {at}: {text:?} is not a quantity ({e}); {h}",
                path.display()
            ),
            None => anyhow!(
                "{}: {at}: {text:?} is not a quantity ({e}); write e.g. 32Gi or 34359738368",
                path.display()
            ),
        },
    )?;
    match q.as_int64() {
        Some(b) if b >= 0 => Ok(b as u64),
        _ => bail!(
            "{}: {at}: {text:?} is not a whole, non-negative number of bytes",
            path.display()
        ),
    }
}

fn uint(v: &Value, path: &Path, at: &str) -> Result<u64> {
    v.as_u64()
        .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
        .ok_or_else(|| {
            anyhow!(
                "{}: {at}: expected a non-negative integer, got {v}",
                path.display()
            )
        })
}

/// The largest NUMA distance accepted (the kernel's are 10 to 255): sums over every
/// pair of 64 nodes stay exact in `u64` and in the `f64` means of prefer-closest.
pub const MAX_DISTANCE: u64 = u32::MAX as u64;

/// The `machine:` block.
pub fn parse_machine(v: &Value, path: &Path) -> Result<Machine> {
    let p = path.display();
    let nodes_v = field(v, "numaNodes")
        .and_then(|n| n.as_array())
        .ok_or_else(|| anyhow!("{p}: machine.numaNodes: missing; list the NUMA nodes, e.g. - {{id: 0, cpus: \"0-3\", memory: 32Gi}}"))?;
    if nodes_v.is_empty() {
        bail!("{p}: machine.numaNodes: empty; a machine has at least one NUMA node");
    }
    let mut nodes = Vec::new();
    let mut seen = BTreeSet::new();
    for (i, n) in nodes_v.iter().enumerate() {
        let at = format!("machine.numaNodes[{i}]");
        let id = uint(
            field(n, "id").ok_or_else(|| anyhow!("{p}: {at}.id: missing"))?,
            path,
            &format!("{at}.id"),
        )?;
        if id > 63 {
            bail!("{p}: {at}.id: {id}: NUMA node ids must be 0-63 (the kubelet's bitmask limit)");
        }
        if !seen.insert(id) {
            bail!("{p}: {at}.id: NUMA node {id} is listed twice");
        }
        let cpus_text = field(n, "cpus")
            .map(|c| as_text(c).unwrap_or_default())
            .unwrap_or_default();
        let cpus = CpuSet::parse(cpus_text.trim()).map_err(|e| {
            anyhow!("{p}: {at}.cpus: {cpus_text:?} is not a Linux cpulist ({e}); write e.g. \"0-3,8-11\" or \"\" for a CPU-less node")
        })?;
        let memory = match field(n, "memory") {
            Some(m) => bytes(m, path, &format!("{at}.memory"))?,
            None => 0,
        };
        let mut hugepages = BTreeMap::new();
        if let Some(h) = field(n, "hugepages") {
            let obj = h.as_object().ok_or_else(|| {
                anyhow!("{p}: {at}.hugepages: expected a map like {{1Gi: 8Gi, 2Mi: 512Mi}}")
            })?;
            for (size, total) in obj {
                let s = Quantity::parse(size).ok().and_then(|q| q.as_int64()).filter(|&b| b > 0).ok_or_else(|| {
                    anyhow!("{p}: {at}.hugepages: page size {size:?} is not a quantity; use 2Mi, 1Gi, ...")
                })? as u64;
                let t = bytes(total, path, &format!("{at}.hugepages.{size}"))?;
                if t % s != 0 {
                    let hint = as_text(total)
                        .and_then(|x| nmm_core::quantity_hint::page_count_hint(&x, t, s))
                        .map(|h| format!("; {h}"))
                        .unwrap_or_default();
                    bail!("{p}: {at}.hugepages.{size}: {t} bytes is not a whole number of {size} pages{hint}");
                }
                hugepages.insert(s, t);
            }
        }
        nodes.push(NumaNode {
            id: id as u32,
            cpus,
            memory,
            hugepages,
            distances: Vec::new(),
        });
    }
    nodes.sort_by_key(|n| n.id);
    // CPUs may not belong to two nodes.
    let mut owner: BTreeMap<u32, u32> = BTreeMap::new();
    for n in &nodes {
        for c in n.cpus.iter() {
            if let Some(o) = owner.insert(c, n.id) {
                bail!(
                    "{p}: machine.numaNodes: CPU {c} is listed on NUMA nodes {o} and {}",
                    n.id
                );
            }
        }
    }
    let mut machine = Machine {
        nodes,
        cpus: Vec::new(),
    };
    match field(v, "distances") {
        None => machine.default_distances(),
        Some(d) => {
            let rows = d
                .as_array()
                .ok_or_else(|| anyhow!("{p}: machine.distances: expected a list of rows"))?;
            if rows.len() != machine.nodes.len() {
                bail!("{p}: machine.distances: {} rows for {} NUMA nodes; give one row per node, in the order of numaNodes", rows.len(), machine.nodes.len());
            }
            // Row i belongs to the i-th node as listed in the file.
            let listed: Vec<u64> = nodes_v
                .iter()
                .map(|n| uint(&n["id"], path, "id").unwrap_or(0))
                .collect();
            for (i, r) in rows.iter().enumerate() {
                let at = format!("machine.distances[{i}]");
                let vals = r
                    .as_array()
                    .ok_or_else(|| anyhow!("{p}: {at}: expected a list of numbers"))?;
                let row: Vec<u64> = vals
                    .iter()
                    .enumerate()
                    .map(|(j, x)| {
                        let at = format!("{at}[{j}]");
                        let d = uint(x, path, &at)?;
                        if d > MAX_DISTANCE {
                            bail!("{p}: {at}: distance {d} is above {MAX_DISTANCE}; the kernel reports distances of 10 (local) to 255 (unreachable): give the values of /sys/devices/system/node/nodeN/distance");
                        }
                        Ok(d)
                    })
                    .collect::<Result<_>>()?;
                if row.len() != machine.nodes.len() {
                    bail!(
                        "{p}: {at}: {} entries for {} NUMA nodes",
                        row.len(),
                        machine.nodes.len()
                    );
                }
                let id = listed[i] as u32;
                if let Some(n) = machine.nodes.iter_mut().find(|n| n.id == id) {
                    n.distances = row;
                }
            }
        }
    }
    match field(v, "cpus") {
        None => {
            for n in &machine.nodes {
                for c in n.cpus.iter() {
                    machine.cpus.push(Cpu {
                        id: c,
                        core: c,
                        socket: n.id,
                        numa: n.id,
                    });
                }
            }
        }
        Some(list) => {
            let list = list.as_array().ok_or_else(|| {
                anyhow!("{p}: machine.cpus: expected a list of {{id, core, socket, numa}}")
            })?;
            for (i, c) in list.iter().enumerate() {
                let at = format!("machine.cpus[{i}]");
                let g = |k: &str| -> Result<u32> {
                    let v = field(c, k).ok_or_else(|| anyhow!("{p}: {at}.{k}: missing"))?;
                    let n = uint(v, path, &format!("{at}.{k}"))?;
                    u32::try_from(n).map_err(|_| {
                        anyhow!(
                            "{p}: {at}.{k}: {n} does not fit in 32 bits; give the id sysfs reports"
                        )
                    })
                };
                let cpu = Cpu {
                    id: g("id")?,
                    core: g("core")?,
                    socket: g("socket")?,
                    numa: g("numa")?,
                };
                match owner.get(&cpu.id) {
                    Some(&o) if o == cpu.numa => {}
                    Some(&o) => bail!(
                        "{p}: {at}: CPU {} says numa {} but is listed in NUMA node {o}'s cpus",
                        cpu.id,
                        cpu.numa
                    ),
                    None => bail!(
                        "{p}: {at}: CPU {} is not in any NUMA node's cpus list",
                        cpu.id
                    ),
                }
                machine.cpus.push(cpu);
            }
            let listed: BTreeSet<u32> = machine.cpus.iter().map(|c| c.id).collect();
            if listed.len() != machine.cpus.len() {
                bail!("{p}: machine.cpus: a CPU id is listed twice");
            }
            if let Some(missing) = owner.keys().find(|c| !listed.contains(c)) {
                bail!("{p}: machine.cpus: CPU {missing} of the numaNodes cpulists has no entry; list every CPU or none");
            }
        }
    }
    machine.cpus.sort_by_key(|c| c.id);
    Ok(machine)
}

/// The `kubelet:` block (KubeletConfiguration field names); unknown fields are dropped
/// silently here, see [`parse_kubelet_warned`].
pub fn parse_kubelet(v: Option<&Value>, path: &Path) -> Result<KubeletConfig> {
    Ok(parse_kubelet_warned(v, path)?.0)
}

/// The `kubelet:` block, decoded as the kubelet decodes its config: unknown fields are
/// warnings (naming the file and the field, with a did-you-mean).
pub fn parse_kubelet_warned(
    v: Option<&Value>,
    path: &Path,
) -> Result<(KubeletConfig, Vec<String>)> {
    let Some(v) = v else {
        return Ok((KubeletConfig::default(), Vec::new()));
    };
    crate::kubelet_fields::decode_kubelet_config(v, path, "kubelet.")
}

/// A v1 Pod, read as the API server reads it with strict field validation (kubectl's
/// default): an unknown field is an error naming the field's path, and the pod must pass
/// the API server's validation of names and resources ([`nmm_core::pod_validation`]).
/// Quantities in `limits`/`requests`/`overhead` may be written as YAML numbers (`cpu: 2`).
pub fn parse_pod(v: &Value, path: &Path, at: &str) -> Result<Pod> {
    parse_pod_doc(&Doc::from_value(v), 0, path, at)
}

/// [`parse_pod`] of the node at `i` of a document, deserialized straight from its events
/// (no tree); errors from a YAML file end with the line.
pub fn parse_pod_doc(doc: &Doc<'_>, i: usize, path: &Path, at: &str) -> Result<Pod> {
    let cur = Cell::new(i);
    let mut unknown: Vec<(String, usize)> = Vec::new();
    let mut note = |p: serde_ignored::Path| unknown.push((field_path(&p), cur.get()));
    let r: std::result::Result<Pod, _> = serde_path_to_error::deserialize(
        serde_ignored::Deserializer::new(De::new(doc, i, &cur), &mut note),
    );
    let pod = r.map_err(|e| {
        anyhow!(
            "{}: {at}.{}: {}{}",
            path.display(),
            e.path(),
            e.inner(),
            line_note(doc, cur.get())
        )
    })?;
    if let Some((field, ev)) = unknown.first() {
        bail!(
            "{}: {at}.{}: unknown field (the API server refuses it: strict decoding error: unknown field \"{}\"){}{}",
            path.display(),
            field,
            field,
            line_note(doc, *ev),
            unknown_field_hint(field)
        );
    }
    if pod.spec.is_none() {
        bail!(
            "{}: {at}.spec: missing; a pod needs spec.containers",
            path.display()
        );
    }
    let errs = nmm_core::pod_validation::validate_pod(&pod);
    if !errs.is_empty() {
        let name = pod.metadata.name.as_deref().unwrap_or("");
        bail!(
            "{}: {at}: the API server would refuse this pod: The Pod \"{name}\" is invalid: {}",
            path.display(),
            errs.join(", ")
        );
    }
    Ok(pod)
}

/// ` at line N` for event `ev` of a YAML document, empty when the line is not known.
fn line_note(doc: &Doc<'_>, ev: usize) -> String {
    doc.line(ev)
        .map(|l| format!(" at line {l}"))
        .unwrap_or_default()
}

/// `spec.containers[0].resource`, the API server's way of writing a field's path.
pub fn field_path(p: &serde_ignored::Path) -> String {
    use serde_ignored::Path as P;
    match p {
        P::Root => String::new(),
        P::Seq { parent, index } => format!("{}[{index}]", field_path(parent)),
        P::Map { parent, key } => {
            let head = field_path(parent);
            if head.is_empty() {
                key.clone()
            } else {
                format!("{head}.{key}")
            }
        }
        P::Some { parent } | P::NewtypeStruct { parent } | P::NewtypeVariant { parent } => {
            field_path(parent)
        }
    }
}

/// A did-you-mean for the last segment of an unknown field's path.
fn unknown_field_hint(field: &str) -> String {
    const KNOWN: &[&str] = &[
        "resources",
        "requests",
        "limits",
        "containers",
        "initContainers",
        "metadata",
        "spec",
        "name",
        "uid",
        "namespace",
        "image",
        "restartPolicy",
        "annotations",
        "labels",
    ];
    let last = field.rsplit('.').next().unwrap_or(field);
    match crate::suggest::closest(last, KNOWN) {
        Some(k) => format!("; did you mean `{k}`?"),
        None => String::new(),
    }
}

fn checkpoint(v: &Value, base: &Path, path: &Path, at: &str) -> Result<RawCheckpoint> {
    match v {
        Value::String(file) => {
            let f = base.join(file);
            let bytes = std::fs::read(&f).map_err(|e| {
                anyhow!(
                    "{}: {at}: cannot read checkpoint file {}: {e}",
                    path.display(),
                    f.display()
                )
            })?;
            Ok(RawCheckpoint::Bytes(bytes))
        }
        Value::Object(_) => Ok(RawCheckpoint::Json(v.clone())),
        _ => bail!(
            "{}: {at}: expected the checkpoint's contents (an object) or a file path",
            path.display()
        ),
    }
}

pub fn parse_scenario(v: &Value, path: &Path) -> Result<Scenario> {
    parse_scenario_doc(&Doc::from_value(v), path)
}

fn scalar_text(doc: &Doc<'_>, i: usize) -> Option<String> {
    match doc.scalar(i)? {
        Scalar::Str(s) => Some(s.to_string()),
        s @ (Scalar::U64(_) | Scalar::I64(_) | Scalar::F64(_)) => {
            Some(crate::doc::scalar_value(s).to_string())
        }
        _ => None,
    }
}

/// A scenario from a document's events: the machine, kubelet and state blocks (small)
/// through their trees, every pod straight into its typed struct.
pub fn parse_scenario_doc(doc: &Doc<'_>, path: &Path) -> Result<Scenario> {
    let p = path.display();
    if !matches!(doc.evs.first().map(|e| &e.kind), Some(Kind::Map { .. })) {
        bail!("{p}: expected a mapping with machine, kubelet and steps");
    }
    let machine_v = doc
        .get(0, "machine")
        .map(|i| doc.to_value(i))
        .ok_or_else(|| {
            anyhow!("{p}: machine: missing; see the scenario format (machine, kubelet, steps)")
        })?;
    let machine = parse_machine(&machine_v, path)?;
    let memory_capacity = memory_capacity(&machine_v, &machine, path)?;
    let kubelet_v = doc.get(0, "kubelet").map(|i| doc.to_value(i));
    let (kubelet, warnings) = parse_kubelet_warned(kubelet_v.as_ref(), path)?;
    let devices = crate::scenario_devices::parse_devices(&machine_v, &machine, path)?;
    let device_resources: BTreeSet<String> = devices.iter().map(|d| d.resource.clone()).collect();
    let base = path.parent().unwrap_or(Path::new("."));
    let (mut memory_state, mut cpu_state, mut device_state) = (None, None, None);
    if let Some(s) = doc.get(0, "state").map(|i| doc.to_value(i)) {
        if let Some(m) = field(&s, "memoryManager") {
            memory_state = Some(checkpoint(m, base, path, "state.memoryManager")?);
        }
        if let Some(c) = field(&s, "cpuManager") {
            cpu_state = Some(checkpoint(c, base, path, "state.cpuManager")?);
        }
        if let Some(d) = field(&s, "deviceManager") {
            device_state = Some(checkpoint(d, base, path, "state.deviceManager")?);
        }
    }
    let mut steps = Vec::new();
    if let Some(list) = doc.get(0, "steps") {
        let list = doc
            .items(list)
            .ok_or_else(|| anyhow!("{p}: steps: expected a list of admit/remove steps"))?;
        steps.reserve(list.len());
        for (i, s) in list.into_iter().enumerate() {
            if let Some(pod) = doc.get(s, "admit") {
                let at = format!("steps[{i}].admit");
                if !device_resources.is_empty() {
                    crate::scenario_devices::check_pod_devices(
                        &doc.to_value(pod),
                        &device_resources,
                        path,
                        &at,
                    )?;
                }
                steps.push(Step::Admit(Box::new(parse_pod_doc(doc, pod, path, &at)?)));
            } else if let Some(r) = doc.get(s, "remove") {
                let uid = doc.get(r, "uid").and_then(|u| scalar_text(doc, u)).ok_or_else(|| {
                    anyhow!("{p}: steps[{i}].remove.uid: missing; write - remove: {{uid: <pod uid>}}")
                })?;
                steps.push(Step::Remove { uid });
            } else {
                bail!("{p}: steps[{i}]: expected `admit: <Pod>` or `remove: {{uid: ...}}`");
            }
        }
    }
    Ok(Scenario {
        path: path.to_path_buf(),
        machine,
        kubelet,
        memory_state,
        cpu_state,
        steps,
        warnings,
        memory_capacity,
        devices,
        device_state,
        proc_iomem: None,
    })
}

/// `machine.memoryCapacity` (MemTotal of /proc/meminfo as cadvisor reports it): at least
/// the NUMA nodes' memory is not required (the kernel counts differently), but it must be
/// a positive byte quantity.
pub fn memory_capacity(machine_v: &Value, machine: &Machine, path: &Path) -> Result<Option<u64>> {
    let Some(v) = field(machine_v, "memoryCapacity") else {
        return Ok(None);
    };
    let b = bytes(v, path, "machine.memoryCapacity")?;
    if b == 0 {
        bail!(
            "{}: machine.memoryCapacity: must be more than 0; write MemTotal of /proc/meminfo (e.g. 64Gi), or leave it out for the sum of the NUMA nodes ({})",
            path.display(),
            nmm_core::quantity::format_human_bytes(machine.nodes.iter().map(|n| n.memory).sum())
        );
    }
    Ok(Some(b))
}

pub fn load_scenario(path: &Path) -> Result<Scenario> {
    let text = read_text(path)?;
    parse_scenario_text(&text, path)
}

/// A scenario from its text (YAML or JSON): JSON and the YAML the fast reader takes are
/// deserialized from their events; other YAML is read by serde-saphyr first.
pub fn parse_scenario_text(text: &str, path: &Path) -> Result<Scenario> {
    let scenario = match parse_doc(text) {
        Some(doc) => parse_scenario_doc(&doc, path)?,
        None => parse_scenario_doc(&Doc::from_value(&parse_yaml_tree(text, path)?), path)?,
    };
    if !scenario.devices.is_empty() {
        // `healthy: yes` reads as true in YAML 1.1; the spec wants a boolean.
        crate::scenario_devices::check_healthy_spelling(text, path)?;
    }
    Ok(scenario)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn distances_beyond_the_kernels_range_are_refused_naming_the_field() {
        let machine = |far: u64| {
            json!({
                "numaNodes": [
                    {"id": 0, "cpus": "0", "memory": "1Gi"},
                    {"id": 1, "cpus": "1", "memory": "1Gi"}
                ],
                "distances": [[10, far], [far, 10]]
            })
        };
        let path = Path::new("m.yaml");
        let e = format!(
            "{:#}",
            parse_machine(&machine(MAX_DISTANCE + 1), path).unwrap_err()
        );
        assert!(
            e.contains("m.yaml: machine.distances[0][1]: distance 4294967296 is above 4294967295"),
            "{e}"
        );
        let m = parse_machine(&machine(MAX_DISTANCE), path).unwrap();
        assert_eq!(m.distance(1, 0), MAX_DISTANCE);
    }
}
