//! The RDB loader: a whole file (or replication payload) into a [`Keyspace`].
//!
//! It follows Redis 7.0's `rdbLoadRioWithLoadingCtx`: the magic and version (1 to 10), then
//! opcodes until EOF, then the CRC-64 (skipped when stored as zero, absent before version 5).
//! Expiry, IDLE and FREQ apply to the next key only. Unknown AUX fields are kept and returned;
//! empty collections are skipped (Redis logs and skips them); keys whose expiry is before
//! [`LoadOptions::expired_before`] are dropped (a master loading its own file does that, a
//! replica does not). Unlike Redis, which exits or panics, a database number out of range, a
//! duplicate key, functions and module data are errors, as are module values.
//!
//! On error the keyspace holds whatever was loaded before the error: load into a fresh
//! [`Keyspace`] and swap it in on success.

use std::fs::File;
use std::io::Read;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use super::input::Input;
use super::object::{self, Kind, Limits, Scratch};
use super::{opcode as op, RdbError, RDB_VERSION};
use crate::db::{Keyspace, Value};

/// How to load.
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    /// Drop keys whose expiry (unix ms) is before this time (Redis: a master loading a file).
    pub expired_before: Option<i64>,
    /// The size of the input when known (a file, a `$<len>` replication transfer): lengths are
    /// then checked against it before anything is allocated, and nothing past it is read.
    pub total_len: Option<u64>,
    /// A key already in the keyspace is replaced instead of failing the load (DEBUG RELOAD
    /// MERGE, Redis's `RDBFLAGS_ALLOW_DUP`).
    pub merge: bool,
}

/// What the checksum said.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Checksum {
    /// The stored CRC-64 matched.
    Verified,
    /// The file was written with `rdbchecksum no` (a stored zero): nothing to check.
    NotComputed,
    /// RDB versions before 5 have no checksum.
    Absent,
}

/// What a load found besides the keys.
#[derive(Debug, Clone)]
pub struct LoadSummary {
    /// The RDB version of the input.
    pub version: u16,
    /// Every AUX field, in file order.
    pub aux: Vec<(Vec<u8>, Vec<u8>)>,
    /// The function libraries' sources, in file order (for the caller to compile: the loader
    /// only reads data).
    pub functions: Vec<Vec<u8>>,
    /// Keys stored.
    pub keys_loaded: u64,
    /// Keys dropped because they had expired.
    pub keys_expired: u64,
    /// Empty collections skipped.
    pub empty_keys_skipped: u64,
    /// The checksum outcome.
    pub checksum: Checksum,
    /// Bytes consumed (the whole RDB, checksum included).
    pub bytes: u64,
    /// Bytes read from the source after the end of the RDB: with an unknown total the loader
    /// reads ahead (up to 64 KB), and these belong to whatever follows the RDB in the stream
    /// (a diskless transfer's EOF mark, the replication stream). Empty when the total is known,
    /// since the loader then never reads past it.
    pub trailing: Vec<u8>,
}

impl LoadSummary {
    /// The value of an AUX field (names compare case-insensitively, as Redis does).
    pub fn aux(&self, name: &str) -> Option<&[u8]> {
        self.aux.iter().find(|(k, _)| k.eq_ignore_ascii_case(name.as_bytes())).map(|(_, v)| &v[..])
    }

    fn aux_int(&self, name: &str) -> Option<i64> {
        std::str::from_utf8(self.aux(name)?).ok()?.trim().parse().ok()
    }

    /// `repl-id`, if present and 40 characters long (Redis ignores it otherwise).
    pub fn repl_id(&self) -> Option<&str> {
        self.aux("repl-id").filter(|v| v.len() == 40).and_then(|v| std::str::from_utf8(v).ok())
    }

    /// `repl-offset`.
    pub fn repl_offset(&self) -> Option<i64> {
        self.aux_int("repl-offset")
    }

    /// `repl-stream-db`.
    pub fn repl_stream_db(&self) -> Option<i64> {
        self.aux_int("repl-stream-db")
    }
}

/// Loads an RDB file, using its size to validate lengths. With `progress`, the bytes read so
/// far are added to it as they are read (INFO's `loading_loaded_bytes`).
pub fn load_file(
    path: &Path,
    ks: &mut Keyspace,
    expired_before: Option<i64>,
    progress: Option<&AtomicU64>,
) -> Result<LoadSummary, RdbError> {
    load_file_with(path, ks, LoadOptions { expired_before, ..Default::default() }, progress)
}

/// [`load_file`] with every option (the file's size is filled in).
pub fn load_file_with(
    path: &Path,
    ks: &mut Keyspace,
    mut options: LoadOptions,
    progress: Option<&AtomicU64>,
) -> Result<LoadSummary, RdbError> {
    let io = |source| RdbError::Io { offset: 0, source };
    let file = File::open(path).map_err(io)?;
    options.total_len = Some(file.metadata().map_err(io)?.len());
    match progress {
        Some(loaded) => load(Counted { inner: file, loaded }, ks, &options),
        None => load(file, ks, &options),
    }
}

/// A reader that counts what it reads into a shared counter, for progress reports.
struct Counted<'a, R> {
    inner: R,
    loaded: &'a AtomicU64,
}

impl<R: Read> Read for Counted<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.loaded.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

/// Loads an RDB stream into `ks`.
pub fn load<R: Read>(
    src: R,
    ks: &mut Keyspace,
    options: &LoadOptions,
) -> Result<LoadSummary, RdbError> {
    if ks.dbs.is_empty() {
        // Database 0 is implicitly selected; with none configured there is nowhere to load.
        return Err(RdbError::Unsupported {
            offset: 0,
            what: "no databases are configured".into(),
        });
    }
    let mut inp = Input::new(src, options.total_len);
    let magic: [u8; 9] = inp.array()?;
    if &magic[..5] != b"REDIS" {
        return Err(RdbError::Corrupt {
            offset: 0,
            reason: "not an RDB file (no REDIS signature)".into(),
        });
    }
    let version = std::str::from_utf8(&magic[5..])
        .ok()
        .filter(|v| v.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|v| v.parse::<u16>().ok())
        .ok_or_else(|| RdbError::Corrupt { offset: 5, reason: "invalid RDB version".into() })?;
    if !(1..=RDB_VERSION).contains(&version) {
        return Err(RdbError::Unsupported {
            offset: 5,
            what: format!(
                "RDB version {version} is not supported (warden-node reads 1 to {RDB_VERSION})"
            ),
        });
    }
    let limits = Limits::current();
    let pace = super::pace::Pace::load();
    let mut keys_read = 0u64;
    let mut scratch = Scratch::default();
    let mut key = Vec::new();
    let mut summary = LoadSummary {
        version,
        aux: Vec::new(),
        functions: Vec::new(),
        keys_loaded: 0,
        keys_expired: 0,
        empty_keys_skipped: 0,
        checksum: Checksum::Absent,
        bytes: 0,
        trailing: Vec::new(),
    };
    let mut db = 0usize;
    let mut expiry: Option<i64> = None;
    let mut hint: Option<AccessHint> = None;
    loop {
        let at = inp.offset();
        let rdb_type = inp.u8()?;
        match rdb_type {
            op::EXPIRETIME => expiry = Some(i32::from_le_bytes(inp.array()?) as i64 * 1000),
            op::EXPIRETIME_MS => expiry = Some(i64::from_le_bytes(inp.array()?)),
            op::FREQ => hint = Some(AccessHint::Freq(inp.u8()?)),
            op::IDLE => hint = Some(AccessHint::IdleSeconds(inp.len()?)),
            op::EOF => break,
            op::SELECTDB => {
                let id = inp.len()?;
                if id >= ks.dbs.len() as u64 {
                    return Err(RdbError::Unsupported {
                        offset: at,
                        what: format!(
                            "the file selects database {id}, but only {} are configured",
                            ks.dbs.len()
                        ),
                    });
                }
                db = id as usize;
            }
            op::RESIZEDB => {
                // A hint: size the tables once instead of growing them step by step, but never
                // beyond what the input can hold (a key takes at least 3 bytes).
                let keys = inp.len()?;
                let expires = inp.len()?;
                let room = inp.remaining().unwrap_or(3 << 20) / 3;
                let d = &mut ks.dbs[db];
                d.keys.reserve(keys.min(room) as usize);
                d.expires.reserve(expires.min(keys).min(room) as usize);
            }
            op::AUX => {
                let mut name = Vec::new();
                let mut value = Vec::new();
                inp.string(&mut name)?;
                inp.string(&mut value)?;
                summary.aux.push((name, value));
            }
            op::MODULE_AUX => {
                return Err(RdbError::Unsupported {
                    offset: at,
                    what: "the file holds module data, and modules are not supported".into(),
                })
            }
            op::FUNCTION2 => {
                let mut source = Vec::new();
                inp.string(&mut source)?;
                summary.functions.push(source);
            }
            op::FUNCTION_PRE_GA => {
                return Err(RdbError::Unsupported {
                    offset: at,
                    what: "the file holds functions in the pre-GA format of Redis 7.0's release \
                           candidates, which Redis 7.0 does not load either"
                        .into(),
                })
            }
            _ => {
                if let Kind::Unknown = object::kind(rdb_type) {
                    return Err(RdbError::Corrupt {
                        offset: at,
                        reason: format!("unknown value type or opcode {rdb_type}"),
                    });
                }
                inp.string(&mut key)?;
                if let Kind::Refused(what) = object::kind(rdb_type) {
                    return Err(object::refused(&key, what, at));
                }
                let value = object::read_value(&mut inp, rdb_type, &limits, &mut scratch)?;
                pace.wait_one(keys_read);
                keys_read += 1;
                let at_expiry = expiry.take();
                let at_hint = hint.take();
                let Some(value) = value else {
                    summary.empty_keys_skipped += 1;
                    continue;
                };
                if let (Some(when), Some(now)) = (at_expiry, options.expired_before) {
                    if when < now {
                        summary.keys_expired += 1;
                        continue;
                    }
                }
                let d = &mut ks.dbs[db];
                if options.merge {
                    d.remove(&key);
                }
                if d.keys.insert(&key, value).is_some() {
                    return Err(RdbError::Corrupt {
                        offset: at,
                        reason: format!(
                            "duplicate key '{}' in database {db}",
                            super::show_key(&key)
                        ),
                    });
                }
                if let Some(when) = at_expiry {
                    d.expires.insert(&key, when);
                }
                if let (Some(hint), Some((_, stamp))) = (at_hint, d.keys.get_touch(&key)) {
                    hint.apply(stamp);
                }
                summary.keys_loaded += 1;
            }
        }
    }
    if version >= 5 {
        let computed = inp.crc();
        let at = inp.offset();
        let stored = u64::from_le_bytes(inp.array()?);
        summary.checksum = if stored == 0 {
            Checksum::NotComputed
        } else if stored == computed {
            Checksum::Verified
        } else {
            return Err(RdbError::Checksum { offset: at, stored, computed });
        };
    }
    summary.bytes = inp.offset();
    summary.trailing = inp.buffered().to_vec();
    Ok(summary)
}

/// The access history a file may carry for its next key (written by Redis under an LRU or LFU
/// `maxmemory-policy`), so eviction after a restart or a full sync knows which keys were idle;
/// RESTORE's IDLETIME and FREQ give the same.
#[derive(Debug, Clone, Copy)]
pub enum AccessHint {
    /// RDB_OPCODE_FREQ: the LFU counter.
    Freq(u8),
    /// RDB_OPCODE_IDLE: seconds since the last access.
    IdleSeconds(u64),
}

impl AccessHint {
    /// Sets the key's stamp from the hint when it matches how stamps are kept now (Redis's
    /// `objectSetLRUOrLFU`); a hint of the other kind is dropped.
    pub fn apply(self, stamp: &mut crate::db::Lru) {
        let lfu = crate::db::access::is_lfu();
        match self {
            AccessHint::Freq(counter) if lfu => *stamp = crate::db::Lru::with_count(counter),
            AccessHint::IdleSeconds(idle) if !lfu => *stamp = crate::db::Lru::idle_for(idle),
            _ => {}
        }
    }
}

/// Reads the value of a DUMP payload body (type byte + value) for `key`. Like Redis, bytes
/// after the value are ignored.
pub(crate) fn value_from_payload(key: &[u8], body: &[u8]) -> Result<Value, RdbError> {
    let mut inp = Input::new(body, Some(body.len() as u64));
    let rdb_type = inp.u8()?;
    match object::kind(rdb_type) {
        Kind::Supported => {}
        Kind::Refused(what) => return Err(object::refused(key, what, 0)),
        Kind::Unknown => return Err(inp.corrupt(format!("unknown value type {rdb_type}"))),
    }
    let value =
        object::read_value(&mut inp, rdb_type, &Limits::current(), &mut Scratch::default())?
            .ok_or_else(|| inp.corrupt("empty collection"))?;
    Ok(value)
}
