//! Manual failover (`SENTINEL FAILOVER <name>`, `POST /v1/masters/{name}/failover`).
//!
//! Sentinel's semantics: the failover is *forced* — no objective-down agreement and no vote are
//! needed — but it is refused while one is in flight (`-INPROG`) and when no replica qualifies
//! (`-NOGOODSLAVE`, decided synchronously before anything is started). Unlike Sentinel, the
//! decision still goes through the Raft log: the supervisor that receives the request plans a
//! `FailoverStarted { forced: true }` with the same lineage-aware candidate choice as an
//! automatic failover ([`crate::reconciler::select_candidate`]) and proposes it. On a follower
//! raft-rs forwards the proposal to the leader; a supervisor that is not part of a working
//! majority (no known leader, no link to it, or a leader without a majority) refuses with
//! `-NOLEADER`. The reply is `+OK` only once this supervisor has *applied* the very entry it
//! proposed (recognised by a random request nonce), so a client that got `+OK` knows the
//! failover is committed; the leader's reconciler then carries it out with the ordinary steps
//! (promote, convert the old master, re-point the replicas).
//!
//! Why plan on the receiving supervisor rather than on the leader: every supervisor watches
//! every node, and the state machine re-checks the proposal when it applies it (epoch is
//! `current_epoch + 1`, no failover in flight, the old master is still the master), so a stale
//! plan is rejected, never half-applied. Two concurrent requests both propose epoch `n + 1`;
//! exactly one is applied and the other caller sees `-INPROG`.
//!
//! Left out: the old master is not paused before the promotion (Sentinel's write-loss window,
//! redis#6062); the zero-loss switchover ([`crate::switchover`]) is the tool for planned
//! maintenance, and shares [`commit`] with this module.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use crate::consensus::task::Consensus;
use crate::machine::{Addr, Command, Machine};
use crate::monitor::NodeView;
use crate::reconciler::select_candidate;

/// Why a manual failover was refused. The `Display` text is the Sentinel error reply.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ManualError {
    /// The name is not monitored.
    #[error("ERR No such master with that name")]
    NoSuchMaster,
    /// A failover of this master is in flight.
    #[error("INPROG Failover already in progress")]
    InProgress,
    /// No replica qualifies for promotion.
    #[error("NOGOODSLAVE No suitable replica to promote")]
    NoGoodReplica,
    /// This supervisor is not part of a working majority (no known leader, no link to it, or
    /// a leader without a majority), so nothing can be committed. Carries the reason.
    #[error("NOLEADER {0}; nothing was started")]
    NoLeader(String),
    /// A switchover's `TO` target is not a replica that qualifies (switchover only).
    #[error("ERR {0}")]
    BadTarget(String),
    /// The proposal was not seen committed in time; it may still commit.
    #[error("TRYAGAIN The failover was proposed but not seen committed within {0} ms; check SENTINEL MASTER before retrying")]
    NotCommitted(u64),
}

impl ManualError {
    /// An HTTP status for the same refusal.
    pub fn http_status(&self) -> u16 {
        match self {
            ManualError::NoSuchMaster => 404,
            ManualError::InProgress => 409,
            ManualError::NoGoodReplica => 409,
            ManualError::BadTarget(_) => 400,
            ManualError::NoLeader(_) | ManualError::NotCommitted(_) => 503,
        }
    }
}

/// A committed manual failover.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Started {
    /// Its epoch.
    pub epoch: u64,
    /// The replica being promoted.
    pub candidate: Addr,
    /// The master being replaced.
    pub old_master: Addr,
}

/// Plans a manual failover of `name` against the committed `state` and this supervisor's
/// observations. Pure: the returned command is what to propose.
pub fn plan(
    state: &Machine,
    name: &str,
    views: &HashMap<Addr, NodeView>,
    now: Instant,
) -> Result<Command, ManualError> {
    let m = state.masters.get(name).ok_or(ManualError::NoSuchMaster)?;
    if m.failover.is_some() {
        return Err(ManualError::InProgress);
    }
    let (candidate, replicas, excluded) = select_candidate(m, views, now);
    let Some(candidate) = candidate else {
        let why: Vec<String> = excluded.iter().map(|(a, r)| format!("{a}: {r}")).collect();
        tracing::warn!(master = %name, excluded = %why.join("; "), "manual failover refused: no replica qualifies");
        return Err(ManualError::NoGoodReplica);
    };
    Ok(Command::FailoverStarted {
        master: name.to_string(),
        epoch: state.current_epoch + 1,
        candidate,
        old_master: m.spec.addr.clone(),
        replicas,
        forced: true,
        request: 0,
        at_ms: 0,
    })
}

/// Decides what the committed `state` says about a proposed `FailoverStarted` (or
/// `SwitchoverStarted`): `Some(Ok)` if this very proposal (its request nonce) was applied,
/// `Some(Err)` if something else took its epoch, `None` if not yet known.
pub fn outcome(state: &Machine, proposed: &Command) -> Option<Result<Started, ManualError>> {
    let (master, epoch, candidate, old_master, request) = match proposed {
        Command::FailoverStarted { master, epoch, candidate, old_master, request, .. } => {
            (master, epoch, candidate, old_master, request)
        }
        Command::SwitchoverStarted { master, epoch, target, old_master, request, .. } => {
            (master, epoch, target, old_master, request)
        }
        _ => return Some(Err(ManualError::InProgress)),
    };
    if !state.masters.contains_key(master) {
        return Some(Err(ManualError::NoSuchMaster));
    }
    let record = state.history.get(master).and_then(|h| h.iter().rev().find(|r| r.epoch == *epoch));
    match record {
        Some(r) if r.request == *request => Some(Ok(Started {
            epoch: *epoch,
            candidate: candidate.clone(),
            old_master: old_master.clone(),
        })),
        Some(_) => Some(Err(ManualError::InProgress)),
        None if state.current_epoch >= *epoch => Some(Err(ManualError::InProgress)),
        None => None,
    }
}

/// Plans, proposes through Raft and waits until this supervisor has applied the decision.
/// `connected` are the peers whose raft links are up: a supervisor that is not part of a
/// working majority refuses at once rather than propose into the void.
pub async fn request(
    consensus: &Consensus<Machine>,
    views: &crate::monitor::Views,
    connected: &HashSet<u64>,
    name: &str,
    timeout: Duration,
) -> Result<Started, ManualError> {
    let state = consensus.state.borrow().clone();
    let snapshot = views.lock().clone();
    let cmd = plan(&state, name, &snapshot, Instant::now())?;
    commit(consensus, connected, cmd, timeout).await
}

/// Proposes a planned `FailoverStarted` or `SwitchoverStarted` with a fresh request nonce and
/// waits until this supervisor has applied it (or a rival took its epoch).
pub async fn commit(
    consensus: &Consensus<Machine>,
    connected: &HashSet<u64>,
    mut cmd: Command,
    timeout: Duration,
) -> Result<Started, ManualError> {
    let (working, why) = consensus.status.borrow().working_majority(connected);
    if !working {
        return Err(ManualError::NoLeader(why));
    }
    cmd.stamp(unix_ms());
    let nonce = rand::random::<u64>() | 1;
    let name = match &mut cmd {
        Command::FailoverStarted { request, master, .. }
        | Command::SwitchoverStarted { request, master, .. } => {
            *request = nonce;
            master.clone()
        }
        _ => return Err(ManualError::InProgress),
    };
    tracing::info!(master = %name, command = ?cmd, "manual failover or switchover requested; proposing");
    if let Err(e) = consensus.propose(cmd.encode()).await {
        tracing::info!(master = %name, error = %e, "proposal refused by raft");
        return Err(ManualError::NoLeader(format!("raft refused the proposal: {e}")));
    }
    let mut watch = consensus.state.clone();
    let waited = tokio::time::timeout(timeout, async {
        loop {
            if let Some(result) = outcome(&watch.borrow_and_update(), &cmd) {
                return result;
            }
            if watch.changed().await.is_err() {
                return Err(ManualError::NoLeader("the consensus task stopped".into()));
            }
        }
    })
    .await;
    match waited {
        Ok(result) => result,
        Err(_) => Err(ManualError::NotCommitted(timeout.as_millis() as u64)),
    }
}

/// Wall-clock milliseconds since the Unix epoch (for history records only).
pub fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::machine::MasterSpec;

    use crate::testkit::{addr as a, connected_view as view};

    fn setup(now: Instant) -> (Machine, HashMap<Addr, NodeView>) {
        let mut m = Machine::default();
        let spec = MasterSpec {
            name: "m".into(),
            addr: a(1),
            quorum: 2,
            down_after_ms: 1000,
            failover_timeout_ms: 10000,
            parallel_syncs: 1,
            ..Default::default()
        };
        assert!(m.apply_command(1, Command::Bootstrap { masters: vec![spec] }));
        let mut views = HashMap::new();
        views
            .insert(a(1), view(now, "role:master\nmaster_replid:aaa\nslave0:ip=10.0.0.1,port=2\n"));
        views.insert(
            a(2),
            view(
                now,
                "role:slave\nmaster_host:10.0.0.1\nmaster_port:1\nmaster_link_status:up\nslave_repl_offset:10\nmaster_replid:aaa\n",
            ),
        );
        (m, views)
    }

    #[test]
    fn a_healthy_master_is_failed_over_by_force_and_a_second_request_is_inprog() {
        let now = Instant::now();
        let (mut m, views) = setup(now);
        assert_eq!(plan(&m, "nope", &views, now), Err(ManualError::NoSuchMaster));
        let cmd = plan(&m, "m", &views, now).expect("a candidate");
        assert!(
            matches!(&cmd, Command::FailoverStarted { candidate, forced: true, epoch: 1, .. } if *candidate == a(2))
        );
        assert_eq!(outcome(&m, &cmd), None, "not applied yet");
        assert!(m.apply_command(2, cmd.clone()), "forced: no objective down needed");
        assert_eq!(outcome(&m, &cmd).unwrap().unwrap().epoch, 1);
        assert_eq!(plan(&m, "m", &views, now), Err(ManualError::InProgress));
        // A competing request planned from the same state (same epoch, same candidate, its own
        // nonce) is rejected at apply time, and its caller learns that another failover holds
        // the epoch.
        let mut rival = cmd.clone();
        if let Command::FailoverStarted { request, .. } = &mut rival {
            *request = 7;
        }
        assert!(!m.apply_command(3, rival.clone()));
        assert_eq!(outcome(&m, &rival), Some(Err(ManualError::InProgress)));
    }

    #[test]
    fn the_history_keeps_the_last_failovers_only() {
        let now = Instant::now();
        let (mut m, views) = setup(now);
        let total = crate::machine::MAX_HISTORY as u64 + 8;
        for epoch in 1..=total {
            let mut cmd = plan(&m, "m", &views, now).expect("a candidate");
            if let Command::FailoverStarted { request, .. } = &mut cmd {
                *request = epoch;
            }
            let index = m.applied_index + 1;
            assert!(m.apply_command(index, cmd.clone()));
            assert_eq!(outcome(&m, &cmd).unwrap().unwrap().epoch, epoch);
            let abort = Command::FailoverAborted {
                master: "m".into(),
                epoch,
                reason: "slave-timeout".into(),
                at_ms: 0,
            };
            assert!(m.apply_command(index + 1, abort));
        }
        let h = &m.history["m"];
        assert_eq!(h.len(), crate::machine::MAX_HISTORY);
        assert_eq!(h[0].epoch, total - crate::machine::MAX_HISTORY as u64 + 1);
        assert!(h.iter().all(|r| r.outcome == "aborted-slave-timeout" && r.forced));
    }

    #[test]
    fn no_qualifying_replica_is_nogoodslave_and_nothing_is_proposed() {
        let now = Instant::now();
        let (m, mut views) = setup(now);
        // The only replica came back with a foreign history.
        views.insert(
            a(2),
            view(now, "role:slave\nmaster_host:10.0.0.1\nmaster_port:1\nmaster_link_status:down\nmaster_replid:zzz\n"),
        );
        assert_eq!(plan(&m, "m", &views, now), Err(ManualError::NoGoodReplica));
        assert_eq!(
            ManualError::NoGoodReplica.to_string(),
            "NOGOODSLAVE No suitable replica to promote"
        );
        assert_eq!(ManualError::InProgress.to_string(), "INPROG Failover already in progress");
    }
}
