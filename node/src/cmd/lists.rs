//! List commands: pushes and pops at both ends, index and range access, LINSERT/LREM/LTRIM/LPOS,
//! moves between lists, and the blocking forms (BLPOP, BRPOP, BLMOVE, BRPOPLPUSH, BLMPOP).
//!
//! Replies and error texts follow Redis 7.0.15's `t_list.c`, including the order in which it
//! checks things (e.g. LINDEX checks the type before parsing the index, LRANGE the reverse), since
//! that order decides which error a client sees.
//!
//! The pure list operations live on [`List`]. This file holds the single-key commands;
//! `blocking` (`lists/blocking.rs`) holds the moves and multi-key pops with their blocking
//! forms, which share one implementation for serving at once and serving when woken.

use crate::notify::class;
use bytes::Bytes;
use common::resp::Frame;

use crate::cmd::args::{int, int_with, is, name};
use crate::cmd::flags::*;
use crate::cmd::{cmd, CommandSpec};
use crate::db::list::{End, List, Placement, PosQuery};
use crate::error::{CmdResult, CommandError};
use crate::exec::{Ctx, Exec};

mod blocking;

use blocking::{blmove, blmpop, blpop, brpop, brpoplpush, lmove, lmpop, rpoplpush};

/// The list commands, with Redis 7.0's arity, flags and key positions. LMPOP and BLMPOP have
/// movable keys, which Redis reports as `0 0 0`; their handlers touch the popped key themselves.
pub static COMMANDS: &[CommandSpec] = &[
    cmd("lpush", -3, WRITE | DENYOOM | FAST, (1, 1, 1), lpush),
    cmd("rpush", -3, WRITE | DENYOOM | FAST, (1, 1, 1), rpush),
    cmd("lpushx", -3, WRITE | DENYOOM | FAST, (1, 1, 1), lpushx),
    cmd("rpushx", -3, WRITE | DENYOOM | FAST, (1, 1, 1), rpushx),
    cmd("linsert", 5, WRITE | DENYOOM, (1, 1, 1), linsert),
    cmd("lpop", -2, WRITE | FAST, (1, 1, 1), lpop),
    cmd("rpop", -2, WRITE | FAST, (1, 1, 1), rpop),
    cmd("lmpop", -4, WRITE, (0, 0, 0), lmpop),
    cmd("llen", 2, READONLY | FAST, (1, 1, 1), llen),
    cmd("lindex", 3, READONLY, (1, 1, 1), lindex),
    cmd("lset", 4, WRITE | DENYOOM, (1, 1, 1), lset),
    cmd("lrange", 4, READONLY, (1, 1, 1), lrange),
    cmd("ltrim", 4, WRITE, (1, 1, 1), ltrim),
    cmd("lpos", -3, READONLY, (1, 1, 1), lpos),
    cmd("lrem", 4, WRITE, (1, 1, 1), lrem),
    cmd("rpoplpush", 3, WRITE | DENYOOM, (1, 2, 1), rpoplpush),
    cmd("lmove", 5, WRITE | DENYOOM, (1, 2, 1), lmove),
    cmd("blpop", -3, WRITE | NOSCRIPT | BLOCKING, (1, -2, 1), blpop),
    cmd("brpop", -3, WRITE | NOSCRIPT | BLOCKING, (1, -2, 1), brpop),
    cmd("brpoplpush", 4, WRITE | DENYOOM | NOSCRIPT | BLOCKING, (1, 2, 1), brpoplpush),
    cmd("blmove", 6, WRITE | DENYOOM | NOSCRIPT | BLOCKING, (1, 2, 1), blmove),
    cmd("blmpop", -5, WRITE | BLOCKING, (0, 0, 0), blmpop),
];

// ---------------------------------------------------------------------------------------------
// Argument parsing

/// `LEFT|RIGHT` (`ERR syntax error` otherwise).
fn end_arg(arg: &[u8]) -> Result<End, CommandError> {
    End::parse(arg).ok_or(CommandError::Syntax)
}

/// A non-negative integer, with `message` for both a non-integer and a negative value, as
/// Redis's `getPositiveLongFromObjectOrReply` words it.
fn non_negative(arg: &[u8], message: &str) -> Result<i64, CommandError> {
    let n = int_with(arg, CommandError::err(message))?;
    if n < 0 {
        return Err(CommandError::err(message));
    }
    Ok(n)
}

/// A count as a length: counts are at most i64::MAX, which fits in usize on 64-bit targets and
/// saturates elsewhere (no list is that long).
fn as_len(n: i64) -> usize {
    usize::try_from(n).unwrap_or(usize::MAX)
}

/// Parses LPOS's options (after `key element`).
fn lpos_query(options: &[Bytes]) -> Result<PosQuery, CommandError> {
    let mut query = PosQuery::default();
    let mut i = 0;
    while i < options.len() {
        let Some(value) = options.get(i + 1) else { return Err(CommandError::Syntax) };
        let option = &options[i];
        if is(option, "rank") {
            query.rank = int(value)?;
            if query.rank == 0 {
                return Err(CommandError::err(
                    "RANK can't be zero: use 1 to start from the first match, 2 from the second ... \
                     or use negative to start from the end of the list",
                ));
            }
        } else if is(option, "count") {
            query.count = Some(non_negative(value, "COUNT can't be negative")?);
        } else if is(option, "maxlen") {
            query.maxlen = non_negative(value, "MAXLEN can't be negative")?;
        } else {
            return Err(CommandError::Syntax);
        }
        i += 2;
    }
    Ok(query)
}

// ---------------------------------------------------------------------------------------------
// Pushes, pops and reads

/// The length of the list at `key` as a write command looks it up (no hit/miss accounting,
/// lazy expiry): 0 if absent, WRONGTYPE if it holds another type.
fn list_len(exec: &mut Exec<'_>, key: &[u8]) -> Result<usize, CommandError> {
    Ok(exec.write_list(key)?.map_or(0, |list| list.len()))
}

/// Elements as an array of bulk strings.
fn bulk_array<'a>(items: impl IntoIterator<Item = &'a crate::db::Sds>) -> Frame {
    Frame::bulk_array(items.into_iter().map(|v| v.as_slice()))
}

fn push_generic(ctx: &mut Ctx<'_>, args: &[Bytes], end: End, only_existing: bool) -> CmdResult {
    let list = if only_existing {
        match ctx.write_list(&args[1])? {
            Some(list) => list,
            None => return Ok(Frame::Integer(0)),
        }
    } else {
        ctx.list_or_create(&args[1])?
    };
    for value in &args[2..] {
        list.push(end, value);
    }
    let len = list.len();
    ctx.dirty(args.len() as u64 - 2);
    ctx.notify(class::LIST, end.push_event(), &args[1]);
    Ok(Frame::Integer(len as i64))
}

fn lpush(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    push_generic(ctx, args, End::Left, false)
}

fn rpush(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    push_generic(ctx, args, End::Right, false)
}

fn lpushx(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    push_generic(ctx, args, End::Left, true)
}

fn rpushx(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    push_generic(ctx, args, End::Right, true)
}

/// `LPOP key [count]`: a bulk string without a count, an array with one (`*0` for count 0,
/// a null array for a missing key).
fn pop_generic(ctx: &mut Ctx<'_>, args: &[Bytes], end: End) -> CmdResult {
    if args.len() > 3 {
        return Err(CommandError::WrongArity(name(args)));
    }
    let count = match args.get(2) {
        Some(arg) => Some(as_len(non_negative(arg, "value is out of range, must be positive")?)),
        None => None,
    };
    let key = &args[1];
    let Some(list) = ctx.write_list(key)? else {
        return Ok(if count.is_some() { Frame::NullArray } else { Frame::Null });
    };
    let (reply, popped) = match count {
        Some(0) => return Ok(Frame::Array(Vec::new())),
        Some(n) => {
            let items = list.pop_many(end, n);
            (bulk_array(&items), items.len())
        }
        None => match list.pop(end) {
            Some(value) => (Frame::bulk(&value), 1),
            None => return Ok(Frame::Null),
        },
    };
    ctx.notify(class::LIST, end.pop_event(), key);
    ctx.remove_if_empty(key);
    ctx.dirty(popped as u64);
    Ok(reply)
}

fn lpop(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    pop_generic(ctx, args, End::Left)
}

fn rpop(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    pop_generic(ctx, args, End::Right)
}

fn llen(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    Ok(Frame::Integer(ctx.read_list(&args[1])?.map_or(0, List::len) as i64))
}

fn lindex(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let Some(list) = ctx.read_list(&args[1])? else { return Ok(Frame::Null) };
    let index = int(&args[2])?;
    Ok(list.get(index).map_or(Frame::Null, |v| Frame::bulk(v)))
}

fn lset(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let list = ctx.write_list(&args[1])?.ok_or(CommandError::NoSuchKey)?;
    let index = int(&args[2])?;
    if !list.set(index, &args[3]) {
        return Err(CommandError::IndexOutOfRange);
    }
    ctx.dirty(1);
    ctx.notify(class::LIST, "lset", &args[1]);
    Ok(Frame::ok())
}

fn lrange(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let (start, end) = (int(&args[2])?, int(&args[3])?);
    Ok(match ctx.read_list(&args[1])? {
        Some(list) => bulk_array(list.range(start, end)),
        None => Frame::Array(Vec::new()),
    })
}

fn ltrim(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let (start, end) = (int(&args[2])?, int(&args[3])?);
    let Some(list) = ctx.write_list(&args[1])? else { return Ok(Frame::ok()) };
    let removed = list.trim(start, end);
    // Redis reports the trim even when it removed nothing.
    ctx.notify(class::LIST, "ltrim", &args[1]);
    ctx.remove_if_empty(&args[1]);
    // Like Redis, a trim that removes nothing does not count as a change (nothing propagates),
    // yet it still invalidates WATCH on the key.
    ctx.dirty(removed as u64);
    let db = ctx.db;
    ctx.ks.signal_modified_key(db, &args[1]);
    Ok(Frame::ok())
}

fn linsert(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let placement = if is(&args[2], "after") {
        Placement::After
    } else if is(&args[2], "before") {
        Placement::Before
    } else {
        return Err(CommandError::Syntax);
    };
    let Some(list) = ctx.write_list(&args[1])? else { return Ok(Frame::Integer(0)) };
    if !list.insert(placement, &args[3], &args[4]) {
        return Ok(Frame::Integer(-1));
    }
    let len = list.len();
    ctx.dirty(1);
    ctx.notify(class::LIST, "linsert", &args[1]);
    Ok(Frame::Integer(len as i64))
}

fn lrem(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let count = int(&args[2])?;
    let Some(list) = ctx.write_list(&args[1])? else { return Ok(Frame::Integer(0)) };
    let removed = list.remove(count, &args[3]);
    if removed > 0 {
        ctx.notify(class::LIST, "lrem", &args[1]);
    }
    ctx.remove_if_empty(&args[1]);
    ctx.dirty(removed as u64);
    Ok(Frame::Integer(removed as i64))
}

fn lpos(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let query = lpos_query(&args[3..])?;
    let Some(list) = ctx.read_list(&args[1])? else {
        return Ok(if query.count.is_some() { Frame::Array(Vec::new()) } else { Frame::Null });
    };
    let found = list.positions(&args[2], query);
    Ok(match query.count {
        Some(_) => Frame::Array(found.into_iter().map(|i| Frame::Integer(i as i64)).collect()),
        None => found.first().map_or(Frame::Null, |&i| Frame::Integer(i as i64)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(line: &str) -> Vec<Bytes> {
        line.split_whitespace().map(|a| Bytes::copy_from_slice(a.as_bytes())).collect()
    }

    fn err(text: &str) -> CommandError {
        CommandError::err(text)
    }

    #[test]
    fn lpos_options_parse_with_redis_errors() {
        let q = |line: &str| lpos_query(&argv(line));
        assert_eq!(q(""), Ok(PosQuery::default()));
        assert_eq!(
            q("RANK -2 count 0 MAXLEN 3"),
            Ok(PosQuery { rank: -2, count: Some(0), maxlen: 3 })
        );
        assert_eq!(q("rank 1 rank 3"), Ok(PosQuery { rank: 3, ..PosQuery::default() }));
        assert!(
            matches!(q("RANK 0"), Err(CommandError::Other(t)) if t.starts_with("ERR RANK can't be zero"))
        );
        assert_eq!(q("RANK x"), Err(CommandError::NotInteger));
        assert_eq!(q("COUNT -1"), Err(err("COUNT can't be negative")));
        assert_eq!(q("COUNT x"), Err(err("COUNT can't be negative")));
        assert_eq!(q("MAXLEN -1"), Err(err("MAXLEN can't be negative")));
        assert_eq!(q("RANK"), Err(CommandError::Syntax));
        assert_eq!(q("FOO 1"), Err(CommandError::Syntax));
    }

    #[test]
    fn table_matches_redis_key_specs() {
        let find = |n: &str| COMMANDS.iter().find(|c| c.name == n).expect("command in table");
        assert_eq!(find("blpop").key_positions(4).collect::<Vec<_>>(), [1, 2]);
        assert_eq!(find("blmove").key_positions(6).collect::<Vec<_>>(), [1, 2]);
        assert_eq!(find("lmpop").key_positions(5).count(), 0);
        assert!(COMMANDS.iter().filter(|c| c.has(BLOCKING)).all(|c| c.has(WRITE)));
    }
}
