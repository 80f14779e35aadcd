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
    /// `unexpected_error_replies`: see [`crate::unexpected_error`].
    pub unexpected_errors: AtomicU64,
    /// Commands handed to propagation.
    pub propagated: AtomicU64,
    /// `total_net_repl_input_bytes`: bytes read from our master.
    pub net_repl_input: AtomicU64,
    /// `total_net_repl_output_bytes`: stream bytes sent to replicas.
    pub net_repl_output: AtomicU64,
}

/// Bits of [`Shared::gates`]: refusals that depend on the replication role, checked on every
/// command with one atomic load.
pub mod gate {
    /// A replica with `replica-read-only yes`: writes get `-READONLY`.
    pub const READ_ONLY: u8 = 1;
    /// A replica whose link is down with `replica-serve-stale-data no`: `-MASTERDOWN`.
    pub const MASTER_DOWN: u8 = 2;
    /// A master short of `min-replicas-to-write` good replicas: writes get `-NOREPLICAS`.
    pub const NO_REPLICAS: u8 = 4;
    /// The last background save failed with save points and `stop-writes-on-bgsave-error`:
    /// writes get `-MISCONF`.
    pub const MISCONF: u8 = 8;
    /// The dataset is still loading at startup: commands without the `loading` flag get
    /// `-LOADING`.
    pub const LOADING: u8 = 16;
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
    /// INFO commandstats and errorstats.
    pub command_stats: Mutex<crate::command_stats::CommandStats>,
    /// Counters.
    pub stats: Stats,
    /// SLOWLOG entries.
    pub slowlog: Mutex<SlowLog>,
    /// The latency monitor's samples (LATENCY LATEST and co.).
    pub latency: Mutex<crate::latency_monitor::LatencyMonitor>,
    /// 40 hex characters, new on every start.
    pub run_id: String,
    /// When the server started.
    pub started: Instant,
    /// Heap in use once the server was set up, before any data (INFO `used_memory_startup`).
    pub startup_memory: u64,
    /// The addresses actually listened on.
    pub listening: RwLock<Vec<SocketAddr>>,
    /// Fired by SHUTDOWN.
    pub shutdown: ShutdownTrigger,
    /// CLIENT PAUSE (changed only through [`Shared::pause_with`] and [`Shared::unpause`],
    /// which keep `pausing` in step).
    pause: watch::Sender<Pause>,
    /// A pause is set (it may have expired): every command checks this one load instead of
    /// locking the watch's value.
    pausing: std::sync::atomic::AtomicBool,
    /// Save and load counters for INFO persistence.
    pub persist: Mutex<crate::cmd::persistence::PersistStats>,
    /// Whether writes are propagated (see `Shared::is_propagating`).
    pub propagating: std::sync::atomic::AtomicBool,
    /// How many clients run MONITOR (checked on every command without taking a lock).
    pub monitoring: std::sync::atomic::AtomicUsize,
    /// Clients whose command waits for CLIENT PAUSE to end: blocked clients, for INFO.
    pub paused_clients: std::sync::atomic::AtomicUsize,
    /// DEBUG SET-ACTIVE-EXPIRE.
    pub active_expire: std::sync::atomic::AtomicBool,
    /// DEBUG PAUSE-CRON: the periodic jobs are skipped.
    pub cron_paused: std::sync::atomic::AtomicBool,
    /// DEBUG SET-DISABLE-DENY-SCRIPTS: scripts may run commands flagged `noscript`.
    pub allow_noscript: std::sync::atomic::AtomicBool,
    /// Unix seconds of the last successful save (LASTSAVE): the start time until one happens.
    pub lastsave: std::sync::atomic::AtomicI64,
    /// Replication state. Lock order: `keyspace` before `repl`.
    pub repl: Mutex<crate::repl::Replication>,
    /// Woken when stream bytes are appended (replica feeds wait on it).
    pub repl_data: tokio::sync::Notify,
    /// Set when stream bytes were appended since a feed last looked (see `wake_feeds`).
    pub repl_pending: std::sync::atomic::AtomicBool,
    /// Woken when a replica acknowledges (WAIT waits on it).
    pub repl_acks: tokio::sync::Notify,
    /// The database our master's stream has selected (kept for the cached master).
    pub master_db: std::sync::atomic::AtomicUsize,
    /// See [`gate`].
    pub gates: std::sync::atomic::AtomicU8,
    /// This node is a replica.
    replica: std::sync::atomic::AtomicBool,
    /// Our link to the master is up.
    link_up: std::sync::atomic::AtomicBool,
    /// Fewer good replicas than `min-replicas-to-write`.
    short_of_replicas: std::sync::atomic::AtomicBool,
    /// Ourselves, for starting tasks from command handlers.
    me: std::sync::Weak<Shared>,
    /// The open AOF (lock order: `aof_io`, `keyspace`, `aof`).
    pub aof: Mutex<Option<crate::aof::AofState>>,
    /// Held while writing AOF files, so writes land in buffer order.
    pub aof_io: Mutex<()>,
    /// Held for the whole of an AOF rewrite: one at a time.
    pub aof_rewrite: Mutex<()>,
    /// AOF rewrite outcomes (INFO persistence).
    pub aof_rewrite_stats: Mutex<crate::aof::RewriteStats>,
    /// The runtime serving clients (set when serving starts): snapshot chunks run on it,
    /// between rounds of client commands.
    pub runtime: std::sync::OnceLock<tokio::runtime::Handle>,
    /// See [`crate::busy_poll`].
    pub busy_poll: crate::busy_poll::BusyPoll,
    /// Wakes the AOF writer thread.
    pub aof_wake: parking_lot::Condvar,
    /// The AOF offset known durable (per the fsync policy); replies under `always` wait on it.
    pub aof_synced: watch::Sender<u64>,
    /// The AOF is on (checked per write without a lock).
    pub aof_on: std::sync::atomic::AtomicBool,
    /// `appendfsync always`: replies wait for the fsync.
    pub aof_always: std::sync::atomic::AtomicBool,
    /// The AOF offset written to the file (not necessarily fsynced).
    pub aof_written: AtomicU64,
    /// On a replica with the AOF on: the replication offset whose writes are fsynced in our
    /// AOF (sent to the master as `FACK`, for WAITAOF).
    pub aof_synced_repl: std::sync::atomic::AtomicI64,
    /// While loading at startup: when it started (unix s) and the bytes to load.
    pub loading: Mutex<Option<(i64, u64)>>,
    /// While loading at startup: the bytes read so far (of the RDB, or of the AOF's files).
    pub loading_loaded: std::sync::atomic::AtomicU64,
    /// What every command checks of `maxmemory` without a lock (see `crate::evict`).
    pub eviction: crate::evict::Gate,
    /// The Lua state and cached scripts. Lock order: `keyspace` before `scripts`.
    pub scripts: Mutex<crate::script::Scripts>,
    /// The function libraries (FUNCTION LOAD, FCALL). Lock order: `keyspace` before
    /// `functions`; never held together with `scripts`.
    pub functions: Mutex<crate::script::library::Libraries>,
    /// ACL users and the ACL log (see `crate::acl`).
    pub acl: crate::acl::AclState,
    /// A busy script can serve other clients here (set when serving starts, on the
    /// single-threaded runtime only: see [`crate::busy`]).
    pub serves_while_busy: std::sync::atomic::AtomicBool,
    /// The listening sockets (a busy script accepts on them).
    pub listener_fds: RwLock<Vec<std::os::fd::RawFd>>,
    /// The lazy-free thread (UNLINK, FLUSHALL ASYNC …).
    pub lazyfree: crate::lazyfree::LazyFree,
    /// MIGRATE's kept connections to target instances.
    pub migrate_targets: crate::cmd::migrate::Targets,
    /// Where CONFIG SET port hands the accept loop its new listeners.
    pub relisten: std::sync::OnceLock<tokio::sync::mpsc::UnboundedSender<Vec<TcpListener>>>,
    /// Where connections accepted by a busy script join the accept loop.
    pub adopt: std::sync::OnceLock<tokio::sync::mpsc::UnboundedSender<Adopted>>,
}

/// A connection accepted while a script was busy, with what was done for it meanwhile.
pub struct Adopted {
    /// Its socket (non-blocking).
    pub stream: std::net::TcpStream,
    /// Its peer.
    pub addr: SocketAddr,
    /// Unanswered input, unsent replies, its login.
    pub handoff: crate::busy::Handoff,
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
        let shared = Arc::new_cyclic(|me| Shared {
            repl: Mutex::new(crate::repl::Replication::new()),
            repl_data: tokio::sync::Notify::new(),
            repl_pending: std::sync::atomic::AtomicBool::new(false),
            repl_acks: tokio::sync::Notify::new(),
            master_db: std::sync::atomic::AtomicUsize::new(0),
            gates: std::sync::atomic::AtomicU8::new(0),
            replica: std::sync::atomic::AtomicBool::new(false),
            link_up: std::sync::atomic::AtomicBool::new(false),
            // No replica is attached yet, so `min-replicas-to-write` refuses writes at once.
            short_of_replicas: std::sync::atomic::AtomicBool::new(true),
            me: me.clone(),
            aof: Mutex::new(None),
            aof_io: Mutex::new(()),
            aof_rewrite: Mutex::new(()),
            aof_rewrite_stats: Mutex::default(),
            runtime: std::sync::OnceLock::new(),
            busy_poll: Default::default(),
            aof_wake: parking_lot::Condvar::new(),
            aof_synced: watch::channel(0).0,
            aof_on: std::sync::atomic::AtomicBool::new(false),
            aof_always: std::sync::atomic::AtomicBool::new(false),
            aof_written: AtomicU64::new(0),
            aof_synced_repl: std::sync::atomic::AtomicI64::new(0),
            loading: Mutex::new(None),
            loading_loaded: Default::default(),
            eviction: Default::default(),
            scripts: Default::default(),
            functions: Default::default(),
            acl: Default::default(),
            serves_while_busy: Default::default(),
            listener_fds: RwLock::new(Vec::new()),
            adopt: std::sync::OnceLock::new(),
            relisten: std::sync::OnceLock::new(),
            migrate_targets: Default::default(),
            lazyfree: Default::default(),
            keyspace: Mutex::new(Keyspace::new(databases)),
            config: RwLock::new(config),
            clients: Mutex::new(ClientRegistry::default()),
            pubsub: Mutex::new(PubSub::default()),
            command_stats: Mutex::new(Default::default()),
            stats: Stats::default(),
            slowlog: Mutex::new(SlowLog::default()),
            latency: Mutex::default(),
            run_id: new_run_id(),
            started: Instant::now(),
            startup_memory: crate::alloc::in_use() as u64,
            listening: RwLock::new(Vec::new()),
            shutdown,
            pause: watch::channel(Pause::None).0,
            pausing: std::sync::atomic::AtomicBool::new(false),
            monitoring: std::sync::atomic::AtomicUsize::new(0),
            paused_clients: Default::default(),
            propagating: std::sync::atomic::AtomicBool::new(false),
            persist: Mutex::new(Default::default()),
            active_expire: std::sync::atomic::AtomicBool::new(true),
            allow_noscript: std::sync::atomic::AtomicBool::new(false),
            cron_paused: std::sync::atomic::AtomicBool::new(false),
            lastsave: std::sync::atomic::AtomicI64::new(unix_ms() / 1000),
        });
        shared.refresh_gates();
        shared.refresh_output_limits();
        shared.refresh_acl_settings();
        {
            // As Redis: `requirepass` first, then the `user` lines (which may redefine the
            // default user). The lines were checked when the configuration was read.
            let config = shared.config.read();
            let mut acl = shared.acl.acl.write();
            acl.set_default_password(config.settings.requirepass.as_deref());
            for user in &config.users {
                if user[0].as_ref() == b"default" {
                    acl.set_user(b"default", &[bytes::Bytes::from_static(b"reset")])
                        .expect("reset is a valid rule");
                }
                acl.set_user(&user[0], &user[1..]).expect("user lines are checked when read");
            }
        }
        shared.keyspace.lock().notify = shared.config.read().settings.notify;
        shared.refresh_eviction(&mut shared.keyspace.lock());
        shared.command_stats.lock().latency_tracking =
            shared.config.read().settings.latency_tracking;
        shared
    }

    /// Hands the ACL settings (`acllog-max-len`, `acl-pubsub-default`, `aclfile`) to the ACL
    /// registry. A shorter `acllog-max-len` trims the log at its next entry, as in Redis.
    pub fn refresh_acl_settings(&self) {
        let config = self.config.read();
        let mut acl = self.acl.acl.write();
        acl.log_max_len = config.get("acllog-max-len").and_then(|v| v.parse().ok()).unwrap_or(128);
        acl.pubsub_default_all = config.get("acl-pubsub-default") == Some("allchannels");
        acl.filename = config.get("aclfile").unwrap_or_default().to_string();
    }

    /// Hands `maxmemory` and its policy to eviction, and the policy's kind of access stamps
    /// to the keyspace (LRU clock or LFU counter).
    pub fn refresh_eviction(&self, ks: &mut Keyspace) {
        let (limits, log_factor, decay) = {
            let s = &self.config.read().settings;
            (s.eviction, s.lfu_log_factor, s.lfu_decay_time)
        };
        if limits.maxmemory != 0 && limits.maxmemory != ks.eviction.limits.maxmemory {
            let used = crate::alloc::in_use() as u64;
            if used > limits.maxmemory {
                tracing::warn!(
                    maxmemory = limits.maxmemory,
                    used,
                    "maxmemory is below the memory in use: keys will be evicted, or writes \
                     refused, as maxmemory-policy says"
                );
            }
        }
        ks.eviction.limits = limits;
        self.eviction.set_limit(limits.maxmemory);
        crate::db::access::configure(limits.policy.is_lfu(), log_factor, decay);
    }

    /// Hands `client-output-buffer-limit` to the places that enforce it, each under its own
    /// lock so their hot paths need no config lock: PUBLISH, MONITOR and the replication stream.
    /// (`notify-keyspace-events` is kept in the keyspace, which CONFIG SET holds locked.)
    pub fn refresh_output_limits(&self) {
        let limits = self.config.read().settings.output_limits;
        self.pubsub.lock().limit = limits.pubsub;
        self.clients.lock().monitor_limit = limits.normal;
        self.repl.lock().replica_limit = limits.replica;
    }

    /// The TCP port clients connect to.
    pub fn port(&self) -> u16 {
        self.listening.read().first().map(|a| a.port()).unwrap_or(0)
    }

    /// Marks startup loading as begun (`total` bytes) or finished (`None`).
    pub fn set_loading(&self, total: Option<u64>) {
        self.loading_loaded.store(0, std::sync::atomic::Ordering::Relaxed);
        *self.loading.lock() = total.map(|t| (unix_ms() / 1000, t));
        self.refresh_gates();
    }

    /// Changes the CLIENT PAUSE state.
    pub fn pause_with(&self, change: impl FnOnce(&mut Pause)) {
        self.pause.send_modify(|p| {
            change(p);
            self.pausing.store(*p != Pause::None, Ordering::Relaxed);
        });
    }

    /// Ends any CLIENT PAUSE.
    pub fn unpause(&self) {
        self.pause_with(|p| *p = Pause::None);
    }

    /// Follows the CLIENT PAUSE state.
    pub fn pause_watch(&self) -> watch::Receiver<Pause> {
        self.pause.subscribe()
    }

    /// True while a pause is set (it may have expired; [`Shared::pause_watch`] tells).
    pub fn is_pausing(&self) -> bool {
        self.pausing.load(Ordering::Relaxed)
    }

    /// True while a CLIENT PAUSE (WRITE or ALL) is in force: the dataset stays as it is — keys
    /// past their TTL read as missing but are not deleted, and nothing is evicted — so a
    /// replica can catch up to an offset that no longer moves (a failover waits on that), as
    /// Redis's `checkClientPauseTimeoutAndReturnIfPaused` keeps it.
    pub fn dataset_frozen(&self) -> bool {
        if !self.is_pausing() {
            return false;
        }
        match *self.pause.borrow() {
            Pause::None => false,
            Pause::Write(until) | Pause::All(until) => Instant::now() < until,
        }
    }

    /// An owning handle to ourselves (for spawning tasks from command handlers).
    pub fn self_arc(&self) -> Arc<Shared> {
        self.me.upgrade().expect("commands run while the server is alive")
    }

    /// True when this node replicates from a master.
    pub fn is_replica(&self) -> bool {
        self.replica.load(Ordering::Relaxed)
    }

    /// Records the role (called by the replication link).
    pub fn set_replica(&self, on: bool) {
        self.replica.store(on, Ordering::Relaxed);
        self.refresh_gates();
    }

    /// Records whether the link to our master is up.
    pub fn set_link_up(&self, up: bool) {
        self.link_up.store(up, Ordering::Relaxed);
        self.refresh_gates();
    }

    /// True when the link to our master is up.
    pub fn link_up(&self) -> bool {
        self.link_up.load(Ordering::Relaxed)
    }

    /// Records whether we have fewer good replicas than `min-replicas-to-write` asks.
    pub fn set_short_of_replicas(&self, short: bool) {
        if self.short_of_replicas.swap(short, Ordering::Relaxed) != short {
            self.refresh_gates();
        }
    }

    /// Recomputes [`Shared::gates`] from the role, the link and the configuration.
    pub fn refresh_gates(&self) {
        let (read_only, serve_stale, min_write, misconf) = {
            let s = &self.config.read().settings;
            (
                s.replica_read_only,
                s.replica_serve_stale_data,
                s.min_replicas_to_write > 0 && s.min_replicas_max_lag > 0,
                s.stop_writes_on_bgsave_error && !s.save_points.is_empty(),
            )
        };
        let replica = self.is_replica();
        let mut gates = 0;
        if replica && read_only {
            gates |= gate::READ_ONLY;
        }
        if replica && !serve_stale && !self.link_up() {
            gates |= gate::MASTER_DOWN;
        }
        if !replica && min_write && self.short_of_replicas.load(Ordering::Relaxed) {
            gates |= gate::NO_REPLICAS;
        }
        if misconf && self.persist.lock().last_failed {
            gates |= gate::MISCONF;
        }
        if self.loading.lock().is_some() {
            gates |= gate::LOADING;
        }
        self.gates.store(gates, Ordering::Relaxed);
    }

    /// After a role change: writes are propagated by a master that has a backlog; a replica
    /// forwards its master's stream instead.
    pub fn refresh_role(&self, r: &crate::repl::Replication) {
        self.replica.store(r.is_replica(), Ordering::Relaxed);
        let aof = self.aof_on.load(Ordering::Relaxed);
        self.propagating.store(aof || (!r.is_replica() && r.backlog.is_some()), Ordering::Relaxed);
        self.refresh_gates();
        self.repl_data.notify_waiters();
    }

    /// Our `REPLCONF ACK <offset> [FACK <aof offset>]` to our master (FACK only with the AOF
    /// on, as Redis 7.2+ replicas send it; 7.0 masters ignore it).
    pub fn ack_command(&self) -> Vec<u8> {
        let offset = self.repl.lock().offset();
        let mut argv = vec![
            bytes::Bytes::from_static(b"REPLCONF"),
            bytes::Bytes::from_static(b"ACK"),
            bytes::Bytes::from(offset.to_string()),
        ];
        if self.aof_on.load(Ordering::Relaxed) {
            argv.push(bytes::Bytes::from_static(b"FACK"));
            let fack = self.aof_synced_repl.load(Ordering::Relaxed).min(offset);
            argv.push(bytes::Bytes::from(fack.to_string()));
        }
        let mut out = Vec::new();
        crate::repl::encode_command(&mut out, &argv);
        out
    }

    /// Wakes the replica feeds after stream bytes were appended — once until a feed looks
    /// again: a feed clears `repl_pending` after arming its wake-up and before reading the
    /// backlog, so bytes appended after its read always find the flag clear and wake it.
    pub fn wake_feeds(&self) {
        if !self.repl_pending.swap(true, Ordering::SeqCst) {
            self.repl_data.notify_waiters();
        }
    }

    /// Puts `REPLCONF GETACK *` on the stream so replicas report their offsets now.
    pub fn request_acks(&self, r: &mut crate::repl::Replication) {
        if r.is_replica() || r.replicas.is_empty() {
            return;
        }
        r.feed_raw(b"*3\r\n$8\r\nREPLCONF\r\n$6\r\nGETACK\r\n$1\r\n*\r\n");
        self.repl_data.notify_waiters();
    }
}

/// Binds every address of `bind` on `port`. A leading `-` marks an address as optional (it may
/// fail, e.g. IPv6 on a host without it), as in Redis; `*` means every IPv4 address and `::*`
/// every IPv6 address.
pub async fn bind(config: &Config) -> std::io::Result<Vec<TcpListener>> {
    bind_now(config)
}

/// [`bind`], from a command handler (CONFIG SET port): needs the runtime's context, not an
/// `.await`.
pub fn bind_now(config: &Config) -> std::io::Result<Vec<TcpListener>> {
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
        let socket = tokio::net::TcpSocket::new_v6()?;
        // IPv6 only, as Redis sets it: `bind * -::*` then listens on 0.0.0.0 and on [::]
        // side by side instead of the second colliding with the first.
        socket2::SockRef::from(&socket).set_only_v6(true)?;
        socket
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(backlog)
}

/// Serves clients on `listeners` until `shutdown` fires, then stops accepting, lets in-flight
/// commands finish, and returns.
pub async fn run(shared: Arc<Shared>, listeners: Vec<TcpListener>, mut shutdown: Shutdown) {
    let _ = shared.runtime.set(tokio::runtime::Handle::current());
    shared.record_listeners(&listeners);
    let current_thread = tokio::runtime::Handle::current().runtime_flavor()
        == tokio::runtime::RuntimeFlavor::CurrentThread;
    shared.serves_while_busy.store(current_thread, Ordering::Relaxed);
    let (adopt_tx, mut adopted) = tokio::sync::mpsc::unbounded_channel();
    let _ = shared.adopt.set(adopt_tx);
    let mut connections = JoinSet::new();
    let mut accepts = JoinSet::new();
    let (conn_tx, mut conn_rx) = tokio::sync::mpsc::channel(128);
    accept_on(&mut accepts, listeners, &conn_tx);
    let (relisten_tx, mut relisten) = tokio::sync::mpsc::unbounded_channel();
    let _ = shared.relisten.set(relisten_tx);
    let mut jobs = JoinSet::new();
    jobs.spawn(crate::cron::run(shared.clone(), shutdown.clone()));
    let single_threaded = shared.config.read().settings.io_threads <= 1;
    if single_threaded && crate::busy_poll::worthwhile() {
        let shared = shared.clone();
        let mut stop = shutdown.clone();
        jobs.spawn(async move {
            let window = || Duration::from_micros(shared.config.read().settings.busy_poll_us);
            tokio::select! {
                _ = shared.busy_poll.run(window) => {}
                _ = stop.wait() => {}
            }
        });
    }
    loop {
        tokio::select! {
            _ = shutdown.wait() => break,
            Some((socket, addr)) = conn_rx.recv() => {
                let shared = shared.clone();
                let stop = shutdown.clone();
                connections.spawn(async move {
                    crate::connection::serve(shared, socket, addr, stop, None).await;
                });
            }
            Some(listeners) = relisten.recv() => {
                // CONFIG SET port: the new listeners replace the old, which close.
                shared.record_listeners(&listeners);
                accepts.abort_all();
                accept_on(&mut accepts, listeners, &conn_tx);
                info!(addrs = ?*shared.listening.read(), "listening on the new port");
            }
            Some(adopted) = adopted.recv() => {
                let crate::server::Adopted { stream, addr, handoff } = adopted;
                let Ok(socket) = tokio::net::TcpStream::from_std(stream) else { continue };
                let shared = shared.clone();
                let stop = shutdown.clone();
                connections.spawn(async move {
                    crate::connection::serve(shared, socket, addr, stop, Some(handoff)).await;
                });
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    accepts.abort_all();
    info!("shutting down: no longer accepting connections");
    // Every client's loop waits on its own kill switch only (one cheap wait per request, see
    // `kill_switch`), so stopping the server flips them all. A connection that registers after
    // this sweep sees the shutdown itself (`connection::serve`). The master's pseudo-client
    // (no socket) is left alone: its link stops with the replication jobs.
    for client in shared.clients.lock().iter().filter(|c| c.fd >= 0) {
        client.kill.kill();
    }
    // Connections finish the command in flight and close; give them a bounded time.
    let drain = async { while connections.join_next().await.is_some() {} };
    if tokio::time::timeout(Duration::from_secs(5), drain).await.is_err() {
        warn!("some connections did not close in time");
    }
    jobs.abort_all();
    info!("warden-node is now ready to exit, bye bye");
}

/// Accepts on each listener, handing connections to `tx`.
fn accept_on(
    accepts: &mut JoinSet<()>,
    listeners: Vec<TcpListener>,
    tx: &tokio::sync::mpsc::Sender<(tokio::net::TcpStream, SocketAddr)>,
) {
    for listener in listeners {
        let tx = tx.clone();
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
}

impl Shared {
    /// Notes the addresses and descriptors being listened on.
    fn record_listeners(&self, listeners: &[TcpListener]) {
        *self.listening.write() = listeners.iter().filter_map(|l| l.local_addr().ok()).collect();
        *self.listener_fds.write() =
            listeners.iter().map(std::os::fd::AsRawFd::as_raw_fd).collect();
    }
}

/// Counts served commands (called by connections).
pub fn count_command(shared: &Shared) {
    shared.stats.commands.fetch_add(1, Ordering::Relaxed);
}
