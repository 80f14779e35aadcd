//! Background work that Redis does in `serverCron`: active expiry of keys with a TTL.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::shutdown::Shutdown;

use crate::exec::Propagated;
use crate::server::{unix_ms, Shared};

/// How much of each tick active expiry may hold the keyspace lock.
const EXPIRE_BUDGET: Duration = Duration::from_millis(2);

/// Runs the periodic jobs until shutdown.
pub async fn run(shared: Arc<Shared>, mut shutdown: Shutdown) {
    loop {
        let hz = shared.config.read().settings.hz.max(1);
        tokio::select! {
            _ = shutdown.wait() => return,
            _ = tokio::time::sleep(Duration::from_millis(1000 / hz)) => {}
        }
        crate::db::Lru::tick(unix_ms());
        if shared.active_expire.load(std::sync::atomic::Ordering::Relaxed) {
            active_expire(&shared);
        }
    }
}

/// Deletes expired keys by sampling, like Redis's active expire cycle, within a time budget.
pub fn active_expire(shared: &Shared) {
    let started = Instant::now();
    let mut rng = rand::thread_rng();
    let mut ks = shared.keyspace.lock();
    let now = unix_ms();
    let mut out = Vec::new();
    for db in 0..ks.dbs.len() {
        loop {
            let (expired, again) = ks.expire_sample(db, now, &mut rng);
            if shared.is_propagating() {
                out.extend(expired.into_iter().map(|key| Propagated {
                    db,
                    argv: vec![Bytes::from_static(b"DEL"), Bytes::copy_from_slice(&key)],
                }));
            }
            if !again || started.elapsed() > EXPIRE_BUDGET {
                break;
            }
        }
    }
    shared.propagate(&mut ks, out);
}
