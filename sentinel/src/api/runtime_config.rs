//! `SENTINEL MONITOR | REMOVE | SET | RESET | CONFIG GET | CONFIG SET` on the Sentinel port.
//!
//! Parsing checks what Redis Sentinel 7.0 checks, in its order and with its error lines
//! (verified against `redis-sentinel` 7.0.15); the change is then committed through the Raft
//! log ([`crate::machine::runtime_config`]) from whichever supervisor received it, and the
//! reply comes once this supervisor has applied it, so a client that got `+OK` can read the
//! change on every supervisor that has caught up.
//!
//! Deliberate differences from Sentinel: `SENTINEL SET` with several options is all-or-nothing;
//! master names are limited to letters, digits, `.`, `-` and `_` (as in the config file: a
//! space would break every event line); `announce-ip`/`announce-port` are committed too, for
//! the supervisor that was asked; `SENTINEL CONFIG` knows `resolve-hostnames`,
//! `announce-hostnames`, `announce-ip` and `announce-port` (supervisors authenticate each other
//! with `supervisor-auth`, so `sentinel-user`/`sentinel-pass` do not apply); `failover-strategy
//! promote|spare` is an extra `SENTINEL SET` option.

use std::time::Duration;

use bytes::Bytes;
use common::resp::Frame;

use super::Context;
use crate::machine::{
    Addr, Command, ConfigChange, ConfigOutcome, GlobalSetting, Machine, MasterOption, MasterSpec,
    Password, Settings, Strategy,
};

/// How long a request waits to see its change applied here.
const COMMIT_WAIT: Duration = Duration::from_secs(5);

const DEFAULT_DOWN_AFTER_MS: u64 = 30_000;
const DEFAULT_FAILOVER_TIMEOUT_MS: u64 = 180_000;

fn text(b: &Bytes) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn arity(sub: &str) -> String {
    format!("ERR wrong number of arguments for 'sentinel|{sub}' command")
}

/// `SENTINEL MONITOR <name> <ip> <port> <quorum>` (arguments after `MONITOR`). Hostnames need
/// `resolve-hostnames yes`; the caller resolves them.
pub fn parse_monitor(args: &[Bytes], settings: &Settings) -> Result<MasterSpec, String> {
    let [name, host, port, quorum] = args else { return Err(arity("monitor")) };
    let (name, host) = (text(name), text(host));
    let quorum: i64 = text(quorum).parse().map_err(|_| "ERR Invalid quorum".to_string())?;
    let port: i64 = text(port).parse().map_err(|_| "ERR Invalid port".to_string())?;
    if quorum <= 0 {
        return Err("ERR Quorum must be 1 or greater.".into());
    }
    let literal = host.parse::<std::net::IpAddr>().is_ok();
    if !(literal || settings.resolve_hostnames && valid_hostname(&host)) {
        return Err("ERR Invalid IP address or hostname specified".into());
    }
    let port = u16::try_from(port).map_err(|_| "ERR Invalid port number.".to_string())?;
    if !valid_name(&name) {
        return Err(format!(
            "ERR Invalid master name '{name}': use letters, digits, '.', '-' and '_'"
        ));
    }
    Ok(MasterSpec {
        name,
        addr: Addr::new(host, port),
        quorum: u32::try_from(quorum).map_err(|_| "ERR Invalid quorum".to_string())?,
        down_after_ms: DEFAULT_DOWN_AFTER_MS,
        failover_timeout_ms: DEFAULT_FAILOVER_TIMEOUT_MS,
        parallel_syncs: 1,
        ..Default::default()
    })
}

/// `SENTINEL SET <name> <option> <value> ...` (the pairs after the name).
pub fn parse_set(pairs: &[Bytes]) -> Result<Vec<MasterOption>, String> {
    let mut options = Vec::new();
    let mut i = 0;
    while i < pairs.len() {
        let option = text(&pairs[i]);
        let unknown =
            || format!("ERR Unknown option or number of arguments for SENTINEL SET '{option}'");
        let Some(value) = pairs.get(i + 1).map(text) else { return Err(unknown()) };
        let invalid = || format!("ERR Invalid argument '{value}' for SENTINEL SET '{option}'");
        let positive = || value.parse::<u64>().ok().filter(|v| *v > 0).ok_or_else(invalid);
        let positive32 = || value.parse::<u32>().ok().filter(|v| *v > 0).ok_or_else(invalid);
        let parsed = match option.to_ascii_lowercase().as_str() {
            "down-after-milliseconds" => MasterOption::DownAfterMilliseconds(positive()?),
            "failover-timeout" => MasterOption::FailoverTimeout(positive()?),
            "parallel-syncs" => MasterOption::ParallelSyncs(positive32()?),
            "quorum" => MasterOption::Quorum(positive32()?),
            "auth-pass" => {
                MasterOption::AuthPass((!value.is_empty()).then(|| Password(value.clone())))
            }
            "auth-user" => MasterOption::AuthUser((!value.is_empty()).then(|| value.clone())),
            "failover-strategy" => MasterOption::FailoverStrategy(match value.as_str() {
                "promote" => Strategy::Promote,
                "spare" => Strategy::Spare,
                _ => return Err(invalid()),
            }),
            _ => return Err(unknown()),
        };
        options.push(parsed);
        i += 2;
    }
    Ok(options)
}

const ONLY_GET_SET: &str =
    "ERR Only SENTINEL CONFIG GET <option> / SET <option> <value> are supported.";

/// The parameters `SENTINEL CONFIG GET` reports, in Sentinel's order.
const PARAMS: [&str; 4] =
    ["resolve-hostnames", "announce-hostnames", "announce-ip", "announce-port"];

/// `SENTINEL CONFIG SET <param> <value>`.
pub fn parse_config_set(param: &Bytes, value: &Bytes) -> Result<GlobalSetting, String> {
    let (param, value) = (text(param), text(value));
    let invalid = || format!("ERR Invalid value '{value}' to SENTINEL CONFIG SET '{param}'");
    let yes_no = || match value.to_ascii_lowercase().as_str() {
        "yes" => Ok(true),
        "no" => Ok(false),
        _ => Err(invalid()),
    };
    match param.to_ascii_lowercase().as_str() {
        "resolve-hostnames" => Ok(GlobalSetting::ResolveHostnames(yes_no()?)),
        "announce-hostnames" => Ok(GlobalSetting::AnnounceHostnames(yes_no()?)),
        "announce-ip" => Ok(GlobalSetting::AnnounceIp(value.clone())),
        "announce-port" => Ok(GlobalSetting::AnnouncePort(value.parse().map_err(|_| invalid())?)),
        _ => Err(format!("ERR Invalid argument '{param}' to SENTINEL CONFIG SET")),
    }
}

/// `SENTINEL CONFIG GET <pattern>` on supervisor `me`: the matching parameters as a map, in
/// Sentinel's order.
pub fn config_get(settings: &Settings, me: u64, pattern: &Bytes) -> Frame {
    let yes_no = |b: bool| if b { "yes" } else { "no" }.to_string();
    let announce = settings.announce.get(&me).cloned().unwrap_or_default();
    let values = [
        yes_no(settings.resolve_hostnames),
        yes_no(settings.announce_hostnames),
        announce.ip,
        announce.port.to_string(),
    ];
    Frame::Map(
        PARAMS
            .iter()
            .zip(values)
            .filter(|(name, _)| common::glob::matches(pattern, name.as_bytes(), true))
            .map(|(name, value)| (Frame::bulk(name.as_bytes()), Frame::Bulk(Bytes::from(value))))
            .collect(),
    )
}

/// Sentinel's hostname rule is "resolvable"; this only keeps out what cannot be a name.
fn valid_hostname(host: &str) -> bool {
    !host.is_empty()
        && host.len() <= 253
        && host.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
}

/// Parses a configuration subcommand received by supervisor `me` into the change to commit,
/// or answers it at once (`CONFIG GET`, and every refusal). `args` is the whole request
/// (`SENTINEL <sub> ...`).
pub fn parse(state: &Machine, me: u64, args: &[Bytes]) -> Result<ConfigChange, Frame> {
    let sub = text(&args[1]).to_ascii_lowercase();
    let err = |e: String| Frame::error(e);
    let no_such_master = || Frame::error("ERR No such master with that name");
    match sub.as_str() {
        "monitor" => {
            let spec = parse_monitor(&args[2..], &state.settings).map_err(err)?;
            // Sentinel checks the name last, after the address.
            if state.masters.contains_key(&spec.name) {
                return Err(Frame::error("ERR Duplicate master name."));
            }
            Ok(ConfigChange::Monitor { spec })
        }
        "remove" if args.len() == 3 => {
            let name = text(&args[2]);
            if !state.masters.contains_key(&name) {
                return Err(no_such_master());
            }
            Ok(ConfigChange::Remove { name })
        }
        "set" if args.len() >= 5 => {
            let name = text(&args[2]);
            if !state.masters.contains_key(&name) {
                return Err(no_such_master());
            }
            let options = parse_set(&args[3..]).map_err(err)?;
            Ok(ConfigChange::Set { name, options })
        }
        "reset" if args.len() == 3 => Ok(ConfigChange::Reset { pattern: text(&args[2]) }),
        "config" if args.len() < 3 => Err(err(arity("config"))),
        "config" => match (text(&args[2]).to_ascii_lowercase().as_str(), args.len()) {
            ("get", 4) => Err(config_get(&state.settings, me, &args[3])),
            ("set", 5) => Ok(ConfigChange::Global {
                supervisor: me,
                setting: parse_config_set(&args[3], &args[4]).map_err(err)?,
            }),
            _ => Err(Frame::error(ONLY_GET_SET)),
        },
        other => Err(err(arity(other))),
    }
}

/// Handles a configuration subcommand: parse, commit through Raft, wait until applied here.
pub async fn command(ctx: &Context, args: &[Bytes]) -> Frame {
    let state = ctx.state.borrow().clone();
    let mut change = match parse(&state, ctx.me, args) {
        Ok(change) => change,
        Err(reply) => return reply,
    };
    if let ConfigChange::Monitor { spec } = &mut change {
        if spec.addr.host.parse::<std::net::IpAddr>().is_err() {
            // resolve-hostnames yes: the name must resolve now, as Sentinel requires.
            let target = format!("{}:{}", spec.addr.host, spec.addr.port);
            if tokio::net::lookup_host(target).await.map_or(true, |mut a| a.next().is_none()) {
                return Frame::error("ERR Invalid IP address or hostname specified");
            }
        }
    }
    let reset = matches!(change, ConfigChange::Reset { .. });
    match commit(ctx, change).await {
        Ok(count) if reset => Frame::Integer(count),
        Ok(_) => Frame::ok(),
        Err(line) => Frame::error(line),
    }
}

/// Proposes the change under a fresh nonce and waits for its outcome in the applied state.
/// Refuses at once off a working majority, as the manual failover does.
pub async fn commit(ctx: &Context, change: ConfigChange) -> Result<i64, String> {
    let connected = ctx.connected_peers.lock().clone();
    let (working, why) = ctx.status.borrow().working_majority(&connected);
    if !working {
        return Err(format!("NOLEADER {why}; nothing was changed"));
    }
    let request = rand::random::<u64>() | 1;
    tracing::info!(?change, "configuration change requested; proposing");
    let cmd = Command::Configure { request, change };
    if let Err(e) = ctx.consensus.propose(cmd.encode()).await {
        return Err(format!("NOLEADER raft refused the proposal: {e}; nothing was changed"));
    }
    let mut watch = ctx.state.clone();
    let waited = tokio::time::timeout(COMMIT_WAIT, async {
        loop {
            if let Some(outcome) = watch.borrow_and_update().request_outcome(request) {
                return Some(outcome.clone());
            }
            if watch.changed().await.is_err() {
                return None;
            }
        }
    })
    .await;
    match waited {
        Ok(Some(ConfigOutcome::Done(n))) => Ok(n),
        Ok(Some(ConfigOutcome::Refused(line))) => Err(line),
        Ok(None) => Err("NOLEADER the consensus task stopped".into()),
        Err(_) => Err(format!(
            "TRYAGAIN The change was proposed but not seen committed within {} ms; check before retrying",
            COMMIT_WAIT.as_millis()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(line: &str) -> Vec<Bytes> {
        line.split(' ').map(|w| Bytes::from(w.replace("''", ""))).collect()
    }

    fn refusal(state: &Machine, line: &str) -> String {
        match parse(state, 1, &args(line)) {
            Err(Frame::Error(e)) => String::from_utf8_lossy(&e).into_owned(),
            other => panic!("{line}: expected an error, got {other:?}"),
        }
    }

    fn state() -> Machine {
        let mut m = Machine::default();
        let spec = parse_monitor(&args("mymaster 127.0.0.1 6379 2"), &m.settings).unwrap();
        m.apply_command(
            1,
            Command::Configure { request: 0, change: ConfigChange::Monitor { spec } },
        );
        m
    }

    /// Every refusal below is what `redis-sentinel` 7.0.15 answers to the same request.
    #[test]
    fn refusals_are_sentinels_error_lines() {
        let s = state();
        for (line, want) in [
            ("SENTINEL MONITOR mymaster 127.0.0.1 6391 2", "ERR Duplicate master name."),
            ("SENTINEL MONITOR m2 127.0.0.1 6391 0", "ERR Quorum must be 1 or greater."),
            ("SENTINEL MONITOR m2 127.0.0.1 6391 -1", "ERR Quorum must be 1 or greater."),
            ("SENTINEL MONITOR m2 127.0.0.1 6391 x", "ERR Invalid quorum"),
            ("SENTINEL MONITOR m2 127.0.0.1 abc 2", "ERR Invalid port"),
            ("SENTINEL MONITOR m2 127.0.0.1 99999 2", "ERR Invalid port number."),
            (
                "SENTINEL MONITOR m2 localhost 6391 2",
                "ERR Invalid IP address or hostname specified",
            ),
            (
                "SENTINEL MONITOR m2 127.0.0.1 6391",
                "ERR wrong number of arguments for 'sentinel|monitor' command",
            ),
            ("SENTINEL REMOVE nope", "ERR No such master with that name"),
            ("SENTINEL REMOVE", "ERR wrong number of arguments for 'sentinel|remove' command"),
            ("SENTINEL SET nope quorum 2", "ERR No such master with that name"),
            (
                "SENTINEL SET mymaster quorum 0",
                "ERR Invalid argument '0' for SENTINEL SET 'quorum'",
            ),
            (
                "SENTINEL SET mymaster quorum x",
                "ERR Invalid argument 'x' for SENTINEL SET 'quorum'",
            ),
            (
                "SENTINEL SET mymaster quorum",
                "ERR wrong number of arguments for 'sentinel|set' command",
            ),
            (
                "SENTINEL SET mymaster bogus 1",
                "ERR Unknown option or number of arguments for SENTINEL SET 'bogus'",
            ),
            (
                "SENTINEL SET mymaster quorum 3 bogus",
                "ERR Unknown option or number of arguments for SENTINEL SET 'bogus'",
            ),
            (
                "SENTINEL SET mymaster down-after-milliseconds 5000 parallel-syncs 0",
                "ERR Invalid argument '0' for SENTINEL SET 'parallel-syncs'",
            ),
            (
                "SENTINEL SET mymaster down-after-milliseconds 0",
                "ERR Invalid argument '0' for SENTINEL SET 'down-after-milliseconds'",
            ),
            ("SENTINEL RESET", "ERR wrong number of arguments for 'sentinel|reset' command"),
            ("SENTINEL CONFIG", "ERR wrong number of arguments for 'sentinel|config' command"),
            ("SENTINEL CONFIG foo", ONLY_GET_SET),
            ("SENTINEL CONFIG get", ONLY_GET_SET),
            ("SENTINEL CONFIG set announce-port", ONLY_GET_SET),
            ("SENTINEL CONFIG set announce-port 1 announce-ip 2", ONLY_GET_SET),
            (
                "SENTINEL CONFIG set announce-port -1",
                "ERR Invalid value '-1' to SENTINEL CONFIG SET 'announce-port'",
            ),
            (
                "SENTINEL CONFIG set announce-port 65536",
                "ERR Invalid value '65536' to SENTINEL CONFIG SET 'announce-port'",
            ),
            (
                "SENTINEL CONFIG set resolve-hostnames maybe",
                "ERR Invalid value 'maybe' to SENTINEL CONFIG SET 'resolve-hostnames'",
            ),
            ("SENTINEL CONFIG set bogus 1", "ERR Invalid argument 'bogus' to SENTINEL CONFIG SET"),
        ] {
            assert_eq!(refusal(&s, line), want, "{line}");
        }
    }

    #[test]
    fn valid_requests_become_one_change_each() {
        let s = state();
        let change = parse(&s, 1, &args("SENTINEL set mymaster QUORUM 3 auth-pass secret auth-user '' failover-strategy spare")).unwrap();
        assert_eq!(
            change,
            ConfigChange::Set {
                name: "mymaster".into(),
                options: vec![
                    MasterOption::Quorum(3),
                    MasterOption::AuthPass(Some(Password("secret".into()))),
                    MasterOption::AuthUser(None),
                    MasterOption::FailoverStrategy(Strategy::Spare),
                ]
            }
        );
        assert_eq!(
            parse(&s, 1, &args("SENTINEL reset m*")).unwrap(),
            ConfigChange::Reset { pattern: "m*".into() }
        );
        let monitor = parse(&s, 1, &args("SENTINEL monitor other 127.0.0.1 0 1")).unwrap();
        assert!(
            matches!(monitor, ConfigChange::Monitor { spec } if spec.addr.port == 0 && spec.quorum == 1 && spec.down_after_ms == 30000)
        );
        let mut hosts = s.clone();
        hosts.settings.resolve_hostnames = true;
        assert!(parse(&hosts, 1, &args("SENTINEL monitor other localhost 6379 1")).is_ok());
        assert_eq!(
            parse(&s, 1, &args("SENTINEL config set announce-port 70")).unwrap(),
            ConfigChange::Global { supervisor: 1, setting: GlobalSetting::AnnouncePort(70) }
        );
    }

    #[test]
    fn config_get_matches_sentinels_order_and_globs() {
        let mut settings = Settings::default();
        settings.announce.insert(1, crate::machine::Announce { ip: String::new(), port: 70 });
        let names = |f: Frame| match f {
            Frame::Map(pairs) => pairs
                .into_iter()
                .map(|(k, v)| format!("{}={}", text_of(&k), text_of(&v)))
                .collect::<Vec<_>>(),
            other => panic!("{other:?}"),
        };
        assert_eq!(
            names(config_get(&settings, 1, &Bytes::from("announce*"))),
            ["announce-hostnames=no", "announce-ip=", "announce-port=70"]
        );
        assert_eq!(
            names(config_get(&settings, 2, &Bytes::from("announce-port"))),
            ["announce-port=0"],
            "announce-* describe the supervisor asked"
        );
        settings.resolve_hostnames = true;
        assert_eq!(names(config_get(&settings, 1, &Bytes::from("*")))[0], "resolve-hostnames=yes");
        assert!(names(config_get(&settings, 1, &Bytes::from("bogus"))).is_empty());
    }

    /// Whatever the arguments, parsing answers (a change or an error reply) and applying the
    /// change never panics.
    #[test]
    fn arbitrary_arguments_never_panic() {
        use rand::{Rng, SeedableRng};
        let words = [
            "monitor",
            "remove",
            "set",
            "reset",
            "config",
            "get",
            "set",
            "mymaster",
            "m2",
            "*",
            "quorum",
            "auth-pass",
            "auth-user",
            "failover-strategy",
            "spare",
            "promote",
            "down-after-milliseconds",
            "parallel-syncs",
            "failover-timeout",
            "announce-port",
            "announce-ip",
            "resolve-hostnames",
            "yes",
            "no",
            "0",
            "-1",
            "1",
            "65536",
            "18446744073709551616",
            "127.0.0.1",
            "::1",
            "localhost",
            "",
            "\u{0}",
            "é",
        ];
        let mut rng = rand::rngs::StdRng::seed_from_u64(6);
        let mut state = state();
        for i in 0..20_000u64 {
            let n = rng.gen_range(2..9);
            let mut a: Vec<Bytes> = vec![Bytes::from("SENTINEL")];
            for _ in 1..n {
                a.push(Bytes::from(words[rng.gen_range(0..words.len())]));
            }
            if let Ok(change) = parse(&state, 1, &a) {
                let index = state.applied_index + 1;
                state.apply_command(index, Command::Configure { request: i, change });
                state.take_events();
            }
        }
    }

    fn text_of(f: &Frame) -> String {
        match f {
            Frame::Bulk(b) => String::from_utf8_lossy(b).into_owned(),
            other => panic!("{other:?}"),
        }
    }
}
