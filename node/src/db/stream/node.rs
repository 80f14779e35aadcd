//! One stream node: a listpack holding a master entry and the entries appended after it, in
//! the layout the [module documentation](super) describes. These functions create, extend,
//! decode and flag nodes; they never change an encoding Redis would not produce, so a node
//! stays byte-identical to the one `t_stream.c` builds from the same commands.

use bytes::Bytes;

use super::StreamId;
use crate::persist::listpack::{elements, first_elements, replace_int, Builder};
use crate::persist::Elem;

/// Entry flag: deleted (XDEL, exact trimming), kept until the node goes.
pub const FLAG_DELETED: i64 = 1;
/// Entry flag: the entry's fields are the master entry's, only the values are stored.
pub const FLAG_SAMEFIELDS: i64 = 2;

/// An entry read from a node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeEntry {
    /// Its ID.
    pub id: StreamId,
    /// Its flags.
    pub flags: i64,
    /// Where its flags element starts in the listpack.
    pub flags_at: usize,
    /// Its fields and values.
    pub fields: Vec<(Bytes, Bytes)>,
}

impl NodeEntry {
    /// True if the entry is flagged deleted.
    pub fn is_deleted(&self) -> bool {
        self.flags & FLAG_DELETED != 0
    }
}

fn int(e: Elem<'_>) -> i64 {
    match e {
        Elem::Int(n) => n,
        // Redis reads a string element as an integer too (`lpGetIntegerIfValid`).
        Elem::Str(s) => common::fmt::parse_i64(s).unwrap_or(0),
    }
}

fn bytes(e: Elem<'_>) -> Bytes {
    Bytes::from(e.to_bytes().into_owned())
}

/// Appends one entry (flags, ID deltas, fields or values, lp-count) to an open listpack.
fn push_entry(
    lp: &mut Vec<u8>,
    b: &mut Builder,
    master: StreamId,
    id: StreamId,
    pairs: &[Bytes],
    same_fields: bool,
) {
    let numfields = (pairs.len() / 2) as i64;
    b.push_int(lp, if same_fields { FLAG_SAMEFIELDS } else { 0 });
    // Redis stores the differences as 64-bit integers, wrapping as C's unsigned arithmetic does.
    b.push_int(lp, id.ms.wrapping_sub(master.ms) as i64);
    b.push_int(lp, id.seq.wrapping_sub(master.seq) as i64);
    if !same_fields {
        b.push_int(lp, numfields);
    }
    for pair in pairs.chunks(2) {
        if !same_fields {
            b.push(lp, &pair[0]);
        }
        b.push(lp, &pair[1]);
    }
    let lp_count = if same_fields { 3 + numfields } else { 3 + 1 + 2 * numfields };
    b.push_int(lp, lp_count);
}

/// A new node whose master ID is `id` and whose master fields and first entry are `pairs`
/// (field, value, field, value …).
pub fn create(id: StreamId, pairs: &[Bytes]) -> Vec<u8> {
    let mut lp = Vec::new();
    let mut b = Builder::new(&mut lp);
    b.push_int(&mut lp, 1);
    b.push_int(&mut lp, 0);
    b.push_int(&mut lp, (pairs.len() / 2) as i64);
    for pair in pairs.chunks(2) {
        b.push(&mut lp, &pair[0]);
    }
    b.push_int(&mut lp, 0);
    push_entry(&mut lp, &mut b, id, id, pairs, true);
    b.finish(&mut lp);
    lp
}

/// The number of entries (live and deleted) a node holds.
pub fn total_entries(lp: &[u8]) -> i64 {
    let els = first_elements(lp, 2);
    int(els[0].1) + int(els[1].1)
}

/// The number of live entries of a node.
pub fn live_entries(lp: &[u8]) -> i64 {
    int(first_elements(lp, 1)[0].1)
}

/// Appends an entry to the node `lp` whose master ID is `master`.
pub fn append(lp: &mut Vec<u8>, master: StreamId, id: StreamId, pairs: &[Bytes]) {
    let master_fields = int(first_elements(lp, 3)[2].1) as usize;
    let els = first_elements(lp, 3 + master_fields);
    let count = int(els[0].1);
    let count_at = els[0].0;
    let same_fields = pairs.len() / 2 == master_fields
        && pairs
            .chunks(2)
            .zip(&els[3..3 + master_fields])
            .all(|(p, (_, e))| *e.to_bytes() == *p[0]);
    drop(els);
    replace_int(lp, count_at, count + 1);
    let mut b = Builder::reopen(lp);
    push_entry(lp, &mut b, master, id, pairs, same_fields);
    b.finish(lp);
}

/// Every entry of the node, deleted ones included, in ID order.
pub fn decode(master: StreamId, lp: &[u8]) -> Vec<NodeEntry> {
    let els = elements(lp);
    let master_fields = int(els[2].1) as usize;
    let fields: Vec<Bytes> = els[3..3 + master_fields].iter().map(|(_, e)| bytes(*e)).collect();
    let mut out = Vec::with_capacity(int(els[0].1) as usize + int(els[1].1) as usize);
    let mut i = 3 + master_fields + 1;
    while i < els.len() {
        let (flags_at, flags) = (els[i].0, int(els[i].1));
        let id = StreamId::new(
            master.ms.wrapping_add(int(els[i + 1].1) as u64),
            master.seq.wrapping_add(int(els[i + 2].1) as u64),
        );
        i += 3;
        let pairs = if flags & FLAG_SAMEFIELDS != 0 {
            let values = &els[i..i + master_fields];
            i += master_fields;
            fields.iter().cloned().zip(values.iter().map(|(_, e)| bytes(*e))).collect()
        } else {
            let n = int(els[i].1) as usize;
            i += 1;
            let pairs =
                els[i..i + 2 * n].chunks(2).map(|p| (bytes(p[0].1), bytes(p[1].1))).collect();
            i += 2 * n;
            pairs
        };
        i += 1; // lp-count
        out.push(NodeEntry { id, flags, flags_at, fields: pairs });
    }
    out
}

/// The ID of the node's first or last entry, deleted or not (`lpGetEdgeStreamID`).
pub fn edge_id(master: StreamId, lp: &[u8], first: bool) -> Option<StreamId> {
    let entries = decode(master, lp);
    if first {
        entries.first().map(|e| e.id)
    } else {
        entries.last().map(|e| e.id)
    }
}

/// Flags the entries whose flags start at `flags_at` (offsets from [`decode`]) deleted, and
/// moves them from the node's live count to its deleted count.
pub fn mark_deleted(lp: &mut Vec<u8>, flagged: &[(usize, i64)]) {
    let mut flagged = flagged.to_vec();
    // Back to front, so that re-encoding an element never moves one still to be rewritten.
    flagged.sort_unstable_by_key(|f| std::cmp::Reverse(f.0));
    for (at, flags) in &flagged {
        replace_int(lp, *at, flags | FLAG_DELETED);
    }
    let els = first_elements(lp, 2);
    let (count_at, count) = (els[0].0, int(els[0].1));
    let (deleted_at, deleted) = (els[1].0, int(els[1].1));
    drop(els);
    let n = flagged.len() as i64;
    replace_int(lp, deleted_at, deleted + n);
    replace_int(lp, count_at, count - n);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(items: &[&str]) -> Vec<Bytes> {
        items.iter().map(|s| Bytes::copy_from_slice(s.as_bytes())).collect()
    }

    #[test]
    fn entries_with_the_master_fields_store_only_values() {
        let m = StreamId::new(5, 0);
        let mut lp = create(m, &args(&["a", "1", "b", "x"]));
        append(&mut lp, m, StreamId::new(5, 1), &args(&["a", "2", "b", "y"]));
        append(&mut lp, m, StreamId::new(7, 3), &args(&["c", "3"]));
        let entries = decode(m, &lp);
        assert_eq!(entries.len(), 3);
        assert_eq!(entries[0].flags, FLAG_SAMEFIELDS);
        assert_eq!(entries[1].flags, FLAG_SAMEFIELDS);
        assert_eq!(entries[2].flags, 0);
        assert_eq!(entries[2].id, StreamId::new(7, 3));
        assert_eq!(entries[2].fields, vec![(Bytes::from("c"), Bytes::from("3"))]);
        assert_eq!(live_entries(&lp), 3);
        assert!(crate::persist::listpack::parse(&lp, |_| Ok(())).is_ok());
    }

    #[test]
    fn flagging_moves_counts_and_keeps_the_listpack_valid() {
        let m = StreamId::new(1, 0);
        let mut lp = create(m, &args(&["f", "v"]));
        for seq in 1..200 {
            append(&mut lp, m, StreamId::new(1, seq), &args(&["f", "v"]));
        }
        let entries = decode(m, &lp);
        let flagged: Vec<(usize, i64)> =
            entries.iter().take(150).map(|e| (e.flags_at, e.flags)).collect();
        mark_deleted(&mut lp, &flagged);
        assert!(crate::persist::listpack::parse(&lp, |_| Ok(())).is_ok());
        assert_eq!(live_entries(&lp), 50);
        assert_eq!(total_entries(&lp), 200);
        let after = decode(m, &lp);
        assert_eq!(after.iter().filter(|e| e.is_deleted()).count(), 150);
        assert_eq!(edge_id(m, &lp, true), Some(StreamId::new(1, 0)));
        assert_eq!(edge_id(m, &lp, false), Some(StreamId::new(1, 199)));
    }
}
