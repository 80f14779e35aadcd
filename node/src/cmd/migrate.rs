//! MIGRATE: moves keys to another instance (a Redis or a warden-node) as RESTORE commands, as
//! Redis 7.0's `migrateCommand` (cluster.c) does.
//!
//! Like Redis it works synchronously: the server waits (at most `timeout` ms per step) while
//! the target answers, so no other client sees a key that is on both sides or on neither. A
//! key is deleted here only once the target acknowledged its RESTORE, and the move reaches
//! our replicas and AOF as a DEL of exactly those keys; COPY keeps them and propagates nothing.
//!
//! Connections to targets are kept for reuse (at most 64, each closed after 10 s unused), and
//! remember the database they last selected, as Redis's `migrate_cached_sockets`. A cached
//! connection that turns out to be closed is reopened once, if nothing was acknowledged on it.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::resp::{Frame, Protocol};
use parking_lot::Mutex;

use crate::cmd::args::{int, is};
use crate::cmd::flags::*;
use crate::cmd::{cmd, CommandSpec};
use crate::error::{CmdResult, CommandError};
use crate::exec::Ctx;
use crate::notify::class;
use crate::persist::payload;

/// The MIGRATE command.
pub static COMMANDS: &[CommandSpec] = &[cmd("migrate", -6, WRITE, (3, 3, 1), migrate)];

/// At most this many cached target connections; a new one then replaces one of them.
const CACHE_ITEMS: usize = 64;
/// A cached connection unused this long is closed (by [`close_idle`]).
const CACHE_TTL: Duration = Duration::from_secs(10);

/// A kept connection to a target instance.
struct Target {
    reader: BufReader<TcpStream>,
    /// The database it last selected successfully (`None`: SELECT next time).
    db: Option<i64>,
    last_use: Instant,
}

/// The cache of target connections, by `host:port` as given.
#[derive(Default)]
pub struct Targets(Mutex<HashMap<String, Target>>);

/// Closes cached connections unused for 10 s (called once a second by the cron).
pub fn close_idle(targets: &Targets) {
    targets.0.lock().retain(|_, t| t.last_use.elapsed() <= CACHE_TTL);
}

/// MIGRATE's options.
struct Options {
    copy: bool,
    replace: bool,
    /// AUTH password, or AUTH2 username password.
    auth: Option<(Option<Bytes>, Bytes)>,
    /// Where the keys start in the arguments, and how many.
    keys: (usize, usize),
}

fn options(args: &[Bytes]) -> Result<Options, CommandError> {
    let mut o = Options { copy: false, replace: false, auth: None, keys: (3, 1) };
    let mut j = 6;
    while j < args.len() {
        let more = args.len() - 1 - j;
        if is(&args[j], "copy") {
            o.copy = true;
        } else if is(&args[j], "replace") {
            o.replace = true;
        } else if is(&args[j], "auth") {
            if more == 0 {
                return Err(CommandError::Syntax);
            }
            o.auth = Some((None, args[j + 1].clone()));
            j += 1;
        } else if is(&args[j], "auth2") {
            if more < 2 {
                return Err(CommandError::Syntax);
            }
            o.auth = Some((Some(args[j + 1].clone()), args[j + 2].clone()));
            j += 2;
        } else if is(&args[j], "keys") {
            if !args[3].is_empty() {
                return Err(CommandError::err(
                    "When using MIGRATE KEYS option, the key argument must be set to the empty string",
                ));
            }
            o.keys = (j + 1, args.len() - j - 1);
            break;
        } else {
            return Err(CommandError::Syntax);
        }
        j += 1;
    }
    Ok(o)
}

/// Why talking to the target failed.
enum Failure {
    Connect,
    Write,
    Read { timed_out: bool },
}

fn migrate(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let o = options(args)?;
    let timeout = int(&args[5])?;
    let db = int(&args[4])?;
    let timeout = Duration::from_millis(if timeout <= 0 { 1000 } else { timeout as u64 });
    // Keys missing or expired are left out; with none left there is nothing to do.
    let (first, count) = o.keys;
    let keys: Vec<Bytes> = args[first..first + count]
        .iter()
        .filter(|k| ctx.lookup_read(k).is_some())
        .cloned()
        .collect();
    if keys.is_empty() {
        return Ok(Frame::simple("NOKEY"));
    }
    let compression = ctx.server.config.read().get("rdbcompression") != Some("no");
    let name =
        format!("{}:{}", String::from_utf8_lossy(&args[1]), String::from_utf8_lossy(&args[2]));
    let mut may_retry = true;
    loop {
        let mut cache = ctx.server.migrate_targets.0.lock();
        let target = match cached(&mut cache, &name, &args[1], &args[2], timeout) {
            Ok(target) => target,
            Err(Failure::Connect) => {
                return Err(CommandError::raw("IOERR error or timeout connecting to the client"))
            }
            // Refused: Redis's non-blocking connect only finds out when it writes.
            Err(_) if may_retry => {
                may_retry = false;
                continue;
            }
            Err(_) => {
                return Err(CommandError::raw("IOERR error or timeout writing to target instance"))
            }
        };
        // The request: AUTH, SELECT when the connection is elsewhere, one RESTORE per key
        // that is still there (a key may have expired since it was looked up).
        let mut request = Vec::new();
        let mut push = |words: Vec<Bytes>| {
            Frame::Array(words.into_iter().map(Frame::Bulk).collect())
                .encode(Protocol::Resp2, &mut request)
        };
        if let Some((user, password)) = &o.auth {
            let mut words = vec![Bytes::from_static(b"AUTH")];
            words.extend(user.iter().cloned());
            words.push(password.clone());
            push(words);
        }
        let select = target.db != Some(db);
        if select {
            push(vec![Bytes::from_static(b"SELECT"), Bytes::from(db.to_string())]);
        }
        let mut sent = Vec::new();
        for key in &keys {
            let ttl = match ctx.db_ref().expiry(key) {
                Some(at) if at - ctx.now_ms < 0 => continue,
                Some(at) => (at - ctx.now_ms).max(1),
                None => 0,
            };
            let Some(value) = ctx.db_ref().keys.get(key) else { continue };
            let dumped = Bytes::from(payload::dump(value, compression));
            let mut words = vec![
                Bytes::from_static(b"RESTORE"),
                key.clone(),
                Bytes::from(ttl.to_string()),
                dumped,
            ];
            if o.replace {
                words.push(Bytes::from_static(b"REPLACE"));
            }
            push(words);
            sent.push(key.clone());
        }
        let outcome = exchange(target, &request, o.auth.is_some(), select, sent.len(), timeout);
        let (replies, failure) = match outcome {
            Ok(replies) => (replies, None),
            Err((replies, failure)) => (replies, Some(failure)),
        };
        // A connection that failed before any answer came back (a cached one the target has
        // closed, most likely) is reopened once, unless the failure was a timeout.
        let nothing_back = replies.restores.is_empty() && replies.first_error.is_none();
        if let Some(failure) = &failure {
            cache.remove(&name);
            let timed_out = matches!(failure, Failure::Read { timed_out: true });
            if nothing_back && may_retry && !timed_out {
                may_retry = false;
                continue;
            }
        }
        drop(cache);
        let mut moved = vec![Bytes::from_static(b"DEL")];
        for (key, ok) in sent.iter().zip(&replies.restores) {
            if *ok && !o.copy {
                ctx.delete(key);
                ctx.modified(key);
                ctx.notify(class::GENERIC, "del", key);
                ctx.dirty(1);
                moved.push(key.clone());
            }
        }
        // Replicas and the AOF see the move as a DEL of the keys the target acknowledged.
        if moved.len() > 1 {
            ctx.propagate_as(moved);
        } else {
            ctx.propagate_nothing();
        }
        if let Some(error) = replies.first_error {
            if let Some(target) = ctx.server.migrate_targets.0.lock().get_mut(&name) {
                target.db = None;
            }
            let text = String::from_utf8_lossy(error.strip_prefix(b"-").unwrap_or(&error));
            return Err(CommandError::err(format!("Target instance replied with error: {text}")));
        }
        return match failure {
            None => {
                if let Some(target) = ctx.server.migrate_targets.0.lock().get_mut(&name) {
                    target.db = Some(db);
                }
                Ok(Frame::ok())
            }
            Some(Failure::Write) => {
                Err(CommandError::raw("IOERR error or timeout writing to target instance"))
            }
            Some(_) => Err(CommandError::raw("IOERR error or timeout reading to target instance")),
        };
    }
}

/// The cached connection to `name`, or a new one (connected within `timeout`).
fn cached<'c>(
    cache: &'c mut HashMap<String, Target>,
    name: &str,
    host: &[u8],
    port: &[u8],
    timeout: Duration,
) -> Result<&'c mut Target, Failure> {
    if !cache.contains_key(name) {
        if cache.len() >= CACHE_ITEMS {
            // Full: one goes (Redis drops a random one).
            if let Some(victim) = cache.keys().next().cloned() {
                cache.remove(&victim);
            }
        }
        let stream = connect(host, port, timeout)?;
        cache.insert(
            name.to_string(),
            Target { reader: BufReader::new(stream), db: None, last_use: Instant::now() },
        );
    }
    let target = cache.get_mut(name).expect("just inserted");
    target.last_use = Instant::now();
    Ok(target)
}

/// Connects within `timeout`. An address that does not resolve, or no answer in time, fails
/// as connecting; a refusal fails as writing, as Redis (connecting without blocking) sees it.
fn connect(host: &[u8], port: &[u8], timeout: Duration) -> Result<TcpStream, Failure> {
    let host = std::str::from_utf8(host).map_err(|_| Failure::Connect)?;
    let port = std::str::from_utf8(port).map_err(|_| Failure::Connect)?;
    let port: u16 = port.parse().map_err(|_| Failure::Connect)?;
    let addr = (host, port).to_socket_addrs().ok().and_then(|mut a| a.next());
    let addr = addr.ok_or(Failure::Connect)?;
    let stream = TcpStream::connect_timeout(&addr, timeout).map_err(|e| match e.kind() {
        std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock => Failure::Connect,
        _ => Failure::Write,
    })?;
    let _ = stream.set_nodelay(true);
    Ok(stream)
}

/// What the target answered.
#[derive(Default)]
struct Replies {
    /// Per RESTORE sent, whether it succeeded, for the replies read.
    restores: Vec<bool>,
    /// The first error among AUTH's, SELECT's and the RESTOREs' replies.
    first_error: Option<Vec<u8>>,
}

/// Sends the request and reads the replies: AUTH's and SELECT's if sent, then one per RESTORE.
/// On a failure, the replies read before it come with it.
fn exchange(
    target: &mut Target,
    request: &[u8],
    auth: bool,
    select: bool,
    restores: usize,
    timeout: Duration,
) -> Result<Replies, (Replies, Failure)> {
    let mut replies = Replies::default();
    let stream = target.reader.get_mut();
    let _ = stream.set_write_timeout(Some(timeout));
    let _ = stream.set_read_timeout(Some(timeout));
    if stream.write_all(request).and_then(|()| stream.flush()).is_err() {
        return Err((replies, Failure::Write));
    }
    let mut head_error = None;
    for _ in 0..usize::from(auth) + usize::from(select) {
        match read_line(&mut target.reader) {
            Ok(line) if line.starts_with(b"-") && head_error.is_none() => head_error = Some(line),
            Ok(_) => {}
            Err(failure) => return Err((replies, failure)),
        }
    }
    for _ in 0..restores {
        match read_line(&mut target.reader) {
            Ok(line) => {
                // An AUTH or SELECT error fails every RESTORE, as in Redis.
                let error = head_error.clone().or_else(|| line.starts_with(b"-").then_some(line));
                if replies.first_error.is_none() {
                    replies.first_error = error.clone();
                }
                replies.restores.push(error.is_none());
            }
            Err(failure) => return Err((replies, failure)),
        }
    }
    Ok(replies)
}

/// One reply line, without its CRLF (the target's replies here are all one line).
fn read_line(reader: &mut BufReader<TcpStream>) -> Result<Vec<u8>, Failure> {
    let mut line = Vec::new();
    match reader.read_until(b'\n', &mut line) {
        Ok(0) => Err(Failure::Read { timed_out: false }),
        Ok(_) => {
            while line.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
                line.pop();
            }
            Ok(line)
        }
        Err(e) => Err(Failure::Read {
            timed_out: matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ),
        }),
    }
}
