//! Decoding reply frames (RESP2 and RESP3), for the replica side of a link and for tests.

use bytes::Bytes;

use super::Frame;
use crate::fmt::{parse_f64, parse_i64};

/// Why a reply could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The bytes are not RESP.
    #[error("Protocol error: {0}")]
    Invalid(String),
}

/// Aggregates nested deeper than this are refused, so a hostile peer cannot exhaust the stack.
const MAX_DEPTH: usize = 64;

/// Decodes one frame from the front of `buf`. Returns the frame and the number of bytes it used,
/// or `None` if `buf` does not yet hold a whole frame.
pub fn decode(buf: &[u8]) -> Result<Option<(Frame, usize)>, DecodeError> {
    let mut pos = 0;
    match frame(buf, &mut pos, 0)? {
        Some(f) => Ok(Some((f, pos))),
        None => Ok(None),
    }
}

fn invalid(text: impl Into<String>) -> DecodeError {
    DecodeError::Invalid(text.into())
}

fn line<'a>(buf: &'a [u8], pos: &mut usize) -> Option<&'a [u8]> {
    let rest = &buf[*pos..];
    let cr = rest.windows(2).position(|w| w == b"\r\n")?;
    *pos += cr + 2;
    Some(&rest[..cr])
}

fn int(text: &[u8]) -> Result<i64, DecodeError> {
    parse_i64(text)
        .ok_or_else(|| invalid(format!("bad integer {:?}", String::from_utf8_lossy(text))))
}

fn frame(buf: &[u8], pos: &mut usize, depth: usize) -> Result<Option<Frame>, DecodeError> {
    if depth > MAX_DEPTH {
        return Err(invalid("nesting too deep"));
    }
    let Some(&tag) = buf.get(*pos) else { return Ok(None) };
    *pos += 1;
    let Some(body) = line(buf, pos) else { return Ok(None) };
    let frame = match tag {
        b'+' => Frame::Simple(Bytes::copy_from_slice(body)),
        b'-' => Frame::Error(Bytes::copy_from_slice(body)),
        b':' => Frame::Integer(int(body)?),
        b'_' => Frame::Null,
        b'#' => match body {
            b"t" => Frame::Boolean(true),
            b"f" => Frame::Boolean(false),
            _ => return Err(invalid("bad boolean")),
        },
        b',' => Frame::Double(parse_f64(body).ok_or_else(|| invalid("bad double"))?),
        b'(' => Frame::Simple(Bytes::copy_from_slice(body)),
        b'$' | b'=' | b'!' => {
            let len = int(body)?;
            if len < 0 {
                return Ok(Some(Frame::Null));
            }
            let len = len as usize;
            if buf.len() < *pos + len + 2 {
                return Ok(None);
            }
            let data = &buf[*pos..*pos + len];
            if &buf[*pos + len..*pos + len + 2] != b"\r\n" {
                return Err(invalid("bulk string not terminated by CRLF"));
            }
            *pos += len + 2;
            match tag {
                b'=' if len >= 4 => Frame::Bulk(Bytes::copy_from_slice(&data[4..])),
                b'!' => Frame::Error(Bytes::copy_from_slice(data)),
                _ => Frame::Bulk(Bytes::copy_from_slice(data)),
            }
        }
        b'*' | b'~' | b'>' | b'%' | b'|' => {
            let n = int(body)?;
            if n < 0 {
                return Ok(Some(Frame::NullArray));
            }
            let pairs = matches!(tag, b'%' | b'|');
            let count = if pairs { n as usize * 2 } else { n as usize };
            // Every element takes at least 3 bytes; refuse counts the buffer cannot hold yet
            // before allocating for them.
            if count > (buf.len() - *pos) / 3 + 1 {
                return Ok(None);
            }
            let mut items = Vec::with_capacity(count);
            for _ in 0..count {
                match frame(buf, pos, depth + 1)? {
                    Some(f) => items.push(f),
                    None => return Ok(None),
                }
            }
            match tag {
                b'*' => Frame::Array(items),
                b'~' => Frame::Set(items),
                b'>' => Frame::Push(items),
                _ => {
                    let mut pairs = Vec::with_capacity(items.len() / 2);
                    let mut it = items.into_iter();
                    while let (Some(k), Some(v)) = (it.next(), it.next()) {
                        pairs.push((k, v));
                    }
                    if tag == b'|' {
                        // An attribute precedes the real reply; skip it.
                        return frame(buf, pos, depth + 1);
                    }
                    Frame::Map(pairs)
                }
            }
        }
        other => return Err(invalid(format!("unknown type byte {:?}", other as char))),
    };
    Ok(Some(frame))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resp::Protocol;

    #[test]
    fn round_trips_resp3() {
        let f = Frame::Array(vec![
            Frame::Integer(-3),
            Frame::Bulk(Bytes::from_static(b"x")),
            Frame::Map(vec![(Frame::Simple(Bytes::from_static(b"k")), Frame::Double(2.5))]),
            Frame::Null,
            Frame::Boolean(true),
        ]);
        let bytes = f.to_bytes(Protocol::Resp3);
        assert_eq!(decode(&bytes).unwrap(), Some((f, bytes.len())));
    }

    #[test]
    fn incomplete_and_invalid() {
        assert_eq!(decode(b"$5\r\nab").unwrap(), None);
        assert_eq!(decode(b"*2000000000\r\n").unwrap(), None);
        assert!(decode(b"?\r\n").is_err());
    }
}
