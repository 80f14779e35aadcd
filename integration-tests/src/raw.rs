//! A raw connection for tests that compare servers byte for byte: it sends inline commands and
//! reads until the bytes it waits for arrive (10 s at most), so a test can assert on exact
//! RESP2/RESP3 frames, pushes included, the same way against redis-server and warden-node.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::nodes::Node;

/// How long a read waits for what it expects.
const WAIT: Duration = Duration::from_secs(10);

/// A raw connection.
pub struct Raw {
    stream: TcpStream,
    seen: Vec<u8>,
}

impl Raw {
    /// Connects to `node`.
    pub fn open(node: &Node) -> Raw {
        let stream = TcpStream::connect(("127.0.0.1", node.port)).expect("connect");
        stream.set_read_timeout(Some(Duration::from_millis(100))).expect("read timeout");
        Raw { stream, seen: Vec::new() }
    }

    /// Connects to `node` and switches to RESP3 (HELLO 3's reply is read and dropped).
    pub fn open_resp3(node: &Node) -> Raw {
        let mut c = Raw::open(node);
        c.send("HELLO 3");
        // The HELLO map ends with the (empty) modules array.
        c.read_until("HELLO 3", |seen| seen.ends_with(b"modules\r\n*0\r\n"));
        assert!(c.seen.ends_with(b"modules\r\n*0\r\n"), "HELLO 3: {:?}", c.text());
        c.seen.clear();
        c
    }

    /// Sends one inline command.
    pub fn send(&mut self, line: &str) {
        self.stream.write_all(format!("{line}\r\n").as_bytes()).expect("send");
    }

    /// Sends `line` and waits for exactly `expect` (reporting what came instead).
    pub fn call(&mut self, line: &str, expect: &str) {
        self.send(line);
        self.expect(&format!("reply to {line}"), expect);
    }

    /// Reads until `done(bytes so far)` or the wait is over.
    pub fn read_until(&mut self, what: &str, done: impl Fn(&[u8]) -> bool) {
        let deadline = Instant::now() + WAIT;
        let mut buf = [0u8; 4096];
        while !done(&self.seen) && Instant::now() < deadline {
            if let Ok(n) = self.stream.read(&mut buf) {
                assert!(n > 0, "{what}: connection closed after {:?}", self.text());
                self.seen.extend_from_slice(&buf[..n]);
            }
        }
    }

    /// Waits for the next bytes to be exactly `expect`, and consumes them.
    pub fn expect(&mut self, what: &str, expect: &str) {
        self.read_until(what, |seen| seen.len() >= expect.len());
        assert_eq!(self.text(), expect, "{what}");
        self.seen.clear();
    }

    /// Nothing arrives within a short while (one read timeout).
    pub fn quiet(&mut self, what: &str) {
        let mut buf = [0u8; 4096];
        if let Ok(n) = self.stream.read(&mut buf) {
            self.seen.extend_from_slice(&buf[..n]);
        }
        assert_eq!(self.text(), "", "{what}: unexpected bytes");
    }

    /// What arrived and was not consumed yet.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.seen).into_owned()
    }

    /// This connection's CLIENT ID.
    pub fn id(&mut self) -> String {
        self.send("CLIENT ID");
        self.read_until("CLIENT ID", |seen| seen.ends_with(b"\r\n"));
        let id = self.text().trim_start_matches(':').trim().to_string();
        self.seen.clear();
        id
    }
}
