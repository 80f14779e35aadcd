//! A deterministic in-process network for the Raft layer: every node is a real [`RaftCore`] on
//! a real [`DiskStorage`] in a temp dir; messages sit in one queue that the test drains by
//! hand, through filters that isolate nodes or cut links. Crashing a node drops its core
//! (and any undelivered messages to it); restarting reopens the same directory.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use raft::eraftpb::Message;

use super::core::{RaftCore, StateMachine, Tuning};

/// A state machine that records what it applied: enough to check agreement and replay.
#[derive(Default, Debug, Clone, PartialEq, Eq)]
pub struct Journal {
    pub applied: Vec<String>,
}

impl StateMachine for Journal {
    fn apply(&mut self, _index: u64, data: &[u8]) {
        self.applied.push(String::from_utf8_lossy(data).into_owned());
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
        let logger = slog::Logger::root(slog::Discard, slog::o!());
        let core = RaftCore::open(
            id,
            self.dirs[&id].path(),
            &self.ids,
            Journal::default(),
            self.tuning,
            &logger,
        )
        .expect("reopening from our own storage");
        self.nodes.insert(id, Some(core));
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

    /// Ticks every running node `n` times, settling after each tick.
    pub fn tick(&mut self, n: usize) {
        for _ in 0..n {
            for (_, node) in self.nodes.iter_mut() {
                if let Some(core) = node {
                    core.tick();
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
