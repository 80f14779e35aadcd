//! What a search covers: a circle (BYRADIUS, GEORADIUS) or an axis-aligned box (BYBOX) around
//! a centre, in some unit.
//!
//! Sizes stay in the client's unit and are converted to metres where Redis converts them, by
//! multiplying with [`Shape::unit`] (metres per unit) at each use: the association of those
//! products decides the last bit of a bound, and a point on the edge is in or out by that bit.

use std::cmp::Ordering;

use super::distance::{along_meridian, between, to_deg, to_rad, EARTH_RADIUS_M};

/// The size of a search area, in the query's unit.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Extent {
    /// A circle of this radius.
    Radius(f64),
    /// A box this wide (east-west) and this high (north-south).
    Box {
        /// East-west size.
        width: f64,
        /// North-south size.
        height: f64,
    },
}

/// A search area.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Shape {
    /// Longitude of the centre.
    pub lon: f64,
    /// Latitude of the centre.
    pub lat: f64,
    /// The size.
    pub extent: Extent,
    /// Metres per unit of the size (1 for `m`, 1000 for `km` …).
    pub unit: f64,
}

/// A longitude/latitude rectangle.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LonLatBox {
    /// West edge.
    pub min_lon: f64,
    /// South edge.
    pub min_lat: f64,
    /// East edge.
    pub max_lon: f64,
    /// North edge.
    pub max_lat: f64,
}

/// Redis's `MERCATOR_MAX`: half the earth's circumference in the projection, in metres.
const MERCATOR_MAX: f64 = 20037726.37;

/// The cell step whose cells are about as large as a search of `range_m` metres around
/// latitude `lat`: the largest step that keeps the range inside the centre cell and its
/// neighbours in most cases, one or two coarser near the poles, between 1 and 26.
pub fn estimate_step(range_m: f64, lat: f64) -> u8 {
    if range_m == 0.0 {
        return 26;
    }
    let mut range = range_m;
    let mut step: i32 = 1;
    while range < MERCATOR_MAX {
        range *= 2.0;
        step += 1;
    }
    step -= 2;
    // Meridians converge toward the poles: use larger cells there.
    if !(-66.0..=66.0).contains(&lat) {
        step -= 1;
        if !(-80.0..=80.0).contains(&lat) {
            step -= 1;
        }
    }
    step.clamp(1, 26) as u8
}

impl Shape {
    /// Half the height and half the width in metres (the radius, twice, for a circle).
    fn half_sizes_m(&self) -> (f64, f64) {
        match self.extent {
            Extent::Radius(r) => (self.unit * r, self.unit * r),
            Extent::Box { width, height } => {
                (self.unit * (height / 2.0), self.unit * (width / 2.0))
            }
        }
    }

    /// The longitude/latitude rectangle around the area. East-west, it is as wide as the area
    /// on the parallel farther from the equator (the wider one in degrees).
    pub fn bounding_box(&self) -> LonLatBox {
        let (half_height, half_width) = self.half_sizes_m();
        let lat_delta = to_deg(half_height / EARTH_RADIUS_M);
        let lon_delta_north =
            to_deg(half_width / EARTH_RADIUS_M / to_rad(self.lat + lat_delta).cos());
        let lon_delta_south =
            to_deg(half_width / EARTH_RADIUS_M / to_rad(self.lat - lat_delta).cos());
        let lon_delta = if self.lat < 0.0 { lon_delta_south } else { lon_delta_north };
        LonLatBox {
            min_lon: self.lon - lon_delta,
            min_lat: self.lat - lat_delta,
            max_lon: self.lon + lon_delta,
            max_lat: self.lat + lat_delta,
        }
    }

    /// The distance in metres from the centre to the farthest point of the area: the radius,
    /// or the half-diagonal of a box.
    pub fn reach_m(&self) -> f64 {
        let reach = match self.extent {
            Extent::Radius(r) => r,
            Extent::Box { width, height } => {
                ((width / 2.0) * (width / 2.0) + (height / 2.0) * (height / 2.0)).sqrt()
            }
        };
        reach * self.unit
    }

    /// The distance in metres from the centre to the point, if the point is inside the area.
    /// A box contains a point when the point is no farther north or south of the centre than
    /// half the height, and no farther east or west (measured along the point's parallel) than
    /// half the width.
    pub fn distance_if_within(&self, lon: f64, lat: f64) -> Option<f64> {
        match self.extent {
            Extent::Radius(r) => {
                let d = between(self.lon, self.lat, lon, lat);
                // Only a greater distance is outside: a NaN one counts as inside, as in Redis.
                match d.partial_cmp(&(r * self.unit)) {
                    Some(Ordering::Greater) => None,
                    _ => Some(d),
                }
            }
            Extent::Box { width, height } => {
                if along_meridian(lat, self.lat) > height * self.unit / 2.0 {
                    return None;
                }
                if between(lon, lat, self.lon, lat) > width * self.unit / 2.0 {
                    return None;
                }
                Some(between(self.lon, self.lat, lon, lat))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_follow_the_range() {
        assert_eq!(estimate_step(0.0, 0.0), 26);
        assert_eq!(estimate_step(1.0, 0.0), 24);
        assert_eq!(estimate_step(1000.0, 0.0), 14);
        assert_eq!(estimate_step(1000.0, 70.0), 13);
        assert_eq!(estimate_step(1000.0, -85.0), 12);
        assert_eq!(estimate_step(5_000_000.0, 0.0), 2);
        assert_eq!(estimate_step(f64::INFINITY, 0.0), 1);
        assert_eq!(estimate_step(1e-300, 0.0), 26);
    }

    #[test]
    fn boxes_and_circles_contain_what_they_should() {
        let circle = Shape { lon: 0.0, lat: 0.0, extent: Extent::Radius(100.0), unit: 1000.0 };
        assert!(circle.distance_if_within(0.5, 0.5).is_some());
        assert!(circle.distance_if_within(1.0, 0.0).is_none());
        let b = Shape {
            lon: 0.0,
            lat: 0.0,
            extent: Extent::Box { width: 200.0, height: 100.0 },
            unit: 1000.0,
        };
        assert!(b.distance_if_within(0.8, 0.3).is_some());
        assert!(b.distance_if_within(0.3, 0.5).is_none());
        let bb = b.bounding_box();
        assert!(bb.min_lon < -0.8 && bb.max_lon > 0.8 && bb.max_lat > 0.44 && bb.max_lat < 0.46);
        assert_eq!(b.reach_m(), (100.0f64 * 100.0 + 50.0 * 50.0).sqrt() * 1000.0);
    }
}
