//! CRC-framed records: the unit in which the Raft log file is written and read back.
//!
//! ```text
//! file   := magic:"WRAFTLOG" version:u32le record*
//! record := len:u32le crc:u32le body[len]        crc = CRC-32 (IEEE) of body
//! ```
//!
//! A record is written with one `write` call and made durable by the caller's fsync. A crash
//! can therefore leave only the *last* record incomplete: its header or body cut short, or a
//! body whose checksum does not match and that reaches the end of the file. Such a torn tail is
//! reported as [`Scan::torn_at`] so the caller can truncate it (that record was never
//! acknowledged, because acknowledgement waits for the fsync). A checksum mismatch with more
//! data after it cannot come from a torn write: it is corruption, and reading stops with an
//! error naming the file and the offset.

use std::path::Path;

/// The first bytes of every log file.
pub const MAGIC: &[u8; 8] = b"WRAFTLOG";
/// The format version after the magic.
pub const VERSION: u32 = 1;
/// Bytes before the first record.
pub const HEADER_LEN: usize = MAGIC.len() + 4;
/// A record larger than this is not one we wrote (the supervisor's records are small).
pub const MAX_RECORD: usize = 64 << 20;

/// Why a log file cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    /// A record in the middle of the file is damaged.
    #[error("{file}: corrupt record at offset {offset}: {why}")]
    Corrupt {
        /// The file.
        file: String,
        /// Byte offset of the damaged record.
        offset: u64,
        /// What is wrong with it.
        why: String,
    },
}

/// The records of a file and where a torn tail starts, if there is one.
#[derive(Debug, Default)]
pub struct Scan<'a> {
    /// Each record's byte offset and body.
    pub records: Vec<(u64, &'a [u8])>,
    /// The offset of an incomplete last record, to be truncated.
    pub torn_at: Option<u64>,
}

/// Frames `body` as one record.
pub fn frame(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + 8);
    out.extend_from_slice(&(body.len() as u32).to_le_bytes());
    out.extend_from_slice(&crc32fast::hash(body).to_le_bytes());
    out.extend_from_slice(body);
    out
}

/// The file header.
pub fn header() -> Vec<u8> {
    let mut out = MAGIC.to_vec();
    out.extend_from_slice(&VERSION.to_le_bytes());
    out
}

/// Splits a whole file into records. `file` names it in errors.
pub fn scan<'a>(file: &Path, data: &'a [u8]) -> Result<Scan<'a>, RecordError> {
    let corrupt = |offset: usize, why: String| RecordError::Corrupt {
        file: file.display().to_string(),
        offset: offset as u64,
        why,
    };
    let mut out = Scan::default();
    if data.len() < HEADER_LEN {
        // A crash while creating the file: nothing was ever acknowledged from it.
        if MAGIC.starts_with(&data[..data.len().min(MAGIC.len())]) {
            out.torn_at = Some(0);
            return Ok(out);
        }
        return Err(corrupt(0, "not a warden raft log (bad magic)".into()));
    }
    if &data[..MAGIC.len()] != MAGIC {
        return Err(corrupt(0, "not a warden raft log (bad magic)".into()));
    }
    let version = u32::from_le_bytes(data[8..12].try_into().expect("4 bytes"));
    if version != VERSION {
        return Err(corrupt(8, format!("unsupported log version {version}")));
    }
    let mut pos = HEADER_LEN;
    while pos < data.len() {
        let rest = &data[pos..];
        if rest.len() < 8 {
            out.torn_at = Some(pos as u64);
            break;
        }
        let len = u32::from_le_bytes(rest[0..4].try_into().expect("4 bytes")) as usize;
        let crc = u32::from_le_bytes(rest[4..8].try_into().expect("4 bytes"));
        if len > MAX_RECORD {
            if pos + 8 + len > data.len() && looks_torn(&rest[8..]) {
                out.torn_at = Some(pos as u64);
                break;
            }
            return Err(corrupt(pos, format!("record length {len} is larger than any record")));
        }
        if rest.len() < 8 + len {
            out.torn_at = Some(pos as u64);
            break;
        }
        let body = &rest[8..8 + len];
        if crc32fast::hash(body) != crc {
            if pos + 8 + len == data.len() {
                out.torn_at = Some(pos as u64);
                break;
            }
            return Err(corrupt(pos, "checksum mismatch".into()));
        }
        out.records.push((pos as u64, body));
        pos += 8 + len;
    }
    Ok(out)
}

/// A header with an absurd length at the very end is a torn write only if nothing meaningful
/// follows it.
fn looks_torn(rest: &[u8]) -> bool {
    rest.len() < 8
}

/// A cursor over a record body, returning `None` when the body is too short.
pub struct Reader<'a> {
    data: &'a [u8],
}

impl<'a> Reader<'a> {
    /// Reads `data` from the start.
    pub fn new(data: &'a [u8]) -> Reader<'a> {
        Reader { data }
    }

    /// The next `n` bytes.
    pub fn bytes(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.data.len() < n {
            return None;
        }
        let (head, tail) = self.data.split_at(n);
        self.data = tail;
        Some(head)
    }

    /// One byte.
    pub fn u8(&mut self) -> Option<u8> {
        self.bytes(1).map(|b| b[0])
    }

    /// A little-endian u32.
    pub fn u32(&mut self) -> Option<u32> {
        self.bytes(4).map(|b| u32::from_le_bytes(b.try_into().expect("4 bytes")))
    }

    /// A little-endian u64.
    pub fn u64(&mut self) -> Option<u64> {
        self.bytes(8).map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")))
    }

    /// True when every byte was read.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(records: &[&[u8]]) -> Vec<u8> {
        let mut out = header();
        for r in records {
            out.extend(frame(r));
        }
        out
    }

    #[test]
    fn round_trip() {
        let data = file(&[b"one", b"", b"three"]);
        let scan = scan(Path::new("x"), &data).unwrap();
        let bodies: Vec<&[u8]> = scan.records.iter().map(|r| r.1).collect();
        assert_eq!(bodies, [&b"one"[..], b"", b"three"]);
        assert_eq!(scan.torn_at, None);
    }

    #[test]
    fn every_cut_of_the_last_record_is_a_torn_tail() {
        let data = file(&[b"first record", b"second record"]);
        let second = (data.len() - frame(b"second record").len()) as u64;
        for cut in second as usize..data.len() {
            let scan = scan(Path::new("x"), &data[..cut]).unwrap();
            assert_eq!(scan.records.len(), 1, "cut at {cut}");
            let expect = if cut == second as usize { None } else { Some(second) };
            assert_eq!(scan.torn_at, expect, "cut at {cut}");
        }
    }

    #[test]
    fn a_damaged_last_record_is_torn_but_a_damaged_middle_one_is_corruption() {
        let mut data = file(&[b"first record", b"second record"]);
        let last = data.len() - 1;
        data[last] ^= 0xff;
        let scan_result = scan(Path::new("x"), &data).unwrap();
        assert_eq!(scan_result.records.len(), 1);
        assert!(scan_result.torn_at.is_some());

        let mut data = file(&[b"first record", b"second record"]);
        data[HEADER_LEN + 9] ^= 0xff;
        let err = scan(Path::new("/d/raft.log"), &data).unwrap_err().to_string();
        assert_eq!(err, "/d/raft.log: corrupt record at offset 12: checksum mismatch");
    }

    #[test]
    fn a_foreign_file_is_refused() {
        let err = scan(Path::new("f"), b"hello world, not a log").unwrap_err().to_string();
        assert!(err.contains("bad magic"), "{err}");
        assert_eq!(scan(Path::new("f"), b"WRAF").unwrap().torn_at, Some(0));
    }

    #[test]
    fn reader_never_reads_past_the_end() {
        let mut r = Reader::new(&[1, 2, 3]);
        assert_eq!(r.u8(), Some(1));
        assert_eq!(r.u32(), None);
        assert_eq!(r.bytes(2), Some(&[2u8, 3][..]));
        assert!(r.is_empty());
    }
}

#[cfg(test)]
mod robustness {
    use rand::{Rng, SeedableRng};

    use super::*;

    /// Random damage anywhere in a log never panics the reader: it is a torn tail, an error,
    /// or (if the damage hit nothing that matters) a clean read.
    #[test]
    fn random_damage_never_panics() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(5);
        let mut clean = header();
        for i in 0..20u32 {
            clean.extend(frame(&vec![i as u8; (i * 7) as usize]));
        }
        for _ in 0..2000 {
            let mut data = clean.clone();
            for _ in 0..rng.gen_range(1..4) {
                let at = rng.gen_range(0..data.len());
                data[at] = rng.gen();
            }
            let cut = rng.gen_range(0..=data.len());
            let _ = scan(Path::new("x"), &data[..cut]);
        }
        for _ in 0..500 {
            let len = rng.gen_range(0..200);
            let noise: Vec<u8> = (0..len).map(|_| rng.gen()).collect();
            let mut data = header();
            data.extend(noise);
            let _ = scan(Path::new("x"), &data);
        }
    }
}
