//! The `redis` crate's Sentinel client finds the master through three in-process supervisors,
//! and finds the new one after the master (a real redis-server) is killed.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use redis::sentinel::{SentinelClient, SentinelServerType};

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

fn redis_server(master: Option<u16>) -> Node {
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

fn write_through(sentinels: &[String]) -> Result<u16, String> {
    let mut client = SentinelClient::build(
        sentinels.to_vec(),
        "mymaster".to_string(),
        None,
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
    let mut master = redis_server(None);
    let replica = redis_server(Some(master.port));
    until("the replica to sync", Duration::from_secs(20), || {
        let mut c = redis::Client::open(format!("redis://127.0.0.1:{}/", replica.port))
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
                 sentinel down-after-milliseconds mymaster 1000\n",
                dirs[i].path().display(),
                i + 1,
                master.port
            );
            let config =
                sentinel::config::Config::from_lines(&common::config::parse_text(&text, "test.conf").unwrap()).unwrap();
            let stop = stop.clone();
            tokio::spawn(async move { sentinel::supervisor::run(config, vec![client], raft, stop).await });
        }
    });

    let first =
        until("the redis crate to write through discovery", Duration::from_secs(20), || {
            write_through(&sentinel_urls)
        });
    assert_eq!(first, master.port);

    let _ = master.child.kill();
    let _ = master.child.wait();
    let second =
        until("the redis crate to find the promoted replica", Duration::from_secs(20), || {
            let port = write_through(&sentinel_urls)?;
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
