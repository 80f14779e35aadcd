//! EVAL EVALSHA EVAL_RO EVALSHA_RO SCRIPT (the engine is `crate::script`).

use bytes::Bytes;
use common::resp::Frame;

use crate::cmd::flags::*;
use crate::cmd::{cmd, container, CommandSpec};
use crate::error::{CmdResult, CommandError};
use crate::exec::Ctx;
use crate::script::{self, Source};

/// The scripting commands.
pub static COMMANDS: &[CommandSpec] = &[
    cmd("eval", -3, NOSCRIPT | STALE | SKIP_MONITOR, (0, 0, 0), eval),
    cmd("evalsha", -3, NOSCRIPT | STALE | SKIP_MONITOR, (0, 0, 0), evalsha),
    cmd("eval_ro", -3, READONLY | NOSCRIPT | STALE | SKIP_MONITOR, (0, 0, 0), eval_ro),
    cmd("evalsha_ro", -3, READONLY | NOSCRIPT | STALE | SKIP_MONITOR, (0, 0, 0), evalsha_ro),
    container("script", -2, 0, SCRIPT_SUBCOMMANDS),
];

static SCRIPT_SUBCOMMANDS: &[CommandSpec] = &[
    cmd("load", 3, NOSCRIPT | STALE, (0, 0, 0), script_load),
    cmd("exists", -3, NOSCRIPT, (0, 0, 0), script_exists),
    cmd("flush", -2, NOSCRIPT, (0, 0, 0), script_flush),
    cmd("kill", 2, NOSCRIPT | ALLOW_BUSY, (0, 0, 0), script_kill),
    cmd("help", 2, LOADING | STALE, (0, 0, 0), script_help),
];

/// `numkeys key… arg…` after the script: (keys, args), with Redis's refusals.
fn keys_and_args(args: &[Bytes]) -> Result<(&[Bytes], &[Bytes]), CommandError> {
    let numkeys = common::fmt::parse_i64(&args[2]).ok_or(CommandError::NotInteger)?;
    if numkeys < 0 {
        return Err(CommandError::err("Number of keys can't be negative"));
    }
    let rest = &args[3..];
    if numkeys as u64 > rest.len() as u64 {
        return Err(CommandError::err("Number of keys can't be greater than number of args"));
    }
    Ok(rest.split_at(numkeys as usize))
}

fn run(ctx: &mut Ctx<'_>, args: &[Bytes], sha: bool, read_only: bool) -> CmdResult {
    let (keys, argv) = keys_and_args(args)?;
    let source = if sha { Source::Sha(&args[1]) } else { Source::Body(&args[1]) };
    script::eval(ctx, args, source, keys, argv, read_only)
}

fn eval(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    run(ctx, args, false, false)
}

fn evalsha(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    run(ctx, args, true, false)
}

fn eval_ro(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    run(ctx, args, false, true)
}

fn evalsha_ro(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    run(ctx, args, true, true)
}

fn script_load(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let sha = ctx.server.scripts.lock().load(&args[2])?;
    Ok(Frame::Bulk(Bytes::from(sha)))
}

fn script_exists(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let scripts = ctx.server.scripts.lock();
    Ok(Frame::Array(
        args[2..]
            .iter()
            .map(|sha| Frame::Integer(scripts.exists(&String::from_utf8_lossy(sha)) as i64))
            .collect(),
    ))
}

fn script_flush(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    match args.get(2) {
        None => {}
        Some(mode) if mode.eq_ignore_ascii_case(b"sync") || mode.eq_ignore_ascii_case(b"async") => {
        }
        Some(_) => return Err(CommandError::err("SCRIPT FLUSH only support SYNC|ASYNC option")),
    }
    if args.len() > 3 {
        return Err(CommandError::err("SCRIPT FLUSH only support SYNC|ASYNC option"));
    }
    *ctx.server.scripts.lock() = script::Scripts::new();
    Ok(Frame::ok())
}

fn script_kill(_: &mut Ctx<'_>, _: &[Bytes]) -> CmdResult {
    // A script runs to completion under the keyspace lock, so none is ever seen running.
    Err(CommandError::raw("NOTBUSY No scripts in execution right now."))
}

fn script_help(_: &mut Ctx<'_>, _: &[Bytes]) -> CmdResult {
    Ok(super::help::reply(
        "SCRIPT",
        &[
            ("EXISTS <sha1> [<sha1> ...]", "For each id, 1 if that script is cached, else 0."),
            ("FLUSH [ASYNC|SYNC]", "Forget every cached script."),
            ("KILL", "Stop a running script (none is ever left running here)."),
            ("LOAD <script>", "Compile and cache a script; answers its SHA1 id."),
        ],
    ))
}
