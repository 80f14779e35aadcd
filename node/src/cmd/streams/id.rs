//! Stream IDs as command arguments, read exactly as `t_stream.c` reads them: `<ms>-<seq>`, `<ms>`
//! alone (the sequence is filled in), `-` and `+` where a range is expected, `<ms>-*` for XADD,
//! and `(<id>` for an exclusive range bound. Each number is read by Redis's `string2ull`, which
//! falls back to C's `strtoull` (so `+5`, ` 5` and `007` are accepted, and `-0` too).

use bytes::Bytes;
use common::resp::Frame;

use crate::db::stream::StreamId;
use crate::error::CommandError;

/// `Invalid stream ID specified as stream command argument`.
pub fn invalid_id() -> CommandError {
    CommandError::err("Invalid stream ID specified as stream command argument")
}

/// An ID as a bulk reply.
pub fn id_frame(id: StreamId) -> Frame {
    Frame::Bulk(id_bytes(id))
}

/// An ID as an argument (propagated commands).
pub fn id_bytes(id: StreamId) -> Bytes {
    Bytes::from(id.to_string())
}

/// C's `isspace`.
fn is_c_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | 0x0B | 0x0C | b'\r')
}

/// Redis's `string2ull`: a strict signed 64-bit integer that is not negative, or else what
/// `strtoull` reads from the whole text.
fn string2ull(s: &[u8]) -> Option<u64> {
    if let Some(v) = common::fmt::parse_i64(s) {
        return u64::try_from(v).ok();
    }
    let start = s.iter().position(|&b| !is_c_space(b)).unwrap_or(s.len());
    let mut rest = &s[start..];
    let negative = match rest.first() {
        Some(b'-') => {
            rest = &rest[1..];
            true
        }
        Some(b'+') => {
            rest = &rest[1..];
            false
        }
        _ => false,
    };
    if rest.is_empty() || !rest.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let mut value: u64 = 0;
    for &d in rest {
        value = value.checked_mul(10)?.checked_add((d - b'0') as u64)?;
    }
    Some(if negative { value.wrapping_neg() } else { value })
}

/// How an ID argument is read.
#[derive(Debug, Clone, Copy)]
pub struct IdRules {
    /// The sequence used when only `<ms>` is given.
    pub missing_seq: u64,
    /// `-` and `+` are refused (everywhere but range bounds).
    pub strict: bool,
    /// `<ms>-*` is accepted (XADD).
    pub auto_seq: bool,
}

impl IdRules {
    /// A strict ID (XDEL, XACK, XGROUP CREATE …).
    pub const STRICT: IdRules = IdRules { missing_seq: 0, strict: true, auto_seq: false };
    /// A range bound that may be `-` or `+`.
    pub fn bound(missing_seq: u64) -> IdRules {
        IdRules { missing_seq, strict: false, auto_seq: false }
    }
}

/// Reads an ID (`streamGenericParseIDOrReply`). The boolean is false for `<ms>-*`.
pub fn parse_id(arg: &[u8], rules: IdRules) -> Result<(StreamId, bool), CommandError> {
    if arg.len() > 127 {
        return Err(invalid_id());
    }
    let arg = crate::dispatch::c_str(arg);
    if rules.strict && (arg == b"-" || arg == b"+") {
        return Err(invalid_id());
    }
    if arg == b"-" {
        return Ok((StreamId::MIN, true));
    }
    if arg == b"+" {
        return Ok((StreamId::MAX, true));
    }
    let (ms, seq) = match arg.iter().position(|&b| b == b'-') {
        Some(dash) => (&arg[..dash], Some(&arg[dash + 1..])),
        None => (arg, None),
    };
    let ms = string2ull(ms).ok_or_else(invalid_id)?;
    match seq {
        Some(b"*") if rules.auto_seq => Ok((StreamId::new(ms, 0), false)),
        Some(seq) => Ok((StreamId::new(ms, string2ull(seq).ok_or_else(invalid_id)?), true)),
        None => Ok((StreamId::new(ms, rules.missing_seq), true)),
    }
}

/// A strict ID.
pub fn strict_id(arg: &[u8]) -> Result<StreamId, CommandError> {
    parse_id(arg, IdRules::STRICT).map(|(id, _)| id)
}

/// A range bound, `(` making it exclusive (`streamParseIntervalIDOrReply`). Returns the ID and
/// whether it is exclusive.
pub fn interval_id(arg: &[u8], missing_seq: u64) -> Result<(StreamId, bool), CommandError> {
    if arg.len() > 1 && arg[0] == b'(' {
        let rules = IdRules { missing_seq, strict: true, auto_seq: false };
        return parse_id(&arg[1..], rules).map(|(id, _)| (id, true));
    }
    parse_id(arg, IdRules::bound(missing_seq)).map(|(id, _)| (id, false))
}

/// The start of a range: inclusive, or the ID after an exclusive one.
pub fn range_start(arg: &[u8]) -> Result<StreamId, CommandError> {
    match interval_id(arg, 0)? {
        (id, false) => Ok(id),
        (id, true) => crate::db::stream::entries::next_id(id)
            .ok_or_else(|| CommandError::err("invalid start ID for the interval")),
    }
}

/// The end of a range: inclusive, or the ID before an exclusive one.
pub fn range_end(arg: &[u8]) -> Result<StreamId, CommandError> {
    match interval_id(arg, u64::MAX)? {
        (id, false) => Ok(id),
        (id, true) => crate::db::stream::entries::prev_id(id)
            .ok_or_else(|| CommandError::err("invalid end ID for the interval")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(s: &str) -> Option<StreamId> {
        parse_id(s.as_bytes(), IdRules::bound(7)).ok().map(|(id, _)| id)
    }

    #[test]
    fn ids_are_read_as_redis_reads_them() {
        assert_eq!(id("1-2"), Some(StreamId::new(1, 2)));
        assert_eq!(id("5"), Some(StreamId::new(5, 7)));
        assert_eq!(id("-"), Some(StreamId::MIN));
        assert_eq!(id("+"), Some(StreamId::MAX));
        assert_eq!(id("18446744073709551615-18446744073709551615"), Some(StreamId::MAX));
        assert_eq!(id("18446744073709551616"), None);
        assert_eq!(id("+5-007"), Some(StreamId::new(5, 7)));
        assert_eq!(id(" 5"), Some(StreamId::new(5, 7)));
        assert_eq!(id("-0"), None); // split at the dash: an empty ms
        assert_eq!(id("1--1"), None);
        assert_eq!(id("1-"), None);
        assert_eq!(id("1-*"), None);
        assert_eq!(id("a"), None);
        assert_eq!(id(""), None);
        let auto = IdRules { missing_seq: 0, strict: true, auto_seq: true };
        assert_eq!(parse_id(b"3-*", auto), Ok((StreamId::new(3, 0), false)));
        assert!(strict_id(b"-").is_err());
        assert_eq!(range_start(b"(1-1"), Ok(StreamId::new(1, 2)));
        assert_eq!(range_end(b"(2-0"), Ok(StreamId::new(1, u64::MAX)));
        assert!(range_end(b"(0-0").is_err());
        assert!(range_start(b"(-").is_err());
    }
}
