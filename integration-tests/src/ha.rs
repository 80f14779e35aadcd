//! A high-availability group on loopback for the supervisor scenarios: data nodes (one master,
//! replicas) and warden-sentinel supervisors, each a [`Proc`] with its own directory and log.

use std::path::PathBuf;
use std::time::Duration;

use crate::proxy::Proxy;
use crate::{bin_dir, ports, process::Proc, wait};

/// Which data server the nodes run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeKind {
    /// Debian's `redis-server`.
    Redis,
    /// warden-node.
    Warden,
}

/// A data node.
pub struct Node {
    /// Its port.
    pub port: u16,
    /// The process.
    pub proc: Proc,
}

/// A supervisor.
pub struct Supervisor {
    /// Its raft id.
    pub id: u64,
    /// Sentinel protocol port.
    pub port: u16,
    /// The port its raft transport listens on.
    pub raft_port: u16,
    /// The process.
    pub proc: Proc,
}

/// The whole group.
pub struct Group {
    /// `nodes[0]` starts as master.
    pub nodes: Vec<Node>,
    /// Idle nodes in the master's spare pool (`sentinel spare`), with failover-strategy spare;
    /// empty unless started with [`Group::start_with_spares`].
    pub spares: Vec<Node>,
    /// The supervisors.
    pub supervisors: Vec<Supervisor>,
    /// The shared settings (each supervisor reads its own copy, which differs only in how it
    /// reaches its peers).
    pub config: PathBuf,
    /// Supervisor-to-supervisor links, `(from, to)`, when started with proxies.
    links: Vec<((u64, u64), Proxy)>,
    _conf_dir: tempfile::TempDir,
}

/// The master name the group monitors.
pub const MASTER: &str = "mymaster";

fn node_program(kind: NodeKind) -> PathBuf {
    match kind {
        NodeKind::Redis => PathBuf::from("redis-server"),
        NodeKind::Warden => bin_dir().join("warden-node"),
    }
}

/// Opens a connection with short timeouts.
pub fn connect(port: u16) -> Result<redis::Connection, String> {
    let client =
        redis::Client::open(format!("redis://127.0.0.1:{port}/")).map_err(|e| e.to_string())?;
    let conn = client
        .get_connection_with_timeout(Duration::from_millis(500))
        .map_err(|e| e.to_string())?;
    conn.set_read_timeout(Some(Duration::from_secs(2))).map_err(|e| e.to_string())?;
    Ok(conn)
}

impl Group {
    /// Starts `replicas + 1` nodes and `supervisors` supervisors (quorum 2), and waits until
    /// every supervisor knows the master and its replicas.
    pub fn start(kind: NodeKind, replicas: usize, supervisors: u64, down_after_ms: u64) -> Group {
        Group::start_with(kind, replicas, supervisors, down_after_ms, false)
    }

    /// As [`Group::start`], plus `spares` idle nodes (standalone masters, no data) that form
    /// the master's spare pool, with `sentinel failover-strategy spare`.
    pub fn start_with_spares(
        kind: NodeKind,
        replicas: usize,
        spares: usize,
        supervisors: u64,
        down_after_ms: u64,
    ) -> Group {
        Group::start_retrying(|| {
            Group::try_start(kind, replicas, spares, supervisors, down_after_ms, false)
        })
    }

    /// As [`Group::start`]; with `proxied`, every supervisor-to-supervisor link goes through
    /// its own [`Proxy`], so a test can cut supervisors apart ([`Group::isolate`]).
    pub fn start_with(
        kind: NodeKind,
        replicas: usize,
        supervisors: u64,
        down_after_ms: u64,
        proxied: bool,
    ) -> Group {
        Group::start_retrying(|| {
            Group::try_start(kind, replicas, 0, supervisors, down_after_ms, proxied)
        })
    }

    fn start_retrying(mut start: impl FnMut() -> Result<Group, String>) -> Group {
        // A port probed free can still be taken before the process binds it (other tests'
        // outgoing connections use the same ephemeral range); such a start is retried with
        // fresh ports instead of failing the test.
        for attempt in 1.. {
            match start() {
                Ok(group) => return group,
                Err(why) if attempt < 3 => eprintln!("retrying the group start: {why}"),
                Err(why) => panic!("could not start the group: {why}"),
            }
        }
        unreachable!("the loop returns or panics")
    }

    fn try_start(
        kind: NodeKind,
        replicas: usize,
        spare_count: usize,
        supervisors: u64,
        down_after_ms: u64,
        proxied: bool,
    ) -> Result<Group, String> {
        let mut nodes = Vec::new();
        let master_port = ports::allocate();
        for i in 0..=replicas {
            let port = if i == 0 { master_port } else { ports::allocate() };
            let mut args = node_args(port);
            if i > 0 {
                args.extend([
                    "--replicaof".to_string(),
                    "127.0.0.1".to_string(),
                    master_port.to_string(),
                ]);
            }
            let proc = Proc::start(&format!("node{i}-{port}"), &node_program(kind), &args);
            nodes.push(Node { port, proc });
        }
        let mut spares = Vec::new();
        for i in 0..spare_count {
            let port = ports::allocate();
            let args = node_args(port);
            let proc = Proc::start(&format!("spare{i}-{port}"), &node_program(kind), &args);
            spares.push(Node { port, proc });
        }
        let spare_ports: Vec<u16> = spares.iter().map(|n| n.port).collect();
        let conf_dir = tempfile::tempdir().expect("temp dir");
        let config = conf_dir.path().join("sentinel.conf");
        let raft_ports: Vec<u16> = (0..supervisors).map(|_| ports::allocate()).collect();
        let mut links = Vec::new();
        // Each supervisor's own config: its own raft port, and how it reaches each peer
        // (directly, or through the proxy for that one directed link).
        let config_for = |me: u64, links: &mut Vec<((u64, u64), Proxy)>| -> String {
            let mut text = String::from("bind 127.0.0.1\nsupervisor-auth test-secret-not-logged\n");
            for (i, p) in raft_ports.iter().enumerate() {
                let peer = i as u64 + 1;
                let port = if proxied && peer != me {
                    let proxy = Proxy::start(*p);
                    let port = proxy.port;
                    links.push(((me, peer), proxy));
                    port
                } else {
                    *p
                };
                text.push_str(&format!("raft-peer {peer} 127.0.0.1 {port}\n"));
            }
            text.push_str(&format!("sentinel monitor {MASTER} 127.0.0.1 {master_port} 2\n"));
            text.push_str(&format!("sentinel down-after-milliseconds {MASTER} {down_after_ms}\n"));
            text.push_str(&format!("sentinel failover-timeout {MASTER} 10000\n"));
            for p in &spare_ports {
                text.push_str(&format!("sentinel spare {MASTER} 127.0.0.1 {p}\n"));
            }
            if !spare_ports.is_empty() {
                text.push_str(&format!("sentinel failover-strategy {MASTER} spare\n"));
            }
            text
        };
        std::fs::write(&config, config_for(0, &mut Vec::new())).expect("writing the config");
        let mut sups = Vec::new();
        for id in 1..=supervisors {
            let port = ports::allocate();
            let own = conf_dir.path().join(format!("sentinel-{id}.conf"));
            std::fs::write(&own, config_for(id, &mut links)).expect("writing a supervisor config");
            let args: Vec<String> = vec![
                own.display().to_string(),
                "--raft-id".into(),
                id.to_string(),
                "--port".into(),
                port.to_string(),
                "--dir".into(),
                "data".into(),
            ];
            let proc =
                Proc::start(&format!("supervisor{id}"), &bin_dir().join("warden-sentinel"), &args);
            sups.push(Supervisor { id, port, raft_port: raft_ports[id as usize - 1], proc });
        }
        let group = Group { nodes, spares, supervisors: sups, config, links, _conf_dir: conf_dir };
        group.check_listening()?;
        for n in &group.nodes[1..] {
            wait::until("replica to sync", Duration::from_secs(20), || {
                let info = node_info(n.port)?;
                if info.contains("master_link_status:up") {
                    Ok(())
                } else {
                    Err("link not up".to_string())
                }
            });
        }
        for s in &group.supervisors {
            wait::until(
                "supervisor to know the master and replicas",
                Duration::from_secs(20),
                || {
                    let addr = group.master_of(s)?;
                    if addr.1 != master_port {
                        return Err(format!("answers {addr:?}"));
                    }
                    let n = sentinel_field(s.port, "num-slaves")?;
                    if n != replicas.to_string() {
                        return Err(format!("num-slaves {n}"));
                    }
                    // Steady state: every supervisor has seen each replica in sync with the
                    // master (its evidence of lineage for a later promotion).
                    let links = replica_links(s.port)?;
                    if links.len() != replicas || links.iter().any(|l| l != "ok") {
                        return Err(format!("replica links {links:?}"));
                    }
                    Ok(())
                },
            );
        }
        Ok(group)
    }

    /// Starts supervisor `id` with `sentinel join yes`: the group's settings and raft peers,
    /// plus its own raft address, and an empty store, so it waits to be added
    /// (`SENTINEL MEMBERS ADD`) instead of electing itself. Returns its raft address.
    pub fn start_joiner(&mut self, id: u64) -> String {
        let raft_port = ports::allocate();
        let port = ports::allocate();
        let shared = std::fs::read_to_string(&self.config).expect("reading the shared config");
        let own = self.config.with_file_name(format!("sentinel-{id}.conf"));
        let text = format!("{shared}raft-peer {id} 127.0.0.1 {raft_port}\nsentinel join yes\n");
        std::fs::write(&own, text).expect("writing the joiner's config");
        let args: Vec<String> = vec![
            own.display().to_string(),
            "--raft-id".into(),
            id.to_string(),
            "--port".into(),
            port.to_string(),
            "--dir".into(),
            "data".into(),
        ];
        let proc =
            Proc::start(&format!("supervisor{id}"), &bin_dir().join("warden-sentinel"), &args);
        wait::until("the joiner to answer PING", Duration::from_secs(20), || {
            connect(port).and_then(|mut c| {
                redis::cmd("PING").query::<String>(&mut c).map_err(|e| e.to_string())
            })
        });
        self.supervisors.push(Supervisor { id, port, raft_port, proc });
        format!("127.0.0.1:{raft_port}")
    }

    /// Waits until every process answers PING; an address already in use is an `Err`.
    fn check_listening(&self) -> Result<(), String> {
        let ports = self
            .nodes
            .iter()
            .chain(&self.spares)
            .map(|n| (n.port, &n.proc))
            .chain(self.supervisors.iter().map(|s| (s.port, &s.proc)));
        for (port, proc) in ports {
            let deadline = std::time::Instant::now() + Duration::from_secs(20);
            loop {
                if connect(port)
                    .and_then(|mut c| {
                        redis::cmd("PING").query::<String>(&mut c).map_err(|e| e.to_string())
                    })
                    .is_ok()
                {
                    break;
                }
                let log = proc.log();
                if log.contains("Address already in use") || log.contains("can't listen") {
                    return Err(format!(
                        "port {port} was taken: {}",
                        log.lines().last().unwrap_or_default()
                    ));
                }
                if std::time::Instant::now() > deadline {
                    return Err(format!("port {port} never answered PING:\n{log}"));
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        Ok(())
    }

    /// What a supervisor answers to GET-MASTER-ADDR-BY-NAME.
    pub fn master_of(&self, s: &Supervisor) -> Result<(String, u16), String> {
        master_addr(s.port)
    }

    /// Every running supervisor's answer, or the first error.
    pub fn answers(&self) -> Result<Vec<u16>, String> {
        self.supervisors
            .iter()
            .filter(|s| s.proc.pid().is_some())
            .map(|s| self.master_of(s).map(|a| a.1))
            .collect()
    }

    /// Cuts every link to and from supervisor `id` (needs [`Group::start_with`] `proxied`).
    pub fn isolate(&self, id: u64) {
        assert!(!self.links.is_empty(), "start the group with proxies to cut links");
        for ((from, to), proxy) in &self.links {
            if *from == id || *to == id {
                proxy.cut();
            }
        }
    }

    /// Restores every supervisor link.
    pub fn heal(&self) {
        for (_, proxy) in &self.links {
            proxy.heal();
        }
    }

    /// The node (or spare) with this port.
    pub fn node(&mut self, port: u16) -> &mut Node {
        self.nodes
            .iter_mut()
            .chain(self.spares.iter_mut())
            .find(|n| n.port == port)
            .expect("a node of the group")
    }

    /// The raft leader's index in `supervisors`, as the running supervisors report it.
    pub fn leader(&self) -> Result<usize, String> {
        for s in self.supervisors.iter().filter(|s| s.proc.pid().is_some()) {
            let info = node_info_section(s.port, "server")?;
            if let Some(l) = field(&info, "raft_leader") {
                if let Some(i) = self.supervisors.iter().position(|x| x.id.to_string() == l) {
                    return Ok(i);
                }
            }
        }
        Err("no supervisor knows a leader".into())
    }
}

/// `SENTINEL GET-MASTER-ADDR-BY-NAME mymaster` on a supervisor.
pub fn master_addr(port: u16) -> Result<(String, u16), String> {
    let mut c = connect(port)?;
    let reply: Option<(String, String)> = redis::cmd("SENTINEL")
        .arg("get-master-addr-by-name")
        .arg(MASTER)
        .query(&mut c)
        .map_err(|e| e.to_string())?;
    let (host, port) = reply.ok_or("unknown master")?;
    Ok((host, port.parse().map_err(|_| format!("port {port} is not a number"))?))
}

/// `master-link-status` of every replica in `SENTINEL REPLICAS mymaster`.
pub fn replica_links(port: u16) -> Result<Vec<String>, String> {
    replica_fields(port, "master-link-status")
}

/// One field of every replica in `SENTINEL REPLICAS mymaster` (what the supervisor on `port`
/// last saw of each).
pub fn replica_fields(port: u16, key: &str) -> Result<Vec<String>, String> {
    let mut c = connect(port)?;
    let maps: Vec<Vec<String>> = redis::cmd("SENTINEL")
        .arg("replicas")
        .arg(MASTER)
        .query(&mut c)
        .map_err(|e| e.to_string())?;
    Ok(maps
        .iter()
        .filter_map(|m| m.chunks(2).find(|kv| kv[0] == key).map(|kv| kv[1].clone()))
        .collect())
}

/// One field of `SENTINEL MASTER mymaster`.
pub fn sentinel_field(port: u16, key: &str) -> Result<String, String> {
    let mut c = connect(port)?;
    let map: Vec<String> = redis::cmd("SENTINEL")
        .arg("master")
        .arg(MASTER)
        .query(&mut c)
        .map_err(|e| e.to_string())?;
    map.chunks(2)
        .find(|kv| kv[0] == key)
        .map(|kv| kv[1].clone())
        .ok_or_else(|| format!("no field {key}"))
}

/// A node's `INFO replication`.
pub fn node_info(port: u16) -> Result<String, String> {
    node_info_section(port, "replication")
}

/// One INFO section.
pub fn node_info_section(port: u16, section: &str) -> Result<String, String> {
    let mut c = connect(port)?;
    redis::cmd("INFO").arg(section).query(&mut c).map_err(|e| e.to_string())
}

/// `key:value` from INFO text.
pub fn field(info: &str, key: &str) -> Option<String> {
    info.lines().find_map(|l| l.trim_end().strip_prefix(key)?.strip_prefix(':').map(str::to_string))
}

/// `SENTINEL MEMBERS` on a supervisor: `(id, role, leader)` per member.
pub fn members(port: u16) -> Result<Vec<(u64, String, bool)>, String> {
    let mut c = connect(port)?;
    let maps: Vec<Vec<String>> =
        redis::cmd("SENTINEL").arg("members").query(&mut c).map_err(|e| e.to_string())?;
    Ok(maps
        .iter()
        .map(|m| {
            let get = |k: &str| {
                m.chunks(2).find(|kv| kv[0] == k).map(|kv| kv[1].clone()).unwrap_or_default()
            };
            (get("id").parse().unwrap_or(0), get("role"), get("leader") == "1")
        })
        .collect())
}

/// Sends a command to a supervisor and returns the reply as text: `+OK`, `:n`, or the error
/// line as `-CODE detail`.
pub fn sentinel_reply(port: u16, args: &[&str]) -> Result<String, String> {
    let mut c = connect(port)?;
    c.set_read_timeout(Some(Duration::from_secs(15))).map_err(|e| e.to_string())?;
    let mut cmd = redis::cmd(args[0]);
    for a in &args[1..] {
        cmd.arg(*a);
    }
    match cmd.query::<redis::Value>(&mut c) {
        Ok(redis::Value::Okay) => Ok("+OK".into()),
        Ok(redis::Value::SimpleString(s)) => Ok(format!("+{s}")),
        Ok(redis::Value::Int(n)) => Ok(format!(":{n}")),
        Ok(other) => Ok(format!("{other:?}")),
        Err(e) => Ok(format!("-{} {}", e.code().unwrap_or("?"), e.detail().unwrap_or_default())),
    }
}

/// A data node on loopback `port` with no persistence (the scenarios' nodes and spares).
fn node_args(port: u16) -> Vec<String> {
    let port = port.to_string();
    ["--port", &port, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        .iter()
        .map(|s| s.to_string())
        .collect()
}
