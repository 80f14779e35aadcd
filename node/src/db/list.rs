//! The list type. Redis 7.0 stores every list as a quicklist; a deque gives the same
//! O(1) pushes and pops at both ends.

use std::collections::VecDeque;

use super::value::Sds;

/// A list value.
#[derive(Debug, Clone, Default)]
pub struct List {
    /// The elements, head first.
    pub items: VecDeque<Sds>,
}

impl List {
    /// The number of elements.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// True when empty (an empty list is never stored).
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }
}
