//! The byte source of the loader: a buffered reader that knows its offset, folds every byte it
//! consumes into the CRC-64, and reads RDB lengths and strings.
//!
//! # Allocation bounds
//!
//! Lengths come from the file and may be hostile (2^60). When the total input size is known,
//! a length larger than what is left is an error before anything is allocated. When it is not
//! (a socket), a string is read in chunks of at most [`CHUNK`] bytes and its buffer only grows
//! as data actually arrives, so memory stays proportional to the input consumed. LZF strings
//! declare their decompressed size; it is refused unless the compressed bytes (already read)
//! could produce it ([`lzf::MAX_EXPANSION`]).

use std::io::{ErrorKind, Read};

use super::crc64::crc64;
use super::lzf;
use super::RdbError;

/// Buffer size, and the largest piece a string buffer grows by at once on unknown-size input.
pub const CHUNK: usize = 64 * 1024;

/// A length, or the marker of a specially encoded string (`11xxxxxx`).
pub enum Len {
    /// A plain length.
    Plain(u64),
    /// A string encoding: 0 int8, 1 int16, 2 int32, 3 LZF.
    Encoded(u8),
}

/// Buffered input with offset tracking and a running CRC-64.
pub struct Input<R> {
    src: R,
    buf: Vec<u8>,
    pos: usize,
    end: usize,
    /// File offset of `buf[0]`.
    base: u64,
    /// Total size, when known.
    total: Option<u64>,
    crc: u64,
    /// `buf[crc_from..pos]` is consumed but not yet folded into `crc`.
    crc_from: usize,
    /// Scratch for compressed LZF data.
    compressed: Vec<u8>,
}

impl<R: Read> Input<R> {
    /// Reads `src`, which holds `total` bytes if known.
    pub fn new(src: R, total: Option<u64>) -> Input<R> {
        let size = total.map_or(CHUNK, |t| (t.min(CHUNK as u64) as usize).max(16));
        Input {
            src,
            buf: vec![0; size],
            pos: 0,
            end: 0,
            base: 0,
            total,
            crc: 0,
            crc_from: 0,
            compressed: Vec::new(),
        }
    }

    /// The offset of the next byte.
    pub fn offset(&self) -> u64 {
        self.base + self.pos as u64
    }

    /// The bytes left, when the total is known.
    pub fn remaining(&self) -> Option<u64> {
        self.total.map(|t| t.saturating_sub(self.offset()))
    }

    /// Bytes read from the source beyond the current position (read-ahead).
    pub fn buffered(&self) -> &[u8] {
        &self.buf[self.pos..self.end]
    }

    /// A corruption error at the current offset.
    pub fn corrupt(&self, reason: impl Into<String>) -> RdbError {
        RdbError::Corrupt { offset: self.offset(), reason: reason.into() }
    }

    /// The CRC-64 of every byte consumed so far.
    pub fn crc(&mut self) -> u64 {
        self.crc = crc64(self.crc, &self.buf[self.crc_from..self.pos]);
        self.crc_from = self.pos;
        self.crc
    }

    /// Makes at least `n` (≤ buffer size) bytes available.
    #[cold]
    fn fill(&mut self, n: usize) -> Result<(), RdbError> {
        debug_assert!(n <= self.buf.len());
        self.crc = crc64(self.crc, &self.buf[self.crc_from..self.pos]);
        self.buf.copy_within(self.pos..self.end, 0);
        self.base += self.pos as u64;
        self.end -= self.pos;
        self.pos = 0;
        self.crc_from = 0;
        while self.end < n {
            // Never read past a known total: what follows the RDB belongs to the caller.
            let room = self.buf.len() - self.end;
            let room = match self.total {
                Some(t) => {
                    (t.saturating_sub(self.base + self.end as u64)).min(room as u64) as usize
                }
                None => room,
            };
            if room == 0 {
                return Err(RdbError::Truncated { offset: self.base + self.end as u64 });
            }
            match self.src.read(&mut self.buf[self.end..self.end + room]) {
                Ok(0) => return Err(RdbError::Truncated { offset: self.base + self.end as u64 }),
                Ok(k) => self.end += k,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => {
                    return Err(RdbError::Io { offset: self.base + self.end as u64, source: e })
                }
            }
        }
        Ok(())
    }

    /// The next `n` bytes (`n` at most 16).
    #[inline]
    pub fn take(&mut self, n: usize) -> Result<&[u8], RdbError> {
        if self.end - self.pos < n {
            self.fill(n)?;
        }
        let at = self.pos;
        self.pos += n;
        Ok(&self.buf[at..at + n])
    }

    /// One byte.
    #[inline]
    pub fn u8(&mut self) -> Result<u8, RdbError> {
        if self.pos == self.end {
            self.fill(1)?;
        }
        self.pos += 1;
        Ok(self.buf[self.pos - 1])
    }

    /// `N` bytes as an array.
    pub fn array<const N: usize>(&mut self) -> Result<[u8; N], RdbError> {
        Ok(self.take(N)?.try_into().expect("take returns N bytes"))
    }

    /// Refuses a count of `n` items of at least `min_size` bytes each if the input cannot hold
    /// them: the input ends before them, which is reported as the end of file it is (a torn
    /// file and a hostile length look the same from here). A no-op when the size is unknown.
    pub fn check_room(&self, n: u64, min_size: u64) -> Result<(), RdbError> {
        if let Some(total) = self.total {
            if n.saturating_mul(min_size) > total.saturating_sub(self.offset()) {
                return Err(RdbError::Truncated { offset: total });
            }
        }
        Ok(())
    }

    /// How many items to reserve room for up front: never more than the input could hold, and
    /// at most a few thousand (a collection grows as its elements actually arrive).
    pub fn capacity_for(&self, n: u64) -> usize {
        let left = self.total.map_or(u64::MAX, |t| t.saturating_sub(self.offset()));
        n.min(left).min(4096) as usize
    }

    /// Appends the next `n` bytes to `out`.
    pub fn read_into(&mut self, n: u64, out: &mut Vec<u8>) -> Result<(), RdbError> {
        self.check_room(n, 1)?;
        let n = usize::try_from(n).map_err(|_| self.corrupt("string length overflows"))?;
        if self.end - self.pos >= n {
            out.extend_from_slice(&self.buf[self.pos..self.pos + n]);
            self.pos += n;
            return Ok(());
        }
        if self.total.is_some() {
            out.reserve(n);
        }
        let mut left = n;
        while left > 0 {
            if self.pos == self.end {
                self.fill(1)?;
            }
            let k = left.min(self.end - self.pos);
            out.extend_from_slice(&self.buf[self.pos..self.pos + k]);
            self.pos += k;
            left -= k;
        }
        Ok(())
    }

    /// A length or a string-encoding marker.
    #[inline]
    pub fn len_or_enc(&mut self) -> Result<Len, RdbError> {
        let b = self.u8()?;
        Ok(match b >> 6 {
            0 => Len::Plain((b & 0x3F) as u64),
            1 => Len::Plain(((b & 0x3F) as u64) << 8 | self.u8()? as u64),
            3 => Len::Encoded(b & 0x3F),
            _ => match b {
                0x80 => Len::Plain(u32::from_be_bytes(self.array()?) as u64),
                0x81 => Len::Plain(u64::from_be_bytes(self.array()?)),
                _ => {
                    self.pos -= 1;
                    return Err(self.corrupt(format!("invalid length encoding 0x{b:02x}")));
                }
            },
        })
    }

    /// A plain length.
    pub fn len(&mut self) -> Result<u64, RdbError> {
        match self.len_or_enc()? {
            Len::Plain(n) => Ok(n),
            Len::Encoded(_) => {
                self.pos -= 1;
                Err(self.corrupt("expected a length, found a string encoding"))
            }
        }
    }

    /// A string, into `out` (cleared first): raw, integer (as decimal text) or LZF.
    pub fn string(&mut self, out: &mut Vec<u8>) -> Result<(), RdbError> {
        out.clear();
        let start = self.offset();
        match self.len_or_enc()? {
            Len::Plain(n) => self.read_into(n, out),
            Len::Encoded(0) => {
                let v = self.u8()? as i8 as i64;
                out.extend_from_slice(itoa::Buffer::new().format(v).as_bytes());
                Ok(())
            }
            Len::Encoded(1) => {
                let v = i16::from_le_bytes(self.array()?) as i64;
                out.extend_from_slice(itoa::Buffer::new().format(v).as_bytes());
                Ok(())
            }
            Len::Encoded(2) => {
                let v = i32::from_le_bytes(self.array()?) as i64;
                out.extend_from_slice(itoa::Buffer::new().format(v).as_bytes());
                Ok(())
            }
            Len::Encoded(3) => self.lzf_string(start, out),
            Len::Encoded(e) => Err(RdbError::Corrupt {
                offset: start,
                reason: format!("unknown string encoding {e}"),
            }),
        }
    }

    fn lzf_string(&mut self, start: u64, out: &mut Vec<u8>) -> Result<(), RdbError> {
        let clen = self.len()?;
        let ulen = self.len()?;
        let mut compressed = std::mem::take(&mut self.compressed);
        compressed.clear();
        self.read_into(clen, &mut compressed)?;
        let result = if ulen > clen.saturating_mul(lzf::MAX_EXPANSION) {
            Err(format!("an LZF string of {clen} bytes cannot expand to {ulen}"))
        } else {
            lzf::decompress_into(&compressed, ulen as usize, out).map_err(|e| e.to_string())
        };
        if compressed.capacity() <= 4 * CHUNK {
            self.compressed = compressed;
        }
        result.map_err(|reason| RdbError::Corrupt { offset: start, reason })
    }

    /// A double in the old text form: `<u8 len>` + ASCII, or 253/254/255 for NaN/+inf/-inf.
    pub fn text_double(&mut self) -> Result<f64, RdbError> {
        let at = self.offset();
        let len = self.u8()?;
        match len {
            255 => Ok(f64::NEG_INFINITY),
            254 => Ok(f64::INFINITY),
            253 => Ok(f64::NAN),
            _ => {
                let text = self.take_vec(len as usize)?;
                std::str::from_utf8(&text)
                    .ok()
                    .and_then(|t| t.trim().parse::<f64>().ok())
                    .ok_or_else(|| RdbError::Corrupt {
                        offset: at,
                        reason: format!("invalid score {:?}", String::from_utf8_lossy(&text)),
                    })
            }
        }
    }

    fn take_vec(&mut self, n: usize) -> Result<Vec<u8>, RdbError> {
        let mut v = Vec::with_capacity(n);
        self.read_into(n as u64, &mut v)?;
        Ok(v)
    }
}
