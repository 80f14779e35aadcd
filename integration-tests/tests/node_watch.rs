//! WATCH against keys that expire, as Redis 7.0 defines it, run on redis-server and on
//! warden-node alike: a key already expired (but not yet deleted) when WATCHed is flagged, so
//! its deletion, or SWAPDB bringing in another expired copy, is no change; a key that expires
//! after WATCH is a change; FLUSHDB and SWAPDB change only the keys they actually touch.

use std::time::Duration;

use integration_tests::nodes::{cmd, Kind, Node};
use integration_tests::wait;

fn start(kind: Kind) -> (Node, redis::Connection) {
    let node = Node::start(kind, &format!("{kind:?}"), &["--enable-debug-command", "yes"]);
    let mut c = node.connect();
    let _: () = cmd(&mut c, &["DEBUG", "SET-ACTIVE-EXPIRE", "0"]);
    (node, c)
}

/// The server's clock in ms.
fn server_ms(c: &mut redis::Connection) -> i64 {
    let (secs, micros): (i64, i64) = cmd(c, &["TIME"]);
    secs * 1000 + micros / 1000
}

/// `SET key foo PX 1` and waits (on the server's clock) until it has expired; with active
/// expiry off it stays in the table until something looks it up.
fn set_stale(c: &mut redis::Connection, key: &str) {
    let _: () = cmd(c, &["SET", key, "foo", "PX", "1"]);
    let set_at = server_ms(c);
    wait::until("the key's TTL to pass", Duration::from_secs(5), || match server_ms(c) {
        now if now > set_at + 2 => Ok(()),
        now => Err(format!("server time {now}, set at {set_at}")),
    });
}

/// EXEC of `MULTI; PING`: `Some` when it ran, `None` when a watched key had changed.
fn exec_ping(c: &mut redis::Connection) -> Option<Vec<String>> {
    let _: () = cmd(c, &["MULTI"]);
    let _: String = cmd(c, &["PING"]);
    cmd(c, &["EXEC"])
}

#[test]
fn expired_keys_count_as_watch_changes_exactly_as_in_redis() {
    for kind in [Kind::Redis, Kind::Warden] {
        let (_node, mut c) = start(kind);
        let ran = Some(vec!["PONG".to_string()]);

        // SWAPDB: a missing key replaced by an expired one is still missing.
        set_stale(&mut c, "x");
        let _: () = cmd(&mut c, &["SELECT", "1"]);
        let _: () = cmd(&mut c, &["WATCH", "x"]);
        let _: () = cmd(&mut c, &["SWAPDB", "0", "1"]);
        assert_eq!(exec_ping(&mut c), ran, "{kind:?}: missing replaced by stale");

        // SWAPDB: an expired key replaced by another expired one.
        let _: () = cmd(&mut c, &["FLUSHALL"]);
        set_stale(&mut c, "x");
        let _: () = cmd(&mut c, &["SELECT", "0"]);
        set_stale(&mut c, "x");
        let _: () = cmd(&mut c, &["WATCH", "x"]);
        let _: () = cmd(&mut c, &["SWAPDB", "0", "1"]);
        assert_eq!(exec_ping(&mut c), ran, "{kind:?}: stale replaced by stale");

        // An expired key watched, then deleted by a lookup: no change (and WATCH itself
        // neither deletes nor changes it).
        let _: () = cmd(&mut c, &["FLUSHALL"]);
        set_stale(&mut c, "y");
        let _: () = cmd(&mut c, &["WATCH", "y"]);
        assert_eq!(cmd::<i64>(&mut c, &["DBSIZE"]), 1, "{kind:?}: WATCH deleted the key");
        let _: Option<String> = cmd(&mut c, &["GET", "y"]);
        assert_eq!(exec_ping(&mut c), ran, "{kind:?}: stale key deleted");

        // A live key that expires after WATCH: a change.
        let _: () = cmd(&mut c, &["SET", "z", "foo", "PX", "50"]);
        let _: () = cmd(&mut c, &["WATCH", "z"]);
        let set_at = server_ms(&mut c);
        wait::until("z's TTL to pass", Duration::from_secs(5), || match server_ms(&mut c) {
            now if now > set_at + 60 => Ok(()),
            now => Err(format!("server time {now}, watched at {set_at}")),
        });
        assert_eq!(exec_ping(&mut c), None, "{kind:?}: watched key expired");

        // FLUSHDB changes the keys it deletes, not the ones that were not there.
        let _: () = cmd(&mut c, &["WATCH", "missing"]);
        let _: () = cmd(&mut c, &["FLUSHDB"]);
        assert_eq!(exec_ping(&mut c), ran, "{kind:?}: FLUSHDB of a missing key");
        let _: () = cmd(&mut c, &["SET", "k", "v"]);
        let _: () = cmd(&mut c, &["WATCH", "k"]);
        let _: () = cmd(&mut c, &["FLUSHDB"]);
        assert_eq!(exec_ping(&mut c), None, "{kind:?}: FLUSHDB of a watched key");
    }
}
