//! SORT and SORT_RO: the elements of a list, set or sorted set, ordered numerically or
//! lexicographically, by themselves or by keys named after them (`BY weight_*`,
//! `BY obj_*->field`), with `GET` patterns, LIMIT and STORE — Redis 7.0's rules, including its
//! tie-break (equal weights order by the elements' bytes, so results are deterministic).

use crate::notify::class;
use std::cmp::Ordering;

use bytes::Bytes;
use common::resp::Frame;

use crate::cmd::args::{int, is};
use crate::cmd::flags::*;
use crate::cmd::{cmd, CommandSpec};
use crate::db::list::List;
use crate::db::{Sds, Value};
use crate::error::{CmdResult, CommandError};
use crate::exec::Ctx;

/// SORT and SORT_RO.
pub static COMMANDS: &[CommandSpec] = &[
    cmd("sort", -2, WRITE | DENYOOM, (1, 1, 1), sort),
    cmd("sort_ro", -2, READONLY, (1, 1, 1), sort_ro),
];

/// The options of one SORT.
#[derive(Default)]
struct Options {
    desc: bool,
    alpha: bool,
    /// (offset, count) as given.
    limit: Option<(i64, i64)>,
    store: Option<Bytes>,
    /// The BY pattern, when it has a `*`.
    by: Option<Bytes>,
    /// BY without a `*`: keep the source's order.
    no_sort: bool,
    gets: Vec<Bytes>,
}

fn parse(args: &[Bytes], read_only: bool) -> Result<Options, CommandError> {
    let mut o = Options::default();
    let mut i = 2;
    while i < args.len() {
        let left = args.len() - i - 1;
        let a = &args[i];
        if is(a, "asc") {
            o.desc = false;
        } else if is(a, "desc") {
            o.desc = true;
        } else if is(a, "alpha") {
            o.alpha = true;
        } else if is(a, "limit") && left >= 2 {
            o.limit = Some((int(&args[i + 1])?, int(&args[i + 2])?));
            i += 2;
        } else if is(a, "store") && left >= 1 && !read_only {
            o.store = Some(args[i + 1].clone());
            i += 1;
        } else if is(a, "by") && left >= 1 {
            let pattern = &args[i + 1];
            if pattern.contains(&b'*') {
                o.by = Some(pattern.clone());
                o.no_sort = false;
            } else {
                o.by = None;
                o.no_sort = true;
            }
            i += 1;
        } else if is(a, "get") && left >= 1 {
            o.gets.push(args[i + 1].clone());
            i += 1;
        } else {
            return Err(CommandError::Syntax);
        }
        i += 1;
    }
    Ok(o)
}

/// The value a pattern names for `element` (Redis's `lookupKeyByPattern`): `#` is the
/// element itself; the first `*` is replaced by it; `key->field` reads a hash field. A
/// pattern without `*`, a missing key or one of another type gives nothing.
fn lookup_pattern(ctx: &mut Ctx<'_>, pattern: &[u8], element: &[u8]) -> Option<Sds> {
    if pattern == b"#" {
        return Some(Sds::from_slice(element));
    }
    let star = pattern.iter().position(|&b| b == b'*')?;
    let after = &pattern[star + 1..];
    let (rest, field) = match after.windows(2).position(|w| w == b"->") {
        Some(p) if p + 2 < after.len() => (&after[..p], Some(&after[p + 2..])),
        _ => (after, None),
    };
    let mut key = Vec::with_capacity(pattern.len() + element.len());
    key.extend_from_slice(&pattern[..star]);
    key.extend_from_slice(element);
    key.extend_from_slice(rest);
    match (ctx.lookup_read(&key)?, field) {
        (Value::Hash(h), Some(field)) => h.get(field).cloned(),
        (Value::Str { bytes, .. }, None) => Some(bytes.clone()),
        _ => None,
    }
}

/// A numeric weight as Redis's strtod check reads it: leading blanks allowed, nothing after
/// the number, no overflow; an empty string weighs 0.
fn weight(bytes: &[u8]) -> Option<f64> {
    let trimmed = bytes.trim_ascii_start();
    if trimmed.is_empty() {
        return Some(0.0);
    }
    common::fmt::parse_f64(trimmed)
}

fn sort(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    run(ctx, args, false)
}

fn sort_ro(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    run(ctx, args, true)
}

fn run(ctx: &mut Ctx<'_>, args: &[Bytes], read_only: bool) -> CmdResult {
    let mut o = parse(args, read_only)?;
    // Redis's SORT (and SORT_RO) converts a listpack sorted set to a skiplist before reading it,
    // and leaves it so: OBJECT ENCODING and DUMP show it afterwards.
    if matches!(ctx.lookup_write_ref(&args[1]), Some(Value::ZSet(z)) if z.encoding() == "listpack")
    {
        if let Some(Value::ZSet(z)) = ctx.lookup_write(&args[1]) {
            z.convert_to_skiplist();
        }
    }
    // The elements, in the source's own order.
    let (mut elements, is_set): (Vec<Sds>, bool) = match ctx.lookup_read(&args[1]) {
        None => (Vec::new(), false),
        Some(Value::List(l)) => (l.items.iter().cloned().collect(), false),
        Some(Value::Set(s)) => (s.iter().collect(), true),
        Some(Value::ZSet(z)) => (z.iter().map(|(m, _)| Sds::from_slice(m)).collect(), false),
        Some(_) => return Err(CommandError::WrongType),
    };
    // A set's order is arbitrary: where the result must be the same everywhere (stored, or
    // from a script), it is sorted lexicographically instead.
    if o.no_sort && is_set && (o.store.is_some() || crate::script::is_running()) {
        o.no_sort = false;
        o.alpha = true;
        o.by = None;
    }
    // LIMIT, clamped as Redis clamps it.
    let len = elements.len() as i64;
    let (offset, count) = o.limit.unwrap_or((0, -1));
    let mut start = offset.max(0);
    let mut end = if count < 0 { len - 1 } else { start.saturating_add(count) - 1 };
    if start >= len {
        start = len - 1;
        end = len - 2;
    }
    let end = end.min(len - 1);

    if o.no_sort {
        // Unsorted, lists and sorted sets still honour DESC (their order has a direction).
        if o.desc && !is_set {
            elements.reverse();
        }
    } else {
        // Sort keys: the weights (numeric) or the compared strings (ALPHA).
        let mut keyed: Vec<(Sds, Option<Sds>, f64)> = Vec::with_capacity(elements.len());
        for element in elements {
            let by = match &o.by {
                Some(pattern) => lookup_pattern(ctx, pattern, &element),
                None => None,
            };
            let number = if o.alpha {
                0.0
            } else {
                let source = if o.by.is_some() { by.as_deref() } else { Some(&element[..]) };
                match source {
                    None => 0.0,
                    Some(bytes) => weight(bytes).ok_or_else(|| {
                        CommandError::err("One or more scores can't be converted into double")
                    })?,
                }
            };
            keyed.push((element, by, number));
        }
        let by_pattern = o.by.is_some();
        keyed.sort_by(|a, b| {
            let order = if !o.alpha {
                a.2.partial_cmp(&b.2).unwrap_or(Ordering::Equal).then_with(|| a.0.cmp(&b.0))
            } else if by_pattern {
                // Missing weights sort first.
                match (&a.1, &b.1) {
                    (None, None) => Ordering::Equal,
                    (None, Some(_)) => Ordering::Less,
                    (Some(_), None) => Ordering::Greater,
                    (Some(x), Some(y)) => x.cmp(y),
                }
            } else {
                a.0.cmp(&b.0)
            };
            if o.desc {
                order.reverse()
            } else {
                order
            }
        });
        elements = keyed.into_iter().map(|(e, _, _)| e).collect();
    }

    let picked: Vec<Sds> = if start <= end && start >= 0 {
        elements[start as usize..=end as usize].to_vec()
    } else {
        Vec::new()
    };
    let mut out: Vec<Option<Sds>> = Vec::new();
    for element in &picked {
        if o.gets.is_empty() {
            out.push(Some(element.clone()));
        }
        for pattern in &o.gets {
            out.push(lookup_pattern(ctx, pattern, element));
        }
    }
    let Some(dest) = o.store else {
        return Ok(Frame::Array(
            out.into_iter().map(|v| v.map_or(Frame::Null, |b| Frame::bulk(&b))).collect(),
        ));
    };
    ctx.modified(&dest);
    if out.is_empty() {
        ctx.clear_destination(&dest);
        return Ok(Frame::Integer(0));
    }
    let stored = out.len();
    let mut list = List::default();
    // A missing GET value is stored as an empty string, as in Redis.
    list.items.extend(out.into_iter().map(Option::unwrap_or_default));
    ctx.set(&dest, Value::List(Box::new(list)));
    ctx.dirty(stored as u64);
    ctx.notify(class::LIST, "sortstore", &dest);
    Ok(Frame::Integer(stored as i64))
}
