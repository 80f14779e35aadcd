//! The argument grammar of the search commands — GEORADIUS, GEORADIUSBYMEMBER (and their
//! `_RO` forms), GEOSEARCH and GEOSEARCHSTORE — parsed into a [`Query`] with Redis 7.0.15's
//! checks in Redis's order, since the order decides which error a client sees first.
//!
//! This is protocol code that belongs with the handlers in `crate::cmd::geo`; it sits beside
//! the geometry to keep that file readable. It reads the source set (already type-checked by
//! the caller) only to find a FROMMEMBER / BYMEMBER centre. When the source key is missing,
//! Redis still parses the options (so their errors come first) but skips the member lookup,
//! and so does this.

use bytes::Bytes;

use super::cell::{decode_score, in_limits};
use super::shape::{Extent, Shape};
use crate::cmd::args::{int, is};
use crate::db::zset::range::string2d;
use crate::db::zset::ZSet;
use crate::error::CommandError;

/// Which command is parsing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `GEORADIUS key lon lat radius unit …`
    Radius,
    /// GEORADIUS_RO: no STORE.
    RadiusRo,
    /// `GEORADIUSBYMEMBER key member radius unit …`
    ByMember,
    /// GEORADIUSBYMEMBER_RO: no STORE.
    ByMemberRo,
    /// `GEOSEARCH key FROM… BY… …`
    Search,
    /// `GEOSEARCHSTORE dst key FROM… BY… … [STOREDIST]`
    SearchStore,
}

impl Kind {
    /// The position of the source key.
    pub fn source(self) -> usize {
        if self == Kind::SearchStore {
            2
        } else {
            1
        }
    }

    fn geosearch(self) -> bool {
        matches!(self, Kind::Search | Kind::SearchStore)
    }

    /// STORE and STOREDIST take a key (the GEORADIUS family without `_RO`).
    fn store_option(self) -> bool {
        matches!(self, Kind::Radius | Kind::ByMember)
    }
}

/// The requested order of results.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sort {
    /// Scan order.
    Unsorted,
    /// Nearest first.
    Asc,
    /// Farthest first.
    Desc,
}

/// A parsed search.
#[derive(Debug, Clone, PartialEq)]
pub struct Query<'a> {
    /// The area (centre unset when the source key is missing).
    pub shape: Shape,
    /// Where to store the results instead of replying them.
    pub store: Option<&'a Bytes>,
    /// Store distances (in the query's unit) as scores instead of the geohashes.
    pub store_dist: bool,
    /// WITHDIST.
    pub with_dist: bool,
    /// WITHHASH.
    pub with_hash: bool,
    /// WITHCOORD.
    pub with_coord: bool,
    /// ASC, DESC or neither.
    pub sort: Sort,
    /// COUNT (0: all).
    pub count: usize,
    /// ANY: stop scanning once COUNT results are found.
    pub any: bool,
}

/// A longitude and latitude argument pair, checked against the Mercator limits.
pub fn lon_lat(lon: &[u8], lat: &[u8]) -> Result<(f64, f64), CommandError> {
    let lon = string2d(lon).ok_or(CommandError::NotFloat)?;
    let lat = string2d(lat).ok_or(CommandError::NotFloat)?;
    if !in_limits(lon, lat) {
        return Err(CommandError::err(format!(
            "invalid longitude,latitude pair {lon:.6},{lat:.6}"
        )));
    }
    Ok((lon, lat))
}

/// Metres per unit, for `m`, `km`, `ft` and `mi` in any case.
pub fn unit(arg: &[u8]) -> Result<f64, CommandError> {
    match () {
        _ if is(arg, "m") => Ok(1.0),
        _ if is(arg, "km") => Ok(1000.0),
        _ if is(arg, "ft") => Ok(0.3048),
        _ if is(arg, "mi") => Ok(1609.34),
        _ => Err(CommandError::err("unsupported unit provided. please use M, KM, FT, MI")),
    }
}

/// `radius unit`: the radius and metres per unit.
fn radius(args: &[Bytes]) -> Result<(f64, f64), CommandError> {
    let r = string2d(&args[0]).ok_or_else(|| CommandError::err("need numeric radius"))?;
    if r < 0.0 {
        return Err(CommandError::err("radius cannot be negative"));
    }
    Ok((r, unit(&args[1])?))
}

/// `width height unit`: the box and metres per unit.
fn box_size(args: &[Bytes]) -> Result<(Extent, f64), CommandError> {
    let width = string2d(&args[0]).ok_or_else(|| CommandError::err("need numeric width"))?;
    let height = string2d(&args[1]).ok_or_else(|| CommandError::err("need numeric height"))?;
    if height < 0.0 || width < 0.0 {
        return Err(CommandError::err("height or width cannot be negative"));
    }
    Ok((Extent::Box { width, height }, unit(&args[2])?))
}

/// The point of `member` in `z`.
fn member_point(z: &ZSet, member: &[u8]) -> Result<(f64, f64), CommandError> {
    z.score(member)
        .map(decode_score)
        .ok_or_else(|| CommandError::err("could not decode requested zset member"))
}

impl<'a> Query<'a> {
    /// Parses a search command line; `z` is the source set, if the key exists.
    pub fn parse(
        args: &'a [Bytes],
        kind: Kind,
        z: Option<&ZSet>,
    ) -> Result<Query<'a>, CommandError> {
        let mut q = Query {
            shape: Shape { lon: 0.0, lat: 0.0, extent: Extent::Radius(0.0), unit: 0.0 },
            store: None,
            store_dist: false,
            with_dist: false,
            with_hash: false,
            with_coord: false,
            sort: Sort::Unsorted,
            count: 0,
            any: false,
        };
        let base = match (kind, z) {
            (Kind::Radius | Kind::RadiusRo, _) => {
                (q.shape.lon, q.shape.lat) = lon_lat(&args[2], &args[3])?;
                let (r, unit) = radius(&args[4..6])?;
                (q.shape.extent, q.shape.unit) = (Extent::Radius(r), unit);
                6
            }
            // Without a source the member and the radius are not even looked at.
            (Kind::ByMember | Kind::ByMemberRo, None) => 5,
            (Kind::ByMember | Kind::ByMemberRo, Some(z)) => {
                (q.shape.lon, q.shape.lat) = member_point(z, &args[2])?;
                let (r, unit) = radius(&args[3..5])?;
                (q.shape.extent, q.shape.unit) = (Extent::Radius(r), unit);
                5
            }
            (Kind::Search, _) => 2,
            (Kind::SearchStore, _) => {
                q.store = Some(&args[1]);
                3
            }
        };

        let (mut from_member, mut from_lonlat, mut by_radius, mut by_box) =
            (false, false, false, false);
        let rest = &args[base.min(args.len())..];
        let mut i = 0;
        while i < rest.len() {
            let arg = &rest[i];
            // How many arguments follow this one.
            let after = rest.len() - i - 1;
            match () {
                _ if is(arg, "withdist") => q.with_dist = true,
                _ if is(arg, "withhash") => q.with_hash = true,
                _ if is(arg, "withcoord") => q.with_coord = true,
                _ if is(arg, "any") => q.any = true,
                _ if is(arg, "asc") => q.sort = Sort::Asc,
                _ if is(arg, "desc") => q.sort = Sort::Desc,
                _ if is(arg, "count") && after >= 1 => {
                    let n = int(&rest[i + 1])?;
                    if n <= 0 {
                        return Err(CommandError::err("COUNT must be > 0"));
                    }
                    // More than could ever be found, where `usize` is narrower.
                    q.count = usize::try_from(n).unwrap_or(usize::MAX);
                    i += 1;
                }
                _ if (is(arg, "store") || is(arg, "storedist"))
                    && after >= 1
                    && kind.store_option() =>
                {
                    q.store = Some(&rest[i + 1]);
                    q.store_dist = is(arg, "storedist");
                    i += 1;
                }
                _ if is(arg, "storedist") && kind == Kind::SearchStore => q.store_dist = true,
                _ if is(arg, "frommember") && after >= 1 && kind.geosearch() && !from_lonlat => {
                    if let Some(z) = z {
                        (q.shape.lon, q.shape.lat) = member_point(z, &rest[i + 1])?;
                    }
                    from_member = true;
                    i += 1;
                }
                _ if is(arg, "fromlonlat") && after >= 2 && kind.geosearch() && !from_member => {
                    (q.shape.lon, q.shape.lat) = lon_lat(&rest[i + 1], &rest[i + 2])?;
                    from_lonlat = true;
                    i += 2;
                }
                _ if is(arg, "byradius") && after >= 2 && kind.geosearch() && !by_box => {
                    let (r, unit) = radius(&rest[i + 1..i + 3])?;
                    (q.shape.extent, q.shape.unit) = (Extent::Radius(r), unit);
                    by_radius = true;
                    i += 2;
                }
                _ if is(arg, "bybox") && after >= 3 && kind.geosearch() && !by_radius => {
                    (q.shape.extent, q.shape.unit) = box_size(&rest[i + 1..i + 4])?;
                    by_box = true;
                    i += 3;
                }
                _ => return Err(CommandError::Syntax),
            }
            i += 1;
        }

        if q.store.is_some() && (q.with_dist || q.with_hash || q.with_coord) {
            let what = if kind == Kind::SearchStore {
                "GEOSEARCHSTORE"
            } else {
                "STORE option in GEORADIUS"
            };
            return Err(CommandError::err(format!(
                "{what} is not compatible with WITHDIST, WITHHASH and WITHCOORD options"
            )));
        }
        // Redis names the command as the client spelled it.
        let name = String::from_utf8_lossy(&args[0]);
        if kind.geosearch() && !(from_member || from_lonlat) {
            return Err(CommandError::err(format!(
                "exactly one of FROMMEMBER or FROMLONLAT can be specified for {name}"
            )));
        }
        if kind.geosearch() && !(by_radius || by_box) {
            return Err(CommandError::err(format!(
                "exactly one of BYRADIUS and BYBOX can be specified for {name}"
            )));
        }
        if q.any && q.count == 0 {
            return Err(CommandError::err("the ANY argument requires COUNT argument"));
        }
        Ok(q)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(line: &str) -> Vec<Bytes> {
        line.split(' ').map(|s| Bytes::copy_from_slice(s.as_bytes())).collect()
    }

    fn parse(line: &str, kind: Kind) -> Result<Query<'static>, CommandError> {
        let args: &'static [Bytes] = Box::leak(argv(line).into_boxed_slice());
        Query::parse(args, kind, Some(&ZSet::default()))
    }

    fn error(line: &str, kind: Kind) -> String {
        parse(line, kind).expect_err(line).to_string()
    }

    #[test]
    fn options_parse() {
        let q = parse("GEORADIUS k 15 37 200 KM WITHDIST ASC COUNT 3 ANY STORE d", Kind::Radius);
        let q = q.expect_err("STORE with WITHDIST").to_string();
        assert!(q.contains("STORE option in GEORADIUS"), "{q}");
        let q = parse("GEOSEARCH k FROMLONLAT 15 37 BYBOX 4 2 mi DESC COUNT 2", Kind::Search)
            .expect("valid");
        assert_eq!(q.shape.extent, Extent::Box { width: 4.0, height: 2.0 });
        assert_eq!((q.shape.unit, q.sort, q.count), (1609.34, Sort::Desc, 2));
        let q =
            parse("GEOSEARCHSTORE d k FROMLONLAT 15 37 BYRADIUS 1 ft STOREDIST", Kind::SearchStore)
                .expect("valid");
        assert!(q.store_dist && q.store.is_some_and(|s| &s[..] == b"d"));
    }

    #[test]
    fn errors_come_in_redis_order() {
        assert_eq!(
            error("GEORADIUS k 200 0 -1 km", Kind::Radius),
            "ERR invalid longitude,latitude pair 200.000000,0.000000"
        );
        assert_eq!(error("GEORADIUS k 0 0 -1 km", Kind::Radius), "ERR radius cannot be negative");
        assert_eq!(error("GEORADIUS k 0 0 x km", Kind::Radius), "ERR need numeric radius");
        assert_eq!(
            error("GEORADIUS k 0 0 1 yd", Kind::Radius),
            "ERR unsupported unit provided. please use M, KM, FT, MI"
        );
        assert_eq!(error("GEORADIUS_RO k 0 0 1 m STORE d", Kind::RadiusRo), "ERR syntax error");
        assert_eq!(error("GEORADIUS k 0 0 1 m COUNT 0", Kind::Radius), "ERR COUNT must be > 0");
        assert_eq!(
            error("GEORADIUS k 0 0 1 m ANY", Kind::Radius),
            "ERR the ANY argument requires COUNT argument"
        );
        assert_eq!(error("GEORADIUS k 0 0 1 m COUNT", Kind::Radius), "ERR syntax error");
        assert_eq!(
            error("GEORADIUSBYMEMBER k nobody 1 m", Kind::ByMember),
            "ERR could not decode requested zset member"
        );
        assert_eq!(
            error("geosearch k BYRADIUS 1 m", Kind::Search),
            "ERR exactly one of FROMMEMBER or FROMLONLAT can be specified for geosearch"
        );
        assert_eq!(
            error("GEOSEARCH k FROMLONLAT 0 0", Kind::Search),
            "ERR exactly one of BYRADIUS and BYBOX can be specified for GEOSEARCH"
        );
        assert_eq!(
            error("GEOSEARCH k FROMLONLAT 0 0 FROMMEMBER m BYRADIUS 1 m", Kind::Search),
            "ERR syntax error"
        );
        assert_eq!(
            error("GEOSEARCH k BYBOX 1 -1 m", Kind::Search),
            "ERR height or width cannot be negative"
        );
        assert_eq!(error("GEOSEARCH k BYRADIUS 1 m STOREDIST", Kind::Search), "ERR syntax error");
    }
}
