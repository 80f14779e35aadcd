//! Logging set-up shared by the binaries: `tracing` to stderr (or a log file).

use tracing_subscriber::EnvFilter;

/// Installs the global subscriber. `level` is a Redis log level (`debug`, `verbose`, `notice`,
/// `warning`) or a tracing filter; `RUST_LOG` overrides it. With `logfile`, logs append there.
pub fn init(level: &str, logfile: Option<&std::path::Path>) -> std::io::Result<()> {
    let filter = match level {
        "debug" => "debug",
        "verbose" => "info",
        "notice" => "info",
        "warning" => "warn",
        "nothing" => "off",
        other => other,
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(filter));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_target(false);
    let result = match logfile {
        Some(path) => {
            let file = std::fs::OpenOptions::new().create(true).append(true).open(path)?;
            builder.with_ansi(false).with_writer(std::sync::Mutex::new(file)).try_init()
        }
        None => builder.with_writer(std::io::stderr).try_init(),
    };
    // A second init (tests starting several servers in one process) keeps the first subscriber.
    let _ = result;
    Ok(())
}
