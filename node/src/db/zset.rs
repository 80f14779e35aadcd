//! The sorted-set type: a listpack (pairs sorted by score, then member) while small, a
//! skiplist-equivalent (member → score table plus an ordered index) beyond
//! `zset-max-listpack-entries` / `zset-max-listpack-value`.

use std::collections::BTreeSet;

use super::dict::Dict;
use super::value::Sds;

/// A score with a total order (scores are never NaN).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Score(pub f64);

impl Eq for Score {}

impl PartialOrd for Score {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Score {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0.partial_cmp(&other.0).expect("scores are never NaN")
    }
}

/// A sorted-set value.
#[derive(Debug, Clone)]
pub enum ZSet {
    /// (member, score) pairs sorted by (score, member).
    Listpack(Vec<(Sds, f64)>),
    /// Member → score, plus the (score, member) order.
    Skiplist {
        /// Member → score.
        dict: Dict<f64>,
        /// Members in (score, member) order.
        index: BTreeSet<(Score, Sds)>,
    },
}

impl Default for ZSet {
    fn default() -> Self {
        ZSet::Listpack(Vec::new())
    }
}

impl ZSet {
    /// The name OBJECT ENCODING reports.
    pub fn encoding(&self) -> &'static str {
        match self {
            ZSet::Listpack(_) => "listpack",
            ZSet::Skiplist { .. } => "skiplist",
        }
    }

    /// The number of members.
    pub fn len(&self) -> usize {
        match self {
            ZSet::Listpack(v) => v.len(),
            ZSet::Skiplist { dict, .. } => dict.len(),
        }
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
