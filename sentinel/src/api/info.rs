//! `INFO` on a supervisor: the sections a Sentinel has (server, clients, cpu, stats,
//! sentinel), as a plain bulk string even under RESP3.

use bytes::Bytes;

use super::connection::Client;
use super::Context;

const SECTIONS: [&str; 5] = ["server", "clients", "cpu", "stats", "sentinel"];

/// Renders the requested sections (all of them for none, `all`, `default`, `everything`).
pub fn render(ctx: &Context, _client: &Client, args: &[Bytes]) -> String {
    let wanted: Vec<String> =
        args.iter().map(|a| String::from_utf8_lossy(a).to_ascii_lowercase()).collect();
    let all = wanted.is_empty()
        || wanted.iter().any(|w| matches!(w.as_str(), "all" | "default" | "everything"));
    let mut out = String::new();
    for section in SECTIONS {
        if !all && !wanted.iter().any(|w| w == section) {
            continue;
        }
        if !out.is_empty() {
            out.push_str("\r\n");
        }
        match section {
            "server" => {
                out.push_str("# Server\r\n");
                out.push_str("redis_version:7.0.15\r\n");
                out.push_str(&format!("warden_version:{}\r\n", env!("CARGO_PKG_VERSION")));
                out.push_str("redis_mode:sentinel\r\n");
                out.push_str(&format!("process_id:{}\r\n", std::process::id()));
                out.push_str(&format!("run_id:{}\r\n", ctx.run_id));
                out.push_str(&format!("tcp_port:{}\r\n", ctx.port));
                out.push_str(&format!("uptime_in_seconds:{}\r\n", ctx.started.elapsed().as_secs()));
                let status = ctx.status.borrow().clone();
                out.push_str(&format!(
                    "raft_id:{}\r\nraft_term:{}\r\nraft_leader:{}\r\n",
                    status.id, status.term, status.leader
                ));
                // Where this supervisor stands in the group (membership changes at run time).
                let role = if status.removed {
                    "removed"
                } else if status.voters.contains(&status.id) {
                    "voter"
                } else if status.learners.contains(&status.id) {
                    "learner"
                } else {
                    "joining"
                };
                let ids = |v: &[u64]| v.iter().map(u64::to_string).collect::<Vec<_>>().join(",");
                out.push_str(&format!(
                    "raft_role:{role}\r\nraft_voters:{}\r\nraft_learners:{}\r\n",
                    ids(&status.voters),
                    ids(&status.learners)
                ));
            }
            "clients" => {
                out.push_str("# Clients\r\n");
            }
            "cpu" => out.push_str("# CPU\r\n"),
            "stats" => out.push_str("# Stats\r\n"),
            _ => {
                let state = ctx.state.borrow().clone();
                let voters = ctx.status.borrow().voters.len().max(1);
                out.push_str("# Sentinel\r\n");
                out.push_str(&format!("sentinel_masters:{}\r\n", state.masters.len()));
                match ctx.local.lock().tilt_since {
                    Some(since) => out.push_str(&format!(
                        "sentinel_tilt:1\r\nsentinel_tilt_since_seconds:{}\r\n",
                        since.elapsed().as_secs()
                    )),
                    None => out.push_str("sentinel_tilt:0\r\nsentinel_tilt_since_seconds:-1\r\n"),
                }
                out.push_str("sentinel_running_scripts:0\r\nsentinel_scripts_queue_length:0\r\n");
                out.push_str("sentinel_simulate_failure_flags:0\r\n");
                let views = ctx.views.lock().clone();
                for (i, m) in state.masters.values().enumerate() {
                    let status = master_status(ctx, m);
                    let slaves = crate::reconciler::known_replicas(m, &views).len();
                    out.push_str(&format!(
                        "master{i}:name={},status={status},address={}:{},slaves={slaves},sentinels={voters}\r\n",
                        m.spec.name, m.spec.addr.host, m.spec.addr.port
                    ));
                }
                // Ours, after Sentinel's lines: the committed lineage evidence per master.
                for (i, m) in state.masters.values().enumerate() {
                    out.push_str(&format!("warden_master{i}_replids:{}\r\n", m.replids.join(",")));
                }
            }
        }
    }
    out
}

/// Sentinel's one-word master status in `INFO sentinel`: `odown`, `sdown` (this supervisor's
/// own view) or `ok`.
pub(super) fn master_status(ctx: &Context, m: &crate::machine::MasterState) -> &'static str {
    if m.odown {
        "odown"
    } else if ctx.local.lock().sdown_since.get(&m.spec.name).is_some_and(|(a, _)| *a == m.spec.addr)
    {
        "sdown"
    } else {
        "ok"
    }
}
