//! The comparison suite: every `tests/compat/*.redis` script is replayed, line by line, against a
//! real Debian `redis-server` 7.0 and against an in-process warden-node, and the raw reply bytes
//! of every compared line must be identical (script format: `tests/compat/README.md`).
//!
//! How it runs:
//! - ONE `redis-server` child process (`/usr/bin/redis-server`, or `$REDIS_SERVER`) on a free
//!   loopback port with its own temp dir and log file; a [`RedisProcess`] guard (shared with the
//!   differential test, in `tests/support/`) kills it and, when the test is failing, prints the
//!   tail of its log.
//! - ONE warden-node started in this process with [`TestServer::start`].
//! - For each script (sorted by name): a fresh connection to each server, `FLUSHALL` on both (not
//!   compared), then every line is sent as a RESP multibulk built by `split_args`, and the frames
//!   it produces are read raw (each bounded by [`support::wire::IO_TIMEOUT`]) and compared byte
//!   for byte.
//! - How many frames a line produces (none after `CLIENT REPLY OFF`, one per channel for
//!   SUBSCRIBE …) follows Redis's rules, tracked in [`SessionState`]. After a mismatch both
//!   connections are brought back in step with a `PING <token>`, so one extra or missing frame
//!   shows as one mismatch (with the left-over frames) instead of shifting the rest of the script.
//! - The servers live across scripts: a script that changes a setting (CONFIG SET) restores it.
//!
//! Why one `#[tokio::test]` and not one per script: the scripts are discovered at run time (other
//! families add files without touching this code), and libtest cannot register tests at run time
//! short of a custom `harness = false` runner; generating a test per file from a `build.rs` would
//! add a build step to the server crate for the sake of one test. So the single test prints one
//! summary line per script and then fails listing every mismatch of every script, not just the
//! first one.
//!
//! Environment:
//! - `REDIS_SERVER=/path/to/redis-server` — the reference binary (must be 7.0.x).
//! - `COMPAT_ONLY=strings,keys` — run only these scripts (names without `.redis`).
//! - `COMPAT_TARGET=redis` — compare Redis against a second Redis instead of warden-node: a
//!   self-check that a script is deterministic (run this after writing or changing a script).
//! - `COMPAT_VERBOSE=1` — print every line with Redis's reply (with `--nocapture`), to check that
//!   a script tests what it means to.

mod support;

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use common::config::split_args;
use common::resp::decode;
use node::testing::TestServer;
use support::redis_process::{check_version, redis_binary, RedisProcess};
use support::wire::{escape, Wire};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compat_scripts_match_redis() {
    let binary = redis_binary();
    let redis = RedisProcess::start(&binary).await.unwrap_or_else(|e| panic!("{e}"));
    check_version(redis.addr).await;

    // The other side: warden-node, or a second Redis for the self-check.
    let self_check = std::env::var("COMPAT_TARGET").is_ok_and(|t| t == "redis");
    let (_warden, _redis2, target_addr, target_name) = if self_check {
        let second = RedisProcess::start(&binary).await.unwrap_or_else(|e| panic!("{e}"));
        let addr = second.addr;
        (None, Some(second), addr, "redis2")
    } else {
        let server = TestServer::start("enable-debug-command yes\n").await;
        let addr = server.addr;
        (Some(server), None, addr, "warden")
    };

    let scripts = discover_scripts();
    assert!(!scripts.is_empty(), "no .redis scripts found in {}", script_dir().display());
    let mut report = String::new();
    let mut total = 0;
    for path in &scripts {
        let outcome = run_script(path, redis.addr, target_addr, target_name).await;
        let name = path.file_name().expect("a script path has a file name").to_string_lossy();
        println!(
            "compat {name}: {} lines compared, {} mismatches{}",
            outcome.compared,
            outcome.mismatches.len(),
            if outcome.aborted { " (aborted: connection out of sync)" } else { "" }
        );
        total += outcome.mismatches.len();
        for m in &outcome.mismatches {
            report.push_str(m);
            report.push('\n');
        }
    }
    assert!(
        total == 0,
        "{total} replies differ between redis-server and {target_name}:\n\n{report}"
    );
}

// ---------------------------------------------------------------------------------------------
// Scripts

fn script_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/compat")
}

/// The `*.redis` files, sorted, filtered by `COMPAT_ONLY`.
fn discover_scripts() -> Vec<PathBuf> {
    let only: Option<Vec<String>> = std::env::var("COMPAT_ONLY")
        .ok()
        .map(|s| s.split(',').map(|n| n.trim().to_string()).collect());
    let dir = script_dir();
    let entries = std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("read {}: {e}", dir.display()));
    let mut scripts: Vec<PathBuf> = entries
        .map(|e| e.expect("read a directory entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "redis"))
        .filter(|p| {
            let stem = p.file_stem().expect("a .redis file has a stem").to_string_lossy();
            only.as_ref().is_none_or(|names| names.iter().any(|n| *n == stem))
        })
        .collect();
    scripts.sort();
    scripts
}

/// How a line's replies are compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Byte for byte.
    Exact,
    /// After sorting the elements of each top-level aggregate (`~`).
    Sorted,
    /// Not compared (`-`).
    Ignored,
}

struct Line {
    number: usize,
    mode: Mode,
    text: String,
    args: Vec<Vec<u8>>,
}

fn parse_script(path: &Path) -> Vec<Line> {
    let text =
        std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    let mut lines = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let trimmed = raw.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let (mode, command) = match trimmed.as_bytes()[0] {
            b'~' => (Mode::Sorted, trimmed[1..].trim_start()),
            b'-' => (Mode::Ignored, trimmed[1..].trim_start()),
            _ => (Mode::Exact, trimmed),
        };
        let args = split_args(command.as_bytes())
            .unwrap_or_else(|_| panic!("{}:{}: unbalanced quotes", path.display(), i + 1));
        assert!(!args.is_empty(), "{}:{}: a marker without a command", path.display(), i + 1);
        lines.push(Line { number: i + 1, mode, text: command.to_string(), args });
    }
    lines
}

struct Outcome {
    compared: usize,
    mismatches: Vec<String>,
    aborted: bool,
}

async fn run_script(
    path: &Path,
    redis: SocketAddr,
    target: SocketAddr,
    target_name: &'static str,
) -> Outcome {
    let file =
        path.file_name().expect("a script path has a file name").to_string_lossy().into_owned();
    let mut a = Conn::connect(redis, "redis").await;
    let mut b = Conn::connect(target, target_name).await;
    for conn in [&mut a, &mut b] {
        let reply = conn.roundtrip(&[b"FLUSHALL".to_vec()], 1, true).await;
        assert_eq!(
            reply.as_deref(),
            Ok(&b"+OK\r\n"[..]),
            "FLUSHALL on {} before {file}",
            conn.wire.name
        );
    }
    let verbose = std::env::var_os("COMPAT_VERBOSE").is_some();
    let mut state = SessionState::default();
    let mut outcome = Outcome { compared: 0, mismatches: Vec::new(), aborted: false };
    for line in parse_script(path) {
        let (expected, counts_pushes) = state.expected_frames(&line.args);
        let ra = a.roundtrip(&line.args, expected, counts_pushes).await;
        let rb = b.roundtrip(&line.args, expected, counts_pushes).await;
        state.after(&line.args, ra.as_deref().unwrap_or_default());
        let failed = ra.is_err() || rb.is_err();
        let compared = |r: &Result<Vec<u8>, String>| match r {
            Ok(x) if line.mode == Mode::Sorted => Ok(sort_aggregates(x)),
            other => other.clone(),
        };
        let (ca, cb) = (compared(&ra), compared(&rb));
        if line.mode != Mode::Ignored {
            outcome.compared += 1;
        }
        if verbose {
            let shown = ra.as_deref().map(escape).unwrap_or_else(|e| format!("<{e}>"));
            println!("{file}:{}: {} -> {shown}", line.number, line.text);
        }
        if !failed && (line.mode == Mode::Ignored || ca == cb) {
            continue;
        }
        let show = |r: &Result<Vec<u8>, String>| match r {
            Ok(bytes) => escape(bytes),
            Err(e) => format!("<{e}>"),
        };
        let mut m = format!("{file}:{}: {}", line.number, line.text);
        let _ = write!(m, "\n  {:<7} {}", "redis:", show(&ca));
        let _ = write!(m, "\n  {:<7} {}", format!("{target_name}:"), show(&cb));
        // One extra or missing frame would shift every later reply by one: bring both
        // connections back in step before going on, and show what was left over. Inside MULTI
        // or with replies off that is not possible; a content mismatch there is harmless, but
        // after a read failure the script cannot go on.
        let mut in_step = !failed;
        if state.can_resync() {
            let token = format!("compat-resync-{}", line.number).into_bytes();
            let (xa, xb) = (a.resync(&token).await, b.resync(&token).await);
            for (name, extra) in [("redis", &xa), (target_name, &xb)] {
                match extra {
                    Ok(bytes) if bytes.is_empty() => {}
                    Ok(bytes) => {
                        let _ = write!(m, "\n  {name}, then: {}", escape(bytes));
                    }
                    Err(e) => {
                        let _ = write!(m, "\n  {name}, resync: <{e}>");
                    }
                }
            }
            in_step = xa.is_ok() && xb.is_ok();
        }
        if !in_step {
            m.push_str("\n  (rest of the script skipped: the connections are out of step)");
        }
        outcome.mismatches.push(m);
        if !in_step {
            outcome.aborted = true;
            break;
        }
    }
    outcome
}

/// What the harness must know about a connection to tell how many frames a line produces.
/// It follows Redis's rules from the commands sent (and Redis's own replies).
#[derive(Default)]
struct SessionState {
    channels: BTreeSet<Vec<u8>>,
    patterns: BTreeSet<Vec<u8>>,
    shard_channels: BTreeSet<Vec<u8>>,
    in_multi: bool,
    reply: ReplyMode,
}

#[derive(Default, Clone, Copy, PartialEq, Eq)]
enum ReplyMode {
    #[default]
    On,
    Off,
    /// The next command's reply is suppressed (`CLIENT REPLY SKIP`).
    SkipNext,
}

impl SessionState {
    /// The number of frames the line produces, and whether RESP3 pushes count towards it (they
    /// do for the subscribe family; for other commands a push is out-of-band and read as extra).
    fn expected_frames(&mut self, args: &[Vec<u8>]) -> (usize, bool) {
        let name = args[0].to_ascii_uppercase();
        let sub = args.get(1).map(|a| a.to_ascii_uppercase());
        let reset = name == b"RESET";
        let client_reply = name == b"CLIENT" && sub.as_deref() == Some(b"REPLY") && args.len() == 3;
        let mode = client_reply.then(|| args[2].to_ascii_uppercase());
        // Inside MULTI a command is only queued (`+QUEUED`), so it changes no mode here.
        let queued = self.in_multi
            && !matches!(
                &name[..],
                b"EXEC" | b"DISCARD" | b"MULTI" | b"WATCH" | b"RESET" | b"QUIT"
            );
        let mode = if queued { None } else { mode };
        // Redis decides whether this command's reply is suppressed before running it, then
        // the command may change the mode (`CLIENT REPLY ON` while skipping is itself silent).
        let suppressed = match self.reply {
            ReplyMode::On => false,
            ReplyMode::Off => !reset && mode.as_deref() != Some(b"ON"),
            ReplyMode::SkipNext => {
                self.reply = ReplyMode::On;
                true
            }
        };
        match mode.as_deref() {
            Some(b"OFF") => self.reply = ReplyMode::Off,
            Some(b"SKIP") if self.reply == ReplyMode::On => self.reply = ReplyMode::SkipNext,
            Some(b"ON") => self.reply = ReplyMode::On,
            _ => {}
        }
        if reset && self.reply == ReplyMode::Off {
            self.reply = ReplyMode::On;
        }
        if suppressed || matches!(mode.as_deref(), Some(b"OFF" | b"SKIP")) {
            return (0, false);
        }
        if queued {
            return (1, false);
        }
        let n = args.len() - 1;
        match &name[..] {
            b"SUBSCRIBE" | b"PSUBSCRIBE" | b"SSUBSCRIBE" => (n.max(1), true),
            b"UNSUBSCRIBE" if n == 0 => (self.channels.len().max(1), true),
            b"PUNSUBSCRIBE" if n == 0 => (self.patterns.len().max(1), true),
            b"SUNSUBSCRIBE" if n == 0 => (self.shard_channels.len().max(1), true),
            b"UNSUBSCRIBE" | b"PUNSUBSCRIBE" | b"SUNSUBSCRIBE" => (n, true),
            _ => (1, false),
        }
    }

    /// Whether a `PING <token>` can be sent to find where the replies are: not while commands
    /// are queued or replies are off.
    fn can_resync(&self) -> bool {
        !self.in_multi && self.reply == ReplyMode::On
    }

    /// Updates the state after the line ran; `redis_reply` is what Redis answered.
    fn after(&mut self, args: &[Vec<u8>], redis_reply: &[u8]) {
        let name = args[0].to_ascii_uppercase();
        let ok = !redis_reply.starts_with(b"-");
        match &name[..] {
            b"MULTI" if redis_reply == b"+OK\r\n" => self.in_multi = true,
            b"EXEC" | b"DISCARD" => self.in_multi = false,
            b"RESET" => *self = SessionState::default(),
            _ if self.in_multi => {}
            b"SUBSCRIBE" if ok => self.channels.extend(args[1..].iter().cloned()),
            b"PSUBSCRIBE" if ok => self.patterns.extend(args[1..].iter().cloned()),
            b"SSUBSCRIBE" if ok => self.shard_channels.extend(args[1..].iter().cloned()),
            b"SUNSUBSCRIBE" if args.len() == 1 => self.shard_channels.clear(),
            b"SUNSUBSCRIBE" => self.shard_channels.retain(|c| !args[1..].contains(c)),
            b"UNSUBSCRIBE" if args.len() == 1 => self.channels.clear(),
            b"PUNSUBSCRIBE" if args.len() == 1 => self.patterns.clear(),
            b"UNSUBSCRIBE" => self.channels.retain(|c| !args[1..].contains(c)),
            b"PUNSUBSCRIBE" => self.patterns.retain(|p| !args[1..].contains(p)),
            _ => {}
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Raw connections

/// A raw connection that replays script lines and knows how to get back in step.
struct Conn {
    wire: Wire,
}

impl Conn {
    async fn connect(addr: SocketAddr, name: &'static str) -> Conn {
        Conn { wire: Wire::connect(addr, name).await }
    }

    /// Sends one request and returns the raw bytes of the `expected` frames it produces, plus
    /// the RESP3 pushes read among them that do not count: every push when `counts_pushes` is
    /// false, and published messages always (a RESP3 client may receive its own PUBLISH).
    /// Reading stops early at an error reply to a multi-frame command (SUBSCRIBE's arity error).
    async fn roundtrip(
        &mut self,
        args: &[Vec<u8>],
        expected: usize,
        counts_pushes: bool,
    ) -> Result<Vec<u8>, String> {
        self.wire.send(args).await?;
        let mut out = Vec::new();
        let mut counted = 0;
        while counted < expected {
            let frame = self.wire.read_frame().await?;
            let is_push = frame.first() == Some(&b'>');
            let is_error = frame.first() == Some(&b'-');
            let is_message = [
                &b">3\r\n$7\r\nmessage\r\n"[..],
                b">4\r\n$8\r\npmessage\r\n",
                b">3\r\n$8\r\nsmessage\r\n",
            ]
            .iter()
            .any(|m| frame.starts_with(m));
            out.extend_from_slice(&frame);
            if !is_push || (counts_pushes && !is_message) {
                counted += 1;
            }
            if is_error && counted == 1 {
                break;
            }
        }
        Ok(out)
    }

    /// Sends `PING <token>` and reads up to its reply (plain or subscribed-mode form); returns
    /// the bytes of the frames that came before it. A server still inside MULTI (where Redis
    /// has left it) queues the PING: it gets a DISCARD and the PING again.
    async fn resync(&mut self, token: &[u8]) -> Result<Vec<u8>, String> {
        let ping = [b"PING".to_vec(), token.to_vec()];
        self.roundtrip(&ping, 0, false).await?;
        let mut extra = Vec::new();
        let mut discarded = false;
        for _ in 0..1000 {
            let frame = self.wire.read_frame().await?;
            if frame.windows(token.len()).any(|w| w == token) {
                return Ok(extra);
            }
            if frame == b"+QUEUED\r\n" && !discarded {
                discarded = true;
                let reply = self.roundtrip(&[b"DISCARD".to_vec()], 1, false).await?;
                extra.extend_from_slice(b"<PING queued: still in MULTI; sent DISCARD: ");
                extra.extend_from_slice(&reply);
                extra.push(b'>');
                self.roundtrip(&ping, 0, false).await?;
                continue;
            }
            extra.extend_from_slice(&frame);
        }
        Err(format!("no reply to PING {} among 1000 frames", escape(token)))
    }
}

/// For `~` lines: every top-level aggregate frame in `raw` with its elements (pairs, for a map)
/// sorted by their encoding. Elements keep their exact bytes; they are never re-encoded.
fn sort_aggregates(raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(raw.len());
    let mut pos = 0;
    while pos < raw.len() {
        let Ok(Some((_, used))) = decode(&raw[pos..]) else {
            out.extend_from_slice(&raw[pos..]);
            break;
        };
        out.extend(sort_one(&raw[pos..pos + used]));
        pos += used;
    }
    out
}

fn sort_one(frame: &[u8]) -> Vec<u8> {
    let tag = frame[0];
    let header_end = match frame.windows(2).position(|w| w == b"\r\n") {
        Some(cr) if matches!(tag, b'*' | b'~' | b'>' | b'%') => cr + 2,
        _ => return frame.to_vec(),
    };
    let Ok(count) = std::str::from_utf8(&frame[1..header_end - 2]).unwrap_or("").parse::<usize>()
    else {
        return frame.to_vec();
    };
    let per_item = if tag == b'%' { 2 } else { 1 };
    let mut items = Vec::with_capacity(count);
    let mut pos = header_end;
    for _ in 0..count {
        let start = pos;
        for _ in 0..per_item {
            match decode(&frame[pos..]) {
                Ok(Some((_, used))) => pos += used,
                _ => return frame.to_vec(),
            }
        }
        items.push(&frame[start..pos]);
    }
    items.sort();
    let mut out = frame[..header_end].to_vec();
    items.iter().for_each(|i| out.extend_from_slice(i));
    out
}
