//! Generic key commands, expiry, and the SCAN machinery the collection SCANs share.

use crate::notify::class;
use bytes::Bytes;
use common::resp::Frame;

use crate::cmd::args::{cursor, int, is};
use crate::cmd::flags::*;
use crate::cmd::{cmd, container, CommandSpec};
use crate::db::{access, Dict, Lru, Sds, StrEnc, Value};
use crate::error::{CmdResult, CommandError};
use crate::exec::Ctx;

/// The key commands.
pub static COMMANDS: &[CommandSpec] = &[
    cmd("del", -2, WRITE, (1, -1, 1), del),
    cmd("unlink", -2, WRITE | FAST, (1, -1, 1), unlink),
    cmd("exists", -2, READONLY | FAST, (1, -1, 1), exists),
    cmd("type", 2, READONLY | FAST, (1, 1, 1), type_),
    cmd("keys", 2, READONLY, (0, 0, 0), keys),
    cmd("scan", -2, READONLY, (0, 0, 0), scan),
    cmd("randomkey", 1, READONLY, (0, 0, 0), randomkey),
    cmd("rename", 3, WRITE, (1, 2, 1), rename),
    cmd("renamenx", 3, WRITE | FAST, (1, 2, 1), renamenx),
    cmd("move", 3, WRITE | FAST, (1, 1, 1), move_),
    cmd("copy", -3, WRITE | DENYOOM, (1, 2, 1), copy),
    cmd("touch", -2, READONLY | FAST, (1, -1, 1), touch),
    cmd("expire", -3, WRITE | FAST, (1, 1, 1), expire),
    cmd("pexpire", -3, WRITE | FAST, (1, 1, 1), pexpire),
    cmd("expireat", -3, WRITE | FAST, (1, 1, 1), expireat),
    cmd("pexpireat", -3, WRITE | FAST, (1, 1, 1), pexpireat),
    cmd("ttl", 2, READONLY | FAST, (1, 1, 1), ttl),
    cmd("pttl", 2, READONLY | FAST, (1, 1, 1), pttl),
    cmd("expiretime", 2, READONLY | FAST, (1, 1, 1), expiretime),
    cmd("pexpiretime", 2, READONLY | FAST, (1, 1, 1), pexpiretime),
    cmd("persist", 2, WRITE | FAST, (1, 1, 1), persist),
    container("object", -2, 0, OBJECT),
];

static OBJECT: &[CommandSpec] = &[
    cmd("encoding", 3, READONLY, (2, 2, 1), object_encoding),
    cmd("freq", 3, READONLY, (2, 2, 1), object_freq),
    cmd("idletime", 3, READONLY, (2, 2, 1), object_idletime),
    cmd("refcount", 3, READONLY, (2, 2, 1), object_refcount),
    cmd("help", 2, LOADING | STALE, (0, 0, 0), object_help),
];

fn del(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let lazy = ctx.server.config.read().settings.lazyfree_lazy_user_del;
    delete_keys(ctx, args, lazy)
}

/// DEL whose large values are freed in the background (see `crate::lazyfree`).
fn unlink(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    delete_keys(ctx, args, true)
}

fn delete_keys(ctx: &mut Ctx<'_>, args: &[Bytes], lazy: bool) -> CmdResult {
    let mut n = 0;
    for key in &args[1..] {
        // Only keys really deleted count as modified (a WATCH on a missing key survives).
        let Some(value) = ctx.take(key) else { continue };
        if lazy {
            ctx.server.lazyfree.free_value(value);
        }
        ctx.modified(key);
        ctx.notify(class::GENERIC, "del", key);
        n += 1;
    }
    ctx.dirty(n);
    Ok(Frame::Integer(n as i64))
}

fn exists(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let n = args[1..].iter().filter(|k| ctx.lookup_notouch(k).is_some()).count();
    Ok(Frame::Integer(n as i64))
}

/// Like EXISTS, but counts as an access (resets the keys' idle time).
fn touch(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let n = args[1..].iter().filter(|k| ctx.lookup_read(k).is_some()).count();
    Ok(Frame::Integer(n as i64))
}

fn type_(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let name = ctx.lookup_notouch(&args[1]).map_or("none", |v| v.type_name());
    Ok(Frame::simple(name))
}

fn keys(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let pattern = &args[1];
    let all = &pattern[..] == b"*";
    let now = ctx.now_ms;
    let db = ctx.db_ref();
    let found: Vec<Frame> = db
        .keys
        .keys()
        .filter(|k| (all || common::glob::matches(pattern, k, false)) && !db.is_expired(k, now))
        .map(|k| Frame::bulk(k))
        .collect();
    Ok(Frame::Array(found))
}

/// Options of SCAN, SSCAN, HSCAN and ZSCAN.
pub struct ScanOpts {
    /// MATCH pattern.
    pub pattern: Option<Bytes>,
    /// COUNT hint.
    pub count: usize,
    /// TYPE filter (SCAN only).
    pub type_name: Option<String>,
}

/// Parses `[MATCH p] [COUNT n] [TYPE t]` from `args[from..]`.
pub fn scan_opts(args: &[Bytes], from: usize, allow_type: bool) -> Result<ScanOpts, CommandError> {
    let mut opts = ScanOpts { pattern: None, count: 10, type_name: None };
    let mut i = from;
    while i < args.len() {
        if i + 1 >= args.len() {
            return Err(CommandError::Syntax);
        }
        let value = &args[i + 1];
        if is(&args[i], "match") {
            opts.pattern = (&value[..] != b"*").then(|| value.clone());
        } else if is(&args[i], "count") {
            let n = int(value)?;
            if n < 1 {
                return Err(CommandError::Syntax);
            }
            opts.count = n as usize;
        } else if allow_type && is(&args[i], "type") {
            opts.type_name = Some(String::from_utf8_lossy(value).to_ascii_lowercase());
        } else {
            return Err(CommandError::Syntax);
        }
        i += 2;
    }
    Ok(opts)
}

/// Runs Redis's SCAN loop over a dict: visit buckets from `cursor` until at least `count`
/// elements were collected (or ten times as many buckets visited), then filter by pattern.
/// Returns the next cursor and the (key, value) pairs kept.
pub fn scan_dict<V: Clone>(
    dict: &Dict<V>,
    mut cursor: u64,
    opts: &ScanOpts,
) -> (u64, Vec<(Sds, V)>) {
    let mut found = Vec::new();
    let mut budget = opts.count.saturating_mul(10);
    loop {
        cursor = dict.scan(cursor, |k, v| found.push((k.clone(), v.clone())));
        budget = budget.saturating_sub(1);
        if cursor == 0 || budget == 0 || found.len() >= opts.count {
            break;
        }
    }
    if let Some(p) = &opts.pattern {
        found.retain(|(k, _)| common::glob::matches(p, k, false));
    }
    (cursor, found)
}

/// The SCAN-family reply: `[cursor, [items…]]`.
pub fn scan_reply(cursor: u64, items: Vec<Frame>) -> Frame {
    Frame::Array(vec![Frame::Bulk(Bytes::from(cursor.to_string())), Frame::Array(items)])
}

fn scan(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let start = cursor(&args[1])?;
    let opts = scan_opts(args, 2, true)?;
    let mut found = Vec::new();
    let mut cursor = start;
    let mut budget = opts.count.saturating_mul(10);
    let db = ctx.db_ref();
    loop {
        cursor = db.keys.scan(cursor, |k, _| found.push(k.clone()));
        budget = budget.saturating_sub(1);
        if cursor == 0 || budget == 0 || found.len() >= opts.count {
            break;
        }
    }
    let mut out = Vec::new();
    for key in found {
        if opts.pattern.as_ref().is_some_and(|p| !common::glob::matches(p, &key, false)) {
            continue;
        }
        // Expired keys are deleted on the way, as Redis does, and not returned.
        if ctx.expire_if_needed(&key) {
            continue;
        }
        if let Some(t) = &opts.type_name {
            if ctx.db_ref().keys.get(&key).map(|v| v.type_name()) != Some(t.as_str()) {
                continue;
            }
        }
        out.push(Frame::bulk(&key));
    }
    Ok(scan_reply(cursor, out))
}

fn randomkey(ctx: &mut Ctx<'_>, _: &[Bytes]) -> CmdResult {
    let mut rng = rand::thread_rng();
    // Bounded tries: a database full of expired keys must not loop forever.
    for _ in 0..100 {
        let Some((key, _)) = ctx.db_ref().keys.fair_random(&mut rng) else {
            return Ok(Frame::Null);
        };
        let key = key.clone();
        if !ctx.expire_if_needed(&key) {
            return Ok(Frame::bulk(&key));
        }
    }
    let any = ctx.db_ref().keys.fair_random(&mut rng).map(|(k, _)| k.clone());
    Ok(any.map(|k| Frame::bulk(&k)).unwrap_or(Frame::Null))
}

fn rename_generic(ctx: &mut Ctx<'_>, args: &[Bytes], nx: bool) -> CmdResult {
    let (src, dst) = (&args[1], &args[2]);
    if ctx.lookup_write(src).is_none() {
        return Err(CommandError::NoSuchKey);
    }
    if src == dst {
        return Ok(if nx { Frame::Integer(0) } else { Frame::ok() });
    }
    // Looked up even without NX, as Redis does: an expired destination is deleted as expired.
    if ctx.exists(dst) && nx {
        return Ok(Frame::Integer(0));
    }
    let db = ctx.db_mut();
    let expiry = db.expiry(src);
    let value = db.remove(src).expect("looked up above");
    db.remove(dst);
    db.keys.insert(dst, value);
    db.set_expiry(dst, expiry);
    ctx.dirty(1);
    // Redis deletes the destination and adds it anew: `new` even when it existed.
    ctx.notify(class::NEW, "new", dst);
    ctx.notify(class::GENERIC, "rename_from", src);
    ctx.notify(class::GENERIC, "rename_to", dst);
    Ok(if nx { Frame::Integer(1) } else { Frame::ok() })
}

fn rename(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    rename_generic(ctx, args, false)
}

fn renamenx(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    rename_generic(ctx, args, true)
}

fn target_db(ctx: &Ctx<'_>, arg: &[u8]) -> Result<usize, CommandError> {
    let db = crate::cmd::args::int32(arg)?;
    if db < 0 || db as usize >= ctx.ks.dbs.len() {
        return Err(CommandError::err("DB index is out of range"));
    }
    Ok(db as usize)
}

/// Deletes `key` of database `db` if its time ran out, as a lookup there would (stats, the
/// `expired` event, and a DEL for replicas and the AOF, which would otherwise still hold it).
fn expire_in(ctx: &mut Ctx<'_>, db: usize, key: &[u8]) {
    let current = std::mem::replace(&mut ctx.exec.db, db);
    ctx.expire_if_needed(key);
    ctx.exec.db = current;
}

fn move_(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let key = &args[1];
    let dst = target_db(ctx, &args[2])?;
    if dst == ctx.db {
        return Err(CommandError::err("source and destination objects are the same"));
    }
    if ctx.lookup_write(key).is_none() {
        return Ok(Frame::Integer(0));
    }
    expire_in(ctx, dst, key);
    let ks = &mut *ctx.exec.ks;
    if ks.dbs[dst].keys.contains_key(key) {
        return Ok(Frame::Integer(0));
    }
    let src = ctx.exec.db;
    let expiry = ks.dbs[src].expiry(key);
    let value = ks.dbs[src].remove(key).expect("looked up above");
    ks.dbs[dst].keys.insert(key, value);
    ks.dbs[dst].set_expiry(key, expiry);
    ks.signal_modified_key(dst, key);
    ks.blocking.signal(dst, key);
    ctx.modified(key);
    ctx.dirty(1);
    ctx.notify_in(dst, class::NEW, "new", key);
    ctx.notify(class::GENERIC, "move_from", key);
    ctx.notify_in(dst, class::GENERIC, "move_to", key);
    Ok(Frame::Integer(1))
}

fn copy(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let (src, dst) = (&args[1], &args[2]);
    let mut target = ctx.db;
    let mut replace = false;
    let mut i = 3;
    while i < args.len() {
        if is(&args[i], "replace") {
            replace = true;
        } else if is(&args[i], "db") && i + 1 < args.len() {
            target = target_db(ctx, &args[i + 1])?;
            i += 1;
        } else {
            return Err(CommandError::Syntax);
        }
        i += 1;
    }
    if target == ctx.db && src == dst {
        return Err(CommandError::err("source and destination objects are the same"));
    }
    // The source is read as Redis reads it (a keyspace hit or miss).
    let Some(mut value) = ctx.lookup_read(src).cloned() else { return Ok(Frame::Integer(0)) };
    // A copy is a new object: a shared small integer becomes an unshared int.
    if let Value::Str { bytes, enc: enc @ StrEnc::Auto } = &mut value {
        if bytes.len() <= 20 && common::fmt::parse_i64(bytes).is_some() {
            *enc = StrEnc::Int;
        }
    }
    let expiry = ctx.db_ref().expiry(src);
    expire_in(ctx, target, dst);
    let ks = &mut *ctx.exec.ks;
    if ks.dbs[target].keys.contains_key(dst) {
        if !replace {
            return Ok(Frame::Integer(0));
        }
        ks.dbs[target].remove(dst);
    }
    ks.dbs[target].keys.insert(dst, value);
    ks.dbs[target].set_expiry(dst, expiry);
    if target != ctx.exec.db {
        ks.signal_modified_key(target, dst);
        ks.blocking.signal(target, dst);
    } else {
        ctx.modified(dst);
    }
    ctx.dirty(1);
    ctx.notify_in(target, class::NEW, "new", dst);
    ctx.notify_in(target, class::GENERIC, "copy_to", dst);
    Ok(Frame::Integer(1))
}

/// EXPIRE, PEXPIRE, EXPIREAT, PEXPIREAT with NX/XX/GT/LT, as Redis 7.0's `expireGenericCommand`.
fn expire_generic(ctx: &mut Ctx<'_>, args: &[Bytes], relative: bool, seconds: bool) -> CmdResult {
    let name = crate::cmd::args::name(args);
    let (mut nx, mut xx, mut gt, mut lt) = (false, false, false, false);
    for opt in &args[3..] {
        if is(opt, "nx") {
            nx = true;
        } else if is(opt, "xx") {
            xx = true;
        } else if is(opt, "gt") {
            gt = true;
        } else if is(opt, "lt") {
            lt = true;
        } else {
            let mut text = b"ERR Unsupported option ".to_vec();
            text.extend_from_slice(crate::dispatch::c_str(opt));
            return Err(CommandError::Bytes(Bytes::from(text)));
        }
    }
    if nx && (xx || gt || lt) {
        return Err(CommandError::err(
            "NX and XX, GT or LT options at the same time are not compatible",
        ));
    }
    if gt && lt {
        return Err(CommandError::err("GT and LT options at the same time are not compatible"));
    }
    let mut when = int(&args[2])?;
    let invalid = || CommandError::err(format!("invalid expire time in '{name}' command"));
    if seconds {
        when = when.checked_mul(1000).ok_or_else(invalid)?;
    }
    if relative {
        when = when.checked_add(ctx.now_ms).ok_or_else(invalid)?;
    }
    let key = &args[1];
    if ctx.lookup_write(key).is_none() {
        return Ok(Frame::Integer(0));
    }
    let current = ctx.db_ref().expiry(key);
    let refuse = match current {
        Some(cur) => nx || (gt && when <= cur) || (lt && when >= cur),
        None => xx || gt,
    };
    if refuse {
        return Ok(Frame::Integer(0));
    }
    if when <= ctx.now_ms {
        ctx.delete(key);
        ctx.dirty(1);
        ctx.notify(class::GENERIC, "del", key);
        ctx.propagate_as(vec![Bytes::from_static(b"DEL"), key.clone()]);
        return Ok(Frame::Integer(1));
    }
    ctx.db_mut().set_expiry(key, Some(when));
    ctx.dirty(1);
    ctx.notify(class::GENERIC, "expire", key);
    if relative || seconds {
        let mut argv =
            vec![Bytes::from_static(b"PEXPIREAT"), key.clone(), Bytes::from(when.to_string())];
        argv.extend(args[3..].iter().cloned());
        ctx.propagate_as(argv);
    }
    Ok(Frame::Integer(1))
}

fn expire(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    expire_generic(ctx, args, true, true)
}

fn pexpire(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    expire_generic(ctx, args, true, false)
}

fn expireat(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    expire_generic(ctx, args, false, true)
}

fn pexpireat(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    expire_generic(ctx, args, false, false)
}

/// -2 if the key does not exist, -1 if it has no TTL, else its expiry (unix ms).
fn expiry_of(ctx: &mut Ctx<'_>, key: &[u8]) -> Result<i64, i64> {
    if ctx.lookup_notouch(key).is_none() {
        return Err(-2);
    }
    ctx.db_ref().expiry(key).ok_or(-1)
}

fn ttl(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    Ok(Frame::Integer(match expiry_of(ctx, &args[1]) {
        Ok(at) => seconds_rounded((at - ctx.now_ms).max(0)),
        Err(code) => code,
    }))
}

fn pttl(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    Ok(Frame::Integer(match expiry_of(ctx, &args[1]) {
        Ok(at) => (at - ctx.now_ms).max(0),
        Err(code) => code,
    }))
}

fn expiretime(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    Ok(Frame::Integer(match expiry_of(ctx, &args[1]) {
        Ok(at) => seconds_rounded(at),
        Err(code) => code,
    }))
}

/// Milliseconds to the nearest second, as Redis rounds them (`(ms + 500) / 1000`), without
/// overflowing for expiries near the largest time.
fn seconds_rounded(ms: i64) -> i64 {
    ((i128::from(ms) + 500) / 1000) as i64
}

fn pexpiretime(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    Ok(Frame::Integer(expiry_of(ctx, &args[1]).unwrap_or_else(|code| code)))
}

fn persist(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let key = &args[1];
    if ctx.lookup_write(key).is_none() || ctx.db_ref().expiry(key).is_none() {
        return Ok(Frame::Integer(0));
    }
    ctx.db_mut().set_expiry(key, None);
    ctx.dirty(1);
    ctx.notify(class::GENERIC, "persist", key);
    Ok(Frame::Integer(1))
}

fn object_encoding(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    Ok(match ctx.lookup_quiet(&args[2]) {
        Some(v) => Frame::bulk_static(v.encoding()),
        None => Frame::Null,
    })
}

fn object_freq(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    if ctx.lookup_quiet(&args[2]).is_none() {
        return Ok(Frame::Null);
    }
    if !access::is_lfu() {
        return Err(CommandError::err("An LFU maxmemory policy is not selected, access frequency not tracked. Please note that when switching between policies at runtime LRU and LFU data will take some time to adjust."));
    }
    let stamp = ctx.db_ref().keys.meta(&args[2]).expect("looked up above");
    Ok(Frame::Integer(stamp.lfu_count() as i64))
}

fn object_idletime(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    if ctx.lookup_quiet(&args[2]).is_none() {
        return Ok(Frame::Null);
    }
    if access::is_lfu() {
        return Err(CommandError::err("An LFU maxmemory policy is selected, idle time not tracked. Please note that when switching between policies at runtime LRU and LFU data will take some time to adjust."));
    }
    let stamp = ctx.db_ref().keys.meta(&args[2]).expect("looked up above");
    Ok(Frame::Integer((stamp.idle_ms(Lru::now()) / 1000) as i64))
}

fn object_refcount(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let unshared = shares_no_integers(&ctx.ks.eviction.limits);
    Ok(match ctx.lookup_quiet(&args[2]) {
        // Redis shares the integers 0..9999 (refcount INT_MAX) unless each key needs its own
        // access stamp: under maxmemory with an LRU or LFU policy.
        Some(Value::Str { bytes, enc: StrEnc::Auto })
            if common::fmt::parse_i64(bytes).is_some_and(|n| (0..10000).contains(&n))
                && !unshared =>
        {
            Frame::Integer(i32::MAX as i64)
        }
        Some(_) => Frame::Integer(1),
        None => Frame::Null,
    })
}

/// Redis's `MAXMEMORY_FLAG_NO_SHARED_INTEGERS`: a shared integer would share its stamp too.
fn shares_no_integers(limits: &crate::evict::Limits) -> bool {
    limits.maxmemory != 0 && limits.policy.ranks_by_access()
}

fn object_help(_: &mut Ctx<'_>, _: &[Bytes]) -> CmdResult {
    Ok(super::help::reply(
        "OBJECT",
        &[
            ("ENCODING <key>", "How the value is represented in memory."),
            ("FREQ <key>", "Access frequency (needs an LFU maxmemory policy)."),
            ("IDLETIME <key>", "Seconds since the key was last accessed."),
            ("REFCOUNT <key>", "How many references the value has."),
        ],
    ))
}
