//! The sorted-set type, with Redis 7.0's two encodings and its conversion rules.
//!
//! - **listpack**: `(member, score)` pairs in a `Vec` sorted by (score, member), while there are
//!   at most `zset-max-listpack-entries` members of at most `zset-max-listpack-value` bytes.
//!   Like Redis's listpack it stores an integral score as an integer, so `-0` reads back as
//!   `0` here (and only here), and ZSCAN prints integral scores without an exponent.
//! - **skiplist**: a member → score [`Dict`] (for ZSCORE and the SCAN guarantee of ZSCAN) plus
//!   an order-statistic skiplist ([`skiplist`]) for everything positional.
//!
//! A set converts to skiplist when an insertion would break a limit and never converts back,
//! except that results built by the *STORE commands take the compact form when they fit.
//!
//! Positional queries use 0-based forward ranks. Range queries mirror Redis's
//! `zzlFirstInRange`/`zslFirstInRange` family exactly, including the listpack's linear scans,
//! so that even ZRANGEBYLEX over mixed scores (which Redis leaves unspecified) answers as
//! Redis does for small sets.

#[path = "zset_args.rs"]
pub mod args;
#[path = "zset_ops.rs"]
pub mod ops;
#[path = "zset_range.rs"]
pub mod range;
#[path = "zset_skiplist.rs"]
pub mod skiplist;

use std::cmp::Ordering;

use super::dict::Dict;
use super::value::{EncodingLimits, Sds, LIMITS};
use range::RangeSpec;
use skiplist::Skiplist;

/// The encoding thresholds, read once per command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// `zset-max-listpack-entries`
    pub entries: usize,
    /// `zset-max-listpack-value`
    pub value: usize,
}

impl Limits {
    /// The thresholds currently configured.
    pub fn current() -> Limits {
        Limits {
            entries: EncodingLimits::get(&LIMITS.zset_entries),
            value: EncodingLimits::get(&LIMITS.zset_value),
        }
    }

    /// True if `len` members of at most `longest` bytes fit the listpack encoding.
    fn fit(&self, len: usize, longest: usize) -> bool {
        len <= self.entries && longest <= self.value
    }
}

/// ZADD's options (`ZADD_IN_*`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AddFlags {
    /// Only add new members.
    pub nx: bool,
    /// Only update existing members.
    pub xx: bool,
    /// Only update when the new score is greater.
    pub gt: bool,
    /// Only update when the new score is less.
    pub lt: bool,
    /// Add the score to the current one.
    pub incr: bool,
}

/// What an addition did (`ZADD_OUT_*`), with the resulting score when it was processed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Added {
    /// A new member.
    New(f64),
    /// An existing member whose score changed.
    Updated(f64),
    /// An existing member, processed, whose score stayed the same.
    Same(f64),
    /// Nothing done because of NX, XX, GT or LT.
    Skipped,
}

/// The score (or the incremented score) is NaN.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotANumber;

/// A sorted-set value.
#[derive(Debug, Clone, Default)]
pub struct ZSet {
    repr: Repr,
}

#[derive(Debug, Clone)]
enum Repr {
    /// (member, score) pairs sorted by (score, member); no score is `-0`.
    Listpack(Vec<(Sds, f64)>),
    /// Member → score, plus the order.
    Skiplist { dict: Dict<f64>, list: Skiplist },
}

impl Default for Repr {
    fn default() -> Self {
        Repr::Listpack(Vec::new())
    }
}

/// (score, member) order; scores are never NaN.
pub fn order(a: (f64, &[u8]), b: (f64, &[u8])) -> Ordering {
    a.0.partial_cmp(&b.0).expect("scores are never NaN").then_with(|| a.1.cmp(b.1))
}

/// The listpack keeps integral scores as integers: `-0` becomes `0`.
fn listpack_score(score: f64) -> f64 {
    if score == 0.0 {
        0.0
    } else {
        score
    }
}

/// How a listpack prints a stored score (ZSCAN): as an integer when Redis's `double2ll`
/// accepts it, else as `%.17g`.
pub fn listpack_score_text(score: f64) -> String {
    const SAFE: f64 = (i64::MAX / 2) as f64;
    if (-SAFE..=SAFE).contains(&score) && score == (score as i64) as f64 {
        return (score as i64).to_string();
    }
    common::fmt::format_double(score)
}

impl ZSet {
    /// The name OBJECT ENCODING reports.
    pub fn encoding(&self) -> &'static str {
        match self.repr {
            Repr::Listpack(_) => "listpack",
            Repr::Skiplist { .. } => "skiplist",
        }
    }

    /// The member table's stats (DEBUG HTSTATS-KEY), if the sorted set has one.
    pub fn table_stats(&self) -> Option<String> {
        match &self.repr {
            Repr::Skiplist { dict, .. } => Some(dict.stats()),
            Repr::Listpack(_) => None,
        }
    }

    /// The number of members.
    pub fn len(&self) -> usize {
        match &self.repr {
            Repr::Listpack(v) => v.len(),
            Repr::Skiplist { dict, .. } => dict.len(),
        }
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A set holding `entries`, which must be sorted by (score, member) and distinct: listpack
    /// if they fit `limits`, as Redis's `zsetConvertToListpackIfNeeded` decides for *STORE.
    pub fn from_sorted(entries: Vec<(Sds, f64)>, limits: Limits) -> ZSet {
        let longest = entries.iter().map(|(m, _)| m.len()).max().unwrap_or(0);
        if limits.fit(entries.len(), longest) {
            let entries = entries.into_iter().map(|(m, s)| (m, listpack_score(s))).collect();
            return ZSet { repr: Repr::Listpack(entries) };
        }
        let mut dict = Dict::new();
        let mut list = Skiplist::new();
        for (member, score) in entries {
            dict.insert(&member, score);
            list.insert(score, member);
        }
        ZSet { repr: Repr::Skiplist { dict, list } }
    }

    /// The score of `member`.
    pub fn score(&self, member: &[u8]) -> Option<f64> {
        match &self.repr {
            Repr::Listpack(v) => v.iter().find(|(m, _)| m.as_slice() == member).map(|(_, s)| *s),
            Repr::Skiplist { dict, .. } => dict.get(member).copied(),
        }
    }

    /// The member → score table of the skiplist encoding (ZSCAN walks it with a cursor);
    /// `None` for a listpack.
    pub fn dict(&self) -> Option<&Dict<f64>> {
        match &self.repr {
            Repr::Listpack(_) => None,
            Repr::Skiplist { dict, .. } => Some(dict),
        }
    }

    /// Switches to the skiplist encoding (no-op if already there). Besides growth, Redis's SORT
    /// does this to any sorted set it reads, and the set stays converted.
    pub fn convert_to_skiplist(&mut self) {
        if let Repr::Listpack(v) = &mut self.repr {
            let entries = std::mem::take(v);
            let mut dict = Dict::new();
            let mut list = Skiplist::new();
            for (member, score) in entries {
                dict.insert(&member, score);
                list.insert(score, member);
            }
            self.repr = Repr::Skiplist { dict, list };
        }
    }

    /// ZADD's core (`zsetAdd`): adds or updates `member` under `flags`, converting to the
    /// skiplist encoding first if a new member would break `limits`.
    pub fn add(
        &mut self,
        member: &[u8],
        score: f64,
        flags: AddFlags,
        limits: Limits,
    ) -> Result<Added, NotANumber> {
        if score.is_nan() {
            return Err(NotANumber);
        }
        let Some(current) = self.score(member) else {
            if flags.xx {
                return Ok(Added::Skipped);
            }
            if let Repr::Listpack(v) = &self.repr {
                if !limits.fit(v.len() + 1, member.len()) {
                    self.convert_to_skiplist();
                }
            }
            self.insert_new(member, score);
            return Ok(Added::New(score));
        };
        if flags.nx {
            return Ok(Added::Skipped);
        }
        let score = if flags.incr { score + current } else { score };
        if score.is_nan() {
            return Err(NotANumber);
        }
        if (flags.lt && score >= current) || (flags.gt && score <= current) {
            return Ok(Added::Skipped);
        }
        if score == current {
            return Ok(Added::Same(score));
        }
        let moved = match &mut self.repr {
            Repr::Listpack(v) => {
                let at =
                    v.iter().position(|(m, _)| m.as_slice() == member).expect("score() found it");
                Some(v.remove(at).0)
            }
            Repr::Skiplist { dict, list } => {
                let m = list.remove(current, member).expect("dict and list hold the same members");
                list.insert(score, m);
                *dict.get_mut(member).expect("score() found it") = score;
                None
            }
        };
        if let Some(m) = moved {
            self.insert_listpack(m, score);
        }
        Ok(Added::Updated(score))
    }

    fn insert_new(&mut self, member: &[u8], score: f64) {
        if let Repr::Skiplist { dict, list } = &mut self.repr {
            dict.insert(member, score);
            list.insert(score, Sds::from_slice(member));
        } else {
            self.insert_listpack(Sds::from_slice(member), score);
        }
    }

    fn insert_listpack(&mut self, member: Sds, score: f64) {
        if let Repr::Listpack(v) = &mut self.repr {
            let score = listpack_score(score);
            let at = v.partition_point(|(m, s)| order((*s, m), (score, &member)) == Ordering::Less);
            v.insert(at, (member, score));
        }
    }

    /// Removes `member`; true if it was present.
    pub fn remove(&mut self, member: &[u8]) -> bool {
        match &mut self.repr {
            Repr::Listpack(v) => match v.iter().position(|(m, _)| m.as_slice() == member) {
                Some(at) => {
                    v.remove(at);
                    true
                }
                None => false,
            },
            Repr::Skiplist { dict, list } => match dict.remove(member) {
                Some(score) => list.remove(score, member).is_some(),
                None => false,
            },
        }
    }

    /// The 0-based rank of `member`, counted from the highest score if `reverse`.
    pub fn rank(&self, member: &[u8], reverse: bool) -> Option<usize> {
        let rank = match &self.repr {
            Repr::Listpack(v) => v.iter().position(|(m, _)| m.as_slice() == member)?,
            Repr::Skiplist { dict, list } => list.rank(*dict.get(member)?, member)?,
        };
        Some(if reverse { self.len() - 1 - rank } else { rank })
    }

    /// The element at 0-based forward rank `rank`.
    pub fn get(&self, rank: usize) -> Option<(&[u8], f64)> {
        match &self.repr {
            Repr::Listpack(v) => v.get(rank).map(|(m, s)| (m.as_slice(), *s)),
            Repr::Skiplist { list, .. } => list.get(rank),
        }
    }

    /// Every element in order.
    pub fn iter(&self) -> Box<dyn Iterator<Item = (&[u8], f64)> + '_> {
        self.iter_from(0, false)
    }

    /// The elements from forward rank `rank` on, toward higher ranks or (`reverse`) lower ones.
    pub fn iter_from(
        &self,
        rank: usize,
        reverse: bool,
    ) -> Box<dyn Iterator<Item = (&[u8], f64)> + '_> {
        fn pair((m, s): &(Sds, f64)) -> (&[u8], f64) {
            (m.as_slice(), *s)
        }
        match &self.repr {
            Repr::Listpack(v) if rank >= v.len() => Box::new(std::iter::empty()),
            Repr::Listpack(v) if reverse => Box::new(v[..=rank].iter().rev().map(pair)),
            Repr::Listpack(v) => Box::new(v[rank..].iter().map(pair)),
            Repr::Skiplist { list, .. } => Box::new(list.walk(rank, reverse)),
        }
    }

    /// `zslIsInRange`: the range is not empty and overlaps [first, last].
    fn overlaps(&self, range: &dyn RangeSpec) -> bool {
        let (Some(first), Some(last)) =
            (self.get(0), self.len().checked_sub(1).and_then(|r| self.get(r)))
        else {
            return false;
        };
        !range.is_empty() && range.gte_min(last.1, last.0) && range.lte_max(first.1, first.0)
    }

    /// The forward rank of the first element in `range` (`zzlFirstInRange`/`zslFirstInRange`).
    pub fn first_in_range(&self, range: &dyn RangeSpec) -> Option<usize> {
        if !self.overlaps(range) {
            return None;
        }
        let rank = match &self.repr {
            Repr::Listpack(v) => v.iter().position(|(m, s)| range.gte_min(*s, m))?,
            Repr::Skiplist { list, .. } => list.first_where(|s, m| range.gte_min(s, m))?,
        };
        let (m, s) = self.get(rank)?;
        range.lte_max(s, m).then_some(rank)
    }

    /// The forward rank of the last element in `range` (`zzlLastInRange`/`zslLastInRange`).
    pub fn last_in_range(&self, range: &dyn RangeSpec) -> Option<usize> {
        if !self.overlaps(range) {
            return None;
        }
        let rank = match &self.repr {
            Repr::Listpack(v) => v.iter().rposition(|(m, s)| range.lte_max(*s, m))?,
            Repr::Skiplist { list, .. } => list.last_where(|s, m| range.lte_max(s, m))?,
        };
        let (m, s) = self.get(rank)?;
        range.gte_min(s, m).then_some(rank)
    }

    /// The number of elements in `range` (ZCOUNT, ZLEXCOUNT): a walk on a listpack, two rank
    /// lookups on a skiplist.
    pub fn count_in_range(&self, range: &dyn RangeSpec) -> usize {
        let Some(first) = self.first_in_range(range) else { return 0 };
        match &self.repr {
            Repr::Listpack(_) => {
                self.iter_from(first, false).take_while(|(m, s)| range.lte_max(*s, m)).count()
            }
            Repr::Skiplist { .. } => self.last_in_range(range).map_or(0, |last| last + 1 - first),
        }
    }

    /// Removes the elements at forward ranks `start..=end` (clamped); returns how many.
    pub fn remove_ranks(&mut self, start: usize, end: usize) -> usize {
        let end = end.min(self.len().saturating_sub(1));
        if start > end || start >= self.len() {
            return 0;
        }
        match &mut self.repr {
            Repr::Listpack(v) => v.drain(start..=end).count(),
            Repr::Skiplist { dict, list } => {
                let removed = list.remove_ranks(start, end);
                for m in &removed {
                    dict.remove(m);
                }
                removed.len()
            }
        }
    }

    /// Removes every element in `range` (ZREMRANGEBYSCORE, ZREMRANGEBYLEX); returns how many.
    pub fn remove_in_range(&mut self, range: &dyn RangeSpec) -> usize {
        let Some(first) = self.first_in_range(range) else { return 0 };
        let n = self.iter_from(first, false).take_while(|(m, s)| range.lte_max(*s, m)).count();
        self.remove_ranks(first, first + n - 1)
    }

    /// Removes and returns the lowest (or, with `max`, the highest) element.
    pub fn pop(&mut self, max: bool) -> Option<(Sds, f64)> {
        let rank = if max { self.len().checked_sub(1)? } else { 0 };
        match &mut self.repr {
            Repr::Listpack(v) => (!v.is_empty()).then(|| v.remove(rank)),
            Repr::Skiplist { dict, list } => {
                let (member, score) = list.get(rank).map(|(m, s)| (Sds::from_slice(m), s))?;
                list.remove(score, &member);
                dict.remove(&member);
                Some((member, score))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use rand::{Rng, SeedableRng};

    use super::range::{LexRange, ScoreRange};
    use super::*;

    const LIMITS: Limits = Limits { entries: 128, value: 64 };

    fn add(z: &mut ZSet, member: &str, score: f64) -> Added {
        z.add(member.as_bytes(), score, AddFlags::default(), LIMITS).expect("not NaN")
    }

    fn members(z: &ZSet) -> Vec<String> {
        z.iter().map(|(m, _)| String::from_utf8_lossy(m).into_owned()).collect()
    }

    /// Both encodings of the same content.
    fn both(pairs: &[(&str, f64)]) -> [ZSet; 2] {
        let mut small = ZSet::default();
        for (m, s) in pairs {
            add(&mut small, m, *s);
        }
        let mut big = small.clone();
        big.convert_to_skiplist();
        assert_eq!((small.encoding(), big.encoding()), ("listpack", "skiplist"));
        [small, big]
    }

    #[test]
    fn orders_by_score_then_member() {
        for z in both(&[("c", 1.0), ("b", 1.0), ("a", 2.0), ("z", -1.0), ("m", f64::INFINITY)]) {
            assert_eq!(members(&z), ["z", "b", "c", "a", "m"]);
            assert_eq!(z.rank(b"c", false), Some(2));
            assert_eq!(z.rank(b"c", true), Some(2));
            assert_eq!(z.rank(b"z", true), Some(4));
            assert_eq!(z.rank(b"nope", false), None);
            assert_eq!(z.get(4), Some((&b"m"[..], f64::INFINITY)));
            assert_eq!(z.score(b"a"), Some(2.0));
        }
    }

    #[test]
    fn add_flags_follow_zset_add() {
        let mut z = ZSet::default();
        assert_eq!(add(&mut z, "a", 1.0), Added::New(1.0));
        assert_eq!(add(&mut z, "a", 1.0), Added::Same(1.0));
        assert_eq!(add(&mut z, "a", 2.0), Added::Updated(2.0));
        let f = |nx, xx, gt, lt, incr| AddFlags { nx, xx, gt, lt, incr };
        assert_eq!(
            z.add(b"a", 5.0, f(true, false, false, false, false), LIMITS),
            Ok(Added::Skipped)
        );
        assert_eq!(
            z.add(b"b", 5.0, f(false, true, false, false, false), LIMITS),
            Ok(Added::Skipped)
        );
        assert_eq!(
            z.add(b"a", 1.0, f(false, false, true, false, false), LIMITS),
            Ok(Added::Skipped)
        );
        assert_eq!(
            z.add(b"a", 3.0, f(false, false, false, true, false), LIMITS),
            Ok(Added::Skipped)
        );
        assert_eq!(
            z.add(b"a", 3.0, f(false, false, false, false, true), LIMITS),
            Ok(Added::Updated(5.0))
        );
        z.add(b"a", f64::INFINITY, AddFlags::default(), LIMITS).expect("not NaN");
        assert_eq!(
            z.add(b"a", f64::NEG_INFINITY, f(false, false, false, false, true), LIMITS),
            Err(NotANumber)
        );
        assert_eq!(z.add(b"a", f64::NAN, AddFlags::default(), LIMITS), Err(NotANumber));
    }

    #[test]
    fn listpack_stores_minus_zero_as_zero() {
        let [small, big] = {
            let mut small = ZSet::default();
            add(&mut small, "a", -0.0);
            let mut big = ZSet::default();
            big.convert_to_skiplist();
            add(&mut big, "a", -0.0);
            [small, big]
        };
        assert!(small.score(b"a").expect("present").is_sign_positive());
        assert!(big.score(b"a").expect("present").is_sign_negative());
        assert_eq!(listpack_score_text(1e18), "1000000000000000000");
        assert_eq!(listpack_score_text(1e20), "1e+20");
        assert_eq!(listpack_score_text(1.5), "1.5");
        assert_eq!(listpack_score_text(f64::NEG_INFINITY), "-inf");
    }

    #[test]
    fn score_and_lex_ranges_with_exclusive_bounds() {
        let pairs: Vec<(String, f64)> = (0..10).map(|i| (format!("m{i}"), i as f64)).collect();
        let pairs: Vec<(&str, f64)> = pairs.iter().map(|(m, s)| (m.as_str(), *s)).collect();
        for z in both(&pairs) {
            let r = ScoreRange::parse(b"(2", b"5").expect("valid");
            assert_eq!(
                (z.first_in_range(&r), z.last_in_range(&r), z.count_in_range(&r)),
                (Some(3), Some(5), 3)
            );
            let r = ScoreRange::parse(b"-inf", b"(0").expect("valid");
            assert_eq!((z.first_in_range(&r), z.count_in_range(&r)), (None, 0));
            let r = ScoreRange::parse(b"(9", b"+inf").expect("valid");
            assert_eq!(z.count_in_range(&r), 0);
            let r = ScoreRange::parse(b"5", b"2").expect("valid");
            assert_eq!(z.count_in_range(&r), 0);
            let r = ScoreRange::parse(b"-inf", b"+inf").expect("valid");
            assert_eq!(z.count_in_range(&r), 10);
        }
        let same: Vec<(&str, f64)> = ["a", "b", "c", "d", "e"].iter().map(|m| (*m, 0.0)).collect();
        for z in both(&same) {
            let r = LexRange::parse(b"(a", b"[c").expect("valid");
            assert_eq!(
                (z.first_in_range(&r), z.last_in_range(&r), z.count_in_range(&r)),
                (Some(1), Some(2), 2)
            );
            let r = LexRange::parse(b"-", b"(a").expect("valid");
            assert_eq!(z.count_in_range(&r), 0);
            let r = LexRange::parse(b"[d", b"+").expect("valid");
            assert_eq!(
                z.iter_from(4, true).map(|(m, _)| m.to_vec()).collect::<Vec<_>>(),
                [b"e", b"d", b"c", b"b", b"a"]
            );
            let mut z = z;
            assert_eq!(z.remove_in_range(&r), 2);
            assert_eq!(members(&z), ["a", "b", "c"]);
        }
    }

    #[test]
    fn converts_at_129_members_or_a_65_byte_member() {
        let mut z = ZSet::default();
        for i in 0..128 {
            add(&mut z, &format!("m{i}"), i as f64);
        }
        assert_eq!(z.encoding(), "listpack");
        add(&mut z, "m0", 7.0);
        assert_eq!(z.encoding(), "listpack", "updates do not convert");
        add(&mut z, "m128", 0.5);
        assert_eq!((z.encoding(), z.len()), ("skiplist", 129));
        assert_eq!(z.rank(b"m128", false), Some(0));
        z.remove_ranks(0, 100);
        assert_eq!(z.encoding(), "skiplist", "never converts back");

        let mut z = ZSet::default();
        add(&mut z, &"x".repeat(64), 1.0);
        assert_eq!(z.encoding(), "listpack");
        add(&mut z, &"x".repeat(65), 1.0);
        assert_eq!(z.encoding(), "skiplist");

        let big: Vec<(Sds, f64)> =
            (0..129).map(|i| (Sds::from_slice(format!("{i:03}").as_bytes()), 1.0)).collect();
        assert_eq!(ZSet::from_sorted(big[..128].to_vec(), LIMITS).encoding(), "listpack");
        assert_eq!(ZSet::from_sorted(big, LIMITS).encoding(), "skiplist");
    }

    /// A naive model: a Vec kept sorted by (score, member).
    #[derive(Default)]
    struct Model(Vec<(Vec<u8>, f64)>);

    impl Model {
        fn add(&mut self, member: &[u8], score: f64) {
            self.remove(member);
            self.0.push((member.to_vec(), score));
            self.0.sort_by(|a, b| order((a.1, &a.0), (b.1, &b.0)));
        }
        fn remove(&mut self, member: &[u8]) -> bool {
            let before = self.0.len();
            self.0.retain(|(m, _)| m != member);
            before != self.0.len()
        }
    }

    fn check(z: &ZSet, model: &Model) {
        assert_eq!(z.len(), model.0.len());
        let got: Vec<(Vec<u8>, f64)> = z.iter().map(|(m, s)| (m.to_vec(), s)).collect();
        assert_eq!(got, model.0);
        let back: Vec<(Vec<u8>, f64)> = match z.len() {
            0 => Vec::new(),
            n => z.iter_from(n - 1, true).map(|(m, s)| (m.to_vec(), s)).collect(),
        };
        assert!(back.iter().rev().eq(model.0.iter()));
        if let Repr::Skiplist { list, .. } = &z.repr {
            list.check();
        }
    }

    #[test]
    fn randomized_against_a_sorted_vec() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        for round in 0..6 {
            let mut z = ZSet::default();
            let mut model = Model::default();
            let limits = Limits { entries: if round % 2 == 0 { 128 } else { 0 }, value: 64 };
            let keyspace = [20, 200, 2000][round % 3];
            for step in 0..4000 {
                let member = format!("m{}", rng.gen_range(0..keyspace)).into_bytes();
                // Few distinct scores, so ties (ordered by member) are common.
                let score = rng.gen_range(-20..20) as f64 / 4.0;
                match rng.gen_range(0..100) {
                    0..=49 => {
                        z.add(&member, score, AddFlags::default(), limits).expect("not NaN");
                        model.add(&member, score);
                    }
                    50..=69 => assert_eq!(z.remove(&member), model.remove(&member)),
                    70..=79 => {
                        let rank = model.0.iter().position(|(m, _)| *m == member);
                        assert_eq!(z.rank(&member, false), rank);
                        assert_eq!(z.score(&member), rank.map(|r| model.0[r].1));
                    }
                    80..=84 => {
                        let max = rng.gen_bool(0.5);
                        let expected = if max {
                            model.0.pop()
                        } else {
                            (!model.0.is_empty()).then(|| model.0.remove(0))
                        };
                        assert_eq!(z.pop(max).map(|(m, s)| (m.to_vec(), s)), expected);
                    }
                    85..=89 if !model.0.is_empty() => {
                        let a = rng.gen_range(0..model.0.len());
                        let b = (a + rng.gen_range(0..5)).min(model.0.len() - 1);
                        assert_eq!(z.remove_ranks(a, b), b + 1 - a);
                        model.0.drain(a..=b);
                    }
                    90..=94 => {
                        let (lo, hi) = (rng.gen_range(-6..6) as f64, rng.gen_range(-6..6) as f64);
                        let r = ScoreRange {
                            min: lo,
                            max: hi,
                            minex: rng.gen_bool(0.5),
                            maxex: rng.gen_bool(0.5),
                        };
                        let inside: Vec<usize> = (0..model.0.len())
                            .filter(|&i| {
                                r.gte_min(model.0[i].1, b"") && r.lte_max(model.0[i].1, b"")
                            })
                            .collect();
                        assert_eq!(z.first_in_range(&r), inside.first().copied(), "step {step}");
                        assert_eq!(z.last_in_range(&r), inside.last().copied());
                        assert_eq!(z.count_in_range(&r), inside.len());
                        if rng.gen_bool(0.3) {
                            assert_eq!(z.remove_in_range(&r), inside.len());
                            model.0.retain(|(_, s)| !(r.gte_min(*s, b"") && r.lte_max(*s, b"")));
                        }
                    }
                    _ => {
                        if let Some(r) =
                            (!model.0.is_empty()).then(|| rng.gen_range(0..model.0.len()))
                        {
                            assert_eq!(
                                z.get(r).map(|(m, s)| (m.to_vec(), s)),
                                Some(model.0[r].clone())
                            );
                        }
                    }
                }
                if step % 97 == 0 {
                    check(&z, &model);
                }
            }
            check(&z, &model);
        }
    }
}
