//! The differential test: the same seeded stream of random commands goes to a real Debian
//! `redis-server` 7.0 and to an in-process warden-node, and every pair of replies must agree,
//! byte for byte as RESP2 or RESP3 frames.
//!
//! What it guarantees: for the commands in `differential/generator.rs` (strings, keys, lists,
//! hashes, sets, sorted sets, bitmaps, HyperLogLog, LCS, SORT, DUMP, collections that cross
//! encoding thresholds, CONFIG SET of those thresholds, and known command names with random
//! tokens), over five shared keys, and streams over three keys of their own, warden-node
//! answers as Redis 7.0 does: same values, same error texts, same encodings (OBJECT ENCODING,
//! DUMP payloads), in both protocols.
//!
//! How it runs: `DIFF_ROUNDS` rounds (default 6) of `DIFF_COMMANDS` commands (default 1500).
//! Round `r` uses the seed `DIFF_SEED + r` (default seed 1000); the seed alone makes the round:
//! its commands, and its protocol (HELLO 2 for even seeds, HELLO 3 for odd ones). Each round
//! starts on fresh connections with FLUSHALL and the encoding thresholds at their defaults, and
//! sends each command to both servers, then reads one complete frame from each (bounded by
//! [`support::wire::IO_TIMEOUT`], so a missing reply fails instead of hanging).
//!
//! On a mismatch the round stops, and its commands so far are shrunk to a short reproducer:
//! replayed, pipelined, from the same starting state, dropping chunks while the last command's
//! replies still differ. The test goes on with the next round and fails at the end, reporting
//! each round's first mismatch: seed, protocol, the command, both raw replies and the
//! reproducer. To rerun one round: `DIFF_SEED=<its seed> DIFF_ROUNDS=1 cargo test -p
//! warden-node --test differential -- --nocapture`; to explore, pick other seeds or more
//! commands. `REDIS_SERVER` names the reference binary (see `tests/support/`).
//! `DIFF_TARGET=redis` compares Redis with a second Redis instead of warden-node: a self-check
//! that the stream and the comparison leave nothing to chance (run it after changing either).
//!
//! Why some replies are canonicalised before comparing (`differential/reply.rs`): Redis returns
//! the members of hash-table sets and hashes in the order of a hash seeded at random per
//! process, so SMEMBERS, HGETALL, KEYS and the like are compared as multisets (pairs kept
//! together), and DUMP payloads of hash-table sets and hashes only by reply type; replies that
//! are random by nature (TIME, SCAN, SRANDMEMBER …) only by reply type and error text; TTL
//! within a second, as it rounds to the nearest one. Everything else must be identical. The
//! generator keeps timing out of the stream (see its module doc), so two correct servers
//! cannot disagree.
//!
//! Keyspace notifications are compared too: every round subscribes to all keyspace and keyevent
//! channels of both servers, with every event class on and active expiry off, and the events
//! each command causes must be the same frames in the same order (`differential/events.rs`).
//! An event mismatch is reported with the commands just before it (not shrunk).

mod support;

// The test's parts live in `tests/differential/` so that Cargo does not take them for test
// binaries of their own.
#[path = "differential/events.rs"]
mod events;
#[path = "differential/generator.rs"]
mod generator;
#[path = "differential/reply.rs"]
mod reply;

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::resp::{decode, Frame};
use events::Events;
use generator::{Command, Generator, SESSION, THRESHOLDS};
use node::testing::TestServer;
use reply::{agree, Reply};
use support::redis_process::{check_version, redis_binary, RedisProcess};
use support::wire::{escape, Wire};

const DEFAULT_SEED: u64 = 1000;
const DEFAULT_ROUNDS: u64 = 6;
const DEFAULT_COMMANDS: u64 = 1500;
/// A replay sends this many commands before reading their replies.
const PIPELINE: usize = 200;
/// How long shrinking one round's failure may take; past it, the shortest list found so far is
/// reported (a missing reply costs a read timeout per replay).
const SHRINK_BUDGET: Duration = Duration::from_secs(20);
/// How many commands before an event mismatch its report lists.
const EVENT_CONTEXT: usize = 12;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_commands_match_redis() {
    let seed = env_number("DIFF_SEED", DEFAULT_SEED);
    let rounds = env_number("DIFF_ROUNDS", DEFAULT_ROUNDS);
    let commands = env_number("DIFF_COMMANDS", DEFAULT_COMMANDS) as usize;

    let binary = redis_binary();
    let redis = RedisProcess::start(&binary).await.unwrap_or_else(|e| panic!("{e}"));
    check_version(redis.addr).await;
    // The other side: warden-node, or a second Redis for the self-check.
    let self_check = std::env::var("DIFF_TARGET").is_ok_and(|t| t == "redis");
    let (_warden, _redis2, target, target_name) = if self_check {
        let second = RedisProcess::start(&binary).await.unwrap_or_else(|e| panic!("{e}"));
        let addr = second.addr;
        (None, Some(second), addr, "redis2")
    } else {
        let server = TestServer::start("enable-debug-command yes").await;
        let addr = server.addr;
        (Some(server), None, addr, "warden")
    };
    let redis_settings = thresholds(redis.addr, "redis").await;
    let target_settings = thresholds(target, target_name).await;
    assert_eq!(target_settings, redis_settings, "{target_name}'s default encoding thresholds");
    let servers =
        Servers { redis: redis.addr, target, target_name, defaults: redis_settings.clone() };

    let started = Instant::now();
    let mut report = String::new();
    let mut failed = 0;
    for round in 0..rounds {
        let round_seed = seed + round;
        let round_started = Instant::now();
        let outcome = run_round(&servers, round_seed, commands).await;
        let took = round_started.elapsed();
        match outcome {
            None => println!(
                "differential seed {round_seed} (RESP{}): {commands} commands agree ({took:.1?})",
                protocol(round_seed)
            ),
            Some(mismatch) => {
                println!(
                    "differential seed {round_seed} (RESP{}): mismatch at command {} ({took:.1?})",
                    protocol(round_seed),
                    mismatch.index + 1
                );
                failed += 1;
                report.push_str(&mismatch.describe(commands, servers.target_name));
                report.push('\n');
            }
        }
    }
    println!("differential: {rounds} rounds in {:.1?}", started.elapsed());

    // Put back what CONFIG SET and the sessions changed, so nothing leaks into whatever runs
    // after.
    restore(redis.addr, "redis", &redis_settings).await;
    restore(target, target_name, &target_settings).await;
    assert!(failed == 0, "{failed} of {rounds} rounds found a mismatch:\n\n{report}");
}

fn env_number(name: &str, default: u64) -> u64 {
    match std::env::var(name) {
        Ok(text) => {
            text.trim().parse().unwrap_or_else(|_| panic!("{name}={text:?} is not a number"))
        }
        Err(_) => default,
    }
}

/// The protocol a round speaks, chosen by its seed so that the seed alone reproduces it.
fn protocol(seed: u64) -> u8 {
    if seed.is_multiple_of(2) {
        2
    } else {
        3
    }
}

/// Both servers, and the threshold values every round and replay starts from.
struct Servers {
    redis: SocketAddr,
    /// warden-node, or a second Redis for the self-check.
    target: SocketAddr,
    target_name: &'static str,
    defaults: Vec<(String, String)>,
}

/// The first disagreement of a round.
struct Mismatch {
    seed: u64,
    /// 0-based position of the command in the round.
    index: usize,
    command: Command,
    redis: Reply,
    target: Reply,
    shrunk: Shrunk,
}

/// What shrinking the failing round gave.
enum Shrunk {
    /// No command can be left out without the last replies agreeing.
    Minimal(Vec<Command>),
    /// The budget ran out first.
    Partial(Vec<Command>),
    /// A replay of the whole round did not disagree: something in it depends on timing.
    NotReproduced,
    /// The replies agreed but the keyspace events differed (the mismatch shows the event
    /// frames); these are the commands just before it.
    Events(Vec<Command>),
}

/// Runs one round; returns its first mismatch, if any.
async fn run_round(servers: &Servers, seed: u64, commands: usize) -> Option<Mismatch> {
    let proto = protocol(seed);
    let (redis, target) = tokio::join!(
        session(servers.redis, "redis", proto, &servers.defaults),
        session(servers.target, servers.target_name, proto, &servers.defaults),
    );
    let mut redis = redis.unwrap_or_else(|e| panic!("start round {seed} on redis: {e}"));
    let mut target =
        target.unwrap_or_else(|e| panic!("start round {seed} on {}: {e}", servers.target_name));
    let (redis_events, target_events) = tokio::join!(
        Events::open(servers.redis, "redis"),
        Events::open(servers.target, servers.target_name),
    );
    let mut redis_events = redis_events.unwrap_or_else(|e| panic!("subscribe on redis: {e}"));
    let mut target_events =
        target_events.unwrap_or_else(|e| panic!("subscribe on {}: {e}", servers.target_name));

    let mut generator = Generator::new(seed);
    let mut history: Vec<Command> = Vec::with_capacity(commands);
    for index in 0..commands {
        let command = generator.next_command();
        let (a, b) =
            tokio::join!(exchange(&mut redis, &command.args), exchange(&mut target, &command.args));
        let compare = command.compare;
        history.push(command);
        if !agree(&a, &b, compare) {
            let shrunk = shrink(servers, proto, history.clone()).await;
            let command = history.pop().expect("the failing command was just pushed");
            return Some(Mismatch { seed, index, command, redis: a, target: b, shrunk });
        }
        let (a, b) = tokio::join!(redis_events.drain(index), target_events.drain(index));
        if a != b {
            let command = history.pop().expect("the command was just pushed");
            let before = history[history.len().saturating_sub(EVENT_CONTEXT)..].to_vec();
            let shrunk = Shrunk::Events(before);
            return Some(Mismatch { seed, index, command, redis: a, target: b, shrunk });
        }
    }
    None
}

async fn exchange(conn: &mut Wire, args: &[String]) -> Reply {
    conn.send(args).await?;
    conn.read_frame().await
}

/// A fresh connection in the state every round and replay starts from: all databases empty,
/// the encoding thresholds at `defaults`, protocol `proto`.
async fn session(
    addr: SocketAddr,
    name: &'static str,
    proto: u8,
    defaults: &[(String, String)],
) -> Result<Wire, String> {
    let mut conn = Wire::try_connect(addr, name).await?;
    expect_ok(&mut conn, &["FLUSHALL"]).await?;
    for (setting, value) in defaults {
        expect_ok(&mut conn, &["CONFIG", "SET", setting, value]).await?;
    }
    for (setting, value) in SESSION {
        expect_ok(&mut conn, &["CONFIG", "SET", setting, value]).await?;
    }
    // Keys expire when a command finds them, never in between: the `expired` events then come
    // from the same command on both servers.
    expect_ok(&mut conn, &["DEBUG", "SET-ACTIVE-EXPIRE", "0"]).await?;
    let hello = conn.request(&["HELLO", &proto.to_string()]).await?;
    if hello.starts_with(b"-") {
        return Err(format!("HELLO {proto} answered {} on {name}", escape(&hello)));
    }
    Ok(conn)
}

async fn expect_ok(conn: &mut Wire, args: &[&str]) -> Result<(), String> {
    let reply = conn.request(args).await?;
    if reply != b"+OK\r\n" {
        return Err(format!("{} answered {} on {}", args.join(" "), escape(&reply), conn.name));
    }
    Ok(())
}

/// The current values of the settings CONFIG SET changes.
async fn thresholds(addr: SocketAddr, name: &'static str) -> Vec<(String, String)> {
    let mut conn = Wire::connect(addr, name).await;
    let mut values = Vec::new();
    for setting in THRESHOLDS.iter().chain(SESSION.iter().map(|(name, _)| name)) {
        let raw = conn.request(&["CONFIG", "GET", setting]).await.expect("CONFIG GET");
        let value = match decode(&raw) {
            Ok(Some((Frame::Array(items), _))) => match &items[..] {
                [_, Frame::Bulk(value)] => String::from_utf8_lossy(value).into_owned(),
                _ => panic!("CONFIG GET {setting} on {name}: {}", escape(&raw)),
            },
            _ => panic!("CONFIG GET {setting} on {name}: {}", escape(&raw)),
        };
        values.push((setting.to_string(), value));
    }
    values
}

async fn restore(addr: SocketAddr, name: &'static str, values: &[(String, String)]) {
    let mut conn = Wire::connect(addr, name).await;
    for (setting, value) in values {
        expect_ok(&mut conn, &["CONFIG", "SET", setting, value])
            .await
            .unwrap_or_else(|e| panic!("restore {setting} on {name}: {e}"));
    }
    expect_ok(&mut conn, &["DEBUG", "SET-ACTIVE-EXPIRE", "1"])
        .await
        .unwrap_or_else(|e| panic!("restore active expiry on {name}: {e}"));
}

// ---------------------------------------------------------------------------------------------
// Shrinking

/// Shrinks `commands` (a round up to its failing command, which stays last) to a shorter list
/// whose last command still gets replies that disagree: chunks of half, a quarter … one
/// command are dropped in turn, each removal kept if the failure survives it.
async fn shrink(servers: &Servers, proto: u8, mut commands: Vec<Command>) -> Shrunk {
    let deadline = Instant::now() + SHRINK_BUDGET;
    if !differs(servers, proto, &commands).await {
        return Shrunk::NotReproduced;
    }
    let mut chunk = commands.len() / 2;
    while chunk >= 1 {
        let mut i = 0;
        while i + 1 < commands.len() {
            if Instant::now() >= deadline {
                return Shrunk::Partial(commands);
            }
            if i + chunk < commands.len() {
                let trial: Vec<Command> =
                    commands[..i].iter().chain(&commands[i + chunk..]).cloned().collect();
                if differs(servers, proto, &trial).await {
                    commands = trial;
                    continue;
                }
            }
            i += chunk;
        }
        chunk /= 2;
    }
    Shrunk::Minimal(commands)
}

/// Whether replaying `commands` on both servers ends in replies that disagree.
async fn differs(servers: &Servers, proto: u8, commands: &[Command]) -> bool {
    let compare = commands.last().expect("a replay has its failing command").compare;
    let (a, b) = tokio::join!(
        replay(servers.redis, "redis", proto, &servers.defaults, commands),
        replay(servers.target, servers.target_name, proto, &servers.defaults, commands),
    );
    !agree(&a, &b, compare)
}

/// Replays `commands`, pipelined, on a fresh session; returns the last reply.
async fn replay(
    addr: SocketAddr,
    name: &'static str,
    proto: u8,
    defaults: &[(String, String)],
    commands: &[Command],
) -> Reply {
    let mut conn = session(addr, name, proto, defaults).await?;
    let mut last = Err("nothing replayed".to_string());
    for part in commands.chunks(PIPELINE) {
        for command in part {
            conn.send(&command.args).await?;
        }
        for _ in part {
            last = Ok(conn.read_frame().await?);
        }
    }
    last
}

// ---------------------------------------------------------------------------------------------
// Reporting

impl Mismatch {
    fn describe(&self, commands: usize, target_name: &str) -> String {
        let proto = protocol(self.seed);
        let show = |r: &Reply| match r {
            Ok(bytes) => escape(bytes),
            Err(e) => format!("<{e}>"),
        };
        let mut m = format!(
            "seed {} (RESP{proto}), command {} of {commands}: {}",
            self.seed,
            self.index + 1,
            show_command(&self.command.args)
        );
        let _ = write!(m, "\n  compared: {:?}", self.command.compare);
        let _ = write!(m, "\n  {:<7} {}", "redis:", show(&self.redis));
        let _ = write!(m, "\n  {:<7} {}", format!("{target_name}:"), show(&self.target));
        let start = match self.shrunk {
            Shrunk::Events(_) => "the round's start".to_string(),
            _ => format!("a fresh connection, FLUSHALL, default thresholds, HELLO {proto}"),
        };
        let (label, list) = match &self.shrunk {
            Shrunk::Minimal(list) => ("minimal reproducer", Some(list)),
            Shrunk::Partial(list) => ("reproducer (shrinking ran out of time)", Some(list)),
            Shrunk::NotReproduced => ("not reproduced by a pipelined replay (timing?)", None),
            Shrunk::Events(list) => {
                ("keyspace events differ; the last commands before it", Some(list))
            }
        };
        match list {
            Some(list) => {
                let _ = write!(m, "\n  {label}, {} commands after {start}:", list.len());
                for command in list {
                    let _ = write!(m, "\n    {}", show_command(&command.args));
                }
            }
            None => {
                let _ = write!(m, "\n  {label}");
            }
        }
        let _ = write!(
            m,
            "\n  rerun: DIFF_SEED={} DIFF_ROUNDS=1 DIFF_COMMANDS={} cargo test -p warden-node \
             --test differential -- --nocapture",
            self.seed,
            self.index + 1
        );
        m
    }
}

/// A command as redis-cli reads it: arguments that are empty or hold spaces, quotes or
/// non-printable bytes in double quotes.
fn show_command(args: &[String]) -> String {
    let shown: Vec<String> = args
        .iter()
        .map(|a| {
            let plain =
                !a.is_empty() && a.bytes().all(|c| c.is_ascii_graphic() && c != b'"' && c != b'\'');
            if plain {
                a.clone()
            } else {
                format!("\"{}\"", escape(a.as_bytes()).replace('"', "\\\""))
            }
        })
        .collect();
    shown.join(" ")
}
