//! Geospatial indexing on top of sorted sets, as Redis 7.0.15 computes it.
//!
//! A geo set is an ordinary sorted set: each member's score is a 52-bit geohash, the longitude
//! and latitude of the point quantized to 26 bits each and interleaved (latitude in the even
//! bits, longitude in the odd ones), over the Web Mercator limits rather than the usual
//! -90..90 latitude range. Points close on the map mostly have close scores, so a search is a
//! handful of score-range scans of the sorted set followed by an exact distance check. Nothing
//! here knows about the set's encoding or about commands; `crate::cmd::geo` does the protocol.
//!
//! The pieces, one concept each:
//! - [`cell`]: geohash cells — encoding a point, decoding a cell to its bounds and centre,
//!   the eight neighbours of a cell, and the C conversions a score goes through on the way.
//! - [`distance`]: the haversine distance on a sphere of Redis's earth radius.
//! - [`shape`]: what a search covers (a circle or an axis-aligned box around a centre), its
//!   bounding box and the test that tells whether a point is inside.
//! - [`area`]: which nine cells (centre and neighbours, some pruned) cover a shape.
//! - [`search`]: the scan of the sorted set over those cells.
//! - [`order`]: the order of the results by distance, ties included, as Redis's sorts leave it.
//! - [`query`]: the argument grammar of GEORADIUS, GEORADIUSBYMEMBER, GEOSEARCH and
//!   GEOSEARCHSTORE, with Redis's checks in Redis's order.
//!
//! Clients compare replies byte for byte, so every floating-point step is written in the order
//! Redis's C code evaluates it (the same libm functions, the same association of products), and
//! the results of C conversions that Rust defines differently (a double cast to an unsigned
//! integer, `llrint`) are reproduced explicitly. Everything is pure and deterministic.

pub mod area;
pub mod cell;
pub mod distance;
pub mod order;
pub mod query;
pub mod search;
pub mod shape;
