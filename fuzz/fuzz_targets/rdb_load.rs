//! Feeds arbitrary bytes to the RDB loader and to RESTORE's payload decoder: neither may panic,
//! allocate without bound, or loop; every error must name an offset inside the input.
//!
//! Seeds: any `dump.rdb` (ours or Redis's) in `fuzz/corpus/rdb_load/`. A checksum mismatch is
//! only detected at the end of the file, so mutated files exercise the whole parser.

#![no_main]

use libfuzzer_sys::fuzz_target;
use node::db::Keyspace;
use node::persist::{self, payload, LoadOptions};

fuzz_target!(|data: &[u8]| {
    for total_len in [Some(data.len() as u64), None] {
        let mut ks = Keyspace::new(16);
        let options = LoadOptions { expired_before: None, total_len };
        if let Err(e) = persist::load(data, &mut ks, &options) {
            assert!(e.offset() <= data.len() as u64, "{e}");
        }
    }
    // The same bytes as the body of a DUMP payload with a valid footer.
    let mut p = data.to_vec();
    p.extend_from_slice(&persist::RDB_VERSION.to_le_bytes());
    let crc = persist::crc64::crc64(0, &p);
    p.extend_from_slice(&crc.to_le_bytes());
    let _ = payload::restore(b"key", &p);
});
