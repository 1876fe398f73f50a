//! The fields of kubelet v1.32's KubeletConfiguration (kubelet.config.k8s.io/v1beta1),
//! for telling a misspelt field from one the kubelet reads but nmm does not model, and
//! the kubelet's own decoding: strict first, and on unknown fields a warning per field
//! and a lenient decode.

use crate::suggest::closest;
use anyhow::{anyhow, Result};
use nmm_core::kubelet_config::KubeletConfig;
use serde_json::Value;
use std::path::Path;

/// Every top-level field name of the v1beta1 KubeletConfiguration, TypeMeta included.
pub const KUBELET_CONFIG_FIELDS: &[&str] = &[
    "apiVersion",
    "kind",
    "enableServer",
    "staticPodPath",
    "podLogsDir",
    "syncFrequency",
    "fileCheckFrequency",
    "httpCheckFrequency",
    "staticPodURL",
    "staticPodURLHeader",
    "address",
    "port",
    "readOnlyPort",
    "tlsCertFile",
    "tlsPrivateKeyFile",
    "tlsCipherSuites",
    "tlsMinVersion",
    "rotateCertificates",
    "serverTLSBootstrap",
    "authentication",
    "authorization",
    "registryPullQPS",
    "registryBurst",
    "eventRecordQPS",
    "eventBurst",
    "enableDebuggingHandlers",
    "enableContentionProfiling",
    "healthzPort",
    "healthzBindAddress",
    "oomScoreAdj",
    "clusterDomain",
    "clusterDNS",
    "streamingConnectionIdleTimeout",
    "nodeStatusUpdateFrequency",
    "nodeStatusReportFrequency",
    "nodeLeaseDurationSeconds",
    "imageMinimumGCAge",
    "imageMaximumGCAge",
    "imageGCHighThresholdPercent",
    "imageGCLowThresholdPercent",
    "volumeStatsAggPeriod",
    "kubeletCgroups",
    "systemCgroups",
    "cgroupRoot",
    "cgroupsPerQOS",
    "cgroupDriver",
    "cpuManagerPolicy",
    "singleProcessOOMKill",
    "cpuManagerPolicyOptions",
    "cpuManagerReconcilePeriod",
    "memoryManagerPolicy",
    "topologyManagerPolicy",
    "topologyManagerScope",
    "topologyManagerPolicyOptions",
    "qosReserved",
    "runtimeRequestTimeout",
    "hairpinMode",
    "maxPods",
    "podCIDR",
    "podPidsLimit",
    "resolvConf",
    "runOnce",
    "cpuCFSQuota",
    "cpuCFSQuotaPeriod",
    "nodeStatusMaxImages",
    "maxOpenFiles",
    "contentType",
    "kubeAPIQPS",
    "kubeAPIBurst",
    "serializeImagePulls",
    "maxParallelImagePulls",
    "evictionHard",
    "evictionSoft",
    "evictionSoftGracePeriod",
    "evictionPressureTransitionPeriod",
    "evictionMaxPodGracePeriod",
    "evictionMinimumReclaim",
    "podsPerCore",
    "enableControllerAttachDetach",
    "protectKernelDefaults",
    "makeIPTablesUtilChains",
    "iptablesMasqueradeBit",
    "iptablesDropBit",
    "featureGates",
    "failSwapOn",
    "memorySwap",
    "containerLogMaxSize",
    "containerLogMaxFiles",
    "containerLogMaxWorkers",
    "containerLogMonitorInterval",
    "configMapAndSecretChangeDetectionStrategy",
    "systemReserved",
    "kubeReserved",
    "reservedSystemCPUs",
    "showHiddenMetricsForVersion",
    "systemReservedCgroup",
    "kubeReservedCgroup",
    "enforceNodeAllocatable",
    "allowedUnsafeSysctls",
    "volumePluginDir",
    "providerID",
    "kernelMemcgNotification",
    "logging",
    "enableSystemLogHandler",
    "enableSystemLogQuery",
    "shutdownGracePeriod",
    "shutdownGracePeriodCriticalPods",
    "shutdownGracePeriodByPodPriority",
    "crashLoopBackOff",
    "reservedMemory",
    "enableProfilingHandler",
    "enableDebugFlagsHandler",
    "seccompDefault",
    "memoryThrottlingFactor",
    "registerWithTaints",
    "registerNode",
    "tracing",
    "localStorageCapacityIsolation",
    "containerRuntimeEndpoint",
    "imageServiceEndpoint",
    "failCgroupV1",
];

/// Decodes a KubeletConfiguration mapping as the kubelet does: every unknown field (at
/// any depth of the parts nmm models; at the top level against the kubelet's whole field
/// list) is a warning naming the file and the field, with a did-you-mean, and the rest is
/// read leniently. `prefix` is the block's path in the file (`kubelet.` in a scenario).
pub fn decode_kubelet_config(
    v: &Value,
    path: &Path,
    prefix: &str,
) -> Result<(KubeletConfig, Vec<String>)> {
    let mut ignored: Vec<String> = Vec::new();
    let mut note = |p: serde_ignored::Path| ignored.push(crate::scenario::field_path(&p));
    let config: KubeletConfig =
        serde_path_to_error::deserialize(serde_ignored::Deserializer::new(v, &mut note))
            .map_err(|e| {
                anyhow!(
                    "{}: {prefix}{}: {}; write it as the KubeletConfiguration reference does (e.g. reservedMemory: [{{numaNode: 0, limits: {{memory: 1Gi}}}}])",
                    path.display(),
                    e.path(),
                    e.inner()
                )
            })?;
    let mut warnings = Vec::new();
    for field in ignored {
        let top = !field.contains(['.', '[']);
        if top && KUBELET_CONFIG_FIELDS.contains(&field.as_str()) {
            continue;
        }
        let hint = if top {
            closest(&field, KUBELET_CONFIG_FIELDS)
                .map(|k| format!("; did you mean `{k}`?"))
                .unwrap_or_default()
        } else {
            String::new()
        };
        warnings.push(format!(
            "{}: {prefix}{field}: unknown field; the kubelet warns (strict decoding error: unknown field \"{field}\") and ignores it{hint}",
            path.display()
        ));
    }
    Ok((config, warnings))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn typo_warned_real_fields_silent() {
        let v = json!({"reservedMemorys": [], "authentication": {"x": 1}, "clusterDNS": ["10.0.0.10"], "reservedMemory": [{"numaNode": 0, "limits": {"memory": "1Gi"}, "limit": 1}]});
        let (_, w) = decode_kubelet_config(&v, Path::new("k.yaml"), "").unwrap();
        assert_eq!(w.len(), 2, "{w:?}");
        assert!(
            w[0].starts_with("k.yaml: reservedMemorys: unknown field")
                || w[1].starts_with("k.yaml: reservedMemorys: unknown field"),
            "{w:?}"
        );
        assert!(
            w.iter()
                .any(|x| x.ends_with("did you mean `reservedMemory`?")),
            "{w:?}"
        );
        assert!(
            w.iter()
                .any(|x| x.starts_with("k.yaml: reservedMemory[0].limit: unknown field")),
            "{w:?}"
        );
    }
}
