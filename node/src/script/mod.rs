//! Lua scripting (EVAL, EVALSHA, SCRIPT), on Lua 5.1 as in Redis.
//!
//! A script runs atomically: under the keyspace lock, like a transaction, its `redis.call`s go
//! through the same command path as EXEC's queued commands, and its writes reach replicas and
//! the AOF as those commands (several as one MULTI/EXEC unit) — Redis 7's effects replication,
//! so a script's randomness or clock never makes a replica differ.
//!
//! One Lua state per server holds every cached script, compiled once under `f_<sha1>`.
//! Globals are protected as in Redis: reading an undefined global or creating one is an error,
//! so scripts cannot leak state into each other. SCRIPT FLUSH starts a fresh state.
//!
//! A script runs to completion while holding the keyspace. Past `busy-reply-threshold`, the
//! other clients are answered `-BUSY` from the script's instruction hook and may stop it with
//! SCRIPT KILL or FUNCTION KILL (one that has not written) or SHUTDOWN NOSAVE (see
//! [`crate::busy`]). A script being stopped cannot swallow the error with `pcall`: the
//! wrapped `pcall` raises it again.
//!
//! `redis.setresp(3)` switches the rest of the run to RESP3: `redis.call` replies arrive in
//! RESP3 shapes (maps, sets, doubles, booleans, nil for null) and the script's booleans reply as
//! RESP3 booleans, as in Redis 7.0.
//!
//! Not provided: `struct`, the script debugger.

mod cjson;
mod convert;
pub mod library;
mod libs;
mod msgpack;
pub mod shebang;

use std::collections::HashMap;

use bytes::Bytes;
use common::resp::{Frame, Protocol};
use mlua::{Function, Lua, LuaOptions, MultiValue, RegistryKey, StdLib, Table, Value};

use crate::cmd::flags;
use crate::cmd::server::feed_monitors;
use crate::dispatch::{check_arity, find, run_locked, Resolved};
use crate::error::CommandError;
use crate::exec::{Ctx, Propagated};

/// The chunk name every script is compiled under: errors read `user_script:LINE: …`.
const CHUNK: &str = "@user_script";

/// Helpers in Lua, run once per state: the error handler that turns any error into
/// `{err = text}` and records where in the script it arose, and the protection of globals.
/// (`redis.call` and `redis.pcall` are native, as in Redis: a script's `return redis.call(…)`
/// is then no tail call, and its line stays on the stack for the error's location.)
const PRELUDE: &str = r#"
local bridge = ...
local type, getinfo = type, debug.getinfo
-- Where an error was raised, as Redis's handler finds it: the function that raised it, or
-- its caller when that is native code. Frames of this prelude's wrappers, of the functions'
-- environment, and the tail calls they make, are passed over (Redis has none).
local function frame_at(level)
  local frame = getinfo(level, 'Sl')
  while frame and (frame.what == 'tail' or frame.source == '=prelude'
                   or frame.source == '=functions') do
    level = level + 1
    frame = getinfo(level, 'Sl')
  end
  return frame, level
end
bridge.on_error = function(err)
  if type(err) ~= 'table' then err = bridge.describe(err) end
  local frame, level = frame_at(3)
  if frame and frame.what == 'C' then frame = frame_at(level + 1) end
  if frame then err.source, err.line = frame.source, frame.currentline end
  return err
end
-- Scripts catch command errors as text, as in Redis 7: a caught {err = text} (or an error
-- raised by redis.call) becomes text.
-- Calls f(...) under xpcall (Lua 5.1's xpcall passes no arguments on).
bridge.invoke = function(f, handler, ...)
  local args, n = {...}, select('#', ...)
  return xpcall(function() return f(unpack(args, 1, n)) end, handler)
end
local lua_pcall = pcall
local function plain(ok, ...)
  if ok then return ok, ... end
  local err = ...
  if type(err) == 'userdata' then err = bridge.message(err) end
  if type(err) == 'table' and type(err.err) == 'string' then err = err.err end
  return false, err
end
local function plain_or_stopped(...)
  if bridge.stopped() then error(bridge.stop_reason(), 0) end
  return plain(...)
end
pcall = function(...) return plain_or_stopped(lua_pcall(...)) end
-- Read-only tables, as Redis makes the globals and the libraries: one script must not be able
-- to change what the next one sees (redis.call, cjson.encode, the globals' protection). The
-- libraries become read-only views of themselves; the globals table keeps a metatable that
-- setmetatable, rawset and writes through getmetatable cannot reach.
-- No precompiled (binary) chunks: Lua 5.1 does not verify bytecode, and a crafted chunk can
-- corrupt the VM (Redis's Lua refuses them too). Only text reaches the compiler.
-- A chunk compiled by a script runs in the scripts' environment (`bridge.env`), not in the
-- raw globals.
local raw_loadstring, raw_load, raw_setfenv = loadstring, load, bridge.setfenv
local function confined(f, ...)
  if f then raw_setfenv(f, bridge.env) end
  return f, ...
end
loadstring = function(s, name)
  if type(s) == 'string' and s:byte(1) == 27 then return nil, 'binary code not allowed' end
  return confined(raw_loadstring(s, name))
end
load = function(reader, name)
  local first = true
  return confined(raw_load(function()
    local piece = reader()
    if first and type(piece) == 'string' and piece ~= '' then
      first = false
      if piece:byte(1) == 27 then return nil end
    end
    return piece
  end, name))
end
local function refuse() error('Attempt to modify a readonly table', 2) end
local raw_setmetatable, raw_getmetatable, raw_rawset = setmetatable, getmetatable, rawset
local readonly = raw_setmetatable({}, { __mode = 'k' })
local function view(t)
  local v = raw_setmetatable({}, { __index = t, __newindex = refuse })
  readonly[v] = true
  return v
end
bridge.redis = redis
for name, value in pairs(_G) do
  if type(value) == 'table' and name ~= '_G' then raw_rawset(_G, name, view(value)) end
end
-- (Raised without a position, as Redis's C checks raise these two.)
setmetatable = function(t, mt)
  if readonly[t] then error('Attempt to modify a readonly table', 0) end
  return raw_setmetatable(t, mt)
end
rawset = function(t, k, v)
  if readonly[t] then error('Attempt to modify a readonly table', 0) end
  return raw_rawset(t, k, v)
end
getmetatable = function(t)
  local mt = raw_getmetatable(t)
  if readonly[t] and mt ~= nil then return view(mt) end
  return mt
end
raw_setmetatable(_G, {
  __index = function(_, name)
    error("Script attempted to access nonexistent global variable '" .. tostring(name) .. "'", 2)
  end,
  __newindex = refuse,
})
-- Scripts run in a view of the globals, `bridge.env`: reads fall through to the globals, and
-- every write is refused — also to a global that exists, which the globals' own metatable
-- never sees (Redis marks the globals table itself read-only in its patched Lua). `_G` names
-- the view; rawget, next and pairs given it look at the globals behind it.
local globals = _G
local env = raw_setmetatable({}, { __index = globals, __newindex = refuse })
readonly[env] = true
raw_rawset(globals, '_G', env)
bridge.env = env
local raw_rawget, raw_next = rawget, next
local function behind(t) if t == env then return globals end return t end
rawget = function(t, k) return raw_rawget(behind(t), k) end
next = function(t, k) return raw_next(behind(t), k) end
pairs = function(t) return raw_next, behind(t), nil end
readonly[_G] = true
"#;

/// The script running on this thread: when it started, its time limit, whether it wrote.
#[derive(Clone, Copy)]
struct Running {
    started: std::time::Instant,
    limit: std::time::Duration,
    wrote: bool,
    warned: bool,
    /// Run by our master or the AOF: never stopped.
    obeyed: bool,
    /// Why it is being stopped, once it is.
    halted: Option<Halt>,
    /// `redis.setresp(3)` was called.
    resp3: bool,
}

/// Why a script is stopped before its end.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Halt {
    /// Past the threshold without writing, where no client could send SCRIPT KILL.
    Threshold,
    /// SCRIPT KILL or FUNCTION KILL.
    Killed,
    /// SHUTDOWN NOSAVE.
    Shutdown,
}

impl Halt {
    fn text(self) -> &'static str {
        match self {
            Halt::Threshold => STOPPED,
            Halt::Killed => "ERR Script killed by user with SCRIPT KILL...",
            Halt::Shutdown => "ERR Script killed by SHUTDOWN NOSAVE",
        }
    }

    fn error(self) -> mlua::Error {
        mlua::Error::RuntimeError(self.text().into())
    }
}

/// Whether the running script asked for RESP3 replies.
fn script_resp3() -> bool {
    RUNNING.get().is_some_and(|r| r.resp3)
}

thread_local! {
    static RUNNING: std::cell::Cell<Option<Running>> = const { std::cell::Cell::new(None) };
    /// While a function library's top level runs: when it must have finished by.
    static LOAD_DEADLINE: std::cell::Cell<Option<std::time::Instant>> =
        const { std::cell::Cell::new(None) };
}

/// True while a script runs on this thread (its commands are the script's).
pub fn is_running() -> bool {
    RUNNING.get().is_some()
}

/// How often (in Lua instructions) a running script's time is checked, as Redis checks it.
const CHECK_EVERY: u32 = 100_000;

const STOPPED: &str = "ERR Script stopped after running longer than busy-reply-threshold \
                       without writing (no client could be served to send SCRIPT KILL)";

/// Called every [`CHECK_EVERY`] instructions (every line once the script is being stopped):
/// past the time limit, serves the other clients and stops the script if they asked.
fn check_time(lua: &Lua, _: mlua::Debug) -> mlua::Result<mlua::VmState> {
    if LOAD_DEADLINE.get().is_some_and(|deadline| std::time::Instant::now() > deadline) {
        return Err(located(lua, "FUNCTION LOAD timeout"));
    }
    let Some(mut run) = RUNNING.get() else { return Ok(mlua::VmState::Continue) };
    if let Some(halt) = run.halted {
        return Err(halt.error());
    }
    if run.started.elapsed() <= run.limit {
        return Ok(mlua::VmState::Continue);
    }
    let halt = match crate::busy::serve(run.wrote) {
        crate::busy::Verdict::Continue => return Ok(mlua::VmState::Continue),
        crate::busy::Verdict::Kill => {
            tracing::warn!("Lua script killed by user with SCRIPT KILL.");
            Halt::Killed
        }
        crate::busy::Verdict::Shutdown => Halt::Shutdown,
        crate::busy::Verdict::Unserved if !run.wrote && !run.obeyed => Halt::Threshold,
        crate::busy::Verdict::Unserved => {
            if !run.warned {
                run.warned = true;
                RUNNING.set(Some(run));
                tracing::warn!(
                    limit_ms = run.limit.as_millis() as u64,
                    "a script has run past busy-reply-threshold and cannot be stopped \
                     (it has written, or our master or the AOF sent it): it runs on"
                );
            }
            return Ok(mlua::VmState::Continue);
        }
    };
    run.halted = Some(halt);
    RUNNING.set(Some(run));
    Err(halt.error())
}

/// A cached script.
struct Compiled {
    function: RegistryKey,
    /// Its source's size (INFO memory).
    size: usize,
    /// What its shebang declares.
    flags: shebang::ScriptFlags,
}

/// A Lua state with Redis's libraries, the `redis` table and protected globals: one runs the
/// EVAL scripts, another the function libraries (as in Redis, so neither sees the other).
pub(crate) struct Engine {
    pub(crate) lua: Lua,
    /// The table `redis.call` reaches the engine through.
    bridge: RegistryKey,
}

impl Engine {
    /// A fresh state.
    pub(crate) fn new() -> Engine {
        // SAFETY: mlua calls `debug` unsafe because it can reach into other functions' state;
        // Redis gives it to scripts too, and our error handler needs `debug.getinfo`. No
        // library that loads native code (`package`, `require`) is opened.
        let lua = unsafe {
            Lua::unsafe_new_with(
                StdLib::TABLE | StdLib::STRING | StdLib::MATH | StdLib::DEBUG,
                LuaOptions::default(),
            )
        };
        let bridge = setup(&lua).expect("the script environment is valid Lua");
        lua.set_hook(mlua::HookTriggers::new().every_nth_instruction(CHECK_EVERY), check_time);
        Engine { lua, bridge }
    }
}

/// The EVAL engine and the scripts compiled in it.
pub struct Scripts {
    engine: Engine,
    /// Compiled scripts by SHA1 (lower-case hex), with their source's size.
    compiled: HashMap<String, Compiled>,
}

impl Scripts {
    /// A fresh state with Redis's libraries and helpers.
    pub fn new() -> Scripts {
        Scripts { engine: Engine::new(), compiled: HashMap::new() }
    }

    /// True if a script with this SHA1 is cached.
    pub fn exists(&self, sha: &str) -> bool {
        self.compiled.contains_key(&sha.to_ascii_lowercase())
    }

    /// Compiles and caches `body` (if not already) and returns its SHA1. A shebang line is
    /// read for the script's flags and left out of the Lua (its newline stays, so lines keep
    /// their numbers).
    pub fn load(&mut self, body: &[u8]) -> Result<String, CommandError> {
        let sha = sha1_hex(body);
        if !self.compiled.contains_key(&sha) {
            let (flags, shebang) = shebang::parse(body).map_err(CommandError::err)?;
            let env = self.engine.environment().map_err(internal)?;
            let function = self
                .engine
                .lua
                .load(&body[shebang..])
                .set_name(CHUNK)
                .set_mode(mlua::ChunkMode::Text)
                .set_environment(env)
                .into_function()
                .map_err(|e| {
                    CommandError::err(format!(
                        "Error compiling script (new function): {}",
                        lua_message(&e)
                    ))
                })?;
            let function = self.engine.lua.create_registry_value(function).map_err(internal)?;
            self.compiled.insert(sha.clone(), Compiled { function, size: body.len(), flags });
        }
        Ok(sha)
    }

    /// The flags of the script an EVAL-family command would run: its body's shebang, or the
    /// cached script's for EVALSHA (`None`: not cached, or a malformed shebang).
    pub fn flags_of(&self, source: Source<'_>) -> Option<shebang::ScriptFlags> {
        match source {
            Source::Body(body) => shebang::parse(body).ok().map(|(flags, _)| flags),
            Source::Sha(sha) => {
                let sha = String::from_utf8_lossy(sha).to_ascii_lowercase();
                self.compiled.get(&sha).map(|c| c.flags)
            }
        }
    }

    /// How many scripts are cached and the bytes of their sources (INFO memory).
    pub fn usage(&self) -> (usize, usize) {
        (self.compiled.len(), self.compiled.values().map(|c| c.size).sum())
    }

    /// The memory the Lua state uses.
    pub fn lua_memory(&self) -> usize {
        self.engine.lua.used_memory()
    }
}

impl Default for Scripts {
    fn default() -> Scripts {
        Scripts::new()
    }
}

fn setup(lua: &Lua) -> mlua::Result<RegistryKey> {
    let globals = lua.globals();
    let bridge = lua.create_table()?;
    // Kept for the bridge only: it confines chunks that scripts compile.
    bridge.raw_set("setfenv", globals.raw_get::<Value>("setfenv")?)?;
    // No file access from scripts, nor ways around the protected globals (Redis 7.0 removes
    // the same functions).
    for name in ["loadfile", "dofile", "print", "setfenv", "getfenv", "newproxy"] {
        globals.raw_set(name, Value::Nil)?;
    }
    libs::install(lua)?;
    globals.set("redis", redis_table(lua)?)?;
    bridge.set(
        "describe",
        lua.create_function(|lua, err: Value| {
            if let Value::Error(e) = &err {
                if let Some(ReplyError(text, true)) = reply_error(e) {
                    return convert::counted_error_table(lua, text);
                }
            }
            let text = match &err {
                Value::Error(e) => match reply_error(e) {
                    Some(reply) => reply.0.to_vec(),
                    None => match lua_message(e) {
                        coded if coded.starts_with("ERR ") => coded.into_bytes(),
                        message => format!("ERR {message}").into_bytes(),
                    },
                },
                Value::String(s) => [b"ERR ".as_slice(), &s.as_bytes()].concat(),
                other => format!("ERR {}", other.to_string().unwrap_or_default()).into_bytes(),
            };
            convert::error_table(lua, &text)
        })?,
    )?;
    bridge.set(
        "stopped",
        lua.create_function(|_, ()| Ok(RUNNING.get().is_some_and(|r| r.halted.is_some())))?,
    )?;
    bridge.set(
        "stop_reason",
        lua.create_function(|lua, ()| {
            let halt = RUNNING.get().and_then(|r| r.halted).unwrap_or(Halt::Threshold);
            convert::error_table(lua, halt.text().as_bytes())
        })?,
    )?;
    // What pcall hands a script for an error raised by native code: a command's error reply
    // as it was, anything else as its message (as a C library's luaL_error string).
    bridge.set(
        "message",
        lua.create_function(|lua, err: Value| match &err {
            Value::Error(e) => match reply_error(e) {
                Some(reply) => lua.create_string(&reply.0),
                None => lua.create_string(lua_message(e)),
            },
            other => lua.create_string(other.to_string().unwrap_or_default()),
        })?,
    )?;
    lua.load(PRELUDE).set_name("=prelude").call::<()>(bridge.clone())?;
    lua.create_registry_value(bridge)
}

/// The error `redis.error_reply(text)` makes, as Redis's `luaPushErrorBuff` words it: the
/// first word (after one leading `-`) is the code if a space follows it, otherwise the code
/// is `ERR` and the whole text the message (`""` → `ERR `, `-FOO` → `ERR FOO`).
fn error_reply_text(text: &[u8]) -> Vec<u8> {
    let text = text.strip_prefix(b"-").unwrap_or(text);
    let (code, message) = match text.iter().position(|&b| b == b' ') {
        Some(space) => (&text[..space], &text[space + 1..]),
        None => (b"ERR".as_slice(), text),
    };
    let newline = |b: &u8| *b == b'\r' || *b == b'\n';
    let start = message.iter().position(|b| !newline(b)).unwrap_or(message.len());
    let end = message.iter().rposition(|b| !newline(b)).map_or(start, |i| i + 1);
    [code, b" ", &message[start..end]].concat()
}

/// The `redis` library, except `call` and `pcall` (the prelude adds those).
fn redis_table(lua: &Lua) -> mlua::Result<Table> {
    let redis = lua.create_table()?;
    // Argument checks and words as Redis's helpers have them: sha1hex and log raise, while
    // error_reply and status_reply return an error reply for bad arguments.
    redis.set(
        "sha1hex",
        lua.create_function(|_, args: MultiValue| {
            if args.len() != 1 {
                return Err(mlua::Error::RuntimeError("wrong number of arguments".into()));
            }
            // Anything but a string or a number hashes as nothing, as lua_tolstring gives NULL.
            Ok(sha1_hex(&lua_text(&args[0]).unwrap_or_default()))
        })?,
    )?;
    let reply_helper = |kind: &'static str| {
        lua.create_function(move |lua, args: MultiValue| match args.iter().next() {
            Some(Value::String(s)) if args.len() == 1 => {
                if kind == "err" {
                    convert::error_table(lua, &error_reply_text(&s.as_bytes()))
                } else {
                    lua.create_table_from([("ok", s.clone())])
                }
            }
            _ => convert::error_table(lua, b"ERR wrong number or type of arguments"),
        })
    };
    redis.set("error_reply", reply_helper("err")?)?;
    redis.set("status_reply", reply_helper("ok")?)?;
    for (name, level) in
        [("LOG_DEBUG", 0), ("LOG_VERBOSE", 1), ("LOG_NOTICE", 2), ("LOG_WARNING", 3)]
    {
        redis.set(name, level)?;
    }
    redis.set(
        "log",
        lua.create_function(|_, args: MultiValue| {
            if args.len() < 2 {
                return Err(mlua::Error::RuntimeError(
                    "redis.log() requires two arguments or more.".into(),
                ));
            }
            let Some(level) = lua_number(&args[0]) else {
                return Err(mlua::Error::RuntimeError(
                    "First argument must be a number (log level).".into(),
                ));
            };
            let level = level as i64;
            if !(0..=3).contains(&level) {
                return Err(mlua::Error::RuntimeError("Invalid debug level.".into()));
            }
            // Strings and numbers are logged, anything else is left out, joined by spaces.
            let parts: Vec<String> = args
                .iter()
                .skip(1)
                .filter_map(lua_text)
                .map(|text| String::from_utf8_lossy(&text).into_owned())
                .collect();
            let text = parts.join(" ");
            match level {
                0 | 1 => tracing::debug!(target: "script", "{text}"),
                2 => tracing::info!(target: "script", "{text}"),
                _ => tracing::warn!(target: "script", "{text}"),
            }
            Ok(())
        })?,
    )?;
    // Effects replication is the only kind (as Redis 7 has it): these only answer.
    for (name, value) in
        [("REPL_NONE", 0), ("REPL_AOF", 1), ("REPL_SLAVE", 2), ("REPL_REPLICA", 2), ("REPL_ALL", 3)]
    {
        redis.set(name, value)?;
    }
    redis.set("set_repl", lua.create_function(|_, _: MultiValue| Ok(()))?)?;
    redis.set("replicate_commands", lua.create_function(|_, ()| Ok(true))?)?;
    redis.set(
        "setresp",
        lua.create_function(|_, args: MultiValue| {
            if args.len() != 1 {
                return Err(mlua::Error::RuntimeError(
                    "redis.setresp() requires one argument.".into(),
                ));
            }
            let resp3 = match lua_number(&args[0]).unwrap_or(0.0) as i64 {
                2 => false,
                3 => true,
                _ => return Err(mlua::Error::RuntimeError("RESP version must be 2 or 3.".into())),
            };
            if let Some(mut run) = RUNNING.get() {
                run.resp3 = resp3;
                RUNNING.set(Some(run));
            }
            Ok(())
        })?,
    )?;
    redis.set("breakpoint", lua.create_function(|_, ()| Ok(false))?)?;
    redis.set("REDIS_VERSION", crate::cmd::info::REDIS_VERSION)?;
    redis.set("REDIS_VERSION_NUM", library::version_num(crate::cmd::info::REDIS_VERSION))?;
    redis.set("debug", lua.create_function(|_, _: MultiValue| Ok(()))?)?;
    install_runner_functions(lua, &redis)?;
    Ok(redis)
}

/// A value as `lua_tolstring` reads it: a string, or a number as text; `None` otherwise.
pub(super) fn lua_text(value: &Value) -> Option<Vec<u8>> {
    match value {
        Value::String(s) => Some(s.as_bytes().to_vec()),
        Value::Integer(n) => Some(n.to_string().into_bytes()),
        Value::Number(n) => Some(common::fmt::format_g(*n, 14).into_bytes()),
        _ => None,
    }
}

/// A value as `lua_tonumber` reads it: a number, or a string holding one.
pub(super) fn lua_number(value: &Value) -> Option<f64> {
    match value {
        Value::Integer(n) => Some(*n as f64),
        Value::Number(n) => Some(*n),
        Value::String(s) => s.to_str().ok().and_then(|t| t.trim().parse().ok()),
        _ => None,
    }
}

/// A table key that can index an array (a positive integral number), as the JSON and
/// MessagePack encoders decide between an array and a map.
pub(super) fn array_index(key: &Value) -> Option<usize> {
    let n = match key {
        Value::Integer(i) => *i as f64,
        Value::Number(n) => *n,
        _ => return None,
    };
    (n >= 1.0 && n.fract() == 0.0).then_some(n as usize)
}

/// An error as C's `luaL_error` raises it: prefixed with where in the calling Lua code.
pub(super) fn located(lua: &Lua, message: &str) -> mlua::Error {
    let place = lua
        .inspect_stack(1)
        .and_then(|frame| {
            let line = frame.curr_line();
            let source = frame.source().short_src.map(|s| s.into_owned()).unwrap_or_default();
            (line > 0).then(|| format!("{source}:{line}: "))
        })
        .unwrap_or_default();
    mlua::Error::RuntimeError(format!("{place}{message}"))
}

/// Lower-case hex SHA1, as script ids are written.
pub fn sha1_hex(bytes: &[u8]) -> String {
    // Spelt by hand: the digest's Display formats byte by byte, which cost more than the
    // hashing itself for a short EVAL body.
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let digest = sha1_smol::Sha1::from(bytes).digest().bytes();
    let mut text = String::with_capacity(40);
    for b in digest {
        text.push(HEX[(b >> 4) as usize] as char);
        text.push(HEX[(b & 15) as usize] as char);
    }
    text
}

/// A Lua error's message without mlua's decoration (stack traceback, callback wrapping).
fn lua_message(e: &mlua::Error) -> String {
    match e {
        mlua::Error::SyntaxError { message, .. } => message.clone(),
        mlua::Error::RuntimeError(message) => message.clone(),
        mlua::Error::CallbackError { cause, .. } => lua_message(cause),
        other => other.to_string(),
    }
}

/// An error reply raised into the script: a command's, from `redis.call` (`.1`: already
/// counted in the error statistics when the command answered it), or one of the script
/// library's own.
#[derive(Debug)]
struct ReplyError(Bytes, bool);

impl std::fmt::Display for ReplyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&String::from_utf8_lossy(&self.0))
    }
}

impl std::error::Error for ReplyError {}

impl ReplyError {
    /// An error reply raised into the script as a table error (Redis's luaPushError +
    /// luaError): its text is final.
    fn raised(frame: Frame) -> mlua::Error {
        match frame {
            Frame::Error(text) => mlua::Error::external(ReplyError(text, false)),
            other => mlua::Error::RuntimeError(format!("{other:?}")),
        }
    }
}

/// The [`ReplyError`] inside an error that came back through Lua, if that is what it is.
fn reply_error(e: &mlua::Error) -> Option<&ReplyError> {
    match e {
        mlua::Error::CallbackError { cause, .. } => reply_error(cause),
        other => other.downcast_ref::<ReplyError>(),
    }
}

fn internal(e: mlua::Error) -> CommandError {
    CommandError::err(format!("Lua: {}", lua_message(&e)))
}

/// What to run: a script's source (EVAL) or the SHA1 of a cached one (EVALSHA).
pub enum Source<'a> {
    /// EVAL's body.
    Body(&'a [u8]),
    /// EVALSHA's id.
    Sha(&'a [u8]),
}

/// Runs a script for EVAL/EVALSHA (`read_only` for the `_RO` forms), with `keys` as KEYS and
/// `args` as ARGV. `command` is the whole EVAL, for MONITOR.
pub fn eval(
    ctx: &mut Ctx<'_>,
    command: &[Bytes],
    source: Source<'_>,
    keys: &[Bytes],
    args: &[Bytes],
    read_only: bool,
) -> Result<Frame, CommandError> {
    let server = ctx.server;
    // MONITOR shows the EVAL before the commands it runs (it is not fed after it ran).
    feed_monitors(server, ctx.db, &ctx.client.addr, command, ctx.now_ms);
    let mut scripts = server.scripts.lock();
    let sha = match source {
        Source::Body(body) => scripts.load(body)?,
        Source::Sha(sha) => {
            let sha = String::from_utf8_lossy(sha).to_ascii_lowercase();
            if !scripts.compiled.contains_key(&sha) {
                return Err(CommandError::raw("NOSCRIPT No matching script. Please use EVAL."));
            }
            sha
        }
    };
    let compiled = &scripts.compiled[&sha];
    if !compiled.flags.compat {
        prepare(ctx, compiled.flags, read_only)?;
    }
    let call = Call {
        keys,
        args,
        as_globals: true,
        name: &sha,
        read_only: read_only || compiled.flags.no_writes,
        allow_oom: compiled.flags.allow_oom,
        caller: &String::from_utf8_lossy(&command[0]).to_ascii_lowercase(),
        command,
        library_counts: (0, 0),
    };
    let function: Function =
        scripts.engine.lua.registry_value(&compiled.function).map_err(internal)?;
    let outcome = run(ctx, &scripts.engine, function, &call);
    // Large KEYS/ARGV are let go at once rather than held until the next EVAL; small ones
    // are simply replaced then (emptying them costs two tables per EVAL).
    let held: usize = keys.iter().chain(args).map(|a| a.len() + 16).sum();
    if held > 4096 {
        scripts.engine.set_arguments(&[], &[]).map_err(internal)?;
    }
    outcome
}

/// The checks Redis makes before running a script that declared its flags (a shebang script,
/// every function), in Redis's order (`scriptPrepareForRun`): one that may write is refused on
/// a read-only replica, by the `_RO` commands, and (unless `allow-oom`) over `maxmemory`.
/// A script that declared `no-writes` then runs as EVAL_RO does.
pub(crate) fn prepare(
    ctx: &Ctx<'_>,
    flags: shebang::ScriptFlags,
    read_only: bool,
) -> Result<(), CommandError> {
    if !flags.no_writes {
        let gates = ctx.server.gates.load(std::sync::atomic::Ordering::Relaxed);
        if gates & crate::server::gate::READ_ONLY != 0
            && ctx.client.kind != crate::client::ClientKind::Master
        {
            return Err(CommandError::raw(
                "READONLY Can not run script with write flag on readonly replica",
            ));
        }
        if read_only {
            return Err(CommandError::err(
                "Can not execute a script with write flag using *_ro command.",
            ));
        }
    }
    if !flags.allow_oom && !flags.no_writes && ctx.server.eviction.is_out_of_memory() {
        return Err(CommandError::raw(
            "OOM allow-oom flag is not set on the script, can not run it when used memory > \
             'maxmemory'",
        ));
    }
    Ok(())
}

/// How a script or function is called.
pub(crate) struct Call<'a> {
    /// KEYS.
    pub keys: &'a [Bytes],
    /// ARGV.
    pub args: &'a [Bytes],
    /// EVAL sets KEYS and ARGV as globals; a function gets them as its two arguments.
    pub as_globals: bool,
    /// What errors name the script by: its SHA1, or the function's name.
    pub name: &'a str,
    /// Whether write commands are refused.
    pub read_only: bool,
    /// `allow-oom`: its commands run even over `maxmemory`.
    pub allow_oom: bool,
    /// The command that runs it (`eval`, `fcall` …), lower-case: the ACL log names it.
    pub caller: &'a str,
    /// That command's whole request, as sent (FUNCTION STATS shows it while busy).
    pub command: &'a [Bytes],
    /// For a function: libraries and functions loaded (FUNCTION STATS while busy).
    pub library_counts: (usize, usize),
}

/// Runs `function` (a script's body or a registered function) in `engine`, atomically, its
/// `redis.call`s going through the command path, and leaves what it propagates in
/// `ctx.exec.rewrites`.
pub(crate) fn run(
    ctx: &mut Ctx<'_>,
    engine: &Engine,
    function: Function,
    call: &Call<'_>,
) -> Result<Frame, CommandError> {
    let lua = &engine.lua;
    let bridge: Table = lua.registry_value(&engine.bridge).map_err(internal)?;
    let arguments = if call.as_globals {
        engine.set_arguments(call.keys, call.args).map_err(internal)?;
        MultiValue::new()
    } else {
        let mut pair = MultiValue::new();
        for values in [call.keys, call.args] {
            let table = lua.create_table_with_capacity(values.len(), 0).map_err(internal)?;
            for (i, v) in values.iter().enumerate() {
                table.raw_set(i + 1, lua.create_string(v).map_err(internal)?).map_err(internal)?;
            }
            pair.push_back(Value::Table(table));
        }
        pair
    };

    // Inner commands see RESP2 replies whatever the client speaks, and never block.
    let resp = std::mem::replace(&mut ctx.client.resp, Protocol::Resp2);
    // A SELECT inside the script changes only the script's database.
    let db = (ctx.client.db, ctx.exec.db);
    let in_exec = std::mem::replace(&mut ctx.in_exec, true);
    let limit = ctx.server.config.read().settings.busy_reply_threshold;
    let started = std::time::Instant::now();
    let obeyed = ctx.client.kind == crate::client::ClientKind::Master;
    RUNNING.set(Some(Running {
        started,
        limit,
        wrote: false,
        warned: false,
        obeyed,
        halted: None,
        resp3: false,
    }));
    crate::busy::begin(
        ctx.server,
        crate::busy::Script {
            eval: call.as_globals,
            name: call.name.to_string(),
            command: call.command.to_vec(),
            library_counts: call.library_counts,
            from_master: obeyed,
            started,
        },
    );
    let runner = std::cell::RefCell::new(Runner {
        ctx: &mut *ctx,
        read_only: call.read_only,
        allow_oom: call.allow_oom,
        keys: call.keys.to_vec(),
        caller: call.caller.to_string(),
        out: Vec::new(),
    });
    let outcome = {
        // redis.call and co. (made once, in `setup`) reach this runner while it is current.
        let _current = CurrentRunner::enter(&runner);
        (|| -> mlua::Result<(Frame, bool)> {
            let on_error: Function = bridge.raw_get("on_error")?;
            let invoke: Function = bridge.raw_get("invoke")?;
            let mut xargs = MultiValue::new();
            xargs.push_back(Value::Function(function));
            xargs.push_back(Value::Function(on_error));
            xargs.extend(arguments);
            let (ok, value): (bool, Value) = invoke.call(xargs)?;
            let reply = if ok {
                convert::from_lua(&value, script_resp3())
            } else {
                script_error(&value, call.name)
            };
            Ok((reply, convert::is_counted_error(&value)))
        })()
    };
    let halted = RUNNING.get().and_then(|run| run.halted);
    RUNNING.set(None);
    crate::busy::end();
    let mut out = runner.into_inner().out;
    ctx.client.resp = resp;
    ctx.in_exec = in_exec;
    (ctx.client.db, ctx.exec.db) = db;

    if halted == Some(Halt::Shutdown) {
        // SHUTDOWN NOSAVE while busy: the server stops as the script left the data, and
        // nothing of the script reaches the AOF or the replicas, as if the process had
        // exited inside it (as Redis's does).
        ctx.exec.rewrites = Some(Vec::new());
        crate::cmd::server::final_save(
            ctx.server,
            ctx.exec.ks,
            ctx.now_ms,
            crate::cmd::server::StopFlags { nosave: true, ..Default::default() },
        );
        ctx.effect = Some(crate::exec::Effect::Shutdown);
        return Ok(Frame::Raw(Bytes::new()));
    }
    if !in_exec {
        // Inside EXEC, the transaction's own MULTI/EXEC holds the script's writes already.
        crate::exec::as_one_unit(&mut out);
    }
    ctx.exec.rewrites = Some(out);
    let (reply, counted) = outcome.map_err(internal)?;
    // A command's error the script raised or returned was counted when the command answered
    // it; the script's reply does not count it again (as Redis's ERR_REPLY_FLAG_NO_STATS_UPDATE).
    ctx.client.error_counted = counted && reply.is_error();
    Ok(reply)
}

impl Engine {
    /// The environment scripts run in: a read-only view of the globals.
    pub(crate) fn environment(&self) -> mlua::Result<Table> {
        self.lua.registry_value::<Table>(&self.bridge)?.raw_get("env")
    }

    /// Makes `env` the environment of chunks that scripts compile (loadstring, load).
    pub(crate) fn confine_chunks_to(&self, env: &Table) -> mlua::Result<()> {
        self.lua.registry_value::<Table>(&self.bridge)?.raw_set("env", env)
    }

    /// Sets KEYS and ARGV (past the globals' protection).
    fn set_arguments(&self, keys: &[Bytes], args: &[Bytes]) -> mlua::Result<()> {
        let lua = &self.lua;
        let globals = lua.globals();
        for (name, values) in [("KEYS", keys), ("ARGV", args)] {
            let table = lua.create_table_with_capacity(values.len(), 0)?;
            for (i, v) in values.iter().enumerate() {
                table.raw_set(i + 1, lua.create_string(v)?)?;
            }
            globals.raw_set(name, table)?;
        }
        Ok(())
    }
}

/// A `redis.call` argument list as command words: strings and numbers only.
fn command_args(argv: MultiValue) -> Result<Vec<Bytes>, CommandError> {
    if argv.is_empty() {
        return Err(CommandError::err(
            "Please specify at least one argument for this redis lib call",
        ));
    }
    argv.into_iter()
        .map(|v| match v {
            Value::String(s) => Ok(Bytes::copy_from_slice(&s.as_bytes())),
            Value::Integer(n) => Ok(Bytes::from(n.to_string())),
            // Printed with 17 digits, as Redis does (0.1 is sent as 0.10000000000000001).
            Value::Number(n) => Ok(Bytes::from(common::fmt::format_double(n))),
            _ => Err(CommandError::err(
                "Lua redis lib command arguments must be strings or integers",
            )),
        })
        .collect()
}

/// The runner of the script running on this thread, for the `redis.call`, `redis.pcall` and
/// `redis.acl_check_cmd` functions, which are made once per Lua state (making them per run,
/// as scoped closures, cost about a third of a short EVAL).
struct CurrentRunner;

thread_local! {
    /// Set only while a script runs (see [`CurrentRunner::enter`]).
    static CURRENT: std::cell::Cell<Option<std::ptr::NonNull<()>>> =
        const { std::cell::Cell::new(None) };
}

impl CurrentRunner {
    /// Makes `runner` the current one until the guard drops (also on unwinding).
    fn enter(runner: &std::cell::RefCell<Runner<'_, '_>>) -> CurrentRunner {
        CURRENT.set(Some(std::ptr::NonNull::from(runner).cast()));
        CurrentRunner
    }

    /// Runs `f` with the current runner; an error if no script runs (a function kept past
    /// its script and called later).
    fn with<T>(
        f: impl FnOnce(&std::cell::RefCell<Runner<'_, '_>>) -> mlua::Result<T>,
    ) -> mlua::Result<T> {
        let Some(runner) = CURRENT.get() else {
            return Err(mlua::Error::RuntimeError(
                "redis.call is only available to a running script".into(),
            ));
        };
        // SAFETY: the pointer was made from a live `&RefCell<Runner>` by `enter`, whose
        // guard clears it before that borrow ends; these functions run only on this thread,
        // from inside the script that `enter` was called for (scripts cannot call scripts), so
        // the runner is alive and only reached through the RefCell here.
        let runner = unsafe { runner.cast::<std::cell::RefCell<Runner<'_, '_>>>().as_ref() };
        f(runner)
    }
}

impl Drop for CurrentRunner {
    fn drop(&mut self) {
        CURRENT.set(None);
    }
}

/// Puts `redis.call`, `redis.pcall` and `redis.acl_check_cmd` in the real `redis` table.
fn install_runner_functions(lua: &Lua, redis: &Table) -> mlua::Result<()> {
    let redis_call = lua.create_function(|lua, argv: MultiValue| {
        CurrentRunner::with(|runner| match runner.borrow_mut().command(argv) {
            Frame::Error(text) => Err(mlua::Error::external(ReplyError(text, true))),
            frame => convert::to_lua(lua, frame, script_resp3()),
        })
    })?;
    let redis_pcall = lua.create_function(|lua, argv: MultiValue| {
        CurrentRunner::with(|runner| match runner.borrow_mut().command(argv) {
            Frame::Error(text) => Ok(Value::Table(convert::counted_error_table(lua, &text)?)),
            frame => convert::to_lua(lua, frame, script_resp3()),
        })
    })?;
    // redis.acl_check_cmd(command, args…): whether the calling user may run it.
    let acl_check = lua.create_function(|_, argv: MultiValue| {
        let argv = command_args(argv).map_err(|e| ReplyError::raised(e.into_frame()))?;
        let Ok(resolved) = find(&argv) else {
            return Err(ReplyError::raised(
                CommandError::err("Invalid command passed to redis.acl_check_cmd()").into_frame(),
            ));
        };
        CurrentRunner::with(|runner| {
            let runner = runner.borrow();
            Ok(match runner.ctx.client.user.user.as_deref() {
                Some(user) => crate::acl::check::check(user, resolved, &argv).is_ok(),
                None => true,
            })
        })
    })?;
    redis.raw_set("call", redis_call)?;
    redis.raw_set("pcall", redis_pcall)?;
    redis.raw_set("acl_check_cmd", acl_check)?;
    Ok(())
}

/// What `redis.call` and `redis.pcall` run commands with.
struct Runner<'c, 'a> {
    ctx: &'c mut Ctx<'a>,
    read_only: bool,
    allow_oom: bool,
    /// The script's KEYS.
    keys: Vec<Bytes>,
    /// The command that runs the script (`eval`, `evalsha` …), as the ACL log names it.
    caller: String,
    /// What the script's commands propagate.
    out: Vec<Propagated>,
}

impl Runner<'_, '_> {
    /// One command from the script, checked as Redis checks script commands, then run like a
    /// queued command of EXEC.
    fn command(&mut self, argv: MultiValue) -> Frame {
        let argv = match command_args(argv) {
            Ok(argv) => argv,
            Err(e) => return e.into_frame(),
        };
        let (reply, rejected) = match self.checked(&argv) {
            Ok(resolved) => (self.run(resolved, &argv), None),
            Err((error, resolved)) => (error.into_frame(), resolved),
        };
        // Counted now, as the command answers: in INFO errorstats, and as a rejected call of
        // a command refused before it ran (Redis's scriptCall and afterErrorReply).
        let ctx = &mut *self.ctx;
        if let Some(resolved) = rejected {
            ctx.client.tally.command(resolved, crate::command_stats::Counted::Rejected, 0, false);
        }
        if reply.is_error() {
            ctx.server.stats.errors.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            ctx.client.tally.error(&reply);
        }
        reply
    }

    /// The checks Redis makes on a script's command before it runs, in Redis's order; a
    /// refusal carries the command when it is a known one.
    fn checked(&mut self, argv: &[Bytes]) -> Result<Resolved, (CommandError, Option<Resolved>)> {
        let ctx = &mut *self.ctx;
        let Ok(resolved) = find(argv) else {
            return Err((CommandError::err("Unknown Redis command called from script"), None));
        };
        let refuse = |e: CommandError| Err((e, Some(resolved)));
        if check_arity(resolved, argv.len()).is_err() {
            return refuse(CommandError::err(
                "Wrong number of args calling Redis command from script",
            ));
        }
        let spec = resolved.spec;
        if spec.has(flags::NOSCRIPT)
            && !ctx.server.allow_noscript.load(std::sync::atomic::Ordering::Relaxed)
        {
            return refuse(CommandError::err("This Redis command is not allowed from script"));
        }
        if let Some(user) = ctx.client.user.user.as_deref().filter(|u| !u.unrestricted) {
            if let Err(denied) = crate::acl::check::check(user, resolved, argv) {
                let context = crate::acl::log::Context::Lua;
                let caller = self.caller.as_str();
                crate::acl::log_denied(
                    ctx.server, ctx.client, resolved, argv, denied, context, caller,
                );
                let why = denied.script_message();
                return refuse(CommandError::err(format!("The user executing the script {why}")));
            }
        }
        // A read-only script may not run what replicates either (PUBLISH …), as Redis's
        // scriptVerifyWriteCommandAllow counts may-replicate commands as writes here.
        if self.read_only && (spec.has(flags::WRITE) || spec.has(flags::MAY_REPLICATE)) {
            return refuse(CommandError::err(
                "Write commands are not allowed from read-only scripts.",
            ));
        }
        if spec.has(flags::WRITE) {
            // Then the server's state, in Redis's order (scriptVerifyWriteCommandAllow).
            let gates = ctx.server.gates.load(std::sync::atomic::Ordering::Relaxed);
            let obeyed = ctx.client.kind == crate::client::ClientKind::Master;
            let refusal = if obeyed {
                None
            } else if gates & crate::server::gate::READ_ONLY != 0 {
                Some("READONLY You can't write against a read only replica.")
            } else if gates & crate::server::gate::MISCONF != 0 {
                Some(crate::dispatch::MISCONF)
            } else if gates & crate::server::gate::NO_REPLICAS != 0 {
                Some(crate::dispatch::NOREPLICAS)
            } else {
                None
            };
            if let Some(text) = refusal {
                return refuse(CommandError::raw(text));
            }
        }
        // Over maxmemory a script may not start writing (Redis's scriptVerifyOOM): unless it
        // declared allow-oom, or has written already (refusing now would break its atomicity).
        let wrote = RUNNING.get().is_some_and(|r| r.wrote);
        if spec.has(flags::DENYOOM)
            && !self.allow_oom
            && !wrote
            && ctx.server.eviction.is_out_of_memory()
        {
            return refuse(CommandError::raw(
                "OOM command not allowed when used memory > 'maxmemory'.",
            ));
        }
        Ok(resolved)
    }

    /// Runs a checked command like a queued command of EXEC.
    fn run(&mut self, resolved: Resolved, argv: &[Bytes]) -> Frame {
        let ctx = &mut *self.ctx;
        let spec = resolved.spec;
        let quiet = resolved.parent.unwrap_or(spec).has(flags::ADMIN | flags::SKIP_MONITOR);
        if !quiet {
            feed_monitors(ctx.server, ctx.db, &"lua", argv, ctx.now_ms);
        }
        let started = quanta::Instant::now();
        let dirty = ctx.ks.dirty;
        // The command replies in the protocol the script chose with redis.setresp.
        ctx.client.resp = if script_resp3() { Protocol::Resp3 } else { Protocol::Resp2 };
        let reply = run_locked(ctx, spec, argv, &mut self.out);
        // CLIENT TRACKING: a read inside a script makes the calling client's command line
        // count as read, as Redis's `trackingRememberKeys(script_caller)` does: the keys
        // remembered are the script's KEYS, not what the read named.
        let id = ctx.client.id;
        if spec.has(flags::READONLY) && ctx.ks.tracking.remembers(id) {
            ctx.ks.tracking.remember(id, self.keys.iter());
        }
        if ctx.ks.dirty != dirty {
            if let Some(mut run) = RUNNING.get() {
                run.wrote = true;
                RUNNING.set(Some(run));
            }
        }
        let usec = started.elapsed().as_micros() as u64;
        let failed = reply.is_error();
        ctx.client.tally.command(resolved, crate::command_stats::Counted::Call, usec, failed);
        reply
    }
}

/// The reply for a script that raised an error: the error's text, then which script and where,
/// as Redis words it (`ERR user_script:1: boom script: <sha>, on @user_script:1.`).
fn script_error(value: &Value, sha: &str) -> Frame {
    let Value::Table(t) = value else {
        return Frame::Error(Bytes::from(format!("ERR unknown error script: {sha}")));
    };
    let text = match t.raw_get::<Value>("err") {
        Ok(Value::String(s)) => String::from_utf8_lossy(&s.as_bytes()).into_owned(),
        _ => "ERR unknown error".to_string(),
    };
    let text = text.replace(['\r', '\n'], " ");
    let place = match (t.raw_get::<Value>("source"), t.raw_get::<Value>("line")) {
        (Ok(Value::String(source)), Ok(line)) => {
            let line = match line {
                Value::Number(n) => (n as i64).to_string(),
                Value::Integer(n) => n.to_string(),
                _ => "?".to_string(),
            };
            format!(", on {}:{line}", source.to_string_lossy())
        }
        _ => String::new(),
    };
    Frame::Error(Bytes::from(format!("{text} script: {sha}{place}.")))
}
