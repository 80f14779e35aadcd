//! The libraries Redis gives scripts besides Lua's own: `cjson` (JSON in and out), `bit`
//! (32-bit operations, as LuaBitOp) and `cmsgpack` (in `msgpack`). (`struct` is not provided.)

use mlua::{LightUserData, Lua, MultiValue, Table, Value, Variadic};

/// Installs `cjson` and `bit` as globals.
pub fn install(lua: &Lua) -> mlua::Result<()> {
    let globals = lua.globals();
    globals.set("cjson", cjson(lua)?)?;
    globals.set("bit", bit(lua)?)?;
    globals.set("cmsgpack", super::msgpack::library(lua)?)?;
    Ok(())
}

/// `cjson.null`: JSON's null in decoded data.
fn null() -> Value {
    Value::LightUserData(LightUserData(std::ptr::null_mut()))
}

fn cjson(lua: &Lua) -> mlua::Result<Table> {
    let t = lua.create_table()?;
    t.set(
        "encode",
        lua.create_function(|_, value: Value| {
            let json = to_json(&value, 0).map_err(mlua::Error::RuntimeError)?;
            Ok(serde_json::to_string(&json).unwrap_or_default())
        })?,
    )?;
    t.set(
        "decode",
        lua.create_function(|lua, text: mlua::String| {
            let json: serde_json::Value =
                serde_json::from_slice(&text.as_bytes()).map_err(|e| {
                    mlua::Error::RuntimeError(format!(
                        "Expected value but found invalid token: {e}"
                    ))
                })?;
            from_json(lua, &json)
        })?,
    )?;
    t.set("null", null())?;
    Ok(t)
}

fn to_json(value: &Value, depth: usize) -> Result<serde_json::Value, String> {
    use serde_json::Value as J;
    if depth > 1000 {
        return Err("Cannot serialise, excessive nesting (1001)".into());
    }
    Ok(match value {
        Value::Nil => J::Null,
        Value::LightUserData(p) if p.0.is_null() => J::Null,
        Value::Boolean(b) => J::Bool(*b),
        Value::Integer(n) => J::from(*n),
        Value::Number(n) if n.fract() == 0.0 && n.abs() < 1e15 => J::from(*n as i64),
        Value::Number(n) => serde_json::Number::from_f64(*n)
            .map(J::Number)
            .ok_or_else(|| "Cannot serialise number: must not be NaN or Inf".to_string())?,
        Value::String(s) => J::String(String::from_utf8_lossy(&s.as_bytes()).into_owned()),
        Value::Table(t) => {
            let len = t.raw_len();
            let pairs: Vec<(Value, Value)> = t.pairs().filter_map(Result::ok).collect();
            if len > 0 && pairs.len() == len {
                let mut items = Vec::with_capacity(len);
                for i in 1..=len {
                    items.push(to_json(
                        &t.raw_get::<Value>(i).map_err(|e| e.to_string())?,
                        depth + 1,
                    )?);
                }
                J::Array(items)
            } else {
                let mut map = serde_json::Map::new();
                for (k, v) in pairs {
                    let key = match k {
                        Value::String(s) => String::from_utf8_lossy(&s.as_bytes()).into_owned(),
                        Value::Integer(n) => n.to_string(),
                        Value::Number(n) => super::convert::lua_tostring(n),
                        _ => {
                            return Err(
                                "Cannot serialise table: table key must be a number or string"
                                    .into(),
                            )
                        }
                    };
                    map.insert(key, to_json(&v, depth + 1)?);
                }
                J::Object(map)
            }
        }
        other => return Err(format!("Cannot serialise {}: type not supported", other.type_name())),
    })
}

fn from_json(lua: &Lua, json: &serde_json::Value) -> mlua::Result<Value> {
    use serde_json::Value as J;
    Ok(match json {
        J::Null => null(),
        J::Bool(b) => Value::Boolean(*b),
        J::Number(n) => Value::Number(n.as_f64().unwrap_or(0.0)),
        J::String(s) => Value::String(lua.create_string(s)?),
        J::Array(items) => {
            let t = lua.create_table_with_capacity(items.len(), 0)?;
            for (i, item) in items.iter().enumerate() {
                t.raw_set(i + 1, from_json(lua, item)?)?;
            }
            Value::Table(t)
        }
        J::Object(map) => {
            let t = lua.create_table_with_capacity(0, map.len())?;
            for (k, v) in map {
                t.raw_set(k.as_str(), from_json(lua, v)?)?;
            }
            Value::Table(t)
        }
    })
}

/// A Lua number as LuaBitOp reads it: to a 32-bit integer, wrapping.
fn tobit(n: f64) -> i32 {
    (n as i64) as i32
}

fn bit(lua: &Lua) -> mlua::Result<Table> {
    let t = lua.create_table()?;
    let fold = |lua: &Lua, op: fn(i32, i32) -> i32| {
        lua.create_function(move |_, args: Variadic<f64>| {
            Ok(args.iter().map(|&n| tobit(n)).reduce(op).unwrap_or(0) as f64)
        })
    };
    t.set("band", fold(lua, |a, b| a & b)?)?;
    t.set("bor", fold(lua, |a, b| a | b)?)?;
    t.set("bxor", fold(lua, |a, b| a ^ b)?)?;
    t.set("tobit", lua.create_function(|_, n: f64| Ok(tobit(n) as f64))?)?;
    t.set("bnot", lua.create_function(|_, n: f64| Ok(!tobit(n) as f64))?)?;
    t.set("bswap", lua.create_function(|_, n: f64| Ok(tobit(n).swap_bytes() as f64))?)?;
    let shift = |lua: &Lua, op: fn(i32, u32) -> i32| {
        lua.create_function(move |_, (n, by): (f64, f64)| {
            Ok(op(tobit(n), (tobit(by) & 31) as u32) as f64)
        })
    };
    t.set("lshift", shift(lua, |a, s| ((a as u32) << s) as i32)?)?;
    t.set("rshift", shift(lua, |a, s| ((a as u32) >> s) as i32)?)?;
    t.set("arshift", shift(lua, |a, s| a >> s)?)?;
    t.set("rol", shift(lua, |a, s| (a as u32).rotate_left(s) as i32)?)?;
    t.set("ror", shift(lua, |a, s| (a as u32).rotate_right(s) as i32)?)?;
    t.set(
        "tohex",
        lua.create_function(|_, args: MultiValue| {
            let mut args = args.into_iter();
            let n = match args.next() {
                Some(Value::Number(n)) => tobit(n),
                Some(Value::Integer(n)) => n as i32,
                _ => 0,
            };
            let digits = match args.next() {
                Some(Value::Number(d)) => d as i32,
                Some(Value::Integer(d)) => d as i32,
                _ => 8,
            };
            let hex = format!("{:08x}", n as u32);
            let width = digits.unsigned_abs().clamp(1, 8) as usize;
            let text = &hex[8 - width..];
            Ok(if digits < 0 { text.to_uppercase() } else { text.to_string() })
        })?,
    )?;
    Ok(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cjson_and_bit_work_from_lua() {
        let lua = Lua::new();
        install(&lua).unwrap();
        let s: String = lua.load("return cjson.encode({1, 2, {a = 'x'}})").eval().unwrap();
        assert_eq!(s, r#"[1,2,{"a":"x"}]"#);
        let n: f64 = lua.load("return cjson.decode('{\"a\":[5,6]}').a[2]").eval().unwrap();
        assert_eq!(n, 6.0);
        let n: f64 = lua.load("return bit.band(0xff, 0x0f) + bit.lshift(1, 4)").eval().unwrap();
        assert_eq!(n, 31.0);
        let s: String = lua.load("return bit.tohex(255, 4)").eval().unwrap();
        assert_eq!(s, "00ff");
        let n: f64 = lua.load("return bit.bnot(0)").eval().unwrap();
        assert_eq!(n, -1.0);
    }
}
