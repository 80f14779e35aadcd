//! Trimming (XTRIM, XADD's MAXLEN/MINID), as `streamTrim` does it: whole nodes go from the
//! front while they lie entirely past the limit; then, unless trimming is approximate (`~`),
//! the entries of the first remaining node are flagged deleted up to the limit. A LIMIT caps
//! the entries removed, node by node, so an approximate trim may remove fewer than asked.

use super::node;
use super::{Stream, StreamId};

/// What to keep.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrimTo {
    /// At most this many entries (MAXLEN).
    MaxLen(u64),
    /// No entry below this ID (MINID).
    MinId(StreamId),
}

/// A trim request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Trim {
    /// The limit.
    pub to: TrimTo,
    /// `~`: remove whole nodes only.
    pub approx: bool,
    /// At most this many entries removed (0: no cap).
    pub limit: i64,
}

impl Stream {
    /// Trims as `trim` asks. Returns the number of entries removed.
    pub fn trim(&mut self, trim: Trim) -> i64 {
        let mut deleted: i64 = 0;
        // Always the first node: each step either drops it or ends the trim.
        while let Some((&master, lp)) = self.nodes.first_key_value() {
            if let TrimTo::MaxLen(max) = trim.to {
                if self.length <= max {
                    break;
                }
            }
            let entries = node::live_entries(lp);
            if trim.limit > 0 && deleted + entries > trim.limit {
                break;
            }
            let remove_node = match trim.to {
                TrimTo::MaxLen(max) => self.length - entries as u64 >= max,
                TrimTo::MinId(min) => {
                    node::edge_id(master, lp, false).is_some_and(|last| last < min)
                }
            };
            if remove_node {
                self.nodes.remove(&master);
                self.length -= entries as u64;
                deleted += entries;
                continue;
            }
            if trim.approx {
                break;
            }
            let mut flagged = Vec::new();
            for e in node::decode(master, lp) {
                let stop = match trim.to {
                    TrimTo::MaxLen(max) => self.length <= max,
                    TrimTo::MinId(min) => e.id >= min,
                };
                if stop {
                    break;
                }
                if !e.is_deleted() {
                    flagged.push((e.flags_at, e.flags));
                    self.length -= 1;
                }
            }
            if !flagged.is_empty() {
                let lp = self.nodes.get_mut(&master).expect("the first node");
                node::mark_deleted(lp, &flagged);
            }
            deleted += flagged.len() as i64;
            break;
        }
        if self.length == 0 {
            self.first_id = StreamId::MIN;
        } else if deleted > 0 {
            self.first_id = self.edge_id(true, true);
        }
        deleted
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stream(n: u64) -> Stream {
        Stream::numbered(n)
    }

    #[test]
    fn exact_trimming_flags_entries_of_the_first_kept_node() {
        let mut s = stream(250);
        let t = Trim { to: TrimTo::MaxLen(120), approx: false, limit: 0 };
        assert_eq!(s.trim(t), 130);
        assert_eq!(s.len(), 120);
        assert_eq!(s.nodes.len(), 2);
        assert_eq!(s.first_id, StreamId::new(131, 0));
        assert_eq!(s.edge_id(true, false), StreamId::new(101, 0));
    }

    #[test]
    fn approximate_trimming_removes_whole_nodes_only() {
        let mut s = stream(250);
        let t = Trim { to: TrimTo::MaxLen(120), approx: true, limit: 10_000 };
        assert_eq!(s.trim(t), 100);
        assert_eq!(s.len(), 150);
        let t = Trim { to: TrimTo::MaxLen(0), approx: true, limit: 149 };
        assert_eq!(s.trim(t), 100);
        assert_eq!(s.len(), 50);
    }

    #[test]
    fn minid_trims_below_the_id() {
        let mut s = stream(250);
        let t = Trim { to: TrimTo::MinId(StreamId::new(150, 0)), approx: false, limit: 0 };
        assert_eq!(s.trim(t), 149);
        assert_eq!(s.first_id, StreamId::new(150, 0));
        let t = Trim { to: TrimTo::MinId(StreamId::new(220, 0)), approx: true, limit: 10_000 };
        assert_eq!(s.trim(t), 51);
        assert_eq!(s.len(), 50);
    }
}
