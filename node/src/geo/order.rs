//! The order of search results: by distance, ascending or descending, and — since clients see
//! it — the order among equal distances that Redis's sorting routines leave.
//!
//! Redis sorts all results with the C library's `qsort` when it returns all of them, and with
//! its own partial quicksort (`pqsort`, Bentley & McIlroy's algorithm that only recurses into
//! partitions overlapping the requested prefix) when COUNT keeps fewer. Neither order of ties
//! is specified, but both are deterministic: glibc's `qsort` is a top-down merge sort (stable),
//! and `pqsort` is reproduced here step for step, with the three-way comparator Redis uses
//! (for which a NaN distance compares below everything, both ways).

/// Redis's comparator on distances: 1, 0 or -1.
fn compare(a: f64, b: f64) -> i32 {
    if a > b {
        1
    } else if a == b {
        0
    } else {
        -1
    }
}

/// The order of `dists` by distance (descending if `desc`), as indices: fully sorted when
/// `keep == dists.len()`, otherwise only the first `keep` positions are guaranteed (and are
/// what Redis's partial sort leaves there).
pub fn by_distance(dists: &[f64], desc: bool, keep: usize) -> Vec<usize> {
    let cmp = |a: &usize, b: &usize| {
        let c = compare(dists[*a], dists[*b]);
        if desc {
            -c
        } else {
            c
        }
    };
    let mut order: Vec<usize> = (0..dists.len()).collect();
    if keep >= dists.len() {
        merge_sort(&mut order, &cmp);
    } else if keep > 0 {
        partial_quicksort(&mut order, 0, dists.len(), &cmp, keep - 1);
    }
    order
}

/// glibc's `msort`: split in halves (the first one shorter for odd lengths), sort each, merge
/// taking from the left half while it compares `<= 0`.
fn merge_sort(v: &mut [usize], cmp: &impl Fn(&usize, &usize) -> i32) {
    if v.len() <= 1 {
        return;
    }
    let mid = v.len() / 2;
    merge_sort(&mut v[..mid], cmp);
    merge_sort(&mut v[mid..], cmp);
    let mut merged = Vec::with_capacity(v.len());
    let (mut i, mut j) = (0, mid);
    while i < mid && j < v.len() {
        if cmp(&v[i], &v[j]) <= 0 {
            merged.push(v[i]);
            i += 1;
        } else {
            merged.push(v[j]);
            j += 1;
        }
    }
    merged.extend_from_slice(&v[i..mid]);
    merged.extend_from_slice(&v[j..]);
    v.copy_from_slice(&merged);
}

/// Bentley & McIlroy's median of three, as `pqsort`'s `med3`.
fn median3(
    v: &[usize],
    a: usize,
    b: usize,
    c: usize,
    cmp: &impl Fn(&usize, &usize) -> i32,
) -> usize {
    if cmp(&v[a], &v[b]) < 0 {
        if cmp(&v[b], &v[c]) < 0 {
            b
        } else if cmp(&v[a], &v[c]) < 0 {
            c
        } else {
            a
        }
    } else if cmp(&v[b], &v[c]) > 0 {
        b
    } else if cmp(&v[a], &v[c]) < 0 {
        a
    } else {
        c
    }
}

/// Swaps `v[a..a+n]` with `v[b..b+n]` element by element (the ranges never overlap here).
fn swap_runs(v: &mut [usize], a: usize, b: usize, n: usize) {
    for k in 0..n {
        v.swap(a + k, b + k);
    }
}

/// Redis's `pqsort` over `v[lo..lo+n]`, sorting enough that positions `0..=last` of `v` hold
/// what a full sort would put there: three-way partitioning around a median pivot, equal
/// elements gathered at both ends and swapped to the middle, then only the partitions that
/// overlap `0..=last` are sorted further (the right one by iteration).
fn partial_quicksort(
    v: &mut [usize],
    mut lo: usize,
    mut n: usize,
    cmp: &impl Fn(&usize, &usize) -> i32,
    last: usize,
) {
    loop {
        if n < 7 {
            for m in lo + 1..lo + n {
                let mut l = m;
                while l > lo && cmp(&v[l - 1], &v[l]) > 0 {
                    v.swap(l, l - 1);
                    l -= 1;
                }
            }
            return;
        }
        let mut pm = lo + n / 2;
        if n > 7 {
            let mut pl = lo;
            let mut pn = lo + n - 1;
            if n > 40 {
                let d = n / 8;
                pl = median3(v, pl, pl + d, pl + 2 * d, cmp);
                pm = median3(v, pm - d, pm, pm + d, cmp);
                pn = median3(v, pn - 2 * d, pn - d, pn, cmp);
            }
            pm = median3(v, pl, pm, pn, cmp);
        }
        v.swap(lo, pm);
        let (mut pa, mut pb) = (lo + 1, lo + 1);
        let (mut pc, mut pd) = (lo + n - 1, lo + n - 1);
        loop {
            while pb <= pc {
                let c = cmp(&v[pb], &v[lo]);
                if c > 0 {
                    break;
                }
                if c == 0 {
                    v.swap(pa, pb);
                    pa += 1;
                }
                pb += 1;
            }
            while pb <= pc {
                let c = cmp(&v[pc], &v[lo]);
                if c < 0 {
                    break;
                }
                if c == 0 {
                    v.swap(pc, pd);
                    pd -= 1;
                }
                pc -= 1;
            }
            if pb > pc {
                break;
            }
            v.swap(pb, pc);
            pb += 1;
            pc -= 1;
        }
        let end = lo + n;
        let r = (pa - lo).min(pb - pa);
        swap_runs(v, lo, pb - r, r);
        let r = (pd - pc).min(end - pd - 1);
        swap_runs(v, pb, end - r, r);
        // A partition [start, start+len) is worth sorting if it overlaps positions 0..=last.
        let overlaps = |start: usize| start <= last;
        let left = pb - pa;
        if left > 1 && overlaps(lo) {
            partial_quicksort(v, lo, left, cmp, last);
        }
        let right = pd - pc;
        if right > 1 && overlaps(end - right) {
            lo = end - right;
            n = right;
            continue;
        }
        return;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sorted_dists(dists: &[f64], desc: bool, keep: usize) -> Vec<f64> {
        by_distance(dists, desc, keep).iter().take(keep).map(|&i| dists[i]).collect()
    }

    #[test]
    fn full_sorts_are_stable() {
        let d = [3.0, 1.0, 2.0, 1.0, 3.0, 0.5];
        assert_eq!(by_distance(&d, false, d.len()), [5, 1, 3, 2, 0, 4]);
        assert_eq!(by_distance(&d, true, d.len()), [0, 4, 2, 1, 3, 5]);
    }

    #[test]
    fn partial_sorts_get_the_prefix_right() {
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let dists: Vec<f64> = (0..500)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x % 1000) as f64
            })
            .collect();
        let mut want = dists.clone();
        want.sort_by(|a, b| a.partial_cmp(b).expect("no NaN"));
        for keep in [1, 2, 6, 7, 8, 40, 41, 100, 499] {
            assert_eq!(sorted_dists(&dists, false, keep), want[..keep], "keep {keep}");
        }
        want.reverse();
        assert_eq!(sorted_dists(&dists, true, 50), want[..50]);
    }

    #[test]
    fn nan_distances_do_not_panic() {
        let d = [f64::NAN, 1.0, f64::NAN, 0.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0];
        assert_eq!(by_distance(&d, false, d.len()).len(), d.len());
        assert_eq!(by_distance(&d, false, 3).len(), d.len());
    }
}
