//! Human-readable tables (terminals); scripts get JSON.

use crate::simulate::Event;
use comfy_table::{presets::UTF8_FULL_CONDENSED, Table};
use nmm_core::memorymanager::state::Block;
use nmm_core::quantity::format_human_bytes;
use nmm_core::topology::hint::TopologyHint;

pub fn mask_text(h: &Option<TopologyHint>) -> String {
    match h {
        None => "-".into(),
        Some(h) => {
            let m = match h.affinity {
                None => "any".to_string(),
                Some(m) => format!(
                    "{{{}}}",
                    m.to_vec()
                        .iter()
                        .map(|i| i.to_string())
                        .collect::<Vec<_>>()
                        .join(",")
                ),
            };
            format!("{m}{}", if h.preferred { " preferred" } else { "" })
        }
    }
}

pub fn blocks_text(blocks: &[Block]) -> String {
    if blocks.is_empty() {
        return "-".into();
    }
    blocks
        .iter()
        .map(|b| {
            format!(
                "{} {} on {:?}",
                b.kind,
                format_human_bytes(b.size),
                b.numa_affinity
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

pub fn new_table(header: &[&str]) -> Table {
    let mut t = Table::new();
    t.load_preset(UTF8_FULL_CONDENSED);
    t.set_header(header.iter().map(|s| s.to_string()).collect::<Vec<_>>());
    t
}

/// A step as a few lines of text and a table of its containers.
pub fn event_text(step: usize, e: &Event) -> String {
    match e {
        Event::Remove(r) => format!(
            "step {step}: remove {} ({}): {}\n",
            r.name.as_deref().unwrap_or("-"),
            r.uid,
            if r.removed {
                "released"
            } else {
                "not running, nothing released"
            }
        ),
        Event::Admit(r) => {
            let mut s = format!(
                "step {step}: admit {} ({}): {}\n",
                r.name,
                r.uid,
                if r.admitted {
                    "ADMITTED".to_string()
                } else {
                    format!(
                        "REJECTED {}: {}",
                        r.reason.as_deref().unwrap_or(""),
                        r.message.as_deref().unwrap_or("")
                    )
                }
            );
            let mut t = new_table(&["container", "NUMA affinity", "exclusive CPUs", "memory"]);
            for c in &r.containers {
                t.add_row(vec![
                    format!("{}{}", c.name, if c.init { " (init)" } else { "" }),
                    mask_text(&c.affinity),
                    if c.cpus.is_empty() {
                        "shared".into()
                    } else {
                        c.cpus.to_string()
                    },
                    blocks_text(&c.memory),
                ]);
            }
            s.push_str(&t.to_string());
            s.push('\n');
            s
        }
    }
}
