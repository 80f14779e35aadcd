//! What INFO replication and ROLE say, field for field as Redis 7.0 prints them (Sentinel and
//! client libraries parse both).

use std::fmt::Write;
use std::time::Instant;

use bytes::Bytes;
use common::resp::Frame;

use super::{LinkState, ReplicaState, Replication};
use crate::server::Shared;

fn secs_since(t: Instant) -> u64 {
    t.elapsed().as_secs()
}

/// The `# Replication` section.
pub fn info(shared: &Shared, out: &mut String) {
    let (priority, read_only, announced, min_write, min_lag) = {
        let c = shared.config.read();
        (
            c.get("replica-priority").unwrap_or("100").to_string(),
            c.settings.replica_read_only,
            c.get("replica-announced") == Some("yes"),
            c.settings.min_replicas_to_write,
            c.settings.min_replicas_max_lag,
        )
    };
    let r = shared.repl.lock();
    out.push_str("# Replication\r\n");
    let mut line = |k: &str, v: &dyn std::fmt::Display| {
        let _ = write!(out, "{k}:{v}\r\n");
    };
    match &r.master {
        None => line("role", &"master"),
        Some(link) => {
            line("role", &"slave");
            line("master_host", &link.host);
            line("master_port", &link.port);
            let up = link.state == LinkState::Connected;
            line("master_link_status", &if up { "up" } else { "down" });
            let last_io = match (up, link.last_io) {
                (true, Some(t)) => secs_since(t) as i64,
                _ => -1,
            };
            line("master_last_io_seconds_ago", &last_io);
            line("master_sync_in_progress", &u8::from(link.state == LinkState::Sync));
            let offset = if up { r.offset() } else { link.cached.as_ref().map_or(1, |c| c.offset) };
            line("slave_read_repl_offset", &offset);
            line("slave_repl_offset", &offset);
            if let (LinkState::Sync, Some((total, read))) = (link.state, link.transfer) {
                line("master_sync_total_bytes", &total);
                line("master_sync_read_bytes", &read);
                let left = if total < 0 { -1 } else { total - read as i64 };
                line("master_sync_left_bytes", &left);
                let perc = if total > 0 { read as f64 * 100.0 / total as f64 } else { 0.0 };
                line("master_sync_perc", &format!("{perc:.2}"));
                let io = link.last_io.map_or(-1, |t| secs_since(t) as i64);
                line("master_sync_last_io_seconds_ago", &io);
            }
            if !up {
                let down = if link.ever_up { secs_since(link.down_since) as i64 } else { -1 };
                line("master_link_down_since_seconds", &down);
            }
            line("slave_priority", &priority);
            line("slave_read_only", &u8::from(read_only));
            line("replica_announced", &u8::from(announced));
        }
    }
    line("connected_slaves", &r.replicas.len());
    if min_write > 0 && min_lag > 0 {
        line("min_slaves_good_slaves", &good_replicas(&r, min_lag));
    }
    for (i, e) in r.replicas.iter().enumerate() {
        let lag = if e.state == ReplicaState::Online { secs_since(e.ack_time) } else { 0 };
        line(
            &format!("slave{i}"),
            &format!(
                "ip={},port={},state={},offset={},lag={}",
                e.ip,
                e.port,
                e.state.name(),
                e.ack_off,
                lag
            ),
        );
    }
    line("master_failover_state", &r.failover.as_ref().map_or("no-failover", |f| f.name()));
    line("master_replid", &r.replid);
    line("master_replid2", &r.replid2);
    line("master_repl_offset", &r.offset());
    line("second_repl_offset", &r.second_offset);
    match &r.backlog {
        Some(b) => {
            line("repl_backlog_active", &1);
            line("repl_backlog_size", &b.size());
            line("repl_backlog_first_byte_offset", &b.first_byte());
            line("repl_backlog_histlen", &b.histlen());
        }
        None => {
            line("repl_backlog_active", &0);
            line("repl_backlog_size", &shared.config.read().settings.repl_backlog_size);
            line("repl_backlog_first_byte_offset", &0);
            line("repl_backlog_histlen", &0);
        }
    }
}

/// Online replicas that acknowledged within `max_lag` seconds (`min-replicas-max-lag`).
pub fn good_replicas(r: &Replication, max_lag: u64) -> usize {
    r.replicas
        .iter()
        .filter(|e| e.state == ReplicaState::Online && e.ack_time.elapsed().as_secs() <= max_lag)
        .count()
}

/// ROLE.
pub fn role(shared: &Shared) -> Frame {
    let r = shared.repl.lock();
    match &r.master {
        None => {
            let replicas = r
                .replicas
                .iter()
                .filter(|e| e.state == ReplicaState::Online)
                .map(|e| {
                    Frame::Array(vec![
                        Frame::Bulk(Bytes::from(e.ip.clone())),
                        Frame::Bulk(Bytes::from(e.port.to_string())),
                        Frame::Bulk(Bytes::from(e.ack_off.to_string())),
                    ])
                })
                .collect();
            Frame::Array(vec![
                Frame::bulk_static("master"),
                Frame::Integer(r.offset()),
                Frame::Array(replicas),
            ])
        }
        Some(link) => {
            let offset = if link.state == LinkState::Connected { r.offset() } else { -1 };
            Frame::Array(vec![
                Frame::bulk_static("slave"),
                Frame::Bulk(Bytes::from(link.host.clone())),
                Frame::Integer(link.port as i64),
                Frame::bulk_static(link.state.name()),
                Frame::Integer(offset),
            ])
        }
    }
}
