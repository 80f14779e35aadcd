//! DEBUG DIGEST and DEBUG DIGEST-VALUE: Redis's SHA-1 fingerprint of a dataset or of single
//! values, computed exactly as Redis 7.0 computes it, so a digest taken on warden-node equals
//! the one redis-server gives for the same data (tests compare a master with its replicas, or a
//! dataset before and after a reload, this way).
//!
//! Two operations: `xor(d, data)` folds SHA1(data) into `d` by XOR (order does not matter: set
//! members, hash fields and sorted set entries by their own digests, keys by theirs); `mix(d, data)` sets `d = SHA1(d XOR SHA1(data))` (order
//! matters: list elements, and the parts of one entry). A key's digest mixes the key, the
//! value's type as a 32-bit big-endian number, then the value; a TTL XORs in `!!expire!!`.
//! Each non-empty database mixes its index into the result before its keys are XORed in.

use super::value::Value;
use super::Keyspace;

/// A 20-byte digest.
pub type Digest = [u8; 20];

fn sha1(data: &[u8]) -> Digest {
    sha1_smol::Sha1::from(data).digest().bytes()
}

fn xor(digest: &mut Digest, data: &[u8]) {
    for (d, h) in digest.iter_mut().zip(sha1(data)) {
        *d ^= h;
    }
}

fn mix(digest: &mut Digest, data: &[u8]) {
    xor(digest, data);
    *digest = sha1(&digest[..]);
}

/// Redis's object type numbers (`OBJ_STRING` …), which the digest includes.
fn type_number(value: &Value) -> u32 {
    match value {
        Value::Str { .. } => 0,
        Value::List(_) => 1,
        Value::Set(_) => 2,
        Value::ZSet(_) => 3,
        Value::Hash(_) => 4,
        Value::Stream(_) => 6,
    }
}

/// The digest of one value (Redis's `xorObjectDigest` on a zeroed digest), with or without
/// a TTL.
pub fn value_digest(digest: &mut Digest, value: &Value, has_ttl: bool) {
    mix(digest, &type_number(value).to_be_bytes());
    match value {
        Value::Str { bytes, .. } => mix(digest, bytes),
        Value::List(list) => {
            for item in list.range(0, -1) {
                mix(digest, item);
            }
        }
        Value::Set(set) => {
            for member in set.iter() {
                xor(digest, &member);
            }
        }
        Value::ZSet(zset) => {
            for (member, score) in zset.iter() {
                let mut element = [0u8; 20];
                mix(&mut element, member);
                mix(&mut element, common::fmt::format_double(score).as_bytes());
                xor(digest, &element);
            }
        }
        Value::Hash(hash) => {
            for (field, value) in hash.iter() {
                let mut element = [0u8; 20];
                mix(&mut element, field);
                mix(&mut element, value);
                xor(digest, &element);
            }
        }
        Value::Stream(stream) => {
            for (id, fields) in super::stream::read::live_entries(stream) {
                mix(digest, format!("{}.{}", id.ms, id.seq).as_bytes());
                for (field, value) in &fields {
                    mix(digest, field);
                    mix(digest, value);
                }
            }
        }
    }
    if has_ttl {
        xor(digest, b"!!expire!!");
    }
}

/// The digest of the whole dataset (all zero when it is empty). Logically expired keys that
/// are still stored count, as in Redis.
pub fn dataset_digest(ks: &Keyspace) -> Digest {
    let mut result = [0u8; 20];
    for (index, db) in ks.dbs.iter().enumerate() {
        if db.keys.is_empty() {
            continue;
        }
        mix(&mut result, &(index as u32).to_be_bytes());
        for (key, value) in db.keys.iter() {
            let mut entry = [0u8; 20];
            mix(&mut entry, key);
            value_digest(&mut entry, value, db.expires.get(key).is_some());
            xor(&mut result, &entry);
        }
    }
    result
}

/// A digest as Redis prints it: 40 lowercase hex characters.
pub fn hex(digest: &Digest) -> String {
    digest.iter().map(|b| format!("{b:02x}")).collect()
}
