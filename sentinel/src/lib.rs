//! warden-sentinel: failover supervisors that agree through Raft that a master failed, and
//! carry out the failover (see `ARCHITECTURE.md` §2).
//!
//! Three or five supervisors run beside the data nodes (warden-node or redis-server). Each one
//! watches every node ([`monitor`]), judges silence ([`health`]) and commits its *opinion* of
//! each master to the Raft log ([`consensus`]). The replicated state ([`machine`]) declares a
//! master objectively down when `quorum` current opinions agree; the Raft leader then carries
//! out Sentinel's failover — snapshot, promote, re-point, demote the returning master — one
//! committed step at a time ([`reconciler`], [`executor`]). Every supervisor answers Sentinel
//! clients from the committed state ([`api`]), so `redis-py`, the `redis` crate, Jedis and
//! friends find the master through any of them.
//!
//! Running a group (see `deploy/configs/sentinel.conf`):
//!
//! ```text
//! warden-sentinel sentinel.conf --raft-id 1 --port 26379 --dir /var/lib/warden-sentinel-1
//! warden-sentinel sentinel.conf --raft-id 2 --port 26380 --dir /var/lib/warden-sentinel-2
//! warden-sentinel sentinel.conf --raft-id 3 --port 26381 --dir /var/lib/warden-sentinel-3
//! redis-cli -p 26379 sentinel get-master-addr-by-name mymaster
//! wardenctl -p 26379 status
//! redis-cli -p 26380 sentinel failover mymaster     # manual failover, from any supervisor
//! wardenctl -p 26379 failover mymaster              # the same, followed to its end
//! wardenctl -p 26379 switchover mymaster            # zero-loss move, followed to its end
//! redis-cli -p 26381 sentinel set mymaster quorum 3 # committed through Raft, seen by all
//! wardenctl -p 26379 members add 4 127.0.0.1:26482  # a 4th supervisor ('sentinel join yes')
//! ```
//!
//! With `http-port` set, each supervisor also serves a small HTTP/JSON API (`/v1/masters`,
//! `/v1/masters/{name}/failover`, `/v1/history/{name}`, `/v1/members`, `/v1/health`, `/metrics`; see
//! [`api::http`] and [`api::rest`]).
//!
//! Modules:
//! - [`consensus`]: the Raft group (storage, core, transport, task).
//! - [`machine`]: the replicated state machine — what has been decided.
//! - [`monitor`], [`info`], [`health`], [`node_link`]: watching nodes and judging them;
//!   [`notice`]: the events a supervisor publishes from its own observations.
//! - [`reconciler`] and [`executor`]: the leader-only failover procedure; [`manual`]: the
//!   operator's forced failover, committed through the same log; [`switchover`]: the
//!   operator's zero-loss move of a healthy master (writes paused until the target caught up).
//! - [`membership`]: adding and removing supervisors through raft conf changes;
//!   [`machine::runtime_config`]: `SENTINEL MONITOR/REMOVE/SET/RESET/CONFIG` through the log.
//! - [`api`]: the Sentinel protocol for clients, and the HTTP/JSON API.
//! - [`config`] and [`supervisor`]: the process.
#![warn(missing_docs)]

pub mod api;
pub mod config;
pub mod consensus;
pub mod executor;
pub mod health;
pub mod info;
pub mod machine;
pub mod manual;
pub mod membership;
pub mod monitor;
pub mod node_link;
pub mod notice;
pub mod reconciler;
#[cfg(test)]
mod reconciler_golden;
pub mod supervisor;
pub mod switchover;
#[cfg(test)]
mod testkit;
