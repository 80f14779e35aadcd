//! Clients blocked on keys (BLPOP, BLMOVE, BZPOPMIN …).
//!
//! A blocked client registers a [`Waiter`]. When a write makes a watched key ready, the
//! dispatcher serves waiters on that key in the order they blocked (Redis's FIFO rule), inside the
//! same critical section as the write, so a pushed element goes to exactly one waiter and the
//! served operation is propagated as its non-blocking form (BLPOP → LPOP).

use std::collections::{HashMap, VecDeque};

use bytes::Bytes;
use common::resp::Frame;
use tokio::sync::oneshot;

use crate::exec::Exec;

/// What a blocked command does once a key is ready.
pub trait Unblock: Send {
    /// Tries to serve the waiter from `key` in `exec`'s database. `None` means the key does not
    /// hold what the waiter needs, and it stays blocked.
    fn try_serve(&self, exec: &mut Exec<'_>, key: &Bytes) -> Option<Frame>;
}

/// One blocked client.
pub struct Waiter {
    /// The client's id.
    pub client: u64,
    /// The database its keys belong to.
    pub db: usize,
    /// The keys it waits on.
    pub keys: Vec<Bytes>,
    /// What to do when one is ready (taken out while it is being tried).
    pub op: Option<Box<dyn Unblock>>,
    /// Where the reply goes.
    pub reply: oneshot::Sender<Frame>,
    /// The reply on timeout (also used by CLIENT UNBLOCK … TIMEOUT).
    pub on_timeout: Frame,
}

/// The registry of blocked clients.
#[derive(Default)]
pub struct Blocking {
    waiters: HashMap<u64, Waiter>,
    by_key: HashMap<(usize, Bytes), VecDeque<u64>>,
    /// Keys that may now serve a waiter; drained by the dispatcher after each write.
    pub ready: VecDeque<(usize, Bytes)>,
    next: u64,
}

impl Blocking {
    /// Registers a waiter and returns its ticket.
    pub fn block(&mut self, waiter: Waiter) -> u64 {
        self.next += 1;
        let ticket = self.next;
        for key in &waiter.keys {
            self.by_key.entry((waiter.db, key.clone())).or_default().push_back(ticket);
        }
        self.waiters.insert(ticket, waiter);
        ticket
    }

    /// Removes a waiter (timeout, disconnect, CLIENT UNBLOCK). Returns it if it was still blocked.
    pub fn unblock(&mut self, ticket: u64) -> Option<Waiter> {
        let waiter = self.waiters.remove(&ticket)?;
        for key in &waiter.keys {
            let k = (waiter.db, key.clone());
            if let Some(q) = self.by_key.get_mut(&k) {
                q.retain(|t| *t != ticket);
                if q.is_empty() {
                    self.by_key.remove(&k);
                }
            }
        }
        Some(waiter)
    }

    /// Unblocks every waiter with `reply` (a master turned replica: its blocked clients could
    /// otherwise wait forever for writes that will now only come from its master).
    pub fn unblock_all(&mut self, reply: &Frame) {
        let tickets: Vec<u64> = self.waiters.keys().copied().collect();
        for ticket in tickets {
            if let Some(waiter) = self.unblock(ticket) {
                // The client may be gone already; like a reply lost in a closing socket.
                let _ = waiter.reply.send(reply.clone());
            }
        }
    }

    /// The ticket of the blocked waiter of `client`, if any.
    pub fn ticket_of(&self, client: u64) -> Option<u64> {
        self.waiters.iter().find(|(_, w)| w.client == client).map(|(t, _)| *t)
    }

    /// True if someone waits on `key` in `db`.
    pub fn has_waiters(&self, db: usize, key: &[u8]) -> bool {
        !self.by_key.is_empty() && self.by_key.contains_key(&(db, Bytes::copy_from_slice(key)))
    }

    /// Queues `key` for serving if someone waits on it.
    pub fn signal(&mut self, db: usize, key: &[u8]) {
        if self.has_waiters(db, key) {
            self.ready.push_back((db, Bytes::copy_from_slice(key)));
        }
    }

    /// The tickets waiting on `key`, oldest first.
    pub fn queue(&self, db: usize, key: &Bytes) -> Vec<u64> {
        self.by_key.get(&(db, key.clone())).map(|q| q.iter().copied().collect()).unwrap_or_default()
    }

    /// The number of blocked clients.
    pub fn len(&self) -> usize {
        self.waiters.len()
    }

    /// True when nobody is blocked.
    pub fn is_empty(&self) -> bool {
        self.waiters.is_empty()
    }

    /// Moves every waiter between two databases (SWAPDB).
    pub fn swap_db(&mut self, a: usize, b: usize) {
        let swap = |d: usize| {
            if d == a {
                b
            } else if d == b {
                a
            } else {
                d
            }
        };
        for w in self.waiters.values_mut() {
            w.db = swap(w.db);
        }
        self.by_key = self.by_key.drain().map(|((d, k), q)| ((swap(d), k), q)).collect();
    }

    /// Takes a waiter's operation out to try it; `restore_op` puts it back if it did not serve.
    /// Returns `None` (and drops the waiter) if its client has gone away.
    pub fn take_op(&mut self, ticket: u64) -> Option<Box<dyn Unblock>> {
        let waiter = self.waiters.get_mut(&ticket)?;
        if waiter.reply.is_closed() {
            self.unblock(ticket);
            return None;
        }
        waiter.op.take()
    }

    /// Puts back an operation taken with `take_op`.
    pub fn restore_op(&mut self, ticket: u64, op: Box<dyn Unblock>) {
        if let Some(waiter) = self.waiters.get_mut(&ticket) {
            waiter.op = Some(op);
        }
    }
}
