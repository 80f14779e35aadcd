//! Golden scripts for the replica side of replication: a scripted master in the test checks
//! every byte warden-node sends and feeds it exactly what a Redis 7.0 master would.

use std::time::Duration;

use bytes::Bytes;
use common::resp::Frame;
use node::db::{Keyspace, Value};
use node::persist::{write_keyspace, Aux, ReplAux, WriteOptions};
use node::testing::{read_frame, TestServer};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};

const MASTER_ID: &str = "8de1d09f4bd4a5b1d5bfa41a2fb6ba9a2b6d1c3e";
const NEW_ID: &str = "0f1e2d3c4b5a69788796a5b4c3d2e1f001122334";

/// A scripted master connection.
struct Script {
    sock: TcpStream,
    buf: Vec<u8>,
}

impl Script {
    async fn accept(listener: &TcpListener) -> Script {
        let (sock, _) = tokio::time::timeout(Duration::from_secs(10), listener.accept())
            .await
            .expect("the replica connects within 10 s")
            .unwrap();
        Script { sock, buf: Vec::new() }
    }

    /// Reads one command and checks it word for word.
    async fn expect(&mut self, words: &[&str]) {
        let frame = read_frame(&mut self.sock, &mut self.buf).await;
        let expected = Frame::Array(
            words.iter().map(|w| Frame::Bulk(Bytes::copy_from_slice(w.as_bytes()))).collect(),
        );
        assert_eq!(frame, expected, "the replica sent something else");
    }

    /// Reads ACKs until one reports `offset` (the periodic once-a-second ACKs may come first,
    /// with earlier offsets).
    async fn expect_ack(&mut self, offset: i64) {
        loop {
            let frame = read_frame(&mut self.sock, &mut self.buf).await;
            let Frame::Array(words) = &frame else { panic!("not a command: {frame:?}") };
            let text: Vec<String> = words
                .iter()
                .map(|w| match w {
                    Frame::Bulk(b) => String::from_utf8_lossy(b).into_owned(),
                    other => format!("{other:?}"),
                })
                .collect();
            assert_eq!(text[..2], ["REPLCONF", "ACK"], "expected an ACK, got {text:?}");
            let got: i64 = text[2].parse().unwrap();
            if got == offset {
                return;
            }
            assert!(got < offset, "ACK {got} is past {offset}");
        }
    }

    async fn send(&mut self, bytes: &[u8]) {
        self.sock.write_all(bytes).await.unwrap();
    }

    /// PING, REPLCONF listening-port, REPLCONF capa: answered as a Redis master answers.
    async fn handshake(&mut self, port: u16) {
        self.expect(&["PING"]).await;
        self.send(b"+PONG\r\n").await;
        self.expect(&["REPLCONF", "listening-port", &port.to_string()]).await;
        self.expect(&["REPLCONF", "capa", "eof", "capa", "psync2"]).await;
        self.send(b"+OK\r\n+OK\r\n").await;
    }
}

fn command(words: &[&str]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", words.len()).into_bytes();
    for w in words {
        out.extend_from_slice(format!("${}\r\n{w}\r\n", w.len()).as_bytes());
    }
    out
}

/// A snapshot as a master would send it: one live key, one whose TTL already passed.
fn snapshot(offset: i64) -> Vec<u8> {
    let mut ks = Keyspace::new(16);
    ks.dbs[0].keys.insert(b"loaded", Value::string(b"yes"));
    ks.dbs[0].keys.insert(b"stale", Value::string(b"old"));
    ks.dbs[0].expires.insert(b"stale", 1_000);
    let aux = Aux {
        ctime: 0,
        used_mem: 0,
        repl: Some(ReplAux { stream_db: 0, id: MASTER_ID, offset }),
        aof_base: false,
        functions: &[],
    };
    write_keyspace(Vec::new(), &ks, &aux, WriteOptions::default()).unwrap()
}

async fn query(server: &TestServer, words: &[&str]) -> redis::Value {
    let client = redis::Client::open(server.url()).unwrap();
    let mut c = client.get_multiplexed_async_connection().await.unwrap();
    let mut cmd = redis::cmd(words[0]);
    for w in &words[1..] {
        cmd.arg(*w);
    }
    cmd.query_async(&mut c).await.unwrap_or_else(|e| redis::Value::SimpleString(format!("ERR {e}")))
}

async fn eventually(server: &TestServer, words: &[&str], want: redis::Value) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let got = query(server, words).await;
        if got == want {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{words:?}: last saw {got:?}, want {want:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn bulk(s: &str) -> redis::Value {
    redis::Value::BulkString(s.as_bytes().to_vec())
}

#[tokio::test]
async fn eof_marked_sync_then_stream_getack_and_partial_resync() {
    let master = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let mport = master.local_addr().unwrap().port();
    let data = tempfile::tempdir().unwrap();
    let config = format!("replicaof 127.0.0.1 {mport}\ndir {}\n", data.path().display());
    let server = TestServer::start(&config).await;
    let port = server.addr.port();
    let mut m = Script::accept(&master).await;
    m.handshake(port).await;
    m.expect(&["PSYNC", "?", "-1"]).await;
    // Keepalive newlines may come before the reply and before the payload.
    m.send(format!("\n+FULLRESYNC {MASTER_ID} 1000\r\n\n").as_bytes()).await;
    let mark = "a".repeat(40);
    let mut payload = format!("$EOF:{mark}\r\n").into_bytes();
    payload.extend_from_slice(&snapshot(1000));
    payload.extend_from_slice(mark.as_bytes());
    m.send(&payload).await;
    // After an EOF-marked transfer the replica acknowledges at once.
    m.expect(&["REPLCONF", "ACK", "1000"]).await;
    eventually(&server, &["GET", "loaded"], bulk("yes")).await;
    // An expired key is hidden but stays until the master deletes it.
    assert_eq!(query(&server, &["GET", "stale"]).await, redis::Value::Nil);
    assert_eq!(query(&server, &["DBSIZE"]).await, redis::Value::Int(2));

    let mut stream = Vec::new();
    stream.extend(command(&["SELECT", "0"]));
    stream.extend(command(&["set", "a", "1"]));
    stream.extend(command(&["MULTI"]));
    stream.extend(command(&["incr", "a"]));
    stream.extend(command(&["incr", "a"]));
    stream.extend(command(&["EXEC"]));
    stream.extend(command(&["DEL", "stale"]));
    let before_getack = 1000 + stream.len() as i64;
    stream.extend(command(&["REPLCONF", "GETACK", "*"]));
    m.send(&stream).await;
    // GETACK reports the offset before its own bytes.
    m.expect_ack(before_getack).await;
    assert_eq!(query(&server, &["GET", "a"]).await, bulk("3"));
    assert_eq!(query(&server, &["DBSIZE"]).await, redis::Value::Int(2));
    let after = before_getack + 37;
    let role = query(&server, &["ROLE"]).await;
    assert_eq!(
        role,
        redis::Value::Array(vec![
            bulk("slave"),
            bulk("127.0.0.1"),
            redis::Value::Int(mport as i64),
            bulk("connected"),
            redis::Value::Int(after),
        ])
    );

    // The link drops: the replica comes back asking to continue right after `after`.
    drop(m);
    let mut m = Script::accept(&master).await;
    m.handshake(port).await;
    m.expect(&["PSYNC", MASTER_ID, &(after + 1).to_string()]).await;
    // The master was promoted meanwhile: a new id, reached through its replid2.
    m.send(format!("+CONTINUE {NEW_ID}\r\n").as_bytes()).await;
    m.send(&command(&["set", "b", "2"])).await;
    eventually(&server, &["GET", "b"], bulk("2")).await;
    let r = server.shared.repl.lock();
    assert_eq!(r.replid, NEW_ID);
    assert_eq!(r.replid2, MASTER_ID);
    assert_eq!(r.second_offset, after + 1);
    assert_eq!(r.offset(), after + command(&["set", "b", "2"]).len() as i64);
}

#[tokio::test]
async fn length_prefixed_sync_after_a_transient_refusal() {
    let master = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let mport = master.local_addr().unwrap().port();
    let data = tempfile::tempdir().unwrap();
    let server = TestServer::start(&format!(
        "replicaof 127.0.0.1 {mport}\nmasterauth s3cret\nreplica-announce-ip 10.1.2.3\ndir {}\n",
        data.path().display()
    ))
    .await;
    let port = server.addr.port();
    // First attempt: the master cannot serve yet; the replica retries the whole handshake.
    for attempt in 0..2 {
        let mut m = Script::accept(&master).await;
        m.expect(&["PING"]).await;
        m.send(b"-NOAUTH Authentication required.\r\n").await;
        m.expect(&["AUTH", "s3cret"]).await;
        m.expect(&["REPLCONF", "listening-port", &port.to_string()]).await;
        m.expect(&["REPLCONF", "ip-address", "10.1.2.3"]).await;
        m.expect(&["REPLCONF", "capa", "eof", "capa", "psync2"]).await;
        m.send(b"+OK\r\n+OK\r\n+OK\r\n+OK\r\n").await;
        m.expect(&["PSYNC", "?", "-1"]).await;
        if attempt == 0 {
            m.send(b"-NOMASTERLINK Can't SYNC while not connected with my master\r\n").await;
            continue;
        }
        let rdb = snapshot(77);
        m.send(format!("+FULLRESYNC {MASTER_ID} 77\r\n${}\r\n", rdb.len()).as_bytes()).await;
        m.send(&rdb).await;
        // The stream follows the payload directly, with no ACK in between.
        m.send(&command(&["SELECT", "0"])).await;
        m.send(&command(&["set", "c", "3"])).await;
        eventually(&server, &["GET", "c"], bulk("3")).await;
        eventually(&server, &["GET", "loaded"], bulk("yes")).await;
        let err = query(&server, &["SET", "x", "1"]).await;
        assert!(format!("{err:?}").contains("read only replica"), "{err:?}");
        // The dump file was written from the transfer, as a disk-based load does.
        let dump = data.path().join("dump.rdb");
        assert!(std::fs::metadata(&dump).is_ok_and(|m| m.len() == rdb.len() as u64));
        return;
    }
}

#[tokio::test]
async fn blocked_clients_are_released_when_a_master_becomes_a_replica() {
    let server = TestServer::start("").await;
    let mut blocked = TcpStream::connect(server.addr).await.unwrap();
    blocked.write_all(&command(&["BLPOP", "queue", "0"])).await.unwrap();
    server.wait_blocked(1).await;
    let master = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = master.local_addr().unwrap().port().to_string();
    assert_eq!(query(&server, &["REPLICAOF", "127.0.0.1", &port]).await, redis::Value::Okay);
    let mut buf = Vec::new();
    let reply = read_frame(&mut blocked, &mut buf).await;
    let Frame::Error(text) = reply else { panic!("expected an error, got {reply:?}") };
    assert!(text.starts_with(b"UNBLOCKED force unblock"), "{}", String::from_utf8_lossy(&text));
}

/// `repl-diskless-load`: `disabled` writes the transfer to disk as it arrives (it becomes the
/// dump file, byte for byte, without the EOF mark), `swapdb` keeps it in memory and writes no
/// file, and `on-empty-db` keeps it in memory only while the replica holds no data. The
/// snapshot is larger than the disk writer's chunk, so the mark spans writes.
#[tokio::test]
async fn repl_diskless_load_decides_where_the_transfer_is_kept() {
    let mut ks = Keyspace::new(16);
    ks.dbs[0].keys.insert(b"big", Value::string(&vec![b'b'; 3 << 20]));
    let aux = Aux {
        ctime: 0,
        used_mem: 0,
        repl: Some(ReplAux { stream_db: 0, id: MASTER_ID, offset: 1000 }),
        aof_base: false,
        functions: &[],
    };
    let rdb = write_keyspace(Vec::new(), &ks, &aux, WriteOptions::default()).unwrap();
    for (mode, preload, on_disk) in [
        ("disabled", false, true),
        ("swapdb", true, false),
        ("on-empty-db", false, false),
        ("on-empty-db", true, true),
    ] {
        let master = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mport = master.local_addr().unwrap().port();
        let data = tempfile::tempdir().unwrap();
        let server = TestServer::start(&format!(
            "dir {}\nrepl-diskless-load {mode}\n",
            data.path().display()
        ))
        .await;
        if preload {
            query(&server, &["SET", "old", "1"]).await;
        }
        query(&server, &["REPLICAOF", "127.0.0.1", &mport.to_string()]).await;
        let mut m = Script::accept(&master).await;
        m.handshake(server.addr.port()).await;
        // A former master asks to continue its own history; the answer is a full sync anyway.
        let psync = read_frame(&mut m.sock, &mut m.buf).await;
        let Frame::Array(words) = &psync else { panic!("not a command: {psync:?}") };
        assert_eq!(words[0], Frame::bulk(b"PSYNC"));
        m.send(format!("+FULLRESYNC {MASTER_ID} 1000\r\n").as_bytes()).await;
        let mark = "m".repeat(40);
        m.send(format!("$EOF:{mark}\r\n").as_bytes()).await;
        for piece in rdb.chunks(700_000) {
            m.send(piece).await;
        }
        m.send(mark.as_bytes()).await;
        m.expect(&["REPLCONF", "ACK", "1000"]).await;
        eventually(&server, &["STRLEN", "big"], redis::Value::Int(3 << 20)).await;
        assert_eq!(query(&server, &["EXISTS", "old"]).await, redis::Value::Int(0), "{mode}");
        let files: Vec<String> = std::fs::read_dir(data.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        if on_disk {
            assert_eq!(files, ["dump.rdb"], "{mode} (preloaded: {preload})");
            assert!(std::fs::read(data.path().join("dump.rdb")).unwrap() == rdb, "{mode}");
        } else {
            assert!(files.is_empty(), "{mode} (preloaded: {preload}) wrote {files:?}");
        }
        drop(m);
        server.stop().await;
    }
}
