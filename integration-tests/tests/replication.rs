//! Replication between real processes: warden-node with itself and with Debian's
//! redis-server 7.0 in both directions, chains, promotion, restart, WAIT, and a full sync
//! under concurrent writes that must lose and duplicate nothing.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use integration_tests::nodes::{cmd, dataset, wait_in_sync, Kind, Node};
use integration_tests::wait;

const SYNC: Duration = Duration::from_secs(30);

/// Fast full syncs: no diskless delay.
const MASTER: &[&str] = &["--repl-diskless-sync-delay", "0"];

fn replica_of(master: &Node, extra: &[&str]) -> Vec<String> {
    let mut args = vec!["--replicaof".to_string(), master.addr()];
    args.extend(MASTER.iter().map(|s| s.to_string()));
    args.extend(extra.iter().map(|s| s.to_string()));
    args
}

fn start_replica(kind: Kind, name: &str, master: &Node) -> Node {
    let args = replica_of(master, &[]);
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    Node::start(kind, name, &refs)
}

/// Writes one key of every type, in several databases, with and without TTLs.
fn write_mixed(master: &Node, tag: &str) {
    let mut c = master.connect();
    let _: () = cmd(&mut c, &["SET", &format!("s:{tag}"), "v"]);
    let _: () = cmd(&mut c, &["SET", &format!("ttl:{tag}"), "x", "EX", "1000"]);
    let _: i64 = cmd(&mut c, &["INCRBY", &format!("n:{tag}"), "41"]);
    let _: i64 = cmd(&mut c, &["RPUSH", &format!("l:{tag}"), "a", "b", "c"]);
    let _: i64 = cmd(&mut c, &["HSET", &format!("h:{tag}"), "f", "1", "g", "2"]);
    let _: String = cmd(&mut c, &["HINCRBYFLOAT", &format!("h:{tag}"), "f", "0.5"]);
    let _: i64 = cmd(&mut c, &["SADD", &format!("set:{tag}"), "1", "2", "x"]);
    let _: i64 = cmd(&mut c, &["ZADD", &format!("z:{tag}"), "1.5", "m", "2", "n"]);
    let _: () = cmd(&mut c, &["SELECT", "3"]);
    let _: () = cmd(&mut c, &["SET", &format!("db3:{tag}"), "three"]);
    let _: Vec<redis::Value> = redis::pipe()
        .atomic()
        .cmd("INCR")
        .arg("tx")
        .cmd("LPUSH")
        .arg("txl")
        .arg(tag)
        .query(&mut c)
        .unwrap();
    let _: () = cmd(&mut c, &["SELECT", "0"]);
    let _: i64 = cmd(&mut c, &["EXPIRE", &format!("s:{tag}"), "5000"]);
}

fn assert_same_data(master: &Node, replica: &Node) {
    wait_in_sync(master, replica, SYNC);
    let (m, r) = (dataset(master), dataset(replica));
    assert!(!m.is_empty());
    assert_eq!(m, r, "replica data differs from the master's");
}

fn sync_counter(node: &Node, field: &str) -> i64 {
    node.info(field).and_then(|v| v.parse().ok()).unwrap_or(-1)
}

/// Drops the replica's link to its master and waits for it to come back.
fn flap_link(master: &Node, replica: &Node, killed_on_master: bool) {
    if killed_on_master {
        let _: i64 = cmd(&mut master.connect(), &["CLIENT", "KILL", "TYPE", "replica"]);
    } else {
        let _: i64 = cmd(&mut replica.connect(), &["CLIENT", "KILL", "TYPE", "master"]);
    }
}

fn interop(master_kind: Kind, replica_kind: Kind, kill_on_master: bool) {
    let master = Node::start(master_kind, "master", MASTER);
    write_mixed(&master, "before");
    let replica = start_replica(replica_kind, "replica", &master);
    assert_same_data(&master, &replica);
    write_mixed(&master, "streamed");
    assert_same_data(&master, &replica);
    let partial_before = sync_counter(&master, "sync_partial_ok");
    flap_link(&master, &replica, kill_on_master);
    write_mixed(&master, "after-flap");
    wait::until("a partial resync after the link flap", SYNC, || {
        let n = sync_counter(&master, "sync_partial_ok");
        if n > partial_before {
            Ok(())
        } else {
            Err(format!("sync_partial_ok {n}"))
        }
    });
    assert_same_data(&master, &replica);
    assert_eq!(sync_counter(&master, "sync_full"), 1, "only the first sync may be full");
    // The replica refuses writes with Redis's words.
    let err = redis::cmd("SET").arg("k").arg("v").query::<()>(&mut replica.connect()).unwrap_err();
    assert!(err.to_string().contains("You can't write against a read only replica"), "{err}");
}

#[test]
fn warden_master_feeds_a_redis_replica() {
    interop(Kind::Warden, Kind::Redis, false);
}

#[test]
fn redis_master_feeds_a_warden_replica() {
    interop(Kind::Redis, Kind::Warden, true);
}

#[test]
fn warden_master_feeds_a_warden_replica() {
    interop(Kind::Warden, Kind::Warden, false);
}

#[test]
fn mixed_chain_and_promotion_keep_partial_resync() {
    // redis A → warden B → redis C (seed 4.2.3: B serves C from the stream it receives).
    let a = Node::start(Kind::Redis, "a-redis", MASTER);
    let b = start_replica(Kind::Warden, "b-warden", &a);
    let c = start_replica(Kind::Redis, "c-redis", &b);
    write_mixed(&a, "chain");
    assert_same_data(&a, &b);
    assert_same_data(&a, &c);
    assert_eq!(a.info("master_replid"), c.info("master_replid"), "C follows A's history");

    // Promote B: C continues with a partial resync through B's replid2.
    let partial = sync_counter(&b, "sync_partial_ok");
    let _: () = cmd(&mut b.connect(), &["REPLICAOF", "NO", "ONE"]);
    assert_eq!(b.info("master_replid2"), a.info("master_replid"));
    wait::until("C to continue from the promoted B", SYNC, || {
        let n = sync_counter(&b, "sync_partial_ok");
        if n > partial {
            Ok(())
        } else {
            Err(format!("B's sync_partial_ok {n}"))
        }
    });
    write_mixed(&b, "after-promotion");
    assert_same_data(&b, &c);
    assert_eq!(sync_counter(&b, "sync_full"), 1, "C must not need a full sync");

    // The old master A follows B, also without a full sync.
    let _: () = cmd(&mut a.connect(), &["REPLICAOF", "127.0.0.1", &b.port.to_string()]);
    wait::until("A to continue from B", SYNC, || {
        let n = sync_counter(&b, "sync_partial_ok");
        if n > partial + 1 {
            Ok(())
        } else {
            Err(format!("B's sync_partial_ok {n}"))
        }
    });
    assert_same_data(&b, &a);
    assert_eq!(sync_counter(&b, "sync_full"), 1);
}

#[test]
fn wait_counts_acks_from_redis_replicas() {
    let master = Node::start(Kind::Warden, "master", MASTER);
    let r1 = start_replica(Kind::Redis, "r1", &master);
    let r2 = start_replica(Kind::Redis, "r2", &master);
    wait_in_sync(&master, &r1, SYNC);
    wait_in_sync(&master, &r2, SYNC);
    let mut c = master.connect();
    // A fresh connection has written nothing: WAIT returns at once.
    assert_eq!(cmd::<i64>(&mut c, &["WAIT", "2", "0"]), 2);
    let _: () = cmd(&mut c, &["SET", "k", "v"]);
    assert_eq!(cmd::<i64>(&mut c, &["WAIT", "2", "10000"]), 2);
    // More replicas than exist: the timeout answers with the count so far.
    let _: () = cmd(&mut c, &["SET", "k", "w"]);
    assert_eq!(cmd::<i64>(&mut c, &["WAIT", "3", "300"]), 2);
    // With one replica stopped, only one can acknowledge.
    r2.proc.signal(libc::SIGSTOP);
    let _: () = cmd(&mut c, &["SET", "k", "x"]);
    assert_eq!(cmd::<i64>(&mut c, &["WAIT", "2", "500"]), 1);
    r2.proc.signal(libc::SIGCONT);
    let err = redis::cmd("WAIT").arg(1).arg(0).query::<i64>(&mut r1.connect()).unwrap_err();
    assert!(err.to_string().contains("WAIT cannot be used with replica instances"), "{err}");
}

#[test]
fn full_sync_under_writes_loses_and_duplicates_nothing() {
    let keys: usize =
        std::env::var("WARDEN_SYNC_KEYS").ok().and_then(|v| v.parse().ok()).unwrap_or(200_000);
    let master = Node::start(
        Kind::Warden,
        "master",
        &["--repl-diskless-sync-delay", "0", "--enable-debug-command", "local"],
    );
    let _: () = cmd(&mut master.connect(), &["DEBUG", "POPULATE", &keys.to_string()]);
    // Writers that are not idempotent: a lost or doubled command shows in the counters.
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let stop = stop.clone();
        let mut c = master.connect();
        std::thread::spawn(move || {
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let _: i64 = cmd(&mut c, &["INCR", "counter"]);
                let _: i64 = cmd(&mut c, &["RPUSH", "log", &n.to_string()]);
                let _: () = cmd(&mut c, &["SET", &format!("late:{}", n % 5000), &n.to_string()]);
                n += 1;
            }
            n
        })
    };
    let replica = start_replica(Kind::Warden, "replica", &master);
    wait::until("the replica's first sync", SYNC, || {
        match replica.info("master_link_status").as_deref() {
            Some("up") => Ok(()),
            other => Err(format!("{other:?}")),
        }
    });
    // Keep writing while the stream flows, then stop and compare.
    let streamed_from = sync_counter(&replica, "master_repl_offset");
    wait::until("some writes streamed after the sync", SYNC, || {
        let now = sync_counter(&replica, "master_repl_offset");
        if now > streamed_from + 10_000 {
            Ok(())
        } else {
            Err(format!("offset {now}"))
        }
    });
    stop.store(true, Ordering::Relaxed);
    let writes = writer.join().unwrap();
    wait_in_sync(&master, &replica, SYNC);
    let mut m = master.connect();
    let mut r = replica.connect();
    assert_eq!(cmd::<u64>(&mut r, &["GET", "counter"]), writes);
    assert_eq!(cmd::<u64>(&mut r, &["LLEN", "log"]), writes);
    assert_eq!(cmd::<usize>(&mut r, &["DBSIZE"]), cmd::<usize>(&mut m, &["DBSIZE"]));
    let log: Vec<u64> = cmd(&mut r, &["LRANGE", "log", "0", "-1"]);
    assert!(log.iter().enumerate().all(|(i, v)| *v == i as u64), "the list log is out of order");
    for probe in [0, keys / 2, keys - 1] {
        let key = format!("key:{probe}");
        assert_eq!(cmd::<String>(&mut r, &["GET", &key]), format!("value:{probe}"));
    }
}

#[test]
fn restarted_replica_resumes_with_psync() {
    let master = Node::start(Kind::Warden, "master", MASTER);
    let mut replica = start_replica(Kind::Warden, "replica", &master);
    write_mixed(&master, "one");
    wait_in_sync(&master, &replica, SYNC);
    // The dump file records the master's replid and our offset.
    let _: () = cmd(&mut replica.connect(), &["SAVE"]);
    replica.proc.kill();
    write_mixed(&master, "while-down");
    let partial = sync_counter(&master, "sync_partial_ok");
    replica.proc.restart();
    wait::until("the restarted replica to continue", SYNC, || {
        let n = sync_counter(&master, "sync_partial_ok");
        if n > partial {
            Ok(())
        } else {
            Err(format!("sync_partial_ok {n}"))
        }
    });
    assert_same_data(&master, &replica);
    assert_eq!(sync_counter(&master, "sync_full"), 1);
}

#[test]
fn stale_data_and_min_replicas_refusals() {
    let master = Node::start(Kind::Warden, "master", &["--min-replicas-to-write", "1"]);
    let mut c = master.connect();
    let err = redis::cmd("SET").arg("k").arg("v").query::<()>(&mut c).unwrap_err();
    assert!(err.to_string().contains("Not enough good replicas to write"), "{err}");
    assert_eq!(err.code(), Some("NOREPLICAS"));
    let replica = {
        let args = replica_of(&master, &["--replica-serve-stale-data", "no"]);
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        Node::start(Kind::Warden, "replica", &refs)
    };
    wait::until("the master to count a good replica", SYNC, || {
        match redis::cmd("SET").arg("k").arg("v").query::<()>(&mut c) {
            Ok(()) => Ok(()),
            Err(e) => Err(e.to_string()),
        }
    });
    wait_in_sync(&master, &replica, SYNC);
    drop(master);
    let mut r = replica.connect();
    wait::until("the replica to refuse stale reads", SYNC, || {
        match redis::cmd("GET").arg("k").query::<Option<String>>(&mut r) {
            Err(e) if e.to_string().contains("Link with MASTER is down") => Ok(()),
            other => Err(format!("{other:?}")),
        }
    });
    // INFO, ROLE and REPLICAOF still work without a master.
    let role: Vec<redis::Value> = cmd(&mut r, &["ROLE"]);
    assert_eq!(role.len(), 5);
    let _: () = cmd(&mut r, &["REPLICAOF", "NO", "ONE"]);
    assert_eq!(cmd::<String>(&mut r, &["GET", "k"]), "v");
}

/// FAILOVER TO: writes acknowledged before and during the handover are all on the new
/// master; the old master follows it with a partial resync.
fn coordinated_failover(master_kind: Kind, target_kind: Kind) {
    let master = Node::start(master_kind, "old-master", MASTER);
    let target = start_replica(target_kind, "target", &master);
    let other = start_replica(Kind::Redis, "other", &master);
    wait_in_sync(&master, &target, SYNC);
    wait_in_sync(&master, &other, SYNC);
    // A writer that records every acknowledged INCR until writes are refused.
    let writer = {
        let mut c = master.connect();
        std::thread::spawn(move || {
            let mut acked = 0i64;
            loop {
                match redis::cmd("INCR").arg("counter").query::<i64>(&mut c) {
                    Ok(v) => acked = v,
                    Err(_) => return acked,
                }
            }
        })
    };
    wait::until("some writes before the failover", SYNC, || {
        let v: Option<i64> = redis::cmd("GET").arg("counter").query(&mut master.connect()).ok();
        if v.unwrap_or(0) > 200 {
            Ok(())
        } else {
            Err(format!("{v:?}"))
        }
    });
    let to = target.port.to_string();
    let _: () =
        cmd(&mut master.connect(), &["FAILOVER", "TO", "127.0.0.1", &to, "TIMEOUT", "10000"]);
    wait::until("the target to become master", SYNC, || {
        match (target.info("role").as_deref(), master.info("role").as_deref()) {
            (Some("master"), Some("slave")) => Ok(()),
            other => Err(format!("{other:?}")),
        }
    });
    let acked = writer.join().unwrap();
    let on_target: i64 = cmd(&mut target.connect(), &["GET", "counter"]);
    assert!(on_target >= acked, "acknowledged {acked} increments, the new master has {on_target}");
    assert_eq!(sync_counter(&target, "sync_full"), 0, "the old master must continue partially");
    let _: i64 = cmd(&mut target.connect(), &["INCR", "counter"]);
    wait_in_sync(&target, &master, SYNC);
    assert_eq!(dataset(&target), dataset(&master));
}

#[test]
fn failover_between_warden_nodes() {
    coordinated_failover(Kind::Warden, Kind::Warden);
}

#[test]
fn redis_master_fails_over_to_a_warden_replica() {
    coordinated_failover(Kind::Redis, Kind::Warden);
}

#[test]
fn warden_master_fails_over_to_a_redis_replica() {
    coordinated_failover(Kind::Warden, Kind::Redis);
}

#[test]
fn shutdown_lets_replicas_catch_up_first() {
    let master = Node::start(Kind::Warden, "master", MASTER);
    let replica = start_replica(Kind::Warden, "replica", &master);
    wait_in_sync(&master, &replica, SYNC);
    // The replica is frozen while the writes happen and the SHUTDOWN arrives: without the
    // catch-up wait, the master would be gone before the replica could read them.
    replica.proc.signal(libc::SIGSTOP);
    let mut c = master.connect();
    let mut pipe = redis::pipe();
    for i in 0..5000 {
        pipe.cmd("SET").arg(format!("k{i}")).arg(i).ignore();
    }
    let _: () = pipe.query(&mut c).unwrap();
    let resume = {
        let pid = replica.proc.pid().unwrap();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(700));
            // SAFETY: kill(2) on our own child's pid.
            unsafe { libc::kill(pid as i32, libc::SIGCONT) };
        })
    };
    let started = std::time::Instant::now();
    let _ = redis::cmd("SHUTDOWN").arg("NOSAVE").query::<()>(&mut c);
    resume.join().unwrap();
    let mut master = master;
    master.proc.wait_exit(SYNC).expect("the master exits");
    assert!(started.elapsed() >= Duration::from_millis(600), "SHUTDOWN did not wait");
    let mut r = replica.connect();
    assert_eq!(cmd::<i64>(&mut r, &["DBSIZE"]), 5000, "the replica missed writes");
}

#[test]
fn waitaof_counts_local_and_replica_fsyncs() {
    let master = Node::start(
        Kind::Warden,
        "master",
        &["--repl-diskless-sync-delay", "0", "--appendonly", "yes", "--appendfsync", "always"],
    );
    let with_aof = {
        let args = replica_of(&master, &["--appendonly", "yes"]);
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        Node::start(Kind::Warden, "replica-aof", &refs)
    };
    // A Redis 7.0 replica never sends FACK, so it can satisfy WAIT but not WAITAOF.
    let redis_replica = start_replica(Kind::Redis, "replica-redis", &master);
    wait_in_sync(&master, &with_aof, SYNC);
    wait_in_sync(&master, &redis_replica, SYNC);
    let mut c = master.connect();
    let _: () = cmd(&mut c, &["SET", "k", "v"]);
    assert_eq!(cmd::<Vec<i64>>(&mut c, &["WAITAOF", "1", "1", "5000"]), [1, 1]);
    let _: () = cmd(&mut c, &["SET", "k", "w"]);
    // Two replicas asked for, one can answer: the timeout replies with what was reached (the
    // AOF replica fsyncs once a second, so give it two).
    assert_eq!(cmd::<Vec<i64>>(&mut c, &["WAITAOF", "1", "2", "2500"]), [1, 1]);
    assert_eq!(cmd::<i64>(&mut c, &["WAIT", "2", "5000"]), 2);
    // Without the AOF, numlocal cannot be asked for.
    let plain = Node::start(Kind::Warden, "plain", MASTER);
    let err = redis::cmd("WAITAOF").arg(1).arg(0).arg(0).query::<Vec<i64>>(&mut plain.connect());
    assert!(format!("{err:?}").contains("appendonly is disabled"), "{err:?}");
}

#[test]
fn a_replica_aof_restarts_from_the_synced_data() {
    let master = Node::start(Kind::Warden, "master", MASTER);
    let _: () = cmd(&mut master.connect(), &["SET", "from-master", "1"]);
    // A node with its own data and an AOF becomes a replica: the full sync replaces the data,
    // and its AOF must start over from what it received.
    let mut node = Node::start(Kind::Warden, "replica", &["--appendonly", "yes"]);
    let mut c = node.connect();
    let _: () = cmd(&mut c, &["SET", "stale-local", "1"]);
    let _: () = cmd(&mut c, &["REPLICAOF", "127.0.0.1", &master.port.to_string()]);
    wait_in_sync(&master, &node, SYNC);
    let _: () = cmd(&mut master.connect(), &["SET", "streamed", "1"]);
    wait_in_sync(&master, &node, SYNC);
    node.proc.kill();
    node.proc.restart();
    // Restarted without REPLICAOF (it was set at run time): just its AOF.
    let mut c = wait::until("the replica to restart", SYNC, || node.try_connect());
    let mut keys: Vec<String> = cmd(&mut c, &["KEYS", "*"]);
    keys.sort();
    assert_eq!(keys, ["from-master", "streamed"]);
}

/// A master with `keys` keys from DEBUG POPULATE, and a client of it.
fn populated_master(keys: &str) -> (Node, redis::Connection) {
    let master = Node::start(
        Kind::Warden,
        "master",
        &["--enable-debug-command", "yes", "--repl-diskless-sync-delay", "0"],
    );
    let mut c = master.connect();
    let _: () = cmd(&mut c, &["DEBUG", "POPULATE", keys]);
    (master, c)
}

/// A replica that asks `master` for a diskless full sync, reads the first 64 KiB and then
/// stops reading: the transfer waits on its socket, holding the frozen view, until it is
/// dropped.
fn stalled_diskless_replica(master: &Node) -> std::net::TcpStream {
    use std::io::{BufRead, BufReader, Read, Write};
    let stream = std::net::TcpStream::connect(("127.0.0.1", master.port)).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut writer = stream.try_clone().unwrap();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    writer.write_all(b"REPLCONF capa eof capa psync2\r\nPSYNC ? -1\r\n").unwrap();
    let mut line = String::new();
    reader.read_line(&mut line).unwrap();
    assert_eq!(line, "+OK\r\n");
    line.clear();
    reader.read_line(&mut line).unwrap();
    assert!(line.starts_with("+FULLRESYNC"), "{line}");
    let mut some = vec![0u8; 64 * 1024];
    reader.read_exact(&mut some).unwrap();
    stream
}

/// A diskless full sync sends a frozen snapshot chunk by chunk. While it does, BGSAVE answers
/// Redis's "already in progress" (one snapshot at a time, as Redis runs one RDB child; writing
/// the file under the lock instead would stall every client). A replica that leaves in the
/// middle releases the frozen view, so the next BGSAVE freezes its own (INFO reports its key
/// total).
#[test]
fn a_replica_leaving_mid_transfer_releases_the_frozen_view() {
    let (master, mut c) = populated_master("300000");
    {
        let _stalled = stalled_diskless_replica(&master);
        // The replica reads no more: the transfer waits on its socket, holding the view.
        let busy = redis::cmd("BGSAVE").query::<String>(&mut c).unwrap_err();
        assert_eq!(
            busy.detail(),
            Some("Background save already in progress"),
            "BGSAVE during the transfer: {busy:?}"
        );
        assert_eq!(master.info("rdb_bgsave_in_progress").as_deref(), Some("0"));
        // Dropped here: the replica goes away with most of the snapshot unsent.
    }
    let total = |c: &mut redis::Connection| -> String {
        let info: String = cmd(c, &["INFO", "persistence"]);
        let field = info.lines().find_map(|l| l.strip_prefix("current_save_keys_total:"));
        field.unwrap_or("?").to_string()
    };
    wait::until("a BGSAVE to freeze the dataset itself", Duration::from_secs(30), || {
        if master.info("rdb_bgsave_in_progress").as_deref() == Some("1") {
            return Err("a save is still running".to_string());
        }
        if let Err(e) = redis::cmd("BGSAVE").query::<String>(&mut c) {
            return Err(format!("BGSAVE: {e}"));
        }
        match total(&mut c).as_str() {
            "300000" => Ok(()),
            other => Err(format!("current_save_keys_total:{other}")),
        }
    });
}

/// One frozen view at a time also holds for the AOF: BGREWRITEAOF while a replica's transfer
/// holds the view is scheduled (as in Redis, where a child is already running), not written
/// under the keyspace lock; it runs once the view is released, and its base holds the data.
#[test]
fn an_aof_rewrite_during_a_transfer_is_scheduled_until_the_view_is_released() {
    let master = Node::start(
        Kind::Warden,
        "master",
        &[
            "--repl-diskless-sync-delay",
            "0",
            "--appendonly",
            "yes",
            "--enable-debug-command",
            "yes",
        ],
    );
    let mut c = master.connect();
    let _: () = cmd(&mut c, &["DEBUG", "POPULATE", "300000"]);
    let rewrites = |m: &Node| m.info("aof_rewrites").unwrap_or_default();
    wait::until("the AOF to be on", Duration::from_secs(30), || {
        match master.info("aof_rewrite_in_progress").as_deref() {
            Some("0") => Ok(()),
            other => Err(format!("aof_rewrite_in_progress:{other:?}")),
        }
    });
    let before = rewrites(&master);
    {
        let _stalled = stalled_diskless_replica(&master);
        let reply: String = cmd(&mut c, &["BGREWRITEAOF"]);
        assert_eq!(reply, "Background append only file rewriting scheduled");
        assert_eq!(master.info("aof_rewrite_scheduled").as_deref(), Some("1"));
        let again = redis::cmd("BGREWRITEAOF").query::<String>(&mut c).unwrap_err();
        assert_eq!(
            again.detail(),
            Some("Background append only file rewriting already in progress")
        );
        // Writers are not held up meanwhile.
        let _: () = cmd(&mut c, &["SET", "during", "1"]);
        assert_eq!(rewrites(&master), before);
    }
    wait::until("the scheduled rewrite to run", Duration::from_secs(30), || {
        let now = (rewrites(&master), master.info("aof_rewrite_scheduled"));
        if now.0 != before && now.1.as_deref() == Some("0") {
            Ok(())
        } else {
            Err(format!("aof_rewrites:{} aof_rewrite_scheduled:{:?}", now.0, now.1))
        }
    });
    let _: () = cmd(&mut c, &["SET", "after", "1"]);
    // The new base and incremental file hold everything: a restart loads all of it.
    let mut master = master;
    master.proc.restart();
    let dbsize =
        wait::until("the restarted master to load its AOF", Duration::from_secs(30), || {
            let mut c = master.try_connect()?;
            redis::cmd("DBSIZE").query::<i64>(&mut c).map_err(|e| e.to_string())
        });
    assert_eq!(dbsize, 300_002, "{}", master.proc.log());
}

/// A disk-based full sync (`repl-diskless-sync no`) writes its frozen snapshot to dump.rdb in
/// chunks and sends that file. While another snapshot holds the frozen view (here a replica
/// that stopped reading its diskless transfer), a new replica waits for it instead of the
/// master serialising its dataset under the lock; it then syncs, to warden-node and Redis
/// replicas alike, and the master's dump.rdb is the snapshot it sent.
#[test]
fn a_disk_based_sync_waits_for_the_frozen_view_then_sends_dump_rdb() {
    let (master, mut c) = populated_master("200000");
    write_mixed(&master, "disk");
    let stalled = stalled_diskless_replica(&master);
    let _: () = cmd(&mut c, &["CONFIG", "SET", "repl-diskless-sync", "no"]);
    let dump = master.proc.dir().join("dump.rdb");
    let _ = std::fs::remove_file(&dump);
    let warden = start_replica(Kind::Warden, "replica-warden", &master);
    let redis = start_replica(Kind::Redis, "replica-redis", &master);
    wait::until("both replicas waiting for the snapshot", SYNC, || {
        let info: String = cmd(&mut c, &["INFO", "replication"]);
        let waiting = info.matches("state=wait_bgsave").count();
        if waiting == 2 {
            Ok(())
        } else {
            Err(format!("{waiting} replicas in wait_bgsave: {info}"))
        }
    });
    // Writes keep coming while the replicas wait; the master keeps serving them.
    for i in 0..200 {
        let _: () = cmd(&mut c, &["SET", &format!("while-waiting:{i}"), "x"]);
    }
    assert!(!dump.exists(), "no snapshot may be written while the view is held");
    drop(stalled);
    assert_same_data(&master, &warden);
    assert_same_data(&master, &redis);
    wait::until("dump.rdb from the disk-based sync", SYNC, || {
        dump.exists().then_some(()).ok_or_else(|| "no dump.rdb yet".to_string())
    });
}

/// PUBLISH and SPUBLISH go down the replication stream, as in Redis: a subscriber of a
/// replica (here a Redis replica of a warden-node master, and a warden-node replica of it in a
/// chain) receives what was published on the master, and the offsets still agree.
#[test]
fn publish_reaches_subscribers_of_replicas() {
    let master = Node::start(Kind::Warden, "master", MASTER);
    let redis = start_replica(Kind::Redis, "redis-replica", &master);
    let chained = start_replica(Kind::Warden, "chained-replica", &redis);
    wait_in_sync(&master, &redis, Duration::from_secs(30));
    wait_in_sync(&redis, &chained, Duration::from_secs(30));
    let mut c = master.connect();
    // (subscribe with, count with, publish with, the message's kind)
    let families = [
        ("SUBSCRIBE", "NUMSUB", "PUBLISH", "message"),
        ("SSUBSCRIBE", "SHARDNUMSUB", "SPUBLISH", "smessage"),
    ];
    for (subscribe_with, count_with, publish_with, kind) in families {
        let subscribe = |node: &Node| {
            let mut sub = node.connect();
            sub.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            let _: redis::Value = redis::cmd(subscribe_with).arg("news").query(&mut sub).unwrap();
            sub
        };
        let mut on_redis = subscribe(&redis);
        let mut on_chained = subscribe(&chained);
        // The subscribers are registered once the replicas report them.
        for node in [&redis, &chained] {
            wait::until("the subscriber to be registered", Duration::from_secs(10), || {
                let mut c = node.connect();
                let n: (String, i64) =
                    redis::cmd("PUBSUB").arg(count_with).arg("news").query(&mut c).unwrap();
                if n.1 == 1 {
                    Ok(())
                } else {
                    Err(format!("{count_with}: {n:?}"))
                }
            });
        }
        let receivers: i64 = cmd(&mut c, &[publish_with, "news", "hello"]);
        assert_eq!(receivers, 0, "{publish_with}: nobody subscribes on the master itself");
        for sub in [&mut on_redis, &mut on_chained] {
            let msg = sub.recv_response().unwrap();
            assert_eq!(
                msg,
                redis::Value::Array(vec![
                    redis::Value::BulkString(kind.as_bytes().to_vec()),
                    redis::Value::BulkString(b"news".to_vec()),
                    redis::Value::BulkString(b"hello".to_vec()),
                ]),
                "{publish_with}"
            );
        }
        wait_in_sync(&master, &redis, Duration::from_secs(30));
        wait_in_sync(&redis, &chained, Duration::from_secs(30));
    }
}

/// A master stopping on SIGTERM waits (up to shutdown-timeout) for its replicas to catch up;
/// a replica that disconnects meanwhile ends the wait for it, as in Redis, instead of the
/// master sitting out the whole timeout (60 s here).
#[test]
fn a_stopping_master_does_not_wait_for_a_replica_that_left() {
    let mut master = Node::start(
        Kind::Warden,
        "master",
        &["--repl-diskless-sync-delay", "0", "--shutdown-timeout", "60"],
    );
    let mut replica = start_replica(Kind::Warden, "replica", &master);
    wait_in_sync(&master, &replica, Duration::from_secs(30));
    let mut c = master.connect();
    let _: () = cmd(&mut c, &["SET", "k", "v"]);
    // The replica can no longer acknowledge anything; the master starts waiting for it.
    replica.proc.signal(libc::SIGSTOP);
    master.proc.signal(libc::SIGTERM);
    wait::until("the master to wait for its replica", Duration::from_secs(10), || {
        if master.proc.log().contains("received SIGTERM") || master.proc.log().contains("shutdown")
        {
            Ok(())
        } else {
            Err(master.proc.log())
        }
    });
    replica.proc.kill();
    let status = master.proc.wait_exit(Duration::from_secs(30));
    assert!(
        status.is_some(),
        "the master still waits for a replica that left:\n{}",
        master.proc.log()
    );
}

/// A command from the master that fails on the replica means their data diverged (here: a
/// writable replica overwrote a counter with text). The replica logs it and counts it in
/// `unexpected_error_replies`; once it is read-only, `propagation-error-behavior
/// panic-on-replicas` makes it stop rather than serve diverged data. Each kind of replica
/// behaves as redis-server does.
#[test]
fn a_failed_command_from_the_master_is_reported_and_can_stop_the_replica() {
    for kind in [Kind::Redis, Kind::Warden] {
        let master = Node::start(Kind::Redis, "master", MASTER);
        let args = replica_of(&master, &["--replica-read-only", "no"]);
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        let mut replica = Node::start(kind, &format!("{kind:?}-replica"), &refs);
        let mut m = master.connect();
        let _: () = cmd(&mut m, &["SET", "counter", "1"]);
        wait_in_sync(&master, &replica, SYNC);
        let _: () = cmd(&mut replica.connect(), &["SET", "counter", "text"]);
        let _: i64 = cmd(&mut m, &["INCR", "counter"]);
        wait::until("the replica to count the failed INCR", SYNC, || {
            match replica.info("unexpected_error_replies").as_deref() {
                Some("1") => Ok(()),
                other => Err(format!("unexpected_error_replies {other:?}")),
            }
        });
        let mut r = replica.connect();
        let _: () = cmd(&mut r, &["CONFIG", "SET", "replica-read-only", "yes"]);
        let _: () =
            cmd(&mut r, &["CONFIG", "SET", "propagation-error-behavior", "panic-on-replicas"]);
        let _: i64 = cmd(&mut m, &["INCR", "counter"]);
        let status = replica.proc.wait_exit(SYNC);
        assert!(status.is_some_and(|s| !s.success()), "{kind:?} replica: {status:?}");
    }
}
