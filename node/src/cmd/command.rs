//! COMMAND and its subcommands: the command table as clients and tools see it.
//!
//! The command table says which commands exist and their arity; how COMMAND INFO describes
//! them (flags, ACL categories, tips, key specs) and where COMMAND GETKEYS finds their keys
//! come from Redis 7.0.15's metadata in `meta`, so both read exactly as Redis's. COMMAND DOCS
//! takes the interface part of Redis's docs (group, since, the argument tree) from `docs`, but
//! none of its prose. A command Redis 7.0 lacks (WAITAOF, CLIENT SETINFO) is described from its
//! `CommandSpec` instead.

use bytes::Bytes;
use common::resp::Frame;

use super::command_keys::keys_of_line;
use crate::cmd::args::is;
use crate::cmd::docs;
use crate::cmd::flags::*;
use crate::cmd::meta::{self, BeginSearch, FindKeys, KeySpec};
use crate::cmd::{cmd, container_with, table, CommandSpec};
use crate::error::{CmdResult, CommandError};
use crate::exec::Ctx;

/// COMMAND itself.
pub static COMMANDS: &[CommandSpec] =
    &[container_with("command", -1, LOADING | STALE, command_all, COMMAND)];

static COMMAND: &[CommandSpec] = &[
    cmd("count", 2, LOADING | STALE, (0, 0, 0), command_count),
    cmd("info", -2, LOADING | STALE, (0, 0, 0), command_info),
    cmd("docs", -2, LOADING | STALE, (0, 0, 0), command_docs),
    cmd("list", -2, LOADING | STALE, (0, 0, 0), command_list),
    cmd("getkeys", -4, LOADING | STALE, (0, 0, 0), command_getkeys),
    cmd("getkeysandflags", -4, LOADING | STALE, (0, 0, 0), command_getkeysandflags),
    cmd("help", 2, LOADING | STALE, (0, 0, 0), command_help),
];

/// Every top-level command, sorted by name (Redis's own order is its hash table's).
fn sorted_commands() -> Vec<&'static CommandSpec> {
    let mut all: Vec<&'static CommandSpec> = table().values().copied().collect();
    all.sort_by_key(|s| s.name);
    all
}

/// The subcommands of `spec`, sorted by name.
fn sorted_subcommands(spec: &'static CommandSpec) -> Vec<&'static CommandSpec> {
    let mut subs: Vec<&'static CommandSpec> = spec.subcommands.iter().collect();
    subs.sort_by_key(|s| s.name);
    subs
}

/// A command by full name (`get`, `client|list`), as Redis's `lookupCommandBySds`: one level
/// of subcommands, and `get|x` is nothing since GET has none.
fn by_fullname(name: &[u8]) -> Option<(&'static CommandSpec, String)> {
    let mut parts = name.split(|&b| b == b'|');
    let base = crate::cmd::lookup(parts.next()?)?;
    match (parts.next(), parts.next()) {
        (None, _) => Some((base, base.name.to_string())),
        (Some(sub), None) if !base.subcommands.is_empty() => {
            let sub = crate::cmd::lookup_sub(base, sub)?;
            Some((sub, format!("{}|{}", base.name, sub.name)))
        }
        _ => None,
    }
}

/// The command a full command line runs, as Redis's `lookupCommand`: a container named alone
/// is the container itself.
pub(super) fn by_command_line(argv: &[Bytes]) -> Option<(&'static CommandSpec, String)> {
    let base = crate::cmd::lookup(argv.first()?)?;
    if argv.len() == 1 || base.subcommands.is_empty() {
        return Some((base, base.name.to_string()));
    }
    let sub = crate::cmd::lookup_sub(base, &argv[1])?;
    Some((sub, format!("{}|{}", base.name, sub.name)))
}

fn statuses(names: &'static [&'static str]) -> Frame {
    Frame::Set(names.iter().map(|n| Frame::simple(n)).collect())
}

/// A key spec as COMMAND INFO prints it: a map of notes, flags, begin_search and find_keys.
fn key_spec_frame(spec: &KeySpec) -> Frame {
    let typed = |kind: &'static str, fields: Vec<(&'static str, Frame)>| {
        Frame::Map(vec![
            (Frame::bulk_static("type"), Frame::bulk_static(kind)),
            (
                Frame::bulk_static("spec"),
                Frame::Map(fields.into_iter().map(|(k, v)| (Frame::bulk_static(k), v)).collect()),
            ),
        ])
    };
    let int = |n: i32| Frame::Integer(n as i64);
    let begin = match spec.begin_search {
        BeginSearch::Index { pos } => typed("index", vec![("index", int(pos))]),
        BeginSearch::Keyword { keyword, startfrom } => typed(
            "keyword",
            vec![("keyword", Frame::bulk_static(keyword)), ("startfrom", int(startfrom))],
        ),
        BeginSearch::Unknown => typed("unknown", vec![]),
    };
    let find = match spec.find_keys {
        FindKeys::Range { lastkey, keystep, limit } => typed(
            "range",
            vec![("lastkey", int(lastkey)), ("keystep", int(keystep)), ("limit", int(limit))],
        ),
        FindKeys::Keynum { keynumidx, firstkey, keystep } => typed(
            "keynum",
            vec![
                ("keynumidx", int(keynumidx)),
                ("firstkey", int(firstkey)),
                ("keystep", int(keystep)),
            ],
        ),
        FindKeys::Unknown => typed("unknown", vec![]),
    };
    let mut fields = Vec::with_capacity(4);
    if let Some(notes) = spec.notes {
        fields.push((Frame::bulk_static("notes"), Frame::bulk_static(notes)));
    }
    fields.push((Frame::bulk_static("flags"), statuses(spec.flags)));
    fields.push((Frame::bulk_static("begin_search"), begin));
    fields.push((Frame::bulk_static("find_keys"), find));
    Frame::Map(fields)
}

/// One COMMAND INFO entry: name, arity, flags, first/last/step, ACL categories, tips, key
/// specs, subcommands (Redis sends an empty set for a command without any, an array otherwise).
fn command_entry(spec: &'static CommandSpec, fullname: &str) -> Frame {
    let subcommands = if spec.subcommands.is_empty() {
        Frame::Set(vec![])
    } else {
        Frame::Array(
            sorted_subcommands(spec)
                .into_iter()
                .map(|s| command_entry(s, &format!("{fullname}|{}", s.name)))
                .collect(),
        )
    };
    let name = Frame::Bulk(Bytes::from(fullname.to_string()));
    let arity = Frame::Integer(spec.arity as i64);
    let Some(m) = meta::find(fullname) else {
        let flags = crate::cmd::flags::NAMES
            .iter()
            .filter(|(bit, _)| spec.has(*bit))
            .map(|(_, name)| Frame::simple(name))
            .collect();
        return Frame::Array(vec![
            name,
            arity,
            Frame::Set(flags),
            Frame::Integer(spec.keys.first as i64),
            Frame::Integer(spec.keys.last as i64),
            Frame::Integer(spec.keys.step as i64),
            Frame::Set(vec![]),
            Frame::Set(vec![]),
            Frame::Set(vec![]),
            subcommands,
        ]);
    };
    Frame::Array(vec![
        name,
        arity,
        statuses(m.flags),
        Frame::Integer(m.first_key as i64),
        Frame::Integer(m.last_key as i64),
        Frame::Integer(m.key_step as i64),
        statuses(m.acl_categories),
        Frame::Set(m.tips.iter().map(|t| Frame::bulk_static(t)).collect()),
        Frame::Set(m.key_specs.iter().map(key_spec_frame).collect()),
        subcommands,
    ])
}

fn command_all(_: &mut Ctx<'_>, _: &[Bytes]) -> CmdResult {
    Ok(Frame::Array(sorted_commands().into_iter().map(|s| command_entry(s, s.name)).collect()))
}

fn command_count(_: &mut Ctx<'_>, _: &[Bytes]) -> CmdResult {
    Ok(Frame::Integer(table().len() as i64))
}

fn command_info(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    if args.len() == 2 {
        return command_all(ctx, args);
    }
    Ok(Frame::Array(
        args[2..]
            .iter()
            .map(|name| match by_fullname(name) {
                Some((spec, fullname)) => command_entry(spec, &fullname),
                None => Frame::Null,
            })
            .collect(),
    ))
}

/// COMMAND DOCS [<name> ...]: every command, or the named ones (full names; unknown names are
/// skipped), each with its docs map. Redis answers a map even in RESP2, flattened there.
fn command_docs(_: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    Ok(docs_reply(&args[2..]))
}

/// COMMAND DOCS's reply for these names (none: every command).
fn docs_reply(names: &[Bytes]) -> Frame {
    let found: Vec<(&'static CommandSpec, String)> = if names.is_empty() {
        sorted_commands().into_iter().map(|s| (s, s.name.to_string())).collect()
    } else {
        names.iter().filter_map(|n| by_fullname(n)).collect()
    };
    Frame::Map(
        found
            .into_iter()
            .map(|(spec, fullname)| {
                let entry = docs_entry(spec, &fullname);
                (Frame::Bulk(Bytes::from(fullname)), entry)
            })
            .collect(),
    )
}

/// One COMMAND DOCS entry, its fields in Redis's order (`addReplyCommandDocs`): summary, since,
/// group, doc_flags, deprecated_since, replaced_by, arguments, subcommands. Redis's prose
/// (summary text, complexity, history) is not ours to copy: the summary is empty and the
/// others are left out (see `docs`). A command Redis 7.0 lacks gets the bare minimum.
fn docs_entry(spec: &'static CommandSpec, fullname: &str) -> Frame {
    let field = |name: &'static str, value: Frame| (Frame::bulk_static(name), value);
    let mut fields = vec![field("summary", Frame::bulk_static(""))];
    match docs::find(fullname) {
        Some(doc) => {
            fields.push(field("since", Frame::bulk_static(doc.since)));
            fields.push(field("group", Frame::bulk_static(doc.group)));
            if !doc.doc_flags.is_empty() {
                fields.push(field("doc_flags", statuses(doc.doc_flags)));
            }
            if let Some(version) = doc.deprecated_since {
                fields.push(field("deprecated_since", Frame::bulk_static(version)));
            }
            if let Some(by) = doc.replaced_by {
                fields.push(field("replaced_by", Frame::bulk_static(by)));
            }
            if !doc.arguments.is_empty() {
                fields.push(field("arguments", doc_args_frame(doc.arguments)));
            }
        }
        None => {
            fields.push(field("since", Frame::bulk_static("1.0.0")));
            fields.push(field("group", Frame::bulk_static("generic")));
        }
    }
    if !spec.subcommands.is_empty() {
        let subs = sorted_subcommands(spec)
            .into_iter()
            .map(|s| {
                let name = format!("{fullname}|{}", s.name);
                let entry = docs_entry(s, &name);
                (Frame::Bulk(Bytes::from(name)), entry)
            })
            .collect();
        fields.push(field("subcommands", Frame::Map(subs)));
    }
    Frame::Map(fields)
}

/// An argument list as COMMAND DOCS prints it (`addReplyCommandArgList`): a map per argument
/// with name, type, key_spec_index, token, since, deprecated_since, flags, arguments.
fn doc_args_frame(args: &'static [docs::Arg]) -> Frame {
    Frame::Array(
        args.iter()
            .map(|a| {
                let field = |name: &'static str, value: Frame| (Frame::bulk_static(name), value);
                let mut fields = vec![
                    field("name", Frame::bulk_static(a.name)),
                    field("type", Frame::bulk_static(a.kind.name())),
                ];
                if let Some(index) = a.key_spec_index {
                    fields.push(field("key_spec_index", Frame::Integer(index as i64)));
                }
                if let Some(token) = a.token {
                    fields.push(field("token", Frame::bulk_static(token)));
                }
                if let Some(version) = a.since {
                    fields.push(field("since", Frame::bulk_static(version)));
                }
                if let Some(version) = a.deprecated_since {
                    fields.push(field("deprecated_since", Frame::bulk_static(version)));
                }
                if !a.flags.is_empty() {
                    fields.push(field("flags", statuses(a.flags)));
                }
                if a.kind.nests() {
                    fields.push(field("arguments", doc_args_frame(a.arguments)));
                }
                Frame::Map(fields)
            })
            .collect(),
    )
}

/// COMMAND LIST's FILTERBY clause.
enum ListFilter {
    /// No clause: every command.
    All,
    /// `MODULE <name>`: warden has no modules, so no command belongs to one.
    Module,
    /// `ACLCAT <category>`: the category's name without its `@`, any case.
    AclCategory(Bytes),
    /// `PATTERN <glob>`: matched, ignoring case, against full names (`client|list`).
    Pattern(Bytes),
}

impl ListFilter {
    fn keeps(&self, fullname: &str) -> bool {
        match self {
            ListFilter::All => true,
            ListFilter::Module => false,
            ListFilter::AclCategory(category) => meta::find(fullname).is_some_and(|m| {
                m.acl_categories.iter().any(|c| {
                    let name = c.strip_prefix('@').unwrap_or(c);
                    name.as_bytes().eq_ignore_ascii_case(crate::dispatch::c_str(category))
                })
            }),
            ListFilter::Pattern(glob) => common::glob::matches(glob, fullname.as_bytes(), true),
        }
    }
}

/// COMMAND LIST [FILTERBY MODULE <name> | ACLCAT <category> | PATTERN <glob>]: full names of
/// commands and subcommands, each container followed by its subcommands.
fn command_list(_: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    // As Redis: exactly one FILTERBY clause or none; an unknown filter is a syntax error.
    let filter = match args.len() {
        2 => ListFilter::All,
        5 if is(&args[2], "filterby") => match &args[3] {
            kind if is(kind, "module") => ListFilter::Module,
            kind if is(kind, "aclcat") => ListFilter::AclCategory(args[4].clone()),
            kind if is(kind, "pattern") => ListFilter::Pattern(args[4].clone()),
            _ => return Err(CommandError::Syntax),
        },
        _ => return Err(CommandError::Syntax),
    };
    let mut names = Vec::new();
    for spec in sorted_commands() {
        names.push(spec.name.to_string());
        names.extend(sorted_subcommands(spec).iter().map(|s| format!("{}|{}", spec.name, s.name)));
    }
    Ok(Frame::Array(
        names
            .into_iter()
            .filter(|n| filter.keeps(n))
            .map(|n| Frame::Bulk(Bytes::from(n)))
            .collect(),
    ))
}

fn command_getkeys(_: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let keys = keys_of_line(&args[2..])?;
    Ok(Frame::Array(keys.into_iter().map(|k| Frame::Bulk(args[2 + k.pos].clone())).collect()))
}

fn command_getkeysandflags(_: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let keys = keys_of_line(&args[2..])?;
    Ok(Frame::Array(
        keys.into_iter()
            .map(|k| Frame::Array(vec![Frame::Bulk(args[2 + k.pos].clone()), statuses(k.flags)]))
            .collect(),
    ))
}

fn command_help(_: &mut Ctx<'_>, _: &[Bytes]) -> CmdResult {
    Ok(super::help::reply(
        "COMMAND",
        &[
            (
                "(no subcommand) | INFO [<name> ...]",
                "Name, arity, flags, key positions, ACL categories, tips and key specs of commands.",
            ),
            (
                "COUNT | LIST [FILTERBY MODULE <name>|ACLCAT <category>|PATTERN <pattern>]",
                "How many commands there are, or the names of commands and subcommands.",
            ),
            ("DOCS [<name> ...]", "Documentation summaries."),
            ("GETKEYS <command> [<arg> ...]", "Which arguments of a full command are keys."),
            (
                "GETKEYSANDFLAGS <command> [<arg> ...]",
                "The keys of a full command, each with how the command uses it.",
            ),
        ],
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(words: &str) -> Vec<Bytes> {
        words.split(' ').map(|w| Bytes::copy_from_slice(w.as_bytes())).collect()
    }

    #[test]
    fn metadata_is_sorted_and_covers_the_command_table() {
        assert!(meta::COMMANDS.windows(2).all(|w| w[0].name < w[1].name));
        for spec in table().values() {
            if spec.name != "waitaof" {
                assert!(meta::find(spec.name).is_some(), "{} has no metadata", spec.name);
            }
        }
        assert!(meta::find("client|list").is_some());
    }

    /// The value of `key` in a map frame.
    fn field<'a>(map: &'a Frame, key: &str) -> &'a Frame {
        let Frame::Map(pairs) = map else { panic!("not a map: {map:?}") };
        let found = pairs.iter().find(|(k, _)| *k == Frame::bulk(key.as_bytes()));
        &found.unwrap_or_else(|| panic!("no {key} in {map:?}")).1
    }

    fn text(frame: &Frame) -> &str {
        match frame {
            Frame::Bulk(b) | Frame::Simple(b) => std::str::from_utf8(b).expect("docs are ASCII"),
            other => panic!("not a string: {other:?}"),
        }
    }

    fn keys(map: &Frame) -> Vec<&str> {
        let Frame::Map(pairs) = map else { panic!("not a map: {map:?}") };
        pairs.iter().map(|(k, _)| text(k)).collect()
    }

    /// An argument list as `name`, `name=TOKEN`, `name(nested …)`, in order.
    fn arg_outline(args: &Frame) -> Vec<String> {
        let Frame::Array(args) = args else { panic!("not an array: {args:?}") };
        args.iter()
            .map(|a| {
                let mut s = text(field(a, "name")).to_string();
                if keys(a).contains(&"token") {
                    s = format!("{s}={}", text(field(a, "token")));
                }
                if keys(a).contains(&"arguments") {
                    s = format!("{s}({})", arg_outline(field(a, "arguments")).join(" "));
                }
                s
            })
            .collect()
    }

    #[test]
    fn docs_are_sorted_and_cover_the_command_table() {
        assert!(docs::COMMANDS.windows(2).all(|w| w[0].name < w[1].name));
        for spec in table().values() {
            if spec.name != "waitaof" {
                assert!(docs::find(spec.name).is_some(), "{} has no docs", spec.name);
            }
        }
    }

    #[test]
    fn docs_carry_redis_interface_facts_but_no_prose() {
        let reply = docs_reply(&line("set zadd nosuch client get|x"));
        assert_eq!(keys(&reply), ["set", "zadd", "client"]);

        let set = field(&reply, "set");
        assert_eq!(keys(set), ["summary", "since", "group", "arguments"]);
        assert_eq!(text(field(set, "summary")), "");
        assert_eq!(text(field(set, "since")), "1.0.0");
        assert_eq!(text(field(set, "group")), "string");
        assert_eq!(
            arg_outline(field(set, "arguments")),
            [
                "key",
                "value",
                "condition(nx=NX xx=XX)",
                "get=GET",
                "expiration(seconds=EX milliseconds=PX unix-time-seconds=EXAT \
                 unix-time-milliseconds=PXAT keepttl=KEEPTTL)",
            ]
        );
        let Frame::Array(set_args) = field(set, "arguments") else { panic!("set arguments") };
        assert_eq!(keys(&set_args[0]), ["name", "type", "key_spec_index"]);
        assert_eq!(text(field(&set_args[0], "type")), "key");
        assert_eq!(field(&set_args[0], "key_spec_index"), &Frame::Integer(0));
        assert_eq!(keys(&set_args[3]), ["name", "type", "token", "since", "flags"]);
        assert_eq!(field(&set_args[3], "flags"), &Frame::Set(vec![Frame::simple("optional")]));

        let zadd = field(&reply, "zadd");
        assert_eq!(text(field(zadd, "since")), "1.2.0");
        assert_eq!(text(field(zadd, "group")), "sorted-set");
        assert_eq!(
            arg_outline(field(zadd, "arguments")),
            [
                "key",
                "condition(nx=NX xx=XX)",
                "comparison(gt=GT lt=LT)",
                "change=CH",
                "increment=INCR",
                "score_member(score member)",
            ]
        );

        let client = field(&reply, "client");
        assert_eq!(keys(client), ["summary", "since", "group", "subcommands"]);
        assert_eq!(text(field(client, "since")), "2.4.0");
        assert_eq!(text(field(client, "group")), "connection");
        let subs = field(client, "subcommands");
        assert!(keys(subs).contains(&"client|list"));
        let kill = field(subs, "client|kill");
        assert_eq!(text(field(kill, "group")), "connection");
        let outline = arg_outline(field(kill, "arguments")).join(" ");
        assert!(outline.starts_with("filter(ip:port new-format(client-id=ID "), "{outline}");
        assert!(outline.contains("yes/no=SKIPME"), "{outline}");
        // A subcommand Redis 7.0 lacks keeps the bare entry.
        let setinfo = field(subs, "client|setinfo");
        assert_eq!(keys(setinfo), ["summary", "since", "group"]);
    }

    #[test]
    fn docs_with_no_names_list_every_command() {
        assert_eq!(keys(&docs_reply(&[])).len(), table().len());
    }
}
