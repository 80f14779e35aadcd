//! INFO, with Redis 7.0's sections and field names (clients and Sentinel parse them).

use std::fmt::Write;
use std::sync::atomic::Ordering;

use bytes::Bytes;
use common::resp::Frame;

use crate::cmd::flags::*;
use crate::cmd::{cmd, CommandSpec};
use crate::error::CmdResult;
use crate::exec::Ctx;
use crate::server::unix_ms;

/// The Redis version we report, so clients enable the features of 7.0.
pub const REDIS_VERSION: &str = "7.0.15";

/// The INFO command.
pub static COMMANDS: &[CommandSpec] = &[cmd("info", -1, LOADING | STALE, (0, 0, 0), info)];

/// Every section, in the order Redis prints them, and whether plain INFO (`default`) includes
/// it; `all` and `everything` include them all.
const SECTIONS: &[(&str, bool)] = &[
    ("server", true),
    ("clients", true),
    ("memory", true),
    ("persistence", true),
    ("stats", true),
    ("replication", true),
    ("cpu", true),
    ("modules", true),
    ("commandstats", false),
    ("errorstats", true),
    ("latencystats", false),
    ("cluster", true),
    ("keyspace", true),
];

fn info(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let wanted: Vec<String> =
        args[1..].iter().map(|a| String::from_utf8_lossy(a).to_ascii_lowercase()).collect();
    let default = wanted.is_empty() || wanted.iter().any(|w| w == "default");
    let all = wanted.iter().any(|w| w == "all" || w == "everything");
    let mut out = String::new();
    for (section, in_default) in SECTIONS {
        if !(all || (default && *in_default) || wanted.iter().any(|w| w == section)) {
            continue;
        }
        if !out.is_empty() {
            out.push_str("\r\n");
        }
        render(ctx, section, &mut out);
    }
    Ok(Frame::Verbatim("txt", Bytes::from(out)))
}

fn rusage() -> (f64, f64) {
    // SAFETY: getrusage only writes into the struct we pass.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    (secs(usage.ru_utime), secs(usage.ru_stime))
}

/// Resident set size in bytes, from /proc.
pub fn rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1).and_then(|p| p.parse::<u64>().ok()))
        .map(|pages| pages * 4096)
        .unwrap_or(0)
}

/// Memory that holds no data, as INFO memory splits `used_memory` (estimates: the system
/// allocator cannot say what each structure takes).
/// `used_memory`: the heap in use (in-process tests run without the counting allocator and
/// fall back to the RSS).
pub(super) fn used_memory(rss: u64) -> u64 {
    match crate::alloc::in_use() as u64 {
        0 => rss,
        n => n,
    }
}

pub(super) struct Footprint {
    /// The keyspace's tables and per-entry bookkeeping, the backlog, client buffers, the AOF
    /// buffer.
    pub(super) structures: u64,
    /// The replication backlog's bytes.
    pub(super) backlog: u64,
    /// Connections' buffers: each starts with 16 KiB for input and 16 KiB for output.
    pub(super) clients: u64,
    /// AOF bytes not yet written.
    pub(super) aof_buffer: u64,
}

/// A connection's input and output buffers as allocated at connect.
const CLIENT_BUFFERS: u64 = 32 * 1024;

pub(super) fn memory_footprint(ctx: &Ctx<'_>) -> Footprint {
    let shared = ctx.server;
    let entries: u64 =
        ctx.exec.ks.dbs.iter().map(|db| (db.keys.len() + db.expires.len()) as u64).sum();
    let backlog = shared.repl.lock().backlog.as_ref().map_or(0, |b| b.histlen() as u64);
    let clients = shared.clients.lock().len() as u64 * CLIENT_BUFFERS;
    let aof_buffer = shared.aof.lock().as_ref().map_or(0, |st| st.buffered() as u64);
    Footprint {
        structures: entries * crate::db::memory::ENTRY as u64 + backlog + clients + aof_buffer,
        backlog,
        clients,
        aof_buffer,
    }
}

/// `MemTotal` from /proc/meminfo, in bytes.
fn system_memory() -> u64 {
    let text = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let kib = text
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|rest| rest.split_whitespace().next().and_then(|n| n.parse::<u64>().ok()));
    kib.unwrap_or(0) * 1024
}

fn human(bytes: u64) -> String {
    let b = bytes as f64;
    if b < 1024.0 {
        format!("{bytes}B")
    } else if b < 1024.0 * 1024.0 {
        format!("{:.2}K", b / 1024.0)
    } else if b < 1024.0 * 1024.0 * 1024.0 {
        format!("{:.2}M", b / 1024.0 / 1024.0)
    } else {
        format!("{:.2}G", b / 1024.0 / 1024.0 / 1024.0)
    }
}

fn render(ctx: &mut Ctx<'_>, section: &str, out: &mut String) {
    let shared = ctx.server;
    let now = unix_ms();
    let uptime = shared.started.elapsed().as_secs();
    let w = |out: &mut String, k: &str, v: &dyn std::fmt::Display| {
        let _ = write!(out, "{k}:{v}\r\n");
    };
    match section {
        "server" => {
            out.push_str("# Server\r\n");
            w(out, "redis_version", &REDIS_VERSION);
            w(out, "warden_version", &env!("CARGO_PKG_VERSION"));
            w(out, "redis_git_sha1", &"00000000");
            w(out, "redis_git_dirty", &0);
            w(out, "redis_build_id", &"0");
            w(out, "redis_mode", &"standalone");
            w(out, "os", &format!("{} {}", std::env::consts::OS, std::env::consts::ARCH));
            w(out, "arch_bits", &64);
            w(out, "monotonic_clock", &"POSIX clock_gettime");
            w(out, "multiplexing_api", &"epoll");
            w(out, "atomicvar_api", &"c11-builtin");
            w(out, "gcc_version", &"0.0.0");
            w(out, "process_id", &std::process::id());
            w(out, "process_supervised", &"no");
            w(out, "run_id", &shared.run_id);
            w(out, "tcp_port", &shared.port());
            w(out, "server_time_usec", &(now * 1000));
            w(out, "uptime_in_seconds", &uptime);
            w(out, "uptime_in_days", &(uptime / 86400));
            w(out, "hz", &crate::cron::current_hz(shared));
            w(out, "configured_hz", &shared.config.read().settings.hz);
            w(out, "lru_clock", &((now / 1000) & ((1 << 24) - 1)));
            w(
                out,
                "executable",
                &std::env::current_exe().map(|p| p.display().to_string()).unwrap_or_default(),
            );
            let file = shared
                .config
                .read()
                .file
                .as_ref()
                .map(|p| p.display().to_string())
                .unwrap_or_default();
            w(out, "config_file", &file);
            w(out, "io_threads_active", &0);
        }
        "clients" => {
            let clients = shared.clients.lock();
            let maxclients = shared.config.read().settings.maxclients;
            out.push_str("# Clients\r\n");
            w(out, "connected_clients", &clients.len());
            w(out, "cluster_connections", &0);
            w(out, "maxclients", &maxclients);
            w(out, "client_recent_max_input_buffer", &0);
            w(out, "client_recent_max_output_buffer", &0);
            let paused = ctx.server.paused_clients.load(Ordering::Relaxed);
            w(out, "blocked_clients", &(ctx.exec.ks.blocking.len() + paused));
            w(out, "tracking_clients", &ctx.exec.ks.tracking.clients());
            w(out, "clients_in_timeout_table", &ctx.exec.ks.blocking.len());
        }
        "memory" => {
            let rss = rss_bytes();
            let used = used_memory(rss);
            let peak = (crate::alloc::peak() as u64).max(used);
            let policy =
                shared.config.read().get("maxmemory-policy").unwrap_or("noeviction").to_string();
            out.push_str("# Memory\r\n");
            let footprint = memory_footprint(ctx);
            let startup = shared.startup_memory.min(used);
            let overhead = (startup + footprint.structures).min(used);
            let dataset = used - overhead;
            let total = system_memory();
            w(out, "used_memory", &used);
            w(out, "used_memory_human", &human(used));
            w(out, "used_memory_rss", &rss);
            w(out, "used_memory_rss_human", &human(rss));
            w(out, "used_memory_peak", &peak);
            w(out, "used_memory_peak_human", &human(peak));
            let percent = |part: u64, whole: u64| {
                format!("{:.2}%", part as f64 * 100.0 / whole.max(1) as f64)
            };
            w(out, "used_memory_peak_perc", &percent(used, peak));
            w(out, "used_memory_overhead", &overhead);
            w(out, "used_memory_startup", &startup);
            w(out, "used_memory_dataset", &dataset);
            w(out, "used_memory_dataset_perc", &percent(dataset, used - startup));
            // The system allocator keeps no statistics of its own: its view is ours.
            w(out, "allocator_allocated", &used);
            w(out, "allocator_active", &used);
            w(out, "allocator_resident", &rss);
            w(out, "total_system_memory", &total);
            w(out, "total_system_memory_human", &human(total));
            let (lua, scripts, script_bytes) = {
                let s = shared.scripts.lock();
                let (count, bytes) = s.usage();
                (s.lua_memory() as u64, count, bytes as u64)
            };
            w(out, "used_memory_lua", &lua);
            w(out, "used_memory_vm_eval", &lua);
            w(out, "used_memory_lua_human", &human(lua));
            w(out, "used_memory_scripts_eval", &script_bytes);
            w(out, "number_of_cached_scripts", &scripts);
            let (libraries, functions, lua_functions, function_bytes) = {
                let f = shared.functions.lock();
                let bytes: usize = f.libraries().map(|l| l.code.len() + l.name.len()).sum();
                let (libraries, functions) = f.counts();
                (libraries, functions, f.lua_memory() as u64, bytes as u64)
            };
            w(out, "number_of_functions", &functions);
            w(out, "number_of_libraries", &libraries);
            w(out, "used_memory_vm_functions", &lua_functions);
            w(out, "used_memory_vm_total", &(lua + lua_functions));
            w(out, "used_memory_vm_total_human", &human(lua + lua_functions));
            // What the libraries' bookkeeping holds beyond their Lua state (Redis counts its
            // structures; their sources and names are ours).
            w(out, "used_memory_functions", &function_bytes);
            w(out, "used_memory_scripts", &(script_bytes + function_bytes));
            w(out, "used_memory_scripts_human", &human(script_bytes + function_bytes));
            let maxmemory = ctx.exec.ks.eviction.limits.maxmemory;
            w(out, "maxmemory", &maxmemory);
            w(out, "maxmemory_human", &human(maxmemory));
            w(out, "maxmemory_policy", &policy);
            w(out, "allocator_frag_ratio", &"1.00");
            w(out, "allocator_frag_bytes", &0);
            w(out, "allocator_rss_ratio", &format!("{:.2}", rss as f64 / used.max(1) as f64));
            w(out, "allocator_rss_bytes", &(rss as i64 - used as i64));
            w(out, "rss_overhead_ratio", &"1.00");
            w(out, "rss_overhead_bytes", &0);
            w(out, "mem_fragmentation_ratio", &format!("{:.2}", rss as f64 / used.max(1) as f64));
            w(out, "mem_fragmentation_bytes", &(rss as i64 - used as i64));
            w(out, "mem_not_counted_for_evict", &crate::evict::not_counted(shared, ctx.exec.ks));
            w(out, "mem_replication_backlog", &footprint.backlog);
            w(out, "mem_total_replication_buffers", &footprint.backlog);
            w(out, "mem_clients_slaves", &0);
            w(out, "mem_clients_normal", &footprint.clients);
            w(out, "mem_cluster_links", &0);
            w(out, "mem_aof_buffer", &footprint.aof_buffer);
            w(out, "mem_allocator", &"libc");
            w(out, "active_defrag_running", &0);
            w(out, "lazyfree_pending_objects", &shared.lazyfree.pending());
            w(out, "lazyfreed_objects", &shared.lazyfree.freed());
        }
        "persistence" => {
            let stats = shared.persist.lock().clone();
            out.push_str("# Persistence\r\n");
            let loading = *shared.loading.lock();
            w(out, "loading", &u8::from(loading.is_some()));
            w(out, "async_loading", &0);
            w(out, "current_cow_peak", &0);
            w(out, "current_cow_size", &0);
            w(out, "current_cow_size_age", &0);
            w(out, "current_fork_perc", &"0.00");
            let (processed, total) = stats.current.map_or((0, 0), |(_, done, all)| (done, all));
            w(out, "current_save_keys_processed", &processed);
            w(out, "current_save_keys_total", &total);
            w(out, "rdb_changes_since_last_save", &ctx.exec.ks.dirty);
            w(out, "rdb_bgsave_in_progress", &u8::from(stats.bgsave_in_progress));
            w(out, "rdb_last_save_time", &shared.lastsave.load(Ordering::Relaxed));
            w(out, "rdb_last_bgsave_status", &if stats.last_failed { "err" } else { "ok" });
            w(out, "rdb_last_bgsave_time_sec", &stats.last_bgsave_secs);
            let running =
                stats.current.map_or(-1, |(since, _, _)| since.elapsed().as_secs() as i64);
            w(out, "rdb_current_bgsave_time_sec", &running);
            w(out, "rdb_saves", &stats.saves);
            w(out, "rdb_last_cow_size", &0);
            w(out, "rdb_last_load_keys_expired", &stats.keys_expired);
            w(out, "rdb_last_load_keys_loaded", &stats.keys_loaded);
            let (aof_on, write_failed, rewriting, scheduled) = match shared.aof.lock().as_ref() {
                Some(st) => (1, st.write_failed, st.rewriting, st.rewrite_scheduled),
                None => (0, false, false, false),
            };
            let rewrites = *shared.aof_rewrite_stats.lock();
            w(out, "aof_enabled", &aof_on);
            let running = rewriting || rewrites.running_while_off || rewrites.starting;
            w(out, "aof_rewrite_in_progress", &u8::from(running));
            w(out, "aof_rewrite_scheduled", &u8::from(scheduled));
            w(out, "aof_last_rewrite_time_sec", &-1);
            w(out, "aof_current_rewrite_time_sec", &-1);
            w(out, "aof_last_bgrewrite_status", &if rewrites.last_failed { "err" } else { "ok" });
            w(out, "aof_rewrites", &rewrites.done);
            w(out, "aof_rewrites_consecutive_failures", &rewrites.consecutive_failures);
            w(out, "aof_last_write_status", &if write_failed { "err" } else { "ok" });
            w(out, "aof_last_cow_size", &0);
            w(out, "module_fork_in_progress", &0);
            w(out, "module_fork_last_cow_size", &0);
            if let Some(st) = shared.aof.lock().as_ref() {
                // Only while the AOF is on, as in Redis.
                w(out, "aof_current_size", &st.current_size());
                w(out, "aof_base_size", &st.base_size);
                w(out, "aof_pending_rewrite", &0);
                w(out, "aof_buffer_length", &0);
                w(out, "aof_pending_bio_fsync", &0);
                w(out, "aof_delayed_fsync", &0);
            }
            if let Some((started, total)) = loading {
                // Redis's progress arithmetic: percent of the total, and the ETA extrapolated
                // from the rate so far (1 s in the first second).
                let loaded = shared.loading_loaded.load(std::sync::atomic::Ordering::Relaxed);
                let perc = loaded as f64 / (total + 1) as f64 * 100.0;
                let elapsed = (crate::server::unix_ms() / 1000 - started).max(0) as u64;
                let eta = if elapsed == 0 {
                    1
                } else {
                    elapsed * total.saturating_sub(loaded) / (loaded + 1)
                };
                w(out, "loading_start_time", &started);
                w(out, "loading_total_bytes", &total);
                w(out, "loading_rdb_used_mem", &0);
                w(out, "loading_loaded_bytes", &loaded);
                w(out, "loading_loaded_perc", &format!("{perc:.2}"));
                w(out, "loading_eta_seconds", &eta);
            }
        }
        "stats" => {
            let clients = shared.clients.lock();
            let ks = &ctx.exec.ks.stats;
            out.push_str("# Stats\r\n");
            w(out, "total_connections_received", &clients.total_connections);
            w(out, "total_commands_processed", &shared.stats.commands.load(Ordering::Relaxed));
            w(out, "instantaneous_ops_per_sec", &0);
            w(out, "total_net_input_bytes", &shared.stats.net_input.load(Ordering::Relaxed));
            w(out, "total_net_output_bytes", &shared.stats.net_output.load(Ordering::Relaxed));
            w(
                out,
                "total_net_repl_input_bytes",
                &shared.stats.net_repl_input.load(Ordering::Relaxed),
            );
            w(
                out,
                "total_net_repl_output_bytes",
                &shared.stats.net_repl_output.load(Ordering::Relaxed),
            );
            w(out, "instantaneous_input_kbps", &"0.00");
            w(out, "instantaneous_output_kbps", &"0.00");
            w(out, "instantaneous_input_repl_kbps", &"0.00");
            w(out, "instantaneous_output_repl_kbps", &"0.00");
            w(out, "rejected_connections", &clients.rejected);
            let sync = shared.repl.lock().stats;
            w(out, "sync_full", &sync.full);
            w(out, "sync_partial_ok", &sync.partial_ok);
            w(out, "sync_partial_err", &sync.partial_err);
            w(out, "expired_keys", &ks.expired);
            w(out, "expired_stale_perc", &"0.00");
            w(out, "expired_time_cap_reached_count", &0);
            w(out, "expire_cycle_cpu_milliseconds", &0);
            let eviction = &ctx.exec.ks.eviction;
            let (exceeded_total, exceeded_now) = eviction.exceeded_time();
            w(out, "evicted_keys", &eviction.evicted);
            w(out, "evicted_clients", &0);
            w(out, "total_eviction_exceeded_time", &exceeded_total.as_millis());
            w(out, "current_eviction_exceeded_time", &exceeded_now.as_millis());
            w(out, "keyspace_hits", &ks.hits);
            w(out, "keyspace_misses", &ks.misses);
            w(out, "pubsub_channels", &shared.pubsub.lock().channel_count());
            w(out, "pubsub_patterns", &shared.pubsub.lock().numpat());
            w(out, "pubsubshard_channels", &shared.pubsub.lock().shard_channel_count());
            w(out, "latest_fork_usec", &0);
            w(out, "total_forks", &0);
            w(out, "migrate_cached_sockets", &0);
            w(out, "slave_expires_tracked_keys", &0);
            w(out, "active_defrag_hits", &0);
            w(out, "active_defrag_misses", &0);
            w(out, "active_defrag_key_hits", &0);
            w(out, "active_defrag_key_misses", &0);
            w(out, "total_active_defrag_time", &0);
            w(out, "current_active_defrag_time", &0);
            let tracking = &ctx.exec.ks.tracking;
            w(out, "tracking_total_keys", &tracking.total_keys());
            w(out, "tracking_total_items", &tracking.total_items());
            w(out, "tracking_total_prefixes", &tracking.total_prefixes());
            w(
                out,
                "unexpected_error_replies",
                &shared.stats.unexpected_errors.load(Ordering::Relaxed),
            );
            w(out, "total_error_replies", &shared.stats.errors.load(Ordering::Relaxed));
            w(out, "dump_payload_sanitizations", &0);
            w(out, "total_reads_processed", &0);
            w(out, "total_writes_processed", &0);
            w(out, "io_threaded_reads_processed", &0);
            w(out, "io_threaded_writes_processed", &0);
            w(out, "reply_buffer_shrinks", &0);
            w(out, "reply_buffer_expands", &0);
        }
        "replication" => crate::repl::report::info(shared, out),
        "cpu" => {
            let (user, sys) = rusage();
            out.push_str("# CPU\r\n");
            w(out, "used_cpu_sys", &format!("{sys:.6}"));
            w(out, "used_cpu_user", &format!("{user:.6}"));
            w(out, "used_cpu_sys_children", &"0.000000");
            w(out, "used_cpu_user_children", &"0.000000");
            w(out, "used_cpu_sys_main_thread", &format!("{sys:.6}"));
            w(out, "used_cpu_user_main_thread", &format!("{user:.6}"));
        }
        "modules" => out.push_str("# Modules\r\n"),
        "latencystats" => {
            out.push_str("# Latencystats\r\n");
            let percentiles = shared.config.read().settings.latency_percentiles.clone();
            for line in shared.command_stats.lock().latency_lines(&percentiles) {
                out.push_str(&line);
                out.push_str("\r\n");
            }
        }
        "errorstats" => {
            out.push_str("# Errorstats\r\n");
            ctx.client.tally.flush(&ctx.server.command_stats);
            for line in ctx.server.command_stats.lock().error_lines() {
                out.push_str(&line);
                out.push_str("\r\n");
            }
        }
        "cluster" => {
            out.push_str("# Cluster\r\n");
            w(out, "cluster_enabled", &0);
        }
        "keyspace" => {
            out.push_str("# Keyspace\r\n");
            for (i, db) in ctx.exec.ks.dbs.iter().enumerate() {
                if db.keys.is_empty() {
                    continue;
                }
                let _ = write!(
                    out,
                    "db{i}:keys={},expires={},avg_ttl=0\r\n",
                    db.keys.len(),
                    db.expires.len()
                );
            }
        }
        "commandstats" => {
            out.push_str("# Commandstats\r\n");
            // This client's own commands of the current batch count too.
            ctx.client.tally.flush(&ctx.server.command_stats);
            for line in ctx.server.command_stats.lock().command_lines() {
                out.push_str(&line);
                out.push_str("\r\n");
            }
        }
        _ => {}
    }
}
