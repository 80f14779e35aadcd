//! Numbers as Redis reads and writes them.
//!
//! Redis is strict about the integers it accepts (`string2ll`: no `+`, no leading zeros, no
//! spaces) and specific about how it prints doubles (`%.17g` in 7.0 replies). Clients compare
//! these strings byte for byte, so the rules live here once.

/// Parses an integer the way Redis's `string2ll` does: optional `-`, no leading zeros, no
/// spaces, no `+`, at most 20 digits, within `i64`.
pub fn parse_i64(s: &[u8]) -> Option<i64> {
    if s.is_empty() || s.len() > 20 {
        return None;
    }
    if s == b"0" {
        return Some(0);
    }
    let (negative, digits) = match s[0] {
        b'-' => (true, &s[1..]),
        _ => (false, s),
    };
    if digits.is_empty() || !(b'1'..=b'9').contains(&digits[0]) {
        return None;
    }
    let mut v: u64 = 0;
    for &c in digits {
        if !c.is_ascii_digit() {
            return None;
        }
        v = v.checked_mul(10)?.checked_add((c - b'0') as u64)?;
    }
    if negative {
        if v > i64::MAX as u64 + 1 {
            None
        } else {
            Some((v as i64).wrapping_neg())
        }
    } else {
        i64::try_from(v).ok()
    }
}

/// Parses a double the way Redis's `string2d` does (strtod over the whole string): no leading
/// space, no trailing garbage, no NaN, no overflow to infinity or underflow to zero.
/// `inf`, `+inf`, `-inf` and `infinity` are accepted.
pub fn parse_f64(s: &[u8]) -> Option<f64> {
    let text = std::str::from_utf8(s).ok()?;
    if text.is_empty() || text.as_bytes()[0].is_ascii_whitespace() {
        return None;
    }
    let value: f64 = text.parse().ok()?;
    if value.is_nan() {
        return None;
    }
    let lower = text.to_ascii_lowercase();
    let explicit_inf = lower.trim_start_matches(['+', '-']).starts_with("inf");
    if value.is_infinite() && !explicit_inf {
        return None; // strtod's ERANGE overflow
    }
    if value == 0.0 && lower.bytes().take_while(|c| *c != b'e').any(|c| (b'1'..=b'9').contains(&c))
    {
        return None; // strtod's ERANGE underflow to zero
    }
    Some(value)
}

/// Formats a double as C's `printf("%.17g")`, which Redis 7.0 uses for double replies
/// (ZSCORE, WITHSCORES, RESP3 doubles). Infinities print as `inf`/`-inf`.
pub fn format_double(d: f64) -> String {
    if d.is_nan() {
        return "nan".into();
    }
    if d.is_infinite() {
        return if d > 0.0 { "inf".into() } else { "-inf".into() };
    }
    if d == 0.0 {
        return if d.is_sign_negative() { "-0".into() } else { "0".into() };
    }
    const P: i32 = 17;
    let sci = format!("{:.*e}", (P - 1) as usize, d);
    let (mantissa, exp) = sci.split_once('e').expect("{:e} output always has an exponent");
    let exp: i32 = exp.parse().expect("{:e} exponent is an integer");
    if !(-4..P).contains(&exp) {
        let mantissa = trim_fraction(mantissa);
        let sign = if exp < 0 { '-' } else { '+' };
        format!("{mantissa}e{sign}{:02}", exp.abs())
    } else {
        let fixed = format!("{:.*}", (P - 1 - exp) as usize, d);
        trim_fraction(&fixed).to_string()
    }
}

fn trim_fraction(s: &str) -> &str {
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.')
    } else {
        s
    }
}

/// Formats the result of INCRBYFLOAT / HINCRBYFLOAT as Redis's `ld2string(LD_STR_HUMAN)` does:
/// fixed notation, no exponent, no trailing zeros, `-0` printed as `0`.
///
/// Redis computes in `long double` and prints 17 decimals, which hides binary rounding for
/// ordinary decimal inputs (`0.1 + 0.2` prints `0.3`). We reproduce that by adding exactly in
/// decimal when both operands are plain decimals that fit, and fall back to the shortest
/// round-trip form of the `f64` sum otherwise.
pub fn incr_float(current: &[u8], incr: &[u8]) -> Option<(f64, String)> {
    let a = parse_f64(current)?;
    let b = parse_f64(incr)?;
    let sum = a + b;
    if !sum.is_finite() {
        return None;
    }
    if let (Some(x), Some(y)) = (Decimal::parse(current), Decimal::parse(incr)) {
        if let Some(text) = x.add(&y).map(|d| d.to_string()) {
            return Some((sum, text));
        }
    }
    let mut text = format!("{sum}");
    if text == "-0" {
        text = "0".into();
    }
    Some((sum, text))
}

/// An exact decimal `mantissa / 10^scale`, for INCRBYFLOAT's human-friendly arithmetic.
struct Decimal {
    mantissa: i128,
    scale: u32,
}

impl Decimal {
    /// Long double carries about 19 significant digits; beyond that Redis's result is rounded
    /// and exact decimal arithmetic would print digits Redis does not.
    const MAX_DIGITS: usize = 18;

    fn parse(s: &[u8]) -> Option<Decimal> {
        let (negative, body) = match s.first()? {
            b'-' => (true, &s[1..]),
            b'+' => (false, &s[1..]),
            _ => (false, s),
        };
        let (int, frac) = match body.iter().position(|c| *c == b'.') {
            Some(i) => (&body[..i], &body[i + 1..]),
            None => (body, &body[..0]),
        };
        if int.is_empty() && frac.is_empty() {
            return None;
        }
        if !int.iter().chain(frac).all(u8::is_ascii_digit) {
            return None;
        }
        let digits: Vec<u8> = int.iter().chain(frac).copied().skip_while(|c| *c == b'0').collect();
        if digits.len() > Self::MAX_DIGITS || frac.len() > 17 {
            return None;
        }
        let mut mantissa: i128 = 0;
        for c in int.iter().chain(frac) {
            mantissa = mantissa * 10 + (c - b'0') as i128;
        }
        Some(Decimal {
            mantissa: if negative { -mantissa } else { mantissa },
            scale: frac.len() as u32,
        })
    }

    fn add(&self, other: &Decimal) -> Option<Decimal> {
        let scale = self.scale.max(other.scale);
        let a = self.mantissa.checked_mul(10i128.checked_pow(scale - self.scale)?)?;
        let b = other.mantissa.checked_mul(10i128.checked_pow(scale - other.scale)?)?;
        let mantissa = a.checked_add(b)?;
        if mantissa.unsigned_abs().to_string().len() > Self::MAX_DIGITS + 1 {
            return None;
        }
        Some(Decimal { mantissa, scale })
    }
}

impl std::fmt::Display for Decimal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let digits = self.mantissa.unsigned_abs().to_string();
        let scale = self.scale as usize;
        let (int, frac) = if digits.len() > scale {
            (digits[..digits.len() - scale].to_string(), digits[digits.len() - scale..].to_string())
        } else {
            ("0".to_string(), format!("{}{}", "0".repeat(scale - digits.len()), digits))
        };
        let frac = frac.trim_end_matches('0');
        let negative = self.mantissa < 0;
        if negative {
            f.write_str("-")?;
        }
        f.write_str(&int)?;
        if !frac.is_empty() {
            write!(f, ".{frac}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_follow_string2ll() {
        assert_eq!(parse_i64(b"0"), Some(0));
        assert_eq!(parse_i64(b"-12"), Some(-12));
        assert_eq!(parse_i64(b"9223372036854775807"), Some(i64::MAX));
        assert_eq!(parse_i64(b"-9223372036854775808"), Some(i64::MIN));
        for bad in
            [&b"-0"[..], b"007", b"+1", b" 1", b"1 ", b"", b"-", b"9223372036854775808", b"1.0"]
        {
            assert_eq!(parse_i64(bad), None, "{:?}", std::str::from_utf8(bad));
        }
    }

    #[test]
    fn doubles_follow_string2d() {
        assert_eq!(parse_f64(b"1.5"), Some(1.5));
        assert_eq!(parse_f64(b"+inf"), Some(f64::INFINITY));
        assert_eq!(parse_f64(b"-inf"), Some(f64::NEG_INFINITY));
        assert_eq!(parse_f64(b"1e3"), Some(1000.0));
        for bad in [&b"nan"[..], b" 1", b"1 ", b"", b"1e400", b"1e-400", b"abc"] {
            assert_eq!(parse_f64(bad), None, "{:?}", std::str::from_utf8(bad));
        }
    }

    #[test]
    fn doubles_print_like_printf_17g() {
        assert_eq!(format_double(1.1), "1.1000000000000001");
        assert_eq!(format_double(1.5), "1.5");
        assert_eq!(format_double(3.0), "3");
        assert_eq!(format_double(-2.0), "-2");
        assert_eq!(format_double(1e17), "1e+17");
        assert_eq!(format_double(1.0e16), "10000000000000000");
        assert_eq!(format_double(0.0001), "0.0001");
        assert_eq!(format_double(0.00001), "1.0000000000000001e-05");
        assert_eq!(format_double(f64::INFINITY), "inf");
        assert_eq!(format_double(123456789.123), "123456789.123");
    }

    #[test]
    fn incr_float_is_human_friendly() {
        assert_eq!(incr_float(b"10.50", b"0.1").unwrap().1, "10.6");
        assert_eq!(incr_float(b"0.1", b"0.2").unwrap().1, "0.3");
        assert_eq!(incr_float(b"5.0e3", b"2.0e2").unwrap().1, "5200");
        assert_eq!(incr_float(b"3", b"-3").unwrap().1, "0");
        assert_eq!(incr_float(b"-1.5", b"0.25").unwrap().1, "-1.25");
        assert!(incr_float(b"1", b"inf").is_none());
    }
}
