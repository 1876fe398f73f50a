//! The Node Allocatable reservation the container manager computes and hands to the CPU
//! and Memory Managers: systemReserved + kubeReserved + the hard-eviction reservation.

use crate::kubelet_config::KubeletConfig;
use crate::quantity::Quantity;
use std::collections::BTreeMap;

/// `parseResourceList` of `cmd/kubelet/app/server.go` for kubeReserved/systemReserved.
fn parse_reserved(
    field: &str,
    m: &Option<BTreeMap<String, String>>,
) -> Result<BTreeMap<String, Quantity>, String> {
    let mut out = BTreeMap::new();
    for (k, v) in m.iter().flatten() {
        match k.as_str() {
            "cpu" | "memory" | "ephemeral-storage" | "pid" => {
                let q = Quantity::parse(v).map_err(|e| {
                    format!("{field}: failed to parse quantity \"{v}\" for \"{k}\" resource: {e}")
                })?;
                if q.sign() < 0 {
                    return Err(format!(
                        "{field}: resource quantity for \"{k}\" cannot be negative: {v}"
                    ));
                }
                out.insert(k.clone(), q);
            }
            _ => return Err(format!("cannot reserve \"{k}\" resource")),
        }
    }
    Ok(out)
}

/// The reservation per resource; resources whose sum is zero are left out. The sum starts
/// as a zero DecimalSI quantity and adds system, kube, then eviction, so it carries the
/// format of the first non-zero part (this shows in the memory manager's messages).
pub fn node_allocatable_reservation(
    config: &KubeletConfig,
    memory_capacity: u64,
) -> Result<BTreeMap<String, Quantity>, String> {
    let system = parse_reserved("systemReserved", &config.system_reserved)?;
    let kube = parse_reserved("kubeReserved", &config.kube_reserved)?;
    let mut eviction: BTreeMap<String, Quantity> = BTreeMap::new();
    if let Some(v) = config.eviction_hard().get("memory.available") {
        let q = if let Some(p) = v.strip_suffix('%') {
            let pct: f64 = p.trim().parse().map_err(|_| {
                format!("evictionHard: memory.available: invalid percentage {v:?}; write e.g. \"5%\" or a quantity like 100Mi")
            })?;
            Quantity::from_i64(
                (memory_capacity as f64 * (pct / 100.0)) as i64,
                crate::quantity::Format::BinarySI,
            )
        } else {
            Quantity::parse(v).map_err(|e| format!("evictionHard: memory.available: {v:?}: {e}"))?
        };
        eviction.insert("memory".to_string(), q);
    }
    let mut out: BTreeMap<String, Quantity> = BTreeMap::new();
    for part in [&system, &kube, &eviction] {
        for (k, q) in part {
            out.entry(k.clone()).or_insert_with(Quantity::zero).add(q);
        }
    }
    out.retain(|_, q| !q.is_zero());
    Ok(out)
}
