//! The server: shared state, listeners, the accept loop, background jobs, and shutdown.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::shutdown::{Shutdown, ShutdownTrigger};
use parking_lot::{Mutex, RwLock};
use rand::Rng;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tracing::{info, warn};

use crate::client::ClientRegistry;
use crate::config::Config;
use crate::db::Keyspace;
use crate::pubsub::PubSub;
use crate::slowlog::SlowLog;

/// Server-wide counters for INFO stats.
#[derive(Debug, Default)]
pub struct Stats {
    /// `total_commands_processed`
    pub commands: AtomicU64,
    /// `total_net_input_bytes`
    pub net_input: AtomicU64,
    /// `total_net_output_bytes`
    pub net_output: AtomicU64,
    /// `total_error_replies`
    pub errors: AtomicU64,
    /// Commands handed to propagation.
    pub propagated: AtomicU64,
}

/// CLIENT PAUSE state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Pause {
    /// Not paused.
    #[default]
    None,
    /// Writes wait until this instant.
    Write(Instant),
    /// Every command waits until this instant.
    All(Instant),
}

/// State shared by every connection and background task.
pub struct Shared {
    /// The data. A plain mutex: each command (and each EXEC) runs to completion under it, which
    /// is what makes commands atomic and gives all writes one total order. It is never held
    /// across an `.await`.
    pub keyspace: Mutex<Keyspace>,
    /// The configuration (CONFIG SET writes it).
    pub config: RwLock<Config>,
    /// Connected clients. Lock order: `keyspace` before `clients` before `pubsub`.
    pub clients: Mutex<ClientRegistry>,
    /// Pub/sub subscriptions.
    pub pubsub: Mutex<PubSub>,
    /// Counters.
    pub stats: Stats,
    /// SLOWLOG entries.
    pub slowlog: Mutex<SlowLog>,
    /// 40 hex characters, new on every start.
    pub run_id: String,
    /// When the server started.
    pub started: Instant,
    /// The addresses actually listened on.
    pub listening: RwLock<Vec<SocketAddr>>,
    /// Fired by SHUTDOWN.
    pub shutdown: ShutdownTrigger,
    /// CLIENT PAUSE.
    pub pause: watch::Sender<Pause>,
    /// Save and load counters for INFO persistence.
    pub persist: Mutex<crate::cmd::persistence::PersistStats>,
    /// Whether writes are propagated (see `Shared::is_propagating`).
    pub propagating: std::sync::atomic::AtomicBool,
    /// How many clients run MONITOR (checked on every command without taking a lock).
    pub monitoring: std::sync::atomic::AtomicUsize,
    /// DEBUG SET-ACTIVE-EXPIRE.
    pub active_expire: std::sync::atomic::AtomicBool,
    /// Unix seconds of the last successful save (LASTSAVE): the start time until one happens.
    pub lastsave: std::sync::atomic::AtomicI64,
}

/// The current unix time in milliseconds.
pub fn unix_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

fn new_run_id() -> String {
    let mut rng = rand::thread_rng();
    (0..40).map(|_| format!("{:x}", rng.gen_range(0..16u8))).collect()
}

impl Shared {
    /// Fresh state for `config`.
    pub fn new(config: Config, shutdown: ShutdownTrigger) -> Arc<Shared> {
        let databases = config.settings.databases;
        crate::db::Lru::tick(unix_ms());
        Arc::new(Shared {
            keyspace: Mutex::new(Keyspace::new(databases)),
            config: RwLock::new(config),
            clients: Mutex::new(ClientRegistry::default()),
            pubsub: Mutex::new(PubSub::default()),
            stats: Stats::default(),
            slowlog: Mutex::new(SlowLog::default()),
            run_id: new_run_id(),
            started: Instant::now(),
            listening: RwLock::new(Vec::new()),
            shutdown,
            pause: watch::channel(Pause::None).0,
            monitoring: std::sync::atomic::AtomicUsize::new(0),
            propagating: std::sync::atomic::AtomicBool::new(false),
            persist: Mutex::new(Default::default()),
            active_expire: std::sync::atomic::AtomicBool::new(true),
            lastsave: std::sync::atomic::AtomicI64::new(unix_ms() / 1000),
        })
    }

    /// The TCP port clients connect to.
    pub fn port(&self) -> u16 {
        self.listening.read().first().map(|a| a.port()).unwrap_or(0)
    }
}

/// Binds every address of `bind` on `port`. A leading `-` marks an address as optional (it may
/// fail, e.g. IPv6 on a host without it), as in Redis; `*` means every IPv4 address and `::*`
/// every IPv6 address.
pub async fn bind(config: &Config) -> std::io::Result<Vec<TcpListener>> {
    let port = config.settings.port;
    let mut listeners = Vec::new();
    for addr in &config.settings.bind {
        let (optional, addr) = match addr.strip_prefix('-') {
            Some(a) => (true, a),
            None => (false, addr.as_str()),
        };
        let host = match addr {
            "*" => "0.0.0.0",
            "::*" => "::",
            other => other,
        };
        // Every listener after the first uses the first one's port, so port 0 works too.
        let port = listeners
            .first()
            .map(|l: &TcpListener| l.local_addr().map(|a| a.port()))
            .transpose()?
            .unwrap_or(port);
        let target =
            if host.contains(':') { format!("[{host}]:{port}") } else { format!("{host}:{port}") };
        match listen(&target, config.settings.tcp_backlog) {
            Ok(l) => listeners.push(l),
            Err(e) if optional => {
                warn!(addr = %target, cause = %e, "skipping optional bind address")
            }
            Err(e) => {
                return Err(std::io::Error::new(e.kind(), format!("could not bind {target}: {e}")))
            }
        }
    }
    if listeners.is_empty() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::AddrNotAvailable,
            "no address to listen on",
        ));
    }
    Ok(listeners)
}

/// Binds and listens with the configured `tcp-backlog`.
fn listen(target: &str, backlog: u32) -> std::io::Result<TcpListener> {
    use std::net::ToSocketAddrs;
    let addr = target.to_socket_addrs()?.next().ok_or_else(|| {
        std::io::Error::new(std::io::ErrorKind::InvalidInput, "unresolvable address")
    })?;
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(backlog)
}

/// Serves clients on `listeners` until `shutdown` fires, then stops accepting, lets in-flight
/// commands finish, and returns.
pub async fn run(shared: Arc<Shared>, listeners: Vec<TcpListener>, mut shutdown: Shutdown) {
    *shared.listening.write() = listeners.iter().filter_map(|l| l.local_addr().ok()).collect();
    let mut connections = JoinSet::new();
    let mut accepts = JoinSet::new();
    let (conn_tx, mut conn_rx) = tokio::sync::mpsc::channel(128);
    for listener in listeners {
        let tx = conn_tx.clone();
        accepts.spawn(async move {
            loop {
                match listener.accept().await {
                    Ok(conn) => {
                        if tx.send(conn).await.is_err() {
                            return;
                        }
                    }
                    Err(e) => {
                        // EMFILE and friends: back off instead of spinning.
                        warn!(cause = %e, "failed to accept");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                }
            }
        });
    }
    drop(conn_tx);
    let mut jobs = JoinSet::new();
    jobs.spawn(crate::cron::run(shared.clone(), shutdown.clone()));
    loop {
        tokio::select! {
            _ = shutdown.wait() => break,
            Some((socket, addr)) = conn_rx.recv() => {
                let shared = shared.clone();
                let stop = shutdown.clone();
                connections.spawn(async move {
                    crate::connection::serve(shared, socket, addr, stop).await;
                });
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    accepts.abort_all();
    info!("shutting down: no longer accepting connections");
    // Connections finish the command in flight and close; give them a bounded time.
    let drain = async { while connections.join_next().await.is_some() {} };
    if tokio::time::timeout(Duration::from_secs(5), drain).await.is_err() {
        warn!("some connections did not close in time");
    }
    jobs.abort_all();
    info!("warden-node is now ready to exit, bye bye");
}

/// Counts served commands (called by connections).
pub fn count_command(shared: &Shared) {
    shared.stats.commands.fetch_add(1, Ordering::Relaxed);
}
