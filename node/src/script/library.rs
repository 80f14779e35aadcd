//! Function libraries (Redis 7.0's Functions): FUNCTION LOAD compiles a library of Lua code,
//! whose top level registers named functions with `redis.register_function`; FCALL calls them.
//!
//! # Invariants
//!
//! * Libraries live in their own Lua state, apart from EVAL's, as in Redis: SCRIPT FLUSH does
//!   not touch them, FUNCTION FLUSH does not touch cached scripts.
//! * A library's top level sees only `redis.register_function`, `redis.log` and the version
//!   fields (nothing else, not even `string` or `error`), and runs with a 500 ms budget; its
//!   functions, when called, see the full scripting environment. Both are achieved as Redis
//!   does: every library is compiled against one environment table whose `__index` points to
//!   the load-time API while a library loads and to the real globals otherwise.
//! * A load either links a whole library or changes nothing: the library's functions are
//!   collected first, checked against every other library's (function names are
//!   case-insensitive across libraries, as FCALL looks them up), and only then linked.
//! * The source of every library is kept verbatim (shebang included): it is what RDB files,
//!   FUNCTION DUMP and AOF rewrites carry, and what FUNCTION LIST WITHCODE shows.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use mlua::{Function, MultiValue, RegistryKey, Table, Value};
use parking_lot::Mutex;

use super::shebang::ScriptFlags;
use super::{lua_message, lua_text, reply_error, Engine, ReplyError};

/// How long a library's top level may run (Redis's `LOAD_TIMEOUT_MS`).
pub const LOAD_TIMEOUT: Duration = Duration::from_millis(500);

/// The text every invalid library or function name gets.
const BAD_NAME: &str = "Library names can only contain letters, numbers, or underscores(_) and \
                        must be at least one character long";

/// The script flags a function may declare, in the order FUNCTION LIST prints them.
pub const FLAG_NAMES: [&str; 5] =
    ["no-writes", "allow-oom", "allow-stale", "no-cluster", "allow-cross-slot-keys"];

/// Builds the load-time API and the shared environment (see the module documentation).
/// Receives `register_function` and `log`; returns the environment, its metatable and the
/// load-time globals.
const ENVIRONMENT: &str = r#"
local register, log, version, version_num = ...
local function missing(_, name)
  error("Script attempted to access nonexistent global variable '" .. tostring(name) .. "'", 2)
end
local function readonly()
  error('Attempt to modify a readonly table', 2)
end
local protect = { __index = missing, __newindex = readonly }
local api_redis = setmetatable({
  register_function = register, log = log,
  LOG_DEBUG = 0, LOG_VERBOSE = 1, LOG_NOTICE = 2, LOG_WARNING = 3,
  REDIS_VERSION = version, REDIS_VERSION_NUM = version_num,
}, protect)
local load_api = setmetatable({ redis = api_redis }, protect)
local meta = { __index = _G, __newindex = readonly }
local env = setmetatable({}, meta)
return env, meta, load_api
"#;

/// A function as FUNCTION LIST shows it.
pub struct FunctionInfo {
    /// Its name, as registered.
    pub name: String,
    /// `description`, if given.
    pub description: Option<Bytes>,
    /// Its flags.
    pub flags: ScriptFlags,
    callback: RegistryKey,
}

/// A loaded library.
pub struct Library {
    /// Its name (from the shebang's `name=`).
    pub name: String,
    /// Its source, shebang included.
    pub code: Bytes,
    /// Its functions by name.
    pub functions: BTreeMap<String, FunctionInfo>,
}

/// What FUNCTION RESTORE does with libraries that exist already.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RestorePolicy {
    /// Refuse the whole payload if any library exists.
    Append,
    /// Replace existing libraries of the same name.
    Replace,
    /// Drop every library first.
    Flush,
}

/// Functions registered by the library being loaded; `None` outside FUNCTION LOAD.
type Pending = Arc<Mutex<Option<Vec<FunctionInfo>>>>;

/// The loaded libraries and the Lua state their functions run in.
pub struct Libraries {
    engine: Engine,
    env: RegistryKey,
    env_meta: RegistryKey,
    load_api: RegistryKey,
    pending: Pending,
    libraries: BTreeMap<String, Library>,
    /// Lower-case function name → its library.
    index: HashMap<String, String>,
}

impl Default for Libraries {
    fn default() -> Libraries {
        Libraries::new()
    }
}

impl Libraries {
    /// No libraries, a fresh Lua state.
    pub fn new() -> Libraries {
        let engine = Engine::new();
        let pending: Pending = Arc::default();
        let lua = &engine.lua;
        let setup = || -> mlua::Result<(Table, Table, Table)> {
            let register = {
                let pending = pending.clone();
                lua.create_function(move |lua, args: MultiValue| {
                    let mut pending = pending.lock();
                    let Some(registered) = pending.as_mut() else {
                        return Err(api_error(
                            "redis.register_function can only be called on FUNCTION LOAD command",
                        ));
                    };
                    let function = registration(lua, args)?;
                    if !valid_name(function.name.as_bytes()) {
                        return Err(api_error(BAD_NAME));
                    }
                    if registered.iter().any(|f| f.name == function.name) {
                        return Err(api_error("Function already exists in the library"));
                    }
                    registered.push(function);
                    Ok(())
                })?
            };
            let runtime_redis: Table = lua.globals().get("redis")?;
            let log: Function = runtime_redis.get("log")?;
            let version = crate::cmd::info::REDIS_VERSION;
            lua.load(ENVIRONMENT).set_name("=functions").call((
                register,
                log,
                version,
                version_num(version),
            ))
        };
        let (env, env_meta, load_api) = setup().expect("the functions environment is valid Lua");
        engine.confine_chunks_to(&env).expect("the bridge table takes a field");
        let key = |t: Table| lua.create_registry_value(t).expect("registry has room");
        let (env, env_meta, load_api) = (key(env), key(env_meta), key(load_api));
        Libraries {
            engine,
            env,
            env_meta,
            load_api,
            pending,
            libraries: BTreeMap::new(),
            index: HashMap::new(),
        }
    }

    /// FUNCTION LOAD: compiles `code` and links its library, replacing one of the same name
    /// only with `replace`. `timeout` bounds the library's top level (`None`: no limit, for
    /// code from a master or a file). Returns the library's name, or Redis's error text
    /// (without `ERR `).
    pub fn load(
        &mut self,
        code: &[u8],
        replace: bool,
        timeout: Option<Duration>,
    ) -> Result<String, String> {
        let (name, body_at) = metadata(code)?;
        if self.libraries.contains_key(&name) && !replace {
            return Err(format!("Library '{name}' already exists"));
        }
        let functions = self.compile(&code[body_at..], timeout)?;
        if functions.is_empty() {
            return Err("No functions registered".into());
        }
        let library = Library { name: name.clone(), code: Bytes::copy_from_slice(code), functions };
        let old = self.unlink(&name);
        if let Some(taken) = self.first_taken(&library) {
            if let Some(old) = old {
                self.link(old);
            }
            return Err(format!("Function {taken} already exists"));
        }
        self.link(library);
        Ok(name)
    }

    /// FUNCTION DELETE: true if the library existed.
    pub fn delete(&mut self, name: &[u8]) -> bool {
        std::str::from_utf8(name).is_ok_and(|name| self.unlink(name).is_some())
    }

    /// FUNCTION FLUSH.
    pub fn flush(&mut self) {
        *self = Libraries::new();
    }

    /// The function FCALL names (case-insensitively), with the engine to run it in.
    pub(crate) fn find(&self, name: &[u8]) -> Option<(&Engine, &FunctionInfo, Function)> {
        let lower = String::from_utf8_lossy(name).to_ascii_lowercase();
        let library = self.libraries.get(self.index.get(&lower)?)?;
        let info = library.functions.values().find(|f| f.name.eq_ignore_ascii_case(&lower))?;
        let function = self.engine.lua.registry_value(&info.callback).ok()?;
        Some((&self.engine, info, function))
    }

    /// The libraries, by name.
    pub fn libraries(&self) -> impl Iterator<Item = &Library> {
        self.libraries.values()
    }

    /// How many libraries and functions there are (FUNCTION STATS, INFO).
    pub fn counts(&self) -> (usize, usize) {
        (self.libraries.len(), self.index.len())
    }

    /// The memory the libraries' Lua state uses.
    pub fn lua_memory(&self) -> usize {
        self.engine.lua.used_memory()
    }

    /// Every library's source, as RDB files and AOF rewrites carry them.
    pub fn sources(&self) -> Vec<Bytes> {
        self.libraries.values().map(|l| l.code.clone()).collect()
    }

    /// Libraries compiled from sources (an RDB file's, a FUNCTION RESTORE payload's), with no
    /// time limit: all of them, or the first error.
    pub fn from_sources<'a>(
        sources: impl IntoIterator<Item = &'a [u8]>,
    ) -> Result<Libraries, String> {
        let mut libraries = Libraries::new();
        for code in sources {
            libraries.load(code, false, None)?;
        }
        Ok(libraries)
    }

    /// Libraries compiled from the sources a loaded RDB file held, with the error text a
    /// failed load reports.
    pub fn from_loaded(sources: &[Vec<u8>]) -> Result<Libraries, String> {
        Libraries::from_sources(sources.iter().map(|s| &s[..]))
            .map_err(|e| format!("a function library in the file failed to load: {e}"))
    }

    /// FUNCTION RESTORE: the libraries of a payload's `sources`, merged by `policy`, all or
    /// nothing. Each is compiled once, into the state that will run it; as in Redis, the
    /// payload's own errors (a bad library, a name given twice) come before conflicts with the
    /// libraries already loaded.
    pub fn restore(&mut self, sources: &[Bytes], policy: RestorePolicy) -> Result<(), String> {
        if policy == RestorePolicy::Flush {
            *self = Libraries::from_sources(sources.iter().map(|s| &s[..]))?;
            return Ok(());
        }
        let mut compiled: Vec<Library> = Vec::new();
        for code in sources {
            let (name, body_at) = metadata(code)?;
            if compiled.iter().any(|l| l.name == name) {
                return Err(format!("Library '{name}' already exists"));
            }
            let functions = self.compile(&code[body_at..], None)?;
            if functions.is_empty() {
                return Err("No functions registered".into());
            }
            compiled.push(Library { name, code: code.clone(), functions });
        }
        if policy == RestorePolicy::Append {
            if let Some(l) = compiled.iter().find(|l| self.libraries.contains_key(&l.name)) {
                return Err(format!("Library {} already exists", l.name));
            }
        }
        let replaced: Vec<Library> = compiled.iter().filter_map(|l| self.unlink(&l.name)).collect();
        let mut linked: Vec<String> = Vec::new();
        for library in compiled {
            if let Some(taken) = self.first_taken(&library) {
                for name in linked {
                    self.unlink(&name);
                }
                for old in replaced {
                    self.link(old);
                }
                return Err(format!("Function {taken} already exists"));
            }
            linked.push(library.name.clone());
            self.link(library);
        }
        Ok(())
    }

    /// Runs a library's top level with the load-time API and collects what it registers.
    fn compile(
        &mut self,
        body: &[u8],
        timeout: Option<Duration>,
    ) -> Result<BTreeMap<String, FunctionInfo>, String> {
        let lua = &self.engine.lua;
        let internal = |e: mlua::Error| format!("Error registering functions: {}", lua_message(&e));
        let env: Table = lua.registry_value(&self.env).map_err(internal)?;
        let meta: Table = lua.registry_value(&self.env_meta).map_err(internal)?;
        let load_api: Table = lua.registry_value(&self.load_api).map_err(internal)?;
        let chunk = lua
            .load(body)
            .set_name("@user_function")
            .set_mode(mlua::ChunkMode::Text)
            .set_environment(env)
            .into_function()
            .map_err(|e| format!("Error compiling function: {}", lua_message(&e)))?;
        let globals = lua.globals();
        meta.raw_set("__index", load_api).map_err(internal)?;
        *self.pending.lock() = Some(Vec::new());
        super::LOAD_DEADLINE.set(timeout.map(|t| Instant::now() + t));
        let outcome = chunk.call::<()>(());
        super::LOAD_DEADLINE.set(None);
        let registered = self.pending.lock().take().unwrap_or_default();
        meta.raw_set("__index", globals).map_err(internal)?;
        if let Err(e) = outcome {
            let message = match reply_error(&e) {
                Some(reply) => String::from_utf8_lossy(&reply.0).into_owned(),
                None => format!("ERR {}", lua_message(&e)),
            };
            // mlua appends a traceback to errors that cross `call`; Redis's text has none.
            let message = message.split("\nstack traceback:").next().unwrap_or_default();
            return Err(format!("Error registering functions: {message}"));
        }
        Ok(registered.into_iter().map(|f| (f.name.clone(), f)).collect())
    }

    /// The first function of `library` that another library already has.
    fn first_taken(&self, library: &Library) -> Option<String> {
        library
            .functions
            .keys()
            .find(|name| self.index.contains_key(&name.to_ascii_lowercase()))
            .cloned()
    }

    fn link(&mut self, library: Library) {
        for name in library.functions.keys() {
            self.index.insert(name.to_ascii_lowercase(), library.name.clone());
        }
        self.libraries.insert(library.name.clone(), library);
    }

    fn unlink(&mut self, name: &str) -> Option<Library> {
        let library = self.libraries.remove(name)?;
        for function in library.functions.keys() {
            self.index.remove(&function.to_ascii_lowercase());
        }
        Some(library)
    }
}

/// An error raised by the library API as Redis's `luaPushError` + `luaError` raise it: a
/// table error whose text is final (no location is added).
fn api_error(text: &str) -> mlua::Error {
    mlua::Error::external(ReplyError(Bytes::from(format!("ERR {text}")), false))
}

/// `redis.register_function(name, callback)` or `redis.register_function{function_name=…,
/// callback=…, flags={…}, description=…}`, checked in Redis's order and words.
fn registration(lua: &mlua::Lua, args: MultiValue) -> mlua::Result<FunctionInfo> {
    let mut name = None;
    let mut description = None;
    let mut callback = None;
    let mut flags = ScriptFlags::default();
    match args.len() {
        1 => {
            let Value::Table(named) = &args[0] else {
                return Err(api_error(
                    "calling redis.register_function with a single argument is only applicable \
                     to Lua table (representing named arguments).",
                ));
            };
            for pair in named.pairs::<Value, Value>() {
                let (key, value) = pair?;
                // A number is a string to Lua's C API, so `[1] = …` is an unknown argument.
                let Some(key) = lua_text(&key) else {
                    return Err(api_error(
                        "named argument key given to redis.register_function is not a string",
                    ));
                };
                match key.to_ascii_lowercase().as_slice() {
                    b"function_name" => {
                        name = Some(lua_text(&value).ok_or_else(|| {
                            api_error(
                                "function_name argument given to redis.register_function must \
                                 be a string",
                            )
                        })?)
                    }
                    b"description" => {
                        description = Some(lua_text(&value).ok_or_else(|| {
                            api_error(
                                "description argument given to redis.register_function must be \
                                 a string",
                            )
                        })?)
                    }
                    b"callback" => {
                        let Value::Function(f) = value else {
                            return Err(api_error(
                                "callback argument given to redis.register_function must be a \
                                 function",
                            ));
                        };
                        callback = Some(f);
                    }
                    b"flags" => {
                        let Value::Table(list) = value else {
                            return Err(api_error(
                                "flags argument to redis.register_function must be a table \
                                 representing function flags",
                            ));
                        };
                        flags = read_flags(&list).ok_or_else(|| api_error("unknown flag given"))?;
                    }
                    _ => {
                        return Err(api_error("unknown argument given to redis.register_function"))
                    }
                }
            }
            if name.is_none() {
                return Err(api_error("redis.register_function must get a function name argument"));
            }
            if callback.is_none() {
                return Err(api_error("redis.register_function must get a callback argument"));
            }
        }
        2 => {
            name = Some(lua_text(&args[0]).ok_or_else(|| {
                api_error("first argument to redis.register_function must be a string")
            })?);
            let Value::Function(f) = &args[1] else {
                return Err(api_error(
                    "second argument to redis.register_function must be a function",
                ));
            };
            callback = Some(f.clone());
        }
        _ => return Err(api_error("wrong number of arguments to redis.register_function")),
    }
    let (Some(name), Some(callback)) = (name, callback) else {
        unreachable!("both were checked above");
    };
    Ok(FunctionInfo {
        name: String::from_utf8_lossy(&name).into_owned(),
        description: description.map(Bytes::from),
        flags,
        callback: lua.create_registry_value(callback)?,
    })
}

/// A `flags` table: strings naming known flags (case-insensitively), up to the first nil.
fn read_flags(list: &Table) -> Option<ScriptFlags> {
    let mut flags = ScriptFlags::default();
    for i in 1.. {
        let value: Value = list.raw_get(i).ok()?;
        if value == Value::Nil {
            break;
        }
        let text = lua_text(&value)?;
        match FLAG_NAMES.iter().position(|f| f.as_bytes().eq_ignore_ascii_case(&text))? {
            0 => flags.no_writes = true,
            1 => flags.allow_oom = true,
            2 => flags.allow_stale = true,
            3 => flags.no_cluster = true,
            _ => flags.allow_cross_slot_keys = true,
        }
    }
    Some(flags)
}

/// The flags of `flags`, in FUNCTION LIST's order.
pub fn flag_names(flags: ScriptFlags) -> impl Iterator<Item = &'static str> {
    let set = [
        flags.no_writes,
        flags.allow_oom,
        flags.allow_stale,
        flags.no_cluster,
        flags.allow_cross_slot_keys,
    ];
    FLAG_NAMES.into_iter().zip(set).filter(|(_, on)| *on).map(|(name, _)| name)
}

/// Library and function names: `[a-zA-Z0-9_]+`.
fn valid_name(name: &[u8]) -> bool {
    !name.is_empty() && name.iter().all(|&c| c.is_ascii_alphanumeric() || c == b'_')
}

/// `7.0.15` → 0x00070f, as `REDIS_VERSION_NUM`.
pub fn version_num(version: &str) -> i64 {
    version.split('.').take(3).fold(0, |acc, part| acc << 8 | part.parse::<i64>().unwrap_or(0))
}

/// A library's shebang: `#!<engine> name=<name>`. Returns the name and where the Lua starts
/// (at the shebang's newline, so line numbers count the shebang as line 1).
fn metadata(code: &[u8]) -> Result<(String, usize), String> {
    if !code.starts_with(b"#!") {
        return Err("Missing library metadata".into());
    }
    let end = code.iter().position(|&b| b == b'\n').ok_or("Invalid library metadata")?;
    let parts = common::config::split_args(&code[..end])
        .ok()
        .filter(|p| !p.is_empty())
        .ok_or("Invalid library metadata")?;
    let engine = &parts[0][2..];
    let mut name: Option<&[u8]> = None;
    for part in &parts[1..] {
        if part.len() >= 5 && part[..5].eq_ignore_ascii_case(b"name=") {
            if name.is_some() {
                return Err("Invalid metadata value, name argument was given multiple times".into());
            }
            name = Some(&part[5..]);
            continue;
        }
        return Err(format!("Invalid metadata value given: {}", String::from_utf8_lossy(part)));
    }
    let name = name.ok_or("Library name was not given")?;
    if !valid_name(name) {
        return Err(BAD_NAME.into());
    }
    if !engine.eq_ignore_ascii_case(b"lua") {
        return Err(format!("Engine '{}' not found", String::from_utf8_lossy(engine)));
    }
    Ok((String::from_utf8_lossy(name).into_owned(), end))
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIB: &[u8] = b"#!lua name=lib1\n\
        local function f(keys, args) return redis.call('set', keys[1], args[1]) end\n\
        redis.register_function('f1', f)\n\
        redis.register_function{function_name='f2', callback=function(k, a) return #k end, \
        flags={'no-writes'}, description='two'}\n";

    #[test]
    fn a_library_registers_its_functions() {
        let mut libs = Libraries::new();
        assert_eq!(libs.load(LIB, false, Some(LOAD_TIMEOUT)), Ok("lib1".into()));
        assert_eq!(libs.counts(), (1, 2));
        let (_, f2, _) = libs.find(b"F2").expect("found case-insensitively");
        assert!(f2.flags.no_writes);
        assert_eq!(f2.description.as_deref(), Some(&b"two"[..]));
        assert_eq!(libs.load(LIB, false, None), Err("Library 'lib1' already exists".into()));
        assert_eq!(libs.load(LIB, true, None), Ok("lib1".into()));
        let other = b"#!lua name=lib2\nredis.register_function('F1', function() end)";
        assert_eq!(libs.load(other, false, None), Err("Function F1 already exists".into()));
        assert_eq!(libs.counts(), (1, 2), "a refused load changes nothing");
        assert!(libs.delete(b"lib1"));
        assert_eq!(libs.counts(), (0, 0));
    }

    #[test]
    fn the_top_level_sees_only_the_load_api() {
        let mut libs = Libraries::new();
        let mut err = |code: &str| libs_err(&mut libs, code);
        assert_eq!(
            err("redis.call('set','a','b')"),
            "Error registering functions: ERR user_function:2: Script attempted to access \
             nonexistent global variable 'call'"
        );
        assert_eq!(
            err("x = 1"),
            "Error registering functions: ERR user_function:2: Attempt to modify a readonly table"
        );
        assert_eq!(
            err("local a = nil + 1"),
            "Error registering functions: ERR user_function:2: attempt to perform arithmetic on \
             a nil value"
        );
        assert_eq!(
            err("redis.register_function('y', 5)"),
            "Error registering functions: ERR second argument to redis.register_function must \
             be a function"
        );
        assert_eq!(
            err("redis.register_function{function_name='a', callback=function() end, flags={'bad'}}"),
            "Error registering functions: ERR unknown flag given"
        );
        assert_eq!(err("return 1"), "No functions registered");
        assert!(err("local x =").starts_with("Error compiling function: user_function:"));
        // After a load, functions see the real globals again.
        let mut libs = Libraries::new();
        let code =
            b"#!lua name=l\nredis.register_function('f', function() return string.rep('a', 2) end)";
        assert!(libs.load(code, false, None).is_ok());
    }

    fn libs_err(libs: &mut Libraries, body: &str) -> String {
        libs.load(format!("#!lua name=t\n{body}").as_bytes(), false, None).unwrap_err()
    }

    #[test]
    fn metadata_is_read_as_redis_reads_it() {
        assert_eq!(metadata(b"x"), Err("Missing library metadata".into()));
        assert_eq!(metadata(b"#!lua name=x"), Err("Invalid library metadata".into()));
        assert_eq!(metadata(b"#!lua\n"), Err("Library name was not given".into()));
        assert_eq!(
            metadata(b"#!lua foo=bar\n"),
            Err("Invalid metadata value given: foo=bar".into())
        );
        assert_eq!(metadata(b"#!js name=x\n"), Err("Engine 'js' not found".into()));
        assert_eq!(metadata(b"#!lua name=a-b\n"), Err(BAD_NAME.into()));
        assert_eq!(metadata(b"#!LUA NAME=ok\nbody"), Ok(("ok".into(), 13)));
        assert_eq!(version_num("7.0.15"), 0x07000f);
    }

    #[test]
    fn restore_is_all_or_nothing() {
        let mut libs = Libraries::new();
        libs.load(LIB, false, None).unwrap();
        let incoming = [Bytes::from_static(LIB)];
        assert_eq!(
            libs.restore(&incoming, RestorePolicy::Append),
            Err("Library lib1 already exists".into())
        );
        assert_eq!(libs.restore(&incoming, RestorePolicy::Replace), Ok(()));
        assert_eq!(libs.counts(), (1, 2));
    }
}
