//! warden-node's configuration: `redis.conf` directives, described by one table.
//!
//! Every directive has a row: its name, an alias, how its value is checked, its default,
//! whether CONFIG SET may change it at run time, and — for features that have not landed in
//! warden-node yet — the only values that ask for nothing (e.g. `maxmemory 0`).
//! Anything else for those is refused with a sentence saying why, so no setting is ever
//! accepted and silently ignored.
//!
//! Values are kept as canonical strings (what CONFIG GET prints) and turned into [`Settings`],
//! the typed view the server reads, after every change.

use std::collections::BTreeMap;
use std::path::PathBuf;

use common::config::{parse_memory, ConfigError, ConfigLine};

/// How a directive's value is checked and normalised.
#[derive(Debug, Clone, Copy)]
enum Kind {
    Bool,
    Int(i64, i64),
    /// Bytes, with an optional unit (`memtoull`), within inclusive bounds.
    Memory(u64, u64),
    Enum(&'static [&'static str]),
    Str,
    /// Several words (save points, bind addresses, replicaof).
    Words,
}

/// One row of the directive table.
struct Directive {
    name: &'static str,
    alias: Option<&'static str>,
    kind: Kind,
    default: &'static str,
    mutable: bool,
    /// `Some((allowed, why))`: only `allowed` values are accepted until the feature lands.
    only: Option<(&'static [&'static str], &'static str)>,
    /// Left out of glob patterns (`CONFIG GET *`) but found by its exact name, as Redis's
    /// `HIDDEN_CONFIG` testing knobs are.
    hidden: bool,
}

const fn d(name: &'static str, kind: Kind, default: &'static str, mutable: bool) -> Directive {
    Directive { name, alias: None, kind, default, mutable, only: None, hidden: false }
}

const fn alias(
    name: &'static str,
    alias: &'static str,
    kind: Kind,
    default: &'static str,
    mutable: bool,
) -> Directive {
    Directive { name, alias: Some(alias), kind, default, mutable, only: None, hidden: false }
}

const fn pending(
    name: &'static str,
    kind: Kind,
    default: &'static str,
    allowed: &'static [&'static str],
    why: &'static str,
) -> Directive {
    Directive {
        name,
        alias: None,
        kind,
        default,
        mutable: true,
        only: Some((allowed, why)),
        hidden: false,
    }
}

/// A row CONFIG SET may not change (Redis's `IMMUTABLE_CONFIG`): it answers "can't set
/// immutable config" whatever the value.
const fn fixed(directive: Directive) -> Directive {
    Directive { mutable: false, ..directive }
}

/// A row glob patterns skip (Redis's `HIDDEN_CONFIG`): testing and debugging knobs.
const fn hidden(directive: Directive) -> Directive {
    Directive { hidden: true, ..directive }
}

const U31: Kind = Kind::Int(0, i32::MAX as i64);
/// Redis's `LONG_MAX`-bounded counts (`size_t` and `long long` settings).
const LONG: Kind = Kind::Int(0, i64::MAX);
/// Byte sizes bounded by `LONG_MAX`, as most of Redis's memory settings are.
const MEM: Kind = Kind::Memory(0, i64::MAX as u64);
/// Byte sizes Redis holds as `unsigned long long`.
const MEM_ANY: Kind = Kind::Memory(0, u64::MAX);

static DIRECTIVES: &[Directive] = &[
    // CONFIG SET port listens on the new port at once; bind may be set only to what it is.
    d("port", Kind::Int(0, 65535), "6379", true),
    d("bind", Kind::Words, "* -::*", true),
    d("protected-mode", Kind::Bool, "yes", true),
    d("requirepass", Kind::Str, "", true),
    d("databases", Kind::Int(1, i32::MAX as i64), "16", false),
    d("dir", Kind::Str, "", true),
    d("dbfilename", Kind::Str, "dump.rdb", true),
    d("logfile", Kind::Str, "", false),
    d(
        "loglevel",
        Kind::Enum(&["debug", "verbose", "notice", "warning"]),
        "notice",
        true,
    ),
    d("maxclients", Kind::Int(1, u32::MAX as i64), "10000", true),
    d("timeout", U31, "0", true),
    d("tcp-keepalive", U31, "300", true),
    d("tcp-backlog", U31, "511", false),
    // Applied at startup (`main`), before anything else runs.
    d("daemonize", Kind::Bool, "no", false),
    d("pidfile", Kind::Str, "", false),
    d("save", Kind::Words, "3600 1 300 100 60 10000", true),
    d("rdbcompression", Kind::Bool, "yes", true),
    d("rdbchecksum", Kind::Bool, "yes", false),
    // Redis's testing knobs: microseconds to wait per key written by a save (every kind: SAVE,
    // BGSAVE, a replica's full sync, an AOF rewrite) or read by a load; a negative `-n` waits
    // 1 µs once per `n` keys on average. See `persist::pace`.
    hidden(d("rdb-key-save-delay", Kind::Int(i32::MIN as i64, i32::MAX as i64), "0", true)),
    hidden(d("key-load-delay", Kind::Int(i32::MIN as i64, i32::MAX as i64), "0", true)),
    // How often Redis's loader stops to serve clients. warden-node loads off the event loop
    // and serves clients throughout a load (`-LOADING`, INFO), so no interval applies.
    hidden(d("loading-process-events-interval-bytes", Kind::Int(1024, i32::MAX as i64), "2097152", true)),
    hidden(pending("watchdog-period", U31, "0", &["0"], "the software watchdog is not implemented in warden-node")),
    hidden(pending(
        "use-exit-on-panic",
        Kind::Bool,
        "no",
        &["no"],
        "warden-node reports a panic and keeps serving; it does not exit on one",
    )),
    hidden(fixed(pending(
        "lua-enable-deprecated-api",
        Kind::Bool,
        "no",
        &["no"],
        "scripts cannot reach Lua's deprecated functions in warden-node",
    ))),
    // An fsync every 4 MB while a snapshot is written (see `persistence::incremental_fsync`).
    d("rdb-save-incremental-fsync", Kind::Bool, "yes", true),
    d("aof-rewrite-incremental-fsync", Kind::Bool, "yes", true),
    d("stop-writes-on-bgsave-error", Kind::Bool, "yes", true),
    d("appendonly", Kind::Bool, "no", true),
    d("aof-load-truncated", Kind::Bool, "yes", true),
    d("aof-use-rdb-preamble", Kind::Bool, "yes", true),
    d("auto-aof-rewrite-percentage", U31, "100", true),
    d("auto-aof-rewrite-min-size", MEM, "67108864", true),
    d("appendfsync", Kind::Enum(&["everysec", "always", "no"]), "everysec", true),
    d("appendfilename", Kind::Str, "appendonly.aof", false),
    d("appenddirname", Kind::Str, "appendonlydir", false),
    // Set from the file or the command line only; at runtime REPLICAOF changes the role.
    alias("replicaof", "slaveof", Kind::Words, "", false),
    alias("replica-read-only", "slave-read-only", Kind::Bool, "yes", true),
    alias("replica-serve-stale-data", "slave-serve-stale-data", Kind::Bool, "yes", true),
    alias("replica-priority", "slave-priority", U31, "100", true),
    d("replica-announced", Kind::Bool, "yes", true),
    alias("replica-announce-ip", "slave-announce-ip", Kind::Str, "", true),
    alias("replica-announce-port", "slave-announce-port", Kind::Int(0, 65535), "0", true),
    d("masterauth", Kind::Str, "", true),
    d("masteruser", Kind::Str, "", true),
    d("repl-backlog-size", Kind::Memory(1, i64::MAX as u64), "1048576", true),
    d("repl-backlog-ttl", LONG, "3600", true),
    d("repl-timeout", Kind::Int(1, i32::MAX as i64), "60", true),
    alias("repl-ping-replica-period", "repl-ping-slave-period", Kind::Int(1, i32::MAX as i64), "10", true),
    d("repl-diskless-sync", Kind::Bool, "yes", true),
    d("repl-diskless-sync-delay", U31, "5", true),
    // Where a replica keeps a full sync's transfer: see `repl::transfer`.
    d("repl-diskless-load", Kind::Enum(&["disabled", "on-empty-db", "swapdb"]), "disabled", true),
    alias("min-replicas-to-write", "min-slaves-to-write", U31, "0", true),
    alias("min-replicas-max-lag", "min-slaves-max-lag", U31, "10", true),
    d("proto-max-bulk-len", Kind::Memory(1 << 20, i64::MAX as u64), "536870912", true),
    d("client-query-buffer-limit", Kind::Memory(1 << 20, i64::MAX as u64), "1073741824", true),
    // Any int is accepted and then held to 1..=500, as Redis does.
    d("hz", U31, "10", true),
    d("activerehashing", Kind::Bool, "yes", true),
    // See `evict`.
    d("maxmemory", MEM_ANY, "0", true),
    d("maxmemory-samples", Kind::Int(1, i32::MAX as i64), "5", true),
    d(
        "maxmemory-policy",
        Kind::Enum(&[
            "volatile-lru",
            "volatile-lfu",
            "volatile-random",
            "volatile-ttl",
            "allkeys-lru",
            "allkeys-lfu",
            "allkeys-random",
            "noeviction",
        ]),
        "noeviction",
        true,
    ),
    alias("hash-max-listpack-entries", "hash-max-ziplist-entries", LONG, "512", true),
    alias("hash-max-listpack-value", "hash-max-ziplist-value", MEM, "64", true),
    d("set-max-intset-entries", LONG, "512", true),
    alias("zset-max-listpack-entries", "zset-max-ziplist-entries", LONG, "128", true),
    alias("zset-max-listpack-value", "zset-max-ziplist-value", MEM, "64", true),
    alias("list-max-listpack-size", "list-max-ziplist-size", Kind::Int(i32::MIN as i64, i32::MAX as i64), "-2", true),
    d("list-compress-depth", U31, "0", true),
    d("slowlog-log-slower-than", Kind::Int(-1, i64::MAX), "10000", true),
    d("slowlog-max-len", LONG, "128", true),
    d("latency-monitor-threshold", LONG, "0", true),
    // See `notify`.
    d("notify-keyspace-events", Kind::Str, "", true),
    d("enable-debug-command", Kind::Enum(&["no", "yes", "local"]), "no", false),
    pending(
        "unixsocket",
        Kind::Str,
        "",
        &[""],
        "unix sockets are not implemented in warden-node yet",
    ),
    d("io-threads", Kind::Int(1, 128), "1", false),
    // warden-node's own: see `busy_poll`.
    d("busy-poll-us", Kind::Int(0, 1000), "20", true),
    fixed(pending(
            "supervised",
            Kind::Enum(&["no", "upstart", "systemd", "auto"]),
            "no",
            &["no", "systemd", "auto"],
            "upstart supervision is not implemented in warden-node",
    )),
    d("shutdown-timeout", U31, "10", true),
    d("always-show-logo", Kind::Bool, "no", false),
    d("lazyfree-lazy-expire", Kind::Bool, "no", true),
    d("lazyfree-lazy-user-del", Kind::Bool, "no", true),
    d("lazyfree-lazy-user-flush", Kind::Bool, "no", true),
    d("lazyfree-lazy-server-del", Kind::Bool, "no", true),
    d("lazyfree-lazy-eviction", Kind::Bool, "no", true),
    // Like the lazyfree-* settings: only when a replica's old dataset is freed differs.
    alias("replica-lazy-flush", "slave-lazy-flush", Kind::Bool, "no", true),
    // Tuning of structures warden-node does not hold (HyperLogLog, streams) or of a feature
    // it does not have (the ACL log): no value changes what it does, as in a Redis build.
    d("hll-sparse-max-bytes", MEM, "3000", true),
    d("stream-node-max-bytes", MEM, "4096", true),
    d("stream-node-max-entries", LONG, "100", true),
    d("acllog-max-len", LONG, "128", true),
    // Redis ignores it when built without jemalloc, and warden-node has no jemalloc.
    d("jemalloc-bg-thread", Kind::Bool, "yes", true),
    // Applied at startup (`main`): prctl(PR_SET_THP_DISABLE), as Redis does.
    d("disable-thp", Kind::Bool, "yes", false),
    // The cron runs more often with many clients (see `cron`).
    d("dynamic-hz", Kind::Bool, "yes", true),
    pending(
        "rdb-del-sync-files",
        Kind::Bool,
        "no",
        &["no"],
        "warden-node keeps the RDB files a replication sync writes",
    ),
    pending(
        "repl-diskless-sync-max-replicas",
        U31,
        "0",
        &["0"],
        "starting a diskless transfer as soon as enough replicas wait is not implemented in warden-node yet",
    ),
    pending(
        "repl-disable-tcp-nodelay",
        Kind::Bool,
        "no",
        &["no"],
        "warden-node always sends the replication stream with TCP_NODELAY",
    ),
    pending(
        "no-appendfsync-on-rewrite",
        Kind::Bool,
        "no",
        &["no"],
        "warden-node keeps fsyncing the AOF while it is rewritten",
    ),
    pending(
        "aof-timestamp-enabled",
        Kind::Bool,
        "no",
        &["no"],
        "timestamp annotations in the AOF are not implemented in warden-node yet",
    ),
    pending(
        "oom-score-adj",
        Kind::Enum(&["no", "yes", "relative", "absolute"]),
        "no",
        &["no"],
        "adjusting the OOM score is not implemented in warden-node yet",
    ),
    // Only read with oom-score-adj on.
    d("oom-score-adj-values", Kind::Words, "0 200 800", true),
    // Who may CONFIG SET the protected settings (`dir`, `dbfilename`), like
    // `enable-debug-command` for DEBUG.
    d("enable-protected-configs", Kind::Enum(&["no", "yes", "local"]), "no", false),
    d("enable-module-command", Kind::Enum(&["no", "yes", "local"]), "no", false),
    // Settings of features warden-node does not have, which only take effect with another
    // setting it refuses (cluster-enabled, tls-port, syslog-enabled, maxmemory, LFU policies,
    // scripting, client tracking, ACL users): any value changes nothing, as in a Redis whose
    // feature is off. They exist so CONFIG GET * and Redis config files match Redis.
    fixed(pending(
        "cluster-enabled",
        Kind::Bool,
        "no",
        &["no"],
        "cluster mode is not implemented in warden-node",
    )),
    d("cluster-config-file", Kind::Str, "nodes.conf", false),
    d("cluster-node-timeout", LONG, "15000", true),
    d("cluster-port", Kind::Int(0, 65535), "0", false),
    d("cluster-announce-ip", Kind::Str, "", true),
    d("cluster-announce-hostname", Kind::Str, "", true),
    d("cluster-announce-port", Kind::Int(0, 65535), "0", true),
    d("cluster-announce-bus-port", Kind::Int(0, 65535), "0", true),
    d("cluster-announce-tls-port", Kind::Int(0, 65535), "0", true),
    d("cluster-migration-barrier", U31, "1", true),
    d("cluster-require-full-coverage", Kind::Bool, "yes", true),
    alias("cluster-replica-no-failover", "cluster-slave-no-failover", Kind::Bool, "no", true),
    alias("cluster-replica-validity-factor", "cluster-slave-validity-factor", U31, "10", true),
    d("cluster-allow-reads-when-down", Kind::Bool, "no", true),
    d("cluster-allow-pubsubshard-when-down", Kind::Bool, "yes", true),
    d("cluster-allow-replica-migration", Kind::Bool, "yes", true),
    d("cluster-link-sendbuf-limit", MEM_ANY, "0", true),
    d(
        "cluster-preferred-endpoint-type",
        Kind::Enum(&["ip", "hostname", "unknown-endpoint"]),
        "ip",
        true,
    ),
    pending("tls-port", Kind::Int(0, 65535), "0", &["0"], "TLS is not implemented in warden-node"),
    pending("tls-replication", Kind::Bool, "no", &["no"], "TLS is not implemented in warden-node"),
    pending("tls-cluster", Kind::Bool, "no", &["no"], "TLS is not implemented in warden-node"),
    d("tls-cert-file", Kind::Str, "", true),
    d("tls-key-file", Kind::Str, "", true),
    d("tls-key-file-pass", Kind::Str, "", true),
    d("tls-client-cert-file", Kind::Str, "", true),
    d("tls-client-key-file", Kind::Str, "", true),
    d("tls-client-key-file-pass", Kind::Str, "", true),
    d("tls-dh-params-file", Kind::Str, "", true),
    d("tls-ca-cert-file", Kind::Str, "", true),
    d("tls-ca-cert-dir", Kind::Str, "", true),
    d("tls-protocols", Kind::Str, "", true),
    d("tls-ciphers", Kind::Str, "", true),
    d("tls-ciphersuites", Kind::Str, "", true),
    d("tls-prefer-server-ciphers", Kind::Bool, "no", true),
    d("tls-session-caching", Kind::Bool, "yes", true),
    d("tls-session-cache-size", U31, "20480", true),
    d("tls-session-cache-timeout", U31, "300", true),
    d("tls-auth-clients", Kind::Enum(&["no", "yes", "optional"]), "yes", true),
    fixed(pending(
        "syslog-enabled",
        Kind::Bool,
        "no",
        &["no"],
        "logging to syslog is not implemented in warden-node; use logfile or the journal",
    )),
    d("syslog-ident", Kind::Str, "redis", false),
    d("syslog-facility", Kind::Str, "local0", false),
    d("unixsocketperm", Kind::Int(0, 0o777), "0", false),
    alias("busy-reply-threshold", "lua-time-limit", LONG, "5000", true),
    d("tracking-table-max-keys", Kind::Int(0, i64::MAX), "1000000", true),
    d("acl-pubsub-default", Kind::Enum(&["allchannels", "resetchannels"]), "resetchannels", true),
    // ACL users (see `crate::acl`); `user` lines are kept in `Config::users`, not here.
    d("aclfile", Kind::Str, "", false),
    d("lfu-log-factor", U31, "10", true),
    d("lfu-decay-time", U31, "1", true),
    d("maxmemory-eviction-tenacity", Kind::Int(0, 100), "10", true),
    pending(
        "maxmemory-clients",
        MEM,
        "0",
        &["0"],
        "client eviction is not implemented in warden-node yet",
    ),
    alias("replica-ignore-maxmemory", "slave-ignore-maxmemory", Kind::Bool, "yes", true),
    pending(
        "activedefrag",
        Kind::Bool,
        "no",
        &["no"],
        "active defragmentation is not implemented in warden-node",
    ),
    d("active-defrag-ignore-bytes", Kind::Memory(1, i64::MAX as u64), "104857600", true),
    d("active-defrag-threshold-lower", Kind::Int(0, 1000), "10", true),
    d("active-defrag-threshold-upper", Kind::Int(0, 1000), "100", true),
    d("active-defrag-cycle-min", Kind::Int(1, 99), "1", true),
    d("active-defrag-cycle-max", Kind::Int(1, 99), "25", true),
    d("active-defrag-max-scan-fields", Kind::Int(1, i64::MAX), "1000", true),
    // See `cron::ExpireEffort`.
    d("active-expire-effort", Kind::Int(1, 10), "1", true),
    // See `latency_histogram`.
    d("latency-tracking", Kind::Bool, "yes", true),
    d("latency-tracking-info-percentiles", Kind::Words, "50 99 99.9", true),
    // warden-node's threads, when io-threads > 1, always do both reads and writes.
    d("io-threads-do-reads", Kind::Bool, "no", false),
    // See `unexpected_error`.
    d(
        "propagation-error-behavior",
        Kind::Enum(&["ignore", "panic", "panic-on-replicas"]),
        "ignore",
        true,
    ),
    pending(
        "replica-ignore-disk-write-errors",
        Kind::Bool,
        "no",
        &["no"],
        "a replica that cannot persist stops applying writes in warden-node",
    ),
    // RESTORE payloads and RDB files are always checked in full as they are decoded.
    d("sanitize-dump-payload", Kind::Enum(&["no", "yes", "clients"]), "no", true),
    // SHUTDOWN's flags for a signal; see `main::stop_on_signal`.
    d("shutdown-on-sigint", Kind::Words, "default", true),
    d("shutdown-on-sigterm", Kind::Words, "default", true),
    fixed(pending("socket-mark-id", U31, "0", &["0"], "socket marks are not implemented in warden-node")),
    pending(
        "bind-source-addr",
        Kind::Str,
        "",
        &[""],
        "choosing the source address of replication links is not implemented in warden-node",
    ),
    fixed(pending("server_cpulist", Kind::Str, "", &[""], "CPU affinity is not implemented in warden-node")),
    fixed(pending("bio_cpulist", Kind::Str, "", &[""], "CPU affinity is not implemented in warden-node")),
    fixed(pending(
        "aof_rewrite_cpulist",
        Kind::Str,
        "",
        &[""],
        "CPU affinity is not implemented in warden-node",
    )),
    fixed(pending(
        "bgsave_cpulist",
        Kind::Str,
        "",
        &[""],
        "CPU affinity is not implemented in warden-node",
    )),
    pending(
        "aof-disable-auto-gc",
        Kind::Bool,
        "no",
        &["no"],
        "warden-node always deletes AOF history files after a rewrite",
    ),
    // Crash reports: a panic in warden-node prints its own report to the log.
    d("crash-log-enabled", Kind::Bool, "yes", true),
    d("crash-memcheck-enabled", Kind::Bool, "yes", true),
    d("ignore-warnings", Kind::Str, "", true),
    // Read once at startup, as in Redis; see `proc_title`.
    d("set-proc-title", Kind::Bool, "yes", false),
    d("proc-title-template", Kind::Str, "{title} {listen-addr} {server-mode}", true),
    // One `<class> <hard> <soft> <seconds>` group per line or CONFIG SET; see `output_limit`.
    d(
        "client-output-buffer-limit",
        Kind::Words,
        "normal 0 0 0 slave 268435456 67108864 60 pubsub 33554432 8388608 60",
        true,
    ),
];

fn find(name: &str) -> Option<&'static Directive> {
    DIRECTIVES.iter().find(|d| {
        d.name.eq_ignore_ascii_case(name) || d.alias.is_some_and(|a| a.eq_ignore_ascii_case(name))
    })
}

/// The canonical name of a directive or alias.
pub fn canonical_name(name: &str) -> Option<&'static str> {
    find(name).map(|d| d.name)
}

/// The typed view of the configuration that the server reads on hot paths.
#[derive(Debug, Clone)]
pub struct Settings {
    /// TCP port (0: any free port).
    pub port: u16,
    /// Addresses to listen on.
    pub bind: Vec<String>,
    /// Refuse non-loopback clients while no password is set and bind is default.
    pub protected_mode: bool,
    /// The password clients must AUTH with.
    pub requirepass: Option<String>,
    /// Number of databases.
    pub databases: usize,
    /// Working directory for data files.
    pub dir: PathBuf,
    /// Log file (empty: stderr).
    pub logfile: String,
    /// Log level.
    pub loglevel: String,
    /// Maximum number of clients.
    pub maxclients: usize,
    /// Close idle clients after this many seconds (0: never).
    pub timeout: u64,
    /// TCP keepalive period in seconds.
    pub tcp_keepalive: u64,
    /// Listen backlog.
    pub tcp_backlog: u32,
    /// `supervised`: tell systemd when ready (`systemd`, or `auto` when NOTIFY_SOCKET is set).
    pub supervised: String,
    /// Where to write the pid.
    pub pidfile: Option<PathBuf>,
    /// Largest bulk string accepted.
    pub proto_max_bulk_len: usize,
    /// Largest query buffer a client may accumulate.
    pub client_query_buffer_limit: usize,
    /// `client-output-buffer-limit`, per client class.
    pub output_limits: crate::output_limit::OutputLimits,
    /// `notify-keyspace-events`.
    pub notify: crate::notify::EventFlags,
    /// Background task frequency.
    pub hz: u64,
    /// `active-expire-effort` (1–10).
    pub active_expire_effort: u64,
    /// Raise `hz` with the number of clients (Redis's `dynamic-hz`).
    pub dynamic_hz: bool,
    /// The cron finishes resizes of the keyspace's tables (Redis's `activerehashing`).
    pub active_rehashing: bool,
    /// Who may run DEBUG.
    pub enable_debug_command: String,
    /// Reject writes on a replica.
    pub replica_read_only: bool,
    /// `replica-serve-stale-data`: answer from old data while the master link is down.
    pub replica_serve_stale_data: bool,
    /// `replicaof <host> <port>` at startup.
    pub replicaof: Option<(String, u16)>,
    /// `save <seconds> <changes>` points (empty: no automatic saves).
    pub save_points: Vec<(u64, u64)>,
    /// `stop-writes-on-bgsave-error`.
    pub stop_writes_on_bgsave_error: bool,
    /// `masterauth`.
    pub masterauth: Option<String>,
    /// `masteruser`.
    pub masteruser: Option<String>,
    /// `replica-announce-ip`.
    pub replica_announce_ip: Option<String>,
    /// `replica-announce-port` (0: our port).
    pub replica_announce_port: u16,
    /// `repl-backlog-size` in bytes.
    pub repl_backlog_size: usize,
    /// `repl-backlog-ttl` in seconds.
    pub repl_backlog_ttl: u64,
    /// `repl-timeout` in seconds.
    pub repl_timeout: u64,
    /// `repl-ping-replica-period` in seconds.
    pub repl_ping_period: u64,
    /// `repl-diskless-sync`.
    pub repl_diskless_sync: bool,
    /// `repl-diskless-sync-delay` in seconds.
    pub repl_diskless_sync_delay: u64,
    /// `min-replicas-to-write`.
    pub min_replicas_to_write: usize,
    /// `min-replicas-max-lag` in seconds.
    pub min_replicas_max_lag: u64,
    /// SLOWLOG threshold in microseconds (negative: off).
    pub slowlog_slower_than: i64,
    /// SLOWLOG length.
    pub slowlog_max_len: usize,
    /// `latency-monitor-threshold` in ms (0: the latency monitor is off).
    pub latency_monitor_threshold: u64,
    /// `tracking-table-max-keys` (0: no limit).
    pub tracking_table_max_keys: usize,
    /// Threads that run client connections.
    pub io_threads: usize,
    /// How long the event loop keeps polling after serving requests (see `busy_poll`).
    pub busy_poll_us: u64,
    /// `maxmemory` and how to stay under it (see `evict`).
    pub eviction: crate::evict::Limits,
    /// `busy-reply-threshold` (`lua-time-limit`): how long a script may run before it counts
    /// as busy.
    pub busy_reply_threshold: std::time::Duration,
    /// `lazyfree-lazy-user-del`: DEL frees large values in the background, as UNLINK.
    pub lazyfree_lazy_user_del: bool,
    /// `lazyfree-lazy-user-flush`: FLUSHALL/FLUSHDB without a mode are ASYNC.
    pub lazyfree_lazy_user_flush: bool,
    /// `latency-tracking`: per-command latency histograms (INFO latencystats).
    pub latency_tracking: bool,
    /// `latency-tracking-info-percentiles`.
    pub latency_percentiles: Vec<f64>,
    /// `lfu-log-factor`.
    pub lfu_log_factor: u32,
    /// `lfu-decay-time` in minutes.
    pub lfu_decay_time: u32,
}

/// The whole configuration.
#[derive(Debug, Clone)]
pub struct Config {
    values: BTreeMap<&'static str, String>,
    /// The config file, if one was given.
    pub file: Option<PathBuf>,
    /// The typed view.
    pub settings: Settings,
    /// `user <name> <rules…>` lines: the name, then the rules (selectors joined), checked.
    pub users: Vec<Vec<bytes::Bytes>>,
}

fn normalize(dir: &Directive, args: &[String]) -> Result<String, String> {
    if !matches!(dir.kind, Kind::Words) && args.len() != 1 {
        return Err("wrong number of arguments".into());
    }
    let value = args.join(" ");
    let canonical = match dir.kind {
        Kind::Bool => match value.to_ascii_lowercase().as_str() {
            "yes" => "yes".to_string(),
            "no" => "no".to_string(),
            _ => return Err("argument must be 'yes' or 'no'".into()),
        },
        Kind::Int(min, max) => {
            let n: i64 = value
                .parse()
                .map_err(|_| "argument couldn't be parsed into an integer".to_string())?;
            if n < min || n > max {
                return Err(format!("argument must be between {min} and {max} inclusive"));
            }
            if dir.name == "hz" {
                return Ok(n.clamp(1, 500).to_string());
            }
            n.to_string()
        }
        Kind::Memory(min, max) => {
            // maxmemory-clients also takes a share of maxmemory, `N%` (0% is 0), as in Redis.
            if let Some(percent) =
                value.strip_suffix('%').filter(|_| dir.name == "maxmemory-clients")
            {
                let share: u64 = percent
                    .parse()
                    .ok()
                    .filter(|_| percent.bytes().all(|b| b.is_ascii_digit()))
                    .ok_or("argument must be a memory or percent value")?;
                if share > 100 {
                    return Err("percentage argument must be less or equal to 100".into());
                }
                if share == 0 {
                    "0".to_string()
                } else {
                    format!("{share}%")
                }
            } else {
                let n = parse_memory(&value).ok_or(if dir.name == "maxmemory-clients" {
                    "argument must be a memory or percent value"
                } else {
                    "argument must be a memory value"
                })?;
                if n < min || n > max {
                    return Err(format!("argument must be between {min} and {max} inclusive"));
                }
                n.to_string()
            }
        }
        Kind::Enum(options) => {
            let lower = value.to_ascii_lowercase();
            if !options.contains(&lower.as_str()) {
                return Err(
                    "argument(s) must be one of the following: ".to_string() + &options.join(", ")
                );
            }
            lower
        }
        Kind::Str => {
            if dir.name == "notify-keyspace-events" {
                return Ok(crate::notify::EventFlags::parse(&value)?.canonical());
            }
            if dir.name == "dbfilename" && value.contains(['/', '\\']) {
                return Err("dbfilename can't be a path, just a filename".into());
            }
            if dir.name == "proc-title-template" && !crate::proc_title::is_valid(&value) {
                return Err("template format is invalid or contains unknown variables".into());
            }
            value
        }
        Kind::Words => {
            if dir.name == "save" {
                validate_save(&value)?;
            }
            if dir.name == "oom-score-adj-values" {
                validate_oom_score_adj(&value)?;
            }
            if dir.name == "latency-tracking-info-percentiles" {
                let percentiles = crate::latency_histogram::parse_percentiles(&value)?;
                let names: Vec<String> = percentiles
                    .iter()
                    .map(|&p| crate::latency_histogram::percentile_name(p))
                    .collect();
                return Ok(names.join(" "));
            }
            // `--replicaof "host port"` and `--replicaof host port` both work, as in Redis.
            if dir.name == "replicaof" && !value.is_empty() && value.split_whitespace().count() != 2
            {
                return Err("wrong number of arguments".into());
            }
            if dir.name.starts_with("shutdown-on-sig") {
                validate_shutdown_flags(&value)?
            } else {
                value
            }
        }
    };
    if let Some((allowed, why)) = dir.only {
        let harmless = allowed.contains(&canonical.as_str())
            || (dir.name == "replicaof" && canonical.eq_ignore_ascii_case("no one"));
        if !harmless {
            return Err(format!("'{} {}' is not supported: {why}", dir.name, canonical));
        }
    }
    Ok(canonical)
}

/// Checks a `user <name> <rules…>` line (`args` is what follows `user`) as Redis does when
/// it reads its configuration, with Redis's words for what is wrong. Returns the name and the
/// rules, selectors joined.
fn check_user_line(
    users: &[Vec<bytes::Bytes>],
    args: &[String],
) -> Result<Vec<bytes::Bytes>, String> {
    use crate::acl::{user::merge_selectors, RuleError, User};
    use bytes::Bytes;
    // Redis names the word at the failing rule's index counted from `user` (so the rule
    // index 1 names the user name): kept as is, since operators grep for these lines.
    let line: Vec<&str> = std::iter::once("user").chain(args.iter().map(String::as_str)).collect();
    let declared = |index: usize, e: RuleError| {
        format!("Error in user declaration '{}': {}", line.get(index).unwrap_or(&""), e.message())
    };
    let name = Bytes::copy_from_slice(args[0].as_bytes());
    if users.iter().any(|u| u[0] == name) {
        return Err(declared(1, RuleError::Duplicate));
    }
    if crate::acl::selector::has_spaces(&name) {
        return Err("Spaces not allowed in ACL usernames".into());
    }
    let rules: Vec<Bytes> =
        args[1..].iter().map(|a| Bytes::copy_from_slice(a.as_bytes())).collect();
    let merged = merge_selectors(&rules).map_err(|at| declared(at, RuleError::Syntax))?;
    let mut user = User::new(name.clone(), false);
    for (j, rule) in merged.iter().enumerate() {
        match user.apply(rule, false) {
            Ok(()) => {}
            Err(RuleError::UnknownCommand) => {
                return Err(format!(
                    "Error loading ACL rule '{}' for the user named '{}': {}",
                    String::from_utf8_lossy(rule),
                    args[0],
                    RuleError::UnknownCommand.message()
                ))
            }
            Err(e) => return Err(declared(j, e)),
        }
    }
    Ok(std::iter::once(name).chain(merged).collect())
}

/// A directive's value in a fresh configuration.
fn current_default(defaults: &Config, d: &Directive) -> Option<String> {
    defaults.values.get(d.name).cloned()
}

/// A single value as a config line holds it: quoted when empty or when it has spaces or
/// quotes, as redis.conf's syntax needs.
fn quote_value(value: &str) -> String {
    if value.is_empty() || value.contains([' ', '"', '\'', '\\', '\t']) {
        format!("\"{}\"", value.replace('\\', "\\\\").replace('"', "\\\""))
    } else {
        value.to_string()
    }
}

/// `shutdown-on-sigint` / `shutdown-on-sigterm`: any of Redis's flags, SAVE and NOSAVE not
/// together.
fn validate_shutdown_flags(value: &str) -> Result<String, String> {
    const FLAGS: [&str; 5] = ["default", "save", "nosave", "now", "force"];
    let words: Vec<String> = value.split_whitespace().map(str::to_ascii_lowercase).collect();
    if words.is_empty() || words.iter().any(|w| !FLAGS.contains(&w.as_str())) {
        return Err(format!("argument(s) must be one of the following: {}", FLAGS.join(", ")));
    }
    if words.iter().any(|w| w == "save") && words.iter().any(|w| w == "nosave") {
        return Err("shutdown options SAVE and NOSAVE can't be used simultaneously".into());
    }
    // Printed as Redis prints a flag set: in its order, `default` (no flag) only when alone.
    let set: Vec<&str> =
        FLAGS[1..].iter().copied().filter(|f| words.iter().any(|w| w == f)).collect();
    Ok(if set.is_empty() { "default".to_string() } else { set.join(" ") })
}

/// `oom-score-adj-values`: three integers within -2000..=2000, as Redis checks them.
fn validate_oom_score_adj(value: &str) -> Result<(), String> {
    let words: Vec<&str> = value.split_whitespace().collect();
    if words.len() != 3 {
        return Err("wrong number of arguments".into());
    }
    if words.iter().any(|w| !w.parse::<i64>().is_ok_and(|n| (-2000..=2000).contains(&n))) {
        return Err("Invalid oom-score-adj-values, elements must be between -2000 and 2000.".into());
    }
    Ok(())
}

fn validate_save(value: &str) -> Result<(), String> {
    let words: Vec<&str> = value.split_whitespace().collect();
    if !words.len().is_multiple_of(2) {
        return Err("Invalid save parameters".into());
    }
    if words.iter().any(|w| w.parse::<u64>().is_err()) {
        return Err("Invalid save parameters".into());
    }
    Ok(())
}

impl Default for Config {
    fn default() -> Self {
        let values = DIRECTIVES.iter().map(|d| (d.name, d.default.to_string())).collect();
        let mut config =
            Config { values, file: None, settings: placeholder_settings(), users: Vec::new() };
        config.settings = config.derive().expect("the defaults are valid");
        config
    }
}

fn placeholder_settings() -> Settings {
    Settings {
        port: 6379,
        bind: Vec::new(),
        protected_mode: true,
        requirepass: None,
        databases: 16,
        dir: PathBuf::from("."),
        logfile: String::new(),
        loglevel: "notice".into(),
        maxclients: 10000,
        timeout: 0,
        tcp_keepalive: 300,
        tcp_backlog: 511,
        supervised: "no".into(),
        pidfile: None,
        proto_max_bulk_len: 512 << 20,
        client_query_buffer_limit: 1 << 30,
        output_limits: Default::default(),
        notify: Default::default(),
        hz: 10,
        active_expire_effort: 1,
        dynamic_hz: true,
        active_rehashing: true,
        enable_debug_command: "no".into(),
        replica_read_only: true,
        replica_serve_stale_data: true,
        replicaof: None,
        save_points: Vec::new(),
        stop_writes_on_bgsave_error: true,
        masterauth: None,
        masteruser: None,
        replica_announce_ip: None,
        replica_announce_port: 0,
        repl_backlog_size: 1 << 20,
        repl_backlog_ttl: 3600,
        repl_timeout: 60,
        repl_ping_period: 10,
        repl_diskless_sync: true,
        repl_diskless_sync_delay: 5,
        min_replicas_to_write: 0,
        min_replicas_max_lag: 10,
        slowlog_slower_than: 10000,
        slowlog_max_len: 128,
        latency_monitor_threshold: 0,
        tracking_table_max_keys: 1_000_000,
        io_threads: 1,
        busy_poll_us: 20,
        eviction: crate::evict::Limits::default(),
        busy_reply_threshold: std::time::Duration::from_millis(5000),
        lazyfree_lazy_user_del: false,
        lazyfree_lazy_user_flush: false,
        latency_tracking: true,
        latency_percentiles: vec![50.0, 99.0, 99.9],
        lfu_log_factor: 10,
        lfu_decay_time: 1,
    }
}

impl Config {
    /// Applies config-file lines and then command-line overrides, and validates the result.
    pub fn from_lines(file: Option<PathBuf>, lines: &[ConfigLine]) -> Result<Config, ConfigError> {
        let mut config = Config { file, ..Config::default() };
        let mut saw_save = false;
        for line in lines {
            if line.directive == "user" && !line.args.is_empty() {
                let user = check_user_line(&config.users, &line.args)
                    .map_err(|e| ConfigError::at(line, e))?;
                config.users.push(user);
                continue;
            }
            let dir = find(&line.directive).ok_or_else(|| {
                ConfigError::at(line, "Bad directive or wrong number of arguments")
            })?;
            let mut value = normalize(dir, &line.args).map_err(|e| ConfigError::at(line, e))?;
            // As in Redis, the first `save` line replaces the default points and later ones
            // add to them (`save ""` clears them).
            if dir.name == "save" && saw_save && !value.is_empty() {
                let earlier = &config.values["save"];
                if !earlier.is_empty() {
                    value = format!("{earlier} {value}");
                }
            }
            saw_save |= dir.name == "save";
            let value = config.merge(dir, value).map_err(|e| ConfigError::at(line, e))?;
            config.values.insert(dir.name, value);
        }
        config.settings = config.derive()?;
        if !config.values["aclfile"].is_empty() && !config.users.is_empty() {
            return Err(ConfigError::general("Configuring Redis with users defined in redis.conf and at the same setting an ACL file path is invalid. This setup is very likely to lead to configuration errors and security holes, please define either an ACL file or declare users directly in your redis.conf, but not both."));
        }
        Ok(config)
    }

    /// The canonical value of a directive.
    pub fn get(&self, name: &str) -> Option<&str> {
        find(name).and_then(|d| self.values.get(d.name)).map(String::as_str)
    }

    /// Every (name, value) whose name matches one of the glob `patterns` (CONFIG GET). A pattern
    /// without glob characters names one directive, and is echoed as the client typed it.
    pub fn matching(&self, patterns: &[&[u8]]) -> Vec<(String, String)> {
        let mut out: Vec<(String, String)> = Vec::new();
        for p in patterns {
            if p.iter().any(|c| matches!(c, b'*' | b'?' | b'[')) {
                continue;
            }
            let typed = String::from_utf8_lossy(p).into_owned();
            if let Some(d) = find(&typed) {
                if !out.iter().any(|(n, _)| n.eq_ignore_ascii_case(&typed)) {
                    let value = if d.name == "dir" {
                        self.settings.dir.display().to_string()
                    } else {
                        self.values[d.name].clone()
                    };
                    out.push((typed, value));
                }
            }
        }
        let patterns: Vec<&[u8]> = patterns
            .iter()
            .copied()
            .filter(|p| p.iter().any(|c| matches!(c, b'*' | b'?' | b'[')))
            .collect();
        // Old names (slave-*, *-ziplist-*) match patterns too, as in Redis 7.0.
        for d in DIRECTIVES.iter().filter(|d| !d.hidden) {
            for name in std::iter::once(d.name).chain(d.alias) {
                let hit = patterns.iter().any(|p| common::glob::matches(p, name.as_bytes(), true));
                if hit && !out.iter().any(|(n, _)| n == name) {
                    let mut value = self.values[d.name].clone();
                    if d.name == "dir" {
                        value = self.settings.dir.display().to_string();
                    }
                    out.push((name.to_string(), value));
                }
            }
        }
        out
    }

    /// CONFIG REWRITE: `original` (the config file's text) with every directive set to its
    /// current value, as Redis rewrites it. Comments and unknown lines stay where they are; a
    /// directive's first line (under its name or an old alias) takes the current value and
    /// later lines of it go; settings that differ from their defaults and had no line are
    /// appended. `replicaof` is the role now (REPLICAOF and failovers change it at run time),
    /// and its line goes for a master, so a restart keeps the topology. `users` are the ACL
    /// users as `user` lines: they replace the file's `user` lines (at the first one's place,
    /// or appended); with an `aclfile` the caller passes none and the lines go, as in Redis.
    pub fn rewrite_text(
        &self,
        original: &str,
        replicaof: Option<(&str, u16)>,
        users: &[String],
    ) -> String {
        let defaults = Config::default();
        let current = |d: &Directive| -> Option<String> {
            match d.name {
                "replicaof" => replicaof.map(|(host, port)| format!("{host} {port}")),
                "dir" => Some(self.settings.dir.display().to_string()),
                _ => Some(self.values[d.name].clone()),
            }
        };
        let line = |d: &Directive, value: &str| match d.kind {
            // Several words are written as words: `save 3600 1`, `replicaof host port`.
            Kind::Words if !value.is_empty() => format!("{} {value}\n", d.name),
            _ => format!("{} {}\n", d.name, quote_value(value)),
        };
        let mut written: Vec<&'static str> = Vec::new();
        let mut out = String::new();
        let mut users_written = false;
        for text in original.lines() {
            let first = text.split_whitespace().next().unwrap_or("");
            if first.eq_ignore_ascii_case("user") {
                if !users_written {
                    users.iter().for_each(|u| out.push_str(&format!("{u}\n")));
                    users_written = true;
                }
                continue;
            }
            let known = (!first.starts_with('#')).then(|| find(first)).flatten();
            let Some(d) = known else {
                out.push_str(text);
                out.push('\n');
                continue;
            };
            if written.contains(&d.name) {
                continue;
            }
            written.push(d.name);
            if let Some(value) = current(d) {
                out.push_str(&line(d, &value));
            }
        }
        let mut header = false;
        for d in DIRECTIVES {
            if written.contains(&d.name) || d.name == "dir" {
                continue;
            }
            let Some(value) = current(d) else { continue };
            let default = if d.name == "replicaof" { None } else { current_default(&defaults, d) };
            if default.as_deref() == Some(value.as_str()) {
                continue;
            }
            if !header {
                out.push_str("# Generated by CONFIG REWRITE\n");
                header = true;
            }
            out.push_str(&line(d, &value));
        }
        if !users_written && !users.is_empty() {
            if !header {
                out.push_str("# Generated by CONFIG REWRITE\n");
            }
            users.iter().for_each(|u| out.push_str(&format!("{u}\n")));
        }
        out
    }

    /// Settings only clients allowed by `enable-protected-configs` may change at run time.
    pub fn is_protected(name: &str) -> bool {
        matches!(canonical_name(name), Some("dir" | "dbfilename"))
    }

    /// CONFIG SET of one directive. Errors are Redis's reasons (without the prefix).
    pub fn set(&mut self, name: &str, value: &str) -> Result<(), SetError> {
        let dir = find(name).ok_or(SetError::Unknown)?;
        if !dir.mutable {
            return Err(SetError::Invalid(dir.name, "can't set immutable config".into()));
        }
        let args: Vec<String> = if matches!(dir.kind, Kind::Words) {
            value.split_whitespace().map(str::to_string).collect::<Vec<_>>()
        } else {
            vec![value.to_string()]
        };
        let args = if args.is_empty() { vec![String::new()] } else { args };
        let canonical = normalize(dir, &args)
            .and_then(|value| self.merge(dir, value))
            .map_err(|e| SetError::Invalid(dir.name, e))?;
        if dir.name == "dir" && !std::path::Path::new(&canonical).is_dir() {
            return Err(SetError::Invalid(dir.name, "No such file or directory".into()));
        }
        let previous = self.values.insert(dir.name, canonical);
        match self.derive() {
            Ok(settings) => {
                self.settings = settings;
                Ok(())
            }
            Err(e) => {
                self.values.insert(dir.name, previous.expect("every directive has a value"));
                Err(SetError::Invalid(dir.name, e.message))
            }
        }
    }

    /// A directive whose value only updates part of the current one: each
    /// `client-output-buffer-limit` names the classes it changes.
    fn merge(&self, dir: &Directive, value: String) -> Result<String, String> {
        if dir.name != "client-output-buffer-limit" {
            return Ok(value);
        }
        let words: Vec<&str> = value.split_whitespace().collect();
        Ok(self.output_limits().update(&words)?.canonical())
    }

    fn output_limits(&self) -> crate::output_limit::OutputLimits {
        let words: Vec<&str> =
            self.values["client-output-buffer-limit"].split_whitespace().collect();
        crate::output_limit::OutputLimits::default()
            .update(&words)
            .expect("the stored value is canonical")
    }

    fn int(&self, name: &str) -> i64 {
        self.values[name].parse().expect("integer directives hold normalised integers")
    }

    fn flag(&self, name: &str) -> bool {
        self.values[name] == "yes"
    }

    /// `replicaof <host> <port>` (absent, empty or `no one`: a master).
    fn replicaof(&self) -> Result<Option<(String, u16)>, ConfigError> {
        let words: Vec<&str> = self.values["replicaof"].split_whitespace().collect();
        match words[..] {
            [] => Ok(None),
            [no, one] if no.eq_ignore_ascii_case("no") && one.eq_ignore_ascii_case("one") => {
                Ok(None)
            }
            [host, port] => match port.parse::<u16>() {
                Ok(port) => Ok(Some((host.to_string(), port))),
                Err(_) => Err(ConfigError::general("Invalid master port")),
            },
            _ => Err(ConfigError::general("wrong number of arguments")),
        }
    }

    fn derive(&self) -> Result<Settings, ConfigError> {
        // Kept absolute, so paths stay right after the server chdirs into it (as Redis does)
        // and CONFIG GET dir prints a full path like Redis's.
        let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
        let dir = match self.values["dir"].as_str() {
            "" => cwd,
            d => cwd.join(d),
        };
        let settings = Settings {
            port: self.int("port") as u16,
            bind: self.values["bind"].split_whitespace().map(str::to_string).collect(),
            protected_mode: self.flag("protected-mode"),
            requirepass: Some(self.values["requirepass"].clone()).filter(|p| !p.is_empty()),
            databases: self.int("databases") as usize,
            dir,
            logfile: self.values["logfile"].clone(),
            loglevel: self.values["loglevel"].clone(),
            maxclients: self.int("maxclients") as usize,
            timeout: self.int("timeout") as u64,
            tcp_keepalive: self.int("tcp-keepalive") as u64,
            tcp_backlog: self.int("tcp-backlog") as u32,
            supervised: self.values["supervised"].clone(),
            pidfile: Some(self.values["pidfile"].clone())
                .filter(|p| !p.is_empty())
                .map(PathBuf::from),
            proto_max_bulk_len: self.int("proto-max-bulk-len") as usize,
            client_query_buffer_limit: self.int("client-query-buffer-limit") as usize,
            output_limits: self.output_limits(),
            notify: crate::notify::EventFlags::parse(&self.values["notify-keyspace-events"])
                .unwrap_or_default(),
            hz: self.int("hz") as u64,
            active_expire_effort: self.int("active-expire-effort") as u64,
            dynamic_hz: self.flag("dynamic-hz"),
            active_rehashing: self.flag("activerehashing"),
            enable_debug_command: self.values["enable-debug-command"].clone(),
            replica_read_only: self.flag("replica-read-only"),
            replica_serve_stale_data: self.flag("replica-serve-stale-data"),
            replicaof: self.replicaof()?,
            save_points: {
                let words: Vec<u64> =
                    self.values["save"].split_whitespace().filter_map(|w| w.parse().ok()).collect();
                words.chunks(2).filter(|p| p.len() == 2).map(|p| (p[0], p[1])).collect()
            },
            stop_writes_on_bgsave_error: self.flag("stop-writes-on-bgsave-error"),
            masterauth: Some(self.values["masterauth"].clone()).filter(|v| !v.is_empty()),
            masteruser: Some(self.values["masteruser"].clone()).filter(|v| !v.is_empty()),
            replica_announce_ip: Some(self.values["replica-announce-ip"].clone())
                .filter(|v| !v.is_empty()),
            replica_announce_port: self.int("replica-announce-port") as u16,
            repl_backlog_size: self.int("repl-backlog-size") as usize,
            repl_backlog_ttl: self.int("repl-backlog-ttl") as u64,
            repl_timeout: self.int("repl-timeout") as u64,
            repl_ping_period: self.int("repl-ping-replica-period") as u64,
            repl_diskless_sync: self.flag("repl-diskless-sync"),
            repl_diskless_sync_delay: self.int("repl-diskless-sync-delay") as u64,
            min_replicas_to_write: self.int("min-replicas-to-write") as usize,
            min_replicas_max_lag: self.int("min-replicas-max-lag") as u64,
            slowlog_slower_than: self.int("slowlog-log-slower-than"),
            slowlog_max_len: self.int("slowlog-max-len") as usize,
            latency_monitor_threshold: self.int("latency-monitor-threshold") as u64,
            tracking_table_max_keys: self.int("tracking-table-max-keys") as usize,
            io_threads: self.int("io-threads") as usize,
            busy_poll_us: self.int("busy-poll-us") as u64,
            eviction: crate::evict::Limits {
                maxmemory: self.values["maxmemory"].parse().expect("memory values are normalised"),
                policy: crate::evict::Policy::parse(&self.values["maxmemory-policy"]),
                samples: self.int("maxmemory-samples") as usize,
                tenacity: self.int("maxmemory-eviction-tenacity") as u32,
                replica_ignore: self.flag("replica-ignore-maxmemory"),
                lazy: self.flag("lazyfree-lazy-eviction"),
            },
            busy_reply_threshold: std::time::Duration::from_millis(
                self.int("busy-reply-threshold").max(0) as u64,
            ),
            lazyfree_lazy_user_del: self.flag("lazyfree-lazy-user-del"),
            lazyfree_lazy_user_flush: self.flag("lazyfree-lazy-user-flush"),
            latency_tracking: self.flag("latency-tracking"),
            latency_percentiles: crate::latency_histogram::parse_percentiles(
                &self.values["latency-tracking-info-percentiles"],
            )
            .unwrap_or_default(),
            lfu_log_factor: self.int("lfu-log-factor") as u32,
            lfu_decay_time: self.int("lfu-decay-time") as u32,
        };
        use crate::db::value::LIMITS;
        use std::sync::atomic::Ordering::Relaxed;
        LIMITS.hash_entries.store(self.int("hash-max-listpack-entries") as usize, Relaxed);
        LIMITS.hash_value.store(self.int("hash-max-listpack-value") as usize, Relaxed);
        LIMITS.set_intset_entries.store(self.int("set-max-intset-entries") as usize, Relaxed);
        LIMITS.zset_entries.store(self.int("zset-max-listpack-entries") as usize, Relaxed);
        LIMITS.zset_value.store(self.int("zset-max-listpack-value") as usize, Relaxed);
        LIMITS.list_fill.store(self.int("list-max-listpack-size").clamp(-5, 32767), Relaxed);
        LIMITS.stream_node_bytes.store(self.int("stream-node-max-bytes") as usize, Relaxed);
        LIMITS.stream_node_entries.store(self.int("stream-node-max-entries"), Relaxed);
        crate::persist::pace::SAVE_DELAY.store(self.int("rdb-key-save-delay"), Relaxed);
        crate::persist::pace::LOAD_DELAY.store(self.int("key-load-delay"), Relaxed);
        Ok(settings)
    }
}

/// Why CONFIG SET refused a value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SetError {
    /// No such directive.
    Unknown,
    /// The directive exists but the value is refused.
    Invalid(&'static str, String),
}

#[cfg(test)]
mod tests {
    use super::*;
    use common::config::parse_text;

    fn load(text: &str) -> Result<Config, ConfigError> {
        Config::from_lines(None, &parse_text(text, "test.conf").unwrap())
    }

    #[test]
    fn defaults_and_overrides() {
        let c = load("port 7000\nsave \"\"\nappendonly no\nrequirepass secret\n").unwrap();
        assert_eq!(c.settings.port, 7000);
        assert_eq!(c.settings.requirepass.as_deref(), Some("secret"));
        assert_eq!(c.get("appendfsync"), Some("everysec"));
        assert_eq!(c.get("slave-read-only"), Some("yes"));
    }

    #[test]
    fn errors_name_file_line_and_directive() {
        let e = load("\nport abc\n").unwrap_err().to_string();
        assert_eq!(e, "test.conf:2: directive 'port': argument couldn't be parsed into an integer");
        let e = load("nosuch 1\n").unwrap_err().to_string();
        assert!(e.contains("Bad directive"), "{e}");
    }

    #[test]
    fn features_not_landed_are_refused_not_ignored() {
        let e = load("cluster-enabled yes\n").unwrap_err().to_string();
        assert!(e.contains("not supported"), "{e}");
        let c = load("maxmemory 100mb\nmaxmemory-policy allkeys-lfu\n").unwrap();
        assert_eq!(c.settings.eviction.maxmemory, 100 * 1024 * 1024);
        assert_eq!(c.settings.eviction.policy, crate::evict::Policy::AllkeysLfu);
        assert!(load("save 900\n").is_err());
        let c = load("save 900 1 300 10\nappendonly yes\n").unwrap();
        assert_eq!(c.settings.save_points, [(900, 1), (300, 10)]);
        assert!(load("replicaof 127.0.0.1 notaport\n").is_err());
        let c = load("replicaof 127.0.0.1 6380\n").unwrap();
        assert_eq!(c.settings.replicaof, Some(("127.0.0.1".to_string(), 6380)));
        assert!(load("save \"\"\nappendonly no\n").unwrap().settings.save_points.is_empty());
    }

    #[test]
    fn save_lines_add_up_and_buffer_limits_change_one_class_each() {
        let c = load("save 900 1\nsave 300 10\n").unwrap();
        assert_eq!(c.settings.save_points, vec![(900, 1), (300, 10)]);
        let c = load("save 900 1\nsave \"\"\n").unwrap();
        assert!(c.settings.save_points.is_empty());
        let c = load(
            "client-output-buffer-limit normal 1mb 2mb 3\n\
             client-output-buffer-limit pubsub 5 6 7\n",
        )
        .unwrap();
        assert_eq!(
            c.get("client-output-buffer-limit").unwrap(),
            "normal 1048576 2097152 3 slave 268435456 67108864 60 pubsub 5 6 7"
        );
        let e = load("client-output-buffer-limit normal 1\n").unwrap_err().to_string();
        assert!(e.contains("Wrong number of arguments in buffer limit configuration"), "{e}");
    }

    #[test]
    fn maxmemory_clients_takes_percentages_with_redis_words() {
        let mut c = Config::default();
        assert_eq!(c.set("maxmemory-clients", "0%"), Ok(()));
        let too_much = c.set("maxmemory-clients", "101%");
        let words = "percentage argument must be less or equal to 100";
        assert_eq!(too_much, Err(SetError::Invalid("maxmemory-clients", words.into())));
        let bad = "argument must be a memory or percent value";
        for value in ["-5%", "5.5%", "%", "x"] {
            let e = c.set("maxmemory-clients", value);
            assert_eq!(e, Err(SetError::Invalid("maxmemory-clients", bad.into())), "{value}");
        }
        // A real share asks for client eviction, which is refused with the reason.
        let e = c.set("maxmemory-clients", "50%").unwrap_err();
        assert!(format!("{e:?}").contains("client eviction is not implemented"), "{e:?}");
    }

    #[test]
    fn config_set_and_get() {
        let mut c = Config::default();
        c.set("maxclients", "50").unwrap();
        assert_eq!(c.settings.maxclients, 50);
        assert_eq!(
            c.set("databases", "1"),
            Err(SetError::Invalid("databases", "can't set immutable config".into()))
        );
        assert_eq!(c.set("nosuch", "1"), Err(SetError::Unknown));
        assert!(matches!(c.set("maxclients", "x"), Err(SetError::Invalid(..))));
        let all = c.matching(&[b"*"]);
        assert!(all.iter().any(|(n, _)| *n == "save"));
        assert_eq!(
            c.matching(&[b"maxclients"]),
            vec![("maxclients".to_string(), "50".to_string())]
        );
        assert_eq!(
            c.matching(&[b"MAXCLIENTS"]),
            vec![("MAXCLIENTS".to_string(), "50".to_string())]
        );
    }
}
