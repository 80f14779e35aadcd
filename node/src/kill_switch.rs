//! A client's kill switch: CLIENT KILL, a pub/sub or output-buffer disconnect, or the server
//! shutting down ends a client's task by flipping it.
//!
//! The same switch carries the one other thing that must reach a connection parked between
//! requests: what was done on its behalf while a script was busy (see [`crate::busy`]) —
//! the requests read and answered meanwhile, handed back when the script ends. The
//! connection says when it is parked with nothing buffered ([`Killed::set_idle`]): only then
//! may its socket be served by someone else.
//!
//! A connection waits on its switch beside the socket before every read, so waiting must cost
//! next to nothing: one atomic flag and one registered waker. Two watch channels (the client's
//! own and the server's shutdown) cost about 450 instructions per re-poll, since each re-poll
//! locks the channel's waiter list — 8 % of the server's user-space work for a GET at
//! pipeline 1, measured with callgrind.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use atomic_waker::AtomicWaker;
use parking_lot::Mutex;

use crate::busy::Handoff;

#[derive(Default)]
struct Switch {
    killed: AtomicBool,
    /// The connection waits for its next request with empty buffers.
    idle: AtomicBool,
    /// `handoff` holds something for the connection.
    handed: AtomicBool,
    handoff: Mutex<Option<Handoff>>,
    waker: AtomicWaker,
}

/// The flipping side, kept in the client registry. Cloning shares the same switch.
#[derive(Clone, Default)]
pub struct KillSwitch(Arc<Switch>);

impl KillSwitch {
    /// A switch not yet flipped.
    pub fn new() -> KillSwitch {
        KillSwitch::default()
    }

    /// Flips the switch and wakes the task waiting on it. Flipping twice is harmless.
    pub fn kill(&self) {
        self.0.killed.store(true, Ordering::Release);
        self.0.waker.wake();
    }

    /// True once flipped.
    pub fn is_killed(&self) -> bool {
        self.0.killed.load(Ordering::Acquire)
    }

    /// True while the connection is parked between requests with empty buffers.
    pub fn is_idle(&self) -> bool {
        self.0.idle.load(Ordering::Acquire)
    }

    /// Gives the parked connection what was done for it meanwhile, and wakes it.
    pub fn hand(&self, handoff: Handoff) {
        *self.0.handoff.lock() = Some(handoff);
        self.0.handed.store(true, Ordering::Release);
        self.0.waker.wake();
    }

    /// A future that completes once the switch is flipped. One task waits on a switch at a
    /// time (the last to poll is the one woken).
    pub fn killed(&self) -> Killed {
        Killed(self.0.clone())
    }
}

/// Completes when its [`KillSwitch`] is flipped, or something is handed to the connection;
/// polled in place for the connection's life.
pub struct Killed(Arc<Switch>);

impl Killed {
    /// True once the switch is flipped.
    pub fn is_killed(&self) -> bool {
        self.0.killed.load(Ordering::Acquire)
    }

    /// Marks the connection parked with empty buffers (or no longer).
    pub fn set_idle(&self, idle: bool) {
        self.0.idle.store(idle, Ordering::Release);
    }

    /// What was handed to the connection, if anything (taken once).
    pub fn take_handoff(&self) -> Option<Handoff> {
        if !self.0.handed.load(Ordering::Acquire) {
            return None;
        }
        self.0.handed.store(false, Ordering::Release);
        self.0.handoff.lock().take()
    }
}

impl Future for Killed {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let ready =
            || self.0.killed.load(Ordering::Acquire) || self.0.handed.load(Ordering::Acquire);
        if ready() {
            return Poll::Ready(());
        }
        self.0.waker.register(cx.waker());
        // Flipped between the check and the registration: the wake may have missed us.
        if ready() {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_waiting_task_wakes_when_the_switch_flips() {
        let switch = KillSwitch::new();
        let waiter = tokio::spawn(switch.killed());
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished(), "completed before the switch flipped");
        switch.kill();
        tokio::time::timeout(std::time::Duration::from_secs(10), waiter)
            .await
            .expect("the waiter was not woken")
            .unwrap();
        assert!(switch.is_killed());
    }

    #[tokio::test]
    async fn a_switch_flipped_before_waiting_completes_at_once() {
        let switch = KillSwitch::new();
        switch.kill();
        switch.kill();
        tokio::time::timeout(std::time::Duration::from_secs(10), switch.killed())
            .await
            .expect("an already flipped switch did not complete");
    }
}
