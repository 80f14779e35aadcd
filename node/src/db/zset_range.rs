//! Score and lexicographic ranges of the sorted-set commands, and numbers parsed the way Redis
//! parses them for sorted sets.
//!
//! Redis reads range bounds with a bare `strtod` (`zslParseRange`): leading spaces, hex floats
//! and even the empty string (= 0) are accepted, only trailing garbage and NaN are not. Scores
//! and weights go through `string2d`, which is stricter (no leading space, no overflow). Both are
//! reproduced here on top of one `strtod` model of glibc's, because clients see the difference
//! (`ZRANGEBYSCORE z "" 1` works on Redis).
//!
//! A range answers two questions about an element, "is it at or above the minimum" and "is it
//! at or below the maximum" ([`RangeSpec`]); the sorted set finds the first and last element in
//! range with those, exactly as Redis's `zslFirstInRange`/`zzlFirstInRange` do.

use std::cmp::Ordering;

/// What a bound-checking range looks like to the sorted set.
pub trait RangeSpec {
    /// True if no element can be in range (`min > max`, or equal bounds with one exclusive).
    fn is_empty(&self) -> bool;
    /// True if the element is at or above the minimum.
    fn gte_min(&self, score: f64, member: &[u8]) -> bool;
    /// True if the element is at or below the maximum.
    fn lte_max(&self, score: f64, member: &[u8]) -> bool;
}

/// A score interval, `[min, max]` with optionally open ends (`(1.5`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ScoreRange {
    /// Lower bound.
    pub min: f64,
    /// Upper bound.
    pub max: f64,
    /// The lower bound is excluded.
    pub minex: bool,
    /// The upper bound is excluded.
    pub maxex: bool,
}

impl ScoreRange {
    /// Parses `min max` as `zslParseRange` does; `None` means `ERR min or max is not a float`.
    pub fn parse(min: &[u8], max: &[u8]) -> Option<ScoreRange> {
        let (min, minex) = score_bound(min)?;
        let (max, maxex) = score_bound(max)?;
        Some(ScoreRange { min, max, minex, maxex })
    }
}

impl RangeSpec for ScoreRange {
    fn is_empty(&self) -> bool {
        self.min > self.max || (self.min == self.max && (self.minex || self.maxex))
    }

    fn gte_min(&self, score: f64, _: &[u8]) -> bool {
        if self.minex {
            score > self.min
        } else {
            score >= self.min
        }
    }

    fn lte_max(&self, score: f64, _: &[u8]) -> bool {
        if self.maxex {
            score < self.max
        } else {
            score <= self.max
        }
    }
}

/// One end of a lexicographic range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LexBound {
    /// `-`: below every string.
    Min,
    /// `+`: above every string.
    Max,
    /// `[x` or `(x`.
    Value(Vec<u8>),
}

impl LexBound {
    /// Redis's `sdscmplex`: the infinities compare equal to themselves only.
    fn cmp_bound(&self, other: &LexBound) -> Ordering {
        match (self, other) {
            (LexBound::Min, LexBound::Min) | (LexBound::Max, LexBound::Max) => Ordering::Equal,
            (LexBound::Min, _) | (_, LexBound::Max) => Ordering::Less,
            (LexBound::Max, _) | (_, LexBound::Min) => Ordering::Greater,
            (LexBound::Value(a), LexBound::Value(b)) => a.cmp(b),
        }
    }

    /// How `member` compares with this bound.
    fn cmp_member(&self, member: &[u8]) -> Ordering {
        match self {
            LexBound::Min => Ordering::Greater,
            LexBound::Max => Ordering::Less,
            LexBound::Value(v) => member.cmp(v),
        }
    }
}

/// A lexicographic interval over members (scores are ignored).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LexRange {
    /// Lower bound.
    pub min: LexBound,
    /// Upper bound.
    pub max: LexBound,
    /// The lower bound is excluded (`-` and `+` count as excluded, as in Redis).
    pub minex: bool,
    /// The upper bound is excluded.
    pub maxex: bool,
}

impl LexRange {
    /// Parses `min max` as `zslParseLexRange` does; `None` means
    /// `ERR min or max not valid string range item`.
    pub fn parse(min: &[u8], max: &[u8]) -> Option<LexRange> {
        let (min, minex) = lex_bound(min)?;
        let (max, maxex) = lex_bound(max)?;
        Some(LexRange { min, max, minex, maxex })
    }
}

impl RangeSpec for LexRange {
    fn is_empty(&self) -> bool {
        match self.min.cmp_bound(&self.max) {
            Ordering::Greater => true,
            Ordering::Equal => self.minex || self.maxex,
            Ordering::Less => false,
        }
    }

    fn gte_min(&self, _: f64, member: &[u8]) -> bool {
        let c = self.min.cmp_member(member);
        if self.minex {
            c == Ordering::Greater
        } else {
            c != Ordering::Less
        }
    }

    fn lte_max(&self, _: f64, member: &[u8]) -> bool {
        let c = self.max.cmp_member(member);
        if self.maxex {
            c == Ordering::Less
        } else {
            c != Ordering::Greater
        }
    }
}

/// The argument as C code sees it: up to its first NUL byte.
fn c_str(arg: &[u8]) -> &[u8] {
    arg.iter().position(|b| *b == 0).map_or(arg, |end| &arg[..end])
}

/// One bound of `zslParseRange`: `(` makes it exclusive; the rest must be wholly consumed by
/// `strtod` (so `""` is 0) and must not be NaN.
fn score_bound(arg: &[u8]) -> Option<(f64, bool)> {
    let arg = c_str(arg);
    let (text, exclusive) = match arg.first() {
        Some(b'(') => (&arg[1..], true),
        _ => (arg, false),
    };
    let parsed = strtod(text);
    // With no conversion, strtod leaves the end pointer at the start: fine only when empty.
    (parsed.end == text.len() && !parsed.value.is_nan()).then_some((parsed.value, exclusive))
}

/// One bound of `zslParseLexRangeItem`.
fn lex_bound(arg: &[u8]) -> Option<(LexBound, bool)> {
    let alone = |arg: &[u8]| arg.len() == 1 || arg[1] == 0;
    match arg.first()? {
        b'+' if alone(arg) => Some((LexBound::Max, true)),
        b'-' if alone(arg) => Some((LexBound::Min, true)),
        b'(' => Some((LexBound::Value(arg[1..].to_vec()), true)),
        b'[' => Some((LexBound::Value(arg[1..].to_vec()), false)),
        _ => None,
    }
}

/// A score, increment or weight as Redis's `string2d` reads it: the whole argument must be a
/// number, with no leading space, no overflow to infinity or underflow to zero, and not NaN
/// (`inf` and `-inf` written out are fine).
pub fn string2d(arg: &[u8]) -> Option<f64> {
    if arg.is_empty() || is_c_space(arg[0]) {
        return None;
    }
    let parsed = strtod(arg);
    if parsed.end != arg.len() || parsed.value.is_nan() {
        return None;
    }
    if parsed.erange && (parsed.value.is_infinite() || parsed.value == 0.0) {
        return None;
    }
    Some(parsed.value)
}

/// What `strtod` made of a string.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Strtod {
    /// The value (0 when nothing was converted).
    pub value: f64,
    /// How many bytes were consumed (0 when nothing was converted).
    pub end: usize,
    /// `errno == ERANGE`: the value overflowed to infinity or underflowed to zero.
    pub erange: bool,
}

fn is_c_space(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r')
}

fn starts_with_ignore_case(s: &[u8], prefix: &[u8]) -> bool {
    s.len() >= prefix.len() && s[..prefix.len()].eq_ignore_ascii_case(prefix)
}

/// glibc's `strtod` in the C locale: optional leading space and sign, then `inf`/`infinity`,
/// `nan`/`nan(chars)`, a hex float (`0x1.8p3`) or a decimal float; the longest valid prefix is
/// converted (correctly rounded).
pub fn strtod(s: &[u8]) -> Strtod {
    let none = Strtod { value: 0.0, end: 0, erange: false };
    let mut i = 0;
    while i < s.len() && is_c_space(s[i]) {
        i += 1;
    }
    let negative = match s.get(i) {
        Some(b'-') => {
            i += 1;
            true
        }
        Some(b'+') => {
            i += 1;
            false
        }
        _ => false,
    };
    let sign = |v: f64| if negative { -v } else { v };
    let rest = &s[i..];
    if starts_with_ignore_case(rest, b"inf") {
        let len = if starts_with_ignore_case(rest, b"infinity") { 8 } else { 3 };
        return Strtod { value: sign(f64::INFINITY), end: i + len, erange: false };
    }
    if starts_with_ignore_case(rest, b"nan") {
        let mut end = i + 3;
        if s.get(end) == Some(&b'(') {
            let mut j = end + 1;
            while j < s.len() && (s[j].is_ascii_alphanumeric() || s[j] == b'_') {
                j += 1;
            }
            if s.get(j) == Some(&b')') {
                end = j + 1;
            }
        }
        return Strtod { value: f64::NAN, end, erange: false };
    }
    if rest.len() > 2 && rest[0] == b'0' && (rest[1] | 0x20) == b'x' {
        if let Some((value, len)) = hex_float(&rest[2..]) {
            let value = sign(value);
            let erange = value.is_infinite() || (value == 0.0 && len.1);
            return Strtod { value, end: i + 2 + len.0, erange };
        }
    }
    // Decimal: digits [. digits] [e [sign] digits], at least one mantissa digit.
    let mut j = i;
    let mut digits = 0;
    let mut nonzero = false;
    while j < s.len() && s[j].is_ascii_digit() {
        nonzero |= s[j] != b'0';
        digits += 1;
        j += 1;
    }
    if s.get(j) == Some(&b'.') {
        j += 1;
        while j < s.len() && s[j].is_ascii_digit() {
            nonzero |= s[j] != b'0';
            digits += 1;
            j += 1;
        }
    }
    if digits == 0 {
        return none;
    }
    if j < s.len() && (s[j] | 0x20) == b'e' {
        let mut k = j + 1;
        if k < s.len() && (s[k] == b'+' || s[k] == b'-') {
            k += 1;
        }
        if k < s.len() && s[k].is_ascii_digit() {
            while k < s.len() && s[k].is_ascii_digit() {
                k += 1;
            }
            j = k;
        }
    }
    let text = std::str::from_utf8(&s[i..j]).expect("only ASCII digits, '.', 'e' and signs");
    let value: f64 = text.parse().expect("the scanned grammar is a subset of Rust's float syntax");
    let erange = value.is_infinite() || (value == 0.0 && nonzero);
    Strtod { value: sign(value), end: j, erange }
}

/// The part of a hex float after `0x`: returns the value and (bytes consumed, nonzero digits
/// seen), or `None` if no hex digit follows (then strtod reads just the `0`).
fn hex_float(s: &[u8]) -> Option<(f64, (usize, bool))> {
    let mut mantissa: u64 = 0;
    let mut exp: i64 = 0;
    let mut any = false;
    let mut nonzero = false;
    let mut sticky = false;
    let mut j = 0;
    let mut fraction = false;
    loop {
        match s.get(j) {
            Some(b'.') if !fraction => fraction = true,
            Some(c) if c.is_ascii_hexdigit() => {
                let d = (*c as char).to_digit(16).expect("checked hex digit") as u64;
                any = true;
                nonzero |= d != 0;
                if mantissa < 1 << 60 {
                    mantissa = mantissa * 16 + d;
                    if fraction {
                        exp -= 4;
                    }
                } else {
                    sticky |= d != 0;
                    if !fraction {
                        exp += 4;
                    }
                }
            }
            _ => break,
        }
        j += 1;
    }
    if !any {
        return None;
    }
    if j < s.len() && (s[j] | 0x20) == b'p' {
        let mut k = j + 1;
        let negative = s.get(k) == Some(&b'-');
        if k < s.len() && (s[k] == b'+' || s[k] == b'-') {
            k += 1;
        }
        if k < s.len() && s[k].is_ascii_digit() {
            let mut e: i64 = 0;
            while k < s.len() && s[k].is_ascii_digit() {
                e = (e * 10 + (s[k] - b'0') as i64).min(1 << 20);
                k += 1;
            }
            exp += if negative { -e } else { e };
            j = k;
        }
    }
    if sticky {
        mantissa |= 1;
    }
    Some((ldexp(mantissa as f64, exp), (j, nonzero)))
}

/// `x * 2^exp` without overflowing the intermediate power.
fn ldexp(mut x: f64, mut exp: i64) -> f64 {
    while exp > 1000 && x.is_finite() && x != 0.0 {
        x *= 2f64.powi(1000);
        exp -= 1000;
    }
    while exp < -1000 && x != 0.0 {
        x *= 2f64.powi(-1000);
        exp += 1000;
    }
    x * 2f64.powi(exp.clamp(-1100, 1100) as i32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strtod_follows_glibc() {
        assert_eq!(strtod(b"1.5").value, 1.5);
        assert_eq!(strtod(b"  -2e3x"), Strtod { value: -2000.0, end: 6, erange: false });
        assert_eq!(strtod(b"0x10").value, 16.0);
        assert_eq!(strtod(b"0x1.8p1").value, 3.0);
        assert_eq!(strtod(b"0x").end, 1);
        assert_eq!(strtod(b"1e").end, 1);
        assert_eq!(strtod(b"+Infinity").value, f64::INFINITY);
        assert_eq!(strtod(b"-inf").value, f64::NEG_INFINITY);
        assert!(strtod(b"nan(12)").value.is_nan());
        assert_eq!(strtod(b"nan(12)").end, 7);
        assert_eq!(strtod(b"").end, 0);
        assert_eq!(strtod(b".").end, 0);
        assert!(strtod(b"1e999").erange);
        assert!(strtod(b"1e-999").erange);
    }

    #[test]
    fn string2d_is_strict() {
        assert_eq!(string2d(b"1.1"), Some(1.1));
        assert_eq!(string2d(b"0x10"), Some(16.0));
        assert_eq!(string2d(b"-inf"), Some(f64::NEG_INFINITY));
        for bad in [&b""[..], b" 1", b"1 ", b"nan", b"1e999", b"1e-999", b"abc", b"1\0"] {
            assert_eq!(string2d(bad), None, "{:?}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn score_ranges_parse_like_zsl_parse_range() {
        let r = ScoreRange::parse(b"(1", b"+inf").expect("valid");
        assert_eq!(r, ScoreRange { min: 1.0, max: f64::INFINITY, minex: true, maxex: false });
        assert_eq!(ScoreRange::parse(b"", b" 2").map(|r| (r.min, r.max)), Some((0.0, 2.0)));
        assert_eq!(ScoreRange::parse(b"(", b"1").map(|r| (r.min, r.minex)), Some((0.0, true)));
        assert!(ScoreRange::parse(b"nan", b"1").is_none());
        assert!(ScoreRange::parse(b"1x", b"1").is_none());
        assert!(ScoreRange::parse(b"1 ", b"1").is_none());
        let r = ScoreRange::parse(b"(1", b"(1").expect("valid");
        assert!(r.is_empty());
        assert!(!r.gte_min(1.0, b""));
    }

    #[test]
    fn lex_ranges_parse_like_zsl_parse_lex_range() {
        let r = LexRange::parse(b"[a", b"(c").expect("valid");
        assert!(r.gte_min(0.0, b"a") && r.lte_max(0.0, b"b") && !r.lte_max(0.0, b"c"));
        let all = LexRange::parse(b"-", b"+").expect("valid");
        assert!(!all.is_empty() && all.gte_min(0.0, b"") && all.lte_max(0.0, b"\xff"));
        assert!(LexRange::parse(b"+", b"+").expect("valid").is_empty());
        assert!(LexRange::parse(b"+", b"-").expect("valid").is_empty());
        assert!(LexRange::parse(b"a", b"+").is_none());
        assert!(LexRange::parse(b"", b"+").is_none());
        assert!(LexRange::parse(b"-x", b"+").is_none());
        assert!(LexRange::parse(b"[b", b"[a").expect("valid").is_empty());
    }
}
