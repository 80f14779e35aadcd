//! Events a supervisor publishes from its *own* observations, as each Sentinel does: `+slave`
//! when it first sees a replica, `+sdown`/`-sdown` for replicas, and `+reboot` when a node's
//! run id changes (it restarted). They are hints for clients and operators, not decisions:
//! nothing here is committed or acted upon. (A master's `+sdown` comes with its opinion, in the
//! health loop.)

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::health::is_sdown;
use crate::machine::{Addr, Event, Machine};
use crate::monitor::NodeView;
use crate::reconciler::known_replicas;

#[derive(Debug)]
struct Seen {
    sdown: bool,
    run_id: Option<String>,
}

/// What this supervisor has already announced about each (master name, node).
#[derive(Debug, Default)]
pub struct Notices {
    seen: HashMap<(String, Addr), Seen>,
}

impl Notices {
    /// Compares the views with what was announced before and returns the new events.
    pub fn update(
        &mut self,
        state: &Machine,
        views: &HashMap<Addr, NodeView>,
        now: Instant,
    ) -> Vec<Event> {
        let mut events = Vec::new();
        // Forget the instances of masters removed at run time (SENTINEL REMOVE).
        self.seen.retain(|(name, _), _| state.masters.contains_key(name));
        for m in state.masters.values() {
            let down_after = Duration::from_millis(m.spec.down_after_ms);
            let name = &m.spec.name;
            let master = &m.spec.addr;
            if let Some(run_id) =
                views.get(master).and_then(|v| v.info.as_ref()).and_then(|i| i.run_id.clone())
            {
                let entry = self
                    .seen
                    .entry((name.clone(), master.clone()))
                    .or_insert(Seen { sdown: false, run_id: None });
                if entry.run_id.as_ref().is_some_and(|old| *old != run_id) {
                    events.push(Event::master("+reboot", name, master, ""));
                }
                entry.run_id = Some(run_id);
            }
            for r in known_replicas(m, views) {
                let Some(v) = views.get(&r) else { continue };
                let sdown = is_sdown(v, now, down_after);
                let run_id = v.info.as_ref().and_then(|i| i.run_id.clone());
                match self.seen.get_mut(&(name.clone(), r.clone())) {
                    None => {
                        events.push(Event::replica("+slave", &r, name, master));
                        if sdown {
                            events.push(Event::replica("+sdown", &r, name, master));
                        }
                        self.seen.insert((name.clone(), r.clone()), Seen { sdown, run_id });
                    }
                    Some(seen) => {
                        if sdown != seen.sdown {
                            events.push(Event::replica(
                                if sdown { "+sdown" } else { "-sdown" },
                                &r,
                                name,
                                master,
                            ));
                            seen.sdown = sdown;
                        }
                        if let Some(id) = run_id {
                            if seen.run_id.as_ref().is_some_and(|old| *old != id) {
                                events.push(Event::replica("+reboot", &r, name, master));
                            }
                            seen.run_id = Some(id);
                        }
                    }
                }
            }
        }
        events
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::info::NodeInfo;
    use crate::machine::Command;

    fn a(p: u16) -> Addr {
        Addr::new("127.0.0.1".into(), p)
    }

    fn view(now: Instant, info: &str) -> NodeView {
        let mut v = NodeView { last_ok: Some(now), connected: true, ..NodeView::new(now) };
        v.observe(NodeInfo::parse(info), now);
        v
    }

    #[test]
    fn replicas_are_announced_once_and_their_changes_reported() {
        let mut state = Machine::default();
        let spec = crate::testkit::spec(a(1), 1);
        state.apply_command(1, Command::Bootstrap { masters: vec![spec] });
        let t = Instant::now();
        let mut views = HashMap::new();
        views.insert(
            a(1),
            view(t, "role:master\nrun_id:aaaa\nslave0:ip=127.0.0.1,port=2,state=online\n"),
        );
        views.insert(
            a(2),
            view(t, "role:slave\nmaster_host:127.0.0.1\nmaster_port:1\nrun_id:bbbb\n"),
        );
        let mut n = Notices::default();
        let text = |e: Vec<Event>| e.iter().map(|e| e.to_string()).collect::<Vec<_>>();
        assert_eq!(
            text(n.update(&state, &views, t)),
            ["+slave slave 127.0.0.1:2 127.0.0.1 2 @ m 127.0.0.1 1"]
        );
        assert!(n.update(&state, &views, t).is_empty(), "announced once");
        let later = t + Duration::from_millis(1500);
        views.get_mut(&a(1)).unwrap().last_ok = Some(later);
        assert_eq!(
            text(n.update(&state, &views, later)),
            ["+sdown slave 127.0.0.1:2 127.0.0.1 2 @ m 127.0.0.1 1"]
        );
        views.insert(
            a(2),
            view(later, "role:slave\nmaster_host:127.0.0.1\nmaster_port:1\nrun_id:cccc\n"),
        );
        views.get_mut(&a(1)).unwrap().observe(NodeInfo::parse("role:master\nrun_id:dddd\n"), later);
        assert_eq!(
            text(n.update(&state, &views, later)),
            [
                "+reboot master m 127.0.0.1 1",
                "-sdown slave 127.0.0.1:2 127.0.0.1 2 @ m 127.0.0.1 1",
                "+reboot slave 127.0.0.1:2 127.0.0.1 2 @ m 127.0.0.1 1"
            ]
        );
    }
}
