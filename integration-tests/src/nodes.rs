//! Data nodes for multi-process tests: warden-node or Debian's redis-server, started on a free
//! loopback port in a temp dir, with a small synchronous client.

use std::path::Path;
use std::time::Duration;

use crate::process::Proc;
use crate::{bin_dir, ports, wait};

/// Which server a node runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Our warden-node.
    Warden,
    /// Debian's redis-server 7.0.
    Redis,
}

impl Kind {
    /// The server's executable.
    pub fn program(self) -> std::path::PathBuf {
        match self {
            Kind::Warden => bin_dir().join("warden-node"),
            Kind::Redis => "/usr/bin/redis-server".into(),
        }
    }
}

/// A node's command line: loopback `port`, no save points, then `extra` directives.
pub fn args(port: u16, extra: &[&str]) -> Vec<String> {
    let base = ["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", ""].map(String::from);
    base.into_iter().chain(extra.iter().map(|s| s.to_string())).collect()
}

/// A running node.
pub struct Node {
    /// The process (logs printed if the test fails).
    pub proc: Proc,
    /// Its port.
    pub port: u16,
    /// What it runs.
    pub kind: Kind,
}

impl Node {
    /// Starts a node with `extra` directives (`["--replicaof", "127.0.0.1 6379"]` style).
    pub fn start(kind: Kind, name: &str, extra: &[&str]) -> Node {
        let port = ports::allocate();
        let args = args(port, extra);
        let program = kind.program();
        // The process runs in its own temp dir, which is where both servers keep their files.
        let proc = Proc::start(name, Path::new(&program), &args);
        let node = Node { proc, port, kind };
        wait::until(&format!("{name} to accept connections"), Duration::from_secs(10), || {
            node.try_connect()
        });
        node
    }

    /// A connection to a node that has finished loading its data, or why not.
    pub fn try_connect(&self) -> Result<redis::Connection, String> {
        let client = redis::Client::open(format!("redis://127.0.0.1:{}/", self.port))
            .map_err(|e| e.to_string())?;
        let mut c = client
            .get_connection_with_timeout(Duration::from_secs(2))
            .map_err(|e| e.to_string())?;
        // PING answers -LOADING until the dataset is loaded (other refusals, such as
        // -MASTERDOWN, come from a node that is up).
        match redis::cmd("PING").query::<String>(&mut c) {
            Err(e) if e.code() == Some("LOADING") || e.is_io_error() => Err(e.to_string()),
            _ => Ok(c),
        }
    }

    /// A connection (panics with the reason).
    pub fn connect(&self) -> redis::Connection {
        self.try_connect().unwrap_or_else(|e| panic!("connect to {}: {e}", self.port))
    }

    /// `host port` for REPLICAOF.
    pub fn addr(&self) -> String {
        format!("127.0.0.1 {}", self.port)
    }

    /// One field of INFO (`None` if absent or the node is unreachable).
    pub fn info(&self, field: &str) -> Option<String> {
        let mut c = self.try_connect().ok()?;
        let text: String = redis::cmd("INFO").arg("everything").query(&mut c).ok()?;
        let prefix = format!("{field}:");
        text.lines().find_map(|l| l.strip_prefix(&prefix).map(|v| v.trim().to_string()))
    }

    /// INFO replication's `master_repl_offset`.
    pub fn offset(&self) -> i64 {
        self.info("master_repl_offset").and_then(|v| v.parse().ok()).unwrap_or(-1)
    }
}

/// Runs a command and gives its reply, error or not, as text to compare between servers.
pub fn ask(c: &mut redis::Connection, args: &[&str]) -> String {
    let mut command = redis::cmd(args[0]);
    for a in &args[1..] {
        command.arg(*a);
    }
    match command.query::<redis::Value>(c) {
        Ok(value) => format!("{value:?}"),
        Err(e) => format!("error {:?} {}", e.code(), e.detail().unwrap_or_default()),
    }
}

/// Runs a command and converts its reply (panics with the command on error).
pub fn cmd<T: redis::FromRedisValue>(c: &mut redis::Connection, args: &[&str]) -> T {
    let mut command = redis::cmd(args[0]);
    for a in &args[1..] {
        command.arg(*a);
    }
    command.query(c).unwrap_or_else(|e| panic!("{args:?}: {e}"))
}

/// Waits until `replica` reports its link up and the same offset as `master`.
pub fn wait_in_sync(master: &Node, replica: &Node, timeout: Duration) {
    wait::until("the replica to catch up with its master", timeout, || {
        let link = replica.info("master_link_status");
        let (m, r) = (master.offset(), replica.offset());
        if link.as_deref() == Some("up") && m == r && m >= 0 {
            Ok(())
        } else {
            Err(format!("link {link:?}, master offset {m}, replica offset {r}"))
        }
    });
}

/// Every key of every database with its type, value and whether it has a TTL, in a form that
/// compares equal between warden-node and redis-server (unordered collections sorted).
pub fn dataset(node: &Node) -> std::collections::BTreeMap<(u32, String), String> {
    let mut c = node.connect();
    let mut out = std::collections::BTreeMap::new();
    for db in 0..16u32 {
        let _: () = cmd(&mut c, &["SELECT", &db.to_string()]);
        let keys: Vec<String> = cmd(&mut c, &["KEYS", "*"]);
        // Pipelined in batches: datasets of a few hundred thousand keys stay quick to read.
        for batch in keys.chunks(1000) {
            let mut types = redis::pipe();
            for key in batch {
                types.cmd("TYPE").arg(key);
            }
            let kinds: Vec<String> = types.query(&mut c).expect("TYPE of each key");
            let mut reads = redis::pipe();
            for (key, kind) in batch.iter().zip(&kinds) {
                match kind.as_str() {
                    "string" => reads.cmd("GET").arg(key),
                    "list" => reads.cmd("LRANGE").arg(key).arg(0).arg(-1),
                    "hash" => reads.cmd("HGETALL").arg(key),
                    "set" => reads.cmd("SMEMBERS").arg(key),
                    "zset" => reads.cmd("ZRANGE").arg(key).arg(0).arg(-1).arg("WITHSCORES"),
                    // Any reply keeps the replies in (value, PTTL) pairs.
                    _ => reads.cmd("TYPE").arg(key),
                };
                reads.cmd("PTTL").arg(key);
            }
            let replies: Vec<redis::Value> = reads.query(&mut c).expect("reading each key");
            for ((key, kind), pair) in batch.iter().zip(&kinds).zip(replies.chunks(2)) {
                let value = match kind.as_str() {
                    "string" => {
                        redis::from_redis_value::<String>(pair[0].clone()).expect("a string")
                    }
                    "list" => redis::from_redis_value::<Vec<String>>(pair[0].clone())
                        .expect("a list")
                        .join(","),
                    "hash" => {
                        let mut v: Vec<(String, String)> =
                            redis::from_redis_value(pair[0].clone()).expect("a hash");
                        v.sort();
                        format!("{v:?}")
                    }
                    "set" => {
                        let mut v: Vec<String> =
                            redis::from_redis_value(pair[0].clone()).expect("a set");
                        v.sort();
                        v.join(",")
                    }
                    "zset" => format!(
                        "{:?}",
                        redis::from_redis_value::<Vec<(String, String)>>(pair[0].clone())
                            .expect("a zset")
                    ),
                    other => format!("<{other}>"),
                };
                let ttl: i64 = redis::from_redis_value(pair[1].clone()).expect("a PTTL");
                out.insert((db, key.clone()), format!("{kind}:{value}:ttl={}", ttl >= 0));
            }
        }
    }
    out
}

/// A reply as text with unix-millisecond times (integers past 10^12) masked, so replies that
/// carry delivery or seen times (XINFO STREAM FULL, XPENDING) compare between two servers or
/// two moments.
pub fn masked_times(v: &redis::Value) -> String {
    match v {
        redis::Value::Int(n) if *n > 1_000_000_000_000 => "<time>".to_string(),
        redis::Value::Array(items) => {
            format!("[{}]", items.iter().map(masked_times).collect::<Vec<_>>().join(", "))
        }
        other => format!("{other:?}"),
    }
}

/// Waits until `node` reports an AOF rewrite done and none in progress (after BGREWRITEAOF).
pub fn wait_aof_rewritten(node: &Node, timeout: Duration) {
    wait::until("the AOF rewrite to finish", timeout, || {
        match node.info("aof_rewrite_in_progress").as_deref() {
            Some("0") if node.info("aof_rewrites").as_deref() != Some("0") => Ok(()),
            other => Err(format!("aof_rewrite_in_progress {other:?}")),
        }
    });
}
