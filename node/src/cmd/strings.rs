//! String commands.

use crate::notify::class;
use bytes::Bytes;
use common::fmt::parse_i64;
use common::longdouble::LongDouble;
use common::resp::Frame;

use crate::cmd::args::{int, is};
use crate::cmd::flags::*;
use crate::cmd::{cmd, CommandSpec};
use crate::db::{Sds, StrEnc, Value};
use crate::error::{CmdResult, CommandError};
use crate::exec::{Ctx, Exec};

/// The string commands.
pub static COMMANDS: &[CommandSpec] = &[
    cmd("get", 2, READONLY | FAST, (1, 1, 1), get),
    cmd("set", -3, WRITE | DENYOOM, (1, 1, 1), set),
    cmd("setnx", 3, WRITE | DENYOOM | FAST, (1, 1, 1), setnx),
    cmd("setex", 4, WRITE | DENYOOM, (1, 1, 1), setex),
    cmd("psetex", 4, WRITE | DENYOOM, (1, 1, 1), psetex),
    cmd("getset", 3, WRITE | DENYOOM | FAST, (1, 1, 1), getset),
    cmd("getdel", 2, WRITE | FAST, (1, 1, 1), getdel),
    cmd("getex", -2, WRITE | FAST, (1, 1, 1), getex),
    cmd("mget", -2, READONLY | FAST, (1, -1, 1), mget),
    cmd("mset", -3, WRITE | DENYOOM, (1, -1, 2), mset),
    cmd("msetnx", -3, WRITE | DENYOOM, (1, -1, 2), msetnx),
    cmd("append", 3, WRITE | DENYOOM | FAST, (1, 1, 1), append),
    cmd("strlen", 2, READONLY | FAST, (1, 1, 1), strlen),
    cmd("getrange", 4, READONLY, (1, 1, 1), getrange),
    cmd("substr", 4, READONLY, (1, 1, 1), getrange),
    cmd("setrange", 4, WRITE | DENYOOM, (1, 1, 1), setrange),
    cmd("incr", 2, WRITE | DENYOOM | FAST, (1, 1, 1), incr),
    cmd("decr", 2, WRITE | DENYOOM | FAST, (1, 1, 1), decr),
    cmd("incrby", 3, WRITE | DENYOOM | FAST, (1, 1, 1), incrby),
    cmd("decrby", 3, WRITE | DENYOOM | FAST, (1, 1, 1), decrby),
    cmd("incrbyfloat", 3, WRITE | DENYOOM | FAST, (1, 1, 1), incrbyfloat),
];

/// The largest string Redis allows (`proto-max-bulk-len` default), for APPEND and SETRANGE.
const MAX_STRING: usize = 512 * 1024 * 1024;

fn get(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    Ok(match ctx.read_str(&args[1])? {
        Some(v) => Frame::bulk(v),
        None => Frame::Null,
    })
}

/// The expiry options shared by SET and GETEX.
#[derive(Clone, Copy, PartialEq)]
enum Ttl {
    None,
    Keep,
    Persist,
    /// Absolute unix ms.
    At(i64),
}

/// Which expiry option `arg` is, if any.
fn expiry_option(arg: &[u8]) -> Option<&'static str> {
    ["ex", "px", "exat", "pxat"].into_iter().find(|o| is(arg, o))
}

/// Parses `EX|PX|EXAT|PXAT <n>` at `args[i]`; `unit` tells which. Errors as Redis words them.
fn expiry_arg(
    now_ms: i64,
    option: &[u8],
    value: &[u8],
    command: &str,
) -> Result<i64, CommandError> {
    let n = int(value)?;
    let invalid = || CommandError::err(format!("invalid expire time in '{command}' command"));
    if n <= 0 {
        return Err(invalid());
    }
    let at = if is(option, "ex") {
        n.checked_mul(1000).and_then(|ms| ms.checked_add(now_ms))
    } else if is(option, "px") {
        n.checked_add(now_ms)
    } else if is(option, "exat") {
        n.checked_mul(1000)
    } else {
        Some(n)
    };
    at.ok_or_else(invalid)
}

fn set(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let (mut nx, mut xx, mut get, mut keep) = (false, false, false, false);
    // As in Redis, every option is parsed (syntax errors first) before the expiry's value is
    // checked, and a repeated expiry option counts only with its last value.
    let mut expiry: Option<(&Bytes, &Bytes)> = None;
    let mut i = 3;
    while i < args.len() {
        let a = &args[i];
        let has_next = i + 1 < args.len();
        if is(a, "nx") && !xx {
            nx = true;
        } else if is(a, "xx") && !nx {
            xx = true;
        } else if is(a, "get") {
            get = true;
        } else if is(a, "keepttl") && expiry.is_none() {
            keep = true;
        } else if expiry_option(a)
            .is_some_and(|kind| !keep && expiry.is_none_or(|(o, _)| is(o, kind)) && has_next)
        {
            expiry = Some((a, &args[i + 1]));
            i += 1;
        } else {
            return Err(CommandError::Syntax);
        }
        i += 1;
    }
    let ttl = match expiry {
        Some((option, value)) => Ttl::At(expiry_arg(ctx.now_ms, option, value, "set")?),
        None if keep => Ttl::Keep,
        None => Ttl::None,
    };
    let key = &args[1];
    let old = if get {
        match ctx.lookup_read(key) {
            None => None,
            Some(Value::Str { bytes, .. }) => Some(Frame::bulk(bytes)),
            Some(_) => return Err(CommandError::WrongType),
        }
    } else {
        None
    };
    let exists = ctx.exists(key);
    if (nx && exists) || (xx && !exists) {
        return Ok(if get { old.unwrap_or(Frame::Null) } else { Frame::Null });
    }
    write_string(ctx, key, &args[2], ttl);
    // Redis propagates SET with a relative or absolute expiry as `SET key value PXAT ms`, and
    // drops GET (it does not change the dataset).
    match ttl {
        Ttl::At(at) => ctx.propagate_as(vec![
            Bytes::from_static(b"SET"),
            key.clone(),
            args[2].clone(),
            Bytes::from_static(b"PXAT"),
            Bytes::from(at.to_string()),
        ]),
        _ if get => {
            let argv = args.iter().filter(|a| !is(a, "get")).cloned().collect();
            ctx.propagate_as(argv);
        }
        _ => {}
    }
    Ok(if get { old.unwrap_or(Frame::Null) } else { Frame::ok() })
}

/// Stores a string with the given TTL handling and counts the change.
fn write_string(exec: &mut Exec<'_>, key: &[u8], value: &[u8], ttl: Ttl) {
    let v = Value::string(value);
    match ttl {
        Ttl::Keep => exec.set_keep_ttl(key, v),
        Ttl::At(at) => {
            exec.set(key, v);
            exec.db_mut().set_expiry(key, Some(at));
        }
        Ttl::None | Ttl::Persist => exec.set(key, v),
    }
    exec.dirty(1);
    exec.notify(class::STRING, "set", key);
    if let Ttl::At(_) = ttl {
        exec.notify(class::GENERIC, "expire", key);
    }
}

fn setnx(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    if ctx.exists(&args[1]) {
        return Ok(Frame::Integer(0));
    }
    write_string(ctx, &args[1], &args[2], Ttl::None);
    Ok(Frame::Integer(1))
}

fn setex_generic(ctx: &mut Ctx<'_>, args: &[Bytes], unit: &str, name: &str) -> CmdResult {
    let at = expiry_arg(ctx.now_ms, unit.as_bytes(), &args[2], name)?;
    write_string(ctx, &args[1], &args[3], Ttl::At(at));
    ctx.propagate_as(vec![
        Bytes::from_static(b"SET"),
        args[1].clone(),
        args[3].clone(),
        Bytes::from_static(b"PXAT"),
        Bytes::from(at.to_string()),
    ]);
    Ok(Frame::ok())
}

fn setex(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    setex_generic(ctx, args, "ex", "setex")
}

fn psetex(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    setex_generic(ctx, args, "px", "psetex")
}

fn getset(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let old = ctx.read_str(&args[1])?.map(|v| Frame::bulk(v)).unwrap_or(Frame::Null);
    write_string(ctx, &args[1], &args[2], Ttl::None);
    Ok(old)
}

fn getdel(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let Some(old) = ctx.read_str(&args[1])?.map(|v| Frame::bulk(v)) else { return Ok(Frame::Null) };
    ctx.delete(&args[1]);
    ctx.dirty(1);
    ctx.notify(class::GENERIC, "del", &args[1]);
    ctx.propagate_as(vec![Bytes::from_static(b"DEL"), args[1].clone()]);
    Ok(old)
}

fn getex(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let mut persist = false;
    let mut expiry: Option<(&Bytes, &Bytes)> = None;
    let mut i = 2;
    while i < args.len() {
        let a = &args[i];
        if expiry_option(a).is_some_and(|kind| {
            !persist && expiry.is_none_or(|(o, _)| is(o, kind)) && i + 1 < args.len()
        }) {
            expiry = Some((a, &args[i + 1]));
            i += 1;
        } else if is(a, "persist") && expiry.is_none() {
            persist = true;
        } else {
            return Err(CommandError::Syntax);
        }
        i += 1;
    }
    let key = &args[1];
    // Redis's order: a missing key answers nil and a wrong type WRONGTYPE before the expiry's
    // value is checked.
    let Some(value) = ctx.read_str(key)?.map(|v| Frame::bulk(v)) else { return Ok(Frame::Null) };
    let ttl = match expiry {
        Some((option, value)) => Ttl::At(expiry_arg(ctx.now_ms, option, value, "getex")?),
        None if persist => Ttl::Persist,
        None => Ttl::None,
    };
    match ttl {
        Ttl::At(at) if at <= ctx.now_ms => {
            ctx.delete(key);
            ctx.dirty(1);
            ctx.notify(class::GENERIC, "del", key);
            ctx.propagate_as(vec![Bytes::from_static(b"DEL"), key.clone()]);
        }
        Ttl::At(at) => {
            ctx.db_mut().set_expiry(key, Some(at));
            ctx.dirty(1);
            ctx.notify(class::GENERIC, "expire", key);
            ctx.propagate_as(vec![
                Bytes::from_static(b"PEXPIREAT"),
                key.clone(),
                Bytes::from(at.to_string()),
            ]);
        }
        Ttl::Persist if ctx.db_ref().expiry(key).is_some() => {
            ctx.db_mut().set_expiry(key, None);
            ctx.dirty(1);
            ctx.notify(class::GENERIC, "persist", key);
            ctx.propagate_as(vec![Bytes::from_static(b"PERSIST"), key.clone()]);
        }
        _ => {}
    }
    Ok(value)
}

fn mget(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let mut out = Vec::with_capacity(args.len() - 1);
    for key in &args[1..] {
        out.push(match ctx.lookup_read(key) {
            Some(Value::Str { bytes, .. }) => Frame::bulk(bytes),
            _ => Frame::Null,
        });
    }
    Ok(Frame::Array(out))
}

fn mset(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    if args.len().is_multiple_of(2) {
        return Err(CommandError::WrongArity(crate::cmd::args::name(args)));
    }
    for pair in args[1..].chunks(2) {
        write_string(ctx, &pair[0], &pair[1], Ttl::None);
    }
    Ok(Frame::ok())
}

fn msetnx(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    if args.len().is_multiple_of(2) {
        return Err(CommandError::WrongArity(crate::cmd::args::name(args)));
    }
    if args[1..].chunks(2).any(|pair| ctx.exists(&pair[0])) {
        return Ok(Frame::Integer(0));
    }
    for pair in args[1..].chunks(2) {
        write_string(ctx, &pair[0], &pair[1], Ttl::None);
    }
    Ok(Frame::Integer(1))
}

/// Opens the existing string at `key` for in-place modification (which makes it `raw`), or
/// creates it with `init` (APPEND to a missing key stores its argument like SET does; SETRANGE
/// builds a raw string).
pub(crate) fn string_mut<'e>(
    exec: &'e mut Exec<'_>,
    key: &[u8],
    init: StrEnc,
) -> Result<&'e mut Sds, CommandError> {
    if exec.lookup_write(key).is_none() {
        exec.set(key, Value::string_with(b"", init));
    } else if let Some(Value::Str { enc, .. }) = exec.db_mut().keys.get_mut(key) {
        *enc = StrEnc::Raw;
    }
    match exec.db_mut().keys.get_mut(key) {
        Some(Value::Str { bytes, .. }) => Ok(bytes),
        Some(_) => Err(CommandError::WrongType),
        None => unreachable!("created above"),
    }
}

fn append(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let current = ctx.peek_str(&args[1])?.map_or(0, |v| v.len());
    if current + args[2].len() > MAX_STRING {
        return Err(CommandError::err("string exceeds maximum allowed size (proto-max-bulk-len)"));
    }
    let s = string_mut(ctx, &args[1], StrEnc::Auto)?;
    s.extend_from_slice(&args[2]);
    let len = s.len();
    ctx.dirty(1);
    ctx.notify(class::STRING, "append", &args[1]);
    Ok(Frame::Integer(len as i64))
}

fn strlen(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    Ok(Frame::Integer(ctx.read_str(&args[1])?.map_or(0, |v| v.len() as i64)))
}

fn getrange(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let (start, end) = (int(&args[2])?, int(&args[3])?);
    let Some(s) = ctx.read_str(&args[1])? else { return Ok(Frame::bulk(b"")) };
    let len = s.len() as i64;
    // Redis: both negative and start > end → empty; negative indexes count from the end.
    if start < 0 && end < 0 && start > end {
        return Ok(Frame::bulk(b""));
    }
    let start = if start < 0 { (len + start).max(0) } else { start };
    let end = if end < 0 { (len + end).max(0) } else { end };
    let end = end.min(len - 1);
    if start > end || len == 0 {
        return Ok(Frame::bulk(b""));
    }
    Ok(Frame::bulk(&s[start as usize..=end as usize]))
}

fn setrange(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let offset = int(&args[2])?;
    if offset < 0 {
        return Err(CommandError::err("offset is out of range"));
    }
    let value = &args[3];
    let current = ctx.peek_str(&args[1])?.map(|s| s.len());
    if value.is_empty() {
        // Nothing to write: report the length without creating the key.
        return Ok(Frame::Integer(current.unwrap_or(0) as i64));
    }
    if offset as usize + value.len() > MAX_STRING {
        return Err(CommandError::err("string exceeds maximum allowed size (proto-max-bulk-len)"));
    }
    let s = string_mut(ctx, &args[1], StrEnc::Raw)?;
    let end = offset as usize + value.len();
    if s.len() < end {
        s.resize(end, 0);
    }
    s[offset as usize..end].copy_from_slice(value);
    let len = s.len();
    ctx.dirty(1);
    ctx.notify(class::STRING, "setrange", &args[1]);
    Ok(Frame::Integer(len as i64))
}

/// INCR and friends: the number is rewritten in place (one lookup, and no allocation for the
/// 16 bytes a string keeps inline), keeping the key's TTL.
fn incr_by(ctx: &mut Ctx<'_>, key: &[u8], delta: i64) -> CmdResult {
    let mut digits = itoa::Buffer::new();
    let next = match ctx.lookup_write(key) {
        None => {
            let next = delta;
            ctx.set_keep_ttl(key, Value::string(digits.format(next).as_bytes()));
            next
        }
        Some(Value::Str { bytes, enc }) => {
            let current = parse_i64(bytes).ok_or(CommandError::NotInteger)?;
            let next = current.checked_add(delta).ok_or(CommandError::Overflow)?;
            bytes.clear();
            bytes.extend_from_slice(digits.format(next).as_bytes());
            *enc = StrEnc::Auto;
            next
        }
        Some(_) => return Err(CommandError::WrongType),
    };
    ctx.dirty(1);
    ctx.notify(class::STRING, "incrby", key);
    Ok(Frame::Integer(next))
}

fn incr(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    incr_by(ctx, &args[1], 1)
}

fn decr(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    incr_by(ctx, &args[1], -1)
}

fn incrby(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let delta = int(&args[2])?;
    incr_by(ctx, &args[1], delta)
}

fn decrby(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let delta = int(&args[2])?;
    if delta == i64::MIN {
        return Err(CommandError::err("decrement would overflow"));
    }
    incr_by(ctx, &args[1], -delta)
}

fn incrbyfloat(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let current = match ctx.peek_str(&args[1])? {
        None => Sds::from_slice(b"0"),
        Some(v) => v.clone(),
    };
    // Operands are C long doubles in Redis; parse them the same way (hex, 1e400 …).
    if LongDouble::parse(&current).is_none() || LongDouble::parse(&args[2]).is_none() {
        return Err(CommandError::NotFloat);
    }
    let (_, text) = common::fmt::incr_float(&current, &args[2])
        .ok_or_else(|| CommandError::err("increment would produce NaN or Infinity"))?;
    ctx.set_keep_ttl(&args[1], Value::string_with(text.as_bytes(), StrEnc::Embstr));
    ctx.dirty(1);
    ctx.notify(class::STRING, "incrbyfloat", &args[1]);
    ctx.propagate_as(vec![
        Bytes::from_static(b"SET"),
        args[1].clone(),
        Bytes::from(text.clone()),
        Bytes::from_static(b"KEEPTTL"),
    ]);
    Ok(Frame::Bulk(Bytes::from(text)))
}
