//! `maxmemory`: what happens when the data outgrows its budget, as Redis 7.0 does it.
//!
//! Before each command, when the memory in use is over `maxmemory`, keys are evicted by
//! `maxmemory-policy` until it is not (Redis's `performEvictions`): sampled keys compete for a
//! pool of the best candidates (idlest for LRU, least used for LFU, nearest expiry for TTL),
//! or random keys go round-robin over the databases. Each eviction is a deletion like any
//! other: WATCH sees it and it reaches the replicas and the AOF as DEL (UNLINK with
//! `lazyfree-lazy-eviction`). When nothing can be evicted (`noeviction`, or no key qualifies)
//! commands that may grow memory are refused with `-OOM`, as is anything queued in MULTI.
//!
//! The memory compared with `maxmemory` leaves out what is not the dataset's and would make
//! eviction chase its own tail: stream bytes kept only for slow replicas, the AOF buffer, and
//! the copies a snapshot in progress keeps alive (a forked Redis's copy-on-write pages are
//! not in its `used_memory` either) — INFO's `mem_not_counted_for_evict`.
//!
//! Eviction runs at most a time budget per command (`maxmemory-eviction-tenacity`); the cron
//! carries on from there, so a burst of writes cannot stall every client behind it.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use bytes::Bytes;
use rand::Rng;

use crate::db::{Keyspace, Lru, Sds};
use crate::exec::Propagated;
use crate::server::Shared;

/// `maxmemory-policy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Policy {
    /// Refuse commands that may grow memory.
    #[default]
    NoEviction,
    /// Least recently used among all keys.
    AllkeysLru,
    /// Least frequently used among all keys.
    AllkeysLfu,
    /// Any key.
    AllkeysRandom,
    /// Least recently used among keys with a TTL.
    VolatileLru,
    /// Least frequently used among keys with a TTL.
    VolatileLfu,
    /// Any key with a TTL.
    VolatileRandom,
    /// The key with the nearest expiry.
    VolatileTtl,
}

/// How a policy ranks candidates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ranking {
    Lru,
    Lfu,
    Ttl,
    Random,
}

impl Policy {
    /// The policy named `name` (as the config holds it, lower case).
    pub fn parse(name: &str) -> Policy {
        match name {
            "allkeys-lru" => Policy::AllkeysLru,
            "allkeys-lfu" => Policy::AllkeysLfu,
            "allkeys-random" => Policy::AllkeysRandom,
            "volatile-lru" => Policy::VolatileLru,
            "volatile-lfu" => Policy::VolatileLfu,
            "volatile-random" => Policy::VolatileRandom,
            "volatile-ttl" => Policy::VolatileTtl,
            _ => Policy::NoEviction,
        }
    }

    /// True if keys' access stamps are LFU counters under this policy.
    pub fn is_lfu(self) -> bool {
        matches!(self, Policy::AllkeysLfu | Policy::VolatileLfu)
    }

    /// True if the policy ranks keys by their access stamps (LRU or LFU).
    pub fn ranks_by_access(self) -> bool {
        matches!(self.ranking(), Some(Ranking::Lru | Ranking::Lfu))
    }

    /// True if any key may be evicted, not only keys with a TTL.
    fn allkeys(self) -> bool {
        matches!(self, Policy::AllkeysLru | Policy::AllkeysLfu | Policy::AllkeysRandom)
    }

    fn ranking(self) -> Option<Ranking> {
        match self {
            Policy::NoEviction => None,
            Policy::AllkeysLru | Policy::VolatileLru => Some(Ranking::Lru),
            Policy::AllkeysLfu | Policy::VolatileLfu => Some(Ranking::Lfu),
            Policy::VolatileTtl => Some(Ranking::Ttl),
            Policy::AllkeysRandom | Policy::VolatileRandom => Some(Ranking::Random),
        }
    }
}

/// The settings eviction follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// `maxmemory` in bytes (0: no limit).
    pub maxmemory: u64,
    /// `maxmemory-policy`.
    pub policy: Policy,
    /// `maxmemory-samples`: keys sampled per database per round.
    pub samples: usize,
    /// `maxmemory-eviction-tenacity` (0–100): the time budget per command.
    pub tenacity: u32,
    /// `replica-ignore-maxmemory`: a replica leaves eviction to its master.
    pub replica_ignore: bool,
    /// `lazyfree-lazy-eviction`: evictions propagate as UNLINK.
    pub lazy: bool,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            maxmemory: 0,
            policy: Policy::NoEviction,
            samples: 5,
            tenacity: 10,
            replica_ignore: true,
            lazy: false,
        }
    }
}

impl Limits {
    /// How long one round may evict (Redis's `evictionTimeLimitUs`): 50 µs per step of
    /// tenacity up to 10, then 15 % more per step, unlimited at 100.
    fn time_budget(&self) -> Option<Duration> {
        match self.tenacity {
            t @ 0..=10 => Some(Duration::from_micros(50 * t as u64)),
            t @ 11..=99 => {
                Some(Duration::from_micros((500.0 * 1.15f64.powi(t as i32 - 10)) as u64))
            }
            _ => None,
        }
    }
}

/// What the connections check without a lock: the limit, and whether an over-limit period is
/// being timed (so its end is recorded even when the next check needs no eviction).
#[derive(Debug, Default)]
pub struct Gate {
    maxmemory: AtomicU64,
    exceeding: AtomicBool,
    /// The last round found nothing to evict: a script's commands that may grow memory are
    /// refused too (the state before the script started, as Redis keeps it).
    out_of_memory: AtomicBool,
}

impl Gate {
    /// Follows `maxmemory`.
    pub fn set_limit(&self, maxmemory: u64) {
        self.maxmemory.store(maxmemory, Relaxed);
    }

    /// True if memory is over the limit and nothing could be evicted.
    pub fn is_out_of_memory(&self) -> bool {
        self.out_of_memory.load(Relaxed)
    }
}

/// A candidate in the eviction pool.
#[derive(Debug, Clone)]
struct Candidate {
    /// Higher is better to evict: idle time, 255 minus the LFU counter, or time left inverted.
    score: u64,
    db: usize,
    key: Sds,
}

/// How many candidates the pool keeps across rounds (Redis's `EVPOOL_SIZE`).
const POOL_SIZE: usize = 16;

/// Eviction's state, kept with the keyspace it evicts from.
#[derive(Debug, Default)]
pub struct Eviction {
    /// The settings.
    pub limits: Limits,
    /// The best candidates seen, ascending by score.
    pool: Vec<Candidate>,
    /// The database a random policy looks at next.
    next_db: usize,
    /// Keys evicted (INFO `evicted_keys`).
    pub evicted: u64,
    /// Since when memory has been over the limit without eviction bringing it under.
    exceeded_since: Option<Instant>,
    /// Earlier such periods, added up.
    exceeded_total: Duration,
}

impl Eviction {
    /// INFO's `total_eviction_exceeded_time` and `current_eviction_exceeded_time`.
    pub fn exceeded_time(&self) -> (Duration, Duration) {
        let current = self.exceeded_since.map_or(Duration::ZERO, |t| t.elapsed());
        (self.exceeded_total + current, current)
    }

    /// CONFIG RESETSTAT.
    pub fn reset_stats(&mut self) {
        self.evicted = 0;
        self.exceeded_total = Duration::ZERO;
        self.exceeded_since = None;
    }

    fn record(&mut self, over: bool) {
        match (over, self.exceeded_since) {
            (true, None) => self.exceeded_since = Some(Instant::now()),
            (false, Some(since)) => {
                self.exceeded_total += since.elapsed();
                self.exceeded_since = None;
            }
            _ => {}
        }
    }

    /// Puts a sampled key in the pool if it beats the worst candidate or there is room.
    fn offer(&mut self, candidate: Candidate) {
        let pool = &mut self.pool;
        if pool.len() == POOL_SIZE && candidate.score <= pool[0].score {
            return;
        }
        if pool.iter().any(|c| c.db == candidate.db && c.key == candidate.key) {
            return;
        }
        let at = pool.partition_point(|c| c.score < candidate.score);
        pool.insert(at, candidate);
        if pool.len() > POOL_SIZE {
            pool.remove(0);
        }
    }
}

/// The outcome of a round of eviction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Memory is within the limit (or eviction does not apply now).
    Ok,
    /// Still over, but the round ran out of time: the cron carries on.
    Running,
    /// Over the limit and nothing can be evicted.
    Fail,
}

/// The memory in use: the allocator's count (the `warden-node` binary counts every
/// allocation), or the RSS where nothing counts (tests that run the server in-process).
fn used_memory() -> u64 {
    match crate::alloc::in_use() as u64 {
        0 => crate::cmd::info::rss_bytes(),
        n => n,
    }
}

/// Bytes kept alive by a snapshot in progress (see `SnapshotDict::kept_bytes`).
fn kept_by_snapshot(ks: &Keyspace) -> u64 {
    ks.dbs.iter().map(|d| (d.keys.kept_bytes() + d.expires.kept_bytes()) as u64).sum()
}

/// Memory that is not the dataset's and does not count toward `maxmemory` (INFO
/// `mem_not_counted_for_evict`): stream bytes held beyond `repl-backlog-size` for replicas
/// that have not been sent them, the AOF buffer, and what a snapshot in progress keeps alive.
pub fn not_counted(shared: &Shared, ks: &Keyspace) -> u64 {
    let replicas = shared
        .repl
        .lock()
        .backlog
        .as_ref()
        .map_or(0, |b| b.histlen().saturating_sub(b.size()) as u64);
    let aof = shared.aof.lock().as_ref().map_or(0, |st| st.buffered() as u64);
    replicas + aof + kept_by_snapshot(ks)
}

/// Before a command from a client: evicts as needed. Returns true when memory is over the
/// limit and nothing could be evicted (commands that may grow memory are then refused).
pub fn before_command(shared: &Shared) -> bool {
    let maxmemory = shared.eviction.maxmemory.load(Relaxed);
    if maxmemory == 0 && !shared.eviction.exceeding.load(Relaxed) {
        return false;
    }
    if used_memory() <= maxmemory && !shared.eviction.exceeding.load(Relaxed) {
        shared.eviction.out_of_memory.store(false, Relaxed);
        return false;
    }
    let mut ks = shared.keyspace.lock();
    let mut out = Vec::new();
    let verdict = perform(shared, &mut ks, &mut out);
    shared.propagate(&mut ks, out);
    // Invalidations of evicted keys go out now, before the command's reply (nothing of them
    // is the command's own doing), as Redis sends them.
    crate::tracking::deliver(shared, &mut ks, None);
    verdict == Verdict::Fail
}

/// From the cron: carries on an eviction that ran out of time, a round at a time, letting
/// commands in between, for up to `budget`.
pub async fn cron(shared: &Shared, budget: Duration) {
    let started = Instant::now();
    while shared.eviction.maxmemory.load(Relaxed) != 0 || shared.eviction.exceeding.load(Relaxed) {
        let verdict = {
            let mut ks = shared.keyspace.lock();
            let mut out = Vec::new();
            let verdict = perform(shared, &mut ks, &mut out);
            shared.propagate(&mut ks, out);
            crate::tracking::deliver(shared, &mut ks, None);
            verdict
        };
        if verdict != Verdict::Running || started.elapsed() >= budget {
            return;
        }
        tokio::task::yield_now().await;
    }
}

/// True when eviction must not run now (Redis's `isSafeToPerformEvictions`): while loading,
/// on a replica that leaves it to its master, and while clients are paused (the dataset must
/// stand still then, expiry and eviction included).
fn suspended(shared: &Shared, limits: &Limits) -> bool {
    let loading = shared.gates.load(Relaxed) & crate::server::gate::LOADING != 0;
    loading || (shared.is_replica() && limits.replica_ignore) || shared.dataset_frozen()
}

/// One round of eviction (Redis's `performEvictions`), with the keyspace locked; the DELs go
/// to `out` for propagation.
pub fn perform(shared: &Shared, ks: &mut Keyspace, out: &mut Vec<Propagated>) -> Verdict {
    let limits = ks.eviction.limits;
    let verdict = if limits.maxmemory == 0 || suspended(shared, &limits) {
        Verdict::Ok
    } else {
        evict(shared, ks, &limits, out)
    };
    ks.eviction.record(verdict != Verdict::Ok);
    shared.eviction.exceeding.store(verdict != Verdict::Ok, Relaxed);
    shared.eviction.out_of_memory.store(verdict == Verdict::Fail, Relaxed);
    verdict
}

fn evict(
    shared: &Shared,
    ks: &mut Keyspace,
    limits: &Limits,
    out: &mut Vec<Propagated>,
) -> Verdict {
    let used = used_memory();
    if used <= limits.maxmemory {
        return Verdict::Ok;
    }
    let counted = used.saturating_sub(not_counted(shared, ks));
    if counted <= limits.maxmemory {
        return Verdict::Ok;
    }
    let to_free = counted - limits.maxmemory;
    if limits.policy == Policy::NoEviction {
        return Verdict::Fail;
    }
    let started = Instant::now();
    let budget = limits.time_budget();
    let propagating = shared.is_propagating();
    let mut rng = rand::thread_rng();
    let mut freed = 0u64;
    let mut evicted = 0u64;
    while freed < to_free {
        let Some((db, key)) = pick(ks, limits, &mut rng) else {
            return Verdict::Fail;
        };
        // What the deletion frees: the allocator's drop, plus what it leaves to a snapshot in
        // progress (that copy is no longer the dataset's).
        let (in_use, kept) = (used_memory(), kept_by_snapshot(ks));
        ks.dbs[db].remove(&key);
        let released = in_use.saturating_sub(used_memory());
        let handed_over = kept_by_snapshot(ks).saturating_sub(kept);
        freed += (released + handed_over).max(1);
        ks.eviction.evicted += 1;
        ks.signal_modified_key(db, &key);
        ks.notify.record(&mut ks.events, db, crate::notify::class::EVICTED, "evicted", &key);
        if propagating {
            let del: &'static [u8] = if limits.lazy { b"UNLINK" } else { b"DEL" };
            out.push(Propagated {
                db,
                argv: vec![Bytes::from_static(del), Bytes::copy_from_slice(&key)],
            });
        }
        evicted += 1;
        if evicted.is_multiple_of(16) && budget.is_some_and(|b| started.elapsed() > b) {
            return Verdict::Running;
        }
    }
    if freed >= to_free {
        Verdict::Ok
    } else {
        Verdict::Running
    }
}

/// The next key to evict under `limits.policy`, as (database, key).
fn pick(ks: &mut Keyspace, limits: &Limits, rng: &mut impl Rng) -> Option<(usize, Sds)> {
    let ranking = limits.policy.ranking()?;
    let allkeys = limits.policy.allkeys();
    let dbs = ks.dbs.len();
    if ranking == Ranking::Random {
        for _ in 0..dbs {
            ks.eviction.next_db = (ks.eviction.next_db + 1) % dbs;
            let db = &ks.dbs[ks.eviction.next_db];
            let key = if allkeys {
                db.keys.random(rng).map(|(k, _)| k.clone())
            } else {
                db.expires.random(rng).map(|(k, _)| k.clone())
            };
            if let Some(key) = key {
                return Some((ks.eviction.next_db, key));
            }
        }
        return None;
    }
    let now = Lru::now();
    loop {
        let mut total = 0;
        for i in 0..dbs {
            let db = &ks.dbs[i];
            let size = if allkeys { db.keys.len() } else { db.expires.len() };
            total += size;
            for _ in 0..limits.samples.min(size) {
                let sampled = if allkeys {
                    db.keys.random(rng).map(|(k, _)| k)
                } else {
                    db.expires.random(rng).map(|(k, _)| k)
                };
                let Some(key) = sampled else { break };
                let score = match ranking {
                    Ranking::Lru => db.keys.meta(key).map_or(0, |stamp| stamp.idle_ms(now)),
                    Ranking::Lfu => db.keys.meta(key).map_or(0, |s| 255 - s.lfu_count() as u64),
                    Ranking::Ttl => {
                        u64::MAX - db.expires.get(key).map_or(0, |at| (*at).max(0) as u64)
                    }
                    Ranking::Random => unreachable!("handled above"),
                };
                ks.eviction.offer(Candidate { score, db: i, key: key.clone() });
            }
        }
        if total == 0 {
            return None;
        }
        // The best candidate that still qualifies (a pooled key may have gone since).
        while let Some(best) = ks.eviction.pool.pop() {
            let db = &ks.dbs[best.db];
            let present = if allkeys {
                db.keys.contains_key(&best.key)
            } else {
                db.expires.contains_key(&best.key)
            };
            if present {
                return Some((best.db, best.key));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_budget_follows_tenacity_like_redis() {
        let at = |tenacity| Limits { tenacity, ..Limits::default() }.time_budget();
        assert_eq!(at(0), Some(Duration::ZERO));
        assert_eq!(at(10), Some(Duration::from_micros(500)));
        assert_eq!(at(11), Some(Duration::from_micros(575)));
        assert!(at(99).unwrap() > Duration::from_secs(1));
        assert_eq!(at(100), None);
    }

    /// The pool keeps the sixteen best candidates, best last, each key once.
    #[test]
    fn pool_keeps_the_best_candidates() {
        let mut e = Eviction::default();
        for i in 0..40u64 {
            let score = (i * 7) % 40;
            e.offer(Candidate {
                score,
                db: 0,
                key: Sds::from_slice(format!("k{score}").as_bytes()),
            });
        }
        e.offer(Candidate { score: 39, db: 0, key: Sds::from_slice(b"k39") });
        let scores: Vec<u64> = e.pool.iter().map(|c| c.score).collect();
        assert_eq!(scores, (24..40).collect::<Vec<_>>());
    }
}
