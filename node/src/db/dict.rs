//! A chained hash table with Redis's cursor semantics.
//!
//! Why not `HashMap`: SCAN must return every element that is present for the whole iteration
//! at least once, even when the table grows or shrinks between calls. Redis gets this from a
//! power-of-two bucket array scanned in *reverse-binary* cursor order: when the table doubles,
//! bucket `b` splits into `b` and `b + size`, which the reversed increment visits next to each
//! other, so nothing already visited is revisited in a way that skips others. We keep the same
//! layout, and the same per-key cost (one node allocation plus one bucket pointer), which also
//! keeps memory per key close to Redis's.
//!
//! Resizing is done at once (all nodes are relinked, none copied). Tables grow when they hold
//! as many elements as buckets and shrink below 10 % fill, as Redis's do.

use std::sync::OnceLock;

use rand::Rng;

use super::value::Sds;

type Link<V, M> = Option<Box<Node<V, M>>>;

struct Node<V, M> {
    key: Sds,
    value: V,
    /// Per-entry metadata (the keyspace keeps its LRU clock here); `()` costs nothing.
    meta: M,
    next: Link<V, M>,
}

/// A hash table from byte-string keys to `V`, with optional per-entry metadata `M` that is set
/// to `M::default()` on insertion.
pub struct Dict<V, M = ()> {
    buckets: Vec<Link<V, M>>,
    len: usize,
}

/// One process-wide random seed: hash flooding needs the seed to be secret, not per table, and
/// a shared seed keeps every table 8 bytes smaller.
fn hasher() -> &'static ahash::RandomState {
    static STATE: OnceLock<ahash::RandomState> = OnceLock::new();
    STATE.get_or_init(ahash::RandomState::new)
}

fn hash(key: &[u8]) -> u64 {
    hasher().hash_one(key)
}

/// The hash that places `key` in a bucket (its low bits pick the bucket).
pub(crate) fn key_hash(key: &[u8]) -> u64 {
    hash(key)
}

const MIN_BUCKETS: usize = 4;

impl<V, M> Default for Dict<V, M> {
    fn default() -> Self {
        Dict { buckets: Vec::new(), len: 0 }
    }
}

impl<V, M: Copy + Default> Dict<V, M> {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// The number of elements.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The number of buckets (for INFO and tests).
    pub fn buckets(&self) -> usize {
        self.buckets.len()
    }

    fn slot(&self, key: &[u8]) -> usize {
        (hash(key) as usize) & (self.buckets.len() - 1)
    }

    /// The value stored at `key`.
    pub fn get(&self, key: &[u8]) -> Option<&V> {
        if self.len == 0 {
            return None;
        }
        let mut link = &self.buckets[self.slot(key)];
        while let Some(node) = link {
            if node.key.as_slice() == key {
                return Some(&node.value);
            }
            link = &node.next;
        }
        None
    }

    /// The value stored at `key`, mutably.
    pub fn get_mut(&mut self, key: &[u8]) -> Option<&mut V> {
        if self.len == 0 {
            return None;
        }
        let slot = self.slot(key);
        let mut link = &mut self.buckets[slot];
        while let Some(node) = link {
            if node.key.as_slice() == key {
                return Some(&mut node.value);
            }
            link = &mut node.next;
        }
        None
    }

    /// The value and metadata of `key`, mutably.
    pub fn get_mut_meta(&mut self, key: &[u8]) -> Option<(&mut V, &mut M)> {
        if self.len == 0 {
            return None;
        }
        let slot = self.slot(key);
        let mut link = &mut self.buckets[slot];
        while let Some(node) = link {
            if node.key.as_slice() == key {
                return Some((&mut node.value, &mut node.meta));
            }
            link = &mut node.next;
        }
        None
    }

    /// The metadata of `key`.
    pub fn meta(&self, key: &[u8]) -> Option<M> {
        if self.len == 0 {
            return None;
        }
        let mut link = &self.buckets[self.slot(key)];
        while let Some(node) = link {
            if node.key.as_slice() == key {
                return Some(node.meta);
            }
            link = &node.next;
        }
        None
    }

    /// True if `key` is present.
    pub fn contains_key(&self, key: &[u8]) -> bool {
        self.get(key).is_some()
    }

    /// Stores `value` at `key`, returning the previous value.
    pub fn insert(&mut self, key: &[u8], value: V) -> Option<V> {
        if let Some(slot) = self.get_mut(key) {
            return Some(std::mem::replace(slot, value));
        }
        self.insert_new(key, value);
        None
    }

    /// Inserts a key known to be absent.
    fn insert_new(&mut self, key: &[u8], value: V) -> &mut V {
        if self.len >= self.buckets.len() {
            self.resize((self.len + 1).next_power_of_two().max(MIN_BUCKETS));
        }
        let slot = self.slot(key);
        let next = self.buckets[slot].take();
        self.len += 1;
        let node = self.buckets[slot].insert(Box::new(Node {
            key: Sds::from_slice(key),
            value,
            meta: M::default(),
            next,
        }));
        &mut node.value
    }

    /// The value at `key`, inserting `make()` first if absent. Hashes the key once when present.
    pub fn get_or_insert_with(&mut self, key: &[u8], make: impl FnOnce() -> V) -> &mut V {
        if self.len > 0 {
            let slot = self.slot(key);
            let mut depth = 0;
            let mut link = &self.buckets[slot];
            let mut found = false;
            while let Some(node) = link {
                if node.key.as_slice() == key {
                    found = true;
                    break;
                }
                depth += 1;
                link = &node.next;
            }
            if found {
                let mut node = self.buckets[slot].as_deref_mut().expect("the chain holds the key");
                for _ in 0..depth {
                    node = node.next.as_deref_mut().expect("the chain is at least this deep");
                }
                return &mut node.value;
            }
        }
        self.insert_new(key, make())
    }

    /// Removes `key`, returning its value.
    pub fn remove(&mut self, key: &[u8]) -> Option<V> {
        let value = self.remove_keep_size(key)?;
        self.maybe_shrink();
        Some(value)
    }

    /// Removes `key` without shrinking the table (a frozen walk is in progress).
    pub fn remove_keep_size(&mut self, key: &[u8]) -> Option<V> {
        if self.len == 0 {
            return None;
        }
        let slot = self.slot(key);
        let mut link = &mut self.buckets[slot];
        loop {
            match link {
                None => return None,
                Some(node) if node.key.as_slice() == key => {
                    let mut node = link.take().expect("matched Some");
                    *link = node.next.take();
                    self.len -= 1;
                    return Some(node.value);
                }
                Some(node) => link = &mut node.next,
            }
        }
    }

    /// Makes room for `additional` more elements without a resize (the RDB loader's RESIZEDB
    /// hint: one allocation instead of twenty relinking passes while a large database loads).
    pub fn reserve(&mut self, additional: usize) {
        let want = self.len.saturating_add(additional);
        if want > self.buckets.len() {
            self.resize(want.checked_next_power_of_two().unwrap_or(want).max(MIN_BUCKETS));
        }
    }

    /// Removes every element.
    pub fn clear(&mut self) {
        // Unlink chains iteratively: dropping a long chain recursively could overflow the stack.
        for bucket in &mut self.buckets {
            let mut link = bucket.take();
            while let Some(mut node) = link {
                link = node.next.take();
            }
        }
        self.buckets = Vec::new();
        self.len = 0;
    }

    fn maybe_shrink(&mut self) {
        if self.buckets.len() > MIN_BUCKETS && self.len * 10 < self.buckets.len() {
            self.resize(self.len.next_power_of_two().max(MIN_BUCKETS));
        }
    }

    fn resize(&mut self, size: usize) {
        let old = std::mem::replace(&mut self.buckets, (0..size).map(|_| None).collect());
        for mut link in old {
            while let Some(mut node) = link {
                link = node.next.take();
                let slot = self.slot(&node.key);
                node.next = self.buckets[slot].take();
                self.buckets[slot] = Some(node);
            }
        }
    }

    /// Visits the bucket named by `cursor` and returns the next cursor (0 when done), with
    /// Redis's `dictScan` guarantee: an element present from the first call to the last is
    /// visited at least once, across any number of resizes.
    pub fn scan(&self, cursor: u64, mut visit: impl FnMut(&Sds, &V)) -> u64 {
        if self.buckets.is_empty() {
            return 0;
        }
        let mask = (self.buckets.len() - 1) as u64;
        let mut link = &self.buckets[(cursor & mask) as usize];
        while let Some(node) = link {
            visit(&node.key, &node.value);
            link = &node.next;
        }
        // Increment the reversed cursor, considering only the masked bits.
        let mut v = cursor | !mask;
        v = v.reverse_bits();
        v = v.wrapping_add(1);
        v.reverse_bits()
    }

    /// A uniformly chosen bucket's random element, as Redis's `dictGetRandomKey` (not exactly
    /// uniform over elements when chains differ in length, which Redis accepts too).
    pub fn random(&self, rng: &mut impl Rng) -> Option<(&Sds, &V)> {
        if self.len == 0 {
            return None;
        }
        let mask = self.buckets.len() - 1;
        loop {
            let bucket = &self.buckets[rng.gen::<usize>() & mask];
            let Some(first) = bucket else { continue };
            let mut chain = 1;
            let mut node = first;
            while let Some(next) = &node.next {
                chain += 1;
                node = next;
            }
            let mut pick = rng.gen_range(0..chain);
            let mut node = first;
            while pick > 0 {
                node = node.next.as_ref().expect("pick < chain length");
                pick -= 1;
            }
            return Some((&node.key, &node.value));
        }
    }

    /// Every element, in bucket order.
    pub fn iter(&self) -> Iter<'_, V, M> {
        Iter { buckets: &self.buckets, bucket: 0, node: None }
    }

    /// Every key, in bucket order.
    pub fn keys(&self) -> impl Iterator<Item = &Sds> {
        self.iter().map(|(k, _)| k)
    }

    /// Every value, mutably.
    pub fn for_each_mut(&mut self, mut f: impl FnMut(&Sds, &mut V)) {
        for bucket in &mut self.buckets {
            let mut link = bucket.as_deref_mut();
            while let Some(node) = link {
                f(&node.key, &mut node.value);
                link = node.next.as_deref_mut();
            }
        }
    }
}

impl<V, M> Drop for Dict<V, M> {
    fn drop(&mut self) {
        // Unlink chains iteratively: dropping a long chain recursively could overflow the stack.
        for bucket in &mut self.buckets {
            let mut link = bucket.take();
            while let Some(mut node) = link {
                link = node.next.take();
            }
        }
    }
}

/// Iterator over a [`Dict`].
pub struct Iter<'a, V, M = ()> {
    buckets: &'a [Link<V, M>],
    bucket: usize,
    node: Option<&'a Node<V, M>>,
}

impl<'a, V, M> Iterator for Iter<'a, V, M> {
    type Item = (&'a Sds, &'a V);

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(node) = self.node {
                self.node = node.next.as_deref();
                return Some((&node.key, &node.value));
            }
            let bucket = self.buckets.get(self.bucket)?;
            self.bucket += 1;
            self.node = bucket.as_deref();
        }
    }
}

impl<V: Clone, M: Copy + Default> Clone for Dict<V, M> {
    fn clone(&self) -> Self {
        let mut copy = Dict::new();
        for (k, v) in self.iter() {
            copy.insert(k, v.clone());
        }
        copy
    }
}

impl<V: std::fmt::Debug, M: Copy + Default> std::fmt::Debug for Dict<V, M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map().entries(self.iter().map(|(k, v)| (String::from_utf8_lossy(k), v))).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    fn key(i: usize) -> Vec<u8> {
        format!("key:{i}").into_bytes()
    }

    #[test]
    fn insert_get_remove() {
        let mut d: Dict<usize> = Dict::new();
        for i in 0..1000 {
            assert_eq!(d.insert(&key(i), i), None);
        }
        assert_eq!(d.insert(&key(5), 55), Some(5));
        assert_eq!(d.len(), 1000);
        assert_eq!(d.get(&key(5)), Some(&55));
        for i in 0..990 {
            assert!(d.remove(&key(i)).is_some());
        }
        assert_eq!(d.len(), 10);
        assert!(d.buckets() <= 16, "table shrinks: {}", d.buckets());
        assert_eq!(d.iter().count(), 10);
    }

    /// The SCAN guarantee: keys present for the whole scan are all returned, while other keys
    /// are added and removed and the table grows and shrinks between cursor steps.
    #[test]
    fn scan_survives_resizes() {
        let mut rng = rand::thread_rng();
        for round in 0..20 {
            let mut d: Dict<()> = Dict::new();
            let stable: Vec<Vec<u8>> = (0..200).map(key).collect();
            for k in &stable {
                d.insert(k, ());
            }
            let mut seen = HashSet::new();
            let mut cursor = 0;
            let mut step = 0;
            loop {
                cursor = d.scan(cursor, |k, _| {
                    seen.insert(k.to_vec());
                });
                step += 1;
                // Churn: grow a lot on some steps, shrink on others.
                if (step + round) % 3 == 0 {
                    for _ in 0..rng.gen_range(0..2000) {
                        d.insert(format!("tmp:{}", rng.gen::<u32>()).as_bytes(), ());
                    }
                } else {
                    let tmp: Vec<Vec<u8>> =
                        d.keys().filter(|k| k.starts_with(b"tmp:")).map(|k| k.to_vec()).collect();
                    for k in tmp {
                        d.remove(&k);
                    }
                }
                if cursor == 0 {
                    break;
                }
            }
            for k in &stable {
                assert!(seen.contains(k), "round {round}: {:?} missed", String::from_utf8_lossy(k));
            }
        }
    }

    #[test]
    fn random_finds_elements() {
        let mut d: Dict<i32> = Dict::new();
        let mut rng = rand::thread_rng();
        assert!(d.random(&mut rng).is_none());
        d.insert(b"only", 1);
        assert_eq!(d.random(&mut rng).map(|(k, _)| k.to_vec()), Some(b"only".to_vec()));
    }
}
