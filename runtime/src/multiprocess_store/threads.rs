//! A scrape's helper threads, shared by the two parallel steps of a multiprocess scrape: copying
//! the files (`snapshot.rs`, this thread aggregating them meanwhile) and aggregating their
//! series by shares (`aggregate.rs`).
//!
//! Invariants:
//! - The work is type-erased (`&dyn Fn`), so the standard library's scoped-thread machinery
//!   (scope, spawn, join, the result packet) is compiled once, not once per caller: a scrape's
//!   threads are cold code, and each copy of that machinery weighs kilobytes in every binary.
//! - Every helper is joined before [`run`] returns; a helper that could not be started or that
//!   panicked is reported, never propagated, so that the caller can redo its share.

/// The helper threads' name.
const NAME: &str = "promtrack-scrape";

/// Runs `work(i)` for every `i` in `0..n`: `0` on this thread, the others on helper threads.
/// Returns, per `i`, whether `work(i)` ran to its end: `false` for a helper that could not be
/// started or that panicked (a bug), whose share the caller does again.
pub(super) fn run(n: usize, work: &(dyn Fn(usize) + Sync)) -> Vec<bool> {
    run_beside(n, work, &mut || work(0))
}

/// [`run`], with this thread running `own` instead of `work(0)`: work of its own beside the
/// helpers' (a scrape aggregates on it the files the helpers copy, `snapshot.rs`).
pub(super) fn run_beside(
    n: usize,
    work: &(dyn Fn(usize) + Sync),
    own: &mut dyn FnMut(),
) -> Vec<bool> {
    std::thread::scope(|s| {
        let helpers: Vec<_> = (1..n)
            .map(|i| {
                std::thread::Builder::new()
                    .name(NAME.into())
                    .spawn_scoped(s, move || work(i))
                    .ok()
            })
            .collect();
        own();
        let mut done = vec![true];
        done.extend(
            helpers
                .into_iter()
                .map(|h| h.is_some_and(|h| h.join().is_ok())),
        );
        done
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

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
}
