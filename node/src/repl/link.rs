//! Our link to a master: connect → handshake → PSYNC → transfer → streaming, retried once a
//! second until REPLICAOF changes or the server stops.
//!
//! Between links the master is *cached* (its replid, our applied offset and its selected
//! database), so the next PSYNC asks to continue where we stopped. A master that answers
//! `+CONTINUE <other id>` switched history (it was promoted): the old id becomes our replid2
//! and our own replicas are disconnected so they learn the new id. Before loading a full
//! snapshot our replicas are disconnected and our backlog freed, as in Redis.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tracing::{info, warn};

use super::apply::Applier;
use super::transfer::{LoadMode, Received, Transfer};
use super::{CachedMaster, LinkState, MasterLink, Replication};
use crate::db::Keyspace;
use crate::server::Shared;

/// Each blocking step of the handshake may take this long (Redis's sync I/O timeout).
const HANDSHAKE_IO: Duration = Duration::from_secs(5);

/// Why one link attempt ended.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    /// Socket trouble.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The master said something we cannot follow.
    #[error("{0}")]
    Protocol(String),
    /// Nothing arrived for too long.
    #[error("timeout: {0}")]
    Timeout(&'static str),
    /// The snapshot did not load.
    #[error("can't load the snapshot from the master: {0}")]
    Load(String),
    /// REPLICAOF changed or the server is stopping.
    #[error("link cancelled")]
    Cancelled,
}

/// Makes this node a replica of `host:port` and starts the link. `cached` is what to PSYNC
/// with first (our own history when a master is demoted).
pub fn start(
    shared: &Arc<Shared>,
    r: &mut Replication,
    host: String,
    port: u16,
    cached: Option<CachedMaster>,
) {
    start_link(shared, r, host, port, cached, false)
}

/// Like [`start`], for the last step of FAILOVER: the PSYNC carries `FAILOVER`, asking the
/// target to promote itself first.
pub fn start_failover(
    shared: &Arc<Shared>,
    r: &mut Replication,
    host: String,
    port: u16,
    cached: Option<CachedMaster>,
) {
    start_link(shared, r, host, port, cached, true)
}

fn start_link(
    shared: &Arc<Shared>,
    r: &mut Replication,
    host: String,
    port: u16,
    cached: Option<CachedMaster>,
    failover: bool,
) {
    if let Some(old) = r.master.take() {
        let _ = old.stop.send(true);
    }
    r.generation += 1;
    let generation = r.generation;
    let (stop, stopped) = watch::channel(false);
    r.master = Some(MasterLink {
        host: host.clone(),
        port,
        state: LinkState::Connect,
        last_io: None,
        down_since: Instant::now(),
        ever_up: false,
        transfer: None,
        cached,
        stop,
        generation,
        failover,
    });
    shared.set_replica(true);
    let shared = shared.clone();
    tokio::spawn(async move { run(shared, generation, stopped).await });
}

/// At startup with `replicaof` set: become a replica. If the dump file recorded where in its
/// master's stream it was taken, PSYNC from there (a restarted replica resumes with a partial
/// resync).
pub fn start_configured(shared: &Arc<Shared>, loaded: Option<&crate::persist::LoadSummary>) {
    let Some((host, port)) = shared.config.read().settings.replicaof.clone() else { return };
    let _ks = shared.keyspace.lock();
    let mut r = shared.repl.lock();
    let cached = loaded.and_then(|summary| {
        let replid = summary.repl_id()?.to_string();
        let offset = summary.repl_offset()?;
        let db = summary.repl_stream_db().filter(|&d| d >= 0)? as usize;
        r.restore(&replid, offset);
        Some(CachedMaster { replid, offset, db })
    });
    start(shared, &mut r, host, port, cached);
    shared.refresh_role(&r);
}

/// Stops the link (REPLICAOF NO ONE, shutdown).
pub fn stop(shared: &Shared, r: &mut Replication) {
    if let Some(old) = r.master.take() {
        let _ = old.stop.send(true);
    }
    shared.set_link_up(false);
    shared.set_replica(false);
}

/// Retries the link until cancelled.
async fn run(shared: Arc<Shared>, generation: u64, mut stopped: watch::Receiver<bool>) {
    loop {
        let attempt = tokio::select! {
            r = connect_and_follow(&shared, generation) => r,
            _ = stopped.changed() => Err(LinkError::Cancelled),
        };
        let current = link_down(&shared, generation);
        match attempt {
            Err(LinkError::Cancelled) => return,
            Err(e) => warn!(cause = %e, "lost the link with the master"),
            Ok(()) => {}
        }
        if !current || *stopped.borrow() {
            return;
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            _ = stopped.changed() => return,
        }
    }
}

/// Marks the link down and caches the master for the next PSYNC. Returns false when this
/// link was replaced meanwhile.
fn link_down(shared: &Shared, generation: u64) -> bool {
    let _ks = shared.keyspace.lock();
    let mut r = shared.repl.lock();
    let offset = r.offset();
    let has_history = r.backlog.is_some();
    let replid = r.replid.clone();
    let Some(link) = r.master.as_mut().filter(|l| l.generation == generation) else {
        return false;
    };
    if link.state == LinkState::Connected {
        link.down_since = Instant::now();
        if has_history {
            let db = shared.master_db.load(Ordering::Relaxed);
            link.cached = Some(CachedMaster { replid, offset, db });
        }
    }
    link.state = LinkState::Connect;
    link.transfer = None;
    shared.set_link_up(false);
    true
}

/// Updates the link's state if it is still the current one.
fn set_state(shared: &Shared, generation: u64, state: LinkState) -> Result<(), LinkError> {
    let mut r = shared.repl.lock();
    match r.master.as_mut().filter(|l| l.generation == generation) {
        Some(link) => {
            link.state = state;
            link.ever_up |= state == LinkState::Connected;
            link.last_io = Some(Instant::now());
            Ok(())
        }
        None => Err(LinkError::Cancelled),
    }
}

/// A socket with a read buffer, for line-oriented handshake replies and the snapshot.
struct Wire {
    socket: TcpStream,
    buf: BytesMut,
}

impl Wire {
    /// Reads one `\r\n`-terminated line (without it) within `timeout`.
    async fn line(&mut self, timeout: Duration) -> Result<Vec<u8>, LinkError> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Some(nl) = self.buf.iter().position(|&b| b == b'\n') {
                let mut line = self.buf.split_to(nl + 1).to_vec();
                line.pop();
                if line.last() == Some(&b'\r') {
                    line.pop();
                }
                return Ok(line);
            }
            if self.buf.len() > 64 * 1024 {
                return Err(LinkError::Protocol("reply line too long".into()));
            }
            self.fill(deadline).await?;
        }
    }

    /// Reads a non-empty line, skipping the bare newlines a master sends as keepalives.
    async fn reply(&mut self, timeout: Duration) -> Result<Vec<u8>, LinkError> {
        loop {
            let line = self.line(timeout).await?;
            if !line.is_empty() {
                return Ok(line);
            }
        }
    }

    async fn fill(&mut self, deadline: tokio::time::Instant) -> Result<usize, LinkError> {
        match tokio::time::timeout_at(deadline, self.socket.read_buf(&mut self.buf)).await {
            Err(_) => Err(LinkError::Timeout("no reply from the master")),
            Ok(Ok(0)) => Err(LinkError::Protocol("the master closed the connection".into())),
            Ok(Ok(n)) => Ok(n),
            Ok(Err(e)) => Err(e.into()),
        }
    }

    async fn send(&mut self, argv: &[&[u8]]) -> Result<(), LinkError> {
        let args: Vec<bytes::Bytes> =
            argv.iter().map(|a| bytes::Bytes::copy_from_slice(a)).collect();
        let mut out = Vec::new();
        super::encode_command(&mut out, &args);
        self.socket.write_all(&out).await?;
        Ok(())
    }
}

/// One link: handshake, sync, then stream until something breaks.
async fn connect_and_follow(shared: &Arc<Shared>, generation: u64) -> Result<(), LinkError> {
    let (host, port, cached, failover) = {
        let r = shared.repl.lock();
        let link =
            r.master.as_ref().filter(|l| l.generation == generation).ok_or(LinkError::Cancelled)?;
        (link.host.clone(), link.port, link.cached.clone(), link.failover)
    };
    let result = handshake_and_follow(shared, generation, &host, port, cached, failover).await;
    if failover {
        // The handover either happened (the PSYNC was answered) or it is off.
        if let Err(e) = &result {
            if shared.repl.lock().failover.is_some() {
                super::failover::abort(shared, &format!("handover to {host}:{port} failed: {e}"));
            }
        }
    }
    result
}

async fn handshake_and_follow(
    shared: &Arc<Shared>,
    generation: u64,
    host: &str,
    port: u16,
    cached: Option<CachedMaster>,
    failover: bool,
) -> Result<(), LinkError> {
    let settings = shared.config.read().settings.clone();
    let timeout = Duration::from_secs(settings.repl_timeout);
    set_state(shared, generation, LinkState::Connecting)?;
    info!(master = %format!("{host}:{port}"), "connecting to the master");
    let socket = tokio::time::timeout(timeout, TcpStream::connect((host, port)))
        .await
        .map_err(|_| LinkError::Timeout("connecting to the master"))??;
    let _ = socket.set_nodelay(true);
    let mut wire = Wire { socket, buf: BytesMut::with_capacity(64 * 1024) };
    set_state(shared, generation, LinkState::Handshake)?;

    wire.send(&[b"PING"]).await?;
    let pong = wire.reply(HANDSHAKE_IO).await?;
    let auth_errors: [&[u8]; 3] = [b"-NOAUTH", b"-NOPERM", b"-ERR operation not permitted"];
    if pong.first() != Some(&b'+') && !auth_errors.iter().any(|p| pong.starts_with(p)) {
        return Err(LinkError::Protocol(format!(
            "error reply to PING from master: '{}'",
            String::from_utf8_lossy(&pong)
        )));
    }
    // AUTH and the REPLCONFs are pipelined; every reply is read before PSYNC.
    let mut expected = 0;
    let auth = settings.masterauth.clone();
    if let Some(pass) = &auth {
        match &settings.masteruser {
            Some(user) => wire.send(&[b"AUTH", user.as_bytes(), pass.as_bytes()]).await?,
            None => wire.send(&[b"AUTH", pass.as_bytes()]).await?,
        }
    }
    let announce_port = if settings.replica_announce_port != 0 {
        settings.replica_announce_port
    } else {
        shared.port()
    };
    wire.send(&[b"REPLCONF", b"listening-port", announce_port.to_string().as_bytes()]).await?;
    expected += 1;
    if let Some(ip) = &settings.replica_announce_ip {
        wire.send(&[b"REPLCONF", b"ip-address", ip.as_bytes()]).await?;
        expected += 1;
    }
    wire.send(&[b"REPLCONF", b"capa", b"eof", b"capa", b"psync2"]).await?;
    expected += 1;
    if auth.is_some() {
        let reply = wire.reply(HANDSHAKE_IO).await?;
        if reply.first() == Some(&b'-') {
            return Err(LinkError::Protocol(format!(
                "unable to AUTH to MASTER: {}",
                String::from_utf8_lossy(&reply)
            )));
        }
    }
    for _ in 0..expected {
        // REPLCONF errors are not fatal: old masters do not know every option.
        wire.reply(HANDSHAKE_IO).await?;
    }

    let (replid, offset) = match &cached {
        Some(c) => (c.replid.clone(), (c.offset + 1).to_string()),
        None => ("?".to_string(), "-1".to_string()),
    };
    info!(request = %format!("{replid}:{offset}"), "trying a partial resynchronization");
    if failover {
        wire.send(&[b"PSYNC", replid.as_bytes(), offset.as_bytes(), b"FAILOVER"]).await?;
    } else {
        wire.send(&[b"PSYNC", replid.as_bytes(), offset.as_bytes()]).await?;
    }
    let answer = wire.reply(timeout).await?;
    let text = String::from_utf8_lossy(&answer).into_owned();
    if failover && (text.starts_with("+FULLRESYNC") || text.starts_with("+CONTINUE")) {
        super::failover::finished(shared);
    }
    let mut applier = Applier::new(shared);
    if let Some(rest) = text.strip_prefix("+FULLRESYNC") {
        let mut words = rest.split_whitespace();
        let id = words.next().unwrap_or("").to_string();
        let off: i64 = words.next().and_then(|w| w.parse().ok()).unwrap_or(-1);
        // An id of the wrong length is blanked, forcing a full sync next time (as Redis does).
        let id = if id.len() == 40 { id } else { super::NO_REPLID.to_string() };
        info!(replid = %id, offset = off, "full resync from the master");
        set_state(shared, generation, LinkState::Sync)?;
        let (db, eof_marked) = receive_snapshot(shared, generation, &mut wire, &id, off).await?;
        applier.select(db);
        if eof_marked {
            // A master does not start streaming after an EOF-marked transfer until it sees us
            // acknowledge.
            wire.send(&[b"REPLCONF", b"ACK", off.to_string().as_bytes()]).await?;
        }
    } else if let Some(rest) = text.strip_prefix("+CONTINUE") {
        let new_id = rest.trim();
        let cached = cached.ok_or_else(|| {
            LinkError::Protocol("the master continued a sync we did not ask for".into())
        })?;
        continue_history(shared, &cached, new_id, settings.repl_backlog_size);
        applier.select(cached.db);
        info!(replid = %new_id, "partial resynchronization accepted");
    } else if text.starts_with("-NOMASTERLINK") || text.starts_with("-LOADING") {
        return Err(LinkError::Protocol(format!("master is currently unable to PSYNC: {text}")));
    } else {
        return Err(LinkError::Protocol(format!("unexpected reply to PSYNC from master: {text}")));
    }
    set_state(shared, generation, LinkState::Connected)?;
    shared.set_link_up(true);
    stream(shared, generation, wire, applier, timeout).await
}

/// After `+CONTINUE [id]`: revive the cached master; a new id means the master switched
/// history, which our own replicas must learn too.
fn continue_history(shared: &Shared, cached: &CachedMaster, new_id: &str, backlog_size: usize) {
    let _ks = shared.keyspace.lock();
    let mut r = shared.repl.lock();
    if !new_id.is_empty() && new_id != r.replid && new_id.len() == 40 {
        r.replid2 = std::mem::replace(&mut r.replid, new_id.to_string());
        r.second_offset = cached.offset + 1;
        r.evict_replicas();
        info!(new = %new_id, "master replication id changed");
    }
    r.ensure_backlog(backlog_size);
    if let Some(link) = r.master.as_mut() {
        link.cached = None;
    }
    drop(r);
    shared.repl_data.notify_waiters();
}

/// Reads the `$<len>` or `$EOF:<mark>` transfer, loads it, and adopts the master's history.
/// Returns the stream's database and whether the transfer was EOF-marked.
async fn receive_snapshot(
    shared: &Arc<Shared>,
    generation: u64,
    wire: &mut Wire,
    replid: &str,
    offset: i64,
) -> Result<(usize, bool), LinkError> {
    let timeout = Duration::from_secs(shared.config.read().settings.repl_timeout);
    let header = wire.reply(timeout).await?;
    if header.first() == Some(&b'-') {
        return Err(LinkError::Protocol(format!(
            "master aborted replication: {}",
            String::from_utf8_lossy(&header)
        )));
    }
    if header.first() != Some(&b'$') {
        return Err(LinkError::Protocol(format!(
            "bad protocol from MASTER, the first byte is not '$': '{}'",
            String::from_utf8_lossy(&header)
        )));
    }
    let mark = header.strip_prefix(b"$EOF:").map(<[u8]>::to_vec);
    let expected: Option<usize> = match &mark {
        Some(m) if m.len() == 40 => None,
        Some(_) => return Err(LinkError::Protocol("bad EOF mark from the master".into())),
        None => Some(
            std::str::from_utf8(&header[1..])
                .ok()
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| LinkError::Protocol("bad transfer length from the master".into()))?,
        ),
    };
    let (mode, dir, dbfilename, databases) = {
        let c = shared.config.read();
        (
            LoadMode::parse(c.get("repl-diskless-load").unwrap_or("disabled")),
            c.settings.dir.clone(),
            c.get("dbfilename").unwrap_or("dump.rdb").to_string(),
            c.settings.databases,
        )
    };
    let empty = shared.keyspace.lock().dbs.iter().all(|db| db.keys.is_empty());
    let mut transfer = if mode.to_disk(empty) {
        Transfer::on_disk(&dir, &dbfilename)
            .map_err(|e| LinkError::Load(format!("can't open a temp file for the transfer: {e}")))?
    } else {
        Transfer::in_memory(expected)
    };
    let disk_error = |e: std::io::Error| LinkError::Load(format!("can't write the transfer: {e}"));
    let mut reported = 0u64;
    loop {
        match (expected, &mark) {
            (Some(len), _) => {
                let take = (len - transfer.len() as usize).min(wire.buf.len());
                transfer.push(&wire.buf[..take]).await.map_err(disk_error)?;
                wire.buf.advance(take);
                if transfer.len() as usize == len {
                    break;
                }
            }
            (None, Some(mark)) => {
                transfer.push(&wire.buf).await.map_err(disk_error)?;
                wire.buf.clear();
                if transfer.ends_with(mark) {
                    break;
                }
            }
            (None, None) => unreachable!("a transfer has a length or a mark"),
        }
        if transfer.len() - reported >= 1 << 20 {
            reported = transfer.len();
            let mut r = shared.repl.lock();
            if let Some(link) = r.master.as_mut().filter(|l| l.generation == generation) {
                link.transfer = Some((expected.map_or(-1, |l| l as i64), transfer.len()));
                link.last_io = Some(Instant::now());
            }
        }
        let deadline = tokio::time::Instant::now() + timeout;
        wire.fill(deadline).await?;
    }
    let total = transfer.len();
    shared.stats.net_repl_input.fetch_add(total, Ordering::Relaxed);
    let received = transfer.finish(mark.as_ref().map_or(0, Vec::len)).await.map_err(disk_error)?;
    info!(
        bytes = total,
        to = if matches!(received, Received::File(_)) { "disk" } else { "memory" },
        "received the snapshot from the master"
    );

    // Our replicas followed our old history; they must resync after this load, and the old
    // backlog describes data we are about to drop.
    {
        let mut r = shared.repl.lock();
        r.evict_replicas();
        r.free_backlog();
    }
    shared.repl_data.notify_waiters();
    let loaded = tokio::task::spawn_blocking(move || {
        let mut fresh = Keyspace::new(databases);
        let summary = received.load(&mut fresh).map_err(|e| e.to_string())?;
        // The master's libraries replace ours, as its keys replace our keys.
        let libraries = crate::script::library::Libraries::from_loaded(&summary.functions)?;
        Ok::<_, String>((fresh, summary, libraries))
    })
    .await
    .map_err(|e| LinkError::Load(e.to_string()))?;
    let (mut fresh, summary, libraries) = loaded.map_err(LinkError::Load)?;
    let db = summary.repl_stream_db().filter(|&d| d >= 0 && (d as usize) < databases).unwrap_or(0)
        as usize;
    let backlog_size = shared.config.read().settings.repl_backlog_size;
    {
        let mut ks = shared.keyspace.lock();
        crate::cmd::persistence::abandon_bgsave(shared, &mut ks);
        std::mem::swap(&mut ks.dbs, &mut fresh.dbs);
        *shared.functions.lock() = libraries;
        ks.watches.touch_all();
        ks.tracking.flushed();
        let mut r = shared.repl.lock();
        if r.master.as_ref().is_none_or(|l| l.generation != generation) {
            return Err(LinkError::Cancelled);
        }
        r.adopt(replid, offset, backlog_size);
        r.stream_db = None;
        if let Some(link) = r.master.as_mut() {
            link.transfer = None;
            link.cached = None;
        }
    }
    // The old data is freed off the keyspace lock.
    tokio::task::spawn_blocking(move || drop(fresh));
    info!(keys = summary.keys_loaded, "loaded the master's snapshot");
    if shared.aof_on.load(Ordering::Relaxed) {
        // Our AOF describes the data we just replaced: start it over from the new dataset
        // (as Redis restarts its AOF after a full sync) before applying any of the stream.
        let shared = shared.clone();
        tokio::task::spawn_blocking(move || crate::aof::rewrite(&shared))
            .await
            .map_err(|e| LinkError::Load(e.to_string()))?
            .map_err(|e| LinkError::Load(format!("can't rewrite the AOF after the sync: {e}")))?;
    }
    Ok((db, mark.is_some()))
}

/// Applies the master's stream, acknowledging once a second and on GETACK.
async fn stream(
    shared: &Arc<Shared>,
    generation: u64,
    mut wire: Wire,
    mut applier: Applier,
    timeout: Duration,
) -> Result<(), LinkError> {
    let second = Duration::from_secs(1);
    let mut ack = tokio::time::interval_at(tokio::time::Instant::now() + second, second);
    let mut kill = applier.kill_signal();
    let mut replies = Vec::new();
    let mut last_io = Instant::now();
    loop {
        if !wire.buf.is_empty() {
            applier
                .apply(shared, &mut wire.buf, &mut replies)
                .map_err(|e| LinkError::Protocol(format!("protocol error from the master: {e}")))?;
            if !replies.is_empty() {
                wire.socket.write_all(&replies).await?;
                replies.clear();
            }
        }
        tokio::select! {
            read = wire.socket.read_buf(&mut wire.buf) => match read {
                Ok(0) => return Err(LinkError::Protocol("the master closed the connection".into())),
                Ok(n) => {
                    last_io = Instant::now();
                    shared.stats.net_repl_input.fetch_add(n as u64, Ordering::Relaxed);
                    let mut r = shared.repl.lock();
                    match r.master.as_mut().filter(|l| l.generation == generation) {
                        Some(link) => link.last_io = Some(last_io),
                        None => return Err(LinkError::Cancelled),
                    }
                }
                Err(e) => return Err(e.into()),
            },
            _ = ack.tick() => {
                if last_io.elapsed() > timeout {
                    return Err(LinkError::Timeout("no data from the master"));
                }
                wire.socket.write_all(&shared.ack_command()).await?;
            }
            _ = &mut kill => {
                return Err(LinkError::Protocol("the master link was killed".into()));
            }
        }
    }
}
