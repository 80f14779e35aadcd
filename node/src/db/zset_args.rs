//! The argument grammars of the sorted-set commands, parsed into plain values with Redis
//! 7.0.15's checks, in Redis's order (the order decides which error a client sees first).
//!
//! This is protocol code that belongs with the handlers in `crate::cmd::zsets`; it sits beside
//! the type to keep that file readable. Nothing here touches the keyspace: checks that need a
//! key (WRONGTYPE, a missing key's early reply) stay in the handlers, between the parsing steps
//! where Redis makes them. What a ZRANGE query selects ([`RangeQuery::select`]) and which
//! positions ZRANDMEMBER picks ([`RandomCount::picks`]) are here too, since the options define
//! them; randomness comes in as an argument.

use bytes::Bytes;
use rand::Rng;

use super::ops::Aggregate;
use super::range::{string2d, LexRange, RangeSpec, ScoreRange};
use super::{AddFlags, ZSet};
use crate::cmd::args::{int, int_with, is};
use crate::error::CommandError;

fn not_float_range() -> CommandError {
    CommandError::err("min or max is not a float")
}

fn not_lex_range() -> CommandError {
    CommandError::err("min or max not valid string range item")
}

/// ZADD and ZINCRBY (which Redis parses with ZADD's option loop: `ZINCRBY k nx m` is a syntax
/// error, not an increment by "nx").
pub struct Zadd<'a> {
    /// NX, XX, GT, LT, INCR.
    pub flags: AddFlags,
    /// CH: count updated members too.
    pub ch: bool,
    /// (score, member) pairs.
    pub pairs: Vec<(f64, &'a [u8])>,
}

impl<'a> Zadd<'a> {
    /// Parses `key [options] score member [score member …]`.
    pub fn parse(args: &'a [Bytes], incr: bool) -> Result<Zadd<'a>, CommandError> {
        let mut flags = AddFlags { incr, ..AddFlags::default() };
        let mut ch = false;
        let mut i = 2;
        while let Some(opt) = args.get(i) {
            match () {
                _ if is(opt, "nx") => flags.nx = true,
                _ if is(opt, "xx") => flags.xx = true,
                _ if is(opt, "ch") => ch = true,
                _ if is(opt, "incr") => flags.incr = true,
                _ if is(opt, "gt") => flags.gt = true,
                _ if is(opt, "lt") => flags.lt = true,
                _ => break,
            }
            i += 1;
        }
        let rest = &args[i..];
        if rest.is_empty() || rest.len() % 2 == 1 {
            return Err(CommandError::Syntax);
        }
        if flags.nx && flags.xx {
            return Err(CommandError::err("XX and NX options at the same time are not compatible"));
        }
        if (flags.nx && (flags.gt || flags.lt)) || (flags.gt && flags.lt) {
            return Err(CommandError::err(
                "GT, LT, and/or NX options at the same time are not compatible",
            ));
        }
        if flags.incr && rest.len() > 2 {
            return Err(CommandError::err("INCR option supports a single increment-element pair"));
        }
        // Every score is checked before anything is written: the command applies fully or not.
        let pairs = rest
            .chunks(2)
            .map(|p| string2d(&p[0]).map(|s| (s, &p[1][..])).ok_or(CommandError::NotFloat))
            .collect::<Result<_, _>>()?;
        Ok(Zadd { flags, ch, pairs })
    }
}

/// How a range is given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum By {
    /// By 0-based rank, negative from the end.
    Rank,
    /// By score (`BYSCORE`).
    Score,
    /// By member (`BYLEX`).
    Lex,
}

/// The two ends of a range.
#[derive(Debug, Clone, PartialEq)]
pub enum Bounds {
    /// Ranks, inclusive.
    Rank(i64, i64),
    /// Scores.
    Score(ScoreRange),
    /// Members.
    Lex(LexRange),
}

impl Bounds {
    /// Parses `min max` given `by`, with Redis's error for each kind.
    pub fn parse(min: &[u8], max: &[u8], by: By) -> Result<Bounds, CommandError> {
        Ok(match by {
            By::Rank => Bounds::Rank(int(min)?, int(max)?),
            By::Score => Bounds::Score(ScoreRange::parse(min, max).ok_or_else(not_float_range)?),
            By::Lex => Bounds::Lex(LexRange::parse(min, max).ok_or_else(not_lex_range)?),
        })
    }
}

/// `start..=end` ranks (negative ones count from the end) clamped to a set of `len`, as Redis
/// sanitizes them; `None` if the span is empty.
pub fn rank_span(start: i64, end: i64, len: usize) -> Option<(usize, usize)> {
    let len = len as i64;
    let start = if start < 0 { (len + start).max(0) } else { start };
    let end = if end < 0 { len + end } else { end };
    if start > end || start >= len {
        return None;
    }
    Some((start as usize, end.min(len - 1) as usize))
}

/// A ZRANGE-family query (`zrangeGenericCommand`).
#[derive(Debug, Clone, PartialEq)]
pub struct RangeQuery {
    /// What to select.
    pub bounds: Bounds,
    /// From the highest end (REV, ZREV*).
    pub reverse: bool,
    /// WITHSCORES.
    pub withscores: bool,
    /// LIMIT offset.
    pub offset: i64,
    /// LIMIT count; negative means no limit.
    pub limit: i64,
}

impl RangeQuery {
    /// Parses `<min> <max> [BYSCORE|BYLEX] [REV] [WITHSCORES] [LIMIT o c]` following the key at
    /// `args[key]`. `by` and `reverse` are fixed by the legacy commands (ZRANGEBYSCORE …) and
    /// `None` for ZRANGE and ZRANGESTORE; `store` refuses WITHSCORES.
    pub fn parse(
        args: &[Bytes],
        key: usize,
        store: bool,
        by: Option<By>,
        reverse: Option<bool>,
    ) -> Result<RangeQuery, CommandError> {
        let (mut by_opt, mut rev_opt) = (by, reverse);
        let (mut withscores, mut offset, mut limit) = (false, 0, -1);
        let mut j = key + 3;
        while j < args.len() {
            let a = &args[j];
            if !store && is(a, "withscores") {
                withscores = true;
            } else if is(a, "limit") && args.len() - j > 2 {
                offset = int(&args[j + 1])?;
                limit = int(&args[j + 2])?;
                j += 2;
            } else if rev_opt.is_none() && is(a, "rev") {
                rev_opt = Some(true);
            } else if by_opt.is_none() && is(a, "bylex") {
                by_opt = Some(By::Lex);
            } else if by_opt.is_none() && is(a, "byscore") {
                by_opt = Some(By::Score);
            } else {
                return Err(CommandError::Syntax);
            }
            j += 1;
        }
        let (by, reverse) = (by_opt.unwrap_or(By::Rank), rev_opt.unwrap_or(false));
        // Redis tests the count, not the presence of LIMIT: `LIMIT 0 -1` passes by rank.
        if limit != -1 && by == By::Rank {
            return Err(CommandError::err(
                "syntax error, LIMIT is only supported in combination with either BYSCORE or BYLEX",
            ));
        }
        if withscores && by == By::Lex {
            return Err(CommandError::err(
                "syntax error, WITHSCORES not supported in combination with BYLEX",
            ));
        }
        let (mut min, mut max) = (&args[key + 1], &args[key + 2]);
        if reverse && by != By::Rank {
            // Reverse score and lex ranges are written max first.
            std::mem::swap(&mut min, &mut max);
        }
        Ok(RangeQuery { bounds: Bounds::parse(min, max, by)?, reverse, withscores, offset, limit })
    }

    /// The elements selected from `z`, in reply order.
    pub fn select<'z>(&self, z: &'z ZSet) -> Vec<(&'z [u8], f64)> {
        let range: &dyn RangeSpec = match &self.bounds {
            Bounds::Rank(start, end) => {
                let Some((start, end)) = rank_span(*start, *end, z.len()) else {
                    return Vec::new();
                };
                let from = if self.reverse { z.len() - 1 - start } else { start };
                return z.iter_from(from, self.reverse).take(end - start + 1).collect();
            }
            Bounds::Score(r) => r,
            Bounds::Lex(r) => r,
        };
        // A negative offset makes Redis walk off the end of the set: nothing is returned.
        if self.offset < 0 || (self.offset > 0 && self.offset as u64 >= z.len() as u64) {
            return Vec::new();
        }
        let first = if self.reverse { z.last_in_range(range) } else { z.first_in_range(range) };
        let Some(first) = first else { return Vec::new() };
        let limit = usize::try_from(self.limit).unwrap_or(usize::MAX);
        z.iter_from(first, self.reverse)
            .skip(self.offset as usize)
            .take_while(
                |(m, s)| if self.reverse { range.gte_min(*s, m) } else { range.lte_max(*s, m) },
            )
            .take(limit)
            .collect()
    }
}

/// ZPOPMIN/ZPOPMAX's optional count (`args[2]`); more arguments are a syntax error.
pub fn pop_count(args: &[Bytes]) -> Result<Option<usize>, CommandError> {
    if args.len() > 3 {
        return Err(CommandError::Syntax);
    }
    let positive = || CommandError::err("value is out of range, must be positive");
    args.get(2)
        .map(|arg| usize::try_from(int_with(arg, positive())?).map_err(|_| positive()))
        .transpose()
}

/// ZMPOP and BZMPOP: `numkeys key… MIN|MAX [COUNT n]`.
pub struct Mpop<'a> {
    /// The keys, tried in order.
    pub keys: &'a [Bytes],
    /// MAX (else MIN).
    pub max: bool,
    /// How many to pop (1 by default).
    pub count: usize,
}

impl<'a> Mpop<'a> {
    /// Parses from `args[at]` (numkeys) on.
    pub fn parse(args: &'a [Bytes], at: usize) -> Result<Mpop<'a>, CommandError> {
        let bad_numkeys = || CommandError::err("numkeys should be greater than 0");
        let numkeys = int_with(&args[at], bad_numkeys())?;
        let numkeys = usize::try_from(numkeys).ok().filter(|n| *n >= 1).ok_or_else(bad_numkeys)?;
        let where_at =
            numkeys.checked_add(at + 1).filter(|w| *w < args.len()).ok_or(CommandError::Syntax)?;
        let max = match &args[where_at] {
            a if is(a, "min") => false,
            a if is(a, "max") => true,
            _ => return Err(CommandError::Syntax),
        };
        let mut count = None;
        let mut j = where_at + 1;
        while j < args.len() {
            if count.is_none() && is(&args[j], "count") && j + 1 < args.len() {
                let bad = || CommandError::err("count should be greater than 0");
                let n = int_with(&args[j + 1], bad())?;
                count = Some(usize::try_from(n).ok().filter(|n| *n >= 1).ok_or_else(bad)?);
                j += 2;
            } else {
                return Err(CommandError::Syntax);
            }
        }
        Ok(Mpop { keys: &args[at + 1..where_at], max, count: count.unwrap_or(1) })
    }
}

/// The set-algebra commands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SetOp {
    /// ZUNION, ZUNIONSTORE.
    Union,
    /// ZINTER, ZINTERSTORE.
    Inter,
    /// ZDIFF, ZDIFFSTORE.
    Diff,
    /// ZINTERCARD.
    InterCard,
}

/// Splits `numkeys key… options…` at `args[at]` into keys and options; `name` is the command
/// for the "at least 1 input key" error.
pub fn setop_keys<'a>(
    args: &'a [Bytes],
    at: usize,
    name: &str,
) -> Result<(&'a [Bytes], &'a [Bytes]), CommandError> {
    let numkeys = int(&args[at])?;
    if numkeys < 1 {
        return Err(CommandError::err(format!(
            "at least 1 input key is needed for '{name}' command"
        )));
    }
    let rest = &args[at + 1..];
    if numkeys as u64 > rest.len() as u64 {
        return Err(CommandError::Syntax);
    }
    Ok(rest.split_at(numkeys as usize))
}

/// The options after the keys of a set-algebra command.
#[derive(Debug, Clone, PartialEq)]
pub struct SetOpOptions {
    /// WEIGHTS, one per key (1 by default).
    pub weights: Vec<f64>,
    /// AGGREGATE.
    pub aggregate: Aggregate,
    /// WITHSCORES (not for the STORE forms).
    pub withscores: bool,
    /// ZINTERCARD's LIMIT (0: none).
    pub limit: usize,
}

impl SetOpOptions {
    /// Parses `options` for `op` over `keys` inputs; `store` for the STORE forms.
    pub fn parse(
        options: &[Bytes],
        keys: usize,
        op: SetOp,
        store: bool,
    ) -> Result<SetOpOptions, CommandError> {
        let mut o = SetOpOptions {
            weights: vec![1.0; keys],
            aggregate: Aggregate::Sum,
            withscores: false,
            limit: 0,
        };
        let algebra = matches!(op, SetOp::Union | SetOp::Inter);
        let mut j = 0;
        while j < options.len() {
            let (opt, remaining) = (&options[j], options.len() - j);
            if algebra && remaining > keys && is(opt, "weights") {
                for (w, arg) in o.weights.iter_mut().zip(&options[j + 1..]) {
                    *w = string2d(arg)
                        .ok_or_else(|| CommandError::err("weight value is not a float"))?;
                }
                j += keys + 1;
            } else if algebra && remaining >= 2 && is(opt, "aggregate") {
                o.aggregate = match &options[j + 1] {
                    a if is(a, "sum") => Aggregate::Sum,
                    a if is(a, "min") => Aggregate::Min,
                    a if is(a, "max") => Aggregate::Max,
                    _ => return Err(CommandError::Syntax),
                };
                j += 2;
            } else if !store && op != SetOp::InterCard && is(opt, "withscores") {
                o.withscores = true;
                j += 1;
            } else if op == SetOp::InterCard && remaining >= 2 && is(opt, "limit") {
                let bad = || CommandError::err("LIMIT can't be negative");
                o.limit = usize::try_from(int_with(&options[j + 1], bad())?).map_err(|_| bad())?;
                j += 2;
            } else {
                return Err(CommandError::Syntax);
            }
        }
        Ok(o)
    }
}

/// ZRANDMEMBER's `count [WITHSCORES]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RandomCount {
    /// Distinct members if positive, independent draws if negative.
    pub count: i64,
    /// WITHSCORES.
    pub withscores: bool,
}

impl RandomCount {
    /// ZRANDMEMBER with a negative count replies that many elements; Redis streams them, we
    /// build the reply in memory, so absurd counts are refused instead of exhausting memory.
    pub const LIMIT: u64 = 1 << 24;

    /// Parses `args[2..]`; `None` when there is no count.
    pub fn parse(args: &[Bytes]) -> Result<Option<RandomCount>, CommandError> {
        let Some(count) = args.get(2) else { return Ok(None) };
        let count = int(count)?;
        if count == i64::MIN {
            return Err(CommandError::err(
                "value is out of range, value must between -9223372036854775807 and 9223372036854775807",
            ));
        }
        if args.len() > 4 || (args.len() == 4 && !is(&args[3], "withscores")) {
            return Err(CommandError::Syntax);
        }
        let withscores = args.len() == 4;
        if withscores && !(-(i64::MAX / 2)..=i64::MAX / 2).contains(&count) {
            return Err(CommandError::err("value is out of range"));
        }
        Ok(Some(RandomCount { count, withscores }))
    }

    /// The forward ranks to reply, in reply order, for a set of `size` members.
    pub fn picks(&self, size: usize, rng: &mut impl Rng) -> Result<Vec<usize>, CommandError> {
        Ok(match self.count {
            0 => Vec::new(),
            // Repetitions allowed (negative count) or a single pick: independent uniform draws.
            n if n < 0 || n == 1 => {
                if n.unsigned_abs() > Self::LIMIT {
                    return Err(CommandError::err("value is out of range"));
                }
                (0..n.unsigned_abs()).map(|_| rng.gen_range(0..size)).collect()
            }
            // At least the whole set: all of it, highest first (Redis's `zuiNext` walks back).
            n if n as u64 >= size as u64 => (0..size).rev().collect(),
            n => {
                let mut picks = rand::seq::index::sample(rng, size, n as usize).into_vec();
                picks.sort_unstable();
                picks
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(line: &str) -> Vec<Bytes> {
        line.split(' ').map(|a| Bytes::copy_from_slice(a.as_bytes())).collect()
    }

    fn err(text: &str) -> CommandError {
        CommandError::Other(text.to_string())
    }

    #[test]
    fn zadd_checks_in_redis_order() {
        let a = argv("ZADD k NX CH 1 a 2.5 b");
        let z = Zadd::parse(&a, false).expect("valid");
        assert!(z.flags.nx && z.ch && !z.flags.xx);
        assert_eq!(z.pairs, [(1.0, &b"a"[..]), (2.5, &b"b"[..])]);
        assert_eq!(Zadd::parse(&argv("ZADD k NX XX 1"), false).err(), Some(CommandError::Syntax));
        let e = Zadd::parse(&argv("ZADD k NX XX x a"), false).err();
        assert_eq!(e, Some(err("ERR XX and NX options at the same time are not compatible")));
        let e = Zadd::parse(&argv("ZADD k INCR 1 a x b"), false).err();
        assert_eq!(e, Some(err("ERR INCR option supports a single increment-element pair")));
        assert_eq!(Zadd::parse(&argv("ZADD k 1 a x b"), false).err(), Some(CommandError::NotFloat));
        assert_eq!(Zadd::parse(&argv("ZINCRBY k nx m"), true).err(), Some(CommandError::Syntax));
    }

    #[test]
    fn range_options() {
        let q = RangeQuery::parse(
            &argv("ZRANGE k (1 5 BYSCORE REV LIMIT 1 2 WITHSCORES"),
            1,
            false,
            None,
            None,
        )
        .expect("valid");
        assert!(q.reverse && q.withscores && q.offset == 1 && q.limit == 2);
        // REV swaps: the first bound given is the maximum.
        assert_eq!(
            q.bounds,
            Bounds::Score(ScoreRange { min: 5.0, max: 1.0, minex: false, maxex: true })
        );
        assert!(RangeQuery::parse(&argv("ZRANGE k 0 -1 LIMIT 0 -1"), 1, false, None, None).is_ok());
        assert!(RangeQuery::parse(&argv("ZRANGE k 0 -1 LIMIT 0 1"), 1, false, None, None).is_err());
        assert!(RangeQuery::parse(&argv("ZRANGESTORE d k 0 -1 WITHSCORES"), 2, true, None, None)
            .is_err());
        assert!(RangeQuery::parse(
            &argv("ZREVRANGE k 0 -1 REV"),
            1,
            false,
            Some(By::Rank),
            Some(true)
        )
        .is_err());
        assert_eq!(rank_span(-2, -1, 5), Some((3, 4)));
        assert_eq!(rank_span(-100, 100, 5), Some((0, 4)));
        assert_eq!(rank_span(3, 1, 5), None);
        assert_eq!(rank_span(5, 9, 5), None);
    }

    #[test]
    fn mpop_and_setop_options() {
        let a = argv("ZMPOP 2 a b MAX COUNT 3");
        let m = Mpop::parse(&a, 1).expect("valid");
        assert_eq!((m.keys.len(), m.max, m.count), (2, true, 3));
        assert_eq!(
            Mpop::parse(&argv("ZMPOP 9223372036854775807 a MIN"), 1).err(),
            Some(CommandError::Syntax)
        );
        assert!(Mpop::parse(&argv("ZMPOP 1 a MIN COUNT 1 COUNT 1"), 1).is_err());
        let a = argv("ZUNION 2 a b WEIGHTS 2 3 AGGREGATE max WITHSCORES");
        let (keys, opts) = setop_keys(&a, 1, "zunion").expect("valid");
        let o = SetOpOptions::parse(opts, keys.len(), SetOp::Union, false).expect("valid");
        assert_eq!((o.weights, o.aggregate, o.withscores), (vec![2.0, 3.0], Aggregate::Max, true));
        assert!(SetOpOptions::parse(&argv("WITHSCORES"), 1, SetOp::Union, true).is_err());
        assert!(SetOpOptions::parse(&argv("WEIGHTS 1"), 1, SetOp::Diff, false).is_err());
        assert_eq!(
            setop_keys(&argv("ZUNION 3 a b"), 1, "zunion").err(),
            Some(CommandError::Syntax)
        );
    }

    #[test]
    fn random_picks() {
        let mut rng = rand::thread_rng();
        let all = RandomCount { count: 10, withscores: false };
        assert_eq!(all.picks(3, &mut rng).expect("fits"), [2, 1, 0]);
        let some = RandomCount { count: 2, withscores: false }.picks(3, &mut rng).expect("fits");
        assert!(some.len() == 2 && some[0] < some[1]);
        assert_eq!(
            RandomCount { count: -5, withscores: false }.picks(1, &mut rng).expect("fits"),
            [0; 5]
        );
        assert!(RandomCount { count: -(1 << 30), withscores: false }.picks(1, &mut rng).is_err());
    }
}
