//! The hash type: a listpack (insertion-ordered pairs) while small, a hash table beyond
//! `hash-max-listpack-entries` / `hash-max-listpack-value`.

use super::dict::Dict;
use super::value::{EncodingLimits, Sds, LIMITS};

/// A hash value.
#[derive(Debug, Clone)]
pub enum Hash {
    /// Field/value pairs in insertion order.
    Listpack(Vec<(Sds, Sds)>),
    /// A hash table from field to value.
    Table(Dict<Sds>),
}

impl Default for Hash {
    fn default() -> Self {
        Hash::Listpack(Vec::new())
    }
}

impl Hash {
    /// The name OBJECT ENCODING reports.
    pub fn encoding(&self) -> &'static str {
        match self {
            Hash::Listpack(_) => "listpack",
            Hash::Table(_) => "hashtable",
        }
    }

    /// The number of fields.
    pub fn len(&self) -> usize {
        match self {
            Hash::Listpack(v) => v.len(),
            Hash::Table(d) => d.len(),
        }
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The value of `field`.
    pub fn get(&self, field: &[u8]) -> Option<&Sds> {
        match self {
            Hash::Listpack(v) => v.iter().find(|(f, _)| f.as_slice() == field).map(|(_, v)| v),
            Hash::Table(d) => d.get(field),
        }
    }

    /// Sets `field`, returning true if it is new. Converts to a table past the thresholds.
    pub fn set(&mut self, field: &[u8], value: &[u8]) -> bool {
        let max_value = EncodingLimits::get(&LIMITS.hash_value);
        if let Hash::Listpack(pairs) = self {
            if field.len() > max_value || value.len() > max_value {
                self.convert();
            } else if let Some(slot) = pairs.iter_mut().find(|(f, _)| f.as_slice() == field) {
                slot.1 = Sds::from_slice(value);
                return false;
            } else if pairs.len() + 1 > EncodingLimits::get(&LIMITS.hash_entries) {
                self.convert();
            } else {
                pairs.push((Sds::from_slice(field), Sds::from_slice(value)));
                return true;
            }
        }
        match self {
            Hash::Table(d) => d.insert(field, Sds::from_slice(value)).is_none(),
            Hash::Listpack(_) => unreachable!("converted above"),
        }
    }

    /// Removes `field`, returning true if it existed.
    pub fn remove(&mut self, field: &[u8]) -> bool {
        match self {
            Hash::Listpack(v) => match v.iter().position(|(f, _)| f.as_slice() == field) {
                Some(i) => {
                    v.remove(i);
                    true
                }
                None => false,
            },
            Hash::Table(d) => d.remove(field).is_some(),
        }
    }

    /// Every field and value (listpack: insertion order).
    pub fn iter(&self) -> Box<dyn Iterator<Item = (&Sds, &Sds)> + '_> {
        match self {
            Hash::Listpack(v) => Box::new(v.iter().map(|(f, v)| (f, v))),
            Hash::Table(d) => Box::new(d.iter()),
        }
    }

    fn convert(&mut self) {
        if let Hash::Listpack(pairs) = self {
            let mut d = Dict::new();
            for (f, v) in pairs.drain(..) {
                d.insert(&f, v);
            }
            *self = Hash::Table(d);
        }
    }
}
