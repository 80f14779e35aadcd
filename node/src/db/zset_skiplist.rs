//! The ordered index of a large sorted set: Redis's skiplist with spans, so rank queries (ZRANK,
//! ZRANGE by rank, ZCOUNT) cost O(log n) like Redis's instead of a walk.
//!
//! Nodes live in one `Vec` (an arena) and link to each other by index; index 0 is the header
//! and doubles as the "no node" link, since nothing ever links back to the header. The arena
//! stays dense: a removed node's slot is filled with the last node, whose neighbours are
//! re-pointed (one more O(log n) descent). Every link at level `i` carries its span, the number
//! of level-0 steps it jumps, which is what turns a descent into a rank.
//!
//! Levels are drawn with p = 1/4 up to 32, as Redis's `zslRandomLevel`. The generator is a
//! per-list xorshift seeded from a process-wide random value: an attacker who knew the level
//! sequence could order insertions so that searches degrade to linear (the same reason the
//! dict hash is seeded). Which levels are drawn never changes what any query returns.

use std::cmp::Ordering;
use std::sync::atomic::{AtomicU64, Ordering as AtomicOrdering};
use std::sync::OnceLock;

use smallvec::SmallVec;

use super::super::value::Sds;

const MAX_LEVEL: usize = 32;
/// The header's index, and the "no node" link.
const NIL: u32 = 0;

#[derive(Debug, Clone, Copy, Default)]
struct Level {
    forward: u32,
    span: u32,
}

#[derive(Clone)]
struct Node {
    member: Sds,
    score: f64,
    backward: u32,
    levels: SmallVec<[Level; 2]>,
}

/// Elements ordered by (score, member), with O(log n) rank and position queries.
#[derive(Clone)]
pub struct Skiplist {
    nodes: Vec<Node>,
    tail: u32,
    level: usize,
    rng: u64,
}

/// (score, member) order; scores are never NaN.
fn cmp(score: f64, member: &[u8], other_score: f64, other_member: &[u8]) -> Ordering {
    score
        .partial_cmp(&other_score)
        .expect("scores are never NaN")
        .then_with(|| member.cmp(other_member))
}

fn seed() -> u64 {
    static BASE: OnceLock<u64> = OnceLock::new();
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let base = *BASE.get_or_init(rand::random);
    let n = COUNTER.fetch_add(1, AtomicOrdering::Relaxed);
    // splitmix64 of base + n: distinct, well-mixed, never zero in practice.
    let mut z = base.wrapping_add(n.wrapping_mul(0x9E37_79B9_7F4A_7C15));
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    (z ^ (z >> 31)) | 1
}

impl Default for Skiplist {
    fn default() -> Self {
        Self::new()
    }
}

impl Skiplist {
    /// An empty list.
    pub fn new() -> Skiplist {
        let header = Node {
            member: Sds::new(),
            score: 0.0,
            backward: NIL,
            levels: SmallVec::from_elem(Level::default(), MAX_LEVEL),
        };
        Skiplist { nodes: vec![header], tail: NIL, level: 1, rng: seed() }
    }

    /// The number of elements.
    pub fn len(&self) -> usize {
        self.nodes.len() - 1
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn fwd(&self, x: u32, i: usize) -> u32 {
        self.nodes[x as usize].levels[i].forward
    }

    fn span(&self, x: u32, i: usize) -> usize {
        self.nodes[x as usize].levels[i].span as usize
    }

    fn node(&self, x: u32) -> &Node {
        &self.nodes[x as usize]
    }

    fn random_level(&mut self) -> usize {
        let mut level = 1;
        loop {
            self.rng ^= self.rng << 13;
            self.rng ^= self.rng >> 7;
            self.rng ^= self.rng << 17;
            if level >= MAX_LEVEL || (self.rng & 0xFFFF) >= 0xFFFF / 4 {
                return level;
            }
            level += 1;
        }
    }

    /// For each level, the last node before (score, member), and its rank (`zslInsert`'s walk).
    fn predecessors(&self, score: f64, member: &[u8]) -> ([u32; MAX_LEVEL], [usize; MAX_LEVEL]) {
        let mut update = [NIL; MAX_LEVEL];
        let mut rank = [0usize; MAX_LEVEL];
        let mut x = NIL;
        for i in (0..self.level).rev() {
            rank[i] = if i + 1 == self.level { 0 } else { rank[i + 1] };
            loop {
                let f = self.fwd(x, i);
                if f == NIL
                    || cmp(self.node(f).score, &self.node(f).member, score, member)
                        != Ordering::Less
                {
                    break;
                }
                rank[i] += self.span(x, i);
                x = f;
            }
            update[i] = x;
        }
        (update, rank)
    }

    /// Inserts an element known to be absent.
    pub fn insert(&mut self, score: f64, member: Sds) {
        assert!(
            self.nodes.len() < u32::MAX as usize,
            "a sorted set holds fewer than 2^32 - 1 elements"
        );
        let (mut update, mut rank) = self.predecessors(score, &member);
        let level = self.random_level();
        let len = self.len() as u32;
        if level > self.level {
            for i in self.level..level {
                rank[i] = 0;
                update[i] = NIL;
                self.nodes[0].levels[i].span = len;
            }
            self.level = level;
        }
        let x = self.nodes.len() as u32;
        let mut levels: SmallVec<[Level; 2]> = SmallVec::with_capacity(level);
        for i in 0..level {
            let prev = &mut self.nodes[update[i] as usize].levels[i];
            let jumped = (rank[0] - rank[i]) as u32;
            levels.push(Level { forward: prev.forward, span: prev.span - jumped });
            *prev = Level { forward: x, span: jumped + 1 };
        }
        for (i, &u) in update.iter().enumerate().take(self.level).skip(level) {
            self.nodes[u as usize].levels[i].span += 1;
        }
        let backward = update[0];
        let next = levels[0].forward;
        self.nodes.push(Node { member, score, backward, levels });
        if next != NIL {
            self.nodes[next as usize].backward = x;
        } else {
            self.tail = x;
        }
    }

    /// Unlinks node `x` given its predecessors (`zslDeleteNode`), then fills its arena slot with
    /// the last node, and returns the removed member.
    fn unlink(&mut self, x: u32, update: &[u32; MAX_LEVEL]) -> Sds {
        for (i, &u) in update.iter().enumerate().take(self.level) {
            let xl = self.nodes[x as usize].levels.get(i).copied();
            let ul = &mut self.nodes[u as usize].levels[i];
            match xl {
                Some(xl) if ul.forward == x => {
                    ul.span += xl.span;
                    ul.span -= 1;
                    ul.forward = xl.forward;
                }
                _ => ul.span -= 1,
            }
        }
        let (next, back) = (self.fwd(x, 0), self.node(x).backward);
        if next != NIL {
            self.nodes[next as usize].backward = back;
        } else {
            self.tail = back;
        }
        while self.level > 1 && self.fwd(NIL, self.level - 1) == NIL {
            self.level -= 1;
        }
        let last = (self.nodes.len() - 1) as u32;
        if x != last {
            self.relocate(last, x);
        }
        self.nodes.swap_remove(x as usize).member
    }

    /// Re-points every link to node `from` at `to` (the slot `from` is about to move into).
    fn relocate(&mut self, from: u32, to: u32) {
        let node = self.node(from);
        let (update, _) = self.predecessors(node.score, &node.member);
        for (i, &u) in update.iter().enumerate().take(self.node(from).levels.len()) {
            debug_assert_eq!(self.fwd(u, i), from);
            self.nodes[u as usize].levels[i].forward = to;
        }
        let next = self.fwd(from, 0);
        if next != NIL {
            self.nodes[next as usize].backward = to;
        } else {
            self.tail = to;
        }
    }

    /// Removes (score, member), returning the member if it was present (`zslDelete`).
    pub fn remove(&mut self, score: f64, member: &[u8]) -> Option<Sds> {
        let (update, _) = self.predecessors(score, member);
        let x = self.fwd(update[0], 0);
        if x == NIL || self.node(x).score != score || self.node(x).member.as_slice() != member {
            return None;
        }
        Some(self.unlink(x, &update))
    }

    /// Removes the elements at 0-based ranks `start..=end`, returning their members.
    pub fn remove_ranks(&mut self, start: usize, end: usize) -> Vec<Sds> {
        let mut update = [NIL; MAX_LEVEL];
        let mut traversed = 0;
        let mut x = NIL;
        for i in (0..self.level).rev() {
            while self.fwd(x, i) != NIL && traversed + self.span(x, i) <= start {
                traversed += self.span(x, i);
                x = self.fwd(x, i);
            }
            update[i] = x;
        }
        let mut removed = Vec::with_capacity(end + 1 - start);
        for _ in start..=end {
            let x = self.fwd(update[0], 0);
            if x == NIL {
                break;
            }
            // Unlinking may move the last arena node into x's slot; if that node is one of
            // the predecessors, follow it.
            let last = (self.nodes.len() - 1) as u32;
            removed.push(self.unlink(x, &update));
            for u in update.iter_mut() {
                if *u == last {
                    *u = x;
                }
            }
        }
        removed
    }

    /// The 0-based rank of (score, member), if present (`zslGetRank` - 1).
    pub fn rank(&self, score: f64, member: &[u8]) -> Option<usize> {
        let mut rank = 0;
        let mut x = NIL;
        for i in (0..self.level).rev() {
            loop {
                let f = self.fwd(x, i);
                if f == NIL
                    || cmp(self.node(f).score, &self.node(f).member, score, member)
                        == Ordering::Greater
                {
                    break;
                }
                rank += self.span(x, i);
                x = f;
            }
            if x != NIL && self.node(x).score == score && self.node(x).member.as_slice() == member {
                return Some(rank - 1);
            }
        }
        None
    }

    /// The node at 0-based `rank`.
    fn at(&self, rank: usize) -> Option<u32> {
        let target = rank + 1;
        let mut traversed = 0;
        let mut x = NIL;
        for i in (0..self.level).rev() {
            while self.fwd(x, i) != NIL && traversed + self.span(x, i) <= target {
                traversed += self.span(x, i);
                x = self.fwd(x, i);
            }
            if traversed == target {
                return Some(x);
            }
        }
        None
    }

    /// The element at 0-based `rank`.
    pub fn get(&self, rank: usize) -> Option<(&[u8], f64)> {
        self.at(rank).map(|x| (self.node(x).member.as_slice(), self.node(x).score))
    }

    /// The rank of the first element for which `reached` holds, descending past those for
    /// which it does not (`zslFirstInRange`'s walk; `reached` must be false then true).
    pub fn first_where(&self, reached: impl Fn(f64, &[u8]) -> bool) -> Option<usize> {
        let mut rank = 0;
        let mut x = NIL;
        for i in (0..self.level).rev() {
            loop {
                let f = self.fwd(x, i);
                if f == NIL || reached(self.node(f).score, &self.node(f).member) {
                    break;
                }
                rank += self.span(x, i);
                x = f;
            }
        }
        (self.fwd(x, 0) != NIL).then_some(rank)
    }

    /// The rank of the last element for which `within` holds (`zslLastInRange`'s walk;
    /// `within` must be true then false).
    pub fn last_where(&self, within: impl Fn(f64, &[u8]) -> bool) -> Option<usize> {
        let mut rank = 0;
        let mut x = NIL;
        for i in (0..self.level).rev() {
            loop {
                let f = self.fwd(x, i);
                if f == NIL || !within(self.node(f).score, &self.node(f).member) {
                    break;
                }
                rank += self.span(x, i);
                x = f;
            }
        }
        (x != NIL).then(|| rank - 1)
    }

    /// Walks from 0-based `rank` toward higher ranks, or lower ones if `reverse`.
    pub fn walk(&self, rank: usize, reverse: bool) -> Walk<'_> {
        Walk { list: self, at: self.at(rank).unwrap_or(NIL), reverse }
    }
}

/// An iterator over a [`Skiplist`] from some rank, in either direction.
pub struct Walk<'a> {
    list: &'a Skiplist,
    at: u32,
    reverse: bool,
}

impl<'a> Iterator for Walk<'a> {
    type Item = (&'a [u8], f64);

    fn next(&mut self) -> Option<Self::Item> {
        if self.at == NIL {
            return None;
        }
        let node = self.list.node(self.at);
        self.at = if self.reverse { node.backward } else { node.levels[0].forward };
        Some((node.member.as_slice(), node.score))
    }
}

impl std::fmt::Debug for Skiplist {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.walk(0, false).map(|(m, s)| (String::from_utf8_lossy(m), s)))
            .finish()
    }
}

#[cfg(test)]
impl Skiplist {
    /// Checks every link, span and back pointer against a plain walk of level 0.
    pub fn check(&self) {
        let order: Vec<u32> = {
            let mut v = Vec::new();
            let mut x = self.fwd(NIL, 0);
            while x != NIL {
                v.push(x);
                x = self.fwd(x, 0);
            }
            v
        };
        assert_eq!(order.len(), self.len());
        let rank_of = |x: u32| {
            if x == NIL {
                0
            } else {
                order.iter().position(|y| *y == x).expect("linked") + 1
            }
        };
        for w in order.windows(2) {
            let (a, b) = (self.node(w[0]), self.node(w[1]));
            assert_eq!(cmp(a.score, &a.member, b.score, &b.member), Ordering::Less);
            assert_eq!(b.backward, w[0]);
        }
        assert_eq!(self.tail, order.last().copied().unwrap_or(NIL));
        for (x, node) in self.nodes.iter().enumerate() {
            let levels = if x == 0 { self.level } else { node.levels.len() };
            for i in 0..levels {
                let l = node.levels[i];
                // A link to nothing spans the elements after the node.
                let to = if l.forward == NIL { self.len() } else { rank_of(l.forward) };
                assert_eq!(l.span as usize, to - rank_of(x as u32), "span of node {x} level {i}");
            }
        }
    }
}
