//! MEMORY USAGE: an estimate of the bytes a key and its value take, as Redis's
//! `objectComputeSize` estimates them.
//!
//! The system allocator cannot be asked what one value holds, so the estimate adds what each
//! encoding is made of: the table entry for the key, the inline parts of strings (up to 16
//! bytes are stored in place) and their heap parts, and per element of an aggregate its slot or
//! node. As in Redis, only `samples` elements of an aggregate are looked at (0: all of them)
//! and the rest is extrapolated from their average.

use std::mem::size_of;

use super::value::{Sds, Value};

/// A keyspace table entry besides the key and value themselves: the chain link, the access
/// clock and the bucket pointer that points at it.
pub const ENTRY: usize = 3 * size_of::<usize>();
/// A hash table node of an aggregate (link and bucket pointer).
const NODE: usize = 2 * size_of::<usize>();
/// A skiplist node besides its member: score, backward link, an average of 1.33 levels.
const SKIPLIST_NODE: usize = 8 + 8 + 2 * 16;

/// What `bytes` takes on the heap beyond its inline storage, rounded as malloc rounds.
fn heap(bytes: &[u8]) -> usize {
    if bytes.len() <= 16 {
        0
    } else {
        bytes.len().div_ceil(16) * 16
    }
}

/// The estimated bytes of `key` holding `value`.
pub fn usage(key: &[u8], value: &Value, samples: usize) -> u64 {
    let own = ENTRY + size_of::<Sds>() + size_of::<Value>() + heap(key);
    let inner = match value {
        Value::Str { bytes, .. } => heap(bytes),
        Value::List(list) => {
            let items = list.items.iter().map(|i| size_of::<Sds>() + heap(i));
            size_of_val(&**list) + extrapolate(items, list.len(), samples)
        }
        Value::Hash(hash) => {
            let per_pair = match hash.encoding() {
                "listpack" => 0,
                _ => NODE,
            };
            let pairs =
                hash.iter().map(|(f, v)| 2 * size_of::<Sds>() + per_pair + heap(f) + heap(v));
            size_of_val(&**hash) + extrapolate(pairs, hash.len(), samples)
        }
        Value::Set(set) => {
            let members = set.iter().map(|m| match set.encoding() {
                "intset" => 8,
                _ => size_of::<Sds>() + NODE + heap(&m),
            });
            size_of_val(&**set) + extrapolate(members, set.len(), samples)
        }
        Value::ZSet(zset) => {
            let skiplist = zset.encoding() == "skiplist";
            let members = zset.iter().map(|(m, _)| {
                let node = if skiplist { SKIPLIST_NODE + NODE } else { 0 };
                size_of::<Sds>() + 8 + node + heap(m)
            });
            size_of_val(&**zset) + extrapolate(members, zset.len(), samples)
        }
        Value::Stream(stream) => {
            size_of_val(&**stream) + stream.nodes.values().map(|lp| 16 + heap(lp)).sum::<usize>()
        }
    };
    (own + inner) as u64
}

impl super::snapshot_dict::Footprint for Value {
    fn footprint(&self, key: &[u8]) -> usize {
        usage(key, self, 5) as usize
    }
}

/// The sizes of the first `samples` elements (all when 0), scaled up to `len` elements.
fn extrapolate(sizes: impl Iterator<Item = usize>, len: usize, samples: usize) -> usize {
    let take = if samples == 0 { len } else { samples.min(len) };
    if take == 0 {
        return 0;
    }
    let seen: usize = sizes.take(take).sum();
    seen * len / take
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_with_what_is_stored_and_samples_aggregates() {
        let small = usage(b"k", &Value::string(b"v"), 5);
        let big = usage(b"k", &Value::string(&[b'x'; 1000]), 5);
        assert!(big >= small + 1000, "{small} {big}");
        let mut list = crate::db::list::List::default();
        for i in 0..1000 {
            list.items.push_back(Sds::from_slice(format!("{i:040}").as_bytes()));
        }
        let list = Value::List(Box::new(list));
        let sampled = usage(b"l", &list, 5);
        let exact = usage(b"l", &list, 0);
        // Every element is alike, so sampling five of them extrapolates exactly.
        assert_eq!(sampled, exact);
        assert!(exact > 1000 * 40, "{exact}");
    }
}
