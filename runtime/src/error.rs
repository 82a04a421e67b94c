//! [`Error`]: every configuration problem promtrack reports, each naming the fix.

use std::panic::Location;

/// What can go wrong when declaring, registering or serving metrics.
///
/// Every message names the metric or path concerned and says how to fix the problem. Nothing in
/// a request path returns this: a bad value there is dropped and counted instead.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A metric's declaration is invalid (its name, label names, buckets...).
    #[error("metric `{name}` (declared at {origin}) is invalid: {reason}")]
    InvalidMetric {
        /// The metric's name.
        name: String,
        /// Where it was declared.
        origin: String,
        /// What is wrong and how to fix it.
        reason: String,
    },
    /// Two declarations clash.
    #[error(
        "metric `{name}` (declared at {origin}) conflicts with `{existing}` (declared at {existing_origin}): {reason}"
    )]
    Conflict {
        /// The metric being registered.
        name: String,
        /// Where it was declared.
        origin: String,
        /// The metric already registered.
        existing: String,
        /// Where that one was declared.
        existing_origin: String,
        /// How they differ and how to fix it.
        reason: String,
    },
    /// A configuration setting is invalid (an excluded-path pattern that does not compile, a
    /// label that cannot be computed where it is used...).
    #[error("{setting} is invalid: {reason}")]
    InvalidConfig {
        /// The setting, as the user wrote it.
        setting: String,
        /// What is wrong and how to fix it.
        reason: String,
    },
    /// The multiprocess directory cannot be used (refused by the security checks, missing and
    /// not creatable, switched on too late or twice with different paths, not supported here).
    #[error("multiprocess directory {path} {problem}; {fix}")]
    Multiprocess {
        /// The directory.
        path: String,
        /// What is wrong.
        problem: String,
        /// What to do about it.
        fix: String,
    },
    /// A request to a Pushgateway failed (feature `push`): the gateway was not reachable, did
    /// not answer in time, or refused the request; or a pushed series carries a label the
    /// grouping key sets, and nothing was sent.
    #[cfg(feature = "push")]
    #[error("Pushgateway {method} {url} failed: {problem}")]
    Push {
        /// The HTTP method: `PUT` (push), `POST` (push-add) or `DELETE`.
        method: &'static str,
        /// The full URL of the group, as requested.
        url: String,
        /// The status the gateway answered, if it answered at all.
        status: Option<u16>,
        /// What went wrong, with the gateway's own message where it sent one, and how to fix it.
        problem: String,
    },
    /// An I/O error, with the path and what was being done.
    #[error("{context}: {source}")]
    Io {
        /// What was being done, with the path.
        context: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
}

/// Renders a declaration site as `file:line`.
pub(crate) fn origin(location: &Location<'_>) -> String {
    format!("{}:{}", location.file(), location.line())
}
