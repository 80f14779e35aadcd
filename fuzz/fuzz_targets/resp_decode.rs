//! Feeds arbitrary bytes to the reply decoder (used on replica links): it may refuse them, but
//! never panic, recurse without bound, or claim bytes it was not given; what it decodes must
//! re-encode to bytes it decodes again.

#![no_main]

use common::resp::{decode, Protocol};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(Some((frame, used))) = decode(data) {
        assert!(used <= data.len());
        let again = frame.to_bytes(Protocol::Resp3);
        assert!(matches!(decode(&again), Ok(Some(_))), "re-encoded frame does not decode: {frame:?}");
    }
});
