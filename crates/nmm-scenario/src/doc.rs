//! A parsed YAML or JSON document as a flat list of events (mapping, sequence, scalar),
//! with the YAML line of each, and a serde `Deserializer` over it. Typed structs (a v1
//! Pod) deserialize straight from the events: no `serde_json::Value` tree is built for
//! them. The deserializer reads scalars exactly as a `serde_json::Value` built by
//! serde-saphyr would present them (same types, same error wording), so the fast path and
//! the tree path accept and refuse the same documents.
//!
//! Sources: the subset YAML reader of [`crate::fast_yaml`], serde_json (JSON documents,
//! recorded through serde without a tree), and any `serde_json::Value` (the fallback, and
//! callers that hold a tree already).

use serde::de::{self, DeserializeSeed, IntoDeserializer, Visitor};
use serde_json::Value;
use std::borrow::Cow;
use std::cell::Cell;
use std::fmt;

/// A scalar, resolved as serde-saphyr resolves it into a `serde_json::Value`.
#[derive(Debug, Clone, PartialEq)]
pub enum Scalar<'a> {
    Null,
    Bool(bool),
    U64(u64),
    I64(i64),
    F64(f64),
    Str(Cow<'a, str>),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Kind<'a> {
    /// A mapping: keys (always `Str` scalars) and values alternate up to event `end`.
    Map {
        end: u32,
    },
    /// A sequence: its items up to event `end`.
    Seq {
        end: u32,
    },
    Scalar(Scalar<'a>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Ev<'a> {
    pub kind: Kind<'a>,
    /// 1-based YAML line; 0 when unknown (JSON, or a document built from a tree).
    pub line: u32,
}

/// Nesting deeper than this is left to the tree path (serde-saphyr's own limits).
pub const MAX_DEPTH: usize = 100;

#[derive(Debug, Default, Clone, PartialEq)]
pub struct Doc<'a> {
    pub evs: Vec<Ev<'a>>,
}

impl<'a> Doc<'a> {
    /// Index of the event after the node starting at `i`.
    pub fn next(&self, i: usize) -> usize {
        match self.evs[i].kind {
            Kind::Map { end } | Kind::Seq { end } => end as usize,
            Kind::Scalar(_) => i + 1,
        }
    }

    pub fn scalar(&self, i: usize) -> Option<&Scalar<'a>> {
        match &self.evs[i].kind {
            Kind::Scalar(s) => Some(s),
            _ => None,
        }
    }

    pub fn is_null(&self, i: usize) -> bool {
        matches!(self.scalar(i), Some(Scalar::Null))
    }

    /// The value of `key` in the mapping at `i`, `None` when `i` is not a mapping, the
    /// key is absent or its value is null.
    pub fn get(&self, i: usize, key: &str) -> Option<usize> {
        let Kind::Map { end } = self.evs[i].kind else {
            return None;
        };
        let mut k = i + 1;
        while k < end as usize {
            let v = k + 1;
            if matches!(self.scalar(k), Some(Scalar::Str(s)) if s == key) {
                return (!self.is_null(v)).then_some(v);
            }
            k = self.next(v);
        }
        None
    }

    /// The items of the sequence at `i` (`None`: not a sequence).
    pub fn items(&self, i: usize) -> Option<Vec<usize>> {
        let Kind::Seq { end } = self.evs[i].kind else {
            return None;
        };
        let mut out = Vec::new();
        let mut k = i + 1;
        while k < end as usize {
            out.push(k);
            k = self.next(k);
        }
        Some(out)
    }

    pub fn line(&self, i: usize) -> Option<u32> {
        self.evs.get(i).map(|e| e.line).filter(|&l| l > 0)
    }

    /// The node at `i` as a JSON tree.
    pub fn to_value(&self, i: usize) -> Value {
        match &self.evs[i].kind {
            Kind::Scalar(s) => scalar_value(s),
            Kind::Seq { end } => {
                let mut out = Vec::new();
                let mut k = i + 1;
                while k < *end as usize {
                    out.push(self.to_value(k));
                    k = self.next(k);
                }
                Value::Array(out)
            }
            Kind::Map { end } => {
                let mut out = serde_json::Map::new();
                let mut k = i + 1;
                while k < *end as usize {
                    let key = match self.scalar(k) {
                        Some(Scalar::Str(s)) => s.to_string(),
                        _ => String::new(),
                    };
                    out.insert(key, self.to_value(k + 1));
                    k = self.next(k + 1);
                }
                Value::Object(out)
            }
        }
    }

    /// A document holding `v` (strings borrowed from it).
    pub fn from_value(v: &'a Value) -> Doc<'a> {
        let mut d = Doc::default();
        d.push_value(v);
        d
    }

    fn push_value(&mut self, v: &'a Value) {
        let s = match v {
            Value::Null => Scalar::Null,
            Value::Bool(b) => Scalar::Bool(*b),
            Value::Number(n) => number_scalar(n),
            Value::String(s) => Scalar::Str(Cow::Borrowed(s)),
            Value::Array(a) => {
                let at = self.open(false, 0);
                a.iter().for_each(|x| self.push_value(x));
                self.close(at);
                return;
            }
            Value::Object(m) => {
                let at = self.open(true, 0);
                for (k, x) in m {
                    self.scalar_at(Scalar::Str(Cow::Borrowed(k)), 0);
                    self.push_value(x);
                }
                self.close(at);
                return;
            }
        };
        self.scalar_at(s, 0);
    }

    pub(crate) fn open(&mut self, map: bool, line: u32) -> usize {
        let kind = if map {
            Kind::Map { end: 0 }
        } else {
            Kind::Seq { end: 0 }
        };
        self.evs.push(Ev { kind, line });
        self.evs.len() - 1
    }

    pub(crate) fn close(&mut self, at: usize) {
        let n = self.evs.len() as u32;
        if let Kind::Map { end } | Kind::Seq { end } = &mut self.evs[at].kind {
            *end = n;
        }
    }

    pub(crate) fn scalar_at(&mut self, s: Scalar<'a>, line: u32) {
        self.evs.push(Ev {
            kind: Kind::Scalar(s),
            line,
        });
    }

    /// Records a JSON document through serde_json (no tree). `None` when it is not JSON,
    /// nests deeper than [`MAX_DEPTH`] or repeats a key in an object (the tree path decides
    /// those).
    pub fn from_json(text: &'a str) -> Option<Doc<'a>> {
        let mut doc = Doc::default();
        let mut de = serde_json::Deserializer::from_str(text);
        Recorder {
            doc: &mut doc,
            depth: 0,
        }
        .deserialize(&mut de)
        .ok()?;
        de.end().ok()?;
        Some(doc)
    }
}

fn number_scalar(n: &serde_json::Number) -> Scalar<'static> {
    if let Some(u) = n.as_u64() {
        Scalar::U64(u)
    } else if let Some(i) = n.as_i64() {
        Scalar::I64(i)
    } else {
        Scalar::F64(n.as_f64().unwrap_or(0.0))
    }
}

pub fn scalar_value(s: &Scalar<'_>) -> Value {
    match s {
        Scalar::Null => Value::Null,
        Scalar::Bool(b) => Value::Bool(*b),
        Scalar::U64(u) => Value::from(*u),
        Scalar::I64(i) => Value::from(*i),
        Scalar::F64(f) => serde_json::Number::from_f64(*f)
            .map(Value::Number)
            .unwrap_or(Value::Null),
        Scalar::Str(s) => Value::String(s.to_string()),
    }
}

/// A number as a `serde_json::Value` prints it (`2`, `0.5`), for quantities written as
/// numbers.
fn number_text(s: &Scalar<'_>) -> Option<String> {
    match s {
        Scalar::U64(u) => Some(u.to_string()),
        Scalar::I64(i) => Some(i.to_string()),
        Scalar::F64(_) => Some(scalar_value(s).to_string()),
        _ => None,
    }
}

struct Recorder<'r, 'a> {
    doc: &'r mut Doc<'a>,
    depth: usize,
}

impl<'de> DeserializeSeed<'de> for Recorder<'_, 'de> {
    type Value = ();
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Recorder<'_, 'de> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON document")
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        self.doc.scalar_at(Scalar::Null, 0);
        Ok(())
    }
    fn visit_bool<E>(self, b: bool) -> Result<(), E> {
        self.doc.scalar_at(Scalar::Bool(b), 0);
        Ok(())
    }
    fn visit_u64<E>(self, u: u64) -> Result<(), E> {
        self.doc.scalar_at(Scalar::U64(u), 0);
        Ok(())
    }
    fn visit_i64<E>(self, i: i64) -> Result<(), E> {
        self.doc.scalar_at(Scalar::I64(i), 0);
        Ok(())
    }
    fn visit_f64<E>(self, f: f64) -> Result<(), E> {
        self.doc.scalar_at(Scalar::F64(f), 0);
        Ok(())
    }
    fn visit_borrowed_str<E>(self, s: &'de str) -> Result<(), E> {
        self.doc.scalar_at(Scalar::Str(Cow::Borrowed(s)), 0);
        Ok(())
    }
    fn visit_str<E>(self, s: &str) -> Result<(), E> {
        self.doc
            .scalar_at(Scalar::Str(Cow::Owned(s.to_string())), 0);
        Ok(())
    }
    fn visit_string<E>(self, s: String) -> Result<(), E> {
        self.doc.scalar_at(Scalar::Str(Cow::Owned(s)), 0);
        Ok(())
    }
    fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        if self.depth >= MAX_DEPTH {
            return Err(de::Error::custom("too deep"));
        }
        let at = self.doc.open(false, 0);
        while seq
            .next_element_seed(Recorder {
                doc: &mut *self.doc,
                depth: self.depth + 1,
            })?
            .is_some()
        {}
        self.doc.close(at);
        Ok(())
    }
    fn visit_map<A: de::MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        if self.depth >= MAX_DEPTH {
            return Err(de::Error::custom("too deep"));
        }
        let at = self.doc.open(true, 0);
        let mut keys: Vec<usize> = Vec::new();
        loop {
            let k = self.doc.evs.len();
            let more = map.next_key_seed(Recorder {
                doc: &mut *self.doc,
                depth: self.depth + 1,
            })?;
            if more.is_none() {
                break;
            }
            let key = self.doc.scalar(k);
            if keys.iter().any(|&o| self.doc.scalar(o) == key) {
                return Err(de::Error::custom("duplicate key"));
            }
            keys.push(k);
            map.next_value_seed(Recorder {
                doc: &mut *self.doc,
                depth: self.depth + 1,
            })?;
        }
        self.doc.close(at);
        Ok(())
    }
}

/// A deserialization error: the message only, as `serde_json::Value`'s errors print.
#[derive(Debug)]
pub struct Error(pub String);

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Error {}

impl de::Error for Error {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        Error(msg.to_string())
    }
}

/// A deserializer of the node at `pos`. `stringify`: a number scalar is presented as its
/// text (quantities written `cpu: 2`). `at` follows the event being read, for the line of
/// an error.
pub struct De<'d, 'a> {
    doc: &'d Doc<'a>,
    pos: usize,
    stringify: bool,
    at: &'d Cell<usize>,
}

impl<'d, 'a> De<'d, 'a> {
    pub fn new(doc: &'d Doc<'a>, pos: usize, at: &'d Cell<usize>) -> Self {
        De {
            doc,
            pos,
            stringify: false,
            at,
        }
    }

    fn unexpected(&self) -> de::Unexpected<'_> {
        match &self.doc.evs[self.pos].kind {
            Kind::Map { .. } => de::Unexpected::Map,
            Kind::Seq { .. } => de::Unexpected::Seq,
            Kind::Scalar(s) => match s {
                Scalar::Null => de::Unexpected::Unit,
                Scalar::Bool(b) => de::Unexpected::Bool(*b),
                Scalar::U64(u) => de::Unexpected::Unsigned(*u),
                Scalar::I64(i) => de::Unexpected::Signed(*i),
                Scalar::F64(f) => de::Unexpected::Float(*f),
                Scalar::Str(s) => de::Unexpected::Str(s),
            },
        }
    }
}

/// Keys whose mapping values are quantities that YAML may give as numbers.
fn quantity_map_key(k: &str) -> bool {
    matches!(k, "limits" | "requests" | "overhead")
}

impl<'de, 'd> de::Deserializer<'de> for De<'d, 'de> {
    type Error = Error;

    fn deserialize_any<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
        self.at.set(self.pos);
        match &self.doc.evs[self.pos].kind {
            Kind::Scalar(s) => {
                if self.stringify {
                    if let Some(t) = number_text(s) {
                        return v.visit_string(t);
                    }
                }
                match s {
                    Scalar::Null => v.visit_unit(),
                    Scalar::Bool(b) => v.visit_bool(*b),
                    Scalar::U64(u) => v.visit_u64(*u),
                    Scalar::I64(i) => v.visit_i64(*i),
                    Scalar::F64(f) => v.visit_f64(*f),
                    Scalar::Str(Cow::Borrowed(s)) => v.visit_borrowed_str(s),
                    Scalar::Str(Cow::Owned(s)) => v.visit_str(s),
                }
            }
            Kind::Seq { end } => {
                let mut seq = SeqAcc {
                    doc: self.doc,
                    pos: self.pos + 1,
                    end: *end as usize,
                    at: self.at,
                };
                let out = v.visit_seq(&mut seq)?;
                if seq.pos < seq.end {
                    let n = self.doc.items(self.pos).map_or(0, |i| i.len());
                    return Err(de::Error::invalid_length(n, &"fewer elements in array"));
                }
                Ok(out)
            }
            Kind::Map { end } => {
                let mut map = MapAcc {
                    doc: self.doc,
                    pos: self.pos + 1,
                    end: *end as usize,
                    at: self.at,
                    stringify_values: false,
                };
                let out = v.visit_map(&mut map)?;
                if map.pos < map.end {
                    let n = self
                        .doc
                        .to_value(self.pos)
                        .as_object()
                        .map_or(0, |m| m.len());
                    return Err(de::Error::invalid_length(n, &"fewer elements in map"));
                }
                Ok(out)
            }
        }
    }

    fn deserialize_option<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
        self.at.set(self.pos);
        if self.doc.is_null(self.pos) {
            v.visit_none()
        } else {
            v.visit_some(self)
        }
    }

    fn deserialize_unit<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
        self.at.set(self.pos);
        if self.doc.is_null(self.pos) {
            v.visit_unit()
        } else {
            Err(de::Error::invalid_type(self.unexpected(), &v))
        }
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        v: V,
    ) -> Result<V::Value, Error> {
        self.deserialize_unit(v)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        v: V,
    ) -> Result<V::Value, Error> {
        v.visit_newtype_struct(self)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        v: V,
    ) -> Result<V::Value, Error> {
        self.at.set(self.pos);
        match self.doc.scalar(self.pos) {
            Some(Scalar::Str(s)) => v.visit_enum(de::IntoDeserializer::<Error>::into_deserializer(
                s.to_string(),
            )),
            _ => Err(de::Error::invalid_type(self.unexpected(), &"string only")),
        }
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
        self.at.set(self.pos);
        v.visit_unit()
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf seq tuple tuple_struct map struct identifier
    }
}

struct SeqAcc<'d, 'a> {
    doc: &'d Doc<'a>,
    pos: usize,
    end: usize,
    at: &'d Cell<usize>,
}

impl<'de, 'd> de::SeqAccess<'de> for SeqAcc<'d, 'de> {
    type Error = Error;
    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, Error> {
        if self.pos >= self.end {
            return Ok(None);
        }
        let at = self.pos;
        self.pos = self.doc.next(at);
        seed.deserialize(De::new(self.doc, at, self.at)).map(Some)
    }
    fn size_hint(&self) -> Option<usize> {
        None
    }
}

struct MapAcc<'d, 'a> {
    doc: &'d Doc<'a>,
    pos: usize,
    end: usize,
    at: &'d Cell<usize>,
    stringify_values: bool,
}

impl<'de, 'd> de::MapAccess<'de> for MapAcc<'d, 'de> {
    type Error = Error;
    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Error> {
        if self.pos >= self.end {
            return Ok(None);
        }
        self.at.set(self.pos);
        let key: &'d Cow<'de, str> = match self.doc.scalar(self.pos) {
            Some(Scalar::Str(s)) => s,
            _ => return Err(de::Error::custom("a mapping key is not a string")),
        };
        self.stringify_values = false;
        let v = self.pos + 1;
        if quantity_map_key(key) && matches!(self.doc.evs[v].kind, Kind::Map { .. }) {
            self.stringify_values = true;
        }
        self.pos = v;
        match key {
            Cow::Borrowed(s) => seed
                .deserialize(de::value::BorrowedStrDeserializer::<Error>::new(s))
                .map(Some),
            Cow::Owned(s) => seed.deserialize(s.as_str().into_deserializer()).map(Some),
        }
    }
    fn next_value_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> Result<T::Value, Error> {
        let at = self.pos;
        self.pos = self.doc.next(at);
        let de = De::new(self.doc, at, self.at);
        if self.stringify_values {
            // A limits/requests/overhead mapping: its numbers become text.
            return seed.deserialize(QuantityMapDe(de));
        }
        seed.deserialize(de)
    }
}

/// The mapping under `limits`/`requests`/`overhead`: its values are stringified.
struct QuantityMapDe<'d, 'a>(De<'d, 'a>);

impl<'de, 'd> de::Deserializer<'de> for QuantityMapDe<'d, 'de> {
    type Error = Error;
    fn deserialize_any<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
        let d = self.0;
        d.at.set(d.pos);
        let Kind::Map { end } = d.doc.evs[d.pos].kind else {
            return d.deserialize_any(v);
        };
        let mut map = StringifyMapAcc(MapAcc {
            doc: d.doc,
            pos: d.pos + 1,
            end: end as usize,
            at: d.at,
            stringify_values: false,
        });
        v.visit_map(&mut map)
    }
    fn deserialize_option<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
        if self.0.doc.is_null(self.0.pos) {
            v.visit_none()
        } else {
            v.visit_some(self)
        }
    }
    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        v: V,
    ) -> Result<V::Value, Error> {
        v.visit_newtype_struct(self)
    }
    fn deserialize_ignored_any<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
        self.0.deserialize_ignored_any(v)
    }
    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf seq tuple tuple_struct map struct identifier unit unit_struct enum
    }
}

struct StringifyMapAcc<'d, 'a>(MapAcc<'d, 'a>);

impl<'de, 'd> de::MapAccess<'de> for StringifyMapAcc<'d, 'de> {
    type Error = Error;
    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Error> {
        let r = self.0.next_key_seed(seed);
        self.0.stringify_values = false;
        r
    }
    fn next_value_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> Result<T::Value, Error> {
        let at = self.0.pos;
        self.0.pos = self.0.doc.next(at);
        let mut de = De::new(self.0.doc, at, self.0.at);
        de.stringify = true;
        seed.deserialize(de)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn value_round_trip_and_lookup() {
        let v = json!({"a": [1, -2, 0.5, "x", null, true, {"b": {}}], "c": {"d": "e"}});
        let d = Doc::from_value(&v);
        assert_eq!(d.to_value(0), v);
        let c = d.get(0, "c").unwrap();
        assert_eq!(d.to_value(d.get(c, "d").unwrap()), json!("e"));
        assert_eq!(d.items(d.get(0, "a").unwrap()).unwrap().len(), 7);
        assert!(d.get(0, "zz").is_none());
    }

    #[test]
    fn json_recorded_without_a_tree() {
        let text = r#"{"a": [1, -2, 0.5, "x\n", null, true], "b": {"c": "d"}}"#;
        let d = Doc::from_json(text).unwrap();
        let v: Value = serde_json::from_str(text).unwrap();
        assert_eq!(d.to_value(0), v);
        assert!(Doc::from_json(r#"{"a": 1, "a": 2}"#).is_none());
        assert!(Doc::from_json(r#"{"a": 1} x"#).is_none());
    }

    #[test]
    fn deserializes_like_a_value() {
        #[derive(serde::Deserialize, Debug, PartialEq)]
        struct T {
            a: Vec<i32>,
            b: Option<String>,
            c: std::collections::BTreeMap<String, String>,
        }
        let v = json!({"a": [1, 2], "b": null, "c": {"x": "y"}});
        let d = Doc::from_value(&v);
        let at = Cell::new(0);
        let t: T = serde::Deserialize::deserialize(De::new(&d, 0, &at)).unwrap();
        assert_eq!(t, serde_json::from_value::<T>(v.clone()).unwrap());
        for bad in [
            json!({"a": "x"}),
            json!({"a": [1], "c": {"x": 1}}),
            json!([1]),
        ] {
            let d = Doc::from_value(&bad);
            let e = T::deserialize(De::new(&d, 0, &at)).unwrap_err().to_string();
            let want = serde_json::from_value::<T>(bad.clone())
                .unwrap_err()
                .to_string();
            assert_eq!(e, want);
        }
    }

    #[test]
    fn quantities_may_be_numbers() {
        use std::collections::BTreeMap;
        #[derive(serde::Deserialize)]
        struct R {
            limits: BTreeMap<String, String>,
            #[allow(dead_code)]
            other: Option<BTreeMap<String, String>>,
        }
        let v = json!({"limits": {"cpu": 2, "memory": "1Gi", "x": 0.5}});
        let d = Doc::from_value(&v);
        let at = Cell::new(0);
        let r = R::deserialize(De::new(&d, 0, &at)).unwrap();
        assert_eq!(r.limits["cpu"], "2");
        assert_eq!(r.limits["x"], "0.5");
        let v = json!({"limits": {}, "other": {"cpu": 2}});
        let d = Doc::from_value(&v);
        assert!(R::deserialize(De::new(&d, 0, &at)).is_err());
    }

    use serde::Deserialize;
}
