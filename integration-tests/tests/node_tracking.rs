//! CLIENT TRACKING across connections, run on redis-server and on warden-node with the same
//! expectations (raw bytes): a RESP3 client is told when another client changes a key it
//! read, a RESP2 subscriber receives the invalidations redirected to it on
//! `__redis__:invalidate`, BCAST announces changes under a prefix, and a redirect to a client
//! that left is reported. (One-connection behaviour is in `node/tests/compat/tracking.redis`.)

use std::time::Duration;

use integration_tests::nodes::{cmd, Kind, Node};
use integration_tests::raw::Raw;
use integration_tests::wait;

fn hello3(node: &Node) -> Raw {
    Raw::open_resp3(node)
}

const INVALIDATE_A: &str = ">2\r\n$10\r\ninvalidate\r\n*1\r\n$1\r\na\r\n";

#[test]
fn another_clients_write_invalidates_what_a_resp3_client_read() {
    for kind in [Kind::Redis, Kind::Warden] {
        let node = Node::start(kind, &format!("{kind:?}"), &[]);
        let mut tracker = hello3(&node);
        let mut writer = Raw::open(&node);
        tracker.call("CLIENT TRACKING on", "+OK\r\n");
        tracker.call("GET a", "_\r\n");
        writer.call("SET a 1", "+OK\r\n");
        tracker.expect(&format!("{kind:?}: invalidation after another client's SET"), INVALIDATE_A);
        // Not read since: the next change is not announced.
        writer.call("SET a 2", "+OK\r\n");
        tracker.quiet(&format!("{kind:?}: second SET without a read"));
        tracker.call("GET a", "$1\r\n2\r\n");
        writer.call("FLUSHALL", "+OK\r\n");
        tracker.expect(&format!("{kind:?}: flush"), ">2\r\n$10\r\ninvalidate\r\n_\r\n");
        let info: String = cmd(&mut node.connect(), &["INFO", "clients"]);
        assert!(info.contains("tracking_clients:1\r\n"), "{kind:?}: {info}");
    }
}

#[test]
fn invalidations_redirected_to_a_resp2_subscriber_arrive_on_the_invalidate_channel() {
    for kind in [Kind::Redis, Kind::Warden] {
        let node = Node::start(kind, &format!("{kind:?}"), &[]);
        let mut subscriber = Raw::open(&node);
        let sub_id = subscriber.id();
        subscriber.call(
            "SUBSCRIBE __redis__:invalidate",
            "*3\r\n$9\r\nsubscribe\r\n$20\r\n__redis__:invalidate\r\n:1\r\n",
        );
        let mut tracker = Raw::open(&node);
        tracker.call(&format!("CLIENT TRACKING on REDIRECT {sub_id}"), "+OK\r\n");
        tracker.call("CLIENT GETREDIR", &format!(":{sub_id}\r\n"));
        tracker.call("GET a", "$-1\r\n");
        let mut writer = Raw::open(&node);
        writer.call("SET a 1", "+OK\r\n");
        subscriber.expect(
            &format!("{kind:?}: redirected invalidation"),
            "*3\r\n$7\r\nmessage\r\n$20\r\n__redis__:invalidate\r\n*1\r\n$1\r\na\r\n",
        );
        // The tracker itself (RESP2) is sent nothing.
        tracker.quiet(&format!("{kind:?}: tracker"));
        // BCAST with a prefix, redirected too.
        tracker.call("CLIENT TRACKING off", "+OK\r\n");
        tracker
            .call(&format!("CLIENT TRACKING on BCAST PREFIX user: REDIRECT {sub_id}"), "+OK\r\n");
        writer.call("SET user:1 x", "+OK\r\n");
        writer.call("SET other x", "+OK\r\n");
        subscriber.expect(
            &format!("{kind:?}: broadcast"),
            "*3\r\n$7\r\nmessage\r\n$20\r\n__redis__:invalidate\r\n*1\r\n$6\r\nuser:1\r\n",
        );
        subscriber.quiet(&format!("{kind:?}: a key outside the prefix"));
    }
}

#[test]
fn a_redirect_to_a_client_that_left_is_reported() {
    for kind in [Kind::Redis, Kind::Warden] {
        let node = Node::start(kind, &format!("{kind:?}"), &[]);
        let mut target = Raw::open(&node);
        let target_id = target.id();
        let mut tracker = hello3(&node);
        tracker.call(&format!("CLIENT TRACKING on REDIRECT {target_id}"), "+OK\r\n");
        tracker.call("GET a", "_\r\n");
        drop(target);
        let mut admin = node.connect();
        wait::until("the redirect target to be gone", Duration::from_secs(10), || {
            let list: String = cmd(&mut admin, &["CLIENT", "LIST"]);
            match list.lines().any(|l| l.starts_with(&format!("id={target_id} "))) {
                false => Ok(()),
                true => Err(list),
            }
        });
        let mut writer = Raw::open(&node);
        writer.call("SET a 1", "+OK\r\n");
        tracker.expect(
            &format!("{kind:?}: broken redirect"),
            &format!(">2\r\n$21\r\ntracking-redir-broken\r\n:{target_id}\r\n"),
        );
        let info: String = cmd(&mut admin, &["CLIENT", "LIST"]);
        let line = info.lines().find(|l| l.contains("flags=tR")).unwrap_or_default();
        assert!(!line.is_empty(), "{kind:?}: no client with flags tR in {info}");
    }
}

/// A key evicted to make room before a command is announced before that command's reply (the
/// eviction is not the command's doing), as Redis does.
#[test]
fn an_eviction_before_a_command_is_announced_before_its_reply() {
    for kind in [Kind::Redis, Kind::Warden] {
        let node = Node::start(kind, &format!("{kind:?}"), &[]);
        let mut c = node.connect();
        let mut tracker = hello3(&node);
        tracker.call("CLIENT TRACKING on", "+OK\r\n");
        let used: u64 = node.info("used_memory").and_then(|v| v.parse().ok()).expect("used_memory");
        let limit = (used + 100 * 1024).to_string();
        let _: () = cmd(&mut c, &["CONFIG", "SET", "maxmemory-policy", "volatile-random"]);
        let _: () = cmd(&mut c, &["CONFIG", "SET", "maxmemory", &limit]);
        tracker.call("SETEX volatile-key 10000 x", "+OK\r\n");
        tracker.call("GET volatile-key", "$1\r\nx\r\n");
        // About 200 KB in one value: the next command must evict first.
        tracker.call("SETBIT big-key 1600000 0", ":0\r\n");
        tracker.call(
            "GETBIT big-key 0",
            ">2\r\n$10\r\ninvalidate\r\n*1\r\n$12\r\nvolatile-key\r\n:0\r\n",
        );
        let _: () = cmd(&mut c, &["CONFIG", "SET", "maxmemory", "0"]);
    }
}
