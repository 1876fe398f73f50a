//! An SVG picture of the memory manager's machine state: one panel per memory type, one
//! bar per NUMA node (system reserved, not allocatable, reserved by pods, free), the nodes
//! of a NUMA group drawn next to each other inside one box with a bar of the group's sums.
//! Pure string building; open the file in a browser (hover a bar for exact bytes).

use nmm_core::devicemanager::view::DevicePlacement;
use nmm_core::memorymanager::state::{MachineState, MemoryTable};
use nmm_core::quantity::format_human_bytes;
use std::fmt::Write as _;

const WIDTH: u32 = 980;
const LABEL_X: u32 = 26;
const BAR_X: u32 = 150;
const BAR_W: u32 = 500;
const TEXT_X: u32 = BAR_X + BAR_W + 14;
const ROW_H: u32 = 28;
const BAR_H: u32 = 18;

const C_SYSTEM: &str = "#8c8c8c";
const C_OTHER: &str = "#c9c9d6";
const C_RESERVED: &str = "#d55e00";
const C_FREE: &str = "#009e73";
const C_GROUP_FILL: &str = "#eef4fb";
const C_GROUP_LINE: &str = "#4a78b0";
const C_WARN: &str = "#b00020";

/// XML text escaping (also fine inside attribute values).
fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c if (c as u32) < 0x20 && c != '\n' && c != '\t' => out.push('?'),
            c => out.push(c),
        }
    }
    out
}

fn ids_text(ids: &[u32]) -> String {
    let v: Vec<String> = ids.iter().map(u32::to_string).collect();
    format!("{{{}}}", v.join(","))
}

/// The group a node belongs to, as drawn: its `cells`, sorted; the node alone when the
/// cells are empty or do not name it (an inconsistent state, reported in the label).
fn group_key(id: u32, cells: &[u32]) -> Vec<u32> {
    let mut g = cells.to_vec();
    g.sort_unstable();
    g.dedup();
    if g.is_empty() || !g.contains(&id) {
        vec![id]
    } else {
        g
    }
}

/// Memory types in display order: `memory` first, then the hugepage sizes by name.
fn memory_types(state: &MachineState) -> Vec<String> {
    let mut types: Vec<String> = state
        .values()
        .flat_map(|n| n.memory_map.keys().cloned())
        .collect();
    types.sort();
    types.dedup();
    types.sort_by_key(|t| (t != "memory", t.clone()));
    types
}

/// The four segments of a bar, left to right, and their legend names.
fn segments(t: &MemoryTable) -> [(u64, &'static str, &'static str); 4] {
    let other = t
        .total
        .saturating_sub(t.system_reserved.saturating_add(t.allocatable));
    [
        (t.system_reserved, C_SYSTEM, "system reserved"),
        (other, C_OTHER, "not allocatable (hugepages)"),
        (t.reserved, C_RESERVED, "reserved"),
        (t.free, C_FREE, "free"),
    ]
}

/// How long the bar must be to hold its segments (at least the total).
fn extent(t: &MemoryTable) -> u64 {
    let sum = segments(t)
        .iter()
        .fold(0u64, |acc, (v, _, _)| acc.saturating_add(*v));
    sum.max(t.total)
}

fn add(a: &MemoryTable, b: &MemoryTable) -> MemoryTable {
    MemoryTable {
        total: a.total.saturating_add(b.total),
        system_reserved: a.system_reserved.saturating_add(b.system_reserved),
        allocatable: a.allocatable.saturating_add(b.allocatable),
        reserved: a.reserved.saturating_add(b.reserved),
        free: a.free.saturating_add(b.free),
    }
}

struct Row {
    label: String,
    table: Option<MemoryTable>,
    tooltip_head: String,
    sum_row: bool,
}

struct Group {
    ids: Vec<u32>,
    rows: Vec<Row>,
    missing: Vec<u32>,
}

fn groups_for(state: &MachineState, kind: &str) -> Vec<Group> {
    let mut keys: Vec<Vec<u32>> = state
        .iter()
        .map(|(&id, n)| group_key(id, &n.cells))
        .collect();
    keys.sort_by_key(|k| (k.first().copied(), k.len()));
    keys.dedup();
    let mut out = Vec::new();
    for key in keys {
        let members: Vec<u32> = state
            .iter()
            .filter(|(&id, n)| group_key(id, &n.cells) == key)
            .map(|(&id, _)| id)
            .collect();
        let missing: Vec<u32> = key
            .iter()
            .copied()
            .filter(|id| !state.contains_key(id))
            .collect();
        let mut rows = Vec::new();
        let mut sum = MemoryTable::default();
        let mut any = false;
        for id in &members {
            let n = &state[id];
            let t = n.memory_map.get(kind).copied();
            if let Some(t) = t {
                sum = add(&sum, &t);
                any = true;
            }
            rows.push(Row {
                label: format!("NUMA {id}"),
                table: t,
                tooltip_head: format!(
                    "NUMA node {id}, {kind} ({} assignments, cells {})",
                    n.number_of_assignments,
                    ids_text(&n.cells)
                ),
                sum_row: false,
            });
        }
        if key.len() > 1 {
            rows.push(Row {
                label: format!("\u{3a3} group {}", ids_text(&key)),
                table: any.then_some(sum),
                tooltip_head: format!("NUMA group {}, {kind}: sums", ids_text(&key)),
                sum_row: true,
            });
        }
        out.push(Group {
            ids: key,
            rows,
            missing,
        });
    }
    out
}

fn tooltip(head: &str, t: &MemoryTable) -> String {
    format!(
        "{head}\ntotal {} ({} bytes)\nsystem reserved {} ({} bytes)\nallocatable {} ({} bytes)\nreserved {} ({} bytes)\nfree {} ({} bytes)",
        format_human_bytes(t.total),
        t.total,
        format_human_bytes(t.system_reserved),
        t.system_reserved,
        format_human_bytes(t.allocatable),
        t.allocatable,
        format_human_bytes(t.reserved),
        t.reserved,
        format_human_bytes(t.free),
        t.free
    )
}

fn draw_bar(out: &mut String, y: u32, row: &Row, scale: f64) {
    let bar_y = y + (ROW_H - BAR_H) / 2;
    let weight = if row.sum_row { "600" } else { "400" };
    let _ = writeln!(
        out,
        r#"<text x="{}" y="{}" font-weight="{weight}">{}</text>"#,
        LABEL_X + 4,
        bar_y + BAR_H - 4,
        esc(&row.label)
    );
    let Some(t) = row.table else {
        let _ = writeln!(
            out,
            r##"<text x="{BAR_X}" y="{}" fill="#777">no such memory type on this node</text>"##,
            bar_y + BAR_H - 4
        );
        return;
    };
    let tip = esc(&tooltip(&row.tooltip_head, &t));
    let _ = writeln!(out, "<g><title>{tip}</title>");
    // Track and segments.
    let _ = writeln!(
        out,
        r##"<rect x="{BAR_X}" y="{bar_y}" width="{BAR_W}" height="{BAR_H}" fill="#f4f4f4" rx="2"/>"##
    );
    let mut x = BAR_X as f64;
    for (v, color, _) in segments(&t) {
        if v == 0 {
            continue;
        }
        let w = (v as f64 * scale).max(1.0);
        let _ = writeln!(
            out,
            r#"<rect x="{x:.1}" y="{bar_y}" width="{w:.1}" height="{BAR_H}" fill="{color}"/>"#
        );
        x += w;
    }
    if t.total > 0 {
        let w = (t.total as f64 * scale).max(1.0);
        let dash = if row.sum_row {
            r#" stroke-dasharray="4 2""#
        } else {
            ""
        };
        let _ = writeln!(
            out,
            r##"<rect x="{BAR_X}" y="{bar_y}" width="{w:.1}" height="{BAR_H}" fill="none" stroke="#333" stroke-width="1"{dash}/>"##
        );
    }
    let _ = writeln!(out, "</g>");
    let mut text = if t.total == 0 && t.allocatable == 0 {
        "none on this node".to_string()
    } else {
        format!(
            "reserved {} \u{b7} free {} of {}",
            format_human_bytes(t.reserved),
            format_human_bytes(t.free),
            format_human_bytes(t.allocatable)
        )
    };
    let consistent = t.reserved.checked_add(t.free) == Some(t.allocatable);
    let _ = write!(
        out,
        r#"<text x="{TEXT_X}" y="{}"{}>"#,
        bar_y + BAR_H - 4,
        if row.sum_row {
            r#" font-weight="600""#
        } else {
            ""
        }
    );
    if !consistent {
        text.push_str("  ");
    }
    let _ = write!(out, "{}", esc(&text));
    if !consistent {
        let _ = write!(
            out,
            r#"<tspan fill="{C_WARN}">(reserved + free ≠ allocatable)</tspan>"#
        );
    }
    let _ = writeln!(out, "</text>");
}

/// The devices panel (see [`render_node_state`]); returns the next free y.
fn draw_devices(body: &mut String, mut y: u32, devices: &[DevicePlacement]) -> u32 {
    let mut by_node: std::collections::BTreeMap<Option<u32>, Vec<&DevicePlacement>> =
        std::collections::BTreeMap::new();
    for d in devices {
        match &d.numa {
            Some(nodes) if !nodes.is_empty() => {
                for &n in nodes {
                    by_node.entry(Some(n)).or_default().push(d);
                }
            }
            _ => by_node.entry(None).or_default().push(d),
        }
    }
    y += 8;
    let _ = writeln!(
        body,
        r##"<line x1="{LABEL_X}" y1="{y}" x2="{}" y2="{y}" stroke="#bbb"/>"##,
        WIDTH - 20
    );
    y += 20;
    let held = devices.iter().filter(|d| d.holder.is_some()).count();
    let _ = writeln!(
        body,
        r#"<text x="{LABEL_X}" y="{y}" font-size="15" font-weight="700">devices</text>"#
    );
    let _ = writeln!(
        body,
        r##"<text x="{BAR_X}" y="{y}" fill="#444">{} devices, {held} allocated, per NUMA node</text>"##,
        devices.len()
    );
    y += 8;
    for (node, list) in by_node {
        y += 18;
        let label = node.map_or("no topology".to_string(), |n| {
            format!("devices on NUMA {n}")
        });
        let _ = writeln!(
            body,
            r#"<text x="{LABEL_X}" y="{y}" font-weight="700">{}</text>"#,
            esc(&label)
        );
        for d in list {
            let (fill, what) = match (&d.holder, d.healthy) {
                (Some((pod, c)), _) => (C_RESERVED, format!("pod {pod}, container {c}")),
                (None, true) => (C_FREE, "free".to_string()),
                (None, false) => (C_WARN, "free (unhealthy)".to_string()),
            };
            let text = format!("{} ({}): {what}", d.id, d.resource);
            let _ = writeln!(
                body,
                r##"<g><title>{t}</title><rect x="{BAR_X}" y="{}" width="12" height="12" fill="{fill}" stroke="#333" stroke-width="0.5"/><text x="{}" y="{}">{t}</text></g>"##,
                y - 10,
                BAR_X + 18,
                y,
                t = esc(&text)
            );
            y += 16;
        }
        y -= 16;
    }
    y + 12
}

/// Renders the machine state as a standalone SVG document. `title` is shown at the top
/// (escaped). One panel per memory type; within it one bar per NUMA node, the nodes of a
/// multi-node NUMA group boxed together with a dashed bar of the group's sums. Bars of a
/// panel share one scale. Every bar carries a tooltip with exact byte counts.
pub fn render_memory_state(state: &MachineState, title: &str) -> String {
    render_node_state(state, title, &[])
}

/// [`render_memory_state`] plus, when `devices` is not empty, a panel of the devices per
/// NUMA node: each device with its resource and, when allocated, the pod uid and container
/// holding it ("free" otherwise; unhealthy ones marked). A device on two nodes appears under
/// both; devices without topology are listed under "no topology".
pub fn render_node_state(state: &MachineState, title: &str, devices: &[DevicePlacement]) -> String {
    let mut body = String::new();
    let mut y: u32 = 20;
    let _ = writeln!(
        body,
        r#"<text x="{LABEL_X}" y="{}" font-size="18" font-weight="700">{}</text>"#,
        y + 14,
        esc(title)
    );
    y += 30;
    // Legend.
    let legend = [
        (C_SYSTEM, "system reserved"),
        (C_OTHER, "not allocatable (hugepages, for memory)"),
        (C_RESERVED, "reserved by pods"),
        (C_FREE, "free"),
    ];
    let mut lx = LABEL_X;
    for (color, name) in legend {
        let _ = writeln!(
            body,
            r##"<rect x="{lx}" y="{y}" width="14" height="14" fill="{color}" stroke="#333" stroke-width="0.5"/><text x="{}" y="{}">{}</text>"##,
            lx + 20,
            y + 11,
            esc(name)
        );
        lx += 20 + (6.4 * name.len() as f64) as u32 + 22;
    }
    y += 22;
    let _ = writeln!(
        body,
        r##"<text x="{LABEL_X}" y="{}" fill="#555">Outlined: the node's total. Boxed: a NUMA group (a multi-node allocation); the dashed bar is the group's sum, which the kubelet checks on restart.</text>"##,
        y + 11
    );
    y += 24;

    let types = memory_types(state);
    if state.is_empty() || types.is_empty() {
        let _ = writeln!(
            body,
            r##"<text x="{LABEL_X}" y="{}" fill="#555">No NUMA nodes in this state (the memory manager's None policy keeps none).</text>"##,
            y + 14
        );
        y += 30;
    }
    for kind in &types {
        let groups = groups_for(state, kind);
        let max = groups
            .iter()
            .flat_map(|g| g.rows.iter())
            .filter_map(|r| r.table.as_ref().map(extent))
            .max()
            .unwrap_or(0);
        let scale = if max == 0 {
            0.0
        } else {
            f64::from(BAR_W) / max as f64
        };
        // Panel heading with the machine-wide sums.
        let total = state
            .values()
            .filter_map(|n| n.memory_map.get(kind))
            .fold(MemoryTable::default(), |acc, t| add(&acc, t));
        y += 8;
        let _ = writeln!(
            body,
            r##"<line x1="{LABEL_X}" y1="{y}" x2="{}" y2="{y}" stroke="#bbb"/>"##,
            WIDTH - 20
        );
        y += 20;
        let _ = writeln!(
            body,
            r#"<text x="{LABEL_X}" y="{y}" font-size="15" font-weight="700">{}</text>"#,
            esc(kind)
        );
        let _ = writeln!(
            body,
            r##"<text x="{BAR_X}" y="{y}" fill="#444">all nodes: total {}, allocatable {}, reserved {}, free {}</text>"##,
            format_human_bytes(total.total),
            format_human_bytes(total.allocatable),
            format_human_bytes(total.reserved),
            format_human_bytes(total.free)
        );
        y += 10;
        for g in &groups {
            let joined = g.ids.len() > 1;
            let top = y + 4;
            if joined {
                let h = ROW_H * g.rows.len() as u32 + 12;
                let _ = writeln!(
                    body,
                    r#"<rect x="{}" y="{top}" width="{}" height="{h}" rx="6" fill="{C_GROUP_FILL}" stroke="{C_GROUP_LINE}" stroke-width="1.5"/>"#,
                    LABEL_X - 8,
                    WIDTH - LABEL_X - 12
                );
                y += 10;
            } else {
                y += 4;
            }
            let first_mid = y + ROW_H / 2;
            for row in &g.rows {
                draw_bar(&mut body, y, row, scale);
                y += ROW_H;
            }
            if joined {
                // A bracket joining the members' bars.
                let members = g.rows.iter().filter(|r| !r.sum_row).count() as u32;
                let last_mid = first_mid + ROW_H * members.saturating_sub(1);
                let bx = BAR_X - 10;
                let _ = writeln!(
                    body,
                    r#"<path d="M{} {first_mid} H{bx} V{last_mid} H{}" fill="none" stroke="{C_GROUP_LINE}" stroke-width="2"/>"#,
                    BAR_X - 2,
                    BAR_X - 2
                );
                if !g.missing.is_empty() {
                    let _ = writeln!(
                        body,
                        r#"<text x="{TEXT_X}" y="{}" fill="{C_WARN}">group names NUMA {} absent from the state</text>"#,
                        y + 12,
                        ids_text(&g.missing)
                    );
                    y += 16;
                }
                y += 4;
            }
        }
        y += 6;
    }
    if !devices.is_empty() {
        y = draw_devices(&mut body, y, devices);
    }
    y += 10;
    let mut svg = String::new();
    let _ = writeln!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{y}" viewBox="0 0 {WIDTH} {y}" role="img" aria-label="{}">"#,
        esc(title)
    );
    let _ = writeln!(svg, "<title>{}</title>", esc(title));
    svg.push_str(
        "<style>text { font-family: system-ui, -apple-system, 'Segoe UI', Helvetica, Arial, sans-serif; font-size: 12px; fill: #222; }</style>\n",
    );
    let _ = writeln!(
        svg,
        r#"<rect x="0" y="0" width="{WIDTH}" height="{y}" fill="white"/>"#
    );
    svg.push_str(&body);
    svg.push_str("</svg>\n");
    svg
}

#[cfg(test)]
mod tests {
    use super::*;
    use nmm_core::memorymanager::state::NumaNodeState;
    use std::collections::BTreeMap;

    const GI: u64 = 1 << 30;

    fn table(total: u64, sr: u64, reserved: u64) -> MemoryTable {
        MemoryTable {
            total,
            system_reserved: sr,
            allocatable: total - sr,
            reserved,
            free: total - sr - reserved,
        }
    }

    fn state() -> MachineState {
        let mut ms = MachineState::new();
        for id in 0..3u32 {
            let mut map = BTreeMap::new();
            map.insert("memory".to_string(), table(16 * GI, GI, 4 * GI));
            map.insert("hugepages-1Gi".to_string(), table(2 * GI, 0, 0));
            ms.insert(
                id,
                NumaNodeState {
                    number_of_assignments: 2,
                    memory_map: map,
                    cells: if id < 2 { vec![0, 1] } else { vec![2] },
                },
            );
        }
        ms
    }

    #[test]
    fn one_bar_per_node_and_type_groups_joined() {
        let svg = render_memory_state(&state(), "test <&> title");
        assert!(svg.starts_with("<svg "));
        assert!(svg.trim_end().ends_with("</svg>"));
        assert!(svg.contains("test &lt;&amp;&gt; title"));
        // 3 nodes x 2 types node bars, plus one group-sum bar per type.
        assert_eq!(svg.matches("\">NUMA ").count(), 6);
        assert_eq!(svg.matches("group {0,1}</text>").count(), 2);
        assert_eq!(
            svg.matches(&format!("stroke=\"{C_GROUP_LINE}\" stroke-width=\"1.5\""))
                .count(),
            2
        );
        // memory panel first.
        let m = svg.find(">memory</text>").unwrap();
        let h = svg.find(">hugepages-1Gi</text>").unwrap();
        assert!(m < h);
        assert!(svg.contains("reserved 4Gi \u{b7} free 11Gi of 15Gi"));
        assert!(svg.contains("reserved 8Gi \u{b7} free 22Gi of 30Gi"));
    }

    #[test]
    fn devices_are_drawn_under_their_numa_nodes_with_holders() {
        let d = |id: &str, numa: Option<Vec<u32>>, holder: Option<(&str, &str)>| DevicePlacement {
            resource: "example.com/nic".into(),
            id: id.into(),
            numa,
            healthy: true,
            holder: holder.map(|(p, c)| (p.to_string(), c.to_string())),
        };
        let devices = [
            d("nic-0", Some(vec![0]), Some(("uid-a", "c"))),
            d("nic-1", Some(vec![1]), None),
            d("acc-<0>", None, None),
        ];
        let svg = render_node_state(&state(), "t", &devices);
        let n0 = svg.find(">devices on NUMA 0<").unwrap();
        let n1 = svg.find(">devices on NUMA 1<").unwrap();
        let held = svg
            .find("nic-0 (example.com/nic): pod uid-a, container c")
            .unwrap();
        let free = svg.find("nic-1 (example.com/nic): free").unwrap();
        assert!(n0 < held && held < n1 && n1 < free, "{svg}");
        assert!(
            svg.contains(">no topology<") && svg.contains("acc-&lt;0&gt;"),
            "{svg}"
        );
        assert!(svg.contains("3 devices, 1 allocated"));
        assert!(!render_memory_state(&state(), "t").contains("devices, "));
    }

    #[test]
    fn empty_state_and_inconsistent_tables() {
        let svg = render_memory_state(&MachineState::new(), "none");
        assert!(svg.contains("No NUMA nodes"));
        let mut ms = state();
        ms.get_mut(&2)
            .unwrap()
            .memory_map
            .get_mut("memory")
            .unwrap()
            .free = 0;
        let svg = render_memory_state(&ms, "x");
        assert!(svg.contains("reserved + free \u{2260} allocatable"));
    }
}
