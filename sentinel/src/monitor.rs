//! The monitor: one task per watched node, keeping a [`NodeView`] of what the node last said.
//!
//! Each task keeps a command connection and, every `period`, pipelines `PING` and
//! `INFO replication` (plus `INFO server` now and then, for the run id). The cadence is a
//! fraction of `down-after-milliseconds` so that the silence threshold is crossed within one
//! period of its expiry. The views are shared with the health check and the reconciler
//! through a mutex that is never held across an `.await`.
//!
//! A node that answers `-BUSY` is held by a script that has run past `busy-reply-threshold`.
//! Once it has answered so for longer than `down-after` (it is subjectively down), the task
//! sends it SCRIPT KILL — or FUNCTION KILL, as the `-BUSY` text asks — as Sentinel does (and
//! again after each further down-after while it stays busy): a script that has not written
//! stops, and the node is back without a failover. One that has written cannot be stopped
//! (`-UNKILLABLE`), and the failover goes ahead.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::resp::Frame;
use tokio::task::JoinHandle;

use crate::info::{NodeInfo, Role};
use crate::machine::Addr;
use crate::node_link::{text, Credentials, NodeLink};

/// What the supervisor last learnt about one node.
#[derive(Debug, Clone)]
pub struct NodeView {
    /// When watching started.
    pub since: Instant,
    /// The last valid PING reply (`PONG`, `-LOADING`, `-MASTERDOWN`).
    pub last_ok: Option<Instant>,
    /// The last reply of any kind.
    pub last_reply: Option<Instant>,
    /// Whether the command connection is up.
    pub connected: bool,
    /// The last INFO.
    pub info: Option<NodeInfo>,
    /// When it arrived.
    pub info_at: Option<Instant>,
    /// Replication ids this node reported while it was a master, newest last (a master picks
    /// a new one when its first replica attaches, possibly just before it dies).
    pub master_replids: Vec<String>,
    /// The master and replication id this node reported the last time its link to that
    /// master was up: proof that its history came from that master.
    pub synced_from: Option<(Addr, String)>,
    /// When the reported role last changed (or was first reported).
    pub role_since: Option<Instant>,
}

impl NodeView {
    /// A node being watched since `now`, not heard from yet.
    pub fn new(now: Instant) -> NodeView {
        NodeView {
            since: now,
            last_ok: None,
            last_reply: None,
            connected: false,
            info: None,
            info_at: None,
            master_replids: Vec::new(),
            synced_from: None,
            role_since: None,
        }
    }

    /// Takes in a parsed INFO reply received at `now`, keeping the lineage evidence.
    pub fn observe(&mut self, mut info: NodeInfo, now: Instant) {
        if info.run_id.is_none() {
            info.run_id = self.info.as_ref().and_then(|i| i.run_id.clone());
        }
        match (info.role, &info.replid, &info.master) {
            (Some(Role::Master), Some(id), _) if self.master_replids.last() != Some(id) => {
                self.master_replids.push(id.clone());
                if self.master_replids.len() > 8 {
                    self.master_replids.remove(0);
                }
            }
            (Some(Role::Replica), Some(id), Some(m)) if info.link_up => {
                self.synced_from = Some((m.clone(), id.clone()));
            }
            _ => {}
        }
        if self.info.as_ref().map(|i| i.role) != Some(info.role) {
            self.role_since = Some(now);
        }
        self.info = Some(info);
        self.info_at = Some(now);
    }
}

/// Views by node address. Locked only for short, synchronous reads and writes.
pub type Views = Arc<parking_lot::Mutex<HashMap<Addr, NodeView>>>;

/// Starts and stops the per-node tasks.
pub struct Monitor {
    views: Views,
    /// Per node: the master it is watched for, the credentials its task uses, the task.
    tasks: HashMap<Addr, (String, Credentials, JoinHandle<()>)>,
    client_name: String,
}

/// Timing of one node's polling.
#[derive(Debug, Clone, Copy)]
pub struct Cadence {
    /// Time between polls.
    pub period: Duration,
    /// Bound on connecting and on each call.
    pub timeout: Duration,
    /// Silence after which the node is subjectively down.
    pub down_after: Duration,
}

impl Cadence {
    /// Polls ten times per `down-after`, between 20 ms and 1 s apart.
    pub fn for_down_after(down_after: Duration) -> Cadence {
        let period = (down_after / 10).clamp(Duration::from_millis(20), Duration::from_secs(1));
        let timeout = (down_after / 2).clamp(Duration::from_millis(100), Duration::from_secs(2));
        Cadence { period, timeout, down_after }
    }
}

impl Monitor {
    /// A monitor whose node connections call themselves `client_name`.
    pub fn new(views: Views, client_name: String) -> Monitor {
        Monitor { views, tasks: HashMap::new(), client_name }
    }

    /// The shared views.
    pub fn views(&self) -> &Views {
        &self.views
    }

    /// Watches exactly the nodes in `wanted` (address → (master name, cadence)), with each
    /// master's credentials from `creds`. Masters added or removed at run time (`SENTINEL
    /// MONITOR/REMOVE`) show up here; a node whose master's credentials changed (`SENTINEL
    /// SET … auth-pass`) is reconnected with the new ones, as Sentinel drops its links.
    pub fn sync(
        &mut self,
        wanted: &BTreeMap<Addr, (String, Cadence)>,
        creds: &HashMap<String, Credentials>,
    ) {
        let stale: Vec<Addr> = self
            .tasks
            .iter()
            .filter(|(a, (m, c, _))| {
                wanted.get(*a).map(|(w, _)| w) != Some(m)
                    || creds.get(m).cloned().unwrap_or_default() != *c
            })
            .map(|(a, _)| a.clone())
            .collect();
        for addr in stale {
            if let Some((_, _, task)) = self.tasks.remove(&addr) {
                task.abort();
            }
            self.views.lock().remove(&addr);
        }
        for (addr, (master, cadence)) in wanted {
            if self.tasks.contains_key(addr) {
                continue;
            }
            self.views.lock().insert(addr.clone(), NodeView::new(Instant::now()));
            let creds = creds.get(master).cloned().unwrap_or_default();
            let task = tokio::spawn(watch(
                addr.clone(),
                creds.clone(),
                self.views.clone(),
                *cadence,
                self.client_name.clone(),
            ));
            self.tasks.insert(addr.clone(), (master.clone(), creds, task));
        }
    }
}

impl Drop for Monitor {
    fn drop(&mut self) {
        for (_, (_, _, task)) in self.tasks.drain() {
            task.abort();
        }
    }
}

/// Which nodes to watch, and for which master: every master, its committed and discovered
/// replicas, their sub-replicas (from each watched node's INFO, transitively), its spare pool,
/// and the nodes of a failover in flight.
pub fn watch_list(
    state: &crate::machine::Machine,
    views: &HashMap<Addr, NodeView>,
) -> BTreeMap<Addr, (String, Cadence)> {
    let mut wanted = BTreeMap::new();
    for m in state.masters.values() {
        let cadence = Cadence::for_down_after(Duration::from_millis(m.spec.down_after_ms));
        let mut nodes = vec![m.spec.addr.clone()];
        nodes.extend(crate::reconciler::known_replicas(m, views));
        // Spares are watched before they are needed: choosing one needs fresh INFO.
        nodes.extend(m.spec.spares.iter().cloned());
        if let Some(f) = &m.failover {
            nodes.push(f.candidate.clone());
            nodes.push(f.old_master.clone());
            nodes.extend(f.replicas.keys().cloned());
        }
        // A bound keeps a hostile INFO from making us watch the whole internet.
        let mut i = 0;
        while i < nodes.len() && nodes.len() < 256 {
            if let Some(info) = views.get(&nodes[i]).and_then(|v| v.info.as_ref()) {
                for sub in &info.replicas {
                    if !nodes.contains(sub) {
                        nodes.push(sub.clone());
                    }
                }
            }
            i += 1;
        }
        for n in nodes {
            wanted.entry(n).or_insert_with(|| (m.spec.name.clone(), cadence));
        }
    }
    wanted
}

/// Records a PING/INFO exchange in the view.
pub fn record(views: &Views, addr: &Addr, ping: Option<&Frame>, info: Option<String>) {
    let now = Instant::now();
    let mut views = views.lock();
    let Some(v) = views.get_mut(addr) else { return };
    v.connected = true;
    v.last_reply = Some(now);
    if let Some(ping) = ping {
        let valid = match ping {
            Frame::Simple(s) => &s[..] == b"PONG",
            Frame::Error(e) => e.starts_with(b"LOADING") || e.starts_with(b"MASTERDOWN"),
            _ => false,
        };
        if valid {
            v.last_ok = Some(now);
        }
    }
    if let Some(text) = info {
        v.observe(NodeInfo::parse(&text), now);
    }
}

/// The command that stops the script a `-BUSY` PING reply speaks of: FUNCTION KILL when the
/// node says only that can, SCRIPT KILL otherwise (`None`: not busy).
pub fn script_kill_for(ping: &Frame) -> Option<Vec<&'static [u8]>> {
    let Frame::Error(text) = ping else { return None };
    if !text.starts_with(b"BUSY") {
        return None;
    }
    let function = text.windows(13).any(|w| w == b"FUNCTION KILL");
    Some(if function { vec![b"FUNCTION", b"KILL"] } else { vec![b"SCRIPT", b"KILL"] })
}

/// Whether the view of `addr` is subjectively down.
fn is_sdown(views: &Views, addr: &Addr, down_after: Duration) -> bool {
    let views = views.lock();
    views.get(addr).is_some_and(|v| crate::health::is_sdown(v, Instant::now(), down_after))
}

/// Polls `addr` once, now, and records what it says. An operator's request is planned from
/// the views, which may be a poll period old (a second switchover right after a first one
/// would otherwise see the replicas still following the previous master).
pub async fn refresh(
    views: &Views,
    addr: &Addr,
    creds: &Credentials,
    name: &str,
    timeout: Duration,
) -> Result<(), String> {
    let mut link =
        NodeLink::connect(addr, creds, name, timeout).await.map_err(|e| e.to_string())?;
    let cmds: Vec<Vec<&[u8]>> =
        vec![vec![b"PING"], vec![b"INFO", b"replication"], vec![b"INFO", b"server"]];
    let replies = link.pipeline(&cmds).await.map_err(|e| e.to_string())?;
    let mut info = text(&replies[1]).unwrap_or_default();
    info.push_str(&text(&replies[2]).unwrap_or_default());
    record(views, addr, Some(&replies[0]), Some(info));
    Ok(())
}

async fn watch(addr: Addr, creds: Credentials, views: Views, cadence: Cadence, name: String) {
    let mut round: u64 = 0;
    let mut warned = false;
    // When SCRIPT KILL last went out during this busy spell (cleared by any other reply). It
    // goes out again after another down-after: the node may be busy with a later script by
    // then (one that started before any poll saw it free), or the last attempt came too soon.
    let mut kill_sent: Option<Instant> = None;
    loop {
        let mut link = match NodeLink::connect(&addr, &creds, &name, cadence.timeout).await {
            Ok(l) => {
                if warned {
                    tracing::info!(node = %addr, "node reachable again");
                }
                warned = false;
                l
            }
            Err(e) => {
                if !warned {
                    tracing::info!(node = %addr, error = %e, "can't reach node");
                    warned = true;
                }
                if let Some(v) = views.lock().get_mut(&addr) {
                    v.connected = false;
                }
                tokio::time::sleep(cadence.period).await;
                continue;
            }
        };
        loop {
            let started = Instant::now();
            let mut cmds: Vec<Vec<&[u8]>> = vec![vec![b"PING"], vec![b"INFO", b"replication"]];
            if round.is_multiple_of(20) {
                cmds.push(vec![b"INFO", b"server"]);
            }
            round += 1;
            match link.pipeline(&cmds).await {
                Ok(replies) => {
                    let mut info = text(&replies[1]).unwrap_or_default();
                    if let Some(server) = replies.get(2).and_then(text) {
                        info.push_str(&server);
                    }
                    record(&views, &addr, Some(&replies[0]), Some(info));
                    let due = kill_sent.is_none_or(|at| at.elapsed() > cadence.down_after);
                    match script_kill_for(&replies[0]) {
                        Some(kill) if due && is_sdown(&views, &addr, cadence.down_after) => {
                            kill_sent = Some(Instant::now());
                            let command = String::from_utf8_lossy(&kill.join(&b' ')).into_owned();
                            tracing::warn!(
                                node = %addr,
                                "node busy with a script for longer than down-after: sending {command}"
                            );
                            match link.pipeline(&[kill]).await {
                                Ok(replies) => {
                                    tracing::info!(node = %addr, reply = ?replies.first(), "{command} answered")
                                }
                                Err(e) => {
                                    tracing::info!(node = %addr, error = %e, "{command} failed")
                                }
                            }
                        }
                        Some(_) => {}
                        None => kill_sent = None,
                    }
                }
                Err(e) => {
                    tracing::debug!(node = %addr, error = %e, "lost the node link");
                    if let Some(v) = views.lock().get_mut(&addr) {
                        v.connected = false;
                    }
                    break;
                }
            }
            let spent = started.elapsed();
            if spent < cadence.period {
                tokio::time::sleep(cadence.period - spent).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::machine::{Command, Machine};

    #[test]
    fn a_busy_reply_names_the_kill_command() {
        let busy = |text: &str| Frame::Error(bytes::Bytes::from(text.to_string()));
        let eval = busy(
            "BUSY Redis is busy running a script. You can only call SCRIPT KILL or SHUTDOWN NOSAVE.",
        );
        let function = busy(
            "BUSY Redis is busy running a script. You can only call FUNCTION KILL or SHUTDOWN NOSAVE.",
        );
        assert_eq!(script_kill_for(&eval), Some(vec![&b"SCRIPT"[..], b"KILL"]));
        assert_eq!(script_kill_for(&function), Some(vec![&b"FUNCTION"[..], b"KILL"]));
        assert_eq!(script_kill_for(&Frame::Simple(bytes::Bytes::from_static(b"PONG"))), None);
        assert_eq!(script_kill_for(&busy("LOADING Redis is loading the dataset in memory")), None);
    }

    /// `refresh` replaces a stale view at once: a node the view still shows following its
    /// old master is seen following the new one.
    #[tokio::test]
    async fn refresh_replaces_a_stale_view_at_once() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let node = Addr::new("127.0.0.1".into(), listener.local_addr().unwrap().port());
        let replication = "role:slave\r\nmaster_host:127.0.0.1\r\nmaster_port:2\r\n\
                           master_link_status:up\r\nslave_repl_offset:10\r\n";
        let server = "run_id:0123456789012345678901234567890123456789\r\n";
        let script = format!(
            "+OK\r\n+PONG\r\n${}\r\n{replication}\r\n${}\r\n{server}\r\n",
            replication.len(),
            server.len()
        );
        let scripted = tokio::spawn(async move {
            let (mut sock, _) = listener.accept().await.unwrap();
            sock.write_all(script.as_bytes()).await.unwrap();
            // Hold the connection until the client is done with it.
            let mut sink = Vec::new();
            let _ = sock.read_to_end(&mut sink).await;
        });
        let now = Instant::now();
        let mut stale = NodeView::new(now);
        stale.observe(NodeInfo::parse("role:slave\nmaster_host:127.0.0.1\nmaster_port:1\n"), now);
        let views: Views =
            Arc::new(parking_lot::Mutex::new(HashMap::from([(node.clone(), stale)])));
        refresh(&views, &node, &Credentials::default(), "test", Duration::from_secs(5))
            .await
            .unwrap();
        let seen = views.lock()[&node].info.as_ref().and_then(|i| i.master.clone());
        assert_eq!(seen, Some(Addr::new("127.0.0.1".into(), 2)));
        scripted.abort();
    }

    #[test]
    fn replicas_and_sub_replicas_are_discovered_from_info() {
        let a = |p: u16| Addr::new("127.0.0.1".into(), p);
        let mut state = Machine::default();
        let spec = crate::testkit::spec(a(1), 1);
        state.apply_command(1, Command::Bootstrap { masters: vec![spec] });
        let now = Instant::now();
        let mut views = HashMap::new();
        assert_eq!(watch_list(&state, &views).keys().cloned().collect::<Vec<_>>(), [a(1)]);
        let mut master = NodeView::new(now);
        master.observe(
            NodeInfo::parse("role:master\nslave0:ip=127.0.0.1,port=2,state=online\n"),
            now,
        );
        views.insert(a(1), master);
        let mut replica = NodeView::new(now);
        replica.observe(
            NodeInfo::parse(
                "role:slave\nmaster_host:127.0.0.1\nmaster_port:1\nslave0:ip=127.0.0.1,port=3,state=online\n",
            ),
            now,
        );
        views.insert(a(2), replica);
        let wanted = watch_list(&state, &views);
        assert_eq!(
            wanted.keys().cloned().collect::<Vec<_>>(),
            [a(1), a(2), a(3)],
            "the sub-replica too"
        );
        assert!(wanted.values().all(|(m, c)| m == "m" && c.period == Duration::from_millis(100)));
    }
}
