//! Lua scripting on real processes: what real clients do with it (the `redis` crate's Script,
//! redis-py's Lock), and a script's writes reaching a replica — a Redis one — as their effects.

use std::time::Duration;

use integration_tests::nodes::{cmd, dataset, wait_in_sync, Kind, Node};

/// The `redis` crate's Script sends EVALSHA and falls back to EVAL on NOSCRIPT.
#[test]
fn the_redis_crate_runs_scripts_by_sha_with_eval_as_fallback() {
    let node = Node::start(Kind::Warden, "node", &[]);
    let mut c = node.connect();
    let script = redis::Script::new(
        "redis.call('incrby', KEYS[1], ARGV[1]) return redis.call('get', KEYS[1])",
    );
    let first: String = script.key("counter").arg(5).invoke(&mut c).expect("first run");
    assert_eq!(first, "5");
    let exists: Vec<i64> = cmd(&mut c, &["SCRIPT", "EXISTS", script.get_hash()]);
    assert_eq!(exists, [1], "EVAL cached the script under its SHA1");
    let second: String = script.key("counter").arg(5).invoke(&mut c).expect("second run");
    assert_eq!(second, "10");
    let _: () = cmd(&mut c, &["SCRIPT", "FLUSH"]);
    let third: String = script.key("counter").arg(1).invoke(&mut c).expect("after a flush");
    assert_eq!(third, "11");
}

/// redis-py's Lock releases and extends through Lua scripts (EVALSHA of cached scripts).
#[test]
fn redis_py_lock_acquires_extends_and_releases() {
    let available = std::process::Command::new("python3")
        .args(["-c", "import redis"])
        .status()
        .is_ok_and(|s| s.success());
    assert!(available, "python3 cannot import redis (scripts/test installs it: pip install redis)");
    let node = Node::start(Kind::Warden, "node", &[]);
    let script = format!(
        "import redis\n\
         r = redis.Redis(port={})\n\
         lock = r.lock('resource', timeout=10)\n\
         assert lock.acquire(blocking=False)\n\
         assert not r.lock('resource', timeout=10).acquire(blocking=False)\n\
         assert lock.extend(5)\n\
         assert lock.owned()\n\
         lock.release()\n\
         assert r.get('resource') is None\n\
         try:\n    lock.release()\n    raise SystemExit('released twice')\n\
         except redis.exceptions.LockError:\n    pass\n\
         other = r.lock('resource', timeout=10)\n\
         assert other.acquire(blocking=False)\n\
         r.set('resource', 'someone-else')\n\
         try:\n    other.release()\n    raise SystemExit('released a lock it no longer owned')\n\
         except redis.exceptions.LockNotOwnedError:\n    pass\n\
         print('ok')\n",
        node.port
    );
    let out =
        std::process::Command::new("python3").args(["-c", &script]).output().expect("python3");
    assert!(
        out.status.success(),
        "redis-py Lock failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        node.proc.log()
    );
}

/// A script that reads the clock and writes several keys reaches a Redis replica as the
/// commands it ran, in one MULTI/EXEC: the replica ends with exactly the master's data.
#[test]
fn script_writes_reach_a_redis_replica_as_their_effects() {
    let master = Node::start(Kind::Warden, "master", &["--repl-diskless-sync-delay", "0"]);
    let replica = Node::start(Kind::Redis, "replica", &["--replicaof", &master.addr()]);
    wait_in_sync(&master, &replica, Duration::from_secs(30));
    let mut c = master.connect();
    let body = "local t = redis.call('time') \
                redis.call('set', KEYS[1], t[1] .. '.' .. t[2]) \
                redis.call('rpush', KEYS[2], math.random(1000000)) \
                redis.call('incr', KEYS[3]) \
                return redis.call('get', KEYS[1])";
    for _ in 0..20 {
        let _: String = cmd(&mut c, &["EVAL", body, "3", "at", "randoms", "runs"]);
    }
    // Scripts inside a transaction (one MULTI/EXEC unit in all), and one that selects
    // another database (only for itself).
    let two_writes = "redis.call('incr', KEYS[1]) return redis.call('incr', KEYS[1])";
    let mut tx = redis::pipe();
    tx.atomic().cmd("EVAL").arg(two_writes).arg(1).arg("in-tx");
    tx.cmd("EVAL").arg(two_writes).arg(1).arg("in-tx").cmd("INCR").arg("in-tx");
    let (_, _, total): (i64, i64, i64) = tx.query(&mut c).expect("transaction");
    assert_eq!(total, 5);
    let elsewhere = "redis.call('select', 2) return redis.call('set', KEYS[1], 'db2')";
    let _: () = cmd(&mut c, &["EVAL", elsewhere, "1", "selected"]);
    let _: () = cmd(&mut c, &["SET", "after-select", "db0"]);
    // A script that only reads propagates nothing.
    let before = master.offset();
    let _: i64 = cmd(&mut c, &["EVAL", "return redis.call('llen', KEYS[1])", "1", "randoms"]);
    assert_eq!(master.offset(), before, "a read-only script moved the replication offset");
    wait_in_sync(&master, &replica, Duration::from_secs(30));
    assert_eq!(dataset(&master), dataset(&replica));
    assert_eq!(cmd::<i64>(&mut replica.connect(), &["GET", "runs"]), 20);
    // Redis logs any command of its master's stream it had to refuse (a nested MULTI …).
    assert!(!replica.proc.log().contains("CRITICAL"), "{}", replica.proc.log());
}
