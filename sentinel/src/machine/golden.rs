//! Golden-script tests for the replicated state machine.
//!
//! Each file in `testdata/` is a trace: lines starting with `>` are commands applied in order;
//! the lines after each one are what it produced (its events, `rejected` if it did not fit, or
//! a state summary for `> state <name>`). The runner rebuilds the whole text and compares it
//! with the file; `UPDATE_GOLDEN=1 cargo test` rewrites the files for review.

use std::collections::HashMap;

use super::{Addr, Command, Machine, MasterSpec, ReplicaStep, SpareStep, Strategy};
use crate::consensus::core::StateMachine;

fn addr(s: &str) -> Addr {
    Addr::parse(s).unwrap_or_else(|| panic!("bad address {s}"))
}

fn parse(line: &str) -> (String, Vec<String>, HashMap<String, String>) {
    let mut words = line.split_whitespace();
    let op = words.next().expect("a command").to_string();
    let (mut pos, mut kv) = (Vec::new(), HashMap::new());
    for w in words {
        match w.split_once('=') {
            Some((k, v)) => {
                kv.insert(k.to_string(), v.to_string());
            }
            None => pos.push(w.to_string()),
        }
    }
    (op, pos, kv)
}

fn command(op: &str, pos: &[String], kv: &HashMap<String, String>) -> Command {
    let get = |k: &str| kv.get(k).unwrap_or_else(|| panic!("{op} needs {k}=")).clone();
    let epoch = || get("epoch").parse::<u64>().unwrap();
    let master = || pos[0].clone();
    let at = || kv.get("at").map_or(0, |v| v.parse::<u64>().unwrap());
    match op {
        "bootstrap" => Command::Bootstrap {
            masters: vec![MasterSpec {
                name: pos[0].clone(),
                addr: addr(&pos[1]),
                quorum: get("quorum").parse().unwrap(),
                down_after_ms: 1000,
                failover_timeout_ms: 10000,
                parallel_syncs: kv.get("parallel-syncs").map_or(1, |v| v.parse().unwrap()),
                strategy: kv
                    .get("strategy")
                    .map_or(Strategy::Promote, |v| Strategy::parse(v).unwrap()),
                spares: kv.get("spares").map_or(Vec::new(), |v| v.split(",").map(addr).collect()),
                ..Default::default()
            }],
        },
        "opinion" => Command::Opinion {
            supervisor: pos[0].parse().unwrap(),
            master: pos[1].clone(),
            epoch: epoch(),
            down: pos[2] == "down",
        },
        "forget" => Command::ForgetOpinions { supervisor: pos[0].parse().unwrap() },
        "discovered" => Command::ReplicasDiscovered {
            master: master(),
            epoch: epoch(),
            replicas: get("replicas").split(',').map(addr).collect(),
        },
        "replids" => Command::MasterReplids {
            master: master(),
            epoch: epoch(),
            replids: get("ids").split(',').map(String::from).collect(),
        },
        "failover-started" => Command::FailoverStarted {
            master: master(),
            epoch: epoch(),
            candidate: addr(&get("candidate")),
            old_master: addr(&get("old")),
            replicas: kv.get("replicas").map_or(Vec::new(), |r| r.split(',').map(addr).collect()),
            forced: kv.get("forced").is_some_and(|v| v == "yes"),
            request: kv.get("request").map_or(0, |v| v.parse().unwrap()),
            at_ms: at(),
        },
        "promoted" => Command::Promoted { master: master(), epoch: epoch(), at_ms: at() },
        "reconf-sent" => {
            Command::ReplicaReconfSent { master: master(), epoch: epoch(), replica: addr(&pos[1]) }
        }
        "reconf-done" => {
            Command::ReplicaReconfDone { master: master(), epoch: epoch(), replica: addr(&pos[1]) }
        }
        "ended" => Command::FailoverEnded { master: master(), epoch: epoch(), at_ms: at() },
        "aborted" => Command::FailoverAborted {
            master: master(),
            epoch: epoch(),
            reason: get("reason"),
            at_ms: at(),
        },
        "switchover-started" => Command::SwitchoverStarted {
            master: master(),
            epoch: epoch(),
            target: addr(&get("target")),
            old_master: addr(&get("old")),
            replicas: kv.get("replicas").map_or(Vec::new(), |r| r.split(',').map(addr).collect()),
            timeout_ms: kv.get("timeout").map_or(10_000, |v| v.parse().unwrap()),
            request: kv.get("request").map_or(0, |v| v.parse().unwrap()),
            at_ms: at(),
        },
        "in-sync" => Command::SwitchoverInSync {
            master: master(),
            epoch: epoch(),
            offset: get("offset").parse().unwrap(),
        },
        "spare-assigned" => {
            Command::SpareAssigned { master: master(), epoch: epoch(), spare: addr(&pos[1]) }
        }
        "spare-seeded" => Command::SpareSeeded { master: master(), epoch: epoch() },
        "spare-skipped" => Command::SpareSkipped {
            master: master(),
            epoch: epoch(),
            reason: get("reason").replace('_', " "),
        },
        "convert" => {
            Command::ConvertToReplica { master: master(), epoch: epoch(), node: addr(&pos[1]) }
        }
        // Runtime configuration, parsed by the Sentinel-port parsers themselves.
        "monitor" | "set" | "reset" | "remove" | "config-set" => {
            let change = match op {
                "monitor" => {
                    let a = addr(&pos[1]);
                    let words = [pos[0].clone(), a.host, a.port.to_string(), get("quorum")];
                    let args: Vec<bytes::Bytes> = words.into_iter().map(Into::into).collect();
                    let spec =
                        crate::api::runtime_config::parse_monitor(&args, &Default::default())
                            .expect("a valid monitor line");
                    super::ConfigChange::Monitor { spec }
                }
                "set" => {
                    // `''` stands for an empty value (which clears auth-pass and auth-user).
                    let args: Vec<bytes::Bytes> = pos[1..]
                        .iter()
                        .map(|w| if w == "''" { String::new() } else { w.clone() }.into())
                        .collect();
                    let options =
                        crate::api::runtime_config::parse_set(&args).expect("valid options");
                    super::ConfigChange::Set { name: master(), options }
                }
                "reset" => super::ConfigChange::Reset { pattern: pos[0].clone() },
                "remove" => super::ConfigChange::Remove { name: master() },
                _ => super::ConfigChange::Global {
                    supervisor: kv.get("supervisor").map_or(1, |v| v.parse().unwrap()),
                    setting: crate::api::runtime_config::parse_config_set(
                        &pos[0].clone().into(),
                        &pos[1].clone().into(),
                    )
                    .expect("a valid setting"),
                },
            };
            Command::Configure { request: get("request").parse().unwrap(), change }
        }
        other => panic!("unknown golden command {other}"),
    }
}

fn summary(m: &Machine, name: &str) -> String {
    let Some(s) = m.masters.get(name) else { return "state: no such master".into() };
    let failover = match &s.failover {
        None => "none".to_string(),
        Some(f) => {
            let reps: Vec<String> = f
                .replicas
                .iter()
                .map(|(a, st)| {
                    let st = match st {
                        ReplicaStep::Pending => "pending",
                        ReplicaStep::Sent => "sent",
                        ReplicaStep::Done => "done",
                    };
                    format!("{a}:{st}")
                })
                .collect();
            let mut extra = String::new();
            if let Some(plan) = &f.switchover {
                extra.push_str(&format!(" switchover(timeout={})", plan.timeout_ms));
            }
            match &f.spare {
                None => {}
                Some(SpareStep::Choosing) => extra.push_str(" spare=choosing"),
                Some(SpareStep::Seeding(a)) => extra.push_str(&format!(" spare=seeding:{a}")),
                Some(SpareStep::Seeded(a)) => extra.push_str(&format!(" spare=seeded-from:{a}")),
                Some(SpareStep::Skipped) => extra.push_str(" spare=skipped"),
            }
            format!(
                "epoch={} candidate={} phase={:?} [{}]{extra}",
                f.epoch,
                f.candidate,
                f.phase,
                reps.join(" ")
            )
        }
    };
    let replicas: Vec<String> = s.replicas.iter().map(|a| a.to_string()).collect();
    let spares = if s.spec.spares.is_empty() {
        String::new()
    } else {
        let list: Vec<String> = s.spec.spares.iter().map(|a| a.to_string()).collect();
        format!(" spares=[{}]", list.join(" "))
    };
    format!(
        "state: addr={} config-epoch={} current-epoch={} down-votes={} odown={} failover={} replicas=[{}] replids=[{}]{spares}",
        s.spec.addr,
        s.config_epoch,
        m.current_epoch,
        s.down_votes(),
        s.odown,
        failover,
        replicas.join(" "),
        s.replids.join(" ")
    )
}

/// Applies a script, but marks rejected commands so the trace shows them.
fn run_marked(script: &str) -> String {
    let mut m = Machine::default();
    let mut out = String::new();
    let mut index = 0;
    for line in script.lines() {
        let Some(cmd) = line.strip_prefix("> ") else {
            if line.starts_with('#') || line.is_empty() {
                out.push_str(line);
                out.push('\n');
            }
            continue;
        };
        out.push_str(line);
        out.push('\n');
        let (op, pos, kv) = parse(cmd);
        match op.as_str() {
            "state" => {
                out.push_str(&summary(&m, &pos[0]));
                out.push('\n');
            }
            "history" => {
                for r in m.history.get(&pos[0]).into_iter().flatten() {
                    let mut extra = String::new();
                    if r.switchover {
                        extra.push_str(" switchover");
                    }
                    if !r.note.is_empty() {
                        extra.push_str(&format!(" note=\"{}\"", r.note));
                    }
                    out.push_str(&format!(
                        "history: epoch={} {} -> {} forced={} request={} outcome={} started={} promoted={} finished={} index={}{extra}\n",
                        r.epoch,
                        r.from,
                        r.to,
                        r.forced,
                        r.request,
                        r.outcome,
                        r.started_ms,
                        r.promoted_ms,
                        r.finished_ms,
                        r.started_index
                    ));
                }
            }
            "spec" => {
                let line = match m.masters.get(&pos[0]) {
                    None => "spec: no such master".to_string(),
                    Some(x) => {
                        let s = &x.spec;
                        format!(
                            "spec: quorum={} down-after={} failover-timeout={} parallel-syncs={} auth-user={:?} auth-pass={:?} strategy={}",
                            s.quorum,
                            s.down_after_ms,
                            s.failover_timeout_ms,
                            s.parallel_syncs,
                            s.auth_user,
                            s.auth_pass,
                            s.strategy.word()
                        )
                    }
                };
                out.push_str(&line);
                out.push('\n');
            }
            "settings" => {
                out.push_str(&format!("settings: {:?}\n", m.settings));
            }
            "member-add" | "member-promote" | "member-remove" => {
                use crate::consensus::membership::MemberChange;
                index += 1;
                let id = pos[0].parse().unwrap();
                let change = match op.as_str() {
                    "member-add" => MemberChange::AddLearner { id, raft_addr: pos[1].clone() },
                    "member-promote" => MemberChange::Promote { id },
                    _ => MemberChange::Remove { id },
                };
                if !m.record_member_change(index, &change) {
                    out.push_str("rejected\n");
                }
                for (_, e) in m.take_events() {
                    out.push_str(&format!("{e}\n"));
                }
            }
            "restart" => {
                let mut fresh = Machine::default();
                fresh.restore(&StateMachine::snapshot(&m)).unwrap();
                assert_eq!(fresh, Machine { events: Vec::new(), ..m.clone() });
                m = fresh;
            }
            _ => {
                index += 1;
                let c = command(&op, &pos, &kv);
                let decoded = Command::decode(&c.encode()).unwrap();
                assert_eq!(decoded, c, "the wire form round-trips");
                let request = match &decoded {
                    Command::Configure { request, .. } => Some(*request),
                    _ => None,
                };
                if !m.apply_command(index, decoded) {
                    out.push_str("rejected\n");
                }
                for (_, e) in m.take_events() {
                    out.push_str(&format!("{e}\n"));
                }
                if let Some(outcome) = request.and_then(|r| m.request_outcome(r)) {
                    out.push_str(&format!("outcome: {outcome:?}\n"));
                }
            }
        }
    }
    out
}

#[test]
fn golden_scripts() {
    crate::testkit::check_golden_dir("src/machine/testdata", run_marked);
}
