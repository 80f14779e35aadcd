//! Redis's testing knobs that slow snapshots down on purpose: `rdb-key-save-delay` (per key
//! written by any save) and `key-load-delay` (per key read by any load). Test suites use them
//! to hold a BGSAVE, a full sync or a load open long enough to act during it.
//!
//! A value `n > 0` waits `n` µs per key; `n < 0` waits 1 µs once per `-n` keys (Redis waits
//! 1 µs with probability `1/-n`, to pace finer than one sleep per key allows); 0 never waits.
//!
//! A save writes its keys in chunks under the keyspace lock (see [`super::snapshot`]); it must
//! not sleep there, or every client would wait, where Redis's forked child sleeps alone. So a
//! paced snapshot writes one key per chunk and waits [`Pace::after`] between chunks, with the
//! lock released. A foreground save (SAVE, SHUTDOWN) sleeps in place, blocking clients as
//! Redis's SAVE does.

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

/// `rdb-key-save-delay`, as configured now.
pub static SAVE_DELAY: AtomicI64 = AtomicI64::new(0);
/// `key-load-delay`, as configured now.
pub static LOAD_DELAY: AtomicI64 = AtomicI64::new(0);

/// A per-key delay, fixed when a save or load starts (as a forked child keeps the value it was
/// born with).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pace(i64);

impl Pace {
    /// The save delay configured now.
    pub fn save() -> Pace {
        Pace(SAVE_DELAY.load(Ordering::Relaxed))
    }

    /// The load delay configured now.
    pub fn load() -> Pace {
        Pace(LOAD_DELAY.load(Ordering::Relaxed))
    }

    /// No delay.
    pub fn is_off(self) -> bool {
        self.0 == 0
    }

    /// The most keys to write between two waits: one when every key waits.
    pub fn keys_per_chunk(self, normal: usize) -> usize {
        if self.0 > 0 {
            1
        } else {
            normal
        }
    }

    /// How long to wait after `keys` keys (the `keys_done` before them decide where the
    /// once-per-`n` waits of a negative delay fall).
    pub fn after(self, keys_done: u64, keys: u64) -> Duration {
        match self.0 {
            0 => Duration::ZERO,
            n if n > 0 => Duration::from_micros(n as u64 * keys),
            n => {
                let every = n.unsigned_abs();
                Duration::from_micros((keys_done + keys) / every - keys_done / every)
            }
        }
    }

    /// Waits after one more key on this thread (a load, or a save that blocks anyway).
    /// `keys_done` counts the keys before it.
    pub fn wait_one(self, keys_done: u64) {
        let wait = self.after(keys_done, 1);
        if !wait.is_zero() {
            std::thread::sleep(wait);
        }
    }
}

/// Between two chunks of a snapshot written on the event loop: lets other tasks run, and
/// waits out `pause` (a [`Pace`]'s delay) without holding anything.
pub async fn between_chunks(pause: Duration) {
    if pause.is_zero() {
        tokio::task::yield_now().await
    } else {
        tokio::time::sleep(pause).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_positive_delay_waits_per_key_and_a_negative_one_once_per_n_keys() {
        assert_eq!(Pace(0).after(0, 1000), Duration::ZERO);
        assert_eq!(Pace(250).after(7, 4), Duration::from_micros(1000));
        assert_eq!(Pace(250).keys_per_chunk(500), 1);
        assert_eq!(Pace(-10).keys_per_chunk(500), 500);
        // Once per 10 keys, wherever the chunks fall.
        let total: Duration = (0..100).map(|i| Pace(-10).after(i * 7, 7)).sum();
        assert_eq!(total, Duration::from_micros(70));
        assert_eq!(Pace(-10).after(0, 9), Duration::ZERO);
        assert_eq!(Pace(-10).after(9, 1), Duration::from_micros(1));
    }
}
