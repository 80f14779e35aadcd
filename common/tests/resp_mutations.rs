//! The RESP parsers never panic and never claim more bytes than they were given, whatever the
//! input: thousands of deterministic mutations of valid requests and replies. (The cargo-fuzz
//! targets in fuzz/ explore further; this runs in every CI build.)

use bytes::BytesMut;
use common::resp::{decode, parse_request, Frame, Protocol, RequestLimits};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

fn seeds() -> Vec<Vec<u8>> {
    let reply = Frame::Array(vec![
        Frame::bulk(b"hello"),
        Frame::Integer(-42),
        Frame::Map(vec![(Frame::bulk(b"k"), Frame::Double(1.5))]),
        Frame::Null,
        Frame::Set(vec![Frame::Boolean(true)]),
        Frame::error("ERR x"),
    ]);
    vec![
        b"*3\r\n$3\r\nSET\r\n$3\r\nkey\r\n$5\r\nvalue\r\n".to_vec(),
        b"SET a \"b c\" 'd\\'e' \"\\x41\"\r\n".to_vec(),
        b"*1\r\n$4\r\nPING\r\nPING\r\n*0\r\n".to_vec(),
        reply.to_bytes(Protocol::Resp3),
        reply.to_bytes(Protocol::Resp2),
    ]
}

fn mutate(rng: &mut StdRng, input: &[u8]) -> Vec<u8> {
    let mut out = input.to_vec();
    for _ in 0..=rng.gen_range(0..4) {
        if out.is_empty() {
            out.push(b'*');
        }
        let at = rng.gen_range(0..out.len());
        match rng.gen_range(0..6) {
            0 => out[at] = rng.gen::<u8>(),
            1 => out[at] = b"*$:+-\r\n0123456789-_%~>#,!=(|"[rng.gen_range(0..27)],
            2 => {
                out.remove(at);
            }
            3 => out.insert(at, rng.gen::<u8>()),
            4 => out.truncate(at),
            _ => {
                let digits = format!("{}", rng.gen::<i64>() >> rng.gen_range(0..60));
                out.splice(at..at, digits.bytes());
            }
        }
    }
    out
}

#[test]
fn request_parser_survives_mutations() {
    let mut rng = StdRng::seed_from_u64(0x9e37_79b9_7f4a_7c15);
    let limits = RequestLimits { max_bulk_len: 1 << 20, unauthenticated: false };
    for seed in seeds() {
        for _ in 0..20_000 {
            let input = mutate(&mut rng, &seed);
            let mut buf = BytesMut::from(&input[..]);
            // Parse until it needs more bytes or reports an error; every step must consume.
            for _ in 0..input.len() + 1 {
                let before = buf.len();
                match parse_request(&mut buf, limits) {
                    Ok(Some(_)) => assert!(
                        buf.len() < before,
                        "a parsed request must consume input: {input:?}"
                    ),
                    Ok(None) | Err(_) => break,
                }
            }
        }
    }
}

#[test]
fn reply_decoder_survives_mutations() {
    let mut rng = StdRng::seed_from_u64(0x2545_f491_4f6c_dd1d);
    for seed in seeds() {
        for _ in 0..20_000 {
            let input = mutate(&mut rng, &seed);
            if let Ok(Some((_, used))) = decode(&input) {
                assert!(used <= input.len(), "decoder claims {used} of {} bytes", input.len());
            }
        }
    }
}

#[test]
fn deep_nesting_is_refused_not_recursed() {
    let mut input = Vec::new();
    for _ in 0..100_000 {
        input.extend_from_slice(b"*1\r\n");
    }
    input.extend_from_slice(b":1\r\n");
    assert!(decode(&input).is_err());
}
