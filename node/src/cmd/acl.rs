//! ACL: SETUSER GETUSER DELUSER USERS LIST WHOAMI CAT GENPASS LOG DRYRUN SAVE LOAD HELP, over
//! the registry in `crate::acl`.

use bytes::Bytes;
use common::resp::Frame;

use crate::acl::commands::{category, commands, CATEGORIES};
use crate::acl::selector::{has_spaces, Selector};
use crate::acl::{check, file, User, DEFAULT_INCARNATION};
use crate::cmd::args::{int, is};
use crate::cmd::flags::*;
use crate::cmd::{cmd, container, CommandSpec};
use crate::error::{CmdResult, CommandError};
use crate::exec::{Ctx, Effect};

/// The ACL command.
pub static COMMANDS: &[CommandSpec] = &[container("acl", -2, 0, SUBCOMMANDS)];

const BASE: u32 = NOSCRIPT | LOADING | STALE;

static SUBCOMMANDS: &[CommandSpec] = &[
    cmd("cat", -2, BASE, (0, 0, 0), cat),
    cmd("deluser", -3, ADMIN | BASE, (0, 0, 0), deluser),
    cmd("dryrun", -4, ADMIN | BASE, (0, 0, 0), dryrun),
    cmd("genpass", -2, BASE, (0, 0, 0), genpass),
    cmd("getuser", 3, ADMIN | BASE, (0, 0, 0), getuser),
    cmd("help", 2, LOADING | STALE, (0, 0, 0), help),
    cmd("list", 2, ADMIN | BASE, (0, 0, 0), list),
    cmd("load", 2, ADMIN | BASE, (0, 0, 0), load),
    cmd("log", -2, ADMIN | BASE, (0, 0, 0), log),
    cmd("save", 2, ADMIN | BASE, (0, 0, 0), save),
    cmd("setuser", -3, ADMIN | BASE, (0, 0, 0), setuser),
    cmd("users", 2, ADMIN | BASE, (0, 0, 0), users),
    cmd("whoami", 2, BASE, (0, 0, 0), whoami),
];

fn syntax(args: &[Bytes]) -> CommandError {
    super::server::subcommand_syntax(&args[1], "ACL")
}

fn lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn setuser(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let name = &args[2];
    if has_spaces(name) {
        return Err(CommandError::err("Usernames can't contain spaces or null characters"));
    }
    let before =
        ctx.server.acl.acl.write().set_user(name, &args[3..]).map_err(CommandError::err)?;
    ctx.server.acl.changed();
    if let Some(before) = before {
        kill_pubsub_clients_if_needed(ctx, &before);
    }
    Ok(Frame::ok())
}

/// Disconnects the user's pub/sub clients subscribed to something its new rules no longer
/// allow, unless the new channel patterns include all the old ones (Redis's
/// `ACLKillPubsubClientsIfNeeded`).
fn kill_pubsub_clients_if_needed(ctx: &mut Ctx<'_>, before: &User) {
    let (after, incarnation) = {
        let acl = ctx.server.acl.acl.read();
        let entry = acl.get(&before.name).expect("the user was just set");
        (entry.user.clone(), entry.incarnation)
    };
    if after.selectors.iter().any(|s| s.allchannels) {
        return;
    }
    let upcoming: Vec<Bytes> =
        after.selectors.iter().flat_map(|s| s.channels.iter().cloned()).collect();
    let kept = before
        .selectors
        .iter()
        .all(|s| !s.allchannels && s.channels.iter().all(|c| upcoming.contains(c)));
    if kept {
        return;
    }
    let mut allowed = Selector::new(false);
    allowed.channels = upcoming;
    let me = ctx.client.id;
    let targets: Vec<(u64, crate::kill_switch::KillSwitch)> = {
        let clients = ctx.server.clients.lock();
        clients
            .iter()
            .filter(|c| c.snapshot.lock().user == (before.name.clone(), incarnation))
            .map(|c| (c.id, c.kill.clone()))
            .collect()
    };
    let pubsub = ctx.server.pubsub.lock();
    for (id, kill) in targets {
        let [channels, patterns, shard] = pubsub.subscriptions_of(id);
        let revoked = patterns.iter().any(|p| !allowed.allows_channel(p, true))
            || channels.iter().chain(&shard).any(|c| !allowed.allows_channel(c, false));
        if revoked {
            kill.kill();
            if id == me {
                ctx.effect = Some(Effect::Close);
            }
        }
    }
}

/// Disconnects every client logged in as one of `users` (name, incarnation).
fn kill_clients_of(ctx: &mut Ctx<'_>, matches: impl Fn(&(Bytes, u64)) -> bool) {
    let me = ctx.client.id;
    let clients = ctx.server.clients.lock();
    for c in clients.iter() {
        if matches(&c.snapshot.lock().user) {
            c.kill.kill();
            if c.id == me {
                ctx.effect = Some(Effect::Close);
            }
        }
    }
}

fn deluser(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    if args[2..].iter().any(|n| n.as_ref() == b"default") {
        return Err(CommandError::err("The 'default' user cannot be removed"));
    }
    let mut deleted = Vec::new();
    {
        let mut acl = ctx.server.acl.acl.write();
        for name in &args[2..] {
            if let Some(incarnation) = acl.remove(name) {
                deleted.push((name.clone(), incarnation));
            }
        }
    }
    if !deleted.is_empty() {
        ctx.server.acl.changed();
        kill_clients_of(ctx, |u| deleted.contains(u));
    }
    Ok(Frame::Integer(deleted.len() as i64))
}

fn selector_fields(s: &Selector) -> Vec<(Frame, Frame)> {
    vec![
        (Frame::bulk_static("commands"), Frame::Bulk(Bytes::from(s.describe_commands()))),
        (Frame::bulk_static("keys"), Frame::Bulk(Bytes::from(s.describe_keys()))),
        (Frame::bulk_static("channels"), Frame::Bulk(Bytes::from(s.describe_channels()))),
    ]
}

fn getuser(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let Some(user) = ctx.server.acl.acl.read().get(&args[2]).map(|e| e.user.clone()) else {
        return Ok(Frame::Null);
    };
    let mut fields = vec![
        (
            Frame::bulk_static("flags"),
            Frame::Set(user.flags().into_iter().map(Frame::bulk_static).collect()),
        ),
        (
            Frame::bulk_static("passwords"),
            Frame::Array(
                user.passwords.iter().map(|p| Frame::Bulk(Bytes::from(p.clone()))).collect(),
            ),
        ),
    ];
    fields.extend(selector_fields(user.root()));
    let selectors = user.selectors[1..].iter().map(|s| Frame::Map(selector_fields(s))).collect();
    fields.push((Frame::bulk_static("selectors"), Frame::Array(selectors)));
    Ok(Frame::Map(fields))
}

fn users(ctx: &mut Ctx<'_>, _: &[Bytes]) -> CmdResult {
    let acl = ctx.server.acl.acl.read();
    Ok(Frame::Array(acl.iter().map(|e| Frame::Bulk(e.user.name.clone())).collect()))
}

fn list(ctx: &mut Ctx<'_>, _: &[Bytes]) -> CmdResult {
    let acl = ctx.server.acl.acl.read();
    let lines = acl.iter().map(|e| Frame::Bulk(Bytes::from(e.user.line()))).collect();
    Ok(Frame::Array(lines))
}

fn whoami(ctx: &mut Ctx<'_>, _: &[Bytes]) -> CmdResult {
    Ok(match &ctx.client.user.user {
        Some(u) => Frame::Bulk(u.name.clone()),
        None => Frame::Null,
    })
}

const NO_FILE: &str = "This Redis instance is not configured to use an ACL file. You may want to specify users via the ACL SETUSER command and then issue a CONFIG REWRITE (assuming you have a Redis configuration file set) in order to store users in the Redis configuration.";

fn load(ctx: &mut Ctx<'_>, _: &[Bytes]) -> CmdResult {
    let (filename, all) = {
        let acl = ctx.server.acl.acl.read();
        (acl.filename.clone(), acl.pubsub_default_all)
    };
    if filename.is_empty() {
        return Err(CommandError::err(NO_FILE));
    }
    let users = file::load(&filename, all).map_err(CommandError::err)?;
    ctx.server.acl.acl.write().replace_users(users);
    ctx.server.acl.changed();
    // Every user but the default one is new: their clients are disconnected, as in Redis.
    kill_clients_of(ctx, |(_, incarnation)| {
        *incarnation != DEFAULT_INCARNATION && *incarnation != 0
    });
    Ok(Frame::ok())
}

fn save(ctx: &mut Ctx<'_>, _: &[Bytes]) -> CmdResult {
    let (filename, text) = {
        let acl = ctx.server.acl.acl.read();
        (acl.filename.clone(), file::render(&acl))
    };
    if filename.is_empty() {
        return Err(CommandError::err(NO_FILE));
    }
    file::save(&filename, &text).map_err(|e| {
        tracing::warn!(file = %filename, cause = %file::strerror(&e), "ACL SAVE failed");
        CommandError::err(
            "There was an error trying to save the ACLs. Please check the server logs for more information",
        )
    })?;
    Ok(Frame::ok())
}

fn cat(_: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    match args.len() {
        2 => Ok(Frame::Array(CATEGORIES.iter().map(|c| Frame::bulk_static(c)).collect())),
        3 => {
            let flag = category(&args[2]).ok_or_else(|| {
                let name = crate::dispatch::c_str(&args[2]);
                CommandError::err(format!(
                    "Unknown category '{}'",
                    lossy(&name[..name.len().min(128)])
                ))
            })?;
            let names = commands()
                .entries
                .iter()
                .filter(|e| e.categories & flag != 0)
                .map(|e| Frame::Bulk(Bytes::from(e.fullname.clone())))
                .collect();
            Ok(Frame::Array(names))
        }
        _ => Err(syntax(args)),
    }
}

/// The most bits ACL GENPASS makes.
const GENPASS_MAX_BITS: i64 = 4096;

fn genpass(_: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let bits = match args.len() {
        2 => 256,
        3 => int(&args[2])?,
        _ => return Err(syntax(args)),
    };
    if bits <= 0 || bits > GENPASS_MAX_BITS {
        return Err(CommandError::err(format!(
            "ACL GENPASS argument must be the number of bits for the output password, a positive number up to {GENPASS_MAX_BITS}"
        )));
    }
    let chars = (bits as usize).div_ceil(4);
    use rand::Rng;
    let mut rng = rand::rngs::OsRng;
    let hex: String =
        (0..chars).map(|_| char::from(b"0123456789abcdef"[rng.gen_range(0..16)])).collect();
    Ok(Frame::Bulk(Bytes::from(hex)))
}

fn log(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let mut count = 10;
    match args.len() {
        2 => {}
        3 if is(&args[2], "reset") => {
            ctx.server.acl.acl.write().log.reset();
            return Ok(Frame::ok());
        }
        3 => count = int(&args[2])?.max(0) as usize,
        _ => return Err(syntax(args)),
    }
    let now = crate::server::unix_ms();
    let acl = ctx.server.acl.acl.read();
    Ok(Frame::Array(acl.log.newest(count).map(|e| e.to_frame(now)).collect()))
}

fn dryrun(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let Some(user) = ctx.server.acl.acl.read().get(&args[2]).map(|e| e.user.clone()) else {
        return Err(CommandError::err(format!("User '{}' not found", lossy(&args[2]))));
    };
    let argv = &args[3..];
    let resolved = crate::dispatch::find(argv)
        .map_err(|_| CommandError::err(format!("Command '{}' not found", lossy(&argv[0]))))?;
    if !resolved.spec.arity_ok(argv.len()) {
        return Err(CommandError::err(format!(
            "wrong number of arguments for '{}' command",
            resolved.fullname()
        )));
    }
    Ok(match check::check(&user, resolved, argv) {
        Ok(()) => Frame::ok(),
        Err(check::Denied::Command) => Frame::Bulk(Bytes::from(format!(
            "This user has no permissions to run the '{}' command",
            resolved.fullname()
        ))),
        Err(check::Denied::Key(at)) => Frame::Bulk(Bytes::from(format!(
            "This user has no permissions to access the '{}' key",
            lossy(&argv[at])
        ))),
        Err(check::Denied::Channel(at)) => Frame::Bulk(Bytes::from(format!(
            "This user has no permissions to access the '{}' channel",
            lossy(&argv[at])
        ))),
    })
}

fn help(_: &mut Ctx<'_>, _: &[Bytes]) -> CmdResult {
    Ok(super::help::reply(
        "ACL",
        &[
            ("CAT [<category>]", "The categories, or the commands of one category."),
            (
                "DELUSER <username> [<username> ...]",
                "Deletes users (their clients are disconnected).",
            ),
            (
                "DRYRUN <username> <command> [<arg> ...]",
                "Whether the user may run a command, without running it.",
            ),
            ("GETUSER <username>", "A user's flags, passwords and permissions."),
            ("GENPASS [<bits>]", "A random password (256 bits unless told)."),
            ("LIST", "Every user, as rules an ACL file holds."),
            ("LOAD", "Replaces the users with those of the ACL file."),
            ("LOG [<count> | RESET]", "Recent denied commands and failed logins, or clears them."),
            ("SAVE", "Writes the users to the ACL file."),
            ("SETUSER <username> <attribute> [<attribute> ...]", "Creates or changes a user."),
            ("USERS", "The names of every user."),
            ("WHOAMI", "The user of this connection."),
        ],
    ))
}
