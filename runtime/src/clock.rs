//! The monotonic clock as the hot paths read it: [`Tick`], an integer reading that the layer,
//! the duration attributes and the exemplars' rate limit share.
//!
//! Invariant: every reading comes from one clock with one origin (`CLOCK_MONOTONIC` on Unix,
//! `Instant` from a process-wide origin elsewhere), so two readings subtract, and
//! `exemplar.rs`' coarse milliseconds (the same clock's coarse form on Linux) mix with them.
//! It sits at the bottom of the layers: the exemplars below the request context need it.

#[cfg(not(unix))]
use std::sync::OnceLock;

/// A reading of the monotonic clock in nanoseconds, from an arbitrary origin: the start of a
/// request (the layer) or of a call (`#[histogram]`, `#[summary]`).
///
/// It reads the clock `Instant` reads (`CLOCK_MONOTONIC` on Linux) but keeps the integer:
/// `Instant::elapsed` normalises and overflow-checks a `timespec` pair into a `Duration`, which
/// is then converted to seconds, about 60 instructions per duration that a subtraction of two
/// integers does not need (`scripts/callgrind-layer.sh`; BENCHMARKS.md, *The axum layer*).
#[derive(Clone, Copy, Debug)]
pub struct Tick(u64);

impl Tick {
    /// The clock now.
    #[inline]
    pub fn now() -> Self {
        Self(monotonic_nanos())
    }

    /// The reading, nanoseconds from the clock's origin (exemplars' rate limit reads it as
    /// its clock, `exemplar.rs`).
    #[inline]
    pub(crate) fn nanos(self) -> u64 {
        self.0
    }

    /// Seconds from this reading to now (0 if the clock reads earlier, which a monotonic clock
    /// never does).
    #[inline]
    pub fn seconds_since(self) -> f64 {
        Self::now().seconds_from(self)
    }

    /// Seconds from `start` to this reading (0 if `start` is later): the form for a caller
    /// that keeps the end reading for something else (the layer hands it to the exemplars'
    /// rate limit).
    #[inline]
    pub fn seconds_from(self, start: Tick) -> f64 {
        self.0.saturating_sub(start.0) as f64 / 1e9
    }
}

#[cfg(unix)]
#[inline]
fn monotonic_nanos() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable `timespec` for the call's duration, and
    // `CLOCK_MONOTONIC` exists on every Unix target std supports (it is what std's `Instant`
    // reads on Linux), so the call cannot fail; were it to, `ts` stays zero and a duration
    // reads as 0, never a panic.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    (ts.tv_sec as u64)
        .wrapping_mul(1_000_000_000)
        .wrapping_add(ts.tv_nsec as u64)
}

#[cfg(not(unix))]
#[inline]
fn monotonic_nanos() -> u64 {
    static ORIGIN: OnceLock<std::time::Instant> = OnceLock::new();
    let origin = *ORIGIN.get_or_init(std::time::Instant::now);
    origin.elapsed().as_nanos() as u64
}
