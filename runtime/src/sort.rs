//! [`sort_by`]: the crate's stable sort for cold paths (the families of a scrape, a family's
//! series created since the last scrape, the multiprocess files, aggregation and compaction, a
//! native histogram's reduction), compiled once.
//!
//! Every `slice::sort_by` call site compiles its own copy of the standard library's sort,
//! specialised for its element type and comparator (driftsort: its quicksort, merge and small
//! sorts, 5 to 13 KB of machine code each; promtrack had a dozen). This one sorts a vector of
//! indices through a `dyn` comparator, one instantiation for the whole crate, then puts the
//! elements in that order by swaps through a `dyn` closure, also compiled once: per element type
//! only two small closures remain. Stable, like `slice::sort_by`. Each comparison and each swap
//! costs an indirect call, so hot paths keep the standard sort.

use std::cmp::Ordering;

/// Sorts `v` stably by `cmp`, as `v.sort_by(cmp)` would.
pub(crate) fn sort_by<T>(v: &mut [T], mut cmp: impl FnMut(&T, &T) -> Ordering) {
    if v.len() < 2 {
        return;
    }
    let mut order = sorted_indices(v.len(), &mut |a, b| cmp(&v[a], &v[b]));
    // What is generic is only these two closures: the permutation is applied by swaps, in
    // place, by non-generic code.
    permute(&mut order, &mut |a, b| v.swap(a, b));
}

/// `0..len`, sorted stably by `cmp` on the indices: the one copy of the standard sort.
#[inline(never)]
fn sorted_indices(len: usize, cmp: &mut dyn FnMut(usize, usize) -> Ordering) -> Vec<usize> {
    let mut order: Vec<usize> = (0..len).collect();
    order.sort_by(|&a, &b| cmp(a, b));
    order
}

/// Rearranges a slice of `order.len()` elements through `swap` so that position `i` holds the
/// element that was at `order[i]`, one cycle of the permutation at a time (at most one swap
/// per element). Leaves `order` as the identity.
#[inline(never)]
fn permute(order: &mut [usize], swap: &mut dyn FnMut(usize, usize)) {
    for start in 0..order.len() {
        // Position `at` waits for the element at `order[at]`, which is still where it was:
        // the swaps of this cycle only moved the element of `start` along.
        let mut at = start;
        while order[at] != start {
            let from = order[at];
            swap(at, from);
            order[at] = at;
            at = from;
        }
        order[at] = at;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Steps `p` to the next permutation in lexicographic order; `false` after the last.
    fn next_permutation(p: &mut [usize]) -> bool {
        let Some(i) = (1..p.len()).rev().find(|&i| p[i - 1] < p[i]) else {
            return false;
        };
        let j = (i..p.len())
            .rev()
            .find(|&j| p[j] > p[i - 1])
            .expect("p[i] qualifies");
        p.swap(i - 1, j);
        p[i..].reverse();
        true
    }

    #[test]
    fn sorts_stably_like_the_standard_sort() {
        let input: Vec<(u8, usize)> = [3u8, 1, 2, 1, 3, 0, 2, 1]
            .iter()
            .enumerate()
            .map(|(i, &k)| (k, i))
            .collect();
        let mut ours = input.clone();
        sort_by(&mut ours, |a, b| a.0.cmp(&b.0));
        let mut std = input;
        std.sort_by_key(|a| a.0);
        assert_eq!(ours, std);
        assert_eq!(ours[1..4], [(1, 1), (1, 3), (1, 7)]);

        let mut empty: Vec<String> = Vec::new();
        sort_by(&mut empty, |a, b| a.cmp(b));
        assert!(empty.is_empty());
        let mut owned = vec!["b".to_owned(), "a".to_owned()];
        sort_by(&mut owned, |a, b| a.cmp(b));
        assert_eq!(owned, ["a", "b"]);
        // Longer cycles and fixed points: every permutation of five elements, by their ranks.
        let mut perm = [0usize, 1, 2, 3, 4];
        loop {
            let mut v: Vec<(usize, String)> = perm.iter().map(|&k| (k, k.to_string())).collect();
            sort_by(&mut v, |a, b| a.0.cmp(&b.0));
            let keys: Vec<usize> = v.iter().map(|e| e.0).collect();
            assert_eq!(keys, [0, 1, 2, 3, 4], "from {perm:?}");
            assert!(v.iter().all(|(k, s)| *s == k.to_string()));
            if !next_permutation(&mut perm) {
                break;
            }
        }
    }
}
