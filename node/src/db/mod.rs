//! The data: sixteen (or `databases`) keyspaces, their expiry tables, and the bookkeeping that
//! every write must update (the dirty counter, WATCH, blocked clients).
//!
//! Everything here is synchronous and free of I/O and clocks: time arrives as `now_ms`.

pub mod access;
pub mod dict;
pub mod digest;
pub mod hash;
pub mod hll;
pub mod keyspace;
pub mod list;
pub mod memory;
pub mod set;
pub mod snapshot_dict;
pub mod stream;
pub mod value;
pub mod zset;

pub use access::Lru;
pub use dict::Dict;
pub use keyspace::{Db, Keyspace};
pub use snapshot_dict::SnapshotDict;
pub use value::{Sds, StrEnc, Value};
