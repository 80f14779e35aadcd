//! XCLAIM and XAUTOCLAIM: moving pending entries to another consumer.
//!
//! Neither propagates as sent: each claim, and each pending entry dropped because its entry
//! was deleted, is propagated as the `XCLAIM … FORCE JUSTID LASTID` that XREADGROUP sends, and
//! a LASTID that moved the group on its own as `XGROUP SETID`.

use bytes::Bytes;
use common::resp::Frame;

use super::entry_frame;
use super::groups::no_key_or_group;
use super::id::{id_bytes, id_frame, range_start, strict_id};
use super::read::{setid_argv, xclaim_argv};
use crate::cmd::args::{int_with, is};
use crate::db::stream::{ConsumerGroup, PendingEntry, Stream, StreamId};
use crate::error::{CmdResult, CommandError};
use crate::exec::{Ctx, Exec};
use crate::notify::class::STREAM;

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

/// Ends a claim (XCLAIM, XAUTOCLAIM): the group goes back into the stream, a consumer the
/// claim created is announced, and the changes are counted and propagated as their XCLAIMs.
fn finish(
    exec: &mut Exec<'_>,
    key: &[u8],
    name: &[u8],
    group: ConsumerGroup,
    created: bool,
    changes: u64,
    propagate: Vec<Vec<Bytes>>,
) {
    put_group(exec, key, name, group);
    if created {
        exec.dirty(1);
        exec.notify(STREAM, "xgroup-createconsumer", key);
    }
    exec.dirty(changes);
    for argv in propagate {
        exec.propagate_as(argv);
    }
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
    super::touch_nothing(ctx);
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
    finish(ctx, key, name, group, created, changes, propagate);
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
    // Redis allocates 16 bytes per COUNT up front (room for the deleted IDs) and refuses what it
    // cannot allocate; on a 64-bit Linux with 47-bit addresses that is from about 64 TB on.
    if count > (1i64 << 42) {
        return Err(CommandError::err(
            "Insufficient memory, failed allocating transient memory, COUNT too high.",
        ));
    }
    ctx.propagate_nothing();
    super::touch_nothing(ctx);
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
    finish(ctx, key, name, group, created, changes, propagate);
    Ok(Frame::Array(vec![id_frame(cursor), Frame::Array(claimed), Frame::Array(deleted)]))
}
