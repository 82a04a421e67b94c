//! Multiprocess mode needs Unix (memory-mapped files and advisory locks); on this platform
//! [`dir`] returns an error and everything else in promtrack works in single-process mode.

use std::path::Path;

use crate::Error;

/// Always an error on this platform: multiprocess mode needs Unix.
pub fn dir(path: impl AsRef<Path>) -> Result<(), Error> {
    Err(Error::Multiprocess {
        path: path.as_ref().display().to_string(),
        problem:
            "cannot be used: multiprocess mode needs Unix (memory-mapped files and advisory locks)"
                .into(),
        fix: "run the workers on Linux or another Unix, or run a single process".into(),
    })
}

/// Always false on this platform.
pub fn is_enabled() -> bool {
    false
}
