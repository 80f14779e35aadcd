//! Free loopback ports for processes whose addresses must be known in advance.
//!
//! A process-wide cursor starts at a pid-dependent offset, so parallel test binaries rarely
//! collide, and each candidate is probed by binding it; a port is never returned twice.

use std::net::TcpListener;
use std::sync::atomic::{AtomicU16, Ordering};

static NEXT: AtomicU16 = AtomicU16::new(0);

/// A loopback port that was free when probed.
pub fn allocate() -> u16 {
    let _ = NEXT.compare_exchange(
        0,
        20000 + (std::process::id() % 400) as u16 * 100,
        Ordering::SeqCst,
        Ordering::SeqCst,
    );
    loop {
        let port = NEXT.fetch_add(1, Ordering::SeqCst);
        assert!(port < 65000, "ran out of test ports");
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}
