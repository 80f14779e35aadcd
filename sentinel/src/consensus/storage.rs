//! The durable Raft store: the log file, the hard state and the state-machine snapshot.
//!
//! Files in `dir`:
//!
//! - `raft.log` — CRC-framed records ([`super::record`]). Each record body starts with a kind:
//!   - `1` *batch*: `has_hs:u8 [term:u64 vote:u64 commit:u64] n:u32 (len:u32 entry)*`, where an
//!     entry is a protobuf `eraftpb::Entry`. Appending entries that start at index `i` replaces
//!     every entry from `i` on (a new leader overwrites an old leader's uncommitted suffix).
//!     Entries and hard state travel in *one* record so they become durable together: a hard
//!     state whose commit points past the entries it was written with cannot exist on disk.
//!   - `2` *commit*: `commit:u64`, a commit-index advance from a light ready. It is written
//!     without fsync: losing it only makes a restart re-learn the commit from the leader.
//!   - `3` *conf state*: `index:u64 conf_state` (protobuf), the membership after applying the
//!     configuration entry at `index`. The first record of a new log bootstraps the voters.
//! - `snapshot` — `magic:"WRAFTSNP" version:u32 len:u32 crc:u32 body` where the body is a
//!   protobuf `eraftpb::Snapshot`: its metadata (index, term, conf state) and the state machine
//!   serialised at that index. It is replaced atomically (temp file, fsync, rename, fsync dir).
//!
//! Compaction writes a new snapshot, then rewrites `raft.log` with only the hard state and the
//! entries after the snapshot (again temp file + rename). A crash between the two leaves a log
//! whose early entries are covered by the snapshot; loading skips them.
//!
//! The in-memory half ([`Core`]) answers raft-rs's [`Storage`] calls; every mutation goes to
//! disk first. An I/O error while persisting is returned to the consensus loop, which stops the
//! process rather than acknowledge what is not on disk.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use protobuf::Message as PbMessage;
use raft::eraftpb::{ConfState, Entry, HardState, Snapshot, SnapshotMetadata};
use raft::{GetEntriesContext, RaftState, Storage, StorageError};

use super::record::{self, Reader, RecordError};

const KIND_BATCH: u8 = 1;
const KIND_COMMIT: u8 = 2;
const KIND_CONF: u8 = 3;
const SNAP_MAGIC: &[u8; 8] = b"WRAFTSNP";
const SNAP_VERSION: u32 = 1;

/// Why the store cannot be opened or written.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The operating system refused a read, write or fsync.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// A record could not be framed.
    #[error(transparent)]
    Record(#[from] RecordError),
    /// A record is well framed but its content makes no sense.
    #[error("{file}: invalid record at offset {offset}: {why}")]
    Invalid {
        /// The file.
        file: String,
        /// Byte offset of the record.
        offset: u64,
        /// What is wrong.
        why: String,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> StoreError + '_ {
    move |source| StoreError::Io { path: path.display().to_string(), source }
}

/// The in-memory image of the store. `entries[0].index == snapshot index + 1` always holds.
#[derive(Default, Clone)]
pub struct Core {
    hard_state: HardState,
    conf_state: ConfState,
    snapshot: Snapshot,
    entries: Vec<Entry>,
}

impl Core {
    fn snap_index(&self) -> u64 {
        self.snapshot.get_metadata().index
    }

    fn first(&self) -> u64 {
        self.snap_index() + 1
    }

    fn last(&self) -> u64 {
        self.snap_index() + self.entries.len() as u64
    }

    /// Appends entries, replacing any suffix they overlap. Entries already covered by the
    /// snapshot are ignored. Returns an error text if they would leave a gap.
    fn append(&mut self, entries: &[Entry]) -> Result<(), String> {
        let entries: Vec<&Entry> = entries.iter().filter(|e| e.index > self.snap_index()).collect();
        let Some(first) = entries.first() else { return Ok(()) };
        if first.index > self.last() + 1 {
            return Err(format!("entry {} leaves a gap after {}", first.index, self.last()));
        }
        self.entries.truncate((first.index - self.first()) as usize);
        for (i, e) in entries.iter().enumerate() {
            if e.index != first.index + i as u64 {
                return Err(format!("entry {} out of sequence", e.index));
            }
            self.entries.push((*e).clone());
        }
        Ok(())
    }

    fn install(&mut self, snapshot: Snapshot) {
        let meta = snapshot.get_metadata();
        self.hard_state.commit = self.hard_state.commit.max(meta.index);
        self.hard_state.term = self.hard_state.term.max(meta.term);
        self.conf_state = meta.get_conf_state().clone();
        // Keep entries that continue the snapshot's history, drop the rest.
        let keep = self
            .entries
            .iter()
            .position(|e| e.index == meta.index && e.term == meta.term)
            .map(|p| self.entries.split_off(p + 1));
        self.entries = keep.unwrap_or_default();
        self.snapshot = snapshot;
    }

    fn term_of(&self, idx: u64) -> raft::Result<u64> {
        if idx == self.snap_index() {
            return Ok(self.snapshot.get_metadata().term);
        }
        if idx < self.first() {
            return Err(raft::Error::Store(StorageError::Compacted));
        }
        if idx > self.last() {
            return Err(raft::Error::Store(StorageError::Unavailable));
        }
        Ok(self.entries[(idx - self.first()) as usize].term)
    }
}

/// The Raft store on disk, with its in-memory image.
pub struct DiskStorage {
    core: Core,
    dir: PathBuf,
    log_path: PathBuf,
    log: File,
}

impl DiskStorage {
    /// Opens (or creates) the store in `dir`. A new store starts with `voters` as its
    /// membership; an existing one keeps what it recorded. A torn tail is truncated with a log
    /// line; any other damage is an error naming the file and offset.
    pub fn open(dir: &Path, voters: &[u64]) -> Result<DiskStorage, StoreError> {
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        let log_path = dir.join("raft.log");
        let mut core = Core::default();
        let have_snapshot = match read_snapshot(&dir.join("snapshot"))? {
            Some(snap) => {
                core.install(snap);
                true
            }
            None => false,
        };
        if log_path.exists() {
            let data = std::fs::read(&log_path).map_err(io(&log_path))?;
            let scan = record::scan(&log_path, &data)?;
            for (offset, body) in &scan.records {
                replay(&mut core, body).map_err(|why| StoreError::Invalid {
                    file: log_path.display().to_string(),
                    offset: *offset,
                    why,
                })?;
            }
            if let Some(at) = scan.torn_at {
                tracing::warn!(file = %log_path.display(), offset = at, "truncating a torn tail of the raft log");
                let mut f =
                    OpenOptions::new().write(true).open(&log_path).map_err(io(&log_path))?;
                if at < record::HEADER_LEN as u64 {
                    // The header itself was torn: the file was never used; start it afresh.
                    f.set_len(0).map_err(io(&log_path))?;
                    f.write_all(&record::header()).map_err(io(&log_path))?;
                } else {
                    f.set_len(at).map_err(io(&log_path))?;
                }
                f.sync_all().map_err(io(&log_path))?;
            }
            if core.hard_state.commit > core.last() {
                return Err(StoreError::Invalid {
                    file: log_path.display().to_string(),
                    offset: 0,
                    why: format!(
                        "commit index {} is past the last entry {}",
                        core.hard_state.commit,
                        core.last()
                    ),
                });
            }
            let log = OpenOptions::new().append(true).open(&log_path).map_err(io(&log_path))?;
            return Ok(DiskStorage { core, dir: dir.to_path_buf(), log_path, log });
        }
        if !have_snapshot {
            core.conf_state.voters = voters.to_vec();
        }
        let mut contents = record::header();
        contents.extend(record::frame(&conf_record(0, &core.conf_state)));
        contents.extend(record::frame(&batch_record(Some(&core.hard_state), &core.entries)));
        write_atomically(dir, &log_path, &contents)?;
        let log = OpenOptions::new().append(true).open(&log_path).map_err(io(&log_path))?;
        Ok(DiskStorage { core, dir: dir.to_path_buf(), log_path, log })
    }

    /// The store's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The hard state as last persisted.
    pub fn hard_state(&self) -> HardState {
        self.core.hard_state.clone()
    }

    /// The current membership.
    pub fn conf_state(&self) -> ConfState {
        self.core.conf_state.clone()
    }

    /// The latest snapshot (metadata and state-machine data).
    pub fn latest_snapshot(&self) -> &Snapshot {
        &self.core.snapshot
    }

    /// Makes one Ready's snapshot, entries and hard state durable, in that order, with one
    /// fsync of the log (the snapshot file is fsynced by its own atomic replace).
    pub fn persist(
        &mut self,
        snapshot: Option<&Snapshot>,
        entries: &[Entry],
        hard_state: Option<&HardState>,
        sync: bool,
    ) -> Result<(), StoreError> {
        if let Some(snap) = snapshot.filter(|s| s.get_metadata().index > 0) {
            write_snapshot(&self.dir, snap)?;
            self.core.install(snap.clone());
            self.rewrite_log()?;
        }
        if entries.is_empty() && hard_state.is_none() {
            return Ok(());
        }
        let mut next = self.core.clone();
        next.append(entries).map_err(|why| StoreError::Invalid {
            file: self.log_path.display().to_string(),
            offset: 0,
            why,
        })?;
        if let Some(hs) = hard_state {
            next.hard_state = hs.clone();
        }
        self.write_record(&batch_record(hard_state, entries), sync)?;
        self.core = next;
        Ok(())
    }

    /// Records a commit-index advance (from a light ready). Not fsynced: see the module doc.
    pub fn set_commit(&mut self, commit: u64) -> Result<(), StoreError> {
        let mut body = vec![KIND_COMMIT];
        body.extend_from_slice(&commit.to_le_bytes());
        self.write_record(&body, false)?;
        self.core.hard_state.commit = commit;
        Ok(())
    }

    /// Records the membership after applying the configuration entry at `index`.
    pub fn set_conf_state(&mut self, index: u64, cs: ConfState) -> Result<(), StoreError> {
        self.write_record(&conf_record(index, &cs), true)?;
        self.core.conf_state = cs;
        Ok(())
    }

    /// Takes a snapshot of the state machine (`data`, applied up to `index`) and discards the
    /// log before it.
    pub fn compact(&mut self, index: u64, data: Vec<u8>) -> Result<(), StoreError> {
        if index <= self.core.snap_index() {
            return Ok(());
        }
        let term = self.core.term_of(index).map_err(|e| StoreError::Invalid {
            file: self.log_path.display().to_string(),
            offset: 0,
            why: format!("compacting at {index}: {e}"),
        })?;
        let mut snap = Snapshot::default();
        let meta = SnapshotMetadata {
            index,
            term,
            conf_state: Some(self.core.conf_state.clone()).into(),
            ..Default::default()
        };
        snap.set_metadata(meta);
        snap.data = data.into();
        write_snapshot(&self.dir, &snap)?;
        let drop = (index - self.core.snap_index()) as usize;
        self.core.entries.drain(..drop.min(self.core.entries.len()));
        self.core.snapshot = snap;
        self.rewrite_log()
    }

    fn rewrite_log(&mut self) -> Result<(), StoreError> {
        let mut contents = record::header();
        contents.extend(record::frame(&conf_record(self.core.snap_index(), &self.core.conf_state)));
        contents
            .extend(record::frame(&batch_record(Some(&self.core.hard_state), &self.core.entries)));
        write_atomically(&self.dir, &self.log_path, &contents)?;
        self.log =
            OpenOptions::new().append(true).open(&self.log_path).map_err(io(&self.log_path))?;
        Ok(())
    }

    fn write_record(&mut self, body: &[u8], sync: bool) -> Result<(), StoreError> {
        let framed = record::frame(body);
        self.log.write_all(&framed).map_err(io(&self.log_path))?;
        if sync {
            self.log.sync_data().map_err(io(&self.log_path))?;
        }
        Ok(())
    }
}

impl Storage for DiskStorage {
    fn initial_state(&self) -> raft::Result<RaftState> {
        Ok(RaftState::new(self.core.hard_state.clone(), self.core.conf_state.clone()))
    }

    fn entries(
        &self,
        low: u64,
        high: u64,
        max_size: impl Into<Option<u64>>,
        _context: GetEntriesContext,
    ) -> raft::Result<Vec<Entry>> {
        if low < self.core.first() {
            return Err(raft::Error::Store(StorageError::Compacted));
        }
        if high > self.core.last() + 1 || low > high {
            return Err(raft::Error::Store(StorageError::Unavailable));
        }
        let from = (low - self.core.first()) as usize;
        let to = (high - self.core.first()) as usize;
        let mut out = self.core.entries[from..to].to_vec();
        raft::util::limit_size(&mut out, max_size.into());
        Ok(out)
    }

    fn term(&self, idx: u64) -> raft::Result<u64> {
        self.core.term_of(idx)
    }

    fn first_index(&self) -> raft::Result<u64> {
        Ok(self.core.first())
    }

    fn last_index(&self) -> raft::Result<u64> {
        Ok(self.core.last())
    }

    fn snapshot(&self, request_index: u64, _to: u64) -> raft::Result<Snapshot> {
        // The stored snapshot is the compaction point, so it covers every entry a lagging
        // follower can no longer get from the log.
        if self.core.snap_index() < request_index || self.core.snap_index() == 0 {
            return Err(raft::Error::Store(StorageError::SnapshotTemporarilyUnavailable));
        }
        Ok(self.core.snapshot.clone())
    }
}

fn batch_record(hs: Option<&HardState>, entries: &[Entry]) -> Vec<u8> {
    let mut body = vec![KIND_BATCH];
    match hs {
        Some(hs) => {
            body.push(1);
            body.extend_from_slice(&hs.term.to_le_bytes());
            body.extend_from_slice(&hs.vote.to_le_bytes());
            body.extend_from_slice(&hs.commit.to_le_bytes());
        }
        None => body.push(0),
    }
    body.extend_from_slice(&(entries.len() as u32).to_le_bytes());
    for e in entries {
        let bytes = e.write_to_bytes().expect("encoding an in-memory entry cannot fail");
        body.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
        body.extend_from_slice(&bytes);
    }
    body
}

fn conf_record(index: u64, cs: &ConfState) -> Vec<u8> {
    let mut body = vec![KIND_CONF];
    body.extend_from_slice(&index.to_le_bytes());
    body.extend(cs.write_to_bytes().expect("encoding an in-memory conf state cannot fail"));
    body
}

/// Applies one record to the in-memory image while loading.
fn replay(core: &mut Core, body: &[u8]) -> Result<(), String> {
    let mut r = Reader::new(body);
    let short = || "record is too short".to_string();
    match r.u8().ok_or_else(short)? {
        KIND_BATCH => {
            let hs = match r.u8().ok_or_else(short)? {
                0 => None,
                1 => {
                    let term = r.u64().ok_or_else(short)?;
                    let vote = r.u64().ok_or_else(short)?;
                    let commit = r.u64().ok_or_else(short)?;
                    Some(HardState { term, vote, commit, ..Default::default() })
                }
                other => return Err(format!("bad hard-state flag {other}")),
            };
            let n = r.u32().ok_or_else(short)?;
            let mut entries = Vec::with_capacity((n as usize).min(4096));
            for _ in 0..n {
                let len = r.u32().ok_or_else(short)? as usize;
                let bytes = r.bytes(len).ok_or_else(short)?;
                let e = Entry::parse_from_bytes(bytes).map_err(|e| format!("bad entry: {e}"))?;
                entries.push(e);
            }
            core.append(&entries)?;
            if let Some(mut hs) = hs {
                hs.commit = hs.commit.max(core.snap_index());
                core.hard_state = hs;
            }
        }
        KIND_COMMIT => {
            let c = r.u64().ok_or_else(short)?;
            core.hard_state.commit = core.hard_state.commit.max(c);
        }
        KIND_CONF => {
            let index = r.u64().ok_or_else(short)?;
            let rest = r.bytes(body.len() - 9).ok_or_else(short)?;
            let cs =
                ConfState::parse_from_bytes(rest).map_err(|e| format!("bad conf state: {e}"))?;
            if index >= core.snap_index() {
                core.conf_state = cs;
            }
            return Ok(());
        }
        other => return Err(format!("unknown record kind {other}")),
    }
    if !r.is_empty() {
        return Err("trailing bytes in record".into());
    }
    Ok(())
}

fn read_snapshot(path: &Path) -> Result<Option<Snapshot>, StoreError> {
    let data = match std::fs::read(path) {
        Ok(d) => d,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io(path)(e)),
    };
    let invalid = |offset: u64, why: &str| StoreError::Invalid {
        file: path.display().to_string(),
        offset,
        why: why.to_string(),
    };
    let mut r = Reader::new(&data);
    if r.bytes(8) != Some(&SNAP_MAGIC[..]) {
        return Err(invalid(0, "not a warden snapshot (bad magic)"));
    }
    if r.u32() != Some(SNAP_VERSION) {
        return Err(invalid(8, "unsupported snapshot version"));
    }
    let len = r.u32().ok_or_else(|| invalid(12, "truncated header"))? as usize;
    let crc = r.u32().ok_or_else(|| invalid(16, "truncated header"))?;
    let body = r.bytes(len).ok_or_else(|| invalid(20, "truncated body"))?;
    if crc32fast::hash(body) != crc {
        return Err(invalid(20, "checksum mismatch"));
    }
    let snap =
        Snapshot::parse_from_bytes(body).map_err(|e| invalid(20, &format!("bad snapshot: {e}")))?;
    Ok(Some(snap))
}

fn write_snapshot(dir: &Path, snap: &Snapshot) -> Result<(), StoreError> {
    let body = snap.write_to_bytes().expect("encoding an in-memory snapshot cannot fail");
    let mut contents = SNAP_MAGIC.to_vec();
    contents.extend_from_slice(&SNAP_VERSION.to_le_bytes());
    contents.extend_from_slice(&(body.len() as u32).to_le_bytes());
    contents.extend_from_slice(&crc32fast::hash(&body).to_le_bytes());
    contents.extend_from_slice(&body);
    write_atomically(dir, &dir.join("snapshot"), &contents)
}

/// Temp file, fsync, rename, fsync the directory: the file is either the old or the new one.
fn write_atomically(dir: &Path, path: &Path, contents: &[u8]) -> Result<(), StoreError> {
    let tmp = path.with_extension("tmp");
    {
        let mut f = File::create(&tmp).map_err(io(&tmp))?;
        f.write_all(contents).map_err(io(&tmp))?;
        f.sync_all().map_err(io(&tmp))?;
    }
    std::fs::rename(&tmp, path).map_err(io(path))?;
    File::open(dir).and_then(|d| d.sync_all()).map_err(io(dir))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(index: u64, term: u64, data: &str) -> Entry {
        Entry { index, term, data: data.as_bytes().to_vec().into(), ..Default::default() }
    }

    fn hs(term: u64, vote: u64, commit: u64) -> HardState {
        HardState { term, vote, commit, ..Default::default() }
    }

    fn datas(s: &DiskStorage) -> Vec<String> {
        let (first, last) = (s.first_index().unwrap(), s.last_index().unwrap());
        s.entries(first, last + 1, None, GetEntriesContext::empty(false))
            .unwrap()
            .iter()
            .map(|e| String::from_utf8(e.data.to_vec()).unwrap())
            .collect()
    }

    #[test]
    fn entries_and_hard_state_survive_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = DiskStorage::open(dir.path(), &[1, 2, 3]).unwrap();
        assert_eq!(s.initial_state().unwrap().conf_state.voters, [1, 2, 3]);
        s.persist(None, &[entry(1, 1, "a"), entry(2, 1, "b")], Some(&hs(1, 2, 0)), true).unwrap();
        s.persist(None, &[entry(2, 2, "B"), entry(3, 2, "c")], Some(&hs(2, 3, 1)), true).unwrap();
        s.set_commit(3).unwrap();
        drop(s);
        let s = DiskStorage::open(dir.path(), &[9]).unwrap();
        assert_eq!(datas(&s), ["a", "B", "c"]);
        let state = s.initial_state().unwrap();
        assert_eq!(
            (state.hard_state.term, state.hard_state.vote, state.hard_state.commit),
            (2, 3, 3)
        );
        assert_eq!(state.conf_state.voters, [1, 2, 3], "the file, not the config, is the truth");
        assert_eq!(s.term(2).unwrap(), 2);
    }

    #[test]
    fn a_torn_tail_is_truncated_and_the_rest_kept() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = DiskStorage::open(dir.path(), &[1]).unwrap();
        s.persist(None, &[entry(1, 1, "a")], Some(&hs(1, 1, 1)), true).unwrap();
        s.persist(None, &[entry(2, 1, "b")], Some(&hs(1, 1, 2)), true).unwrap();
        drop(s);
        let path = dir.path().join("raft.log");
        let len = std::fs::metadata(&path).unwrap().len();
        // Cut the last record in half, as a crash during its write would.
        OpenOptions::new().write(true).open(&path).unwrap().set_len(len - 5).unwrap();
        let mut s = DiskStorage::open(dir.path(), &[1]).unwrap();
        assert_eq!(datas(&s), ["a"]);
        assert_eq!(s.hard_state().commit, 1);
        // Appending after the truncation works and survives another restart.
        s.persist(None, &[entry(2, 1, "b2")], Some(&hs(1, 1, 2)), true).unwrap();
        drop(s);
        assert_eq!(datas(&DiskStorage::open(dir.path(), &[1]).unwrap()), ["a", "b2"]);
    }

    #[test]
    fn corruption_in_the_middle_is_an_error_naming_file_and_offset() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = DiskStorage::open(dir.path(), &[1]).unwrap();
        s.persist(None, &[entry(1, 1, "aaaa")], Some(&hs(1, 1, 1)), true).unwrap();
        s.persist(None, &[entry(2, 1, "bbbb")], Some(&hs(1, 1, 2)), true).unwrap();
        drop(s);
        let path = dir.path().join("raft.log");
        let mut data = std::fs::read(&path).unwrap();
        let at = data.windows(4).position(|w| w == b"aaaa").unwrap();
        data[at] = b'X';
        std::fs::write(&path, &data).unwrap();
        let err = DiskStorage::open(dir.path(), &[1]).err().unwrap().to_string();
        assert!(err.contains("raft.log: corrupt record at offset"), "{err}");
        assert!(err.contains("checksum mismatch"), "{err}");
        // Nothing was changed on disk by the failed open.
        assert_eq!(std::fs::read(&path).unwrap(), data);
    }

    #[test]
    fn compaction_keeps_the_snapshot_and_the_later_entries() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = DiskStorage::open(dir.path(), &[1]).unwrap();
        let es: Vec<Entry> = (1..=5).map(|i| entry(i, 1, &format!("e{i}"))).collect();
        s.persist(None, &es, Some(&hs(1, 1, 5)), true).unwrap();
        s.compact(3, b"state@3".to_vec()).unwrap();
        assert_eq!(s.first_index().unwrap(), 4);
        assert_eq!(s.term(3).unwrap(), 1);
        assert!(matches!(s.term(2), Err(raft::Error::Store(StorageError::Compacted))));
        drop(s);
        let s = DiskStorage::open(dir.path(), &[1]).unwrap();
        assert_eq!(datas(&s), ["e4", "e5"]);
        let snap = s.snapshot(0, 0).unwrap();
        assert_eq!((snap.get_metadata().index, &snap.data[..]), (3, &b"state@3"[..]));
        assert_eq!(s.hard_state().commit, 5);
    }

    #[test]
    fn a_crash_between_the_snapshot_and_the_log_rewrite_loses_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = DiskStorage::open(dir.path(), &[1]).unwrap();
        let es: Vec<Entry> = (1..=6).map(|i| entry(i, 1, &format!("e{i}"))).collect();
        s.persist(None, &es, Some(&hs(1, 1, 6)), true).unwrap();
        let old_log = std::fs::read(dir.path().join("raft.log")).unwrap();
        s.compact(4, b"state@4".to_vec()).unwrap();
        drop(s);
        // As if the process died after the snapshot's rename but before the log's.
        std::fs::write(dir.path().join("raft.log"), old_log).unwrap();
        let s = DiskStorage::open(dir.path(), &[1]).unwrap();
        assert_eq!((s.first_index().unwrap(), s.last_index().unwrap()), (5, 6));
        assert_eq!(datas(&s), ["e5", "e6"]);
        assert_eq!(s.snapshot(0, 0).unwrap().get_metadata().index, 4);
    }

    #[test]
    fn installing_a_received_snapshot_replaces_the_log() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = DiskStorage::open(dir.path(), &[1, 2]).unwrap();
        s.persist(None, &[entry(1, 1, "old")], Some(&hs(1, 0, 0)), true).unwrap();
        let mut snap = Snapshot::default();
        snap.mut_metadata().index = 10;
        snap.mut_metadata().term = 3;
        snap.mut_metadata().mut_conf_state().voters = vec![1, 2];
        snap.data = b"sm".to_vec().into();
        s.persist(Some(&snap), &[], Some(&hs(3, 0, 10)), true).unwrap();
        drop(s);
        let s = DiskStorage::open(dir.path(), &[1, 2]).unwrap();
        assert_eq!((s.first_index().unwrap(), s.last_index().unwrap()), (11, 10));
        assert_eq!(s.hard_state().commit, 10);
        assert_eq!(s.term(10).unwrap(), 3);
    }

    #[test]
    fn a_damaged_snapshot_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = DiskStorage::open(dir.path(), &[1]).unwrap();
        s.persist(None, &[entry(1, 1, "a")], Some(&hs(1, 1, 1)), true).unwrap();
        s.compact(1, b"state".to_vec()).unwrap();
        drop(s);
        let path = dir.path().join("snapshot");
        let mut data = std::fs::read(&path).unwrap();
        let n = data.len();
        data[n - 1] ^= 1;
        std::fs::write(&path, data).unwrap();
        let err = DiskStorage::open(dir.path(), &[1]).err().unwrap().to_string();
        assert!(err.contains("snapshot: invalid record at offset 20: checksum mismatch"), "{err}");
    }
}

#[cfg(test)]
mod robustness {
    use rand::{Rng, SeedableRng};

    use super::*;

    /// A log whose records are well framed but whose contents are random (a bug, or a file
    /// from elsewhere with valid CRCs) opens with an error or loads, never panics.
    #[test]
    fn well_framed_garbage_never_panics() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(11);
        for _ in 0..300 {
            let dir = tempfile::tempdir().unwrap();
            let mut data = record::header();
            for _ in 0..rng.gen_range(1..5) {
                let len = rng.gen_range(0..64);
                let mut body: Vec<u8> = (0..len).map(|_| rng.gen()).collect();
                if let Some(first) = body.first_mut() {
                    *first = rng.gen_range(0..5);
                }
                data.extend(record::frame(&body));
            }
            std::fs::write(dir.path().join("raft.log"), &data).unwrap();
            let _ = DiskStorage::open(dir.path(), &[1]);
        }
    }
}
