//! What the HTTP/JSON API answers ([`super::http`] does the HTTP). Everything is read from
//! this supervisor's applied copy of the committed state plus its own observations, as the
//! Sentinel port does; the manual failover goes through [`crate::manual`], the same path as
//! `SENTINEL FAILOVER`.
//!
//! - `GET /v1/masters`, `GET /v1/masters/{name}`: each master with its settings, flags, the
//!   replicas this supervisor knows and how they look, and the failover in flight (`null` if
//!   none).
//! - `POST /v1/masters/{name}/failover`: 200 with the committed epoch and candidate; 404 for an
//!   unknown master, 409 for `INPROG`/`NOGOODSLAVE`, 503 without a leader or without a commit
//!   in time. The body's `error` is the Sentinel error line.
//! - `POST /v1/masters/{name}/switchover` (optional JSON body `{"to": "ip:port",
//!   "timeout_ms": n}`): the zero-loss switchover of [`crate::switchover`]; 200 with the
//!   committed epoch and target, 400 for a bad body or a `to` that is not a connected replica,
//!   otherwise as the failover.
//! - `GET /v1/health`: 200 only on a supervisor that is part of a working majority (see
//!   [`crate::consensus::core::GroupStatus::working_majority`]), 503 otherwise; the body
//!   says why.
//! - `GET /metrics`: Prometheus text; Sentinel metrics under redis_exporter's names (so its
//!   dashboards work), the Raft group's under `warden_`.
//! - `GET /v1/history/{name}`: every committed failover of the master still in the history
//!   (the last [`crate::machine::MAX_HISTORY`]), oldest first: epoch, from → to, manual or
//!   not, outcome, wall-clock times and duration.
//! - `GET /v1/members`: the supervisor group (`SENTINEL MEMBERS`): id, raft and client
//!   addresses, voter or learner, leader flag, and on the leader each one's match index and
//!   lag; plus who answered and the leader it knows.

use std::collections::HashMap;
use std::fmt::Write;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::http::{Response, Route};
use super::info::master_status;
use super::Context;
use crate::health::is_sdown;
use crate::info::Role;
use crate::machine::{Addr, MasterState, Phase, ReplicaStep};
use crate::monitor::NodeView;
use crate::reconciler::known_replicas;

/// Answers one routed request (`body`: the request body, read for the switchover only).
pub async fn answer(ctx: &Context, route: Route, body: &[u8]) -> Response {
    match route {
        Route::Masters => {
            let state = ctx.state.borrow().clone();
            let views = ctx.views.lock().clone();
            let now = Instant::now();
            let list: Vec<Value> =
                state.masters.values().map(|m| master_json(ctx, m, &views, now)).collect();
            Response::json(200, &Value::Array(list))
        }
        Route::Master(name) => {
            let state = ctx.state.borrow().clone();
            let views = ctx.views.lock().clone();
            match state.masters.get(&name) {
                Some(m) => Response::json(200, &master_json(ctx, m, &views, Instant::now())),
                None => Response::error(404, "ERR No such master with that name"),
            }
        }
        Route::Failover(name) => match ctx.request_failover(&name).await {
            Ok(started) => Response::json(
                200,
                &json!({
                    "master": name,
                    "epoch": started.epoch,
                    "candidate": started.candidate.to_string(),
                    "old_master": started.old_master.to_string(),
                }),
            ),
            Err(e) => Response::error(e.http_status(), e.to_string()),
        },
        Route::Switchover(name) => {
            let req = match crate::switchover::SwitchoverRequest::from_json(&name, body) {
                Ok(req) => req,
                Err(e) => return Response::error(400, e),
            };
            match ctx.request_switchover(&req).await {
                Ok(started) => Response::json(
                    200,
                    &json!({
                        "master": name,
                        "epoch": started.epoch,
                        "target": started.candidate.to_string(),
                        "old_master": started.old_master.to_string(),
                    }),
                ),
                Err(e) => Response::error(e.http_status(), e.to_string()),
            }
        }
        Route::History(name) => {
            let state = ctx.state.borrow().clone();
            if !state.masters.contains_key(&name) {
                return Response::error(404, "ERR No such master with that name");
            }
            let records: Vec<Value> = state
                .history
                .get(&name)
                .into_iter()
                .flatten()
                .map(|r| {
                    let duration = (r.finished_ms > 0 && r.started_ms > 0)
                        .then(|| r.finished_ms.saturating_sub(r.started_ms));
                    json!({
                        "epoch": r.epoch,
                        "from": r.from.to_string(),
                        "to": r.to.to_string(),
                        "reason": r.reason(),
                        "outcome": r.outcome,
                        "note": r.note,
                        "started_ms": r.started_ms,
                        "promoted_ms": r.promoted_ms,
                        "finished_ms": r.finished_ms,
                        "duration_ms": duration,
                        "log_index": r.started_index,
                    })
                })
                .collect();
            Response::json(200, &Value::Array(records))
        }
        Route::Health => {
            let status = ctx.status.borrow().clone();
            let connected = ctx.connected_peers.lock().clone();
            let (healthy, why) = status.working_majority(&connected);
            let body = json!({
                "healthy": healthy,
                "reason": why,
                "raft_id": status.id,
                "term": status.term,
                "leader": status.leader,
                "is_leader": status.is_leader,
                "voters": status.voters,
                "applied_index": status.applied,
                "tilt": ctx.local.lock().tilt_since.is_some(),
            });
            Response::json(if healthy { 200 } else { 503 }, &body)
        }
        Route::Members => {
            let status = ctx.status.borrow().clone();
            let members = super::members::members(ctx);
            Response::json(
                200,
                &json!({
                    "raft_id": status.id,
                    "term": status.term,
                    "leader": status.leader,
                    "commit_index": status.commit,
                    "members": members,
                }),
            )
        }
        Route::Metrics => Response {
            status: 200,
            content_type: "text/plain; version=0.0.4; charset=utf-8",
            body: metrics(ctx),
            headers: Vec::new(),
        },
    }
}

fn step_word(s: ReplicaStep) -> &'static str {
    match s {
        ReplicaStep::Pending => "pending",
        ReplicaStep::Sent => "sent",
        ReplicaStep::Done => "done",
    }
}

fn master_json(
    ctx: &Context,
    m: &MasterState,
    views: &HashMap<Addr, NodeView>,
    now: Instant,
) -> Value {
    let down_after = Duration::from_millis(m.spec.down_after_ms);
    let replicas: Vec<Value> = known_replicas(m, views)
        .iter()
        .map(|r| {
            let view = views.get(r);
            let info = view.and_then(|v| v.info.as_ref());
            json!({
                "address": r.to_string(),
                "host": r.host,
                "port": r.port,
                "role": info.and_then(|i| i.role).map(|r| match r {
                    Role::Master => "master",
                    Role::Replica => "slave",
                }),
                "master": info.and_then(|i| i.master.as_ref()).map(|a| a.to_string()),
                "master_link_status": if info.is_some_and(|i| i.link_up) { "ok" } else { "err" },
                "offset": info.map_or(0, |i| i.offset()),
                "priority": info.map_or(100, |i| i.priority),
                "sdown": view.is_none_or(|v| is_sdown(v, now, down_after)),
                "connected": view.is_some_and(|v| v.connected),
            })
        })
        .collect();
    let failover = m.failover.as_ref().map(|f| {
        json!({
            "epoch": f.epoch,
            "forced": f.forced,
            "kind": if f.switchover.is_some() { "switchover" } else { "failover" },
            "phase": match f.phase {
                Phase::Selected => "selected",
                Phase::InSync => "in-sync",
                Phase::Promoted => "promoted",
            },
            "failover_state": super::sentinel::failover_state(f),
            "candidate": f.candidate.to_string(),
            "old_master": f.old_master.to_string(),
            "replicas": f.replicas.iter().map(|(a, s)| json!({
                "address": a.to_string(),
                "step": step_word(*s),
            })).collect::<Vec<_>>(),
        })
    });
    let view = views.get(&m.spec.addr);
    json!({
        "name": m.spec.name,
        "address": m.spec.addr.to_string(),
        "host": m.spec.addr.host,
        "port": m.spec.addr.port,
        "status": master_status(ctx, m),
        "odown": m.odown,
        "connected": view.is_some_and(|v| v.connected),
        "config_epoch": m.config_epoch,
        "quorum": m.spec.quorum,
        "down_after_milliseconds": m.spec.down_after_ms,
        "failover_timeout": m.spec.failover_timeout_ms,
        "parallel_syncs": m.spec.parallel_syncs,
        "failover_strategy": m.spec.strategy.word(),
        "spares": m.spec.spares.iter().map(|a| a.to_string()).collect::<Vec<_>>(),
        "replicas": replicas,
        "failover": failover,
    })
}

/// Escapes a Prometheus label value.
fn label(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

/// Writes one metric family: HELP, TYPE, then every sample.
fn family(out: &mut String, name: &str, kind: &str, help: &str, samples: &[(String, i64)]) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
    for (labels, value) in samples {
        if labels.is_empty() {
            let _ = writeln!(out, "{name} {value}");
        } else {
            let _ = writeln!(out, "{name}{{{labels}}} {value}");
        }
    }
}

fn metrics(ctx: &Context) -> String {
    let state = ctx.state.borrow().clone();
    let status = ctx.status.borrow().clone();
    let views = ctx.views.lock().clone();
    let connected = ctx.connected_peers.lock().clone();
    let tilt = ctx.local.lock().tilt_since.is_some();
    let now = Instant::now();
    let mut out = String::new();
    let one = |v: i64| vec![(String::new(), v)];
    family(
        &mut out,
        "redis_sentinel_masters",
        "gauge",
        "Masters monitored.",
        &one(state.masters.len() as i64),
    );
    family(
        &mut out,
        "redis_sentinel_tilt",
        "gauge",
        "1 while this supervisor is in TILT.",
        &one(tilt as i64),
    );
    family(
        &mut out,
        "redis_uptime_in_seconds",
        "gauge",
        "Seconds since this supervisor started.",
        &one(ctx.started.elapsed().as_secs() as i64),
    );
    // Per-master families, each with one sample per master, as redis_exporter labels them.
    let masters: Vec<(&MasterState, String)> = state
        .masters
        .values()
        .map(|m| {
            let base = format!(
                "master_name=\"{}\",master_address=\"{}\"",
                label(&m.spec.name),
                label(&m.spec.addr.to_string())
            );
            (m, base)
        })
        .collect();
    let per = |f: &dyn Fn(&MasterState) -> i64| -> Vec<(String, i64)> {
        masters.iter().map(|(m, base)| (base.clone(), f(m))).collect()
    };
    let status_samples: Vec<(String, i64)> = masters
        .iter()
        .map(|(m, base)| {
            let s = master_status(ctx, m);
            (format!("{base},master_status=\"{s}\""), (s == "ok") as i64)
        })
        .collect();
    family(
        &mut out,
        "redis_sentinel_master_status",
        "gauge",
        "1 if the master's status is ok.",
        &status_samples,
    );
    let replicas = |m: &MasterState| known_replicas(m, &views);
    family(
        &mut out,
        "redis_sentinel_master_slaves",
        "gauge",
        "Replicas known for the master.",
        &per(&|m| replicas(m).len() as i64),
    );
    family(
        &mut out,
        "redis_sentinel_master_ok_slaves",
        "gauge",
        "Replicas not subjectively down.",
        &per(&|m| {
            let down_after = Duration::from_millis(m.spec.down_after_ms);
            replicas(m)
                .iter()
                .filter(|r| views.get(r).is_some_and(|v| !is_sdown(v, now, down_after)))
                .count() as i64
        }),
    );
    let voters = status.voters.len() as i64;
    family(
        &mut out,
        "redis_sentinel_master_sentinels",
        "gauge",
        "Supervisors in the raft group.",
        &per(&|_| voters),
    );
    let ok_sentinels = 1 + connected.len() as i64;
    family(
        &mut out,
        "redis_sentinel_master_ok_sentinels",
        "gauge",
        "This supervisor plus the peers its raft links reach.",
        &per(&|_| ok_sentinels),
    );
    family(
        &mut out,
        "redis_sentinel_master_setting_ckquorum",
        "gauge",
        "The master's quorum.",
        &per(&|m| m.spec.quorum as i64),
    );
    family(
        &mut out,
        "redis_sentinel_master_setting_failover_timeout",
        "gauge",
        "failover-timeout in milliseconds.",
        &per(&|m| m.spec.failover_timeout_ms as i64),
    );
    family(
        &mut out,
        "redis_sentinel_master_setting_parallel_syncs",
        "gauge",
        "parallel-syncs.",
        &per(&|m| m.spec.parallel_syncs as i64),
    );
    family(
        &mut out,
        "redis_sentinel_master_setting_down_after_milliseconds",
        "gauge",
        "down-after-milliseconds.",
        &per(&|m| m.spec.down_after_ms as i64),
    );
    family(
        &mut out,
        "redis_sentinel_master_config_epoch",
        "gauge",
        "The master's config epoch.",
        &per(&|m| m.config_epoch as i64),
    );
    family(
        &mut out,
        "warden_sentinel_failover_in_progress",
        "gauge",
        "1 while a failover of the master is in flight.",
        &per(&|m| m.failover.is_some() as i64),
    );
    family(
        &mut out,
        "warden_sentinel_current_epoch",
        "gauge",
        "The highest failover epoch used.",
        &one(state.current_epoch as i64),
    );
    family(
        &mut out,
        "warden_raft_term",
        "gauge",
        "This supervisor's raft term.",
        &one(status.term as i64),
    );
    family(
        &mut out,
        "warden_raft_leader_id",
        "gauge",
        "The raft leader this supervisor knows (0: none).",
        &one(status.leader as i64),
    );
    family(
        &mut out,
        "warden_raft_is_leader",
        "gauge",
        "1 on the raft leader.",
        &one(status.is_leader as i64),
    );
    family(
        &mut out,
        "warden_raft_voters",
        "gauge",
        "Voters in the raft configuration.",
        &one(voters),
    );
    family(
        &mut out,
        "warden_raft_applied_index",
        "gauge",
        "Index of the last applied raft entry.",
        &one(status.applied as i64),
    );
    let (healthy, _) = status.working_majority(&connected);
    family(
        &mut out,
        "warden_raft_healthy",
        "gauge",
        "1 if this supervisor is part of a working majority (as GET /v1/health).",
        &one(healthy as i64),
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    use crate::consensus::core::GroupStatus;

    fn status(id: u64, leader: u64, active: Vec<u64>) -> GroupStatus {
        GroupStatus {
            id,
            term: 3,
            leader,
            is_leader: id == leader,
            voters: vec![1, 2, 3],
            active,
            applied: 10,
            ..Default::default()
        }
    }

    #[test]
    fn health_needs_a_majority_on_the_leader_and_a_live_leader_link_on_a_follower() {
        let none = HashSet::new();
        let two: HashSet<u64> = [2].into_iter().collect();
        assert!(status(1, 1, vec![1, 2]).working_majority(&none).0);
        assert!(!status(1, 1, vec![1]).working_majority(&none).0, "a leader alone is no majority");
        assert!(status(3, 2, vec![]).working_majority(&two).0);
        assert!(!status(3, 2, vec![]).working_majority(&none).0, "no link to the leader");
        assert!(!status(3, 0, vec![]).working_majority(&two).0, "no leader");
        assert!(!status(4, 2, vec![]).working_majority(&two).0, "not a voter");
    }

    #[test]
    fn families_are_contiguous_and_labels_escaped() {
        let mut out = String::new();
        family(
            &mut out,
            "x",
            "gauge",
            "h",
            &[(format!("a=\"{}\"", label("q\"\\\n")), 1), (String::new(), 2)],
        );
        assert_eq!(out, "# HELP x h\n# TYPE x gauge\nx{a=\"q\\\"\\\\\\n\"} 1\nx 2\n");
    }
}
