//! Keyspace notifications (`notify-keyspace-events`): pub/sub messages about changes to keys.
//!
//! Of Redis's event classes, expired-key events (`x`) are implemented: when a key is deleted
//! because its time ran out (found expired by a command, or by the active expiry cycle),
//! `__keyspace@<db>__:<key>` receives `expired` (with `K`) and `__keyevent@<db>__:expired`
//! receives the key (with `E`). A setting asking for another class is refused by name, so no
//! application waits for events that never come.

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

    /// Classes asked for that warden-node does not emit.
    pub fn unsupported(&self) -> bool {
        self.0 & !(KEYSPACE | KEYEVENT | EXPIRED) != 0
    }

    /// Whether expired-key events go out (the class and at least one of K and E).
    pub fn expired(&self) -> bool {
        self.0 & EXPIRED != 0 && self.0 & (KEYSPACE | KEYEVENT) != 0
    }
}

/// Publishes the `expired` events of keys the last command or expiry cycle deleted. Called
/// with the keyspace locked, after each command and each active expiry cycle.
pub fn flush_expired(shared: &Shared, ks: &mut crate::db::Keyspace) {
    if ks.expired_events.is_empty() {
        return;
    }
    let keys = std::mem::take(&mut ks.expired_events);
    expired(shared, ks.notify, &keys);
}

/// Publishes `expired` events for keys deleted by expiry, by database.
fn expired(shared: &Shared, flags: EventFlags, keys: &[(usize, Sds)]) {
    for (db, key) in keys {
        if flags.0 & KEYSPACE != 0 {
            let mut channel = format!("__keyspace@{db}__:").into_bytes();
            channel.extend_from_slice(key);
            crate::pubsub::publish(shared, &Bytes::from(channel), &Bytes::from_static(b"expired"));
        }
        if flags.0 & KEYEVENT != 0 {
            let channel = Bytes::from(format!("__keyevent@{db}__:expired"));
            crate::pubsub::publish(shared, &channel, &Bytes::copy_from_slice(key));
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
        assert!(!EventFlags::parse("KEx").unwrap().unsupported());
        assert!(EventFlags::parse("KEA").unwrap().unsupported());
        assert!(EventFlags::parse("Ex").unwrap().expired());
        assert!(!EventFlags::parse("x").unwrap().expired());
    }
}
