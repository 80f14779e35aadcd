//! Reading the entries out of a stream's node listpacks (the layout the module documentation
//! describes): the RDB loader walks them to validate a node, the AOF rewrite to emit XADDs.
//!
//! [`NodeReader`] walks one node and reports a malformed layout as an error instead of
//! panicking, so it is safe on listpacks straight from a file; [`live_entries`] walks a whole
//! stream already in memory (whose nodes are valid by construction) and yields what is not
//! flagged deleted.

use std::borrow::Cow;

use super::{Stream, StreamId};
use crate::persist::listpack::Elems;
use crate::persist::Elem;

/// Entry flag: the entry was deleted (it stays in the listpack until the node goes).
pub const FLAG_DELETED: i64 = 1;
/// Entry flag: the entry's fields are the master entry's, so only its values are stored.
pub const FLAG_SAMEFIELDS: i64 = 2;

/// Why a node listpack does not hold a valid node.
pub type Invalid = &'static str;

/// One entry of a node.
#[derive(Debug)]
pub struct NodeEntry<'a> {
    /// Its ID (master ID plus the stored differences).
    pub id: StreamId,
    /// Flagged deleted.
    pub deleted: bool,
    /// Its field/value pairs, when the reader was asked for them.
    pub fields: Vec<(Elem<'a>, Elem<'a>)>,
}

/// The entries of one node, in listpack (= ID) order, deleted ones included.
pub struct NodeReader<'a> {
    elems: Elems<'a>,
    master: StreamId,
    /// The master entry's field count.
    master_count: usize,
    /// The master entry's fields, kept only when fields are wanted.
    master_fields: Vec<Elem<'a>>,
    want_fields: bool,
    /// Entries still to read (live + deleted, from the master entry).
    left: u64,
    /// The master entry's live-entry count.
    pub live: u64,
    /// The master entry's deleted-entry count.
    pub deleted: u64,
    failed: bool,
}

/// An element that must be an integer (stored as one, or as its canonical text).
fn int(e: Option<Elem<'_>>) -> Result<i64, Invalid> {
    match e.ok_or("stream node listpack ends in the middle of an entry")? {
        Elem::Int(n) => Ok(n),
        Elem::Str(s) => common::fmt::parse_i64(s)
            .ok_or("stream node holds a non-integer where an integer belongs"),
    }
}

/// A count read from the listpack: a non-negative integer.
fn count(e: Option<Elem<'_>>) -> Result<u64, Invalid> {
    u64::try_from(int(e)?).map_err(|_| "stream node holds a negative count")
}

impl<'a> NodeReader<'a> {
    /// Reads the master entry of the node `master` stored in `lp`. With `want_fields`, each
    /// entry comes with its field/value pairs; without, they are skipped (validation).
    pub fn new(master: StreamId, lp: &'a [u8], want_fields: bool) -> Result<Self, Invalid> {
        let mut elems = Elems::new(lp);
        let live = count(elems.next())?;
        let deleted = count(elems.next())?;
        let master_count = count(elems.next())?;
        let mut master_fields = Vec::new();
        for _ in 0..master_count {
            let f = elems.next().ok_or("stream node listpack ends in its master entry")?;
            if want_fields {
                master_fields.push(f);
            }
        }
        if int(elems.next())? != 0 {
            return Err("stream master entry is not terminated by 0");
        }
        let left = live.checked_add(deleted).ok_or("stream node entry counts overflow")?;
        Ok(NodeReader {
            elems,
            master,
            master_count: usize::try_from(master_count).map_err(|_| "stream node too large")?,
            master_fields,
            want_fields,
            left,
            live,
            deleted,
            failed: false,
        })
    }

    fn entry(&mut self) -> Result<NodeEntry<'a>, Invalid> {
        let flags = int(self.elems.next())?;
        if !(0..=FLAG_DELETED | FLAG_SAMEFIELDS).contains(&flags) {
            return Err("stream entry has unknown flags");
        }
        let ms_diff = int(self.elems.next())?;
        let seq_diff = int(self.elems.next())?;
        // Differences are stored as the two's complement of the unsigned difference.
        let id = StreamId::new(
            self.master.ms.wrapping_add(ms_diff as u64),
            self.master.seq.wrapping_add(seq_diff as u64),
        );
        let mut fields = Vec::new();
        let expected = if flags & FLAG_SAMEFIELDS != 0 {
            for i in 0..self.master_count {
                let v = self.elems.next().ok_or("stream entry runs past its node")?;
                if self.want_fields {
                    fields.push((self.master_fields[i], v));
                }
            }
            3 + self.master_count as u64
        } else {
            let n = count(self.elems.next())?;
            for _ in 0..n {
                let f = self.elems.next().ok_or("stream entry runs past its node")?;
                let v = self.elems.next().ok_or("stream entry runs past its node")?;
                if self.want_fields {
                    fields.push((f, v));
                }
            }
            n.checked_mul(2).and_then(|x| x.checked_add(4)).ok_or("stream entry too large")?
        };
        if u64::try_from(int(self.elems.next())?).ok() != Some(expected) {
            return Err("stream entry's element count (lp-count) is wrong");
        }
        Ok(NodeEntry { id, deleted: flags & FLAG_DELETED != 0, fields })
    }

    /// After the last entry: whether the listpack holds nothing more.
    pub fn finish(mut self) -> Result<(), Invalid> {
        if self.elems.next().is_some() {
            return Err("stream node holds more entries than its master entry counts");
        }
        Ok(())
    }
}

impl<'a> Iterator for NodeReader<'a> {
    type Item = Result<NodeEntry<'a>, Invalid>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.left == 0 || self.failed {
            return None;
        }
        self.left -= 1;
        let e = self.entry();
        self.failed = e.is_err();
        Some(e)
    }
}

/// Field/value pairs of an entry, as bytes.
pub type Fields<'a> = Vec<(Cow<'a, [u8]>, Cow<'a, [u8]>)>;

/// The live (not deleted) entries of `stream`, in ID order, with their fields. A node that does
/// not decode (which a stream built by the commands or loaded by the validating loader never
/// has) ends the iteration early.
pub fn live_entries(stream: &Stream) -> impl Iterator<Item = (StreamId, Fields<'_>)> + '_ {
    stream.nodes.iter().flat_map(|(master, lp)| {
        NodeReader::new(*master, lp, true)
            .into_iter()
            .flatten()
            .map_while(Result::ok)
            .filter(|e| !e.deleted)
            .map(|e| {
                let fields = e.fields.into_iter().map(|(f, v)| (f.to_bytes(), v.to_bytes()));
                (e.id, fields.collect())
            })
    })
}
