//! The execution context of one command: the locked keyspace, the client's database, the
//! command's clock, and what the command asks to propagate.
//!
//! [`Exec`] is all a data command needs and is also what serves blocked clients. [`Ctx`] adds
//! the server and the calling client for connection and server commands; it dereferences to
//! [`Exec`] so handlers read the same either way.

use std::ops::{Deref, DerefMut};
use std::time::Duration;

use bytes::Bytes;

use crate::blocking::Unblock;
use crate::client::ClientState;
use crate::db::hash::Hash;
use crate::db::list::List;
use crate::db::set::Set;
use crate::db::stream::Stream;
use crate::db::zset::ZSet;
use crate::db::{Db, Keyspace, Sds, Value};
use crate::error::CommandError;
use crate::server::Shared;

/// A command to append to the replication stream and the AOF, in the database it applies to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Propagated {
    /// The database the command must run in.
    pub db: usize,
    /// The command and its arguments.
    pub argv: Vec<Bytes>,
}

/// Wraps several propagated writes in MULTI … EXEC, so replicas and the AOF apply them as one
/// unit (a transaction's or a script's writes); a single write stays as it is.
pub fn as_one_unit(out: &mut Vec<Propagated>) {
    if out.len() > 1 {
        let db = out[0].db;
        out.insert(0, Propagated { db, argv: vec![Bytes::from_static(b"MULTI")] });
        let last_db = out.last().map_or(db, |p| p.db);
        out.push(Propagated { db: last_db, argv: vec![Bytes::from_static(b"EXEC")] });
    }
}

/// The keyspace-level context of one command.
pub struct Exec<'a> {
    /// All databases (locked for the duration of the command).
    pub ks: &'a mut Keyspace,
    /// The selected database.
    pub db: usize,
    /// The command's clock (unix ms), read once per command as Redis does.
    pub now_ms: i64,
    /// On a replica, expired keys are hidden but not deleted: the master's DEL removes them.
    pub replica: bool,
    /// The command comes from our master's stream: a key whose TTL passed is still there
    /// until the master's DEL arrives (Redis's rule for its master client).
    pub from_master: bool,
    /// CLIENT PAUSE is in force: expired keys are hidden but not deleted (see
    /// [`crate::server::Shared::dataset_frozen`]).
    pub frozen: bool,
    /// Effects recorded before the command's own (lazy-expiry DELs).
    pub expired: Vec<Propagated>,
    /// The command's own propagated form when it differs from what the client sent.
    pub rewrites: Option<Vec<Propagated>>,
    /// Whether anything consumes propagated commands (a replication backlog or the AOF). Like
    /// Redis, nothing is built for propagation while nobody would read it.
    pub propagating: bool,
    /// The keys the command actually modified, when that is narrower than its key positions
    /// (COPY writes only its destination; BLPOP k1 k2 pops only one key).
    pub modified: Option<Vec<Bytes>>,
}

/// Typed access to a key: `Ok(None)` if absent, `Err(WrongType)` if it holds another type.
macro_rules! typed_access {
    ($read:ident, $write:ident, $create:ident, $variant:ident, $ty:ty) => {
        /// Reads the key as this type.
        pub fn $read(&mut self, key: &[u8]) -> Result<Option<&$ty>, CommandError> {
            match self.lookup_read(key) {
                None => Ok(None),
                Some(Value::$variant(v)) => Ok(Some(v)),
                Some(_) => Err(CommandError::WrongType),
            }
        }

        /// Opens the key as this type for writing.
        pub fn $write(&mut self, key: &[u8]) -> Result<Option<&mut $ty>, CommandError> {
            match self.lookup_write(key) {
                None => Ok(None),
                Some(Value::$variant(v)) => Ok(Some(v)),
                Some(_) => Err(CommandError::WrongType),
            }
        }

        /// Opens the key as this type for writing, creating an empty one if absent.
        pub fn $create(&mut self, key: &[u8]) -> Result<&mut $ty, CommandError> {
            self.expire_if_needed(key);
            self.notify_if_new(key);
            match self.db_mut().keys.get_or_insert_with(key, || Value::$variant(Default::default()))
            {
                Value::$variant(v) => Ok(v),
                _ => Err(CommandError::WrongType),
            }
        }
    };
}

impl<'a> Exec<'a> {
    /// A context for `db` at `now_ms`.
    pub fn new(ks: &'a mut Keyspace, db: usize, now_ms: i64, replica: bool) -> Exec<'a> {
        Exec {
            ks,
            db,
            now_ms,
            replica,
            from_master: false,
            frozen: false,
            propagating: false,
            expired: Vec::new(),
            rewrites: None,
            modified: None,
        }
    }

    /// The selected database.
    pub fn db_mut(&mut self) -> &mut Db {
        &mut self.ks.dbs[self.db]
    }

    /// The selected database, read-only.
    pub fn db_ref(&self) -> &Db {
        &self.ks.dbs[self.db]
    }

    /// Deletes `key` if its TTL has passed (unless on a replica, or while clients are
    /// paused). Returns true if the key is logically expired, deleted or not.
    pub fn expire_if_needed(&mut self, key: &[u8]) -> bool {
        if self.from_master || !self.ks.dbs[self.db].is_expired(key, self.now_ms) {
            return false;
        }
        if !self.replica && !self.frozen {
            self.ks.dbs[self.db].remove(key);
            self.ks.stats.expired += 1;
            self.ks.signal_modified_key(self.db, key);
            // Readers blocked in XREADGROUP on an expired stream learn that it is gone.
            self.ks.blocking.signal(self.db, key);
            self.notify(crate::notify::class::EXPIRED, "expired", key);
            if self.propagating {
                self.expired.push(Propagated {
                    db: self.db,
                    argv: vec![Bytes::from_static(b"DEL"), Bytes::copy_from_slice(key)],
                });
            }
        }
        true
    }

    /// Records a keyspace event about `key` in the current database, if the setting asks for
    /// its class (see `crate::notify`).
    #[inline]
    pub fn notify(&mut self, class: u16, event: &'static str, key: &[u8]) {
        self.notify_in(self.db, class, event, key);
    }

    /// [`Exec::notify`] for a key of another database (MOVE's destination).
    #[inline]
    pub fn notify_in(&mut self, db: usize, class: u16, event: &'static str, key: &[u8]) {
        let ks = &mut *self.ks;
        ks.notify.record(&mut ks.events, db, class, event, key);
    }

    /// Records `new` (class `n`) when `key` does not exist yet: call before adding it.
    #[inline]
    fn notify_if_new(&mut self, key: &[u8]) {
        if self.ks.notify.wants(crate::notify::class::NEW) && !self.db_ref().keys.contains_key(key)
        {
            self.notify(crate::notify::class::NEW, "new", key);
        }
    }

    /// Looks a key up for reading (counts a keyspace hit or miss).
    pub fn lookup_read(&mut self, key: &[u8]) -> Option<&Value> {
        if self.expire_if_needed(key) {
            self.ks.stats.misses += 1;
            self.notify(crate::notify::class::KEY_MISS, "keymiss", key);
            return None;
        }
        let ks = &mut *self.ks;
        let db = self.db;
        // Only the access stamp changes: a snapshot in progress need not keep a copy.
        match ks.dbs[db].keys.get_touch(key) {
            Some((value, lru)) => {
                lru.touch();
                ks.stats.hits += 1;
                Some(value)
            }
            None => {
                ks.stats.misses += 1;
                // Not `Exec::notify`, which borrows all of `self`: the tables still are here.
                ks.notify.record(
                    &mut ks.events,
                    db,
                    crate::notify::class::KEY_MISS,
                    "keymiss",
                    key,
                );
                None
            }
        }
    }

    /// Looks a key up for writing (no hit/miss accounting).
    pub fn lookup_write(&mut self, key: &[u8]) -> Option<&mut Value> {
        if self.expire_if_needed(key) {
            return None;
        }
        self.ks.dbs[self.db].keys.get_mut_meta(key).map(|(value, lru)| {
            lru.touch();
            value
        })
    }

    /// Looks a key up without counting as an access (OBJECT, TYPE, TTL … do not change a key's
    /// idle time in Redis); hits and misses are still counted.
    pub fn lookup_notouch(&mut self, key: &[u8]) -> Option<&Value> {
        self.lookup_untouched(key, true)
    }

    /// [`Exec::lookup_notouch`] without the `keymiss` event (Redis's `LOOKUP_NONOTIFY`, which
    /// OBJECT uses).
    pub fn lookup_quiet(&mut self, key: &[u8]) -> Option<&Value> {
        self.lookup_untouched(key, false)
    }

    fn lookup_untouched(&mut self, key: &[u8], notify_miss: bool) -> Option<&Value> {
        let expired = self.expire_if_needed(key);
        let ks = &mut *self.ks;
        let db = self.db;
        let found = if expired { None } else { ks.dbs[db].keys.get(key) };
        if found.is_some() {
            ks.stats.hits += 1;
        } else {
            ks.stats.misses += 1;
            if notify_miss {
                let class = crate::notify::class::KEY_MISS;
                ks.notify.record(&mut ks.events, db, class, "keymiss", key);
            }
        }
        found
    }

    /// Looks a key up as a write command does (no hit/miss accounting), only to read it: a
    /// snapshot in progress need not keep a copy, as it must for [`Exec::lookup_write`].
    pub fn lookup_write_ref(&mut self, key: &[u8]) -> Option<&Value> {
        if self.expire_if_needed(key) {
            return None;
        }
        self.ks.dbs[self.db].keys.get_touch(key).map(|(value, lru)| {
            lru.touch();
            value
        })
    }

    /// True if `key` exists (and has not expired).
    pub fn exists(&mut self, key: &[u8]) -> bool {
        self.lookup_write_ref(key).is_some()
    }

    /// Stores `value` at `key`, dropping any TTL (SET semantics).
    pub fn set(&mut self, key: &[u8], value: Value) {
        // An expired key being overwritten is deleted as expired first (its `expired` event,
        // then `new`), as Redis's lookup before the write does.
        self.expire_if_needed(key);
        self.notify_if_new(key);
        let db = self.db_mut();
        db.keys.insert(key, value);
        db.expires.remove(key);
    }

    /// Stores `value` at `key`, keeping an existing TTL (KEEPTTL, in-place updates).
    pub fn set_keep_ttl(&mut self, key: &[u8], value: Value) {
        self.expire_if_needed(key);
        self.notify_if_new(key);
        self.db_mut().keys.insert(key, value);
    }

    /// Deletes `key`. Returns true if it existed (and had not expired).
    pub fn delete(&mut self, key: &[u8]) -> bool {
        self.take(key).is_some()
    }

    /// Deletes `key` and gives back its value (UNLINK frees it elsewhere); `None` if it did
    /// not exist or had expired.
    pub fn take(&mut self, key: &[u8]) -> Option<Value> {
        if self.expire_if_needed(key) {
            return None;
        }
        self.db_mut().remove(key)
    }

    /// Deletes `key` as it is stored, even if its time ran out (Redis's `dbDelete` without a
    /// lookup first): what the STORE commands, BITOP and RESTORE REPLACE do to a destination.
    /// An expired destination is then reported as deleted (`del`), not as `expired`.
    pub fn delete_stored(&mut self, key: &[u8]) -> bool {
        self.db_mut().remove(key).is_some()
    }

    /// What a STORE command (or BITOP) does with an empty result: deletes the destination as
    /// stored ([`Exec::delete_stored`]) and, if it was there, counts the change and records
    /// `del`.
    pub fn clear_destination(&mut self, dst: &[u8]) {
        if self.delete_stored(dst) {
            self.dirty(1);
            self.notify(crate::notify::class::GENERIC, "del", dst);
        }
    }

    /// Deletes `key` if it now holds an empty collection (Redis never stores empty ones).
    pub fn remove_if_empty(&mut self, key: &[u8]) {
        let empty = match self.db_ref().keys.get(key) {
            Some(Value::List(l)) => l.is_empty(),
            Some(Value::Hash(h)) => h.is_empty(),
            Some(Value::Set(s)) => s.is_empty(),
            Some(Value::ZSet(z)) => z.is_empty(),
            _ => false,
        };
        if empty {
            self.db_mut().remove(key);
            self.notify(crate::notify::class::GENERIC, "del", key);
        }
    }

    /// Counts `n` changes toward the dirty counter. A write command that counts nothing is
    /// neither propagated nor seen by WATCH.
    pub fn dirty(&mut self, n: u64) {
        self.ks.dirty += n;
    }

    /// Records that the command modified `key` (in the current database). Once a handler calls
    /// this, only the recorded keys are touched for WATCH and signalled to blocked clients,
    /// instead of every key position of the command.
    pub fn modified(&mut self, key: &[u8]) {
        self.modified.get_or_insert_with(Vec::new).push(Bytes::copy_from_slice(key));
    }

    /// Records that the command propagates as `argv` (in the current database) instead of as
    /// sent. May be called several times to propagate several commands.
    pub fn propagate_as(&mut self, argv: Vec<Bytes>) {
        if !self.propagating {
            // Still mark the command as rewritten, so the verbatim form is not used either.
            self.rewrites.get_or_insert_with(Vec::new);
            return;
        }
        let db = self.db;
        self.rewrites.get_or_insert_with(Vec::new).push(Propagated { db, argv });
    }

    /// Records that the command propagates nothing of its own, only what it asks for with
    /// [`Exec::propagate_as`] (Redis's `preventCommandPropagation`).
    pub fn propagate_nothing(&mut self) {
        self.rewrites.get_or_insert_with(Vec::new);
    }

    /// A string key as a write command reads it (no hit/miss accounting, as Redis's
    /// `lookupKeyWrite`): APPEND's or SETRANGE's current value.
    pub fn peek_str(&mut self, key: &[u8]) -> Result<Option<&Sds>, CommandError> {
        match self.lookup_write_ref(key) {
            None => Ok(None),
            Some(Value::Str { bytes, .. }) => Ok(Some(bytes)),
            Some(_) => Err(CommandError::WrongType),
        }
    }

    /// Reads a string key.
    pub fn read_str(&mut self, key: &[u8]) -> Result<Option<&Sds>, CommandError> {
        match self.lookup_read(key) {
            None => Ok(None),
            Some(Value::Str { bytes, .. }) => Ok(Some(bytes)),
            Some(_) => Err(CommandError::WrongType),
        }
    }

    typed_access!(read_list, write_list, list_or_create, List, List);
    typed_access!(read_hash, write_hash, hash_or_create, Hash, Hash);
    typed_access!(read_set, write_set, set_or_create, Set, Set);
    typed_access!(read_zset, write_zset, zset_or_create, ZSet, ZSet);
    typed_access!(read_stream, write_stream, stream_or_create, Stream, Stream);
}

/// What a command asks the connection to do after its reply.
pub enum Effect {
    /// Block until one of `keys` is ready or `timeout` passes (`None`: forever).
    Block {
        /// The keys.
        keys: Vec<Bytes>,
        /// How long.
        timeout: Option<Duration>,
        /// What to do when a key is ready.
        op: Box<dyn Unblock>,
        /// The reply on timeout.
        on_timeout: common::resp::Frame,
    },
    /// Close the connection after writing the reply (QUIT, CLIENT KILL of oneself).
    Close,
    /// Shut the server down after writing nothing (SHUTDOWN succeeded).
    Shutdown,
    /// Stream every command to this client (MONITOR).
    Monitor,
    /// Become a replica's feed (PSYNC, SYNC).
    Sync(crate::repl::feed::SyncRequest),
    /// Wait for replicas to acknowledge (WAIT, WAITAOF).
    Wait(crate::cmd::replication::WaitFor),
    /// Empty the dataset and load the AOF back, then reply (DEBUG LOADAOF).
    LoadAof,
    /// SHUTDOWN on a master with replicas: wait (writes paused) until they acknowledged
    /// everything or `deadline`, then save as asked and stop.
    ShutdownAfterReplicas {
        /// Give up waiting at this instant.
        deadline: std::time::Instant,
        /// SHUTDOWN SAVE.
        save: bool,
        /// SHUTDOWN NOSAVE.
        nosave: bool,
        /// SHUTDOWN FORCE.
        force: bool,
    },
}

/// The full context of one command.
pub struct Ctx<'a> {
    /// Keyspace-level context.
    pub exec: Exec<'a>,
    /// The server.
    pub server: &'a Shared,
    /// The calling client.
    pub client: &'a mut ClientState,
    /// True while EXEC runs queued commands (blocking commands must not block then).
    pub in_exec: bool,
    /// What the connection must do after replying.
    pub effect: Option<Effect>,
}

impl<'a> Deref for Ctx<'a> {
    type Target = Exec<'a>;
    fn deref(&self) -> &Exec<'a> {
        &self.exec
    }
}

impl<'a> DerefMut for Ctx<'a> {
    fn deref_mut(&mut self) -> &mut Exec<'a> {
        &mut self.exec
    }
}
