//! warden-sentinel's configuration: `sentinel.conf`-style lines, every directive also accepted
//! as a `--directive value…` flag (flags override the file).
//!
//! ```text
//! port 26379                                 # Sentinel protocol port
//! bind 127.0.0.1                             # addresses for the Sentinel protocol port
//! http-port 0                                # HTTP/JSON API on the same addresses (0 = off)
//! dir /var/lib/warden-sentinel               # Raft log, hard state, snapshots
//! raft-id 1                                  # this supervisor's id (1..)
//! raft-port 26479                            # defaults to this supervisor's raft-peer port
//! raft-peer 1 127.0.0.1 26479                # the initial voters, the same on every supervisor
//! supervisor-auth <secret>                   # shared secret authenticating supervisors
//! sentinel monitor <name> <ip> <port> <quorum>
//! sentinel down-after-milliseconds <name> <ms|1s>      (default 30000)
//! sentinel failover-timeout <name> <ms|10s>            (default 180000)
//! sentinel parallel-syncs <name> <n>                   (default 1)
//! sentinel auth-pass <name> <password>
//! sentinel auth-user <name> <user>
//! sentinel failover-strategy <name> promote|spare      (default promote)
//! sentinel spare <name> <ip> <port>                    (repeatable: the spare pool)
//! sentinel join yes|no                                 (default no)
//! ```
//!
//! The file bootstraps the group: after the first start the committed Raft state is the
//! truth, and this file is never rewritten; `SENTINEL MONITOR/REMOVE/SET`, `SENTINEL CONFIG
//! SET` and membership changes go through the Raft log. `auth-pass` is committed with the
//! bootstrap (so that `SENTINEL SET … auth-pass` can change it on every supervisor): it lives in
//! the Raft store and in memory, and is never printed. As in Sentinel, per-master lines may
//! come before or after their `monitor` line.
//!
//! `sentinel join yes` starts a supervisor that is not one of the bootstrap voters: with an
//! empty store it waits to be added (`wardenctl members add <id> <raft-host:port>`) instead of
//! electing itself. Its file lists its own `raft-peer` line and those of the group's members,
//! so that it can answer the leader.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use common::config::{parse_duration, ConfigError, ConfigLine};

use crate::machine::{Addr, MasterSpec, Strategy};

/// A Raft voter from a `raft-peer` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    /// Its raft id.
    pub id: u64,
    /// Its raft address.
    pub addr: std::net::SocketAddr,
}

/// One monitored master from the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Monitor {
    /// What is replicated through Raft (credentials included).
    pub spec: MasterSpec,
}

/// The typed configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Sentinel protocol port.
    pub port: u16,
    /// Addresses to listen on.
    pub bind: Vec<IpAddr>,
    /// The HTTP/JSON API port on the same addresses; 0 turns the API off.
    pub http_port: u16,
    /// Directory for the Raft store.
    pub dir: PathBuf,
    /// This supervisor's raft id.
    pub raft_id: u64,
    /// The port the raft transport listens on.
    pub raft_port: u16,
    /// The initial voters.
    pub peers: Vec<Peer>,
    /// The shared secret.
    pub supervisor_auth: String,
    /// Monitored masters, in file order.
    pub masters: Vec<Monitor>,
    /// `sentinel join yes`: not a bootstrap voter; wait to be added to the group.
    pub join: bool,
}

const DEFAULT_DOWN_AFTER: u64 = 30_000;
const DEFAULT_FAILOVER_TIMEOUT: u64 = 180_000;

impl Config {
    /// Builds the config from lines (file lines then command-line overrides).
    pub fn from_lines(lines: &[ConfigLine]) -> Result<Config, ConfigError> {
        let mut port = 26379u16;
        let mut http_port = 0u16;
        let mut bind: Vec<IpAddr> = vec!["127.0.0.1".parse().expect("literal")];
        let mut dir = PathBuf::from(".");
        let mut raft_id = None;
        let mut raft_port = None;
        let mut peers: Vec<Peer> = Vec::new();
        let mut secret = None;
        let mut masters: Vec<Monitor> = Vec::new();
        let mut per_master: Vec<&ConfigLine> = Vec::new();
        let mut join = false;
        for line in lines {
            let args = &line.args;
            match line.directive.as_str() {
                "port" => port = one(line).and_then(|v| parse_port(line, v))?,
                "http-port" => http_port = one(line).and_then(|v| parse_port(line, v))?,
                "bind" => {
                    if args.is_empty() {
                        return Err(ConfigError::at(line, "wrong number of arguments"));
                    }
                    bind = args
                        .iter()
                        .map(|a| {
                            a.parse().map_err(|_| {
                                ConfigError::at(line, format!("invalid address '{a}'"))
                            })
                        })
                        .collect::<Result<_, _>>()?;
                }
                "dir" => dir = PathBuf::from(one(line)?),
                "raft-id" => {
                    let v = one(line)?;
                    raft_id =
                        Some(v.parse::<u64>().ok().filter(|id| *id > 0).ok_or_else(|| {
                            ConfigError::at(line, "raft-id must be a whole number of 1 or more")
                        })?);
                }
                "raft-port" => raft_port = Some(one(line).and_then(|v| parse_port(line, v))?),
                "raft-peer" => {
                    let [id, host, p] = args.as_slice() else {
                        return Err(ConfigError::at(line, "expected: raft-peer <id> <ip> <port>"));
                    };
                    let id =
                        id.parse::<u64>().ok().filter(|id| *id > 0).ok_or_else(|| {
                            ConfigError::at(line, format!("invalid peer id '{id}'"))
                        })?;
                    let ip: IpAddr = host.parse().map_err(|_| {
                        ConfigError::at(line, format!("invalid peer address '{host}'"))
                    })?;
                    let p = parse_port(line, p)?;
                    if p == 0 {
                        return Err(ConfigError::at(line, "a raft peer needs a real port, not 0"));
                    }
                    if peers.iter().any(|peer| peer.id == id) {
                        return Err(ConfigError::at(line, format!("duplicate raft-peer id {id}")));
                    }
                    peers.push(Peer { id, addr: (ip, p).into() });
                }
                "supervisor-auth" => {
                    let v = one(line)?;
                    if v.is_empty() {
                        return Err(ConfigError::at(line, "the secret must not be empty"));
                    }
                    secret = Some(v.to_string());
                }
                "sentinel" => match args.first().map(|s| s.to_ascii_lowercase()).as_deref() {
                    Some("monitor") => {
                        let [_, name, host, p, quorum] = args.as_slice() else {
                            return Err(ConfigError::at(
                                line,
                                "expected: sentinel monitor <name> <ip> <port> <quorum>",
                            ));
                        };
                        if !valid_name(name) {
                            return Err(ConfigError::at(
                                line,
                                format!("invalid master name '{name}'"),
                            ));
                        }
                        if masters.iter().any(|m| &m.spec.name == name) {
                            return Err(ConfigError::at(line, "Duplicate master name."));
                        }
                        let _: IpAddr = host.parse().map_err(|_| {
                            ConfigError::at(
                                line,
                                format!("Invalid IP address '{host}' (hostnames are not resolved)"),
                            )
                        })?;
                        let p = parse_port(line, p)?;
                        let quorum =
                            quorum.parse::<u32>().ok().filter(|q| *q > 0).ok_or_else(|| {
                                ConfigError::at(line, "Quorum must be 1 or greater.")
                            })?;
                        masters.push(Monitor {
                            spec: MasterSpec {
                                name: name.clone(),
                                addr: Addr::new(host.clone(), p),
                                quorum,
                                down_after_ms: DEFAULT_DOWN_AFTER,
                                failover_timeout_ms: DEFAULT_FAILOVER_TIMEOUT,
                                parallel_syncs: 1,
                                ..Default::default()
                            },
                        });
                    }
                    Some(
                        "down-after-milliseconds"
                        | "failover-timeout"
                        | "parallel-syncs"
                        | "auth-pass"
                        | "auth-user"
                        | "failover-strategy"
                        | "spare",
                    ) => per_master.push(line),
                    Some("join") => {
                        join = match args.get(1).map(|v| v.to_ascii_lowercase()).as_deref() {
                            Some("yes") if args.len() == 2 => true,
                            Some("no") if args.len() == 2 => false,
                            _ => {
                                return Err(ConfigError::at(line, "expected: sentinel join yes|no"))
                            }
                        }
                    }
                    Some(other) => {
                        return Err(ConfigError::at(
                            line,
                            format!("unknown sentinel directive '{other}'"),
                        ))
                    }
                    None => return Err(ConfigError::at(line, "wrong number of arguments")),
                },
                other => return Err(ConfigError::at(line, format!("unknown directive '{other}'"))),
            }
        }
        for line in per_master {
            if line.args[0].eq_ignore_ascii_case("spare") {
                add_spare(&mut masters, line)?;
                continue;
            }
            let [sub, name, value] = line.args.as_slice() else {
                return Err(ConfigError::at(
                    line,
                    format!("expected: sentinel {} <name> <value>", line.args[0]),
                ));
            };
            let Some(m) = masters.iter_mut().find(|m| &m.spec.name == name) else {
                return Err(ConfigError::at(
                    line,
                    format!("No such master with specified name '{name}'"),
                ));
            };
            let sub = sub.to_ascii_lowercase();
            match sub.as_str() {
                "down-after-milliseconds" => m.spec.down_after_ms = millis(line, value)?,
                "failover-timeout" => m.spec.failover_timeout_ms = millis(line, value)?,
                "parallel-syncs" => {
                    m.spec.parallel_syncs =
                        value.parse::<u32>().ok().filter(|n| *n > 0).ok_or_else(|| {
                            ConfigError::at(line, "parallel-syncs must be 1 or more")
                        })?
                }
                "auth-pass" => {
                    m.spec.auth_pass =
                        (!value.is_empty()).then(|| crate::machine::Password(value.clone()))
                }
                "auth-user" => m.spec.auth_user = (!value.is_empty()).then(|| value.clone()),
                "failover-strategy" => {
                    m.spec.strategy = Strategy::parse(value).ok_or_else(|| {
                        ConfigError::at(
                            line,
                            format!("unknown failover-strategy '{value}' (promote or spare)"),
                        )
                    })?
                }
                _ => unreachable!("filtered above"),
            }
        }
        let raft_id = raft_id.ok_or_else(|| ConfigError::general("raft-id is required"))?;
        let me = peers.iter().find(|p| p.id == raft_id).ok_or_else(|| {
            ConfigError::general(format!("raft-id {raft_id} has no raft-peer line"))
        })?;
        let raft_port = raft_port.unwrap_or(me.addr.port());
        if raft_port != me.addr.port() {
            return Err(ConfigError::general(format!(
                "raft-port {raft_port} differs from this supervisor's raft-peer port {} (raft-id {raft_id}): peers would dial the wrong port",
                me.addr.port()
            )));
        }
        let supervisor_auth = secret.ok_or_else(|| {
            ConfigError::general(
                "supervisor-auth is required: supervisors must authenticate each other",
            )
        })?;
        let config = Config {
            port,
            bind,
            http_port,
            dir,
            raft_id,
            raft_port,
            peers,
            supervisor_auth,
            masters,
            join,
        };
        config.validate()?;
        Ok(config)
    }

    /// Cross-field rules.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.masters.is_empty() {
            tracing::warn!("no 'sentinel monitor' line: this supervisor watches nothing yet");
        }
        for m in &self.masters {
            if m.spec.quorum as usize > self.peers.len() {
                return Err(ConfigError::general(format!(
                    "master '{}': quorum {} is larger than the {} supervisors, so it could never be reached",
                    m.spec.name,
                    m.spec.quorum,
                    self.peers.len()
                )));
            }
        }
        if self.http_port != 0 && (self.http_port == self.port || self.http_port == self.raft_port)
        {
            return Err(ConfigError::general(format!(
                "http-port {} is already the Sentinel port or the raft port",
                self.http_port
            )));
        }
        Ok(())
    }

    /// The voters' ids.
    pub fn voters(&self) -> Vec<u64> {
        self.peers.iter().map(|p| p.id).collect()
    }
}

/// `sentinel spare <name> <ip> <port>`: one node of the master's spare pool.
fn add_spare(masters: &mut [Monitor], line: &ConfigLine) -> Result<(), ConfigError> {
    let [_, name, host, port] = line.args.as_slice() else {
        return Err(ConfigError::at(line, "expected: sentinel spare <name> <ip> <port>"));
    };
    let Some(m) = masters.iter_mut().find(|m| &m.spec.name == name) else {
        return Err(ConfigError::at(line, format!("No such master with specified name '{name}'")));
    };
    let _: IpAddr = host.parse().map_err(|_| {
        ConfigError::at(line, format!("Invalid IP address '{host}' (hostnames are not resolved)"))
    })?;
    let port = parse_port(line, port)?;
    if port == 0 {
        return Err(ConfigError::at(line, "a spare needs a real port, not 0"));
    }
    let spare = Addr::new(host.clone(), port);
    if spare == m.spec.addr {
        return Err(ConfigError::at(line, format!("spare {spare} is the master itself")));
    }
    if m.spec.spares.contains(&spare) {
        return Err(ConfigError::at(line, format!("duplicate spare {spare}")));
    }
    m.spec.spares.push(spare);
    Ok(())
}

fn one(line: &ConfigLine) -> Result<&str, ConfigError> {
    match line.args.as_slice() {
        [v] => Ok(v),
        _ => Err(ConfigError::at(line, "wrong number of arguments")),
    }
}

fn parse_port(line: &ConfigLine, v: &str) -> Result<u16, ConfigError> {
    v.parse::<u16>().map_err(|_| ConfigError::at(line, format!("Invalid port '{v}'")))
}

fn millis(line: &ConfigLine, v: &str) -> Result<u64, ConfigError> {
    parse_duration(v, Duration::from_millis(1))
        .map(|d| d.as_millis() as u64)
        .filter(|ms| *ms > 0)
        .ok_or_else(|| {
            ConfigError::at(
                line,
                format!("invalid duration '{v}' (milliseconds, or e.g. 1500ms, 2s)"),
            )
        })
}

/// Sentinel's rule for master names.
fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use common::config::{parse_command_line, parse_text};

    const GOOD: &str = "port 26379\nbind 127.0.0.1\ndir /tmp/x\nraft-id 2\n\
        raft-peer 1 127.0.0.1 26479\nraft-peer 2 127.0.0.1 26480\nraft-peer 3 127.0.0.1 26481\n\
        supervisor-auth s3cret\n\
        sentinel down-after-milliseconds mymaster 1s\n\
        sentinel monitor mymaster 127.0.0.1 6379 2\n\
        sentinel failover-timeout mymaster 10000\nsentinel parallel-syncs mymaster 2\n\
        sentinel auth-pass mymaster pw\nsentinel auth-user mymaster bob\n";

    fn load(text: &str, flags: &[&str]) -> Result<Config, ConfigError> {
        let mut lines = parse_text(text, "s.conf")?;
        let flags: Vec<String> = flags.iter().map(|s| s.to_string()).collect();
        lines.extend(parse_command_line(&flags)?.overrides);
        Config::from_lines(&lines)
    }

    #[test]
    fn the_shipped_example_loads() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../deploy/configs/sentinel.conf");
        let lines = common::config::read_file(&path).unwrap();
        let c = Config::from_lines(&lines).unwrap();
        assert_eq!((c.port, c.raft_id, c.raft_port, c.voters()), (26379, 1, 26479, vec![1, 2, 3]));
        assert_eq!(c.masters[0].spec.down_after_ms, 1000);
        let mut with_flags = lines.clone();
        let flags: Vec<String> =
            ["--raft-id", "2", "--port", "26380"].iter().map(|s| s.to_string()).collect();
        with_flags.extend(parse_command_line(&flags).unwrap().overrides);
        let c = Config::from_lines(&with_flags).unwrap();
        assert_eq!((c.raft_id, c.port, c.raft_port), (2, 26380, 26480));
    }

    #[test]
    fn http_port_is_off_by_default_and_must_not_clash() {
        assert_eq!(load(GOOD, &[]).unwrap().http_port, 0);
        assert_eq!(load(GOOD, &["--http-port", "8080"]).unwrap().http_port, 8080);
        let clash = load(GOOD, &["--http-port", "26379"]).unwrap_err().to_string();
        assert!(clash.contains("http-port 26379"), "{clash}");
        assert!(load(GOOD, &["--http-port", "x"]).is_err());
    }

    #[test]
    fn reads_every_directive() {
        let c = load(GOOD, &[]).unwrap();
        assert_eq!((c.port, c.raft_id, c.raft_port), (26379, 2, 26480));
        assert_eq!(c.voters(), [1, 2, 3]);
        let m = &c.masters[0];
        assert_eq!(m.spec.addr, Addr::new("127.0.0.1".into(), 6379));
        assert_eq!(
            (m.spec.quorum, m.spec.down_after_ms, m.spec.failover_timeout_ms),
            (2, 1000, 10000)
        );
        assert_eq!(m.spec.parallel_syncs, 2);
        assert_eq!(m.spec.auth_pass, Some(crate::machine::Password("pw".into())));
        assert_eq!(m.spec.auth_user.as_deref(), Some("bob"));
        assert!(!c.join);
        assert!(load(GOOD, &["--sentinel", "join", "yes"]).unwrap().join);
        let e = load(GOOD, &["--sentinel", "join", "maybe"]).unwrap_err().to_string();
        assert!(e.contains("expected: sentinel join yes|no"), "{e}");
    }

    #[test]
    fn spare_pool_and_failover_strategy() {
        let c = load(GOOD, &[]).unwrap();
        assert_eq!(c.masters[0].spec.strategy, Strategy::Promote, "the default");
        assert!(c.masters[0].spec.spares.is_empty());
        let text = format!(
            "{GOOD}sentinel spare mymaster 127.0.0.1 7001\nsentinel failover-strategy mymaster SPARE\n\
             sentinel spare mymaster 127.0.0.1 7002\n"
        );
        let m = &load(&text, &[]).unwrap().masters[0];
        assert_eq!(m.spec.strategy, Strategy::Spare);
        assert_eq!(
            m.spec.spares,
            [Addr::new("127.0.0.1".into(), 7001), Addr::new("127.0.0.1".into(), 7002)]
        );
        for (line, why) in [
            ("sentinel failover-strategy mymaster clone", "unknown failover-strategy 'clone'"),
            ("sentinel spare mymaster 127.0.0.1", "expected: sentinel spare <name> <ip> <port>"),
            ("sentinel spare other 127.0.0.1 7001", "No such master"),
            ("sentinel spare mymaster spare-host 7001", "Invalid IP address 'spare-host'"),
            ("sentinel spare mymaster 127.0.0.1 0", "not 0"),
            ("sentinel spare mymaster 127.0.0.1 6379", "is the master itself"),
            (
                "sentinel spare mymaster 127.0.0.1 7001\nsentinel spare mymaster 127.0.0.1 7001",
                "duplicate spare",
            ),
        ] {
            let e = load(&format!("{GOOD}{line}\n"), &[]).unwrap_err().to_string();
            assert!(e.contains(why), "{line}: {e}");
        }
    }

    #[test]
    fn flags_override_the_file() {
        let c = load(
            GOOD,
            &["--port", "27000", "--sentinel", "down-after-milliseconds", "mymaster", "1500ms"],
        )
        .unwrap();
        assert_eq!(c.port, 27000);
        assert_eq!(c.masters[0].spec.down_after_ms, 1500);
    }

    #[test]
    fn errors_name_file_line_and_directive() {
        let bad = GOOD.replace("raft-peer 3 127.0.0.1 26481", "raft-peer 3 localhost 26481");
        let e = load(&bad, &[]).unwrap_err().to_string();
        assert_eq!(e, "s.conf:7: directive 'raft-peer': invalid peer address 'localhost'");
        let bad = GOOD.replace("failover-timeout mymaster 10000", "failover-timeout mymaster soon");
        let e = load(&bad, &[]).unwrap_err().to_string();
        assert!(e.starts_with("s.conf:11: directive 'sentinel': invalid duration 'soon'"), "{e}");
        let bad = GOOD.replace("parallel-syncs mymaster", "parallel-syncs other");
        assert!(load(&bad, &[]).unwrap_err().to_string().contains("No such master"));
        let e = load(GOOD, &["--colour", "blue"]).unwrap_err().to_string();
        assert_eq!(e, "command line: directive 'colour': unknown directive 'colour'");
        let e = load(&GOOD.replace("supervisor-auth s3cret\n", ""), &[]).unwrap_err().to_string();
        assert!(e.contains("supervisor-auth is required"), "{e}");
        let e = load(&GOOD.replace("6379 2", "6379 4"), &[]).unwrap_err().to_string();
        assert!(e.contains("quorum 4 is larger than the 3 supervisors"), "{e}");
        let e = load(GOOD, &["--raft-port", "26479"]).unwrap_err().to_string();
        assert!(
            e.contains("raft-port 26479 differs from this supervisor's raft-peer port 26480"),
            "{e}"
        );
        let e = load(&GOOD.replace("raft-id 2", "raft-id 9"), &[]).unwrap_err().to_string();
        assert!(e.contains("raft-id 9 has no raft-peer line"), "{e}");
        assert!(load("sentinel monitor m 127.0.0.1 6379 0\n", &[])
            .unwrap_err()
            .to_string()
            .contains("Quorum"));
        assert!(load("port 99999\n", &[]).unwrap_err().to_string().contains("Invalid port"));
        let e = load(&GOOD.replace("raft-peer 3 127.0.0.1 26481", "raft-peer 3 127.0.0.1 0"), &[])
            .unwrap_err();
        assert!(e.to_string().contains("not 0"), "{e}");
        let e =
            load(&GOOD.replace("raft-peer 3 127.0.0.1 26481", "raft-peer 2 127.0.0.1 26481"), &[])
                .unwrap_err();
        assert!(e.to_string().contains("duplicate raft-peer id 2"), "{e}");
    }
}
