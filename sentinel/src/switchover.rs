//! Zero-loss switchover (issue 6): `SENTINEL SWITCHOVER <name> [TO <ip> <port>] [TIMEOUT <ms>]`
//! (a Warden extension; Redis Sentinel has no such command), `POST
//! /v1/masters/{name}/switchover` and `wardenctl switchover`.
//!
//! A switchover moves a healthy master to one of its replicas without losing an acknowledged
//! write: the master's writes are paused, the target catches up to the master's exact
//! offset, is promoted, and the old master is demoted while still paused (the leader's half is
//! [`crate::reconciler::switchover`]). It is requested like a manual failover
//! ([`crate::manual`]): planned on the supervisor that receives it, committed through Raft as
//! `SwitchoverStarted`, answered `+OK` once applied here; `-INPROG` while a failover or
//! switchover of the master is in flight, `-NOGOODSLAVE` when no replica qualifies,
//! `-NOLEADER` off a working majority. `TO` must name a replica that qualifies under the
//! failover's candidate rules (reachable, following the master with its link up, descending
//! from its history, `replica-priority` not 0); anything else is an `-ERR` that says why.
//!
//! The default timeout is the master's `failover-timeout`, capped at 10 s: writes are blocked
//! while the target catches up, so the bound is deliberately short.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::consensus::task::Consensus;
use crate::machine::{Addr, Command, Machine};
use crate::manual::{commit, ManualError, Started};
use crate::monitor::NodeView;
use crate::reconciler::{known_replicas, rank_candidates, select_candidate};

/// The default catch-up timeout's cap.
pub const DEFAULT_TIMEOUT_CAP_MS: u64 = 10_000;
/// The longest catch-up timeout accepted (writes are paused meanwhile).
pub const MAX_TIMEOUT_MS: u64 = 600_000;

/// A parsed switchover request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SwitchoverRequest {
    /// The master's name.
    pub master: String,
    /// The replica to promote; the best one if absent.
    pub to: Option<Addr>,
    /// The catch-up timeout; the default if absent.
    pub timeout_ms: Option<u64>,
}

impl SwitchoverRequest {
    /// Parses `SENTINEL SWITCHOVER <name> [TO <ip> <port>] [TIMEOUT <ms>]` (the whole argv).
    /// The error is the reply line.
    pub fn parse(args: &[Bytes]) -> Result<SwitchoverRequest, String> {
        let text = |b: &Bytes| String::from_utf8_lossy(b).into_owned();
        let Some(name) = args.get(2) else {
            return Err("ERR wrong number of arguments for 'sentinel|switchover' command".into());
        };
        let mut req = SwitchoverRequest { master: text(name), to: None, timeout_ms: None };
        let mut i = 3;
        while i < args.len() {
            let option = text(&args[i]).to_ascii_uppercase();
            match option.as_str() {
                "TO" if req.to.is_none() && i + 2 < args.len() => {
                    req.to = Some(parse_addr(&text(&args[i + 1]), &text(&args[i + 2]))?);
                    i += 3;
                }
                "TIMEOUT" if req.timeout_ms.is_none() && i + 1 < args.len() => {
                    req.timeout_ms = Some(parse_timeout(&text(&args[i + 1]))?);
                    i += 2;
                }
                _ => {
                    return Err(format!(
                        "ERR syntax error at '{}': expected SENTINEL SWITCHOVER <name> [TO <ip> <port>] [TIMEOUT <ms>]",
                        text(&args[i]).chars().take(64).collect::<String>()
                    ))
                }
            }
        }
        Ok(req)
    }

    /// Reads the optional JSON body of `POST /v1/masters/{name}/switchover`:
    /// `{"to": "ip:port", "timeout_ms": n}`, both optional; an empty body is `{}`.
    pub fn from_json(master: &str, body: &[u8]) -> Result<SwitchoverRequest, String> {
        let mut req = SwitchoverRequest { master: master.to_string(), to: None, timeout_ms: None };
        if body.iter().all(u8::is_ascii_whitespace) {
            return Ok(req);
        }
        let value: serde_json::Value =
            serde_json::from_slice(body).map_err(|e| format!("ERR the body is not JSON: {e}"))?;
        let Some(obj) = value.as_object() else {
            return Err("ERR the body must be a JSON object".into());
        };
        for (key, v) in obj {
            match (key.as_str(), v) {
                ("to", serde_json::Value::String(s)) => {
                    let (host, port) = s
                        .rsplit_once(':')
                        .ok_or_else(|| format!("ERR 'to' must be \"ip:port\", got '{s}'"))?;
                    req.to = Some(parse_addr(host, port)?);
                }
                ("timeout_ms", serde_json::Value::Number(n)) => {
                    req.timeout_ms = Some(parse_timeout(&n.to_string())?);
                }
                ("to" | "timeout_ms", _) => {
                    return Err(format!("ERR '{key}' has the wrong type"));
                }
                _ => return Err(format!("ERR unknown field '{key}' (expected to, timeout_ms)")),
            }
        }
        Ok(req)
    }
}

fn parse_addr(host: &str, port: &str) -> Result<Addr, String> {
    let _: IpAddr = host
        .parse()
        .map_err(|_| format!("ERR invalid IP address '{host}' (hostnames are not resolved)"))?;
    let port = port
        .parse::<u16>()
        .ok()
        .filter(|p| *p > 0)
        .ok_or_else(|| format!("ERR invalid port '{port}'"))?;
    Ok(Addr::new(host.to_string(), port))
}

fn parse_timeout(text: &str) -> Result<u64, String> {
    text.parse::<u64>().ok().filter(|ms| (1..=MAX_TIMEOUT_MS).contains(ms)).ok_or_else(|| {
        format!("ERR TIMEOUT must be milliseconds from 1 to {MAX_TIMEOUT_MS}, got '{text}'")
    })
}

/// Plans a switchover against the committed `state` and this supervisor's observations. Pure:
/// the returned command is what to propose.
pub fn plan(
    state: &Machine,
    req: &SwitchoverRequest,
    views: &HashMap<Addr, NodeView>,
    now: Instant,
) -> Result<Command, ManualError> {
    let name = &req.master;
    let m = state.masters.get(name).ok_or(ManualError::NoSuchMaster)?;
    if m.failover.is_some() {
        return Err(ManualError::InProgress);
    }
    let known = known_replicas(m, views);
    let target = match &req.to {
        Some(to) => {
            if !known.contains(to) {
                return Err(ManualError::BadTarget(format!("{to} is not a replica of {name}")));
            }
            let mut history: Vec<String> =
                views.get(&m.spec.addr).map_or_else(Vec::new, |v| v.master_replids.clone());
            history.extend(m.replids.iter().cloned());
            let down_after = Duration::from_millis(m.spec.down_after_ms);
            let (ok, excluded) = rank_candidates(
                &m.spec.addr,
                &history,
                std::slice::from_ref(to),
                views,
                now,
                down_after,
            );
            let linked = views.get(to).and_then(|v| v.info.as_ref()).is_some_and(|i| i.link_up);
            match (ok, excluded.first()) {
                (Some(t), _) if linked => t,
                (Some(_), _) => {
                    return Err(ManualError::BadTarget(format!(
                        "{to} is not a connected replica of {name}: its link to the master is down"
                    )))
                }
                (None, Some((_, why))) => {
                    return Err(ManualError::BadTarget(format!(
                        "{to} is not a connected replica of {name}: {why}"
                    )))
                }
                (None, None) => {
                    return Err(ManualError::BadTarget(format!("{to} cannot be promoted")))
                }
            }
        }
        None => {
            let (candidate, _, excluded) = select_candidate(m, views, now);
            candidate.ok_or_else(|| {
                let why: Vec<String> = excluded.iter().map(|(a, r)| format!("{a}: {r}")).collect();
                tracing::warn!(master = %name, excluded = %why.join("; "), "switchover refused: no replica qualifies");
                ManualError::NoGoodReplica
            })?
        }
    };
    let timeout_ms =
        req.timeout_ms.unwrap_or(m.spec.failover_timeout_ms.min(DEFAULT_TIMEOUT_CAP_MS));
    Ok(Command::SwitchoverStarted {
        master: name.clone(),
        epoch: state.current_epoch + 1,
        replicas: known.into_iter().filter(|r| *r != target).collect(),
        target,
        old_master: m.spec.addr.clone(),
        timeout_ms,
        request: 0,
        at_ms: 0,
    })
}

/// Plans, proposes through Raft and waits until this supervisor has applied the decision.
pub async fn request(
    consensus: &Consensus<Machine>,
    views: &crate::monitor::Views,
    connected: &HashSet<u64>,
    req: &SwitchoverRequest,
    timeout: Duration,
) -> Result<Started, ManualError> {
    let state = consensus.state.borrow().clone();
    let snapshot = views.lock().clone();
    let cmd = match plan(&state, req, &snapshot, Instant::now()) {
        Err(ManualError::BadTarget(why)) => {
            // A named target is judged on INFO up to a poll period old: look at it and at the
            // master again, once, before refusing the operator.
            let (Some(to), Some(m)) = (&req.to, state.masters.get(&req.master)) else {
                return Err(ManualError::BadTarget(why));
            };
            let creds = crate::node_link::Credentials::of(&m.spec);
            let wait = Duration::from_millis(m.spec.down_after_ms).clamp(REFRESH_MIN, REFRESH_MAX);
            let (target, master) = tokio::join!(
                crate::monitor::refresh(views, to, &creds, REFRESH_CLIENT, wait),
                crate::monitor::refresh(views, &m.spec.addr, &creds, REFRESH_CLIENT, wait),
            );
            if let Err(e) = target.and(master) {
                tracing::debug!(error = %e, "could not refresh the switchover's nodes");
            }
            let snapshot = views.lock().clone();
            plan(&state, req, &snapshot, Instant::now())?
        }
        other => other?,
    };
    commit(consensus, connected, cmd, timeout).await
}

/// The client name of the one-off connection that refreshes a switchover's nodes.
const REFRESH_CLIENT: &str = "warden-sentinel-refresh";
/// Bounds on how long that refresh may take.
const REFRESH_MIN: Duration = Duration::from_millis(100);
const REFRESH_MAX: Duration = Duration::from_secs(1);

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(line: &str) -> Vec<Bytes> {
        line.split_whitespace().map(|w| Bytes::from(w.to_string())).collect()
    }

    fn addr(text: &str) -> Addr {
        Addr::parse(text).expect("an address")
    }

    #[test]
    fn the_command_line_parses_options_in_any_order_and_refuses_the_rest() {
        let req = SwitchoverRequest::parse(&argv("SENTINEL SWITCHOVER m")).unwrap();
        assert_eq!(req, SwitchoverRequest { master: "m".into(), to: None, timeout_ms: None });
        let req =
            SwitchoverRequest::parse(&argv("sentinel switchover m timeout 2500 to 10.0.0.2 7001"))
                .unwrap();
        assert_eq!((req.to, req.timeout_ms), (Some(addr("10.0.0.2:7001")), Some(2500)));
        for (line, why) in [
            ("SENTINEL SWITCHOVER", "wrong number of arguments"),
            ("SENTINEL SWITCHOVER m TO 10.0.0.2", "syntax error at 'TO'"),
            ("SENTINEL SWITCHOVER m TO host 7001", "invalid IP address 'host'"),
            ("SENTINEL SWITCHOVER m TO 10.0.0.2 70000", "invalid port '70000'"),
            ("SENTINEL SWITCHOVER m TO 10.0.0.2 0", "invalid port '0'"),
            ("SENTINEL SWITCHOVER m TIMEOUT 0", "TIMEOUT must be milliseconds"),
            ("SENTINEL SWITCHOVER m TIMEOUT soon", "TIMEOUT must be milliseconds"),
            ("SENTINEL SWITCHOVER m TIMEOUT 5 TIMEOUT 6", "syntax error at 'TIMEOUT'"),
            ("SENTINEL SWITCHOVER m FORCE", "syntax error at 'FORCE'"),
        ] {
            let e = SwitchoverRequest::parse(&argv(line)).unwrap_err();
            assert!(e.starts_with("ERR ") && e.contains(why), "{line}: {e}");
        }
    }

    #[test]
    fn the_http_body_is_optional_and_checked() {
        let req = SwitchoverRequest::from_json("m", b"").unwrap();
        assert_eq!((req.to, req.timeout_ms), (None, None));
        let req = SwitchoverRequest::from_json("m", br#"{"to":"10.0.0.2:7001","timeout_ms":900}"#)
            .unwrap();
        assert_eq!((req.to, req.timeout_ms), (Some(addr("10.0.0.2:7001")), Some(900)));
        for (body, why) in [
            ("[1]", "must be a JSON object"),
            ("{", "not JSON"),
            (r#"{"to":"10.0.0.2"}"#, "'to' must be \"ip:port\""),
            (r#"{"to":7001}"#, "'to' has the wrong type"),
            (r#"{"timeout_ms":-1}"#, "TIMEOUT must be milliseconds"),
            (r#"{"timeout_ms":1.5}"#, "TIMEOUT must be milliseconds"),
            (r#"{"target":"10.0.0.2:1"}"#, "unknown field 'target'"),
        ] {
            let e = SwitchoverRequest::from_json("m", body.as_bytes()).unwrap_err();
            assert!(e.starts_with("ERR ") && e.contains(why), "{body}: {e}");
        }
    }
}
