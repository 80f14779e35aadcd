//! Running the master's stream on a replica.
//!
//! The master's commands run through the dispatcher as a client of kind `Master`: they are
//! exempt from `replica-read-only`, see keys whose TTL passed as still present (only the
//! master's DEL removes them), and get no replies. The applied bytes, exactly as received,
//! are appended to our own backlog in the same critical section as the command — which is
//! what moves our offset and feeds our own replicas (chains). Inside MULTI nothing moves
//! until EXEC, so our offset never points into the middle of a transaction.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use common::resp::{parse_request, Frame, RequestError, RequestLimits};

use crate::client::{ClientHandle, ClientKind, ClientSnapshot, ClientState};
use crate::kill_switch::{KillSwitch, Killed};
use crate::server::{unix_ms, Shared};

/// The master's pseudo-client on a replica.
pub struct Applier {
    client: ClientState,
    kill: KillSwitch,
    shared: Arc<Shared>,
}

impl Applier {
    /// Registers the master's client (CLIENT LIST shows it with flag M; CLIENT KILL TYPE
    /// master drops the link).
    pub fn new(shared: &Arc<Shared>) -> Applier {
        let addr: SocketAddr = ([127, 0, 0, 1], 0).into();
        let (push, _) = crate::push::queue();
        let kill = KillSwitch::new();
        let snapshot = Arc::new(parking_lot::Mutex::new(ClientSnapshot {
            multi: -1,
            resp: 2,
            kind: ClientKind::Master,
            user: (bytes::Bytes::from_static(crate::acl::SUPERUSER), 0),
            ..Default::default()
        }));
        let id = {
            let mut clients = shared.clients.lock();
            let id = clients.next_id();
            clients.add(ClientHandle {
                id,
                addr,
                laddr: addr,
                created_ms: unix_ms(),
                fd: -1,
                snapshot: snapshot.clone(),
                kill: kill.clone(),
                push: push.clone(),
            });
            id
        };
        let mut client = ClientState::pseudo(id, ClientKind::Master);
        client.snapshot = snapshot;
        Applier { client, kill, shared: shared.clone() }
    }

    /// Fires when CLIENT KILL targets the master's client.
    pub fn kill_signal(&self) -> Killed {
        self.kill.killed()
    }

    /// Selects the stream's database (after a sync, or from the cached master).
    pub fn select(&mut self, db: usize) {
        self.client.db = db;
        self.shared.master_db.store(db, Ordering::Relaxed);
    }

    /// Applies every complete command in `buf`. `REPLCONF GETACK` appends our ACK to
    /// `replies` (with the offset before the GETACK itself, as Redis reports it).
    pub fn apply(
        &mut self,
        shared: &Shared,
        buf: &mut BytesMut,
        replies: &mut Vec<u8>,
    ) -> Result<(), RequestError> {
        let limits = RequestLimits { max_bulk_len: usize::MAX / 2, unauthenticated: false };
        // One lock hold and one clock reading for everything that arrived together.
        let now = unix_ms();
        let mut ks = shared.keyspace.lock();
        loop {
            let before = buf.len();
            let Some(argv) = parse_request(buf, limits)? else { break };
            let consumed = before - buf.len();
            if argv.is_empty() {
                continue;
            }
            // The wire form is canonical RESP, so re-encoding reproduces the received bytes.
            let start = self.client.master_raw.len();
            super::encode_command(&mut self.client.master_raw, &argv);
            if self.client.master_raw.len() - start != consumed {
                return Err(RequestError("non-canonical command in the replication stream".into()));
            }
            if is_getack(&argv) {
                replies.extend_from_slice(&shared.ack_command());
            } else {
                let started = quanta::Instant::now();
                let outcome =
                    crate::dispatch::call_locked(shared, &mut ks, &mut self.client, &argv, now);
                crate::server::count_command(shared);
                if let Some(Frame::Error(text)) = &outcome.reply {
                    use crate::unexpected_error::{report, Source};
                    report(shared, Source::Master, text, outcome.resolved);
                }
                if let Some(resolved) = outcome.resolved {
                    let failed = outcome.reply.as_ref().is_some_and(Frame::is_error);
                    let usec = started.elapsed().as_micros() as u64;
                    self.client.tally.command(resolved, outcome.counted, usec, failed);
                }
            }
            // Applied bytes join our own stream, still under the keyspace lock; a command
            // that failed before running counts in the offset too. Inside MULTI they wait
            // for EXEC.
            if self.client.multi.is_none() {
                shared.forward_master_bytes(&mut self.client.master_raw);
            }
        }
        drop(ks);
        self.client.tally.flush(&shared.command_stats);
        crate::aof::write_applied(shared);
        shared.master_db.store(self.client.db, Ordering::Relaxed);
        Ok(())
    }
}

impl Drop for Applier {
    fn drop(&mut self) {
        self.shared.clients.lock().remove(self.client.id);
    }
}

fn is_getack(argv: &[Bytes]) -> bool {
    argv.len() == 3
        && argv[0].eq_ignore_ascii_case(b"replconf")
        && argv[1].eq_ignore_ascii_case(b"getack")
}
