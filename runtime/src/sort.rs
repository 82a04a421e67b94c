//! [`sort_by`]: the crate's stable sort for cold paths (the families of a scrape, a family's
//! series created since the last scrape, the multiprocess files, aggregation and compaction),
//! compiled once.
//!
//! Every `slice::sort_by` call site compiles its own copy of the standard library's sort,
//! specialised for its element type and comparator (driftsort: its quicksort, merge and small
//! sorts, 5 to 13 KB of machine code each; promtrack had a dozen). This one sorts a vector of
//! indices through a `dyn` comparator, one instantiation for the whole crate, then moves the
//! elements into that order once. Stable, like `slice::sort_by`. Each comparison costs an
//! indirect call, so hot paths keep the standard sort.

use std::cmp::Ordering;

/// Sorts `v` stably by `cmp`, as `v.sort_by(cmp)` would.
pub(crate) fn sort_by<T>(v: &mut Vec<T>, mut cmp: impl FnMut(&T, &T) -> Ordering) {
    if v.len() < 2 {
        return;
    }
    let order = sorted_indices(v.len(), &mut |a, b| cmp(&v[a], &v[b]));
    let mut slots: Vec<Option<T>> = v.drain(..).map(Some).collect();
    v.extend(order.into_iter().filter_map(|i| slots[i].take()));
}

/// `0..len`, sorted stably by `cmp` on the indices: the one copy of the standard sort.
#[inline(never)]
fn sorted_indices(len: usize, cmp: &mut dyn FnMut(usize, usize) -> Ordering) -> Vec<usize> {
    let mut order: Vec<usize> = (0..len).collect();
    order.sort_by(|&a, &b| cmp(a, b));
    order
}

#[cfg(test)]
mod tests {
    use super::*;

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
    }
}
