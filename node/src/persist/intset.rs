//! Intsets: the blob of RDB type 11 (a set of integers, Redis's `intset` encoding).
//!
//! # Layout
//!
//! ```text
//! <u32 LE width: 2, 4 or 8 bytes per element> <u32 LE count> <count × intN LE>
//! ```
//!
//! Elements are sorted ascending and distinct; all use the width of the widest one. The blob
//! is `8 + count × width` bytes. We write the narrowest width that holds every element (Redis
//! keeps a width after the element that needed it is removed; both load the same).
//!
//! [`parse`] checks what Redis's deep sanitisation (`intsetValidateIntegrity`) checks: a valid
//! width, the exact size, at least one element, strict ascending order.

/// Appends the intset of `members` (sorted, distinct) to `out`.
pub fn write(members: &[i64], out: &mut Vec<u8>) {
    let (lo, hi) = (members.first().copied().unwrap_or(0), members.last().copied().unwrap_or(0));
    let width: usize = if lo >= i16::MIN as i64 && hi <= i16::MAX as i64 {
        2
    } else if lo >= i32::MIN as i64 && hi <= i32::MAX as i64 {
        4
    } else {
        8
    };
    out.reserve(8 + members.len() * width);
    out.extend_from_slice(&(width as u32).to_le_bytes());
    out.extend_from_slice(&(members.len() as u32).to_le_bytes());
    for &m in members {
        out.extend_from_slice(&m.to_le_bytes()[..width]);
    }
}

/// Decodes and validates an intset blob.
pub fn parse(blob: &[u8]) -> Result<Vec<i64>, &'static str> {
    if blob.len() < 8 {
        return Err("intset shorter than its header");
    }
    let width = u32::from_le_bytes([blob[0], blob[1], blob[2], blob[3]]) as usize;
    if !matches!(width, 2 | 4 | 8) {
        return Err("intset has an invalid element width");
    }
    let count = u32::from_le_bytes([blob[4], blob[5], blob[6], blob[7]]) as usize;
    if (blob.len() - 8) / width != count || !(blob.len() - 8).is_multiple_of(width) {
        return Err("intset size does not match its count");
    }
    if count == 0 {
        return Err("intset is empty");
    }
    let mut out = Vec::with_capacity(count);
    for chunk in blob[8..].chunks_exact(width) {
        let v = match width {
            2 => i16::from_le_bytes([chunk[0], chunk[1]]) as i64,
            4 => i32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]) as i64,
            _ => i64::from_le_bytes(chunk.try_into().expect("8-byte chunk")),
        };
        if out.last().is_some_and(|&prev| prev >= v) {
            return Err("intset is not sorted or has duplicates");
        }
        out.push(v);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_redis_bytes_and_round_trips() {
        let mut out = Vec::new();
        write(&[1, 2, 3], &mut out);
        assert_eq!(out, [2, 0, 0, 0, 3, 0, 0, 0, 1, 0, 2, 0, 3, 0]);
        for members in [vec![-5, 7], vec![-40_000, 1], vec![1, 1 << 40], vec![i64::MIN, i64::MAX]] {
            let mut out = Vec::new();
            write(&members, &mut out);
            assert_eq!(parse(&out), Ok(members));
        }
    }

    #[test]
    fn invalid_intsets_are_rejected() {
        assert!(parse(&[2, 0, 0, 0, 2, 0, 0, 0, 2, 0, 1, 0]).is_err(), "unsorted");
        assert!(parse(&[2, 0, 0, 0, 2, 0, 0, 0, 1, 0, 1, 0]).is_err(), "duplicate");
        assert!(parse(&[2, 0, 0, 0, 0, 0, 0, 0]).is_err(), "empty");
        assert!(parse(&[3, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0]).is_err(), "width");
        assert!(parse(&[2, 0, 0, 0, 2, 0, 0, 0, 1, 0]).is_err(), "short");
        assert!(parse(&[8, 0, 0, 0, 0xFF, 0xFF, 0xFF, 0xFF]).is_err(), "huge count");
    }
}
