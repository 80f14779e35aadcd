//! The switchover in the replicated state: its plan, and applying its own step — the target
//! caught up with the paused master.
//!
//! The rest of a switchover is a forced failover's (started by
//! [`super::Command::SwitchoverStarted`], promoted, replicas re-pointed, ended or aborted); this
//! step is what makes it lossless. [`super::Failover::ready_to_promote`] refuses a
//! `Promoted` for a switchover that has not committed it, so no leader, old or new, can
//! promote a target that might lack an acknowledged write.

use serde::{Deserialize, Serialize};

use super::{record_mut, Event, Machine, Phase};

/// The switchover part of a [`super::Failover`] (absent for failovers).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SwitchoverPlan {
    /// How long the target may take to catch up with the paused master.
    pub timeout_ms: u64,
}

/// `SwitchoverInSync`: Selected → InSync, for the switchover in flight with this epoch.
pub(super) fn in_sync(
    state: &mut Machine,
    master: &str,
    epoch: u64,
    offset: i64,
    ev: &mut Vec<Event>,
) -> bool {
    let Some(m) = state.masters.get_mut(master) else { return false };
    let Some(f) = m
        .failover
        .as_mut()
        .filter(|f| f.epoch == epoch && f.phase == Phase::Selected && f.switchover.is_some())
    else {
        return false;
    };
    f.phase = Phase::InSync;
    let (name, target, old) = (m.spec.name.clone(), f.candidate.clone(), f.old_master.clone());
    ev.push(Event::replica("+switchover-in-sync", &target, &name, &old));
    ev.push(Event::replica("+failover-state-send-slaveof-noone", &target, &name, &old));
    if let Some(r) = record_mut(&mut state.history, master, epoch) {
        r.note = format!("target in sync at offset {offset} with writes paused");
    }
    true
}
