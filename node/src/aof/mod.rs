//! The append-only file, in Redis 7's multi-part layout: `appendonlydir/` holds a manifest, a
//! base file (an RDB snapshot, as with `aof-use-rdb-preamble yes`) and incremental files of
//! commands in their propagated form.
//!
//! Invariants:
//! - Commands are appended to the AOF buffer in the same critical section (keyspace lock) in
//!   which they were applied, so AOF order is apply order (ARCHITECTURE §3.1).
//! - `appendfsync always`: a client's reply is held until a `fdatasync` covering its write has
//!   returned (group commit: one fsync covers every client whose write was buffered before
//!   it). `everysec`: written promptly, fsynced once a second. `no`: written, never fsynced.
//! - The manifest always lists files that together hold every write: a rewrite first adds
//!   its new incremental file to the manifest, and only then drops the old files, once the new
//!   base is durable.
//!
//! Lock order: `aof_rewrite` before `aof_io` before `keyspace` before `aof`.
//!
//! - [`manifest`]: the manifest format.
//! - [`load`]: loading at startup.

pub mod commands;
pub mod load;
pub mod manifest;
pub mod upgrade;

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tracing::{info, warn};

use crate::exec::Propagated;
use crate::persist::dumpfile::{self, PendingSave};
use crate::persist::snapshot::{self, Format, Snapshot};
use crate::persist::RdbWriter;
use crate::server::{unix_ms, Shared};
use commands::CommandWriter;
use manifest::{Entry, FileType, Manifest};

/// `appendfsync`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fsync {
    /// Before every reply.
    Always,
    /// Once a second.
    Everysec,
    /// Left to the kernel.
    No,
}

impl Fsync {
    /// From the directive's value.
    pub fn parse(value: &str) -> Fsync {
        match value {
            "always" => Fsync::Always,
            "no" => Fsync::No,
            _ => Fsync::Everysec,
        }
    }
}

/// The open AOF (lock: `Shared::aof`).
pub struct AofState {
    /// Commands applied but not yet written.
    buf: Vec<u8>,
    /// The database last SELECTed in the current incremental file.
    db: Option<usize>,
    /// Bytes appended since start (a logical offset; replies wait on it under `always`).
    pub appended: u64,
    /// The fsync policy.
    pub policy: Fsync,
    /// The incremental file being appended to.
    file: Arc<File>,
    /// What the manifest lists.
    pub manifest: Manifest,
    /// `dir/appenddirname`.
    pub dir: PathBuf,
    /// `appendfilename`.
    pub prefix: String,
    /// A write or fsync failed (INFO `aof_last_write_status:err`).
    pub write_failed: bool,
    /// Stop the writer thread.
    closing: bool,
    /// The AOF's size right after the last rewrite (`aof_base_size`), for
    /// `auto-aof-rewrite-percentage`.
    pub base_size: u64,
    /// A rewrite is running.
    pub rewriting: bool,
    /// A rewrite waits for another snapshot (BGSAVE, a replica's sync) to release the frozen
    /// view (INFO `aof_rewrite_scheduled`).
    pub rewrite_scheduled: bool,
    /// On a replica: the replication offset that the AOF holds everything up to once what is
    /// appended so far is fsynced (what FACK reports).
    pub repl_mark: i64,
}

impl AofState {
    /// Bytes applied but not yet written (INFO `mem_aof_buffer`).
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// Bytes of every file the manifest lists (`aof_current_size`, minus the unwritten buffer).
    pub fn current_size(&self) -> u64 {
        self.manifest
            .entries
            .iter()
            .filter(|e| e.kind != FileType::History)
            .filter_map(|e| std::fs::metadata(self.dir.join(&e.name)).ok())
            .map(|m| m.len())
            .sum()
    }
}

/// AOF rewrite outcomes for INFO persistence, server-wide (they outlive turning the AOF off
/// and on, as Redis's do).
#[derive(Debug, Default, Clone, Copy)]
pub struct RewriteStats {
    /// Rewrites that completed (`aof_rewrites`).
    pub done: u64,
    /// Failures since the last success (`aof_rewrites_consecutive_failures`).
    pub consecutive_failures: u64,
    /// The last rewrite failed (`aof_last_bgrewrite_status:err`).
    pub last_failed: bool,
    /// A rewrite with the AOF off is running (`aof_rewrite_in_progress`).
    pub running_while_off: bool,
    /// CONFIG SET appendonly yes is writing the AOF's first base: counted as a rewrite in
    /// progress from the moment the command returns, as Redis forks before it replies (tests
    /// and tools wait on `aof_rewrite_in_progress` before relying on the new AOF).
    pub starting: bool,
}

impl RewriteStats {
    fn record(&mut self, result: &std::io::Result<()>) {
        match result {
            Ok(()) => {
                self.done += 1;
                self.consecutive_failures = 0;
                self.last_failed = false;
            }
            Err(_) => {
                self.consecutive_failures += 1;
                self.last_failed = true;
            }
        }
    }
}

/// Once a second: rewrite when the AOF grew by `auto-aof-rewrite-percentage` over its size
/// after the last rewrite, and is at least `auto-aof-rewrite-min-size` (as Redis does).
pub fn auto_rewrite_cron(shared: &Arc<Shared>) {
    let (percentage, min_size) = {
        let c = shared.config.read();
        let int = |k: &str| c.get(k).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
        (int("auto-aof-rewrite-percentage"), int("auto-aof-rewrite-min-size"))
    };
    if percentage == 0 {
        return;
    }
    let due = match shared.aof.lock().as_mut() {
        Some(st) if !st.rewriting && !st.rewrite_scheduled => {
            let size = st.current_size();
            let base = st.base_size.max(1);
            let due = size >= min_size && (size - base.min(size)) * 100 / base >= percentage;
            st.rewriting |= due;
            due
        }
        _ => false,
    };
    if due {
        info!("starting automatic rewriting of AOF");
        let shared = shared.clone();
        std::thread::spawn(move || {
            if let Err(e) = rewrite(&shared) {
                warn!(cause = %e, "automatic AOF rewrite failed");
            }
        });
    }
}

impl AofState {
    /// Appends commands (with SELECTs) to the buffer; returns the new logical offset.
    pub fn feed(&mut self, commands: &[Propagated]) -> u64 {
        for c in commands {
            // PUBLISH and SPUBLISH go to replicas only: replaying them would resend old
            // messages.
            let publish = |name: &Bytes| {
                name.eq_ignore_ascii_case(b"publish") || name.eq_ignore_ascii_case(b"spublish")
            };
            if c.argv.first().is_some_and(publish) {
                continue;
            }
            if self.db != Some(c.db) {
                crate::repl::encode_command(
                    &mut self.buf,
                    &[Bytes::from_static(b"SELECT"), Bytes::from(c.db.to_string())],
                );
                self.db = Some(c.db);
            }
            let before = self.buf.len();
            crate::repl::encode_command(&mut self.buf, &c.argv);
            self.appended += (self.buf.len() - before) as u64;
        }
        self.appended
    }
}

fn incr_name(prefix: &str, seq: u64) -> String {
    format!("{prefix}.{seq}.incr.aof")
}

/// The base's file name: `.rdb` with the RDB preamble, `.aof` in command form (Redis's names).
fn base_name(prefix: &str, seq: u64, rdb: bool) -> String {
    format!("{prefix}.{seq}.base.{}", if rdb { "rdb" } else { "aof" })
}

/// `dir/<appendfilename>.manifest`.
pub fn manifest_file(dir: &Path, prefix: &str) -> PathBuf {
    dir.join(format!("{prefix}.manifest"))
}

/// Writes `bytes` to `dir/name` atomically (temp file, fsync, rename, fsync the directory).
fn write_atomically(dir: &Path, name: &str, bytes: &[u8]) -> std::io::Result<()> {
    crate::persist::dumpfile::write_bytes(dir, name, bytes).map(|_| ())
}

fn open_append(path: &Path) -> std::io::Result<File> {
    File::options().create(true).append(true).open(path)
}

/// Opens a new incremental file, empty: a file of the same name left by an earlier period of
/// the AOF (turned off, then on again, restarting the sequence) holds commands that must never
/// be replayed after the new base.
fn open_new_incr(path: &Path) -> std::io::Result<File> {
    File::create(path)?;
    open_append(path)
}

/// Opens the AOF after loading (or creates it: a base snapshot of the current data and a
/// first incremental file), and starts the writer thread.
pub fn start(shared: &Arc<Shared>, loaded: Option<Manifest>) -> std::io::Result<()> {
    let (dir, prefix, policy) = {
        let c = shared.config.read();
        (
            c.settings.dir.join(c.get("appenddirname").unwrap_or("appendonlydir")),
            c.get("appendfilename").unwrap_or("appendonly.aof").to_string(),
            Fsync::parse(c.get("appendfsync").unwrap_or("everysec")),
        )
    };
    std::fs::create_dir_all(&dir)?;
    let fresh = loaded.is_none();
    let manifest = loaded.unwrap_or_default();
    // Continue appending to the last incremental file, or start one.
    let (manifest, file) = match manifest.incrs().last() {
        Some(last) => {
            let file = open_append(&dir.join(&last.name))?;
            (manifest.clone(), file)
        }
        None => {
            let mut m = manifest.clone();
            let name = incr_name(&prefix, 1);
            let file = open_new_incr(&dir.join(&name))?;
            m.entries.push(Entry { name, seq: 1, kind: FileType::Incr });
            (m, file)
        }
    };
    *shared.aof.lock() = Some(AofState {
        buf: Vec::new(),
        db: None,
        // Offsets continue across a stop and start, so a client's last wait target stays
        // comparable with what the new writer publishes.
        appended: shared.aof_written.load(Ordering::Relaxed).max(*shared.aof_synced.borrow()),
        policy,
        file: Arc::new(file),
        manifest,
        dir: dir.clone(),
        prefix: prefix.clone(),
        write_failed: false,
        closing: false,
        base_size: 0,
        rewriting: false,
        rewrite_scheduled: false,
        repl_mark: 0,
    });
    if let Some(st) = shared.aof.lock().as_mut() {
        st.base_size = st.current_size();
    }
    shared.aof_on.store(true, Ordering::Relaxed);
    shared.aof_always.store(policy == Fsync::Always, Ordering::Relaxed);
    shared.propagating.store(true, Ordering::Relaxed);
    let writer = shared.clone();
    std::thread::Builder::new().name("aof-writer".into()).spawn(move || write_loop(&writer))?;
    if fresh {
        // Like Redis, a new AOF starts from a base snapshot of what is in memory.
        rewrite(shared)?;
    } else {
        let m = shared.aof.lock().as_ref().map(|s| s.manifest.render()).unwrap_or_default();
        write_atomically(&dir, &format!("{prefix}.manifest"), m.as_bytes())?;
    }
    info!(dir = %dir.display(), ?policy, "append only file enabled");
    Ok(())
}

/// Writes everything buffered to the current incremental file (no fsync) and records how
/// far the file goes. Returns the file and the offset written, for a following fsync.
fn write_buffered(shared: &Shared) -> Option<(Arc<File>, u64, bool, i64)> {
    let _io = shared.aof_io.lock();
    let (chunk, end, file, mark) = {
        let mut g = shared.aof.lock();
        let state = g.as_mut()?;
        (std::mem::take(&mut state.buf), state.appended, state.file.clone(), state.repl_mark)
    };
    let mut ok = true;
    if !chunk.is_empty() {
        if let Err(e) = (&*file).write_all(&chunk) {
            warn!(cause = %e, "error writing to the AOF");
            ok = false;
        }
    }
    if let Some(state) = shared.aof.lock().as_mut() {
        state.write_failed = !ok;
    }
    if ok {
        shared.aof_written.fetch_max(end, Ordering::Relaxed);
    }
    Some((file, end, ok, mark))
}

/// Before a connection sends replies under `everysec`/`no`: make sure its writes reached the
/// file (write(2), as Redis does before replying), so killing the process loses nothing it
/// acknowledged. Whoever comes first writes everyone's buffered commands at once.
pub fn write_before_reply(shared: &Shared, target: u64) {
    if shared.aof_written.load(Ordering::Relaxed) < target {
        write_buffered(shared);
    }
}

/// After the replication applier ran a chunk of its master's stream: what it applied reaches
/// the AOF file now (write(2)), as a connection's writes do before its replies.
pub fn write_applied(shared: &Shared) {
    if shared.aof_on.load(Ordering::Relaxed) {
        write_buffered(shared);
    }
}

/// The writer thread: writes what connections did not (the replication applier, active
/// expiry), fsyncs per policy — under `always` as a group commit for every waiting reply —
/// and publishes what is durable. The fsync runs outside the I/O lock so writes continue.
fn write_loop(shared: &Shared) {
    let mut last_fsync = Instant::now();
    let mut synced = 0u64;
    loop {
        let policy = {
            let mut g = shared.aof.lock();
            let Some(state) = g.as_ref() else { return };
            if state.closing {
                return;
            }
            let pending =
                !state.buf.is_empty() || shared.aof_written.load(Ordering::Relaxed) > synced;
            let wait = match state.policy {
                Fsync::Always if pending => Duration::ZERO,
                Fsync::Always => Duration::from_secs(1),
                _ => Duration::from_millis(100),
            };
            if !wait.is_zero() {
                shared.aof_wake.wait_for(&mut g, wait);
            }
            g.as_ref().map(|s| s.policy)
        };
        let Some(policy) = policy else { return };
        let Some((file, end, ok, mark)) = write_buffered(shared) else { return };
        let due = match policy {
            Fsync::Always => end > synced,
            Fsync::Everysec => end > synced && last_fsync.elapsed() >= Duration::from_secs(1),
            Fsync::No => false,
        };
        if ok && due {
            match file.sync_data() {
                Ok(()) => {
                    synced = end;
                    last_fsync = Instant::now();
                    shared.aof_synced_repl.fetch_max(mark, Ordering::Relaxed);
                    shared.aof_synced.send_replace(end);
                }
                Err(e) => {
                    warn!(cause = %e, "error fsyncing the AOF");
                    if let Some(state) = shared.aof.lock().as_mut() {
                        state.write_failed = true;
                    }
                }
            }
        }
    }
}

/// How often a scheduled rewrite checks whether the frozen view was released.
const SCHEDULED_POLL: std::time::Duration = std::time::Duration::from_millis(50);

/// BGREWRITEAOF: a new base snapshot and a new incremental file. The base is written from a
/// frozen view of the keyspace in chunks, so writers keep going. There is one frozen view at a
/// time (as Redis runs one child): while a BGSAVE or a replica's sync holds it, the rewrite is
/// scheduled and starts when it is released, instead of serialising everything under the lock.
pub fn rewrite(shared: &Shared) -> std::io::Result<()> {
    loop {
        let frozen = shared.keyspace.lock().frozen.is_some();
        if let Some(st) = shared.aof.lock().as_mut() {
            st.rewrite_scheduled = frozen;
            st.rewriting = !frozen;
        }
        if !frozen {
            break;
        }
        std::thread::sleep(SCHEDULED_POLL);
    }
    let result = rewrite_now(shared);
    if result.is_err() {
        if let Some(st) = shared.aof.lock().as_mut() {
            st.rewriting = false;
        }
    }
    shared.aof_rewrite_stats.lock().record(&result);
    result
}

/// BGREWRITEAOF with the AOF off: as Redis does, a new base is written anyway (the dataset
/// as of now, in the AOF directory, under a manifest that lists only it) and the files the
/// old manifest listed are deleted, so the directory is ready for `appendonly yes` or for
/// tools. Waits first while another snapshot holds the frozen view, as a scheduled rewrite.
pub fn rewrite_while_off(shared: &Shared) -> std::io::Result<()> {
    while shared.keyspace.lock().frozen.is_some() {
        std::thread::sleep(SCHEDULED_POLL);
    }
    let result = write_base_while_off(shared);
    let mut stats = shared.aof_rewrite_stats.lock();
    stats.running_while_off = false;
    stats.record(&result);
    result
}

fn write_base_while_off(shared: &Shared) -> std::io::Result<()> {
    let _one = shared.aof_rewrite.lock();
    let started = Instant::now();
    let (dir, prefix) = paths(shared);
    std::fs::create_dir_all(&dir)?;
    let old =
        load::read_manifest(&dir, &prefix).map_err(std::io::Error::other)?.unwrap_or_default();
    let base_seq = old.base().map_or(1, |b| b.seq + 1);
    let (job, base) = begin_base(shared, &mut shared.keyspace.lock(), &dir, &prefix, base_seq)?;
    let bytes = finish_base(shared, job, &dir, &base)?;
    let manifest = Manifest {
        entries: vec![Entry { name: base.clone(), seq: base_seq, kind: FileType::Base }],
    };
    write_atomically(&dir, &format!("{prefix}.manifest"), manifest.render().as_bytes())?;
    for entry in old.entries.iter().filter(|e| e.name != base) {
        let _ = std::fs::remove_file(dir.join(&entry.name));
    }
    info!(bytes, took_ms = started.elapsed().as_millis() as u64, "AOF rewritten (the AOF is off)");
    Ok(())
}

/// Starts writing a base file `seq` of the dataset as of now (the caller holds the keyspace
/// lock): frozen and written in chunks afterwards, or serialised at once when another
/// snapshot holds the frozen view. Returns the job and the base's file name.
fn begin_base(
    shared: &Shared,
    ks: &mut crate::db::Keyspace,
    dir: &Path,
    prefix: &str,
    seq: u64,
) -> std::io::Result<(BaseWrite, String)> {
    let repl = crate::cmd::persistence::repl_info(shared);
    let functions = shared.functions.lock().sources();
    let aux = crate::cmd::persistence::snapshot_aux(unix_ms(), &repl, true, &functions);
    let options = crate::cmd::persistence::rdb_options(&shared.config.read());
    let preamble = shared.config.read().get("aof-use-rdb-preamble") != Some("no");
    let base = base_name(prefix, seq, preamble);
    let rdb = || RdbWriter::new(Vec::with_capacity(1 << 17), options);
    let job = match (ks.frozen.is_some(), preamble) {
        (true, true) => BaseWrite::Bytes(snapshot::write_whole(ks, rdb(), &aux)?),
        (true, false) => BaseWrite::Bytes(snapshot::write_whole(ks, CommandWriter::new(), &aux)?),
        (false, true) => {
            let pending = dumpfile::begin_empty(dir, &base)?;
            BaseWrite::Rdb(pending, Box::new(Snapshot::freeze(ks, rdb(), &aux)?))
        }
        (false, false) => {
            let pending = dumpfile::begin_empty(dir, &base)?;
            let snapshot = Snapshot::freeze(ks, CommandWriter::new(), &aux)?;
            BaseWrite::Commands(pending, Box::new(snapshot))
        }
    };
    Ok((job, base))
}

/// Completes a [`begin_base`] job: the base is durable in `dir/base`. Returns its size.
fn finish_base(shared: &Shared, job: BaseWrite, dir: &Path, base: &str) -> std::io::Result<u64> {
    match job {
        BaseWrite::Bytes(bytes) => {
            write_atomically(dir, base, &bytes)?;
            Ok(bytes.len() as u64)
        }
        BaseWrite::Rdb(pending, snapshot) => write_base(shared, pending, *snapshot),
        BaseWrite::Commands(pending, snapshot) => write_base(shared, pending, *snapshot),
    }
}

/// How the new base gets written: from a frozen keyspace in chunks (writers keep going), or,
/// when a BGSAVE or a replica's sync froze the view between the wait in [`rewrite`] and the
/// lock (a narrow race), from bytes serialised under the lock.
enum BaseWrite {
    Rdb(PendingSave, Box<Snapshot<RdbWriter<Vec<u8>>>>),
    Commands(PendingSave, Box<Snapshot<CommandWriter>>),
    Bytes(Vec<u8>),
}

/// Writes a frozen base into its temp file chunk by chunk, then makes it durable and puts
/// it in place. Returns its size.
fn write_base<F: Format<Out = Vec<u8>> + Send + 'static>(
    shared: &Shared,
    pending: PendingSave,
    snapshot: Snapshot<F>,
) -> std::io::Result<u64> {
    use crate::cmd::persistence::{write_pending, AOF_AUTOSYNC};
    match write_pending(shared, snapshot, pending, AOF_AUTOSYNC, |_| {})? {
        Some(pending) => Ok(pending.finish()?.bytes),
        None => Err(std::io::Error::other("the dataset was replaced meanwhile")),
    }
}

fn rewrite_now(shared: &Shared) -> std::io::Result<()> {
    // One rewrite at a time (BGREWRITEAOF, the automatic rewrite, a replica's full sync).
    let _one = shared.aof_rewrite.lock();
    let started = Instant::now();
    let (job, dir, prefix, base, base_seq, incr_name_new, old) = {
        // The file switch excludes the writer thread; the base is written after it, so
        // acknowledged writes keep flowing to the new incremental file meanwhile.
        let _io = shared.aof_io.lock();
        let mut ks = shared.keyspace.lock();
        let mut g = shared.aof.lock();
        let Some(st) = g.as_mut() else { return Ok(()) };
        // What was buffered belongs to the old incremental file.
        (&*st.file).write_all(&st.buf)?;
        st.file.sync_data()?;
        st.buf.clear();
        shared.aof_written.fetch_max(st.appended, Ordering::Relaxed);
        shared.aof_synced.send_replace(st.appended);
        let base_seq = st.manifest.base().map_or(1, |b| b.seq + 1);
        let incr_seq = st.manifest.incrs().last().map_or(1, |e| e.seq + 1);
        let new_incr = incr_name(&st.prefix, incr_seq);
        st.file = Arc::new(open_new_incr(&st.dir.join(&new_incr))?);
        st.db = None;
        // Step 1: the manifest lists the new incremental file next to the old ones, so every
        // write is covered whatever happens next.
        st.manifest.entries.push(Entry {
            name: new_incr.clone(),
            seq: incr_seq,
            kind: FileType::Incr,
        });
        write_atomically(
            &st.dir,
            &format!("{}.manifest", st.prefix),
            st.manifest.render().as_bytes(),
        )?;
        let old: Vec<String> = st
            .manifest
            .entries
            .iter()
            .filter(|e| e.name != new_incr)
            .map(|e| e.name.clone())
            .collect();
        // The base is the dataset at this instant, the instant the new incremental file starts.
        let (job, base) = begin_base(shared, &mut ks, &st.dir, &st.prefix, base_seq)?;
        (job, st.dir.clone(), st.prefix.clone(), base, base_seq, new_incr, old)
    };
    // Step 2: the new base, durable; then a manifest of just the new base and incr file.
    let bytes = finish_base(shared, job, &dir, &base)?;
    let manifest = {
        let mut g = shared.aof.lock();
        let Some(st) = g.as_mut() else { return Ok(()) };
        let incr_seq = st.manifest.incrs().last().map_or(1, |e| e.seq);
        st.manifest = Manifest {
            entries: vec![
                Entry { name: base.clone(), seq: base_seq, kind: FileType::Base },
                Entry { name: incr_name_new, seq: incr_seq, kind: FileType::Incr },
            ],
        };
        st.rewriting = false;
        st.base_size = st.current_size();
        st.manifest.render()
    };
    write_atomically(&dir, &format!("{prefix}.manifest"), manifest.as_bytes())?;
    for name in old {
        let _ = std::fs::remove_file(dir.join(name));
    }
    info!(bytes, took_ms = started.elapsed().as_millis() as u64, "AOF rewritten");
    Ok(())
}

/// Flushes and fsyncs everything buffered, then stops the writer (shutdown).
pub fn close(shared: &Shared) {
    let _ = flush_and_sync(shared, true);
    shared.aof_wake.notify_all();
}

/// Writes what is buffered and fsyncs it; with `closing`, the writer thread then stops.
fn flush_and_sync(shared: &Shared, closing: bool) -> std::io::Result<()> {
    let _io = shared.aof_io.lock();
    let mut g = shared.aof.lock();
    let Some(st) = g.as_mut() else { return Ok(()) };
    let written = (&*st.file).write_all(&st.buf).and_then(|()| st.file.sync_data());
    st.buf.clear();
    st.closing |= closing;
    shared.aof_written.fetch_max(st.appended, Ordering::Relaxed);
    shared.aof_synced.send_replace(st.appended);
    written
}

/// DEBUG LOADAOF: makes everything appended durable, empties the dataset and loads the AOF
/// back, as Redis does. Clients get -LOADING meanwhile; the replayed commands run as the
/// AOF's pseudo master client, whose writes are not appended or replicated again. A failure
/// leaves the server unable to serve its data, so, as Redis does, the process exits (the files
/// on disk are untouched).
pub fn reload(shared: &Shared) -> Result<(), String> {
    if shared.aof_on.load(Ordering::Relaxed) {
        flush_and_sync(shared, false).map_err(|e| format!("can't fsync the AOF: {e}"))?;
    }
    let (dir, prefix) = paths(shared);
    shared.set_loading(Some(dir_size(&dir)));
    {
        let mut ks = shared.keyspace.lock();
        ks.watches.touch_all();
        ks.tracking.flushed();
        for db in &mut ks.dbs {
            db.clear();
        }
    }
    let truncate_ok = shared.config.read().get("aof-load-truncated") == Some("yes");
    let loaded = load::load(shared, &dir, &prefix, truncate_ok);
    shared.set_loading(None);
    match loaded {
        Ok(loaded) => {
            warn!(commands = loaded.commands, "Append Only File loaded by DEBUG LOADAOF");
            Ok(())
        }
        Err(e) => {
            tracing::error!(cause = %e, "DEBUG LOADAOF could not load the AOF: exiting");
            std::process::exit(1);
        }
    }
}

/// CONFIG SET appendonly no: flush, fsync and close the AOF; writes are no longer logged.
pub fn stop(shared: &Shared) -> std::io::Result<()> {
    close(shared);
    let _io = shared.aof_io.lock();
    let _ks = shared.keyspace.lock();
    *shared.aof.lock() = None;
    shared.aof_on.store(false, Ordering::Relaxed);
    shared.aof_always.store(false, Ordering::Relaxed);
    let r = shared.repl.lock();
    shared.refresh_role(&r);
    info!("append only file disabled");
    Ok(())
}

/// Turns the AOF on or off until it is as `appendonly` says, after a CONFIG SET changed it.
/// One caller at a time, each reading the setting afresh: `appendonly no` then `yes` in quick
/// succession ends with the AOF on and started over, whatever order the threads run in.
pub fn follow_config(shared: &Arc<Shared>) {
    static TOGGLING: parking_lot::Mutex<()> = parking_lot::Mutex::new(());
    let _one = TOGGLING.lock();
    loop {
        let wanted = shared.config.read().get("appendonly") == Some("yes");
        let on = shared.aof_on.load(Ordering::Relaxed);
        if wanted == on {
            break;
        }
        let result = if wanted { start(shared, None) } else { stop(shared) };
        if let Err(e) = result {
            warn!(cause = %e, "changing appendonly failed");
            break;
        }
    }
    shared.aof_rewrite_stats.lock().starting = false;
}

/// CONFIG SET appendfsync.
pub fn set_policy(shared: &Shared, policy: Fsync) {
    if let Some(st) = shared.aof.lock().as_mut() {
        st.policy = policy;
        shared.aof_always.store(policy == Fsync::Always, Ordering::Relaxed);
    }
    shared.aof_wake.notify_one();
}

/// The bytes of the files in `dir` (the AOF directory): what a load reads, for INFO's
/// loading progress.
pub fn dir_size(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|entries| entries.flatten().filter_map(|e| e.metadata().ok()).map(|m| m.len()).sum())
        .unwrap_or(0)
}

/// The AOF manifest path for a config (for loading).
pub fn paths(shared: &Shared) -> (PathBuf, String) {
    let c = shared.config.read();
    (
        c.settings.dir.join(c.get("appenddirname").unwrap_or("appendonlydir")),
        c.get("appendfilename").unwrap_or("appendonly.aof").to_string(),
    )
}
