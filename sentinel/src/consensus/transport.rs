//! TCP transport between supervisors.
//!
//! Each supervisor dials every peer and sends its Raft messages only on the connections it
//! dialled; it only *receives* on connections it accepted. Every connection starts with the
//! mutual challenge of [`super::auth`]; an accepted connection then carries frames
//! `len:u32le protobuf(eraftpb::Message)`, and a message whose `from` is not the authenticated
//! peer is dropped. Delivery is best effort: Raft retransmits, so a message that cannot be
//! sent is dropped and the peer is reported unreachable to the consensus task.
//!
//! The peer set changes at run time: [`Router::set_peers`] starts a link to a supervisor added
//! to the group and ends the link to one removed, and the acceptor admits only the ids in the
//! shared [`Members`] set, checked again for every message, so a removed supervisor's
//! connection is cut at its next message and it cannot disturb the group.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use protobuf::Message as PbMessage;
use raft::eraftpb::Message;
use rand::RngCore;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

use super::auth::{self, Secret};

/// Raft messages larger than this are refused (ours are far smaller).
const MAX_FRAME: usize = 64 << 20;
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(2);
const REFUSAL_LOG_EVERY: Duration = Duration::from_secs(10);

/// Per peer: its address and the queue of its dialling task.
type Links = HashMap<u64, (SocketAddr, mpsc::Sender<Message>)>;

/// Sends messages to peers through one dialling task each. Cloning gives another handle to
/// the same links (the consensus task sends, the membership sync changes the peer set).
#[derive(Clone)]
pub struct Router {
    me: u64,
    secret: Secret,
    /// Locked briefly, never across an `.await`.
    peers: std::sync::Arc<parking_lot::Mutex<Links>>,
    unreachable: mpsc::UnboundedSender<u64>,
    connected: Connected,
}

/// Peers whose outgoing link is currently up (for `SENTINEL CKQUORUM`).
pub type Connected = std::sync::Arc<parking_lot::Mutex<std::collections::HashSet<u64>>>;

/// The raft ids whose connections the acceptor admits (the group's current members).
pub type Members = std::sync::Arc<parking_lot::Mutex<std::collections::HashSet<u64>>>;

impl Router {
    /// Starts a dialling task for every peer other than `me`.
    pub fn start(
        me: u64,
        peers: &[(u64, SocketAddr)],
        secret: Secret,
        unreachable: mpsc::UnboundedSender<u64>,
    ) -> Router {
        let router = Router {
            me,
            secret,
            peers: Default::default(),
            unreachable,
            connected: Connected::default(),
        };
        router.set_peers(peers);
        router
    }

    /// Makes the links match `peers` (`me` excluded): starts the missing ones, ends those to
    /// supervisors no longer listed, and redials one whose address changed.
    pub fn set_peers(&self, peers: &[(u64, SocketAddr)]) {
        let mut map = self.peers.lock();
        let wanted: HashMap<u64, SocketAddr> =
            peers.iter().filter(|(id, _)| *id != self.me).copied().collect();
        map.retain(|id, (addr, _)| {
            let keep = wanted.get(id) == Some(addr);
            if !keep {
                // Dropping the queue's sender ends the dialling task.
                tracing::info!(peer = id, %addr, "raft link closed: no longer a peer at this address");
                self.connected.lock().remove(id);
            }
            keep
        });
        for (id, addr) in wanted {
            if map.contains_key(&id) {
                continue;
            }
            let (tx, rx) = mpsc::channel(1024);
            let link = Link {
                me: self.me,
                peer: id,
                addr,
                secret: self.secret.clone(),
                connected: self.connected.clone(),
            };
            tokio::spawn(dial_loop(link, rx, self.unreachable.clone()));
            map.insert(id, (addr, tx));
        }
    }

    /// The set of peers currently connected.
    pub fn connected(&self) -> Connected {
        self.connected.clone()
    }

    /// Queues a message for its destination; drops it if the queue is full.
    pub fn send(&self, msg: Message) {
        let to = msg.to;
        let sent = match self.peers.lock().get(&to) {
            Some((_, tx)) => tx.try_send(msg).is_ok(),
            None => {
                tracing::debug!(peer = to, "no route to raft peer");
                return;
            }
        };
        if !sent {
            let _ = self.unreachable.send(to);
        }
    }
}

struct Link {
    me: u64,
    peer: u64,
    addr: SocketAddr,
    secret: Secret,
    connected: Connected,
}

async fn dial_loop(
    link: Link,
    mut rx: mpsc::Receiver<Message>,
    unreachable: mpsc::UnboundedSender<u64>,
) {
    let Link { me, peer, addr, secret, connected } = link;
    // Each distinct failure is logged once (a peer that is down, then one that refuses our
    // secret, are two things an operator needs to see), not every 100 ms retry.
    let mut last_error: Option<String> = None;
    loop {
        let mut stream = match connect(me, peer, addr, &secret).await {
            Ok(s) => {
                tracing::info!(peer, %addr, "connected to raft peer");
                connected.lock().insert(peer);
                last_error = None;
                s
            }
            Err(e) => {
                let text = e.to_string();
                if last_error.as_deref() != Some(text.as_str()) {
                    tracing::warn!(peer, %addr, error = %text, "can't reach raft peer");
                    last_error = Some(text);
                }
                // Drop what queued up meanwhile: Raft resends what still matters.
                while rx.try_recv().is_ok() {}
                if rx.is_closed() {
                    return; // no longer a peer
                }
                let _ = unreachable.send(peer);
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let mut probe = [0u8; 1];
        loop {
            // The peer never writes on a connection we dialled, so a readable socket means it
            // closed (or broke) the connection: reconnect instead of writing into the void.
            let msg = tokio::select! {
                msg = rx.recv() => msg,
                _ = stream.read(&mut probe) => {
                    tracing::info!(peer, "raft peer closed the connection");
                    connected.lock().remove(&peer);
                    let _ = unreachable.send(peer);
                    // A peer that refuses us right after the handshake (we are not, or no
                    // longer, a member) must not be redialled in a tight loop.
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    break;
                }
            };
            let Some(msg) = msg else {
                connected.lock().remove(&peer);
                return;
            };
            let mut buf = Vec::with_capacity(256);
            let body = msg.write_to_bytes().expect("encoding an in-memory message cannot fail");
            buf.extend_from_slice(&(body.len() as u32).to_le_bytes());
            buf.extend_from_slice(&body);
            // Batch whatever else is already queued into the same write.
            while let Ok(more) = rx.try_recv() {
                let body =
                    more.write_to_bytes().expect("encoding an in-memory message cannot fail");
                buf.extend_from_slice(&(body.len() as u32).to_le_bytes());
                buf.extend_from_slice(&body);
            }
            if let Err(e) = stream.write_all(&buf).await {
                tracing::warn!(peer, error = %e, "lost connection to raft peer");
                connected.lock().remove(&peer);
                let _ = unreachable.send(peer);
                break;
            }
        }
    }
}

async fn connect(
    me: u64,
    peer: u64,
    addr: SocketAddr,
    secret: &Secret,
) -> std::io::Result<TcpStream> {
    let bad =
        |why: &str| std::io::Error::new(std::io::ErrorKind::PermissionDenied, why.to_string());
    let fut = async {
        let mut stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        let mut nonce_c = [0u8; 32];
        rand::thread_rng().fill_bytes(&mut nonce_c);
        stream.write_all(&auth::hello(me, &nonce_c)).await?;
        let mut reply = [0u8; 64];
        stream.read_exact(&mut reply).await?;
        let nonce_a: [u8; 32] = reply[..32].try_into().expect("32 bytes");
        if !secret.verify_acceptor(&nonce_c, &nonce_a, me, &reply[32..]) {
            return Err(bad(&format!("peer {peer} failed authentication (check supervisor-auth)")));
        }
        stream.write_all(&secret.connector_proof(&nonce_a, &nonce_c, me)).await?;
        Ok(stream)
    };
    tokio::time::timeout(HANDSHAKE_TIMEOUT, fut)
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "handshake timed out"))?
}

/// Accepts peers' connections and forwards their authenticated messages to `inbound`, for
/// the ids in `members` only.
pub async fn serve(
    listener: TcpListener,
    members: Members,
    secret: Secret,
    inbound: mpsc::Sender<Message>,
) {
    // Refused handshakes are logged at most once per REFUSAL_LOG_EVERY (a misconfigured peer
    // retries ten times a second), with how many were refused meanwhile.
    let refusals = std::sync::Arc::new(parking_lot::Mutex::new((None::<std::time::Instant>, 0u64)));
    loop {
        let (stream, addr) = match listener.accept().await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "raft accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let (secret, inbound, members) = (secret.clone(), inbound.clone(), members.clone());
        let refusals = refusals.clone();
        tokio::spawn(async move {
            let why =
                match tokio::time::timeout(HANDSHAKE_TIMEOUT, accept(stream, &secret, &members))
                    .await
                {
                    Ok(Ok((peer, stream))) => {
                        if let Err(e) = receive(peer, stream, inbound, &members).await {
                            tracing::debug!(peer, error = %e, "raft peer connection closed");
                        }
                        return;
                    }
                    Ok(Err(e)) => e.to_string(),
                    Err(_) => "handshake timed out".to_string(),
                };
            let now = std::time::Instant::now();
            let mut r = refusals.lock();
            r.1 += 1;
            if r.0.is_none_or(|at| now.saturating_duration_since(at) >= REFUSAL_LOG_EVERY) {
                tracing::warn!(%addr, error = %why, refused = r.1, "refused a raft connection");
                *r = (Some(now), 0);
            }
        });
    }
}

async fn accept(
    mut stream: TcpStream,
    secret: &Secret,
    members: &Members,
) -> std::io::Result<(u64, TcpStream)> {
    let bad = |why: String| std::io::Error::new(std::io::ErrorKind::PermissionDenied, why);
    stream.set_nodelay(true)?;
    let mut hello = [0u8; auth::HELLO_LEN];
    stream.read_exact(&mut hello).await?;
    let (peer, nonce_c) = auth::parse_hello(&hello).map_err(|e| bad(e.to_string()))?;
    let mut nonce_a = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut nonce_a);
    let mut reply = nonce_a.to_vec();
    reply.extend_from_slice(&secret.acceptor_proof(&nonce_c, &nonce_a, peer));
    stream.write_all(&reply).await?;
    let mut proof = [0u8; 32];
    stream.read_exact(&mut proof).await?;
    if !secret.verify_connector(&nonce_a, &nonce_c, peer, &proof) {
        return Err(bad(format!("peer claiming id {peer} does not know supervisor-auth")));
    }
    if !members.lock().contains(&peer) {
        return Err(bad(format!("peer id {peer} is not a member of this group")));
    }
    Ok((peer, stream))
}

async fn receive(
    peer: u64,
    mut stream: TcpStream,
    inbound: mpsc::Sender<Message>,
    members: &Members,
) -> std::io::Result<()> {
    loop {
        let len = stream.read_u32_le().await? as usize;
        if len > MAX_FRAME {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("frame of {len} bytes"),
            ));
        }
        let mut body = vec![0u8; len];
        stream.read_exact(&mut body).await?;
        let msg = Message::parse_from_bytes(&body)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string()))?;
        if msg.from != peer {
            tracing::warn!(peer, claimed = msg.from, "dropped a raft message with a forged sender");
            continue;
        }
        if !members.lock().contains(&peer) {
            tracing::info!(
                peer,
                "closing the raft connection of a supervisor no longer in the group"
            );
            return Ok(());
        }
        if inbound.send(msg).await.is_err() {
            return Ok(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(from: u64, to: u64, term: u64) -> Message {
        Message { from, to, term, ..Default::default() }
    }

    #[tokio::test]
    async fn only_authenticated_members_get_messages_through() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, mut rx) = mpsc::channel(16);
        let members = Members::default();
        members.lock().extend([1, 2]);
        tokio::spawn(serve(listener, members.clone(), Secret::new("right"), tx));

        // A wrong secret fails the acceptor's proof at once.
        let err = connect(2, 1, addr, &Secret::new("wrong")).await.unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::PermissionDenied);
        // The right secret but an id outside the group is refused by the acceptor.
        let mut outsider = connect(7, 1, addr, &Secret::new("right")).await.unwrap();
        let body = msg(7, 1, 1).write_to_bytes().unwrap();
        let mut frame = (body.len() as u32).to_le_bytes().to_vec();
        frame.extend_from_slice(&body);
        let _ = outsider.write_all(&frame).await;

        // A member: a message with a forged sender is dropped, a true one delivered.
        let mut member = connect(2, 1, addr, &Secret::new("right")).await.unwrap();
        for m in [msg(1, 1, 5), msg(2, 1, 6)] {
            let body = m.write_to_bytes().unwrap();
            member.write_all(&(body.len() as u32).to_le_bytes()).await.unwrap();
            member.write_all(&body).await.unwrap();
        }
        let got = tokio::time::timeout(Duration::from_secs(5), rx.recv()).await.unwrap().unwrap();
        assert_eq!((got.from, got.term), (2, 6));
        assert!(rx.try_recv().is_err(), "nothing from the outsider or the forgery");

        // Garbage after authentication closes that connection without hurting the server.
        member.write_all(&[0xff, 0xff, 0xff, 0x7f, 1, 2, 3]).await.unwrap();
        let mut again = connect(2, 1, addr, &Secret::new("right")).await.unwrap();
        let body = msg(2, 1, 9).write_to_bytes().unwrap();
        again.write_all(&(body.len() as u32).to_le_bytes()).await.unwrap();
        again.write_all(&body).await.unwrap();
        let got = tokio::time::timeout(Duration::from_secs(5), rx.recv()).await.unwrap().unwrap();
        assert_eq!(got.term, 9);

        // Once removed from the group, the member's messages stop at once on the connection
        // that is already open.
        members.lock().remove(&2);
        let body = msg(2, 1, 10).write_to_bytes().unwrap();
        again.write_all(&(body.len() as u32).to_le_bytes()).await.unwrap();
        again.write_all(&body).await.unwrap();
        let quiet = tokio::time::timeout(Duration::from_millis(300), rx.recv()).await;
        assert!(quiet.is_err(), "nothing from a removed member: {quiet:?}");
    }
}
