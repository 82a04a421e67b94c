//! Procedural macros for [`promtrack`](https://docs.rs/promtrack).
//!
//! Use them through the `promtrack` crate (`use promtrack as metrics;`), never directly:
//! the code they generate reaches the runtime through `::promtrack::__private`, whose shape is
//! tied to the exact version of this crate.
