//! Container scope: one merge per container, in admission order (init containers, then
//! app containers); container k+1's hints see container k's allocation.

use super::{allocate_all, Admission, HintProvider, TopologyManager};
use crate::pod::PodInfo;

pub fn admit(
    tm: &mut TopologyManager,
    pod: &PodInfo,
    providers: &mut [&mut dyn HintProvider],
) -> Admission {
    let mut adm = Admission::new(pod);
    for (i, c) in pod.containers.iter().enumerate() {
        let outcome = if tm.large {
            let fams: Vec<_> = providers
                .iter_mut()
                .map(|p| (p.name(), p.get_topology_hint_families(pod, c)))
                .collect();
            let merged = tm.policy.decide_large(fams.iter().map(|(_, h)| h));
            if tm.keep_hints || !merged.admit {
                adm.containers[i].provider_families = fams;
            }
            merged
        } else {
            let hints: Vec<_> = providers
                .iter_mut()
                .map(|p| (p.name(), p.get_topology_hints(pod, c)))
                .collect();
            let only: Vec<_> = hints.iter().map(|(_, h)| h.clone()).collect();
            let merged = tm.policy.merge(&only);
            if tm.keep_hints || !merged.admit {
                adm.containers[i].provider_hints = hints;
            }
            merged
        };
        let trace = &mut adm.containers[i];
        trace.merge = Some(outcome.clone());
        if !outcome.admit {
            adm.reject_topology();
            return adm;
        }
        adm.containers[i].affinity = Some(outcome.hint);
        if !allocate_all(&mut adm, i, pod, c, outcome.hint, providers) {
            return adm;
        }
    }
    adm
}
