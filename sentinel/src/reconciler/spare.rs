//! The leader's half of the spare strategy (`sentinel failover-strategy <name> spare`):
//! listing 4.4 of *Redis in Action* — snapshot the best replica, bring the snapshot to a fresh
//! machine, make that machine the master, point the replica at it — automated. Replication
//! does the copying: the spare is made a replica of the chosen replica (a chain, listing
//! 4.2.3), which sends it a full snapshot and then the stream.
//!
//! A replica refuses to serve a sync while its own link to its master is down (`-NOMASTERLINK`,
//! Redis and warden-node alike), which is exactly the state of the chosen replica after its
//! master failed. So a chosen replica whose link is down is first detached from the failed
//! master (`REPLICAOF NO ONE`). Clients are not told: the committed master is still the failed
//! one until `Promoted`, so nothing is written to the detached replica; if the spare is then
//! skipped, the chosen replica is simply already master. A chosen replica still linked to a
//! live master (a manual failover) is not detached, so it misses no write meanwhile.
//!
//! While the failover is `Selected` and its spare step unsettled:
//! 1. `Choosing`: pick the first spare of the pool that is reachable, has fresh INFO and is
//!    idle (a master with no master of its own, or already following the chosen replica after
//!    a leader change), commit `SpareAssigned`, detach the chosen replica if needed, and send
//!    the spare `REPLICAOF <chosen>`. No such spare: commit `SpareSkipped` with the reason — the
//!    chosen replica is promoted as with `promote`.
//! 2. `Seeding`: once the spare follows the chosen replica with its link up and its offset at
//!    the chosen replica's, commit `SpareSeeded`; the spare is now the candidate and the
//!    ordinary promotion follows (the chosen replica is re-pointed to it with the others).
//!    A spare that has not synced within the failover timeout is skipped (the promotion then
//!    gets a failover timeout of its own). The budget is generous because the chosen replica,
//!    like any Redis master, waits `repl-diskless-sync-delay` (5 s by default) before it starts
//!    a full sync.
//!
//! Left out: a skipped spare that already began syncing keeps following the chosen replica
//! (it then follows the new master, like any replica, and stays in the pool). If a seeded
//! spare then fails to turn master and the failover is aborted, the detached chosen replica is
//! left a master nobody is told about, and the candidate rules (replicas only) will not pick it
//! again: the operator has to point it back (`REPLICAOF`) or promote it by hand.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use super::{Action, Reconciler, FRESH_INFO};
use crate::health::is_reachable;
use crate::info::Role;
use crate::machine::{Addr, Command, Failover, MasterState, SpareStep};
use crate::monitor::NodeView;

impl Reconciler {
    /// Plans the spare step of a `Selected` failover; true while the promotion must wait.
    pub(super) fn spare_step(
        &mut self,
        m: &MasterState,
        f: &Failover,
        views: &HashMap<Addr, NodeView>,
        seen: Instant,
        now: Instant,
        out: &mut Vec<Action>,
    ) -> bool {
        let name = m.spec.name.clone();
        let chosen = &f.candidate;
        match &f.spare {
            Some(SpareStep::Choosing) => {
                match pick_spare(m, f, views, now) {
                    Some(spare) => {
                        tracing::info!(master = %name, spare = %spare, replica = %chosen, "seeding spare from the chosen replica");
                        let cmd = Command::SpareAssigned {
                            master: name,
                            epoch: f.epoch,
                            spare: spare.clone(),
                        };
                        self.propose(out, cmd, now);
                        self.maybe_detach(chosen, views, now, out);
                        if self.may_send(&spare, "seed", now, Duration::from_secs(1)) {
                            out.push(Action::Repoint { node: spare, to: chosen.clone() });
                        }
                    }
                    None => {
                        let reason = if m.spec.spares.is_empty() {
                            "the spare pool is empty".to_string()
                        } else {
                            "no spare is reachable and idle".to_string()
                        };
                        tracing::warn!(master = %name, replica = %chosen, "{reason}: promoting the chosen replica instead");
                        let cmd = Command::SpareSkipped { master: name, epoch: f.epoch, reason };
                        self.propose(out, cmd, now);
                    }
                }
                true
            }
            Some(SpareStep::Seeding(spare)) => {
                let spare_view = views.get(spare).and_then(|v| v.info.as_ref());
                let follows = spare_view.is_some_and(|i| {
                    i.role == Some(Role::Replica) && i.master.as_ref() == Some(chosen)
                });
                let chosen_offset =
                    views.get(chosen).and_then(|v| v.info.as_ref()).map(|i| i.offset());
                let synced = follows
                    && spare_view.is_some_and(|i| {
                        i.link_up && !i.loading && Some(i.offset()) >= chosen_offset
                    });
                let budget = Duration::from_millis(m.spec.failover_timeout_ms);
                if synced {
                    tracing::info!(master = %name, spare = %spare, "spare in sync with the chosen replica");
                    self.propose(out, Command::SpareSeeded { master: name, epoch: f.epoch }, now);
                } else if now.saturating_duration_since(seen) > budget {
                    let reason =
                        format!("spare {spare} did not sync within {} ms", budget.as_millis());
                    tracing::warn!(master = %name, "{reason}: promoting the chosen replica instead");
                    let cmd = Command::SpareSkipped { master: name, epoch: f.epoch, reason };
                    self.propose(out, cmd, now);
                } else {
                    self.maybe_detach(chosen, views, now, out);
                    if !follows && self.may_send(spare, "seed", now, Duration::from_secs(1)) {
                        out.push(Action::Repoint { node: spare.clone(), to: chosen.clone() });
                    }
                }
                true
            }
            None | Some(SpareStep::Seeded(_) | SpareStep::Skipped) => false,
        }
    }
}

impl Reconciler {
    /// Detaches the chosen replica from its failed master (`REPLICAOF NO ONE`) when its link
    /// is down, so that it can serve the spare's sync (see the module comment).
    fn maybe_detach(
        &mut self,
        chosen: &Addr,
        views: &HashMap<Addr, NodeView>,
        now: Instant,
        out: &mut Vec<Action>,
    ) {
        let stranded = views
            .get(chosen)
            .and_then(|v| v.info.as_ref())
            .is_some_and(|i| i.role == Some(Role::Replica) && !i.link_up);
        if stranded && self.may_send(chosen, "detach", now, Duration::from_secs(1)) {
            tracing::info!(replica = %chosen, "detaching the chosen replica from the failed master so it can seed the spare");
            out.push(Action::Promote(chosen.clone()));
        }
    }
}

/// The first usable spare of the pool: reachable, with fresh INFO, not part of this failover,
/// and idle — a master of nothing, or already following the chosen replica.
fn pick_spare(
    m: &MasterState,
    f: &Failover,
    views: &HashMap<Addr, NodeView>,
    now: Instant,
) -> Option<Addr> {
    let down_after = Duration::from_millis(m.spec.down_after_ms);
    m.spec
        .spares
        .iter()
        .find(|s| {
            if **s == m.spec.addr || **s == f.candidate || f.replicas.contains_key(*s) {
                return false;
            }
            let Some(v) = views.get(*s) else { return false };
            let fresh = v.info_at.is_some_and(|at| now.saturating_duration_since(at) <= FRESH_INFO);
            let idle = v.info.as_ref().is_some_and(|i| match i.role {
                Some(Role::Master) => i.replicas.is_empty() && !i.loading,
                Some(Role::Replica) => i.master.as_ref() == Some(&f.candidate),
                None => false,
            });
            is_reachable(v, now, down_after) && fresh && idle
        })
        .cloned()
}
