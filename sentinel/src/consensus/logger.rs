//! raft-rs logs through `slog`; this drain hands its records to `tracing` under the target
//! `raft`, keeping the key-value pairs (`raft_id`, `term`, …) in the message, where most of the
//! information is. Filter with `RUST_LOG=raft=warn` (raft is chatty at info level).

use std::fmt::Write as _;

/// The slog drain that forwards to tracing.
pub struct TracingDrain;

struct Pairs(String);

impl slog::Serializer for Pairs {
    fn emit_arguments(&mut self, key: slog::Key, value: &std::fmt::Arguments) -> slog::Result {
        let _ = write!(self.0, " {key}={value}");
        Ok(())
    }
}

impl slog::Drain for TracingDrain {
    type Ok = ();
    type Err = slog::Never;

    fn log(&self, record: &slog::Record, values: &slog::OwnedKVList) -> Result<(), slog::Never> {
        use slog::KV;
        let mut pairs = Pairs(String::new());
        let _ = record.kv().serialize(record, &mut pairs);
        let _ = values.serialize(record, &mut pairs);
        let msg = record.msg();
        match record.level() {
            slog::Level::Critical | slog::Level::Error => {
                tracing::error!(target: "raft", "{msg}{}", pairs.0)
            }
            slog::Level::Warning => tracing::warn!(target: "raft", "{msg}{}", pairs.0),
            slog::Level::Info => tracing::info!(target: "raft", "{msg}{}", pairs.0),
            slog::Level::Debug => tracing::debug!(target: "raft", "{msg}{}", pairs.0),
            slog::Level::Trace => tracing::trace!(target: "raft", "{msg}{}", pairs.0),
        }
        Ok(())
    }
}

/// The root logger for raft-rs, tagged with this supervisor's id.
pub fn raft_logger(id: u64) -> slog::Logger {
    slog::Logger::root(TracingDrain, slog::o!("raft_id" => id))
}
