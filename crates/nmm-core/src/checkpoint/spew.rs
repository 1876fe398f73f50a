//! The part of go-spew's `%#v` rendering (config `{Indent: " ", SortKeys: true,
//! DisableMethods: true, SpewKeys: true, ...}`, as used by `k8s.io/utils/dump.ForHash`) that
//! the kubelet checkpoint structs need.
//!
//! Build a [`Spew`] tree describing the Go value, then render it with [`render_typed`] (a
//! value whose Go type is printed, e.g. a struct field or the top-level pointer) or
//! [`render`] (a value in an "untyped" position: map keys and values, slice elements).
//!
//! Rules reproduced:
//! * typed position: `(<go type>)` immediately followed by the value; a nil map/slice/pointer
//!   is `(<go type>)<nil>`; a typed pointer's pointee is printed without `<*>`.
//! * untyped position: nil is `<nil>`, a non-nil pointer is `<*>` then the pointee.
//! * strings and integers raw (no quotes, no escaping); struct `{A:(t)v B:(t)v}`;
//!   map `map[k:v k:v]`; slice `[a b]`; elements separated by one space.
//!
//! Map keys must already be in go-spew's sort order (integers numerically, strings
//! bytewise); a `BTreeMap` over `i64`/`u32`/`String` gives exactly that.

use std::fmt::{self, Write};

/// A Go value as go-spew sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Spew {
    /// A string or an integer, printed as is.
    Raw(String),
    /// A nil map, slice or pointer.
    Nil,
    /// A non-nil pointer to the inner value.
    Ptr(Box<Spew>),
    /// A struct: fields in declaration order as (name, Go type, value).
    Struct(Vec<(&'static str, String, Spew)>),
    /// A non-nil map, entries already sorted.
    Map(Vec<(Spew, Spew)>),
    /// A non-nil slice.
    Slice(Vec<Spew>),
    /// A non-nil `[]uint8`: rendered exactly as a [`Spew::Slice`] of its bytes in decimal,
    /// without one node per byte (a device checkpoint's `AllocResp` bytes would otherwise
    /// cost tens of bytes of memory each).
    Bytes(Vec<u8>),
}

impl Spew {
    pub fn str(s: &str) -> Spew {
        Spew::Raw(s.to_owned())
    }

    pub fn uint(v: u64) -> Spew {
        Spew::Raw(v.to_string())
    }

    pub fn int(v: i64) -> Spew {
        Spew::Raw(v.to_string())
    }

    pub fn ptr(inner: Spew) -> Spew {
        Spew::Ptr(Box::new(inner))
    }

    /// `Some(v)` -> `f(v)`, `None` -> [`Spew::Nil`].
    pub fn nullable<T>(v: Option<T>, f: impl FnOnce(T) -> Spew) -> Spew {
        v.map_or(Spew::Nil, f)
    }
}

/// Renders `v` in a typed position: `(<ty>)<value>`.
pub fn render_typed<W: Write + ?Sized>(out: &mut W, ty: &str, v: &Spew) -> fmt::Result {
    out.write_char('(')?;
    out.write_str(ty)?;
    out.write_char(')')?;
    match v {
        Spew::Nil => out.write_str("<nil>"),
        Spew::Ptr(inner) => render(out, inner),
        other => render(out, other),
    }
}

/// Renders `v` in an untyped position (map key or value, slice element, pointee).
pub fn render<W: Write + ?Sized>(out: &mut W, v: &Spew) -> fmt::Result {
    match v {
        Spew::Raw(s) => out.write_str(s),
        Spew::Nil => out.write_str("<nil>"),
        Spew::Ptr(inner) => {
            out.write_str("<*>")?;
            render(out, inner)
        }
        Spew::Struct(fields) => {
            out.write_char('{')?;
            for (i, (name, ty, value)) in fields.iter().enumerate() {
                if i > 0 {
                    out.write_char(' ')?;
                }
                out.write_str(name)?;
                out.write_char(':')?;
                render_typed(out, ty, value)?;
            }
            out.write_char('}')
        }
        Spew::Map(entries) => {
            out.write_str("map[")?;
            for (i, (k, value)) in entries.iter().enumerate() {
                if i > 0 {
                    out.write_char(' ')?;
                }
                render(out, k)?;
                out.write_char(':')?;
                render(out, value)?;
            }
            out.write_char(']')
        }
        Spew::Slice(items) => {
            out.write_char('[')?;
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.write_char(' ')?;
                }
                render(out, item)?;
            }
            out.write_char(']')
        }
        Spew::Bytes(bytes) => {
            out.write_char('[')?;
            for (i, &b) in bytes.iter().enumerate() {
                if i > 0 {
                    out.write_char(' ')?;
                }
                let digits = [b / 100, b / 10 % 10, b % 10];
                let skip = if b >= 100 {
                    0
                } else if b >= 10 {
                    1
                } else {
                    2
                };
                for d in &digits[skip..] {
                    out.write_char(char::from(b'0' + d))?;
                }
            }
            out.write_char(']')
        }
    }
}

/// `Sprintf("%#v", v)` where the Go value has type `ty`, as a string.
pub fn sprint_typed(ty: &str, v: &Spew) -> String {
    let mut s = String::new();
    // Writing into a String cannot fail.
    let _ = render_typed(&mut s, ty, v);
    s
}

/// FNV-1a-32 of `Sprintf("%#v", v)` (Go `checksum.New` for a value of type `ty`).
pub fn hash_typed(ty: &str, v: &Spew) -> u32 {
    let mut h = super::fnv::Fnv1a32::new();
    // Writing into the hasher cannot fail.
    let _ = render_typed(&mut h, ty, v);
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes() {
        let table = Spew::Struct(vec![
            ("A", "uint64".into(), Spew::uint(1)),
            ("B", "[]int".into(), Spew::Nil),
            (
                "C",
                "[]int".into(),
                Spew::Slice(vec![Spew::int(0), Spew::int(-1)]),
            ),
        ]);
        let v = Spew::ptr(Spew::Struct(vec![
            ("Name", "string".into(), Spew::str("x y")),
            (
                "M",
                "map[int]*T".into(),
                Spew::Map(vec![
                    (Spew::int(0), Spew::ptr(table)),
                    (Spew::int(1), Spew::Nil),
                ]),
            ),
            ("E", "map[string]int".into(), Spew::Map(vec![])),
        ]));
        assert_eq!(
            sprint_typed("*pkg.T", &v),
            "(*pkg.T){Name:(string)x y M:(map[int]*T)map[0:<*>{A:(uint64)1 B:([]int)<nil> \
             C:([]int)[0 -1]} 1:<nil>] E:(map[string]int)map[]}"
        );
        assert_eq!(sprint_typed("*pkg.T", &Spew::Nil), "(*pkg.T)<nil>");
    }

    #[test]
    fn bytes_render_as_a_slice_of_decimal_bytes() {
        let all: Vec<u8> = (0..=255).collect();
        let slice = Spew::Slice(all.iter().map(|&b| Spew::uint(b.into())).collect());
        for v in [vec![], vec![0], vec![9, 10, 99, 100, 255], all.clone()] {
            let s = Spew::Slice(v.iter().map(|&b| Spew::uint(b.into())).collect());
            assert_eq!(
                sprint_typed("[]uint8", &Spew::Bytes(v.clone())),
                sprint_typed("[]uint8", &s)
            );
        }
        assert_eq!(
            hash_typed("[]uint8", &Spew::Bytes(all)),
            hash_typed("[]uint8", &slice)
        );
        assert_eq!(
            sprint_typed("[]uint8", &Spew::Bytes(vec![7, 42, 200])),
            "([]uint8)[7 42 200]"
        );
    }

    #[test]
    fn string_checksum() {
        // checksum.New(string) hashes "(string)" + the string (V3 dataChecksum).
        let data = r#"{"policyName":"None","machineState":{}}"#;
        assert_eq!(hash_typed("string", &Spew::str(data)), 3093843326);
    }
}
