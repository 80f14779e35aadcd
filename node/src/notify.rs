//! Keyspace notifications (`notify-keyspace-events`): pub/sub messages about changes to keys.
//!
//! Commands record events as they change keys ([`crate::exec::Exec::notify`], Redis's
//! `notifyKeyspaceEvent` with the same event names and classes); expiry and eviction record
//! `expired` and `evicted`. Recording is skipped for classes the setting leaves out, so a server
//! without notifications pays one flag test per event. After each command (a whole transaction
//! or script) and each expiry cycle, [`flush`] publishes the recorded events in order:
//! `__keyspace@<db>__:<key>` receives the event name (with `K`) and `__keyevent@<db>__:<event>`
//! receives the key (with `E`).

use bytes::Bytes;

use crate::db::value::Sds;
use crate::server::Shared;

/// Redis's class characters in the order CONFIG GET prints them, with their bits.
const CLASSES: &[(char, u16)] = &[
    ('g', 1 << 2),
    ('$', 1 << 3),
    ('l', 1 << 4),
    ('s', 1 << 5),
    ('h', 1 << 6),
    ('z', 1 << 7),
    ('x', 1 << 8),
    ('e', 1 << 9),
    ('t', 1 << 10),
    ('d', 1 << 11),
    ('n', 1 << 13),
];
/// `m`: key-miss events, printed after K and E.
const KEY_MISS: u16 = 1 << 12;
const KEYSPACE: u16 = 1;
const KEYEVENT: u16 = 1 << 1;
const EXPIRED: u16 = 1 << 8;

/// The event classes a command names when it records an event (Redis's `NOTIFY_*`).
pub mod class {
    /// `g`: generic commands (DEL, EXPIRE, RENAME …).
    pub const GENERIC: u16 = 1 << 2;
    /// `$`: string commands.
    pub const STRING: u16 = 1 << 3;
    /// `l`: list commands.
    pub const LIST: u16 = 1 << 4;
    /// `s`: set commands.
    pub const SET: u16 = 1 << 5;
    /// `h`: hash commands.
    pub const HASH: u16 = 1 << 6;
    /// `z`: sorted-set commands.
    pub const ZSET: u16 = 1 << 7;
    /// `t`: stream commands.
    pub const STREAM: u16 = 1 << 10;
    /// `x`: a key deleted because its time ran out.
    pub const EXPIRED: u16 = super::EXPIRED;
    /// `e`: a key evicted for `maxmemory`.
    pub const EVICTED: u16 = 1 << 9;
    /// `m`: a read of a missing key.
    pub const KEY_MISS: u16 = super::KEY_MISS;
    /// `n`: a key added to a database.
    pub const NEW: u16 = 1 << 13;
}

/// One recorded event, published at the next [`flush`].
#[derive(Debug, Clone)]
pub struct Event {
    /// The database of the key.
    pub db: usize,
    /// Redis's event name (`set`, `lpush`, `expired` …).
    pub name: &'static str,
    /// The key.
    pub key: Sds,
}
/// `A`: every class but `m` (key misses) and `n` (new keys), as in Redis.
const ALL: u16 = (1 << 2)
    | (1 << 3)
    | (1 << 4)
    | (1 << 5)
    | (1 << 6)
    | (1 << 7)
    | EXPIRED
    | (1 << 9)
    | (1 << 10)
    | (1 << 11);

/// The parsed setting.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EventFlags(u16);

impl EventFlags {
    /// Parses Redis's characters; the error is Redis's sentence.
    pub fn parse(text: &str) -> Result<EventFlags, String> {
        let mut bits = 0;
        for c in text.chars() {
            bits |= match c {
                'A' => ALL,
                'm' => KEY_MISS,
                'K' => KEYSPACE,
                'E' => KEYEVENT,
                c => match CLASSES.iter().find(|(ch, _)| *ch == c) {
                    Some((_, bit)) => *bit,
                    None => {
                        return Err(
                            "Invalid event class character. Use 'Ag$lshzxeKEtmdn'.".to_string()
                        )
                    }
                },
            };
        }
        Ok(EventFlags(bits))
    }

    /// The setting as CONFIG GET prints it (classes in Redis's order, `A` for all, then K, E).
    pub fn canonical(&self) -> String {
        let mut out = String::new();
        if self.0 & ALL == ALL {
            out.push('A');
        }
        for (c, bit) in CLASSES {
            let in_all = ALL & bit != 0;
            if self.0 & bit != 0 && !(in_all && self.0 & ALL == ALL) {
                out.push(*c);
            }
        }
        if self.0 & KEYSPACE != 0 {
            out.push('K');
        }
        if self.0 & KEYEVENT != 0 {
            out.push('E');
        }
        if self.0 & KEY_MISS != 0 {
            out.push('m');
        }
        out
    }

    /// Whether events of `class` go out: the class is on, and at least one of K and E.
    #[inline]
    pub fn wants(&self, class: u16) -> bool {
        self.0 & class != 0 && self.0 & (KEYSPACE | KEYEVENT) != 0
    }

    /// Records `name` about `key` of database `db` in `events` if events of `class` go out.
    /// (A method of the flags rather than of the keyspace, so callers still holding its tables
    /// can record into its other field.)
    #[inline]
    pub fn record(
        self,
        events: &mut Vec<Event>,
        db: usize,
        class: u16,
        name: &'static str,
        key: &[u8],
    ) {
        if self.wants(class) {
            events.push(Event { db, name, key: Sds::from_slice(key) });
        }
    }
}

/// Publishes the events recorded since the last round, in order. Called with the keyspace
/// locked, after each command and each active expiry cycle.
pub fn flush(shared: &Shared, ks: &mut crate::db::Keyspace) {
    if ks.events.is_empty() {
        return;
    }
    let flags = ks.notify;
    for event in std::mem::take(&mut ks.events) {
        if flags.0 & KEYSPACE != 0 {
            let mut channel = format!("__keyspace@{}__:", event.db).into_bytes();
            channel.extend_from_slice(&event.key);
            crate::pubsub::publish(
                shared,
                false,
                &Bytes::from(channel),
                &Bytes::from_static(event.name.as_bytes()),
            );
        }
        if flags.0 & KEYEVENT != 0 {
            let channel = Bytes::from(format!("__keyevent@{}__:{}", event.db, event.name));
            crate::pubsub::publish(shared, false, &channel, &Bytes::copy_from_slice(&event.key));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints_like_redis() {
        let canon = |s: &str| EventFlags::parse(s).unwrap().canonical();
        assert_eq!(canon("Ex"), "xE");
        assert_eq!(canon("KEA"), "AKE");
        assert_eq!(canon("Exg"), "gxE");
        assert_eq!(canon("KEx$"), "$xKE");
        assert_eq!(canon(""), "");
        assert!(EventFlags::parse("Eq").unwrap_err().starts_with("Invalid event class"));
        assert!(EventFlags::parse("Ex").unwrap().wants(EXPIRED));
        assert!(!EventFlags::parse("x").unwrap().wants(EXPIRED), "neither K nor E");
    }
}
