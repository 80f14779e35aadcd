//! Taking over a Redis 6 (or older) single-file AOF: `dir/<appendfilename>` with no AOF
//! directory. As Redis 7 does, the file becomes the base of a new manifest and moves into the
//! AOF directory, and loading goes on as usual. Without this, a node pointed at an old data
//! directory would start empty and then write an empty base over its real history.

use std::path::Path;

use tracing::info;

use super::load::AofError;
use super::manifest::{Entry, FileType, Manifest};

/// Migrates `data_dir/prefix` into `aof_dir` if it is an old-style AOF that was not migrated
/// yet. Returns whether it did. Redis's three cases: the AOF directory is missing; its
/// manifest is missing or lists nothing; or the manifest lists only a base named `prefix` that
/// is not in the directory (a migration stopped between writing the manifest and the rename).
pub fn migrate_old_style(data_dir: &Path, aof_dir: &Path, prefix: &str) -> Result<bool, AofError> {
    let old = data_dir.join(prefix);
    if !old.is_file() {
        return Ok(false);
    }
    let manifest_path = super::manifest_file(aof_dir, prefix);
    let io = |path: &Path| {
        let path = path.display().to_string();
        move |source| AofError::Io { path, source }
    };
    let existing = super::load::read_manifest(aof_dir, prefix)?;
    let needed = match &existing {
        None => true,
        Some(m) if m.base().is_none() && m.incrs().is_empty() => true,
        Some(m) => {
            m.incrs().is_empty()
                && m.base().is_some_and(|b| b.name == prefix)
                && !aof_dir.join(prefix).exists()
        }
    };
    if !needed {
        return Ok(false);
    }
    std::fs::create_dir_all(aof_dir).map_err(io(aof_dir))?;
    let manifest = Manifest {
        entries: vec![Entry { name: prefix.to_string(), seq: 1, kind: FileType::Base }],
    };
    // The manifest first, then the move: a crash in between is the third case above.
    let name = format!("{prefix}.manifest");
    super::write_atomically(aof_dir, &name, manifest.render().as_bytes())
        .map_err(io(&manifest_path))?;
    std::fs::rename(&old, aof_dir.join(prefix)).map_err(io(&old))?;
    crate::persist::dumpfile::sync_dir(aof_dir).map_err(io(aof_dir))?;
    crate::persist::dumpfile::sync_dir(data_dir).map_err(io(data_dir))?;
    info!(
        "Successfully migrated an old-style AOF file ({prefix}) into the AOF directory ({})",
        aof_dir.display()
    );
    Ok(true)
}
