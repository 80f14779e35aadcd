//! Replication: the stream of applied writes, its offsets and history ids (PSYNC2), the
//! attached replicas, and — when this node is itself a replica — the link to its master.
//!
//! Invariant: the stream is appended only while the keyspace lock is held by the write that
//! produced it (or by the applier of the master's stream, on a replica), so stream order is
//! apply order, and a snapshot taken under the keyspace lock corresponds exactly to the
//! stream offset read at the same moment. Lock order: `keyspace` before `repl`.
//!
//! - [`backlog`]: the tail of the stream addressed by offset.
//! - [`psync`]: the master's partial-or-full decision.
//! - [`feed`]: a replica's session on its master (full sync, streaming, ACKs).
//! - [`link`]: our link to a master (handshake, transfer, streaming, cached master).
//! - [`apply`]: running the master's stream on a replica.
//! - [`failover`]: coordinated handover (FAILOVER).
//! - [`report`]: INFO replication and ROLE.
//! - [`catch_up`]: replicas catch up before a master stops.

pub mod apply;
pub mod backlog;
pub mod catch_up;
pub mod failover;
pub mod feed;
pub mod link;
pub mod psync;
pub mod report;
pub mod transfer;

use std::time::Instant;

use bytes::Bytes;

use crate::exec::Propagated;
use crate::output_limit::{BufferLimit, SoftLimitClock};
use backlog::Backlog;

/// 40 zeros: a cleared `replid2`.
pub const NO_REPLID: &str = "0000000000000000000000000000000000000000";

/// A fresh 40-hex-character replication id.
pub fn new_replid() -> String {
    use rand::Rng;
    let mut rng = rand::thread_rng();
    (0..40).map(|_| char::from_digit(rng.gen_range(0..16u32), 16).unwrap_or('0')).collect()
}

/// Where a replica is in its synchronisation, as INFO prints it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplicaState {
    /// Waiting for the snapshot (`wait_bgsave`).
    WaitSnapshot,
    /// Receiving the snapshot (`send_bulk`).
    SendBulk,
    /// Streaming (`online`).
    Online,
}

impl ReplicaState {
    /// The word INFO uses.
    pub fn name(self) -> &'static str {
        match self {
            ReplicaState::WaitSnapshot => "wait_bgsave",
            ReplicaState::SendBulk => "send_bulk",
            ReplicaState::Online => "online",
        }
    }
}

/// One attached replica, as the master sees it.
#[derive(Debug, Clone)]
pub struct ReplicaEntry {
    /// Its client id.
    pub client: u64,
    /// The address it announced (`REPLCONF ip-address`), else its peer address.
    pub ip: String,
    /// Its `REPLCONF listening-port`.
    pub port: u16,
    /// Its synchronisation state.
    pub state: ReplicaState,
    /// The highest offset it acknowledged.
    pub ack_off: i64,
    /// The highest offset it reported fsynced to its AOF (`FACK`).
    pub aof_off: i64,
    /// When it last acknowledged.
    pub ack_time: Instant,
    /// The next stream byte to send it.
    pub sent: i64,
    /// Since when its unsent stream has been over the soft limit.
    pub soft_clock: SoftLimitClock,
}

/// What a replica remembers of its master between links, to continue with a partial resync.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CachedMaster {
    /// The master's replication id.
    pub replid: String,
    /// The last offset applied.
    pub offset: i64,
    /// The database the master's stream had selected.
    pub db: usize,
}

/// The state of our link to a master (ROLE's words).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkState {
    /// Not trying (just configured).
    None,
    /// Waiting to (re)connect.
    Connect,
    /// TCP connect in flight.
    Connecting,
    /// PING, AUTH, REPLCONF, PSYNC.
    Handshake,
    /// Receiving the snapshot.
    Sync,
    /// Streaming.
    Connected,
}

impl LinkState {
    /// The word ROLE uses.
    pub fn name(self) -> &'static str {
        match self {
            LinkState::None => "none",
            LinkState::Connect => "connect",
            LinkState::Connecting => "connecting",
            LinkState::Handshake => "handshake",
            LinkState::Sync => "sync",
            LinkState::Connected => "connected",
        }
    }
}

/// This node's master, when it is a replica.
#[derive(Debug)]
pub struct MasterLink {
    /// The master's host as configured.
    pub host: String,
    /// The master's port.
    pub port: u16,
    /// Where the link is.
    pub state: LinkState,
    /// Last time anything arrived from the master.
    pub last_io: Option<Instant>,
    /// When the link last went down.
    pub down_since: Instant,
    /// The link was up at least once (before that, INFO reports the down time as -1).
    pub ever_up: bool,
    /// Bytes of the snapshot expected (-1 for an EOF-marked transfer) and read so far.
    pub transfer: Option<(i64, u64)>,
    /// Kept across links for PSYNC.
    pub cached: Option<CachedMaster>,
    /// Cancels the link task.
    pub stop: tokio::sync::watch::Sender<bool>,
    /// Distinguishes this link from an earlier one to the same master.
    pub generation: u64,
    /// This link is FAILOVER's handover: its first PSYNC carries `FAILOVER`.
    pub failover: bool,
}

/// Replication state (lock: `Shared::repl`, taken after `keyspace`).
#[derive(Debug)]
pub struct Replication {
    /// The id of the current history.
    pub replid: String,
    /// The previous history's id (after a promotion), valid up to `second_offset`.
    pub replid2: String,
    /// The last offset + 1 that `replid2` is valid for (-1 when cleared).
    pub second_offset: i64,
    /// `master_repl_offset` while there is no backlog (it only moves with one).
    idle_offset: i64,
    /// The stream's tail; created when the first replica attaches or after a sync.
    pub backlog: Option<Backlog>,
    /// The database last SELECTed on our own stream (`None`: emit SELECT before the next).
    pub stream_db: Option<usize>,
    /// Attached replicas.
    pub replicas: Vec<ReplicaEntry>,
    /// Our master, when we are a replica.
    pub master: Option<MasterLink>,
    /// Since when no replica is attached (for `repl-backlog-ttl`).
    pub no_replicas_since: Instant,
    /// Client ids of replicas to disconnect (sub-replicas after a history change); their
    /// sessions notice on their next wake-up.
    pub evicted: Vec<u64>,
    /// Counts links made, so a stale link task can tell it was replaced.
    pub generation: u64,
    /// A FAILOVER in progress on this master.
    pub failover: Option<failover::FailoverState>,
    /// Synchronisation counters for INFO stats.
    pub stats: SyncStats,
    /// `client-output-buffer-limit replica`, kept here for the write path.
    pub replica_limit: BufferLimit,
    /// A stop waiting for replicas (`catch_up`): the offset they must acknowledge.
    pub catch_up_target: Option<i64>,
}

/// INFO stats' `sync_full`, `sync_partial_ok`, `sync_partial_err`.
#[derive(Debug, Default, Clone, Copy)]
pub struct SyncStats {
    /// Full synchronisations served.
    pub full: u64,
    /// Partial resynchronisations accepted.
    pub partial_ok: u64,
    /// Partial resynchronisations requested but refused.
    pub partial_err: u64,
}

impl Default for Replication {
    fn default() -> Self {
        Replication::new()
    }
}

impl Replication {
    /// A master with a fresh history and no backlog.
    pub fn new() -> Replication {
        Replication {
            replid: new_replid(),
            replid2: NO_REPLID.to_string(),
            second_offset: -1,
            idle_offset: 0,
            backlog: None,
            stream_db: None,
            replicas: Vec::new(),
            master: None,
            no_replicas_since: Instant::now(),
            evicted: Vec::new(),
            generation: 0,
            failover: None,
            stats: SyncStats::default(),
            replica_limit: crate::output_limit::OutputLimits::default().replica,
            catch_up_target: None,
        }
    }

    /// `master_repl_offset`.
    pub fn offset(&self) -> i64 {
        self.backlog.as_ref().map_or(self.idle_offset, Backlog::end)
    }

    /// True when this node replicates from a master.
    pub fn is_replica(&self) -> bool {
        self.master.is_some()
    }

    /// Creates the backlog at the current offset if there is none.
    pub fn ensure_backlog(&mut self, size: usize) {
        if self.backlog.is_none() {
            self.backlog = Some(Backlog::new(self.idle_offset, size));
        }
    }

    /// Takes the history recorded in a dump file (a replica restarting from its RDB).
    pub fn restore(&mut self, replid: &str, offset: i64) {
        self.replid = replid.to_string();
        self.clear_replid2();
        self.backlog = None;
        self.idle_offset = offset;
    }

    /// What a snapshot records of replication (`repl-stream-db`, `repl-id`, `repl-offset`),
    /// as Redis's `rdbPopulateSaveInfo` decides: a master only once it has a backlog, a
    /// replica when it has a master or a cached one. `master_db` is the master stream's
    /// selected database.
    pub fn save_info(&self, master_db: usize) -> Option<(usize, String, i64)> {
        let stream_db = match &self.master {
            None if self.backlog.is_some() => self.stream_db.unwrap_or(0),
            None => return None,
            Some(link) if link.state == LinkState::Connected => master_db,
            Some(link) => link.cached.as_ref()?.db,
        };
        Some((stream_db, self.replid.clone(), self.offset()))
    }

    /// Frees the backlog (offsets stop moving).
    pub fn free_backlog(&mut self) {
        if let Some(b) = self.backlog.take() {
            self.idle_offset = b.end();
        }
    }

    /// Starts a new history from here, remembering the old one as `replid2` so replicas that
    /// followed it can continue (promotion).
    pub fn shift_replid(&mut self) {
        self.replid2 = std::mem::replace(&mut self.replid, new_replid());
        self.second_offset = self.offset() + 1;
    }

    /// Forgets the previous history.
    pub fn clear_replid2(&mut self) {
        self.replid2 = NO_REPLID.to_string();
        self.second_offset = -1;
    }

    /// Adopts a history at `offset` (after a full sync): a fresh backlog starting there.
    pub fn adopt(&mut self, replid: &str, offset: i64, backlog_size: usize) {
        self.replid = replid.to_string();
        self.clear_replid2();
        self.backlog = Some(Backlog::new(offset, backlog_size));
        self.idle_offset = offset;
    }

    /// The next byte the slowest attached replica still needs.
    pub fn keep_from(&self) -> Option<i64> {
        self.replicas.iter().map(|r| r.sent).min()
    }

    /// Appends bytes to the stream (no-op without a backlog). The stream a replica has not
    /// been sent yet is kept for it, so it counts against `client-output-buffer-limit replica`
    /// (during its snapshot too, as in Redis): over the limit, it is disconnected instead of
    /// growing memory further.
    pub fn feed_raw(&mut self, bytes: &[u8]) {
        let keep = self.keep_from();
        let Some(b) = self.backlog.as_mut() else { return };
        b.append(bytes, keep);
        let slowest = keep.map_or(0, |k| (b.end() + 1 - k).max(0) as usize);
        if slowest >= self.replica_limit.threshold() {
            self.check_replica_limits(Instant::now());
        }
    }

    /// Disconnects the replicas over their output-buffer limit at `now`.
    pub fn check_replica_limits(&mut self, now: Instant) {
        let Some(end) = self.backlog.as_ref().map(Backlog::end) else { return };
        let limit = self.replica_limit;
        let mut over = Vec::new();
        for r in &mut self.replicas {
            let waiting = (end + 1 - r.sent).max(0) as usize;
            if r.soft_clock.over(&limit, waiting, now) {
                tracing::warn!(
                    client = r.client,
                    waiting,
                    "replica scheduled to be closed ASAP for overcoming of output buffer limits"
                );
                over.push(r.client);
            }
        }
        if over.is_empty() {
            return;
        }
        self.replicas.retain(|r| !over.contains(&r.client));
        self.evicted.extend(over);
        let keep = self.keep_from();
        if let Some(b) = self.backlog.as_mut() {
            b.trim(keep);
        }
    }

    /// Appends commands in their wire form, each preceded by a SELECT when its database
    /// differs from the stream's.
    pub fn feed(&mut self, commands: &[Propagated]) {
        if self.backlog.is_none() {
            return;
        }
        let mut out = Vec::with_capacity(64);
        for c in commands {
            if self.stream_db != Some(c.db) {
                encode_command(&mut out, &[Bytes::from_static(b"SELECT"), db_arg(c.db)]);
                self.stream_db = Some(c.db);
            }
            encode_command(&mut out, &c.argv);
        }
        self.feed_raw(&out);
    }

    /// Finds a replica by client id.
    pub fn replica_mut(&mut self, client: u64) -> Option<&mut ReplicaEntry> {
        self.replicas.iter_mut().find(|r| r.client == client)
    }

    /// Detaches a replica.
    pub fn remove_replica(&mut self, client: u64) {
        self.replicas.retain(|r| r.client != client);
        self.evicted.retain(|&c| c != client);
        if self.replicas.is_empty() {
            self.no_replicas_since = Instant::now();
        }
    }

    /// Asks every attached replica's session to disconnect (they reconnect and PSYNC).
    pub fn evict_replicas(&mut self) {
        self.evicted.extend(self.replicas.iter().map(|r| r.client));
    }

    /// Online replicas whose acknowledged offset reached `offset`.
    pub fn acked(&self, offset: i64) -> usize {
        self.replicas
            .iter()
            .filter(|r| r.state == ReplicaState::Online && r.ack_off >= offset)
            .count()
    }

    /// Online replicas whose AOF fsync acknowledgement reached `offset`.
    pub fn aof_acked(&self, offset: i64) -> usize {
        self.replicas
            .iter()
            .filter(|r| r.state == ReplicaState::Online && r.aof_off >= offset)
            .count()
    }
}

fn db_arg(db: usize) -> Bytes {
    Bytes::from(db.to_string())
}

/// Appends `argv` as a RESP multibulk (the form every propagated command takes).
pub fn encode_command(out: &mut Vec<u8>, argv: &[Bytes]) {
    let mut num = itoa::Buffer::new();
    out.push(b'*');
    out.extend_from_slice(num.format(argv.len()).as_bytes());
    out.extend_from_slice(b"\r\n");
    for arg in argv {
        out.push(b'$');
        out.extend_from_slice(num.format(arg.len()).as_bytes());
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(arg);
        out.extend_from_slice(b"\r\n");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cmd(db: usize, args: &[&str]) -> Propagated {
        Propagated { db, argv: args.iter().map(|a| Bytes::copy_from_slice(a.as_bytes())).collect() }
    }

    #[test]
    fn offsets_move_only_with_a_backlog() {
        let mut r = Replication::new();
        r.feed(&[cmd(0, &["SET", "a", "1"])]);
        assert_eq!(r.offset(), 0);
        r.ensure_backlog(1 << 20);
        r.feed(&[cmd(0, &["SET", "a", "1"])]);
        // SELECT 0 (23 bytes) + SET a 1 (27 bytes), as Redis counts them.
        assert_eq!(r.offset(), 23 + 27);
        r.feed(&[cmd(0, &["ping"])]);
        assert_eq!(r.offset(), 23 + 27 + 14);
        r.feed(&[cmd(5, &["DEL", "k"])]);
        assert_eq!(r.offset(), 23 + 27 + 14 + 23 + 20);
    }

    #[test]
    fn promotion_keeps_the_old_history_as_replid2() {
        let mut r = Replication::new();
        r.ensure_backlog(1 << 20);
        r.feed(&[cmd(0, &["SET", "a", "1"])]);
        let old = r.replid.clone();
        r.shift_replid();
        assert_eq!(r.replid2, old);
        assert_ne!(r.replid, old);
        assert_eq!(r.second_offset, r.offset() + 1);
        assert_eq!(r.replid.len(), 40);
        assert!(r.replid.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
    }
}
