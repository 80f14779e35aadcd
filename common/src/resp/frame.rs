//! Reply frames and their encoding.

use bytes::{BufMut, Bytes};

use crate::fmt::format_double;

/// The protocol a connection speaks, chosen by `HELLO 2|3`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Protocol {
    /// RESP2, the default.
    #[default]
    Resp2,
    /// RESP3, after `HELLO 3`.
    Resp3,
}

/// A reply value. Handlers build frames; the connection encodes them for the client's protocol.
#[derive(Debug, Clone, PartialEq)]
pub enum Frame {
    /// `+text` — a status reply such as `OK` or `PONG`.
    Simple(Bytes),
    /// `-TEXT` — an error reply; the text includes its prefix word (`ERR`, `WRONGTYPE` …).
    Error(Bytes),
    /// `:n`
    Integer(i64),
    /// `$len\r\nbytes`
    Bulk(Bytes),
    /// A missing value: RESP2 `$-1`, RESP3 `_`.
    Null,
    /// A missing aggregate: RESP2 `*-1`, RESP3 `_`.
    NullArray,
    /// `*n` followed by n frames.
    Array(Vec<Frame>),
    /// RESP3 `%n`; in RESP2 a flat array of 2n frames.
    Map(Vec<(Frame, Frame)>),
    /// RESP3 `~n`; in RESP2 an array.
    Set(Vec<Frame>),
    /// RESP3 `,d`; in RESP2 a bulk string formatted as Redis 7.0 does (`%.17g`).
    Double(f64),
    /// RESP3 `#t`/`#f`; in RESP2 the integer 1 or 0.
    Boolean(bool),
    /// RESP3 `(digits`; in RESP2 a bulk string of the digits.
    BigNumber(Bytes),
    /// RESP3 `=len\r\nfmt:text`; in RESP2 a bulk string of the text.
    Verbatim(&'static str, Bytes),
    /// RESP3 `>n` out-of-band data (pub/sub messages); in RESP2 an array.
    Push(Vec<Frame>),
    /// Bytes already encoded for the connection's protocol (e.g. replies collected by EXEC).
    Raw(Bytes),
}

impl Frame {
    /// `+OK`
    pub fn ok() -> Frame {
        Frame::Simple(Bytes::from_static(b"OK"))
    }

    /// A status reply from a static string.
    pub fn simple(text: &'static str) -> Frame {
        Frame::Simple(Bytes::from_static(text.as_bytes()))
    }

    /// An error reply. The text must start with its prefix word, e.g. `ERR syntax error`.
    pub fn error(text: impl Into<String>) -> Frame {
        Frame::Error(Bytes::from(text.into()))
    }

    /// A bulk string copied from a byte slice.
    pub fn bulk(bytes: &[u8]) -> Frame {
        Frame::Bulk(Bytes::copy_from_slice(bytes))
    }

    /// A bulk string from a static string.
    pub fn bulk_static(text: &'static str) -> Frame {
        Frame::Bulk(Bytes::from_static(text.as_bytes()))
    }

    /// A bulk string holding the decimal form of an integer (Sentinel replies use these).
    pub fn bulk_int(n: i64) -> Frame {
        Frame::Bulk(Bytes::from(itoa::Buffer::new().format(n).to_owned()))
    }

    /// An array of bulk strings, encoded at once into one buffer. Arrays of bulk strings look the
    /// same in RESP2 and RESP3, so this saves one allocation per element on hot replies
    /// (LRANGE, MGET-like results) without depending on the client's protocol.
    pub fn bulk_array<'a>(items: impl IntoIterator<Item = &'a [u8]>) -> Frame {
        let items: Vec<&[u8]> = items.into_iter().collect();
        let size: usize = items.iter().map(|i| i.len() + 16).sum::<usize>() + 16;
        let mut out = Vec::with_capacity(size);
        header(&mut out, b'*', items.len() as i64);
        for item in items {
            bulk(&mut out, item);
        }
        Frame::Raw(Bytes::from(out))
    }

    /// True for error replies.
    pub fn is_error(&self) -> bool {
        matches!(self, Frame::Error(_))
    }

    /// Appends the encoding of this frame for `proto` to `out`.
    pub fn encode(&self, proto: Protocol, out: &mut impl BufMut) {
        let resp3 = proto == Protocol::Resp3;
        match self {
            Frame::Simple(s) => line(out, b'+', s),
            Frame::Error(s) if s.iter().any(|c| *c == b'\r' || *c == b'\n') => {
                // A newline inside an error line would corrupt the stream; Redis replaces them.
                let clean: Vec<u8> =
                    s.iter().map(|&c| if c == b'\r' || c == b'\n' { b' ' } else { c }).collect();
                line(out, b'-', &clean)
            }
            Frame::Error(s) => line(out, b'-', s),
            Frame::Integer(n) => header(out, b':', *n),
            Frame::Bulk(b) => bulk(out, b),
            Frame::Null if resp3 => out.put_slice(b"_\r\n"),
            Frame::Null => out.put_slice(b"$-1\r\n"),
            Frame::NullArray if resp3 => out.put_slice(b"_\r\n"),
            Frame::NullArray => out.put_slice(b"*-1\r\n"),
            Frame::Array(items) => aggregate(out, b'*', items, proto),
            Frame::Set(items) => aggregate(out, if resp3 { b'~' } else { b'*' }, items, proto),
            Frame::Push(items) => aggregate(out, if resp3 { b'>' } else { b'*' }, items, proto),
            Frame::Map(pairs) => {
                if resp3 {
                    header(out, b'%', pairs.len() as i64);
                } else {
                    header(out, b'*', 2 * pairs.len() as i64);
                }
                for (k, v) in pairs {
                    k.encode(proto, out);
                    v.encode(proto, out);
                }
            }
            Frame::Double(d) => {
                let text = format_double(*d);
                if resp3 {
                    line(out, b',', text.as_bytes());
                } else {
                    bulk(out, text.as_bytes());
                }
            }
            Frame::Boolean(b) if resp3 => out.put_slice(if *b { b"#t\r\n" } else { b"#f\r\n" }),
            Frame::Boolean(b) => header(out, b':', *b as i64),
            Frame::BigNumber(digits) if resp3 => line(out, b'(', digits),
            Frame::BigNumber(digits) => bulk(out, digits),
            Frame::Verbatim(format, text) if resp3 => {
                header(out, b'=', (text.len() + 4) as i64);
                out.put_slice(format.as_bytes());
                out.put_u8(b':');
                out.put_slice(text);
                out.put_slice(b"\r\n");
            }
            Frame::Verbatim(_, text) => bulk(out, text),
            Frame::Raw(bytes) => out.put_slice(bytes),
        }
    }

    /// The encoding of this frame as a new buffer.
    pub fn to_bytes(&self, proto: Protocol) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode(proto, &mut out);
        out
    }
}

fn line(out: &mut impl BufMut, tag: u8, text: &[u8]) {
    out.put_u8(tag);
    out.put_slice(text);
    out.put_slice(b"\r\n");
}

fn header(out: &mut impl BufMut, tag: u8, n: i64) {
    out.put_u8(tag);
    out.put_slice(itoa::Buffer::new().format(n).as_bytes());
    out.put_slice(b"\r\n");
}

fn bulk(out: &mut impl BufMut, bytes: &[u8]) {
    header(out, b'$', bytes.len() as i64);
    out.put_slice(bytes);
    out.put_slice(b"\r\n");
}

fn aggregate(out: &mut impl BufMut, tag: u8, items: &[Frame], proto: Protocol) {
    header(out, tag, items.len() as i64);
    for item in items {
        item.encode(proto, out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc(f: Frame, p: Protocol) -> String {
        String::from_utf8(f.to_bytes(p)).unwrap()
    }

    #[test]
    fn resp2_downgrades_resp3_types() {
        let map = Frame::Map(vec![(Frame::bulk(b"a"), Frame::Integer(1))]);
        assert_eq!(enc(map.clone(), Protocol::Resp2), "*2\r\n$1\r\na\r\n:1\r\n");
        assert_eq!(enc(map, Protocol::Resp3), "%1\r\n$1\r\na\r\n:1\r\n");
        assert_eq!(enc(Frame::Double(1.5), Protocol::Resp2), "$3\r\n1.5\r\n");
        assert_eq!(enc(Frame::Double(1.5), Protocol::Resp3), ",1.5\r\n");
        assert_eq!(enc(Frame::Boolean(true), Protocol::Resp2), ":1\r\n");
        assert_eq!(enc(Frame::Null, Protocol::Resp2), "$-1\r\n");
        assert_eq!(enc(Frame::NullArray, Protocol::Resp2), "*-1\r\n");
        assert_eq!(enc(Frame::NullArray, Protocol::Resp3), "_\r\n");
        let v = Frame::Verbatim("txt", Bytes::from_static(b"hi"));
        assert_eq!(enc(v.clone(), Protocol::Resp3), "=6\r\ntxt:hi\r\n");
        assert_eq!(enc(v, Protocol::Resp2), "$2\r\nhi\r\n");
    }
}
