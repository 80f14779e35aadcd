//! Consensus among supervisors: raft-rs driven by one owner, on a durable store, over an
//! authenticated transport.
//!
//! - [`record`] and [`storage`]: the CRC-framed log, hard state and snapshots on disk.
//! - [`core`]: the synchronous Raft node plus state machine, with the Ready handling.
//! - [`logger`]: raft-rs's slog output bridged into tracing.
pub mod core;
pub mod logger;
pub mod record;
pub mod storage;

#[cfg(test)]
mod sim;
