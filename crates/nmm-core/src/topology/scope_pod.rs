//! Pod scope: one merge for the whole pod; every container gets the same hint.

use super::{allocate_all, Admission, HintProvider, TopologyManager};
use crate::pod::PodInfo;

pub fn admit(
    tm: &mut TopologyManager,
    pod: &PodInfo,
    providers: &mut [&mut dyn HintProvider],
) -> Admission {
    let mut adm = Admission::new(pod);
    let outcome = if tm.large {
        let fams: Vec<_> = providers
            .iter_mut()
            .map(|p| (p.name(), p.get_pod_topology_hint_families(pod)))
            .collect();
        let merged = tm.policy.decide_large(fams.iter().map(|(_, h)| h));
        if tm.keep_hints || !merged.admit {
            adm.pod_families = fams;
        }
        merged
    } else {
        let hints: Vec<_> = providers
            .iter_mut()
            .map(|p| (p.name(), p.get_pod_topology_hints(pod)))
            .collect();
        let only: Vec<_> = hints.iter().map(|(_, h)| h.clone()).collect();
        let merged = tm.policy.merge(&only);
        if tm.keep_hints || !merged.admit {
            adm.pod_hints = hints;
        }
        merged
    };
    adm.pod_merge = Some(outcome.clone());
    if !outcome.admit {
        adm.reject_topology();
        return adm;
    }
    for (i, c) in pod.containers.iter().enumerate() {
        adm.containers[i].affinity = Some(outcome.hint);
        if !allocate_all(&mut adm, i, pod, c, outcome.hint, providers) {
            return adm;
        }
    }
    adm
}
