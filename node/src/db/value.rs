//! The values a key can hold, and the encodings Redis 7.0 reports for them.
//!
//! Small collections use compact, ordered representations exactly when Redis uses its compact
//! encodings (listpack, intset), and convert one way to hashed ones past the same thresholds.
//! That keeps `OBJECT ENCODING` and, more importantly, the element order of replies for small
//! collections (HGETALL, SMEMBERS of an intset, ZRANGE ties) identical to Redis.

use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};

use smallvec::SmallVec;

use super::{hash::Hash, list::List, set::Set, stream::Stream, zset::ZSet};

/// A byte string stored inline up to 16 bytes (most keys and small values), on the heap beyond.
pub type Sds = SmallVec<[u8; 16]>;

/// A value in the keyspace.
#[derive(Debug, Clone)]
pub enum Value {
    /// A string, with the encoding Redis would have given the object that holds it.
    Str {
        /// The bytes.
        bytes: Sds,
        /// How Redis would encode it (reported by OBJECT ENCODING / REFCOUNT).
        enc: StrEnc,
    },
    /// A list.
    List(Box<List>),
    /// A hash.
    Hash(Box<Hash>),
    /// A set.
    Set(Box<Set>),
    /// A sorted set.
    ZSet(Box<ZSet>),
    /// A stream.
    Stream(Box<Stream>),
}

impl Value {
    /// A string value.
    pub fn string(bytes: &[u8]) -> Value {
        Value::Str { bytes: Sds::from_slice(bytes), enc: StrEnc::Auto }
    }

    /// A string value with an explicit encoding.
    pub fn string_with(bytes: &[u8], enc: StrEnc) -> Value {
        Value::Str { bytes: Sds::from_slice(bytes), enc }
    }

    /// The name TYPE reports.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Str { .. } => "string",
            Value::List(_) => "list",
            Value::Hash(_) => "hash",
            Value::Set(_) => "set",
            Value::ZSet(_) => "zset",
            Value::Stream(_) => "stream",
        }
    }

    /// The name OBJECT ENCODING reports.
    pub fn encoding(&self) -> &'static str {
        match self {
            Value::Str { enc: StrEnc::Raw, .. } => "raw",
            Value::Str { enc: StrEnc::Int, .. } => "int",
            Value::Str { bytes, enc: StrEnc::Embstr } => {
                if bytes.len() <= 44 {
                    "embstr"
                } else {
                    "raw"
                }
            }
            Value::Str { bytes, enc: StrEnc::Auto } => {
                if bytes.len() <= 20 && common::fmt::parse_i64(bytes).is_some() {
                    "int"
                } else if bytes.len() <= 44 {
                    "embstr"
                } else {
                    "raw"
                }
            }
            Value::List(_) => "quicklist",
            Value::Hash(h) => h.encoding(),
            Value::Set(s) => s.encoding(),
            Value::ZSet(z) => z.encoding(),
            Value::Stream(_) => "stream",
        }
    }
}

/// How Redis would have encoded a string object. Redis picks `int`/`embstr`/`raw` only when a
/// value goes through `tryObjectEncoding` (SET, APPEND to a new key …); other paths fix the
/// encoding (INCRBYFLOAT builds an embstr even for "5200", APPEND and SETRANGE make raw strings),
/// so the path that produced a value is remembered, in a byte that fits the enum's padding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StrEnc {
    /// Chosen from the content as `tryObjectEncoding` would: small integers are shared objects.
    Auto,
    /// An integer object that is not shared (e.g. a COPY of a small integer).
    Int,
    /// Built as an embedded string regardless of content (INCRBYFLOAT).
    Embstr,
    /// Modified in place (APPEND to an existing key, SETRANGE).
    Raw,
}

/// Thresholds for the compact encodings, settable with CONFIG SET like Redis's.
pub struct EncodingLimits {
    /// `hash-max-listpack-entries`
    pub hash_entries: AtomicUsize,
    /// `hash-max-listpack-value`
    pub hash_value: AtomicUsize,
    /// `set-max-intset-entries`
    pub set_intset_entries: AtomicUsize,
    /// `zset-max-listpack-entries`
    pub zset_entries: AtomicUsize,
    /// `zset-max-listpack-value`
    pub zset_value: AtomicUsize,
    /// `list-max-listpack-size`, clamped to -5..=32767 as `quicklistSetFill` clamps it: a
    /// positive value caps a quicklist node's entries, -1..-5 its bytes (4 KB .. 64 KB).
    pub list_fill: AtomicI64,
}

/// The process-wide encoding thresholds (Redis keeps them in its global config too).
pub static LIMITS: EncodingLimits = EncodingLimits {
    hash_entries: AtomicUsize::new(512),
    hash_value: AtomicUsize::new(64),
    set_intset_entries: AtomicUsize::new(512),
    zset_entries: AtomicUsize::new(128),
    zset_value: AtomicUsize::new(64),
    list_fill: AtomicI64::new(-2),
};

impl EncodingLimits {
    /// Reads one threshold.
    pub fn get(limit: &AtomicUsize) -> usize {
        limit.load(Ordering::Relaxed)
    }

    /// `list-max-listpack-size`, clamped as a quicklist's fill.
    pub fn get_fill() -> i64 {
        LIMITS.list_fill.load(Ordering::Relaxed)
    }
}
