//! warden-sentinel: failover supervisors that agree through Raft that a master failed, and
//! carry out the failover (see `ARCHITECTURE.md` §2).
//!
//! - [`consensus`]: the Raft group (storage, core, transport, task).
//! - [`machine`]: the replicated state machine — what has been decided.
//! - [`config`]: the typed `sentinel.conf`.
#![warn(missing_docs)]

pub mod config;
pub mod consensus;
pub mod machine;
