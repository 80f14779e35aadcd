//! `wardenctl events`: follows a supervisor's event stream (`PSUBSCRIBE *`) until interrupted,
//! one line per event — `time  +event  payload` — or, with `--json`, one JSON object per line.

use std::io::Write;

use common::resp::Frame;
use serde_json::json;

use super::{connect, text};

/// Streams events to stdout; returns only on an error (a lost connection included).
pub fn follow(host: &str, port: u16, as_json: bool) -> Result<(), String> {
    let mut c = connect(host, port)?;
    // Events come when they come: no read timeout while following.
    c.stream.set_read_timeout(None).map_err(|e| e.to_string())?;
    // The subscription is confirmed before anything is said: from then on no event is missed.
    c.call(&["PSUBSCRIBE", "*"])?;
    eprintln!("following the events of {host}:{port} (Ctrl-C to stop)");
    let stdout = std::io::stdout();
    loop {
        let frame = c.read_frame()?;
        let (Frame::Array(items) | Frame::Push(items)) = frame else { continue };
        let words: Vec<String> = items.iter().map(text).collect();
        let [kind, _, channel, message] = words.as_slice() else { continue };
        if kind != "pmessage" {
            continue;
        }
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        let line = if as_json {
            json!({ "time_ms": now, "event": channel, "message": message }).to_string()
        } else {
            format!("{}  {channel:<32} {message}", clock(now))
        };
        let mut out = stdout.lock();
        if writeln!(out, "{line}").and_then(|()| out.flush()).is_err() {
            return Ok(()); // stdout closed (e.g. piped into head)
        }
    }
}

/// `HH:MM:SS.mmm` (UTC) of a Unix time in ms.
fn clock(ms: u64) -> String {
    let day_ms = ms % 86_400_000;
    format!(
        "{:02}:{:02}:{:02}.{:03}",
        day_ms / 3_600_000,
        day_ms / 60_000 % 60,
        day_ms / 1000 % 60,
        day_ms % 1000
    )
}
