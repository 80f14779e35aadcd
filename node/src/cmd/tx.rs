//! Transactions: MULTI EXEC DISCARD WATCH UNWATCH.
//!
//! Queued commands run under one hold of the keyspace lock, so nothing interleaves with them.
//! WATCH works by touch: every write that changes a key marks the clients watching it
//! (see `dispatch::run_locked`), and FLUSH/SWAPDB mark every watcher of the database. A watched
//! key that expires between WATCH and EXEC also aborts the transaction, as in Redis 7.

use bytes::Bytes;
use common::resp::{Frame, Protocol};

use crate::cmd::flags::*;
use crate::cmd::{cmd, CommandSpec};
use crate::command_stats::Counted;
use crate::dispatch::{resolve, run_locked};
use crate::error::{CmdResult, CommandError};
use crate::exec::{Ctx, Propagated};

/// The transaction commands.
pub static COMMANDS: &[CommandSpec] = &[
    cmd("multi", 1, NOSCRIPT | LOADING | STALE | FAST | ALLOW_BUSY, (0, 0, 0), multi),
    cmd("exec", 1, NOSCRIPT | LOADING | STALE | SKIP_SLOWLOG, (0, 0, 0), exec),
    cmd("discard", 1, NOSCRIPT | LOADING | STALE | FAST | ALLOW_BUSY, (0, 0, 0), discard),
    cmd("watch", -2, NOSCRIPT | LOADING | STALE | FAST | ALLOW_BUSY, (1, -1, 1), watch),
    cmd("unwatch", 1, NOSCRIPT | LOADING | STALE | FAST | ALLOW_BUSY, (0, 0, 0), unwatch),
];

fn multi(ctx: &mut Ctx<'_>, _: &[Bytes]) -> CmdResult {
    if ctx.client.multi.is_some() {
        return Err(CommandError::err("MULTI calls can not be nested"));
    }
    ctx.client.enter_multi();
    Ok(Frame::ok())
}

/// Leaves MULTI state and forgets watched keys.
pub fn discard_transaction(ctx: &mut Ctx<'_>) {
    ctx.client.leave_multi();
    unwatch_all(ctx);
}

fn unwatch_all(ctx: &mut Ctx<'_>) {
    ctx.client.unwatch_all(&mut ctx.exec.ks.watches);
}

fn discard(ctx: &mut Ctx<'_>, _: &[Bytes]) -> CmdResult {
    if ctx.client.multi.is_none() {
        return Err(CommandError::err("DISCARD without MULTI"));
    }
    discard_transaction(ctx);
    Ok(Frame::ok())
}

/// True if a watched key has logically expired since WATCH (Redis's `isWatchedKeyExpired`):
/// one already expired at WATCH does not count.
fn watched_key_expired(ctx: &mut Ctx<'_>) -> bool {
    let (now, id) = (ctx.now_ms, ctx.client.id);
    let ks = &ctx.exec.ks;
    ctx.client.watched.iter().any(|(db, key)| {
        !ks.watches.watched_expired(id, *db, key) && ks.dbs[*db].is_expired(key, now)
    })
}

fn exec(ctx: &mut Ctx<'_>, _: &[Bytes]) -> CmdResult {
    let Some(queued) = ctx.client.multi.take() else {
        return Err(CommandError::err("EXEC without MULTI"));
    };
    let failed = ctx.client.multi_failed;
    let aborted = ctx.ks.watches.is_dirty(ctx.client.id) || watched_key_expired(ctx);
    discard_transaction(ctx);
    if failed {
        return Err(CommandError::raw(
            "EXECABORT Transaction discarded because of previous errors.",
        ));
    }
    if aborted {
        return Ok(Frame::NullArray);
    }
    let mut replies = Vec::with_capacity(queued.len());
    let mut out: Vec<Propagated> = Vec::new();
    // EXEC itself is not in the slow log; the commands it runs are, each on its own time.
    let (slower_than, slowlog_len) = {
        let settings = &ctx.server.config.read().settings;
        (settings.slowlog_slower_than, settings.slowlog_max_len)
    };
    ctx.in_exec = true;
    for argv in &queued {
        let resolved = resolve(argv).map(|r| (r, changed_rules_deny(ctx, r, argv)));
        let reply = match resolved {
            Ok((_, Some(denied))) => CommandError::raw(format!(
                "NOPERM ACLs rules changed between the moment the transaction was accumulated and the EXEC call. This command is no longer allowed for the following reason: {}",
                denied.exec_reason()
            ))
            .into_frame(),
            Ok((resolved, None)) => {
                // Each command counts in INFO commandstats as it runs, as in Redis.
                let started = quanta::Instant::now();
                let reply = run_locked(ctx, resolved.spec, argv, &mut out);
                crate::dispatch::remember_reads(ctx, resolved.spec, argv);
                let usec = started.elapsed().as_micros() as u64;
                ctx.client.tally.command(resolved, Counted::Call, usec, reply.is_error());
                if !resolved.spec.has(crate::cmd::flags::SKIP_SLOWLOG) {
                    let (server, client) = (ctx.server, &*ctx.client);
                    crate::slowlog::log_if_slow(server, client, argv, usec, slower_than, slowlog_len);
                }
                reply
            }
            Err(e) => e.into_frame(),
        };
        if reply.is_error() && !std::mem::take(&mut ctx.client.error_counted) {
            ctx.client.tally.error(&reply);
            ctx.server.stats.errors.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        replies.push(reply);
        if ctx.effect.is_some() {
            // QUIT/SHUTDOWN inside a transaction take effect after EXEC's reply.
            break;
        }
    }
    ctx.in_exec = false;
    crate::exec::as_one_unit(&mut out);
    // Hand the unit to the dispatcher, which propagates what a non-write command records.
    ctx.exec.rewrites = Some(out);
    // EXEC's reply is built now, in the client's protocol, because replies of queued commands
    // (e.g. HELLO 3 inside MULTI) must be encoded consistently with what the client expects.
    let proto: Protocol = ctx.client.resp;
    let mut encoded = Vec::new();
    Frame::Array(replies).encode(proto, &mut encoded);
    Ok(Frame::Raw(Bytes::from(encoded)))
}

/// ACL rules are checked again at EXEC, in case they changed since the command was queued;
/// a denial is logged in the `multi` context.
fn changed_rules_deny(
    ctx: &mut Ctx<'_>,
    resolved: crate::dispatch::Resolved,
    argv: &[Bytes],
) -> Option<crate::acl::check::Denied> {
    let user = ctx.client.user.user.as_deref().filter(|u| !u.unrestricted)?;
    let denied = crate::acl::check::check(user, resolved, argv).err()?;
    let context = crate::acl::log::Context::Multi;
    let fullname = resolved.fullname();
    crate::acl::log_denied(ctx.server, ctx.client, resolved, argv, denied, context, &fullname);
    Some(denied)
}

fn watch(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    if ctx.client.multi.is_some() {
        return Err(CommandError::err("WATCH inside MULTI is not allowed"));
    }
    let db = ctx.db;
    let id = ctx.client.id;
    for key in &args[1..] {
        if ctx.client.watched.iter().any(|(d, k)| *d == db && k == key) {
            continue;
        }
        // Redis only looks: a key already expired is flagged, not deleted (see `Watches`).
        let expired = ctx.db_ref().is_expired(key, ctx.now_ms);
        ctx.ks.watches.watch(id, db, key.clone(), expired);
        ctx.client.watched.push((db, key.clone()));
    }
    Ok(Frame::ok())
}

fn unwatch(ctx: &mut Ctx<'_>, _: &[Bytes]) -> CmdResult {
    unwatch_all(ctx);
    Ok(Frame::ok())
}
