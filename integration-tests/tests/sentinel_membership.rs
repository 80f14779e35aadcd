//! Membership through Raft conf changes, across processes: a fourth supervisor joins (learner,
//! then voter once caught up) and a failover still commits; the leader is removed (leadership
//! moves first), the others carry on, the removed one can decide nothing, and its id is never
//! admitted again.

use std::process::Command;
use std::time::Duration;

use integration_tests::ha::{self, members, sentinel_reply, Group, NodeKind};
use integration_tests::{bin_dir, wait};

fn wardenctl(port: u16, args: &[&str]) -> (bool, String) {
    let out = Command::new(bin_dir().join("wardenctl"))
        .args(["-p", &port.to_string()])
        .args(args)
        .output()
        .expect("running wardenctl");
    let text =
        format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

#[test]
fn a_fourth_supervisor_joins_as_a_learner_becomes_a_voter_and_a_failover_still_commits() {
    let mut group = Group::start(NodeKind::Warden, 2, 3, 1000);
    let leader = wait::until("a raft leader", Duration::from_secs(10), || group.leader());
    let follower = group.supervisors[(leader + 1) % 3].port;
    let raft_addr = group.start_joiner(4);
    let joiner = group.supervisors[3].port;
    // Waiting to be added: no membership, no state, and it refuses to decide anything.
    assert_eq!(members(joiner).unwrap(), []);
    let server = ha::node_info_section(joiner, "server").unwrap();
    assert_eq!(ha::field(&server, "raft_role").as_deref(), Some("joining"), "{server}");
    assert!(ha::master_addr(joiner).is_err(), "it knows no master before it is added");
    let refused =
        sentinel_reply(joiner, &["SENTINEL", "CONFIG", "SET", "announce-hostnames", "yes"])
            .unwrap();
    assert!(refused.starts_with("-NOLEADER"), "{refused}");

    // Added through a follower with wardenctl, which follows it until it is a voter.
    let (ok, out) = wardenctl(follower, &["members", "add", "4", &raft_addr]);
    assert!(ok, "wardenctl members add: {out}");
    assert!(out.contains("supervisor 4 is a voter"), "{out}");
    for s in &group.supervisors {
        wait::until("four voters everywhere", Duration::from_secs(15), || {
            let m = members(s.port)?;
            let voters: Vec<u64> = m.iter().filter(|(_, r, _)| r == "voter").map(|m| m.0).collect();
            if voters == [1, 2, 3, 4] {
                Ok(())
            } else {
                Err(format!("supervisor {}: {m:?}", s.id))
            }
        });
    }
    // `-a` as redis-cli has it: supervisors have no password, which is only a warning.
    let (ok, listing) = wardenctl(joiner, &["-a", "pw", "members"]);
    assert!(ok && listing.contains("warning: AUTH failed"), "{listing}");
    let rows: Vec<&str> = listing.lines().filter(|l| l.contains(" voter ")).collect();
    assert_eq!(rows.len(), 4, "{listing}");
    // Adding it again is refused.
    assert_eq!(
        sentinel_reply(follower, &["SENTINEL", "MEMBERS", "ADD", "4", &raft_addr]).unwrap(),
        "-ERR raft id 4 is already a member of the group"
    );
    // The newcomer learnt the committed state from its snapshot.
    let old_master = group.nodes[0].port;
    wait::until("the joiner to know the master", Duration::from_secs(10), || {
        ha::master_addr(joiner).map(|a| a.1).and_then(|p| {
            if p == old_master {
                Ok(())
            } else {
                Err(format!("answers {p}"))
            }
        })
    });

    // A failover with four voters: the master dies, every supervisor (the new one included)
    // switches to a replica.
    group.nodes[0].proc.kill();
    let new =
        wait::until("every supervisor to report a new master", Duration::from_secs(30), || {
            let answers = group.answers()?;
            match answers.first() {
                Some(first)
                    if *first != old_master
                        && answers.len() == 4
                        && answers.iter().all(|a| a == first) =>
                {
                    Ok(*first)
                }
                _ => Err(format!("answers {answers:?}")),
            }
        });
    assert!(group.nodes[1..].iter().any(|n| n.port == new));
}

#[test]
fn the_removed_leader_hands_over_cannot_decide_and_its_id_never_comes_back() {
    let group = Group::start(NodeKind::Warden, 1, 3, 1000);
    let leader = wait::until("a raft leader", Duration::from_secs(10), || group.leader());
    let old = &group.supervisors[leader];
    let rest: Vec<&ha::Supervisor> = group.supervisors.iter().filter(|s| s.id != old.id).collect();
    let asked = rest[0].port;

    let (ok, out) = wardenctl(asked, &["members", "remove", &old.id.to_string()]);
    assert!(ok, "wardenctl members remove: {out}");
    for s in &rest {
        wait::until("a new leader among the rest and two voters", Duration::from_secs(15), || {
            let m = members(s.port)?;
            let voters: Vec<u64> = m.iter().map(|m| m.0).collect();
            let leader = m.iter().find(|m| m.2).map(|m| m.0);
            let want: Vec<u64> = rest.iter().map(|r| r.id).collect();
            if voters == want && leader.is_some_and(|l| l != old.id) {
                Ok(())
            } else {
                Err(format!("supervisor {}: {m:?}", s.id))
            }
        });
    }
    // The removed supervisor knows it, and decides nothing any more.
    wait::until("the removed supervisor to know it", Duration::from_secs(10), || {
        if old.proc.log().contains("this supervisor was removed from the group") {
            Ok(())
        } else {
            Err("not yet")
        }
    });
    let server = ha::node_info_section(old.port, "server").unwrap();
    assert_eq!(ha::field(&server, "raft_role").as_deref(), Some("removed"), "{server}");
    let refused = sentinel_reply(old.port, &["SENTINEL", "FAILOVER", ha::MASTER]).unwrap();
    assert!(refused.starts_with("-NOLEADER"), "{refused}");
    let refused =
        sentinel_reply(old.port, &["SENTINEL", "CONFIG", "SET", "announce-hostnames", "yes"])
            .unwrap();
    assert!(refused.starts_with("-NOLEADER"), "{refused}");

    // The two left still commit, and agree.
    assert_eq!(
        sentinel_reply(rest[1].port, &["SENTINEL", "SET", ha::MASTER, "failover-timeout", "12345"])
            .unwrap(),
        "+OK"
    );
    for s in &rest {
        wait::until("the change on both", Duration::from_secs(10), || {
            let v = ha::sentinel_field(s.port, "failover-timeout")?;
            if v == "12345" {
                Ok(())
            } else {
                Err(v)
            }
        });
    }
    assert_ne!(ha::sentinel_field(old.port, "failover-timeout").unwrap(), "12345");

    // Rejoin only with a new id.
    let again = format!("127.0.0.1:{}", old.raft_port);
    assert_eq!(
        sentinel_reply(asked, &["SENTINEL", "MEMBERS", "ADD", &old.id.to_string(), &again])
            .unwrap(),
        format!(
            "-ERR raft id {} was removed from the group; a supervisor rejoins only under a new id",
            old.id
        )
    );
    assert_eq!(members(asked).unwrap().len(), 2);
}
