//! Loading the AOF at startup: the base file (an RDB, or commands), then every incremental
//! file in sequence order, each command run as Redis runs its AOF client (no replies, keys
//! whose TTL passed are not expired while loading).
//!
//! A torn tail — the last file ends in the middle of a command, or inside a MULTI that never
//! reached EXEC — is what a crash mid-write leaves: with `aof-load-truncated yes` the file is
//! cut back to the last complete command with a warning. Anything else that does not parse
//! stops startup with an error naming the file and the byte offset.

use std::path::Path;

use bytes::BytesMut;
use common::resp::{parse_request, RequestLimits};
use tracing::warn;

use super::manifest::Manifest;
use crate::client::{ClientKind, ClientState};
use crate::server::{unix_ms, Shared};

/// Why the AOF could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum AofError {
    /// A file could not be read.
    #[error("can't read '{path}': {source}")]
    Io {
        /// The file.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The manifest is malformed.
    #[error("bad AOF manifest '{path}': {why}")]
    Manifest {
        /// The manifest file.
        path: String,
        /// What is wrong.
        why: String,
    },
    /// A file's contents are corrupt.
    #[error("bad file format reading the append only file '{path}' at offset {offset}: {why}")]
    Corrupt {
        /// The file.
        path: String,
        /// Byte offset of the bad command.
        offset: u64,
        /// What is wrong.
        why: String,
    },
}

/// What loading found.
#[derive(Debug, Default)]
pub struct Loaded {
    /// The manifest (None when there is no AOF yet).
    pub manifest: Option<Manifest>,
    /// Commands executed from incremental files.
    pub commands: u64,
}

/// The manifest in `dir` (the AOF directory), if there is one.
pub fn read_manifest(dir: &Path, prefix: &str) -> Result<Option<Manifest>, AofError> {
    let path = super::manifest_file(dir, prefix);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(AofError::Io { path: path.display().to_string(), source }),
    };
    Manifest::parse(&text)
        .map(Some)
        .map_err(|why| AofError::Manifest { path: path.display().to_string(), why })
}

/// Loads `dir` (the AOF directory) into the keyspace. No manifest: nothing to load.
pub fn load(
    shared: &Shared,
    dir: &Path,
    prefix: &str,
    truncate_ok: bool,
) -> Result<Loaded, AofError> {
    let Some(manifest) = read_manifest(dir, prefix)? else { return Ok(Loaded::default()) };
    let mut client = ClientState::pseudo(u64::MAX, ClientKind::Master);
    let mut commands = 0;
    if let Some(base) = manifest.base() {
        let file = dir.join(&base.name);
        let head = read(&file)?;
        if head.starts_with(b"REDIS") {
            let mut ks = shared.keyspace.lock();
            let progress = Some(&shared.loading_loaded);
            let corrupt = |why: String| AofError::Corrupt {
                path: file.display().to_string(),
                offset: 0,
                why,
            };
            let summary = crate::persist::load_file(&file, &mut ks, Some(unix_ms()), progress)
                .map_err(|e| corrupt(e.to_string()))?;
            *shared.functions.lock() =
                crate::script::library::Libraries::from_loaded(&summary.functions)
                    .map_err(corrupt)?;
        } else {
            commands += run_file(shared, &mut client, &file, head, false, truncate_ok)?;
        }
    }
    let incrs = manifest.incrs();
    for (i, entry) in incrs.iter().enumerate() {
        let file = dir.join(&entry.name);
        let bytes = read(&file)?;
        let last = i + 1 == incrs.len();
        commands += run_file(shared, &mut client, &file, bytes, last, truncate_ok)?;
    }
    Ok(Loaded { manifest: Some(manifest), commands })
}

fn read(path: &Path) -> Result<Vec<u8>, AofError> {
    std::fs::read(path).map_err(|source| AofError::Io { path: path.display().to_string(), source })
}

/// Runs every command of one file. Returns how many ran.
fn run_file(
    shared: &Shared,
    client: &mut ClientState,
    path: &Path,
    bytes: Vec<u8>,
    last: bool,
    truncate_ok: bool,
) -> Result<u64, AofError> {
    let total = bytes.len() as u64;
    let mut buf = BytesMut::from(&bytes[..]);
    let limits = RequestLimits { max_bulk_len: usize::MAX / 2, unauthenticated: false };
    let mut count = 0;
    // The offset of the last point where no transaction was open: a torn tail is cut there.
    let mut safe = 0u64;
    let corrupt = |offset: u64, why: String| AofError::Corrupt {
        path: path.display().to_string(),
        offset,
        why,
    };
    loop {
        let offset = total - buf.len() as u64;
        if buf.is_empty() {
            break;
        }
        if buf[0] != b'*' {
            return Err(corrupt(offset, "expected '*'".into()));
        }
        let argv = match parse_request(&mut buf, limits) {
            Ok(Some(argv)) => {
                let consumed = total - buf.len() as u64 - offset;
                shared.loading_loaded.fetch_add(consumed, std::sync::atomic::Ordering::Relaxed);
                argv
            }
            Ok(None) => {
                // The file ends inside a command.
                return truncate(path, last, truncate_ok, safe, offset, "truncated command");
            }
            Err(e) => return Err(corrupt(offset, e.to_string())),
        };
        if argv.is_empty() {
            continue;
        }
        let outcome = crate::dispatch::call(shared, client, &argv, unix_ms());
        if let Some(common::resp::Frame::Error(text)) = &outcome.reply {
            // Redis stops on an unknown command: the file is not an AOF it can read.
            if crate::dispatch::resolve(&argv).is_err() {
                return Err(corrupt(offset, String::from_utf8_lossy(text).into_owned()));
            }
            let source = crate::unexpected_error::Source::AofLoading;
            crate::unexpected_error::report(shared, source, text, outcome.resolved);
        }
        count += 1;
        if client.multi.is_none() {
            safe = total - buf.len() as u64;
        }
    }
    if client.multi.is_some() {
        client.multi = None;
        return truncate(path, last, truncate_ok, safe, total, "MULTI without EXEC");
    }
    Ok(count)
}

/// A torn tail: cut the last file back to `safe` if allowed, else fail.
fn truncate(
    path: &Path,
    last: bool,
    truncate_ok: bool,
    safe: u64,
    offset: u64,
    why: &str,
) -> Result<u64, AofError> {
    let err = |why: String| AofError::Corrupt { path: path.display().to_string(), offset, why };
    if !last {
        return Err(err(format!("{why} (not the last file)")));
    }
    if !truncate_ok {
        return Err(err(format!("{why}; start with aof-load-truncated yes to cut the torn tail")));
    }
    warn!(file = %path.display(), offset = safe, reason = why, "AOF loaded anyway because aof-load-truncated is enabled: truncating the torn tail");
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(|source| AofError::Io { path: path.display().to_string(), source })?;
    f.set_len(safe)
        .and_then(|_| f.sync_all())
        .map_err(|source| AofError::Io { path: path.display().to_string(), source })?;
    Ok(0)
}
