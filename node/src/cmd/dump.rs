//! DUMP and RESTORE: one value in RDB form ([`crate::persist::payload`]), as Redis 7.0's
//! `dumpCommand` and `restoreCommand` (cluster.c) handle it.
//!
//! RESTORE checks in Redis's order, since the order decides which error a client sees: the
//! options (syntax, IDLETIME, FREQ), then BUSYKEY, then the TTL, then the payload footer, then
//! the value. Its propagation follows Redis too: a relative TTL is rewritten as an absolute one
//! (`… <unix ms> … ABSTTL`) so replicas and the AOF expire the key at the same instant; a TTL
//! already in the past creates nothing, and propagates as DEL only if REPLACE deleted a key.

use crate::notify::class;
use bytes::Bytes;
use common::resp::Frame;

use crate::cmd::args::{int, is};
use crate::cmd::flags::*;
use crate::cmd::{cmd, CommandSpec};
use crate::error::{CmdResult, CommandError};
use crate::exec::Ctx;
use crate::persist::payload::{self, PayloadError};

/// The DUMP/RESTORE commands.
pub static COMMANDS: &[CommandSpec] = &[
    cmd("dump", 2, READONLY, (1, 1, 1), dump),
    cmd("restore", -4, WRITE | DENYOOM, (1, 1, 1), restore),
];

fn dump(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let compression = ctx.server.config.read().get("rdbcompression") != Some("no");
    Ok(match ctx.lookup_read(&args[1]) {
        Some(value) => Frame::Bulk(Bytes::from(payload::dump(value, compression))),
        None => Frame::Null,
    })
}

/// RESTORE's options after the payload.
#[derive(Default)]
struct Options {
    replace: bool,
    absttl: bool,
    idletime: Option<i64>,
    freq: Option<i64>,
}

fn options(args: &[Bytes]) -> Result<Options, CommandError> {
    let mut o = Options::default();
    let mut j = 4;
    while j < args.len() {
        let more = j + 1 < args.len();
        if is(&args[j], "replace") {
            o.replace = true;
        } else if is(&args[j], "absttl") {
            o.absttl = true;
        } else if is(&args[j], "idletime") && more && o.freq.is_none() {
            let idle = int(&args[j + 1])?;
            if idle < 0 {
                return Err(CommandError::err("Invalid IDLETIME value, must be >= 0"));
            }
            o.idletime = Some(idle);
            j += 1;
        } else if is(&args[j], "freq") && more && o.idletime.is_none() {
            let freq = int(&args[j + 1])?;
            if !(0..=255).contains(&freq) {
                return Err(CommandError::err("Invalid FREQ value, must be >= 0 and <= 255"));
            }
            o.freq = Some(freq);
            j += 1;
        } else {
            return Err(CommandError::Syntax);
        }
        j += 1;
    }
    Ok(o)
}

fn restore(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let key = &args[1];
    // IDLETIME and FREQ are eviction hints; no eviction policy tracks them yet.
    let opts = options(args)?;
    if !opts.replace && ctx.exists(key) {
        return Err(CommandError::raw("BUSYKEY Target key name already exists."));
    }
    let ttl = int(&args[2])?;
    if ttl < 0 {
        return Err(CommandError::err("Invalid TTL value, must be >= 0"));
    }
    let value = payload::restore(key, &args[3]).map_err(|e| match e {
        PayloadError::Footer => CommandError::err("DUMP payload version or checksum are wrong"),
        PayloadError::BadData(_) => CommandError::err("Bad data format"),
        PayloadError::Unsupported(what) => CommandError::err(format!("Bad data format: {what}")),
    })?;
    let deleted = opts.replace && ctx.delete_stored(key);
    // Redis adds the clock with C's (in practice wrapping) signed arithmetic.
    let when = if ttl != 0 && !opts.absttl { ttl.wrapping_add(ctx.now_ms) } else { ttl };
    if when != 0 && when <= ctx.now_ms && !ctx.replica {
        if deleted {
            ctx.propagate_as(vec![Bytes::from_static(b"DEL"), key.clone()]);
            ctx.dirty(1);
            ctx.notify(class::GENERIC, "del", key);
        }
        return Ok(Frame::ok());
    }
    ctx.set(key, value);
    use crate::persist::decode::AccessHint;
    let hint = match (opts.idletime, opts.freq) {
        (Some(idle), _) => Some(AccessHint::IdleSeconds(idle as u64)),
        (_, Some(freq)) => Some(AccessHint::Freq(freq as u8)),
        _ => None,
    };
    if let (Some(hint), Some((_, stamp))) = (hint, ctx.db_mut().keys.get_touch(key)) {
        hint.apply(stamp);
    }
    if when != 0 {
        ctx.db_mut().set_expiry(key, Some(when));
        if !opts.absttl {
            let mut argv = args.to_vec();
            argv[2] = Bytes::from(when.to_string());
            argv.push(Bytes::from_static(b"ABSTTL"));
            ctx.propagate_as(argv);
        }
    }
    ctx.dirty(1);
    ctx.notify(class::GENERIC, "restore", key);
    Ok(Frame::ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<Bytes> {
        list.iter().map(|a| Bytes::from(a.to_string())).collect()
    }

    #[test]
    fn options_follow_redis_rules() {
        let base = ["restore", "k", "0", "p"];
        let parse = |extra: &[&str]| {
            let mut a = base.to_vec();
            a.extend_from_slice(extra);
            options(&args(&a))
        };
        assert!(parse(&["REPLACE", "absttl"]).is_ok_and(|o| o.replace && o.absttl));
        assert_eq!(parse(&["FOO"]).err(), Some(CommandError::Syntax));
        assert_eq!(parse(&["IDLETIME"]).err(), Some(CommandError::Syntax));
        assert_eq!(parse(&["IDLETIME", "1", "FREQ", "2"]).err(), Some(CommandError::Syntax));
        assert_eq!(parse(&["FREQ", "x"]).err(), Some(CommandError::NotInteger));
        assert_eq!(
            parse(&["FREQ", "256"]).err(),
            Some(CommandError::err("Invalid FREQ value, must be >= 0 and <= 255"))
        );
        assert_eq!(
            parse(&["IDLETIME", "-1"]).err(),
            Some(CommandError::err("Invalid IDLETIME value, must be >= 0"))
        );
    }
}
