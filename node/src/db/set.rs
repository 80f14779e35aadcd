//! The set type: an intset (sorted integers) while every member is an integer and there are at
//! most `set-max-intset-entries`, a hash table otherwise. (Redis 7.0 has no listpack sets.)

use super::dict::Dict;
use super::value::{EncodingLimits, Sds, LIMITS};

/// A set value.
#[derive(Debug, Clone)]
pub enum Set {
    /// Sorted distinct integers.
    Intset(Vec<i64>),
    /// A hash table of members.
    Table(Dict<()>),
}

impl Default for Set {
    fn default() -> Self {
        Set::Intset(Vec::new())
    }
}

impl Set {
    /// The name OBJECT ENCODING reports.
    pub fn encoding(&self) -> &'static str {
        match self {
            Set::Intset(_) => "intset",
            Set::Table(_) => "hashtable",
        }
    }

    /// The number of members.
    pub fn len(&self) -> usize {
        match self {
            Set::Intset(v) => v.len(),
            Set::Table(d) => d.len(),
        }
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// True if `member` is in the set.
    pub fn contains(&self, member: &[u8]) -> bool {
        match self {
            Set::Intset(v) => common::fmt::parse_i64(member).is_some_and(|n| v.binary_search(&n).is_ok()),
            Set::Table(d) => d.contains_key(member),
        }
    }

    /// Adds `member`, returning true if it is new.
    pub fn insert(&mut self, member: &[u8]) -> bool {
        if let Set::Intset(v) = self {
            match common::fmt::parse_i64(member) {
                Some(n) => match v.binary_search(&n) {
                    Ok(_) => return false,
                    Err(at) if v.len() < EncodingLimits::get(&LIMITS.set_intset_entries) => {
                        v.insert(at, n);
                        return true;
                    }
                    Err(_) => self.convert(),
                },
                None => self.convert(),
            }
        }
        match self {
            Set::Table(d) => d.insert(member, ()).is_none(),
            Set::Intset(_) => unreachable!("converted above"),
        }
    }

    /// Removes `member`, returning true if it was present.
    pub fn remove(&mut self, member: &[u8]) -> bool {
        match self {
            Set::Intset(v) => match common::fmt::parse_i64(member).map(|n| v.binary_search(&n)) {
                Some(Ok(i)) => {
                    v.remove(i);
                    true
                }
                _ => false,
            },
            Set::Table(d) => d.remove(member).is_some(),
        }
    }

    /// Every member (intset: ascending).
    pub fn members(&self) -> Vec<Sds> {
        match self {
            Set::Intset(v) => v.iter().map(|n| Sds::from_slice(itoa::Buffer::new().format(*n).as_bytes())).collect(),
            Set::Table(d) => d.keys().cloned().collect(),
        }
    }

    fn convert(&mut self) {
        if let Set::Intset(v) = self {
            let mut d = Dict::new();
            for n in v.iter() {
                d.insert(itoa::Buffer::new().format(*n).as_bytes(), ());
            }
            *self = Set::Table(d);
        }
    }
}
