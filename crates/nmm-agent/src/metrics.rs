//! Prometheus metrics (OpenMetrics text exposition, which Prometheus scrapes natively).
//!
//! | metric | labels | meaning |
//! | --- | --- | --- |
//! | `nmm_numa_memory_total_bytes` | `numa_node`, `resource` | Memory Manager table: total |
//! | `nmm_numa_memory_system_reserved_bytes` | same | reserved for the system (`reservedMemory`) |
//! | `nmm_numa_memory_allocatable_bytes` | same | allocatable to containers |
//! | `nmm_numa_memory_reserved_bytes` | same | assigned to containers now |
//! | `nmm_numa_memory_free_bytes` | same | allocatable and not assigned |
//! | `nmm_pods` | | live pods in the books |
//! | `nmm_exclusive_cpus` / `nmm_shared_pool_cpus` | | CPUs assigned exclusively / left in the shared pool |
//! | `nmm_admissions_total` | | pods admitted |
//! | `nmm_admission_rejections_total` | `reason` | pods rejected, by the kubelet's reason (`TopologyAffinityError`, ...) |
//! | `nmm_admission_errors_total` | `reason` | admission requests refused before the managers saw them (`MalformedPod`, `MissingUid`, `DuplicateUid`, `Internal`) |
//! | `nmm_admission_duration_seconds` | | histogram of the managers' admission time |
//! | `nmm_checkpoint_writes_total` / `nmm_checkpoint_write_errors_total` | | commits of the state directory |
//! | `nmm_cgroup_write_errors_total` | | failed cpuset writes |
//! | `nmm_memory_drift_tolerance_bytes` | | KEP-6232 `memory-drift-tolerance` bound in effect at start (0: exact comparison) |
//! | `nmm_memory_drift_bytes` | `numa_node` | regular memory TotalMemSize now minus in the checkpoint at start (signed) |
//!
//! `resource` is the kubelet's resource name: `memory`, `hugepages-2Mi`, `hugepages-1Gi`.

use nmm_core::memorymanager::state::MachineState;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

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
pub struct ReasonLabels {
    pub reason: String,
}

pub struct Metrics {
    registry: Registry,
    pub memory_total: Family<MemoryLabels, Gauge>,
    pub memory_system_reserved: Family<MemoryLabels, Gauge>,
    pub memory_allocatable: Family<MemoryLabels, Gauge>,
    pub memory_reserved: Family<MemoryLabels, Gauge>,
    pub memory_free: Family<MemoryLabels, Gauge>,
    pub pods: Gauge,
    pub exclusive_cpus: Gauge,
    pub shared_pool_cpus: Gauge,
    pub admissions: Counter,
    pub rejections: Family<ReasonLabels, Counter>,
    pub errors: Family<ReasonLabels, Counter>,
    pub admission_duration: Histogram,
    pub checkpoint_writes: Counter,
    pub checkpoint_write_errors: Counter,
    pub cgroup_write_errors: Counter,
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

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::default();
        let m = Metrics {
            memory_total: Family::default(),
            memory_system_reserved: Family::default(),
            memory_allocatable: Family::default(),
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
            memory_drift_tolerance: Gauge::default(),
            memory_drift: Family::default(),
            registry: Registry::default(),
        };
        registry.register(
            "nmm_numa_memory_total_bytes",
            "Memory Manager: total memory of the NUMA node, by memory type",
            m.memory_total.clone(),
        );
        registry.register(
            "nmm_numa_memory_system_reserved_bytes",
            "Memory Manager: memory of the NUMA node reserved for the system (reservedMemory)",
            m.memory_system_reserved.clone(),
        );
        registry.register(
            "nmm_numa_memory_allocatable_bytes",
            "Memory Manager: memory of the NUMA node allocatable to containers",
            m.memory_allocatable.clone(),
        );
        registry.register(
            "nmm_numa_memory_reserved_bytes",
            "Memory Manager: memory of the NUMA node assigned to containers",
            m.memory_reserved.clone(),
        );
        registry.register(
            "nmm_numa_memory_free_bytes",
            "Memory Manager: allocatable memory of the NUMA node not assigned to any container",
            m.memory_free.clone(),
        );
        registry.register("nmm_pods", "Live pods in the books", m.pods.clone());
        registry.register(
            "nmm_exclusive_cpus",
            "CPUs assigned exclusively to containers (CPU Manager static policy)",
            m.exclusive_cpus.clone(),
        );
        registry.register(
            "nmm_shared_pool_cpus",
            "CPUs in the shared pool (CPU Manager static policy default set)",
            m.shared_pool_cpus.clone(),
        );
        registry.register("nmm_admissions", "Pods admitted", m.admissions.clone());
        registry.register(
            "nmm_admission_rejections",
            "Pods rejected by the managers, by reason",
            m.rejections.clone(),
        );
        registry.register(
            "nmm_admission_errors",
            "Admission requests refused before reaching the managers, by reason",
            m.errors.clone(),
        );
        registry.register(
            "nmm_admission_duration_seconds",
            "Time the Topology, CPU and Memory Managers took to decide an admission",
            m.admission_duration.clone(),
        );
        registry.register(
            "nmm_checkpoint_writes",
            "Commits of the state directory (both checkpoints and the pod record)",
            m.checkpoint_writes.clone(),
        );
        registry.register(
            "nmm_checkpoint_write_errors",
            "Failed commits of the state directory",
            m.checkpoint_write_errors.clone(),
        );
        registry.register(
            "nmm_cgroup_write_errors",
            "Failed cpuset.cpus / cpuset.mems writes",
            m.cgroup_write_errors.clone(),
        );
        registry.register(
            "nmm_memory_drift_tolerance_bytes",
            "Memory Manager: memory-drift-tolerance bound in effect at start (KEP-6232; 0 is the exact comparison)",
            m.memory_drift_tolerance.clone(),
        );
        registry.register(
            "nmm_memory_drift_bytes",
            "Memory Manager: regular memory of the NUMA node now minus in the checkpoint at start (KEP-6232)",
            m.memory_drift.clone(),
        );
        Metrics { registry, ..m }
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
                self.memory_reserved
                    .get_or_create(&l)
                    .set(gauge_value(t.reserved));
                self.memory_free.get_or_create(&l).set(gauge_value(t.free));
            }
        }
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

    /// The exposition text.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("writing to a String does not fail");
        out
    }
}
