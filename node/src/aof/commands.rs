//! The AOF base in command form (`aof-use-rdb-preamble no`): the dataset as the commands that
//! rebuild it, as Redis's rewrite writes them — SELECT per database; SET, RPUSH, SADD, ZADD
//! (score then member) or HMSET per key, collections in batches of 64 items
//! (`AOF_REWRITE_ITEMS_PER_CMD`); PEXPIREAT for a key with a TTL. Function libraries come
//! first, as FUNCTION LOAD commands.

use std::io;

use crate::db::hash::Hash;
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
            Value::Stream(_) => {
                return Err(io::Error::other("streams cannot be rewritten into the AOF yet"))
            }
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
