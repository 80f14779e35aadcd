//! Consumer groups: their read counters and lag (Redis 7.0's rules), and the bookkeeping that
//! keeps a group's pending entries list and its consumers' lists in step.

use super::{Consumer, ConsumerGroup, PendingEntry, Stream, StreamId, ENTRIES_READ_UNKNOWN};

impl Stream {
    /// True if a deleted entry may lie between `start` and `end` (`None`: the last ID), as far
    /// as `max_deleted_entry_id` tells (`streamRangeHasTombstones`).
    pub fn range_has_tombstones(&self, start: StreamId, end: Option<StreamId>) -> bool {
        if self.length == 0 || self.max_deleted_entry_id == StreamId::MIN {
            return false;
        }
        if self.first_id > self.max_deleted_entry_id {
            return false;
        }
        let end = end.unwrap_or(StreamId::MAX);
        start <= self.max_deleted_entry_id && self.max_deleted_entry_id <= end
    }

    /// How many entries were added up to `id`, when that can be known
    /// (`streamEstimateDistanceFromFirstEverEntry`); [`ENTRIES_READ_UNKNOWN`] otherwise.
    pub fn distance_from_first_ever(&self, id: StreamId) -> i64 {
        let added = self.entries_added as i64;
        if self.entries_added == 0 {
            return 0;
        }
        if self.length == 0 && id <= self.last_id {
            return added;
        }
        if id == self.last_id {
            return added;
        }
        if id > self.last_id {
            return ENTRIES_READ_UNKNOWN;
        }
        let no_deletes_inside =
            self.max_deleted_entry_id == StreamId::MIN || self.max_deleted_entry_id < self.first_id;
        if no_deletes_inside {
            if id < self.first_id {
                return added - self.length as i64;
            } else if id == self.first_id {
                return added - self.length as i64 + 1;
            }
        }
        ENTRIES_READ_UNKNOWN
    }

    /// A group's lag, or `None` when it cannot be known (`streamReplyWithCGLag`).
    pub fn lag(&self, group: &ConsumerGroup) -> Option<i64> {
        let added = self.entries_added as i64;
        if self.entries_added == 0 {
            return Some(0);
        }
        if group.entries_read != ENTRIES_READ_UNKNOWN
            && !self.range_has_tombstones(group.last_id, None)
        {
            return Some(added - group.entries_read);
        }
        match self.distance_from_first_ever(group.last_id) {
            ENTRIES_READ_UNKNOWN => None,
            read => Some(added - read),
        }
    }
}

impl ConsumerGroup {
    /// A group that has delivered up to `last_id`.
    pub fn new(last_id: StreamId, entries_read: i64) -> ConsumerGroup {
        ConsumerGroup { last_id, entries_read, ..ConsumerGroup::default() }
    }

    /// Moves the group past `id`, delivered to a reader, counting it as read
    /// (`streamReplyWithRange`'s bookkeeping). Returns true if the group moved.
    pub fn deliver(&mut self, stream: &Stream, id: StreamId) -> bool {
        if id <= self.last_id {
            return false;
        }
        if self.entries_read != ENTRIES_READ_UNKNOWN && !stream.range_has_tombstones(id, None) {
            self.entries_read += 1;
        } else if stream.entries_added > 0 {
            self.entries_read = stream.distance_from_first_ever(id);
        }
        self.last_id = id;
        true
    }

    /// Records `id` as delivered to `consumer` now: a new pending entry, or, if it was already
    /// pending (even for another consumer), a fresh one owned by `consumer`.
    pub fn add_pending(&mut self, id: StreamId, consumer: &[u8], now_ms: u64) {
        let previous = self.pel.insert(
            id,
            PendingEntry { delivery_time: now_ms, delivery_count: 1, consumer: consumer.into() },
        );
        if let Some(old) = previous {
            if let Some(c) = self.consumers.get_mut(&old.consumer) {
                c.pel.remove(&id);
            }
        }
        if let Some(c) = self.consumers.get_mut(consumer) {
            c.pel.insert(id);
        }
    }

    /// Acknowledges `id`. Returns the entry if it was pending.
    pub fn ack(&mut self, id: StreamId) -> Option<PendingEntry> {
        let pe = self.pel.remove(&id)?;
        if let Some(c) = self.consumers.get_mut(&pe.consumer) {
            c.pel.remove(&id);
        }
        Some(pe)
    }

    /// Gives the pending entry `id` to `consumer` (which must exist).
    pub fn transfer(&mut self, id: StreamId, consumer: &[u8]) {
        let pe = self.pel.get_mut(&id).expect("a pending entry");
        if *pe.consumer != *consumer {
            let old = std::mem::replace(&mut pe.consumer, consumer.into());
            if let Some(c) = self.consumers.get_mut(&old) {
                c.pel.remove(&id);
            }
        }
        self.consumers.get_mut(consumer).expect("an existing consumer").pel.insert(id);
    }

    /// Creates `name` if missing. Returns true if it was created.
    pub fn create_consumer(&mut self, name: &[u8], now_ms: u64) -> bool {
        if self.consumers.contains_key(name) {
            return false;
        }
        self.consumers.insert(name.into(), Consumer { seen_time: now_ms, pel: Default::default() });
        true
    }

    /// Deletes a consumer and its pending entries. Returns how many it had pending, or `None`
    /// if there is no such consumer.
    pub fn delete_consumer(&mut self, name: &[u8]) -> Option<usize> {
        let consumer = self.consumers.remove(name)?;
        for id in &consumer.pel {
            self.pel.remove(id);
        }
        Some(consumer.pel.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stream(n: u64) -> Stream {
        Stream::numbered(n)
    }

    #[test]
    fn pending_entries_move_between_consumers() {
        let mut g = ConsumerGroup::new(StreamId::MIN, 0);
        g.create_consumer(b"a", 1);
        g.create_consumer(b"b", 1);
        g.add_pending(StreamId::new(1, 0), b"a", 5);
        g.add_pending(StreamId::new(2, 0), b"a", 5);
        g.add_pending(StreamId::new(1, 0), b"b", 6);
        assert_eq!(g.consumers[&b"a"[..]].pel.len(), 1);
        assert_eq!(g.consumers[&b"b"[..]].pel.len(), 1);
        g.transfer(StreamId::new(2, 0), b"b");
        assert!(g.consumers[&b"a"[..]].pel.is_empty());
        assert_eq!(g.ack(StreamId::new(1, 0)).map(|p| p.delivery_count), Some(1));
        assert_eq!(g.delete_consumer(b"b"), Some(1));
        assert!(g.pel.is_empty());
    }

    #[test]
    fn lag_follows_redis_rules() {
        let mut s = stream(5);
        let mut g = ConsumerGroup::new(StreamId::MIN, ENTRIES_READ_UNKNOWN);
        // Nothing deleted: reading from before the first entry is a known distance.
        assert_eq!(s.lag(&g), Some(5));
        assert!(g.deliver(&s, StreamId::new(1, 0)));
        assert_eq!(g.entries_read, 1);
        assert!(g.deliver(&s, StreamId::new(2, 0)));
        assert_eq!(s.lag(&g), Some(3));
        s.delete_ids(&[StreamId::new(4, 0)]);
        // A tombstone after the group's position makes the counter unreliable.
        assert_eq!(s.lag(&g), None);
    }
}
