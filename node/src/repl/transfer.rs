//! Where a full sync's snapshot is kept while it arrives from the master, chosen by
//! `repl-diskless-load`:
//! - `disabled` (the default): on disk. The bytes go to a temp file in `dir` as they arrive
//!   (fdatasynced every 8 MB, so the final fsync stays short), which becomes the dump file
//!   and is then loaded from disk. Memory holds none of the transfer, only the data.
//! - `swapdb`: in memory, loaded from there; no dump file is written.
//! - `on-empty-db`: in memory when the dataset is empty, on disk otherwise.
//!
//! In every mode the data already held keeps being served until the new data is loaded, and
//! is then swapped out at once (Redis does this only with `swapdb`; with the others it empties
//! the dataset first and answers `-LOADING` meanwhile).

use std::fs::File;
use std::io::{self, BufReader, Write};
use std::path::Path;

use crate::persist::dumpfile::{self, PendingSave};

/// Bytes written between two fdatasyncs of the temp file (Redis's replica uses the same).
const SYNC_EVERY: u64 = 8 << 20;
/// Bytes gathered in memory before a write to the temp file (done off the event loop).
const WRITE_CHUNK: usize = 1 << 20;

/// `repl-diskless-load`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoadMode {
    /// Transfer to disk, then load.
    Disabled,
    /// Transfer to memory only when there is no data yet.
    OnEmptyDb,
    /// Transfer to memory.
    Swapdb,
}

impl LoadMode {
    /// Parses the setting's canonical word.
    pub fn parse(word: &str) -> LoadMode {
        match word {
            "swapdb" => LoadMode::Swapdb,
            "on-empty-db" => LoadMode::OnEmptyDb,
            _ => LoadMode::Disabled,
        }
    }

    /// Whether the transfer goes to disk, given whether the dataset is empty.
    pub fn to_disk(self, dataset_empty: bool) -> bool {
        match self {
            LoadMode::Disabled => true,
            LoadMode::OnEmptyDb => !dataset_empty,
            LoadMode::Swapdb => false,
        }
    }
}

/// A snapshot being received.
pub struct Transfer {
    /// What has arrived and is not yet on disk (all of it, in memory mode).
    pending: Vec<u8>,
    disk: Option<Disk>,
    /// Every byte received so far.
    received: u64,
}

struct Disk {
    save: PendingSave,
    written: u64,
    synced: u64,
}

/// A complete snapshot, ready to load.
pub enum Received {
    /// Held in memory.
    Memory(Vec<u8>),
    /// The dump file it became.
    File(std::path::PathBuf),
}

impl Transfer {
    /// An empty transfer to memory.
    pub fn in_memory(expected: Option<usize>) -> Transfer {
        Transfer {
            pending: Vec::with_capacity(expected.unwrap_or(1 << 20)),
            disk: None,
            received: 0,
        }
    }

    /// An empty transfer to a temp file that becomes `dir/dbfilename`.
    pub fn on_disk(dir: &Path, dbfilename: &str) -> io::Result<Transfer> {
        let save = dumpfile::begin_empty(dir, dbfilename)?;
        let disk = Disk { save, written: 0, synced: 0 };
        Ok(Transfer { pending: Vec::with_capacity(WRITE_CHUNK), disk: Some(disk), received: 0 })
    }

    /// Bytes received so far.
    pub fn len(&self) -> u64 {
        self.received
    }

    /// Nothing received yet.
    pub fn is_empty(&self) -> bool {
        self.received == 0
    }

    /// Whether the bytes received end with `mark` (the EOF mark of a diskless transfer; it
    /// arrives within the last write, which is still pending).
    pub fn ends_with(&self, mark: &[u8]) -> bool {
        self.pending.ends_with(mark)
    }

    /// Appends arrived bytes; on disk, a full chunk is written off the event loop.
    pub async fn push(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.received += bytes.len() as u64;
        self.pending.extend_from_slice(bytes);
        if self.disk.is_some() && self.pending.len() >= WRITE_CHUNK + 64 {
            // Keep the last 64 bytes back, so an EOF mark is always found in `pending`.
            let keep = self.pending.split_off(self.pending.len() - 64);
            let chunk = std::mem::replace(&mut self.pending, keep);
            self.write(chunk).await?;
        }
        Ok(())
    }

    /// Completes the transfer without its last `trailer` bytes (the EOF mark).
    pub async fn finish(mut self, trailer: usize) -> io::Result<Received> {
        let keep = self.pending.len() - trailer.min(self.pending.len());
        self.pending.truncate(keep);
        if self.disk.is_none() {
            return Ok(Received::Memory(std::mem::take(&mut self.pending)));
        }
        let rest = std::mem::take(&mut self.pending);
        self.write(rest).await?;
        let disk = self.disk.take().expect("a disk transfer");
        let saved = tokio::task::spawn_blocking(move || disk.save.finish())
            .await
            .map_err(io::Error::other)??;
        Ok(Received::File(saved.path))
    }

    async fn write(&mut self, chunk: Vec<u8>) -> io::Result<()> {
        let disk = self.disk.as_mut().expect("a disk transfer");
        let file = disk.save.file().try_clone()?;
        let len = chunk.len() as u64;
        let sync = disk.written + len - disk.synced >= SYNC_EVERY;
        tokio::task::spawn_blocking(move || {
            (&file).write_all(&chunk)?;
            if sync {
                file.sync_data()?;
            }
            io::Result::Ok(())
        })
        .await
        .map_err(io::Error::other)??;
        disk.written += len;
        if sync {
            disk.synced = disk.written;
        }
        Ok(())
    }
}

impl Drop for Transfer {
    /// An abandoned transfer leaves no temp file behind.
    fn drop(&mut self) {
        if let Some(disk) = self.disk.take() {
            disk.save.discard();
        }
    }
}

impl Received {
    /// Loads it into `ks` (blocking: call off the event loop).
    pub fn load(
        &self,
        ks: &mut crate::db::Keyspace,
    ) -> Result<crate::persist::LoadSummary, crate::persist::RdbError> {
        match self {
            Received::Memory(bytes) => {
                let options = crate::persist::LoadOptions {
                    total_len: Some(bytes.len() as u64),
                    ..Default::default()
                };
                crate::persist::load(&bytes[..], ks, &options)
            }
            Received::File(path) => {
                let file = File::open(path)
                    .map_err(|source| crate::persist::RdbError::Io { offset: 0, source })?;
                let total_len = file.metadata().ok().map(|m| m.len());
                let options = crate::persist::LoadOptions { total_len, ..Default::default() };
                crate::persist::load(BufReader::with_capacity(1 << 16, file), ks, &options)
            }
        }
    }
}
