//! The leader's half of a zero-loss switchover (`SENTINEL SWITCHOVER`, issue 6).
//!
//! A failover promotes the most advanced replica of a master that is gone; writes the master
//! acknowledged after its last replication byte are lost (redis#6062). A switchover moves a
//! master that is alive, so it can do better: with the master's writes paused, the target
//! replica catches up to the master's exact offset, and only then is it promoted. Steps, each
//! committed before the next acts:
//!
//! 1. `SwitchoverStarted` (phase `Selected`): the leader sends `CLIENT PAUSE <lease> WRITE` to
//!    the master and measures ([`Action::CatchUp`]): master `master_repl_offset`, the target's
//!    `slave_repl_offset`, the master's offset again. The pause is renewed with every
//!    measurement, so it lapses by itself (after [`PAUSE_LEASE_MS`]) if the leader dies.
//! 2. When a measurement shows the pause in force, the master's offset unchanged across the
//!    target's reading and the target at that offset with its link up, `SwitchoverInSync` is
//!    committed and, in the same batch, the target is promoted (`REPLICAOF NO ONE`).
//! 3. `Promoted`; then the old master — still paused, its pause renewed — is demoted
//!    (`ConvertToReplica`, `REPLICAOF new`), the other replicas are re-pointed as in a
//!    failover, and once the old master reports `role:slave`, `FailoverEnded` is committed and
//!    the old master unpaused (`CLIENT UNPAUSE`).
//!
//! If the target has not caught up within the switchover's timeout, `FailoverAborted
//! { catch-up-timeout }` is committed and the master unpaused: it stays master, nothing moved.
//!
//! A new leader resumes from the committed phase with an empty memory: in `Selected` it
//! measures again; in `InSync` it measures again before promoting (the old leader's pause
//! may have lapsed), unless the target already reports `role:master` (the old leader's
//! promotion went through, and its pause lease is still running), which it commits.
//!
//! Why the offsets prove it: while writes are paused the master's offset only grows by
//! non-data traffic (pings), and it cannot grow past what the target has without the second
//! reading showing it. A write acknowledged before the pause is below the first reading. The
//! residual gap: a write that passed the node's pause check just before `CLIENT PAUSE` took
//! effect and is applied only after the second reading; the two readings a round trip apart
//! (and the measurement repeated until they agree) make that window microseconds wide.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use super::{Action, Reconciler};
use crate::info::{NodeInfo, Role};
use crate::machine::{Addr, Command, Failover, MasterState, Phase, SwitchoverPlan};
use crate::monitor::NodeView;

/// How long a write pause lasts unless renewed: how long writes stay blocked if the leader
/// dies mid-switchover, and how long a new leader has to take over before it must measure
/// again.
pub const PAUSE_LEASE_MS: u64 = 5_000;
/// How often the old master's pause is renewed once the target is promoted.
pub(super) const RENEW: Duration = Duration::from_millis(1_000);
/// How often the target's catch-up is measured.
const MEASURE_EVERY: Duration = Duration::from_millis(50);
/// A measurement older than this is not acted on.
const FRESH_READING: Duration = Duration::from_millis(1_000);

/// One catch-up measurement, taken by the executor in this order: `CLIENT PAUSE` on the
/// master, the master's INFO, the target's INFO, the master's INFO again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CatchUpReading {
    /// The master.
    pub master: Addr,
    /// The target.
    pub target: Addr,
    /// `CLIENT PAUSE … WRITE` answered `+OK`.
    pub paused: bool,
    /// The master's INFO before the target's.
    pub master_before: Option<NodeInfo>,
    /// The target's INFO.
    pub target_info: Option<NodeInfo>,
    /// The master's INFO after the target's.
    pub master_after: Option<NodeInfo>,
}

impl CatchUpReading {
    /// The offset the target reached, if it has every write of the paused master: the master
    /// is still master and did not move while the target was read, and the target follows it
    /// with its link up at (at least) that offset.
    pub fn in_sync(&self) -> Option<i64> {
        let (before, target, after) =
            (self.master_before.as_ref()?, self.target_info.as_ref()?, self.master_after.as_ref()?);
        let master_offset = after.master_offset?;
        let ok = self.paused
            && before.role == Some(Role::Master)
            && after.role == Some(Role::Master)
            && before.master_offset == Some(master_offset)
            && target.role == Some(Role::Replica)
            && target.master.as_ref() == Some(&self.master)
            && target.link_up
            && target.replica_offset? >= master_offset;
        ok.then_some(master_offset)
    }

    /// How far behind the target is, for the log (`None`: not measurable).
    pub fn lag(&self) -> Option<i64> {
        let m = self.master_after.as_ref()?.master_offset?;
        Some(m - self.target_info.as_ref()?.replica_offset?)
    }
}

impl Reconciler {
    /// Plans a switchover that is not promoted yet (phase `Selected` or `InSync`).
    pub(super) fn switchover(
        &mut self,
        m: &MasterState,
        f: &Failover,
        plan: &SwitchoverPlan,
        views: &HashMap<Addr, NodeView>,
        now: Instant,
        out: &mut Vec<Action>,
    ) {
        let seen = self.seen_at(m, f.epoch, now);
        let name = m.spec.name.clone();
        let (old, target) = (&f.old_master, &f.candidate);
        let target_is_master = views
            .get(target)
            .and_then(|v| v.info.as_ref())
            .is_some_and(|i| i.role == Some(Role::Master) && !i.loading);
        if f.phase == Phase::InSync && target_is_master {
            self.propose(out, Command::Promoted { master: name, epoch: f.epoch, at_ms: 0 }, now);
            return;
        }
        let reading = self
            .readings
            .get(&(old.clone(), target.clone()))
            .filter(|(_, at)| now.saturating_duration_since(*at) < FRESH_READING && *at >= seen);
        let synced = reading.and_then(|(r, _)| r.in_sync());
        let (limit, reason) = match f.phase {
            Phase::Selected => (plan.timeout_ms, "catch-up-timeout"),
            _ => (m.spec.failover_timeout_ms.max(plan.timeout_ms), "slave-timeout"),
        };
        if now.saturating_duration_since(seen) > Duration::from_millis(limit) {
            let lag = reading.and_then(|(r, _)| r.lag());
            tracing::warn!(
                master = %name,
                target = %target,
                lag = ?lag,
                "switchover aborted: the target did not catch up within {limit} ms; unpausing the master"
            );
            self.last_abort.insert(name.clone(), now);
            let cmd = Command::FailoverAborted {
                master: name,
                epoch: f.epoch,
                reason: reason.into(),
                at_ms: 0,
            };
            let len = out.len();
            self.propose(out, cmd, now);
            if out.len() > len {
                out.push(Action::UnpauseWrites(old.clone()));
            }
            return;
        }
        if let Some(offset) = synced {
            if f.phase == Phase::Selected {
                tracing::info!(master = %name, target = %target, offset, "switchover target in sync with the paused master");
                let cmd = Command::SwitchoverInSync { master: name, epoch: f.epoch, offset };
                self.propose(out, cmd, now);
            }
            if self.may_send(target, "promote", now, super::RESEND) {
                out.push(Action::Promote(target.clone()));
            }
            return;
        }
        if self.may_send(old, "catch-up", now, MEASURE_EVERY) {
            out.push(Action::CatchUp {
                master: old.clone(),
                target: target.clone(),
                lease_ms: PAUSE_LEASE_MS,
            });
        }
    }
}
