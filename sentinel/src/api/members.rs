//! `SENTINEL MEMBERS [ADD <id> <raft-ip:port> | REMOVE <id>]` (a Warden extension): the
//! supervisor group's membership, changed through Raft conf changes ([`crate::membership`]).
//!
//! Without arguments: one map per supervisor (voters, then learners) with `id`, `raft-addr`,
//! `client-addr`, `role` (`voter`/`learner`), `leader` (`1`/`0`), and on the leader
//! `match-index` and `lag` (entries behind the commit index; empty elsewhere). Values are
//! bulk strings, as in Sentinel's instance maps.

use std::time::Duration;

use bytes::Bytes;
use common::resp::Frame;

use super::Context;
use crate::membership::{self, Member};

/// How long an add or remove waits to see its change applied here.
const COMMIT_WAIT: Duration = Duration::from_secs(10);

/// The members as this supervisor sees them.
pub fn members(ctx: &Context) -> Vec<Member> {
    let status = ctx.status.borrow().clone();
    let state = ctx.state.borrow().clone();
    membership::list(&status, &state, &ctx.config_peers)
}

fn member_map(m: &Member) -> Frame {
    let opt = |v: Option<u64>| v.map(|v| v.to_string()).unwrap_or_default();
    let pairs = [
        ("id", m.id.to_string()),
        ("raft-addr", m.raft_addr.clone().unwrap_or_default()),
        ("client-addr", m.client_addr.clone().unwrap_or_default()),
        ("role", m.role.to_string()),
        ("leader", if m.leader { "1" } else { "0" }.to_string()),
        ("match-index", opt(m.match_index)),
        ("lag", opt(m.lag)),
    ];
    Frame::Map(
        pairs
            .into_iter()
            .map(|(k, v)| (Frame::bulk_static(k), Frame::Bulk(Bytes::from(v))))
            .collect(),
    )
}

/// Handles `SENTINEL MEMBERS ...` (`args` is the whole request).
pub async fn command(ctx: &Context, args: &[Bytes]) -> Frame {
    let words: Vec<String> =
        args[2..].iter().map(|a| String::from_utf8_lossy(a).into_owned()).collect();
    let action = words.first().map(|w| w.to_ascii_lowercase());
    let parse_id = |w: &str| {
        w.parse::<u64>()
            .ok()
            .filter(|id| *id > 0)
            .ok_or_else(|| Frame::error(format!("ERR invalid raft id '{w}'")))
    };
    let connected = ctx.connected_peers.lock().clone();
    let result = match (action.as_deref(), words.len()) {
        (None, _) => return Frame::Array(members(ctx).iter().map(member_map).collect()),
        (Some("add"), 3) => match parse_id(&words[1]) {
            Ok(id) => membership::add(&ctx.consensus, &connected, id, &words[2], COMMIT_WAIT).await,
            Err(reply) => return reply,
        },
        (Some("remove"), 2) => match parse_id(&words[1]) {
            Ok(id) => membership::remove(&ctx.consensus, &connected, id, COMMIT_WAIT).await,
            Err(reply) => return reply,
        },
        _ => {
            return Frame::error(
                "ERR syntax: SENTINEL MEMBERS [ADD <id> <raft-ip:port> | REMOVE <id>]",
            )
        }
    };
    match result {
        Ok(()) => Frame::ok(),
        Err(e) => Frame::error(e.to_string()),
    }
}
