//! Redis's latency monitor: with `latency-monitor-threshold` set to N ms, every operation of a
//! monitored kind that takes N ms or more is recorded as a sample of its event (`command`,
//! `fast-command`, `expire-cycle`), and LATENCY LATEST / HISTORY / RESET / GRAPH / DOCTOR read
//! the samples back. As in Redis, an event keeps its last 160 samples at one-second
//! resolution (two spikes in the same second keep the larger) and its all-time maximum.

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

/// Samples kept per event (Redis's `LATENCY_TS_LEN`).
const SAMPLES: usize = 160;

/// One event's samples: (unix seconds, milliseconds), oldest first.
#[derive(Debug, Default, Clone)]
pub struct Series {
    /// The samples, oldest first.
    pub samples: VecDeque<(i64, u64)>,
    /// The largest latency ever recorded (kept when old samples fall off).
    pub max: u64,
}

/// Every event's series.
#[derive(Debug, Default)]
pub struct LatencyMonitor {
    events: BTreeMap<&'static str, Series>,
}

impl LatencyMonitor {
    /// Records `ms` for `event` at `now` (unix seconds).
    pub fn add(&mut self, event: &'static str, ms: u64, now: i64) {
        let series = self.events.entry(event).or_default();
        series.max = series.max.max(ms);
        if let Some(last) = series.samples.back_mut().filter(|s| s.0 == now) {
            last.1 = last.1.max(ms);
            return;
        }
        if series.samples.len() == SAMPLES {
            series.samples.pop_front();
        }
        series.samples.push_back((now, ms));
    }

    /// Each event with its latest sample and its maximum: (event, time, latest ms, max ms).
    pub fn latest(&self) -> Vec<(&'static str, i64, u64, u64)> {
        self.events
            .iter()
            .filter_map(|(name, s)| s.samples.back().map(|&(t, ms)| (*name, t, ms, s.max)))
            .collect()
    }

    /// One event's series, if it has samples.
    pub fn series(&self, event: &str) -> Option<&Series> {
        self.events.get(event).filter(|s| !s.samples.is_empty())
    }

    /// Forgets the named events (every event when `events` is empty); how many were known.
    pub fn reset(&mut self, events: &[String]) -> usize {
        if events.is_empty() {
            let n = self.events.len();
            self.events.clear();
            return n;
        }
        let before = self.events.len();
        self.events.retain(|name, _| !events.iter().any(|e| e == name));
        before - self.events.len()
    }

    /// Every event, for LATENCY DOCTOR.
    pub fn events(&self) -> impl Iterator<Item = (&'static str, &Series)> {
        self.events.iter().map(|(n, s)| (*n, s))
    }
}

/// Records `took` for `event` if the monitor is on and it reaches the threshold
/// (`threshold_ms` 0: off), as Redis's `latencyAddSampleIfNeeded`.
pub fn record(
    shared: &crate::server::Shared,
    event: &'static str,
    took: Duration,
    threshold_ms: u64,
) {
    let ms = took.as_millis() as u64;
    if threshold_ms > 0 && ms >= threshold_ms {
        shared.latency.lock().add(event, ms, crate::server::unix_ms() / 1000);
    }
}

/// LATENCY DOCTOR's report: per event, how many spikes, their average and mean deviation,
/// how often they came, and the worst ever.
pub fn doctor(monitor: &LatencyMonitor) -> String {
    let mut out = String::new();
    for (i, (name, s)) in monitor.events().enumerate() {
        let n = s.samples.len() as f64;
        let avg = s.samples.iter().map(|x| x.1 as f64).sum::<f64>() / n;
        let dev = s.samples.iter().map(|x| (x.1 as f64 - avg).abs()).sum::<f64>() / n;
        let span = s.samples.back().map_or(0, |l| l.0) - s.samples.front().map_or(0, |f| f.0);
        let period = if s.samples.len() > 1 { span as f64 / (n - 1.0) } else { 0.0 };
        out.push_str(&format!(
            "{}. {name}: {} spikes recorded, {:.0} ms on average (mean deviation {:.0} ms), one every {:.2} s; the worst ever took {} ms.\n",
            i + 1,
            s.samples.len(),
            avg,
            dev,
            period,
            s.max
        ));
    }
    if out.is_empty() {
        out.push_str("No latency spikes have been recorded since this server started.\n");
    }
    out
}

/// LATENCY GRAPH's text: a header like Redis's, then one column per sample (the newest on the
/// right), eight rows high, scaled between the lowest and highest sample.
pub fn graph(event: &str, s: &Series) -> String {
    let low = s.samples.iter().map(|x| x.1).min().unwrap_or(0);
    let high = s.samples.iter().map(|x| x.1).max().unwrap_or(0);
    let mut out = format!(
        "{event} - high {high} ms, low {low} ms (all time high {} ms)\n{}\n",
        s.max,
        "-".repeat(80)
    );
    const ROWS: u64 = 8;
    let level =
        |ms: u64| if high == low { ROWS } else { 1 + (ms - low) * (ROWS - 1) / (high - low) };
    for row in (1..=ROWS).rev() {
        let line: String =
            s.samples.iter().map(|x| if level(x.1) >= row { '#' } else { ' ' }).collect();
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_merge_per_second_roll_over_and_keep_the_maximum() {
        let mut m = LatencyMonitor::default();
        m.add("command", 300, 10);
        m.add("command", 250, 10);
        m.add("command", 400, 11);
        assert_eq!(m.series("command").unwrap().samples, [(10, 300), (11, 400)]);
        for t in 0..200 {
            m.add("command", 100, 100 + t);
        }
        let s = m.series("command").unwrap();
        assert_eq!(s.samples.len(), SAMPLES);
        assert_eq!(s.max, 400, "the all-time maximum outlives its sample");
        assert_eq!(m.latest(), [("command", 299, 100, 400)]);
        m.add("expire-cycle", 5, 300);
        assert_eq!(m.reset(&["nosuch".into(), "command".into()]), 1);
        assert_eq!(m.reset(&[]), 1);
        assert!(m.latest().is_empty());
    }
}
