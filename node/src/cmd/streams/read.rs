//! XREAD and XREADGROUP, and their BLOCK form.
//!
//! A key is served at once when it has entries past the requested ID (for a group reading
//! `>`, past the group's last delivered ID; a group reading an explicit ID always is: that is
//! the consumer's own history). Otherwise, with BLOCK, the client waits on its keys with a
//! [`StreamWait`]: when a write signals one of them, the wait is served as Redis's
//! `serveClientsBlockedOnStreamKey` does, from the *current* position of the group.
//!
//! XREADGROUP never propagates as sent: each entry it delivers is propagated as an
//! `XCLAIM … FORCE JUSTID LASTID`, a NOACK read as `XGROUP SETID … ENTRIESREAD`, and a consumer
//! created by a NOACK read as `XGROUP CREATECONSUMER`.

use std::time::Duration;

use bytes::Bytes;
use common::resp::{Frame, Protocol};

use super::entry_frame;
use super::id::{id_bytes, id_frame, strict_id};
use crate::blocking::Unblock;
use crate::cmd::args::{int, int_with, is};
use crate::db::stream::entries::next_id;
use crate::db::stream::{PendingEntry, StreamId};
use crate::db::Value;
use crate::error::{CmdResult, CommandError};
use crate::exec::{Ctx, Effect, Exec};
use crate::notify::class::STREAM;

/// How many entries a blocked read returns when it gave no COUNT.
const BLOCKED_DEFAULT_COUNT: usize = 1000;

/// The group part of XREADGROUP.
#[derive(Debug, Clone)]
struct GroupRead {
    group: Bytes,
    consumer: Bytes,
    noack: bool,
}

/// The parsed options.
struct ReadArgs {
    /// BLOCK: `Some(None)` waits forever.
    block: Option<Option<Duration>>,
    count: usize,
    /// Where the keys start; as many IDs follow them.
    streams_at: usize,
    keys: usize,
    group: Option<GroupRead>,
}

fn parse(ctx: &Ctx<'_>, args: &[Bytes], xreadgroup: bool) -> Result<ReadArgs, CommandError> {
    let mut parsed = ReadArgs { block: None, count: 0, streams_at: 0, keys: 0, group: None };
    let mut noack = false;
    let mut group = None;
    let mut i = 1;
    while i < args.len() {
        let more = args.len() - i - 1;
        let opt = crate::dispatch::c_str(&args[i]);
        if is(opt, "block") && more > 0 {
            if crate::script::is_running() {
                let mut text = b"ERR ".to_vec();
                text.extend_from_slice(&args[0]);
                text.extend_from_slice(b" command is not allowed with BLOCK option from scripts");
                return Err(CommandError::Bytes(Bytes::from(text)));
            }
            i += 1;
            let not_int = CommandError::err("timeout is not an integer or out of range");
            let ms = int_with(&args[i], not_int)?;
            if ms < 0 {
                return Err(CommandError::err("timeout is negative"));
            }
            if ms > 0 && ms > i64::MAX - ctx.now_ms {
                return Err(CommandError::err("timeout is out of range"));
            }
            parsed.block = Some((ms > 0).then(|| Duration::from_millis(ms as u64)));
        } else if is(opt, "count") && more > 0 {
            i += 1;
            parsed.count = int(&args[i])?.max(0) as usize;
        } else if is(opt, "streams") && more > 0 {
            parsed.streams_at = i + 1;
            let n = args.len() - parsed.streams_at;
            if !n.is_multiple_of(2) {
                return Err(CommandError::err(
                    "Unbalanced XREAD list of streams: for each stream key an ID or '$' must be \
                     specified.",
                ));
            }
            parsed.keys = n / 2;
            break;
        } else if is(opt, "group") && more >= 2 {
            if !xreadgroup {
                return Err(CommandError::err(
                    "The GROUP option is only supported by XREADGROUP. You called XREAD instead.",
                ));
            }
            group = Some((args[i + 1].clone(), args[i + 2].clone()));
            i += 2;
        } else if is(opt, "noack") {
            if !xreadgroup {
                return Err(CommandError::err(
                    "The NOACK option is only supported by XREADGROUP. You called XREAD instead.",
                ));
            }
            noack = true;
        } else {
            return Err(CommandError::Syntax);
        }
        i += 1;
    }
    if parsed.streams_at == 0 {
        return Err(CommandError::Syntax);
    }
    if xreadgroup && group.is_none() {
        return Err(CommandError::err("Missing GROUP option for XREADGROUP"));
    }
    parsed.group = group.map(|(group, consumer)| GroupRead { group, consumer, noack });
    Ok(parsed)
}

/// Where a key is read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum After {
    /// Entries after this ID (for a group: its consumer's pending entries after it).
    Id(StreamId),
    /// `>`: entries the group has not delivered yet.
    New,
}

fn nogroup(key: &[u8], group: &[u8]) -> CommandError {
    let mut text = b"NOGROUP No such key '".to_vec();
    text.extend_from_slice(crate::dispatch::c_str(key));
    text.extend_from_slice(b"' or consumer group '");
    text.extend_from_slice(crate::dispatch::c_str(group));
    text.extend_from_slice(b"' in XREADGROUP with GROUP option");
    CommandError::Bytes(Bytes::from(text))
}

pub(super) fn xread(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    read(ctx, args, false)
}

pub(super) fn xreadgroup(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    // Only what the read delivers is propagated (see the module documentation).
    ctx.propagate_nothing();
    read(ctx, args, true)
}

fn read(ctx: &mut Ctx<'_>, args: &[Bytes], xreadgroup: bool) -> CmdResult {
    let p = parse(ctx, args, xreadgroup)?;
    let keys = &args[p.streams_at..p.streams_at + p.keys];
    let id_args = &args[p.streams_at + p.keys..];
    let mut afters = Vec::with_capacity(p.keys);
    for (key, id_arg) in keys.iter().zip(id_args) {
        let stream = ctx.read_stream(key)?;
        if let Some(g) = &p.group {
            if !stream.is_some_and(|s| s.groups.contains_key(&*g.group)) {
                return Err(nogroup(key, &g.group));
            }
        }
        let last_id = stream.map_or(StreamId::MIN, |s| s.last_id);
        let id_arg = crate::dispatch::c_str(id_arg);
        afters.push(if id_arg == b"$" {
            if xreadgroup {
                return Err(CommandError::err(
                    "The $ ID is meaningless in the context of XREADGROUP: you want to read the \
                     history of this consumer by specifying a proper ID, or use the > ID to get \
                     new messages. The $ ID would just return an empty result set.",
                ));
            }
            After::Id(last_id)
        } else if id_arg == b">" {
            if !xreadgroup {
                return Err(CommandError::err(
                    "The > ID can be specified only when calling XREADGROUP using the GROUP \
                     <group> <consumer> option.",
                ));
            }
            After::New
        } else {
            After::Id(strict_id(id_arg)?)
        });
    }
    let mut served = Vec::new();
    for (key, after) in keys.iter().zip(&afters) {
        let Some(stream) = ctx.read_stream(key)? else { continue };
        let ready = match (&p.group, after) {
            (Some(_), After::Id(_)) => true,
            (Some(g), After::New) => {
                let last = stream.groups[&*g.group].last_id;
                stream.last_valid_id().is_some_and(|top| top > last)
            }
            (None, After::Id(gt)) => stream.last_valid_id().is_some_and(|top| top > *gt),
            (None, After::New) => unreachable!("`>` is refused without a group"),
        };
        if !ready {
            continue;
        }
        let entries = match &p.group {
            Some(g) => {
                let frame = serve_group(ctx, key, g, *after, p.count);
                ctx.dirty(1);
                frame
            }
            None => {
                let After::Id(gt) = after else { unreachable!("checked above") };
                let start = next_id(*gt).unwrap_or(StreamId::MIN);
                let entries = stream.range(start, StreamId::MAX, false, p.count);
                Frame::Array(entries.iter().map(entry_frame).collect())
            }
        };
        served.push((key.clone(), entries));
    }
    let resp3 = ctx.client.resp == Protocol::Resp3;
    if !served.is_empty() {
        return Ok(reply(served, resp3));
    }
    let Some(timeout) = p.block else { return Ok(Frame::NullArray) };
    if ctx.in_exec {
        return Ok(Frame::NullArray);
    }
    let mut waits: Vec<(Bytes, StreamId)> = Vec::new();
    for (key, after) in keys.iter().zip(&afters) {
        // A key named twice waits for the first of its IDs, as Redis keeps it.
        if !waits.iter().any(|(k, _)| k == key) {
            let gt = match after {
                After::Id(id) => *id,
                After::New => StreamId::MAX,
            };
            waits.push((key.clone(), gt));
        }
    }
    let wait = StreamWait {
        count: if p.count > 0 { p.count } else { BLOCKED_DEFAULT_COUNT },
        group: p.group,
        resp3,
        keys: waits.clone(),
    };
    ctx.effect = Some(Effect::Block {
        keys: waits.into_iter().map(|(k, _)| k).collect(),
        timeout,
        op: Box::new(wait),
        on_timeout: Frame::NullArray,
    });
    Ok(Frame::NullArray)
}

/// The reply: per key, its entries (an array of pairs in RESP2, a map in RESP3).
fn reply(served: Vec<(Bytes, Frame)>, resp3: bool) -> Frame {
    if resp3 {
        Frame::Map(served.into_iter().map(|(k, e)| (Frame::Bulk(k), e)).collect())
    } else {
        Frame::Array(
            served.into_iter().map(|(k, e)| Frame::Array(vec![Frame::Bulk(k), e])).collect(),
        )
    }
}

/// `XCLAIM <key> <group> <consumer> 0 <id> TIME <ms> RETRYCOUNT <n> FORCE JUSTID LASTID
/// <group last id>`: how a delivery (or a claim) reaches replicas (`streamPropagateXCLAIM`).
pub(super) fn xclaim_argv(
    key: &Bytes,
    group: &Bytes,
    id: Bytes,
    pending: &PendingEntry,
    last_id: StreamId,
) -> Vec<Bytes> {
    vec![
        Bytes::from_static(b"XCLAIM"),
        key.clone(),
        group.clone(),
        Bytes::copy_from_slice(&pending.consumer),
        Bytes::from_static(b"0"),
        id,
        Bytes::from_static(b"TIME"),
        Bytes::from(pending.delivery_time.to_string()),
        Bytes::from_static(b"RETRYCOUNT"),
        Bytes::from(pending.delivery_count.to_string()),
        Bytes::from_static(b"FORCE"),
        Bytes::from_static(b"JUSTID"),
        Bytes::from_static(b"LASTID"),
        id_bytes(last_id),
    ]
}

/// `XGROUP SETID <key> <group> <last id> ENTRIESREAD <n>` (`streamPropagateGroupID`).
pub(super) fn setid_argv(key: &Bytes, group: &Bytes, last_id: StreamId, read: i64) -> Vec<Bytes> {
    vec![
        Bytes::from_static(b"XGROUP"),
        Bytes::from_static(b"SETID"),
        key.clone(),
        group.clone(),
        id_bytes(last_id),
        Bytes::from_static(b"ENTRIESREAD"),
        Bytes::from(read.to_string()),
    ]
}

/// Reads `key` for the group (which exists) as XREADGROUP does, updating the group, its
/// pending entries and the consumer (created if missing). Returns the entries reply.
fn serve_group(
    exec: &mut Exec<'_>,
    key: &Bytes,
    g: &GroupRead,
    after: After,
    count: usize,
) -> Frame {
    let now = exec.now_ms.max(0) as u64;
    let stream = match exec.write_stream(key) {
        Ok(Some(stream)) => stream,
        _ => unreachable!("the caller found a stream at the key"),
    };
    let mut group = stream.groups.remove(&*g.group).expect("the caller found the group");
    let created = match group.consumers.get_mut(&*g.consumer) {
        Some(c) => {
            c.seen_time = now;
            false
        }
        None => group.create_consumer(&g.consumer, now),
    };
    let mut propagate = Vec::new();
    if created && g.noack {
        propagate.push(vec![
            Bytes::from_static(b"XGROUP"),
            Bytes::from_static(b"CREATECONSUMER"),
            key.clone(),
            g.group.clone(),
            g.consumer.clone(),
        ]);
    }
    let mut frames = Vec::new();
    match after {
        After::Id(id) => {
            // The consumer's own history: its pending entries after `id`.
            let start = next_id(id).unwrap_or(StreamId::MIN);
            let mine: Vec<StreamId> = group.consumers[&*g.consumer]
                .pel
                .range(start..)
                .take(if count == 0 { usize::MAX } else { count })
                .copied()
                .collect();
            for id in mine {
                match stream.get(id) {
                    Some(entry) => {
                        frames.push(entry_frame(&entry));
                        let pe = group.pel.get_mut(&id).expect("a consumer's entry is pending");
                        pe.delivery_time = now;
                        pe.delivery_count += 1;
                    }
                    None => frames.push(Frame::Array(vec![id_frame(id), Frame::NullArray])),
                }
            }
        }
        After::New => {
            let start = next_id(group.last_id).unwrap_or(StreamId::MIN);
            let mut moved_noack = false;
            for entry in stream.range(start, StreamId::MAX, false, count) {
                moved_noack |= group.deliver(stream, entry.id) && g.noack;
                frames.push(entry_frame(&entry));
                if !g.noack {
                    group.add_pending(entry.id, &g.consumer, now);
                    let pending = &group.pel[&entry.id];
                    let id = id_bytes(entry.id);
                    propagate.push(xclaim_argv(key, &g.group, id, pending, group.last_id));
                }
            }
            if moved_noack {
                propagate.push(setid_argv(key, &g.group, group.last_id, group.entries_read));
            }
        }
    }
    stream.groups.insert(g.group.to_vec().into_boxed_slice(), group);
    if created {
        exec.dirty(1);
        exec.notify(STREAM, "xgroup-createconsumer", key);
    }
    for argv in propagate {
        exec.propagate_as(argv);
    }
    Frame::Array(frames)
}

/// A client blocked in XREAD or XREADGROUP.
struct StreamWait {
    /// Each key, with the ID it waits to see passed (XREADGROUP: unused, the group's own
    /// position is read when the key is signalled).
    keys: Vec<(Bytes, StreamId)>,
    group: Option<GroupRead>,
    count: usize,
    resp3: bool,
}

impl Unblock for StreamWait {
    fn try_serve(&self, exec: &mut Exec<'_>, key: &Bytes) -> Option<Frame> {
        let error = |text: &str| Some(Frame::Error(Bytes::copy_from_slice(text.as_bytes())));
        let Some(Value::Stream(stream)) = exec.lookup_write_ref(key) else {
            // A stream deleted or replaced under a group reader ends its wait; a plain reader
            // keeps waiting for a stream to appear.
            return match self.group {
                Some(_) => error("UNBLOCKED the stream key no longer exists"),
                None => None,
            };
        };
        let gt =
            match &self.group {
                Some(g) => match stream.groups.get(&*g.group) {
                    Some(group) => group.last_id,
                    None => return error(
                        "NOGROUP the consumer group this client was blocked on no longer exists",
                    ),
                },
                None => self.keys.iter().find(|(k, _)| k == key).map(|(_, id)| *id)?,
            };
        if stream.last_id <= gt {
            return None;
        }
        let entries = match &self.group {
            Some(g) => serve_group(exec, key, g, After::New, self.count),
            None => {
                let start = next_id(gt).unwrap_or(StreamId::MIN);
                let entries = stream.range(start, StreamId::MAX, false, self.count);
                Frame::Array(entries.iter().map(entry_frame).collect())
            }
        };
        Some(reply(vec![(key.clone(), entries)], self.resp3))
    }
}
