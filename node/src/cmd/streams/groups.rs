//! Consumer groups: XGROUP (CREATE, SETID, DESTROY, CREATECONSUMER, DELCONSUMER, HELP), XACK,
//! XPENDING, XCLAIM and XAUTOCLAIM.
//!
//! XCLAIM and XAUTOCLAIM never propagate as sent: each claim (and each pending entry dropped
//! because its entry is gone) is propagated as the same `XCLAIM … FORCE JUSTID LASTID` that
//! XREADGROUP sends, and a LASTID that moved the group alone as `XGROUP SETID`.

use bytes::Bytes;
use common::resp::Frame;

use super::entry_frame;
use super::id::{id_bytes, id_frame, parse_id, range_end, range_start, strict_id, IdRules};
use super::read::{setid_argv, xclaim_argv};
use crate::cmd::args::{int, int_with, is};
use crate::cmd::flags::*;
use crate::cmd::server::subcommand_syntax;
use crate::cmd::{cmd, CommandSpec};
use crate::db::stream::{ConsumerGroup, PendingEntry, Stream, StreamId, ENTRIES_READ_UNKNOWN};
use crate::error::{CmdResult, CommandError};
use crate::exec::{Ctx, Exec};
use crate::notify::class::STREAM;

/// XGROUP's subcommands.
pub(super) static XGROUP: &[CommandSpec] = &[
    cmd("create", -5, WRITE | DENYOOM, (2, 2, 1), xgroup),
    cmd("setid", -5, WRITE, (2, 2, 1), xgroup),
    cmd("destroy", 4, WRITE, (2, 2, 1), xgroup),
    cmd("createconsumer", 5, WRITE | DENYOOM, (2, 2, 1), xgroup),
    cmd("delconsumer", 5, WRITE, (2, 2, 1), xgroup),
    cmd("help", 2, LOADING | STALE, (0, 0, 0), xgroup_help),
];

fn xgroup_help(_: &mut Ctx<'_>, _: &[Bytes]) -> CmdResult {
    Ok(crate::cmd::help::reply(
        "XGROUP",
        &[
            ("CREATE <key> <groupname> <id|$> [option]", "Create a new consumer group."),
            ("    * MKSTREAM", "  Create the empty stream if it does not exist."),
            ("    * ENTRIESREAD entries_read", "  Set the group's entries_read counter."),
            ("CREATECONSUMER <key> <groupname> <consumer>", "Create a new consumer."),
            ("DELCONSUMER <key> <groupname> <consumer>", "Remove the specified consumer."),
            ("DESTROY <key> <groupname>", "Remove the specified group."),
            ("SETID <key> <groupname> <id|$> [ENTRIESREAD entries_read]", "Set the group's ID."),
        ],
    ))
}

/// An error quoting two client strings (a key, a group) as C strings, between fixed words.
fn nogroup(prefix: &str, first: &[u8], middle: &str, second: &[u8], suffix: &str) -> CommandError {
    let mut text = prefix.as_bytes().to_vec();
    text.extend_from_slice(crate::dispatch::c_str(first));
    text.extend_from_slice(middle.as_bytes());
    text.extend_from_slice(crate::dispatch::c_str(second));
    text.extend_from_slice(suffix.as_bytes());
    CommandError::Bytes(Bytes::from(text))
}

/// `NOGROUP No such key '<k>' or consumer group '<g>'` (XPENDING, XCLAIM, XAUTOCLAIM).
fn no_key_or_group(key: &[u8], group: &[u8]) -> CommandError {
    nogroup("NOGROUP No such key '", key, "' or consumer group '", group, "'")
}

/// XGROUP's subcommands on a key, with `xgroupCommand`'s shared checks first.
fn xgroup(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let sub = crate::dispatch::c_str(&args[1]).to_ascii_lowercase();
    let sub = sub.as_slice();
    let syntax = || subcommand_syntax(&args[1], "XGROUP");
    let (mut mkstream, mut entries_read) = (false, ENTRIES_READ_UNKNOWN);
    let mut i = 5;
    while i < args.len() {
        let opt = crate::dispatch::c_str(&args[i]);
        if sub == b"create" && is(opt, "mkstream") {
            mkstream = true;
            i += 1;
        } else if (sub == b"create" || sub == b"setid")
            && is(opt, "entriesread")
            && i + 1 < args.len()
        {
            entries_read = int(&args[i + 1])?;
            if entries_read < 0 && entries_read != ENTRIES_READ_UNKNOWN {
                return Err(CommandError::err("value for ENTRIESREAD must be positive or -1"));
            }
            i += 2;
        } else {
            return Err(syntax());
        }
    }
    let (key, name) = (&args[2], &args[3]);
    if !mkstream {
        let Some(stream) = ctx.write_stream(key)? else {
            return Err(CommandError::err(
                "The XGROUP subcommand requires the key to exist. Note that for CREATE you may \
                 want to use the MKSTREAM option to create an empty stream automatically.",
            ));
        };
        let needs_group = matches!(sub, b"setid" | b"createconsumer" | b"delconsumer");
        if needs_group && !stream.groups.contains_key(&**name) {
            let prefix = "NOGROUP No such consumer group '";
            return Err(nogroup(prefix, name, "' for key name '", key, "'"));
        }
    }
    let now = ctx.now_ms.max(0) as u64;
    match sub {
        b"create" if args.len() <= 8 => {
            let id = if crate::dispatch::c_str(&args[4]) == b"$" {
                ctx.write_stream(key)?.map_or(StreamId::MIN, |s| s.last_id)
            } else {
                strict_id(&args[4])?
            };
            let stream = ctx.stream_or_create(key)?;
            if stream.groups.contains_key(&**name) {
                return Err(CommandError::raw("BUSYGROUP Consumer Group name already exists"));
            }
            stream.groups.insert(name.to_vec().into(), ConsumerGroup::new(id, entries_read));
            ctx.dirty(1);
            ctx.notify(STREAM, "xgroup-create", key);
            Ok(Frame::ok())
        }
        b"setid" if args.len() == 5 || args.len() == 7 => {
            let stream = ctx.write_stream(key)?.expect("checked above");
            let id = if crate::dispatch::c_str(&args[4]) == b"$" {
                stream.last_id
            } else {
                parse_id(&args[4], IdRules::bound(0))?.0
            };
            let group = stream.groups.get_mut(&**name).expect("checked above");
            group.last_id = id;
            group.entries_read = entries_read;
            ctx.dirty(1);
            ctx.keep_waiters = true;
            ctx.notify(STREAM, "xgroup-setid", key);
            Ok(Frame::ok())
        }
        b"destroy" => {
            let stream = ctx.write_stream(key)?.expect("checked above");
            if stream.groups.remove(&**name).is_none() {
                return Ok(Frame::Integer(0));
            }
            ctx.dirty(1);
            ctx.notify(STREAM, "xgroup-destroy", key);
            Ok(Frame::Integer(1))
        }
        b"createconsumer" => {
            let stream = ctx.write_stream(key)?.expect("checked above");
            let group = stream.groups.get_mut(&**name).expect("checked above");
            let created = group.create_consumer(&args[4], now);
            if created {
                ctx.dirty(1);
                ctx.notify(STREAM, "xgroup-createconsumer", key);
            }
            Ok(Frame::Integer(created as i64))
        }
        b"delconsumer" => {
            let stream = ctx.write_stream(key)?.expect("checked above");
            let group = stream.groups.get_mut(&**name).expect("checked above");
            let Some(pending) = group.delete_consumer(&args[4]) else {
                return Ok(Frame::Integer(0));
            };
            ctx.dirty(1);
            ctx.notify(STREAM, "xgroup-delconsumer", key);
            Ok(Frame::Integer(pending as i64))
        }
        _ => Err(syntax()),
    }
}

pub(super) fn xack(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let has_group = match ctx.read_stream(&args[1])? {
        Some(stream) => stream.groups.contains_key(&*args[2]),
        None => false,
    };
    if !has_group {
        return Ok(Frame::Integer(0));
    }
    let ids = args[3..].iter().map(|a| strict_id(a)).collect::<Result<Vec<_>, _>>()?;
    let stream = ctx.write_stream(&args[1])?.expect("read above");
    let group = stream.groups.get_mut(&*args[2]).expect("found above");
    let acked = ids.iter().filter(|id| group.ack(**id).is_some()).count();
    ctx.dirty(acked as u64);
    Ok(Frame::Integer(acked as i64))
}

pub(super) fn xpending(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let argc = args.len();
    if argc != 3 && !(6..=9).contains(&argc) {
        return Err(CommandError::Syntax);
    }
    let mut range = None;
    if argc >= 6 {
        let mut at = 3;
        let mut min_idle = 0;
        if is(crate::dispatch::c_str(&args[3]), "idle") {
            min_idle = int(&args[4])?;
            if argc < 8 {
                return Err(CommandError::Syntax);
            }
            at += 2;
        }
        let count = int(&args[at + 2])?.max(0);
        let start = range_start(&args[at])?;
        let end = range_end(&args[at + 1])?;
        let consumer = args.get(at + 3).cloned();
        range = Some((start, end, count, min_idle, consumer));
    }
    let now = ctx.now_ms;
    let stream = ctx.read_stream(&args[1])?;
    let Some(group) = stream.and_then(|s| s.groups.get(&*args[2])) else {
        return Err(no_key_or_group(&args[1], &args[2]));
    };
    let Some((start, end, count, min_idle, consumer)) = range else {
        return Ok(summary(group));
    };
    let ids: Vec<StreamId> = match &consumer {
        Some(name) => match group.consumers.get(&**name) {
            Some(c) => c.pel.range(start..=end.max(start)).copied().collect(),
            None => return Ok(Frame::Array(Vec::new())),
        },
        None => group.pel.range(start..=end.max(start)).map(|(id, _)| *id).collect(),
    };
    let mut out = Vec::new();
    for id in ids.into_iter().filter(|id| *id <= end) {
        if out.len() as i64 >= count {
            break;
        }
        let pe = &group.pel[&id];
        let idle = now - pe.delivery_time as i64;
        if min_idle != 0 && idle < min_idle {
            continue;
        }
        out.push(Frame::Array(vec![
            id_frame(id),
            Frame::bulk(&pe.consumer),
            Frame::Integer(idle.max(0)),
            Frame::Integer(pe.delivery_count as i64),
        ]));
    }
    Ok(Frame::Array(out))
}

/// XPENDING's summary form.
fn summary(group: &ConsumerGroup) -> Frame {
    let (Some((first, _)), Some((last, _))) =
        (group.pel.first_key_value(), group.pel.last_key_value())
    else {
        return Frame::Array(vec![Frame::Integer(0), Frame::Null, Frame::Null, Frame::NullArray]);
    };
    let consumers = group
        .consumers
        .iter()
        .filter(|(_, c)| !c.pel.is_empty())
        .map(|(name, c)| Frame::Array(vec![Frame::bulk(name), Frame::bulk_int(c.pel.len() as i64)]))
        .collect();
    Frame::Array(vec![
        Frame::Integer(group.pel.len() as i64),
        id_frame(*first),
        id_frame(*last),
        Frame::Array(consumers),
    ])
}

/// Takes the group out of the stream at `key` for a claim (put back with [`put_group`]).
fn take_group(exec: &mut Exec<'_>, key: &[u8], name: &[u8]) -> (ConsumerGroup, u64) {
    let now = exec.now_ms.max(0) as u64;
    let stream = exec.write_stream(key).ok().flatten().expect("the caller found the stream");
    (stream.groups.remove(name).expect("the caller found the group"), now)
}

fn put_group(exec: &mut Exec<'_>, key: &[u8], name: &[u8], group: ConsumerGroup) {
    let stream = exec.write_stream(key).ok().flatten().expect("the caller found the stream");
    stream.groups.insert(name.into(), group);
}

fn stream_of<'e>(exec: &'e mut Exec<'_>, key: &[u8]) -> &'e Stream {
    exec.write_stream(key).ok().flatten().expect("the caller found the stream")
}

/// Looks the claiming consumer up once (refreshing it), creating it if missing. Returns true
/// if it was created.
fn claimer(group: &mut ConsumerGroup, name: &[u8], now: u64) -> bool {
    match group.consumers.get_mut(name) {
        Some(c) => {
            c.seen_time = now;
            false
        }
        None => group.create_consumer(name, now),
    }
}

pub(super) fn xclaim(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let (key, name, consumer) = (&args[1], &args[2], &args[3]);
    let found = ctx.read_stream(key)?.is_some_and(|s| s.groups.contains_key(&**name));
    if !found {
        return Err(no_key_or_group(key, name));
    }
    let min_idle =
        int_with(&args[4], CommandError::err("Invalid min-idle-time argument for XCLAIM"))?.max(0);
    let mut ids = Vec::new();
    let mut j = 5;
    while j < args.len() {
        match strict_id(&args[j]) {
            Ok(id) => ids.push((id, args[j].clone())),
            Err(_) => break,
        }
        j += 1;
    }
    let now = ctx.now_ms;
    let (mut retry_count, mut delivery_time) = (-1i64, -1i64);
    let (mut force, mut justid, mut last_id) = (false, false, StreamId::MIN);
    while j < args.len() {
        let more = args.len() - 1 - j;
        let opt = crate::dispatch::c_str(&args[j]);
        let invalid =
            |what: &str| CommandError::err(format!("Invalid {what} option argument for XCLAIM"));
        if is(opt, "force") {
            force = true;
        } else if is(opt, "justid") {
            justid = true;
        } else if is(opt, "idle") && more > 0 {
            j += 1;
            delivery_time = now.wrapping_sub(int_with(&args[j], invalid("IDLE"))?);
        } else if is(opt, "time") && more > 0 {
            j += 1;
            delivery_time = int_with(&args[j], invalid("TIME"))?;
        } else if is(opt, "retrycount") && more > 0 {
            j += 1;
            retry_count = int_with(&args[j], invalid("RETRYCOUNT"))?;
        } else if is(opt, "lastid") && more > 0 {
            j += 1;
            last_id = strict_id(&args[j])?;
        } else {
            let mut text = b"ERR Unrecognized XCLAIM option '".to_vec();
            text.extend_from_slice(opt);
            text.push(b'\'');
            return Err(CommandError::Bytes(Bytes::from(text)));
        }
        j += 1;
    }
    ctx.propagate_nothing();
    let (mut group, now_u) = take_group(ctx, key, name);
    let mut propagate_last_id = false;
    if last_id > group.last_id {
        group.last_id = last_id;
        propagate_last_id = true;
    }
    if delivery_time == -1 || delivery_time < 0 || delivery_time > now {
        delivery_time = now;
    }
    let mut created = false;
    let mut looked_up = false;
    let (mut replies, mut propagate, mut changes) = (Vec::new(), Vec::new(), 0u64);
    for (id, arg) in ids {
        let entry = stream_of(ctx, key).get(id);
        let Some(entry) = entry else {
            if let Some(pe) = group.pel.get(&id) {
                propagate.push(xclaim_argv(key, name, arg, pe, group.last_id));
                propagate_last_id = false;
                changes += 1;
                group.ack(id);
            }
            continue;
        };
        match group.pel.get(&id) {
            Some(pe) if min_idle > 0 && now - (pe.delivery_time as i64) < min_idle => continue,
            Some(_) => {}
            None if force => {
                let pe = PendingEntry {
                    delivery_time: now_u,
                    delivery_count: 1,
                    consumer: consumer.to_vec().into(),
                };
                group.pel.insert(id, pe);
            }
            None => continue,
        }
        if !looked_up {
            looked_up = true;
            created = claimer(&mut group, consumer, now_u);
        }
        group.transfer(id, consumer);
        let pe = group.pel.get_mut(&id).expect("pending");
        pe.delivery_time = delivery_time as u64;
        if retry_count >= 0 {
            pe.delivery_count = retry_count as u64;
        } else if !justid {
            pe.delivery_count += 1;
        }
        replies.push(if justid { id_frame(id) } else { entry_frame(&entry) });
        propagate.push(xclaim_argv(key, name, arg, &group.pel[&id], group.last_id));
        propagate_last_id = false;
        changes += 1;
    }
    if propagate_last_id {
        propagate.push(setid_argv(key, name, group.last_id, group.entries_read));
        changes += 1;
    }
    put_group(ctx, key, name, group);
    if created {
        ctx.dirty(1);
        ctx.notify(STREAM, "xgroup-createconsumer", key);
    }
    ctx.dirty(changes);
    for argv in propagate {
        ctx.propagate_as(argv);
    }
    Ok(Frame::Array(replies))
}

pub(super) fn xautoclaim(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let (key, name, consumer) = (&args[1], &args[2], &args[3]);
    // Redis looks the key up first (a miss is recorded even if the arguments are then refused),
    // and checks what it found only after parsing them.
    let found = match ctx.lookup_read(key) {
        None => Ok(false),
        Some(crate::db::Value::Stream(s)) => Ok(s.groups.contains_key(&**name)),
        Some(_) => Err(CommandError::WrongType),
    };
    let min_idle =
        int_with(&args[4], CommandError::err("Invalid min-idle-time argument for XAUTOCLAIM"))?
            .max(0);
    let start = range_start(&args[5])?;
    let (mut count, mut justid) = (100i64, false);
    let mut j = 6;
    while j < args.len() {
        let more = args.len() - 1 - j;
        let opt = crate::dispatch::c_str(&args[j]);
        if is(opt, "count") && more > 0 {
            let bad = || CommandError::err("COUNT must be > 0");
            count = int_with(&args[j + 1], bad())?;
            if !(1..=i64::MAX / 16).contains(&count) {
                return Err(bad());
            }
            j += 1;
        } else if is(opt, "justid") {
            justid = true;
        } else {
            return Err(CommandError::Syntax);
        }
        j += 1;
    }
    if !found? {
        return Err(no_key_or_group(key, name));
    }
    // Redis allocates room for COUNT deleted IDs up front and refuses what it cannot allocate.
    if count > (1i64 << 36) {
        return Err(CommandError::err(
            "Insufficient memory, failed allocating transient memory, COUNT too high.",
        ));
    }
    ctx.propagate_nothing();
    let now = ctx.now_ms;
    let (mut group, now_u) = take_group(ctx, key, name);
    let mut attempts = count.saturating_mul(10);
    let candidates: Vec<StreamId> =
        group.pel.range(start..).take(attempts as usize + 1).map(|(id, _)| *id).collect();
    let (mut claimed, mut deleted, mut propagate) = (Vec::new(), Vec::new(), Vec::new());
    let mut created = false;
    let mut looked_up = false;
    let mut changes = 0u64;
    let mut next = 0;
    let mut exhausted = false;
    while attempts > 0 && count > 0 {
        attempts -= 1;
        let Some(&id) = candidates.get(next) else {
            exhausted = true;
            break;
        };
        next += 1;
        let entry = stream_of(ctx, key).get(id);
        let Some(entry) = entry else {
            let pe = group.ack(id).expect("a pending entry listed above");
            propagate.push(xclaim_argv(key, name, id_bytes(id), &pe, group.last_id));
            changes += 1;
            deleted.push(id_frame(id));
            count -= 1;
            continue;
        };
        if min_idle > 0 && now - (group.pel[&id].delivery_time as i64) < min_idle {
            continue;
        }
        if !looked_up {
            looked_up = true;
            created = claimer(&mut group, consumer, now_u);
        }
        group.transfer(id, consumer);
        let pe = group.pel.get_mut(&id).expect("pending");
        pe.delivery_time = now_u;
        if !justid {
            pe.delivery_count += 1;
        }
        claimed.push(if justid { id_frame(id) } else { entry_frame(&entry) });
        propagate.push(xclaim_argv(key, name, id_bytes(id), &group.pel[&id], group.last_id));
        changes += 1;
        count -= 1;
    }
    let cursor = match candidates.get(next) {
        Some(id) if !exhausted => *id,
        _ => StreamId::MIN,
    };
    put_group(ctx, key, name, group);
    if created {
        ctx.dirty(1);
        ctx.notify(STREAM, "xgroup-createconsumer", key);
    }
    ctx.dirty(changes);
    for argv in propagate {
        ctx.propagate_as(argv);
    }
    Ok(Frame::Array(vec![id_frame(cursor), Frame::Array(claimed), Frame::Array(deleted)]))
}
