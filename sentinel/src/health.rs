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

/// How long a master may report `role:slave` before it is considered down (Sentinel allows
/// down-after plus two INFO periods; our INFO period is a tenth of down-after).
pub fn demoted_grace(down_after: Duration) -> Duration {
    down_after + down_after / 5
}

/// Subjective down for a node the group holds as master: silent for longer than `down_after`,
/// or reporting `role:slave` for longer than [`demoted_grace`] (someone re-pointed it, so
/// clients sent to it would get READONLY).
///
/// `master_since` is when this supervisor learned that the node is the committed master. The
/// grace runs from the later of that and the role report: right after a promotion the last INFO
/// still says `role:slave` (often since long ago) until the next poll, and that stale report
/// must not make the new master look down — it did, and a second, automatic failover followed.
pub fn is_master_sdown(
    view: &NodeView,
    now: Instant,
    down_after: Duration,
    master_since: Instant,
) -> bool {
    if is_sdown(view, now, down_after) {
        return true;
    }
    let reports_replica =
        view.info.as_ref().is_some_and(|i| i.role == Some(crate::info::Role::Replica));
    reports_replica
        && view.role_since.is_some_and(|since| {
            now.saturating_duration_since(since.max(master_since)) > demoted_grace(down_after)
        })
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

    #[test]
    fn a_master_that_reports_replica_for_too_long_is_down() {
        let t0 = Instant::now();
        let d = Duration::from_millis(1000);
        let mut v = view(t0, Some(t0));
        v.observe(crate::info::NodeInfo::parse("role:master\n"), t0);
        let later = t0 + Duration::from_secs(5);
        v.last_ok = Some(later);
        assert!(!is_master_sdown(&v, later, d, t0));
        v.observe(
            crate::info::NodeInfo::parse("role:slave\nmaster_host:10.0.0.9\nmaster_port:1\n"),
            later,
        );
        v.last_ok = Some(later + demoted_grace(d));
        assert!(!is_master_sdown(&v, later + demoted_grace(d), d, t0), "a grace period first");
        let after = later + demoted_grace(d) + Duration::from_millis(1);
        v.last_ok = Some(after);
        assert!(is_master_sdown(&v, after, d, t0));
    }

    #[test]
    fn a_just_promoted_replica_is_not_down_for_its_stale_slave_role() {
        // A replica for a long time; then the group commits it as master. Until the next INFO
        // poll its view still says role:slave, since long ago.
        let t0 = Instant::now();
        let d = Duration::from_millis(1000);
        let mut v = view(t0, Some(t0));
        v.observe(
            crate::info::NodeInfo::parse("role:slave\nmaster_host:10.0.0.9\nmaster_port:1\n"),
            t0,
        );
        let promoted = t0 + Duration::from_secs(3600);
        v.last_ok = Some(promoted);
        assert!(!is_master_sdown(&v, promoted, d, promoted));
        let almost = promoted + demoted_grace(d);
        v.last_ok = Some(almost);
        assert!(!is_master_sdown(&v, almost, d, promoted));
        // Still a replica a whole grace after the promotion: it really is not master.
        let after = almost + Duration::from_millis(1);
        v.last_ok = Some(after);
        assert!(is_master_sdown(&v, after, d, promoted));
    }
}
