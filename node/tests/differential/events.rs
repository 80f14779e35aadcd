//! The keyspace events a command causes, as a subscriber of both servers sees them.
//!
//! Every round runs with `notify-keyspace-events` asking for every class (see
//! `generator::SESSION`), and a subscriber per server listens on `__key*`. After each command,
//! a marker is published on [`SYNC_CHANNEL`] from a third connection (the command's own may be
//! inside MULTI, where PUBLISH would only be queued): pub/sub keeps order per subscriber, and a
//! command's events are published before its reply, so everything the subscriber receives before
//! the marker is what that command caused. The two servers' frames must be identical.

use std::net::SocketAddr;

use crate::reply::Reply;
use crate::support::wire::Wire;

/// The channel the markers go to (not matched by the `__key*` pattern).
pub const SYNC_CHANNEL: &str = "differential-sync";

/// A server's subscriber and the connection that publishes the markers.
pub struct Events {
    subscriber: Wire,
    marker: Wire,
}

impl Events {
    /// Subscribes to every keyspace and keyevent channel of `addr`.
    pub async fn open(addr: SocketAddr, name: &'static str) -> Result<Events, String> {
        let mut subscriber = Wire::try_connect(addr, name).await?;
        subscriber.request(&["PSUBSCRIBE", "__key*"]).await?;
        subscriber.request(&["SUBSCRIBE", SYNC_CHANNEL]).await?;
        let marker = Wire::try_connect(addr, name).await?;
        Ok(Events { subscriber, marker })
    }

    /// The raw frames the subscriber received since the previous call.
    pub async fn drain(&mut self, index: usize) -> Reply {
        let marker = index.to_string();
        self.marker.request(&["PUBLISH", SYNC_CHANNEL, &marker]).await?;
        let expected = message(SYNC_CHANNEL, &marker);
        let mut received = Vec::new();
        loop {
            let frame = self.subscriber.read_frame().await?;
            if frame == expected {
                return Ok(received);
            }
            received.extend_from_slice(&frame);
        }
    }
}

/// A RESP2 `message` push as a subscriber reads it.
fn message(channel: &str, payload: &str) -> Vec<u8> {
    let mut out = b"*3\r\n$7\r\nmessage\r\n".to_vec();
    for part in [channel, payload] {
        out.extend_from_slice(format!("${}\r\n{part}\r\n", part.len()).as_bytes());
    }
    out
}
