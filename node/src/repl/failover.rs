//! Coordinated handover (Redis 6.2+'s FAILOVER), the parts both sides share.
//!
//! The target side: `PSYNC <replid> <offset> FAILOVER` from our master asks us to take over.
//! We accept only when its history is ours (the replid matches), promote ourselves exactly as
//! REPLICAOF NO ONE does, and then answer the PSYNC normally — normally `+CONTINUE <new id>`
//! through replid2, so the old master follows us without a full sync.

use bytes::Bytes;
use tracing::info;

use crate::error::CommandError;
use crate::server::Shared;

/// Where a FAILOVER started on this master is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FailoverState {
    /// Writes are paused; waiting for a replica to reach our offset.
    WaitingForSync,
    /// We asked the chosen replica to take over (our PSYNC … FAILOVER is in flight).
    InProgress,
}

impl FailoverState {
    /// INFO's `master_failover_state`.
    pub fn name(&self) -> &'static str {
        match self {
            FailoverState::WaitingForSync => "waiting-for-sync",
            FailoverState::InProgress => "failover-in-progress",
        }
    }
}

/// Handles the FAILOVER flag of a PSYNC: promotes us if the caller is our master and shares
/// our history.
pub fn accept_psync_failover(shared: &Shared, replid: &Bytes) -> Result<(), CommandError> {
    let mut r = shared.repl.lock();
    if !r.is_replica() {
        return Err(CommandError::err("PSYNC FAILOVER can't be sent to a master."));
    }
    if replid[..] != *r.replid.as_bytes() {
        return Err(CommandError::err("PSYNC FAILOVER replid must match my replid."));
    }
    crate::repl::link::stop(shared, &mut r);
    crate::cmd::replication::promote(&mut r);
    shared.refresh_role(&r);
    info!("failover request accepted: MASTER MODE enabled");
    Ok(())
}

/// What FAILOVER asked for.
#[derive(Debug, Clone)]
pub struct FailoverRequest {
    /// `TO host port`: the replica to hand over to (else the first to catch up).
    pub target: Option<(String, u16)>,
    /// `TIMEOUT ms`: give up (or, with FORCE, hand over anyway) after this.
    pub deadline: Option<std::time::Instant>,
    /// `FORCE`.
    pub force: bool,
}

/// Starts a coordinated failover (the caller checked the preconditions under the repl lock
/// and set the state to `WaitingForSync`): client writes pause until it ends, and a task
/// watches the replicas' acknowledged offsets every 100 ms.
pub fn start(shared: &std::sync::Arc<Shared>, request: FailoverRequest) {
    // A pause that outlasts any failover; the end of the failover lifts it.
    let forever = std::time::Instant::now() + std::time::Duration::from_secs(100 * 365 * 86400);
    shared.pause_with(|p| *p = crate::server::Pause::Write(forever));
    let shared = shared.clone();
    tokio::spawn(async move { drive(shared, request).await });
}

async fn drive(shared: std::sync::Arc<Shared>, request: FailoverRequest) {
    let mut tick = tokio::time::interval(std::time::Duration::from_millis(100));
    loop {
        tick.tick().await;
        let mut r = shared.repl.lock();
        if r.failover != Some(FailoverState::WaitingForSync) {
            return; // aborted
        }
        let offset = r.offset();
        let caught_up = r.replicas.iter().find(|e| {
            e.state == super::ReplicaState::Online
                && e.ack_off == offset
                && request.target.as_ref().is_none_or(|(h, p)| e.ip == *h && e.port == *p)
        });
        let chosen = match (caught_up, request.deadline) {
            (Some(e), _) => Some((e.ip.clone(), e.port)),
            (None, Some(d)) if std::time::Instant::now() >= d => {
                if request.force {
                    request.target.clone()
                } else {
                    drop(r);
                    abort(&shared, "Replica never caught up before timeout");
                    return;
                }
            }
            _ => None,
        };
        let Some((host, port)) = chosen else { continue };
        info!(target = %format!("{host}:{port}"), "failover target caught up: handing over");
        r.failover = Some(FailoverState::InProgress);
        let cached = Some(super::CachedMaster { replid: r.replid.clone(), offset, db: 0 });
        super::link::start_failover(&shared, &mut r, host, port, cached);
        shared.refresh_role(&r);
        return;
    }
}

/// The target accepted our PSYNC: we are its replica now; writes resume (and are refused
/// as on any replica).
pub fn finished(shared: &Shared) {
    let mut r = shared.repl.lock();
    if let Some(link) = r.master.as_mut() {
        // Later reconnections are ordinary PSYNCs.
        link.failover = false;
    }
    if r.failover.take().is_some() {
        shared.unpause();
        info!("failover completed");
    }
}

/// Ends a failover without handing over. If our handover PSYNC was already in flight we turn
/// back into a master, with a new history id as Redis does.
pub fn abort(shared: &Shared, why: &str) {
    let mut r = shared.repl.lock();
    let Some(state) = r.failover.take() else { return };
    if state == FailoverState::InProgress {
        crate::repl::link::stop(shared, &mut r);
        crate::cmd::replication::promote(&mut r);
        shared.refresh_role(&r);
    }
    shared.unpause();
    tracing::warn!(reason = why, "failover aborted");
}
