//! The group's membership as the replicated state records it, beside raft's own configuration.
//!
//! raft-rs keeps who votes; the state machine keeps what raft does not: each supervisor's raft
//! *address* (carried in the conf change that added it, so every member can dial it, and a
//! joiner learns the others' from the snapshot it starts from), and the ids ever *removed*. A
//! removed id is refused for good: a supervisor that was removed, or whose disk was wiped,
//! rejoins only under a new id (`reference/raft-and-ha.md` §1.7: an old id's leftover progress
//! or log would corrupt the group's view of it). The refusal is decided at apply time from the
//! committed state, so every supervisor refuses the same entry.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::{Event, Machine};
use crate::consensus::membership::MemberChange;

/// Raft addresses and removed ids.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Membership {
    /// Raft addresses (`host:port`) of supervisors added at run time, by raft id. The bootstrap
    /// voters' addresses come from the config files.
    pub raft_addrs: BTreeMap<u64, String>,
    /// Ids removed from the group; never admitted again.
    pub removed: BTreeSet<u64>,
}

impl Machine {
    /// Records a committed membership change; false refuses it (raft then keeps its
    /// configuration as it was).
    pub fn record_member_change(&mut self, index: u64, change: &MemberChange) -> bool {
        self.applied_index = index;
        let mut events = Vec::new();
        let accepted = match change {
            MemberChange::AddLearner { id, raft_addr } => {
                if self.members.removed.contains(id) {
                    false
                } else {
                    self.members.raft_addrs.insert(*id, raft_addr.clone());
                    events.push(Event::plain("+member-learner", &format!("{id} {raft_addr}")));
                    true
                }
            }
            MemberChange::Promote { id } => {
                if self.members.removed.contains(id) {
                    false
                } else {
                    events.push(Event::plain("+member-voter", &id.to_string()));
                    true
                }
            }
            MemberChange::Remove { id } => {
                self.members.removed.insert(*id);
                self.members.raft_addrs.remove(id);
                self.supervisors.remove(id);
                // Its opinions no longer count towards any quorum.
                for m in self.masters.values_mut() {
                    if m.opinions.remove(id).is_some() {
                        super::update_odown(m, &mut events);
                    }
                }
                events.push(Event::plain("-member", &id.to_string()));
                true
            }
        };
        self.events.extend(events.into_iter().map(|e| (index, e)));
        accepted
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_removed_id_is_never_admitted_again() {
        let mut m = Machine::default();
        let add = MemberChange::AddLearner { id: 4, raft_addr: "10.0.0.4:26479".into() };
        assert!(m.record_member_change(1, &add));
        assert_eq!(m.members.raft_addrs[&4], "10.0.0.4:26479");
        assert!(m.record_member_change(2, &MemberChange::Promote { id: 4 }));
        assert!(m.record_member_change(3, &MemberChange::Remove { id: 4 }));
        assert!(m.members.raft_addrs.is_empty());
        assert!(!m.record_member_change(4, &add), "rejoin only with a new id");
        assert!(!m.record_member_change(5, &MemberChange::Promote { id: 4 }));
        assert!(m.members.removed.contains(&4));
        let events: Vec<String> = m.take_events().iter().map(|(_, e)| e.to_string()).collect();
        assert_eq!(events, ["+member-learner 4 10.0.0.4:26479", "+member-voter 4", "-member 4"]);
    }
}
