//! `nmm node`: shows the NUMA machine a sysfs tree describes, as a table, as the `machine:`
//! block of a scenario file (to paste into one), or as JSON.
//!
//! Every renderer returns text that ends with a newline (print it with `print!`).

use comfy_table::{CellAlignment, Table};
use nmm_core::machine::Machine;
use serde_json::{json, Map, Value};
use std::collections::BTreeSet;
use std::fmt::Write as _;

const BINARY_SUFFIXES: [&str; 6] = ["Ki", "Mi", "Gi", "Ti", "Pi", "Ei"];

/// A byte count as an exact Kubernetes quantity: the largest binary suffix that divides it
/// (`34359738368` -> `32Gi`, `33181818880` -> `32404120Ki`), else plain bytes (`0`, `1536`).
/// This is also the canonical form the API server would print.
pub fn exact_quantity(bytes: u64) -> String {
    if bytes == 0 {
        return "0".to_string();
    }
    let mut v = bytes;
    let mut suffix = "";
    for s in BINARY_SUFFIXES {
        if v & 1023 != 0 {
            break;
        }
        v /= 1024;
        suffix = s;
    }
    format!("{v}{suffix}")
}

/// A byte count for people, in the one unit style of every human output: `32Gi`,
/// `30.9Gi`, `512Mi`, `0`.
pub fn human_bytes(bytes: u64) -> String {
    nmm_core::quantity::format_human_bytes(bytes)
}

fn distances_present(m: &Machine) -> bool {
    m.nodes.iter().any(|n| !n.distances.is_empty())
}

fn join<T: ToString>(items: &[T], sep: &str) -> String {
    items
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(sep)
}

fn node_table(m: &Machine, st: crate::render::Style, with_distances: bool) -> Table {
    let mut header = vec!["NODE", "CPUS", "#CPUS", "MEMORY", "HUGEPAGES"];
    if with_distances {
        header.push("DISTANCES");
    }
    let mut t = crate::render::styled_table(&header, st);
    for n in &m.nodes {
        let cpus = if n.cpus.is_empty() {
            "-".to_string()
        } else {
            n.cpus.to_string()
        };
        let hugepages = if n.hugepages.is_empty() {
            "-".to_string()
        } else {
            n.hugepages
                .iter()
                .map(|(&size, &total)| {
                    let name = exact_quantity(size);
                    if total == 0 {
                        format!("{name}: 0")
                    } else {
                        let pages = total / size.max(1);
                        format!("{name}: {} ({pages} pages)", human_bytes(total))
                    }
                })
                .collect::<Vec<_>>()
                .join(", ")
        };
        let mut row = vec![
            n.id.to_string(),
            cpus,
            n.cpus.len().to_string(),
            human_bytes(n.memory),
            hugepages,
        ];
        if with_distances {
            row.push(if n.distances.is_empty() {
                "-".to_string()
            } else {
                join(&n.distances, " ")
            });
        }
        t.add_row(row);
    }
    for col in [0, 2, 3] {
        if let Some(c) = t.column_mut(col) {
            c.set_cell_alignment(CellAlignment::Right);
        }
    }
    t
}

/// A table with one row per NUMA node — id, CPUs (cpulist), CPU count, memory, hugepages per
/// size, distance row — followed by a one-line summary of the machine. Without `-o wide`,
/// the distance column is dropped when the table would not fit the width otherwise.
pub fn render_table(m: &Machine) -> String {
    render_table_styled(m, None, crate::render::style())
}

/// [`render_table`] with the machine's memory capacity (MemTotal) in the summary when known.
pub fn render_table_with_capacity(m: &Machine, capacity: Option<u64>) -> String {
    render_table_styled(m, capacity, crate::render::style())
}

pub fn render_table_styled(m: &Machine, capacity: Option<u64>, st: crate::render::Style) -> String {
    let full = node_table(m, st, true);
    let (t, dropped) = if st.wide || !distances_present(m) {
        (full, false)
    } else {
        // Wrapped to the width, a long distance row becomes a tall column; drop it then.
        let unwrapped = node_table(m, crate::render::Style { wide: true, ..st }, true);
        if crate::render::table_width(&unwrapped) > st.width {
            (node_table(m, st, false), true)
        } else {
            (full, false)
        }
    };
    let mut out = t.to_string();
    out.push('\n');
    if dropped {
        out.push_str("(NUMA distances left out to fit; `nmm node -o wide` shows them)\n");
    }
    let memory_only = m.nodes.iter().filter(|n| n.cpus.is_empty()).count();
    let cores: BTreeSet<(u32, u32, u32)> =
        m.cpus.iter().map(|c| (c.numa, c.socket, c.core)).collect();
    let sockets: BTreeSet<u32> = m.cpus.iter().map(|c| c.socket).collect();
    let total: u64 = m.nodes.iter().map(|n| n.memory).sum();
    let plural = |n: usize, word: &str| {
        if n == 1 {
            format!("{n} {word}")
        } else {
            format!("{n} {word}s")
        }
    };
    let _ = write!(
        out,
        "{}{}, {}, {}, {}; {} memory",
        plural(m.nodes.len(), "NUMA node"),
        if memory_only > 0 {
            format!(" ({memory_only} without CPUs)")
        } else {
            String::new()
        },
        plural(m.cpus.len(), "CPU"),
        plural(cores.len(), "core"),
        plural(sockets.len(), "socket"),
        human_bytes(total),
    );
    if let Some(c) = capacity {
        let _ = write!(out, " (MemTotal {})", human_bytes(c));
    }
    if !distances_present(m) {
        out.push_str("; no NUMA distances");
    }
    out.push('\n');
    out
}

/// The `machine:` block of a scenario file (see `spec/scenario-format.md`) describing `m`,
/// ready to paste: `numaNodes` (id, cpus, memory, hugepages), `distances` (row i = the `distance`
/// file of the i-th node listed; omitted when no node has one) and the detailed `cpus` list.
/// Quantities are exact (`32Gi`, `32404120Ki`, or plain bytes); a hugepage size with no pages is
/// kept as `0`, nodes without hugepage sizes have no `hugepages` key.
pub fn render_machine_yaml(m: &Machine) -> String {
    render_machine_yaml_with_capacity(m, None)
}

/// [`render_machine_yaml`] with `memoryCapacity` (MemTotal of `/proc/meminfo`: what the
/// kubelet's Node Allocatable and percentage eviction thresholds use) when it is known.
pub fn render_machine_yaml_with_capacity(m: &Machine, capacity: Option<u64>) -> String {
    let mut out = String::from("machine:\n  numaNodes:\n");
    if m.nodes.is_empty() {
        out = String::from("machine:\n  numaNodes: []\n");
    }
    for n in &m.nodes {
        let _ = writeln!(out, "    - id: {}", n.id);
        let _ = writeln!(out, "      cpus: \"{}\"", n.cpus);
        let _ = writeln!(out, "      memory: {}", exact_quantity(n.memory));
        if !n.hugepages.is_empty() {
            let entries: Vec<String> = n
                .hugepages
                .iter()
                .map(|(&size, &total)| {
                    format!("{}: {}", exact_quantity(size), exact_quantity(total))
                })
                .collect();
            let _ = writeln!(out, "      hugepages: {{{}}}", entries.join(", "));
        }
    }
    if let Some(c) = capacity {
        let _ = writeln!(out, "  memoryCapacity: {}", exact_quantity(c));
    }
    if distances_present(m) {
        out.push_str("  distances:\n");
        for n in &m.nodes {
            let _ = writeln!(out, "    - [{}]", join(&n.distances, ", "));
        }
    }
    if !m.cpus.is_empty() {
        out.push_str("  cpus:\n");
        for c in &m.cpus {
            let _ = writeln!(
                out,
                "    - {{id: {}, core: {}, socket: {}, numa: {}}}",
                c.id, c.core, c.socket, c.numa
            );
        }
    }
    out
}

/// The machine as JSON, with the field names of the scenario's `machine` block and sizes in
/// bytes: `{"numaNodes": [{"id", "cpus" (cpulist), "memory", "hugepages": {"2Mi": bytes}}],
/// "distances": [[...]] (omitted when no node has a distance file), "cpus": [{"id", "core",
/// "socket", "numa"}]}`. `{"machine": <this>}` is a valid scenario machine.
pub fn render_json(m: &Machine) -> String {
    let nodes: Vec<Value> = m
        .nodes
        .iter()
        .map(|n| {
            let hp: Map<String, Value> = n
                .hugepages
                .iter()
                .map(|(&size, &total)| (exact_quantity(size), json!(total)))
                .collect();
            json!({
                "id": n.id,
                "cpus": n.cpus.to_string(),
                "memory": n.memory,
                "hugepages": hp,
            })
        })
        .collect();
    let mut obj = Map::new();
    obj.insert("numaNodes".into(), Value::Array(nodes));
    if distances_present(m) {
        let rows: Vec<Value> = m.nodes.iter().map(|n| json!(n.distances)).collect();
        obj.insert("distances".into(), Value::Array(rows));
    }
    let cpus: Vec<Value> = m
        .cpus
        .iter()
        .map(|c| json!({"id": c.id, "core": c.core, "socket": c.socket, "numa": c.numa}))
        .collect();
    obj.insert("cpus".into(), Value::Array(cpus));
    let mut s = serde_json::to_string_pretty(&Value::Object(obj))
        .unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"));
    s.push('\n');
    s
}

/// [`render_json`] plus `pciDevices` (see `node_pci::pci_json`) when sysfs lists any: a
/// hint for `machine.devices`. Drop that key (`jq 'del(.pciDevices)'`) before using the
/// object as a scenario's `machine`.
pub fn render_json_with_pci(
    m: &Machine,
    capacity: Option<u64>,
    pci: &nmm_sysfs::pci::PciListing,
) -> String {
    if pci.devices.is_empty() && capacity.is_none() {
        return render_json(m);
    }
    let mut v: Value = serde_json::from_str(&render_json(m)).unwrap_or(Value::Null);
    if let Some(o) = v.as_object_mut() {
        if let Some(c) = capacity {
            o.insert("memoryCapacity".into(), json!(c));
        }
        if !pci.devices.is_empty() {
            o.insert("pciDevices".into(), super::node_pci::pci_json(pci));
        }
    }
    let mut s =
        serde_json::to_string_pretty(&v).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"));
    s.push('\n');
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use nmm_core::cpuset::CpuSet;
    use nmm_core::machine::{Cpu, NumaNode};
    use std::collections::BTreeMap;

    const MI: u64 = 1 << 20;
    const GI: u64 = 1 << 30;

    /// Two SMT nodes (2 cores x 2 threads each) with hugepages, plus a memory-only node.
    fn machine() -> Machine {
        let cpu = |id, core, socket, numa| Cpu {
            id,
            core,
            socket,
            numa,
        };
        Machine {
            nodes: vec![
                NumaNode {
                    id: 0,
                    cpus: CpuSet::parse("0-1,4-5").unwrap(),
                    memory: 32 * GI,
                    hugepages: BTreeMap::from([(2 * MI, 512 * MI), (GI, 0)]),
                    distances: vec![10, 21, 17],
                },
                NumaNode {
                    id: 1,
                    cpus: CpuSet::parse("2-3,6-7").unwrap(),
                    memory: 33181818880,
                    hugepages: BTreeMap::from([(2 * MI, 0), (GI, 0)]),
                    distances: vec![21, 10, 28],
                },
                NumaNode {
                    id: 2,
                    cpus: CpuSet::new(),
                    memory: 124 * GI,
                    hugepages: BTreeMap::new(),
                    distances: vec![17, 28, 10],
                },
            ],
            cpus: vec![
                cpu(0, 0, 0, 0),
                cpu(1, 1, 0, 0),
                cpu(2, 0, 1, 1),
                cpu(3, 1, 1, 1),
                cpu(4, 0, 0, 0),
                cpu(5, 1, 0, 0),
                cpu(6, 0, 1, 1),
                cpu(7, 1, 1, 1),
            ],
        }
    }

    #[test]
    fn exact_quantities() {
        for (bytes, q) in [
            (0, "0"),
            (1, "1"),
            (1023, "1023"),
            (1024, "1Ki"),
            (1536, "1536"),
            (2 * MI, "2Mi"),
            (GI, "1Gi"),
            (32 * GI, "32Gi"),
            (33181818880, "32404120Ki"),
            (130023424 * 1024, "124Gi"),
            (5 * GI + MI, "5121Mi"),
            (1 << 60, "1Ei"),
            (u64::MAX, "18446744073709551615"),
        ] {
            assert_eq!(exact_quantity(bytes), q, "{bytes}");
        }
    }

    #[test]
    fn human_units() {
        assert_eq!(human_bytes(0), "0");
        assert_eq!(human_bytes(512), "512");
        assert_eq!(human_bytes(32 * GI), "32Gi");
        assert_eq!(human_bytes(33181818880), "30.9Gi");
        assert_eq!(human_bytes(GI + 1), "1Gi");
        assert_eq!(human_bytes(1536 * MI), "1.5Gi");
        assert_eq!(human_bytes(u64::MAX), "16Ei");
    }

    #[test]
    fn yaml_block_exact() {
        let want = r#"machine:
  numaNodes:
    - id: 0
      cpus: "0-1,4-5"
      memory: 32Gi
      hugepages: {2Mi: 512Mi, 1Gi: 0}
    - id: 1
      cpus: "2-3,6-7"
      memory: 32404120Ki
      hugepages: {2Mi: 0, 1Gi: 0}
    - id: 2
      cpus: ""
      memory: 124Gi
  distances:
    - [10, 21, 17]
    - [21, 10, 28]
    - [17, 28, 10]
  cpus:
    - {id: 0, core: 0, socket: 0, numa: 0}
    - {id: 1, core: 1, socket: 0, numa: 0}
    - {id: 2, core: 0, socket: 1, numa: 1}
    - {id: 3, core: 1, socket: 1, numa: 1}
    - {id: 4, core: 0, socket: 0, numa: 0}
    - {id: 5, core: 1, socket: 0, numa: 0}
    - {id: 6, core: 0, socket: 1, numa: 1}
    - {id: 7, core: 1, socket: 1, numa: 1}
"#;
        assert_eq!(render_machine_yaml(&machine()), want);
    }

    #[test]
    fn yaml_without_distances_or_cpus() {
        let mut m = machine();
        for n in &mut m.nodes {
            n.distances.clear();
        }
        m.cpus.clear();
        let y = render_machine_yaml(&m);
        assert!(!y.contains("distances"), "{y}");
        assert!(!y.contains("  cpus:\n"), "{y}");
        assert_eq!(
            render_machine_yaml(&Machine::default()),
            "machine:\n  numaNodes: []\n"
        );
    }

    /// The YAML parses, and to the same data as the JSON (once quantities are read back).
    #[test]
    fn memory_capacity_is_printed_when_known() {
        let m = machine();
        let y = render_machine_yaml_with_capacity(&m, Some(65_000_000 * 1024));
        assert!(y.contains("\n  memoryCapacity: 65000000Ki\n"), "{y}");
        assert!(!render_machine_yaml(&m).contains("memoryCapacity"));
        let pci = nmm_sysfs::pci::PciListing::default();
        let j: Value =
            serde_json::from_str(&render_json_with_pci(&m, Some(1 << 30), &pci)).unwrap();
        assert_eq!(j["memoryCapacity"], json!(1u64 << 30));
        let t = render_table_with_capacity(&m, Some(1 << 30));
        assert!(t.contains("(MemTotal 1Gi)"), "{t}");
    }

    #[test]
    fn yaml_and_json_agree() {
        let m = machine();
        let y: Value = serde_saphyr::from_str(&render_machine_yaml(&m)).unwrap();
        let j: Value = serde_json::from_str(&render_json(&m)).unwrap();
        let y = &y["machine"];
        let parse_q = |v: &Value| -> u64 {
            match v {
                Value::Number(n) => n.as_u64().unwrap(),
                Value::String(s) => {
                    let (num, suf) =
                        s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
                    let pow = BINARY_SUFFIXES
                        .iter()
                        .position(|x| *x == suf)
                        .map_or(0, |p| p + 1);
                    num.parse::<u64>().unwrap() << (10 * pow)
                }
                other => panic!("not a quantity: {other}"),
            }
        };
        let (yn, jn) = (
            y["numaNodes"].as_array().unwrap(),
            j["numaNodes"].as_array().unwrap(),
        );
        assert_eq!(yn.len(), 3);
        for (a, b) in yn.iter().zip(jn) {
            assert_eq!(a["id"], b["id"]);
            assert_eq!(a["cpus"], b["cpus"]);
            assert_eq!(parse_q(&a["memory"]), b["memory"].as_u64().unwrap());
            let ah: BTreeMap<String, u64> = a
                .get("hugepages")
                .and_then(Value::as_object)
                .map(|o| o.iter().map(|(k, v)| (k.clone(), parse_q(v))).collect())
                .unwrap_or_default();
            let bh: BTreeMap<String, u64> = b["hugepages"]
                .as_object()
                .unwrap()
                .iter()
                .map(|(k, v)| (k.clone(), v.as_u64().unwrap()))
                .collect();
            assert_eq!(ah, bh);
        }
        assert_eq!(y["distances"], j["distances"]);
        assert_eq!(y["cpus"], j["cpus"]);
        assert_eq!(j["numaNodes"][1]["memory"], json!(33181818880u64));
        assert_eq!(
            j["numaNodes"][0]["hugepages"],
            json!({"2Mi": 536870912, "1Gi": 0})
        );
        assert_eq!(j["numaNodes"][2]["hugepages"], json!({}));
        assert_eq!(
            j["cpus"][6],
            json!({"id": 6, "core": 0, "socket": 1, "numa": 1})
        );
        assert!(render_json(&m).ends_with("}\n"));
    }

    #[test]
    fn table_rows_and_summary() {
        let utf8 = crate::render::Style {
            width: 80,
            ascii: false,
            wide: false,
        };
        let t = render_table_styled(&machine(), None, utf8);
        let lines: Vec<&str> = t.lines().collect();
        let cells = |l: &str| -> Vec<String> {
            l.split(['│', '┆']).map(|c| c.trim().to_string()).collect()
        };
        let row = |id: &str| {
            lines
                .iter()
                .find(|l| cells(l).get(1).map(String::as_str) == Some(id))
                .unwrap_or_else(|| panic!("no row for node {id}:\n{t}"))
                .to_string()
        };
        for h in ["NODE", "CPUS", "#CPUS", "MEMORY", "HUGEPAGES", "DISTANCES"] {
            assert!(lines[1].contains(h), "{t}");
        }
        let r0 = row("0");
        for part in [
            "0-1,4-5",
            "32Gi",
            "2Mi: 512Mi (256 pages), 1Gi: 0",
            "10 21 17",
        ] {
            assert!(r0.contains(part), "{part} not in {r0}");
        }
        let r1 = row("1");
        assert!(
            r1.contains("30.9Gi") && r1.contains("2Mi: 0, 1Gi: 0"),
            "{r1}"
        );
        let r2 = row("2");
        assert_eq!(
            cells(&r2)[1..7],
            ["2", "-", "0", "124Gi", "-", "17 28 10"],
            "{r2}"
        );
        assert_eq!(
            lines.last().unwrap(),
            &"3 NUMA nodes (1 without CPUs), 8 CPUs, 4 cores, 2 sockets; 186.9Gi memory"
        );
        assert!(t.ends_with('\n'));
    }

    #[test]
    fn renders_a_fake_sysfs_machine() {
        use nmm_sysfs::fake::FakeSysfs;
        let dir = tempfile::tempdir().unwrap();
        FakeSysfs::uniform(2, 2, 2, 8 * GI)
            .write_to(dir.path())
            .unwrap();
        let m = nmm_sysfs::SysfsReader::new(dir.path())
            .read_machine()
            .unwrap();
        let y = render_machine_yaml(&m);
        assert!(
            y.contains("    - id: 1\n      cpus: \"2-3,6-7\"\n      memory: 8Gi\n"),
            "{y}"
        );
        assert!(
            y.contains("  distances:\n    - [10, 20]\n    - [20, 10]\n"),
            "{y}"
        );
        let t = render_table(&m);
        assert!(
            t.ends_with("2 NUMA nodes, 8 CPUs, 4 cores, 2 sockets; 16Gi memory\n"),
            "{t}"
        );
    }

    /// What `nmm node -o yaml` prints reads back, through the scenario loader, as the same
    /// machine; so does `{"machine": <nmm node -o json>}`.
    #[test]
    fn scenario_loader_reads_back_the_same_machine() {
        use crate::scenario::{parse_machine, parse_yaml};
        use nmm_sysfs::fake::FakeSysfs;
        use std::path::Path;
        let dir = tempfile::tempdir().unwrap();
        FakeSysfs::uniform(3, 2, 2, 8 * GI + 4096)
            .write_to(dir.path())
            .unwrap();
        let from_fake = nmm_sysfs::SysfsReader::new(dir.path())
            .read_machine()
            .unwrap();
        for m in [machine(), from_fake] {
            let path = Path::new("node.yaml");
            let y = parse_yaml(&render_machine_yaml(&m), path).unwrap();
            assert_eq!(parse_machine(&y["machine"], path).unwrap(), m);
            let j = parse_yaml(&render_json(&m), path).unwrap();
            assert_eq!(parse_machine(&j, path).unwrap(), m);
        }
    }
}
