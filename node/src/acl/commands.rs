//! The commands ACL rules talk about: every command and subcommand of the command table with
//! a small integer id (a bit in a selector's command bitmap) and its ACL categories.
//!
//! Categories come from the generated COMMAND INFO metadata (`cmd::meta`), which holds Redis's
//! categories including the implicit ones (`@write` for a write command …). A command Redis
//! 7.0 lacks has no metadata row; its categories are derived from its flags as Redis's
//! `setImplicitACLCategories` does.
//!
//! Commands Redis 7.0.15 has and warden-node lacks (`cmd::meta::REDIS_ONLY`: CLUSTER,
//! MODULE, the stream commands until they land …) are in the universe too, with Redis's
//! categories and no command table row: rules may name them and categories count them exactly
//! as in Redis, so operators' rules are accepted and ACL LIST describes them as Redis does.
//!
//! Ids follow name order (containers before their subcommands), so everything that walks the
//! commands (ACL CAT, the category fitting of ACL LIST) is deterministic. Redis walks a hash
//! table seeded at random on every start, so where Redis's order is unspecified ours is one of
//! its possible orders.

use std::collections::HashMap;
use std::sync::OnceLock;

use crate::cmd::{self, flags, CommandSpec};

/// Redis 7.0's ACL categories, in its order (ACL CAT, COMMAND INFO).
pub const CATEGORIES: &[&str] = &[
    "keyspace",
    "read",
    "write",
    "set",
    "sortedset",
    "list",
    "hash",
    "string",
    "bitmap",
    "hyperloglog",
    "geo",
    "stream",
    "pubsub",
    "admin",
    "fast",
    "slow",
    "blocking",
    "dangerous",
    "connection",
    "transaction",
    "scripting",
];

/// The bit of a category named without its `@` (case-insensitive), if it exists.
pub fn category(name: &[u8]) -> Option<u32> {
    CATEGORIES.iter().position(|c| c.as_bytes().eq_ignore_ascii_case(name)).map(|i| 1 << i)
}

/// The most commands a bitmap holds.
pub const MAX_COMMANDS: usize = 1024;

/// One command or subcommand.
#[derive(Debug)]
pub struct Entry {
    /// `get`, or `client|list` for a subcommand.
    pub fullname: String,
    /// Its bit in a selector's bitmap.
    pub id: usize,
    /// Bitwise-or of category bits (see [`category`]).
    pub categories: u32,
    /// The container's id, for a subcommand.
    pub parent: Option<usize>,
    /// The subcommands' ids, for a container.
    pub subs: Vec<usize>,
    /// Its row in the command table (`None` for a command only Redis has).
    pub spec: Option<&'static CommandSpec>,
    /// Its COMMAND INFO metadata (key specs), if Redis 7.0 has it.
    pub meta: Option<&'static cmd::meta::CommandMeta>,
}

/// Every command and subcommand.
pub struct Commands {
    /// By id.
    pub entries: Vec<Entry>,
    by_name: HashMap<String, usize>,
    /// Ids by the address of their command table row (looked up for every command of a
    /// restricted user).
    by_spec: HashMap<usize, usize, ahash::RandomState>,
}

impl Commands {
    /// The top-level commands, in id order.
    pub fn top_level(&self) -> impl Iterator<Item = &Entry> {
        self.entries.iter().filter(|e| e.parent.is_none())
    }

    /// A command by `name` or `container|sub`, case-insensitively.
    pub fn lookup(&self, name: &[u8]) -> Option<&Entry> {
        let name = std::str::from_utf8(name).ok()?.to_ascii_lowercase();
        self.by_name.get(&name).map(|&id| &self.entries[id])
    }

    /// The id of a command table row.
    pub fn id_of(&self, spec: &'static CommandSpec) -> usize {
        self.by_spec[&(spec as *const CommandSpec as usize)]
    }
}

/// Categories as Redis's `setImplicitACLCategories` derives them from flags.
fn implicit_categories(spec: &CommandSpec) -> u32 {
    let bit = |name: &str| category(name.as_bytes()).expect("a known category");
    let mut c = 0;
    if spec.has(flags::WRITE) {
        c |= bit("write");
    }
    if spec.has(flags::READONLY) {
        c |= bit("read");
    }
    if spec.has(flags::ADMIN) {
        c |= bit("admin") | bit("dangerous");
    }
    if spec.has(flags::PUBSUB) {
        c |= bit("pubsub");
    }
    if spec.has(flags::FAST) {
        c |= bit("fast");
    }
    if spec.has(flags::BLOCKING) {
        c |= bit("blocking");
    }
    if c & bit("fast") == 0 {
        c |= bit("slow");
    }
    c
}

fn categories_of(fullname: &str, spec: &CommandSpec) -> u32 {
    match cmd::meta::find(fullname) {
        Some(m) => categories_from_names(m.acl_categories),
        None => implicit_categories(spec),
    }
}

fn categories_from_names(names: &[&str]) -> u32 {
    names
        .iter()
        .filter_map(|c| category(c.trim_start_matches('@').as_bytes()))
        .fold(0, |a, b| a | b)
}

/// One command as the universe is built: its row, or Redis's categories for a command only
/// Redis has.
#[derive(Clone, Copy)]
enum Source {
    Table(&'static CommandSpec),
    RedisOnly(u32),
}

/// The command universe, built once from the command table and `REDIS_ONLY`.
pub fn commands() -> &'static Commands {
    static COMMANDS: OnceLock<Commands> = OnceLock::new();
    COMMANDS.get_or_init(|| {
        use std::collections::BTreeMap;
        // Top-level name → (source, subcommands by name).
        let mut tree: BTreeMap<String, (Source, BTreeMap<String, Source>)> = BTreeMap::new();
        for spec in cmd::table().values().copied() {
            let subs = spec.subcommands.iter().map(|s| (s.name.to_string(), Source::Table(s)));
            tree.insert(spec.name.to_string(), (Source::Table(spec), subs.collect()));
        }
        for (fullname, categories) in cmd::meta::REDIS_ONLY {
            let source = Source::RedisOnly(categories_from_names(categories));
            match fullname.split_once('|') {
                None => {
                    tree.entry(fullname.to_string()).or_insert((source, BTreeMap::new()));
                }
                Some((parent, sub)) => {
                    if let Some((_, subs)) = tree.get_mut(parent) {
                        subs.entry(sub.to_string()).or_insert(source);
                    }
                }
            }
        }
        let mut all =
            Commands { entries: Vec::new(), by_name: HashMap::new(), by_spec: HashMap::default() };
        for (name, (source, subs)) in tree {
            let id = all.push(name.clone(), source, None);
            for (sub, source) in subs {
                let sub_id = all.push(format!("{name}|{sub}"), source, Some(id));
                all.entries[id].subs.push(sub_id);
            }
        }
        assert!(all.entries.len() < MAX_COMMANDS, "the ACL command bitmap is too small");
        all
    })
}

impl Commands {
    fn push(&mut self, fullname: String, source: Source, parent: Option<usize>) -> usize {
        let id = self.entries.len();
        let (categories, spec) = match source {
            Source::Table(spec) => {
                self.by_spec.insert(spec as *const CommandSpec as usize, id);
                (categories_of(&fullname, spec), Some(spec))
            }
            Source::RedisOnly(categories) => (categories, None),
        };
        self.by_name.insert(fullname.clone(), id);
        let meta = cmd::meta::find(&fullname);
        self.entries.push(Entry { fullname, id, categories, parent, subs: Vec::new(), spec, meta });
        id
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_command_has_an_id_and_categories() {
        let all = commands();
        let get = all.lookup(b"GET").expect("get exists");
        assert_eq!(get.categories & category(b"read").unwrap(), category(b"read").unwrap());
        let list = all.lookup(b"client|LIST").expect("client|list exists");
        assert_eq!(list.parent, Some(all.lookup(b"client").unwrap().id));
        assert!(all.entries.iter().all(|e| e.categories != 0), "a command without category");
        assert!(all.lookup(b"client|list|x").is_none());
        // A command only Redis has can be named in rules; it has no table row.
        let cluster = all.lookup(b"cluster").expect("Redis has CLUSTER");
        assert!(cluster.spec.is_none() && !cluster.subs.is_empty());
    }
}
