//! warden-sentinel: failover supervisors that agree through Raft that a master failed, and
//! carry out the failover (see `ARCHITECTURE.md` §2).
//!
//! - [`consensus`]: the Raft group (storage, core, transport, task).
//! - [`machine`]: the replicated state machine — what has been decided.
//! - [`monitor`], [`info`], [`health`]: watching nodes and judging them.
//! - [`reconciler`] and [`executor`]: the leader-only failover procedure.
//! - [`api`]: the Sentinel protocol for clients.
//! - [`config`] and [`supervisor`]: the process.
#![warn(missing_docs)]

pub mod api;
pub mod config;
pub mod consensus;
pub mod executor;
pub mod health;
pub mod info;
pub mod machine;
pub mod monitor;
pub mod node_link;
pub mod reconciler;
pub mod supervisor;
