//! Pub/sub commands: SUBSCRIBE UNSUBSCRIBE PSUBSCRIBE PUNSUBSCRIBE PUBLISH PUBSUB, and the
//! sharded SSUBSCRIBE SUNSUBSCRIBE SPUBLISH.
//!
//! Confirmations are sent as out-of-band frames (RESP3 pushes, RESP2 arrays) through the
//! client's own push queue, one per channel, exactly as Redis sends them; the command itself
//! then replies nothing.

use bytes::Bytes;
use common::resp::Frame;

use crate::cmd::flags::*;
use crate::cmd::{cmd, container, CommandSpec};
use crate::error::CmdResult;
use crate::exec::Ctx;

/// The pub/sub commands.
pub static COMMANDS: &[CommandSpec] = &[
    cmd("subscribe", -2, PUBSUB | NOSCRIPT | LOADING | STALE, (0, 0, 0), subscribe),
    cmd("unsubscribe", -1, PUBSUB | NOSCRIPT | LOADING | STALE, (0, 0, 0), unsubscribe),
    cmd("psubscribe", -2, PUBSUB | NOSCRIPT | LOADING | STALE, (0, 0, 0), psubscribe),
    cmd("punsubscribe", -1, PUBSUB | NOSCRIPT | LOADING | STALE, (0, 0, 0), punsubscribe),
    cmd("publish", 3, PUBSUB | LOADING | STALE | FAST | MAY_REPLICATE, (0, 0, 0), publish),
    // A shard channel is a key to cluster routing (COMMAND GETKEYS names it).
    cmd("ssubscribe", -2, PUBSUB | NOSCRIPT | LOADING | STALE, (1, -1, 1), ssubscribe),
    cmd("sunsubscribe", -1, PUBSUB | NOSCRIPT | LOADING | STALE, (1, -1, 1), sunsubscribe),
    cmd("spublish", 3, PUBSUB | LOADING | STALE | FAST | MAY_REPLICATE, (1, 1, 1), spublish),
    container("pubsub", -2, 0, PUBSUB_SUBCOMMANDS),
];

static PUBSUB_SUBCOMMANDS: &[CommandSpec] = &[
    cmd("channels", -2, PUBSUB | LOADING | STALE, (0, 0, 0), pubsub_channels),
    cmd("numsub", -2, PUBSUB | LOADING | STALE, (0, 0, 0), pubsub_numsub),
    cmd("numpat", 2, PUBSUB | LOADING | STALE, (0, 0, 0), pubsub_numpat),
    cmd("shardchannels", -2, PUBSUB | LOADING | STALE, (0, 0, 0), pubsub_shardchannels),
    cmd("shardnumsub", -2, PUBSUB | LOADING | STALE, (0, 0, 0), pubsub_shardnumsub),
    cmd("help", 2, LOADING | STALE, (0, 0, 0), pubsub_help),
];

/// The reply that is sent instead of a normal one: nothing (the pushes were the reply).
fn no_reply() -> Frame {
    Frame::Raw(Bytes::new())
}

fn confirm(kind: &'static str, name: Option<Bytes>, count: usize) -> Frame {
    Frame::Push(vec![
        Frame::bulk_static(kind),
        name.map(Frame::Bulk).unwrap_or(Frame::Null),
        Frame::Integer(count as i64),
    ])
}

fn count(ctx: &Ctx<'_>) -> usize {
    ctx.client.channels.len() + ctx.client.patterns.len()
}

fn sync_snapshot(ctx: &mut Ctx<'_>) {
    let mut snap = ctx.client.snapshot.lock();
    snap.sub = ctx.client.channels.len();
    snap.psub = ctx.client.patterns.len();
    snap.ssub = ctx.client.shard_channels.len();
    snap.kind = if ctx.client.in_pubsub() {
        crate::client::ClientKind::Pubsub
    } else {
        crate::client::ClientKind::Normal
    };
}

/// Encodes confirmations into one raw reply, in the client's protocol, in order.
fn raw(ctx: &Ctx<'_>, frames: Vec<Frame>) -> Frame {
    let mut out = Vec::new();
    for f in frames {
        f.encode(ctx.client.resp, &mut out);
    }
    if out.is_empty() {
        no_reply()
    } else {
        Frame::Raw(Bytes::from(out))
    }
}

fn subscribe(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let mut frames = Vec::new();
    for channel in &args[1..] {
        if ctx.client.channels.insert(channel.clone()) {
            ctx.server.pubsub.lock().subscribe(
                ctx.client.id,
                channel.clone(),
                ctx.client.push.clone(),
            );
        }
        frames.push(confirm("subscribe", Some(channel.clone()), count(ctx)));
    }
    sync_snapshot(ctx);
    Ok(raw(ctx, frames))
}

fn psubscribe(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let mut frames = Vec::new();
    for pattern in &args[1..] {
        if ctx.client.patterns.insert(pattern.clone()) {
            ctx.server.pubsub.lock().psubscribe(
                ctx.client.id,
                pattern.clone(),
                ctx.client.push.clone(),
            );
        }
        frames.push(confirm("psubscribe", Some(pattern.clone()), count(ctx)));
    }
    sync_snapshot(ctx);
    Ok(raw(ctx, frames))
}

fn unsubscribe(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let targets: Vec<Bytes> = if args.len() > 1 {
        args[1..].to_vec()
    } else {
        ctx.client.channels.iter().cloned().collect()
    };
    let mut frames = Vec::new();
    for channel in targets {
        if ctx.client.channels.remove(&channel) {
            ctx.server.pubsub.lock().unsubscribe(ctx.client.id, &channel);
        }
        frames.push(confirm("unsubscribe", Some(channel), count(ctx)));
    }
    if frames.is_empty() {
        frames.push(confirm("unsubscribe", None, count(ctx)));
    }
    sync_snapshot(ctx);
    Ok(raw(ctx, frames))
}

fn punsubscribe(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let targets: Vec<Bytes> = if args.len() > 1 {
        args[1..].to_vec()
    } else {
        ctx.client.patterns.iter().cloned().collect()
    };
    let mut frames = Vec::new();
    for pattern in targets {
        if ctx.client.patterns.remove(&pattern) {
            ctx.server.pubsub.lock().punsubscribe(ctx.client.id, &pattern);
        }
        frames.push(confirm("punsubscribe", Some(pattern), count(ctx)));
    }
    if frames.is_empty() {
        frames.push(confirm("punsubscribe", None, count(ctx)));
    }
    sync_snapshot(ctx);
    Ok(raw(ctx, frames))
}

fn ssubscribe(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    // Unlike SUBSCRIBE, which Redis lets a transaction run for old clients' sake, SSUBSCRIBE
    // refuses to run where no push can follow a reply.
    if ctx.in_exec {
        return Err(crate::error::CommandError::err(
            "SSUBSCRIBE isn't allowed for a DENY BLOCKING client",
        ));
    }
    let mut frames = Vec::new();
    for channel in &args[1..] {
        if ctx.client.shard_channels.insert(channel.clone()) {
            ctx.server.pubsub.lock().ssubscribe(
                ctx.client.id,
                channel.clone(),
                ctx.client.push.clone(),
            );
        }
        // The count is of shard channels only, as Redis's shard confirmations count.
        let n = ctx.client.shard_channels.len();
        frames.push(confirm("ssubscribe", Some(channel.clone()), n));
    }
    sync_snapshot(ctx);
    Ok(raw(ctx, frames))
}

fn sunsubscribe(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let targets: Vec<Bytes> = if args.len() > 1 {
        args[1..].to_vec()
    } else {
        ctx.client.shard_channels.iter().cloned().collect()
    };
    let mut frames = Vec::new();
    for channel in targets {
        if ctx.client.shard_channels.remove(&channel) {
            ctx.server.pubsub.lock().sunsubscribe(ctx.client.id, &channel);
        }
        frames.push(confirm("sunsubscribe", Some(channel), ctx.client.shard_channels.len()));
    }
    if frames.is_empty() {
        frames.push(confirm("sunsubscribe", None, 0));
    }
    sync_snapshot(ctx);
    Ok(raw(ctx, frames))
}

/// Drops every subscription of the client (RESET).
pub fn unsubscribe_all(ctx: &mut Ctx<'_>) {
    let mut pubsub = ctx.server.pubsub.lock();
    for c in std::mem::take(&mut ctx.client.channels) {
        pubsub.unsubscribe(ctx.client.id, &c);
    }
    for p in std::mem::take(&mut ctx.client.patterns) {
        pubsub.punsubscribe(ctx.client.id, &p);
    }
    for c in std::mem::take(&mut ctx.client.shard_channels) {
        pubsub.sunsubscribe(ctx.client.id, &c);
    }
    drop(pubsub);
    sync_snapshot(ctx);
}

fn publish(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    publish_to(ctx, false, args)
}

fn spublish(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    publish_to(ctx, true, args)
}

fn publish_to(ctx: &mut Ctx<'_>, shard: bool, args: &[Bytes]) -> CmdResult {
    // Redis publishes keyspace events as they happen: inside a transaction or a script, the
    // events of earlier commands reach subscribers before this message.
    crate::notify::flush(ctx.server, ctx.exec.ks);
    let receivers = crate::pubsub::publish(ctx.server, shard, &args[1], &args[2]);
    // As Redis: the message goes down the replication stream too, so subscribers of replicas
    // receive it (it never goes to the AOF; see `aof::AofState::feed`).
    ctx.propagate_as(args.to_vec());
    Ok(Frame::Integer(receivers as i64))
}

fn pubsub_channels(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    channel_list(ctx, false, args)
}

fn pubsub_shardchannels(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    channel_list(ctx, true, args)
}

fn channel_list(ctx: &mut Ctx<'_>, shard: bool, args: &[Bytes]) -> CmdResult {
    if args.len() > 3 {
        return Err(super::server::subcommand_syntax(&args[1], "PUBSUB"));
    }
    let channels = ctx.server.pubsub.lock().channels(shard, args.get(2).map(|p| &p[..]));
    Ok(Frame::Array(channels.into_iter().map(Frame::Bulk).collect()))
}

fn pubsub_numsub(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    subscriber_counts(ctx, false, args)
}

fn pubsub_shardnumsub(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    subscriber_counts(ctx, true, args)
}

fn subscriber_counts(ctx: &mut Ctx<'_>, shard: bool, args: &[Bytes]) -> CmdResult {
    let pubsub = ctx.server.pubsub.lock();
    let mut out = Vec::new();
    for channel in &args[2..] {
        out.push(Frame::Bulk(channel.clone()));
        out.push(Frame::Integer(pubsub.numsub(shard, channel) as i64));
    }
    Ok(Frame::Array(out))
}

fn pubsub_numpat(ctx: &mut Ctx<'_>, _: &[Bytes]) -> CmdResult {
    Ok(Frame::Integer(ctx.server.pubsub.lock().numpat() as i64))
}

fn pubsub_help(_: &mut Ctx<'_>, _: &[Bytes]) -> CmdResult {
    Ok(super::help::reply(
        "PUBSUB",
        &[
            ("CHANNELS [<pattern>]", "Channels with at least one subscriber, optionally filtered."),
            (
                "NUMSUB [<channel> ...]",
                "Subscriber counts of the given channels (patterns not counted).",
            ),
            ("NUMPAT", "How many patterns have subscribers."),
            (
                "SHARDCHANNELS [<pattern>] | SHARDNUMSUB [<channel> ...]",
                "The same for shard channels.",
            ),
        ],
    ))
}
