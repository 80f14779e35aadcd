//! Point-in-time RDB snapshots written in small chunks while the server keeps serving
//! (BGSAVE without `fork()`).
//!
//! [`Snapshot::freeze`] runs under the keyspace lock and freezes every non-empty database (see
//! [`crate::db::SnapshotDict`] for the invariant that makes the result a snapshot of that
//! instant). Each [`Snapshot::write_chunk`] then serialises about [`CHUNK_KEYS`] keys under
//! the lock, so a writer waits at most one chunk, and memory grows only by the T0 copies of
//! keys changed ahead of the walk — not by a second dataset. The server runs the chunks on its
//! event loop (`cmd::persistence::write_snapshot`); [`Snapshot::write_to`] is the fallback for
//! a caller without one.
//!
//! Anything that replaces or wipes the dataset wholesale (FLUSHALL, a full sync, SHUTDOWN's
//! own save) thaws the databases instead; the next chunk notices and the save is abandoned,
//! as Redis kills its child in those cases.

use std::io::{self, Write};

use super::encode::{Aux, RdbWriter};
use super::pace::Pace;
use crate::db::{Keyspace, Value};

/// A file format a snapshot is written in: an RDB file, or the AOF's command form (an AOF
/// base with `aof-use-rdb-preamble no`).
pub trait Format {
    /// Where the bytes go.
    type Out: Write;
    /// The file's header.
    fn header(&mut self, aux: &Aux<'_>) -> io::Result<()>;
    /// Starts database `index` (`keys` keys at the snapshot's instant, `expires` with a TTL).
    fn begin_db(&mut self, index: usize, keys: usize, expires: usize) -> io::Result<()>;
    /// One key.
    fn entry(&mut self, key: &[u8], value: &Value, expiry: Option<i64>) -> io::Result<()>;
    /// Ends the file and returns the output.
    fn finish(self) -> io::Result<Self::Out>;
    /// The output so far, to drain between chunks.
    fn output_mut(&mut self) -> &mut Self::Out;
}

impl<W: Write> Format for RdbWriter<W> {
    type Out = W;
    fn header(&mut self, aux: &Aux<'_>) -> io::Result<()> {
        self.write_header(aux)
    }
    fn begin_db(&mut self, index: usize, keys: usize, expires: usize) -> io::Result<()> {
        RdbWriter::begin_db(self, index, keys, expires)
    }
    fn entry(&mut self, key: &[u8], value: &Value, expiry: Option<i64>) -> io::Result<()> {
        self.write_entry(key, value, expiry)
    }
    fn finish(self) -> io::Result<W> {
        RdbWriter::finish(self)
    }
    fn output_mut(&mut self) -> &mut W {
        RdbWriter::output_mut(self)
    }
}

/// Keys serialised per lock acquisition.
pub const CHUNK_KEYS: usize = 500;

/// How far a snapshot has come.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    /// More chunks to write.
    More,
    /// Every database is written and the file is complete.
    Done,
    /// The frozen view is gone (the dataset was flushed or replaced): abandon the file.
    Interrupted,
}

/// One database to write: its index and its sizes at T0 (the RESIZEDB hint).
#[derive(Debug, Clone, Copy)]
struct Planned {
    index: usize,
    keys: usize,
    expires: usize,
}

/// A snapshot being written in format `F`.
pub struct Snapshot<F: Format> {
    /// This snapshot's view id (`Keyspace::frozen` while it holds the view).
    id: u64,
    writer: Option<F>,
    /// The output, once finished.
    output: Option<F::Out>,
    plan: Vec<Planned>,
    /// Position in `plan` of the database being written.
    next: usize,
    /// Its SELECTDB/RESIZEDB header is written.
    begun: bool,
    /// Keys written so far, and the total at T0 (INFO's `current_save_keys_*`).
    pub keys_written: u64,
    /// Keys at T0.
    pub keys_total: u64,
    /// `rdb-key-save-delay` when the snapshot began.
    pace: Pace,
    /// The keys written before the last chunk, and by it (what [`Snapshot::pause`] paces).
    last_chunk: (u64, u64),
}

impl<F: Format> Snapshot<F> {
    /// Freezes `ks` at this instant (the caller holds the keyspace lock) and writes the
    /// header to `writer`.
    pub fn freeze(ks: &mut Keyspace, mut writer: F, aux: &Aux<'_>) -> io::Result<Self> {
        debug_assert!(ks.frozen.is_none(), "one frozen view at a time");
        writer.header(aux)?;
        ks.views += 1;
        let id = ks.views;
        ks.frozen = Some(id);
        let mut plan = Vec::new();
        for (index, db) in ks.dbs.iter_mut().enumerate() {
            if db.keys.is_empty() {
                continue;
            }
            plan.push(Planned { index, keys: db.keys.len(), expires: db.expires.len() });
            db.keys.freeze(index);
            db.expires.freeze(index);
        }
        let keys_total = plan.iter().map(|p| p.keys as u64).sum();
        Ok(Snapshot {
            id,
            writer: Some(writer),
            output: None,
            plan,
            next: 0,
            begun: false,
            keys_written: 0,
            keys_total,
            pace: Pace::save(),
            last_chunk: (0, 0),
        })
    }

    /// Writes the next chunk (the caller holds the keyspace lock). On `Done` the file is
    /// finished (EOF and checksum written, flushed); on an error or `Interrupted` the
    /// databases are thawed and the file is worthless.
    pub fn write_chunk(&mut self, ks: &mut Keyspace) -> io::Result<Progress> {
        if ks.frozen != Some(self.id) {
            // Abandoned (FLUSHALL, a full sync): the view may even be another snapshot's now.
            self.writer = None;
            return Ok(Progress::Interrupted);
        }
        let before = self.keys_written;
        let result = self.step(ks);
        self.last_chunk = (before, self.keys_written - before);
        if !matches!(result, Ok(Progress::More)) {
            thaw(ks);
        }
        result
    }

    /// Gives the view up, unless it was already (the caller stops early, e.g. a replica
    /// went away mid-transfer).
    pub fn abandon(&self, ks: &mut Keyspace) {
        if ks.frozen == Some(self.id) {
            thaw(ks);
        }
    }

    fn step(&mut self, ks: &mut Keyspace) -> io::Result<Progress> {
        let Some(writer) = self.writer.as_mut() else { return Ok(Progress::Interrupted) };
        let mut budget = self.pace.keys_per_chunk(CHUNK_KEYS);
        while let Some(p) = self.plan.get(self.next).copied() {
            // SWAPDB moves a frozen table to another index; it is still written as `index`.
            let Some(db) = ks.dbs.iter_mut().find(|d| d.keys.frozen_as() == Some(p.index)) else {
                return Ok(Progress::Interrupted);
            };
            if !self.begun {
                writer.begin_db(p.index, p.keys, p.expires)?;
                self.begun = true;
            }
            let crate::db::Db { keys, expires } = db;
            let mut failed = None;
            let mut written = 0;
            let (cursor, walked) = keys.walk(budget, |key, value| {
                let expiry = expires.take_frozen(key);
                if failed.is_none() {
                    failed = writer.entry(key, value, expiry).err();
                }
                written += 1;
            });
            expires.advance_to(cursor, walked);
            if let Some(e) = failed {
                return Err(e);
            }
            self.keys_written += written;
            if !walked {
                return Ok(Progress::More);
            }
            keys.thaw();
            expires.thaw();
            self.next += 1;
            self.begun = false;
            budget = budget.saturating_sub(written as usize);
            if budget == 0 {
                return Ok(Progress::More);
            }
        }
        let writer = self.writer.take().expect("checked above");
        self.output = Some(writer.finish()?);
        Ok(Progress::Done)
    }

    /// How long to wait, with the keyspace lock released, before the next chunk: zero unless
    /// `rdb-key-save-delay` is set (see [`super::pace`]).
    pub fn pause(&self) -> std::time::Duration {
        self.pace.after(self.last_chunk.0, self.last_chunk.1)
    }

    /// The finished output (after `Done`).
    pub fn into_output(self) -> Option<F::Out> {
        self.output
    }
}

impl<F: Format<Out = Vec<u8>>> Snapshot<F> {
    /// Takes the bytes produced so far, to be written out after the lock is released: a
    /// write(2) can stall for tens of milliseconds when the kernel throttles dirty pages, and
    /// must not do so while clients wait for the keyspace.
    pub fn drain(&mut self) -> Vec<u8> {
        match (self.writer.as_mut(), self.output.as_mut()) {
            (Some(w), _) => std::mem::take(w.output_mut()),
            (None, Some(out)) => std::mem::take(out),
            (None, None) => Vec::new(),
        }
    }

    /// Writes every remaining chunk to `file` from the calling thread, taking the keyspace lock
    /// per chunk and writing with it released: the fallback for a server without a runtime
    /// (the server proper interleaves chunks with its event loop instead, see
    /// `cmd::persistence::write_snapshot`). `progress(keys written)` follows each chunk.
    /// Returns `Done` or `Interrupted` (the databases are thawed either way).
    pub fn write_to(
        &mut self,
        keyspace: &parking_lot::Mutex<Keyspace>,
        mut file: &std::fs::File,
        mut progress: impl FnMut(u64),
    ) -> io::Result<Progress> {
        loop {
            let step = self.write_chunk(&mut keyspace.lock())?;
            file.write_all(&self.drain())?;
            progress(self.keys_written);
            std::thread::sleep(self.pause());
            if step != Progress::More {
                return Ok(step);
            }
        }
    }
}

/// Writes the whole of `ks` at once (the caller holds the keyspace lock): a foreground save,
/// or a background one when the frozen view is taken by another snapshot. Paced by
/// `rdb-key-save-delay` in place, as Redis's SAVE is.
pub fn write_whole<F: Format>(ks: &Keyspace, mut format: F, aux: &Aux<'_>) -> io::Result<F::Out> {
    let pace = Pace::save();
    let mut written = 0u64;
    format.header(aux)?;
    for (index, db) in ks.dbs.iter().enumerate() {
        if db.keys.is_empty() {
            continue;
        }
        format.begin_db(index, db.keys.len(), db.expires.len())?;
        for (key, value) in db.keys.iter() {
            format.entry(key, value, db.expires.get(key).copied())?;
            pace.wait_one(written);
            written += 1;
        }
    }
    format.finish()
}

/// Ends every frozen view of `ks` (the save is done, failed or abandoned).
pub fn thaw(ks: &mut Keyspace) {
    ks.frozen = None;
    for db in &mut ks.dbs {
        db.keys.thaw();
        db.expires.thaw();
    }
    ks.thawed.notify_waiters();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::Value;
    use crate::persist::encode::WriteOptions;
    use crate::persist::{load, LoadOptions};
    use rand::{Rng, SeedableRng};

    fn aux() -> Aux<'static> {
        Aux { ctime: 0, used_mem: 0, repl: None, aof_base: false, functions: &[] }
    }

    fn dump(ks: &Keyspace) -> Vec<(usize, Vec<u8>, String, Option<i64>)> {
        let mut out = Vec::new();
        for (i, db) in ks.dbs.iter().enumerate() {
            for (k, v) in db.keys.iter() {
                out.push((i, k.to_vec(), format!("{v:?}"), db.expires.get(k).copied()));
            }
        }
        out.sort();
        out
    }

    /// The file holds the dataset as it was at the freeze, whatever writers did between
    /// chunks: sets, appends to lists, deletes, expiries, SWAPDB and FLUSHDB.
    #[test]
    fn chunks_interleaved_with_writes_save_the_freeze_instant() {
        for seed in 0..20u64 {
            let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
            let mut ks = Keyspace::new(4);
            for i in 0..5000 {
                let db = &mut ks.dbs[i % 3];
                let key = format!("key:{i}");
                db.keys.insert(key.as_bytes(), Value::string(format!("v{i}").as_bytes()));
                if i % 7 == 0 {
                    db.expires.insert(key.as_bytes(), 4_000_000_000_000 + i as i64);
                }
            }
            let t0 = dump(&ks);
            let writer = RdbWriter::new(Vec::new(), WriteOptions::default());
            let mut snap = Snapshot::freeze(&mut ks, writer, &aux()).unwrap();
            loop {
                for _ in 0..rng.gen_range(0..300) {
                    let db = rng.gen_range(0..4);
                    let key = format!("key:{}", rng.gen_range(0..8000));
                    let d = &mut ks.dbs[db];
                    match rng.gen_range(0..1000) {
                        0..=399 => {
                            d.keys.insert(key.as_bytes(), Value::string(b"changed"));
                            d.expires.remove(key.as_bytes());
                        }
                        400..=699 => {
                            d.remove(key.as_bytes());
                        }
                        700..=899 => {
                            if d.keys.contains_key(key.as_bytes()) {
                                d.expires.insert(key.as_bytes(), 5_000_000_000_000);
                            }
                        }
                        900..=997 => {
                            d.expires.remove(key.as_bytes());
                        }
                        998 => ks.dbs.swap(0, 2),
                        _ => d.clear(),
                    }
                }
                match snap.write_chunk(&mut ks).unwrap() {
                    Progress::More => {}
                    Progress::Done => break,
                    Progress::Interrupted => panic!("nothing replaced the dataset"),
                }
            }
            assert!(ks.dbs.iter().all(|d| d.keys.frozen_as().is_none()), "left frozen");
            let bytes = snap.into_output().expect("finished");
            let mut loaded = Keyspace::new(4);
            let options = LoadOptions { total_len: Some(bytes.len() as u64), ..Default::default() };
            load(&bytes[..], &mut loaded, &options).unwrap();
            assert_eq!(dump(&loaded), t0, "seed {seed}");
        }
    }

    #[test]
    fn replacing_the_dataset_interrupts_the_snapshot() {
        let mut ks = Keyspace::new(2);
        for i in 0..5000 {
            ks.dbs[0].keys.insert(format!("k{i}").as_bytes(), Value::string(b"v"));
        }
        let writer = RdbWriter::new(Vec::new(), WriteOptions::default());
        let mut snap = Snapshot::freeze(&mut ks, writer, &aux()).unwrap();
        assert_eq!(snap.write_chunk(&mut ks).unwrap(), Progress::More);
        ks.dbs = Keyspace::new(2).dbs; // a full sync's swap
        assert_eq!(snap.write_chunk(&mut ks).unwrap(), Progress::Interrupted);
    }
}
