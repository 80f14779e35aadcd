//! Sentinel's pub/sub events, formatted as Sentinel formats them: the channel is the event
//! name, and the payload of an instance event starts with the instance prefix
//! (`master <name> <ip> <port>` or `slave <ip:port> <ip> <port> @ <name> <ip> <port>`).

use super::Addr;

/// One event: published on the channel named `kind`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// The event name, e.g. `+switch-master`.
    pub kind: String,
    /// The payload.
    pub message: String,
}

impl Event {
    /// An event without an instance prefix (`+new-epoch`, `+switch-master`).
    pub fn plain(kind: &str, message: &str) -> Event {
        Event { kind: kind.to_string(), message: message.to_string() }
    }

    /// An event about a master; `extra` is appended verbatim.
    pub fn master(kind: &str, name: &str, addr: &Addr, extra: &str) -> Event {
        Event {
            kind: kind.to_string(),
            message: format!("master {name} {} {}{extra}", addr.host, addr.port),
        }
    }

    /// An event about a replica of master `name` at `master`.
    pub fn replica(kind: &str, replica: &Addr, name: &str, master: &Addr) -> Event {
        Event {
            kind: kind.to_string(),
            message: format!(
                "slave {replica} {} {} @ {name} {} {}",
                replica.host, replica.port, master.host, master.port
            ),
        }
    }
}

impl std::fmt::Display for Event {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.kind, self.message)
    }
}
