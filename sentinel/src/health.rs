//! Subjective down, decided from a node's view and the time: pure, so it is tested directly.
//!
//! As in Sentinel, a node is subjectively down when it has not given a *valid* PING reply
//! (`PONG`, `-LOADING`, `-MASTERDOWN`) for longer than `down-after`; other replies (such as
//! `-NOAUTH` or `-MISCONF`) do not count as alive. A node never heard from is measured from when
//! watching started.

use std::time::{Duration, Instant};

use crate::monitor::NodeView;

/// True when the node has been silent for longer than `down_after`.
pub fn is_sdown(view: &NodeView, now: Instant, down_after: Duration) -> bool {
    let reference = view.last_ok.unwrap_or(view.since);
    now.saturating_duration_since(reference) > down_after
}

/// True when the node answered recently enough to be acted on or promoted.
pub fn is_reachable(view: &NodeView, now: Instant, down_after: Duration) -> bool {
    view.connected && !is_sdown(view, now, down_after.min(Duration::from_secs(5)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(since: Instant, last_ok: Option<Instant>) -> NodeView {
        NodeView { last_ok, last_reply: last_ok, connected: true, ..NodeView::new(since) }
    }

    #[test]
    fn down_only_after_the_threshold() {
        let t0 = Instant::now();
        let d = Duration::from_millis(1000);
        let v = view(t0, Some(t0 + Duration::from_millis(200)));
        assert!(!is_sdown(&v, t0 + Duration::from_millis(1200), d));
        assert!(is_sdown(&v, t0 + Duration::from_millis(1201), d));
        let never = view(t0, None);
        assert!(!is_sdown(&never, t0 + d, d));
        assert!(is_sdown(&never, t0 + d + Duration::from_millis(1), d));
    }
}
