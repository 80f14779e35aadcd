//! The Raft core: one [`RawNode`] on a [`DiskStorage`], and the replicated state machine it
//! feeds. It is synchronous and owns no sockets or timers: the caller ticks it, steps peer
//! messages into it, and sends the messages [`RaftCore::handle_ready`] hands back. The async
//! consensus task and the deterministic test network both drive this same type, so the tests
//! exercise the production Ready handling and storage.
//!
//! Ready handling follows raft-rs 0.7's contract (see `reference/raft-and-ha.md` §1.5):
//! leader messages go out first; a received snapshot restores the machine; committed entries
//! (already durable) are applied; then the snapshot, new entries and hard state are written in
//! one fsynced batch, and only then are the persisted messages (votes, append acks) released;
//! then `advance`, the light ready's commit index is recorded, its messages released and its
//! entries applied. A storage error is returned before anything is acknowledged: the caller must
//! stop the process.

use protobuf::Message as PbMessage;
use raft::eraftpb::{ConfChange, ConfChangeV2, EntryType, Message, MessageType};
use raft::{Config, RawNode, SnapshotStatus, StateRole, Storage};

use super::membership::{learner_to_promote, legacy_to_v2, MemberChange};
use super::storage::{DiskStorage, StoreError};

/// What the consensus core replicates. Applying must be deterministic and must not touch the
/// outside world: replaying the log after a restart has to be harmless.
pub trait StateMachine {
    /// Applies the committed command at `index`.
    fn apply(&mut self, index: u64, data: &[u8]);
    /// Serialises the whole state (for snapshots).
    fn snapshot(&self) -> Vec<u8>;
    /// Replaces the state with a snapshot's.
    fn restore(&mut self, data: &[u8]) -> Result<(), String>;
    /// Records the committed membership change at `index` before raft applies it; false
    /// refuses it, and raft's configuration stays as it was. Deterministic, like `apply`.
    fn apply_member_change(&mut self, _index: u64, _change: &MemberChange) -> bool {
        true
    }
    /// True if the committed state says supervisor `id` was removed from the group.
    fn is_removed(&self, _id: u64) -> bool {
        false
    }
}

/// Timing and size knobs for the group.
#[derive(Debug, Clone, Copy)]
pub struct Tuning {
    /// Ticks without a leader before a follower campaigns.
    pub election_tick: usize,
    /// Ticks between leader heartbeats.
    pub heartbeat_tick: usize,
    /// Take a snapshot and compact the log after this many applied entries.
    pub compact_every: u64,
}

impl Default for Tuning {
    fn default() -> Self {
        Tuning { election_tick: 10, heartbeat_tick: 2, compact_every: 1000 }
    }
}

/// Why the core cannot go on.
#[derive(Debug, thiserror::Error)]
pub enum CoreError {
    /// The durable store failed; nothing more may be acknowledged.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// raft-rs refused the stored state.
    #[error("raft: {0}")]
    Raft(#[from] raft::Error),
    /// A snapshot's state-machine data could not be decoded.
    #[error("snapshot data: {0}")]
    Snapshot(String),
}

/// This node's view of the group, for the reconciler and the client API.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GroupStatus {
    /// This node's id.
    pub id: u64,
    /// Current term.
    pub term: u64,
    /// The leader this node knows of (0 = none).
    pub leader: u64,
    /// True if this node is the leader.
    pub is_leader: bool,
    /// Voters in the current configuration.
    pub voters: Vec<u64>,
    /// Learners in the current configuration (supervisors being added).
    pub learners: Vec<u64>,
    /// On the leader: each member's match index. Empty elsewhere.
    pub matched: Vec<(u64, u64)>,
    /// The commit index this node knows.
    pub commit: u64,
    /// A membership change is proposed and not yet applied here.
    pub pending_conf: bool,
    /// This supervisor has applied its own removal from the group.
    pub removed: bool,
    /// On the leader: the voters it heard from during the last election timeout (itself
    /// included). Empty elsewhere.
    pub active: Vec<u64>,
    /// Index of the last applied entry.
    pub applied: u64,
}

impl GroupStatus {
    /// Whether this supervisor is part of a working majority, and why (not). The leader must have
    /// heard from a majority of voters (itself included) within the last election timeout; a
    /// follower must know a leader in its current term and have its raft link to it up. A
    /// partitioned follower loses its leader at its next election timeout (pre-vote), so both
    /// checks turn false within about a second of a cut.
    pub fn working_majority(&self, connected: &std::collections::HashSet<u64>) -> (bool, String) {
        let status = self;
        let majority = status.voters.len() / 2 + 1;
        if status.removed {
            return (false, format!("raft id {} was removed from the group", status.id));
        }
        if !status.voters.contains(&status.id) {
            return (false, format!("raft id {} is not a voter of the group", status.id));
        }
        if status.is_leader {
            let active = status.active.iter().filter(|id| status.voters.contains(id)).count();
            return if active >= majority {
                (
                    true,
                    format!(
                        "leader in term {} with {active} of {} voters active",
                        status.term,
                        status.voters.len()
                    ),
                )
            } else {
                (
                    false,
                    format!(
                        "leader in term {} but only {active} of {} voters active",
                        status.term,
                        status.voters.len()
                    ),
                )
            };
        }
        if status.leader == 0 {
            return (false, format!("no known raft leader in term {}", status.term));
        }
        if !connected.contains(&status.leader) {
            return (false, format!("the link to leader {} is down", status.leader));
        }
        (true, format!("follower of leader {} in term {}", status.leader, status.term))
    }
}

/// The Raft node and its state machine.
pub struct RaftCore<M> {
    node: RawNode<DiskStorage>,
    machine: M,
    applied: u64,
    tuning: Tuning,
    /// The commit index found on disk at start: entries up to it are a replay.
    recovered_commit: u64,
    /// Confirmed ReadIndex requests not yet taken.
    read_states: Vec<(Vec<u8>, u64)>,
    /// A learner was added: take a snapshot at once, so that it (and any later joiner) starts
    /// from a snapshot that carries the whole configuration rather than replaying the log
    /// from index 1, whose bootstrap membership is not in any entry.
    snapshot_due: bool,
    /// This node applied its own removal: it neither ticks nor answers any more.
    removed: bool,
}

impl<M: StateMachine> RaftCore<M> {
    /// Opens the store in `dir` (creating it with `voters` if new) and rebuilds the machine
    /// from the latest snapshot; committed entries after it are replayed through Readies.
    pub fn open(
        id: u64,
        dir: &std::path::Path,
        voters: &[u64],
        mut machine: M,
        tuning: Tuning,
        logger: &slog::Logger,
    ) -> Result<RaftCore<M>, CoreError> {
        let store = DiskStorage::open(dir, voters)?;
        let snap = store.latest_snapshot().clone();
        let applied = snap.get_metadata().index;
        if applied > 0 {
            machine.restore(&snap.data).map_err(CoreError::Snapshot)?;
        }
        let recovered_commit = store.hard_state().commit;
        let config = Config {
            id,
            election_tick: tuning.election_tick,
            heartbeat_tick: tuning.heartbeat_tick,
            applied,
            pre_vote: true,
            check_quorum: true,
            max_size_per_msg: 1 << 20,
            max_inflight_msgs: 256,
            max_uncommitted_size: 16 << 20,
            ..Config::default()
        };
        config.validate()?;
        let node = RawNode::new(&config, store, logger)?;
        let removed = machine.is_removed(id);
        Ok(RaftCore {
            node,
            machine,
            applied,
            tuning,
            recovered_commit,
            read_states: Vec::new(),
            snapshot_due: false,
            removed,
        })
    }

    /// The replicated state.
    pub fn machine(&self) -> &M {
        &self.machine
    }

    /// The replicated state, for draining side outputs such as events.
    pub fn machine_mut(&mut self) -> &mut M {
        &mut self.machine
    }

    /// The commit index found on disk when the node started.
    pub fn recovered_commit(&self) -> u64 {
        self.recovered_commit
    }

    /// Advances the logical clock by one tick. A removed supervisor's clock stands still, so
    /// it never campaigns.
    pub fn tick(&mut self) {
        if !self.removed {
            self.node.tick();
        }
    }

    /// Feeds a message from a peer. Messages a peer may not send are logged and dropped, and a
    /// removed supervisor drops everything.
    pub fn step(&mut self, msg: Message) {
        if self.removed {
            return;
        }
        let (from, kind) = (msg.from, msg.get_msg_type());
        if let Err(e) = self.node.step(msg) {
            tracing::debug!(peer = from, ?kind, error = %e, "dropped a raft message");
        }
    }

    /// Proposes a command. On a follower it is forwarded to the leader and may still be lost;
    /// callers confirm by watching the applied state.
    pub fn propose(&mut self, data: Vec<u8>) -> Result<(), raft::Error> {
        self.node.propose(Vec::new(), data)
    }

    /// Proposes a membership change. Refused while another one is pending: raft-rs would
    /// silently turn a second one into an empty entry.
    pub fn propose_member_change(&mut self, change: &MemberChange) -> Result<(), String> {
        if self.removed {
            return Err("this supervisor was removed from the group".into());
        }
        if self.node.raft.has_pending_conf() {
            return Err(
                "a membership change is already in progress; retry once it is applied".into()
            );
        }
        self.node
            .propose_conf_change(Vec::new(), change.to_conf_change())
            .map_err(|e| e.to_string())
    }

    /// Asks the group to move leadership to `to` (forwarded to the leader by a follower).
    pub fn transfer_leader(&mut self, to: u64) {
        self.node.transfer_leader(to);
    }

    /// On the leader, with no membership change pending: proposes promoting a learner that
    /// has caught up, and returns its id.
    pub fn maybe_promote_learner(&mut self) -> Option<u64> {
        let raft = &self.node.raft;
        if raft.state != StateRole::Leader || raft.has_pending_conf() || self.removed {
            return None;
        }
        let learners: Vec<u64> = raft.prs().conf().to_conf_state().learners;
        let id = learner_to_promote(
            &learners,
            |id| raft.prs().get(id).map(|pr| pr.matched),
            raft.raft_log.committed,
        )?;
        match self.propose_member_change(&MemberChange::Promote { id }) {
            Ok(()) => Some(id),
            Err(e) => {
                tracing::debug!(peer = id, error = %e, "learner promotion not proposed");
                None
            }
        }
    }

    /// The index of the last entry in the log (a leader's proposal lands here).
    pub fn last_index(&self) -> u64 {
        self.node.raft.raft_log.last_index()
    }

    /// Asks the group to confirm this node's leadership (a ReadIndex round); the answer comes
    /// back from [`RaftCore::take_read_states`] with the same `ctx`. raft-rs drops the request
    /// silently when it cannot serve it, so callers need a timeout.
    pub fn read_index(&mut self, ctx: Vec<u8>) {
        self.node.read_index(ctx);
    }

    /// Confirmed read requests since the last call: `(ctx, index)`.
    pub fn take_read_states(&mut self) -> Vec<(Vec<u8>, u64)> {
        std::mem::take(&mut self.read_states)
    }

    /// Tells raft a peer could not be reached, so the leader stops pipelining to it.
    pub fn report_unreachable(&mut self, id: u64) {
        self.node.report_unreachable(id);
    }

    /// Starts an election now (used by tests to make a chosen node the leader).
    pub fn campaign(&mut self) -> Result<(), raft::Error> {
        self.node.campaign()
    }

    /// The node's view of the group.
    pub fn status(&self) -> GroupStatus {
        let raft = &self.node.raft;
        let voters: Vec<u64> = raft.prs().conf().voters().ids().iter().collect();
        let mut learners = raft.prs().conf().to_conf_state().learners;
        learners.sort_unstable();
        let is_leader = raft.state == StateRole::Leader;
        let mut matched: Vec<(u64, u64)> = if is_leader {
            raft.prs().iter().map(|(id, pr)| (*id, pr.matched)).collect()
        } else {
            Vec::new()
        };
        matched.sort_unstable();
        let active = if is_leader {
            let mut a: Vec<u64> = raft
                .prs()
                .iter()
                .filter(|(id, pr)| **id == raft.id || pr.recent_active)
                .map(|(id, _)| *id)
                .collect();
            a.sort_unstable();
            a
        } else {
            Vec::new()
        };
        let mut voters = voters;
        voters.sort_unstable();
        GroupStatus {
            id: raft.id,
            term: raft.term,
            leader: raft.leader_id,
            is_leader,
            voters,
            learners,
            matched,
            commit: raft.raft_log.committed,
            pending_conf: raft.has_pending_conf(),
            removed: self.removed,
            active,
            applied: self.applied,
        }
    }

    /// Handles one Ready, if there is one, and returns the messages to send.
    pub fn handle_ready(&mut self) -> Result<Vec<Message>, CoreError> {
        if !self.node.has_ready() {
            return Ok(Vec::new());
        }
        let mut rd = self.node.ready();
        let mut out = rd.take_messages();
        let snapshot = if rd.snapshot().is_empty() { None } else { Some(rd.snapshot().clone()) };
        if let Some(snap) = &snapshot {
            self.machine.restore(&snap.data).map_err(CoreError::Snapshot)?;
            self.applied = snap.get_metadata().index;
        }
        let committed = rd.take_committed_entries();
        self.apply(committed)?;
        let must_sync = rd.must_sync();
        self.node.mut_store().persist(snapshot.as_ref(), rd.entries(), rd.hs(), must_sync)?;
        self.read_states
            .extend(rd.take_read_states().into_iter().map(|r| (r.request_ctx, r.index)));
        out.extend(rd.take_persisted_messages());
        let mut light = self.node.advance(rd);
        if let Some(commit) = light.commit_index() {
            self.node.mut_store().set_commit(commit)?;
        }
        out.extend(light.take_messages());
        self.apply(light.take_committed_entries())?;
        self.node.advance_apply();
        for m in &out {
            if m.get_msg_type() == MessageType::MsgSnapshot {
                // The transport does not confirm delivery; reporting at once lets the leader
                // probe again, and a lost snapshot is simply sent again.
                self.node.report_snapshot(m.to, SnapshotStatus::Finish);
            }
        }
        self.maybe_compact()?;
        Ok(out)
    }

    fn apply(&mut self, entries: Vec<raft::eraftpb::Entry>) -> Result<(), CoreError> {
        for entry in entries {
            self.applied = entry.index;
            match entry.get_entry_type() {
                EntryType::EntryNormal => {
                    if !entry.data.is_empty() {
                        self.machine.apply(entry.index, &entry.data);
                    }
                }
                EntryType::EntryConfChange | EntryType::EntryConfChangeV2 => {
                    self.apply_conf_entry(&entry)?;
                }
            }
        }
        Ok(())
    }

    /// Applies a committed membership change: the state machine may refuse it (a removed id
    /// coming back); otherwise raft applies it and the resulting membership is persisted with
    /// the index it took effect at.
    fn apply_conf_entry(&mut self, entry: &raft::eraftpb::Entry) -> Result<(), CoreError> {
        let cc = if entry.get_entry_type() == EntryType::EntryConfChange {
            ConfChange::parse_from_bytes(&entry.data)
                .map(|v1| (MemberChange::from_legacy(&v1), legacy_to_v2(&v1)))
        } else {
            ConfChangeV2::parse_from_bytes(&entry.data)
                .map(|v2| (MemberChange::from_conf_change(&v2), v2))
        };
        let (change, cc) = match cc {
            Ok(decoded) => decoded,
            Err(e) => {
                tracing::error!(index = entry.index, error = %e, "undecodable conf change");
                return Ok(());
            }
        };
        if let Some(change) = &change {
            if !self.machine.apply_member_change(entry.index, change) {
                // A removed id is never re-admitted, whoever proposed it.
                tracing::warn!(
                    index = entry.index,
                    ?change,
                    "membership change refused by the committed state"
                );
                return Ok(());
            }
        }
        match self.node.apply_conf_change(&cc) {
            Ok(cs) => self.node.mut_store().set_conf_state(entry.index, cs)?,
            Err(e) => {
                tracing::warn!(index = entry.index, error = %e, "conf change refused");
                return Ok(());
            }
        }
        match change {
            Some(MemberChange::AddLearner { id, .. }) => {
                tracing::info!(index = entry.index, peer = id, "supervisor added as a learner");
                self.snapshot_due = true;
            }
            Some(MemberChange::Promote { id }) => {
                tracing::info!(index = entry.index, peer = id, "learner promoted to voter");
            }
            Some(MemberChange::Remove { id }) => {
                tracing::info!(index = entry.index, peer = id, "supervisor removed from the group");
                if id == self.node.raft.id {
                    tracing::warn!(
                        "this supervisor was removed from the group: it no longer campaigns, votes or answers; it may rejoin only under a new raft id with an empty store"
                    );
                    self.removed = true;
                }
            }
            None => {}
        }
        Ok(())
    }

    fn maybe_compact(&mut self) -> Result<(), CoreError> {
        let snap_index = self.node.store().latest_snapshot().get_metadata().index;
        let durable_commit = self.node.store().hard_state().commit;
        // The snapshot must describe exactly the applied state, and never run ahead of the
        // commit index the store knows.
        let upto = self.applied;
        let due = upto >= snap_index + self.tuning.compact_every
            || (self.snapshot_due && upto > snap_index);
        if upto <= durable_commit && due && self.node.store().term(upto).is_ok() {
            let data = self.machine.snapshot();
            self.node.mut_store().compact(upto, data)?;
            self.snapshot_due = false;
        }
        Ok(())
    }
}
