//! What the suites that compare warden-node with a real `redis-server` share: the reference
//! server as a child process ([`redis_process`]) and raw RESP connections that read replies as
//! the exact bytes sent ([`wire`]).
//!
//! Each comparison test binary declares `mod support;`; everything here is used by every one of
//! them, so no binary carries dead code (clippy runs with `-D warnings` on all targets).

pub mod redis_process;
pub mod wire;
