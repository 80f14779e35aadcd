//! `client-output-buffer-limit`, seen from clients: a client whose replies pile up past its
//! class's limit is disconnected (its replies unsent), and one that keeps up loses nothing.

use std::time::Duration;

use common::resp::Frame;
use node::testing::{read_frame, TestServer};
use redis::AsyncCommands;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

async fn client(server: &TestServer) -> redis::aio::MultiplexedConnection {
    redis::Client::open(server.url()).unwrap().get_multiplexed_async_connection().await.unwrap()
}

/// Polls `check` every 10 ms for up to 10 s; panics with the last value seen.
async fn eventually<T: std::fmt::Debug>(
    what: &str,
    mut probe: impl AsyncFnMut() -> T,
    done: impl Fn(&T) -> bool,
) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let seen = probe().await;
        if done(&seen) {
            return;
        }
        assert!(tokio::time::Instant::now() < deadline, "{what}: last saw {seen:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Reads until the server closes the connection; returns what arrived first.
async fn read_to_close(sock: &mut TcpStream) -> Vec<u8> {
    let mut got = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), sock.read_to_end(&mut got)).await;
    assert!(read.is_ok(), "the server kept the connection open; got {} bytes", got.len());
    got
}

#[tokio::test]
async fn a_reply_over_the_normal_hard_limit_is_never_sent() {
    let server = TestServer::start("client-output-buffer-limit normal 100kb 0 0").await;
    let mut c = client(&server).await;
    let _: () = c.set("big", vec![b'x'; 200 * 1024]).await.unwrap();
    let _: () = c.set("small", "v").await.unwrap();
    let mut sock = TcpStream::connect(server.addr).await.unwrap();
    sock.write_all(b"GET small\r\nGET big\r\nGET small\r\n").await.unwrap();
    // Redis drops the client at once: the reply that went over, and everything after it, is
    // discarded; what was flushed before may already be on its way.
    let got = read_to_close(&mut sock).await;
    assert!(got.len() < 100 * 1024, "{} bytes of the big reply were sent", got.len());
    // Other clients, and the data, are untouched.
    let small: String = c.get("small").await.unwrap();
    assert_eq!(small, "v");
    server.stop().await;
}

#[tokio::test]
async fn a_subscriber_that_stops_reading_is_dropped_at_the_pubsub_limit() {
    let server = TestServer::start("client-output-buffer-limit pubsub 256kb 0 0").await;
    let mut c = client(&server).await;
    let mut sub = TcpStream::connect(server.addr).await.unwrap();
    sub.write_all(b"SUBSCRIBE news\r\n").await.unwrap();
    let mut buf = Vec::new();
    read_frame(&mut sub, &mut buf).await;
    // It reads no more. Publishing fills its socket, then its queue, until the limit drops it.
    let message = vec![b'm'; 4096];
    eventually(
        "the subscriber is dropped",
        async || {
            let mut pipe = redis::pipe();
            for _ in 0..256 {
                pipe.publish("news", &message[..]).ignore();
            }
            let _: () = pipe.query_async(&mut c).await.unwrap();
            let numsub: (String, i64) =
                redis::cmd("PUBSUB").arg("NUMSUB").arg("news").query_async(&mut c).await.unwrap();
            numsub.1
        },
        |subscribers| *subscribers == 0,
    )
    .await;
    server.stop().await;
}

#[tokio::test]
async fn a_subscriber_that_keeps_up_receives_a_burst_whole_and_in_order() {
    let server = TestServer::start("").await;
    let mut sub = TcpStream::connect(server.addr).await.unwrap();
    sub.write_all(b"SUBSCRIBE news\r\n").await.unwrap();
    let mut buf = Vec::new();
    read_frame(&mut sub, &mut buf).await;
    // 50,000 messages in one pipeline: far more frames than fit in any fixed-length queue,
    // but only ~3 MB, well inside the default 32 MB limit.
    const N: usize = 50_000;
    let mut publisher = TcpStream::connect(server.addr).await.unwrap();
    let mut burst = Vec::new();
    for i in 0..N {
        burst.extend_from_slice(format!("PUBLISH news m{i}\r\n").as_bytes());
    }
    let writer = tokio::spawn(async move {
        publisher.write_all(&burst).await.unwrap();
        publisher
    });
    for i in 0..N {
        let frame = read_frame(&mut sub, &mut buf).await;
        let expected = Frame::Array(vec![
            Frame::bulk(b"message"),
            Frame::bulk(b"news"),
            Frame::bulk(format!("m{i}").as_bytes()),
        ]);
        assert_eq!(frame, expected, "message {i}");
    }
    drop(writer.await.unwrap());
    server.stop().await;
}

#[tokio::test]
async fn a_replica_whose_stream_piles_up_past_the_replica_limit_is_dropped() {
    let server =
        TestServer::start("client-output-buffer-limit replica 1mb 0 0\nrepl-diskless-sync-delay 0")
            .await;
    let mut c = client(&server).await;
    let observer = client(&server).await;
    let mut replica = TcpStream::connect(server.addr).await.unwrap();
    replica.write_all(b"REPLCONF capa eof capa psync2\r\nPSYNC ? -1\r\n").await.unwrap();
    let connected = async || -> String {
        let mut o = observer.clone();
        let info: String = redis::cmd("INFO").arg("replication").query_async(&mut o).await.unwrap();
        info.lines().find(|l| l.starts_with("connected_slaves:")).unwrap_or_default().to_string()
    };
    eventually("the replica attaches", connected, |l| l == "connected_slaves:1").await;
    // It reads nothing (as a replica stuck loading would): every write is kept for it until
    // what it has not been sent passes 1 MB.
    let value = vec![b'v'; 64 * 1024];
    for i in 0..32 {
        let _: () = c.set(format!("k{i}"), &value[..]).await.unwrap();
    }
    eventually("the replica is dropped", connected, |l| l == "connected_slaves:0").await;
    drop(replica);
    server.stop().await;
}

#[tokio::test]
async fn config_get_and_set_use_redis_words() {
    let server = TestServer::start("client-output-buffer-limit pubsub 5 6 7").await;
    let mut c = client(&server).await;
    let get = async |c: &mut redis::aio::MultiplexedConnection| -> Vec<String> {
        redis::cmd("CONFIG")
            .arg("GET")
            .arg("client-output-buffer-limit")
            .query_async(c)
            .await
            .unwrap()
    };
    assert_eq!(get(&mut c).await[1], "normal 0 0 0 slave 268435456 67108864 60 pubsub 5 6 7");
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("client-output-buffer-limit")
        .arg("replica 1gb 2k 3")
        .query_async(&mut c)
        .await
        .unwrap();
    assert_eq!(get(&mut c).await[1], "normal 0 0 0 slave 1073741824 2000 3 pubsub 5 6 7");
    let err = redis::cmd("CONFIG")
        .arg("SET")
        .arg("client-output-buffer-limit")
        .arg("master 1 2 3")
        .query_async::<()>(&mut c)
        .await
        .unwrap_err();
    assert_eq!(
        err.detail(),
        Some(
            "CONFIG SET failed (possibly related to argument 'client-output-buffer-limit') - \
             Invalid client class specified in buffer limit configuration."
        )
    );
    server.stop().await;
}
