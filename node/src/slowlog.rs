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

/// The arguments an entry keeps, as Redis trims them: at most 32 (the last saying how many
/// more there were), each at most 128 bytes (saying how many more). They are copied, so an
/// entry never holds on to the connection's input buffer or a huge argument list: a
/// 100,000-argument SADD keeps 32 small strings, not megabytes.
pub fn kept_args(argv: &[Bytes]) -> Vec<Bytes> {
    const MAX_ARGC: usize = 32;
    const MAX_ARG_LEN: usize = 128;
    let shown = if argv.len() > MAX_ARGC { MAX_ARGC - 1 } else { argv.len() };
    let mut kept: Vec<Bytes> = argv[..shown]
        .iter()
        .map(|arg| {
            if arg.len() > MAX_ARG_LEN {
                let more = arg.len() - MAX_ARG_LEN;
                let mut trimmed = arg[..MAX_ARG_LEN].to_vec();
                trimmed.extend_from_slice(format!("... ({more} more bytes)").as_bytes());
                Bytes::from(trimmed)
            } else {
                Bytes::copy_from_slice(arg)
            }
        })
        .collect();
    if argv.len() > MAX_ARGC {
        kept.push(Bytes::from(format!("... ({} more arguments)", argv.len() - shown)));
    }
    kept
}

/// The slow log.
#[derive(Debug, Default)]
pub struct SlowLog {
    /// Newest first.
    pub entries: VecDeque<SlowEntry>,
    next_id: u64,
}

impl SlowLog {
    /// Records a slow command, keeping at most `max_len` entries. Its arguments should come
    /// from [`kept_args`].
    pub fn push(&mut self, mut entry: SlowEntry, max_len: usize) {
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

/// Logs `argv`, run by `client` for `micros`, if that is at least `threshold` (negative:
/// nothing is logged), keeping `max_len` entries. Secrets are redacted first.
pub fn log_if_slow(
    shared: &crate::server::Shared,
    client: &crate::client::ClientState,
    argv: &[Bytes],
    micros: u64,
    threshold: i64,
    max_len: usize,
) {
    if threshold < 0 || micros < threshold as u64 {
        return;
    }
    let entry = SlowEntry {
        id: 0,
        time: crate::server::unix_ms() / 1000,
        micros,
        argv: kept_args(&crate::redact::redacted(argv)),
        addr: client.addr.to_string(),
        name: client
            .name
            .as_ref()
            .map(|n| String::from_utf8_lossy(n).into_owned())
            .unwrap_or_default(),
    };
    shared.slowlog.lock().push(entry, max_len);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kept_args_are_trimmed_copies() {
        let input = Bytes::from(vec![b'x'; 1 << 20]);
        let argv: Vec<Bytes> = (0..100_000).map(|i| input.slice(i..i + 2)).collect();
        let kept = kept_args(&argv);
        assert_eq!(kept.len(), 32);
        assert_eq!(&kept[31][..], b"... (99969 more arguments)");
        // Copies: the megabyte input is not kept alive by the entry.
        assert!(kept[..31]
            .iter()
            .all(|a| a.as_ptr() < input.as_ptr() || a.as_ptr() >= input[input.len()..].as_ptr()));
        let long = [Bytes::from(vec![b'v'; 300])];
        let kept = kept_args(&long);
        assert_eq!(kept[0].len(), 128 + b"... (172 more bytes)".len());
    }
}
