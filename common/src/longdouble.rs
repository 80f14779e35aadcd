//! The x87 80-bit `long double` that Redis's INCRBYFLOAT and HINCRBYFLOAT compute in.
//!
//! On x86_64 Redis parses both operands with `strtold`, adds them in the x87 extended format
//! (64-bit significand with an explicit integer bit, 15-bit exponent, round to nearest even)
//! and prints the sum with `"%.17Lf"` before trimming trailing zeros (`ld2string` with
//! `LD_STR_HUMAN`). Clients see those strings byte for byte, so this module emulates the three
//! steps exactly, in pure Rust:
//!
//! - [`LongDouble::parse`] is `string2ld`: glibc's correctly rounded `strtold` over the whole
//!   string (decimal, hexadecimal `0x…p…`, `inf`/`infinity`), rejecting NaN, overflow to
//!   infinity and underflow to zero, as Redis does.
//! - [`LongDouble::sum`] (also the `+` operator) is the x87 `fadd`: the exact sum rounded to
//!   64 significant bits, half to even, with subnormals and overflow to infinity.
//! - [`LongDouble::format_fixed`] is glibc's `"%.*Lf"`: the exact decimal expansion of the
//!   binary value rounded half to even; [`LongDouble::to_redis_string`] adds Redis's trimming.
//!
//! Typical operands (a few dozen digits, small exponents) stay in `u128` arithmetic and cost
//! well under a microsecond; only huge exponents or very long digit strings fall back to big
//! integers.

use num_bigint::BigUint;

/// Redis's `MAX_LONG_DOUBLE_CHARS`: `string2ld` rejects strings of this length or longer.
pub const MAX_LONG_DOUBLE_CHARS: usize = 5 * 1024;

/// The precision `ld2string` uses in `LD_STR_HUMAN` mode.
const HUMAN_PRECISION: u32 = 17;

/// A binary floating-point format: `prec` significand bits, the exponent of the last
/// significand bit (the unit in the last place) ranging over `emin..=emax`.
#[derive(Clone, Copy)]
struct Format {
    prec: u32,
    emin: i64,
    emax: i64,
}

/// x87 extended: significands below 2^64, ulp from 2^-16445 (smallest subnormal) to 2^16320.
const X87: Format = Format { prec: 64, emin: -16445, emax: 16320 };
/// IEEE binary64, for [`LongDouble::to_f64`].
const F64: Format = Format { prec: 53, emin: -1074, emax: 971 };

/// Exponent bias of the x87 encoding, plus the 63 fraction bits: `exp + X87_ENC_BIAS` is the
/// biased exponent field of a normal number whose value is `mant * 2^exp`.
const X87_ENC_BIAS: i64 = 16383 + 63;

/// An x87 extended-precision value.
///
/// Equality is representation equality: `+0` and `-0` differ, and a NaN equals itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LongDouble {
    negative: bool,
    kind: Kind,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    /// `mant * 2^exp`. Canonical: zero is `mant == 0, exp == 0`; otherwise either
    /// `mant >= 2^63` (normal) or `exp == X87.emin` (subnormal).
    Finite {
        mant: u64,
        exp: i32,
    },
    Infinite,
    NaN,
}

/// The outcome of rounding an exact, nonzero magnitude to a format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Rounded {
    /// Below half the smallest subnormal: rounds to zero (strtold's ERANGE underflow).
    Zero,
    /// `mant * 2^exp`, canonical for the format.
    Finite(u64, i64),
    /// Above the largest finite value: rounds to infinity.
    Overflow,
}

/// Rounds `n * 2^e` (plus, when `sticky`, some positive amount smaller than `2^e`) to `f`,
/// to nearest with ties to even.
///
/// When `sticky` is set, `n` must have at least `f.prec + 2` bits so the rounding bit is
/// known exactly.
fn round(n: u128, e: i64, sticky: bool, f: Format) -> Rounded {
    let bits = i64::from(128 - n.leading_zeros());
    debug_assert!(!sticky || bits >= i64::from(f.prec) + 2, "sticky rounding needs guard bits");
    if bits == 0 {
        return Rounded::Zero;
    }
    let prec = i64::from(f.prec);
    // value >= 2^(e + bits - 1); the largest finite value is below 2^(emax + prec).
    if e + bits > f.emax + prec {
        return Rounded::Overflow;
    }
    // value < 2^(e + bits) <= 2^(emin - 2): less than half the smallest subnormal.
    if e + bits <= f.emin - 2 {
        return Rounded::Zero;
    }
    let mut t = (e + bits - prec).max(f.emin);
    let mut q = if t <= e {
        // Exact: the significand fits at exponent t.
        n << (e - t)
    } else {
        let shift = (t - e) as u32;
        let (q, up) = if shift > 128 {
            (0, false) // n < 2^128 <= half an ulp
        } else {
            let (q, rem) =
                if shift == 128 { (0, n) } else { (n >> shift, n & ((1u128 << shift) - 1)) };
            let half = 1u128 << (shift - 1);
            (q, rem > half || (rem == half && (sticky || q & 1 == 1)))
        };
        q + u128::from(up)
    };
    if q == 1u128 << f.prec {
        q >>= 1;
        t += 1;
    }
    if q == 0 {
        return Rounded::Zero;
    }
    if t > f.emax {
        return Rounded::Overflow;
    }
    Rounded::Finite(q as u64, t)
}

/// Like [`round`] for a big integer: keeps the top 128 bits and folds the rest into sticky.
fn round_big(n: &BigUint, e: i64, sticky: bool, f: Format) -> Rounded {
    let bits = n.bits();
    if bits <= 128 {
        return round(big_to_u128(n), e, sticky, f);
    }
    let shift = bits - 128;
    let lost = n.trailing_zeros().is_some_and(|tz| tz < shift);
    round(big_to_u128(&(n >> shift)), e + shift as i64, sticky || lost, f)
}

fn big_to_u128(n: &BigUint) -> u128 {
    let digits = n.to_u64_digits();
    debug_assert!(digits.len() <= 2);
    digits.iter().rev().fold(0u128, |acc, d| (acc << 64) | u128::from(*d))
}

/// What `strtold` makes of a whole string, before Redis's checks.
enum Parsed {
    Value(LongDouble),
    /// A nonzero number whose magnitude rounds to zero (ERANGE, value 0).
    Underflow,
    /// A finite number too large for the format (ERANGE, value ±HUGE_VALL).
    Overflow,
    /// `nan`, `nan(…)`: never accepted by Redis.
    NaN,
}

impl LongDouble {
    /// Positive zero.
    pub const ZERO: LongDouble =
        LongDouble { negative: false, kind: Kind::Finite { mant: 0, exp: 0 } };
    /// Positive infinity.
    pub const INFINITY: LongDouble = LongDouble { negative: false, kind: Kind::Infinite };
    /// Negative infinity.
    pub const NEG_INFINITY: LongDouble = LongDouble { negative: true, kind: Kind::Infinite };
    /// The x87 default NaN ("real indefinite"), which has its sign bit set.
    pub const NAN: LongDouble = LongDouble { negative: true, kind: Kind::NaN };

    fn from_rounded(negative: bool, r: Rounded) -> LongDouble {
        let kind = match r {
            Rounded::Zero => Kind::Finite { mant: 0, exp: 0 },
            Rounded::Finite(mant, exp) => Kind::Finite { mant, exp: exp as i32 },
            Rounded::Overflow => Kind::Infinite,
        };
        LongDouble { negative, kind }
    }

    /// Parses a value the way Redis's `string2ld` does: the whole string must be a number
    /// that glibc's `strtold` accepts (no leading whitespace, no trailing bytes), shorter
    /// than [`MAX_LONG_DOUBLE_CHARS`], and neither NaN, nor a finite number that overflows
    /// to infinity, nor a nonzero number that underflows to zero. `inf`, `-Infinity` and
    /// nonzero subnormal results are accepted.
    pub fn parse(s: &[u8]) -> Option<LongDouble> {
        if s.is_empty() || s.len() >= MAX_LONG_DOUBLE_CHARS {
            return None;
        }
        match strtold(s)? {
            Parsed::Value(v) => Some(v),
            Parsed::Underflow | Parsed::Overflow | Parsed::NaN => None,
        }
    }

    /// The exact `long double` of an `f64` (every double is representable).
    pub fn from_f64(d: f64) -> LongDouble {
        let negative = d.is_sign_negative();
        if d.is_nan() {
            return LongDouble { negative, kind: Kind::NaN };
        }
        if d.is_infinite() {
            return LongDouble { negative, kind: Kind::Infinite };
        }
        let bits = d.to_bits();
        let field = ((bits >> 52) & 0x7ff) as i64;
        let frac = bits & ((1u64 << 52) - 1);
        let (m, e) = if field == 0 { (frac, -1074) } else { (frac | (1 << 52), field - 1075) };
        LongDouble::from_rounded(negative, round(u128::from(m), e, false, X87))
    }

    /// The nearest `f64`, ties to even (infinite when beyond the range of doubles).
    pub fn to_f64(&self) -> f64 {
        let magnitude = match self.kind {
            Kind::NaN => f64::NAN,
            Kind::Infinite => f64::INFINITY,
            Kind::Finite { mant, exp } => match round(u128::from(mant), i64::from(exp), false, F64)
            {
                Rounded::Zero => 0.0,
                Rounded::Overflow => f64::INFINITY,
                Rounded::Finite(m, e) => {
                    let scale = if e >= -1022 {
                        f64::from_bits(((e + 1023) as u64) << 52)
                    } else {
                        f64::from_bits(1u64 << (e + 1074))
                    };
                    m as f64 * scale // exact: the product is representable
                }
            },
        };
        if self.negative {
            -magnitude
        } else {
            magnitude
        }
    }

    /// Decodes the 80-bit x87 memory format (sign, 15-bit biased exponent, 64-bit significand
    /// with explicit integer bit) held in the low 80 bits. Unnormal encodings are read by
    /// their numeric value; any encoding with the maximal exponent and a nonzero fraction is
    /// a NaN.
    pub fn from_bits(bits: u128) -> LongDouble {
        let negative = (bits >> 79) & 1 == 1;
        let field = ((bits >> 64) & 0x7fff) as i64;
        let mant = bits as u64;
        if field == 0x7fff {
            let kind = if mant << 1 == 0 { Kind::Infinite } else { Kind::NaN };
            return LongDouble { negative, kind };
        }
        let exp = if field == 0 { X87.emin } else { field - X87_ENC_BIAS };
        LongDouble::from_rounded(negative, round(u128::from(mant), exp, false, X87))
    }

    /// The 80-bit x87 memory format of this value, in the low 80 bits.
    pub fn to_bits(&self) -> u128 {
        let sign = u128::from(self.negative) << 79;
        let (field, mant) = match self.kind {
            Kind::NaN => (0x7fff, 0xc000_0000_0000_0000),
            Kind::Infinite => (0x7fff, 0x8000_0000_0000_0000),
            Kind::Finite { mant, exp } => {
                if mant >> 63 == 1 {
                    ((i64::from(exp) + X87_ENC_BIAS) as u128, mant)
                } else {
                    (0, mant) // zero or subnormal
                }
            }
        };
        sign | (field << 64) | u128::from(mant)
    }

    /// True for every value but infinities and NaN.
    pub fn is_finite(&self) -> bool {
        matches!(self.kind, Kind::Finite { .. })
    }

    /// True for `+inf` and `-inf`.
    pub fn is_infinite(&self) -> bool {
        self.kind == Kind::Infinite
    }

    /// True for NaN.
    pub fn is_nan(&self) -> bool {
        self.kind == Kind::NaN
    }

    /// True for `+0` and `-0`.
    pub fn is_zero(&self) -> bool {
        matches!(self.kind, Kind::Finite { mant: 0, .. })
    }

    /// True when the sign bit is set (including `-0`).
    pub fn is_sign_negative(&self) -> bool {
        self.negative
    }

    /// `self + other` as the x87 `fadd` computes it with the default control word (64-bit
    /// precision, round to nearest even): exact sum, one rounding, overflow to infinity,
    /// `x + (-x) == +0`, `inf + -inf == NaN`. Same as the `+` operator.
    pub fn sum(self, other: LongDouble) -> LongDouble {
        let (a, b) = (self, other);
        let ((ma, ea), (mb, eb)) = match (a.kind, b.kind) {
            (Kind::NaN, _) => return a,
            (_, Kind::NaN) => return b,
            (Kind::Infinite, Kind::Infinite) => {
                return if a.negative == b.negative { a } else { LongDouble::NAN }
            }
            (Kind::Infinite, _) => return a,
            (_, Kind::Infinite) => return b,
            (Kind::Finite { mant: ma, exp: ea }, Kind::Finite { mant: mb, exp: eb }) => {
                ((ma, ea), (mb, eb))
            }
        };
        if ma == 0 && mb == 0 {
            return LongDouble { negative: a.negative && b.negative, kind: a.kind };
        }
        if mb == 0 {
            return a;
        }
        if ma == 0 {
            return b;
        }
        // Order by magnitude: canonical values compare by exponent, then significand.
        let (big, small, (mx, ex), (my, ey)) = if (ea, ma) >= (eb, mb) {
            (a, b, (ma, ea), (mb, eb))
        } else {
            (b, a, (mb, eb), (ma, ea))
        };
        let d = (ex - ey) as u32;
        // Work at exponent ex - 63 so that the sum of two 127-bit numbers fits in u128.
        let x = u128::from(mx) << 63;
        let (y, sticky) = if d <= 63 {
            (u128::from(my) << (63 - d), false)
        } else if d - 63 < 64 {
            let s = d - 63;
            (u128::from(my >> s), my & ((1u64 << s) - 1) != 0)
        } else {
            (0, true)
        };
        let e = i64::from(ex) - 63;
        if big.negative == small.negative {
            LongDouble::from_rounded(big.negative, round(x + y, e, sticky, X87))
        } else {
            // big - (y + frac) == (x - y - 1) + (1 - frac), with 0 < 1 - frac < 1.
            let n = if sticky { x - y - 1 } else { x - y };
            if n == 0 && !sticky {
                return LongDouble::ZERO; // exact cancellation is +0 when rounding to nearest
            }
            LongDouble::from_rounded(big.negative, round(n, e, sticky, X87))
        }
    }

    /// Formats like glibc's `printf("%.*Lf", precision, value)`: `[-]digits.digits`, the exact
    /// binary value rounded to `precision` fractional digits, half to even; `-0` keeps its
    /// sign; infinities print `inf`/`-inf` and NaN `nan`/`-nan`.
    pub fn format_fixed(&self, precision: u32) -> String {
        let sign = if self.negative { "-" } else { "" };
        let (mant, exp) = match self.kind {
            Kind::NaN => return format!("{sign}nan"),
            Kind::Infinite => return format!("{sign}inf"),
            Kind::Finite { mant, exp } => (mant, exp),
        };
        let prec = precision as usize;
        // `scaled` is round(|value| * 10^precision) in decimal.
        let scaled = if exp >= 0 {
            let int = if exp < 64 {
                (u128::from(mant) << exp).to_string()
            } else {
                (BigUint::from(mant) << exp as u32).to_string()
            };
            let mut s = int;
            s.push_str(&"0".repeat(prec));
            s
        } else {
            let p = exp.unsigned_abs();
            match 10u128.checked_pow(precision).and_then(|t| t.checked_mul(u128::from(mant))) {
                Some(n) => round_shift_u128(n, p).to_string(),
                None => {
                    round_shift_big(BigUint::from(mant) * BigUint::from(10u32).pow(precision), p)
                        .to_string()
                }
            }
        };
        let mut out = String::with_capacity(scaled.len() + 3);
        out.push_str(sign);
        if prec == 0 {
            out.push_str(&scaled);
        } else if scaled.len() > prec {
            let (int, frac) = scaled.split_at(scaled.len() - prec);
            out.push_str(int);
            out.push('.');
            out.push_str(frac);
        } else {
            out.push_str("0.");
            out.push_str(&"0".repeat(prec - scaled.len()));
            out.push_str(&scaled);
        }
        out
    }

    /// Formats like Redis's `ld2string(…, LD_STR_HUMAN)`: `"%.17Lf"`, then trailing zeros and
    /// a trailing `.` removed, and `-0` printed as `0`. Infinities print `inf`/`-inf`.
    pub fn to_redis_string(&self) -> String {
        match self.kind {
            Kind::Infinite => return if self.negative { "-inf".into() } else { "inf".into() },
            Kind::NaN => return self.format_fixed(HUMAN_PRECISION),
            Kind::Finite { .. } => {}
        }
        let mut s = self.format_fixed(HUMAN_PRECISION);
        if s.contains('.') {
            let keep = s.trim_end_matches('0').trim_end_matches('.').len();
            s.truncate(keep);
        }
        if s == "-0" {
            s = "0".into();
        }
        s
    }
}

impl std::ops::Add for LongDouble {
    type Output = LongDouble;

    /// x87 addition: see [`LongDouble::sum`].
    fn add(self, other: LongDouble) -> LongDouble {
        self.sum(other)
    }
}

impl std::ops::Neg for LongDouble {
    type Output = LongDouble;

    /// The value with its sign flipped (exact, also for zeros, infinities and NaN).
    fn neg(self) -> LongDouble {
        LongDouble { negative: !self.negative, ..self }
    }
}

/// `n / 2^p` rounded to nearest, ties to even.
fn round_shift_u128(n: u128, p: u32) -> u128 {
    if p == 0 {
        return n;
    }
    if p > 128 {
        return 0; // n < 2^128 <= half
    }
    let (q, rem) = if p == 128 { (0, n) } else { (n >> p, n & ((1u128 << p) - 1)) };
    let half = 1u128 << (p - 1);
    q + u128::from(rem > half || (rem == half && q & 1 == 1))
}

/// `n / 2^p` rounded to nearest, ties to even, for big `n`.
fn round_shift_big(n: BigUint, p: u32) -> BigUint {
    if p == 0 {
        return n;
    }
    let q = &n >> p;
    let rem = n - (&q << p);
    let half = BigUint::from(1u32) << (p - 1);
    let odd = q.bit(0);
    if rem > half || (rem == half && odd) {
        q + 1u32
    } else {
        q
    }
}

/// glibc's `strtold` over the whole string (after the caller's length checks): `None` when
/// the string is not entirely one number.
fn strtold(s: &[u8]) -> Option<Parsed> {
    let (negative, body) = match s.first()? {
        b'-' => (true, &s[1..]),
        b'+' => (false, &s[1..]),
        _ => (false, s),
    };
    let first = *body.first()?;
    let starts_number =
        first.is_ascii_digit() || (first == b'.' && body.get(1).is_some_and(u8::is_ascii_digit));
    if !starts_number {
        if body.eq_ignore_ascii_case(b"inf") || body.eq_ignore_ascii_case(b"infinity") {
            return Some(Parsed::Value(LongDouble { negative, kind: Kind::Infinite }));
        }
        // "nan" and "nan(chars)" are NaN; anything else after "nan" is trailing garbage.
        if body.len() >= 3 && body[..3].eq_ignore_ascii_case(b"nan") {
            return Some(Parsed::NaN);
        }
        return None;
    }
    let magnitude = if body.len() > 2 && body[0] == b'0' && (body[1] | 0x20) == b'x' {
        parse_hex(&body[2..])?
    } else {
        parse_decimal(body)?
    };
    Some(match magnitude {
        Rounded::Zero => Parsed::Underflow,
        Rounded::Overflow => Parsed::Overflow,
        Rounded::Finite(mant, exp) => {
            Parsed::Value(LongDouble { negative, kind: Kind::Finite { mant, exp: exp as i32 } })
        }
    })
}

/// What the literal parsers return for a mantissa of zeros ("0", "0e99999", "0x0p1"): an
/// exact zero, unlike [`Rounded::Zero`], which is a nonzero value lost to underflow.
const EXACT_ZERO: Rounded = Rounded::Finite(0, 0);

/// Splits `digits[.digits]` off the front of `s`, using `is_digit`; `None` when there is
/// no digit at all.
fn split_mantissa(s: &[u8], is_digit: fn(&u8) -> bool) -> Option<(&[u8], &[u8], &[u8])> {
    let int_len = s.iter().take_while(|c| is_digit(c)).count();
    let (int, rest) = s.split_at(int_len);
    let (frac, rest) = match rest.first() {
        Some(b'.') => {
            let frac_len = rest[1..].iter().take_while(|c| is_digit(c)).count();
            (&rest[1..1 + frac_len], &rest[1 + frac_len..])
        }
        _ => (&rest[..0], rest),
    };
    if int.is_empty() && frac.is_empty() {
        return None;
    }
    Some((int, frac, rest))
}

/// Exponent magnitudes beyond this saturate: they overflow or underflow any mantissa the
/// length limit allows.
const EXP_SATURATION: i64 = 1 << 40;

/// Parses an exponent introduced by `marker` (`e` or `p`), which must make up all of `s`.
/// An empty `s` is exponent 0.
fn parse_exponent(s: &[u8], marker: u8) -> Option<i64> {
    let Some((first, rest)) = s.split_first() else { return Some(0) };
    if first | 0x20 != marker {
        return None;
    }
    let (negative, digits) = match rest.first() {
        Some(b'-') => (true, &rest[1..]),
        Some(b'+') => (false, &rest[1..]),
        _ => (false, rest),
    };
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let magnitude =
        digits.iter().fold(0i64, |acc, c| (acc * 10 + i64::from(c - b'0')).min(EXP_SATURATION));
    Some(if negative { -magnitude } else { magnitude })
}

fn hex_value(c: u8) -> u32 {
    (c as char).to_digit(16).expect("caller checked for a hex digit")
}

/// The magnitude of `hexdigits[.hexdigits][p[+-]digits]` (after `0x`), correctly rounded.
fn parse_hex(s: &[u8]) -> Option<Rounded> {
    let (int, frac, rest) = split_mantissa(s, u8::is_ascii_hexdigit)?;
    let p = parse_exponent(rest, b'p')?;
    // Keep the leading 125+ significant bits exactly; later digits only set `sticky`.
    let (mut n, mut e, mut sticky) = (0u128, 0i64, false);
    for &c in int {
        if n >> 124 == 0 {
            n = n * 16 + u128::from(hex_value(c));
        } else {
            e += 4;
            sticky |= c != b'0';
        }
    }
    for &c in frac {
        if n >> 124 == 0 {
            n = n * 16 + u128::from(hex_value(c));
            e -= 4;
        } else {
            sticky |= c != b'0';
        }
    }
    if n == 0 {
        return Some(EXACT_ZERO);
    }
    Some(round(n, e + p, sticky, X87))
}

/// The magnitude of `digits[.digits][e[+-]digits]`, correctly rounded.
fn parse_decimal(s: &[u8]) -> Option<Rounded> {
    let (int, frac, rest) = split_mantissa(s, u8::is_ascii_digit)?;
    let exp = parse_exponent(rest, b'e')?;
    // The value is D * 10^k, D the significant digits without leading or trailing zeros.
    let total = int.len() + frac.len();
    let digit = |i: usize| if i < int.len() { int[i] } else { frac[i - int.len()] };
    let Some(first) = (0..total).find(|&i| digit(i) != b'0') else { return Some(EXACT_ZERO) };
    let last = (0..total).rev().find(|&i| digit(i) != b'0').expect("a nonzero digit exists");
    let count = (last - first + 1) as i64;
    let k = exp - frac.len() as i64 + (total - 1 - last) as i64;
    // 10^4933 exceeds the largest long double (1.19e4932); 10^-4951 is below half the
    // smallest subnormal (3.65e-4951 / 2).
    if count + k > 4933 {
        return Some(Rounded::Overflow);
    }
    if count + k <= -4951 {
        return Some(Rounded::Zero);
    }
    // Fast path: D < 10^38 fits in u128 (below 2^127).
    if count <= 38 {
        let d = (first..=last)
            .map(digit)
            .filter(u8::is_ascii_digit)
            .fold(0u128, |acc, c| acc * 10 + u128::from(c - b'0'));
        if k >= 0 {
            if let Some(n) = u32::try_from(k)
                .ok()
                .and_then(|k| 10u128.checked_pow(k))
                .and_then(|p| p.checked_mul(d))
            {
                return Some(round(n, 0, false, X87));
            }
        } else if k >= -26 {
            // D / 10^m = (D * 2^s / 5^m) * 2^(-s-m); 5^26 < 2^61 leaves the quotient at least
            // 66 bits, enough to round with the remainder as sticky bit.
            let m = (-k) as u32;
            let s = d.leading_zeros() - 1;
            let num = d << s;
            let den = 5u128.pow(m);
            let (q, r) = (num / den, num % den);
            return Some(round(q, -i64::from(s) - i64::from(m), r != 0, X87));
        }
    }
    // General case: exact big-integer arithmetic.
    let digits: Vec<u8> = (first..=last).map(digit).collect();
    let d = BigUint::parse_bytes(&digits, 10).expect("ASCII digits");
    if k >= 0 {
        let n = d * BigUint::from(10u32).pow(k as u32);
        return Some(round_big(&n, 0, false, X87));
    }
    let m = (-k) as u32;
    let den = BigUint::from(5u32).pow(m);
    let s = (66 + den.bits()).saturating_sub(d.bits());
    let num = d << s;
    let q = &num / &den;
    let exact = (&q * &den) == num;
    Some(round_big(&q, -(s as i64) - i64::from(m), !exact, X87))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ops::{Add, Neg};

    fn p(s: &str) -> LongDouble {
        LongDouble::parse(s.as_bytes()).unwrap_or_else(|| panic!("{s:?} should parse"))
    }

    /// INCRBYFLOAT as Redis computes it; `None` stands for an error reply.
    fn incr(current: &str, increment: &str) -> Option<String> {
        let sum = p_opt(current)?.add(p_opt(increment)?);
        sum.is_finite().then(|| sum.to_redis_string())
    }

    fn p_opt(s: &str) -> Option<LongDouble> {
        LongDouble::parse(s.as_bytes())
    }

    fn human(s: &str) -> String {
        p(s).to_redis_string()
    }

    #[test]
    fn brief_examples() {
        assert_eq!(incr("1.23456789012345678", "1e-5").as_deref(), Some("1.23457789012345678"));
        assert_eq!(incr("0", "1e-20").as_deref(), Some("0"));
        assert_eq!(incr("0", "0x10").as_deref(), Some("16"));
        assert_eq!(incr("10.5", "0.1").as_deref(), Some("10.6"));
        assert_eq!(incr("10.50", "0.1").as_deref(), Some("10.6"));
        assert_eq!(incr("0.1", "0.2").as_deref(), Some("0.3"));
        assert_eq!(incr("3", "-3").as_deref(), Some("0"));
        assert_eq!(incr("5.0e3", "2.0e2").as_deref(), Some("5200"));
        assert!(p_opt("1e400").is_some());
        assert!(p_opt("1e-400").is_some());
        let twice = incr("1.7976931348623157e308", "1.7976931348623157e308").unwrap();
        assert_eq!(twice.len(), 309);
        assert_eq!(twice, "359538626972463139991842093548208868096772893888658356970628841530353257046248792709403737216774171128857586838851041378617416726902272110715794556052955234146997955372576789671236326588091188869859074894581254961338834769297758245552436667197907705664206565009503223382416235440319971852753604933726679072768");
    }

    /// (current, increment, reply) from a real redis-server 7.0.15 on x86_64: INCRBYFLOAT on
    /// a key SET to `current` ("(nil)" = missing key). "ERR" rows were error replies.
    const REDIS_7_0_15: &[(&str, &str, &str)] = &[
        ("1.23456789012345678", "1e-5", "1.23457789012345678"),
        ("(nil)", "1e-20", "0"),
        ("(nil)", "0x10", "16"),
        ("(nil)", "0X1P-2", "0.25"),
        ("(nil)", "-0x1.8p1", "-3"),
        ("1.7976931348623157e308", "1.7976931348623157e308", "359538626972463139991842093548208868096772893888658356970628841530353257046248792709403737216774171128857586838851041378617416726902272110715794556052955234146997955372576789671236326588091188869859074894581254961338834769297758245552436667197907705664206565009503223382416235440319971852753604933726679072768"),
        ("10.5", "0.1", "10.6"),
        ("0.1", "0.2", "0.3"),
        ("3", "-3", "0"),
        ("5.0e3", "2.0e2", "5200"),
        ("1.5", "0.1", "1.6"),
        ("1000.1", "1.1", "1001.19999999999999996"),
        ("(nil)", "1e400", "10000000000000000000281880683947586514586453433629052038625910693539685534008629862039363994848324160522094053927317616200295822777259255734023828976593340661017797447434546173917862448116674971723778943824391593338047470675026246684401359237513603830343735485505244955964979021825038280091068414947402456898653040951017512658092615827588920183472511643316591362664138176309734806343732497430221946880"),
        ("(nil)", "1e-400", "0"),
        ("(nil)", "1e-4940", "0"),
        ("(nil)", "1e5000", "ERR value is not a valid float"),
        ("(nil)", "1e-5000", "ERR value is not a valid float"),
        ("(nil)", "-1e-5000", "ERR value is not a valid float"),
        ("(nil)", "nan", "ERR value is not a valid float"),
        ("(nil)", "inf", "ERR increment would produce NaN or Infinity"),
        ("(nil)", "-infinity", "ERR increment would produce NaN or Infinity"),
        ("inf", "1", "ERR increment would produce NaN or Infinity"),
        ("(nil)", " 1", "ERR value is not a valid float"),
        ("(nil)", "1 ", "ERR value is not a valid float"),
        ("(nil)", "", "ERR value is not a valid float"),
        ("(nil)", "1e", "ERR value is not a valid float"),
        ("(nil)", "0x", "ERR value is not a valid float"),
        ("(nil)", ".5", "0.5"),
        ("(nil)", "5.", "5"),
        ("(nil)", "+.5e1", "5"),
        ("-0", "0", "0"),
        ("-1e-30", "0", "0"),
        ("-1", "0.5", "-0.5"),
        ("0", "0x1p-18", "0.00000381469726562"),
        ("0", "0x3p-18", "0.00001144409179688"),
        ("0", "-0x1p-18", "-0.00000381469726562"),
        ("9223372036854775807", "9223372036854775807", "18446744073709551614"),
        ("18446744073709551615", "1", "18446744073709551616"),
        ("18446744073709551615", "2", "18446744073709551616"),
        ("1.18973149535723176506e4932", "0", "ERR value is not a valid float"),
        ("1e4932", "1e4932", "ERR increment would produce NaN or Infinity"),
        ("0.3333333333333333333333", "0.3333333333333333333333", "0.66666666666666667"),
        ("12345678901234567890", "0.5", "12345678901234567890"),
        ("123456789.123456789", "0.000000001", "123456789.12345678999554366"),
        ("-5.5", "5.5", "0"),
        ("2.5", "-0.00000000000000001", "2.49999999999999999"),
        ("0.00000000000000001", "0.000000000000000005", "0.00000000000000002"),
        ("0.00000000000000001", "0.000000000000000006", "0.00000000000000002"),
        ("1e-17", "-1.5e-17", "-0.00000000000000001"),
        ("3.0000000000000000001", "0", "3"),
        ("99999999999999999999", "1", "100000000000000000000"),
        ("0.1", "-0.1", "0"),
        ("1e20", "1", "100000000000000000000"),
        ("1e19", "0.1", "10000000000000000000"),
        ("abc", "1", "ERR value is not a valid float"),
        ("1.5", "abc", "ERR value is not a valid float"),
        ("0x1p63", "0x1p63", "18446744073709551616"),
        ("1e-4950", "0", "0"),
        ("1e308", "1e308", "199999999999999999993371759311691291321120199694831134415594095989843469737676123744200253843777078640893494450108026446304269499187921167194841628860392837535918200039206381557326219209014213335878306791577877829121087126122536729803237260434173178506889763247582601711514636284849020905456510092687857156096"),
    ];

    #[test]
    fn matches_real_redis() {
        for &(current, increment, expected) in REDIS_7_0_15 {
            let current = if current == "(nil)" { "0" } else { current };
            let got = incr(current, increment);
            if expected.starts_with("ERR") {
                assert_eq!(got, None, "INCRBYFLOAT {current:?} {increment:?}");
            } else {
                assert_eq!(got.as_deref(), Some(expected), "INCRBYFLOAT {current:?} {increment:?}");
            }
        }
    }

    #[test]
    fn known_encodings() {
        // Values checked against gcc's `long double` on x86_64.
        assert_eq!(p("0.1").to_bits(), 0x3ffb_cccc_cccc_cccc_cccd);
        assert_eq!(p("1").to_bits(), 0x3fff_8000_0000_0000_0000);
        assert_eq!(p("-2").to_bits(), 0xc000_8000_0000_0000_0000);
        assert_eq!(p("0.2").to_bits(), 0x3ffc_cccc_cccc_cccc_cccd);
        assert_eq!(p("0.3").to_bits(), 0x3ffd_9999_9999_9999_999a);
        assert_eq!(p("1e4932").to_bits(), 0x7ffe_d72c_b2a9_5c7e_f6cd);
        assert_eq!(p("1e30").to_bits(), 0x4062_c9f2_c9cd_0467_4edf);
        assert_eq!(p("5e-18").to_bits(), 0x3fc5_b877_aa32_36a4_b449);
        assert_eq!(p("1e-4940").to_bits(), 0x0000_0000_0006_6327_8e62);
        assert_eq!(p("123456789012345678901234567890e-10").to_bits(), 0x403e_ab54_a98c_eb1f_0ad2);
        assert_eq!(p("inf").to_bits(), 0x7fff_8000_0000_0000_0000);
        assert_eq!(p("-0").to_bits(), 0x8000_0000_0000_0000_0000);
        // LDBL_MAX, LDBL_MIN, LDBL_TRUE_MIN, via their hex spellings.
        assert_eq!(p("0xf.fffffffffffffffp+16380").to_bits(), 0x7ffe_ffff_ffff_ffff_ffff);
        assert_eq!(p("0x8p-16385").to_bits(), 0x0001_8000_0000_0000_0000);
        assert_eq!(p("0x0.000000000000001p-16385").to_bits(), 0x0000_0000_0000_0000_0001);
        for bits in [
            0x3ffb_cccc_cccc_cccc_cccdu128,
            0x7ffe_ffff_ffff_ffff_ffff,
            0x0000_7fff_ffff_ffff_ffff,
            1,
            0,
        ] {
            assert_eq!(LongDouble::from_bits(bits).to_bits(), bits);
        }
    }

    #[test]
    fn limits_print_exactly() {
        // LDBL_MAX = (2^64 - 1) * 2^16320: 4933 digits.
        let max = p("0xf.fffffffffffffffp+16380");
        let s = max.to_redis_string();
        assert_eq!(s.len(), 4933);
        // Prefix and suffix of (2^64 - 1) * 2^16320, computed independently.
        assert!(
            s.starts_with("118973149535723176502126385303097020516906332229462420044032"),
            "{}",
            &s[..60]
        );
        assert!(s.ends_with("19552086811989770240"), "{}", &s[s.len() - 20..]);
        // LDBL_TRUE_MIN = 2^-16445 prints as 0 with 17 decimals.
        assert_eq!(p("0x0.000000000000001p-16385").to_redis_string(), "0");
        assert_eq!(p("0x0.000000000000001p-16385").format_fixed(17), "0.00000000000000000");
        assert_eq!(p("-0x0.000000000000001p-16385").format_fixed(17), "-0.00000000000000000");
        assert_eq!(p("-0x0.000000000000001p-16385").to_redis_string(), "0");
    }

    #[test]
    fn parse_accepts_what_strtold_accepts() {
        for (s, v) in [
            ("1", 1.0),
            ("+1", 1.0),
            ("-1.5", -1.5),
            (".5", 0.5),
            ("5.", 5.0),
            ("-.5e1", -5.0),
            ("1e3", 1000.0),
            ("1E+3", 1000.0),
            ("1000e-3", 1.0),
            ("00012.50000", 12.5),
            ("0x10", 16.0),
            ("0X1P4", 16.0),
            ("0x.8", 0.5),
            ("0x1.8p1", 3.0),
            ("-0x1p-2", -0.25),
            ("0xAbC", 2748.0),
            ("0x1.p0", 1.0),
            ("inf", f64::INFINITY),
            ("-INF", f64::NEG_INFINITY),
            ("+Infinity", f64::INFINITY),
            ("iNfInItY", f64::INFINITY),
        ] {
            assert_eq!(p(s).to_f64(), v, "{s:?}");
        }
        assert_eq!(p("0x0.p1"), LongDouble::ZERO);
        assert_eq!(p("-0e99999999999999999999"), LongDouble::ZERO.neg());
        assert_eq!(p("0.000e-99999"), LongDouble::ZERO);
        assert_eq!(p("0x0p99999999999"), LongDouble::ZERO);
    }

    #[test]
    fn parse_rejects_what_redis_rejects() {
        for s in [
            "",
            " 1",
            "\t1",
            "\n1",
            "1 ",
            "1\0",
            "abc",
            "+",
            "-",
            ".",
            "-.",
            "e5",
            ".e1",
            "1e",
            "1e+",
            "1e-",
            "1.2.3",
            "1e5e5",
            "0x",
            "0x.",
            "0xg",
            "0x.p1",
            "0xp1",
            "0x1p",
            "0x1p+",
            "0x1.8g",
            "nan",
            "NaN",
            "-nan",
            "nan(123)",
            "nanx",
            "in",
            "infi",
            "infinit",
            "infinityy",
            "inf ",
            "1e5000",
            "-1e5000",
            "1e-5000",
            "-1e-5000",
            "0x1p16384",
            "0x1p-16447",
            "1e99999999999999999999",
            "1e-99999999999999999999",
            "1_000",
            "١",
        ] {
            assert_eq!(p_opt(s), None, "{s:?}");
        }
        // The length limit: 5119 characters pass, 5120 do not.
        let longest = format!("1.{}", "0".repeat(MAX_LONG_DOUBLE_CHARS - 3));
        assert_eq!(longest.len(), MAX_LONG_DOUBLE_CHARS - 1);
        assert_eq!(p(&longest), p("1"));
        let too_long = format!("1.{}", "0".repeat(MAX_LONG_DOUBLE_CHARS - 2));
        assert_eq!(p_opt(&too_long), None);
        // 10^-5117 underflows to zero, which Redis rejects.
        assert_eq!(p_opt(&format!("0.{}1", "0".repeat(MAX_LONG_DOUBLE_CHARS - 4))), None);
    }

    #[test]
    fn range_edges() {
        // LDBL_MAX parses; a hair above its rounding boundary overflows.
        // The overflow threshold is LDBL_MAX + ulp/2 = 1.18973149535723176505351...e4932.
        assert_eq!(p("1.18973149535723176502e4932").to_bits(), 0x7ffe_ffff_ffff_ffff_ffff);
        assert_eq!(p("1.18973149535723176505e4932").to_bits(), 0x7ffe_ffff_ffff_ffff_ffff);
        assert_eq!(p_opt("1.18973149535723176506e4932"), None);
        assert_eq!(p_opt("-1.18973149535723176506e4932"), None);
        assert_eq!(p_opt("1.2e4932"), None);
        assert_eq!(p("0xf.fffffffffffffff7ffp+16380").to_bits(), 0x7ffe_ffff_ffff_ffff_ffff);
        assert_eq!(p_opt("0xf.fffffffffffffff8p+16380"), None); // ties to even overflow
                                                                // Subnormals: nonzero results are accepted even though strtold sets ERANGE.
        assert!(p("1e-4940").is_finite());
        assert_eq!(p_opt("1e-4951"), None); // below half of LDBL_TRUE_MIN (3.645e-4951)
        assert_eq!(p("3.6451995318824746e-4951").to_bits(), 1);
        assert_eq!(p_opt("1.8e-4951"), None); // below half of the smallest subnormal
        assert_eq!(p("1.9e-4951").to_bits(), 1);
        assert_eq!(p("1.83e-4951").to_bits(), 1);
        // Exactly half of LDBL_TRUE_MIN ties to even, i.e. to zero, which Redis rejects.
        assert_eq!(p_opt("0x1p-16446"), None);
        assert_eq!(p("0x3p-16446").to_bits(), 2);
        // Overflow by addition.
        let max = p("0xf.fffffffffffffffp+16380");
        assert!(max.add(max).is_infinite());
        assert_eq!(max.add(p("0x1p16318")), max); // a quarter ulp is lost
        assert!(max.add(p("0x1p16319")).is_infinite()); // half an ulp ties away from the odd max
        assert!(max.neg().add(max.neg()).is_infinite());
        assert_eq!(incr("1e4932", "1e4932"), None);
    }

    #[test]
    fn addition_signs_and_zeros() {
        let zero = LongDouble::ZERO;
        let nzero = zero.neg();
        assert_eq!(zero.add(nzero), zero);
        assert_eq!(nzero.add(zero), zero);
        assert_eq!(nzero.add(nzero), nzero);
        assert_eq!(p("1.5").add(p("-1.5")), zero);
        assert_eq!(p("-1.5").add(p("1.5")), zero);
        assert_eq!(nzero.add(p("-3")), p("-3"));
        assert_eq!(p("-3").add(nzero), p("-3"));
        assert!(p("inf").add(p("-inf")).is_nan());
        assert!(p("inf").add(p("inf")).is_infinite());
        assert_eq!(p("-inf").add(p("1e4000")), LongDouble::NEG_INFINITY);
        assert_eq!(incr("-0", "0").as_deref(), Some("0"));
        assert_eq!(incr("-0", "-0").as_deref(), Some("0"));
        assert_eq!(incr("-1e-30", "0").as_deref(), Some("0"));
        assert_eq!(incr("-1", "0.5").as_deref(), Some("-0.5"));
    }

    #[test]
    fn addition_rounds_to_64_bits() {
        // 1 + 2^-64 is a tie between 1 and 1 + 2^-63: even wins (1).
        assert_eq!(p("1").add(p("0x1p-64")), p("1"));
        // 1 + 2^-64 + tiny rounds up.
        assert_eq!(p("1").add(p("0x1.0000000000000002p-64")).to_bits(), 0x3fff_8000_0000_0000_0001);
        // (1 + 2^-63) + 2^-64 is a tie with an odd lower neighbour: rounds up.
        assert_eq!(
            p("0x1.0000000000000002p0").add(p("0x1p-64")).to_bits(),
            0x3fff_8000_0000_0000_0002
        );
        // 2^64 - 1 + 1 carries into a new binade.
        assert_eq!(p("18446744073709551615").add(p("1")).to_bits(), 0x403f_8000_0000_0000_0000);
        // Subtraction across a binade: 1 - 2^-65 rounds to 1 - 2^-64 (ulp below 1 is 2^-64).
        assert_eq!(p("1").add(p("-0x1p-65")), p("1"));
        assert_eq!(p("1").add(p("-0x1.8p-65")).to_bits(), 0x3ffe_ffff_ffff_ffff_ffff);
        // Far-apart operands: the small one only matters through the sticky bit.
        assert_eq!(p("1").add(p("1e-300")), p("1"));
        assert_eq!(p("1").add(p("-1e-300")), p("1"));
        assert_eq!(p("0x1.0000000000000002p0").add(p("-1e-4000")), p("0x1.0000000000000002p0"));
        // Subnormal sums are exact.
        let tiny = LongDouble::from_bits(1);
        assert_eq!(tiny.add(tiny).to_bits(), 2);
        assert_eq!(
            LongDouble::from_bits(0x7fff_ffff_ffff_ffff).add(tiny).to_bits(),
            0x0001_8000_0000_0000_0000
        );
        // Integers up to 2^64 are exact.
        assert_eq!(
            incr("9223372036854775807", "9223372036854775807").as_deref(),
            Some("18446744073709551614")
        );
        assert_eq!(incr("18446744073709551615", "1").as_deref(), Some("18446744073709551616"));
        assert_eq!(incr("18446744073709551615", "2").as_deref(), Some("18446744073709551616"));
    }

    #[test]
    fn formatting_ties_go_to_even() {
        // 2^-18 = 0.000003814697265625: the 18th decimal is an exact 5.
        assert_eq!(human("0x1p-18"), "0.00000381469726562");
        assert_eq!(human("0x3p-18"), "0.00001144409179688");
        assert_eq!(human("-0x1p-18"), "-0.00000381469726562");
        assert_eq!(p("0.5").format_fixed(0), "0");
        assert_eq!(p("1.5").format_fixed(0), "2");
        assert_eq!(p("2.5").format_fixed(0), "2");
        assert_eq!(p("-2.5").format_fixed(0), "-2");
        assert_eq!(p("0.125").format_fixed(2), "0.12");
        assert_eq!(p("0.375").format_fixed(2), "0.38");
        assert_eq!(p("0.1").format_fixed(20), "0.10000000000000000000");
        assert_eq!(p("0.1").format_fixed(25), "0.1000000000000000000013553");
        assert_eq!(p("0.1").format_fixed(40), "0.1000000000000000000013552527156068805425");
        assert_eq!(p("0.1").format_fixed(45), "0.100000000000000000001355252715606880542509316");
        assert_eq!(p("1e-17").format_fixed(17), "0.00000000000000001");
        assert_eq!(p("5e-18").format_fixed(45), "0.000000000000000004999999999999999999985679431");
        assert_eq!(p("5e-18").format_fixed(17), "0.00000000000000000"); // 5e-18 is slightly below
        assert_eq!(p("6e-18").format_fixed(17), "0.00000000000000001");
        assert_eq!(p("4.9e-18").format_fixed(17), "0.00000000000000000");
        assert_eq!(p("-0").format_fixed(3), "-0.000");
        assert_eq!(p("123").format_fixed(0), "123");
        assert_eq!(p("1e30").format_fixed(1), "1000000000000000000024696061952.0");
        assert_eq!(LongDouble::INFINITY.format_fixed(17), "inf");
        assert_eq!(LongDouble::NAN.format_fixed(17), "-nan");
    }

    #[test]
    fn hex_parsing_is_exact_and_rounded() {
        assert_eq!(p("0x1.fffffffffffffffep0").to_bits(), 0x3fff_ffff_ffff_ffff_ffff);
        // 65 significant bits: a tie, to even.
        assert_eq!(p("0x1.ffffffffffffffff0p0").to_bits(), 0x4000_8000_0000_0000_0000);
        assert_eq!(p("0x1.0000000000000001p0"), p("1"));
        assert_eq!(
            p("0x1.00000000000000010000000000000000000000000000001p0").to_bits(),
            0x3fff_8000_0000_0000_0001
        );
        assert_eq!(p("0x1.00000000000000030p0").to_bits(), 0x3fff_8000_0000_0000_0002);
        assert_eq!(p("0x00000000000000000000000000000000000000001p0"), p("1"));
        assert_eq!(p(&format!("0x1{}p-400", "0".repeat(100))), p("1"));
        assert_eq!(p(&format!("0x.{}1p404", "0".repeat(100))), p("1"));
        assert_eq!(human("0x1p-1"), "0.5");
        assert_eq!(human("0x123456789abcdef"), "81985529216486895");
        assert_eq!(human("-0x1p+63"), "-9223372036854775808");
    }

    #[test]
    fn decimal_parsing_is_correctly_rounded() {
        // Exactly halfway between two long doubles (1 + 2^-64), and just off it.
        assert_eq!(p("1.0000000000000000000542101086242752217003726400434970855712890625"), p("1"));
        assert_eq!(
            p("1.0000000000000000000542101086242752217003726400434970855712890626").to_bits(),
            0x3fff_8000_0000_0000_0001
        );
        assert_eq!(
            p("1.00000000000000000016263032587282567"), // just above 1 + 3 * 2^-64
            p("0x1.0000000000000004p0")
        );
        // Long digit strings far from the fast path.
        let long = format!("0.{}", "3".repeat(3000));
        assert_eq!(p(&long), p("0.333333333333333333333333333333"));
        assert_eq!(human(&format!("1{}e-2000", "0".repeat(2000))), "1");
        assert_eq!(human("123456789012345678901234567890e-10"), "12345678901234567890");
        assert_eq!(p("1e-4950"), p(&format!("0.{}1", "0".repeat(4949))));
        assert_eq!(p("1e4932"), p(&format!("1{}", "0".repeat(4932))));
    }

    #[test]
    fn f64_round_trip() {
        for d in [
            0.1,
            1.5,
            -2.75,
            1e300,
            5e-324,
            2.2250738585072014e-308,
            f64::MAX,
            -0.0,
            0.0,
            123456.789,
        ] {
            let ld = LongDouble::from_f64(d);
            assert_eq!(ld.to_f64().to_bits(), d.to_bits(), "{d}");
        }
        assert_eq!(p("1e400").to_f64(), f64::INFINITY);
        assert_eq!(p("-1e400").to_f64(), f64::NEG_INFINITY);
        assert_eq!(p("1e-400").to_f64(), 0.0);
        assert_eq!(p("0.1").to_f64(), 0.1);
        assert_eq!(p("0.3").to_f64(), 0.3);
        assert_eq!(p("2.4703282292062327e-324").to_f64(), 0.0); // just below 2^-1075
        assert_eq!(p("2.4703282292062328e-324").to_f64(), 5e-324);
        // to_f64 rounds the long double, as a C cast would: 1 + 2^-53 + 2^-70 first becomes
        // 1 + 2^-53, a tie that goes to 1 (parsing straight to f64 would give 1 + 2^-52).
        assert_eq!(p(&format!("0x1.{}8{}4p0", "0".repeat(13), "0".repeat(3))).to_f64(), 1.0);
        assert_eq!(p("1.7976931348623158e308").to_f64(), f64::MAX);
    }

    /// A small deterministic generator (xorshift64*), so no extra crates are needed.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }

        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }

        /// A decimal below 10 in magnitude with 1..=15 significant digits (at most 14 after
        /// the point).
        fn decimal(&mut self) -> String {
            let digits = 1 + self.below(15) as usize;
            let frac = digits - 1 + self.below(2) as usize * usize::from(digits < 15);
            let mut s = String::new();
            if self.below(2) == 0 {
                s.push('-');
            }
            let body: String =
                (0..digits).map(|_| char::from(b'0' + self.below(10) as u8)).collect();
            let (int, fr) = body.split_at(digits - frac);
            s.push_str(if int.is_empty() { "0" } else { int });
            if !fr.is_empty() {
                s.push('.');
                s.push_str(fr);
            }
            s
        }
    }

    /// The decimal value of a literal in units of 10^-15.
    fn exact_units(s: &str) -> i128 {
        let (neg, body) = s.strip_prefix('-').map_or((false, s), |b| (true, b));
        let (int, frac) = body.split_once('.').unwrap_or((body, ""));
        let mut v: i128 = int.parse().unwrap();
        for i in 0..15 {
            v = v * 10 + frac.as_bytes().get(i).map_or(0, |c| i128::from(c - b'0'));
        }
        if neg {
            -v
        } else {
            v
        }
    }

    fn units_to_string(v: i128) -> String {
        let digits = v.unsigned_abs().to_string();
        let padded = format!("{:0>16}", digits);
        let (int, frac) = padded.split_at(padded.len() - 15);
        let mut s = format!("{}{int}.{frac}", if v < 0 { "-" } else { "" });
        s.truncate(s.trim_end_matches('0').trim_end_matches('.').len());
        if s == "-0" {
            s = "0".into();
        }
        s
    }

    #[test]
    fn property_small_decimals_add_exactly() {
        // Below 20 in magnitude, a 64-bit significand is good to ~2e-18, and three roundings
        // (two parses, one addition) stay under the 5e-18 that would change the 17th decimal
        // of a sum with at most 14 decimals: Redis prints the exact decimal sum.
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        for _ in 0..20_000 {
            let (a, b) = (rng.decimal(), rng.decimal());
            let expected = units_to_string(exact_units(&a) + exact_units(&b));
            assert_eq!(incr(&a, &b).as_deref(), Some(expected.as_str()), "{a} + {b}");
        }
    }

    #[test]
    fn property_format_parse_is_stable() {
        // Printing, reparsing and printing again gives the same text (Redis stores the text).
        let mut rng = Rng(42);
        for i in 0..20_000 {
            let v = if i % 2 == 0 {
                p(&format!("{}e{}", rng.decimal(), rng.below(40) as i64 - 20))
            } else {
                // Arbitrary significands with moderate exponents.
                let bits =
                    (u128::from(0x3fc0 + rng.below(0x80)) << 64) | u128::from(rng.next() | 1 << 63);
                LongDouble::from_bits(bits | (u128::from(rng.below(2)) << 79))
            };
            let text = v.to_redis_string();
            let again = p(&text);
            assert_eq!(again.to_redis_string(), text, "{v:?}");
            // The reparsed value is within half a unit of the 17th decimal plus half an ulp.
            let diff = again.add(v.neg()).to_f64().abs();
            let bound = 0.5e-17 + v.to_f64().abs() * 2f64.powi(-64);
            assert!(diff <= bound * (1.0 + 1e-9), "{text}: {diff}");
        }
    }

    #[test]
    fn property_exact_values_print_exactly() {
        // Multiples of 2^-17 below 2^36 have at most 17 decimals: printing is exact and
        // matches f64 formatting of the same (exactly representable) value.
        let mut rng = Rng(7);
        for _ in 0..20_000 {
            let n = rng.below(1 << 53) as i64 * if rng.below(2) == 0 { 1 } else { -1 };
            let d = n as f64 / 131072.0;
            let v = LongDouble::from_f64(d);
            let mut expected = format!("{d:.17}");
            expected.truncate(expected.trim_end_matches('0').trim_end_matches('.').len());
            if expected == "-0" {
                expected = "0".into();
            }
            assert_eq!(v.to_redis_string(), expected);
            assert_eq!(p(&expected), v);
        }
    }

    #[test]
    fn typical_call_is_fast() {
        // Not a benchmark, just a guard against an accidental big-integer fast path.
        let start = std::time::Instant::now();
        let mut text = String::from("0");
        for _ in 0..10_000 {
            text = incr(&text, "0.01").unwrap();
        }
        assert_eq!(text, "100.0000000000000021"); // the real server's answer too
        let per_call = start.elapsed() / 10_000;
        assert!(per_call < std::time::Duration::from_micros(200), "{per_call:?} per call");
    }
}
