//! The RDB codec: Redis 7.0's snapshot format (version 10), read and written without I/O
//! policy. Saving on a schedule, file names, fsync and renames belong to the caller; this module
//! turns a keyspace into bytes and bytes into a keyspace, and nothing else.
//!
//! # File layout (RDB version 10)
//!
//! ```text
//! "REDIS0010"                                              magic + 4-digit version
//! { 0xFA AUX <string key> <string value> }*                redis-ver, redis-bits, ctime, used-mem,
//!                                                          [repl-stream-db, repl-id, repl-offset], aof-base
//! for each non-empty database:
//!     0xFE SELECTDB <length db>
//!     0xFB RESIZEDB <length keys> <length keys with a TTL>
//!     for each key:
//!         [0xFC EXPIRETIME_MS <i64 LE unix ms>]           (0xFD EXPIRETIME <i32 LE unix s> in old files)
//!         [0xF8 IDLE <length>] [0xF9 FREQ <u8>]            eviction hints: read and ignored
//!         <u8 value type> <string key> <value>
//! 0xFF EOF
//! <u64 LE CRC-64 of every byte above>                      all zero: not computed (rdbchecksum no)
//! ```
//!
//! A **length** is 1, 2, 5 or 9 bytes: `00xxxxxx` (6 bits), `01xxxxxx xxxxxxxx` (14 bits,
//! big-endian), `0x80` + u32 BE, `0x81` + u64 BE. A first byte `11xxxxxx` instead announces a
//! specially encoded **string**: `0xC0`/`0xC1`/`0xC2` an 8/16/32-bit little-endian integer
//! (read back as its decimal text), `0xC3 <length compressed> <length original> <LZF data>`.
//! Otherwise a string is `<length n>` + n bytes.
//!
//! Values by type byte (what we write in bold):
//!
//! | type | value                                                                        |
//! |------|------------------------------------------------------------------------------|
//! | **0**  | string                                                                     |
//! | 1    | list: `<len n>` + n strings                                                  |
//! | **2**  | set (hash table): `<len n>` + n strings                                    |
//! | 3    | zset: `<len n>` + n × (string, score as `<u8 len>` + ASCII; 253 NaN, 254 +inf, 255 -inf) |
//! | **4**  | hash (hash table): `<len n>` + n × (field, value)                          |
//! | **5**  | zset (skiplist): `<len n>` + n × (member, f64 LE), highest score first     |
//! | 6, 7 | module values: refused                                                       |
//! | 9    | hash as a zipmap blob ([`ziplist`])                                          |
//! | 10   | list as a ziplist blob                                                       |
//! | **11** | set as an intset blob ([`intset`])                                         |
//! | 12, 13 | zset / hash as a ziplist blob of pairs                                     |
//! | 14   | list: `<len nodes>` + ziplist blobs                                          |
//! | 15, **19** | stream: nodes (master ID + listpack blob), metadata, groups (`stream.rs`) |
//! | 21   | stream of Redis 7.2 (RDB version 11): refused                                |
//! | **16**, **17** | hash / zset as a listpack blob of pairs ([`listpack`])             |
//! | **18** | list: `<len nodes>` + nodes × (`<len>` 2 = listpack blob, 1 = one plain element) |
//!
//! Blobs are strings, so they may be LZF-compressed like any other string.
//!
//! # What we write
//!
//! Exactly what Redis 7.0.15 writes for the same values (see [`encode`]): the compact types
//! 11/16/17 for values in their compact encodings, 2/4/5 for hashed ones, 18 for every list, 19
//! for every stream,
//! integer and LZF string forms under Redis's rules. So `redis-server` 7.0 and
//! `redis-check-rdb` (whose deep checks we mirror when reading) accept our files, and a DUMP
//! payload ([`payload`]) is byte-identical to Redis's for a value Redis encodes the same way.
//!
//! # Reading
//!
//! [`decode::load`] streams any `Read`, validating as it goes: it never panics, never recurses,
//! and never lets a length from the input decide an allocation on its own: when the input size
//! is known (a file) every length is checked against the bytes left before anything is
//! allocated, and when it is not (a socket) buffers grow in chunks as data actually arrives; an
//! LZF string may only claim what its compressed bytes can expand to. Every error names its
//! byte offset; a file that simply stops is [`RdbError::Truncated`], which a caller may treat
//! as a torn tail (the checksum is only verified at the end, so a torn file is never silently
//! accepted). Values get the encodings Redis would give them on load, decided by the db types
//! under the current [`LIMITS`].
//!
//! [`LIMITS`]: crate::db::value::LIMITS

pub mod crc64;
pub mod decode;
pub mod dumpfile;
pub mod encode;
pub mod functions;
mod input;
pub mod intset;
pub mod listpack;
pub mod lzf;
mod object;
pub mod pace;
pub mod payload;
pub mod snapshot;
mod stream;
pub mod ziplist;

use std::borrow::Cow;

pub use decode::{load, load_file, load_file_with, Checksum, LoadOptions, LoadSummary};
pub use encode::{write_keyspace, Aux, RdbWriter, ReplAux, WriteOptions};

/// The RDB version we write and the newest we read (Redis 7.0).
pub const RDB_VERSION: u16 = 10;

/// Top-level opcodes (at the position of a value type).
pub mod opcode {
    /// A Redis Functions library (7.0+): its source.
    pub const FUNCTION2: u8 = 0xF5;
    /// The pre-GA functions format (7.0 release candidates): refused, as Redis 7.0 refuses it.
    pub const FUNCTION_PRE_GA: u8 = 0xF6;
    /// Module data not tied to a key: refused.
    pub const MODULE_AUX: u8 = 0xF7;
    /// LRU idle seconds of the next key.
    pub const IDLE: u8 = 0xF8;
    /// LFU counter of the next key.
    pub const FREQ: u8 = 0xF9;
    /// An auxiliary field.
    pub const AUX: u8 = 0xFA;
    /// Size hints of the current database.
    pub const RESIZEDB: u8 = 0xFB;
    /// Expiry of the next key, unix ms.
    pub const EXPIRETIME_MS: u8 = 0xFC;
    /// Expiry of the next key, unix seconds (old files).
    pub const EXPIRETIME: u8 = 0xFD;
    /// Switch database.
    pub const SELECTDB: u8 = 0xFE;
    /// End of the data; the checksum follows.
    pub const EOF: u8 = 0xFF;
}

/// Value type bytes.
pub mod rdb_type {
    /// String.
    pub const STRING: u8 = 0;
    /// List of strings (legacy).
    pub const LIST: u8 = 1;
    /// Set, hash-table encoded.
    pub const SET: u8 = 2;
    /// Sorted set with text scores (legacy).
    pub const ZSET: u8 = 3;
    /// Hash, hash-table encoded.
    pub const HASH: u8 = 4;
    /// Sorted set with binary scores.
    pub const ZSET_2: u8 = 5;
    /// Module value (pre-GA).
    pub const MODULE: u8 = 6;
    /// Module value.
    pub const MODULE_2: u8 = 7;
    /// Hash as a zipmap (Redis 2.4).
    pub const HASH_ZIPMAP: u8 = 9;
    /// List as a ziplist.
    pub const LIST_ZIPLIST: u8 = 10;
    /// Set as an intset.
    pub const SET_INTSET: u8 = 11;
    /// Sorted set as a ziplist.
    pub const ZSET_ZIPLIST: u8 = 12;
    /// Hash as a ziplist.
    pub const HASH_ZIPLIST: u8 = 13;
    /// List as a quicklist of ziplists.
    pub const LIST_QUICKLIST: u8 = 14;
    /// Stream (v1).
    pub const STREAM_LISTPACKS: u8 = 15;
    /// Hash as a listpack.
    pub const HASH_LISTPACK: u8 = 16;
    /// Sorted set as a listpack.
    pub const ZSET_LISTPACK: u8 = 17;
    /// List as a quicklist of listpacks (and plain nodes).
    pub const LIST_QUICKLIST_2: u8 = 18;
    /// Stream (v2).
    pub const STREAM_LISTPACKS_2: u8 = 19;
    /// Stream (v3, Redis 7.2).
    pub const STREAM_LISTPACKS_3: u8 = 21;
}

/// One element of a listpack or ziplist: a string or an integer (its decimal text).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Elem<'a> {
    /// Bytes.
    Str(&'a [u8]),
    /// An integer, which stands for its decimal text.
    Int(i64),
}

impl<'a> Elem<'a> {
    /// The element as bytes (an integer as its decimal text).
    pub fn to_bytes(self) -> Cow<'a, [u8]> {
        match self {
            Elem::Str(s) => Cow::Borrowed(s),
            Elem::Int(n) => Cow::Owned(itoa::Buffer::new().format(n).as_bytes().to_vec()),
        }
    }

    /// The element as an owned value string.
    pub fn to_sds(self) -> crate::db::Sds {
        match self {
            Elem::Str(s) => crate::db::Sds::from_slice(s),
            Elem::Int(n) => crate::db::Sds::from_slice(itoa::Buffer::new().format(n).as_bytes()),
        }
    }
}

/// Why an RDB stream could not be loaded. Every variant names the byte offset where the
/// problem was found.
#[derive(Debug, thiserror::Error)]
pub enum RdbError {
    /// The input stopped in the middle of the data: a torn or partial file.
    #[error("unexpected end of file at offset {offset}")]
    Truncated {
        /// How many bytes the input held.
        offset: u64,
    },
    /// The bytes do not form a valid RDB file.
    #[error("corrupt RDB at offset {offset}: {reason}")]
    Corrupt {
        /// Where.
        offset: u64,
        /// What is wrong.
        reason: String,
    },
    /// Valid RDB that holds something warden-node does not implement.
    #[error("{what} (at offset {offset})")]
    Unsupported {
        /// Where.
        offset: u64,
        /// What, e.g. "key 'x' holds a module value, which warden-node does not support".
        what: String,
    },
    /// The stored CRC-64 does not match the content.
    #[error(
        "RDB checksum mismatch at offset {offset}: stored {stored:016x}, computed {computed:016x}"
    )]
    Checksum {
        /// Offset of the stored checksum.
        offset: u64,
        /// The checksum in the file.
        stored: u64,
        /// The checksum of the content.
        computed: u64,
    },
    /// Reading failed.
    #[error("I/O error at offset {offset}: {source}")]
    Io {
        /// Where.
        offset: u64,
        /// The error.
        source: std::io::Error,
    },
}

impl RdbError {
    /// The byte offset the error refers to.
    pub fn offset(&self) -> u64 {
        match self {
            RdbError::Truncated { offset }
            | RdbError::Corrupt { offset, .. }
            | RdbError::Unsupported { offset, .. }
            | RdbError::Checksum { offset, .. }
            | RdbError::Io { offset, .. } => *offset,
        }
    }

    /// True if the input simply ended early (a torn tail), as opposed to holding bad bytes.
    pub fn is_truncated(&self) -> bool {
        matches!(self, RdbError::Truncated { .. })
    }
}

/// A key as error messages show it: printable ASCII as is, other bytes escaped.
pub(crate) fn show_key(key: &[u8]) -> String {
    key.escape_ascii().to_string()
}
