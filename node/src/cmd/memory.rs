//! MEMORY: USAGE (an estimate per key, `db::memory`), STATS (INFO memory's figures as a map),
//! DOCTOR, MALLOC-STATS, PURGE.

use bytes::Bytes;
use common::resp::Frame;

use super::info::{memory_footprint, rss_bytes, used_memory};
use crate::cmd::args::{int, is};
use crate::cmd::flags::*;
use crate::cmd::{cmd, container, CommandSpec};
use crate::error::{CmdResult, CommandError};
use crate::exec::Ctx;

/// The MEMORY command.
pub static COMMANDS: &[CommandSpec] = &[container("memory", -2, 0, SUBCOMMANDS)];

static SUBCOMMANDS: &[CommandSpec] = &[
    cmd("usage", -3, READONLY, (2, 2, 1), usage),
    cmd("stats", 2, 0, (0, 0, 0), stats),
    cmd("doctor", 2, 0, (0, 0, 0), doctor),
    cmd("malloc-stats", 2, 0, (0, 0, 0), malloc_stats),
    cmd("purge", 2, 0, (0, 0, 0), purge),
    cmd("help", 2, LOADING | STALE, (0, 0, 0), help),
];

/// Elements of an aggregate looked at by default (Redis's `OBJ_COMPUTE_SIZE_DEF_SAMPLES`).
const DEFAULT_SAMPLES: usize = 5;

fn usage(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let mut samples = DEFAULT_SAMPLES;
    let mut i = 3;
    while i < args.len() {
        if !is(&args[i], "samples") || i + 1 >= args.len() {
            return Err(CommandError::Syntax);
        }
        let n = int(&args[i + 1])?;
        if n < 0 {
            return Err(CommandError::Syntax);
        }
        // 0 means every element.
        samples = n.min(usize::MAX as i64) as usize;
        i += 2;
    }
    // As Redis: a plain table lookup, without expiring the key.
    let key = &args[2];
    Ok(match ctx.db_ref().keys.get(key) {
        Some(value) => Frame::Integer(crate::db::memory::usage(key, value, samples) as i64),
        None => Frame::Null,
    })
}

fn stats(ctx: &mut Ctx<'_>, _: &[Bytes]) -> CmdResult {
    let rss = rss_bytes();
    let used = used_memory(rss);
    let peak = (crate::alloc::peak() as u64).max(used);
    let startup = ctx.server.startup_memory.min(used);
    let footprint = memory_footprint(ctx);
    let overhead = (startup + footprint.structures).min(used);
    let dataset = used - overhead;
    let keys: u64 = ctx.ks.dbs.iter().map(|db| db.keys.len() as u64).sum();
    let int = |n: u64| Frame::Integer(n as i64);
    let ratio = |a: u64, b: u64| Frame::Double(a as f64 / b.max(1) as f64);
    let mut out: Vec<(Frame, Frame)> = vec![
        (Frame::bulk_static("peak.allocated"), int(peak)),
        (Frame::bulk_static("total.allocated"), int(used)),
        (Frame::bulk_static("startup.allocated"), int(startup)),
        (Frame::bulk_static("replication.backlog"), int(footprint.backlog)),
        (Frame::bulk_static("clients.slaves"), int(0)),
        (Frame::bulk_static("clients.normal"), int(footprint.clients)),
        (Frame::bulk_static("cluster.links"), int(0)),
        (Frame::bulk_static("aof.buffer"), int(footprint.aof_buffer)),
        (Frame::bulk_static("lua.caches"), int(0)),
        (Frame::bulk_static("functions.caches"), int(0)),
    ];
    for (i, db) in ctx.ks.dbs.iter().enumerate() {
        if db.keys.is_empty() {
            continue;
        }
        let table = |n: usize| int((n * crate::db::memory::ENTRY) as u64);
        out.push((
            Frame::Bulk(Bytes::from(format!("db.{i}"))),
            Frame::Map(vec![
                (Frame::bulk_static("overhead.hashtable.main"), table(db.keys.len())),
                (Frame::bulk_static("overhead.hashtable.expires"), table(db.expires.len())),
                (Frame::bulk_static("overhead.hashtable.slot-to-keys"), int(0)),
            ]),
        ));
    }
    let rest = [
        ("overhead.total", int(overhead)),
        ("keys.count", int(keys)),
        ("keys.bytes-per-key", int((used - startup).checked_div(keys).unwrap_or(0))),
        ("dataset.bytes", int(dataset)),
        (
            "dataset.percentage",
            Frame::Double(dataset as f64 * 100.0 / (used - startup).max(1) as f64),
        ),
        ("peak.percentage", Frame::Double(used as f64 * 100.0 / peak.max(1) as f64)),
        // The system allocator keeps no statistics of its own: its view is ours.
        ("allocator.allocated", int(used)),
        ("allocator.active", int(used)),
        ("allocator.resident", int(rss)),
        ("allocator-fragmentation.ratio", Frame::Double(1.0)),
        ("allocator-fragmentation.bytes", int(0)),
        ("allocator-rss.ratio", ratio(rss, used)),
        ("allocator-rss.bytes", Frame::Integer(rss as i64 - used as i64)),
        ("rss-overhead.ratio", Frame::Double(1.0)),
        ("rss-overhead.bytes", int(0)),
        ("fragmentation", ratio(rss, used)),
        ("fragmentation.bytes", Frame::Integer(rss as i64 - used as i64)),
    ];
    out.extend(rest.into_iter().map(|(name, value)| (Frame::bulk_static(name), value)));
    Ok(Frame::Map(out))
}

fn doctor(ctx: &mut Ctx<'_>, _: &[Bytes]) -> CmdResult {
    let rss = rss_bytes();
    let used = used_memory(rss);
    let ratio = rss as f64 / used.max(1) as f64;
    let text = if used < 5 << 20 {
        "This instance holds very little data: there is nothing to diagnose yet.".to_string()
    } else if ratio > 1.4 {
        format!(
            "The resident set is {ratio:.2} times the memory in use ({rss} against {used} \
             bytes): memory freed by deletions is still held by the process. MEMORY PURGE \
             returns what the allocator can give back."
        )
    } else {
        let keys: usize = ctx.ks.dbs.iter().map(|db| db.keys.len()).sum();
        format!("No memory problems found ({used} bytes in use for {keys} keys).")
    };
    Ok(Frame::Verbatim("txt", Bytes::from(text)))
}

fn malloc_stats(_: &mut Ctx<'_>, _: &[Bytes]) -> CmdResult {
    // Redis's answer when it is not built with jemalloc, as warden-node is not.
    Ok(Frame::Verbatim("txt", Bytes::from_static(b"Stats not supported for the current allocator")))
}

fn purge(_: &mut Ctx<'_>, _: &[Bytes]) -> CmdResult {
    // Give free heap pages back to the system, as jemalloc's purge does for Redis.
    // SAFETY: malloc_trim only walks the allocator's own free lists.
    unsafe { libc::malloc_trim(0) };
    Ok(Frame::ok())
}

fn help(_: &mut Ctx<'_>, _: &[Bytes]) -> CmdResult {
    Ok(super::help::reply(
        "MEMORY",
        &[
            ("DOCTOR", "A readable diagnosis of memory use."),
            ("MALLOC-STATS", "The allocator's own statistics, where it keeps any."),
            ("PURGE", "Return free heap pages to the system."),
            ("STATS", "Where the memory in use goes."),
            (
                "USAGE <key> [SAMPLES <count>]",
                "Bytes taken by <key> and its value; aggregates are estimated from <count> \
                 elements (default 5, 0 for all).",
            ),
        ],
    ))
}
