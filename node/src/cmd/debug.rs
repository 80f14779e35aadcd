//! DEBUG: Redis's introspection and testing subcommands that clients and test suites rely on.
//! Only the ones whose effect warden-node can honour exist; the rest answer Redis's unknown
//! subcommand error.

use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use common::resp::Frame;

use crate::error::{CmdResult, CommandError};
use crate::exec::Ctx;
use crate::server::Shared;

/// `enable-debug-command`: whether this client may run DEBUG; the refusal is Redis's.
pub fn refusal(shared: &Shared, client: &crate::client::ClientState) -> Option<CommandError> {
    let allowed = match shared.config.read().settings.enable_debug_command.as_str() {
        "yes" => true,
        "local" => client.addr.ip().is_loopback(),
        _ => false,
    };
    (!allowed).then(|| {
        CommandError::err(
            "DEBUG command not allowed. If the enable-debug-command option is set to \"local\", you can run it from a local connection, otherwise you need to set this option in the configuration file, and then restart the server.",
        )
    })
}

/// The DEBUG command.
pub fn debug(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    if let Some(refusal) = refusal(ctx.server, ctx.client) {
        return Err(refusal);
    }
    let sub = String::from_utf8_lossy(&args[1]).to_ascii_lowercase();
    match (sub.as_str(), args.len()) {
        ("sleep", 3) => {
            let secs = common::fmt::parse_f64(&args[2]).ok_or(CommandError::NotFloat)?;
            // DEBUG SLEEP freezes the whole server, as in Redis (it holds the keyspace lock
            // every command needs); tests use it to simulate a hung node.
            std::thread::sleep(Duration::from_secs_f64(secs.max(0.0)));
            Ok(Frame::ok())
        }
        ("set-active-expire", 3) => {
            ctx.server.active_expire.store(&args[2][..] != b"0", Ordering::Relaxed);
            Ok(Frame::ok())
        }
        ("pause-cron", 3) => {
            let paused = common::fmt::parse_i64(&args[2]).unwrap_or(0) != 0;
            ctx.server.cron_paused.store(paused, Ordering::Relaxed);
            Ok(Frame::ok())
        }
        ("set-disable-deny-scripts", 3) => {
            let on = common::fmt::parse_i64(&args[2]).unwrap_or(0) != 0;
            ctx.server.allow_noscript.store(on, Ordering::Relaxed);
            Ok(Frame::ok())
        }
        ("object", 3) => {
            // The stored value, logically expired or not (Redis looks in the dict itself).
            let Some(value) = ctx.db_ref().keys.get(&args[2]) else {
                return Err(CommandError::NoSuchKey);
            };
            let text = format!(
                "Value at:0x0 refcount:1 encoding:{} serializedlength:0 lru:0 lru_seconds_idle:0",
                value.encoding()
            );
            Ok(Frame::Simple(Bytes::from(text)))
        }
        ("populate", 3..=5) => populate(ctx, args),
        ("reload", _) => reload(ctx, args),
        ("loadaof", 2) => {
            // Runs after the command, without the keyspace lock: the AOF's commands are
            // replayed like any client's (see `aof::reload`).
            ctx.effect = Some(crate::exec::Effect::LoadAof);
            Ok(Frame::Raw(Bytes::new()))
        }
        ("digest", 2) => {
            let digest = crate::db::digest::dataset_digest(ctx.exec.ks);
            Ok(Frame::Simple(Bytes::from(crate::db::digest::hex(&digest))))
        }
        ("digest-value", _) => {
            // Stored values, logically expired or not: a debugging view does not expire keys.
            let db = ctx.db_ref();
            let digests = args[2..].iter().map(|key| {
                let mut digest = [0u8; 20];
                if let Some(value) = db.keys.get(key) {
                    let has_ttl = db.expires.get(key).is_some();
                    crate::db::digest::value_digest(&mut digest, value, has_ttl);
                }
                Frame::Simple(Bytes::from(crate::db::digest::hex(&digest)))
            });
            Ok(Frame::Array(digests.collect()))
        }
        ("protocol", 3) => protocol(ctx, &args[2]),
        ("htstats-key", 3) => {
            use crate::db::Value;
            let Some(value) = ctx.lookup_quiet(&args[2]) else {
                return Err(CommandError::NoSuchKey);
            };
            let stats = match value {
                Value::Set(s) => s.table_stats(),
                Value::Hash(h) => h.table_stats(),
                Value::ZSet(z) => z.table_stats(),
                _ => None,
            };
            match stats {
                Some(text) => Ok(Frame::Verbatim("txt", Bytes::from(text))),
                None => Err(CommandError::err(
                    "The value stored at the specified key is not represented using an hash table",
                )),
            }
        }
        ("quicklist-packed-threshold", 3) => {
            // Redis's `quicklistisSetPackedThreshold`: 0 restores the default, and anything at
            // or above 4 GB - 1 MB is refused.
            let size = std::str::from_utf8(&args[2]).ok().and_then(common::config::parse_memory);
            match size {
                Some(size) if size <= (1u64 << 32) - (1 << 20) => {
                    let size = if size == 0 { 1 << 30 } else { size as usize };
                    crate::persist::encode::PACKED_THRESHOLD.store(size, Ordering::Relaxed);
                    Ok(Frame::ok())
                }
                _ => Err(CommandError::err(
                    "argument must be a memory value bigger than 1 and smaller than 4gb",
                )),
            }
        }
        ("help", _) => Ok(super::help::reply(
            "DEBUG",
            &[
                ("DIGEST", "A SHA-1 fingerprint of the whole dataset (the same as Redis's for the same data)."),
                ("DIGEST-VALUE <key> [<key> ...]", "The fingerprint of each key's value (zeros for a missing key)."),
                ("HTSTATS-KEY <key>", "Hash table statistics of the value at <key>, if it is a hash table."),
                ("LOADAOF", "Flush the AOF to disk, empty the dataset and load the AOF back."),
                ("OBJECT <key>", "Internal details of a key's value."),
                (
                    "POPULATE <count> [<prefix>] [<size>]",
                    "Create <count> string keys named <prefix>:<n> (test data; not replicated).",
                ),
                ("PROTOCOL <type>", "A sample reply of that RESP type: string, integer, double, bignum, null, array, set, map, attrib, push, verbatim, true or false."),
                ("QUICKLIST-PACKED-THRESHOLD <size>", "Lists' elements from this size on are kept as plain nodes in RDB files and DUMP payloads."),
                ("RELOAD [MERGE] [NOFLUSH] [NOSAVE]", "Save the dump file, empty the dataset and load the file back (MERGE: replace keys the file also has; NOFLUSH: keep the dataset; NOSAVE: load the file as it is)."),
                ("SET-ACTIVE-EXPIRE 0|1", "Turn the background expiry of keys off or on."),
                ("SET-DISABLE-DENY-SCRIPTS 0|1", "Let scripts run commands flagged noscript (for tests)."),
                ("PAUSE-CRON 0|1", "Stop (or resume) the periodic jobs: expiry, eviction, saves, replication pings."),
                ("SLEEP <seconds>", "Freeze the whole server for that long (fractions allowed)."),
            ],
        )),
        _ => Err(super::server::subcommand_syntax(&args[1], "DEBUG")),
    }
}

fn populate(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let count = crate::cmd::args::int(&args[2])?;
    if count < 0 {
        return Err(CommandError::err("value is out of range, must be positive"));
    }
    let prefix = args.get(3).map_or(&b"key"[..], |p| &p[..]);
    let size = match args.get(4) {
        Some(s) => match crate::cmd::args::int(s)? {
            n if n >= 0 => Some(n as usize),
            _ => return Err(CommandError::err("value is out of range, must be positive")),
        },
        None => None,
    };
    for j in 0..count {
        let key = [prefix, b":", j.to_string().as_bytes()].concat();
        if ctx.db_ref().keys.get(&key).is_some() {
            continue;
        }
        let mut value = format!("value:{j}").into_bytes();
        if let Some(size) = size {
            // Padded with zero bytes or cut to `size`, as Redis does.
            value.resize(size, 0);
        }
        ctx.db_mut().keys.insert(&key, crate::db::Value::string(&value));
    }
    Ok(Frame::ok())
}

/// DEBUG RELOAD [MERGE] [NOFLUSH] [NOSAVE]: saves the dump file, empties the dataset and loads
/// the file back, all under the keyspace lock (clients wait, as in Redis). A master drops keys
/// whose TTL passed, as at startup.
fn reload(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let (mut merge, mut flush, mut save) = (false, true, true);
    for option in &args[2..] {
        match String::from_utf8_lossy(option).to_ascii_lowercase().as_str() {
            "merge" => merge = true,
            "noflush" => flush = false,
            "nosave" => save = false,
            _ => {
                return Err(CommandError::err(
                    "DEBUG RELOAD only supports the MERGE, NOFLUSH and NOSAVE options.",
                ))
            }
        }
    }
    if save && super::persistence::save_blocking(ctx.server, ctx.exec.ks, ctx.now_ms).is_err() {
        return Err(CommandError::raw("ERR"));
    }
    if flush {
        for db in 0..ctx.ks.dbs.len() {
            super::server::empty_db(ctx, db, false);
        }
    }
    let (dir, dbfilename, _) = super::persistence::dump_target(ctx.server);
    let options = crate::persist::LoadOptions {
        expired_before: (!ctx.server.is_replica()).then_some(ctx.now_ms),
        merge,
        ..Default::default()
    };
    let path = dir.join(dbfilename);
    // The file's libraries replace ours when the dataset was emptied first (emptying it drops
    // the libraries too, as Redis's emptyData does); with NOFLUSH they are added, replacing
    // ones of the same name only with MERGE, as keys are.
    let loaded = crate::persist::load_file_with(&path, ctx.exec.ks, options, None)
        .map_err(|e| e.to_string())
        .and_then(|summary| {
            let mut libraries = ctx.server.functions.lock();
            if flush {
                *libraries = crate::script::library::Libraries::from_loaded(&summary.functions)?;
                return Ok(());
            }
            summary
                .functions
                .iter()
                .try_for_each(|code| libraries.load(code, merge, None).map(drop))
        });
    match loaded {
        Ok(()) => {}
        Err(e) => {
            tracing::warn!(path = %path.display(), cause = %e, "DEBUG RELOAD could not load the dump");
            return Err(CommandError::err("Error trying to load the RDB dump"));
        }
    }
    tracing::warn!("DB reloaded by DEBUG RELOAD");
    Ok(Frame::ok())
}

/// DEBUG PROTOCOL <type>: a sample reply of each RESP type, as Redis sends them.
#[allow(clippy::approx_constant)] // Redis's sample double is the literal 3.141, not pi.
fn protocol(ctx: &mut Ctx<'_>, name: &[u8]) -> CmdResult {
    let resp3 = ctx.client.resp == common::resp::Protocol::Resp3;
    let raw = |text: &str| Frame::Raw(Bytes::from(text.to_string()));
    let follow = |first: &str, text: &str| raw(&format!("{first}${}\r\n{text}\r\n", text.len()));
    Ok(match String::from_utf8_lossy(name).to_ascii_lowercase().as_str() {
        "string" => Frame::bulk(b"Hello World"),
        "integer" => Frame::Integer(12345),
        "double" => Frame::Double(3.141),
        "bignum" => Frame::BigNumber(Bytes::from_static(b"1234567999999999999999999999999999999")),
        "null" => Frame::Null,
        "array" => Frame::Array((0..3).map(Frame::Integer).collect()),
        "set" => Frame::Set((0..3).map(Frame::Integer).collect()),
        "map" => Frame::Map((0..3).map(|j| (Frame::Integer(j), Frame::Boolean(j == 1))).collect()),
        "attrib" if resp3 => follow(
            "|1\r\n$14\r\nkey-popularity\r\n*2\r\n$7\r\nkey:123\r\n:90\r\n",
            "Some real reply following the attribute",
        ),
        "attrib" => Frame::bulk(b"Some real reply following the attribute"),
        "push" if resp3 => follow(
            ">2\r\n$16\r\nserver-cpu-usage\r\n:42\r\n",
            "Some real reply following the push reply",
        ),
        "push" => return Err(CommandError::err("RESP2 is not supported by this command")),
        "true" => Frame::Boolean(true),
        "false" => Frame::Boolean(false),
        "verbatim" => Frame::Verbatim("txt", Bytes::from_static(b"This is a verbatim\nstring")),
        _ => return Err(CommandError::err("Wrong protocol type name. Please use one of the following: string|integer|double|bignum|null|array|set|map|attrib|push|verbatim|true|false")),
    })
}
