//! The atomics of the lock-free core (the series table, the multiprocess file's publication),
//! from `std`, or from [loom](https://docs.rs/loom) when the crate is built with
//! `RUSTFLAGS="--cfg promtrack_loom"`.
//!
//! Under `cfg(promtrack_loom)` the code that imports its atomics from here is model-checked as
//! it is: loom runs the tests named `loom_*` (see `scripts/soundness.sh`) through every
//! interleaving, and every value a weakly ordered load may return, up to a bound. Only those
//! tests can run in such a build: loom's atomics panic outside a loom model.
//!
//! The flag is not the customary `cfg(loom)`: tokio hides `tokio::net` under `cfg(loom)`, and
//! axum, a dependency here, then fails to build.
//!
//! Invariant: this module only re-exports; the two sets of types have the same API for what
//! the core uses (`new`, `load`, `store`, `swap`).

#[cfg(promtrack_loom)]
pub(crate) use loom::sync::atomic::{AtomicPtr, Ordering};
#[cfg(not(promtrack_loom))]
pub(crate) use std::sync::atomic::{AtomicPtr, Ordering};

// Only the multiprocess file publishes through a `u64`; a build without that feature leaves it
// unused, which is fine (naming the feature here would spread its `cfg`s beyond its seam).
#[cfg(promtrack_loom)]
#[allow(unused_imports)]
pub(crate) use loom::sync::atomic::AtomicU64;
#[cfg(not(promtrack_loom))]
#[allow(unused_imports)]
pub(crate) use std::sync::atomic::AtomicU64;
