//! A client's queue of out-of-band frames (pub/sub messages, MONITOR lines), which counts the
//! bytes waiting in it so the sender can apply the client's output-buffer limit.
//!
//! The queue itself is unbounded: what bounds it is the limit, as in Redis, where a slow
//! subscriber's replies pile up in its output buffer until `client-output-buffer-limit pubsub`
//! disconnects it. A frame is never dropped while the client stays connected.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use common::resp::Frame;
use parking_lot::Mutex;
use tokio::sync::mpsc;

use crate::output_limit::{BufferLimit, SoftLimitClock};

/// A new, empty queue.
pub fn queue() -> (PushSender, PushReceiver) {
    let (tx, rx) = mpsc::unbounded_channel();
    let waiting = Arc::new(Waiting::default());
    (PushSender { tx, waiting: waiting.clone() }, PushReceiver { rx, waiting })
}

#[derive(Default)]
struct Waiting {
    bytes: AtomicUsize,
    /// The soft-limit clock runs (so a drained queue must stop it).
    clock_running: AtomicBool,
    clock: Mutex<SoftLimitClock>,
}

/// What happened to a frame handed to [`PushSender::send`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// Queued.
    Queued,
    /// Queued, and the client is now over its output-buffer limit: disconnect it.
    OverLimit,
    /// The client is gone.
    Closed,
}

/// The sending half, held by pub/sub channels and the MONITOR registry.
#[derive(Clone)]
pub struct PushSender {
    tx: mpsc::UnboundedSender<Frame>,
    waiting: Arc<Waiting>,
}

impl PushSender {
    /// Queues `frame` and checks what now waits for the client against `limit`.
    pub fn send(&self, frame: Frame, limit: &BufferLimit) -> Delivery {
        let cost = cost(&frame);
        // Counted before it is queued: the receiver may take the frame (and subtract its cost)
        // the moment it is in the channel, and must never subtract what was not added yet (the
        // counter would wrap, and the client look over its limit).
        let waiting = self.waiting.bytes.fetch_add(cost, Ordering::Relaxed) + cost;
        if self.tx.send(frame).is_err() {
            self.waiting.bytes.fetch_sub(cost, Ordering::Relaxed);
            return Delivery::Closed;
        }
        if waiting < limit.threshold() {
            if self.waiting.clock_running.load(Ordering::Relaxed) {
                self.waiting.clock.lock().over(limit, waiting, Instant::now());
                self.waiting.clock_running.store(false, Ordering::Relaxed);
            }
            return Delivery::Queued;
        }
        self.waiting.clock_running.store(true, Ordering::Relaxed);
        if self.waiting.clock.lock().over(limit, waiting, Instant::now()) {
            Delivery::OverLimit
        } else {
            Delivery::Queued
        }
    }
}

/// The receiving half, read by the client's connection.
pub struct PushReceiver {
    rx: mpsc::UnboundedReceiver<Frame>,
    waiting: Arc<Waiting>,
}

impl PushReceiver {
    /// The next frame, waiting for one.
    pub async fn recv(&mut self) -> Option<Frame> {
        let frame = self.rx.recv().await?;
        self.taken(&frame);
        Some(frame)
    }

    /// The next frame if one is queued.
    pub fn try_recv(&mut self) -> Option<Frame> {
        let frame = self.rx.try_recv().ok()?;
        self.taken(&frame);
        Some(frame)
    }

    /// Bytes queued and not yet taken.
    pub fn waiting(&self) -> usize {
        self.waiting.bytes.load(Ordering::Relaxed)
    }

    fn taken(&self, frame: &Frame) {
        self.waiting.bytes.fetch_sub(cost(frame), Ordering::Relaxed);
    }
}

/// Roughly what a frame occupies once encoded: its payload plus a few bytes of framing per
/// element. Only consistency matters for the counter (the same frame always costs the same).
fn cost(frame: &Frame) -> usize {
    const FRAMING: usize = 16;
    FRAMING
        + match frame {
            Frame::Simple(b)
            | Frame::Error(b)
            | Frame::Bulk(b)
            | Frame::Raw(b)
            | Frame::BigNumber(b) => b.len(),
            Frame::Verbatim(_, b) => b.len() + 4,
            Frame::Integer(_) | Frame::Double(_) | Frame::Boolean(_) => 8,
            Frame::Null | Frame::NullArray => 0,
            Frame::Array(items) | Frame::Set(items) | Frame::Push(items) => {
                items.iter().map(cost).sum()
            }
            Frame::Map(pairs) => pairs.iter().map(|(k, v)| cost(k) + cost(v)).sum(),
        }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(len: usize) -> Frame {
        Frame::Push(vec![Frame::bulk_static("message"), Frame::bulk(&vec![b'x'; len])])
    }

    #[tokio::test]
    async fn counts_what_waits_and_reports_the_hard_limit() {
        let (tx, mut rx) = queue();
        let limit = BufferLimit { hard: 10_000, soft: 0, soft_seconds: 0 };
        assert_eq!(tx.send(message(4000), &limit), Delivery::Queued);
        assert_eq!(tx.send(message(4000), &limit), Delivery::Queued);
        assert!(rx.waiting() > 8000);
        assert_eq!(tx.send(message(4000), &limit), Delivery::OverLimit);
        // Draining frees the budget again; nothing was dropped.
        for _ in 0..3 {
            assert_eq!(rx.recv().await, Some(message(4000)));
        }
        assert_eq!(rx.waiting(), 0);
        assert_eq!(tx.send(message(4000), &limit), Delivery::Queued);
        drop(rx);
        assert_eq!(tx.send(message(1), &limit), Delivery::Closed);
    }

    /// A receiver draining concurrently never sees the counter go below zero (it used to wrap
    /// when a frame was taken before its cost was added), so a subscriber kept up to date is
    /// never taken for one over its limit.
    #[test]
    fn a_concurrent_receiver_never_unbalances_the_count() {
        let (tx, mut rx) = queue();
        // No limit in reach: a receiver starved of CPU may legitimately fall megabytes behind
        // (the test once failed that way on a loaded machine); only a wrap is a bug.
        let limit = BufferLimit { hard: usize::MAX / 4, soft: 0, soft_seconds: 0 };
        const FRAMES: usize = 50_000;
        let receiver = std::thread::spawn(move || {
            let mut taken = 0;
            while taken < FRAMES {
                if rx.try_recv().is_some() {
                    taken += 1;
                    assert!(rx.waiting() < usize::MAX / 2, "the count wrapped: {}", rx.waiting());
                }
            }
            rx
        });
        for _ in 0..FRAMES {
            assert_eq!(tx.send(message(8), &limit), Delivery::Queued);
        }
        let rx = receiver.join().expect("the receiver thread");
        assert_eq!(rx.waiting(), 0);
    }

    #[test]
    fn a_drained_queue_stops_the_soft_clock() {
        let (tx, mut rx) = queue();
        let limit = BufferLimit { hard: 0, soft: 1000, soft_seconds: 0 };
        assert_eq!(tx.send(message(2000), &limit), Delivery::Queued);
        assert!(rx.try_recv().is_some());
        assert_eq!(tx.send(message(10), &limit), Delivery::Queued);
        assert!(rx.try_recv().is_some());
        // The clock starts over: the first check above the soft limit never disconnects.
        assert_eq!(tx.send(message(2000), &limit), Delivery::Queued);
    }
}
