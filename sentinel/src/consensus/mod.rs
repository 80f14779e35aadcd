//! Consensus among supervisors: raft-rs driven by one owner, on a durable store, over an
//! authenticated transport.
//!
//! # Design
//!
//! The supervisors form one Raft group whose log holds *decisions* (opinions, failover steps;
//! see [`crate::machine`]). raft-rs 0.7 supplies only the protocol core, so this module supplies
//! the rest:
//!
//! - [`record`] and [`storage`]: a CRC-framed append-only log in which each Ready's entries and
//!   hard state form one record made durable by one fsync, plus an atomically replaced snapshot
//!   of the state machine. A torn last record (a crash mid-write, never acknowledged) is
//!   truncated; any other damage stops startup with the file and offset.
//! - [`core`]: the synchronous node. It handles each Ready in the order raft-rs requires —
//!   leader messages, snapshot, committed entries, one durable write, *then* the persisted
//!   messages (votes, append acknowledgements), `advance`, the light ready — and compacts the log
//!   behind a state-machine snapshot every `compact_every` entries.
//! - [`task`]: the only owner of the core, so no call can slip between `ready()` and
//!   `advance()`. Proposals, peer messages, ticks and ReadIndex requests arrive on channels.
//! - [`auth`] and [`transport`]: TCP links on which each side proves the shared
//!   `supervisor-auth` secret with an HMAC over the other's nonce before a single Raft byte is
//!   read; messages whose sender is not the authenticated peer are dropped.
//! - [`logger`]: raft-rs's slog records forwarded to tracing.
//!
//! Invariants: nothing is acknowledged (voted, appended) before it is on disk; a storage error
//! stops the process; `pre_vote` and `check_quorum` are on, so a partitioned supervisor neither
//! disrupts the group on return nor keeps believing it leads; the leader confirms its
//! leadership with a ReadIndex round before touching any data node.
//!
//! - [`membership`]: membership changes as single-change conf changes (learner first, then
//!   voter), applied when committed and persisted with the index they took effect at; the
//!   state machine may refuse one (a removed id), and a removed supervisor stops ticking.
pub mod auth;
pub mod core;
pub mod logger;
pub mod membership;
pub mod record;
pub mod storage;
pub mod task;
pub mod transport;

#[cfg(test)]
mod sim;
