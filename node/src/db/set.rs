//! The set type: an intset (sorted integers) while every member is an integer and there are at
//! most `set-max-intset-entries`, a hash table otherwise. (Redis 7.0 has no listpack sets.)
//!
//! Conversion is one way, as in Redis: removing the non-integer members of a table does not
//! turn it back into an intset. The set algebra here (SINTER, SUNION, SDIFF and their STORE
//! forms) follows `t_set.c` step by step, because the *way* a result is built decides its
//! encoding and therefore the order in which it is replied: a result built into a fresh set
//! that stays an intset replies in ascending order, while SDIFF's second algorithm copies the
//! whole first set (converting it if the first set holds a string) before removing members.
//!
//! Randomness comes in as an argument (`rng`), so everything here stays deterministic under a
//! seeded generator.

use std::collections::HashSet;

use rand::Rng;

use super::dict::{self, Dict};
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

/// The decimal form of an intset member.
fn int_member(n: i64) -> Sds {
    Sds::from_slice(itoa::Buffer::new().format(n).as_bytes())
}

/// The members of a set, as byte strings (intset: ascending; table: bucket order).
pub enum Iter<'a> {
    /// Over an intset.
    Intset(std::slice::Iter<'a, i64>),
    /// Over a table.
    Table(dict::Iter<'a, ()>),
}

impl Iterator for Iter<'_> {
    type Item = Sds;

    fn next(&mut self) -> Option<Sds> {
        match self {
            Iter::Intset(it) => it.next().map(|n| int_member(*n)),
            Iter::Table(it) => it.next().map(|(k, _)| k.clone()),
        }
    }
}

impl Set {
    /// A set built by adding `members` one by one to an empty intset, as Redis builds the
    /// results of its set algebra (`createIntsetObject` + `setTypeAdd`).
    pub fn from_members<I>(members: I) -> Set
    where
        I: IntoIterator,
        I::Item: AsRef<[u8]>,
    {
        let mut set = Set::default();
        for m in members {
            set.insert(m.as_ref());
        }
        set
    }

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
            Set::Intset(v) => {
                common::fmt::parse_i64(member).is_some_and(|n| v.binary_search(&n).is_ok())
            }
            Set::Table(d) => d.contains_key(member),
        }
    }

    /// Adds `member` under the configured `set-max-intset-entries`, returning true if it is new.
    pub fn insert(&mut self, member: &[u8]) -> bool {
        self.insert_within(member, EncodingLimits::get(&LIMITS.set_intset_entries))
    }

    /// Adds `member`, returning true if it is new. An intset converts when the member is not an
    /// integer (in `string2ll`'s strict sense) or the set would exceed `max_intset` members.
    pub fn insert_within(&mut self, member: &[u8], max_intset: usize) -> bool {
        if let Set::Intset(v) = self {
            match common::fmt::parse_i64(member) {
                Some(n) => match v.binary_search(&n) {
                    Ok(_) => return false,
                    Err(at) if v.len() < max_intset => {
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
    pub fn iter(&self) -> Iter<'_> {
        match self {
            Set::Intset(v) => Iter::Intset(v.iter()),
            Set::Table(d) => Iter::Table(d.iter()),
        }
    }

    /// Every member (intset: ascending).
    pub fn members(&self) -> Vec<Sds> {
        self.iter().collect()
    }

    /// The hash table's stats (DEBUG HTSTATS-KEY), if the set is one.
    pub fn table_stats(&self) -> Option<String> {
        match self {
            Set::Table(d) => Some(d.stats()),
            Set::Intset(_) => None,
        }
    }

    /// One random member (`None` when empty).
    pub fn random_member(&self, rng: &mut impl Rng) -> Option<Sds> {
        match self {
            Set::Intset(v) if v.is_empty() => None,
            Set::Intset(v) => Some(int_member(v[rng.gen_range(0..v.len())])),
            Set::Table(d) => d.fair_random(rng).map(|(k, _)| k.clone()),
        }
    }

    /// Removes and returns one random member (`None` when empty).
    pub fn pop_random(&mut self, rng: &mut impl Rng) -> Option<Sds> {
        let member = self.random_member(rng)?;
        self.remove(&member);
        Some(member)
    }

    /// `count` distinct random members, for SRANDMEMBER with a positive count (everything when
    /// `count >= len`). A large table with a small count is sampled by random picks; otherwise
    /// the set is walked once.
    pub fn random_distinct(&self, count: usize, rng: &mut impl Rng) -> Vec<Sds> {
        let len = self.len();
        if count >= len {
            return self.members();
        }
        match self {
            Set::Table(_) if count.saturating_mul(3) <= len => {
                let mut seen = HashSet::with_capacity(count);
                while seen.len() < count {
                    seen.insert(
                        self.random_member(rng).expect("count < len, so the set is not empty"),
                    );
                }
                let mut out: Vec<Sds> = seen.into_iter().collect();
                // The HashSet's order is already arbitrary; shuffle so it is not biased by it.
                for i in (1..out.len()).rev() {
                    out.swap(i, rng.gen_range(0..=i));
                }
                out
            }
            _ => sample(self.iter(), len, count, rng),
        }
    }

    /// Pops `count` random members, `0 < count < len`, as SPOP with a count does. When the
    /// count approaches the size, Redis instead picks the members to *keep* into a new set,
    /// which replaces this one (and may change its encoding back to an intset), and returns
    /// the rest in this set's order.
    pub fn pop_many(&mut self, count: usize, rng: &mut impl Rng) -> Vec<Sds> {
        let len = self.len();
        debug_assert!(count > 0 && count < len, "SPOP serves 0 and the whole set itself");
        // SPOP_MOVE_STRATEGY_MUL in t_set.c.
        if count.saturating_mul(5) > len {
            let mut kept = Set::default();
            for _ in 0..len - count {
                let m = self.pop_random(rng).expect("keeping fewer members than the set holds");
                kept.insert(&m);
            }
            let popped = self.members();
            *self = kept;
            popped
        } else {
            (0..count).map(|_| self.pop_random(rng).expect("count < len")).collect()
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

/// Selection sampling (Knuth's algorithm S): `count` of the `len` items, uniformly, in the
/// order they come. Shared by SRANDMEMBER and HRANDFIELD.
pub fn sample<T>(
    items: impl Iterator<Item = T>,
    len: usize,
    count: usize,
    rng: &mut impl Rng,
) -> Vec<T> {
    let mut out = Vec::with_capacity(count.min(len));
    let mut needed = count;
    for (seen, item) in items.enumerate() {
        if needed == 0 {
            break;
        }
        if rng.gen_range(0..len - seen) < needed {
            out.push(item);
            needed -= 1;
        }
    }
    out
}

/// SINTER: the members present in every set, in the order of the smallest set (ties keep the
/// argument order), stopping after `limit` members when `limit > 0` (SINTERCARD's LIMIT).
pub fn intersection(sets: &[&Set], limit: usize) -> Vec<Sds> {
    let mut order: Vec<&Set> = sets.to_vec();
    order.sort_by_key(|s| s.len());
    let Some((smallest, others)) = order.split_first() else { return Vec::new() };
    let mut out = Vec::new();
    for member in smallest.iter() {
        if others.iter().all(|s| s.contains(&member)) {
            out.push(member);
            if limit > 0 && out.len() >= limit {
                break;
            }
        }
    }
    out
}

/// SUNION: every member of every set, added to a fresh intset in argument order.
pub fn union(sets: &[&Set]) -> Set {
    Set::from_members(sets.iter().flat_map(|s| s.iter()))
}

/// SDIFF: the members of `first` that are in none of `others` (the sets that exist; a key
/// that repeats the first key must be handled by the caller: the result is then empty).
///
/// Redis picks one of two algorithms by estimated work, and they build different encodings:
/// the first adds only the surviving members to a fresh intset; the second copies all of
/// `first` and then removes the members of the others.
pub fn difference(first: &Set, others: &[&Set]) -> Set {
    let algo_one_work = first.len() * (others.len() + 1) / 2;
    let algo_two_work = first.len() + others.iter().map(|s| s.len()).sum::<usize>();
    if algo_one_work <= algo_two_work {
        Set::from_members(first.iter().filter(|m| !others.iter().any(|s| s.contains(m))))
    } else {
        let mut out = Set::from_members(first.iter());
        for other in others {
            if out.is_empty() {
                break;
            }
            for m in other.iter() {
                out.remove(&m);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(members: &[&str]) -> Set {
        Set::from_members(members)
    }

    fn strs(members: impl IntoIterator<Item = Sds>) -> Vec<String> {
        members.into_iter().map(|m| String::from_utf8_lossy(&m).into_owned()).collect()
    }

    fn sorted(members: impl IntoIterator<Item = Sds>) -> Vec<String> {
        let mut v = strs(members);
        v.sort();
        v
    }

    #[test]
    fn intset_stays_sorted_and_converts_on_a_string() {
        let mut s = set(&["3", "-1", "2"]);
        assert_eq!(s.encoding(), "intset");
        assert_eq!(strs(s.iter()), ["-1", "2", "3"]);
        assert!(!s.insert(b"2"));
        assert!(s.contains(b"-1"));
        assert!(!s.contains(b"0x1"));
        // Not integers in Redis's strict sense: these make a table.
        let mut t = set(&["1"]);
        t.insert(b"01");
        assert_eq!(t.encoding(), "hashtable");
        assert!(s.insert(b"a"));
        assert_eq!(s.encoding(), "hashtable");
        assert!(s.remove(b"a"));
        assert_eq!(s.encoding(), "hashtable", "conversion is one way");
        assert_eq!(sorted(s.iter()), ["-1", "2", "3"]);
    }

    #[test]
    fn intset_converts_on_the_513th_member() {
        let mut s = Set::default();
        for i in 0..512 {
            s.insert_within(i.to_string().as_bytes(), 512);
        }
        assert_eq!(s.encoding(), "intset");
        assert!(!s.insert_within(b"7", 512), "an existing member does not convert");
        assert_eq!(s.encoding(), "intset");
        s.insert_within(b"512", 512);
        assert_eq!(s.encoding(), "hashtable");
        assert_eq!(s.len(), 513);
        assert!(s.contains(b"0") && s.contains(b"512"));
    }

    #[test]
    fn intersection_iterates_the_smallest_set() {
        let big = Set::from_members((1..=200).map(|i| i.to_string()));
        let small = set(&["150", "x", "3", "1000"]);
        let ints = set(&["3", "150", "700"]);
        assert_eq!(sorted(intersection(&[&big, &small], 0)), ["150", "3"]);
        // The intset is smaller than `big`, so the reply is in ascending order.
        assert_eq!(strs(intersection(&[&big, &ints], 0)), ["3", "150"]);
        assert_eq!(intersection(&[&big, &ints, &small], 1).len(), 1);
        assert!(intersection(&[&big, &set(&["a"])], 0).is_empty());
        assert_eq!(strs(intersection(&[&ints], 0)), ["3", "150", "700"]);
    }

    #[test]
    fn union_builds_a_fresh_set() {
        let a = set(&["a", "1"]);
        let b = set(&["2", "1"]);
        let u = union(&[&a, &b]);
        assert_eq!(u.encoding(), "hashtable");
        assert_eq!(sorted(u.iter()), ["1", "2", "a"]);
        // Two tables holding only integers union into an intset (ascending).
        let mut c = set(&["5", "x"]);
        c.remove(b"x");
        let mut d = set(&["4", "y"]);
        d.remove(b"y");
        let u = union(&[&c, &d]);
        assert_eq!(u.encoding(), "intset");
        assert_eq!(strs(u.iter()), ["4", "5"]);
    }

    #[test]
    fn difference_picks_redis_algorithm_and_encoding() {
        let first = set(&["1", "2", "3", "4", "5", "6", "7", "8", "9", "a"]);
        let a = set(&["a"]);
        let b = set(&["b"]);
        // Algorithm 1 (10 <= 11): only survivors are added, so the result is an intset.
        let d = difference(&first, &[&a]);
        assert_eq!(d.encoding(), "intset");
        assert_eq!(d.len(), 9);
        // Algorithm 2 (15 > 12): the first set is copied whole, so the result is a table.
        let d = difference(&first, &[&a, &b]);
        assert_eq!(d.encoding(), "hashtable");
        assert_eq!(sorted(d.iter()), ["1", "2", "3", "4", "5", "6", "7", "8", "9"]);
        assert!(difference(&set(&["1"]), &[&set(&["1", "2"])]).is_empty());
        assert_eq!(strs(difference(&set(&["3", "1"]), &[]).iter()), ["1", "3"]);
    }

    #[test]
    fn random_helpers_respect_the_set() {
        let mut rng = rand::thread_rng();
        let mut s = Set::from_members((0..100).map(|i| format!("m{i}")));
        for count in [1, 10, 40, 99, 100, 500] {
            let got = s.random_distinct(count, &mut rng);
            assert_eq!(got.len(), count.min(100));
            assert_eq!(got.iter().collect::<HashSet<_>>().len(), got.len());
            assert!(got.iter().all(|m| s.contains(m)));
        }
        let popped = s.pop_many(90, &mut rng);
        assert_eq!(popped.len(), 90);
        assert_eq!(s.len(), 10);
        assert!(popped.iter().all(|m| !s.contains(m)));
        let popped = s.pop_many(2, &mut rng);
        assert_eq!((popped.len(), s.len()), (2, 8));
        // Keeping a few integers of a table makes an intset again, as SPOP's second strategy does.
        let mut t = Set::from_members(["a", "1", "2", "3"]);
        let popped = t.pop_many(3, &mut rng);
        assert_eq!(popped.len(), 3);
        assert_eq!(t.len(), 1);
        if !t.contains(b"a") {
            assert_eq!(t.encoding(), "intset");
        }
        assert!(Set::default().pop_random(&mut rng).is_none());
    }

    #[test]
    fn sample_takes_exactly_count_in_order() {
        let mut rng = rand::thread_rng();
        for count in 0..=10 {
            let got = sample(0..10, 10, count, &mut rng);
            assert_eq!(got.len(), count);
            assert!(got.windows(2).all(|w| w[0] < w[1]));
        }
    }
}
