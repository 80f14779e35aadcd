//! The supervisor process, wired together: the consensus task, the monitor, the health loop
//! that turns observations into committed opinions, the leader-only reconciler, and the
//! client API. [`run`] takes bound listeners and a shutdown signal so tests can drive it.

use std::collections::HashMap;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::RngCore;
use tokio::net::TcpListener;
use tokio::sync::broadcast;

use crate::api::{self, Context, Local};
use crate::config::Config;
use crate::consensus::auth::Secret;
use crate::consensus::core::{RaftCore, Tuning};
use crate::consensus::logger::raft_logger;
use crate::consensus::task::{self, Consensus, Inputs};
use crate::consensus::transport::{self, Router};
use crate::executor::Executor;
use crate::health::is_master_sdown;
use crate::machine::{Addr, Command, Event, Machine};
use crate::monitor::{watch_list, Monitor, Views};
use crate::node_link::Credentials;
use crate::reconciler::Reconciler;

/// The Raft tick. With `election_tick` 10 the election timeout is 0.5–1 s, well inside the
/// failure-detection window, so a supervisor leader change never stalls a failover for long.
const TICK: Duration = Duration::from_millis(50);
/// How often the health loop and the reconciler look at the world.
const LOOP: Duration = Duration::from_millis(10);
/// A health-loop stall longer than this enters TILT.
const TILT_TRIGGER: Duration = Duration::from_secs(1);
/// How long TILT lasts after the last stall: enough for every node to be polled again.
const TILT_PERIOD: Duration = Duration::from_secs(3);

/// Loads or creates this supervisor's 40-hex run id in `dir/myid`.
pub fn load_run_id(dir: &std::path::Path) -> std::io::Result<String> {
    let path = dir.join("myid");
    if let Ok(text) = std::fs::read_to_string(&path) {
        let id = text.trim().to_string();
        if id.len() == 40 && id.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Ok(id);
        }
        tracing::warn!(file = %path.display(), "ignoring a malformed myid file");
    }
    let mut raw = [0u8; 20];
    rand::thread_rng().fill_bytes(&mut raw);
    let id: String = raw.iter().map(|b| format!("{b:02x}")).collect();
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, format!("{id}\n"))?;
    std::fs::rename(&tmp, &path)?;
    Ok(id)
}

/// Runs a supervisor until `stop` fires (without the HTTP API).
pub async fn run(
    config: Config,
    clients: Vec<TcpListener>,
    raft: TcpListener,
    stop: common::shutdown::Shutdown,
) -> anyhow::Result<()> {
    run_with_http(config, clients, Vec::new(), raft, stop).await
}

/// Runs a supervisor until `stop` fires, serving the HTTP/JSON API on `http` listeners.
pub async fn run_with_http(
    config: Config,
    clients: Vec<TcpListener>,
    http: Vec<TcpListener>,
    raft: TcpListener,
    stop: common::shutdown::Shutdown,
) -> anyhow::Result<()> {
    std::fs::create_dir_all(&config.dir)?;
    let run_id = load_run_id(&config.dir)?;
    let me = config.raft_id;
    tracing::info!(raft_id = me, run_id = %run_id, "Sentinel ID is {run_id}");
    // A joiner starts with an empty membership: raft-rs never campaigns on a node outside the
    // configuration, so it waits for the leader to add it and send it a snapshot.
    let voters = if config.join { Vec::new() } else { config.voters() };
    if config.join {
        tracing::info!(
            raft_id = me,
            "joining: waiting to be added to the group (wardenctl members add)"
        );
    }
    // Before the store is opened: sealed secrets in it are opened with the group secret.
    crate::machine::sealed::install(&config.supervisor_auth);
    let core = RaftCore::open(
        me,
        &config.dir.join("raft"),
        &voters,
        Machine::default(),
        Tuning::default(),
        &raft_logger(me),
    )?;
    let secret = Secret::new(&config.supervisor_auth);
    let (inbound_tx, inbound) = tokio::sync::mpsc::channel(4096);
    let (unreachable_tx, unreachable) = tokio::sync::mpsc::unbounded_channel();
    let peers: Vec<(u64, std::net::SocketAddr)> =
        config.peers.iter().map(|p| (p.id, p.addr)).collect();
    let router = Router::start(me, &peers, secret.clone(), unreachable_tx);
    let connected = router.connected();
    let members = transport::Members::default();
    members.lock().extend(peers.iter().map(|(id, _)| *id));
    tokio::spawn(transport::serve(raft, members.clone(), secret, inbound_tx));
    let link_router = router.clone();
    let (hub, _) = broadcast::channel::<Event>(4096);
    let publish = hub.clone();
    let consensus = task::spawn(
        core,
        router,
        Inputs { inbound, unreachable },
        TICK,
        stop.clone(),
        move |m: &mut Machine, replayed| {
            for (index, event) in m.take_events() {
                // Entries up to the commit index found on disk were already announced before the
                // restart; replaying them must not repeat old events.
                if index > replayed {
                    tracing::warn!(event = %event.kind, "{event}");
                    let _ = publish.send(event);
                }
            }
        },
    );

    tokio::spawn(crate::membership::follow_membership(
        consensus.clone(),
        link_router,
        members,
        peers.clone(),
        stop.clone(),
    ));

    let views: Views = Views::default();
    let simulate_failure = Arc::new(std::sync::atomic::AtomicU8::new(0));
    let local = Arc::new(parking_lot::Mutex::new(Local::default()));
    let local_for_reconciler = local.clone();
    let client_addr =
        clients.first().ok_or_else(|| anyhow::anyhow!("no client listener"))?.local_addr()?;
    let ctx = Arc::new(Context {
        me,
        run_id: run_id.clone(),
        port: client_addr.port(),
        state: consensus.state.clone(),
        consensus: consensus.clone(),
        status: consensus.status.clone(),
        views: views.clone(),
        local: local.clone(),
        hub: hub.clone(),
        connected_peers: connected,
        started: Instant::now(),
        next_client_id: AtomicU64::new(0),
        simulate_failure: simulate_failure.clone(),
        config_peers: peers.clone(),
    });
    for client in clients {
        tokio::spawn(api::serve(client, ctx.clone(), stop.clone()));
    }
    for listener in http {
        tokio::spawn(api::http::serve(listener, ctx.clone(), stop.clone()));
    }

    // Credentials from the file count until the committed state has its own (a group
    // bootstrapped before credentials were committed).
    let file_creds: HashMap<String, Credentials> =
        config.masters.iter().map(|m| (m.spec.name.clone(), Credentials::of(&m.spec))).collect();
    let client_name = format!("sentinel-{}-cmd", &run_id[..8]);
    let monitor = Monitor::new(views.clone(), client_name.clone());
    let announce_host = if config.bind.iter().any(|b| b.is_unspecified()) {
        "127.0.0.1".to_string()
    } else {
        config.bind[0].to_string()
    };
    let me_addr = Addr::new(announce_host, client_addr.port());
    tokio::spawn(health_loop(HealthLoop {
        me,
        me_addr,
        run_id,
        consensus: consensus.clone(),
        file_creds: file_creds.clone(),
        monitor,
        local,
        hub,
        stop: stop.clone(),
    }));

    // A node's credentials are its master's: the same mapping the monitor watches it under.
    let creds_by_node = {
        let state = consensus.state.clone();
        let views = views.clone();
        move |node: &Addr| -> Credentials {
            let s = state.borrow().clone();
            let snapshot = views.lock().clone();
            let creds = Credentials::for_masters(&s, &file_creds);
            watch_list(&s, &snapshot)
                .get(node)
                .and_then(|(master, _)| creds.get(master).cloned())
                .unwrap_or_default()
        }
    };
    let executor = Executor {
        consensus: consensus.clone(),
        views: views.clone(),
        creds: Arc::new(creds_by_node),
        client_name,
        timeout: Duration::from_millis(500),
        simulate_failure,
    };
    let bootstrap = config.masters.iter().map(|m| m.spec.clone()).collect();
    reconcile_loop(
        consensus,
        views,
        local_for_reconciler,
        executor,
        Reconciler::new(me, bootstrap),
        stop,
    )
    .await;
    Ok(())
}

struct HealthLoop {
    me: u64,
    me_addr: Addr,
    run_id: String,
    consensus: Consensus<Machine>,
    file_creds: HashMap<String, Credentials>,
    monitor: Monitor,
    local: Arc<parking_lot::Mutex<Local>>,
    hub: broadcast::Sender<Event>,
    stop: common::shutdown::Shutdown,
}

/// Watches the nodes of every committed master, turns silence into subjective down, and keeps
/// this supervisor's committed opinion equal to what it observes.
async fn health_loop(mut h: HealthLoop) {
    let mut last_proposal: HashMap<String, Instant> = HashMap::new();
    let mut ticker = tokio::time::interval(LOOP);
    let mut last_tick = Instant::now();
    let mut tilt_until: Option<Instant> = None;
    let mut notices = crate::notice::Notices::default();
    let mut master_since: HashMap<String, (Addr, Instant)> = HashMap::new();
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = h.stop.wait() => return,
        }
        let state = h.consensus.state.borrow().clone();
        let now = Instant::now();
        // TILT, as in Sentinel: if this loop itself stalled (process paused, CPU starved), every
        // node looks silent at once. Until fresh observations arrive, say nothing is down.
        let gap = now.saturating_duration_since(last_tick);
        last_tick = now;
        if gap > TILT_TRIGGER {
            if tilt_until.is_none() {
                emit(&h.hub, Event::plain("+tilt", "#tilt mode entered"));
                h.local.lock().tilt_since = Some(now);
            }
            tilt_until = Some(now + TILT_PERIOD);
        } else if tilt_until.is_some_and(|until| now >= until) {
            tilt_until = None;
            h.local.lock().tilt_since = None;
            emit(&h.hub, Event::plain("-tilt", "#tilt mode exited"));
        }
        let tilted = tilt_until.is_some();
        let views = h.monitor.views().lock().clone();
        let wanted = watch_list(&state, &views);
        h.monitor.sync(&wanted, &Credentials::for_masters(&state, &h.file_creds));

        // `SENTINEL CONFIG SET announce-ip|announce-port` override what we announce.
        let announce = state.settings.announce.get(&h.me).cloned().unwrap_or_default();
        let announced = Addr::new(
            if announce.ip.is_empty() { h.me_addr.host.clone() } else { announce.ip },
            if announce.port == 0 { h.me_addr.port } else { announce.port },
        );
        if state.bootstrapped
            && !state.members.removed.contains(&h.me)
            && state.supervisors.get(&h.me) != Some(&(announced.clone(), h.run_id.clone()))
        {
            let cmd = Command::SupervisorAnnounced {
                supervisor: h.me,
                addr: announced,
                run_id: h.run_id.clone(),
            };
            maybe_propose(&h.consensus, &mut last_proposal, "announce".into(), cmd, now).await;
        }

        if tilted {
            // Opinions stay as they were: neither "down" nor "up" is known until fresh
            // observations arrive.
            continue;
        }
        for event in notices.update(&state, &views, now) {
            emit(&h.hub, event);
        }
        // A master removed at run time (SENTINEL REMOVE) leaves no local judgement behind that a
        // later MONITOR of the same name would inherit.
        master_since.retain(|name, _| state.masters.contains_key(name));
        h.local.lock().sdown_since.retain(|name, _| state.masters.contains_key(name));
        for m in state.masters.values() {
            let Some(view) = views.get(&m.spec.addr) else { continue };
            // When this supervisor first saw this node as the committed master.
            let since = match master_since.get(&m.spec.name) {
                Some((addr, at)) if *addr == m.spec.addr => *at,
                _ => {
                    master_since.insert(m.spec.name.clone(), (m.spec.addr.clone(), now));
                    now
                }
            };
            let down =
                is_master_sdown(view, now, Duration::from_millis(m.spec.down_after_ms), since);
            let was = {
                let mut local = h.local.lock();
                // A flag about the master's previous address is dropped silently: that node
                // is no longer the master.
                if local.sdown_since.get(&m.spec.name).is_some_and(|(a, _)| *a != m.spec.addr) {
                    local.sdown_since.remove(&m.spec.name);
                }
                let was = local.sdown_since.contains_key(&m.spec.name);
                if down && !was {
                    local.sdown_since.insert(m.spec.name.clone(), (m.spec.addr.clone(), now));
                } else if !down && was {
                    local.sdown_since.remove(&m.spec.name);
                }
                was
            };
            if down != was {
                let kind = if down { "+sdown" } else { "-sdown" };
                let event = Event::master(kind, &m.spec.name, &m.spec.addr, "");
                tracing::warn!(event = kind, "{event}");
                let _ = h.hub.send(event);
            }
            // Commit the replicas we discovered (Sentinel's known-replica), so a restarted
            // supervisor still watches them.
            let discovered: Vec<Addr> = crate::reconciler::known_replicas(m, &views)
                .into_iter()
                .filter(|r| !m.replicas.contains(r))
                .collect();
            if !discovered.is_empty() {
                let cmd = Command::ReplicasDiscovered {
                    master: m.spec.name.clone(),
                    epoch: m.config_epoch,
                    replicas: discovered,
                };
                maybe_propose(
                    &h.consensus,
                    &mut last_proposal,
                    format!("replicas {}", m.spec.name),
                    cmd,
                    now,
                )
                .await;
            }
            // Commit the master's replication ids as we see them, so the lineage evidence
            // outlives this process.
            let unseen: Vec<String> =
                view.master_replids.iter().filter(|id| !m.replids.contains(id)).cloned().collect();
            if !unseen.is_empty() {
                let cmd = Command::MasterReplids {
                    master: m.spec.name.clone(),
                    epoch: m.config_epoch,
                    replids: unseen,
                };
                maybe_propose(
                    &h.consensus,
                    &mut last_proposal,
                    format!("replids {}", m.spec.name),
                    cmd,
                    now,
                )
                .await;
            }
            let committed =
                m.opinions.get(&h.me).filter(|o| o.epoch == m.config_epoch).map(|o| o.down);
            // Before the first observation of a new master, say nothing.
            if committed != Some(down) && (down || committed.is_some() || view.last_ok.is_some()) {
                let cmd = Command::Opinion {
                    supervisor: h.me,
                    master: m.spec.name.clone(),
                    epoch: m.config_epoch,
                    down,
                };
                maybe_propose(
                    &h.consensus,
                    &mut last_proposal,
                    format!("opinion {}", m.spec.name),
                    cmd,
                    now,
                )
                .await;
            }
        }
    }
}

fn emit(hub: &broadcast::Sender<Event>, event: Event) {
    tracing::warn!(event = %event.kind, "{event}");
    let _ = hub.send(event);
}

/// Proposes at most every 200 ms per key: a follower's proposal is forwarded and may be lost,
/// so it is repeated until the committed state shows it.
async fn maybe_propose(
    c: &Consensus<Machine>,
    last: &mut HashMap<String, Instant>,
    key: String,
    cmd: Command,
    now: Instant,
) {
    if last
        .get(&key)
        .is_some_and(|at| now.saturating_duration_since(*at) < Duration::from_millis(200))
    {
        return;
    }
    last.insert(key, now);
    if let Err(e) = c.propose(cmd.encode()).await {
        tracing::debug!(error = %e, "proposal dropped; will retry");
    }
}

/// The leader-only loop: plan and execute until shutdown; leader memory is dropped whenever
/// this supervisor is not the leader.
async fn reconcile_loop(
    consensus: Consensus<Machine>,
    views: Views,
    local: Arc<parking_lot::Mutex<Local>>,
    executor: Executor,
    mut reconciler: Reconciler,
    mut stop: common::shutdown::Shutdown,
) {
    let mut ticker = tokio::time::interval(LOOP);
    let mut was_leader = false;
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = stop.wait() => return,
        }
        let status = consensus.status.borrow().clone();
        if local.lock().tilt_since.is_some() {
            // In TILT the acting half is skipped, as in Sentinel.
            continue;
        }
        if !status.is_leader {
            if was_leader {
                tracing::info!(term = status.term, "no longer the raft leader; reconciler stopped");
                reconciler.reset();
            }
            was_leader = false;
            continue;
        }
        if !was_leader {
            tracing::info!(term = status.term, "raft leader; reconciler started");
            was_leader = true;
        }
        let state = consensus.state.borrow().clone();
        let snapshot = views.lock().clone();
        let actions = reconciler.plan(&state, &snapshot, &status, Instant::now());
        if !actions.is_empty() {
            let readings = executor.run(actions).await;
            reconciler.absorb(readings, Instant::now());
        }
    }
}
