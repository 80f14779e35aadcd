//! Consensus among supervisors: raft-rs driven by one owner, on a durable store, over an
//! authenticated transport.
pub mod record;
pub mod storage;
