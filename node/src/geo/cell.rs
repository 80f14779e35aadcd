//! Geohash cells: a point quantized to `step` bits of longitude and `step` bits of latitude,
//! interleaved into one integer.
//!
//! Bit layout: latitude bits in the even positions, longitude bits in the odd ones, most
//! significant first, so the cell of step `s` is the `2s`-bit prefix of every finer cell inside
//! it. Scores use step 26 ([`STEP_MAX`]): 52 bits, which a double holds exactly.
//!
//! Two coordinate frames are used. Scores are computed over the Web Mercator limits
//! ([`MERCATOR`]: latitude ±85.05112878), because the poles cannot be projected; GEOHASH
//! re-encodes a decoded point over the standard -90..90 frame ([`STANDARD`]) so that its
//! string is an ordinary geohash.
//!
//! Quirks kept on purpose, because scores and replies depend on them:
//! - A coordinate on the upper limit (longitude 180, latitude 85.05112878) quantizes to
//!   `2^step`, one past the last cell, so its bit lands above the `2·step` bits: the score of
//!   `(180, 85.05112878)` is `3·2^52`. Decoding and neighbour arithmetic carry such bits along
//!   exactly as Redis does.
//! - Any sorted-set score decodes, geo or not: it is first converted to an unsigned 64-bit
//!   integer as x86-64 code compiled from C does ([`score_bits`]), then decoded with the
//!   result clamped to the Mercator limits.

/// The finest step: 26 bits per coordinate, 52 bits in all.
pub const STEP_MAX: u8 = 26;

/// The northernmost latitude that can be indexed (EPSG:900913).
pub const LAT_MAX: f64 = 85.05112878;
/// The southernmost latitude that can be indexed.
pub const LAT_MIN: f64 = -85.05112878;
/// The easternmost longitude.
pub const LON_MAX: f64 = 180.0;
/// The westernmost longitude.
pub const LON_MIN: f64 = -180.0;

/// A closed interval of one coordinate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Span {
    /// Lower end.
    pub min: f64,
    /// Upper end.
    pub max: f64,
}

/// The extent of a cell, or the frame cells are cut from.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bounds {
    /// Longitude extent.
    pub lon: Span,
    /// Latitude extent.
    pub lat: Span,
}

/// The frame of scores: longitude ±180, latitude within the Web Mercator limits.
pub const MERCATOR: Bounds =
    Bounds { lon: Span { min: LON_MIN, max: LON_MAX }, lat: Span { min: LAT_MIN, max: LAT_MAX } };

/// The frame of ordinary geohash strings: longitude ±180, latitude ±90.
pub const STANDARD: Bounds =
    Bounds { lon: Span { min: LON_MIN, max: LON_MAX }, lat: Span { min: -90.0, max: 90.0 } };

/// True if a point lies within the Mercator limits (what GEOADD and the search centres accept).
pub fn in_limits(lon: f64, lat: f64) -> bool {
    (LON_MIN..=LON_MAX).contains(&lon) && (LAT_MIN..=LAT_MAX).contains(&lat)
}

/// A cell: `2·step` interleaved bits (plus, at the upper limits, the carry described in the
/// module documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cell {
    /// The interleaved bits.
    pub bits: u64,
    /// Bits per coordinate, 1 to 32.
    pub step: u8,
}

/// Spreads the 32 bits of `v` to the even positions of a `u64`.
fn spread(v: u32) -> u64 {
    let mut x = u64::from(v);
    x = (x | (x << 16)) & 0x0000_FFFF_0000_FFFF;
    x = (x | (x << 8)) & 0x00FF_00FF_00FF_00FF;
    x = (x | (x << 4)) & 0x0F0F_0F0F_0F0F_0F0F;
    x = (x | (x << 2)) & 0x3333_3333_3333_3333;
    (x | (x << 1)) & 0x5555_5555_5555_5555
}

/// Gathers the even bits of `x` into a `u32` (the inverse of [`spread`]).
fn gather(x: u64) -> u32 {
    let mut x = x & 0x5555_5555_5555_5555;
    x = (x | (x >> 1)) & 0x3333_3333_3333_3333;
    x = (x | (x >> 2)) & 0x0F0F_0F0F_0F0F_0F0F;
    x = (x | (x >> 4)) & 0x00FF_00FF_00FF_00FF;
    x = (x | (x >> 8)) & 0x0000_FFFF_0000_FFFF;
    x = (x | (x >> 16)) & 0x0000_0000_FFFF_FFFF;
    x as u32
}

/// The cell of `step` bits holding the point, over `frame`; `None` outside the Mercator limits
/// or outside the frame.
pub fn encode(frame: &Bounds, lon: f64, lat: f64, step: u8) -> Option<Cell> {
    if step == 0 || step > 32 || !in_limits(lon, lat) {
        return None;
    }
    if lat < frame.lat.min || lat > frame.lat.max || lon < frame.lon.min || lon > frame.lon.max {
        return None;
    }
    let cells = (1u64 << step) as f64;
    let lat_offset = (lat - frame.lat.min) / (frame.lat.max - frame.lat.min) * cells;
    let lon_offset = (lon - frame.lon.min) / (frame.lon.max - frame.lon.min) * cells;
    // Both offsets are within [0, 2^step]: the conversion truncates, as C's does.
    let bits = spread(lat_offset as u32) | (spread(lon_offset as u32) << 1);
    Some(Cell { bits, step })
}

/// The extent of `cell` within `frame`.
pub fn decode(frame: &Bounds, cell: Cell) -> Bounds {
    let lat_index = gather(cell.bits);
    let lon_index = gather(cell.bits >> 1);
    let cells = (1u64 << cell.step) as f64;
    let lat_scale = frame.lat.max - frame.lat.min;
    let lon_scale = frame.lon.max - frame.lon.min;
    // The upper index is computed in 32 bits, wrapping as C's unsigned arithmetic does (only a
    // non-geo score can have an all-ones index).
    let end = |i: u32, min: f64, scale: f64| Span {
        min: min + (f64::from(i) / cells) * scale,
        max: min + (f64::from(i.wrapping_add(1)) / cells) * scale,
    };
    Bounds {
        lon: end(lon_index, frame.lon.min, lon_scale),
        lat: end(lat_index, frame.lat.min, lat_scale),
    }
}

/// The centre of a cell's extent, clamped to the Mercator limits: what a score decodes to.
pub fn centre(b: &Bounds) -> (f64, f64) {
    let lon = ((b.lon.min + b.lon.max) / 2.0).clamp(LON_MIN, LON_MAX);
    let lat = ((b.lat.min + b.lat.max) / 2.0).clamp(LAT_MIN, LAT_MAX);
    (lon, lat)
}

/// The score of the cell's first point at step 26: its bits shifted into 52-bit alignment.
pub fn align52(cell: Cell) -> u64 {
    cell.bits << (52 - 2 * u32::from(cell.step))
}

/// The score GEOADD stores for a point within the Mercator limits.
pub fn score_of(lon: f64, lat: f64) -> Option<u64> {
    encode(&MERCATOR, lon, lat, STEP_MAX).map(align52)
}

/// x86-64's `cvttsd2si`: a double truncated to a signed 64-bit integer, with the "integer
/// indefinite" value `i64::MIN` for NaN and anything out of range. This is what a C cast from
/// double to `long long` does on the platform Redis runs on (Rust's `as` saturates instead).
pub fn c_to_i64(x: f64) -> i64 {
    const LIMIT: f64 = 9_223_372_036_854_775_808.0; // 2^63
    if x.is_nan() || !(-LIMIT..LIMIT).contains(&x) {
        i64::MIN
    } else {
        x as i64
    }
}

/// A C cast from double to `uint64_t` as x86-64 compilers emit it: below 2^63 through the
/// signed conversion (so -5.0 becomes 2^64 - 5 and -inf becomes 2^63), from 2^63 on by
/// converting `x - 2^63` and setting the top bit back (so +inf and 2^64 and beyond become 0).
pub fn score_bits(score: f64) -> u64 {
    const TOP: f64 = 9_223_372_036_854_775_808.0; // 2^63
    if score < TOP {
        c_to_i64(score) as u64
    } else {
        (c_to_i64(score - TOP) as u64) ^ (1 << 63)
    }
}

/// The point a sorted-set score stands for (any score decodes; see the module documentation).
pub fn decode_score(score: f64) -> (f64, f64) {
    centre(&decode(&MERCATOR, Cell { bits: score_bits(score), step: STEP_MAX }))
}

/// Moves one coordinate of `bits` one cell up (`d > 0`) or down (`d < 0`), wrapping around;
/// `mine` holds that coordinate's bit positions and `theirs` the other's. Filling the other
/// coordinate's positions with ones makes the carry (or borrow) skip over them.
fn nudge(bits: u64, d: i8, mine: u64, theirs: u64, step: u8) -> u64 {
    if d == 0 {
        return bits;
    }
    let unused = 64 - 2 * u32::from(step);
    let fill = theirs >> unused;
    let coord = bits & mine;
    let moved =
        if d > 0 { coord.wrapping_add(fill + 1) } else { (coord | fill).wrapping_sub(fill + 1) };
    (moved & (mine >> unused)) | (bits & theirs)
}

/// The neighbour of `cell` one column east (`dlon > 0`) or west (`dlon < 0`) and one row north
/// (`dlat > 0`) or south (`dlat < 0`), wrapping around at the edges of the frame.
pub fn shifted(cell: Cell, dlon: i8, dlat: i8) -> Cell {
    const ODD: u64 = 0xAAAA_AAAA_AAAA_AAAA;
    const EVEN: u64 = 0x5555_5555_5555_5555;
    let bits = nudge(cell.bits, dlon, ODD, EVEN, cell.step);
    let bits = nudge(bits, dlat, EVEN, ODD, cell.step);
    Cell { bits, step: cell.step }
}

/// GEOHASH's 11-character string for a point: the point re-encoded over the standard frame at
/// step 26, in base 32; the eleventh character stands for bits a score does not have and is
/// always `0`.
pub fn geohash_string(lon: f64, lat: f64) -> [u8; 11] {
    const ALPHABET: &[u8; 32] = b"0123456789bcdefghjkmnpqrstuvwxyz";
    // A decoded point is always within the Mercator limits, hence within the standard frame.
    let bits = encode(&STANDARD, lon, lat, STEP_MAX).map_or(0, |c| c.bits);
    let mut out = [b'0'; 11];
    for (i, c) in out.iter_mut().take(10).enumerate() {
        *c = ALPHABET[((bits >> (52 - (i + 1) * 5)) & 0x1f) as usize];
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spread_and_gather_are_inverse() {
        for v in [0u32, 1, 2, 0x5a5a_5a5a, u32::MAX, 1 << 26] {
            assert_eq!(gather(spread(v)), v);
            assert_eq!(spread(v) & 0xAAAA_AAAA_AAAA_AAAA, 0);
        }
        assert_eq!(spread(0b11), 0b101);
    }

    /// Scores and positions as redis-server 7.0.15 reports them (GEOADD, then ZSCORE, and
    /// GEOPOS, which prints `%.17Lf` without trailing zeros).
    #[test]
    fn scores_and_decoded_points_match_redis() {
        use common::longdouble::LongDouble;
        let cases: [(f64, f64, u64, &str, &str); 4] = [
            (
                13.361389,
                38.115556,
                3479099956230698,
                "13.36138933897018433",
                "38.11555639549629859",
            ),
            (
                15.087269,
                37.502669,
                3479447370796909,
                "15.08726745843887329",
                "37.50266842333162032",
            ),
            (180.0, LAT_MAX, 13510798882111488, "180", "85.0511287799999991"),
            (LON_MIN, LAT_MIN, 0, "-179.99999731779098511", "-85.05112751263942528"),
        ];
        let text = |x: f64| LongDouble::from_f64(x).to_redis_string();
        for (lon, lat, score, want_lon, want_lat) in cases {
            assert_eq!(score_of(lon, lat), Some(score), "{lon},{lat}");
            let (x, y) = decode_score(score as f64);
            assert_eq!((text(x).as_str(), text(y).as_str()), (want_lon, want_lat));
            // Round trip: re-encoding the decoded point gives the same score.
            assert_eq!(score_of(x, y), Some(score));
        }
        assert_eq!(score_of(180.5, 0.0), None);
        assert_eq!(score_of(0.0, 85.06), None);
    }

    #[test]
    fn round_trips_over_a_grid() {
        for i in 0..=36 {
            for j in 0..=17 {
                let lon = -180.0 + 10.0 * f64::from(i);
                let lat = LAT_MIN + 10.0 * f64::from(j);
                let score = score_of(lon, lat).expect("in limits");
                let (x, y) = decode_score(score as f64);
                assert!((x - lon).abs() < 1e-5 && (y - lat).abs() < 1e-5, "{lon},{lat}");
                // Compared as the doubles a sorted set stores: at longitude 180 the carry bit
                // takes scores past 2^53, where neighbouring integers share a double.
                assert_eq!(score_of(x, y).map(|s| s as f64), Some(score as f64), "{lon},{lat}");
            }
        }
    }

    /// Non-geo scores decode as they do in Redis (checked with ZADD then GEOPOS/GEOHASH).
    #[test]
    fn any_score_decodes_as_in_redis() {
        assert_eq!(score_bits(-5.0), u64::MAX - 4);
        assert_eq!(score_bits(1e20), 0);
        assert_eq!(score_bits(f64::INFINITY), 0);
        assert_eq!(score_bits(f64::NEG_INFINITY), 1 << 63);
        assert_eq!(score_bits(1.5), 1);
        assert_eq!(score_bits(1.9e19), 0);
        assert_eq!(score_bits(-1e19), 1 << 63);
        assert_eq!(decode_score(-5.0), (180.0, LAT_MAX));
        assert_eq!(decode_score(f64::NEG_INFINITY).0, 180.0);
        assert_eq!(&geohash_string(180.0, LAT_MAX), b"bp05b5048p0");
        let (x, y) = decode_score(0.0);
        assert_eq!(&geohash_string(x, y), b"00bh0hbj200");
        assert_eq!(c_to_i64(f64::NAN), i64::MIN);
        assert_eq!(c_to_i64(-2.9), -2);
    }

    #[test]
    fn geohash_strings_match_redis() {
        let (x, y) = decode_score(3479099956230698.0);
        assert_eq!(&geohash_string(x, y), b"sqc8b49rny0");
        let (x, y) = decode_score(3479447370796909.0);
        assert_eq!(&geohash_string(x, y), b"sqdtr74hyu0");
    }

    #[test]
    fn neighbours_wrap_around_the_antimeridian() {
        let west_edge = encode(&MERCATOR, -179.9, 0.0, 4).expect("in limits");
        let east_edge = encode(&MERCATOR, 179.9, 0.0, 4).expect("in limits");
        assert_eq!(shifted(west_edge, -1, 0), east_edge);
        assert_eq!(shifted(east_edge, 1, 0), west_edge);
        let c = encode(&MERCATOR, 10.0, 10.0, 5).expect("in limits");
        assert_eq!(shifted(shifted(c, 1, 1), -1, -1), c);
        assert_eq!(shifted(c, 0, 0), c);
        let north = decode(&MERCATOR, shifted(c, 0, 1));
        let here = decode(&MERCATOR, c);
        assert_eq!(north.lat.min, here.lat.max);
        assert_eq!(north.lon, here.lon);
        let east = decode(&MERCATOR, shifted(c, 1, 0));
        assert_eq!(east.lon.min, here.lon.max);
        assert_eq!(east.lat, here.lat);
    }
}
