//! Sorted-set commands, with Redis 7.0.15's replies, error texts and error order.
//!
//! The data structure and its algorithms live in `crate::db::zset` (encodings, ranges, set
//! algebra) and the argument grammars in `db::zset::args`; this file orders the checks that
//! need the keyspace between the parsing steps as Redis does, shapes replies for RESP2 and
//! RESP3, and applies the write rules.
//!
//! Reply shapes worth knowing (they differ between commands): with scores, ZRANGE & co., the
//! set-algebra commands and ZRANDMEMBER reply flat `[m, s, m, s]` in RESP2 and `[[m, s], …]` in
//! RESP3; ZPOPMIN/ZPOPMAX do so only when a count is given (without one, a flat pair in both);
//! BZPOPMIN/BZPOPMAX reply `[key, m, s]` and ZMPOP/BZMPOP `[key, [[m, s], …]]` in both.
//!
//! Blocking pops share `pop` between the immediate path and `ZPopWaiter::try_serve`, so a
//! served waiter is propagated exactly as the immediate pop would be (`ZPOPMIN key [n]`).

use bytes::Bytes;
use common::resp::{Frame, Protocol};
use rand::Rng;

use crate::blocking::Unblock;
use crate::cmd::args::{block_timeout, cursor};
use crate::cmd::flags::*;
use crate::cmd::keys::{scan_dict, scan_opts, scan_reply};
use crate::cmd::{cmd, CommandSpec};
use crate::db::zset::args::{
    rank_span, Bounds, By, Mpop, RandomCount, RangeQuery, SetOp, SetOpOptions, Zadd,
};
use crate::db::zset::ops::{self, Source, Weighted};
use crate::db::zset::{listpack_score_text, Added, Limits, ZSet};
use crate::db::{Sds, Value};
use crate::error::{CmdResult, CommandError};
use crate::exec::{Ctx, Effect, Exec};
use crate::notify::class::ZSET;

/// The sorted-set commands.
///
/// Key positions are Redis's, except ZRANGESTORE (Redis reports 1 2 1): the dispatcher touches
/// the listed keys after a write, and the source of ZRANGESTORE is not modified, so touching it
/// would abort a WATCH that Redis keeps. ZMPOP and BZMPOP have movable keys (`0 0 0`, as in
/// Redis); their pops touch the popped key themselves (see `pop`).
pub static COMMANDS: &[CommandSpec] = &[
    cmd("zadd", -4, WRITE | DENYOOM | FAST, (1, 1, 1), zadd),
    cmd("zincrby", 4, WRITE | DENYOOM | FAST, (1, 1, 1), zincrby),
    cmd("zrem", -3, WRITE | FAST, (1, 1, 1), zrem),
    cmd("zscore", 3, READONLY | FAST, (1, 1, 1), zscore),
    cmd("zmscore", -3, READONLY | FAST, (1, 1, 1), zmscore),
    cmd("zcard", 2, READONLY | FAST, (1, 1, 1), zcard),
    cmd("zcount", 4, READONLY | FAST, (1, 1, 1), zcount),
    cmd("zlexcount", 4, READONLY | FAST, (1, 1, 1), zlexcount),
    cmd("zrank", 3, READONLY | FAST, (1, 1, 1), zrank),
    cmd("zrevrank", 3, READONLY | FAST, (1, 1, 1), zrevrank),
    cmd("zrange", -4, READONLY, (1, 1, 1), zrange),
    cmd("zrangestore", -5, WRITE | DENYOOM, (1, 1, 1), zrangestore),
    cmd("zrevrange", -4, READONLY, (1, 1, 1), zrevrange),
    cmd("zrangebyscore", -4, READONLY, (1, 1, 1), zrangebyscore),
    cmd("zrevrangebyscore", -4, READONLY, (1, 1, 1), zrevrangebyscore),
    cmd("zrangebylex", -4, READONLY, (1, 1, 1), zrangebylex),
    cmd("zrevrangebylex", -4, READONLY, (1, 1, 1), zrevrangebylex),
    cmd("zremrangebyrank", 4, WRITE, (1, 1, 1), zremrangebyrank),
    cmd("zremrangebyscore", 4, WRITE, (1, 1, 1), zremrangebyscore),
    cmd("zremrangebylex", 4, WRITE, (1, 1, 1), zremrangebylex),
    cmd("zpopmin", -2, WRITE | FAST, (1, 1, 1), zpopmin),
    cmd("zpopmax", -2, WRITE | FAST, (1, 1, 1), zpopmax),
    cmd("bzpopmin", -3, WRITE | NOSCRIPT | BLOCKING | FAST, (1, -2, 1), bzpopmin),
    cmd("bzpopmax", -3, WRITE | NOSCRIPT | BLOCKING | FAST, (1, -2, 1), bzpopmax),
    cmd("zmpop", -4, WRITE, (0, 0, 0), zmpop),
    cmd("bzmpop", -5, WRITE | BLOCKING, (0, 0, 0), bzmpop),
    cmd("zunion", -3, READONLY, (0, 0, 0), zunion),
    cmd("zinter", -3, READONLY, (0, 0, 0), zinter),
    cmd("zdiff", -3, READONLY, (0, 0, 0), zdiff),
    cmd("zintercard", -3, READONLY, (0, 0, 0), zintercard),
    cmd("zunionstore", -4, WRITE | DENYOOM, (1, 1, 1), zunionstore),
    cmd("zinterstore", -4, WRITE | DENYOOM, (1, 1, 1), zinterstore),
    cmd("zdiffstore", -4, WRITE | DENYOOM, (1, 1, 1), zdiffstore),
    cmd("zscan", -3, READONLY, (1, 1, 1), zscan),
    cmd("zrandmember", -2, READONLY, (1, 1, 1), zrandmember),
];

fn resp3(ctx: &Ctx<'_>) -> bool {
    ctx.client.resp == Protocol::Resp3
}

/// Members, optionally with scores: flat pairs in RESP2, `[member, score]` pairs in RESP3.
fn scored<'a>(
    items: impl IntoIterator<Item = (&'a [u8], f64)>,
    withscores: bool,
    resp3: bool,
) -> Frame {
    let mut out = Vec::new();
    for (m, s) in items {
        match (withscores, resp3) {
            (false, _) => out.push(Frame::bulk(m)),
            (true, true) => out.push(Frame::Array(vec![Frame::bulk(m), Frame::Double(s)])),
            (true, false) => out.extend([Frame::bulk(m), Frame::Double(s)]),
        }
    }
    Frame::Array(out)
}

fn owned(items: &[(Sds, f64)]) -> impl Iterator<Item = (&[u8], f64)> {
    items.iter().map(|(m, s)| (m.as_slice(), *s))
}

/// Stores a *STORE result at `dst` (replacing whatever is there, TTL included) and records
/// `event` or, when it is empty, deletes `dst` (recording `del`); replies with the result's
/// size.
fn store(
    ctx: &mut Ctx<'_>,
    dst: &[u8],
    entries: Vec<(Sds, f64)>,
    event: &'static str,
) -> CmdResult {
    let n = entries.len() as i64;
    if entries.is_empty() {
        ctx.clear_destination(dst);
    } else {
        ctx.set(dst, Value::ZSet(Box::new(ZSet::from_sorted(entries, Limits::current()))));
        ctx.dirty(1);
        ctx.notify(ZSET, event, dst);
    }
    Ok(Frame::Integer(n))
}

// ---------------------------------------------------------------------------------------------
// ZADD, ZINCRBY, ZREM and the point reads.

fn zadd(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    zadd_generic(ctx, args, false)
}

fn zincrby(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    zadd_generic(ctx, args, true)
}

fn zadd_generic(ctx: &mut Ctx<'_>, args: &[Bytes], incr: bool) -> CmdResult {
    let Zadd { flags, ch, pairs } = Zadd::parse(args, incr)?;
    let key = &args[1];
    let (mut added, mut updated, mut last) = (0, 0, None);
    // XX never creates the key; otherwise the key is created (and always gets a member).
    if ctx.write_zset(key)?.is_some() || !flags.xx {
        let limits = Limits::current();
        let z = ctx.zset_or_create(key)?;
        for (score, member) in pairs {
            match z.add(member, score, flags, limits) {
                Err(_) => return Err(CommandError::err("resulting score is not a number (NaN)")),
                Ok(Added::New(s)) => (added, last) = (added + 1, Some(s)),
                Ok(Added::Updated(s)) => (updated, last) = (updated + 1, Some(s)),
                Ok(Added::Same(s)) => last = Some(s),
                Ok(Added::Skipped) => {}
            }
        }
        ctx.dirty(added + updated);
        if added + updated > 0 {
            ctx.notify(ZSET, if flags.incr { "zincr" } else { "zadd" }, key);
        }
    }
    Ok(match (flags.incr, last) {
        (true, Some(score)) => Frame::Double(score),
        (true, None) => Frame::Null,
        (false, _) => Frame::Integer((if ch { added + updated } else { added }) as i64),
    })
}

fn zrem(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let Some(z) = ctx.write_zset(&args[1])? else { return Ok(Frame::Integer(0)) };
    let mut deleted = 0;
    for member in &args[2..] {
        deleted += z.remove(member) as u64;
        if z.is_empty() {
            break;
        }
    }
    if deleted > 0 {
        ctx.notify(ZSET, "zrem", &args[1]);
    }
    // `del` (when emptied) follows `zrem`, as in Redis.
    ctx.remove_if_empty(&args[1]);
    ctx.dirty(deleted);
    Ok(Frame::Integer(deleted as i64))
}

fn zscore(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let score = ctx.read_zset(&args[1])?.and_then(|z| z.score(&args[2]));
    Ok(score.map_or(Frame::Null, Frame::Double))
}

fn zmscore(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let z = ctx.read_zset(&args[1])?;
    let scores =
        args[2..].iter().map(|m| z.and_then(|z| z.score(m)).map_or(Frame::Null, Frame::Double));
    Ok(Frame::Array(scores.collect()))
}

fn zcard(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    Ok(Frame::Integer(ctx.read_zset(&args[1])?.map_or(0, |z| z.len() as i64)))
}

fn zcount_generic(ctx: &mut Ctx<'_>, args: &[Bytes], by: By) -> CmdResult {
    let bounds = Bounds::parse(&args[2], &args[3], by)?;
    let Some(z) = ctx.read_zset(&args[1])? else { return Ok(Frame::Integer(0)) };
    let n = match &bounds {
        Bounds::Score(r) => z.count_in_range(r),
        Bounds::Lex(r) => z.count_in_range(r),
        Bounds::Rank(..) => unreachable!("ZCOUNT and ZLEXCOUNT parse score or lex bounds"),
    };
    Ok(Frame::Integer(n as i64))
}

fn zcount(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    zcount_generic(ctx, args, By::Score)
}

fn zlexcount(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    zcount_generic(ctx, args, By::Lex)
}

fn zrank_generic(ctx: &mut Ctx<'_>, args: &[Bytes], reverse: bool) -> CmdResult {
    let rank = ctx.read_zset(&args[1])?.and_then(|z| z.rank(&args[2], reverse));
    Ok(rank.map_or(Frame::Null, |r| Frame::Integer(r as i64)))
}

fn zrank(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    zrank_generic(ctx, args, false)
}

fn zrevrank(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    zrank_generic(ctx, args, true)
}

// ---------------------------------------------------------------------------------------------
// ZRANGE and friends, ZREMRANGEBY*.

fn zrange_generic(
    ctx: &mut Ctx<'_>,
    args: &[Bytes],
    by: Option<By>,
    reverse: Option<bool>,
) -> CmdResult {
    let q = RangeQuery::parse(args, 1, false, by, reverse)?;
    let resp3 = resp3(ctx);
    let Some(z) = ctx.read_zset(&args[1])? else { return Ok(Frame::Array(Vec::new())) };
    Ok(scored(q.select(z), q.withscores, resp3))
}

fn zrange(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    zrange_generic(ctx, args, None, None)
}

fn zrevrange(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    zrange_generic(ctx, args, Some(By::Rank), Some(true))
}

fn zrangebyscore(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    zrange_generic(ctx, args, Some(By::Score), Some(false))
}

fn zrevrangebyscore(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    zrange_generic(ctx, args, Some(By::Score), Some(true))
}

fn zrangebylex(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    zrange_generic(ctx, args, Some(By::Lex), Some(false))
}

fn zrevrangebylex(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    zrange_generic(ctx, args, Some(By::Lex), Some(true))
}

fn zrangestore(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let q = RangeQuery::parse(args, 2, true, None, None)?;
    let mut entries: Vec<(Sds, f64)> = match ctx.read_zset(&args[2])? {
        Some(z) => q.select(z).into_iter().map(|(m, s)| (Sds::from_slice(m), s)).collect(),
        None => Vec::new(),
    };
    if q.reverse {
        entries.reverse();
    }
    store(ctx, &args[1], entries, "zrangestore")
}

fn zremrange(ctx: &mut Ctx<'_>, args: &[Bytes], by: By) -> CmdResult {
    let event = match by {
        By::Rank => "zremrangebyrank",
        By::Score => "zremrangebyscore",
        By::Lex => "zremrangebylex",
    };
    let bounds = Bounds::parse(&args[2], &args[3], by)?;
    let Some(z) = ctx.write_zset(&args[1])? else { return Ok(Frame::Integer(0)) };
    let deleted = match &bounds {
        Bounds::Rank(start, end) => match rank_span(*start, *end, z.len()) {
            Some((start, end)) => z.remove_ranks(start, end),
            None => 0,
        },
        Bounds::Score(r) => z.remove_in_range(r),
        Bounds::Lex(r) => z.remove_in_range(r),
    };
    if deleted > 0 {
        ctx.notify(ZSET, event, &args[1]);
    }
    ctx.remove_if_empty(&args[1]);
    ctx.dirty(deleted as u64);
    Ok(Frame::Integer(deleted as i64))
}

fn zremrangebyrank(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    zremrange(ctx, args, By::Rank)
}

fn zremrangebyscore(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    zremrange(ctx, args, By::Score)
}

fn zremrangebylex(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    zremrange(ctx, args, By::Lex)
}

// ---------------------------------------------------------------------------------------------
// Pops, blocking pops.

/// How a pop is propagated.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Propagate {
    /// As the client sent it (ZPOPMIN, ZPOPMAX).
    AsSent,
    /// As `ZPOPMIN|ZPOPMAX key` (BZPOPMIN, BZPOPMAX).
    Single,
    /// As `ZPOPMIN|ZPOPMAX key n`, n = what was popped (ZMPOP, BZMPOP).
    Counted,
}

/// Pops up to `count` elements from the zset at `key` (which the caller checked), deletes the
/// key if it empties, counts the changes, touches WATCH (ZMPOP/BZMPOP keys are outside the key
/// spec) and records the propagated form. Shared by the immediate and the blocked paths.
fn pop(
    exec: &mut Exec<'_>,
    key: &Bytes,
    max: bool,
    count: usize,
    propagate: Propagate,
) -> Vec<(Sds, f64)> {
    let Ok(Some(z)) = exec.write_zset(key) else { return Vec::new() };
    let take = count.min(z.len());
    let popped: Vec<(Sds, f64)> = (0..take).map_while(|_| z.pop(max)).collect();
    if !popped.is_empty() {
        exec.notify(ZSET, if max { "zpopmax" } else { "zpopmin" }, key);
    }
    exec.remove_if_empty(key);
    exec.dirty(popped.len() as u64);
    exec.ks.signal_modified_key(exec.db, key);
    let name = Bytes::from_static(if max { b"ZPOPMAX" } else { b"ZPOPMIN" });
    match propagate {
        Propagate::AsSent => {}
        Propagate::Single => exec.propagate_as(vec![name, key.clone()]),
        Propagate::Counted => {
            exec.propagate_as(vec![name, key.clone(), Bytes::from(take.to_string())])
        }
    }
    popped
}

/// BZPOPMIN/BZPOPMAX's `[key, member, score]`.
fn bzpop_reply(key: &Bytes, popped: &[(Sds, f64)]) -> Frame {
    let mut out = vec![Frame::Bulk(key.clone())];
    for (m, s) in popped {
        out.extend([Frame::bulk(m), Frame::Double(*s)]);
    }
    Frame::Array(out)
}

/// ZMPOP/BZMPOP's `[key, [[member, score], …]]`.
fn mpop_reply(key: &Bytes, popped: &[(Sds, f64)]) -> Frame {
    Frame::Array(vec![Frame::Bulk(key.clone()), scored(owned(popped), true, true)])
}

fn zpop_generic(ctx: &mut Ctx<'_>, args: &[Bytes], max: bool) -> CmdResult {
    let count = crate::db::zset::args::pop_count(args)?;
    let key = &args[1];
    if ctx.write_zset(key)?.is_none() || count == Some(0) {
        return Ok(Frame::Array(Vec::new()));
    }
    let popped = pop(ctx, key, max, count.unwrap_or(1), Propagate::AsSent);
    Ok(scored(owned(&popped), true, count.is_some() && resp3(ctx)))
}

fn zpopmin(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    zpop_generic(ctx, args, false)
}

fn zpopmax(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    zpop_generic(ctx, args, true)
}

/// A client blocked in BZPOPMIN/BZPOPMAX (`count: None`) or BZMPOP.
struct ZPopWaiter {
    max: bool,
    count: Option<usize>,
}

impl ZPopWaiter {
    fn serve(&self, exec: &mut Exec<'_>, key: &Bytes) -> Frame {
        match self.count {
            None => bzpop_reply(key, &pop(exec, key, self.max, 1, Propagate::Single)),
            Some(n) => mpop_reply(key, &pop(exec, key, self.max, n, Propagate::Counted)),
        }
    }
}

impl Unblock for ZPopWaiter {
    fn try_serve(&self, exec: &mut Exec<'_>, key: &Bytes) -> Option<Frame> {
        match exec.write_zset(key) {
            Ok(Some(z)) if !z.is_empty() => Some(self.serve(exec, key)),
            _ => None,
        }
    }
}

/// Serves from the first non-empty zset among `keys`, or blocks on all of them.
fn block_or_serve(
    ctx: &mut Ctx<'_>,
    keys: &[Bytes],
    timeout: &[u8],
    waiter: ZPopWaiter,
) -> CmdResult {
    let timeout = block_timeout(timeout)?;
    for key in keys {
        if ctx.write_zset(key)?.is_some_and(|z| !z.is_empty()) {
            return Ok(waiter.serve(ctx, key));
        }
    }
    let op = Box::new(waiter);
    ctx.effect =
        Some(Effect::Block { keys: keys.to_vec(), timeout, op, on_timeout: Frame::NullArray });
    Ok(Frame::NullArray)
}

fn bzpopmin(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let (keys, timeout) = args[1..].split_at(args.len() - 2);
    block_or_serve(ctx, keys, &timeout[0], ZPopWaiter { max: false, count: None })
}

fn bzpopmax(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let (keys, timeout) = args[1..].split_at(args.len() - 2);
    block_or_serve(ctx, keys, &timeout[0], ZPopWaiter { max: true, count: None })
}

fn zmpop(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let Mpop { keys, max, count } = Mpop::parse(args, 1)?;
    for key in keys {
        if ctx.write_zset(key)?.is_some() {
            return Ok(mpop_reply(key, &pop(ctx, key, max, count, Propagate::Counted)));
        }
    }
    Ok(Frame::NullArray)
}

fn bzmpop(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let Mpop { keys, max, count } = Mpop::parse(args, 2)?;
    block_or_serve(ctx, keys, &args[1], ZPopWaiter { max, count: Some(count) })
}

// ---------------------------------------------------------------------------------------------
// ZUNION, ZINTER, ZDIFF, ZINTERCARD and the STORE forms (`zunionInterDiffGenericCommand`).

fn setop(ctx: &mut Ctx<'_>, args: &[Bytes], op: SetOp, dst: Option<&Bytes>) -> CmdResult {
    let name = crate::cmd::args::name(args);
    let (keys, options) =
        crate::db::zset::args::setop_keys(args, if dst.is_some() { 2 } else { 1 }, &name)?;
    // Redis reads (and type-checks) every input before looking at the options.
    for key in keys {
        if ctx.lookup_read(key).is_some_and(|v| !matches!(v, Value::ZSet(_) | Value::Set(_))) {
            return Err(CommandError::WrongType);
        }
    }
    let o = SetOpOptions::parse(options, keys.len(), op, dst.is_some())?;
    let resp3 = resp3(ctx);
    let now = ctx.now_ms;
    let db = ctx.db_ref();
    let sources: Vec<Source<'_>> = keys
        .iter()
        .map(|k| match db.keys.get(k) {
            // On a replica an expired key is hidden, not deleted.
            _ if db.is_expired(k, now) => Source::Missing,
            Some(Value::ZSet(z)) => Source::ZSet(z),
            Some(Value::Set(s)) => Source::Set(s),
            _ => Source::Missing,
        })
        .collect();
    let weighted = || {
        sources.iter().zip(&o.weights).map(|(s, w)| Weighted { source: *s, weight: *w }).collect()
    };
    let result = match op {
        SetOp::Union => ops::union(weighted(), o.aggregate),
        SetOp::Inter => ops::inter(weighted(), o.aggregate),
        SetOp::Diff => ops::diff(&sources),
        SetOp::InterCard => return Ok(Frame::Integer(ops::inter_card(weighted(), o.limit) as i64)),
    };
    match dst {
        Some(dst) => {
            let event = match op {
                SetOp::Union => "zunionstore",
                SetOp::Inter => "zinterstore",
                SetOp::Diff => "zdiffstore",
                SetOp::InterCard => unreachable!("ZINTERCARD replied above"),
            };
            store(ctx, dst, result, event)
        }
        None => Ok(scored(owned(&result), o.withscores, resp3)),
    }
}

fn zunion(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    setop(ctx, args, SetOp::Union, None)
}

fn zinter(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    setop(ctx, args, SetOp::Inter, None)
}

fn zdiff(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    setop(ctx, args, SetOp::Diff, None)
}

fn zintercard(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    setop(ctx, args, SetOp::InterCard, None)
}

fn zunionstore(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    setop(ctx, args, SetOp::Union, Some(&args[1]))
}

fn zinterstore(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    setop(ctx, args, SetOp::Inter, Some(&args[1]))
}

fn zdiffstore(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    setop(ctx, args, SetOp::Diff, Some(&args[1]))
}

// ---------------------------------------------------------------------------------------------
// ZSCAN, ZRANDMEMBER.

fn zscan(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let start = cursor(&args[2])?;
    // Options are checked after the key, as Redis does: a missing key never reports them.
    let opts = scan_opts(args, 3, false);
    let Some(z) = ctx.read_zset(&args[1])? else { return Ok(scan_reply(0, Vec::new())) };
    let opts = opts?;
    let mut items = Vec::new();
    let next = match z.dict() {
        // A listpack is returned whole, cursor 0, with scores as the listpack stores them.
        None => {
            for (m, s) in z.iter() {
                if opts.pattern.as_ref().is_none()
                    || opts.pattern.as_ref().is_some_and(|p| common::glob::matches(p, m, false))
                {
                    items
                        .extend([Frame::bulk(m), Frame::Bulk(Bytes::from(listpack_score_text(s)))]);
                }
            }
            0
        }
        Some(dict) => {
            let (next, found) = scan_dict(dict, start, &opts);
            for (m, s) in found {
                items.extend([
                    Frame::bulk(&m),
                    Frame::Bulk(Bytes::from(common::fmt::format_double(s))),
                ]);
            }
            next
        }
    };
    Ok(scan_reply(next, items))
}

fn zrandmember(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let Some(count) = RandomCount::parse(args)? else {
        let Some(z) = ctx.read_zset(&args[1])? else { return Ok(Frame::Null) };
        let pick = rand::thread_rng().gen_range(0..z.len());
        return Ok(z.get(pick).map_or(Frame::Null, |(m, _)| Frame::bulk(m)));
    };
    let resp3 = resp3(ctx);
    let Some(z) = ctx.read_zset(&args[1])? else { return Ok(Frame::Array(Vec::new())) };
    let picks = count.picks(z.len(), &mut rand::thread_rng())?;
    Ok(scored(picks.into_iter().filter_map(|i| z.get(i)), count.withscores, resp3))
}

#[cfg(test)]
mod tests {

    use tokio::io::AsyncWriteExt;
    use tokio::net::TcpStream;

    use super::*;
    use crate::db::Keyspace;
    use crate::exec::Propagated;
    use crate::testing::TestServer;

    fn b(s: &str) -> Bytes {
        Bytes::copy_from_slice(s.as_bytes())
    }

    fn zset(pairs: &[(&str, f64)]) -> Value {
        let mut entries: Vec<(Sds, f64)> =
            pairs.iter().map(|(m, s)| (Sds::from_slice(m.as_bytes()), *s)).collect();
        entries.sort_by(|x, y| crate::db::zset::order((x.1, &x.0), (y.1, &y.0)));
        Value::ZSet(Box::new(ZSet::from_sorted(entries, Limits { entries: 128, value: 64 })))
    }

    #[test]
    fn served_waiters_pop_and_propagate_as_zpop() {
        let mut ks = Keyspace::new(1);
        ks.dbs[0].keys.insert(b"k", zset(&[("a", 1.0), ("b", 2.0), ("c", 3.0)]));
        let mut exec = Exec::new(&mut ks, 0, 0, false);
        exec.propagating = true;
        let single = ZPopWaiter { max: false, count: None };
        let frame = single.try_serve(&mut exec, &b("k")).expect("served");
        assert_eq!(
            frame,
            Frame::Array(vec![Frame::Bulk(b("k")), Frame::bulk(b"a"), Frame::Double(1.0)])
        );
        let counted = ZPopWaiter { max: true, count: Some(5) };
        let frame = counted.try_serve(&mut exec, &b("k")).expect("served");
        let pair = |m: &[u8], s| Frame::Array(vec![Frame::bulk(m), Frame::Double(s)]);
        assert_eq!(
            frame,
            Frame::Array(vec![
                Frame::Bulk(b("k")),
                Frame::Array(vec![pair(b"c", 3.0), pair(b"b", 2.0)])
            ])
        );
        assert_eq!(
            exec.rewrites.take().expect("rewritten"),
            [
                Propagated { db: 0, argv: vec![b("ZPOPMIN"), b("k")] },
                Propagated { db: 0, argv: vec![b("ZPOPMAX"), b("k"), b("2")] },
            ]
        );
        assert!(single.try_serve(&mut exec, &b("k")).is_none(), "the emptied key was deleted");
        drop(exec);
        assert_eq!(ks.dirty, 3);
        assert!(!ks.dbs[0].keys.contains_key(b"k"));
        ks.dbs[0].keys.insert(b"s", Value::string(b"x"));
        let mut exec = Exec::new(&mut ks, 0, 0, false);
        exec.propagating = true;
        assert!(single.try_serve(&mut exec, &b("s")).is_none(), "another type does not serve");
    }

    #[test]
    fn served_waiters_record_their_pop_then_the_del_of_the_emptied_key() {
        let mut ks = Keyspace::new(1);
        ks.notify = crate::notify::EventFlags::parse("KEA").expect("valid flags");
        ks.dbs[0].keys.insert(b"k", zset(&[("a", 1.0), ("b", 2.0)]));
        let mut exec = Exec::new(&mut ks, 0, 0, false);
        ZPopWaiter { max: false, count: None }.try_serve(&mut exec, &b("k")).expect("served");
        ZPopWaiter { max: true, count: Some(5) }.try_serve(&mut exec, &b("k")).expect("served");
        let events = exec.ks.event_log();
        let k = &b"k"[..];
        assert_eq!(events, [("zpopmin", k), ("zpopmax", k), ("del", k)]);
    }

    async fn send(s: &mut TcpStream, line: &str) {
        s.write_all(format!("{line}\r\n").as_bytes()).await.expect("write");
    }

    async fn reply(s: &mut TcpStream) -> Frame {
        crate::testing::read_frame(s, &mut Vec::new()).await
    }

    fn text(f: &str) -> Frame {
        Frame::bulk(f.as_bytes())
    }

    #[tokio::test]
    async fn blocked_clients_are_served_oldest_first() {
        let server = TestServer::start("").await;
        let mut first = TcpStream::connect(server.addr).await.expect("connect");
        let mut second = TcpStream::connect(server.addr).await.expect("connect");
        let mut writer = TcpStream::connect(server.addr).await.expect("connect");
        send(&mut first, "BZPOPMIN other k 5").await;
        server.wait_blocked(1).await;
        send(&mut second, "BZMPOP 5 1 k MAX COUNT 5").await;
        server.wait_blocked(2).await;
        // A value of another type wakes nobody.
        send(&mut writer, "SET k x").await;
        assert_eq!(reply(&mut writer).await, Frame::ok());
        send(&mut writer, "DEL k").await;
        assert_eq!(reply(&mut writer).await, Frame::Integer(1));
        server.wait_blocked(2).await;
        send(&mut writer, "ZADD k 1 a 2 b 3 c").await;
        assert_eq!(reply(&mut writer).await, Frame::Integer(3));
        assert_eq!(reply(&mut first).await, Frame::Array(vec![text("k"), text("a"), text("1")]));
        let pair = |m: &str, s: &str| Frame::Array(vec![text(m), text(s)]);
        assert_eq!(
            reply(&mut second).await,
            Frame::Array(vec![text("k"), Frame::Array(vec![pair("c", "3"), pair("b", "2")])])
        );
        send(&mut writer, "EXISTS k").await;
        assert_eq!(reply(&mut writer).await, Frame::Integer(0));
        server.stop().await;
    }

    #[tokio::test]
    async fn blocked_pop_times_out_with_a_null_array() {
        let server = TestServer::start("").await;
        let mut c = TcpStream::connect(server.addr).await.expect("connect");
        send(&mut c, "BZPOPMAX k 0.05").await;
        assert_eq!(reply(&mut c).await, Frame::NullArray);
        send(&mut c, "BZMPOP 0.05 2 k j MIN").await;
        assert_eq!(reply(&mut c).await, Frame::NullArray);
        server.wait_blocked(0).await;
        server.stop().await;
    }

    #[tokio::test]
    async fn zunionstore_into_a_watched_key_aborts_exec_and_wakes_waiters() {
        let server = TestServer::start("").await;
        let mut watcher = TcpStream::connect(server.addr).await.expect("connect");
        let mut waiter = TcpStream::connect(server.addr).await.expect("connect");
        let mut writer = TcpStream::connect(server.addr).await.expect("connect");
        send(&mut writer, "ZADD src 1 a").await;
        assert_eq!(reply(&mut writer).await, Frame::Integer(1));
        send(&mut watcher, "WATCH dst src").await;
        assert_eq!(reply(&mut watcher).await, Frame::ok());
        send(&mut waiter, "BZPOPMIN dst 5").await;
        server.wait_blocked(1).await;
        send(&mut writer, "ZUNIONSTORE dst 1 src").await;
        assert_eq!(reply(&mut writer).await, Frame::Integer(1));
        assert_eq!(reply(&mut waiter).await, Frame::Array(vec![text("dst"), text("a"), text("1")]));
        send(&mut watcher, "MULTI").await;
        assert_eq!(reply(&mut watcher).await, Frame::ok());
        send(&mut watcher, "PING").await;
        assert_eq!(reply(&mut watcher).await, Frame::simple("QUEUED"));
        send(&mut watcher, "EXEC").await;
        assert_eq!(reply(&mut watcher).await, Frame::NullArray);
        // ZRANGESTORE does not touch its source: a WATCH on it survives.
        send(&mut watcher, "WATCH src").await;
        assert_eq!(reply(&mut watcher).await, Frame::ok());
        send(&mut writer, "ZRANGESTORE other src 0 -1").await;
        assert_eq!(reply(&mut writer).await, Frame::Integer(1));
        send(&mut watcher, "MULTI").await;
        assert_eq!(reply(&mut watcher).await, Frame::ok());
        send(&mut watcher, "PING").await;
        assert_eq!(reply(&mut watcher).await, Frame::simple("QUEUED"));
        send(&mut watcher, "EXEC").await;
        assert_eq!(reply(&mut watcher).await, Frame::Array(vec![Frame::simple("PONG")]));
        server.stop().await;
    }
}
