//! `client-output-buffer-limit`: how much reply data may wait for a client before the server
//! disconnects it, per client class (normal clients, replicas, pub/sub subscribers).
//!
//! Redis's rule, kept here: a client is disconnected as soon as what waits for it reaches the
//! hard limit, or once it has stayed at or above the soft limit for longer than the soft
//! seconds (a client that drains below the soft limit starts the clock over). A limit of 0 is
//! off. What "waits" means per class is the caller's: a normal client's unsent replies and
//! pushes, a subscriber's queued messages, a replica's unsent part of the replication stream.

use std::time::{Duration, Instant};

/// One class's limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BufferLimit {
    /// Disconnect at once at this many waiting bytes (0: no hard limit).
    pub hard: usize,
    /// Disconnect after `soft_seconds` at or above this many bytes (0: no soft limit).
    pub soft: usize,
    /// How long the soft limit may be exceeded.
    pub soft_seconds: u64,
}

impl BufferLimit {
    /// Neither limit is set: no check is needed.
    pub fn is_off(&self) -> bool {
        self.hard == 0 && self.soft == 0
    }

    /// The smallest waiting size at which a check can matter.
    pub fn threshold(&self) -> usize {
        match (self.hard, self.soft) {
            (0, 0) => usize::MAX,
            (0, s) => s,
            (h, 0) => h,
            (h, s) => h.min(s),
        }
    }
}

/// The limits of the three classes, as `client-output-buffer-limit` sets them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutputLimits {
    /// Ordinary clients (and MONITOR).
    pub normal: BufferLimit,
    /// Replicas (`replica`, or its old name `slave`).
    pub replica: BufferLimit,
    /// Clients subscribed to a channel or pattern.
    pub pubsub: BufferLimit,
}

impl Default for OutputLimits {
    /// Redis's defaults: `normal 0 0 0 slave 256mb 64mb 60 pubsub 32mb 8mb 60`.
    fn default() -> Self {
        OutputLimits {
            normal: BufferLimit::default(),
            replica: BufferLimit { hard: 256 << 20, soft: 64 << 20, soft_seconds: 60 },
            pubsub: BufferLimit { hard: 32 << 20, soft: 8 << 20, soft_seconds: 60 },
        }
    }
}

impl OutputLimits {
    /// Applies `<class> <hard> <soft> <soft seconds>` groups; classes not named keep their
    /// limits (one config-file line per class, as in Redis). Nothing changes on an error, and
    /// the errors are Redis's sentences.
    pub fn update(&self, words: &[&str]) -> Result<OutputLimits, String> {
        // No groups at all (`CONFIG SET client-output-buffer-limit ""`) changes nothing, as in Redis.
        if !words.len().is_multiple_of(4) {
            return Err("Wrong number of arguments in buffer limit configuration.".into());
        }
        let mut next = *self;
        for group in words.chunks(4) {
            let class = match group[0].to_ascii_lowercase().as_str() {
                "normal" => &mut next.normal,
                "replica" | "slave" => &mut next.replica,
                "pubsub" => &mut next.pubsub,
                _ => {
                    return Err(
                        "Invalid client class specified in buffer limit configuration.".into()
                    )
                }
            };
            let bytes = |w: &str| common::config::parse_memory(w).map(|n| n as usize);
            let (Some(hard), Some(soft), Ok(soft_seconds)) =
                (bytes(group[1]), bytes(group[2]), group[3].parse::<u64>())
            else {
                return Err("Error in hard, soft or soft_seconds setting in buffer limit \
                            configuration."
                    .into());
            };
            *class = BufferLimit { hard, soft, soft_seconds };
        }
        Ok(next)
    }

    /// The value CONFIG GET prints (replicas under their old name, as Redis 7.0 does).
    pub fn canonical(&self) -> String {
        let group = |name: &str, l: &BufferLimit| {
            format!("{name} {} {} {}", l.hard, l.soft, l.soft_seconds)
        };
        format!(
            "{} {} {}",
            group("normal", &self.normal),
            group("slave", &self.replica),
            group("pubsub", &self.pubsub)
        )
    }
}

/// Since when one client has been at or above its soft limit.
#[derive(Debug, Clone, Copy, Default)]
pub struct SoftLimitClock {
    since: Option<Instant>,
}

impl SoftLimitClock {
    /// Checks `waiting` bytes against `limit` at `now`; true means: disconnect the client.
    pub fn over(&mut self, limit: &BufferLimit, waiting: usize, now: Instant) -> bool {
        if limit.hard > 0 && waiting >= limit.hard {
            return true;
        }
        if limit.soft == 0 || waiting < limit.soft {
            self.since = None;
            return false;
        }
        let since = *self.since.get_or_insert(now);
        now.duration_since(since) > Duration::from_secs(limit.soft_seconds)
    }

    /// When a client still at or above its soft limit must be disconnected, if the clock runs.
    pub fn deadline(&self, limit: &BufferLimit) -> Option<Instant> {
        self.since.map(|s| s + Duration::from_secs(limit.soft_seconds) + Duration::from_millis(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn updates_only_the_named_classes_and_prints_redis_words() {
        let limits = OutputLimits::default();
        assert_eq!(
            limits.canonical(),
            "normal 0 0 0 slave 268435456 67108864 60 pubsub 33554432 8388608 60"
        );
        let limits = limits.update(&["replica", "1gb", "2k", "3"]).unwrap();
        let limits = limits.update(&["Normal", "10", "20", "30", "pubsub", "1", "1", "1"]).unwrap();
        assert_eq!(limits.canonical(), "normal 10 20 30 slave 1073741824 2000 3 pubsub 1 1 1");
    }

    #[test]
    fn refuses_what_redis_refuses() {
        let limits = OutputLimits::default();
        let err = |w: &[&str]| limits.update(w).unwrap_err();
        assert!(err(&["foo"]).starts_with("Wrong number of arguments"));
        assert!(err(&["normal", "1", "2"]).starts_with("Wrong number of arguments"));
        assert!(err(&["master", "1", "2", "3"]).starts_with("Invalid client class"));
        assert!(err(&["normal", "1mb", "2x", "3"]).starts_with("Error in hard, soft"));
        assert!(err(&["normal", "1mb", "2", "-3"]).starts_with("Error in hard, soft"));
    }

    #[test]
    fn hard_limit_is_immediate_and_soft_limit_needs_its_seconds() {
        let limit = BufferLimit { hard: 100, soft: 10, soft_seconds: 2 };
        let t0 = Instant::now();
        let mut clock = SoftLimitClock::default();
        assert!(clock.over(&limit, 100, t0));
        assert!(!clock.over(&limit, 50, t0));
        assert!(!clock.over(&limit, 50, t0 + Duration::from_secs(2)));
        assert!(clock.over(&limit, 50, t0 + Duration::from_millis(2001)));
        // Draining below the soft limit starts the clock over.
        assert!(!clock.over(&limit, 5, t0 + Duration::from_secs(3)));
        assert!(!clock.over(&limit, 50, t0 + Duration::from_secs(4)));
        assert!(!clock.over(&limit, 50, t0 + Duration::from_secs(6)));
        assert!(clock.over(&limit, 50, t0 + Duration::from_millis(6001)));
        let off = BufferLimit::default();
        assert!(!SoftLimitClock::default().over(&off, usize::MAX, t0));
    }
}
