//! Reading client requests from a connection's input buffer.
//!
//! Follows Redis's `processInlineBuffer` / `processMultibulkBuffer`: the same limits, the same
//! error texts, and the rule that nothing is allocated for a bulk string before its bytes have
//! arrived (a hostile `$2000000000` header costs nothing until the data is really sent).

use bytes::{Bytes, BytesMut};

use crate::config::split_args;
use crate::fmt::parse_i64;

/// The longest inline request, and the longest multibulk or bulk header line (Redis's
/// `PROTO_INLINE_MAX_SIZE`).
pub const INLINE_MAX_SIZE: usize = 64 * 1024;

/// Limits applied while parsing one client's requests.
#[derive(Debug, Clone, Copy)]
pub struct RequestLimits {
    /// `proto-max-bulk-len`: the largest bulk string accepted.
    pub max_bulk_len: usize,
    /// Whether the client still has to authenticate; unauthenticated clients are limited to
    /// 10 arguments of at most 16 KiB each, as in Redis.
    pub unauthenticated: bool,
}

impl Default for RequestLimits {
    fn default() -> Self {
        RequestLimits { max_bulk_len: 512 * 1024 * 1024, unauthenticated: false }
    }
}

/// A malformed request. The text is Redis's, and the connection must be closed after replying.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("Protocol error: {0}")]
pub struct RequestError(pub String);

impl RequestError {
    fn new(text: &str) -> RequestError {
        RequestError(text.to_string())
    }
}

/// Parses one request from the front of `buf`.
///
/// Returns `Ok(None)` when more bytes are needed, `Ok(Some(args))` after removing one complete
/// request from `buf` (`args` is empty for an empty inline line or `*0`, which Redis ignores),
/// and `Err` for a protocol error.
pub fn parse_request(
    buf: &mut BytesMut,
    limits: RequestLimits,
) -> Result<Option<Vec<Bytes>>, RequestError> {
    let mut args = Vec::new();
    Ok(parse_request_into(buf, limits, &mut args)?.then_some(args))
}

/// [`parse_request`] into a caller's vector, so a connection reuses one allocation for every
/// request: `Ok(true)` after removing one complete request from `buf` and replacing the
/// contents of `args` with its arguments, `Ok(false)` (with `args` untouched) when more bytes
/// are needed.
pub fn parse_request_into(
    buf: &mut BytesMut,
    limits: RequestLimits,
    args: &mut Vec<Bytes>,
) -> Result<bool, RequestError> {
    match buf.first() {
        None => Ok(false),
        Some(b'*') => parse_multibulk(buf, limits, args),
        Some(_) => parse_inline(buf, args),
    }
}

fn parse_inline(buf: &mut BytesMut, args: &mut Vec<Bytes>) -> Result<bool, RequestError> {
    let Some(newline) = memchr(b'\n', buf) else {
        if buf.len() > INLINE_MAX_SIZE {
            return Err(RequestError::new("too big inline request"));
        }
        return Ok(false);
    };
    let line = buf.split_to(newline + 1);
    let mut text = &line[..newline];
    if text.last() == Some(&b'\r') {
        text = &text[..text.len() - 1];
    }
    let words = split_args(text).map_err(|_| RequestError::new("unbalanced quotes in request"))?;
    args.clear();
    args.extend(words.into_iter().map(Bytes::from));
    Ok(true)
}

fn parse_multibulk(
    buf: &mut BytesMut,
    limits: RequestLimits,
    args: &mut Vec<Bytes>,
) -> Result<bool, RequestError> {
    let Some((count, mut pos)) = header_line(buf, 0, "too big mbulk count string")? else {
        return Ok(false);
    };
    let count = match parse_i64(count) {
        Some(n) if n <= i32::MAX as i64 => n,
        _ => return Err(RequestError::new("invalid multibulk length")),
    };
    if count > 10 && limits.unauthenticated {
        return Err(RequestError::new("unauthenticated multibulk length"));
    }
    if count <= 0 {
        let _ = buf.split_to(pos);
        args.clear();
        return Ok(true);
    }
    // First pass: find every argument's span without copying; bail out early when incomplete.
    // Most commands have a handful of arguments: keep their spans on the stack.
    let mut spans: smallvec::SmallVec<[(usize, usize); 8]> = smallvec::SmallVec::new();
    for _ in 0..count {
        let Some(&tag) = buf.get(pos) else { return Ok(false) };
        if tag != b'$' {
            return Err(RequestError(format!("expected '$', got '{}'", tag as char)));
        }
        let Some((len, after)) = header_line(buf, pos, "too big bulk count string")? else {
            return Ok(false);
        };
        let len = match parse_i64(len) {
            Some(n) if n >= 0 && (n as u64) <= limits.max_bulk_len as u64 => n as usize,
            _ => return Err(RequestError::new("invalid bulk length")),
        };
        if len > 16384 && limits.unauthenticated {
            return Err(RequestError::new("unauthenticated bulk length"));
        }
        if buf.len() < after + len + 2 {
            return Ok(false);
        }
        spans.push((after, after + len));
        pos = after + len + 2;
    }
    let frame = buf.split_to(pos).freeze();
    args.clear();
    args.reserve(spans.len());
    for &(start, end) in &spans {
        args.push(frame.slice(start..end));
    }
    Ok(true)
}

/// Reads the header line starting at `start` (the tag byte is at `start`). Returns its body
/// (after the tag, before `\r\n`) and the position after the line, or `None` if incomplete.
fn header_line<'a>(
    buf: &'a BytesMut,
    start: usize,
    too_big: &str,
) -> Result<Option<(&'a [u8], usize)>, RequestError> {
    let rest = &buf[start..];
    match memchr(b'\r', rest) {
        None if rest.len() > INLINE_MAX_SIZE => Err(RequestError::new(too_big)),
        None => Ok(None),
        Some(cr) if cr + 1 >= rest.len() => Ok(None),
        Some(cr) => Ok(Some((&rest[1..cr], start + cr + 2))),
    }
}

fn memchr(needle: u8, haystack: &[u8]) -> Option<usize> {
    haystack.iter().position(|&c| c == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(input: &[u8]) -> Result<Option<Vec<Bytes>>, RequestError> {
        let mut buf = BytesMut::from(input);
        parse_request(&mut buf, RequestLimits::default())
    }

    fn args(v: &[&str]) -> Option<Vec<Bytes>> {
        Some(v.iter().map(|s| Bytes::copy_from_slice(s.as_bytes())).collect())
    }

    #[test]
    fn multibulk_and_inline() {
        assert_eq!(parse(b"*2\r\n$3\r\nGET\r\n$1\r\na\r\n").unwrap(), args(&["GET", "a"]));
        assert_eq!(parse(b"set a \"b c\"\r\n").unwrap(), args(&["set", "a", "b c"]));
        assert_eq!(parse(b"ping\n").unwrap(), args(&["ping"]));
        assert_eq!(parse(b"\r\n").unwrap(), args(&[]));
        assert_eq!(parse(b"*0\r\n").unwrap(), args(&[]));
    }

    #[test]
    fn incomplete_input_waits() {
        for cut in 1..20 {
            let full = b"*2\r\n$3\r\nGET\r\n$1\r\na\r\n";
            assert_eq!(parse(&full[..cut]).unwrap(), None, "cut at {cut}");
        }
        assert_eq!(parse(b"ping").unwrap(), None);
    }

    #[test]
    fn errors_use_redis_wording() {
        let err = |i: &[u8]| parse(i).unwrap_err().to_string();
        assert_eq!(err(b"*x\r\n"), "Protocol error: invalid multibulk length");
        assert_eq!(err(b"*1\r\n+a\r\n"), "Protocol error: expected '$', got '+'");
        assert_eq!(err(b"*1\r\n$-5\r\n"), "Protocol error: invalid bulk length");
        assert_eq!(err(b"set \"a\r\n"), "Protocol error: unbalanced quotes in request");
        assert_eq!(err(&vec![b'a'; INLINE_MAX_SIZE + 1]), "Protocol error: too big inline request");
        let mut huge = b"*".to_vec();
        huge.extend(vec![b'1'; INLINE_MAX_SIZE + 1]);
        assert_eq!(err(&huge), "Protocol error: too big mbulk count string");
    }

    #[test]
    fn unauthenticated_limits() {
        let mut buf = BytesMut::from(&b"*11\r\n"[..]);
        let limits = RequestLimits { unauthenticated: true, ..Default::default() };
        assert!(parse_request(&mut buf, limits).is_err());
    }

    #[test]
    fn huge_bulk_header_allocates_nothing_up_front() {
        let mut buf = BytesMut::from(&b"*1\r\n$536870912\r\nabc"[..]);
        assert_eq!(parse_request(&mut buf, RequestLimits::default()).unwrap(), None);
        let too_big = &b"*1\r\n$536870913\r\n"[..];
        assert!(parse(too_big).is_err());
    }

    #[test]
    fn parsing_into_a_vector_replaces_its_contents_only_for_a_whole_request() {
        let mut buf = BytesMut::from(&b"*2\r\n$3\r\nGET\r\n$1\r\na\r\nping\r\n*1\r\n$4"[..]);
        let l = RequestLimits::default();
        let mut argv = vec![Bytes::from_static(b"stale")];
        assert!(parse_request_into(&mut buf, l, &mut argv).unwrap());
        assert_eq!(Some(argv.clone()), args(&["GET", "a"]));
        assert!(parse_request_into(&mut buf, l, &mut argv).unwrap());
        assert_eq!(Some(argv.clone()), args(&["ping"]));
        assert!(!parse_request_into(&mut buf, l, &mut argv).unwrap());
        assert_eq!(Some(argv), args(&["ping"]), "an incomplete request must leave argv alone");
    }

    #[test]
    fn pipelined_requests_parse_one_at_a_time() {
        let mut buf = BytesMut::from(&b"PING\r\n*1\r\n$4\r\nPING\r\n"[..]);
        let l = RequestLimits::default();
        assert_eq!(parse_request(&mut buf, l).unwrap(), args(&["PING"]));
        assert_eq!(parse_request(&mut buf, l).unwrap(), args(&["PING"]));
        assert!(buf.is_empty());
    }
}
