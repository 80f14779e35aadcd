//! CONFIG GET SET RESETSTAT REWRITE.

use std::io::Write;

use bytes::Bytes;
use common::resp::Frame;

use crate::cmd::flags::*;
use crate::cmd::{cmd, container, CommandSpec};
use crate::config::{Config, SetError};
use crate::error::{CmdResult, CommandError};
use crate::exec::Ctx;

/// The CONFIG command.
pub static COMMANDS: &[CommandSpec] = &[container("config", -2, 0, SUBCOMMANDS)];

static SUBCOMMANDS: &[CommandSpec] = &[
    cmd("get", -3, ADMIN | NOSCRIPT | LOADING | STALE, (0, 0, 0), get),
    cmd("set", -4, ADMIN | NOSCRIPT | LOADING | STALE, (0, 0, 0), set),
    cmd("resetstat", 2, ADMIN | NOSCRIPT | LOADING | STALE, (0, 0, 0), resetstat),
    cmd("rewrite", 2, ADMIN | NOSCRIPT | LOADING | STALE, (0, 0, 0), rewrite),
    cmd("help", 2, LOADING | STALE, (0, 0, 0), help),
];

fn get(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let patterns: Vec<&[u8]> = args[2..].iter().map(|a| &a[..]).collect();
    let pairs = ctx.server.config.read().matching(&patterns);
    Ok(Frame::Map(
        pairs
            .into_iter()
            .map(|(name, value)| (Frame::Bulk(Bytes::from(name)), Frame::Bulk(Bytes::from(value))))
            .collect(),
    ))
}

fn set(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    if !args.len().is_multiple_of(2) {
        return Err(CommandError::Syntax);
    }
    // All or nothing: apply to a copy, then swap it in.
    let mut config = ctx.server.config.read().clone();
    let mut seen: Vec<String> = Vec::new();
    for pair in args[2..].chunks(2) {
        let name = String::from_utf8_lossy(&pair[0]).into_owned();
        let canonical = crate::config::canonical_name(&name).unwrap_or_default();
        if !canonical.is_empty() && seen.iter().any(|s| s == canonical) {
            return Err(CommandError::err(format!(
                "CONFIG SET failed (possibly related to argument '{name}') - duplicate parameter"
            )));
        }
        seen.push(canonical.to_string());
        let value = String::from_utf8_lossy(&pair[1]).into_owned();
        if Config::is_protected(&name) && !protected_allowed(&config, ctx.client.addr) {
            return Err(CommandError::err(format!(
                "CONFIG SET failed (possibly related to argument '{}') - can't set protected config",
                canonical
            )));
        }
        config.set(&name, &value).map_err(|e| match e {
            SetError::Unknown => CommandError::err(format!(
                "Unknown option or number of arguments for CONFIG SET - '{name}'"
            )),
            // Redis names the setting as it was given (an alias stays an alias), lower-cased.
            SetError::Invalid(_, why) => CommandError::err(format!(
                "CONFIG SET failed (possibly related to argument '{}') - {why}",
                name.to_ascii_lowercase()
            )),
        })?;
    }
    let (old_port, old_bind) = {
        let settings = &ctx.server.config.read().settings;
        (settings.port, settings.bind.clone())
    };
    if config.settings.bind != old_bind {
        // Rebinding the same port on other addresses would need the old listeners closed
        // first, from under the accept loop; warden-node takes a new bind at restart.
        return Err(CommandError::err(
            "CONFIG SET failed (possibly related to argument 'bind') - Failed to bind to \
             specified addresses. (warden-node changes bind addresses at restart only)",
        ));
    }
    if config.settings.port != old_port {
        let listeners = crate::server::bind_now(&config).map_err(|e| {
            tracing::warn!(cause = %e, port = config.settings.port, "cannot listen on the new port");
            CommandError::err(
                "CONFIG SET failed (possibly related to argument 'port') - Unable to listen on \
                 this port. Check server logs.",
            )
        })?;
        if let Some(accept_loop) = ctx.server.relisten.get() {
            let _ = accept_loop.send(listeners);
        }
    }
    let new_password = (config.settings.requirepass
        != ctx.server.config.read().settings.requirepass)
        .then(|| config.settings.requirepass.clone());
    let backlog_size = config.settings.repl_backlog_size;
    let fsync = crate::aof::Fsync::parse(config.get("appendfsync").unwrap_or("everysec"));
    let aof_wanted = config.get("appendonly") == Some("yes");
    let aof_was_wanted = ctx.server.config.read().get("appendonly") == Some("yes");
    *ctx.server.config.write() = config;
    // Settings the replication layer caches take effect now.
    let settings = ctx.server.config.read().settings.clone();
    {
        let r = ctx.server.repl.lock();
        if !r.is_replica() {
            crate::cron::count_good_replicas(ctx.server, &r, &settings);
        }
    }
    ctx.server.refresh_gates();
    ctx.server.refresh_output_limits();
    ctx.server.refresh_acl_settings();
    if let Some(password) = new_password {
        ctx.server.acl.acl.write().set_default_password(password.as_deref());
        ctx.server.acl.changed();
    }
    ctx.ks.notify = ctx.server.config.read().settings.notify;
    ctx.server.refresh_eviction(ctx.exec.ks);
    let tracking = ctx.server.config.read().settings.latency_tracking;
    ctx.server.command_stats.lock().latency_tracking = tracking;
    crate::proc_title::refresh(ctx.server);
    crate::aof::set_policy(ctx.server, fsync);
    if aof_wanted != aof_was_wanted {
        // As in Redis: turning the AOF on writes a base snapshot of the current data in the
        // background; turning it off flushes and closes it. Both need locks this command
        // holds, so they run after it, in order (see `aof::follow_config`).
        let shared = ctx.server.self_arc();
        if aof_wanted {
            shared.aof_rewrite_stats.lock().starting = true;
        }
        std::thread::spawn(move || crate::aof::follow_config(&shared));
    }
    if let Some(b) = ctx.server.repl.lock().backlog.as_mut() {
        b.resize(backlog_size);
    }
    Ok(Frame::ok())
}

fn resetstat(ctx: &mut Ctx<'_>, _: &[Bytes]) -> CmdResult {
    use std::sync::atomic::Ordering::Relaxed;
    let stats = &ctx.server.stats;
    for counter in [&stats.commands, &stats.net_input, &stats.net_output, &stats.errors] {
        counter.store(0, Relaxed);
    }
    ctx.ks.stats = Default::default();
    ctx.ks.eviction.reset_stats();
    ctx.server.lazyfree.reset_stats();
    ctx.server.slowlog.lock().reset();
    ctx.client.tally = Default::default();
    ctx.server.command_stats.lock().reset();
    Ok(Frame::ok())
}

/// Rewrites the config file: known directives are updated in place (first occurrence; later
/// duplicates dropped), comments and unknown lines are kept, and non-default directives that
/// were not in the file are appended. The file is replaced atomically.
fn rewrite(ctx: &mut Ctx<'_>, _: &[Bytes]) -> CmdResult {
    let config = ctx.server.config.read().clone();
    let Some(path) = config.file.clone() else {
        return Err(CommandError::err("The server is running without a config file"));
    };
    let text = std::fs::read_to_string(&path).unwrap_or_default();
    let master = {
        let r = ctx.server.repl.lock();
        r.master.as_ref().map(|m| (m.host.clone(), m.port))
    };
    let users: Vec<String> = {
        let acl = ctx.server.acl.acl.read();
        if acl.filename.is_empty() {
            acl.iter()
                .map(|e| {
                    let rules = e.user.describe();
                    format!("user {} {}", lossy(&e.user.name), lossy(&rules))
                })
                .collect()
        } else {
            Vec::new()
        }
    };
    let master = master.as_ref().map(|(h, p)| (h.as_str(), *p));
    let out = config.rewrite_text(&text, master, &users);
    let result = (|| -> std::io::Result<()> {
        let tmp = path.with_extension("rewrite.tmp");
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(out.as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, &path)?;
        Ok(())
    })();
    result.map_err(|e| {
        tracing::warn!(cause = %e, "CONFIG REWRITE failed");
        CommandError::err(format!("Rewriting config file: {e}"))
    })?;
    Ok(Frame::ok())
}

fn lossy(b: &[u8]) -> std::borrow::Cow<'_, str> {
    String::from_utf8_lossy(b)
}

fn help(_: &mut Ctx<'_>, _: &[Bytes]) -> CmdResult {
    Ok(super::help::reply(
        "CONFIG",
        &[
            (
                "GET <pattern> [<pattern> ...]",
                "Directives whose names match a glob pattern, with their values.",
            ),
            (
                "SET <directive> <value> [<directive> <value> ...]",
                "Change directives at run time, all or none.",
            ),
            ("RESETSTAT", "Zero the counters INFO reports."),
            ("REWRITE", "Write the running configuration back into the config file."),
        ],
    ))
}

/// `enable-protected-configs`: `yes` for every client, `local` for loopback ones.
fn protected_allowed(config: &Config, addr: std::net::SocketAddr) -> bool {
    match config.get("enable-protected-configs") {
        Some("yes") => true,
        Some("local") => addr.ip().is_loopback(),
        _ => false,
    }
}
