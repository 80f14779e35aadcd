//! The ACL log (ACL LOG): recent denied commands and failed logins, newest first. A new
//! event like one of the ten newest (same reason, context, object and user, within a minute)
//! bumps that entry's count and moves it to the front instead of adding one, as in Redis.

use std::collections::VecDeque;

use bytes::Bytes;

/// Where a denial happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Context {
    /// A command sent on its own.
    Toplevel,
    /// Queued in MULTI, or at EXEC.
    Multi,
    /// `redis.call` from a script.
    Lua,
}

impl Context {
    fn name(self) -> &'static str {
        match self {
            Context::Toplevel => "toplevel",
            Context::Multi => "multi",
            Context::Lua => "lua",
        }
    }
}

/// One entry.
#[derive(Debug, Clone)]
pub struct LogEntry {
    /// How many times it happened.
    pub count: u64,
    /// `command`, `key`, `channel` or `auth`.
    pub reason: &'static str,
    /// Where.
    pub context: Context,
    /// The command, key or channel denied (`AUTH` as typed for a failed login).
    pub object: Bytes,
    /// The user (for a failed login, the one asked for).
    pub username: Bytes,
    /// Unix ms of the last occurrence.
    pub time_ms: i64,
    /// The client's CLIENT LIST line at the last occurrence (without its newline).
    pub client_info: String,
}

/// Events within this many milliseconds of an entry are counted in it.
const GROUPING_MS: i64 = 60_000;

/// The log.
#[derive(Debug, Default)]
pub struct AclLog {
    entries: VecDeque<LogEntry>,
}

impl AclLog {
    /// Records an event, keeping at most `max_len` entries.
    pub fn add(&mut self, entry: LogEntry, max_len: usize) {
        let similar = self.entries.iter().take(10).position(|e| {
            e.reason == entry.reason
                && e.context == entry.context
                && (e.time_ms - entry.time_ms).abs() <= GROUPING_MS
                && e.object == entry.object
                && e.username == entry.username
        });
        match similar {
            Some(i) => {
                let mut found = self.entries.remove(i).expect("the index was just found");
                found.count += 1;
                found.time_ms = entry.time_ms;
                found.client_info = entry.client_info;
                self.entries.push_front(found);
            }
            None => {
                self.entries.push_front(entry);
                self.entries.truncate(max_len);
            }
        }
    }

    /// Forgets every entry (ACL LOG RESET).
    pub fn reset(&mut self) {
        self.entries.clear();
    }

    /// The `count` newest entries.
    pub fn newest(&self, count: usize) -> impl Iterator<Item = &LogEntry> {
        self.entries.iter().take(count)
    }

    /// The number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True if empty.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

impl LogEntry {
    /// The entry as ACL LOG replies with it, `now_ms` giving its age.
    pub fn to_frame(&self, now_ms: i64) -> common::resp::Frame {
        use common::resp::Frame;
        let age = (now_ms - self.time_ms) as f64 / 1000.0;
        Frame::Map(vec![
            (Frame::bulk_static("count"), Frame::Integer(self.count as i64)),
            (Frame::bulk_static("reason"), Frame::bulk_static(self.reason)),
            (Frame::bulk_static("context"), Frame::bulk_static(self.context.name())),
            (Frame::bulk_static("object"), Frame::Bulk(self.object.clone())),
            (Frame::bulk_static("username"), Frame::Bulk(self.username.clone())),
            (Frame::bulk_static("age-seconds"), Frame::Double(age)),
            (Frame::bulk_static("client-info"), Frame::Bulk(Bytes::from(self.client_info.clone()))),
        ])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(object: &'static str, time_ms: i64) -> LogEntry {
        LogEntry {
            count: 1,
            reason: "key",
            context: Context::Toplevel,
            object: Bytes::from_static(object.as_bytes()),
            username: Bytes::from_static(b"u"),
            time_ms,
            client_info: String::new(),
        }
    }

    #[test]
    fn similar_events_are_grouped_and_the_log_is_bounded() {
        let mut log = AclLog::default();
        log.add(event("a", 0), 2);
        log.add(event("b", 10), 2);
        log.add(event("a", 20), 2);
        let firsts: Vec<_> = log.newest(10).map(|e| (e.object.clone(), e.count)).collect();
        assert_eq!(firsts, [(Bytes::from_static(b"a"), 2), (Bytes::from_static(b"b"), 1)]);
        log.add(event("a", 20 + GROUPING_MS + 1), 2);
        log.add(event("c", 100_000), 2);
        assert_eq!(log.len(), 2);
        assert_eq!(log.newest(1).next().unwrap().object, Bytes::from_static(b"c"));
    }
}
