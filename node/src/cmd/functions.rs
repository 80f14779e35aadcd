//! FUNCTION and FCALL: Redis 7.0's Functions (the libraries themselves are
//! `crate::script::library`).
//!
//! FUNCTION LOAD, DELETE, FLUSH and RESTORE change the dataset as Redis counts it: they bump
//! the dirty counter, so they reach replicas and the AOF verbatim and count towards `save`
//! points. FCALL runs like EVAL (effects replication, atomically), with KEYS and ARGV as the
//! function's two arguments.

use bytes::Bytes;
use common::resp::Frame;

use crate::client::ClientKind;
use crate::cmd::flags::*;
use crate::cmd::server::feed_monitors;
use crate::cmd::{cmd, container, CommandSpec};
use crate::error::{CmdResult, CommandError};
use crate::exec::Ctx;
use crate::persist::functions as payload;
use crate::script::library::{self, RestorePolicy, LOAD_TIMEOUT};

/// FUNCTION and FCALL.
pub static COMMANDS: &[CommandSpec] = &[
    container("function", -2, 0, FUNCTION),
    cmd("fcall", -3, NOSCRIPT | STALE | SKIP_MONITOR, (0, 0, 0), fcall),
    cmd("fcall_ro", -3, READONLY | NOSCRIPT | STALE | SKIP_MONITOR, (0, 0, 0), fcall_ro),
];

static FUNCTION: &[CommandSpec] = &[
    cmd("load", -3, WRITE | DENYOOM | NOSCRIPT, (0, 0, 0), load),
    cmd("delete", 3, WRITE | NOSCRIPT, (0, 0, 0), delete),
    cmd("flush", -2, WRITE | NOSCRIPT, (0, 0, 0), flush),
    cmd("list", -2, NOSCRIPT, (0, 0, 0), list),
    cmd("dump", 2, NOSCRIPT, (0, 0, 0), dump),
    cmd("restore", -3, WRITE | DENYOOM | NOSCRIPT, (0, 0, 0), restore),
    cmd("stats", 2, NOSCRIPT | ALLOW_BUSY, (0, 0, 0), stats),
    cmd("kill", 2, NOSCRIPT | ALLOW_BUSY, (0, 0, 0), kill),
    cmd("help", 2, LOADING | STALE, (0, 0, 0), help),
];

fn load(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let code_at = args.len() - 1;
    let mut replace = false;
    for option in &args[2..code_at] {
        if !super::args::is(option, "replace") {
            let option = String::from_utf8_lossy(crate::dispatch::c_str(option)).into_owned();
            return Err(CommandError::err(format!("Unknown option given: {option}")));
        }
        replace = true;
    }
    // A master's (or the AOF's) FUNCTION LOAD is obeyed without the time limit, as Redis does.
    let timeout = (ctx.client.kind != ClientKind::Master).then_some(LOAD_TIMEOUT);
    let name = ctx
        .server
        .functions
        .lock()
        .load(&args[code_at], replace, timeout)
        .map_err(CommandError::err)?;
    ctx.dirty(1);
    Ok(Frame::bulk(name.as_bytes()))
}

fn delete(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    if !ctx.server.functions.lock().delete(&args[2]) {
        return Err(CommandError::err("Library not found"));
    }
    ctx.dirty(1);
    Ok(Frame::ok())
}

fn flush(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    if args.len() > 3 {
        return Err(super::server::subcommand_syntax(&args[1], "FUNCTION"));
    }
    if let Some(mode) = args.get(2) {
        if !super::args::is(mode, "sync") && !super::args::is(mode, "async") {
            return Err(CommandError::err("FUNCTION FLUSH only supports SYNC|ASYNC option"));
        }
    }
    ctx.server.functions.lock().flush();
    ctx.dirty(1);
    Ok(Frame::ok())
}

fn list(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let (mut with_code, mut pattern) = (false, None);
    let mut i = 2;
    while i < args.len() {
        if !with_code && super::args::is(&args[i], "withcode") {
            with_code = true;
        } else if pattern.is_none() && super::args::is(&args[i], "libraryname") {
            if i + 1 >= args.len() {
                return Err(CommandError::err("library name argument was not given"));
            }
            pattern = Some(&args[i + 1]);
            i += 1;
        } else {
            let arg = String::from_utf8_lossy(crate::dispatch::c_str(&args[i])).into_owned();
            return Err(CommandError::err(format!("Unknown argument {arg}")));
        }
        i += 1;
    }
    let libraries = ctx.server.functions.lock();
    let listed = libraries
        .libraries()
        .filter(|l| pattern.is_none_or(|p| common::glob::matches(p, l.name.as_bytes(), true)))
        .map(|l| {
            let functions = l
                .functions
                .values()
                .map(|f| {
                    let flags = library::flag_names(f.flags).map(Frame::simple).collect();
                    Frame::Map(vec![
                        (Frame::bulk(b"name"), Frame::bulk(f.name.as_bytes())),
                        (
                            Frame::bulk(b"description"),
                            f.description.clone().map_or(Frame::Null, Frame::Bulk),
                        ),
                        (Frame::bulk(b"flags"), Frame::Set(flags)),
                    ])
                })
                .collect();
            let mut fields = vec![
                (Frame::bulk(b"library_name"), Frame::bulk(l.name.as_bytes())),
                (Frame::bulk(b"engine"), Frame::bulk(b"LUA")),
                (Frame::bulk(b"functions"), Frame::Array(functions)),
            ];
            if with_code {
                fields.push((Frame::bulk(b"library_code"), Frame::Bulk(l.code.clone())));
            }
            Frame::Map(fields)
        })
        .collect();
    Ok(Frame::Array(listed))
}

fn dump(ctx: &mut Ctx<'_>, _: &[Bytes]) -> CmdResult {
    let sources = ctx.server.functions.lock().sources();
    let compression = super::persistence::rdb_options(&ctx.server.config.read()).compression;
    Ok(Frame::Bulk(Bytes::from(payload::dump(&sources, compression))))
}

fn restore(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    if args.len() > 4 {
        return Err(super::server::subcommand_syntax(&args[1], "FUNCTION"));
    }
    let policy = match args.get(3) {
        None => RestorePolicy::Append,
        Some(p) if super::args::is(p, "append") => RestorePolicy::Append,
        Some(p) if super::args::is(p, "replace") => RestorePolicy::Replace,
        Some(p) if super::args::is(p, "flush") => RestorePolicy::Flush,
        Some(_) => {
            return Err(CommandError::err(
                "Wrong restore policy given, value should be either FLUSH, APPEND or REPLACE.",
            ))
        }
    };
    let sources = payload::restore(&args[2]).map_err(CommandError::err)?;
    ctx.server.functions.lock().restore(&sources, policy).map_err(CommandError::err)?;
    ctx.dirty(1);
    Ok(Frame::ok())
}

fn stats(ctx: &mut Ctx<'_>, _: &[Bytes]) -> CmdResult {
    // Here nothing runs: a running function is described by the busy script's responder.
    Ok(stats_reply(Frame::Null, ctx.server.functions.lock().counts()))
}

/// FUNCTION STATS's reply: the running function (`running`, or null), then the libraries and
/// functions loaded.
pub fn stats_reply(running: Frame, (libraries, functions): (usize, usize)) -> Frame {
    let counts = Frame::Map(vec![
        (Frame::bulk(b"libraries_count"), Frame::Integer(libraries as i64)),
        (Frame::bulk(b"functions_count"), Frame::Integer(functions as i64)),
    ]);
    Frame::Map(vec![
        (Frame::bulk(b"running_script"), running),
        (Frame::bulk(b"engines"), Frame::Map(vec![(Frame::bulk(b"LUA"), counts)])),
    ])
}

fn kill(_: &mut Ctx<'_>, _: &[Bytes]) -> CmdResult {
    Err(CommandError::raw("NOTBUSY No scripts in execution right now."))
}

fn help(_: &mut Ctx<'_>, _: &[Bytes]) -> CmdResult {
    Ok(super::help::reply(
        "FUNCTION",
        &[
            ("LOAD [REPLACE] <FUNCTION CODE>", "Load a library; REPLACE replaces one of the same name."),
            ("DELETE <LIBRARY NAME>", "Delete a library."),
            ("LIST [LIBRARYNAME <pattern>] [WITHCODE]", "The libraries, their functions, and with WITHCODE their code."),
            ("STATS", "The running function, and the libraries and functions per engine."),
            ("KILL", "Kill the running function."),
            ("FLUSH [ASYNC|SYNC]", "Delete every library."),
            ("DUMP", "A payload holding every library, for FUNCTION RESTORE."),
            ("RESTORE <PAYLOAD> [FLUSH|APPEND|REPLACE]", "Load the libraries of a FUNCTION DUMP payload (default APPEND: refuse if one exists)."),
        ],
    ))
}

fn fcall(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    call(ctx, args, false)
}

fn fcall_ro(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    call(ctx, args, true)
}

/// FCALL and FCALL_RO: `name numkeys key… arg…`, with Redis's checks in Redis's order.
fn call(ctx: &mut Ctx<'_>, args: &[Bytes], read_only: bool) -> CmdResult {
    // MONITOR shows the FCALL before the commands it runs.
    feed_monitors(ctx.server, ctx.db, &ctx.client.addr, args, ctx.now_ms);
    let server = ctx.server;
    let libraries = server.functions.lock();
    let (engine, info, function) =
        libraries.find(&args[1]).ok_or_else(|| CommandError::err("Function not found"))?;
    let numkeys = common::fmt::parse_i64(&args[2])
        .ok_or_else(|| CommandError::err("Bad number of keys provided"))?;
    let rest = &args[3..];
    if numkeys > rest.len() as i64 {
        return Err(CommandError::err("Number of keys can't be greater than number of args"));
    }
    if numkeys < 0 {
        return Err(CommandError::err("Number of keys can't be negative"));
    }
    crate::script::prepare(ctx, info.flags, read_only)?;
    let (keys, argv) = rest.split_at(numkeys as usize);
    let call = crate::script::Call {
        keys,
        args: argv,
        as_globals: false,
        name: &info.name,
        read_only: read_only || info.flags.no_writes,
        allow_oom: info.flags.allow_oom,
        caller: if read_only { "fcall_ro" } else { "fcall" },
        command: args,
        library_counts: libraries.counts(),
    };
    crate::script::run(ctx, engine, function, &call)
}
