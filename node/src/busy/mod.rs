//! A busy script: serving the other clients while a script runs past `busy-reply-threshold`.
//!
//! A script runs atomically, holding the keyspace and the event loop's only thread. Redis,
//! once a script has run past the threshold, turns back to its event loop from inside the
//! script (every 100,000 Lua instructions) and answers every other client `-BUSY`, except
//! for the few commands that can end the wait: SCRIPT KILL or FUNCTION KILL (a script that
//! has not written yet), SHUTDOWN NOSAVE (one that has), AUTH so that a new redis-cli can log
//! in to send them, FUNCTION STATS to see what runs. Monitoring and Sentinels see a server
//! that answers, and an operator can stop a runaway script without killing the process.
//!
//! We do the same from the script's instruction hook, on the same thread, with a small event
//! loop of our own (the `responder` module): an epoll set over the listening sockets and the
//! sockets of the connections that are parked between requests with empty buffers (a
//! connection marks itself so; see [`crate::kill_switch`]). Such a connection's task cannot
//! run meanwhile — the thread is inside the script — so its socket is ours to read and write
//! until the script ends. Connections that are not parked so (the script's own caller, a
//! client blocked in BLPOP, one with half a request buffered) are left alone, and served when
//! the script ends.
//!
//! Each request read is checked as Redis checks it before `-BUSY`: unknown command, arity,
//! authentication, ACL. Then:
//! - SCRIPT KILL, FUNCTION KILL, FUNCTION STATS, SHUTDOWN and QUIT are answered here;
//! - AUTH, HELLO, MULTI, DISCARD and UNWATCH are answered here, and what they do to the
//!   client (its login, protocol, name, transaction) is applied when the connection takes its
//!   [`Handoff`] back;
//! - the other commands Redis allows while busy need the keyspace or change more of the
//!   client (WATCH, RESET, REPLCONF): the request, and
//!   everything the client sends after it, waits and runs when the script has ended, in
//!   order — as if it had arrived a moment later;
//! - anything else is refused with `-BUSY` (and spoils a MULTI in progress, as in Redis).
//!
//! When the script ends, each connection gets back what is left ([`Handoff`]): unparsed
//! input, unsent replies, what its transaction must now do. Connections accepted meanwhile
//! join the server's accept loop with theirs.
//!
//! This needs the single-threaded runtime (`io-threads 1`, the default): with worker threads,
//! a parked connection could be woken on another thread and read its socket alongside us.
//! There a script past the threshold that has not written is stopped instead (nothing could
//! deliver a SCRIPT KILL), and one that has written runs on.
//!
//! Not done while busy, unlike Redis: failed AUTHs and ACL denials are not added to the ACL
//! log (an entry needs the client's whole state), and refusals that depend on the server's
//! state (OOM, READONLY, a subscriber's context) come after `-BUSY` rather than before.

mod responder;

use std::cell::RefCell;
use std::sync::Arc;
use std::time::Instant;

use bytes::{Bytes, BytesMut};

use crate::server::Shared;

/// What a busy period did for one connection, handed back to it when the script ends.
#[derive(Default)]
pub struct Handoff {
    /// Bytes read and not yet run: they come before anything read later.
    pub input: BytesMut,
    /// Replies not yet sent: they go before anything written later.
    pub output: BytesMut,
    /// The transaction in progress, and its WATCHes, are discarded (DISCARD, or EXEC
    /// refused). Applied first.
    pub discard_transaction: bool,
    /// UNWATCH.
    pub unwatch: bool,
    /// MULTI: a transaction starts (after any discarded one).
    pub multi_started: bool,
    /// A command was refused inside MULTI: EXEC must fail with EXECABORT.
    pub multi_failed: bool,
    /// QUIT: close once the output is sent.
    pub close: bool,
    /// AUTH logged the connection in as this user.
    pub user: Option<crate::acl::ClientUser>,
    /// HELLO switched the protocol.
    pub resp: Option<common::resp::Protocol>,
    /// HELLO SETNAME named (or unnamed) the connection.
    pub name: Option<Option<Bytes>>,
    /// The id given to a connection accepted meanwhile (its HELLO reply showed it).
    pub id: Option<u64>,
}

/// The script that runs, as the busy clients may ask about it.
pub struct Script {
    /// EVAL/EVALSHA (SCRIPT KILL stops it), or a function (FUNCTION KILL).
    pub eval: bool,
    /// The function's name, or the script's SHA1.
    pub name: String,
    /// The command that runs it, as sent (FUNCTION STATS shows it).
    pub command: Vec<Bytes>,
    /// Libraries and functions loaded (FUNCTION STATS counts them).
    pub library_counts: (usize, usize),
    /// Sent by our master: no one may kill it.
    pub from_master: bool,
    /// When it started.
    pub started: Instant,
}

/// What the clients asked of a busy script.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Run on.
    Continue,
    /// SCRIPT KILL or FUNCTION KILL: stop it with an error.
    Kill,
    /// SHUTDOWN NOSAVE: stop it, propagate nothing of it, and stop the server.
    Shutdown,
    /// No one can be served here (a multi-threaded runtime).
    Unserved,
}

struct Busy {
    shared: Arc<Shared>,
    script: Script,
    /// Started at the first call past the threshold (`Err`: it could not be).
    responder: Option<Result<responder::Responder, ()>>,
    verdict: Verdict,
}

thread_local! {
    static BUSY: RefCell<Option<Busy>> = const { RefCell::new(None) };
}

/// Registers the script about to run on this thread (before its first instruction).
pub fn begin(shared: &Shared, script: Script) {
    let busy =
        Busy { shared: shared.self_arc(), script, responder: None, verdict: Verdict::Continue };
    BUSY.with_borrow_mut(|b| *b = Some(busy));
}

/// Called from the script's hook once it has run past the threshold: serves the other clients
/// for a moment, and says what they asked. `wrote`: the script has written.
pub fn serve(wrote: bool) -> Verdict {
    BUSY.with_borrow_mut(|busy| {
        let Some(busy) = busy.as_mut() else { return Verdict::Continue };
        if !busy.shared.serves_while_busy.load(std::sync::atomic::Ordering::Relaxed) {
            return Verdict::Unserved;
        }
        if busy.verdict != Verdict::Continue {
            return busy.verdict;
        }
        if busy.responder.is_none() {
            tracing::warn!(
                "Slow script detected: still in execution after {} milliseconds. You can try \
                 killing the script using the {} command. Script name is: {}.",
                busy.script.started.elapsed().as_millis(),
                if busy.script.eval { "SCRIPT KILL" } else { "FUNCTION KILL" },
                busy.script.name,
            );
            let started = responder::Responder::start(&busy.shared).map_err(|e| {
                tracing::warn!(cause = %e, "cannot serve other clients while the script runs");
            });
            busy.responder = Some(started);
        }
        let Some(Ok(responder)) = &mut busy.responder else { return Verdict::Unserved };
        busy.verdict = responder.serve(&busy.shared, &busy.script, wrote);
        busy.verdict
    })
}

/// The script has ended: every connection served meanwhile gets back what is left.
pub fn end() {
    let busy = BUSY.with_borrow_mut(Option::take);
    if let Some(Busy { shared, responder: Some(Ok(responder)), .. }) = busy {
        responder.finish(&shared);
    }
}
