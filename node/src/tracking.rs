//! Server-assisted client-side caching (CLIENT TRACKING), as Redis 7.0 does it.
//!
//! A tracking client is told when a key it may have cached changes, so it can drop its copy:
//!
//! - **Default mode**: every key a read-only command of the client names is remembered (by
//!   name alone, across databases, as Redis's table is); the next change of that key sends
//!   one `invalidate` message to each client that read it, and forgets them, until they read
//!   it again. OPTIN / OPTOUT narrow what is remembered to the commands after CLIENT CACHING
//!   YES, or to all but those after CLIENT CACHING NO.
//! - **BCAST**: nothing is remembered; every change of a key under one of the client's
//!   prefixes (none: every key) is announced.
//! - A flush (FLUSHALL, FLUSHDB, a full sync) sends every tracking client a null invalidation.
//!
//! Messages go to the client itself as a RESP3 push, or to the client named by REDIRECT: as a
//! push if that one speaks RESP3, or as a `message` on `__redis__:invalidate` if it is a RESP2
//! subscriber. A RESP2 client without a redirect is sent nothing. With NOLOOP, changes the
//! client made itself are not announced to it. A client's own changes are announced after its
//! reply (see `ClientState::after_reply`).
//!
//! The table lives in the keyspace (changes are found under its lock); messages are collected
//! in an outbox and delivered after each command and each cron pass ([`deliver`]). One
//! difference from Redis: BCAST messages go out after the command that made the changes,
//! where Redis gathers the changes of one event-loop pass (a pipeline's worth) into one
//! message.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use bytes::Bytes;
use common::resp::{Frame, Protocol};
use rand::seq::IteratorRandom;

use crate::client::{ClientKind, ClientState};
use crate::db::keyspace::Keyspace;
use crate::output_limit::BufferLimit;
use crate::server::Shared;

/// The channel RESP2 subscribers receive redirected invalidations on.
pub const CHANNEL: &str = "__redis__:invalidate";

/// One tracking client's mode (CLIENT TRACKING ON and its options).
#[derive(Debug, Clone, Default)]
pub struct Tracker {
    /// REDIRECT: the client that receives the messages (0: this one).
    pub redirect: u64,
    pub bcast: bool,
    pub optin: bool,
    pub optout: bool,
    pub noloop: bool,
    /// CLIENT CACHING YES (under OPTIN) or NO (under OPTOUT), for the next command only.
    pub caching: bool,
    /// BCAST prefixes ("" for every key).
    pub prefixes: BTreeSet<Bytes>,
    /// The redirect target was gone when a message was due (flag `R`).
    pub broken_redirect: bool,
}

/// CLIENT TRACKING ON's options, already checked against each other.
#[derive(Debug, Default)]
pub struct Options {
    pub redirect: u64,
    pub bcast: bool,
    pub optin: bool,
    pub optout: bool,
    pub noloop: bool,
    pub prefixes: Vec<Bytes>,
}

/// A BCAST prefix: who listens, and the keys under it changed since the last broadcast, each
/// with the client that changed it last (for NOLOOP).
#[derive(Default)]
struct Prefix {
    clients: BTreeSet<u64>,
    changed: BTreeMap<Bytes, Option<u64>>,
}

/// A message due to a tracking client: these keys changed, or (`None`) everything did.
#[derive(Debug, PartialEq, Eq)]
pub struct Invalidation {
    pub client: u64,
    pub keys: Option<Vec<Bytes>>,
}

/// Every tracking client and what it may have cached.
#[derive(Default)]
pub struct Tracking {
    /// Default mode: key name → the clients that read it since it last changed.
    keys: HashMap<Bytes, HashSet<u64>>,
    /// Client ids across `keys` (INFO `tracking_total_items`).
    items: u64,
    trackers: HashMap<u64, Tracker>,
    prefixes: BTreeMap<Bytes, Prefix>,
    outbox: Vec<Invalidation>,
    /// The client whose command is running: NOLOOP compares against it, as Redis's
    /// `server.current_client`.
    pub current: Option<u64>,
}

impl Tracking {
    /// The tracker of `client`, if it tracks.
    pub fn tracker(&self, client: u64) -> Option<&Tracker> {
        self.trackers.get(&client)
    }

    /// Whether no client tracks and no key is remembered (nothing to do on a change then):
    /// checked on every write and every read, so it stays two loads.
    #[inline]
    pub fn is_idle(&self) -> bool {
        self.trackers.is_empty() && self.keys.is_empty()
    }

    /// Turns tracking on (or changes its options) for `client`. The caller has checked the
    /// options as Redis does (see `cmd::client::tracking`).
    pub fn enable(&mut self, client: u64, options: Options) {
        let t = self.trackers.entry(client).or_default();
        t.redirect = options.redirect;
        t.broken_redirect = false;
        t.optin = options.optin;
        t.optout = options.optout;
        t.noloop = options.noloop;
        t.bcast = options.bcast;
        if options.bcast {
            let mut prefixes = options.prefixes;
            if prefixes.is_empty() {
                prefixes.push(Bytes::new());
            }
            for p in prefixes {
                t.prefixes.insert(p.clone());
                self.prefixes.entry(p).or_default().clients.insert(client);
            }
        }
    }

    /// Turns tracking off for `client` (CLIENT TRACKING OFF, RESET, disconnection). Keys it
    /// read stay in the table until they change, as in Redis.
    pub fn disable(&mut self, client: u64) {
        let Some(t) = self.trackers.remove(&client) else { return };
        for p in t.prefixes {
            if let Some(prefix) = self.prefixes.get_mut(&p) {
                prefix.clients.remove(&client);
                if prefix.clients.is_empty() {
                    self.prefixes.remove(&p);
                }
            }
        }
    }

    /// CLIENT CACHING YES|NO.
    pub fn set_caching(&mut self, client: u64) {
        if let Some(t) = self.trackers.get_mut(&client) {
            t.caching = true;
        }
    }

    /// A command other than CLIENT ran: CLIENT CACHING applied to it and is spent.
    pub fn command_done(&mut self, client: u64) {
        if let Some(t) = self.trackers.get_mut(&client) {
            t.caching = false;
        }
    }

    /// Whether a read-only command of `client` now has its keys remembered.
    pub fn remembers(&self, client: u64) -> bool {
        self.trackers.get(&client).is_some_and(|t| {
            // OPTIN: only after CLIENT CACHING YES; OPTOUT: all but after CLIENT CACHING NO.
            let opted_out = if t.optin { !t.caching } else { t.optout && t.caching };
            !t.bcast && !opted_out
        })
    }

    /// Remembers that `client` read `keys`.
    pub fn remember<'a>(&mut self, client: u64, keys: impl Iterator<Item = &'a Bytes>) {
        for key in keys {
            let readers = match self.keys.get_mut(&key[..]) {
                Some(r) => r,
                None => self.keys.entry(key.clone()).or_default(),
            };
            if readers.insert(client) {
                self.items += 1;
            }
        }
    }

    /// `key` changed (written, deleted, expired or evicted); `by`: the client that changed it,
    /// if a client did.
    pub fn invalidate(&mut self, key: &[u8], by: Option<u64>) {
        if self.is_idle() {
            return;
        }
        for (prefix, state) in self.prefixes.iter_mut() {
            if key.starts_with(prefix) {
                state.changed.insert(Bytes::copy_from_slice(key), by);
            }
        }
        let Some(readers) = self.keys.remove(key) else { return };
        self.items -= readers.len() as u64;
        for client in readers {
            let Some(t) = self.trackers.get(&client) else { continue };
            // A client that switched to BCAST gets no messages left over from before.
            if t.bcast || (t.noloop && self.current == Some(client)) {
                continue;
            }
            // One message per key, as Redis sends them.
            let keys = Some(vec![Bytes::copy_from_slice(key)]);
            self.outbox.push(Invalidation { client, keys });
        }
    }

    /// A database was flushed or the dataset replaced: every tracking client is told that
    /// everything changed, and the table is emptied.
    pub fn flushed(&mut self) {
        for &client in self.trackers.keys() {
            // FLUSHALL empties every database, but Redis tells each client once.
            let last = self.outbox.iter().rev().find(|m| m.client == client);
            if last.is_none_or(|m| m.keys.is_some()) {
                self.outbox.push(Invalidation { client, keys: None });
            }
        }
        self.keys.clear();
        self.items = 0;
        for prefix in self.prefixes.values_mut() {
            prefix.changed.clear();
        }
    }

    /// Queues the BCAST messages for the changes gathered since the last call.
    fn broadcast(&mut self) {
        for prefix in self.prefixes.values_mut() {
            if prefix.changed.is_empty() {
                continue;
            }
            let changed = std::mem::take(&mut prefix.changed);
            for &client in &prefix.clients {
                let noloop = self.trackers.get(&client).is_some_and(|t| t.noloop);
                let keys: Vec<Bytes> = changed
                    .iter()
                    .filter(|(_, by)| !(noloop && **by == Some(client)))
                    .map(|(k, _)| k.clone())
                    .collect();
                if !keys.is_empty() {
                    self.outbox.push(Invalidation { client, keys: Some(keys) });
                }
            }
        }
    }

    /// `tracking-table-max-keys`: forgets random keys (telling their readers, as a change
    /// would) until the table is back under `max` keys (0: no limit).
    pub fn limit(&mut self, max: usize, rng: &mut impl rand::Rng) {
        if max == 0 {
            return;
        }
        while self.keys.len() > max {
            let Some(key) = self.keys.keys().choose(rng).cloned() else { break };
            let current = self.current.take();
            self.invalidate(&key, None);
            self.current = current;
        }
    }

    /// Clients with tracking on (INFO `tracking_clients`).
    pub fn clients(&self) -> usize {
        self.trackers.len()
    }

    /// Keys in the table (INFO `tracking_total_keys`).
    pub fn total_keys(&self) -> usize {
        self.keys.len()
    }

    /// Client ids in the table (INFO `tracking_total_items`).
    pub fn total_items(&self) -> u64 {
        self.items
    }

    /// BCAST prefixes (INFO `tracking_total_prefixes`).
    pub fn total_prefixes(&self) -> usize {
        self.prefixes.len()
    }

    /// Takes the messages due (BCAST ones included).
    pub fn take_outbox(&mut self) -> Vec<Invalidation> {
        self.broadcast();
        std::mem::take(&mut self.outbox)
    }
}

/// Sends the messages due. `current` is the client whose command just ran: its own messages
/// (without a redirect) wait in `after_reply` so they follow its reply, as in Redis.
pub fn deliver(shared: &Shared, ks: &mut Keyspace, mut current: Option<&mut ClientState>) {
    if ks.tracking.is_idle() {
        return;
    }
    let outbox = ks.tracking.take_outbox();
    if outbox.is_empty() {
        return;
    }
    let clients = shared.clients.lock();
    for message in outbox {
        let Some(t) = ks.tracking.trackers.get_mut(&message.client) else { continue };
        let payload = match message.keys {
            Some(keys) => Frame::Array(keys.into_iter().map(Frame::Bulk).collect()),
            None => Frame::Null,
        };
        let invalidate = || Frame::Push(vec![Frame::bulk_static("invalidate"), payload.clone()]);
        if t.redirect == 0 {
            match current.as_deref_mut().filter(|c| c.id == message.client) {
                Some(c) if c.resp == Protocol::Resp3 => c.after_reply.push(invalidate()),
                Some(_) => {}
                None => {
                    let Some(handle) = clients.get(message.client) else { continue };
                    if handle.snapshot.lock().resp == 3 {
                        handle.push.send(invalidate(), &BufferLimit::default());
                    }
                }
            }
            continue;
        }
        let Some(target) = clients.get(t.redirect) else {
            t.broken_redirect = true;
            let origin = clients.get(message.client);
            if let Some(origin) = origin.filter(|o| o.snapshot.lock().resp == 3) {
                let broken = Frame::Push(vec![
                    Frame::bulk_static("tracking-redir-broken"),
                    Frame::Integer(t.redirect as i64),
                ]);
                origin.push.send(broken, &BufferLimit::default());
            }
            continue;
        };
        let (resp, kind) = {
            let snap = target.snapshot.lock();
            (snap.resp, snap.kind)
        };
        if resp == 3 {
            target.push.send(invalidate(), &BufferLimit::default());
        } else if kind == ClientKind::Pubsub {
            let message = Frame::Push(vec![
                Frame::bulk_static("message"),
                Frame::bulk_static(CHANNEL),
                payload,
            ]);
            target.push.send(message, &BufferLimit::default());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(k: &str) -> Bytes {
        Bytes::copy_from_slice(k.as_bytes())
    }

    #[test]
    fn a_read_key_is_announced_once_per_read() {
        let mut t = Tracking::default();
        t.enable(1, Options::default());
        t.enable(2, Options::default());
        t.remember(1, [key("a"), key("b")].iter());
        t.remember(2, [key("a")].iter());
        assert_eq!((t.total_keys(), t.total_items()), (2, 3));
        t.invalidate(b"a", Some(3));
        let mut out = t.take_outbox();
        out.sort_by_key(|m| m.client);
        assert_eq!(
            out,
            vec![
                Invalidation { client: 1, keys: Some(vec![key("a")]) },
                Invalidation { client: 2, keys: Some(vec![key("a")]) },
            ]
        );
        t.invalidate(b"a", Some(3));
        assert!(t.take_outbox().is_empty(), "announced again without a new read");
        assert_eq!((t.total_keys(), t.total_items()), (1, 1));
    }

    #[test]
    fn noloop_skips_the_clients_own_changes() {
        let mut t = Tracking::default();
        t.enable(1, Options { noloop: true, ..Default::default() });
        t.remember(1, [key("a")].iter());
        t.current = Some(1);
        t.invalidate(b"a", Some(1));
        assert!(t.take_outbox().is_empty());
    }

    #[test]
    fn optin_remembers_only_after_caching_yes() {
        let mut t = Tracking::default();
        t.enable(1, Options { optin: true, ..Default::default() });
        assert!(!t.remembers(1));
        t.set_caching(1);
        assert!(t.remembers(1));
        t.command_done(1);
        assert!(!t.remembers(1));
    }

    #[test]
    fn bcast_announces_keys_under_a_prefix() {
        let mut t = Tracking::default();
        t.enable(1, Options { bcast: true, prefixes: vec![key("user:")], ..Default::default() });
        t.enable(2, Options { bcast: true, noloop: true, ..Default::default() });
        t.invalidate(b"user:1", Some(2));
        t.invalidate(b"other", Some(3));
        let mut out = t.take_outbox();
        out.sort_by_key(|m| m.client);
        assert_eq!(
            out,
            vec![
                Invalidation { client: 1, keys: Some(vec![key("user:1")]) },
                Invalidation { client: 2, keys: Some(vec![key("other")]) },
            ]
        );
        assert_eq!(t.total_prefixes(), 2);
        t.disable(1);
        t.disable(2);
        assert_eq!(t.total_prefixes(), 0);
    }

    #[test]
    fn the_table_limit_forgets_keys_and_announces_them() {
        let mut t = Tracking::default();
        t.enable(1, Options::default());
        let keys: Vec<Bytes> = (0..10).map(|i| key(&format!("k{i}"))).collect();
        t.remember(1, keys.iter());
        t.limit(4, &mut rand::thread_rng());
        assert_eq!(t.total_keys(), 4);
        let out = t.take_outbox();
        assert_eq!(out.len(), 6, "one message per forgotten key");
    }
}
