//! The list type. Redis 7.0 stores every list as a quicklist; a deque gives the same
//! O(1) pushes and pops at both ends and O(1) access by index.
//!
//! The operations here are the pure part of the LIST commands (`crate::cmd::lists`): index
//! normalisation, ranges, LINSERT/LREM/LTRIM/LPOS. They follow `t_list.c` exactly, including its
//! corner cases (out-of-range indexes clamp, LPOS's `RANK` overflow), so the command handlers
//! only parse arguments and build replies.

use std::collections::VecDeque;

use super::value::Sds;

/// An end of a list: `Left` is the head (LPUSH, LPOP), `Right` the tail (RPUSH, RPOP).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// The head.
    Left,
    /// The tail.
    Right,
}

impl End {
    /// The keyspace event of a push at this end (`lpush` / `rpush`).
    pub fn push_event(self) -> &'static str {
        match self {
            End::Left => "lpush",
            End::Right => "rpush",
        }
    }

    /// The keyspace event of a pop at this end (`lpop` / `rpop`).
    pub fn pop_event(self) -> &'static str {
        match self {
            End::Left => "lpop",
            End::Right => "rpop",
        }
    }

    /// Parses `LEFT` or `RIGHT`, ignoring case.
    pub fn parse(arg: &[u8]) -> Option<End> {
        if arg.eq_ignore_ascii_case(b"left") {
            Some(End::Left)
        } else if arg.eq_ignore_ascii_case(b"right") {
            Some(End::Right)
        } else {
            None
        }
    }

    /// The word Redis uses when it propagates a move it made itself (`LEFT`/`RIGHT`).
    pub fn name(self) -> &'static str {
        match self {
            End::Left => "LEFT",
            End::Right => "RIGHT",
        }
    }
}

/// A list value.
#[derive(Debug, Clone)]
pub struct List {
    /// The elements, head first.
    pub items: VecDeque<Sds>,
    /// `list-max-listpack-size` when the list was made: Redis fixes a quicklist's fill at
    /// creation, and it decides how DUMP and RDB files split the list into nodes.
    pub fill: i64,
}

impl Default for List {
    fn default() -> Self {
        List::with_items(VecDeque::new())
    }
}

/// Where LINSERT puts the new element relative to the pivot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placement {
    /// Before the pivot (nearer the head).
    Before,
    /// After the pivot.
    After,
}

/// What LPOS looks for, as parsed from its options.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PosQuery {
    /// `RANK`: the n-th match to start from; negative scans from the tail. Never 0.
    pub rank: i64,
    /// `COUNT`: how many matches to return (0 = all); `None` when the option is absent.
    pub count: Option<i64>,
    /// `MAXLEN`: how many elements to compare at most (0 = the whole list).
    pub maxlen: i64,
}

impl Default for PosQuery {
    fn default() -> PosQuery {
        PosQuery { rank: 1, count: None, maxlen: 0 }
    }
}

/// The inclusive positions `[first, last]` that LRANGE/LTRIM's `start end` select in a list of
/// `len` elements, or `None` when the range is empty. Negative indexes count from the tail;
/// out-of-range ones clamp, as in `addListRangeReply` and `ltrimCommand`.
pub fn range_bounds(len: usize, start: i64, end: i64) -> Option<(usize, usize)> {
    let len = len as i64;
    // `len + x` cannot overflow: len >= 0 and x < 0.
    let start = if start < 0 { len + start } else { start }.max(0);
    let end = if end < 0 { len + end } else { end };
    if start > end || start >= len {
        return None;
    }
    Some((start as usize, end.min(len - 1) as usize))
}

/// The position LINDEX/LSET's `index` designates in a list of `len` elements, if any.
pub fn index_position(len: usize, index: i64) -> Option<usize> {
    let index = if index < 0 { len as i64 + index } else { index };
    (0..len as i64).contains(&index).then_some(index as usize)
}

impl List {
    /// A list of `items`, made now (under the current `list-max-listpack-size`).
    pub fn with_items(items: VecDeque<Sds>) -> List {
        List { items, fill: super::value::EncodingLimits::get_fill() }
    }

    /// The number of elements.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// True when empty (an empty list is never stored).
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Adds `value` at `end`.
    pub fn push(&mut self, end: End, value: &[u8]) {
        let value = Sds::from_slice(value);
        match end {
            End::Left => self.items.push_front(value),
            End::Right => self.items.push_back(value),
        }
    }

    /// Removes and returns the element at `end`.
    pub fn pop(&mut self, end: End) -> Option<Sds> {
        match end {
            End::Left => self.items.pop_front(),
            End::Right => self.items.pop_back(),
        }
    }

    /// Removes up to `count` elements from `end` and returns them in the order they were popped
    /// (`RPOP k 2` on `a b c` gives `c b`).
    pub fn pop_many(&mut self, end: End, count: usize) -> Vec<Sds> {
        let n = count.min(self.len());
        match end {
            End::Left => self.items.drain(..n).collect(),
            End::Right => {
                let from = self.len() - n;
                self.items.drain(from..).rev().collect()
            }
        }
    }

    /// The element at `index` (negative counts from the tail).
    pub fn get(&self, index: i64) -> Option<&Sds> {
        index_position(self.len(), index).and_then(|i| self.items.get(i))
    }

    /// Replaces the element at `index`. False if the index is out of range.
    pub fn set(&mut self, index: i64, value: &[u8]) -> bool {
        match index_position(self.len(), index).and_then(|i| self.items.get_mut(i)) {
            Some(slot) => {
                *slot = Sds::from_slice(value);
                true
            }
            None => false,
        }
    }

    /// The elements LRANGE `start end` selects, head to tail.
    pub fn range(&self, start: i64, end: i64) -> impl Iterator<Item = &Sds> {
        let (skip, take) = match range_bounds(self.len(), start, end) {
            Some((first, last)) => (first, last - first + 1),
            None => (0, 0),
        };
        self.items.iter().skip(skip).take(take)
    }

    /// Inserts `value` next to the first occurrence (from the head) of `pivot`. False if the
    /// pivot is not in the list.
    pub fn insert(&mut self, placement: Placement, pivot: &[u8], value: &[u8]) -> bool {
        let Some(at) = self.items.iter().position(|item| item.as_slice() == pivot) else {
            return false;
        };
        let at = match placement {
            Placement::Before => at,
            Placement::After => at + 1,
        };
        self.items.insert(at, Sds::from_slice(value));
        true
    }

    /// LREM: removes up to `|count|` occurrences of `value`, scanning from the head when
    /// `count > 0`, from the tail when `count < 0`, and all of them when `count == 0`.
    /// Returns how many were removed.
    pub fn remove(&mut self, count: i64, value: &[u8]) -> usize {
        // i64::MIN has no positive counterpart; 2^63 removals means "all" just as well.
        let limit = match count {
            0 => usize::MAX,
            n => usize::try_from(n.unsigned_abs()).unwrap_or(usize::MAX),
        };
        let mut removed = 0;
        if count >= 0 {
            self.items.retain(|item| {
                let drop = removed < limit && item.as_slice() == value;
                removed += drop as usize;
                !drop
            });
        } else {
            let mut keep = vec![true; self.len()];
            for (i, item) in self.items.iter().enumerate().rev() {
                if removed == limit {
                    break;
                }
                if item.as_slice() == value {
                    keep[i] = false;
                    removed += 1;
                }
            }
            let mut keep = keep.into_iter();
            self.items.retain(|_| keep.next().unwrap_or(true));
        }
        removed
    }

    /// LTRIM: keeps only the elements `start..=end` selects. Returns how many were removed.
    pub fn trim(&mut self, start: i64, end: i64) -> usize {
        let before = self.len();
        match range_bounds(before, start, end) {
            Some((first, last)) => {
                self.items.truncate(last + 1);
                self.items.drain(..first);
            }
            None => self.items.clear(),
        }
        before - self.len()
    }

    /// LPOS: the positions of the elements equal to `value` that `query` selects, in the order
    /// they were found (from the tail for a negative rank). Without `COUNT` at most one.
    ///
    /// Redis 7.0 does the rank arithmetic on C longs and does not reject `RANK` i64::MIN: its
    /// negation stays negative, so every match qualifies and the `COUNT` check overflows and
    /// never stops the scan. Wrapping arithmetic reproduces those replies.
    pub fn positions(&self, value: &[u8], query: PosQuery) -> Vec<usize> {
        let from_tail = query.rank < 0;
        let rank = if from_tail { query.rank.wrapping_neg() } else { query.rank };
        let len = self.len();
        let mut found = Vec::new();
        let mut matches: i64 = 0;
        for scanned in 0..len {
            if query.maxlen != 0 && scanned as i64 >= query.maxlen {
                break;
            }
            let index = if from_tail { len - 1 - scanned } else { scanned };
            if self.items[index].as_slice() != value {
                continue;
            }
            matches += 1;
            if matches < rank {
                continue;
            }
            found.push(index);
            match query.count {
                None => break,
                Some(count)
                    if count != 0 && matches.wrapping_sub(rank).wrapping_add(1) >= count =>
                {
                    break
                }
                Some(_) => {}
            }
        }
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(items: &[&str]) -> List {
        let mut l = List::default();
        for i in items {
            l.push(End::Right, i.as_bytes());
        }
        l
    }

    fn contents(l: &List) -> Vec<String> {
        l.items.iter().map(|i| String::from_utf8_lossy(i).into_owned()).collect()
    }

    #[test]
    fn range_bounds_clamp_like_redis() {
        assert_eq!(range_bounds(5, 0, -1), Some((0, 4)));
        assert_eq!(range_bounds(5, -100, 100), Some((0, 4)));
        assert_eq!(range_bounds(5, 1, -2), Some((1, 3)));
        assert_eq!(range_bounds(5, 5, 10), None);
        assert_eq!(range_bounds(5, 3, 2), None);
        assert_eq!(range_bounds(5, -1, -2), None);
        assert_eq!(range_bounds(5, -1, -1), Some((4, 4)));
        assert_eq!(range_bounds(0, 0, -1), None);
        assert_eq!(range_bounds(5, i64::MIN, i64::MAX), Some((0, 4)));
        assert_eq!(range_bounds(5, 0, i64::MIN), None);
    }

    #[test]
    fn index_position_counts_from_both_ends() {
        assert_eq!(index_position(3, 0), Some(0));
        assert_eq!(index_position(3, -1), Some(2));
        assert_eq!(index_position(3, -3), Some(0));
        assert_eq!(index_position(3, -4), None);
        assert_eq!(index_position(3, 3), None);
        assert_eq!(index_position(3, i64::MIN), None);
        assert_eq!(index_position(0, 0), None);
    }

    #[test]
    fn pops_come_out_in_pop_order() {
        let mut l = list(&["a", "b", "c", "d"]);
        assert_eq!(
            l.pop_many(End::Right, 3),
            [Sds::from_slice(b"d"), Sds::from_slice(b"c"), Sds::from_slice(b"b")]
        );
        assert_eq!(l.pop_many(End::Left, 5), [Sds::from_slice(b"a")]);
        assert!(l.is_empty());
        assert!(l.pop(End::Left).is_none());
    }

    #[test]
    fn remove_scans_from_the_requested_end() {
        let mut l = list(&["a", "b", "a", "c", "a"]);
        assert_eq!(l.remove(-2, b"a"), 2);
        assert_eq!(contents(&l), ["a", "b", "c"]);
        let mut l = list(&["a", "b", "a", "c", "a"]);
        assert_eq!(l.remove(1, b"a"), 1);
        assert_eq!(contents(&l), ["b", "a", "c", "a"]);
        assert_eq!(l.remove(0, b"a"), 2);
        assert_eq!(contents(&l), ["b", "c"]);
        let mut l = list(&["a", "a"]);
        assert_eq!(l.remove(i64::MIN, b"a"), 2);
    }

    #[test]
    fn trim_and_insert() {
        let mut l = list(&["1", "2", "3", "4", "5"]);
        assert_eq!(l.trim(1, -2), 2);
        assert_eq!(contents(&l), ["2", "3", "4"]);
        assert!(l.insert(Placement::Before, b"3", b"x"));
        assert!(l.insert(Placement::After, b"4", b"y"));
        assert!(!l.insert(Placement::After, b"zz", b"y"));
        assert_eq!(contents(&l), ["2", "x", "3", "4", "y"]);
        assert_eq!(l.trim(5, 10), 5);
        assert!(l.is_empty());
    }

    #[test]
    fn positions_follow_rank_count_and_maxlen() {
        let l = list(&["a", "b", "c", "a", "d", "a", "e"]);
        let q = |rank, count, maxlen| PosQuery { rank, count, maxlen };
        assert_eq!(l.positions(b"a", PosQuery::default()), [0]);
        assert_eq!(l.positions(b"a", q(1, Some(0), 0)), [0, 3, 5]);
        assert_eq!(l.positions(b"a", q(2, Some(0), 0)), [3, 5]);
        assert_eq!(l.positions(b"a", q(-1, Some(2), 0)), [5, 3]);
        assert_eq!(l.positions(b"a", q(1, Some(0), 4)), [0, 3]);
        assert_eq!(l.positions(b"a", q(2, None, 3)), Vec::<usize>::new());
        assert_eq!(l.positions(b"a", q(3, Some(5), 0)), [5]);
        assert_eq!(l.positions(b"a", q(-2, Some(0), 2)), Vec::<usize>::new());
        assert_eq!(l.positions(b"zz", PosQuery::default()), Vec::<usize>::new());
        assert_eq!(l.positions(b"a", q(i64::MAX, Some(0), 0)), Vec::<usize>::new());
        // Redis 7.0.15 answers these (C long overflow) exactly so.
        assert_eq!(l.positions(b"a", q(i64::MIN, None, 0)), [5]);
        assert_eq!(l.positions(b"a", q(i64::MIN, Some(1), 0)), [5, 3, 0]);
        assert_eq!(l.positions(b"a", q(-i64::MAX, Some(0), 0)), Vec::<usize>::new());
    }
}
