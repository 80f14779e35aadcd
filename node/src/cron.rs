//! Background work that Redis does in `serverCron`: active expiry of keys with a TTL, moving
//! the buckets of resizing keyspace tables, replication pings, save points.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::shutdown::Shutdown;

use crate::exec::Propagated;
use crate::server::{unix_ms, Shared};

/// How much of each tick active expiry may hold the keyspace lock (at the lowest effort).
const EXPIRE_BUDGET: Duration = Duration::from_millis(2);

/// How hard the active expiry cycle works, from `active-expire-effort` (1–10), scaled as
/// Redis scales it: more keys sampled per pass, a smaller share of expired keys tolerated
/// before moving to the next database, and a longer time budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExpireEffort {
    /// Keys sampled per pass.
    pub keys_per_loop: usize,
    /// A database is sampled again while more than this percentage of a pass had expired.
    pub acceptable_stale_pct: usize,
    /// The time budget per tick.
    pub budget: Duration,
}

impl ExpireEffort {
    /// The effort for `active-expire-effort` `setting`.
    pub fn new(setting: u64) -> ExpireEffort {
        let e = setting.clamp(1, 10) as usize - 1;
        ExpireEffort {
            keys_per_loop: 20 + 20 / 4 * e,
            acceptable_stale_pct: 10 - e,
            // Redis's slow cycle may use 25% + 2% per step of each tick; ours starts from a
            // smaller budget and grows in the same proportion.
            budget: EXPIRE_BUDGET * (25 + 2 * e as u32) / 25,
        }
    }
}
/// How much of each tick may go to moving buckets of resizing tables (Redis: 1 ms).
const REHASH_BUDGET: Duration = Duration::from_millis(1);

/// Runs the periodic jobs until shutdown.
pub async fn run(shared: Arc<Shared>, mut shutdown: Shutdown) {
    let mut replication_tick = Instant::now();
    loop {
        let hz = current_hz(&shared);
        tokio::select! {
            _ = shutdown.wait() => return,
            _ = tokio::time::sleep(Duration::from_millis(1000 / hz)) => {}
        }
        crate::db::Lru::tick(unix_ms());
        if shared.cron_paused.load(std::sync::atomic::Ordering::Relaxed) {
            // DEBUG PAUSE-CRON 1 (tests that must not be raced by the periodic jobs).
            continue;
        }
        let loading =
            shared.gates.load(std::sync::atomic::Ordering::Relaxed) & crate::server::gate::LOADING;
        if loading != 0 {
            // Nothing may expire, save or ping from a half-loaded dataset.
            continue;
        }
        // A replica never expires keys itself: its master's DELs do (it only hides them).
        // Nor while clients are paused: the dataset stays still (`Shared::dataset_frozen`).
        if shared.active_expire.load(std::sync::atomic::Ordering::Relaxed)
            && !shared.is_replica()
            && !shared.dataset_frozen()
        {
            active_expire(&shared);
        }
        // An eviction that ran out of time carries on here, as Redis's eviction time event.
        crate::evict::cron(&shared, Duration::from_millis(1000 / hz) / 2).await;
        if shared.config.read().settings.active_rehashing {
            active_rehash(&shared);
        }
        if replication_tick.elapsed() >= Duration::from_secs(1) {
            replication_tick = Instant::now();
            replication_cron(&shared);
            crate::cmd::persistence::save_points_cron(&shared);
            crate::aof::auto_rewrite_cron(&shared);
            crate::cmd::migrate::close_idle(&shared.migrate_targets);
        }
    }
}

/// Clients a cron tick serves at most before `dynamic-hz` doubles the frequency (Redis's
/// `MAX_CLIENTS_PER_CLOCK_TICK`), and the highest frequency (`CONFIG_MAX_HZ`).
const CLIENTS_PER_TICK: u64 = 200;
const MAX_HZ: u64 = 500;

/// The configured `hz`, doubled while each tick would have more than 200 clients to look
/// after (with `dynamic-hz`, as Redis), up to 500.
/// INFO's `hz` is this too.
pub fn current_hz(shared: &Shared) -> u64 {
    let (hz, dynamic) = {
        let settings = &shared.config.read().settings;
        (settings.hz.max(1), settings.dynamic_hz)
    };
    if dynamic {
        scaled_hz(hz, shared.clients.lock().len() as u64)
    } else {
        hz
    }
}

/// `hz` doubled until a tick has at most [`CLIENTS_PER_TICK`] of `clients`, up to [`MAX_HZ`].
fn scaled_hz(mut hz: u64, clients: u64) -> u64 {
    while clients / hz > CLIENTS_PER_TICK && hz < MAX_HZ {
        hz = (hz * 2).min(MAX_HZ);
    }
    hz
}

/// Moves buckets of the keyspace's resizing tables for up to [`REHASH_BUDGET`], as Redis's
/// `activerehashing`: a table resizes a bucket per write, so one that stopped taking writes
/// would otherwise keep two bucket arrays, and every lookup would look in both.
fn active_rehash(shared: &Shared) {
    let started = Instant::now();
    let left = || REHASH_BUDGET.checked_sub(started.elapsed()).filter(|d| !d.is_zero());
    let mut ks = shared.keyspace.lock();
    for db in ks.dbs.iter_mut() {
        let Some(budget) = left() else { return };
        db.keys.rehash_for(budget);
        let Some(budget) = left() else { return };
        db.expires.rehash_for(budget);
    }
}

/// Once a second, as Redis's `replicationCron`: ping replicas every
/// `repl-ping-replica-period`, free the backlog of a master left without replicas for
/// `repl-backlog-ttl`, and count good replicas for `min-replicas-to-write`.
fn replication_cron(shared: &Shared) {
    let settings = shared.config.read().settings.clone();
    let _ks = shared.keyspace.lock();
    let mut r = shared.repl.lock();
    if r.is_replica() {
        return;
    }
    let now = unix_ms() / 1000;
    // No pings during FAILOVER: the offset must stay still for a replica to catch up to it.
    let quiet = r.failover.is_some();
    if !r.replicas.is_empty() && !quiet && now % settings.repl_ping_period.max(1) as i64 == 0 {
        // Counted in the offset like any stream byte; lowercase, as Redis sends it.
        r.feed_raw(b"*1\r\n$4\r\nping\r\n");
        shared.repl_data.notify_waiters();
    }
    if r.replicas.is_empty()
        && r.backlog.is_some()
        && settings.repl_backlog_ttl > 0
        && r.no_replicas_since.elapsed() > Duration::from_secs(settings.repl_backlog_ttl)
    {
        // Nobody can continue from this history any more: start a new one.
        r.replid = crate::repl::new_replid();
        r.clear_replid2();
        r.free_backlog();
        shared.refresh_role(&r);
        tracing::info!(
            seconds = settings.repl_backlog_ttl,
            "replication backlog freed after being idle"
        );
    }
    count_good_replicas(shared, &r, &settings);
}

/// Counts the replicas good enough for `min-replicas-to-write` (Redis's `updateGoodSlaves`):
/// once a second, and at once when CONFIG SET changes the rule.
pub fn count_good_replicas(
    shared: &Shared,
    r: &crate::repl::Replication,
    settings: &crate::config::Settings,
) {
    let good = crate::repl::report::good_replicas(r, settings.min_replicas_max_lag);
    shared.set_short_of_replicas(good < settings.min_replicas_to_write);
}

/// Deletes expired keys by sampling, like Redis's active expire cycle, within a time budget.
pub fn active_expire(shared: &Shared) {
    let (effort, latency_threshold) = {
        let s = &shared.config.read().settings;
        (ExpireEffort::new(s.active_expire_effort), s.latency_monitor_threshold)
    };
    let started = Instant::now();
    let mut rng = rand::thread_rng();
    let mut ks = shared.keyspace.lock();
    let now = unix_ms();
    let mut out = Vec::new();
    for db in 0..ks.dbs.len() {
        loop {
            let (expired, again) = ks.expire_sample(db, now, &mut rng, &effort);
            // Readers blocked in XREADGROUP on an expired stream learn that it is gone.
            for key in &expired {
                ks.blocking.signal(db, key);
            }
            if shared.is_propagating() {
                out.extend(expired.into_iter().map(|key| Propagated {
                    db,
                    argv: vec![Bytes::from_static(b"DEL"), Bytes::copy_from_slice(&key)],
                }));
            }
            if !again || started.elapsed() > effort.budget {
                break;
            }
        }
    }
    if !ks.blocking.ready.is_empty() {
        crate::dispatch::serve_blocked(&mut ks, now, shared.is_propagating(), false, &mut out);
    }
    crate::notify::flush(shared, &mut ks);
    if !ks.tracking.is_idle() {
        let max = shared.config.read().settings.tracking_table_max_keys;
        ks.tracking.limit(max, &mut rng);
        crate::tracking::deliver(shared, &mut ks, None);
    }
    shared.propagate(&mut ks, out);
    drop(ks);
    crate::latency_monitor::record(shared, "expire-cycle", started.elapsed(), latency_threshold);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expire_effort_scales_like_redis() {
        let low = ExpireEffort::new(1);
        assert_eq!((low.keys_per_loop, low.acceptable_stale_pct), (20, 10));
        assert_eq!(low.budget, EXPIRE_BUDGET);
        let high = ExpireEffort::new(10);
        assert_eq!((high.keys_per_loop, high.acceptable_stale_pct), (65, 1));
        assert!(high.budget > low.budget);
    }

    /// Redis's rule: 10 hz serves 2000 clients; more double it, never past 500.
    #[test]
    fn dynamic_hz_doubles_with_clients() {
        assert_eq!(scaled_hz(10, 0), 10);
        assert_eq!(scaled_hz(10, 2000), 10);
        assert_eq!(scaled_hz(10, 2010), 20);
        assert_eq!(scaled_hz(10, 8000), 40);
        assert_eq!(scaled_hz(10, 1_000_000), 500);
        assert_eq!(scaled_hz(500, 1_000_000), 500);
    }
}
