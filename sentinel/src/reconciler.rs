//! The reconciler: the only part of the supervisor that changes nodes, and only on the Raft
//! leader. It compares the committed state with what the nodes report and returns the next
//! [`Action`]s — a proposal, or an idempotent command for a node. Planning is pure (time comes
//! in as an argument); [`crate::executor`] carries the actions out, committing each proposal
//! before any node command planned with it, so every step of a failover is in the log before
//! the next one starts. A new leader starts with an empty memory and resumes from the
//! committed state: it re-derives where the failover is and what is left to do.
//!
//! The failover procedure (listing 4.4, as Sentinel runs it):
//! 1. objective down ⇒ choose the candidate (lineage-aware, see [`choose_candidate`]) and
//!    commit `FailoverStarted` with the next epoch;
//! 2. start a BGSAVE on the candidate (a snapshot for safety; promotion does not wait for it)
//!    and promote it with the reconfiguration transaction (REPLICAOF NO ONE);
//! 3. once it reports `role:master`, commit `Promoted` — clients are switched only now;
//! 4. re-point the other replicas, `parallel-syncs` at a time, each `ReplicaReconfSent`
//!    committed before its REPLICAOF and `ReplicaReconfDone` once it follows the new master;
//! 5. commit `FailoverEnded`; a returning old master (or any stray master) is converted with a
//!    committed `ConvertToReplica` before its REPLICAOF.

use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};

use crate::consensus::core::GroupStatus;
use crate::health::{is_reachable, is_sdown};
use crate::info::Role;
use crate::machine::{Addr, Command, Machine, MasterSpec, MasterState, Phase, ReplicaStep};
use crate::monitor::NodeView;

/// Something the leader should do next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Commit a command (before any node action planned with it).
    Propose(Command),
    /// Start a background save on a node.
    Bgsave(Addr),
    /// Make a node a master (REPLICAOF NO ONE transaction).
    Promote(Addr),
    /// Make a node a replica of `to`.
    Repoint {
        /// The node.
        node: Addr,
        /// Its new master.
        to: Addr,
    },
}

/// A replica stuck in "sent" this long is considered done, as in Sentinel.
const RECONF_TIMEOUT: Duration = Duration::from_secs(10);
/// Minimum spacing of repeated node commands and identical proposals.
const RESEND: Duration = Duration::from_millis(500);
/// A supervisor silent this long on the leader no longer has current opinions.
const SILENT_SUPERVISOR: Duration = Duration::from_secs(3);
/// INFO older than this is not trusted for choosing a candidate.
const FRESH_INFO: Duration = Duration::from_secs(3);

/// The leader's working memory: timers and rate limits, never decisions.
pub struct Reconciler {
    me: u64,
    bootstrap: Vec<MasterSpec>,
    failover_seen: HashMap<String, (u64, Instant)>,
    last_abort: HashMap<String, Instant>,
    sent: HashMap<(Addr, &'static str), Instant>,
    proposed: HashMap<String, Instant>,
    reconf_sent_at: HashMap<(Addr, u64), Instant>,
    peer_seen: HashMap<u64, Instant>,
    bgsaved: BTreeSet<(String, u64)>,
    no_candidate_logged: HashMap<String, Instant>,
}

impl Reconciler {
    /// A reconciler for supervisor `me`, bootstrapping the group with `bootstrap`.
    pub fn new(me: u64, bootstrap: Vec<MasterSpec>) -> Reconciler {
        Reconciler {
            me,
            bootstrap,
            failover_seen: HashMap::new(),
            last_abort: HashMap::new(),
            sent: HashMap::new(),
            proposed: HashMap::new(),
            reconf_sent_at: HashMap::new(),
            peer_seen: HashMap::new(),
            bgsaved: BTreeSet::new(),
            no_candidate_logged: HashMap::new(),
        }
    }

    /// Forgets everything: called when leadership is lost, so a later term starts afresh.
    pub fn reset(&mut self) {
        *self = Reconciler::new(self.me, std::mem::take(&mut self.bootstrap));
    }

    fn may_send(&mut self, node: &Addr, kind: &'static str, now: Instant, every: Duration) -> bool {
        match self.sent.get(&(node.clone(), kind)) {
            Some(at) if now.saturating_duration_since(*at) < every => false,
            _ => {
                self.sent.insert((node.clone(), kind), now);
                true
            }
        }
    }

    fn propose(&mut self, out: &mut Vec<Action>, cmd: Command, now: Instant) {
        let key = format!("{cmd:?}");
        if let Some(at) = self.proposed.get(&key) {
            if now.saturating_duration_since(*at) < RESEND {
                return;
            }
        }
        self.proposed.insert(key, now);
        out.push(Action::Propose(cmd));
    }

    /// Plans the next actions. Call only on the leader.
    pub fn plan(
        &mut self,
        state: &Machine,
        views: &HashMap<Addr, NodeView>,
        status: &GroupStatus,
        now: Instant,
    ) -> Vec<Action> {
        let mut out = Vec::new();
        if !state.bootstrapped {
            let cmd = Command::Bootstrap { masters: self.bootstrap.clone() };
            self.propose(&mut out, cmd, now);
            return out;
        }
        self.forget_silent_supervisors(state, status, now, &mut out);
        for m in state.masters.values() {
            match &m.failover {
                None if m.odown => self.start_failover(state, m, views, now, &mut out),
                None => self.enforce_topology(m, views, now, &mut out),
                Some(f) if f.phase == Phase::Selected => self.promote(m, views, now, &mut out),
                Some(_) => self.repoint(m, views, now, &mut out),
            }
        }
        out
    }

    fn forget_silent_supervisors(
        &mut self,
        state: &Machine,
        status: &GroupStatus,
        now: Instant,
        out: &mut Vec<Action>,
    ) {
        for id in &status.voters {
            if status.active.contains(id) || *id == self.me {
                self.peer_seen.insert(*id, now);
            }
            self.peer_seen.entry(*id).or_insert(now);
        }
        let silent: Vec<u64> = self
            .peer_seen
            .iter()
            .filter(|(_, at)| now.saturating_duration_since(**at) > SILENT_SUPERVISOR)
            .map(|(id, _)| *id)
            .collect();
        for id in silent {
            if state.masters.values().any(|m| m.opinions.get(&id).is_some_and(|o| o.down)) {
                self.propose(out, Command::ForgetOpinions { supervisor: id }, now);
            }
        }
    }

    fn start_failover(
        &mut self,
        state: &Machine,
        m: &MasterState,
        views: &HashMap<Addr, NodeView>,
        now: Instant,
        out: &mut Vec<Action>,
    ) {
        let timeout = Duration::from_millis(m.spec.failover_timeout_ms);
        if self
            .last_abort
            .get(&m.spec.name)
            .is_some_and(|at| now.saturating_duration_since(*at) < timeout)
        {
            return;
        }
        let known = known_replicas(m, views);
        let down_after = Duration::from_millis(m.spec.down_after_ms);
        let Some(candidate) =
            choose_candidate(&m.spec.addr, views.get(&m.spec.addr), &known, views, now, down_after)
        else {
            let log = self
                .no_candidate_logged
                .get(&m.spec.name)
                .is_none_or(|at| now.saturating_duration_since(*at) > Duration::from_secs(5));
            if log {
                self.no_candidate_logged.insert(m.spec.name.clone(), now);
                tracing::warn!(master = %m.spec.name, "-failover-abort-no-good-slave master {} {} {}", m.spec.name, m.spec.addr.host, m.spec.addr.port);
            }
            return;
        };
        let replicas: Vec<Addr> = known.into_iter().filter(|r| *r != candidate).collect();
        let cmd = Command::FailoverStarted {
            master: m.spec.name.clone(),
            epoch: state.current_epoch + 1,
            candidate,
            old_master: m.spec.addr.clone(),
            replicas,
            forced: false,
        };
        self.propose(out, cmd, now);
    }

    fn seen_at(&mut self, m: &MasterState, epoch: u64, now: Instant) -> Instant {
        let entry = self.failover_seen.entry(m.spec.name.clone()).or_insert((epoch, now));
        if entry.0 != epoch {
            *entry = (epoch, now);
        }
        entry.1
    }

    fn promote(
        &mut self,
        m: &MasterState,
        views: &HashMap<Addr, NodeView>,
        now: Instant,
        out: &mut Vec<Action>,
    ) {
        let f = m.failover.as_ref().expect("called with a failover");
        let seen = self.seen_at(m, f.epoch, now);
        let view = views.get(&f.candidate);
        let promoted = view
            .and_then(|v| v.info.as_ref())
            .is_some_and(|i| i.role == Some(Role::Master) && !i.loading);
        if promoted {
            self.propose(
                out,
                Command::Promoted { master: m.spec.name.clone(), epoch: f.epoch },
                now,
            );
            return;
        }
        if now.saturating_duration_since(seen) > Duration::from_millis(m.spec.failover_timeout_ms) {
            self.last_abort.insert(m.spec.name.clone(), now);
            let cmd = Command::FailoverAborted {
                master: m.spec.name.clone(),
                epoch: f.epoch,
                reason: "slave-timeout".into(),
            };
            self.propose(out, cmd, now);
            return;
        }
        if self.bgsaved.insert((m.spec.name.clone(), f.epoch)) {
            out.push(Action::Bgsave(f.candidate.clone()));
        }
        if self.may_send(&f.candidate, "promote", now, RESEND) {
            out.push(Action::Promote(f.candidate.clone()));
        }
    }

    fn repoint(
        &mut self,
        m: &MasterState,
        views: &HashMap<Addr, NodeView>,
        now: Instant,
        out: &mut Vec<Action>,
    ) {
        let f = m.failover.as_ref().expect("called with a failover");
        let seen = self.seen_at(m, f.epoch, now);
        let new = &m.spec.addr;
        let down_after = Duration::from_millis(m.spec.down_after_ms);
        let timed_out =
            now.saturating_duration_since(seen) > Duration::from_millis(m.spec.failover_timeout_ms);
        let mut in_flight = f.replicas.values().filter(|s| **s == ReplicaStep::Sent).count();
        let mut blocking = false;
        for (r, step) in &f.replicas {
            let view = views.get(r);
            let reachable = view.is_some_and(|v| is_reachable(v, now, down_after));
            let following = view.and_then(|v| v.info.as_ref()).is_some_and(|i| {
                i.role == Some(Role::Replica) && i.master.as_ref() == Some(new) && i.link_up
            });
            let done = Command::ReplicaReconfDone {
                master: m.spec.name.clone(),
                epoch: f.epoch,
                replica: r.clone(),
            };
            match step {
                ReplicaStep::Done => {}
                _ if following => {
                    blocking = true;
                    self.propose(out, done, now);
                }
                _ if !reachable || timed_out => {
                    // Unreachable replicas do not hold the failover up; the steady-state
                    // check re-points them when they return. After the failover timeout the
                    // rest get a best-effort REPLICAOF, as in Sentinel.
                    if timed_out && reachable && self.may_send(r, "repoint", now, RESEND) {
                        out.push(Action::Repoint { node: r.clone(), to: new.clone() });
                    }
                }
                ReplicaStep::Pending => {
                    blocking = true;
                    if in_flight < m.spec.parallel_syncs as usize {
                        in_flight += 1;
                        let cmd = Command::ReplicaReconfSent {
                            master: m.spec.name.clone(),
                            epoch: f.epoch,
                            replica: r.clone(),
                        };
                        self.propose(out, cmd, now);
                    }
                }
                ReplicaStep::Sent => {
                    blocking = true;
                    let sent_at = *self.reconf_sent_at.entry((r.clone(), f.epoch)).or_insert(now);
                    if now.saturating_duration_since(sent_at) > RECONF_TIMEOUT {
                        tracing::info!(replica = %r, "-slave-reconf-sent-timeout");
                        self.propose(out, done, now);
                    } else if self.may_send(r, "repoint", now, Duration::from_secs(1)) {
                        out.push(Action::Repoint { node: r.clone(), to: new.clone() });
                    }
                }
            }
        }
        if !blocking {
            self.propose(
                out,
                Command::FailoverEnded { master: m.spec.name.clone(), epoch: f.epoch },
                now,
            );
        }
    }

    fn enforce_topology(
        &mut self,
        m: &MasterState,
        views: &HashMap<Addr, NodeView>,
        now: Instant,
        out: &mut Vec<Action>,
    ) {
        let master = &m.spec.addr;
        let down_after = Duration::from_millis(m.spec.down_after_ms);
        let healthy = views.get(master).is_some_and(|v| {
            is_reachable(v, now, down_after)
                && v.info.as_ref().is_some_and(|i| i.role == Some(Role::Master))
        });
        if !healthy {
            return;
        }
        for node in known_replicas(m, views) {
            let Some(v) = views.get(&node) else { continue };
            if !is_reachable(v, now, down_after) {
                continue;
            }
            let Some(info) = &v.info else { continue };
            if info.role == Some(Role::Master) {
                // A node we know as a replica claims to be master: the returning old master,
                // or a hand promotion. The committed master wins.
                if self.may_send(&node, "convert", now, Duration::from_secs(2)) {
                    let cmd = Command::ConvertToReplica {
                        master: m.spec.name.clone(),
                        epoch: m.config_epoch,
                        node: node.clone(),
                    };
                    out.push(Action::Propose(cmd));
                    out.push(Action::Repoint { node: node.clone(), to: master.clone() });
                }
            } else if info.role == Some(Role::Replica)
                && m.replicas.contains(&node)
                && info.master.as_ref() != Some(master)
                && self.may_send(&node, "fix", now, Duration::from_secs(2))
            {
                tracing::info!(replica = %node, master = %m.spec.name, "+fix-slave-config");
                out.push(Action::Repoint { node: node.clone(), to: master.clone() });
            }
        }
    }
}

/// Every node known as a replica of master `m`: committed ones, those the master's INFO lists,
/// and those whose own INFO says they follow it.
pub fn known_replicas(m: &MasterState, views: &HashMap<Addr, NodeView>) -> Vec<Addr> {
    let master = &m.spec.addr;
    let mut set: BTreeSet<Addr> = m.replicas.clone();
    if let Some(info) = views.get(master).and_then(|v| v.info.as_ref()) {
        set.extend(info.replicas.iter().cloned());
    }
    for (addr, v) in views {
        if v.info.as_ref().is_some_and(|i| i.master.as_ref() == Some(master)) {
            set.insert(addr.clone());
        }
    }
    set.remove(master);
    set.into_iter().collect()
}

/// The replica to promote, or none. Eligible: reachable, fresh INFO, a direct replica of the
/// failed master whose replication history descends from it (its `master_replid` or
/// `master_replid2` is the master's last known replid, when we know it), and
/// `replica-priority` not 0. A node that came back empty reports `role:master` or a foreign
/// history and is never chosen. Among the eligible: the highest offset, then the lowest
/// priority, then the smallest address (deterministic).
pub fn choose_candidate(
    master: &Addr,
    master_view: Option<&NodeView>,
    replicas: &[Addr],
    views: &HashMap<Addr, NodeView>,
    now: Instant,
    down_after: Duration,
) -> Option<Addr> {
    let history = master_view.and_then(|v| v.info.as_ref()).and_then(|i| i.replid.clone());
    let mut eligible: Vec<(i64, u32, &Addr)> = Vec::new();
    for r in replicas {
        let Some(v) = views.get(r) else { continue };
        let Some(info) = &v.info else { continue };
        if !is_reachable(v, now, down_after) {
            continue;
        }
        if v.info_at.is_none_or(|at| now.saturating_duration_since(at) > FRESH_INFO) {
            continue;
        }
        if info.role != Some(Role::Replica)
            || info.master.as_ref() != Some(master)
            || info.priority == 0
        {
            continue;
        }
        if let Some(h) = &history {
            if info.replid.as_ref() != Some(h) && info.replid2.as_ref() != Some(h) {
                continue;
            }
        }
        eligible.push((info.offset(), info.priority, r));
    }
    eligible.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)).then(a.2.cmp(b.2)));
    eligible.first().map(|e| e.2.clone())
}

/// True if the master is subjectively down for this supervisor.
pub fn master_sdown(m: &MasterState, views: &HashMap<Addr, NodeView>, now: Instant) -> bool {
    views
        .get(&m.spec.addr)
        .is_some_and(|v| is_sdown(v, now, Duration::from_millis(m.spec.down_after_ms)))
}
