//! Human-readable tables (terminals); scripts get JSON.
//!
//! Every table and report fits the terminal: [`Style`] holds the width (`COLUMNS`, else the
//! terminal's, else 80), whether borders are ASCII (`--ascii`, or a locale that is not
//! UTF-8) and whether `-o wide` asked for every column. `main` sets it once with
//! [`set_style`]; [`new_table`] builds tables with it and [`FitWriter`] wraps the prose
//! lines around them.

use crate::simulate::Event;
use comfy_table::presets::{ASCII_FULL_CONDENSED, UTF8_FULL_CONDENSED};
use comfy_table::{ColumnConstraint, ContentArrangement, Table};
use nmm_core::memorymanager::state::Block;
use nmm_core::quantity::format_human_bytes;
use nmm_core::topology::hint::TopologyHint;
use std::io::Write;
use std::sync::OnceLock;

/// How human output is laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Style {
    /// Columns available; tables and prose lines are kept within it.
    pub width: usize,
    /// `+-|` borders and ASCII punctuation instead of box drawing.
    pub ascii: bool,
    /// `-o wide`: every column, and no width limit (as kubectl's wide output).
    pub wide: bool,
}

/// The width when neither `COLUMNS` nor a terminal says otherwise.
pub const DEFAULT_WIDTH: usize = 80;

static STYLE: OnceLock<Style> = OnceLock::new();

/// Sets the style for the process (first call wins).
pub fn set_style(s: Style) {
    let _ = STYLE.set(s);
}

/// The style `main` set, else the one the environment gives.
pub fn style() -> Style {
    *STYLE.get_or_init(|| Style::from_env(false, false))
}

/// True when the locale's character type is UTF-8: the first of `LC_ALL`, `LC_CTYPE`,
/// `LANG` that is set and not empty names UTF-8 (`C.UTF-8`, `en_US.utf8`). None set is
/// the C locale, which is not.
pub fn locale_is_utf8(var: impl Fn(&str) -> Option<String>) -> bool {
    ["LC_ALL", "LC_CTYPE", "LANG"]
        .iter()
        .find_map(|k| var(k).filter(|v| !v.is_empty()))
        .map(|v| {
            let v = v.to_ascii_lowercase();
            v.contains("utf-8") || v.contains("utf8")
        })
        .unwrap_or(false)
}

/// The width: `COLUMNS` when it is a number, else the terminal's (stdout), else 80.
pub fn width_from(columns: Option<String>, terminal: Option<usize>) -> usize {
    columns
        .and_then(|c| c.trim().parse::<usize>().ok())
        .filter(|&w| w >= 20)
        .or(terminal)
        .unwrap_or(DEFAULT_WIDTH)
}

impl Style {
    pub fn from_env(ascii_flag: bool, wide: bool) -> Style {
        let var = |k: &str| std::env::var(k).ok();
        Style {
            width: width_from(var("COLUMNS"), terminal_width()),
            ascii: ascii_flag || !locale_is_utf8(var),
            wide,
        }
    }
}

/// The terminal's columns when stdout is one (comfy-table asks crossterm), else none.
fn terminal_width() -> Option<usize> {
    Table::new().width().map(usize::from).filter(|&w| w >= 20)
}

/// A table in the current style: header, borders, and (unless wide) cells wrapped to fit
/// the width.
pub fn new_table(header: &[&str]) -> Table {
    styled_table(header, style())
}

pub fn styled_table(header: &[&str], s: Style) -> Table {
    let mut t = Table::new();
    t.load_preset(if s.ascii {
        ASCII_FULL_CONDENSED
    } else {
        UTF8_FULL_CONDENSED
    })
    .force_no_tty();
    if s.wide {
        t.set_content_arrangement(ContentArrangement::Disabled);
    } else {
        t.set_content_arrangement(ContentArrangement::Dynamic)
            .set_width(s.width.min(u16::MAX as usize) as u16);
    }
    t.set_header(header.iter().map(|s| s.to_string()).collect::<Vec<_>>());
    t
}

/// Hides columns of `t`, in `drop_order`, until the table fits the width without wrapping
/// (never with `-o wide`). Returns the headers of the hidden columns, for [`dropped_note`].
pub fn drop_to_fit(t: &mut Table, drop_order: &[usize]) -> Vec<String> {
    let st = style();
    if st.wide {
        return Vec::new();
    }
    let names: Vec<String> = t
        .header()
        .map(|h| h.cell_iter().map(|c| c.content()).collect())
        .unwrap_or_default();
    let mut dropped = Vec::new();
    t.set_content_arrangement(ContentArrangement::Disabled);
    for &i in drop_order {
        if table_width(t) <= st.width {
            break;
        }
        if let Some(c) = t.column_mut(i) {
            c.set_constraint(ColumnConstraint::Hidden);
            dropped.push(names.get(i).cloned().unwrap_or_default());
        }
    }
    t.set_content_arrangement(ContentArrangement::Dynamic);
    dropped
}

/// `(SYSTEM RESERVED and TOTAL left out to fit; -o wide shows every column)`, or nothing.
pub fn dropped_note(dropped: &[String]) -> String {
    if dropped.is_empty() {
        return String::new();
    }
    format!(
        "({} left out to fit; -o wide shows every column)\n",
        dropped.join(", ")
    )
}

/// The widest line of a rendered table, in characters.
pub fn table_width(t: &Table) -> usize {
    t.lines().map(|l| l.chars().count()).max().unwrap_or(0)
}

/// ASCII stand-ins for the punctuation the reports use.
pub fn to_ascii(s: &str) -> String {
    if s.is_ascii() {
        return s.to_string();
    }
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '—' | '–' | '─' | '━' => o.push('-'),
            '·' => o.push('/'),
            '…' => o.push_str("..."),
            '→' => o.push_str("->"),
            '≤' => o.push_str("<="),
            '≥' => o.push_str(">="),
            '×' => o.push('x'),
            '‘' | '’' => o.push('\''),
            '“' | '”' => o.push('"'),
            c => o.push(c),
        }
    }
    o
}

/// Characters of `s` as a terminal shows them (ANSI colour codes take no room).
pub fn visible_width(s: &str) -> usize {
    let mut n = 0;
    let mut esc = false;
    for c in s.chars() {
        if esc {
            if c.is_ascii_alphabetic() {
                esc = false;
            }
        } else if c == '\x1b' {
            esc = true;
        } else {
            n += 1;
        }
    }
    n
}

fn is_table_line(l: &str) -> bool {
    matches!(
        l.trim_start().chars().next(),
        Some('┌' | '│' | '╞' | '├' | '└' | '+' | '|' | '╭' | '╰')
    )
}

/// Wraps one line at spaces to `width` columns; continuation lines are indented like the
/// text after the line's indent and bullet (`  - `). A word longer than a line (a long
/// cpulist) is broken after its commas; other long words stay whole.
pub fn wrap_line(line: &str, width: usize) -> String {
    if visible_width(line) <= width || is_table_line(line) {
        return line.to_string();
    }
    let indent = line.len() - line.trim_start().len();
    let rest = &line[indent..];
    let bullet = if rest.starts_with("- ") || rest.starts_with("* ") {
        2
    } else {
        0
    };
    let hang = " ".repeat(indent + bullet + 2 * usize::from(bullet == 0));
    let room = width.saturating_sub(hang.len()).max(10);
    // (piece, joined to the previous piece without a space)
    let mut pieces: Vec<(&str, bool)> = Vec::new();
    for word in rest.split(' ') {
        if visible_width(word) <= room || !word.contains(',') {
            pieces.push((word, false));
            continue;
        }
        let mut first = true;
        for part in word.split_inclusive(',') {
            pieces.push((part, !first));
            first = false;
        }
    }
    let mut out = String::new();
    let mut cur = line[..indent].to_string();
    let mut cur_w = indent;
    for (i, (word, glued)) in pieces.into_iter().enumerate() {
        let w = visible_width(word);
        let sep = usize::from(!glued && i > 0);
        if i > 0 && cur_w + sep + w > width && !cur.trim().is_empty() {
            out.push_str(cur.trim_end());
            out.push('\n');
            cur = hang.clone();
            cur_w = hang.len();
        } else if sep == 1 {
            cur.push(' ');
            cur_w += 1;
        }
        cur.push_str(word);
        cur_w += w;
    }
    out.push_str(&cur);
    out
}

/// Every line of `text` wrapped to the style (ASCII punctuation when asked); tables are
/// left as their renderer laid them out.
pub fn fit_text(text: &str, s: Style) -> String {
    let text = if s.ascii {
        to_ascii(text)
    } else {
        text.to_string()
    };
    if s.wide {
        return text;
    }
    let mut o = String::with_capacity(text.len() + 64);
    for (i, l) in text.split('\n').enumerate() {
        if i > 0 {
            o.push('\n');
        }
        o.push_str(&wrap_line(l, s.width));
    }
    o
}

/// A writer that passes complete lines through [`fit_text`]: human output written in
/// pieces comes out wrapped. Flushes the partial last line on `flush`.
pub struct FitWriter<W: Write> {
    inner: W,
    buf: Vec<u8>,
    style: Style,
}

impl<W: Write> FitWriter<W> {
    pub fn new(inner: W, style: Style) -> Self {
        FitWriter {
            inner,
            buf: Vec::new(),
            style,
        }
    }
    fn emit(&mut self, upto: usize) -> std::io::Result<()> {
        let chunk: Vec<u8> = self.buf.drain(..upto).collect();
        let t = String::from_utf8_lossy(&chunk);
        self.inner.write_all(fit_text(&t, self.style).as_bytes())
    }
}

impl<W: Write> Write for FitWriter<W> {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(b);
        if let Some(p) = self.buf.iter().rposition(|&c| c == b'\n') {
            self.emit(p + 1)?;
        }
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        if !self.buf.is_empty() {
            let n = self.buf.len();
            self.emit(n)?;
        }
        self.inner.flush()
    }
}
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

fn devices_text(c: &nmm_core::node::ContainerResult) -> String {
    if c.devices.is_empty() {
        return "-".into();
    }
    c.devices
        .iter()
        .map(|(r, ids)| {
            format!(
                "{r}: {}",
                ids.iter().map(String::as_str).collect::<Vec<_>>().join(",")
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// What a rejected pod's container got before the failure, which the kubelet frees: a
/// partial allocation, not something the pod holds.
fn partial_text(what: String) -> String {
    if what == "-" || what == "shared" {
        "not allocated".into()
    } else {
        format!("partial {what}, freed")
    }
}

/// A step as a few lines of text and a table of its containers. A rejected pod's
/// containers are marked: whatever the managers handed out before the failure is a
/// partial allocation the kubelet frees, not something the pod holds.
pub fn event_text(step: usize, e: &Event) -> String {
    event_text_styled(step, e, style())
}

pub fn event_text_styled(step: usize, e: &Event, st: Style) -> String {
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
            let devices = st.wide || r.containers.iter().any(|c| !c.devices.is_empty());
            let mut header = vec!["container", "NUMA affinity", "exclusive CPUs"];
            if st.wide {
                header.push("#CPUs");
            }
            header.push("memory");
            if devices {
                header.push("devices");
            }
            let mut t = styled_table(&header, st);
            let mut partial = false;
            for c in &r.containers {
                let cpus = if c.cpus.is_empty() {
                    "shared".into()
                } else {
                    c.cpus.to_string()
                };
                let mut row = vec![
                    format!("{}{}", c.name, if c.init { " (init)" } else { "" }),
                    mask_text(&c.affinity),
                ];
                let held = !c.cpus.is_empty() || !c.memory.is_empty() || !c.devices.is_empty();
                if r.admitted {
                    row.push(cpus);
                    if st.wide {
                        row.push(c.cpus.len().to_string());
                    }
                    row.push(blocks_text(&c.memory));
                    if devices {
                        row.push(devices_text(c));
                    }
                } else {
                    partial |= held;
                    row.push(partial_text(cpus));
                    if st.wide {
                        row.push("0".into());
                    }
                    row.push(partial_text(blocks_text(&c.memory)));
                    if devices {
                        row.push(partial_text(devices_text(c)));
                    }
                }
                t.add_row(row);
            }
            s.push_str(&t.to_string());
            s.push('\n');
            if partial {
                s.push_str("  rejected: the pod holds nothing; a \"partial\" allocation is what a manager handed out before the failure, which the kubelet frees\n");
            }
            s
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |k| {
            vars.iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn locale() {
        assert!(locale_is_utf8(env(&[("LANG", "C.UTF-8")])));
        assert!(locale_is_utf8(env(&[
            ("LANG", "C"),
            ("LC_CTYPE", "en_US.utf8")
        ])));
        assert!(!locale_is_utf8(env(&[
            ("LANG", "en_US.UTF-8"),
            ("LC_ALL", "C")
        ])));
        assert!(locale_is_utf8(env(&[
            ("LANG", "de_DE.UTF-8"),
            ("LC_ALL", "")
        ])));
        assert!(!locale_is_utf8(env(&[])));
        assert!(!locale_is_utf8(env(&[("LANG", "POSIX")])));
    }

    #[test]
    fn width() {
        assert_eq!(width_from(None, None), 80);
        assert_eq!(width_from(Some("132".into()), Some(100)), 132);
        assert_eq!(width_from(Some("junk".into()), Some(100)), 100);
        assert_eq!(width_from(Some("5".into()), None), 80);
    }

    #[test]
    fn wraps_at_spaces_with_a_hanging_indent() {
        let l = "  - the merged hint's nodes {0} lack free memory (only 30.9Gi memory free of the 40Gi needed)";
        let w = wrap_line(l, 40);
        for x in w.lines() {
            assert!(x.chars().count() <= 40, "{w}");
        }
        assert!(
            w.starts_with("  - the merged hint's nodes {0} lack\n    free memory"),
            "{w}"
        );
        // Rejoined, the words are the same: none was cut.
        let words: Vec<&str> = w.split_whitespace().collect();
        assert_eq!(words, l.split_whitespace().collect::<Vec<_>>());
        // A word longer than the line stays whole, a cpulist breaks after a comma; table
        // lines are left alone.
        assert_eq!(wrap_line("x".repeat(50).as_str(), 40), "x".repeat(50));
        let cpus = format!(
            "  CPUs: {}",
            (0..20)
                .map(|i| format!("{}-{}", i * 10, i * 10 + 1))
                .collect::<Vec<_>>()
                .join(",")
        );
        let w = wrap_line(&cpus, 40);
        assert!(w.lines().all(|l| l.chars().count() <= 40), "{w}");
        assert_eq!(w.replace("\n    ", ""), cpus.replacen("CPUs: ", "CPUs:", 0));
        let t = format!("│ {} │", "a ".repeat(40));
        assert_eq!(wrap_line(&t, 40), t);
        // Colour codes take no room.
        let c = format!("\x1b[1m{}\x1b[0m", "abc ".repeat(10).trim_end());
        assert_eq!(wrap_line(&c, 39), c);
    }

    #[test]
    fn ascii_punctuation() {
        assert_eq!(to_ascii("a — b · c …"), "a - b / c ...");
        let st = Style {
            width: 80,
            ascii: true,
            wide: false,
        };
        let mut t = styled_table(&["A", "B"], st);
        t.add_row(vec!["1", "2"]);
        assert!(t.to_string().is_ascii());
    }

    #[test]
    fn drop_order_columns_only_when_too_wide() {
        // `style()` is the environment's here; only check the table API we rely on.
        let st = Style {
            width: 30,
            ascii: true,
            wide: false,
        };
        let mut t = styled_table(&["NAME", "LONG COLUMN", "OTHER"], st);
        t.add_row(vec!["x", "yyyyyyyyyyyyyyyyyyyy", "z"]);
        t.set_content_arrangement(ContentArrangement::Disabled);
        assert!(table_width(&t) > 30);
        t.column_mut(1)
            .unwrap()
            .set_constraint(ColumnConstraint::Hidden);
        assert!(table_width(&t) <= 30, "{t}");
    }
}
