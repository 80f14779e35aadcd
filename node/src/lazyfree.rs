//! Freeing large values on a background thread, as Redis's lazyfree does: UNLINK, FLUSHALL
//! and FLUSHDB ASYNC, and the `lazyfree-lazy-*` settings hand what they remove to a thread of
//! their own, so taking a ten-million-element set out of the keyspace costs the event loop a
//! pointer move instead of ten million frees.
//!
//! A value goes to the thread only when freeing it is real work (Redis's
//! `lazyfreeGetFreeEffort` above `LAZYFREE_THRESHOLD`, 64): an element per allocation in a
//! set, hash or sorted set stored as a hash table, the nodes and consumer groups of a stream.
//! A string or a small listpack-encoded value is one allocation, freed at once. A list counts
//! its elements here, where Redis counts its 8 KB quicklist nodes: ours holds one allocation
//! per element, so a list of a few thousand short elements is freed in the background here
//! and at once in Redis (INFO `lazyfreed_objects` then differs by one).
//! INFO reports `lazyfree_pending_objects` and `lazyfreed_objects` as Redis counts them.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;

use parking_lot::Mutex;

use crate::db::Value;

/// Freeing effort above which a value is freed on the thread.
const THRESHOLD: usize = 64;

/// What is being freed, and how many objects it counts as.
type Garbage = (Box<dyn Send>, u64);

/// The lazy-free thread and its counters.
#[derive(Default)]
pub struct LazyFree {
    /// Started at the first use.
    sender: Mutex<Option<mpsc::Sender<Garbage>>>,
    /// Handed over and not yet freed (INFO `lazyfree_pending_objects`).
    pending: std::sync::Arc<AtomicU64>,
    /// Freed by the thread (INFO `lazyfreed_objects`; CONFIG RESETSTAT zeroes it).
    freed: std::sync::Arc<AtomicU64>,
}

/// How much work freeing `value` is: the allocations it is made of, as Redis estimates them.
pub fn effort(value: &Value) -> usize {
    match value {
        Value::Str { .. } => 1,
        Value::List(list) => list.len(),
        Value::Set(set) if set.encoding() == "hashtable" => set.len(),
        Value::Hash(hash) if hash.encoding() == "hashtable" => hash.len(),
        Value::ZSet(zset) if zset.encoding() == "skiplist" => zset.len(),
        Value::Set(_) | Value::Hash(_) | Value::ZSet(_) => 1,
        Value::Stream(stream) => {
            // Every node is an allocation, every group too, and so are the entries of its
            // PEL, estimated from the first group's, as Redis does.
            let pel = stream.groups.values().next().map_or(0, |g| g.pel.len());
            stream.nodes.len() + stream.groups.len() * (1 + pel)
        }
    }
}

impl LazyFree {
    /// Frees `value` on the thread if that is real work, here otherwise.
    pub fn free_value(&self, value: Value) {
        if effort(&value) > THRESHOLD {
            self.hand_over(Box::new(value), 1);
        }
    }

    /// Frees a whole emptied table on the thread (FLUSHALL/FLUSHDB ASYNC), counted as its
    /// `keys` objects.
    pub fn free_table(&self, table: Box<dyn Send>, keys: u64) {
        if keys > 0 {
            self.hand_over(table, keys);
        }
    }

    /// INFO `lazyfree_pending_objects`.
    pub fn pending(&self) -> u64 {
        self.pending.load(Ordering::Relaxed)
    }

    /// INFO `lazyfreed_objects`.
    pub fn freed(&self) -> u64 {
        self.freed.load(Ordering::Relaxed)
    }

    /// CONFIG RESETSTAT.
    pub fn reset_stats(&self) {
        self.freed.store(0, Ordering::Relaxed);
    }

    fn hand_over(&self, garbage: Box<dyn Send>, objects: u64) {
        self.pending.fetch_add(objects, Ordering::Relaxed);
        let mut sender = self.sender.lock();
        let tx = sender.get_or_insert_with(|| self.start());
        if let Err(mpsc::SendError((garbage, objects))) = tx.send((garbage, objects)) {
            // The thread is gone (it could not start): free here rather than leak.
            drop(garbage);
            self.pending.fetch_sub(objects, Ordering::Relaxed);
        }
    }

    fn start(&self) -> mpsc::Sender<Garbage> {
        let (tx, rx) = mpsc::channel::<Garbage>();
        let (pending, freed) = (self.pending.clone(), self.freed.clone());
        let started = std::thread::Builder::new().name("lazyfree".into()).spawn(move || {
            for (garbage, objects) in rx {
                drop(garbage);
                pending.fetch_sub(objects, Ordering::Relaxed);
                freed.fetch_add(objects, Ordering::Relaxed);
            }
        });
        if let Err(e) = started {
            tracing::warn!(cause = %e, "cannot start the lazy-free thread: values are freed inline");
        }
        tx
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn large_values_are_freed_on_the_thread_and_counted() {
        let lazy = LazyFree::default();
        let mut set = crate::db::set::Set::default();
        for i in 0..1000 {
            set.insert(format!("member-{i}").as_bytes());
        }
        let big = Value::Set(Box::new(set));
        assert!(effort(&big) > THRESHOLD, "a 1000-member set is real work");
        lazy.free_value(Value::string(b"small"));
        lazy.free_value(big);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while lazy.freed() < 1 {
            assert!(std::time::Instant::now() < deadline, "the thread never freed it");
            std::thread::yield_now();
        }
        assert_eq!(lazy.freed(), 1, "only the large value went to the thread");
        assert_eq!(lazy.pending(), 0);
        lazy.reset_stats();
        assert_eq!(lazy.freed(), 0);
    }
}
