//! `maxmemory` on a real warden-node process (its allocator counts the memory in use): writes
//! refused with -OOM under `noeviction`, each eviction policy choosing the keys Redis's would,
//! and evictions reaching replicas as deletions.

use std::time::Duration;

use integration_tests::nodes::{cmd, wait_in_sync, Kind, Node};
use integration_tests::wait;
use redis::ConnectionLike;

const OOM: &str = "OOM command not allowed when used memory > 'maxmemory'.";
const VALUE: &str = "vvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvv";

/// Writes `SET {prefix}:{i} VALUE` for i in `range` in one pipeline, returning the replies
/// (OK, or the error text).
fn fill(c: &mut redis::Connection, prefix: &str, range: std::ops::Range<u32>) -> Vec<String> {
    let mut pipe = redis::pipe();
    for i in range {
        pipe.cmd("SET").arg(format!("{prefix}:{i}")).arg(VALUE);
    }
    // Sent raw: a pipeline query would turn the first error reply into an error.
    let count = pipe.cmd_iter().count();
    let replies = c.req_packed_commands(&pipe.get_packed_pipeline(), 0, count).expect("pipeline");
    replies
        .into_iter()
        .map(|v| match v {
            redis::Value::Okay => "OK".to_string(),
            redis::Value::ServerError(e) => {
                format!("{} {}", e.code(), e.details().unwrap_or_default())
            }
            other => format!("{other:?}"),
        })
        .collect()
}

/// How many of `{prefix}:{i}`, i in `range`, exist.
fn surviving(c: &mut redis::Connection, prefix: &str, range: std::ops::Range<u32>) -> usize {
    let mut pipe = redis::pipe();
    for i in range {
        pipe.cmd("EXISTS").arg(format!("{prefix}:{i}"));
    }
    let found: Vec<i64> = pipe.query(c).expect("pipeline");
    found.iter().filter(|&&n| n == 1).count()
}

fn info_int(node: &Node, field: &str) -> i64 {
    node.info(field).and_then(|v| v.parse().ok()).unwrap_or(-1)
}

/// Waits until every key written so far has been idle for at least two seconds, so keys
/// written next are younger by the LRU clock (which, as Redis's, counts whole seconds).
fn wait_idle(c: &mut redis::Connection, key: &str) {
    wait::until("the old keys to be idle for 2 s", Duration::from_secs(10), || {
        let idle: i64 = cmd(c, &["OBJECT", "IDLETIME", key]);
        if idle >= 2 {
            Ok(())
        } else {
            Err(format!("idle {idle} s"))
        }
    });
}

fn noeviction_refuses_writes_with_oom_and_serves_everything_else(kind: Kind) {
    let node = Node::start(kind, "node", &["--maxmemory", "4mb"]);
    let mut c = node.connect();
    let replies = fill(&mut c, "k", 0..40_000);
    let first_refusal = replies.iter().position(|r| r != "OK").expect("some write was refused");
    assert!(first_refusal > 1000, "refused too early, at write {first_refusal}");
    assert_eq!(replies[first_refusal], OOM);
    // Buffers drain and refill, so a write may still fit here and there after the first
    // refusal; once full, the rest are refused.
    assert!(replies[replies.len() - 1000..].iter().all(|r| r == OOM), "writes kept succeeding");
    let accepted = replies.iter().filter(|r| *r == "OK").count();
    let stored: i64 = cmd(&mut c, &["DBSIZE"]);
    assert_eq!(stored as usize, accepted, "a refused write stored its key");
    // Reads, deletes and commands that cannot grow memory still run.
    let value: String = cmd(&mut c, &["GET", "k:0"]);
    assert_eq!(value, VALUE);
    let _: String = cmd(&mut c, &["INFO"]);
    // Well under what is stored, so buffers draining cannot bring memory back under the
    // limit: inside MULTI everything but EXEC/DISCARD is refused, so the transaction fails.
    let _: () = cmd(&mut c, &["CONFIG", "SET", "maxmemory", "1mb"]);
    let refused: Result<(), _> = redis::cmd("SET").arg("one").arg("more").query(&mut c);
    assert_eq!(refused.unwrap_err().code(), Some("OOM"));
    // A script may read, but its writes that may grow memory are refused.
    let read: String = cmd(&mut c, &["EVAL", "return redis.call('get', KEYS[1])", "1", "k:0"]);
    assert_eq!(read, VALUE);
    let write: Result<(), _> =
        redis::cmd("EVAL").arg("return redis.call('set', 'x', 'y')").arg(0).query(&mut c);
    let write = write.unwrap_err();
    assert_eq!(write.code(), Some("OOM"), "{write}");
    let _: () = cmd(&mut c, &["MULTI"]);
    let queued: Result<String, _> = redis::cmd("GET").arg("k:0").query(&mut c);
    assert_eq!(queued.unwrap_err().code(), Some("OOM"));
    let exec: Result<redis::Value, _> = redis::cmd("EXEC").query(&mut c);
    assert_eq!(exec.unwrap_err().code(), Some("EXECABORT"));
    assert_eq!(info_int(&node, "evicted_keys"), 0);
    assert!(info_int(&node, "current_eviction_exceeded_time") >= 0);
    // Deleting makes room again.
    let mut pipe = redis::pipe();
    for i in 0..accepted / 2 {
        pipe.cmd("DEL").arg(format!("k:{i}")).ignore();
    }
    let _: () = pipe.query(&mut c).expect("deletes");
    let _: () = cmd(&mut c, &["CONFIG", "SET", "maxmemory", "4mb"]);
    let _: () = cmd(&mut c, &["SET", "after", "delete"]);
    // A higher limit takes effect at once.
    let _: () = cmd(&mut c, &["CONFIG", "SET", "maxmemory", "0"]);
    assert!(fill(&mut c, "more", 0..20_000).iter().all(|r| r == "OK"));
}

fn allkeys_lru_evicts_the_idlest_keys(kind: Kind) {
    let node = Node::start(
        kind,
        "node",
        &["--maxmemory", "4mb", "--maxmemory-policy", "allkeys-lru", "--maxmemory-samples", "10"],
    );
    let mut c = node.connect();
    assert!(fill(&mut c, "old", 0..10_000).iter().all(|r| r == "OK"));
    wait_idle(&mut c, "old:0");
    let replies = fill(&mut c, "new", 0..16_000);
    assert!(replies.iter().all(|r| r == "OK"), "a write was refused: {:?}", replies.last());
    let (old, new) = (surviving(&mut c, "old", 0..10_000), surviving(&mut c, "new", 0..16_000));
    let evicted = info_int(&node, "evicted_keys") as usize;
    assert!(old < 9_000, "only {} of the idle keys were evicted", 10_000 - old);
    // Read last: the EXISTS pipelines' own buffers may have evicted a few more.
    assert!(evicted >= (10_000 - old) + (16_000 - new), "old {old} new {new} evicted {evicted}");
    // Sampling is approximate, as in Redis: nearly all evictions must be of the idle keys.
    assert!(new >= 15_500, "only {new} of 16000 recent keys survived ({old} old ones did)");
    let used = info_int(&node, "used_memory");
    assert!(used <= 4 * 1024 * 1024 + 64 * 1024, "used_memory {used} stays near maxmemory");
}

fn allkeys_lfu_keeps_the_frequently_used_keys(kind: Kind) {
    let node = Node::start(
        kind,
        "node",
        &["--maxmemory", "4mb", "--maxmemory-policy", "allkeys-lfu", "--maxmemory-samples", "10"],
    );
    let mut c = node.connect();
    assert!(fill(&mut c, "hot", 0..5_000).iter().all(|r| r == "OK"));
    // Read in rounds: one pipeline of every read would hold megabytes of replies, which count
    // toward maxmemory (in Redis too) and would evict the very keys being read.
    for _ in 0..20 {
        let mut pipe = redis::pipe();
        for i in 0..5_000 {
            pipe.cmd("EXISTS").arg(format!("hot:{i}")).ignore();
            pipe.cmd("STRLEN").arg(format!("hot:{i}")).ignore();
        }
        let _: () = pipe.query(&mut c).expect("reads");
    }
    let freq: i64 = cmd(&mut c, &["OBJECT", "FREQ", "hot:0"]);
    assert!(freq > 5, "a key read 20 times has LFU counter {freq}");
    let replies = fill(&mut c, "cold", 0..30_000);
    assert!(replies.iter().all(|r| r == "OK"), "a write was refused: {:?}", replies.last());
    assert!(info_int(&node, "evicted_keys") > 5000);
    let hot = surviving(&mut c, "hot", 0..5_000);
    assert!(hot >= 4_900, "only {hot} of 5000 frequently read keys survived");
}

fn volatile_policies_evict_only_keys_with_a_ttl(kind: Kind) {
    let node =
        Node::start(kind, "node", &["--maxmemory", "4mb", "--maxmemory-policy", "volatile-ttl"]);
    let mut c = node.connect();
    // Keys with a TTL, the later ones expiring later.
    let mut pipe = redis::pipe();
    for i in 0..5_000u32 {
        pipe.cmd("SET").arg(format!("ttl:{i}")).arg(VALUE).arg("EX").arg(10_000 + i).ignore();
    }
    let _: () = pipe.query(&mut c).expect("writes");
    let replies = fill(&mut c, "plain", 0..40_000);
    let refused =
        replies.iter().position(|r| r != "OK").expect("writes are refused once no key has a TTL");
    assert_eq!(replies[refused], OOM);
    assert_eq!(
        surviving(&mut c, "plain", 0..refused as u32),
        refused,
        "a key without a TTL was evicted"
    );
    assert_eq!(
        surviving(&mut c, "ttl", 0..5_000),
        0,
        "keys with a TTL are evicted before writes fail"
    );
    assert_eq!(info_int(&node, "evicted_keys"), 5_000);
}

fn volatile_ttl_evicts_the_nearest_expiry_first(kind: Kind) {
    let node = Node::start(
        kind,
        "node",
        &["--maxmemory", "4mb", "--maxmemory-policy", "volatile-ttl", "--maxmemory-samples", "10"],
    );
    let mut c = node.connect();
    let mut pipe = redis::pipe();
    for i in 0..10_000u32 {
        // Even keys expire in hours, odd ones in days.
        let ttl = if i % 2 == 0 { 3_600 + i } else { 864_000 + i };
        pipe.cmd("SET").arg(format!("t:{i}")).arg(VALUE).arg("EX").arg(ttl).ignore();
    }
    let _: () = pipe.query(&mut c).expect("writes");
    let replies = fill(&mut c, "plain", 0..12_000);
    assert!(replies.iter().all(|r| r == "OK"), "a write was refused: {:?}", replies.last());
    let mut pipe = redis::pipe();
    for i in (1..10_000u32).step_by(2) {
        pipe.cmd("EXISTS").arg(format!("t:{i}"));
    }
    let later: Vec<i64> = pipe.query(&mut c).expect("exists");
    let far_gone = later.iter().filter(|&&n| n == 0).count();
    let evicted = info_int(&node, "evicted_keys") as usize;
    assert!(evicted >= 1000, "evicted {evicted}");
    // The 5000 near expiries go first; beyond them, or by sampling's misses (5%), far ones.
    let allowed = evicted.saturating_sub(5_000) + evicted / 20;
    assert!(far_gone <= allowed, "{far_gone} of {evicted} evictions hit far expiries");
}

#[test]
fn evictions_reach_replicas_as_deletes() {
    let master = Node::start(
        Kind::Warden,
        "master",
        &[
            "--maxmemory",
            "6mb",
            "--maxmemory-policy",
            "allkeys-random",
            "--repl-diskless-sync-delay",
            "0",
        ],
    );
    let replica = Node::start(Kind::Warden, "replica", &["--replicaof", &master.addr()]);
    wait_in_sync(&master, &replica, Duration::from_secs(30));
    let mut c = master.connect();
    assert!(fill(&mut c, "k", 0..40_000).iter().all(|r| r == "OK"));
    assert!(info_int(&master, "evicted_keys") > 5000);
    wait_in_sync(&master, &replica, Duration::from_secs(30));
    let on_master: i64 = cmd(&mut c, &["DBSIZE"]);
    let on_replica: i64 = cmd(&mut replica.connect(), &["DBSIZE"]);
    assert_eq!(on_master, on_replica, "the replica must hold exactly the master's keys");
    // The replica ignores its own maxmemory by default: it follows the master's deletions.
    assert_eq!(info_int(&replica, "evicted_keys"), 0);
}

#[test]
fn lowering_maxmemory_evicts_in_the_background() {
    // Tenacity 0: a command evicts at most 16 keys before handing over to the cron.
    let node = Node::start(
        Kind::Warden,
        "node",
        &["--maxmemory-policy", "allkeys-random", "--maxmemory-eviction-tenacity", "0"],
    );
    let mut c = node.connect();
    assert!(fill(&mut c, "k", 0..30_000).iter().all(|r| r == "OK"));
    let _: () = cmd(&mut c, &["CONFIG", "SET", "maxmemory", "3mb"]);
    let mut polls = 0;
    let evicted =
        wait::until("eviction to bring memory under 3mb", Duration::from_secs(20), || {
            polls += 1;
            let used = info_int(&node, "used_memory");
            let evicted = info_int(&node, "evicted_keys");
            if used <= 3 * 1024 * 1024 + 64 * 1024 && evicted > 0 {
                Ok(evicted)
            } else {
                Err(format!("used_memory {used}, evicted_keys {evicted}"))
            }
        });
    // Our polls could have evicted 16 keys each at most; the cron did the rest.
    assert!(evicted > 16 * 2 * polls, "evicted {evicted} in {polls} polls");
    assert!(
        node.proc.log().contains("maxmemory is below the memory in use"),
        "{}",
        node.proc.log()
    );
}

/// A dump written by Redis under an LRU or LFU policy carries each key's idle time or access
/// counter; loading it keeps them, so eviction after a migration knows the cold keys.
#[test]
fn access_history_in_a_redis_dump_is_kept() {
    for (policy, probe) in [("allkeys-lru", "IDLETIME"), ("allkeys-lfu", "FREQ")] {
        let mut redis = Node::start(Kind::Redis, "redis", &["--maxmemory-policy", policy]);
        let mut c = redis.connect();
        let _: () = cmd(&mut c, &["SET", "cold", "x"]);
        let _: () = cmd(&mut c, &["SET", "hot", "x"]);
        for _ in 0..30 {
            let _: i64 = cmd(&mut c, &["STRLEN", "hot"]);
        }
        if policy == "allkeys-lru" {
            wait_idle(&mut c, "cold");
            let _: i64 = cmd(&mut c, &["STRLEN", "hot"]);
        }
        let expected: Vec<i64> =
            ["cold", "hot"].iter().map(|k| cmd(&mut c, &["OBJECT", probe, k])).collect();
        let _: () = cmd(&mut c, &["SAVE"]);
        let dir = redis.proc.dir().display().to_string();
        redis.proc.kill();
        let node =
            Node::start(Kind::Warden, "node", &["--dir", &dir, "--maxmemory-policy", policy]);
        let mut c = node.connect();
        let loaded: Vec<i64> =
            ["cold", "hot"].iter().map(|k| cmd(&mut c, &["OBJECT", probe, k])).collect();
        if policy == "allkeys-lru" {
            // Seconds pass between the save and the check.
            assert!(
                loaded[0] >= expected[0] && loaded[0] <= expected[0] + 5,
                "{loaded:?} {expected:?}"
            );
            assert!(loaded[1] <= 5, "{loaded:?}");
        } else {
            assert_eq!(loaded, expected, "LFU counters");
            assert!(loaded[1] > loaded[0], "{loaded:?}");
        }
    }
}

// Each scenario runs on warden-node and, as a check of the scenario itself, on redis-server.

#[test]
fn noeviction_refuses_writes_with_oom_and_serves_everything_else_warden() {
    noeviction_refuses_writes_with_oom_and_serves_everything_else(Kind::Warden);
}

#[test]
fn noeviction_refuses_writes_with_oom_and_serves_everything_else_redis() {
    noeviction_refuses_writes_with_oom_and_serves_everything_else(Kind::Redis);
}

#[test]
fn allkeys_lru_evicts_the_idlest_keys_warden() {
    allkeys_lru_evicts_the_idlest_keys(Kind::Warden);
}

#[test]
fn allkeys_lru_evicts_the_idlest_keys_redis() {
    allkeys_lru_evicts_the_idlest_keys(Kind::Redis);
}

#[test]
fn allkeys_lfu_keeps_the_frequently_used_keys_warden() {
    allkeys_lfu_keeps_the_frequently_used_keys(Kind::Warden);
}

#[test]
fn allkeys_lfu_keeps_the_frequently_used_keys_redis() {
    allkeys_lfu_keeps_the_frequently_used_keys(Kind::Redis);
}

#[test]
fn volatile_policies_evict_only_keys_with_a_ttl_warden() {
    volatile_policies_evict_only_keys_with_a_ttl(Kind::Warden);
}

#[test]
fn volatile_policies_evict_only_keys_with_a_ttl_redis() {
    volatile_policies_evict_only_keys_with_a_ttl(Kind::Redis);
}

#[test]
fn volatile_ttl_evicts_the_nearest_expiry_first_warden() {
    volatile_ttl_evicts_the_nearest_expiry_first(Kind::Warden);
}

#[test]
fn volatile_ttl_evicts_the_nearest_expiry_first_redis() {
    volatile_ttl_evicts_the_nearest_expiry_first(Kind::Redis);
}
