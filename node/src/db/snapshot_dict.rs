//! A [`Dict`] that can hold a point-in-time view of itself while it keeps changing: the
//! keyspace's table of keys and its table of expiries, so BGSAVE can write a consistent
//! snapshot in small chunks without stopping writers and without copying the dataset (we do
//! not fork).
//!
//! # The invariant
//!
//! While frozen at time T0, for every key `k` the snapshot holds exactly `k`'s value at T0 (or
//! nothing if `k` did not exist at T0). The walk visits buckets in [`Dict::scan`] order; that
//! order sorts keys by their bit-reversed hash, so "already written" is one comparison,
//! `reverse(hash(k)) < reverse(cursor)`, and stays true when the table grows, including while
//! a resize is half done (a scan step then covers a bucket of the smaller array and all its
//! expansions in the larger one). No shrink starts while frozen: it would make the scan
//! revisit buckets. Hence:
//!
//! - a key the walk has passed is written; changing it afterwards is free;
//! - the first change to a key the walk has not passed records its T0 value (or its absence)
//!   in `before`, and the walk writes that record instead of the live entry (or skips the
//!   key when it did not exist at T0);
//! - a key deleted before the walk reached it survives only in `before`, and is written when
//!   the walk ends;
//! - a whole-table clear (FLUSHDB, FLUSHALL) detaches the table as it is: the walk continues
//!   over the detached table, which nothing changes any more.
//!
//! Every way to change the table goes through the methods below (this type derefs to `Dict`
//! only immutably), so no write path can forget the copy. `tests::snapshot_is_point_in_time`
//! checks the invariant against random interleavings of writes and walk steps.

use std::collections::HashMap;
use std::ops::Deref;

use super::dict::{key_hash, Dict};
use super::value::Sds;

/// A table of the keyspace, with an optional frozen view.
pub struct SnapshotDict<V, M = ()> {
    live: Dict<V, M>,
    frozen: Option<Box<Frozen<V, M>>>,
}

/// The state of one frozen view: how far the walk has come, and the T0 values of the keys
/// changed ahead of it.
struct Frozen<V, M> {
    /// The database this view was frozen as (SWAPDB moves tables between indexes).
    origin: usize,
    /// The walk's next scan cursor.
    cursor: u64,
    /// The walk passed every bucket.
    walked: bool,
    /// Keys changed before the walk reached them: `Some(value at T0)`, or `None` when the key
    /// did not exist at T0.
    before: HashMap<Sds, Option<V>>,
    /// The table as it was when it was cleared while frozen.
    detached: Option<Dict<V, M>>,
    /// The estimated bytes of the copies in `before` and of `detached`: memory only this view
    /// keeps alive.
    kept: usize,
}

/// The estimated bytes a stored value takes, for what a frozen view keeps alive: eviction
/// leaves that memory out of what it compares with `maxmemory`, as a forked Redis's
/// copy-on-write pages are not in its `used_memory` either.
pub trait Footprint {
    /// The estimate, key and table entry included.
    fn footprint(&self, key: &[u8]) -> usize;
}

impl Footprint for i64 {
    fn footprint(&self, _key: &[u8]) -> usize {
        // An expiry's entry shares its key with the keys table.
        std::mem::size_of::<usize>() * 3 + 8
    }
}

impl Footprint for u64 {
    fn footprint(&self, key: &[u8]) -> usize {
        key.len() + 8
    }
}

impl<V, M> Frozen<V, M> {
    /// True if the walk already wrote (or decided about) `key`.
    fn passed(&self, key: &[u8]) -> bool {
        self.walked || key_hash(key).reverse_bits() < self.cursor.reverse_bits()
    }
}

impl<V, M> Default for SnapshotDict<V, M> {
    fn default() -> Self {
        SnapshotDict { live: Dict::default(), frozen: None }
    }
}

impl<V, M> Deref for SnapshotDict<V, M> {
    type Target = Dict<V, M>;

    fn deref(&self) -> &Dict<V, M> {
        &self.live
    }
}

impl<V: Clone + Footprint, M: Copy + Default> SnapshotDict<V, M> {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// Before `key` changes: keeps its T0 value if a frozen walk still needs it.
    fn preserve(&mut self, key: &[u8]) {
        let Some(f) = self.frozen.as_deref_mut() else { return };
        if f.detached.is_some() || f.passed(key) || f.before.contains_key(key) {
            return;
        }
        let kept = self.live.get(key).cloned();
        f.kept += kept.as_ref().map_or(0, |v| v.footprint(key));
        f.before.insert(Sds::from_slice(key), kept);
    }

    /// The estimated bytes that only the frozen view keeps alive (see [`Footprint`]).
    pub fn kept_bytes(&self) -> usize {
        self.frozen.as_ref().map_or(0, |f| f.kept)
    }

    /// The value stored at `key`, to change it.
    pub fn get_mut(&mut self, key: &[u8]) -> Option<&mut V> {
        self.preserve(key);
        self.live.get_mut(key)
    }

    /// The value and metadata of `key`, to change the value.
    pub fn get_mut_meta(&mut self, key: &[u8]) -> Option<(&mut V, &mut M)> {
        self.preserve(key);
        self.live.get_mut_meta(key)
    }

    /// The value of `key` with its metadata mutable (an access stamp): the value itself does
    /// not change, so nothing is preserved.
    pub fn get_touch(&mut self, key: &[u8]) -> Option<(&V, &mut M)> {
        self.live.get_mut_meta(key).map(|(v, m)| (&*v, m))
    }

    /// Stores `value` at `key`, returning the previous value.
    pub fn insert(&mut self, key: &[u8], value: V) -> Option<V> {
        self.preserve(key);
        self.live.insert(key, value)
    }

    /// The value at `key`, inserting `make()` first if absent.
    pub fn get_or_insert_with(&mut self, key: &[u8], make: impl FnOnce() -> V) -> &mut V {
        self.preserve(key);
        self.live.get_or_insert_with(key, make)
    }

    /// Removes `key`, returning its value.
    pub fn remove(&mut self, key: &[u8]) -> Option<V> {
        self.preserve(key);
        if self.frozen.as_ref().is_some_and(|f| f.detached.is_none()) {
            // A shrink would make the walk's cursor revisit buckets.
            self.live.remove_keep_size(key)
        } else {
            self.live.remove(key)
        }
    }

    /// Moves buckets of a running resize for about `budget` (values do not change, and a walk
    /// follows both bucket arrays, so nothing is preserved). True while the resize is not done.
    pub fn rehash_for(&mut self, budget: std::time::Duration) -> bool {
        self.live.rehash_for(budget)
    }

    /// Makes room for `additional` more elements (growing never disturbs a walk).
    pub fn reserve(&mut self, additional: usize) {
        self.live.reserve(additional)
    }

    /// Removes every element. While frozen, the table is handed to the walk as it is.
    pub fn clear(&mut self) {
        match self.frozen.as_deref_mut() {
            Some(f) if f.detached.is_none() => {
                f.kept += self.live.iter().map(|(k, v)| v.footprint(k)).sum::<usize>();
                f.detached = Some(std::mem::take(&mut self.live));
            }
            _ => self.live.clear(),
        }
    }

    /// Empties the table and gives back what it held, to be freed elsewhere — unless a walk
    /// is in progress, which keeps the detached table (as [`SnapshotDict::clear`]) and frees
    /// it when done: then `None`.
    pub fn take(&mut self) -> Option<Dict<V, M>> {
        match self.frozen.as_deref() {
            Some(f) if f.detached.is_none() => {
                self.clear();
                None
            }
            _ => Some(std::mem::take(&mut self.live)),
        }
    }

    /// Starts a point-in-time view, recorded as database `origin`. A view already in
    /// progress is dropped.
    pub fn freeze(&mut self, origin: usize) {
        self.frozen = Some(Box::new(Frozen {
            origin,
            cursor: 0,
            walked: false,
            before: HashMap::new(),
            detached: None,
            kept: 0,
        }));
    }

    /// Ends the view (done or abandoned), releasing what it kept.
    pub fn thaw(&mut self) {
        self.frozen = None;
    }

    /// The database index this table was frozen as, if it is frozen.
    pub fn frozen_as(&self) -> Option<usize> {
        self.frozen.as_ref().map(|f| f.origin)
    }

    /// The T0 value of `key` (which the walk has not passed, or is passing now). Consumes
    /// the kept copy, if any.
    pub fn take_frozen(&mut self, key: &[u8]) -> Option<V> {
        let f = self.frozen.as_deref_mut()?;
        match f.before.remove(key) {
            Some(kept) => kept,
            None => f.detached.as_ref().unwrap_or(&self.live).get(key).cloned(),
        }
    }

    /// Moves the walk to `cursor` (a companion table's walk: the expiries follow the keys).
    pub fn advance_to(&mut self, cursor: u64, walked: bool) {
        if let Some(f) = self.frozen.as_deref_mut() {
            f.cursor = cursor;
            f.walked = walked;
        }
    }

    /// One step of the walk: visits the next buckets, at least `budget` entries when that
    /// many remain, calling `visit(key, T0 value)` for each key that existed at T0. When the
    /// table is walked, the keys deleted ahead of the walk follow. Returns the cursor reached
    /// and whether the walk is complete.
    pub fn walk(&mut self, budget: usize, mut visit: impl FnMut(&Sds, &V)) -> (u64, bool) {
        let Some(f) = self.frozen.as_deref_mut() else { return (0, true) };
        if f.walked {
            return (0, true);
        }
        let table = f.detached.as_ref().unwrap_or(&self.live);
        let mut seen = 0;
        let mut cursor = f.cursor;
        loop {
            cursor = table.scan(cursor, |key, live| {
                seen += 1;
                match f.before.remove(key.as_slice()) {
                    Some(Some(kept)) => visit(key, &kept),
                    Some(None) => {} // created after T0
                    None => visit(key, live),
                }
            });
            if cursor == 0 || seen >= budget {
                break;
            }
        }
        f.cursor = cursor;
        if cursor == 0 {
            f.walked = true;
            // Deleted ahead of the walk: only their kept copies remain.
            for (key, kept) in f.before.drain() {
                if let Some(value) = kept {
                    visit(&key, &value);
                }
            }
        }
        (cursor, f.walked)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use std::collections::BTreeMap;

    fn contents(d: &Dict<u64>) -> BTreeMap<Vec<u8>, u64> {
        d.iter().map(|(k, v)| (k.to_vec(), *v)).collect()
    }

    #[test]
    fn snapshot_is_point_in_time() {
        for seed in 0..200u64 {
            let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
            let mut d: SnapshotDict<u64> = SnapshotDict::new();
            let n = rng.gen_range(0..300);
            for i in 0..n {
                d.insert(format!("k{i}").as_bytes(), i);
            }
            let t0 = contents(&d.live);
            d.freeze(0);
            let mut saved: BTreeMap<Vec<u8>, u64> = BTreeMap::new();
            loop {
                // Random writes between walk steps: updates, inserts (growing the table),
                // deletes (which must not shrink it), clears.
                // Odd seeds mostly delete, so the table would shrink under the walk.
                let deletes_from = if seed % 2 == 1 { 5 } else { 60 };
                for _ in 0..rng.gen_range(0..40) {
                    let key = format!("k{}", rng.gen_range(0..600));
                    let op = rng.gen_range(0..100);
                    match if op >= deletes_from && op < 98 { 60 } else { op } {
                        0..=39 => {
                            d.insert(key.as_bytes(), rng.gen());
                        }
                        40..=59 => {
                            if let Some(v) = d.get_mut(key.as_bytes()) {
                                *v += 1;
                            }
                        }
                        60..=97 => {
                            d.remove(key.as_bytes());
                        }
                        _ => d.clear(),
                    }
                }
                let (_, done) = d.walk(rng.gen_range(1..20), |k, v| {
                    assert!(saved.insert(k.to_vec(), *v).is_none(), "key written twice");
                });
                if done {
                    break;
                }
            }
            assert_eq!(saved, t0, "seed {seed}");
            d.thaw();
        }
    }

    /// Deleting most keys mid-walk would shrink a plain table and make the walk revisit
    /// buckets (writing keys twice); a frozen table keeps its size.
    #[test]
    fn mass_deletes_mid_walk_neither_repeat_nor_lose_keys() {
        for stop_after in [1, 7, 50, 200, 500] {
            let mut d: SnapshotDict<u64> = SnapshotDict::new();
            for i in 0..1024 {
                d.insert(format!("k{i}").as_bytes(), i);
            }
            let t0 = contents(&d.live);
            d.freeze(0);
            let mut saved: BTreeMap<Vec<u8>, u64> = BTreeMap::new();
            let mut record = |k: &Sds, v: &u64| {
                assert!(saved.insert(k.to_vec(), *v).is_none(), "{k:?} written twice");
            };
            let mut steps = 0;
            loop {
                let (_, done) = d.walk(1, &mut record);
                steps += 1;
                if steps == stop_after {
                    for i in 0..1000 {
                        d.remove(format!("k{i}").as_bytes());
                    }
                }
                if done {
                    break;
                }
            }
            assert_eq!(saved, t0);
        }
    }

    #[test]
    fn take_frozen_answers_the_t0_value() {
        let mut d: SnapshotDict<u64> = SnapshotDict::new();
        d.insert(b"a", 1);
        d.freeze(0);
        d.insert(b"a", 2);
        d.insert(b"b", 3);
        assert_eq!(d.take_frozen(b"a"), Some(1));
        assert_eq!(d.take_frozen(b"b"), None);
        assert_eq!(d.get(b"a"), Some(&2));
    }

    /// What only the frozen view keeps alive is counted (eviction leaves it out of the memory
    /// compared with maxmemory), and released with the view.
    #[test]
    fn kept_bytes_counts_what_only_the_view_holds() {
        let mut d: SnapshotDict<u64> = SnapshotDict::new();
        for i in 0..100u64 {
            d.insert(format!("key{i:03}").as_bytes(), i);
        }
        assert_eq!(d.kept_bytes(), 0);
        d.freeze(0);
        d.remove(b"key000");
        d.insert(b"key001", 7);
        // A key absent at T0 keeps nothing.
        d.insert(b"new", 1);
        let one = 6 + 8;
        assert_eq!(d.kept_bytes(), 2 * one);
        // A clear hands the whole table to the view: key001..key099 and "new".
        d.clear();
        assert_eq!(d.kept_bytes(), 2 * one + 99 * one + (3 + 8));
        d.thaw();
        assert_eq!(d.kept_bytes(), 0);
    }
}
