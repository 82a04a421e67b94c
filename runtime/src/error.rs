//! [`Error`]: every configuration problem promtrack reports, each naming the fix.

use std::panic::Location;

/// What can go wrong when declaring, registering or serving metrics.
///
/// Every message names the metric or path concerned and says how to fix the problem. Nothing in
/// a request path returns this: a bad value there is dropped and counted instead.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// A metric's declaration is invalid (its name, label names, buckets...).
    InvalidMetric {
        /// The metric's name.
        name: String,
        /// Where it was declared.
        origin: String,
        /// What is wrong and how to fix it.
        reason: String,
    },
    /// Two declarations clash.
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
    InvalidConfig {
        /// The setting, as the user wrote it.
        setting: String,
        /// What is wrong and how to fix it.
        reason: String,
    },
    /// The multiprocess directory cannot be used (refused by the security checks, missing and
    /// not creatable, switched on too late or twice with different paths, not supported here).
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
    Io {
        /// What was being done, with the path.
        context: String,
        /// The underlying error.
        source: std::io::Error,
    },
}

// Display and `source` by hand: a derive would cost every user's build two crates (thiserror
// and its proc-macro) for these few lines.
impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::InvalidMetric {
                name,
                origin,
                reason,
            } => write!(
                f,
                "metric `{name}` (declared at {origin}) is invalid: {reason}"
            ),
            Error::Conflict {
                name,
                origin,
                existing,
                existing_origin,
                reason,
            } => write!(
                f,
                "metric `{name}` (declared at {origin}) conflicts with `{existing}` (declared at {existing_origin}): {reason}"
            ),
            Error::InvalidConfig { setting, reason } => write!(f, "{setting} is invalid: {reason}"),
            Error::Multiprocess { path, problem, fix } => {
                write!(f, "multiprocess directory {path} {problem}; {fix}")
            }
            #[cfg(feature = "push")]
            Error::Push {
                method,
                url,
                problem,
                ..
            } => write!(f, "Pushgateway {method} {url} failed: {problem}"),
            Error::Io { context, source } => write!(f, "{context}: {source}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// Renders a declaration site as `file:line`.
pub(crate) fn origin(location: &Location<'_>) -> String {
    format!("{}:{}", location.file(), location.line())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::error::Error as _;

    /// The messages as the thiserror derive wrote them, word for word; only `Io` has a source.
    #[test]
    fn messages_and_sources() {
        let s = |v: &str| v.to_owned();
        let cases = [
            (
                Error::InvalidMetric {
                    name: s("a"),
                    origin: s("x.rs:1"),
                    reason: s("why"),
                },
                "metric `a` (declared at x.rs:1) is invalid: why",
            ),
            (
                Error::Conflict {
                    name: s("a"),
                    origin: s("x.rs:1"),
                    existing: s("b"),
                    existing_origin: s("y.rs:2"),
                    reason: s("why"),
                },
                "metric `a` (declared at x.rs:1) conflicts with `b` (declared at y.rs:2): why",
            ),
            (
                Error::InvalidConfig {
                    setting: s("excluded_paths"),
                    reason: s("why"),
                },
                "excluded_paths is invalid: why",
            ),
            (
                Error::Multiprocess {
                    path: s("/d"),
                    problem: s("is missing"),
                    fix: s("create it"),
                },
                "multiprocess directory /d is missing; create it",
            ),
        ];
        for (e, message) in cases {
            assert_eq!(e.to_string(), message);
            assert!(e.source().is_none());
        }
        let io = Error::Io {
            context: s("reading /d/f"),
            source: std::io::Error::other("gone"),
        };
        assert_eq!(io.to_string(), "reading /d/f: gone");
        assert_eq!(io.source().map(ToString::to_string), Some(s("gone")));
    }
}
