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
    Table::new()
        .width()
        .map(usize::from)
        .filter(|&w| w >= 20)
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
/// text after the line's indent and bullet (`  - `). Words longer than a line stay whole.
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
    let mut out = String::new();
    let mut cur = line[..indent].to_string();
    let mut cur_w = indent;
    let mut first_word = true;
    for word in rest.split(' ') {
        let w = visible_width(word);
        if !first_word && cur_w + 1 + w > width && cur.trim() != "" {
            out.push_str(cur.trim_end());
            out.push('\n');
            cur = hang.clone();
            cur_w = hang.len();
        } else if !first_word {
            cur.push(' ');
            cur_w += 1;
        }
        cur.push_str(word);
        cur_w += w;
        first_word = false;
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
