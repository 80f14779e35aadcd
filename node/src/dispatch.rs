//! Running one command, in the order Redis's `processCommand` checks things:
//! lookup and arity → authentication → transaction queueing → pub/sub context → execution.
//!
//! After a handler runs, one rule applies to every command: if it is flagged `write` and the
//! dirty counter moved, its keys are touched (WATCH), blocked clients waiting on them are
//! served, and it is propagated — as sent, or in the form the handler recorded with
//! `propagate_as`. Lazy-expiry DELs are propagated before it.

use bytes::Bytes;
use common::resp::Frame;
use tokio::sync::oneshot;

use crate::blocking::Waiter;
use crate::client::{ClientKind, ClientState};
use crate::cmd::{self, flags, CommandSpec};
use crate::command_stats::Counted;
use crate::db::Keyspace;
use crate::error::CommandError;
use crate::exec::{Ctx, Effect, Exec, Propagated};
use crate::server::Shared;

/// A client that blocked: the reply arrives on `reply`, or `on_timeout` is sent after `timeout`.
pub struct Blocked {
    /// The waiter's ticket in the blocking registry.
    pub ticket: u64,
    /// Where the reply arrives.
    pub reply: oneshot::Receiver<Frame>,
    /// How long to wait (`None`: forever).
    pub timeout: Option<std::time::Duration>,
    /// The reply on timeout.
    pub on_timeout: Frame,
}

/// What running a request produced.
pub struct Outcome {
    /// The reply (absent while blocked).
    pub reply: Option<Frame>,
    /// What the connection must do next.
    pub effect: Option<Effect>,
    /// Set when the client blocked.
    pub blocked: Option<Blocked>,
    /// The resolved command, for statistics (`None` when lookup failed).
    pub resolved: Option<Resolved>,
    /// How it counts in INFO commandstats.
    pub counted: Counted,
}

impl Outcome {
    fn reply(frame: Frame, resolved: Option<Resolved>) -> Outcome {
        Outcome {
            reply: Some(frame),
            effect: None,
            blocked: None,
            resolved,
            counted: Counted::Call,
        }
    }

    /// A command refused before it ran.
    fn rejected(frame: Frame, resolved: Option<Resolved>) -> Outcome {
        Outcome { counted: Counted::Rejected, ..Outcome::reply(frame, resolved) }
    }
}

/// Commands that run even inside MULTI instead of being queued.
fn is_transaction_control(name: &str) -> bool {
    matches!(name, "exec" | "discard" | "multi" | "watch" | "quit" | "reset")
}

/// Commands allowed in RESP2 while subscribed.
fn allowed_in_pubsub(name: &str) -> bool {
    matches!(
        name,
        "subscribe"
            | "psubscribe"
            | "unsubscribe"
            | "punsubscribe"
            | "ssubscribe"
            | "sunsubscribe"
            | "ping"
            | "quit"
            | "reset"
    )
}

/// An argument as Redis's `%s` prints it inside an error: the bytes as sent, up to the first
/// NUL (Redis formats them as C strings).
pub fn c_str(arg: &[u8]) -> &[u8] {
    arg.iter().position(|&b| b == 0).map_or(arg, |nul| &arg[..nul])
}

/// `ERR unknown command 'x', with args beginning with: 'a' 'b' ` (Redis caps the argument list
/// at 128 bytes and prints the bytes as sent).
pub fn unknown_command(argv: &[Bytes]) -> CommandError {
    let mut args: Vec<u8> = Vec::new();
    for arg in &argv[1..] {
        if args.len() >= 128 {
            break;
        }
        let room = 128 - args.len();
        let arg = c_str(arg);
        args.push(b'\'');
        args.extend_from_slice(&arg[..arg.len().min(room)]);
        args.extend_from_slice(b"' ");
    }
    let name = c_str(&argv[0]);
    let name = &name[..name.len().min(128)];
    let mut text = b"ERR unknown command '".to_vec();
    text.extend_from_slice(name);
    text.extend_from_slice(b"', with args beginning with: ");
    text.extend_from_slice(&args);
    CommandError::Bytes(Bytes::from(text))
}

/// A resolved command: its row, and the container row for a subcommand.
#[derive(Clone, Copy)]
pub struct Resolved {
    /// The row whose handler runs.
    pub spec: &'static CommandSpec,
    /// For a subcommand, the container (CLIENT for CLIENT LIST).
    pub parent: Option<&'static CommandSpec>,
}

impl Resolved {
    /// The top-level command name (`client` for CLIENT LIST).
    pub fn name(&self) -> &'static str {
        self.parent.unwrap_or(self.spec).name
    }

    /// `name` or `name|subcommand`, as Redis prints it in errors and CLIENT LIST.
    pub fn fullname(&self) -> String {
        match self.parent {
            Some(p) => format!("{}|{}", p.name, self.spec.name),
            None => self.spec.name.to_string(),
        }
    }
}

/// The command (and subcommand) a request names, whatever its arity: a container given alone
/// (`CLIENT`) resolves to itself. Errors for an unknown command or subcommand.
pub(crate) fn find(argv: &[Bytes]) -> Result<Resolved, CommandError> {
    let spec = cmd::lookup(&argv[0]).ok_or_else(|| unknown_command(argv))?;
    let Some(sub) = argv.get(1).filter(|_| !spec.subcommands.is_empty()) else {
        return Ok(Resolved { spec, parent: None });
    };
    let sub = cmd::lookup_sub(spec, sub).ok_or_else(|| {
        let mut text = b"ERR unknown subcommand '".to_vec();
        let sub = c_str(sub);
        text.extend_from_slice(&sub[..sub.len().min(128)]);
        text.extend_from_slice(
            format!("'. Try {} HELP.", spec.name.to_ascii_uppercase()).as_bytes(),
        );
        CommandError::Bytes(Bytes::from(text))
    })?;
    Ok(Resolved { spec: sub, parent: Some(spec) })
}

/// Checks a resolved command's arity (Redis's words name `container|sub` for a subcommand).
pub(crate) fn check_arity(resolved: Resolved, argc: usize) -> Result<(), CommandError> {
    if resolved.spec.arity_ok(argc) {
        Ok(())
    } else {
        Err(CommandError::WrongArity(resolved.fullname()))
    }
}

/// Resolves a command (and subcommand) and checks its arity.
pub fn resolve(argv: &[Bytes]) -> Result<Resolved, CommandError> {
    let resolved = find(argv)?;
    check_arity(resolved, argv.len())?;
    Ok(resolved)
}

/// Runs one request from `client`.
pub fn call(shared: &Shared, client: &mut ClientState, argv: &[Bytes], now_ms: i64) -> Outcome {
    match admit(shared, client, argv) {
        Admitted::Done(outcome) => *outcome,
        Admitted::Run(resolved) => {
            let mut ks = shared.keyspace.lock();
            execute(shared, &mut ks, client, resolved, argv, now_ms)
        }
    }
}

/// [`call`] for a caller that already holds the keyspace lock (the replication applier runs
/// a whole chunk of its master's stream under one lock hold).
pub fn call_locked(
    shared: &Shared,
    ks: &mut Keyspace,
    client: &mut ClientState,
    argv: &[Bytes],
    now_ms: i64,
) -> Outcome {
    match admit(shared, client, argv) {
        Admitted::Done(outcome) => *outcome,
        Admitted::Run(resolved) => execute(shared, ks, client, resolved, argv, now_ms),
    }
}

/// What the checks before execution decided.
enum Admitted {
    /// Answered without running (an error, QUEUED …).
    Done(Box<Outcome>),
    /// Run it.
    Run(Resolved),
}

/// The checks before execution, which need no keyspace: lookup and arity, authentication,
/// state refusals, transaction queueing, the pub/sub context.
fn admit(shared: &Shared, client: &mut ClientState, argv: &[Bytes]) -> Admitted {
    use Admitted::Done;
    let resolved = match find(argv) {
        Ok(found) => found,
        Err(e) => return Done(Box::new(Outcome::rejected(reject(shared, client, argv, e), None))),
    };
    if let Err(e) = check_arity(resolved, argv.len()) {
        // A known command with the wrong arity counts as rejected, as in Redis.
        return Done(Box::new(Outcome::rejected(reject(shared, client, argv, e), Some(resolved))));
    }
    let spec = resolved.spec;
    let name = resolved.name();
    let found = Some(resolved);
    if crate::acl::refresh(&shared.acl, &mut client.user) == crate::acl::Refreshed::Deleted {
        client.authenticated = false;
        let mut snapshot = client.snapshot.lock();
        snapshot.user = (bytes::Bytes::from_static(b"default"), crate::acl::DEFAULT_INCARNATION);
        snapshot.authenticated = false;
    }
    if !client.authenticated
        && !spec.has(flags::NO_AUTH)
        && !is_auth_exempt(name)
        && shared.acl.acl.read().auth_required()
    {
        if client.multi.is_some() {
            client.multi_failed = true;
        }
        return Done(Box::new(Outcome::rejected(
            reject(shared, client, argv, CommandError::raw("NOAUTH Authentication required.")),
            found,
        )));
    }
    // A command refused inside MULTI for its NO_MULTI flag says so first, as in Redis.
    let no_multi = client.multi.is_some() && spec.has(flags::NO_MULTI);
    if let Some(user) = client.user.user.as_deref().filter(|u| !u.unrestricted && !no_multi) {
        if let Err(denied) = crate::acl::check::check(user, resolved, argv) {
            let context = if client.multi.is_some() {
                crate::acl::log::Context::Multi
            } else {
                crate::acl::log::Context::Toplevel
            };
            let fullname = resolved.fullname();
            crate::acl::log_denied(shared, client, resolved, argv, denied, context, &fullname);
            let text = format!("NOPERM {}", denied.message(&fullname));
            let error = CommandError::raw(text);
            return Done(Box::new(Outcome::rejected(reject(shared, client, argv, error), found)));
        }
    }
    // A script that declared its flags is refused as the command they make it.
    let checked = checked_flags(shared, spec, argv);
    // Our master's stream is never refused: a replica evicts, if at all, from the cron.
    if client.kind != ClientKind::Master
        && crate::evict::before_command(shared)
        && refused_on_oom(resolved, checked, client)
    {
        let oom = CommandError::raw("OOM command not allowed when used memory > 'maxmemory'.");
        return Done(Box::new(Outcome::rejected(reject(shared, client, argv, oom), found)));
    }
    let gates = shared.gates.load(std::sync::atomic::Ordering::Relaxed);
    if gates != 0 && client.kind != ClientKind::Master {
        if let Some(refusal) = role_refusal(gates, spec, checked, client) {
            return Done(Box::new(Outcome::rejected(reject(shared, client, argv, refusal), found)));
        }
    }
    // A protected command is refused before it could be queued, as in Redis.
    if name == "debug" {
        if let Some(refusal) = cmd::debug::refusal(shared, client) {
            return Done(Box::new(Outcome::rejected(reject(shared, client, argv, refusal), found)));
        }
    }
    if let Some(queue) = client.multi.as_mut().filter(|_| !is_transaction_control(name)) {
        if spec.has(flags::NO_MULTI) {
            client.multi_failed = true;
            return Done(Box::new(Outcome::rejected(
                CommandError::err("Command not allowed inside a transaction").into_frame(),
                found,
            )));
        }
        queue.push(argv.to_vec());
        client.snapshot.lock().multi += 1;
        // Counted when EXEC runs it.
        let queued = Outcome::reply(Frame::simple("QUEUED"), found);
        return Done(Box::new(Outcome { counted: Counted::Not, ..queued }));
    }
    if client.in_pubsub()
        && client.resp == common::resp::Protocol::Resp2
        && !allowed_in_pubsub(name)
    {
        return Done(Box::new(Outcome::rejected(
            CommandError::err(format!(
                "Can't execute '{}': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context",
                resolved.fullname()
            ))
            .into_frame(),
            found,
        )));
    }
    Admitted::Run(resolved)
}

/// Runs an admitted command with the keyspace locked, then the write rules and propagation.
fn execute(
    shared: &Shared,
    ks: &mut Keyspace,
    client: &mut ClientState,
    resolved: Resolved,
    argv: &[Bytes],
    now_ms: i64,
) -> Outcome {
    let spec = resolved.spec;
    let found = Some(resolved);
    if ks.stopped {
        // Closed without a reply, as if the process had already exited.
        let mut outcome = Outcome::reply(Frame::Raw(Bytes::new()), found);
        outcome.effect = Some(Effect::Shutdown);
        return outcome;
    }

    let db = client.db;
    let replica = shared.is_replica();
    client.error_counted = false;
    ks.tracking.current = Some(client.id);
    let mut exec = Exec::new(ks, db, now_ms, replica);
    exec.propagating = shared.is_propagating();
    exec.from_master = client.kind == ClientKind::Master;
    exec.frozen = shared.dataset_frozen();
    let mut ctx = Ctx { exec, server: shared, client, in_exec: false, effect: None };
    let mut out = Vec::new();
    let reply = run_locked(&mut ctx, spec, argv, &mut out);
    remember_reads(&mut ctx, spec, argv);
    let effect = ctx.effect.take();
    let client_id = ctx.client.id;
    drop(ctx);
    let mut outcome = Outcome::reply(reply, found);
    match effect {
        Some(Effect::Block { keys, timeout, op, on_timeout }) => {
            let (tx, rx) = oneshot::channel();
            let ticket = ks.blocking.block(Waiter {
                client: client_id,
                db,
                keys,
                op: Some(op),
                reply: tx,
                on_timeout: on_timeout.clone(),
            });
            outcome.reply = None;
            outcome.blocked = Some(Blocked { ticket, reply: rx, timeout, on_timeout });
        }
        other => outcome.effect = other,
    }
    if !ks.blocking.ready.is_empty() {
        // Served after the command, on the clock as it is now (as Redis's
        // handleClientsBlockedOnKeys): a key that expired meanwhile (a transaction that slept)
        // leaves its waiters blocked.
        serve_blocked(ks, crate::server::unix_ms(), shared.is_propagating(), replica, &mut out);
    }
    crate::notify::flush(shared, ks);
    if !ks.tracking.is_idle() {
        // CLIENT CACHING applies to the one command after it (a transaction counts as one).
        if resolved.parent.unwrap_or(spec).name != "client" {
            ks.tracking.command_done(client.id);
        }
        crate::tracking::deliver(shared, ks, Some(client));
    }
    ks.tracking.current = None;
    let done = shared.propagate(ks, out);
    if let Some(offset) = done.repl {
        client.woff = offset;
    }
    if let Some(offset) = done.aof {
        client.aof_woff = offset;
    }
    if client.kind == ClientKind::Master && client.multi.is_none() {
        // On a replica, the master's bytes join our own stream in the same critical section
        // as the command they carry (see `crate::repl::apply`).
        shared.forward_master_bytes(&mut client.master_raw);
    }
    outcome
}

/// Completes a SHUTDOWN that waited for replicas: saves as asked under the keyspace lock.
/// `Err` carries the error reply when the shutdown is refused.
pub fn finish_shutdown(
    shared: &Shared,
    client: &mut ClientState,
    save: bool,
    nosave: bool,
    force: bool,
) -> Result<(), Frame> {
    let mut ks = shared.keyspace.lock();
    let db = client.db;
    let exec = Exec::new(&mut ks, db, crate::server::unix_ms(), shared.is_replica());
    let mut ctx = Ctx { exec, server: shared, client, in_exec: false, effect: None };
    match crate::cmd::server::finish_shutdown(&mut ctx, save, nosave, force) {
        Ok(_) => Ok(()),
        Err(e) => Err(e.into_frame()),
    }
}

/// Where a command's writes went: the stream offset and the AOF offset after them.
#[derive(Debug, Default, Clone, Copy)]
pub struct Propagation {
    /// The replication offset, if the writes went on the stream.
    pub repl: Option<i64>,
    /// The AOF offset, if the AOF is on.
    pub aof: Option<u64>,
}

/// A write refused after a failed background save (`stop-writes-on-bgsave-error`).
pub const MISCONF: &str = "MISCONF Redis is configured to save RDB snapshots, but it's currently unable to persist to disk. Commands that may modify the data set are disabled, because this instance is configured to report errors during writes if RDB snapshotting fails (stop-writes-on-bgsave-error option). Please check the Redis logs for details about the RDB error.";

/// A write refused for want of good replicas (`min-replicas-to-write`).
pub const NOREPLICAS: &str = "NOREPLICAS Not enough good replicas to write.";

/// Refusals that depend on the server's state, in Redis's order: `-MISCONF`, `-NOREPLICAS`,
/// `-READONLY`, `-MASTERDOWN`, then `-LOADING`.
fn role_refusal(
    gates: u8,
    spec: &CommandSpec,
    checked: u32,
    client: &ClientState,
) -> Option<CommandError> {
    use crate::server::gate;
    let write = checked & flags::WRITE != 0
        || (spec.name == "exec"
            && client.multi.as_ref().is_some_and(|q| queued_any(q, |s| s.has(flags::WRITE))));
    if write && gates & gate::MISCONF != 0 {
        return Some(CommandError::raw(MISCONF));
    }
    if write && gates & gate::NO_REPLICAS != 0 {
        return Some(CommandError::raw(NOREPLICAS));
    }
    if write && gates & gate::READ_ONLY != 0 {
        return Some(CommandError::raw("READONLY You can't write against a read only replica."));
    }
    // EXEC runs on a stale replica only if every queued command may (Redis's cmd_inv_flags).
    let stale_ok = checked & flags::STALE != 0
        && !(spec.name == "exec"
            && client.multi.as_ref().is_some_and(|q| queued_any(q, |s| !s.has(flags::STALE))));
    if gates & gate::MASTER_DOWN != 0 && !stale_ok {
        return Some(CommandError::raw(
            "MASTERDOWN Link with MASTER is down and replica-serve-stale-data is set to 'no'.",
        ));
    }
    if gates & gate::LOADING != 0 && !spec.has(flags::LOADING) {
        return Some(CommandError::raw("LOADING Redis is loading the dataset in memory"));
    }
    None
}

/// Whether a command is refused while memory is over `maxmemory` and nothing can be evicted:
/// one that may grow memory (EXEC when it holds one), and anything queued in MULTI (the queue
/// itself grows) except what ends the transaction, as in Redis.
fn refused_on_oom(resolved: Resolved, checked: u32, client: &ClientState) -> bool {
    let queued = client.multi.as_ref();
    let top_level = if resolved.parent.is_none() { resolved.spec.name } else { "" };
    match top_level {
        "exec" => queued.is_some_and(|q| {
            q.iter().any(|argv| resolve(argv).is_ok_and(|r| r.spec.has(flags::DENYOOM)))
        }),
        "discard" | "quit" | "reset" => false,
        _ => checked & flags::DENYOOM != 0 || queued.is_some(),
    }
}

/// The flags a command is refused by. A script that declared flags (a shebang script, every
/// function) counts as a write unless it declared `no-writes`, may not grow memory unless it
/// declared `allow-oom` or `no-writes`, and runs on a stale replica only with `allow-stale`,
/// as Redis's `scriptFlagsToCmdFlags` decides before any other check: a replica then answers
/// FCALL of a writing function with the plain READONLY error, as Redis does. Only the script
/// commands (the ones flagged `skip_monitor`) pay for the lookup.
#[inline]
fn checked_flags(shared: &Shared, spec: &CommandSpec, argv: &[Bytes]) -> u32 {
    if !spec.has(flags::SKIP_MONITOR) {
        return spec.flags;
    }
    script_checked_flags(shared, spec, argv)
}

/// [`checked_flags`] of a script command.
#[inline(never)]
fn script_checked_flags(shared: &Shared, spec: &CommandSpec, argv: &[Bytes]) -> u32 {
    match script_flags(shared, spec, argv) {
        Some(declared) if !declared.compat => {
            let mut checked = spec.flags & !(flags::STALE | flags::DENYOOM | flags::WRITE);
            if !(declared.allow_oom || declared.no_writes) {
                checked |= flags::DENYOOM;
            }
            if !declared.no_writes {
                checked |= flags::WRITE;
            }
            if declared.allow_stale {
                checked |= flags::STALE;
            }
            checked
        }
        _ => spec.flags,
    }
}

/// The flags of the script an EVAL-family or FCALL command names (`None`: not a script
/// command, an unknown script or function, or a malformed shebang).
fn script_flags(
    shared: &Shared,
    spec: &CommandSpec,
    argv: &[Bytes],
) -> Option<crate::script::shebang::ScriptFlags> {
    if !spec.has(flags::SKIP_MONITOR) || argv.len() < 2 {
        return None;
    }
    match spec.name {
        "eval" | "eval_ro" => shared.scripts.lock().flags_of(crate::script::Source::Body(&argv[1])),
        "evalsha" | "evalsha_ro" => {
            shared.scripts.lock().flags_of(crate::script::Source::Sha(&argv[1]))
        }
        "fcall" | "fcall_ro" => shared.functions.lock().find(&argv[1]).map(|(_, f, _)| f.flags),
        _ => None,
    }
}

/// Whether a command may change the dataset or the replication stream, as CLIENT PAUSE WRITE
/// judges it (Redis's `is_may_replicate_command`): write and may-replicate commands, EXEC of a
/// transaction that holds one, and EVAL/EVALSHA/FCALL of a script that may write (see
/// [`crate::script::shebang::ScriptFlags::may_write`]).
pub fn may_replicate(shared: &Shared, client: &ClientState, argv: &[Bytes]) -> bool {
    let Ok(r) = resolve(argv) else { return false };
    match r.spec.name {
        // The queue never holds an EXEC (EXEC inside MULTI runs), so this goes one level deep.
        "exec" => {
            let queue = client.multi.as_deref().unwrap_or_default();
            queue.iter().any(|queued| may_replicate(shared, client, queued))
        }
        "eval" | "evalsha" | "fcall" => {
            // An unknown script or function, or a bad shebang, fails when it runs; until then
            // it may write.
            script_flags(shared, r.spec, argv).is_none_or(|f| f.may_write())
        }
        _ => r.spec.has(flags::WRITE) || r.spec.has(flags::MAY_REPLICATE),
    }
}

/// True if a queued transaction holds a command that passes `test`.
fn queued_any(queue: &[Vec<Bytes>], test: impl Fn(&CommandSpec) -> bool) -> bool {
    queue.iter().any(|argv| resolve(argv).is_ok_and(|r| test(r.spec)))
}

/// A command refused before running: inside MULTI the transaction is flagged to fail, and a
/// refused EXEC aborts the transaction (and its WATCHes) with EXECABORT naming the reason, as
/// Redis does.
fn reject(shared: &Shared, client: &mut ClientState, argv: &[Bytes], error: CommandError) -> Frame {
    if argv[0].eq_ignore_ascii_case(b"exec") {
        // Redis discards the transaction, WATCHes included, even outside MULTI.
        client.leave_multi();
        if !client.watched.is_empty() {
            client.unwatch_all(&mut shared.keyspace.lock().watches);
        }
        let text = error.to_string();
        let reason = text.strip_prefix("ERR ").unwrap_or(&text);
        return CommandError::raw(format!("EXECABORT Transaction discarded because of: {reason}"))
            .into_frame();
    }
    if client.multi.is_some() {
        client.multi_failed = true;
    }
    error.into_frame()
}

/// AUTH, HELLO and QUIT work before authentication (HELLO carries its own AUTH).
fn is_auth_exempt(name: &str) -> bool {
    matches!(name, "auth" | "hello" | "quit")
}

/// CLIENT TRACKING: after a read-only command of the client (on its own or in EXEC), the keys
/// it named may be cached by the client (a read that failed counts too, as in Redis). The
/// read-only script commands are left out: their scripts' reads count instead (see
/// `script::Runner::command`).
#[inline]
pub fn remember_reads(ctx: &mut Ctx<'_>, spec: &CommandSpec, argv: &[Bytes]) {
    if ctx.exec.ks.tracking.is_idle() {
        return;
    }
    let read_only_script = matches!(spec.name, "eval_ro" | "evalsha_ro" | "fcall_ro");
    if !spec.has(flags::READONLY) || read_only_script {
        return;
    }
    let id = ctx.client.id;
    if ctx.exec.ks.tracking.remembers(id) {
        let keys = crate::cmd::command_keys::positions(argv);
        ctx.exec.ks.tracking.remember(id, keys.into_iter().map(|i| &argv[i]));
    }
}

/// Runs a resolved command with the keyspace locked, then applies the write rules. Propagated
/// commands are appended to `out`. Used directly by EXEC for each queued command.
pub fn run_locked(
    ctx: &mut Ctx<'_>,
    spec: &'static CommandSpec,
    argv: &[Bytes],
    out: &mut Vec<Propagated>,
) -> Frame {
    let dirty_before = ctx.ks.dirty;
    ctx.exec.expired.clear();
    ctx.exec.rewrites = None;
    ctx.exec.modified = None;
    let db_before = ctx.db;
    let mut reply = match (spec.handler)(ctx, argv) {
        Ok(frame) => frame,
        Err(e) => e.into_frame(),
    };
    if ctx.in_exec {
        // Inside MULTI a blocking command behaves as its non-blocking form would on timeout.
        if let Some(Effect::Block { on_timeout, .. }) = ctx.effect.take() {
            reply = on_timeout;
        }
    }
    out.append(&mut ctx.exec.expired);
    if !spec.has(flags::WRITE) {
        // A non-write command propagates only what it asks for explicitly (EXEC's unit).
        out.extend(ctx.exec.rewrites.take().unwrap_or_default());
    } else if ctx.ks.dirty != dirty_before {
        match ctx.exec.modified.take() {
            Some(keys) => {
                for key in keys {
                    ctx.exec.ks.signal_modified_key(db_before, &key);
                    ctx.exec.ks.blocking.signal(db_before, &key);
                }
            }
            None => {
                for i in spec.key_positions(argv.len()) {
                    ctx.exec.ks.signal_modified_key(db_before, &argv[i]);
                    ctx.exec.ks.blocking.signal(db_before, &argv[i]);
                }
            }
        }
        match ctx.exec.rewrites.take() {
            Some(rewrites) => out.extend(rewrites),
            None if ctx.exec.propagating => {
                out.push(Propagated { db: db_before, argv: argv.to_vec() })
            }
            None => {}
        }
    }
    reply
}

/// Serves blocked clients whose keys became ready, oldest first, until nothing is ready.
pub fn serve_blocked(
    ks: &mut Keyspace,
    now_ms: i64,
    propagating: bool,
    replica: bool,
    out: &mut Vec<Propagated>,
) {
    while let Some((db, key)) = ks.blocking.ready.pop_front() {
        for ticket in ks.blocking.queue(db, &key) {
            let Some(op) = ks.blocking.take_op(ticket) else { continue };
            let dirty_before = ks.dirty;
            let mut exec = Exec::new(ks, db, now_ms, replica);
            exec.propagating = propagating;
            let served = op.try_serve(&mut exec, &key);
            out.append(&mut exec.expired);
            let rewrites = exec.rewrites.take();
            match served {
                Some(frame) => {
                    if ks.dirty != dirty_before {
                        ks.signal_modified_key(db, &key);
                    }
                    // What a served op asks to propagate goes out even when it counted no
                    // change (a woken XREADGROUP's XCLAIMs: Redis counts none for them).
                    out.extend(rewrites.unwrap_or_default());
                    if let Some(waiter) = ks.blocking.unblock(ticket) {
                        // The client may have just gone; like a reply lost in a closing socket.
                        let _ = waiter.reply.send(frame);
                    }
                }
                None => ks.blocking.restore_op(ticket, op),
            }
        }
    }
}

impl Shared {
    /// True when something consumes propagated writes: a master with a replication backlog
    /// (the AOF will too). Like Redis, nothing is built for propagation otherwise.
    pub fn is_propagating(&self) -> bool {
        self.propagating.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Where every applied write goes after the keyspace, in apply order: the replication
    /// stream (and, later, the AOF). Called with the keyspace locked. Returns the stream
    /// offset after the writes, when they went on the stream.
    pub fn propagate(&self, ks: &mut Keyspace, commands: Vec<Propagated>) -> Propagation {
        // Once stopped (the server exits) nothing more goes out: a SHUTDOWN NOSAVE that
        // stopped a busy script inside EXEC leaves none of the transaction behind.
        if commands.is_empty() || ks.stopped {
            return Propagation::default();
        }
        self.stats
            .propagated
            .fetch_add(commands.len() as u64, std::sync::atomic::Ordering::Relaxed);
        let mut done = Propagation::default();
        if self.aof_on.load(std::sync::atomic::Ordering::Relaxed) {
            if let Some(aof) = self.aof.lock().as_mut() {
                done.aof = Some(aof.feed(&commands));
            }
            // Under `always` a reply waits for the writer; otherwise it batches on its own.
            if self.aof_always.load(std::sync::atomic::Ordering::Relaxed) {
                self.aof_wake.notify_one();
            }
        }
        done.repl = self.feed_replicas(&commands);
        done
    }

    /// The replication part of [`Shared::propagate`].
    fn feed_replicas(&self, commands: &[Propagated]) -> Option<i64> {
        let mut r = self.repl.lock();
        if r.is_replica() || r.backlog.is_none() {
            // A replica's own writes are local; its stream is its master's.
            return None;
        }
        r.feed(commands);
        let offset = r.offset();
        let wake = !r.replicas.is_empty();
        drop(r);
        if wake {
            self.wake_feeds();
        }
        Some(offset)
    }

    /// Appends bytes applied from our master's stream to our own stream, and empties `raw`.
    /// Called with the keyspace locked, right after the command they carry ran.
    pub fn forward_master_bytes(&self, raw: &mut Vec<u8>) {
        if raw.is_empty() {
            return;
        }
        let mut r = self.repl.lock();
        r.feed_raw(raw);
        raw.clear();
        let wake = !r.replicas.is_empty();
        let offset = r.offset();
        drop(r);
        if self.aof_on.load(std::sync::atomic::Ordering::Relaxed) {
            // What the AOF holds once its buffer is fsynced (FACK for WAITAOF).
            if let Some(aof) = self.aof.lock().as_mut() {
                aof.repl_mark = offset;
            }
        }
        if wake {
            self.wake_feeds();
        }
    }
}
