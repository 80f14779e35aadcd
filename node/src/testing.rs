//! Starting a server inside a test process, on `127.0.0.1:0`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use common::resp::{decode, Frame};
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

use common::config::parse_text;
use common::shutdown::{self, ShutdownTrigger};

use crate::config::Config;
use crate::server::{self, Shared};

/// A server running in the current tokio runtime. Dropping it shuts it down.
pub struct TestServer {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Its state, for white-box assertions.
    pub shared: Arc<Shared>,
    trigger: ShutdownTrigger,
    task: tokio::task::JoinHandle<()>,
}

impl TestServer {
    /// Starts a server with `config` (redis.conf text); `port` and `bind` are forced to loopback.
    pub async fn start(config: &str) -> TestServer {
        // No save points unless a test asks: in-process servers must not write dump files
        // into the working directory.
        let mut lines = parse_text("save \"\"\n", "test defaults").expect("defaults parse");
        lines.extend(parse_text(config, "test config").expect("test config parses"));
        lines.extend(
            parse_text("port 0\nbind 127.0.0.1\n", "test overrides").expect("overrides parse"),
        );
        let config = Config::from_lines(None, &lines).expect("test config is valid");
        let (trigger, stop) = shutdown::channel();
        let shared = Shared::new(config, trigger);
        let trigger = shared.shutdown.clone();
        let config = shared.config.read().clone();
        let listeners = server::bind(&config).await.expect("bind 127.0.0.1:0");
        let addr = listeners[0].local_addr().expect("bound address");
        let task = tokio::spawn(server::run(shared.clone(), listeners, stop));
        crate::repl::link::start_configured(&shared, None);
        TestServer { addr, shared, trigger, task }
    }

    /// A redis-rs client URL.
    pub fn url(&self) -> String {
        format!("redis://{}/", self.addr)
    }

    /// Waits (up to 5 s, polling) until exactly `n` clients are blocked on keys.
    pub async fn wait_blocked(&self, n: usize) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        loop {
            let blocked = self.shared.keyspace.lock().blocking.len();
            if blocked == n {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "expected {n} blocked clients, last saw {blocked}"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Shuts the server down and waits for it.
    pub async fn stop(self) {
        self.trigger.fire();
        let _ = self.task.await;
    }
}

/// Polls `probe` every 20 ms until it gives `Ok` (its value is returned), for at most 10 s;
/// then panics with `what` and the last `Err` it gave.
pub async fn eventually<T>(what: &str, mut probe: impl AsyncFnMut() -> Result<T, String>) -> T {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        match probe().await {
            Ok(value) => return value,
            Err(last) if tokio::time::Instant::now() >= deadline => {
                panic!("timed out waiting for {what}; last seen: {last}")
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
}

/// Reads one reply frame from `stream` (up to 5 s), keeping bytes that follow it in `buf`.
pub async fn read_frame(stream: &mut TcpStream, buf: &mut Vec<u8>) -> Frame {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        if let Some((frame, used)) = decode(buf).expect("the server sends valid RESP") {
            buf.drain(..used);
            return frame;
        }
        let mut chunk = [0u8; 4096];
        match tokio::time::timeout_at(deadline, stream.read(&mut chunk)).await {
            Ok(Ok(n)) if n > 0 => buf.extend_from_slice(&chunk[..n]),
            other => {
                panic!("no complete frame: {other:?}; have {:?}", String::from_utf8_lossy(buf))
            }
        }
    }
}
