//! The command table.
//!
//! Every command is a row of data — name, arity, flags, key positions, handler — in the
//! `COMMANDS` table of its family's file. The dispatcher (`crate::dispatch`) reads the row to
//! check arity, authentication, transactions and read-only state before calling the handler,
//! and after it: the `write` flag plus a change to the dirty counter is the only trigger for
//! propagation, WATCH invalidation and waking blocked clients, for every command alike.
//!
//! Handlers are plain functions `fn(&mut Ctx, &[Bytes]) -> CmdResult` that parse their
//! arguments (rejecting trailing ones) and return a reply frame; they never touch a socket. We
//! chose functions over one struct per command: with ~200 commands the parse/execute split
//! would double the code without a caller that needs the parsed form on its own.

use std::collections::HashMap;
use std::sync::OnceLock;

use bytes::Bytes;

use crate::error::CmdResult;
use crate::exec::Ctx;

pub mod acl;
pub mod args;
pub mod bitmaps;
pub mod client;
pub mod command;
pub mod command_keys;
pub mod config;
pub mod connection;
pub mod debug;
pub mod docs;
pub mod dump;
pub mod functions;
pub mod geo;
pub mod hashes;
pub mod help;
pub mod hyperloglog;
pub mod info;
pub mod keys;
pub mod lcs;
pub mod lists;
pub mod lolwut;
pub mod memory;
pub mod meta;
pub mod migrate;
pub mod persistence;
pub mod pubsub;
pub mod replication;
pub mod scripting;
pub mod server;
pub mod sets;
pub mod sort;
pub mod streams;
pub mod strings;
pub mod tx;
pub mod zsets;

/// A command handler.
pub type Handler = fn(&mut Ctx<'_>, &[Bytes]) -> CmdResult;

/// Command flags, as Redis names them in COMMAND INFO.
pub mod flags {
    /// May modify the dataset.
    pub const WRITE: u32 = 1 << 0;
    /// Only reads the dataset.
    pub const READONLY: u32 = 1 << 1;
    /// May grow memory.
    pub const DENYOOM: u32 = 1 << 2;
    /// Administrative.
    pub const ADMIN: u32 = 1 << 3;
    /// Pub/sub related.
    pub const PUBSUB: u32 = 1 << 4;
    /// Not allowed in scripts.
    pub const NOSCRIPT: u32 = 1 << 5;
    /// May block the client.
    pub const BLOCKING: u32 = 1 << 6;
    /// Allowed while loading the dataset.
    pub const LOADING: u32 = 1 << 7;
    /// Allowed on a replica with stale data.
    pub const STALE: u32 = 1 << 8;
    /// Not shown to MONITOR.
    pub const SKIP_MONITOR: u32 = 1 << 9;
    /// O(1) or O(log n).
    pub const FAST: u32 = 1 << 10;
    /// Allowed before authentication.
    pub const NO_AUTH: u32 = 1 << 11;
    /// May propagate even though it is not a write (PUBLISH).
    pub const MAY_REPLICATE: u32 = 1 << 12;
    /// Not allowed inside MULTI.
    pub const NO_MULTI: u32 = 1 << 13;
    /// Allowed while a script is busy.
    pub const ALLOW_BUSY: u32 = 1 << 14;
    /// Not recorded in the SLOWLOG (EXEC: its commands are, one by one).
    pub const SKIP_SLOWLOG: u32 = 1 << 15;

    /// Flag names in COMMAND INFO order.
    pub const NAMES: &[(u32, &str)] = &[
        (WRITE, "write"),
        (READONLY, "readonly"),
        (DENYOOM, "denyoom"),
        (ADMIN, "admin"),
        (PUBSUB, "pubsub"),
        (NOSCRIPT, "noscript"),
        (BLOCKING, "blocking"),
        (LOADING, "loading"),
        (STALE, "stale"),
        (SKIP_MONITOR, "skip_monitor"),
        (SKIP_SLOWLOG, "skip_slowlog"),
        (FAST, "fast"),
        (NO_AUTH, "no_auth"),
        (MAY_REPLICATE, "may_replicate"),
        (NO_MULTI, "no_multi"),
        (ALLOW_BUSY, "allow_busy"),
    ];
}

/// Where a command's keys are: `first`, `last` (negative counts from the end) and `step`, as in
/// Redis's legacy key specification. `(0, 0, 0)` means no keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeySpec {
    /// Position of the first key.
    pub first: i32,
    /// Position of the last key.
    pub last: i32,
    /// Distance between keys.
    pub step: i32,
}

/// One row of the command table.
#[derive(Debug)]
pub struct CommandSpec {
    /// Lower-case name (`get`; subcommands `kill`).
    pub name: &'static str,
    /// Redis arity: exact when positive, minimum when negative; counts the command name.
    pub arity: i32,
    /// Bitwise-or of [`flags`].
    pub flags: u32,
    /// Key positions.
    pub keys: KeySpec,
    /// The handler (for a container command, used only if it has no subcommands).
    pub handler: Handler,
    /// Subcommands (CLIENT, CONFIG, OBJECT …).
    pub subcommands: &'static [CommandSpec],
}

impl CommandSpec {
    /// True if the flag is set.
    pub fn has(&self, flag: u32) -> bool {
        self.flags & flag != 0
    }

    /// True if `argc` arguments (including the name) satisfy the arity.
    pub fn arity_ok(&self, argc: usize) -> bool {
        let argc = argc as i32;
        if self.arity >= 0 {
            argc == self.arity
        } else {
            argc >= -self.arity
        }
    }

    /// The positions of the keys in `argv`.
    pub fn key_positions(&self, argc: usize) -> impl Iterator<Item = usize> {
        let KeySpec { first, last, step } = self.keys;
        let argc = argc as i32;
        let last = if last < 0 { argc + last } else { last.min(argc - 1) };
        let step = step.max(1);
        (first.max(1)..=last).step_by(step as usize).filter(move |_| first > 0).map(|i| i as usize)
    }
}

/// A row without subcommands.
pub const fn cmd(
    name: &'static str,
    arity: i32,
    flags: u32,
    keys: (i32, i32, i32),
    handler: Handler,
) -> CommandSpec {
    CommandSpec {
        name,
        arity,
        flags,
        keys: KeySpec { first: keys.0, last: keys.1, step: keys.2 },
        handler,
        subcommands: &[],
    }
}

/// A container command (CLIENT, CONFIG …) whose rows are its subcommands.
pub const fn container(
    name: &'static str,
    arity: i32,
    flags: u32,
    subcommands: &'static [CommandSpec],
) -> CommandSpec {
    container_with(name, arity, flags, no_handler, subcommands)
}

/// A container command that also runs on its own, without a subcommand (COMMAND).
pub const fn container_with(
    name: &'static str,
    arity: i32,
    flags: u32,
    handler: Handler,
    subcommands: &'static [CommandSpec],
) -> CommandSpec {
    CommandSpec {
        name,
        arity,
        flags,
        keys: KeySpec { first: 0, last: 0, step: 0 },
        handler,
        subcommands,
    }
}

fn no_handler(_: &mut Ctx<'_>, _: &[Bytes]) -> CmdResult {
    Err(crate::error::CommandError::err("container command called without a subcommand"))
}

fn families() -> [&'static [CommandSpec]; 29] {
    [
        acl::COMMANDS,
        keys::COMMANDS,
        dump::COMMANDS,
        migrate::COMMANDS,
        strings::COMMANDS,
        bitmaps::COMMANDS,
        lcs::COMMANDS,
        hyperloglog::COMMANDS,
        lists::COMMANDS,
        hashes::COMMANDS,
        sets::COMMANDS,
        zsets::COMMANDS,
        geo::COMMANDS,
        streams::COMMANDS,
        tx::COMMANDS,
        pubsub::COMMANDS,
        connection::COMMANDS,
        server::COMMANDS,
        command::COMMANDS,
        memory::COMMANDS,
        client::COMMANDS,
        config::COMMANDS,
        info::COMMANDS,
        persistence::COMMANDS,
        replication::COMMANDS,
        scripting::COMMANDS,
        functions::COMMANDS,
        sort::COMMANDS,
        lolwut::COMMANDS,
    ]
}

/// The command table's map type: a fast hash, since every request looks a command up, keyed
/// by bytes so a lookup needs no UTF-8 check.
pub type Table = HashMap<&'static [u8], &'static CommandSpec, ahash::RandomState>;

/// Every command, by lower-case name.
pub fn table() -> &'static Table {
    static TABLE: OnceLock<Table> = OnceLock::new();
    TABLE.get_or_init(|| {
        let mut map = Table::default();
        for family in families() {
            for spec in family {
                let previous = map.insert(spec.name.as_bytes(), spec);
                assert!(previous.is_none(), "command {} is defined twice", spec.name);
            }
        }
        map
    })
}

/// Looks a command up by name, case-insensitively.
pub fn lookup(name: &[u8]) -> Option<&'static CommandSpec> {
    let mut buf = [0u8; 32];
    let lower = buf.get_mut(..name.len())?;
    for (d, s) in lower.iter_mut().zip(name) {
        *d = s.to_ascii_lowercase();
    }
    table().get(&*lower).copied()
}

/// Looks a subcommand of `spec` up by name, case-insensitively.
pub fn lookup_sub(spec: &'static CommandSpec, name: &[u8]) -> Option<&'static CommandSpec> {
    spec.subcommands.iter().find(|s| s.name.as_bytes().eq_ignore_ascii_case(name))
}

/// Quotes bytes as Redis's `sdscatrepr` does (MONITOR, CLIENT LIST, DEBUG output).
pub fn repr(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() + 2);
    s.push('"');
    for &c in bytes {
        match c {
            b'\\' => s.push_str("\\\\"),
            b'"' => s.push_str("\\\""),
            b'\n' => s.push_str("\\n"),
            b'\r' => s.push_str("\\r"),
            b'\t' => s.push_str("\\t"),
            7 => s.push_str("\\a"),
            8 => s.push_str("\\b"),
            c if c.is_ascii_graphic() || c == b' ' => s.push(c as char),
            c => s.push_str(&format!("\\x{c:02x}")),
        }
    }
    s.push('"');
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_builds_and_is_consistent() {
        let t = table();
        assert!(t.len() > 10);
        for spec in t.values() {
            assert_eq!(spec.name, spec.name.to_ascii_lowercase());
            assert!(!(spec.has(flags::WRITE) && spec.has(flags::READONLY)), "{}", spec.name);
            for sub in spec.subcommands {
                assert_eq!(sub.name, sub.name.to_ascii_lowercase());
            }
        }
        assert!(lookup(b"GeT").is_some());
        assert!(lookup(b"nosuchcommand").is_none());
    }

    /// The flags that change what the server does with a command (refusals on a replica, under
    /// maxmemory, while loading, inside MULTI) are Redis 7.0.15's, as its COMMAND INFO gives them.
    #[test]
    fn behaviour_flags_match_redis() {
        use flags::*;
        let checked = [WRITE, DENYOOM, LOADING, STALE, NO_MULTI, NO_AUTH, ADMIN];
        let mut wrong = Vec::new();
        for spec in table().values() {
            let mut specs = vec![(spec.name.to_string(), *spec)];
            specs.extend(spec.subcommands.iter().map(|s| (format!("{}|{}", spec.name, s.name), s)));
            for (fullname, s) in specs {
                let Some(m) = super::meta::find(&fullname) else { continue };
                for flag in checked {
                    let name = flags::NAMES.iter().find(|(f, _)| *f == flag).unwrap().1;
                    if s.has(flag) != m.flags.contains(&name) {
                        wrong.push(format!("{fullname}: {name}"));
                    }
                }
            }
        }
        wrong.sort();
        assert!(wrong.is_empty(), "flags differ from Redis: {wrong:?}");
    }

    #[test]
    fn key_positions_follow_the_spec() {
        let spec = cmd("mset", -3, 0, (1, -1, 2), no_handler);
        assert_eq!(spec.key_positions(5).collect::<Vec<_>>(), [1, 3]);
        let spec = cmd("get", 2, 0, (1, 1, 1), no_handler);
        assert_eq!(spec.key_positions(2).collect::<Vec<_>>(), [1]);
        let spec = cmd("ping", -1, 0, (0, 0, 0), no_handler);
        assert_eq!(spec.key_positions(2).count(), 0);
    }
}
