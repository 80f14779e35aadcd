//! A raw RESP connection: requests go out as multibulks, replies come back as the exact bytes
//! of one complete frame (RESP2 or RESP3), never re-encoded, so a comparison sees every byte a
//! server chose. Every read and write is bounded by [`IO_TIMEOUT`]: a missing reply fails the
//! test with what was received so far instead of hanging it.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::time::Duration;

use common::resp::decode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// How long one reply (or one write) may take before it is reported as missing.
pub const IO_TIMEOUT: Duration = Duration::from_secs(5);

/// One connection to one server; `name` labels it in messages.
pub struct Wire {
    pub name: &'static str,
    stream: TcpStream,
    /// Bytes received and not yet returned as a frame (the start of the next reply).
    buf: Vec<u8>,
}

impl Wire {
    /// Connects to `addr`; panics with the name and address if the server does not accept.
    pub async fn connect(addr: SocketAddr, name: &'static str) -> Wire {
        Wire::try_connect(addr, name)
            .await
            .unwrap_or_else(|e| panic!("connect to {name} at {addr}: {e}"))
    }

    /// Connects to `addr`, or says why not.
    pub async fn try_connect(addr: SocketAddr, name: &'static str) -> Result<Wire, String> {
        let stream = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
        stream.set_nodelay(true).map_err(|e| format!("set TCP_NODELAY: {e}"))?;
        Ok(Wire { name, stream, buf: Vec::new() })
    }

    /// Sends one request without waiting for its reply (callers pipeline by sending several).
    pub async fn send<A: AsRef<[u8]>>(&mut self, args: &[A]) -> Result<(), String> {
        let request = encode_request(args);
        match tokio::time::timeout(IO_TIMEOUT, self.stream.write_all(&request)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(format!("write failed: {e}")),
            Err(_) => Err(format!("write not accepted within {IO_TIMEOUT:?}")),
        }
    }

    /// Sends one request and returns the raw bytes of the one frame that answers it.
    pub async fn request<A: AsRef<[u8]>>(&mut self, args: &[A]) -> Result<Vec<u8>, String> {
        self.send(args).await?;
        self.read_frame().await
    }

    /// The raw bytes of the next complete frame.
    pub async fn read_frame(&mut self) -> Result<Vec<u8>, String> {
        let deadline = tokio::time::Instant::now() + IO_TIMEOUT;
        loop {
            match decode(&self.buf) {
                Ok(Some((_, used))) => return Ok(self.buf.drain(..used).collect()),
                Ok(None) => {}
                Err(e) => return Err(format!("undecodable reply ({e}): {}", escape(&self.buf))),
            }
            let mut chunk = [0u8; 16 * 1024];
            let read = tokio::time::timeout_at(deadline, self.stream.read(&mut chunk)).await;
            let partial = || {
                if self.buf.is_empty() {
                    String::new()
                } else {
                    format!("; partial: {}", escape(&self.buf))
                }
            };
            match read {
                Err(_) => return Err(format!("no reply within {IO_TIMEOUT:?}{}", partial())),
                Ok(Ok(0)) => return Err(format!("connection closed{}", partial())),
                Ok(Ok(n)) => self.buf.extend_from_slice(&chunk[..n]),
                Ok(Err(e)) => return Err(format!("read failed: {e}")),
            }
        }
    }
}

/// `args` as a RESP multibulk, the form every client sends.
fn encode_request<A: AsRef<[u8]>>(args: &[A]) -> Vec<u8> {
    let mut request = format!("*{}\r\n", args.len()).into_bytes();
    for arg in args {
        let arg = arg.as_ref();
        request.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
        request.extend_from_slice(arg);
        request.extend_from_slice(b"\r\n");
    }
    request
}

/// Reply bytes as one readable line: printable ASCII as is, `\r` `\n` and the rest escaped.
pub fn escape(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len());
    for &c in bytes {
        match c {
            b'\r' => s.push_str("\\r"),
            b'\n' => s.push_str("\\n"),
            b'\\' => s.push_str("\\\\"),
            c if c == b' ' || c.is_ascii_graphic() => s.push(c as char),
            c => {
                let _ = write!(s, "\\x{c:02x}");
            }
        }
    }
    s
}
