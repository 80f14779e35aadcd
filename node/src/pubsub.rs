//! Pub/sub channels and patterns: who receives a PUBLISH, and shard channels: who receives an
//! SPUBLISH (Redis 7's sharded pub/sub; on a server without cluster mode a shard channel is a
//! second, separate namespace of channels that patterns never match).

use std::collections::HashMap;

use bytes::Bytes;
use common::resp::Frame;

use crate::output_limit::BufferLimit;
use crate::push::{Delivery, PushSender};

/// Subscribers by channel and by pattern.
#[derive(Default)]
pub struct PubSub {
    channels: HashMap<Bytes, HashMap<u64, PushSender>>,
    patterns: HashMap<Bytes, HashMap<u64, PushSender>>,
    shard_channels: HashMap<Bytes, HashMap<u64, PushSender>>,
    /// `client-output-buffer-limit pubsub`, kept here so PUBLISH needs no config lock.
    pub limit: BufferLimit,
}

impl PubSub {
    /// Subscribes `client` to `channel`. Returns false if it already was.
    pub fn subscribe(&mut self, client: u64, channel: Bytes, tx: PushSender) -> bool {
        self.channels.entry(channel).or_default().insert(client, tx).is_none()
    }

    /// Unsubscribes `client` from `channel`.
    pub fn unsubscribe(&mut self, client: u64, channel: &Bytes) -> bool {
        remove(&mut self.channels, client, channel)
    }

    /// Subscribes `client` to `pattern`.
    pub fn psubscribe(&mut self, client: u64, pattern: Bytes, tx: PushSender) -> bool {
        self.patterns.entry(pattern).or_default().insert(client, tx).is_none()
    }

    /// Unsubscribes `client` from `pattern`.
    pub fn punsubscribe(&mut self, client: u64, pattern: &Bytes) -> bool {
        remove(&mut self.patterns, client, pattern)
    }

    /// Subscribes `client` to shard channel `channel` (SSUBSCRIBE).
    pub fn ssubscribe(&mut self, client: u64, channel: Bytes, tx: PushSender) -> bool {
        self.shard_channels.entry(channel).or_default().insert(client, tx).is_none()
    }

    /// Unsubscribes `client` from shard channel `channel`.
    pub fn sunsubscribe(&mut self, client: u64, channel: &Bytes) -> bool {
        remove(&mut self.shard_channels, client, channel)
    }

    /// Delivers an SPUBLISH message (`smessage`) to the shard channel's subscribers; returns
    /// the same as [`PubSub::publish`].
    pub fn spublish(&self, channel: &Bytes, message: &Bytes) -> (usize, Vec<u64>) {
        let mut count = 0;
        let mut overflow = Vec::new();
        for (id, tx) in self.shard_channels.get(channel).into_iter().flatten() {
            let frame = Frame::Push(vec![
                Frame::bulk_static("smessage"),
                Frame::Bulk(channel.clone()),
                Frame::Bulk(message.clone()),
            ]);
            deliver(tx, frame, &self.limit, *id, &mut count, &mut overflow);
        }
        (count, overflow)
    }

    /// Delivers a message; returns the number of receivers and the subscribers that went over
    /// their output-buffer limit (the caller disconnects them).
    pub fn publish(&self, channel: &Bytes, message: &Bytes) -> (usize, Vec<u64>) {
        let mut count = 0;
        let mut overflow = Vec::new();
        if let Some(subs) = self.channels.get(channel) {
            for (id, tx) in subs {
                let frame = Frame::Push(vec![
                    Frame::bulk_static("message"),
                    Frame::Bulk(channel.clone()),
                    Frame::Bulk(message.clone()),
                ]);
                deliver(tx, frame, &self.limit, *id, &mut count, &mut overflow);
            }
        }
        for (pattern, subs) in &self.patterns {
            if !common::glob::matches(pattern, channel, false) {
                continue;
            }
            for (id, tx) in subs {
                let frame = Frame::Push(vec![
                    Frame::bulk_static("pmessage"),
                    Frame::Bulk(pattern.clone()),
                    Frame::Bulk(channel.clone()),
                    Frame::Bulk(message.clone()),
                ]);
                deliver(tx, frame, &self.limit, *id, &mut count, &mut overflow);
            }
        }
        (count, overflow)
    }

    /// Active channels, or shard channels, matching `pattern` (PUBSUB CHANNELS,
    /// SHARDCHANNELS).
    pub fn channels(&self, shard: bool, pattern: Option<&[u8]>) -> Vec<Bytes> {
        let map = if shard { &self.shard_channels } else { &self.channels };
        map.keys()
            .filter(|c| pattern.is_none_or(|p| common::glob::matches(p, c, false)))
            .cloned()
            .collect()
    }

    /// Subscribers of `channel`, or of shard channel `channel` (PUBSUB NUMSUB, SHARDNUMSUB).
    pub fn numsub(&self, shard: bool, channel: &Bytes) -> usize {
        let map = if shard { &self.shard_channels } else { &self.channels };
        map.get(channel).map_or(0, HashMap::len)
    }

    /// The channels, patterns and shard channels a client is subscribed to, as three lists
    /// (ACL SETUSER checks them when it takes channels away). Walks every subscription.
    pub fn subscriptions_of(&self, client: u64) -> [Vec<Bytes>; 3] {
        let of = |map: &HashMap<Bytes, HashMap<u64, PushSender>>| -> Vec<Bytes> {
            map.iter()
                .filter(|(_, subs)| subs.contains_key(&client))
                .map(|(k, _)| k.clone())
                .collect()
        };
        [of(&self.channels), of(&self.patterns), of(&self.shard_channels)]
    }

    /// Number of distinct patterns (PUBSUB NUMPAT).
    pub fn numpat(&self) -> usize {
        self.patterns.len()
    }

    /// Number of channels with subscribers (INFO `pubsub_channels`).
    pub fn channel_count(&self) -> usize {
        self.channels.len()
    }

    /// Number of shard channels with subscribers (INFO `pubsub_shardchannels`).
    pub fn shard_channel_count(&self) -> usize {
        self.shard_channels.len()
    }
}

/// Delivers a message (PUBLISH, keyspace notifications; SPUBLISH when `shard`) and drops the
/// subscribers that went over `client-output-buffer-limit pubsub`. Returns the number of
/// receivers.
pub fn publish(
    shared: &crate::server::Shared,
    shard: bool,
    channel: &Bytes,
    message: &Bytes,
) -> usize {
    let (receivers, overflow) = {
        let pubsub = shared.pubsub.lock();
        if shard {
            pubsub.spublish(channel, message)
        } else {
            pubsub.publish(channel, message)
        }
    };
    if !overflow.is_empty() {
        let clients = shared.clients.lock();
        for id in overflow {
            tracing::warn!(
                client = id,
                "client scheduled to be closed ASAP for overcoming of output buffer limits"
            );
            if let Some(c) = clients.get(id) {
                c.kill.kill();
            }
        }
    }
    receivers
}

fn remove(map: &mut HashMap<Bytes, HashMap<u64, PushSender>>, client: u64, key: &Bytes) -> bool {
    let Some(subs) = map.get_mut(key) else { return false };
    let removed = subs.remove(&client).is_some();
    if subs.is_empty() {
        map.remove(key);
    }
    removed
}

fn deliver(
    tx: &PushSender,
    frame: Frame,
    limit: &BufferLimit,
    id: u64,
    count: &mut usize,
    overflow: &mut Vec<u64>,
) {
    match tx.send(frame, limit) {
        Delivery::Queued => *count += 1,
        Delivery::OverLimit => {
            *count += 1;
            overflow.push(id);
        }
        Delivery::Closed => {}
    }
}
