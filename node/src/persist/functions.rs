//! Function libraries in RDB files and FUNCTION DUMP payloads.
//!
//! Each library is the opcode `0xF5` (`RDB_OPCODE_FUNCTION2`) followed by its source (shebang
//! included) as an RDB string, compressed like any other string. In an RDB file the libraries
//! come after the AUX fields and before the first database, as Redis 7.0 writes them; a
//! FUNCTION DUMP payload is just the libraries, then the RDB version and a CRC-64, as a key's
//! DUMP payload ends.

use bytes::Bytes;

use super::crc64::crc64;
use super::encode::ValueEncoder;
use super::input::Input;
use super::{opcode, payload, RDB_VERSION};

/// Appends every library as Redis writes them (`rdbSaveFunctions`).
pub fn write(enc: &mut ValueEncoder, out: &mut Vec<u8>, sources: &[Bytes]) {
    for source in sources {
        out.push(opcode::FUNCTION2);
        enc.string(out, source);
    }
}

/// FUNCTION DUMP's payload.
pub fn dump(sources: &[Bytes], compression: bool) -> Vec<u8> {
    let mut out = Vec::new();
    write(&mut ValueEncoder::new(compression), &mut out, sources);
    out.extend_from_slice(&RDB_VERSION.to_le_bytes());
    let crc = crc64(0, &out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

/// The library sources of a FUNCTION RESTORE payload, or Redis's error text (without `ERR `).
pub fn restore(data: &[u8]) -> Result<Vec<Bytes>, String> {
    if !payload::verify(data) {
        return Err("DUMP payload version or checksum are wrong".into());
    }
    let body = &data[..data.len() - 10];
    let mut input = Input::new(body, Some(body.len() as u64));
    let mut sources = Vec::new();
    while input.offset() < body.len() as u64 {
        match input.u8().map_err(|_| "can not read data type".to_string())? {
            opcode::FUNCTION2 => {
                let mut source = Vec::new();
                input
                    .string(&mut source)
                    .map_err(|_| "failed loading the given functions payload".to_string())?;
                sources.push(Bytes::from(source));
            }
            opcode::FUNCTION_PRE_GA => return Err("Pre-GA function format not supported".into()),
            _ => return Err("given type is not a function".into()),
        }
    }
    Ok(sources)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_round_trip_and_bad_ones_are_refused() {
        let sources = vec![
            Bytes::from_static(b"#!lua name=a\nredis.register_function('a', function() end)"),
            Bytes::from(format!("#!lua name=b\n{}", "-- padding\n".repeat(20))),
        ];
        let payload = dump(&sources, true);
        assert_eq!(restore(&payload), Ok(sources.clone()));
        assert_eq!(restore(&dump(&[], true)), Ok(vec![]));
        let mut bad = payload.clone();
        bad[3] ^= 1;
        assert_eq!(restore(&bad), Err("DUMP payload version or checksum are wrong".into()));
        let key_payload = super::payload::dump(&crate::db::Value::string(b"x"), true);
        assert_eq!(restore(&key_payload), Err("given type is not a function".into()));
    }

    #[test]
    fn dump_matches_redis_bytes() {
        // `FUNCTION DUMP` of Redis 7.0.15 holding only this library (a string too short to
        // compress): 0xF5, the length, the source, version 10, CRC-64.
        let source = b"#!lua name=lib2\nredis.register_function(1, function() end)";
        let out = dump(&[Bytes::from_static(source)], true);
        assert_eq!(out[0], 0xF5);
        assert_eq!(out[1] as usize, source.len());
        assert_eq!(&out[2..2 + source.len()], source);
        assert_eq!(&out[2 + source.len()..4 + source.len()], &[10, 0]);
    }
}
