//! Pushing to a Prometheus Pushgateway, for batch jobs that end before anyone scrapes them.
//!
//! A [`Pusher`] names a gateway, a job and an ordered grouping key; it then sends a
//! [`Registry`] with one of the gateway's three verbs:
//!
//! | method | HTTP | what the gateway keeps in the group afterwards |
//! |---|---|---|
//! | [`Pusher::push`] | `PUT` | exactly the pushed families (everything else in the group goes) |
//! | [`Pusher::push_add`] | `POST` | the pushed families, plus every other family already there |
//! | [`Pusher::delete`] | `DELETE` | nothing: the group is removed |
//!
//! These are Python's `push_to_gateway`, `pushadd_to_gateway` and `delete_from_gateway`, and
//! the Go client's `Push`, `Add` and `Delete`. Prometheus should scrape the gateway with
//! `honor_labels: true`, so that the pushed `job` and grouping labels are kept rather than
//! replaced by the gateway's own target labels.
//!
//! Which registry: one of the job's own sends exactly its families. The
//! [default registry](crate::default_registry) also sends every family the macros declared in
//! the binary, promtrack's own `promtrack_*` families and, with feature `process` on Linux, the
//! `process_*` ones, describing a process that is about to exit.
//!
//! ```no_run
//! use promtrack::{Counter, Family, Registry};
//! use promtrack::push::Pusher;
//!
//! // Build the pusher first: a typo in its configuration then fails before the work does.
//! let pusher = Pusher::new("http://pushgateway:9091", "nightly_import")?
//!     .grouping("instance", "import-1")?;
//!
//! let registry = Registry::new();
//! let rows = Family::<(), Counter>::new("import_rows_total", "Rows imported.");
//! registry.register(&rows)?;
//! rows.inc_by(1234.0);
//!
//! pusher.push(&registry)?;
//! # Ok::<(), promtrack::Error>(())
//! ```
//!
//! # What is sent
//!
//! The body is the registry encoded by [`expose::encode`] in text format
//! 0.0.4 — the same bytes a scrape of it would return — so a family reads the same on the
//! gateway as on a `/metrics` endpoint; [`Pusher::gzip`] compresses it. The URL is `<gateway>/metrics/job/<job>/<name>/<value>…`
//! with the grouping labels in the order they were given. A job name or label value that is
//! empty, or holds anything but ASCII letters, digits and `-._~`, is sent in base64url with the
//! `@base64` suffix on its name, as the Pushgateway's URL scheme defines: a `/` could not appear
//! in a path segment otherwise, an empty segment would vanish, `.` and `..` would be collapsed by
//! path normalisation, and percent-decoding differs between proxies.
//!
//! # Checked before anything is sent
//!
//! - The gateway URL (`http://` or `https://`, a host, no query, no credentials in it), the job
//!   name (not empty) and the grouping label names (valid Prometheus label names, none given
//!   twice, not `job`): when the [`Pusher`] is built, as [`Error::InvalidConfig`].
//! - That no pushed series carries `job` or a grouping label itself: at each push, as
//!   [`Error::Push`]. The gateway would not refuse such a push; it would silently overwrite the
//!   series' value with the grouping key's, merging series that were distinct (the Go client
//!   refuses it too).
//!
//! # Errors
//!
//! Every failure of the exchange is an [`Error::Push`] naming the method and full URL: a gateway
//! that is not reachable (connection refused, host not found), one that did not answer within
//! the [timeout](Pusher::timeout) (10 s by default), and any answer that is not `2xx`, with its
//! status and the first 4 KiB of the gateway's own message (for a `400`, which family was
//! inconsistent and why).
//!
//! # The HTTP client, and TLS
//!
//! Pushing is blocking: a batch job pushes once, at its end, and has nothing else to do while it
//! waits, so it should not need an async runtime for it. (From async code, call it inside
//! `tokio::task::spawn_blocking` or its equivalent, so the runtime's threads are not held.) The client is `ureq` with its default
//! features off: feature `push` speaks plain HTTP and adds ureq and seven small crates
//! (`ureq-proto`, `http`, `httparse`, `bytes`, `base64`, `log`, `utf8-zero`; over the default
//! features, which already have the middle four, only three), no TLS stack and no async
//! runtime. `https://` gateways need feature `push-tls`, which turns on ureq's rustls support
//! with the Mozilla root certificates: eleven crates more, among them ring, whose C and assembly
//! make it most of the compile time, for what is usually a plain-HTTP gateway inside a cluster.
//! Without it, an `https://` URL is refused when the [`Pusher`] is built, with that fix in the
//! message, rather than failing later at the handshake. Proxies are taken from the usual
//! `HTTP_PROXY`/`HTTPS_PROXY`/`ALL_PROXY` and `NO_PROXY` environment variables; redirects are
//! not followed (a `PUT` body cannot be replayed safely), and a `3xx` is reported with its
//! `Location`.

use std::fmt;
use std::io::Read;
use std::time::Duration;

use base64::Engine;

use crate::Registry;
use crate::error::Error;
use crate::expose::{self, Format};
use crate::labels::is_valid_label_name;

/// How long a request may take, connection included, unless [`Pusher::timeout`] says otherwise.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// How much of a refusing gateway's answer goes into the error (its messages are one line).
const MAX_ERROR_BODY: u64 = 4096;

/// A Pushgateway client for one job and grouping key.
///
/// Build it with [`Pusher::new`] and the builder methods, then call [`push`](Self::push),
/// [`push_add`](Self::push_add) or [`delete`](Self::delete) as often as needed; it keeps its
/// connections open between calls. Its `Debug` output never shows credentials.
///
/// ```no_run
/// use std::time::Duration;
/// use promtrack::push::Pusher;
///
/// let pusher = Pusher::new("pushgateway.internal:9091", "backup")?
///     .grouping("instance", "db-1")?
///     .grouping("path", "/var/lib/db")? // sent base64-encoded: it holds '/'
///     .basic_auth("pusher", "s3cret")
///     .timeout(Duration::from_secs(5));
/// assert_eq!(
///     pusher.url(),
///     "http://pushgateway.internal:9091/metrics/job/backup/instance/db-1/path@base64/L3Zhci9saWIvZGI="
/// );
/// pusher.push(promtrack::default_registry())?;
/// # Ok::<(), promtrack::Error>(())
/// ```
#[derive(Clone)]
pub struct Pusher {
    /// `<gateway>/metrics/job/<job>[/<name>/<value>]…`, encoded.
    url: String,
    grouping: Vec<(String, String)>,
    /// The `Authorization` header value; a secret.
    authorization: Option<String>,
    headers: Vec<(ureq::http::HeaderName, ureq::http::HeaderValue)>,
    timeout: Duration,
    gzip: bool,
    agent: ureq::Agent,
}

impl fmt::Debug for Pusher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pusher")
            .field("url", &self.url)
            .field("authorization", &self.authorization.as_ref().map(|_| ".."))
            .field(
                "headers",
                &self.headers.iter().map(|(n, _)| n).collect::<Vec<_>>(),
            )
            .field("timeout", &self.timeout)
            .field("gzip", &self.gzip)
            .finish_non_exhaustive()
    }
}

impl Pusher {
    /// A pusher for `job` on the gateway at `gateway`.
    ///
    /// `gateway` is the gateway's base URL: `http://host:9091`, `host:9091` (`http://` is
    /// assumed), or with a path prefix if the gateway runs under one
    /// (`http://host/pushgateway`) — never with `/metrics/job/…`, which this adds.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] when the URL has another scheme, no host, a query, a fragment or
    /// credentials (use [`basic_auth`](Self::basic_auth)), is `https://` without feature
    /// `push-tls`, or when `job` is empty.
    ///
    /// ```
    /// use promtrack::push::Pusher;
    ///
    /// let pusher = Pusher::new("127.0.0.1:9091/", "nightly/etl")?;
    /// assert_eq!(pusher.url(), "http://127.0.0.1:9091/metrics/job@base64/bmlnaHRseS9ldGw=");
    ///
    /// let err = Pusher::new("ftp://gateway:9091", "etl").unwrap_err();
    /// assert!(err.to_string().contains("http://"));
    /// # Ok::<(), promtrack::Error>(())
    /// ```
    pub fn new(gateway: impl AsRef<str>, job: impl AsRef<str>) -> Result<Self, Error> {
        let base = gateway_base(gateway.as_ref())?;
        let job = job.as_ref();
        if job.is_empty() {
            return Err(Error::InvalidConfig {
                setting: "Pushgateway job name \"\"".to_owned(),
                reason: "the gateway requires a job name; give the batch job's name, \
                         e.g. Pusher::new(url, \"nightly_import\")"
                    .to_owned(),
            });
        }
        let mut url = format!("{base}/metrics");
        push_segment(&mut url, "job", job);
        Ok(Self {
            url,
            grouping: Vec::new(),
            authorization: None,
            headers: Vec::new(),
            timeout: DEFAULT_TIMEOUT,
            gzip: false,
            agent: agent(DEFAULT_TIMEOUT),
        })
    }

    /// Adds a label to the grouping key, after those added before.
    ///
    /// The gateway stores each job and grouping key as one group, and adds these labels to
    /// every series of the group when Prometheus scrapes it; `instance` is the usual one. Any
    /// value is allowed, including an empty one and one holding `/`.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] when `name` is not a valid label name (`[a-zA-Z_][a-zA-Z0-9_]*`,
    /// not starting with `__`), is `job`, or was already added.
    ///
    /// ```
    /// use promtrack::push::Pusher;
    ///
    /// let pusher = Pusher::new("http://gw:9091", "etl")?
    ///     .grouping("instance", "etl-1")?
    ///     .grouping("shard", "")?; // empty: sent as `shard@base64/=`
    /// assert_eq!(pusher.url(), "http://gw:9091/metrics/job/etl/instance/etl-1/shard@base64/=");
    ///
    /// let err = Pusher::new("http://gw:9091", "etl")?.grouping("data-center", "eu").unwrap_err();
    /// assert!(err.to_string().contains("data_center"));
    /// # Ok::<(), promtrack::Error>(())
    /// ```
    pub fn grouping(
        mut self,
        name: impl AsRef<str>,
        value: impl AsRef<str>,
    ) -> Result<Self, Error> {
        let (name, value) = (name.as_ref(), value.as_ref());
        let invalid = |reason: String| Error::InvalidConfig {
            setting: format!("Pushgateway grouping label `{name}`"),
            reason,
        };
        if name == "job" {
            return Err(invalid(
                "the job is the first part of every grouping key; give it to Pusher::new, \
                 not to grouping()"
                    .to_owned(),
            ));
        }
        if !is_valid_label_name(name) {
            let suggestion: String = name
                .trim_start_matches('_')
                .chars()
                .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
                .collect();
            return Err(invalid(format!(
                "label names match [a-zA-Z_][a-zA-Z0-9_]* and must not start with `__` \
                 (reserved for Prometheus); rename it, e.g. `{suggestion}`"
            )));
        }
        if self.grouping.iter().any(|(n, _)| n == name) {
            return Err(invalid(
                "it is already in the grouping key; give each label once".to_owned(),
            ));
        }
        push_segment(&mut self.url, name, value);
        self.grouping.push((name.to_owned(), value.to_owned()));
        Ok(self)
    }

    /// Sends HTTP basic authentication with every request (the gateway's `--web.config.file`
    /// `basic_auth_users`), replacing any earlier [`basic_auth`](Self::basic_auth) or
    /// [`bearer_auth`](Self::bearer_auth).
    pub fn basic_auth(mut self, user: impl AsRef<str>, password: impl AsRef<str>) -> Self {
        let credentials = format!("{}:{}", user.as_ref(), password.as_ref());
        let encoded = base64::engine::general_purpose::STANDARD.encode(credentials);
        self.authorization = Some(format!("Basic {encoded}"));
        self
    }

    /// Sends `Authorization: Bearer <token>` with every request (for a gateway behind a proxy
    /// that checks tokens), replacing any earlier [`basic_auth`](Self::basic_auth) or
    /// [`bearer_auth`](Self::bearer_auth). Surrounding whitespace is dropped, such as the line
    /// feed that ends a token read from a file.
    pub fn bearer_auth(mut self, token: impl AsRef<str>) -> Self {
        self.authorization = Some(format!("Bearer {}", token.as_ref().trim()));
        self
    }

    /// Sends a header of your own with every request (a tenant id, a proxy's token).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] when `name` is not a valid header name or `value` holds a
    /// control character (such as a line feed) or a character outside ASCII.
    ///
    /// ```
    /// use promtrack::push::Pusher;
    ///
    /// let pusher = Pusher::new("http://gw:9091", "etl")?.header("X-Scope-OrgID", "team-a")?;
    /// assert!(Pusher::new("http://gw:9091", "etl")?.header("X Bad", "v").is_err());
    /// # Ok::<(), promtrack::Error>(())
    /// ```
    pub fn header(mut self, name: impl AsRef<str>, value: impl AsRef<str>) -> Result<Self, Error> {
        let (name, value) = (name.as_ref(), value.as_ref());
        let setting = || format!("Pushgateway request header `{name}`");
        let header_name = ureq::http::HeaderName::from_bytes(name.as_bytes()).map_err(|_| {
            Error::InvalidConfig {
                setting: setting(),
                reason: "a header name is a token of letters, digits and !#$%&'*+-.^_`|~; \
                             fix its spelling"
                    .to_owned(),
            }
        })?;
        let header_value =
            ureq::http::HeaderValue::from_str(value).map_err(|_| Error::InvalidConfig {
                setting: setting(),
                reason: "its value holds a character a header cannot carry (a line feed, another \
                         control character, or one outside ASCII); remove it"
                    .to_owned(),
            })?;
        self.headers.push((header_name, header_value));
        Ok(self)
    }

    /// How long one request may take in all, connecting included ([`DEFAULT_TIMEOUT`], 10 s,
    /// unless set).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self.agent = agent(timeout);
        self
    }

    /// Compresses pushed bodies with gzip (`Content-Encoding: gzip`; off by default), for large
    /// registries or slow links. (Tested against Pushgateway 1.5, which accepts them.)
    #[cfg(feature = "gzip")]
    pub fn gzip(mut self, on: bool) -> Self {
        self.gzip = on;
        self
    }

    /// The URL of this job's group on the gateway, as requests use it.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The grouping labels, in order (the job is not among them).
    pub fn grouping_labels(&self) -> &[(String, String)] {
        &self.grouping
    }

    /// Replaces everything in this group with the families of `registry` (HTTP `PUT`).
    ///
    /// Families pushed earlier to this group and absent from `registry` are gone afterwards;
    /// other groups, of this job or others, are untouched.
    ///
    /// # Errors
    ///
    /// [`Error::Push`] when a series carries `job` or a grouping label (nothing is sent then),
    /// when the gateway cannot be reached or does not answer in time, or when it answers other
    /// than `2xx` (the error has its status and message).
    pub fn push(&self, registry: &Registry) -> Result<(), Error> {
        self.send(Method::Put, registry)
    }

    /// Replaces, in this group, only the families `registry` holds (HTTP `POST`); the group's
    /// other families stay. Python's `pushadd_to_gateway`, Go's `Pusher.Add`.
    ///
    /// # Errors
    ///
    /// As for [`push`](Self::push).
    pub fn push_add(&self, registry: &Registry) -> Result<(), Error> {
        self.send(Method::Post, registry)
    }

    /// Deletes this group, every family in it, from the gateway (HTTP `DELETE`). Deleting a
    /// group that does not exist succeeds.
    ///
    /// # Errors
    ///
    /// [`Error::Push`] when the gateway cannot be reached or does not answer in time, or
    /// answers other than `2xx`.
    pub fn delete(&self) -> Result<(), Error> {
        let request = self.with_headers(self.agent.delete(&self.url));
        self.finish(Method::Delete, request.call())
    }

    fn send(&self, method: Method, registry: &Registry) -> Result<(), Error> {
        let mut body = Vec::with_capacity(4 * 1024);
        expose::encode(registry, Format::Text, &mut body);
        if let Some(problem) = self.label_clash(&body) {
            return Err(self.error(method, None, problem));
        }
        // Only `push` (PUT) and `push_add` (POST) send a body.
        let request = if matches!(method, Method::Put) {
            self.agent.put(&self.url)
        } else {
            self.agent.post(&self.url)
        };
        let request = self
            .with_headers(request)
            .header("Content-Type", Format::Text.content_type());
        #[cfg(feature = "gzip")]
        // A compressor failure (`None`) sends the body as it is.
        let (body, request) = match self.gzip.then(|| expose::gzip::gzip_bytes(&body)).flatten() {
            Some(gz) => (gz, request.header("Content-Encoding", "gzip")),
            None => (body, request),
        };
        self.finish(method, request.send(&body[..]))
    }

    fn with_headers<B>(&self, mut request: ureq::RequestBuilder<B>) -> ureq::RequestBuilder<B> {
        for (name, value) in &self.headers {
            request = request.header(name, value);
        }
        if let Some(authorization) = &self.authorization {
            request = request.header("Authorization", authorization);
        }
        request
    }

    fn finish(
        &self,
        method: Method,
        outcome: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
    ) -> Result<(), Error> {
        let mut response = outcome.map_err(|e| self.error(method, None, self.explain(&e)))?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        let mut text = Vec::new();
        // The body only explains the failure; if it cannot be read, the status still does.
        let _ = response
            .body_mut()
            .as_reader()
            .take(MAX_ERROR_BODY)
            .read_to_end(&mut text);
        let text = String::from_utf8_lossy(&text);
        let text = text.trim();
        let mut problem = format!("the gateway answered {status}");
        if !text.is_empty() {
            problem.push_str(": ");
            problem.push_str(text);
        }
        problem.push_str("; ");
        problem.push_str(&match status.as_u16() {
            401 | 403 => "check the credentials given to Pusher::basic_auth or bearer_auth \
                          against the gateway's --web.config.file"
                .to_owned(),
            404 | 405 => "check that the URL given to Pusher::new is the gateway's base URL \
                          (with its --web.route-prefix, if any, and without /metrics/job/…)"
                .to_owned(),
            300..=399 => {
                let location = response
                    .headers()
                    .get("Location")
                    .and_then(|l| l.to_str().ok())
                    .unwrap_or("(no Location header)");
                format!(
                    "redirects are not followed; give Pusher::new the URL it points to: {location}"
                )
            }
            400..=499 => "the gateway refused these metrics; its message above says which \
                          family and why (a type or help text that differs from what another \
                          group pushed under the same name is the usual cause)"
                .to_owned(),
            _ => "the gateway failed; see its log".to_owned(),
        });
        Err(self.error(method, Some(status.as_u16()), problem))
    }

    /// Why a request got no answer, in words that say what to check.
    fn explain(&self, error: &ureq::Error) -> String {
        use std::io::ErrorKind;
        match error {
            ureq::Error::Io(io) if io.kind() == ErrorKind::ConnectionRefused => {
                "the gateway is not reachable (connection refused); check that the Pushgateway \
                 is running and listening at this address"
                    .to_owned()
            }
            // rustls reports a failed handshake through the stream, as invalid data.
            ureq::Error::Io(io)
                if io.kind() == ErrorKind::InvalidData && self.url.starts_with("https://") =>
            {
                format!(
                    "the TLS handshake with the gateway failed ({io}); check that it serves \
                     https:// on this port with a certificate from a public authority, or use \
                     http://"
                )
            }
            ureq::Error::Io(io) => format!(
                "the gateway is not reachable ({io}); check that the Pushgateway is running and \
                 the network path to it"
            ),
            ureq::Error::HostNotFound => "the gateway's host name does not resolve; check the \
                                          URL given to Pusher::new"
                .to_owned(),
            ureq::Error::ConnectionFailed => "the gateway is not reachable (the connection \
                                              failed); check that the Pushgateway is running \
                                              and listening at this address"
                .to_owned(),
            ureq::Error::Http(http) => format!(
                "the request could not be built ({http}); check the token given to \
                 Pusher::bearer_auth, which must be printable ASCII"
            ),
            ureq::Error::Timeout(_) => format!(
                "the gateway did not answer within {:?}; check that it is healthy, or allow more \
                 time with Pusher::timeout",
                self.timeout
            ),
            #[cfg(feature = "push-tls")]
            ureq::Error::Rustls(tls) => format!(
                "the TLS handshake with the gateway failed ({tls}); check that it serves https:// \
                 on this port with a certificate from a public authority, or use http://"
            ),
            ureq::Error::Tls(tls) => format!(
                "the TLS handshake with the gateway failed ({tls}); check that it serves https:// \
                 on this port, or use http://"
            ),
            other => format!("{other}"),
        }
    }

    /// Explains the first series in `body` (text format 0.0.4) that carries `job` or a
    /// grouping label.
    fn label_clash(&self, body: &[u8]) -> Option<String> {
        // The encoder writes only UTF-8.
        let text = std::str::from_utf8(body).ok()?;
        let taken = |label: &str| label == "job" || self.grouping.iter().any(|(n, _)| n == label);
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let Some(label) = label_names(line).find(|l| taken(l)) else {
                continue;
            };
            let series = line.rsplit_once(' ').map_or(line, |(s, _)| s);
            let series = truncate(series, 200);
            return Some(if label == "job" {
                format!(
                    "series `{series}` has a label `job`, which the gateway would overwrite with \
                     the job name; rename that label"
                )
            } else {
                format!(
                    "series `{series}` has the label `{label}`, which is also in the grouping \
                     key; the gateway would overwrite its value with the grouping key's and \
                     merge series that differ only there. Remove `{label}` from the series or \
                     from the grouping key"
                )
            });
        }
        None
    }

    fn error(&self, method: Method, status: Option<u16>, problem: String) -> Error {
        Error::Push {
            method: method.as_str(),
            url: self.url.clone(),
            status,
            problem,
        }
    }
}

#[derive(Clone, Copy)]
enum Method {
    Put,
    Post,
    Delete,
}

impl Method {
    fn as_str(self) -> &'static str {
        match self {
            Method::Put => "PUT",
            Method::Post => "POST",
            Method::Delete => "DELETE",
        }
    }
}

fn agent(timeout: Duration) -> ureq::Agent {
    ureq::Agent::config_builder()
        .timeout_global(Some(timeout))
        // Statuses are read, not turned into errors: a refusal's body is the explanation.
        .http_status_as_error(false)
        .max_redirects(0)
        .max_redirects_will_error(false)
        .user_agent(concat!("promtrack/", env!("CARGO_PKG_VERSION")))
        .build()
        .into()
}

/// Checks the gateway URL and returns it with a scheme and without a trailing `/`.
fn gateway_base(gateway: &str) -> Result<String, Error> {
    let invalid = |reason: &str| Error::InvalidConfig {
        setting: format!("Pushgateway URL `{gateway}`"),
        reason: reason.to_owned(),
    };
    let trimmed = gateway.trim();
    let with_scheme = if trimmed.contains("://") {
        trimmed.to_owned()
    } else {
        format!("http://{trimmed}")
    };
    let (scheme, rest) = with_scheme.split_once("://").unwrap_or_default();
    let scheme = scheme.to_ascii_lowercase();
    match scheme.as_str() {
        "http" => {}
        "https" if cfg!(feature = "push-tls") => {}
        "https" => {
            return Err(invalid(
                "https:// needs promtrack's `push-tls` feature (features = [\"push-tls\"] in \
                 Cargo.toml); or use the gateway's http:// address",
            ));
        }
        _ => {
            return Err(invalid(
                "the gateway is reached over http:// or https://; write e.g. http://host:9091",
            ));
        }
    }
    if rest.contains(['?', '#']) {
        return Err(invalid(
            "it has a query or fragment; give the gateway's base URL only, e.g. http://host:9091",
        ));
    }
    let authority = rest.split('/').next().unwrap_or_default();
    if authority.contains('@') {
        return Err(invalid(
            "credentials in the URL are not sent; remove them and use Pusher::basic_auth",
        ));
    }
    if authority.is_empty() || authority.starts_with(':') {
        return Err(invalid("it has no host; write e.g. http://host:9091"));
    }
    let base = format!("{scheme}://{}", rest.trim_end_matches('/'));
    if ureq::http::Uri::try_from(format!("{base}/metrics")).is_err() {
        return Err(invalid(
            "it is not a valid URL (a space or other character that must be escaped?)",
        ));
    }
    Ok(base)
}

/// Appends `/<name>/<value>`, or `/<name>@base64/<base64url(value)>` when the value is not
/// made only of characters that every URL parser and proxy leaves alone.
fn push_segment(url: &mut String, name: &str, value: &str) {
    let plain = !value.is_empty()
        && value != "."
        && value != ".."
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'));
    url.push('/');
    url.push_str(name);
    if plain {
        url.push('/');
        url.push_str(value);
    } else {
        url.push_str("@base64/");
        if value.is_empty() {
            // The gateway's spelling of an empty value: a path segment cannot be empty.
            url.push('=');
        } else {
            base64::engine::general_purpose::URL_SAFE.encode_string(value, url);
        }
    }
}

/// The label names of one sample line of text format 0.0.4 (`name{a="x",b="y"} 1`).
fn label_names(line: &str) -> impl Iterator<Item = &str> {
    let mut rest = match line.find(['{', ' ']) {
        Some(i) if line.as_bytes()[i] == b'{' => &line[i + 1..],
        _ => "",
    };
    std::iter::from_fn(move || {
        let (name, after) = rest.split_once("=\"")?;
        let name = name.trim_start_matches(',');
        if name.is_empty() || name.starts_with('}') {
            return None;
        }
        // Skip the escaped value up to its closing quote.
        let mut escaped = false;
        let end = after.char_indices().find_map(|(i, c)| {
            let close = c == '"' && !escaped;
            escaped = c == '\\' && !escaped;
            close.then_some(i)
        })?;
        rest = &after[end + 1..];
        Some(name)
    })
}

fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_owned();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_outside_the_unreserved_set_are_base64url() {
        let url = |v: &str| {
            let mut s = String::new();
            push_segment(&mut s, "l", v);
            s
        };
        assert_eq!(url("batch-1"), "/l/batch-1");
        assert_eq!(url("a.b_c~d"), "/l/a.b_c~d");
        assert_eq!(url(""), "/l@base64/=");
        assert_eq!(url("a/b"), "/l@base64/YS9i");
        assert_eq!(url("."), "/l@base64/Lg==");
        assert_eq!(url(".."), "/l@base64/Li4=");
        assert_eq!(url("x y"), "/l@base64/eCB5");
        // URL-safe alphabet: '-' and '_' where standard base64 has '+' and '/'.
        assert_eq!(url("\u{fb}\u{ef}"), "/l@base64/w7vDrw==");
        assert_eq!(url(">>>?"), "/l@base64/Pj4-Pw==");
        assert_eq!(url("???"), "/l@base64/Pz8_");
    }

    #[test]
    fn gateway_urls_are_checked_and_normalised() {
        assert_eq!(
            gateway_base("127.0.0.1:9091").unwrap(),
            "http://127.0.0.1:9091"
        );
        assert_eq!(
            gateway_base(" HTTP://gw:9091// ").unwrap(),
            "http://gw:9091"
        );
        assert_eq!(
            gateway_base("http://gw/prefix/").unwrap(),
            "http://gw/prefix"
        );
        let reason = |u: &str| gateway_base(u).unwrap_err().to_string();
        assert!(
            reason("ftp://gw").contains("http://"),
            "{}",
            reason("ftp://gw")
        );
        assert!(reason("http://").contains("no host"));
        assert!(reason("http://:9091").contains("no host"));
        assert!(reason("http://gw:9091/?x=1").contains("query"));
        assert!(reason("http://u:p@gw:9091").contains("basic_auth"));
        assert!(reason("http://g w:9091").contains("not a valid URL"));
        if cfg!(feature = "push-tls") {
            assert_eq!(gateway_base("https://gw").unwrap(), "https://gw");
        } else {
            assert!(reason("https://gw").contains("push-tls"));
        }
    }

    #[test]
    fn job_and_grouping_names_are_checked() {
        let err = Pusher::new("gw:9091", "").unwrap_err().to_string();
        assert!(err.contains("job name"), "{err}");
        let pusher = || Pusher::new("gw:9091", "j").unwrap();
        let err = |name: &str| pusher().grouping(name, "v").unwrap_err().to_string();
        assert!(err("job").contains("Pusher::new"));
        assert!(err("__meta").contains("__"));
        assert!(err("0day").contains("rename"));
        assert!(
            err("data-center").contains("`data_center`"),
            "{}",
            err("data-center")
        );
        let twice = pusher()
            .grouping("a", "1")
            .unwrap()
            .grouping("a", "2")
            .unwrap_err();
        assert!(twice.to_string().contains("already"), "{twice}");
        assert!(matches!(twice, Error::InvalidConfig { .. }));
    }

    #[test]
    fn label_names_are_read_from_sample_lines() {
        fn names(line: &str) -> Vec<&str> {
            label_names(line).collect()
        }
        assert!(names("x 1").is_empty());
        assert!(names("x{} 1").is_empty());
        assert_eq!(names(r#"x{a="1",b="2"} 3"#), ["a", "b"]);
        assert_eq!(names(r#"x{a="q\"b=\"c",b="\\"} 3"#), ["a", "b"]);
        assert_eq!(names(r#"x_bucket{le="+Inf"} 3"#), ["le"]);
        assert_eq!(names(r#"x{a="{,}=\"",b=""} 3"#), ["a", "b"]);
    }

    /// `https://` against a port that speaks plain HTTP: the handshake fails, and says so.
    #[cfg(feature = "push-tls")]
    #[test]
    fn a_failed_tls_handshake_is_named() {
        use std::io::Write;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let server = std::thread::spawn(move || {
            let (mut stream, _) = listener.accept().unwrap();
            let _ = stream.write_all(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n");
        });
        let err = Pusher::new(format!("https://{addr}"), "j")
            .unwrap()
            .timeout(Duration::from_secs(5))
            .delete()
            .unwrap_err();
        server.join().unwrap();
        let message = err.to_string();
        assert!(matches!(err, Error::Push { status: None, .. }), "{err:?}");
        assert!(
            message.contains(&format!("https://{addr}/metrics/job/j")) && message.contains("TLS"),
            "{message}"
        );
    }

    #[test]
    fn pushers_can_be_shared_across_threads() {
        fn shareable<T: Send + Sync + Clone + 'static>() {}
        shareable::<Pusher>();
    }

    #[test]
    fn a_bearer_token_read_from_a_file_loses_its_line_feed() {
        let pusher = Pusher::new("gw:9091", "j").unwrap().bearer_auth("t0ken\n");
        assert_eq!(pusher.authorization.as_deref(), Some("Bearer t0ken"));
    }

    #[test]
    fn debug_hides_credentials() {
        let pusher = Pusher::new("gw:9091", "j")
            .unwrap()
            .basic_auth("user", "hunter2")
            .header("X-Token", "also-secret")
            .unwrap();
        let shown = format!("{pusher:?}");
        assert!(!shown.contains("hunter2") && !shown.contains("dXNlcjpodW50ZXIy"));
        assert!(!shown.contains("also-secret"));
        assert!(shown.contains("http://gw:9091/metrics/job/j"));
    }
}
