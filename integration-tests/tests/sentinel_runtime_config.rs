//! Runtime configuration through the Raft log, across processes: three warden-sentinel
//! supervisors; `SENTINEL MONITOR/SET/CONFIG SET/RESET/REMOVE` sent to one supervisor (often a
//! follower) are committed once and read back on every supervisor; the monitor picks up a
//! master added at run time, and its password set at run time; refusals are Sentinel's lines.

use std::time::Duration;

use integration_tests::ha::{self, sentinel_reply, Group, NodeKind};
use integration_tests::nodes::{Kind, Node};
use integration_tests::{bin_dir, wait};

/// One field of `SENTINEL MASTER <name>` on a supervisor.
fn master_field(port: u16, name: &str, key: &str) -> Result<String, String> {
    let mut c = ha::connect(port)?;
    let map: Vec<String> =
        redis::cmd("SENTINEL").arg("master").arg(name).query(&mut c).map_err(|e| e.to_string())?;
    map.chunks(2)
        .find(|kv| kv[0] == key)
        .map(|kv| kv[1].clone())
        .ok_or_else(|| format!("no field {key} in {map:?}"))
}

fn on_every(group: &Group, what: &str, probe: impl Fn(u16) -> Result<(), String>) {
    wait::until(what, Duration::from_secs(15), || {
        for s in &group.supervisors {
            probe(s.port).map_err(|e| format!("supervisor {}: {e}", s.id))?;
        }
        Ok::<(), String>(())
    });
}

#[test]
fn configuration_changed_on_one_supervisor_is_committed_once_and_read_on_all() {
    let mut group = Group::start(NodeKind::Warden, 1, 3, 2000);
    let leader = wait::until("a raft leader", Duration::from_secs(10), || group.leader());
    let follower = group.supervisors[(leader + 1) % 3].port;
    let other = group.supervisors[(leader + 2) % 3].port;
    // A second master that needs a password.
    let m2 = Node::start(Kind::Warden, "m2", &["--requirepass", "s3cret-pw"]);
    let port = m2.port.to_string();
    // An operator follows the event stream of a third supervisor meanwhile. (It exits by
    // itself when that supervisor stops, should the test fail before it is killed.)
    let events_dir = tempfile::tempdir().unwrap();
    let events_path = events_dir.path().join("events.jsonl");
    let said_path = events_dir.path().join("stderr");
    let mut events = std::process::Command::new(bin_dir().join("wardenctl"))
        .args(["-p", &group.supervisors[leader].port.to_string(), "--json", "events"])
        .stdout(std::fs::File::create(&events_path).unwrap())
        .stderr(std::fs::File::create(&said_path).unwrap())
        .spawn()
        .expect("starting wardenctl events");
    wait::until("wardenctl events to subscribe", Duration::from_secs(10), || {
        let said = std::fs::read_to_string(&said_path).map_err(|e| e.to_string())?;
        if said.contains("following the events of") {
            Ok(())
        } else {
            Err(said)
        }
    });

    let monitor = ["SENTINEL", "MONITOR", "m2", "127.0.0.1", &port, "2"];
    assert_eq!(sentinel_reply(follower, &monitor).unwrap(), "+OK");
    assert_eq!(sentinel_reply(other, &monitor).unwrap(), "-ERR Duplicate master name.");
    assert_eq!(
        sentinel_reply(other, &["SENTINEL", "MONITOR", "m3", "127.0.0.1", &port, "0"]).unwrap(),
        "-ERR Quorum must be 1 or greater."
    );
    // Every supervisor watches it at once; without the password INFO is refused, so no run id.
    on_every(&group, "every supervisor to monitor m2", |p| {
        let flags = master_field(p, "m2", "flags")?;
        if flags.contains("disconnected") {
            return Err(format!("flags {flags}"));
        }
        Ok(())
    });
    assert_eq!(master_field(follower, "m2", "runid").unwrap(), "");
    wait::until("the +monitor event in wardenctl events", Duration::from_secs(10), || {
        let text = std::fs::read_to_string(&events_path).map_err(|e| e.to_string())?;
        let want =
            format!("\"event\":\"+monitor\",\"message\":\"master m2 127.0.0.1 {port} quorum 2\"");
        if text.lines().any(|l| l.contains(&want)) {
            Ok(())
        } else {
            Err(text)
        }
    });

    let set = [
        "SENTINEL",
        "SET",
        "m2",
        "down-after-milliseconds",
        "1500",
        "quorum",
        "1",
        "parallel-syncs",
        "2",
        "auth-pass",
        "s3cret-pw",
    ];
    assert_eq!(sentinel_reply(other, &set).unwrap(), "+OK");
    // All-or-nothing: a bad value anywhere changes nothing.
    assert_eq!(
        sentinel_reply(
            follower,
            &["SENTINEL", "SET", "m2", "failover-timeout", "9000", "quorum", "0"]
        )
        .unwrap(),
        "-ERR Invalid argument '0' for SENTINEL SET 'quorum'"
    );
    on_every(&group, "the settings on every supervisor, and the monitor using the password", |p| {
        let got = (
            master_field(p, "m2", "down-after-milliseconds")?,
            master_field(p, "m2", "quorum")?,
            master_field(p, "m2", "parallel-syncs")?,
            master_field(p, "m2", "failover-timeout")?,
        );
        if got != ("1500".into(), "1".into(), "2".into(), "180000".into()) {
            return Err(format!("{got:?}"));
        }
        // INFO succeeded with the committed password: the run id is known.
        if master_field(p, "m2", "runid")?.is_empty() {
            return Err("no run id yet: INFO not authenticated".into());
        }
        Ok(())
    });
    wait::until("the +set events in wardenctl events", Duration::from_secs(10), || {
        let text = std::fs::read_to_string(&events_path).map_err(|e| e.to_string())?;
        if text.contains(&format!("master m2 127.0.0.1 {port} auth-pass ******"))
            && text.contains(&format!("master m2 127.0.0.1 {port} quorum 1"))
        {
            Ok(())
        } else {
            Err(text)
        }
    });
    let _ = events.kill();
    let _ = events.wait();
    assert!(!std::fs::read_to_string(&events_path).unwrap().contains("s3cret-pw"));
    for s in &group.supervisors {
        let mut c = ha::connect(s.port).unwrap();
        let all: Vec<Vec<String>> = redis::cmd("SENTINEL").arg("masters").query(&mut c).unwrap();
        assert!(!format!("{all:?}").contains("s3cret-pw"), "SENTINEL MASTERS shows the password");
        assert!(!s.proc.log().contains("s3cret-pw"), "supervisor {} logged the password", s.id);
        assert!(s.proc.log().contains("+set master m2 127.0.0.1"), "supervisor {}", s.id);
    }

    // The committed settings outlive a supervisor: killed and restarted, it reads them back from
    // its Raft store (its config file knows nothing of m2), password included.
    let restarted = (leader + 2) % 3;
    group.supervisors[restarted].proc.restart();
    let port_restarted = group.supervisors[restarted].port;
    wait::until("the restarted supervisor to know m2 as set", Duration::from_secs(20), || {
        let got = (
            master_field(port_restarted, "m2", "quorum")?,
            master_field(port_restarted, "m2", "down-after-milliseconds")?,
        );
        if got != ("1".into(), "1500".into()) {
            return Err(format!("{got:?}"));
        }
        if master_field(port_restarted, "m2", "runid")?.is_empty() {
            return Err("no run id yet: INFO not authenticated".into());
        }
        // Back in the group (the requests below need a working majority on it).
        let server = ha::node_info_section(port_restarted, "server")?;
        match ha::field(&server, "raft_leader").as_deref() {
            None | Some("0") => Err("no raft leader known yet".into()),
            Some(_) => Ok(()),
        }
    });

    // ARCHITECTURE.md: no secret on disk. The Raft store holds the password sealed under the
    // group secret (the restarted supervisor above opened it); its bytes appear in no file.
    for s in &group.supervisors {
        let mut pending = vec![s.proc.dir().to_path_buf()];
        let mut files = 0;
        while let Some(path) = pending.pop() {
            if path.is_dir() {
                pending.extend(std::fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
            } else if let Ok(bytes) = std::fs::read(&path) {
                files += 1;
                let plain = bytes.windows(9).any(|w| w == b"s3cret-pw");
                assert!(!plain, "{} holds the password in clear", path.display());
            }
        }
        assert!(files > 0, "no files under {}", s.proc.dir().display());
    }

    // Global settings: resolve-hostnames is the group's; announce-port the asked supervisor's.
    assert_eq!(
        sentinel_reply(follower, &["SENTINEL", "CONFIG", "SET", "resolve-hostnames", "yes"])
            .unwrap(),
        "+OK"
    );
    on_every(&group, "resolve-hostnames on every supervisor", |p| {
        let mut c = ha::connect(p)?;
        let got: Vec<String> = redis::cmd("SENTINEL")
            .arg("config")
            .arg("get")
            .arg("resolve-hostnames")
            .query(&mut c)
            .map_err(|e| e.to_string())?;
        if got == ["resolve-hostnames", "yes"] {
            Ok(())
        } else {
            Err(format!("{got:?}"))
        }
    });
    assert_eq!(
        sentinel_reply(other, &["SENTINEL", "CONFIG", "SET", "announce-port", "70000"]).unwrap(),
        "-ERR Invalid value '70000' to SENTINEL CONFIG SET 'announce-port'"
    );

    // RESET counts the masters matched; REMOVE stops monitoring everywhere.
    assert_eq!(sentinel_reply(other, &["SENTINEL", "RESET", "m2"]).unwrap(), ":1");
    assert_eq!(sentinel_reply(follower, &["SENTINEL", "RESET", "nomatch*"]).unwrap(), ":0");
    assert_eq!(sentinel_reply(follower, &["SENTINEL", "REMOVE", "m2"]).unwrap(), "+OK");
    on_every(&group, "m2 gone from every supervisor", |p| {
        match sentinel_reply(p, &["SENTINEL", "MASTER", "m2"])?.as_str() {
            "-ERR No such master with that name" => Ok(()),
            other => Err(other.to_string()),
        }
    });
    assert_eq!(
        sentinel_reply(other, &["SENTINEL", "REMOVE", "m2"]).unwrap(),
        "-ERR No such master with that name"
    );
    // Two operators monitor the same new name at once on two supervisors: one entry wins, the
    // other is told the name is taken; every supervisor agrees on the winner.
    let racers: Vec<String> = [(follower, 7001u16), (other, 7002u16)]
        .into_iter()
        .map(|(p, target)| {
            std::thread::spawn(move || {
                let t = target.to_string();
                sentinel_reply(p, &["SENTINEL", "MONITOR", "raced", "127.0.0.1", &t, "2"]).unwrap()
            })
        })
        .collect::<Vec<_>>()
        .into_iter()
        .map(|h| h.join().unwrap())
        .collect();
    let mut sorted = racers.clone();
    sorted.sort();
    assert_eq!(sorted, ["+OK", "-ERR Duplicate master name."], "{racers:?}");
    let winner = if racers[0] == "+OK" { "7001" } else { "7002" };
    on_every(&group, "every supervisor to agree on the winner", |p| {
        let got = master_field(p, "raced", "port")?;
        if got == winner {
            Ok(())
        } else {
            Err(got)
        }
    });

    // The bootstrap master is untouched.
    assert!(ha::master_addr(follower).is_ok());
}
