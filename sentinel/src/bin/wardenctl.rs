//! `wardenctl [-h host] [-p port] [-a password] [--json] <command>` — the operator's tool for a
//! supervisor group, talking the Sentinel protocol to any supervisor:
//!
//! - `status`: each master as a tree of its replicas, the supervisors, any failover in flight;
//! - `failover <name>`: `SENTINEL FAILOVER <name>`, then follows the committed steps live
//!   (by polling `SENTINEL MASTER`) until the failover ended or was aborted;
//! - `switchover <name> [--to ip:port] [--timeout ms]`: `SENTINEL SWITCHOVER`, the zero-loss
//!   move of a healthy master (writes pause until the target caught up), followed live like a
//!   failover; an aborted switchover is a failure that says why;
//! - `history <name>`: every committed failover kept for the master (`SENTINEL HISTORY`);
//! - `members [add <id> <raft-ip:port> | remove <id>]`: the supervisor group
//!   (`SENTINEL MEMBERS`); `add` follows the newcomer until it is a voter;
//! - `events`: the event stream (`PSUBSCRIBE *`), one line (or JSON object) per event.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::ExitCode;
use std::time::Duration;

use common::resp::{decode, Frame};
use serde_json::{json, Value};

#[path = "ctl/events.rs"]
mod events;
#[path = "ctl/members.rs"]
mod members;

const USAGE: &str = "Usage: wardenctl [-h host] [-p port] [-a password] [--json] status | failover <master-name> | switchover <master-name> [--to ip:port] [--timeout ms] | history <master-name> | members [add <id> <raft-ip:port> | remove <id>] | events";

/// `-a`: sent with AUTH on every connection.
static PASSWORD: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// How long `failover` follows a failover before giving up on seeing its end.
const FOLLOW_TIMEOUT: Duration = Duration::from_secs(120);

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (mut host, mut port, mut as_json) = ("127.0.0.1".to_string(), 26379u16, false);
    let (mut to, mut timeout): (Option<String>, Option<String>) = (None, None);
    let mut words: Vec<String> = Vec::new();
    let mut i = 0;
    while i < args.len() {
        match args[i].as_str() {
            "-h" if i + 1 < args.len() => {
                host = args[i + 1].clone();
                i += 1;
            }
            "-p" if i + 1 < args.len() => match args[i + 1].parse() {
                Ok(p) => {
                    port = p;
                    i += 1;
                }
                Err(_) => return usage(&format!("invalid port '{}'", args[i + 1])),
            },
            "-a" if i + 1 < args.len() => {
                let _ = PASSWORD.set(args[i + 1].clone());
                i += 1;
            }
            "--json" => as_json = true,
            "--to" if i + 1 < args.len() => {
                let addr = &args[i + 1];
                match addr.rsplit_once(':') {
                    Some((h, p)) if !h.is_empty() && p.parse::<u16>().is_ok() => {
                        to = Some(addr.clone())
                    }
                    _ => return usage(&format!("--to wants ip:port, got '{addr}'")),
                }
                i += 1;
            }
            "--timeout" if i + 1 < args.len() => {
                match args[i + 1].parse::<u64>() {
                    Ok(ms) if ms > 0 => timeout = Some(ms.to_string()),
                    _ => {
                        return usage(&format!(
                            "--timeout wants milliseconds, got '{}'",
                            args[i + 1]
                        ))
                    }
                }
                i += 1;
            }
            "--help" => {
                println!("{USAGE}");
                return ExitCode::SUCCESS;
            }
            other if !other.starts_with('-') => words.push(other.to_string()),
            other => return usage(&format!("unexpected argument '{other}'")),
        }
        i += 1;
    }
    let words: Vec<&str> = words.iter().map(String::as_str).collect();
    match words.as_slice() {
        ["status"] => match status(&host, port) {
            Ok(v) => {
                if as_json {
                    println!("{}", serde_json::to_string_pretty(&v).expect("a JSON value prints"));
                } else {
                    print!("{}", render(&v));
                }
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("wardenctl: {host}:{port}: {e}");
                ExitCode::FAILURE
            }
        },
        ["failover", name] | ["switchover", name] => {
            let mut request =
                vec!["SENTINEL".to_string(), words[0].to_ascii_uppercase(), name.to_string()];
            if words[0] == "switchover" {
                if let Some((h, p)) = to.as_deref().and_then(|a| a.rsplit_once(':')) {
                    request.extend(["TO".into(), h.into(), p.into()]);
                }
                if let Some(ms) = &timeout {
                    request.extend(["TIMEOUT".into(), ms.clone()]);
                }
            } else if to.is_some() || timeout.is_some() {
                return usage("--to and --timeout are switchover options");
            }
            report(&host, port, as_json, failover(&host, port, name, &request, as_json))
        }
        ["history", name] => match history(&host, port, name) {
            Ok(v) => {
                if as_json {
                    println!("{}", serde_json::to_string_pretty(&v).expect("a JSON value prints"));
                } else {
                    print!("{}", render_history(name, &v));
                }
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("wardenctl: {host}:{port}: {e}");
                ExitCode::FAILURE
            }
        },
        ["members"] => match members::members(&host, port) {
            Ok(v) => {
                if as_json {
                    println!("{}", serde_json::to_string_pretty(&v).expect("a JSON value prints"));
                } else {
                    print!("{}", members::render(&v));
                }
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("wardenctl: {host}:{port}: {e}");
                ExitCode::FAILURE
            }
        },
        ["members", "add", id, raft_addr] => {
            report(&host, port, as_json, members::add(&host, port, id, raft_addr, as_json))
        }
        ["members", "remove", id] => {
            let r = members::remove(&host, port, id);
            if !as_json && r["ok"] == Value::Bool(true) {
                println!("supervisor {id} removed from the group");
            }
            report(&host, port, as_json, r)
        }
        ["members", ..] => usage("members [add <id> <raft-ip:port> | remove <id>]"),
        ["events"] => match events::follow(&host, port, as_json) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("wardenctl: {host}:{port}: {e}");
                ExitCode::FAILURE
            }
        },
        ["failover" | "switchover" | "history"] => {
            usage(&format!("{} needs a master name", words[0]))
        }
        [_, ..] => usage(&format!("unknown command '{}'", words.join(" "))),
        [] => usage("no command given"),
    }
}

/// Prints a command's JSON report (with `--json`) or its error, and the exit code.
fn report(host: &str, port: u16, as_json: bool, report: Value) -> ExitCode {
    let ok = report["ok"] == Value::Bool(true);
    if as_json {
        println!("{}", serde_json::to_string_pretty(&report).expect("a JSON value prints"));
    } else if !ok {
        eprintln!("wardenctl: {host}:{port}: {}", report["error"].as_str().unwrap_or("?"));
    }
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn usage(why: &str) -> ExitCode {
    eprintln!("wardenctl: {why}\n{USAGE}");
    ExitCode::from(2)
}

struct Conn {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl Conn {
    fn call(&mut self, args: &[&str]) -> Result<Frame, String> {
        self.send(args)?;
        self.read_frame()
    }

    fn send(&mut self, args: &[&str]) -> Result<(), String> {
        let mut out = Vec::new();
        let args: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
        sentinel::node_link::encode_command(&mut out, &args);
        self.stream.write_all(&out).map_err(|e| e.to_string())
    }

    /// The next reply (an error reply as `Err`).
    fn read_frame(&mut self) -> Result<Frame, String> {
        loop {
            if let Some((frame, used)) = decode(&self.buf).map_err(|e| e.to_string())? {
                self.buf.drain(..used);
                return match frame {
                    Frame::Error(e) => Err(String::from_utf8_lossy(&e).into_owned()),
                    f => Ok(f),
                };
            }
            let mut chunk = [0u8; 16384];
            let n = self.stream.read(&mut chunk).map_err(|e| e.to_string())?;
            if n == 0 {
                return Err("connection closed".into());
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }
}

fn text(f: &Frame) -> String {
    match f {
        Frame::Bulk(b) | Frame::Simple(b) | Frame::Verbatim(_, b) => {
            String::from_utf8_lossy(b).into_owned()
        }
        Frame::Integer(n) => n.to_string(),
        _ => String::new(),
    }
}

/// A Sentinel instance map (flat array or RESP3 map) as a JSON object of strings.
fn map(f: &Frame) -> Value {
    let mut obj = serde_json::Map::new();
    match f {
        Frame::Array(items) => {
            for kv in items.chunks(2) {
                if let [k, v] = kv {
                    obj.insert(text(k), Value::String(text(v)));
                }
            }
        }
        Frame::Map(pairs) => {
            for (k, v) in pairs {
                obj.insert(text(k), Value::String(text(v)));
            }
        }
        _ => {}
    }
    Value::Object(obj)
}

fn list(f: &Frame) -> Vec<Value> {
    match f {
        Frame::Array(items) => items.iter().map(map).collect(),
        _ => Vec::new(),
    }
}

fn connect(host: &str, port: u16) -> Result<Conn, String> {
    let addr = std::net::ToSocketAddrs::to_socket_addrs(&(host, port))
        .map_err(|e| e.to_string())?
        .next()
        .ok_or("no address")?;
    let stream =
        TcpStream::connect_timeout(&addr, Duration::from_secs(2)).map_err(|e| e.to_string())?;
    // A manual failover or a membership change waits for its commit (up to 10 s on the
    // supervisor).
    stream.set_read_timeout(Some(Duration::from_secs(15))).map_err(|e| e.to_string())?;
    let mut conn = Conn { stream, buf: Vec::new() };
    if let Some(password) = PASSWORD.get() {
        match conn.call(&["AUTH", password]) {
            Ok(_) => {}
            // As redis-cli does: a server without a password says so, and we go on.
            Err(e) if e.contains("without any password configured") => {
                eprintln!("wardenctl: warning: AUTH failed: {e}")
            }
            Err(e) => return Err(format!("AUTH failed: {e}")),
        }
    }
    Ok(conn)
}

/// Where a master is, as one supervisor reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Position {
    addr: String,
    epoch: u64,
    /// Sentinel's `failover-state`, empty when no failover is in flight.
    state: String,
}

fn position(c: &mut Conn, name: &str) -> Result<Position, String> {
    let m = map(&c.call(&["SENTINEL", "MASTER", name])?);
    let s = |k: &str| m[k].as_str().unwrap_or_default().to_string();
    Ok(Position {
        addr: format!("{}:{}", s("ip"), s("port")),
        epoch: s("config-epoch").parse().unwrap_or(0),
        state: s("failover-state"),
    })
}

/// `wardenctl failover <name>` and `wardenctl switchover <name>`: sends `request` (SENTINEL
/// FAILOVER or SENTINEL SWITCHOVER …), then follows the move to its end. Returns the report
/// (`ok`, `error` or the new master and epoch, and the steps seen).
fn failover(host: &str, port: u16, name: &str, request: &[String], quiet: bool) -> Value {
    let what = request[1].to_ascii_lowercase();
    let say = |line: String| {
        if !quiet {
            println!("{line}");
        }
    };
    let fail = |e: String, steps: &[Value]| json!({ "ok": false, "master": name, "error": e, "steps": steps });
    let mut c = match connect(host, port) {
        Ok(c) => c,
        Err(e) => return fail(e, &[]),
    };
    let before = match position(&mut c, name) {
        Ok(p) => p,
        Err(e) => return fail(e, &[]),
    };
    let args: Vec<&str> = request.iter().map(String::as_str).collect();
    if let Err(e) = c.call(&args) {
        return fail(e, &[]);
    }
    say(format!(
        "{what} of {name} committed; master {} at config-epoch {}",
        before.addr, before.epoch
    ));
    let started = std::time::Instant::now();
    let mut steps: Vec<Value> = Vec::new();
    let mut last: Option<Position> = None;
    loop {
        let now = match position(&mut c, name) {
            Ok(p) => p,
            Err(e) => return fail(e, &steps),
        };
        if last.as_ref() != Some(&now) {
            let state = if now.state.is_empty() { "done" } else { now.state.as_str() };
            say(format!(
                "  {:>6} ms  {state:<16} master {}  config-epoch {}",
                started.elapsed().as_millis(),
                now.addr,
                now.epoch
            ));
            steps.push(json!({
                "after_ms": started.elapsed().as_millis() as u64,
                "failover_state": now.state,
                "master": now.addr,
                "config_epoch": now.epoch,
            }));
            last = Some(now.clone());
        }
        if now.state.is_empty() {
            if now.epoch > before.epoch && now.addr != before.addr {
                say(format!("{name} is now at {} (config-epoch {})", now.addr, now.epoch));
                return json!({
                    "ok": true,
                    "master": name,
                    "old_master": before.addr,
                    "new_master": now.addr,
                    "config_epoch": now.epoch,
                    "steps": steps,
                });
            }
            // Why, from the history: the last record is this move's (epochs only grow).
            let why = c
                .call(&["SENTINEL", "HISTORY", name])
                .ok()
                .and_then(|h| list(&h).pop())
                .map(|r| {
                    let note = r["note"].as_str().unwrap_or_default();
                    let outcome = r["outcome"].as_str().unwrap_or("?");
                    if note.is_empty() {
                        format!(" ({outcome})")
                    } else {
                        format!(" ({outcome}; {note})")
                    }
                })
                .unwrap_or_default();
            return fail(
                format!("the {what} was aborted{why}; the master is still {}", now.addr),
                &steps,
            );
        }
        if started.elapsed() > FOLLOW_TIMEOUT {
            return fail(
                format!("still in {} after {FOLLOW_TIMEOUT:?}; stopped following", now.state),
                &steps,
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn history(host: &str, port: u16, name: &str) -> Result<Value, String> {
    let mut c = connect(host, port)?;
    Ok(Value::Array(list(&c.call(&["SENTINEL", "HISTORY", name])?)))
}

fn render_history(name: &str, v: &Value) -> String {
    let s = |v: &Value, k: &str| v[k].as_str().unwrap_or("").to_string();
    let records = v.as_array().map(Vec::as_slice).unwrap_or_default();
    if records.is_empty() {
        return format!("{name}: no failover recorded\n");
    }
    let mut out = String::new();
    for r in records {
        let when = s(r, "started-ms").parse::<u64>().ok().filter(|ms| *ms > 0).map_or_else(
            || "unknown time".to_string(),
            |ms| {
                let t = std::time::UNIX_EPOCH + Duration::from_millis(ms);
                let ago = std::time::SystemTime::now().duration_since(t).unwrap_or_default();
                format!("{}s ago", ago.as_secs())
            },
        );
        let took = match s(r, "duration-ms").as_str() {
            "" => String::new(),
            ms => format!(", took {ms} ms"),
        };
        out.push_str(&format!(
            "epoch {}  {} -> {}  {} ({})  {when}{took}\n",
            s(r, "epoch"),
            s(r, "from"),
            s(r, "to"),
            s(r, "outcome"),
            s(r, "reason"),
        ));
    }
    out
}

fn status(host: &str, port: u16) -> Result<Value, String> {
    let mut c = connect(host, port)?;
    let info = text(&c.call(&["INFO", "server"])?);
    let field = |k: &str| {
        info.lines()
            .find_map(|l| l.trim_end().strip_prefix(k)?.strip_prefix(':').map(str::to_string))
            .unwrap_or_default()
    };
    let mut masters = Vec::new();
    for m in list(&c.call(&["SENTINEL", "MASTERS"])?) {
        let name = m["name"].as_str().unwrap_or_default().to_string();
        let replicas = list(&c.call(&["SENTINEL", "REPLICAS", &name])?);
        let supervisors = list(&c.call(&["SENTINEL", "SENTINELS", &name])?);
        masters.push(json!({ "master": m, "replicas": replicas, "supervisors": supervisors }));
    }
    Ok(json!({
        "supervisor": { "run_id": field("run_id"), "raft_id": field("raft_id"),
                        "raft_term": field("raft_term"), "raft_leader": field("raft_leader") },
        "masters": masters,
    }))
}

/// The human-readable form: each master as a tree of its replicas, then the supervisors.
fn render(v: &Value) -> String {
    let s = |v: &Value, k: &str| v[k].as_str().unwrap_or("").to_string();
    let sup = &v["supervisor"];
    let mut out = format!(
        "supervisor {} (raft id {}), raft term {}, leader {}\n",
        s(sup, "run_id").get(..8).unwrap_or(""),
        s(sup, "raft_id"),
        s(sup, "raft_term"),
        match s(sup, "raft_leader").as_str() {
            "0" | "" => "none".to_string(),
            l => format!("raft id {l}"),
        }
    );
    for entry in v["masters"].as_array().into_iter().flatten() {
        let m = &entry["master"];
        let failover = match s(m, "failover-state").as_str() {
            "" => String::new(),
            st => format!("  FAILOVER IN PROGRESS ({st})"),
        };
        out.push_str(&format!(
            "\n{}  master {}:{}  flags {}  config-epoch {}  quorum {}{failover}\n",
            s(m, "name"),
            s(m, "ip"),
            s(m, "port"),
            s(m, "flags"),
            s(m, "config-epoch"),
            s(m, "quorum")
        ));
        for r in entry["replicas"].as_array().into_iter().flatten() {
            out.push_str(&format!(
                "  └─ replica {}  link {}  offset {}  priority {}  flags {}\n",
                s(r, "name"),
                s(r, "master-link-status"),
                s(r, "slave-repl-offset"),
                s(r, "slave-priority"),
                s(r, "flags")
            ));
        }
        let spares = s(m, "spares");
        if !spares.is_empty() || s(m, "failover-strategy") == "spare" {
            out.push_str(&format!(
                "  spares: {}  (failover-strategy {})\n",
                if spares.is_empty() { "none left".to_string() } else { spares.replace(',', ", ") },
                s(m, "failover-strategy")
            ));
        }
        let others: Vec<String> = entry["supervisors"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|x| format!("{}:{} ({})", s(x, "ip"), s(x, "port"), s(x, "flags")))
            .collect();
        out.push_str(&format!(
            "  other supervisors: {}\n",
            if others.is_empty() { "none".into() } else { others.join(", ") }
        ));
    }
    out
}
