//! Runnable promtrack examples: see `src/bin/`.
