//! FUNCTION: the parts of Redis 7.0's Functions API that are true of a server holding no
//! function libraries. warden-node cannot load libraries yet (FUNCTION LOAD, RESTORE, DUMP and
//! FCALL answer Redis's unknown subcommand / unknown command errors), so the library set is
//! always empty: FLUSH empties it (and replicates, as Redis does, so a Redis replica of ours
//! drops its libraries too), LIST lists nothing, STATS counts nothing, KILL finds nothing
//! running. Clients and test suites that clear functions before they start (Redis's own runs
//! `FUNCTION FLUSH` before every test against an external server) work unchanged.

use bytes::Bytes;
use common::resp::Frame;

use crate::cmd::flags::*;
use crate::cmd::{cmd, container, CommandSpec};
use crate::error::{CmdResult, CommandError};
use crate::exec::Ctx;

/// The FUNCTION container.
pub static COMMANDS: &[CommandSpec] = &[container("function", -2, 0, FUNCTION)];

static FUNCTION: &[CommandSpec] = &[
    cmd("flush", -2, WRITE | NOSCRIPT, (0, 0, 0), flush),
    cmd("list", -2, NOSCRIPT, (0, 0, 0), list),
    cmd("stats", 2, NOSCRIPT | ALLOW_BUSY, (0, 0, 0), stats),
    cmd("kill", 2, NOSCRIPT | ALLOW_BUSY, (0, 0, 0), kill),
    cmd("help", 2, LOADING | STALE, (0, 0, 0), help),
];

fn flush(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    if args.len() > 3 {
        return Err(super::server::subcommand_syntax(&args[1], "FUNCTION"));
    }
    if let Some(mode) = args.get(2) {
        if !super::args::is(mode, "sync") && !super::args::is(mode, "async") {
            return Err(CommandError::err("FUNCTION FLUSH only supports SYNC|ASYNC option"));
        }
    }
    // No libraries to drop; counted as a change so it replicates, as in Redis.
    ctx.dirty(1);
    Ok(Frame::ok())
}

fn list(_: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let (mut with_code, mut library_name) = (false, false);
    let mut i = 2;
    while i < args.len() {
        if !with_code && super::args::is(&args[i], "withcode") {
            with_code = true;
        } else if !library_name && super::args::is(&args[i], "libraryname") {
            if i + 1 >= args.len() {
                return Err(CommandError::err("library name argument was not given"));
            }
            library_name = true;
            i += 1;
        } else {
            let arg = String::from_utf8_lossy(crate::dispatch::c_str(&args[i])).into_owned();
            return Err(CommandError::err(format!("Unknown argument {arg}")));
        }
        i += 1;
    }
    Ok(Frame::Array(Vec::new()))
}

fn stats(_: &mut Ctx<'_>, _: &[Bytes]) -> CmdResult {
    let counts = Frame::Map(vec![
        (Frame::bulk(b"libraries_count"), Frame::Integer(0)),
        (Frame::bulk(b"functions_count"), Frame::Integer(0)),
    ]);
    Ok(Frame::Map(vec![
        (Frame::bulk(b"running_script"), Frame::Null),
        (Frame::bulk(b"engines"), Frame::Map(vec![(Frame::bulk(b"LUA"), counts)])),
    ]))
}

fn kill(_: &mut Ctx<'_>, _: &[Bytes]) -> CmdResult {
    Err(CommandError::raw("NOTBUSY No scripts in execution right now."))
}

fn help(_: &mut Ctx<'_>, _: &[Bytes]) -> CmdResult {
    Ok(super::help::reply(
        "FUNCTION",
        &[
            ("FLUSH [ASYNC|SYNC]", "Delete every library (warden-node holds none: loading libraries is not supported yet)."),
            ("KILL", "Kill the running function (none can run in warden-node)."),
            ("LIST [LIBRARYNAME <pattern>] [WITHCODE]", "The loaded libraries (none)."),
            ("STATS", "The running function and the libraries per engine (none)."),
        ],
    ))
}
