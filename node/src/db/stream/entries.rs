//! Adding, reading and deleting a stream's entries, node by node as `t_stream.c` does: a new
//! entry goes into the last node unless that node is full (`stream-node-max-bytes`,
//! `stream-node-max-entries`), a deletion only flags the entry, and a node goes when its last
//! live entry does.

use std::sync::atomic::Ordering::Relaxed;

use bytes::Bytes;

use super::node::{self, NodeEntry};
use super::{Stream, StreamId};
use crate::db::value::LIMITS;

/// A listpack never grows past 1 GB (`STREAM_LISTPACK_MAX_SIZE`).
const LISTPACK_MAX_SIZE: usize = 1 << 30;

/// A live entry: its ID and its field-value pairs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The ID.
    pub id: StreamId,
    /// Fields and values, in the order they were added.
    pub fields: Vec<(Bytes, Bytes)>,
}

impl From<NodeEntry> for Entry {
    fn from(e: NodeEntry) -> Entry {
        Entry { id: e.id, fields: e.fields }
    }
}

/// Why an entry could not be added.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppendError {
    /// The ID is not greater than the stream's last ID (or the sequence would overflow).
    IdTooSmall,
    /// The fields and values are too large for a listpack.
    TooLarge,
}

/// The node limits in force (Redis reads its config at each XADD).
#[derive(Debug, Clone, Copy)]
pub struct NodeLimits {
    /// `stream-node-max-bytes`.
    pub max_bytes: usize,
    /// `stream-node-max-entries`.
    pub max_entries: i64,
}

impl NodeLimits {
    /// The configured limits.
    pub fn current() -> NodeLimits {
        NodeLimits {
            max_bytes: LIMITS.stream_node_bytes.load(Relaxed),
            max_entries: LIMITS.stream_node_entries.load(Relaxed),
        }
    }
}

impl Default for NodeLimits {
    fn default() -> NodeLimits {
        NodeLimits { max_bytes: 4096, max_entries: 100 }
    }
}

impl Stream {
    /// The number of live entries.
    pub fn len(&self) -> u64 {
        self.length
    }

    /// True when no live entry is left (the key stays: streams may be empty).
    pub fn is_empty(&self) -> bool {
        self.length == 0
    }

    /// Adds an entry with `pairs` (field, value …). `id` is the explicit ID, with
    /// `seq_given == false` for `ms-*`; `None` generates one from `now_ms` as `*` does.
    /// Returns the ID used.
    pub fn append(
        &mut self,
        pairs: &[Bytes],
        id: Option<StreamId>,
        seq_given: bool,
        now_ms: u64,
        limits: NodeLimits,
    ) -> Result<StreamId, AppendError> {
        let id = match id {
            Some(id) if seq_given => id,
            Some(id) if id.ms == self.last_id.ms => {
                if self.last_id.seq == u64::MAX {
                    return Err(AppendError::IdTooSmall);
                }
                StreamId::new(id.ms, self.last_id.seq + 1)
            }
            Some(id) => id,
            None if now_ms > self.last_id.ms => StreamId::new(now_ms, 0),
            None => next_id(self.last_id).ok_or(AppendError::IdTooSmall)?,
        };
        if id <= self.last_id {
            return Err(AppendError::IdTooSmall);
        }
        let total: usize = pairs.iter().map(|p| p.len()).sum();
        if total > LISTPACK_MAX_SIZE {
            return Err(AppendError::TooLarge);
        }
        let max_bytes = match limits.max_bytes {
            0 => LISTPACK_MAX_SIZE,
            n => n.min(LISTPACK_MAX_SIZE),
        };
        let tail = self.nodes.last_key_value().map(|(master, lp)| {
            let full = lp.len() + total >= max_bytes
                || (limits.max_entries > 0 && node::total_entries(lp) >= limits.max_entries);
            (*master, full)
        });
        match tail {
            Some((master, false)) => {
                let lp = self.nodes.get_mut(&master).expect("the tail node");
                node::append(lp, master, id, pairs);
            }
            _ => {
                self.nodes.insert(id, node::create(id, pairs));
            }
        }
        self.length += 1;
        self.entries_added += 1;
        self.last_id = id;
        if self.length == 1 {
            self.first_id = id;
        }
        Ok(id)
    }

    /// Live entries with `start <= id <= end`, ascending (or descending when `rev`), at most
    /// `count` of them (0: all).
    pub fn range(&self, start: StreamId, end: StreamId, rev: bool, count: usize) -> Vec<Entry> {
        let mut out = Vec::new();
        if start > end {
            return out;
        }
        // A node holds IDs from its master ID up to the next node's master ID.
        let first_node = self.nodes.range(..=start).next_back().map_or(start, |(m, _)| *m);
        let nodes = self.nodes.range(first_node..=end);
        let mut take = |entries: Vec<NodeEntry>| {
            for e in entries {
                if e.is_deleted() || e.id < start || e.id > end {
                    continue;
                }
                out.push(Entry::from(e));
                if count > 0 && out.len() == count {
                    return true;
                }
            }
            false
        };
        if rev {
            for (master, lp) in nodes.rev() {
                let mut entries = node::decode(*master, lp);
                entries.reverse();
                if take(entries) {
                    break;
                }
            }
        } else {
            for (master, lp) in nodes {
                if take(node::decode(*master, lp)) {
                    break;
                }
            }
        }
        out
    }

    /// The live entry `id`, if there is one.
    pub fn get(&self, id: StreamId) -> Option<Entry> {
        self.range(id, id, false, 1).pop()
    }

    /// The greatest live ID (`streamLastValidID`).
    pub fn last_valid_id(&self) -> Option<StreamId> {
        self.range(StreamId::MIN, StreamId::MAX, true, 1).pop().map(|e| e.id)
    }

    /// The first (or last) entry's ID, counting deleted entries unless `skip_deleted`; when
    /// there is none, MAX for the first and MIN for the last (`streamGetEdgeID`).
    pub fn edge_id(&self, first: bool, skip_deleted: bool) -> StreamId {
        let found = if skip_deleted {
            self.range(StreamId::MIN, StreamId::MAX, !first, 1).pop().map(|e| e.id)
        } else if first {
            self.nodes.iter().find_map(|(m, lp)| node::edge_id(*m, lp, true))
        } else {
            self.nodes.iter().rev().find_map(|(m, lp)| node::edge_id(*m, lp, false))
        };
        found.unwrap_or(if first { StreamId::MAX } else { StreamId::MIN })
    }

    /// Flags the live entry `id` deleted, dropping its node if it was the node's last live
    /// entry. Returns false if there is no such live entry. Leaves `first_id` and
    /// `max_deleted_entry_id` to the caller (XDEL).
    pub fn remove(&mut self, id: StreamId) -> bool {
        let Some((master, lp)) = self.nodes.range_mut(..=id).next_back() else { return false };
        let master = *master;
        let Some(e) = node::decode(master, lp).into_iter().find(|e| e.id == id && !e.is_deleted())
        else {
            return false;
        };
        if node::live_entries(lp) == 1 {
            self.nodes.remove(&master);
        } else {
            node::mark_deleted(lp, &[(e.flags_at, e.flags)]);
        }
        self.length -= 1;
        true
    }

    /// XDEL: removes each of `ids` that is a live entry, keeping `first_id` and
    /// `max_deleted_entry_id` as Redis does. Returns how many were removed.
    pub fn delete_ids(&mut self, ids: &[StreamId]) -> u64 {
        let mut deleted = 0;
        let mut first_entry = false;
        for &id in ids {
            if self.remove(id) {
                first_entry |= id == self.first_id;
                if id > self.max_deleted_entry_id {
                    self.max_deleted_entry_id = id;
                }
                deleted += 1;
            }
        }
        if deleted > 0 {
            if self.length == 0 {
                self.first_id = StreamId::MIN;
            } else if first_entry {
                self.first_id = self.edge_id(true, true);
            }
        }
        deleted
    }
}

/// The ID after `id`, or `None` past the greatest one (`streamIncrID`).
pub fn next_id(id: StreamId) -> Option<StreamId> {
    if id.seq < u64::MAX {
        Some(StreamId::new(id.ms, id.seq + 1))
    } else if id.ms < u64::MAX {
        Some(StreamId::new(id.ms + 1, 0))
    } else {
        None
    }
}

/// The ID before `id`, or `None` below 0-0 (`streamDecrID`).
pub fn prev_id(id: StreamId) -> Option<StreamId> {
    if id.seq > 0 {
        Some(StreamId::new(id.ms, id.seq - 1))
    } else if id.ms > 0 {
        Some(StreamId::new(id.ms - 1, u64::MAX))
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(items: &[&str]) -> Vec<Bytes> {
        items.iter().map(|s| Bytes::copy_from_slice(s.as_bytes())).collect()
    }

    fn add(s: &mut Stream, ms: u64, seq: u64, items: &[&str]) {
        s.append(&pairs(items), Some(StreamId::new(ms, seq)), true, 0, NodeLimits::default())
            .expect("added");
    }

    #[test]
    fn nodes_split_at_100_entries() {
        let mut s = Stream::default();
        for i in 1..=250 {
            add(&mut s, i, 0, &["f", "v"]);
        }
        assert_eq!(s.nodes.len(), 3);
        assert_eq!(
            s.nodes.keys().copied().collect::<Vec<_>>(),
            [StreamId::new(1, 0), StreamId::new(101, 0), StreamId::new(201, 0)]
        );
        assert_eq!(s.len(), 250);
        assert_eq!(s.range(StreamId::MIN, StreamId::MAX, false, 0).len(), 250);
    }

    #[test]
    fn nodes_split_at_4096_bytes() {
        let mut s = Stream::default();
        let big = "x".repeat(1000);
        for i in 1..=10 {
            add(&mut s, i, 0, &["f", &big]);
        }
        // Each entry takes a little over 1000 bytes: four fit under 4096.
        assert_eq!(s.nodes.len(), 3);
    }

    #[test]
    fn ids_are_generated_and_checked() {
        let mut s = Stream::default();
        let l = NodeLimits::default();
        assert_eq!(s.append(&pairs(&["a", "1"]), None, true, 10, l), Ok(StreamId::new(10, 0)));
        assert_eq!(s.append(&pairs(&["a", "1"]), None, true, 5, l), Ok(StreamId::new(10, 1)));
        let auto_seq = Some(StreamId::new(10, 0));
        assert_eq!(s.append(&pairs(&["a", "1"]), auto_seq, false, 0, l), Ok(StreamId::new(10, 2)));
        let small = Some(StreamId::new(10, 2));
        assert_eq!(s.append(&pairs(&["a", "1"]), small, true, 0, l), Err(AppendError::IdTooSmall));
        assert_eq!(s.entries_added, 3);
        assert_eq!(s.first_id, StreamId::new(10, 0));
    }

    #[test]
    fn iteration_both_ways_skips_deleted() {
        let mut s = Stream::default();
        for i in 1..=150 {
            add(&mut s, i, 0, &["f", "v"]);
        }
        assert_eq!(s.delete_ids(&[StreamId::new(1, 0), StreamId::new(120, 0)]), 2);
        assert_eq!(s.first_id, StreamId::new(2, 0));
        assert_eq!(s.max_deleted_entry_id, StreamId::new(120, 0));
        let fwd = s.range(StreamId::new(118, 0), StreamId::new(122, 0), false, 0);
        let ids: Vec<u64> = fwd.iter().map(|e| e.id.ms).collect();
        assert_eq!(ids, [118, 119, 121, 122]);
        let back = s.range(StreamId::MIN, StreamId::MAX, true, 3);
        let ids: Vec<u64> = back.iter().map(|e| e.id.ms).collect();
        assert_eq!(ids, [150, 149, 148]);
        assert_eq!(s.edge_id(true, false), StreamId::new(1, 0));
        assert_eq!(s.edge_id(true, true), StreamId::new(2, 0));
        assert_eq!(s.last_valid_id(), Some(StreamId::new(150, 0)));
    }

    /// The node Redis 7.0.15 dumps (DUMP, rdbcompression no) after `XADD d 1-1 a 1 b hello`,
    /// `XADD d 1-2 a 300 b x`, `XADD d 5-0 c -7`, `XADD d 5-1 a 1 b 2`, `XDEL d 1-2`.
    #[test]
    fn nodes_are_byte_identical_to_redis() {
        let mut s = Stream::default();
        add(&mut s, 1, 1, &["a", "1", "b", "hello"]);
        add(&mut s, 1, 2, &["a", "300", "b", "x"]);
        add(&mut s, 5, 0, &["c", "-7"]);
        add(&mut s, 5, 1, &["a", "1", "b", "2"]);
        s.delete_ids(&[StreamId::new(1, 2)]);
        let redis = "510000001f00030101010201816102816202000102010001000101018568656c6c6f06050103\
                     0100010101c12c02817802050100010401dfff020101816302dff90206010201040100010101\
                     02010501ff";
        let hex: String =
            s.nodes[&StreamId::new(1, 1)].iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex, redis.replace(' ', ""));
    }

    #[test]
    fn a_node_goes_with_its_last_live_entry() {
        let mut s = Stream::default();
        add(&mut s, 1, 0, &["f", "v"]);
        add(&mut s, 2, 0, &["f", "v"]);
        s.delete_ids(&[StreamId::new(1, 0)]);
        assert_eq!(s.nodes.len(), 1);
        s.delete_ids(&[StreamId::new(2, 0)]);
        assert!(s.nodes.is_empty());
        assert_eq!(s.first_id, StreamId::MIN);
        assert_eq!(s.last_id, StreamId::new(2, 0));
    }
}
