//! warden-sentinel supervising Debian redis-server nodes: one master, two replicas, three
//! supervisors on loopback. Faults are real: kill -9 of processes.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::time::Duration;

use integration_tests::ha::{self, field, master_addr, node_info, sentinel_field, Group, NodeKind};
use integration_tests::wait;

const DOWN_AFTER: u64 = 1000;

/// Every running supervisor answers `port` as the master.
fn wait_all_answer(group: &Group, what: &str, ok: impl Fn(u16) -> bool) -> u16 {
    wait::until(what, Duration::from_secs(20), || {
        let answers = group.answers()?;
        match answers.first() {
            Some(first) if ok(*first) && answers.iter().all(|a| a == first) => Ok(*first),
            _ => Err(format!("answers {answers:?}")),
        }
    })
}

fn role(port: u16) -> Result<String, String> {
    field(&node_info(port)?, "role").ok_or_else(|| "no role".to_string())
}

fn count_in_log(group: &Group, needle: &str) -> Vec<usize> {
    group.supervisors.iter().map(|s| s.proc.log().matches(needle).count()).collect()
}

/// A raw RESP subscriber on a supervisor's client port.
struct Subscriber {
    reader: BufReader<TcpStream>,
}

impl Subscriber {
    fn psubscribe(port: u16, pattern: &str) -> Subscriber {
        let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        write!(s, "*2\r\n$10\r\nPSUBSCRIBE\r\n${}\r\n{pattern}\r\n", pattern.len()).unwrap();
        let mut sub = Subscriber { reader: BufReader::new(s) };
        let confirm = sub.message();
        assert_eq!(confirm[0], "psubscribe");
        sub
    }

    /// Reads one array of bulk strings / integers as text.
    fn message(&mut self) -> Vec<String> {
        let mut line = String::new();
        self.reader.read_line(&mut line).expect("read");
        let n: usize = line.trim_end().strip_prefix('*').expect("an array").parse().unwrap();
        let mut items = Vec::new();
        for _ in 0..n {
            line.clear();
            self.reader.read_line(&mut line).unwrap();
            let l = line.trim_end().to_string();
            if let Some(len) = l.strip_prefix('$') {
                let len: usize = len.parse().unwrap();
                let mut buf = vec![0u8; len + 2];
                std::io::Read::read_exact(&mut self.reader, &mut buf).unwrap();
                items.push(String::from_utf8_lossy(&buf[..len]).into_owned());
            } else {
                items.push(l[1..].to_string());
            }
        }
        items
    }

    /// Waits for an event on `channel` and returns its payload.
    fn wait_for(&mut self, channel: &str) -> String {
        loop {
            let m = self.message();
            if m[0] == "pmessage" && m[2] == channel {
                return m[3].clone();
            }
        }
    }
}

fn redis_py_available() -> bool {
    std::process::Command::new("python3")
        .args(["-c", "import redis"])
        .status()
        .is_ok_and(|s| s.success())
}

/// redis-py's Sentinel client discovers the master and writes through it.
fn redis_py_writes(group: &Group) -> Result<String, String> {
    let ports: Vec<String> = group
        .supervisors
        .iter()
        .filter(|s| s.proc.pid().is_some())
        .map(|s| s.port.to_string())
        .collect();
    let script = format!(
        "from redis.sentinel import Sentinel\n\
         s = Sentinel([('127.0.0.1', p) for p in [{}]], socket_timeout=1.0)\n\
         host, port = s.discover_master('{}')\n\
         m = s.master_for('{}', socket_timeout=1.0)\n\
         m.set('written-through-sentinel', 'yes')\n\
         assert m.get('written-through-sentinel') == b'yes'\n\
         print('%s:%d' % (host, port))\n",
        ports.join(","),
        ha::MASTER,
        ha::MASTER
    );
    let out = std::process::Command::new("python3")
        .args(["-c", &script])
        .output()
        .map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

#[test]
fn killed_master_is_replaced_once_and_returns_as_a_replica() {
    killed_master_scenario(NodeKind::Redis);
}

#[test]
fn the_same_with_warden_nodes() {
    killed_master_scenario(NodeKind::Warden);
}

fn killed_master_scenario(kind: NodeKind) {
    let mut group = Group::start(kind, 2, 3, DOWN_AFTER);
    let old = group.nodes[0].port;
    let replicas: Vec<u16> = group.nodes[1..].iter().map(|n| n.port).collect();
    {
        let mut c = ha::connect(old).unwrap();
        let _: () = redis::cmd("SET").arg("before").arg("failover").query(&mut c).unwrap();
    }
    // The write reached both replicas before the master dies.
    for r in &replicas {
        wait::until("replica to have the write", Duration::from_secs(10), || {
            let mut c = ha::connect(*r)?;
            let v: Option<String> =
                redis::cmd("GET").arg("before").query(&mut c).map_err(|e| e.to_string())?;
            v.ok_or_else(|| "not yet".to_string())
        });
    }
    // Every supervisor lists the two others (clients grow their seed lists from this).
    for s in &group.supervisors {
        wait::until(
            "SENTINEL SENTINELS to list the other supervisors",
            Duration::from_secs(10),
            || {
                let mut c = ha::connect(s.port)?;
                let maps: Vec<Vec<String>> = redis::cmd("SENTINEL")
                    .arg("sentinels")
                    .arg(ha::MASTER)
                    .query(&mut c)
                    .map_err(|e| e.to_string())?;
                let mut ports: Vec<String> = maps
                    .iter()
                    .filter_map(|m| m.chunks(2).find(|kv| kv[0] == "port").map(|kv| kv[1].clone()))
                    .collect();
                ports.sort();
                let mut expected: Vec<String> = group
                    .supervisors
                    .iter()
                    .filter(|o| o.id != s.id)
                    .map(|o| o.port.to_string())
                    .collect();
                expected.sort();
                if ports == expected {
                    Ok(())
                } else {
                    Err(format!("{ports:?}"))
                }
            },
        );
    }
    let mut events = Subscriber::psubscribe(group.supervisors[2].port, "*");

    group.node(old).proc.kill();
    let new = wait_all_answer(&group, "every supervisor to answer a promoted replica", |p| {
        replicas.contains(&p)
    });
    assert_eq!(role(new).unwrap(), "master");
    let switch = events.wait_for("+switch-master");
    assert_eq!(switch, format!("mymaster 127.0.0.1 {old} 127.0.0.1 {new}"));

    // The other replica follows the new master, and the failover ends.
    let other = *replicas.iter().find(|p| **p != new).unwrap();
    wait::until("the other replica to follow the new master", Duration::from_secs(20), || {
        let info = node_info(other)?;
        match (field(&info, "master_port"), field(&info, "master_link_status")) {
            (Some(p), Some(l)) if p == new.to_string() && l == "up" => Ok(()),
            state => Err(format!("{state:?}")),
        }
    });
    events.wait_for("+failover-end");
    for s in &group.supervisors {
        wait::until("failover to be over everywhere", Duration::from_secs(10), || {
            let flags = sentinel_field(s.port, "flags")?;
            if flags == "master" {
                Ok(())
            } else {
                Err(flags)
            }
        });
        assert_eq!(sentinel_field(s.port, "config-epoch").unwrap(), "1", "exactly one failover");
    }
    assert_eq!(
        count_in_log(&group, "+switch-master mymaster"),
        [1, 1, 1],
        "one switch, announced by every supervisor"
    );
    assert_eq!(
        count_in_log(&group, "sent REPLICAOF NO ONE").iter().sum::<usize>(),
        1,
        "one promotion"
    );

    // Data written before the failure survived it.
    let mut c = ha::connect(new).unwrap();
    let v: Option<String> = redis::cmd("GET").arg("before").query(&mut c).unwrap();
    assert_eq!(v.as_deref(), Some("failover"));

    // scripts/test installs redis-py; a missing module is a failed check, never a skipped one.
    assert!(
        redis_py_available(),
        "python3 cannot import redis (scripts/test installs it: pip install redis)"
    );
    let found = wait::until(
        "redis-py to write through Sentinel discovery",
        Duration::from_secs(10),
        || redis_py_writes(&group),
    );
    assert_eq!(found, format!("127.0.0.1:{new}"));

    // (b) The old master comes back with its old data and its old role: it is demoted.
    group.node(old).proc.restart();
    wait::until(
        "the old master to become a replica of the new one",
        Duration::from_secs(20),
        || {
            let info = node_info(old)?;
            match (
                field(&info, "role"),
                field(&info, "master_port"),
                field(&info, "master_link_status"),
            ) {
                (Some(r), Some(p), Some(l))
                    if r == "slave" && p == new.to_string() && l == "up" =>
                {
                    Ok(())
                }
                state => Err(format!("{state:?}")),
            }
        },
    );
    assert_eq!(
        events.wait_for("+convert-to-slave"),
        format!("slave 127.0.0.1:{old} 127.0.0.1 {old} @ mymaster 127.0.0.1 {new}")
    );
    assert_eq!(wait_all_answer(&group, "the master to stay put", |p| p == new), new);
    // The operator's view agrees, from any supervisor.
    let ctl = integration_tests::bin_dir().join("wardenctl");
    let port = group.supervisors[1].port.to_string();
    wait::until(
        "wardenctl status to show the converted old master in sync",
        Duration::from_secs(10),
        || {
            let out = std::process::Command::new(&ctl)
                .args(["-p", &port, "status"])
                .output()
                .map_err(|e| e.to_string())?;
            let text = String::from_utf8_lossy(&out.stdout).into_owned();
            let master = format!("mymaster  master 127.0.0.1:{new}  flags master  config-epoch 1");
            let replica = format!("replica 127.0.0.1:{old}  link ok");
            if out.status.success() && text.contains(&master) && text.contains(&replica) {
                Ok(())
            } else {
                Err(format!("{text}{}", String::from_utf8_lossy(&out.stderr)))
            }
        },
    );
    let out =
        std::process::Command::new(&ctl).args(["-p", &port, "--json", "status"]).output().unwrap();
    let json = String::from_utf8_lossy(&out.stdout);
    assert!(
        json.contains("\"raft_leader\"") && json.contains(&format!("\"port\": \"{new}\"")),
        "{json}"
    );

    let secret_leaks: Vec<usize> = count_in_log(&group, "test-secret-not-logged");
    assert_eq!(secret_leaks, [0, 0, 0], "the supervisor secret must never be logged");
}

#[test]
fn a_minority_of_supervisors_never_fails_over() {
    minority_scenario(NodeKind::Redis);
}

#[test]
fn a_minority_never_fails_over_warden_nodes() {
    minority_scenario(NodeKind::Warden);
}

fn minority_scenario(kind: NodeKind) {
    let mut group = Group::start(kind, 2, 3, DOWN_AFTER);
    let old = group.nodes[0].port;
    group.supervisors[0].proc.kill();
    group.supervisors[1].proc.kill();
    group.node(old).proc.kill();
    let lone = group.supervisors[2].port;
    // The lone supervisor does see the master go down ...
    wait::until("the lone supervisor to flag the master down", Duration::from_secs(10), || {
        let flags = sentinel_field(lone, "flags")?;
        if flags.contains("s_down") {
            Ok(())
        } else {
            Err(flags)
        }
    });
    // ... but for several detection periods nothing is decided and no node is touched.
    let deadline = std::time::Instant::now() + Duration::from_millis(4 * DOWN_AFTER);
    while std::time::Instant::now() < deadline {
        assert_eq!(master_addr(lone).unwrap().1, old, "a minority must not fail over");
        assert!(!sentinel_field(lone, "flags").unwrap().contains("o_down"));
        for r in &group.nodes[1..] {
            assert_eq!(role(r.port).unwrap(), "slave", "no replica may be promoted");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(group.supervisors[2].proc.log().matches("REPLICAOF").count() == 0);
    // CKQUORUM tells the operator why.
    let mut c = ha::connect(lone).unwrap();
    let err =
        redis::cmd("SENTINEL").arg("ckquorum").arg(ha::MASTER).query::<String>(&mut c).unwrap_err();
    let err = err.to_string();
    assert!(err.contains("NOQUORUM") && err.contains("1 usable Sentinels"), "{err}");
}

#[test]
fn a_leader_that_dies_right_after_starting_the_failover_is_replaced_and_the_failover_completes_once(
) {
    leader_crash_after_election(NodeKind::Redis);
}

#[test]
fn a_leader_crash_after_election_warden_nodes() {
    leader_crash_after_election(NodeKind::Warden);
}

fn leader_crash_after_election(kind: NodeKind) {
    let mut group = Group::start(kind, 2, 3, DOWN_AFTER);
    let old = group.nodes[0].port;
    let replicas: Vec<u16> = group.nodes[1..].iter().map(|n| n.port).collect();
    let leader = wait::until("a raft leader", Duration::from_secs(10), || group.leader());
    {
        let mut c = ha::connect(group.supervisors[leader].port).unwrap();
        let _: () = redis::cmd("SENTINEL")
            .arg("simulate-failure")
            .arg("crash-after-election")
            .query(&mut c)
            .unwrap();
    }
    group.node(old).proc.kill();
    let status =
        group.supervisors[leader].proc.wait_exit(Duration::from_secs(20)).expect("it was running");
    assert_eq!(status.code(), Some(99), "the leader crashed at the injected point");
    let new = wait_all_answer(&group, "the surviving supervisors to finish the failover", |p| {
        replicas.contains(&p)
    });
    assert_eq!(role(new).unwrap(), "master");
    for (i, s) in group.supervisors.iter().enumerate() {
        if i == leader {
            continue;
        }
        wait::until("failover to end", Duration::from_secs(20), || {
            let flags = sentinel_field(s.port, "flags")?;
            if flags == "master" {
                Ok(())
            } else {
                Err(flags)
            }
        });
        assert_eq!(
            sentinel_field(s.port, "config-epoch").unwrap(),
            "1",
            "resumed epoch 1, not a second failover"
        );
    }
    let promoted: usize = replicas.iter().filter(|p| role(**p).unwrap() == "master").count();
    assert_eq!(promoted, 1, "exactly one replica was promoted");
    // The crashed supervisor restarts from its log and agrees.
    group.supervisors[leader].proc.restart();
    wait_all_answer(&group, "the restarted supervisor to agree", |p| p == new);
    // Every supervisor killed and restarted at once: the committed state, not the config file
    // (which still names the old master), is the truth, and nothing happens twice.
    for s in &mut group.supervisors {
        s.proc.kill();
    }
    for s in &mut group.supervisors {
        s.proc.restart();
    }
    wait_all_answer(&group, "the whole restarted group to answer the new master", |p| p == new);
    for s in &group.supervisors {
        assert_eq!(sentinel_field(s.port, "config-epoch").unwrap(), "1");
    }
    assert_eq!(role(new).unwrap(), "master");
}

#[test]
fn a_leader_that_dies_right_after_the_promotion_leaves_the_rest_to_its_successor() {
    let mut group = Group::start(NodeKind::Redis, 2, 3, DOWN_AFTER);
    let old = group.nodes[0].port;
    let replicas: Vec<u16> = group.nodes[1..].iter().map(|n| n.port).collect();
    let leader = wait::until("a raft leader", Duration::from_secs(10), || group.leader());
    {
        let mut c = ha::connect(group.supervisors[leader].port).unwrap();
        let _: () = redis::cmd("SENTINEL")
            .arg("simulate-failure")
            .arg("crash-after-promotion")
            .query(&mut c)
            .unwrap();
    }
    group.node(old).proc.kill();
    let status =
        group.supervisors[leader].proc.wait_exit(Duration::from_secs(20)).expect("it was running");
    assert_eq!(status.code(), Some(99));
    let new = wait_all_answer(&group, "the survivors to answer the promoted replica", |p| {
        replicas.contains(&p)
    });
    let other = *replicas.iter().find(|p| **p != new).unwrap();
    wait::until("the new leader to re-point the other replica", Duration::from_secs(20), || {
        let info = node_info(other)?;
        match (field(&info, "master_port"), field(&info, "master_link_status")) {
            (Some(p), Some(l)) if p == new.to_string() && l == "up" => Ok(()),
            state => Err(format!("{state:?}")),
        }
    });
    let promotions: usize = group
        .supervisors
        .iter()
        .map(|s| s.proc.log().matches("sent REPLICAOF NO ONE").count())
        .sum();
    assert_eq!(promotions, 1, "the successor did not promote anything again");
}

#[test]
fn a_paused_supervisor_enters_tilt_instead_of_calling_healthy_nodes_down() {
    let group = Group::start(NodeKind::Redis, 1, 3, DOWN_AFTER);
    let paused = &group.supervisors[0];
    paused.proc.signal(libc::SIGSTOP);
    // The fault: the process is frozen for longer than down-after (not a synchronisation).
    std::thread::sleep(Duration::from_millis(DOWN_AFTER + 500));
    paused.proc.signal(libc::SIGCONT);
    wait::until("the resumed supervisor to enter and leave TILT", Duration::from_secs(10), || {
        let log = paused.proc.log();
        if log.contains("+tilt #tilt mode entered") && log.contains("-tilt #tilt mode exited") {
            Ok(())
        } else {
            Err("no -tilt yet")
        }
    });
    assert!(!paused.proc.log().contains("+sdown"), "a stall of our own is not a node failure");
    for s in &group.supervisors {
        assert_eq!(sentinel_field(s.port, "config-epoch").unwrap(), "0", "no failover happened");
    }
    assert_eq!(group.answers().unwrap(), vec![group.nodes[0].port; 3]);
}

#[test]
fn a_raft_leader_cut_off_from_the_other_supervisors_never_touches_a_node() {
    let mut group = Group::start_with(NodeKind::Redis, 2, 3, DOWN_AFTER, true);
    let old = group.nodes[0].port;
    let replicas: Vec<u16> = group.nodes[1..].iter().map(|n| n.port).collect();
    let leader = wait::until("a raft leader", Duration::from_secs(10), || group.leader());
    let cut_off = group.supervisors[leader].id;
    group.isolate(cut_off);
    // The master dies while its supervisor-leader is partitioned from the other two (it can
    // still see the nodes).
    group.node(old).proc.kill();
    let majority: Vec<u16> =
        group.supervisors.iter().filter(|s| s.id != cut_off).map(|s| s.port).collect();
    let new = wait::until("the majority to fail over", Duration::from_secs(20), || {
        let answers: Vec<u16> =
            majority.iter().map(|p| master_addr(*p).map(|a| a.1)).collect::<Result<_, _>>()?;
        if answers.iter().all(|a| replicas.contains(a)) && answers[0] == answers[1] {
            Ok(answers[0])
        } else {
            Err(format!("{answers:?}"))
        }
    });
    let other = *replicas.iter().find(|p| **p != new).unwrap();
    wait::until("the other replica to follow the new master", Duration::from_secs(20), || {
        let info = node_info(other)?;
        match (field(&info, "master_port"), field(&info, "master_link_status")) {
            (Some(p), Some(l)) if p == new.to_string() && l == "up" => Ok(()),
            state => Err(format!("{state:?}")),
        }
    });
    // The cut-off supervisor decided nothing and sent nothing to any node.
    let isolated = &group.supervisors[leader];
    assert_eq!(master_addr(isolated.port).unwrap().1, old, "it has no newer committed state");
    let log = isolated.proc.log();
    assert!(!log.contains("sent REPLICAOF") && !log.contains("BGSAVE"), "{log}");
    // Healed, it catches up from the log and agrees; the failover happened exactly once.
    group.heal();
    wait_all_answer(&group, "the healed supervisor to catch up", |p| p == new);
    for s in &group.supervisors {
        assert_eq!(sentinel_field(s.port, "config-epoch").unwrap(), "1");
    }
    assert_eq!(count_in_log(&group, "sent REPLICAOF NO ONE").iter().sum::<usize>(), 1);
}

#[test]
fn a_group_restarted_after_the_master_died_still_fails_over_on_committed_lineage() {
    let mut group = Group::start(NodeKind::Redis, 2, 3, DOWN_AFTER);
    let old = group.nodes[0].port;
    let replicas: Vec<u16> = group.nodes[1..].iter().map(|n| n.port).collect();
    let replid = field(&node_info(old).unwrap(), "master_replid").unwrap();
    for s in &group.supervisors {
        wait::until("the master's replication id to be committed", Duration::from_secs(10), || {
            let info = ha::node_info_section(s.port, "sentinel")?;
            match field(&info, "warden_master0_replids") {
                Some(ids) if ids.split(',').any(|id| id == replid) => Ok(()),
                other => Err(format!("{other:?}")),
            }
        });
    }
    // Every supervisor goes down; the master dies while none is watching; they come back
    // without any observation of the master, only their logs.
    for s in &mut group.supervisors {
        s.proc.kill();
    }
    group.node(old).proc.kill();
    for s in &mut group.supervisors {
        s.proc.restart();
    }
    let new =
        wait_all_answer(&group, "the restarted group to fail over", |p| replicas.contains(&p));
    assert_eq!(role(new).unwrap(), "master");
    for s in &group.supervisors {
        assert_eq!(sentinel_field(s.port, "config-epoch").unwrap(), "1");
    }
}
