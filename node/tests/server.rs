//! In-process server tests: a real listener on 127.0.0.1:0, spoken to with raw RESP bytes and
//! with the `redis` crate, as clients see it.

use std::time::Duration;

use common::resp::Frame;
use node::testing::{eventually, read_frame, TestServer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Sends raw bytes and reads until `expected` bytes arrived (or 5 s passed), returning them.
async fn raw(server: &TestServer, input: &[u8], expected: usize) -> Vec<u8> {
    let mut s = TcpStream::connect(server.addr).await.unwrap();
    s.write_all(input).await.unwrap();
    read_n(&mut s, expected).await
}

async fn read_n(s: &mut TcpStream, expected: usize) -> Vec<u8> {
    let mut out = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while out.len() < expected {
        let mut buf = [0u8; 4096];
        match tokio::time::timeout_at(deadline, s.read(&mut buf)).await {
            Ok(Ok(0)) | Err(_) => break,
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
            Ok(Err(e)) => {
                panic!("read failed: {e}; got so far {:?}", String::from_utf8_lossy(&out))
            }
        }
    }
    out
}

async fn client(server: &TestServer) -> redis::aio::MultiplexedConnection {
    redis::Client::open(server.url()).unwrap().get_multiplexed_async_connection().await.unwrap()
}

#[tokio::test]
async fn pipelined_requests_get_replies_in_order() {
    let server = TestServer::start("").await;
    let input = b"*3\r\n$3\r\nSET\r\n$1\r\na\r\n$1\r\n1\r\nINCR a\r\n*2\r\n$3\r\nGET\r\n$1\r\na\r\nPING\r\n";
    let expected = b"+OK\r\n:2\r\n$1\r\n2\r\n+PONG\r\n";
    assert_eq!(raw(&server, input, expected.len()).await, expected);
    server.stop().await;
}

#[tokio::test]
async fn protocol_errors_reply_and_close_only_that_connection() {
    let server = TestServer::start("").await;
    let reply = raw(&server, b"*1\r\n+bad\r\n", 64).await;
    assert_eq!(reply, b"-ERR Protocol error: expected '$', got '+'\r\n");
    let reply = raw(&server, b"*abc\r\n", 64).await;
    assert_eq!(reply, b"-ERR Protocol error: invalid multibulk length\r\n");
    // The server is still fine for others.
    let mut c = client(&server).await;
    let pong: String = redis::cmd("PING").query_async(&mut c).await.unwrap();
    assert_eq!(pong, "PONG");
    server.stop().await;
}

#[tokio::test]
async fn oversized_bulk_is_refused_without_allocating() {
    let server = TestServer::start("").await;
    let reply = raw(&server, b"*1\r\n$999999999999\r\n", 64).await;
    assert_eq!(reply, b"-ERR Protocol error: invalid bulk length\r\n");
    server.stop().await;
}

#[tokio::test]
async fn unknown_commands_and_arity_use_redis_wording() {
    let server = TestServer::start("").await;
    let reply = raw(&server, b"FOO a b\r\nGET\r\nCLIENT NOPE\r\nCONFIG GET\r\n", 200).await;
    let text = String::from_utf8(reply).unwrap();
    assert_eq!(
        text,
        "-ERR unknown command 'FOO', with args beginning with: 'a' 'b' \r\n\
         -ERR wrong number of arguments for 'get' command\r\n\
         -ERR unknown subcommand 'NOPE'. Try CLIENT HELP.\r\n\
         -ERR wrong number of arguments for 'config|get' command\r\n"
    );
    server.stop().await;
}

#[tokio::test]
async fn requirepass_gates_commands() {
    let server = TestServer::start("requirepass s3cret\n").await;
    let reply = raw(&server, b"GET a\r\nAUTH nope\r\nAUTH s3cret\r\nGET a\r\n", 200).await;
    assert_eq!(
        String::from_utf8(reply).unwrap(),
        "-NOAUTH Authentication required.\r\n\
         -WRONGPASS invalid username-password pair or user is disabled.\r\n\
         +OK\r\n$-1\r\n"
    );
    server.stop().await;
}

#[tokio::test]
async fn hello_3_switches_to_resp3() {
    let server = TestServer::start("").await;
    let mut s = TcpStream::connect(server.addr).await.unwrap();
    s.write_all(b"HELLO 3\r\n").await.unwrap();
    let mut buf = Vec::new();
    let hello = read_frame(&mut s, &mut buf).await;
    let Frame::Map(fields) = hello else { panic!("HELLO 3 must reply a map, got {hello:?}") };
    assert!(fields.contains(&(Frame::bulk(b"proto"), Frame::Integer(3))), "{fields:?}");
    s.write_all(b"GET missing\r\n").await.unwrap();
    assert_eq!(read_frame(&mut s, &mut buf).await, Frame::Null);
    server.stop().await;
}

#[tokio::test]
async fn redis_crate_round_trip_and_expiry() {
    let server = TestServer::start("").await;
    let mut c = client(&server).await;
    let _: () =
        redis::cmd("SET").arg("k").arg("v").arg("PX").arg(50).query_async(&mut c).await.unwrap();
    let v: Option<String> = redis::cmd("GET").arg("k").query_async(&mut c).await.unwrap();
    assert_eq!(v.as_deref(), Some("v"));
    // An expired key is never readable: poll until it is gone (bounded), never sleep-assert.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let v: Option<String> = redis::cmd("GET").arg("k").query_async(&mut c).await.unwrap();
        if v.is_none() {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "key still readable after its TTL: {v:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    server.stop().await;
}

#[tokio::test]
async fn active_expiry_removes_keys_nobody_reads() {
    let server = TestServer::start("hz 100\n").await;
    let mut c = client(&server).await;
    for i in 0..100 {
        let _: () = redis::cmd("SET")
            .arg(format!("k{i}"))
            .arg("v")
            .arg("PX")
            .arg(20)
            .query_async(&mut c)
            .await
            .unwrap();
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    let mut last = -1;
    while tokio::time::Instant::now() < deadline {
        last = server.shared.keyspace.lock().dbs[0].keys.len() as i64;
        if last == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(last, 0, "active expiry left {last} keys");
    server.stop().await;
}

#[tokio::test]
async fn watch_aborts_exec_when_another_client_writes() {
    let server = TestServer::start("").await;
    let mut a = client(&server).await;
    let mut b = client(&server).await;
    let _: () = redis::cmd("SET").arg("w").arg("1").query_async(&mut a).await.unwrap();
    // WATCH/MULTI/EXEC on a connection of its own (one TCP connection, used by nobody else).
    let mut tx = client(&server).await;
    let _: () = redis::cmd("WATCH").arg("w").query_async(&mut tx).await.unwrap();
    let _: () = redis::cmd("SET").arg("w").arg("2").query_async(&mut b).await.unwrap();
    let _: () = redis::cmd("MULTI").query_async(&mut tx).await.unwrap();
    let _: () = redis::cmd("SET").arg("w").arg("3").query_async(&mut tx).await.unwrap();
    let result: Option<Vec<String>> = redis::cmd("EXEC").query_async(&mut tx).await.unwrap();
    assert_eq!(result, None, "EXEC must fail after a watched key changed");
    let v: String = redis::cmd("GET").arg("w").query_async(&mut a).await.unwrap();
    assert_eq!(v, "2");
    server.stop().await;
}

#[tokio::test]
async fn pubsub_delivers_to_subscribers() {
    let server = TestServer::start("").await;
    let mut sub = TcpStream::connect(server.addr).await.unwrap();
    sub.write_all(b"SUBSCRIBE news\r\n").await.unwrap();
    let confirm = b"*3\r\n$9\r\nsubscribe\r\n$4\r\nnews\r\n:1\r\n";
    assert_eq!(read_n(&mut sub, confirm.len()).await, confirm);
    let mut c = client(&server).await;
    let n: i64 = redis::cmd("PUBLISH").arg("news").arg("hi").query_async(&mut c).await.unwrap();
    assert_eq!(n, 1);
    let message = b"*3\r\n$7\r\nmessage\r\n$4\r\nnews\r\n$2\r\nhi\r\n";
    assert_eq!(read_n(&mut sub, message.len()).await, message);
    server.stop().await;
}

#[tokio::test]
async fn client_kill_closes_the_target() {
    let server = TestServer::start("").await;
    let mut victim = TcpStream::connect(server.addr).await.unwrap();
    victim.write_all(b"CLIENT ID\r\n").await.unwrap();
    let id = read_n(&mut victim, 3).await;
    let id = String::from_utf8_lossy(&id[1..]).trim().to_string();
    let mut c = client(&server).await;
    let killed: i64 =
        redis::cmd("CLIENT").arg("KILL").arg("ID").arg(&id).query_async(&mut c).await.unwrap();
    assert_eq!(killed, 1);
    let mut buf = [0u8; 16];
    let n =
        tokio::time::timeout(Duration::from_secs(5), victim.read(&mut buf)).await.unwrap().unwrap();
    assert_eq!(n, 0, "the killed connection must be closed");
    server.stop().await;
}

#[tokio::test]
async fn shutdown_command_stops_the_server() {
    let server = TestServer::start("").await;
    let mut c = client(&server).await;
    let _ = redis::cmd("SHUTDOWN").arg("NOSAVE").query_async::<()>(&mut c).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while TcpStream::connect(server.addr).await.is_ok() {
        assert!(tokio::time::Instant::now() < deadline, "server still accepting after SHUTDOWN");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Sends one command as raw RESP and reads one reply frame.
async fn send(s: &mut TcpStream, buf: &mut Vec<u8>, args: &[&str]) -> Frame {
    let mut req = format!("*{}\r\n", args.len());
    for a in args {
        req.push_str(&format!("${}\r\n{a}\r\n", a.len()));
    }
    s.write_all(req.as_bytes()).await.unwrap();
    read_frame(s, buf).await
}

fn bulks(items: &[&str]) -> Frame {
    Frame::Array(items.iter().map(|i| Frame::bulk(i.as_bytes())).collect())
}

#[tokio::test]
async fn blocked_clients_are_served_in_the_order_they_blocked() {
    let server = TestServer::start("").await;
    let mut first = TcpStream::connect(server.addr).await.unwrap();
    let mut second = TcpStream::connect(server.addr).await.unwrap();
    first.write_all(b"BLPOP q 0\r\n").await.unwrap();
    server.wait_blocked(1).await;
    second.write_all(b"BLPOP q 0\r\n").await.unwrap();
    server.wait_blocked(2).await;
    let mut c = client(&server).await;
    let n: i64 = redis::cmd("RPUSH").arg("q").arg("a").arg("b").query_async(&mut c).await.unwrap();
    assert_eq!(n, 2);
    let (mut b1, mut b2) = (Vec::new(), Vec::new());
    assert_eq!(read_frame(&mut first, &mut b1).await, bulks(&["q", "a"]));
    assert_eq!(read_frame(&mut second, &mut b2).await, bulks(&["q", "b"]));
    let len: i64 = redis::cmd("LLEN").arg("q").query_async(&mut c).await.unwrap();
    assert_eq!(len, 0, "each pushed element goes to exactly one waiter");
    server.stop().await;
}

#[tokio::test]
async fn blocking_pop_times_out_with_a_null_array_and_never_blocks_in_multi() {
    let server = TestServer::start("").await;
    let mut s = TcpStream::connect(server.addr).await.unwrap();
    let mut buf = Vec::new();
    assert_eq!(send(&mut s, &mut buf, &["BLPOP", "empty", "0.05"]).await, Frame::NullArray);
    assert_eq!(send(&mut s, &mut buf, &["MULTI"]).await, Frame::ok());
    assert_eq!(send(&mut s, &mut buf, &["BLPOP", "empty", "0"]).await, Frame::simple("QUEUED"));
    assert_eq!(send(&mut s, &mut buf, &["EXEC"]).await, Frame::Array(vec![Frame::NullArray]));
    server.stop().await;
}

#[tokio::test]
async fn a_waiter_that_disconnected_does_not_swallow_the_element() {
    let server = TestServer::start("").await;
    let mut gone = TcpStream::connect(server.addr).await.unwrap();
    gone.write_all(b"BLPOP q 0\r\n").await.unwrap();
    server.wait_blocked(1).await;
    drop(gone);
    server.wait_blocked(0).await;
    let mut c = client(&server).await;
    let _: i64 = redis::cmd("RPUSH").arg("q").arg("kept").query_async(&mut c).await.unwrap();
    let v: Vec<String> =
        redis::cmd("LRANGE").arg("q").arg(0).arg(-1).query_async(&mut c).await.unwrap();
    assert_eq!(v, ["kept"]);
    server.stop().await;
}

#[tokio::test]
async fn blmove_wakes_a_client_blocked_on_its_destination() {
    let server = TestServer::start("").await;
    let mut mover = TcpStream::connect(server.addr).await.unwrap();
    let mut popper = TcpStream::connect(server.addr).await.unwrap();
    mover.write_all(b"BLMOVE src dst LEFT RIGHT 0\r\n").await.unwrap();
    server.wait_blocked(1).await;
    popper.write_all(b"BLPOP dst 0\r\n").await.unwrap();
    server.wait_blocked(2).await;
    let mut c = client(&server).await;
    let _: i64 = redis::cmd("LPUSH").arg("src").arg("v").query_async(&mut c).await.unwrap();
    let (mut b1, mut b2) = (Vec::new(), Vec::new());
    assert_eq!(read_frame(&mut mover, &mut b1).await, Frame::bulk(b"v"));
    assert_eq!(read_frame(&mut popper, &mut b2).await, bulks(&["dst", "v"]));
    server.stop().await;
}

#[tokio::test]
async fn monitor_streams_commands_as_redis_formats_them() {
    let server = TestServer::start("").await;
    let mut monitor = TcpStream::connect(server.addr).await.unwrap();
    let mut buf = Vec::new();
    assert_eq!(send(&mut monitor, &mut buf, &["MONITOR"]).await, Frame::ok());
    let mut writer = TcpStream::connect(server.addr).await.unwrap();
    let mut wbuf = Vec::new();
    assert_eq!(send(&mut writer, &mut wbuf, &["SET", "k", "a b\"c"]).await, Frame::ok());
    let Frame::Simple(line) = read_frame(&mut monitor, &mut buf).await else {
        panic!("MONITOR sends status lines")
    };
    let line = String::from_utf8(line.to_vec()).unwrap();
    // `<secs>.<micros> [<db> <addr>] "SET" "k" "a b\"c"`
    let (time, rest) = line.split_once(' ').unwrap();
    assert!(
        time.split_once('.').is_some_and(|(s, us)| s.parse::<u64>().is_ok() && us.len() == 6),
        "{line}"
    );
    assert!(rest.starts_with("[0 127.0.0.1:"), "{line}");
    assert!(rest.ends_with(r#"] "SET" "k" "a b\"c""#), "{line}");
    server.stop().await;
}

#[tokio::test]
async fn client_pause_write_holds_writes_but_not_reads() {
    let server = TestServer::start("").await;
    let mut c = client(&server).await;
    let _: () = redis::cmd("SET").arg("k").arg("before").query_async(&mut c).await.unwrap();
    let _: () = redis::cmd("CLIENT")
        .arg("PAUSE")
        .arg(60_000)
        .arg("WRITE")
        .query_async(&mut c)
        .await
        .unwrap();
    let mut writer = TcpStream::connect(server.addr).await.unwrap();
    writer.write_all(b"SET k after\r\n").await.unwrap();
    // Reads go through while the write waits.
    let mut reader = client(&server).await;
    let v: String = redis::cmd("GET").arg("k").query_async(&mut reader).await.unwrap();
    assert_eq!(v, "before");
    let mut buf = Vec::new();
    let pending =
        tokio::time::timeout(Duration::from_millis(100), read_frame(&mut writer, &mut buf)).await;
    assert!(pending.is_err(), "the paused write must not have been answered: {pending:?}");
    let _: () = redis::cmd("CLIENT").arg("UNPAUSE").query_async(&mut c).await.unwrap();
    assert_eq!(read_frame(&mut writer, &mut buf).await, Frame::ok());
    let v: String = redis::cmd("GET").arg("k").query_async(&mut reader).await.unwrap();
    assert_eq!(v, "after");
    server.stop().await;
}

#[tokio::test]
async fn object_idletime_counts_from_the_last_access_and_object_does_not_touch() {
    let server = TestServer::start("").await;
    let mut c = client(&server).await;
    let _: () = redis::cmd("SET").arg("k").arg("v").query_async(&mut c).await.unwrap();
    // Age the key's access stamp by 100 s instead of waiting.
    {
        let mut ks = server.shared.keyspace.lock();
        let now = node::db::Lru::now().0;
        let (_, lru) = ks.dbs[0].keys.get_mut_meta(b"k").unwrap();
        *lru = node::db::Lru(now.wrapping_sub(100) & node::db::Lru::MAX);
    }
    let idle: i64 =
        redis::cmd("OBJECT").arg("IDLETIME").arg("k").query_async(&mut c).await.unwrap();
    assert!((100..=101).contains(&idle), "idle {idle}");
    let again: i64 =
        redis::cmd("OBJECT").arg("IDLETIME").arg("k").query_async(&mut c).await.unwrap();
    assert!(again >= 100, "OBJECT must not count as an access: {again}");
    let _: String = redis::cmd("GET").arg("k").query_async(&mut c).await.unwrap();
    let fresh: i64 =
        redis::cmd("OBJECT").arg("IDLETIME").arg("k").query_async(&mut c).await.unwrap();
    assert!(fresh <= 1, "GET is an access: {fresh}");
    server.stop().await;
}

/// A client's own CLIENT LIST / CLIENT INFO line shows its query buffer as Redis does while
/// the command runs: the command's 26 bytes (`*2 $6 client $4 info` in RESP) are still in it.
#[tokio::test]
async fn a_clients_own_line_counts_the_running_command_in_qbuf() {
    let server = TestServer::start("").await;
    let mut c = client(&server).await;
    for sub in ["INFO", "LIST"] {
        let text: String = redis::cmd("CLIENT").arg(sub).query_async(&mut c).await.unwrap();
        assert!(text.contains(" qbuf=26 "), "CLIENT {sub}: {text}");
    }
    server.stop().await;
}

/// RESTORE's IDLETIME sets the key's idle time under an LRU policy, and FREQ its counter under
/// an LFU one (Redis's test suite checks both).
#[tokio::test]
async fn restore_sets_the_access_history_it_is_given() {
    let server = TestServer::start("").await;
    let mut c = client(&server).await;
    let run = |args: &[&str]| {
        let mut command = redis::cmd(args[0]);
        for a in &args[1..] {
            command.arg(*a);
        }
        command
    };
    let _: () = run(&["SET", "foo", "bar"]).query_async(&mut c).await.unwrap();
    let payload: Vec<u8> = run(&["DUMP", "foo"]).query_async(&mut c).await.unwrap();
    for (policy, option, value, report) in
        [("allkeys-lru", "IDLETIME", 1000, "IDLETIME"), ("allkeys-lfu", "FREQ", 100, "FREQ")]
    {
        let _: () =
            run(&["CONFIG", "SET", "maxmemory-policy", policy]).query_async(&mut c).await.unwrap();
        let _: () = redis::cmd("RESTORE")
            .arg("foo")
            .arg(0)
            .arg(&payload)
            .arg("REPLACE")
            .arg(option)
            .arg(value)
            .query_async(&mut c)
            .await
            .unwrap();
        let got: i64 = run(&["OBJECT", report, "foo"]).query_async(&mut c).await.unwrap();
        assert!((value..=value + 2).contains(&got), "{policy}: OBJECT {report} is {got}");
    }
    server.stop().await;
}

/// Inside EXEC, SUBSCRIBE runs (the client is then in pub/sub mode, so PING answers the
/// pub/sub way; in RESP3 the confirmation is a push inside EXEC's array), while MONITOR is
/// refused: Redis's bytes, taken from redis-server 7.0.15.
#[tokio::test]
async fn subscribe_runs_inside_exec_and_monitor_is_refused() {
    let server = TestServer::start("").await;
    let expected: &[u8] = b"+OK\r\n+QUEUED\r\n*1\r\n*3\r\n$9\r\nsubscribe\r\n$3\r\nfoo\r\n:1\r\n*2\r\n$4\r\npong\r\n$0\r\n\r\n";
    let got = raw(&server, b"MULTI\r\nSUBSCRIBE foo\r\nEXEC\r\nPING\r\n", expected.len()).await;
    assert_eq!(String::from_utf8_lossy(&got), String::from_utf8_lossy(expected));
    let mut s = TcpStream::connect(server.addr).await.unwrap();
    s.write_all(b"HELLO 3\r\n").await.unwrap();
    let mut buf = Vec::new();
    read_frame(&mut s, &mut buf).await;
    s.write_all(b"MULTI\r\nSUBSCRIBE foo\r\nEXEC\r\nPING\r\n").await.unwrap();
    let tail: &[u8] =
        b"+OK\r\n+QUEUED\r\n*1\r\n>3\r\n$9\r\nsubscribe\r\n$3\r\nfoo\r\n:1\r\n+PONG\r\n";
    let mut got = buf.clone();
    got.extend(read_n(&mut s, tail.len() - buf.len()).await);
    assert_eq!(String::from_utf8_lossy(&got), String::from_utf8_lossy(tail));
    let expected: &[u8] =
        b"+OK\r\n+QUEUED\r\n*1\r\n-ERR MONITOR isn't allowed for DENY BLOCKING client\r\n";
    let got = raw(&server, b"MULTI\r\nMONITOR\r\nEXEC\r\n", expected.len()).await;
    assert_eq!(String::from_utf8_lossy(&got), String::from_utf8_lossy(expected));
    server.stop().await;
}

/// INFO commandstats and errorstats count as Redis does: calls of commands that ran (inside
/// EXEC too, and EXEC itself), failed calls (ran, answered an error), rejected calls (refused
/// before running: wrong arity, queued after an error), nothing for a command only queued by
/// MULTI; error replies by code. CONFIG RESETSTAT clears them.
#[tokio::test]
async fn commandstats_and_errorstats_count_like_redis() {
    let server = TestServer::start("").await;
    let mut c = client(&server).await;
    let run = |args: &[&str]| {
        let mut cmd = redis::cmd(args[0]);
        for a in &args[1..] {
            cmd.arg(*a);
        }
        cmd
    };
    let _: () = run(&["SET", "k", "v"]).query_async(&mut c).await.unwrap();
    let _: String = run(&["GET", "k"]).query_async(&mut c).await.unwrap();
    let _ = run(&["LPUSH", "k", "x"]).query_async::<()>(&mut c).await.unwrap_err();
    let _ = run(&["GET"]).query_async::<()>(&mut c).await.unwrap_err();
    let mut pipe = redis::pipe();
    pipe.atomic().cmd("INCR").arg("n").cmd("INCR").arg("n");
    let _: (i64, i64) = pipe.query_async(&mut c).await.unwrap();
    let info: String = run(&["INFO", "commandstats"]).query_async(&mut c).await.unwrap();
    let counts = |name: &str| -> String {
        let line = info.lines().find(|l| l.starts_with(&format!("cmdstat_{name}:"))).unwrap_or("");
        let fields: Vec<&str> = line
            .split([':', ','])
            .filter(|f| f.starts_with("calls=") || f.contains("_calls="))
            .collect();
        fields.join(",")
    };
    assert_eq!(counts("get"), "calls=1,rejected_calls=1,failed_calls=0", "{info}");
    assert_eq!(counts("lpush"), "calls=1,rejected_calls=0,failed_calls=1", "{info}");
    assert_eq!(counts("incr"), "calls=2,rejected_calls=0,failed_calls=0", "{info}");
    assert_eq!(counts("multi"), "calls=1,rejected_calls=0,failed_calls=0", "{info}");
    assert_eq!(counts("exec"), "calls=1,rejected_calls=0,failed_calls=0", "{info}");
    let errors: String = run(&["INFO", "errorstats"]).query_async(&mut c).await.unwrap();
    assert!(errors.contains("errorstat_ERR:count=1\r\n"), "{errors}");
    assert!(errors.contains("errorstat_WRONGTYPE:count=1\r\n"), "{errors}");
    let _: () = run(&["CONFIG", "RESETSTAT"]).query_async(&mut c).await.unwrap();
    let info: String = run(&["INFO", "commandstats"]).query_async(&mut c).await.unwrap();
    assert!(!info.contains("cmdstat_get"), "{info}");
    server.stop().await;
}

/// `notify-keyspace-events` with the expired class: a key deleted because its time ran out
/// is announced on `__keyspace@0__:<key>` (`expired`, with K) and `__keyevent@0__:expired`
/// (the key, with E), in that order, as Redis does. (Every other class is checked against
/// Redis by the differential test.)
#[tokio::test]
async fn expired_key_events_are_published() {
    let server = TestServer::start("enable-debug-command yes").await;
    let mut c = client(&server).await;
    let set = |name: &str, value: &str| {
        redis::cmd("CONFIG").arg("SET").arg(name.to_string()).arg(value.to_string()).clone()
    };
    // Each setting as CONFIG GET prints it back (Redis's canonical order).
    for (given, printed) in [("KEx", "xKE"), ("KEA", "AKE"), ("Exg", "gxE")] {
        let _: () = set("notify-keyspace-events", given).query_async(&mut c).await.unwrap();
        let flags: Vec<String> = redis::cmd("CONFIG")
            .arg("GET")
            .arg("notify-keyspace-events")
            .query_async(&mut c)
            .await
            .unwrap();
        assert_eq!(flags[1], printed, "notify-keyspace-events {given}");
    }
    // Back to expired events only, so SET's own events do not reach the subscriber below.
    let _: () = set("notify-keyspace-events", "KEx").query_async(&mut c).await.unwrap();
    let mut sub = TcpStream::connect(server.addr).await.unwrap();
    sub.write_all(b"SUBSCRIBE __keyspace@0__:k __keyevent@0__:expired\r\n").await.unwrap();
    let mut buf = Vec::new();
    read_frame(&mut sub, &mut buf).await;
    read_frame(&mut sub, &mut buf).await;
    // Only this command's lookup may delete the key, so the event comes from it.
    let _: () =
        redis::cmd("DEBUG").arg("SET-ACTIVE-EXPIRE").arg(0).query_async(&mut c).await.unwrap();
    let _: () =
        redis::cmd("SET").arg("k").arg("v").arg("PX").arg(1).query_async(&mut c).await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let v: Option<String> = redis::cmd("GET").arg("k").query_async(&mut c).await.unwrap();
        if v.is_none() {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "k never expired");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let message = |channel: &str, payload: &str| {
        Frame::Array(vec![
            Frame::bulk(b"message"),
            Frame::bulk(channel.as_bytes()),
            Frame::bulk(payload.as_bytes()),
        ])
    };
    assert_eq!(read_frame(&mut sub, &mut buf).await, message("__keyspace@0__:k", "expired"));
    assert_eq!(read_frame(&mut sub, &mut buf).await, message("__keyevent@0__:expired", "k"));
    server.stop().await;
}

/// DEBUG refused by `enable-debug-command` is refused when queued, so EXEC aborts: Redis's
/// bytes, from redis-server 7.0.15.
#[tokio::test]
async fn a_refused_debug_aborts_the_transaction_when_queued() {
    let server = TestServer::start("").await;
    let expected: &[u8] = b"+OK\r\n-ERR DEBUG command not allowed. If the enable-debug-command option is set to \"local\", you can run it from a local connection, otherwise you need to set this option in the configuration file, and then restart the server.\r\n-EXECABORT Transaction discarded because of previous errors.\r\n";
    let got = raw(&server, b"MULTI\r\nDEBUG foo\r\nEXEC\r\n", expected.len()).await;
    assert_eq!(String::from_utf8_lossy(&got), String::from_utf8_lossy(expected));
    server.stop().await;
}

/// Clients logged in as a user are disconnected when it is deleted (the one deleting itself
/// after its reply), while a user turned `off` keeps its connections, as in Redis 7.0; a user
/// config file line (`user`) and CONFIG SET requirepass both shape the default user.
#[tokio::test]
async fn deleting_a_user_disconnects_its_clients() {
    let server =
        TestServer::start("user default on nopass ~* &* +@all\nuser bob on >pw ~* +@all\n").await;
    let auth = b"*3\r\n$4\r\nAUTH\r\n$3\r\nbob\r\n$2\r\npw\r\n";
    let mut other = TcpStream::connect(server.addr).await.unwrap();
    other.write_all(auth).await.unwrap();
    assert_eq!(read_n(&mut other, 5).await, b"+OK\r\n");
    let mut own = TcpStream::connect(server.addr).await.unwrap();
    own.write_all(auth).await.unwrap();
    assert_eq!(read_n(&mut own, 5).await, b"+OK\r\n");

    // Off: no new logins, existing connections keep working.
    let mut admin = client(&server).await;
    let _: () = redis::cmd("ACL")
        .arg("SETUSER")
        .arg("bob")
        .arg("off")
        .query_async(&mut admin)
        .await
        .unwrap();
    other.write_all(b"PING\r\n").await.unwrap();
    assert_eq!(read_n(&mut other, 7).await, b"+PONG\r\n");
    let refused = raw(&server, auth, 64).await;
    assert_eq!(refused, b"-WRONGPASS invalid username-password pair or user is disabled.\r\n");

    // Deleted by one of its own clients: that one gets its reply, then both are closed.
    own.write_all(b"ACL DELUSER bob\r\nPING\r\n").await.unwrap();
    assert_eq!(read_n(&mut own, 64).await, b":1\r\n");
    // A PING on the other client would be answered if it were still open.
    let _ = other.write_all(b"PING\r\n").await;
    assert_eq!(read_n(&mut other, 64).await, b"", "the other client is closed");
    let users: Vec<String> = redis::cmd("ACL").arg("USERS").query_async(&mut admin).await.unwrap();
    assert_eq!(users, ["default"]);
    server.stop().await;
}

/// On a stale replica (`replica-serve-stale-data no`, link down) EXEC is refused when any
/// queued command is one a stale replica refuses, even if the replica went stale only after
/// the command was queued (Redis checks the transaction's commands at EXEC).
#[tokio::test]
async fn exec_on_a_replica_gone_stale_since_queuing_is_refused_with_masterdown() {
    let server = TestServer::start("replica-serve-stale-data no\n").await;
    let unused = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead_master = unused.local_addr().unwrap().port();
    drop(unused);
    let mut tx = TcpStream::connect(server.addr).await.unwrap();
    let mut admin = client(&server).await;
    let masterdown =
        "-EXECABORT Transaction discarded because of: MASTERDOWN Link with MASTER is down and \
         replica-serve-stale-data is set to 'no'.\r\n";
    for queued in ["GET xx", "PING"] {
        let begin = format!("MULTI\r\n{queued}\r\n");
        tx.write_all(begin.as_bytes()).await.unwrap();
        assert_eq!(read_n(&mut tx, 14).await, b"+OK\r\n+QUEUED\r\n");
        let _: () = redis::cmd("REPLICAOF")
            .arg("127.0.0.1")
            .arg(dead_master)
            .query_async(&mut admin)
            .await
            .unwrap();
        tx.write_all(b"EXEC\r\n").await.unwrap();
        let reply = read_n(&mut tx, masterdown.len()).await;
        assert_eq!(String::from_utf8_lossy(&reply), masterdown, "EXEC of {queued}");
        let _: () =
            redis::cmd("REPLICAOF").arg("NO").arg("ONE").query_async(&mut admin).await.unwrap();
    }
    // A transaction of commands allowed on a stale replica runs.
    tx.write_all(b"MULTI\r\nINFO server\r\n").await.unwrap();
    assert_eq!(read_n(&mut tx, 14).await, b"+OK\r\n+QUEUED\r\n");
    let _: () = redis::cmd("REPLICAOF")
        .arg("127.0.0.1")
        .arg(dead_master)
        .query_async(&mut admin)
        .await
        .unwrap();
    tx.write_all(b"EXEC\r\n").await.unwrap();
    let reply = read_n(&mut tx, 4).await;
    assert_eq!(&reply[..4], b"*1\r\n", "{:?}", String::from_utf8_lossy(&reply));
}

/// Subscription confirmations are pushes, as in Redis 7.0: CLIENT REPLY OFF or SKIP does not
/// hold them back, in RESP2 or RESP3 (the replies of other commands it does).
#[tokio::test]
async fn subscription_confirmations_pass_client_reply_off() {
    let server = TestServer::start("").await;
    let input = b"CLIENT REPLY OFF\r\nSUBSCRIBE a\r\nPSUBSCRIBE c*\r\nUNSUBSCRIBE a\r\n";
    let expected: &[u8] = b"*3\r\n$9\r\nsubscribe\r\n$1\r\na\r\n:1\r\n\
        *3\r\n$10\r\npsubscribe\r\n$2\r\nc*\r\n:2\r\n\
        *3\r\n$11\r\nunsubscribe\r\n$1\r\na\r\n:1\r\n";
    let got = raw(&server, input, expected.len()).await;
    assert_eq!(String::from_utf8_lossy(&got), String::from_utf8_lossy(expected));

    let mut s = TcpStream::connect(server.addr).await.unwrap();
    s.write_all(b"HELLO 3\r\n").await.unwrap();
    let mut buf = Vec::new();
    let hello = read_frame(&mut s, &mut buf).await;
    assert!(matches!(hello, Frame::Map(_)), "{hello:?}");
    s.write_all(b"CLIENT REPLY SKIP\r\nSUBSCRIBE a\r\nPING\r\n").await.unwrap();
    let expected = ">3\r\n$9\r\nsubscribe\r\n$1\r\na\r\n:1\r\n+PONG\r\n";
    let got = read_n(&mut s, expected.len() - buf.len()).await;
    buf.extend_from_slice(&got);
    assert_eq!(String::from_utf8_lossy(&buf), expected);
}

/// While CLIENT PAUSE is in force the dataset stays still: a key past its TTL reads as missing
/// but is not deleted (no `expired_keys`, no DEL for replicas), as in Redis, so a failover's
/// replica can catch up to an offset that no longer moves; after UNPAUSE it expires as usual.
#[tokio::test]
async fn client_pause_keeps_expired_keys_until_it_ends() {
    let server = TestServer::start("").await;
    let mut c = client(&server).await;
    let _: () =
        redis::cmd("SET").arg("k").arg("v").arg("PX").arg(100).query_async(&mut c).await.unwrap();
    let _: () = redis::cmd("CLIENT")
        .arg("PAUSE")
        .arg(60_000)
        .arg("WRITE")
        .query_async(&mut c)
        .await
        .unwrap();
    eventually("k to read as expired", async || {
        let value: Option<String> = redis::cmd("GET").arg("k").query_async(&mut c).await.unwrap();
        value.map_or(Ok(()), |v| Err(format!("GET k: {v}")))
    })
    .await;
    let info: String = redis::cmd("INFO").arg("stats").query_async(&mut c).await.unwrap();
    assert!(info.contains("expired_keys:0\r\n"), "{info}");
    let size: i64 = redis::cmd("DBSIZE").query_async(&mut c).await.unwrap();
    assert_eq!(size, 1, "the expired key was deleted during the pause");
    let _: () = redis::cmd("CLIENT").arg("UNPAUSE").query_async(&mut c).await.unwrap();
    let _: Option<String> = redis::cmd("GET").arg("k").query_async(&mut c).await.unwrap();
    let size: i64 = redis::cmd("DBSIZE").query_async(&mut c).await.unwrap();
    assert_eq!(size, 0, "not expired after the pause");
}

/// UNLINK and FLUSHALL ASYNC hand large values and whole tables to the lazy-free thread, and
/// INFO counts them as Redis does (a 1000-member set is one object, a flushed table its keys);
/// small values are freed at once and not counted.
#[tokio::test]
async fn unlink_and_flushall_async_free_in_the_background() {
    let server = TestServer::start("").await;
    let mut c = client(&server).await;
    let members: Vec<String> = (0..1000).map(|i| format!("m{i}")).collect();
    let _: () = redis::cmd("SADD").arg("big").arg(&members).query_async(&mut c).await.unwrap();
    let _: () = redis::cmd("SET").arg("small").arg("v").query_async(&mut c).await.unwrap();
    let unlinked: i64 =
        redis::cmd("UNLINK").arg("big").arg("small").query_async(&mut c).await.unwrap();
    assert_eq!(unlinked, 2);
    for i in 0..100 {
        let _: () =
            redis::cmd("SET").arg(format!("k{i}")).arg(i).query_async(&mut c).await.unwrap();
    }
    let _: () = redis::cmd("FLUSHALL").arg("ASYNC").query_async(&mut c).await.unwrap();
    let size: i64 = redis::cmd("DBSIZE").query_async(&mut c).await.unwrap();
    assert_eq!(size, 0);
    eventually("the lazy-free counters", async || {
        let info: String = redis::cmd("INFO").arg("memory").query_async(&mut c).await.unwrap();
        let done = info.contains("lazyfreed_objects:101\r\n")
            && info.contains("lazyfree_pending_objects:0\r\n");
        if done {
            Ok(())
        } else {
            Err(info)
        }
    })
    .await;
}

/// The slow log as Redis keeps it: EXEC is not logged but the commands it ran are, and a
/// command that blocked is logged when it is answered, as it was sent (BLPOP, not the LPOP it
/// propagates as).
#[tokio::test]
async fn the_slow_log_holds_a_transactions_commands_and_answered_blocked_commands() {
    let server = TestServer::start("slowlog-log-slower-than 0\n").await;
    let mut c = client(&server).await;
    let logged = |entries: Vec<redis::Value>| -> Vec<String> {
        entries
            .into_iter()
            .filter_map(|e| match e {
                redis::Value::Array(fields) => match fields.get(3) {
                    Some(redis::Value::Array(args)) => Some(
                        args.iter()
                            .map(|a| match a {
                                redis::Value::BulkString(b) => {
                                    String::from_utf8_lossy(b).into_owned()
                                }
                                other => format!("{other:?}"),
                            })
                            .collect::<Vec<_>>()
                            .join(" "),
                    ),
                    _ => None,
                },
                _ => None,
            })
            .collect()
    };
    let _: () = redis::cmd("SLOWLOG").arg("RESET").query_async(&mut c).await.unwrap();
    let _: () = redis::pipe().atomic().set("a", 1).ignore().query_async(&mut c).await.unwrap();
    let entries: Vec<redis::Value> =
        redis::cmd("SLOWLOG").arg("GET").query_async(&mut c).await.unwrap();
    let entries = logged(entries);
    assert!(entries.contains(&"SET a 1".to_string()), "{entries:?}");
    assert!(!entries.iter().any(|e| e.eq_ignore_ascii_case("exec")), "{entries:?}");

    let mut blocked = TcpStream::connect(server.addr).await.unwrap();
    blocked.write_all(b"BLPOP l 0\r\n").await.unwrap();
    server.wait_blocked(1).await;
    let _: () = redis::cmd("SLOWLOG").arg("RESET").query_async(&mut c).await.unwrap();
    let _: () = redis::cmd("LPUSH").arg("l").arg("x").query_async(&mut c).await.unwrap();
    assert_eq!(read_n(&mut blocked, 18).await, b"*2\r\n$1\r\nl\r\n$1\r\nx\r\n");
    eventually("BLPOP in the slow log", async || {
        let entries: Vec<redis::Value> =
            redis::cmd("SLOWLOG").arg("GET").query_async(&mut c).await.unwrap();
        let entries = logged(entries);
        if entries.contains(&"BLPOP l 0".to_string()) {
            Ok(())
        } else {
            Err(format!("{entries:?}"))
        }
    })
    .await;
}

/// CONFIG SET port listens on the new port at once and closes the old one, as Redis does; a
/// port that cannot be bound is refused with Redis's words and changes nothing. The bind
/// addresses may be set to what they are (CONFIG SET of every setting to its own value works).
#[tokio::test]
async fn config_set_port_moves_the_listener() {
    let server = TestServer::start("").await;
    let mut c = client(&server).await;
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let new_port = free.local_addr().unwrap().port();
    // Taken: refused, and the old port still serves.
    let taken: redis::RedisResult<()> =
        redis::cmd("CONFIG").arg("SET").arg("port").arg(new_port).query_async(&mut c).await;
    let e = taken.unwrap_err().to_string();
    assert!(e.contains("Unable to listen on this port"), "{e}");
    drop(free);
    let bind: Vec<String> =
        redis::cmd("CONFIG").arg("GET").arg("bind").query_async(&mut c).await.unwrap();
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("bind")
        .arg(&bind[1])
        .query_async(&mut c)
        .await
        .unwrap();
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("port")
        .arg(new_port)
        .query_async(&mut c)
        .await
        .unwrap();
    let moved = redis::Client::open(format!("redis://127.0.0.1:{new_port}/")).unwrap();
    let mut on_new = eventually("the new port to serve", async || {
        moved.get_multiplexed_async_connection().await.map_err(|e| e.to_string())
    })
    .await;
    let pong: String = redis::cmd("PING").query_async(&mut on_new).await.unwrap();
    assert_eq!(pong, "PONG");
    // The old port is closed (established connections stay).
    eventually("the old port to close", async || match TcpStream::connect(server.addr).await {
        Ok(_) => Err("the old port still accepts".to_string()),
        Err(_) => Ok(()),
    })
    .await;
    let pong: String = redis::cmd("PING").query_async(&mut c).await.unwrap();
    assert_eq!(pong, "PONG");
}
