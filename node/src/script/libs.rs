//! The libraries Redis gives scripts besides Lua's own: `cjson` (JSON in and out), `bit`
//! (32-bit operations, as LuaBitOp) and `cmsgpack` (in `msgpack`). (`struct` is not provided.)

use mlua::{Lua, MultiValue, Table, Value, Variadic};

/// Installs `cjson` and `bit` as globals.
pub fn install(lua: &Lua) -> mlua::Result<()> {
    let globals = lua.globals();
    globals.set("cjson", super::cjson::library(lua)?)?;
    globals.set("bit", bit(lua)?)?;
    globals.set("cmsgpack", super::msgpack::library(lua)?)?;
    Ok(())
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
