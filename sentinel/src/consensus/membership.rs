//! Membership changes as raft conf changes, and the rule for promoting a learner.
//!
//! A supervisor joins in two committed steps (`reference/raft-and-ha.md` §1.7): first as a
//! *learner*, which receives the log but does not vote, so a slow or empty newcomer cannot
//! stall commits; then, once the leader sees its match index at the commit index, as a
//! *voter*. Each step is one single-change `ConfChangeV2` (the simple protocol, no joint
//! state), and raft-rs allows one pending change at a time. Removing a supervisor is one
//! `RemoveNode`; removing the leader is preceded by a leadership transfer (see
//! [`crate::membership`]).
//!
//! The raft address of a new member travels in the conf change's context, so every member —
//! and, through the state machine's snapshot, every later joiner — learns where to dial it.

use raft::eraftpb::{ConfChange, ConfChangeSingle, ConfChangeType, ConfChangeV2};

/// One membership change, as the application sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MemberChange {
    /// Add `id`, reachable at `raft_addr`, as a learner.
    AddLearner {
        /// The new supervisor's raft id.
        id: u64,
        /// Its raft address, `host:port`.
        raft_addr: String,
    },
    /// Make learner `id` a voter.
    Promote {
        /// The learner's raft id.
        id: u64,
    },
    /// Remove `id` from the group for good.
    Remove {
        /// The raft id.
        id: u64,
    },
}

impl MemberChange {
    /// The supervisor the change is about.
    pub fn id(&self) -> u64 {
        match self {
            MemberChange::AddLearner { id, .. }
            | MemberChange::Promote { id }
            | MemberChange::Remove { id } => *id,
        }
    }

    /// The conf change to propose.
    pub fn to_conf_change(&self) -> ConfChangeV2 {
        let (kind, context) = match self {
            MemberChange::AddLearner { raft_addr, .. } => {
                (ConfChangeType::AddLearnerNode, raft_addr.as_bytes().to_vec())
            }
            MemberChange::Promote { .. } => (ConfChangeType::AddNode, Vec::new()),
            MemberChange::Remove { .. } => (ConfChangeType::RemoveNode, Vec::new()),
        };
        let mut single = ConfChangeSingle { node_id: self.id(), ..Default::default() };
        single.set_change_type(kind);
        let mut cc = ConfChangeV2::default();
        cc.mut_changes().push(single);
        cc.context = context.into();
        cc
    }

    /// Reads a committed single-change conf change; `None` for anything else (a joint change
    /// or an empty "leave joint" entry, which we never propose).
    pub fn from_conf_change(cc: &ConfChangeV2) -> Option<MemberChange> {
        let [single] = cc.get_changes() else { return None };
        let id = single.node_id;
        Some(match single.get_change_type() {
            ConfChangeType::AddLearnerNode => MemberChange::AddLearner {
                id,
                raft_addr: String::from_utf8_lossy(&cc.context).into_owned(),
            },
            ConfChangeType::AddNode => MemberChange::Promote { id },
            ConfChangeType::RemoveNode => MemberChange::Remove { id },
        })
    }

    /// The same for a legacy (v1) conf change.
    pub fn from_legacy(cc: &ConfChange) -> Option<MemberChange> {
        MemberChange::from_conf_change(&legacy_to_v2(cc))
    }
}

/// A legacy (v1) conf change in the v2 form raft-rs applies.
pub fn legacy_to_v2(cc: &ConfChange) -> ConfChangeV2 {
    let mut single = ConfChangeSingle { node_id: cc.node_id, ..Default::default() };
    single.set_change_type(cc.get_change_type());
    let mut v2 = ConfChangeV2::default();
    v2.mut_changes().push(single);
    v2.context = cc.context.clone();
    v2
}

/// The learner the leader should promote now, if any: the lowest id among `learners` whose
/// match index has reached the leader's `commit` index (it holds every committed entry, so it
/// can vote without making the group wait for it to catch up).
pub fn learner_to_promote(
    learners: &[u64],
    matched: impl Fn(u64) -> Option<u64>,
    commit: u64,
) -> Option<u64> {
    let mut ready: Vec<u64> =
        learners.iter().copied().filter(|id| matched(*id).is_some_and(|m| m >= commit)).collect();
    ready.sort_unstable();
    ready.first().copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_round_trip_through_conf_changes() {
        for change in [
            MemberChange::AddLearner { id: 4, raft_addr: "10.0.0.4:26479".into() },
            MemberChange::Promote { id: 4 },
            MemberChange::Remove { id: 2 },
        ] {
            assert_eq!(MemberChange::from_conf_change(&change.to_conf_change()), Some(change));
        }
        let mut legacy = ConfChange { node_id: 3, ..Default::default() };
        legacy.set_change_type(ConfChangeType::RemoveNode);
        assert_eq!(MemberChange::from_legacy(&legacy), Some(MemberChange::Remove { id: 3 }));
        assert_eq!(MemberChange::from_conf_change(&ConfChangeV2::default()), None);
    }

    #[test]
    fn a_learner_is_promoted_only_once_it_holds_every_committed_entry() {
        let matched = |id: u64| match id {
            4 => Some(10),
            5 => Some(12),
            _ => None,
        };
        assert_eq!(learner_to_promote(&[4, 5], matched, 12), Some(5));
        assert_eq!(learner_to_promote(&[5, 4], matched, 10), Some(4));
        assert_eq!(learner_to_promote(&[4, 5], matched, 13), None);
        assert_eq!(learner_to_promote(&[6], matched, 0), None, "unknown progress: wait");
    }
}
