//! Free loopback ports for processes whose addresses must be known in advance.
//!
//! Ports come from below the kernel's ephemeral range (`ip_local_port_range`): a port in that
//! range can be taken as the source port of any outgoing connection while the process that
//! owns it is down for a restart, which made restarts fail with "Address already in use".
//! A process-wide cursor starts at a pid-dependent offset, so parallel test binaries rarely
//! collide, and each candidate is probed by binding it; a port is never returned twice.

use std::net::TcpListener;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;

const FIRST: u32 = 10000;

/// Ports handed out so far by this process.
static HANDED_OUT: AtomicU32 = AtomicU32::new(0);

/// The first port of the kernel's ephemeral range (32768 when it cannot be read).
fn ephemeral_start() -> u32 {
    static START: OnceLock<u32> = OnceLock::new();
    *START.get_or_init(|| {
        std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
            .ok()
            .and_then(|s| s.split_whitespace().next().and_then(|w| w.parse().ok()))
            .filter(|&p: &u32| p > FIRST + 1000)
            .unwrap_or(32768)
    })
}

/// A loopback port that was free when probed.
pub fn allocate() -> u16 {
    let span = ephemeral_start() - FIRST;
    let offset = (std::process::id() % (span / 100)) * 100;
    loop {
        let n = HANDED_OUT.fetch_add(1, Ordering::SeqCst);
        assert!(n < span, "ran out of test ports");
        let port = (FIRST + (offset + n) % span) as u16;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}
