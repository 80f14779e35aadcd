//! Stream commands, with Redis 7.0.15's replies, error texts, notifications and propagation.
//!
//! This file has the table and the commands on entries (XADD, XRANGE, XREVRANGE, XLEN, XDEL,
//! XTRIM, XSETID); reading (XREAD, XREADGROUP and their blocking) is in `read`, consumer groups
//! (XGROUP, XACK, XPENDING) in `groups`, claims (XCLAIM, XAUTOCLAIM) in `claim`, XINFO in
//! `info`.
//!
//! Propagation follows `t_stream.c`: XADD sends the ID it generated instead of `*`/`ms-*`, and
//! an approximate trim (`~`) is sent as the exact trim it turned out to be (`= <length>` or
//! `= <first id>`), so replicas and the AOF end with the same entries.

mod claim;
mod groups;
pub mod id;
mod info;
mod read;

use bytes::Bytes;
use common::resp::Frame;

use self::id::{id_bytes, id_frame, parse_id, range_end, range_start, strict_id, IdRules};
use crate::cmd::args::{int, is, name};
use crate::cmd::flags::*;
use crate::cmd::{cmd, container, CommandSpec};
use crate::db::stream::{AppendError, Entry, NodeLimits, StreamId, Trim, TrimTo};
use crate::error::{CmdResult, CommandError};
use crate::exec::{Ctx, Exec};
use crate::notify::class::STREAM;

/// The stream commands.
pub static COMMANDS: &[CommandSpec] = &[
    cmd("xadd", -5, WRITE | DENYOOM | FAST, (1, 1, 1), xadd),
    cmd("xrange", -4, READONLY, (1, 1, 1), xrange),
    cmd("xrevrange", -4, READONLY, (1, 1, 1), xrevrange),
    cmd("xlen", 2, READONLY | FAST, (1, 1, 1), xlen),
    cmd("xdel", -3, WRITE | FAST, (1, 1, 1), xdel),
    cmd("xtrim", -4, WRITE, (1, 1, 1), xtrim),
    cmd("xsetid", -3, WRITE | DENYOOM | FAST, (1, 1, 1), xsetid),
    cmd("xread", -4, READONLY | BLOCKING, (0, 0, 0), read::xread),
    cmd("xreadgroup", -7, WRITE | BLOCKING, (0, 0, 0), read::xreadgroup),
    cmd("xack", -4, WRITE | FAST, (1, 1, 1), groups::xack),
    cmd("xpending", -3, READONLY, (1, 1, 1), groups::xpending),
    cmd("xclaim", -6, WRITE | FAST, (1, 1, 1), claim::xclaim),
    cmd("xautoclaim", -6, WRITE | FAST, (1, 1, 1), claim::xautoclaim),
    container("xgroup", -2, 0, groups::XGROUP),
    container("xinfo", -2, 0, info::XINFO),
];

/// Records that the command changed no key as far as WATCH, client-side caching and blocked
/// readers are concerned. Redis signals a stream key only when its entries change (XADD, XDEL,
/// XTRIM) or it is created; XSETID and the consumer-group commands leave WATCH alone and wake
/// nobody (XGROUP DESTROY wakes its group's readers itself).
pub fn touch_nothing(exec: &mut Exec<'_>) {
    exec.modified.get_or_insert_with(Vec::new);
}

/// An entry as replies carry it: `[id, [field, value, …]]`.
pub fn entry_frame(entry: &Entry) -> Frame {
    let mut fields = Vec::with_capacity(entry.fields.len() * 2);
    for (f, v) in &entry.fields {
        fields.push(Frame::Bulk(f.clone()));
        fields.push(Frame::Bulk(v.clone()));
    }
    Frame::Array(vec![id_frame(entry.id), Frame::Array(fields)])
}

fn entries_frame(entries: &[Entry]) -> Frame {
    Frame::Array(entries.iter().map(entry_frame).collect())
}

/// XADD's and XTRIM's options (`streamParseAddOrTrimArgsOrReply`).
#[derive(Debug, Default)]
struct AddTrimArgs {
    /// The explicit ID, and false for `<ms>-*`.
    id: Option<(StreamId, bool)>,
    /// Where the ID (`*` included) is in argv; `argv.len()` if there is none.
    id_pos: usize,
    no_mkstream: bool,
    trim: Option<Trim>,
    /// Where the MAXLEN/MINID value is in argv (rewritten for propagation).
    trim_arg: usize,
}

fn add_trim_args(ctx: &Ctx<'_>, args: &[Bytes], xadd: bool) -> Result<AddTrimArgs, CommandError> {
    let mut parsed = AddTrimArgs::default();
    let (mut to, mut approx, mut limit, mut limit_given) = (None, false, 0i64, false);
    let mut i = 2;
    while i < args.len() {
        let more = args.len() - 1 - i;
        let opt = crate::dispatch::c_str(&args[i]);
        if xadd && opt == b"*" {
            break;
        } else if (is(opt, "maxlen") || is(opt, "minid")) && more > 0 {
            if to.is_some() {
                return Err(CommandError::err(
                    "syntax error, MAXLEN and MINID options at the same time are not compatible",
                ));
            }
            approx = false;
            let next = crate::dispatch::c_str(&args[i + 1]);
            if more >= 2 && next == b"~" {
                approx = true;
                i += 1;
            } else if more >= 2 && next == b"=" {
                i += 1;
            }
            if is(opt, "maxlen") {
                let n = int(&args[i + 1])?;
                if n < 0 {
                    return Err(CommandError::err("The MAXLEN argument must be >= 0."));
                }
                to = Some(TrimTo::MaxLen(n as u64));
            } else {
                to = Some(TrimTo::MinId(strict_id(&args[i + 1])?));
            }
            i += 1;
            parsed.trim_arg = i;
        } else if is(opt, "limit") && more > 0 {
            limit = int(&args[i + 1])?;
            if limit < 0 {
                return Err(CommandError::err("The LIMIT argument must be >= 0."));
            }
            limit_given = true;
            i += 1;
        } else if xadd && is(opt, "nomkstream") {
            parsed.no_mkstream = true;
        } else if xadd {
            let rules = IdRules { missing_seq: 0, strict: true, auto_seq: true };
            parsed.id = Some(parse_id(&args[i], rules)?);
            break;
        } else {
            return Err(CommandError::Syntax);
        }
        i += 1;
    }
    parsed.id_pos = i;
    if limit != 0 && to.is_none() {
        return Err(CommandError::err(
            "syntax error, LIMIT cannot be used without specifying a trimming strategy",
        ));
    }
    if to.is_none() && !xadd {
        return Err(CommandError::err(
            "syntax error, XTRIM must be called with a trimming strategy",
        ));
    }
    if ctx.from_master {
        // Our master's trims are exact already; a LIMIT does not apply to them.
        limit = 0;
    } else if limit_given {
        if !approx {
            return Err(CommandError::err(
                "syntax error, LIMIT cannot be used without the special ~ option",
            ));
        }
    } else if approx {
        // At most 100 nodes' worth.
        limit = 100i64.saturating_mul(NodeLimits::current().max_entries);
        if limit <= 0 {
            limit = 10_000;
        }
        limit = limit.min(1_000_000);
    } else {
        limit = 0;
    }
    let Some(to) = to else { return Ok(parsed) };
    parsed.trim = Some(Trim { to, approx, limit });
    Ok(parsed)
}

/// After an approximate trim, the propagated command trims exactly to what is left.
fn rewrite_trim(argv: &mut [Bytes], at: usize, stream: &crate::db::stream::Stream, to: TrimTo) {
    argv[at - 1] = Bytes::from_static(b"=");
    argv[at] = match to {
        TrimTo::MaxLen(_) => Bytes::from(stream.len().to_string()),
        TrimTo::MinId(_) => id_bytes(stream.edge_id(true, false)),
    };
}

fn xadd(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let parsed = add_trim_args(ctx, args, true)?;
    let fields_at = parsed.id_pos + 1;
    if args.len() < fields_at + 2 || (args.len() - fields_at) % 2 == 1 {
        return Err(CommandError::WrongArity(name(args)));
    }
    if let Some((id, true)) = parsed.id {
        if id == StreamId::MIN {
            return Err(CommandError::err("The ID specified in XADD must be greater than 0-0"));
        }
    }
    let key = &args[1];
    if parsed.no_mkstream && ctx.write_stream(key)?.is_none() {
        return Ok(Frame::Null);
    }
    let now = ctx.now_ms as u64;
    let stream = ctx.stream_or_create(key)?;
    if stream.last_id == StreamId::MAX {
        return Err(CommandError::err(
            "The stream has exhausted the last possible ID, unable to add more items",
        ));
    }
    let (explicit, seq_given) = match parsed.id {
        Some((id, seq_given)) => (Some(id), seq_given),
        None => (None, false),
    };
    let added =
        match stream.append(&args[fields_at..], explicit, seq_given, now, NodeLimits::current()) {
            Ok(id) => id,
            Err(AppendError::IdTooSmall) => {
                return Err(CommandError::err(
                    "The ID specified in XADD is equal or smaller than the target stream top item",
                ))
            }
            Err(AppendError::TooLarge) => {
                return Err(CommandError::err("Elements are too large to be stored"))
            }
        };
    let mut argv = args.to_vec();
    let mut rewritten = false;
    let mut trimmed = false;
    if let Some(trim) = parsed.trim {
        trimmed = stream.trim(trim) > 0;
        if trim.approx {
            rewrite_trim(&mut argv, parsed.trim_arg, stream, trim.to);
            rewritten = true;
        }
    }
    ctx.notify(STREAM, "xadd", key);
    ctx.dirty(1);
    if trimmed {
        ctx.notify(STREAM, "xtrim", key);
    }
    if !seq_given {
        argv[parsed.id_pos] = id_bytes(added);
        rewritten = true;
    }
    if rewritten {
        ctx.propagate_as(argv);
    }
    Ok(id_frame(added))
}

fn range_command(ctx: &mut Ctx<'_>, args: &[Bytes], rev: bool) -> CmdResult {
    let (start_arg, end_arg) = if rev { (&args[3], &args[2]) } else { (&args[2], &args[3]) };
    let start = range_start(start_arg)?;
    let end = range_end(end_arg)?;
    let mut count: i64 = -1;
    let mut j = 4;
    while j < args.len() {
        if is(crate::dispatch::c_str(&args[j]), "count") && j + 1 < args.len() {
            count = int(&args[j + 1])?.max(0);
            j += 2;
        } else {
            return Err(CommandError::Syntax);
        }
    }
    let Some(stream) = ctx.read_stream(&args[1])? else { return Ok(Frame::Array(Vec::new())) };
    if count == 0 {
        return Ok(Frame::NullArray);
    }
    let entries = stream.range(start, end, rev, count.max(0) as usize);
    Ok(entries_frame(&entries))
}

fn xrange(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    range_command(ctx, args, false)
}

fn xrevrange(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    range_command(ctx, args, true)
}

fn xlen(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    Ok(Frame::Integer(ctx.read_stream(&args[1])?.map_or(0, |s| s.len() as i64)))
}

fn xdel(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    if ctx.write_stream(&args[1])?.is_none() {
        return Ok(Frame::Integer(0));
    }
    let ids = args[2..].iter().map(|a| strict_id(a)).collect::<Result<Vec<_>, _>>()?;
    let stream = ctx.write_stream(&args[1])?.expect("looked up above");
    let deleted = stream.delete_ids(&ids);
    if deleted > 0 {
        ctx.notify(STREAM, "xdel", &args[1]);
        ctx.dirty(deleted);
    }
    Ok(Frame::Integer(deleted as i64))
}

fn xtrim(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let parsed = add_trim_args(ctx, args, false)?;
    let trim = parsed.trim.expect("XTRIM's arguments require a strategy");
    let Some(stream) = ctx.write_stream(&args[1])? else { return Ok(Frame::Integer(0)) };
    let deleted = stream.trim(trim);
    if deleted > 0 {
        let mut argv = args.to_vec();
        if trim.approx {
            rewrite_trim(&mut argv, parsed.trim_arg, stream, trim.to);
        }
        ctx.notify(STREAM, "xtrim", &args[1]);
        ctx.dirty(deleted as u64);
        if trim.approx {
            ctx.propagate_as(argv);
        }
    }
    Ok(Frame::Integer(deleted))
}

fn xsetid(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let id = strict_id(&args[2])?;
    let mut entries_added: i64 = -1;
    let mut max_deleted = StreamId::MIN;
    let mut i = 3;
    while i < args.len() {
        let more = args.len() - 1 - i;
        let opt = crate::dispatch::c_str(&args[i]);
        if is(opt, "entriesadded") && more > 0 {
            entries_added = int(&args[i + 1])?;
            if entries_added < 0 {
                return Err(CommandError::err("entries_added must be positive"));
            }
        } else if is(opt, "maxdeletedid") && more > 0 {
            max_deleted = strict_id(&args[i + 1])?;
            if id < max_deleted {
                return Err(CommandError::err(
                    "The ID specified in XSETID is smaller than the provided max_deleted_entry_id",
                ));
            }
        } else {
            return Err(CommandError::Syntax);
        }
        i += 2;
    }
    let Some(stream) = ctx.write_stream(&args[1])? else { return Err(CommandError::NoSuchKey) };
    if !stream.is_empty() {
        let top = stream.last_valid_id().expect("a non-empty stream has a last entry");
        if id < top {
            return Err(CommandError::err(
                "The ID specified in XSETID is smaller than the target stream top item",
            ));
        }
        if entries_added != -1 && stream.len() > entries_added as u64 {
            return Err(CommandError::err(
                "The entries_added specified in XSETID is smaller than the target stream length",
            ));
        }
    }
    stream.last_id = id;
    if entries_added != -1 {
        stream.entries_added = entries_added as u64;
    }
    if max_deleted != StreamId::MIN {
        stream.max_deleted_entry_id = max_deleted;
    }
    ctx.dirty(1);
    touch_nothing(ctx);
    ctx.notify(STREAM, "xsetid", &args[1]);
    Ok(Frame::ok())
}
