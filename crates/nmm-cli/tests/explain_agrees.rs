//! `nmm explain` and `nmm simulate` tell the same story: on every admit step of every
//! kubelet-answered corpus, the explanation's verdict (admitted, reason, message) and
//! each container's affinity, CPUs and memory blocks equal the simulated step.

use nmm::cmd::explain::explain_scenario;
use nmm::scenario::{load_scenario, Step};
use nmm::simulate::{run, Event};

#[path = "support/corpora.rs"]
mod corpora;

#[test]
fn explain_and_simulate_agree_on_every_step_of_every_corpus() {
    let Some(shared) = corpora::shared_dir() else {
        eprintln!("skipping: ../shared is not present next to this checkout");
        return;
    };
    let mut compared = 0usize;
    let mut diffs: Vec<String> = Vec::new();
    for path in corpora::all_scenarios(&shared) {
        let s = load_scenario(&path).unwrap_or_else(|e| panic!("{}: {e:#}", path.display()));
        let o = run(&s, "/var/lib/kubelet").unwrap();
        if o.startup_error.is_some() {
            continue;
        }
        for (i, e) in &o.events {
            let Event::Admit(r) = e else { continue };
            assert!(matches!(s.steps[*i], Step::Admit(_)));
            let x = explain_scenario(&s, Some(*i))
                .unwrap_or_else(|e| panic!("{}: explain step {i}: {e:#}", path.display()))
                .explanation;
            compared += 1;
            let sim = (
                r.admitted,
                r.reason.clone(),
                r.message.clone(),
                r.containers
                    .iter()
                    .map(|c| {
                        (
                            c.name.clone(),
                            c.affinity
                                .map(|h| (h.affinity.map(|m| m.to_vec()), h.preferred)),
                            c.cpus.to_string(),
                            c.memory
                                .iter()
                                .map(|b| (b.kind.clone(), b.size, b.numa_affinity.clone()))
                                .collect::<Vec<_>>(),
                        )
                    })
                    .collect::<Vec<_>>(),
            );
            let exp = (
                x.admitted,
                x.reason.clone(),
                x.message.clone(),
                x.containers
                    .iter()
                    .filter(|c| sim.3.iter().any(|s| s.0 == c.name))
                    .map(|c| {
                        (
                            c.name.clone(),
                            c.affinity
                                .as_ref()
                                .map(|h| (h.numa_nodes.clone(), h.preferred)),
                            c.cpus.clone(),
                            c.memory
                                .iter()
                                .map(|b| (b.resource.clone(), b.size, b.numa_nodes.clone()))
                                .collect::<Vec<_>>(),
                        )
                    })
                    .collect::<Vec<_>>(),
            );
            if sim != exp {
                diffs.push(format!(
                    "{}: step {i}:\n  simulate {sim:?}\n  explain  {exp:?}",
                    path.display()
                ));
            }
        }
    }
    assert!(compared > 1000, "only {compared} admissions compared");
    assert!(
        diffs.is_empty(),
        "{} of {compared} steps differ:\n{}",
        diffs.len(),
        diffs
            .iter()
            .take(10)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
    eprintln!("{compared} admissions: explain and simulate agree");
}
