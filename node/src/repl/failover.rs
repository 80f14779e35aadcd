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
