//! RESP, the Redis serialization protocol, in both versions.
//!
//! - [`Frame`] is a reply value. It is protocol-neutral: the same frame encodes as RESP2 or RESP3
//!   ([`Frame::encode`]), following Redis's downgrade rules (maps become flat arrays, doubles
//!   become bulk strings, booleans become integers, pushes become arrays).
//! - [`parse_request`] reads one client request from a buffer, as Redis's `processInputBuffer`
//!   does: multibulk (`*N\r\n$L\r\n…`) or inline (`SET a b\r\n`), with Redis's exact protocol-error
//!   texts, and never allocates more than the bytes that actually arrived.
//! - [`decode`] reads any reply frame (used by replica links and tests).

mod decode;
mod frame;
mod request;

pub use decode::{decode, DecodeError};
pub use frame::{Frame, Protocol};
pub use request::{
    parse_request, parse_request_into, RequestError, RequestLimits, INLINE_MAX_SIZE,
};
