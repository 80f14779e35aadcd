//! Listpacks: the compact sequences RDB types 16 (hash), 17 (zset) and 18 (quicklist nodes)
//! carry as string blobs.
//!
//! # Layout
//!
//! ```text
//! <u32 LE total bytes> <u16 LE element count, 65535 = "count by scanning"> <entry>* 0xFF
//! entry = <encoding + data> <backlen: size of encoding + data, 1..=5 bytes, read right to left>
//! ```
//!
//! | first byte            | entry                                           |
//! |-----------------------|-------------------------------------------------|
//! | `0xxxxxxx`            | integer 0..=127                                 |
//! | `10LLLLLL`            | string of up to 63 bytes                        |
//! | `110xxxxx` + 1        | 13-bit signed integer                           |
//! | `1110LLLL` + 1        | string of up to 4095 bytes (12-bit length)      |
//! | `0xF0` + 4 (LE)       | string with a 32-bit length                     |
//! | `0xF1`/`F2`/`F3`/`F4` | 16/24/32/64-bit signed integer, little-endian   |
//! | `0xFF`                | end of the listpack                             |
//!
//! # Invariants
//!
//! [`Builder`] encodes exactly as Redis's `lpAppend`: a string that is a canonical 64-bit
//! integer (`lpStringToInt64`, the same rule as `string2ll`) is stored in the smallest integer
//! form, anything else as a string. That makes our blobs byte-identical to Redis's for the same
//! elements.
//!
//! [`parse`] performs Redis's *deep* validation (`lpValidateIntegrity` with `deep = 1`): the
//! header size equals the blob size, every entry and its back-length stay inside the blob and
//! agree, the terminator is the last byte, and the header count (unless 65535) is right. It
//! never reads outside the blob, whatever the input.

use super::Elem;

/// The header: total bytes (4) and element count (2).
const HEADER: usize = 6;
/// The element count meaning "unknown".
const COUNT_UNKNOWN: u16 = u16::MAX;
/// Listpacks never exceed 1 GB (`LISTPACK_MAX_SAFETY_SIZE`).
pub const MAX_SAFE_SIZE: usize = 1 << 30;

/// A listpack under construction at the end of a buffer. It holds no borrow, so a caller can
/// build several listpacks one after the other in the same buffer.
pub struct Builder {
    start: usize,
    count: usize,
}

impl Builder {
    /// Starts a listpack at the end of `out`.
    pub fn new(out: &mut Vec<u8>) -> Builder {
        let start = out.len();
        out.extend_from_slice(&[0; HEADER]);
        Builder { start, count: 0 }
    }

    /// Reopens a finished listpack that is the whole of `lp` to append more elements (Redis's
    /// `lpAppend` on an existing listpack): the terminator is dropped until [`Builder::finish`]
    /// writes it back with the header. A header count of 65535 ("unknown") stays unknown.
    pub fn reopen(lp: &mut Vec<u8>) -> Builder {
        debug_assert_eq!(lp.last(), Some(&0xFF), "a finished listpack");
        lp.pop();
        let count = u16::from_le_bytes([lp[4], lp[5]]) as usize;
        Builder { start: 0, count }
    }

    /// Where the listpack starts in the buffer.
    pub fn start(&self) -> usize {
        self.start
    }

    /// The size the listpack has so far, terminator included (Redis's `lpBytes`).
    pub fn bytes(&self, out: &[u8]) -> usize {
        out.len() - self.start + 1
    }

    /// Appends a string, stored as an integer when it is a canonical one (`lpAppend`).
    pub fn push(&mut self, out: &mut Vec<u8>, s: &[u8]) {
        match common::fmt::parse_i64(s) {
            Some(v) => self.push_int(out, v),
            None => self.push_str(out, s),
        }
    }

    /// Appends an integer in its smallest form (`lpAppendInteger`).
    pub fn push_int(&mut self, out: &mut Vec<u8>, v: i64) {
        let mut enc = [0u8; 9];
        let len = match v {
            0..=127 => {
                enc[0] = v as u8;
                1
            }
            -4096..=4095 => {
                let u = (v as u64) & 0x1FFF;
                enc[0] = 0xC0 | (u >> 8) as u8;
                enc[1] = u as u8;
                2
            }
            -32768..=32767 => {
                enc[0] = 0xF1;
                enc[1..3].copy_from_slice(&(v as i16).to_le_bytes());
                3
            }
            -8_388_608..=8_388_607 => {
                enc[0] = 0xF2;
                enc[1..4].copy_from_slice(&(v as i32).to_le_bytes()[..3]);
                4
            }
            -2_147_483_648..=2_147_483_647 => {
                enc[0] = 0xF3;
                enc[1..5].copy_from_slice(&(v as i32).to_le_bytes());
                5
            }
            _ => {
                enc[0] = 0xF4;
                enc[1..9].copy_from_slice(&v.to_le_bytes());
                9
            }
        };
        out.extend_from_slice(&enc[..len]);
        self.backlen(out, len);
    }

    /// Appends a string as a string, even if it looks like an integer.
    fn push_str(&mut self, out: &mut Vec<u8>, s: &[u8]) {
        let len = s.len();
        let header = if len < 64 {
            out.push(0x80 | len as u8);
            1
        } else if len < 4096 {
            out.extend_from_slice(&[0xE0 | (len >> 8) as u8, len as u8]);
            2
        } else {
            out.push(0xF0);
            out.extend_from_slice(&(len as u32).to_le_bytes());
            5
        };
        out.extend_from_slice(s);
        self.backlen(out, header + len);
    }

    fn backlen(&mut self, out: &mut Vec<u8>, l: usize) {
        let l = l as u64;
        if l <= 127 {
            out.push(l as u8);
        } else if l < 16383 {
            out.extend_from_slice(&[(l >> 7) as u8, (l & 127) as u8 | 128]);
        } else if l < 2_097_151 {
            out.extend_from_slice(&[
                (l >> 14) as u8,
                ((l >> 7) & 127) as u8 | 128,
                (l & 127) as u8 | 128,
            ]);
        } else if l < 268_435_455 {
            out.extend_from_slice(&[
                (l >> 21) as u8,
                ((l >> 14) & 127) as u8 | 128,
                ((l >> 7) & 127) as u8 | 128,
                (l & 127) as u8 | 128,
            ]);
        } else {
            out.extend_from_slice(&[
                (l >> 28) as u8,
                ((l >> 21) & 127) as u8 | 128,
                ((l >> 14) & 127) as u8 | 128,
                ((l >> 7) & 127) as u8 | 128,
                (l & 127) as u8 | 128,
            ]);
        }
        self.count += 1;
    }

    /// Writes the terminator and the header.
    pub fn finish(self, out: &mut Vec<u8>) {
        out.push(0xFF);
        let total = (out.len() - self.start) as u32;
        let count =
            if self.count < COUNT_UNKNOWN as usize { self.count as u16 } else { COUNT_UNKNOWN };
        out[self.start..self.start + 4].copy_from_slice(&total.to_le_bytes());
        out[self.start + 4..self.start + 6].copy_from_slice(&count.to_le_bytes());
    }
}

/// Why a listpack blob is invalid.
pub type Invalid = &'static str;

/// The size in bytes of the encoding and data of the entry starting at `p[0]`, or an error if
/// it cannot be read from `p`.
fn entry_size(p: &[u8]) -> Result<usize, Invalid> {
    let b = *p.first().ok_or("listpack entry runs past the end")?;
    let need =
        |n: usize| if p.len() >= n { Ok(()) } else { Err("listpack entry runs past the end") };
    Ok(match b {
        0x00..=0x7F => 1,
        0x80..=0xBF => 1 + (b & 0x3F) as usize,
        0xC0..=0xDF => 2,
        0xE0..=0xEF => {
            need(2)?;
            2 + (((b & 0x0F) as usize) << 8 | p[1] as usize)
        }
        0xF0 => {
            need(5)?;
            5 + u32::from_le_bytes([p[1], p[2], p[3], p[4]]) as usize
        }
        0xF1 => 3,
        0xF2 => 4,
        0xF3 => 5,
        0xF4 => 9,
        _ => return Err("invalid listpack entry encoding"),
    })
}

fn backlen_size(l: usize) -> usize {
    match l {
        0..=127 => 1,
        128..=16382 => 2,
        16383..=2_097_150 => 3,
        2_097_151..=268_435_454 => 4,
        _ => 5,
    }
}

/// Reads the back-length that ends just before `end` (exclusive), right to left.
fn decode_backlen(lp: &[u8], end: usize) -> Option<u64> {
    let mut val = 0u64;
    let mut shift = 0;
    let mut i = end;
    loop {
        i = i.checked_sub(1)?;
        let b = lp[i];
        val |= ((b & 127) as u64) << shift;
        if b & 128 == 0 {
            return Some(val);
        }
        shift += 7;
        if shift > 28 {
            return None;
        }
    }
}

/// Decodes one validated entry (`p` holds exactly its encoding and data).
fn decode_entry(p: &[u8]) -> Elem<'_> {
    let b = p[0];
    match b {
        0x00..=0x7F => Elem::Int(b as i64),
        0x80..=0xBF => Elem::Str(&p[1..]),
        0xC0..=0xDF => {
            let u = ((b & 0x1F) as i64) << 8 | p[1] as i64;
            Elem::Int(if u >= 4096 { u - 8192 } else { u })
        }
        0xE0..=0xEF => Elem::Str(&p[2..]),
        0xF0 => Elem::Str(&p[5..]),
        0xF1 => Elem::Int(i16::from_le_bytes([p[1], p[2]]) as i64),
        0xF2 => Elem::Int((i32::from_le_bytes([0, p[1], p[2], p[3]]) >> 8) as i64),
        0xF3 => Elem::Int(i32::from_le_bytes([p[1], p[2], p[3], p[4]]) as i64),
        _ => Elem::Int(i64::from_le_bytes(p[1..9].try_into().expect("9-byte entry"))),
    }
}

/// The elements of a listpack known to be valid (one we built, or one [`parse`] accepted),
/// each with the offset where its encoding starts.
pub fn elements(lp: &[u8]) -> Vec<(usize, Elem<'_>)> {
    first_elements(lp, usize::MAX)
}

/// The first `n` elements (fewer if there are fewer) of a valid listpack, as [`elements`].
pub fn first_elements(lp: &[u8], n: usize) -> Vec<(usize, Elem<'_>)> {
    let last = lp.len() - 1;
    let mut out = Vec::new();
    let mut p = HEADER;
    while p < last && out.len() < n {
        let size = entry_size(&lp[p..last]).expect("a valid listpack");
        out.push((p, decode_entry(&lp[p..p + size])));
        p += size + backlen_size(size);
    }
    out
}

/// Replaces the element at offset `at` of the valid listpack `lp` with the integer `v`, in
/// its smallest form, as `lpReplaceInteger` does (the element count is unchanged).
pub fn replace_int(lp: &mut Vec<u8>, at: usize, v: i64) {
    let size = entry_size(&lp[at..lp.len() - 1]).expect("a valid listpack");
    let old_end = at + size + backlen_size(size);
    let mut encoded = Vec::with_capacity(10);
    let mut b = Builder { start: 0, count: 0 };
    b.push_int(&mut encoded, v);
    lp.splice(at..old_end, encoded);
    let total = lp.len() as u32;
    lp[..4].copy_from_slice(&total.to_le_bytes());
}

/// Validates `lp` deeply and calls `each` on every element in order. Returns the count.
pub fn parse<'a>(
    lp: &'a [u8],
    mut each: impl FnMut(Elem<'a>) -> Result<(), Invalid>,
) -> Result<usize, Invalid> {
    if lp.len() < HEADER + 1 {
        return Err("listpack shorter than its header");
    }
    let total = u32::from_le_bytes([lp[0], lp[1], lp[2], lp[3]]) as usize;
    if total != lp.len() {
        return Err("listpack size header does not match the blob");
    }
    if lp[lp.len() - 1] != 0xFF {
        return Err("listpack does not end with its terminator");
    }
    let declared = u16::from_le_bytes([lp[4], lp[5]]);
    let last = lp.len() - 1;
    let mut p = HEADER;
    let mut count = 0usize;
    while p < last {
        if lp[p] == 0xFF {
            return Err("listpack terminator before the end");
        }
        let size = entry_size(&lp[p..last])?;
        let end =
            p.checked_add(size).filter(|&e| e <= last).ok_or("listpack entry runs past the end")?;
        let next = end + backlen_size(size);
        if next > last {
            return Err("listpack entry runs past the end");
        }
        if decode_backlen(lp, next) != Some(size as u64) {
            return Err("listpack back-length does not match its entry");
        }
        each(decode_entry(&lp[p..end]))?;
        count += 1;
        p = next;
    }
    if declared != COUNT_UNKNOWN && declared as usize != count {
        return Err("listpack element count does not match its header");
    }
    Ok(count)
}

/// The elements of a listpack, in order, without validating it first: for blobs already
/// validated by [`parse`] (or built by [`Builder`]). On malformed input it stops early instead
/// of reading outside the blob, so it never panics; call [`Elems::ended_cleanly`] to tell the
/// two apart.
pub struct Elems<'a> {
    lp: &'a [u8],
    pos: usize,
    clean: bool,
}

impl<'a> Elems<'a> {
    /// Iterates the elements of `lp`.
    pub fn new(lp: &'a [u8]) -> Elems<'a> {
        Elems { lp, pos: HEADER, clean: false }
    }

    /// True once the iterator reached the terminator (rather than stopping at bad bytes).
    pub fn ended_cleanly(&self) -> bool {
        self.clean
    }
}

impl<'a> Iterator for Elems<'a> {
    type Item = Elem<'a>;

    fn next(&mut self) -> Option<Elem<'a>> {
        let lp = self.lp;
        let p = self.pos;
        match lp.get(p) {
            None => return None,
            Some(0xFF) => {
                self.clean = p + 1 == lp.len();
                self.pos = lp.len();
                return None;
            }
            Some(_) => {}
        }
        let Ok(size) = entry_size(&lp[p..]) else {
            self.pos = lp.len();
            return None;
        };
        let end = p.saturating_add(size);
        let next = end.saturating_add(backlen_size(size));
        if next > lp.len() {
            self.pos = lp.len();
            return None;
        }
        self.pos = next;
        Some(decode_entry(&lp[p..end]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn build(items: &[&[u8]]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut b = Builder::new(&mut out);
        for i in items {
            b.push(&mut out, i);
        }
        b.finish(&mut out);
        out
    }

    fn elems(lp: &[u8]) -> Vec<Vec<u8>> {
        let mut v = Vec::new();
        parse(lp, |e| {
            v.push(e.to_bytes().to_vec());
            Ok(())
        })
        .expect("valid listpack");
        v
    }

    #[test]
    fn matches_redis_bytes() {
        // Replication reference §4.5, verified against 7.0.15.
        assert_eq!(
            build(&[b"a", b"b", b"c", b"1"]),
            [0x12, 0, 0, 0, 4, 0, 0x81, 0x61, 2, 0x81, 0x62, 2, 0x81, 0x63, 2, 1, 1, 0xFF]
        );
        assert_eq!(
            build(&[b"f1", b"v1", b"f2", b"22"]),
            [
                0x15, 0, 0, 0, 4, 0, 0x82, 0x66, 0x31, 3, 0x82, 0x76, 0x31, 3, 0x82, 0x66, 0x32, 3,
                0x16, 1, 0xFF
            ]
        );
    }

    #[test]
    fn every_encoding_round_trips() {
        let long = vec![b'x'; 5000];
        let mid = vec![b'y'; 300];
        let ints: Vec<String> = [
            0i64,
            127,
            128,
            -1,
            4095,
            -4096,
            4096,
            -4097,
            32767,
            -32768,
            32768,
            8_388_607,
            -8_388_608,
            8_388_608,
            i32::MAX as i64,
            i32::MIN as i64,
            i32::MAX as i64 + 1,
            i64::MAX,
            i64::MIN,
        ]
        .iter()
        .map(|n| n.to_string())
        .collect();
        let mut items: Vec<&[u8]> = ints.iter().map(|s| s.as_bytes()).collect();
        items.extend([&b""[..], b"007", b"-0", b"+1", &mid, &long]);
        let lp = build(&items);
        assert_eq!(elems(&lp), items.iter().map(|i| i.to_vec()).collect::<Vec<_>>());
    }

    #[test]
    fn elems_iterate_and_stop_on_bad_bytes() {
        let lp = build(&[b"a", b"1000", b"hello"]);
        let mut it = Elems::new(&lp);
        let all: Vec<Vec<u8>> = it.by_ref().map(|e| e.to_bytes().to_vec()).collect();
        assert_eq!(all, [&b"a"[..], b"1000", b"hello"]);
        assert!(it.ended_cleanly());
        for cut in 0..lp.len() {
            let mut it = Elems::new(&lp[..cut]);
            let _ = it.by_ref().count();
            assert!(!it.ended_cleanly(), "cut at {cut}");
        }
    }

    #[test]
    fn corrupt_listpacks_are_rejected() {
        let good = build(&[b"a", b"1000", b"hello"]);
        assert!(parse(&good, |_| Ok(())).is_ok());
        for cut in 0..good.len() {
            assert!(parse(&good[..cut], |_| Ok(())).is_err(), "cut at {cut}");
        }
        let mut bad = good.clone();
        bad[4] = 7; // wrong count
        assert!(parse(&bad, |_| Ok(())).is_err());
        for i in HEADER..good.len() - 1 {
            let mut bad = good.clone();
            bad[i] ^= 0x40;
            // Never panics; may or may not be detected (a flipped string byte is valid data).
            let _ = parse(&bad, |_| Ok(()));
        }
    }
}
