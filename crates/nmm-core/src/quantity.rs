//! Kubernetes `resource.Quantity` (k8s.io/apimachinery v1.32), re-implemented.
//!
//! This mirrors the *observable* behaviour of the Go type, including the parts that
//! depend on its two internal representations:
//!
//! * the **int64 fast path** (`int64Amount{value, scale}`), taken by `ParseQuantity`
//!   for short inputs; only this form can succeed in [`Quantity::as_int64`];
//! * the **arbitrary-precision decimal** (`inf.Dec`), used for everything else
//!   (more than 18 digits, sub-nano scales, fractional binary suffixes, and any
//!   arithmetic result that overflows the int64 form).
//!
//! Values are exact.  Parsing keeps precision down to 10^-9 and rounds finer non-zero
//! values up, away from zero (`0.1n` -> `1n`).  BinarySI input above 2^63-1 is capped.
//!
//! `String()` (our [`Display`](fmt::Display)) returns the parsed text verbatim when the
//! parser's "already canonical" heuristic holds, otherwise the canonical form
//! ([`Quantity::canonical`]).  Any arithmetic drops the remembered text.
//!
//! Deliberate deviations from v1.32 (all in unreachable-in-practice corners):
//! * `Sub`/`Neg` of an int64 amount equal to `i64::MIN` give the mathematically right
//!   result (as newer apimachinery does) instead of v1.32's wrapped value.
//! * Scale arithmetic uses 64-bit integers, so exponents near ±2^31 do not wrap.
//!
//! Kept v1.32 quirks: a DecimalSI value whose canonical exponent is above 18 prints
//! without a suffix (`1000E` prints `1`), a BinarySI value with more than six factors
//! of 1024 likewise (`1024Ei` prints `1`); `Value()` of an overflowing int64 amount is
//! 0; `Value()` of a negative non-integer decimal amount rounds towards +inf, and on its
//! int64-sized fast path one step further (`-1.1Ki` -> -1125).

use std::cmp::Ordering;
use std::fmt;
use std::str::FromStr;

/// How a quantity is rendered; remembered from the parsed suffix.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Format {
    /// `12e6`
    DecimalExponent,
    /// `12Mi` (12 * 2^20)
    BinarySI,
    /// `12M` (12 * 10^6)
    DecimalSI,
}

impl Format {
    /// The Go constant's string value.
    pub fn as_str(&self) -> &'static str {
        match self {
            Format::DecimalExponent => "DecimalExponent",
            Format::BinarySI => "BinarySI",
            Format::DecimalSI => "DecimalSI",
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

/// Parse errors, with apimachinery's exact texts.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QuantityError {
    /// `ErrFormatWrong`
    #[error("quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'")]
    FormatWrong,
    /// `ErrSuffix`
    #[error("unable to parse quantity's suffix")]
    Suffix,
    /// `ErrNumeric`
    #[error("unable to parse numeric part of quantity")]
    Numeric,
    /// nmm's own bound (apimachinery has none): a decimal magnitude of 10^1000 or more.
    #[error("quantity is too large: nmm accepts magnitudes below 10^{MAX_DECIMAL_DIGITS} (the exponent or the number of integer digits is too big)")]
    TooLarge,
}

/// Decimal quantities must stay below `10^MAX_DECIMAL_DIGITS` in magnitude.
///
/// apimachinery accepts any exponent that fits an int32 and pays for it in the first
/// arithmetic or rounding step (`1e999999999` costs ~400 MB of `big.Int` there). nmm refuses
/// such values at parse time, so every parsed quantity holds at most about
/// `MAX_DECIMAL_DIGITS + 9` digits and every operation on it is bounded. BinarySI values
/// keep apimachinery's own saturation at 2^63-1.
pub const MAX_DECIMAL_DIGITS: i64 = 1000;

// ---------------------------------------------------------------------------------
// Arbitrary precision magnitude: little-endian base-10 digits, no high zero digits.
// ---------------------------------------------------------------------------------

#[derive(Clone, PartialEq, Eq, Default)]
struct Mag(Vec<u8>);

impl Mag {
    fn zero() -> Mag {
        Mag(Vec::new())
    }

    fn from_u128(mut v: u128) -> Mag {
        let mut d = Vec::new();
        while v > 0 {
            d.push((v % 10) as u8);
            v /= 10;
        }
        Mag(d)
    }

    /// From big-endian ASCII digits (leading zeros allowed).
    fn from_ascii(digits: &[u8]) -> Mag {
        Mag::normalized(digits.iter().rev().map(|c| c - b'0').collect())
    }

    fn normalized(mut d: Vec<u8>) -> Mag {
        while d.last() == Some(&0) {
            d.pop();
        }
        Mag(d)
    }

    fn is_zero(&self) -> bool {
        self.0.is_empty()
    }

    fn ndigits(&self) -> usize {
        self.0.len()
    }

    fn cmp_mag(&self, o: &Mag) -> Ordering {
        self.0
            .len()
            .cmp(&o.0.len())
            .then_with(|| self.0.iter().rev().cmp(o.0.iter().rev()))
    }

    fn add(&self, o: &Mag) -> Mag {
        let n = self.0.len().max(o.0.len());
        let mut out = Vec::with_capacity(n + 1);
        let mut carry = 0u8;
        for i in 0..n {
            let t = self.0.get(i).copied().unwrap_or(0) + o.0.get(i).copied().unwrap_or(0) + carry;
            out.push(t % 10);
            carry = t / 10;
        }
        if carry > 0 {
            out.push(carry);
        }
        Mag::normalized(out)
    }

    /// `self - o`; requires `self >= o`.
    fn sub(&self, o: &Mag) -> Mag {
        debug_assert!(self.cmp_mag(o) != Ordering::Less);
        let mut out = Vec::with_capacity(self.0.len());
        let mut borrow = 0i8;
        for (i, &d) in self.0.iter().enumerate() {
            let mut t = d as i8 - o.0.get(i).copied().unwrap_or(0) as i8 - borrow;
            if t < 0 {
                t += 10;
                borrow = 1;
            } else {
                borrow = 0;
            }
            out.push(t as u8);
        }
        Mag::normalized(out)
    }

    fn mul_small(&self, m: u64) -> Mag {
        if self.is_zero() || m == 0 {
            return Mag::zero();
        }
        let mut out = Vec::with_capacity(self.0.len() + 20);
        let mut carry: u128 = 0;
        for &d in &self.0 {
            let t = d as u128 * m as u128 + carry;
            out.push((t % 10) as u8);
            carry = t / 10;
        }
        while carry > 0 {
            out.push((carry % 10) as u8);
            carry /= 10;
        }
        Mag::normalized(out)
    }

    /// `self * 10^k`
    fn shl10(&self, k: usize) -> Mag {
        if self.is_zero() || k == 0 {
            return self.clone();
        }
        let mut d = vec![0u8; k];
        d.extend_from_slice(&self.0);
        Mag(d)
    }

    /// `(self / 10^k truncated, remainder != 0)`
    fn shr10(&self, k: usize) -> (Mag, bool) {
        if k == 0 {
            return (self.clone(), false);
        }
        if k >= self.0.len() {
            return (Mag::zero(), !self.is_zero());
        }
        let rem = self.0[..k].iter().any(|&d| d != 0);
        (Mag(self.0[k..].to_vec()), rem)
    }

    fn trailing_zeros(&self) -> usize {
        self.0.iter().take_while(|&&d| d == 0).count()
    }

    /// `(self / d, self % d)` for a small divisor.
    fn div_small(&self, d: u64) -> (Mag, u64) {
        let mut q = vec![0u8; self.0.len()];
        let mut rem: u128 = 0;
        for (qd, &sd) in q.iter_mut().zip(&self.0).rev() {
            rem = rem * 10 + sd as u128;
            *qd = (rem / d as u128) as u8;
            rem %= d as u128;
        }
        (Mag::normalized(q), rem as u64)
    }

    fn incr(&self) -> Mag {
        self.add(&Mag::from_u128(1))
    }

    #[cfg(test)]
    fn to_u128(&self) -> Option<u128> {
        let mut v: u128 = 0;
        for &d in self.0.iter().rev() {
            v = v.checked_mul(10)?.checked_add(d as u128)?;
        }
        Some(v)
    }

    /// The low 64 bits of the magnitude (what Go's `big.Int.Int64` keeps).
    fn low_u64(&self) -> u64 {
        self.0
            .iter()
            .rev()
            .fold(0u64, |acc, &d| acc.wrapping_mul(10).wrapping_add(d as u64))
    }
}

impl fmt::Display for Mag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_zero() {
            return f.write_str("0");
        }
        let s: String = self.0.iter().rev().map(|&d| (b'0' + d) as char).collect();
        f.write_str(&s)
    }
}

impl fmt::Debug for Mag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

// ---------------------------------------------------------------------------------
// Signed decimal: value = (-1)^neg * mag * 10^exp  (the inf.Dec form; exp = -inf.Scale)
// ---------------------------------------------------------------------------------

#[derive(Clone, Debug, PartialEq, Eq)]
struct Dec {
    neg: bool,
    mag: Mag,
    exp: i64,
}

impl Dec {
    fn new(neg: bool, mag: Mag, exp: i64) -> Dec {
        let neg = neg && !mag.is_zero();
        Dec { neg, mag, exp }
    }

    fn from_i64(v: i64, exp: i64) -> Dec {
        Dec::new(v < 0, Mag::from_u128(v.unsigned_abs() as u128), exp)
    }

    fn is_zero(&self) -> bool {
        self.mag.is_zero()
    }

    fn sign(&self) -> i32 {
        if self.mag.is_zero() {
            0
        } else if self.neg {
            -1
        } else {
            1
        }
    }

    fn negated(&self) -> Dec {
        Dec::new(!self.neg, self.mag.clone(), self.exp)
    }

    fn is_integer(&self) -> bool {
        self.exp >= 0
            || self.mag.is_zero()
            || self.mag.trailing_zeros() as i64 >= self.exp.saturating_neg()
    }

    /// Compares absolute values without writing out huge scale differences.
    fn cmp_abs(&self, o: &Dec) -> Ordering {
        match (self.mag.is_zero(), o.mag.is_zero()) {
            (true, true) => return Ordering::Equal,
            (true, false) => return Ordering::Less,
            (false, true) => return Ordering::Greater,
            _ => {}
        }
        let ta = self.mag.ndigits() as i64 + self.exp;
        let tb = o.mag.ndigits() as i64 + o.exp;
        if ta != tb {
            return ta.cmp(&tb);
        }
        // Same leading-digit position: the exponents differ by at most the digit counts.
        let e = self.exp.min(o.exp);
        let a = self.mag.shl10((self.exp - e) as usize);
        let b = o.mag.shl10((o.exp - e) as usize);
        a.cmp_mag(&b)
    }

    fn cmp(&self, o: &Dec) -> Ordering {
        let (sa, sb) = (self.sign(), o.sign());
        match sa.cmp(&sb) {
            Ordering::Equal => match sa {
                0 => Ordering::Equal,
                1 => self.cmp_abs(o),
                _ => self.cmp_abs(o).reverse(),
            },
            other => other,
        }
    }

    /// inf.Dec addition: the result takes the finer of the two scales.
    fn add(&self, o: &Dec) -> Dec {
        let e = self.exp.min(o.exp);
        let a = self.mag.shl10((self.exp - e) as usize);
        let b = o.mag.shl10((o.exp - e) as usize);
        if self.neg == o.neg {
            Dec::new(self.neg, a.add(&b), e)
        } else if a.cmp_mag(&b) != Ordering::Less {
            Dec::new(self.neg, a.sub(&b), e)
        } else {
            Dec::new(o.neg, b.sub(&a), e)
        }
    }

    /// Go's `big.Int.Int64()` of the unscaled value: low 64 bits, then the sign.
    fn unscaled_wrapped_i64(&self) -> i64 {
        let w = self.mag.low_u64() as i64;
        if self.neg {
            w.wrapping_neg()
        } else {
            w
        }
    }

    /// `unscaled < math.MaxInt64` (signed comparison of the unscaled integer).
    fn unscaled_lt_max_i64(&self) -> bool {
        self.neg || self.mag.cmp_mag(&Mag::from_u128(i64::MAX as u128)) == Ordering::Less
    }
}

// ---------------------------------------------------------------------------------
// int64Amount helpers
// ---------------------------------------------------------------------------------

fn pow10_i64(n: u32) -> i64 {
    10i64.pow(n)
}

/// `positiveScaleInt64`: `base * 10^scale`, `None` on overflow.
fn positive_scale_i64(base: i64, scale: i64) -> Option<i64> {
    if scale == 0 || base == 0 {
        return Some(base);
    }
    if !(0..19).contains(&scale) {
        return None;
    }
    base.checked_mul(pow10_i64(scale as u32))
}

/// `negativeScaleInt64`: `base / 10^scale`, rounded away from zero (scale > 0).
fn negative_scale_i64(base: i64, scale: i64) -> i64 {
    if scale <= 0 || base == 0 {
        return base;
    }
    if scale >= 19 {
        return if base > 0 { 1 } else { -1 };
    }
    let d = pow10_i64(scale as u32);
    let (q, r) = (base / d, base % d);
    if r == 0 {
        q
    } else if base > 0 {
        q + 1
    } else {
        q - 1
    }
}

/// `int64Amount.Add`: `None` (and no change) on overflow.
fn int_add(a: (i64, i32), b: (i64, i32)) -> Option<(i64, i32)> {
    let ((av, asc), (bv, bsc)) = (a, b);
    if bv == 0 {
        return Some(a);
    }
    if av == 0 {
        return Some(b);
    }
    match asc.cmp(&bsc) {
        Ordering::Equal => av.checked_add(bv).map(|c| (c, asc)),
        Ordering::Greater => {
            let c = positive_scale_i64(av, asc as i64 - bsc as i64)?;
            c.checked_add(bv).map(|c| (c, bsc))
        }
        Ordering::Less => {
            let c = positive_scale_i64(bv, bsc as i64 - asc as i64)?;
            av.checked_add(c).map(|c| (c, asc))
        }
    }
}

/// `int64(math.Pow10(n))` as amd64 Go computes it (out of range -> MinInt64).
fn go_pow10_as_i64(n: i64) -> i64 {
    if (0..19).contains(&n) {
        pow10_i64(n as u32)
    } else {
        i64::MIN
    }
}

#[derive(Clone, Debug)]
enum Amount {
    /// `int64Amount`: value * 10^scale
    Int { value: i64, scale: i32 },
    /// `inf.Dec`
    Dec(Dec),
}

impl Amount {
    fn as_dec(&self) -> Dec {
        match self {
            Amount::Int { value, scale } => Dec::from_i64(*value, *scale as i64),
            Amount::Dec(d) => d.clone(),
        }
    }
}

// ---------------------------------------------------------------------------------
// Quantity
// ---------------------------------------------------------------------------------

/// A Kubernetes `resource.Quantity`: exact fixed-point number plus a display format.
#[derive(Clone, Debug)]
pub struct Quantity {
    amount: Amount,
    format: Format,
    /// The parsed text, kept when the parser judged it canonical (Go's `s` field).
    cached: Option<String>,
}

impl Default for Quantity {
    fn default() -> Self {
        Quantity::zero()
    }
}

/// Output of the apimachinery scanner (`parseQuantityString`).
#[derive(Debug, PartialEq, Eq)]
struct Scanned<'a> {
    positive: bool,
    value: &'a [u8],
    num: &'a [u8],
    denom: &'a [u8],
    suffix: &'a [u8],
}

fn is_digit(c: u8) -> bool {
    c.is_ascii_digit()
}

fn scan(s: &[u8]) -> Result<Scanned<'_>, QuantityError> {
    let end = s.len();
    let mut pos = 0;
    let mut positive = true;
    if pos < end {
        match s[0] {
            b'-' => {
                positive = false;
                pos += 1;
            }
            b'+' => pos += 1,
            _ => {}
        }
    }
    // Leading zeros.
    loop {
        if pos >= end {
            return Ok(Scanned {
                positive,
                value: b"0",
                num: b"0",
                denom: b"",
                suffix: b"",
            });
        }
        if s[pos] == b'0' {
            pos += 1;
        } else {
            break;
        }
    }
    // Integer digits.
    let start = pos;
    let mut i = pos;
    while i < end && is_digit(s[i]) {
        i += 1;
    }
    if i >= end {
        return Ok(Scanned {
            positive,
            value: s,
            num: &s[start..],
            denom: b"",
            suffix: b"",
        });
    }
    let mut num = &s[start..i];
    pos = i;
    if num.is_empty() {
        num = b"0";
    }
    // Fraction digits.
    let mut denom: &[u8] = b"";
    if s[pos] == b'.' {
        pos += 1;
        let ds = pos;
        let mut i = pos;
        while i < end && is_digit(s[i]) {
            i += 1;
        }
        if i >= end {
            return Ok(Scanned {
                positive,
                value: s,
                num,
                denom: &s[ds..],
                suffix: b"",
            });
        }
        denom = &s[ds..i];
        pos = i;
    }
    let value = &s[..pos];
    // Suffix: letters, optional sign, digits.
    let suffix_start = pos;
    let mut i = pos;
    while i < end && b"eEinumkKMGTP".contains(&s[i]) {
        i += 1;
    }
    if i >= end {
        return Ok(Scanned {
            positive,
            value,
            num,
            denom,
            suffix: &s[suffix_start..],
        });
    }
    pos = i;
    if s[pos] == b'-' || s[pos] == b'+' {
        pos += 1;
    }
    let mut i = pos;
    while i < end && is_digit(s[i]) {
        i += 1;
    }
    if i >= end {
        return Ok(Scanned {
            positive,
            value,
            num,
            denom,
            suffix: &s[suffix_start..],
        });
    }
    Err(QuantityError::FormatWrong)
}

/// `(base, exponent, format)` of a suffix.
fn interpret_suffix(s: &[u8]) -> Option<(u32, i32, Format)> {
    use Format::*;
    let r = match s {
        b"" => (10, 0, DecimalSI),
        b"n" => (10, -9, DecimalSI),
        b"u" => (10, -6, DecimalSI),
        b"m" => (10, -3, DecimalSI),
        b"k" => (10, 3, DecimalSI),
        b"M" => (10, 6, DecimalSI),
        b"G" => (10, 9, DecimalSI),
        b"T" => (10, 12, DecimalSI),
        b"P" => (10, 15, DecimalSI),
        b"E" => (10, 18, DecimalSI),
        b"Ki" => (2, 10, BinarySI),
        b"Mi" => (2, 20, BinarySI),
        b"Gi" => (2, 30, BinarySI),
        b"Ti" => (2, 40, BinarySI),
        b"Pi" => (2, 50, BinarySI),
        b"Ei" => (2, 60, BinarySI),
        _ if s.len() > 1 && (s[0] == b'e' || s[0] == b'E') => {
            let v: i64 = std::str::from_utf8(&s[1..]).ok()?.parse().ok()?;
            // Go: int32(parsed), truncating.
            (10, v as i32, DecimalExponent)
        }
        _ => return None,
    };
    Some(r)
}

/// Power of ten of the most significant non-zero digit of `num.denom * 10^exponent`
/// (`None` for zero), computed from the text without building the number.
fn leading_digit_position(sc: &Scanned<'_>, exponent: i32) -> Option<i64> {
    let int_len = if sc.num == b"0" {
        0
    } else {
        sc.num.len() as i64
    };
    let p = if int_len > 0 {
        int_len - 1
    } else {
        let j = sc.denom.iter().position(|&c| c != b'0')?;
        -(j as i64) - 1
    };
    Some(p + exponent as i64)
}

/// inf.Dec `SetString` of the scanner's value text: `(negative, unscaled, fraction digits)`.
fn parse_decimal_text(v: &[u8]) -> Option<(bool, Mag, usize)> {
    let mut i = 0;
    let mut neg = false;
    if let Some(&c) = v.first() {
        if c == b'+' || c == b'-' {
            neg = c == b'-';
            i = 1;
        }
    }
    let mut digits = Vec::with_capacity(v.len());
    let mut frac = 0usize;
    let mut seen_dot = false;
    for &c in &v[i..] {
        if c == b'.' {
            if seen_dot {
                return None;
            }
            seen_dot = true;
        } else if is_digit(c) {
            digits.push(c);
            if seen_dot {
                frac += 1;
            }
        } else {
            return None;
        }
    }
    if digits.is_empty() {
        return None;
    }
    Some((neg, Mag::from_ascii(&digits), frac))
}

fn decimal_si_suffix(exp: i64) -> &'static str {
    match exp {
        -9 => "n",
        -6 => "u",
        -3 => "m",
        0 => "",
        3 => "k",
        6 => "M",
        9 => "G",
        12 => "T",
        15 => "P",
        18 => "E",
        // v1.32 drops the suffix when there is none (fixed upstream much later).
        _ => "",
    }
}

fn binary_si_suffix(pow1024: u32) -> &'static str {
    match pow1024 {
        0 => "",
        1 => "Ki",
        2 => "Mi",
        3 => "Gi",
        4 => "Ti",
        5 => "Pi",
        6 => "Ei",
        // v1.32: no suffix found, none printed.
        _ => "",
    }
}

impl Quantity {
    /// `resource.ParseQuantity`.  No whitespace trimming.
    pub fn parse(s: &str) -> Result<Quantity, QuantityError> {
        if s.is_empty() {
            return Err(QuantityError::FormatWrong);
        }
        if s == "0" {
            return Ok(Quantity {
                amount: Amount::Int { value: 0, scale: 0 },
                format: Format::DecimalSI,
                cached: Some("0".to_string()),
            });
        }
        let sc = scan(s.as_bytes())?;
        let (base, exponent, mut format) =
            interpret_suffix(sc.suffix).ok_or(QuantityError::Suffix)?;
        if base == 10
            && leading_digit_position(&sc, exponent).is_some_and(|p| p >= MAX_DECIMAL_DIGITS)
        {
            return Err(QuantityError::TooLarge);
        }

        // int64 fast path.
        let digits = (sc.num.len() + sc.denom.len()) as i64;
        let (precision, mut scale, mantissa): (i64, i32, i64) = match format {
            Format::DecimalSI | Format::DecimalExponent => (18 - digits, exponent, 1),
            Format::BinarySI => {
                if exponent >= 0 && sc.denom.is_empty() {
                    let p = 15 - sc.num.len() as i64 - (exponent as i64 * 3 / 10) - 1;
                    (p, 0, 1i64 << exponent)
                } else {
                    (-1, 0, 1)
                }
            }
        };
        if precision >= 0 {
            scale = scale.wrapping_sub(sc.denom.len() as i32);
            if scale >= -9 {
                let shifted = [sc.num, sc.denom].concat();
                let value: i64 = std::str::from_utf8(&shifted)
                    .ok()
                    .and_then(|t| t.parse().ok())
                    .ok_or(QuantityError::Numeric)?;
                if let Some(mut result) = value.checked_mul(mantissa) {
                    if !sc.positive {
                        result = -result;
                    }
                    let keep_text = match format {
                        Format::BinarySI => exponent % 10 == 0 && value & 0x07 != 0,
                        _ => scale % 3 == 0 && !shifted.ends_with(b"000") && shifted[0] != b'0',
                    };
                    return Ok(Quantity {
                        amount: Amount::Int {
                            value: result,
                            scale,
                        },
                        format,
                        cached: keep_text.then(|| s.to_string()),
                    });
                }
            }
        }

        // Arbitrary-precision path.
        let (neg, mut mag, frac) = parse_decimal_text(sc.value).ok_or(QuantityError::Numeric)?;
        let mut exp = -(frac as i64);
        if base == 10 {
            exp += exponent as i64;
        } else {
            mag = mag.mul_small(1u64 << exponent);
        }
        if !mag.is_zero() {
            // Round to nano, away from zero (the magnitude is rounded up).
            if exp > -9 {
                mag = mag.shl10((exp + 9) as usize);
            } else if exp < -9 {
                let (q, rem) = mag.shr10((-9 - exp) as usize);
                mag = if rem { q.incr() } else { q };
            }
            exp = -9;
        }
        if format == Format::BinarySI {
            let abs = Dec::new(false, mag.clone(), exp);
            if abs.cmp(&Dec::from_i64(i64::MAX, 0)) == Ordering::Greater {
                mag = Mag::from_u128(i64::MAX as u128);
                exp = 0;
            } else if !abs.is_zero() && abs.cmp(&Dec::from_i64(1, 0)) == Ordering::Less {
                format = Format::DecimalSI;
            }
        }
        Ok(Quantity {
            amount: Amount::Dec(Dec::new(neg, mag, exp)),
            format,
            cached: None,
        })
    }

    /// Like Go's `MustParse`: panics with `cannot parse '<s>': <err>`.
    pub fn must_parse(s: &str) -> Quantity {
        match Quantity::parse(s) {
            Ok(q) => q,
            Err(e) => panic!("cannot parse '{s}': {e}"),
        }
    }

    /// A DecimalSI zero (int64 form, no remembered text).
    pub fn zero() -> Quantity {
        Quantity::from_i64(0, Format::DecimalSI)
    }

    /// `resource.NewQuantity(v, f)`.
    pub fn from_i64(v: i64, f: Format) -> Quantity {
        Quantity {
            amount: Amount::Int { value: v, scale: 0 },
            format: f,
            cached: None,
        }
    }

    /// `resource.NewScaledQuantity(v, scale)` with an explicit format: `v * 10^scale`.
    pub fn from_scaled_i64(v: i64, scale: i32, f: Format) -> Quantity {
        Quantity {
            amount: Amount::Int { value: v, scale },
            format: f,
            cached: None,
        }
    }

    fn from_u64(v: u64, f: Format) -> Quantity {
        match i64::try_from(v) {
            Ok(i) => Quantity::from_i64(i, f),
            Err(_) => Quantity {
                amount: Amount::Dec(Dec::new(false, Mag::from_u128(v as u128), 0)),
                format: f,
                cached: None,
            },
        }
    }

    /// The remembered format.
    pub fn format(&self) -> Format {
        self.format
    }

    /// `AsInt64`: only the int64 form with a non-negative scale that fits succeeds.
    pub fn as_int64(&self) -> Option<i64> {
        match &self.amount {
            Amount::Int { value, scale } => {
                if *scale == 0 {
                    Some(*value)
                } else if *scale < 0 {
                    None
                } else {
                    positive_scale_i64(*value, *scale as i64)
                }
            }
            Amount::Dec(_) => None,
        }
    }

    /// `ScaledValue(scale)`: the value in units of 10^scale, rounded up (see module docs
    /// for v1.32's exact rounding of negative decimals and its overflow results).
    pub fn scaled_value(&self, scale: i32) -> i64 {
        match &self.amount {
            Amount::Int { value, scale: s } => {
                let (s, t) = (*s as i64, scale as i64);
                if s < t {
                    negative_scale_i64(*value, t - s)
                } else {
                    positive_scale_i64(*value, s - t).unwrap_or(0)
                }
            }
            Amount::Dec(d) => dec_scaled_value(d, scale as i64),
        }
    }

    /// `Value()`: rounded up to an integer, away from zero for the int64 form.
    pub fn value(&self) -> i64 {
        self.scaled_value(0)
    }

    /// `MilliValue()`: `ceil(q * 1000)`.
    pub fn milli_value(&self) -> i64 {
        self.scaled_value(-3)
    }

    pub fn is_zero(&self) -> bool {
        match &self.amount {
            Amount::Int { value, .. } => *value == 0,
            Amount::Dec(d) => d.is_zero(),
        }
    }

    /// -1, 0 or 1.
    pub fn sign(&self) -> i32 {
        match &self.amount {
            Amount::Int { value, .. } => value.signum() as i32,
            Amount::Dec(d) => d.sign(),
        }
    }

    /// Go `Add`: drops the remembered text; a zero receiver adopts `other`'s format.
    pub fn add(&mut self, other: &Quantity) {
        self.cached = None;
        if let (
            Amount::Int {
                value: av,
                scale: asc,
            },
            Amount::Int {
                value: bv,
                scale: bsc,
            },
        ) = (&self.amount, &other.amount)
        {
            if *av == 0 {
                self.format = other.format;
            }
            if let Some((value, scale)) = int_add((*av, *asc), (*bv, *bsc)) {
                self.amount = Amount::Int { value, scale };
                return;
            }
        } else if self.is_zero() {
            self.format = other.format;
        }
        let sum = self.amount.as_dec().add(&other.amount.as_dec());
        self.amount = Amount::Dec(sum);
    }

    /// Go `Sub`: drops the remembered text; a zero receiver adopts `other`'s format.
    pub fn sub(&mut self, other: &Quantity) {
        self.cached = None;
        if self.is_zero() {
            self.format = other.format;
        }
        if let (
            Amount::Int {
                value: av,
                scale: asc,
            },
            Amount::Int {
                value: bv,
                scale: bsc,
            },
        ) = (&self.amount, &other.amount)
        {
            if *bv != i64::MIN {
                if let Some((value, scale)) = int_add((*av, *asc), (-*bv, *bsc)) {
                    self.amount = Amount::Int { value, scale };
                    return;
                }
            }
        }
        let diff = self.amount.as_dec().add(&other.amount.as_dec().negated());
        self.amount = Amount::Dec(diff);
    }

    /// Go `Neg`.
    pub fn neg(&mut self) {
        self.cached = None;
        self.amount = match &self.amount {
            Amount::Int { value, scale } if *value != i64::MIN => Amount::Int {
                value: -*value,
                scale: *scale,
            },
            other => Amount::Dec(other.as_dec().negated()),
        };
    }

    /// Numeric comparison (Go `Cmp`), ignoring format.
    pub fn cmp_value(&self, other: &Quantity) -> Ordering {
        if let (
            Amount::Int {
                value: av,
                scale: asc,
            },
            Amount::Int {
                value: bv,
                scale: bsc,
            },
        ) = (&self.amount, &other.amount)
        {
            if asc == bsc {
                return av.cmp(bv);
            }
        }
        self.amount.as_dec().cmp(&other.amount.as_dec())
    }

    /// Go `String()` computed from the value, ignoring any remembered input text.
    pub fn canonical(&self) -> String {
        let d = self.amount.as_dec();
        if d.is_zero() {
            return "0".to_string();
        }
        let mut format = self.format;
        if format == Format::BinarySI
            && (d.cmp_abs(&Dec::from_i64(1024, 0)) == Ordering::Less || !d.is_integer())
        {
            // Small or fractional binary values print in decimal to avoid rounding.
            format = Format::DecimalSI;
        }
        let sign = if d.neg { "-" } else { "" };
        match format {
            Format::BinarySI => {
                let mut n = if d.exp >= 0 {
                    d.mag.shl10(d.exp as usize)
                } else {
                    d.mag.shr10((-d.exp) as usize).0
                };
                let mut k = 0u32;
                loop {
                    let (q, r) = n.div_small(1024);
                    if r != 0 || q.is_zero() {
                        break;
                    }
                    n = q;
                    k += 1;
                }
                format!("{sign}{n}{}", binary_si_suffix(k))
            }
            Format::DecimalSI | Format::DecimalExponent => {
                let tz = d.mag.trailing_zeros();
                let mut m = d.mag.shr10(tz).0;
                let mut e = d.exp + tz as i64;
                let r = e.rem_euclid(3);
                if r != 0 {
                    m = m.shl10(r as usize);
                    e -= r;
                }
                if format == Format::DecimalSI {
                    format!("{sign}{m}{}", decimal_si_suffix(e))
                } else if e == 0 {
                    format!("{sign}{m}")
                } else {
                    format!("{sign}{m}e{e}")
                }
            }
        }
    }
}

/// v1.32 `scaledValue(unscaled, scale, newScale)` for the inf.Dec form.
fn dec_scaled_value(d: &Dec, target: i64) -> i64 {
    // dif = inf scale - new inf scale = (-exp) - (-target)
    let dif = target - d.exp;
    let u = d.unscaled_wrapped_i64();
    if dif == 0 {
        return u;
    }
    if dif < 0 {
        return u.wrapping_mul(go_pow10_as_i64(-dif));
    }
    if d.is_zero() {
        return 0;
    }
    if d.unscaled_lt_max_i64() && dif < 19 {
        let p = pow10_i64(dif as u32);
        let (q, m) = (u / p, u % p);
        return if m != 0 { q + 1 } else { q };
    }
    // big.Int DivMod (Euclidean), then +1 when inexact.
    let (tq, rem) = d.mag.shr10(dif as usize);
    let w = tq.low_u64() as i64;
    if d.neg {
        // floor(-x) + 1 == -trunc(x) when inexact; -trunc(x) when exact.
        w.wrapping_neg()
    } else {
        w.wrapping_add(rem as i64)
    }
}

impl fmt::Display for Quantity {
    /// Go `String()`: the remembered input text when kept, else [`Quantity::canonical`].
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.cached {
            Some(s) => f.pad(s),
            None => f.pad(&self.canonical()),
        }
    }
}

impl FromStr for Quantity {
    type Err = QuantityError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Quantity::parse(s)
    }
}

/// Canonical BinarySI `String()` of a byte count, as the kubelet names hugepage
/// resources: 2097152 -> `2Mi`, 1073741824 -> `1Gi`, 1536 -> `1536`.  Like Go, a value
/// below 1024 is printed as DecimalSI (1000 -> `1k`).
pub fn format_binary_bytes(bytes: u64) -> String {
    Quantity::from_u64(bytes, Format::BinarySI).canonical()
}

/// Short human text for tables (not Go behaviour): binary units, at most one decimal,
/// rounded to nearest: 1073741824 -> `1Gi`, 1610612736 -> `1.5Gi`, 512 -> `512`.
pub fn format_human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["Ki", "Mi", "Gi", "Ti", "Pi", "Ei"];
    if bytes < 1024 {
        return bytes.to_string();
    }
    let mut idx = 0usize;
    while idx + 1 < UNITS.len() && bytes >= 1u64 << (10 * (idx + 2)) {
        idx += 1;
    }
    let unit = 1u128 << (10 * (idx + 1));
    let mut tenths = (bytes as u128 * 10 + unit / 2) / unit;
    if tenths >= 10240 && idx + 1 < UNITS.len() {
        idx += 1;
        tenths = (tenths + 512) / 1024;
    }
    let whole = tenths / 10;
    let frac = tenths % 10;
    if frac == 0 {
        format!("{whole}{}", UNITS[idx])
    } else {
        format!("{whole}.{frac}{}", UNITS[idx])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Format::*;

    fn q(s: &str) -> Quantity {
        Quantity::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    /// Go test helper `decQuantity(i, exponent, format)`: an inf.Dec amount.
    fn decq(i: i64, exp: i64, f: Format) -> Quantity {
        Quantity {
            amount: Amount::Dec(Dec::from_i64(i, exp)),
            format: f,
            cached: None,
        }
    }

    /// Go test helper `intQuantity(i, exponent, format)`: an int64 amount.
    fn intq(i: i64, scale: i32, f: Format) -> Quantity {
        Quantity::from_scaled_i64(i, scale, f)
    }

    fn bigq(digits: &str, exp: i64, f: Format) -> Quantity {
        let (neg, d) = match digits.strip_prefix('-') {
            Some(d) => (true, d),
            None => (false, digits),
        };
        Quantity {
            amount: Amount::Dec(Dec::new(neg, Mag::from_ascii(d.as_bytes()), exp)),
            format: f,
            cached: None,
        }
    }

    fn to_dec(mut x: Quantity) -> Quantity {
        x.amount = Amount::Dec(x.amount.as_dec());
        x
    }

    fn is_dec(x: &Quantity) -> bool {
        matches!(x.amount, Amount::Dec(_))
    }

    #[test]
    fn error_texts() {
        assert_eq!(
            QuantityError::FormatWrong.to_string(),
            "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"
        );
        assert_eq!(
            QuantityError::Suffix.to_string(),
            "unable to parse quantity's suffix"
        );
        assert_eq!(
            QuantityError::Numeric.to_string(),
            "unable to parse numeric part of quantity"
        );
    }

    #[test]
    fn parse_errors() {
        use QuantityError::*;
        let cases: &[(&str, QuantityError)] = &[
            ("", FormatWrong),
            (" 1", FormatWrong),
            ("1 ", FormatWrong),
            ("1Mb", FormatWrong),
            ("1KB", FormatWrong),
            ("1.5.5", FormatWrong),
            ("1Gix", FormatWrong),
            ("1.1.M", FormatWrong),
            ("1+1.0M", FormatWrong),
            ("0.1am", FormatWrong),
            ("aoeu", FormatWrong),
            ("Non-Numeric", FormatWrong),
            ("lots", FormatWrong),
            ("1e3e", FormatWrong),
            ("1K", Suffix),
            ("1ki", Suffix),
            ("1e", Suffix),
            ("1E+", Suffix),
            ("1iK", Suffix),
            ("0.1mi", Suffix),
            (".5i", Suffix),
            ("1i", Suffix),
            ("-3.01i", Suffix),
            ("-3.01e-", Suffix),
            ("1Ki5", Suffix),
            ("1eE5", Suffix),
            ("1e99999999999999999999", Suffix),
            ("Ei", Numeric),
            ("+Ei", Numeric),
            (".Ei", Numeric),
            ("-.Pi", Numeric),
        ];
        for (s, want) in cases {
            assert_eq!(Quantity::parse(s).unwrap_err(), *want, "{s:?}");
            assert_eq!(s.parse::<Quantity>().unwrap_err(), *want, "{s:?}");
        }
    }

    /// Digits held by the representation (test-only measure of memory use).
    fn repr_digits(x: &Quantity) -> usize {
        match &x.amount {
            Amount::Int { .. } => 1,
            Amount::Dec(d) => d.mag.ndigits(),
        }
    }

    #[test]
    fn hostile_magnitudes_are_refused_before_any_allocation() {
        for s in [
            "1e999999999",
            "1e1000",
            "-1e1000",
            "12345678901234567890e999999999",
            "0.1e1001",
            "1E2147483647",
            "1000000000000000E986",
        ] {
            assert_eq!(
                Quantity::parse(s).unwrap_err(),
                QuantityError::TooLarge,
                "{s}"
            );
        }
        // 10^1000 written out in digits: same bound.
        let long = format!("1{}", "0".repeat(1000));
        assert_eq!(Quantity::parse(&long).unwrap_err(), QuantityError::TooLarge);
        assert!(QuantityError::TooLarge.to_string().contains("10^1000"));
    }

    #[test]
    fn bounded_values_just_below_the_limit_are_exact_and_small() {
        let top = q("9e999");
        assert_eq!(top.to_string(), "9e999");
        let mut sum = q("1n");
        sum.add(&top);
        sum.add(&q("1Gi"));
        // Exact: the nano digit survives, and the representation stays near 1000 digits.
        assert!(
            repr_digits(&sum) <= (MAX_DECIMAL_DIGITS as usize) + 10,
            "{}",
            repr_digits(&sum)
        );
        assert!(sum.canonical().ends_with("000000001n"));
        assert_eq!(sum.cmp_value(&top), Ordering::Greater);
        // Tiny exponents round up to 1n without building the number.
        let tiny = q("1e-999999999");
        assert_eq!(tiny.to_string(), "1e-9");
        assert!(repr_digits(&tiny) <= 1);
        let long_fraction = format!("0.{}1", "0".repeat(100_000));
        assert_eq!(q(&long_fraction).to_string(), "1n");
        // BinarySI keeps apimachinery's saturation instead.
        let huge_bin = format!("{}Ei", "9".repeat(5000));
        assert_eq!(q(&huge_bin).value(), i64::MAX);
        // A 1000-digit integer part is refused, 1000 digits below the point are fine.
        assert_eq!(q(&"9".repeat(1000)).to_string().len(), 1000);
    }

    #[test]
    #[should_panic(expected = "cannot parse 'x': quantities must match")]
    fn must_parse_panics() {
        Quantity::must_parse("x");
    }

    #[test]
    fn scanner() {
        let cases: &[(&str, bool, &str, &str, &str, &str)] = &[
            ("0.025Ti", true, "0.025", "0", "025", "Ti"),
            ("1.025Ti", true, "1.025", "1", "025", "Ti"),
            ("-1.025Ti", false, "-1.025", "1", "025", "Ti"),
            (".", true, ".", "0", "", ""),
            ("-.", false, "-.", "0", "", ""),
            ("1E-3", true, "1", "1", "", "E-3"),
            ("000", true, "0", "0", "", ""),
            ("-", false, "0", "0", "", ""),
            ("0012", true, "0012", "12", "", ""),
            ("1.", true, "1.", "1", "", ""),
        ];
        for &(input, positive, value, num, denom, suffix) in cases {
            let got = scan(input.as_bytes()).unwrap();
            assert_eq!(
                got,
                Scanned {
                    positive,
                    value: value.as_bytes(),
                    num: num.as_bytes(),
                    denom: denom.as_bytes(),
                    suffix: suffix.as_bytes()
                },
                "{input}"
            );
        }
    }

    /// apimachinery TestQuantityParse: value and format of each input, also with an
    /// explicit `-` and `+` sign, and as int64 where representable.
    #[test]
    fn parse_table() {
        let max = bigq("9223372036854775807", 0, BinarySI);
        let table: Vec<(&str, Quantity)> = vec![
            ("0", decq(0, 0, DecimalSI)),
            ("0n", decq(0, 0, DecimalSI)),
            ("0u", decq(0, 0, DecimalSI)),
            ("0m", decq(0, 0, DecimalSI)),
            ("0Ki", decq(0, 0, BinarySI)),
            ("0k", decq(0, 0, DecimalSI)),
            ("0Mi", decq(0, 0, BinarySI)),
            ("0M", decq(0, 0, DecimalSI)),
            ("0Gi", decq(0, 0, BinarySI)),
            ("0G", decq(0, 0, DecimalSI)),
            ("0Ti", decq(0, 0, BinarySI)),
            ("0T", decq(0, 0, DecimalSI)),
            ("1", decq(1, 0, DecimalSI)),
            ("1Ki", decq(1024, 0, BinarySI)),
            ("8Ki", decq(8 * 1024, 0, BinarySI)),
            ("7Mi", decq(7 << 20, 0, BinarySI)),
            ("6Gi", decq(6 << 30, 0, BinarySI)),
            ("5Ti", decq(5 << 40, 0, BinarySI)),
            ("4Pi", decq(4 << 50, 0, BinarySI)),
            ("3Ei", decq(3 << 60, 0, BinarySI)),
            ("10Ti", decq(10 << 40, 0, BinarySI)),
            ("100Ti", decq(100 << 40, 0, BinarySI)),
            ("5n", decq(5, -9, DecimalSI)),
            ("4u", decq(4, -6, DecimalSI)),
            ("3m", decq(3, -3, DecimalSI)),
            ("9", decq(9, 0, DecimalSI)),
            ("8k", decq(8, 3, DecimalSI)),
            ("50k", decq(5, 4, DecimalSI)),
            ("7M", decq(7, 6, DecimalSI)),
            ("6G", decq(6, 9, DecimalSI)),
            ("5T", decq(5, 12, DecimalSI)),
            ("40T", decq(4, 13, DecimalSI)),
            ("300T", decq(3, 14, DecimalSI)),
            ("2P", decq(2, 15, DecimalSI)),
            ("1E", decq(1, 18, DecimalSI)),
            ("1E-3", decq(1, -3, DecimalExponent)),
            ("1e3", decq(1, 3, DecimalExponent)),
            ("1E6", decq(1, 6, DecimalExponent)),
            ("1e9", decq(1, 9, DecimalExponent)),
            ("1E12", decq(1, 12, DecimalExponent)),
            ("1e15", decq(1, 15, DecimalExponent)),
            ("1E18", decq(1, 18, DecimalExponent)),
            ("1e14", decq(1, 14, DecimalExponent)),
            ("1e13", decq(1, 13, DecimalExponent)),
            ("100.035k", decq(100035, 0, DecimalSI)),
            ("0.001", decq(1, -3, DecimalSI)),
            ("0.0005k", decq(5, -1, DecimalSI)),
            ("0.005", decq(5, -3, DecimalSI)),
            ("0.05", decq(5, -2, DecimalSI)),
            ("0.5", decq(5, -1, DecimalSI)),
            ("0.00050k", decq(5, -1, DecimalSI)),
            ("0.00500", decq(5, -3, DecimalSI)),
            ("0.05000", decq(5, -2, DecimalSI)),
            ("0.50000", decq(5, -1, DecimalSI)),
            ("0.5e0", decq(5, -1, DecimalExponent)),
            ("0.5e-1", decq(5, -2, DecimalExponent)),
            ("0.5e-2", decq(5, -3, DecimalExponent)),
            ("10.035M", decq(10035, 3, DecimalSI)),
            ("1.2e3", decq(12, 2, DecimalExponent)),
            ("1.3E+6", decq(13, 5, DecimalExponent)),
            ("1.40e9", decq(14, 8, DecimalExponent)),
            ("1.53E12", decq(153, 10, DecimalExponent)),
            ("1.6e15", decq(16, 14, DecimalExponent)),
            ("1.7E18", decq(17, 17, DecimalExponent)),
            ("9.01", decq(901, -2, DecimalSI)),
            ("8.1k", decq(81, 2, DecimalSI)),
            ("7.123456M", decq(7123456, 0, DecimalSI)),
            ("6.987654321G", decq(6987654321, 0, DecimalSI)),
            ("5.444T", decq(5444, 9, DecimalSI)),
            ("40.1T", decq(401, 11, DecimalSI)),
            ("300.2T", decq(3002, 11, DecimalSI)),
            ("2.5P", decq(25, 14, DecimalSI)),
            ("1.01E", decq(101, 16, DecimalSI)),
            ("3.001n", decq(4, -9, DecimalSI)),
            ("1.1E-9", decq(2, -9, DecimalExponent)),
            ("0.0000000001", decq(1, -9, DecimalSI)),
            ("0.0000000005", decq(1, -9, DecimalSI)),
            ("0.00000000050", decq(1, -9, DecimalSI)),
            ("0.5e-9", decq(1, -9, DecimalExponent)),
            ("0.9n", decq(1, -9, DecimalSI)),
            ("0.00000012345", decq(124, -9, DecimalSI)),
            ("0.00000012354", decq(124, -9, DecimalSI)),
            ("9Ei", max.clone()),
            ("9223372036854775807Ki", max.clone()),
            ("12E", decq(12, 18, DecimalSI)),
            ("100.035Ki", decq(10243584, -2, BinarySI)),
            ("0.5Mi", decq(512 * 1024, 0, BinarySI)),
            ("0.05Gi", decq(536870912, -1, BinarySI)),
            ("0.025Ti", decq(274877906944, -1, BinarySI)),
            ("0.000000000001Ki", decq(2, -9, DecimalSI)),
            (".001", decq(1, -3, DecimalSI)),
            (".0001k", decq(100, -3, DecimalSI)),
            ("1.", decq(1, 0, DecimalSI)),
            ("1.G", decq(1, 9, DecimalSI)),
        ];
        for (input, expect) in &table {
            let got = q(input);
            assert_eq!(got.cmp_value(expect), Ordering::Equal, "{input}: {got:?}");
            assert_eq!(got.format(), expect.format(), "{input}");
            // As int64 where the parser kept the int64 form with a non-negative scale.
            if let Amount::Int { value, scale } = got.amount {
                if scale >= 0 {
                    if let Some(v) = positive_scale_i64(value, scale as i64) {
                        assert_eq!(got.as_int64(), Some(v), "{input}");
                        assert_eq!(got.value(), v, "{input}");
                    }
                }
            } else {
                assert_eq!(got.as_int64(), None, "{input}");
            }
            // The Dec round trip compares equal too.
            assert_eq!(to_dec(got.clone()).cmp_value(&got), Ordering::Equal);

            let neg = q(&format!("-{input}"));
            let mut want = expect.clone();
            want.neg();
            assert_eq!(neg.cmp_value(&want), Ordering::Equal, "-{input}");
            assert_eq!(neg.format(), expect.format(), "-{input}");

            let pos = q(&format!("+{input}"));
            assert_eq!(pos.cmp_value(expect), Ordering::Equal, "+{input}");
            assert_eq!(pos.format(), expect.format(), "+{input}");
        }
    }

    #[test]
    fn parse_oddities() {
        // A lone sign, a lone dot, or a suffix without digits parse as zero.
        for s in [
            "+", "-", ".", "-.", "+.", "m", "k", "Ki", "e5", "00", "-0", "0.0",
        ] {
            let got = q(s);
            assert!(got.is_zero(), "{s}");
            assert_eq!(got.to_string(), "0", "{s}");
        }
        assert_eq!(q("Ki").format(), BinarySI);
        // Leading zeros are kept in the remembered text.
        assert_eq!(q("00012").to_string(), "00012");
        assert_eq!(q("00012").canonical(), "12");
        // 0.x BinarySI below one becomes DecimalSI; above one stays binary.
        assert_eq!(q("0.5Ki").format(), BinarySI);
        assert_eq!(q(".000000000001Ki").format(), DecimalSI);
        // Capped binary values keep the sign.
        assert_eq!(q("-9Ei").canonical(), "-9223372036854775807");
        assert_eq!(q("8Ei").canonical(), "9223372036854775807");
        // Decimal values are not capped.
        let big = q("18446744073709551616");
        assert!(is_dec(&big));
        assert_eq!(big.to_string(), "18446744073709551616");
        assert_eq!(
            q("123456789012345678901234567890").to_string(),
            "123456789012345678901234567890"
        );
        assert_eq!(q("1.2345").to_string(), "1234500u");
    }

    /// apimachinery TestQuantityString (v1.32 expectations).
    #[test]
    fn canonical_table() {
        let table: Vec<(Quantity, &str, &str)> = vec![
            (decq(1 << 30, 0, BinarySI), "1Gi", "1024Mi"),
            (decq(300 << 20, 0, BinarySI), "300Mi", "307200Ki"),
            (decq(6 * 1024, 0, BinarySI), "6Ki", ""),
            (decq(1001 << 30, 0, BinarySI), "1001Gi", "1025024Mi"),
            (decq(1 << 40, 0, BinarySI), "1Ti", "1024Gi"),
            (decq(5, 0, BinarySI), "5", "5000m"),
            (decq(500, -3, BinarySI), "500m", "0.5"),
            (decq(1, 9, DecimalSI), "1G", "1000M"),
            (decq(1000, 6, DecimalSI), "1G", "0.001T"),
            (decq(1000000, 3, DecimalSI), "1G", ""),
            (decq(1000000000, 0, DecimalSI), "1G", ""),
            (decq(1, -3, DecimalSI), "1m", "1000u"),
            (decq(80, -3, DecimalSI), "80m", ""),
            (decq(1080, -3, DecimalSI), "1080m", "1.08"),
            (decq(108, -2, DecimalSI), "1080m", "1080000000n"),
            (decq(10800, -4, DecimalSI), "1080m", ""),
            (decq(300, 6, DecimalSI), "300M", ""),
            (decq(1, 12, DecimalSI), "1T", ""),
            (decq(1, 18, DecimalSI), "1E", ""),
            (decq(1234567, 6, DecimalSI), "1234567M", ""),
            (decq(1234567, -3, BinarySI), "1234567m", ""),
            (decq(3, 3, DecimalSI), "3k", ""),
            (decq(1025, 0, BinarySI), "1025", ""),
            (decq(0, 0, DecimalSI), "0", ""),
            (decq(0, 0, BinarySI), "0", ""),
            (decq(1, 9, DecimalExponent), "1e9", ".001e12"),
            (decq(1, -3, DecimalExponent), "1e-3", "0.001e0"),
            (decq(1, -9, DecimalExponent), "1e-9", "1000e-12"),
            (decq(80, -3, DecimalExponent), "80e-3", ""),
            (decq(300, 6, DecimalExponent), "300e6", ""),
            (decq(1, 12, DecimalExponent), "1e12", ""),
            (decq(1, 3, DecimalExponent), "1e3", ""),
            (decq(3, 3, DecimalExponent), "3e3", ""),
            (decq(3, 3, DecimalSI), "3k", ""),
            (decq(0, 0, DecimalExponent), "0", "00"),
            (decq(1, -9, DecimalSI), "1n", ""),
            (decq(80, -9, DecimalSI), "80n", ""),
            (decq(1080, -9, DecimalSI), "1080n", ""),
            (decq(108, -8, DecimalSI), "1080n", ""),
            (decq(10800, -10, DecimalSI), "1080n", ""),
            (decq(1, -6, DecimalSI), "1u", ""),
            (decq(80, -6, DecimalSI), "80u", ""),
            (decq(1080, -6, DecimalSI), "1080u", ""),
        ];
        for (input, expect, alternate) in &table {
            assert_eq!(input.to_string(), *expect, "{input:?}");
            // The same value in int64 form prints the same.
            if let Amount::Dec(d) = &input.amount {
                if let (Some(v), Ok(s)) = (
                    d.mag.to_u128().and_then(|v| i64::try_from(v).ok()),
                    i32::try_from(d.exp),
                ) {
                    let iq = intq(if d.neg { -v } else { v }, s, input.format());
                    assert_eq!(iq.to_string(), *expect, "{iq:?}");
                }
            }
            // Parsing the canonical text keeps it.
            let p = q(expect);
            assert_eq!(p.cached.as_deref(), Some(*expect), "{expect}");
            assert_eq!(p.to_string(), *expect);
            if !alternate.is_empty() {
                let a = q(alternate);
                assert_eq!(a.cached, None, "{alternate}");
                assert_eq!(a.to_string(), *expect, "{alternate}");
            }
            if !input.is_zero() {
                let mut n = input.clone();
                n.neg();
                assert_eq!(n.to_string(), format!("-{expect}"), "{input:?}");
            }
        }
    }

    /// v1.32 drops a suffix it does not have (fixed upstream only in 2026).
    #[test]
    fn canonical_out_of_suffix_range_v132() {
        assert_eq!(decq(1, 21, DecimalSI).to_string(), "1");
        assert_eq!(q("1000E").to_string(), "1");
        assert_eq!(q("5000E").to_string(), "5");
        assert_eq!(q("1e21").to_string(), "1e21");
        assert_eq!(q("1000e18").to_string(), "1e21");
        // 2^70 in BinarySI: no suffix for 1024^7.
        assert_eq!(bigq("1180591620717411303424", 0, BinarySI).to_string(), "1");
        // 2^63 (only reachable by arithmetic) is 8Ei.
        assert_eq!(bigq("9223372036854775808", 0, BinarySI).to_string(), "8Ei");
    }

    /// apimachinery TestQuantityParseEmit.
    #[test]
    fn parse_emit() {
        let table = [
            ("1Ki", "1Ki"),
            ("1Mi", "1Mi"),
            ("1Gi", "1Gi"),
            ("1024Mi", "1Gi"),
            ("1000M", "1G"),
            (".001Ki", "1024m"),
            (".000001Ki", "1024u"),
            (".000000001Ki", "1024n"),
            (".000000000001Ki", "2n"),
        ];
        for (input, expect) in table {
            assert_eq!(q(input).to_string(), expect, "{input}");
            assert_eq!(q(&format!("-{input}")).to_string(), format!("-{expect}"));
        }
    }

    #[test]
    fn canonical_forms_from_brief() {
        let table = [
            ("1.5", "1500m"),
            ("1000", "1k"),
            ("1500", "1500"),
            ("0.5", "500m"),
            ("1e3", "1e3"),
            ("1024Mi", "1Gi"),
            ("1.5Gi", "1536Mi"),
            ("0.5Ki", "512"),
            ("1.1Ki", "1126400m"),
            ("12e6", "12e6"),
            ("12000000e0", "12e6"),
            ("2048Ki", "2Mi"),
            ("1536Mi", "1536Mi"),
            ("1.0Gi", "1Gi"),
            ("100Ti", "100Ti"),
            ("1025Ki", "1025Ki"),
            ("-1.5Gi", "-1536Mi"),
            ("-1.1Ki", "-1126400m"),
        ];
        for (input, expect) in table {
            assert_eq!(q(input).canonical(), expect, "{input}");
            // Display either keeps the input text or prints the canonical form.
            let shown = q(input).to_string();
            assert!(shown == expect || shown == input, "{input}: {shown}");
        }
        // BinarySI 2048 (not a parse result: arithmetic) prints 2Ki.
        assert_eq!(Quantity::from_i64(2048, BinarySI).to_string(), "2Ki");
    }

    #[test]
    fn cached_input_text() {
        // Printed exactly as typed.
        for s in [
            "1.", "+1", "1500e0", "1E3", "2048", "1Gi", "+1Gi", "100m", "1500m", "0", "300Mi",
            "-5", "1.234k", "00012",
        ] {
            let x = q(s);
            assert_eq!(x.cached.as_deref(), Some(s), "{s}");
            assert_eq!(x.to_string(), s);
        }
        // Not kept: canonical form instead.
        for (s, canon) in [
            ("1024Mi", "1Gi"),
            ("1000", "1k"),
            ("0.5", "500m"),
            ("1.08", "1080m"),
            ("8Ki", "8Ki"),
            ("1.5Gi", "1536Mi"),
            ("1e-10", "1e-9"),
            ("1.5k", "1500"),
            ("1.5G", "1500M"),
            ("18446744073709551616", "18446744073709551616"),
        ] {
            let x = q(s);
            assert_eq!(x.cached, None, "{s}");
            assert_eq!(x.to_string(), canon, "{s}");
        }
        // Any arithmetic drops the text.
        for (s, canon) in [("1500e0", "1500"), ("+1", "1"), ("1E3", "1e3"), ("1.", "1")] {
            let mut x = q(s);
            x.add(&Quantity::zero());
            assert_eq!(x.to_string(), canon, "{s}");
            let mut y = q(s);
            y.sub(&Quantity::zero());
            assert_eq!(y.to_string(), canon, "{s}");
            let mut z = Quantity::zero();
            z.add(&q(s));
            assert_eq!(z.to_string(), canon, "{s}");
        }
        // Clone keeps it.
        assert_eq!(q("1.").clone().to_string(), "1.");
    }

    /// memory-manager.md §7.1.
    #[test]
    fn as_int64_rules() {
        let ok: &[(&str, i64)] = &[
            ("0", 0),
            ("1", 1),
            ("1.5k", 1500),
            ("1.5G", 1_500_000_000),
            ("1e3", 1000),
            ("1E3", 1000),
            ("1Gi", 1 << 30),
            ("1536Mi", 1536 << 20),
            ("10000Gi", 10000 << 30),
            ("99999Gi", 99999 << 30),
            ("10Ti", 10 << 40),
            ("123456789012345678", 123456789012345678),
            ("1E", 1_000_000_000_000_000_000),
            ("9E", 9_000_000_000_000_000_000),
            ("-1Gi", -(1 << 30)),
            ("2Mi", 2 << 20),
            ("128Mi", 128 << 20),
            ("0Ki", 0),
            ("0e5", 0),
        ];
        for (s, v) in ok {
            assert_eq!(q(s).as_int64(), Some(*v), "{s}");
        }
        for s in [
            "100m",
            "1000m",
            "0.5",
            "0m",
            "0.0",
            "1.5Gi",
            "1.0Gi",
            "0.5Gi",
            "100Ti",
            "1Pi",
            "1Ei",
            "100000Gi",
            "1234567890123456789",
            "9223372036854775807",
            "1e30",
            "10E",
            "1e-10",
            "1.1Ki",
        ] {
            assert_eq!(q(s).as_int64(), None, "{s}");
        }
        // Arithmetic in the int64 form keeps AsInt64 working; overflow moves to Dec.
        let mut x = q("1Gi");
        x.add(&q("1124Mi"));
        assert_eq!(x.as_int64(), Some(2148 << 20));
        let mut y = Quantity::from_i64(i64::MAX, DecimalSI);
        y.add(&q("1"));
        assert!(is_dec(&y));
        assert_eq!(y.as_int64(), None);
        assert_eq!(y.to_string(), "9223372036854775808");
        // Adding a fraction leaves a negative scale: no longer an int64 count.
        let mut z = q("1Gi");
        z.add(&q("500m"));
        assert_eq!(z.as_int64(), None);
        z.sub(&q("500m"));
        assert_eq!(z.as_int64(), None, "scale stays -3 after the sub");
        assert_eq!(z.to_string(), "1Gi");
    }

    #[test]
    fn value_and_milli_value() {
        let table: &[(&str, i64, i64)] = &[
            ("0", 0, 0),
            ("1", 1, 1000),
            ("100m", 1, 100),
            ("1.5", 2, 1500),
            ("-1.5", -2, -1500),
            ("1n", 1, 1),
            ("-1n", -1, -1),
            ("1.5m", 1, 2),
            ("0.1m", 1, 1),
            ("1Gi", 1 << 30, (1 << 30) * 1000),
            ("1.5Gi", 1610612736, 1610612736000),
            ("1.1Ki", 1127, 1126400),
            ("-1.1Ki", -1125, -1126400), // v1.32 scaledValue fast path quirk
            ("3.001n", 1, 1),
            ("12E", 0, 0), // int64 overflow -> 0 in v1.32
            ("1e30", 0, 0),
            ("9223372036854775807", 9223372036854775807, -1000), // wraps
        ];
        for (s, v, m) in table {
            let x = q(s);
            assert_eq!(x.value(), *v, "{s} value");
            assert_eq!(x.milli_value(), *m, "{s} milli");
        }
        // v1.32 quirk: a negative 19-digit decimal takes scaledValue's int64 fast path
        // with a wrapped unscaled value (fixed upstream in 2026).
        assert_eq!(q("-1000000000000000000").value(), 6930898828);
        assert_eq!(q("1000000000000000000").value(), 1_000_000_000_000_000_000);
        // Dec and int forms agree for positive values.
        for s in ["100m", "1.5", "1Gi", "1.5k", "123", "1n"] {
            let x = q(s);
            let d = to_dec(x.clone());
            assert_eq!(x.value(), d.value(), "{s}");
            assert_eq!(x.milli_value(), d.milli_value(), "{s}");
        }
    }

    /// apimachinery TestScaledValue / TestNewScaledSet.
    #[test]
    fn scaled_value_table() {
        let table: &[(i32, i32, i64)] = &[
            (-9, -9, 1),
            (-9, -6, 1),
            (-9, -3, 1),
            (-9, 0, 1),
            (-6, -9, 1000),
            (-6, -6, 1),
            (-6, -3, 1),
            (-6, 0, 1),
            (-3, -9, 1_000_000),
            (-3, -6, 1000),
            (-3, -3, 1),
            (-3, 0, 1),
            (0, -9, 1_000_000_000),
            (0, -6, 1_000_000),
            (0, -3, 1000),
            (0, 0, 1),
            (2, -2, 10000),
        ];
        for &(from, to, want) in table {
            let x = Quantity::from_scaled_i64(1, from, DecimalSI);
            assert_eq!(x.scaled_value(to), want, "{from}->{to}");
            assert_eq!(to_dec(x).scaled_value(to), want, "dec {from}->{to}");
        }
        let set: &[(i64, i32, &str)] = &[
            (1, -9, "1n"),
            (1000, -9, "1u"),
            (1, -6, "1u"),
            (1000, -6, "1m"),
            (1, -3, "1m"),
            (1000, -3, "1"),
            (1, 0, "1"),
            (0, -9, "0"),
            (0, -6, "0"),
            (0, -3, "0"),
            (0, 0, "0"),
        ];
        for &(v, s, want) in set {
            let x = Quantity::from_scaled_i64(v, s, DecimalSI);
            assert_eq!(x.to_string(), want);
            assert_eq!(q(want).scaled_value(s), v);
        }
    }

    /// apimachinery TestNewSet / TestMilliNewSet.
    #[test]
    fn new_and_milli() {
        let table: &[(i64, Format, &str)] = &[
            (1, DecimalSI, "1"),
            (1000, DecimalSI, "1k"),
            (1234000, DecimalSI, "1234k"),
            (1024, BinarySI, "1Ki"),
            (1000000, DecimalExponent, "1e6"),
            (1024 * 1024, BinarySI, "1Mi"),
        ];
        for &(v, f, want) in table {
            let x = Quantity::from_i64(v, f);
            assert_eq!(x.to_string(), want);
            assert_eq!(to_dec(x).to_string(), want);
            assert_eq!(q(want).value(), v);
        }
        let milli: &[(i64, Format, &str, bool)] = &[
            (1, DecimalSI, "1m", true),
            (1000, DecimalSI, "1", true),
            (1234000, DecimalSI, "1234", true),
            (1024, BinarySI, "1024m", false),
            (1000000, DecimalExponent, "1e3", true),
            (1024 * 1024, BinarySI, "1048576m", false),
        ];
        for &(v, f, want, exact) in milli {
            let x = Quantity::from_scaled_i64(v, -3, f);
            assert_eq!(x.to_string(), want);
            if exact {
                assert_eq!(q(want).milli_value(), v);
            }
        }
    }

    /// apimachinery TestQuantityCmp and TestQuantityCmpInt64AndDec.
    #[test]
    fn cmp_tables() {
        for (x, y, want) in [
            ("0", "0", Ordering::Equal),
            ("100m", "50m", Ordering::Greater),
            ("50m", "100m", Ordering::Less),
            ("10000T", "100Gi", Ordering::Greater),
            ("1Gi", "1073741824", Ordering::Equal),
            ("1G", "1Gi", Ordering::Less),
            ("1.5Gi", "1536Mi", Ordering::Equal),
            ("-1", "1n", Ordering::Less),
            ("1e-10", "1n", Ordering::Equal),
        ] {
            assert_eq!(q(x).cmp_value(&q(y)), want, "{x} vs {y}");
            assert_eq!(q(y).cmp_value(&q(x)), want.reverse(), "{y} vs {x}");
        }
        for (x, y, want) in [
            (decq(0, 0, DecimalSI), decq(0, 0, DecimalSI), 0),
            (Quantity::zero(), decq(0, 0, DecimalSI), 0),
            (Quantity::zero(), decq(10, 0, DecimalSI), -1),
            (Quantity::zero(), decq(-10, 0, DecimalSI), 1),
        ] {
            let got = match x.cmp_value(&y) {
                Ordering::Less => -1,
                Ordering::Equal => 0,
                Ordering::Greater => 1,
            };
            assert_eq!(got, want);
        }
        let (mp, mn) = (i64::MAX, i64::MIN);
        let e18 = 1_000_000_000_000_000_000i64;
        let table: Vec<(Quantity, Quantity, Ordering)> = vec![
            (
                intq(901, -2, DecimalSI),
                intq(901, -2, DecimalSI),
                Ordering::Equal,
            ),
            (
                intq(90, -1, DecimalSI),
                intq(901, -2, DecimalSI),
                Ordering::Less,
            ),
            (
                intq(901, -2, DecimalSI),
                intq(900, -2, DecimalSI),
                Ordering::Greater,
            ),
            (
                intq(0, 0, DecimalSI),
                intq(0, 0, DecimalSI),
                Ordering::Equal,
            ),
            (
                intq(0, 1, DecimalSI),
                intq(0, -1, DecimalSI),
                Ordering::Equal,
            ),
            (
                intq(0, -1, DecimalSI),
                intq(0, 1, DecimalSI),
                Ordering::Equal,
            ),
            (
                intq(800, -3, DecimalSI),
                intq(1, 0, DecimalSI),
                Ordering::Less,
            ),
            (
                intq(800, -3, DecimalSI),
                intq(79, -2, DecimalSI),
                Ordering::Greater,
            ),
            (
                intq(mp, 0, DecimalSI),
                intq(1, -1, DecimalSI),
                Ordering::Greater,
            ),
            (
                intq(mp, 1, DecimalSI),
                intq(1, 0, DecimalSI),
                Ordering::Greater,
            ),
            (
                intq(mp, 1, DecimalSI),
                intq(1, 1, DecimalSI),
                Ordering::Greater,
            ),
            (
                intq(mp, 1, DecimalSI),
                intq(0, 1, DecimalSI),
                Ordering::Greater,
            ),
            (
                intq(mp, -16, DecimalSI),
                intq(1, 3, DecimalSI),
                Ordering::Less,
            ),
            (
                intq(mn, 0, DecimalSI),
                intq(0, 0, DecimalSI),
                Ordering::Less,
            ),
            (
                intq(mn, -18, DecimalSI),
                intq(-1, 0, DecimalSI),
                Ordering::Less,
            ),
            (
                intq(mn, -19, DecimalSI),
                intq(-1, 0, DecimalSI),
                Ordering::Greater,
            ),
            (
                intq(e18, -17, DecimalSI),
                intq(1, 1, DecimalSI),
                Ordering::Equal,
            ),
            (
                intq(e18, -17, DecimalSI),
                intq(-10, 0, DecimalSI),
                Ordering::Greater,
            ),
            (
                intq(-e18, -17, DecimalSI),
                intq(-10, 0, DecimalSI),
                Ordering::Equal,
            ),
            (
                intq(e18, -17, DecimalSI),
                intq(1, 0, DecimalSI),
                Ordering::Greater,
            ),
            (
                intq(e18 + 1, -17, DecimalSI),
                intq(1, 1, DecimalSI),
                Ordering::Greater,
            ),
            (
                intq(e18 - 1, -17, DecimalSI),
                intq(1, 1, DecimalSI),
                Ordering::Less,
            ),
        ];
        for (a, b, want) in &table {
            for (a, b) in [
                (a.clone(), b.clone()),
                (to_dec(a.clone()), b.clone()),
                (a.clone(), to_dec(b.clone())),
                (to_dec(a.clone()), to_dec(b.clone())),
            ] {
                assert_eq!(a.cmp_value(&b), *want, "{a:?} vs {b:?}");
                assert_eq!(b.cmp_value(&a), want.reverse(), "{b:?} vs {a:?}");
            }
        }
    }

    /// apimachinery TestAdd / TestSub / TestNeg.
    #[test]
    fn add_sub_neg_tables() {
        let add: Vec<(Quantity, Quantity, Quantity, Format)> = vec![
            (
                decq(10, 0, DecimalSI),
                decq(1, 1, DecimalSI),
                decq(20, 0, DecimalSI),
                DecimalSI,
            ),
            (
                decq(10, 0, DecimalSI),
                decq(1, 0, BinarySI),
                decq(11, 0, DecimalSI),
                DecimalSI,
            ),
            (
                decq(10, 0, BinarySI),
                decq(1, 0, DecimalSI),
                decq(11, 0, BinarySI),
                BinarySI,
            ),
            (
                Quantity::zero(),
                decq(50, 0, DecimalSI),
                decq(50, 0, DecimalSI),
                DecimalSI,
            ),
            (
                decq(50, 0, DecimalSI),
                Quantity::zero(),
                decq(50, 0, DecimalSI),
                DecimalSI,
            ),
            (
                Quantity::zero(),
                Quantity::zero(),
                decq(0, 0, DecimalSI),
                DecimalSI,
            ),
        ];
        for (a, b, want, f) in &add {
            for (mut a, b) in [
                (a.clone(), b.clone()),
                (to_dec(a.clone()), b.clone()),
                (a.clone(), to_dec(b.clone())),
            ] {
                a.add(&b);
                assert_eq!(a.cmp_value(want), Ordering::Equal, "{a:?}");
                assert_eq!(a.format(), *f);
            }
        }
        let sub: Vec<(Quantity, Quantity, Quantity)> = vec![
            (
                decq(10, 0, DecimalSI),
                decq(1, 1, DecimalSI),
                decq(0, 0, DecimalSI),
            ),
            (
                decq(10, 0, DecimalSI),
                decq(1, 0, BinarySI),
                decq(9, 0, DecimalSI),
            ),
            (
                decq(10, 0, BinarySI),
                decq(1, 0, DecimalSI),
                decq(9, 0, BinarySI),
            ),
            (
                Quantity::zero(),
                decq(50, 0, DecimalSI),
                decq(-50, 0, DecimalSI),
            ),
            (
                decq(50, 0, DecimalSI),
                Quantity::zero(),
                decq(50, 0, DecimalSI),
            ),
            (Quantity::zero(), Quantity::zero(), decq(0, 0, DecimalSI)),
        ];
        for (a, b, want) in &sub {
            for (mut a, b) in [
                (a.clone(), b.clone()),
                (to_dec(a.clone()), b.clone()),
                (a.clone(), to_dec(b.clone())),
            ] {
                a.sub(&b);
                assert_eq!(a.cmp_value(want), Ordering::Equal, "{a:?}");
                assert_eq!(a.format(), want.format());
            }
        }
        let neg: Vec<(Quantity, Quantity)> = vec![
            (intq(0, 0, DecimalSI), intq(0, 0, DecimalSI)),
            (intq(10, 0, BinarySI), intq(-10, 0, BinarySI)),
            (intq(-10, 0, BinarySI), intq(10, 0, BinarySI)),
            (decq(0, 0, DecimalSI), intq(0, 0, DecimalSI)),
            (decq(10, 0, BinarySI), intq(-10, 0, BinarySI)),
            (decq(-10, 0, BinarySI), intq(10, 0, BinarySI)),
        ];
        for (a, want) in &neg {
            let mut n = a.clone();
            n.neg();
            assert_eq!(n.cmp_value(want), Ordering::Equal);
        }
        assert_eq!(
            {
                let mut n = intq(901, -2, DecimalSI);
                n.neg();
                n.to_string()
            },
            "-9010m"
        );
    }

    /// apimachinery TestQuantityAddZeroPreservesSuffix / SubZeroPreservesSuffix.
    #[test]
    fn zero_preserves_suffix() {
        for s in ["100m", "1Gi"] {
            let zero = q("0");
            let mut v1 = q(s);
            v1.add(&zero);
            assert_eq!(v1.to_string(), s);
            let mut v2 = zero.clone();
            v2.add(&q(s));
            assert_eq!(v2.to_string(), s);

            let mut v3 = q(s);
            v3.sub(&zero);
            assert_eq!(v3.to_string(), s);
            let mut v4 = zero.clone();
            v4.sub(&q(s));
            let mut n = q(s);
            n.neg();
            assert_eq!(v4.to_string(), n.to_string());
            assert_eq!(v4.to_string(), format!("-{s}"));
        }
    }

    /// How memory-manager.md §4 sums and prints reservedMemory / Node Allocatable.
    #[test]
    fn reserved_memory_sums() {
        // Zero DecimalSI receiver adopts the format of the first non-zero part.
        let mut na = Quantity::zero();
        for p in ["1Gi", "1Gi", "100Mi"] {
            na.add(&q(p));
        }
        assert_eq!(na.to_string(), "2148Mi");
        assert_eq!(na.format(), BinarySI);

        let mut x = q("1Gi");
        x.add(&q("1124Mi"));
        assert_eq!(x.to_string(), "2148Mi");

        // "entry + previous total", computed on the entry.
        let mut total: Option<Quantity> = None;
        for e in ["1Gi", "2Gi"] {
            let mut entry = q(e);
            if let Some(prev) = &total {
                entry.add(prev);
            }
            total = Some(entry);
        }
        assert_eq!(total.unwrap().to_string(), "3Gi");

        let print = |s: &str| {
            let mut z = Quantity::zero();
            z.add(&q(s));
            z.to_string()
        };
        assert_eq!(print("1Gi"), "1Gi");
        assert_eq!(print("12"), "12");
        assert_eq!(print("0"), "0");
        assert_eq!(print("1124Mi"), "1124Mi");
        assert_eq!(print("1024Mi"), "1Gi");
        assert_eq!(print("+1"), "1");
        assert_eq!(Quantity::zero().to_string(), "0");

        // Format is the latest entry's unless that entry is zero.
        let mut a = q("1G");
        a.add(&q("1Gi"));
        assert_eq!(a.format(), DecimalSI);
        assert_eq!(a.to_string(), "2073741824");
        let mut b = q("1Gi");
        b.add(&q("1G"));
        assert_eq!(b.to_string(), "2073741824");
        let mut c = q("0");
        c.add(&q("5Gi"));
        assert_eq!(c.to_string(), "5Gi");
        let mut d = q("0Ki");
        d.add(&q("1G"));
        assert_eq!(d.format(), DecimalSI);
        assert_eq!(d.to_string(), "1G");
        let mut e = Quantity::zero();
        e.add(&q("1G"));
        e.add(&q("1Gi"));
        e.add(&q("100Mi"));
        assert_eq!(e.to_string(), "2178599424");
        let mut f = q("512Mi");
        f.add(&q("512Mi"));
        assert_eq!(f.to_string(), "1Gi");
        let mut g = q("1Gi");
        g.add(&q("500M"));
        assert_eq!(g.to_string(), "1573741824");
        let mut h = q("1Gi");
        h.add(&q("0.5"));
        assert_eq!(h.to_string(), "1073741824500m");
        // Zero + zero of another format takes that format but still prints 0.
        let mut z = Quantity::zero();
        z.add(&q("0Ki"));
        assert_eq!(z.format(), BinarySI);
        assert_eq!(z.to_string(), "0");
        // Equal values compare equal whatever the format.
        assert_eq!(q("2Gi").cmp_value(&na), Ordering::Less);
        assert_eq!(q("2148Mi").cmp_value(&na), Ordering::Equal);
        assert_eq!(q("2252341248").cmp_value(&na), Ordering::Equal);
    }

    /// apimachinery TestNegAndSubAtMostNegative (newer behaviour, see module docs).
    #[test]
    fn most_negative() {
        let mut n = intq(i64::MIN, 0, DecimalSI);
        n.neg();
        assert_eq!(n.as_int64(), None);
        assert_eq!(n.sign(), 1);
        assert_eq!(n.to_string(), "9223372036854775808");

        let mut s = Quantity::zero();
        s.sub(&intq(i64::MIN, 0, DecimalSI));
        assert_eq!(s.to_string(), "9223372036854775808");
        assert_eq!(s.as_int64(), None);

        let mut one = intq(1, 0, DecimalSI);
        one.sub(&intq(i64::MIN, 0, DecimalSI));
        assert_eq!(one.to_string(), "9223372036854775809");

        let mut nb = intq(i64::MIN + 1, 0, DecimalSI);
        nb.neg();
        assert_eq!(nb.as_int64(), Some(i64::MAX));

        let mut sn = Quantity::zero();
        sn.sub(&intq(i64::MIN + 1, 0, DecimalSI));
        assert_eq!(sn.as_int64(), Some(i64::MAX));

        let mut sc = intq(i64::MIN, -3, DecimalSI);
        sc.neg();
        assert_eq!(sc.to_string(), "9223372036854775808m");

        let mut ss = intq(1, -3, DecimalSI);
        ss.sub(&intq(i64::MIN, -3, DecimalSI));
        assert_eq!(ss.to_string(), "9223372036854775809m");

        let mut ten = intq(1, 1, DecimalSI);
        ten.sub(&intq(i64::MIN, 0, DecimalSI));
        assert_eq!(ten.to_string(), "9223372036854775818");

        let mut b = Quantity::zero();
        b.sub(&intq(i64::MIN, 0, BinarySI));
        assert_eq!(b.format(), BinarySI);
        assert_eq!(b.to_string(), "8Ei");
    }

    /// Deterministic xorshift for the round-trip tests.
    struct Rng(u64);
    impl Rng {
        fn next_i63(&mut self) -> i64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            (self.0 >> 1) as i64
        }
    }

    /// apimachinery TestAddSubRoundTrip / AcrossScales / TestNegateRoundTrip.
    #[test]
    fn add_sub_round_trips() {
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        for k in -10..=10 {
            let mut acc = Quantity::zero();
            let order: Vec<i64> = (0..100).map(|_| rng.next_i63()).collect();
            for &j in &order {
                acc.add(&Quantity::from_scaled_i64(j, k, DecimalSI));
            }
            for &j in &order {
                acc.sub(&Quantity::from_scaled_i64(j, k, DecimalSI));
            }
            assert!(acc.is_zero(), "k={k}: {acc:?}");
        }
        let mut acc = Quantity::zero();
        let order: Vec<i64> = (0..100).map(|_| rng.next_i63()).collect();
        for &j in &order {
            acc.add(&Quantity::from_scaled_i64(
                j,
                (j % 20 - 10) as i32,
                DecimalSI,
            ));
        }
        for &j in &order {
            acc.sub(&Quantity::from_scaled_i64(
                j,
                (j % 20 - 10) as i32,
                DecimalSI,
            ));
        }
        assert!(acc.is_zero());
        for as_dec in [false, true] {
            for k in -10..=10 {
                for _ in 0..50 {
                    let mut x = Quantity::from_scaled_i64(rng.next_i63(), k, DecimalSI);
                    if as_dec {
                        x = to_dec(x);
                    }
                    let mut b = x.clone();
                    b.neg();
                    b.neg();
                    assert_eq!(b.cmp_value(&x), Ordering::Equal);
                }
            }
        }
    }

    #[test]
    fn sign_and_zero() {
        assert_eq!(q("0").sign(), 0);
        assert_eq!(q("1m").sign(), 1);
        assert_eq!(q("-1m").sign(), -1);
        assert_eq!(q("-1.5Gi").sign(), -1);
        assert_eq!(q("-0.0Gi").sign(), 0);
        assert!(q("-0.0Gi").is_zero());
        assert!(!q("1n").is_zero());
        assert!(Quantity::default().is_zero());
        assert_eq!(Quantity::zero().format(), DecimalSI);
        assert_eq!(Quantity::from_i64(5, BinarySI).format(), BinarySI);
        assert_eq!(DecimalSI.to_string(), "DecimalSI");
        assert_eq!(
            format!("[{:>6}|{:<5}]", q("1Gi"), q("1.5")),
            "[   1Gi|1500m]"
        );
    }

    #[test]
    fn binary_bytes() {
        let table: &[(u64, &str)] = &[
            (0, "0"),
            (1, "1"),
            (1000, "1k"), // Go prints values below 1024 as DecimalSI
            (1023, "1023"),
            (1024, "1Ki"),
            (1536, "1536"),
            (4096, "4Ki"),
            (65536, "64Ki"),
            (2097152, "2Mi"),
            (3 << 20, "3Mi"),
            (32 << 20, "32Mi"),
            (512 << 20, "512Mi"),
            (1073741824, "1Gi"),
            (16 << 30, "16Gi"),
            (1 << 40, "1Ti"),
            (1 << 50, "1Pi"),
            (1 << 60, "1Ei"),
            (1 << 63, "8Ei"),
            (u64::MAX, "18446744073709551615"),
        ];
        for &(b, want) in table {
            assert_eq!(format_binary_bytes(b), want, "{b}");
        }
    }

    #[test]
    fn human_bytes() {
        let table: &[(u64, &str)] = &[
            (0, "0"),
            (512, "512"),
            (1023, "1023"),
            (1024, "1Ki"),
            (1536, "1.5Ki"),
            (1100, "1.1Ki"),
            (2 << 20, "2Mi"),
            (1 << 30, "1Gi"),
            (1610612736, "1.5Gi"),
            ((1 << 30) - 1, "1Gi"),
            ((1 << 20) - 1, "1Mi"),
            (10 << 30, "10Gi"),
            (1126 << 20, "1.1Gi"),
            (u64::MAX, "16Ei"),
        ];
        for &(b, want) in table {
            assert_eq!(format_human_bytes(b), want, "{b}");
        }
    }

    mod prop {
        use super::*;
        use proptest::prelude::*;

        fn fmt_strategy() -> impl Strategy<Value = Format> {
            prop_oneof![Just(DecimalSI), Just(BinarySI), Just(DecimalExponent)]
        }

        proptest! {
            /// Canonical text re-parses to the same value and format family.
            #[test]
            fn canonical_round_trips(v in (i64::MIN + 1).., scale in -9i32..=0, f in fmt_strategy()) {
                let x = Quantity::from_scaled_i64(v, scale, f);
                let s = x.canonical();
                let back = Quantity::parse(&s).unwrap();
                prop_assert_eq!(back.cmp_value(&x), Ordering::Equal, "{} from {:?}", s, x);
                if f != BinarySI {
                    // (BinarySI text without a binary suffix re-parses as DecimalSI.)
                    prop_assert_eq!(back.canonical(), s);
                }
            }

            /// Int and Dec forms agree on everything observable but AsInt64.
            #[test]
            fn int_and_dec_agree(v in any::<i64>(), scale in -12i32..=20, f in fmt_strategy()) {
                let x = Quantity::from_scaled_i64(v, scale, f);
                let d = to_dec(x.clone());
                prop_assert_eq!(x.canonical(), d.canonical());
                prop_assert_eq!(x.sign(), d.sign());
                prop_assert_eq!(x.cmp_value(&d), Ordering::Equal);
                if v >= 0 && scale <= 0 {
                    prop_assert_eq!(x.value(), d.value());
                    if (v as i128) * 1000 <= i64::MAX as i128 {
                        prop_assert_eq!(x.milli_value(), d.milli_value());
                    }
                }
            }

            /// Integer text parses to its exact value.
            #[test]
            fn integers_parse(v in -999_999_999_999_999_999i64..) {
                let x = Quantity::parse(&v.to_string()).unwrap();
                prop_assert_eq!(x.cmp_value(&Quantity::from_i64(v, DecimalSI)), Ordering::Equal);
                prop_assert_eq!(x.value(), v);
            }

            /// Add then Sub returns to the start, whatever the representations.
            #[test]
            fn add_sub_inverse(a in any::<i64>(), sa in -9i32..=9, b in any::<i64>(), sb in -9i32..=9) {
                let x = Quantity::from_scaled_i64(a, sa, DecimalSI);
                let y = Quantity::from_scaled_i64(b, sb, BinarySI);
                let mut z = x.clone();
                z.add(&y);
                z.sub(&y);
                prop_assert_eq!(z.cmp_value(&x), Ordering::Equal);
            }
        }
    }
}
