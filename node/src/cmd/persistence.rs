//! SAVE, and the synchronous save SHUTDOWN SAVE performs.
//!
//! BGSAVE (a point-in-time snapshot that neither blocks writers nor doubles memory) and save
//! points are not implemented yet, so `save <seconds> <changes>` is still refused at startup.

use std::sync::atomic::Ordering;

use bytes::Bytes;
use common::resp::Frame;
use tracing::{info, warn};

use crate::cmd::flags::*;
use crate::cmd::{cmd, CommandSpec};
use crate::error::{CmdResult, CommandError};
use crate::exec::Ctx;
use crate::persist::{dumpfile, Aux, ReplAux, WriteOptions};

/// The persistence commands.
pub static COMMANDS: &[CommandSpec] = &[
    cmd("save", 1, ADMIN | NOSCRIPT | NO_MULTI, (0, 0, 0), save),
    cmd("bgrewriteaof", 1, ADMIN | NOSCRIPT | NO_MULTI, (0, 0, 0), bgrewriteaof),
];

/// BGREWRITEAOF. The snapshot is taken under the keyspace lock (no fork), then written; the
/// reply comes once the new base is durable.
fn bgrewriteaof(ctx: &mut Ctx<'_>, _: &[Bytes]) -> CmdResult {
    if !ctx.server.aof_on.load(Ordering::Relaxed) {
        // Redis would write a one-off AOF; without the AOF on there is nothing to rewrite here.
        return Err(CommandError::err("BGREWRITEAOF needs appendonly yes in warden-node"));
    }
    let shared = ctx.server.self_arc();
    std::thread::spawn(move || {
        if let Err(e) = crate::aof::rewrite(&shared) {
            warn!(cause = %e, "AOF rewrite failed");
        }
    });
    Ok(Frame::simple("Background append only file rewriting started"))
}

/// Counters INFO persistence reports.
#[derive(Debug, Default, Clone)]
pub struct PersistStats {
    /// Successful saves since start (`rdb_saves`).
    pub saves: u64,
    /// The last save failed (`rdb_last_bgsave_status:err`).
    pub last_failed: bool,
    /// Keys loaded at startup (`rdb_last_load_keys_loaded`).
    pub keys_loaded: u64,
    /// Keys dropped at startup because they had expired (`rdb_last_load_keys_expired`).
    pub keys_expired: u64,
}

/// Saves the keyspace to `dir/dbfilename` now, holding the keyspace lock (like Redis's SAVE,
/// it blocks every client for the duration). Updates LASTSAVE, the dirty counter and INFO.
pub fn save_now(ctx: &mut Ctx<'_>) -> Result<(), std::io::Error> {
    let (dir, dbfilename, options) = {
        let config = ctx.server.config.read();
        let options = WriteOptions {
            compression: config.get("rdbcompression") == Some("yes"),
            checksum: config.get("rdbchecksum") == Some("yes"),
        };
        (
            config.settings.dir.clone(),
            config.get("dbfilename").unwrap_or("dump.rdb").to_string(),
            options,
        )
    };
    let master_db = ctx.server.master_db.load(Ordering::Relaxed);
    let repl = ctx.server.repl.lock().save_info(master_db);
    let aux = Aux {
        ctime: ctx.now_ms / 1000,
        used_mem: crate::alloc::in_use() as u64,
        repl: repl.as_ref().map(|(db, id, offset)| ReplAux { stream_db: *db, id, offset: *offset }),
        aof_base: false,
    };
    match dumpfile::save(ctx.exec.ks, &dir, &dbfilename, &aux, options) {
        Ok(saved) => {
            ctx.exec.ks.dirty = 0;
            ctx.server.lastsave.store(ctx.now_ms / 1000, Ordering::Relaxed);
            let mut stats = ctx.server.persist.lock();
            stats.saves += 1;
            stats.last_failed = false;
            info!(path = %saved.path.display(), bytes = saved.bytes, took_ms = saved.took.as_millis() as u64, "DB saved on disk");
            Ok(())
        }
        Err(e) => {
            ctx.server.persist.lock().last_failed = true;
            warn!(cause = %e, dir = %dir.display(), "failed saving the DB");
            Err(e)
        }
    }
}

fn save(ctx: &mut Ctx<'_>, _: &[Bytes]) -> CmdResult {
    match save_now(ctx) {
        Ok(()) => Ok(Frame::ok()),
        // Redis answers a bare `-ERR` and logs the reason.
        Err(_) => Err(CommandError::raw("ERR")),
    }
}
