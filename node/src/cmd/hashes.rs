//! Hash commands, with Redis 7.0.15's replies, error texts and propagation.
//!
//! The reply order of small hashes is the listpack's insertion order (see `db::hash`), so
//! HGETALL, HKEYS, HVALS, HSCAN and HRANDFIELD of small hashes match Redis byte for byte.
//! HGETALL is a map (RESP3 `%`), HKEYS and HVALS are arrays, and HRANDFIELD … WITHVALUES is a
//! flat array in RESP2 but an array of pairs in RESP3, as `t_hash.c` replies.

use bytes::Bytes;
use common::fmt::{incr_float, parse_i64};
use common::longdouble::LongDouble;
use common::resp::{Frame, Protocol};

use crate::cmd::args::{cursor, int, is, name};
use crate::cmd::flags::*;
use crate::cmd::keys::{scan_dict, scan_opts, scan_reply, ScanOpts};
use crate::cmd::{cmd, CommandSpec};
use crate::db::hash::Hash;
use crate::error::{CmdResult, CommandError};
use crate::exec::{Ctx, Exec};
use crate::notify::class::HASH;

/// The hash commands.
pub static COMMANDS: &[CommandSpec] = &[
    cmd("hset", -4, WRITE | DENYOOM | FAST, (1, 1, 1), hset),
    cmd("hsetnx", 4, WRITE | DENYOOM | FAST, (1, 1, 1), hsetnx),
    cmd("hget", 3, READONLY | FAST, (1, 1, 1), hget),
    cmd("hmget", -3, READONLY | FAST, (1, 1, 1), hmget),
    cmd("hmset", -4, WRITE | DENYOOM | FAST, (1, 1, 1), hmset),
    cmd("hdel", -3, WRITE | FAST, (1, 1, 1), hdel),
    cmd("hlen", 2, READONLY | FAST, (1, 1, 1), hlen),
    cmd("hexists", 3, READONLY | FAST, (1, 1, 1), hexists),
    cmd("hkeys", 2, READONLY, (1, 1, 1), hkeys),
    cmd("hvals", 2, READONLY, (1, 1, 1), hvals),
    cmd("hgetall", 2, READONLY, (1, 1, 1), hgetall),
    cmd("hincrby", 4, WRITE | DENYOOM | FAST, (1, 1, 1), hincrby),
    cmd("hincrbyfloat", 4, WRITE | DENYOOM | FAST, (1, 1, 1), hincrbyfloat),
    cmd("hstrlen", 3, READONLY | FAST, (1, 1, 1), hstrlen),
    cmd("hscan", -3, READONLY, (1, 1, 1), hscan),
    cmd("hrandfield", -2, READONLY, (1, 1, 1), hrandfield),
];

/// HSET and HMSET: sets every pair, counting one change per pair (updates included, as
/// Redis does, so an HSET that rewrites the same value is still propagated).
fn set_pairs(ctx: &mut Exec<'_>, args: &[Bytes]) -> Result<i64, CommandError> {
    if args.len() % 2 == 1 {
        return Err(CommandError::WrongArity(name(args)));
    }
    let hash = ctx.hash_or_create(&args[1])?;
    let created = args[2..].chunks(2).filter(|pair| hash.set(&pair[0], &pair[1])).count();
    ctx.dirty((args.len() as u64 - 2) / 2);
    ctx.notify(HASH, "hset", &args[1]);
    Ok(created as i64)
}

fn hset(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    Ok(Frame::Integer(set_pairs(ctx, args)?))
}

fn hmset(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    set_pairs(ctx, args)?;
    Ok(Frame::ok())
}

fn hsetnx(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let hash = ctx.hash_or_create(&args[1])?;
    // A new key always lacks the field, so an empty hash is never left behind.
    if hash.contains(&args[2]) {
        return Ok(Frame::Integer(0));
    }
    hash.set(&args[2], &args[3]);
    ctx.dirty(1);
    ctx.notify(HASH, "hset", &args[1]);
    Ok(Frame::Integer(1))
}

fn hget(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    Ok(match ctx.read_hash(&args[1])?.and_then(|h| h.get(&args[2])) {
        Some(v) => Frame::bulk(v),
        None => Frame::Null,
    })
}

fn hmget(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let hash = ctx.read_hash(&args[1])?;
    let values = args[2..].iter().map(|f| match hash.and_then(|h| h.get(f)) {
        Some(v) => Frame::bulk(v),
        None => Frame::Null,
    });
    Ok(Frame::Array(values.collect()))
}

fn hdel(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    delete_fields(ctx, args)
}

/// HDEL's work, at the keyspace level.
fn delete_fields(ctx: &mut Exec<'_>, args: &[Bytes]) -> CmdResult {
    let Some(hash) = ctx.write_hash(&args[1])? else { return Ok(Frame::Integer(0)) };
    let deleted = args[2..].iter().filter(|f| hash.remove(f)).count();
    if deleted > 0 {
        ctx.notify(HASH, "hdel", &args[1]);
    }
    // Records `del` when it empties the hash, after `hdel` as in Redis.
    ctx.remove_if_empty(&args[1]);
    ctx.dirty(deleted as u64);
    Ok(Frame::Integer(deleted as i64))
}

fn hlen(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    Ok(Frame::Integer(ctx.read_hash(&args[1])?.map_or(0, |h| h.len() as i64)))
}

fn hexists(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    Ok(Frame::Integer(ctx.read_hash(&args[1])?.is_some_and(|h| h.contains(&args[2])) as i64))
}

fn hstrlen(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let len = ctx.read_hash(&args[1])?.and_then(|h| h.get(&args[2])).map_or(0, |v| v.len());
    Ok(Frame::Integer(len as i64))
}

fn hkeys(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let hash = ctx.read_hash(&args[1])?;
    Ok(Frame::Array(
        hash.map_or_else(Vec::new, |h| h.iter().map(|(f, _)| Frame::bulk(f)).collect()),
    ))
}

fn hvals(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let hash = ctx.read_hash(&args[1])?;
    Ok(Frame::Array(
        hash.map_or_else(Vec::new, |h| h.iter().map(|(_, v)| Frame::bulk(v)).collect()),
    ))
}

fn hgetall(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let hash = ctx.read_hash(&args[1])?;
    let pairs = hash.map_or_else(Vec::new, |h| {
        h.iter().map(|(f, v)| (Frame::bulk(f), Frame::bulk(v))).collect()
    });
    Ok(Frame::Map(pairs))
}

fn hincrby(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let incr = int(&args[3])?;
    let (key, field) = (&args[1], &args[2]);
    let current = match ctx.write_hash(key)?.and_then(|h| h.get(field)) {
        Some(v) => parse_i64(v).ok_or_else(|| CommandError::err("hash value is not an integer"))?,
        None => 0,
    };
    let next = current.checked_add(incr).ok_or(CommandError::Overflow)?;
    ctx.hash_or_create(key)?.set(field, itoa::Buffer::new().format(next).as_bytes());
    ctx.dirty(1);
    ctx.notify(HASH, "hincrby", key);
    Ok(Frame::Integer(next))
}

fn hincrbyfloat(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    incr_by_float(ctx, args)
}

/// HINCRBYFLOAT's work, at the keyspace level.
fn incr_by_float(ctx: &mut Exec<'_>, args: &[Bytes]) -> CmdResult {
    let (key, field, incr) = (&args[1], &args[2], &args[3]);
    // Operands are C long doubles in Redis; parse them the same way (hex, 1e400 …).
    let delta = LongDouble::parse(incr).ok_or(CommandError::NotFloat)?;
    if !delta.is_finite() {
        return Err(CommandError::err("value is NaN or Infinity"));
    }
    let current = ctx.write_hash(key)?.and_then(|h| h.get(field)).cloned();
    if current.as_ref().is_some_and(|v| LongDouble::parse(v).is_none()) {
        return Err(CommandError::err("hash value is not a float"));
    }
    let (_, text) = incr_float(current.as_deref().unwrap_or(b"0"), incr)
        .ok_or_else(|| CommandError::err("increment would produce NaN or Infinity"))?;
    ctx.hash_or_create(key)?.set(field, text.as_bytes());
    ctx.dirty(1);
    ctx.notify(HASH, "hincrbyfloat", key);
    // Replicas must not redo the float arithmetic: they get the result.
    let text = Bytes::from(text);
    ctx.propagate_as(vec![Bytes::from_static(b"HSET"), key.clone(), field.clone(), text.clone()]);
    Ok(Frame::Bulk(text))
}

fn hscan(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let start = cursor(&args[2])?;
    // Redis looks the key up before it parses the options: a missing key replies an empty
    // scan whatever follows.
    let Some(hash) = ctx.read_hash(&args[1])? else { return Ok(scan_reply(0, Vec::new())) };
    let opts = scan_opts(args, 3, false)?;
    let keep = |f: &[u8]| opts.pattern.as_ref().is_none_or(|p| common::glob::matches(p, f, false));
    let mut items = Vec::new();
    let next = match hash {
        // A listpack is returned whole, in one call, whatever the cursor.
        Hash::Listpack(pairs) => {
            for (f, v) in pairs.iter().filter(|(f, _)| keep(f)) {
                items.extend([Frame::bulk(f), Frame::bulk(v)]);
            }
            0
        }
        Hash::Table(d) => {
            // Redis counts COUNT against reply elements, two per field.
            let per_field = ScanOpts {
                pattern: opts.pattern.clone(),
                count: opts.count.div_ceil(2),
                type_name: None,
            };
            let (next, found) = scan_dict(d, start, &per_field);
            for (f, v) in found {
                items.extend([Frame::bulk(&f), Frame::bulk(&v)]);
            }
            next
        }
    };
    Ok(scan_reply(next, items))
}

/// HRANDFIELD's error for a count it cannot negate.
fn count_range_error() -> CommandError {
    CommandError::err(format!(
        "value is out of range, value must between {} and {}",
        -i64::MAX,
        i64::MAX
    ))
}

fn hrandfield(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    if args.len() == 2 {
        let mut rng = rand::thread_rng();
        return Ok(match ctx.read_hash(&args[1])?.and_then(|h| h.random_pair(&mut rng)) {
            Some((f, _)) => Frame::bulk(f),
            None => Frame::Null,
        });
    }
    let count = int(&args[2])?;
    if count == i64::MIN {
        return Err(count_range_error());
    }
    let with_values = match &args[3..] {
        [] => false,
        [opt] if is(opt, "withvalues") => true,
        _ => return Err(CommandError::Syntax),
    };
    // The reply doubles the count, so it must not overflow.
    if with_values && !(-i64::MAX / 2..=i64::MAX / 2).contains(&count) {
        return Err(CommandError::err("value is out of range"));
    }
    let resp3 = ctx.client.resp == Protocol::Resp3;
    let Some(hash) = ctx.read_hash(&args[1])? else { return Ok(Frame::Array(Vec::new())) };
    let mut rng = rand::thread_rng();
    let wanted = count.unsigned_abs() as usize;
    let pairs: Vec<(Frame, Frame)> = if count < 0 || count == 1 {
        // Negative: independent picks, repeats allowed. Grown as it goes rather than sized up
        // front: a huge count must not turn into one huge allocation request.
        let mut pairs = Vec::with_capacity(wanted.min(1024));
        for _ in 0..wanted {
            let (f, v) = hash.random_pair(&mut rng).expect("stored hashes are never empty");
            pairs.push((Frame::bulk(f), Frame::bulk(v)));
        }
        pairs
    } else {
        let picked = hash.random_distinct(wanted, &mut rng);
        picked.into_iter().map(|(f, v)| (Frame::bulk(&f), Frame::bulk(&v))).collect()
    };
    Ok(Frame::Array(match (with_values, resp3) {
        (false, _) => pairs.into_iter().map(|(f, _)| f).collect(),
        (true, false) => pairs.into_iter().flat_map(|(f, v)| [f, v]).collect(),
        (true, true) => pairs.into_iter().map(|(f, v)| Frame::Array(vec![f, v])).collect(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::{Keyspace, Value};
    use crate::exec::Propagated;

    fn argv(line: &str) -> Vec<Bytes> {
        line.split(' ').map(|a| Bytes::copy_from_slice(a.as_bytes())).collect()
    }

    #[test]
    fn hincrbyfloat_propagates_the_result_as_hset() {
        let mut ks = Keyspace::new(1);
        let mut exec = Exec::new(&mut ks, 0, 0, false);
        exec.propagating = true;
        let reply = incr_by_float(&mut exec, &argv("HINCRBYFLOAT h f 10.5")).expect("ok");
        assert_eq!(reply, Frame::bulk(b"10.5"));
        let reply = incr_by_float(&mut exec, &argv("HINCRBYFLOAT h f 0.1")).expect("ok");
        assert_eq!(reply, Frame::bulk(b"10.6"));
        assert_eq!(
            exec.rewrites.take().expect("rewritten"),
            [
                Propagated { db: 0, argv: argv("HSET h f 10.5") },
                Propagated { db: 0, argv: argv("HSET h f 10.6") },
            ]
        );
        // Errors change nothing and leave no empty hash behind.
        let err = incr_by_float(&mut exec, &argv("HINCRBYFLOAT n f inf")).expect_err("infinite");
        assert_eq!(err, CommandError::err("value is NaN or Infinity"));
        assert!(exec.rewrites.is_none());
        drop(exec);
        assert_eq!(ks.dirty, 2);
        assert!(!ks.dbs[0].keys.contains_key(b"n"));
    }

    #[test]
    fn hset_counts_every_pair_and_hdel_only_real_deletions() {
        let mut ks = Keyspace::new(1);
        let mut exec = Exec::new(&mut ks, 0, 0, false);
        exec.propagating = true;
        assert_eq!(set_pairs(&mut exec, &argv("HSET h a 1 b 2")), Ok(2));
        // Rewriting the same value still counts: Redis propagates it.
        assert_eq!(set_pairs(&mut exec, &argv("HSET h a 1")), Ok(0));
        assert_eq!(exec.ks.dirty, 3);
        assert_eq!(
            set_pairs(&mut exec, &argv("HSET h a 1 b")),
            Err(CommandError::WrongArity("hset".into()))
        );
        assert_eq!(delete_fields(&mut exec, &argv("HDEL h zz")), Ok(Frame::Integer(0)));
        assert_eq!(exec.ks.dirty, 3);
        assert_eq!(delete_fields(&mut exec, &argv("HDEL h a b zz")), Ok(Frame::Integer(2)));
        assert_eq!(exec.ks.dirty, 5);
        drop(exec);
        assert!(!ks.dbs[0].keys.contains_key(b"h"), "an emptied hash is deleted");
        ks.dbs[0].keys.insert(b"s", Value::string(b"x"));
        let mut exec = Exec::new(&mut ks, 0, 0, false);
        exec.propagating = true;
        assert_eq!(set_pairs(&mut exec, &argv("HSET s a 1")), Err(CommandError::WrongType));
    }

    #[test]
    fn hash_writes_record_their_events_before_the_del_of_an_emptied_key() {
        let mut ks = Keyspace::new(1);
        ks.notify = crate::notify::EventFlags::parse("KEA").expect("valid flags");
        let mut exec = Exec::new(&mut ks, 0, 0, false);
        set_pairs(&mut exec, &argv("HSET h a 1")).expect("ok");
        incr_by_float(&mut exec, &argv("HINCRBYFLOAT h b 1")).expect("ok");
        // Deleting nothing records nothing.
        delete_fields(&mut exec, &argv("HDEL h zz")).expect("ok");
        delete_fields(&mut exec, &argv("HDEL h a b")).expect("ok");
        let events = exec.ks.event_log();
        let h = &b"h"[..];
        assert_eq!(events, [("hset", h), ("hincrbyfloat", h), ("hdel", h), ("del", h)]);
    }
}
