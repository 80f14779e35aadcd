//! warden-sentinel: failover supervisors that agree through Raft.
pub mod consensus;
