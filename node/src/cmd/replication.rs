//! Replication commands: REPLICAOF/SLAVEOF, REPLCONF, PSYNC, SYNC, WAIT, WAITAOF.
//!
//! PSYNC and SYNC do not reply here: they turn the connection into a replica's feed
//! (`crate::repl::feed`), which writes `+FULLRESYNC`/`+CONTINUE` itself. WAIT and WAITAOF
//! reply here when they can; otherwise the connection waits for ACKs.

use std::time::Duration;

use bytes::Bytes;
use common::resp::Frame;
use tracing::info;

use crate::cmd::args::{self, is};
use crate::cmd::flags::*;
use crate::cmd::{cmd, CommandSpec};
use crate::error::{CmdResult, CommandError};
use crate::exec::{Ctx, Effect};
use crate::repl::feed::SyncRequest;
use crate::repl::{link, CachedMaster};

/// The replication commands.
pub static COMMANDS: &[CommandSpec] = &[
    cmd("replicaof", 3, ADMIN | NOSCRIPT | STALE, (0, 0, 0), replicaof),
    cmd("slaveof", 3, ADMIN | NOSCRIPT | STALE, (0, 0, 0), replicaof),
    cmd("replconf", -1, ADMIN | NOSCRIPT | LOADING | STALE, (0, 0, 0), replconf),
    cmd("psync", -3, ADMIN | NOSCRIPT | NO_MULTI, (0, 0, 0), psync),
    cmd("sync", 1, ADMIN | NOSCRIPT | NO_MULTI, (0, 0, 0), sync),
    cmd("wait", 3, NOSCRIPT, (0, 0, 0), wait),
    cmd("waitaof", 4, NOSCRIPT, (0, 0, 0), waitaof),
    cmd("failover", -1, ADMIN | NOSCRIPT | STALE, (0, 0, 0), failover),
];

/// What a client waits for after WAIT or WAITAOF.
#[derive(Debug, Clone, Copy)]
pub struct WaitFor {
    /// The stream offset replicas must acknowledge.
    pub offset: i64,
    /// How many replicas.
    pub replicas: usize,
    /// How long (`None`: forever).
    pub timeout: Option<Duration>,
    /// WAITAOF: count fsync acknowledgements (FACK), and reply `[local, replicas]`.
    pub aof: bool,
    /// WAITAOF with numlocal 1: our own AOF must be fsynced up to this AOF offset.
    pub local: Option<u64>,
    /// The AOF offset of the client's last write (what "local" means in the reply).
    pub aof_target: u64,
}

impl WaitFor {
    /// Where things stand: our AOF fsynced far enough, and how many replicas acknowledged.
    pub fn status(&self, shared: &crate::server::Shared) -> (bool, usize) {
        let local = shared.aof_on.load(std::sync::atomic::Ordering::Relaxed)
            && *shared.aof_synced.borrow() >= self.aof_target;
        let r = shared.repl.lock();
        let acked = if self.aof { r.aof_acked(self.offset) } else { r.acked(self.offset) };
        (local, acked)
    }

    /// True when the wait is over.
    pub fn satisfied(&self, (local, acked): (bool, usize)) -> bool {
        acked >= self.replicas && (self.local.is_none() || local)
    }

    /// The reply for a status.
    pub fn reply(&self, (local, acked): (bool, usize)) -> Frame {
        if self.aof {
            Frame::Array(vec![Frame::Integer(i64::from(local)), Frame::Integer(acked as i64)])
        } else {
            Frame::Integer(acked as i64)
        }
    }
}

/// No reply of its own: the connection (or the feed) answers.
fn silent() -> Frame {
    Frame::Raw(Bytes::new())
}

fn replicaof(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let shared = ctx.server;
    if shared.repl.lock().failover.is_some() {
        return Err(CommandError::err("REPLICAOF not allowed while failing over."));
    }
    if is(&args[1], "no") && is(&args[2], "one") {
        let mut r = shared.repl.lock();
        if r.is_replica() {
            link::stop(shared, &mut r);
            promote(&mut r);
            shared.refresh_role(&r);
            info!(client = %ctx.client.addr, "MASTER MODE enabled (user request)");
        }
        return Ok(Frame::ok());
    }
    if ctx.client.kind == crate::client::ClientKind::Replica {
        return Err(CommandError::err("Command is not valid when client is a replica."));
    }
    let port = match args::int(&args[2]) {
        Ok(p) if (0..=65535).contains(&p) => p as u16,
        _ => return Err(CommandError::err("Invalid master port")),
    };
    let host = String::from_utf8_lossy(&args[1]).into_owned();
    let mut r = shared.repl.lock();
    if r.master.as_ref().is_some_and(|m| m.host.eq_ignore_ascii_case(&host) && m.port == port) {
        return Ok(Frame::simple("OK Already connected to specified master"));
    }
    // PSYNC with what we have: our own history when we were a master (a demoted master can
    // continue as a replica of its successor), else the current or cached master.
    let cached = match &r.master {
        None => Some(CachedMaster { replid: r.replid.clone(), offset: r.offset(), db: 0 }),
        Some(link) if link.state == crate::repl::LinkState::Connected => Some(CachedMaster {
            replid: r.replid.clone(),
            offset: r.offset(),
            db: shared.master_db.load(std::sync::atomic::Ordering::Relaxed),
        }),
        Some(link) => link.cached.clone(),
    };
    info!(master = %format!("{host}:{port}"), client = %ctx.client.addr, "REPLICAOF enabled (user request)");
    if !r.is_replica() {
        // As Redis does when a master becomes a replica.
        ctx.exec.ks.blocking.unblock_all(&Frame::error(
            "UNBLOCKED force unblock from blocking operation, instance state changed (master -> replica?)",
        ));
    }
    link::start(&shared.self_arc(), &mut r, host, port, cached);
    shared.refresh_role(&r);
    Ok(Frame::ok())
}

/// Turns a replica into a master: a new history that remembers the old one, and our replicas
/// reconnect to learn it (they continue with a partial resync).
pub fn promote(r: &mut crate::repl::Replication) {
    r.shift_replid();
    r.evict_replicas();
    r.stream_db = None;
    r.no_replicas_since = std::time::Instant::now();
}

fn replconf(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    if args.len().is_multiple_of(2) {
        return Err(CommandError::Syntax);
    }
    for pair in args[1..].chunks(2) {
        let (option, value) = (&pair[0], &pair[1]);
        if is(option, "listening-port") {
            let port = args::int(value)?;
            ctx.client.hello.port = u16::try_from(port).map_err(|_| CommandError::NotInteger)?;
        } else if is(option, "ip-address") {
            if value.len() >= 46 {
                return Err(CommandError::err(format!(
                    "REPLCONF ip-address provided by replica instance is too long: {} bytes",
                    value.len()
                )));
            }
            ctx.client.hello.ip = Some(String::from_utf8_lossy(value).into_owned());
        } else if is(option, "capa") {
            if is(value, "eof") {
                ctx.client.hello.capa_eof = true;
            } else if is(value, "psync2") {
                ctx.client.hello.capa_psync2 = true;
            }
        } else if is(option, "ack") || is(option, "getack") {
            // Only meaningful on a replica link, which the feed and the applier read
            // directly; from anyone else, silently ignored as Redis does.
            return Ok(silent());
        } else if is(option, "rdb-only") || is(option, "rdb-filter-only") {
        } else {
            return Err(CommandError::Bytes(Bytes::from(
                [b"ERR Unrecognized REPLCONF option: ".as_slice(), option].concat(),
            )));
        }
    }
    Ok(Frame::ok())
}

fn sync_request(ctx: &Ctx<'_>, replid: String, offset: i64, psync: bool) -> SyncRequest {
    let hello = &ctx.client.hello;
    SyncRequest {
        replid,
        offset,
        psync,
        port: hello.port,
        ip: hello.ip.clone().unwrap_or_else(|| ctx.client.addr.ip().to_string()),
        capa_eof: hello.capa_eof,
        capa_psync2: hello.capa_psync2,
    }
}

fn psync(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    if args.len() > 4 || (args.len() == 4 && !is(&args[3], "failover")) {
        return Err(CommandError::Syntax);
    }
    let offset = args::int(&args[2])?;
    if args.len() == 4 {
        crate::repl::failover::accept_psync_failover(ctx.server, &args[1])?;
    }
    let replid = String::from_utf8_lossy(&args[1]).into_owned();
    let request = sync_request(ctx, replid, offset, true);
    ctx.effect = Some(Effect::Sync(request));
    Ok(silent())
}

fn sync(ctx: &mut Ctx<'_>, _: &[Bytes]) -> CmdResult {
    let request = sync_request(ctx, "?".into(), -1, false);
    ctx.effect = Some(Effect::Sync(request));
    Ok(silent())
}

/// WAIT's and WAITAOF's millisecond timeout.
fn timeout_ms(arg: &[u8]) -> Result<Option<Duration>, CommandError> {
    let ms = args::int_with(arg, CommandError::err("timeout is not an integer or out of range"))?;
    if ms < 0 {
        return Err(CommandError::err("timeout is negative"));
    }
    Ok((ms > 0).then(|| Duration::from_millis(ms as u64)))
}

fn wait(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    if ctx.server.is_replica() {
        return Err(CommandError::err(
            "WAIT cannot be used with replica instances. Please also note that since Redis 4.0 if a replica is configured to be writable (which is not the default) writes to replicas are just local and are not propagated.",
        ));
    }
    let replicas = args::int(&args[1])?;
    let timeout = timeout_ms(&args[2])?;
    let wait = WaitFor {
        offset: ctx.client.woff,
        replicas: replicas.max(0) as usize,
        timeout,
        aof: false,
        local: None,
        aof_target: ctx.client.aof_woff,
    };
    start_wait(ctx, wait)
}

fn waitaof(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    if ctx.server.is_replica() {
        return Err(CommandError::err(
            "WAITAOF cannot be used with replica instances. Please also note that writes to replicas are just local and are not propagated.",
        ));
    }
    let local = args::int(&args[1])?;
    let replicas = args::int(&args[2])?;
    let timeout = timeout_ms(&args[3])?;
    if local < 0 || replicas < 0 {
        return Err(CommandError::err("value is out of range, must be positive"));
    }
    if local != 0 && !ctx.server.aof_on.load(std::sync::atomic::Ordering::Relaxed) {
        return Err(CommandError::err(
            "WAITAOF cannot be used when numlocal is set but appendonly is disabled.",
        ));
    }
    let wait = WaitFor {
        offset: ctx.client.woff,
        replicas: replicas as usize,
        timeout,
        aof: true,
        local: (local != 0).then_some(ctx.client.aof_woff),
        aof_target: ctx.client.aof_woff,
    };
    start_wait(ctx, wait)
}

fn start_wait(ctx: &mut Ctx<'_>, wait: WaitFor) -> CmdResult {
    let status = wait.status(ctx.server);
    if wait.satisfied(status) || ctx.in_exec || ctx.client.multi.is_some() {
        return Ok(wait.reply(status));
    }
    // Ask every replica for its offset now rather than waiting for its next periodic ACK.
    ctx.server.request_acks(&mut ctx.server.repl.lock());
    ctx.server.aof_wake.notify_one();
    ctx.effect = Some(Effect::Wait(wait));
    Ok(silent())
}

/// FAILOVER [TO host port [FORCE]] [ABORT] [TIMEOUT ms]: hand the master role to a replica
/// without losing acknowledged writes (writes pause until the replica has everything).
fn failover(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    use crate::repl::failover::{self as fo, FailoverRequest, FailoverState};
    let shared = ctx.server;
    if args.len() == 2 && is(&args[1], "abort") {
        if shared.repl.lock().failover.is_none() {
            return Err(CommandError::err("No failover in progress."));
        }
        fo::abort(shared, "Failover manually aborted");
        return Ok(Frame::ok());
    }
    let (mut timeout_ms, mut force, mut target) = (0i64, false, None);
    let mut j = 1;
    while j < args.len() {
        if is(&args[j], "timeout") && j + 1 < args.len() && timeout_ms == 0 {
            timeout_ms = args::int(&args[j + 1])?;
            if timeout_ms <= 0 {
                return Err(CommandError::err("FAILOVER timeout must be greater than 0"));
            }
            j += 2;
        } else if is(&args[j], "to") && j + 2 < args.len() && target.is_none() {
            let port = args::int(&args[j + 2])?;
            target = Some((String::from_utf8_lossy(&args[j + 1]).into_owned(), port));
            j += 3;
        } else if is(&args[j], "force") && !force {
            force = true;
            j += 1;
        } else {
            return Err(CommandError::Syntax);
        }
    }
    let mut r = shared.repl.lock();
    if r.failover.is_some() {
        return Err(CommandError::err("FAILOVER already in progress."));
    }
    if r.is_replica() {
        return Err(CommandError::err("FAILOVER is not valid when server is a replica."));
    }
    if r.replicas.is_empty() {
        return Err(CommandError::err("FAILOVER requires connected replicas."));
    }
    if force && (timeout_ms == 0 || target.is_none()) {
        return Err(CommandError::err(
            "FAILOVER with force option requires both a timeout and target HOST and IP.",
        ));
    }
    let target = match target {
        Some((host, port)) => {
            let Some(replica) =
                r.replicas.iter().find(|e| e.ip == host && i64::from(e.port) == port)
            else {
                return Err(CommandError::err("FAILOVER target HOST and PORT is not a replica."));
            };
            if replica.state != crate::repl::ReplicaState::Online {
                return Err(CommandError::err("FAILOVER target replica is not online."));
            }
            info!(target = %format!("{host}:{port}"), "FAILOVER requested");
            Some((host, port as u16))
        }
        None => {
            info!("FAILOVER requested to any replica");
            None
        }
    };
    r.failover = Some(FailoverState::WaitingForSync);
    drop(r);
    let deadline = (timeout_ms > 0)
        .then(|| std::time::Instant::now() + Duration::from_millis(timeout_ms as u64));
    fo::start(&shared.self_arc(), FailoverRequest { target, deadline, force });
    Ok(Frame::ok())
}
