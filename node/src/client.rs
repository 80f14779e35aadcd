//! Connected clients: each connection's private state, and the registry that CLIENT LIST,
//! CLIENT KILL and INFO read.

use std::collections::{BTreeSet, HashMap};
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use common::resp::Protocol;
use parking_lot::Mutex;

/// How a client wants replies (CLIENT REPLY).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ReplyMode {
    /// Every reply.
    #[default]
    On,
    /// No replies.
    Off,
    /// No reply for the next command.
    SkipNext,
    /// Skipping the current command's reply.
    Skip,
}

/// The kind of a client, as CLIENT KILL TYPE and CLIENT LIST see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ClientKind {
    /// An ordinary client.
    #[default]
    Normal,
    /// A client in pub/sub mode.
    Pubsub,
    /// A replica attached to us.
    Replica,
    /// Our master's link.
    Master,
}

/// What other connections may see of a client (CLIENT LIST), updated by its connection.
#[derive(Debug, Clone, Default)]
pub struct ClientSnapshot {
    /// CLIENT SETNAME.
    pub name: Option<Bytes>,
    /// Selected database.
    pub db: usize,
    /// The last command: its name and, for a subcommand, the subcommand's name.
    pub last_cmd: Option<(&'static str, Option<&'static str>)>,
    /// Unix ms of the last command.
    pub last_interaction_ms: i64,
    /// Channel subscriptions.
    pub sub: usize,
    /// Pattern subscriptions.
    pub psub: usize,
    /// Shard channel subscriptions.
    pub ssub: usize,
    /// Queued commands in MULTI (-1 outside MULTI).
    pub multi: i64,
    /// Protocol version.
    pub resp: u8,
    /// Kind of client.
    pub kind: ClientKind,
    /// CLIENT SETINFO lib-name.
    pub lib_name: String,
    /// CLIENT SETINFO lib-ver.
    pub lib_ver: String,
    /// Blocked on keys.
    pub blocked: bool,
    /// CLIENT NO-EVICT.
    pub no_evict: bool,
    /// Bytes in the query buffer.
    pub qbuf: usize,
    /// The ACL user's name (CLIENT LIST `user=`, CLIENT KILL USER) and incarnation.
    pub user: (bytes::Bytes, u64),
    /// Logged in (or needed no password): a busy script checks its requests by it.
    pub authenticated: bool,
}

/// A client as the registry holds it.
pub struct ClientHandle {
    /// Unique, increasing id.
    pub id: u64,
    /// Peer address.
    pub addr: SocketAddr,
    /// Local address.
    pub laddr: SocketAddr,
    /// Unix ms at connect.
    pub created_ms: i64,
    /// Its socket's file descriptor (-1 for a connection-less client).
    pub fd: i32,
    /// Fields other connections may read.
    pub snapshot: Arc<Mutex<ClientSnapshot>>,
    /// Flipped to make the connection close (CLIENT KILL, output limits, shutdown).
    pub kill: crate::kill_switch::KillSwitch,
    /// Out-of-band frames (pub/sub messages, MONITOR lines).
    pub push: crate::push::PushSender,
}

/// All connected clients.
#[derive(Default)]
pub struct ClientRegistry {
    clients: HashMap<u64, ClientHandle>,
    next_id: u64,
    /// Clients that ran MONITOR.
    pub monitors: BTreeSet<u64>,
    /// `client-output-buffer-limit normal`, which MONITOR clients are held to.
    pub monitor_limit: crate::output_limit::BufferLimit,
    /// Connections accepted since start (`total_connections_received`).
    pub total_connections: u64,
    /// Connections refused for maxclients (`rejected_connections`).
    pub rejected: u64,
}

impl ClientRegistry {
    /// Assigns the next client id.
    pub fn next_id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    /// Adds a client.
    pub fn add(&mut self, handle: ClientHandle) {
        self.total_connections += 1;
        self.clients.insert(handle.id, handle);
    }

    /// Removes a client.
    pub fn remove(&mut self, id: u64) {
        self.clients.remove(&id);
        self.monitors.remove(&id);
    }

    /// Adds or removes a MONITOR client; returns how many remain.
    pub fn set_monitor(&mut self, id: u64, on: bool) -> usize {
        if on {
            self.monitors.insert(id);
        } else {
            self.monitors.remove(&id);
        }
        self.monitors.len()
    }

    /// The number of connected clients.
    pub fn len(&self) -> usize {
        self.clients.len()
    }

    /// True if none.
    pub fn is_empty(&self) -> bool {
        self.clients.is_empty()
    }

    /// A client by id.
    pub fn get(&self, id: u64) -> Option<&ClientHandle> {
        self.clients.get(&id)
    }

    /// Every client, by id.
    pub fn iter(&self) -> impl Iterator<Item = &ClientHandle> {
        let mut all: Vec<&ClientHandle> = self.clients.values().collect();
        all.sort_by_key(|c| c.id);
        all.into_iter()
    }
}

/// A connection's own state, owned by its task.
pub struct ClientState {
    /// Unique id.
    pub id: u64,
    /// Selected database.
    pub db: usize,
    /// Protocol version.
    pub resp: Protocol,
    /// Passed AUTH (or the default user needed no password when it connected).
    pub authenticated: bool,
    /// The ACL user it runs commands as.
    pub user: crate::acl::ClientUser,
    /// CLIENT SETNAME.
    pub name: Option<Bytes>,
    /// Commands queued by MULTI (`None` outside MULTI).
    pub multi: Option<Vec<Vec<Bytes>>>,
    /// A command failed to queue: EXEC must answer EXECABORT.
    pub multi_failed: bool,
    /// Keys this client WATCHes.
    pub watched: Vec<(usize, Bytes)>,
    /// The query buffer while a command runs: that command's bytes and whatever follows
    /// them (Redis's `qbuf` as the client sees it in its own CLIENT LIST line).
    pub query_pending: usize,
    /// Subscribed channels.
    pub channels: BTreeSet<Bytes>,
    /// Subscribed patterns.
    pub patterns: BTreeSet<Bytes>,
    /// Subscribed shard channels (SSUBSCRIBE).
    pub shard_channels: BTreeSet<Bytes>,
    /// Pushes that must follow the reply of the command that caused them (tracking messages
    /// about the client's own changes).
    pub after_reply: Vec<common::resp::Frame>,
    /// CLIENT REPLY.
    pub reply_mode: ReplyMode,
    /// What other connections see.
    pub snapshot: Arc<Mutex<ClientSnapshot>>,
    /// Peer address.
    pub addr: SocketAddr,
    /// Local address.
    pub laddr: SocketAddr,
    /// Our sender for out-of-band frames (handed to pub/sub channels).
    pub push: crate::push::PushSender,
    /// CLIENT SETINFO values.
    pub lib: (String, String),
    /// Kind of client.
    pub kind: ClientKind,
    /// The replication offset right after this client's last write that was propagated
    /// (what WAIT waits for).
    pub woff: i64,
    /// On the master's client of a replica: stream bytes applied but not yet appended to our
    /// own stream (a transaction in progress).
    pub master_raw: Vec<u8>,
    /// What a replica told us with REPLCONF before PSYNC.
    pub hello: ReplicaHello,
    /// The AOF offset right after this client's last write (under `appendfsync always` its
    /// replies wait until the AOF is fsynced that far).
    pub aof_woff: u64,
    /// INFO commandstats counts not yet added to the server's (see `command_stats`).
    pub tally: crate::command_stats::Tally,
    /// The error reply of the command just run was counted already (a script's command's
    /// error the script raised): it is not counted again as the reply goes out.
    pub error_counted: bool,
}

/// `REPLCONF listening-port / ip-address / capa` from a replica-to-be.
#[derive(Debug, Clone, Default)]
pub struct ReplicaHello {
    /// `listening-port`.
    pub port: u16,
    /// `ip-address`.
    pub ip: Option<String>,
    /// `capa eof`.
    pub capa_eof: bool,
    /// `capa psync2`.
    pub capa_psync2: bool,
}

impl ClientState {
    /// A client with no connection (the master's stream on a replica, the AOF loader): no
    /// replies, already authenticated.
    pub fn pseudo(id: u64, kind: ClientKind) -> ClientState {
        let addr: SocketAddr = ([127, 0, 0, 1], 0).into();
        let (push, _) = crate::push::queue();
        ClientState {
            id,
            db: 0,
            resp: Protocol::Resp2,
            authenticated: true,
            user: crate::acl::ClientUser::internal(),
            name: None,
            multi: None,
            multi_failed: false,
            watched: Vec::new(),
            query_pending: 0,
            channels: Default::default(),
            patterns: Default::default(),
            shard_channels: Default::default(),
            after_reply: Vec::new(),
            reply_mode: ReplyMode::Off,
            snapshot: Arc::new(Mutex::new(ClientSnapshot {
                multi: -1,
                resp: 2,
                kind,
                user: (bytes::Bytes::from_static(crate::acl::SUPERUSER), 0),
                ..Default::default()
            })),
            addr,
            laddr: addr,
            push,
            lib: Default::default(),
            kind,
            woff: 0,
            master_raw: Vec::new(),
            hello: Default::default(),
            aof_woff: 0,
            tally: Default::default(),
            error_counted: false,
        }
    }

    /// Starts MULTI with an empty queue.
    pub fn enter_multi(&mut self) {
        self.multi = Some(Vec::new());
        self.multi_failed = false;
        self.snapshot.lock().multi = 0;
    }

    /// Leaves MULTI, if in it: the queue and its failure go (the WATCHes stay, see
    /// [`ClientState::unwatch_all`]).
    pub fn leave_multi(&mut self) {
        self.multi = None;
        self.multi_failed = false;
        self.snapshot.lock().multi = -1;
    }

    /// Forgets every key this client WATCHes.
    pub fn unwatch_all(&mut self, watches: &mut crate::db::keyspace::Watches) {
        if !self.watched.is_empty() {
            watches.unwatch(self.id, &std::mem::take(&mut self.watched));
        }
    }

    /// Runs as `user` from now on (AUTH, HELLO AUTH, RESET).
    pub fn set_user(&mut self, user: crate::acl::ClientUser) {
        self.snapshot.lock().user = (bytes::Bytes::copy_from_slice(user.name()), user.incarnation);
        self.user = user;
    }

    /// True while subscribed to anything (RESP2 then only allows pub/sub commands).
    pub fn in_pubsub(&self) -> bool {
        !self.channels.is_empty() || !self.patterns.is_empty() || !self.shard_channels.is_empty()
    }
}
