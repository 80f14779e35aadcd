//! Databases, expiry, and the per-write bookkeeping (WATCH, blocked-client readiness).

use std::collections::{HashMap, HashSet};

use bytes::Bytes;
use rand::Rng;

use super::access::Lru;
use super::snapshot_dict::SnapshotDict;
use super::value::{Sds, Value};
use crate::blocking::Blocking;

/// One numbered database: keys and, for keys with a TTL, their absolute expiry in unix ms.
#[derive(Default)]
pub struct Db {
    /// Key → value, with each key's last-access clock.
    pub keys: SnapshotDict<Value, Lru>,
    /// Key → expiry (unix ms), only for keys that have one.
    pub expires: SnapshotDict<i64>,
}

impl Db {
    /// True if `key` has an expiry at or before `now_ms`.
    pub fn is_expired(&self, key: &[u8], now_ms: i64) -> bool {
        !self.expires.is_empty() && self.expires.get(key).is_some_and(|at| *at <= now_ms)
    }

    /// Removes `key` and its expiry. Returns the value.
    pub fn remove(&mut self, key: &[u8]) -> Option<Value> {
        let value = self.keys.remove(key)?;
        self.expires.remove(key);
        Some(value)
    }

    /// The expiry of `key` in unix ms.
    pub fn expiry(&self, key: &[u8]) -> Option<i64> {
        self.expires.get(key).copied()
    }

    /// Sets (or with `None`, clears) the expiry of an existing key.
    pub fn set_expiry(&mut self, key: &[u8], at: Option<i64>) {
        match at {
            Some(at) => {
                self.expires.insert(key, at);
            }
            None => {
                self.expires.remove(key);
            }
        }
    }

    /// Removes everything.
    pub fn clear(&mut self) {
        self.keys.clear();
        self.expires.clear();
    }

    /// Removes everything and gives back the tables, to be freed elsewhere (FLUSHALL ASYNC);
    /// `None` where a snapshot in progress keeps them.
    pub fn take_all(&mut self) -> Option<Box<dyn Send>> {
        let keys = self.keys.take();
        let expires = self.expires.take();
        match (keys, expires) {
            (None, None) => None,
            tables => Some(Box::new(tables)),
        }
    }
}

/// Who is WATCHing which keys, and which of those clients have seen a watched key change.
///
/// A key that was already expired (its TTL passed, not yet deleted) when a client watched it is
/// flagged for that client, as Redis 7.0's `watchedKey.expired`: its deletion is no logical
/// change, and neither is SWAPDB bringing in another expired copy. Once it is gone the flag
/// clears, and any later change counts.
#[derive(Default)]
pub struct Watches {
    /// For each watched key, its watchers and their "expired at WATCH" flags.
    by_key: HashMap<(usize, Bytes), HashMap<u64, bool>>,
    /// Clients whose transaction must fail at EXEC.
    dirty: HashSet<u64>,
}

/// What a database-wide change (FLUSHDB, FLUSHALL, SWAPDB, a full sync) does to one watched
/// key: whether the key was in the database's table, and for SWAPDB whether the incoming
/// database has it and whether that copy is expired.
#[derive(Debug, Clone, Copy, Default)]
pub struct WholeDbChange {
    /// The key was in the table that goes away.
    pub was_present: bool,
    /// The key is in the table that comes in.
    pub incoming: bool,
    /// That incoming copy's TTL has passed.
    pub incoming_expired: bool,
}

impl Watches {
    /// Registers `client` as watching `key` in `db`; `expired`: the key is there but its TTL
    /// has passed.
    pub fn watch(&mut self, client: u64, db: usize, key: Bytes, expired: bool) {
        self.by_key.entry((db, key)).or_default().insert(client, expired);
    }

    /// Forgets everything `client` watches.
    pub fn unwatch(&mut self, client: u64, keys: &[(usize, Bytes)]) {
        for k in keys {
            if let Some(watchers) = self.by_key.get_mut(k) {
                watchers.remove(&client);
                if watchers.is_empty() {
                    self.by_key.remove(k);
                }
            }
        }
        self.dirty.remove(&client);
    }

    /// Nobody watches anything.
    pub fn is_empty(&self) -> bool {
        self.by_key.is_empty()
    }

    /// `key` in `db` was written or deleted; `present`: it is in the table now. Marks every
    /// watcher, except those that watched it already expired (Redis's `touchWatchedKey`).
    pub fn touch(&mut self, db: usize, key: &[u8], present: bool) {
        if self.by_key.is_empty() {
            return;
        }
        let Some(watchers) = self.by_key.get_mut(&(db, Bytes::copy_from_slice(key))) else {
            return;
        };
        for (client, expired) in watchers.iter_mut() {
            if *expired {
                // The already-expired key is gone now: no change, but the next one counts.
                if !present {
                    *expired = false;
                }
                continue;
            }
            self.dirty.insert(*client);
        }
    }

    /// `db` was emptied or given another database's contents; `change(key)` says what that did
    /// to each watched key (Redis's `touchAllWatchedKeysInDb`).
    pub fn touch_db(&mut self, db: usize, mut change: impl FnMut(&[u8]) -> WholeDbChange) {
        let Watches { by_key, dirty } = self;
        for ((d, key), watchers) in by_key.iter_mut() {
            if *d == db {
                mark_changed(watchers, change(key), dirty);
            }
        }
    }

    /// The whole dataset was replaced (a full sync, DEBUG LOADAOF): every database is emptied
    /// with each watched key present, as far as its watchers can tell.
    pub fn touch_all(&mut self) {
        let emptied = WholeDbChange { was_present: true, ..Default::default() };
        let Watches { by_key, dirty } = self;
        for watchers in by_key.values_mut() {
            mark_changed(watchers, emptied, dirty);
        }
    }

    /// Whether `client` watched `key` in `db` when it was already expired (and it has not been
    /// deleted since).
    pub fn watched_expired(&self, client: u64, db: usize, key: &Bytes) -> bool {
        self.by_key.get(&(db, key.clone())).and_then(|w| w.get(&client)).copied().unwrap_or(false)
    }

    /// True if a key `client` watches has changed since WATCH.
    pub fn is_dirty(&self, client: u64) -> bool {
        self.dirty.contains(&client)
    }
}

/// One watched key's part of [`Watches::touch_db`]: which of its `watchers` see a change.
fn mark_changed(watchers: &mut HashMap<u64, bool>, c: WholeDbChange, dirty: &mut HashSet<u64>) {
    if !c.was_present && !c.incoming {
        return;
    }
    for (client, expired) in watchers.iter_mut() {
        if *expired {
            if !c.incoming {
                // The expired key is deleted: no logical change.
                *expired = false;
                continue;
            }
            if c.incoming_expired {
                // Expired before, expired after.
                continue;
            }
        } else if !c.was_present && c.incoming_expired {
            // A missing key replaced by an expired one: still missing, logically.
            *expired = true;
            continue;
        }
        dirty.insert(*client);
    }
}

/// Counters Redis reports in INFO stats / keyspace.
#[derive(Debug, Default, Clone)]
pub struct KeyspaceStats {
    /// `keyspace_hits`
    pub hits: u64,
    /// `keyspace_misses`
    pub misses: u64,
    /// `expired_keys`
    pub expired: u64,
}

/// All databases plus the bookkeeping every write updates.
pub struct Keyspace {
    /// The numbered databases.
    pub dbs: Vec<Db>,
    /// Changes since the last save (Redis's `server.dirty`).
    pub dirty: u64,
    /// WATCH registry.
    pub watches: Watches,
    /// CLIENT TRACKING: who may have cached which key.
    pub tracking: crate::tracking::Tracking,
    /// Clients blocked on keys (BLPOP & co.).
    pub blocking: Blocking,
    /// Hit/miss/expiry counters.
    pub stats: KeyspaceStats,
    /// The point-in-time snapshot holding the frozen view, by id (one at a time: BGSAVE, an
    /// AOF rewrite or a replica's full sync). A snapshot whose id is no longer here was
    /// abandoned, even if another one froze the tables since.
    pub frozen: Option<u64>,
    /// Snapshot ids handed out so far.
    pub views: u64,
    /// Signalled whenever the frozen view is released (see `persist::snapshot::thaw`), so a
    /// replica's full sync waiting for it starts at once.
    pub thawed: std::sync::Arc<tokio::sync::Notify>,
    /// `notify-keyspace-events`, kept here so commands and expiry can test it cheaply.
    pub notify: crate::notify::EventFlags,
    /// Keyspace events recorded since the last notification round (only for classes the
    /// setting asks for).
    pub events: Vec<crate::notify::Event>,
    /// `maxmemory` eviction (see `crate::evict`).
    pub eviction: crate::evict::Eviction,
    /// The server is stopping and its last save (if any) is done: no command runs any more,
    /// so none can change the data after that save, as none runs after Redis exits.
    pub stopped: bool,
}

impl Keyspace {
    /// `databases` empty databases.
    pub fn new(databases: usize) -> Keyspace {
        Keyspace {
            dbs: (0..databases).map(|_| Db::default()).collect(),
            dirty: 0,
            watches: Watches::default(),
            tracking: Default::default(),
            blocking: Blocking::default(),
            stats: KeyspaceStats::default(),
            frozen: None,
            views: 0,
            thawed: Default::default(),
            notify: Default::default(),
            events: Vec::new(),
            eviction: Default::default(),
            stopped: false,
        }
    }

    /// Marks the clients watching `key` in `db` and tells the clients tracking it (it was
    /// just written, deleted, expired or evicted: Redis's `signalModifiedKey`).
    pub fn signal_modified_key(&mut self, db: usize, key: &[u8]) {
        let by = self.tracking.current;
        self.tracking.invalidate(key, by);
        if self.watches.is_empty() {
            return;
        }
        let present = self.dbs[db].keys.contains_key(key);
        self.watches.touch(db, key, present);
    }

    /// Samples volatile keys of `db` and deletes the expired ones, as Redis's active expiry
    /// cycle does. Returns the deleted keys (for propagation as DEL) and whether more than a
    /// quarter of the sample had expired (the caller may run again).
    pub fn expire_sample(
        &mut self,
        db: usize,
        now_ms: i64,
        rng: &mut impl Rng,
        effort: &crate::cron::ExpireEffort,
    ) -> (Vec<Sds>, bool) {
        let d = &mut self.dbs[db];
        if d.expires.is_empty() {
            return (Vec::new(), false);
        }
        let mut expired = Vec::new();
        let samples = effort.keys_per_loop.min(d.expires.len());
        for _ in 0..samples {
            if let Some((key, at)) = d.expires.random(rng) {
                if *at <= now_ms && !expired.contains(key) {
                    expired.push(key.clone());
                }
            }
        }
        for key in &expired {
            self.dbs[db].remove(key);
            self.signal_modified_key(db, key);
        }
        for key in &expired {
            self.notify.record(&mut self.events, db, crate::notify::class::EXPIRED, "expired", key);
        }
        self.stats.expired += expired.len() as u64;
        let again = expired.len() * 100 > effort.acceptable_stale_pct * samples;
        (expired, again)
    }
}

#[cfg(test)]
impl Keyspace {
    /// The events recorded so far as (name, key), for tests to compare with Redis's order.
    pub fn event_log(&self) -> Vec<(&'static str, &[u8])> {
        self.events.iter().map(|e| (e.name, e.key.as_slice())).collect()
    }
}
