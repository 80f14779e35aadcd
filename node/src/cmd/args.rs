//! Helpers for parsing command arguments with Redis's error texts.

use bytes::Bytes;
use common::fmt::{parse_f64, parse_i64};

use crate::error::CommandError;

/// An integer argument (`ERR value is not an integer or out of range`).
pub fn int(arg: &[u8]) -> Result<i64, CommandError> {
    parse_i64(arg).ok_or(CommandError::NotInteger)
}

/// An argument Redis reads as a C `int` (a database index): not an integer, or outside the
/// 32-bit range, each with Redis's words.
pub fn int32(arg: &[u8]) -> Result<i64, CommandError> {
    let n = int(arg)?;
    if i32::try_from(n).is_err() {
        return Err(CommandError::err(
            "value is out of range, value must between -2147483648 and 2147483647",
        ));
    }
    Ok(n)
}

/// A non-negative integer argument with a custom error.
pub fn int_with(arg: &[u8], error: CommandError) -> Result<i64, CommandError> {
    parse_i64(arg).ok_or(error)
}

/// A float argument (`ERR value is not a valid float`).
pub fn float(arg: &[u8]) -> Result<f64, CommandError> {
    parse_f64(arg).ok_or(CommandError::NotFloat)
}

/// True if `arg` equals `word`, ignoring ASCII case.
pub fn is(arg: &[u8], word: &str) -> bool {
    arg.eq_ignore_ascii_case(word.as_bytes())
}

/// A timeout in seconds as BLPOP & co. take it (a float), as a duration (`None` = forever).
/// Like Redis, the seconds are turned into whole milliseconds first, so values below 1 ms
/// mean "forever" and an infinite or overflowing value counts as negative.
pub fn block_timeout(arg: &[u8]) -> Result<Option<std::time::Duration>, CommandError> {
    let secs = common::fmt::parse_f64(arg)
        .or_else(|| common::fmt::parse_i64(arg).map(|n| n as f64))
        .ok_or_else(|| CommandError::err("timeout is not a float or out of range"))?;
    let ms = secs * 1000.0;
    if !ms.is_finite() || ms <= -1.0 || ms > i64::MAX as f64 {
        return Err(CommandError::err("timeout is negative"));
    }
    let ms = ms.trunc() as i64;
    if ms <= 0 {
        return Ok(None);
    }
    Ok(Some(std::time::Duration::from_millis(ms as u64)))
}

/// The lower-case name of the command in `argv`, for error messages.
pub fn name(argv: &[Bytes]) -> String {
    String::from_utf8_lossy(&argv[0]).to_ascii_lowercase()
}

/// A SCAN-family cursor, read as C's `strtoul` reads it (as Redis does): an optional `+` or `-`
/// (a negative value wraps around modulo 2^64), decimal digits, nothing else
/// (`ERR invalid cursor`). The empty string is cursor 0: `strtoul` reads no digits and stops at
/// its end, which Redis accepts.
pub fn cursor(arg: &[u8]) -> Result<u64, CommandError> {
    let invalid = || CommandError::err("invalid cursor");
    if arg.is_empty() {
        return Ok(0);
    }
    let (negative, digits) = match arg.first() {
        Some(b'-') => (true, &arg[1..]),
        Some(b'+') => (false, &arg[1..]),
        _ => (false, arg),
    };
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return Err(invalid());
    }
    let value: u64 =
        std::str::from_utf8(digits).ok().and_then(|d| d.parse().ok()).ok_or_else(invalid)?;
    Ok(if negative { value.wrapping_neg() } else { value })
}
