//! Connection commands: PING ECHO SELECT QUIT AUTH HELLO RESET.

use bytes::Bytes;
use common::resp::{Frame, Protocol};

use crate::acl::ClientUser;
use crate::client::ReplyMode;
use crate::cmd::args::{int, is};
use crate::cmd::flags::*;
use crate::cmd::{cmd, CommandSpec};
use crate::error::{CmdResult, CommandError};
use crate::exec::{Ctx, Effect};

/// The connection commands.
pub static COMMANDS: &[CommandSpec] = &[
    cmd("ping", -1, FAST, (0, 0, 0), ping),
    cmd("echo", 2, FAST | LOADING | STALE, (0, 0, 0), echo),
    cmd("select", 2, LOADING | STALE | FAST, (0, 0, 0), select),
    cmd("quit", -1, ALLOW_BUSY | NO_AUTH | LOADING | STALE | FAST, (0, 0, 0), quit),
    cmd("auth", -2, NOSCRIPT | LOADING | STALE | FAST | NO_AUTH | ALLOW_BUSY, (0, 0, 0), auth),
    cmd("hello", -1, NOSCRIPT | LOADING | STALE | FAST | NO_AUTH | ALLOW_BUSY, (0, 0, 0), hello),
    cmd("reset", 1, NOSCRIPT | LOADING | STALE | FAST | NO_AUTH | ALLOW_BUSY, (0, 0, 0), reset),
];

fn ping(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    if args.len() > 2 {
        return Err(CommandError::WrongArity("ping".into()));
    }
    // In RESP2 pub/sub mode PING answers with a message-shaped array.
    if ctx.client.in_pubsub() && ctx.client.resp == Protocol::Resp2 {
        let payload =
            args.get(1).map(|a| Frame::Bulk(a.clone())).unwrap_or_else(|| Frame::bulk(b""));
        return Ok(Frame::Array(vec![Frame::bulk_static("pong"), payload]));
    }
    Ok(match args.get(1) {
        Some(msg) => Frame::Bulk(msg.clone()),
        None => Frame::simple("PONG"),
    })
}

fn echo(_: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    Ok(Frame::Bulk(args[1].clone()))
}

fn select(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let db = crate::cmd::args::int32(&args[1])?;
    if db < 0 || db as usize >= ctx.ks.dbs.len() {
        return Err(CommandError::err("DB index is out of range"));
    }
    ctx.client.db = db as usize;
    ctx.exec.db = db as usize;
    Ok(Frame::ok())
}

fn quit(ctx: &mut Ctx<'_>, _: &[Bytes]) -> CmdResult {
    ctx.effect = Some(Effect::Close);
    Ok(Frame::ok())
}

/// Logs the client in as `user` if `password` is one of its passwords (Redis's
/// `ACLAuthenticateUser`); a failure is recorded in the ACL log.
fn authenticate(
    ctx: &mut Ctx<'_>,
    command: &Bytes,
    user: &[u8],
    password: &[u8],
) -> Result<(), CommandError> {
    match login(ctx.server, user, password) {
        Some(user) => {
            ctx.client.authenticated = true;
            ctx.client.snapshot.lock().authenticated = true;
            ctx.client.set_user(user);
            Ok(())
        }
        None => {
            crate::acl::log_failed_auth(ctx.server, ctx.client, command, user);
            Err(wrong_pass())
        }
    }
}

/// The user `user` if `password` is one of its passwords.
fn login(shared: &crate::server::Shared, user: &[u8], password: &[u8]) -> Option<ClientUser> {
    let state = &shared.acl;
    let generation = state.generation.load(std::sync::atomic::Ordering::Acquire);
    let acl = state.acl.read();
    let entry = acl.get(user).filter(|e| e.user.accepts(password))?;
    Some(ClientUser { user: Some(entry.user.clone()), incarnation: entry.incarnation, generation })
}

fn wrong_pass() -> CommandError {
    CommandError::raw("WRONGPASS invalid username-password pair or user is disabled.")
}

/// AUTH's arguments: `[user] password`, the user `default` when absent.
fn auth_args<'a>(
    shared: &crate::server::Shared,
    args: &'a [Bytes],
) -> Result<(&'a [u8], &'a [u8]), CommandError> {
    match args.len() {
        2 => {
            if shared.acl.acl.read().default_entry().user.nopass {
                return Err(CommandError::err(
                    "AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?",
                ));
            }
            Ok((b"default", &args[1]))
        }
        3 => Ok((&args[1], &args[2])),
        _ => Err(CommandError::Syntax),
    }
}

fn auth(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let (user, password) = auth_args(ctx.server, args)?;
    authenticate(ctx, &args[0], user, password)?;
    Ok(Frame::ok())
}

/// AUTH for a connection a busy script serves (see `crate::busy`): the user it logs in as.
/// A failure is not added to the ACL log, which needs the whole client.
pub fn check_auth(
    shared: &crate::server::Shared,
    args: &[Bytes],
) -> Result<ClientUser, CommandError> {
    let (user, password) = auth_args(shared, args)?;
    check_login(shared, user, password)
}

/// A login (AUTH's or HELLO's) for a connection a busy script serves.
pub fn check_login(
    shared: &crate::server::Shared,
    user: &[u8],
    password: &[u8],
) -> Result<ClientUser, CommandError> {
    login(shared, user, password).ok_or_else(wrong_pass)
}

fn hello(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let hello = parse_hello(args)?;
    for step in hello.steps {
        match step {
            // Logged in at once, as in Redis 7.0: a later bad option still fails HELLO.
            HelloStep::Auth(user, password) => authenticate(ctx, &args[0], &user, &password)?,
            HelloStep::SetName(name) => {
                super::client::validate_name(&name)?;
                ctx.client.name = (!name.is_empty()).then_some(name);
                ctx.client.snapshot.lock().name = ctx.client.name.clone();
            }
        }
    }
    if let Some(error) = hello.error {
        return Err(error);
    }
    if !ctx.client.authenticated {
        return Err(CommandError::raw(HELLO_NOAUTH));
    }
    if let Some(p) = hello.proto {
        ctx.client.resp = p;
        ctx.client.snapshot.lock().resp = if p == Protocol::Resp3 { 3 } else { 2 };
    }
    Ok(hello_reply(ctx.client.id, ctx.client.resp))
}

/// HELLO's refusal for a client that is not logged in.
pub const HELLO_NOAUTH: &str = "NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO <proto> AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time";

/// HELLO's request: the protocol asked for, then its options in order, up to the first bad
/// one (options take effect in order, as in Redis 7.0: a SETNAME before a bad option sticks).
pub struct Hello {
    /// The protocol version asked for.
    pub proto: Option<Protocol>,
    /// The options before `error`.
    pub steps: Vec<HelloStep>,
    /// The syntax error HELLO fails with after its steps.
    pub error: Option<CommandError>,
}

/// One HELLO option.
pub enum HelloStep {
    /// `AUTH user password`.
    Auth(Bytes, Bytes),
    /// `SETNAME name` (not yet validated).
    SetName(Bytes),
}

/// Reads HELLO's arguments; a bad protocol version fails before anything takes effect.
pub fn parse_hello(args: &[Bytes]) -> Result<Hello, CommandError> {
    let mut hello = Hello { proto: None, steps: Vec::new(), error: None };
    let mut i = 1;
    if args.len() > 1 {
        let v = int(&args[1])
            .map_err(|_| CommandError::err("Protocol version is not an integer or out of range"))?;
        if !(2..=3).contains(&v) {
            return Err(CommandError::raw("NOPROTO unsupported protocol version"));
        }
        hello.proto = Some(if v == 3 { Protocol::Resp3 } else { Protocol::Resp2 });
        i = 2;
    }
    while i < args.len() {
        let more = args.len() - i - 1;
        if is(&args[i], "auth") && more >= 2 {
            hello.steps.push(HelloStep::Auth(args[i + 1].clone(), args[i + 2].clone()));
            i += 3;
        } else if is(&args[i], "setname") && more >= 1 {
            hello.steps.push(HelloStep::SetName(args[i + 1].clone()));
            i += 2;
        } else {
            let mut text = b"ERR Syntax error in HELLO option '".to_vec();
            text.extend_from_slice(&args[i]);
            text.push(b'\'');
            hello.error = Some(CommandError::Bytes(Bytes::from(text)));
            break;
        }
    }
    Ok(hello)
}

/// HELLO's reply: the server, and the connection as it now is.
pub fn hello_reply(id: u64, resp: Protocol) -> Frame {
    let resp = if resp == Protocol::Resp3 { 3 } else { 2 };
    Frame::Map(vec![
        (Frame::bulk_static("server"), Frame::bulk_static("redis")),
        (Frame::bulk_static("version"), Frame::bulk_static(super::info::REDIS_VERSION)),
        (Frame::bulk_static("proto"), Frame::Integer(resp)),
        (Frame::bulk_static("id"), Frame::Integer(id as i64)),
        (Frame::bulk_static("mode"), Frame::bulk_static("standalone")),
        (Frame::bulk_static("role"), Frame::bulk_static("master")),
        (Frame::bulk_static("modules"), Frame::Array(vec![])),
    ])
}

fn reset(ctx: &mut Ctx<'_>, _: &[Bytes]) -> CmdResult {
    super::tx::discard_transaction(ctx);
    super::pubsub::unsubscribe_all(ctx);
    let id = ctx.client.id;
    ctx.ks.tracking.disable(id);
    let watched = std::mem::take(&mut ctx.client.watched);
    ctx.ks.watches.unwatch(id, &watched);
    ctx.client.db = 0;
    ctx.exec.db = 0;
    ctx.client.resp = Protocol::Resp2;
    ctx.client.reply_mode = ReplyMode::On;
    ctx.client.name = None;
    // Back to the default user, logged in only if it needs no password (Redis's
    // `clearClientConnectionState`).
    let user = ctx.server.acl.default_user();
    ctx.client.authenticated = !ctx.server.acl.acl.read().auth_required();
    ctx.client.set_user(user);
    {
        let mut snap = ctx.client.snapshot.lock();
        snap.name = None;
        snap.resp = 2;
        snap.multi = -1;
        snap.authenticated = ctx.client.authenticated;
    }
    let left = ctx.server.clients.lock().set_monitor(id, false);
    ctx.server.monitoring.store(left, std::sync::atomic::Ordering::Relaxed);
    Ok(Frame::simple("RESET"))
}
