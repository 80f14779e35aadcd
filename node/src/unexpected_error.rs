//! Error replies to commands no client sent: the ones our master streams to us, and the ones
//! read back from our own AOF. Those commands already succeeded where they were first run, so
//! an error here means this node's data has diverged from what it should hold. As Redis does,
//! each is logged as `== CRITICAL ==` and counted (INFO `unexpected_error_replies`), and
//! `propagation-error-behavior` decides whether the node stops rather than serve diverged data:
//! `panic` for both sources, `panic-on-replicas` for the stream only (and only on a read-only
//! replica, where no client write can explain the difference), `ignore` never.

use std::sync::atomic::Ordering;

use crate::dispatch::Resolved;
use crate::server::Shared;

/// Where the failed command came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// Our master's replication stream.
    Master,
    /// Our AOF, while loading it.
    AofLoading,
}

/// Logs and counts an error reply `error` (its text, without the `-`) to `command` from
/// `source`; stops the process if the configuration says so.
pub fn report(shared: &Shared, source: Source, error: &[u8], command: Option<Resolved>) {
    let (from, to) = match source {
        Source::Master => ("replica", "master"),
        Source::AofLoading => ("server", "AOF-loading-client"),
    };
    let command = command.map_or_else(|| "<unknown>".to_string(), |r| r.fullname());
    // Redis shows a plain `ERR` error by its message alone, any other with its code.
    let error = &error[..error.len().min(4096)];
    let shown = match error.strip_prefix(b"ERR ") {
        Some(message) => String::from_utf8_lossy(message).into_owned(),
        None => format!("-{}", String::from_utf8_lossy(error)),
    };
    tracing::error!(
        "== CRITICAL == This {from} is sending an error to its {to}: '{shown}' after processing the command '{command}'"
    );
    shared.stats.unexpected_errors.fetch_add(1, Ordering::Relaxed);
    let config = shared.config.read();
    let behaviour = config.get("propagation-error-behavior").unwrap_or("ignore");
    let stop = match source {
        Source::Master => {
            config.settings.replica_read_only && matches!(behaviour, "panic" | "panic-on-replicas")
        }
        Source::AofLoading => behaviour == "panic",
    };
    if stop {
        tracing::error!(
            "This {from} panicked sending an error to its {to} after processing the command '{command}' (propagation-error-behavior {behaviour})"
        );
        std::process::exit(1);
    }
}
