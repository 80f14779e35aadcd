//! The replicated state machine: what the supervisors have *decided*.
//!
//! Every supervisor applies the same committed [`Command`]s in the same order and reaches the
//! same [`Machine`]. Applying is pure: no clock, no randomness, no I/O. It never talks to a
//! node — only the leader's reconciler does, after reading the committed state — so replaying
//! the log after a restart sends nothing. A command that does not fit the current state
//! (an old epoch, a second failover for the same master, a step out of order) is ignored, which
//! makes proposals safe to retry and stale leaders harmless.
//!
//! Invariants (tested by the golden scripts in `testdata/`):
//! - a master is *objectively down* when at least `quorum` supervisors' current opinions (those
//!   given for the master's current config epoch) say down;
//! - a failover starts only for an objectively-down master (or a forced one, issue 6), with
//!   `epoch == current_epoch + 1`, so epochs strictly increase and each is used once;
//! - at most one failover per master is in flight; its steps are Selected → Promoted →
//!   replicas re-pointed (at most `parallel-syncs` in flight) → ended, each a committed entry;
//! - a switchover (a forced failover of a healthy master) goes Selected → InSync → Promoted:
//!   `Promoted` is refused until the target was committed in sync with the paused master
//!   (`machine/switchover.rs`);
//! - with strategy `spare`, `Promoted` is refused until a spare was seeded (and became the
//!   candidate, leaving the pool) or skipped with a reason (`machine/spare.rs`);
//! - after promotion the failover (or switchover) cannot be aborted, and the master's address
//!   is the candidate's, under the failover's epoch (a `SENTINEL RESET` then only drops the
//!   re-pointing bookkeeping; the leader's topology enforcement re-points the stragglers).
//!
//! Runtime configuration ([`runtime_config`]: `SENTINEL MONITOR/REMOVE/SET/RESET/CONFIG SET`)
//! and the supervisors' membership records ([`membership`]: raft addresses, removed ids) are
//! applied here too, so they are the same on every supervisor and survive restarts.
//!
//! Apply also records Sentinel-style [`Event`]s for the pub/sub API; they are a side output,
//! not part of the replicated state.

mod event;
#[cfg(test)]
mod golden;
pub mod membership;
pub mod runtime_config;
pub mod sealed;
mod spare;
mod start;
mod switchover;

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use serde::{Deserialize, Serialize};

pub use event::Event;
pub use membership::Membership;
pub use runtime_config::{
    Announce, ConfigChange, ConfigOutcome, GlobalSetting, MasterOption, Password, Settings,
};
pub use spare::{SpareStep, Strategy};
use start::Start;
pub use switchover::SwitchoverPlan;

/// A node address as clients see it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Addr {
    /// IP address text.
    pub host: String,
    /// TCP port.
    pub port: u16,
}

impl Addr {
    /// A new address.
    pub fn new(host: String, port: u16) -> Addr {
        Addr { host, port }
    }

    /// Parses `host:port`.
    pub fn parse(text: &str) -> Option<Addr> {
        let (host, port) = text.rsplit_once(':')?;
        Some(Addr::new(host.to_string(), port.parse().ok()?))
    }
}

impl std::fmt::Display for Addr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.host, self.port)
    }
}

/// A monitored master's replicated settings.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MasterSpec {
    /// The service name clients ask for.
    pub name: String,
    /// The master's address (the current one, once failovers happened).
    pub addr: Addr,
    /// Opinions needed for objective down.
    pub quorum: u32,
    /// Silence after which a supervisor thinks a node is down.
    pub down_after_ms: u64,
    /// Deadline for promotion, and for re-pointing replicas.
    pub failover_timeout_ms: u64,
    /// Replicas re-pointed at the same time.
    pub parallel_syncs: u32,
    /// How a failed master is replaced (`sentinel failover-strategy`).
    #[serde(default)]
    pub strategy: Strategy,
    /// The spare pool (`sentinel spare`): idle nodes a `spare`-strategy failover seeds from the
    /// chosen replica and promotes instead of it. Bootstrapped from the config; a spare leaves
    /// the pool when it is promoted (committed, like `addr`).
    #[serde(default)]
    pub spares: Vec<Addr>,
    /// `auth-user` for the master and its replicas.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_user: Option<String>,
    /// `auth-pass` for the master and its replicas: in the Raft store and memory only, never
    /// printed (see [`Password`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_pass: Option<Password>,
}

/// A committed decision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "kebab-case")]
pub enum Command {
    /// The masters from the config files; applied once, when the group is new.
    Bootstrap {
        /// The masters.
        masters: Vec<MasterSpec>,
    },
    /// A supervisor's opinion of a master, for the master's config epoch `epoch`.
    Opinion {
        /// The supervisor's raft id.
        supervisor: u64,
        /// The master's name.
        master: String,
        /// The config epoch the opinion is about.
        epoch: u64,
        /// True if it thinks the master is down.
        down: bool,
    },
    /// The leader saw a supervisor silent for longer than an election timeout: its opinions
    /// are no longer current.
    ForgetOpinions {
        /// The silent supervisor.
        supervisor: u64,
    },
    /// The leader starts a failover.
    FailoverStarted {
        /// The master's name.
        master: String,
        /// The failover's epoch: `current_epoch + 1`.
        epoch: u64,
        /// The replica to promote.
        candidate: Addr,
        /// The failed master's address.
        old_master: Addr,
        /// The replicas to re-point afterwards (the candidate excluded).
        replicas: Vec<Addr>,
        /// A manual failover (issue 6): no objective-down agreement needed.
        #[serde(default)]
        forced: bool,
        /// A manual request's nonce (0 for an automatic failover), kept in the history so the
        /// requester can tell its own entry from a concurrent rival's for the same epoch.
        #[serde(default)]
        request: u64,
        /// Wall-clock time the leader proposed it (ms since the Unix epoch; 0 if unknown), for
        /// the failover history only: never compared, so apply stays deterministic.
        #[serde(default)]
        at_ms: u64,
    },
    /// The candidate reports `role:master`.
    Promoted {
        /// The master's name.
        master: String,
        /// The failover's epoch.
        epoch: u64,
        /// Wall-clock time the leader proposed it (ms since the Unix epoch; 0 if unknown), for
        /// the failover history only: never compared, so apply stays deterministic.
        #[serde(default)]
        at_ms: u64,
    },
    /// The leader is about to send `REPLICAOF <new master>` to this replica.
    ReplicaReconfSent {
        /// The master's name.
        master: String,
        /// The failover's epoch.
        epoch: u64,
        /// The replica.
        replica: Addr,
    },
    /// The replica replicates from the new master (or was given up on as unreachable).
    ReplicaReconfDone {
        /// The master's name.
        master: String,
        /// The failover's epoch.
        epoch: u64,
        /// The replica.
        replica: Addr,
    },
    /// Every reachable replica follows the new master.
    FailoverEnded {
        /// The master's name.
        master: String,
        /// The failover's epoch.
        epoch: u64,
        /// Wall-clock time the leader proposed it (ms since the Unix epoch; 0 if unknown), for
        /// the failover history only: never compared, so apply stays deterministic.
        #[serde(default)]
        at_ms: u64,
    },
    /// The failover could not promote its candidate; nothing was changed.
    FailoverAborted {
        /// The master's name.
        master: String,
        /// The failover's epoch.
        epoch: u64,
        /// Sentinel's abort reason word (`slave-timeout`, `no-good-slave`).
        reason: String,
        /// Wall-clock time the leader proposed it (ms since the Unix epoch; 0 if unknown), for
        /// the failover history only: never compared, so apply stays deterministic.
        #[serde(default)]
        at_ms: u64,
    },
    /// Replication ids a supervisor saw the master (of config epoch `epoch`) report.
    MasterReplids {
        /// The master's name.
        master: String,
        /// The master's config epoch when they were seen.
        epoch: u64,
        /// The ids, oldest first.
        replids: Vec<String>,
    },
    /// Replicas a supervisor discovered for the master of config epoch `epoch` (Sentinel's
    /// `known-replica`): committed so that a restarted supervisor still watches them.
    ReplicasDiscovered {
        /// The master's name.
        master: String,
        /// The master's config epoch when they were seen.
        epoch: u64,
        /// The replicas.
        replicas: Vec<Addr>,
    },
    /// A supervisor's client-facing address, for `SENTINEL SENTINELS` and `CKQUORUM`.
    SupervisorAnnounced {
        /// Its raft id.
        supervisor: u64,
        /// Its Sentinel-protocol address.
        addr: Addr,
        /// Its 40-hex run id (`SENTINEL MYID`).
        run_id: String,
    },
    /// An operator's zero-loss switchover (`SENTINEL SWITCHOVER`): like a forced failover, but
    /// the master's writes are paused and `target` must have every write (a committed
    /// [`Command::SwitchoverInSync`]) before it may be promoted. See [`crate::switchover`].
    SwitchoverStarted {
        /// The master's name.
        master: String,
        /// The switchover's epoch: `current_epoch + 1`.
        epoch: u64,
        /// The replica to promote.
        target: Addr,
        /// The master being replaced (alive: it is paused, then demoted).
        old_master: Addr,
        /// The replicas to re-point afterwards (the target excluded).
        replicas: Vec<Addr>,
        /// How long the target may take to catch up before the switchover is aborted.
        timeout_ms: u64,
        /// The request's nonce (see `FailoverStarted::request`).
        #[serde(default)]
        request: u64,
        /// Wall-clock time of the proposal, for the history only.
        #[serde(default)]
        at_ms: u64,
    },
    /// With the master's writes paused, the target's replication offset reached the master's:
    /// it has every acknowledged write and may be promoted.
    SwitchoverInSync {
        /// The master's name.
        master: String,
        /// The switchover's epoch.
        epoch: u64,
        /// The offset both reported.
        offset: i64,
    },
    /// A `spare`-strategy failover picked this idle spare; the leader is about to point it at
    /// the chosen replica (`REPLICAOF chosen`).
    SpareAssigned {
        /// The master's name.
        master: String,
        /// The failover's epoch.
        epoch: u64,
        /// The spare.
        spare: Addr,
    },
    /// The spare is in sync with the chosen replica: it becomes the candidate, the chosen
    /// replica joins the replicas to re-point, and the spare leaves the pool.
    SpareSeeded {
        /// The master's name.
        master: String,
        /// The failover's epoch.
        epoch: u64,
    },
    /// No spare could be used (none reachable, or it did not sync in time): the chosen
    /// replica is promoted instead.
    SpareSkipped {
        /// The master's name.
        master: String,
        /// The failover's epoch.
        epoch: u64,
        /// Why, for the history and the log.
        reason: String,
    },
    /// A runtime configuration change (`SENTINEL MONITOR/REMOVE/SET/RESET/CONFIG SET`),
    /// requested on any supervisor.
    Configure {
        /// The requester's nonce, under which the outcome is recorded (0: none).
        request: u64,
        /// The change.
        change: ConfigChange,
    },
    /// A node that claims to be master but is not the committed one (the returning old
    /// master) is being made a replica of the current master.
    ConvertToReplica {
        /// The master's name.
        master: String,
        /// The master's config epoch.
        epoch: u64,
        /// The node.
        node: Addr,
    },
}

impl Command {
    /// The wire form in the Raft log.
    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("commands always serialise")
    }

    /// Sets the wall-clock time of a failover step (the I/O shell calls this just before
    /// proposing; planning stays clock-free).
    pub fn stamp(&mut self, now_ms: u64) {
        match self {
            Command::FailoverStarted { at_ms, .. }
            | Command::SwitchoverStarted { at_ms, .. }
            | Command::Promoted { at_ms, .. }
            | Command::FailoverEnded { at_ms, .. }
            | Command::FailoverAborted { at_ms, .. } => *at_ms = now_ms,
            _ => {}
        }
    }

    /// Decodes a log entry.
    pub fn decode(data: &[u8]) -> Result<Command, String> {
        serde_json::from_slice(data).map_err(|e| e.to_string())
    }
}

/// Where a failover is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Phase {
    /// Candidate chosen; promotion under way (Sentinel's `send_slaveof_noone`/`wait_promotion`).
    /// For a switchover: the master's writes are paused and the target is catching up; for
    /// the spare strategy: a spare is being chosen and seeded first.
    Selected,
    /// A switchover's target has every write of the paused master; promotion under way.
    InSync,
    /// Candidate is master; replicas being re-pointed (`reconf_slaves`).
    Promoted,
}

impl Failover {
    /// Whether the candidate may be promoted now: a switchover's target only once it is in
    /// sync, a spare-strategy failover's only once the spare question is settled.
    pub fn ready_to_promote(&self) -> bool {
        let spare_settled =
            !matches!(self.spare, Some(SpareStep::Choosing | SpareStep::Seeding(_)));
        match self.phase {
            Phase::Selected => self.switchover.is_none() && spare_settled,
            Phase::InSync => true,
            Phase::Promoted => false,
        }
    }
}

/// A replica's progress during re-pointing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ReplicaStep {
    /// Not yet told.
    Pending,
    /// REPLICAOF sent.
    Sent,
    /// Follows the new master.
    Done,
}

/// A failover in flight.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failover {
    /// Its epoch.
    pub epoch: u64,
    /// The replica being promoted.
    pub candidate: Addr,
    /// The failed master.
    pub old_master: Addr,
    /// Where it is.
    pub phase: Phase,
    /// Re-pointing progress per replica.
    #[serde(with = "addr_keys")]
    pub replicas: BTreeMap<Addr, ReplicaStep>,
    /// A manual failover.
    pub forced: bool,
    /// Set for a zero-loss switchover.
    #[serde(default)]
    pub switchover: Option<SwitchoverPlan>,
    /// Set with strategy `spare`.
    #[serde(default)]
    pub spare: Option<SpareStep>,
}

/// One committed failover, for `GET /v1/history/{name}` and `wardenctl history`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailoverRecord {
    /// Its epoch.
    pub epoch: u64,
    /// The master it replaced.
    pub from: Addr,
    /// The replica it promoted.
    pub to: Addr,
    /// Manual (`SENTINEL FAILOVER`) rather than objective down.
    pub forced: bool,
    /// `in-progress`, `promoted`, `ended` or `aborted-<reason>`.
    pub outcome: String,
    /// When it started, was promoted, ended or aborted (ms since the Unix epoch; 0 unknown).
    pub started_ms: u64,
    /// See `started_ms`.
    pub promoted_ms: u64,
    /// See `started_ms`.
    pub finished_ms: u64,
    /// The log index of its start.
    pub started_index: u64,
    /// The manual request's nonce (0: automatic).
    #[serde(default)]
    pub request: u64,
    /// A zero-loss switchover rather than a failover.
    #[serde(default)]
    pub switchover: bool,
    /// What else happened worth telling the operator (a spare used or skipped, and why).
    #[serde(default)]
    pub note: String,
}

impl FailoverRecord {
    /// Why it happened: `switchover`, `manual` (SENTINEL FAILOVER) or `odown`.
    pub fn reason(&self) -> &'static str {
        if self.switchover {
            "switchover"
        } else if self.forced {
            "manual"
        } else {
            "odown"
        }
    }
}

/// How many failovers the history keeps per master (the oldest are dropped).
pub const MAX_HISTORY: usize = 32;

/// One supervisor's opinion.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Opinion {
    /// The config epoch it was given for.
    pub epoch: u64,
    /// Down or not.
    pub down: bool,
}

/// A master as the group knows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MasterState {
    /// Settings and current address.
    pub spec: MasterSpec,
    /// Bumped to the failover's epoch when a promotion is committed.
    pub config_epoch: u64,
    /// Opinions by supervisor id.
    pub opinions: BTreeMap<u64, Opinion>,
    /// Objectively down.
    pub odown: bool,
    /// The failover in flight, if any.
    pub failover: Option<Failover>,
    /// Nodes the group has committed as replicas of this master (discovered replicas,
    /// re-pointed replicas and the demoted old master), so every supervisor watches them even
    /// when no INFO lists them, after a restart for instance.
    pub replicas: BTreeSet<Addr>,
    /// Replication ids the current master has been seen with (newest last, at most
    /// [`MAX_REPLIDS`]): committed evidence of lineage, so a supervisor that restarted after
    /// the master died can still tell its replicas' history.
    #[serde(default)]
    pub replids: Vec<String>,
}

/// How many of a master's replication ids the state keeps.
pub const MAX_REPLIDS: usize = 8;
/// How many replicas the state records per master (a bound against a hostile INFO).
pub const MAX_REPLICAS: usize = 256;

impl MasterState {
    /// Supervisors whose current opinion is "down".
    pub fn down_votes(&self) -> u32 {
        self.opinions.values().filter(|o| o.down && o.epoch == self.config_epoch).count() as u32
    }
}

/// The replicated state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Machine {
    /// The highest epoch used by any failover.
    pub current_epoch: u64,
    /// True once the config files' masters were committed.
    pub bootstrapped: bool,
    /// Masters by name.
    pub masters: BTreeMap<String, MasterState>,
    /// Supervisors' client addresses and run ids, by raft id.
    pub supervisors: BTreeMap<u64, (Addr, String)>,
    /// Index of the last applied entry.
    pub applied_index: u64,
    /// Committed failovers per master, oldest first (at most [`MAX_HISTORY`] each).
    #[serde(default)]
    pub history: BTreeMap<String, Vec<FailoverRecord>>,
    /// The group-wide `SENTINEL CONFIG` settings.
    #[serde(default)]
    pub settings: Settings,
    /// Outcomes of the latest configuration requests, by nonce, oldest first (at most
    /// [`runtime_config::MAX_REQUESTS`]).
    #[serde(default)]
    pub requests: VecDeque<(u64, ConfigOutcome)>,
    /// The supervisors' raft addresses and the ids removed from the group.
    #[serde(default)]
    pub members: Membership,
    /// Events produced by apply, drained by the owner.
    #[serde(skip)]
    pub events: Vec<(u64, Event)>,
}

impl Machine {
    /// Applies a decoded command; returns false (and changes nothing) if it does not fit.
    pub fn apply_command(&mut self, index: u64, cmd: Command) -> bool {
        self.applied_index = index;
        let mut events = Vec::new();
        let ok = self.transition(cmd, &mut events);
        self.events.extend(events.into_iter().map(|e| (index, e)));
        ok
    }

    fn transition(&mut self, cmd: Command, ev: &mut Vec<Event>) -> bool {
        match cmd {
            Command::Bootstrap { masters } => {
                if self.bootstrapped {
                    return false;
                }
                self.bootstrapped = true;
                for spec in masters {
                    ev.push(Event::master(
                        "+monitor",
                        &spec.name,
                        &spec.addr,
                        &format!(" quorum {}", spec.quorum),
                    ));
                    self.masters.insert(spec.name.clone(), runtime_config::new_master(spec));
                }
                true
            }
            Command::Opinion { supervisor, master, epoch, down } => {
                let Some(m) = self.masters.get_mut(&master) else { return false };
                if epoch > m.config_epoch {
                    return false;
                }
                m.opinions.insert(supervisor, Opinion { epoch, down });
                update_odown(m, ev);
                true
            }
            Command::ForgetOpinions { supervisor } => {
                for m in self.masters.values_mut() {
                    if m.opinions.remove(&supervisor).is_some() {
                        update_odown(m, ev);
                    }
                }
                true
            }
            Command::FailoverStarted {
                master,
                epoch,
                candidate,
                old_master,
                replicas,
                forced,
                request,
                at_ms,
            } => self.start(
                Start { master, epoch, candidate, old_master, replicas, forced, request, at_ms },
                None,
                ev,
            ),
            Command::SwitchoverStarted {
                master,
                epoch,
                target,
                old_master,
                replicas,
                timeout_ms,
                request,
                at_ms,
            } => {
                let start = Start {
                    master,
                    epoch,
                    candidate: target,
                    old_master,
                    replicas,
                    forced: true,
                    request,
                    at_ms,
                };
                self.start(start, Some(SwitchoverPlan { timeout_ms }), ev)
            }
            Command::SwitchoverInSync { master, epoch, offset } => {
                switchover::in_sync(self, &master, epoch, offset, ev)
            }
            Command::SpareAssigned { master, epoch, spare } => {
                spare::assigned(self, &master, epoch, spare, ev)
            }
            Command::SpareSeeded { master, epoch } => spare::seeded(self, &master, epoch, ev),
            Command::SpareSkipped { master, epoch, reason } => {
                spare::skipped(self, &master, epoch, &reason, ev)
            }
            Command::Promoted { master, epoch, at_ms } => {
                let Some(m) = self.masters.get_mut(&master) else { return false };
                let Some(f) =
                    m.failover.as_mut().filter(|f| f.epoch == epoch && f.ready_to_promote())
                else {
                    return false;
                };
                f.phase = Phase::Promoted;
                let (old, new) = (f.old_master.clone(), f.candidate.clone());
                let name = m.spec.name.clone();
                ev.push(Event::replica("+promoted-slave", &new, &name, &old));
                ev.push(Event::master("+failover-state-reconf-slaves", &name, &old, ""));
                ev.push(Event::plain(
                    "+switch-master",
                    &format!("{name} {} {} {} {}", old.host, old.port, new.host, new.port),
                ));
                m.spec.addr = new.clone();
                m.config_epoch = epoch;
                m.odown = false;
                m.opinions.clear();
                m.replicas = f.replicas.keys().cloned().collect();
                m.replicas.insert(old);
                m.replicas.remove(&new);
                // A new master, a new history to learn (its replicas' ids are reported anew).
                m.replids.clear();
                if let Some(r) = record_mut(&mut self.history, &master, epoch) {
                    r.outcome = "promoted".into();
                    r.promoted_ms = at_ms;
                }
                true
            }
            Command::ReplicaReconfSent { master, epoch, replica } => {
                let Some(m) = self.masters.get_mut(&master) else { return false };
                let parallel = m.spec.parallel_syncs as usize;
                let Some(f) =
                    m.failover.as_mut().filter(|f| f.epoch == epoch && f.phase == Phase::Promoted)
                else {
                    return false;
                };
                let in_flight = f.replicas.values().filter(|s| **s == ReplicaStep::Sent).count();
                if in_flight >= parallel || f.replicas.get(&replica) != Some(&ReplicaStep::Pending)
                {
                    return false;
                }
                f.replicas.insert(replica.clone(), ReplicaStep::Sent);
                ev.push(Event::replica("+slave-reconf-sent", &replica, &m.spec.name, &m.spec.addr));
                true
            }
            Command::ReplicaReconfDone { master, epoch, replica } => {
                let Some(m) = self.masters.get_mut(&master) else { return false };
                let Some(f) =
                    m.failover.as_mut().filter(|f| f.epoch == epoch && f.phase == Phase::Promoted)
                else {
                    return false;
                };
                match f.replicas.get(&replica) {
                    Some(ReplicaStep::Pending | ReplicaStep::Sent) => {
                        f.replicas.insert(replica.clone(), ReplicaStep::Done);
                        ev.push(Event::replica(
                            "+slave-reconf-done",
                            &replica,
                            &m.spec.name,
                            &m.spec.addr,
                        ));
                        true
                    }
                    _ => false,
                }
            }
            Command::FailoverEnded { master, epoch, at_ms } => {
                let Some(m) = self.masters.get_mut(&master) else { return false };
                if !m
                    .failover
                    .as_ref()
                    .is_some_and(|f| f.epoch == epoch && f.phase == Phase::Promoted)
                {
                    return false;
                }
                m.failover = None;
                ev.push(Event::master("+failover-end", &m.spec.name, &m.spec.addr, ""));
                if let Some(r) = record_mut(&mut self.history, &master, epoch) {
                    r.outcome = "ended".into();
                    r.finished_ms = at_ms;
                }
                true
            }
            Command::FailoverAborted { master, epoch, reason, at_ms } => {
                let Some(m) = self.masters.get_mut(&master) else { return false };
                // Before the promotion nothing has changed on the nodes that an abort would
                // leave inconsistent (a switchover's paused master is unpaused by the leader).
                if !m
                    .failover
                    .as_ref()
                    .is_some_and(|f| f.epoch == epoch && f.phase != Phase::Promoted)
                {
                    return false;
                }
                m.failover = None;
                let reason: String =
                    reason.chars().filter(|c| c.is_ascii_alphanumeric() || *c == '-').collect();
                ev.push(Event::master(
                    &format!("-failover-abort-{reason}"),
                    &m.spec.name,
                    &m.spec.addr,
                    "",
                ));
                if let Some(r) = record_mut(&mut self.history, &master, epoch) {
                    r.outcome = format!("aborted-{reason}");
                    r.finished_ms = at_ms;
                }
                true
            }
            Command::MasterReplids { master, epoch, replids } => {
                let Some(m) = self.masters.get_mut(&master) else { return false };
                if epoch != m.config_epoch {
                    return false;
                }
                let mut changed = false;
                for id in replids {
                    if !m.replids.contains(&id) {
                        m.replids.push(id);
                        changed = true;
                    }
                }
                if m.replids.len() > MAX_REPLIDS {
                    let excess = m.replids.len() - MAX_REPLIDS;
                    m.replids.drain(..excess);
                }
                changed
            }
            Command::ReplicasDiscovered { master, epoch, replicas } => {
                let Some(m) = self.masters.get_mut(&master) else { return false };
                if epoch != m.config_epoch {
                    return false;
                }
                let mut changed = false;
                for r in replicas {
                    if r != m.spec.addr && m.replicas.len() < MAX_REPLICAS {
                        changed |= m.replicas.insert(r);
                    }
                }
                changed
            }
            Command::SupervisorAnnounced { supervisor, addr, run_id } => {
                if self.supervisors.get(&supervisor) == Some(&(addr.clone(), run_id.clone())) {
                    return false;
                }
                self.supervisors.insert(supervisor, (addr, run_id));
                true
            }
            Command::Configure { request, change } => {
                self.configure(request, change, ev);
                true
            }
            Command::ConvertToReplica { master, epoch, node } => {
                let Some(m) = self.masters.get_mut(&master) else { return false };
                if epoch != m.config_epoch || node == m.spec.addr {
                    return false;
                }
                m.replicas.insert(node.clone());
                ev.push(Event::replica("+convert-to-slave", &node, &m.spec.name, &m.spec.addr));
                true
            }
        }
    }

    /// Takes the events produced since the last call, with the index that produced each.
    pub fn take_events(&mut self) -> Vec<(u64, Event)> {
        std::mem::take(&mut self.events)
    }
}

fn record_mut<'a>(
    history: &'a mut BTreeMap<String, Vec<FailoverRecord>>,
    master: &str,
    epoch: u64,
) -> Option<&'a mut FailoverRecord> {
    history.get_mut(master)?.iter_mut().rev().find(|r| r.epoch == epoch)
}

fn update_odown(m: &mut MasterState, ev: &mut Vec<Event>) {
    let votes = m.down_votes();
    let odown = votes >= m.spec.quorum;
    if odown != m.odown {
        m.odown = odown;
        if odown {
            ev.push(Event::master(
                "+odown",
                &m.spec.name,
                &m.spec.addr,
                &format!(" #quorum {votes}/{}", m.spec.quorum),
            ));
        } else {
            ev.push(Event::master("-odown", &m.spec.name, &m.spec.addr, ""));
        }
    }
}

/// JSON object keys must be strings; a map keyed by address is stored as a list of pairs.
mod addr_keys {
    use std::collections::BTreeMap;

    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    use super::{Addr, ReplicaStep};

    pub fn serialize<S: Serializer>(
        map: &BTreeMap<Addr, ReplicaStep>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        map.iter().collect::<Vec<_>>().serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<BTreeMap<Addr, ReplicaStep>, D::Error> {
        Ok(Vec::<(Addr, ReplicaStep)>::deserialize(d)?.into_iter().collect())
    }
}

impl crate::consensus::core::StateMachine for Machine {
    fn apply(&mut self, index: u64, data: &[u8]) {
        match Command::decode(data) {
            Ok(cmd) => {
                let summary = format!("{cmd:?}");
                if !self.apply_command(index, cmd) {
                    tracing::debug!(index, command = %summary, "committed command does not fit the state; ignored");
                }
            }
            Err(e) => {
                // Only authenticated supervisors write the log, so this is a version skew or a
                // bug; skipping keeps every replica identical because all skip it alike.
                self.applied_index = index;
                tracing::error!(index, error = %e, "undecodable command in the raft log; skipped");
            }
        }
    }

    fn snapshot(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("the state always serialises")
    }

    fn restore(&mut self, data: &[u8]) -> Result<(), String> {
        *self = serde_json::from_slice(data).map_err(|e| e.to_string())?;
        Ok(())
    }

    fn apply_member_change(
        &mut self,
        index: u64,
        change: &crate::consensus::membership::MemberChange,
    ) -> bool {
        self.record_member_change(index, change)
    }

    fn is_removed(&self, id: u64) -> bool {
        self.members.removed.contains(&id)
    }
}
