//! The dump file on disk (`dir`/`dbfilename`): saving it atomically and loading it at startup.
//!
//! Invariant: the file named `dbfilename` is always a complete snapshot. A save writes
//! `temp-<pid>.rdb` in the same directory, flushes and fsyncs it, renames it over the old file,
//! then fsyncs the directory so the rename itself survives a crash. A failed save removes its
//! temp file and leaves the previous snapshot untouched. A file that fails to load stops the
//! server before anything could overwrite it.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::{load_file, write_keyspace, Aux, LoadSummary, RdbError, WriteOptions};
use crate::db::Keyspace;

/// What a successful save produced.
#[derive(Debug, Clone)]
pub struct Saved {
    /// The snapshot's final path.
    pub path: PathBuf,
    /// Its size in bytes.
    pub bytes: u64,
    /// How long writing and syncing took.
    pub took: Duration,
}

/// Writes `ks` to `dir/dbfilename` atomically (see the module invariant).
pub fn save(
    ks: &Keyspace,
    dir: &Path,
    dbfilename: &str,
    aux: &Aux<'_>,
    options: WriteOptions,
) -> io::Result<Saved> {
    begin_save(ks, dir, dbfilename, aux, options)?.finish()
}

/// Writes an already serialised file (a replication transfer, an AOF base or manifest) to
/// `dir/name` atomically.
pub fn write_bytes(dir: &Path, name: &str, bytes: &[u8]) -> io::Result<Saved> {
    begin(dir, name, |mut file| {
        file.write_all(bytes)?;
        Ok(file)
    })?
    .finish()
}

/// A file written to its temp file but not yet durable or in place (BGSAVE: the bytes go to
/// the kernel while the keyspace lock is held; the fsync and rename happen off it).
pub struct PendingSave {
    file: File,
    tmp: PathBuf,
    path: PathBuf,
    dir: PathBuf,
    started: Instant,
}

/// Writes `ks` to a temp file in `dir` (flushed, not fsynced).
pub fn begin_save(
    ks: &Keyspace,
    dir: &Path,
    dbfilename: &str,
    aux: &Aux<'_>,
    options: WriteOptions,
) -> io::Result<PendingSave> {
    begin(dir, dbfilename, |file| {
        let out = write_keyspace(BufWriter::with_capacity(1 << 16, file), ks, aux, options)?;
        out.into_inner().map_err(|e| e.into_error())
    })
}

/// An empty temp file in `dir` that will become `dir/name` (a BGSAVE, or a replica's
/// transfer from its master, writes into it chunk by chunk).
pub fn begin_empty(dir: &Path, name: &str) -> io::Result<PendingSave> {
    begin(dir, name, Ok)
}

/// The first half of every atomic replace: `write` fills a fresh temp file in `dir`; on
/// failure the temp file is removed.
fn begin(
    dir: &Path,
    name: &str,
    write: impl FnOnce(File) -> io::Result<File>,
) -> io::Result<PendingSave> {
    let started = Instant::now();
    // Unique per save: a replication transfer may be written while SAVE runs.
    static SAVES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = SAVES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let tmp = dir.join(format!("temp-{}-{n}.rdb", std::process::id()));
    match File::create(&tmp).and_then(write) {
        Ok(file) => {
            Ok(PendingSave { file, tmp, path: dir.join(name), dir: dir.to_path_buf(), started })
        }
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            Err(e)
        }
    }
}

impl PendingSave {
    /// Makes the file durable and puts it in place: fsync, rename over the old file, fsync
    /// the directory so the rename itself survives a crash.
    pub fn finish(self) -> io::Result<Saved> {
        if let Err(e) = self.sync() {
            self.discard();
            return Err(e);
        }
        self.publish()
    }

    /// The temp file, to write into.
    pub fn file(&self) -> &File {
        &self.file
    }

    /// A handle to read the file back, which follows it through `publish` (it names the file
    /// itself, not the path: a later save replacing the path leaves it reading this one).
    pub fn reader(&self) -> io::Result<File> {
        File::open(&self.tmp)
    }

    /// fsyncs the temp file (the slow half, done before any lock is taken for [`publish`]).
    ///
    /// [`publish`]: PendingSave::publish
    pub fn sync(&self) -> io::Result<()> {
        self.file.sync_all()
    }

    /// Removes the temp file: the save is abandoned or failed.
    pub fn discard(self) {
        let _ = std::fs::remove_file(&self.tmp);
    }

    /// Renames the (synced) temp file over the old file and fsyncs the directory.
    pub fn publish(self) -> io::Result<Saved> {
        let result = (|| {
            let bytes = self.file.metadata()?.len();
            std::fs::rename(&self.tmp, &self.path)?;
            sync_dir(&self.dir)?;
            Ok(bytes)
        })();
        match result {
            Ok(bytes) => Ok(Saved { path: self.path, bytes, took: self.started.elapsed() }),
            Err(e) => {
                let _ = std::fs::remove_file(&self.tmp);
                Err(e)
            }
        }
    }
}

/// Fsyncs a directory, so a rename or a new file in it survives a crash.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Why the dump file could not be loaded at startup.
#[derive(Debug, thiserror::Error)]
#[error("can't load '{}': {source}", path.display())]
pub struct LoadError {
    /// The file.
    pub path: PathBuf,
    /// What went wrong, with the byte offset.
    pub source: RdbError,
}

/// Loads `dir/dbfilename` into `ks` if it exists, dropping keys that expired before `now_ms`
/// (as a master does). `Ok(None)` when there is no file.
pub fn load_at_startup(
    ks: &mut Keyspace,
    dir: &Path,
    dbfilename: &str,
    now_ms: i64,
    progress: Option<&std::sync::atomic::AtomicU64>,
) -> Result<Option<LoadSummary>, LoadError> {
    let path = dir.join(dbfilename);
    if !path.exists() {
        return Ok(None);
    }
    load_file(&path, ks, Some(now_ms), progress)
        .map(Some)
        .map_err(|source| LoadError { path, source })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::Value;

    fn aux() -> Aux<'static> {
        Aux { ctime: 0, used_mem: 0, repl: None, aof_base: false, functions: &[] }
    }

    #[test]
    fn save_then_load_round_trips_and_leaves_no_temp_file() {
        let dir = tempfile::tempdir().unwrap();
        let mut ks = Keyspace::new(16);
        ks.dbs[0].keys.insert(b"a", Value::string(b"1"));
        ks.dbs[3].keys.insert(b"b", Value::string(b"two"));
        ks.dbs[3].expires.insert(b"b", i64::MAX / 2);
        let saved = save(&ks, dir.path(), "dump.rdb", &aux(), WriteOptions::default()).unwrap();
        assert!(saved.bytes > 0);
        let names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(names, ["dump.rdb"]);
        let mut loaded = Keyspace::new(16);
        let summary =
            load_at_startup(&mut loaded, dir.path(), "dump.rdb", 0, None).unwrap().unwrap();
        assert_eq!(summary.keys_loaded, 2);
        assert!(loaded.dbs[3].expires.get(b"b").is_some());
    }

    #[test]
    fn a_failed_save_keeps_the_previous_snapshot() {
        let dir = tempfile::tempdir().unwrap();
        let mut ks = Keyspace::new(1);
        ks.dbs[0].keys.insert(b"k", Value::string(b"v1"));
        save(&ks, dir.path(), "dump.rdb", &aux(), WriteOptions::default()).unwrap();
        let before = std::fs::read(dir.path().join("dump.rdb")).unwrap();
        // A directory where the file should be: the rename fails after the temp file was written.
        let err = save(&ks, dir.path(), "", &aux(), WriteOptions::default());
        assert!(err.is_err());
        assert_eq!(std::fs::read(dir.path().join("dump.rdb")).unwrap(), before);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1, "the temp file was removed");
    }

    #[test]
    fn a_missing_file_is_not_an_error_and_a_corrupt_one_names_the_offset() {
        let dir = tempfile::tempdir().unwrap();
        let mut ks = Keyspace::new(16);
        assert!(load_at_startup(&mut ks, dir.path(), "dump.rdb", 0, None).unwrap().is_none());
        std::fs::write(dir.path().join("dump.rdb"), b"REDIS0010\xfa").unwrap();
        let err =
            load_at_startup(&mut ks, dir.path(), "dump.rdb", 0, None).unwrap_err().to_string();
        assert!(err.contains("dump.rdb") && err.contains("offset"), "{err}");
    }
}
