#!/usr/bin/env python3
"""Writes node/src/cmd/meta.rs and node/src/cmd/docs.rs: Redis 7.0.15's COMMAND INFO metadata
and the interface part of its COMMAND DOCS, for every command warden-node implements.

Why a generated table: COMMAND INFO, COMMAND LIST FILTERBY ACLCAT and COMMAND GETKEYS must
answer exactly as Redis 7.0 does (clients and cluster proxies read key specs, flags and ACL
categories from them), and those facts live in Redis's own command table. Asking a real
redis-server for them is the one way to get them right and keep them right; copying them by
hand drifts.

How it works:
  1. starts warden-node (built with `cargo build -p warden-node` unless --warden is given) and
     redis-server 7.0.15 on free loopback ports, each in its own temp dir;
  2. takes the set of commands (and subcommands) from warden-node's own `COMMAND INFO`, so
     the table covers exactly what warden-node implements;
  3. asks Redis `COMMAND INFO <name>` in RESP3 for each and writes the flags, legacy key
     positions, ACL categories, tips and key specs as Rust data, sorted by full name (meta.rs);
  4. asks Redis `COMMAND DOCS <name>` in RESP3 for each and writes since, group, doc flags,
     deprecation and the argument tree (names, types, tokens, flags, key spec indexes, since)
     as Rust data, sorted by full name (docs.rs);
  5. formats both files with rustfmt.

Only interface facts are taken, never prose: COMMAND DOCS's summary, complexity, history and
argument summaries are dropped (warden-node answers an empty summary and leaves the others
out). Commands warden-node has and Redis 7.0.15 lacks (7.2 additions) are listed on stderr
and left out: warden-node then describes them from its own table.

Usage (from the workspace root):
    python3 scripts/gen-command-meta.py [--warden PATH] [--redis-server PATH] [--out PATH]
                                        [--docs-out PATH]
"""

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time

REDIS_VERSION = "7.0.15"
START_DEADLINE = 10.0
START_ATTEMPTS = 5
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REGENERATE = "python3 scripts/gen-command-meta.py"


# ---------------------------------------------------------------------------------------------
# A minimal RESP2/RESP3 client


class Simple(str):
    """A status reply (`+text`), kept apart from bulk strings: the generator checks the types
    it relies on."""


class RespError(Exception):
    pass


class Conn:
    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.buf = b""

    def close(self):
        self.sock.close()

    def call(self, *args):
        out = b"*%d\r\n" % len(args)
        for a in args:
            a = a.encode() if isinstance(a, str) else a
            out += b"$%d\r\n%s\r\n" % (len(a), a)
        self.sock.sendall(out)
        reply = self._read()
        if isinstance(reply, RespError):
            raise reply
        return reply

    def _line(self):
        while b"\r\n" not in self.buf:
            chunk = self.sock.recv(1 << 16)
            if not chunk:
                raise ConnectionError("connection closed")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def _exact(self, n):
        while len(self.buf) < n + 2:
            chunk = self.sock.recv(1 << 16)
            if not chunk:
                raise ConnectionError("connection closed")
            self.buf += chunk
        data, self.buf = self.buf[:n], self.buf[n + 2 :]
        return data

    def _read(self):
        line = self._line()
        kind, rest = line[:1], line[1:]
        if kind == b"+":
            return Simple(rest.decode())
        if kind == b"-":
            return RespError(rest.decode())
        if kind == b":":
            return int(rest)
        if kind == b"$":
            n = int(rest)
            return None if n < 0 else self._exact(n).decode()
        if kind == b"=":
            return self._exact(int(rest)).decode()[4:]
        if kind == b"_":
            return None
        if kind in (b"*", b"~", b">"):
            n = int(rest)
            return None if n < 0 else [self._read() for _ in range(n)]
        if kind == b"%":
            pairs = [(self._read(), self._read()) for _ in range(int(rest))]
            return dict(pairs)
        if kind == b"#":
            return rest == b"t"
        if kind == b",":
            return float(rest)
        raise ValueError("unexpected RESP type %r" % line)


# ---------------------------------------------------------------------------------------------
# Servers


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """One server process on a free port in its own temp dir; `stop()` kills it."""

    def __init__(self, name, argv_for_port):
        self.name = name
        self.dir = tempfile.TemporaryDirectory(prefix="gen-command-meta-")
        self.log = open(os.path.join(self.dir.name, "server.log"), "wb")
        for _ in range(START_ATTEMPTS):
            self.port = free_port()
            self.proc = subprocess.Popen(
                argv_for_port(self.port, self.dir.name),
                cwd=self.dir.name,
                stdout=self.log,
                stderr=subprocess.STDOUT,
            )
            if self._wait_ready():
                return
            self.proc.kill()
            self.proc.wait()
        self.log.flush()
        with open(self.log.name, "rb") as f:
            tail = f.read()[-2000:].decode(errors="replace")
        raise SystemExit("%s did not start; log tail:\n%s" % (name, tail))

    def _wait_ready(self):
        deadline = time.monotonic() + START_DEADLINE
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False  # the port was taken, or a bad argument: try again / report
            try:
                c = Conn(self.port)
                ok = c.call("PING") == "PONG"
                c.close()
                if ok:
                    return True
            except (OSError, RespError):
                pass
            time.sleep(0.05)
        return False

    def stop(self):
        self.proc.kill()
        self.proc.wait()
        self.log.close()
        self.dir.cleanup()


def build_warden():
    target = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
    subprocess.run(["cargo", "build", "-p", "warden-node"], cwd=ROOT, check=True)
    return os.path.join(target, "debug", "warden-node")


# ---------------------------------------------------------------------------------------------
# Reading the metadata


def warden_commands(conn):
    """Full names (`get`, `client|list`) and arities of everything warden-node implements."""
    arity = {}
    for entry in conn.call("COMMAND", "INFO"):
        arity[entry[0]] = entry[1]
        for sub in entry[9]:
            arity[sub[0]] = sub[1]
    return arity


def parse_key_spec(spec):
    bs, fk = spec["begin_search"], spec["find_keys"]
    if bs["type"] == "index":
        begin = "BeginSearch::Index { pos: %d }" % bs["spec"]["index"]
    elif bs["type"] == "keyword":
        begin = "BeginSearch::Keyword { keyword: %s, startfrom: %d }" % (
            rust_str(bs["spec"]["keyword"]),
            bs["spec"]["startfrom"],
        )
    elif bs["type"] == "unknown":
        begin = "BeginSearch::Unknown"
    else:
        raise ValueError("unknown begin_search type %r" % bs["type"])
    if fk["type"] == "range":
        s = fk["spec"]
        find = "FindKeys::Range { lastkey: %d, keystep: %d, limit: %d }" % (
            s["lastkey"],
            s["keystep"],
            s["limit"],
        )
    elif fk["type"] == "keynum":
        s = fk["spec"]
        find = "FindKeys::Keynum { keynumidx: %d, firstkey: %d, keystep: %d }" % (
            s["keynumidx"],
            s["firstkey"],
            s["keystep"],
        )
    elif fk["type"] == "unknown":
        find = "FindKeys::Unknown"
    else:
        raise ValueError("unknown find_keys type %r" % fk["type"])
    unexpected = set(spec) - {"notes", "flags", "begin_search", "find_keys"}
    if unexpected:
        raise ValueError("unexpected key spec fields %r" % unexpected)
    notes = "Some(%s)" % rust_str(spec["notes"]) if "notes" in spec else "None"
    return "KeySpec { notes: %s, flags: %s, begin_search: %s, find_keys: %s }" % (
        notes,
        rust_list(spec["flags"]),
        begin,
        find,
    )


def parse_entry(entry):
    name, _arity, flags, first, last, step, categories, tips, specs, _subs = entry
    assert all(isinstance(f, Simple) for f in flags), name
    assert all(isinstance(c, Simple) for c in categories), name
    assert all(not isinstance(t, Simple) for t in tips), name
    return {
        "name": name,
        "flags": flags,
        "first": first,
        "last": last,
        "step": step,
        "categories": categories,
        "tips": tips,
        "specs": [parse_key_spec(s) for s in specs],
        "movable": "movablekeys" in flags,
    }


# ---------------------------------------------------------------------------------------------
# Writing Rust


def rust_str(s):
    out = '"'
    for ch in s:
        if ch in '"\\':
            out += "\\" + ch
        elif 0x20 <= ord(ch) < 0x7F:
            out += ch
        else:
            out += "\\u{%x}" % ord(ch)
    return out + '"'


def rust_list(items):
    return "&[" + ", ".join(rust_str(i) for i in items) + "]"


HEADER = """\
//! Redis 7.0.15's command interface metadata, for every command warden-node implements.
//!
//! GENERATED by `scripts/gen-command-meta.py` from a running redis-server 7.0.15: the facts
//! COMMAND INFO reports (flags, legacy key positions, ACL categories, tips, key specs), which
//! clients and proxies rely on, so warden-node must report them exactly as Redis does. No
//! COMMAND DOCS text is taken. Do not edit by hand; after adding a command to a family's table,
//! regenerate from the workspace root with
//!
//! ```text
//! CARGO_TARGET_DIR=/work/target-meta {regenerate}
//! ```
//!
//! The script takes the command set from warden-node's own COMMAND INFO, so a command Redis
//! 7.0 lacks (WAITAOF, CLIENT SETINFO) has no row here and is described from its `CommandSpec`.
//! Arity is not kept here: the command table (`CommandSpec`) owns it.
//!
//! Rows are sorted by full name (`client|list` for a subcommand) for [`find`]'s binary search.

/// How COMMAND INFO describes one command or subcommand.
#[derive(Debug)]
pub struct CommandMeta {{
    /// Full lower-case name: `get`, or `client|list` for a subcommand.
    pub name: &'static str,
    /// Flags as Redis names them, in COMMAND INFO's order (`write`, `movablekeys` …).
    pub flags: &'static [&'static str],
    /// Legacy key positions: the first key.
    pub first_key: i32,
    /// Legacy key positions: the last key (negative counts from the end).
    pub last_key: i32,
    /// Legacy key positions: the distance between keys.
    pub key_step: i32,
    /// ACL categories, with their `@`.
    pub acl_categories: &'static [&'static str],
    /// Command tips (`nondeterministic_output`, `request_policy:all_shards` …).
    pub tips: &'static [&'static str],
    /// Key specs, in Redis's order.
    pub key_specs: &'static [KeySpec],
    /// True when first/last/step alone cannot find every key (Redis's `movablekeys` flag).
    pub movable_keys: bool,
}}

/// One key spec: where a group of keys is in the arguments, and how the command uses them.
#[derive(Debug)]
pub struct KeySpec {{
    /// Redis's note on the spec, when it has one.
    pub notes: Option<&'static str>,
    /// Key flags as Redis names them (`RW`, `access`, `not_key`, `incomplete` …).
    pub flags: &'static [&'static str],
    /// Where the search for the keys starts.
    pub begin_search: BeginSearch,
    /// Which arguments from there on are keys.
    pub find_keys: FindKeys,
}}

/// A key spec's `begin_search`.
#[derive(Debug)]
pub enum BeginSearch {{
    /// The keys start at argument `pos`.
    Index {{
        /// Argument index (the command name is 0).
        pos: i32,
    }},
    /// The keys start after `keyword`, searched from `startfrom` (negative: from the end,
    /// backwards).
    Keyword {{
        /// The keyword, matched ignoring case.
        keyword: &'static str,
        /// Where the search starts.
        startfrom: i32,
    }},
    /// Only the command's own code can tell.
    Unknown,
}}

/// A key spec's `find_keys`.
#[derive(Debug)]
pub enum FindKeys {{
    /// Keys up to `lastkey` (relative to the start; negative counts from the end), every
    /// `keystep`; with `limit` > 0, only the first 1/limit of the remaining arguments.
    Range {{
        /// Last key, relative to the start, or from the end when negative.
        lastkey: i32,
        /// Distance between keys.
        keystep: i32,
        /// Fraction of the remaining arguments that holds keys (0: no limit).
        limit: i32,
    }},
    /// The number of keys is the argument at `keynumidx` (relative to the start); the keys
    /// begin at `firstkey` (relative to the start), every `keystep`.
    Keynum {{
        /// Position of the key count.
        keynumidx: i32,
        /// Position of the first key.
        firstkey: i32,
        /// Distance between keys.
        keystep: i32,
    }},
    /// Only the command's own code can tell.
    Unknown,
}}

/// The metadata of a command by its full lower-case name (`get`, `client|list`).
pub fn find(fullname: &str) -> Option<&'static CommandMeta> {{
    COMMANDS.binary_search_by(|m| m.name.cmp(fullname)).ok().map(|i| &COMMANDS[i])
}}

/// Every command warden-node implements that Redis 7.0.15 has, sorted by full name.
pub static COMMANDS: &[CommandMeta] = &[
"""


def render(entries, redis_only):
    out = HEADER.format(regenerate=REGENERATE)
    for e in entries:
        out += "    CommandMeta {\n"
        out += "        name: %s,\n" % rust_str(e["name"])
        out += "        flags: %s,\n" % rust_list(e["flags"])
        out += "        first_key: %d,\n" % e["first"]
        out += "        last_key: %d,\n" % e["last"]
        out += "        key_step: %d,\n" % e["step"]
        out += "        acl_categories: %s,\n" % rust_list(e["categories"])
        out += "        tips: %s,\n" % rust_list(e["tips"])
        out += "        key_specs: &[%s],\n" % ", ".join(e["specs"])
        out += "        movable_keys: %s,\n" % ("true" if e["movable"] else "false")
        out += "    },\n"
    out += "];\n"
    out += REDIS_ONLY_HEADER
    for name, categories in redis_only:
        out += "    (%s, %s),\n" % (rust_str(name), rust_list(categories))
    out += "];\n"
    return out


REDIS_ONLY_HEADER = """
/// Commands (and subcommands) Redis 7.0.15 has and warden-node does not, with their ACL
/// categories, sorted by full name. ACL rules may name them and ACL categories count them as
/// in Redis, so the same rules are accepted and described the same way; they never run.
pub static REDIS_ONLY: &[(&str, &[&str])] = &[
"""


def redis_only_commands(conn, implemented):
    """Full names and ACL categories of Redis's commands that warden-node lacks."""
    out = []
    for entry in conn.call("COMMAND", "INFO"):
        for e in [entry] + list(entry[9]):
            if e[0] not in implemented:
                out.append((e[0], list(e[6])))
    return sorted(out)


# ---------------------------------------------------------------------------------------------
# COMMAND DOCS: interface facts only

# Fields of a COMMAND DOCS entry that are prose, written by Redis's authors: never copied.
DOC_PROSE = {"summary", "complexity", "history"}
DOC_FACTS = {"since", "group", "doc_flags", "deprecated_since", "replaced_by", "arguments"}
# `subcommands` is rebuilt by warden-node from its own table (only what it implements).
DOC_REBUILT = {"subcommands"}
ARG_PROSE = {"summary"}
ARG_FACTS = {"name", "type", "key_spec_index", "token", "since", "deprecated_since", "flags",
             "arguments"}
ARG_TYPES = {
    "string": "String",
    "integer": "Integer",
    "double": "Double",
    "key": "Key",
    "pattern": "Pattern",
    "unix-time": "UnixTime",
    "pure-token": "PureToken",
    "oneof": "OneOf",
    "block": "Block",
}


def bulk(value, what):
    if not isinstance(value, str) or isinstance(value, Simple):
        raise ValueError("%s: expected a bulk string, got %r" % (what, value))
    return value


def statuses(values, what):
    if not all(isinstance(v, Simple) for v in values):
        raise ValueError("%s: expected status replies, got %r" % (what, values))
    return list(values)


def parse_arg(arg, where):
    where = "%s/%s" % (where, arg.get("name"))
    unexpected = set(arg) - ARG_FACTS - ARG_PROSE
    if unexpected:
        raise ValueError("%s: unexpected argument fields %r" % (where, unexpected))
    kind = ARG_TYPES.get(bulk(arg["type"], where))
    if kind is None:
        raise ValueError("%s: unknown argument type %r" % (where, arg["type"]))
    has_children = kind in ("OneOf", "Block")
    if has_children != ("arguments" in arg):
        raise ValueError("%s: nested arguments on a %s" % (where, arg["type"]))
    out = "arg(%s, ArgType::%s)" % (rust_str(bulk(arg["name"], where)), kind)
    if "key_spec_index" in arg:
        if not isinstance(arg["key_spec_index"], int):
            raise ValueError("%s: key_spec_index %r" % (where, arg["key_spec_index"]))
        out += ".key_spec(%d)" % arg["key_spec_index"]
    for field, method in (("token", "token"), ("since", "since"),
                          ("deprecated_since", "deprecated_since")):
        if field in arg:
            out += ".%s(%s)" % (method, rust_str(bulk(arg[field], where)))
    if "flags" in arg:
        out += ".flags(%s)" % rust_list(statuses(arg["flags"], where))
    if has_children:
        out += ".of(&[%s])" % ", ".join(parse_arg(a, where) for a in arg["arguments"])
    return out


def parse_doc(name, doc):
    unexpected = set(doc) - DOC_PROSE - DOC_FACTS - DOC_REBUILT
    if unexpected:
        raise ValueError("%s: unexpected COMMAND DOCS fields %r" % (name, unexpected))
    if "arguments" in doc and not doc["arguments"]:
        # Redis leaves the field out when a command has no arguments; an empty list would
        # need telling apart from that.
        raise ValueError("%s: empty argument list" % name)
    opt = lambda f: "Some(%s)" % rust_str(bulk(doc[f], name)) if f in doc else "None"
    return {
        "name": name,
        "since": rust_str(bulk(doc["since"], name)),
        "group": rust_str(bulk(doc["group"], name)),
        "doc_flags": rust_list(statuses(doc.get("doc_flags", []), name)),
        "deprecated_since": opt("deprecated_since"),
        "replaced_by": opt("replaced_by"),
        "arguments": "&[%s]" % ", ".join(parse_arg(a, name) for a in doc.get("arguments", [])),
    }


DOCS_HEADER = """\
//! The interface part of Redis 7.0.15's COMMAND DOCS, for every command warden-node implements.
//!
//! GENERATED by `scripts/gen-command-meta.py` from a running redis-server 7.0.15. Do not edit by
//! hand; regenerate (together with `meta.rs`) from the workspace root with
//!
//! ```text
//! CARGO_TARGET_DIR=/work/target-meta {regenerate}
//! ```
//!
//! What is taken, and what is not: only interface facts that tools read to show syntax hints
//! (`redis-cli`'s `help`, its hints as you type, client generators): since, group, doc flags,
//! deprecated-since, replaced-by and the whole argument tree (names, types, key spec indexes,
//! tokens, since, deprecated-since, flags, nesting). Redis's prose is not copied: its summary,
//! complexity, history descriptions and argument summaries are dropped. warden-node answers
//! `summary` with an empty string (tools expect the field) and leaves `complexity` and `history`
//! out, as Redis does for a command without them. Subcommands have their own rows (`client|list`)
//! and COMMAND DOCS nests them under their container from the command table, so only the
//! subcommands warden-node implements are listed.
//!
//! Commands Redis 7.0 lacks (WAITAOF, CLIENT SETINFO) have no row here. Rows are sorted by full
//! name for [`find`]'s binary search.

/// The interface part of one command's COMMAND DOCS entry.
#[derive(Debug)]
pub struct CommandDoc {{
    /// Full lower-case name: `get`, or `client|list` for a subcommand.
    pub name: &'static str,
    /// The Redis version that added the command.
    pub since: &'static str,
    /// The command's group (`string`, `connection` …).
    pub group: &'static str,
    /// Documentation flags (`deprecated`, `syscmd`).
    pub doc_flags: &'static [&'static str],
    /// The version that deprecated the command, if any.
    pub deprecated_since: Option<&'static str>,
    /// What replaces a deprecated command, as Redis words it.
    pub replaced_by: Option<&'static str>,
    /// The arguments, in order; empty when the command takes none (Redis then leaves the field
    /// out).
    pub arguments: &'static [Arg],
}}

/// One argument of a command, or of a `oneof`/`block` argument.
#[derive(Debug, Clone, Copy)]
pub struct Arg {{
    /// The argument's name (`key`, `expiration` …).
    pub name: &'static str,
    /// Its type.
    pub kind: ArgType,
    /// For a key, the index of the key spec that finds it in COMMAND INFO.
    pub key_spec_index: Option<i32>,
    /// The literal word that comes before the value (`EX`), or is the value (`NX`).
    pub token: Option<&'static str>,
    /// The version that added the argument, when later than the command.
    pub since: Option<&'static str>,
    /// The version that deprecated the argument, if any.
    pub deprecated_since: Option<&'static str>,
    /// `optional`, `multiple`, `multiple_token`.
    pub flags: &'static [&'static str],
    /// The alternatives of a `oneof`, or the parts of a `block`; empty otherwise.
    pub arguments: &'static [Arg],
}}

/// An argument's type, as COMMAND DOCS names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArgType {{
    /// `string`.
    String,
    /// `integer`.
    Integer,
    /// `double`.
    Double,
    /// `key`.
    Key,
    /// `pattern`.
    Pattern,
    /// `unix-time`.
    UnixTime,
    /// `pure-token`: the token alone.
    PureToken,
    /// `oneof`: exactly one of the nested arguments.
    OneOf,
    /// `block`: the nested arguments together.
    Block,
}}

impl ArgType {{
    /// The type's name in COMMAND DOCS.
    pub fn name(self) -> &'static str {{
        match self {{
            ArgType::String => "string",
            ArgType::Integer => "integer",
            ArgType::Double => "double",
            ArgType::Key => "key",
            ArgType::Pattern => "pattern",
            ArgType::UnixTime => "unix-time",
            ArgType::PureToken => "pure-token",
            ArgType::OneOf => "oneof",
            ArgType::Block => "block",
        }}
    }}

    /// True for the types that nest arguments (`oneof`, `block`).
    pub fn nests(self) -> bool {{
        matches!(self, ArgType::OneOf | ArgType::Block)
    }}
}}

/// An argument with only a name and a type; the builder methods below add the rest, so the
/// table stays one line per argument.
const fn arg(name: &'static str, kind: ArgType) -> Arg {{
    Arg {{
        name,
        kind,
        key_spec_index: None,
        token: None,
        since: None,
        deprecated_since: None,
        flags: &[],
        arguments: &[],
    }}
}}

impl Arg {{
    const fn key_spec(self, index: i32) -> Arg {{
        Arg {{ key_spec_index: Some(index), ..self }}
    }}

    const fn token(self, token: &'static str) -> Arg {{
        Arg {{ token: Some(token), ..self }}
    }}

    const fn since(self, version: &'static str) -> Arg {{
        Arg {{ since: Some(version), ..self }}
    }}

    const fn deprecated_since(self, version: &'static str) -> Arg {{
        Arg {{ deprecated_since: Some(version), ..self }}
    }}

    const fn flags(self, flags: &'static [&'static str]) -> Arg {{
        Arg {{ flags, ..self }}
    }}

    const fn of(self, arguments: &'static [Arg]) -> Arg {{
        Arg {{ arguments, ..self }}
    }}
}}

/// The docs of a command by its full lower-case name (`get`, `client|list`).
pub fn find(fullname: &str) -> Option<&'static CommandDoc> {{
    COMMANDS.binary_search_by(|d| d.name.cmp(fullname)).ok().map(|i| &COMMANDS[i])
}}

/// Every command warden-node implements that Redis 7.0.15 has, sorted by full name.
pub static COMMANDS: &[CommandDoc] = &[
"""


def render_docs(docs):
    out = DOCS_HEADER.format(regenerate=REGENERATE)
    for d in docs:
        out += "    CommandDoc {\n"
        for field in ("name", "since", "group", "doc_flags", "deprecated_since", "replaced_by",
                      "arguments"):
            value = rust_str(d[field]) if field == "name" else d[field]
            out += "        %s: %s,\n" % (field, value)
        out += "    },\n"
    out += "];\n"
    return out


# ---------------------------------------------------------------------------------------------


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--warden", help="warden-node binary (default: build it with cargo)")
    ap.add_argument("--redis-server", default="/usr/bin/redis-server")
    ap.add_argument("--out", default=os.path.join(ROOT, "node", "src", "cmd", "meta.rs"))
    ap.add_argument("--docs-out", default=os.path.join(ROOT, "node", "src", "cmd", "docs.rs"))
    opts = ap.parse_args()

    warden_bin = opts.warden or build_warden()
    servers = []
    try:
        redis = Server(
            "redis-server",
            lambda port, d: [opts.redis_server, "--port", str(port), "--bind", "127.0.0.1",
                             "--save", "", "--dir", d],
        )
        servers.append(redis)
        warden = Server(
            "warden-node",
            lambda port, d: [warden_bin, "--port", str(port), "--bind", "127.0.0.1",
                             "--save", "", "--dir", d],
        )
        servers.append(warden)

        rc = Conn(redis.port)
        version = next(
            line.split(":", 1)[1]
            for line in rc.call("INFO", "server").splitlines()
            if line.startswith("redis_version:")
        )
        if version != REDIS_VERSION:
            raise SystemExit("%s is Redis %s, not %s" % (opts.redis_server, version, REDIS_VERSION))
        rc.call("HELLO", "3")

        wc = Conn(warden.port)
        arities = warden_commands(wc)

        redis_only = redis_only_commands(rc, arities)
        entries, docs, missing, arity_diffs = [], [], [], []
        for name in sorted(arities):
            (reply,) = rc.call("COMMAND", "INFO", name)
            if reply is None:
                missing.append(name)
                continue
            if reply[1] != arities[name]:
                arity_diffs.append("%s: warden %d, redis %d" % (name, arities[name], reply[1]))
            entries.append(parse_entry(reply))
            doc = rc.call("COMMAND", "DOCS", name)
            if list(doc) != [name]:
                raise ValueError("COMMAND DOCS %s answered for %r" % (name, list(doc)))
            docs.append(parse_doc(name, doc[name]))
    finally:
        for s in servers:
            s.stop()

    for path, text, count in ((opts.out, render(entries, redis_only), len(entries)),
                              (opts.docs_out, render_docs(docs), len(docs))):
        with open(path, "w") as f:
            f.write(text)
        subprocess.run(["rustfmt", "--edition", "2021", path], cwd=ROOT, check=True)
        print("wrote %s: %d commands" % (os.path.relpath(path, ROOT), count))
    if missing:
        print("not in Redis %s (described from warden's table): %s"
              % (REDIS_VERSION, ", ".join(missing)), file=sys.stderr)
    for d in arity_diffs:
        print("arity differs: " + d, file=sys.stderr)


if __name__ == "__main__":
    main()
