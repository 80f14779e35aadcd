//! Moves and multi-key pops, and their blocking forms: LMOVE, RPOPLPUSH, LMPOP, BLPOP, BRPOP,
//! BLMOVE, BRPOPLPUSH, BLMPOP.
//!
//! Everything that pops for a blocking command is a [`PopOp`]: the same value serves the client
//! at once when one of its keys is ready and, otherwise, is handed to the blocking registry as
//! the client's [`Unblock`] operation, so the immediate and the woken paths cannot drift apart.
//! Either way a served command propagates as its non-blocking form (BLPOP → `LPOP k`,
//! LMPOP/BLMPOP → `LPOP k n`, BLMOVE → `LMOVE`, BRPOPLPUSH → `RPOPLPUSH`). The plain LMOVE,
//! RPOPLPUSH and LMPOP live here because they are the same operations without the blocking.

use std::collections::HashSet;

use bytes::Bytes;
use common::resp::Frame;

use super::{as_len, bulk_array, end_arg, list_len};
use crate::blocking::Unblock;
use crate::cmd::args::{block_timeout, int_with, is};
use crate::db::list::End;
use crate::error::{CmdResult, CommandError};
use crate::exec::{Ctx, Effect, Exec};
use crate::notify::class;

/// The parsed form of `LMPOP numkeys key… LEFT|RIGHT [COUNT n]` (BLMPOP: after the timeout).
#[derive(Debug, PartialEq, Eq)]
struct MpopArgs {
    /// Where the keys are in argv.
    keys: std::ops::Range<usize>,
    end: End,
    count: usize,
}

/// Parses LMPOP's arguments from `numkeys_at` on, checking in Redis's order: numkeys, the
/// direction, then `COUNT`.
fn mpop_args(args: &[Bytes], numkeys_at: usize) -> Result<MpopArgs, CommandError> {
    let numkeys =
        int_with(&args[numkeys_at], CommandError::err("numkeys should be greater than 0"))?;
    if numkeys < 1 {
        return Err(CommandError::err("numkeys should be greater than 0"));
    }
    let first = numkeys_at + 1;
    let end_at = match usize::try_from(numkeys).ok().and_then(|n| first.checked_add(n)) {
        Some(at) if at < args.len() => at,
        _ => return Err(CommandError::Syntax),
    };
    let end = end_arg(&args[end_at])?;
    let mut count = None;
    let mut i = end_at + 1;
    while i < args.len() {
        if count.is_none() && is(&args[i], "count") && i + 1 < args.len() {
            let n = int_with(&args[i + 1], CommandError::err("count should be greater than 0"))?;
            if n < 1 {
                return Err(CommandError::err("count should be greater than 0"));
            }
            count = Some(as_len(n));
            i += 2;
        } else {
            return Err(CommandError::Syntax);
        }
    }
    Ok(MpopArgs { keys: first..end_at, end, count: count.unwrap_or(1) })
}

/// Moves one element from `src` (at `from`) to `dst` (at `to`), as LMOVE does: `None` if `src`
/// is missing; WRONGTYPE if either key holds another type (checked before anything moves).
fn move_element(
    exec: &mut Exec<'_>,
    src: &[u8],
    dst: &[u8],
    from: End,
    to: End,
) -> Result<Option<Frame>, CommandError> {
    if list_len(exec, src)? == 0 {
        return Ok(None);
    }
    exec.write_list(dst)?;
    let Some(value) = exec.write_list(src)?.and_then(|list| list.pop(from)) else {
        return Ok(None);
    };
    // Push before deleting an emptied source: with src == dst the element goes back in.
    exec.list_or_create(dst)?.push(to, &value);
    // Redis's order: the push on the destination, the pop on the source, then `del`.
    exec.notify(class::LIST, to.push_event(), dst);
    exec.notify(class::LIST, from.pop_event(), src);
    exec.remove_if_empty(src);
    exec.dirty(1);
    Ok(Some(Frame::bulk(&value)))
}

pub(super) fn lmove(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let (from, to) = (end_arg(&args[3])?, end_arg(&args[4])?);
    Ok(move_element(ctx, &args[1], &args[2], from, to)?.unwrap_or(Frame::Null))
}

pub(super) fn rpoplpush(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    Ok(move_element(ctx, &args[1], &args[2], End::Right, End::Left)?.unwrap_or(Frame::Null))
}

/// What a blocking (or multi-key) pop does to a key that holds a non-empty list.
#[derive(Debug, Clone, PartialEq, Eq)]
enum PopOp {
    /// BLPOP/BRPOP: one element, replied as `[key, element]`, propagated as `LPOP key`.
    One(End),
    /// LMPOP/BLMPOP: up to `count` elements, replied as `[key, [elements]]`, propagated as
    /// `LPOP key n` with n the number actually popped.
    Many(End, usize),
    /// BLMOVE/BRPOPLPUSH: one element moved to `dst`, replied as the element, propagated as
    /// LMOVE (or RPOPLPUSH when `rpoplpush`).
    Move { from: End, to: End, dst: Bytes, rpoplpush: bool },
}

/// Who runs a [`PopOp`]: the command's own handler (with its argv), or the blocking registry
/// when a key the client waits on became ready.
#[derive(Clone, Copy)]
enum Origin<'a> {
    Handler(&'a [Bytes]),
    Woken,
}

fn pop_name(end: End) -> Bytes {
    Bytes::from_static(match end {
        End::Left => b"LPOP",
        End::Right => b"RPOP",
    })
}

impl PopOp {
    /// Runs the operation on `key`, which the caller found to hold a non-empty list. Counts the
    /// change and records the non-blocking form to propagate.
    fn serve(&self, exec: &mut Exec<'_>, key: &Bytes, origin: Origin<'_>) -> CmdResult {
        match self {
            PopOp::One(end) => {
                let Some(value) = exec.write_list(key)?.and_then(|list| list.pop(*end)) else {
                    return Ok(Frame::NullArray);
                };
                exec.notify(class::LIST, end.pop_event(), key);
                exec.remove_if_empty(key);
                exec.dirty(1);
                exec.propagate_as(vec![pop_name(*end), key.clone()]);
                Ok(Frame::Array(vec![Frame::Bulk(key.clone()), Frame::bulk(&value)]))
            }
            PopOp::Many(end, count) => {
                let items = exec
                    .write_list(key)?
                    .map(|list| list.pop_many(*end, *count))
                    .unwrap_or_default();
                if items.is_empty() {
                    return Ok(Frame::NullArray);
                }
                exec.notify(class::LIST, end.pop_event(), key);
                exec.remove_if_empty(key);
                exec.dirty(items.len() as u64);
                exec.propagate_as(vec![
                    pop_name(*end),
                    key.clone(),
                    Bytes::from(items.len().to_string()),
                ]);
                if let Origin::Handler(_) = origin {
                    // LMPOP's key spec is empty (movable keys), so the dispatcher touches nothing.
                    exec.ks.signal_modified_key(exec.db, key);
                }
                Ok(Frame::Array(vec![Frame::Bulk(key.clone()), bulk_array(&items)]))
            }
            PopOp::Move { from, to, dst, rpoplpush } => {
                let Some(reply) = move_element(exec, key, dst, *from, *to)? else {
                    return Ok(Frame::Null);
                };
                let argv = match (rpoplpush, origin) {
                    (true, _) => vec![Bytes::from_static(b"RPOPLPUSH"), key.clone(), dst.clone()],
                    // Redis keeps the client's words when BLMOVE is served at once …
                    (false, Origin::Handler(args)) => {
                        vec![
                            Bytes::from_static(b"LMOVE"),
                            key.clone(),
                            dst.clone(),
                            args[3].clone(),
                            args[4].clone(),
                        ]
                    }
                    // … and writes its own when a push wakes the client.
                    (false, Origin::Woken) => vec![
                        Bytes::from_static(b"LMOVE"),
                        key.clone(),
                        dst.clone(),
                        Bytes::from_static(from.name().as_bytes()),
                        Bytes::from_static(to.name().as_bytes()),
                    ],
                };
                exec.propagate_as(argv);
                if let Origin::Woken = origin {
                    // The dispatcher touches the woken key only; the destination changed too,
                    // and may be what another client waits on.
                    exec.ks.signal_modified_key(exec.db, dst);
                    exec.ks.blocking.signal(exec.db, dst);
                }
                Ok(reply)
            }
        }
    }
}

impl Unblock for PopOp {
    fn try_serve(&self, exec: &mut Exec<'_>, key: &Bytes) -> Option<Frame> {
        // A key that is missing, empty or of another type leaves the client blocked.
        match list_len(exec, key) {
            Ok(n) if n > 0 => {}
            _ => return None,
        }
        // Past that, an error (BLMOVE into a key that is no longer a list) is the client's reply.
        // Redis 7.0 sends that WRONGTYPE yet leaves the client blocked; 7.2 unblocks it, as here.
        Some(self.serve(exec, key, Origin::Woken).unwrap_or_else(CommandError::into_frame))
    }
}

/// What a pop does when none of its keys is ready.
enum IfNotReady {
    /// The non-blocking LMPOP: reply a null array.
    Reply,
    /// Block until a key is ready or `timeout` passes (`None`: forever). Redis 7.0 answers a
    /// timeout of every list command with a null array (`*-1`, even BLMOVE's); where blocking is
    /// not allowed (inside MULTI) it answers `denied`, which is `$-1` for BLMOVE and BRPOPLPUSH.
    Block { timeout: Option<std::time::Duration>, denied: Frame },
}

/// Serves `op` from the first of `keys` that holds a non-empty list, in order (a key of
/// another type met before one is an error). Otherwise does what `if_not_ready` says.
fn serve_or_block(
    ctx: &mut Ctx<'_>,
    args: &[Bytes],
    keys: &[Bytes],
    op: PopOp,
    if_not_ready: IfNotReady,
) -> CmdResult {
    for key in keys {
        if list_len(ctx, key)? > 0 {
            return op.serve(ctx, key, Origin::Handler(args));
        }
    }
    let timeout = match if_not_ready {
        IfNotReady::Reply => return Ok(Frame::NullArray),
        IfNotReady::Block { denied, .. } if ctx.in_exec => return Ok(denied),
        IfNotReady::Block { timeout, .. } => timeout,
    };
    let mut seen = HashSet::new();
    let keys = keys.iter().filter(|k| seen.insert(*k)).cloned().collect();
    ctx.effect =
        Some(Effect::Block { keys, timeout, op: Box::new(op), on_timeout: Frame::NullArray });
    Ok(Frame::NullArray)
}

fn blocking_pop(ctx: &mut Ctx<'_>, args: &[Bytes], end: End) -> CmdResult {
    let last = args.len() - 1;
    let timeout = block_timeout(&args[last])?;
    let block = IfNotReady::Block { timeout, denied: Frame::NullArray };
    serve_or_block(ctx, args, &args[1..last], PopOp::One(end), block)
}

pub(super) fn blpop(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    blocking_pop(ctx, args, End::Left)
}

pub(super) fn brpop(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    blocking_pop(ctx, args, End::Right)
}

pub(super) fn lmpop(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let parsed = mpop_args(args, 1)?;
    let op = PopOp::Many(parsed.end, parsed.count);
    serve_or_block(ctx, args, &args[parsed.keys], op, IfNotReady::Reply)
}

pub(super) fn blmpop(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let parsed = mpop_args(args, 2)?;
    // Redis parses the timeout (argv[1]) only after the rest.
    let timeout = block_timeout(&args[1])?;
    let op = PopOp::Many(parsed.end, parsed.count);
    serve_or_block(
        ctx,
        args,
        &args[parsed.keys],
        op,
        IfNotReady::Block { timeout, denied: Frame::NullArray },
    )
}

pub(super) fn blmove(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let (from, to) = (end_arg(&args[3])?, end_arg(&args[4])?);
    let timeout = block_timeout(&args[5])?;
    let op = PopOp::Move { from, to, dst: args[2].clone(), rpoplpush: false };
    serve_or_block(ctx, args, &args[1..2], op, IfNotReady::Block { timeout, denied: Frame::Null })
}

pub(super) fn brpoplpush(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let timeout = block_timeout(&args[3])?;
    let op = PopOp::Move { from: End::Right, to: End::Left, dst: args[2].clone(), rpoplpush: true };
    serve_or_block(ctx, args, &args[1..2], op, IfNotReady::Block { timeout, denied: Frame::Null })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(line: &str) -> Vec<Bytes> {
        line.split_whitespace().map(|a| Bytes::copy_from_slice(a.as_bytes())).collect()
    }

    fn err(text: &str) -> CommandError {
        CommandError::err(text)
    }

    #[test]
    fn mpop_args_are_checked_in_redis_order() {
        let ok = |line: &str, at| mpop_args(&argv(line), at);
        assert_eq!(
            ok("lmpop 2 a b LEFT", 1),
            Ok(MpopArgs { keys: 2..4, end: End::Left, count: 1 })
        );
        assert_eq!(
            ok("lmpop 1 a right COUNT 5", 1),
            Ok(MpopArgs { keys: 2..3, end: End::Right, count: 5 })
        );
        assert_eq!(
            ok("blmpop 0 1 a left count 2", 2),
            Ok(MpopArgs { keys: 3..4, end: End::Left, count: 2 })
        );
        let numkeys = err("numkeys should be greater than 0");
        assert_eq!(ok("lmpop 0 a LEFT", 1), Err(numkeys.clone()));
        assert_eq!(ok("lmpop x a LEFT", 1), Err(numkeys.clone()));
        assert_eq!(ok("lmpop -1 a LEFT", 1), Err(numkeys));
        assert_eq!(ok("lmpop 2 a LEFT", 1), Err(CommandError::Syntax));
        assert_eq!(ok("lmpop 9223372036854775807 a LEFT", 1), Err(CommandError::Syntax));
        assert_eq!(ok("lmpop 1 a MIDDLE", 1), Err(CommandError::Syntax));
        assert_eq!(ok("lmpop 1 a LEFT COUNT 0", 1), Err(err("count should be greater than 0")));
        assert_eq!(ok("lmpop 1 a LEFT COUNT x", 1), Err(err("count should be greater than 0")));
        assert_eq!(ok("lmpop 1 a LEFT COUNT 1 COUNT 1", 1), Err(CommandError::Syntax));
        assert_eq!(ok("lmpop 1 a LEFT COUNT", 1), Err(CommandError::Syntax));
        assert_eq!(ok("lmpop 1 a LEFT FOO", 1), Err(CommandError::Syntax));
    }
}
