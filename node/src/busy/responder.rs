//! The event loop a busy script runs for the other clients: an epoll set of its own over the
//! listening sockets and the parked connections' sockets, polled without waiting each time
//! the script's hook calls in (see the module above for what it answers and why).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use common::resp::{parse_request_into, Frame, Protocol, RequestLimits};
use parking_lot::Mutex;

use super::{Handoff, Script, Verdict};
use crate::acl::ClientUser;
use crate::client::ClientSnapshot;
use crate::cmd::flags;
use crate::command_stats::{Counted, Tally};
use crate::dispatch::{check_arity, find, Resolved};
use crate::error::CommandError;
use crate::kill_switch::KillSwitch;
use crate::server::Shared;

/// Sockets read per poll, and connections accepted per poll: bounded, so the script gets its
/// thread back soon whatever the load.
const EVENTS: usize = 64;
const ACCEPTS: usize = 16;
/// Bytes read from one socket per poll.
const READ_CHUNK: usize = 16 * 1024;

const BUSY_EVAL: &str =
    "BUSY Redis is busy running a script. You can only call SCRIPT KILL or SHUTDOWN NOSAVE.";
const BUSY_FUNCTION: &str =
    "BUSY Redis is busy running a script. You can only call FUNCTION KILL or SHUTDOWN NOSAVE.";

/// Whose socket it is.
enum Socket {
    /// A connection parked between requests: its task owns the socket, and gets back what
    /// is left through its kill switch.
    Parked { switch: KillSwitch, snapshot: Arc<Mutex<ClientSnapshot>> },
    /// Accepted while busy: it joins the accept loop when the script ends.
    Fresh { stream: std::net::TcpStream, addr: SocketAddr },
}

struct Client {
    socket: Socket,
    fd: RawFd,
    id: u64,
    resp: Protocol,
    handoff: Handoff,
    authenticated: bool,
    /// Whom its commands are checked as.
    user: ClientUser,
    in_multi: bool,
    /// A request that must wait for the script heads the input: nothing more is read.
    waiting: bool,
    /// The peer left, or broke the protocol: nothing more is read or written.
    gone: bool,
}

pub(super) struct Responder {
    epoll: OwnedFd,
    listeners: Vec<RawFd>,
    clients: HashMap<RawFd, Client>,
    tally: Tally,
}

/// What one request comes to.
enum Answer {
    Reply(Frame),
    /// Refused before running (counted as a rejected call).
    Refused(Frame, Option<Resolved>),
    /// It must wait for the script.
    Wait,
}

impl Responder {
    /// Watches the listeners and every connection parked between requests.
    pub(super) fn start(shared: &Shared) -> std::io::Result<Responder> {
        // SAFETY: epoll_create1 takes no pointers.
        let raw = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if raw < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let mut responder = Responder {
            // SAFETY: `raw` was just returned to us, and no one else owns it.
            epoll: unsafe { OwnedFd::from_raw_fd(raw) },
            listeners: shared.listener_fds.read().clone(),
            clients: HashMap::new(),
            tally: Tally::default(),
        };
        for fd in responder.listeners.clone() {
            responder.watch(fd);
        }
        let parked: Vec<_> = shared
            .clients
            .lock()
            .iter()
            .filter(|c| c.fd >= 0 && c.kill.is_idle())
            .map(|c| (c.id, c.fd, c.kill.clone(), c.snapshot.clone()))
            .collect();
        for (id, fd, switch, snapshot) in parked {
            let client = parked_client(shared, id, fd, switch, snapshot);
            responder.clients.insert(fd, client);
            responder.watch(fd);
        }
        Ok(responder)
    }

    /// One round: accepts, reads and answers whatever is ready, without waiting.
    pub(super) fn serve(&mut self, shared: &Shared, script: &Script, wrote: bool) -> Verdict {
        let mut events = [libc::epoll_event { events: 0, u64: 0 }; EVENTS];
        // SAFETY: the buffer holds EVENTS entries; a zero timeout never blocks.
        let n = unsafe {
            libc::epoll_wait(self.epoll.as_raw_fd(), events.as_mut_ptr(), EVENTS as i32, 0)
        };
        let mut verdict = Verdict::Continue;
        for event in events.iter().take(n.max(0) as usize) {
            let fd = event.u64 as RawFd;
            if self.listeners.contains(&fd) {
                self.accept(shared, fd);
                continue;
            }
            let Some(mut client) = self.clients.remove(&fd) else { continue };
            read(shared, &mut client);
            let asked = self.answer_all(shared, script, wrote, &mut client);
            if asked != Verdict::Continue {
                verdict = asked;
            }
            if client.waiting || client.gone || client.handoff.close {
                self.unwatch(fd);
            }
            self.clients.insert(fd, client);
        }
        // Replies the socket could not take at once are retried each round.
        for client in self.clients.values_mut().filter(|c| !c.handoff.output.is_empty()) {
            write(shared, client);
        }
        self.tally.flush(&shared.command_stats);
        verdict
    }

    /// The script ended: each connection gets back what is left.
    pub(super) fn finish(self, shared: &Shared) {
        for (_, mut client) in self.clients {
            write(shared, &mut client);
            match client.socket {
                Socket::Parked { switch, .. } => {
                    let handoff = client.handoff;
                    let pending = !handoff.input.is_empty()
                        || !handoff.output.is_empty()
                        || handoff.multi_failed
                        || handoff.multi_started
                        || handoff.discard_transaction
                        || handoff.unwatch
                        || handoff.user.is_some()
                        || handoff.resp.is_some()
                        || handoff.name.is_some()
                        || handoff.close;
                    if pending && !client.gone {
                        switch.hand(handoff);
                    }
                }
                Socket::Fresh { stream, addr } => {
                    if client.gone || client.handoff.close {
                        continue;
                    }
                    let adopted = crate::server::Adopted { stream, addr, handoff: client.handoff };
                    if let Some(accept_loop) = shared.adopt.get() {
                        let _ = accept_loop.send(adopted);
                    }
                }
            }
        }
    }

    fn watch(&self, fd: RawFd) {
        let mut event = libc::epoll_event { events: libc::EPOLLIN as u32, u64: fd as u64 };
        // SAFETY: `event` is a valid epoll_event; a failure only leaves `fd` unwatched.
        unsafe { libc::epoll_ctl(self.epoll.as_raw_fd(), libc::EPOLL_CTL_ADD, fd, &mut event) };
    }

    fn unwatch(&self, fd: RawFd) {
        let mut event = libc::epoll_event { events: 0, u64: 0 };
        // SAFETY: as in `watch`.
        unsafe { libc::epoll_ctl(self.epoll.as_raw_fd(), libc::EPOLL_CTL_DEL, fd, &mut event) };
    }

    /// Takes new connections, as the accept loop would.
    fn accept(&mut self, shared: &Shared, listener: RawFd) {
        for _ in 0..ACCEPTS {
            let listener = std::mem::ManuallyDrop::new(
                // SAFETY: the listener stays open (the server owns it) while the script runs;
                // ManuallyDrop keeps this borrowed copy from closing it.
                unsafe { std::net::TcpListener::from_raw_fd(listener) },
            );
            let Ok((stream, addr)) = listener.accept() else { return };
            if stream.set_nonblocking(true).is_err() {
                continue;
            }
            let _ = stream.set_nodelay(true);
            let settings = shared.config.read().settings.clone();
            let default_nopass = shared.acl.acl.read().default_entry().user.nopass;
            let fd = stream.as_raw_fd();
            let (crowded, id) = {
                let mut clients = shared.clients.lock();
                (clients.len() + self.fresh() >= settings.maxclients, clients.next_id())
            };
            let mut client = Client {
                socket: Socket::Fresh { stream, addr },
                fd,
                id,
                resp: Protocol::Resp2,
                handoff: Handoff { id: Some(id), ..Handoff::default() },
                authenticated: !shared.acl.acl.read().auth_required(),
                user: shared.acl.default_user(),
                in_multi: false,
                waiting: false,
                gone: false,
            };
            if crowded {
                client.handoff.output.extend_from_slice(b"-ERR max number of clients reached\r\n");
                client.handoff.close = true;
                write(shared, &mut client);
                continue;
            }
            if crate::connection::protected(&settings, default_nopass, &addr) {
                // Refused with Redis's long explanation when it joins the accept loop.
                client.waiting = true;
            } else {
                self.watch(fd);
            }
            self.clients.insert(fd, client);
        }
    }

    fn fresh(&self) -> usize {
        self.clients.values().filter(|c| matches!(c.socket, Socket::Fresh { .. })).count()
    }

    /// Answers every complete request in the client's input, up to one that must wait.
    fn answer_all(
        &mut self,
        shared: &Shared,
        script: &Script,
        wrote: bool,
        client: &mut Client,
    ) -> Verdict {
        let mut verdict = Verdict::Continue;
        let max_bulk_len = shared.config.read().settings.proto_max_bulk_len;
        let mut argv = Vec::new();
        while !client.waiting && !client.gone && !client.handoff.close {
            let limits = RequestLimits { max_bulk_len, unauthenticated: !client.authenticated };
            argv.clear();
            match parse_request_into(&mut client.handoff.input, limits, &mut argv) {
                Ok(true) => {}
                Ok(false) => break,
                Err(e) => {
                    let error = Frame::error(format!("ERR {e}"));
                    self.refused(shared, client, &error, None);
                    client.handoff.close = true;
                    break;
                }
            }
            if argv.is_empty() {
                continue;
            }
            let started = quanta::Instant::now();
            let (answer, asked) = self.answer(shared, script, wrote, client, &argv);
            match answer {
                Answer::Wait => {
                    // Put back as it came (re-encoded), ahead of what followed it.
                    let mut again = BytesMut::new();
                    let request =
                        Frame::Array(argv.iter().map(|a| Frame::Bulk(a.clone())).collect());
                    request.encode(Protocol::Resp2, &mut again);
                    again.extend_from_slice(&client.handoff.input);
                    client.handoff.input = again;
                    client.waiting = true;
                }
                Answer::Refused(error, resolved) => self.refused(shared, client, &error, resolved),
                Answer::Reply(reply) => {
                    crate::server::count_command(shared);
                    if let Ok(resolved) = find(&argv) {
                        let usec = started.elapsed().as_micros() as u64;
                        self.tally.command(resolved, Counted::Call, usec, reply.is_error());
                    }
                    if reply.is_error() {
                        shared.stats.errors.fetch_add(1, Ordering::Relaxed);
                        self.tally.error(&reply);
                    }
                    reply.encode(client.resp, &mut client.handoff.output);
                }
            }
            if asked != Verdict::Continue {
                verdict = asked;
            }
        }
        write(shared, client);
        verdict
    }

    fn refused(
        &mut self,
        shared: &Shared,
        client: &mut Client,
        error: &Frame,
        resolved: Option<Resolved>,
    ) {
        shared.stats.errors.fetch_add(1, Ordering::Relaxed);
        self.tally.error(error);
        if let Some(resolved) = resolved {
            self.tally.command(resolved, Counted::Rejected, 0, false);
        }
        error.encode(Protocol::Resp2, &mut client.handoff.output);
    }

    /// One request, checked in Redis's order: lookup and arity, authentication, ACL, then
    /// whether it may run while the script is busy.
    fn answer(
        &mut self,
        shared: &Shared,
        script: &Script,
        wrote: bool,
        client: &mut Client,
        argv: &[Bytes],
    ) -> (Answer, Verdict) {
        let refuse = |e: CommandError, resolved| {
            (Answer::Refused(e.into_frame(), resolved), Verdict::Continue)
        };
        let resolved = match find(argv) {
            Ok(resolved) => resolved,
            Err(e) => return refuse(e, None),
        };
        if let Err(e) = check_arity(resolved, argv.len()) {
            return refuse(e, Some(resolved));
        }
        let name = resolved.name();
        let spec = resolved.spec;
        if !client.authenticated
            && !spec.has(flags::NO_AUTH)
            && !matches!(name, "auth" | "hello" | "quit")
            && shared.acl.acl.read().auth_required()
        {
            client.handoff.multi_failed |= client.in_multi;
            return refuse(CommandError::raw("NOAUTH Authentication required."), Some(resolved));
        }
        if let Some(user) = client.user.user.as_deref().filter(|u| !u.unrestricted) {
            if let Err(denied) = crate::acl::check::check(user, resolved, argv) {
                client.handoff.multi_failed |= client.in_multi;
                let text = format!("NOPERM {}", denied.message(&resolved.fullname()));
                return refuse(CommandError::raw(text), Some(resolved));
            }
        }
        let busy = || CommandError::raw(if script.eval { BUSY_EVAL } else { BUSY_FUNCTION });
        let reply = |frame| (Answer::Reply(frame), Verdict::Continue);
        match (name, spec.name) {
            ("script", "kill") => kill(script, wrote, true),
            ("function", "kill") => kill(script, wrote, false),
            ("function", "stats") if script.eval => refuse(busy(), Some(resolved)),
            ("function", "stats") => reply(function_stats(script)),
            ("shutdown", _) => match crate::cmd::server::shutdown_args(argv) {
                Err(e) => reply(e.into_frame()),
                Ok(flags) if !flags.nosave => reply(busy().into_frame()),
                Ok(_) => {
                    tracing::warn!("user requested shutdown while a script was busy");
                    (Answer::Reply(Frame::Raw(Bytes::new())), Verdict::Shutdown)
                }
            },
            ("quit", _) => {
                client.handoff.close = true;
                reply(Frame::ok())
            }
            ("auth", _) => reply(match crate::cmd::connection::check_auth(shared, argv) {
                Ok(user) => {
                    client.authenticated = true;
                    client.user = user.clone();
                    client.handoff.user = Some(user);
                    Frame::ok()
                }
                Err(e) => e.into_frame(),
            }),
            // A transaction's bookkeeping is the client's own: done here, applied by the
            // connection when it takes its handoff back.
            ("multi", _) if client.in_multi => {
                reply(Frame::error("ERR MULTI calls can not be nested"))
            }
            ("multi", _) => {
                client.in_multi = true;
                client.handoff.multi_started = true;
                client.handoff.multi_failed = false;
                reply(Frame::ok())
            }
            ("discard", _) if !client.in_multi => reply(Frame::error("ERR DISCARD without MULTI")),
            ("discard", _) => {
                client.in_multi = false;
                client.handoff.multi_started = false;
                client.handoff.multi_failed = false;
                client.handoff.discard_transaction = true;
                reply(Frame::ok())
            }
            ("watch", _) if client.in_multi => {
                reply(Frame::error("ERR WATCH inside MULTI is not allowed"))
            }
            ("unwatch", _) => {
                client.handoff.unwatch = true;
                reply(Frame::ok())
            }
            ("hello", _) => reply(hello(shared, client, argv)),
            // These need the keyspace (WATCH) or change more of the client than we track.
            ("watch" | "reset" | "replconf", _) => (Answer::Wait, Verdict::Continue),
            ("exec", _) => {
                // Refused, and the transaction with it (WATCHes too), as Redis's
                // execCommandAbort does.
                client.in_multi = false;
                client.handoff.multi_started = false;
                client.handoff.multi_failed = false;
                client.handoff.discard_transaction = true;
                let text = busy().to_string();
                let why = format!("EXECABORT Transaction discarded because of: {text}");
                refuse(CommandError::raw(why), Some(resolved))
            }
            _ => {
                client.handoff.multi_failed |= client.in_multi;
                refuse(busy(), Some(resolved))
            }
        }
    }
}

/// HELLO, for a connection served while busy: what it changes is handed back (and its name
/// shows in CLIENT LIST at once, as Redis's would).
fn hello(shared: &Shared, client: &mut Client, argv: &[Bytes]) -> Frame {
    use crate::cmd::connection::{check_login, hello_reply, parse_hello, HelloStep, HELLO_NOAUTH};
    let hello = match parse_hello(argv) {
        Ok(hello) => hello,
        Err(e) => return e.into_frame(),
    };
    for step in hello.steps {
        match step {
            HelloStep::Auth(user, password) => match check_login(shared, &user, &password) {
                Ok(user) => {
                    client.authenticated = true;
                    client.user = user.clone();
                    client.handoff.user = Some(user);
                }
                Err(e) => return e.into_frame(),
            },
            HelloStep::SetName(name) => {
                if let Err(e) = crate::cmd::client::validate_name(&name) {
                    return e.into_frame();
                }
                let name = (!name.is_empty()).then_some(name);
                if let Socket::Parked { snapshot, .. } = &client.socket {
                    snapshot.lock().name = name.clone();
                }
                client.handoff.name = Some(name);
            }
        }
    }
    if let Some(error) = hello.error {
        return error.into_frame();
    }
    if !client.authenticated {
        return CommandError::raw(HELLO_NOAUTH).into_frame();
    }
    if let Some(resp) = hello.proto {
        client.resp = resp;
        client.handoff.resp = Some(resp);
    }
    hello_reply(client.id, client.resp)
}

/// A parked connection as the responder sees it: its login and transaction from its snapshot.
fn parked_client(
    shared: &Shared,
    id: u64,
    fd: RawFd,
    switch: KillSwitch,
    snapshot: Arc<Mutex<ClientSnapshot>>,
) -> Client {
    let (authenticated, in_multi, resp, (name, incarnation)) = {
        let s = snapshot.lock();
        (s.authenticated, s.multi >= 0, s.resp, s.user.clone())
    };
    let user = {
        let acl = shared.acl.acl.read();
        let entry = acl.get(&name).filter(|e| e.incarnation == incarnation);
        let entry = entry.unwrap_or_else(|| acl.default_entry());
        ClientUser {
            user: Some(entry.user.clone()),
            incarnation: entry.incarnation,
            generation: shared.acl.generation.load(Ordering::Acquire),
        }
    };
    Client {
        socket: Socket::Parked { switch, snapshot },
        fd,
        id,
        resp: if resp == 3 { Protocol::Resp3 } else { Protocol::Resp2 },
        handoff: Handoff::default(),
        authenticated,
        user,
        in_multi,
        waiting: false,
        gone: false,
    }
}

/// SCRIPT KILL / FUNCTION KILL, with Redis's refusals in Redis's order.
fn kill(script: &Script, wrote: bool, by_script_kill: bool) -> (Answer, Verdict) {
    let refusal = if script.from_master {
        Some("UNKILLABLE The busy script was sent by a master instance in the context of replication and cannot be killed.")
    } else if wrote {
        Some("UNKILLABLE Sorry the script already executed write commands against the dataset. You can either wait the script termination or kill the server in a hard way using the SHUTDOWN NOSAVE command.")
    } else if by_script_kill && !script.eval {
        Some(BUSY_FUNCTION)
    } else if !by_script_kill && script.eval {
        Some(BUSY_EVAL)
    } else {
        None
    };
    match refusal {
        Some(text) => (Answer::Reply(Frame::error(text)), Verdict::Continue),
        None => (Answer::Reply(Frame::ok()), Verdict::Kill),
    }
}

/// FUNCTION STATS while a function runs: it, then the engine's counts.
fn function_stats(script: &Script) -> Frame {
    let running = Frame::Map(vec![
        (Frame::bulk(b"name"), Frame::bulk(script.name.as_bytes())),
        (
            Frame::bulk(b"command"),
            Frame::Array(script.command.iter().map(|a| Frame::Bulk(a.clone())).collect()),
        ),
        (Frame::bulk(b"duration_ms"), Frame::Integer(script.started.elapsed().as_millis() as i64)),
    ]);
    crate::cmd::functions::stats_reply(running, script.library_counts)
}

/// Reads what the socket holds now, up to the query buffer limit.
fn read(shared: &Shared, client: &mut Client) {
    let limit = shared.config.read().settings.client_query_buffer_limit;
    let mut chunk = [0u8; READ_CHUNK];
    while !client.gone && !client.waiting && !client.handoff.close {
        // SAFETY: `chunk` is writable for its whole length; the descriptor is open (the
        // parked task or our stream owns it) and non-blocking.
        let n = unsafe {
            libc::recv(client.fd, chunk.as_mut_ptr().cast(), chunk.len(), libc::MSG_DONTWAIT)
        };
        match n {
            0 => client.gone = true,
            n if n < 0 => {
                let e = std::io::Error::last_os_error();
                if e.kind() != std::io::ErrorKind::WouldBlock
                    && e.kind() != std::io::ErrorKind::Interrupted
                {
                    client.gone = true;
                }
                return;
            }
            n => {
                let n = n as usize;
                shared.stats.net_input.fetch_add(n as u64, Ordering::Relaxed);
                client.handoff.input.extend_from_slice(&chunk[..n]);
                if client.handoff.input.len() > limit {
                    tracing::debug!("closing client that exceeded the query buffer limit");
                    client.handoff.input.clear();
                    client.handoff.close = true;
                    return;
                }
                if n < chunk.len() {
                    return;
                }
            }
        }
    }
}

/// Sends what the socket takes now; the rest waits for the next round or the handoff.
fn write(shared: &Shared, client: &mut Client) {
    while !client.gone && !client.handoff.output.is_empty() {
        let out = &client.handoff.output;
        // SAFETY: `out` is readable for its length; MSG_NOSIGNAL: a closed peer is an
        // error, not a SIGPIPE.
        let n = unsafe {
            libc::send(
                client.fd,
                out.as_ptr().cast(),
                out.len(),
                libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL,
            )
        };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() != std::io::ErrorKind::WouldBlock
                && e.kind() != std::io::ErrorKind::Interrupted
            {
                client.gone = true;
            }
            return;
        }
        shared.stats.net_output.fetch_add(n as u64, Ordering::Relaxed);
        let _ = client.handoff.output.split_to(n as usize);
    }
}
