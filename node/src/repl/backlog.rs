//! The replication backlog: the tail of the replication stream, addressed by offset.
//!
//! Offsets follow Redis: the stream's bytes are numbered from 1, `end()` is the offset of the
//! last byte written (`master_repl_offset`), and a backlog created at offset `o` holds bytes
//! from `o + 1` on. The backlog keeps at least the last `size` bytes so a replica that lost its
//! link can continue with a partial resync. It also serves as every attached replica's output
//! buffer: bytes a replica has not been sent yet are kept even past `size` (Redis 7 shares its
//! replication buffer the same way), up to a hard limit beyond which the slowest replica is
//! dropped rather than letting memory grow without bound.

use std::collections::VecDeque;

/// The tail of the replication stream.
#[derive(Debug)]
pub struct Backlog {
    buf: VecDeque<u8>,
    /// The offset of `buf[0]` (`repl_backlog_first_byte_offset`).
    first: i64,
    /// Bytes kept for partial resyncs (`repl-backlog-size`).
    size: usize,
}

impl Backlog {
    /// An empty backlog whose first byte will be `end + 1`.
    pub fn new(end: i64, size: usize) -> Backlog {
        Backlog { buf: VecDeque::new(), first: end + 1, size: size.max(16 * 1024) }
    }

    /// The offset of the last byte written (`master_repl_offset`).
    pub fn end(&self) -> i64 {
        self.first + self.buf.len() as i64 - 1
    }

    /// The offset of the oldest byte held.
    pub fn first_byte(&self) -> i64 {
        self.first
    }

    /// Bytes held (`repl_backlog_histlen`).
    pub fn histlen(&self) -> usize {
        self.buf.len()
    }

    /// The configured size.
    pub fn size(&self) -> usize {
        self.size
    }

    /// Changes `repl-backlog-size` (takes effect at the next append).
    pub fn resize(&mut self, size: usize) {
        self.size = size.max(16 * 1024);
    }

    /// Appends stream bytes. Bytes before `keep_from` (the next byte the slowest replica needs)
    /// may be dropped once more than `size` are held.
    pub fn append(&mut self, bytes: &[u8], keep_from: Option<i64>) {
        self.buf.extend(bytes);
        self.trim(keep_from);
    }

    /// Drops the oldest bytes beyond `size`, never past `keep_from`.
    pub fn trim(&mut self, keep_from: Option<i64>) {
        let excess = self.buf.len().saturating_sub(self.size);
        if excess == 0 {
            return;
        }
        let limit = match keep_from {
            Some(from) => (from - self.first).clamp(0, excess as i64) as usize,
            None => excess,
        };
        if limit > 0 {
            self.buf.drain(..limit);
            self.first += limit as i64;
        }
    }

    /// True when a replica that has every byte up to `next - 1` can continue from here: the
    /// byte `next` is held, or `next` is the very next byte to be written.
    pub fn can_continue_from(&self, next: i64) -> bool {
        next >= self.first && next <= self.end() + 1
    }

    /// Copies up to `max` bytes starting at offset `from` into `out`. Returns the number
    /// copied, or `None` if `from` is no longer held.
    pub fn read(&self, from: i64, max: usize, out: &mut Vec<u8>) -> Option<usize> {
        if !self.can_continue_from(from) {
            return None;
        }
        let start = (from - self.first) as usize;
        let n = (self.buf.len() - start).min(max);
        let (a, b) = self.buf.as_slices();
        if start < a.len() {
            let take = n.min(a.len() - start);
            out.extend_from_slice(&a[start..start + take]);
            out.extend_from_slice(&b[..n - take]);
        } else {
            let s = start - a.len();
            out.extend_from_slice(&b[s..s + n]);
        }
        Some(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_all(b: &Backlog, from: i64) -> Option<Vec<u8>> {
        let mut out = Vec::new();
        b.read(from, usize::MAX, &mut out).map(|_| out)
    }

    #[test]
    fn offsets_start_after_the_creation_point() {
        let mut b = Backlog::new(100, 16 * 1024);
        assert_eq!(b.end(), 100);
        assert_eq!(b.first_byte(), 101);
        assert!(b.can_continue_from(101));
        assert!(!b.can_continue_from(100));
        b.append(b"*1\r\n$4\r\nping\r\n", None);
        assert_eq!(b.end(), 114);
        assert_eq!(read_all(&b, 101).unwrap(), b"*1\r\n$4\r\nping\r\n");
        assert_eq!(read_all(&b, 115).unwrap(), b"");
        assert!(read_all(&b, 116).is_none());
    }

    #[test]
    fn keeps_the_configured_size_and_what_replicas_still_need() {
        let mut b = Backlog::new(0, 16 * 1024);
        let chunk = vec![b'x'; 10 * 1024];
        b.append(&chunk, None);
        b.append(&chunk, None);
        assert_eq!(b.histlen(), 16 * 1024);
        assert_eq!(b.first_byte(), 1 + 4 * 1024);
        // A replica still needs byte 5000: nothing from there on may be dropped.
        b.append(&chunk, Some(5000));
        assert_eq!(b.first_byte(), 5000);
        assert_eq!(b.end(), 30 * 1024);
        // Once it has caught up, the backlog shrinks back to its size.
        b.trim(Some(b.end() + 1));
        assert_eq!(b.histlen(), 16 * 1024);
        assert!(!b.can_continue_from(5000));
    }

    #[test]
    fn reads_across_the_ring_boundary() {
        let mut b = Backlog::new(0, 16 * 1024);
        for i in 0..100u32 {
            let bytes: Vec<u8> = (0..997).map(|j| ((i * 997 + j) % 251) as u8).collect();
            b.append(&bytes, None);
        }
        let from = b.first_byte() + 123;
        let got = read_all(&b, from).unwrap();
        assert_eq!(got.len() as i64, b.end() - from + 1);
        for (k, byte) in got.iter().enumerate() {
            let offset = from + k as i64; // the stream's byte n is (n - 1) % 251
            assert_eq!(*byte as i64, (offset - 1) % 251);
        }
        let mut part = Vec::new();
        assert_eq!(b.read(from, 10, &mut part), Some(10));
        assert_eq!(part, got[..10]);
    }
}
