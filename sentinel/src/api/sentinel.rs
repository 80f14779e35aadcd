//! `SENTINEL <subcommand>`: the discovery surface clients depend on.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::resp::Frame;

use super::connection::Client;
use super::Context;
use crate::health::is_sdown;
use crate::info::Role;
use crate::machine::{Addr, MasterState, Phase};
use crate::monitor::NodeView;
use crate::reconciler::known_replicas;

fn no_such_master() -> Frame {
    Frame::error("ERR No such master with that name")
}

fn arity(sub: &str) -> Frame {
    Frame::error(format!("ERR wrong number of arguments for 'sentinel|{sub}' command"))
}

/// Dispatches one SENTINEL subcommand.
pub fn command(ctx: &Context, _client: &Client, args: &[Bytes]) -> Frame {
    let Some(sub) = args.get(1) else {
        return Frame::error("ERR wrong number of arguments for 'sentinel' command");
    };
    let sub = String::from_utf8_lossy(sub).to_ascii_lowercase();
    let name = args.get(2).map(|n| String::from_utf8_lossy(n).into_owned());
    let state = ctx.state.borrow().clone();
    let views = ctx.views.lock().clone();
    let now = Instant::now();
    let master = |n: &Option<String>| n.as_ref().and_then(|n| state.masters.get(n));
    match (sub.as_str(), args.len()) {
        ("get-master-addr-by-name", 3) => match master(&name) {
            Some(m) => Frame::Array(vec![Frame::bulk(m.spec.addr.host.as_bytes()), Frame::bulk_int(m.spec.addr.port as i64)]),
            None => Frame::NullArray,
        },
        ("masters", 2) => Frame::Array(state.masters.values().map(|m| master_map(ctx, m, &views, now)).collect()),
        ("master", 3) => master(&name).map_or_else(no_such_master, |m| master_map(ctx, m, &views, now)),
        ("replicas" | "slaves", 3) => match master(&name) {
            Some(m) => Frame::Array(
                known_replicas(m, &views).iter().map(|r| replica_map(m, r, views.get(r), now)).collect(),
            ),
            None => no_such_master(),
        },
        ("sentinels", 3) => match master(&name) {
            Some(m) => {
                let connected = ctx.connected_peers.lock().clone();
                let others = state
                    .supervisors
                    .iter()
                    .filter(|(id, _)| **id != ctx.me)
                    .map(|(id, (addr, run_id))| sentinel_map(m, addr, run_id, connected.contains(id)))
                    .collect();
                Frame::Array(others)
            }
            None => no_such_master(),
        },
        ("myid", 2) => Frame::bulk(ctx.run_id.as_bytes()),
        ("ckquorum", 3) => match master(&name) {
            Some(m) => ckquorum(ctx, m),
            None => no_such_master(),
        },
        ("history", 3) => match master(&name) {
            Some(_) => history(&state, name.as_deref().unwrap_or_default()),
            None => no_such_master(),
        },
        (
            "get-master-addr-by-name" | "masters" | "master" | "replicas" | "slaves" | "sentinels" | "myid"
            | "ckquorum" | "history",
            _,
        ) => arity(&sub),
        ("simulate-failure", n) if n >= 3 => simulate_failure(ctx, &args[2..]),
        ("help", _) => Frame::Array(
            [
                "SENTINEL <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
                "CKQUORUM <master-name>",
                "    Check if the current configuration can reach the quorum and authorize a failover.",
                "CONFIG SET <param> <value>",
                "    Set a global Sentinel configuration parameter (committed through the raft log).",
                "CONFIG GET <param>",
                "    Get global Sentinel configuration parameter.",
                "FAILOVER <master-name>",
                "    Manually failover a master node without asking for agreement from other supervisors (committed through the raft log).",
                "GET-MASTER-ADDR-BY-NAME <master-name>",
                "    Return the committed master's ip and port.",
                "HISTORY <master-name>",
                "    (Warden) Every committed failover of the master still kept, oldest first.",
                "MASTER <master-name>",
                "    Show the state and info of the given master.",
                "MASTERS",
                "    Show a list of monitored masters and their state.",
                "MEMBERS [ADD <id> <raft-ip:port> | REMOVE <id>]",
                "    (Warden) List the supervisors of the raft group, or add (as a learner, promoted once caught up) or remove one.",
                "MONITOR <name> <ip> <port> <quorum>",
                "    Start monitoring a new master with the specified name, ip, port and quorum.",
                "MYID",
                "    Return the ID of this supervisor.",
                "REMOVE <master-name>",
                "    Remove master from Sentinel's monitor list.",
                "REPLICAS <master-name>",
                "    Show a list of replicas for this master and their state.",
                "RESET <pattern>",
                "    Reset masters for specific master name matching this pattern.",
                "SENTINELS <master-name>",
                "    Show a list of the other supervisors for this master and their state.",
                "SET <master-name> <option> <value> [<option> <value> ...]",
                "    Set configuration parameters for certain masters (all at once, through the raft log).",
                "SWITCHOVER <master-name> [TO <ip> <port>] [TIMEOUT <ms>]",
                "    (Warden) Move the master to a replica without losing acknowledged writes: writes pause until it caught up.",
            ]
            .iter()
            .map(|l| Frame::Simple(Bytes::from_static(l.as_bytes())))
            .collect(),
        ),
        _ => Frame::error(format!(
            "ERR unknown subcommand '{}'. Try SENTINEL HELP.",
            String::from_utf8_lossy(&args[1])
        )),
    }
}

/// `SENTINEL HISTORY <name>` (a Warden extension): one map per committed failover, oldest
/// first, values as bulk strings like Sentinel's instance maps.
fn history(state: &crate::machine::Machine, name: &str) -> Frame {
    let records = state.history.get(name).map(Vec::as_slice).unwrap_or_default();
    Frame::Array(
        records
            .iter()
            .map(|r| {
                let duration = if r.started_ms > 0 && r.finished_ms > 0 {
                    r.finished_ms.saturating_sub(r.started_ms).to_string()
                } else {
                    String::new()
                };
                kv(vec![
                    ("epoch", r.epoch.to_string()),
                    ("from", r.from.to_string()),
                    ("to", r.to.to_string()),
                    ("reason", r.reason().into()),
                    ("outcome", r.outcome.clone()),
                    ("note", r.note.clone()),
                    ("started-ms", r.started_ms.to_string()),
                    ("promoted-ms", r.promoted_ms.to_string()),
                    ("finished-ms", r.finished_ms.to_string()),
                    ("duration-ms", duration),
                ])
            })
            .collect(),
    )
}

/// Sentinel's failure injection: the flags are reset, then set from the arguments; the
/// leader exits with status 99 right after committing the failover start or the promotion.
fn simulate_failure(ctx: &Context, args: &[Bytes]) -> Frame {
    use std::sync::atomic::Ordering;
    let mut flags = 0u8;
    for a in args {
        match a.to_ascii_lowercase().as_slice() {
            b"crash-after-election" => flags |= crate::executor::CRASH_AFTER_ELECTION,
            b"crash-after-promotion" => flags |= crate::executor::CRASH_AFTER_PROMOTION,
            b"help" => {
                return Frame::Array(vec![
                    Frame::bulk(b"crash-after-election"),
                    Frame::bulk(b"crash-after-promotion"),
                ])
            }
            _ => return Frame::error("ERR Unknown failure simulation specified"),
        }
    }
    ctx.simulate_failure.store(flags, Ordering::SeqCst);
    Frame::ok()
}

fn kv(pairs: Vec<(&'static str, String)>) -> Frame {
    Frame::Map(
        pairs
            .into_iter()
            .map(|(k, v)| (Frame::bulk_static(k), Frame::Bulk(Bytes::from(v))))
            .collect(),
    )
}

fn ms_since(at: Option<Instant>, now: Instant) -> String {
    at.map_or(0, |t| now.saturating_duration_since(t).as_millis()).to_string()
}

fn master_map(
    ctx: &Context,
    m: &MasterState,
    views: &HashMap<Addr, NodeView>,
    now: Instant,
) -> Frame {
    let view = views.get(&m.spec.addr);
    let sdown_since = ctx
        .local
        .lock()
        .sdown_since
        .get(&m.spec.name)
        .filter(|(a, _)| *a == m.spec.addr)
        .map(|(_, t)| *t);
    let mut flags = Vec::new();
    if sdown_since.is_some() {
        flags.push("s_down");
    }
    if m.odown {
        flags.push("o_down");
    }
    flags.push("master");
    if view.is_none_or(|v| !v.connected) {
        flags.push("disconnected");
    }
    if m.failover.is_some() {
        flags.push("failover_in_progress");
    }
    let info = view.and_then(|v| v.info.as_ref());
    let mut pairs = vec![
        ("name", m.spec.name.clone()),
        ("ip", m.spec.addr.host.clone()),
        ("port", m.spec.addr.port.to_string()),
        ("runid", info.and_then(|i| i.run_id.clone()).unwrap_or_default()),
        ("flags", flags.join(",")),
        ("link-pending-commands", "0".into()),
        ("link-refcount", "1".into()),
    ];
    if let Some(f) = &m.failover {
        pairs.push(("failover-state", failover_state(f).into()));
        pairs.push((
            "failover-kind",
            if f.switchover.is_some() { "switchover" } else { "failover" }.into(),
        ));
    }
    pairs.push(("last-ping-sent", "0".into()));
    pairs.push(("last-ok-ping-reply", ms_since(view.and_then(|v| v.last_ok), now)));
    pairs.push(("last-ping-reply", ms_since(view.and_then(|v| v.last_reply), now)));
    if let Some(since) = sdown_since {
        pairs.push(("s-down-time", ms_since(Some(since), now)));
    }
    if m.odown {
        pairs.push(("o-down-time", ms_since(sdown_since, now)));
    }
    let voters = ctx.status.borrow().voters.len();
    pairs.extend([
        ("down-after-milliseconds", m.spec.down_after_ms.to_string()),
        ("info-refresh", ms_since(view.and_then(|v| v.info_at), now)),
        ("role-reported", role_word(info.and_then(|i| i.role).unwrap_or(Role::Master)).into()),
        ("role-reported-time", ms_since(view.map(|v| v.since), now)),
        ("config-epoch", m.config_epoch.to_string()),
        ("num-slaves", known_replicas(m, views).len().to_string()),
        ("num-other-sentinels", voters.saturating_sub(1).to_string()),
        ("quorum", m.spec.quorum.to_string()),
        ("failover-timeout", m.spec.failover_timeout_ms.to_string()),
        ("parallel-syncs", m.spec.parallel_syncs.to_string()),
        ("failover-strategy", m.spec.strategy.word().into()),
        ("spares", m.spec.spares.iter().map(|a| a.to_string()).collect::<Vec<_>>().join(",")),
    ]);
    kv(pairs)
}

/// Sentinel's `failover-state` words, plus Warden's for the switchover and spare steps.
pub(crate) fn failover_state(f: &crate::machine::Failover) -> &'static str {
    use crate::machine::SpareStep;
    match (f.phase, &f.spare) {
        (Phase::Selected, _) if f.switchover.is_some() => "wait_catch_up",
        (Phase::Selected, Some(SpareStep::Choosing)) => "select_spare",
        (Phase::Selected, Some(SpareStep::Seeding(_))) => "seed_spare",
        (Phase::Selected | Phase::InSync, _) => "wait_promotion",
        (Phase::Promoted, _) => "reconf_slaves",
    }
}

fn role_word(r: Role) -> &'static str {
    match r {
        Role::Master => "master",
        Role::Replica => "slave",
    }
}

fn replica_map(m: &MasterState, r: &Addr, view: Option<&NodeView>, now: Instant) -> Frame {
    let down_after = Duration::from_millis(m.spec.down_after_ms);
    let mut flags = Vec::new();
    let sdown = view.is_none_or(|v| is_sdown(v, now, down_after));
    if sdown {
        flags.push("s_down");
    }
    flags.push("slave");
    if view.is_none_or(|v| !v.connected) {
        flags.push("disconnected");
    }
    let info = view.and_then(|v| v.info.as_ref());
    let mut pairs = vec![
        ("name", r.to_string()),
        ("ip", r.host.clone()),
        ("port", r.port.to_string()),
        ("runid", info.and_then(|i| i.run_id.clone()).unwrap_or_default()),
        ("flags", flags.join(",")),
        ("link-pending-commands", "0".into()),
        ("link-refcount", "1".into()),
        ("last-ping-sent", "0".into()),
        ("last-ok-ping-reply", ms_since(view.and_then(|v| v.last_ok), now)),
        ("last-ping-reply", ms_since(view.and_then(|v| v.last_reply), now)),
    ];
    if sdown {
        pairs.push(("s-down-time", ms_since(view.and_then(|v| v.last_ok.or(Some(v.since))), now)));
    }
    pairs.extend([
        ("down-after-milliseconds", m.spec.down_after_ms.to_string()),
        ("info-refresh", ms_since(view.and_then(|v| v.info_at), now)),
        ("role-reported", role_word(info.and_then(|i| i.role).unwrap_or(Role::Replica)).into()),
        ("role-reported-time", ms_since(view.map(|v| v.since), now)),
        ("master-link-down-time", "0".into()),
        ("master-link-status", if info.is_some_and(|i| i.link_up) { "ok" } else { "err" }.into()),
        (
            "master-host",
            info.and_then(|i| i.master.as_ref()).map_or("?".into(), |a| a.host.clone()),
        ),
        (
            "master-port",
            info.and_then(|i| i.master.as_ref()).map_or("0".into(), |a| a.port.to_string()),
        ),
        ("slave-priority", info.map_or(100, |i| i.priority).to_string()),
        ("slave-repl-offset", info.map_or(0, |i| i.offset()).to_string()),
        ("replica-announced", "1".into()),
    ]);
    kv(pairs)
}

fn sentinel_map(m: &MasterState, addr: &Addr, run_id: &str, connected: bool) -> Frame {
    let flags = if connected { "sentinel" } else { "sentinel,disconnected" };
    kv(vec![
        ("name", run_id.to_string()),
        ("ip", addr.host.clone()),
        ("port", addr.port.to_string()),
        ("runid", run_id.to_string()),
        ("flags", flags.into()),
        ("link-pending-commands", "0".into()),
        ("link-refcount", "1".into()),
        ("last-ping-sent", "0".into()),
        ("last-ok-ping-reply", "0".into()),
        ("last-ping-reply", "0".into()),
        ("down-after-milliseconds", m.spec.down_after_ms.to_string()),
        ("last-hello-message", "0".into()),
        ("voted-leader", "?".into()),
        ("voted-leader-epoch", "0".into()),
    ])
}

fn ckquorum(ctx: &Context, m: &MasterState) -> Frame {
    let voters = ctx.status.borrow().voters.len().max(1);
    let usable = 1 + ctx.connected_peers.lock().len();
    let majority = voters / 2 + 1;
    if usable >= m.spec.quorum as usize && usable >= majority {
        return Frame::Simple(Bytes::from(format!(
            "OK {usable} usable Sentinels. Quorum and failover authorization can be reached"
        )));
    }
    let mut text = format!("NOQUORUM {usable} usable Sentinels. ");
    if usable < m.spec.quorum as usize {
        text.push_str(
            "Not enough available Sentinels to reach the specified quorum for this master",
        );
        if usable < majority {
            text.push_str(". ");
        }
    }
    if usable < majority {
        text.push_str(
            "Not enough available Sentinels to reach the majority and authorize a failover",
        );
    }
    Frame::error(text)
}
