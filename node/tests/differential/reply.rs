//! Whether two servers' replies to one command agree. Replies are the raw bytes of one RESP
//! frame; they agree when the bytes are equal or, for the commands whose answers Redis leaves
//! to chance or to hash order, when their canonical forms are (see [`Compare`]). Canonical forms
//! only reorder or drop bytes of the replies; nothing is decoded and re-encoded, so a
//! difference in how a value is written (`,1` against `,1.0`) is always seen.

use std::borrow::Cow;

use common::resp::decode;

use crate::generator::Compare;

/// A reply as read: the raw frame, or why none came (every read is bounded in time).
pub type Reply = Result<Vec<u8>, String>;

/// Whether `redis` and `warden` agree under `compare`. A missing reply never agrees.
pub fn agree(redis: &Reply, warden: &Reply, compare: Compare) -> bool {
    let (Ok(a), Ok(b)) = (redis, warden) else { return false };
    if a == b {
        return true;
    }
    match compare {
        Compare::Ttl => ttl_close(a, b),
        _ => canonical(a, compare) == canonical(b, compare),
    }
}

/// The form of `raw` that is compared.
fn canonical(raw: &[u8], compare: Compare) -> Cow<'_, [u8]> {
    let tag = &raw[..1];
    match compare {
        Compare::Exact | Compare::Ttl => Cow::Borrowed(raw),
        Compare::ErrorsOnly if tag == b"-" => Cow::Borrowed(raw),
        Compare::ErrorsOnly => Cow::Borrowed(tag),
        Compare::Dump => match bulk_payload(raw) {
            // RDB type bytes: 2 = set as a hash table, 4 = hash as a hash table.
            Some([2 | 4, ..]) => Cow::Borrowed(tag),
            _ => Cow::Borrowed(raw),
        },
        Compare::Unordered => sort_elements(raw, false),
        Compare::Pairs => sort_elements(raw, true),
    }
}

/// The payload of a bulk string frame.
fn bulk_payload(raw: &[u8]) -> Option<&[u8]> {
    let rest = raw.strip_prefix(b"$")?;
    let cr = rest.windows(2).position(|w| w == b"\r\n")?;
    let len: usize = std::str::from_utf8(&rest[..cr]).ok()?.parse().ok()?;
    rest.get(cr + 2..cr + 2 + len)
}

/// A top-level aggregate with its elements sorted by their bytes. A map's elements are its
/// (key, value) pairs; with `pairs`, so are consecutive elements of a flat array (RESP2's
/// HGETALL and WITHVALUES), unless the elements are themselves aggregates (RESP3's
/// `[[field, value], …]`). Anything else is returned as is.
fn sort_elements(raw: &[u8], pairs: bool) -> Cow<'_, [u8]> {
    let Some((header, elements)) = split_aggregate(raw) else { return Cow::Borrowed(raw) };
    let nested = elements.first().is_some_and(|e| is_aggregate(e));
    let per_item = if raw[0] == b'%' || (pairs && !nested) { 2 } else { 1 };
    if elements.len() % per_item != 0 {
        return Cow::Borrowed(raw);
    }
    let mut items: Vec<Vec<u8>> = elements.chunks(per_item).map(|c| c.concat()).collect();
    items.sort();
    let mut out = header.to_vec();
    items.iter().for_each(|i| out.extend_from_slice(i));
    Cow::Owned(out)
}

/// An aggregate's header line and the raw bytes of each of its elements (both halves of each
/// map entry), or `None` if `raw` is not a non-null aggregate.
fn split_aggregate(raw: &[u8]) -> Option<(&[u8], Vec<&[u8]>)> {
    if !is_aggregate(raw) {
        return None;
    }
    let header_end = raw.windows(2).position(|w| w == b"\r\n")? + 2;
    let count: usize = std::str::from_utf8(&raw[1..header_end - 2]).ok()?.parse().ok()?;
    let count = if raw[0] == b'%' { count * 2 } else { count };
    let mut elements = Vec::with_capacity(count);
    let mut pos = header_end;
    for _ in 0..count {
        let Ok(Some((_, used))) = decode(&raw[pos..]) else { return None };
        elements.push(&raw[pos..pos + used]);
        pos += used;
    }
    Some((&raw[..header_end], elements))
}

/// Whether `raw` starts an array, set, map or push that is not null (`*-1`).
fn is_aggregate(raw: &[u8]) -> bool {
    matches!(raw.first(), Some(b'*' | b'~' | b'%' | b'>')) && !raw[1..].starts_with(b"-")
}

/// Two positive TTLs at most one second apart.
fn ttl_close(a: &[u8], b: &[u8]) -> bool {
    let seconds = |raw: &[u8]| -> Option<i64> {
        let text = raw.strip_prefix(b":")?.strip_suffix(b"\r\n")?;
        std::str::from_utf8(text).ok()?.parse().ok().filter(|&n| n > 0)
    };
    match (seconds(a), seconds(b)) {
        (Some(x), Some(y)) => x.abs_diff(y) <= 1,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn same(a: &[u8], b: &[u8], compare: Compare) -> bool {
        agree(&Ok(a.to_vec()), &Ok(b.to_vec()), compare)
    }

    #[test]
    fn unordered_sorts_only_the_top_level() {
        let a = b"*2\r\n$1\r\nb\r\n*2\r\n:2\r\n:1\r\n";
        let b = b"*2\r\n*2\r\n:2\r\n:1\r\n$1\r\nb\r\n";
        assert!(same(a, b, Compare::Unordered));
        assert!(!same(a, b, Compare::Exact));
        let inner_swapped = b"*2\r\n*2\r\n:1\r\n:2\r\n$1\r\nb\r\n";
        assert!(!same(a, inner_swapped, Compare::Unordered));
    }

    #[test]
    fn pairs_stay_together() {
        let a = b"*4\r\n$1\r\nf\r\n$1\r\n1\r\n$1\r\ng\r\n$1\r\n2\r\n";
        let b = b"*4\r\n$1\r\ng\r\n$1\r\n2\r\n$1\r\nf\r\n$1\r\n1\r\n";
        let crossed = b"*4\r\n$1\r\ng\r\n$1\r\n1\r\n$1\r\nf\r\n$1\r\n2\r\n";
        assert!(same(a, b, Compare::Pairs));
        assert!(!same(a, crossed, Compare::Pairs));
        assert!(same(a, crossed, Compare::Unordered));
        let map = b"%2\r\n$1\r\nf\r\n$1\r\n1\r\n$1\r\ng\r\n$1\r\n2\r\n";
        let map_swapped = b"%2\r\n$1\r\ng\r\n$1\r\n2\r\n$1\r\nf\r\n$1\r\n1\r\n";
        assert!(same(map, map_swapped, Compare::Unordered));
    }

    #[test]
    fn dump_ignores_only_hash_ordered_payloads() {
        assert!(same(b"$3\r\n\x02ab\r\n", b"$3\r\n\x02ba\r\n", Compare::Dump));
        assert!(same(b"$3\r\n\x04ab\r\n", b"$3\r\n\x04ba\r\n", Compare::Dump));
        assert!(!same(b"$3\r\n\x0bab\r\n", b"$3\r\n\x0bba\r\n", Compare::Dump));
        assert!(!same(b"$3\r\n\x02ab\r\n", b"$-1\r\n", Compare::Dump));
    }

    #[test]
    fn errors_only_compares_error_text_and_reply_type() {
        assert!(same(b":1\r\n", b":2\r\n", Compare::ErrorsOnly));
        assert!(!same(b":1\r\n", b"$1\r\n1\r\n", Compare::ErrorsOnly));
        assert!(!same(b"-ERR a\r\n", b"-ERR b\r\n", Compare::ErrorsOnly));
    }

    #[test]
    fn ttl_allows_one_second_of_rounding() {
        assert!(same(b":100\r\n", b":99\r\n", Compare::Ttl));
        assert!(!same(b":100\r\n", b":98\r\n", Compare::Ttl));
        assert!(!same(b":1\r\n", b":-1\r\n", Compare::Ttl));
        assert!(!same(b":0\r\n", b":1\r\n", Compare::Ttl));
    }

    #[test]
    fn a_missing_reply_never_agrees() {
        let err: Reply = Err("no reply".into());
        assert!(!agree(&err, &err, Compare::ErrorsOnly));
    }
}
