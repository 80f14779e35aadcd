//! A key's access stamp: Redis's 24-bit `lru` field, which holds either the clock of the key's
//! last access (LRU) or, under an LFU `maxmemory-policy`, a logarithmic access counter and the
//! minute it last decayed (LFU).
//!
//! As in Redis, which reading applies is a server-wide setting ([`configure`]), and switching
//! policies at runtime leaves old stamps to be reinterpreted: they adjust as keys are accessed.

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering::Relaxed};

use rand::Rng;

/// The stamp. Under LRU: unix seconds modulo 2^24 (it wraps every 194 days, as Redis's does).
/// Under LFU: the minute of the last decrement (16 bits, unix minutes modulo 2^16) over an 8-bit
/// counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lru(pub u32);

/// The global clock, advanced by the server cron (like Redis's `server.lruclock`), so stamping a
/// key is one load.
static LRU_CLOCK: AtomicU32 = AtomicU32::new(0);
/// Unix minutes modulo 2^16, advanced with the clock.
static MINUTES: AtomicU32 = AtomicU32::new(0);
/// An LFU policy is selected.
static LFU: AtomicBool = AtomicBool::new(false);
/// `lfu-log-factor`: how many accesses it takes to raise the counter.
static LOG_FACTOR: AtomicU32 = AtomicU32::new(10);
/// `lfu-decay-time`: minutes per decrement of an idle key's counter (0: never).
static DECAY_MINUTES: AtomicU32 = AtomicU32::new(1);

/// The counter of a new key, so it is not the first candidate for eviction (Redis's
/// `LFU_INIT_VAL`).
pub const LFU_INIT: u32 = 5;

/// Selects how stamps are kept, from `maxmemory-policy`, `lfu-log-factor` and `lfu-decay-time`.
pub fn configure(lfu: bool, log_factor: u32, decay_minutes: u32) {
    LFU.store(lfu, Relaxed);
    LOG_FACTOR.store(log_factor, Relaxed);
    DECAY_MINUTES.store(decay_minutes, Relaxed);
}

/// True while stamps are LFU data.
pub fn is_lfu() -> bool {
    LFU.load(Relaxed)
}

impl Lru {
    /// The LRU clock's range.
    pub const MAX: u32 = (1 << 24) - 1;

    /// The current LRU clock.
    pub fn now() -> Lru {
        Lru(LRU_CLOCK.load(Relaxed))
    }

    /// Advances the clocks to `now_ms`.
    pub fn tick(now_ms: i64) {
        LRU_CLOCK.store(((now_ms / 1000) as u32) & Self::MAX, Relaxed);
        MINUTES.store(((now_ms / 60_000) as u32) & 0xffff, Relaxed);
    }

    /// Milliseconds since this stamp, at seconds resolution, across one wrap of the clock.
    pub fn idle_ms(self, now: Lru) -> u64 {
        let seconds = if now.0 >= self.0 { now.0 - self.0 } else { Self::MAX - self.0 + now.0 };
        seconds as u64 * 1000
    }

    /// An LRU stamp `seconds` before the current clock.
    pub fn idle_for(seconds: u64) -> Lru {
        let clock = LRU_CLOCK.load(Relaxed) as u64;
        let back = seconds % (Self::MAX as u64 + 1);
        Lru(((clock + Self::MAX as u64 + 1 - back) & Self::MAX as u64) as u32)
    }

    /// An LFU stamp holding `counter`, decayed as of now.
    pub fn with_count(counter: u8) -> Lru {
        Lru((MINUTES.load(Relaxed) << 8) | counter as u32)
    }

    /// Records an access: the current clock, or under LFU the counter decayed for the time the
    /// key sat idle and then raised with a probability that falls as it grows.
    pub fn touch(&mut self) {
        if is_lfu() {
            let factor = LOG_FACTOR.load(Relaxed);
            let counter = log_increment(self.lfu_count(), factor, &mut rand::thread_rng());
            *self = Lru((MINUTES.load(Relaxed) << 8) | counter);
        } else {
            *self = Lru::now();
        }
    }

    /// The LFU counter after the decay owed for the minutes since it last decayed (Redis's
    /// `LFUDecrAndReturn`; reading it changes nothing).
    pub fn lfu_count(self) -> u32 {
        let counter = self.0 & 0xff;
        let decay = DECAY_MINUTES.load(Relaxed);
        if decay == 0 {
            return counter;
        }
        let last = self.0 >> 8;
        let now = MINUTES.load(Relaxed);
        let elapsed = if now >= last { now - last } else { 0xffff - last + now };
        counter.saturating_sub(elapsed / decay)
    }
}

impl Default for Lru {
    /// The stamp of a new key: the current clock, or under LFU a counter of [`LFU_INIT`].
    fn default() -> Lru {
        if is_lfu() {
            Lru((MINUTES.load(Relaxed) << 8) | LFU_INIT)
        } else {
            Lru::now()
        }
    }
}

/// Raises an LFU counter by one with probability 1 / ((counter - LFU_INIT) * log_factor + 1),
/// saturating at 255 (Redis's `LFULogIncr`): a million accesses reach about 255 at factor 10.
fn log_increment(counter: u32, log_factor: u32, rng: &mut impl Rng) -> u32 {
    if counter >= 255 {
        return 255;
    }
    let base = counter.saturating_sub(LFU_INIT) as f64;
    let p = 1.0 / (base * log_factor as f64 + 1.0);
    if rng.gen::<f64>() < p {
        counter + 1
    } else {
        counter
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stamp_idle_for_some_seconds_reads_back_that_idle_time() {
        // The real clock (as the cron sets it), not 0, where the wrap makes Redis's idle time
        // a second short too.
        Lru::tick(crate::server::unix_ms());
        let now = Lru::now();
        assert_eq!(Lru::idle_for(30).idle_ms(now), 30_000);
        assert_eq!(Lru::idle_for(0).idle_ms(now), 0);
    }

    #[test]
    fn lru_idle_time_spans_the_clock_wrap() {
        assert_eq!(Lru(100).idle_ms(Lru(130)), 30_000);
        assert_eq!(Lru(Lru::MAX - 5).idle_ms(Lru(4)), 9_000);
        assert_eq!(Lru(7).idle_ms(Lru(7)), 0);
    }

    /// The counter grows logarithmically: the first accesses raise it every time, later ones
    /// rarely (at factor 10, a hundred accesses end near 10, not near 100).
    #[test]
    fn lfu_counter_grows_logarithmically_and_saturates() {
        let mut rng = rand::thread_rng();
        assert_eq!(log_increment(LFU_INIT, 10, &mut rng), LFU_INIT + 1);
        let mut counter = LFU_INIT;
        for _ in 0..100 {
            counter = log_increment(counter, 10, &mut rng);
        }
        assert!((LFU_INIT + 3..LFU_INIT + 30).contains(&counter), "{counter}");
        assert_eq!(log_increment(255, 10, &mut rng), 255);
    }
}
