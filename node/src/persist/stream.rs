//! Streams in RDB form: types 15 (`STREAM_LISTPACKS`, Redis 5 to 6.2) and 19
//! (`STREAM_LISTPACKS_2`, Redis 7.0), read as Redis 7.0's `rdbLoadObject` reads them and
//! written (always as 19) as its `rdbSaveObject` writes them.
//!
//! # Layout
//!
//! ```text
//! <len nodes>  nodes × (<string: master ID, 16 bytes big-endian> <string: node listpack>)
//! <len length> <len last_id.ms> <len last_id.seq>
//! type 19 only: <len first_id.ms> <len first_id.seq> <len max_deleted.ms> <len max_deleted.seq>
//!               <len entries_added>
//! <len groups> groups × (
//!     <string name> <len last_id.ms> <len last_id.seq>
//!     type 19 only: <len entries_read>                       (-1, unknown, as 2^64-1)
//!     <len pel>       pel × (<16 raw bytes ID> <i64 LE delivery time, ms> <len delivery count>)
//!     <len consumers> consumers × (<string name> <i64 LE seen time, ms>
//!                                  <len pel> pel × <16 raw bytes ID>))
//! ```
//!
//! Groups, consumers and PEL entries come in byte order (Redis's radix trees), which is our
//! `BTreeMap` order. Node listpacks are strings like any other, so LZF applies to them.
//!
//! # Validation
//!
//! Every node listpack gets Redis's deep check (`streamValidateListpackIntegrity`: a valid
//! listpack whose master entry and entries have the right shapes and element counts). On top of
//! what Redis checks, and always true of what Redis writes, we require: each node's first entry
//! has the node's master ID, entry IDs increase strictly across the whole stream, the master
//! entry's live and deleted counts match the entries' flags, the stream's length is the number
//! of live entries and no live entry is above `last_id`; a PEL entry belongs to exactly one
//! consumer. Anything else is a load error naming the offset, never a panic: commands can
//! then rely on a loaded stream as on one they built.
//!
//! # Type 15
//!
//! Older files lack the 7.0 fields; they are filled in as Redis 7.0 fills them: `first_id` is
//! the first live entry (or, for an empty stream, `u64::MAX-u64::MAX`, which is what Redis's
//! edge lookup leaves there), `max_deleted_entry_id` 0-0, `entries_added` the length, and each
//! group's `entries_read` estimated from its last ID as `streamEstimateDistanceFromFirstEverEntry`
//! does.

use std::collections::BTreeMap;
use std::io::Read;

use super::encode::{write_len, ValueEncoder};
use super::input::Input;
use super::{listpack, rdb_type as t, RdbError};
use crate::db::stream::read::NodeReader;
use crate::db::stream::{
    Consumer, ConsumerGroup, PendingEntry, Stream, StreamId, ENTRIES_READ_UNKNOWN,
};

/// Reads a stream of type 15 or 19 (after its key).
pub(super) fn read<R: Read>(
    inp: &mut Input<R>,
    rdb_type: u8,
    buf: &mut Vec<u8>,
) -> Result<Stream, RdbError> {
    let v2 = rdb_type == t::STREAM_LISTPACKS_2;
    let mut s = Stream::default();
    let nodes = inp.len()?;
    // A node is at least its 17-byte key and a 7-byte listpack with its length.
    inp.check_room(nodes, 25)?;
    let mut prev: Option<StreamId> = None;
    let mut live_total = 0u64;
    let mut first_live: Option<StreamId> = None;
    let mut last_live: Option<StreamId> = None;
    for _ in 0..nodes {
        let at = inp.offset();
        inp.string(buf)?;
        let master: [u8; 16] = buf.as_slice().try_into().map_err(|_| RdbError::Corrupt {
            offset: at,
            reason: format!("stream node key is {} bytes, not a 16-byte ID", buf.len()),
        })?;
        let master = StreamId::from_be_bytes(master);
        let at = inp.offset();
        let mut lp = Vec::new();
        inp.string(&mut lp)?;
        let corrupt = |reason: String| RdbError::Corrupt { offset: at, reason };
        if s.nodes.contains_key(&master) {
            return Err(corrupt(format!("stream node {master} appears twice")));
        }
        let node = check_node(master, &lp, prev).map_err(|e| corrupt(e.to_string()))?;
        live_total = live_total
            .checked_add(node.live)
            .ok_or_else(|| corrupt("stream length overflows".into()))?;
        prev = Some(node.last);
        first_live = first_live.or(node.first_live);
        last_live = node.last_live.or(last_live);
        s.nodes.insert(master, lp);
    }
    s.length = inp.len()?;
    s.last_id = read_id(inp)?;
    if v2 {
        s.first_id = read_id(inp)?;
        s.max_deleted_entry_id = read_id(inp)?;
        s.entries_added = inp.len()?;
    } else {
        s.first_id = first_live.unwrap_or(StreamId::MAX);
        s.max_deleted_entry_id = StreamId::MIN;
        s.entries_added = s.length;
    }
    if s.length != live_total {
        return Err(inp.corrupt(format!(
            "stream length {} does not match its {live_total} live entries",
            s.length
        )));
    }
    if let Some(top) = last_live.filter(|&top| top > s.last_id) {
        return Err(
            inp.corrupt(format!("stream entry {top} is above the stream's last ID {}", s.last_id))
        );
    }
    let groups = inp.len()?;
    // A group is at least its name (1), last ID (2), PEL and consumer counts (2).
    inp.check_room(groups, 5)?;
    for _ in 0..groups {
        let at = inp.offset();
        inp.string(buf)?;
        let name: Box<[u8]> = buf.as_slice().into();
        let last_id = read_id(inp)?;
        let entries_read = if v2 { inp.len()? as i64 } else { estimate_entries_read(&s, last_id) };
        if s.groups.contains_key(&name) {
            return Err(RdbError::Corrupt {
                offset: at,
                reason: format!(
                    "duplicate consumer group '{}' in a stream",
                    super::show_key(&name)
                ),
            });
        }
        let group = read_group(inp, last_id, entries_read, buf)?;
        s.groups.insert(name, group);
    }
    Ok(s)
}

fn read_id<R: Read>(inp: &mut Input<R>) -> Result<StreamId, RdbError> {
    Ok(StreamId::new(inp.len()?, inp.len()?))
}

/// A group PEL entry before the consumers say whose it is.
struct Unowned {
    delivery_time: u64,
    delivery_count: u64,
    owner: Option<Box<[u8]>>,
}

fn read_group<R: Read>(
    inp: &mut Input<R>,
    last_id: StreamId,
    entries_read: i64,
    buf: &mut Vec<u8>,
) -> Result<ConsumerGroup, RdbError> {
    // The PEL as loaded, owners resolved while the consumers are read.
    let mut pel: BTreeMap<StreamId, Unowned> = BTreeMap::new();
    let n = inp.len()?;
    inp.check_room(n, 16 + 8 + 1)?;
    for _ in 0..n {
        let at = inp.offset();
        let id = StreamId::from_be_bytes(inp.array()?);
        let delivery_time = i64::from_le_bytes(inp.array()?) as u64;
        let delivery_count = inp.len()?;
        if pel.insert(id, Unowned { delivery_time, delivery_count, owner: None }).is_some() {
            return Err(RdbError::Corrupt {
                offset: at,
                reason: format!("duplicate entry {id} in a consumer group's PEL"),
            });
        }
    }
    let mut consumers = BTreeMap::new();
    let n = inp.len()?;
    inp.check_room(n, 1 + 8 + 1)?;
    for _ in 0..n {
        let at = inp.offset();
        inp.string(buf)?;
        let name: Box<[u8]> = buf.as_slice().into();
        if consumers.contains_key(&name) {
            return Err(RdbError::Corrupt {
                offset: at,
                reason: format!("duplicate consumer '{}' in a group", super::show_key(&name)),
            });
        }
        let mut consumer =
            Consumer { seen_time: i64::from_le_bytes(inp.array()?) as u64, ..Default::default() };
        let owned = inp.len()?;
        inp.check_room(owned, 16)?;
        for _ in 0..owned {
            let at = inp.offset();
            let id = StreamId::from_be_bytes(inp.array()?);
            let corrupt = |reason: String| RdbError::Corrupt { offset: at, reason };
            let entry = pel.get_mut(&id).ok_or_else(|| {
                corrupt(format!("consumer's pending entry {id} is not in the group's PEL"))
            })?;
            if let Some(owner) = &entry.owner {
                return Err(corrupt(if *owner == name {
                    format!("duplicate entry {id} in a consumer's PEL")
                } else {
                    format!("pending entry {id} is owned by two consumers")
                }));
            }
            entry.owner = Some(name.clone());
            consumer.pel.insert(id);
        }
        consumers.insert(name, consumer);
    }
    let mut group = ConsumerGroup { last_id, entries_read, pel: BTreeMap::new(), consumers };
    for (id, p) in pel {
        let consumer = p.owner.ok_or_else(|| {
            inp.corrupt(format!("pending entry {id} of a consumer group has no consumer"))
        })?;
        let (delivery_time, delivery_count) = (p.delivery_time, p.delivery_count);
        group.pel.insert(id, PendingEntry { delivery_time, delivery_count, consumer });
    }
    Ok(group)
}

/// What checking a node found.
struct NodeSummary {
    live: u64,
    /// The last entry, deleted or not.
    last: StreamId,
    first_live: Option<StreamId>,
    last_live: Option<StreamId>,
}

/// Validates the node `master` (see the module documentation); `prev` is the last entry of the
/// node before it.
fn check_node(
    master: StreamId,
    lp: &[u8],
    prev: Option<StreamId>,
) -> Result<NodeSummary, &'static str> {
    if listpack::parse(lp, |_| Ok(()))? == 0 {
        return Err("empty listpack in a stream node");
    }
    let mut reader = NodeReader::new(master, lp, false)?;
    let (declared_live, declared_deleted) = (reader.live, reader.deleted);
    let (mut live, mut deleted) = (0u64, 0u64);
    let mut summary = NodeSummary { live: 0, last: master, first_live: None, last_live: None };
    let mut prev = prev;
    for (i, entry) in reader.by_ref().enumerate() {
        let entry = entry?;
        if i == 0 && entry.id != master {
            return Err("stream node's first entry does not have the node's master ID");
        }
        if prev.is_some_and(|p| entry.id <= p) {
            return Err("stream entry IDs do not increase");
        }
        prev = Some(entry.id);
        summary.last = entry.id;
        if entry.deleted {
            deleted += 1;
        } else {
            live += 1;
            summary.first_live = summary.first_live.or(Some(entry.id));
            summary.last_live = Some(entry.id);
        }
    }
    reader.finish()?;
    if live + deleted == 0 {
        return Err("empty stream node");
    }
    if live != declared_live || deleted != declared_deleted {
        return Err("stream node's entry counts do not match its entries' flags");
    }
    summary.live = live;
    Ok(summary)
}

/// Redis's `streamEstimateDistanceFromFirstEverEntry`: how many entries a group whose last
/// delivered ID is `id` has read, when that can be told, else [`ENTRIES_READ_UNKNOWN`].
fn estimate_entries_read(s: &Stream, id: StreamId) -> i64 {
    if s.entries_added == 0 {
        return 0;
    }
    if s.length == 0 && id <= s.last_id {
        return s.entries_added as i64;
    }
    if id == s.last_id {
        return s.entries_added as i64;
    }
    if id > s.last_id {
        return ENTRIES_READ_UNKNOWN;
    }
    if s.max_deleted_entry_id == StreamId::MIN || s.max_deleted_entry_id < s.first_id {
        if id < s.first_id {
            return s.entries_added.wrapping_sub(s.length) as i64;
        }
        if id == s.first_id {
            return s.entries_added.wrapping_sub(s.length).wrapping_add(1) as i64;
        }
    }
    ENTRIES_READ_UNKNOWN
}

/// Writes `s` as type 19 (the type byte is the caller's).
pub(super) fn write(enc: &mut ValueEncoder, out: &mut Vec<u8>, s: &Stream) {
    write_len(out, s.nodes.len() as u64);
    for (master, lp) in &s.nodes {
        enc.string(out, &master.to_be_bytes());
        enc.string(out, lp);
    }
    write_len(out, s.length);
    write_id(out, s.last_id);
    write_id(out, s.first_id);
    write_id(out, s.max_deleted_entry_id);
    write_len(out, s.entries_added);
    write_len(out, s.groups.len() as u64);
    for (name, g) in &s.groups {
        enc.string(out, name);
        write_id(out, g.last_id);
        write_len(out, g.entries_read as u64);
        write_len(out, g.pel.len() as u64);
        for (id, p) in &g.pel {
            out.extend_from_slice(&id.to_be_bytes());
            out.extend_from_slice(&(p.delivery_time as i64).to_le_bytes());
            write_len(out, p.delivery_count);
        }
        write_len(out, g.consumers.len() as u64);
        for (name, c) in &g.consumers {
            enc.string(out, name);
            out.extend_from_slice(&(c.seen_time as i64).to_le_bytes());
            write_len(out, c.pel.len() as u64);
            for id in &c.pel {
                out.extend_from_slice(&id.to_be_bytes());
            }
        }
    }
}

fn write_id(out: &mut Vec<u8>, id: StreamId) {
    write_len(out, id.ms);
    write_len(out, id.seq);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::stream::read::live_entries;
    use crate::db::Value;
    use crate::persist::crc64::crc64;
    use crate::persist::payload::{self, PayloadError};
    use crate::persist::RDB_VERSION;

    // DUMP payloads of redis-server 7.0.15, printed by scripts/stream-fixtures.sh (which lists
    // the commands that made them; rdbcompression no, stream-node-max-entries 3).
    const S: &str = "130310000000000000000100000000000000013e3e0000001900020101010201816102816202000102010001000101010201050103010001010103010401050100010101dfff0201018163028178020601ff1000000000000000030000000000000000408e8e000000190003010001020181610281620200010201000100010501060105010201020107018568656c6c6f06f26079fe0405010001030100010101846c6f6e6705e04676767676767676767676767676767676767676767676767676767676767676767676767676767676767676767676767676767676767676767676767676767676767676767676480601ff10000000000000000700000000000000001c1c0000000a00010100010101816102000102010001000101010401ff060909010101020703c02a0200020000026730070081ffffffffffffffff0000026731030081ffffffffffffffff0300000000000000010000000000000001b734a506a20100000100000000000000020000000000000000b734a506a20100000100000000000000030000000000000000c234a506a2010000010305616c696365b734a506a201000002000000000000000100000000000000010000000000000002000000000000000003626f62c234a506a20100000100000000000000030000000000000000056361726f6ccb34a506a2010000000a008eee791cb12f7de6";
    const EMPTY: &str = "13000000000000000000010167000081ffffffffffffffff00000a00a01a953dfb9cddde";
    const DRAINED: &str = "1300000a0100000a0101000a00735534eecc297674";

    fn unhex(h: &str) -> Vec<u8> {
        (0..h.len()).step_by(2).map(|i| u8::from_str_radix(&h[i..i + 2], 16).unwrap()).collect()
    }

    fn id(ms: u64, seq: u64) -> StreamId {
        StreamId::new(ms, seq)
    }

    fn restore(p: &[u8]) -> Result<Stream, PayloadError> {
        match payload::restore(b"k", p)? {
            Value::Stream(s) => Ok(*s),
            other => panic!("not a stream: {other:?}"),
        }
    }

    /// A payload around `body` (type byte + value) with a valid footer.
    fn wrap(body: &[u8]) -> Vec<u8> {
        let mut p = body.to_vec();
        p.extend_from_slice(&RDB_VERSION.to_le_bytes());
        let crc = crc64(0, &p);
        p.extend_from_slice(&crc.to_le_bytes());
        p
    }

    /// The payload body of `s` (type 19).
    fn body(s: &Stream) -> Vec<u8> {
        let mut out = vec![t::STREAM_LISTPACKS_2];
        write(&mut ValueEncoder::new(false), &mut out, s);
        out
    }

    fn load_err(body: &[u8]) -> String {
        match restore(&wrap(body)) {
            Err(PayloadError::BadData(e)) => e.to_string(),
            Err(other) => panic!("unexpected error {other:?}"),
            Ok(s) => panic!("loaded {s:?}"),
        }
    }

    type Fields<'a> = &'a [(&'a [u8], &'a [u8])];

    /// A node listpack laid out as Redis's `streamAppendItem` lays it out, with the master
    /// fields taken from the first entry; `master` need not be the first entry's ID (to
    /// build bad nodes).
    fn node(master: StreamId, entries: &[(StreamId, bool, Fields<'_>)]) -> Vec<u8> {
        use super::listpack::Builder;
        let mut out = Vec::new();
        let mut lp = Builder::new(&mut out);
        let live = entries.iter().filter(|e| !e.1).count() as i64;
        let master_fields: Vec<&[u8]> = entries[0].2.iter().map(|(f, _)| *f).collect();
        lp.push_int(&mut out, live);
        lp.push_int(&mut out, entries.len() as i64 - live);
        lp.push_int(&mut out, master_fields.len() as i64);
        for f in &master_fields {
            lp.push(&mut out, f);
        }
        lp.push_int(&mut out, 0);
        for (id, deleted, fields) in entries {
            let same = fields.iter().map(|(f, _)| *f).eq(master_fields.iter().copied());
            lp.push_int(&mut out, i64::from(*deleted) | if same { 2 } else { 0 });
            lp.push_int(&mut out, id.ms.wrapping_sub(master.ms) as i64);
            lp.push_int(&mut out, id.seq.wrapping_sub(master.seq) as i64);
            if !same {
                lp.push_int(&mut out, fields.len() as i64);
            }
            for (f, v) in fields.iter() {
                if !same {
                    lp.push(&mut out, f);
                }
                lp.push(&mut out, v);
            }
            let n = fields.len() as i64;
            lp.push_int(&mut out, if same { n + 3 } else { 2 * n + 4 });
        }
        lp.finish(&mut out);
        out
    }

    fn one_node(entries: &[(StreamId, bool, Fields<'_>)]) -> Stream {
        let mut s = Stream::default();
        s.nodes.insert(entries[0].0, node(entries[0].0, entries));
        s.length = entries.iter().filter(|e| !e.1).count() as u64;
        s.last_id = entries.last().unwrap().0;
        s.first_id = entries.iter().find(|e| !e.1).map_or(StreamId::MIN, |e| e.0);
        s.entries_added = entries.len() as u64;
        s
    }

    #[test]
    fn redis_payloads_load_and_encode_back_byte_for_byte() {
        for fixture in [S, EMPTY, DRAINED] {
            let bytes = unhex(fixture);
            let s = restore(&bytes).expect("loads");
            assert_eq!(payload::dump(&Value::Stream(Box::new(s)), false), bytes);
        }
        let s = restore(&unhex(S)).unwrap();
        assert_eq!(s.nodes.keys().copied().collect::<Vec<_>>(), [id(1, 1), id(3, 0), id(7, 0)]);
        let entries: Vec<(String, Vec<(String, String)>)> = live_entries(&s)
            .map(|(id, f)| {
                let text = |b: &[u8]| String::from_utf8(b.to_vec()).unwrap();
                (id.to_string(), f.iter().map(|(f, v)| (text(f), text(v))).collect())
            })
            .collect();
        let pairs = |p: &[(&str, &str)]| -> Vec<(String, String)> {
            p.iter().map(|(f, v)| (f.to_string(), v.to_string())).collect()
        };
        assert_eq!(
            entries,
            [
                ("1-1".into(), pairs(&[("a", "1"), ("b", "2")])),
                ("2-0".into(), pairs(&[("c", "x")])),
                ("3-0".into(), pairs(&[("a", "5"), ("b", "6")])),
                ("5-7".into(), pairs(&[("a", "hello"), ("b", "-100000")])),
                ("6-0".into(), pairs(&[("long", &"v".repeat(70))])),
                ("7-0".into(), pairs(&[("a", "1")])),
            ]
        );
        assert_eq!(
            (s.length, s.last_id, s.first_id, s.max_deleted_entry_id, s.entries_added),
            (6, id(9, 9), id(1, 1), id(1, 2), 7)
        );
        let names: Vec<&[u8]> = s.groups.keys().map(|k| &k[..]).collect();
        assert_eq!(names, [&b"42"[..], b"g0", b"g1"]);
        let g42 = &s.groups[&b"42"[..]];
        assert_eq!((g42.last_id, g42.entries_read, g42.pel.len()), (id(2, 0), 2, 0));
        let g0 = &s.groups[&b"g0"[..]];
        assert_eq!((g0.last_id, g0.entries_read), (id(7, 0), ENTRIES_READ_UNKNOWN));
        let g1 = &s.groups[&b"g1"[..]];
        assert_eq!((g1.last_id, g1.entries_read), (id(3, 0), ENTRIES_READ_UNKNOWN));
        let owners: Vec<(StreamId, &[u8], u64)> =
            g1.pel.iter().map(|(id, p)| (*id, &p.consumer[..], p.delivery_count)).collect();
        assert_eq!(
            owners,
            [(id(1, 1), &b"alice"[..], 1), (id(2, 0), b"alice", 1), (id(3, 0), b"bob", 1)]
        );
        let alice = &g1.consumers[&b"alice"[..]];
        assert_eq!(alice.pel.iter().copied().collect::<Vec<_>>(), [id(1, 1), id(2, 0)]);
        assert_eq!(alice.seen_time, g1.pel[&id(1, 1)].delivery_time);
        assert!(g1.consumers[&b"carol"[..]].pel.is_empty());
        assert!(g1.consumers[&b"carol"[..]].seen_time >= alice.seen_time);

        let e = restore(&unhex(EMPTY)).unwrap();
        assert!(e.nodes.is_empty());
        assert_eq!((e.length, e.last_id, e.entries_added), (0, StreamId::MIN, 0));
        let d = restore(&unhex(DRAINED)).unwrap();
        assert_eq!(
            (d.length, d.last_id, d.first_id, d.max_deleted_entry_id, d.entries_added),
            (0, id(10, 1), StreamId::MIN, id(10, 1), 1)
        );
    }

    #[test]
    fn compression_changes_nothing_but_the_bytes() {
        let s = restore(&unhex(S)).unwrap();
        let packed = payload::dump(&Value::Stream(Box::new(s.clone())), true);
        assert!(packed.len() < unhex(S).len());
        let back = restore(&packed).unwrap();
        assert_eq!(payload::dump(&Value::Stream(Box::new(back)), false), unhex(S));
    }

    /// Truncating the value anywhere is an error; flipping bits anywhere is an error or loads
    /// a stream that encodes and decodes back to itself. Never a panic.
    #[test]
    fn truncated_and_flipped_payloads_never_panic() {
        let full = unhex(S);
        let value = &full[..full.len() - 10];
        for cut in 1..value.len() {
            assert!(restore(&wrap(&value[..cut])).is_err(), "cut at {cut}");
        }
        let mut loaded = 0;
        for i in 1..value.len() {
            for mask in [0x01u8, 0x02, 0x10, 0x80, 0xFF] {
                let mut v = value.to_vec();
                v[i] ^= mask;
                if let Ok(s) = restore(&wrap(&v)) {
                    loaded += 1;
                    let _ = live_entries(&s).count();
                    let again = payload::dump(&Value::Stream(Box::new(s)), false);
                    let s2 = restore(&again).expect("our own payload loads");
                    assert_eq!(payload::dump(&Value::Stream(Box::new(s2)), false), again);
                }
            }
        }
        // Flipped field values and times are valid data; flipped structure is not.
        assert!(loaded > 0 && loaded < value.len() * 5, "{loaded} loaded");
    }

    #[test]
    fn corrupt_nodes_are_refused() {
        let f: Fields<'_> = &[(b"a", b"1")];
        let good = one_node(&[(id(5, 0), false, f), (id(5, 1), true, f), (id(6, 0), false, f)]);
        assert!(restore(&wrap(&body(&good))).is_ok());

        let mut s = good.clone();
        s.length = 3;
        assert!(load_err(&body(&s)).contains("stream length 3 does not match its 2 live"));
        let mut s = good.clone();
        s.last_id = id(5, 9);
        assert!(load_err(&body(&s)).contains("stream entry 6-0 is above the stream's last ID 5-9"));

        // The master ID is not the first entry's.
        let mut s = good.clone();
        s.nodes.insert(id(5, 0), node(id(4, 0), &[(id(5, 0), false, f), (id(6, 0), false, f)]));
        assert!(load_err(&body(&s)).contains("first entry does not have the node's master ID"));
        // Duplicate and decreasing IDs, within a node and across nodes.
        for entries in [[id(5, 0), id(5, 0)], [id(5, 0), id(4, 0)]] {
            let s = one_node(&[(entries[0], false, f), (entries[1], false, f)]);
            assert!(load_err(&body(&s)).contains("IDs do not increase"), "{entries:?}");
        }
        let mut s = good.clone();
        s.nodes.insert(id(5, 1), node(id(5, 1), &[(id(5, 1), false, f)]));
        s.length += 1;
        assert!(load_err(&body(&s)).contains("IDs do not increase"));
        // Counts in the master entry that disagree with the flags.
        let mut s = good.clone();
        let lp = s.nodes.get_mut(&id(5, 0)).unwrap();
        assert_eq!((lp[6], lp[8]), (2, 1)); // live, deleted (each followed by its backlen)
        lp[6] = 3;
        lp[8] = 0;
        assert!(load_err(&body(&s)).contains("entry counts do not match"));
        // A listpack that is not one, an empty one, one with a bad lp-count.
        let mut s = good.clone();
        s.nodes.get_mut(&id(5, 0)).unwrap()[0] ^= 1;
        assert!(load_err(&body(&s)).contains("listpack size header"));
        let mut s = good.clone();
        s.nodes.insert(id(5, 0), vec![7, 0, 0, 0, 0, 0, 0xFF]);
        assert!(load_err(&body(&s)).contains("empty listpack in a stream node"));
        let mut s = good.clone();
        let lp = s.nodes.get_mut(&id(5, 0)).unwrap();
        let last = lp.len() - 3; // the last entry's lp-count (4), then its backlen, then 0xFF
        assert_eq!(lp[last], 4);
        lp[last] = 5;
        assert!(load_err(&body(&s)).contains("lp-count"));
        // Unknown flags.
        let mut s = good.clone();
        let lp = s.nodes.get_mut(&id(5, 0)).unwrap();
        let at = 6 + 2 * 4 + 3; // live, deleted, count, 0 (2 bytes each), field "a" (3)
        assert_eq!(lp[at], 2);
        lp[at] = 6;
        assert!(load_err(&body(&s)).contains("unknown flags"));

        // A node key that is not 16 bytes.
        let mut raw = vec![t::STREAM_LISTPACKS_2, 1, 15];
        raw.extend_from_slice(&[0; 15]);
        raw.extend_from_slice(&[0; 20]);
        assert!(load_err(&raw).contains("stream node key is 15 bytes"));
        // Hostile counts end with an error, not an allocation or a panic.
        for huge in [
            &[0x81u8, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF][..],
            &[0x80, 0xFF, 0xFF, 0xFF, 0xFF],
        ] {
            let mut raw = vec![t::STREAM_LISTPACKS_2];
            raw.extend_from_slice(huge);
            assert!(restore(&wrap(&raw)).is_err());
            let mut empty_then_groups = vec![t::STREAM_LISTPACKS_2, 0, 0, 0, 0, 0, 0, 0, 0, 0];
            empty_then_groups.extend_from_slice(huge);
            assert!(restore(&wrap(&empty_then_groups)).is_err());
        }
    }

    fn with_groups() -> Stream {
        let f: Fields<'_> = &[(b"a", b"1")];
        let mut s = one_node(&[(id(5, 0), false, f), (id(6, 0), false, f), (id(7, 0), false, f)]);
        let mut g = ConsumerGroup { last_id: id(7, 0), entries_read: 3, ..Default::default() };
        for (entry, owner) in [(id(5, 0), &b"ca"[..]), (id(6, 0), b"ca"), (id(7, 0), b"cb")] {
            let p = PendingEntry { delivery_time: 1000, delivery_count: 2, consumer: owner.into() };
            g.pel.insert(entry, p);
            g.consumers.entry(owner.into()).or_default().pel.insert(entry);
        }
        s.groups.insert(b"ga"[..].into(), g.clone());
        s.groups.insert(b"gb"[..].into(), g);
        s
    }

    /// Replaces the one occurrence of `from` in `bytes` by `to` (same length).
    fn replace_once(bytes: &mut [u8], from: &[u8], to: &[u8]) {
        let at: Vec<usize> =
            (0..=bytes.len() - from.len()).filter(|&i| &bytes[i..i + from.len()] == from).collect();
        assert_eq!(at.len(), 1, "{from:?} occurs {} times", at.len());
        bytes[at[0]..at[0] + to.len()].copy_from_slice(to);
    }

    #[test]
    fn inconsistent_groups_are_refused() {
        let good = with_groups();
        let back = restore(&wrap(&body(&good))).unwrap();
        assert_eq!(body(&back), body(&good));

        let mut raw = body(&good);
        replace_once(&mut raw, b"\x02gb", b"\x02ga");
        assert!(load_err(&raw).contains("duplicate consumer group 'ga'"));

        let mut s = good.clone();
        s.groups.remove(&b"gb"[..]);
        let mut raw = body(&s);
        replace_once(&mut raw, b"\x02cb", b"\x02ca");
        assert!(load_err(&raw).contains("duplicate consumer 'ca'"));

        // Group PEL: 5-0, 6-0, 7-0; make the second 5-0 as well.
        let mut raw = body(&s);
        let mut pel = id(5, 0).to_be_bytes().to_vec();
        pel.extend_from_slice(&1000i64.to_le_bytes());
        pel.push(2);
        let six = [&id(6, 0).to_be_bytes()[..], &1000i64.to_le_bytes()].concat();
        replace_once(&mut raw, &six, &pel[..24]);
        assert!(load_err(&raw).contains("duplicate entry 5-0 in a consumer group's PEL"));

        let mut t = s.clone();
        let g = t.groups.get_mut(&b"ga"[..]).unwrap();
        g.consumers.get_mut(&b"ca"[..]).unwrap().pel.remove(&id(6, 0));
        assert!(
            load_err(&body(&t)).contains("pending entry 6-0 of a consumer group has no consumer")
        );

        let mut t = s.clone();
        let g = t.groups.get_mut(&b"ga"[..]).unwrap();
        g.pel.remove(&id(6, 0));
        assert!(
            load_err(&body(&t)).contains("consumer's pending entry 6-0 is not in the group's PEL")
        );

        let mut t = s.clone();
        let g = t.groups.get_mut(&b"ga"[..]).unwrap();
        g.consumers.get_mut(&b"cb"[..]).unwrap().pel.insert(id(6, 0));
        assert!(load_err(&body(&t)).contains("pending entry 6-0 is owned by two consumers"));

        // A consumer listing the same entry twice.
        let mut t = s.clone();
        let g = t.groups.get_mut(&b"ga"[..]).unwrap();
        g.consumers.get_mut(&b"ca"[..]).unwrap().pel.remove(&id(6, 0));
        g.consumers.get_mut(&b"ca"[..]).unwrap().pel.insert(id(4, 0));
        g.pel.insert(id(4, 0), g.pel[&id(5, 0)].clone());
        let mut raw = body(&t);
        // ca's PEL: 2 × 16 bytes (4-0, 5-0) right after "ca" and its seen time.
        let at = raw.windows(3).position(|w| w == b"\x02ca").unwrap() + 3 + 8 + 1;
        let five = id(5, 0).to_be_bytes();
        raw[at..at + 16].copy_from_slice(&five);
        assert!(load_err(&raw).contains("duplicate entry 5-0 in a consumer's PEL"));
    }

    /// `s` as type 15 writes it: type 19 without the 7.0 fields.
    fn body_v1(s: &Stream) -> Vec<u8> {
        let mut enc = ValueEncoder::new(false);
        let mut out = vec![t::STREAM_LISTPACKS];
        write_len(&mut out, s.nodes.len() as u64);
        for (master, lp) in &s.nodes {
            enc.string(&mut out, &master.to_be_bytes());
            enc.string(&mut out, lp);
        }
        write_len(&mut out, s.length);
        write_id(&mut out, s.last_id);
        write_len(&mut out, s.groups.len() as u64);
        for (name, g) in &s.groups {
            assert!(g.pel.is_empty() && g.consumers.is_empty());
            enc.string(&mut out, name);
            write_id(&mut out, g.last_id);
            out.extend_from_slice(&[0, 0]); // no PEL, no consumers
        }
        out
    }

    /// Type 15 (Redis 5 to 6.2) has no first ID, deletion mark, entries-added or read
    /// counters: they are derived as Redis 7.0 derives them.
    #[test]
    fn type_15_gets_redis_defaults() {
        let mut s = with_groups();
        s.nodes = BTreeMap::from([(
            id(5, 0),
            node(
                id(5, 0),
                &[
                    (id(5, 0), true, &[(b"a", b"1")]),
                    (id(6, 0), false, &[(b"a", b"1")]),
                    (id(7, 0), false, &[(b"a", b"1")]),
                ],
            ),
        )]);
        s.length = 2;
        let read_at = [id(0, 1), id(6, 0), id(6, 5), id(7, 0), id(8, 0)];
        s.groups = read_at
            .iter()
            .enumerate()
            .map(|(i, last)| {
                let g = ConsumerGroup { last_id: *last, ..Default::default() };
                (vec![b'g', b'0' + i as u8].into_boxed_slice(), g)
            })
            .collect();
        let v1 = body_v1(&s);
        let l = restore(&wrap(&v1)).expect("type 15 loads");
        assert_eq!(
            (l.length, l.last_id, l.first_id, l.max_deleted_entry_id, l.entries_added),
            (2, id(7, 0), id(6, 0), StreamId::MIN, 2)
        );
        let read: Vec<i64> = l.groups.values().map(|g| g.entries_read).collect();
        // Before the first entry: 0 read; the first: 1; between: unknown; the last: all; after.
        assert_eq!(read, [0, 1, ENTRIES_READ_UNKNOWN, 2, ENTRIES_READ_UNKNOWN]);
        // An empty type 15 stream: first ID as Redis's edge lookup leaves it.
        let l = restore(&wrap(&[t::STREAM_LISTPACKS, 0, 0, 0, 0, 0])).expect("loads");
        assert_eq!((l.first_id, l.entries_added), (StreamId::MAX, 0));
    }
}
