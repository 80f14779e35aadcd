//! Where the keys of a command line are (COMMAND GETKEYS and GETKEYSANDFLAGS): Redis's key
//! specs followed over the arguments as Redis's `getKeysUsingKeySpecs` does, and, where Redis
//! has one, the command's own key finder.

use bytes::Bytes;

use super::command::by_command_line;
use crate::cmd::meta::{self, BeginSearch, CommandMeta, FindKeys, KeySpec};
use crate::cmd::CommandSpec;
use crate::error::CommandError;

/// A key of a command line: its position (the command name is 0) and its key-spec flags.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct FoundKey {
    /// Its position (the command name is 0).
    pub(super) pos: usize,
    /// Its key spec's flags.
    pub(super) flags: &'static [&'static str],
}

/// The keys of a full command line, with Redis's checks and error texts in Redis's order
/// (`getKeysSubcommandImpl`).
pub(super) fn keys_of_line(argv: &[Bytes]) -> Result<Vec<FoundKey>, CommandError> {
    let (spec, fullname) =
        by_command_line(argv).ok_or_else(|| CommandError::err("Invalid command specified"))?;
    let meta = meta::find(&fullname);
    let native = native_keys(&fullname);
    let has_keys = match meta {
        Some(m) => native.is_some() || m.key_specs.iter().any(|s| !s.flags.contains(&"not_key")),
        None => spec.keys.first > 0,
    };
    if !has_keys {
        return Err(CommandError::err("The command has no key arguments"));
    }
    if !spec.arity_ok(argv.len()) {
        return Err(CommandError::err("Invalid number of arguments specified for command"));
    }
    let keys = match meta {
        Some(m) => keys_from_meta(m, native, argv),
        None => spec.key_positions(argv.len()).map(|pos| FoundKey { pos, flags: &[] }).collect(),
    };
    if keys.is_empty() && !meta.is_some_and(|m| m.flags.contains(&"no_mandatory_keys")) {
        return Err(CommandError::err("Invalid arguments specified for command"));
    }
    Ok(keys)
}

/// The positions of the keys of a valid command line (none for a line Redis would find no
/// keys in), for CLIENT TRACKING. Shard channels (SSUBSCRIBE's "keys") are not keys here, as
/// Redis skips pub/sub commands.
pub fn positions(argv: &[Bytes]) -> Vec<usize> {
    match by_command_line(argv) {
        Some((spec, _)) if spec.has(crate::cmd::flags::PUBSUB) => Vec::new(),
        _ => keys_of_line(argv)
            .map(|keys| keys.into_iter().map(|k| k.pos).collect())
            .unwrap_or_default(),
    }
}

/// The keys of a command line that passed arity checks, with their key-spec flags, as the
/// ACL check reads them (Redis's `getKeysFromCommandWithSpecs`): none when it has no keys.
/// The caller has already resolved the command (`fullname`, its row and its metadata), which
/// keeps this off the string work of a lookup: it runs on every command of a restricted user.
pub fn keys_with_flags(
    fullname: &str,
    spec: &CommandSpec,
    meta: Option<&'static CommandMeta>,
    argv: &[Bytes],
) -> Vec<(usize, &'static [&'static str])> {
    let native = native_keys(fullname);
    let keys = match meta {
        Some(m)
            if native.is_some() || m.key_specs.iter().any(|s| !s.flags.contains(&"not_key")) =>
        {
            keys_from_meta(m, native, argv)
        }
        Some(_) => return Vec::new(),
        None => spec.key_positions(argv.len()).map(|pos| FoundKey { pos, flags: &[] }).collect(),
    };
    keys.into_iter().map(|k| (k.pos, k.flags)).collect()
}

/// Redis's `getKeysFromCommandWithSpecs`: the key specs when their flags do not depend on the
/// arguments and they can be followed; otherwise the command's own key finder, if any.
fn keys_from_meta(m: &CommandMeta, native: Option<NativeKeys>, argv: &[Bytes]) -> Vec<FoundKey> {
    let has_keyspec = m.key_specs.iter().any(|s| !s.flags.contains(&"not_key"));
    let has_varflags = m.key_specs.iter().any(|s| s.flags.contains(&"variable_flags"));
    if has_keyspec && !has_varflags {
        if let Some(keys) = keys_from_specs(m.key_specs, argv) {
            return keys;
        }
    }
    native.map_or_else(Vec::new, |n| n.keys(argv))
}

/// Follows key specs over a command line as Redis's `getKeysUsingKeySpecs` does; `None` when a
/// spec cannot be followed (unknown, incomplete, a bad key count, keys past the end).
fn keys_from_specs(specs: &'static [KeySpec], argv: &[Bytes]) -> Option<Vec<FoundKey>> {
    let argc = argv.len() as i64;
    let mut keys = Vec::new();
    for spec in specs {
        if spec.flags.contains(&"not_key") {
            continue;
        }
        let mut first = match spec.begin_search {
            BeginSearch::Index { pos } => pos as i64,
            BeginSearch::Keyword { keyword, startfrom } => {
                match keyword_position(argv, keyword, startfrom) {
                    Some(i) => i + 1,
                    None => continue,
                }
            }
            BeginSearch::Unknown => return None,
        };
        let (last, step) = match spec.find_keys {
            FindKeys::Range { lastkey, keystep, limit } => {
                let (lastkey, limit) = (lastkey as i64, limit as i64);
                let last = if lastkey >= 0 {
                    first + lastkey
                } else if limit == 0 {
                    argc + lastkey
                } else {
                    first + ((argc - first) / limit + lastkey)
                };
                (last, keystep)
            }
            FindKeys::Keynum { keynumidx, firstkey, keystep } => {
                if keynumidx as i64 >= argc {
                    return None;
                }
                let count = argv.get(usize::try_from(first + keynumidx as i64).ok()?)?;
                let count = common::fmt::parse_i64(count).filter(|n| *n >= 0)?;
                first += firstkey as i64;
                // Redis keeps the count in a C int.
                (first + (count as i32) as i64 - 1, keystep)
            }
            FindKeys::Unknown => return None,
        };
        if first < 0 || last >= argc || last < first || first >= argc {
            return None;
        }
        let step = step.max(1) as usize;
        keys.extend(
            (first as usize..=last as usize)
                .step_by(step)
                .map(|pos| FoundKey { pos, flags: spec.flags }),
        );
        if spec.flags.contains(&"incomplete") {
            return None;
        }
    }
    Some(keys)
}

/// Where `keyword` is in `argv`, searched as Redis does: from `startfrom` forwards up to (not
/// including) the last argument, or from `argc + startfrom` backwards down to argument 2.
fn keyword_position(argv: &[Bytes], keyword: &str, startfrom: i32) -> Option<i64> {
    let argc = argv.len() as i64;
    let (start, end) =
        if startfrom > 0 { (startfrom as i64, argc - 1) } else { (argc + startfrom as i64, 1) };
    let mut i = start;
    while i != end {
        if i >= argc || i < 1 {
            break;
        }
        if crate::dispatch::c_str(&argv[i as usize]).eq_ignore_ascii_case(keyword.as_bytes()) {
            return Some(i);
        }
        i += if start <= end { 1 } else { -1 };
    }
    None
}

/// A command's own key finder (a `getkeys_proc` in Redis's db.c), used when its key specs
/// cannot be followed (a bad key count, keys found by keyword) or their flags depend on the
/// arguments (SET … GET). Redis also has finders for GEORADIUS and XREAD: warden-node has no
/// XREAD finder, and GEORADIUS's key specs, followed above, give the keys its finder would
/// (its STORE destination included), so neither is ported.
#[derive(Debug, Clone, Copy)]
enum NativeKeys {
    /// `setGetKeys`: the key at 1, read as well as written when a GET argument is present.
    Set,
    /// `sortGetKeys`: the key at 1, and the argument after the last STORE (LIMIT's two
    /// arguments and BY's and GET's one are skipped over).
    Sort,
    /// `sortROGetKeys`: the key at 1.
    SortRo,
    /// `bitfieldGetKeys`: the key at 1, read-only while every operation is a GET (or
    /// OVERFLOW), otherwise written.
    Bitfield,
    /// `migrateGetKeys`: the key at 3, or every argument after KEYS (none if the key at 3 is
    /// not empty then); AUTH's and AUTH2's arguments are skipped while looking for KEYS.
    Migrate,
    /// `genericGetKeys`: a key count at `count`, keys from `first` every `step`, and a
    /// destination key at `store` (0: none) listed last. These keys carry no flags.
    Counted { store: usize, count: usize, first: usize, step: usize },
}

fn native_keys(fullname: &str) -> Option<NativeKeys> {
    let counted = |store, count, first| Some(NativeKeys::Counted { store, count, first, step: 1 });
    match fullname {
        "set" => Some(NativeKeys::Set),
        "sort" => Some(NativeKeys::Sort),
        "sort_ro" => Some(NativeKeys::SortRo),
        "bitfield" => Some(NativeKeys::Bitfield),
        "migrate" => Some(NativeKeys::Migrate),
        "lmpop" | "zmpop" | "sintercard" | "zunion" | "zinter" | "zdiff" | "zintercard" => {
            counted(0, 1, 2)
        }
        "blmpop" | "bzmpop" | "eval" | "evalsha" | "eval_ro" | "evalsha_ro" | "fcall"
        | "fcall_ro" => counted(0, 2, 3),
        "zunionstore" | "zinterstore" | "zdiffstore" => counted(1, 2, 3),
        _ => None,
    }
}

impl NativeKeys {
    fn keys(self, argv: &[Bytes]) -> Vec<FoundKey> {
        match self {
            NativeKeys::Set => {
                let get = argv
                    .iter()
                    .skip(3)
                    .any(|a| crate::dispatch::c_str(a).eq_ignore_ascii_case(b"get"));
                let flags: &'static [&'static str] =
                    if get { &["RW", "access", "update"] } else { &["OW", "update"] };
                vec![FoundKey { pos: 1, flags }]
            }
            NativeKeys::Sort => {
                const READ: &[&str] = &["RO", "access"];
                let mut keys = vec![FoundKey { pos: 1, flags: READ }];
                let mut store = None;
                let mut i = 2;
                while i < argv.len() {
                    let word = crate::dispatch::c_str(&argv[i]).to_ascii_lowercase();
                    match word.as_slice() {
                        b"limit" => i += 2,
                        b"get" | b"by" => i += 1,
                        // The store key itself is looked at as an option next, as Redis does.
                        b"store" if i + 1 < argv.len() => store = Some(i + 1),
                        _ => {}
                    }
                    i += 1;
                }
                keys.extend(store.map(|pos| FoundKey { pos, flags: &["OW", "update"] }));
                keys
            }
            NativeKeys::SortRo => vec![FoundKey { pos: 1, flags: &["RO", "access"] }],
            NativeKeys::Bitfield => {
                let mut read_only = true;
                let mut i = 2;
                while i < argv.len() {
                    let rest = argv.len() - i - 1;
                    let op = crate::dispatch::c_str(&argv[i]).to_ascii_lowercase();
                    match op.as_slice() {
                        b"get" if rest >= 2 => i += 2,
                        b"overflow" if rest >= 1 => i += 1,
                        // SET, INCRBY, or a syntax error: assume a write, as Redis does.
                        _ => {
                            read_only = false;
                            break;
                        }
                    }
                    i += 1;
                }
                let flags: &'static [&'static str] =
                    if read_only { &["RO", "access"] } else { &["RW", "access", "update"] };
                vec![FoundKey { pos: 1, flags }]
            }
            NativeKeys::Migrate => {
                let (mut first, mut num) = (3, 1);
                let mut i = 6;
                while i < argv.len() {
                    let word = crate::dispatch::c_str(&argv[i]).to_ascii_lowercase();
                    match word.as_slice() {
                        b"keys" if argv.get(3).is_some_and(|k| !k.is_empty()) => return Vec::new(),
                        b"keys" => {
                            first = i + 1;
                            num = argv.len() - first;
                            break;
                        }
                        b"auth" => i += 1,
                        b"auth2" => i += 2,
                        _ => {}
                    }
                    i += 1;
                }
                (first..first + num).map(|pos| FoundKey { pos, flags: &[] }).collect()
            }
            NativeKeys::Counted { store, count, first, step } => {
                let num = argv.get(count).map_or(0, |a| c_atoi(a));
                let room = (argv.len() as i64 - first as i64) / step as i64;
                if num < 1 || num as i64 > room {
                    return Vec::new();
                }
                let mut keys: Vec<FoundKey> = (0..num as usize)
                    .map(|i| FoundKey { pos: first + i * step, flags: &[] })
                    .collect();
                if store > 0 {
                    keys.push(FoundKey { pos: store, flags: &[] });
                }
                keys
            }
        }
    }
}

/// C's `atoi` as glibc has it: leading spaces, a sign, then digits up to the first other byte;
/// the value is `strtol`'s (clamped to 64 bits) cut to an `int`.
fn c_atoi(arg: &[u8]) -> i32 {
    let mut rest = arg.iter().skip_while(|b| b" \t\n\x0b\x0c\r".contains(b)).peekable();
    let negative = match rest.peek() {
        Some(b'-') => {
            rest.next();
            true
        }
        Some(b'+') => {
            rest.next();
            false
        }
        _ => false,
    };
    let mut n: i64 = 0;
    for b in rest.take_while(|b| b.is_ascii_digit()) {
        let digit = (b - b'0') as i64;
        n = if negative {
            n.saturating_mul(10).saturating_sub(digit)
        } else {
            n.saturating_mul(10).saturating_add(digit)
        };
    }
    n as i32
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(words: &str) -> Vec<Bytes> {
        words.split(' ').map(|w| Bytes::copy_from_slice(w.as_bytes())).collect()
    }

    fn positions(words: &str) -> Result<Vec<usize>, String> {
        keys_of_line(&line(words))
            .map(|keys| keys.into_iter().map(|k| k.pos).collect())
            .map_err(|e| format!("{e:?}"))
    }

    #[test]
    fn keys_follow_the_key_specs() {
        assert_eq!(positions("get a"), Ok(vec![1]));
        assert_eq!(positions("mset a 1 b 2"), Ok(vec![1, 3]));
        assert_eq!(positions("zunionstore d 2 a b"), Ok(vec![1, 3, 4]));
        assert_eq!(positions("lmpop 2 a b left"), Ok(vec![2, 3]));
        assert_eq!(positions("blmpop 0 2 a b left"), Ok(vec![3, 4]));
        // The specs know only the count: LEFT is taken for a key, as by Redis.
        assert_eq!(positions("lmpop 3 a b left"), Ok(vec![2, 3, 4]));
        // Redis keeps the count in a C int.
        assert_eq!(positions("zunionstore d 4294967298 a b"), Ok(vec![1, 3, 4]));
        assert_eq!(positions("object encoding k"), Ok(vec![2]));
        // A key count that specs reject but C's atoi reads: Redis's own finder answers.
        assert_eq!(positions("zunionstore d 2x a b"), Ok(vec![3, 4, 1]));
    }

    #[test]
    fn key_errors_come_in_redis_order() {
        let err = |words: &str| positions(words).expect_err(words);
        assert!(err("nosuch a").contains("Invalid command specified"));
        assert!(err("client nosuch").contains("Invalid command specified"));
        assert!(err("ping").contains("The command has no key arguments"));
        assert!(err("client list").contains("The command has no key arguments"));
        assert!(err("set k0").contains("Invalid number of arguments"));
        assert!(err("lmpop 4 a b left").contains("Invalid arguments specified"));
        assert!(err("lmpop 0 a left").contains("Invalid arguments specified"));
    }

    #[test]
    fn set_flags_depend_on_get() {
        let flags = |words: &str| keys_of_line(&line(words)).expect(words)[0].flags;
        assert_eq!(flags("set k v"), ["OW", "update"]);
        assert_eq!(flags("set k v GET"), ["RW", "access", "update"]);
    }

    #[test]
    fn keyword_search_stops_before_the_last_argument() {
        let argv = line("cmd a STREAMS k id");
        assert_eq!(keyword_position(&argv, "streams", 1), Some(2));
        assert_eq!(keyword_position(&argv, "id", 1), None);
        assert_eq!(keyword_position(&argv, "streams", -1), Some(2));
    }

    #[test]
    fn atoi_reads_a_prefix() {
        assert_eq!(c_atoi(b" 12abc"), 12);
        assert_eq!(c_atoi(b"-3"), -3);
        assert_eq!(c_atoi(b"x"), 0);
        assert_eq!(c_atoi(b"99999999999999999999"), -1);
    }
}
