//! Function libraries are part of the dataset a node keeps and passes on: they reach replicas
//! (warden-node's and Redis's, by full sync and by the stream), survive a restart from the
//! dump file and from the AOF in both base forms, and a Redis master's libraries reach a
//! warden-node replica.

use std::time::Duration;

use integration_tests::nodes::{cmd, wait_aof_rewritten, wait_in_sync, Kind, Node};
use integration_tests::wait;

const LIBRARY: &str = "#!lua name=counters\n\
    redis.register_function('bump', function(keys, args) return redis.call('incrby', keys[1], args[1]) end)\n\
    redis.register_function{function_name='peek', callback=function(keys) return redis.call('get', keys[1]) end, flags={'no-writes'}}";

const LATER: &str = "#!lua name=later\n\
    redis.register_function('later', function() return 'later' end)";

const SYNC: Duration = Duration::from_secs(20);

/// `FCALL name 1 key [arg]` on `node`, or why it failed (for polling).
fn fcall(node: &Node, name: &str, key: &str, arg: Option<&str>) -> Result<String, String> {
    let mut c = node.try_connect()?;
    let mut command = redis::cmd("FCALL");
    command.arg(name).arg(1).arg(key);
    if let Some(arg) = arg {
        command.arg(arg);
    }
    let value: redis::Value = command.query(&mut c).map_err(|e| e.to_string())?;
    match value {
        redis::Value::Int(n) => Ok(n.to_string()),
        redis::Value::BulkString(b) => Ok(String::from_utf8_lossy(&b).into_owned()),
        other => Err(format!("unexpected reply {other:?}")),
    }
}

/// The library names a node holds, sorted.
fn libraries(node: &Node) -> Vec<String> {
    let mut c = node.connect();
    let list: Vec<redis::Value> = cmd(&mut c, &["FUNCTION", "LIST"]);
    let mut names: Vec<String> = list
        .into_iter()
        .filter_map(|entry| match entry {
            redis::Value::Array(fields) => fields
                .chunks(2)
                .find(
                    |pair| matches!(&pair[0], redis::Value::BulkString(k) if k == b"library_name"),
                )
                .and_then(|pair| match &pair[1] {
                    redis::Value::BulkString(v) => Some(String::from_utf8_lossy(v).into_owned()),
                    _ => None,
                }),
            _ => None,
        })
        .collect();
    names.sort();
    names
}

#[test]
fn libraries_reach_replicas_by_full_sync_and_by_the_stream() {
    let master = Node::start(Kind::Warden, "master", &[]);
    let mut c = master.connect();
    let _: String = cmd(&mut c, &["FUNCTION", "LOAD", LIBRARY]);
    assert_eq!(fcall(&master, "bump", "n", Some("5")), Ok("5".into()));
    for kind in [Kind::Warden, Kind::Redis] {
        let before: i64 = cmd(&mut c, &["GET", "n"]);
        let addr = master.addr();
        let replica = Node::start(kind, &format!("{kind:?} replica"), &["--replicaof", &addr]);
        wait_in_sync(&master, &replica, SYNC);
        // The snapshot carried the library.
        assert_eq!(libraries(&replica), ["counters"], "{kind:?} replica after the full sync");
        // FCALL_RO of a no-writes function runs on a read-only replica.
        let mut r = replica.connect();
        let peek: i64 = cmd(&mut r, &["FCALL_RO", "peek", "1", "n"]);
        assert_eq!(peek, before);
        // A write function is refused there as a write command, in Redis's words.
        let refused = redis::cmd("FCALL").arg("bump").arg(1).arg("n").arg(1).query::<i64>(&mut r);
        let err = refused.expect_err("a write function on a read-only replica");
        assert!(err.to_string().contains("You can't write against a read only replica"), "{err}");
        // The stream carries LOAD, the function's effects, and DELETE.
        let _: String = cmd(&mut c, &["FUNCTION", "LOAD", LATER]);
        assert_eq!(fcall(&master, "bump", "n", Some("1")), Ok((before + 1).to_string()));
        wait_in_sync(&master, &replica, SYNC);
        assert_eq!(libraries(&replica), ["counters", "later"], "{kind:?} replica");
        let n: i64 = cmd(&mut r, &["GET", "n"]);
        assert_eq!(n, before + 1);
        let _: () = cmd(&mut c, &["FUNCTION", "DELETE", "later"]);
        wait_in_sync(&master, &replica, SYNC);
        assert_eq!(libraries(&replica), ["counters"], "{kind:?} replica after DELETE");
    }
}

#[test]
fn a_redis_masters_libraries_reach_a_warden_replica() {
    let master = Node::start(Kind::Redis, "redis master", &[]);
    let mut c = master.connect();
    let _: String = cmd(&mut c, &["FUNCTION", "LOAD", LIBRARY]);
    let replica = Node::start(Kind::Warden, "warden replica", &["--replicaof", &master.addr()]);
    wait_in_sync(&master, &replica, SYNC);
    assert_eq!(libraries(&replica), ["counters"]);
    let _: String = cmd(&mut c, &["FUNCTION", "LOAD", LATER]);
    let _: () = cmd(&mut c, &["FUNCTION", "FLUSH"]);
    let _: String = cmd(&mut c, &["FUNCTION", "LOAD", LATER]);
    wait_in_sync(&master, &replica, SYNC);
    assert_eq!(libraries(&replica), ["later"]);
}

#[test]
fn libraries_survive_restarts_from_the_dump_and_the_aof() {
    let cases: [&[&str]; 3] =
        [&[], &["--appendonly", "yes"], &["--appendonly", "yes", "--aof-use-rdb-preamble", "no"]];
    for extra in cases {
        let mut node = Node::start(Kind::Warden, "node", extra);
        let mut c = node.connect();
        let _: String = cmd(&mut c, &["FUNCTION", "LOAD", LIBRARY]);
        assert_eq!(fcall(&node, "bump", "n", Some("2")), Ok("2".into()));
        if extra.is_empty() {
            let _: () = cmd(&mut c, &["SAVE"]);
        } else {
            // Rewrite the base (the library must be in it), then add to the tail.
            let _: String = cmd(&mut c, &["BGREWRITEAOF"]);
            wait_aof_rewritten(&node, SYNC);
            let _: String = cmd(&mut c, &["FUNCTION", "LOAD", LATER]);
        }
        node.proc.kill();
        node.proc.restart();
        let label = format!("after a restart with {extra:?}");
        let n = wait::until(&label, SYNC, || fcall(&node, "peek", "n", None));
        assert_eq!(n, "2", "{label}");
        let expected: &[&str] =
            if extra.is_empty() { &["counters"] } else { &["counters", "later"] };
        assert_eq!(libraries(&node), expected, "{label}");
    }
}
