//! INFO commandstats and errorstats: calls, time, rejections and failures per command, and
//! error replies per error code, counted as Redis counts them.
//!
//! Counting must not cost the hot path a lock per command, so each client keeps a [`Tally`]
//! of its current batch of requests (usually one or two distinct commands) and adds it to the
//! server's [`CommandStats`] once per batch.

use std::collections::HashMap;

use common::resp::Frame;
use parking_lot::Mutex;

use crate::dispatch::Resolved;
use crate::latency_histogram::{percentile_name, Histogram};

/// Redis stops tracking new error codes after this many (a client could invent endless ones).
const MAX_ERROR_CODES: usize = 128;

/// One command's counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CallCounts {
    /// Times it ran.
    pub calls: u64,
    /// Microseconds spent running it.
    pub usec: u64,
    /// Times it was refused before running (arity, authentication, state).
    pub rejected: u64,
    /// Times it ran and answered an error.
    pub failed: u64,
}

impl CallCounts {
    fn add(&mut self, other: &CallCounts) {
        self.calls += other.calls;
        self.usec += other.usec;
        self.rejected += other.rejected;
        self.failed += other.failed;
    }
}

/// How a command's outcome counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Counted {
    /// It ran (failed if its reply is an error).
    Call,
    /// It was refused before running.
    Rejected,
    /// Not counted now (queued by MULTI: it counts when EXEC runs it).
    Not,
}

/// One client's counts since its batch began.
#[derive(Default)]
pub struct Tally {
    /// Per command: its counts, and how many of its calls took under a microsecond (most
    /// do: they go to the latency histogram in one step at the flush).
    commands: Vec<(Resolved, CallCounts, u64)>,
    errors: Vec<(Vec<u8>, u64)>,
    /// The command and microseconds of each longer call, for the latency histograms (kept
    /// allocated).
    durations: Vec<(usize, u64)>,
}

impl Tally {
    /// Counts one command.
    pub fn command(&mut self, resolved: Resolved, counted: Counted, usec: u64, failed: bool) {
        let counts = match counted {
            Counted::Not => return,
            Counted::Rejected => CallCounts { rejected: 1, ..Default::default() },
            Counted::Call => CallCounts { calls: 1, usec, failed: u64::from(failed), rejected: 0 },
        };
        let quick = u64::from(counted == Counted::Call && usec == 0);
        if counted == Counted::Call && usec > 0 {
            self.durations.push((resolved.spec as *const _ as usize, usec));
        }
        let spec = resolved.spec as *const _;
        match self.commands.iter_mut().find(|(r, _, _)| std::ptr::eq(r.spec, spec)) {
            Some((_, c, n)) => {
                c.add(&counts);
                *n += quick;
            }
            None => self.commands.push((resolved, counts, quick)),
        }
    }

    /// Counts an error reply under its code (the first word, e.g. `ERR`, `WRONGTYPE`).
    pub fn error(&mut self, frame: &Frame) {
        let Frame::Error(text) = frame else { return };
        let code = text.split(|&b| b == b' ').next().unwrap_or_default();
        match self.errors.iter_mut().find(|(c, _)| c == code) {
            Some((_, n)) => *n += 1,
            None => self.errors.push((code.to_vec(), 1)),
        }
    }

    /// Adds the tally to the server's counters and empties it.
    pub fn flush(&mut self, stats: &Mutex<CommandStats>) {
        if self.commands.is_empty() && self.errors.is_empty() {
            return;
        }
        let mut stats = stats.lock();
        if stats.latency_tracking {
            // As Redis records them: the call's microseconds, in nanoseconds (under a
            // microsecond reads 0, clamped to 1 ns). A run of calls of the same command (a
            // pipeline's usual shape) looks its histogram up once.
            for (resolved, _, quick) in &self.commands {
                if *quick > 0 {
                    let key = resolved.spec as *const _ as usize;
                    stats.latencies.entry(key).or_default().record_n(0, *quick);
                }
            }
            let mut calls = self.durations.iter().peekable();
            while let Some(&(key, usec)) = calls.next() {
                let histogram = stats.latencies.entry(key).or_default();
                histogram.record(usec * 1000);
                while let Some(&(_, usec)) = calls.next_if(|(next, _)| *next == key) {
                    histogram.record(usec * 1000);
                }
            }
        }
        self.durations.clear();
        for (resolved, counts, _) in self.commands.drain(..) {
            let key = resolved.spec as *const _ as usize;
            stats.commands.entry(key).or_insert((resolved, CallCounts::default())).1.add(&counts);
        }
        for (code, n) in self.errors.drain(..) {
            let known = stats.errors.len();
            match stats.errors.get_mut(&code) {
                Some(count) => *count += n,
                None if known < MAX_ERROR_CODES => {
                    stats.errors.insert(code, n);
                }
                None => {}
            }
        }
    }
}

/// One command's LATENCY HISTOGRAM entry.
pub struct CommandLatency {
    /// Full name (`config|get`).
    pub name: String,
    /// Calls recorded.
    pub calls: u64,
    /// (µs, calls that took at most that long), see `Histogram::cumulative`.
    pub cumulative: Vec<(u64, u64)>,
}

/// The server's counters (reset by CONFIG RESETSTAT).
#[derive(Default)]
pub struct CommandStats {
    commands: HashMap<usize, (Resolved, CallCounts), ahash::RandomState>,
    errors: HashMap<Vec<u8>, u64>,
    /// `latency-tracking`.
    pub latency_tracking: bool,
    /// Each command's latency histogram (by the same key as `commands`).
    latencies: HashMap<usize, Histogram, ahash::RandomState>,
}

impl CommandStats {
    /// Forgets everything (CONFIG RESETSTAT).
    pub fn reset(&mut self) {
        self.commands.clear();
        self.errors.clear();
        self.latencies.clear();
    }

    /// LATENCY HISTOGRAM: each command with recorded calls whose name is in `only` (all when
    /// empty; a container's name takes its subcommands), in the order asked, else by name.
    pub fn latency_cdf(&self, only: &[String]) -> Vec<CommandLatency> {
        let mut rows: Vec<(usize, CommandLatency)> = self
            .latencies
            .iter()
            .filter(|(_, h)| h.total() > 0)
            .filter_map(|(key, h)| {
                let (resolved, _) = self.commands.get(key)?;
                let name = resolved.fullname();
                let rank = only.iter().position(|o| *o == name || o == resolved.name());
                (only.is_empty() || rank.is_some()).then(|| {
                    let row = CommandLatency { name, calls: h.total(), cumulative: h.cumulative() };
                    (rank.unwrap_or(0), row)
                })
            })
            .collect();
        rows.sort_by(|a, b| (a.0, &a.1.name).cmp(&(b.0, &b.1.name)));
        rows.into_iter().map(|(_, row)| row).collect()
    }

    /// INFO latencystats lines, `latency_percentiles_usec_<name>:p50=…,p99=…`, by name.
    pub fn latency_lines(&self, percentiles: &[f64]) -> Vec<String> {
        let mut rows: Vec<(String, &Histogram)> = self
            .latencies
            .iter()
            .filter(|(_, h)| h.total() > 0)
            .filter_map(|(key, h)| self.commands.get(key).map(|(r, _)| (r.fullname(), h)))
            .collect();
        rows.sort_by(|a, b| a.0.cmp(&b.0));
        rows.into_iter()
            .map(|(name, h)| {
                let values: Vec<String> = percentiles
                    .iter()
                    .map(|&p| {
                        let usec = h.percentile(p) as f64 / 1000.0;
                        format!("p{}={usec:.3}", percentile_name(p))
                    })
                    .collect();
                format!("latency_percentiles_usec_{name}:{}", values.join(","))
            })
            .collect()
    }

    /// INFO commandstats lines, `cmdstat_<name>:calls=…,usec=…,usec_per_call=…,rejected_calls=…,failed_calls=…`,
    /// by name (`client|list` for a subcommand).
    pub fn command_lines(&self) -> Vec<String> {
        let mut rows: Vec<(String, CallCounts)> =
            self.commands.values().map(|(r, c)| (r.fullname(), *c)).collect();
        rows.sort_by(|a, b| a.0.cmp(&b.0));
        rows.into_iter()
            .map(|(name, c)| {
                let per_call = if c.calls == 0 { 0.0 } else { c.usec as f64 / c.calls as f64 };
                format!(
                    "cmdstat_{name}:calls={},usec={},usec_per_call={per_call:.2},rejected_calls={},failed_calls={}",
                    c.calls, c.usec, c.rejected, c.failed
                )
            })
            .collect()
    }

    /// INFO errorstats lines, `errorstat_<code>:count=…`, by code.
    pub fn error_lines(&self) -> Vec<String> {
        let mut rows: Vec<(&Vec<u8>, &u64)> = self.errors.iter().collect();
        rows.sort();
        rows.into_iter()
            .map(|(code, n)| format!("errorstat_{}:count={n}", String::from_utf8_lossy(code)))
            .collect()
    }

    /// The counters of one command, for tests.
    pub fn of(&self, fullname: &str) -> Option<CallCounts> {
        self.commands.values().find(|(r, _)| r.fullname() == fullname).map(|(_, c)| *c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolved(name: &[u8]) -> Resolved {
        crate::dispatch::resolve(&[bytes::Bytes::copy_from_slice(name), "k".into()]).unwrap()
    }

    #[test]
    fn tallies_add_up_per_command_and_error_code() {
        let stats = Mutex::new(CommandStats::default());
        let mut tally = Tally::default();
        tally.command(resolved(b"get"), Counted::Call, 3, false);
        tally.command(resolved(b"GET"), Counted::Call, 5, true);
        tally.command(resolved(b"get"), Counted::Rejected, 0, true);
        tally.command(resolved(b"incr"), Counted::Not, 9, false);
        tally.error(&Frame::error("WRONGTYPE Operation against a key"));
        tally.error(&Frame::error("ERR syntax error"));
        tally.error(&Frame::error("ERR other"));
        tally.flush(&stats);
        tally.command(resolved(b"get"), Counted::Call, 2, false);
        tally.flush(&stats);
        let stats = stats.lock();
        assert_eq!(
            stats.command_lines(),
            ["cmdstat_get:calls=3,usec=10,usec_per_call=3.33,rejected_calls=1,failed_calls=1"]
        );
        assert_eq!(stats.error_lines(), ["errorstat_ERR:count=2", "errorstat_WRONGTYPE:count=1"]);
    }

    /// Calls under a microsecond count in the histogram as Redis counts them (as 1 ns), with
    /// the longer ones at their own values.
    #[test]
    fn latency_percentiles_cover_quick_and_slow_calls() {
        let stats = Mutex::new(CommandStats { latency_tracking: true, ..Default::default() });
        let mut tally = Tally::default();
        for usec in [0, 0, 0, 4] {
            tally.command(resolved(b"get"), Counted::Call, usec, false);
        }
        tally.command(resolved(b"get"), Counted::Rejected, 0, true);
        tally.flush(&stats);
        assert_eq!(
            stats.lock().latency_lines(&[50.0, 99.0]),
            ["latency_percentiles_usec_get:p50=0.001,p99=4.015"]
        );
    }
}
