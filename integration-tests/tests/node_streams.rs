//! Blocking stream reads (XREAD and XREADGROUP with BLOCK), checked on redis-server and
//! warden-node alike with the same raw bytes: a wait served by XADD, waiters served in the
//! order they blocked, the pending entries list of a served XREADGROUP, timeouts in RESP2 and
//! RESP3, and a waiting group reader told that its group or its key went away.
//! (One-connection behaviour is in `node/tests/compat/streams.redis`.)

use std::time::Duration;

use integration_tests::nodes::{cmd, masked_times, Kind, Node};
use integration_tests::raw::Raw;
use integration_tests::wait;

fn wait_blocked(node: &Node, n: usize) {
    wait::until("clients to block", Duration::from_secs(10), || {
        match node.info("blocked_clients") {
            Some(v) if v == n.to_string() => Ok(()),
            other => Err(format!("blocked_clients {other:?}")),
        }
    });
}

/// `[[key, [[id, [f, v]]]]]` in RESP2.
fn one_entry_resp2(key: &str, id: &str, f: &str, v: &str) -> String {
    format!(
        "*1\r\n*2\r\n${}\r\n{key}\r\n*1\r\n*2\r\n${}\r\n{id}\r\n*2\r\n${}\r\n{f}\r\n${}\r\n{v}\r\n",
        key.len(),
        id.len(),
        f.len(),
        v.len()
    )
}

#[test]
fn xread_block_is_served_by_xadd_and_times_out_with_a_null() {
    for kind in [Kind::Redis, Kind::Warden] {
        let node = Node::start(kind, &format!("{kind:?}"), &[]);
        let mut c = node.connect();
        let _: String = cmd(&mut c, &["XADD", "s", "1-1", "old", "x"]);
        let mut a = Raw::open(&node);
        let mut b = Raw::open(&node);
        a.send("XREAD BLOCK 0 STREAMS other s 0 $");
        b.send("XREAD COUNT 5 BLOCK 0 STREAMS s $");
        wait_blocked(&node, 2);
        let _: String = cmd(&mut c, &["XADD", "s", "2-1", "f", "v"]);
        let reply = one_entry_resp2("s", "2-1", "f", "v");
        a.expect(&format!("{kind:?}: first waiter"), &reply);
        b.expect(&format!("{kind:?}: second waiter"), &reply);
        wait_blocked(&node, 0);

        // Timeouts: a null array in RESP2, a null in RESP3.
        a.send("XREAD BLOCK 50 STREAMS s $");
        a.expect(&format!("{kind:?}: RESP2 timeout"), "*-1\r\n");
        let mut b = Raw::open_resp3(&node);
        b.send("XREAD BLOCK 50 STREAMS s $");
        b.expect(&format!("{kind:?}: RESP3 timeout"), "_\r\n");

        // RESP3 waiters get a map.
        b.send("XREAD BLOCK 0 STREAMS s $");
        wait_blocked(&node, 1);
        let _: String = cmd(&mut c, &["XADD", "s", "3-1", "g", "w"]);
        b.expect(
            &format!("{kind:?}: RESP3 served"),
            "%1\r\n$1\r\ns\r\n*1\r\n*2\r\n$3\r\n3-1\r\n*2\r\n$1\r\ng\r\n$1\r\nw\r\n",
        );
    }
}

#[test]
fn xreadgroup_block_serves_waiters_in_order_and_records_pending_entries() {
    for kind in [Kind::Redis, Kind::Warden] {
        let node = Node::start(kind, &format!("{kind:?}"), &[]);
        let mut c = node.connect();
        let _: String = cmd(&mut c, &["XGROUP", "CREATE", "q", "grp", "$", "MKSTREAM"]);
        let mut a = Raw::open(&node);
        let mut b = Raw::open(&node);
        a.send("XREADGROUP GROUP grp alice COUNT 1 BLOCK 0 STREAMS q >");
        wait_blocked(&node, 1);
        b.send("XREADGROUP GROUP grp bob COUNT 1 BLOCK 0 STREAMS q >");
        wait_blocked(&node, 2);
        let _: String = cmd(&mut c, &["XADD", "q", "1-1", "f", "v"]);
        a.expect(&format!("{kind:?}: first waiter"), &one_entry_resp2("q", "1-1", "f", "v"));
        b.quiet(&format!("{kind:?}: second waiter"));
        assert_eq!(node.info("blocked_clients").as_deref(), Some("1"), "{kind:?}");
        let _: String = cmd(&mut c, &["XADD", "q", "2-1", "f", "w"]);
        b.expect(&format!("{kind:?}: second waiter"), &one_entry_resp2("q", "2-1", "f", "w"));
        let summary: redis::Value = cmd(&mut c, &["XPENDING", "q", "grp"]);
        let text = format!("{summary:?}");
        assert!(text.contains("1-1") && text.contains("2-1"), "{kind:?}: {text}");
        let mine: Vec<Vec<redis::Value>> =
            cmd(&mut c, &["XPENDING", "q", "grp", "-", "+", "10", "bob"]);
        assert_eq!(mine.len(), 1, "{kind:?}");
        let groups: redis::Value = cmd(&mut c, &["XINFO", "GROUPS", "q"]);
        let text = format!("{groups:?}");
        assert!(text.contains("2-1"), "{kind:?}: last-delivered-id in {text}");
    }
}

#[test]
fn a_waiting_group_reader_is_told_when_its_group_or_key_goes() {
    for kind in [Kind::Redis, Kind::Warden] {
        let node = Node::start(kind, &format!("{kind:?}"), &["--enable-debug-command", "yes"]);
        let mut c = node.connect();
        let _: String = cmd(&mut c, &["XGROUP", "CREATE", "q", "grp", "$", "MKSTREAM"]);
        let mut a = Raw::open(&node);
        a.send("XREADGROUP GROUP grp alice BLOCK 0 STREAMS q >");
        wait_blocked(&node, 1);
        let _: i64 = cmd(&mut c, &["XGROUP", "DESTROY", "q", "grp"]);
        a.expect(
            &format!("{kind:?}: group destroyed"),
            "-NOGROUP the consumer group this client was blocked on no longer exists\r\n",
        );
        let _: String = cmd(&mut c, &["XGROUP", "CREATE", "q", "grp", "$"]);
        a.send("XREADGROUP GROUP grp alice BLOCK 0 STREAMS q >");
        wait_blocked(&node, 1);
        let _: i64 = cmd(&mut c, &["DEL", "q"]);
        a.expect(
            &format!("{kind:?}: key deleted"),
            "-UNBLOCKED the stream key no longer exists\r\n",
        );
        for flush in [&["FLUSHALL"][..], &["FLUSHDB"], &["SWAPDB", "0", "1"]] {
            let _: String = cmd(&mut c, &["XGROUP", "CREATE", "q", "grp", "$", "MKSTREAM"]);
            a.send("XREADGROUP GROUP grp alice BLOCK 0 STREAMS q >");
            wait_blocked(&node, 1);
            let _: String = cmd(&mut c, flush);
            a.expect(
                &format!("{kind:?}: {flush:?}"),
                "-UNBLOCKED the stream key no longer exists\r\n",
            );
            let _: String = cmd(&mut c, &["FLUSHALL"]);
        }
        // A stream that expires (here found expired by a read) goes as a deleted one does.
        let _: () = cmd(&mut c, &["DEBUG", "SET-ACTIVE-EXPIRE", "0"]);
        let _: String = cmd(&mut c, &["XGROUP", "CREATE", "q", "grp", "$", "MKSTREAM"]);
        a.send("XREADGROUP GROUP grp alice BLOCK 0 STREAMS q >");
        wait_blocked(&node, 1);
        let _: i64 = cmd(&mut c, &["PEXPIRE", "q", "1"]);
        wait::until("the stream to expire", Duration::from_secs(10), || {
            match cmd::<i64>(&mut c, &["EXISTS", "q"]) {
                0 => Ok(()),
                n => Err(format!("EXISTS {n}")),
            }
        });
        a.expect(&format!("{kind:?}: expired"), "-UNBLOCKED the stream key no longer exists\r\n");
        let _: () = cmd(&mut c, &["DEBUG", "SET-ACTIVE-EXPIRE", "1"]);
        // … and so does one the active expiry cycle finds.
        let _: String = cmd(&mut c, &["XGROUP", "CREATE", "q", "grp", "$", "MKSTREAM"]);
        a.send("XREADGROUP GROUP grp alice BLOCK 0 STREAMS q >");
        wait_blocked(&node, 1);
        let _: i64 = cmd(&mut c, &["PEXPIRE", "q", "1"]);
        a.expect(
            &format!("{kind:?}: actively expired"),
            "-UNBLOCKED the stream key no longer exists\r\n",
        );
        // A plain reader keeps waiting when its key goes, and is served once it comes back.
        a.send("XREAD BLOCK 0 STREAMS q 0");
        wait_blocked(&node, 1);
        let _: String = cmd(&mut c, &["SET", "q", "x"]);
        let _: i64 = cmd(&mut c, &["DEL", "q"]);
        a.quiet(&format!("{kind:?}: plain reader"));
        let _: String = cmd(&mut c, &["XADD", "q", "1-1", "f", "v"]);
        a.expect(&format!("{kind:?}: plain reader served"), &one_entry_resp2("q", "1-1", "f", "v"));
    }
}

/// What two servers that ran the same commands must agree on about a stream, times aside:
/// its entries, its XINFO (not FULL: it prints times), its groups, and each pending entry with
/// its owner and delivery count.
fn stream_state(node: &Node, key: &str) -> Vec<String> {
    let mut c = node.connect();
    let mut out = Vec::new();
    for args in
        [vec!["XRANGE", key, "-", "+"], vec!["XINFO", "STREAM", key], vec!["XINFO", "GROUPS", key]]
    {
        let v: redis::Value = cmd(&mut c, &args);
        out.push(format!("{args:?} {v:?}"));
    }
    let groups: Vec<Vec<redis::Value>> = cmd(&mut c, &["XINFO", "GROUPS", key]);
    for g in groups {
        let name: String = redis::from_redis_value(g[1].clone()).unwrap();
        let pending: Vec<Vec<redis::Value>> =
            cmd(&mut c, &["XPENDING", key, &name, "-", "+", "1000"]);
        for p in pending {
            // Without the idle time (index 2): each server measures it on its own clock.
            out.push(format!("{name} {:?} {:?} {:?}", p[0], p[1], p[3]));
        }
        let consumers: Vec<Vec<redis::Value>> = cmd(&mut c, &["XINFO", "CONSUMERS", key, &name]);
        for consumer in consumers {
            out.push(format!("{name} consumer {:?} pending {:?}", consumer[1], consumer[3]));
        }
    }
    out
}

/// Stream writes of every kind. IDs generated by `*` follow a last ID far in the future, so
/// they do not depend on the clock.
fn stream_writes(master: &Node) {
    let mut c = master.connect();
    let run = |c: &mut redis::Connection, args: &[&str]| {
        let _: redis::Value = cmd(c, args);
    };
    run(&mut c, &["XADD", "s", "999999999999990-0", "a", "1"]);
    run(&mut c, &["XADD", "s", "*", "b", "2"]);
    run(&mut c, &["XADD", "s", "999999999999990-*", "b", "2"]);
    for i in 0..250 {
        run(&mut c, &["XADD", "s", "MAXLEN", "~", "120", "*", "n", &i.to_string()]);
    }
    run(&mut c, &["XADD", "s", "MINID", "~", "0-1", "*", "x", "y"]);
    // Sent on as `MAXLEN = <n> LIMIT 100`: a replica ignores the LIMIT, as Redis's does.
    run(&mut c, &["XADD", "s", "MAXLEN", "~", "130", "LIMIT", "100", "*", "x", "y"]);
    run(&mut c, &["XTRIM", "s", "MAXLEN", "~", "125", "LIMIT", "200"]);
    run(&mut c, &["XGROUP", "CREATE", "s", "g", "0"]);
    run(&mut c, &["XGROUP", "CREATE", "s", "h", "$"]);
    run(&mut c, &["XREADGROUP", "GROUP", "g", "alice", "COUNT", "5", "STREAMS", "s", ">"]);
    run(&mut c, &["XREADGROUP", "GROUP", "g", "bob", "NOACK", "COUNT", "3", "STREAMS", "s", ">"]);
    run(&mut c, &["XREADGROUP", "GROUP", "g", "carol", "COUNT", "4", "STREAMS", "s", ">"]);
    let pending: Vec<Vec<redis::Value>> = cmd(&mut c, &["XPENDING", "s", "g", "-", "+", "100"]);
    let ids: Vec<String> =
        pending.iter().map(|p| redis::from_redis_value(p[0].clone()).unwrap()).collect();
    run(&mut c, &["XCLAIM", "s", "g", "dave", "0", &ids[0], &ids[1], "RETRYCOUNT", "9"]);
    run(
        &mut c,
        &["XCLAIM", "s", "g", "dave", "0", &ids[2], "JUSTID", "LASTID", "999999999999999-0"],
    );
    run(&mut c, &["XDEL", "s", &ids[3]]);
    run(&mut c, &["XAUTOCLAIM", "s", "g", "erin", "0", "0", "COUNT", "3"]);
    run(&mut c, &["XACK", "s", "g", &ids[4]]);
    run(&mut c, &["XGROUP", "CREATECONSUMER", "s", "h", "zed"]);
    run(&mut c, &["XGROUP", "DELCONSUMER", "s", "g", "carol"]);
    run(&mut c, &["XTRIM", "s", "MAXLEN", "~", "60"]);
    run(&mut c, &["XTRIM", "s", "MINID", "~", "999999999999990-200"]);
    run(&mut c, &["XGROUP", "SETID", "s", "h", "0", "ENTRIESREAD", "0"]);
    run(&mut c, &["XREADGROUP", "GROUP", "h", "zed", "NOACK", "COUNT", "2", "STREAMS", "s", ">"]);
    run(
        &mut c,
        &["XREADGROUP", "GROUP", "h", "newbie", "NOACK", "COUNT", "1", "STREAMS", "s", ">"],
    );
    run(
        &mut c,
        &["XSETID", "s", "999999999999999-5", "ENTRIESADDED", "1000", "MAXDELETEDID", "1-0"],
    );
    run(&mut c, &["XGROUP", "SETID", "s", "h", "$"]);
    // A blocked group read served by a later XADD propagates like the immediate one.
    let mut waiter = Raw::open(master);
    waiter.send("XREADGROUP GROUP h yan BLOCK 0 STREAMS s >");
    wait_blocked(master, 1);
    run(&mut c, &["XADD", "s", "*", "late", "1"]);
    waiter.read_until("the waiter to be served", |seen| seen.windows(4).any(|w| w == b"late"));
    assert!(waiter.text().contains("late"), "the waiter was served: {:?}", waiter.text());
}

/// Runs [`stream_writes`] on a master with a replica; returns both states.
fn replicated(master_kind: Kind, replica_kind: Kind) -> (Vec<String>, Vec<String>) {
    let master = Node::start(master_kind, "master", &["--repl-diskless-sync-delay", "0"]);
    let addr = master.addr();
    let replica = Node::start(replica_kind, "replica", &["--replicaof", &addr]);
    integration_tests::nodes::wait_in_sync(&master, &replica, Duration::from_secs(30));
    stream_writes(&master);
    integration_tests::nodes::wait_in_sync(&master, &replica, Duration::from_secs(30));
    (stream_state(&master, "s"), stream_state(&replica, "s"))
}

fn assert_same(what: &str, a: &[String], b: &[String]) {
    for (x, y) in a.iter().zip(b) {
        assert_eq!(x, y, "{what}");
    }
    assert_eq!(a.len(), b.len(), "{what}");
}

/// The same writes on a warden-node master with a redis-server replica and on a redis-server
/// master with a warden-node replica: both masters end alike (same replies, same state), and
/// so do both replicas, so warden-node propagates what Redis propagates and applies it as
/// Redis does (a replica's group counters legitimately differ from its master's).
#[test]
fn stream_writes_propagate_and_apply_as_redis_does() {
    let (warden_master, redis_replica) = replicated(Kind::Warden, Kind::Redis);
    let (redis_master, warden_replica) = replicated(Kind::Redis, Kind::Warden);
    assert_same("masters", &warden_master, &redis_master);
    assert_same("replicas", &redis_replica, &warden_replica);
}

/// XSETID and XGROUP SETID can make a waiting reader servable, but only XADD (or the group or
/// key going) wakes it: it stays blocked until the next entry arrives.
#[test]
fn only_xadd_wakes_readers_made_servable_by_setid() {
    for kind in [Kind::Redis, Kind::Warden] {
        let node = Node::start(kind, &format!("{kind:?}"), &[]);
        let mut c = node.connect();
        let _: String = cmd(&mut c, &["XADD", "s", "1-1", "f", "v"]);
        let _: String = cmd(&mut c, &["XGROUP", "CREATE", "s", "g", "$"]);
        let mut reader = Raw::open(&node);
        let mut member = Raw::open(&node);
        reader.send("XREAD BLOCK 0 STREAMS s $");
        member.send("XREADGROUP GROUP g alice BLOCK 0 STREAMS s >");
        wait_blocked(&node, 2);
        let _: String = cmd(&mut c, &["XSETID", "s", "5-0"]);
        let _: String = cmd(&mut c, &["XGROUP", "SETID", "s", "g", "0"]);
        reader.quiet(&format!("{kind:?}: reader after XSETID"));
        member.quiet(&format!("{kind:?}: group reader after XGROUP SETID"));
        assert_eq!(node.info("blocked_clients").as_deref(), Some("2"), "{kind:?}");
        let _: String = cmd(&mut c, &["XADD", "s", "6-1", "g", "w"]);
        reader.expect(&format!("{kind:?}: reader"), &one_entry_resp2("s", "6-1", "g", "w"));
        member.expect(
            &format!("{kind:?}: group reader"),
            "*1\r\n*2\r\n$1\r\ns\r\n*2\r\n*2\r\n$3\r\n1-1\r\n*2\r\n$1\r\nf\r\n$1\r\nv\r\n\
             *2\r\n$3\r\n6-1\r\n*2\r\n$1\r\ng\r\n$1\r\nw\r\n",
        );
    }
}

/// WATCH sees a stream change when its entries change (XADD, XDEL, XTRIM) or the key is made
/// (XGROUP CREATE … MKSTREAM), not when only consumer groups or the last ID do, as in Redis.
#[test]
fn watch_sees_entry_changes_not_group_changes() {
    for kind in [Kind::Redis, Kind::Warden] {
        let node = Node::start(kind, &format!("{kind:?}"), &[]);
        let mut c = node.connect();
        let mut w = node.connect();
        let _: String = cmd(&mut c, &["XADD", "w", "1-1", "f", "v"]);
        let _: String = cmd(&mut c, &["XGROUP", "CREATE", "w", "g", "0"]);
        let commands: &[(&[&str], bool)] = &[
            (&["XGROUP", "CREATECONSUMER", "w", "g", "c1"], false),
            (&["XSETID", "w", "5-0"], false),
            (&["XGROUP", "SETID", "w", "g", "0"], false),
            (&["XREADGROUP", "GROUP", "g", "c", "STREAMS", "w", ">"], false),
            (&["XCLAIM", "w", "g", "c2", "0", "1-1"], false),
            (&["XAUTOCLAIM", "w", "g", "c3", "0", "0"], false),
            (&["XACK", "w", "g", "1-1"], false),
            (&["XGROUP", "DELCONSUMER", "w", "g", "c1"], false),
            (&["XGROUP", "DESTROY", "w", "g"], false),
            (&["XGROUP", "CREATE", "w", "g", "0"], false),
            (&["XGROUP", "CREATE", "w2", "g", "0", "MKSTREAM"], true),
            (&["XADD", "w", "9-9", "a", "b"], true),
            (&["XDEL", "w", "9-9"], true),
            (&["XTRIM", "w", "MAXLEN", "0"], true),
        ];
        for (args, aborts) in commands {
            let _: () = cmd(&mut w, &["WATCH", "w", "w2"]);
            let _: () = cmd(&mut w, &["MULTI"]);
            let _: String = cmd(&mut w, &["PING"]);
            let _: redis::Value = cmd(&mut c, args);
            let exec: Option<Vec<String>> = cmd(&mut w, &["EXEC"]);
            assert_eq!(exec.is_none(), *aborts, "{kind:?}: {args:?}");
        }
    }
}

/// XINFO STREAM FULL and XINFO CONSUMERS print times (delivery, seen, idle); with those masked,
/// both servers give the same reply.
#[test]
fn xinfo_full_and_consumers_match_with_times_masked() {
    let mut replies = Vec::new();
    for kind in [Kind::Redis, Kind::Warden] {
        let node = Node::start(kind, &format!("{kind:?}"), &[]);
        let mut c = node.connect();
        for i in 1..=12 {
            let _: String = cmd(&mut c, &["XADD", "s", &format!("{i}-0"), "f", &i.to_string()]);
        }
        let _: String = cmd(&mut c, &["XGROUP", "CREATE", "s", "g", "0"]);
        let _: String = cmd(&mut c, &["XGROUP", "CREATE", "s", "h", "5"]);
        let _: redis::Value =
            cmd(&mut c, &["XREADGROUP", "GROUP", "g", "a", "COUNT", "3", "STREAMS", "s", ">"]);
        let _: redis::Value =
            cmd(&mut c, &["XREADGROUP", "GROUP", "g", "b", "COUNT", "4", "STREAMS", "s", ">"]);
        let _: redis::Value = cmd(&mut c, &["XREADGROUP", "GROUP", "h", "a", "STREAMS", "s", ">"]);
        let _: i64 = cmd(&mut c, &["XDEL", "s", "2-0"]);
        let _: i64 = cmd(&mut c, &["XGROUP", "CREATECONSUMER", "s", "h", "idle"]);
        let mut out = Vec::new();
        for args in [
            &["XINFO", "STREAM", "s", "FULL"][..],
            &["XINFO", "STREAM", "s", "FULL", "COUNT", "2"],
            &["XINFO", "STREAM", "s", "FULL", "COUNT", "0"],
        ] {
            let v: redis::Value = cmd(&mut c, args);
            out.push(masked_times(&v));
        }
        for group in ["g", "h"] {
            let consumers: Vec<Vec<redis::Value>> =
                cmd(&mut c, &["XINFO", "CONSUMERS", "s", group]);
            for mut consumer in consumers {
                // name, pending, idle: the idle time is each server's own.
                consumer.truncate(5);
                out.push(format!("{group} {consumer:?}"));
            }
        }
        replies.push(out);
    }
    assert_same("XINFO", &replies[0], &replies[1]);
}
