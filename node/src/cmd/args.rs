//! Helpers for parsing command arguments with Redis's error texts.

use bytes::Bytes;
use common::fmt::{parse_f64, parse_i64};

use crate::error::CommandError;

/// An integer argument (`ERR value is not an integer or out of range`).
pub fn int(arg: &[u8]) -> Result<i64, CommandError> {
    parse_i64(arg).ok_or(CommandError::NotInteger)
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
pub fn block_timeout(arg: &[u8]) -> Result<Option<std::time::Duration>, CommandError> {
    let secs = parse_f64(arg).ok_or_else(|| CommandError::err("timeout is not a float or out of range"))?;
    if secs < 0.0 {
        return Err(CommandError::err("timeout is negative"));
    }
    if !secs.is_finite() || secs * 1000.0 > i64::MAX as f64 / 2.0 {
        return Err(CommandError::err("timeout is out of range"));
    }
    if secs == 0.0 {
        return Ok(None);
    }
    Ok(Some(std::time::Duration::from_micros((secs * 1_000_000.0) as u64)))
}

/// The lower-case name of the command in `argv`, for error messages.
pub fn name(argv: &[Bytes]) -> String {
    String::from_utf8_lossy(&argv[0]).to_ascii_lowercase()
}

/// A SCAN-family cursor (`ERR invalid cursor`).
pub fn cursor(arg: &[u8]) -> Result<u64, CommandError> {
    std::str::from_utf8(arg)
        .ok()
        .filter(|s| !s.starts_with('+') && !s.starts_with('-'))
        .and_then(|s| s.parse::<u64>().ok())
        .ok_or_else(|| CommandError::err("invalid cursor"))
}
