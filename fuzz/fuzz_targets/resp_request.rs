//! Feeds arbitrary bytes to the server's request parser, as a client would send them: it may
//! refuse them, but never panic, never report a request without consuming input, and never
//! stop consuming a buffer it could parse.

#![no_main]

use bytes::BytesMut;
use common::resp::{parse_request, RequestLimits};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for unauthenticated in [false, true] {
        let limits = RequestLimits { max_bulk_len: 1 << 20, unauthenticated };
        let mut buf = BytesMut::from(data);
        loop {
            let before = buf.len();
            match parse_request(&mut buf, limits) {
                Ok(Some(_)) => assert!(buf.len() < before, "a request was parsed without consuming input"),
                Ok(None) | Err(_) => break,
            }
        }
    }
});
