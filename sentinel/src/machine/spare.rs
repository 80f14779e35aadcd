//! The spare strategy in the replicated state (listing 4.4 automated): its settings and steps,
//! and applying them — a spare from the pool is assigned, seeded from the chosen replica, then
//! takes the chosen replica's place as the candidate — or is skipped, and the chosen replica
//! is promoted as with strategy `promote`.
//!
//! All of this happens before the promotion, while the failover is `Selected`; the state
//! machine refuses `Promoted` until the spare question is settled
//! ([`super::Failover::ready_to_promote`]).

use serde::{Deserialize, Serialize};

use super::{record_mut, Addr, Event, Machine, Phase};

/// How a failover replaces the master (ARCHITECTURE.md §2, "Strategies for the new master").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Strategy {
    /// The chosen replica becomes master.
    #[default]
    Promote,
    /// A node from the spare pool is seeded from the chosen replica, then becomes master
    /// (listing 4.4 automated); without a usable spare, falls back to `Promote`.
    Spare,
}

impl Strategy {
    /// The config and SENTINEL word.
    pub fn word(self) -> &'static str {
        match self {
            Strategy::Promote => "promote",
            Strategy::Spare => "spare",
        }
    }

    /// Parses the config and SENTINEL word.
    pub fn parse(word: &str) -> Option<Strategy> {
        match word.to_ascii_lowercase().as_str() {
            "promote" => Some(Strategy::Promote),
            "spare" => Some(Strategy::Spare),
            _ => None,
        }
    }
}

/// The spare-strategy part of a [`super::Failover`] (absent with strategy `promote`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SpareStep {
    /// No spare picked yet.
    Choosing,
    /// This spare replicates from the chosen replica.
    Seeding(Addr),
    /// The spare is the candidate now; it was seeded from this replica.
    Seeded(Addr),
    /// No spare is used; the chosen replica is promoted.
    Skipped,
}

/// `SpareAssigned`: Choosing → Seeding(spare), for a spare still in the pool.
pub(super) fn assigned(
    state: &mut Machine,
    master: &str,
    epoch: u64,
    spare: Addr,
    ev: &mut Vec<Event>,
) -> bool {
    let Some(m) = state.masters.get_mut(master) else { return false };
    if !m.spec.spares.contains(&spare) || spare == m.spec.addr {
        return false;
    }
    let Some(f) = m.failover.as_mut().filter(|f| {
        f.epoch == epoch && f.phase == Phase::Selected && f.spare == Some(SpareStep::Choosing)
    }) else {
        return false;
    };
    if spare == f.candidate || f.replicas.contains_key(&spare) {
        return false;
    }
    f.spare = Some(SpareStep::Seeding(spare.clone()));
    ev.push(Event::replica("+spare-seeding", &spare, &m.spec.name, &f.candidate));
    true
}

/// `SpareSeeded`: Seeding(spare) → the spare is the candidate, the chosen replica is re-pointed
/// after the promotion like the others, and the spare leaves the pool.
pub(super) fn seeded(state: &mut Machine, master: &str, epoch: u64, ev: &mut Vec<Event>) -> bool {
    let Some(m) = state.masters.get_mut(master) else { return false };
    let Some(f) = m.failover.as_mut().filter(|f| f.epoch == epoch && f.phase == Phase::Selected)
    else {
        return false;
    };
    let Some(SpareStep::Seeding(spare)) = f.spare.clone() else { return false };
    let chosen = std::mem::replace(&mut f.candidate, spare.clone());
    f.replicas.insert(chosen.clone(), super::ReplicaStep::Pending);
    f.replicas.remove(&spare);
    f.spare = Some(SpareStep::Seeded(chosen.clone()));
    let old = f.old_master.clone();
    m.spec.spares.retain(|s| *s != spare);
    let name = m.spec.name.clone();
    ev.push(Event::replica("+spare-seeded", &spare, &name, &chosen));
    ev.push(Event::replica("+selected-slave", &spare, &name, &old));
    ev.push(Event::replica("+failover-state-send-slaveof-noone", &spare, &name, &old));
    if let Some(r) = record_mut(&mut state.history, master, epoch) {
        r.to = spare.clone();
        r.note = format!("spare {spare} seeded from replica {chosen}");
    }
    true
}

/// `SpareSkipped`: Choosing or Seeding → Skipped; the chosen replica will be promoted.
pub(super) fn skipped(
    state: &mut Machine,
    master: &str,
    epoch: u64,
    reason: &str,
    ev: &mut Vec<Event>,
) -> bool {
    let Some(m) = state.masters.get_mut(master) else { return false };
    let Some(f) = m.failover.as_mut().filter(|f| {
        f.epoch == epoch
            && f.phase == Phase::Selected
            && matches!(f.spare, Some(SpareStep::Choosing | SpareStep::Seeding(_)))
    }) else {
        return false;
    };
    f.spare = Some(SpareStep::Skipped);
    let reason: String = reason.chars().filter(|c| !c.is_control()).take(200).collect();
    ev.push(Event::master("-spare-skipped", &m.spec.name, &f.old_master, &format!(" {reason}")));
    ev.push(Event::replica(
        "+failover-state-send-slaveof-noone",
        &f.candidate,
        &m.spec.name,
        &f.old_master,
    ));
    if let Some(r) = record_mut(&mut state.history, master, epoch) {
        r.note = format!("no spare used ({reason}): promoted the chosen replica");
    }
    true
}
