//! Graceful shutdown as a type.
//!
//! A [`Shutdown`] is cloned into every task that must stop; the owner keeps the
//! [`ShutdownTrigger`]. Tasks `select!` on [`Shutdown::wait`] between units of work, so a command
//! in flight finishes and its reply is written before the task exits.

use tokio::sync::watch;

/// Fires the shutdown. Dropping the last clone also fires it, so a crashed owner cannot leave
/// tasks running.
#[derive(Debug, Clone)]
pub struct ShutdownTrigger(std::sync::Arc<watch::Sender<bool>>);

/// A listener for the shutdown signal.
#[derive(Debug, Clone)]
pub struct Shutdown(watch::Receiver<bool>);

/// A new trigger and its listener.
pub fn channel() -> (ShutdownTrigger, Shutdown) {
    let (tx, rx) = watch::channel(false);
    (ShutdownTrigger(std::sync::Arc::new(tx)), Shutdown(rx))
}

impl ShutdownTrigger {
    /// Tells every listener to stop.
    pub fn fire(&self) {
        self.0.send_replace(true);
    }

    /// A new listener.
    pub fn subscribe(&self) -> Shutdown {
        Shutdown(self.0.subscribe())
    }
}

impl Shutdown {
    /// True once shutdown has been requested.
    pub fn is_triggered(&self) -> bool {
        *self.0.borrow()
    }

    /// Completes when shutdown is requested (at once if it already was).
    pub async fn wait(&mut self) {
        // An error means the trigger was dropped, which also means "stop".
        let _ = self.0.wait_for(|stop| *stop).await;
    }
}

/// The signal that asked the process to stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// SIGTERM.
    Term,
    /// SIGINT.
    Int,
}

impl Signal {
    /// `SIGTERM` or `SIGINT`, as logs name it.
    pub fn name(self) -> &'static str {
        match self {
            Signal::Term => "SIGTERM",
            Signal::Int => "SIGINT",
        }
    }
}

/// Completes on SIGINT or SIGTERM, saying which.
pub async fn signal() -> Signal {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("installing a SIGTERM handler");
    let mut int = signal(SignalKind::interrupt()).expect("installing a SIGINT handler");
    let which = tokio::select! {
        _ = term.recv() => Signal::Term,
        _ = int.recv() => Signal::Int,
    };
    tracing::info!("received {}, shutting down", which.name());
    which
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn fires_and_drops() {
        let (trigger, mut a) = channel();
        let mut b = trigger.subscribe();
        assert!(!a.is_triggered());
        trigger.fire();
        a.wait().await;
        drop(trigger);
        b.wait().await;
        assert!(b.is_triggered());
    }
}
