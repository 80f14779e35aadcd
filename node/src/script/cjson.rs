//! The `cjson` library scripts get, encoding as Redis's Lua CJSON 2.1 does, byte for byte:
//! numbers with `%.14g` (the precision is configurable), `/` escaped as `\/`, a table is an
//! array when every key is a positive integer (holes become `null`, unless the array is
//! excessively sparse), an object otherwise, with its keys in Lua's own iteration order, and
//! `{}` for an empty table. The configuration functions (`encode_max_depth`,
//! `encode_number_precision`, `encode_sparse_array`, …) change the same settings and answer
//! the same way.
//!
//! Decoding is standard JSON (serde_json) into the same Lua shapes; unlike Lua CJSON it refuses
//! the non-JSON number literals (`nan`, `inf`, hex) whatever `decode_invalid_numbers` says, and
//! its error messages are serde_json's after Lua CJSON's first words. `encode_keep_buffer`
//! only tunes Lua CJSON's buffer reuse, so it is answered and has nothing to change here.

use std::sync::Arc;

use parking_lot::Mutex;

use mlua::{LightUserData, Lua, Table, Value};

/// `cjson.null`: JSON's null in decoded data.
pub fn null() -> Value {
    Value::LightUserData(LightUserData(std::ptr::null_mut()))
}

/// The settings the configuration functions change (one set per Lua state, as in Redis).
#[derive(Debug, Clone, Copy)]
struct Config {
    max_depth: i64,
    decode_max_depth: i64,
    precision: i64,
    sparse_convert: bool,
    sparse_ratio: i64,
    sparse_safe: i64,
    invalid_numbers: bool,
    decode_invalid_numbers: bool,
    keep_buffer: bool,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            max_depth: 1000,
            decode_max_depth: 1000,
            precision: 14,
            sparse_convert: false,
            sparse_ratio: 2,
            sparse_safe: 10,
            invalid_numbers: false,
            decode_invalid_numbers: true,
            keep_buffer: true,
        }
    }
}

/// Builds the library.
pub fn library(lua: &Lua) -> mlua::Result<Table> {
    let config = Arc::new(Mutex::new(Config::default()));
    let t = lua.create_table()?;
    let cfg = config.clone();
    t.set(
        "encode",
        lua.create_function(move |lua, value: Value| {
            let mut out = Vec::new();
            encode(&value, &cfg.lock(), 1, &mut out).map_err(|e| super::located(lua, &e))?;
            lua.create_string(&out)
        })?,
    )?;
    let cfg = config.clone();
    t.set(
        "decode",
        lua.create_function(move |lua, text: mlua::String| {
            let json: serde_json::Value =
                serde_json::from_slice(&text.as_bytes()).map_err(|e| {
                    mlua::Error::RuntimeError(format!(
                        "Expected value but found invalid token: {e}"
                    ))
                })?;
            decode(lua, &json, &cfg.lock(), 1)
        })?,
    )?;
    t.set("null", null())?;
    // Each setter takes optional arguments, checks them as Lua CJSON does, and answers the
    // settings in force afterwards.
    let int_option = |name: &'static str,
                      min: i64,
                      max: i64,
                      get: fn(&Config) -> i64,
                      set: fn(&mut Config, i64)| {
        let cfg = config.clone();
        lua.create_function(move |lua, value: Option<i64>| {
            let mut c = *cfg.lock();
            if let Some(v) = value {
                if !(min..=max).contains(&v) {
                    return Err(super::located(
                        lua,
                        &format!("bad argument #1 to '{name}' (expected integer between {min} and {max})"),
                    ));
                }
                set(&mut c, v);
                *cfg.lock() = c;
            }
            Ok(get(&c))
        })
    };
    t.set(
        "encode_max_depth",
        int_option(
            "encode_max_depth",
            1,
            i32::MAX as i64,
            |c| c.max_depth,
            |c, v| c.max_depth = v,
        )?,
    )?;
    t.set(
        "decode_max_depth",
        int_option(
            "decode_max_depth",
            1,
            i32::MAX as i64,
            |c| c.decode_max_depth,
            |c, v| c.decode_max_depth = v,
        )?,
    )?;
    t.set(
        "encode_number_precision",
        int_option("encode_number_precision", 1, 14, |c| c.precision, |c, v| c.precision = v)?,
    )?;
    let bool_option = |get: fn(&Config) -> bool, set: fn(&mut Config, bool)| {
        let cfg = config.clone();
        lua.create_function(move |_, value: Value| {
            let mut c = *cfg.lock();
            if let Some(on) = truthy_option(&value) {
                set(&mut c, on);
                *cfg.lock() = c;
            }
            Ok(get(&c))
        })
    };
    t.set("encode_keep_buffer", bool_option(|c| c.keep_buffer, |c, v| c.keep_buffer = v)?)?;
    t.set(
        "encode_invalid_numbers",
        bool_option(|c| c.invalid_numbers, |c, v| c.invalid_numbers = v)?,
    )?;
    t.set(
        "decode_invalid_numbers",
        bool_option(|c| c.decode_invalid_numbers, |c, v| c.decode_invalid_numbers = v)?,
    )?;
    let cfg = config.clone();
    t.set(
        "encode_sparse_array",
        lua.create_function(
            move |_, (convert, ratio, safe): (Value, Option<i64>, Option<i64>)| {
                let mut c = *cfg.lock();
                if let Some(on) = truthy_option(&convert) {
                    c.sparse_convert = on;
                }
                if let Some(r) = ratio {
                    c.sparse_ratio = r.max(0);
                }
                if let Some(s) = safe {
                    c.sparse_safe = s.max(0);
                }
                *cfg.lock() = c;
                Ok((c.sparse_convert, c.sparse_ratio, c.sparse_safe))
            },
        )?,
    )?;
    Ok(t)
}

/// A boolean option as Lua CJSON reads one: absent (nil) leaves it, anything else sets it to
/// its truth.
fn truthy_option(value: &Value) -> Option<bool> {
    match value {
        Value::Nil => None,
        Value::Boolean(b) => Some(*b),
        Value::String(s) => Some(!matches!(s.to_str().as_deref(), Ok("off"))),
        _ => Some(true),
    }
}

fn encode(value: &Value, cfg: &Config, depth: i64, out: &mut Vec<u8>) -> Result<(), String> {
    match value {
        Value::Nil => out.extend_from_slice(b"null"),
        Value::LightUserData(p) if p.0.is_null() => out.extend_from_slice(b"null"),
        Value::Boolean(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
        Value::Integer(n) => encode_number(*n as f64, cfg, out)?,
        Value::Number(n) => encode_number(*n, cfg, out)?,
        Value::String(s) => encode_string(&s.as_bytes(), out),
        Value::Table(t) => {
            if depth > cfg.max_depth {
                return Err(format!("Cannot serialise, excessive nesting ({depth})"));
            }
            match array_length(t, cfg)? {
                Some(len) if len > 0 => {
                    out.push(b'[');
                    for i in 1..=len {
                        if i > 1 {
                            out.push(b',');
                        }
                        let item: Value = t.raw_get(i).map_err(|e| e.to_string())?;
                        encode(&item, cfg, depth + 1, out)?;
                    }
                    out.push(b']');
                }
                _ => {
                    out.push(b'{');
                    let mut first = true;
                    for pair in t.clone().pairs::<Value, Value>() {
                        let (k, v) = pair.map_err(|e| e.to_string())?;
                        if !first {
                            out.push(b',');
                        }
                        first = false;
                        let number = match &k {
                            Value::Integer(i) => Some(*i as f64),
                            Value::Number(n) => Some(*n),
                            _ => None,
                        };
                        match (&k, number) {
                            (Value::String(s), _) => encode_string(&s.as_bytes(), out),
                            (_, Some(n)) => {
                                out.push(b'"');
                                encode_number(n, cfg, out)?;
                                out.push(b'"');
                            }
                            _ => {
                                return Err(
                                    "Cannot serialise table: table key must be a number or string"
                                        .into(),
                                )
                            }
                        }
                        out.push(b':');
                        encode(&v, cfg, depth + 1, out)?;
                    }
                    out.push(b'}');
                }
            }
        }
        other => return Err(format!("Cannot serialise {}: type not supported", other.type_name())),
    }
    Ok(())
}

/// Lua CJSON's `lua_array_length`: `Some(max key)` when every key is a positive integer,
/// `None` for an object; an excessively sparse array is an error unless converting to an
/// object is on.
fn array_length(t: &Table, cfg: &Config) -> Result<Option<usize>, String> {
    let (mut max, mut items) = (0usize, 0usize);
    for pair in t.clone().pairs::<Value, Value>() {
        let (k, _) = pair.map_err(|e| e.to_string())?;
        let Some(index) = super::array_index(&k) else { return Ok(None) };
        max = max.max(index);
        items += 1;
    }
    let safe = cfg.sparse_safe as usize;
    if cfg.sparse_ratio > 0 && max > safe && max > items * cfg.sparse_ratio as usize {
        if !cfg.sparse_convert {
            return Err("Cannot serialise table: excessively sparse array".into());
        }
        return Ok(None);
    }
    Ok(Some(max))
}

fn encode_number(n: f64, cfg: &Config, out: &mut Vec<u8>) -> Result<(), String> {
    if !n.is_finite() {
        if !cfg.invalid_numbers {
            return Err("Cannot serialise number: must not be NaN or Inf".into());
        }
        // Lua CJSON's "on" spelling of the invalid numbers.
        out.extend_from_slice(if n.is_nan() {
            b"nan"
        } else if n > 0.0 {
            b"inf"
        } else {
            b"-inf"
        });
        return Ok(());
    }
    out.extend_from_slice(common::fmt::format_g(n, cfg.precision as i32).as_bytes());
    Ok(())
}

/// A JSON string with Lua CJSON's escapes: `"`, `\`, `/`, the short forms of control
/// characters, `\u00XX` for the others and for DEL; every other byte as it is.
fn encode_string(s: &[u8], out: &mut Vec<u8>) {
    out.push(b'"');
    for &b in s {
        match b {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'/' => out.extend_from_slice(b"\\/"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            0x08 => out.extend_from_slice(b"\\b"),
            0x0c => out.extend_from_slice(b"\\f"),
            0..=0x1f | 0x7f => out.extend_from_slice(format!("\\u{b:04x}").as_bytes()),
            _ => out.push(b),
        }
    }
    out.push(b'"');
}

fn decode(lua: &Lua, json: &serde_json::Value, cfg: &Config, depth: i64) -> mlua::Result<Value> {
    use serde_json::Value as J;
    if depth > cfg.decode_max_depth && matches!(json, J::Array(_) | J::Object(_)) {
        return Err(mlua::Error::RuntimeError(format!(
            "Found too many nested data structures ({depth})"
        )));
    }
    Ok(match json {
        J::Null => null(),
        J::Bool(b) => Value::Boolean(*b),
        J::Number(n) => Value::Number(n.as_f64().unwrap_or(0.0)),
        J::String(s) => Value::String(lua.create_string(s)?),
        J::Array(items) => {
            let t = lua.create_table_with_capacity(items.len(), 0)?;
            for (i, item) in items.iter().enumerate() {
                t.raw_set(i + 1, decode(lua, item, cfg, depth + 1)?)?;
            }
            Value::Table(t)
        }
        J::Object(map) => {
            let t = lua.create_table_with_capacity(0, map.len())?;
            for (k, v) in map {
                t.raw_set(k.as_str(), decode(lua, v, cfg, depth + 1)?)?;
            }
            Value::Table(t)
        }
    })
}
