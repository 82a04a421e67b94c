//! Every form the handler attributes must compile on, exercised and checked. Compiled twice:
//! by `tests/tests/macros_forms.rs` (edition 2024) and by the `promtrack-edition2021` crate
//! (edition 2021), where the drop order of temporaries in tail expressions differs — which is why
//! each gauge below is read inside and after calls whose tail expressions hold temporaries.
//! Both include this file under `#![forbid(unsafe_code)]` and `#![deny(warnings, clippy::all)]`.

use std::future::Future;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, State};
use axum::routing::get;
use promtrack as metrics;

/// A re-export, as a crate that wraps promtrack would have.
pub mod wrapper {
    pub use promtrack as pt;
}

/// The value of the sample written as `series`, from the default registry.
pub fn value(series: &str) -> Option<f64> {
    let text = metrics::expose::encode_to_string(
        metrics::default_registry(),
        metrics::expose::Format::Text,
    );
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|v| v.parse().ok())
}

/// Reads a gauge when dropped: held as a temporary in tail expressions.
pub struct ReadOnDrop(pub &'static str);

impl ReadOnDrop {
    pub fn name_len(&self) -> usize {
        self.0.len()
    }
}

impl Drop for ReadOnDrop {
    fn drop(&mut self) {
        // In edition 2021 this runs after the function's locals (the gauge's guard among them)
        // were dropped, in 2024 before: the gauge must be right either way once the call ends.
        let _ = value(self.0);
    }
}

// Free functions, sync and async, with `?` and early return.

#[metrics::counter("forms_free_total", "Free functions.", labels(kind = "sync"))]
pub fn free_sync(input: &str) -> Result<u32, std::num::ParseIntError> {
    if input.is_empty() {
        return Ok(0);
    }
    let n: u32 = input.parse()?;
    Ok(n)
}

#[metrics::histogram("forms_free_seconds", "Free async functions.", buckets = [0.1, 1.0])]
pub async fn free_async(input: String) -> Result<u32, std::num::ParseIntError> {
    if input.is_empty() {
        return Ok(0);
    }
    tokio::task::yield_now().await;
    let n: u32 = input.parse()?;
    Ok(n * 2)
}

// Gauges whose tail expressions hold temporaries.

#[metrics::gauge("forms_sync_in_progress", "Sync calls running.")]
pub fn gauge_tail_temporary() -> usize {
    ReadOnDrop("forms_sync_in_progress").name_len()
}

#[metrics::gauge("forms_async_in_progress", "Async calls running.")]
pub async fn gauge_async_tail_temporary() -> usize {
    async { ReadOnDrop("forms_async_in_progress") }
        .await
        .name_len()
}

// Methods: `&self`, `&mut self`, `self`, `self: Arc<Self>`; generics and where clauses;
// `impl Trait` returns.

pub struct Repo {
    pub name: String,
    pub hits: u32,
}

impl Repo {
    #[metrics::counter("forms_method_total", "Method calls.", labels(recv = "ref", repo = self.name))]
    pub fn by_ref(&self) -> &str {
        &self.name
    }

    #[metrics::counter("forms_method_total", "Method calls.", labels(recv = "mut", repo = self.name))]
    pub fn by_mut(&mut self) -> u32 {
        self.hits += 1;
        self.hits
    }

    #[metrics::counter("forms_method_total", "Method calls.", labels(recv = "value", repo = self.name))]
    pub fn by_value(self) -> String {
        self.name
    }

    #[metrics::summary("forms_arc_seconds", "Arc methods.", labels(repo = self.name))]
    pub async fn by_arc(self: Arc<Self>) -> usize {
        tokio::task::yield_now().await;
        self.name.len()
    }

    #[metrics::counter("forms_generic_total", "Generic calls.", labels(ok = |r: &Option<T>| r.is_some()))]
    pub fn generic<T: Clone, U>(&self, value: &T, _other: U) -> Option<T>
    where
        U: Into<u64>,
    {
        Some(value.clone())
    }

    #[metrics::histogram("forms_impl_seconds", "impl Trait returns.")]
    pub fn impl_iter(&self) -> impl Iterator<Item = u32> + '_ {
        (0..self.hits).map(|h| h * 2)
    }

    #[metrics::counter("forms_impl_async_total", "Async impl Trait returns.")]
    pub async fn impl_display(&self) -> impl std::fmt::Display + '_ {
        tokio::task::yield_now().await;
        &self.name
    }
}

// `async-trait` methods: the attribute instruments the boxed future.

#[async_trait::async_trait]
pub trait Store {
    async fn load(&self, id: u64) -> Option<String>;
}

#[async_trait::async_trait]
impl Store for Repo {
    #[metrics::counter("forms_trait_total", "async-trait calls.",
                       labels(found = |r: &Option<String>| r.is_some()))]
    #[metrics::gauge("forms_trait_in_progress", "async-trait calls running.")]
    async fn load(&self, id: u64) -> Option<String> {
        tokio::task::yield_now().await;
        (id == 1).then(|| self.name.clone())
    }
}

// `#[tracing::instrument]` above and below.

#[tracing::instrument]
#[metrics::counter("forms_traced_total", "Traced calls.", labels(pos = "below"))]
pub async fn traced_below(id: u64) -> u64 {
    id
}

#[metrics::counter("forms_traced_total", "Traced calls.", labels(pos = "above"))]
#[tracing::instrument(skip(name))]
pub fn traced_above(name: String) -> usize {
    name.len()
}

// axum handlers, with `#[axum::debug_handler]` above and below and the exclusion marks.

pub use handlers::{AppState, get_user, health};

mod handlers {
    // axum's `debug_handler` checks call the handler with `panic!()` arguments, which
    // `clippy::diverging_sub_expression` (in `clippy::all`) flags with or without promtrack.
    #![allow(clippy::diverging_sub_expression)]

    use super::metrics;
    use axum::extract::{Path, State};

    #[derive(Clone)]
    pub struct AppState {
        pub greeting: &'static str,
    }

    #[axum::debug_handler]
    #[metrics::histogram(
        "forms_handler_seconds",
        "Handler time.",
        labels(route = "/users/{id}")
    )]
    #[metrics::counter("forms_handler_total", "Handler calls.",
                       labels(r#type = "user", even = id % 2 == 0, status = |r: &Result<String, axum::http::StatusCode>| r.is_ok()))]
    pub async fn get_user(
        Path(id): Path<u64>,
        State(state): State<AppState>,
    ) -> Result<String, axum::http::StatusCode> {
        if id == 0 {
            return Err(axum::http::StatusCode::NOT_FOUND);
        }
        Ok(format!("{} {id}", state.greeting))
    }

    #[metrics::do_not_track]
    #[axum::debug_handler]
    pub async fn health() -> &'static str {
        "ok"
    }
}

#[metrics::gauge("forms_excluded_in_progress", "Excluded handler.")]
#[metrics::exclude_all_metrics]
pub async fn excluded() -> &'static str {
    "excluded"
}

// `crate = path` for crates that re-export promtrack.

#[wrapper::pt::counter("forms_wrapped_total", "Through a re-export.", crate = crate::forms::wrapper::pt)]
#[wrapper::pt::do_not_track(crate = crate::forms::wrapper::pt)]
pub fn wrapped() {}

/// The app: every handler form as a real route.
pub fn app() -> Router {
    Router::new()
        .route("/users/{id}", get(get_user))
        .route("/health", get(health))
        .route("/excluded", get(excluded))
        .with_state(AppState { greeting: "hello" })
}

fn block_on<F: Future>(fut: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a runtime")
        .block_on(fut)
}

/// Calls every form directly (they are still plain functions) and checks what they recorded.
pub fn exercise() {
    assert_eq!(free_sync("4"), Ok(4));
    assert_eq!(free_sync(""), Ok(0));
    assert!(free_sync("x").is_err());
    assert_eq!(value(r#"forms_free_total{kind="sync"}"#), Some(3.0));

    assert_eq!(block_on(free_async("5".into())), Ok(10));
    assert!(block_on(free_async("y".into())).is_err());
    assert_eq!(value("forms_free_seconds_count"), Some(2.0));

    assert_eq!(gauge_tail_temporary(), "forms_sync_in_progress".len());
    assert_eq!(value("forms_sync_in_progress"), Some(0.0));
    assert_eq!(
        block_on(gauge_async_tail_temporary()),
        "forms_async_in_progress".len()
    );
    assert_eq!(value("forms_async_in_progress"), Some(0.0));

    let mut repo = Repo {
        name: "r".into(),
        hits: 0,
    };
    assert_eq!(repo.by_ref(), "r");
    assert_eq!(repo.by_mut(), 1);
    assert_eq!(repo.generic(&7u8, 3u32), Some(7));
    assert_eq!(repo.impl_iter().collect::<Vec<_>>(), [0]);
    assert_eq!(
        block_on(async { repo.impl_display().await.to_string() }),
        "r"
    );
    assert_eq!(block_on(repo.load(1)), Some("r".into()));
    assert_eq!(block_on(repo.load(2)), None);
    let repo = Arc::new(repo);
    assert_eq!(block_on(repo.clone().by_arc()), 1);
    let repo = Arc::try_unwrap(repo).ok().expect("one owner");
    assert_eq!(repo.by_value(), "r");
    for recv in ["ref", "mut", "value"] {
        let series = format!(r#"forms_method_total{{recv="{recv}",repo="r"}}"#);
        assert_eq!(value(&series), Some(1.0), "{series}");
    }
    assert_eq!(value(r#"forms_generic_total{ok="true"}"#), Some(1.0));
    assert_eq!(value("forms_impl_seconds_count"), Some(1.0));
    assert_eq!(value("forms_impl_async_total"), Some(1.0));
    assert_eq!(value(r#"forms_trait_total{found="true"}"#), Some(1.0));
    assert_eq!(value(r#"forms_trait_total{found="false"}"#), Some(1.0));
    assert_eq!(value("forms_trait_in_progress"), Some(0.0));
    assert_eq!(value(r#"forms_arc_seconds_count{repo="r"}"#), Some(1.0));

    assert_eq!(block_on(traced_below(3)), 3);
    assert_eq!(traced_above("ab".into()), 2);
    assert_eq!(value(r#"forms_traced_total{pos="below"}"#), Some(1.0));
    assert_eq!(value(r#"forms_traced_total{pos="above"}"#), Some(1.0));

    wrapped();
    assert_eq!(value("forms_wrapped_total"), Some(1.0));

    // Handlers stay callable directly, as in a unit test.
    let state = AppState { greeting: "hi" };
    assert_eq!(block_on(get_user(Path(2), State(state))), Ok("hi 2".into()));
    assert_eq!(block_on(health()), "ok");
    assert_eq!(block_on(excluded()), "excluded");
    // At least: a router test in the same binary may call it too.
    let handled = value(r#"forms_handler_total{type="user",even="true",status="true"}"#);
    assert!(handled >= Some(1.0), "{handled:?}");
}
