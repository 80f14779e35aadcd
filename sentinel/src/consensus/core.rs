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
        Ok(RaftCore { node, machine, applied, tuning, recovered_commit, read_states: Vec::new() })
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

    /// Advances the logical clock by one tick.
    pub fn tick(&mut self) {
        self.node.tick();
    }

    /// Feeds a message from a peer. Messages a peer may not send are logged and dropped.
    pub fn step(&mut self, msg: Message) {
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
        let is_leader = raft.state == StateRole::Leader;
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
                    // Membership changes (issue 6) arrive here; apply them to raft and persist
                    // the resulting membership with the index it took effect at.
                    let cs = if entry.get_entry_type() == EntryType::EntryConfChange {
                        match ConfChange::parse_from_bytes(&entry.data) {
                            Ok(cc) => self.node.apply_conf_change(&cc),
                            Err(e) => {
                                tracing::error!(index = entry.index, error = %e, "undecodable conf change");
                                continue;
                            }
                        }
                    } else {
                        match ConfChangeV2::parse_from_bytes(&entry.data) {
                            Ok(cc) => self.node.apply_conf_change(&cc),
                            Err(e) => {
                                tracing::error!(index = entry.index, error = %e, "undecodable conf change");
                                continue;
                            }
                        }
                    };
                    match cs {
                        Ok(cs) => self.node.mut_store().set_conf_state(entry.index, cs)?,
                        Err(e) => {
                            tracing::warn!(index = entry.index, error = %e, "conf change refused")
                        }
                    }
                }
            }
        }
        Ok(())
    }

    fn maybe_compact(&mut self) -> Result<(), CoreError> {
        let snap_index = self.node.store().latest_snapshot().get_metadata().index;
        let durable_commit = self.node.store().hard_state().commit;
        // The snapshot must describe exactly the applied state, and never run ahead of the
        // commit index the store knows.
        let upto = self.applied;
        if upto <= durable_commit
            && upto >= snap_index + self.tuning.compact_every
            && self.node.store().term(upto).is_ok()
        {
            let data = self.machine.snapshot();
            self.node.mut_store().compact(upto, data)?;
        }
        Ok(())
    }
}
