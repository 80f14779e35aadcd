//! The scan behind every geo search: for each cell of [`areas`], the sorted-set members whose
//! scores fall in the cell's score range, kept if the shape contains their point.
//!
//! A cell of step `s` is a `2s`-bit prefix, so its members are exactly the scores in
//! `[prefix << (52 - 2s), (prefix + 1) << (52 - 2s))`. Results come out in scan order (cell by
//! cell, by score within a cell); [`crate::geo::order`] sorts them by distance when asked.
//!
//! With a limit (COUNT … ANY) the scan stops as soon as it has that many results, checking
//! after each member it looks at and before each cell, as Redis does.

use super::area::{areas, Areas};
use super::cell::{align52, decode_score, Cell};
use super::shape::Shape;
use crate::db::zset::range::ScoreRange;
use crate::db::zset::ZSet;
use crate::db::Sds;

/// A member found inside a search area.
#[derive(Debug, Clone, PartialEq)]
pub struct Found {
    /// The member.
    pub member: Sds,
    /// Its longitude (decoded from the score).
    pub lon: f64,
    /// Its latitude.
    pub lat: f64,
    /// Its distance from the centre, in metres.
    pub dist: f64,
    /// Its score.
    pub score: f64,
}

/// The scores of a cell's members: `min` included, `max` excluded.
pub fn score_range(cell: Cell) -> ScoreRange {
    let next = Cell { bits: cell.bits.wrapping_add(1), step: cell.step };
    ScoreRange { min: align52(cell) as f64, max: align52(next) as f64, minex: false, maxex: true }
}

/// Appends the members of `z` in `cell` that lie inside `shape`, stopping at `limit` results
/// in all (0: no limit).
fn scan_cell(z: &ZSet, cell: Cell, shape: &Shape, limit: usize, out: &mut Vec<Found>) {
    let range = score_range(cell);
    let Some(first) = z.first_in_range(&range) else { return };
    for (member, score) in z.iter_from(first, false) {
        if score >= range.max {
            break;
        }
        let (lon, lat) = decode_score(score);
        if let Some(dist) = shape.distance_if_within(lon, lat) {
            out.push(Found { member: Sds::from_slice(member), lon, lat, dist, score });
        }
        if limit > 0 && out.len() >= limit {
            break;
        }
    }
}

/// Scans `cells` in order for members of `z` inside `shape`, up to `limit` results (0: all).
pub fn scan(z: &ZSet, cells: &Areas, shape: &Shape, limit: usize) -> Vec<Found> {
    let mut out = Vec::new();
    // The index of the last cell scanned; 0 doubles as "none yet", so a neighbour equal to the
    // centre cell is scanned again (Redis's bookkeeping, kept for identical replies).
    let mut last = 0;
    for (i, cell) in cells.iter().enumerate() {
        let Some(cell) = *cell else { continue };
        if last != 0 && cells[last] == Some(cell) {
            continue;
        }
        if limit > 0 && out.len() >= limit {
            break;
        }
        scan_cell(z, cell, shape, limit, &mut out);
        last = i;
    }
    out
}

/// The members of `z` inside `shape`, in scan order, up to `limit` (0: all).
pub fn within(z: &ZSet, shape: &Shape, limit: usize) -> Vec<Found> {
    scan(z, &areas(shape), shape, limit)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::zset::{AddFlags, Limits};
    use crate::geo::cell::score_of;
    use crate::geo::shape::Extent;

    fn geo_set(points: &[(&str, f64, f64)], limits: Limits) -> ZSet {
        let mut z = ZSet::default();
        for (name, lon, lat) in points {
            let score = score_of(*lon, *lat).expect("in limits") as f64;
            z.add(name.as_bytes(), score, AddFlags::default(), limits).expect("not NaN");
        }
        z
    }

    fn names(found: &[Found]) -> Vec<String> {
        let mut v: Vec<String> =
            found.iter().map(|f| String::from_utf8_lossy(&f.member).into_owned()).collect();
        v.sort();
        v
    }

    #[test]
    fn both_encodings_find_the_same_points() {
        let points = [
            ("palermo", 13.361389, 38.115556),
            ("catania", 15.087269, 37.502669),
            ("rome", 12.496366, 41.902782),
            ("east", 179.999, 0.0),
            ("west", -179.999, 0.0),
        ];
        let small = geo_set(&points, Limits { entries: 128, value: 64 });
        let big = geo_set(&points, Limits { entries: 0, value: 0 });
        assert_eq!(small.encoding(), "listpack");
        assert_eq!(big.encoding(), "skiplist");
        let sicily = Shape { lon: 15.0, lat: 37.0, extent: Extent::Radius(200.0), unit: 1000.0 };
        let across = Shape { lon: 179.9995, lat: 0.0, extent: Extent::Radius(1.0), unit: 1000.0 };
        for z in [&small, &big] {
            assert_eq!(names(&within(z, &sicily, 0)), ["catania", "palermo"]);
            assert_eq!(names(&within(z, &across, 0)), ["east", "west"]);
            assert_eq!(within(z, &sicily, 1).len(), 1);
        }
    }

    #[test]
    fn a_cell_range_holds_exactly_its_scores() {
        let cell = Cell { bits: 0b1011, step: 2 };
        let r = score_range(cell);
        assert_eq!(r.min, (0b1011u64 << 48) as f64);
        assert_eq!(r.max, (0b1100u64 << 48) as f64);
    }
}
