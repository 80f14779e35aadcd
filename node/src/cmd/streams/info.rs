//! XINFO STREAM [FULL [COUNT n]], XINFO GROUPS, XINFO CONSUMERS and XINFO HELP, with Redis
//! 7.0's fields (`entries-added`, `max-deleted-entry-id`, `recorded-first-entry-id`,
//! `entries-read`, `lag`). Every record is a map: a flat array in RESP2.

use bytes::Bytes;
use common::resp::Frame;

use super::entry_frame;
use super::id::id_frame;
use crate::cmd::args::int;
use crate::cmd::flags::*;
use crate::cmd::server::subcommand_syntax;
use crate::cmd::{cmd, CommandSpec};
use crate::db::stream::{rax, ConsumerGroup, Stream, StreamId, ENTRIES_READ_UNKNOWN};
use crate::error::{CmdResult, CommandError};
use crate::exec::Ctx;

/// XINFO's subcommands.
pub(super) static XINFO: &[CommandSpec] = &[
    cmd("consumers", 4, READONLY, (2, 2, 1), xinfo_consumers),
    cmd("groups", 3, READONLY, (2, 2, 1), xinfo_groups),
    cmd("stream", -3, READONLY, (2, 2, 1), xinfo_stream),
    cmd("help", 2, LOADING | STALE, (0, 0, 0), xinfo_help),
];

fn xinfo_help(_: &mut Ctx<'_>, _: &[Bytes]) -> CmdResult {
    Ok(crate::cmd::help::reply(
        "XINFO",
        &[
            ("CONSUMERS <key> <groupname>", "Show consumers of <groupname>."),
            ("GROUPS <key>", "Show the stream consumer groups."),
            ("STREAM <key> [FULL [COUNT <count>]", "Show information about the stream."),
        ],
    ))
}

fn field(name: &'static str, value: Frame) -> (Frame, Frame) {
    (Frame::bulk_static(name), value)
}

fn entries_read(group: &ConsumerGroup) -> Frame {
    match group.entries_read {
        ENTRIES_READ_UNKNOWN => Frame::Null,
        n => Frame::Integer(n),
    }
}

fn lag(stream: &Stream, group: &ConsumerGroup) -> Frame {
    stream.lag(group).map_or(Frame::Null, Frame::Integer)
}

fn stream_of<'c>(ctx: &'c mut Ctx<'_>, key: &[u8]) -> Result<&'c Stream, CommandError> {
    ctx.read_stream(key)?.ok_or(CommandError::NoSuchKey)
}

fn xinfo_consumers(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let now = ctx.now_ms;
    let stream = stream_of(ctx, &args[2])?;
    let Some(group) = stream.groups.get(&*args[3]) else {
        let mut text = b"NOGROUP No such consumer group '".to_vec();
        text.extend_from_slice(crate::dispatch::c_str(&args[3]));
        text.extend_from_slice(b"' for key name '");
        text.extend_from_slice(crate::dispatch::c_str(&args[2]));
        text.push(b'\'');
        return Err(CommandError::Bytes(Bytes::from(text)));
    };
    let consumers = group.consumers.iter().map(|(name, c)| {
        Frame::Map(vec![
            field("name", Frame::bulk(name)),
            field("pending", Frame::Integer(c.pel.len() as i64)),
            field("idle", Frame::Integer((now - c.seen_time as i64).max(0))),
        ])
    });
    Ok(Frame::Array(consumers.collect()))
}

fn xinfo_groups(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let stream = stream_of(ctx, &args[2])?;
    let groups = stream.groups.iter().map(|(name, g)| {
        Frame::Map(vec![
            field("name", Frame::bulk(name)),
            field("consumers", Frame::Integer(g.consumers.len() as i64)),
            field("pending", Frame::Integer(g.pel.len() as i64)),
            field("last-delivered-id", id_frame(g.last_id)),
            field("entries-read", entries_read(g)),
            field("lag", lag(stream, g)),
        ])
    });
    Ok(Frame::Array(groups.collect()))
}

fn xinfo_stream(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let syntax = || subcommand_syntax(&args[1], "XINFO");
    let stream = stream_of(ctx, &args[2])?;
    let options = &args[3..];
    let full = !options.is_empty();
    let mut count: i64 = 10;
    if full {
        if options.len() != 1 && options.len() != 3 {
            return Err(syntax());
        }
        if !options[0].eq_ignore_ascii_case(b"full") {
            return Err(syntax());
        }
        if options.len() == 3 {
            if !options[1].eq_ignore_ascii_case(b"count") {
                return Err(syntax());
            }
            count = int(&options[2])?;
            if count < 0 {
                count = 10;
            }
        }
    }
    let mut map = vec![
        field("length", Frame::Integer(stream.len() as i64)),
        field("radix-tree-keys", Frame::Integer(stream.nodes.len() as i64)),
        field("radix-tree-nodes", Frame::Integer(rax::node_count(stream.nodes.keys()) as i64)),
        field("last-generated-id", id_frame(stream.last_id)),
        field("max-deleted-entry-id", id_frame(stream.max_deleted_entry_id)),
        field("entries-added", Frame::Integer(stream.entries_added as i64)),
        field("recorded-first-entry-id", id_frame(stream.first_id)),
    ];
    if !full {
        let edge = |rev| {
            stream
                .range(StreamId::MIN, StreamId::MAX, rev, 1)
                .first()
                .map_or(Frame::Null, entry_frame)
        };
        map.push(field("groups", Frame::Integer(stream.groups.len() as i64)));
        map.push(field("first-entry", edge(false)));
        map.push(field("last-entry", edge(true)));
        return Ok(Frame::Map(map));
    }
    let count = count as usize;
    let limit = |n: usize| if count == 0 { n } else { n.min(count) };
    let entries = stream.range(StreamId::MIN, StreamId::MAX, false, count);
    map.push(field("entries", Frame::Array(entries.iter().map(entry_frame).collect())));
    let groups = stream.groups.iter().map(|(name, g)| {
        let pel = g.pel.iter().take(limit(g.pel.len())).map(|(id, pe)| {
            Frame::Array(vec![
                id_frame(*id),
                Frame::bulk(&pe.consumer),
                Frame::Integer(pe.delivery_time as i64),
                Frame::Integer(pe.delivery_count as i64),
            ])
        });
        let consumers = g.consumers.iter().map(|(cname, c)| {
            let pending = c.pel.iter().take(limit(c.pel.len())).map(|id| {
                let pe = &g.pel[id];
                Frame::Array(vec![
                    id_frame(*id),
                    Frame::Integer(pe.delivery_time as i64),
                    Frame::Integer(pe.delivery_count as i64),
                ])
            });
            Frame::Map(vec![
                field("name", Frame::bulk(cname)),
                field("seen-time", Frame::Integer(c.seen_time as i64)),
                field("pel-count", Frame::Integer(c.pel.len() as i64)),
                field("pending", Frame::Array(pending.collect())),
            ])
        });
        Frame::Map(vec![
            field("name", Frame::bulk(name)),
            field("last-delivered-id", id_frame(g.last_id)),
            field("entries-read", entries_read(g)),
            field("lag", lag(stream, g)),
            field("pel-count", Frame::Integer(g.pel.len() as i64)),
            field("pending", Frame::Array(pel.collect())),
            field("consumers", Frame::Array(consumers.collect())),
        ])
    });
    map.push(field("groups", Frame::Array(groups.collect())));
    Ok(Frame::Map(map))
}
