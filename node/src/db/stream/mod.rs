//! Streams (XADD, XRANGE, consumer groups …), laid out as Redis 7.0's `t_stream.c` lays them
//! out.
//!
//! # Why Redis's layout
//!
//! What clients see depends on it: approximate trimming (`XTRIM … MAXLEN ~ n`) only drops whole
//! nodes, so XLEN afterwards depends on where the node boundaries fall; XINFO STREAM reports
//! `radix-tree-keys`; DUMP and RDB files carry the nodes' listpacks verbatim. Keeping the
//! very same listpacks makes all three identical to Redis's, and loading an RDB stream is a
//! validation, not a conversion.
//!
//! # Layout
//!
//! [`Stream::nodes`] maps a node's *master ID* (the ID of the first entry ever added to it) to
//! its listpack, in ID order (Redis's radix tree keyed by the 128-bit big-endian ID). A node's
//! listpack holds, in order:
//!
//! ```text
//! master entry:  count  deleted  num-fields  field_1 … field_N  0
//! each entry:    flags  ms-diff  seq-diff  [num-fields  field_1 value_1 …]  lp-count
//!            or: flags  ms-diff  seq-diff   value_1 … value_N               lp-count
//! ```
//!
//! * `count` and `deleted` count the node's live entries and those flagged deleted;
//! * the master fields are the fields of the node's first entry; an entry whose fields are
//!   exactly those, in that order, has the SAMEFIELDS flag (2) and stores only its values;
//! * `flags` is 0, or 1 (DELETED) | 2 (SAMEFIELDS); a deleted entry stays in the listpack until
//!   the node is dropped (XDEL and exact trimming only flag entries);
//! * `ms-diff`/`seq-diff` are the entry's ID minus the master ID;
//! * `lp-count` (read right to left when iterating backwards) is the number of listpack
//!   elements of the entry before it: 3 + N for SAMEFIELDS, 3 + 1 + 2N otherwise; the master
//!   entry's terminating 0 plays the same role.
//!
//! Every integer is stored as a listpack integer (`lpAppendInteger`), every field and value as
//! `lpAppend` stores a string (a canonical decimal becomes an integer element).
//!
//! # Where things are
//!
//! [`node`] reads and writes one node's listpack; [`entries`] adds, reads and deletes entries
//! across nodes (with Redis's node-splitting rules); [`trim`] is XTRIM's algorithm; [`group`]
//! keeps consumer groups' pending entries and read counters (lag); [`rax`] counts the radix
//! tree nodes XINFO reports. All of it is synchronous and clock-free: times come in as
//! arguments.

pub mod entries;
pub mod group;
pub mod id;
pub mod node;
pub mod rax;
pub mod read;
pub mod trim;

use std::collections::{BTreeMap, BTreeSet};

pub use entries::{AppendError, Entry, NodeLimits};
pub use id::StreamId;
pub use trim::{Trim, TrimTo};

/// `entries_read` of a consumer group whose read counter is unknown (`SCG_INVALID_ENTRIES_READ`).
pub const ENTRIES_READ_UNKNOWN: i64 = -1;

/// A stream.
#[derive(Debug, Clone, Default)]
pub struct Stream {
    /// Nodes by master ID: each value is a listpack laid out as the module documentation says.
    pub nodes: BTreeMap<StreamId, Vec<u8>>,
    /// Live entries (those not flagged deleted).
    pub length: u64,
    /// The greatest ID ever added (or set by XSETID); new IDs must exceed it.
    pub last_id: StreamId,
    /// The first live entry's ID (0-0 when empty).
    pub first_id: StreamId,
    /// The greatest ID ever deleted (XDEL, trimming); 0-0 if none.
    pub max_deleted_entry_id: StreamId,
    /// How many entries were ever added (XADD), the base of consumer-group lag.
    pub entries_added: u64,
    /// Consumer groups by name (Redis keeps them in a radix tree, so name order).
    pub groups: BTreeMap<Box<[u8]>, ConsumerGroup>,
}

/// A consumer group.
#[derive(Debug, Clone, Default)]
pub struct ConsumerGroup {
    /// The last ID delivered to the group (`>` reads entries after it).
    pub last_id: StreamId,
    /// How many entries the group has read, or [`ENTRIES_READ_UNKNOWN`].
    pub entries_read: i64,
    /// The pending entries list: delivered, not yet acknowledged.
    pub pel: BTreeMap<StreamId, PendingEntry>,
    /// Consumers by name.
    pub consumers: BTreeMap<Box<[u8]>, Consumer>,
}

/// One delivered, unacknowledged entry of a group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingEntry {
    /// When it was last delivered (unix ms).
    pub delivery_time: u64,
    /// How many times it was delivered.
    pub delivery_count: u64,
    /// The consumer that owns it (a key of [`ConsumerGroup::consumers`]).
    pub consumer: Box<[u8]>,
}

/// A consumer of a group.
#[derive(Debug, Clone, Default)]
pub struct Consumer {
    /// When it last did something (unix ms): `seen-time` in RDB files, `idle` in XINFO.
    pub seen_time: u64,
    /// The IDs it owns in the group's pending entries list.
    pub pel: BTreeSet<StreamId>,
}

#[cfg(test)]
impl Stream {
    /// A stream of `n` entries `1-0` … `n-0`, each `f v`, laid out with the default node
    /// limits (for the model's unit tests).
    pub(crate) fn numbered(n: u64) -> Stream {
        let mut s = Stream::default();
        let pairs = [bytes::Bytes::from("f"), bytes::Bytes::from("v")];
        for i in 1..=n {
            s.append(&pairs, Some(StreamId::new(i, 0)), true, 0, NodeLimits::default())
                .expect("ascending IDs append");
        }
        s
    }
}
