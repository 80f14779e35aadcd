//! Blocked clients (on keys, or held by CLIENT PAUSE), checked on redis-server and
//! warden-node alike.

use std::time::Duration;

use integration_tests::nodes::{cmd, Kind, Node};
use integration_tests::wait;

/// A transaction pushes to the key a client waits on, gives it a short TTL and then sleeps
/// past it: by the time the waiter would be served the key has expired, so it stays blocked
/// (Redis serves waiters on the clock as it is after the command, not when it began).
#[test]
fn a_waiter_stays_blocked_when_its_key_expired_before_it_could_be_served() {
    for kind in [Kind::Redis, Kind::Warden] {
        let node = Node::start(kind, &format!("{kind:?}"), &["--enable-debug-command", "yes"]);
        let mut c = node.connect();
        let _: () = cmd(&mut c, &["DEBUG", "SET-ACTIVE-EXPIRE", "0"]);
        let mut waiter = node.connect();
        let id: i64 = cmd(&mut waiter, &["CLIENT", "ID"]);
        let blocked = std::thread::spawn(move || {
            redis::cmd("BRPOP").arg("k").arg(0).query::<Option<Vec<String>>>(&mut waiter)
        });
        wait::until("the waiter to block", Duration::from_secs(10), || {
            match node.info("blocked_clients").as_deref() {
                Some("1") => Ok(()),
                other => Err(format!("blocked_clients {other:?}")),
            }
        });
        let _: () = cmd(&mut c, &["MULTI"]);
        for args in
            [&["RPUSH", "k", "hello"][..], &["PEXPIRE", "k", "100"], &["DEBUG", "SLEEP", "0.2"]]
        {
            let _: String = cmd(&mut c, args);
        }
        let _: redis::Value = cmd(&mut c, &["EXEC"]);
        assert_eq!(node.info("blocked_clients").as_deref(), Some("1"), "{kind:?}: waiter served");
        let unblocked: i64 = cmd(&mut c, &["CLIENT", "UNBLOCK", &id.to_string()]);
        assert_eq!(unblocked, 1, "{kind:?}");
        assert_eq!(blocked.join().unwrap().unwrap(), None, "{kind:?}");
        assert_eq!(cmd::<i64>(&mut c, &["EXISTS", "k"]), 0, "{kind:?}");
    }
}

/// A client whose write waits out CLIENT PAUSE WRITE counts as blocked (INFO blocked_clients,
/// flag `b` in CLIENT LIST) until CLIENT UNPAUSE lets the write through.
#[test]
fn a_client_held_by_client_pause_counts_as_blocked() {
    for kind in [Kind::Redis, Kind::Warden] {
        let node = Node::start(kind, &format!("{kind:?}"), &[]);
        let mut c = node.connect();
        let _: () = cmd(&mut c, &["CLIENT", "PAUSE", "60000", "WRITE"]);
        let mut writer = node.connect();
        let id: i64 = cmd(&mut writer, &["CLIENT", "ID"]);
        let held = std::thread::spawn(move || {
            redis::cmd("SET").arg("foo").arg("bar").query::<String>(&mut writer)
        });
        wait::until("the write to be held", Duration::from_secs(10), || {
            match node.info("blocked_clients").as_deref() {
                Some("1") => Ok(()),
                other => Err(format!("blocked_clients {other:?}")),
            }
        });
        let line: String = cmd(&mut c, &["CLIENT", "LIST", "ID", &id.to_string()]);
        assert!(line.contains(" flags=b "), "{kind:?}: {line}");
        let _: () = cmd(&mut c, &["CLIENT", "UNPAUSE"]);
        assert_eq!(held.join().unwrap().unwrap(), "OK", "{kind:?}");
        assert_eq!(node.info("blocked_clients").as_deref(), Some("0"), "{kind:?}");
    }
}

/// CLIENT PAUSE WRITE holds what may write, as Redis judges it: EXEC of a transaction with a
/// write queued, and scripts that may write (no shebang, or a shebang without `no-writes`),
/// while EVAL_RO and `no-writes` scripts run at once.
#[test]
fn client_pause_write_holds_transactions_and_scripts_that_may_write() {
    for kind in [Kind::Redis, Kind::Warden] {
        let node = Node::start(kind, &format!("{kind:?}"), &[]);
        let mut c = node.connect();
        let mut tx = node.connect();
        let _: () = cmd(&mut tx, &["MULTI"]);
        let _: String = cmd(&mut tx, &["SET", "foo", "bar"]);
        let _: () = cmd(&mut c, &["CLIENT", "PAUSE", "60000", "WRITE"]);
        let held_exec =
            std::thread::spawn(move || redis::cmd("EXEC").query::<Vec<String>>(&mut tx));
        let mut script = node.connect();
        let held_script = std::thread::spawn(move || {
            redis::cmd("EVAL").arg("#!lua\nreturn 1").arg(0).query::<i64>(&mut script)
        });
        wait::until("EXEC and the script to be held", Duration::from_secs(10), || {
            match node.info("blocked_clients").as_deref() {
                Some("2") => Ok(()),
                other => Err(format!("blocked_clients {other:?}")),
            }
        });
        let ro: i64 = cmd(&mut c, &["EVAL_RO", "return 1", "0"]);
        let no_writes: i64 = cmd(&mut c, &["EVAL", "#!lua flags=no-writes\nreturn 2", "0"]);
        assert_eq!((ro, no_writes), (1, 2), "{kind:?}");
        assert_eq!(node.info("blocked_clients").as_deref(), Some("2"), "{kind:?}");
        let _: () = cmd(&mut c, &["CLIENT", "UNPAUSE"]);
        assert_eq!(held_exec.join().unwrap().unwrap(), ["OK"], "{kind:?}");
        assert_eq!(held_script.join().unwrap().unwrap(), 1, "{kind:?}");
    }
}
