//! Consensus among supervisors: raft-rs driven by one owner, on a durable store, over an
//! authenticated transport.
//!
//! - [`record`] and [`storage`]: the CRC-framed log, hard state and snapshots on disk.
//! - [`core`]: the synchronous Raft node plus state machine, with the Ready handling.
//! - [`task`]: the async task that owns the core.
//! - [`auth`] and [`transport`]: authenticated TCP links between supervisors.
//! - [`logger`]: raft-rs's slog output bridged into tracing.
pub mod auth;
pub mod core;
pub mod logger;
pub mod record;
pub mod storage;
pub mod task;
pub mod transport;

#[cfg(test)]
mod sim;
