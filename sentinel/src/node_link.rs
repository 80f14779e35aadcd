//! A command connection from the supervisor to a data node (warden-node or redis-server).
//!
//! It speaks plain RESP2, authenticates with the master's `auth-pass`/`auth-user` when set,
//! names itself with `CLIENT SETNAME`, and bounds every call with a timeout so a hung node
//! cannot stall the monitor or the reconciler. Only commands both node kinds implement are
//! used: PING, INFO, ROLE, REPLICAOF, CONFIG, CLIENT, MULTI/EXEC, BGSAVE, AUTH.

use std::time::Duration;

use bytes::BytesMut;
use common::resp::{decode, Frame};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::machine::Addr;

/// Credentials for a master and its replicas.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Credentials {
    /// `auth-user`.
    pub user: Option<String>,
    /// `auth-pass`.
    pub pass: Option<String>,
}

impl Credentials {
    /// A master's credentials as committed (`auth-user`, `auth-pass`).
    pub fn of(spec: &crate::machine::MasterSpec) -> Credentials {
        Credentials {
            user: spec.auth_user.clone(),
            pass: spec.auth_pass.as_ref().map(|p| p.0.clone()),
        }
    }

    /// Each master's credentials: the committed ones, else those of the config file (for a
    /// group bootstrapped before credentials were committed).
    pub fn for_masters(
        state: &crate::machine::Machine,
        file_creds: &std::collections::HashMap<String, Credentials>,
    ) -> std::collections::HashMap<String, Credentials> {
        state
            .masters
            .values()
            .map(|m| {
                let committed = Credentials::of(&m.spec);
                let creds = if committed == Credentials::default() {
                    file_creds.get(&m.spec.name).cloned().unwrap_or_default()
                } else {
                    committed
                };
                (m.spec.name.clone(), creds)
            })
            .collect()
    }
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Credentials {{ user: {:?}, pass: <hidden> }}", self.user)
    }
}

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    /// Connecting, reading or writing failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The node did not answer in time.
    #[error("timed out")]
    Timeout,
    /// The node sent something that is not RESP.
    #[error("protocol error: {0}")]
    Protocol(String),
    /// The node closed the connection.
    #[error("connection closed")]
    Closed,
}

/// An open connection to a node.
pub struct NodeLink {
    stream: TcpStream,
    buf: BytesMut,
    timeout: Duration,
}

/// Encodes one command as a RESP multibulk.
pub fn encode_command(out: &mut Vec<u8>, args: &[&[u8]]) {
    out.extend_from_slice(format!("*{}\r\n", args.len()).as_bytes());
    for a in args {
        out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
}

impl NodeLink {
    /// Connects, authenticates and names the connection.
    pub async fn connect(
        addr: &Addr,
        creds: &Credentials,
        name: &str,
        timeout: Duration,
    ) -> Result<NodeLink, LinkError> {
        // An IPv6 literal (SENTINEL MONITOR accepts one) needs brackets; a hostname is resolved
        // again on every connect, as Sentinel does with resolve-hostnames.
        let target = if addr.host.contains(':') {
            format!("[{}]:{}", addr.host, addr.port)
        } else {
            format!("{}:{}", addr.host, addr.port)
        };
        let stream = tokio::time::timeout(timeout, TcpStream::connect(&target))
            .await
            .map_err(|_| LinkError::Timeout)??;
        stream.set_nodelay(true)?;
        let mut link = NodeLink { stream, buf: BytesMut::with_capacity(4096), timeout };
        if let Some(pass) = &creds.pass {
            let reply = match &creds.user {
                Some(user) => link.call(&[b"AUTH", user.as_bytes(), pass.as_bytes()]).await?,
                None => link.call(&[b"AUTH", pass.as_bytes()]).await?,
            };
            if let Frame::Error(e) = reply {
                tracing::warn!(node = %addr, error = %String::from_utf8_lossy(&e), "AUTH refused by node");
            }
        }
        link.call(&[b"CLIENT", b"SETNAME", name.as_bytes()]).await?;
        Ok(link)
    }

    /// Sends one command and reads its reply.
    pub async fn call(&mut self, args: &[&[u8]]) -> Result<Frame, LinkError> {
        let mut replies = self.pipeline(&[args.to_vec()]).await?;
        Ok(replies.pop().expect("one reply per command"))
    }

    /// Sends several commands in one write and reads all their replies.
    pub async fn pipeline(&mut self, cmds: &[Vec<&[u8]>]) -> Result<Vec<Frame>, LinkError> {
        let mut out = Vec::new();
        for c in cmds {
            encode_command(&mut out, c);
        }
        let timeout = self.timeout;
        tokio::time::timeout(timeout, async {
            self.stream.write_all(&out).await?;
            let mut replies = Vec::with_capacity(cmds.len());
            while replies.len() < cmds.len() {
                replies.push(self.read_frame().await?);
            }
            Ok(replies)
        })
        .await
        .map_err(|_| LinkError::Timeout)?
    }

    async fn read_frame(&mut self) -> Result<Frame, LinkError> {
        loop {
            match decode(&self.buf) {
                Ok(Some((frame, used))) => {
                    let _ = self.buf.split_to(used);
                    return Ok(frame);
                }
                Ok(None) => {}
                Err(e) => return Err(LinkError::Protocol(e.to_string())),
            }
            if self.buf.len() > 64 << 20 {
                return Err(LinkError::Protocol("reply larger than 64 MiB".into()));
            }
            if self.stream.read_buf(&mut self.buf).await? == 0 {
                return Err(LinkError::Closed);
            }
        }
    }

    /// Reconfigures the node as Sentinel does, in one transaction: REPLICAOF (`None` = NO
    /// ONE), CONFIG REWRITE, and dropping normal and pub/sub clients so they rediscover the
    /// master. CONFIG REWRITE fails on a node started without a config file; as in Sentinel
    /// that error is tolerated and the rest of the transaction still applies. Returns the
    /// REPLICAOF reply.
    pub async fn reconfigure(&mut self, master: Option<&Addr>) -> Result<Frame, LinkError> {
        let port;
        let replicaof: Vec<&[u8]> = match master {
            Some(m) => {
                port = m.port.to_string();
                vec![b"REPLICAOF", m.host.as_bytes(), port.as_bytes()]
            }
            None => vec![b"REPLICAOF", b"NO", b"ONE"],
        };
        let replies = self
            .pipeline(&[
                vec![b"MULTI"],
                replicaof,
                vec![b"CONFIG", b"REWRITE"],
                vec![b"CLIENT", b"KILL", b"TYPE", b"normal"],
                vec![b"CLIENT", b"KILL", b"TYPE", b"pubsub"],
                vec![b"EXEC"],
            ])
            .await?;
        match replies.last() {
            Some(Frame::Array(results)) if !results.is_empty() => {
                if let Some(Frame::Error(e)) = results.get(1) {
                    tracing::debug!(error = %String::from_utf8_lossy(e), "CONFIG REWRITE failed (node without a config file?)");
                }
                Ok(results[0].clone())
            }
            Some(other) => Ok(other.clone()),
            None => Err(LinkError::Closed),
        }
    }
}

/// The text of a bulk or verbatim reply.
pub fn text(frame: &Frame) -> Option<String> {
    match frame {
        Frame::Bulk(b) | Frame::Simple(b) | Frame::Verbatim(_, b) => {
            Some(String::from_utf8_lossy(b).into_owned())
        }
        _ => None,
    }
}
