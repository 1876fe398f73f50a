//! `topologyManagerPolicyOptions` (v1.32: `prefer-closest-numa-nodes` stable,
//! `max-allowable-numa-nodes` beta).

use crate::kubelet_config::KubeletConfig;
use std::collections::BTreeMap;

pub const DEFAULT_MAX_ALLOWABLE_NUMA_NODES: i64 = 8;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PolicyOptions {
    pub prefer_closest_numa: bool,
    pub max_allowable_numa_nodes: i64,
}

impl Default for PolicyOptions {
    fn default() -> Self {
        PolicyOptions {
            prefer_closest_numa: false,
            max_allowable_numa_nodes: DEFAULT_MAX_ALLOWABLE_NUMA_NODES,
        }
    }
}

/// Go's `strconv.ParseBool`.
pub fn parse_go_bool(s: &str) -> Result<bool, String> {
    match s {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Ok(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Ok(false),
        _ => Err(format!(
            "strconv.ParseBool: parsing \"{s}\": invalid syntax"
        )),
    }
}

/// Go's `strconv.Atoi` (64-bit): optional sign, decimal digits, no spaces.
pub fn parse_go_int(s: &str) -> Result<i64, String> {
    let digits = s.strip_prefix(['+', '-']).unwrap_or(s);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("strconv.Atoi: parsing \"{s}\": invalid syntax"));
    }
    s.parse::<i64>()
        .map_err(|_| format!("strconv.Atoi: parsing \"{s}\": value out of range"))
}

/// `NewPolicyOptions`. Options are checked in name order (Go iterates its map in random
/// order; with several bad options the kubelet may report any of them).
pub fn parse_policy_options(
    opts: &BTreeMap<String, String>,
    config: &KubeletConfig,
) -> Result<PolicyOptions, String> {
    let mut out = PolicyOptions::default();
    for (name, value) in opts {
        match name.as_str() {
            "prefer-closest-numa-nodes" => {}
            "max-allowable-numa-nodes" => {
                if !config.feature_gate("TopologyManagerPolicyBetaOptions") {
                    return Err(format!(
                        "Topology Manager Policy Beta-level Options not enabled, but option \"{name}\" provided"
                    ));
                }
            }
            _ => {
                return Err(format!(
                    "unknown Topology Manager Policy option: \"{name}\""
                ))
            }
        }
        match name.as_str() {
            "prefer-closest-numa-nodes" => {
                out.prefer_closest_numa = parse_go_bool(value)
                    .map_err(|e| format!("bad value for option \"{name}\": {e}"))?;
            }
            _ => {
                let v = parse_go_int(value).map_err(|e| {
                    format!("unable to convert policy option to integer \"{name}\": {e}")
                })?;
                if v < DEFAULT_MAX_ALLOWABLE_NUMA_NODES {
                    return Err(format!(
                        "the minimum value of \"{name}\" should not be less than {DEFAULT_MAX_ALLOWABLE_NUMA_NODES}"
                    ));
                }
                out.max_allowable_numa_nodes = v;
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(kv: &[(&str, &str)]) -> BTreeMap<String, String> {
        kv.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn option_errors_are_the_kubelets() {
        let c = KubeletConfig::default();
        assert_eq!(
            parse_policy_options(&opts(&[("foo", "1")]), &c).unwrap_err(),
            "unknown Topology Manager Policy option: \"foo\""
        );
        assert_eq!(
            parse_policy_options(&opts(&[("prefer-closest-numa-nodes", "yes")]), &c).unwrap_err(),
            "bad value for option \"prefer-closest-numa-nodes\": strconv.ParseBool: parsing \"yes\": invalid syntax"
        );
        assert_eq!(
            parse_policy_options(&opts(&[("max-allowable-numa-nodes", "x")]), &c).unwrap_err(),
            "unable to convert policy option to integer \"max-allowable-numa-nodes\": strconv.Atoi: parsing \"x\": invalid syntax"
        );
        assert_eq!(
            parse_policy_options(&opts(&[("max-allowable-numa-nodes", "7")]), &c).unwrap_err(),
            "the minimum value of \"max-allowable-numa-nodes\" should not be less than 8"
        );
        let o = parse_policy_options(
            &opts(&[
                ("max-allowable-numa-nodes", "64"),
                ("prefer-closest-numa-nodes", "true"),
            ]),
            &c,
        )
        .unwrap();
        assert_eq!(o.max_allowable_numa_nodes, 64);
        assert!(o.prefer_closest_numa);
    }

    #[test]
    fn beta_option_needs_its_gate() {
        let c = KubeletConfig {
            feature_gates: Some([("TopologyManagerPolicyBetaOptions".to_string(), false)].into()),
            ..Default::default()
        };
        assert_eq!(
            parse_policy_options(&opts(&[("max-allowable-numa-nodes", "9")]), &c).unwrap_err(),
            "Topology Manager Policy Beta-level Options not enabled, but option \"max-allowable-numa-nodes\" provided"
        );
    }
}
