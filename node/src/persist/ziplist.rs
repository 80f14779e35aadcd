//! Read-only support for the compact encodings of older RDB files: ziplists (types 10, 12, 13
//! and the nodes of type 14, written by Redis 3.2 to 6.2) and zipmaps (type 9, Redis 2.4).
//! Redis 7.0 still loads them, converting to listpacks; so do we. We never write them.
//!
//! # Ziplist layout
//!
//! ```text
//! <u32 LE total bytes> <u32 LE offset of the last entry> <u16 LE count, 65535 = unknown>
//! <entry>* 0xFF
//! entry = <prevlen: 1 byte if < 254, else 0xFE + u32 LE> <encoding> <data>
//! ```
//!
//! | encoding                 | data                                          |
//! |--------------------------|-----------------------------------------------|
//! | `00LLLLLL`               | string of up to 63 bytes                      |
//! | `01LLLLLL LLLLLLLL`      | string, 14-bit **big-endian** length          |
//! | `10______` + u32 **BE**  | string with a 32-bit length                   |
//! | `0xC0` / `0xD0` / `0xE0` | int16 / int32 / int64, little-endian          |
//! | `0xF0` / `0xFE`          | int24 / int8                                  |
//! | `0xF1`..=`0xFD`          | the integer `(encoding & 0x0F) - 1`, no data  |
//!
//! # Zipmap layout
//!
//! `<u8 count, 254 = unknown> { <len> field <len> <u8 free> value <free bytes> }* 0xFF`, where
//! `<len>` is one byte below 254, or `0xFE` + u32 LE.
//!
//! Validation is Redis's deep one (`ziplistValidateIntegrity`, `zipmapValidateIntegrity`):
//! sizes match, every entry stays in bounds, each `prevlen` equals the previous entry's size,
//! the tail offset points at the last entry, and the header count (unless unknown) is right.

use super::Elem;

const HEADER: usize = 10;

/// The size of an entry's encoding header and its data length, or an error.
fn encoding(p: &[u8]) -> Result<(usize, usize), &'static str> {
    let short = "ziplist entry runs past the end";
    let b = *p.first().ok_or(short)?;
    Ok(match b >> 6 {
        0 => (1, (b & 0x3F) as usize),
        1 => (2, ((b & 0x3F) as usize) << 8 | *p.get(1).ok_or(short)? as usize),
        2 => {
            let len = p.get(1..5).ok_or(short)?;
            (5, u32::from_be_bytes([len[0], len[1], len[2], len[3]]) as usize)
        }
        _ => match b {
            0xC0 => (1, 2),
            0xD0 => (1, 4),
            0xE0 => (1, 8),
            0xF0 => (1, 3),
            0xFE => (1, 1),
            0xF1..=0xFD => (1, 0),
            _ => return Err("invalid ziplist entry encoding"),
        },
    })
}

fn decode(enc: u8, data: &[u8]) -> Elem<'_> {
    match enc {
        0xC0 => Elem::Int(i16::from_le_bytes([data[0], data[1]]) as i64),
        0xD0 => Elem::Int(i32::from_le_bytes([data[0], data[1], data[2], data[3]]) as i64),
        0xE0 => Elem::Int(i64::from_le_bytes(data.try_into().expect("8 data bytes"))),
        0xF0 => Elem::Int((i32::from_le_bytes([0, data[0], data[1], data[2]]) >> 8) as i64),
        0xFE => Elem::Int(data[0] as i8 as i64),
        0xF1..=0xFD => Elem::Int((enc & 0x0F) as i64 - 1),
        _ => Elem::Str(data),
    }
}

/// Validates a ziplist and calls `each` on every element in order. Returns the count.
pub fn parse<'a>(
    zl: &'a [u8],
    mut each: impl FnMut(Elem<'a>) -> Result<(), &'static str>,
) -> Result<usize, &'static str> {
    if zl.len() < HEADER + 1 {
        return Err("ziplist shorter than its header");
    }
    let word = |at: usize| u32::from_le_bytes([zl[at], zl[at + 1], zl[at + 2], zl[at + 3]]);
    if word(0) as usize != zl.len() {
        return Err("ziplist size header does not match the blob");
    }
    let last = zl.len() - 1;
    if zl[last] != 0xFF {
        return Err("ziplist does not end with its terminator");
    }
    let tail = word(4) as usize;
    if tail > last {
        return Err("ziplist tail offset is out of range");
    }
    let declared = u16::from_le_bytes([zl[8], zl[9]]);
    let mut p = HEADER;
    let mut prev_size = 0usize;
    let mut prev_start = None;
    let mut count = 0usize;
    while zl[p] != 0xFF {
        let start = p;
        let (prevlen, prevlen_size) = if zl[p] < 254 {
            (zl[p] as usize, 1)
        } else {
            let b = zl.get(p + 1..p + 5).ok_or("ziplist entry runs past the end")?;
            (u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize, 5)
        };
        if prevlen != prev_size {
            return Err("ziplist prevlen does not match the previous entry");
        }
        p += prevlen_size;
        let (header, len) = encoding(zl.get(p..last).ok_or("ziplist entry runs past the end")?)?;
        let data_start = p + header;
        let end = data_start
            .checked_add(len)
            .filter(|&e| e <= last)
            .ok_or("ziplist entry runs past the end")?;
        each(decode(zl[p], &zl[data_start..end]))?;
        prev_size = end - start;
        prev_start = Some(start);
        p = end;
        count += 1;
    }
    if p != last {
        return Err("ziplist terminator before the end");
    }
    if prev_start.is_some_and(|s| s != tail) {
        return Err("ziplist tail offset does not point at the last entry");
    }
    if declared != u16::MAX && declared as usize != count {
        return Err("ziplist element count does not match its header");
    }
    Ok(count)
}

/// Validates a zipmap and calls `each` on every (field, value) pair. Returns the pair count.
pub fn parse_zipmap<'a>(
    zm: &'a [u8],
    mut each: impl FnMut(&'a [u8], &'a [u8]) -> Result<(), &'static str>,
) -> Result<usize, &'static str> {
    let short = "zipmap entry runs past the end";
    if zm.len() < 2 || zm[zm.len() - 1] != 0xFF {
        return Err("zipmap does not end with its terminator");
    }
    let last = zm.len() - 1;
    let length = |p: usize| -> Result<(usize, usize), &'static str> {
        if zm[p] < 254 {
            Ok((zm[p] as usize, 1))
        } else {
            let b = zm.get(p + 1..p + 5).filter(|_| p + 5 <= last).ok_or(short)?;
            Ok((u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize, 5))
        }
    };
    let mut p = 1;
    let mut count = 0usize;
    while zm[p] != 0xFF {
        let (flen, s) = length(p)?;
        let field_start = p + s;
        let field_end = field_start.checked_add(flen).filter(|&e| e < last).ok_or(short)?;
        let (vlen, s) = length(field_end)?;
        let free_at = field_end + s;
        let free = *zm.get(free_at).filter(|_| free_at < last).ok_or(short)? as usize;
        let value_start = free_at + 1;
        let value_end = value_start.checked_add(vlen).filter(|&e| e <= last).ok_or(short)?;
        p = value_end.checked_add(free).filter(|&e| e <= last).ok_or(short)?;
        each(&zm[field_start..field_end], &zm[value_start..value_end])?;
        count += 1;
    }
    if count == 0 {
        return Err("zipmap is empty");
    }
    if zm[0] != 254 && zm[0] as usize != count {
        return Err("zipmap element count does not match its header");
    }
    Ok(count)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A ziplist with `a`, 300 × `x`, 12, -2, 70000 and 1 << 40, assembled by hand.
    fn sample() -> Vec<u8> {
        let long = vec![b'x'; 300];
        let entries: Vec<Vec<u8>> = vec![
            [&[0x01u8][..], b"a"].concat(),
            [&[0x41u8, 0x2C][..], &long].concat(),
            vec![0xFD],
            vec![0xFE, 0xFE],
            [&[0xF0u8][..], &70000i32.to_le_bytes()[..3]].concat(),
            [&[0xE0u8][..], &(1i64 << 40).to_le_bytes()].concat(),
        ];
        let mut body = Vec::new();
        let mut prev = 0usize;
        let mut tail = 0;
        for e in &entries {
            tail = HEADER + body.len();
            if prev < 254 {
                body.push(prev as u8);
            } else {
                body.push(0xFE);
                body.extend_from_slice(&(prev as u32).to_le_bytes());
            }
            body.extend_from_slice(e);
            prev = e.len() + if prev < 254 { 1 } else { 5 };
        }
        let total = HEADER + body.len() + 1;
        let mut zl = Vec::new();
        zl.extend_from_slice(&(total as u32).to_le_bytes());
        zl.extend_from_slice(&(tail as u32).to_le_bytes());
        zl.extend_from_slice(&(entries.len() as u16).to_le_bytes());
        zl.extend_from_slice(&body);
        zl.push(0xFF);
        zl
    }

    #[test]
    fn decodes_every_encoding() {
        let zl = sample();
        let mut got = Vec::new();
        let n = parse(&zl, |e| {
            got.push(e.to_bytes().to_vec());
            Ok(())
        })
        .expect("valid");
        assert_eq!(n, 6);
        let expect: Vec<Vec<u8>> = vec![
            b"a".to_vec(),
            vec![b'x'; 300],
            b"12".to_vec(),
            b"-2".to_vec(),
            b"70000".to_vec(),
            (1i64 << 40).to_string().into_bytes(),
        ];
        assert_eq!(got, expect);
        for cut in 0..zl.len() {
            assert!(parse(&zl[..cut], |_| Ok(())).is_err());
        }
        for i in 0..zl.len() {
            let mut bad = zl.clone();
            bad[i] = bad[i].wrapping_add(1);
            let _ = parse(&bad, |_| Ok(()));
        }
    }

    #[test]
    fn decodes_zipmaps() {
        let zm = [2, 1, b'f', 1, 0, b'v', 2, b'g', b'h', 2, 1, b'1', b'2', 0, 0xFF];
        let mut pairs = Vec::new();
        parse_zipmap(&zm, |f, v| {
            pairs.push((f.to_vec(), v.to_vec()));
            Ok(())
        })
        .expect("valid");
        assert_eq!(pairs, [(b"f".to_vec(), b"v".to_vec()), (b"gh".to_vec(), b"12".to_vec())]);
        for cut in 0..zm.len() {
            assert!(parse_zipmap(&zm[..cut], |_, _| Ok(())).is_err());
        }
    }
}
