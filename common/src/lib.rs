//! Shared pieces of Warden: the parts both `warden-node` and `warden-sentinel` speak.
//!
//! - [`resp`]: RESP2/RESP3 frames, the request parser (multibulk and inline) and the encoder.
//! - [`longdouble`]: the x87 `long double` arithmetic behind INCRBYFLOAT/HINCRBYFLOAT.
//! - [`config`]: the `redis.conf`-style line tokenizer and typed value parsers (durations, sizes).
//! - [`shutdown`]: graceful shutdown as a type.
//! - [`telemetry`]: tracing set-up shared by the binaries.
#![warn(missing_docs)]

pub mod config;
pub mod fmt;
pub mod glob;
pub mod longdouble;
pub mod resp;
pub mod shutdown;
pub mod telemetry;
