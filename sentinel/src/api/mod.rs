//! The Sentinel protocol on the supervisor's client port: what Sentinel-aware clients
//! (redis-py, Jedis, Lettuce, go-redis, redis-rs, ioredis) and `redis-cli` send. Every
//! supervisor answers from its own applied copy of the committed state, so any of them can be
//! asked; events reach subscribers of every supervisor.
//!
//! Replies follow `reference/clients.md` §0–1: numbers inside SENTINEL replies are bulk
//! strings, maps degrade to flat arrays under RESP2, an unknown master name gives a null array
//! for GET-MASTER-ADDR-BY-NAME and `-ERR No such master with that name` elsewhere.
//!
//! `SENTINEL FAILOVER`, the runtime configuration (`MONITOR`, `REMOVE`, `SET`, `RESET`,
//! `CONFIG SET`: [`runtime_config`]) and `MEMBERS ADD|REMOVE` ([`members`]) wait: each is
//! committed through Raft before the reply, from whichever supervisor received it. [`http`] and [`rest`] serve the same state over
//! HTTP/JSON on `http-port`.

mod connection;
pub mod http;
mod info;
pub mod members;
pub mod rest;
pub mod runtime_config;
mod sentinel;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Instant;

use tokio::net::TcpListener;
use tokio::sync::{broadcast, watch};

use crate::consensus::core::GroupStatus;
use crate::machine::{Event, Machine};
use crate::monitor::Views;

/// Local, per-supervisor observations the API reports besides the committed state.
#[derive(Debug, Default)]
pub struct Local {
    /// Since when this supervisor thinks each master (by name, at that address) is
    /// subjectively down.
    pub sdown_since: HashMap<String, (crate::machine::Addr, Instant)>,
    /// Since when this supervisor is in TILT (its own loop stalled), if it is.
    pub tilt_since: Option<Instant>,
}

/// Everything a client connection reads.
pub struct Context {
    /// This supervisor's raft id.
    pub me: u64,
    /// Its 40-hex run id.
    pub run_id: String,
    /// The client port.
    pub port: u16,
    /// The applied state.
    pub state: watch::Receiver<Arc<Machine>>,
    /// The consensus handle, for requests that must be committed (manual failover).
    pub consensus: crate::consensus::task::Consensus<Machine>,
    /// The group status.
    pub status: watch::Receiver<GroupStatus>,
    /// The monitor's node views.
    pub views: Views,
    /// Local subjective-down times. Short, synchronous locking only.
    pub local: Arc<parking_lot::Mutex<Local>>,
    /// Events for subscribers.
    pub hub: broadcast::Sender<Event>,
    /// Peers whose raft link is currently up.
    pub connected_peers: Arc<parking_lot::Mutex<HashSet<u64>>>,
    /// When the process started.
    pub started: Instant,
    /// Client ids.
    pub next_client_id: AtomicU64,
    /// `SENTINEL SIMULATE-FAILURE` flags, read by the executor.
    pub simulate_failure: Arc<std::sync::atomic::AtomicU8>,
    /// The bootstrap voters' raft addresses from the config file (`raft-peer` lines).
    pub config_peers: Vec<(u64, std::net::SocketAddr)>,
}

/// Accepts clients until shutdown.
pub async fn serve(listener: TcpListener, ctx: Arc<Context>, mut stop: common::shutdown::Shutdown) {
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    let ctx = ctx.clone();
                    let stop = stop.clone();
                    tokio::spawn(async move { connection::run(stream, ctx, stop).await });
                }
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                }
            },
            _ = stop.wait() => return,
        }
    }
}

/// How long an operator's failover or switchover request waits to see its decision committed.
const COMMIT_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

impl Context {
    /// `SENTINEL FAILOVER` / `POST …/failover`: proposes a forced failover of `name` from the
    /// supervisors connected now, and waits for it to be committed.
    pub async fn request_failover(
        &self,
        name: &str,
    ) -> Result<crate::manual::Started, crate::manual::ManualError> {
        let connected = self.connected_peers.lock().clone();
        crate::manual::request(&self.consensus, &self.views, &connected, name, COMMIT_WAIT).await
    }

    /// `SENTINEL SWITCHOVER` / `POST …/switchover`: the same for a zero-loss switchover.
    pub async fn request_switchover(
        &self,
        req: &crate::switchover::SwitchoverRequest,
    ) -> Result<crate::manual::Started, crate::manual::ManualError> {
        let connected = self.connected_peers.lock().clone();
        crate::switchover::request(&self.consensus, &self.views, &connected, req, COMMIT_WAIT).await
    }
}
