//! The consensus task: the single owner of the [`RaftCore`]. It `select!`s over the tick timer,
//! peer messages, proposals, unreachable reports and shutdown, handles the Ready after each
//! input, and publishes the applied state and the group status through watch channels.
//!
//! A storage failure stops the process: a supervisor must not vote or acknowledge entries that
//! are not on disk.

use std::sync::Arc;
use std::time::Duration;

use raft::eraftpb::Message;
use tokio::sync::{mpsc, oneshot, watch};

use super::core::{GroupStatus, RaftCore, StateMachine};
use super::membership::MemberChange;
use super::transport::Router;

/// A request to the consensus task.
pub enum Request {
    /// Propose a command; the reply says whether raft accepted it for replication (not
    /// whether it committed: callers watch the applied state for that).
    Propose(Vec<u8>, oneshot::Sender<Result<Proposed, String>>),
    /// Confirm leadership with a heartbeat round to a quorum (ReadIndex); the reply is the
    /// read index. Never answered if raft drops the request, so callers use a timeout.
    ConfirmLeadership(oneshot::Sender<u64>),
    /// Propose a membership change (forwarded to the leader by a follower); refused while
    /// one is pending. Callers watch the applied state for the outcome.
    ChangeMembers(MemberChange, oneshot::Sender<Result<(), String>>),
    /// Move leadership to this voter.
    TransferLeader(u64),
}

/// Where a proposal went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proposed {
    /// Appended to this leader's log at `index` in `term`.
    AtIndex {
        /// The entry's index.
        index: u64,
        /// The leader's term.
        term: u64,
    },
    /// Forwarded to the leader; may be lost, so the caller must re-check.
    Forwarded,
}

/// A cheap handle to the consensus task.
#[derive(Clone)]
pub struct Consensus<M> {
    requests: mpsc::Sender<Request>,
    /// The group as this node sees it.
    pub status: watch::Receiver<GroupStatus>,
    /// The applied state machine.
    pub state: watch::Receiver<Arc<M>>,
}

impl<M> Consensus<M> {
    /// Proposes a command.
    pub async fn propose(&self, data: Vec<u8>) -> Result<Proposed, String> {
        let (tx, rx) = oneshot::channel();
        self.requests
            .send(Request::Propose(data, tx))
            .await
            .map_err(|_| "consensus task stopped".to_string())?;
        rx.await.map_err(|_| "consensus task stopped".to_string())?
    }
}

impl<M> Consensus<M> {
    /// Proposes a command on the leader and waits until it is applied here. Fails if this
    /// node is not the leader, if leadership changes meanwhile, or after `timeout`.
    pub async fn propose_and_wait(&self, data: Vec<u8>, timeout: Duration) -> Result<u64, String> {
        let (index, term) = match self.propose(data).await? {
            Proposed::AtIndex { index, term } => (index, term),
            Proposed::Forwarded => return Err("not the leader".into()),
        };
        let mut status = self.status.clone();
        let waited = tokio::time::timeout(
            timeout,
            status.wait_for(|s| s.applied >= index || s.term != term),
        )
        .await;
        match waited {
            Ok(Ok(s)) if s.term == term && s.applied >= index => Ok(index),
            Ok(Ok(_)) => Err("leadership changed before the entry was applied".into()),
            Ok(Err(_)) => Err("consensus task stopped".into()),
            Err(_) => Err("timed out waiting for the entry to commit".into()),
        }
    }
}

impl<M> Consensus<M> {
    /// Proposes a membership change.
    pub async fn change_members(&self, change: MemberChange) -> Result<(), String> {
        let (tx, rx) = oneshot::channel();
        self.requests
            .send(Request::ChangeMembers(change, tx))
            .await
            .map_err(|_| "consensus task stopped".to_string())?;
        rx.await.map_err(|_| "consensus task stopped".to_string())?
    }

    /// Asks the group to make `to` its leader.
    pub async fn transfer_leader(&self, to: u64) {
        let _ = self.requests.send(Request::TransferLeader(to)).await;
    }
}

impl<M> Consensus<M> {
    /// True if a quorum confirmed this node's leadership within `timeout`.
    pub async fn confirm_leadership(&self, timeout: Duration) -> bool {
        let (tx, rx) = oneshot::channel();
        if self.requests.send(Request::ConfirmLeadership(tx)).await.is_err() {
            return false;
        }
        matches!(tokio::time::timeout(timeout, rx).await, Ok(Ok(_)))
    }
}

/// Channels the task reads from.
pub struct Inputs {
    /// Authenticated messages from peers.
    pub inbound: mpsc::Receiver<Message>,
    /// Peers the transport could not reach.
    pub unreachable: mpsc::UnboundedReceiver<u64>,
}

/// Starts the task. `after_ready` runs after each Ready with the machine (to drain events).
pub fn spawn<M>(
    mut core: RaftCore<M>,
    router: Router,
    mut inputs: Inputs,
    tick: Duration,
    mut stop: common::shutdown::Shutdown,
    mut after_ready: impl FnMut(&mut M, u64) + Send + 'static,
) -> Consensus<M>
where
    M: StateMachine + Clone + Send + Sync + 'static,
{
    let (req_tx, mut requests) = mpsc::channel::<Request>(256);
    let (status_tx, status) = watch::channel(core.status());
    let (state_tx, state) = watch::channel(Arc::new(core.machine().clone()));
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(tick);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let recovered = core.recovered_commit();
        let mut next_read: u64 = 0;
        let mut reads: std::collections::HashMap<Vec<u8>, oneshot::Sender<u64>> =
            std::collections::HashMap::new();
        let mut applied = core.status().applied;
        loop {
            tokio::select! {
                _ = ticker.tick() => core.tick(),
                Some(msg) = inputs.inbound.recv() => {
                    core.step(msg);
                    while let Ok(more) = inputs.inbound.try_recv() {
                        core.step(more);
                    }
                }
                Some(req) = requests.recv() => match req {
                    Request::Propose(data, reply) => {
                        let result = core.propose(data).map_err(|e| e.to_string()).map(|()| {
                            let st = core.status();
                            if st.is_leader {
                                Proposed::AtIndex { index: core.last_index(), term: st.term }
                            } else {
                                Proposed::Forwarded
                            }
                        });
                        let _ = reply.send(result);
                    }
                    Request::ConfirmLeadership(reply) => {
                        next_read += 1;
                        let ctx = next_read.to_le_bytes().to_vec();
                        reads.retain(|_, r| !r.is_closed());
                        reads.insert(ctx.clone(), reply);
                        core.read_index(ctx);
                    }
                    Request::ChangeMembers(change, reply) => {
                        let _ = reply.send(core.propose_member_change(&change));
                    }
                    Request::TransferLeader(to) => core.transfer_leader(to),
                },
                Some(peer) = inputs.unreachable.recv() => core.report_unreachable(peer),
                _ = stop.wait() => break,
            }
            // A learner that has caught up becomes a voter (leader only, one change at a time).
            if let Some(id) = core.maybe_promote_learner() {
                tracing::info!(
                    peer = id,
                    "learner caught up with the commit index; proposing it as a voter"
                );
            }
            let msgs = match core.handle_ready() {
                Ok(m) => m,
                Err(e) => {
                    tracing::error!(error = %e, "raft storage failed; stopping so nothing unsaved is acknowledged");
                    std::process::exit(2);
                }
            };
            for m in msgs {
                router.send(m);
            }
            for (ctx, index) in core.take_read_states() {
                if let Some(reply) = reads.remove(&ctx) {
                    let _ = reply.send(index);
                }
            }
            let st = core.status();
            after_ready(core.machine_mut(), recovered);
            if st.applied != applied {
                applied = st.applied;
                state_tx.send_replace(Arc::new(core.machine().clone()));
            }
            status_tx.send_if_modified(|old| {
                if *old != st {
                    *old = st;
                    true
                } else {
                    false
                }
            });
        }
    });
    Consensus { requests: req_tx, status, state }
}
