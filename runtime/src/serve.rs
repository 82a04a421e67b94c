//! Serving `/metrics`: [`metrics_router`] for an existing axum app, [`serve_metrics`] for a
//! port of its own.
//!
//! Both answer `GET` and `HEAD` with the same [`Scrape`](crate::expose::Scrape) logic: format by
//! `Accept`, gzip by `Accept-Encoding`, `name[]=` filtering. The endpoint can require HTTP basic
//! or bearer authentication; credentials are compared in constant time.

use std::future::Future;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, Request, Response, StatusCode, header};
use axum::routing::get;
use base64::Engine;

use crate::Registry;
use crate::expose::Scrape;

/// Credentials the metrics endpoint requires.
#[derive(Clone)]
#[non_exhaustive]
pub enum Auth {
    /// HTTP basic authentication with this user name and password.
    Basic {
        /// User name.
        user: String,
        /// Password.
        password: String,
    },
    /// `Authorization: Bearer <token>`.
    Bearer(String),
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print secrets.
        match self {
            Auth::Basic { user, .. } => f
                .debug_struct("Basic")
                .field("user", user)
                .finish_non_exhaustive(),
            Auth::Bearer(_) => f.write_str("Bearer(..)"),
        }
    }
}

impl Auth {
    /// Basic authentication.
    pub fn basic(user: impl Into<String>, password: impl Into<String>) -> Self {
        Auth::Basic {
            user: user.into(),
            password: password.into(),
        }
    }

    /// Bearer-token authentication.
    pub fn bearer(token: impl Into<String>) -> Self {
        Auth::Bearer(token.into())
    }

    fn allows(&self, headers: &HeaderMap) -> bool {
        let Some(given) = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
        else {
            return false;
        };
        match self {
            Auth::Basic { user, password } => {
                let expected =
                    base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
                given
                    .strip_prefix("Basic ")
                    .is_some_and(|g| constant_time_eq(g.trim().as_bytes(), expected.as_bytes()))
            }
            Auth::Bearer(token) => given
                .strip_prefix("Bearer ")
                .is_some_and(|g| constant_time_eq(g.trim().as_bytes(), token.as_bytes())),
        }
    }

    fn challenge(&self) -> &'static str {
        match self {
            Auth::Basic { .. } => "Basic realm=\"metrics\"",
            Auth::Bearer(_) => "Bearer realm=\"metrics\"",
        }
    }
}

/// Compares without an early exit, so response time does not reveal how much of a secret
/// matched. (The length is not secret.)
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Configures the metrics endpoint; [`metrics_router`] and [`serve_metrics`] are its defaults.
///
/// ```no_run
/// use promtrack::{Auth, MetricsRouter};
///
/// # async fn run() -> std::io::Result<()> {
/// // An internal port, with a bearer token, serving /internal/metrics.
/// MetricsRouter::new()
///     .path("/internal/metrics")
///     .auth(Auth::bearer("s3cret"))
///     .serve("127.0.0.1:9100")
///     .await
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct MetricsRouter {
    path: String,
    registry: Option<Registry>,
    auth: Option<Auth>,
}

impl Default for MetricsRouter {
    fn default() -> Self {
        Self::new()
    }
}

impl MetricsRouter {
    /// `GET /metrics` from the default registry, without authentication.
    pub fn new() -> Self {
        Self {
            path: "/metrics".into(),
            registry: None,
            auth: None,
        }
    }

    /// Serves on another path (it must start with `/`).
    pub fn path(mut self, path: impl Into<String>) -> Self {
        self.path = path.into();
        self
    }

    /// Serves another registry than the default one.
    pub fn registry(mut self, registry: &Registry) -> Self {
        self.registry = Some(registry.clone());
        self
    }

    /// Requires credentials; requests without them get `401 Unauthorized`.
    pub fn auth(mut self, auth: Auth) -> Self {
        self.auth = Some(auth);
        self
    }

    /// The router, mergeable into an app of any state type.
    pub fn build<S: Clone + Send + Sync + 'static>(self) -> Router<S> {
        let path = self.path.clone();
        let endpoint = Arc::new(self);
        Router::new().route(
            &path,
            get(move |request: Request<Body>| {
                let endpoint = endpoint.clone();
                async move {
                    // The axum layer leaves scrapes out of the default metrics.
                    crate::context::mark_metrics_endpoint();
                    endpoint.respond(request)
                }
            }),
        )
    }

    fn respond(&self, request: Request<Body>) -> Response<Body> {
        if let Some(auth) = &self.auth {
            if !auth.allows(request.headers()) {
                return Response::builder()
                    .status(StatusCode::UNAUTHORIZED)
                    .header(header::WWW_AUTHENTICATE, auth.challenge())
                    .body(Body::from("authentication required\n"))
                    .expect("static response parts are valid");
            }
        }
        let headers = request.headers();
        let text = |name| {
            headers
                .get(name)
                .and_then(|v: &HeaderValue| v.to_str().ok())
        };
        let scrape = Scrape {
            accept: text(header::ACCEPT),
            accept_encoding: text(header::ACCEPT_ENCODING),
            query: request.uri().query(),
        };
        let registry = self
            .registry
            .as_ref()
            .unwrap_or_else(|| crate::default_registry());
        let rendered = scrape.render(registry);
        let mut response = Response::builder()
            .header(header::CONTENT_TYPE, rendered.content_type())
            .header(header::VARY, "Accept, Accept-Encoding");
        if rendered.gzip {
            response = response.header(header::CONTENT_ENCODING, "gzip");
        }
        response
            .body(Body::from(rendered.body))
            .expect("static response parts are valid")
    }

    /// Binds `addr` and serves only the metrics endpoint there, until the returned future is
    /// dropped or an I/O error ends it.
    ///
    /// This returns a future; it does not block. Run it with `tokio::spawn` beside your app
    /// (and `JoinHandle::abort` to stop it), or use [`serve_with_shutdown`](Self::serve_with_shutdown)
    /// for a graceful stop.
    pub async fn serve(self, addr: impl tokio::net::ToSocketAddrs) -> std::io::Result<()> {
        self.serve_with_shutdown(addr, std::future::pending()).await
    }

    /// Like [`serve`](Self::serve), stopping gracefully when `shutdown` completes.
    pub async fn serve_with_shutdown(
        self,
        addr: impl tokio::net::ToSocketAddrs,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        axum::serve(listener, self.build::<()>())
            .with_graceful_shutdown(shutdown)
            .await
    }
}

/// `GET` and `HEAD /metrics`, answered from the [default registry](crate::default_registry),
/// as a router to merge into your app (any state type).
///
/// ```
/// use axum::{Router, routing::get};
///
/// let app: Router = Router::new()
///     .route("/", get(|| async { "hello" }))
///     .merge(promtrack::metrics_router());
/// ```
///
/// # Panics
/// If two metric declarations of one name disagree (see
/// [`check_declarations`](crate::check_declarations)): at start-up, with a message naming both
/// places, rather than serving a scrape that silently lacks one of them.
pub fn metrics_router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    if let Err(error) = crate::check_declarations() {
        panic!("promtrack: {error}");
    }
    MetricsRouter::new().build()
}

/// Serves `/metrics` from the default registry on `addr`, a port of its own (an internal-only
/// port, say). Returns a future that runs until dropped or an I/O error; see
/// [`MetricsRouter::serve`] for stopping it and [`MetricsRouter`] for authentication.
///
/// ```no_run
/// # async fn run() {
/// tokio::spawn(promtrack::serve_metrics("127.0.0.1:9100"));
/// # }
/// ```
pub async fn serve_metrics(addr: impl tokio::net::ToSocketAddrs) -> std::io::Result<()> {
    MetricsRouter::new().serve(addr).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Counter, Family};
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    fn registry() -> Registry {
        let r = Registry::new();
        let f = Family::<(), Counter>::new("hits_total", "Hits.");
        r.register(&f).unwrap();
        f.inc_by(5.0);
        r
    }

    async fn call(app: Router, req: Request<Body>) -> (StatusCode, HeaderMap, Vec<u8>) {
        let resp = app.oneshot(req).await.unwrap();
        let (parts, body) = resp.into_parts();
        (
            parts.status,
            parts.headers,
            body.collect().await.unwrap().to_bytes().to_vec(),
        )
    }

    #[tokio::test]
    async fn get_head_and_formats() {
        let app: Router = MetricsRouter::new().registry(&registry()).build();
        let (status, headers, body) = call(
            app.clone(),
            Request::get("/metrics").body(Body::empty()).unwrap(),
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(
            headers[header::CONTENT_TYPE],
            "text/plain; version=0.0.4; charset=utf-8"
        );
        assert!(String::from_utf8(body).unwrap().contains("hits_total 5\n"));

        let req = Request::get("/metrics")
            .header(
                header::ACCEPT,
                "application/openmetrics-text; version=1.0.0",
            )
            .body(Body::empty())
            .unwrap();
        let (_, headers, body) = call(app.clone(), req).await;
        assert!(
            headers[header::CONTENT_TYPE]
                .to_str()
                .unwrap()
                .starts_with("application/openmetrics-text")
        );
        assert!(String::from_utf8(body).unwrap().ends_with("# EOF\n"));

        let (status, headers, body) =
            call(app, Request::head("/metrics").body(Body::empty()).unwrap()).await;
        assert_eq!(status, StatusCode::OK);
        assert!(headers.contains_key(header::CONTENT_TYPE));
        assert!(body.is_empty());
    }

    #[tokio::test]
    async fn custom_path_and_any_state() {
        #[derive(Clone)]
        struct AppState;
        let app: Router<AppState> = Router::new().merge(
            MetricsRouter::new()
                .path("/m")
                .registry(&registry())
                .build(),
        );
        let app = app.with_state(AppState);
        let (status, _, _) =
            call(app.clone(), Request::get("/m").body(Body::empty()).unwrap()).await;
        assert_eq!(status, StatusCode::OK);
        let (status, _, _) = call(app, Request::get("/metrics").body(Body::empty()).unwrap()).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
    }

    #[tokio::test]
    async fn basic_and_bearer_auth() {
        let basic: Router = MetricsRouter::new()
            .registry(&registry())
            .auth(Auth::basic("prom", "pw"))
            .build();
        let (status, headers, _) = call(
            basic.clone(),
            Request::get("/metrics").body(Body::empty()).unwrap(),
        )
        .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(headers[header::WWW_AUTHENTICATE], "Basic realm=\"metrics\"");
        let good = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode("prom:pw")
        );
        let (status, _, _) = call(
            basic.clone(),
            Request::get("/metrics")
                .header(header::AUTHORIZATION, good)
                .body(Body::empty())
                .unwrap(),
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        let bad = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode("prom:nope")
        );
        let (status, _, _) = call(
            basic,
            Request::get("/metrics")
                .header(header::AUTHORIZATION, bad)
                .body(Body::empty())
                .unwrap(),
        )
        .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);

        let bearer: Router = MetricsRouter::new()
            .registry(&registry())
            .auth(Auth::bearer("t0k"))
            .build();
        for (value, want) in [
            ("Bearer t0k", StatusCode::OK),
            ("Bearer t0", StatusCode::UNAUTHORIZED),
            ("t0k", StatusCode::UNAUTHORIZED),
        ] {
            let (status, _, _) = call(
                bearer.clone(),
                Request::get("/metrics")
                    .header(header::AUTHORIZATION, value)
                    .body(Body::empty())
                    .unwrap(),
            )
            .await;
            assert_eq!(status, want, "{value}");
        }
    }

    #[tokio::test]
    async fn serve_metrics_answers_on_its_own_port_and_stops() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(
            MetricsRouter::new()
                .registry(&registry())
                .serve_with_shutdown(addr, async move {
                    stopped.await.ok();
                }),
        );
        // Wait until it listens.
        let mut stream = loop {
            match tokio::net::TcpStream::connect(addr).await {
                Ok(s) => break s,
                Err(_) => tokio::time::sleep(std::time::Duration::from_millis(10)).await,
            }
        };
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        stream
            .write_all(b"GET /metrics HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).await.unwrap();
        assert!(response.starts_with("HTTP/1.1 200"), "{response}");
        assert!(response.contains("hits_total 5"));
        stop.send(()).unwrap();
        server.await.unwrap().unwrap();
    }
}
