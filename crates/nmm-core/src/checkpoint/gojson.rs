//! JSON the way Go's `encoding/json` (Go 1.23, the toolchain of kubelet v1.32) reads and
//! writes it, for the checkpoint files:
//!
//! * [`parse`] checks the syntax of the whole input first (as `json.Unmarshal` does) and
//!   reports errors with Go's texts (`unexpected end of JSON input`,
//!   `invalid character 'x' looking for beginning of value`, ...). Strings are decoded like
//!   Go: invalid UTF-8 bytes and lone surrogates become U+FFFD. Duplicate keys are kept.
//! * [`Decoder`] maps a [`Value`] onto Go-typed targets with Go's rules: `null` clears
//!   maps/slices/pointers and leaves scalars and structs alone, struct keys match exactly or
//!   else case-insensitively, unknown keys are ignored, integers must parse with
//!   `strconv.ParseInt/ParseUint`, and the *first* type error is reported as
//!   `json: cannot unmarshal <what> into Go struct field <Struct>.<path> of type <type>`
//!   while decoding goes on.
//! * [`write_string`] quotes like `json.Marshal` (HTML-safe escapes, `\b`/`\f` since Go 1.22).

use std::collections::BTreeMap;

/// A parsed JSON value. Numbers keep their source text (Go parses them per target type).
/// Object members keep their order and duplicates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    Null,
    Bool(bool),
    Number(String),
    String(String),
    Array(Vec<Value>),
    Object(Vec<(String, Value)>),
}

impl Value {
    /// The word Go's `UnmarshalTypeError` uses for this kind of JSON value.
    pub fn kind(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Bool(_) => "bool",
            Value::Number(_) => "number",
            Value::String(_) => "string",
            Value::Array(_) => "array",
            Value::Object(_) => "object",
        }
    }
}

/// Go's scanner limit on nesting.
const MAX_DEPTH: usize = 10_000;
/// Containers deeper than this are validated but stored empty: no checkpoint field lies that
/// deep, and only the kind of such a value can matter (for a type error). Keeps the stored
/// tree shallow so that dropping it never recurses deeply.
const KEEP_DEPTH: usize = 64;

const UNEXPECTED_EOF: &str = "unexpected end of JSON input";

/// Go's `quoteChar`: how a byte is shown in a syntax error.
fn quote_char(c: u8) -> String {
    match c {
        b'\'' => r"'\''".to_owned(),
        b'"' => "'\"'".to_owned(),
        b'\\' => r"'\\'".to_owned(),
        0x07 => r"'\a'".to_owned(),
        0x08 => r"'\b'".to_owned(),
        0x0c => r"'\f'".to_owned(),
        b'\n' => r"'\n'".to_owned(),
        b'\r' => r"'\r'".to_owned(),
        b'\t' => r"'\t'".to_owned(),
        0x0b => r"'\v'".to_owned(),
        0x00..=0x1f | 0x7f => format!("'\\x{c:02x}'"),
        0x80..=0xa0 | 0xad => format!("'\\u{c:04x}'"),
        // Go converts the byte to the rune U+00XX, printable here.
        _ => format!("'{}'", char::from(c)),
    }
}

fn syntax_error(c: u8, context: &str) -> String {
    format!("invalid character {} {}", quote_char(c), context)
}

fn is_ws(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\n' | b'\r')
}

/// Appends `bytes` decoding UTF-8 like Go's `utf8.DecodeRune`: every byte that does not
/// start a valid sequence becomes one U+FFFD.
fn push_go_utf8(out: &mut String, mut bytes: &[u8]) {
    while !bytes.is_empty() {
        match std::str::from_utf8(bytes) {
            Ok(s) => {
                out.push_str(s);
                return;
            }
            Err(e) => {
                let (valid, rest) = bytes.split_at(e.valid_up_to());
                // `valid` is valid UTF-8 by construction.
                out.push_str(std::str::from_utf8(valid).unwrap_or_default());
                out.push('\u{fffd}');
                bytes = &rest[1..];
            }
        }
    }
}

struct Scanner<'a> {
    b: &'a [u8],
    i: usize,
}

impl Scanner<'_> {
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    fn skip_ws(&mut self) {
        while self.peek().is_some_and(is_ws) {
            self.i += 1;
        }
    }

    /// After an object key: whitespace, then `:`.
    fn colon(&mut self) -> Result<(), String> {
        self.skip_ws();
        match self.peek() {
            None => Err(UNEXPECTED_EOF.to_owned()),
            Some(b':') => {
                self.i += 1;
                Ok(())
            }
            Some(c) => Err(syntax_error(c, "after object key")),
        }
    }

    /// Four hex digits of a `\u` escape at the current position.
    fn hex4(&mut self) -> Result<u32, String> {
        let mut v = 0u32;
        for _ in 0..4 {
            let c = self.peek().unwrap_or(b' ');
            let d = match c {
                b'0'..=b'9' => c - b'0',
                b'a'..=b'f' => c - b'a' + 10,
                b'A'..=b'F' => c - b'A' + 10,
                _ => return Err(syntax_error(c, "in \\u hexadecimal character escape")),
            };
            v = v * 16 + u32::from(d);
            self.i += 1;
        }
        Ok(v)
    }

    /// If `\uXXXX` (valid hex) follows, its value, without consuming it.
    fn peek_u4(&self) -> Option<u32> {
        let rest = self.b.get(self.i..self.i + 6)?;
        if rest[0] != b'\\' || rest[1] != b'u' {
            return None;
        }
        let s = std::str::from_utf8(&rest[2..]).ok()?;
        u32::from_str_radix(s, 16).ok()
    }

    /// A string literal starting at the opening quote.
    fn string(&mut self) -> Result<String, String> {
        debug_assert_eq!(self.peek(), Some(b'"'));
        self.i += 1;
        let mut out = String::new();
        let mut start = self.i;
        loop {
            let Some(c) = self.peek() else {
                return Err(UNEXPECTED_EOF.to_owned());
            };
            match c {
                b'"' => {
                    push_go_utf8(&mut out, &self.b[start..self.i]);
                    self.i += 1;
                    return Ok(out);
                }
                b'\\' => {
                    push_go_utf8(&mut out, &self.b[start..self.i]);
                    self.i += 1;
                    let e = self.peek().unwrap_or(b' ');
                    self.i += 1;
                    match e {
                        b'"' => out.push('"'),
                        b'\\' => out.push('\\'),
                        b'/' => out.push('/'),
                        b'b' => out.push('\u{8}'),
                        b'f' => out.push('\u{c}'),
                        b'n' => out.push('\n'),
                        b'r' => out.push('\r'),
                        b't' => out.push('\t'),
                        b'u' => {
                            let r = self.hex4()?;
                            let ch = if (0xd800..0xe000).contains(&r) {
                                let pair = self.peek_u4().filter(|lo| {
                                    (0xd800..0xdc00).contains(&r) && (0xdc00..0xe000).contains(lo)
                                });
                                match pair {
                                    Some(lo) => {
                                        self.i += 6;
                                        char::from_u32(
                                            0x10000 + ((r - 0xd800) << 10) + (lo - 0xdc00),
                                        )
                                    }
                                    None => None,
                                }
                            } else {
                                char::from_u32(r)
                            };
                            out.push(ch.unwrap_or('\u{fffd}'));
                        }
                        _ => return Err(syntax_error(e, "in string escape code")),
                    }
                    start = self.i;
                }
                0x00..=0x1f => return Err(syntax_error(c, "in string literal")),
                _ => self.i += 1,
            }
        }
    }

    /// A number starting at `-` or a digit; returns its text.
    fn number(&mut self) -> Result<String, String> {
        let start = self.i;
        let digit = |c: Option<u8>| c.is_some_and(|c| c.is_ascii_digit());
        if self.peek() == Some(b'-') {
            self.i += 1;
        }
        match self.peek() {
            Some(b'0') => self.i += 1,
            Some(b'1'..=b'9') => {
                while digit(self.peek()) {
                    self.i += 1;
                }
            }
            c => return Err(syntax_error(c.unwrap_or(b' '), "in numeric literal")),
        }
        if self.peek() == Some(b'.') {
            self.i += 1;
            if !digit(self.peek()) {
                let c = self.peek().unwrap_or(b' ');
                return Err(syntax_error(c, "after decimal point in numeric literal"));
            }
            while digit(self.peek()) {
                self.i += 1;
            }
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            self.i += 1;
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.i += 1;
            }
            if !digit(self.peek()) {
                let c = self.peek().unwrap_or(b' ');
                return Err(syntax_error(c, "in exponent of numeric literal"));
            }
            while digit(self.peek()) {
                self.i += 1;
            }
        }
        // Only ASCII was consumed.
        Ok(String::from_utf8_lossy(&self.b[start..self.i]).into_owned())
    }

    /// `true`, `false` or `null`, first letter at the current position.
    fn literal(&mut self, word: &'static str) -> Result<(), String> {
        self.i += 1;
        for expected in word.bytes().skip(1) {
            let c = self.peek().unwrap_or(b' ');
            if c != expected {
                let ctx = format!("in literal {word} (expecting '{}')", char::from(expected));
                return Err(syntax_error(c, &ctx));
            }
            self.i += 1;
        }
        Ok(())
    }
}

enum Frame {
    Array {
        items: Vec<Value>,
        keep: bool,
    },
    Object {
        members: Vec<(String, Value)>,
        key: String,
        keep: bool,
    },
}

/// What to do after a value was completed inside a container.
enum Next {
    Value,
    Close,
}

/// Parses a complete JSON text like Go's `json.Unmarshal` validates it (`checkValid`).
/// The error is Go's `SyntaxError` text.
pub fn parse(input: &[u8]) -> Result<Value, String> {
    let mut s = Scanner { b: input, i: 0 };
    let mut stack: Vec<Frame> = Vec::new();
    'value: loop {
        s.skip_ws();
        let Some(c) = s.peek() else {
            return Err(UNEXPECTED_EOF.to_owned());
        };
        let keep = stack.len() < KEEP_DEPTH;
        let mut value = match c {
            b'{' | b'[' => {
                if stack.len() >= MAX_DEPTH {
                    return Err(syntax_error(c, "exceeded max depth"));
                }
                s.i += 1;
                s.skip_ws();
                let close = if c == b'{' { b'}' } else { b']' };
                match s.peek() {
                    None => return Err(UNEXPECTED_EOF.to_owned()),
                    Some(d) if d == close => {
                        s.i += 1;
                        if c == b'{' {
                            Value::Object(Vec::new())
                        } else {
                            Value::Array(Vec::new())
                        }
                    }
                    Some(b'"') if c == b'{' => {
                        let key = s.string()?;
                        s.colon()?;
                        stack.push(Frame::Object {
                            members: Vec::new(),
                            key,
                            keep,
                        });
                        continue 'value;
                    }
                    Some(d) if c == b'{' => {
                        return Err(syntax_error(
                            d,
                            "looking for beginning of object key string",
                        ))
                    }
                    Some(_) => {
                        stack.push(Frame::Array {
                            items: Vec::new(),
                            keep,
                        });
                        continue 'value;
                    }
                }
            }
            b'"' => Value::String(s.string()?),
            b'-' | b'0'..=b'9' => Value::Number(s.number()?),
            b't' => {
                s.literal("true")?;
                Value::Bool(true)
            }
            b'f' => {
                s.literal("false")?;
                Value::Bool(false)
            }
            b'n' => {
                s.literal("null")?;
                Value::Null
            }
            _ => return Err(syntax_error(c, "looking for beginning of value")),
        };
        // Attach the finished value to its container(s).
        loop {
            let next = match stack.last_mut() {
                None => {
                    s.skip_ws();
                    if let Some(c) = s.peek() {
                        return Err(syntax_error(c, "after top-level value"));
                    }
                    return Ok(value);
                }
                Some(Frame::Array { items, keep }) => {
                    if *keep {
                        items.push(value);
                    }
                    s.skip_ws();
                    match s.peek() {
                        None => return Err(UNEXPECTED_EOF.to_owned()),
                        Some(b',') => {
                            s.i += 1;
                            Next::Value
                        }
                        Some(b']') => {
                            s.i += 1;
                            Next::Close
                        }
                        Some(c) => return Err(syntax_error(c, "after array element")),
                    }
                }
                Some(Frame::Object { members, key, keep }) => {
                    if *keep {
                        members.push((std::mem::take(key), value));
                    }
                    s.skip_ws();
                    match s.peek() {
                        None => return Err(UNEXPECTED_EOF.to_owned()),
                        Some(b',') => {
                            s.i += 1;
                            s.skip_ws();
                            match s.peek() {
                                None => return Err(UNEXPECTED_EOF.to_owned()),
                                Some(b'"') => {
                                    *key = s.string()?;
                                    s.colon()?;
                                    Next::Value
                                }
                                Some(c) => {
                                    return Err(syntax_error(
                                        c,
                                        "looking for beginning of object key string",
                                    ))
                                }
                            }
                        }
                        Some(b'}') => {
                            s.i += 1;
                            Next::Close
                        }
                        Some(c) => return Err(syntax_error(c, "after object key:value pair")),
                    }
                }
            };
            match next {
                Next::Value => continue 'value,
                Next::Close => {
                    value = match stack.pop() {
                        Some(Frame::Array { items, .. }) => Value::Array(items),
                        Some(Frame::Object { members, .. }) => Value::Object(members),
                        None => unreachable!("a container was just closed"),
                    };
                }
            }
        }
    }
}

/// Converts an already-parsed `serde_json` value (numbers by their `Display` text).
pub fn from_serde(v: &serde_json::Value) -> Value {
    from_serde_depth(v, 0)
}

fn from_serde_depth(v: &serde_json::Value, depth: usize) -> Value {
    use serde_json::Value as J;
    let keep = depth < KEEP_DEPTH;
    match v {
        J::Null => Value::Null,
        J::Bool(b) => Value::Bool(*b),
        J::Number(n) => Value::Number(n.to_string()),
        J::String(s) => Value::String(s.clone()),
        J::Array(items) if keep => Value::Array(
            items
                .iter()
                .map(|i| from_serde_depth(i, depth + 1))
                .collect(),
        ),
        J::Array(_) => Value::Array(Vec::new()),
        J::Object(m) if keep => Value::Object(
            m.iter()
                .map(|(k, v)| (k.clone(), from_serde_depth(v, depth + 1)))
                .collect(),
        ),
        J::Object(_) => Value::Object(Vec::new()),
    }
}

/// Go's key folding for case-insensitive field matching (`encoding/json` `foldName`):
/// ASCII letters upper-cased, other runes through `unicode.ToUpper`.
fn fold(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for ch in s.chars() {
        if ch.is_ascii() {
            out.push(ch.to_ascii_uppercase());
        } else {
            let mut up = ch.to_uppercase();
            match (up.next(), up.next()) {
                (Some(u), None) => out.push(u),
                // Go's ToUpper is a simple (1:1) mapping.
                _ => out.push(ch),
            }
        }
    }
    out
}

/// Maps a [`Value`] onto Go-typed targets, recording the first type error like
/// `encoding/json`'s `decodeState` (which keeps decoding after a type error).
#[derive(Debug, Default)]
pub struct Decoder {
    first_error: Option<String>,
    /// Innermost struct whose field is being decoded (Go `errorContext.Struct`).
    context_struct: &'static str,
    /// JSON names of the struct fields entered (Go `errorContext.FieldStack`).
    field_stack: Vec<&'static str>,
}

impl Decoder {
    pub fn new() -> Self {
        Self::default()
    }

    /// The first type error met, if any.
    pub fn error(&self) -> Option<&str> {
        self.first_error.as_deref()
    }

    pub fn into_error(self) -> Option<String> {
        self.first_error
    }

    /// Records `json: cannot unmarshal <what> into ... of type <ty>` unless an error was
    /// recorded already.
    pub fn type_error(&mut self, what: &str, ty: &str) {
        if self.first_error.is_some() {
            return;
        }
        let msg = if self.context_struct.is_empty() && self.field_stack.is_empty() {
            format!("json: cannot unmarshal {what} into Go value of type {ty}")
        } else {
            format!(
                "json: cannot unmarshal {what} into Go struct field {}.{} of type {ty}",
                self.context_struct,
                self.field_stack.join(".")
            )
        };
        self.first_error = Some(msg);
    }

    /// A Go `string` (or string kind like `v1.ResourceName`).
    pub fn string(&mut self, v: &Value, ty: &str, target: &mut String) {
        match v {
            Value::Null => {}
            Value::String(s) => target.clone_from(s),
            other => self.type_error(other.kind(), ty),
        }
    }

    /// A Go `uint64` kind (`strconv.ParseUint(s, 10, 64)`).
    pub fn uint(&mut self, v: &Value, ty: &str, target: &mut u64) {
        match v {
            Value::Null => {}
            Value::Number(n) => match n.parse::<u64>() {
                Ok(x) if !n.starts_with('+') => *target = x,
                _ => self.type_error(&format!("number {n}"), ty),
            },
            other => self.type_error(other.kind(), ty),
        }
    }

    /// A Go `int` (64 bit; `strconv.ParseInt(s, 10, 64)`).
    pub fn int(&mut self, v: &Value, ty: &str, target: &mut i64) {
        match v {
            Value::Null => {}
            Value::Number(n) => match n.parse::<i64>() {
                Ok(x) if !n.starts_with('+') => *target = x,
                _ => self.type_error(&format!("number {n}"), ty),
            },
            other => self.type_error(other.kind(), ty),
        }
    }

    /// A Go map key of kind `int`: `strconv.ParseInt` of the key text (which, unlike a JSON
    /// number, may carry a `+` sign or leading zeros).
    pub fn int_key(&mut self, key: &str) -> Option<i64> {
        match key.parse::<i64>() {
            Ok(x) => Some(x),
            Err(_) => {
                self.type_error(&format!("number {key}"), "int");
                None
            }
        }
    }

    /// A Go slice (`None` = nil). Elements are decoded into fresh zero values.
    pub fn slice<T: Default>(
        &mut self,
        v: &Value,
        ty: &str,
        target: &mut Option<Vec<T>>,
        mut elem: impl FnMut(&mut Self, &Value, &mut T),
    ) {
        match v {
            Value::Null => *target = None,
            Value::Array(items) => {
                let mut out = Vec::with_capacity(items.len());
                for item in items {
                    let mut x = T::default();
                    elem(self, item, &mut x);
                    out.push(x);
                }
                *target = Some(out);
            }
            other => self.type_error(other.kind(), ty),
        }
    }

    /// A Go map (`None` = nil). A non-nil map is merged into (as Go does); each value is
    /// decoded into a fresh zero value, then the key is converted (`key` returns `None`
    /// after recording an error, and the entry is dropped).
    pub fn map<K: Ord, T: Default>(
        &mut self,
        v: &Value,
        ty: &str,
        target: &mut Option<BTreeMap<K, T>>,
        mut key: impl FnMut(&mut Self, &str) -> Option<K>,
        mut elem: impl FnMut(&mut Self, &Value, &mut T),
    ) {
        match v {
            Value::Null => *target = None,
            Value::Object(members) => {
                let map = target.get_or_insert_with(BTreeMap::new);
                for (k, item) in members {
                    let mut x = T::default();
                    elem(self, item, &mut x);
                    if let Some(k) = key(self, k) {
                        map.insert(k, x);
                    }
                }
            }
            other => self.type_error(other.kind(), ty),
        }
    }

    /// A Go pointer (`None` = nil): `null` clears it, anything else decodes into the
    /// (allocated if needed) pointee.
    pub fn ptr<T: Default>(
        &mut self,
        v: &Value,
        target: &mut Option<T>,
        inner: impl FnOnce(&mut Self, &Value, &mut T),
    ) {
        match v {
            Value::Null => *target = None,
            _ => inner(self, v, target.get_or_insert_with(T::default)),
        }
    }

    /// A Go struct named `name` (type text `ty` for errors) with the given JSON field names.
    /// `field(decoder, index, value)` is called for every member that matches a field
    /// (exact name first, then case-insensitively); unknown members are ignored; `null`
    /// leaves the struct as it is.
    pub fn object(
        &mut self,
        v: &Value,
        name: &'static str,
        ty: &str,
        fields: &[&'static str],
        mut field: impl FnMut(&mut Self, usize, &Value),
    ) {
        match v {
            Value::Null => {}
            Value::Object(members) => {
                let folded: Vec<String> = fields.iter().map(|f| fold(f)).collect();
                for (k, item) in members {
                    let idx = fields.iter().position(|f| f == k).or_else(|| {
                        let fk = fold(k);
                        folded.iter().position(|f| *f == fk)
                    });
                    let Some(idx) = idx else { continue };
                    let saved_struct = self.context_struct;
                    let saved_len = self.field_stack.len();
                    self.context_struct = name;
                    self.field_stack.push(fields[idx]);
                    field(self, idx, item);
                    self.field_stack.truncate(saved_len);
                    self.context_struct = saved_struct;
                }
            }
            other => self.type_error(other.kind(), ty),
        }
    }
}

/// Appends `s` as a JSON string the way Go's `json.Marshal` writes it.
pub fn write_string(out: &mut String, s: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push('"');
    for ch in s.chars() {
        match ch {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            c if (c as u32) < 0x20 || c == '<' || c == '>' || c == '&' => {
                let b = c as u32 as usize;
                out.push_str("\\u00");
                out.push(char::from(HEX[b >> 4]));
                out.push(char::from(HEX[b & 0xf]));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(s: &str) -> String {
        parse(s.as_bytes()).unwrap_err()
    }

    #[test]
    fn syntax_errors_like_go() {
        assert_eq!(err(""), "unexpected end of JSON input");
        assert_eq!(err("{"), "unexpected end of JSON input");
        assert_eq!(err("   "), "unexpected end of JSON input");
        assert_eq!(err(r#"{"a":1"#), "unexpected end of JSON input");
        assert_eq!(err(r#"{"a"#), "unexpected end of JSON input");
        assert_eq!(
            err("x"),
            "invalid character 'x' looking for beginning of value"
        );
        assert_eq!(
            err("{x"),
            "invalid character 'x' looking for beginning of object key string"
        );
        assert_eq!(err(r#"{"a" 1}"#), "invalid character '1' after object key");
        assert_eq!(
            err(r#"{"a":1 "b"}"#),
            "invalid character '\"' after object key:value pair"
        );
        assert_eq!(
            err(r#"{"a":1,}"#),
            "invalid character '}' looking for beginning of object key string"
        );
        assert_eq!(err("[1 2]"), "invalid character '2' after array element");
        assert_eq!(
            err("[1,]"),
            "invalid character ']' looking for beginning of value"
        );
        assert_eq!(err("{} x"), "invalid character 'x' after top-level value");
        assert_eq!(err("01"), "invalid character '1' after top-level value");
        assert_eq!(err("-"), "invalid character ' ' in numeric literal");
        assert_eq!(err("-a"), "invalid character 'a' in numeric literal");
        assert_eq!(
            err("1."),
            "invalid character ' ' after decimal point in numeric literal"
        );
        assert_eq!(
            err("1.e"),
            "invalid character 'e' after decimal point in numeric literal"
        );
        assert_eq!(
            err("1e"),
            "invalid character ' ' in exponent of numeric literal"
        );
        assert_eq!(
            err("1e+x"),
            "invalid character 'x' in exponent of numeric literal"
        );
        assert_eq!(
            err("tru"),
            "invalid character ' ' in literal true (expecting 'e')"
        );
        assert_eq!(
            err("nul!"),
            "invalid character '!' in literal null (expecting 'l')"
        );
        assert_eq!(
            err("fx"),
            "invalid character 'x' in literal false (expecting 'a')"
        );
        assert_eq!(err("\"a\nb\""), "invalid character '\\n' in string literal");
        assert_eq!(
            err("\"\\x\""),
            "invalid character 'x' in string escape code"
        );
        assert_eq!(err("\"\\"), "invalid character ' ' in string escape code");
        assert_eq!(
            err("\"\\u12g4\""),
            "invalid character 'g' in \\u hexadecimal character escape"
        );
        assert_eq!(
            err("'"),
            r"invalid character '\'' looking for beginning of value"
        );
        assert_eq!(
            err("\u{e9}"),
            "invalid character 'Ã' looking for beginning of value"
        );
        assert_eq!(
            err("\u{1}"),
            "invalid character '\\x01' looking for beginning of value"
        );
        assert_eq!(
            err("\u{feff}{}"),
            "invalid character 'ï' looking for beginning of value"
        );
    }

    #[test]
    fn max_depth() {
        let deep = "[".repeat(10_001);
        assert_eq!(
            parse(deep.as_bytes()).unwrap_err(),
            "invalid character '[' exceeded max depth"
        );
        let ok = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
        assert!(parse(ok.as_bytes()).is_ok());
    }

    #[test]
    fn values() {
        let v =
            parse(br#" {"a" : [1, -2.5e3, true, false, null, "x\u00e9\ud83d\ude00"], "a": {}} "#)
                .unwrap();
        assert_eq!(
            v,
            Value::Object(vec![
                (
                    "a".into(),
                    Value::Array(vec![
                        Value::Number("1".into()),
                        Value::Number("-2.5e3".into()),
                        Value::Bool(true),
                        Value::Bool(false),
                        Value::Null,
                        Value::String("x\u{e9}\u{1f600}".into()),
                    ])
                ),
                ("a".into(), Value::Object(vec![])),
            ])
        );
    }

    #[test]
    fn go_string_decoding() {
        let s = |b: &[u8]| match parse(b).unwrap() {
            Value::String(s) => s,
            other => panic!("{other:?}"),
        };
        assert_eq!(s(b"\"\\ud800\""), "\u{fffd}");
        assert_eq!(s(b"\"\\ud800\\u0041\""), "\u{fffd}A");
        assert_eq!(s(b"\"\\udc00\\ud83d\\ude00\""), "\u{fffd}\u{1f600}");
        assert_eq!(s(b"\"\xe2\x82a\xff\""), "\u{fffd}\u{fffd}a\u{fffd}");
        assert_eq!(s(b"\"\\/\\b\\f\""), "/\u{8}\u{c}");
    }

    #[test]
    fn writer_escapes_like_go() {
        let mut out = String::new();
        write_string(&mut out, "a\"\\\n\r\t\u{8}\u{c}\u{1}<>&\u{2028}é");
        assert_eq!(out, r#""a\"\\\n\r\t\b\f\u0001\u003c\u003e\u0026\u2028é""#);
    }

    #[test]
    fn decoder_errors_and_context() {
        let v = parse(br#"{"A":"x","b":{"c":-1,"C":"y"},"z":[1]}"#).unwrap();
        let mut d = Decoder::new();
        let mut a = 0u64;
        let mut c = 0u64;
        d.object(&v, "Outer", "pkg.Outer", &["a", "b"], |d, i, v| match i {
            0 => d.uint(v, "uint64", &mut a),
            _ => d.object(v, "Inner", "pkg.Inner", &["c"], |d, _, v| {
                d.uint(v, "uint64", &mut c)
            }),
        });
        assert_eq!(
            d.error(),
            Some("json: cannot unmarshal string into Go struct field Outer.a of type uint64")
        );
        let mut d = Decoder::new();
        d.uint(&Value::Number("-1".into()), "uint64", &mut a);
        assert_eq!(
            d.error(),
            Some("json: cannot unmarshal number -1 into Go value of type uint64")
        );
        let mut d = Decoder::new();
        let v = parse(br#"{"b":{"c":1.5}}"#).unwrap();
        d.object(&v, "Outer", "pkg.Outer", &["a", "b"], |d, i, v| {
            if i == 1 {
                d.object(v, "Inner", "pkg.Inner", &["c"], |d, _, v| {
                    d.uint(v, "uint64", &mut c)
                })
            }
        });
        assert_eq!(
            d.error(),
            Some("json: cannot unmarshal number 1.5 into Go struct field Inner.b.c of type uint64")
        );
    }

    #[test]
    fn folding() {
        assert_eq!(fold("policyName"), "POLICYNAME");
        assert_eq!(fold("ſ"), "S");
    }
}
