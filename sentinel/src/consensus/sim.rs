//! A deterministic in-process network for the Raft layer: every node is a real [`RaftCore`] on
//! a real [`DiskStorage`] in a temp dir; messages sit in one queue that the test drains by
//! hand, through filters that isolate nodes or cut links. Crashing a node drops its core
//! (and any undelivered messages to it); restarting reopens the same directory.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use raft::eraftpb::Message;

use super::core::{RaftCore, StateMachine, Tuning};
use super::membership::MemberChange;

/// A state machine that records what it applied: enough to check agreement and replay.
#[derive(Default, Debug, Clone, PartialEq, Eq)]
pub struct Journal {
    pub applied: Vec<String>,
    /// Membership changes it was shown (not part of its snapshot).
    pub member_changes: Vec<MemberChange>,
}

impl StateMachine for Journal {
    fn apply(&mut self, _index: u64, data: &[u8]) {
        self.applied.push(String::from_utf8_lossy(data).into_owned());
    }
    /// Like the supervisors' state machine: a removed id is refused for good.
    fn apply_member_change(&mut self, _index: u64, change: &MemberChange) -> bool {
        let removed = |id: u64| self.member_changes.contains(&MemberChange::Remove { id });
        if !matches!(change, MemberChange::Remove { .. }) && removed(change.id()) {
            return false;
        }
        self.member_changes.push(change.clone());
        true
    }
    fn snapshot(&self) -> Vec<u8> {
        self.applied.join("\n").into_bytes()
    }
    fn restore(&mut self, data: &[u8]) -> Result<(), String> {
        let text = std::str::from_utf8(data).map_err(|e| e.to_string())?;
        self.applied =
            if text.is_empty() { Vec::new() } else { text.split('\n').map(String::from).collect() };
        Ok(())
    }
}

pub struct Net {
    ids: Vec<u64>,
    dirs: BTreeMap<u64, tempfile::TempDir>,
    nodes: BTreeMap<u64, Option<RaftCore<Journal>>>,
    queue: VecDeque<Message>,
    isolated: BTreeSet<u64>,
    tuning: Tuning,
}

impl Net {
    pub fn new(n: u64, tuning: Tuning) -> Net {
        let ids: Vec<u64> = (1..=n).collect();
        let mut net = Net {
            ids: ids.clone(),
            dirs: BTreeMap::new(),
            nodes: BTreeMap::new(),
            queue: VecDeque::new(),
            isolated: BTreeSet::new(),
            tuning,
        };
        for id in ids {
            net.dirs.insert(id, tempfile::tempdir().unwrap());
            net.start(id);
        }
        net
    }

    fn start(&mut self, id: u64) {
        let voters = self.ids.clone();
        self.start_with(id, &voters);
    }

    fn start_with(&mut self, id: u64, voters: &[u64]) {
        let logger = slog::Logger::root(slog::Discard, slog::o!());
        let core = RaftCore::open(
            id,
            self.dirs[&id].path(),
            voters,
            Journal::default(),
            self.tuning,
            &logger,
        )
        .expect("reopening from our own storage");
        self.nodes.insert(id, Some(core));
    }

    /// Starts node `id` with an empty store and no membership, as `sentinel join yes` does.
    pub fn join(&mut self, id: u64) {
        self.dirs.insert(id, tempfile::tempdir().unwrap());
        self.start_with(id, &[]);
    }

    /// Proposes a membership change on `id` and delivers what follows.
    pub fn change(&mut self, id: u64, change: MemberChange) -> Result<(), String> {
        let result = self.node_mut(id).propose_member_change(&change);
        self.settle();
        result
    }

    pub fn node(&self, id: u64) -> &RaftCore<Journal> {
        self.nodes[&id].as_ref().expect("node is running")
    }

    pub fn node_mut(&mut self, id: u64) -> &mut RaftCore<Journal> {
        self.nodes.get_mut(&id).unwrap().as_mut().expect("node is running")
    }

    pub fn crash(&mut self, id: u64) {
        self.nodes.insert(id, None);
        self.queue.retain(|m| m.to != id);
    }

    pub fn restart(&mut self, id: u64) {
        self.start(id);
    }

    pub fn isolate(&mut self, id: u64) {
        self.isolated.insert(id);
    }

    pub fn heal(&mut self) {
        self.isolated.clear();
    }

    fn ready_all(&mut self) {
        for (_, node) in self.nodes.iter_mut() {
            if let Some(core) = node {
                let msgs = core.handle_ready().expect("storage works in tests");
                self.queue.extend(msgs);
            }
        }
    }

    /// Delivers messages until the network is quiet.
    pub fn settle(&mut self) {
        self.ready_all();
        let mut budget = 100_000;
        while let Some(m) = self.queue.pop_front() {
            budget -= 1;
            assert!(budget > 0, "the network never went quiet");
            if self.isolated.contains(&m.from) || self.isolated.contains(&m.to) {
                continue;
            }
            if let Some(Some(core)) = self.nodes.get_mut(&m.to) {
                core.step(m);
            }
            self.ready_all();
        }
    }

    /// Ticks every running node `n` times, settling after each tick; a leader promotes a
    /// caught-up learner, as the consensus task does after each input.
    pub fn tick(&mut self, n: usize) {
        for _ in 0..n {
            for (_, node) in self.nodes.iter_mut() {
                if let Some(core) = node {
                    core.tick();
                    core.maybe_promote_learner();
                }
            }
            self.settle();
        }
    }

    pub fn leaders(&self) -> Vec<u64> {
        self.nodes
            .iter()
            .filter_map(|(id, n)| n.as_ref().filter(|c| c.status().is_leader).map(|_| *id))
            .collect()
    }

    /// Ticks until exactly one leader among `among` exists.
    pub fn elect(&mut self, among: &[u64]) -> u64 {
        for _ in 0..200 {
            self.tick(1);
            let leaders: Vec<u64> =
                self.leaders().into_iter().filter(|l| among.contains(l)).collect();
            if leaders.len() == 1 {
                return leaders[0];
            }
        }
        panic!("no single leader among {among:?}; leaders: {:?}", self.leaders());
    }

    pub fn propose(&mut self, id: u64, data: &str) {
        let _ = self.node_mut(id).propose(data.as_bytes().to_vec());
        self.settle();
    }

    pub fn applied(&self, id: u64) -> Vec<String> {
        self.node(id).machine().applied.clone()
    }
}

fn tuning() -> Tuning {
    Tuning { election_tick: 10, heartbeat_tick: 2, compact_every: 1000 }
}

#[test]
fn one_leader_and_every_node_applies_the_same_commands() {
    let mut net = Net::new(3, tuning());
    let leader = net.elect(&[1, 2, 3]);
    net.propose(leader, "a");
    let follower = if leader == 1 { 2 } else { 1 };
    net.propose(follower, "b"); // forwarded to the leader
    net.tick(3);
    for id in 1..=3 {
        assert_eq!(net.applied(id), ["a", "b"], "node {id}");
    }
}

#[test]
fn a_leader_cut_off_in_a_minority_steps_down_and_its_writes_never_commit() {
    let mut net = Net::new(3, tuning());
    let old = net.elect(&[1, 2, 3]);
    net.propose(old, "before");
    net.isolate(old);
    net.propose(old, "lost");
    let rest: Vec<u64> = (1..=3).filter(|i| *i != old).collect();
    let new = net.elect(&rest);
    assert_ne!(new, old);
    // check_quorum: the isolated leader gives up within an election timeout.
    net.tick(25);
    assert!(!net.node(old).status().is_leader, "a minority leader must step down");
    net.propose(new, "after");
    net.heal();
    net.tick(30);
    for id in 1..=3 {
        assert_eq!(net.applied(id), ["before", "after"], "node {id}");
    }
    assert_eq!(net.leaders(), [new], "pre_vote: the returning node did not disrupt the leader");
}

#[test]
fn a_minority_alone_commits_nothing() {
    let mut net = Net::new(3, tuning());
    let leader = net.elect(&[1, 2, 3]);
    for id in 1..=3 {
        if id != leader {
            net.crash(id);
        }
    }
    net.propose(leader, "x");
    net.tick(40);
    assert!(net.applied(leader).is_empty());
    assert!(net.leaders().is_empty(), "a lone node cannot lead");
}

#[test]
fn crash_and_restart_from_storage_keeps_every_committed_entry_once() {
    let mut net = Net::new(3, tuning());
    let leader = net.elect(&[1, 2, 3]);
    net.propose(leader, "one");
    let follower = (1..=3).find(|i| *i != leader).unwrap();
    net.crash(follower);
    net.propose(leader, "two");
    net.restart(follower);
    net.tick(10);
    assert_eq!(net.applied(follower), ["one", "two"]);
    // Everyone crashes; the group comes back from disk alone.
    for id in 1..=3 {
        net.crash(id);
    }
    for id in 1..=3 {
        net.restart(id);
    }
    let leader = net.elect(&[1, 2, 3]);
    net.propose(leader, "three");
    net.tick(5);
    for id in 1..=3 {
        assert_eq!(net.applied(id), ["one", "two", "three"], "node {id}");
    }
}

#[test]
fn a_follower_behind_the_compaction_point_catches_up_by_snapshot() {
    let mut net = Net::new(3, Tuning { compact_every: 5, ..tuning() });
    let leader = net.elect(&[1, 2, 3]);
    let lagging = (1..=3).find(|i| *i != leader).unwrap();
    net.crash(lagging);
    let expected: Vec<String> = (0..20).map(|i| format!("e{i}")).collect();
    for e in &expected {
        net.propose(leader, e);
    }
    assert!(net.node(leader).status().applied >= 20);
    net.restart(lagging);
    net.tick(10);
    assert_eq!(net.applied(lagging), expected);
    // And it restarts from its own snapshot afterwards.
    net.crash(lagging);
    net.restart(lagging);
    net.tick(10);
    assert_eq!(net.applied(lagging), expected);
}

#[test]
fn only_a_leader_in_touch_with_a_quorum_gets_its_leadership_confirmed() {
    let mut net = Net::new(3, tuning());
    let leader = net.elect(&[1, 2, 3]);
    net.propose(leader, "x");
    net.node_mut(leader).read_index(b"r1".to_vec());
    net.settle();
    let confirmed = net.node_mut(leader).take_read_states();
    assert_eq!(confirmed.len(), 1);
    assert_eq!(confirmed[0].0, b"r1");
    net.isolate(leader);
    net.node_mut(leader).read_index(b"r2".to_vec());
    net.tick(3);
    assert!(
        net.node_mut(leader).take_read_states().is_empty(),
        "a cut-off leader is not confirmed"
    );
}

#[test]
fn a_joiner_is_added_as_a_learner_promoted_once_caught_up_and_then_counts_in_the_quorum() {
    let mut net = Net::new(3, tuning());
    let leader = net.elect(&[1, 2, 3]);
    for e in ["a", "b", "c"] {
        net.propose(leader, e);
    }
    net.join(4);
    net.tick(20);
    assert!(net.leaders() == [leader], "an empty joiner never campaigns");
    assert!(net.node(4).status().voters.is_empty());
    net.change(leader, MemberChange::AddLearner { id: 4, raft_addr: "10.0.0.4:1".into() })
        .expect("proposed");
    // One tick: the learner gets the snapshot taken when it was added, catches up, and the
    // leader promotes it.
    net.tick(5);
    for id in 1..=4 {
        let st = net.node(id).status();
        assert_eq!(
            (st.voters.clone(), st.learners.clone()),
            (vec![1, 2, 3, 4], vec![]),
            "node {id}"
        );
    }
    assert_eq!(net.applied(4), ["a", "b", "c"], "the joiner has the history from the snapshot");
    assert_eq!(
        net.node(leader).machine().member_changes,
        [
            MemberChange::AddLearner { id: 4, raft_addr: "10.0.0.4:1".into() },
            MemberChange::Promote { id: 4 }
        ]
    );
    // Four voters: two of them down means no majority; the new voter makes the third.
    let others: Vec<u64> = (1..=3).filter(|i| *i != leader).collect();
    net.crash(others[0]);
    net.crash(4);
    net.propose(leader, "needs-three");
    net.tick(3);
    assert_eq!(net.applied(leader), ["a", "b", "c"], "2 of 4 voters commit nothing");
    net.restart(4);
    net.tick(30);
    let leader = net.elect(&[leader, others[1], 4]);
    net.propose(leader, "d");
    net.tick(5);
    assert_eq!(net.applied(4).last().map(String::as_str), Some("d"));
}

#[test]
fn the_leader_hands_over_and_is_removed_and_the_removed_node_stays_silent() {
    let mut net = Net::new(3, tuning());
    let old = net.elect(&[1, 2, 3]);
    net.propose(old, "before");
    let successor = (1..=3).find(|i| *i != old).unwrap();
    net.node_mut(old).transfer_leader(successor);
    net.tick(5);
    assert_eq!(net.leaders(), [successor], "leadership moved first");
    net.change(successor, MemberChange::Remove { id: old }).expect("proposed");
    net.tick(3);
    let rest: Vec<u64> = (1..=3).filter(|i| *i != old).collect();
    for id in &rest {
        assert_eq!(net.node(*id).status().voters, rest, "node {id}");
    }
    assert!(net.node(old).status().removed, "the removed node learnt it");
    let (ok, why) = net.node(old).status().working_majority(&Default::default());
    assert!(!ok && why.contains("was removed"), "{why}");
    // However long it waits, it never campaigns, and the group keeps committing without it.
    net.tick(60);
    assert_eq!(net.leaders(), [successor]);
    net.propose(successor, "after");
    net.tick(3);
    assert_eq!(net.applied(rest[1]), ["before", "after"]);
    assert_eq!(net.applied(old), ["before"]);
    assert!(net.node_mut(old).propose_member_change(&MemberChange::Promote { id: old }).is_err());
    // It stays silent after a restart too: the removal is in its own committed state.
    net.crash(old);
    net.restart(old);
    net.tick(30);
    assert_eq!(net.leaders(), [successor]);
}

#[test]
fn one_membership_change_at_a_time() {
    let mut net = Net::new(3, tuning());
    let leader = net.elect(&[1, 2, 3]);
    net.join(4);
    let add = MemberChange::AddLearner { id: 4, raft_addr: "10.0.0.4:1".into() };
    net.node_mut(leader).propose_member_change(&add).expect("the first is accepted");
    let second = net.node_mut(leader).propose_member_change(&MemberChange::Remove { id: 3 });
    assert!(second.unwrap_err().contains("already in progress"));
    net.settle();
    net.tick(5);
    assert_eq!(net.node(leader).status().voters, [1, 2, 3, 4]);
}

#[test]
fn a_member_change_the_state_machine_refuses_leaves_the_configuration_unchanged() {
    let mut net = Net::new(3, tuning());
    let leader = net.elect(&[1, 2, 3]);
    let gone = (1..=3).find(|i| *i != leader).unwrap();
    net.change(leader, MemberChange::Remove { id: gone }).expect("proposed");
    net.tick(3);
    let rest: Vec<u64> = (1..=3).filter(|i| *i != gone).collect();
    // Proposed behind the request checks' back (a stale or buggy requester): committed, but
    // refused by every node when applied, so the removed id never votes again.
    net.change(leader, MemberChange::AddLearner { id: gone, raft_addr: "x:1".into() })
        .expect("raft itself accepts the proposal");
    net.tick(3);
    net.change(leader, MemberChange::Promote { id: gone }).expect("proposed");
    net.tick(3);
    for id in &rest {
        let st = net.node(*id).status();
        assert_eq!((st.voters.clone(), st.learners.clone()), (rest.clone(), vec![]), "node {id}");
    }
}
