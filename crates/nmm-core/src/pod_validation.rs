//! The API server's validation of a v1 Pod, the part that matters to the resource
//! managers (`pkg/apis/core/validation`): container names unique across init and app
//! containers, quantities not negative, requests at most limits, hugepages and extended
//! resources with requests equal to limits, extended resources in whole numbers, hugepages
//! only beside cpu or memory. Messages are the API server's field errors, so
//! `spec.containers[0].resources.requests[cpu]: Invalid value: "2": must be less than or
//! equal to cpu limit of 1` reads as `kubectl apply` would print it.

use crate::quantity::Quantity;
use k8s_openapi::api::core::v1::{Container, Pod, ResourceRequirements};
use std::collections::{BTreeMap, BTreeSet};

const NOT_NEGATIVE: &str = "must be greater than or equal to 0";
const NOT_INTEGER: &str = "must be an integer";

/// `cpu`, `memory`, `hugepages-*`, `ephemeral-storage` and anything under
/// `kubernetes.io/`: the resources the API server calls native.
fn is_native(name: &str) -> bool {
    !name.contains('/') || name.contains("kubernetes.io/")
}

fn is_hugepages(name: &str) -> bool {
    name.starts_with("hugepages-")
}

/// Requests may be below limits (`helper.IsOvercommitAllowed`).
fn overcommit_allowed(name: &str) -> bool {
    is_native(name) && !is_hugepages(name)
}

/// Extended resources (`example.com/gpu`) are counted in whole units.
fn is_integer_resource(name: &str) -> bool {
    !is_native(name) && !name.starts_with("requests.")
}

type Quantities = BTreeMap<String, k8s_openapi::apimachinery::pkg::api::resource::Quantity>;

/// Quantities that do not parse are left to the caller's reading of the pod
/// (`PodInfo::from_pod`), which says how to write one.
fn parse_all(list: Option<&Quantities>) -> Vec<(String, Quantity)> {
    list.into_iter()
        .flatten()
        .filter_map(|(name, q)| Some((name.clone(), Quantity::parse(q.0.trim()).ok()?)))
        .collect()
}

fn resources(r: &ResourceRequirements, at: &str, errs: &mut Vec<String>) {
    let lim_at = format!("{at}.limits");
    let req_at = format!("{at}.requests");
    let limits = parse_all(r.limits.as_ref());
    let requests = parse_all(r.requests.as_ref());
    let mut cpu_or_memory = false;
    let mut hugepages = false;
    for (name, q) in &limits {
        quantity_value(name, q, &format!("{lim_at}[{name}]"), errs);
        hugepages |= is_hugepages(name);
        cpu_or_memory |= name == "cpu" || name == "memory";
    }
    for (name, q) in &requests {
        quantity_value(name, q, &format!("{req_at}[{name}]"), errs);
        match limits.iter().find(|(n, _)| n == name) {
            Some((_, limit)) => {
                let ord = q.cmp_value(limit);
                if ord != std::cmp::Ordering::Equal && !overcommit_allowed(name) {
                    errs.push(format!(
                        "{req_at}: Invalid value: \"{q}\": must be equal to {name} limit of {limit}"
                    ));
                } else if ord == std::cmp::Ordering::Greater {
                    errs.push(format!(
                        "{req_at}: Invalid value: \"{q}\": must be less than or equal to {name} limit of {limit}"
                    ));
                }
            }
            None if !overcommit_allowed(name) => errs.push(format!(
                "{lim_at}: Required value: Limit must be set for non overcommitable resources"
            )),
            None => {}
        }
        hugepages |= is_hugepages(name);
        cpu_or_memory |= name == "cpu" || name == "memory";
    }
    if hugepages && !cpu_or_memory {
        errs.push(format!("{at}: Forbidden: HugePages require cpu or memory"));
    }
}

fn quantity_value(name: &str, q: &Quantity, at: &str, errs: &mut Vec<String>) {
    if q.sign() < 0 {
        errs.push(format!("{at}: Invalid value: \"{q}\": {NOT_NEGATIVE}"));
    }
    if is_integer_resource(name) && q.milli_value() % 1000 != 0 {
        errs.push(format!("{at}: Invalid value: \"{q}\": {NOT_INTEGER}"));
    }
}

fn containers(list: &[Container], at: &str, names: &mut BTreeSet<String>, errs: &mut Vec<String>) {
    for (i, c) in list.iter().enumerate() {
        let here = format!("{at}[{i}]");
        if c.name.is_empty() {
            errs.push(format!("{here}.name: Required value"));
        } else if !names.insert(c.name.clone()) {
            errs.push(format!("{here}.name: Duplicate value: {:?}", c.name));
        }
        if let Some(r) = &c.resources {
            resources(r, &format!("{here}.resources"), errs);
        }
    }
}

/// Every field error the API server would return for this pod, in its order (init
/// containers, then containers, then pod-level resources); empty when it accepts it.
pub fn validate_pod(pod: &Pod) -> Vec<String> {
    let mut errs = Vec::new();
    let Some(spec) = &pod.spec else {
        errs.push("spec: Required value".to_string());
        return errs;
    };
    let mut names = BTreeSet::new();
    if let Some(init) = &spec.init_containers {
        containers(init, "spec.initContainers", &mut names, &mut errs);
    }
    if spec.containers.is_empty() {
        errs.push("spec.containers: Required value".to_string());
    }
    containers(&spec.containers, "spec.containers", &mut names, &mut errs);
    if let Some(r) = &spec.resources {
        resources(r, "spec.resources", &mut errs);
    }
    errs
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(yaml: &str) -> Pod {
        serde_saphyr::from_str(yaml).unwrap()
    }

    fn errs(spec: &str) -> Vec<String> {
        validate_pod(&pod(&format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: p}}\nspec:\n{spec}"
        )))
    }

    #[test]
    fn accepts_a_guaranteed_pod() {
        let e = errs("  containers:\n  - name: a\n    resources:\n      limits: {cpu: '2', memory: 1Gi, hugepages-2Mi: 1Gi, example.com/nic: '1'}\n");
        assert!(e.is_empty(), "{e:?}");
    }

    #[test]
    fn requests_above_limits() {
        let e = errs("  containers:\n  - name: a\n    resources:\n      requests: {cpu: '2'}\n      limits: {cpu: '1'}\n");
        assert_eq!(
            e,
            vec![
                r#"spec.containers[0].resources.requests: Invalid value: "2": must be less than or equal to cpu limit of 1"#
            ]
        );
    }

    #[test]
    fn negative_and_fractional() {
        let e = errs("  containers:\n  - name: a\n    resources:\n      limits: {memory: -1Gi, example.com/gpu: 500m}\n");
        assert_eq!(
            e,
            vec![
                r#"spec.containers[0].resources.limits[example.com/gpu]: Invalid value: "500m": must be an integer"#,
                r#"spec.containers[0].resources.limits[memory]: Invalid value: "-1Gi": must be greater than or equal to 0"#,
            ]
        );
    }

    #[test]
    fn hugepages_requests_must_equal_limits() {
        let e = errs("  containers:\n  - name: a\n    resources:\n      requests: {memory: 1Gi, hugepages-1Gi: 1Gi}\n      limits: {memory: 1Gi, hugepages-1Gi: 2Gi}\n");
        assert_eq!(
            e,
            vec![
                r#"spec.containers[0].resources.requests: Invalid value: "1Gi": must be equal to hugepages-1Gi limit of 2Gi"#
            ]
        );
        let e = errs(
            "  containers:\n  - name: a\n    resources:\n      limits: {hugepages-2Mi: 2Mi}\n",
        );
        assert_eq!(
            e,
            vec!["spec.containers[0].resources: Forbidden: HugePages require cpu or memory"]
        );
    }

    #[test]
    fn container_names_unique_across_init_and_app() {
        let e = errs("  initContainers:\n  - name: a\n  containers:\n  - name: a\n");
        assert_eq!(e, vec![r#"spec.containers[0].name: Duplicate value: "a""#]);
    }
}
