//! warden-node as a real process: start-up, configuration errors, signals.

use std::time::Duration;

use integration_tests::{bin_dir, ports, process::Proc, wait};

fn node_bin() -> std::path::PathBuf {
    bin_dir().join("warden-node")
}

fn ping(port: u16) -> Result<String, String> {
    let client =
        redis::Client::open(format!("redis://127.0.0.1:{port}/")).map_err(|e| e.to_string())?;
    let mut conn =
        client.get_connection_with_timeout(Duration::from_secs(1)).map_err(|e| e.to_string())?;
    redis::cmd("PING").query::<String>(&mut conn).map_err(|e| e.to_string())
}

#[test]
fn starts_from_the_shipped_config_and_stops_on_sigterm() {
    let port = ports::allocate();
    let config =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/configs/node.conf");
    let args = vec![
        config.display().to_string(),
        "--port".into(),
        port.to_string(),
        "--bind".into(),
        "127.0.0.1".into(),
    ];
    let mut node = Proc::start("node", &node_bin(), &args);
    let pong = wait::until("warden-node to answer PING", Duration::from_secs(10), || ping(port));
    assert_eq!(pong, "PONG");
    node.signal(libc::SIGTERM);
    let status = node.wait_exit(Duration::from_secs(10)).expect("it was running");
    assert!(status.success(), "exit status after SIGTERM: {status:?}\n{}", node.log());
}

#[test]
fn bad_config_stops_startup_naming_file_line_and_directive() {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("bad.conf");
    std::fs::write(&conf, "port 6379\nmaxclients lots\n").unwrap();
    let mut node = Proc::start("node", &node_bin(), &[conf.display().to_string()]);
    let status = node.wait_exit(Duration::from_secs(10)).expect("it was running");
    assert!(!status.success());
    let log = node.log();
    assert!(log.contains(&format!("{}:2: directive 'maxclients'", conf.display())), "{log}");
}

/// A config file in a fresh directory, written by `text` for a free port.
fn config_file(text: impl FnOnce(u16) -> String) -> (tempfile::TempDir, std::path::PathBuf, u16) {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("node.conf");
    let port = ports::allocate();
    std::fs::write(&conf, text(port)).unwrap();
    (dir, conf, port)
}

/// Starts warden-node with `directive value` and expects startup to stop with a log naming
/// `refusal`.
fn assert_refused_at_startup(directive: &str, value: &str, refusal: &str) {
    let port = ports::allocate();
    let args: Vec<String> =
        ["--port", &port.to_string(), directive, value].iter().map(|s| s.to_string()).collect();
    let mut node = Proc::start("node", &node_bin(), &args);
    let status = node.wait_exit(Duration::from_secs(10)).expect("it was running");
    assert!(!status.success());
    assert!(node.log().contains(refusal), "{}", node.log());
}

#[test]
fn features_that_have_not_landed_are_refused_at_startup() {
    assert_refused_at_startup("--cluster-enabled", "yes", "'cluster-enabled yes' is not supported");
}

#[test]
fn config_rewrite_updates_the_file_in_place_and_keeps_comments() {
    let (_dir, conf, port) = config_file(|port| {
        format!("# my settings\nport {port}\nbind 127.0.0.1\nmaxclients 100\ntimeout 0\n")
    });
    let _node = Proc::start("node", &node_bin(), &[conf.display().to_string()]);
    wait::until("warden-node to answer PING", Duration::from_secs(10), || ping(port));
    let client = redis::Client::open(format!("redis://127.0.0.1:{port}/")).unwrap();
    let mut c = client.get_connection().unwrap();
    let _: () = redis::cmd("CONFIG").arg("SET").arg("maxclients").arg("50").query(&mut c).unwrap();
    let _: () =
        redis::cmd("CONFIG").arg("SET").arg("slowlog-max-len").arg("7").query(&mut c).unwrap();
    let _: () = redis::cmd("CONFIG").arg("REWRITE").query(&mut c).unwrap();
    let text = std::fs::read_to_string(&conf).unwrap();
    assert!(text.starts_with("# my settings\n"), "{text}");
    assert!(text.contains("\nmaxclients 50\n") && !text.contains("maxclients 100"), "{text}");
    assert!(text.contains("\nslowlog-max-len 7\n"), "{text}");
    assert_eq!(text.matches(&format!("port {port}")).count(), 1, "{text}");
}

/// Settings from Debian's stock redis.conf that warden-node now knows: at their stock values
/// they start the node (and `disable-thp yes` really turns transparent huge pages off for the
/// process); a value asking for behaviour warden-node does not have is refused.
#[test]
fn stock_redis_conf_settings_are_understood() {
    let (_dir, conf, port) = config_file(|port| {
        format!(
            "port {port}\nbind 127.0.0.1\nrdb-del-sync-files no\n\
             repl-diskless-sync-max-replicas 0\nrepl-disable-tcp-nodelay no\n\
             acllog-max-len 128\nreplica-lazy-flush no\noom-score-adj no\n\
             oom-score-adj-values 0 200 800\ndisable-thp yes\nno-appendfsync-on-rewrite no\n\
             aof-timestamp-enabled no\nhll-sparse-max-bytes 3000\nstream-node-max-bytes 4096\n\
             stream-node-max-entries 100\ndynamic-hz yes\njemalloc-bg-thread yes\n\
             rdb-save-incremental-fsync yes\naof-rewrite-incremental-fsync yes\n"
        )
    });
    let node = Proc::start("node", &node_bin(), &[conf.display().to_string()]);
    wait::until("warden-node to answer PING", Duration::from_secs(10), || ping(port));
    let status = std::fs::read_to_string(format!("/proc/{}/status", node.pid().unwrap())).unwrap();
    assert!(status.contains("THP_enabled:\t0"), "{status}");
    let client = redis::Client::open(format!("redis://127.0.0.1:{port}/")).unwrap();
    let mut c = client.get_connection().unwrap();
    let got: Vec<String> =
        redis::cmd("CONFIG").arg("GET").arg("oom-score-adj-values").query(&mut c).unwrap();
    assert_eq!(got, ["oom-score-adj-values", "0 200 800"]);

    assert_refused_at_startup(
        "--aof-timestamp-enabled",
        "yes",
        "'aof-timestamp-enabled yes' is not supported",
    );
}

/// Kills a daemonised node (found through its pid file) if the test ends early.
struct Daemon(std::path::PathBuf);

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(pid) = std::fs::read_to_string(&self.0).ok().and_then(|p| p.trim().parse().ok())
        {
            // SAFETY: kill(2) with a pid read from our own daemon's pid file.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
    }
}

/// Debian's stock /etc/redis/redis.conf, unchanged, starts a node: every directive in it is
/// understood. Its `daemonize yes` forks a daemon (the starting process exits 0 at once) that
/// writes its pid file, titles itself `<argv0> 127.0.0.1:<port>` as Redis does, logs to the
/// configured file, and removes the pid file when it shuts down. Only the paths and the port
/// are overridden, as an operator running a second instance would.
#[test]
fn debian_stock_redis_conf_starts_a_daemon() {
    let stock = std::path::Path::new("/etc/redis/redis.conf");
    assert!(stock.exists(), "install redis-server (./scripts/test does) for its stock config");
    let dir = tempfile::tempdir().unwrap();
    let port = ports::allocate();
    let pidfile = dir.path().join("node.pid");
    let logfile = dir.path().join("node.log");
    let _daemon = Daemon(pidfile.clone());
    let args = [
        stock.display().to_string(),
        "--port".into(),
        port.to_string(),
        "--pidfile".into(),
        pidfile.display().to_string(),
        "--logfile".into(),
        logfile.display().to_string(),
        "--dir".into(),
        dir.path().display().to_string(),
    ];
    let mut starter = Proc::start("node", &node_bin(), &args);
    let status = starter.wait_exit(Duration::from_secs(10)).expect("it was running");
    assert!(status.success(), "the starting process: {status:?}\n{}", starter.log());
    let log = || std::fs::read_to_string(&logfile).unwrap_or_default();
    wait::until("the daemon to answer PING", Duration::from_secs(10), || {
        ping(port).map_err(|e| format!("{e}; log:\n{}", log()))
    });
    let pid = std::fs::read_to_string(&pidfile).unwrap().trim().to_string();
    assert_ne!(pid, starter.pid().map(|p| p.to_string()).unwrap_or_default());
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap();
    let title = String::from_utf8_lossy(&cmdline).trim_end_matches('\0').to_string();
    assert_eq!(title, format!("{} 127.0.0.1:{port}", node_bin().display()));
    let client = redis::Client::open(format!("redis://127.0.0.1:{port}/")).unwrap();
    let mut c = client.get_connection().unwrap();
    let _ = redis::cmd("SHUTDOWN").arg("NOSAVE").query::<()>(&mut c);
    wait::until("the pid file to be removed", Duration::from_secs(10), || {
        if pidfile.exists() {
            Err(format!("{} still exists; log:\n{}", pidfile.display(), log()))
        } else {
            Ok(())
        }
    });
    assert!(log().contains("Ready to accept connections"), "{}", log());
}

/// CONFIG REWRITE records the replication role as it is now, as Redis does (Sentinel and the
/// supervisors rely on it to make a failover survive restarts): REPLICAOF then CONFIG REWRITE
/// writes `replicaof <host> <port>` (an old `slaveof` line is replaced), and a restart comes
/// back as that replica; REPLICAOF NO ONE then CONFIG REWRITE removes the line. Settings of
/// several words are written as words.
#[test]
fn config_rewrite_persists_the_replication_role() {
    let master_port = ports::allocate();
    let master_args: Vec<String> =
        ["--port", &master_port.to_string(), "--bind", "127.0.0.1", "--save", ""]
            .iter()
            .map(|s| s.to_string())
            .collect();
    let _master = Proc::start("master", &node_bin(), &master_args);
    wait::until("the master to answer PING", Duration::from_secs(10), || ping(master_port));
    let (_dir, conf, port) = config_file(|port| {
        format!("port {port}\nbind 127.0.0.1\n# old name\nslaveof 127.0.0.1 1\nsave 900 1\n")
    });
    let mut node = Proc::start("node", &node_bin(), &[conf.display().to_string()]);
    wait::until("warden-node to answer PING", Duration::from_secs(10), || ping(port));
    let connect = || redis::Client::open(format!("redis://127.0.0.1:{port}/")).unwrap();
    let mut c = connect().get_connection().unwrap();
    let _: () = redis::cmd("REPLICAOF").arg("127.0.0.1").arg(master_port).query(&mut c).unwrap();
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("client-output-buffer-limit")
        .arg("pubsub 1mb 0 0")
        .query(&mut c)
        .unwrap();
    let _: () = redis::cmd("CONFIG").arg("REWRITE").query(&mut c).unwrap();
    let text = std::fs::read_to_string(&conf).unwrap();
    assert!(text.contains(&format!("\nreplicaof 127.0.0.1 {master_port}\n")), "{text}");
    assert!(!text.contains("slaveof"), "{text}");
    assert!(text.contains("# old name\n") && text.contains("\nsave 900 1\n"), "{text}");
    assert!(
        text.contains("\nclient-output-buffer-limit normal 0 0 0 slave 268435456 67108864 60 pubsub 1048576 0 0\n"),
        "{text}"
    );
    node.restart();
    let role =
        wait::until("the restarted node to follow the master", Duration::from_secs(10), || {
            let mut c = connect().get_connection().map_err(|e| e.to_string())?;
            let info: String =
                redis::cmd("INFO").arg("replication").query(&mut c).map_err(|e| e.to_string())?;
            if info.contains(&format!("master_port:{master_port}")) {
                Ok(info)
            } else {
                Err(info)
            }
        });
    assert!(role.contains("role:slave"), "{role}");
    let mut c = connect().get_connection().unwrap();
    let _: () = redis::cmd("REPLICAOF").arg("NO").arg("ONE").query(&mut c).unwrap();
    let _: () = redis::cmd("CONFIG").arg("REWRITE").query(&mut c).unwrap();
    let text = std::fs::read_to_string(&conf).unwrap();
    assert!(!text.contains("replicaof") && !text.contains("slaveof"), "{text}");
}

/// The default `bind * -::*` listens on IPv4 and IPv6 side by side (the IPv6 socket is
/// IPv6-only, as Redis makes it), so both loopbacks answer.
#[test]
fn the_default_bind_listens_on_ipv4_and_ipv6() {
    let port = ports::allocate();
    let args: Vec<String> =
        ["--port", &port.to_string(), "--save", ""].iter().map(|s| s.to_string()).collect();
    let node = Proc::start("node", &node_bin(), &args);
    wait::until("IPv4 loopback to answer PING", Duration::from_secs(10), || ping(port));
    let pong = wait::until("IPv6 loopback to answer PING", Duration::from_secs(10), || {
        let client =
            redis::Client::open(format!("redis://[::1]:{port}/")).map_err(|e| e.to_string())?;
        let mut c = client.get_connection().map_err(|e| e.to_string())?;
        redis::cmd("PING").query::<String>(&mut c).map_err(|e| e.to_string())
    });
    assert_eq!(pong, "PONG");
    assert!(!node.log().contains("skipping optional bind address"), "{}", node.log());
}

/// Monitoring reads INFO by field name: `INFO everything` has the same sections in the same
/// order, and the same fields in each, as redis-server 7.0 (values aside), plus the
/// `warden_version` line the issue asks for. Per-command lines come in hash order in Redis:
/// latencystats' are compared as sets (the commands that ran).
#[test]
fn info_has_redis_sections_and_fields() {
    use integration_tests::nodes::{Kind, Node};
    let per_command = |l: &str| {
        ["cmdstat_", "errorstat_", "latency_percentiles_usec_"].iter().any(|p| l.starts_with(p))
    };
    let names = |kind: Kind| -> (Vec<String>, Vec<String>) {
        let node = Node::start(kind, "info", &[]);
        let mut c = node.connect();
        let _: () = redis::cmd("SET").arg("k").arg("v").query(&mut c).unwrap();
        let info: String = redis::cmd("INFO").arg("everything").query(&mut c).unwrap();
        let name = |l: &str| {
            if l.starts_with('#') {
                l.to_string()
            } else {
                l.split(':').next().unwrap().to_string()
            }
        };
        let fields = info
            .lines()
            .filter(|l| !l.is_empty() && !per_command(l))
            .map(name)
            .filter(|name| name != "warden_version")
            .collect();
        // The redis crate's connection handshake sends CLIENT SETINFO (Redis 7.2), which 7.0
        // refuses: its counters differ by design.
        let mut commands: Vec<String> = info
            .lines()
            .filter(|l| l.starts_with("latency_percentiles_usec_") && !l.contains("setinfo"))
            .map(name)
            .collect();
        commands.sort();
        (fields, commands)
    };
    assert_eq!(names(Kind::Warden), names(Kind::Redis));
}

fn query(port: u16, args: &[&str]) -> Result<redis::Value, String> {
    let client =
        redis::Client::open(format!("redis://127.0.0.1:{port}/")).map_err(|e| e.to_string())?;
    let mut conn =
        client.get_connection_with_timeout(Duration::from_secs(1)).map_err(|e| e.to_string())?;
    let mut cmd = redis::cmd(args[0]);
    for a in &args[1..] {
        cmd.arg(*a);
    }
    cmd.query(&mut conn).map_err(|e| e.to_string())
}

/// As Redis: SIGTERM whose final save fails does not stop the server (the writes since the last
/// snapshot would be lost); `shutdown-on-sigterm` with FORCE exits anyway, and NOSAVE exits
/// without saving.
#[test]
fn sigterm_keeps_serving_when_the_final_save_fails_unless_forced() {
    let data = tempfile::tempdir().expect("a temp dir");
    let port = ports::allocate();
    let args: Vec<String> =
        ["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "3600 1"]
            .iter()
            .map(|s| s.to_string())
            .chain(["--dir".to_string(), data.path().display().to_string()])
            .collect();
    let mut node = Proc::start("node", &node_bin(), &args);
    wait::until("warden-node to answer PING", Duration::from_secs(10), || ping(port));
    query(port, &["SET", "k", "v"]).expect("SET");
    // The save cannot create its file in a directory that no longer exists (permissions would
    // not stop root).
    std::fs::remove_dir_all(data.path()).expect("removing the data dir");
    node.signal(libc::SIGTERM);
    wait::until("the refused shutdown in the log", Duration::from_secs(10), || {
        let log = node.log();
        if log.contains("SIGTERM received but errors trying to shut down the server") {
            Ok(())
        } else {
            Err(log)
        }
    });
    assert_eq!(ping(port).as_deref(), Ok("PONG"), "still serving\n{}", node.log());

    query(port, &["CONFIG", "SET", "shutdown-on-sigterm", "force"]).expect("CONFIG SET");
    node.signal(libc::SIGTERM);
    let status = node.wait_exit(Duration::from_secs(10)).expect("it stops when forced");
    assert!(status.success(), "exit status: {status:?}\n{}", node.log());
}

#[test]
fn sigterm_with_nosave_exits_without_saving() {
    let port = ports::allocate();
    let data = tempfile::tempdir().expect("a temp dir");
    let args: Vec<String> = vec![
        "--port".into(),
        port.to_string(),
        "--bind".into(),
        "127.0.0.1".into(),
        "--save".into(),
        "3600 1".into(),
        "--dir".into(),
        data.path().display().to_string(),
        "--shutdown-on-sigterm".into(),
        "nosave".into(),
    ];
    let mut node = Proc::start("node", &node_bin(), &args);
    wait::until("warden-node to answer PING", Duration::from_secs(10), || ping(port));
    query(port, &["SET", "k", "v"]).expect("SET");
    node.signal(libc::SIGTERM);
    let status = node.wait_exit(Duration::from_secs(10)).expect("it stops");
    assert!(status.success(), "exit status: {status:?}\n{}", node.log());
    assert!(!data.path().join("dump.rdb").exists(), "NOSAVE wrote a snapshot\n{}", node.log());
}
