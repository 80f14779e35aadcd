//! SAVE, and the synchronous save SHUTDOWN SAVE performs.
//!
//! BGSAVE, save points, and the MISCONF refusal after a failed background save.
//!
//! BGSAVE takes its point-in-time snapshot by streaming the keyspace into a temp file while the
//! keyspace lock is held (there is no fork), then fsyncs and renames it on a background
//! thread. It costs no second copy in memory, but writers are paused while it serialises
//! (about 0.3–0.4 s per million small keys); a save that never pauses writers needs an
//! incremental snapshot, not built yet.

use std::sync::atomic::Ordering;

use bytes::Bytes;
use common::resp::Frame;
use tracing::{info, warn};

use crate::cmd::flags::*;
use crate::cmd::{cmd, CommandSpec};
use crate::error::{CmdResult, CommandError};
use crate::exec::Ctx;
use crate::persist::{dumpfile, Aux, ReplAux, WriteOptions};

/// The persistence commands.
pub static COMMANDS: &[CommandSpec] = &[
    cmd("save", 1, ADMIN | NOSCRIPT | NO_MULTI, (0, 0, 0), save),
    cmd("bgsave", -1, ADMIN | NOSCRIPT, (0, 0, 0), bgsave),
    cmd("bgrewriteaof", 1, ADMIN | NOSCRIPT | NO_MULTI, (0, 0, 0), bgrewriteaof),
];

/// BGREWRITEAOF. The snapshot is taken under the keyspace lock (no fork), then written; the
/// reply comes once the new base is durable.
fn bgrewriteaof(ctx: &mut Ctx<'_>, _: &[Bytes]) -> CmdResult {
    if !ctx.server.aof_on.load(Ordering::Relaxed) {
        // Redis would write a one-off AOF; without the AOF on there is nothing to rewrite here.
        return Err(CommandError::err("BGREWRITEAOF needs appendonly yes in warden-node"));
    }
    let shared = ctx.server.self_arc();
    std::thread::spawn(move || {
        if let Err(e) = crate::aof::rewrite(&shared) {
            warn!(cause = %e, "AOF rewrite failed");
        }
    });
    Ok(Frame::simple("Background append only file rewriting started"))
}

/// Counters INFO persistence reports.
#[derive(Debug, Default, Clone)]
pub struct PersistStats {
    /// Successful saves since start (`rdb_saves`).
    pub saves: u64,
    /// The last save failed (`rdb_last_bgsave_status:err`).
    pub last_failed: bool,
    /// Keys loaded at startup (`rdb_last_load_keys_loaded`).
    pub keys_loaded: u64,
    /// Keys dropped at startup because they had expired (`rdb_last_load_keys_expired`).
    pub keys_expired: u64,
    /// A background save is writing its file (`rdb_bgsave_in_progress`).
    pub bgsave_in_progress: bool,
    /// How long the last background save took, in seconds (-1: none yet).
    pub last_bgsave_secs: i64,
    /// When the last background save attempt failed (unix s), for the 5 s retry delay.
    pub last_failed_at: i64,
}

/// Where and how snapshots are written: `dir`, `dbfilename`, and `rdbcompression` /
/// `rdbchecksum` as writer options.
pub fn dump_target(shared: &crate::server::Shared) -> (std::path::PathBuf, String, WriteOptions) {
    let config = shared.config.read();
    (
        config.settings.dir.clone(),
        config.get("dbfilename").unwrap_or("dump.rdb").to_string(),
        rdb_options(&config),
    )
}

/// The RDB writer options the configuration asks for.
pub fn rdb_options(config: &crate::config::Config) -> WriteOptions {
    WriteOptions {
        compression: config.get("rdbcompression") == Some("yes"),
        checksum: config.get("rdbchecksum") == Some("yes"),
    }
}

/// The replication state a snapshot taken now records (stream db, replid, offset).
pub fn repl_info(shared: &crate::server::Shared) -> Option<(usize, String, i64)> {
    let master_db = shared.master_db.load(Ordering::Relaxed);
    shared.repl.lock().save_info(master_db)
}

/// A snapshot's AUX fields.
pub fn snapshot_aux(now_ms: i64, repl: &Option<(usize, String, i64)>, aof_base: bool) -> Aux<'_> {
    Aux {
        ctime: now_ms / 1000,
        used_mem: crate::alloc::in_use() as u64,
        repl: repl.as_ref().map(|(db, id, offset)| ReplAux { stream_db: *db, id, offset: *offset }),
        aof_base,
    }
}

/// Saves the keyspace to `dir/dbfilename` now, holding the keyspace lock (like Redis's SAVE,
/// it blocks every client for the duration). Updates LASTSAVE, the dirty counter and INFO.
pub fn save_now(ctx: &mut Ctx<'_>) -> Result<(), std::io::Error> {
    if ctx.server.persist.lock().bgsave_in_progress {
        return Err(std::io::Error::other("Background save already in progress"));
    }
    save_blocking(ctx.server, ctx.exec.ks, ctx.now_ms)
}

/// [`save_now`] for callers outside a command (shutdown on a signal).
pub fn save_blocking(
    server: &crate::server::Shared,
    ks: &mut crate::db::Keyspace,
    now_ms: i64,
) -> Result<(), std::io::Error> {
    let (dir, dbfilename, options) = dump_target(server);
    let repl = repl_info(server);
    let aux = snapshot_aux(now_ms, &repl, false);
    match dumpfile::save(ks, &dir, &dbfilename, &aux, options) {
        Ok(saved) => {
            ks.dirty = 0;
            server.lastsave.store(now_ms / 1000, Ordering::Relaxed);
            let mut stats = server.persist.lock();
            stats.saves += 1;
            stats.last_failed = false;
            drop(stats);
            server.refresh_gates();
            info!(path = %saved.path.display(), bytes = saved.bytes, took_ms = saved.took.as_millis() as u64, "DB saved on disk");
            Ok(())
        }
        Err(e) => {
            server.persist.lock().last_failed = true;
            warn!(cause = %e, dir = %dir.display(), "failed saving the DB");
            Err(e)
        }
    }
}

fn save(ctx: &mut Ctx<'_>, _: &[Bytes]) -> CmdResult {
    match save_now(ctx) {
        Ok(()) => Ok(Frame::ok()),
        // Redis answers a bare `-ERR` and logs the reason.
        Err(_) => Err(CommandError::raw("ERR")),
    }
}

fn bgsave(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    match args.get(1) {
        None => {}
        Some(a) if crate::cmd::args::is(a, "schedule") && args.len() == 2 => {}
        Some(_) => return Err(CommandError::Syntax),
    }
    if ctx.server.persist.lock().bgsave_in_progress {
        return Err(CommandError::err("Background save already in progress"));
    }
    start_bgsave(ctx.server, ctx.exec.ks, ctx.now_ms);
    Ok(Frame::simple("Background saving started"))
}

/// Starts a background save of `ks` (the caller holds the keyspace lock): the snapshot is
/// serialised now, the file written by a background thread.
pub fn start_bgsave(shared: &crate::server::Shared, ks: &mut crate::db::Keyspace, now_ms: i64) {
    let (dir, dbfilename, options) = dump_target(shared);
    let started = std::time::Instant::now();
    let repl = repl_info(shared);
    let aux = snapshot_aux(now_ms, &repl, false);
    let dirty_at_snapshot = ks.dirty;
    shared.persist.lock().bgsave_in_progress = true;
    // Streamed straight into the temp file (page cache), not into memory: the save costs no
    // second copy of the data. The fsync and rename run on a background thread.
    let pending = match dumpfile::begin_save(ks, &dir, &dbfilename, &aux, options) {
        Ok(p) => p,
        Err(e) => {
            finish_bgsave(shared, Err(e), started, 0);
            return;
        }
    };
    info!(took_ms = started.elapsed().as_millis() as u64, "Background saving started");
    let shared = shared.self_arc();
    std::thread::spawn(move || {
        let result = pending.finish();
        finish_bgsave(&shared, result.map(|_| ()), started, dirty_at_snapshot);
    });
}

fn finish_bgsave(
    shared: &crate::server::Shared,
    result: std::io::Result<()>,
    started: std::time::Instant,
    dirty_at_snapshot: u64,
) {
    let now = crate::server::unix_ms() / 1000;
    if result.is_ok() {
        // Changes made while the file was written are still unsaved.
        let mut ks = shared.keyspace.lock();
        ks.dirty = ks.dirty.saturating_sub(dirty_at_snapshot);
        shared.lastsave.store(now, Ordering::Relaxed);
    }
    let mut stats = shared.persist.lock();
    stats.bgsave_in_progress = false;
    stats.last_bgsave_secs = started.elapsed().as_secs() as i64;
    match result {
        Ok(()) => {
            stats.saves += 1;
            stats.last_failed = false;
            info!("Background saving terminated with success");
        }
        Err(e) => {
            stats.last_failed = true;
            stats.last_failed_at = now;
            warn!(cause = %e, "Background saving error");
        }
    }
    drop(stats);
    shared.refresh_gates();
}

/// Once a second: start a background save when a `save <seconds> <changes>` point is reached
/// (5 s after a failure at the earliest, as Redis retries).
pub fn save_points_cron(shared: &crate::server::Shared) {
    let points = shared.config.read().settings.save_points.clone();
    if points.is_empty() {
        return;
    }
    let now_ms = crate::server::unix_ms();
    let now = now_ms / 1000;
    {
        let stats = shared.persist.lock();
        if stats.bgsave_in_progress || (stats.last_failed && now - stats.last_failed_at < 5) {
            return;
        }
    }
    let mut ks = shared.keyspace.lock();
    let since = now - shared.lastsave.load(Ordering::Relaxed);
    let due = points.iter().any(|&(secs, changes)| ks.dirty >= changes && since > secs as i64);
    if due {
        info!(changes = ks.dirty, seconds = since, "save point reached: saving");
        start_bgsave(shared, &mut ks, now_ms);
    }
}
