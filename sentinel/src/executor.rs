//! Carries out the reconciler's [`Action`]s. Proposals go first and each must be applied
//! before anything else in the batch runs; if one fails (lost leadership, timeout) the node
//! commands planned with it are dropped, so no node is changed on the strength of a decision
//! that is not committed. Node commands then run concurrently across nodes, in order per node,
//! each on a fresh connection, and the node's INFO is read right after so the next plan sees
//! the effect without waiting for the monitor's next poll.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use common::resp::Frame;

use crate::consensus::task::Consensus;
use crate::info::NodeInfo;
use crate::machine::{Addr, Command, Machine};
use crate::monitor::{record, Views};
use crate::node_link::{text, Credentials, NodeLink};
use crate::reconciler::{Action, CatchUpReading};

/// `SENTINEL SIMULATE-FAILURE crash-after-election`.
pub const CRASH_AFTER_ELECTION: u8 = 1;
/// `SENTINEL SIMULATE-FAILURE crash-after-promotion`.
pub const CRASH_AFTER_PROMOTION: u8 = 2;

/// What the executor needs.
#[derive(Clone)]
pub struct Executor {
    /// The consensus handle.
    pub consensus: Consensus<Machine>,
    /// The monitor's views, refreshed after each node command.
    pub views: Views,
    /// Credentials for nodes (by node address; falls back to none).
    pub creds: Arc<dyn Fn(&Addr) -> Credentials + Send + Sync>,
    /// `CLIENT SETNAME` for command connections.
    pub client_name: String,
    /// Bound on each node call.
    pub timeout: Duration,
    /// Failure-injection flags (`SENTINEL SIMULATE-FAILURE`).
    pub simulate_failure: Arc<std::sync::atomic::AtomicU8>,
}

impl Executor {
    /// Runs one batch; returns the switchover measurements it took, for
    /// [`crate::reconciler::Reconciler::absorb`].
    pub async fn run(&self, actions: Vec<Action>) -> Vec<CatchUpReading> {
        let mut by_node: BTreeMap<Addr, Vec<Action>> = BTreeMap::new();
        let mut catch_ups = Vec::new();
        for action in actions {
            match action {
                Action::Propose(mut cmd) => {
                    cmd.stamp(crate::manual::unix_ms());
                    tracing::debug!(command = ?cmd, "proposing");
                    if let Err(e) =
                        self.consensus.propose_and_wait(cmd.encode(), Duration::from_secs(2)).await
                    {
                        tracing::info!(error = %e, command = ?cmd, "proposal not committed; not acting on it");
                        return Vec::new();
                    }
                    self.maybe_crash(&cmd);
                }
                Action::CatchUp { master, target, lease_ms } => {
                    catch_ups.push((master, target, lease_ms));
                }
                Action::Bgsave(ref node)
                | Action::Promote(ref node)
                | Action::Repoint { ref node, .. }
                | Action::PauseWrites { ref node, .. }
                | Action::UnpauseWrites(ref node) => {
                    by_node.entry(node.clone()).or_default().push(action.clone());
                }
            }
        }
        if by_node.is_empty() && catch_ups.is_empty() {
            return Vec::new();
        }
        // No node is reconfigured without a majority: a deposed leader that has not noticed
        // yet fails this heartbeat round and does nothing.
        if !self.consensus.confirm_leadership(Duration::from_millis(500)).await {
            tracing::info!("leadership not confirmed by a quorum; not touching any node");
            return Vec::new();
        }
        let mut tasks = Vec::new();
        for (node, actions) in by_node {
            let this = self.clone();
            tasks.push(tokio::spawn(async move { this.run_on(node, actions).await }));
        }
        let mut measuring = Vec::new();
        for (master, target, lease_ms) in catch_ups {
            let this = self.clone();
            measuring
                .push(tokio::spawn(async move { this.catch_up(master, target, lease_ms).await }));
        }
        for t in tasks {
            let _ = t.await;
        }
        let mut readings = Vec::new();
        for t in measuring {
            if let Ok(r) = t.await {
                readings.push(r);
            }
        }
        readings
    }

    /// Pauses the master's writes, then reads the master's offset, the target's, and the
    /// master's again (see [`crate::reconciler::switchover`]). Anything that fails leaves its
    /// part of the reading empty, which never counts as in sync.
    async fn catch_up(&self, master: Addr, target: Addr, lease_ms: u64) -> CatchUpReading {
        let mut reading = CatchUpReading {
            master: master.clone(),
            target: target.clone(),
            paused: false,
            master_before: None,
            target_info: None,
            master_after: None,
        };
        let Some(mut m) = self.link(&master).await else { return reading };
        let lease = lease_ms.to_string();
        match m.call(&[b"CLIENT", b"PAUSE", lease.as_bytes(), b"WRITE"]).await {
            Ok(Frame::Simple(ok)) if ok.eq_ignore_ascii_case(b"OK") => reading.paused = true,
            Ok(other) => {
                tracing::warn!(node = %master, reply = %reply_text(&other), "CLIENT PAUSE WRITE refused");
                return reading;
            }
            Err(e) => {
                tracing::info!(node = %master, error = %e, "CLIENT PAUSE failed");
                return reading;
            }
        }
        reading.master_before = self.read_info(&master, &mut m).await;
        if let Some(mut t) = self.link(&target).await {
            reading.target_info = self.read_info(&target, &mut t).await;
        }
        reading.master_after = self.read_info(&master, &mut m).await;
        tracing::debug!(master = %master, target = %target, lag = ?reading.lag(), "switchover catch-up measured");
        reading
    }

    async fn link(&self, node: &Addr) -> Option<NodeLink> {
        let creds = (self.creds)(node);
        match NodeLink::connect(node, &creds, &self.client_name, self.timeout).await {
            Ok(l) => Some(l),
            Err(e) => {
                tracing::info!(node = %node, error = %e, "can't reach node");
                None
            }
        }
    }

    /// `INFO replication`, also recorded in the views.
    async fn read_info(&self, node: &Addr, link: &mut NodeLink) -> Option<NodeInfo> {
        let reply = link.call(&[b"INFO", b"replication"]).await.ok()?;
        let body = text(&reply)?;
        record(&self.views, node, None, Some(body.clone()));
        Some(NodeInfo::parse(&body))
    }

    fn maybe_crash(&self, cmd: &Command) {
        let flags = self.simulate_failure.load(std::sync::atomic::Ordering::SeqCst);
        let point = match cmd {
            Command::FailoverStarted { .. } if flags & CRASH_AFTER_ELECTION != 0 => {
                "crash-after-election"
            }
            Command::Promoted { .. } if flags & CRASH_AFTER_PROMOTION != 0 => {
                "crash-after-promotion"
            }
            _ => return,
        };
        tracing::warn!("simulated failure {point}: exiting");
        std::process::exit(99);
    }

    async fn run_on(&self, node: Addr, actions: Vec<Action>) {
        let creds = (self.creds)(&node);
        let mut link = match NodeLink::connect(&node, &creds, &self.client_name, self.timeout).await
        {
            Ok(l) => l,
            Err(e) => {
                tracing::info!(node = %node, error = %e, "can't reach node to reconfigure it");
                return;
            }
        };
        for action in actions {
            let result = match &action {
                // SCHEDULE: a node busy with an AOF rewrite takes the snapshot right after
                // it, instead of refusing.
                Action::Bgsave(_) => link.call(&[b"BGSAVE", b"SCHEDULE"]).await.map(|reply| {
                    tracing::info!(node = %node, reply = ?reply_text(&reply), "snapshot of the candidate requested (BGSAVE)");
                }),
                Action::Promote(_) => link.reconfigure(None).await.map(|reply| {
                    tracing::info!(node = %node, reply = ?reply_text(&reply), "sent REPLICAOF NO ONE");
                }),
                Action::Repoint { to, .. } => link.reconfigure(Some(to)).await.map(|reply| {
                    tracing::info!(node = %node, master = %to, reply = ?reply_text(&reply), "sent REPLICAOF");
                }),
                Action::PauseWrites { lease_ms, .. } => {
                    let lease = lease_ms.to_string();
                    link.call(&[b"CLIENT", b"PAUSE", lease.as_bytes(), b"WRITE"]).await.map(|reply| {
                        tracing::debug!(node = %node, reply = ?reply_text(&reply), "renewed the write pause");
                    })
                }
                Action::UnpauseWrites(_) => link.call(&[b"CLIENT", b"UNPAUSE"]).await.map(|reply| {
                    tracing::info!(node = %node, reply = ?reply_text(&reply), "sent CLIENT UNPAUSE");
                }),
                Action::Propose(_) | Action::CatchUp { .. } => {
                    unreachable!("proposals and measurements are handled apart from node actions")
                }
            };
            if let Err(e) = result {
                tracing::info!(node = %node, error = %e, "reconfiguration failed");
                return;
            }
        }
        if let Ok(reply) = link.call(&[b"INFO", b"replication"]).await {
            record(&self.views, &node, None, text(&reply));
        }
    }
}

fn reply_text(f: &Frame) -> String {
    match f {
        Frame::Simple(b) | Frame::Error(b) | Frame::Bulk(b) => {
            String::from_utf8_lossy(b).into_owned()
        }
        other => format!("{other:?}"),
    }
}
