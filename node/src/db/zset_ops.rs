//! Set algebra over sorted sets and plain sets: ZUNION, ZINTER, ZDIFF, ZINTERCARD and their
//! STORE forms, as Redis's `zunionInterDiffGenericCommand` computes them.
//!
//! Plain sets take part with every score 1. Floating-point sums depend on the order of their
//! terms, so the order is Redis's: inputs sorted by size, smallest first (a stable sort, as
//! glibc's merge-sort `qsort` is), each weighted score added to the running one in that order,
//! and a NaN (`inf + -inf`, `0 * inf`) replaced by 0 at every step.
//!
//! Results come back sorted by (score, member), ready for a reply or [`ZSet::from_sorted`].

use std::collections::HashMap;

use super::super::set::Set;
use super::super::value::Sds;
use super::{order, ZSet};

/// One input of a set operation.
#[derive(Debug, Clone, Copy)]
pub enum Source<'a> {
    /// A key that does not exist: an empty set.
    Missing,
    /// A sorted set.
    ZSet(&'a ZSet),
    /// A plain set: every member scores 1.
    Set(&'a Set),
}

impl Source<'_> {
    fn len(&self) -> usize {
        match self {
            Source::Missing => 0,
            Source::ZSet(z) => z.len(),
            Source::Set(s) => s.len(),
        }
    }

    fn entries(&self) -> Vec<(Sds, f64)> {
        match self {
            Source::Missing => Vec::new(),
            Source::ZSet(z) => z.iter().map(|(m, s)| (Sds::from_slice(m), s)).collect(),
            Source::Set(s) => s.members().into_iter().map(|m| (m, 1.0)).collect(),
        }
    }

    fn find(&self, member: &[u8]) -> Option<f64> {
        match self {
            Source::Missing => None,
            Source::ZSet(z) => z.score(member),
            Source::Set(s) => s.contains(member).then_some(1.0),
        }
    }
}

/// How scores of a member present in several inputs combine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Aggregate {
    /// Add them (the default).
    #[default]
    Sum,
    /// Keep the least.
    Min,
    /// Keep the greatest.
    Max,
}

impl Aggregate {
    /// `zunionInterAggregate`.
    fn apply(self, target: &mut f64, value: f64) {
        match self {
            Aggregate::Sum => {
                *target += value;
                if target.is_nan() {
                    *target = 0.0;
                }
            }
            Aggregate::Min => {
                if value < *target {
                    *target = value;
                }
            }
            Aggregate::Max => {
                if value > *target {
                    *target = value;
                }
            }
        }
    }
}

/// An input with its weight.
#[derive(Debug, Clone, Copy)]
pub struct Weighted<'a> {
    /// The input.
    pub source: Source<'a>,
    /// Its weight (1 unless WEIGHTS says otherwise).
    pub weight: f64,
}

fn weighted(score: f64, weight: f64) -> f64 {
    let v = score * weight;
    if v.is_nan() {
        0.0
    } else {
        v
    }
}

fn by_size(mut inputs: Vec<Weighted<'_>>) -> Vec<Weighted<'_>> {
    inputs.sort_by_key(|w| w.source.len());
    inputs
}

fn sorted(mut entries: Vec<(Sds, f64)>) -> Vec<(Sds, f64)> {
    entries.sort_by(|a, b| order((a.1, &a.0), (b.1, &b.0)));
    entries
}

/// Every member of any input, scores combined with `aggregate`.
pub fn union(inputs: Vec<Weighted<'_>>, aggregate: Aggregate) -> Vec<(Sds, f64)> {
    let inputs = by_size(inputs);
    let mut acc: HashMap<Sds, f64> =
        HashMap::with_capacity(inputs.last().map_or(0, |w| w.source.len()));
    for input in &inputs {
        for (member, score) in input.source.entries() {
            let score = weighted(score, input.weight);
            match acc.get_mut(&member) {
                Some(target) => aggregate.apply(target, score),
                None => {
                    acc.insert(member, score);
                }
            }
        }
    }
    sorted(acc.into_iter().collect())
}

/// Walks the members present in every input (smallest input first), with combined scores,
/// until `visit` returns false.
fn for_each_common(
    inputs: Vec<Weighted<'_>>,
    aggregate: Aggregate,
    mut visit: impl FnMut(Sds, f64) -> bool,
) {
    let inputs = by_size(inputs);
    let Some((first, rest)) = inputs.split_first() else { return };
    'members: for (member, score) in first.source.entries() {
        let mut total = weighted(score, first.weight);
        for other in rest {
            let Some(score) = other.source.find(&member) else { continue 'members };
            // Unlike the first term, later products are not cleaned of NaN before combining.
            aggregate.apply(&mut total, score * other.weight);
        }
        if !visit(member, total) {
            return;
        }
    }
}

/// The members present in every input, scores combined with `aggregate`.
pub fn inter(inputs: Vec<Weighted<'_>>, aggregate: Aggregate) -> Vec<(Sds, f64)> {
    let mut out = Vec::new();
    for_each_common(inputs, aggregate, |m, s| {
        out.push((m, s));
        true
    });
    sorted(out)
}

/// How many members are present in every input, counting no further than `limit` (0: no
/// limit), for ZINTERCARD.
pub fn inter_card(inputs: Vec<Weighted<'_>>, limit: usize) -> usize {
    let mut n = 0;
    for_each_common(inputs, Aggregate::Sum, |_, _| {
        n += 1;
        limit == 0 || n < limit
    });
    n
}

/// The members of the first input found in none of the others, with their scores.
pub fn diff(inputs: &[Source<'_>]) -> Vec<(Sds, f64)> {
    let Some((first, rest)) = inputs.split_first() else { return Vec::new() };
    let out = first
        .entries()
        .into_iter()
        .filter(|(m, _)| rest.iter().all(|o| o.find(m).is_none()))
        .collect();
    sorted(out)
}

#[cfg(test)]
mod tests {
    use super::super::{AddFlags, Limits};
    use super::*;

    fn zset(pairs: &[(&str, f64)]) -> ZSet {
        let mut z = ZSet::default();
        let limits = Limits { entries: 128, value: 64 };
        for (m, s) in pairs {
            z.add(m.as_bytes(), *s, AddFlags::default(), limits).expect("not NaN");
        }
        z
    }

    fn names(v: &[(Sds, f64)]) -> Vec<(String, f64)> {
        v.iter().map(|(m, s)| (String::from_utf8_lossy(m).into_owned(), *s)).collect()
    }

    fn w(z: &ZSet, weight: f64) -> Weighted<'_> {
        Weighted { source: Source::ZSet(z), weight }
    }

    #[test]
    fn union_inter_diff() {
        let a = zset(&[("a", 1.0), ("b", 2.0), ("c", 3.0)]);
        let b = zset(&[("b", 10.0), ("d", 0.5)]);
        let u = union(vec![w(&a, 1.0), w(&b, 2.0)], Aggregate::Sum);
        assert_eq!(
            names(&u),
            [("a".into(), 1.0), ("d".into(), 1.0), ("c".into(), 3.0), ("b".into(), 22.0)]
        );
        let i = inter(vec![w(&a, 1.0), w(&b, 1.0)], Aggregate::Max);
        assert_eq!(names(&i), [("b".into(), 10.0)]);
        let d = diff(&[Source::ZSet(&a), Source::ZSet(&b), Source::Missing]);
        assert_eq!(names(&d), [("a".into(), 1.0), ("c".into(), 3.0)]);
        assert!(inter(
            vec![w(&a, 1.0), Weighted { source: Source::Missing, weight: 1.0 }],
            Aggregate::Sum
        )
        .is_empty());
        assert_eq!(inter_card(vec![w(&a, 1.0), w(&a, 1.0)], 2), 2);
        assert_eq!(inter_card(vec![w(&a, 1.0), w(&a, 1.0)], 0), 3);
    }

    #[test]
    fn infinities_sum_to_zero() {
        let a = zset(&[("x", f64::INFINITY)]);
        let b = zset(&[("x", f64::NEG_INFINITY)]);
        assert_eq!(
            names(&union(vec![w(&a, 1.0), w(&b, 1.0)], Aggregate::Sum)),
            [("x".into(), 0.0)]
        );
        assert_eq!(names(&union(vec![w(&a, 0.0)], Aggregate::Sum)), [("x".into(), 0.0)]);
        assert_eq!(
            names(&inter(vec![w(&a, 1.0), w(&b, 1.0)], Aggregate::Min)),
            [("x".into(), f64::NEG_INFINITY)]
        );
    }
}
