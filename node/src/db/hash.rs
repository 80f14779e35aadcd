//! The hash type: a listpack (insertion-ordered pairs) while small, a hash table beyond
//! `hash-max-listpack-entries` / `hash-max-listpack-value`.
//!
//! The conversion rules are Redis 7.0's `hashTypeSet`: a field or value longer than
//! `hash-max-listpack-value` (default 64) converts before it is stored, and a listpack holding
//! more than `hash-max-listpack-entries` (default **512** in Redis 7.0, like the old
//! `hash-max-ziplist-entries`; 128 is the *zset* default) pairs after any set (an update
//! included) converts after it.
//! Conversion is one way: deleting fields never turns a table back into a listpack. Keeping
//! the listpack in insertion order is what makes HGETALL, HKEYS, HSCAN and HRANDFIELD of small
//! hashes reply in the same order as Redis.

use std::collections::HashSet;

use rand::Rng;

use super::dict::Dict;
use super::set::sample;
use super::value::{EncodingLimits, Sds, LIMITS};

/// The listpack thresholds, read once per command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// `hash-max-listpack-entries`
    pub entries: usize,
    /// `hash-max-listpack-value`
    pub value: usize,
}

impl Limits {
    /// The thresholds currently configured.
    pub fn current() -> Limits {
        Limits {
            entries: EncodingLimits::get(&LIMITS.hash_entries),
            value: EncodingLimits::get(&LIMITS.hash_value),
        }
    }
}

/// A hash value.
#[derive(Debug, Clone)]
pub enum Hash {
    /// Field/value pairs in insertion order.
    Listpack(Vec<(Sds, Sds)>),
    /// A hash table from field to value.
    Table(Dict<Sds>),
}

impl Default for Hash {
    fn default() -> Self {
        Hash::Listpack(Vec::new())
    }
}

impl Hash {
    /// The name OBJECT ENCODING reports.
    pub fn encoding(&self) -> &'static str {
        match self {
            Hash::Listpack(_) => "listpack",
            Hash::Table(_) => "hashtable",
        }
    }

    /// The number of fields.
    pub fn len(&self) -> usize {
        match self {
            Hash::Listpack(v) => v.len(),
            Hash::Table(d) => d.len(),
        }
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The value of `field`.
    pub fn get(&self, field: &[u8]) -> Option<&Sds> {
        match self {
            Hash::Listpack(v) => v.iter().find(|(f, _)| f.as_slice() == field).map(|(_, v)| v),
            Hash::Table(d) => d.get(field),
        }
    }

    /// True if `field` is present.
    pub fn contains(&self, field: &[u8]) -> bool {
        self.get(field).is_some()
    }

    /// Sets `field`, returning true if it is new, under the configured thresholds.
    pub fn set(&mut self, field: &[u8], value: &[u8]) -> bool {
        self.set_within(field, value, Limits::current())
    }

    /// Sets `field`, returning true if it is new. Converts to a table past `limits`, as
    /// `hashTypeSet` does (an update of a listpack already over the entry limit converts too).
    pub fn set_within(&mut self, field: &[u8], value: &[u8], limits: Limits) -> bool {
        if field.len() > limits.value || value.len() > limits.value {
            self.convert();
        }
        let created = match self {
            Hash::Listpack(pairs) => match pairs.iter_mut().find(|(f, _)| f.as_slice() == field) {
                Some(slot) => {
                    slot.1 = Sds::from_slice(value);
                    false
                }
                None => {
                    pairs.push((Sds::from_slice(field), Sds::from_slice(value)));
                    true
                }
            },
            Hash::Table(d) => d.insert(field, Sds::from_slice(value)).is_none(),
        };
        if self.len() > limits.entries {
            self.convert();
        }
        created
    }

    /// Removes `field`, returning true if it existed.
    pub fn remove(&mut self, field: &[u8]) -> bool {
        match self {
            Hash::Listpack(v) => match v.iter().position(|(f, _)| f.as_slice() == field) {
                Some(i) => {
                    v.remove(i);
                    true
                }
                None => false,
            },
            Hash::Table(d) => d.remove(field).is_some(),
        }
    }

    /// Every field and value (listpack: insertion order).
    pub fn iter(&self) -> Box<dyn Iterator<Item = (&Sds, &Sds)> + '_> {
        match self {
            Hash::Listpack(v) => Box::new(v.iter().map(|(f, v)| (f, v))),
            Hash::Table(d) => Box::new(d.iter()),
        }
    }

    /// The hash table's stats (DEBUG HTSTATS-KEY), if the hash is one.
    pub fn table_stats(&self) -> Option<String> {
        match self {
            Hash::Table(d) => Some(d.stats()),
            Hash::Listpack(_) => None,
        }
    }

    /// One random field and its value (`None` when empty).
    pub fn random_pair(&self, rng: &mut impl Rng) -> Option<(&Sds, &Sds)> {
        match self {
            Hash::Listpack(v) if v.is_empty() => None,
            Hash::Listpack(v) => {
                let (f, v) = &v[rng.gen_range(0..v.len())];
                Some((f, v))
            }
            Hash::Table(d) => d.fair_random(rng),
        }
    }

    /// `count` distinct random pairs, for HRANDFIELD with a positive count (everything when
    /// `count >= len`). A listpack answers in its own order, as Redis's `lpRandomPairsUnique`
    /// does; a large table with a small count is sampled by random picks instead of a full walk.
    pub fn random_distinct(&self, count: usize, rng: &mut impl Rng) -> Vec<(Sds, Sds)> {
        let len = self.len();
        let owned = |(f, v): (&Sds, &Sds)| (f.clone(), v.clone());
        if count >= len {
            return self.iter().map(owned).collect();
        }
        match self {
            Hash::Table(d) if count.saturating_mul(3) <= len => {
                let mut seen = HashSet::with_capacity(count);
                let mut out = Vec::with_capacity(count);
                while out.len() < count {
                    let (f, v) =
                        d.fair_random(rng).expect("count < len, so the table is not empty");
                    if seen.insert(f.clone()) {
                        out.push((f.clone(), v.clone()));
                    }
                }
                out
            }
            _ => sample(self.iter().map(owned), len, count, rng),
        }
    }

    fn convert(&mut self) {
        if let Hash::Listpack(pairs) = self {
            let mut d = Dict::new();
            for (f, v) in pairs.drain(..) {
                d.insert(&f, v);
            }
            *self = Hash::Table(d);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(h: &Hash) -> Vec<Vec<u8>> {
        h.iter().map(|(f, _)| f.to_vec()).collect()
    }

    #[test]
    fn listpack_keeps_insertion_order_and_updates_in_place() {
        let mut h = Hash::default();
        assert!(h.set_within(b"b", b"1", DEFAULTS));
        assert!(h.set_within(b"a", b"2", DEFAULTS));
        assert!(!h.set_within(b"b", b"3", DEFAULTS));
        assert_eq!(fields(&h), [b"b".to_vec(), b"a".to_vec()]);
        assert_eq!(h.get(b"b").map(|v| v.to_vec()), Some(b"3".to_vec()));
        assert!(h.remove(b"b"));
        assert!(!h.remove(b"b"));
        assert_eq!(h.len(), 1);
        assert_eq!(h.encoding(), "listpack");
    }

    /// Redis 7.0's defaults.
    const DEFAULTS: Limits = Limits { entries: 512, value: 64 };

    fn filled(n: usize, limits: Limits) -> Hash {
        let mut h = Hash::default();
        for i in 0..n {
            h.set_within(format!("f{i}").as_bytes(), b"v", limits);
        }
        h
    }

    #[test]
    fn converts_at_513_entries_by_default() {
        let mut h = filled(512, DEFAULTS);
        assert_eq!(h.encoding(), "listpack");
        h.set_within(b"f0", b"updated", DEFAULTS);
        assert_eq!(h.encoding(), "listpack", "an update at the limit does not convert");
        h.set_within(b"f512", b"v", DEFAULTS);
        assert_eq!(h.encoding(), "hashtable");
        assert_eq!(h.len(), 513);
        for i in 0..500 {
            h.remove(format!("f{i}").as_bytes());
        }
        assert_eq!(h.encoding(), "hashtable", "conversion is one way");
        assert_eq!(h.get(b"f512").map(|v| v.to_vec()), Some(b"v".to_vec()));
    }

    #[test]
    fn converts_at_129_entries_with_a_limit_of_128() {
        let limits = Limits { entries: 128, value: 64 };
        let mut h = filled(128, limits);
        assert_eq!(h.encoding(), "listpack");
        h.set_within(b"f128", b"v", limits);
        assert_eq!(h.encoding(), "hashtable");
        // A listpack already over a lowered limit converts on its next set, even an update.
        let mut h = filled(3, DEFAULTS);
        h.set_within(b"f0", b"v", Limits { entries: 2, value: 64 });
        assert_eq!(h.encoding(), "hashtable");
    }

    #[test]
    fn converts_on_a_65_byte_value_or_field() {
        let mut h = Hash::default();
        h.set_within(b"f", &[b'x'; 64], DEFAULTS);
        assert_eq!(h.encoding(), "listpack");
        h.set_within(b"g", &[b'x'; 65], DEFAULTS);
        assert_eq!(h.encoding(), "hashtable");
        assert_eq!(h.len(), 2);

        let mut h = Hash::default();
        h.set_within(&[b'k'; 65], b"v", DEFAULTS);
        assert_eq!(h.encoding(), "hashtable");
    }

    #[test]
    fn random_distinct_is_a_subset_without_repeats() {
        let mut rng = rand::thread_rng();
        let small = filled(10, DEFAULTS);
        let mut big = Hash::default();
        for i in 0..1000 {
            big.set_within(format!("f{i}").as_bytes(), format!("v{i}").as_bytes(), DEFAULTS);
        }
        for (h, count) in [(&small, 4), (&small, 10), (&small, 50), (&big, 5), (&big, 900)] {
            let got = h.random_distinct(count, &mut rng);
            assert_eq!(got.len(), count.min(h.len()));
            let unique: HashSet<_> = got.iter().map(|(f, _)| f.clone()).collect();
            assert_eq!(unique.len(), got.len());
            assert!(got.iter().all(|(f, v)| h.get(f) == Some(v)));
        }
        // A listpack sample keeps the listpack's order.
        let got: Vec<usize> = small
            .random_distinct(5, &mut rng)
            .iter()
            .map(|(f, _)| std::str::from_utf8(&f[1..]).expect("ascii").parse().expect("number"))
            .collect();
        assert!(got.windows(2).all(|w| w[0] < w[1]), "{got:?}");
        assert!(Hash::default().random_pair(&mut rng).is_none());
    }
}
