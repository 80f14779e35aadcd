//! PFADD PFCOUNT PFMERGE over HyperLogLog strings (the representation is `db::hll`).

use crate::notify::class;
use bytes::Bytes;
use common::resp::Frame;

use crate::cmd::flags::*;
use crate::cmd::{cmd, CommandSpec};
use crate::db::hll::{self, HllError, Registers, SparseSet};
use crate::db::{Sds, StrEnc, Value};
use crate::error::{CmdResult, CommandError};
use crate::exec::Ctx;

/// The HyperLogLog commands.
pub static COMMANDS: &[CommandSpec] = &[
    cmd("pfadd", -2, WRITE | DENYOOM | FAST, (1, 1, 1), pfadd),
    cmd("pfcount", -2, READONLY | MAY_REPLICATE, (1, -1, 1), pfcount),
    cmd("pfmerge", -2, WRITE | DENYOOM, (1, -1, 1), pfmerge),
];

fn refusal(e: HllError) -> CommandError {
    match e {
        HllError::NotHll => {
            CommandError::raw("WRONGTYPE Key is not a valid HyperLogLog string value.")
        }
        HllError::Corrupt => CommandError::raw("INVALIDOBJ Corrupted HLL object detected"),
    }
}

/// Checks a stored string is a HyperLogLog (as Redis's `isHLLObjectOrReply`), without decoding
/// its registers.
fn check(s: &[u8]) -> Result<(), CommandError> {
    let valid = s.len() >= 16
        && &s[..4] == b"HYLL"
        && (s[4] == 1 || (s[4] == 0 && s.len() == hll::DENSE_SIZE));
    if valid {
        Ok(())
    } else {
        Err(refusal(HllError::NotHll))
    }
}

/// The registers of the HyperLogLog at `key` read as Redis reads it (hits and misses
/// counted); `None` if missing.
fn read(ctx: &mut Ctx<'_>, key: &[u8]) -> Result<Option<Registers>, CommandError> {
    match ctx.lookup_read(key) {
        None => Ok(None),
        Some(Value::Str { bytes, .. }) => {
            check(bytes)?;
            Registers::decode(bytes).map(Some).map_err(refusal)
        }
        Some(_) => Err(CommandError::WrongType),
    }
}

/// The HyperLogLog string at `key` for writing (created empty and sparse if missing), and
/// whether it was created.
fn for_write<'e>(ctx: &'e mut Ctx<'_>, key: &[u8]) -> Result<(&'e mut Sds, bool), CommandError> {
    let created = match ctx.lookup_write(key) {
        None => true,
        Some(Value::Str { bytes, .. }) => {
            check(bytes)?;
            false
        }
        Some(_) => return Err(CommandError::WrongType),
    };
    if created {
        ctx.set(key, Value::string_with(&hll::new_sparse(), StrEnc::Raw));
    }
    let s = super::strings::string_mut(ctx, key, StrEnc::Raw)?;
    Ok((s, created))
}

/// `hll-sparse-max-bytes`: past it a sparse HyperLogLog turns dense.
fn sparse_max_bytes(ctx: &Ctx<'_>) -> usize {
    let config = ctx.server.config.read();
    config.get("hll-sparse-max-bytes").and_then(|v| v.parse().ok()).unwrap_or(3000)
}

/// Raises register `index` to `value` in either encoding (turning dense when needed); true if
/// it changed.
fn raise(s: &mut Sds, index: usize, value: u8, max_bytes: usize) -> Result<bool, CommandError> {
    if !hll::is_sparse(s) {
        return Ok(hll::dense_raise(s, index, value));
    }
    match hll::sparse_set(s, index, value, max_bytes).map_err(refusal)? {
        SparseSet::Unchanged => Ok(false),
        SparseSet::Updated => Ok(true),
        SparseSet::Promote => {
            *s = Sds::from_vec(hll::to_dense(s).map_err(refusal)?);
            hll::dense_raise(s, index, value);
            Ok(true)
        }
    }
}

fn pfadd(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let max_bytes = sparse_max_bytes(ctx);
    let (s, created) = for_write(ctx, &args[1])?;
    let mut changed = false;
    for element in &args[2..] {
        let (index, value) = hll::element_pattern(element);
        changed |= raise(s, index, value, max_bytes)?;
    }
    // A new key counts as a change too (its cached count goes stale, as in Redis).
    if changed || created {
        hll::set_cached(s, None);
    }
    if changed || created {
        ctx.dirty(1);
        ctx.notify(class::STRING, "pfadd", &args[1]);
        Ok(Frame::Integer(1))
    } else {
        Ok(Frame::Integer(0))
    }
}

fn pfcount(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    if args.len() > 2 {
        // Several keys: the count of their union; nothing is cached.
        let mut union = Registers::new();
        for key in &args[1..] {
            if let Some(registers) = read(ctx, key)? {
                union.merge(&registers);
            }
        }
        return Ok(Frame::Integer(union.count() as i64));
    }
    let key = &args[1];
    // A valid cached count answers at once, as in Redis (the registers are not read).
    match ctx.lookup_read(key) {
        None => return Ok(Frame::Integer(0)),
        Some(Value::Str { bytes, .. }) => {
            check(bytes)?;
            if let Some(card) = hll::cached(bytes) {
                return Ok(Frame::Integer(card as i64));
            }
        }
        Some(_) => return Err(CommandError::WrongType),
    }
    let registers = match ctx.db_ref().keys.get(key) {
        Some(Value::Str { bytes, .. }) => Registers::decode(bytes).map_err(refusal)?,
        _ => unreachable!("looked up above"),
    };
    // Cache the count in the key, as Redis does: the string changes, so replicas and the AOF
    // get this PFCOUNT too, and WATCH sees it.
    let card = registers.count();
    let s = super::strings::string_mut(ctx, key, StrEnc::Raw)?;
    hll::set_cached(s, Some(card));
    let db = ctx.db;
    ctx.ks.signal_modified_key(db, key);
    ctx.dirty(1);
    ctx.propagate_as(args.to_vec());
    Ok(Frame::Integer(card as i64))
}

fn pfmerge(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    // The destination takes part in the union too; any dense input makes the result dense.
    let mut union = Registers::new();
    let mut dense = false;
    for key in &args[1..] {
        if let Some(registers) = read(ctx, key)? {
            union.merge(&registers);
            if let Some(Value::Str { bytes, .. }) = ctx.db_ref().keys.get(key) {
                dense |= !hll::is_sparse(bytes);
            }
        }
    }
    let max_bytes = sparse_max_bytes(ctx);
    let (s, _) = for_write(ctx, &args[1])?;
    if dense && hll::is_sparse(s) {
        *s = Sds::from_vec(hll::to_dense(s).map_err(refusal)?);
    }
    for (index, &value) in union.0.iter().enumerate() {
        if value != 0 {
            raise(s, index, value, max_bytes)?;
        }
    }
    hll::set_cached(s, None);
    ctx.modified(&args[1]);
    ctx.dirty(1);
    ctx.notify(class::STRING, "pfadd", &args[1]);
    Ok(Frame::ok())
}
