//! The values a key can hold, and the encodings Redis 7.0 reports for them.
//!
//! Small collections use compact, ordered representations exactly when Redis uses its compact
//! encodings (listpack, intset), and convert one way to hashed ones past the same thresholds.
//! That keeps `OBJECT ENCODING` and, more importantly, the element order of replies for small
//! collections (HGETALL, SMEMBERS of an intset, ZRANGE ties) identical to Redis.

use std::sync::atomic::{AtomicUsize, Ordering};

use smallvec::SmallVec;

use super::{hash::Hash, list::List, set::Set, zset::ZSet};

/// A byte string stored inline up to 16 bytes (most keys and small values), on the heap beyond.
pub type Sds = SmallVec<[u8; 16]>;

/// A value in the keyspace.
#[derive(Debug, Clone)]
pub enum Value {
    /// A string. `raw` records that it was built in place (APPEND, SETRANGE), which Redis
    /// reports as the `raw` encoding whatever its length.
    Str {
        /// The bytes.
        bytes: Sds,
        /// Built in place.
        raw: bool,
    },
    /// A list.
    List(Box<List>),
    /// A hash.
    Hash(Box<Hash>),
    /// A set.
    Set(Box<Set>),
    /// A sorted set.
    ZSet(Box<ZSet>),
}

impl Value {
    /// A string value.
    pub fn string(bytes: &[u8]) -> Value {
        Value::Str { bytes: Sds::from_slice(bytes), raw: false }
    }

    /// The name TYPE reports.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Str { .. } => "string",
            Value::List(_) => "list",
            Value::Hash(_) => "hash",
            Value::Set(_) => "set",
            Value::ZSet(_) => "zset",
        }
    }

    /// The name OBJECT ENCODING reports.
    pub fn encoding(&self) -> &'static str {
        match self {
            Value::Str { raw: true, .. } => "raw",
            Value::Str { bytes, .. } => {
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
        }
    }
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
}

/// The process-wide encoding thresholds (Redis keeps them in its global config too).
pub static LIMITS: EncodingLimits = EncodingLimits {
    hash_entries: AtomicUsize::new(128),
    hash_value: AtomicUsize::new(64),
    set_intset_entries: AtomicUsize::new(512),
    zset_entries: AtomicUsize::new(128),
    zset_value: AtomicUsize::new(64),
};

impl EncodingLimits {
    /// Reads one threshold.
    pub fn get(limit: &AtomicUsize) -> usize {
        limit.load(Ordering::Relaxed)
    }
}
