//! The AOF loader against damaged directories: thousands of deterministic mutations of a valid
//! manifest, base file (RDB or commands) and incremental file. Loading may refuse them, but it
//! never panics, every refusal names a byte offset inside the file it read, and with
//! `aof-load-truncated yes` it only ever cuts the last file back to a prefix of itself.
//! (`fuzz/fuzz_targets/aof_load.rs` runs the same checks under cargo-fuzz.)

use std::path::Path;
use std::sync::Arc;

use common::config::parse_text;
use common::shutdown;
use node::aof::load::{self, AofError};
use node::config::Config;
use node::persist::encode::{write_keyspace, Aux, WriteOptions};
use node::server::{unix_ms, Shared};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const MANIFEST: &str = "appendonly.aof.manifest";
const BASE_RDB: &str = "appendonly.aof.1.base.rdb";
const BASE_AOF: &str = "appendonly.aof.1.base.aof";
const INCR: &str = "appendonly.aof.1.incr.aof";

fn shared() -> Arc<Shared> {
    let lines = parse_text("save \"\"\n", "test").expect("config parses");
    let config = Config::from_lines(None, &lines).expect("config is valid");
    let (trigger, _stop) = shutdown::channel();
    Shared::new(config, trigger)
}

fn command(args: &[&str]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        out.extend_from_slice(format!("${}\r\n{}\r\n", a.len(), a).as_bytes());
    }
    out
}

/// Commands of every type, a transaction, a second database and expiries: what a real
/// incremental file holds.
fn incr_commands() -> Vec<u8> {
    let far = (unix_ms() + 3_600_000).to_string();
    let script: Vec<Vec<&str>> = vec![
        vec!["SELECT", "0"],
        vec!["SET", "s", "value"],
        vec!["SET", "n", "12345"],
        vec!["INCRBY", "n", "7"],
        vec!["RPUSH", "l", "a", "b", "c"],
        vec!["LPOP", "l"],
        vec!["HSET", "h", "f1", "v1", "f2", "v2"],
        vec!["SADD", "set", "1", "2", "3"],
        vec!["SADD", "sset", "x", "y"],
        vec!["ZADD", "z", "1.5", "m1", "2", "m2"],
        vec!["MULTI"],
        vec!["INCR", "counter"],
        vec!["SET", "in-tx", "yes"],
        vec!["EXEC"],
        vec!["PEXPIREAT", "s", &far],
        vec!["SELECT", "3"],
        vec!["SET", "other-db", "x"],
        vec!["DEL", "missing"],
    ];
    script.iter().flat_map(|c| command(c)).collect()
}

/// An RDB base written from the state the commands build.
fn rdb_base() -> Vec<u8> {
    let s = shared();
    let mut client = node::client::ClientState::pseudo(1, node::client::ClientKind::Master);
    let mut buf = bytes::BytesMut::from(&incr_commands()[..]);
    let limits = common::resp::RequestLimits { max_bulk_len: 1 << 20, unauthenticated: false };
    while let Some(argv) = common::resp::parse_request(&mut buf, limits).expect("valid") {
        node::dispatch::call(&s, &mut client, &argv, unix_ms());
    }
    let ks = s.keyspace.lock();
    let aux = Aux { ctime: 0, used_mem: 0, repl: None, aof_base: true, functions: &[] };
    write_keyspace(Vec::new(), &ks, &aux, WriteOptions::default()).expect("in-memory write")
}

fn manifest(base: &str) -> String {
    format!("file {base} seq 1 type b\nfile {INCR} seq 1 type i\n")
}

/// One to four byte-level changes: flips, deletions, insertions of protocol-significant bytes,
/// truncation.
fn mutate(rng: &mut StdRng, seed: &[u8]) -> Vec<u8> {
    let mut v = seed.to_vec();
    for _ in 0..1 + rng.gen_range(0..4) {
        if v.is_empty() {
            v.push(rng.gen::<u8>());
        }
        let at = rng.gen_range(0..v.len());
        match rng.gen_range(0..6) {
            0 => v[at] ^= 1 << rng.gen_range(0..8),
            1 => v[at] = b"*$\r\n-:0123456789 \"'"[rng.gen_range(0..19)],
            2 => v.truncate(at),
            3 => {
                let end = (at + 1 + rng.gen_range(0..16)).min(v.len());
                v.drain(at..end);
            }
            4 => {
                let end = (at + 1 + rng.gen_range(0..32)).min(v.len());
                let piece = v[at..end].to_vec();
                let to = rng.gen_range(0..v.len());
                v.splice(to..to, piece);
            }
            _ => v[at] = rng.gen::<u8>(),
        }
    }
    v
}

/// Writes the directory, loads it and checks what the loader promises. Returns whether it
/// loaded.
fn check(dir: &Path, manifest: &[u8], base: (&str, &[u8]), incr: &[u8], truncate_ok: bool) -> bool {
    for entry in std::fs::read_dir(dir).unwrap() {
        std::fs::remove_file(entry.unwrap().path()).unwrap();
    }
    std::fs::write(dir.join(MANIFEST), manifest).unwrap();
    std::fs::write(dir.join(base.0), base.1).unwrap();
    std::fs::write(dir.join(INCR), incr).unwrap();
    let s = shared();
    match load::load(&s, dir, "appendonly.aof", truncate_ok) {
        Ok(_) => {
            let after = std::fs::read(dir.join(INCR)).unwrap();
            assert!(incr.starts_with(&after), "loading changed the incremental file beyond a cut");
            if !truncate_ok {
                assert_eq!(after, incr, "a load without aof-load-truncated changed the file");
            }
            true
        }
        Err(AofError::Corrupt { path, offset, why }) => {
            let len = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
            assert!(offset <= len, "{path}: offset {offset} past the end ({len} bytes): {why}");
            false
        }
        Err(AofError::Manifest { why, .. }) => {
            assert!(!why.is_empty());
            false
        }
        Err(AofError::Io { .. }) => false, // the manifest named a file that does not exist
    }
}

/// A mutation run that only ever loaded (or only ever failed) exercised one path only.
fn assert_both_outcomes(loaded: usize, runs: usize) {
    assert!(loaded > 0 && loaded < runs, "{loaded} of {runs} mutated directories loaded");
}

#[test]
fn the_unmutated_directory_loads_in_both_base_forms() {
    let dir = tempfile::tempdir().unwrap();
    for (name, base) in [(BASE_RDB, rdb_base()), (BASE_AOF, incr_commands())] {
        for entry in std::fs::read_dir(dir.path()).unwrap() {
            std::fs::remove_file(entry.unwrap().path()).unwrap();
        }
        std::fs::write(dir.path().join(MANIFEST), manifest(name)).unwrap();
        std::fs::write(dir.path().join(name), &base).unwrap();
        std::fs::write(dir.path().join(INCR), incr_commands()).unwrap();
        let s = shared();
        let loaded = load::load(&s, dir.path(), "appendonly.aof", false).expect("loads");
        assert!(loaded.commands > 0);
        let ks = s.keyspace.lock();
        // The base and the incr both add 7 to n and pop one element from l.
        assert_eq!(ks.dbs[0].keys.len(), 9, "keys in db 0 after {name}");
        assert_eq!(ks.dbs[3].keys.len(), 1);
    }
}

#[test]
fn mutated_incremental_files_are_refused_with_an_offset_or_cut_back() {
    let dir = tempfile::tempdir().unwrap();
    let seed = incr_commands();
    let base = rdb_base();
    let mut rng = StdRng::seed_from_u64(0x5eed_a0f1);
    let mut loaded = 0;
    for i in 0..1500 {
        let incr = mutate(&mut rng, &seed);
        let m = manifest(BASE_RDB);
        loaded += check(dir.path(), m.as_bytes(), (BASE_RDB, &base), &incr, i % 2 == 0) as usize;
    }
    assert_both_outcomes(loaded, 1500);
}

#[test]
fn mutated_base_files_never_panic_the_loader() {
    let dir = tempfile::tempdir().unwrap();
    let incr = incr_commands();
    let rdb = rdb_base();
    let mut rng = StdRng::seed_from_u64(0xba5e_f11e);
    let mut loaded = 0;
    for i in 0..1500 {
        let (name, seed) = if i % 2 == 0 { (BASE_RDB, &rdb) } else { (BASE_AOF, &incr) };
        let base = mutate(&mut rng, seed);
        loaded += check(dir.path(), manifest(name).as_bytes(), (name, &base), &incr, true) as usize;
    }
    assert_both_outcomes(loaded, 1500);
}

#[test]
fn mutated_manifests_are_refused_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let incr = incr_commands();
    let rdb = rdb_base();
    let seed = manifest(BASE_RDB);
    let mut rng = StdRng::seed_from_u64(0x3a71_fe57);
    let mut loaded = 0;
    for _ in 0..1500 {
        let text = mutate(&mut rng, seed.as_bytes());
        loaded += check(dir.path(), &text, (BASE_RDB, &rdb), &incr, true) as usize;
    }
    assert_both_outcomes(loaded, 1500);
}
