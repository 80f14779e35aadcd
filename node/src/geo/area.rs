//! The cells a search scans: the cell holding the centre and its eight neighbours, at a step
//! coarse enough that together they cover the shape's bounding box.
//!
//! How the step is chosen (Redis's `geohashCalculateAreasByShapeWGS84`):
//! 1. estimate it from the shape's reach and the centre's latitude ([`estimate_step`]);
//! 2. if a side neighbour does not reach the bounding box's edge on its side, make the cells
//!    one step coarser (once);
//! 3. drop the neighbours on a side where the centre cell alone already extends past the
//!    bounding box (only from step 2 on: at step 1 the neighbours are the other halves of the
//!    world and are all kept).
//!
//! Neighbours wrap around at ±180° longitude, so a search across the antimeridian scans cells
//! on both sides. Near the poles (and for huge radii) neighbours can coincide; the search skips
//! a cell equal to the one scanned just before it.

use super::cell::{decode, encode, shifted, Bounds, Cell, MERCATOR};
use super::shape::{estimate_step, Shape};

/// Cells in scan order: centre, north, south, east, west, north-east, north-west, south-east,
/// south-west; `None` for a pruned neighbour.
pub type Areas = [Option<Cell>; 9];

/// The centre cell at `step`, its extent, and its neighbours in scan order.
fn around(shape: &Shape, step: u8) -> (Bounds, Areas) {
    let centre = encode(&MERCATOR, shape.lon, shape.lat, step)
        .expect("a search centre is validated or decoded within the Mercator limits");
    let at = |dlon, dlat| Some(shifted(centre, dlon, dlat));
    let cells = [
        Some(centre),
        at(0, 1),
        at(0, -1),
        at(1, 0),
        at(-1, 0),
        at(1, 1),
        at(-1, 1),
        at(1, -1),
        at(-1, -1),
    ];
    (decode(&MERCATOR, centre), cells)
}

/// The cells to scan for `shape`.
pub fn areas(shape: &Shape) -> Areas {
    let bbox = shape.bounding_box();
    let mut step = estimate_step(shape.reach_m(), shape.lat);
    let (mut extent, mut cells) = around(shape, step);

    let side = |i: usize, cells: &Areas| {
        decode(&MERCATOR, cells[i].expect("neighbours are present before pruning"))
    };
    let too_fine = side(1, &cells).lat.max < bbox.max_lat
        || side(2, &cells).lat.min > bbox.min_lat
        || side(3, &cells).lon.max < bbox.max_lon
        || side(4, &cells).lon.min > bbox.min_lon;
    if step > 1 && too_fine {
        step -= 1;
        (extent, cells) = around(shape, step);
    }

    if step >= 2 {
        const NORTH: [usize; 3] = [1, 5, 6];
        const SOUTH: [usize; 3] = [2, 7, 8];
        const EAST: [usize; 3] = [3, 5, 7];
        const WEST: [usize; 3] = [4, 6, 8];
        let mut prune = |sides: [usize; 3]| sides.iter().for_each(|&i| cells[i] = None);
        if extent.lat.min < bbox.min_lat {
            prune(SOUTH);
        }
        if extent.lat.max > bbox.max_lat {
            prune(NORTH);
        }
        if extent.lon.min < bbox.min_lon {
            prune(WEST);
        }
        if extent.lon.max > bbox.max_lon {
            prune(EAST);
        }
    }
    cells
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::geo::shape::Extent;

    fn circle(lon: f64, lat: f64, radius_km: f64) -> Shape {
        Shape { lon, lat, extent: Extent::Radius(radius_km), unit: 1000.0 }
    }

    #[test]
    fn the_areas_cover_the_bounding_box() {
        for shape in
            [circle(0.0, 0.0, 100.0), circle(179.99, 10.0, 50.0), circle(-12.0, 84.9, 30.0)]
        {
            let cells: Vec<Cell> = areas(&shape).iter().flatten().copied().collect();
            let bbox = shape.bounding_box();
            let covered = |lon: f64, lat: f64| {
                let lon = if lon > 180.0 {
                    lon - 360.0
                } else if lon < -180.0 {
                    lon + 360.0
                } else {
                    lon
                };
                let lat = lat.clamp(crate::geo::cell::LAT_MIN, crate::geo::cell::LAT_MAX);
                cells.iter().any(|c| {
                    let b = decode(&MERCATOR, *c);
                    (b.lon.min..=b.lon.max).contains(&lon) && (b.lat.min..=b.lat.max).contains(&lat)
                })
            };
            for (lon, lat) in [
                (bbox.min_lon, bbox.min_lat),
                (bbox.max_lon, bbox.max_lat),
                (bbox.min_lon, bbox.max_lat),
                (bbox.max_lon, bbox.min_lat),
                (shape.lon, shape.lat),
            ] {
                assert!(covered(lon, lat), "{shape:?}: {lon},{lat}");
            }
        }
    }

    #[test]
    fn a_tiny_search_keeps_only_nearby_cells() {
        let kept = areas(&circle(10.0, 10.0, 0.001)).iter().flatten().count();
        assert!((1..=9).contains(&kept));
        assert!(areas(&circle(10.0, 10.0, 0.001))[0].is_some(), "the centre is always scanned");
    }
}
