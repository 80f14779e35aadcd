//! Starting a failover or a switchover: the checks both share (the next epoch, one in flight
//! per master, the old master still the committed one) and the history record.

use super::{
    Addr, Event, Failover, FailoverRecord, Machine, Phase, ReplicaStep, SpareStep, Strategy,
    SwitchoverPlan, MAX_HISTORY,
};

/// The fields shared by [`super::Command::FailoverStarted`] and
/// [`super::Command::SwitchoverStarted`].
pub(super) struct Start {
    pub master: String,
    pub epoch: u64,
    pub candidate: Addr,
    pub old_master: Addr,
    pub replicas: Vec<Addr>,
    pub forced: bool,
    pub request: u64,
    pub at_ms: u64,
}

impl Machine {
    /// Starts a failover (or, with `switchover`, a switchover) if it fits: the next epoch, no
    /// failover in flight, the master objectively down or the request forced, the old master
    /// still the committed one.
    pub(super) fn start(
        &mut self,
        s: Start,
        switchover: Option<SwitchoverPlan>,
        ev: &mut Vec<Event>,
    ) -> bool {
        let Start { master, epoch, candidate, old_master, replicas, forced, request, at_ms } = s;
        if epoch != self.current_epoch + 1 {
            return false;
        }
        let Some(m) = self.masters.get_mut(&master) else { return false };
        if m.failover.is_some()
            || !(m.odown || forced)
            || old_master != m.spec.addr
            || candidate == m.spec.addr
        {
            return false;
        }
        self.current_epoch = epoch;
        let name = m.spec.name.clone();
        ev.push(Event::plain("+new-epoch", &epoch.to_string()));
        ev.push(Event::master("+try-failover", &name, &old_master, ""));
        ev.push(Event::master("+elected-leader", &name, &old_master, ""));
        ev.push(Event::master("+failover-state-select-slave", &name, &old_master, ""));
        ev.push(Event::replica("+selected-slave", &candidate, &name, &old_master));
        // A switchover moves the master on purpose, to a replica that is in sync: no spare.
        let spare = (switchover.is_none() && m.spec.strategy == Strategy::Spare)
            .then_some(SpareStep::Choosing);
        // The promotion is announced when it is next: at once for a plain failover, after the
        // catch-up or the spare step otherwise.
        if switchover.is_some() {
            ev.push(Event::replica("+switchover-wait-catch-up", &candidate, &name, &old_master));
        } else if spare.is_some() {
            ev.push(Event::master("+failover-state-select-spare", &name, &old_master, ""));
        } else {
            ev.push(Event::replica(
                "+failover-state-send-slaveof-noone",
                &candidate,
                &name,
                &old_master,
            ));
        }
        let replicas = replicas
            .into_iter()
            .filter(|r| *r != candidate && *r != old_master)
            .map(|r| (r, ReplicaStep::Pending))
            .collect();
        let history = self.history.entry(name).or_default();
        history.push(FailoverRecord {
            epoch,
            from: old_master.clone(),
            to: candidate.clone(),
            forced,
            outcome: "in-progress".into(),
            started_ms: at_ms,
            promoted_ms: 0,
            finished_ms: 0,
            started_index: self.applied_index,
            request,
            switchover: switchover.is_some(),
            note: String::new(),
        });
        if history.len() > MAX_HISTORY {
            history.remove(0);
        }
        m.failover = Some(Failover {
            epoch,
            candidate,
            old_master,
            phase: Phase::Selected,
            replicas,
            forced,
            switchover,
            spare,
        });
        true
    }
}
