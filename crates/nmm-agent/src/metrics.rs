//! Prometheus metrics (OpenMetrics text exposition, which Prometheus scrapes natively).
//!
//! Where the kubelet has a metric with the same meaning, nmm uses the kubelet's name
//! without its `kubelet_` subsystem prefix (so that a Prometheus scraping both keeps the
//! two series apart by name, not only by `job`):
//!
//! | metric | labels | meaning |
//! | --- | --- | --- |
//! | `topology_manager_admission_requests_total` | | pod admissions asked of the Topology Manager |
//! | `topology_manager_admission_errors_total` | | admissions it refused (no aligned hint, or an `Allocate` failure) |
//! | `topology_manager_admission_duration_ms` | | histogram of the admission time in milliseconds (the kubelet's buckets) |
//! | `cpu_manager_pinning_requests_total` / `cpu_manager_pinning_errors_total` | | static policy `Allocate` calls for containers with exclusive CPUs / failed ones |
//! | `memory_manager_pinning_requests_total` / `memory_manager_pinning_errors_total` | | static policy `Allocate` calls for Guaranteed pods' containers / failed ones |
//!
//! and nmm's own:
//!
//! | metric | labels | meaning |
//! | --- | --- | --- |
//! | `nmm_numa_memory_total_bytes` | `numa_node`, `resource` | Memory Manager table: total |
//! | `nmm_numa_memory_system_reserved_bytes` | same | reserved for the system (`reservedMemory`) |
//! | `nmm_numa_memory_allocatable_bytes` | same | allocatable to containers |
//! | `nmm_numa_memory_assigned_bytes` | same | assigned to containers now |
//! | `nmm_numa_memory_reserved_bytes` | same | deprecated alias of `..._assigned_bytes` (the checkpoint's `Reserved`) |
//! | `nmm_numa_memory_free_bytes` | same | allocatable and not assigned |
//! | `nmm_pods` | | live pods in the books |
//! | `nmm_exclusive_cpus` / `nmm_shared_pool_cpus` | | CPUs assigned exclusively / left in the shared pool |
//! | `nmm_admissions_total` | | pods admitted |
//! | `nmm_admission_rejections_total` | `reason` | pods rejected, by the kubelet's reason (`TopologyAffinityError`, ...) |
//! | `nmm_admission_errors_total` | `reason` | admission requests refused before the managers saw them (`MalformedPod`, `MissingUid`, `DuplicateUid`, `Internal`) |
//! | `nmm_admission_duration_seconds` | | histogram of the managers' admission time |
//! | `nmm_checkpoint_writes_total` / `nmm_checkpoint_write_errors_total` | | commits of the state directory |
//! | `nmm_cgroup_write_errors_total` | | failed cpuset writes |
//! | `nmm_device_checkpoint_reads_total` | | versions of the kubelet's device checkpoint read and verified (the PodResources device view) |
//! | `nmm_device_checkpoint_read_errors_total` | | versions of it that could not be used (bad checksum, malformed, too large, unreadable); the last good view was kept |
//! | `nmm_nri_connected` | | 1 while registered with the runtime over NRI (and synchronized), else 0 |
//! | `nmm_nri_reconnects_total` | | connections to the runtime lost or refused, each followed by a new attempt |
//! | `nmm_reconcile_pods_total` | `source`, `outcome` | pods the books were reconciled with: `source` = `startup`, `nri-sync`, `cri` (the runtime's CRI lists no longer have them), `outcome` = `admitted`, `rejected`, `removed` |
//! | `nmm_cri_connected` | | 1 while the agent's last CRI list of the runtime's pods succeeded, else 0 (and 0 with `--cri-socket off`) |
//! | `nmm_cri_list_errors_total` | | CRI connections or lists that failed (each retried at the next list) |
//! | `nmm_unsolicited_updates_total` | `outcome` | containers' cpuset updates sent unprompted (`UpdateContainers`, the shared pool moved): `applied`, `failed` (by the runtime, or not delivered; sent again later) |
//! | `nmm_memory_drift_tolerance_bytes` | | KEP-6232 `memory-drift-tolerance` bound in effect at start (0: exact comparison) |
//! | `nmm_memory_drift_bytes` | `numa_node` | regular memory TotalMemSize now minus in the checkpoint at start (signed) |
//!
//! `resource` is the kubelet's resource name: `memory`, `hugepages-2Mi`, `hugepages-1Gi`.
//!
//! ## Adding a metric
//!
//! Either add a field to [`Metrics`] and register it in [`Metrics::new`] (one
//! `reg(...)` line; the section comments say where), or keep the metric in your own
//! module and register it once with [`Metrics::register`], e.g.
//!
//! ```
//! use prometheus_client::metrics::counter::Counter;
//! let m = nmm_agent::metrics::Metrics::new();
//! let drift: Counter = Counter::default();
//! m.register("nmm_memory_drift_checks", "Drift checks run", drift.clone());
//! drift.inc();
//! assert!(m.encode().contains("nmm_memory_drift_checks_total 1"));
//! ```
//!
//! Counters are registered without `_total`; the encoder appends it.

use nmm_core::cpumanager::policy_static::guaranteed_cpus;
use nmm_core::memorymanager::state::MachineState;
use nmm_core::node::AdmitResult;
use nmm_core::pod::{PodInfo, QosClass};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::{Metric, Registry};
use std::sync::Mutex;
use std::time::Duration;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct MemoryLabels {
    pub numa_node: String,
    pub resource: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct NumaLabels {
    pub numa_node: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabels {
    pub reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReconcileLabels {
    /// What the books were reconciled with: `startup`, `nri-sync`, ...
    pub source: String,
    /// `admitted`, `rejected` or `removed`.
    pub outcome: String,
}

/// Which policies the node runs (what decides whether the kubelet's pinning counters
/// count a container).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Policies {
    pub cpu_static: bool,
    pub memory_static: bool,
    pub topology_none: bool,
}

/// The `Allocate` calls the kubelet made for one admission, per provider.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pinning {
    pub cpu_requests: u64,
    pub cpu_errors: u64,
    pub memory_requests: u64,
    pub memory_errors: u64,
}

impl Pinning {
    /// Counts as the kubelet v1.32 counts: the static CPU policy's `Allocate` counts a
    /// request for a container with an integer CPU request of a Guaranteed pod, the
    /// static Memory Manager policy's for every container of a Guaranteed pod; an error
    /// when that `Allocate` failed. `Allocate` runs for the containers the Topology
    /// Manager stored a hint for (every container up to the failing one under policy
    /// `none`), CPU first, then memory; a failed CPU `Allocate` stops the pod.
    pub fn of(pod: &PodInfo, r: &AdmitResult, p: Policies) -> Pinning {
        let mut out = Pinning::default();
        for (c, t) in pod.containers.iter().zip(&r.trace.containers) {
            let reached = t.affinity.is_some() || p.topology_none;
            if !reached {
                break;
            }
            let cpu_failed = t.failed_provider == Some("cpu");
            if p.cpu_static && guaranteed_cpus(pod, c) > 0 {
                out.cpu_requests += 1;
                out.cpu_errors += u64::from(cpu_failed);
            }
            if p.memory_static && !cpu_failed && pod.qos == QosClass::Guaranteed {
                out.memory_requests += 1;
                out.memory_errors += u64::from(t.failed_provider == Some("memory"));
            }
            if t.failed_provider.is_some() {
                break;
            }
        }
        out
    }
}

pub struct Metrics {
    registry: Mutex<Registry>,
    // --- kubelet names ---
    pub topology_admission_requests: Counter,
    pub topology_admission_errors: Counter,
    pub topology_admission_duration_ms: Histogram,
    pub cpu_pinning_requests: Counter,
    pub cpu_pinning_errors: Counter,
    pub memory_pinning_requests: Counter,
    pub memory_pinning_errors: Counter,
    // --- per-NUMA memory ---
    pub memory_total: Family<MemoryLabels, Gauge>,
    pub memory_system_reserved: Family<MemoryLabels, Gauge>,
    pub memory_allocatable: Family<MemoryLabels, Gauge>,
    pub memory_assigned: Family<MemoryLabels, Gauge>,
    /// Deprecated alias of `memory_assigned` (kept for dashboards built on it).
    pub memory_reserved: Family<MemoryLabels, Gauge>,
    pub memory_free: Family<MemoryLabels, Gauge>,
    // --- books ---
    pub pods: Gauge,
    pub exclusive_cpus: Gauge,
    pub shared_pool_cpus: Gauge,
    pub admissions: Counter,
    pub rejections: Family<ReasonLabels, Counter>,
    pub errors: Family<ReasonLabels, Counter>,
    pub admission_duration: Histogram,
    // --- state directory and cgroups ---
    pub checkpoint_writes: Counter,
    pub checkpoint_write_errors: Counter,
    pub cgroup_write_errors: Counter,
    // --- the kubelet's device checkpoint ---
    pub device_checkpoint_reads: Counter,
    pub device_checkpoint_read_errors: Counter,
    // --- runtime connection and reconcile ---
    pub nri_connected: Gauge,
    pub nri_reconnects: Counter,
    pub reconcile_pods: Family<ReconcileLabels, Counter>,
    pub cri_connected: Gauge,
    pub cri_list_errors: Counter,
    pub unsolicited_updates: Family<OutcomeLabels, Counter>,
    // --- KEP-6232 memory drift ---
    pub memory_drift_tolerance: Gauge,
    pub memory_drift: Family<NumaLabels, Gauge>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

fn gauge_value(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

type Registration = Box<dyn FnOnce(&mut Registry, &str, &str)>;

/// Defers a registration (lets `Metrics::new` list its metrics in one closure).
fn boxed(metric: impl Metric) -> Registration {
    Box::new(move |r: &mut Registry, name: &str, help: &str| r.register(name, help, metric))
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let m = Metrics {
            registry: Mutex::new(Registry::default()),
            topology_admission_requests: Counter::default(),
            topology_admission_errors: Counter::default(),
            // The kubelet's buckets: ExponentialBuckets(.05, 2, 15) ms.
            topology_admission_duration_ms: Histogram::new(exponential_buckets(0.05, 2.0, 15)),
            cpu_pinning_requests: Counter::default(),
            cpu_pinning_errors: Counter::default(),
            memory_pinning_requests: Counter::default(),
            memory_pinning_errors: Counter::default(),
            memory_total: Family::default(),
            memory_system_reserved: Family::default(),
            memory_allocatable: Family::default(),
            memory_assigned: Family::default(),
            memory_reserved: Family::default(),
            memory_free: Family::default(),
            pods: Gauge::default(),
            exclusive_cpus: Gauge::default(),
            shared_pool_cpus: Gauge::default(),
            admissions: Counter::default(),
            rejections: Family::default(),
            errors: Family::default(),
            // 100µs .. ~3.3s
            admission_duration: Histogram::new(exponential_buckets(0.0001, 2.0, 16)),
            checkpoint_writes: Counter::default(),
            checkpoint_write_errors: Counter::default(),
            cgroup_write_errors: Counter::default(),
            device_checkpoint_reads: Counter::default(),
            device_checkpoint_read_errors: Counter::default(),
            nri_connected: Gauge::default(),
            nri_reconnects: Counter::default(),
            reconcile_pods: Family::default(),
            cri_connected: Gauge::default(),
            cri_list_errors: Counter::default(),
            unsolicited_updates: Family::default(),
            memory_drift_tolerance: Gauge::default(),
            memory_drift: Family::default(),
        };
        let reg = |name: &str, help: &str, metric: Registration| {
            metric(
                &mut m.registry.lock().unwrap_or_else(|e| e.into_inner()),
                name,
                help,
            )
        };
        // kubelet names
        reg(
            "topology_manager_admission_requests",
            "Number of admission requests where resources have to be aligned (kubelet name)",
            boxed(m.topology_admission_requests.clone()),
        );
        reg(
            "topology_manager_admission_errors",
            "Number of admission request failures where resources could not be aligned (kubelet name)",
            boxed(m.topology_admission_errors.clone()),
        );
        reg(
            "topology_manager_admission_duration_ms",
            "Duration in milliseconds to serve a pod admission request (kubelet name)",
            boxed(m.topology_admission_duration_ms.clone()),
        );
        reg(
            "cpu_manager_pinning_requests",
            "The number of cpu core allocations which required pinning (kubelet name)",
            boxed(m.cpu_pinning_requests.clone()),
        );
        reg(
            "cpu_manager_pinning_errors",
            "The number of cpu core allocations which required pinning failed (kubelet name)",
            boxed(m.cpu_pinning_errors.clone()),
        );
        reg(
            "memory_manager_pinning_requests",
            "The number of memory pages allocations which required pinning (kubelet name)",
            boxed(m.memory_pinning_requests.clone()),
        );
        reg(
            "memory_manager_pinning_errors",
            "The number of memory pages allocations which required pinning that failed (kubelet name)",
            boxed(m.memory_pinning_errors.clone()),
        );
        // per-NUMA memory
        reg(
            "nmm_numa_memory_total_bytes",
            "Memory Manager: total memory of the NUMA node, by memory type",
            boxed(m.memory_total.clone()),
        );
        reg(
            "nmm_numa_memory_system_reserved_bytes",
            "Memory Manager: memory of the NUMA node reserved for the system (reservedMemory)",
            boxed(m.memory_system_reserved.clone()),
        );
        reg(
            "nmm_numa_memory_allocatable_bytes",
            "Memory Manager: memory of the NUMA node allocatable to containers",
            boxed(m.memory_allocatable.clone()),
        );
        reg(
            "nmm_numa_memory_assigned_bytes",
            "Memory Manager: memory of the NUMA node assigned to containers",
            boxed(m.memory_assigned.clone()),
        );
        reg(
            "nmm_numa_memory_reserved_bytes",
            "Deprecated, use nmm_numa_memory_assigned_bytes: memory of the NUMA node assigned to containers",
            boxed(m.memory_reserved.clone()),
        );
        reg(
            "nmm_numa_memory_free_bytes",
            "Memory Manager: allocatable memory of the NUMA node not assigned to any container",
            boxed(m.memory_free.clone()),
        );
        // books
        reg("nmm_pods", "Live pods in the books", boxed(m.pods.clone()));
        reg(
            "nmm_exclusive_cpus",
            "CPUs assigned exclusively to containers (CPU Manager static policy)",
            boxed(m.exclusive_cpus.clone()),
        );
        reg(
            "nmm_shared_pool_cpus",
            "CPUs in the shared pool (CPU Manager static policy default set)",
            boxed(m.shared_pool_cpus.clone()),
        );
        reg(
            "nmm_admissions",
            "Pods admitted",
            boxed(m.admissions.clone()),
        );
        reg(
            "nmm_admission_rejections",
            "Pods rejected by the managers, by reason",
            boxed(m.rejections.clone()),
        );
        reg(
            "nmm_admission_errors",
            "Admission requests refused before reaching the managers, by reason",
            boxed(m.errors.clone()),
        );
        reg(
            "nmm_admission_duration_seconds",
            "Time the Topology, CPU and Memory Managers took to decide an admission",
            boxed(m.admission_duration.clone()),
        );
        // state directory and cgroups
        reg(
            "nmm_checkpoint_writes",
            "Commits of the state directory (both checkpoints and the pod record)",
            boxed(m.checkpoint_writes.clone()),
        );
        reg(
            "nmm_checkpoint_write_errors",
            "Failed commits of the state directory",
            boxed(m.checkpoint_write_errors.clone()),
        );
        reg(
            "nmm_cgroup_write_errors",
            "Failed cpuset.cpus / cpuset.mems writes",
            boxed(m.cgroup_write_errors.clone()),
        );
        // the kubelet's device checkpoint
        reg(
            "nmm_device_checkpoint_reads",
            "Versions of the kubelet's device checkpoint read and verified for PodResources",
            boxed(m.device_checkpoint_reads.clone()),
        );
        reg(
            "nmm_device_checkpoint_read_errors",
            "Versions of the kubelet's device checkpoint that could not be used (the last good device view was kept)",
            boxed(m.device_checkpoint_read_errors.clone()),
        );
        // runtime connection and reconcile
        reg(
            "nmm_nri_connected",
            "1 while the agent is registered with the container runtime over NRI and synchronized, else 0",
            boxed(m.nri_connected.clone()),
        );
        reg(
            "nmm_nri_reconnects",
            "NRI connections lost or refused, each followed by a new attempt",
            boxed(m.nri_reconnects.clone()),
        );
        reg(
            "nmm_reconcile_pods",
            "Pods the books were reconciled with, by source (startup, nri-sync, ...) and outcome (admitted, rejected, removed)",
            boxed(m.reconcile_pods.clone()),
        );
        reg(
            "nmm_cri_connected",
            "1 while the last CRI list of the runtime's pods succeeded, else 0",
            boxed(m.cri_connected.clone()),
        );
        reg(
            "nmm_cri_list_errors",
            "CRI connections or lists of the runtime's pods that failed",
            boxed(m.cri_list_errors.clone()),
        );
        reg(
            "nmm_unsolicited_updates",
            "Container cpuset updates sent unprompted with UpdateContainers, by outcome (applied, failed)",
            boxed(m.unsolicited_updates.clone()),
        );
        // KEP-6232 memory drift
        reg(
            "nmm_memory_drift_tolerance_bytes",
            "Memory Manager: memory-drift-tolerance bound in effect at start (KEP-6232; 0 is the exact comparison)",
            boxed(m.memory_drift_tolerance.clone()),
        );
        reg(
            "nmm_memory_drift_bytes",
            "Memory Manager: regular memory of the NUMA node now minus in the checkpoint at start (KEP-6232)",
            boxed(m.memory_drift.clone()),
        );
        m
    }

    /// Registers a metric kept elsewhere (see the module documentation). Counters are
    /// named without `_total`.
    pub fn register(&self, name: &str, help: &str, metric: impl Metric) {
        self.registry
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .register(name, help, metric);
    }

    /// Sets the KEP-6232 gauges from what the Memory Manager's restart observed.
    pub fn set_drift(&self, d: &nmm_core::memorymanager::drift::DriftReport) {
        self.memory_drift_tolerance
            .set(gauge_value(d.tolerance.bound));
        for (node, v) in &d.drift {
            let v = i64::try_from(*v).unwrap_or(if *v < 0 { i64::MIN } else { i64::MAX });
            self.memory_drift
                .get_or_create(&NumaLabels {
                    numa_node: node.to_string(),
                })
                .set(v);
        }
    }

    /// Sets the per-NUMA-node memory gauges from the Memory Manager's machine state.
    pub fn set_memory(&self, ms: &MachineState) {
        for (node, st) in ms {
            for (resource, t) in &st.memory_map {
                let l = MemoryLabels {
                    numa_node: node.to_string(),
                    resource: resource.clone(),
                };
                self.memory_total
                    .get_or_create(&l)
                    .set(gauge_value(t.total));
                self.memory_system_reserved
                    .get_or_create(&l)
                    .set(gauge_value(t.system_reserved));
                self.memory_allocatable
                    .get_or_create(&l)
                    .set(gauge_value(t.allocatable));
                self.memory_assigned
                    .get_or_create(&l)
                    .set(gauge_value(t.reserved));
                self.memory_reserved
                    .get_or_create(&l)
                    .set(gauge_value(t.reserved));
                self.memory_free.get_or_create(&l).set(gauge_value(t.free));
            }
        }
    }

    /// One admission the managers decided: the kubelet's Topology Manager and pinning
    /// counters, and nmm's own.
    pub fn observe_admission(
        &self,
        pod: &PodInfo,
        r: &AdmitResult,
        elapsed: Duration,
        policies: Policies,
    ) {
        self.topology_admission_requests.inc();
        self.topology_admission_duration_ms
            .observe(elapsed.as_secs_f64() * 1000.0);
        self.admission_duration.observe(elapsed.as_secs_f64());
        if r.admitted {
            self.admissions.inc();
        } else {
            self.topology_admission_errors.inc();
            self.reject(r.reason.as_deref().unwrap_or("Unknown"));
        }
        let p = Pinning::of(pod, r, policies);
        self.cpu_pinning_requests.inc_by(p.cpu_requests);
        self.cpu_pinning_errors.inc_by(p.cpu_errors);
        self.memory_pinning_requests.inc_by(p.memory_requests);
        self.memory_pinning_errors.inc_by(p.memory_errors);
    }

    pub fn reject(&self, reason: &str) {
        self.rejections
            .get_or_create(&ReasonLabels {
                reason: reason.to_string(),
            })
            .inc();
    }

    pub fn error(&self, reason: &str) {
        self.errors
            .get_or_create(&ReasonLabels {
                reason: reason.to_string(),
            })
            .inc();
    }

    /// `n` pods reconciled from `source` with `outcome` (`admitted`, `rejected`,
    /// `removed`).
    pub fn reconciled(&self, source: &str, outcome: &str, n: usize) {
        if n == 0 {
            return;
        }
        self.reconcile_pods
            .get_or_create(&ReconcileLabels {
                source: source.to_string(),
                outcome: outcome.to_string(),
            })
            .inc_by(n as u64);
    }

    /// `n` container updates sent unprompted with `outcome` (`applied`, `failed`).
    pub fn unsolicited(&self, outcome: &str, n: usize) {
        if n == 0 {
            return;
        }
        self.unsolicited_updates
            .get_or_create(&OutcomeLabels {
                outcome: outcome.to_string(),
            })
            .inc_by(n as u64);
    }

    /// The NRI connection state: registered and synchronized, or not.
    pub fn set_nri_connected(&self, up: bool) {
        self.nri_connected.set(i64::from(up));
    }

    pub fn nri_is_connected(&self) -> bool {
        self.nri_connected.get() == 1
    }

    /// The exposition text.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        let reg = self.registry.lock().unwrap_or_else(|e| e.into_inner());
        prometheus_client::encoding::text::encode(&mut out, &reg)
            .expect("writing to a String does not fail");
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nmm_core::kubelet_config::KubeletConfig;
    use nmm_core::node::{Node, StartOptions};

    fn node(topology: &str) -> Node {
        let mut cfg: KubeletConfig = crate::testkit::kubelet_config();
        cfg.topology_manager_policy = Some(topology.to_string());
        Node::start(crate::testkit::machine(), cfg, StartOptions::default()).unwrap()
    }

    fn info(uid: &str, containers: &[(&str, &str, &str)]) -> PodInfo {
        let pod = crate::testkit::pod(
            uid,
            uid,
            &containers
                .iter()
                .map(|(n, c, m)| (*n, *c, *m, None))
                .collect::<Vec<_>>(),
            &[],
        );
        PodInfo::from_pod(&pod, false).unwrap()
    }

    const STATIC: Policies = Policies {
        cpu_static: true,
        memory_static: true,
        topology_none: false,
    };

    #[test]
    fn pinning_counts_every_allocate_of_an_admitted_pod() {
        let mut n = node("single-numa-node");
        let p = info("a", &[("x", "2", "1Gi"), ("y", "500m", "1Gi")]);
        let r = n.admit(&p).unwrap();
        assert!(r.admitted);
        // x: integer CPUs (pinned), y: fractional (shared pool, not counted); both have
        // memory of a Guaranteed pod.
        assert_eq!(
            Pinning::of(&p, &r, STATIC),
            Pinning {
                cpu_requests: 1,
                cpu_errors: 0,
                memory_requests: 2,
                memory_errors: 0
            }
        );
        let none = Policies {
            cpu_static: false,
            memory_static: false,
            topology_none: false,
        };
        assert_eq!(Pinning::of(&p, &r, none), Pinning::default());
    }

    #[test]
    fn a_topology_rejection_pins_nothing() {
        let mut n = node("single-numa-node");
        // 9 CPUs fit no single NUMA node of the test machine (8 CPUs each).
        let p = info("b", &[("x", "9", "1Gi")]);
        let r = n.admit(&p).unwrap();
        assert!(!r.admitted);
        assert_eq!(Pinning::of(&p, &r, STATIC), Pinning::default());
    }

    #[test]
    fn observe_admission_feeds_the_kubelet_names() {
        let m = Metrics::new();
        let mut n = node("single-numa-node");
        let ok = info("a", &[("x", "2", "1Gi")]);
        let r = n.admit(&ok).unwrap();
        m.observe_admission(&ok, &r, Duration::from_micros(1500), STATIC);
        let bad = info("b", &[("x", "9", "1Gi")]);
        let r = n.admit(&bad).unwrap();
        m.observe_admission(&bad, &r, Duration::from_micros(200), STATIC);
        let text = m.encode();
        for line in [
            "topology_manager_admission_requests_total 2",
            "topology_manager_admission_errors_total 1",
            "topology_manager_admission_duration_ms_count 2",
            "topology_manager_admission_duration_ms_bucket{le=\"0.2\"} 1",
            "topology_manager_admission_duration_ms_bucket{le=\"1.6\"} 2",
            "cpu_manager_pinning_requests_total 1",
            "cpu_manager_pinning_errors_total 0",
            "memory_manager_pinning_requests_total 1",
            "memory_manager_pinning_errors_total 0",
            "nmm_admissions_total 1",
            "nmm_admission_rejections_total{reason=\"TopologyAffinityError\"} 1",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} missing in\n{text}");
        }
    }

    #[test]
    fn reconcile_and_nri_state() {
        let m = Metrics::new();
        m.reconciled("startup", "admitted", 3);
        m.reconciled("startup", "rejected", 0);
        m.set_nri_connected(true);
        assert!(m.nri_is_connected());
        m.nri_reconnects.inc();
        let text = m.encode();
        assert!(
            text.contains("nmm_reconcile_pods_total{source=\"startup\",outcome=\"admitted\"} 3")
        );
        assert!(!text.contains("outcome=\"rejected\""), "{text}");
        assert!(text.contains("\nnmm_nri_connected 1\n"));
        assert!(text.contains("\nnmm_nri_reconnects_total 1\n"));
        m.set_nri_connected(false);
        assert!(!m.nri_is_connected());
    }

    #[test]
    fn cri_reconcile_and_unsolicited_updates() {
        let m = Metrics::new();
        let text = m.encode();
        assert!(text.contains("\nnmm_cri_connected 0\n"), "{text}");
        assert!(text.contains("\nnmm_cri_list_errors_total 0\n"), "{text}");
        m.cri_connected.set(1);
        m.cri_list_errors.inc();
        m.reconciled("cri", "removed", 2);
        m.unsolicited("applied", 855);
        m.unsolicited("failed", 3);
        m.unsolicited("failed", 0);
        let text = m.encode();
        for line in [
            "nmm_cri_connected 1",
            "nmm_cri_list_errors_total 1",
            "nmm_reconcile_pods_total{source=\"cri\",outcome=\"removed\"} 2",
            "nmm_unsolicited_updates_total{outcome=\"applied\"} 855",
            "nmm_unsolicited_updates_total{outcome=\"failed\"} 3",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} missing in\n{text}");
        }
    }
}
