//! The append-only file as a real process sees it: kill -9 under write load with each fsync
//! policy, torn tails and corruption, kill -9 during a rewrite, and appendonlydir exchanged
//! with Debian's redis-server in both directions.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use integration_tests::nodes::{cmd, dataset, Kind, Node};
use integration_tests::wait;

const UP: Duration = Duration::from_secs(20);

fn aof_node(kind: Kind, name: &str, fsync: &str) -> Node {
    Node::start(kind, name, &["--appendonly", "yes", "--appendfsync", fsync])
}

/// INCRs until the server dies; every acknowledged value with the time it was acknowledged.
fn hammer(node: &Node) -> (Arc<AtomicBool>, std::thread::JoinHandle<Vec<(Instant, i64)>>) {
    let stop = Arc::new(AtomicBool::new(false));
    let mut c = node.connect();
    let flag = stop.clone();
    let handle = std::thread::spawn(move || {
        let mut acked = Vec::new();
        while !flag.load(Ordering::Relaxed) {
            match redis::cmd("INCR").arg("counter").query::<i64>(&mut c) {
                Ok(v) => acked.push((Instant::now(), v)),
                Err(_) => break,
            }
        }
        acked
    });
    (stop, handle)
}

fn restart_and_read_counter(node: &mut Node) -> i64 {
    node.proc.restart();
    let mut c = wait::until("the node to restart from its AOF", UP, || node.try_connect());
    wait::until("the data to be loaded", UP, || {
        redis::cmd("GET").arg("counter").query::<Option<i64>>(&mut c).map_err(|e| e.to_string())
    })
    .unwrap_or(0)
}

#[test]
fn always_loses_no_acknowledged_write_on_kill_9() {
    let mut node = aof_node(Kind::Warden, "always", "always");
    let (_stop, writer) = hammer(&node);
    wait::until("a few hundred acknowledged writes", UP, || {
        let v: Option<i64> = redis::cmd("GET").arg("counter").query(&mut node.connect()).ok();
        if v.unwrap_or(0) > 300 {
            Ok(())
        } else {
            Err(format!("{v:?}"))
        }
    });
    node.proc.kill();
    let acked = writer.join().unwrap();
    let last = acked.last().map_or(0, |a| a.1);
    let counter = restart_and_read_counter(&mut node);
    assert!(counter >= last, "acknowledged {last} increments, {counter} survived kill -9");
}

#[test]
fn everysec_loses_at_most_about_two_seconds() {
    let mut node = aof_node(Kind::Warden, "everysec", "everysec");
    let (_stop, writer) = hammer(&node);
    wait::until("writes for a while", UP, || {
        let v: Option<i64> = redis::cmd("GET").arg("counter").query(&mut node.connect()).ok();
        if v.unwrap_or(0) > 3000 {
            Ok(())
        } else {
            Err(format!("{v:?}"))
        }
    });
    node.proc.kill();
    let killed = Instant::now();
    let acked = writer.join().unwrap();
    let counter = restart_and_read_counter(&mut node);
    let last = acked.last().map_or(0, |a| a.1);
    if counter < last {
        // The newest surviving write was acknowledged at most ~2 s before the kill.
        let survived_at = acked.iter().find(|a| a.1 == counter).map(|a| a.0);
        let lost_window = survived_at.map_or(Duration::MAX, |t| killed.duration_since(t));
        assert!(lost_window <= Duration::from_millis(2500), "lost {lost_window:?} of writes");
    }
}

fn aof_dir(node: &Node) -> std::path::PathBuf {
    node.proc.dir().join("appendonlydir")
}

fn last_incr(dir: &Path) -> std::path::PathBuf {
    let manifest = std::fs::read_to_string(dir.join("appendonly.aof.manifest")).unwrap();
    let name = manifest
        .lines()
        .rfind(|l| l.ends_with("type i"))
        .and_then(|l| l.split_whitespace().nth(1))
        .unwrap()
        .to_string();
    dir.join(name)
}

#[test]
fn a_torn_tail_is_cut_and_corruption_elsewhere_stops_startup() {
    let mut node = aof_node(Kind::Warden, "torn", "always");
    let mut c = node.connect();
    for i in 0..10 {
        let _: () = cmd(&mut c, &["SET", &format!("k{i}"), "v"]);
    }
    node.proc.kill();
    let incr = last_incr(&aof_dir(&node));
    let good = std::fs::read(&incr).unwrap();
    // A crash mid-write leaves half a command.
    let mut torn = good.clone();
    torn.extend_from_slice(b"*3\r\n$3\r\nSET\r\n$2\r\nzz");
    std::fs::write(&incr, &torn).unwrap();
    node.proc.restart();
    let mut c = wait::until("startup despite the torn tail", UP, || node.try_connect());
    assert_eq!(cmd::<i64>(&mut c, &["DBSIZE"]), 10);
    assert!(node.proc.log().contains("truncating the torn tail"), "{}", node.proc.log());
    assert_eq!(std::fs::read(&incr).unwrap().len(), good.len());
    // Garbage in the middle is not a torn tail: startup stops and names the place.
    node.proc.kill();
    let mut bad = good.clone();
    bad.splice(20..20, b"garbage!".iter().copied());
    std::fs::write(&incr, &bad).unwrap();
    node.proc.restart();
    let status = node.proc.wait_exit(UP).expect("the node exits");
    assert!(!status.success());
    let log = node.proc.log();
    assert!(log.contains("bad file format") && log.contains("at offset"), "{log}");
    assert_eq!(std::fs::read(&incr).unwrap(), bad, "a corrupt file is left untouched");
}

/// 100,000 keys `key:<batch>:<i>`, pipelined.
fn fill_100k(c: &mut redis::Connection) {
    for batch in 0..50 {
        let mut pipe = redis::pipe();
        for i in 0..2000 {
            pipe.cmd("SET").arg(format!("key:{batch}:{i}")).arg("some value").ignore();
        }
        let _: () = pipe.query(c).unwrap();
    }
}

#[test]
fn kill_9_during_a_rewrite_keeps_a_loadable_aof() {
    let mut node = aof_node(Kind::Warden, "rewrite", "everysec");
    let mut c = node.connect();
    fill_100k(&mut c);
    let _: () = cmd(&mut c, &["SET", "last", "written"]);
    let _: String = cmd(&mut c, &["BGREWRITEAOF"]);
    node.proc.kill();
    node.proc.restart();
    let mut c = wait::until("restart after a killed rewrite", UP, || node.try_connect());
    // everysec may lose the last second; everything before BGREWRITEAOF's flush is there.
    let n: i64 = cmd(&mut c, &["DBSIZE"]);
    assert_eq!(n, 100_001, "keys after restart");
    assert_eq!(cmd::<String>(&mut c, &["GET", "last"]), "written");
}

/// A rewrite freezes the dataset and writes the new base while writes continue to the new
/// incremental file: with `appendfsync always`, writes are acknowledged during the rewrite, and
/// every acknowledged one survives kill -9 after it.
#[test]
fn writes_are_acknowledged_during_a_rewrite_and_survive_kill_9() {
    let mut node = aof_node(Kind::Warden, "rewrite-under-load", "always");
    let mut c = node.connect();
    fill_100k(&mut c);
    let (stop, hammering) = hammer(&node);
    let rewrites = |c: &mut redis::Connection| -> (i64, bool) {
        let info: String = cmd(c, &["INFO", "persistence"]);
        let field = |name: &str| -> i64 {
            let line = info.lines().find_map(|l| l.strip_prefix(name)).expect(name);
            line.parse().unwrap()
        };
        (field("aof_rewrites:"), field("aof_rewrite_in_progress:") == 1)
    };
    let (done_before, _) = rewrites(&mut c);
    let began = Instant::now();
    let _: String = cmd(&mut c, &["BGREWRITEAOF"]);
    wait::until("the rewrite to finish", UP, || match rewrites(&mut c) {
        (done, false) if done > done_before => Ok(()),
        other => Err(other),
    });
    let ended = Instant::now();
    stop.store(true, Ordering::Relaxed);
    let acked = hammering.join().unwrap();
    let during = acked.iter().filter(|(at, _)| *at > began && *at < ended).count();
    assert!(during > 0, "no write was acknowledged during the {:?} rewrite", ended - began);
    let last = acked.last().expect("some INCR acknowledged").1;
    let after = restart_and_read_counter(&mut node);
    assert!(after >= last, "acknowledged {last}, found {after} after kill -9");
    let n: i64 = cmd(&mut node.connect(), &["DBSIZE"]);
    assert_eq!(n, 100_001, "keys after restart");
}

/// Writes a mix of types with `from`, shuts it down cleanly, and checks that `to` started on
/// a copy of its appendonlydir holds the same data.
fn exchange(from: Kind, to: Kind, preamble: &str) {
    let source = Node::start(
        from,
        "source",
        &["--appendonly", "yes", "--appendfsync", "everysec", "--aof-use-rdb-preamble", preamble],
    );
    let mut c = source.connect();
    let _: () = cmd(&mut c, &["SET", "s", "v"]);
    let _: () = cmd(&mut c, &["SET", "ttl", "x", "EX", "1000"]);
    let _: i64 = cmd(&mut c, &["RPUSH", "l", "a", "b"]);
    let _: i64 = cmd(&mut c, &["HSET", "h", "f", "1"]);
    let _: i64 = cmd(&mut c, &["SADD", "set", "1", "x"]);
    let _: i64 = cmd(&mut c, &["ZADD", "z", "1.5", "m"]);
    // Redis counts the base it creates at startup as a rewrite: wait for one more.
    let rewrites = |n: &Node| n.info("aof_rewrites").and_then(|v| v.parse::<u64>().ok());
    let before = rewrites(&source).unwrap_or(0);
    let _: String = cmd(&mut c, &["BGREWRITEAOF"]);
    wait::until("the rewrite to finish", UP, || {
        let done = rewrites(&source).unwrap_or(0) > before;
        match source.info("aof_rewrite_in_progress").as_deref() {
            Some("0") if done => Ok(()),
            other => Err(format!("rewrites {:?}, in progress {other:?}", rewrites(&source))),
        }
    });
    // The base has the form asked for: an RDB, or commands (`*…`) in a `.base.aof` file.
    // The manifest names the current base (Redis deletes older ones in the background).
    let manifest = std::fs::read_dir(aof_dir(&source))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "manifest"))
        .expect("a manifest");
    let text = std::fs::read_to_string(&manifest).unwrap();
    let name = text
        .lines()
        .find(|l| l.ends_with("type b"))
        .and_then(|l| l.split(' ').nth(1))
        .unwrap_or_else(|| panic!("no base in {text}"));
    let base = aof_dir(&source).join(name);
    let head = std::fs::read(&base).unwrap();
    if preamble == "yes" {
        assert!(head.starts_with(b"REDIS") && base.extension().unwrap() == "rdb", "{base:?}");
    } else {
        assert!(head.starts_with(b"*") && base.extension().unwrap() == "aof", "{base:?}");
    }
    let _: i64 = cmd(&mut c, &["INCR", "after-rewrite"]);
    let _: () = cmd(&mut c, &["SELECT", "4"]);
    let _: () = cmd(&mut c, &["SET", "db4", "yes"]);
    let expected = dataset(&source);
    let _ = redis::cmd("SHUTDOWN").query::<()>(&mut c);
    let target = aof_node(to, "target", "everysec");
    let mut t = target.connect();
    let _ = redis::cmd("SHUTDOWN").arg("NOSAVE").query::<()>(&mut t);
    let mut target = target;
    target.proc.wait_exit(UP);
    let dst = aof_dir(&target);
    std::fs::remove_dir_all(&dst).unwrap();
    std::fs::create_dir_all(&dst).unwrap();
    for entry in std::fs::read_dir(aof_dir(&source)).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), dst.join(entry.file_name())).unwrap();
    }
    target.proc.restart();
    wait::until("the target to load the other server's AOF", UP, || target.try_connect());
    assert_eq!(dataset(&target), expected);
}

#[test]
fn redis_appendonlydir_loads_in_warden() {
    exchange(Kind::Redis, Kind::Warden, "yes");
    exchange(Kind::Redis, Kind::Warden, "no");
}

#[test]
fn warden_appendonlydir_loads_in_redis() {
    exchange(Kind::Warden, Kind::Redis, "yes");
    exchange(Kind::Warden, Kind::Redis, "no");
}

#[test]
fn the_aof_is_rewritten_automatically_when_it_grows() {
    let node = Node::start(
        Kind::Warden,
        "auto",
        &[
            "--appendonly",
            "yes",
            "--auto-aof-rewrite-min-size",
            "64kb",
            "--auto-aof-rewrite-percentage",
            "50",
        ],
    );
    let mut c = node.connect();
    let rewrites = || node.info("aof_rewrites").and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    // A fresh AOF starts with one rewrite (its base).
    let initial = rewrites();
    for i in 0..3000 {
        let _: () = cmd(&mut c, &["SET", "same-key", &format!("value number {i}")]);
    }
    wait::until("an automatic rewrite", UP, || {
        if rewrites() > initial {
            Ok(())
        } else {
            Err(node.info("aof_current_size"))
        }
    });
    let size: u64 = node.info("aof_current_size").and_then(|v| v.parse().ok()).unwrap();
    assert!(size < 64 * 1024, "the rewritten AOF holds one key, yet is {size} bytes");
}

/// While loading (it may have finished since the -LOADING reply), INFO reports progress as
/// Redis does: bytes loaded out of the total, a percentage and an ETA.
fn check_loading_progress(info: &str) {
    let field = |name: &str| -> Option<f64> {
        info.lines().find_map(|l| l.strip_prefix(&format!("{name}:"))).map(|v| v.parse().unwrap())
    };
    if field("loading") != Some(1.0) {
        return;
    }
    let total = field("loading_total_bytes").expect(info);
    let loaded = field("loading_loaded_bytes").expect(info);
    let perc = field("loading_loaded_perc").expect(info);
    assert!(total > 0.0 && loaded <= total, "{info}");
    assert!((0.0..=100.0).contains(&perc), "{info}");
    assert!(field("loading_eta_seconds").is_some() && field("loading_start_time").is_some());
}

#[test]
fn a_loading_node_answers_loading_never_partial_data() {
    let mut node = aof_node(Kind::Warden, "loading", "everysec");
    let mut c = node.connect();
    for batch in 0..40 {
        let mut pipe = redis::pipe();
        for i in 0..2500 {
            pipe.cmd("SET").arg(format!("key:{batch}:{i}")).arg("v").ignore();
        }
        let _: () = pipe.query(&mut c).unwrap();
    }
    // Written last, so a half-loaded dataset would not have it yet.
    let _: () = cmd(&mut c, &["SET", "last", "here"]);
    node.proc.kill();
    node.proc.restart();
    let client = redis::Client::open(format!("redis://127.0.0.1:{}/", node.port)).unwrap();
    let mut seen_loading = false;
    let value = wait::until("the restarted node to serve its data", UP, || {
        let mut c = client.get_connection().map_err(|e| e.to_string())?;
        match redis::cmd("GET").arg("last").query::<Option<String>>(&mut c) {
            Ok(v) => Ok(v),
            Err(e) if e.code() == Some("LOADING") => {
                seen_loading = true;
                let info: String = redis::cmd("INFO").arg("persistence").query(&mut c).unwrap();
                check_loading_progress(&info);
                Err("loading".to_string())
            }
            Err(e) => Err(e.to_string()),
        }
    });
    // Either the node was caught loading (and said so), or it served the whole dataset.
    assert_eq!(
        value.as_deref(),
        Some("here"),
        "served before loading finished (LOADING seen: {seen_loading})"
    );
    assert_eq!(cmd::<i64>(&mut node.connect(), &["DBSIZE"]), 100_001);
}

/// A Redis 6 single-file AOF (`dir/appendonly.aof`, no appendonlydir) is taken over as Redis 7
/// takes it over: it moves into appendonlydir as the manifest's base, and loads. A command in
/// it that fails (INCR of a non-number) means the data diverged: with
/// `propagation-error-behavior ignore` it is logged and counted (`unexpected_error_replies`),
/// with `panic` the node refuses to start. Each case runs on redis-server first.
#[test]
fn an_old_style_aof_is_migrated_and_its_failed_commands_reported() {
    const OLD_AOF: &[u8] = b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n\
        *2\r\n$4\r\nINCR\r\n$1\r\nk\r\n*3\r\n$3\r\nSET\r\n$2\r\nk2\r\n$2\r\nv2\r\n";
    for kind in [Kind::Redis, Kind::Warden] {
        for behaviour in ["ignore", "panic"] {
            let data = tempfile::tempdir().unwrap();
            std::fs::write(data.path().join("appendonly.aof"), OLD_AOF).unwrap();
            let port = integration_tests::ports::allocate();
            let dir = data.path().display().to_string();
            let args = integration_tests::nodes::args(
                port,
                &["--dir", &dir, "--appendonly", "yes", "--propagation-error-behavior", behaviour],
            );
            let name = format!("{kind:?}-{behaviour}");
            let mut proc = integration_tests::process::Proc::start(&name, &kind.program(), &args);
            let moved = data.path().join("appendonlydir").join("appendonly.aof");
            if behaviour == "panic" {
                let status = proc.wait_exit(UP);
                assert!(status.is_some_and(|s| !s.success()), "{name}: {status:?}");
                assert!(moved.exists(), "{name}: the old AOF was not migrated");
                continue;
            }
            let node = Node { proc, port, kind };
            let mut c = wait::until(&format!("{name} to load"), UP, || node.try_connect());
            assert_eq!(cmd::<String>(&mut c, &["GET", "k2"]), "v2", "{name}");
            assert_eq!(node.info("unexpected_error_replies").as_deref(), Some("1"), "{name}");
            assert!(!data.path().join("appendonly.aof").exists(), "{name}: not moved");
            let manifest = std::fs::read_to_string(
                data.path().join("appendonlydir").join("appendonly.aof.manifest"),
            )
            .unwrap();
            assert!(
                manifest.starts_with("file appendonly.aof seq 1 type b\n"),
                "{name}: {manifest}"
            );
        }
    }
}

/// BGREWRITEAOF with the AOF off still writes a base, as Redis does: appendonlydir gets the
/// dataset as of that moment under a manifest that lists only it, a second rewrite replaces
/// the first, and a node started on that directory with `appendonly yes` loads it.
#[test]
fn bgrewriteaof_with_the_aof_off_writes_a_base_a_later_start_loads() {
    for kind in [Kind::Redis, Kind::Warden] {
        let name = format!("{kind:?}");
        let mut node = Node::start(kind, &name, &[]);
        let dir = node.proc.dir().join("appendonlydir");
        let mut c = node.connect();
        for value in ["1", "2"] {
            let _: () = cmd(&mut c, &["SET", "a", value]);
            let started: String = cmd(&mut c, &["BGREWRITEAOF"]);
            assert_eq!(started, "Background append only file rewriting started", "{name}");
            let done = value.parse::<u64>().unwrap().to_string();
            wait::until("the rewrite to finish", UP, || {
                let (running, count) =
                    (node.info("aof_rewrite_in_progress"), node.info("aof_rewrites"));
                match (running.as_deref(), count) {
                    (Some("0"), Some(n)) if n == done => Ok(()),
                    other => Err(format!("{other:?}")),
                }
            });
        }
        assert_eq!(node.info("aof_last_bgrewrite_status").as_deref(), Some("ok"), "{name}");
        let manifest = std::fs::read_to_string(dir.join("appendonly.aof.manifest")).unwrap();
        assert_eq!(manifest, "file appendonly.aof.2.base.rdb seq 2 type b\n", "{name}");
        let mut files: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        files.sort();
        assert_eq!(files, ["appendonly.aof.2.base.rdb", "appendonly.aof.manifest"], "{name}");
        // Not in the base: the AOF is off, so this write is in no file.
        let _: () = cmd(&mut c, &["SET", "b", "after"]);
        node.proc.kill();
        let data = node.proc.dir().display().to_string();
        let aof =
            Node::start(kind, &format!("{name}-aof"), &["--dir", &data, "--appendonly", "yes"]);
        let mut c = aof.connect();
        assert_eq!(cmd::<String>(&mut c, &["GET", "a"]), "2", "{name}");
        assert_eq!(cmd::<i64>(&mut c, &["EXISTS", "b"]), 0, "{name}");
    }
}

/// DEBUG LOADAOF empties the dataset and loads the AOF back (TTLs included), without
/// appending the replayed commands to the AOF again, as Redis does.
#[test]
fn debug_loadaof_reloads_the_dataset_from_the_aof() {
    for kind in [Kind::Redis, Kind::Warden] {
        let name = format!("{kind:?}");
        let args = ["--appendonly", "yes", "--enable-debug-command", "yes"];
        let mut node = Node::start(kind, &name, &args);
        let mut c = node.connect();
        let _: () = cmd(&mut c, &["SET", "a", "1"]);
        let _: () = cmd(&mut c, &["SET", "b", "2", "EX", "100"]);
        let _: i64 = cmd(&mut c, &["RPUSH", "l", "x", "y"]);
        let _: () = cmd(&mut c, &["DEBUG", "LOADAOF"]);
        assert_eq!(cmd::<i64>(&mut c, &["DBSIZE"]), 3, "{name}");
        assert_eq!(cmd::<String>(&mut c, &["GET", "a"]), "1", "{name}");
        let ttl: i64 = cmd(&mut c, &["TTL", "b"]);
        assert!((1..=100).contains(&ttl), "{name}: TTL {ttl}");
        assert_eq!(cmd::<Vec<String>>(&mut c, &["LRANGE", "l", "0", "-1"]), ["x", "y"], "{name}");
        // Had the replay been appended again, the restart would push x and y twice.
        node.proc.kill();
        node.proc.restart();
        let mut c = wait::until("the restart", UP, || node.try_connect());
        assert_eq!(cmd::<Vec<String>>(&mut c, &["LRANGE", "l", "0", "-1"]), ["x", "y"], "{name}");
    }
}

/// PUBLISH and SPUBLISH are never written to the AOF (replaying them would resend old
/// messages), while the writes around them are; the same on Redis.
#[test]
fn published_messages_stay_out_of_the_aof() {
    for kind in [Kind::Redis, Kind::Warden] {
        let node = aof_node(kind, &format!("{kind:?}"), "always");
        let mut c = node.connect();
        let _: () = cmd(&mut c, &["SET", "before", "1"]);
        let _: i64 = cmd(&mut c, &["PUBLISH", "news", "plain-message"]);
        let _: i64 = cmd(&mut c, &["SPUBLISH", "news", "shard-message"]);
        let _: () = cmd(&mut c, &["SET", "after", "2"]);
        let text = String::from_utf8_lossy(&std::fs::read(last_incr(&aof_dir(&node))).unwrap())
            .to_lowercase();
        assert!(text.contains("before") && text.contains("after"), "{kind:?}: {text:?}");
        assert!(!text.contains("publish") && !text.contains("message"), "{kind:?}: {text:?}");
    }
}

/// Turning the AOF off and on again starts a new AOF from what is in memory: nothing written
/// to the AOF of the earlier period is replayed afterwards (its file names come round again
/// with the new sequence), whether the AOF is reloaded with DEBUG LOADAOF or by a restart.
#[test]
fn an_aof_turned_off_and_on_again_replays_nothing_from_before() {
    let mut node = Node::start(
        Kind::Warden,
        "node",
        &["--appendonly", "yes", "--enable-debug-command", "yes"],
    );
    let mut c = node.connect();
    let wait_rewritten = |c: &mut redis::Connection| {
        wait::until("the first base of the AOF to be written", UP, || {
            let info: String = cmd(c, &["INFO", "persistence"]);
            match info.contains("aof_rewrite_in_progress:0") {
                true => Ok(()),
                false => Err(info),
            }
        })
    };
    // The first period: commands that must not come back.
    for _ in 0..50 {
        let _: i64 = cmd(&mut c, &["RPUSH", "list", "old"]);
    }
    let _: () = cmd(&mut c, &["CONFIG", "SET", "appendonly", "no"]);
    let _: () = cmd(&mut c, &["DEL", "list"]);
    let _: () = cmd(&mut c, &["CONFIG", "SET", "appendonly", "yes"]);
    wait_rewritten(&mut c);
    for _ in 0..3 {
        let _: i64 = cmd(&mut c, &["RPUSH", "list", "new"]);
    }
    let expected = dataset(&node);
    let _: () = cmd(&mut c, &["DEBUG", "LOADAOF"]);
    assert_eq!(dataset(&node), expected, "after DEBUG LOADAOF");
    node.proc.kill();
    node.proc.restart();
    wait::until("the node to restart from its AOF", UP, || node.try_connect());
    assert_eq!(dataset(&node), expected, "after a restart");
}
