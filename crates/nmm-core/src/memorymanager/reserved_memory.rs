//! `getSystemReservedMemory`: `reservedMemory` checked against the machine and the Node
//! Allocatable reservation (`validateReservedMemory`), then turned into bytes per node
//! (`convertReserved`).

use super::policy_static::{is_memory_resource, SystemReserved};
use crate::kubelet_config::MemoryReservation;
use crate::machine::Machine;
use crate::quantity::Quantity;
use std::collections::BTreeMap;

/// A mismatch between `reservedMemory` and Node Allocatable for one resource, with the
/// numbers a fix needs.
#[derive(Debug, Clone)]
pub struct ReservedMismatch {
    pub resource: String,
    pub reserved_sum: Quantity,
    pub node_allocatable: Quantity,
}

impl ReservedMismatch {
    pub fn message(&self) -> String {
        format!(
            "the total amount \"{}\" of type \"{}\" is not equal to the value \"{}\" determined by Node Allocatable feature",
            self.reserved_sum, self.resource, self.node_allocatable
        )
    }
}

#[derive(Debug, Clone)]
pub enum ReservedMemoryError {
    UnknownNode(i32),
    Mismatch(Box<ReservedMismatch>),
    NotInt64,
}

impl std::fmt::Display for ReservedMemoryError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReservedMemoryError::UnknownNode(n) => write!(
                f,
                "the reserved memory configuration references a NUMA node {n} that does not exist on this machine"
            ),
            ReservedMemoryError::Mismatch(m) => f.write_str(&m.message()),
            ReservedMemoryError::NotInt64 => {
                f.write_str("could not covert a variable of type Quantity to int64")
            }
        }
    }
}

fn fresh(q: &Quantity) -> Quantity {
    let mut z = Quantity::zero();
    z.add(q);
    z
}

/// Every mismatch (the kubelet reports the first one it meets in Go map order; we check
/// in resource-name order and report all, the first being the one `nmm simulate` prints).
pub fn reserved_memory_mismatches(
    reservations: &[(i32, String, Quantity)],
    node_allocatable: &BTreeMap<String, Quantity>,
) -> Vec<ReservedMismatch> {
    let mut sums: BTreeMap<String, Quantity> = BTreeMap::new();
    for (_, r, q) in reservations {
        let mut total = q.clone();
        if let Some(prev) = sums.get(r) {
            total.add(prev);
        }
        sums.insert(r.clone(), total);
    }
    let mut types: Vec<String> = sums.keys().cloned().collect();
    for k in node_allocatable.keys() {
        if is_memory_resource(k) && !types.contains(k) {
            types.push(k.clone());
        }
    }
    types.sort();
    let mut out = Vec::new();
    for t in types {
        let sum = sums.get(&t).cloned().unwrap_or_else(Quantity::zero);
        let na = node_allocatable
            .get(&t)
            .cloned()
            .unwrap_or_else(Quantity::zero);
        if sum.cmp_value(&na) != std::cmp::Ordering::Equal {
            out.push(ReservedMismatch {
                resource: t,
                reserved_sum: fresh(&sum),
                node_allocatable: fresh(&na),
            });
        }
    }
    out
}

/// Flattens `reservedMemory` to (node, resource, quantity) in file order. Quantity texts
/// that do not parse are a config error the caller reports with the field name.
pub fn flatten(list: &[MemoryReservation]) -> Result<Vec<(i32, String, Quantity)>, String> {
    let mut out = Vec::new();
    for (i, e) in list.iter().enumerate() {
        for (r, v) in &e.limits {
            let q = Quantity::parse(v.trim())
                .map_err(|err| format!("reservedMemory[{i}].limits.{r}: {v:?}: {err}"))?;
            out.push((e.numa_node, r.clone(), q));
        }
    }
    Ok(out)
}

/// `getSystemReservedMemory`.
pub fn system_reserved_memory(
    machine: &Machine,
    reservations: &[(i32, String, Quantity)],
    node_allocatable: &BTreeMap<String, Quantity>,
) -> Result<SystemReserved, ReservedMemoryError> {
    for (n, _, _) in reservations {
        if *n < 0 || machine.node(*n as u32).is_none() {
            return Err(ReservedMemoryError::UnknownNode(*n));
        }
    }
    if let Some(m) = reserved_memory_mismatches(reservations, node_allocatable)
        .into_iter()
        .next()
    {
        return Err(ReservedMemoryError::Mismatch(Box::new(m)));
    }
    let mut out: SystemReserved = machine
        .nodes
        .iter()
        .map(|n| (n.id, BTreeMap::new()))
        .collect();
    for (n, r, q) in reservations {
        let v = q.as_int64().ok_or(ReservedMemoryError::NotInt64)?;
        out.entry(*n as u32)
            .or_default()
            .insert(r.clone(), v as u64);
    }
    Ok(out)
}
