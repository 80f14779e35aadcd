//! SLOWLOG: the most recent commands that ran longer than `slowlog-log-slower-than`.

use std::collections::VecDeque;

use bytes::Bytes;

/// One slow command.
#[derive(Debug, Clone)]
pub struct SlowEntry {
    /// Increasing id.
    pub id: u64,
    /// Unix seconds when it ran.
    pub time: i64,
    /// How long it took, in microseconds.
    pub micros: u64,
    /// Its arguments (at most 32, each at most 128 bytes, as Redis trims them).
    pub argv: Vec<Bytes>,
    /// The client's address.
    pub addr: String,
    /// The client's name.
    pub name: String,
}

/// The slow log.
#[derive(Debug, Default)]
pub struct SlowLog {
    /// Newest first.
    pub entries: VecDeque<SlowEntry>,
    next_id: u64,
}

impl SlowLog {
    /// Records a slow command, keeping at most `max_len` entries.
    pub fn push(&mut self, mut entry: SlowEntry, max_len: usize) {
        const MAX_ARGC: usize = 32;
        const MAX_ARG_LEN: usize = 128;
        if entry.argv.len() > MAX_ARGC {
            let more = entry.argv.len() - MAX_ARGC + 1;
            entry.argv.truncate(MAX_ARGC - 1);
            entry.argv.push(Bytes::from(format!("... ({more} more arguments)")));
        }
        for arg in &mut entry.argv {
            if arg.len() > MAX_ARG_LEN {
                let more = arg.len() - MAX_ARG_LEN;
                let mut trimmed = arg[..MAX_ARG_LEN].to_vec();
                trimmed.extend_from_slice(format!("... ({more} more bytes)").as_bytes());
                *arg = Bytes::from(trimmed);
            }
        }
        entry.id = self.next_id;
        self.next_id += 1;
        self.entries.push_front(entry);
        self.entries.truncate(max_len);
    }

    /// Forgets every entry.
    pub fn reset(&mut self) {
        self.entries.clear();
    }
}
