//! PFADD PFCOUNT PFMERGE over HyperLogLog strings (the representation is `db::hll`), and
//! Redis's two testing commands, PFDEBUG and PFSELFTEST.

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
    cmd("pfdebug", 3, WRITE | DENYOOM | ADMIN, (2, 2, 1), pfdebug),
    cmd("pfselftest", 1, ADMIN, (0, 0, 0), pfselftest),
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

/// PFDEBUG GETREG|DECODE|ENCODING|TODENSE key, as Redis's `pfdebugCommand`: GETREG and TODENSE
/// turn a sparse string dense first (a change, propagated).
fn pfdebug(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let sub = String::from_utf8_lossy(crate::dispatch::c_str(&args[1])).into_owned();
    let key = &args[2];
    match ctx.lookup_write(key) {
        None => return Err(CommandError::err("The specified key does not exist")),
        Some(Value::Str { bytes, .. }) => check(bytes)?,
        Some(_) => return Err(CommandError::WrongType),
    }
    let to_dense = |ctx: &mut Ctx<'_>| -> Result<bool, CommandError> {
        let s = super::strings::string_mut(ctx, key, StrEnc::Raw)?;
        if !hll::is_sparse(s) {
            return Ok(false);
        }
        *s = Sds::from_vec(hll::to_dense(s).map_err(|_| invalid_hll())?);
        ctx.dirty(1);
        Ok(true)
    };
    let stored = |ctx: &mut Ctx<'_>| match ctx.db_ref().keys.get(key) {
        Some(Value::Str { bytes, .. }) => bytes.to_vec(),
        _ => Vec::new(),
    };
    match sub.to_ascii_lowercase().as_str() {
        "getreg" => {
            to_dense(ctx)?;
            let s = stored(ctx);
            let registers = &s[16..];
            Ok(Frame::Array(
                (0..hll::REGISTERS)
                    .map(|r| Frame::Integer(hll::dense_get(registers, r) as i64))
                    .collect(),
            ))
        }
        "decode" => {
            let s = stored(ctx);
            if !hll::is_sparse(&s) {
                return Err(CommandError::err("HLL encoding is not sparse"));
            }
            let text = hll::describe_sparse(&s).map_err(|_| invalid_hll())?;
            Ok(Frame::Bulk(Bytes::from(text)))
        }
        "encoding" => {
            let sparse = hll::is_sparse(&stored(ctx));
            Ok(Frame::simple(if sparse { "sparse" } else { "dense" }))
        }
        "todense" => Ok(Frame::Integer(i64::from(to_dense(ctx)?))),
        _ => Err(CommandError::err(format!("Unknown PFDEBUG subcommand '{sub}'"))),
    }
}

fn invalid_hll() -> CommandError {
    CommandError::raw("INVALIDOBJ Corrupted HLL object detected")
}

/// PFSELFTEST: Redis's self test of the HyperLogLog implementation, on ours.
fn pfselftest(ctx: &mut Ctx<'_>, _: &[Bytes]) -> CmdResult {
    let max_bytes = sparse_max_bytes(ctx);
    let seed = rand::random::<u64>();
    self_test(1000, 10_000_000, seed, max_bytes).map_err(CommandError::err)?;
    Ok(Frame::ok())
}

/// Redis's two checks: (1) every register of the dense encoding keeps the value set, without
/// disturbing its neighbours, over `rounds` rounds of random values; (2) adding `elements`
/// distinct elements to a dense and to a sparse HyperLogLog side by side, at each power of
/// ten the sparse one is still sparse while small, both count the same, and the count is
/// within six standard errors (one at ten elements).
fn self_test(
    rounds: usize,
    elements: u64,
    seed: u64,
    sparse_max_bytes: usize,
) -> Result<(), String> {
    use rand::{Rng, SeedableRng};
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut dense = Registers::new().encode_dense(None);
    let mut values = vec![0u8; hll::REGISTERS];
    for _ in 0..rounds {
        for (r, value) in values.iter_mut().enumerate() {
            *value = rng.gen_range(0..64);
            hll::dense_set(&mut dense[16..], r, *value);
        }
        for (r, &value) in values.iter().enumerate() {
            let got = hll::dense_get(&dense[16..], r);
            if got != value {
                return Err(format!("TESTFAILED Register {r} should be {value} but is {got}"));
            }
        }
    }
    let mut dense = Registers::new().encode_dense(None);
    let mut sparse = Sds::from_vec(hll::new_sparse());
    let relerr = 1.04 / (hll::REGISTERS as f64).sqrt();
    let count = |s: &[u8]| Registers::decode(s).map(|r| r.count()).unwrap_or(u64::MAX);
    let mut checkpoint = 1;
    for j in 1..=elements {
        let element = (j ^ seed).to_le_bytes();
        let (index, value) = hll::element_pattern(&element);
        hll::dense_raise(&mut dense, index, value);
        raise(&mut sparse, index, value, sparse_max_bytes).map_err(|e| e.to_string())?;
        if j != checkpoint {
            continue;
        }
        if (j as usize) < sparse_max_bytes / 2 && !hll::is_sparse(&sparse) {
            return Err("TESTFAILED sparse encoding not used".into());
        }
        if count(&dense) != count(&sparse) {
            return Err("TESTFAILED dense/sparse disagree".into());
        }
        let error = (checkpoint as i64 - count(&dense) as i64).unsigned_abs();
        let max = if j == 10 { 1 } else { (relerr * 6.0 * checkpoint as f64).ceil() as u64 };
        if error > max {
            return Err(format!("TESTFAILED Too big error. card:{checkpoint} abserr:{error}"));
        }
        checkpoint *= 10;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_self_test_passes_on_our_encodings() {
        // Fewer rounds and elements than the command's: this runs unoptimised.
        for seed in [1, 0xdead_beef] {
            assert_eq!(self_test(10, 100_000, seed, 3000), Ok(()), "seed {seed}");
        }
    }
}
