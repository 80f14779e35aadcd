//! The RDB writer: a keyspace into an RDB version 10 stream, entry by entry.
//!
//! [`RdbWriter`] is incremental (`write_header`, then per database `begin_db` and
//! `write_entry` for each key, then `finish`), so a background save can walk a keyspace
//! without copying it. Output goes through a buffer of about [`FLUSH_AT`] bytes, and the CRC-64
//! is folded in as each buffer is flushed.
//!
//! Values are written the way Redis 7.0.15's `rdbSaveObject` writes them ([`ValueEncoder`],
//! shared with DUMP):
//!
//! - strings (and keys, AUX names and values, members, fields …) via `rdbSaveRawString`: a
//!   canonical integer of at most 11 characters in the i32 range as INT8/16/32; otherwise, with
//!   compression on and more than 20 bytes, LZF if that saves at least 4 bytes; else raw;
//! - lists as QUICKLIST_2 (18): listpack nodes split as a tail-pushed Redis quicklist splits
//!   them under the `list-max-listpack-size` the list was made under (see `node_takes`), and
//!   elements of 1 GB or more as PLAIN nodes;
//! - intsets as type 11, hash-table sets as type 2 (members in table order);
//! - listpack hashes as type 16, hash-table hashes as type 4;
//! - listpack zsets as type 17 (integral scores as integers, others as `%.17g`), skiplist
//!   zsets as ZSET_2 (5), highest score first, with binary doubles (so `-0`, `inf` survive);
//! - streams as STREAM_LISTPACKS_2 (19), their node listpacks verbatim (see `stream.rs`).
//!
//! Blobs (listpacks, intsets) are strings too, so they get LZF like any long string. Empty
//! collections are never written (redis-check-rdb rejects them); the keyspace never holds one
//! (an empty stream is not an empty collection: Redis keeps and writes those).

use std::io::{self, Write};

use super::crc64::crc64;
use super::listpack::Builder;
use super::lzf::Compressor;
use super::{intset, opcode as op, rdb_type as t, RDB_VERSION};
use crate::db::hash::Hash;
use crate::db::list::List;
use crate::db::set::Set;
use crate::db::zset::ZSet;
use crate::db::{Keyspace, Value};

/// The writer flushes its buffer once it holds this much.
pub const FLUSH_AT: usize = 256 * 1024;
/// `SIZE_SAFETY_LIMIT` of quicklist.c: the most bytes a count-limited node grows to.
const QUICKLIST_SAFETY_BYTES: usize = 8192;
/// `SIZE_ESTIMATE_OVERHEAD` of quicklist.c.
const QUICKLIST_OVERHEAD: usize = 8;

/// Redis 7.0's `_quicklistNodeAllowInsert`: whether a node of `node_bytes` bytes and `count`
/// entries takes one more entry of `len` bytes under `fill` (`list-max-listpack-size`, already
/// clamped to -5..=32767). -1..-5 cap the node at 4, 8, 16, 32 or 64 KB; a positive fill caps its
/// entries, within 8 KB; 0 leaves one entry per node.
fn node_takes(fill: i64, node_bytes: usize, count: usize, len: usize) -> bool {
    let new_bytes = node_bytes + len + QUICKLIST_OVERHEAD;
    if fill < 0 {
        return new_bytes <= 4096 << (-fill - 1).min(4);
    }
    new_bytes <= QUICKLIST_SAFETY_BYTES && (count as i64) < fill
}
/// Elements this large get a PLAIN quicklist node (Redis's `packed_threshold`, 1 GB unless
/// DEBUG QUICKLIST-PACKED-THRESHOLD changes it).
pub static PACKED_THRESHOLD: std::sync::atomic::AtomicUsize =
    std::sync::atomic::AtomicUsize::new(1 << 30);

/// Writer settings.
#[derive(Debug, Clone, Copy)]
pub struct WriteOptions {
    /// `rdbcompression`: LZF-compress strings longer than 20 bytes when it pays.
    pub compression: bool,
    /// `rdbchecksum`: append the CRC-64 (otherwise 8 zero bytes).
    pub checksum: bool,
}

impl Default for WriteOptions {
    fn default() -> Self {
        WriteOptions { compression: true, checksum: true }
    }
}

/// Replication state recorded in the file (`repl-stream-db`, `repl-id`, `repl-offset`).
#[derive(Debug, Clone, Copy)]
pub struct ReplAux<'a> {
    /// The database the replication stream had selected.
    pub stream_db: usize,
    /// The 40-character replication id.
    pub id: &'a str,
    /// The replication offset the snapshot corresponds to.
    pub offset: i64,
}

/// The AUX fields of the header.
#[derive(Debug, Clone, Copy)]
pub struct Aux<'a> {
    /// `ctime`: unix seconds of the save.
    pub ctime: i64,
    /// `used-mem`: bytes of memory in use.
    pub used_mem: u64,
    /// Replication state, when there is some.
    pub repl: Option<ReplAux<'a>>,
    /// `aof-base`: the file is the base of an AOF.
    pub aof_base: bool,
    /// The function libraries' sources, written after the AUX fields.
    pub functions: &'a [bytes::Bytes],
}

/// Appends an RDB length.
pub fn write_len(out: &mut Vec<u8>, n: u64) {
    if n < 1 << 6 {
        out.push(n as u8);
    } else if n < 1 << 14 {
        out.extend_from_slice(&[0x40 | (n >> 8) as u8, n as u8]);
    } else if n <= u32::MAX as u64 {
        out.push(0x80);
        out.extend_from_slice(&(n as u32).to_be_bytes());
    } else {
        out.push(0x81);
        out.extend_from_slice(&n.to_be_bytes());
    }
}

/// Redis's `double2ll`: the double as an integer when that loses nothing.
fn double2ll(d: f64) -> Option<i64> {
    const SAFE: f64 = (i64::MAX / 2) as f64;
    if !(-SAFE..=SAFE).contains(&d) {
        return None;
    }
    let n = d as i64;
    (n as f64 == d).then_some(n)
}

/// Writes strings as `rdbSaveRawString` does.
struct StrEncoder {
    compression: bool,
    lzf: Compressor,
    lzf_out: Vec<u8>,
}

impl StrEncoder {
    fn string(&mut self, out: &mut Vec<u8>, s: &[u8]) {
        if s.len() <= 11 {
            if let Some(v) = common::fmt::parse_i64(s) {
                if let Ok(v8) = i8::try_from(v) {
                    out.extend_from_slice(&[0xC0, v8 as u8]);
                    return;
                } else if let Ok(v16) = i16::try_from(v) {
                    out.push(0xC1);
                    out.extend_from_slice(&v16.to_le_bytes());
                    return;
                } else if let Ok(v32) = i32::try_from(v) {
                    out.push(0xC2);
                    out.extend_from_slice(&v32.to_le_bytes());
                    return;
                }
            }
        }
        if self.compression && s.len() > 20 && self.lzf.compress(s, s.len() - 4, &mut self.lzf_out)
        {
            out.push(0xC3);
            write_len(out, self.lzf_out.len() as u64);
            write_len(out, s.len() as u64);
            out.extend_from_slice(&self.lzf_out);
            return;
        }
        write_len(out, s.len() as u64);
        out.extend_from_slice(s);
    }
}

/// One quicklist node being written: a listpack in the scratch buffer, or a plain element.
enum Node {
    Packed(std::ops::Range<usize>),
    Plain(usize),
}

/// Serialises values as `rdbSaveObjectType` + `rdbSaveObject`; shared by the file writer and
/// DUMP. Holds the LZF state and scratch buffers, so keep one per writer.
pub struct ValueEncoder {
    strings: StrEncoder,
    scratch: Vec<u8>,
    nodes: Vec<Node>,
}

impl ValueEncoder {
    /// An encoder; `compression` is `rdbcompression`.
    pub fn new(compression: bool) -> ValueEncoder {
        ValueEncoder {
            strings: StrEncoder { compression, lzf: Compressor::new(), lzf_out: Vec::new() },
            scratch: Vec::new(),
            nodes: Vec::new(),
        }
    }

    /// Changes the compression setting.
    pub fn set_compression(&mut self, compression: bool) {
        self.strings.compression = compression;
    }

    /// Starts a new payload or file: LZF forgets the history of earlier compressions (see
    /// [`Compressor`]), so the output depends only on what is encoded from here on.
    pub fn reset(&mut self) {
        self.strings.lzf.reset();
    }

    /// The RDB type byte `value` is written with.
    pub fn type_byte(value: &Value) -> u8 {
        match value {
            Value::Str { .. } => t::STRING,
            Value::List(_) => t::LIST_QUICKLIST_2,
            Value::Set(s) => match **s {
                Set::Intset(_) => t::SET_INTSET,
                Set::Table(_) => t::SET,
            },
            Value::Hash(h) => match **h {
                Hash::Listpack(_) => t::HASH_LISTPACK,
                Hash::Table(_) => t::HASH,
            },
            Value::ZSet(z) => match z.dict() {
                None => t::ZSET_LISTPACK,
                Some(_) => t::ZSET_2,
            },
            Value::Stream(_) => t::STREAM_LISTPACKS_2,
        }
    }

    /// Appends a string in RDB form.
    pub fn string(&mut self, out: &mut Vec<u8>, s: &[u8]) {
        self.strings.string(out, s);
    }

    /// Appends the encoding of `value` (without its type byte).
    pub fn value(&mut self, out: &mut Vec<u8>, value: &Value) {
        match value {
            Value::Str { bytes, .. } => self.strings.string(out, bytes),
            Value::List(l) => self.list(out, l),
            Value::Set(s) => match &**s {
                Set::Intset(members) => {
                    self.scratch.clear();
                    intset::write(members, &mut self.scratch);
                    self.strings.string(out, &self.scratch);
                }
                Set::Table(d) => {
                    write_len(out, d.len() as u64);
                    for (m, _) in d.iter() {
                        self.strings.string(out, m);
                    }
                }
            },
            Value::Hash(h) => match &**h {
                Hash::Listpack(pairs) => {
                    self.scratch.clear();
                    let mut lp = Builder::new(&mut self.scratch);
                    for (f, v) in pairs {
                        lp.push(&mut self.scratch, f);
                        lp.push(&mut self.scratch, v);
                    }
                    lp.finish(&mut self.scratch);
                    self.strings.string(out, &self.scratch);
                }
                Hash::Table(d) => {
                    write_len(out, d.len() as u64);
                    for (f, v) in d.iter() {
                        self.strings.string(out, f);
                        self.strings.string(out, v);
                    }
                }
            },
            Value::ZSet(z) => self.zset(out, z),
            Value::Stream(s) => super::stream::write(self, out, s),
        }
    }

    fn zset(&mut self, out: &mut Vec<u8>, z: &ZSet) {
        if z.dict().is_none() {
            self.scratch.clear();
            let mut lp = Builder::new(&mut self.scratch);
            for (m, score) in z.iter() {
                lp.push(&mut self.scratch, m);
                match double2ll(score) {
                    Some(n) => lp.push_int(&mut self.scratch, n),
                    None => {
                        lp.push(&mut self.scratch, common::fmt::format_double(score).as_bytes())
                    }
                }
            }
            lp.finish(&mut self.scratch);
            self.strings.string(out, &self.scratch);
            return;
        }
        write_len(out, z.len() as u64);
        if let Some(last) = z.len().checked_sub(1) {
            for (m, score) in z.iter_from(last, true) {
                self.strings.string(out, m);
                out.extend_from_slice(&score.to_le_bytes());
            }
        }
    }

    fn list(&mut self, out: &mut Vec<u8>, l: &List) {
        self.scratch.clear();
        self.nodes.clear();
        let fill = l.fill;
        let mut open: Option<(Builder, usize)> = None;
        let plain = PACKED_THRESHOLD.load(std::sync::atomic::Ordering::Relaxed);
        for (i, item) in l.items.iter().enumerate() {
            if item.len() >= plain {
                if let Some((lp, _)) = open.take() {
                    let start = lp.start();
                    lp.finish(&mut self.scratch);
                    self.nodes.push(Node::Packed(start..self.scratch.len()));
                }
                self.nodes.push(Node::Plain(i));
                continue;
            }
            let fits = open.as_ref().is_some_and(|(lp, count)| {
                node_takes(fill, lp.bytes(&self.scratch), *count, item.len())
            });
            if !fits {
                if let Some((lp, _)) = open.take() {
                    let start = lp.start();
                    lp.finish(&mut self.scratch);
                    self.nodes.push(Node::Packed(start..self.scratch.len()));
                }
                open = Some((Builder::new(&mut self.scratch), 0));
            }
            let (lp, count) = open.as_mut().expect("opened above");
            lp.push(&mut self.scratch, item);
            *count += 1;
        }
        if let Some((lp, _)) = open.take() {
            let start = lp.start();
            lp.finish(&mut self.scratch);
            self.nodes.push(Node::Packed(start..self.scratch.len()));
        }
        write_len(out, self.nodes.len() as u64);
        for node in &self.nodes {
            match node {
                Node::Packed(range) => {
                    write_len(out, 2);
                    self.strings.string(out, &self.scratch[range.clone()]);
                }
                Node::Plain(i) => {
                    write_len(out, 1);
                    self.strings.string(out, &l.items[*i]);
                }
            }
        }
    }
}

fn is_empty(value: &Value) -> bool {
    match value {
        Value::Str { .. } => false,
        Value::List(l) => l.is_empty(),
        Value::Hash(h) => h.is_empty(),
        Value::Set(s) => s.is_empty(),
        Value::ZSet(z) => z.is_empty(),
        Value::Stream(_) => false,
    }
}

/// Writes an RDB stream incrementally.
pub struct RdbWriter<W: Write> {
    out: W,
    buf: Vec<u8>,
    crc: u64,
    checksum: bool,
    enc: ValueEncoder,
    flushed: u64,
}

impl<W: Write> RdbWriter<W> {
    /// A writer to `out`; nothing is written before [`RdbWriter::write_header`].
    pub fn new(out: W, options: WriteOptions) -> RdbWriter<W> {
        RdbWriter {
            out,
            buf: Vec::with_capacity(FLUSH_AT + 4096),
            crc: 0,
            checksum: options.checksum,
            enc: ValueEncoder::new(options.compression),
            flushed: 0,
        }
    }

    /// The output written so far (a snapshot writer drains an in-memory output between
    /// chunks, to write it to disk off the keyspace lock).
    pub fn output_mut(&mut self) -> &mut W {
        &mut self.out
    }

    /// Bytes produced so far (flushed or buffered).
    pub fn bytes_written(&self) -> u64 {
        self.flushed + self.buf.len() as u64
    }

    fn flush_buf(&mut self) -> io::Result<()> {
        if self.checksum {
            self.crc = crc64(self.crc, &self.buf);
        }
        self.out.write_all(&self.buf)?;
        self.flushed += self.buf.len() as u64;
        self.buf.clear();
        Ok(())
    }

    #[inline]
    fn maybe_flush(&mut self) -> io::Result<()> {
        if self.buf.len() >= FLUSH_AT {
            self.flush_buf()?;
        }
        Ok(())
    }

    fn aux(&mut self, name: &str, value: &[u8]) {
        self.buf.push(op::AUX);
        self.enc.string(&mut self.buf, name.as_bytes());
        self.enc.string(&mut self.buf, value);
    }

    /// The magic and the AUX fields, in Redis 7.0's order.
    pub fn write_header(&mut self, aux: &Aux<'_>) -> io::Result<()> {
        self.enc.reset();
        self.buf.extend_from_slice(format!("REDIS{RDB_VERSION:04}").as_bytes());
        let mut n = itoa::Buffer::new();
        self.aux("redis-ver", b"7.0.15");
        self.aux("redis-bits", b"64");
        self.aux("ctime", n.format(aux.ctime).as_bytes());
        self.aux("used-mem", n.format(aux.used_mem).as_bytes());
        if let Some(repl) = aux.repl {
            self.aux("repl-stream-db", n.format(repl.stream_db).as_bytes());
            self.aux("repl-id", repl.id.as_bytes());
            self.aux("repl-offset", n.format(repl.offset).as_bytes());
        }
        self.aux("aof-base", if aux.aof_base { b"1" } else { b"0" });
        super::functions::write(&mut self.enc, &mut self.buf, aux.functions);
        self.maybe_flush()
    }

    /// Starts database `index`, which holds `keys` keys, `expires` of them with a TTL.
    pub fn begin_db(&mut self, index: usize, keys: usize, expires: usize) -> io::Result<()> {
        self.buf.push(op::SELECTDB);
        write_len(&mut self.buf, index as u64);
        self.buf.push(op::RESIZEDB);
        write_len(&mut self.buf, keys as u64);
        write_len(&mut self.buf, expires as u64);
        self.maybe_flush()
    }

    /// One key with its value and expiry (unix ms). An empty collection is skipped.
    pub fn write_entry(
        &mut self,
        key: &[u8],
        value: &Value,
        expiry: Option<i64>,
    ) -> io::Result<()> {
        if is_empty(value) {
            return Ok(());
        }
        if let Some(at) = expiry {
            self.buf.push(op::EXPIRETIME_MS);
            self.buf.extend_from_slice(&at.to_le_bytes());
        }
        self.buf.push(ValueEncoder::type_byte(value));
        self.enc.string(&mut self.buf, key);
        self.enc.value(&mut self.buf, value);
        self.maybe_flush()
    }

    /// Writes EOF and the checksum, flushes, and returns the output (for the caller to sync).
    pub fn finish(mut self) -> io::Result<W> {
        self.buf.push(op::EOF);
        self.flush_buf()?;
        let crc = if self.checksum { self.crc } else { 0 };
        self.out.write_all(&crc.to_le_bytes())?;
        self.flushed += 8;
        self.out.flush()?;
        Ok(self.out)
    }
}

/// Writes a whole keyspace: every non-empty database, every key (expired ones included, as
/// Redis does; loaders drop them).
pub fn write_keyspace<W: Write>(
    out: W,
    ks: &Keyspace,
    aux: &Aux<'_>,
    options: WriteOptions,
) -> io::Result<W> {
    super::snapshot::write_whole(ks, RdbWriter::new(out, options), aux)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode_string(s: &[u8], compression: bool) -> Vec<u8> {
        let mut e = ValueEncoder::new(compression);
        let mut out = Vec::new();
        e.string(&mut out, s);
        out
    }

    #[test]
    fn strings_follow_rdb_save_raw_string() {
        assert_eq!(encode_string(b"12345", true), [0xC1, 0x39, 0x30]);
        assert_eq!(encode_string(b"64", true), [0xC0, 0x40]);
        assert_eq!(encode_string(b"-2147483648", true), [0xC2, 0, 0, 0, 0x80]);
        assert_eq!(encode_string(b"2147483648", true), [&[10u8][..], b"2147483648"].concat());
        assert_eq!(encode_string(b"012", true), [&[3u8][..], b"012"].concat());
        let a100 = vec![b'a'; 100];
        assert_eq!(
            encode_string(&a100, true),
            [0xC3, 0x09, 0x40, 0x64, 0x01, 0x61, 0x61, 0xE0, 0x57, 0x00, 0x01, 0x61, 0x61]
        );
        assert_eq!(encode_string(&a100, false)[..2], [0x40, 100]);
    }

    #[test]
    fn lengths_use_the_smallest_form() {
        let enc = |n| {
            let mut v = Vec::new();
            write_len(&mut v, n);
            v
        };
        assert_eq!(enc(63), [63]);
        assert_eq!(enc(64), [0x40, 64]);
        assert_eq!(enc(16383), [0x7F, 0xFF]);
        assert_eq!(enc(16384), [0x80, 0, 0, 0x40, 0]);
        assert_eq!(enc(1 << 32), [0x81, 0, 0, 0, 1, 0, 0, 0, 0]);
    }

    #[test]
    fn double2ll_matches_redis() {
        assert_eq!(double2ll(2.0), Some(2));
        assert_eq!(double2ll(-0.0), Some(0));
        assert_eq!(double2ll(2.5), None);
        assert_eq!(double2ll(f64::INFINITY), None);
        assert_eq!(double2ll(1e300), None);
    }
}
