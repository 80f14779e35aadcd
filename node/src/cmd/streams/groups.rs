//! Consumer groups: XGROUP (CREATE, SETID, DESTROY, CREATECONSUMER, DELCONSUMER, HELP), XACK
//! and XPENDING. (Claims are in `claim`.)

use bytes::Bytes;
use common::resp::Frame;

use super::id::{id_frame, parse_id, range_end, range_start, strict_id, IdRules};
use crate::cmd::args::{int, is};
use crate::cmd::flags::*;
use crate::cmd::server::subcommand_syntax;
use crate::cmd::{cmd, CommandSpec};
use crate::db::stream::{ConsumerGroup, StreamId, ENTRIES_READ_UNKNOWN};
use crate::error::{CmdResult, CommandError};
use crate::exec::Ctx;
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
            (
                "CREATE <key> <groupname> <id|$> [MKSTREAM] [ENTRIESREAD entries_read]",
                "Create a new consumer group (MKSTREAM: create the empty stream if missing).",
            ),
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
pub(super) fn no_key_or_group(key: &[u8], group: &[u8]) -> CommandError {
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
    super::touch_nothing(ctx);
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
            if ctx.write_stream(key)?.is_none() {
                // MKSTREAM made the key: that is a change WATCH sees.
                ctx.modified(key);
            }
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
            // Its blocked readers learn that the group is gone.
            let db = ctx.db;
            ctx.ks.blocking.signal(db, key);
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
    super::touch_nothing(ctx);
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
