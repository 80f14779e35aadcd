//! DUMP payloads: one value in RDB form, as DUMP returns and RESTORE takes it.
//!
//! # Layout
//!
//! ```text
//! <u8 RDB value type> <value encoding> <u16 LE RDB version> <u64 LE CRC-64 of all bytes before>
//! ```
//!
//! The version is ours ([`RDB_VERSION`], 10); like Redis 7.0 we refuse payloads of a newer
//! version (7.2's are 11), and accept older ones. The value encoding is the one the RDB file
//! writer uses, so a payload is byte-identical to Redis's for a value Redis encodes the same way.

use std::cell::RefCell;

use super::crc64::crc64;
use super::encode::ValueEncoder;
use super::{decode, RdbError, RDB_VERSION};
use crate::db::Value;

/// Why RESTORE cannot use a payload.
#[derive(Debug)]
pub enum PayloadError {
    /// Too short, a newer version, or a wrong checksum (`DUMP payload version or checksum are
    /// wrong`).
    Footer,
    /// The value does not decode (`Bad data format`).
    BadData(RdbError),
    /// A valid value of a type warden-node does not hold (module values).
    Unsupported(String),
}

thread_local! {
    /// DUMP runs on connection threads; the LZF table (512 KB) is kept per thread, not per call.
    static ENCODER: RefCell<ValueEncoder> = RefCell::new(ValueEncoder::new(true));
}

/// The DUMP payload of `value`; `compression` is `rdbcompression`.
pub fn dump(value: &Value, compression: bool) -> Vec<u8> {
    let mut out = vec![ValueEncoder::type_byte(value)];
    ENCODER.with(|enc| {
        let mut enc = enc.borrow_mut();
        enc.set_compression(compression);
        enc.reset();
        enc.value(&mut out, value);
    });
    out.extend_from_slice(&RDB_VERSION.to_le_bytes());
    let crc = crc64(0, &out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

/// `verifyDumpPayload`: at least the 10-byte footer, a version we read, a matching CRC-64.
pub fn verify(payload: &[u8]) -> bool {
    if payload.len() < 10 {
        return false;
    }
    let footer = payload.len() - 10;
    let version = u16::from_le_bytes([payload[footer], payload[footer + 1]]);
    if version > RDB_VERSION {
        return false;
    }
    let stored = u64::from_le_bytes(payload[footer + 2..].try_into().expect("8 bytes"));
    crc64(0, &payload[..payload.len() - 8]) == stored
}

/// Verifies `payload` and decodes its value, with the encodings Redis would choose on load.
pub fn restore(key: &[u8], payload: &[u8]) -> Result<Value, PayloadError> {
    if !verify(payload) {
        return Err(PayloadError::Footer);
    }
    decode::value_from_payload(key, &payload[..payload.len() - 10]).map_err(|e| match e {
        RdbError::Unsupported { what, .. } => PayloadError::Unsupported(what),
        other => PayloadError::BadData(other),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn string_payload_matches_redis() {
        // `DUMP` of "hello" in Redis 7.0.15 (tests/compat/keys.redis).
        let expected = b"\x00\x05hello\n\x00cr\xdfve4 \n";
        assert_eq!(dump(&Value::string(b"hello"), true), expected);
        assert!(verify(expected));
        let v = restore(b"k", expected).expect("valid");
        assert!(matches!(v, Value::Str { ref bytes, .. } if bytes.as_slice() == b"hello"));
    }

    #[test]
    fn bad_payloads_are_refused() {
        assert!(matches!(restore(b"k", b"garbage"), Err(PayloadError::Footer)));
        assert!(matches!(restore(b"k", b""), Err(PayloadError::Footer)));
        let mut p = dump(&Value::string(b"hello"), true);
        p[2] ^= 1;
        assert!(matches!(restore(b"k", &p), Err(PayloadError::Footer)));
        // A valid footer around a truncated value.
        let mut body = vec![0u8, 0x05, b'h'];
        body.extend_from_slice(&10u16.to_le_bytes());
        let crc = crc64(0, &body);
        body.extend_from_slice(&crc.to_le_bytes());
        assert!(matches!(restore(b"k", &body), Err(PayloadError::BadData(_))));
        // Version 11 (Redis 7.2) is refused.
        let mut v11 = vec![0u8, 0x01, b'x'];
        v11.extend_from_slice(&11u16.to_le_bytes());
        let crc = crc64(0, &v11);
        v11.extend_from_slice(&crc.to_le_bytes());
        assert!(!verify(&v11));
    }
}
