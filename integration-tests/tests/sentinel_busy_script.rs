//! A master held by a runaway script answers `-BUSY` to the supervisors' PINGs. Once it has
//! done so for longer than down-after, the supervisors send it SCRIPT KILL (FUNCTION KILL for
//! a function), as Sentinel does: a script that has not written stops, and the master serves
//! again. With redis-server nodes and with warden-node nodes.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use integration_tests::ha::{Group, NodeKind};
use integration_tests::wait;

const DOWN_AFTER: u64 = 1000;

/// Sends `request` (RESP) on a fresh connection and returns it, to read the reply later.
fn send(port: u16, request: &[&str]) -> TcpStream {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    let mut bytes = format!("*{}\r\n", request.len());
    for a in request {
        bytes.push_str(&format!("${}\r\n{a}\r\n", a.len()));
    }
    s.write_all(bytes.as_bytes()).expect("send");
    s
}

/// The first reply line on `s`, waiting up to `timeout`.
fn reply(s: &mut TcpStream, timeout: Duration) -> String {
    s.set_read_timeout(Some(timeout)).expect("timeout");
    let mut seen = Vec::new();
    let mut buf = [0u8; 512];
    while !seen.ends_with(b"\r\n") {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => seen.extend_from_slice(&buf[..n]),
            Err(e) => return format!("{e} after {:?}", String::from_utf8_lossy(&seen)),
        }
    }
    String::from_utf8_lossy(&seen).into_owned()
}

fn busy_master_scenario(kind: NodeKind) {
    let group = Group::start(kind, 1, 3, DOWN_AFTER);
    let master = group.nodes[0].port;
    let mut admin = send(master, &["CONFIG", "SET", "busy-reply-threshold", "100"]);
    assert_eq!(reply(&mut admin, Duration::from_secs(10)), "+OK\r\n");
    let library =
        "#!lua name=spin\nredis.register_function('spin', function() while true do end end)";
    let mut load = send(master, &["FUNCTION", "LOAD", library]);
    assert_eq!(reply(&mut load, Duration::from_secs(10)), "$4\r\nspin\r\n");
    for (request, killed_by) in [
        (&["EVAL", "while true do end", "0"][..], "script: "),
        (&["FCALL", "spin", "0"], "script: spin"),
    ] {
        let mut caller = send(master, request);
        // Busy for down-after, then stopped by a supervisor: the caller gets the kill error.
        let answer = reply(&mut caller, Duration::from_secs(30));
        assert!(
            answer.starts_with("-ERR Script killed by user with SCRIPT KILL...")
                && answer.contains(killed_by),
            "{request:?} ended with {answer:?}"
        );
        wait::until("the master to answer PING again", Duration::from_secs(10), || {
            let mut ping = send(master, &["PING"]);
            match reply(&mut ping, Duration::from_secs(2)).as_str() {
                "+PONG\r\n" => Ok(()),
                other => Err(other.to_string()),
            }
        });
    }
    let logs: String = group.supervisors.iter().map(|s| s.proc.log()).collect();
    assert!(logs.contains("sending SCRIPT KILL"), "no supervisor sent SCRIPT KILL:\n{logs}");
    assert!(logs.contains("sending FUNCTION KILL"), "no supervisor sent FUNCTION KILL:\n{logs}");
}

#[test]
fn supervisors_stop_a_runaway_script_on_a_redis_master() {
    busy_master_scenario(NodeKind::Redis);
}

#[test]
fn supervisors_stop_a_runaway_script_on_a_warden_master() {
    busy_master_scenario(NodeKind::Warden);
}
