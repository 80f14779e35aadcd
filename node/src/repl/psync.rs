//! The master's answer to `PSYNC <replid> <offset>`: continue from the backlog, or start over
//! with a full synchronisation (Redis's `masterTryPartialResynchronization`).

use super::Replication;

/// What to do with a PSYNC request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// `+CONTINUE`: the replica's history is ours and the backlog holds what it lacks.
    Continue,
    /// `+FULLRESYNC`. `requested` is true when the replica asked for a partial resync that
    /// could not be granted (INFO's `sync_partial_err`), false for `PSYNC ? -1` or SYNC.
    Full {
        /// The replica asked for a partial resync.
        requested: bool,
    },
}

/// Decides a PSYNC for `replid` wanting bytes from `offset` on.
pub fn decide(r: &Replication, replid: &str, offset: i64) -> Decision {
    if replid == "?" {
        return Decision::Full { requested: false };
    }
    let ours = replid == r.replid || (replid == r.replid2 && offset <= r.second_offset);
    let held = r.backlog.as_ref().is_some_and(|b| b.can_continue_from(offset));
    if ours && held {
        Decision::Continue
    } else {
        Decision::Full { requested: true }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exec::Propagated;
    use bytes::Bytes;

    fn master_with_history() -> Replication {
        let mut r = Replication::new();
        r.ensure_backlog(16 * 1024);
        r.feed(&[Propagated { db: 0, argv: vec![Bytes::from_static(b"ping")] }]);
        r
    }

    #[test]
    fn continues_inside_the_backlog_of_our_history() {
        let r = master_with_history();
        let id = r.replid.clone();
        assert_eq!(decide(&r, &id, 1), Decision::Continue);
        assert_eq!(decide(&r, &id, r.offset() + 1), Decision::Continue);
        assert_eq!(decide(&r, &id, r.offset() + 2), Decision::Full { requested: true });
        assert_eq!(decide(&r, &id, 0), Decision::Full { requested: true });
    }

    #[test]
    fn question_mark_is_a_deliberate_full_sync() {
        let r = master_with_history();
        assert_eq!(decide(&r, "?", -1), Decision::Full { requested: false });
    }

    #[test]
    fn a_foreign_history_gets_a_full_sync() {
        let r = master_with_history();
        let other = super::super::new_replid();
        assert_eq!(decide(&r, &other, 1), Decision::Full { requested: true });
    }

    #[test]
    fn the_previous_history_is_valid_up_to_the_switch() {
        let mut r = master_with_history();
        let old = r.replid.clone();
        let switched_at = r.offset() + 1;
        r.shift_replid();
        r.feed(&[Propagated { db: 0, argv: vec![Bytes::from_static(b"ping")] }]);
        // A former peer that had everything up to the switch continues on the new history.
        assert_eq!(decide(&r, &old, switched_at), Decision::Continue);
        // One that claims bytes of the old history past the switch diverged: full sync.
        assert_eq!(decide(&r, &old, switched_at + 1), Decision::Full { requested: true });
    }

    #[test]
    fn no_backlog_means_no_partial_resync() {
        let r = Replication::new();
        let id = r.replid.clone();
        assert_eq!(decide(&r, &id, 1), Decision::Full { requested: true });
    }
}
