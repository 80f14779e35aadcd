//! Waiting for a condition with a deadline, never with a bare sleep.

use std::fmt::Debug;
use std::time::{Duration, Instant};

/// Polls `probe` every 20 ms until it returns `Ok(value)` or `timeout` passes; on timeout panics
/// with `what` and the last error or state observed.
pub fn until<T, E: Debug>(
    what: &str,
    timeout: Duration,
    mut probe: impl FnMut() -> Result<T, E>,
) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        match probe() {
            Ok(v) => return v,
            Err(last) if Instant::now() >= deadline => {
                panic!("timed out after {timeout:?} waiting for {what}; last seen: {last:?}")
            }
            Err(_) => std::thread::sleep(Duration::from_millis(20)),
        }
    }
}
