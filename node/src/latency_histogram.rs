//! Per-command latency percentiles (INFO latencystats, `latency-tracking yes`): a histogram
//! with the bucket layout of the HdrHistogram Redis uses (values 1 ns to 1 s, two significant
//! digits: exact below 256 ns, then 128 buckets per power of two), so a percentile reads as the
//! highest value of its bucket, as Redis prints it (4 µs reads 4.015).

/// Values below this are exact.
const EXACT: u64 = 256;
/// Buckets per power of two above [`EXACT`].
const PER_OCTAVE: u64 = 128;
/// The range Redis tracks, in nanoseconds; values outside are clamped into it.
const MIN_NS: u64 = 1;
const MAX_NS: u64 = 1_000_000_000;
/// Buckets needed up to [`MAX_NS`] (2^29 ≤ 1e9 < 2^30).
const BUCKETS: usize = (EXACT + (30 - 8) * PER_OCTAVE) as usize;

/// One command's latency histogram.
pub struct Histogram {
    counts: Box<[u64; BUCKETS]>,
    total: u64,
}

impl Default for Histogram {
    fn default() -> Histogram {
        Histogram { counts: Box::new([0; BUCKETS]), total: 0 }
    }
}

fn index(ns: u64) -> usize {
    if ns < EXACT {
        return ns as usize;
    }
    let octave = 63 - ns.leading_zeros() as u64; // ≥ 8
    let sub = (ns >> (octave - 7)) - PER_OCTAVE;
    (EXACT + (octave - 8) * PER_OCTAVE + sub) as usize
}

/// The highest value that falls in bucket `i`.
fn highest(i: usize) -> u64 {
    let i = i as u64;
    if i < EXACT {
        return i;
    }
    let octave = (i - EXACT) / PER_OCTAVE + 8;
    let sub = (i - EXACT) % PER_OCTAVE + PER_OCTAVE;
    let width = 1u64 << (octave - 7);
    (sub << (octave - 7)) + width - 1
}

impl Histogram {
    /// Records one call of `ns` nanoseconds (clamped to 1 ns … 1 s, as Redis clamps).
    pub fn record(&mut self, ns: u64) {
        self.record_n(ns, 1);
    }

    /// Records `n` calls of `ns` nanoseconds each.
    pub fn record_n(&mut self, ns: u64, n: u64) {
        self.counts[index(ns.clamp(MIN_NS, MAX_NS))] += n;
        self.total += n;
    }

    /// The value at `percentile` (0–100), as `hdr_value_at_percentile` reads it.
    pub fn percentile(&self, percentile: f64) -> u64 {
        let wanted = ((percentile.min(100.0) / 100.0 * self.total as f64) + 0.5) as u64;
        let wanted = wanted.max(1);
        let mut seen = 0;
        for (i, &n) in self.counts.iter().enumerate() {
            seen += n;
            if seen >= wanted {
                return highest(i);
            }
        }
        0
    }

    /// Calls recorded.
    pub fn total(&self) -> u64 {
        self.total
    }

    /// LATENCY HISTOGRAM's cumulative distribution: at each power of two from 1024 ns, the
    /// level's highest value in µs and how many calls took at most that long, listed where
    /// the count grew (HdrHistogram's log iteration, as Redis walks it).
    pub fn cumulative(&self) -> Vec<(u64, u64)> {
        let mut out = Vec::new();
        let (mut level, mut seen, mut i, mut previous) = (1024u64, 0u64, 0usize, 0u64);
        while seen < self.total && level <= MAX_NS * 2 {
            let top = highest(index(level.min(MAX_NS)));
            while i < BUCKETS && highest(i) <= top {
                seen += self.counts[i];
                i += 1;
            }
            if seen > previous {
                out.push((top / 1000, seen));
                previous = seen;
            }
            level *= 2;
        }
        out
    }
}

/// A percentile as Redis names it in INFO (`%f` without trailing zeros: 50, 99.9).
pub fn percentile_name(p: f64) -> String {
    let text = format!("{p:.6}");
    text.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// Parses `latency-tracking-info-percentiles`, with Redis's refusals.
pub fn parse_percentiles(value: &str) -> Result<Vec<f64>, String> {
    value
        .split_whitespace()
        .map(|word| {
            let p: f64 = word
                .parse()
                .map_err(|_| "Invalid latency-tracking-info-percentiles parameters".to_string())?;
            if !(0.0..=100.0).contains(&p) {
                return Err("latency-tracking-info-percentiles parameters should sit between \
                            [0.0,100.0]"
                    .to_string());
            }
            Ok(p)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The values Redis 7.0.15 printed for single calls of 4, 22, 23, 24 and 112 µs.
    #[test]
    fn percentiles_read_as_redis_prints_them() {
        for (usec, printed) in
            [(4, 4015), (22, 22015), (23, 23039), (24, 24063), (112, 112127), (0, 1)]
        {
            let mut h = Histogram::default();
            h.record(usec * 1000);
            assert_eq!(h.percentile(50.0), printed, "{usec} µs");
        }
        let mut h = Histogram::default();
        for ns in 1..=1000 {
            h.record(ns);
        }
        assert_eq!(h.percentile(50.0), 501);
        assert_eq!(h.percentile(100.0), 1003);
        let mut h = Histogram::default();
        for ns in [1000, 3000, 3000, 70_000] {
            h.record(ns);
        }
        assert_eq!(h.cumulative(), [(1, 1), (4, 3), (132, 4)]);
        assert_eq!(percentile_name(99.9), "99.9");
        assert_eq!(percentile_name(50.0), "50");
        assert!(parse_percentiles("50 101").is_err());
        assert_eq!(parse_percentiles("").unwrap(), Vec::<f64>::new());
    }
}
