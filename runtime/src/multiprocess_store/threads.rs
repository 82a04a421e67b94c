//! A scrape's helper threads, shared by the parallel steps of a multiprocess scrape: copying
//! the files and parsing the copies (`snapshot.rs`), and aggregating their series
//! (`aggregate.rs`, off by default).
//!
//! Invariants:
//! - The work is type-erased (`&dyn Fn`), so the standard library's scoped-thread machinery
//!   (scope, spawn, join, the result packet) is compiled once, not once per caller: a scrape's
//!   threads are cold code, and each copy of that machinery weighs kilobytes in every binary.
//! - Every helper is joined before [`run`] returns; a helper that could not be started or that
//!   panicked is reported, never propagated, so that the caller can redo its share.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, PoisonError};

/// The helper threads' name.
const NAME: &str = "promtrack-scrape";

/// Runs `work(i)` for every `i` in `0..n`: `0` on this thread, the others on helper threads.
/// Returns, per `i`, whether `work(i)` ran to its end: `false` for a helper that could not be
/// started or that panicked (a bug), whose share the caller does again.
pub(super) fn run(n: usize, work: &(dyn Fn(usize) + Sync)) -> Vec<bool> {
    std::thread::scope(|s| {
        let helpers: Vec<_> = (1..n)
            .map(|i| {
                std::thread::Builder::new()
                    .name(NAME.into())
                    .spawn_scoped(s, move || work(i))
                    .ok()
            })
            .collect();
        work(0);
        let mut done = vec![true];
        done.extend(
            helpers
                .into_iter()
                .map(|h| h.is_some_and(|h| h.join().is_ok())),
        );
        done
    })
}

/// Runs `work(state, i)` for every `i` in `0..n` on `threads` threads (this one and helpers,
/// [`run`]), each taking the next `i` as it finishes one, with a `state` of its own from `init`
/// (a buffer kept from item to item); returns the results in `i`'s order, as one thread would.
/// The items of a helper that could not be started or that panicked (a bug) are done again on
/// this thread.
pub(super) fn each<S, T: Send>(
    threads: usize,
    n: usize,
    init: &(dyn Fn() -> S + Sync),
    work: &(dyn Fn(&mut S, usize) -> T + Sync),
) -> Vec<T> {
    let next = AtomicUsize::new(0);
    // Every item done: what a panicked helper took is in no list.
    let taken: Mutex<Vec<(usize, T)>> = Mutex::new(Vec::with_capacity(n));
    let done = run(threads, &|_| {
        let mut state = init();
        let mut mine = Vec::new();
        loop {
            let i = next.fetch_add(1, Ordering::Relaxed);
            if i >= n {
                break;
            }
            mine.push((i, work(&mut state, i)));
        }
        taken
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend(mine);
    });
    let mut taken = taken.into_inner().unwrap_or_else(PoisonError::into_inner);
    if done.contains(&false) {
        let mut have = vec![false; n];
        taken.iter().for_each(|&(i, _)| have[i] = true);
        let mut state = init();
        for i in (0..n).filter(|&i| !have[i]) {
            taken.push((i, work(&mut state, i)));
        }
    }
    crate::sort::sort_by(&mut taken, |a, b| a.0.cmp(&b.0));
    taken.into_iter().map(|(_, t)| t).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_every_share_and_reports_a_panicked_one() {
        let sum = AtomicUsize::new(0);
        let done = run(4, &|i| {
            assert_ne!(i, 2, "a helper that panics");
            sum.fetch_add(1 << i, Ordering::Relaxed);
        });
        assert_eq!(done, [true, true, false, true]);
        assert_eq!(sum.into_inner(), 0b1011);
    }

    /// Every item once, in order, each thread with its own state; a helper that panics has
    /// its items done again here.
    #[test]
    fn each_returns_every_item_in_order_and_redoes_a_panicked_helpers() {
        let got = each(3, 100, &Vec::<usize>::new, &|seen, i| {
            seen.push(i);
            i * 2
        });
        assert_eq!(got, (0..100).map(|i| i * 2).collect::<Vec<_>>());
        let main = std::thread::current().id();
        let got = each(3, 50, &|| (), &|_, i| {
            // Only helpers panic: what they took is done again on this thread.
            assert!(
                std::thread::current().id() == main || i % 2 == 0,
                "a helper's bug"
            );
            i
        });
        assert_eq!(got, (0..50).collect::<Vec<_>>());
    }
}
