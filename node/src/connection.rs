//! One client connection: read requests, run them, write replies.
//!
//! Pipelining: every complete request in the input buffer is executed and its reply appended
//! to one output buffer, which is written once when the input runs dry (or grows past 64 KiB).
//! A blocked client stops executing but keeps reading, as in Redis, so a disconnect is noticed.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use common::resp::{parse_request_into, Frame, Protocol, RequestLimits};
use common::shutdown::Shutdown;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tracing::{debug, warn};

use crate::client::{ClientHandle, ClientSnapshot, ClientState, ReplyMode};
use crate::command_stats::Counted;
use crate::dispatch::{self, Blocked};
use crate::exec::Effect;
use crate::kill_switch::{KillSwitch, Killed};
use crate::output_limit::{BufferLimit, OutputLimits, SoftLimitClock};
use crate::push::PushReceiver;
use crate::server::{unix_ms, Pause, Shared};

/// Flush the output buffer once it holds this much, even mid-pipeline.
const FLUSH_THRESHOLD: usize = 64 * 1024;

/// Why a connection ended.
enum Close {
    /// Peer closed, QUIT, kill, protocol error.
    Done,
    /// SHUTDOWN succeeded.
    Shutdown,
    /// PSYNC or SYNC: the connection becomes a replica's feed.
    Replica(crate::repl::feed::SyncRequest),
}

/// Serves one accepted connection until it closes.
/// `handoff`: what a busy script did for it before it got here (see [`crate::busy`]).
pub async fn serve(
    shared: Arc<Shared>,
    socket: TcpStream,
    addr: SocketAddr,
    shutdown: Shutdown,
    handoff: Option<crate::busy::Handoff>,
) {
    let _ = socket.set_nodelay(true);
    let keepalive = shared.config.read().settings.tcp_keepalive;
    if keepalive > 0 {
        // Like Redis: probe idle peers so dead ones are noticed (TCP_KEEPIDLE = tcp-keepalive).
        let sock = socket2::SockRef::from(&socket);
        let _ = sock.set_tcp_keepalive(
            &socket2::TcpKeepalive::new().with_time(Duration::from_secs(keepalive)),
        );
    }
    let laddr = socket.local_addr().unwrap_or(addr);
    let (push_tx, push_rx) = crate::push::queue();
    let kill = KillSwitch::new();
    let snapshot = Arc::new(parking_lot::Mutex::new(ClientSnapshot {
        multi: -1,
        resp: 2,
        user: (bytes::Bytes::from_static(b"default"), crate::acl::DEFAULT_INCARNATION),
        ..Default::default()
    }));
    let default_nopass = shared.acl.acl.read().default_entry().user.nopass;
    let (id, refused) = {
        let settings = shared.config.read().settings.clone();
        let mut clients = shared.clients.lock();
        // A connection accepted by a busy script was given its id then.
        let id = handoff.as_ref().and_then(|h| h.id).unwrap_or_else(|| clients.next_id());
        let refused = if clients.len() >= settings.maxclients {
            clients.rejected += 1;
            Some("ERR max number of clients reached")
        } else if protected(&settings, default_nopass, &addr) {
            Some(PROTECTED_MODE)
        } else {
            None
        };
        if refused.is_none() {
            clients.add(ClientHandle {
                id,
                addr,
                laddr,
                created_ms: unix_ms(),
                fd: std::os::fd::AsRawFd::as_raw_fd(&socket),
                snapshot: snapshot.clone(),
                kill: kill.clone(),
                push: push_tx.clone(),
            });
        }
        (id, refused)
    };
    // Registered after the server began stopping: its sweep of the registry (see
    // `server::run`) may have come too early to find this client.
    if shutdown.is_triggered() {
        kill.kill();
    }
    let mut socket = socket;
    if let Some(text) = refused {
        let _ = socket.write_all(&Frame::error(text).to_bytes(Protocol::Resp2)).await;
        return;
    }
    let user = shared.acl.default_user();
    let authenticated = !shared.acl.acl.read().auth_required();
    snapshot.lock().authenticated = authenticated;
    let client = ClientState {
        id,
        db: 0,
        resp: Protocol::Resp2,
        authenticated,
        user,
        name: None,
        multi: None,
        multi_failed: false,
        watched: Vec::new(),
        query_pending: 0,
        channels: Default::default(),
        patterns: Default::default(),
        shard_channels: Default::default(),
        after_reply: Vec::new(),
        reply_mode: ReplyMode::On,
        snapshot,
        addr,
        laddr,
        push: push_tx,
        lib: Default::default(),
        kind: Default::default(),
        woff: 0,
        master_raw: Vec::new(),
        hello: Default::default(),
        aof_woff: 0,
        tally: Default::default(),
        error_counted: false,
    };
    let stop = kill.killed();
    let mut conn = Connection {
        shared: shared.clone(),
        socket,
        client,
        push_rx,
        output_limits: OutputLimits::default(),
        output_clock: SoftLimitClock::default(),
        stop,
        monitor: false,
        input: BytesMut::with_capacity(BUFFER_START),
        output: BytesMut::with_capacity(BUFFER_START),
        argv: Vec::new(),
    };
    let close = match handoff.map(|handoff| conn.absorb(handoff)) {
        Some(true) => {
            let _ = conn.flush().await;
            Close::Done
        }
        _ => conn.run().await,
    };
    match close {
        Close::Shutdown => shared.shutdown.fire(),
        Close::Replica(request) => {
            conn.client.kind = crate::client::ClientKind::Replica;
            conn.client.snapshot.lock().kind = crate::client::ClientKind::Replica;
            let id = conn.client.id;
            crate::repl::feed::serve(
                shared.clone(),
                &mut conn.socket,
                &mut conn.input,
                id,
                request,
                &mut conn.stop,
            )
            .await;
        }
        Close::Done => {}
    }
    conn.cleanup();
}

const PROTECTED_MODE: &str = "DENIED Redis is running in protected mode because protected mode is enabled and no password is set for the default user. In this mode connections are only accepted from the loopback interface. If you want to connect from external computers to Redis you may adopt one of the following solutions: 1) Just disable protected mode sending the command 'CONFIG SET protected-mode no' from the loopback interface by connecting to Redis from the same host the server is running, however MAKE SURE Redis is not publicly accessible from internet if you do so. Use CONFIG REWRITE to make this change permanent. 2) Alternatively you can just disable the protected mode by editing the Redis configuration file, and setting the protected mode option to 'no', and then restarting the server. 3) If you started the server manually just for testing, restart it with the '--protected-mode no' option. 4) Set up an authentication password for the default user. NOTE: You only need to do one of the above things in order for the server to start accepting connections from the outside.";

/// Protected mode refuses non-loopback peers when no password is set (Redis's rule).
/// Protected mode refuses remote clients while the default user needs no password, as in
/// Redis.
pub(crate) fn protected(
    settings: &crate::config::Settings,
    default_nopass: bool,
    addr: &SocketAddr,
) -> bool {
    settings.protected_mode && default_nopass && !addr.ip().is_loopback()
}

/// A client waiting out CLIENT PAUSE, counted until dropped.
struct PausedClient<'a> {
    shared: &'a Shared,
    client: &'a ClientState,
}

impl<'a> PausedClient<'a> {
    fn enter(shared: &'a Shared, client: &'a ClientState) -> PausedClient<'a> {
        shared.paused_clients.fetch_add(1, Ordering::Relaxed);
        client.snapshot.lock().blocked = true;
        PausedClient { shared, client }
    }
}

impl Drop for PausedClient<'_> {
    fn drop(&mut self) {
        self.shared.paused_clients.fetch_sub(1, Ordering::Relaxed);
        self.client.snapshot.lock().blocked = false;
    }
}

/// A connection's buffers start this large.
const BUFFER_START: usize = 16 * 1024;
/// An empty buffer larger than this is given back (see `Connection::shrink_buffers`).
const BUFFER_KEEP: usize = 64 * 1024;

/// An argument vector with room for more than this many arguments is given back.
const ARGV_KEEP: usize = 1024;

/// Settings a batch of pipelined requests reads, copied once per batch.
struct BatchLimits {
    max_bulk_len: usize,
    slowlog_slower_than: i64,
    slowlog_max_len: usize,
    latency_monitor_threshold: u64,
}

struct Connection {
    shared: Arc<Shared>,
    socket: TcpStream,
    client: ClientState,
    push_rx: PushReceiver,
    /// `client-output-buffer-limit`, read with each batch.
    output_limits: OutputLimits,
    output_clock: SoftLimitClock,
    /// Completes when the client is killed, or the server stops (it kills every client).
    stop: Killed,
    /// This client ran MONITOR (it receives command lines through the push queue).
    monitor: bool,
    input: BytesMut,
    output: BytesMut,
    /// The request being run (kept allocated between requests).
    argv: Vec<bytes::Bytes>,
}

impl Connection {
    async fn run(&mut self) -> Close {
        loop {
            match self.process_input().await {
                Ok(None) => {}
                Ok(Some(close)) => {
                    let _ = self.flush().await;
                    return close;
                }
                Err(()) => return Close::Done,
            }
            if self.flush().await.is_err() {
                return Close::Done;
            }
            self.shrink_buffers();
            self.shared.busy_poll.served();
            let timeout = self.shared.config.read().settings.timeout;
            let timeout = async {
                if timeout == 0 || self.client.in_pubsub() {
                    std::future::pending::<()>().await
                } else {
                    tokio::time::sleep(Duration::from_secs(timeout)).await
                }
            };
            // Biased: the socket first, and no per-wake-up random branch order. Only clients
            // that can receive pushes (subscribers, MONITOR, RESP3 clients, which may be sent
            // tracking invalidations) wait on the push queue at all.
            let pushes = self.receives_pushes();
            // Parked with nothing buffered: a busy script may serve this socket meanwhile.
            let idle = self.input.is_empty() && self.output.is_empty();
            if idle {
                self.stop.set_idle(true);
            }
            tokio::select! {
                biased;
                read = self.socket.read_buf(&mut self.input) => match read {
                    Ok(0) | Err(_) => return Close::Done,
                    Ok(n) => {
                        self.shared.stats.net_input.fetch_add(n as u64, Ordering::Relaxed);
                        if self.input.len() > self.shared.config.read().settings.client_query_buffer_limit {
                            debug!(client = self.client.id, "closing client that exceeded the query buffer limit");
                            return Close::Done;
                        }
                    }
                },
                Some(frame) = self.push_rx.recv(), if pushes => frame.encode(self.client.resp, &mut self.output),
                _ = &mut self.stop => if self.stop.is_killed() {
                    return Close::Done;
                },
                _ = timeout => {
                    debug!(client = self.client.id, "closing idle client");
                    return Close::Done;
                }
            }
            if idle {
                self.stop.set_idle(false);
                if let Some(handoff) = self.stop.take_handoff() {
                    if self.absorb(handoff) {
                        let _ = self.flush().await;
                        return Close::Done;
                    }
                }
            }
        }
    }

    /// Takes back what a busy script did for this connection while it was parked (or before
    /// it existed): its input goes before anything read since, its replies before anything
    /// written since. True: the connection ends once its replies are sent (QUIT, or a
    /// protocol error, meanwhile).
    fn absorb(&mut self, handoff: crate::busy::Handoff) -> bool {
        let crate::busy::Handoff {
            input,
            output,
            discard_transaction,
            unwatch,
            multi_started,
            multi_failed,
            close,
            user,
            resp,
            name,
            id: _,
        } = handoff;
        let since = std::mem::replace(&mut self.input, input);
        self.input.extend_from_slice(&since);
        let since = std::mem::replace(&mut self.output, output);
        self.output.extend_from_slice(&since);
        if let Some(user) = user {
            self.client.authenticated = true;
            self.client.snapshot.lock().authenticated = true;
            self.client.set_user(user);
        }
        if let Some(resp) = resp {
            self.client.resp = resp;
            self.client.snapshot.lock().resp = if resp == Protocol::Resp3 { 3 } else { 2 };
        }
        if let Some(name) = name {
            self.client.snapshot.lock().name = name.clone();
            self.client.name = name;
        }
        if discard_transaction {
            self.client.leave_multi();
        }
        if (discard_transaction || unwatch) && !self.client.watched.is_empty() {
            self.client.unwatch_all(&mut self.shared.keyspace.lock().watches);
        }
        if multi_started {
            self.client.enter_multi();
        }
        if multi_failed && self.client.multi.is_some() {
            self.client.multi_failed = true;
        }
        close
    }

    /// Runs every complete request in the input buffer. `Ok(Some)` ends the connection after
    /// flushing; `Err` ends it at once.
    async fn process_input(&mut self) -> Result<Option<Close>, ()> {
        // Settings are read once per batch of pipelined requests, not once per request.
        let limits = {
            let s = &self.shared.config.read().settings;
            self.output_limits = s.output_limits;
            BatchLimits {
                max_bulk_len: s.proto_max_bulk_len,
                slowlog_slower_than: s.slowlog_slower_than,
                slowlog_max_len: s.slowlog_max_len,
                latency_monitor_threshold: s.latency_monitor_threshold,
            }
        };
        let mut last = None;
        // One clock reading per command: the end of one command is the start of the next, and
        // wall-clock time is derived from the monotonic clock relative to the batch start.
        // The clock is quanta's (the CPU's calibrated time-stamp counter where it is invariant,
        // else the OS clock): a command costs about a microsecond, and a clock_gettime call
        // per command measured 4% of the server's CPU in a pipelined GET benchmark.
        let (batch_wall_ms, batch_start) = (unix_ms(), quanta::Instant::now());
        let mut mark = batch_start;
        let result = loop {
            let request_limits = RequestLimits {
                max_bulk_len: limits.max_bulk_len,
                unauthenticated: !self.client.authenticated,
            };
            let pending = self.input.len();
            // One argument vector for the connection's life: no allocation per request.
            let mut argv = std::mem::take(&mut self.argv);
            match parse_request_into(&mut self.input, request_limits, &mut argv) {
                Ok(true) => {}
                Ok(false) => {
                    self.argv = argv;
                    break Ok(None);
                }
                Err(e) => {
                    Frame::error(format!("ERR {e}")).encode(self.client.resp, &mut self.output);
                    break Ok(Some(Close::Done));
                }
            }
            if argv.is_empty() {
                self.argv = argv;
                continue;
            }
            self.client.query_pending = pending;
            if self.shared.is_pausing() {
                self.wait_if_paused(&argv).await?;
                mark = quanta::Instant::now();
            }
            let started = mark;
            let now_ms = batch_wall_ms + started.duration_since(batch_start).as_millis() as i64;
            let outcome = dispatch::call(&self.shared, &mut self.client, &argv, now_ms);
            mark = quanta::Instant::now();
            crate::server::count_command(&self.shared);
            last = outcome.resolved.or(last);
            let failed = outcome.reply.as_ref().is_some_and(Frame::is_error);
            let took = mark.duration_since(started);
            // A command that blocked is counted when it is answered, failed or not (Redis's
            // updateStatsOnUnblock): a reader woken with -NOGROUP is a failed call.
            let tally_now = outcome.blocked.is_none();
            if let Some(resolved) = outcome.resolved.filter(|_| tally_now) {
                self.client.tally.command(
                    resolved,
                    outcome.counted,
                    took.as_micros() as u64,
                    failed,
                );
            }
            // What was refused before running is neither logged nor shown to MONITOR.
            let ran = outcome.resolved.filter(|_| outcome.counted != Counted::Rejected);
            // A command that blocked goes to the slow log when it is answered (as Redis's
            // updateStatsOnUnblock), as it was sent: its arguments are kept until then.
            let blocked_argv = outcome.blocked.as_ref().map(|_| argv.clone());
            self.after_command(&argv, ran, took, &limits, blocked_argv.is_none());
            // Emptied now: the arguments share the input buffer's memory, which the next read
            // can reuse only once nothing points into it.
            argv.clear();
            self.argv = argv;
            if self.receives_pushes() {
                while let Some(push) = self.push_rx.try_recv() {
                    push.encode(self.client.resp, &mut self.output);
                }
            }
            if let Some(reply) = outcome.reply {
                self.reply(reply);
            }
            for push in self.client.after_reply.drain(..) {
                push.encode(self.client.resp, &mut self.output);
            }
            if let Some(blocked) = outcome.blocked {
                let reply = self.wait_blocked(blocked).await?;
                if let Some(resolved) = outcome.resolved {
                    let usec = took.as_micros() as u64;
                    self.client.tally.command(resolved, outcome.counted, usec, reply.is_error());
                }
                if let (Some(argv), Some(_)) = (blocked_argv, ran) {
                    let (threshold, max_len) = (limits.slowlog_slower_than, limits.slowlog_max_len);
                    let micros = took.as_micros() as u64;
                    crate::slowlog::log_if_slow(
                        &self.shared,
                        &self.client,
                        &argv,
                        micros,
                        threshold,
                        max_len,
                    );
                }
                self.reply(reply);
                // Time spent blocked is not the next command's processing time.
                mark = quanta::Instant::now();
            }
            match outcome.effect {
                None | Some(Effect::Block { .. }) => {}
                Some(Effect::Close) => break Ok(Some(Close::Done)),
                Some(Effect::Shutdown) => break Ok(Some(Close::Shutdown)),
                Some(Effect::Sync(request)) => break Ok(Some(Close::Replica(request))),
                Some(Effect::ShutdownAfterReplicas { deadline, save, nosave, force }) => {
                    self.flush().await.map_err(|_| ())?;
                    if !crate::repl::catch_up::wait(&self.shared, deadline).await {
                        tracing::warn!("replicas did not catch up before shutdown-timeout");
                    }
                    self.shared.unpause();
                    let outcome = dispatch::finish_shutdown(
                        &self.shared,
                        &mut self.client,
                        save,
                        nosave,
                        force,
                    );
                    match outcome {
                        Ok(()) => break Ok(Some(Close::Shutdown)),
                        Err(frame) => self.reply(frame),
                    }
                }
                Some(Effect::Wait(wait)) => {
                    let reply = self.wait_acks(wait).await?;
                    self.reply(reply);
                    mark = quanta::Instant::now();
                }
                Some(Effect::LoadAof) => {
                    let shared = self.shared.clone();
                    let loaded = tokio::task::spawn_blocking(move || crate::aof::reload(&shared))
                        .await
                        .map_err(|_| ())?;
                    match loaded {
                        Ok(()) => self.reply(Frame::ok()),
                        Err(why) => self.reply(Frame::error(format!("ERR {why}"))),
                    }
                    mark = quanta::Instant::now();
                }
                Some(Effect::Monitor) => {
                    self.monitor = true;
                    let count = self.shared.clients.lock().set_monitor(self.client.id, true);
                    self.shared.monitoring.store(count, Ordering::Relaxed);
                }
            }
            if self.over_output_limit() {
                // As in Redis, the replies that went over the limit are never sent.
                return Err(());
            }
            if self.output.len() >= FLUSH_THRESHOLD && self.flush().await.is_err() {
                return Err(());
            }
        };
        self.client.tally.flush(&self.shared.command_stats);
        if let Some(resolved) = last {
            let mut snap = self.client.snapshot.lock();
            snap.last_interaction_ms =
                batch_wall_ms + mark.duration_since(batch_start).as_millis() as i64;
            snap.db = self.client.db;
            snap.last_cmd = Some((resolved.name(), resolved.parent.map(|_| resolved.spec.name)));
            snap.qbuf = self.input.len();
        }
        result
    }

    /// Whether out-of-band frames can reach this client: subscribers and MONITOR, and any
    /// RESP3 client (CLIENT TRACKING invalidations, its own or redirected to it).
    fn receives_pushes(&self) -> bool {
        self.monitor || self.client.in_pubsub() || self.client.resp == Protocol::Resp3
    }

    fn reply(&mut self, frame: Frame) {
        if frame.is_error() && !std::mem::take(&mut self.client.error_counted) {
            self.shared.stats.errors.fetch_add(1, Ordering::Relaxed);
            self.client.tally.error(&frame);
        }
        match self.client.reply_mode {
            ReplyMode::On => frame.encode(self.client.resp, &mut self.output),
            ReplyMode::Off => {}
            ReplyMode::SkipNext => self.client.reply_mode = ReplyMode::Skip,
            ReplyMode::Skip => self.client.reply_mode = ReplyMode::On,
        }
    }

    /// SLOWLOG, the latency monitor and MONITOR after each command (each costs nothing unless
    /// in use).
    fn after_command(
        &mut self,
        argv: &[bytes::Bytes],
        resolved: Option<dispatch::Resolved>,
        took: Duration,
        limits: &BatchLimits,
        slowlog: bool,
    ) {
        let micros = took.as_micros() as u64;
        // As in Redis: only commands that ran are logged (not unknown ones or wrong arities),
        // EXEC is logged through its commands, and the threshold is the one in force after
        // the command (CONFIG SET slowlog-log-slower-than 0 logs itself).
        let logged =
            slowlog && resolved.is_some_and(|r| !r.spec.has(crate::cmd::flags::SKIP_SLOWLOG));
        let threshold = match resolved {
            Some(r) if r.name() == "config" => {
                self.shared.config.read().settings.slowlog_slower_than
            }
            _ => limits.slowlog_slower_than,
        };
        if logged {
            let max_len = limits.slowlog_max_len;
            crate::slowlog::log_if_slow(
                &self.shared,
                &self.client,
                argv,
                micros,
                threshold,
                max_len,
            );
        }
        if let Some(r) = resolved {
            // Redis's latency monitor: `fast-command` for commands flagged fast.
            let fast = r.spec.has(crate::cmd::flags::FAST);
            let event = if fast { "fast-command" } else { "command" };
            let threshold = limits.latency_monitor_threshold;
            crate::latency_monitor::record(&self.shared, event, took, threshold);
        }
        if self.shared.monitoring.load(Ordering::Relaxed) > 0 {
            let skip = resolved.is_none_or(|r| {
                let s = r.parent.unwrap_or(r.spec);
                s.has(crate::cmd::flags::ADMIN)
                    || s.has(crate::cmd::flags::SKIP_MONITOR)
                    || r.spec.has(crate::cmd::flags::ADMIN)
            });
            if !skip {
                crate::cmd::server::feed_monitors(
                    &self.shared,
                    self.client.db,
                    &self.client.addr,
                    argv,
                    unix_ms(),
                );
            }
        }
    }

    async fn wait_if_paused(&mut self, argv: &[bytes::Bytes]) -> Result<(), ()> {
        let mut pause = self.shared.pause_watch();
        loop {
            let state = *pause.borrow();
            let until = match state {
                Pause::None => return Ok(()),
                Pause::All(until) => until,
                Pause::Write(until) => {
                    if !crate::dispatch::may_replicate(&self.shared, &self.client, argv) {
                        return Ok(());
                    }
                    until
                }
            };
            if std::time::Instant::now() >= until {
                return Ok(());
            }
            self.flush().await.map_err(|_| ())?;
            // Counted as blocked meanwhile (INFO blocked_clients, CLIENT LIST flag b), as Redis
            // counts its postponed clients.
            let _blocked = PausedClient::enter(&self.shared, &self.client);
            tokio::select! {
                _ = tokio::time::sleep_until(until.into()) => return Ok(()),
                _ = pause.changed() => {}
                _ = &mut self.stop => return Err(()),
            }
        }
    }

    /// WAIT / WAITAOF: until enough replicas acknowledged the client's last write, or the
    /// timeout (then the count so far is the reply).
    async fn wait_acks(&mut self, wait: crate::cmd::replication::WaitFor) -> Result<Frame, ()> {
        self.flush().await.map_err(|_| ())?;
        let deadline = wait.timeout.map(|t| tokio::time::Instant::now() + t);
        let mut synced = self.shared.aof_synced.subscribe();
        loop {
            let notified = self.shared.repl_acks.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            synced.borrow_and_update();
            let status = wait.status(&self.shared);
            if wait.satisfied(status) {
                return Ok(wait.reply(status));
            }
            let timeout = async {
                match deadline {
                    Some(d) => tokio::time::sleep_until(d).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = &mut notified => {}
                _ = synced.changed() => {}
                _ = timeout => return Ok(wait.reply(wait.status(&self.shared))),
                // Keep reading so a disconnect is noticed; requests wait in the buffer.
                read = self.socket.read_buf(&mut self.input) => match read {
                    Ok(0) | Err(_) => return Err(()),
                    Ok(_) => {}
                },
                _ = &mut self.stop => return Err(()),
            }
        }
    }

    /// Waits for a blocked command's reply, its timeout, or the end of the connection.
    async fn wait_blocked(&mut self, mut blocked: Blocked) -> Result<Frame, ()> {
        self.flush().await.map_err(|_| ())?;
        self.client.snapshot.lock().blocked = true;
        let deadline = blocked.timeout.map(|t| tokio::time::Instant::now() + t);
        let result = loop {
            let timeout = async {
                match deadline {
                    Some(d) => tokio::time::sleep_until(d).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                reply = &mut blocked.reply => break reply.map_err(|_| ()),
                _ = timeout => {
                    // Unregister; if a writer served us meanwhile, its reply wins.
                    let waiter = self.shared.keyspace.lock().blocking.unblock(blocked.ticket);
                    break match (waiter, blocked.reply.try_recv()) {
                        (_, Ok(reply)) => Ok(reply),
                        _ => Ok(blocked.on_timeout),
                    };
                }
                // Keep reading so a disconnect is noticed; requests wait in the buffer.
                read = self.socket.read_buf(&mut self.input) => match read {
                    Ok(0) | Err(_) => break Err(()),
                    Ok(_) => {}
                },
                _ = &mut self.stop => break Err(()),
            }
        };
        self.client.snapshot.lock().blocked = false;
        if result.is_err() {
            self.shared.keyspace.lock().blocking.unblock(blocked.ticket);
        }
        result
    }

    /// Gives memory back after a large request or reply: a buffer left empty but grown past
    /// [`BUFFER_KEEP`] is replaced by a fresh small one, as Redis resizes its query buffers, so
    /// one 10 MB command does not pin 10 MB for the connection's lifetime.
    fn shrink_buffers(&mut self) {
        if self.input.is_empty() && self.input.capacity() > BUFFER_KEEP {
            self.input = BytesMut::with_capacity(BUFFER_START);
        }
        if self.output.is_empty() && self.output.capacity() > BUFFER_KEEP {
            self.output = BytesMut::with_capacity(BUFFER_START);
        }
        // A 100,000-argument request leaves a 3 MB vector behind; a few dozen slots serve
        // any ordinary command.
        if self.argv.capacity() > ARGV_KEEP {
            self.argv = Vec::new();
        }
    }

    async fn flush(&mut self) -> std::io::Result<()> {
        if self.output.is_empty() {
            return Ok(());
        }
        // Nothing is acknowledged before it is in the AOF: written to the file (everysec, no),
        // or fsynced (always).
        let target = self.client.aof_woff;
        if target > 0 && self.shared.aof_on.load(Ordering::Relaxed) {
            if !self.shared.aof_always.load(Ordering::Relaxed) {
                crate::aof::write_before_reply(&self.shared, target);
            } else if *self.shared.aof_synced.borrow() < target {
                let mut synced = self.shared.aof_synced.subscribe();
                if synced.wait_for(|v| *v >= target).await.is_err() {
                    return Err(std::io::ErrorKind::BrokenPipe.into());
                }
            }
        }
        self.shared.stats.net_output.fetch_add(self.output.len() as u64, Ordering::Relaxed);
        self.write_output().await?;
        self.output.clear();
        Ok(())
    }

    /// Writes the output buffer. While at least the soft limit of it stays unsent (a client
    /// that does not read), the soft-limit clock runs, and the client is dropped when it
    /// expires — the wait for the socket does not suspend the limit.
    async fn write_output(&mut self) -> std::io::Result<()> {
        let limit = self.output_limit();
        if limit.soft == 0 || self.output.len() < limit.soft {
            return self.socket.write_all(&self.output).await;
        }
        let mut sent = 0;
        while sent < self.output.len() {
            let waiting = self.output.len() - sent + self.push_rx.waiting();
            if self.output_clock.over(&limit, waiting, Instant::now()) {
                self.warn_output_limit(waiting);
                return Err(std::io::ErrorKind::OutOfMemory.into());
            }
            let deadline = self.output_clock.deadline(&limit);
            let expired = async {
                match deadline {
                    Some(at) => tokio::time::sleep_until(at.into()).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                written = self.socket.write(&self.output[sent..]) => match written? {
                    0 => return Err(std::io::ErrorKind::WriteZero.into()),
                    n => sent += n,
                },
                _ = expired => {}
            }
        }
        Ok(())
    }

    /// Checks what waits for this client (unsent replies and pushes) against its class's
    /// `client-output-buffer-limit`; true: drop the client now.
    fn over_output_limit(&mut self) -> bool {
        let limit = self.output_limit();
        let waiting = self.output.len() + self.push_rx.waiting();
        if waiting < limit.threshold() {
            self.output_clock = SoftLimitClock::default();
            return false;
        }
        if !self.output_clock.over(&limit, waiting, Instant::now()) {
            return false;
        }
        self.warn_output_limit(waiting);
        true
    }

    /// The limit of this client's class: subscribers are held to `pubsub`, the rest (MONITOR
    /// included) to `normal`, as in Redis.
    fn output_limit(&self) -> BufferLimit {
        if self.client.in_pubsub() {
            self.output_limits.pubsub
        } else {
            self.output_limits.normal
        }
    }

    fn warn_output_limit(&self, waiting: usize) {
        warn!(
            client = self.client.id,
            waiting, "client scheduled to be closed ASAP for overcoming of output buffer limits"
        );
    }

    /// Releases everything the client held: watches, subscriptions, its registry entry.
    fn cleanup(&mut self) {
        let shared = &self.shared;
        {
            let mut ks = shared.keyspace.lock();
            ks.watches.unwatch(self.client.id, &self.client.watched);
            ks.tracking.disable(self.client.id);
            if let Some(ticket) = ks.blocking.ticket_of(self.client.id) {
                ks.blocking.unblock(ticket);
            }
        }
        {
            let mut clients = shared.clients.lock();
            clients.remove(self.client.id);
            shared.monitoring.store(clients.monitors.len(), Ordering::Relaxed);
        }
        let mut pubsub = shared.pubsub.lock();
        for channel in &self.client.channels {
            pubsub.unsubscribe(self.client.id, channel);
        }
        for pattern in &self.client.patterns {
            pubsub.punsubscribe(self.client.id, pattern);
        }
        for channel in &self.client.shard_channels {
            pubsub.sunsubscribe(self.client.id, channel);
        }
    }
}
