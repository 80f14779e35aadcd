//! The `redis` crate's Sentinel client finds the master through three in-process supervisors,
//! and finds the new one after the master (a real redis-server) is killed.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use redis::sentinel::{SentinelClient, SentinelNodeConnectionInfo, SentinelServerType};

struct Node {
    port: u16,
    child: Child,
    _dir: tempfile::TempDir,
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn redis_server(master: Option<u16>, password: Option<&str>) -> Node {
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = Command::new("redis-server");
    cmd.args([
        "--port",
        &port.to_string(),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
    ]);
    if let Some(m) = master {
        cmd.args(["--replicaof", "127.0.0.1", &m.to_string()]);
    }
    if let Some(pw) = password {
        cmd.args(["--requirepass", pw, "--masterauth", pw]);
    }
    let child = cmd
        .current_dir(dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("redis-server is installed (scripts/test installs it)");
    Node { port, child, _dir: dir }
}

/// Polls `probe` until it succeeds; panics with the last error after `timeout`.
fn until<T>(what: &str, timeout: Duration, mut probe: impl FnMut() -> Result<T, String>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        match probe() {
            Ok(v) => return v,
            Err(e) if Instant::now() > deadline => {
                panic!("timed out waiting for {what}; last: {e}")
            }
            Err(_) => std::thread::sleep(Duration::from_millis(20)),
        }
    }
}

fn write_through(sentinels: &[String], password: Option<&str>) -> Result<u16, String> {
    let node_info = password.map(|pw| {
        SentinelNodeConnectionInfo::default()
            .set_redis_connection_info(redis::RedisConnectionInfo::default().set_password(pw))
    });
    let mut client = SentinelClient::build(
        sentinels.to_vec(),
        "mymaster".to_string(),
        node_info,
        SentinelServerType::Master,
    )
    .map_err(|e| e.to_string())?;
    let mut conn = client.get_connection().map_err(|e| e.to_string())?;
    let _: () = redis::cmd("SET").arg("k").arg("v").query(&mut conn).map_err(|e| e.to_string())?;
    let info: String =
        redis::cmd("INFO").arg("server").query(&mut conn).map_err(|e| e.to_string())?;
    info.lines()
        .find_map(|l| l.trim().strip_prefix("tcp_port:").and_then(|p| p.parse().ok()))
        .ok_or_else(|| "no tcp_port".to_string())
}

#[test]
fn the_redis_crate_sentinel_client_follows_a_failover() {
    failover_through_the_redis_crate(None);
}

/// With `requirepass` on the nodes: the supervisors use `sentinel auth-pass` for monitoring
/// and for the reconfiguration transaction.
#[test]
fn the_same_with_password_protected_nodes() {
    failover_through_the_redis_crate(Some("node-secret"));
}

fn failover_through_the_redis_crate(password: Option<&str>) {
    // WARDEN_TEST_LOG=1 shows the in-process supervisors' logs (on stderr, not captured).
    if std::env::var_os("WARDEN_TEST_LOG").is_some() {
        let _ = common::telemetry::init("info,raft=warn", None);
    }
    let mut master = redis_server(None, password);
    let replica = redis_server(Some(master.port), password);
    let auth = password.map(|pw| format!(":{pw}@")).unwrap_or_default();
    until("the replica to sync", Duration::from_secs(20), || {
        let mut c = redis::Client::open(format!("redis://{auth}127.0.0.1:{}/", replica.port))
            .and_then(|c| c.get_connection())
            .map_err(|e| e.to_string())?;
        let info: String =
            redis::cmd("INFO").arg("replication").query(&mut c).map_err(|e| e.to_string())?;
        if info.contains("master_link_status:up") {
            Ok(())
        } else {
            Err(info)
        }
    });

    let runtime =
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let (trigger, stop) = common::shutdown::channel();
    let dirs: Vec<tempfile::TempDir> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let mut sentinel_urls = Vec::new();
    runtime.block_on(async {
        let mut raft = Vec::new();
        let mut clients = Vec::new();
        for _ in 0..3 {
            raft.push(tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap());
            clients.push(tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap());
        }
        let mut peers = String::new();
        for (i, l) in raft.iter().enumerate() {
            peers.push_str(&format!("raft-peer {} 127.0.0.1 {}\n", i + 1, l.local_addr().unwrap().port()));
        }
        for (i, (raft, client)) in raft.into_iter().zip(clients).enumerate() {
            sentinel_urls.push(format!("redis://127.0.0.1:{}/", client.local_addr().unwrap().port()));
            let text = format!(
                "dir {}\nraft-id {}\n{peers}supervisor-auth s\nsentinel monitor mymaster 127.0.0.1 {} 2\n\
                 sentinel down-after-milliseconds mymaster 1000\n{}",
                dirs[i].path().display(),
                i + 1,
                master.port,
                password.map(|pw| format!("sentinel auth-pass mymaster {pw}\n")).unwrap_or_default()
            );
            let config =
                sentinel::config::Config::from_lines(&common::config::parse_text(&text, "test.conf").unwrap()).unwrap();
            let stop = stop.clone();
            tokio::spawn(async move { sentinel::supervisor::run(config, vec![client], raft, stop).await });
        }
    });

    let first =
        until("the redis crate to write through discovery", Duration::from_secs(20), || {
            write_through(&sentinel_urls, password)
        });
    assert_eq!(first, master.port);
    // Steady state before the fault: every supervisor has seen the replica in sync (without
    // that evidence of lineage it would rightly refuse to promote it).
    for url in &sentinel_urls {
        until("each supervisor to see the replica in sync", Duration::from_secs(20), || {
            let mut c = redis::Client::open(url.as_str())
                .and_then(|c| c.get_connection())
                .map_err(|e| e.to_string())?;
            let replicas: Vec<Vec<String>> = redis::cmd("SENTINEL")
                .arg("replicas")
                .arg("mymaster")
                .query(&mut c)
                .map_err(|e| e.to_string())?;
            let synced = replicas
                .iter()
                .any(|r| r.chunks(2).any(|kv| kv[0] == "master-link-status" && kv[1] == "ok"));
            if synced {
                Ok(())
            } else {
                Err(format!("{replicas:?}"))
            }
        });
    }

    let _ = master.child.kill();
    let _ = master.child.wait();
    let second =
        until("the redis crate to find the promoted replica", Duration::from_secs(20), || {
            let port = write_through(&sentinel_urls, password)?;
            if port == replica.port {
                Ok(port)
            } else {
                Err(format!("still {port}"))
            }
        });
    assert_eq!(second, replica.port);
    trigger.fire();
    drop(runtime);
}
