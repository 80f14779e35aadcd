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

/// The confirmations, in order. They are pushes, as in Redis 7.0, so CLIENT REPLY OFF or SKIP
/// does not hold them back: they follow the (empty) reply. Inside EXEC they are the command's
/// place in EXEC's reply.
fn raw(ctx: &mut Ctx<'_>, frames: Vec<Frame>) -> Frame {
    if !ctx.in_exec {
        ctx.client.after_reply.extend(frames);
        return no_reply();
    }
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

/// The three kinds of subscription: they share their commands' shape and differ in the set
/// they fill, the words of their confirmations and what those count.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Family {
    Channels,
    Patterns,
    Shard,
}

impl Family {
    /// The confirmation words (SUBSCRIBE's and UNSUBSCRIBE's).
    fn words(self) -> (&'static str, &'static str) {
        match self {
            Family::Channels => ("subscribe", "unsubscribe"),
            Family::Patterns => ("psubscribe", "punsubscribe"),
            Family::Shard => ("ssubscribe", "sunsubscribe"),
        }
    }

    fn set<'c>(self, ctx: &'c mut Ctx<'_>) -> &'c mut std::collections::BTreeSet<Bytes> {
        match self {
            Family::Channels => &mut ctx.client.channels,
            Family::Patterns => &mut ctx.client.patterns,
            Family::Shard => &mut ctx.client.shard_channels,
        }
    }

    /// What a confirmation counts: channels and patterns together, or (as Redis's shard
    /// confirmations do) shard channels alone.
    fn count(self, ctx: &Ctx<'_>) -> usize {
        match self {
            Family::Shard => ctx.client.shard_channels.len(),
            _ => count(ctx),
        }
    }

    fn register(self, ctx: &Ctx<'_>, name: Bytes) {
        let (id, push) = (ctx.client.id, ctx.client.push.clone());
        let mut pubsub = ctx.server.pubsub.lock();
        match self {
            Family::Channels => pubsub.subscribe(id, name, push),
            Family::Patterns => pubsub.psubscribe(id, name, push),
            Family::Shard => pubsub.ssubscribe(id, name, push),
        };
    }

    fn unregister(self, ctx: &Ctx<'_>, name: &Bytes) {
        let id = ctx.client.id;
        let mut pubsub = ctx.server.pubsub.lock();
        match self {
            Family::Channels => pubsub.unsubscribe(id, name),
            Family::Patterns => pubsub.punsubscribe(id, name),
            Family::Shard => pubsub.sunsubscribe(id, name),
        };
    }
}

fn subscribe(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    subscribe_to(ctx, Family::Channels, args)
}

fn psubscribe(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    subscribe_to(ctx, Family::Patterns, args)
}

fn ssubscribe(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    // Unlike SUBSCRIBE, which Redis lets a transaction run for old clients' sake, SSUBSCRIBE
    // refuses to run where no push can follow a reply.
    if ctx.in_exec {
        return Err(crate::error::CommandError::err(
            "SSUBSCRIBE isn't allowed for a DENY BLOCKING client",
        ));
    }
    subscribe_to(ctx, Family::Shard, args)
}

fn unsubscribe(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    unsubscribe_from(ctx, Family::Channels, args)
}

fn punsubscribe(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    unsubscribe_from(ctx, Family::Patterns, args)
}

fn sunsubscribe(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    unsubscribe_from(ctx, Family::Shard, args)
}

/// (P|S)SUBSCRIBE: one confirmation per name, in order, repeated names included.
fn subscribe_to(ctx: &mut Ctx<'_>, family: Family, args: &[Bytes]) -> CmdResult {
    let mut frames = Vec::new();
    for name in &args[1..] {
        if family.set(ctx).insert(name.clone()) {
            family.register(ctx, name.clone());
        }
        frames.push(confirm(family.words().0, Some(name.clone()), family.count(ctx)));
    }
    sync_snapshot(ctx);
    Ok(raw(ctx, frames))
}

/// (P|S)UNSUBSCRIBE: the names given, or every one the client has; with none at all, one
/// confirmation with a null name.
fn unsubscribe_from(ctx: &mut Ctx<'_>, family: Family, args: &[Bytes]) -> CmdResult {
    let targets: Vec<Bytes> =
        if args.len() > 1 { args[1..].to_vec() } else { family.set(ctx).iter().cloned().collect() };
    let mut frames = Vec::new();
    for name in targets {
        if family.set(ctx).remove(&name) {
            family.unregister(ctx, &name);
        }
        frames.push(confirm(family.words().1, Some(name), family.count(ctx)));
    }
    if frames.is_empty() {
        frames.push(confirm(family.words().1, None, family.count(ctx)));
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
