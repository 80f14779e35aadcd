//! Golden-script tests for the failover procedure: the leader's reconciler against scripted
//! node observations, with its proposals applied to the replicated state as the log would.
//!
//! Each file in `reconciler_testdata/` is a trace. Lines starting with `>` are inputs; the
//! lines after `> plan` are the actions planned (proposals marked `(rejected)` if the state
//! machine refused them). Inputs:
//!
//! - `node <port> key:value…` — the node answered PING and INFO just now (`role:master|slave`,
//!   `master:<port>`, `link:up|down`, `offset:<n>`, `priority:<n>`, `replid:<id>`,
//!   `replid2:<id>`, `replicas:<port>,<port>`);
//! - `down <port>` — the node stopped answering (its last reply is long ago);
//! - `opinion <supervisor> down|up` — commits that supervisor's opinion of master `m`;
//! - `wait <ms>` — time passes; nodes still up keep answering;
//! - `new-leader` — leadership moves: a reconciler with an empty memory takes over;
//! - `restart` — this supervisor restarts: no observations, no memory, same committed state;
//! - `replids <id>,<id>` — commits replication ids seen for the master (the health loop does);
//! - `state` — prints the committed failover state;
//! - `manual` — an operator's `SENTINEL FAILOVER m` reaches this supervisor: the planned
//!   proposal is applied (or the refusal printed, as the client would see it);
//! - `switchover [to=<port>] [timeout=<ms>]` — the same for `SENTINEL SWITCHOVER m`;
//! - `measured <master> <target> paused:yes|no master:<n> target:<n> [moved:<n>] [link:down]`
//!   — the executor's catch-up reading comes back (`moved`: the master's offset on the second
//!   reading, if it changed);
//! - `config strategy=<s> spares=<port>,…` — the master's settings before bootstrap.
//!
//! `UPDATE_GOLDEN=1 cargo test` rewrites the files for review.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::consensus::core::GroupStatus;
use crate::info::NodeInfo;
use crate::machine::{Addr, Command, Machine, MasterSpec, ReplicaStep};
use crate::monitor::NodeView;
use crate::reconciler::{Action, CatchUpReading, Reconciler};

use crate::testkit::addr as a;

fn port(text: &str) -> u16 {
    text.parse().unwrap_or_else(|_| panic!("bad port {text}"))
}

fn spec() -> MasterSpec {
    crate::testkit::spec(a(1), 2)
}

fn info_text(fields: &[&str]) -> String {
    let mut out = String::new();
    for f in fields {
        let (k, v) = f.split_once(':').unwrap_or_else(|| panic!("bad field {f}"));
        match k {
            "role" => out.push_str(&format!("role:{v}\n")),
            "master" => out.push_str(&format!("master_host:10.0.0.1\nmaster_port:{v}\n")),
            "link" => out.push_str(&format!("master_link_status:{v}\n")),
            "offset" => out.push_str(&format!("slave_repl_offset:{v}\nmaster_repl_offset:{v}\n")),
            "priority" => out.push_str(&format!("slave_priority:{v}\n")),
            "replid" => out.push_str(&format!("master_replid:{v}\n")),
            "replid2" => out.push_str(&format!("master_replid2:{v}\n")),
            "replicas" => {
                for (i, p) in v.split(',').enumerate() {
                    out.push_str(&format!(
                        "slave{i}:ip=10.0.0.1,port={p},state=online,offset=0,lag=0\n"
                    ));
                }
            }
            other => panic!("unknown node field {other}"),
        }
    }
    out
}

fn describe(cmd: &Command) -> String {
    let addrs = |v: &[Addr]| v.iter().map(|x| x.port.to_string()).collect::<Vec<_>>().join(",");
    match cmd {
        Command::Bootstrap { masters } => format!("bootstrap {}", masters.len()),
        Command::Opinion { supervisor, down, epoch, .. } => {
            format!("opinion {supervisor} {} epoch={epoch}", if *down { "down" } else { "up" })
        }
        Command::ForgetOpinions { supervisor } => format!("forget-opinions {supervisor}"),
        Command::FailoverStarted { epoch, candidate, old_master, replicas, forced, .. } => format!(
            "failover-started epoch={epoch} candidate={} old={} replicas={}{}",
            candidate.port,
            old_master.port,
            addrs(replicas),
            if *forced { " forced" } else { "" }
        ),
        Command::Promoted { epoch, .. } => format!("promoted epoch={epoch}"),
        Command::ReplicaReconfSent { epoch, replica, .. } => {
            format!("reconf-sent {} epoch={epoch}", replica.port)
        }
        Command::ReplicaReconfDone { epoch, replica, .. } => {
            format!("reconf-done {} epoch={epoch}", replica.port)
        }
        Command::FailoverEnded { epoch, .. } => format!("failover-ended epoch={epoch}"),
        Command::FailoverAborted { epoch, reason, .. } => {
            format!("failover-aborted epoch={epoch} {reason}")
        }
        Command::SupervisorAnnounced { supervisor, .. } => format!("announced {supervisor}"),
        Command::MasterReplids { replids, .. } => format!("master-replids {}", replids.join(",")),
        Command::ReplicasDiscovered { replicas, .. } => {
            format!("replicas-discovered {}", addrs(replicas))
        }
        Command::Configure { change, .. } => format!("configure {change:?}"),
        Command::ConvertToReplica { epoch, node, .. } => {
            format!("convert {} epoch={epoch}", node.port)
        }
        Command::SwitchoverStarted { epoch, target, old_master, replicas, timeout_ms, .. } => {
            format!(
                "switchover-started epoch={epoch} target={} old={} replicas={} timeout={timeout_ms}",
                target.port,
                old_master.port,
                addrs(replicas)
            )
        }
        Command::SwitchoverInSync { epoch, offset, .. } => {
            format!("switchover-in-sync epoch={epoch} offset={offset}")
        }
        Command::SpareAssigned { epoch, spare, .. } => {
            format!("spare-assigned {} epoch={epoch}", spare.port)
        }
        Command::SpareSeeded { epoch, .. } => format!("spare-seeded epoch={epoch}"),
        Command::SpareSkipped { epoch, reason, .. } => {
            format!("spare-skipped epoch={epoch} ({reason})")
        }
    }
}

fn state_line(m: &Machine) -> String {
    let Some(s) = m.masters.get("m") else { return "state: not bootstrapped".into() };
    let failover = match &s.failover {
        None => "none".to_string(),
        Some(f) => {
            let steps: Vec<String> = f
                .replicas
                .iter()
                .map(|(r, st)| {
                    let st = match st {
                        ReplicaStep::Pending => "pending",
                        ReplicaStep::Sent => "sent",
                        ReplicaStep::Done => "done",
                    };
                    format!("{}:{st}", r.port)
                })
                .collect();
            format!(
                "epoch {} {:?} candidate {} [{}]{}",
                f.epoch,
                f.phase,
                f.candidate.port,
                steps.join(" "),
                if f.switchover.is_some() { " switchover" } else { "" }
            )
        }
    };
    let spares = if s.spec.spares.is_empty() {
        String::new()
    } else {
        let ports: Vec<String> = s.spec.spares.iter().map(|a| a.port.to_string()).collect();
        format!(" spares {}", ports.join(","))
    };
    format!(
        "state: master {} config-epoch {} odown {} failover {failover}{spares}",
        s.spec.addr.port, s.config_epoch, s.odown
    )
}

fn run(script: &str) -> String {
    let mut now = Instant::now();
    let mut machine = Machine::default();
    let mut spec = spec();
    let mut reconciler = Reconciler::new(1, vec![spec.clone()]);
    let mut views: HashMap<Addr, NodeView> = HashMap::new();
    let status = GroupStatus {
        id: 1,
        term: 1,
        leader: 1,
        is_leader: true,
        voters: vec![1, 2, 3],
        active: vec![1, 2, 3],
        applied: 0,
        ..Default::default()
    };
    let mut out = String::new();
    for line in script.lines() {
        let Some(input) = line.strip_prefix("> ") else {
            if line.is_empty() || line.starts_with('#') {
                out.push_str(line);
                out.push('\n');
            }
            continue;
        };
        out.push_str(line);
        out.push('\n');
        let words: Vec<&str> = input.split_whitespace().collect();
        match words[0] {
            "node" => {
                let addr = a(port(words[1]));
                let v = views.entry(addr).or_insert_with(|| NodeView::new(now));
                v.connected = true;
                v.last_ok = Some(now);
                v.last_reply = Some(now);
                v.observe(NodeInfo::parse(&info_text(&words[2..])), now);
            }
            "down" => {
                let v = views.entry(a(port(words[1]))).or_insert_with(|| NodeView::new(now));
                v.connected = false;
                v.last_ok = Some(now - Duration::from_secs(60));
            }
            "replids" => {
                let epoch = machine.masters.get("m").map_or(0, |s| s.config_epoch);
                let cmd = Command::MasterReplids {
                    master: "m".into(),
                    epoch,
                    replids: words[1].split(',').map(String::from).collect(),
                };
                let index = machine.applied_index + 1;
                if !machine.apply_command(index, cmd) {
                    out.push_str("rejected\n");
                }
            }
            "restart" => {
                // This supervisor restarts: its observations and memory are gone, the
                // committed state is not.
                views.clear();
                reconciler = Reconciler::new(1, vec![spec.clone()]);
            }
            "opinion" => {
                let epoch = machine.masters.get("m").map_or(0, |s| s.config_epoch);
                let cmd = Command::Opinion {
                    supervisor: words[1].parse().expect("a supervisor id"),
                    master: "m".into(),
                    epoch,
                    down: words[2] == "down",
                };
                let index = machine.applied_index + 1;
                if !machine.apply_command(index, cmd) {
                    out.push_str("rejected\n");
                }
            }
            "wait" => {
                let ms: u64 = words[1].trim_end_matches("ms").parse().expect("milliseconds");
                now += Duration::from_millis(ms);
                for v in views.values_mut().filter(|v| v.connected) {
                    v.last_ok = Some(now);
                    v.info_at = Some(now);
                }
            }
            "manual" => match crate::manual::plan(&machine, "m", &views, now) {
                Ok(cmd) => {
                    let d = describe(&cmd);
                    let index = machine.applied_index + 1;
                    let verdict =
                        if machine.apply_command(index, cmd) { "" } else { " (rejected)" };
                    out.push_str(&format!("propose {d}{verdict}\n"));
                    machine.take_events();
                }
                Err(e) => out.push_str(&format!("-{e}\n")),
            },
            "new-leader" => reconciler = Reconciler::new(2, vec![spec.clone()]),
            "config" => {
                for w in &words[1..] {
                    match w.split_once('=') {
                        Some(("strategy", v)) => {
                            spec.strategy = crate::machine::Strategy::parse(v).expect("a strategy")
                        }
                        Some(("spares", v)) => {
                            spec.spares = v.split(',').map(|p| a(port(p))).collect()
                        }
                        _ => panic!("unknown config {w}"),
                    }
                }
                reconciler = Reconciler::new(1, vec![spec.clone()]);
            }
            "switchover" => {
                let mut req = crate::switchover::SwitchoverRequest {
                    master: "m".into(),
                    to: None,
                    timeout_ms: None,
                };
                for w in &words[1..] {
                    match w.split_once('=') {
                        Some(("to", v)) => req.to = Some(a(port(v))),
                        Some(("timeout", v)) => req.timeout_ms = Some(v.parse().expect("ms")),
                        _ => panic!("unknown switchover option {w}"),
                    }
                }
                match crate::switchover::plan(&machine, &req, &views, now) {
                    Ok(cmd) => {
                        let d = describe(&cmd);
                        let index = machine.applied_index + 1;
                        let verdict =
                            if machine.apply_command(index, cmd) { "" } else { " (rejected)" };
                        out.push_str(&format!("propose {d}{verdict}\n"));
                        machine.take_events();
                    }
                    Err(e) => out.push_str(&format!("-{e}\n")),
                }
            }
            "measured" => {
                let (master, target) = (port(words[1]), port(words[2]));
                let field =
                    |k: &str| words[3..].iter().find_map(|w| w.strip_prefix(k)?.strip_prefix(':'));
                let offset = |k: &str| field(k).map(|v| v.parse::<i64>().expect("an offset"));
                let m_off = offset("master").expect("master:<offset>");
                let master_info =
                    |off: i64| NodeInfo::parse(&format!("role:master\nmaster_repl_offset:{off}\n"));
                let target_info = NodeInfo::parse(&format!(
                    "role:slave\nmaster_host:10.0.0.1\nmaster_port:{master}\nmaster_link_status:{}\nslave_repl_offset:{}\n",
                    field("link").unwrap_or("up"),
                    offset("target").expect("target:<offset>")
                ));
                let reading = CatchUpReading {
                    master: a(master),
                    target: a(target),
                    paused: field("paused") == Some("yes"),
                    master_before: Some(master_info(m_off)),
                    target_info: Some(target_info),
                    master_after: Some(master_info(offset("moved").unwrap_or(m_off))),
                };
                reconciler.absorb(vec![reading], now);
            }
            "state" => {
                out.push_str(&state_line(&machine));
                out.push('\n');
            }
            "plan" => {
                for action in reconciler.plan(&machine, &views, &status, now) {
                    let text = match action {
                        Action::Propose(cmd) => {
                            let d = describe(&cmd);
                            let index = machine.applied_index + 1;
                            if machine.apply_command(index, cmd) {
                                format!("propose {d}")
                            } else {
                                format!("propose {d} (rejected)")
                            }
                        }
                        Action::Bgsave(n) => format!("bgsave {}", n.port),
                        Action::Promote(n) => format!("promote {}", n.port),
                        Action::Repoint { node, to } => {
                            format!("repoint {} to {}", node.port, to.port)
                        }
                        Action::CatchUp { master, target, lease_ms } => format!(
                            "pause {} for {lease_ms} ms and measure {} against it",
                            master.port, target.port
                        ),
                        Action::PauseWrites { node, lease_ms } => {
                            format!("pause {} for {lease_ms} ms", node.port)
                        }
                        Action::UnpauseWrites(node) => format!("unpause {}", node.port),
                    };
                    out.push_str(&text);
                    out.push('\n');
                }
                machine.take_events();
            }
            other => panic!("unknown input {other}"),
        }
    }
    out
}

#[test]
fn failover_golden_scripts() {
    crate::testkit::check_golden_dir("src/reconciler_testdata", run);
}
