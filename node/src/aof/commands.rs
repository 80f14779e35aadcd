//! The AOF base in command form (`aof-use-rdb-preamble no`): the dataset as the commands that
//! rebuild it, as Redis's rewrite writes them — SELECT per database; SET, RPUSH, SADD, ZADD
//! (score then member) or HMSET per key, collections in batches of 64 items
//! (`AOF_REWRITE_ITEMS_PER_CMD`); a stream as Redis's `rewriteStreamObject` (XADD per entry,
//! XSETID, XGROUP CREATE, XCLAIM per pending entry, XGROUP CREATECONSUMER); PEXPIREAT for a key
//! with a TTL. Function libraries come first, as FUNCTION LOAD commands.

use std::io;

use crate::db::hash::Hash;
use crate::db::stream::{read, Stream};
use crate::db::Value;
use crate::persist::snapshot::Format;
use crate::persist::Aux;

/// Items per RPUSH/SADD/ZADD/HMSET command (Redis's `AOF_REWRITE_ITEMS_PER_CMD`).
const ITEMS_PER_COMMAND: usize = 64;

/// Writes keys as commands into an in-memory buffer.
#[derive(Default)]
pub struct CommandWriter {
    out: Vec<u8>,
}

impl CommandWriter {
    /// An empty writer.
    pub fn new() -> CommandWriter {
        CommandWriter::default()
    }

    fn command(&mut self, args: &[&[u8]]) {
        self.out.extend_from_slice(format!("*{}\r\n", args.len()).as_bytes());
        for a in args {
            self.out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
            self.out.extend_from_slice(a);
            self.out.extend_from_slice(b"\r\n");
        }
    }

    /// `name key item…` commands over `items`, each carrying at most `per` arguments.
    fn batched(&mut self, name: &[u8], key: &[u8], items: Vec<Vec<u8>>, per: usize) {
        for chunk in items.chunks(per) {
            let mut args: Vec<&[u8]> = vec![name, key];
            args.extend(chunk.iter().map(|i| i.as_slice()));
            self.command(&args);
        }
    }

    /// A stream as `rewriteStreamObject` writes it: one XADD per live entry (an empty stream
    /// is made by an XADD MAXLEN 0 of a dummy entry), XSETID restoring the last ID, entries
    /// added and greatest deleted ID, then per group XGROUP CREATE with its last ID and read
    /// counter, an XCLAIM … JUSTID FORCE per pending entry (consumer by consumer, which creates
    /// the consumer) and XGROUP CREATECONSUMER for a consumer with nothing pending. Consumers'
    /// seen times are not kept, as in Redis.
    fn stream(&mut self, key: &[u8], s: &Stream) {
        if s.length > 0 {
            for (id, fields) in read::live_entries(s) {
                let id = id.to_string();
                let mut args: Vec<&[u8]> = vec![b"XADD", key, id.as_bytes()];
                for (f, v) in &fields {
                    args.push(f);
                    args.push(v);
                }
                self.command(&args);
            }
        } else {
            self.command(&[b"XADD", key, b"MAXLEN", b"0", b"0-1", b"x", b"y"]);
        }
        self.command(&[
            b"XSETID",
            key,
            s.last_id.to_string().as_bytes(),
            b"ENTRIESADDED",
            (s.entries_added as i64).to_string().as_bytes(),
            b"MAXDELETEDID",
            s.max_deleted_entry_id.to_string().as_bytes(),
        ]);
        for (name, g) in &s.groups {
            self.command(&[
                b"XGROUP",
                b"CREATE",
                key,
                name,
                g.last_id.to_string().as_bytes(),
                b"ENTRIESREAD",
                g.entries_read.to_string().as_bytes(),
            ]);
            for (consumer, c) in &g.consumers {
                if c.pel.is_empty() {
                    self.command(&[b"XGROUP", b"CREATECONSUMER", key, name, consumer]);
                    continue;
                }
                for id in &c.pel {
                    let Some(p) = g.pel.get(id) else { continue };
                    self.command(&[
                        b"XCLAIM",
                        key,
                        name,
                        consumer,
                        b"0",
                        id.to_string().as_bytes(),
                        b"TIME",
                        (p.delivery_time as i64).to_string().as_bytes(),
                        b"RETRYCOUNT",
                        (p.delivery_count as i64).to_string().as_bytes(),
                        b"JUSTID",
                        b"FORCE",
                    ]);
                }
            }
        }
    }
}

impl Format for CommandWriter {
    type Out = Vec<u8>;

    /// The function libraries first, as Redis's rewrite starts with them: keys' commands may
    /// be replayed only after them (nothing in a base calls a function, but an AOF tail may).
    fn header(&mut self, aux: &Aux<'_>) -> io::Result<()> {
        for source in aux.functions {
            self.command(&[b"FUNCTION", b"LOAD", source]);
        }
        Ok(())
    }

    fn begin_db(&mut self, index: usize, _: usize, _: usize) -> io::Result<()> {
        self.command(&[b"SELECT", index.to_string().as_bytes()]);
        Ok(())
    }

    fn entry(&mut self, key: &[u8], value: &Value, expiry: Option<i64>) -> io::Result<()> {
        let per = ITEMS_PER_COMMAND;
        match value {
            Value::Str { bytes, .. } => self.command(&[b"SET", key, bytes]),
            Value::List(l) => {
                let items = l.items.iter().map(|i| i.to_vec()).collect();
                self.batched(b"RPUSH", key, items, per);
            }
            Value::Set(s) => {
                self.batched(b"SADD", key, s.iter().map(|m| m.to_vec()).collect(), per)
            }
            Value::ZSet(z) => {
                let mut items = Vec::with_capacity(z.len() * 2);
                for (member, score) in z.iter() {
                    items.push(common::fmt::format_double(score).into_bytes());
                    items.push(member.to_vec());
                }
                self.batched(b"ZADD", key, items, per * 2);
            }
            Value::Hash(h) => {
                let h: &Hash = h;
                let mut items = Vec::with_capacity(h.len() * 2);
                for (field, v) in h.iter() {
                    items.push(field.to_vec());
                    items.push(v.to_vec());
                }
                self.batched(b"HMSET", key, items, per * 2);
            }
            Value::Stream(s) => self.stream(key, s),
        }
        if let Some(at) = expiry {
            self.command(&[b"PEXPIREAT", key, at.to_string().as_bytes()]);
        }
        Ok(())
    }

    fn finish(self) -> io::Result<Vec<u8>> {
        Ok(self.out)
    }

    fn output_mut(&mut self) -> &mut Vec<u8> {
        &mut self.out
    }
}
