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
//!    the replaced master, if it is up and still master (a manual failover), is converted at
//!    once with a committed `ConvertToReplica`;
//! 5. commit `FailoverEnded`; a returning old master (or any stray master) is converted with a
//!    committed `ConvertToReplica` before its REPLICAOF.
//!
//! Safety rests on three things: a step is acted on only after it is committed; the executor
//! confirms leadership with a quorum (ReadIndex) before any node command; and candidates need
//! evidence of lineage (see [`choose_candidate`]). That evidence — the master's replication ids
//! and its replicas — is committed by every supervisor as it observes them, so it survives a
//! restart of the whole group. The price: a group that never saw the master alive (started
//! after it died) will not promote anything, and says why in the
//! `-failover-abort-no-good-slave` log line.
//!
//! Deliberately left out: fencing a master that is alive but cut off from the supervisors (it
//! keeps accepting writes until it can be demoted — use `min-replicas-to-write`); a guard
//! against a master that restarts empty within `down-after-milliseconds` (Sentinel has the same
//! gap by default). A manual failover ([`crate::manual`]) enters here as a committed
//! `FailoverStarted { forced }` and runs the same steps from step 2 on. A switchover
//! ([`crate::switchover`]) pauses the master's writes and waits for its target to catch up
//! before step 2 (see [`switchover`]); the spare strategy seeds a spare from the candidate
//! and promotes the spare instead (`reconciler/spare.rs`).

mod spare;
pub mod switchover;

use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};

use crate::consensus::core::GroupStatus;
use crate::health::is_reachable;
use crate::info::Role;
use crate::machine::{Addr, Command, Machine, MasterSpec, MasterState, Phase, ReplicaStep};
use crate::monitor::NodeView;
pub use switchover::CatchUpReading;

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
    /// Switchover: pause the master's writes (`CLIENT PAUSE <lease_ms> WRITE`, which also
    /// extends a pause in force), then measure how far the target is behind it; the
    /// executor hands the [`CatchUpReading`] back through [`Reconciler::absorb`].
    CatchUp {
        /// The master being replaced.
        master: Addr,
        /// The replica to promote.
        target: Addr,
        /// How long the pause lasts unless renewed.
        lease_ms: u64,
    },
    /// Switchover: renew the old master's write pause until it is demoted.
    PauseWrites {
        /// The node.
        node: Addr,
        /// How long the pause lasts unless renewed.
        lease_ms: u64,
    },
    /// Switchover: lift the old master's write pause (`CLIENT UNPAUSE`).
    UnpauseWrites(Addr),
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
    /// The latest switchover measurement per (master, target), with when it came back.
    readings: HashMap<(Addr, Addr), (CatchUpReading, Instant)>,
    /// When each failover (master, epoch) was first seen ready for its promotion.
    promotable_since: HashMap<(String, u64), Instant>,
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
            readings: HashMap::new(),
            promotable_since: HashMap::new(),
        }
    }

    /// Takes in what the executor measured for the last batch (switchover catch-up readings).
    pub fn absorb(&mut self, readings: Vec<CatchUpReading>, now: Instant) {
        for r in readings {
            self.readings.insert((r.master.clone(), r.target.clone()), (r, now));
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
                Some(f) if f.phase != Phase::Promoted => self.promote(m, views, now, &mut out),
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
        let (candidate, replicas, excluded) = select_candidate(m, views, now);
        let Some(candidate) = candidate else {
            let log = self
                .no_candidate_logged
                .get(&m.spec.name)
                .is_none_or(|at| now.saturating_duration_since(*at) > Duration::from_secs(5));
            if log {
                self.no_candidate_logged.insert(m.spec.name.clone(), now);
                let why: Vec<String> = excluded.iter().map(|(a, r)| format!("{a}: {r}")).collect();
                tracing::warn!(
                    master = %m.spec.name,
                    excluded = %why.join("; "),
                    "-failover-abort-no-good-slave master {} {} {}",
                    m.spec.name,
                    m.spec.addr.host,
                    m.spec.addr.port
                );
            }
            return;
        };
        let cmd = Command::FailoverStarted {
            master: m.spec.name.clone(),
            epoch: state.current_epoch + 1,
            candidate,
            old_master: m.spec.addr.clone(),
            replicas,
            forced: false,
            request: 0,
            at_ms: 0,
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
        if let Some(plan) = &f.switchover {
            self.switchover(m, f, plan, views, now, out);
            return;
        }
        let seen = self.seen_at(m, f.epoch, now);
        let view = views.get(&f.candidate);
        let promoted = view
            .and_then(|v| v.info.as_ref())
            .is_some_and(|i| i.role == Some(Role::Master) && !i.loading);
        if promoted && f.ready_to_promote() {
            self.propose(
                out,
                Command::Promoted { master: m.spec.name.clone(), epoch: f.epoch, at_ms: 0 },
                now,
            );
            return;
        }
        if self.bgsaved.insert((m.spec.name.clone(), f.epoch)) {
            out.push(Action::Bgsave(f.candidate.clone()));
        }
        if self.spare_step(m, f, views, seen, now, out) {
            return;
        }
        // The promotion's deadline runs from when it could start (after any spare step).
        let since = *self.promotable_since.entry((m.spec.name.clone(), f.epoch)).or_insert(now);
        if now.saturating_duration_since(since) > Duration::from_millis(m.spec.failover_timeout_ms)
        {
            self.last_abort.insert(m.spec.name.clone(), now);
            let cmd = Command::FailoverAborted {
                master: m.spec.name.clone(),
                epoch: f.epoch,
                reason: "slave-timeout".into(),
                at_ms: 0,
            };
            self.propose(out, cmd, now);
            return;
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
        // The replaced master still up and still master (a manual failover, or one that came
        // back): converted now, not after the last replica, so two masters take writes for as
        // short a time as possible. The steady-state check does the same once the failover ends.
        let old_view = views.get(&f.old_master);
        let old_is_master = old_view.is_some_and(|v| {
            is_reachable(v, now, down_after)
                && v.info.as_ref().is_some_and(|i| i.role == Some(Role::Master))
        });
        if let Some(lease_ms) = f.switchover.as_ref().map(|_| switchover::PAUSE_LEASE_MS) {
            // A switchover's old master stays paused until it is demoted: a write it took
            // now would be on no replica of the new master.
            if old_is_master && self.may_send(&f.old_master, "pause", now, switchover::RENEW) {
                out.push(Action::PauseWrites { node: f.old_master.clone(), lease_ms });
            }
        }
        if old_is_master && self.may_send(&f.old_master, "convert", now, Duration::from_secs(2)) {
            let cmd = Command::ConvertToReplica {
                master: m.spec.name.clone(),
                epoch: m.config_epoch,
                node: f.old_master.clone(),
            };
            out.push(Action::Propose(cmd));
            out.push(Action::Repoint { node: f.old_master.clone(), to: new.clone() });
        }
        let mut in_flight = f.replicas.values().filter(|s| **s == ReplicaStep::Sent).count();
        // A switchover ends (and unpauses its old master) only once the old master is demoted.
        let mut blocking = f.switchover.is_some() && old_is_master;
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
            let len = out.len();
            self.propose(
                out,
                Command::FailoverEnded { master: m.spec.name.clone(), epoch: f.epoch, at_ms: 0 },
                now,
            );
            if f.switchover.is_some() && out.len() > len {
                // Committed first (the executor runs proposals before node commands); a lost
                // UNPAUSE is bounded by the pause lease.
                out.push(Action::UnpauseWrites(f.old_master.clone()));
            }
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

/// The failover choice for master `m`, shared by the automatic path and by a manual
/// `SENTINEL FAILOVER` ([`crate::manual`]): the lineage-aware candidate (if any), the other
/// known replicas to re-point afterwards, and why each excluded replica was excluded.
pub fn select_candidate(
    m: &MasterState,
    views: &HashMap<Addr, NodeView>,
    now: Instant,
) -> (Option<Addr>, Vec<Addr>, Vec<(Addr, &'static str)>) {
    let known = known_replicas(m, views);
    let down_after = Duration::from_millis(m.spec.down_after_ms);
    // Lineage evidence: the ids this supervisor saw the master report, and those any
    // supervisor committed (which survive a restart of this one).
    let mut history: Vec<String> =
        views.get(&m.spec.addr).map_or_else(Vec::new, |v| v.master_replids.clone());
    history.extend(m.replids.iter().cloned());
    let (candidate, excluded) =
        rank_candidates(&m.spec.addr, &history, &known, views, now, down_after);
    let replicas = known.into_iter().filter(|r| Some(r) != candidate.as_ref()).collect();
    (candidate, replicas, excluded)
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
    let history: &[String] = master_view.map_or(&[], |v| &v.master_replids);
    rank_candidates(master, history, replicas, views, now, down_after).0
}

/// [`choose_candidate`] plus the reason each excluded replica was excluded, for the log.
pub fn rank_candidates(
    master: &Addr,
    master_history: &[String],
    replicas: &[Addr],
    views: &HashMap<Addr, NodeView>,
    now: Instant,
    down_after: Duration,
) -> (Option<Addr>, Vec<(Addr, &'static str)>) {
    let mut eligible: Vec<(i64, u32, &Addr)> = Vec::new();
    let mut excluded = Vec::new();
    for r in replicas {
        let reason = match views.get(r) {
            None => Some("not watched"),
            Some(v) => match &v.info {
                None => Some("no INFO yet"),
                Some(_) if !is_reachable(v, now, down_after) => Some("unreachable"),
                Some(_)
                    if v.info_at
                        .is_none_or(|at| now.saturating_duration_since(at) > FRESH_INFO) =>
                {
                    Some("INFO too old")
                }
                Some(info) if info.role != Some(Role::Replica) => Some("not a replica"),
                Some(info) if info.master.as_ref() != Some(master) => {
                    Some("follows another master")
                }
                Some(info) if info.priority == 0 => Some("replica-priority 0"),
                Some(info) if !descends(info, v, master, master_history) => {
                    Some("no evidence its history descends from the master's (replid)")
                }
                Some(info) => {
                    eligible.push((info.offset(), info.priority, r));
                    None
                }
            },
        };
        if let Some(reason) = reason {
            excluded.push((r.clone(), reason));
        }
    }
    eligible.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)).then(a.2.cmp(b.2)));
    (eligible.first().map(|e| e.2.clone()), excluded)
}

/// Lineage: the replica's replication id (or the one it continued from) is one the master
/// reported, or the one the replica itself reported while its link to this master was up.
fn descends(
    info: &crate::info::NodeInfo,
    view: &NodeView,
    master: &Addr,
    master_history: &[String],
) -> bool {
    let mut known: Vec<&String> = master_history.iter().collect();
    if let Some((m, id)) = &view.synced_from {
        if m == master {
            known.push(id);
        }
    }
    [&info.replid, &info.replid2].into_iter().flatten().any(|id| known.contains(&id))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::info::NodeInfo;

    use crate::testkit::{addr as a, connected_view as view};

    fn replica_of(master: u16, replid: &str, offset: i64, priority: u32) -> String {
        format!(
            "role:slave\nmaster_host:10.0.0.1\nmaster_port:{master}\nmaster_link_status:up\n\
             slave_repl_offset:{offset}\nslave_priority:{priority}\nmaster_replid:{replid}\nmaster_replid2:0\n"
        )
    }

    fn down(now: Instant) -> NodeView {
        NodeView {
            last_ok: Some(now - Duration::from_secs(5)),
            connected: false,
            ..view(now, "role:master\nmaster_replid:aaa\n")
        }
    }

    #[test]
    fn the_candidate_descends_from_the_master_and_is_the_most_advanced() {
        let now = Instant::now();
        let mut views = HashMap::new();
        views.insert(a(1), down(now));
        views.insert(a(2), view(now, &replica_of(1, "aaa", 100, 100)));
        // Pointed at the master but never synced from it: a foreign history.
        let foreign = replica_of(1, "zzz", 900, 100)
            .replace("master_link_status:up", "master_link_status:down");
        views.insert(a(3), view(now, &foreign));
        views.insert(a(4), view(now, &replica_of(1, "aaa", 800, 0))); // priority 0: never
        views.insert(a(5), view(now, "role:master\nmaster_replid:fresh\n")); // came back empty
        views.insert(a(6), view(now, &replica_of(9, "aaa", 700, 100))); // follows someone else
        let mut continued = view(now, &replica_of(1, "bbb", 150, 100));
        continued.info.as_mut().unwrap().replid2 = Some("aaa".into()); // continued the history
        views.insert(a(7), continued);
        let all: Vec<Addr> = (2..=7).map(a).collect();
        let d = Duration::from_secs(1);
        assert_eq!(choose_candidate(&a(1), views.get(&a(1)), &all, &views, now, d), Some(a(7)));
        // Equal offsets: the lower replica-priority wins.
        views.insert(a(8), view(now, &replica_of(1, "aaa", 150, 10)));
        let all: Vec<Addr> = (2..=8).map(a).collect();
        assert_eq!(choose_candidate(&a(1), views.get(&a(1)), &all, &views, now, d), Some(a(8)));
        // Stale INFO or an unreachable replica is not trusted.
        views.get_mut(&a(8)).unwrap().info_at = Some(now - Duration::from_secs(10));
        views.get_mut(&a(7)).unwrap().connected = false;
        assert_eq!(choose_candidate(&a(1), views.get(&a(1)), &all, &views, now, d), Some(a(2)));
        // Nothing eligible: no failover rather than a bad one.
        assert_eq!(
            choose_candidate(&a(1), views.get(&a(1)), &[a(3), a(4), a(5)], &views, now, d),
            None
        );
    }

    #[test]
    fn a_replica_synced_from_the_master_qualifies_even_if_the_master_changed_replid_unseen() {
        // A master picks a new replication id when its first replica attaches; if it dies
        // before the next INFO, only the replica has seen that id, while its link was up.
        let now = Instant::now();
        let mut views = HashMap::new();
        views.insert(a(1), down(now)); // last reported replid "aaa"
        let mut r = view(now, &replica_of(1, "new", 50, 100)); // link up: evidence recorded
        let later = replica_of(1, "new", 50, 100)
            .replace("master_link_status:up", "master_link_status:down");
        r.observe(NodeInfo::parse(&later), now);
        views.insert(a(2), r);
        let d = Duration::from_secs(1);
        assert_eq!(choose_candidate(&a(1), views.get(&a(1)), &[a(2)], &views, now, d), Some(a(2)));
        // The evidence is about this master only.
        assert_eq!(choose_candidate(&a(9), views.get(&a(1)), &[a(2)], &views, now, d), None);
    }

    fn spec() -> MasterSpec {
        crate::testkit::spec(a(1), 2)
    }

    fn status() -> GroupStatus {
        GroupStatus {
            id: 1,
            term: 2,
            leader: 1,
            is_leader: true,
            voters: vec![1, 2, 3],
            active: vec![1, 2, 3],
            applied: 0,
            ..Default::default()
        }
    }

    /// Plans, applies every proposal and returns the actions as text.
    fn run(
        r: &mut Reconciler,
        m: &mut Machine,
        views: &HashMap<Addr, NodeView>,
        now: Instant,
    ) -> Vec<String> {
        let actions = r.plan(m, views, &status(), now);
        step(m, actions)
    }

    /// Applies every proposal in `actions` and returns the actions as text.
    fn step(m: &mut Machine, actions: Vec<Action>) -> Vec<String> {
        let mut out = Vec::new();
        for action in actions {
            match action {
                Action::Propose(cmd) => {
                    let text = format!("{cmd:?}");
                    let short = text.split([' ', '{']).next().unwrap().to_string();
                    let accepted = m.apply_command(m.applied_index + 1, cmd);
                    out.push(format!(
                        "propose {short}{}",
                        if accepted { "" } else { " (rejected)" }
                    ));
                }
                Action::Bgsave(n) => out.push(format!("bgsave {}", n.port)),
                Action::Promote(n) => out.push(format!("promote {}", n.port)),
                Action::Repoint { node, to } => {
                    out.push(format!("repoint {} -> {}", node.port, to.port))
                }
                other => out.push(format!("{other:?}")),
            }
        }
        out
    }

    #[test]
    fn the_failover_steps_in_order_and_a_new_leader_resumes_without_repeating() {
        let t = Instant::now();
        let mut m = Machine::default();
        let mut r = Reconciler::new(1, vec![spec()]);
        let mut views = HashMap::new();
        views.insert(a(1), view(t, "role:master\nmaster_replid:aaa\nslave0:ip=10.0.0.1,port=2\nslave1:ip=10.0.0.1,port=3\n"));
        views.insert(a(2), view(t, &replica_of(1, "aaa", 100, 100)));
        views.insert(a(3), view(t, &replica_of(1, "aaa", 90, 100)));
        assert_eq!(run(&mut r, &mut m, &views, t), ["propose Bootstrap"]);
        assert!(run(&mut r, &mut m, &views, t).is_empty(), "healthy: nothing to do");
        for s in [1, 2] {
            m.apply_command(
                m.applied_index + 1,
                Command::Opinion { supervisor: s, master: "m".into(), epoch: 0, down: true },
            );
        }
        views.insert(a(1), down(t));
        assert_eq!(run(&mut r, &mut m, &views, t), ["propose FailoverStarted"]);
        assert_eq!(m.masters["m"].failover.as_ref().unwrap().candidate, a(2));
        assert_eq!(run(&mut r, &mut m, &views, t), ["bgsave 2", "promote 2"]);
        // Re-planning at once sends nothing twice.
        assert!(run(&mut r, &mut m, &views, t).is_empty());
        views.insert(a(2), view(t, "role:master\nmaster_replid:new\nmaster_replid2:aaa\n"));
        assert_eq!(run(&mut r, &mut m, &views, t), ["propose Promoted"]);
        assert_eq!(m.masters["m"].spec.addr, a(2));

        // Leadership moves: the successor starts with an empty memory.
        let mut r = Reconciler::new(2, vec![spec()]);
        let t = t + Duration::from_millis(600);
        assert_eq!(run(&mut r, &mut m, &views, t), ["propose ReplicaReconfSent"]);
        assert_eq!(run(&mut r, &mut m, &views, t), ["repoint 3 -> 2"]);
        views.insert(a(3), view(t, &replica_of(2, "new", 100, 100)));
        assert_eq!(run(&mut r, &mut m, &views, t), ["propose ReplicaReconfDone"]);
        assert_eq!(run(&mut r, &mut m, &views, t), ["propose FailoverEnded"]);
        assert!(m.masters["m"].failover.is_none());

        // The old master returns with its old role: committed conversion, then REPLICAOF.
        views.insert(a(1), view(t, "role:master\nmaster_replid:aaa\n"));
        assert_eq!(run(&mut r, &mut m, &views, t), ["propose ConvertToReplica", "repoint 1 -> 2"]);
        assert_eq!(m.current_epoch, 1);
    }

    #[test]
    fn a_candidate_that_never_turns_master_is_given_up_after_the_failover_timeout() {
        let t = Instant::now();
        let mut m = Machine::default();
        let mut r = Reconciler::new(1, vec![spec()]);
        let mut views = HashMap::new();
        views.insert(a(1), down(t));
        views.insert(a(2), view(t, &replica_of(1, "aaa", 100, 100)));
        run(&mut r, &mut m, &views, t);
        for s in [1, 2] {
            m.apply_command(
                m.applied_index + 1,
                Command::Opinion { supervisor: s, master: "m".into(), epoch: 0, down: true },
            );
        }
        assert_eq!(run(&mut r, &mut m, &views, t), ["propose FailoverStarted"]);
        assert_eq!(run(&mut r, &mut m, &views, t), ["bgsave 2", "promote 2"]);
        let later = t + Duration::from_millis(10_001);
        assert_eq!(run(&mut r, &mut m, &views, later), ["propose FailoverAborted"]);
        // No immediate retry: the next attempt waits another failover-timeout.
        assert!(run(&mut r, &mut m, &views, later).is_empty());
        let much_later = later + Duration::from_millis(10_001);
        let mut fresh = views.clone();
        for v in fresh.values_mut() {
            v.last_ok = Some(much_later);
            v.info_at = Some(much_later);
        }
        fresh.get_mut(&a(1)).unwrap().last_ok = Some(t);
        assert_eq!(run(&mut r, &mut m, &fresh, much_later), ["propose FailoverStarted"]);
        assert_eq!(m.current_epoch, 2);
    }
}
