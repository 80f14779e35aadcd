//! Distances on the earth, as Redis measures and prints them.
//!
//! The earth is a sphere of radius [`EARTH_RADIUS_M`] (WGS-84's quadratic mean radius), and the
//! distance between two points is the haversine great-circle distance. Each product and sum
//! below is associated as in Redis's C, and the trigonometry comes from the same C library, so
//! the doubles are identical, not merely close.

use super::cell::c_to_i64;

/// The earth's radius in metres.
pub const EARTH_RADIUS_M: f64 = 6372797.560856;

/// Degrees to radians: multiplying by this constant (not dividing by its inverse) matters for
/// the last bit.
const RAD_PER_DEG: f64 = std::f64::consts::PI / 180.0;

/// Degrees to radians.
pub fn to_rad(deg: f64) -> f64 {
    deg * RAD_PER_DEG
}

/// Radians to degrees.
pub fn to_deg(rad: f64) -> f64 {
    rad / RAD_PER_DEG
}

/// The distance in metres between two latitudes on one meridian.
pub fn along_meridian(lat1: f64, lat2: f64) -> f64 {
    EARTH_RADIUS_M * (to_rad(lat2) - to_rad(lat1)).abs()
}

/// The haversine distance in metres between two points given in degrees.
pub fn between(lon1: f64, lat1: f64, lon2: f64, lat2: f64) -> f64 {
    let v = ((to_rad(lon2) - to_rad(lon1)) / 2.0).sin();
    if v == 0.0 {
        // Same meridian: the formula reduces to the difference of latitudes.
        return along_meridian(lat1, lat2);
    }
    let (lat1, lat2) = (to_rad(lat1), to_rad(lat2));
    let u = ((lat2 - lat1) / 2.0).sin();
    let a = u * u + lat1.cos() * lat2.cos() * v * v;
    2.0 * EARTH_RADIUS_M * a.sqrt().asin()
}

/// C's `llrint` on x86-64: round half to even, and the "integer indefinite" `i64::MIN` for NaN
/// and values out of range.
fn llrint(x: f64) -> i64 {
    c_to_i64(x.round_ties_even())
}

/// A distance as Redis replies it: scaled by 10^4, rounded half to even to an integer, and
/// printed with four decimals (Redis's `fixedpoint_d2string`, not `printf("%.4f")`: the
/// rounding happens on the scaled double). A NaN prints as the negative indefinite integer.
pub fn format(d: f64) -> String {
    if d == 0.0 {
        return "0.0000".to_string();
    }
    let scaled = llrint(d * 10000.0);
    let sign = if scaled < 0 { "-" } else { "" };
    let magnitude = scaled.unsigned_abs();
    format!("{sign}{}.{:04}", magnitude / 10000, magnitude % 10000)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Distances as redis-server 7.0.15 replies them (GEODIST in metres between the decoded
    /// positions of the points added).
    #[test]
    fn distances_match_redis() {
        use crate::geo::cell::{decode_score, score_of};
        let at = |lon, lat| decode_score(score_of(lon, lat).expect("in limits") as f64);
        let cases = [
            ((13.361389, 38.115556), (15.087269, 37.502669), "166274.1516"),
            ((0.0, 0.0), (180.0, 0.0), "20020733.6202"),
            ((90.0, 45.0), (-90.0, -45.0), "20020734.0000"),
            ((10.0, 20.0), (-170.0, -20.0), "20020734.0000"),
            ((0.0, 10.0), (0.0, 11.0), "111226.0989"),
        ];
        for ((lon1, lat1), (lon2, lat2), want) in cases {
            let (a, b) = (at(lon1, lat1), at(lon2, lat2));
            assert_eq!(format(between(a.0, a.1, b.0, b.1)), want, "{lon1},{lat1} {lon2},{lat2}");
        }
    }

    #[test]
    fn formatting_rounds_the_scaled_value() {
        assert_eq!(format(0.0), "0.0000");
        assert_eq!(format(1e-9), "0.0000");
        assert_eq!(format(0.00005), "0.0000"); // 0.5 after scaling: half to even
        assert_eq!(format(0.00015), "0.0001"); // 1.4999999999999998 after scaling
        assert_eq!(format(12.5), "12.5000");
        assert_eq!(format(166.27415156960038), "166.2742");
        assert_eq!(format(f64::NAN), "-922337203685477.5808");
    }
}
