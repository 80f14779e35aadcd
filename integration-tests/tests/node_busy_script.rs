//! A script past `busy-reply-threshold`: the other clients, old and new, are answered as Redis
//! answers them (`-BUSY`, and the few commands that can end the wait), SCRIPT KILL and
//! FUNCTION KILL stop a script that has not written, and SHUTDOWN NOSAVE stops one that has,
//! leaving none of its writes in the AOF. Each scenario runs on redis-server and on
//! warden-node, and what the clients saw must be the same.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use integration_tests::nodes::{ask, cmd, Kind, Node};
use integration_tests::wait;

const BUSY: Duration = Duration::from_secs(10);

const LIBRARY: &str = "#!lua name=spin\n\
    redis.register_function('spin', function() while true do end end)\n\
    redis.register_function('write_then_spin', function(keys) \
        redis.call('set', keys[1], 'partial') while true do end end)";

/// FUNCTION STATS with the running time masked (it differs from run to run).
fn function_stats(c: &mut redis::Connection) -> String {
    let text = ask(c, &["FUNCTION", "STATS"]);
    let Some(key) = text.find("duration_ms") else { return text };
    let Some(start) = text[key..].find("int(").map(|i| key + i) else { return text };
    let end = text[start..].find(')').map_or(text.len(), |i| start + i + 1);
    format!("{}<masked>{}", &text[..start], &text[end..])
}

/// A connection to `node` made by a fresh client, as redis-cli would open one during the wait.
fn fresh(node: &Node) -> redis::Connection {
    redis::Client::open(format!("redis://127.0.0.1:{}/", node.port))
        .and_then(|client| client.get_connection_with_timeout(Duration::from_secs(5)))
        .unwrap_or_else(|e| panic!("connecting while busy: {e}"))
}

/// The script's caller: sends its command raw, and reads the one-line reply later.
struct Caller(TcpStream);

impl Caller {
    fn send(node: &Node, request: &[&str]) -> Caller {
        let mut stream = TcpStream::connect(("127.0.0.1", node.port)).expect("connect");
        let mut bytes = format!("*{}\r\n", request.len());
        for a in request {
            bytes.push_str(&format!("${}\r\n{a}\r\n", a.len()));
        }
        stream.write_all(bytes.as_bytes()).expect("send");
        stream.set_read_timeout(Some(BUSY)).expect("timeout");
        Caller(stream)
    }

    /// The reply line, or what came before the connection closed.
    fn reply(&mut self) -> String {
        let mut seen = Vec::new();
        let mut buf = [0u8; 1024];
        while !seen.ends_with(b"\r\n") {
            match self.0.read(&mut buf) {
                Ok(0) => return format!("closed after {:?}", String::from_utf8_lossy(&seen)),
                Ok(n) => seen.extend_from_slice(&buf[..n]),
                Err(e) => return format!("{e} after {:?}", String::from_utf8_lossy(&seen)),
            }
        }
        String::from_utf8_lossy(&seen).into_owned()
    }
}

/// Polls `c` with PING until the server answers -BUSY.
fn wait_busy(c: &mut redis::Connection) -> String {
    wait::until("the script to be busy", BUSY, || {
        let reply = ask(c, &["PING"]);
        if reply.contains("BUSY") {
            Ok(reply)
        } else {
            Err(reply)
        }
    })
}

/// An EVAL that never ends on its own, then one that hides in pcall: what everyone saw.
fn eval_scenario(kind: Kind) -> Vec<String> {
    let node = Node::start(kind, "node", &["--busy-reply-threshold", "100"]);
    let mut seen = Vec::new();
    let mut other = node.connect();
    let _: () = cmd(&mut other, &["SET", "k", "before"]);
    let mut caller = Caller::send(&node, &["EVAL", "local i = 0 while true do i = i + 1 end", "0"]);
    seen.push(wait_busy(&mut other));
    let mut newcomer = fresh(&node);
    for request in [
        &["PING"][..],
        &["FUNCTION", "STATS"],
        &["CLIENT", "LIST"],
        &["AUTH", "secret"],
        &["GET"],
        &["NO-SUCH-COMMAND"],
        &["MULTI"],
        &["SET", "k", "in-multi"],
        &["EXEC"],
        &["MULTI"],
        &["MULTI"],
        &["DISCARD"],
        &["DISCARD"],
        &["UNWATCH"],
        &["SHUTDOWN"],
        &["SHUTDOWN", "ABORT"],
        &["FUNCTION", "KILL"],
    ] {
        seen.push(format!("{request:?} -> {}", ask(&mut newcomer, request)));
    }
    seen.push(format!("SCRIPT KILL -> {}", ask(&mut other, &["SCRIPT", "KILL"])));
    seen.push(format!("caller got {}", caller.reply()));
    seen.push(format!("after: {}", ask(&mut other, &["GET", "k"])));
    seen.push(format!("after, newcomer: {}", ask(&mut newcomer, &["PING"])));
    seen.push(format!("SCRIPT KILL when idle -> {}", ask(&mut other, &["SCRIPT", "KILL"])));

    let body = "while true do pcall(function() while true do end end) end";
    let mut caller = Caller::send(&node, &["EVAL", body, "0"]);
    seen.push(wait_busy(&mut other));
    seen.push(format!("SCRIPT KILL -> {}", ask(&mut newcomer, &["SCRIPT", "KILL"])));
    seen.push(format!("pcall caller got {}", caller.reply()));
    seen.push(format!("after: {}", ask(&mut other, &["PING"])));
    seen
}

#[test]
fn a_busy_eval_answers_others_as_redis_does_and_script_kill_stops_it() {
    let redis = eval_scenario(Kind::Redis);
    let warden = eval_scenario(Kind::Warden);
    assert_eq!(warden, redis);
}

/// A function that wrote and then spins, with the AOF on: it cannot be killed, SHUTDOWN NOSAVE
/// stops the server, and after a restart the data is as before the function.
fn shutdown_scenario(kind: Kind) -> Vec<String> {
    let extra = ["--busy-reply-threshold", "100", "--appendonly", "yes", "--appendfsync", "always"];
    let mut node = Node::start(kind, "node", &extra);
    let mut seen = Vec::new();
    let mut other = node.connect();
    let _: String = cmd(&mut other, &["FUNCTION", "LOAD", LIBRARY]);
    let _: () = cmd(&mut other, &["SET", "before", "1"]);
    let mut caller = Caller::send(&node, &["FCALL", "write_then_spin", "1", "k"]);
    seen.push(wait_busy(&mut other));
    seen.push(format!("FUNCTION KILL -> {}", ask(&mut other, &["FUNCTION", "KILL"])));
    seen.push(format!("SCRIPT KILL -> {}", ask(&mut other, &["SCRIPT", "KILL"])));
    seen.push(format!("FUNCTION STATS -> {}", function_stats(&mut other)));
    seen.push(format!("SHUTDOWN -> {}", ask(&mut other, &["SHUTDOWN"])));
    let mut newcomer = fresh(&node);
    let reply = ask(&mut newcomer, &["SHUTDOWN", "NOSAVE"]);
    seen.push(format!("SHUTDOWN NOSAVE answered: {}", !reply.starts_with("error")));
    seen.push(format!("caller got {}", caller.reply().starts_with("closed")));
    let status = node.proc.wait_exit(BUSY).expect("the process was running");
    seen.push(format!("exit success: {}", status.success()));
    node.proc.restart();
    let mut c = wait::until("the node to restart", BUSY, || node.try_connect());
    seen.push(format!("before: {}", ask(&mut c, &["GET", "before"])));
    seen.push(format!("the function's write: {}", ask(&mut c, &["GET", "k"])));
    seen
}

#[test]
fn shutdown_nosave_stops_a_busy_function_that_wrote_and_none_of_it_persists() {
    let redis = shutdown_scenario(Kind::Redis);
    let warden = shutdown_scenario(Kind::Warden);
    assert_eq!(warden, redis);
    assert!(warden.contains(&"the function's write: nil".to_string()), "{warden:?}");
}

/// What the busy script cannot answer for a connection (WATCH needs the keyspace) waits, with
/// everything the client sent after it, and runs in order once the script is killed. (Redis
/// would answer WATCH at once and -BUSY to the GET; either order is one the client could have
/// seen had it sent a moment later.)
#[test]
fn requests_that_need_the_keyspace_wait_for_the_script_and_keep_their_order() {
    let node = Node::start(Kind::Warden, "node", &["--busy-reply-threshold", "100"]);
    let mut other = node.connect();
    let mut parked = TcpStream::connect(("127.0.0.1", node.port)).expect("connect");
    parked.set_read_timeout(Some(Duration::from_millis(200))).expect("timeout");
    let mut caller = Caller::send(&node, &["EVAL", "while true do end", "0"]);
    wait_busy(&mut other);
    parked.write_all(b"PING\r\nWATCH k\r\nGET k\r\nPING\r\n").expect("send");
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    let busy = b"-BUSY Redis is busy running a script. You can only call SCRIPT KILL or SHUTDOWN NOSAVE.\r\n";
    wait::until("the PING's -BUSY", BUSY, || {
        if let Ok(n) = parked.read(&mut buf) {
            got.extend_from_slice(&buf[..n]);
        }
        if got.len() >= busy.len() {
            Ok(())
        } else {
            Err(String::from_utf8_lossy(&got).into_owned())
        }
    });
    assert_eq!(String::from_utf8_lossy(&got), String::from_utf8_lossy(busy));
    got.clear();
    assert_eq!(ask(&mut other, &["SCRIPT", "KILL"]), "ok");
    assert!(caller.reply().starts_with("-ERR Script killed by user with SCRIPT KILL..."));
    let expected = "+OK\r\n$-1\r\n+PONG\r\n";
    wait::until("the waiting requests' replies", BUSY, || {
        if let Ok(n) = parked.read(&mut buf) {
            got.extend_from_slice(&buf[..n]);
        }
        if got.len() >= expected.len() {
            Ok(())
        } else {
            Err(String::from_utf8_lossy(&got).into_owned())
        }
    });
    assert_eq!(String::from_utf8_lossy(&got), expected);
}

/// With worker threads (`io-threads` above 1) no one can be served while a script runs, so one
/// past the threshold that has not written is stopped, even when it catches errors itself;
/// one that wrote runs to its end.
#[test]
fn with_io_threads_a_runaway_script_that_wrote_nothing_is_stopped() {
    let node =
        Node::start(Kind::Warden, "node", &["--busy-reply-threshold", "100", "--io-threads", "2"]);
    let mut c = node.connect();
    for body in ["while true do end", "while true do pcall(function() while true do end end) end"] {
        let stopped: Result<(), _> = redis::cmd("EVAL").arg(body).arg(0).query(&mut c);
        let e = stopped.unwrap_err();
        assert!(e.to_string().contains("Script stopped after running longer"), "{e}");
    }
    let pong: String = cmd(&mut c, &["PING"]);
    assert_eq!(pong, "PONG");
    let body = "redis.call('set', 'started', '1') local i = 0 \
                while i < 20000000 do i = i + 1 end return i";
    let done: i64 = cmd(&mut c, &["EVAL", body, "0"]);
    assert_eq!(done, 20_000_000);
    assert!(node.proc.log().contains("cannot be stopped"), "{}", node.proc.log());
}
