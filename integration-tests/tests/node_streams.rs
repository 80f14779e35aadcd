//! Blocking stream reads (XREAD and XREADGROUP with BLOCK), checked on redis-server and
//! warden-node alike with the same raw bytes: a wait served by XADD, waiters served in the
//! order they blocked, the pending entries list of a served XREADGROUP, timeouts in RESP2 and
//! RESP3, and a waiting group reader told that its group or its key went away.
//! (One-connection behaviour is in `node/tests/compat/streams.redis`.)

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use integration_tests::nodes::{cmd, Kind, Node};
use integration_tests::wait;

/// A raw connection that sends inline commands and reads exact byte sequences.
struct Raw {
    stream: TcpStream,
    seen: Vec<u8>,
}

impl Raw {
    fn open(node: &Node) -> Raw {
        let stream = TcpStream::connect(("127.0.0.1", node.port)).unwrap();
        stream.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
        Raw { stream, seen: Vec::new() }
    }

    fn send(&mut self, line: &str) {
        self.stream.write_all(format!("{line}\r\n").as_bytes()).unwrap();
    }

    /// Waits up to 10 s for the next bytes to be exactly `expect`.
    fn expect(&mut self, what: &str, expect: &str) {
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut buf = [0u8; 4096];
        while self.seen.len() < expect.len() && Instant::now() < deadline {
            if let Ok(n) = self.stream.read(&mut buf) {
                assert!(n > 0, "{what}: connection closed after {:?}", self.text());
                self.seen.extend_from_slice(&buf[..n]);
            }
        }
        assert_eq!(self.text(), expect, "{what}");
        self.seen.clear();
    }

    /// Nothing arrives within a short while.
    fn quiet(&mut self, what: &str) {
        let mut buf = [0u8; 4096];
        if let Ok(n) = self.stream.read(&mut buf) {
            self.seen.extend_from_slice(&buf[..n]);
        }
        assert_eq!(self.text(), "", "{what}: unexpected bytes");
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.seen).into_owned()
    }
}

fn wait_blocked(node: &Node, n: usize) {
    wait::until("clients to block", Duration::from_secs(10), || {
        match node.info("blocked_clients") {
            Some(v) if v == n.to_string() => Ok(()),
            other => Err(format!("blocked_clients {other:?}")),
        }
    });
}

/// `[[key, [[id, [f, v]]]]]` in RESP2.
fn one_entry_resp2(key: &str, id: &str, f: &str, v: &str) -> String {
    format!(
        "*1\r\n*2\r\n${}\r\n{key}\r\n*1\r\n*2\r\n${}\r\n{id}\r\n*2\r\n${}\r\n{f}\r\n${}\r\n{v}\r\n",
        key.len(),
        id.len(),
        f.len(),
        v.len()
    )
}

#[test]
fn xread_block_is_served_by_xadd_and_times_out_with_a_null() {
    for kind in [Kind::Redis, Kind::Warden] {
        let node = Node::start(kind, &format!("{kind:?}"), &[]);
        let mut c = node.connect();
        let _: String = cmd(&mut c, &["XADD", "s", "1-1", "old", "x"]);
        let mut a = Raw::open(&node);
        let mut b = Raw::open(&node);
        a.send("XREAD BLOCK 0 STREAMS other s 0 $");
        b.send("XREAD COUNT 5 BLOCK 0 STREAMS s $");
        wait_blocked(&node, 2);
        let _: String = cmd(&mut c, &["XADD", "s", "2-1", "f", "v"]);
        let reply = one_entry_resp2("s", "2-1", "f", "v");
        a.expect(&format!("{kind:?}: first waiter"), &reply);
        b.expect(&format!("{kind:?}: second waiter"), &reply);
        wait_blocked(&node, 0);

        // Timeouts: a null array in RESP2, a null in RESP3.
        a.send("XREAD BLOCK 50 STREAMS s $");
        a.expect(&format!("{kind:?}: RESP2 timeout"), "*-1\r\n");
        b.send("HELLO 3");
        let mut buf = [0u8; 4096];
        let deadline = Instant::now() + Duration::from_secs(10);
        while !b.seen.ends_with(b"modules\r\n*0\r\n") && Instant::now() < deadline {
            if let Ok(n) = b.stream.read(&mut buf) {
                b.seen.extend_from_slice(&buf[..n]);
            }
        }
        b.seen.clear();
        b.send("XREAD BLOCK 50 STREAMS s $");
        b.expect(&format!("{kind:?}: RESP3 timeout"), "_\r\n");

        // RESP3 waiters get a map.
        b.send("XREAD BLOCK 0 STREAMS s $");
        wait_blocked(&node, 1);
        let _: String = cmd(&mut c, &["XADD", "s", "3-1", "g", "w"]);
        b.expect(
            &format!("{kind:?}: RESP3 served"),
            "%1\r\n$1\r\ns\r\n*1\r\n*2\r\n$3\r\n3-1\r\n*2\r\n$1\r\ng\r\n$1\r\nw\r\n",
        );
    }
}

#[test]
fn xreadgroup_block_serves_waiters_in_order_and_records_pending_entries() {
    for kind in [Kind::Redis, Kind::Warden] {
        let node = Node::start(kind, &format!("{kind:?}"), &[]);
        let mut c = node.connect();
        let _: String = cmd(&mut c, &["XGROUP", "CREATE", "q", "grp", "$", "MKSTREAM"]);
        let mut a = Raw::open(&node);
        let mut b = Raw::open(&node);
        a.send("XREADGROUP GROUP grp alice COUNT 1 BLOCK 0 STREAMS q >");
        wait_blocked(&node, 1);
        b.send("XREADGROUP GROUP grp bob COUNT 1 BLOCK 0 STREAMS q >");
        wait_blocked(&node, 2);
        let _: String = cmd(&mut c, &["XADD", "q", "1-1", "f", "v"]);
        a.expect(&format!("{kind:?}: first waiter"), &one_entry_resp2("q", "1-1", "f", "v"));
        b.quiet(&format!("{kind:?}: second waiter"));
        assert_eq!(node.info("blocked_clients").as_deref(), Some("1"), "{kind:?}");
        let _: String = cmd(&mut c, &["XADD", "q", "2-1", "f", "w"]);
        b.expect(&format!("{kind:?}: second waiter"), &one_entry_resp2("q", "2-1", "f", "w"));
        let summary: redis::Value = cmd(&mut c, &["XPENDING", "q", "grp"]);
        let text = format!("{summary:?}");
        assert!(text.contains("1-1") && text.contains("2-1"), "{kind:?}: {text}");
        let mine: Vec<Vec<redis::Value>> =
            cmd(&mut c, &["XPENDING", "q", "grp", "-", "+", "10", "bob"]);
        assert_eq!(mine.len(), 1, "{kind:?}");
        let groups: redis::Value = cmd(&mut c, &["XINFO", "GROUPS", "q"]);
        let text = format!("{groups:?}");
        assert!(text.contains("2-1"), "{kind:?}: last-delivered-id in {text}");
    }
}

#[test]
fn a_waiting_group_reader_is_told_when_its_group_or_key_goes() {
    for kind in [Kind::Redis, Kind::Warden] {
        let node = Node::start(kind, &format!("{kind:?}"), &[]);
        let mut c = node.connect();
        let _: String = cmd(&mut c, &["XGROUP", "CREATE", "q", "grp", "$", "MKSTREAM"]);
        let mut a = Raw::open(&node);
        a.send("XREADGROUP GROUP grp alice BLOCK 0 STREAMS q >");
        wait_blocked(&node, 1);
        let _: i64 = cmd(&mut c, &["XGROUP", "DESTROY", "q", "grp"]);
        a.expect(
            &format!("{kind:?}: group destroyed"),
            "-NOGROUP the consumer group this client was blocked on no longer exists\r\n",
        );
        let _: String = cmd(&mut c, &["XGROUP", "CREATE", "q", "grp", "$"]);
        a.send("XREADGROUP GROUP grp alice BLOCK 0 STREAMS q >");
        wait_blocked(&node, 1);
        let _: i64 = cmd(&mut c, &["DEL", "q"]);
        a.expect(
            &format!("{kind:?}: key deleted"),
            "-UNBLOCKED the stream key no longer exists\r\n",
        );
        // A plain reader keeps waiting when its key goes, and is served once it comes back.
        a.send("XREAD BLOCK 0 STREAMS q 0");
        wait_blocked(&node, 1);
        let _: String = cmd(&mut c, &["SET", "q", "x"]);
        let _: i64 = cmd(&mut c, &["DEL", "q"]);
        a.quiet(&format!("{kind:?}: plain reader"));
        let _: String = cmd(&mut c, &["XADD", "q", "1-1", "f", "v"]);
        a.expect(&format!("{kind:?}: plain reader served"), &one_entry_resp2("q", "1-1", "f", "v"));
    }
}
