//! Geo commands, with Redis 7.0.15's replies, error texts and error order.
//!
//! A geo set is a sorted set (see `crate::geo`), so these commands only add a coordinate layer:
//! GEOADD turns points into scores and then runs ZADD itself — the keyspace event, the reply
//! and the propagated command are ZADD's (`zadd key [options] score member …`, with the name in
//! lower case as Redis writes it); the searches read the set through score ranges; GEORADIUS …
//! STORE and GEOSEARCHSTORE write an ordinary sorted set and are propagated as sent.
//!
//! Reply shapes: a search replies members, or, with WITHDIST / WITHHASH / WITHCOORD, one array
//! per member holding the member, then the distance, the hash and the `[lon, lat]` pair, in
//! that order whatever the order of the options. Distances are bulk strings with four decimals
//! in both protocols; coordinates are `%.17Lf` with trailing zeros trimmed, as bulk strings in
//! RESP2 and as doubles (with that same text) in RESP3.

use bytes::Bytes;
use common::longdouble::LongDouble;
use common::resp::{Frame, Protocol};

use crate::cmd::args::is;
use crate::cmd::flags::*;
use crate::cmd::{cmd, CommandSpec};
use crate::db::zset::{order, Limits, ZSet};
use crate::db::{Sds, Value};
use crate::error::{CmdResult, CommandError};
use crate::exec::Ctx;
use crate::geo::cell::{c_to_i64, decode_score, geohash_string, score_of};
use crate::geo::distance;
use crate::geo::order::by_distance;
use crate::geo::query::{lon_lat, unit, Kind, Query, Sort};
use crate::geo::search::{within, Found};
use crate::notify::class::ZSET;

/// The geo commands. GEORADIUS and GEORADIUSBYMEMBER are writes (they may STORE), so a
/// read-only replica refuses them even without STORE, as Redis does; their `_RO` forms and
/// GEOSEARCH are reads. The STORE destinations are not at fixed positions: the handlers record
/// the key they write (`Ctx::modified`) so that only it is touched for WATCH.
pub static COMMANDS: &[CommandSpec] = &[
    cmd("geoadd", -5, WRITE | DENYOOM, (1, 1, 1), geoadd),
    cmd("geodist", -4, READONLY, (1, 1, 1), geodist),
    cmd("geohash", -2, READONLY, (1, 1, 1), geohash),
    cmd("geopos", -2, READONLY, (1, 1, 1), geopos),
    cmd("georadius", -6, WRITE | DENYOOM, (1, 1, 1), georadius),
    cmd("georadius_ro", -6, READONLY, (1, 1, 1), georadius_ro),
    cmd("georadiusbymember", -5, WRITE | DENYOOM, (1, 1, 1), georadiusbymember),
    cmd("georadiusbymember_ro", -5, READONLY, (1, 1, 1), georadiusbymember_ro),
    cmd("geosearch", -7, READONLY, (1, 1, 1), geosearch),
    cmd("geosearchstore", -8, WRITE | DENYOOM, (1, 2, 1), geosearchstore),
];

/// A coordinate as Redis replies it (`addReplyHumanLongDouble`).
fn coordinate(x: f64, resp3: bool) -> Frame {
    let text = LongDouble::from_f64(x).to_redis_string();
    if resp3 {
        Frame::Raw(Bytes::from(format!(",{text}\r\n")))
    } else {
        Frame::Bulk(Bytes::from(text))
    }
}

fn point(lon: f64, lat: f64, resp3: bool) -> Frame {
    Frame::Array(vec![coordinate(lon, resp3), coordinate(lat, resp3)])
}

fn distance_reply(d: f64) -> Frame {
    Frame::Bulk(Bytes::from(distance::format(d)))
}

// ---------------------------------------------------------------------------------------------
// GEOADD, GEODIST, GEOHASH, GEOPOS.

/// `GEOADD key [NX|XX] [CH] lon lat member …`: checks every point, then runs ZADD with the
/// scores in place of the coordinates.
fn geoadd(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let (mut nx, mut xx) = (false, false);
    let mut first = 2;
    while let Some(opt) = args.get(first) {
        match () {
            _ if is(opt, "nx") => nx = true,
            _ if is(opt, "xx") => xx = true,
            _ if is(opt, "ch") => {}
            _ => break,
        }
        first += 1;
    }
    let points = &args[first..];
    if !points.len().is_multiple_of(3) || (xx && nx) {
        return Err(CommandError::Syntax);
    }
    let mut zadd = Vec::with_capacity(first + points.len() / 3 * 2);
    zadd.push(Bytes::from_static(b"zadd"));
    zadd.extend_from_slice(&args[1..first]);
    for p in points.chunks(3) {
        let (lon, lat) = lon_lat(&p[0], &p[1])?;
        let score = score_of(lon, lat).expect("lon_lat checked the Mercator limits");
        zadd.push(Bytes::from(score.to_string()));
        zadd.push(p[2].clone());
    }
    let spec = crate::cmd::lookup(b"zadd").expect("ZADD is in the command table");
    let reply = (spec.handler)(ctx, &zadd)?;
    ctx.propagate_as(zadd);
    Ok(reply)
}

fn geodist(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let to_unit = match args.len() {
        4 => 1.0,
        5 => unit(&args[4])?,
        _ => return Err(CommandError::Syntax),
    };
    let Some(z) = ctx.read_zset(&args[1])? else { return Ok(Frame::Null) };
    let (Some(a), Some(b)) = (z.score(&args[2]), z.score(&args[3])) else { return Ok(Frame::Null) };
    let ((lon1, lat1), (lon2, lat2)) = (decode_score(a), decode_score(b));
    Ok(distance_reply(distance::between(lon1, lat1, lon2, lat2) / to_unit))
}

fn geohash(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let z = ctx.read_zset(&args[1])?;
    let hashes = args[2..].iter().map(|m| match z.and_then(|z| z.score(m)) {
        Some(score) => {
            let (lon, lat) = decode_score(score);
            Frame::bulk(&geohash_string(lon, lat))
        }
        None => Frame::Null,
    });
    Ok(Frame::Array(hashes.collect()))
}

fn geopos(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let resp3 = ctx.client.resp == Protocol::Resp3;
    let z = ctx.read_zset(&args[1])?;
    let points = args[2..].iter().map(|m| match z.and_then(|z| z.score(m)) {
        Some(score) => {
            let (lon, lat) = decode_score(score);
            point(lon, lat, resp3)
        }
        None => Frame::NullArray,
    });
    Ok(Frame::Array(points.collect()))
}

// ---------------------------------------------------------------------------------------------
// The searches (`georadiusGeneric`).

fn georadius(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    search(ctx, args, Kind::Radius)
}

fn georadius_ro(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    search(ctx, args, Kind::RadiusRo)
}

fn georadiusbymember(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    search(ctx, args, Kind::ByMember)
}

fn georadiusbymember_ro(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    search(ctx, args, Kind::ByMemberRo)
}

fn geosearch(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    search(ctx, args, Kind::Search)
}

fn geosearchstore(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    search(ctx, args, Kind::SearchStore)
}

fn search(ctx: &mut Ctx<'_>, args: &[Bytes], kind: Kind) -> CmdResult {
    let resp3 = ctx.client.resp == Protocol::Resp3;
    // The source is type-checked before any argument is looked at.
    let z = ctx.read_zset(&args[kind.source()])?;
    let q = Query::parse(args, kind, z)?;
    let Some(z) = z else {
        return match q.store {
            Some(dst) => {
                ctx.modified(dst);
                ctx.clear_destination(dst);
                Ok(Frame::Integer(0))
            }
            None => Ok(Frame::Array(Vec::new())),
        };
    };
    let sort = match q.sort {
        // COUNT alone means the nearest ones.
        Sort::Unsorted if q.count > 0 && !q.any => Sort::Asc,
        other => other,
    };
    let found = within(z, &q.shape, if q.any { q.count } else { 0 });
    if found.is_empty() && q.store.is_none() {
        return Ok(Frame::Array(Vec::new()));
    }
    let keep = if q.count == 0 { found.len() } else { found.len().min(q.count) };
    let ordered: Vec<&Found> = match sort {
        Sort::Unsorted => found.iter().take(keep).collect(),
        Sort::Asc | Sort::Desc => {
            let dists: Vec<f64> = found.iter().map(|f| f.dist).collect();
            let idx = by_distance(&dists, sort == Sort::Desc, keep);
            idx.into_iter().take(keep).map(|i| &found[i]).collect()
        }
    };
    match q.store {
        Some(dst) => store(ctx, dst, &ordered, &q, kind),
        None => Ok(Frame::Array(ordered.iter().map(|f| entry(f, &q, resp3)).collect())),
    }
}

/// One search result: the member alone, or `[member, dist?, hash?, [lon, lat]?]`.
fn entry(f: &Found, q: &Query<'_>, resp3: bool) -> Frame {
    if !(q.with_dist || q.with_hash || q.with_coord) {
        return Frame::bulk(&f.member);
    }
    let mut out = vec![Frame::bulk(&f.member)];
    if q.with_dist {
        out.push(distance_reply(f.dist / q.shape.unit));
    }
    if q.with_hash {
        out.push(Frame::Integer(c_to_i64(f.score)));
    }
    if q.with_coord {
        out.push(point(f.lon, f.lat, resp3));
    }
    Frame::Array(out)
}

/// Stores the results at `dst` as a sorted set scored by geohash, or by distance in the
/// query's unit (STOREDIST); an empty result deletes `dst`. Replies with the count.
fn store(ctx: &mut Ctx<'_>, dst: &Bytes, found: &[&Found], q: &Query<'_>, kind: Kind) -> CmdResult {
    let mut entries: Vec<(Sds, f64)> = found
        .iter()
        .map(|f| (f.member.clone(), if q.store_dist { f.dist / q.shape.unit } else { f.score }))
        .collect();
    // Redis stops on an assertion when asked to store a NaN score; we refuse the command
    // instead. A NaN distance needs near-antipodal points whose haversine term rounds to
    // 1 + 2^-51 or more; a search of 2.7 million antipodal cell pairs found none.
    if entries.iter().any(|(_, s)| s.is_nan()) {
        return Err(CommandError::err("resulting score is not a number (NaN)"));
    }
    entries.sort_by(|a, b| order((a.1, &a.0), (b.1, &b.0)));
    let n = entries.len();
    ctx.modified(dst);
    if entries.is_empty() {
        ctx.clear_destination(dst);
    } else {
        ctx.set(dst, Value::ZSet(Box::new(ZSet::from_sorted(entries, Limits::current()))));
        ctx.dirty(n as u64);
        let event = if kind == Kind::SearchStore { "geosearchstore" } else { "georadiusstore" };
        ctx.notify(ZSET, event, dst);
    }
    Ok(Frame::Integer(n as i64))
}

#[cfg(test)]
mod tests {
    use tokio::io::AsyncWriteExt;
    use tokio::net::TcpStream;

    use super::*;
    use crate::testing::{read_frame, TestServer};

    async fn send(s: &mut TcpStream, line: &str) {
        s.write_all(format!("{line}\r\n").as_bytes()).await.expect("write");
    }

    async fn call(s: &mut TcpStream, line: &str) -> Frame {
        send(s, line).await;
        read_frame(s, &mut Vec::new()).await
    }

    fn text(t: &str) -> Frame {
        Frame::bulk(t.as_bytes())
    }

    const ADD: &str = "GEOADD g 13.361389 38.115556 Palermo 15.087269 37.502669 Catania";

    /// GEOADD is written to the AOF (and so to replicas) as the ZADD it ran, with the name in
    /// lower case; the STORE searches as sent; searches without STORE and GEOADDs that change
    /// nothing not at all. The expected bytes are what redis-server 7.0.15 wrote for the same
    /// commands.
    #[tokio::test]
    async fn writes_propagate_as_redis_propagates_them() {
        let dir = tempfile::tempdir().expect("temp dir");
        let config = format!("dir {}\nappendonly yes\nappendfsync always\n", dir.path().display());
        let server = TestServer::start(&config).await;
        // `main` opens the AOF after loading; an in-process server opens it here.
        crate::aof::start(&server.shared, None).expect("open the AOF");
        let mut c = TcpStream::connect(server.addr).await.expect("connect");
        assert_eq!(call(&mut c, ADD).await, Frame::Integer(2));
        assert_eq!(
            call(&mut c, "GEOADD g ch 13.361389 38.115556 Palermo").await,
            Frame::Integer(0)
        );
        let store = "GEOSEARCHSTORE dst g FROMLONLAT 15 37 BYRADIUS 200 km";
        assert_eq!(call(&mut c, store).await, Frame::Integer(2));
        assert_eq!(call(&mut c, "GEORADIUS g 15 37 200 km STORE dst2").await, Frame::Integer(2));
        assert_eq!(call(&mut c, "GEORADIUS g 15 37 1 km STORE dst2").await, Frame::Integer(0));
        assert_eq!(call(&mut c, "GEORADIUS g 15 37 1 km").await, Frame::Array(vec![]));
        let missing = "GEOSEARCHSTORE dst missing FROMLONLAT 0 0 BYRADIUS 1 m";
        assert_eq!(call(&mut c, missing).await, Frame::Integer(0));
        let shared = server.shared.clone();
        server.stop().await;
        crate::aof::close(&shared);

        let aof_dir = dir.path().join("appendonlydir");
        let incr = std::fs::read_dir(&aof_dir)
            .expect("the AOF directory exists")
            .map(|e| e.expect("directory entry").path())
            .find(|p| p.to_string_lossy().ends_with(".incr.aof"))
            .expect("an incremental AOF file");
        let written = std::fs::read(incr).expect("read the AOF");
        let command = |args: &[&str]| {
            let mut out = format!("*{}\r\n", args.len());
            for a in args {
                out.push_str(&format!("${}\r\n{a}\r\n", a.len()));
            }
            out
        };
        let want = [
            command(&["SELECT", "0"]),
            command(&["zadd", "g", "3479099956230698", "Palermo", "3479447370796909", "Catania"]),
            command(&store.split(' ').collect::<Vec<_>>()),
            command(&["GEORADIUS", "g", "15", "37", "200", "km", "STORE", "dst2"]),
            command(&["GEORADIUS", "g", "15", "37", "1", "km", "STORE", "dst2"]),
            command(&missing.split(' ').collect::<Vec<_>>()),
        ]
        .concat();
        assert_eq!(String::from_utf8_lossy(&written), want);
    }

    /// GEOADD's event is ZADD's; the STORE searches name themselves; an empty result deletes
    /// the destination (`del`).
    #[tokio::test]
    async fn keyspace_events_are_redis_events() {
        let server = TestServer::start("notify-keyspace-events KEA\n").await;
        let mut sub = TcpStream::connect(server.addr).await.expect("connect");
        let mut c = TcpStream::connect(server.addr).await.expect("connect");
        let mut buf = Vec::new();
        send(&mut sub, "PSUBSCRIBE __keyevent@0__:*").await;
        read_frame(&mut sub, &mut buf).await;
        assert_eq!(call(&mut c, ADD).await, Frame::Integer(2));
        let store = "GEOSEARCHSTORE dst g FROMLONLAT 15 37 BYRADIUS 200 km";
        assert_eq!(call(&mut c, store).await, Frame::Integer(2));
        assert_eq!(call(&mut c, "GEORADIUS g 15 37 200 km STORE dst2").await, Frame::Integer(2));
        assert_eq!(call(&mut c, "GEORADIUS g 15 37 1 km STOREDIST dst").await, Frame::Integer(0));
        let mut events = Vec::new();
        for _ in 0..4 {
            let Frame::Array(items) = read_frame(&mut sub, &mut buf).await else {
                panic!("a pmessage")
            };
            events.push((items[2].clone(), items[3].clone()));
        }
        let event = |name: &str, key: &str| (text(&format!("__keyevent@0__:{name}")), text(key));
        assert_eq!(
            events,
            [
                event("zadd", "g"),
                event("geosearchstore", "dst"),
                event("georadiusstore", "dst2"),
                event("del", "dst"),
            ]
        );
        server.stop().await;
    }

    /// A read-only replica refuses GEORADIUS and GEORADIUSBYMEMBER (writes, because of STORE)
    /// and serves the `_RO` forms and GEOSEARCH.
    #[tokio::test]
    async fn a_read_only_replica_serves_only_the_read_forms() {
        let server = TestServer::start("").await;
        let mut c = TcpStream::connect(server.addr).await.expect("connect");
        assert_eq!(call(&mut c, ADD).await, Frame::Integer(2));
        assert_eq!(call(&mut c, "REPLICAOF 127.0.0.1 1").await, Frame::ok());
        let readonly = Frame::error("READONLY You can't write against a read only replica.");
        assert_eq!(call(&mut c, "GEORADIUS g 15 37 200 km").await, readonly);
        assert_eq!(call(&mut c, "GEORADIUS g 15 37 200 km STORE d").await, readonly);
        assert_eq!(call(&mut c, "GEORADIUSBYMEMBER g Palermo 1 km").await, readonly);
        assert_eq!(call(&mut c, "GEOADD g 1 1 x").await, readonly);
        assert_eq!(
            call(&mut c, "GEOSEARCHSTORE d g FROMMEMBER Palermo BYRADIUS 1 km").await,
            readonly
        );
        let palermo = Frame::Array(vec![text("Palermo")]);
        assert_eq!(call(&mut c, "GEORADIUS_RO g 13.361389 38.115556 1 km").await, palermo);
        assert_eq!(call(&mut c, "GEORADIUSBYMEMBER_RO g Palermo 1 km").await, palermo);
        assert_eq!(call(&mut c, "GEOSEARCH g FROMMEMBER Palermo BYRADIUS 1 km").await, palermo);
        assert_eq!(call(&mut c, "GEODIST g Palermo Catania km").await, text("166.2742"));
        assert_eq!(call(&mut c, "REPLICAOF NO ONE").await, Frame::ok());
        server.stop().await;
    }
}
