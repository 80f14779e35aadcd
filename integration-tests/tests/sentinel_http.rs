//! The supervisors' HTTP/JSON API across processes: three warden-sentinel supervisors with
//! `http-port` set, watching warden-node data nodes (one master, one replica). Requests are
//! plain HTTP/1.1 over std's TcpStream, as curl or a load balancer would send them.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use integration_tests::ha::{self, Group, NodeKind, MASTER};
use integration_tests::process::Proc;
use integration_tests::{bin_dir, ports, wait};

/// A supervisor started by this test (the shared harness has no HTTP port).
struct Sup {
    id: u64,
    port: u16,
    http: u16,
    proc: Proc,
}

/// Sends one raw request and returns the status code and body.
fn raw(port: u16, request: &[u8]) -> Result<(u16, String), String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(10))).map_err(|e| e.to_string())?;
    s.write_all(request).map_err(|e| e.to_string())?;
    let mut reply = Vec::new();
    s.read_to_end(&mut reply).map_err(|e| e.to_string())?;
    let text = String::from_utf8(reply).map_err(|e| e.to_string())?;
    let (head, body) = text.split_once("\r\n\r\n").ok_or(format!("no head end in {text:?}"))?;
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or(format!("bad status line in {head:?}"))?;
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("Content-Length: "))
        .and_then(|v| v.parse().ok())
        .ok_or(format!("no Content-Length in {head:?}"))?;
    if length != body.len() {
        return Err(format!("Content-Length {length} but {} body bytes", body.len()));
    }
    Ok((status, body.to_string()))
}

fn http(port: u16, method: &str, path: &str) -> Result<(u16, String), String> {
    raw(
        port,
        format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\n\r\n")
            .as_bytes(),
    )
}

fn post(port: u16, path: &str, body: &str) -> Result<(u16, String), String> {
    raw(
        port,
        format!(
            "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .as_bytes(),
    )
}

/// A parsed JSON value (this crate has no JSON dependency; a small parser keeps the checks
/// structural rather than textual).
#[derive(Debug, Clone, PartialEq)]
enum J {
    Null,
    Bool(bool),
    Num(f64),
    Str(String),
    Arr(Vec<J>),
    Obj(Vec<(String, J)>),
}

static NULL: J = J::Null;

impl std::ops::Index<&str> for J {
    type Output = J;
    fn index(&self, key: &str) -> &J {
        match self {
            J::Obj(fields) => fields.iter().find(|(k, _)| k == key).map_or(&NULL, |(_, v)| v),
            _ => &NULL,
        }
    }
}

impl std::ops::Index<usize> for J {
    type Output = J;
    fn index(&self, i: usize) -> &J {
        match self {
            J::Arr(items) => items.get(i).unwrap_or(&NULL),
            _ => &NULL,
        }
    }
}

impl J {
    fn num(&self) -> Option<u64> {
        match self {
            J::Num(n) => Some(*n as u64),
            _ => None,
        }
    }
    fn str(&self) -> Option<&str> {
        match self {
            J::Str(s) => Some(s),
            _ => None,
        }
    }
    fn items(&self) -> &[J] {
        match self {
            J::Arr(items) => items,
            _ => &[],
        }
    }
}

fn parse_value(s: &[u8], i: &mut usize) -> Result<J, String> {
    while s.get(*i).is_some_and(|c| c.is_ascii_whitespace()) {
        *i += 1;
    }
    let c = *s.get(*i).ok_or("unexpected end")?;
    let lit = |i: &mut usize, word: &str, v: J| {
        if s[*i..].starts_with(word.as_bytes()) {
            *i += word.len();
            Ok(v)
        } else {
            Err(format!("bad literal at {i}"))
        }
    };
    match c {
        b'n' => lit(i, "null", J::Null),
        b't' => lit(i, "true", J::Bool(true)),
        b'f' => lit(i, "false", J::Bool(false)),
        b'"' => {
            *i += 1;
            let mut out = String::new();
            loop {
                match *s.get(*i).ok_or("unterminated string")? {
                    b'"' => break,
                    b'\\' => {
                        *i += 1;
                        match s.get(*i) {
                            Some(b'n') => out.push('\n'),
                            Some(b't') => out.push('\t'),
                            Some(&e @ (b'"' | b'\\' | b'/')) => out.push(e as char),
                            other => return Err(format!("unsupported escape {other:?}")),
                        }
                        *i += 1;
                    }
                    _ => {
                        let start = *i;
                        while s.get(*i).is_some_and(|c| *c != b'"' && *c != b'\\') {
                            *i += 1;
                        }
                        out.push_str(
                            std::str::from_utf8(&s[start..*i]).map_err(|e| e.to_string())?,
                        );
                    }
                }
            }
            *i += 1;
            Ok(J::Str(out))
        }
        b'[' | b'{' => {
            *i += 1;
            let (close, object) = if c == b'[' { (b']', false) } else { (b'}', true) };
            let (mut items, mut fields) = (Vec::new(), Vec::new());
            loop {
                while s.get(*i).is_some_and(|c| c.is_ascii_whitespace() || *c == b',') {
                    *i += 1;
                }
                if s.get(*i) == Some(&close) {
                    *i += 1;
                    break;
                }
                if object {
                    let J::Str(key) = parse_value(s, i)? else {
                        return Err("key not a string".into());
                    };
                    while s.get(*i).is_some_and(|c| c.is_ascii_whitespace() || *c == b':') {
                        *i += 1;
                    }
                    fields.push((key, parse_value(s, i)?));
                } else {
                    items.push(parse_value(s, i)?);
                }
            }
            Ok(if object { J::Obj(fields) } else { J::Arr(items) })
        }
        _ => {
            let start = *i;
            while s
                .get(*i)
                .is_some_and(|c| matches!(c, b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9'))
            {
                *i += 1;
            }
            let text = std::str::from_utf8(&s[start..*i]).map_err(|e| e.to_string())?;
            text.parse().map(J::Num).map_err(|_| format!("bad number {text:?} at {start}"))
        }
    }
}

fn json(body: &str) -> J {
    let mut i = 0;
    parse_value(body.as_bytes(), &mut i).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"))
}

/// Starts three supervisors with HTTP ports, retrying with fresh ports if one was taken.
fn start_supervisors(master_port: u16, dir: &std::path::Path) -> Vec<Sup> {
    'attempt: for attempt in 1..=3 {
        let raft: Vec<u16> = (0..3).map(|_| ports::allocate()).collect();
        let mut sups = Vec::new();
        for id in 1..=3u64 {
            let (port, http) = (ports::allocate(), ports::allocate());
            let mut conf = String::from("bind 127.0.0.1\nsupervisor-auth http-test-secret\n");
            for (i, p) in raft.iter().enumerate() {
                conf.push_str(&format!("raft-peer {} 127.0.0.1 {p}\n", i + 1));
            }
            conf.push_str(&format!("sentinel monitor {MASTER} 127.0.0.1 {master_port} 2\n"));
            conf.push_str(&format!("sentinel down-after-milliseconds {MASTER} 5000\n"));
            conf.push_str(&format!("http-port {http}\n"));
            let file = dir.join(format!("sentinel-{id}-{attempt}.conf"));
            std::fs::write(&file, conf).expect("writing a supervisor config");
            let args: Vec<String> = [
                file.display().to_string(),
                "--raft-id".into(),
                id.to_string(),
                "--port".into(),
                port.to_string(),
                "--dir".into(),
                "data".into(),
            ]
            .to_vec();
            let proc =
                Proc::start(&format!("supervisor{id}"), &bin_dir().join("warden-sentinel"), &args);
            sups.push(Sup { id, port, http, proc });
        }
        for s in &sups {
            let deadline = std::time::Instant::now() + Duration::from_secs(20);
            while http(s.http, "GET", "/v1/health").is_err() {
                let log = s.proc.log();
                if log.contains("Address already in use") || log.contains("can't listen") {
                    eprintln!(
                        "retrying the supervisors' start: {}",
                        log.lines().last().unwrap_or_default()
                    );
                    continue 'attempt;
                }
                assert!(
                    std::time::Instant::now() < deadline,
                    "supervisor {} never served HTTP:\n{log}",
                    s.id
                );
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        return sups;
    }
    panic!("could not start the supervisors");
}

#[test]
fn http_api_of_a_running_group() {
    let group = Group::start(NodeKind::Warden, 1, 0, 5000);
    let (master, replica) = (group.nodes[0].port, group.nodes[1].port);
    let conf_dir = tempfile::tempdir().expect("temp dir");
    let mut sups = start_supervisors(master, conf_dir.path());

    // Every supervisor is healthy and sees the master with its replica in sync.
    for s in &sups {
        wait::until("health 200 and the replica in sync", Duration::from_secs(20), || {
            let (code, body) = http(s.http, "GET", "/v1/health")?;
            if code != 200 {
                return Err(format!("health {code} {body}"));
            }
            let (code, body) = http(s.http, "GET", &format!("/v1/masters/{MASTER}"))?;
            let m = json(&body);
            let links: Vec<Option<&str>> =
                m["replicas"].items().iter().map(|x| x["master_link_status"].str()).collect();
            if code == 200 && m["port"].num() == Some(master as u64) && links == [Some("ok")] {
                Ok(())
            } else {
                Err(format!("{code} {body}"))
            }
        });
    }
    let s0 = &sups[0];
    let (code, body) = http(s0.http, "GET", "/v1/masters").unwrap();
    let list = json(&body);
    assert_eq!(code, 200);
    assert_eq!(list.items().len(), 1, "{body}");
    assert_eq!(list[0]["name"].str(), Some(MASTER));
    assert_eq!(list[0]["address"].str(), Some(format!("127.0.0.1:{master}").as_str()));
    assert_eq!(list[0]["replicas"][0]["port"].num(), Some(replica as u64));
    assert_eq!(list[0]["failover"], J::Null);
    assert_eq!(list[0]["failover_strategy"].str(), Some("promote"));
    assert_eq!(list[0]["spares"], J::Arr(Vec::new()));

    // The supervisor group: three voters, exactly one leader, and (asked of the leader) each
    // one's match index and lag.
    let (code, body) = http(s0.http, "GET", "/v1/members").unwrap();
    let members = json(&body);
    assert_eq!(code, 200, "{body}");
    let list = members["members"].items();
    assert_eq!(list.iter().map(|m| m["id"].num()).collect::<Vec<_>>(), [Some(1), Some(2), Some(3)]);
    assert!(list.iter().all(|m| m["role"].str() == Some("voter")), "{body}");
    assert_eq!(list.iter().filter(|m| m["leader"] == J::Bool(true)).count(), 1, "{body}");
    wait::until("the leader to report every match index", Duration::from_secs(10), || {
        let (_, body) = http(s0.http, "GET", "/v1/members")?;
        let leader =
            json(&body)["leader"].num().filter(|l| *l > 0).ok_or(format!("no leader: {body}"))?
                as usize;
        let (_, body) = http(sups[leader - 1].http, "GET", "/v1/members")?;
        let members = json(&body);
        let list = members["members"].items();
        if list.len() == 3 && list.iter().all(|m| m["match_index"].num().is_some()) {
            Ok(())
        } else {
            Err(body)
        }
    });

    // Bad requests: JSON errors with the right status, and the server keeps serving.
    let cases: [(&[u8], u16); 6] = [
        (b"GET /v1/masters/nosuch HTTP/1.1\r\n\r\n", 404),
        (b"GET /nope HTTP/1.1\r\n\r\n", 404),
        (b"DELETE /v1/masters HTTP/1.1\r\n\r\n", 405),
        (b"GET /v1/masters/mymaster/failover HTTP/1.1\r\n\r\n", 405),
        (b"this is not http\r\n\r\n", 400),
        (b"POST /v1/masters/mymaster/failover HTTP/1.1\r\nContent-Length: 100000\r\n\r\n", 413),
    ];
    for (request, want) in cases {
        let (code, body) = raw(s0.http, request).unwrap();
        assert_eq!(code, want, "{}: {body}", String::from_utf8_lossy(request));
        assert!(json(&body)["error"].str().is_some(), "{body}");
    }
    let mut huge = b"GET /v1/masters HTTP/1.1\r\nX-Filler: ".to_vec();
    huge.extend(std::iter::repeat_n(b'a', 20_000));
    huge.extend(b"\r\n\r\n");
    assert_eq!(raw(s0.http, &huge).unwrap().0, 431);

    // Metrics in Prometheus text, with redis_exporter's names.
    let (code, metrics) = http(s0.http, "GET", "/metrics").unwrap();
    assert_eq!(code, 200);
    let labels = format!("master_name=\"{MASTER}\",master_address=\"127.0.0.1:{master}\"");
    for line in [
        "redis_sentinel_masters 1".to_string(),
        format!("redis_sentinel_master_status{{{labels},master_status=\"ok\"}} 1"),
        format!("redis_sentinel_master_slaves{{{labels}}} 1"),
        format!("redis_sentinel_master_sentinels{{{labels}}} 3"),
        format!("redis_sentinel_master_setting_ckquorum{{{labels}}} 2"),
        format!("redis_sentinel_master_config_epoch{{{labels}}} 0"),
        "warden_raft_voters 3".to_string(),
        "warden_raft_healthy 1".to_string(),
    ] {
        assert!(metrics.lines().any(|l| l == line), "no line {line:?} in:\n{metrics}");
    }

    // A manual failover through a follower's HTTP API: committed once, seen by everyone.
    let leader = wait::until("a raft leader", Duration::from_secs(10), || {
        let (_, body) = http(s0.http, "GET", "/v1/health")?;
        match json(&body)["leader"].num() {
            Some(l) if l > 0 => Ok(l),
            _ => Err(body),
        }
    });
    let follower = sups.iter().find(|s| s.id != leader).expect("a follower");
    let (code, body) =
        http(follower.http, "POST", &format!("/v1/masters/{MASTER}/failover")).unwrap();
    assert_eq!(code, 200, "{body}");
    let started = json(&body);
    assert_eq!(started["epoch"].num(), Some(1));
    assert_eq!(started["candidate"].str(), Some(format!("127.0.0.1:{replica}").as_str()));
    for s in &sups {
        wait::until("every supervisor to show the new master", Duration::from_secs(20), || {
            let (_, body) = http(s.http, "GET", &format!("/v1/masters/{MASTER}"))?;
            let m = json(&body);
            let new_addr = format!("127.0.0.1:{replica}");
            let old_follows = m["replicas"].items().iter().any(|x| {
                x["port"].num() == Some(master as u64)
                    && x["master"].str() == Some(new_addr.as_str())
                    && x["master_link_status"].str() == Some("ok")
            });
            let moved =
                m["port"].num() == Some(replica as u64) && m["config_epoch"].num() == Some(1);
            if moved && m["failover"] == J::Null && old_follows {
                Ok(())
            } else {
                Err(body)
            }
        });
    }
    assert_eq!(ha::master_addr(follower.port).unwrap().1, replica);

    // The history, from the committed state, on every supervisor alike.
    for s in &sups {
        let (code, body) = http(s.http, "GET", &format!("/v1/history/{MASTER}")).unwrap();
        assert_eq!(code, 200, "{body}");
        let h = json(&body);
        assert_eq!(h.items().len(), 1, "{body}");
        assert_eq!(h[0]["epoch"].num(), Some(1));
        assert_eq!(h[0]["from"].str(), Some(format!("127.0.0.1:{master}").as_str()));
        assert_eq!(h[0]["to"].str(), Some(format!("127.0.0.1:{replica}").as_str()));
        assert_eq!(h[0]["reason"].str(), Some("manual"));
        assert_eq!(h[0]["outcome"].str(), Some("ended"));
        assert!(h[0]["duration_ms"].num().is_some_and(|d| d < 20_000), "{body}");
    }
    assert_eq!(http(s0.http, "GET", "/v1/history/nosuch").unwrap().0, 404);

    // A switchover back to the first master (a replica now) through the HTTP API, with a
    // JSON body; bad bodies and a target that is not a replica are 400s that say why.
    let path = format!("/v1/masters/{MASTER}/switchover");
    let (code, body) = post(s0.http, &path, "{\"to\": 5}").unwrap();
    assert_eq!(code, 400, "{body}");
    assert!(json(&body)["error"].str().is_some_and(|e| e.contains("'to' has the wrong type")));
    let (code, body) =
        post(s0.http, &path, &format!("{{\"to\":\"127.0.0.1:{}\"}}", s0.port)).unwrap();
    assert_eq!(code, 400, "{body}");
    assert!(json(&body)["error"].str().is_some_and(|e| e.contains("is not a replica")), "{body}");
    let (code, body) =
        post(s0.http, &path, &format!("{{\"to\":\"127.0.0.1:{master}\",\"timeout_ms\":5000}}"))
            .unwrap();
    assert_eq!(code, 200, "{body}");
    assert_eq!(json(&body)["target"].str(), Some(format!("127.0.0.1:{master}").as_str()));
    assert_eq!(json(&body)["epoch"].num(), Some(2));
    for s in &sups {
        wait::until(
            "every supervisor to show the switchover's end",
            Duration::from_secs(20),
            || {
                let (_, body) = http(s.http, "GET", &format!("/v1/history/{MASTER}"))?;
                let h = json(&body);
                let last = h.items().last().ok_or_else(|| body.clone())?;
                // Settled, as at the start: the demoted replica is seen in sync with the master.
                let (_, state) = http(s.http, "GET", &format!("/v1/masters/{MASTER}"))?;
                let m = json(&state);
                let links: Vec<Option<&str>> =
                    m["replicas"].items().iter().map(|x| x["master_link_status"].str()).collect();
                if last["reason"].str() == Some("switchover")
                    && last["outcome"].str() == Some("ended")
                    && m["port"].num() == Some(master as u64)
                    && links == [Some("ok")]
                {
                    Ok(())
                } else {
                    Err(body)
                }
            },
        );
        assert_eq!(ha::master_addr(s.port).unwrap().1, master);
    }

    // Lose the majority: the survivor's health turns 503 and a failover is refused with 503.
    let survivor = sups.iter().position(|s| s.id != leader).expect("a follower");
    for (i, s) in sups.iter_mut().enumerate() {
        if i != survivor {
            s.proc.kill();
        }
    }
    let s = &sups[survivor];
    wait::until("health 503 without a majority", Duration::from_secs(10), || {
        let (code, body) = http(s.http, "GET", "/v1/health")?;
        if code == 503 && json(&body)["healthy"] == J::Bool(false) {
            Ok(())
        } else {
            Err(format!("{code} {body}"))
        }
    });
    let (code, body) = http(s.http, "POST", &format!("/v1/masters/{MASTER}/failover")).unwrap();
    assert_eq!(code, 503, "{body}");
    assert!(json(&body)["error"].str().is_some_and(|e| e.starts_with("NOLEADER")), "{body}");
    let metrics = http(s.http, "GET", "/metrics").unwrap().1;
    assert!(metrics.lines().any(|l| l == "warden_raft_healthy 0"), "{metrics}");
}
