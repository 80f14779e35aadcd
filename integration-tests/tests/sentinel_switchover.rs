//! `SENTINEL SWITCHOVER` across processes: three warden-sentinel supervisors and data nodes
//! (warden-node, and Debian's redis-server 7.0 where noted). A switchover moves a healthy
//! master without losing an acknowledged write: writes pause on the master until the target
//! caught up, the target is promoted, and the old master is demoted while still paused.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use integration_tests::ha::{
    self, field, node_info, replica_fields, sentinel_field, Group, NodeKind, MASTER,
};
use integration_tests::{bin_dir, wait};

/// Sends `SENTINEL SWITCHOVER mymaster <options…>` and returns `+OK` or the error line.
fn sentinel_switchover(port: u16, options: &[&str]) -> Result<String, String> {
    let mut c = ha::connect(port)?;
    c.set_read_timeout(Some(Duration::from_secs(10))).map_err(|e| e.to_string())?;
    match redis::cmd("SENTINEL").arg("switchover").arg(MASTER).arg(options).query::<String>(&mut c)
    {
        Ok(ok) => Ok(format!("+{ok}")),
        Err(e) => Ok(format!("-{} {}", e.code().unwrap_or("?"), e.detail().unwrap_or_default())),
    }
}

/// The last record of `SENTINEL HISTORY mymaster` on a supervisor, as key → value.
fn last_history(port: u16) -> Result<BTreeMap<String, String>, String> {
    let mut c = ha::connect(port)?;
    let records: Vec<Vec<String>> = redis::cmd("SENTINEL")
        .arg("history")
        .arg(MASTER)
        .query(&mut c)
        .map_err(|e| e.to_string())?;
    let last = records.last().ok_or("no history")?;
    Ok(last.chunks(2).map(|kv| (kv[0].clone(), kv[1].clone())).collect())
}

/// Every supervisor answers `master`, has no failover in flight, and `master` is master with
/// every other data node following it with its link up.
fn settled_on(group: &Group, master: u16) -> Result<(), String> {
    let answers = group.answers()?;
    if answers.iter().any(|a| *a != master) {
        return Err(format!("supervisors answer {answers:?}"));
    }
    for s in &group.supervisors {
        let flags = sentinel_field(s.port, "flags")?;
        if flags.contains("failover_in_progress") {
            return Err(format!("supervisor {} flags {flags}", s.id));
        }
        // The next switchover is checked against what the supervisors last saw of each
        // replica, so they must have seen the replicas follow the new master.
        let following = replica_fields(s.port, "master-port")?;
        if following.len() != group.nodes.len() - 1
            || following.iter().any(|p| *p != master.to_string())
        {
            return Err(format!("supervisor {} sees replicas following {following:?}", s.id));
        }
    }
    nodes_settled_on(group, master)
}

/// The nodes alone (not what the supervisors saw yet): `master` is a master and every other
/// node follows it with its link up.
fn nodes_settled_on(group: &Group, master: u16) -> Result<(), String> {
    for n in &group.nodes {
        let info = node_info(n.port)?;
        let role = field(&info, "role").unwrap_or_default();
        if n.port == master {
            if role != "master" {
                return Err(format!("{} is {role}", n.port));
            }
            continue;
        }
        let following = field(&info, "master_port").unwrap_or_default();
        let link = field(&info, "master_link_status").unwrap_or_default();
        if role != "slave" || following != master.to_string() || link != "up" {
            return Err(format!("{}: {role} of {following}, link {link}", n.port));
        }
    }
    Ok(())
}

/// What the writer thread saw acknowledged.
#[derive(Default)]
struct Acked {
    /// `SET k<i> v<i>` acknowledged, by i.
    sets: Vec<u64>,
    /// The highest `INCR counter` reply.
    max_incr: i64,
    /// Acknowledgements by master port.
    by_master: BTreeMap<u16, u64>,
}

/// A client thread that writes continuously to whatever the supervisors call the master,
/// rediscovering it after any error (the switchover drops its connections), and records every
/// write the server acknowledged.
struct Writer {
    stop: Arc<AtomicBool>,
    acked: Arc<Mutex<Acked>>,
    errors: Arc<AtomicU64>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Writer {
    fn start(supervisors: Vec<u16>) -> Writer {
        let stop = Arc::new(AtomicBool::new(false));
        let acked = Arc::new(Mutex::new(Acked::default()));
        let errors = Arc::new(AtomicU64::new(0));
        let (s, a, e) = (stop.clone(), acked.clone(), errors.clone());
        let thread = std::thread::spawn(move || {
            let mut i = 0u64;
            let mut which = 0usize;
            while !s.load(Ordering::SeqCst) {
                which += 1;
                let Ok((_, port)) = ha::master_addr(supervisors[which % supervisors.len()]) else {
                    e.fetch_add(1, Ordering::SeqCst);
                    continue;
                };
                let Ok(mut c) = ha::connect(port) else {
                    e.fetch_add(1, Ordering::SeqCst);
                    continue;
                };
                while !s.load(Ordering::SeqCst) {
                    i += 1;
                    let set: redis::RedisResult<String> =
                        redis::cmd("SET").arg(format!("k{i}")).arg(format!("v{i}")).query(&mut c);
                    if set.is_err() {
                        e.fetch_add(1, Ordering::SeqCst);
                        break;
                    }
                    let incr: redis::RedisResult<i64> =
                        redis::cmd("INCR").arg("counter").query(&mut c);
                    let mut acked = a.lock().expect("the writer's lock");
                    acked.sets.push(i);
                    *acked.by_master.entry(port).or_default() += 1;
                    match incr {
                        Ok(n) => {
                            acked.max_incr = acked.max_incr.max(n);
                            *acked.by_master.entry(port).or_default() += 1;
                        }
                        Err(_) => {
                            e.fetch_add(1, Ordering::SeqCst);
                            break;
                        }
                    }
                }
            }
        });
        Writer { stop, acked, errors, thread: Some(thread) }
    }

    fn acked_on(&self, port: u16) -> u64 {
        self.acked.lock().expect("the writer's lock").by_master.get(&port).copied().unwrap_or(0)
    }

    fn finish(mut self) -> Acked {
        self.stop.store(true, Ordering::SeqCst);
        self.thread.take().expect("started").join().expect("the writer thread");
        std::mem::take(&mut *self.acked.lock().expect("the writer's lock"))
    }
}

/// Every acknowledged write is on `port`: each acknowledged `SET`, and a counter at least as
/// high as the highest acknowledged `INCR`.
fn check_every_acked_write(port: u16, acked: &Acked) {
    let mut c = ha::connect(port).expect("connecting to the new master");
    let mut missing = Vec::new();
    for chunk in acked.sets.chunks(500) {
        let keys: Vec<String> = chunk.iter().map(|i| format!("k{i}")).collect();
        let values: Vec<Option<String>> =
            redis::cmd("MGET").arg(&keys).query(&mut c).expect("MGET on the new master");
        for (i, v) in chunk.iter().zip(values) {
            if v.as_deref() != Some(format!("v{i}").as_str()) {
                missing.push((*i, v));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "{} acknowledged SETs lost: {:?}",
        missing.len(),
        &missing[..missing.len().min(20)]
    );
    let counter: i64 = redis::cmd("GET").arg("counter").query(&mut c).expect("GET counter");
    assert!(counter >= acked.max_incr, "counter {counter} < acknowledged INCR {}", acked.max_incr);
}

fn switchover_under_writes_loses_nothing(kind: NodeKind) {
    let group = Group::start(kind, 2, 3, 1000);
    let t0 = Instant::now();
    let phase = |what: &str| eprintln!("[{:>6} ms] {what}", t0.elapsed().as_millis());
    let old = group.nodes[0].port;
    let writer = Writer::start(group.supervisors.iter().map(|s| s.port).collect());
    wait::until("writes acknowledged by the old master", Duration::from_secs(20), || match writer
        .acked_on(old)
    {
        n if n >= 500 => Ok(()),
        n => Err(n),
    });
    phase("writing");
    let leader = wait::until("a raft leader", Duration::from_secs(10), || group.leader());
    let follower = &group.supervisors[(leader + 1) % group.supervisors.len()];
    assert_eq!(sentinel_switchover(follower.port, &[]).unwrap(), "+OK");
    let new =
        wait::until("every supervisor to report the new master", Duration::from_secs(20), || {
            let answers = group.answers()?;
            match answers.first() {
                Some(first) if *first != old && answers.iter().all(|a| a == first) => Ok(*first),
                _ => Err(format!("answers {answers:?}")),
            }
        });
    phase("switched");
    wait::until("the topology to settle on the new master", Duration::from_secs(30), || {
        settled_on(&group, new)
    });
    phase("settled");
    // Clients found the new master and write there.
    let before = writer.acked_on(new);
    wait::until("writes acknowledged by the new master", Duration::from_secs(20), || match writer
        .acked_on(new)
    {
        n if n >= before + 200 => Ok(()),
        n => Err(n),
    });
    let errors = writer.errors.load(Ordering::SeqCst);
    let acked = writer.finish();
    phase(&format!("{} SETs acknowledged, {errors} client errors", acked.sets.len()));
    check_every_acked_write(new, &acked);

    // The old master is a replica, and no longer paused: a write is refused at once, not held.
    let mut c = ha::connect(old).unwrap();
    let started = Instant::now();
    let err = redis::cmd("SET").arg("after").arg("x").query::<String>(&mut c).unwrap_err();
    assert_eq!(err.code(), Some("READONLY"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(1), "the old master held the write");
    // The history says it was a switchover, on every supervisor; one epoch was used.
    for s in &group.supervisors {
        let h = last_history(s.port).unwrap();
        assert_eq!(h["reason"], "switchover", "supervisor {}: {h:?}", s.id);
        assert_eq!(h["outcome"], "ended", "supervisor {}: {h:?}", s.id);
        assert_eq!(
            (h["from"].as_str(), h["to"].as_str()),
            (format!("127.0.0.1:{old}").as_str(), format!("127.0.0.1:{new}").as_str())
        );
        assert_eq!(sentinel_field(s.port, "config-epoch").unwrap(), "1");
        let switches = s.proc.log().lines().filter(|l| l.contains("+switch-master")).count();
        assert_eq!(switches, 1, "supervisor {}", s.id);
    }
}

#[test]
fn a_switchover_under_continuous_writes_loses_no_acknowledged_write() {
    switchover_under_writes_loses_nothing(NodeKind::Warden);
}

#[test]
fn a_switchover_of_redis_nodes_under_continuous_writes_loses_no_acknowledged_write() {
    switchover_under_writes_loses_nothing(NodeKind::Redis);
}

fn wardenctl(port: u16, args: &[&str]) -> (bool, String, String) {
    let out = std::process::Command::new(bin_dir().join("wardenctl"))
        .arg("-p")
        .arg(port.to_string())
        .args(args)
        .output()
        .expect("running wardenctl");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn wardenctl_switchover_to_moves_the_master_to_the_named_replica() {
    let group = Group::start(NodeKind::Warden, 2, 3, 1000);
    let old = group.nodes[0].port;
    let sup = group.supervisors[0].port;
    // Not a replica of the master: an error that says so, and nothing moves.
    let (ok, _, err) = wardenctl(sup, &["switchover", MASTER, "--to", &format!("127.0.0.1:{sup}")]);
    assert!(!ok);
    assert!(err.contains(&format!("127.0.0.1:{sup} is not a replica of {MASTER}")), "{err}");
    let reply = sentinel_switchover(sup, &["TO", "127.0.0.1", &sup.to_string()]).unwrap();
    assert_eq!(reply, format!("-ERR 127.0.0.1:{sup} is not a replica of {MASTER}"));
    let reply = sentinel_switchover(sup, &["TO", "127.0.0.1"]).unwrap();
    assert!(reply.starts_with("-ERR syntax error at 'TO'"), "{reply}");
    let (ok, _, err) = wardenctl(sup, &["switchover", MASTER, "--to", "localhost"]);
    assert!(!ok && err.contains("--to wants ip:port"), "{err}");
    // Each replica in turn, by name: the move lands exactly there.
    for (epoch, target) in [(1, group.nodes[2].port), (2, group.nodes[1].port)] {
        let (ok, out, err) = wardenctl(
            sup,
            &[
                "--json",
                "switchover",
                MASTER,
                "--to",
                &format!("127.0.0.1:{target}"),
                "--timeout",
                "5000",
            ],
        );
        assert!(ok, "wardenctl failed: {out}{err}");
        assert!(out.contains(&format!("\"new_master\": \"127.0.0.1:{target}\"")), "{out}");
        assert!(out.contains(&format!("\"config_epoch\": {epoch}")), "{out}");
        wait::until("the topology to settle on the target", Duration::from_secs(30), || {
            settled_on(&group, target)
        });
    }
    let h = last_history(sup).unwrap();
    assert_eq!(h["reason"], "switchover", "{h:?}");
    assert_eq!(h["from"], format!("127.0.0.1:{}", group.nodes[2].port));
    assert_eq!(h["to"], format!("127.0.0.1:{}", group.nodes[1].port));
    // The first master was demoted by the first move and follows the second target now.
    assert_eq!(field(&node_info(old).unwrap(), "role").as_deref(), Some("slave"));
}

#[test]
fn a_target_that_cannot_catch_up_aborts_and_the_master_keeps_taking_writes() {
    // A long down-after: the stopped replica still looks reachable when the request arrives,
    // so the switchover starts and then has to give up.
    let mut group = Group::start(NodeKind::Warden, 1, 3, 3000);
    let master = group.nodes[0].port;
    let target = group.nodes[1].port;
    let sup = group.supervisors[0].port;
    let mut c = ha::connect(master).unwrap();
    let _: () = redis::cmd("SET").arg("before").arg("1").query(&mut c).unwrap();
    group.node(target).proc.signal(libc::SIGSTOP);
    // Through wardenctl, which follows the switchover and reports the abort with its reason.
    let (ok, out, err) = wardenctl(
        sup,
        &[
            "--json",
            "switchover",
            MASTER,
            "--to",
            &format!("127.0.0.1:{target}"),
            "--timeout",
            "1500",
        ],
    );
    assert!(!ok, "{out}{err}");
    assert!(out.contains("\"ok\": false"), "{out}");
    assert!(
        out.contains("the switchover was aborted (aborted-catch-up-timeout)")
            && out.contains(&format!("the master is still 127.0.0.1:{master}")),
        "{out}"
    );
    let h = last_history(sup).unwrap();
    assert_eq!(h["outcome"], "aborted-catch-up-timeout", "{h:?}");
    assert_eq!(h["reason"], "switchover", "{h:?}");
    // Nothing moved, and the master is unpaused: writes are acknowledged at once.
    for s in &group.supervisors {
        assert_eq!(ha::master_addr(s.port).unwrap().1, master, "supervisor {}", s.id);
        assert!(s.proc.log().contains("-failover-abort-catch-up-timeout"), "supervisor {}", s.id);
    }
    assert_eq!(field(&node_info(master).unwrap(), "role").as_deref(), Some("master"));
    let started = Instant::now();
    let _: () = redis::cmd("SET").arg("after").arg("2").query(&mut c).unwrap();
    assert!(started.elapsed() < Duration::from_secs(1), "the write was held by a pause");
    // The replica resumes and catches up with the master it never left.
    group.node(target).proc.signal(libc::SIGCONT);
    wait::until("the replica to have the later write", Duration::from_secs(20), || {
        let mut r = ha::connect(target)?;
        let v: Option<String> =
            redis::cmd("GET").arg("after").query(&mut r).map_err(|e| e.to_string())?;
        if v.as_deref() == Some("2") {
            Ok(())
        } else {
            Err(format!("{v:?}"))
        }
    });
    wait::until("the group to stay on the master", Duration::from_secs(10), || {
        settled_on(&group, master)
    });
}
