//! warden-node's dump file as a real process sees it: SAVE survives kill -9, a dump.rdb written
//! by Debian's redis-server loads, and a corrupt dump stops startup without being touched.

use std::path::Path;
use std::time::Duration;

use integration_tests::nodes::{Kind, Node};
use integration_tests::{bin_dir, ports, process::Proc, wait};

/// A connection to a node that finished loading (PING answers -LOADING until then).
fn connect(port: u16) -> Result<redis::Connection, String> {
    let client =
        redis::Client::open(format!("redis://127.0.0.1:{port}/")).map_err(|e| e.to_string())?;
    let mut c =
        client.get_connection_with_timeout(Duration::from_secs(1)).map_err(|e| e.to_string())?;
    redis::cmd("PING").query::<String>(&mut c).map_err(|e| e.to_string())?;
    Ok(c)
}

/// A warden-node on loopback `port` with the given extra directives.
fn start_with(port: u16, extra: &[&str]) -> Proc {
    let port = port.to_string();
    let mut args = vec!["--port", &port, "--bind", "127.0.0.1"];
    args.extend_from_slice(extra);
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    Proc::start("node", &bin_dir().join("warden-node"), &args)
}

fn start_node(dir: &Path, port: u16) -> Proc {
    start_with(port, &["--save", "", "--dir", &dir.display().to_string()])
}

fn cmd<T: redis::FromRedisValue>(c: &mut redis::Connection, args: &[&str]) -> T {
    let mut command = redis::cmd(args[0]);
    for a in &args[1..] {
        command.arg(*a);
    }
    command.query(c).unwrap_or_else(|e| panic!("{args:?}: {e}"))
}

#[test]
fn saved_data_survives_kill_9_and_restart() {
    let data = tempfile::tempdir().unwrap();
    let port = ports::allocate();
    let mut node = start_node(data.path(), port);
    let mut c =
        wait::until("warden-node to accept connections", Duration::from_secs(10), || connect(port));
    let _: () = cmd(&mut c, &["SET", "s", "v"]);
    let _: () = cmd(&mut c, &["SET", "ttl", "x", "EX", "1000"]);
    let _: i64 = cmd(&mut c, &["RPUSH", "l", "a", "b", "c"]);
    let _: i64 = cmd(&mut c, &["HSET", "h", "f", "1"]);
    let _: i64 = cmd(&mut c, &["ZADD", "z", "1.5", "m"]);
    let _: () = cmd(&mut c, &["SELECT", "7"]);
    let _: i64 = cmd(&mut c, &["SADD", "set", "1", "2"]);
    let _: () = cmd(&mut c, &["SAVE"]);
    let info: String = cmd(&mut c, &["INFO", "persistence"]);
    assert!(
        info.contains("rdb_changes_since_last_save:0") && info.contains("rdb_saves:1"),
        "{info}"
    );
    node.kill();
    node.restart();
    let mut c = wait::until("warden-node to come back", Duration::from_secs(10), || connect(port));
    assert_eq!(cmd::<String>(&mut c, &["GET", "s"]), "v");
    let ttl: i64 = cmd(&mut c, &["TTL", "ttl"]);
    assert!((990..=1000).contains(&ttl), "TTL after restart: {ttl}");
    assert_eq!(cmd::<Vec<String>>(&mut c, &["LRANGE", "l", "0", "-1"]), ["a", "b", "c"]);
    assert_eq!(cmd::<String>(&mut c, &["HGET", "h", "f"]), "1");
    assert_eq!(cmd::<String>(&mut c, &["ZSCORE", "z", "m"]), "1.5");
    let _: () = cmd(&mut c, &["SELECT", "7"]);
    assert_eq!(cmd::<i64>(&mut c, &["SCARD", "set"]), 2);
    let info: String = cmd(&mut c, &["INFO", "persistence"]);
    assert!(info.contains("rdb_last_load_keys_loaded:6"), "{info}");
}

#[test]
fn shutdown_save_writes_the_dump_and_sigterm_without_save_points_does_not() {
    let data = tempfile::tempdir().unwrap();
    let port = ports::allocate();
    let mut node = start_node(data.path(), port);
    let mut c =
        wait::until("warden-node to accept connections", Duration::from_secs(10), || connect(port));
    let _: () = cmd(&mut c, &["SET", "k", "1"]);
    node.signal(libc::SIGTERM);
    assert!(node.wait_exit(Duration::from_secs(10)).unwrap().success());
    assert!(!data.path().join("dump.rdb").exists(), "no save points: SIGTERM must not save");
    node.restart();
    let mut c = wait::until("warden-node to come back", Duration::from_secs(10), || connect(port));
    let _: () = cmd(&mut c, &["SET", "k", "2"]);
    let _ = redis::cmd("SHUTDOWN").arg("SAVE").query::<()>(&mut c);
    assert!(node.wait_exit(Duration::from_secs(10)).unwrap().success());
    assert!(data.path().join("dump.rdb").exists(), "SHUTDOWN SAVE writes the dump");
}

#[test]
fn a_dump_written_by_redis_server_loads() {
    let data = tempfile::tempdir().unwrap();
    let redis_port = ports::allocate();
    let redis_server =
        std::env::var("REDIS_SERVER").unwrap_or_else(|_| "/usr/bin/redis-server".into());
    assert!(
        Path::new(&redis_server).exists(),
        "{redis_server} is missing: run ./scripts/test, which installs it"
    );
    let args: Vec<String> = [
        "--port",
        &redis_port.to_string(),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--dir",
        &data.path().display().to_string(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let mut redis = Proc::start("redis", Path::new(&redis_server), &args);
    let mut c = wait::until("redis-server to accept connections", Duration::from_secs(10), || {
        connect(redis_port)
    });
    let _: () = cmd(&mut c, &["SET", "from", "redis"]);
    let _: () = cmd(&mut c, &["SET", "n", "12345"]);
    let _: i64 = cmd(&mut c, &["RPUSH", "l", "x", "y"]);
    let _: () = cmd(&mut c, &["SAVE"]);
    redis.kill();
    let port = ports::allocate();
    let _node = start_node(data.path(), port);
    let mut c =
        wait::until("warden-node to load redis's dump", Duration::from_secs(10), || connect(port));
    assert_eq!(cmd::<String>(&mut c, &["GET", "from"]), "redis");
    assert_eq!(cmd::<String>(&mut c, &["OBJECT", "ENCODING", "n"]), "int");
    assert_eq!(cmd::<Vec<String>>(&mut c, &["LRANGE", "l", "0", "-1"]), ["x", "y"]);
}

#[test]
fn a_corrupt_dump_stops_startup_and_is_left_untouched() {
    let data = tempfile::tempdir().unwrap();
    let corrupt = b"REDIS0010\xfe\x00\x00\x03key".to_vec();
    std::fs::write(data.path().join("dump.rdb"), &corrupt).unwrap();
    let mut node = start_node(data.path(), ports::allocate());
    let status = node.wait_exit(Duration::from_secs(10)).expect("it was running");
    assert!(!status.success());
    let log = node.log();
    assert!(log.contains("dump.rdb") && log.contains("offset"), "{log}");
    assert_eq!(std::fs::read(data.path().join("dump.rdb")).unwrap(), corrupt);
}

#[test]
fn save_points_bgsave_misconf_and_save_on_sigterm() {
    let port = ports::allocate();
    let mut node = start_with(port, &["--save", "1 1", "--enable-protected-configs", "local"]);
    let mut c =
        wait::until("warden-node to accept connections", Duration::from_secs(10), || connect(port));
    // A save point: one change, more than a second later, is saved in the background.
    let _: () = cmd(&mut c, &["SET", "a", "1"]);
    let dump = node.dir().join("dump.rdb");
    // The file is renamed into place just before the save is marked finished (as in Redis,
    // where the child renames and the parent learns of it later): wait for both.
    wait::until("the save point to write dump.rdb", Duration::from_secs(10), || {
        if !dump.exists() {
            return Err("no dump.rdb yet".to_string());
        }
        match info_field(&mut c, "rdb_bgsave_in_progress").as_str() {
            "0" => Ok(()),
            other => Err(format!("rdb_bgsave_in_progress:{other}")),
        }
    });
    let info: String = cmd(&mut c, &["INFO", "persistence"]);
    assert!(info.contains("rdb_last_bgsave_status:ok"), "{info}");
    assert_eq!(cmd::<String>(&mut c, &["BGSAVE"]), "Background saving started");
    // A background save that cannot write its file stops writes (MISCONF) until one succeeds:
    // a directory in the file's place makes the final rename fail.
    std::fs::create_dir_all(node.dir().join("blocked.rdb/inside")).unwrap();
    let _: () = cmd(&mut c, &["CONFIG", "SET", "dbfilename", "blocked.rdb"]);
    wait::until("a failed background save to refuse writes", Duration::from_secs(10), || {
        let _ = redis::cmd("BGSAVE").query::<String>(&mut c);
        match redis::cmd("SET").arg("b").arg("2").query::<()>(&mut c) {
            Err(e) if e.to_string().contains("stop-writes-on-bgsave-error") => Ok(()),
            other => Err(format!("{other:?}")),
        }
    });
    let _: () = cmd(&mut c, &["CONFIG", "SET", "dbfilename", "dump.rdb"]);
    // SAVE is refused while a background save runs; once it succeeds, writes are allowed.
    wait::until("a successful SAVE", Duration::from_secs(10), || {
        redis::cmd("SAVE").query::<()>(&mut c).map_err(|e| e.to_string())
    });
    let _: () = cmd(&mut c, &["SET", "b", "2"]);
    // SIGTERM with save points saves first, like SHUTDOWN without arguments.
    node.signal(libc::SIGTERM);
    assert!(node.wait_exit(Duration::from_secs(10)).is_some_and(|s| s.success()));
    node.restart();
    let mut c = wait::until("restart", Duration::from_secs(10), || connect(port));
    assert_eq!(cmd::<String>(&mut c, &["GET", "b"]), "2");
}

/// A node with DEBUG enabled (DEBUG POPULATE builds large datasets quickly) and `extra` flags.
fn start_debug_node(dir: &Path, port: u16, extra: &[&str]) -> Proc {
    let mut args: Vec<String> = ["--port", &port.to_string(), "--bind", "127.0.0.1"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    args.extend(["--dir".to_string(), dir.display().to_string()]);
    args.extend(["--enable-debug-command", "yes"].iter().map(|s| s.to_string()));
    args.extend(extra.iter().map(|s| s.to_string()));
    Proc::start("node", &bin_dir().join("warden-node"), &args)
}

fn info_field(c: &mut redis::Connection, field: &str) -> String {
    let info: String = cmd(c, &["INFO", "persistence"]);
    info.lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .unwrap_or_else(|| panic!("no {field} in {info}"))
        .to_string()
}

const KEYS: usize = 300_000;

/// Waits until no background save runs (finished or abandoned).
fn wait_no_bgsave(c: &mut redis::Connection) {
    wait::until("no background save in progress", Duration::from_secs(60), || {
        match info_field(c, "rdb_bgsave_in_progress").as_str() {
            "0" => Ok(()),
            _ => Err(format!("{} keys written", info_field(c, "current_save_keys_processed"))),
        }
    });
}

/// BGSAVE writes the dataset as it was when BGSAVE answered, while writes go on meanwhile:
/// overwritten, deleted, created and expiring keys all appear in the file as they were at
/// that instant (writers are not paused for the save).
#[test]
fn bgsave_writes_the_instant_it_started_while_writes_continue() {
    let data = tempfile::tempdir().unwrap();
    let port = ports::allocate();
    let mut node = start_debug_node(data.path(), port, &["--save", ""]);
    let mut c = wait::until("warden-node to start", Duration::from_secs(10), || connect(port));
    let _: () = cmd(&mut c, &["DEBUG", "POPULATE", &KEYS.to_string()]);
    let original: String = cmd(&mut c, &["GET", "key:7"]);
    assert_eq!(cmd::<String>(&mut c, &["BGSAVE"]), "Background saving started");
    let mut pipe = redis::pipe();
    for i in 0..2000 {
        pipe.cmd("SET").arg(format!("key:{i}")).arg("changed").ignore();
        pipe.cmd("DEL").arg(format!("key:{}", 100_000 + i)).ignore();
        pipe.cmd("SET").arg(format!("new:{i}")).arg("x").ignore();
        pipe.cmd("EXPIRE").arg(format!("key:{}", 200_000 + i)).arg(10_000).ignore();
    }
    pipe.cmd("FLUSHDB").ignore(); // db 0 is cleared under the walk: it must still be written
    let _: () = pipe.query(&mut c).unwrap();
    assert_eq!(
        info_field(&mut c, "rdb_bgsave_in_progress"),
        "1",
        "the save ended before the writes did; the scenario needs a larger dataset"
    );
    assert_eq!(cmd::<i64>(&mut c, &["DBSIZE"]), 0, "writers were served during the save");
    wait_no_bgsave(&mut c);
    assert_eq!(info_field(&mut c, "rdb_last_bgsave_status"), "ok");
    node.kill();
    node.restart();
    let mut c =
        wait::until("the restarted node to load", Duration::from_secs(30), || connect(port));
    assert_eq!(cmd::<i64>(&mut c, &["DBSIZE"]), KEYS as i64);
    assert_eq!(cmd::<String>(&mut c, &["GET", "key:7"]), original);
    assert_eq!(cmd::<i64>(&mut c, &["EXISTS", "key:100007", "new:7"]), 1);
    assert_eq!(cmd::<i64>(&mut c, &["TTL", "key:200007"]), -1);
}

/// FLUSHALL abandons a background save of the old data and, with save points, saves the
/// empty dataset at once (Redis's behaviour): a restart does not bring flushed keys back.
#[test]
fn flushall_during_bgsave_abandons_it_and_saves_the_empty_dataset() {
    let data = tempfile::tempdir().unwrap();
    let port = ports::allocate();
    let mut node = start_debug_node(data.path(), port, &["--save", "3600 1"]);
    let mut c = wait::until("warden-node to start", Duration::from_secs(10), || connect(port));
    let _: () = cmd(&mut c, &["DEBUG", "POPULATE", &KEYS.to_string()]);
    assert_eq!(cmd::<String>(&mut c, &["BGSAVE"]), "Background saving started");
    let _: () = cmd(&mut c, &["FLUSHALL"]);
    wait_no_bgsave(&mut c);
    assert_eq!(info_field(&mut c, "rdb_last_bgsave_status"), "ok");
    node.kill();
    node.restart();
    let mut c =
        wait::until("the restarted node to load", Duration::from_secs(30), || connect(port));
    assert_eq!(cmd::<i64>(&mut c, &["DBSIZE"]), 0);
}

/// `count` keys `key:0` … in one MSET, each value 100 bytes (`key_value`).
fn mset_keys(c: &mut redis::Connection, count: usize) {
    let mut command = redis::cmd("MSET");
    for i in 0..count {
        command.arg(format!("key:{i}")).arg(key_value(i));
    }
    let _: () = command.query(c).unwrap();
}

/// SHUTDOWN while a BGSAVE runs stops that save and saves now, as Redis kills its child and
/// saves (SAVE, unlike SHUTDOWN, refuses to run beside it): every write acknowledged before
/// SHUTDOWN survives the restart. `rdb-key-save-delay` holds the BGSAVE open; the running save
/// keeps the pace it started with. The same scenario runs against redis-server first, so the
/// expectations are Redis's.
#[test]
fn shutdown_during_bgsave_abandons_it_and_saves_every_acknowledged_write() {
    for kind in [Kind::Redis, Kind::Warden] {
        let mut node = Node::start(kind, &format!("{kind:?}"), &["--save", "3600 1"]);
        let mut c = node.connect();
        mset_keys(&mut c, 50);
        // 100 ms per key: this BGSAVE would take 5 s.
        let _: () = cmd(&mut c, &["CONFIG", "SET", "rdb-key-save-delay", "100000"]);
        assert_eq!(cmd::<String>(&mut c, &["BGSAVE"]), "Background saving started", "{kind:?}");
        let _: () = cmd(&mut c, &["CONFIG", "SET", "rdb-key-save-delay", "0"]);
        assert_eq!(info_field(&mut c, "rdb_bgsave_in_progress"), "1", "{kind:?}");
        let _: () = cmd(&mut c, &["SET", "written", "during the bgsave"]);
        let refused = redis::cmd("SAVE").query::<String>(&mut c).unwrap_err();
        assert_eq!(refused.detail(), Some("Background save already in progress"), "{kind:?}");
        // The connection closes without a reply when the shutdown proceeds.
        let _ = redis::cmd("SHUTDOWN").query::<()>(&mut c);
        let status = node.proc.wait_exit(Duration::from_secs(10));
        assert!(status.is_some_and(|s| s.success()), "{kind:?} exited with {status:?}");
        node.proc.restart();
        let mut c =
            wait::until("the restarted node", Duration::from_secs(10), || node.try_connect());
        assert_eq!(cmd::<i64>(&mut c, &["DBSIZE"]), 51, "{kind:?}");
        assert_eq!(cmd::<String>(&mut c, &["GET", "written"]), "during the bgsave", "{kind:?}");
    }
}

fn key_value(i: usize) -> String {
    format!("{i:0>100}")
}

/// `key-load-delay` slows a load down key by key, as Redis's test suites use it: meanwhile the
/// node answers -LOADING and INFO says `loading:1`, and then serves the whole dataset. (Redis
/// serves clients during a load only every `loading-process-events-interval-bytes`, so its
/// suites lower that too; warden-node serves them throughout.)
#[test]
fn key_load_delay_holds_a_load_open_and_clients_see_loading() {
    for kind in [Kind::Redis, Kind::Warden] {
        // 50 ms per key: loading 40 keys (4 KB) takes 2 s.
        let extra = [
            "--save",
            "3600 1",
            "--key-load-delay",
            "50000",
            "--loading-process-events-interval-bytes",
            "1024",
            "--rdbcompression",
            "no",
        ];
        let mut node = Node::start(kind, &format!("{kind:?}"), &extra);
        mset_keys(&mut node.connect(), 40);
        let _ = redis::cmd("SHUTDOWN").query::<()>(&mut node.connect());
        assert!(node.proc.wait_exit(Duration::from_secs(10)).is_some_and(|s| s.success()));
        node.proc.restart();
        let client = redis::Client::open(format!("redis://127.0.0.1:{}/", node.port)).unwrap();
        let mut loading_seen = None;
        let value = wait::until("the restarted node to serve", Duration::from_secs(20), || {
            let mut c = client.get_connection().map_err(|e| e.to_string())?;
            match redis::cmd("GET").arg("key:39").query::<Option<String>>(&mut c) {
                Ok(v) => Ok(v),
                Err(e) if e.code() == Some("LOADING") => {
                    let info: String = redis::cmd("INFO").arg("persistence").query(&mut c).unwrap();
                    loading_seen.get_or_insert(info);
                    Err("loading".to_string())
                }
                Err(e) => Err(e.to_string()),
            }
        });
        assert_eq!(value, Some(key_value(39)), "{kind:?}");
        let info = loading_seen.unwrap_or_else(|| panic!("{kind:?} never answered -LOADING"));
        assert!(info.contains("loading:1"), "{kind:?}: {info}");
        assert_eq!(cmd::<i64>(&mut node.connect(), &["DBSIZE"]), 40, "{kind:?}");
    }
}
