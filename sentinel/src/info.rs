//! Reading a node's `INFO` reply: the fields the supervisor decides on. Unknown or missing
//! fields are tolerated (Redis and warden-node differ in extras); malformed numbers read as
//! absent rather than failing the whole reply.

use crate::machine::Addr;

/// The role a node reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// `role:master`
    Master,
    /// `role:slave`
    Replica,
}

/// What one INFO reply told us.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NodeInfo {
    /// `run_id` (server section).
    pub run_id: Option<String>,
    /// `role`.
    pub role: Option<Role>,
    /// `master_host`/`master_port` on a replica.
    pub master: Option<Addr>,
    /// `master_link_status:up`.
    pub link_up: bool,
    /// `slave_repl_offset` on a replica.
    pub replica_offset: Option<i64>,
    /// `master_repl_offset`.
    pub master_offset: Option<i64>,
    /// `master_replid`: the history this node is on.
    pub replid: Option<String>,
    /// `master_replid2`: the history it continued from.
    pub replid2: Option<String>,
    /// `slave_priority` / `replica_priority` (100 when absent, as Sentinel assumes).
    pub priority: u32,
    /// `slaveN:ip=…,port=…` lines on a master.
    pub replicas: Vec<Addr>,
    /// `loading:1`.
    pub loading: bool,
}

impl NodeInfo {
    /// Parses the text of an INFO reply.
    pub fn parse(text: &str) -> NodeInfo {
        let mut info = NodeInfo { priority: 100, ..NodeInfo::default() };
        let mut master_host = None;
        let mut master_port = None;
        for line in text.lines() {
            let line = line.trim_end_matches('\r');
            let Some((key, value)) = line.split_once(':') else { continue };
            match key {
                "run_id" => info.run_id = Some(value.to_string()),
                "role" => {
                    info.role = match value {
                        "master" => Some(Role::Master),
                        "slave" => Some(Role::Replica),
                        _ => None,
                    }
                }
                "master_host" => master_host = Some(value.to_string()),
                "master_port" => master_port = value.parse::<u16>().ok(),
                "master_link_status" => info.link_up = value.eq_ignore_ascii_case("up"),
                "slave_repl_offset" => info.replica_offset = value.parse().ok(),
                "master_repl_offset" => info.master_offset = value.parse().ok(),
                "master_replid" => info.replid = Some(value.to_string()),
                "master_replid2" => info.replid2 = Some(value.to_string()),
                "slave_priority" | "replica_priority" => {
                    if let Ok(p) = value.parse() {
                        info.priority = p
                    }
                }
                "loading" => info.loading = value == "1",
                k if k.starts_with("slave")
                    && k[5..].bytes().all(|b| b.is_ascii_digit())
                    && k.len() > 5 =>
                {
                    if let Some(addr) = replica_line(value) {
                        info.replicas.push(addr);
                    }
                }
                _ => {}
            }
        }
        if let (Some(h), Some(p)) = (master_host, master_port) {
            info.master = Some(Addr::new(h, p));
        }
        info
    }

    /// The replication offset that ranks candidates.
    pub fn offset(&self) -> i64 {
        self.replica_offset.or(self.master_offset).unwrap_or(0)
    }
}

/// `ip=…,port=…,state=…` (or the old `ip,port,state`).
fn replica_line(value: &str) -> Option<Addr> {
    if value.contains('=') {
        let mut ip = None;
        let mut port = None;
        for part in value.split(',') {
            match part.split_once('=') {
                Some(("ip", v)) => ip = Some(v.to_string()),
                Some(("port", v)) => port = v.parse().ok(),
                _ => {}
            }
        }
        Some(Addr::new(ip?, port?))
    } else {
        let mut parts = value.split(',');
        let ip = parts.next()?.to_string();
        let port = parts.next()?.parse().ok()?;
        Some(Addr::new(ip, port))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_master_and_a_replica() {
        let master = "# Replication\r\nrole:master\r\nconnected_slaves:2\r\n\
            slave0:ip=127.0.0.1,port=6380,state=online,offset=42,lag=0\r\n\
            slave1:127.0.0.1,6381,online\r\nmaster_replid:aaa\r\nmaster_replid2:0000\r\n\
            master_repl_offset:42\r\n";
        let m = NodeInfo::parse(master);
        assert_eq!(m.role, Some(Role::Master));
        assert_eq!(
            m.replicas,
            [Addr::new("127.0.0.1".into(), 6380), Addr::new("127.0.0.1".into(), 6381)]
        );
        assert_eq!((m.replid.as_deref(), m.offset()), (Some("aaa"), 42));
        let replica = "role:slave\r\nmaster_host:127.0.0.1\r\nmaster_port:6379\r\n\
            master_link_status:up\r\nslave_repl_offset:40\r\nslave_priority:0\r\n\
            slave_read_only:1\r\nconnected_slaves:0\r\n";
        let r = NodeInfo::parse(replica);
        assert_eq!(r.role, Some(Role::Replica));
        assert_eq!(r.master, Some(Addr::new("127.0.0.1".into(), 6379)));
        assert!(r.link_up);
        assert_eq!((r.offset(), r.priority), (40, 0));
        assert!(r.replicas.is_empty(), "slave_read_only is not a replica line");
    }

    #[test]
    fn garbage_reads_as_nothing() {
        let i = NodeInfo::parse("role:captain\nmaster_port:notaport\nslave0:ip=x\n\u{0}");
        assert_eq!(i.role, None);
        assert_eq!(i.master, None);
        assert!(i.replicas.is_empty());
        assert_eq!(i.priority, 100);
    }
}

#[cfg(test)]
mod robustness {
    use rand::{Rng, SeedableRng};

    use super::*;

    #[test]
    fn any_text_parses_without_panicking() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(3);
        let alphabet = b"role:masterslave0ip=,port=123\r\n:_-";
        for _ in 0..3000 {
            let len = rng.gen_range(0..120);
            let text: String =
                (0..len).map(|_| alphabet[rng.gen_range(0..alphabet.len())] as char).collect();
            let _ = NodeInfo::parse(&text);
        }
    }
}
