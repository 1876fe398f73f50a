//! A fast reader for the YAML that scenarios, machine files and kubelet configs are
//! written in: block mappings and sequences, single-line flow collections, plain and
//! quoted single-line scalars, comments, one leading `---`. It gives up (`None`) on
//! anything else — anchors, aliases, tags, block scalars, multi-line scalars or flows,
//! several documents, tabs, duplicate keys, scalars whose YAML type it does not resolve
//! exactly as serde-saphyr does, and every syntax error — and the caller then reads the
//! file with serde-saphyr, which decides (and words the error). So this reader never
//! accepts a document serde-saphyr refuses, and gives the same tree for the ones it
//! accepts (tests compare them).
//!
//! Linear in the input; nesting is bounded by [`MAX_DEPTH`].

use crate::doc::{Doc, Scalar, MAX_DEPTH};
use std::borrow::Cow;

/// Gave up: the tree path reads the document.
#[derive(Debug)]
pub struct GiveUp;

type R<T> = Result<T, GiveUp>;

struct Frame {
    map: bool,
    indent: usize,
    at: usize,
    /// A key or dash was read and its value is still to come.
    pending: bool,
    /// Start of this mapping's keys in `Reader::keys`.
    keys_from: usize,
}

struct Reader<'a> {
    doc: Doc<'a>,
    stack: Vec<Frame>,
    /// Event indices of the keys of the open mappings (duplicate detection).
    keys: Vec<usize>,
    line: u32,
    done: bool,
}

/// Reads `text`; `None` when it is outside the subset (see the module doc).
pub fn parse(text: &str) -> Option<Doc<'_>> {
    let mut r = Reader {
        doc: Doc::default(),
        stack: Vec::new(),
        keys: Vec::new(),
        line: 0,
        done: false,
    };
    if text.starts_with('\u{feff}') {
        return None;
    }
    let mut seen_content = false;
    for (i, raw) in text.split('\n').enumerate() {
        r.line = i as u32 + 1;
        let line = raw.strip_suffix('\r').unwrap_or(raw);
        if line.contains('\t') || line.contains('\r') {
            return None;
        }
        let indent = line.len() - line.trim_start_matches(' ').len();
        let rest = &line[indent..];
        if rest.is_empty() || rest.starts_with('#') {
            continue;
        }
        if indent == 0
            && (rest.starts_with("---") || rest.starts_with("..."))
            && (rest.len() == 3 || rest.as_bytes()[3] == b' ')
        {
            let tail = rest[3..].trim_start_matches(' ');
            if rest.starts_with("---")
                && !seen_content
                && (tail.is_empty() || tail.starts_with('#'))
            {
                seen_content = true;
                continue;
            }
            return None;
        }
        if rest.starts_with('%') {
            return None;
        }
        seen_content = true;
        if r.done {
            return None;
        }
        r.line_at(indent, rest).ok()?;
    }
    r.finish().ok()
}

fn is_dash(s: &str) -> bool {
    s == "-" || s.starts_with("- ")
}

impl<'a> Reader<'a> {
    fn line_at(&mut self, indent: usize, rest: &'a str) -> R<()> {
        // Close what this line's indentation ends.
        while let Some(top) = self.stack.last_mut() {
            if top.indent > indent {
                self.close_top()?;
                continue;
            }
            if top.indent < indent {
                if !top.pending {
                    return Err(GiveUp);
                }
                break;
            }
            // Same indentation.
            if top.map {
                if top.pending && is_dash(rest) {
                    break; // a sequence at the key's indentation is its value
                }
                if top.pending {
                    self.null_value();
                }
                break;
            }
            if is_dash(rest) {
                if top.pending {
                    self.null_value();
                }
                break;
            }
            // A sequence at its parent key's indentation ends here.
            let n = self.stack.len();
            if n >= 2 && self.stack[n - 2].map && self.stack[n - 2].indent == indent {
                self.close_top()?;
                continue;
            }
            return Err(GiveUp);
        }
        self.node(indent, rest)
    }

    /// The node starting at column `col` with text `s` (non-empty, no leading space).
    fn node(&mut self, col: usize, s: &'a str) -> R<()> {
        if is_dash(s) {
            self.container(false, col)?;
            let rest = s[1..].trim_start_matches(' ');
            if rest.is_empty() || rest.starts_with('#') {
                return Ok(());
            }
            let col2 = col + (s.len() - rest.len());
            return self.node(col2, rest);
        }
        let flow = s.starts_with('{') || s.starts_with('[');
        if let Some((key, after)) = if flow { None } else { split_key(s)? } {
            self.container(true, col)?;
            self.key(key)?;
            let rest = after.trim_start_matches(' ');
            if rest.is_empty() || rest.starts_with('#') {
                return Ok(());
            }
            if is_dash(rest) {
                return Err(GiveUp);
            }
            return self.inline_value(rest);
        }
        // A scalar or a flow collection as a pending value, or the whole document.
        match self.stack.last() {
            Some(top) if top.pending => self.inline_value(s),
            None if flow => {
                self.inline_value(s)?;
                self.done = true;
                Ok(())
            }
            _ => Err(GiveUp),
        }
    }

    /// Makes the top of the stack a mapping (`map`) or sequence at `col`, opening one as
    /// the pending value of the top (or as the document) when needed; marks it pending.
    fn container(&mut self, map: bool, col: usize) -> R<()> {
        match self.stack.last_mut() {
            Some(top) if top.map == map && top.indent == col && !top.pending => {
                top.pending = true;
                return Ok(());
            }
            Some(top)
                if top.pending && (top.indent < col || (top.map && !map && top.indent == col)) =>
            {
                top.pending = false;
            }
            None if !self.done && self.doc.evs.is_empty() => {}
            _ => return Err(GiveUp),
        }
        if self.stack.len() >= MAX_DEPTH {
            return Err(GiveUp);
        }
        let at = self.doc.open(map, self.line);
        self.stack.push(Frame {
            map,
            indent: col,
            at,
            pending: true,
            keys_from: self.keys.len(),
        });
        Ok(())
    }

    fn key(&mut self, key: Cow<'a, str>) -> R<()> {
        let top = self.stack.last().ok_or(GiveUp)?;
        let from = top.keys_from;
        if self.keys.len() - from > 64 {
            return Err(GiveUp);
        }
        for &k in &self.keys[from..] {
            if matches!(self.doc.scalar(k), Some(Scalar::Str(o)) if *o == key) {
                return Err(GiveUp);
            }
        }
        self.keys.push(self.doc.evs.len());
        self.doc.scalar_at(Scalar::Str(key), self.line);
        Ok(())
    }

    fn null_value(&mut self) {
        self.doc.scalar_at(Scalar::Null, self.line);
        if let Some(top) = self.stack.last_mut() {
            top.pending = false;
        }
    }

    /// A value that ends on this line: a quoted or plain scalar or a flow collection,
    /// then at most a comment.
    fn inline_value(&mut self, s: &'a str) -> R<()> {
        let mut p = Flow {
            s,
            i: 0,
            line: self.line,
        };
        p.value(&mut self.doc, 0, true)?;
        p.skip_spaces();
        if p.i < s.len() && !p.at_comment() {
            return Err(GiveUp);
        }
        if let Some(top) = self.stack.last_mut() {
            top.pending = false;
        }
        Ok(())
    }

    fn close_top(&mut self) -> R<()> {
        let top = self.stack.last().ok_or(GiveUp)?;
        if top.pending {
            self.null_value();
        }
        let top = self.stack.pop().ok_or(GiveUp)?;
        self.keys.truncate(top.keys_from);
        self.doc.close(top.at);
        Ok(())
    }

    fn finish(mut self) -> R<Doc<'a>> {
        while !self.stack.is_empty() {
            self.close_top()?;
        }
        if self.doc.evs.is_empty() {
            return Err(GiveUp);
        }
        Ok(self.doc)
    }
}

/// `key: rest` or `key:` at the start of `s` (plain or quoted key); `None` when `s` is
/// not a mapping entry.
fn split_key(s: &str) -> R<Option<(Cow<'_, str>, &str)>> {
    let b = s.as_bytes();
    if b[0] == b'"' || b[0] == b'\'' {
        let mut f = Flow { s, i: 0, line: 0 };
        let k = f.quoted()?;
        let rest = &s[f.i..];
        let after = rest.trim_start_matches(' ');
        if let Some(a) = after.strip_prefix(':') {
            if a.is_empty() || a.starts_with(' ') {
                return Ok(Some((k, a)));
            }
        }
        return Ok(None);
    }
    let mut i = 0;
    while i < b.len() {
        if b[i] == b':' && (i + 1 == b.len() || b[i + 1] == b' ') {
            let key = s[..i].trim_end_matches(' ');
            // `<<` may be a merge key: serde-saphyr decides.
            if key.is_empty() || key == "<<" || key.contains(" #") || starts_with_indicator(key) {
                return Err(GiveUp);
            }
            return match resolve_plain(key)? {
                Scalar::Str(k) => Ok(Some((k, &s[i + 1..]))),
                Scalar::U64(_) if canonical_uint(key) => {
                    Ok(Some((Cow::Borrowed(key), &s[i + 1..])))
                }
                _ => Err(GiveUp),
            };
        }
        if b[i] == b'#' && i > 0 && b[i - 1] == b' ' {
            return Ok(None);
        }
        i += 1;
    }
    Ok(None)
}

fn starts_with_indicator(s: &str) -> bool {
    matches!(
        s.as_bytes()[0],
        b'[' | b']'
            | b'{'
            | b'}'
            | b','
            | b'#'
            | b'&'
            | b'*'
            | b'!'
            | b'|'
            | b'>'
            | b'\''
            | b'"'
            | b'%'
            | b'@'
            | b'`'
            | b'?'
            | b':'
    ) || is_dash(s)
}

fn canonical_uint(s: &str) -> bool {
    s == "0" || (!s.starts_with('0') && !s.is_empty() && s.bytes().all(|c| c.is_ascii_digit()))
}

/// A plain scalar's value as serde-saphyr resolves it, for the forms this reader is sure
/// of; gives up on the rest (YAML 1.1 booleans, octal, hex, `.inf`, `007`, ...).
fn resolve_plain(s: &str) -> R<Scalar<'_>> {
    match s {
        "~" | "null" => return Ok(Scalar::Null),
        "true" => return Ok(Scalar::Bool(true)),
        "false" => return Ok(Scalar::Bool(false)),
        _ => {}
    }
    let lower = s.len() <= 5 && {
        let l = s.to_ascii_lowercase();
        matches!(
            l.as_str(),
            "y" | "n" | "yes" | "no" | "on" | "off" | "true" | "false" | "null"
        )
    };
    if lower {
        return Err(GiveUp);
    }
    let b = s.as_bytes();
    let first = b[0];
    if !(first.is_ascii_digit() || matches!(first, b'-' | b'+' | b'.')) {
        return Ok(Scalar::Str(Cow::Borrowed(s)));
    }
    let body = s.strip_prefix(['-', '+']).unwrap_or(s);
    if s.starts_with('-') || !s.starts_with('+') {
        if canonical_uint(body) {
            if s.starts_with('-') {
                if body == "0" {
                    return Err(GiveUp);
                }
                return s.parse::<i64>().map(Scalar::I64).map_err(|_| GiveUp);
            }
            return s.parse::<u64>().map(Scalar::U64).map_err(|_| GiveUp);
        }
        if let Some((int, frac)) = body.split_once('.') {
            if canonical_uint(int)
                && !frac.is_empty()
                && frac.bytes().all(|c| c.is_ascii_digit())
                && body.len() <= 17
            {
                return s.parse::<f64>().map(Scalar::F64).map_err(|_| GiveUp);
            }
        }
    }
    if could_be_number(s) {
        return Err(GiveUp);
    }
    Ok(Scalar::Str(Cow::Borrowed(s)))
}

/// Whether some YAML number syntax (decimal, 0x, 0o, 0b, exponent, underscores, .inf,
/// .nan) might read `s` as a number.
fn could_be_number(s: &str) -> bool {
    let body = s.strip_prefix(['-', '+']).unwrap_or(s);
    let l = body.to_ascii_lowercase();
    if l == ".inf" || l == ".nan" {
        return true;
    }
    let mut dots = 0;
    let b = l.as_bytes();
    for (i, &c) in b.iter().enumerate() {
        match c {
            b'0'..=b'9' | b'a'..=b'f' | b'x' | b'o' | b'_' => {}
            b'.' => dots += 1,
            b'+' | b'-' if i > 0 && b[i - 1] == b'e' => {}
            _ => return false,
        }
    }
    dots <= 1
}

/// The single-line reader of scalars and flow collections.
struct Flow<'a> {
    s: &'a str,
    i: usize,
    line: u32,
}

impl<'a> Flow<'a> {
    fn peek(&self) -> Option<u8> {
        self.s.as_bytes().get(self.i).copied()
    }

    fn skip_spaces(&mut self) {
        while self.peek() == Some(b' ') {
            self.i += 1;
        }
    }

    fn at_comment(&self) -> bool {
        self.peek() == Some(b'#') && self.i > 0 && self.s.as_bytes()[self.i - 1] == b' '
    }

    /// A value: quoted scalar, flow collection or plain scalar. `block`: the plain
    /// scalar runs to the end of the line (or a comment), else to a flow indicator.
    fn value(&mut self, doc: &mut Doc<'a>, depth: usize, block: bool) -> R<()> {
        if depth >= MAX_DEPTH {
            return Err(GiveUp);
        }
        match self.peek().ok_or(GiveUp)? {
            b'"' | b'\'' => {
                let s = self.quoted()?;
                doc.scalar_at(Scalar::Str(s), self.line);
                Ok(())
            }
            b'{' => self.flow_map(doc, depth),
            b'[' => self.flow_seq(doc, depth),
            _ => {
                let t = self.plain(block)?;
                doc.scalar_at(resolve_plain(t)?, self.line);
                Ok(())
            }
        }
    }

    fn plain(&mut self, block: bool) -> R<&'a str> {
        let rest = &self.s[self.i..];
        if starts_with_indicator(rest) {
            return Err(GiveUp);
        }
        let b = rest.as_bytes();
        let mut end = b.len();
        for (j, &c) in b.iter().enumerate() {
            let next = b.get(j + 1).copied();
            if c == b'#' && j > 0 && b[j - 1] == b' ' {
                end = j;
                break;
            }
            if c == b':' && (next.is_none() || next == Some(b' ')) {
                if block {
                    return Err(GiveUp);
                }
                end = j;
                break;
            }
            if !block {
                if matches!(c, b',' | b'[' | b']' | b'{' | b'}') {
                    end = j;
                    break;
                }
                if c == b':' && matches!(next, Some(b',' | b']' | b'}')) {
                    return Err(GiveUp);
                }
            }
        }
        let t = rest[..end].trim_end_matches(' ');
        if t.is_empty() {
            return Err(GiveUp);
        }
        self.i += t.len();
        Ok(t)
    }

    fn quoted(&mut self) -> R<Cow<'a, str>> {
        let q = self.peek().ok_or(GiveUp)?;
        let start = self.i + 1;
        let b = self.s.as_bytes();
        let mut j = start;
        let mut simple = true;
        while j < b.len() {
            let c = b[j];
            if q == b'\'' && c == b'\'' {
                if b.get(j + 1) == Some(&b'\'') {
                    simple = false;
                    j += 2;
                    continue;
                }
                break;
            }
            if q == b'"' && c == b'"' {
                break;
            }
            if q == b'"' && c == b'\\' {
                simple = false;
                j += 2;
                continue;
            }
            j += 1;
        }
        if j >= b.len() {
            return Err(GiveUp); // closes on a later line
        }
        let inner = &self.s[start..j];
        self.i = j + 1;
        if simple {
            return Ok(Cow::Borrowed(inner));
        }
        if q == b'\'' {
            return Ok(Cow::Owned(inner.replace("''", "'")));
        }
        unescape(inner).map(Cow::Owned)
    }

    fn flow_map(&mut self, doc: &mut Doc<'a>, depth: usize) -> R<()> {
        self.i += 1;
        let at = doc.open(true, self.line);
        let mut keys: Vec<usize> = Vec::new();
        loop {
            self.skip_spaces();
            match self.peek().ok_or(GiveUp)? {
                b'}' => {
                    self.i += 1;
                    break;
                }
                b'"' | b'\'' => {
                    let k = self.quoted()?;
                    self.push_key(doc, &mut keys, k)?;
                }
                _ => {
                    let k = self.plain(false)?;
                    match resolve_plain(k)? {
                        Scalar::Str(k) => self.push_key(doc, &mut keys, k)?,
                        _ => return Err(GiveUp),
                    }
                }
            }
            self.skip_spaces();
            if self.peek() == Some(b':') {
                self.i += 1;
                self.skip_spaces();
                match self.peek().ok_or(GiveUp)? {
                    b',' | b'}' => doc.scalar_at(Scalar::Null, self.line),
                    _ => self.value(doc, depth + 1, false)?,
                }
                self.skip_spaces();
            } else {
                doc.scalar_at(Scalar::Null, self.line);
            }
            match self.peek().ok_or(GiveUp)? {
                b',' => self.i += 1,
                b'}' => {}
                _ => return Err(GiveUp),
            }
        }
        doc.close(at);
        Ok(())
    }

    fn push_key(&self, doc: &mut Doc<'a>, keys: &mut Vec<usize>, k: Cow<'a, str>) -> R<()> {
        if keys.len() > 64
            || keys
                .iter()
                .any(|&o| matches!(doc.scalar(o), Some(Scalar::Str(x)) if *x == k))
        {
            return Err(GiveUp);
        }
        keys.push(doc.evs.len());
        doc.scalar_at(Scalar::Str(k), self.line);
        Ok(())
    }

    fn flow_seq(&mut self, doc: &mut Doc<'a>, depth: usize) -> R<()> {
        self.i += 1;
        let at = doc.open(false, self.line);
        loop {
            self.skip_spaces();
            if self.peek().ok_or(GiveUp)? == b']' {
                self.i += 1;
                break;
            }
            self.value(doc, depth + 1, false)?;
            self.skip_spaces();
            match self.peek().ok_or(GiveUp)? {
                b',' => self.i += 1,
                b']' => {}
                _ => return Err(GiveUp), // `[a: b]` and the like
            }
        }
        doc.close(at);
        Ok(())
    }
}

fn unescape(s: &str) -> R<String> {
    let mut out = String::with_capacity(s.len());
    let mut it = s.chars();
    while let Some(c) = it.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        let e = it.next().ok_or(GiveUp)?;
        let hex = |it: &mut std::str::Chars, n: usize| -> R<char> {
            let h: String = it.take(n).collect();
            if h.len() != n {
                return Err(GiveUp);
            }
            let v = u32::from_str_radix(&h, 16).map_err(|_| GiveUp)?;
            char::from_u32(v).ok_or(GiveUp)
        };
        out.push(match e {
            '\\' => '\\',
            '"' => '"',
            '/' => '/',
            ' ' => ' ',
            'n' => '\n',
            't' => '\t',
            'r' => '\r',
            '0' => '\0',
            'a' => '\x07',
            'b' => '\x08',
            'e' => '\x1b',
            'f' => '\x0c',
            'v' => '\x0b',
            'x' => hex(&mut it, 2)?,
            'u' => hex(&mut it, 4)?,
            'U' => hex(&mut it, 8)?,
            _ => return Err(GiveUp),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests;
