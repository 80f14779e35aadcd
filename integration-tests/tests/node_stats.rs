//! INFO's keyspace_hits and keyspace_misses, command by command, against redis-server: which
//! lookups count (reads, and the sources some writes read) and which do not (a write's own
//! key) is Redis's per command, and monitoring compares hit rates across servers. Also the
//! latency monitor (LATENCY LATEST and co.) against redis-server.

use integration_tests::nodes::{Kind, Node};

const SETUP: &[&[&str]] = &[
    &["FLUSHALL"],
    &["SET", "s", "abc"],
    &["SET", "n", "5"],
    &["RPUSH", "l", "a", "b", "c"],
    &["HSET", "h", "f", "1"],
    &["SADD", "st", "a", "b"],
    &["ZADD", "z", "1", "a", "2", "b"],
    &["SET", "t", "x", "EX", "100"],
];

const COMMANDS: &str = "APPEND s x|APPEND nos x|SETRANGE s 1 x|INCRBYFLOAT n 1.5|INCR n|\
DECRBY n 2|GETSET s y|GETDEL s|GETEX s EX 10|SET s v GET|SETNX s v|MSETNX s v q w|STRLEN s|\
GETRANGE s 0 1|MGET s nos|LPUSH l x|LPUSHX l x|LPUSHX nol x|LPOP l|RPOPLPUSH l l2|\
LMOVE l l2 LEFT RIGHT|LSET l 0 q|LINSERT l BEFORE a q|LREM l 0 a|LTRIM l 0 1|LINDEX l 0|LLEN l|\
LRANGE l 0 -1|LPOS l a|HSET h g 2|HSETNX h f 2|HDEL h f|HINCRBY h f 1|HINCRBYFLOAT h f 1|\
HGET h f|HMGET h f g|HGETALL h|HLEN h|HEXISTS h f|HKEYS h|HSTRLEN h f|HRANDFIELD h|SADD st c|\
SREM st a|SPOP st|SMOVE st st2 a|SISMEMBER st a|SMEMBERS st|SCARD st|SINTER st nost|\
SINTERSTORE d st st|SUNIONSTORE d st nost|SDIFFSTORE d st nost|SRANDMEMBER st|ZADD z 3 c|\
ZINCRBY z 1 a|ZREM z a|ZSCORE z a|ZCARD z|ZRANGE z 0 -1|ZRANGESTORE d z 0 -1|ZPOPMIN z|\
ZUNIONSTORE d 1 z|ZREMRANGEBYRANK z 0 0|ZRANK z a|ZMSCORE z a b|DEL s|UNLINK s|EXISTS s|TYPE s|\
TTL t|PTTL t|EXPIRE s 10|PERSIST t|RENAME s s2|RENAMENX s s2|COPY s s3|MOVE s 1|TOUCH s|\
OBJECT ENCODING s|DUMP s|EXPIRETIME t|SETBIT s 1 1|GETBIT s 1|BITCOUNT s|BITPOS s 1|\
BITOP AND d s s|BITFIELD s GET u8 0|BITFIELD s SET u8 0 1|LMPOP 1 l LEFT|ZMPOP 1 z MIN|\
SINTERCARD 1 st|RANDOMKEY|SCAN 0|KEYS *|DBSIZE|EVAL return 1 0|SORT l ALPHA|\
SORT l BY w_* ALPHA GET # GET g_*|SORT l ALPHA STORE d";

/// (hits, misses) after `command` on a freshly set-up server.
fn counted(node: &Node, command: &str) -> (String, String) {
    let mut c = node.connect();
    for args in SETUP {
        let _: redis::Value = redis::cmd(args[0]).arg(&args[1..]).query(&mut c).expect("setup");
    }
    let _: () = redis::cmd("CONFIG").arg("RESETSTAT").query(&mut c).expect("resetstat");
    let words: Vec<&str> = command.split(' ').collect();
    // The reply does not matter here, only what the lookups counted.
    let _: Result<redis::Value, _> = redis::cmd(words[0]).arg(&words[1..]).query(&mut c);
    (
        node.info("keyspace_hits").unwrap_or_default(),
        node.info("keyspace_misses").unwrap_or_default(),
    )
}

#[test]
fn keyspace_hits_and_misses_count_as_in_redis() {
    let redis = Node::start(Kind::Redis, "redis", &[]);
    let warden = Node::start(Kind::Warden, "warden", &[]);
    let mut differ = Vec::new();
    for command in COMMANDS.split('|') {
        let (expected, got) = (counted(&redis, command), counted(&warden, command));
        if expected != got {
            differ.push(format!("{command}: redis {expected:?}, warden {got:?}"));
        }
    }
    assert!(differ.is_empty(), "hits/misses differ:\n{}", differ.join("\n"));
}

/// The latency monitor, on redis-server and warden-node alike: with
/// `latency-monitor-threshold` set, a slow command is recorded under `command` (LATEST,
/// HISTORY, GRAPH, DOCTOR), RESET forgets it, and nothing is recorded below the threshold.
#[test]
fn the_latency_monitor_records_slow_commands() {
    use integration_tests::nodes::cmd;
    for kind in [Kind::Redis, Kind::Warden] {
        let node = Node::start(kind, &format!("{kind:?}"), &["--enable-debug-command", "yes"]);
        let mut c = node.connect();
        let _: () = cmd(&mut c, &["DEBUG", "SLEEP", "0.12"]);
        let none: Vec<redis::Value> = cmd(&mut c, &["LATENCY", "LATEST"]);
        assert!(none.is_empty(), "{kind:?}: recorded with the monitor off");
        let _: () = cmd(&mut c, &["CONFIG", "SET", "latency-monitor-threshold", "100"]);
        let _: () = cmd(&mut c, &["DEBUG", "SLEEP", "0.12"]);
        let _: String = cmd(&mut c, &["PING"]);
        let latest: Vec<(String, i64, i64, i64)> = cmd(&mut c, &["LATENCY", "LATEST"]);
        assert_eq!(latest.len(), 1, "{kind:?}: {latest:?}");
        let (event, _, last, max) = &latest[0];
        assert_eq!(event, "command", "{kind:?}");
        assert!(*last >= 120 && *max >= 120, "{kind:?}: {latest:?}");
        let history: Vec<(i64, i64)> = cmd(&mut c, &["LATENCY", "HISTORY", "command"]);
        assert_eq!(history.len(), 1, "{kind:?}: {history:?}");
        let graph: String = cmd(&mut c, &["LATENCY", "GRAPH", "command"]);
        assert!(graph.starts_with("command - high "), "{kind:?}: {graph}");
        let doctor: String = cmd(&mut c, &["LATENCY", "DOCTOR"]);
        assert!(doctor.contains("command"), "{kind:?}: {doctor}");
        assert_eq!(cmd::<i64>(&mut c, &["LATENCY", "RESET"]), 1, "{kind:?}");
        let none: Vec<redis::Value> = cmd(&mut c, &["LATENCY", "LATEST"]);
        assert!(none.is_empty(), "{kind:?}: RESET left {none:?}");
        let missing = redis::cmd("LATENCY").arg("GRAPH").arg("command").query::<String>(&mut c);
        let text = missing.unwrap_err().to_string();
        assert!(text.contains("No samples available for event 'command'"), "{kind:?}: {text}");
    }
}

/// A 100,000-member SADD and its UNLINK give their memory back (Redis's lazyfree test):
/// nothing keeps the huge command alive afterwards, neither the slow log (it keeps trimmed
/// copies) nor the connection's grown buffers (they shrink once empty).
#[test]
fn memory_of_a_huge_command_and_its_key_is_given_back() {
    use integration_tests::nodes::cmd;
    use std::time::Duration;
    for kind in [Kind::Redis, Kind::Warden] {
        let node = Node::start(kind, &format!("{kind:?}"), &["--slowlog-log-slower-than", "0"]);
        let mut c = node.connect();
        let used = |c: &mut redis::Connection| -> u64 {
            let info: String = cmd(c, &["INFO", "memory"]);
            let field = info.lines().find_map(|l| l.strip_prefix("used_memory:"));
            field.and_then(|v| v.trim().parse().ok()).expect("used_memory")
        };
        let before = used(&mut c);
        let mut sadd = redis::cmd("SADD");
        sadd.arg("myset");
        for i in 0..100_000 {
            sadd.arg(i);
        }
        let _: i64 = sadd.query(&mut c).unwrap();
        let peak = used(&mut c);
        assert!(peak > before + 1_000_000, "{kind:?}: {before} -> {peak}");
        assert_eq!(cmd::<i64>(&mut c, &["UNLINK", "myset"]), 1);
        integration_tests::wait::until("the memory to come back", Duration::from_secs(10), || {
            match used(&mut c) {
                now if now < before + 1_000_000 => Ok(()),
                now => Err(format!("used_memory {now}, was {before} before, {peak} at peak")),
            }
        });
    }
}
