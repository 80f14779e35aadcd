//! warden-node: a Redis 7.0-compatible data server.
//!
//! Crate map:
//! - [`server`]: shared state, listeners, accept loop, shutdown; [`connection`]: one client.
//! - [`dispatch`]: the order of checks around every command and the write rules after it.
//! - [`cmd`]: the command table, one file per family; [`exec`]: a command's context;
//!   [`geo`]: the geohash math behind the GEO commands.
//! - [`db`]: the keyspace (hash table, value types, expiry, WATCH); [`blocking`]: blocked
//!   clients; [`pubsub`]: channels and patterns; [`client`]: connection state and registry;
//!   [`push`]: a client's queue of pub/sub messages and MONITOR lines; [`redact`]: secrets
//!   hidden from MONITOR and SLOWLOG; [`output_limit`]: when a
//!   client whose replies pile up is disconnected.
//! - [`aof`]: the append-only file (multi-part layout, fsync policies, rewrite, loading).
//! - [`repl`]: replication (backlog, PSYNC, replica feeds, the link to a master).
//! - [`alloc`]: memory accounting for INFO; [`config`]: the directive table; [`cron`]: periodic jobs; [`slowlog`];
//!   [`proc_title`]: what `ps` shows.

pub mod acl;
pub mod alloc;
pub mod aof;
pub mod blocking;
pub mod busy;
pub mod busy_poll;
pub mod client;
pub mod cmd;
pub mod command_stats;
pub mod config;
pub mod connection;
pub mod cron;
pub mod db;
pub mod dispatch;
pub mod error;
pub mod evict;
pub mod exec;
pub mod geo;
pub mod kill_switch;
pub mod latency_histogram;
pub mod latency_monitor;
pub mod lazyfree;
pub mod notify;
pub mod output_limit;
pub mod persist;
pub mod proc_title;
pub mod pubsub;
pub mod push;
pub mod redact;
pub mod repl;
pub mod script;
pub mod server;
pub mod slowlog;
pub mod testing;
pub mod tracking;
pub mod unexpected_error;
