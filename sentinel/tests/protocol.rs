//! The Sentinel protocol, byte for byte, against an in-process supervisor (a group of one)
//! that watches a scripted node.

use std::time::Duration;

use bytes::BytesMut;
use common::resp::{decode, parse_request, Frame, RequestLimits};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A node that answers like a healthy master with one replica.
async fn fake_master(listener: TcpListener) {
    loop {
        let Ok((mut s, _)) = listener.accept().await else { return };
        tokio::spawn(async move {
            let mut buf = BytesMut::new();
            loop {
                match s.read_buf(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {}
                }
                while let Ok(Some(args)) = parse_request(&mut buf, RequestLimits::default()) {
                    let reply = match args[0].to_ascii_uppercase().as_slice() {
                        b"PING" => Frame::simple("PONG"),
                        b"INFO" => Frame::bulk(
                            b"# Replication\r\nrole:master\r\nconnected_slaves:1\r\n\
                              slave0:ip=127.0.0.1,port=1,state=online,offset=10,lag=0\r\n\
                              master_replid:0123456789012345678901234567890123456789\r\n\
                              master_repl_offset:10\r\nrun_id:abcdefabcdefabcdefabcdefabcdefabcdefabcd\r\n",
                        ),
                        _ => Frame::ok(),
                    };
                    let _ = s.write_all(&reply.to_bytes(common::resp::Protocol::Resp2)).await;
                }
            }
        });
    }
}

struct Client {
    stream: TcpStream,
    buf: BytesMut,
}

impl Client {
    async fn connect(port: u16) -> Client {
        Client {
            stream: TcpStream::connect(("127.0.0.1", port)).await.unwrap(),
            buf: BytesMut::new(),
        }
    }

    async fn raw(&mut self, request: &str) -> Frame {
        self.stream.write_all(request.as_bytes()).await.unwrap();
        self.read().await
    }

    async fn read(&mut self) -> Frame {
        loop {
            if let Some((f, used)) = decode(&self.buf).unwrap() {
                let _ = self.buf.split_to(used);
                return f;
            }
            let n =
                tokio::time::timeout(Duration::from_secs(5), self.stream.read_buf(&mut self.buf))
                    .await
                    .expect("a reply in time")
                    .unwrap();
            assert!(n > 0, "connection closed");
        }
    }

    /// Sends a command and returns the exact reply bytes of one frame.
    async fn bytes(&mut self, args: &[&str]) -> String {
        let mut req = format!("*{}\r\n", args.len());
        for a in args {
            req.push_str(&format!("${}\r\n{a}\r\n", a.len()));
        }
        self.stream.write_all(req.as_bytes()).await.unwrap();
        loop {
            if let Some((_, used)) = decode(&self.buf).unwrap() {
                let raw = self.buf.split_to(used);
                // A subscriber to `*` may get an event (the scripted replica going down …)
                // before the reply: events are not what this reads.
                if raw.starts_with(b"*4\r\n$8\r\npmessage\r\n") {
                    continue;
                }
                return String::from_utf8_lossy(&raw).into_owned();
            }
            let n =
                tokio::time::timeout(Duration::from_secs(5), self.stream.read_buf(&mut self.buf))
                    .await
                    .expect("a reply in time")
                    .unwrap();
            assert!(n > 0, "connection closed");
        }
    }
}

async fn start() -> (u16, u16, tempfile::TempDir) {
    start_with("").await
}

/// Starts a group of one watching `mymaster` (a scripted node) plus whatever `extra` adds.
async fn start_with(extra: &str) -> (u16, u16, tempfile::TempDir) {
    let node = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let node_port = node.local_addr().unwrap().port();
    tokio::spawn(fake_master(node));
    let client = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = client.local_addr().unwrap().port();
    let raft = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let raft_port = raft.local_addr().unwrap().port();
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "dir {}\nraft-id 1\nraft-peer 1 127.0.0.1 {raft_port}\nsupervisor-auth s\n\
         sentinel monitor mymaster 127.0.0.1 {node_port} 1\nsentinel down-after-milliseconds mymaster 5s\n{extra}",
        dir.path().display()
    );
    let lines = common::config::parse_text(&text, "test.conf").unwrap();
    let config = sentinel::config::Config::from_lines(&lines).unwrap();
    let (trigger, stop) = common::shutdown::channel();
    tokio::spawn(async move {
        let _keep = trigger;
        sentinel::supervisor::run(config, vec![client], raft, stop).await.unwrap();
        std::future::pending::<()>().await;
    });
    // Wait (by polling, with a deadline) until the group of one has bootstrapped.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let mut c = Client::connect(port).await;
        let reply = c.raw("SENTINEL MASTER mymaster\r\n").await;
        // Bootstrapped, and the monitor has the master's INFO (it lists one replica).
        if let Frame::Array(kv) = &reply {
            if kv
                .windows(2)
                .any(|w| w[0] == Frame::bulk(b"num-slaves") && w[1] == Frame::bulk(b"1"))
            {
                break;
            }
        }
        assert!(tokio::time::Instant::now() < deadline, "never bootstrapped: {reply:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    (port, node_port, dir)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replies_have_the_shapes_clients_parse() {
    let (port, node_port, _dir) = start().await;
    let mut c = Client::connect(port).await;
    let np = node_port.to_string();
    assert_eq!(
        c.bytes(&["SENTINEL", "get-master-addr-by-name", "mymaster"]).await,
        format!("*2\r\n$9\r\n127.0.0.1\r\n${}\r\n{np}\r\n", np.len()),
        "the port is a bulk string"
    );
    assert_eq!(c.bytes(&["SENTINEL", "get-master-addr-by-name", "nosuch"]).await, "*-1\r\n");
    assert_eq!(
        c.bytes(&["SENTINEL", "master", "nosuch"]).await,
        "-ERR No such master with that name\r\n"
    );
    assert_eq!(
        c.bytes(&["SENTINEL", "replicas", "nosuch"]).await,
        "-ERR No such master with that name\r\n"
    );
    assert_eq!(c.bytes(&["ROLE"]).await, "*2\r\n$8\r\nsentinel\r\n*1\r\n$8\r\nmymaster\r\n");
    assert_eq!(c.bytes(&["PING"]).await, "+PONG\r\n");
    assert_eq!(c.bytes(&["CLIENT", "SETNAME", "me"]).await, "+OK\r\n");
    assert_eq!(c.bytes(&["CLIENT", "SETINFO", "LIB-NAME", "redis-py"]).await, "+OK\r\n");
    assert_eq!(c.bytes(&["CLIENT", "GETNAME"]).await, "$2\r\nme\r\n");
    assert_eq!(
        c.bytes(&["SENTINEL", "master"]).await,
        "-ERR wrong number of arguments for 'sentinel|master' command\r\n"
    );
    assert_eq!(
        c.bytes(&["GET", "k"]).await,
        "-ERR unknown command 'GET', with args beginning with: 'k' \r\n"
    );
    assert_eq!(
        c.bytes(&["AUTH", "pw"]).await,
        "-ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?\r\n"
    );
    let myid = c.bytes(&["SENTINEL", "myid"]).await;
    assert!(
        myid.starts_with("$40\r\n") && myid[5..45].bytes().all(|b| b.is_ascii_hexdigit()),
        "{myid}"
    );

    // The instance map: keys in Sentinel's order (then Warden's), every value a bulk string.
    let Frame::Array(masters) = c.raw("SENTINEL MASTERS\r\n").await else { panic!("an array") };
    let Frame::Array(kv) = &masters[0] else { panic!("a flat map under RESP2") };
    let keys: Vec<String> = kv
        .iter()
        .step_by(2)
        .map(|k| match k {
            Frame::Bulk(b) => String::from_utf8_lossy(b).into_owned(),
            other => panic!("key {other:?}"),
        })
        .collect();
    assert_eq!(
        keys,
        [
            "name",
            "ip",
            "port",
            "runid",
            "flags",
            "link-pending-commands",
            "link-refcount",
            "last-ping-sent",
            "last-ok-ping-reply",
            "last-ping-reply",
            "down-after-milliseconds",
            "info-refresh",
            "role-reported",
            "role-reported-time",
            "config-epoch",
            "num-slaves",
            "num-other-sentinels",
            "quorum",
            "failover-timeout",
            "parallel-syncs",
            // Warden's own, after Sentinel's (clients read the map by key).
            "failover-strategy",
            "spares"
        ]
    );
    assert!(kv.iter().all(|v| matches!(v, Frame::Bulk(_))), "all values are bulk strings");
    let get = |k: &str| {
        let i = keys.iter().position(|x| x == k).unwrap();
        match &kv[2 * i + 1] {
            Frame::Bulk(b) => String::from_utf8_lossy(b).into_owned(),
            _ => unreachable!(),
        }
    };
    assert_eq!(get("flags"), "master");
    assert_eq!(get("port"), np);
    assert_eq!(get("quorum"), "1");
    assert_eq!(get("down-after-milliseconds"), "5000");
    assert_eq!(get("runid"), "abcdefabcdefabcdefabcdefabcdefabcdefabcd");
    assert_eq!(get("num-slaves"), "1");

    let Frame::Array(replicas) = c.raw("SENTINEL SLAVES mymaster\r\n").await else {
        panic!("an array")
    };
    assert_eq!(replicas.len(), 1);
    let Frame::Array(r) = &replicas[0] else { panic!("a map") };
    assert_eq!(r[0], Frame::bulk(b"name"));
    assert_eq!(r[1], Frame::bulk(b"127.0.0.1:1"));
    // Port 1 never answers: disconnected now, and s_down once down-after has passed.
    let Frame::Bulk(flags) = &r[9] else { panic!("flags") };
    assert!(flags.ends_with(b"slave,disconnected"), "{flags:?}");

    let Frame::Bulk(info) = c.raw("INFO sentinel\r\n").await else { panic!("a bulk string") };
    let info = String::from_utf8_lossy(&info).into_owned();
    assert!(info.starts_with("# Sentinel\r\nsentinel_masters:1\r\n"), "{info}");
    assert!(
        info.contains(&format!(
            "master0:name=mymaster,status=ok,address=127.0.0.1:{np},slaves=1,sentinels=1"
        )),
        "{info}"
    );
    let ckq = c.bytes(&["SENTINEL", "ckquorum", "mymaster"]).await;
    assert_eq!(ckq, "+OK 1 usable Sentinels. Quorum and failover authorization can be reached\r\n");

    // RESP3 after HELLO 3: a real map, and `_` for an unknown master.
    let Frame::Map(hello) = c.raw("HELLO 3\r\n").await else { panic!("a map") };
    assert!(hello.contains(&(Frame::bulk(b"mode"), Frame::bulk(b"sentinel"))));
    assert!(hello.contains(&(Frame::bulk(b"proto"), Frame::Integer(3))));
    assert_eq!(c.bytes(&["SENTINEL", "get-master-addr-by-name", "nosuch"]).await, "_\r\n");
    assert!(c.bytes(&["SENTINEL", "master", "mymaster"]).await.starts_with("%22\r\n"));
    assert_eq!(c.bytes(&["HELLO", "4"]).await, "-NOPROTO unsupported protocol version\r\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribers_get_events_and_bad_input_gets_errors_not_panics() {
    let (port, _node_port, _dir) = start().await;
    let mut c = Client::connect(port).await;
    assert_eq!(c.bytes(&["PSUBSCRIBE", "*"]).await, "*3\r\n$10\r\npsubscribe\r\n$1\r\n*\r\n:1\r\n");
    assert_eq!(
        c.bytes(&["GET", "x"]).await,
        "-ERR Can't execute 'get': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context\r\n"
    );
    assert_eq!(c.bytes(&["PING"]).await, "*2\r\n$4\r\npong\r\n$0\r\n\r\n");
    assert_eq!(
        c.bytes(&["SUBSCRIBE", "+switch-master"]).await,
        "*3\r\n$9\r\nsubscribe\r\n$14\r\n+switch-master\r\n:2\r\n"
    );
    assert_eq!(
        c.bytes(&["UNSUBSCRIBE"]).await,
        "*3\r\n$11\r\nunsubscribe\r\n$14\r\n+switch-master\r\n:1\r\n"
    );
    assert_eq!(c.bytes(&["PUNSUBSCRIBE"]).await, "*3\r\n$12\r\npunsubscribe\r\n$1\r\n*\r\n:0\r\n");
    assert_eq!(
        c.bytes(&["PSUBSCRIBE", "+*"]).await,
        "*3\r\n$10\r\npsubscribe\r\n$2\r\n+*\r\n:1\r\n"
    );
    assert_eq!(c.bytes(&["RESET"]).await, "+RESET\r\n");
    assert_eq!(c.bytes(&["PING"]).await, "+PONG\r\n", "out of subscribed mode");
    for garbage in ["*1\r\n$-5\r\n", "*abc\r\n", "\"unbalanced\r\n", "*1\r\n$2000000\r\n"] {
        let mut g = Client::connect(port).await;
        let reply = g.raw(garbage).await;
        assert!(
            matches!(reply, Frame::Error(ref e) if e.starts_with(b"ERR Protocol error")),
            "{garbage:?}: {reply:?}"
        );
    }
    let mut after = Client::connect(port).await;
    assert_eq!(after.bytes(&["PING"]).await, "+PONG\r\n", "still serving");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_group_watches_several_masters_each_with_its_own_settings() {
    let other = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let other_port = other.local_addr().unwrap().port();
    tokio::spawn(fake_master(other));
    let extra = format!(
        "sentinel monitor other 127.0.0.1 {other_port} 1\nsentinel down-after-milliseconds other 2500\n\
         sentinel parallel-syncs other 3\n"
    );
    let (port, _node_port, _dir) = start_with(&extra).await;
    let mut c = Client::connect(port).await;
    assert_eq!(
        c.bytes(&["ROLE"]).await,
        "*2\r\n$8\r\nsentinel\r\n*2\r\n$8\r\nmymaster\r\n$5\r\nother\r\n"
    );
    let Frame::Array(kv) = c.raw("SENTINEL MASTER other\r\n").await else { panic!("a map") };
    let get =
        |k: &str| kv.chunks(2).find(|p| p[0] == Frame::bulk(k.as_bytes())).map(|p| p[1].clone());
    assert_eq!(get("down-after-milliseconds"), Some(Frame::bulk(b"2500")));
    assert_eq!(get("parallel-syncs"), Some(Frame::bulk(b"3")));
    assert_eq!(get("port"), Some(Frame::bulk(other_port.to_string().as_bytes())));
    let Frame::Array(masters) = c.raw("SENTINEL MASTERS\r\n").await else { panic!("an array") };
    assert_eq!(masters.len(), 2);
    let Frame::Bulk(info) = c.raw("INFO sentinel\r\n").await else { panic!("a bulk string") };
    let info = String::from_utf8_lossy(&info).into_owned();
    assert!(
        info.contains("sentinel_masters:2\r\n") && info.contains("master1:name=other,"),
        "{info}"
    );
}
