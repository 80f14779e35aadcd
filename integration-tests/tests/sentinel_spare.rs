//! The spare strategy across processes (listing 4.4 automated): a master with data, one
//! replica and one idle spare node; the master is killed, and the supervisors seed the spare
//! from the replica, promote the spare, and point the replica at it.

use std::time::Duration;

use integration_tests::ha::{self, field, node_info, sentinel_field, Group, NodeKind, MASTER};
use integration_tests::wait;

#[test]
fn a_failed_master_is_replaced_by_a_spare_seeded_from_the_best_replica() {
    spare_replaces_a_failed_master(NodeKind::Warden);
}

#[test]
fn the_same_with_redis_nodes() {
    spare_replaces_a_failed_master(NodeKind::Redis);
}

fn spare_replaces_a_failed_master(kind: NodeKind) {
    let mut group = Group::start_with_spares(kind, 1, 1, 3, 1000);
    let (master, replica, spare) = (group.nodes[0].port, group.nodes[1].port, group.spares[0].port);
    for s in &group.supervisors {
        assert_eq!(sentinel_field(s.port, "failover-strategy").unwrap(), "spare");
        assert_eq!(sentinel_field(s.port, "spares").unwrap(), format!("127.0.0.1:{spare}"));
    }
    let status = std::process::Command::new(integration_tests::bin_dir().join("wardenctl"))
        .args(["-p", &group.supervisors[0].port.to_string(), "status"])
        .output()
        .expect("running wardenctl");
    let text = String::from_utf8_lossy(&status.stdout);
    assert!(
        text.contains(&format!("spares: 127.0.0.1:{spare}  (failover-strategy spare)")),
        "{text}"
    );
    // Data written before the failure, acknowledged by the replica (WAIT) so it must survive.
    let mut c = ha::connect(master).unwrap();
    for i in 0..1000 {
        let _: () = redis::cmd("SET")
            .arg(format!("key:{i}"))
            .arg(format!("value:{i}"))
            .query(&mut c)
            .unwrap();
    }
    let _: i64 = redis::cmd("RPUSH").arg("list").arg(&["a", "b", "c"]).query(&mut c).unwrap();
    let acked: i64 = redis::cmd("WAIT").arg(1).arg(5000).query(&mut c).unwrap();
    assert_eq!(acked, 1, "the replica acknowledged the writes");
    // The spare is idle: a master of nothing, without the data.
    let spare_info = node_info(spare).unwrap();
    assert_eq!(field(&spare_info, "role").as_deref(), Some("master"));

    group.node(master).proc.kill();
    wait::until("every supervisor to name the spare", Duration::from_secs(30), || {
        let answers = group.answers()?;
        if answers.iter().all(|a| *a == spare) {
            Ok(())
        } else {
            Err(format!("answers {answers:?} (spare {spare}, replica {replica})"))
        }
    });
    wait::until("the replica to follow the spare", Duration::from_secs(30), || {
        let spare_role = field(&node_info(spare)?, "role").unwrap_or_default();
        let info = node_info(replica)?;
        let (role, following, link) = (
            field(&info, "role").unwrap_or_default(),
            field(&info, "master_port").unwrap_or_default(),
            field(&info, "master_link_status").unwrap_or_default(),
        );
        if spare_role == "master"
            && role == "slave"
            && following == spare.to_string()
            && link == "up"
        {
            Ok(())
        } else {
            Err(format!("spare {spare_role}; replica {role} of {following}, link {link}"))
        }
    });
    // Everything written before the kill is on the spare.
    let mut s = ha::connect(spare).unwrap();
    let keys: Vec<String> = (0..1000).map(|i| format!("key:{i}")).collect();
    let values: Vec<Option<String>> = redis::cmd("MGET").arg(&keys).query(&mut s).unwrap();
    for (i, v) in values.iter().enumerate() {
        assert_eq!(v.as_deref(), Some(format!("value:{i}").as_str()), "key:{i}");
    }
    let list: Vec<String> = redis::cmd("LRANGE").arg("list").arg(0).arg(-1).query(&mut s).unwrap();
    assert_eq!(list, ["a", "b", "c"]);
    // The spare takes writes, and the replica gets them.
    let _: () = redis::cmd("SET").arg("after").arg("failover").query(&mut s).unwrap();
    let acked: i64 = redis::cmd("WAIT").arg(1).arg(5000).query(&mut s).unwrap();
    assert_eq!(acked, 1);
    // The spare left the pool, and the history says a spare was used, seeded from the replica.
    for sup in &group.supervisors {
        wait::until("the failover to end", Duration::from_secs(20), || {
            let flags = sentinel_field(sup.port, "flags")?;
            if flags.contains("failover_in_progress") {
                Err(flags)
            } else {
                Ok(())
            }
        });
        assert_eq!(sentinel_field(sup.port, "spares").unwrap(), "");
        let mut c = ha::connect(sup.port).unwrap();
        let records: Vec<Vec<String>> =
            redis::cmd("SENTINEL").arg("history").arg(MASTER).query(&mut c).unwrap();
        let last = records.last().expect("one failover").join(" ");
        assert!(last.contains(&format!("to 127.0.0.1:{spare}")), "{last}");
        assert!(
            last.contains(&format!(
                "spare 127.0.0.1:{spare} seeded from replica 127.0.0.1:{replica}"
            )),
            "{last}"
        );
        assert!(last.contains("outcome ended"), "{last}");
    }
}
