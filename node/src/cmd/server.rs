//! Server commands: DBSIZE FLUSHDB FLUSHALL SWAPDB TIME LASTSAVE DEBUG SHUTDOWN MONITOR
//! SLOWLOG LATENCY COMMAND.

use std::sync::atomic::Ordering;

use bytes::Bytes;
use common::resp::Frame;

use crate::cmd::args::{int, int32, is};
use crate::cmd::flags::*;
use crate::cmd::{cmd, container, repr, CommandSpec};
use crate::db::keyspace::WholeDbChange;
use crate::error::{CmdResult, CommandError};
use crate::exec::{Ctx, Effect};
use crate::push::Delivery;
use crate::server::Shared;

/// The server commands.
pub static COMMANDS: &[CommandSpec] = &[
    cmd("dbsize", 1, READONLY | FAST, (0, 0, 0), dbsize),
    cmd("flushdb", -1, WRITE, (0, 0, 0), flushdb),
    cmd("flushall", -1, WRITE, (0, 0, 0), flushall),
    cmd("swapdb", 3, WRITE | FAST, (0, 0, 0), swapdb),
    cmd("time", 1, LOADING | STALE | FAST, (0, 0, 0), time),
    cmd("lastsave", 1, LOADING | STALE | FAST, (0, 0, 0), lastsave),
    cmd("role", 1, NOSCRIPT | LOADING | STALE | FAST, (0, 0, 0), role),
    cmd("debug", -2, ADMIN | NOSCRIPT | LOADING | STALE, (0, 0, 0), super::debug::debug),
    cmd(
        "shutdown",
        -1,
        ADMIN | NOSCRIPT | LOADING | STALE | NO_MULTI | ALLOW_BUSY,
        (0, 0, 0),
        shutdown,
    ),
    cmd("monitor", 1, ADMIN | NOSCRIPT | LOADING | STALE, (0, 0, 0), monitor),
    container("slowlog", -2, 0, SLOWLOG),
    container("latency", -2, 0, LATENCY),
];

static SLOWLOG: &[CommandSpec] = &[
    cmd("get", -2, ADMIN | LOADING | STALE, (0, 0, 0), slowlog_get),
    cmd("len", 2, ADMIN | LOADING | STALE, (0, 0, 0), slowlog_len),
    cmd("reset", 2, ADMIN | LOADING | STALE, (0, 0, 0), slowlog_reset),
    cmd("help", 2, LOADING | STALE, (0, 0, 0), slowlog_help),
];

static LATENCY: &[CommandSpec] = &[
    cmd("latest", 2, ADMIN | NOSCRIPT | LOADING | STALE, (0, 0, 0), latency_latest),
    cmd("history", 3, ADMIN | NOSCRIPT | LOADING | STALE, (0, 0, 0), latency_history),
    cmd("reset", -2, ADMIN | NOSCRIPT | LOADING | STALE, (0, 0, 0), latency_reset),
    cmd("doctor", 2, ADMIN | NOSCRIPT | LOADING | STALE, (0, 0, 0), latency_doctor),
    cmd("graph", 3, ADMIN | NOSCRIPT | LOADING | STALE, (0, 0, 0), latency_graph),
    cmd("histogram", -2, ADMIN | NOSCRIPT | LOADING | STALE, (0, 0, 0), latency_histogram),
    cmd("help", 2, LOADING | STALE, (0, 0, 0), latency_help),
];

/// Redis's `addReplySubcommandSyntaxError`.
pub fn subcommand_syntax(sub: &[u8], command: &str) -> CommandError {
    let mut text = b"ERR unknown subcommand or wrong number of arguments for '".to_vec();
    let sub = crate::dispatch::c_str(sub);
    text.extend_from_slice(&sub[..sub.len().min(128)]);
    text.extend_from_slice(format!("'. Try {command} HELP.").as_bytes());
    CommandError::Bytes(Bytes::from(text))
}

fn dbsize(ctx: &mut Ctx<'_>, _: &[Bytes]) -> CmdResult {
    Ok(Frame::Integer(ctx.db_ref().keys.len() as i64))
}

/// FLUSHALL/FLUSHDB's mode: true to free the old data in the background (ASYNC, or no mode
/// given and `lazyfree-lazy-user-flush yes`).
fn flush_mode(ctx: &Ctx<'_>, args: &[Bytes]) -> Result<bool, CommandError> {
    match args.get(1) {
        None => Ok(ctx.server.config.read().settings.lazyfree_lazy_user_flush),
        Some(a) if args.len() == 2 && is(a, "async") => Ok(true),
        Some(a) if args.len() == 2 && is(a, "sync") => Ok(false),
        Some(_) => Err(CommandError::Syntax),
    }
}

/// Empties one database, marking its watchers (`lazy`: its tables are freed in the
/// background). Returns how many keys it held.
pub fn empty_db(ctx: &mut Ctx<'_>, db: usize, lazy: bool) -> usize {
    let ks = &mut *ctx.exec.ks;
    let removed = ks.dbs[db].keys.len();
    let keys = &ks.dbs[db].keys;
    ks.watches.touch_db(db, |k| WholeDbChange {
        was_present: keys.contains_key(k),
        ..Default::default()
    });
    signal_streams(ks, db);
    if lazy {
        if let Some(tables) = ks.dbs[db].take_all() {
            ctx.server.lazyfree.free_table(tables, removed as u64);
        }
    } else {
        ks.dbs[db].clear();
    }
    ks.tracking.flushed();
    removed
}

/// Readers blocked in XREADGROUP on a stream of `db` that is about to go must learn it (they
/// are answered `-UNBLOCKED`), as Redis signals every stream of an emptied or swapped database.
fn signal_streams(ks: &mut crate::db::Keyspace, db: usize) {
    if ks.blocking.is_empty() {
        return;
    }
    let streams: Vec<Bytes> = ks.dbs[db]
        .keys
        .iter()
        .filter(|(_, v)| matches!(v, crate::db::Value::Stream(_)))
        .map(|(k, _)| Bytes::copy_from_slice(k))
        .collect();
    for key in streams {
        ks.blocking.signal(db, &key);
    }
}

fn flushdb(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let lazy = flush_mode(ctx, args)?;
    let db = ctx.db;
    let n = empty_db(ctx, db, lazy);
    // FLUSHDB is always propagated, even on an empty database.
    ctx.dirty(n as u64 + 1);
    Ok(Frame::ok())
}

fn flushall(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let lazy = flush_mode(ctx, args)?;
    // As Redis: a background save of the old data is abandoned, and with save points the
    // empty dataset is saved at once, so a restart cannot bring the flushed keys back.
    crate::cmd::persistence::abandon_bgsave(ctx.server, ctx.exec.ks);
    let mut n = 0;
    for db in 0..ctx.ks.dbs.len() {
        n += empty_db(ctx, db, lazy);
    }
    if !ctx.server.config.read().settings.save_points.is_empty() {
        let _ = crate::cmd::persistence::save_blocking(ctx.server, ctx.exec.ks, ctx.now_ms);
    }
    ctx.dirty(n as u64 + 1);
    Ok(Frame::ok())
}

fn swapdb(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let a = int32(&args[1]).map_err(|_| CommandError::err("invalid first DB index"))?;
    let b = int32(&args[2]).map_err(|_| CommandError::err("invalid second DB index"))?;
    let count = ctx.ks.dbs.len() as i64;
    if a < 0 || a >= count || b < 0 || b >= count {
        return Err(CommandError::err("DB index is out of range"));
    }
    let (a, b) = (a as usize, b as usize);
    if a == b {
        return Ok(Frame::ok());
    }
    let now = ctx.now_ms;
    let ks = &mut *ctx.exec.ks;
    // Each side's watchers see their database's table replaced by the other's.
    let (dbs, watches) = (&ks.dbs, &mut ks.watches);
    for (db, incoming) in [(a, b), (b, a)] {
        watches.touch_db(db, |k| WholeDbChange {
            was_present: dbs[db].keys.contains_key(k),
            incoming: dbs[incoming].keys.contains_key(k),
            incoming_expired: dbs[incoming].is_expired(k, now),
        });
    }
    // A stream that leaves a database is signalled there as well (the keys now present are
    // signalled below).
    signal_streams(ks, a);
    signal_streams(ks, b);
    ks.dbs.swap(a, b);
    // Clients blocked in either database may now find their keys.
    for db in [a, b] {
        let ready: Vec<Bytes> = ks.dbs[db].keys.keys().map(|k| Bytes::copy_from_slice(k)).collect();
        for key in ready {
            ks.blocking.signal(db, &key);
        }
    }
    ctx.dirty(1);
    Ok(Frame::ok())
}

fn time(_: &mut Ctx<'_>, _: &[Bytes]) -> CmdResult {
    let now =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    Ok(Frame::Array(vec![
        Frame::bulk_int(now.as_secs() as i64),
        Frame::bulk_int(now.subsec_micros() as i64),
    ]))
}

fn lastsave(ctx: &mut Ctx<'_>, _: &[Bytes]) -> CmdResult {
    Ok(Frame::Integer(ctx.server.lastsave.load(Ordering::Relaxed)))
}

/// ROLE: master with its online replicas, or replica with its link state.
fn role(ctx: &mut Ctx<'_>, _: &[Bytes]) -> CmdResult {
    Ok(crate::repl::report::role(ctx.server))
}

/// SHUTDOWN's flags, checked as Redis checks them (ABORT answers that no shutdown is in
/// progress: ours never waits where it could be aborted).
pub struct ShutdownArgs {
    /// NOSAVE.
    pub nosave: bool,
    /// SAVE.
    pub save: bool,
    /// FORCE.
    pub force: bool,
    /// NOW.
    pub now: bool,
}

/// Reads SHUTDOWN's arguments (also for a busy script, see `crate::busy`).
pub fn shutdown_args(args: &[Bytes]) -> Result<ShutdownArgs, CommandError> {
    let mut flags = ShutdownArgs { nosave: false, save: false, force: false, now: false };
    let mut abort = false;
    for a in &args[1..] {
        if is(a, "nosave") {
            flags.nosave = true;
        } else if is(a, "save") {
            flags.save = true;
        } else if is(a, "abort") {
            abort = true;
        } else if is(a, "force") {
            flags.force = true;
        } else if is(a, "now") {
            flags.now = true;
        } else {
            return Err(CommandError::Syntax);
        }
    }
    if (flags.nosave && flags.save) || (abort && args.len() > 2) {
        return Err(CommandError::Syntax);
    }
    if abort {
        return Err(CommandError::err("No shutdown in progress."));
    }
    Ok(flags)
}

fn shutdown(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let ShutdownArgs { nosave, save, force, now } = shutdown_args(args)?;
    // Unless NOW: a master first gives its replicas up to `shutdown-timeout` seconds to
    // acknowledge everything (writes are paused meanwhile), then the shutdown proceeds.
    if let Some(deadline) = crate::repl::catch_up::deadline(ctx.server).filter(|_| !now) {
        crate::repl::catch_up::begin(ctx.server, deadline);
        ctx.effect = Some(Effect::ShutdownAfterReplicas { deadline, save, nosave, force });
        return Ok(Frame::Raw(Bytes::new()));
    }
    finish_shutdown(ctx, save, nosave, force)
}

/// The last part of SHUTDOWN (also run after waiting for replicas): save as asked, then stop.
pub fn finish_shutdown(ctx: &mut Ctx<'_>, save: bool, nosave: bool, force: bool) -> CmdResult {
    if !final_save(ctx.server, ctx.exec.ks, ctx.now_ms, StopFlags { save, nosave, force }) {
        return Err(CommandError::err("Errors trying to SHUTDOWN. Check logs."));
    }
    tracing::warn!("user requested shutdown");
    ctx.effect = Some(Effect::Shutdown);
    // The connection closes without a reply when the shutdown proceeds, as in Redis.
    Ok(Frame::Raw(Bytes::new()))
}

/// SHUTDOWN's flags that decide its last save (a signal's come from `shutdown-on-sig*`).
#[derive(Debug, Clone, Copy, Default)]
pub struct StopFlags {
    /// SAVE: save even without save points.
    pub save: bool,
    /// NOSAVE: do not save.
    pub nosave: bool,
    /// FORCE: stop even if the save failed.
    pub force: bool,
}

/// The last save of a stop, SHUTDOWN's or a signal's: SAVE saves, NOSAVE does not, otherwise
/// the save points decide, as in Redis; a background save in progress is abandoned for it, as
/// Redis kills its child. It runs with the keyspace locked (the caller holds it) and then marks
/// it stopped, so no command changes the data after the save. False when the save failed
/// without FORCE: the server keeps running rather than exit and lose the writes since the last
/// snapshot.
pub fn final_save(
    shared: &Shared,
    ks: &mut crate::db::Keyspace,
    now_ms: i64,
    flags: StopFlags,
) -> bool {
    let points = !shared.config.read().settings.save_points.is_empty();
    if flags.save || (points && !flags.nosave) {
        tracing::info!("saving the final RDB snapshot before exiting");
        if let Err(e) = super::persistence::save_blocking(shared, ks, now_ms) {
            tracing::warn!(cause = %e, "error trying to save the DB");
            if !flags.force {
                return false;
            }
        }
    }
    ks.stopped = true;
    true
}

fn monitor(ctx: &mut Ctx<'_>, _: &[Bytes]) -> CmdResult {
    // Redis's words for a client that may not block (here: inside EXEC). SUBSCRIBE, unlike
    // MONITOR, is allowed there.
    if ctx.in_exec {
        return Err(CommandError::err("MONITOR isn't allowed for DENY BLOCKING client"));
    }
    ctx.effect = Some(Effect::Monitor);
    Ok(Frame::ok())
}

/// Sends a command line to every MONITOR client: `+<secs>.<micros> [<db> <who>] "arg" …`,
/// where `who` is the client's address, or `lua` for a script's commands.
pub fn feed_monitors(
    shared: &Shared,
    db: usize,
    who: &dyn std::fmt::Display,
    argv: &[Bytes],
    now_ms: i64,
) {
    if shared.monitoring.load(Ordering::Relaxed) == 0 {
        return;
    }
    let clients = shared.clients.lock();
    if clients.monitors.is_empty() {
        return;
    }
    let micros = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_micros())
        .unwrap_or(0);
    let mut line = format!("{}.{:06} [{} {}]", now_ms / 1000, micros, db, who);
    for arg in crate::redact::redacted(argv).iter() {
        line.push(' ');
        line.push_str(&repr(arg));
    }
    let frame = Frame::Simple(Bytes::from(line));
    for id in &clients.monitors {
        if let Some(c) = clients.get(*id) {
            if c.push.send(frame.clone(), &clients.monitor_limit) == Delivery::OverLimit {
                tracing::warn!(
                    client = id,
                    "client scheduled to be closed ASAP for overcoming of output buffer limits"
                );
                c.kill.kill();
            }
        }
    }
}

fn slowlog_get(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    if args.len() > 3 {
        return Err(subcommand_syntax(&args[1], "SLOWLOG"));
    }
    let count = match args.get(2) {
        None => 10,
        Some(a) => match int(a) {
            Ok(n) if n >= -1 => n,
            _ => return Err(CommandError::err("count should be greater than or equal to -1")),
        },
    };
    let log = ctx.server.slowlog.lock();
    let take = if count == -1 { usize::MAX } else { count as usize };
    let entries = log
        .entries
        .iter()
        .take(take)
        .map(|e| {
            Frame::Array(vec![
                Frame::Integer(e.id as i64),
                Frame::Integer(e.time),
                Frame::Integer(e.micros as i64),
                Frame::Array(e.argv.iter().cloned().map(Frame::Bulk).collect()),
                Frame::Bulk(Bytes::from(e.addr.clone())),
                Frame::Bulk(Bytes::from(e.name.clone())),
            ])
        })
        .collect();
    Ok(Frame::Array(entries))
}

fn slowlog_len(ctx: &mut Ctx<'_>, _: &[Bytes]) -> CmdResult {
    Ok(Frame::Integer(ctx.server.slowlog.lock().entries.len() as i64))
}

fn slowlog_reset(ctx: &mut Ctx<'_>, _: &[Bytes]) -> CmdResult {
    ctx.server.slowlog.lock().reset();
    Ok(Frame::ok())
}

fn slowlog_help(_: &mut Ctx<'_>, _: &[Bytes]) -> CmdResult {
    Ok(super::help::reply(
        "SLOWLOG",
        &[
            ("GET [<count>]", "The newest <count> entries (default 10, -1 for all): id, time, microseconds, arguments, client address, client name."),
            ("LEN", "How many entries the log holds."),
            ("RESET", "Empty the log."),
        ],
    ))
}

fn latency_latest(ctx: &mut Ctx<'_>, _: &[Bytes]) -> CmdResult {
    let rows = ctx.server.latency.lock().latest();
    Ok(Frame::Array(
        rows.into_iter()
            .map(|(event, time, latest, max)| {
                Frame::Array(vec![
                    Frame::bulk(event.as_bytes()),
                    Frame::Integer(time),
                    Frame::Integer(latest as i64),
                    Frame::Integer(max as i64),
                ])
            })
            .collect(),
    ))
}

fn latency_history(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let event = String::from_utf8_lossy(&args[2]);
    let monitor = ctx.server.latency.lock();
    let samples = monitor.series(&event).map(|s| s.samples.clone()).unwrap_or_default();
    Ok(Frame::Array(
        samples
            .into_iter()
            .map(|(time, ms)| Frame::Array(vec![Frame::Integer(time), Frame::Integer(ms as i64)]))
            .collect(),
    ))
}

fn latency_reset(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let events: Vec<String> =
        args[2..].iter().map(|a| String::from_utf8_lossy(a).into_owned()).collect();
    Ok(Frame::Integer(ctx.server.latency.lock().reset(&events) as i64))
}

fn latency_doctor(ctx: &mut Ctx<'_>, _: &[Bytes]) -> CmdResult {
    let report = crate::latency_monitor::doctor(&ctx.server.latency.lock());
    Ok(Frame::Verbatim("txt", Bytes::from(report)))
}

fn latency_graph(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let event = String::from_utf8_lossy(&args[2]);
    match ctx.server.latency.lock().series(&event) {
        Some(series) => {
            Ok(Frame::Verbatim("txt", Bytes::from(crate::latency_monitor::graph(&event, series))))
        }
        None => Err(CommandError::err(format!("No samples available for event '{event}'"))),
    }
}

fn latency_histogram(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let only: Vec<String> =
        args[2..].iter().map(|a| String::from_utf8_lossy(a).to_ascii_lowercase()).collect();
    let rows = ctx.server.command_stats.lock().latency_cdf(&only);
    Ok(Frame::Map(
        rows.into_iter()
            .map(|row| {
                let (name, calls) = (row.name, row.calls);
                let cdf = row
                    .cumulative
                    .into_iter()
                    .map(|(usec, n)| (Frame::Integer(usec as i64), Frame::Integer(n as i64)))
                    .collect();
                let detail = Frame::Map(vec![
                    (Frame::bulk_static("calls"), Frame::Integer(calls as i64)),
                    (Frame::bulk_static("histogram_usec"), Frame::Map(cdf)),
                ]);
                (Frame::Bulk(Bytes::from(name)), detail)
            })
            .collect(),
    ))
}

fn latency_help(_: &mut Ctx<'_>, _: &[Bytes]) -> CmdResult {
    Ok(super::help::reply(
        "LATENCY",
        &[
            (
                "LATEST | HISTORY <event> | GRAPH <event>",
                "Latency spikes recorded while latency-monitor-threshold is set: the latest of each event, an event's samples, or its graph.",
            ),
            ("RESET [<event> ...]", "Forget recorded samples."),
            ("DOCTOR", "A readable summary."),
            ("HISTOGRAM [<command> ...]", "Per-command latency histograms."),
        ],
    ))
}
