//! Set commands, with Redis 7.0.15's replies, error texts and propagation.
//!
//! Reply types follow `t_set.c`: SMEMBERS (which is SINTER of one key in 7.0), SINTER, SUNION,
//! SDIFF and SPOP with a count reply a RESP3 set; SRANDMEMBER and SMISMEMBER reply arrays.
//! The set algebra and its result encodings live in `db::set`; this file adds key lookup in
//! Redis's order (the first key of another type fails the command, missing keys are empty
//! sets), the STORE forms, and propagation: SPOP is replicated as one `SREM` per member, or as
//! `DEL` when it takes the whole set.

use bytes::Bytes;
use common::resp::Frame;
use rand::Rng;

use crate::cmd::args::{cursor, int, is};
use crate::cmd::flags::*;
use crate::cmd::keys::{scan_dict, scan_opts, scan_reply};
use crate::cmd::{cmd, CommandSpec};
use crate::db::set::{self, Set};
use crate::db::{Db, Value};
use crate::error::{CmdResult, CommandError};
use crate::exec::{Ctx, Exec};
use crate::notify::class::{GENERIC, SET};

/// The set commands.
pub static COMMANDS: &[CommandSpec] = &[
    cmd("sadd", -3, WRITE | DENYOOM | FAST, (1, 1, 1), sadd),
    cmd("srem", -3, WRITE | FAST, (1, 1, 1), srem),
    cmd("smembers", 2, READONLY, (1, 1, 1), smembers),
    cmd("sismember", 3, READONLY | FAST, (1, 1, 1), sismember),
    cmd("smismember", -3, READONLY | FAST, (1, 1, 1), smismember),
    cmd("scard", 2, READONLY | FAST, (1, 1, 1), scard),
    cmd("spop", -2, WRITE | FAST, (1, 1, 1), spop),
    cmd("srandmember", -2, READONLY, (1, 1, 1), srandmember),
    cmd("smove", 4, WRITE | FAST, (1, 2, 1), smove),
    cmd("sinter", -2, READONLY, (1, -1, 1), sinter),
    // Keys follow `numkeys` (Redis reports `movablekeys` and 0 0 0).
    cmd("sintercard", -3, READONLY, (0, 0, 0), sintercard),
    cmd("sunion", -2, READONLY, (1, -1, 1), sunion),
    cmd("sdiff", -2, READONLY, (1, -1, 1), sdiff),
    cmd("sinterstore", -3, WRITE | DENYOOM, (1, -1, 1), sinterstore),
    cmd("sunionstore", -3, WRITE | DENYOOM, (1, -1, 1), sunionstore),
    cmd("sdiffstore", -3, WRITE | DENYOOM, (1, -1, 1), sdiffstore),
    cmd("sscan", -3, READONLY, (1, 1, 1), sscan),
];

fn bulks(members: impl IntoIterator<Item = crate::db::Sds>) -> Vec<Frame> {
    members.into_iter().map(|m| Frame::bulk(&m)).collect()
}

fn sadd(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let set = ctx.set_or_create(&args[1])?;
    let added = args[2..].iter().filter(|m| set.insert(m)).count();
    ctx.dirty(added as u64);
    if added > 0 {
        ctx.notify(SET, "sadd", &args[1]);
    }
    Ok(Frame::Integer(added as i64))
}

fn srem(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let Some(set) = ctx.write_set(&args[1])? else { return Ok(Frame::Integer(0)) };
    let removed = args[2..].iter().filter(|m| set.remove(m)).count();
    if removed > 0 {
        ctx.notify(SET, "srem", &args[1]);
    }
    // `del` (when emptied) follows `srem`, as in Redis.
    ctx.remove_if_empty(&args[1]);
    ctx.dirty(removed as u64);
    Ok(Frame::Integer(removed as i64))
}

fn smembers(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    inter_generic(ctx, &args[1..], None)
}

fn sismember(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    Ok(Frame::Integer(ctx.read_set(&args[1])?.is_some_and(|s| s.contains(&args[2])) as i64))
}

fn smismember(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let set = ctx.read_set(&args[1])?;
    let found = args[2..].iter().map(|m| Frame::Integer(set.is_some_and(|s| s.contains(m)) as i64));
    Ok(Frame::Array(found.collect()))
}

fn scard(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    Ok(Frame::Integer(ctx.read_set(&args[1])?.map_or(0, |s| s.len() as i64)))
}

/// `ERR value is out of range, must be positive` (SPOP's count).
fn positive_count(arg: &[u8]) -> Result<usize, CommandError> {
    match common::fmt::parse_i64(arg) {
        Some(n) if n >= 0 => Ok(n as usize),
        _ => Err(CommandError::err("value is out of range, must be positive")),
    }
}

fn spop(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    pop(ctx, args, &mut rand::thread_rng())
}

/// SPOP's work, at the keyspace level and with the random source as an argument.
fn pop(ctx: &mut Exec<'_>, args: &[Bytes], rng: &mut impl Rng) -> CmdResult {
    match args.len() {
        2 => {}
        3 => return pop_count(ctx, args, rng),
        _ => return Err(CommandError::Syntax),
    }
    let key = &args[1];
    let Some(set) = ctx.write_set(key)? else { return Ok(Frame::Null) };
    let member = set.pop_random(rng).expect("stored sets are never empty");
    ctx.notify(SET, "spop", key);
    ctx.remove_if_empty(key);
    ctx.dirty(1);
    // Even when it empties the set, a single SPOP is replicated as SREM.
    ctx.propagate_as(vec![
        Bytes::from_static(b"SREM"),
        key.clone(),
        Bytes::copy_from_slice(&member),
    ]);
    Ok(Frame::bulk(&member))
}

fn pop_count(ctx: &mut Exec<'_>, args: &[Bytes], rng: &mut impl Rng) -> CmdResult {
    let key = &args[1];
    let count = positive_count(&args[2])?;
    let Some(set) = ctx.write_set(key)? else { return Ok(Frame::Set(Vec::new())) };
    if count == 0 {
        return Ok(Frame::Set(Vec::new()));
    }
    if count >= set.len() {
        // Redis replies with SUNION of the key (a fresh set: ascending if it is an intset),
        // deletes it, and replicates a DEL.
        let members = bulks(set::union(&[&*set]).iter());
        // Redis counts `count` changes; capped so absurd counts cannot overflow the counter.
        let changes = count.min(u32::MAX as usize) as u64;
        ctx.notify(SET, "spop", key);
        ctx.delete(key);
        ctx.notify(GENERIC, "del", key);
        ctx.dirty(changes);
        ctx.propagate_as(vec![Bytes::from_static(b"DEL"), key.clone()]);
        return Ok(Frame::Set(members));
    }
    let popped = set.pop_many(count, rng);
    ctx.dirty(count as u64);
    ctx.notify(SET, "spop", key);
    for m in &popped {
        ctx.propagate_as(vec![Bytes::from_static(b"SREM"), key.clone(), Bytes::copy_from_slice(m)]);
    }
    Ok(Frame::Set(bulks(popped)))
}

fn srandmember(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let mut rng = rand::thread_rng();
    match args.len() {
        2 => {
            let member = ctx.read_set(&args[1])?.and_then(|s| s.random_member(&mut rng));
            return Ok(member.map_or(Frame::Null, |m| Frame::bulk(&m)));
        }
        3 => {}
        _ => return Err(CommandError::Syntax),
    }
    let count = int(&args[2])?;
    if count == i64::MIN {
        return Err(CommandError::err(format!(
            "value is out of range, value must between {} and {}",
            -i64::MAX,
            i64::MAX
        )));
    }
    let Some(set) = ctx.read_set(&args[1])? else { return Ok(Frame::Array(Vec::new())) };
    let wanted = count.unsigned_abs() as usize;
    if count < 0 || count == 1 {
        // Independent picks, repeats allowed; grown as it goes so a huge count is not one
        // huge allocation request.
        let mut out = Vec::with_capacity(wanted.min(1024));
        for _ in 0..wanted {
            let m = set.random_member(&mut rng).expect("stored sets are never empty");
            out.push(Frame::bulk(&m));
        }
        return Ok(Frame::Array(out));
    }
    Ok(Frame::Array(bulks(set.random_distinct(wanted, &mut rng))))
}

fn smove(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    move_member(ctx, args)
}

/// SMOVE's work, at the keyspace level.
fn move_member(ctx: &mut Exec<'_>, args: &[Bytes]) -> CmdResult {
    let (src, dst, member) = (&args[1], &args[2], &args[3]);
    // Both keys are looked up first (expiring them if due), then checked in Redis's order: a
    // missing source wins over a destination of the wrong type.
    let src_is_set = ctx.lookup_write(src).map(|v| matches!(v, Value::Set(_)));
    let dst_is_set = ctx.lookup_write(dst).map(|v| matches!(v, Value::Set(_)));
    let Some(src_is_set) = src_is_set else { return Ok(Frame::Integer(0)) };
    if !src_is_set || dst_is_set == Some(false) {
        return Err(CommandError::WrongType);
    }
    let source = ctx.write_set(src)?.expect("checked above");
    if src == dst {
        return Ok(Frame::Integer(source.contains(member) as i64));
    }
    if !source.remove(member) {
        return Ok(Frame::Integer(0));
    }
    ctx.notify(SET, "srem", src);
    ctx.remove_if_empty(src);
    ctx.dirty(1);
    if ctx.set_or_create(dst)?.insert(member) {
        ctx.dirty(1);
        ctx.notify(SET, "sadd", dst);
    }
    Ok(Frame::Integer(1))
}

/// Looks `keys` up in order, as Redis does before any set algebra: a missing key is an empty
/// set, and the first key holding another type fails the command. The STORE forms count hits
/// and misses for their sources too, as Redis 7.0.15 does (measured).
fn check_sets(exec: &mut Exec<'_>, keys: &[Bytes]) -> Result<(), CommandError> {
    for key in keys {
        let value = exec.lookup_read(key);
        if !matches!(value, None | Some(Value::Set(_))) {
            return Err(CommandError::WrongType);
        }
    }
    Ok(())
}

/// The sets at `keys` (after [`check_sets`]); `None` for missing keys.
fn sets_at<'d>(db: &'d Db, keys: &[Bytes]) -> Vec<Option<&'d Set>> {
    keys.iter()
        .map(|k| match db.keys.get(k) {
            Some(Value::Set(s)) => Some(&**s),
            _ => None,
        })
        .collect()
}

/// Stores a STORE command's result at `dst` (dropping its TTL and whatever it held) and
/// records `event`, or deletes `dst` when the result is empty (recording `del`). Only a real
/// change counts, so an empty result over a missing destination is not propagated.
fn store(ctx: &mut Exec<'_>, dst: &[u8], result: Set, event: &'static str) -> CmdResult {
    // Only the destination changes: a WATCH on a source key survives, as in Redis.
    ctx.modified(dst);
    if result.is_empty() {
        ctx.clear_destination(dst);
        return Ok(Frame::Integer(0));
    }
    let len = result.len();
    ctx.set(dst, Value::Set(Box::new(result)));
    ctx.dirty(1);
    ctx.notify(SET, event, dst);
    Ok(Frame::Integer(len as i64))
}

/// SINTER, SMEMBERS and SINTERSTORE.
fn inter_generic(ctx: &mut Exec<'_>, keys: &[Bytes], dst: Option<&[u8]>) -> CmdResult {
    check_sets(ctx, keys)?;
    let members = {
        let sets: Option<Vec<&Set>> = sets_at(ctx.db_ref(), keys).into_iter().collect();
        // Any missing key makes the intersection empty.
        sets.map_or_else(Vec::new, |sets| set::intersection(&sets, 0))
    };
    match dst {
        None => Ok(Frame::Set(bulks(members))),
        Some(dst) => store(ctx, dst, Set::from_members(members), "sinterstore"),
    }
}

fn sinter(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    inter_generic(ctx, &args[1..], None)
}

fn sinterstore(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    inter_generic(ctx, &args[2..], Some(&args[1]))
}

fn sintercard(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let numkeys = match common::fmt::parse_i64(&args[1]) {
        Some(n) if n >= 1 => n,
        _ => return Err(CommandError::err("numkeys should be greater than 0")),
    };
    if numkeys > args.len() as i64 - 2 {
        return Err(CommandError::err("Number of keys can't be greater than number of args"));
    }
    let end = 2 + numkeys as usize;
    let mut limit = 0;
    let mut i = end;
    while i < args.len() {
        if is(&args[i], "limit") && i + 1 < args.len() {
            limit = match common::fmt::parse_i64(&args[i + 1]) {
                Some(n) if n >= 0 => n as usize,
                _ => return Err(CommandError::err("LIMIT can't be negative")),
            };
            i += 2;
        } else {
            return Err(CommandError::Syntax);
        }
    }
    let keys = &args[2..end];
    check_sets(ctx, keys)?;
    let sets: Option<Vec<&Set>> = sets_at(ctx.db_ref(), keys).into_iter().collect();
    let card = sets.map_or(0, |sets| set::intersection(&sets, limit).len());
    Ok(Frame::Integer(card as i64))
}

/// Which of SUNION / SDIFF.
#[derive(Clone, Copy, PartialEq)]
enum Op {
    Union,
    Diff,
}

/// SUNION, SDIFF and their STORE forms: the result is always a freshly built set, replied in
/// its own order.
fn union_diff_generic(ctx: &mut Exec<'_>, keys: &[Bytes], dst: Option<&[u8]>, op: Op) -> CmdResult {
    check_sets(ctx, keys)?;
    let result = {
        let sets = sets_at(ctx.db_ref(), keys);
        match (op, sets[0]) {
            (Op::Union, _) => set::union(&sets.iter().flatten().copied().collect::<Vec<_>>()),
            (Op::Diff, None) => Set::default(),
            // The first key repeated later: everything is subtracted.
            (Op::Diff, Some(_)) if keys[1..].contains(&keys[0]) => Set::default(),
            (Op::Diff, Some(first)) => {
                let others: Vec<&Set> = sets[1..].iter().flatten().copied().collect();
                set::difference(first, &others)
            }
        }
    };
    match dst {
        None => Ok(Frame::Set(bulks(result.iter()))),
        Some(dst) => {
            let event = if op == Op::Union { "sunionstore" } else { "sdiffstore" };
            store(ctx, dst, result, event)
        }
    }
}

fn sunion(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    union_diff_generic(ctx, &args[1..], None, Op::Union)
}

fn sdiff(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    union_diff_generic(ctx, &args[1..], None, Op::Diff)
}

fn sunionstore(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    union_diff_generic(ctx, &args[2..], Some(&args[1]), Op::Union)
}

fn sdiffstore(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    union_diff_generic(ctx, &args[2..], Some(&args[1]), Op::Diff)
}

fn sscan(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let start = cursor(&args[2])?;
    // Redis looks the key up before it parses the options.
    let Some(set) = ctx.read_set(&args[1])? else { return Ok(scan_reply(0, Vec::new())) };
    let opts = scan_opts(args, 3, false)?;
    let (next, members) = match set {
        // An intset is returned whole, in one call, whatever the cursor.
        Set::Intset(_) => (0, set.members()),
        Set::Table(d) => {
            let (next, found) = scan_dict(d, start, &opts);
            return Ok(scan_reply(next, found.into_iter().map(|(m, _)| Frame::bulk(&m)).collect()));
        }
    };
    let keep = |m: &[u8]| opts.pattern.as_ref().is_none_or(|p| common::glob::matches(p, m, false));
    Ok(scan_reply(next, members.into_iter().filter(|m| keep(m)).map(|m| Frame::bulk(&m)).collect()))
}

#[cfg(test)]
mod tests {
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    use super::*;
    use crate::db::Keyspace;
    use crate::exec::Propagated;

    fn argv(line: &str) -> Vec<Bytes> {
        line.split(' ').map(|a| Bytes::copy_from_slice(a.as_bytes())).collect()
    }

    fn keyspace_with(key: &str, members: &[&str]) -> Keyspace {
        let mut ks = Keyspace::new(1);
        ks.dbs[0].keys.insert(key.as_bytes(), Value::Set(Box::new(Set::from_members(members))));
        ks
    }

    fn srem_members(rewrites: &[Propagated]) -> Vec<Bytes> {
        rewrites
            .iter()
            .map(|p| {
                assert_eq!(p.argv.len(), 3, "one SREM per member, as Redis 7.0 does");
                assert_eq!((&p.argv[0][..], &p.argv[1][..]), (&b"SREM"[..], &b"s"[..]));
                p.argv[2].clone()
            })
            .collect()
    }

    #[test]
    fn spop_propagates_srem_per_member_or_del_for_the_whole_set() {
        let mut rng = StdRng::seed_from_u64(7);
        let mut ks = keyspace_with("s", &["1", "2", "3", "4", "5", "6", "7", "8", "9", "10"]);
        let mut exec = Exec::new(&mut ks, 0, 0, false);
        exec.propagating = true;
        for count in ["2", "6"] {
            let Ok(Frame::Set(popped)) =
                pop(&mut exec, &argv(&format!("SPOP s {count}")), &mut rng)
            else {
                panic!("a set reply")
            };
            let rewrites = exec.rewrites.take().expect("rewritten");
            let members: Vec<Frame> =
                srem_members(&rewrites).iter().map(|m| Frame::bulk(m)).collect();
            assert_eq!(members, popped);
        }
        assert_eq!(exec.ks.dirty, 8);
        // A single SPOP that empties the set is still an SREM.
        pop(&mut exec, &argv("SPOP s 1"), &mut rng).expect("ok");
        exec.rewrites = None;
        pop(&mut exec, &argv("SPOP s"), &mut rng).expect("ok");
        assert_eq!(srem_members(&exec.rewrites.take().expect("rewritten")).len(), 1);
        assert!(!exec.ks.dbs[0].keys.contains_key(b"s"));

        let mut ks = keyspace_with("s", &["3", "1", "2"]);
        let mut exec = Exec::new(&mut ks, 0, 0, false);
        exec.propagating = true;
        let reply = pop(&mut exec, &argv("SPOP s 5"), &mut rng).expect("ok");
        assert_eq!(
            reply,
            Frame::Set(vec![Frame::bulk(b"1"), Frame::bulk(b"2"), Frame::bulk(b"3")])
        );
        assert_eq!(
            exec.rewrites.take().expect("rewritten"),
            [Propagated { db: 0, argv: argv("DEL s") }]
        );
        assert_eq!(pop(&mut exec, &argv("SPOP s 0"), &mut rng), Ok(Frame::Set(Vec::new())));
        assert_eq!(pop(&mut exec, &argv("SPOP s"), &mut rng), Ok(Frame::Null));
        assert!(exec.rewrites.is_none());
    }

    #[test]
    fn store_with_an_empty_result_changes_only_an_existing_destination() {
        let mut ks = keyspace_with("s", &["1", "2"]);
        let mut exec = Exec::new(&mut ks, 0, 0, false);
        exec.propagating = true;
        let keys = argv("s missing");
        assert_eq!(inter_generic(&mut exec, &keys, Some(b"dst")), Ok(Frame::Integer(0)));
        assert_eq!(exec.ks.dirty, 0, "nothing changed: not propagated");
        assert_eq!(
            union_diff_generic(&mut exec, &keys, Some(b"dst"), Op::Union),
            Ok(Frame::Integer(2))
        );
        assert_eq!(exec.ks.dirty, 1);
        assert_eq!(
            union_diff_generic(&mut exec, &argv("s s"), Some(b"dst"), Op::Diff),
            Ok(Frame::Integer(0))
        );
        assert_eq!(exec.ks.dirty, 2, "deleting the old destination is a change");
        assert!(!exec.ks.dbs[0].keys.contains_key(b"dst"));
        assert!(exec.rewrites.is_none(), "STORE commands propagate as sent");
    }

    #[test]
    fn smove_counts_the_removal_and_the_addition() {
        let mut ks = keyspace_with("a", &["1", "2"]);
        ks.dbs[0].keys.insert(b"b", Value::Set(Box::new(Set::from_members(["2"]))));
        let mut exec = Exec::new(&mut ks, 0, 0, false);
        exec.propagating = true;
        assert_eq!(move_member(&mut exec, &argv("SMOVE a b 1")), Ok(Frame::Integer(1)));
        assert_eq!(exec.ks.dirty, 2);
        assert_eq!(move_member(&mut exec, &argv("SMOVE a b 2")), Ok(Frame::Integer(1)));
        assert_eq!(exec.ks.dirty, 3, "already in the destination: only the removal counts");
        assert!(!exec.ks.dbs[0].keys.contains_key(b"a"));
        assert_eq!(move_member(&mut exec, &argv("SMOVE a b 2")), Ok(Frame::Integer(0)));
        assert_eq!(move_member(&mut exec, &argv("SMOVE b b 2")), Ok(Frame::Integer(1)));
        assert_eq!(exec.ks.dirty, 3);
    }

    #[test]
    fn smove_records_srem_and_del_on_the_source_then_sadd_on_the_destination() {
        let mut ks = keyspace_with("a", &["1"]);
        ks.notify = crate::notify::EventFlags::parse("KEAn").expect("valid flags");
        let mut exec = Exec::new(&mut ks, 0, 0, false);
        move_member(&mut exec, &argv("SMOVE a b 1")).expect("ok");
        // Same key, or a member that is not there: no event.
        move_member(&mut exec, &argv("SMOVE b b 1")).expect("ok");
        move_member(&mut exec, &argv("SMOVE b c 2")).expect("ok");
        let events = exec.ks.event_log();
        let (a, b) = (&b"a"[..], &b"b"[..]);
        assert_eq!(events, [("srem", a), ("del", a), ("new", b), ("sadd", b)]);
    }
}
