//! `warden-node [config-file] [--directive value …]`, as `redis-server` is started.

use std::process::ExitCode;

use common::config::{parse_command_line, read_file};
use node::cmd::server::{final_save, StopFlags};
use node::config::Config;
use node::server::{self, Shared};
use tracing::{error, info};

#[global_allocator]
static ALLOCATOR: node::alloc::Counting = node::alloc::Counting;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if matches!(args.first().map(String::as_str), Some("-v" | "--version")) {
        println!("warden-node v={} (Redis 7.0.15 compatible)", env!("CARGO_PKG_VERSION"));
        return ExitCode::SUCCESS;
    }
    if matches!(args.first().map(String::as_str), Some("-h" | "--help")) {
        println!("Usage: warden-node [/path/to/warden.conf] [--directive value ...]\n\nExamples:\n  warden-node --port 7777\n  warden-node /etc/warden/node.conf --loglevel verbose");
        return ExitCode::SUCCESS;
    }
    let config = match load(&args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("*** FATAL CONFIG FILE ERROR ***\n{e}");
            return ExitCode::FAILURE;
        }
    };
    if config.get("daemonize") == Some("yes") {
        if let Err(e) = daemonize() {
            eprintln!("can't daemonize: {e}");
            return ExitCode::FAILURE;
        }
    }
    let logfile = Some(config.settings.logfile.clone()).filter(|f| !f.is_empty());
    if let Err(e) = common::telemetry::init(
        &config.settings.loglevel,
        logfile.as_deref().map(std::path::Path::new),
    ) {
        eprintln!("can't open the log file: {e}");
        return ExitCode::FAILURE;
    }
    if config.get("disable-thp") == Some("yes") {
        // As Redis does for itself: transparent huge pages add latency spikes (compaction)
        // and inflate the memory of a heap of small allocations.
        // SAFETY: prctl with PR_SET_THP_DISABLE takes plain integers and touches no memory.
        let status = unsafe { libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0) };
        if status != 0 {
            tracing::warn!(error = %std::io::Error::last_os_error(), "could not disable transparent huge pages");
        }
    }
    // `io-threads` sizes the pool of threads that run connections (Redis's default, 1, means
    // one thread does all client I/O and command execution, as in Redis).
    // With one thread a current-thread runtime avoids the work-stealing scheduler's overhead.
    let threads = config.settings.io_threads.max(1);
    let mut builder = if threads == 1 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut b = tokio::runtime::Builder::new_multi_thread();
        b.worker_threads(threads);
        b
    };
    let runtime = builder.enable_all().build().expect("building the tokio runtime");
    match runtime.block_on(serve(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            error!("{e:#}");
            ExitCode::FAILURE
        }
    }
}

/// `daemonize yes`, as Redis does it: fork, the parent exits at once, the child starts a new
/// session and points its standard streams at /dev/null (so with no `logfile` the log is
/// discarded, as Redis's is). Runs before the runtime or any other thread exists, which is
/// what makes fork safe here.
fn daemonize() -> std::io::Result<()> {
    // SAFETY: no other thread exists yet (the tokio runtime and the log writer are created
    // later), so the child inherits a consistent process.
    match unsafe { libc::fork() } {
        -1 => return Err(std::io::Error::last_os_error()),
        0 => {}
        _ => std::process::exit(0),
    }
    // SAFETY: plain system calls on file descriptors this process owns.
    unsafe {
        libc::setsid();
        let null = libc::open(c"/dev/null".as_ptr(), libc::O_RDWR);
        if null >= 0 {
            libc::dup2(null, libc::STDIN_FILENO);
            libc::dup2(null, libc::STDOUT_FILENO);
            libc::dup2(null, libc::STDERR_FILENO);
            if null > libc::STDERR_FILENO {
                libc::close(null);
            }
        }
    }
    Ok(())
}

/// Loads the dump file before serving. A file that cannot be loaded stops startup (and is left
/// untouched) rather than starting empty and later overwriting it.
fn load_dump(
    shared: &Shared,
    dir: &std::path::Path,
    dbfilename: &str,
) -> anyhow::Result<Option<node::persist::LoadSummary>> {
    let started = std::time::Instant::now();
    // Loaded off the keyspace lock, so INFO and the like answer meanwhile; swapped in at the end.
    let mut fresh = node::db::Keyspace::new(shared.config.read().settings.databases);
    let loaded = node::persist::dumpfile::load_at_startup(
        &mut fresh,
        dir,
        dbfilename,
        node::server::unix_ms(),
        Some(&shared.loading_loaded),
    )?;
    if let Some(summary) = &loaded {
        let libraries = node::script::library::Libraries::from_loaded(&summary.functions)
            .map_err(|e| anyhow::anyhow!("{}: {e}", dir.join(dbfilename).display()))?;
        *shared.functions.lock() = libraries;
    }
    std::mem::swap(&mut shared.keyspace.lock().dbs, &mut fresh.dbs);
    if let Some(summary) = &loaded {
        let mut stats = shared.persist.lock();
        stats.keys_loaded = summary.keys_loaded;
        stats.keys_expired = summary.keys_expired;
        info!(
            keys = summary.keys_loaded,
            expired = summary.keys_expired,
            seconds = format!("{:.3}", started.elapsed().as_secs_f64()),
            "DB loaded from disk"
        );
    }
    Ok(loaded)
}

/// What `shutdown-on-sigterm` / `shutdown-on-sigint` ask of a signal: SHUTDOWN's flags
/// (`default` is SHUTDOWN without arguments).
struct SignalShutdown {
    stop: StopFlags,
    now: bool,
}

impl SignalShutdown {
    fn configured(shared: &Shared, which: common::shutdown::Signal) -> SignalShutdown {
        let name = match which {
            common::shutdown::Signal::Term => "shutdown-on-sigterm",
            common::shutdown::Signal::Int => "shutdown-on-sigint",
        };
        let config = shared.config.read();
        let words: Vec<&str> = config.get(name).unwrap_or("default").split_whitespace().collect();
        let has = |flag: &str| words.contains(&flag);
        SignalShutdown {
            stop: StopFlags { save: has("save"), nosave: has("nosave"), force: has("force") },
            now: has("now"),
        }
    }
}

/// A signal's last save, exactly as SHUTDOWN's (see `final_save`). False: the save failed
/// without FORCE and the server keeps running.
fn stop_on_signal(shared: &Shared, flags: &SignalShutdown) -> bool {
    let mut ks = shared.keyspace.lock();
    final_save(shared, &mut ks, node::server::unix_ms(), flags.stop)
}

/// Sends a readiness message to systemd's NOTIFY_SOCKET, if there is one (Type=notify units).
fn notify_systemd(message: &str) {
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else { return };
    let socket = match std::os::unix::net::UnixDatagram::unbound() {
        Ok(s) => s,
        Err(e) => return tracing::warn!(cause = %e, "can't notify systemd"),
    };
    if let Err(e) = socket.send_to(message.as_bytes(), &path) {
        tracing::warn!(cause = %e, "can't notify systemd");
    }
}

fn load(args: &[String]) -> Result<Config, common::config::ConfigError> {
    let cmd = parse_command_line(args)?;
    let mut lines = match &cmd.file {
        Some(path) => read_file(path)?,
        None => Vec::new(),
    };
    lines.extend(cmd.overrides);
    Config::from_lines(cmd.file, &lines)
}

async fn serve(config: Config) -> anyhow::Result<()> {
    let dir = config.settings.dir.clone();
    std::env::set_current_dir(&dir)
        .map_err(|e| anyhow::anyhow!("can't chdir to '{}': {e}", dir.display()))?;
    // A daemon always leaves a pid file, at Redis's default path unless one is configured.
    let pidfile =
        config.settings.pidfile.clone().or_else(|| {
            (config.get("daemonize") == Some("yes")).then(|| "/var/run/redis.pid".into())
        });
    let listeners = server::bind(&config).await?;
    if let Some(path) = &pidfile {
        std::fs::write(path, format!("{}\n", std::process::id()))
            .map_err(|e| anyhow::anyhow!("can't write the pid file '{}': {e}", path.display()))?;
    }
    let (trigger, stop) = common::shutdown::channel();
    let dbfilename = config.get("dbfilename").unwrap_or("dump.rdb").to_string();
    let shared = Shared::new(config, trigger.clone());
    node::acl::load_file_at_startup(&shared).map_err(|e| anyhow::anyhow!(e))?;
    for l in &listeners {
        info!(addr = %l.local_addr()?, "listening");
    }
    *shared.listening.write() = listeners.iter().filter_map(|l| l.local_addr().ok()).collect();
    if shared.config.read().get("set-proc-title") == Some("yes") {
        node::proc_title::init(&shared);
    }
    // Clients are served from the start; until the data is loaded they get -LOADING (INFO,
    // PING-less health checks and the like still work), as with Redis.
    let aof = shared.config.read().get("appendonly") == Some("yes");
    let (aof_dir, prefix) = node::aof::paths(&shared);
    if aof {
        // A Redis 6 AOF in `dir` becomes the base of a manifest first, as Redis 7 does.
        node::aof::upgrade::migrate_old_style(&dir, &aof_dir, &prefix)?;
    }
    let total = if aof {
        node::aof::dir_size(&aof_dir)
    } else {
        std::fs::metadata(dir.join(&dbfilename)).map(|m| m.len()).unwrap_or(0)
    };
    shared.set_loading(Some(total));
    let signals = {
        let shared = shared.clone();
        tokio::spawn(async move {
            loop {
                let which = common::shutdown::signal().await;
                let flags = SignalShutdown::configured(&shared, which);
                // Like SHUTDOWN: unless NOW, a master lets its replicas catch up first
                // (shutdown-timeout).
                if let Some(deadline) =
                    node::repl::catch_up::deadline(&shared).filter(|_| !flags.now)
                {
                    node::repl::catch_up::begin(&shared, deadline);
                    if !node::repl::catch_up::wait(&shared, deadline).await {
                        tracing::warn!("replicas did not catch up before shutdown-timeout");
                    }
                }
                if stop_on_signal(&shared, &flags) {
                    trigger.fire();
                    break;
                }
                tracing::warn!(
                    "{} received but errors trying to shut down the server, check the logs for \
                     more information",
                    which.name()
                );
            }
        })
    };
    let server = tokio::spawn(server::run(shared.clone(), listeners, stop));
    let loading = {
        let shared = shared.clone();
        tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
            if aof {
                // With the AOF on, it is the source of truth and dump.rdb is not read.
                let truncate_ok = shared.config.read().get("aof-load-truncated") == Some("yes");
                let started = std::time::Instant::now();
                let loaded = node::aof::load::load(&shared, &aof_dir, &prefix, truncate_ok)?;
                if loaded.manifest.is_some() {
                    info!(
                        seconds = format!("{:.3}", started.elapsed().as_secs_f64()),
                        commands = loaded.commands,
                        "DB loaded from append only file"
                    );
                }
                node::aof::start(&shared, loaded.manifest)
                    .map_err(|e| anyhow::anyhow!("can't open the append only file: {e}"))?;
                Ok(None)
            } else {
                load_dump(&shared, &dir, &dbfilename)
            }
        })
        .await?
    };
    let loaded = match loading {
        Ok(loaded) => loaded,
        Err(e) => {
            // Nothing was served from a half-loaded dataset but -LOADING; stop and report.
            shared.shutdown.fire();
            let _ = server.await;
            return Err(e);
        }
    };
    node::repl::link::start_configured(&shared, loaded.as_ref());
    shared.set_loading(None);
    info!(pid = std::process::id(), run_id = %shared.run_id, "Ready to accept connections tcp");
    let supervised = shared.config.read().settings.supervised.clone();
    if supervised == "systemd" || supervised == "auto" {
        notify_systemd("READY=1\nSTATUS=Ready to accept connections\n");
    }
    let _ = server.await;
    // The final save, if one was due, already ran: in SHUTDOWN or `stop_on_signal`, with the
    // keyspace locked and then marked stopped, so nothing ran after it.
    node::aof::close(&shared);
    signals.abort();
    if let Some(path) = &pidfile {
        let _ = std::fs::remove_file(path);
    }
    // The dataset is not freed on the way out, as Redis does not free it: the kernel takes
    // the pages back at once, where dropping millions of keys one by one would hold up the
    // exit (and a restart waiting on it) for as long as loading them took.
    std::mem::forget(shared);
    Ok(())
}
