//! MIGRATE between real processes: keys move (or are copied) to another instance with their
//! values and TTLs, in every pairing of redis-server and warden-node, and what the client sees
//! — replies, errors, what is left on each side — is what it sees between two Redis servers.
//! The move reaches the source's replica as a DEL of the moved keys.

use std::time::Duration;

use integration_tests::nodes::{ask, cmd, dataset, wait_in_sync, Kind, Node};

/// Records a request and its reply.
fn step(seen: &mut Vec<String>, c: &mut redis::Connection, args: &[&str]) {
    seen.push(format!("{args:?} -> {}", ask(c, args)));
}

/// Moves keys from a `from` node to a `to` node (and one that wants a password): what the
/// client saw, step by step.
fn scenario(from: Kind, to: Kind) -> Vec<String> {
    let source = Node::start(from, "source", &[]);
    let target = Node::start(to, "target", &[]);
    let locked = Node::start(to, "locked", &["--requirepass", "pw"]);
    let mut s = source.connect();
    let mut t = target.connect();
    let port = target.port.to_string();
    let locked_port = locked.port.to_string();
    let mut seen = Vec::new();
    for setup in [
        &["SET", "a", "1"][..],
        &["RPUSH", "l", "0", "1", "2", "3"],
        &["HSET", "h", "f", "v"],
        &["SET", "e", "x", "PX", "100000"],
        &["ZADD", "z", "1.5", "m"],
        &["XADD", "s", "1-1", "f", "v"],
    ] {
        ask(&mut s, setup);
    }
    step(&mut seen, &mut s, &["MIGRATE", "127.0.0.1", &port, "a", "0", "1000"]);
    step(&mut seen, &mut s, &["EXISTS", "a"]);
    step(&mut seen, &mut t, &["GET", "a"]);
    step(&mut seen, &mut s, &["MIGRATE", "127.0.0.1", &port, "missing", "0", "1000"]);
    step(
        &mut seen,
        &mut s,
        &["MIGRATE", "127.0.0.1", &port, "", "3", "1000", "COPY", "KEYS", "l", "h", "e", "gone"],
    );
    step(&mut seen, &mut s, &["EXISTS", "l", "h", "e"]);
    step(&mut seen, &mut t, &["SELECT", "3"]);
    step(&mut seen, &mut t, &["LRANGE", "l", "0", "-1"]);
    step(&mut seen, &mut t, &["HGETALL", "h"]);
    let ttl = ask(&mut t, &["PTTL", "e"]);
    let ttl: i64 = ttl.trim_start_matches("int(").trim_end_matches(')').parse().unwrap_or(-9);
    seen.push(format!("TTL kept: {}", (1..=100_000).contains(&ttl)));
    step(&mut seen, &mut s, &["MIGRATE", "127.0.0.1", &port, "", "3", "1000", "KEYS", "l"]);
    step(
        &mut seen,
        &mut s,
        &["MIGRATE", "127.0.0.1", &port, "", "3", "1000", "REPLACE", "KEYS", "l", "z", "s"],
    );
    step(&mut seen, &mut s, &["EXISTS", "l", "z", "s"]);
    step(&mut seen, &mut t, &["ZSCORE", "z", "m"]);
    step(&mut seen, &mut t, &["XRANGE", "s", "-", "+"]);
    step(&mut seen, &mut s, &["MIGRATE", "127.0.0.1", &locked_port, "h", "0", "1000"]);
    step(
        &mut seen,
        &mut s,
        &["MIGRATE", "127.0.0.1", &locked_port, "h", "0", "1000", "AUTH", "bad"],
    );
    step(
        &mut seen,
        &mut s,
        &["MIGRATE", "127.0.0.1", &locked_port, "h", "0", "1000", "AUTH", "pw"],
    );
    step(
        &mut seen,
        &mut s,
        &["MIGRATE", "127.0.0.1", &locked_port, "e", "0", "1000", "AUTH2", "default", "pw"],
    );
    let mut l = locked.connect();
    let _: () = cmd(&mut l, &["AUTH", "pw"]);
    step(&mut seen, &mut l, &["HGETALL", "h"]);
    step(&mut seen, &mut l, &["GET", "e"]);
    // Refusals before anything is sent, and a target that is not there.
    step(&mut seen, &mut s, &["MIGRATE", "127.0.0.1", &port, "x", "0", "1000", "KEYS", "a"]);
    step(&mut seen, &mut s, &["MIGRATE", "127.0.0.1", &port, "x", "0", "1000", "FOO"]);
    step(&mut seen, &mut s, &["MIGRATE", "127.0.0.1", &port, "x", "db", "1000"]);
    step(&mut seen, &mut s, &["MIGRATE", "127.0.0.1", &port, "x", "0", "1000", "AUTH"]);
    step(&mut seen, &mut s, &["SET", "last", "1"]);
    drop(target);
    step(&mut seen, &mut s, &["MIGRATE", "127.0.0.1", &port, "last", "0", "1000"]);
    step(&mut seen, &mut s, &["EXISTS", "last"]);
    step(
        &mut seen,
        &mut s,
        &[
            "COMMAND", "GETKEYS", "MIGRATE", "h", "1", "", "0", "5", "AUTH", "KEYS", "KEYS", "a",
            "b",
        ],
    );
    // The ports differ from run to run.
    seen.into_iter()
        .map(|line| {
            line.replace(&format!("\"{port}\""), "\"<target>\"")
                .replace(&format!("\"{locked_port}\""), "\"<locked>\"")
        })
        .collect()
}

#[test]
fn migrate_moves_keys_between_redis_and_warden_as_between_two_redis_servers() {
    let reference = scenario(Kind::Redis, Kind::Redis);
    for (from, to) in
        [(Kind::Warden, Kind::Redis), (Kind::Redis, Kind::Warden), (Kind::Warden, Kind::Warden)]
    {
        let seen = scenario(from, to);
        assert_eq!(seen, reference, "MIGRATE from {from:?} to {to:?}");
    }
}

/// A replica of the source sees the move as the deletion of exactly the keys that moved.
#[test]
fn a_move_reaches_the_sources_replica_as_del() {
    let source = Node::start(Kind::Warden, "source", &["--repl-diskless-sync-delay", "0"]);
    let replica = Node::start(Kind::Redis, "replica", &["--replicaof", &source.addr()]);
    let target = Node::start(Kind::Redis, "target", &[]);
    let mut s = source.connect();
    for key in ["a", "b", "c"] {
        let _: () = cmd(&mut s, &["SET", key, key]);
    }
    wait_in_sync(&source, &replica, Duration::from_secs(30));
    let port = target.port.to_string();
    let moved: String =
        cmd(&mut s, &["MIGRATE", "127.0.0.1", &port, "", "0", "1000", "KEYS", "a", "b"]);
    assert_eq!(moved, "OK");
    let copied: String = cmd(
        &mut s,
        &["MIGRATE", "127.0.0.1", &port, "", "0", "1000", "COPY", "REPLACE", "KEYS", "c"],
    );
    assert_eq!(copied, "OK");
    wait_in_sync(&source, &replica, Duration::from_secs(30));
    let left: Vec<String> = dataset(&replica).into_keys().map(|(_, key)| key).collect();
    assert_eq!(left, ["c"]);
    assert_eq!(dataset(&target).len(), 3);
}
