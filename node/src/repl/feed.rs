//! A replica's session on this node (the master side): after PSYNC or SYNC the connection
//! stops being a client and becomes a feed — a snapshot if the replica needs one, then the
//! stream from the backlog, while the replica's `REPLCONF ACK`s come back on the same socket.
//!
//! Invariant: the replica is registered with `sent = offset + 1` in the same critical section
//! (keyspace and repl locks held) in which the snapshot's offset is read, so every stream byte
//! after the snapshot is kept in the backlog until this session has sent it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use common::resp::{parse_request, RequestLimits};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tracing::{info, warn};

use super::psync::{self, Decision};
use super::{ReplicaEntry, ReplicaState};
use crate::persist::snapshot::{Progress, Snapshot};
use crate::persist::{Aux, RdbWriter, ReplAux};
use crate::server::{unix_ms, Shared};

/// What the replica asked for and told us about itself.
#[derive(Debug, Clone)]
pub struct SyncRequest {
    /// `PSYNC <replid>` (`?` for SYNC or a first sync).
    pub replid: String,
    /// `PSYNC … <offset>`: the first byte it lacks.
    pub offset: i64,
    /// False for the old SYNC command (no `+FULLRESYNC` line).
    pub psync: bool,
    /// `REPLCONF listening-port`.
    pub port: u16,
    /// `REPLCONF ip-address`, else the peer address.
    pub ip: String,
    /// `REPLCONF capa eof`: it accepts an EOF-marked (diskless) transfer.
    pub capa_eof: bool,
    /// `REPLCONF capa psync2`: it understands `+CONTINUE <replid>`.
    pub capa_psync2: bool,
}

/// Largest chunk of stream copied out of the backlog per write.
const CHUNK: usize = 64 * 1024;

/// Why a sync could not start: the error line for the replica.
fn refusal(shared: &Shared) -> Option<&'static str> {
    let r = shared.repl.lock();
    if r.failover.is_some() {
        return Some("-NOMASTERLINK Can't SYNC while failing over\r\n");
    }
    match &r.master {
        Some(link) if link.state != super::LinkState::Connected => {
            Some("-NOMASTERLINK Can't SYNC while not connected with my master\r\n")
        }
        _ => None,
    }
}

/// Serves a replica until it disconnects, is killed or falls too far behind.
pub async fn serve(
    shared: Arc<Shared>,
    socket: &mut TcpStream,
    input: &mut BytesMut,
    client: u64,
    req: SyncRequest,
    stop: &mut (dyn std::future::Future<Output = ()> + Send + Unpin),
) {
    if let Some(line) = refusal(&shared) {
        let _ = socket.write_all(line.as_bytes()).await;
        return;
    }
    let entry = |state, sent| ReplicaEntry {
        client,
        ip: req.ip.clone(),
        port: req.port,
        state,
        ack_off: 0,
        aof_off: 0,
        ack_time: Instant::now(),
        sent,
        soft_clock: Default::default(),
    };
    // Partial resync: decided and registered under the repl lock, so the backlog still holds
    // the replica's next byte when the session starts sending.
    let continued = {
        let mut r = shared.repl.lock();
        match psync::decide(&r, &req.replid, req.offset) {
            Decision::Continue if req.psync => {
                r.stats.partial_ok += 1;
                r.replicas.push(entry(ReplicaState::Online, req.offset));
                Some(r.replid.clone())
            }
            Decision::Continue | Decision::Full { requested: false } => {
                r.stats.full += 1;
                None
            }
            Decision::Full { requested: true } => {
                r.stats.full += 1;
                r.stats.partial_err += 1;
                None
            }
        }
    };
    let mut wait_first_ack = false;
    if let Some(replid) = continued {
        info!(replica = %format!("{}:{}", req.ip, req.port), offset = req.offset, "partial resynchronization accepted");
        let line = if req.capa_psync2 {
            format!("+CONTINUE {replid}\r\n")
        } else {
            "+CONTINUE\r\n".to_string()
        };
        if socket.write_all(line.as_bytes()).await.is_err() {
            shared.repl.lock().remove_replica(client);
            return;
        }
    } else {
        shared.repl.lock().replicas.push(entry(ReplicaState::WaitSnapshot, i64::MAX));
        match full_sync(&shared, socket, client, &req, stop).await {
            Ok(diskless) => wait_first_ack = diskless,
            Err(e) => {
                warn!(replica = %format!("{}:{}", req.ip, req.port), cause = %e, "full synchronization failed");
                shared.repl.lock().remove_replica(client);
                return;
            }
        }
    }
    stream(&shared, socket, input, client, wait_first_ack, stop).await;
    shared.repl.lock().remove_replica(client);
    // A stop waiting for replicas to catch up need not wait for one that left.
    shared.repl_acks.notify_waiters();
    info!(replica = %format!("{}:{}", req.ip, req.port), "replica disconnected");
}

/// Sends a snapshot. Returns whether it was EOF-marked (diskless), after which the stream
/// waits for the replica's first ACK, as Redis does.
async fn full_sync(
    shared: &Arc<Shared>,
    socket: &mut TcpStream,
    client: u64,
    req: &SyncRequest,
    stop: &mut (dyn std::future::Future<Output = ()> + Send + Unpin),
) -> std::io::Result<bool> {
    let (diskless, delay, options, dir, dbfilename, backlog_size) = {
        let c = shared.config.read();
        let s = &c.settings;
        (
            s.repl_diskless_sync && req.capa_eof,
            s.repl_diskless_sync_delay,
            crate::cmd::persistence::rdb_options(&c),
            s.dir.clone(),
            c.get("dbfilename").unwrap_or("dump.rdb").to_string(),
            s.repl_backlog_size,
        )
    };
    if diskless && delay > 0 {
        // Redis waits for more replicas to share one transfer, keeping this one alive with a
        // newline a second (not part of the stream).
        let deadline = tokio::time::Instant::now() + Duration::from_secs(delay);
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.tick().await;
        loop {
            tokio::select! {
                _ = tokio::time::sleep_until(deadline) => break,
                _ = tick.tick() => socket.write_all(b"\n").await?,
                _ = &mut *stop => return Err(std::io::ErrorKind::ConnectionAborted.into()),
            }
        }
    }
    let started = Instant::now();
    let thawed = shared.keyspace.lock().thawed.clone();
    let mut keepalive = tokio::time::Instant::now() + Duration::from_secs(1);
    let (mut snapshot, replid, offset) = loop {
        // Registered before looking, so a release in between is not missed.
        let released = thawed.notified();
        tokio::pin!(released);
        released.as_mut().enable();
        if let Some(frozen) = freeze_for_sync(shared, client, options, backlog_size)? {
            break frozen;
        }
        // Another snapshot (a BGSAVE, an AOF rewrite, another replica's sync) holds the frozen
        // view: wait until it is released, keeping the link alive with a newline a second, as
        // Redis's replicas wait for the next BGSAVE. Serialising the dataset now instead would
        // stall every client and hold a second copy of it in memory.
        tokio::select! {
            _ = &mut released => {}
            _ = tokio::time::sleep_until(keepalive) => {
                socket.write_all(b"\n").await?;
                keepalive += Duration::from_secs(1);
            }
            _ = &mut *stop => return Err(std::io::ErrorKind::ConnectionAborted.into()),
        }
    };
    info!(
        replica = %format!("{}:{}", req.ip, req.port),
        waited_ms = started.elapsed().as_millis() as u64,
        target = if diskless { "socket" } else { "disk" },
        "starting full synchronization"
    );
    if req.psync {
        socket.write_all(format!("+FULLRESYNC {replid} {offset}\r\n").as_bytes()).await?;
    }
    if diskless {
        let sent = send_chunks(shared, &mut snapshot, socket).await;
        // Stopped early (the replica left, the dataset was replaced): free the view.
        snapshot.abandon(&mut shared.keyspace.lock());
        sent?;
    } else {
        save_and_send(shared, *snapshot, socket, &dir, &dbfilename).await?;
    }
    let mut r = shared.repl.lock();
    if let Some(e) = r.replica_mut(client) {
        e.state = ReplicaState::Online;
        e.ack_time = Instant::now();
    }
    info!(replica = %format!("{}:{}", req.ip, req.port), "synchronization succeeded");
    Ok(diskless)
}

/// A snapshot frozen for a replica, with the replication id and offset it is taken at.
type Frozen = (Box<Snapshot<RdbWriter<Vec<u8>>>>, String, i64);

/// Freezes the dataset for `client`'s full sync and registers the replica at the snapshot's
/// offset, both under the keyspace and repl locks (see the module's invariant). `None` when
/// another snapshot holds the frozen view.
fn freeze_for_sync(
    shared: &Shared,
    client: u64,
    options: crate::persist::WriteOptions,
    backlog_size: usize,
) -> std::io::Result<Option<Frozen>> {
    let mut ks = shared.keyspace.lock();
    if ks.frozen.is_some() {
        return Ok(None);
    }
    let mut r = shared.repl.lock();
    if r.backlog.is_none() {
        // The first replica of a master without a backlog starts a new history.
        if !r.is_replica() {
            r.replid = super::new_replid();
            r.clear_replid2();
        }
        r.ensure_backlog(backlog_size);
        shared.refresh_role(&r);
    }
    let offset = r.offset();
    r.stream_db = None;
    if let Some(e) = r.replica_mut(client) {
        e.state = ReplicaState::SendBulk;
        e.sent = offset + 1;
    }
    let replid = r.replid.clone();
    drop(r);
    let functions = shared.functions.lock().sources();
    let aux = Aux {
        functions: &functions,
        ctime: unix_ms() / 1000,
        used_mem: crate::alloc::in_use() as u64,
        repl: Some(ReplAux { stream_db: 0, id: &replid, offset }),
        aof_base: false,
    };
    // Frozen at this instant (the offset above) and written in chunks as the socket or the
    // disk takes them, without pausing writers or copying the dataset.
    let writer = RdbWriter::new(Vec::with_capacity(1 << 17), options);
    let snapshot = Snapshot::freeze(&mut ks, writer, &aux)?;
    Ok(Some((Box::new(snapshot), replid, offset)))
}

/// A disk-based sync: writes the frozen snapshot to the dump file (as Redis's disk-based
/// sync also leaves its snapshot as dump.rdb), then sends that file as `$<len>` and its
/// bytes. The file is read through its own handle, so a save that replaces dump.rdb in the
/// meantime cannot swap in another snapshot than the one whose offset the replica was given.
async fn save_and_send(
    shared: &Arc<Shared>,
    snapshot: Snapshot<RdbWriter<Vec<u8>>>,
    socket: &mut TcpStream,
    dir: &std::path::Path,
    dbfilename: &str,
) -> std::io::Result<()> {
    let owner = shared.clone();
    let (dir, dbfilename) = (dir.to_path_buf(), dbfilename.to_string());
    let (file, len) = tokio::task::spawn_blocking(move || -> std::io::Result<_> {
        let pending = match crate::persist::dumpfile::begin_empty(&dir, &dbfilename) {
            Ok(pending) => pending,
            Err(e) => {
                snapshot.abandon(&mut owner.keyspace.lock());
                return Err(e);
            }
        };
        use crate::cmd::persistence::{write_pending, RDB_AUTOSYNC};
        let Some(pending) = write_pending(&owner, snapshot, pending, RDB_AUTOSYNC, |_| {})? else {
            return Err(std::io::Error::other("the dataset was replaced during the transfer"));
        };
        let file = pending.reader()?;
        let saved = pending.finish()?;
        owner.lastsave.store(unix_ms() / 1000, std::sync::atomic::Ordering::Relaxed);
        Ok((file, saved.bytes))
    })
    .await
    .map_err(std::io::Error::other)??;
    // A fresh read handle: it starts at the beginning of the file.
    let mut file = tokio::fs::File::from_std(file);
    socket.write_all(format!("${len}\r\n").as_bytes()).await?;
    let copied = tokio::io::copy(&mut (&mut file).take(len), socket).await?;
    if copied != len {
        return Err(std::io::Error::other("the snapshot file is shorter than it was written"));
    }
    Ok(())
}

/// Sends a frozen snapshot as an EOF-marked (diskless) transfer: one chunk under the keyspace
/// lock, then its bytes to the socket while clients are served, and so on.
async fn send_chunks(
    shared: &Shared,
    snapshot: &mut Snapshot<RdbWriter<Vec<u8>>>,
    socket: &mut TcpStream,
) -> std::io::Result<()> {
    let mark = super::new_replid();
    socket.write_all(format!("$EOF:{mark}\r\n").as_bytes()).await?;
    loop {
        let step = snapshot.write_chunk(&mut shared.keyspace.lock())?;
        socket.write_all(&snapshot.drain()).await?;
        match step {
            Progress::More => crate::persist::pace::between_chunks(snapshot.pause()).await,
            Progress::Done => break,
            Progress::Interrupted => {
                return Err(std::io::Error::other("the dataset was replaced during the transfer"))
            }
        }
    }
    socket.write_all(mark.as_bytes()).await?;
    Ok(())
}

/// Streams the backlog to the replica and reads its ACKs.
async fn stream(
    shared: &Arc<Shared>,
    socket: &mut TcpStream,
    input: &mut BytesMut,
    client: u64,
    mut wait_first_ack: bool,
    stop: &mut (dyn std::future::Future<Output = ()> + Send + Unpin),
) {
    let mut out = Vec::with_capacity(CHUNK);
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        let notified = shared.repl_data.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        shared.repl_pending.store(false, std::sync::atomic::Ordering::SeqCst);
        {
            let mut r = shared.repl.lock();
            if r.evicted.contains(&client) {
                return;
            }
            let r = &mut *r;
            let Some(entry) = r.replicas.iter_mut().find(|e| e.client == client) else { return };
            if !wait_first_ack {
                match r.backlog.as_ref().and_then(|b| b.read(entry.sent, CHUNK, &mut out)) {
                    Some(n) => {
                        entry.sent += n as i64;
                        if n < CHUNK {
                            // Caught up: below any limit, so the soft-limit clock stops.
                            entry.soft_clock = Default::default();
                        }
                    }
                    None => {
                        warn!(client, "replica fell out of the backlog; disconnecting it");
                        return;
                    }
                }
            }
        }
        if !out.is_empty() {
            shared
                .stats
                .net_repl_output
                .fetch_add(out.len() as u64, std::sync::atomic::Ordering::Relaxed);
            tokio::select! {
                written = socket.write_all(&out) => if written.is_err() { return },
                _ = &mut *stop => return,
            }
            out.clear();
            continue;
        }
        tokio::select! {
            _ = &mut notified => {}
            read = socket.read_buf(input) => match read {
                Ok(0) | Err(_) => return,
                Ok(_) => {
                    if !read_acks(shared, input, client, &mut wait_first_ack) {
                        return;
                    }
                }
            },
            _ = tick.tick() => {
                let timeout = Duration::from_secs(shared.config.read().settings.repl_timeout);
                let mut r = shared.repl.lock();
                // A replica stuck over its soft limit with no new writes is still dropped.
                r.check_replica_limits(Instant::now());
                let late = r.replicas.iter().any(|e| e.client == client && e.ack_time.elapsed() > timeout);
                if late {
                    warn!(client, "disconnecting timedout replica");
                    return;
                }
            }
            _ = &mut *stop => return,
        }
    }
}

/// Applies `REPLCONF ACK <offset> [FACK <aofoffset>]` lines. Returns false on a protocol
/// error (the session ends).
fn read_acks(shared: &Shared, input: &mut BytesMut, client: u64, waiting: &mut bool) -> bool {
    let limits = RequestLimits { max_bulk_len: 1 << 20, unauthenticated: false };
    let mut acked = false;
    loop {
        let argv = match parse_request(input, limits) {
            Ok(Some(argv)) => argv,
            Ok(None) => break,
            Err(_) => return false,
        };
        let is_ack = argv.len() >= 3
            && argv[0].eq_ignore_ascii_case(b"replconf")
            && argv[1].eq_ignore_ascii_case(b"ack");
        if !is_ack {
            // A replica sends nothing else on this link; like Redis, ignore it.
            continue;
        }
        let Some(off) = common::fmt::parse_i64(&argv[2]) else { continue };
        let fack = match argv.get(3) {
            Some(word) if word.eq_ignore_ascii_case(b"fack") => {
                argv.get(4).and_then(|v| common::fmt::parse_i64(v))
            }
            _ => None,
        };
        let mut r = shared.repl.lock();
        if let Some(e) = r.replica_mut(client) {
            e.ack_off = e.ack_off.max(off);
            if let Some(f) = fack {
                e.aof_off = e.aof_off.max(f);
            }
            e.ack_time = Instant::now();
            acked = true;
        }
    }
    if acked {
        *waiting = false;
        shared.repl_acks.notify_waiters();
    }
    true
}
