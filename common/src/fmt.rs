//! Numbers as Redis reads and writes them.
//!
//! Redis is strict about the integers it accepts (`string2ll`: no `+`, no leading zeros, no
//! spaces) and specific about how it prints doubles (`%.17g` in 7.0 replies). Clients compare
//! these strings byte for byte, so the rules live here once.

use crate::longdouble::LongDouble;

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
    format_g(d, 17)
}

/// Formats a double as C's `printf("%.<precision>g")` (precision 1 to 17): that many
/// significant digits, trailing zeros dropped, exponent form below 1e-4 or from
/// 10^precision on. NaN prints as `nan`, infinities as `inf`/`-inf`.
pub fn format_g(d: f64, precision: i32) -> String {
    if d.is_nan() {
        return "nan".into();
    }
    if d.is_infinite() {
        return if d > 0.0 { "inf".into() } else { "-inf".into() };
    }
    if d == 0.0 {
        return if d.is_sign_negative() { "-0".into() } else { "0".into() };
    }
    let p = precision.clamp(1, 17);
    let sci = format!("{:.*e}", (p - 1) as usize, d);
    let (mantissa, exp) = sci.split_once('e').expect("{:e} output always has an exponent");
    let exp: i32 = exp.parse().expect("{:e} exponent is an integer");
    if !(-4..p).contains(&exp) {
        let mantissa = trim_fraction(mantissa);
        let sign = if exp < 0 { '-' } else { '+' };
        format!("{mantissa}e{sign}{:02}", exp.abs())
    } else {
        let fixed = format!("{:.*}", (p - 1 - exp) as usize, d);
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

/// Computes INCRBYFLOAT / HINCRBYFLOAT exactly as Redis 7.0 on x86_64 does: both operands
/// parsed by `string2ld` (glibc `strtold`: decimal, hex floats, `inf`; NaN, overflow and
/// underflow to zero rejected), added in x87 80-bit `long double`, and the sum printed by
/// `ld2string(LD_STR_HUMAN)` (`%.17Lf` without trailing zeros, `-0` as `0`). See
/// [`crate::longdouble`].
///
/// Returns `None` when an operand is not a valid float or the sum is infinite or NaN; the
/// caller tells those apart with [`LongDouble::parse`] for its error reply. The `f64` is the
/// double nearest to the sum (infinite beyond the range of doubles), for callers that want a
/// number; the string is what Redis stores and replies.
pub fn incr_float(current: &[u8], incr: &[u8]) -> Option<(f64, String)> {
    let sum = LongDouble::parse(current)? + LongDouble::parse(incr)?;
    if !sum.is_finite() {
        return None;
    }
    Some((sum.to_f64(), sum.to_redis_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format_g_matches_printf() {
        // %.14g, as Lua prints numbers (and cjson encodes them).
        for (n, text) in [
            (5.0, "5"),
            (-3.0, "-3"),
            (0.1, "0.1"),
            (1.0 / 3.0, "0.33333333333333"),
            (1e20, "1e+20"),
            (1.5e-7, "1.5e-07"),
            (123456789012.25, "123456789012.25"),
            (std::f64::consts::PI, "3.1415926535898"),
            (-0.0, "-0"),
        ] {
            assert_eq!(format_g(n, 14), text, "{n}");
        }
        assert_eq!(format_g(0.1, 17), "0.10000000000000001");
    }

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

    #[test]
    fn incr_float_is_long_double() {
        // Replies of a real Redis 7.0.15 (more in `longdouble`'s tests).
        assert_eq!(incr_float(b"1.23456789012345678", b"1e-5").unwrap().1, "1.23457789012345678");
        assert_eq!(incr_float(b"1000.1", b"1.1").unwrap().1, "1001.19999999999999996");
        assert_eq!(incr_float(b"0", b"1e-20").unwrap().1, "0");
        assert_eq!(incr_float(b"0", b"0x10").unwrap(), (16.0, "16".to_string()));
        assert_eq!(incr_float(b"-1e-30", b"0").unwrap().1, "0");
        assert_eq!(incr_float(b"0", b"0x1p-18").unwrap().1, "0.00000381469726562");
        let (d, text) = incr_float(b"0", b"1e400").unwrap();
        assert_eq!((d, text.len()), (f64::INFINITY, 401));
        let (d, text) = incr_float(b"1.7976931348623157e308", b"1.7976931348623157e308").unwrap();
        assert_eq!((d, text.len()), (f64::INFINITY, 309));
        assert_eq!(incr_float(b"1e-4940", b"0").unwrap(), (0.0, "0".to_string()));
        assert!(incr_float(b"1e4932", b"1e4932").is_none()); // overflows to infinity
        assert!(incr_float(b"inf", b"1").is_none());
        for bad in [&b"1e5000"[..], b"1e-5000", b"nan", b" 1", b"1 ", b"", b"0x", b"abc"] {
            assert!(incr_float(bad, b"1").is_none(), "{:?}", std::str::from_utf8(bad));
            assert!(incr_float(b"1", bad).is_none(), "{:?}", std::str::from_utf8(bad));
        }
    }
}
