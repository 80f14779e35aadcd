//! `cmsgpack` for scripts: MessagePack in and out, encoded as the library Redis bundles encodes
//! (job-queue libraries pass job data to their scripts this way).
//!
//! Encoding: integral numbers as the smallest integer form, other numbers as float32 when
//! exact else float64, strings as fixstr/str8/str16/str32, tables as arrays when their keys
//! are exactly 1..n (an empty table too) else as maps in Lua's iteration order, anything else
//! (and nesting past 16 levels) as nil.

use mlua::{Lua, MultiValue, Table, Value};

use super::located;

/// Tables nested deeper than this encode as nil, as in Redis's library.
const MAX_NESTING: usize = 16;

/// The `cmsgpack` table.
pub fn library(lua: &Lua) -> mlua::Result<Table> {
    let t = lua.create_table()?;
    t.set(
        "pack",
        lua.create_function(|lua, values: MultiValue| {
            if values.is_empty() {
                return Err(located(
                    lua,
                    "bad argument #0 to 'pack' (MessagePack pack needs input.)",
                ));
            }
            let mut out = Vec::new();
            for v in values.iter() {
                encode(v, 0, &mut out)?;
            }
            lua.create_string(&out)
        })?,
    )?;
    t.set(
        "unpack",
        lua.create_function(|lua, bytes: mlua::String| {
            let (_, values) = unpack(lua, &bytes.as_bytes(), usize::MAX, 0)?;
            Ok(MultiValue::from_iter(values))
        })?,
    )?;
    // `unpack_one(s [, offset])` and `unpack_limit(s, limit [, offset])`: the next offset
    // (-1 once the input is used up), then the objects decoded.
    t.set(
        "unpack_one",
        lua.create_function(|lua, (bytes, offset): (mlua::String, Option<i64>)| {
            let bytes = bytes.as_bytes();
            let (next, values) = unpack_from(lua, &bytes, 1, offset.unwrap_or(0))?;
            Ok(MultiValue::from_iter(std::iter::once(Value::Integer(next)).chain(values)))
        })?,
    )?;
    t.set(
        "unpack_limit",
        lua.create_function(|lua, (bytes, limit, offset): (mlua::String, i64, Option<i64>)| {
            let bytes = bytes.as_bytes();
            let (next, values) = unpack_from(lua, &bytes, limit, offset.unwrap_or(0))?;
            Ok(MultiValue::from_iter(std::iter::once(Value::Integer(next)).chain(values)))
        })?,
    )?;
    Ok(t)
}

/// Decodes up to `limit` objects from `bytes` at `offset`, with the library's checks and
/// words (its offset error names the input length where the limit belongs, as the library
/// does). Returns the next offset (-1 at the end) and the objects.
fn unpack_from(
    lua: &Lua,
    bytes: &[u8],
    limit: i64,
    offset: i64,
) -> mlua::Result<(i64, Vec<Value>)> {
    if offset < 0 || limit < 0 {
        let message = format!(
            "Invalid request to unpack with offset of {offset} and limit of {}.",
            bytes.len()
        );
        return Err(located(lua, &message));
    }
    if offset as u64 > bytes.len() as u64 {
        let message = format!("Start offset {offset} greater than input length {}.", bytes.len());
        return Err(located(lua, &message));
    }
    unpack(lua, bytes, limit as usize, offset as usize)
}

/// Decodes up to `limit` objects from `bytes[offset..]`.
fn unpack(lua: &Lua, bytes: &[u8], limit: usize, offset: usize) -> mlua::Result<(i64, Vec<Value>)> {
    let mut input: &[u8] = &bytes[offset..];
    let mut values = Vec::new();
    while !input.is_empty() && values.len() < limit {
        values.push(decode(lua, &mut input).map_err(|e| match e {
            mlua::Error::RuntimeError(m) => located(lua, &m),
            other => other,
        })?);
    }
    let next = if input.is_empty() { -1 } else { (bytes.len() - input.len()) as i64 };
    Ok((next, values))
}

fn encode(v: &Value, depth: usize, out: &mut Vec<u8>) -> mlua::Result<()> {
    match v {
        Value::Boolean(b) => out.push(if *b { 0xc3 } else { 0xc2 }),
        Value::Integer(n) => int(*n, out),
        Value::Number(n) => {
            if n.fract() == 0.0 && n.abs() < 9.2e18 {
                int(*n as i64, out);
            } else if (*n as f32) as f64 == *n || n.is_nan() {
                out.push(0xca);
                out.extend_from_slice(&(*n as f32).to_be_bytes());
            } else {
                out.push(0xcb);
                out.extend_from_slice(&n.to_be_bytes());
            }
        }
        Value::String(s) => {
            let s = s.as_bytes();
            let len = s.len();
            match len {
                0..=31 => out.push(0xa0 | len as u8),
                32..=0xff => out.extend_from_slice(&[0xd9, len as u8]),
                0x100..=0xffff => {
                    out.push(0xda);
                    out.extend_from_slice(&(len as u16).to_be_bytes());
                }
                _ => {
                    out.push(0xdb);
                    out.extend_from_slice(&(len as u32).to_be_bytes());
                }
            }
            out.extend_from_slice(&s);
        }
        Value::Table(t) if depth < MAX_NESTING => table(t, depth, out)?,
        _ => out.push(0xc0),
    }
    Ok(())
}

fn int(n: i64, out: &mut Vec<u8>) {
    if n >= 0 {
        let u = n as u64;
        match u {
            0..=0x7f => out.push(u as u8),
            0x80..=0xff => out.extend_from_slice(&[0xcc, u as u8]),
            0x100..=0xffff => {
                out.push(0xcd);
                out.extend_from_slice(&(u as u16).to_be_bytes());
            }
            0x1_0000..=0xffff_ffff => {
                out.push(0xce);
                out.extend_from_slice(&(u as u32).to_be_bytes());
            }
            _ => {
                out.push(0xcf);
                out.extend_from_slice(&u.to_be_bytes());
            }
        }
    } else if n >= -32 {
        out.push(n as i8 as u8);
    } else if n >= -128 {
        out.extend_from_slice(&[0xd0, n as i8 as u8]);
    } else if n >= -32768 {
        out.push(0xd1);
        out.extend_from_slice(&(n as i16).to_be_bytes());
    } else if n >= -2_147_483_648 {
        out.push(0xd2);
        out.extend_from_slice(&(n as i32).to_be_bytes());
    } else {
        out.push(0xd3);
        out.extend_from_slice(&n.to_be_bytes());
    }
}

fn table(t: &Table, depth: usize, out: &mut Vec<u8>) -> mlua::Result<()> {
    // A first pass over the keys alone (values are dropped as it goes: holding a whole big
    // table's values at once exhausts Lua's stack): an array when the keys are exactly 1..n
    // (a table without keys is one too).
    let (mut max, mut len, mut array) = (0usize, 0usize, true);
    for pair in t.clone().pairs::<Value, Value>() {
        let (k, _) = pair?;
        len += 1;
        match super::array_index(&k) {
            Some(index) => max = max.max(index),
            None => array = false,
        }
    }
    let array = array && max == len;
    let (small, mid, big) = if array { (0x90, 0xdc, 0xdd) } else { (0x80, 0xde, 0xdf) };
    if len <= 15 {
        out.push(small | len as u8);
    } else if len <= 0xffff {
        out.push(mid);
        out.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        out.push(big);
        out.extend_from_slice(&(len as u32).to_be_bytes());
    }
    if array {
        for i in 1..=len {
            encode(&t.raw_get::<Value>(i)?, depth + 1, out)?;
        }
    } else {
        for pair in t.clone().pairs::<Value, Value>() {
            let (k, v) = pair?;
            encode(&k, depth + 1, out)?;
            encode(&v, depth + 1, out)?;
        }
    }
    Ok(())
}

fn take<'a>(input: &mut &'a [u8], n: usize) -> mlua::Result<&'a [u8]> {
    if input.len() < n {
        return Err(mlua::Error::RuntimeError("Missing bytes in input.".into()));
    }
    let (head, rest) = input.split_at(n);
    *input = rest;
    Ok(head)
}

fn be(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0u64, |acc, &b| (acc << 8) | b as u64)
}

fn decode(lua: &Lua, input: &mut &[u8]) -> mlua::Result<Value> {
    let tag = take(input, 1)?[0];
    let number = |n: f64| Ok(Value::Number(n));
    match tag {
        0x00..=0x7f => number(tag as f64),
        0xe0..=0xff => number(tag as i8 as f64),
        0xc0 => Ok(Value::Nil),
        0xc2 => Ok(Value::Boolean(false)),
        0xc3 => Ok(Value::Boolean(true)),
        0xcc => number(take(input, 1)?[0] as f64),
        0xcd => number(be(take(input, 2)?) as f64),
        0xce => number(be(take(input, 4)?) as f64),
        0xcf => number(be(take(input, 8)?) as f64),
        0xd0 => number(take(input, 1)?[0] as i8 as f64),
        0xd1 => number(be(take(input, 2)?) as u16 as i16 as f64),
        0xd2 => number(be(take(input, 4)?) as u32 as i32 as f64),
        0xd3 => number(be(take(input, 8)?) as i64 as f64),
        0xca => number(f32::from_bits(be(take(input, 4)?) as u32) as f64),
        0xcb => number(f64::from_bits(be(take(input, 8)?))),
        _ => {
            // A string, array or map: its size first, then its contents.
            let (kind, n) = match tag {
                0xa0..=0xbf => (b's', (tag & 0x1f) as usize),
                0xd9 => (b's', length(input, 1)?),
                0xda => (b's', length(input, 2)?),
                0xdb => (b's', length(input, 4)?),
                0x90..=0x9f => (b'a', (tag & 0x0f) as usize),
                0xdc => (b'a', length(input, 2)?),
                0xdd => (b'a', length(input, 4)?),
                0x80..=0x8f => (b'm', (tag & 0x0f) as usize),
                0xde => (b'm', length(input, 2)?),
                0xdf => (b'm', length(input, 4)?),
                _ => return Err(mlua::Error::RuntimeError("Bad data format in input.".into())),
            };
            match kind {
                b's' => string(lua, input, n),
                b'a' => array(lua, input, n),
                _ => map(lua, input, n),
            }
        }
    }
}

/// A big-endian length of `width` bytes.
fn length(input: &mut &[u8], width: usize) -> mlua::Result<usize> {
    Ok(be(take(input, width)?) as usize)
}

fn string(lua: &Lua, input: &mut &[u8], n: usize) -> mlua::Result<Value> {
    Ok(Value::String(lua.create_string(take(input, n)?)?))
}

fn array(lua: &Lua, input: &mut &[u8], n: usize) -> mlua::Result<Value> {
    // Each element takes at least a byte: a count beyond the input is bad data, not an
    // allocation.
    let t = lua.create_table_with_capacity(n.min(input.len()), 0)?;
    for i in 1..=n {
        t.raw_set(i, decode(lua, input)?)?;
    }
    Ok(Value::Table(t))
}

fn map(lua: &Lua, input: &mut &[u8], n: usize) -> mlua::Result<Value> {
    let t = lua.create_table_with_capacity(0, n.min(input.len()))?;
    for _ in 0..n {
        let k = decode(lua, input)?;
        let v = decode(lua, input)?;
        if !matches!(k, Value::Nil) {
            t.raw_set(k, v)?;
        }
    }
    Ok(Value::Table(t))
}
