//! The HTTP/JSON API on `http-port`: a deliberately small HTTP/1.1 server for operators and
//! scripts (curl, Prometheus, load-balancer health checks).
//!
//! One request per connection (`Connection: close`), no keep-alive, no chunked bodies, no TLS:
//! the API is meant for the same trusted network as the Sentinel port. Inputs are bounded —
//! a request head of at most [`MAX_HEAD`] bytes, a body of at most [`MAX_BODY`] (only the
//! switchover reads it; elsewhere it is ignored), [`READ_TIMEOUT`] to send it all, at most
//! [`MAX_CONNECTIONS`] at once — and anything malformed gets a 4xx with a JSON error, never a
//! panic.
//!
//! Routes (see [`route`]): `GET /v1/masters`, `GET /v1/masters/{name}`,
//! `POST /v1/masters/{name}/failover`, `POST /v1/masters/{name}/switchover`,
//! `GET /v1/history/{name}`, `GET /v1/health`,
//! `GET /metrics`. What each one returns
//! is in [`super::rest`].

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::{rest, Context};

/// Largest request head (request line and headers).
pub const MAX_HEAD: usize = 8 * 1024;
/// Largest request body accepted (and discarded).
pub const MAX_BODY: usize = 4 * 1024;
/// Time a client has to send its whole request, and to take the response.
pub const READ_TIMEOUT: Duration = Duration::from_secs(5);
/// Connections served at once; more are closed at once (a flood cannot pile up tasks).
pub const MAX_CONNECTIONS: usize = 64;

/// A parsed request head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    /// The method, as sent (methods are case-sensitive).
    pub method: String,
    /// The path without the query string.
    pub path: String,
    /// `Content-Length`, 0 if absent.
    pub content_length: usize,
}

/// A response: status, content type, body, and extra headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// Status code.
    pub status: u16,
    /// `Content-Type`.
    pub content_type: &'static str,
    /// The body.
    pub body: String,
    /// More headers (`Allow` on a 405).
    pub headers: Vec<(&'static str, String)>,
}

impl Response {
    /// A JSON response.
    pub fn json(status: u16, value: &serde_json::Value) -> Response {
        let mut body = serde_json::to_string_pretty(value).expect("JSON values always serialise");
        body.push('\n');
        Response { status, content_type: "application/json", body, headers: Vec::new() }
    }

    /// A JSON error: `{"error": message}`.
    pub fn error(status: u16, message: impl Into<String>) -> Response {
        Response::json(status, &serde_json::json!({ "error": message.into() }))
    }

    /// The bytes on the wire.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = format!(
            "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n",
            self.status,
            reason(self.status),
            self.content_type,
            self.body.len()
        );
        for (k, v) in &self.headers {
            out.push_str(&format!("{k}: {v}\r\n"));
        }
        out.push_str("\r\n");
        let mut bytes = out.into_bytes();
        bytes.extend_from_slice(self.body.as_bytes());
        bytes
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        409 => "Conflict",
        413 => "Content Too Large",
        431 => "Request Header Fields Too Large",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        _ => "Unknown",
    }
}

/// Parses the head at the start of `buf`. `Ok(None)`: incomplete, read more. On success also
/// returns the head's length in bytes (the body starts there).
pub fn parse_head(buf: &[u8]) -> Result<Option<(Head, usize)>, Response> {
    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
        if buf.len() > MAX_HEAD {
            return Err(Response::error(431, "request head too large"));
        }
        return Ok(None);
    };
    if end > MAX_HEAD {
        return Err(Response::error(431, "request head too large"));
    }
    let text = std::str::from_utf8(&buf[..end])
        .map_err(|_| Response::error(400, "request head is not valid UTF-8"))?;
    let mut lines = text.split("\r\n");
    let request_line = lines.next().unwrap_or_default();
    let mut parts = request_line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(Response::error(400, "malformed request line"));
    };
    if !version.starts_with("HTTP/1.") {
        return Err(Response::error(400, format!("unsupported protocol version '{version}'")));
    }
    if method.is_empty() || !method.bytes().all(|b| b.is_ascii_uppercase()) {
        return Err(Response::error(400, "malformed method"));
    }
    if !target.starts_with('/') {
        return Err(Response::error(400, "the request target must be an absolute path"));
    }
    let path = target.split(['?', '#']).next().unwrap_or_default().to_string();
    let mut content_length = 0usize;
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            return Err(Response::error(400, "malformed header line"));
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            content_length =
                value.parse().map_err(|_| Response::error(400, "invalid Content-Length"))?;
            if content_length > MAX_BODY {
                return Err(Response::error(
                    413,
                    format!("bodies are limited to {MAX_BODY} bytes"),
                ));
            }
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            return Err(Response::error(
                501,
                "Transfer-Encoding is not supported; send Content-Length",
            ));
        }
    }
    Ok(Some((Head { method: method.to_string(), path, content_length }, end + 4)))
}

/// What a request asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// `GET /v1/masters`.
    Masters,
    /// `GET /v1/masters/{name}`.
    Master(String),
    /// `POST /v1/masters/{name}/failover`.
    Failover(String),
    /// `POST /v1/masters/{name}/switchover`.
    Switchover(String),
    /// `GET /v1/history/{name}`.
    History(String),
    /// `GET /v1/members`.
    Members,
    /// `GET /v1/health`.
    Health,
    /// `GET /metrics`.
    Metrics,
}

/// Maps a method and path to a [`Route`]; an unknown path is a 404, a known path with the
/// wrong method a 405 that says which one to use.
pub fn route(method: &str, path: &str) -> Result<Route, Response> {
    let segments: Vec<&str> = path.trim_end_matches('/').split('/').skip(1).collect();
    let (want, found) = match segments.as_slice() {
        ["v1", "masters"] => ("GET", Route::Masters),
        ["v1", "masters", name] if !name.is_empty() => ("GET", Route::Master(name.to_string())),
        ["v1", "masters", name, "failover"] if !name.is_empty() => {
            ("POST", Route::Failover(name.to_string()))
        }
        ["v1", "masters", name, "switchover"] if !name.is_empty() => {
            ("POST", Route::Switchover(name.to_string()))
        }
        ["v1", "history", name] if !name.is_empty() => ("GET", Route::History(name.to_string())),
        ["v1", "health"] => ("GET", Route::Health),
        ["v1", "members"] => ("GET", Route::Members),
        ["metrics"] => ("GET", Route::Metrics),
        _ => return Err(Response::error(404, format!("no such endpoint: {path}"))),
    };
    if method == want {
        Ok(found)
    } else {
        let mut r = Response::error(405, format!("{path} accepts {want} only"));
        r.headers.push(("Allow", want.to_string()));
        Err(r)
    }
}

/// Accepts HTTP clients until shutdown.
pub async fn serve(listener: TcpListener, ctx: Arc<Context>, mut stop: common::shutdown::Shutdown) {
    let permits = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let Ok(permit) = permits.clone().try_acquire_owned() else {
                        tracing::debug!(%peer, "too many HTTP connections; closing this one");
                        continue;
                    };
                    let ctx = ctx.clone();
                    tokio::spawn(async move {
                        handle(stream, ctx).await;
                        drop(permit);
                    });
                }
                Err(e) => {
                    tracing::warn!(error = %e, "HTTP accept failed");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            },
            _ = stop.wait() => return,
        }
    }
}

async fn handle(mut stream: TcpStream, ctx: Arc<Context>) {
    let response = match tokio::time::timeout(READ_TIMEOUT, read_request(&mut stream)).await {
        Err(_) => Response::error(408, "the request was not received in time"),
        Ok(Err(r)) => r,
        Ok(Ok(None)) => return,
        Ok(Ok(Some((head, body)))) => match route(&head.method, &head.path) {
            Err(r) => r,
            Ok(route) => rest::answer(&ctx, route, &body).await,
        },
    };
    let bytes = response.encode();
    let _ = tokio::time::timeout(READ_TIMEOUT, async {
        let _ = stream.write_all(&bytes).await;
        let _ = stream.shutdown().await;
    })
    .await;
}

/// Reads one request: its head and its body (`Content-Length` bytes, at most `MAX_BODY`).
/// `Ok(None)`: the client closed without sending one.
async fn read_request(stream: &mut TcpStream) -> Result<Option<(Head, Vec<u8>)>, Response> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 2048];
    loop {
        if let Some((head, len)) = parse_head(&buf)? {
            let mut body = buf.split_off(len);
            while body.len() < head.content_length {
                match stream.read(&mut chunk).await {
                    Ok(0) | Err(_) => {
                        return Err(Response::error(400, "body shorter than Content-Length"))
                    }
                    Ok(n) => body.extend_from_slice(&chunk[..n]),
                }
            }
            body.truncate(head.content_length);
            return Ok(Some((head, body)));
        }
        match stream.read(&mut chunk).await {
            Ok(0) if buf.is_empty() => return Ok(None),
            Ok(0) | Err(_) => return Err(Response::error(400, "incomplete request head")),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(text: &str) -> Result<Option<(Head, usize)>, Response> {
        parse_head(text.as_bytes())
    }

    #[test]
    fn parses_a_request_head_and_waits_for_the_rest() {
        let (h, len) = head("GET /v1/masters?x=1 HTTP/1.1\r\nHost: a\r\n\r\n").unwrap().unwrap();
        assert_eq!(
            (h.method.as_str(), h.path.as_str(), h.content_length),
            ("GET", "/v1/masters", 0)
        );
        assert_eq!(len, 41);
        let (h, _) = head("POST /v1/masters/m/failover HTTP/1.0\r\ncontent-length: 2\r\n\r\n{}")
            .unwrap()
            .unwrap();
        assert_eq!(h.content_length, 2);
        assert_eq!(head("GET /v1/masters HTTP/1.1\r\nHost: a\r\n").unwrap(), None);
    }

    #[test]
    fn bad_heads_are_4xx_not_panics() {
        let status = |t: &str| head(t).unwrap_err().status;
        assert_eq!(status("GET\r\n\r\n"), 400);
        assert_eq!(status("GET /x HTTP/2\r\n\r\n"), 400);
        assert_eq!(status("GET x HTTP/1.1\r\n\r\n"), 400);
        assert_eq!(status("get /x HTTP/1.1\r\n\r\n"), 400);
        assert_eq!(status("GET /x HTTP/1.1 extra\r\n\r\n"), 400);
        assert_eq!(status("GET /x HTTP/1.1\r\nno-colon\r\n\r\n"), 400);
        assert_eq!(status("GET /x HTTP/1.1\r\nContent-Length: -1\r\n\r\n"), 400);
        assert_eq!(status("POST /x HTTP/1.1\r\nContent-Length: 99999\r\n\r\n"), 413);
        assert_eq!(status("POST /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"), 501);
        assert_eq!(parse_head(b"GET /\xff HTTP/1.1\r\n\r\n").unwrap_err().status, 400);
        let huge = format!("GET /x HTTP/1.1\r\nX: {}\r\n", "a".repeat(MAX_HEAD));
        assert_eq!(status(&huge), 431);
    }

    #[test]
    fn routes_and_wrong_methods() {
        assert_eq!(route("GET", "/v1/masters"), Ok(Route::Masters));
        assert_eq!(route("GET", "/v1/masters/"), Ok(Route::Masters));
        assert_eq!(route("GET", "/v1/masters/mymaster"), Ok(Route::Master("mymaster".into())));
        assert_eq!(route("GET", "/v1/health"), Ok(Route::Health));
        assert_eq!(route("GET", "/v1/members"), Ok(Route::Members));
        assert_eq!(route("POST", "/v1/members").unwrap_err().status, 405);
        assert_eq!(route("HEAD", "/v1/health").unwrap_err().status, 405);
        assert_eq!(
            route("POST", "/v1/masters/mymaster/failover"),
            Ok(Route::Failover("mymaster".into()))
        );
        assert_eq!(route("GET", "/metrics"), Ok(Route::Metrics));
        assert_eq!(
            route("POST", "/v1/masters/mymaster/switchover"),
            Ok(Route::Switchover("mymaster".into()))
        );
        assert_eq!(route("GET", "/v1/masters/mymaster/switchover").unwrap_err().status, 405);
        assert_eq!(route("GET", "/v1/history/mymaster"), Ok(Route::History("mymaster".into())));
        assert_eq!(route("POST", "/v1/history/mymaster").unwrap_err().status, 405);
        let wrong = route("GET", "/v1/masters/mymaster/failover").unwrap_err();
        assert_eq!(wrong.status, 405);
        assert_eq!(wrong.headers, vec![("Allow", "POST".to_string())]);
        assert_eq!(route("DELETE", "/v1/masters").unwrap_err().status, 405);
        for path in [
            "/",
            "/v1",
            "/v2/masters",
            "/v1/masters//failover",
            "/v1/masters/m/x",
            "/v1/masters/m/failover/x",
        ] {
            assert_eq!(route("GET", path).unwrap_err().status, 404, "{path}");
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic_the_parser_or_the_router() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(6);
        let seeds: [&[u8]; 3] = [
            b"GET /v1/masters/mymaster HTTP/1.1\r\nContent-Length: 0\r\n\r\n",
            b"POST /v1/masters/m/failover HTTP/1.0\r\nHost: x\r\n\r\n",
            b"GET /metrics HTTP/1.1\r\n\r\n",
        ];
        for i in 0..20_000 {
            let mut bytes = seeds[i % seeds.len()].to_vec();
            for _ in 0..rng.gen_range(1..6) {
                let at = rng.gen_range(0..bytes.len());
                match rng.gen_range(0..3) {
                    0 => bytes[at] = rng.gen(),
                    1 => {
                        let alphabet = b"/: \r\n%\xff0";
                        bytes.insert(at, alphabet[rng.gen_range(0..alphabet.len())]);
                    }
                    _ => {
                        bytes.remove(at);
                    }
                }
                if bytes.is_empty() {
                    break;
                }
            }
            if let Ok(Some((head, len))) = parse_head(&bytes) {
                assert!(len <= bytes.len());
                let _ = route(&head.method, &head.path);
            }
        }
    }

    #[test]
    fn responses_carry_length_and_close() {
        let r = Response::error(404, "no such master");
        let wire = String::from_utf8(r.encode()).unwrap();
        assert!(wire.starts_with("HTTP/1.1 404 Not Found\r\n"), "{wire}");
        assert!(wire.contains("Connection: close\r\n"));
        assert!(wire.contains(&format!("Content-Length: {}\r\n", r.body.len())));
        let json: serde_json::Value =
            serde_json::from_str(wire.split("\r\n\r\n").nth(1).unwrap()).unwrap();
        assert_eq!(json["error"], "no such master");
    }
}
