//! The reference server: Debian's `redis-server` 7.0 as a child process on a free loopback port,
//! with its own temp dir and log file. A [`RedisProcess`] guard kills it when dropped and, when
//! the test is failing, prints the tail of its log.
//!
//! The binary is `/usr/bin/redis-server` unless `REDIS_SERVER=/path/to/redis-server` names
//! another; it must be 7.0.x, because the comparisons are written against 7.0's answers.

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::wire::{escape, Wire};

/// How long `redis-server` may take to answer its first PING.
const START_DEADLINE: Duration = Duration::from_secs(10);
/// Ports tried when the one we picked is taken before `redis-server` binds it.
const START_ATTEMPTS: usize = 5;
const DEFAULT_REDIS: &str = "/usr/bin/redis-server";
const INSTALL_HINT: &str = "the comparison suites need Debian's redis-server 7.0: run \
     `./scripts/test` (the README's test command, which installs it), or \
     `apt-get update && apt-get install -y redis-server` and then \
     `cargo test -p warden-node --test compat --test differential`";

/// The reference binary: `$REDIS_SERVER`, else Debian's path. Panics with the install hint
/// when it is not there.
pub fn redis_binary() -> PathBuf {
    let binary =
        std::env::var_os("REDIS_SERVER").map(PathBuf::from).unwrap_or_else(|| DEFAULT_REDIS.into());
    assert!(binary.is_file(), "redis-server not found at {}: {INSTALL_HINT}", binary.display());
    binary
}

/// A `redis-server` child process; dropping it kills the process (and prints the tail of its
/// log if the test is failing).
pub struct RedisProcess {
    child: Child,
    pub addr: SocketAddr,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl RedisProcess {
    /// Starts `binary` without persistence, with DEBUG enabled, and waits until it answers.
    pub async fn start(binary: &Path) -> Result<RedisProcess, String> {
        let mut last_error = String::new();
        for attempt in 1..=START_ATTEMPTS {
            let dir = tempfile::tempdir().map_err(|e| format!("create a temp dir: {e}"))?;
            let port = free_port();
            let log = dir.path().join("redis.log");
            let out = std::fs::File::create(&log)
                .map_err(|e| format!("create {}: {e}", log.display()))?;
            let err = out.try_clone().map_err(|e| format!("clone log handle: {e}"))?;
            let child = Command::new(binary)
                .args([
                    "--port",
                    &port.to_string(),
                    "--bind",
                    "127.0.0.1",
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                ])
                .args(["--enable-debug-command", "yes", "--daemonize", "no", "--dir"])
                .arg(dir.path())
                .stdin(Stdio::null())
                .stdout(out)
                .stderr(err)
                .spawn()
                .map_err(|e| format!("start {}: {e}; {INSTALL_HINT}", binary.display()))?;
            let mut process = RedisProcess {
                child,
                addr: SocketAddr::from(([127, 0, 0, 1], port)),
                log,
                _dir: dir,
            };
            match process.wait_ready().await {
                Ok(()) => return Ok(process),
                Err(e) => {
                    let tail = process.log_tail();
                    if tail.contains("Address already in use") {
                        last_error = format!("attempt {attempt}: port {port} was taken");
                        continue;
                    }
                    return Err(format!(
                        "redis-server did not start: {e}\n--- redis.log (tail) ---\n{tail}"
                    ));
                }
            }
        }
        Err(format!(
            "redis-server did not start after {START_ATTEMPTS} attempts; last: {last_error}"
        ))
    }

    /// PINGs until `+PONG`, the process exits, or [`START_DEADLINE`] passes.
    async fn wait_ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + START_DEADLINE;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!("redis-server exited with {status}"));
            }
            let last = match ping(self.addr).await {
                Ok(pid) if pid == self.child.id() => return Ok(()),
                // Another server took the port first; ours will fail to bind and exit.
                Ok(pid) => format!("the port answers as another process (pid {pid})"),
                Err(e) => e,
            };
            if Instant::now() >= deadline {
                return Err(format!(
                    "no +PONG from {} within {START_DEADLINE:?}; last error: {last}",
                    self.addr
                ));
            }
            // A poll interval, not a synchronisation: the loop above is what decides.
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }
}

impl Drop for RedisProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!(
                "--- redis-server {} log ({}), tail ---\n{}",
                self.addr,
                self.log.display(),
                self.log_tail()
            );
        }
    }
}

/// A loopback port that was free a moment ago (the caller retries if it is taken by then).
fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    listener.local_addr().expect("bound address").port()
}

/// PINGs `addr`; on `+PONG`, returns the `process_id` of the server that answered.
async fn ping(addr: SocketAddr) -> Result<u32, String> {
    let attempt = async {
        let mut conn = Wire::try_connect(addr, "redis").await?;
        let reply = conn.request(&["PING"]).await?;
        if reply != b"+PONG\r\n" {
            return Err(format!("PING answered {}", escape(&reply)));
        }
        let info = info_server(&mut conn).await?;
        let pid = info.lines().find_map(|l| l.strip_prefix("process_id:"));
        pid.and_then(|p| p.trim().parse().ok()).ok_or_else(|| "INFO has no process_id".to_string())
    };
    tokio::time::timeout(Duration::from_secs(1), attempt)
        .await
        .unwrap_or_else(|_| Err("PING timed out".into()))
}

/// The comparisons are written against 7.0; another version answers differently in places.
pub async fn check_version(addr: SocketAddr) {
    let mut conn = Wire::connect(addr, "redis").await;
    let info = info_server(&mut conn).await.expect("INFO server");
    let version =
        info.lines().find_map(|l| l.strip_prefix("redis_version:")).unwrap_or("unknown").trim();
    assert!(
        version.starts_with("7.0."),
        "the comparisons are written for redis-server 7.0, found {version}; {INSTALL_HINT}"
    );
}

/// The text of `INFO server` (framing included; callers look for `field:` lines).
async fn info_server(conn: &mut Wire) -> Result<String, String> {
    let info = conn.request(&["INFO", "server"]).await?;
    Ok(String::from_utf8_lossy(&info).into_owned())
}
