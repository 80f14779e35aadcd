//! A stream with consumer groups, pending entries and deletions comes back whole from every
//! way a node hands its data on: a restart from the dump file, a restart from an AOF whose
//! base is in command form, and a full sync in both directions between warden-node and
//! Debian's redis-server. "Whole" is judged by XINFO STREAM FULL, times masked.

use std::time::Duration;

use integration_tests::nodes::{cmd, masked_times, wait_aof_rewritten, wait_in_sync, Kind, Node};
use integration_tests::wait;

const SYNC: Duration = Duration::from_secs(20);

/// Builds the stream `s`: 150 entries over two nodes, a deletion, two groups, pending
/// entries of two consumers, and a consumer with nothing pending.
fn build(node: &Node) {
    let mut c = node.connect();
    for i in 1..=150 {
        let _: String =
            cmd(&mut c, &["XADD", "s", &format!("{i}-0"), &format!("f{}", i % 3), &i.to_string()]);
    }
    let _: String = cmd(&mut c, &["XGROUP", "CREATE", "s", "g", "0"]);
    let _: String = cmd(&mut c, &["XGROUP", "CREATE", "s", "h", "100"]);
    let _: redis::Value =
        cmd(&mut c, &["XREADGROUP", "GROUP", "g", "a", "COUNT", "3", "STREAMS", "s", ">"]);
    let _: redis::Value =
        cmd(&mut c, &["XREADGROUP", "GROUP", "g", "b", "COUNT", "4", "STREAMS", "s", ">"]);
    let _: redis::Value =
        cmd(&mut c, &["XREADGROUP", "GROUP", "h", "a", "COUNT", "2", "STREAMS", "s", ">"]);
    let _: i64 = cmd(&mut c, &["XACK", "s", "g", "2-0"]);
    let _: i64 = cmd(&mut c, &["XDEL", "s", "5-0", "120-0"]);
    let _: i64 = cmd(&mut c, &["XGROUP", "CREATECONSUMER", "s", "h", "idle"]);
}

/// XINFO STREAM s FULL with unix-ms times masked, or why it could not be read (for polling).
fn full(node: &Node) -> Result<String, String> {
    let mut c = node.try_connect()?;
    let v: redis::Value = redis::cmd("XINFO")
        .arg("STREAM")
        .arg("s")
        .arg("FULL")
        .query(&mut c)
        .map_err(|e| e.to_string())?;
    Ok(masked_times(&v))
}

/// XINFO STREAM FULL before and after a restart of a `kind` node with `extra` directives,
/// its data saved with SAVE or held in an AOF rewritten in command form.
fn restarted(kind: Kind, extra: &[&str]) -> (String, String) {
    let mut node = Node::start(kind, &format!("{kind:?}"), extra);
    build(&node);
    let mut c = node.connect();
    if extra.is_empty() {
        let _: () = cmd(&mut c, &["SAVE"]);
    } else {
        let _: String = cmd(&mut c, &["BGREWRITEAOF"]);
        wait_aof_rewritten(&node, SYNC);
        // And one more write on the AOF's tail.
        let _: i64 = cmd(&mut c, &["XACK", "s", "g", "1-0"]);
    }
    let before = full(&node).expect("XINFO");
    node.proc.kill();
    node.proc.restart();
    let after = wait::until(&format!("{kind:?} to restart with {extra:?}"), SYNC, || full(&node));
    (before, after)
}

#[test]
fn a_stream_survives_restarts_from_the_dump_and_a_command_form_aof() {
    // From the dump file, everything comes back.
    let (before, after) = restarted(Kind::Warden, &[]);
    assert_eq!(after, before, "XINFO STREAM FULL after a restart from the dump file");
    // From a command-form AOF, what comes back is what comes back to Redis: the rewrite
    // re-creates pending entries with XCLAIM … FORCE, which drops those whose entry was
    // deleted (here 5-0), in Redis as in warden-node.
    let aof = ["--appendonly", "yes", "--aof-use-rdb-preamble", "no"];
    let (redis_before, redis_after) = restarted(Kind::Redis, &aof);
    let (ours_before, ours_after) = restarted(Kind::Warden, &aof);
    assert_eq!(ours_before, redis_before, "XINFO STREAM FULL before the restarts");
    assert_eq!(ours_after, redis_after, "XINFO STREAM FULL after restarts from the AOF");
    assert_ne!(redis_after, redis_before, "the deleted pending entry should be gone in Redis too");
}

#[test]
fn a_stream_crosses_full_syncs_both_ways() {
    for (master_kind, replica_kind) in [(Kind::Warden, Kind::Redis), (Kind::Redis, Kind::Warden)] {
        let master = Node::start(master_kind, &format!("{master_kind:?} master"), &[]);
        build(&master);
        let expected = full(&master).expect("XINFO");
        let replica = Node::start(
            replica_kind,
            &format!("{replica_kind:?} replica"),
            &["--replicaof", &master.addr()],
        );
        wait_in_sync(&master, &replica, SYNC);
        assert_eq!(
            full(&replica).expect("XINFO"),
            expected,
            "{replica_kind:?} replica of a {master_kind:?} master"
        );
    }
}
