//! Runtime configuration through the log: `SENTINEL MONITOR`, `REMOVE`, `SET`, `RESET` and
//! `SENTINEL CONFIG SET` each become one committed [`ConfigChange`], applied by every
//! supervisor in the same order, so a change made on any supervisor is visible on all of them
//! and survives restarts (the config file only bootstraps the group and is never rewritten).
//!
//! The request was validated by the supervisor that received it (syntax, ranges: see
//! `api::runtime_config`); what depends on the committed state — does the master exist, is the
//! name taken — is decided here, at apply time, because two supervisors may race. The result
//! is recorded under the request's nonce ([`Machine::requests`]) so the receiving supervisor
//! can give its client Sentinel's exact reply once it has applied the entry.
//!
//! Unlike Sentinel, `SENTINEL SET` with several options is all-or-nothing (Sentinel applies the
//! options before the faulty one): the whole command is one entry, checked before it is
//! proposed.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::{Event, Machine, MasterSpec, MasterState, Strategy};

/// A password for a data node (`auth-pass`). In memory it is plain; in the Raft store (log
/// entries and snapshots) it is sealed under the group secret ([`super::sealed`]); it is
/// never in a file of ours in clear, never in a reply, never in a log line (its `Debug` is
/// masked).
#[derive(Clone, PartialEq, Eq)]
pub struct Password(pub String);

impl Serialize for Password {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::sealed::seal(&self.0))
    }
}

impl<'de> Deserialize<'de> for Password {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Password, D::Error> {
        let stored = String::deserialize(d)?;
        // Every supervisor of a group shares the secret (peers authenticate with it), so this
        // fails only after the secret was changed under an existing store: the master is then
        // watched without its password (and says so), rather than the log failing to apply.
        Ok(Password(super::sealed::open(&stored).unwrap_or_else(|why| {
            tracing::warn!(%why, "an auth-pass in the Raft store cannot be opened");
            String::new()
        })))
    }
}

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("******")
    }
}

/// One `SENTINEL SET` option with its validated value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "option", content = "value", rename_all = "kebab-case")]
pub enum MasterOption {
    /// `down-after-milliseconds` (> 0).
    DownAfterMilliseconds(u64),
    /// `failover-timeout` (> 0).
    FailoverTimeout(u64),
    /// `parallel-syncs` (> 0).
    ParallelSyncs(u32),
    /// `quorum` (> 0).
    Quorum(u32),
    /// `auth-pass`; `None` (an empty value) clears it.
    AuthPass(Option<Password>),
    /// `auth-user`; `None` (an empty value) clears it.
    AuthUser(Option<String>),
    /// `failover-strategy promote|spare` (Warden).
    FailoverStrategy(Strategy),
}

impl MasterOption {
    /// The option's name and value as `+set` publishes them (the password masked).
    pub fn describe(&self) -> (&'static str, String) {
        match self {
            MasterOption::DownAfterMilliseconds(v) => ("down-after-milliseconds", v.to_string()),
            MasterOption::FailoverTimeout(v) => ("failover-timeout", v.to_string()),
            MasterOption::ParallelSyncs(v) => ("parallel-syncs", v.to_string()),
            MasterOption::Quorum(v) => ("quorum", v.to_string()),
            MasterOption::AuthPass(_) => ("auth-pass", "******".into()),
            MasterOption::AuthUser(v) => ("auth-user", v.clone().unwrap_or_default()),
            MasterOption::FailoverStrategy(s) => ("failover-strategy", s.word().into()),
        }
    }

    fn apply_to(&self, spec: &mut MasterSpec) {
        match self {
            MasterOption::DownAfterMilliseconds(v) => spec.down_after_ms = *v,
            MasterOption::FailoverTimeout(v) => spec.failover_timeout_ms = *v,
            MasterOption::ParallelSyncs(v) => spec.parallel_syncs = *v,
            MasterOption::Quorum(v) => spec.quorum = *v,
            MasterOption::AuthPass(v) => spec.auth_pass = v.clone(),
            MasterOption::AuthUser(v) => spec.auth_user = v.clone(),
            MasterOption::FailoverStrategy(s) => spec.strategy = *s,
        }
    }
}

/// The settings of `SENTINEL CONFIG GET|SET` that make sense for supervisors.
/// `resolve-hostnames` and `announce-hostnames` are group-wide; `announce-ip` and
/// `announce-port` describe one supervisor (the one that was asked), as in Sentinel where each
/// sentinel announces its own address.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Settings {
    /// `resolve-hostnames`: `SENTINEL MONITOR` accepts hostnames, not only IP addresses.
    pub resolve_hostnames: bool,
    /// `announce-hostnames`: recorded for compatibility (addresses are reported as given).
    pub announce_hostnames: bool,
    /// Per supervisor (raft id): the address it announces instead of its own.
    pub announce: BTreeMap<u64, Announce>,
}

/// What one supervisor announces for itself (`SENTINEL SENTINELS`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Announce {
    /// `announce-ip` ("" = its bind address).
    pub ip: String,
    /// `announce-port` (0 = its own port).
    pub port: u16,
}

/// One `SENTINEL CONFIG SET` parameter with its validated value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "param", content = "value", rename_all = "kebab-case")]
pub enum GlobalSetting {
    /// `resolve-hostnames yes|no`.
    ResolveHostnames(bool),
    /// `announce-hostnames yes|no`.
    AnnounceHostnames(bool),
    /// `announce-ip <ip>` ("" clears).
    AnnounceIp(String),
    /// `announce-port <0..65535>`.
    AnnouncePort(u16),
}

/// A committed configuration change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "change", rename_all = "kebab-case")]
pub enum ConfigChange {
    /// `SENTINEL MONITOR`: start watching a new master.
    Monitor {
        /// Its settings (defaults except the quorum).
        spec: MasterSpec,
    },
    /// `SENTINEL REMOVE`: stop watching a master and forget its state.
    Remove {
        /// The master's name.
        name: String,
    },
    /// `SENTINEL SET`: change a master's settings, all options at once.
    Set {
        /// The master's name.
        name: String,
        /// The options, in the order given.
        options: Vec<MasterOption>,
    },
    /// `SENTINEL RESET <pattern>`: forget discovered state of the matching masters.
    Reset {
        /// A glob pattern over master names.
        pattern: String,
    },
    /// `SENTINEL CONFIG SET`.
    Global {
        /// The supervisor that was asked (the one `announce-*` is about).
        supervisor: u64,
        /// The parameter and its value.
        setting: GlobalSetting,
    },
}

/// What a configuration request came to once applied.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ConfigOutcome {
    /// Applied; the number is `RESET`'s count of masters reset (0 for the others).
    Done(i64),
    /// Refused by the committed state; the Sentinel error line.
    Refused(String),
}

/// How many request outcomes the state keeps (the requester waits seconds, not hours).
pub const MAX_REQUESTS: usize = 64;

/// A fresh master entry for a spec.
pub(super) fn new_master(spec: MasterSpec) -> MasterState {
    MasterState {
        spec,
        config_epoch: 0,
        opinions: BTreeMap::new(),
        odown: false,
        failover: None,
        replicas: BTreeSet::new(),
        replids: Vec::new(),
    }
}

impl Machine {
    /// Applies a configuration change and records its outcome under `request`.
    pub(super) fn configure(&mut self, request: u64, change: ConfigChange, ev: &mut Vec<Event>) {
        let outcome = self.apply_config_change(change, ev);
        if request != 0 {
            self.requests.push_back((request, outcome));
            while self.requests.len() > MAX_REQUESTS {
                self.requests.pop_front();
            }
        }
    }

    /// The outcome of the configuration request with this nonce, once applied.
    pub fn request_outcome(&self, request: u64) -> Option<&ConfigOutcome> {
        self.requests.iter().rev().find(|(r, _)| *r == request).map(|(_, o)| o)
    }

    fn apply_config_change(&mut self, change: ConfigChange, ev: &mut Vec<Event>) -> ConfigOutcome {
        let no_such_master = || ConfigOutcome::Refused("ERR No such master with that name".into());
        match change {
            ConfigChange::Monitor { spec } => {
                if self.masters.contains_key(&spec.name) {
                    return ConfigOutcome::Refused("ERR Duplicate master name.".into());
                }
                ev.push(Event::master(
                    "+monitor",
                    &spec.name,
                    &spec.addr,
                    &format!(" quorum {}", spec.quorum),
                ));
                // A name monitored again starts a new history.
                self.history.remove(&spec.name);
                self.masters.insert(spec.name.clone(), new_master(spec));
                ConfigOutcome::Done(0)
            }
            ConfigChange::Remove { name } => {
                let Some(m) = self.masters.remove(&name) else { return no_such_master() };
                self.history.remove(&name);
                ev.push(Event::master("-monitor", &name, &m.spec.addr, ""));
                ConfigOutcome::Done(0)
            }
            ConfigChange::Set { name, options } => {
                let Some(m) = self.masters.get_mut(&name) else { return no_such_master() };
                for option in &options {
                    option.apply_to(&mut m.spec);
                    let (word, value) = option.describe();
                    ev.push(Event::master(
                        "+set",
                        &name,
                        &m.spec.addr,
                        &format!(" {word} {value}"),
                    ));
                }
                // A lower quorum may already be met by the current opinions (and a higher one
                // no longer).
                super::update_odown(m, ev);
                ConfigOutcome::Done(0)
            }
            ConfigChange::Reset { pattern } => {
                let mut count = 0;
                for m in self.masters.values_mut() {
                    if !common::glob::matches(pattern.as_bytes(), m.spec.name.as_bytes(), false) {
                        continue;
                    }
                    count += 1;
                    // Sentinel's reset: forget the replicas and the other sentinels' opinions,
                    // abort a failover in flight. A failover past its promotion has already
                    // moved the master's address; only the re-pointing is dropped, and the
                    // leader's topology enforcement re-points stragglers anyway.
                    if let Some(f) = m.failover.take() {
                        if let Some(r) = super::record_mut(&mut self.history, &m.spec.name, f.epoch)
                        {
                            if r.outcome == "in-progress" {
                                r.outcome = "aborted-reset".into();
                            }
                        }
                    }
                    m.replicas.clear();
                    m.opinions.clear();
                    m.odown = false;
                    ev.push(Event::master("+reset-master", &m.spec.name, &m.spec.addr, ""));
                }
                ConfigOutcome::Done(count)
            }
            ConfigChange::Global { supervisor, setting } => {
                let s = &mut self.settings;
                match setting {
                    GlobalSetting::ResolveHostnames(v) => s.resolve_hostnames = v,
                    GlobalSetting::AnnounceHostnames(v) => s.announce_hostnames = v,
                    GlobalSetting::AnnounceIp(v) => {
                        s.announce.entry(supervisor).or_default().ip = v
                    }
                    GlobalSetting::AnnouncePort(v) => {
                        s.announce.entry(supervisor).or_default().port = v
                    }
                }
                ConfigOutcome::Done(0)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::machine::{Addr, Command};

    fn spec(name: &str, port: u16) -> MasterSpec {
        MasterSpec {
            name: name.into(),
            addr: Addr::new("10.0.0.1".into(), port),
            quorum: 2,
            down_after_ms: 30000,
            failover_timeout_ms: 180000,
            parallel_syncs: 1,
            ..Default::default()
        }
    }

    fn configure(m: &mut Machine, request: u64, change: ConfigChange) -> Vec<String> {
        let index = m.applied_index + 1;
        m.apply_command(index, Command::Configure { request, change });
        m.take_events().into_iter().map(|(_, e)| e.to_string()).collect()
    }

    #[test]
    fn monitor_set_reset_remove_with_sentinel_events_and_outcomes() {
        let mut m = Machine::default();
        let ev = configure(&mut m, 1, ConfigChange::Monitor { spec: spec("m2", 7000) });
        assert_eq!(ev, ["+monitor master m2 10.0.0.1 7000 quorum 2"]);
        assert_eq!(m.request_outcome(1), Some(&ConfigOutcome::Done(0)));
        assert!(configure(&mut m, 2, ConfigChange::Monitor { spec: spec("m2", 7001) }).is_empty());
        assert_eq!(
            m.request_outcome(2),
            Some(&ConfigOutcome::Refused("ERR Duplicate master name.".into()))
        );
        assert_eq!(m.masters["m2"].spec.addr.port, 7000, "the first one stays");

        let options = vec![
            MasterOption::Quorum(3),
            MasterOption::AuthPass(Some(Password("hunter2".into()))),
            MasterOption::AuthUser(Some("bob".into())),
            MasterOption::FailoverStrategy(Strategy::Spare),
        ];
        let ev = configure(&mut m, 3, ConfigChange::Set { name: "m2".into(), options });
        assert_eq!(
            ev,
            [
                "+set master m2 10.0.0.1 7000 quorum 3",
                "+set master m2 10.0.0.1 7000 auth-pass ******",
                "+set master m2 10.0.0.1 7000 auth-user bob",
                "+set master m2 10.0.0.1 7000 failover-strategy spare",
            ]
        );
        let s = &m.masters["m2"].spec;
        assert_eq!((s.quorum, s.auth_user.as_deref()), (3, Some("bob")));
        assert_eq!(s.auth_pass, Some(Password("hunter2".into())));
        assert_eq!(s.strategy, Strategy::Spare);
        assert!(!format!("{s:?}").contains("hunter2"), "the password never reaches a log line");
        configure(&mut m, 4, ConfigChange::Set { name: "nope".into(), options: vec![] });
        assert_eq!(
            m.request_outcome(4),
            Some(&ConfigOutcome::Refused("ERR No such master with that name".into()))
        );

        configure(&mut m, 5, ConfigChange::Monitor { spec: spec("other", 7100) });
        m.masters.get_mut("m2").unwrap().replicas.insert(Addr::new("10.0.0.2".into(), 1));
        let ev = configure(&mut m, 6, ConfigChange::Reset { pattern: "m*".into() });
        assert_eq!(ev, ["+reset-master master m2 10.0.0.1 7000"]);
        assert_eq!(m.request_outcome(6), Some(&ConfigOutcome::Done(1)));
        assert!(m.masters["m2"].replicas.is_empty());
        configure(&mut m, 7, ConfigChange::Reset { pattern: "*".into() });
        assert_eq!(m.request_outcome(7), Some(&ConfigOutcome::Done(2)));

        let ev = configure(&mut m, 8, ConfigChange::Remove { name: "m2".into() });
        assert_eq!(ev, ["-monitor master m2 10.0.0.1 7000"]);
        assert!(!m.masters.contains_key("m2"));
        configure(&mut m, 9, ConfigChange::Remove { name: "m2".into() });
        assert!(matches!(m.request_outcome(9), Some(ConfigOutcome::Refused(_))));
    }

    #[test]
    fn a_lower_quorum_can_make_a_master_objectively_down_at_once() {
        let mut m = Machine::default();
        configure(&mut m, 1, ConfigChange::Monitor { spec: spec("m", 7000) });
        let index = m.applied_index + 1;
        m.apply_command(
            index,
            Command::Opinion { supervisor: 1, master: "m".into(), epoch: 0, down: true },
        );
        assert!(!m.masters["m"].odown);
        let options = vec![MasterOption::Quorum(1)];
        let ev = configure(&mut m, 2, ConfigChange::Set { name: "m".into(), options });
        assert_eq!(ev[1], "+odown master m 10.0.0.1 7000 #quorum 1/1");
        assert!(m.masters["m"].odown);
    }

    #[test]
    fn global_settings_and_the_outcome_log_is_bounded() {
        let mut m = Machine::default();
        let set = |s| ConfigChange::Global { supervisor: 2, setting: s };
        configure(&mut m, 1, set(GlobalSetting::AnnouncePort(7777)));
        configure(&mut m, 2, set(GlobalSetting::ResolveHostnames(true)));
        configure(&mut m, 3, set(GlobalSetting::AnnounceIp("10.1.1.1".into())));
        assert_eq!(
            m.settings,
            Settings {
                resolve_hostnames: true,
                announce_hostnames: false,
                announce: [(2, Announce { ip: "10.1.1.1".into(), port: 7777 })].into(),
            }
        );
        for r in 10..(10 + MAX_REQUESTS as u64 * 2) {
            configure(&mut m, r, set(GlobalSetting::AnnounceHostnames(r % 2 == 0)));
        }
        assert_eq!(m.requests.len(), MAX_REQUESTS);
        assert_eq!(m.request_outcome(1), None, "the oldest outcomes are dropped");
        // The whole state, secrets included, survives a snapshot round trip.
        use crate::consensus::core::StateMachine;
        let mut copy = Machine::default();
        copy.restore(&m.snapshot()).unwrap();
        assert_eq!(copy, m);
    }
}
