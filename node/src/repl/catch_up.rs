//! Letting replicas catch up before a master stops (SHUTDOWN without NOW, SIGTERM): writes
//! pause, replicas are asked for their offsets, and the stop waits until every replica has
//! acknowledged the master's offset or `shutdown-timeout` passes — so a clean stop of a master
//! loses no acknowledged write on its replicas.

use std::time::Instant;

use crate::server::{Pause, Shared};

/// When a stop should wait for replicas: a master with replicas and `shutdown-timeout` > 0.
/// Returns the deadline.
pub fn deadline(shared: &Shared) -> Option<Instant> {
    let timeout = shared
        .config
        .read()
        .get("shutdown-timeout")
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(10);
    let r = shared.repl.lock();
    (timeout > 0 && !r.is_replica() && !r.replicas.is_empty())
        .then(|| Instant::now() + std::time::Duration::from_secs(timeout))
}

/// Pauses writes until `deadline` and asks every replica for its offset.
pub fn begin(shared: &Shared, deadline: Instant) {
    shared.pause_with(|p| {
        *p = match *p {
            Pause::All(u) => Pause::All(u.max(deadline)),
            Pause::Write(u) => Pause::Write(u.max(deadline)),
            Pause::None => Pause::Write(deadline),
        }
    });
    let mut r = shared.repl.lock();
    // What the replicas must acknowledge: everything written before the stop. The GETACK sent
    // now adds to the offset, and a replica's answer to it reports the offset before it.
    r.catch_up_target = Some(r.offset());
    shared.request_acks(&mut r);
}

/// True once every attached replica acknowledged the offset the stop began at (or, without
/// [`begin`], the current one).
pub fn done(shared: &Shared) -> bool {
    let r = shared.repl.lock();
    let offset = r.catch_up_target.unwrap_or_else(|| r.offset());
    r.replicas.iter().all(|e| e.ack_off >= offset)
}

/// Waits until [`done`] or `deadline`. Returns whether every replica caught up.
pub async fn wait(shared: &Shared, deadline: Instant) -> bool {
    loop {
        let acked = shared.repl_acks.notified();
        tokio::pin!(acked);
        acked.as_mut().enable();
        if done(shared) {
            return true;
        }
        tokio::select! {
            _ = &mut acked => {}
            _ = tokio::time::sleep_until(deadline.into()) => return done(shared),
        }
    }
}
