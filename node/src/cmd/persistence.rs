//! SAVE, and the synchronous save SHUTDOWN SAVE performs.
//!
//! BGSAVE, save points, and the MISCONF refusal after a failed background save.
//!
//! BGSAVE freezes the keyspace at one instant (there is no fork) and writes that instant in
//! chunks of a few hundred keys, serialised by a task on the event loop between rounds of
//! client commands (`write_snapshot`) and written to disk by a background thread: a client
//! waits for one chunk at most, and memory grows only by the pre-images of keys changed ahead
//! of the walk (see [`crate::db::SnapshotDict`] for the invariant). Measured by
//! `bench/bgsave.py` against redis-server. The file is
//! fsynced off the lock and renamed into place while `Shared::persist` is held, after
//! checking that no FLUSHALL or SHUTDOWN save abandoned it meanwhile (they bump the
//! generation), so a stale snapshot never replaces a newer file.

use std::sync::atomic::Ordering;

use bytes::Bytes;
use common::resp::Frame;
use tracing::{info, warn};

use crate::cmd::flags::*;
use crate::cmd::{cmd, CommandSpec};
use crate::error::{CmdResult, CommandError};
use crate::exec::Ctx;
use crate::persist::snapshot::{self, Format, Progress, Snapshot};
use crate::persist::{dumpfile, Aux, RdbWriter, ReplAux, WriteOptions};

/// The persistence commands.
pub static COMMANDS: &[CommandSpec] = &[
    cmd("save", 1, ADMIN | NOSCRIPT | NO_MULTI, (0, 0, 0), save),
    cmd("bgsave", -1, ADMIN | NOSCRIPT, (0, 0, 0), bgsave),
    cmd("bgrewriteaof", 1, ADMIN | NOSCRIPT, (0, 0, 0), bgrewriteaof),
];

/// BGREWRITEAOF. The snapshot is taken under the keyspace lock (no fork), then written; the
/// reply comes once the new base is durable.
fn bgrewriteaof(ctx: &mut Ctx<'_>, _: &[Bytes]) -> CmdResult {
    if !ctx.server.aof_on.load(Ordering::Relaxed) {
        // As Redis: a base is written anyway (see `aof::rewrite_while_off`).
        if std::mem::replace(&mut ctx.server.aof_rewrite_stats.lock().running_while_off, true) {
            return Err(CommandError::err(
                "Background append only file rewriting already in progress",
            ));
        }
        let scheduled = ctx.ks.frozen.is_some();
        let shared = ctx.server.self_arc();
        std::thread::spawn(move || {
            if let Err(e) = crate::aof::rewrite_while_off(&shared) {
                warn!(cause = %e, "AOF rewrite failed");
            }
        });
        return Ok(Frame::simple(if scheduled {
            "Background append only file rewriting scheduled"
        } else {
            "Background append only file rewriting started"
        }));
    }
    let busy =
        ctx.server.aof.lock().as_ref().is_some_and(|st| st.rewriting || st.rewrite_scheduled);
    if busy {
        return Err(CommandError::err("Background append only file rewriting already in progress"));
    }
    // As in Redis: with another snapshot running, the rewrite starts when it ends.
    let scheduled = ctx.ks.frozen.is_some();
    if let Some(st) = ctx.server.aof.lock().as_mut() {
        st.rewrite_scheduled = scheduled;
        st.rewriting = !scheduled;
    }
    let shared = ctx.server.self_arc();
    std::thread::spawn(move || {
        if let Err(e) = crate::aof::rewrite(&shared) {
            warn!(cause = %e, "AOF rewrite failed");
        }
    });
    Ok(Frame::simple(if scheduled {
        "Background append only file rewriting scheduled"
    } else {
        "Background append only file rewriting started"
    }))
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
    /// Bumped to abandon the background save in progress (it renames its file into place
    /// only if the generation it started with is still current).
    pub generation: u64,
    /// The background save in progress: when it started, keys written, keys at its instant.
    pub current: Option<(std::time::Instant, u64, u64)>,
    /// BGSAVE SCHEDULE arrived during an AOF rewrite: start one when it ends.
    pub scheduled: bool,
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
pub fn snapshot_aux<'a>(
    now_ms: i64,
    repl: &'a Option<(usize, String, i64)>,
    aof_base: bool,
    functions: &'a [Bytes],
) -> Aux<'a> {
    Aux {
        functions,
        ctime: now_ms / 1000,
        used_mem: crate::alloc::in_use() as u64,
        repl: repl.as_ref().map(|(db, id, offset)| ReplAux { stream_db: *db, id, offset: *offset }),
        aof_base,
    }
}

/// Saves the keyspace to `dir/dbfilename` now, holding the keyspace lock (like Redis's SAVE,
/// it blocks every client for the duration). Updates LASTSAVE, the dirty counter and INFO.
/// A background save in progress is abandoned first: SHUTDOWN, FLUSHALL and DEBUG RELOAD save
/// over it, as Redis kills its child (SAVE itself refuses to run beside one).
pub fn save_blocking(
    server: &crate::server::Shared,
    ks: &mut crate::db::Keyspace,
    now_ms: i64,
) -> Result<(), std::io::Error> {
    abandon_bgsave(server, ks);
    let (dir, dbfilename, options) = dump_target(server);
    let repl = repl_info(server);
    let functions = server.functions.lock().sources();
    let aux = snapshot_aux(now_ms, &repl, false, &functions);
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
    if ctx.server.persist.lock().bgsave_in_progress {
        return Err(CommandError::err("Background save already in progress"));
    }
    match save_blocking(ctx.server, ctx.exec.ks, ctx.now_ms) {
        Ok(()) => Ok(Frame::ok()),
        // Redis answers a bare `-ERR` and logs the reason.
        Err(_) => Err(CommandError::raw("ERR")),
    }
}

fn bgsave(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let schedule = match args.get(1) {
        None => false,
        Some(a) if crate::cmd::args::is(a, "schedule") && args.len() == 2 => true,
        Some(_) => return Err(CommandError::Syntax),
    };
    if ctx.server.persist.lock().bgsave_in_progress {
        return Err(CommandError::err("Background save already in progress"));
    }
    // An AOF rewrite holds the frozen view (Redis: another child is active).
    if aof_rewriting(ctx.server) {
        if schedule {
            ctx.server.persist.lock().scheduled = true;
            return Ok(Frame::simple("Background saving scheduled"));
        }
        return Err(CommandError::err("Another child process is active (AOF?): can't BGSAVE right now. Use BGSAVE SCHEDULE in order to schedule a BGSAVE whenever possible."));
    }
    match start_bgsave(ctx.server, ctx.exec.ks, ctx.now_ms) {
        Ok(()) => Ok(Frame::simple("Background saving started")),
        // A replica's full sync is writing a snapshot (Redis: an RDB child is active, and
        // SCHEDULE does not apply to it).
        Err(SnapshotBusy) => Err(CommandError::err("Background save already in progress")),
    }
}

/// Another snapshot (a replica's full sync) holds the keyspace's frozen view.
#[derive(Debug)]
pub struct SnapshotBusy;

/// An AOF rewrite is writing its base.
fn aof_rewriting(shared: &crate::server::Shared) -> bool {
    shared.aof.lock().as_ref().is_some_and(|st| st.rewriting)
}

/// Starts a background save of `ks` (the caller holds the keyspace lock): the keyspace is
/// frozen now and written by a background thread, chunk by chunk. Refused while another
/// snapshot holds the frozen view, as Redis runs one child at a time (the caller retries or
/// reports it; writing the file under the lock instead would stall every client).
pub fn start_bgsave(
    shared: &crate::server::Shared,
    ks: &mut crate::db::Keyspace,
    now_ms: i64,
) -> Result<(), SnapshotBusy> {
    if ks.frozen.is_some() {
        return Err(SnapshotBusy);
    }
    let (dir, dbfilename, options) = dump_target(shared);
    let started = std::time::Instant::now();
    let repl = repl_info(shared);
    let functions = shared.functions.lock().sources();
    let aux = snapshot_aux(now_ms, &repl, false, &functions);
    let dirty_at_snapshot = ks.dirty;
    let generation = {
        let mut stats = shared.persist.lock();
        stats.bgsave_in_progress = true;
        stats.generation
    };
    let frozen = dumpfile::begin_empty(&dir, &dbfilename).and_then(|pending| {
        let writer = RdbWriter::new(Vec::with_capacity(1 << 17), options);
        let snapshot = Snapshot::freeze(ks, writer, &aux)?;
        Ok((pending, snapshot))
    });
    let (pending, snapshot) = match frozen {
        Ok(f) => f,
        Err(e) => {
            snapshot::thaw(ks);
            finish_bgsave(shared, Err(e), started, 0);
            return Ok(());
        }
    };
    let total = snapshot.keys_total;
    shared.persist.lock().current = Some((started, 0, total));
    info!(keys = total, "Background saving started");
    let shared = shared.self_arc();
    std::thread::spawn(move || {
        let result = write_bgsave(&shared, pending, snapshot, generation);
        finish_bgsave(&shared, result, started, dirty_at_snapshot);
    });
    Ok(())
}

/// The background thread's work: every chunk, then fsync, then the rename if the save was
/// not abandoned. `Ok(false)`: abandoned (not an error, as Redis's killed child is not).
fn write_bgsave(
    shared: &crate::server::Shared,
    pending: dumpfile::PendingSave,
    snapshot: Snapshot<RdbWriter<Vec<u8>>>,
    generation: u64,
) -> std::io::Result<bool> {
    let owner = shared.self_arc();
    let written = write_pending(shared, snapshot, pending, RDB_AUTOSYNC, move |written| {
        if let Some(current) = owner.persist.lock().current.as_mut() {
            current.1 = written;
        }
    })?;
    let Some(pending) = written else { return Ok(false) };
    pending.sync()?;
    let stats = shared.persist.lock();
    if stats.generation != generation {
        drop(stats);
        pending.discard();
        return Ok(false);
    }
    pending.publish()?;
    drop(stats);
    Ok(true)
}

/// What the snapshot task sends the thread that writes the file.
enum ToWriter {
    Bytes(Vec<u8>),
    End(std::io::Result<Progress>),
}

/// Writes a frozen snapshot to `file`, from a blocking thread (a BGSAVE's or an AOF
/// rewrite's). The chunks are serialised by a task on the runtime that serves clients, one
/// chunk per round of ready connections (it yields after each), as Redis interleaves
/// incremental work with its event loop: every client waits for one chunk at most, and never
/// for a lock handed back and forth between two threads. This thread only writes the bytes,
/// so a slow disk never stalls the event loop. `progress(keys written)` follows each chunk.
/// Without a runtime (a test calling in directly), the chunks run on this thread.
fn write_snapshot<F: Format<Out = Vec<u8>> + Send + 'static>(
    shared: &crate::server::Shared,
    mut snapshot: Snapshot<F>,
    mut file: &std::fs::File,
    autosync: Option<u64>,
    mut progress: impl FnMut(u64) + Send + 'static,
) -> std::io::Result<Progress> {
    use std::io::Write;
    let Some(runtime) = shared.runtime.get() else {
        return snapshot.write_to(&shared.keyspace, file, progress);
    };
    // A few chunks of slack: the event loop does not wait for the disk unless it falls far
    // behind.
    let (tx, mut rx) = tokio::sync::mpsc::channel::<ToWriter>(16);
    let owner = shared.self_arc();
    runtime.spawn(async move {
        loop {
            let step = snapshot.write_chunk(&mut owner.keyspace.lock());
            let bytes = snapshot.drain();
            progress(snapshot.keys_written);
            let end = match step {
                Ok(Progress::More) => None,
                other => Some(other),
            };
            let sent = match end {
                None => tx.send(ToWriter::Bytes(bytes)).await,
                Some(end) => {
                    let _ = tx.send(ToWriter::Bytes(bytes)).await;
                    let _ = tx.send(ToWriter::End(end)).await;
                    return;
                }
            };
            if sent.is_err() {
                // The writer gave up (a write failed): release the frozen view.
                snapshot.abandon(&mut owner.keyspace.lock());
                return;
            }
            crate::persist::pace::between_chunks(snapshot.pause()).await;
        }
    });
    let mut unsynced = 0u64;
    while let Some(message) = rx.blocking_recv() {
        match message {
            ToWriter::Bytes(bytes) => {
                file.write_all(&bytes)?;
                unsynced += bytes.len() as u64;
                if autosync.is_some_and(|every| unsynced >= every) {
                    file.sync_data()?;
                    unsynced = 0;
                }
            }
            ToWriter::End(end) => return end,
        }
    }
    // The runtime shut down under the save.
    Ok(Progress::Interrupted)
}

/// How often a snapshot being written is fsynced (Redis's `REDIS_AUTOSYNC_BYTES`).
const AUTOSYNC_BYTES: u64 = 4 * 1024 * 1024;

/// The directive that turns the incremental fsync on for RDB files (BGSAVE, a disk-based
/// replication sync); [`AOF_AUTOSYNC`] for an AOF rewrite's base.
pub const RDB_AUTOSYNC: &str = "rdb-save-incremental-fsync";
/// See [`RDB_AUTOSYNC`].
pub const AOF_AUTOSYNC: &str = "aof-rewrite-incremental-fsync";

/// Writes a frozen snapshot into `pending`'s temp file (see `write_snapshot`), fsyncing
/// every 4 MB when `autosync_directive` is on: flushing as it goes keeps the
/// final fsync short, instead of one large flush that holds up other writers to the disk
/// (the AOF's fsyncs). `Ok(Some(pending))` when the snapshot is complete (not yet fsynced or
/// in place); `Ok(None)` when it was abandoned (the dataset was replaced) and `Err` when
/// writing failed, the temp file removed in both cases.
pub fn write_pending<F: Format<Out = Vec<u8>> + Send + 'static>(
    shared: &crate::server::Shared,
    snapshot: Snapshot<F>,
    pending: dumpfile::PendingSave,
    autosync_directive: &str,
    progress: impl FnMut(u64) + Send + 'static,
) -> std::io::Result<Option<dumpfile::PendingSave>> {
    let autosync =
        (shared.config.read().get(autosync_directive) == Some("yes")).then_some(AUTOSYNC_BYTES);
    match write_snapshot(shared, snapshot, pending.file(), autosync, progress) {
        Ok(Progress::Done) => Ok(Some(pending)),
        Ok(_) => {
            pending.discard();
            Ok(None)
        }
        Err(e) => {
            pending.discard();
            Err(e)
        }
    }
}

/// Abandons the background save in progress, if any (the caller holds the keyspace lock):
/// FLUSHALL, a full sync and SHUTDOWN's own save do this, as Redis kills its child.
pub fn abandon_bgsave(shared: &crate::server::Shared, ks: &mut crate::db::Keyspace) {
    // An AOF rewrite keeps its view (a flush detaches the tables it walks), as Redis's
    // FLUSHALL leaves the AOF child alone.
    let rewriting = aof_rewriting(shared);
    let mut stats = shared.persist.lock();
    if stats.bgsave_in_progress {
        stats.generation += 1;
        info!("Background saving abandoned: the dataset was replaced or is being saved again");
    }
    // Whoever holds the frozen view (a BGSAVE, a rewrite, a replica's sync) stops at its next
    // chunk, as Redis's FLUSHALL kills any RDB child, replication transfers included.
    if ks.frozen.is_some() && !rewriting {
        snapshot::thaw(ks);
    }
}

fn finish_bgsave(
    shared: &crate::server::Shared,
    result: std::io::Result<bool>,
    started: std::time::Instant,
    dirty_at_snapshot: u64,
) {
    let now = crate::server::unix_ms() / 1000;
    if let Ok(false) = result {
        let mut stats = shared.persist.lock();
        stats.bgsave_in_progress = false;
        stats.current = None;
        warn!("Background saving terminated: abandoned");
        return;
    }
    if result.is_ok() {
        // Changes made while the file was written are still unsaved.
        let mut ks = shared.keyspace.lock();
        ks.dirty = ks.dirty.saturating_sub(dirty_at_snapshot);
        shared.lastsave.store(now, Ordering::Relaxed);
    }
    let mut stats = shared.persist.lock();
    stats.bgsave_in_progress = false;
    stats.current = None;
    stats.last_bgsave_secs = started.elapsed().as_secs() as i64;
    match result {
        Ok(_) => {
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
    let now_ms = crate::server::unix_ms();
    let now = now_ms / 1000;
    let scheduled = {
        let stats = shared.persist.lock();
        if stats.bgsave_in_progress || (stats.last_failed && now - stats.last_failed_at < 5) {
            return;
        }
        stats.scheduled
    };
    if points.is_empty() && !scheduled {
        return;
    }
    let mut ks = shared.keyspace.lock();
    // Another snapshot (an AOF rewrite, a replica's sync) is running: wait for it to end, as
    // Redis waits for its child.
    if ks.frozen.is_some() {
        return;
    }
    if scheduled {
        info!("starting the scheduled background save");
        shared.persist.lock().scheduled = false;
        let _ = start_bgsave(shared, &mut ks, now_ms);
        return;
    }
    let since = now - shared.lastsave.load(Ordering::Relaxed);
    let due = points.iter().any(|&(secs, changes)| ks.dirty >= changes && since > secs as i64);
    if due {
        info!(changes = ks.dirty, seconds = since, "save point reached: saving");
        let _ = start_bgsave(shared, &mut ks, now_ms);
    }
}
