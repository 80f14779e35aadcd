//! Replies between Redis and Lua, by Redis's conversion rules (the ones scripts written for
//! Redis depend on).
//!
//! Redis → Lua (what `redis.call` returns, in the RESP2 shapes scripts see by default): an
//! integer becomes a number, a bulk string a string, a nil `false`, an array a table, a status
//! `{ok = text}`, an error `{err = text}`. After `redis.setresp(3)`: a null is nil, a boolean a
//! boolean, a map `{map = {k = v}}`, a set `{set = {member = true}}`, a double
//! `{double = n}`, a big number `{big_number = digits}`, a verbatim string
//! `{verbatim_string = {format = f, string = s}}`.
//!
//! Lua → Redis (what a script returns): a number becomes an integer (truncated), a string a
//! bulk string, `true` the integer 1 and `false` a nil (RESP3 booleans after
//! `redis.setresp(3)`), nil a nil, a table with `err` an error, with `ok` a status, with
//! `double`, `big_number`, `verbatim_string`, `map` or `set` those RESP3 types (a big number
//! a bulk string in RESP2, line breaks made spaces), and any other table an array
//! of its elements up to the first nil.

use bytes::Bytes;
use common::resp::Frame;
use mlua::{Lua, Table, Value};

/// How deep nested tables may go before the rest is cut (Redis checks the C stack similarly).
const MAX_DEPTH: usize = 64;

/// A reply of a command called by a script, as the script sees it (`resp3`: after
/// `redis.setresp(3)`).
pub fn to_lua(lua: &Lua, frame: Frame, resp3: bool) -> mlua::Result<Value> {
    if resp3 {
        if let Some(value) = resp3_to_lua(lua, &frame)? {
            return Ok(value);
        }
    }
    Ok(match frame {
        Frame::Simple(text) => {
            Value::Table(lua.create_table_from([("ok", lua.create_string(&text)?)])?)
        }
        Frame::Error(text) => Value::Table(error_table(lua, &text)?),
        Frame::Integer(n) => Value::Number(n as f64),
        Frame::Bulk(bytes) | Frame::Verbatim(_, bytes) | Frame::BigNumber(bytes) => {
            Value::String(lua.create_string(&bytes)?)
        }
        Frame::Null | Frame::NullArray => Value::Boolean(false),
        Frame::Array(items) | Frame::Set(items) | Frame::Push(items) => {
            let table = lua.create_table_with_capacity(items.len(), 0)?;
            for (i, item) in items.into_iter().enumerate() {
                table.raw_set(i + 1, to_lua(lua, item, resp3)?)?;
            }
            Value::Table(table)
        }
        Frame::Map(pairs) => {
            let table = lua.create_table_with_capacity(pairs.len() * 2, 0)?;
            for (i, (k, v)) in pairs.into_iter().enumerate() {
                table.raw_set(2 * i + 1, to_lua(lua, k, resp3)?)?;
                table.raw_set(2 * i + 2, to_lua(lua, v, resp3)?)?;
            }
            Value::Table(table)
        }
        Frame::Double(d) => {
            let mut text = Vec::new();
            Frame::Double(d).encode(common::resp::Protocol::Resp2, &mut text);
            // `$len\r\n<digits>\r\n`: the digits.
            let start = text.iter().position(|&b| b == b'\n').map_or(0, |p| p + 1);
            Value::String(lua.create_string(&text[start..text.len().saturating_sub(2)])?)
        }
        Frame::Boolean(b) => Value::Number(if b { 1.0 } else { 0.0 }),
        // A reply its handler encoded already (LRANGE's), in RESP2 as scripts get them.
        Frame::Raw(bytes) => match common::resp::decode(&bytes) {
            Ok(Some((frame, _))) => to_lua(lua, frame, resp3)?,
            _ => Value::Boolean(false),
        },
    })
}

/// The RESP3-only shapes (`None`: the frame converts as in RESP2).
fn resp3_to_lua(lua: &Lua, frame: &Frame) -> mlua::Result<Option<Value>> {
    let wrap = |name: &str, inner: Value| -> mlua::Result<Value> {
        Ok(Value::Table(lua.create_table_from([(name, inner)])?))
    };
    Ok(Some(match frame {
        Frame::Null | Frame::NullArray => Value::Nil,
        Frame::Boolean(b) => Value::Boolean(*b),
        Frame::Double(d) => wrap("double", Value::Number(*d))?,
        Frame::BigNumber(digits) => wrap("big_number", Value::String(lua.create_string(digits)?))?,
        Frame::Verbatim(format, text) => {
            let inner = lua.create_table()?;
            inner.raw_set("format", *format)?;
            inner.raw_set("string", lua.create_string(text)?)?;
            wrap("verbatim_string", Value::Table(inner))?
        }
        Frame::Map(pairs) => {
            let map = lua.create_table_with_capacity(0, pairs.len())?;
            for (k, v) in pairs {
                map.raw_set(to_lua(lua, k.clone(), true)?, to_lua(lua, v.clone(), true)?)?;
            }
            wrap("map", Value::Table(map))?
        }
        Frame::Set(members) => {
            let set = lua.create_table_with_capacity(0, members.len())?;
            for m in members {
                set.raw_set(to_lua(lua, m.clone(), true)?, true)?;
            }
            wrap("set", Value::Table(set))?
        }
        _ => return Ok(None),
    }))
}

/// `{err = text}`, the form of an error reply in Lua.
pub fn error_table(lua: &Lua, text: &[u8]) -> mlua::Result<Table> {
    lua.create_table_from([("err", lua.create_string(text)?)])
}

/// `{err = text}` for a command's error that was counted in the error statistics when the
/// command answered it: marked so that the script's reply does not count it again (the
/// field Redis 7.0 sets).
pub fn counted_error_table(lua: &Lua, text: &[u8]) -> mlua::Result<Table> {
    let table = error_table(lua, text)?;
    table.raw_set("ignore_error_stats_update", true)?;
    Ok(table)
}

/// Whether a script's result (or the error it raised) is such a counted error.
pub fn is_counted_error(value: &Value) -> bool {
    let Value::Table(t) = value else { return false };
    matches!(t.raw_get::<Value>("err"), Ok(Value::String(_)))
        && t.raw_get::<bool>("ignore_error_stats_update").unwrap_or(false)
}

/// What a script returned, as the reply to EVAL (`resp3`: the script called
/// `redis.setresp(3)`, which makes its booleans RESP3 booleans).
pub fn from_lua(value: &Value, resp3: bool) -> Frame {
    from_lua_at(value, 0, resp3)
}

fn from_lua_at(value: &Value, depth: usize, resp3: bool) -> Frame {
    match value {
        Value::Nil => Frame::Null,
        Value::Boolean(b) if resp3 => Frame::Boolean(*b),
        Value::Boolean(true) => Frame::Integer(1),
        Value::Boolean(false) => Frame::Null,
        Value::Integer(n) => Frame::Integer(*n),
        // A C cast, as Redis's: truncated toward zero, saturating at the ends.
        Value::Number(n) => Frame::Integer(*n as i64),
        Value::String(s) => Frame::Bulk(Bytes::copy_from_slice(&s.as_bytes())),
        Value::Table(t) if depth < MAX_DEPTH => table_reply(t, depth, resp3),
        // Cut with Redis's error where Redis runs out of Lua stack (a table that holds itself
        // would otherwise never end), so a client reading the nesting meets an error, not nil.
        Value::Table(_) => Frame::Error(Bytes::from_static(b"ERR reached lua stack limit")),
        _ => Frame::Null,
    }
}

fn table_reply(t: &Table, depth: usize, resp3: bool) -> Frame {
    if let Ok(Value::String(err)) = t.raw_get::<Value>("err") {
        return Frame::Error(Bytes::from(one_line(&err.as_bytes())));
    }
    if let Ok(Value::String(ok)) = t.raw_get::<Value>("ok") {
        return Frame::Simple(Bytes::from(one_line(&ok.as_bytes())));
    }
    if let Ok(Value::Number(d)) = t.raw_get::<Value>("double") {
        return Frame::Double(d);
    }
    if let Ok(Value::String(digits)) = t.raw_get::<Value>("big_number") {
        return Frame::BigNumber(Bytes::from(one_line(&digits.as_bytes())));
    }
    if let Ok(Value::Table(verbatim)) = t.raw_get::<Value>("verbatim_string") {
        if let (Ok(Value::String(format)), Ok(Value::String(text))) =
            (verbatim.raw_get::<Value>("format"), verbatim.raw_get::<Value>("string"))
        {
            // Redis takes any three-letter format; the two it defines are kept as they are.
            let format = if &*format.as_bytes() == b"mkd" { "mkd" } else { "txt" };
            return Frame::Verbatim(format, Bytes::copy_from_slice(&text.as_bytes()));
        }
    }
    if let Ok(Value::Table(map)) = t.raw_get::<Value>("map") {
        let pairs = map.pairs::<Value, Value>().filter_map(Result::ok);
        return Frame::Map(
            pairs
                .map(|(k, v)| {
                    (from_lua_at(&k, depth + 1, resp3), from_lua_at(&v, depth + 1, resp3))
                })
                .collect(),
        );
    }
    if let Ok(Value::Table(set)) = t.raw_get::<Value>("set") {
        let members = set.pairs::<Value, Value>().filter_map(Result::ok);
        return Frame::Set(members.map(|(k, _)| from_lua_at(&k, depth + 1, resp3)).collect());
    }
    let mut items = Vec::new();
    for i in 1.. {
        match t.raw_get::<Value>(i) {
            Ok(Value::Nil) | Err(_) => break,
            Ok(v) => items.push(from_lua_at(&v, depth + 1, resp3)),
        }
    }
    Frame::Array(items)
}

/// An error or status text on one line (a reply cannot hold CR or LF).
fn one_line(text: &[u8]) -> Vec<u8> {
    text.iter().map(|&b| if b == b'\r' || b == b'\n' { b' ' } else { b }).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn script_values_become_replies() {
        let lua = Lua::new();
        let v: Value = lua.load("return {1, 'two', {3.9}, nil, 5}").eval().unwrap();
        assert_eq!(
            from_lua(&v, false),
            Frame::Array(vec![
                Frame::Integer(1),
                Frame::Bulk(Bytes::from_static(b"two")),
                Frame::Array(vec![Frame::Integer(3)]),
            ])
        );
        let v: Value = lua.load("return {err = 'bad\\nthing'}").eval().unwrap();
        assert_eq!(from_lua(&v, false), Frame::Error(Bytes::from_static(b"bad thing")));
        assert_eq!(from_lua(&Value::Boolean(false), false), Frame::Null);
        assert_eq!(from_lua(&Value::Boolean(false), true), Frame::Boolean(false));
        assert_eq!(from_lua(&Value::Number(-3.7), false), Frame::Integer(-3));
        // A table that holds itself nests until the cut, which is an error, as in Redis.
        let v: Value = lua.load("local a = {} local b = {a} a[1] = b return a").eval().unwrap();
        let mut frame = from_lua(&v, false);
        while let Frame::Array(mut items) = frame {
            assert_eq!(items.len(), 1);
            frame = items.remove(0);
        }
        assert_eq!(frame, Frame::Error(Bytes::from_static(b"ERR reached lua stack limit")));
    }
}
