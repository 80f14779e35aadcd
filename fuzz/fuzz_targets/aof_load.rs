//! Feeds arbitrary bytes to the AOF loader as the last incremental file of an appendonlydir
//! whose base is empty commands, and as the manifest itself: loading may refuse them, but never
//! panic, every refusal names an offset inside the file, and `aof-load-truncated yes` only ever
//! cuts the file back to a prefix of itself.
//!
//! Seeds: incremental files from any `appendonlydir/` (ours or Redis's) in
//! `fuzz/corpus/aof_load/`. `node/tests/aof_mutations.rs` runs the same checks on stable Rust.

#![no_main]

use std::sync::{Arc, OnceLock};

use common::config::parse_text;
use common::shutdown;
use libfuzzer_sys::fuzz_target;
use node::aof::load::{self, AofError};
use node::aof::manifest::Manifest;
use node::config::Config;
use node::server::Shared;

const MANIFEST: &str = "file appendonly.aof.1.base.aof seq 1 type b\nfile appendonly.aof.1.incr.aof seq 1 type i\n";

fn shared() -> Arc<Shared> {
    let lines = parse_text("save \"\"\n", "fuzz").expect("config parses");
    let (trigger, _stop) = shutdown::channel();
    Shared::new(Config::from_lines(None, &lines).expect("config is valid"), trigger)
}

fuzz_target!(|data: &[u8]| {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    let dir = DIR.get_or_init(|| tempfile::tempdir().expect("temp dir")).path();
    let _ = Manifest::parse(&String::from_utf8_lossy(data));

    std::fs::write(dir.join("appendonly.aof.manifest"), MANIFEST).unwrap();
    std::fs::write(dir.join("appendonly.aof.1.base.aof"), b"").unwrap();
    let incr = dir.join("appendonly.aof.1.incr.aof");
    std::fs::write(&incr, data).unwrap();
    match load::load(&shared(), dir, "appendonly.aof", true) {
        Ok(_) => {
            let after = std::fs::read(&incr).unwrap();
            assert!(data.starts_with(&after), "the loader changed more than a torn tail");
        }
        Err(AofError::Corrupt { offset, .. }) => assert!(offset <= data.len() as u64),
        Err(e) => panic!("unexpected error for a well-formed directory: {e}"),
    }
});
