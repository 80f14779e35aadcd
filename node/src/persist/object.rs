//! Decoding one value of a given RDB type into a [`Value`], as Redis 7.0's `rdbLoadObject`.
//!
//! Encodings follow Redis's load rules: a plain set becomes an intset when every member is an
//! integer and it is small, a hash listpack stays a listpack unless it has too many entries, a
//! ZSET_2 becomes a listpack when small, and so on, under the current [`LIMITS`]. Malformed
//! content that Redis's deep sanitisation rejects (duplicates, NaN scores, unsorted intsets,
//! odd pair counts) is an error here, never a value that would break a db type's invariants.
//!
//! [`LIMITS`]: crate::db::value::LIMITS

use std::collections::{HashSet, VecDeque};
use std::io::Read;

use super::input::Input;
use super::{intset, listpack, rdb_type as t, show_key, ziplist, Elem, RdbError};
use crate::db::hash::{self, Hash};
use crate::db::list::List;
use crate::db::set::Set;
use crate::db::value::{EncodingLimits, LIMITS};
use crate::db::zset::{self, ZSet};
use crate::db::{Dict, Sds, Value};

/// The encoding thresholds, read once per load.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    hash: hash::Limits,
    zset: zset::Limits,
    intset: usize,
}

impl Limits {
    /// The thresholds configured now.
    pub fn current() -> Limits {
        Limits {
            hash: hash::Limits::current(),
            zset: zset::Limits::current(),
            intset: EncodingLimits::get(&LIMITS.set_intset_entries),
        }
    }
}

/// Reusable buffers.
#[derive(Default)]
pub struct Scratch {
    a: Vec<u8>,
    b: Vec<u8>,
}

/// What kind of type byte this is.
pub enum Kind {
    /// A value type we load.
    Supported,
    /// A value type Redis knows and we refuse, with its name.
    Refused(&'static str),
    /// Not a value type.
    Unknown,
}

/// Classifies a value type byte.
pub fn kind(rdb_type: u8) -> Kind {
    match rdb_type {
        0..=5 | 9..=19 => Kind::Supported,
        t::MODULE | t::MODULE_2 => Kind::Refused("a module value"),
        // Only Redis 7.2 writes it, in RDB version 11 files, which are refused as a whole; in
        // an older file it cannot be anything else.
        t::STREAM_LISTPACKS_3 => Kind::Refused("a stream in Redis 7.2's format"),
        _ => Kind::Unknown,
    }
}

/// The error for a key of a refused type.
pub fn refused(key: &[u8], what: &str, offset: u64) -> RdbError {
    RdbError::Unsupported {
        offset,
        what: format!("key '{}' holds {what}, which warden-node does not support", show_key(key)),
    }
}

/// Reads a value of a supported type. `Ok(None)` is an empty collection, which Redis skips.
pub fn read_value<R: Read>(
    inp: &mut Input<R>,
    rdb_type: u8,
    limits: &Limits,
    s: &mut Scratch,
) -> Result<Option<Value>, RdbError> {
    let value = match rdb_type {
        t::STRING => {
            inp.string(&mut s.a)?;
            Value::string(&s.a)
        }
        t::LIST => {
            let n = inp.len()?;
            inp.check_room(n, 1)?;
            let mut items = VecDeque::with_capacity(inp.capacity_for(n));
            for _ in 0..n {
                inp.string(&mut s.a)?;
                items.push_back(Sds::from_slice(&s.a));
            }
            list(items)
        }
        t::SET => read_set(inp, limits, s)?,
        t::ZSET | t::ZSET_2 => read_zset(inp, rdb_type == t::ZSET_2, limits, s)?,
        t::HASH => read_hash(inp, limits, s)?,
        t::LIST_QUICKLIST | t::LIST_QUICKLIST_2 => read_quicklist(inp, rdb_type, s)?,
        t::STREAM_LISTPACKS | t::STREAM_LISTPACKS_2 => {
            Value::Stream(Box::new(super::stream::read(inp, rdb_type, &mut s.a)?))
        }
        _ => {
            let at = inp.offset();
            inp.string(&mut s.a)?;
            blob(rdb_type, &s.a, limits)
                .map_err(|reason| RdbError::Corrupt { offset: at, reason: reason.to_string() })?
        }
    };
    Ok(if is_empty(&value) { None } else { Some(value) })
}

fn is_empty(value: &Value) -> bool {
    match value {
        Value::Str { .. } => false,
        Value::List(l) => l.is_empty(),
        Value::Hash(h) => h.is_empty(),
        Value::Set(s) => s.is_empty(),
        Value::ZSet(z) => z.is_empty(),
        // A stream may be empty (XDEL, XTRIM, XGROUP CREATE … MKSTREAM) and is kept.
        Value::Stream(_) => false,
    }
}

fn list(items: VecDeque<Sds>) -> Value {
    Value::List(Box::new(List::with_items(items)))
}

fn read_set<R: Read>(
    inp: &mut Input<R>,
    limits: &Limits,
    s: &mut Scratch,
) -> Result<Value, RdbError> {
    let n = inp.len()?;
    inp.check_room(n, 1)?;
    let mut set = if n as usize > limits.intset { Set::Table(Dict::new()) } else { Set::default() };
    for _ in 0..n {
        let at = inp.offset();
        inp.string(&mut s.a)?;
        if !set.insert_within(&s.a, limits.intset) {
            return Err(RdbError::Corrupt { offset: at, reason: "duplicate set member".into() });
        }
    }
    Ok(Value::Set(Box::new(set)))
}

fn read_hash<R: Read>(
    inp: &mut Input<R>,
    limits: &Limits,
    s: &mut Scratch,
) -> Result<Value, RdbError> {
    let n = inp.len()?;
    inp.check_room(n, 2)?;
    let mut h =
        if n as usize > limits.hash.entries { Hash::Table(Dict::new()) } else { Hash::default() };
    for _ in 0..n {
        let at = inp.offset();
        inp.string(&mut s.a)?;
        inp.string(&mut s.b)?;
        if !h.set_within(&s.a, &s.b, limits.hash) {
            return Err(RdbError::Corrupt { offset: at, reason: "duplicate hash field".into() });
        }
    }
    Ok(Value::Hash(Box::new(h)))
}

fn read_zset<R: Read>(
    inp: &mut Input<R>,
    binary: bool,
    limits: &Limits,
    s: &mut Scratch,
) -> Result<Value, RdbError> {
    let n = inp.len()?;
    inp.check_room(n, if binary { 9 } else { 2 })?;
    let mut entries = Vec::with_capacity(inp.capacity_for(n));
    for _ in 0..n {
        let at = inp.offset();
        inp.string(&mut s.a)?;
        let score = if binary { f64::from_le_bytes(inp.array()?) } else { inp.text_double()? };
        if score.is_nan() {
            return Err(RdbError::Corrupt { offset: at, reason: "sorted set score is NaN".into() });
        }
        entries.push((Sds::from_slice(&s.a), score));
    }
    // Redis converts to a listpack after loading when the set is small enough.
    zset_from(entries, limits.zset).map_err(|reason| inp.corrupt(reason))
}

/// A sorted set from unsorted pairs without NaN scores, refusing duplicate members.
fn zset_from(mut entries: Vec<(Sds, f64)>, limits: zset::Limits) -> Result<Value, &'static str> {
    entries.sort_by(|a, b| zset::order((a.1, &a.0), (b.1, &b.0)));
    let mut members: Vec<&[u8]> = entries.iter().map(|(m, _)| m.as_slice()).collect();
    members.sort_unstable();
    if members.windows(2).any(|w| w[0] == w[1]) {
        return Err("duplicate sorted set member");
    }
    Ok(Value::ZSet(Box::new(ZSet::from_sorted(entries, limits))))
}

fn read_quicklist<R: Read>(
    inp: &mut Input<R>,
    rdb_type: u8,
    s: &mut Scratch,
) -> Result<Value, RdbError> {
    let nodes = inp.len()?;
    inp.check_room(nodes, 2)?;
    let mut items = VecDeque::new();
    for _ in 0..nodes {
        let mut container = 2; // PACKED
        if rdb_type == t::LIST_QUICKLIST_2 {
            container = inp.len()?;
            if container != 1 && container != 2 {
                return Err(inp.corrupt(format!("invalid quicklist container {container}")));
            }
        }
        let at = inp.offset();
        inp.string(&mut s.a)?;
        let corrupt = |reason: &str| RdbError::Corrupt { offset: at, reason: reason.into() };
        if s.a.is_empty() {
            return Err(corrupt("empty quicklist node"));
        }
        if container == 1 {
            items.push_back(Sds::from_slice(&s.a));
            continue;
        }
        let push = |e: Elem<'_>| {
            items.push_back(e.to_sds());
            Ok(())
        };
        if rdb_type == t::LIST_QUICKLIST_2 {
            listpack::parse(&s.a, push).map_err(corrupt)?;
        } else {
            ziplist::parse(&s.a, push).map_err(corrupt)?;
        }
    }
    Ok(list(items))
}

/// Pairs of a listpack or ziplist blob (field/value or member/score).
fn pairs<'a>(
    elems: impl FnOnce(
        &mut dyn FnMut(Elem<'a>) -> Result<(), &'static str>,
    ) -> Result<usize, &'static str>,
) -> Result<Vec<(Elem<'a>, Elem<'a>)>, &'static str> {
    let mut out = Vec::new();
    let mut pending = None;
    elems(&mut |e| {
        match pending.take() {
            None => pending = Some(e),
            Some(first) => out.push((first, e)),
        }
        Ok(())
    })?;
    if pending.is_some() {
        return Err("odd number of elements in a pair list");
    }
    Ok(out)
}

fn hash_from(
    pairs: Vec<(Sds, Sds)>,
    limits: hash::Limits,
    table: bool,
) -> Result<Value, &'static str> {
    let mut seen = HashSet::with_capacity(pairs.len());
    if pairs.iter().any(|(f, _)| !seen.insert(f.as_slice())) {
        return Err("duplicate hash field");
    }
    let h = if table || pairs.len() > limits.entries {
        let mut d = Dict::new();
        for (f, v) in pairs {
            d.insert(&f, v);
        }
        Hash::Table(d)
    } else {
        Hash::Listpack(pairs)
    };
    Ok(Value::Hash(Box::new(h)))
}

fn score(e: Elem<'_>) -> Result<f64, &'static str> {
    let score = match e {
        Elem::Int(n) => n as f64,
        Elem::Str(text) => common::fmt::parse_f64(text).ok_or("invalid sorted set score")?,
    };
    if score.is_nan() {
        return Err("sorted set score is NaN");
    }
    Ok(score)
}

/// The blob types: 9 zipmap, 10 ziplist list, 11 intset, 12/13 ziplist pairs, 16/17 listpack
/// pairs.
fn blob(rdb_type: u8, blob: &[u8], limits: &Limits) -> Result<Value, &'static str> {
    match rdb_type {
        t::HASH_ZIPMAP => {
            let mut out = Vec::new();
            let mut longest = 0;
            ziplist::parse_zipmap(blob, |f, v| {
                longest = longest.max(f.len()).max(v.len());
                out.push((Sds::from_slice(f), Sds::from_slice(v)));
                Ok(())
            })?;
            hash_from(out, limits.hash, longest > limits.hash.value)
        }
        t::LIST_ZIPLIST => {
            let mut items = VecDeque::new();
            ziplist::parse(blob, |e| {
                items.push_back(e.to_sds());
                Ok(())
            })?;
            Ok(list(items))
        }
        t::SET_INTSET => {
            let members = intset::parse(blob)?;
            let set = if members.len() > limits.intset {
                let mut d = Dict::new();
                for m in members {
                    d.insert(itoa::Buffer::new().format(m).as_bytes(), ());
                }
                Set::Table(d)
            } else {
                Set::Intset(members)
            };
            Ok(Value::Set(Box::new(set)))
        }
        t::HASH_ZIPLIST | t::HASH_LISTPACK => {
            let p = if rdb_type == t::HASH_ZIPLIST {
                pairs(|f| ziplist::parse(blob, f))?
            } else {
                pairs(|f| listpack::parse(blob, f))?
            };
            let p = p.into_iter().map(|(f, v)| (f.to_sds(), v.to_sds())).collect();
            hash_from(p, limits.hash, false)
        }
        t::ZSET_ZIPLIST | t::ZSET_LISTPACK => {
            let p = if rdb_type == t::ZSET_ZIPLIST {
                pairs(|f| ziplist::parse(blob, f))?
            } else {
                pairs(|f| listpack::parse(blob, f))?
            };
            let entries = p
                .into_iter()
                .map(|(m, sc)| Ok((m.to_sds(), score(sc)?)))
                .collect::<Result<Vec<_>, &'static str>>()?;
            // A listpack stays one unless it has too many entries, whatever its member sizes.
            let keep = zset::Limits { entries: limits.zset.entries, value: usize::MAX };
            zset_from(entries, keep)
        }
        _ => Err("unknown value type"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds() {
        assert!(matches!(kind(0), Kind::Supported));
        assert!(matches!(kind(18), Kind::Supported));
        assert!(matches!(kind(15), Kind::Supported));
        assert!(matches!(kind(19), Kind::Supported));
        assert!(matches!(kind(21), Kind::Refused(_)));
        assert!(matches!(kind(7), Kind::Refused("a module value")));
        assert!(matches!(kind(8), Kind::Unknown));
        assert!(matches!(kind(20), Kind::Unknown));
    }

    #[test]
    fn duplicate_zset_members_are_refused() {
        let e = vec![(Sds::from_slice(b"a"), 1.0), (Sds::from_slice(b"a"), 2.0)];
        assert!(zset_from(e, zset::Limits { entries: 128, value: 64 }).is_err());
    }
}
