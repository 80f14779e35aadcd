//! CLIENT and its subcommands.

use std::time::{Duration, Instant};

use bytes::Bytes;
use common::resp::Frame;

use crate::client::{ClientHandle, ClientKind, ReplyMode};
use crate::cmd::args::{int, is};
use crate::cmd::flags::*;
use crate::cmd::{cmd, container, CommandSpec};
use crate::error::{CmdResult, CommandError};
use crate::exec::{Ctx, Effect};
use crate::server::{unix_ms, Pause};

/// The CLIENT command.
pub static COMMANDS: &[CommandSpec] = &[container("client", -2, 0, SUBCOMMANDS)];

const CONN: u32 = NOSCRIPT | LOADING | STALE;

static SUBCOMMANDS: &[CommandSpec] = &[
    cmd("id", 2, CONN, (0, 0, 0), id),
    cmd("setname", 3, CONN, (0, 0, 0), setname),
    cmd("getname", 2, CONN, (0, 0, 0), getname),
    cmd("list", -2, ADMIN | CONN, (0, 0, 0), list),
    cmd("info", 2, CONN, (0, 0, 0), info),
    cmd("kill", -3, ADMIN | CONN, (0, 0, 0), kill),
    cmd("setinfo", 4, CONN, (0, 0, 0), setinfo),
    cmd("pause", -3, ADMIN | CONN, (0, 0, 0), pause),
    cmd("unpause", 2, ADMIN | CONN, (0, 0, 0), unpause),
    cmd("reply", 3, CONN, (0, 0, 0), reply),
    cmd("no-evict", 3, ADMIN | CONN, (0, 0, 0), no_evict),
    cmd("unblock", -3, ADMIN | CONN, (0, 0, 0), unblock),
    cmd("tracking", -3, CONN, (0, 0, 0), tracking),
    cmd("caching", 3, CONN, (0, 0, 0), caching),
    cmd("getredir", 2, CONN, (0, 0, 0), getredir),
    cmd("trackinginfo", 2, CONN, (0, 0, 0), trackinginfo),
    cmd("help", 2, LOADING | STALE, (0, 0, 0), help),
];

/// Checks a client name: no spaces, newlines or other special characters (Redis's rule).
pub fn validate_name(name: &[u8]) -> Result<(), CommandError> {
    if name.iter().any(|c| !(b'!'..=b'~').contains(c)) {
        return Err(CommandError::err(
            "Client names cannot contain spaces, newlines or special characters.",
        ));
    }
    Ok(())
}

fn id(ctx: &mut Ctx<'_>, _: &[Bytes]) -> CmdResult {
    Ok(Frame::Integer(ctx.client.id as i64))
}

fn setname(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    validate_name(&args[2])?;
    ctx.client.name = (!args[2].is_empty()).then(|| args[2].clone());
    ctx.client.snapshot.lock().name = ctx.client.name.clone();
    Ok(Frame::ok())
}

fn getname(ctx: &mut Ctx<'_>, _: &[Bytes]) -> CmdResult {
    Ok(ctx.client.name.clone().map(Frame::Bulk).unwrap_or(Frame::Null))
}

/// One CLIENT LIST line in Redis 7.0's field order. `tracker`: the client's CLIENT TRACKING
/// mode, if on. `own`: this is the asking client's line, with the command it runs and its
/// query buffer now (which still holds that command, as Redis's does while the command runs).
fn line(
    c: &ClientHandle,
    tracker: Option<&crate::tracking::Tracker>,
    now_ms: i64,
    own: Option<(&str, usize)>,
) -> String {
    let s = c.snapshot.lock();
    let qbuf = own.map_or(s.qbuf, |(_, pending)| pending);
    let mut flags = String::new();
    match s.kind {
        ClientKind::Replica => flags.push('S'),
        ClientKind::Master => flags.push('M'),
        ClientKind::Pubsub => flags.push('P'),
        ClientKind::Normal => {}
    }
    if s.multi >= 0 {
        flags.push('x');
    }
    if s.blocked {
        flags.push('b');
    }
    if let Some(t) = tracker {
        flags.push('t');
        if t.broken_redirect {
            flags.push('R');
        }
        if t.bcast {
            flags.push('B');
        }
    }
    if s.no_evict {
        flags.push('e');
    }
    if flags.is_empty() {
        flags.push('N');
    }
    let cmd = own.map(|(name, _)| name.to_string()).unwrap_or_else(|| match s.last_cmd {
        None => "NULL".into(),
        Some((name, None)) => name.to_string(),
        Some((name, Some(sub))) => format!("{name}|{sub}"),
    });
    let name = s.name.as_ref().map(|n| String::from_utf8_lossy(n).into_owned()).unwrap_or_default();
    let idle = if s.last_interaction_ms == 0 {
        now_ms - c.created_ms
    } else {
        now_ms - s.last_interaction_ms
    };
    format!(
        "id={} addr={} laddr={} fd={} name={} age={} idle={} flags={} db={} sub={} psub={} ssub={} multi={} qbuf={} qbuf-free={} argv-mem=0 multi-mem=0 rbs={} rbp=0 obl=0 oll=0 omem=0 tot-mem={} events=r cmd={} user={} redir=-1 resp={}\n",
        c.id,
        c.addr,
        c.laddr,
        c.fd,
        name,
        (now_ms - c.created_ms) / 1000,
        idle.max(0) / 1000,
        flags,
        s.db,
        s.sub,
        s.psub,
        s.ssub,
        s.multi,
        qbuf,
        BUFFER.saturating_sub(qbuf),
        BUFFER,
        2 * BUFFER + qbuf,
        cmd,
        String::from_utf8_lossy(&s.user.0),
        s.resp
    )
}

/// The CLIENT INFO line of `client` (without its newline) as it runs `fullname`, for the ACL
/// log. Tracking flags are left out: the keyspace may not be locked here.
pub fn info_line(
    shared: &crate::server::Shared,
    client: &crate::client::ClientState,
    fullname: &str,
    now_ms: i64,
) -> String {
    let clients = shared.clients.lock();
    let Some(handle) = clients.get(client.id) else { return String::new() };
    let mut text = line(handle, None, now_ms, Some((fullname, client.query_pending)));
    text.pop();
    text
}

/// A connection's input and output buffers each start at this many bytes.
const BUFFER: usize = 16 * 1024;

fn kind_of(name: &[u8]) -> Result<ClientKind, CommandError> {
    Ok(match name.to_ascii_lowercase().as_slice() {
        b"normal" => ClientKind::Normal,
        b"replica" | b"slave" => ClientKind::Replica,
        b"master" => ClientKind::Master,
        b"pubsub" => ClientKind::Pubsub,
        _ => {
            return Err(CommandError::err(format!(
                "Unknown client type '{}'",
                String::from_utf8_lossy(name)
            )))
        }
    })
}

fn list(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let mut kind = None;
    let mut ids: Option<Vec<u64>> = None;
    if args.len() > 2 {
        if is(&args[2], "type") && args.len() == 4 {
            kind = Some(kind_of(&args[3])?);
        } else if is(&args[2], "id") && args.len() >= 4 {
            let mut v = Vec::new();
            for a in &args[3..] {
                match int(a) {
                    // Ids that cannot exist simply match nothing.
                    Ok(n) => v.push(n.max(0) as u64),
                    Err(_) => return Err(CommandError::err("Invalid client ID")),
                }
            }
            ids = Some(v);
        } else {
            return Err(CommandError::Syntax);
        }
    }
    let now = unix_ms();
    let (me, pending) = (ctx.client.id, ctx.client.query_pending);
    let clients = ctx.server.clients.lock();
    let mut out = String::new();
    for c in clients.iter() {
        if kind.is_some_and(|k| c.snapshot.lock().kind != k) {
            continue;
        }
        if ids.as_ref().is_some_and(|ids| !ids.contains(&c.id)) {
            continue;
        }
        let tracker = ctx.exec.ks.tracking.tracker(c.id);
        out.push_str(&line(c, tracker, now, (c.id == me).then_some(("client|list", pending))));
    }
    Ok(Frame::Verbatim("txt", Bytes::from(out)))
}

fn info(ctx: &mut Ctx<'_>, _: &[Bytes]) -> CmdResult {
    let now = unix_ms();
    let pending = ctx.client.query_pending;
    let clients = ctx.server.clients.lock();
    let me = clients
        .get(ctx.client.id)
        .map(|c| line(c, ctx.exec.ks.tracking.tracker(c.id), now, Some(("client|info", pending))))
        .unwrap_or_default();
    Ok(Frame::Verbatim("txt", Bytes::from(me)))
}

fn kill(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let me = ctx.client.id;
    // Old form: CLIENT KILL addr:port → +OK or an error.
    if args.len() == 3 {
        let target = String::from_utf8_lossy(&args[2]).into_owned();
        let clients = ctx.server.clients.lock();
        let Some(c) = clients.iter().find(|c| c.addr.to_string() == target) else {
            return Err(CommandError::err("No such client"));
        };
        c.kill.kill();
        if c.id == me {
            ctx.effect = Some(Effect::Close);
        }
        return Ok(Frame::ok());
    }
    let (mut id, mut kind, mut addr, mut laddr, mut skipme) = (None, None, None, None, true);
    let mut user: Option<(Bytes, u64)> = None;
    let mut i = 2;
    while i < args.len() {
        if i + 1 >= args.len() {
            return Err(CommandError::Syntax);
        }
        let (opt, val) = (&args[i], &args[i + 1]);
        if is(opt, "id") {
            id = Some(
                int(val)
                    .ok()
                    .filter(|n| *n > 0)
                    .ok_or_else(|| CommandError::err("client-id should be greater than 0"))?
                    as u64,
            );
        } else if is(opt, "type") {
            kind = Some(kind_of(val)?);
        } else if is(opt, "addr") {
            addr = Some(String::from_utf8_lossy(val).into_owned());
        } else if is(opt, "laddr") {
            laddr = Some(String::from_utf8_lossy(val).into_owned());
        } else if is(opt, "user") {
            let acl = ctx.server.acl.acl.read();
            let Some(entry) = acl.get(val) else {
                return Err(CommandError::err(format!(
                    "No such user '{}'",
                    String::from_utf8_lossy(val)
                )));
            };
            user = Some((val.clone(), entry.incarnation));
        } else if is(opt, "skipme") {
            skipme = match val.to_ascii_lowercase().as_slice() {
                b"yes" => true,
                b"no" => false,
                _ => return Err(CommandError::Syntax),
            };
        } else {
            // MAXAGE came with Redis 7.4: 7.0 answers a syntax error.
            return Err(CommandError::Syntax);
        }
        i += 2;
    }
    let clients = ctx.server.clients.lock();
    let mut killed = 0;
    for c in clients.iter() {
        let (snap_kind, snap_user) = {
            let s = c.snapshot.lock();
            (s.kind, s.user.clone())
        };
        let matches = user.as_ref().is_none_or(|u| *u == snap_user)
            && id.is_none_or(|id| c.id == id)
            && kind.is_none_or(|k| snap_kind == k)
            && addr.as_ref().is_none_or(|a| c.addr.to_string() == *a)
            && laddr.as_ref().is_none_or(|a| c.laddr.to_string() == *a)
            && !(skipme && c.id == me);
        if matches {
            c.kill.kill();
            killed += 1;
            if c.id == me {
                ctx.effect = Some(Effect::Close);
            }
        }
    }
    Ok(Frame::Integer(killed))
}

fn setinfo(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let value = String::from_utf8_lossy(&args[3]).into_owned();
    if args[3].iter().any(|c| !(b'!'..=b'~').contains(c)) {
        return Err(CommandError::err(format!(
            "{} cannot contain spaces, newlines or special characters.",
            String::from_utf8_lossy(&args[2]).to_ascii_lowercase()
        )));
    }
    if is(&args[2], "lib-name") {
        ctx.client.lib.0 = value.clone();
        ctx.client.snapshot.lock().lib_name = value;
    } else if is(&args[2], "lib-ver") {
        ctx.client.lib.1 = value.clone();
        ctx.client.snapshot.lock().lib_ver = value;
    } else {
        return Err(CommandError::err(format!(
            "Unrecognized option '{}'",
            String::from_utf8_lossy(&args[2])
        )));
    }
    Ok(Frame::ok())
}

fn pause(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    // Redis's order: the argument count, then the mode, then the timeout.
    if args.len() > 4 {
        return Err(super::server::subcommand_syntax(&args[1], "CLIENT"));
    }
    let all = match args.get(3) {
        None => true,
        Some(a) if is(a, "all") => true,
        Some(a) if is(a, "write") => false,
        Some(_) => return Err(CommandError::err("CLIENT PAUSE mode must be WRITE or ALL")),
    };
    let ms = int(&args[2])
        .map_err(|_| CommandError::err("timeout is not an integer or out of range"))?;
    if ms < 0 {
        return Err(CommandError::err("timeout is negative"));
    }
    let until = Instant::now() + Duration::from_millis(ms as u64);
    ctx.server.pause_with(|p| {
        // A new pause never shortens or weakens one in force (Redis keeps the stronger one).
        *p = match *p {
            Pause::All(u) if u > until || !all => Pause::All(u.max(until)),
            Pause::Write(u) if !all => Pause::Write(u.max(until)),
            _ if all => Pause::All(until),
            _ => Pause::Write(until),
        };
    });
    Ok(Frame::ok())
}

fn unpause(ctx: &mut Ctx<'_>, _: &[Bytes]) -> CmdResult {
    ctx.server.unpause();
    Ok(Frame::ok())
}

fn reply(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    if is(&args[2], "on") {
        ctx.client.reply_mode = ReplyMode::On;
        Ok(Frame::ok())
    } else if is(&args[2], "off") {
        ctx.client.reply_mode = ReplyMode::Off;
        Ok(Frame::ok())
    } else if is(&args[2], "skip") {
        // SKIP arms a skip of the next command (itself unanswered), even while skipping.
        if ctx.client.reply_mode != ReplyMode::Off {
            ctx.client.reply_mode = ReplyMode::SkipNext;
        }
        Ok(Frame::ok())
    } else {
        Err(CommandError::Syntax)
    }
}

fn no_evict(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let on = if is(&args[2], "on") {
        true
    } else if is(&args[2], "off") {
        false
    } else {
        return Err(CommandError::Syntax);
    };
    ctx.client.snapshot.lock().no_evict = on;
    Ok(Frame::ok())
}

fn unblock(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    // Redis's order: the argument count, then the reason, then the id.
    if args.len() > 4 {
        return Err(super::server::subcommand_syntax(&args[1], "CLIENT"));
    }
    let with_error = match args.get(3) {
        None => false,
        Some(a) if is(a, "timeout") => false,
        Some(a) if is(a, "error") => true,
        Some(_) => {
            return Err(CommandError::err("CLIENT UNBLOCK reason should be TIMEOUT or ERROR"))
        }
    };
    let target = int(&args[2]).map_err(|_| CommandError::NotInteger)? as u64;
    let Some(ticket) = ctx.ks.blocking.ticket_of(target) else { return Ok(Frame::Integer(0)) };
    let waiter = ctx.ks.blocking.unblock(ticket).expect("ticket_of found it");
    let reply = if with_error {
        Frame::error("UNBLOCKED client unblocked via CLIENT UNBLOCK")
    } else {
        waiter.on_timeout.clone()
    };
    let _ = waiter.reply.send(reply);
    Ok(Frame::Integer(1))
}

/// CLIENT TRACKING ON|OFF [REDIRECT id] [PREFIX p]... [BCAST] [OPTIN] [OPTOUT] [NOLOOP], with
/// Redis's checks in Redis's order (see `crate::tracking`).
fn tracking(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let mut options = crate::tracking::Options::default();
    let mut i = 3;
    while i < args.len() {
        let more = i + 1 < args.len();
        let a = &args[i];
        if a.eq_ignore_ascii_case(b"redirect") && more {
            i += 1;
            if options.redirect != 0 {
                return Err(CommandError::err(
                    "A client can only redirect to a single other client",
                ));
            }
            let id = int(&args[i])?;
            if id <= 0 || ctx.server.clients.lock().get(id as u64).is_none() {
                return Err(CommandError::err("The client ID you want redirect to does not exist"));
            }
            options.redirect = id as u64;
        } else if a.eq_ignore_ascii_case(b"bcast") {
            options.bcast = true;
        } else if a.eq_ignore_ascii_case(b"optin") {
            options.optin = true;
        } else if a.eq_ignore_ascii_case(b"optout") {
            options.optout = true;
        } else if a.eq_ignore_ascii_case(b"noloop") {
            options.noloop = true;
        } else if a.eq_ignore_ascii_case(b"prefix") && more {
            i += 1;
            options.prefixes.push(args[i].clone());
        } else {
            return Err(CommandError::Syntax);
        }
        i += 1;
    }
    let id = ctx.client.id;
    if args[2].eq_ignore_ascii_case(b"on") {
        let current = ctx.ks.tracking.tracker(id);
        if !options.bcast && !options.prefixes.is_empty() {
            return Err(CommandError::err("PREFIX option requires BCAST mode to be enabled"));
        }
        if current.is_some_and(|t| t.bcast != options.bcast) {
            return Err(CommandError::err(
                "You can't switch BCAST mode on/off before disabling tracking for this client, and then re-enabling it with a different mode.",
            ));
        }
        if options.bcast && (options.optin || options.optout) {
            return Err(CommandError::err("OPTIN and OPTOUT are not compatible with BCAST"));
        }
        if options.optin && options.optout {
            return Err(CommandError::err("You can't specify both OPTIN mode and OPTOUT mode"));
        }
        if current.is_some_and(|t| (options.optin && t.optout) || (options.optout && t.optin)) {
            return Err(CommandError::err(
                "You can't switch OPTIN/OPTOUT mode before disabling tracking for this client, and then re-enabling it with a different mode.",
            ));
        }
        if options.bcast {
            let existing = current.map(|t| &t.prefixes);
            check_prefixes(existing, &options.prefixes)?;
        }
        ctx.ks.tracking.enable(id, options);
    } else if args[2].eq_ignore_ascii_case(b"off") {
        ctx.ks.tracking.disable(id);
    } else {
        return Err(CommandError::Syntax);
    }
    Ok(Frame::ok())
}

/// BCAST prefixes of one client must not overlap (one a prefix of another), among the new
/// ones or with those it has.
fn check_prefixes(
    existing: Option<&std::collections::BTreeSet<Bytes>>,
    new: &[Bytes],
) -> Result<(), CommandError> {
    let overlap = |a: &[u8], b: &[u8]| a.starts_with(b) || b.starts_with(a);
    let text = |b: &[u8]| String::from_utf8_lossy(crate::dispatch::c_str(b)).into_owned();
    for (i, p) in new.iter().enumerate() {
        if let Some(old) = existing.into_iter().flatten().find(|old| overlap(old, p)) {
            return Err(CommandError::err(format!(
                "Prefix '{}' overlaps with an existing prefix '{}'. Prefixes for a single client must not overlap.",
                text(p),
                text(old)
            )));
        }
        if let Some(other) = new[i + 1..].iter().find(|other| overlap(p, other)) {
            return Err(CommandError::err(format!(
                "Prefix '{}' overlaps with another provided prefix '{}'. Prefixes for a single client must not overlap.",
                text(p),
                text(other)
            )));
        }
    }
    Ok(())
}

fn caching(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let Some(t) = ctx.ks.tracking.tracker(ctx.client.id) else {
        return Err(CommandError::err(
            "CLIENT CACHING can be called only when the client is in tracking mode with OPTIN or OPTOUT mode enabled",
        ));
    };
    if args[2].eq_ignore_ascii_case(b"yes") {
        if !t.optin {
            return Err(CommandError::err(
                "CLIENT CACHING YES is only valid when tracking is enabled in OPTIN mode.",
            ));
        }
    } else if args[2].eq_ignore_ascii_case(b"no") {
        if !t.optout {
            return Err(CommandError::err(
                "CLIENT CACHING NO is only valid when tracking is enabled in OPTOUT mode.",
            ));
        }
    } else {
        return Err(CommandError::Syntax);
    }
    let id = ctx.client.id;
    ctx.ks.tracking.set_caching(id);
    Ok(Frame::ok())
}

fn getredir(ctx: &mut Ctx<'_>, _: &[Bytes]) -> CmdResult {
    let redirect = ctx.ks.tracking.tracker(ctx.client.id).map_or(-1, |t| t.redirect as i64);
    Ok(Frame::Integer(redirect))
}

fn trackinginfo(ctx: &mut Ctx<'_>, _: &[Bytes]) -> CmdResult {
    let t = ctx.ks.tracking.tracker(ctx.client.id);
    let mut flags = vec![if t.is_some() { "on" } else { "off" }];
    if let Some(t) = t {
        let listed = [
            (t.bcast, "bcast"),
            (t.optin, "optin"),
            (t.optin && t.caching, "caching-yes"),
            (t.optout, "optout"),
            (t.optout && t.caching, "caching-no"),
            (t.noloop, "noloop"),
            (t.broken_redirect, "broken_redirect"),
        ];
        flags.extend(listed.iter().filter(|(on, _)| *on).map(|(_, name)| *name));
    }
    let prefixes = t.map(|t| t.prefixes.iter().cloned().map(Frame::Bulk).collect());
    Ok(Frame::Map(vec![
        (
            Frame::bulk_static("flags"),
            Frame::Set(flags.into_iter().map(Frame::bulk_static).collect()),
        ),
        (Frame::bulk_static("redirect"), Frame::Integer(t.map_or(-1, |t| t.redirect as i64))),
        (Frame::bulk_static("prefixes"), Frame::Array(prefixes.unwrap_or_default())),
    ]))
}

fn help(_: &mut Ctx<'_>, _: &[Bytes]) -> CmdResult {
    Ok(super::help::reply(
        "CLIENT",
        &[
            ("ID", "The id of this connection."),
            ("SETNAME <name> | GETNAME", "Set or read this connection's name."),
            ("LIST [TYPE <type>] [ID <id> ...]", "One line per connected client."),
            ("INFO", "The CLIENT LIST line of this connection."),
            (
                "KILL <ip:port> | KILL <filter> <value> ...",
                "Close clients (filters: ID TYPE USER ADDR LADDR SKIPME).",
            ),
            ("SETINFO LIB-NAME|LIB-VER <value>", "Record the client library's name or version."),
            (
                "PAUSE <ms> [WRITE|ALL] | UNPAUSE",
                "Hold writes (or every command) for a while, or release them.",
            ),
            ("REPLY ON|OFF|SKIP", "Choose whether this connection gets replies."),
            ("NO-EVICT ON|OFF", "Mark this connection as exempt from client eviction."),
            ("UNBLOCK <id> [TIMEOUT|ERROR]", "Wake a client blocked in a blocking command."),
            (
                "TRACKING ON|OFF [REDIRECT <id>] [BCAST] [PREFIX <p> ...] [OPTIN] [OPTOUT] [NOLOOP]",
                "Be told when keys this connection may have cached change.",
            ),
            ("CACHING YES|NO", "Under OPTIN / OPTOUT: whether the next command's reads count."),
            ("TRACKINGINFO | GETREDIR", "This connection's tracking mode, or its redirect."),
        ],
    ))
}
