//! Changing who the supervisors are (`SENTINEL MEMBERS`, `wardenctl members`,
//! `GET /v1/members`): listing the group, adding a supervisor, removing one.
//!
//! - **Add** `<id> <raft ip:port>`: proposed as a learner ([`MemberChange::AddLearner`]); the
//!   leader promotes it to voter by itself once its match index reaches the commit index
//!   ([`crate::consensus::membership`]). The new supervisor runs with `sentinel join yes`, so
//!   an empty store makes it wait to be added instead of electing itself.
//! - **Remove** `<id>`: if `id` leads, leadership is first transferred to the most caught-up
//!   other voter (a leader that applied its own removal would drop proposals until a new
//!   election); then the `RemoveNode` change. The id goes into the committed removed set and
//!   is refused forever after: rejoin only with a new id.
//!
//! One change at a time: a request is refused while raft has a conf change pending or a
//! learner is still catching up. Like every committed request, it can be made on any
//! supervisor (a follower's proposal is forwarded to the leader), answers `-NOLEADER` off a
//! working majority, and replies once this supervisor has applied the change.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::time::Duration;

use serde::Serialize;

use crate::consensus::core::GroupStatus;
use crate::consensus::membership::MemberChange;
use crate::consensus::task::Consensus;
use crate::machine::Machine;

/// One supervisor of the group as this supervisor sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Member {
    /// Its raft id.
    pub id: u64,
    /// Its raft address, if known.
    pub raft_addr: Option<String>,
    /// Its Sentinel-protocol address, once it announced itself.
    pub client_addr: Option<String>,
    /// `voter` or `learner`.
    pub role: &'static str,
    /// The current raft leader.
    pub leader: bool,
    /// Its match index, as the leader knows it (None on a follower).
    pub match_index: Option<u64>,
    /// Entries it lacks behind the commit index (leader only).
    pub lag: Option<u64>,
}

/// The members in raft's current configuration, voters then learners, by id.
pub fn list(
    status: &GroupStatus,
    state: &Machine,
    config_peers: &[(u64, SocketAddr)],
) -> Vec<Member> {
    let roles = status
        .voters
        .iter()
        .map(|id| (*id, "voter"))
        .chain(status.learners.iter().map(|id| (*id, "learner")));
    roles
        .map(|(id, role)| {
            let raft_addr = state.members.raft_addrs.get(&id).cloned().or_else(|| {
                config_peers.iter().find(|(p, _)| *p == id).map(|(_, a)| a.to_string())
            });
            let matched = status.matched.iter().find(|(p, _)| *p == id).map(|(_, m)| *m);
            Member {
                id,
                raft_addr,
                client_addr: state.supervisors.get(&id).map(|(a, _)| a.to_string()),
                role,
                leader: status.leader == id,
                match_index: matched,
                lag: matched.map(|m| status.commit.saturating_sub(m)),
            }
        })
        .collect()
}

/// Where this supervisor dials its peers: the bootstrap voters from its config file and every
/// supervisor added since (from the committed state), minus the removed ones.
pub fn peer_addresses(
    state: &Machine,
    config_peers: &[(u64, SocketAddr)],
) -> Vec<(u64, SocketAddr)> {
    let mut peers: Vec<(u64, SocketAddr)> = config_peers.to_vec();
    for (id, addr) in &state.members.raft_addrs {
        let Ok(addr) = addr.parse::<SocketAddr>() else { continue };
        match peers.iter_mut().find(|(p, _)| p == id) {
            Some(known) => known.1 = addr,
            None => peers.push((*id, addr)),
        }
    }
    peers.retain(|(id, _)| !state.members.removed.contains(id));
    peers
}

/// Keeps the raft links and the admitted peer ids equal to the committed membership: a
/// supervisor added at run time is dialled, a removed one dropped and refused.
pub async fn follow_membership(
    consensus: Consensus<Machine>,
    router: crate::consensus::transport::Router,
    members: crate::consensus::transport::Members,
    config_peers: Vec<(u64, SocketAddr)>,
    mut stop: common::shutdown::Shutdown,
) {
    let mut state = consensus.state.clone();
    let me = consensus.status.borrow().id;
    loop {
        let current = state.borrow_and_update().clone();
        // A removed supervisor has nobody left to talk to: it stops dialling the group.
        let peers = if current.members.removed.contains(&me) {
            Vec::new()
        } else {
            peer_addresses(&current, &config_peers)
        };
        router.set_peers(&peers);
        *members.lock() = peers.iter().map(|(id, _)| *id).collect();
        tokio::select! {
            changed = state.changed() => if changed.is_err() { return },
            _ = stop.wait() => return,
        }
    }
}

/// Why a membership request was refused. The `Display` text is the error reply.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MemberError {
    /// Not part of a working majority: nothing can be committed.
    #[error("NOLEADER {0}; nothing was changed")]
    NoLeader(String),
    /// The request does not fit the group (the text is the whole error line).
    #[error("{0}")]
    Refused(String),
    /// Proposed but not seen applied in time; it may still be.
    #[error("TRYAGAIN {0}; check SENTINEL MEMBERS before retrying")]
    NotCommitted(String),
}

impl MemberError {
    /// An HTTP status for the same refusal.
    pub fn http_status(&self) -> u16 {
        match self {
            MemberError::Refused(_) => 409,
            MemberError::NoLeader(_) | MemberError::NotCommitted(_) => 503,
        }
    }
}

fn refused(text: String) -> MemberError {
    MemberError::Refused(format!("ERR {text}"))
}

fn change_in_progress(status: &GroupStatus) -> Option<MemberError> {
    if let Some(l) = status.learners.first() {
        return Some(refused(format!(
            "a membership change is in progress (learner {l} is catching up); retry once it is a voter"
        )));
    }
    status
        .pending_conf
        .then(|| refused("a membership change is in progress; retry once it is applied".into()))
}

/// Checks an add request against the group; pure.
pub fn plan_add(
    status: &GroupStatus,
    state: &Machine,
    id: u64,
    raft_addr: &str,
) -> Result<MemberChange, MemberError> {
    if id == 0 {
        return Err(refused("raft ids start at 1".into()));
    }
    if state.members.removed.contains(&id) {
        return Err(refused(format!(
            "raft id {id} was removed from the group; a supervisor rejoins only under a new id"
        )));
    }
    if status.voters.contains(&id) || status.learners.contains(&id) {
        return Err(refused(format!("raft id {id} is already a member of the group")));
    }
    if raft_addr.parse::<SocketAddr>().is_err() {
        return Err(refused(format!("invalid raft address '{raft_addr}' (expected ip:port)")));
    }
    if let Some(e) = change_in_progress(status) {
        return Err(e);
    }
    Ok(MemberChange::AddLearner { id, raft_addr: raft_addr.to_string() })
}

/// Checks a remove request against the group; pure.
pub fn plan_remove(status: &GroupStatus, id: u64) -> Result<MemberChange, MemberError> {
    let voter = status.voters.contains(&id);
    if !voter && !status.learners.contains(&id) {
        return Err(refused(format!("raft id {id} is not a member of the group")));
    }
    if voter && status.voters.len() == 1 {
        return Err(refused("cannot remove the last voter of the group".into()));
    }
    // A learner that never catches up (its process is gone) may be removed while it blocks
    // other changes.
    if !status.learners.contains(&id) {
        if let Some(e) = change_in_progress(status) {
            return Err(e);
        }
    }
    Ok(MemberChange::Remove { id })
}

/// The voter to hand leadership to before removing the leader `leaving`: the most caught-up
/// one the leader knows of, else the lowest id whose link is up.
pub fn successor(status: &GroupStatus, leaving: u64, connected: &HashSet<u64>) -> Option<u64> {
    let matched = |id: u64| status.matched.iter().find(|(p, _)| *p == id).map(|(_, m)| *m);
    status
        .voters
        .iter()
        .copied()
        .filter(|id| *id != leaving && (*id == status.id || connected.contains(id)))
        .max_by_key(|id| (matched(*id).unwrap_or(0), std::cmp::Reverse(*id)))
}

/// Adds supervisor `id` at `raft_addr` as a learner; returns once this supervisor applied it.
pub async fn add(
    consensus: &Consensus<Machine>,
    connected: &HashSet<u64>,
    id: u64,
    raft_addr: &str,
    timeout: Duration,
) -> Result<(), MemberError> {
    let status = consensus.status.borrow().clone();
    let state = consensus.state.borrow().clone();
    working(&status, connected)?;
    let change = plan_add(&status, &state, id, raft_addr)?;
    tracing::info!(peer = id, raft_addr, "adding a supervisor as a learner");
    consensus.change_members(change).await.map_err(refused)?;
    wait_applied(consensus, timeout, |s| {
        if s.members.raft_addrs.contains_key(&id) {
            Some(Ok(()))
        } else if s.members.removed.contains(&id) {
            Some(Err(refused(format!("raft id {id} was removed from the group"))))
        } else {
            None
        }
    })
    .await
}

/// Removes supervisor `id`, moving leadership away from it first; returns once this
/// supervisor applied the removal.
pub async fn remove(
    consensus: &Consensus<Machine>,
    connected: &HashSet<u64>,
    id: u64,
    timeout: Duration,
) -> Result<(), MemberError> {
    let status = consensus.status.borrow().clone();
    working(&status, connected)?;
    let change = plan_remove(&status, id)?;
    if status.leader == id {
        // A leader change in the middle of a failover would be survived (the next leader
        // resumes from the committed steps), but it is a needless stall: refuse, as the raft
        // notes advise.
        let state = consensus.state.borrow().clone();
        if let Some(m) = state.masters.values().find(|m| m.failover.is_some()) {
            return Err(refused(format!(
                "raft id {id} leads a failover of {} in progress; retry once it has ended",
                m.spec.name
            )));
        }
        let to = successor(&status, id, connected).ok_or_else(|| {
            refused(format!("no other voter is reachable to take over from leader {id}"))
        })?;
        tracing::info!(from = id, to, "transferring raft leadership before removing the leader");
        consensus.transfer_leader(to).await;
        let mut watch = consensus.status.clone();
        let moved =
            tokio::time::timeout(timeout, watch.wait_for(|s| s.leader != id && s.leader != 0))
                .await;
        if !matches!(moved, Ok(Ok(_))) {
            return Err(MemberError::NotCommitted(format!(
                "leadership did not move away from {id} within {} ms",
                timeout.as_millis()
            )));
        }
    }
    tracing::info!(peer = id, "removing a supervisor from the group");
    consensus.change_members(change).await.map_err(refused)?;
    wait_applied(consensus, timeout, |s| s.members.removed.contains(&id).then_some(Ok(()))).await
}

fn working(status: &GroupStatus, connected: &HashSet<u64>) -> Result<(), MemberError> {
    let (ok, why) = status.working_majority(connected);
    if ok {
        Ok(())
    } else {
        Err(MemberError::NoLeader(why))
    }
}

async fn wait_applied(
    consensus: &Consensus<Machine>,
    timeout: Duration,
    outcome: impl Fn(&Machine) -> Option<Result<(), MemberError>>,
) -> Result<(), MemberError> {
    let mut watch = consensus.state.clone();
    let waited = tokio::time::timeout(timeout, async {
        loop {
            if let Some(result) = outcome(&watch.borrow_and_update()) {
                return result;
            }
            if watch.changed().await.is_err() {
                return Err(MemberError::NoLeader("the consensus task stopped".into()));
            }
        }
    })
    .await;
    waited.unwrap_or_else(|_| {
        Err(MemberError::NotCommitted(format!(
            "the change was proposed but not seen applied within {} ms",
            timeout.as_millis()
        )))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(voters: &[u64], learners: &[u64], leader: u64) -> GroupStatus {
        GroupStatus {
            id: 1,
            term: 2,
            leader,
            is_leader: leader == 1,
            voters: voters.to_vec(),
            learners: learners.to_vec(),
            matched: vec![(1, 9), (2, 7), (3, 9)],
            commit: 9,
            ..Default::default()
        }
    }

    #[test]
    fn adding_is_refused_for_members_removed_ids_bad_addresses_and_during_a_change() {
        let mut state = Machine::default();
        state.members.removed.insert(5);
        let s = status(&[1, 2, 3], &[], 1);
        assert_eq!(
            plan_add(&s, &state, 4, "10.0.0.4:26479"),
            Ok(MemberChange::AddLearner { id: 4, raft_addr: "10.0.0.4:26479".into() })
        );
        let e = |r: Result<MemberChange, MemberError>| r.unwrap_err().to_string();
        assert_eq!(
            e(plan_add(&s, &state, 5, "10.0.0.5:1")),
            "ERR raft id 5 was removed from the group; a supervisor rejoins only under a new id"
        );
        assert_eq!(
            e(plan_add(&s, &state, 2, "10.0.0.5:1")),
            "ERR raft id 2 is already a member of the group"
        );
        assert_eq!(
            e(plan_add(&s, &state, 4, "host:1")),
            "ERR invalid raft address 'host:1' (expected ip:port)"
        );
        let busy = status(&[1, 2, 3], &[4], 1);
        assert!(e(plan_add(&busy, &state, 6, "10.0.0.6:1")).contains("learner 4 is catching up"));
        let pending = GroupStatus { pending_conf: true, ..s.clone() };
        assert!(e(plan_add(&pending, &state, 6, "10.0.0.6:1")).contains("in progress"));
    }

    #[test]
    fn removing_checks_membership_and_the_leader_hands_over_to_the_most_caught_up() {
        let s = status(&[1, 2, 3], &[], 1);
        assert_eq!(plan_remove(&s, 2), Ok(MemberChange::Remove { id: 2 }));
        assert_eq!(
            plan_remove(&s, 7).unwrap_err().to_string(),
            "ERR raft id 7 is not a member of the group"
        );
        assert!(plan_remove(&status(&[1], &[], 1), 1).is_err(), "never the last voter");
        assert_eq!(
            plan_remove(&status(&[1, 2, 3], &[4], 1), 4),
            Ok(MemberChange::Remove { id: 4 })
        );
        let connected: HashSet<u64> = [2, 3].into();
        assert_eq!(successor(&s, 1, &connected), Some(3), "3 has matched 9, 2 only 7");
        assert_eq!(successor(&s, 1, &[2].into()), Some(2), "3 is unreachable");
        assert_eq!(successor(&s, 1, &HashSet::new()), None);
    }

    #[test]
    fn peers_come_from_the_config_and_the_committed_state_minus_the_removed() {
        let mut state = Machine::default();
        state.members.raft_addrs.insert(4, "10.0.0.4:4".into());
        state.members.removed.insert(2);
        let config: Vec<(u64, SocketAddr)> =
            vec![(1, "10.0.0.1:1".parse().unwrap()), (2, "10.0.0.2:2".parse().unwrap())];
        let peers = peer_addresses(&state, &config);
        assert_eq!(
            peers,
            vec![(1, "10.0.0.1:1".parse().unwrap()), (4, "10.0.0.4:4".parse().unwrap())]
        );
        let s = status(&[1, 4], &[], 4);
        let listed = list(&s, &state, &config);
        assert_eq!(listed[1].raft_addr.as_deref(), Some("10.0.0.4:4"));
        assert!(listed[1].leader);
        assert_eq!((listed[0].match_index, listed[0].lag), (Some(9), Some(0)));
    }
}
