//! From what NRI shows of a pod to the managers' [`PodInfo`].
//!
//! NRI carries what the kubelet told the runtime to *enforce*, not the pod spec. What
//! can be recovered, and how (see also `docs/nri.md`):
//!
//! * **QoS class** — from the pod's cgroup parent: `kubepods-besteffort-…` /
//!   `/kubepods/besteffort/…` is BestEffort, `kubepods-burstable-…` /
//!   `/kubepods/burstable/…` Burstable, `kubepods-pod<uid>.slice` / `/kubepods/pod<uid>`
//!   Guaranteed (both cgroup drivers; the container's cgroups path is the fallback).
//!   Without a recognisable cgroup the class is computed from the derived resources.
//! * **CPU limit** — `cpu.quota / cpu.period` (kubelet: quota = milli × period / 1000).
//! * **CPU request** — `cpu.shares` (kubelet: shares = milli × 1024 / 1000, minimum 2;
//!   2 means "no request").
//! * **Memory limit** — `memory.limit`. **Memory request** — cgroup v2
//!   `unified["memory.min"]` when the kubelet sets it (MemoryQoS); for Guaranteed pods
//!   the limit (requests equal limits there); otherwise unknown.
//! * **Hugepages** — `hugepage_limits` (page size `2MB` → `hugepages-2Mi`); the
//!   kubelet writes a zero limit for every size not requested, those are skipped;
//!   requests equal limits.
//! * **Overrides** — the pod annotation `nmm.io/requests`, a JSON object
//!   `{"<container>": {"<resource>": "<quantity>", …}, …}`, replaces derived requests
//!   and adds resources NRI cannot show (devices, extended resources).
//! * **Init containers** — NRI does not say which containers are init containers; the
//!   pod annotations `nmm.io/init-containers` (comma-separated, spec order) and
//!   `nmm.io/sidecar-containers` (the restartable ones among them) do.

use crate::types::*;
use nmm_core::pod::{compute_qos, ContainerInfo, PodInfo, QosClass};
use nmm_core::quantity::{Format, Quantity};
use std::collections::BTreeMap;

/// Pod annotation overriding requests: `{"<container>": {"<resource>": "<quantity>"}}`.
pub const REQUESTS_ANNOTATION: &str = "nmm.io/requests";
/// Pod annotation listing init containers, comma-separated, in spec order.
pub const INIT_CONTAINERS_ANNOTATION: &str = "nmm.io/init-containers";
/// Pod annotation listing the restartable init containers (sidecars), comma-separated.
pub const SIDECAR_CONTAINERS_ANNOTATION: &str = "nmm.io/sidecar-containers";

/// The kubelet's `MinShares`.
const MIN_SHARES: u64 = 2;

/// Size limits on what the runtime hands us for one pod, so that one request's work is
/// bounded (NRI drops a plugin that misses its 2 s timeout, and every later container
/// then goes unchecked). A pod over a limit is refused with a message naming the field.
pub mod limits {
    /// Containers of one pod (init containers included). Kubernetes sets no limit; real
    /// pods have a handful.
    pub const MAX_CONTAINERS: usize = 256;
    /// Bytes of one `nmm.io/*` annotation value (the API server allows 256 KiB for all
    /// annotations of an object together).
    pub const MAX_ANNOTATION_BYTES: usize = 64 * 1024;
    /// Resources named for one container in `nmm.io/requests`, and hugepage limits of one
    /// container.
    pub const MAX_RESOURCES: usize = 64;
    /// Bytes of a container or resource name (a qualified name is at most 253 + 1 + 63).
    pub const MAX_NAME_BYTES: usize = 317;
    /// Bytes of one quantity text (`"128Mi"`, `"1.5"`; 64 is generous).
    pub const MAX_QUANTITY_BYTES: usize = 64;
    /// Bytes of a cgroup path (PATH_MAX).
    pub const MAX_CGROUP_PATH_BYTES: usize = 4096;
}

/// At most `max` bytes of `s` (on a char boundary), marked when cut, for messages.
fn clip(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

fn too_long(what: &str, len: usize, max: usize) -> String {
    format!("{what} is {len} bytes, above the limit of {max}; shorten it")
}

/// Refuses, before any parsing, a pod whose fields exceed [`limits`].
fn check_sizes(pod: &PodSandbox, containers: &[Container]) -> Result<(), String> {
    use limits::*;
    if containers.len() > MAX_CONTAINERS {
        return Err(format!(
            "{} containers, above the limit of {MAX_CONTAINERS} per pod",
            containers.len()
        ));
    }
    for key in [
        REQUESTS_ANNOTATION,
        INIT_CONTAINERS_ANNOTATION,
        SIDECAR_CONTAINERS_ANNOTATION,
    ] {
        if let Some(v) = pod.annotations.get(key) {
            if v.len() > MAX_ANNOTATION_BYTES {
                return Err(too_long(
                    &format!("annotation {key}"),
                    v.len(),
                    MAX_ANNOTATION_BYTES,
                ));
            }
        }
    }
    for (what, v) in [
        ("linux.cgroup_parent", &pod.cgroup_parent),
        ("linux.cgroups_path", &pod.cgroups_path),
    ] {
        if v.len() > MAX_CGROUP_PATH_BYTES {
            return Err(too_long(what, v.len(), MAX_CGROUP_PATH_BYTES));
        }
    }
    for c in containers {
        if c.name.len() > MAX_NAME_BYTES {
            return Err(too_long(
                &format!("container {:?}: name", c.id),
                c.name.len(),
                MAX_NAME_BYTES,
            ));
        }
        if c.cgroups_path.len() > MAX_CGROUP_PATH_BYTES {
            return Err(too_long(
                &format!("container {:?}: linux.cgroups_path", c.name),
                c.cgroups_path.len(),
                MAX_CGROUP_PATH_BYTES,
            ));
        }
        if let Some(r) = &c.resources {
            if r.hugepage_limits.len() > MAX_RESOURCES {
                return Err(format!(
                    "container {:?}: {} hugepage limits, above the limit of {MAX_RESOURCES}",
                    c.name,
                    r.hugepage_limits.len()
                ));
            }
            if let Some(v) = r.unified.get("memory.min") {
                if v.len() > MAX_QUANTITY_BYTES {
                    return Err(too_long(
                        &format!("container {:?}: unified memory.min", c.name),
                        v.len(),
                        MAX_QUANTITY_BYTES,
                    ));
                }
            }
            if let Some(h) = r
                .hugepage_limits
                .iter()
                .find(|h| h.page_size.len() > MAX_QUANTITY_BYTES)
            {
                return Err(too_long(
                    &format!("container {:?}: hugepage page size", c.name),
                    h.page_size.len(),
                    MAX_QUANTITY_BYTES,
                ));
            }
        }
    }
    Ok(())
}

fn pod_uid_token(tok: &str, systemd: bool) -> Option<String> {
    let uid = tok.strip_prefix("pod")?;
    if uid.is_empty() {
        return None;
    }
    Some(if systemd {
        uid.replace('_', "-")
    } else {
        uid.to_string()
    })
}

fn qos_token(tok: &str) -> Option<QosClass> {
    match tok {
        "burstable" => Some(QosClass::Burstable),
        "besteffort" => Some(QosClass::BestEffort),
        _ => None,
    }
}

/// QoS class and pod UID encoded in a kubelet cgroup path (pod cgroup parent or a
/// container's cgroups path; systemd or cgroupfs driver). `None` if the path is not
/// below a kubepods cgroup with a QoS or pod level.
pub fn parse_kubepods_cgroup(path: &str) -> Option<(QosClass, Option<String>)> {
    // systemd container form "slice:prefix:name": keep the slice.
    let path = path.split(':').next().unwrap_or("");
    let comps: Vec<&str> = path.split('/').filter(|c| !c.is_empty()).collect();
    if let Some(slice) = comps
        .iter()
        .rev()
        .find(|c| c.starts_with("kubepods") && c.ends_with(".slice"))
    {
        let toks: Vec<&str> = slice.trim_end_matches(".slice").split('-').collect();
        if toks.first() != Some(&"kubepods") {
            return None;
        }
        return match toks.get(1) {
            Some(t) if qos_token(t).is_some() => Some((
                qos_token(t)?,
                toks.get(2).and_then(|p| pod_uid_token(p, true)),
            )),
            Some(t) if t.starts_with("pod") => Some((QosClass::Guaranteed, pod_uid_token(t, true))),
            _ => None,
        };
    }
    let i = comps.iter().position(|c| *c == "kubepods")?;
    match comps.get(i + 1) {
        Some(t) if qos_token(t).is_some() => Some((
            qos_token(t)?,
            comps.get(i + 2).and_then(|p| pod_uid_token(p, false)),
        )),
        Some(t) if t.starts_with("pod") => Some((QosClass::Guaranteed, pod_uid_token(t, false))),
        _ => None,
    }
}

/// The QoS class a kubelet cgroup path encodes, see [`parse_kubepods_cgroup`].
pub fn qos_from_cgroup_path(path: &str) -> Option<QosClass> {
    parse_kubepods_cgroup(path).map(|(q, _)| q)
}

/// `hugepages-<size>` for a kubelet page size string (`2MB`, `1GB`, `64KB`: binary
/// units, as `HugePageUnitSizeFromByteSize` writes them).
pub fn hugepage_resource_name(page_size: &str) -> Result<String, String> {
    let s = page_size.trim();
    let split = s
        .find(|c: char| !c.is_ascii_digit())
        .ok_or_else(|| format!("hugepage size {page_size:?} has no unit"))?;
    let (num, unit) = s.split_at(split);
    let n: i64 = num
        .parse()
        .map_err(|_| format!("hugepage size {page_size:?}: bad number"))?;
    let shift = match unit {
        "B" => 0,
        "KB" => 10,
        "MB" => 20,
        "GB" => 30,
        "TB" => 40,
        "PB" => 50,
        _ => {
            return Err(format!(
                "hugepage size {page_size:?}: unknown unit {unit:?}"
            ))
        }
    };
    let bytes = n
        .checked_mul(1i64 << shift)
        .filter(|b| *b > 0)
        .ok_or_else(|| format!("hugepage size {page_size:?} out of range"))?;
    Ok(format!(
        "hugepages-{}",
        Quantity::from_i64(bytes, Format::BinarySI)
    ))
}

fn ceil_div(a: i128, b: i128) -> i128 {
    (a + b - 1) / b
}

fn milli_cpu(m: i128, what: &str, ctr: &str) -> Result<Quantity, String> {
    let m = i64::try_from(m).map_err(|_| format!("container {ctr:?}: {what} out of range"))?;
    Ok(Quantity::from_scaled_i64(m, -3, Format::DecimalSI))
}

fn bytes_q(b: i64) -> Quantity {
    Quantity::from_i64(b, Format::BinarySI)
}

type Overrides = BTreeMap<String, BTreeMap<String, Quantity>>;

fn parse_overrides(pod: &PodSandbox) -> Result<Overrides, String> {
    let Some(text) = pod.annotations.get(REQUESTS_ANNOTATION) else {
        return Ok(Overrides::new());
    };
    let bad = |m: String| format!("annotation {REQUESTS_ANNOTATION}: {m}");
    let v: serde_json::Value =
        serde_json::from_str(text).map_err(|e| bad(format!("not JSON: {e}")))?;
    let obj = v
        .as_object()
        .ok_or_else(|| bad("expected an object of containers".into()))?;
    use limits::*;
    if obj.len() > MAX_CONTAINERS {
        return Err(bad(format!(
            "{} containers, above the limit of {MAX_CONTAINERS}",
            obj.len()
        )));
    }
    let mut out = Overrides::new();
    for (ctr, res) in obj {
        if ctr.len() > MAX_NAME_BYTES {
            return Err(bad(too_long("a container name", ctr.len(), MAX_NAME_BYTES)));
        }
        let res = res
            .as_object()
            .ok_or_else(|| bad(format!("{ctr:?}: expected an object of resources")))?;
        if res.len() > MAX_RESOURCES {
            return Err(bad(format!(
                "{ctr:?}: {} resources, above the limit of {MAX_RESOURCES}",
                res.len()
            )));
        }
        let mut m = BTreeMap::new();
        for (name, q) in res {
            if name.len() > MAX_NAME_BYTES {
                return Err(bad(too_long(
                    &format!("{ctr:?}: a resource name"),
                    name.len(),
                    MAX_NAME_BYTES,
                )));
            }
            let text = match q {
                serde_json::Value::String(s) => s.clone(),
                serde_json::Value::Number(n) => n.to_string(),
                _ => return Err(bad(format!("{ctr:?}.{name}: expected a quantity"))),
            };
            if text.len() > MAX_QUANTITY_BYTES {
                return Err(bad(too_long(
                    &format!("{ctr:?}.{name}"),
                    text.len(),
                    MAX_QUANTITY_BYTES,
                )));
            }
            let q = Quantity::parse(text.trim())
                .map_err(|e| bad(format!("{ctr:?}.{name}: {text:?}: {e}")))?;
            if q.sign() < 0 {
                return Err(bad(format!("{ctr:?}.{name}: negative quantity {text:?}")));
            }
            m.insert(name.clone(), q);
        }
        out.insert(ctr.clone(), m);
    }
    Ok(out)
}

/// The comma-separated names of annotation `key` (blanks dropped; none when absent),
/// unchecked: [`pod_info_from_nri`] bounds their number and length.
pub fn annotation_names(pod: &PodSandbox, key: &str) -> Vec<String> {
    pod.annotations
        .get(key)
        .map(|v| {
            v.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(String::from)
                .collect()
        })
        .unwrap_or_default()
}

fn name_list(pod: &PodSandbox, key: &str) -> Result<Vec<String>, String> {
    let names = annotation_names(pod, key);
    if names.len() > limits::MAX_CONTAINERS {
        return Err(format!(
            "annotation {key}: {} names, above the limit of {}",
            names.len(),
            limits::MAX_CONTAINERS
        ));
    }
    if let Some(n) = names.iter().find(|n| n.len() > limits::MAX_NAME_BYTES) {
        return Err(format!(
            "annotation {key}: {}",
            too_long("a container name", n.len(), limits::MAX_NAME_BYTES)
        ));
    }
    Ok(names)
}

fn container_info(
    c: &Container,
    qos: Option<QosClass>,
    overrides: Option<&BTreeMap<String, Quantity>>,
) -> Result<ContainerInfo, String> {
    let name = c.name.as_str();
    let r = c.resources.clone().unwrap_or_default();
    let mut limits: BTreeMap<String, Quantity> = BTreeMap::new();
    let mut requests: BTreeMap<String, Quantity> = BTreeMap::new();

    let cpu_limit = match (r.cpu_quota, r.cpu_period) {
        (Some(q), Some(p)) if q > 0 && p > 0 => Some(milli_cpu(
            ceil_div(q as i128 * 1000, p as i128),
            "CPU quota",
            name,
        )?),
        _ => None,
    };
    let cpu_request = match r.cpu_shares {
        Some(s) if s > MIN_SHARES => Some(milli_cpu(
            ceil_div(s as i128 * 1000, 1024),
            "CPU shares",
            name,
        )?),
        _ => None,
    };
    let mem_limit = r.memory_limit.filter(|l| *l > 0).map(bytes_q);
    let mem_min = match r.unified.get("memory.min") {
        None => None,
        Some(v) => {
            let b: i64 = v.trim().parse().map_err(|_| {
                format!("container {name:?}: unified memory.min {v:?} is not a byte count")
            })?;
            (b > 0).then(|| bytes_q(b))
        }
    };
    for h in &r.hugepage_limits {
        if h.limit == 0 {
            continue;
        }
        let res =
            hugepage_resource_name(&h.page_size).map_err(|e| format!("container {name:?}: {e}"))?;
        let b = i64::try_from(h.limit)
            .map_err(|_| format!("container {name:?}: {res} limit out of range"))?;
        limits.insert(res.clone(), bytes_q(b));
        requests.insert(res, bytes_q(b));
    }

    match qos {
        Some(QosClass::Guaranteed) => {
            let cpu = cpu_limit.or(cpu_request).ok_or_else(|| {
                format!(
                    "container {name:?} of a Guaranteed pod has neither a CPU quota nor CPU shares"
                )
            })?;
            let mem = mem_limit.ok_or_else(|| {
                format!("container {name:?} of a Guaranteed pod has no memory limit")
            })?;
            limits.insert("cpu".into(), cpu.clone());
            requests.insert("cpu".into(), cpu);
            limits.insert("memory".into(), mem.clone());
            requests.insert("memory".into(), mem);
        }
        Some(QosClass::BestEffort) => {
            if cpu_limit.is_some()
                || cpu_request.is_some()
                || mem_limit.is_some()
                || mem_min.is_some()
            {
                return Err(format!(
                    "container {name:?} of a BestEffort pod has CPU or memory resources"
                ));
            }
        }
        Some(QosClass::Burstable) | None => {
            if let Some(q) = cpu_limit {
                limits.insert("cpu".into(), q);
            }
            if let Some(q) = cpu_request {
                requests.insert("cpu".into(), q);
            }
            if let Some(q) = &mem_limit {
                limits.insert("memory".into(), q.clone());
            }
            match (mem_min, &mem_limit) {
                (Some(q), _) => {
                    requests.insert("memory".into(), q);
                }
                // QoS unknown: assume the API server's defaulting (request = limit).
                (None, Some(l)) if qos.is_none() => {
                    requests.insert("memory".into(), l.clone());
                }
                _ => {}
            }
        }
    }

    if let Some(o) = overrides {
        for (res, q) in o {
            requests.insert(res.clone(), q.clone());
        }
    }
    for (res, req) in &requests {
        if let Some(lim) = limits.get(res) {
            if req.cmp_value(lim) == std::cmp::Ordering::Greater {
                return Err(format!(
                    "container {name:?}: {res} request {req} exceeds its limit {lim}"
                ));
            }
        }
    }
    Ok(ContainerInfo {
        name: c.name.clone(),
        init: false,
        restartable: false,
        requests,
        limits,
    })
}

/// Builds the managers' view of a pod from NRI's pod and the given containers of it
/// (normally: those created so far, the new one included). Containers named in
/// `nmm.io/init-containers` come first, in that order; the others keep their order.
///
/// Refuses, with a message, pods that are malformed or contradict themselves: no UID,
/// empty or duplicate container names, unparsable annotations or page sizes, a
/// request above its limit, a Guaranteed cgroup with containers lacking CPU or
/// memory limits, a BestEffort cgroup with CPU or memory resources, or a pod UID
/// that differs from the one in its cgroup.
pub fn pod_info_from_nri(pod: &PodSandbox, containers: &[Container]) -> Result<PodInfo, String> {
    let who = format!(
        "pod {}/{}",
        clip(&pod.namespace, limits::MAX_NAME_BYTES),
        clip(&pod.name, limits::MAX_NAME_BYTES)
    );
    check_sizes(pod, containers).map_err(|e| format!("{who}: {e}"))?;
    let cg = parse_kubepods_cgroup(&pod.cgroup_parent).or_else(|| {
        containers
            .iter()
            .find_map(|c| parse_kubepods_cgroup(&c.cgroups_path))
    });
    let cg_uid = cg.as_ref().and_then(|(_, u)| u.clone());
    let uid = match (pod.uid.as_str(), &cg_uid) {
        ("", Some(u)) => u.clone(),
        ("", None) => return Err(format!("{who}: no pod UID")),
        (u, Some(c)) if u != c => {
            return Err(format!(
                "{who}: UID {u:?} differs from the UID {c:?} of its cgroup"
            ))
        }
        (u, _) => u.to_string(),
    };
    let qos_hint = cg.map(|(q, _)| q);
    let overrides = parse_overrides(pod).map_err(|e| format!("{who}: {e}"))?;
    let init = name_list(pod, INIT_CONTAINERS_ANNOTATION).map_err(|e| format!("{who}: {e}"))?;
    let sidecars =
        name_list(pod, SIDECAR_CONTAINERS_ANNOTATION).map_err(|e| format!("{who}: {e}"))?;
    // Position of each init container (first mention wins), for O(log n) lookups.
    let mut init_pos: BTreeMap<&str, usize> = BTreeMap::new();
    for (i, n) in init.iter().enumerate() {
        init_pos.entry(n.as_str()).or_insert(i);
    }
    let sidecar_set: std::collections::BTreeSet<&str> =
        sidecars.iter().map(String::as_str).collect();
    if let Some(s) = sidecars.iter().find(|s| !init_pos.contains_key(s.as_str())) {
        return Err(format!(
            "{who}: {SIDECAR_CONTAINERS_ANNOTATION} names {s:?}, which is not in {INIT_CONTAINERS_ANNOTATION}"
        ));
    }

    let mut infos = Vec::with_capacity(containers.len());
    let mut seen = std::collections::BTreeSet::new();
    for c in containers {
        if c.name.is_empty() {
            return Err(format!("{who}: container {:?} has no name", c.id));
        }
        if !seen.insert(c.name.as_str()) {
            return Err(format!("{who}: two containers named {:?}", c.name));
        }
        let mut info = container_info(c, qos_hint, overrides.get(&c.name))
            .map_err(|e| format!("{who}: {e}"))?;
        info.init = init_pos.contains_key(c.name.as_str());
        info.restartable = sidecar_set.contains(c.name.as_str());
        infos.push(info);
    }
    infos.sort_by_key(|i| {
        if i.init {
            init_pos.get(i.name.as_str()).copied().unwrap_or(usize::MAX)
        } else {
            usize::MAX
        }
    });

    let computed = compute_qos(&infos);
    let qos = match qos_hint {
        Some(q @ (QosClass::Guaranteed | QosClass::BestEffort))
            if computed != q && !infos.is_empty() =>
        {
            return Err(format!(
                "{who}: its cgroup says {} but its resources make it {}",
                q.as_str(),
                computed.as_str()
            ))
        }
        Some(q) => q,
        None => computed,
    };
    Ok(PodInfo {
        uid,
        name: pod.name.clone(),
        namespace: if pod.namespace.is_empty() {
            "default".into()
        } else {
            pod.namespace.clone()
        },
        qos,
        containers: infos,
    })
}
