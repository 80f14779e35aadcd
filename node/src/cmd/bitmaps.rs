//! SETBIT GETBIT BITCOUNT BITPOS BITOP BITFIELD BITFIELD_RO: strings as arrays of bits.
//!
//! Bits are numbered from the most significant bit of the first byte, as in Redis. Writes grow
//! the string with zero bytes; reads past its end see zeros.

use crate::notify::class;
use bytes::Bytes;
use common::resp::Frame;

use crate::cmd::args::{int, is};
use crate::cmd::flags::*;
use crate::cmd::{cmd, CommandSpec};
use crate::db::{Sds, StrEnc, Value};
use crate::error::{CmdResult, CommandError};
use crate::exec::Ctx;

/// The bitmap commands.
pub static COMMANDS: &[CommandSpec] = &[
    cmd("setbit", 4, WRITE | DENYOOM, (1, 1, 1), setbit),
    cmd("getbit", 3, READONLY | FAST, (1, 1, 1), getbit),
    cmd("bitcount", -2, READONLY, (1, 1, 1), bitcount),
    cmd("bitpos", -3, READONLY, (1, 1, 1), bitpos),
    cmd("bitop", -4, WRITE | DENYOOM, (2, -1, 1), bitop),
    cmd("bitfield", -2, WRITE | DENYOOM, (1, 1, 1), bitfield),
    cmd("bitfield_ro", -2, READONLY | FAST, (1, 1, 1), bitfield_ro),
];

const BAD_OFFSET: &str = "bit offset is not an integer or out of range";

/// A bit offset argument; `width` > 0 allows BITFIELD's `#n` form (n fields of that width).
/// Offsets whose byte is past `proto-max-bulk-len` are refused, except from our master.
fn bit_offset(ctx: &Ctx<'_>, arg: &[u8], width: u32) -> Result<u64, CommandError> {
    let (digits, scale) = match arg.first() {
        Some(b'#') if width > 0 => (&arg[1..], width as i64),
        _ => (arg, 1),
    };
    let n = common::fmt::parse_i64(digits).ok_or_else(|| CommandError::err(BAD_OFFSET))?;
    let offset = n.wrapping_mul(scale);
    let limit = ctx.server.config.read().settings.proto_max_bulk_len as u64;
    let from_master = ctx.client.kind == crate::client::ClientKind::Master;
    if offset < 0 || (!from_master && (offset as u64 >> 3) >= limit) {
        return Err(CommandError::err(BAD_OFFSET));
    }
    Ok(offset as u64)
}

/// The string at `key` for writing bits up to `last_bit`, created or grown with zeros.
/// Returns it and whether it was created or grown.
fn string_for_bits<'e>(
    ctx: &'e mut Ctx<'_>,
    key: &[u8],
    last_bit: u64,
) -> Result<(&'e mut Sds, bool), CommandError> {
    let needed = (last_bit >> 3) as usize + 1;
    let (bytes, before) = {
        let s = super::strings::string_mut(ctx, key, StrEnc::Raw)?;
        let before = s.len();
        if s.len() < needed {
            s.resize(needed, 0);
        }
        (s, before)
    };
    let grown = bytes.len() != before;
    Ok((bytes, grown))
}

fn bit_at(bytes: &[u8], bit: u64) -> bool {
    bytes.get((bit >> 3) as usize).is_some_and(|b| b & (0x80 >> (bit & 7)) != 0)
}

fn set_bit_at(bytes: &mut [u8], bit: u64, on: bool) {
    let mask = 0x80 >> (bit & 7);
    let byte = &mut bytes[(bit >> 3) as usize];
    if on {
        *byte |= mask;
    } else {
        *byte &= !mask;
    }
}

fn setbit(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let offset = bit_offset(ctx, &args[2], 0)?;
    let on = match int(&args[3]) {
        Ok(0) => false,
        Ok(1) => true,
        _ => return Err(CommandError::err("bit is not an integer or out of range")),
    };
    let existed = ctx.exists(&args[1]);
    let (bytes, grown) = string_for_bits(ctx, &args[1], offset)?;
    let was = bit_at(bytes, offset);
    set_bit_at(bytes, offset, on);
    // As in Redis, a SETBIT that changes nothing is not a write (nor propagated).
    if !existed || grown || was != on {
        ctx.dirty(1);
        ctx.notify(class::STRING, "setbit", &args[1]);
    }
    Ok(Frame::Integer(was as i64))
}

fn getbit(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let offset = bit_offset(ctx, &args[2], 0)?;
    let bit = ctx.read_str(&args[1])?.is_some_and(|s| bit_at(s, offset));
    Ok(Frame::Integer(bit as i64))
}

/// A BITCOUNT/BITPOS range in bits, from Redis's `start end [BYTE|BIT]` arithmetic over a
/// string of `len` bytes: `None` when empty.
fn bit_range(len: usize, start: i64, end: i64, in_bits: bool) -> Option<(u64, u64)> {
    let total = if in_bits { len as i64 * 8 } else { len as i64 };
    let start = if start < 0 { (total + start).max(0) } else { start };
    let end = if end < 0 { (total + end).max(0) } else { end };
    let end = end.min(total - 1);
    if start > end {
        return None;
    }
    Some(if in_bits { (start as u64, end as u64) } else { (start as u64 * 8, end as u64 * 8 + 7) })
}

/// `BYTE` or `BIT` (anything else is a syntax error).
fn unit(arg: &[u8]) -> Result<bool, CommandError> {
    if is(arg, "bit") {
        Ok(true)
    } else if is(arg, "byte") {
        Ok(false)
    } else {
        Err(CommandError::Syntax)
    }
}

fn count_ones(bytes: &[u8], from: u64, to: u64) -> u64 {
    let (first, last) = ((from >> 3) as usize, (to >> 3) as usize);
    let mut count: u64 = bytes[first..=last].iter().map(|b| b.count_ones() as u64).sum();
    // Take away the bits of the edge bytes that are outside the range.
    let head = bytes[first] & !(0xffu8 >> (from & 7));
    let tail = bytes[last] & (0x7fu8 >> (to & 7));
    count -= head.count_ones() as u64 + tail.count_ones() as u64;
    count
}

fn bitcount(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    // Redis 7.0 looks the key up before it parses the range.
    let Some(s) = ctx.read_str(&args[1])? else { return Ok(Frame::Integer(0)) };
    let range = match args.len() {
        2 => bit_range(s.len(), 0, -1, false),
        4 | 5 => {
            let (start, end) = (int(&args[2])?, int(&args[3])?);
            if start < 0 && end < 0 && start > end {
                return Ok(Frame::Integer(0));
            }
            let in_bits = match args.get(4) {
                Some(u) => unit(u)?,
                None => false,
            };
            bit_range(s.len(), start, end, in_bits)
        }
        _ => return Err(CommandError::Syntax),
    };
    Ok(Frame::Integer(range.map_or(0, |(from, to)| count_ones(s, from, to)) as i64))
}

fn bitpos(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let wanted = match int(&args[2])? {
        0 => false,
        1 => true,
        _ => return Err(CommandError::err("The bit argument must be 1 or 0.")),
    };
    // A missing key is an endless run of zeros.
    let Some(s) = ctx.read_str(&args[1])? else {
        return Ok(Frame::Integer(if wanted { -1 } else { 0 }));
    };
    let (range, end_given) = match args.len() {
        3 => (bit_range(s.len(), 0, -1, false), false),
        4..=6 => {
            let start = int(&args[3])?;
            let in_bits = match args.get(5) {
                Some(u) => unit(u)?,
                None => false,
            };
            let end = match args.get(4) {
                Some(e) => int(e)?,
                None => -1,
            };
            (bit_range(s.len(), start, end, in_bits), args.len() >= 5)
        }
        _ => return Err(CommandError::Syntax),
    };
    let Some((from, to)) = range else { return Ok(Frame::Integer(-1)) };
    if let Some(pos) = find_bit(s, from, to, wanted) {
        return Ok(Frame::Integer(pos as i64));
    }
    // No clear bit up to the end of the string: without an explicit end, the string
    // continues with zeros, and the first one is just past it.
    Ok(Frame::Integer(if !wanted && !end_given { (to / 8 + 1) as i64 * 8 } else { -1 }))
}

/// The first bit in `from..=to` that is `wanted`, skipping whole bytes that cannot hold it.
fn find_bit(bytes: &[u8], from: u64, to: u64, wanted: bool) -> Option<u64> {
    let skip = if wanted { 0x00 } else { 0xff };
    let mut bit = from;
    while bit <= to {
        if bit & 7 == 0 && bit + 7 <= to && bytes[(bit >> 3) as usize] == skip {
            bit += 8;
            continue;
        }
        if bit_at(bytes, bit) == wanted {
            return Some(bit);
        }
        bit += 1;
    }
    None
}

fn bitop(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    #[derive(PartialEq)]
    enum Op {
        And,
        Or,
        Xor,
        Not,
    }
    let op = match &args[1] {
        a if is(a, "and") => Op::And,
        a if is(a, "or") => Op::Or,
        a if is(a, "xor") => Op::Xor,
        a if is(a, "not") => Op::Not,
        _ => return Err(CommandError::Syntax),
    };
    if op == Op::Not && args.len() != 4 {
        return Err(CommandError::err("BITOP NOT must be called with a single source key."));
    }
    let mut sources: Vec<Sds> = Vec::with_capacity(args.len() - 3);
    for key in &args[3..] {
        sources.push(ctx.read_str(key)?.cloned().unwrap_or_default());
    }
    let longest = sources.iter().map(|s| s.len()).max().unwrap_or(0);
    let dest = &args[2];
    if longest == 0 {
        ctx.clear_destination(dest);
        return Ok(Frame::Integer(0));
    }
    let byte = |s: &Sds, i: usize| s.get(i).copied().unwrap_or(0);
    let result: Vec<u8> = (0..longest)
        .map(|i| {
            let first = byte(&sources[0], i);
            let rest = sources[1..].iter().map(|s| byte(s, i));
            match op {
                Op::Not => !first,
                Op::And => rest.fold(first, |a, b| a & b),
                Op::Or => rest.fold(first, |a, b| a | b),
                Op::Xor => rest.fold(first, |a, b| a ^ b),
            }
        })
        .collect();
    ctx.set(dest, Value::string_with(&result, StrEnc::Raw));
    ctx.dirty(1);
    ctx.notify(class::STRING, "set", dest);
    Ok(Frame::Integer(longest as i64))
}

/// What BITFIELD does with an overflowing SET or INCRBY.
#[derive(Clone, Copy, PartialEq)]
enum Overflow {
    Wrap,
    Sat,
    Fail,
}

/// One BITFIELD operation.
struct FieldOp {
    write: Option<(bool, i64)>, // (is INCRBY, value)
    signed: bool,
    bits: u32,
    offset: u64,
    overflow: Overflow,
}

/// `i1`..`i64` or `u1`..`u63`: (signed, width).
fn field_type(arg: &[u8]) -> Result<(bool, u32), CommandError> {
    const BAD: &str = "Invalid bitfield type. Use something like i16 u8. Note that u64 is not supported but i64 is.";
    let signed = match arg.first() {
        Some(b'i') => true,
        Some(b'u') => false,
        _ => return Err(CommandError::err(BAD)),
    };
    match common::fmt::parse_i64(&arg[1..]) {
        Some(n) if n >= 1 && n <= if signed { 64 } else { 63 } => Ok((signed, n as u32)),
        _ => Err(CommandError::err(BAD)),
    }
}

fn read_field(bytes: &[u8], offset: u64, bits: u32, signed: bool) -> i64 {
    let mut value: u64 = 0;
    for i in 0..bits as u64 {
        value = (value << 1) | bit_at(bytes, offset + i) as u64;
    }
    if signed && bits < 64 && value & (1 << (bits - 1)) != 0 {
        value |= u64::MAX << bits;
    }
    value as i64
}

fn write_field(bytes: &mut [u8], offset: u64, bits: u32, value: u64) {
    for i in 0..bits as u64 {
        set_bit_at(bytes, offset + i, (value >> (bits as u64 - 1 - i)) & 1 != 0);
    }
}

/// `value + incr` in a field of the type, and whether it overflowed; the result follows
/// `overflow` (WRAP, SAT; FAIL leaves the caller to refuse), with Redis's exact arithmetic.
fn field_add(value: i64, incr: i64, bits: u32, signed: bool, overflow: Overflow) -> (i64, bool) {
    let wrap = |v: i64, i: i64| -> i64 {
        let sum = (v as u64).wrapping_add(i as u64);
        if bits == 64 {
            return sum as i64;
        }
        let mask = u64::MAX << bits;
        if signed && sum & (1 << (bits - 1)) != 0 {
            (sum | mask) as i64
        } else {
            (sum & !mask) as i64
        }
    };
    if signed {
        let max: i64 = if bits == 64 { i64::MAX } else { (1i64 << (bits - 1)) - 1 };
        let min = -max - 1;
        let max_incr = (max as u64).wrapping_sub(value as u64) as i64;
        let min_incr = min.wrapping_sub(value);
        let high = value > max
            || (bits != 64 && incr > max_incr)
            || (value >= 0 && incr > 0 && incr > max_incr);
        let low = value < min
            || (bits != 64 && incr < min_incr)
            || (value < 0 && incr < 0 && incr < min_incr);
        match (high, low, overflow) {
            (true, _, Overflow::Sat) => (max, true),
            (false, true, Overflow::Sat) => (min, true),
            (true, _, _) | (_, true, _) => (wrap(value, incr), true),
            _ => (value.wrapping_add(incr), false),
        }
    } else {
        let value = value as u64;
        let max: u64 = (1u64 << bits) - 1;
        let max_incr = max.wrapping_sub(value) as i64;
        let min_incr = (value as i64).wrapping_neg();
        if value > max || (incr > 0 && incr > max_incr) {
            let v = if overflow == Overflow::Sat { max as i64 } else { wrap(value as i64, incr) };
            (v, true)
        } else if incr < 0 && incr < min_incr {
            let v = if overflow == Overflow::Sat { 0 } else { wrap(value as i64, incr) };
            (v, true)
        } else {
            (value.wrapping_add(incr as u64) as i64, false)
        }
    }
}

fn bitfield(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    bitfield_run(ctx, args, false)
}

fn bitfield_ro(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    bitfield_run(ctx, args, true)
}

fn bitfield_run(ctx: &mut Ctx<'_>, args: &[Bytes], read_only: bool) -> CmdResult {
    let mut ops = Vec::new();
    let mut overflow = Overflow::Wrap;
    let mut i = 2;
    while i < args.len() {
        let left = args.len() - i - 1;
        let word = &args[i];
        let write = if is(word, "get") && left >= 2 {
            None
        } else if (is(word, "set") || is(word, "incrby")) && left >= 3 {
            Some(is(word, "incrby"))
        } else if is(word, "overflow") && left >= 1 {
            overflow = match &args[i + 1] {
                w if is(w, "wrap") => Overflow::Wrap,
                w if is(w, "sat") => Overflow::Sat,
                w if is(w, "fail") => Overflow::Fail,
                _ => return Err(CommandError::err("Invalid OVERFLOW type specified")),
            };
            i += 2;
            continue;
        } else {
            return Err(CommandError::Syntax);
        };
        let (signed, bits) = field_type(&args[i + 1])?;
        let offset = bit_offset(ctx, &args[i + 2], bits)?;
        let write = match write {
            Some(incr) => Some((incr, int(&args[i + 3])?)),
            None => None,
        };
        ops.push(FieldOp { write, signed, bits, offset, overflow });
        i += if write.is_some() { 4 } else { 3 };
    }
    let last_write =
        ops.iter().filter(|op| op.write.is_some()).map(|op| op.offset + op.bits as u64 - 1).max();
    let Some(last_write) = last_write else {
        // Only reads: a missing key reads as zeros.
        let s: &[u8] = ctx.read_str(&args[1])?.map_or(&[], |s| &s[..]);
        let values = ops.iter().map(|op| read_field(s, op.offset, op.bits, op.signed));
        return Ok(Frame::Array(values.map(Frame::Integer).collect()));
    };
    if read_only {
        return Err(CommandError::err("BITFIELD_RO only supports the GET subcommand"));
    }
    let existed = ctx.exists(&args[1]);
    let (bytes, grown) = string_for_bits(ctx, &args[1], last_write)?;
    let created_or_grown = !existed || grown;
    let mut changes = 0;
    let mut replies = Vec::with_capacity(ops.len());
    for op in &ops {
        let old = read_field(bytes, op.offset, op.bits, op.signed);
        let Some((incr, value)) = op.write else {
            replies.push(Frame::Integer(old));
            continue;
        };
        let (new, overflowed) = if incr {
            field_add(old, value, op.bits, op.signed, op.overflow)
        } else {
            field_add(value, 0, op.bits, op.signed, op.overflow)
        };
        if overflowed && op.overflow == Overflow::Fail {
            replies.push(Frame::Null);
            continue;
        }
        write_field(bytes, op.offset, op.bits, new as u64);
        if created_or_grown || old != new {
            changes += 1;
        }
        replies.push(Frame::Integer(if incr { new } else { old }));
    }
    if changes > 0 {
        ctx.dirty(changes);
        ctx.notify(class::STRING, "setbit", &args[1]);
    }
    Ok(Frame::Array(replies))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_read_and_write_most_significant_bit_first() {
        let mut bytes = vec![0u8; 3];
        write_field(&mut bytes, 4, 8, 0xab);
        assert_eq!(bytes, [0x0a, 0xb0, 0]);
        assert_eq!(read_field(&bytes, 4, 8, false), 0xab);
        assert_eq!(read_field(&bytes, 4, 8, true), 0xab_u8 as i8 as i64);
        assert_eq!(count_ones(&bytes, 0, 23), 5);
        assert_eq!(count_ones(&bytes, 5, 9), 2);
    }

    #[test]
    fn overflow_wraps_saturates_or_fails_like_redis() {
        assert_eq!(field_add(250, 10, 8, false, Overflow::Wrap), (4, true));
        assert_eq!(field_add(250, 10, 8, false, Overflow::Sat), (255, true));
        assert_eq!(field_add(5, -10, 8, false, Overflow::Sat), (0, true));
        assert_eq!(field_add(100, 100, 8, true, Overflow::Wrap), (-56, true));
        assert_eq!(field_add(-100, -100, 8, true, Overflow::Sat), (-128, true));
        assert_eq!(field_add(i64::MAX, 1, 64, true, Overflow::Wrap), (i64::MIN, true));
        assert_eq!(field_add(1, 2, 8, true, Overflow::Fail), (3, false));
    }
}
