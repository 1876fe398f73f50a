//! Restart despite memory drift, as KEP-6232 designs it (kubernetes PRs 140473 and 142121,
//! not in any kubelet release yet).
//!
//! A node's per-NUMA `MemTotal` moves between boots (KASLR places the kernel image on
//! another node; tens of MiB), and kubelet v1.32 then refuses to start: "the expected
//! machine state is different from the real one". With the feature gate
//! `MemoryManagerDriftTolerance` and `memoryManagerPolicyOptions:
//! {memory-drift-tolerance: VALUE}` a drifted state is accepted when
//!
//! * the topology is identical: the same NUMA nodes, NUMA groups (cells) and assignment
//!   counts, the same memory types per node;
//! * SystemReserved is identical for every node and type;
//! * hugepage totals and allocatables are exact;
//! * each node's regular-memory TotalMemSize and Allocatable are within the bound.
//!
//! Per-node Reserved is not compared (the split of a cross-NUMA assignment may move):
//! the assignments are re-derived from the stored blocks on the current machine, and an
//! assignment that no longer fits fails the start whatever the bound. On success the books
//! are re-based on the current machine (the caller rewrites the checkpoint).
//!
//! VALUE: unset or `off` (the exact comparison), `auto` (the span of the kernel image in
//! `/proc/iomem` plus 64 MiB; without readable addresses the exact comparison, saying
//! why), or a non-negative quantity (`128Mi`).

use super::policy_static::{replay_assignments_checked, MEMORY};
use super::state::{Assignments, MachineState};
use crate::kubelet_config::KubeletConfig;
use crate::quantity::{format_binary_bytes, Quantity};
use std::collections::BTreeMap;

/// The policy option's name.
pub const DRIFT_TOLERANCE_OPTION: &str = "memory-drift-tolerance";
/// The feature gate it needs.
pub const DRIFT_TOLERANCE_GATE: &str = "MemoryManagerDriftTolerance";
/// Added to the kernel image span under `auto`.
pub const AUTO_GRACE_BYTES: u64 = 64 << 20;

/// The configured value of `memory-drift-tolerance`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DriftSetting {
    /// Unset or `off`: the exact comparison of kubelet v1.32.
    #[default]
    Off,
    /// `auto`: from `/proc/iomem`.
    Auto,
    /// An explicit bound in bytes.
    Bytes(u64),
}

/// The Memory Manager's policy options (`memoryManagerPolicyOptions`), checked as the
/// kubelet checks its managers' options at start-up. The feature gate is checked by
/// configuration validation (`validation.rs`).
pub fn parse_policy_options(config: &KubeletConfig) -> Result<DriftSetting, String> {
    let Some(opts) = config
        .memory_manager_policy_options
        .as_ref()
        .filter(|o| !o.is_empty())
    else {
        return Ok(DriftSetting::Off);
    };
    let policy = config.memory_manager_policy();
    if policy != "Static" {
        return Err(format!(
            "memory manager policy options are only supported with the \"Static\" policy, not \"{policy}\""
        ));
    }
    let mut setting = DriftSetting::Off;
    for (name, value) in opts {
        if name != DRIFT_TOLERANCE_OPTION {
            return Err(format!("unknown Memory Manager Policy option: {name:?}"));
        }
        setting = parse_value(value).map_err(|e| format!("bad value for option {name:?}: {e}"))?;
    }
    Ok(setting)
}

fn parse_value(v: &str) -> Result<DriftSetting, String> {
    match v.trim() {
        "off" => return Ok(DriftSetting::Off),
        "auto" => return Ok(DriftSetting::Auto),
        _ => {}
    }
    let q = Quantity::parse(v.trim()).map_err(|e| {
        format!("{v:?} is neither \"off\", \"auto\" nor a quantity such as \"128Mi\" ({e})")
    })?;
    if q.sign() < 0 {
        return Err(format!("{v:?} is negative; give a size such as \"128Mi\""));
    }
    match q.as_int64() {
        Some(b) => Ok(DriftSetting::Bytes(b as u64)),
        None => Err(format!(
            "{v:?} is not a whole number of bytes that fits in 64 bits"
        )),
    }
}

/// The span of the kernel image in a `/proc/iomem` text: from the lowest start to the
/// highest end of the `Kernel code`, `Kernel data` and `Kernel bss` lines. `None` when
/// there are none, or when every address reads 0 (non-root readers see zeroes).
pub fn kernel_image_span(iomem: &str) -> Option<u64> {
    let mut lo = u64::MAX;
    let mut hi = 0u64;
    let mut any = false;
    for line in iomem.lines() {
        let Some((range, name)) = line.split_once(" : ") else {
            continue;
        };
        if !matches!(name.trim(), "Kernel code" | "Kernel data" | "Kernel bss") {
            continue;
        }
        let Some((a, b)) = range.trim().split_once('-') else {
            continue;
        };
        let (Ok(a), Ok(b)) = (u64::from_str_radix(a, 16), u64::from_str_radix(b, 16)) else {
            continue;
        };
        if a == 0 && b == 0 {
            continue;
        }
        if b < a {
            continue;
        }
        any = true;
        lo = lo.min(a);
        hi = hi.max(b);
    }
    // iomem ranges are inclusive.
    any.then(|| (hi - lo).saturating_add(1))
}

/// The bound in effect and where it comes from (for logs and metrics).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tolerance {
    /// 0: the exact comparison.
    pub bound: u64,
    /// Which option set the bound, in words.
    pub source: String,
}

/// The bound for a setting; `iomem` is the text of `/proc/iomem` (read by the caller),
/// used by `auto` only.
pub fn resolve(setting: DriftSetting, iomem: Option<&str>) -> Tolerance {
    match setting {
        DriftSetting::Off => Tolerance {
            bound: 0,
            source: format!("{DRIFT_TOLERANCE_OPTION} off: exact comparison"),
        },
        DriftSetting::Bytes(b) => Tolerance {
            bound: b,
            source: format!(
                "{DRIFT_TOLERANCE_OPTION} {}: explicit bound",
                format_binary_bytes(b)
            ),
        },
        DriftSetting::Auto => match iomem.and_then(kernel_image_span) {
            Some(span) => {
                let bound = span.saturating_add(AUTO_GRACE_BYTES);
                Tolerance {
                    bound,
                    source: format!(
                        "{DRIFT_TOLERANCE_OPTION} auto: kernel image span {span} bytes from /proc/iomem + 64Mi grace = {bound} bytes"
                    ),
                }
            }
            None => Tolerance {
                bound: 0,
                source: format!(
                    "{DRIFT_TOLERANCE_OPTION} auto: /proc/iomem {} no Kernel code/data/bss addresses (zeroed when not read as root); exact comparison. Set {DRIFT_TOLERANCE_OPTION} to a quantity such as 128Mi to set the bound",
                    if iomem.is_some() { "has" } else { "could not be read, so" }
                ),
            },
        },
    }
}

/// What a restart found: the bound in effect and, per NUMA node, the regular memory's
/// TotalMemSize on this machine minus the one in the checkpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DriftReport {
    pub tolerance: Tolerance,
    pub drift: BTreeMap<u32, i128>,
    /// The state was accepted only thanks to the tolerance, and re-based.
    pub rebased: bool,
}

/// Observed drift of regular memory per node (current minus stored).
pub fn observed_drift(stored: &MachineState, current: &MachineState) -> BTreeMap<u32, i128> {
    let total = |ms: &MachineState, id: &u32| {
        ms.get(id)
            .and_then(|n| n.memory_map.get(MEMORY))
            .map_or(0, |t| t.total as i128)
    };
    current
        .keys()
        .filter(|id| stored.contains_key(id))
        .map(|id| (*id, total(current, id) - total(stored, id)))
        .collect()
}

/// KEP-6232's acceptance rule. `default` is the current machine's state with nothing
/// allocated; returns the re-based state (the stored blocks replayed onto `default`), or
/// why the drifted state is refused.
pub fn accept_drifted_state(
    stored: &MachineState,
    default: MachineState,
    assignments: &Assignments,
    bound: u64,
) -> Result<MachineState, String> {
    let different =
        || "[memorymanager] the expected machine state is different from the real one".to_string();
    if stored.len() != default.len() || stored.keys().any(|k| !default.contains_key(k)) {
        return Err(different());
    }
    let expected = replay_assignments_checked(default, assignments)?;
    for (id, s) in stored {
        let e = &expected[id];
        let mut sc = s.cells.clone();
        let mut ec = e.cells.clone();
        sc.sort_unstable();
        ec.sort_unstable();
        if sc != ec
            || s.number_of_assignments != e.number_of_assignments
            || s.memory_map.len() != e.memory_map.len()
        {
            return Err(different());
        }
        for (r, st) in &s.memory_map {
            let Some(et) = e.memory_map.get(r) else {
                return Err(different());
            };
            if st.system_reserved != et.system_reserved {
                return Err(different());
            }
            let ok = if r == MEMORY {
                st.total.abs_diff(et.total) <= bound
                    && st.allocatable.abs_diff(et.allocatable) <= bound
            } else {
                st.total == et.total && st.allocatable == et.allocatable
            };
            if !ok {
                return Err(different());
            }
        }
    }
    Ok(expected)
}
