//! `SENTINEL FAILOVER` across processes: three warden-sentinel supervisors, warden-node data
//! nodes (one master, two replicas), all healthy. The request goes to a Raft *follower*; the
//! decision is committed through the leader, the master moves exactly once, and every
//! supervisor reports the new master.

use std::time::Duration;

use integration_tests::ha::{self, field, node_info, sentinel_field, Group, NodeKind, MASTER};
use integration_tests::wait;

/// Sends `SENTINEL FAILOVER <name>` and returns the reply as text (`+OK` or the error line).
fn sentinel_failover(port: u16, name: &str) -> Result<String, String> {
    let mut c = ha::connect(port)?;
    c.set_read_timeout(Some(Duration::from_secs(10))).map_err(|e| e.to_string())?;
    match redis::cmd("SENTINEL").arg("failover").arg(name).query::<String>(&mut c) {
        Ok(ok) => Ok(format!("+{ok}")),
        Err(e) => Ok(format!("-{} {}", e.code().unwrap_or("?"), e.detail().unwrap_or_default())),
    }
}

fn role(port: u16) -> Result<String, String> {
    field(&node_info(port)?, "role").ok_or_else(|| "no role".to_string())
}

/// The topology has settled on `master`: it is master, every other node replicates from it
/// with its link up, and every supervisor has seen that and has no failover in flight.
fn converged(group: &Group, master: u16) -> Result<(), String> {
    let mut seen = Vec::new();
    for n in &group.nodes {
        let info = node_info(n.port)?;
        let r = field(&info, "role").unwrap_or_default();
        if n.port == master {
            seen.push(format!("{}:{r}", n.port));
            if r != "master" {
                return Err(format!("{seen:?}"));
            }
            continue;
        }
        let following = field(&info, "master_port").unwrap_or_default();
        let link = field(&info, "master_link_status").unwrap_or_default();
        seen.push(format!("{}:{r}->{following}:{link}", n.port));
        if r != "slave" || following != master.to_string() || link != "up" {
            return Err(format!("{seen:?}"));
        }
    }
    for s in &group.supervisors {
        let flags = sentinel_field(s.port, "flags")?;
        if flags.contains("failover_in_progress") {
            return Err(format!("supervisor {} flags {flags}", s.id));
        }
        // The supervisors' own observations lag the nodes by a poll; a manual failover asked
        // before they saw the replicas in sync would rightly be NOGOODSLAVE (no evidence of
        // lineage yet).
        let links = ha::replica_links(s.port)?;
        if links.len() != group.nodes.len() - 1 || links.iter().any(|l| l != "ok") {
            return Err(format!("supervisor {} sees replica links {links:?}", s.id));
        }
    }
    Ok(())
}

#[test]
fn sentinel_failover_on_a_follower_moves_the_master_exactly_once() {
    // Nothing here fails, so any move is a manual one. A short down-after (1 s, so a promotion
    // grace of 1.2 s) means the replicas have been replicas for longer than the grace when they
    // are promoted: their stale `role:slave` must not make the new master look down.
    let group = Group::start(NodeKind::Warden, 2, 3, 1000);
    let t0 = std::time::Instant::now();
    let phase = |what: &str| eprintln!("[{:>6} ms] {what}", t0.elapsed().as_millis());
    let old = group.nodes[0].port;
    let leader = wait::until("a raft leader", Duration::from_secs(10), || group.leader());
    let follower = &group.supervisors[(leader + 1) % group.supervisors.len()];

    // Sentinel's refusal for an unknown name, answered by the follower.
    assert_eq!(
        sentinel_failover(follower.port, "nosuchmaster").unwrap(),
        "-ERR No such master with that name"
    );

    let reply = sentinel_failover(follower.port, MASTER).unwrap();
    assert_eq!(reply, "+OK", "SENTINEL FAILOVER on follower {}", follower.id);

    // Every supervisor switches to one of the two replicas, and they all agree.
    let new =
        wait::until("every supervisor to report the new master", Duration::from_secs(20), || {
            let answers = group.answers()?;
            match answers.first() {
                Some(first) if *first != old && answers.iter().all(|a| a == first) => Ok(*first),
                _ => Err(format!("answers {answers:?} (old master {old})")),
            }
        });
    assert!(group.nodes[1..].iter().any(|n| n.port == new), "promoted {new} is not a replica");

    // The topology converges: the new master is master, the other replica and the old master
    // (converted, it never failed) replicate from it, and the failover has ended everywhere.
    wait::until("the nodes to follow the new master", Duration::from_secs(20), || {
        converged(&group, new)
    });
    phase("first move converged");
    assert_eq!(role(old).unwrap(), "slave");

    // Exactly once: one epoch was used, and each supervisor announced one switch.
    for s in &group.supervisors {
        assert_eq!(sentinel_field(s.port, "config-epoch").unwrap(), "1", "supervisor {}", s.id);
        let log = s.proc.log();
        let switches: Vec<&str> = log.lines().filter(|l| l.contains("+switch-master")).collect();
        assert_eq!(switches.len(), 1, "supervisor {}: {switches:#?}", s.id);
    }

    // Two operators at once, on two different supervisors: exactly one failover is committed
    // (epoch 2); the other request is told one is in progress.
    let ports: Vec<u16> = group.supervisors.iter().take(2).map(|s| s.port).collect();
    let replies: Vec<String> = ports
        .iter()
        .map(|p| {
            let p = *p;
            std::thread::spawn(move || sentinel_failover(p, MASTER).unwrap())
        })
        .collect::<Vec<_>>()
        .into_iter()
        .map(|t| t.join().expect("a request thread"))
        .collect();
    phase("concurrent requests answered");
    let oks = replies.iter().filter(|r| *r == "+OK").count();
    let inprog = replies.iter().filter(|r| *r == "-INPROG Failover already in progress").count();
    assert_eq!((oks, inprog), (1, 1), "replies {replies:?}");
    let second = wait::until("the second move", Duration::from_secs(20), || {
        let answers = group.answers()?;
        let epochs: Vec<String> = group
            .supervisors
            .iter()
            .map(|s| sentinel_field(s.port, "config-epoch"))
            .collect::<Result<_, _>>()?;
        let flags: Vec<String> = group
            .supervisors
            .iter()
            .map(|s| sentinel_field(s.port, "flags"))
            .collect::<Result<_, _>>()?;
        match answers.first() {
            Some(first)
                if *first != new
                    && answers.iter().all(|a| a == first)
                    && epochs.iter().all(|e| e == "2")
                    && flags.iter().all(|f| !f.contains("failover_in_progress")) =>
            {
                Ok(*first)
            }
            _ => Err(format!("answers {answers:?} epochs {epochs:?} flags {flags:?}")),
        }
    });

    phase("second move seen");
    wait::until("the nodes to follow the second master", Duration::from_secs(20), || {
        converged(&group, second)
    });

    phase("second move converged");
    // The next request is a new failover (epoch 3), not INPROG: this time through
    // `wardenctl failover` against the leader, which follows it to its end.
    let leader = wait::until("a raft leader", Duration::from_secs(10), || group.leader());
    let out = std::process::Command::new(integration_tests::bin_dir().join("wardenctl"))
        .args(["-p", &group.supervisors[leader].port.to_string(), "--json", "failover", MASTER])
        .output()
        .expect("running wardenctl");
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "wardenctl failed: {report}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(report.contains("\"ok\": true"), "{report}");
    assert!(report.contains("\"config_epoch\": 3"), "{report}");
    assert!(report.contains(&format!("\"old_master\": \"127.0.0.1:{second}\"")), "{report}");
    phase("wardenctl failover done");
    // An unknown name: Sentinel's error, and a failing exit status.
    let out = std::process::Command::new(integration_tests::bin_dir().join("wardenctl"))
        .args(["-p", &follower.port.to_string(), "failover", "nosuchmaster"])
        .output()
        .expect("running wardenctl");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("No such master with that name"));
    wait::until("every supervisor at epoch 3", Duration::from_secs(20), || {
        let answers = group.answers()?;
        let epochs: Vec<String> = group
            .supervisors
            .iter()
            .map(|s| sentinel_field(s.port, "config-epoch"))
            .collect::<Result<_, _>>()?;
        if answers.iter().all(|a| *a != second) && epochs.iter().all(|e| e == "3") {
            Ok(())
        } else {
            Err(format!("answers {answers:?} epochs {epochs:?}"))
        }
    });

    phase("third move seen");
    // Every committed failover is in the history, the same on every supervisor: three manual
    // moves, each ended, each from the previous master.
    let moves = [(old, new), (new, second)];
    for s in &group.supervisors {
        let out = std::process::Command::new(integration_tests::bin_dir().join("wardenctl"))
            .args(["-p", &s.port.to_string(), "--json", "history", MASTER])
            .output()
            .expect("running wardenctl");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{text}{}", String::from_utf8_lossy(&out.stderr));
        assert_eq!(text.matches("\"outcome\": \"ended\"").count(), 3, "{text}");
        assert_eq!(text.matches("\"reason\": \"manual\"").count(), 3, "{text}");
        let records: Vec<&str> = text.split("\n  {").skip(1).collect();
        assert_eq!(records.len(), 3, "{text}");
        for (epoch, (from, to)) in moves.iter().enumerate() {
            let record = records[epoch];
            for want in [
                format!("\"epoch\": \"{}\"", epoch + 1),
                format!("\"from\": \"127.0.0.1:{from}\""),
                format!("\"to\": \"127.0.0.1:{to}\""),
            ] {
                assert!(record.contains(&want), "no {want} in record {record}");
            }
        }
    }
    let out = std::process::Command::new(integration_tests::bin_dir().join("wardenctl"))
        .args(["-p", &follower.port.to_string(), "history", MASTER])
        .output()
        .expect("running wardenctl");
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(text.lines().filter(|l| l.contains("ended (manual)")).count(), 3, "{text}");
}

#[test]
fn a_master_without_a_replica_to_promote_is_nogoodslave_and_nothing_moves() {
    let group = Group::start(NodeKind::Warden, 0, 3, 1000);
    let master = group.nodes[0].port;
    for s in &group.supervisors {
        assert_eq!(
            sentinel_failover(s.port, MASTER).unwrap(),
            "-NOGOODSLAVE No suitable replica to promote",
            "supervisor {}",
            s.id
        );
    }
    // Wrong arity is Sentinel's arity error, not a failover.
    let mut c = ha::connect(group.supervisors[0].port).unwrap();
    let err = redis::cmd("SENTINEL")
        .arg("failover")
        .arg(MASTER)
        .arg("extra")
        .query::<String>(&mut c)
        .unwrap_err();
    assert!(
        err.to_string().contains("wrong number of arguments for 'sentinel|failover' command"),
        "{err}"
    );
    // Nothing was committed: the master, its epoch and its role are unchanged everywhere.
    for s in &group.supervisors {
        assert_eq!(ha::master_addr(s.port).unwrap().1, master);
        assert_eq!(sentinel_field(s.port, "config-epoch").unwrap(), "0");
        assert!(!sentinel_field(s.port, "flags").unwrap().contains("failover_in_progress"));
        assert_eq!(s.proc.log().matches("+new-epoch").count(), 0, "supervisor {}", s.id);
    }
    assert_eq!(role(master).unwrap(), "master");
}
