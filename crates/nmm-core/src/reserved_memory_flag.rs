//! The kubelet's `--reserved-memory` flag (`ReservedMemoryVar` of
//! `pkg/kubelet/apis/config/v1beta1`/`cmd/kubelet/app/options`), with its exact error texts.
//!
//! Grammar of one flag value: `<numa>:<type>=<qty>[,<type>=<qty>…][;<numa>:…]`, e.g.
//! `0:memory=1Gi,hugepages-1Gi=2Gi;1:memory=2Gi`. The flag may be repeated: the first
//! non-empty value replaces the list the config file gave, later ones append to it.
//!
//! Quirks kept from the kubelet (they decide which messages a user can see):
//! - `""` detaches the flag from its target and succeeds; the list keeps what it had (the
//!   file's list, or what earlier flags gave), and any later `--reserved-memory` then fails
//!   with `no target (nil pointer to *[]MemoryReservation` (unbalanced paren, sic).
//! - a trailing `;` leaves an empty part, which has the wrong format.
//! - the NUMA id is parsed by `strconv.Atoi` (sign and leading zeros accepted, no spaces)
//!   and then converted to int32, wrapping like Go's conversion.
//! - the same type twice in one entry: the last value wins silently; the same NUMA node in
//!   two entries gives two list items (config validation then reports duplicates).
//! - quantities are parsed with `resource.ParseQuantity` (no whitespace trimming).

use crate::kubelet_config::MemoryReservation;
use crate::quantity::Quantity;
use crate::topology::options::parse_go_int;

/// Why one `--reserved-memory` value was refused (the text of `ReservedMemoryVar.Set`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReservedMemoryFlagError {
    /// A value after an empty one (the flag lost its target).
    #[error("no target (nil pointer to *[]MemoryReservation")]
    NoTarget,
    /// A `;`-separated part that is not exactly `<numa>:<limits>`.
    #[error("the reserved memory has incorrect format, expected numaNodeID:type=quantity[,type=quantity...], got {0}")]
    Format(String),
    /// The NUMA id is not an integer.
    #[error("failed to convert the NUMA node ID, exptected integer, got {0}")]
    NumaNode(String),
    /// A `,`-separated limit that is not exactly `<type>=<quantity>`.
    #[error("the reserved limit has incorrect value, expected type=quantatity, got {0}")]
    Limit(String),
    /// A type other than `memory` or `hugepages-<size>`.
    #[error("memory type conversion error, unknown type: {}", go_quote(.0))]
    UnknownType(String),
    /// A quantity `resource.ParseQuantity` refuses.
    #[error("failed to parse the quantatity, expected quantatity, got {0}")]
    Quantity(String),
}

/// A refused flag value: which one, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlagError {
    /// The value as given on the command line.
    pub value: String,
    pub error: ReservedMemoryFlagError,
}

impl FlagError {
    /// pflag's wrapping of the error: `invalid argument "<value>" for "--reserved-memory"
    /// flag: <error>`.
    pub fn pflag_message(&self) -> String {
        format!(
            "invalid argument {} for \"--reserved-memory\" flag: {}",
            go_quote(&self.value),
            self.error
        )
    }

    /// What the kubelet prints when it refuses to start: `failed to parse kubelet flag:
    /// invalid argument …`.
    pub fn kubelet_message(&self) -> String {
        format!("failed to parse kubelet flag: {}", self.pflag_message())
    }
}

impl std::fmt::Display for FlagError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.kubelet_message())
    }
}

impl std::error::Error for FlagError {}

/// The entries one non-empty flag value adds (`Set` without the target bookkeeping). An
/// empty value adds nothing.
pub fn parse_value(s: &str) -> Result<Vec<MemoryReservation>, ReservedMemoryFlagError> {
    let mut out = Vec::new();
    if s.is_empty() {
        return Ok(out);
    }
    for part in s.split(';') {
        let pieces: Vec<&str> = part.split(':').collect();
        if pieces.len() != 2 {
            return Err(ReservedMemoryFlagError::Format(part.to_string()));
        }
        let id = parse_go_int(pieces[0])
            .map_err(|_| ReservedMemoryFlagError::NumaNode(pieces[0].to_string()))?;
        let mut entry = MemoryReservation {
            // Go's int32(int) conversion keeps the low 32 bits.
            numa_node: id as i32,
            limits: Vec::new(),
        };
        for limit in pieces[1].split(',') {
            let kv: Vec<&str> = limit.split('=').collect();
            if kv.len() != 2 {
                return Err(ReservedMemoryFlagError::Limit(limit.to_string()));
            }
            let (name, qty) = (kv[0], kv[1]);
            if name != "memory" && !name.starts_with("hugepages-") {
                return Err(ReservedMemoryFlagError::UnknownType(name.to_string()));
            }
            if Quantity::parse(qty).is_err() {
                return Err(ReservedMemoryFlagError::Quantity(qty.to_string()));
            }
            // A map in the kubelet: the last value of a type wins.
            match entry.limits.iter_mut().find(|(n, _)| n == name) {
                Some(slot) => slot.1 = qty.to_string(),
                None => entry.limits.push((name.to_string(), qty.to_string())),
            }
        }
        out.push(entry);
    }
    Ok(out)
}

/// The kubelet's flag-over-file precedence: `file` is the config file's `reservedMemory`,
/// `values` the `--reserved-memory` flags in command-line order. Returns the list the
/// kubelet ends up with, or the first refused value.
pub fn apply<S: AsRef<str>>(
    file: Option<Vec<MemoryReservation>>,
    values: &[S],
) -> Result<Option<Vec<MemoryReservation>>, FlagError> {
    let mut list = file;
    let mut attached = true;
    let mut initialized = false;
    for v in values {
        let v = v.as_ref();
        let fail = |error| FlagError {
            value: v.to_string(),
            error,
        };
        if !attached {
            return Err(fail(ReservedMemoryFlagError::NoTarget));
        }
        if v.is_empty() {
            attached = false;
            continue;
        }
        if !initialized || list.is_none() {
            list = Some(Vec::new());
            initialized = true;
        }
        let entries = parse_value(v).map_err(fail)?;
        if let Some(l) = list.as_mut() {
            l.extend(entries);
        }
    }
    Ok(list)
}

/// The list the given flags alone produce (no config file).
pub fn parse<S: AsRef<str>>(values: &[S]) -> Result<Vec<MemoryReservation>, FlagError> {
    apply(None, values).map(Option::unwrap_or_default)
}

/// A list as one flag value the kubelet parses back to it: `0:memory=1Gi;1:memory=2Gi`.
/// Entries without limits are left out (the grammar cannot say them).
pub fn to_flag_value(list: &[MemoryReservation]) -> String {
    list.iter()
        .filter(|e| !e.limits.is_empty())
        .map(|e| {
            let limits: Vec<String> = e.limits.iter().map(|(t, q)| format!("{t}={q}")).collect();
            format!("{}:{}", e.numa_node, limits.join(","))
        })
        .collect::<Vec<_>>()
        .join(";")
}

/// Go's `strconv.Quote` (`%q`) for the strings a command line carries.
pub fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{07}' => out.push_str("\\a"),
            '\u{08}' => out.push_str("\\b"),
            '\u{0c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{0b}' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c if c != ' ' && (c.is_control() || c.is_whitespace() || c == '\u{ad}') => {
                if (c as u32) < 0x10000 {
                    out.push_str(&format!("\\u{:04x}", c as u32));
                } else {
                    out.push_str(&format!("\\U{:08x}", c as u32));
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn res(n: i32, limits: &[(&str, &str)]) -> MemoryReservation {
        MemoryReservation {
            numa_node: n,
            limits: limits
                .iter()
                .map(|(t, q)| (t.to_string(), q.to_string()))
                .collect(),
        }
    }

    fn err(values: &[&str]) -> String {
        parse(values).unwrap_err().error.to_string()
    }

    #[test]
    fn parses_the_docs_examples() {
        assert_eq!(
            parse(&["0:memory=1Gi,hugepages-1Gi=2Gi"]).unwrap(),
            vec![res(0, &[("memory", "1Gi"), ("hugepages-1Gi", "2Gi")])]
        );
        assert_eq!(
            parse(&["0:memory=3Gi;1:memory=2148Mi"]).unwrap(),
            vec![
                res(0, &[("memory", "3Gi")]),
                res(1, &[("memory", "2148Mi")])
            ]
        );
        // Repeated flags append.
        assert_eq!(
            parse(&["0:memory=1Gi", "1:memory=2Gi"]).unwrap(),
            vec![res(0, &[("memory", "1Gi")]), res(1, &[("memory", "2Gi")])]
        );
    }

    #[test]
    fn atoi_and_int32_conversion() {
        assert_eq!(parse(&["+01:memory=1"]).unwrap()[0].numa_node, 1);
        assert_eq!(parse(&["-1:memory=1"]).unwrap()[0].numa_node, -1);
        assert_eq!(parse(&["4294967297:memory=1"]).unwrap()[0].numa_node, 1);
    }

    #[test]
    fn same_type_twice_last_wins_same_node_twice_two_items() {
        assert_eq!(
            parse(&["0:memory=1Gi,memory=2Gi"]).unwrap(),
            vec![res(0, &[("memory", "2Gi")])]
        );
        assert_eq!(
            parse(&["0:memory=1Gi;0:memory=2Gi"]).unwrap(),
            vec![res(0, &[("memory", "1Gi")]), res(0, &[("memory", "2Gi")])]
        );
    }

    #[test]
    fn format_error() {
        let want = "the reserved memory has incorrect format, expected numaNodeID:type=quantity[,type=quantity...], got ";
        assert_eq!(err(&["0"]), format!("{want}0"));
        assert_eq!(err(&["0:memory=1Gi:x"]), format!("{want}0:memory=1Gi:x"));
        // A trailing ';' leaves an empty part.
        assert_eq!(err(&["0:memory=1Gi;"]), want);
        assert_eq!(err(&["0:memory=1Gi;1"]), format!("{want}1"));
    }

    #[test]
    fn numa_id_error() {
        let want = "failed to convert the NUMA node ID, exptected integer, got ";
        assert_eq!(err(&["a:memory=1Gi"]), format!("{want}a"));
        assert_eq!(err(&[" 0:memory=1Gi"]), format!("{want} 0"));
        assert_eq!(err(&[":memory=1Gi"]), want);
        assert_eq!(
            err(&["99999999999999999999:memory=1Gi"]),
            format!("{want}99999999999999999999")
        );
    }

    #[test]
    fn limit_error() {
        let want = "the reserved limit has incorrect value, expected type=quantatity, got ";
        assert_eq!(err(&["0:memory"]), format!("{want}memory"));
        assert_eq!(err(&["0:"]), want);
        assert_eq!(err(&["0:memory=1Gi,"]), want);
        assert_eq!(err(&["0:memory=1=2"]), format!("{want}memory=1=2"));
    }

    #[test]
    fn unknown_type_error() {
        assert_eq!(
            err(&["0:cpu=1"]),
            "memory type conversion error, unknown type: \"cpu\""
        );
        assert_eq!(
            err(&["0:Memory=1Gi"]),
            "memory type conversion error, unknown type: \"Memory\""
        );
        assert_eq!(
            err(&["0:=1Gi"]),
            "memory type conversion error, unknown type: \"\""
        );
    }

    #[test]
    fn quantity_error() {
        let want = "failed to parse the quantatity, expected quantatity, got ";
        assert_eq!(err(&["0:memory=1GB"]), format!("{want}1GB"));
        assert_eq!(err(&["0:memory="]), want);
        assert_eq!(err(&["0:memory= 1Gi"]), format!("{want} 1Gi"));
        assert_eq!(err(&["0:hugepages-1Gi=x"]), format!("{want}x"));
    }

    #[test]
    fn checks_run_in_the_kubelets_order() {
        // The format of the part is checked before its NUMA id, the id before the limits,
        // and each limit's shape before its type before its quantity.
        assert!(err(&["x"]).starts_with("the reserved memory has incorrect format"));
        assert!(err(&["x:cpu"]).starts_with("failed to convert the NUMA node ID"));
        assert!(err(&["0:cpu"]).starts_with("the reserved limit has incorrect value"));
        assert!(err(&["0:cpu=x"]).starts_with("memory type conversion error"));
        assert!(err(&["0:memory=1Gi,cpu=x"]).starts_with("memory type conversion error"));
    }

    #[test]
    fn empty_value_detaches_the_flag() {
        let file = Some(vec![res(0, &[("memory", "1Gi")])]);
        // Alone: the file's list stays.
        assert_eq!(apply(file.clone(), &[""]).unwrap(), file);
        assert_eq!(parse(&[""]).unwrap(), vec![]);
        // After a value: that value's list stays.
        assert_eq!(
            apply(file.clone(), &["1:memory=2Gi", ""]).unwrap(),
            Some(vec![res(1, &[("memory", "2Gi")])])
        );
        // Any later value fails.
        let e = apply(file, &["", "0:memory=1Gi"]).unwrap_err();
        assert_eq!(e.value, "0:memory=1Gi");
        assert_eq!(
            e.error.to_string(),
            "no target (nil pointer to *[]MemoryReservation"
        );
        assert_eq!(
            e.kubelet_message(),
            "failed to parse kubelet flag: invalid argument \"0:memory=1Gi\" for \"--reserved-memory\" flag: no target (nil pointer to *[]MemoryReservation"
        );
    }

    #[test]
    fn flags_replace_the_files_list() {
        let file = Some(vec![
            res(0, &[("memory", "1Gi")]),
            res(1, &[("memory", "1Gi")]),
        ]);
        assert_eq!(
            apply(file.clone(), &["0:memory=2Gi", "1:memory=3Gi"]).unwrap(),
            Some(vec![
                res(0, &[("memory", "2Gi")]),
                res(1, &[("memory", "3Gi")])
            ])
        );
        assert_eq!(apply(file.clone(), &[] as &[&str]).unwrap(), file);
        assert_eq!(apply(None, &[] as &[&str]).unwrap(), None);
    }

    #[test]
    fn the_first_refused_value_is_reported_with_pflags_wrapping() {
        let e = parse(&["0:memory=1Gi", "1:memory=1GB", "2"]).unwrap_err();
        assert_eq!(e.value, "1:memory=1GB");
        assert_eq!(
            e.pflag_message(),
            "invalid argument \"1:memory=1GB\" for \"--reserved-memory\" flag: failed to parse the quantatity, expected quantatity, got 1GB"
        );
        assert_eq!(
            e.to_string(),
            "failed to parse kubelet flag: invalid argument \"1:memory=1GB\" for \"--reserved-memory\" flag: failed to parse the quantatity, expected quantatity, got 1GB"
        );
    }

    #[test]
    fn go_quote_escapes_like_strconv_quote() {
        assert_eq!(go_quote("0:memory=1Gi"), "\"0:memory=1Gi\"");
        assert_eq!(go_quote("a\"b\\c"), "\"a\\\"b\\\\c\"");
        assert_eq!(go_quote("a\tb\n"), "\"a\\tb\\n\"");
        assert_eq!(go_quote("\u{1}\u{7f}"), "\"\\x01\\x7f\"");
        assert_eq!(go_quote("é ü"), "\"é ü\"");
        assert_eq!(go_quote("\u{a0}"), "\"\\u00a0\"");
        assert_eq!(
            err(&["0:mem\tory=1"]),
            "memory type conversion error, unknown type: \"mem\\tory\""
        );
    }

    #[test]
    fn flag_value_round_trips() {
        let l = vec![
            res(0, &[("memory", "3Gi"), ("hugepages-2Mi", "4Mi")]),
            res(1, &[("memory", "2148Mi")]),
        ];
        let v = to_flag_value(&l);
        assert_eq!(v, "0:memory=3Gi,hugepages-2Mi=4Mi;1:memory=2148Mi");
        assert_eq!(parse(&[v.as_str()]).unwrap(), l);
    }
}
