//! Procedural macros for [`promtrack`](https://docs.rs/promtrack).
//!
//! Use them through the `promtrack` crate (`use promtrack as metrics;`), never directly:
//! the code they generate reaches the runtime through `::promtrack::__private`, whose shape is
//! tied to the exact version of this crate. A crate that re-exports promtrack under another
//! path passes `crate = path::to::promtrack` to every macro.
//!
//! This file only dispatches. Each macro is parse → validate → expand, one module a phase:
//!
//! - parse: `ast` (a declaration's arguments as written), `item` (the attributed function,
//!   body kept as tokens);
//! - validate: `valid` (every mistake collected, spanned at its token; `names` holds the
//!   Prometheus naming rules it applies);
//! - expand: `expand` (what every macro generates: runtime paths, `Spec`, link-time entry),
//!   `instrument` (an attribute's body, by one strategy);
//! - per macro, running the phases: `attr` (the handler attributes and exclusion marks),
//!   `family` (`family!`), `derive` (the derives, whose `#[label(..)]` options are parsed,
//!   checked and expanded in that one module).
//!
//! `errors` collects the problems of one invocation; `debug` prints expansions.
//!
//! `PROMTRACK_MACROS_DEBUG=1` (or `=<function name>`) prints expansions at compile time.

mod ast;
mod attr;
mod debug;
mod derive;
mod errors;
mod expand;
mod family;
mod instrument;
mod item;
mod names;
mod valid;

use proc_macro::TokenStream;

use ast::Kind;

/// Counts the calls of a function.
///
/// ```
/// use promtrack as metrics;
///
/// #[metrics::counter("doc_lookups_total", "User lookups.",
///                    labels(source = "db", found = |ret: &Option<String>| ret.is_some()))]
/// fn lookup(id: u64) -> Option<String> {
///     (id == 1).then(|| "ada".to_owned())
/// }
///
/// lookup(1);
/// lookup(2);
/// let text = metrics::expose::encode_to_string(
///     metrics::default_registry(),
///     metrics::expose::Format::Text,
/// );
/// assert!(text.contains(r#"doc_lookups_total{source="db",found="true"} 1"#));
/// assert!(text.contains(r#"doc_lookups_total{source="db",found="false"} 1"#));
/// ```
///
/// # Arguments
/// `#[counter("name_total", "Help text.", labels(..), crate = path)]`. The name must end in
/// `_total`. Label values (`labels(name = value, ..)`) are
/// - a literal (`source = "db"`, `shard = 3`, `cached = true`): the series exists, at 0, from
///   start-up, and each call costs one atomic add after one load of a cached pointer;
/// - an expression over the arguments (`tier = user_tier(&id)`, `kind = order.kind`),
///   evaluated *before* the body, by reference (`kind = kind` does not move `kind` away from
///   the body);
/// - a closure over a reference to the return value (`found = |ret: &Option<String>|
///   ret.is_some()`), called *after* the body; its parameter type may be left out.
///
/// Values are anything implementing `promtrack::LabelValue` (strings, integers, `bool`,
/// `http::Method`, `http::StatusCode`, enums deriving it). Label names that are Rust keywords
/// are written raw or as strings: `r#type = "x"`, `type = "x"` and `"type" = "x"` all name the
/// label `type`.
///
/// # When it counts
/// - When the function returns — `Ok` or `Err` alike, early `return` and `?` included.
/// - On a panic, it counts the call (as the unwind leaves the function) — unless a label reads
///   the return value: there is none, so nothing is recorded.
/// - When an async function's future is dropped before it completes (a client hung up),
///   nothing is recorded: the call did not finish. The axum layer's default metrics account
///   for such requests.
/// - Not when the request is excluded with `#[exclude_all_metrics]` (see there).
///
/// # Expansion
/// In a few lines (see `PROMTRACK_MACROS_DEBUG` for the real thing):
/// ```text
/// fn lookup(id: u64) -> Option<String> {
///     let site = { static SITE: Site<Counter, 2> = /* name, help, labels */; &SITE };
///     let pending = Pending::<Counter>::start();
///     let ret = (move || { /* body */ })();
///     pending.finish(|| site.family().with_writer(|w| { w.value("db"); w.value(&(|ret| ..)(&ret)) }));
///     ret
/// }
/// ```
/// `SITE` is also listed at link time, so the family is registered when the default registry
/// is created. Async functions await their body in an `async move` block instead of calling a
/// closure; functions without return-value labels need neither and use a drop guard.
#[proc_macro_attribute]
pub fn counter(attr: TokenStream, item: TokenStream) -> TokenStream {
    attr::metric(Kind::Counter, attr.into(), item.into()).into()
}

/// Observes the duration of each call, in seconds, into a histogram.
///
/// ```
/// use promtrack as metrics;
///
/// #[metrics::histogram("doc_fetch_seconds", "Time to fetch a page.",
///                      labels(source = "cache"), buckets = [0.001, 0.01, 0.1])]
/// async fn fetch(page: u32) -> Result<String, std::io::Error> {
///     Ok(format!("page {page}"))
/// }
///
/// # tokio_test_block_on(async {
/// fetch(1).await.unwrap();
/// # });
/// # fn tokio_test_block_on<F: std::future::Future>(f: F) -> F::Output {
/// #     tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(f)
/// # }
/// let text = metrics::expose::encode_to_string(
///     metrics::default_registry(),
///     metrics::expose::Format::Text,
/// );
/// assert!(text.contains(r#"doc_fetch_seconds_count{source="cache"} 1"#));
/// ```
///
/// For an async function the duration runs until its future completes. Takes the same
/// arguments and has the same panic and cancellation semantics as [`macro@counter`] (a panic
/// observes the time until the unwind left the function; a dropped future observes nothing),
/// plus `buckets`: number literals (checked here: at least one, strictly increasing), or a
/// constant expression of type `&[f64]` (`buckets = LATENCY_BUCKETS`), checked during const
/// evaluation. Without `buckets`, the Prometheus defaults (5 ms … 10 s).
///
/// # Expansion
/// ```text
/// async fn fetch(page: u32) -> Result<String, io::Error> {
///     let site = { static SITE: Site<Histogram, 1> = ..; &SITE };
///     let call = Call::<Histogram>::start(site.series());   // takes the start time
///     let ret = async move { /* body */ }.await;
///     call.finish();                                         // observes the elapsed time
///     ret
/// }
/// ```
#[proc_macro_attribute]
pub fn histogram(attr: TokenStream, item: TokenStream) -> TokenStream {
    attr::metric(Kind::Histogram, attr.into(), item.into()).into()
}

/// Observes the duration of each call, in seconds, into a summary (count and sum).
///
/// ```
/// use promtrack as metrics;
///
/// #[metrics::summary("doc_render_seconds", "Time to render a page.")]
/// fn render() -> String {
///     "<html/>".into()
/// }
///
/// render();
/// let text = metrics::expose::encode_to_string(
///     metrics::default_registry(),
///     metrics::expose::Format::Text,
/// );
/// assert!(text.contains("doc_render_seconds_count 1"));
/// ```
///
/// Same arguments and semantics as [`macro@histogram`], without `buckets`. The expansion is
/// the histogram's with `Summary` in place of `Histogram`.
#[proc_macro_attribute]
pub fn summary(attr: TokenStream, item: TokenStream) -> TokenStream {
    attr::metric(Kind::Summary, attr.into(), item.into()).into()
}

/// Tracks the calls in progress: up on entry, down when the call ends — on return, on panic,
/// and when an async function's future is dropped before it completes.
///
/// ```
/// use promtrack as metrics;
///
/// #[metrics::gauge("doc_exports_in_progress", "Exports running.", mode = "livesum")]
/// fn export() -> usize {
///     let text = metrics::expose::encode_to_string(
///         metrics::default_registry(),
///         metrics::expose::Format::Text,
///     );
///     assert!(text.contains("doc_exports_in_progress 1"));
///     text.len()
/// }
///
/// export();
/// let text = metrics::expose::encode_to_string(
///     metrics::default_registry(),
///     metrics::expose::Format::Text,
/// );
/// assert!(text.contains("doc_exports_in_progress 0"));
/// ```
///
/// Labels may be literals or expressions over the arguments, not closures over the return
/// value (the gauge goes up before there is one). `mode = ".."` chooses how the processes'
/// values combine in multiprocess mode, by the Python names (`all`, `liveall`, `sum`,
/// `livesum`, `max`, `livemax`, `min`, `livemin`, `mostrecent`, `livemostrecent`); it is
/// checked here, and defaults to `livesum` (the number in progress over live workers).
///
/// # Expansion
/// ```text
/// fn export() -> usize {
///     let site = { static SITE: Site<Gauge, 0> = ..; &SITE };
///     let in_flight = track(|| site.series());   // `Option<InFlight>`: decrements on drop
///     { /* body */ }
/// }
/// ```
/// The guard is a named local of the function (of its future, when async), so it drops when
/// the function's frame does, whatever the caller's edition's rules for temporaries in tail
/// expressions.
#[proc_macro_attribute]
pub fn gauge(attr: TokenStream, item: TokenStream) -> TokenStream {
    attr::metric(Kind::Gauge, attr.into(), item.into()).into()
}

/// Excludes a handler from the axum layer's default HTTP metrics (its own attribute metrics
/// still record). Does not change the signature; order among other attributes does not matter.
///
/// ```
/// use promtrack as metrics;
///
/// #[metrics::do_not_track]
/// async fn health() -> &'static str {
///     "ok"
/// }
/// # let _ = health();
/// ```
///
/// Expands to a first statement `__private::exclude(Exclusion::Defaults)`, which marks the
/// current request (a no-op outside one, as in a unit test). Only the last path segment is
/// looked at when other promtrack attributes on the same function hoist it, so a renamed import
/// (`use promtrack::do_not_track as skip`) is not recognised there: keep the name.
#[proc_macro_attribute]
pub fn do_not_track(attr: TokenStream, item: TokenStream) -> TokenStream {
    attr::mark(attr::ExclusionMark::DoNotTrack, attr.into(), item.into()).into()
}

/// Excludes a handler from every metric: the layer's default metrics, metrics applied to every
/// route, and the handler's own attribute metrics for that request. Outside a request (a direct
/// call in a test) it does nothing.
///
/// ```
/// use promtrack as metrics;
///
/// #[metrics::exclude_all_metrics]
/// #[metrics::counter("doc_probes_total", "Probes.")]
/// async fn probe() -> &'static str {
///     "ok"
/// }
/// # let _ = probe();
/// ```
///
/// Expands to a first statement `__private::exclude(Exclusion::All)`. Attribute order does not
/// matter: a metric attribute above it hoists the mark before its own code.
#[proc_macro_attribute]
pub fn exclude_all_metrics(attr: TokenStream, item: TokenStream) -> TokenStream {
    attr::mark(attr::ExclusionMark::ExcludeAll, attr.into(), item.into()).into()
}

/// Derives `LabelSet` for a struct with named fields: one label per field, named after the
/// field (`#[label(rename = "name")]` to change it; `r#type` is the label `type`).
///
/// ```
/// use promtrack::{Counter, Family, LabelSet, LabelValue, Registry};
///
/// #[derive(LabelValue, Clone, Copy)]
/// enum Queue { Email, Billing }
///
/// #[derive(LabelSet)]
/// struct Job { queue: Queue, #[label(rename = "retry")] retried: bool }
///
/// // Every field has a fixed cardinality: 2 × 2 series, found by index, never hashed.
/// assert_eq!(<Job as LabelSet>::CARDINALITY, Some(4));
///
/// let jobs = Family::<Job, Counter>::new("doc_jobs_total", "Jobs run.");
/// Registry::new().register(&jobs)?;
/// jobs.with(&Job { queue: Queue::Email, retried: true }).inc();
/// # Ok::<(), promtrack::Error>(())
/// ```
///
/// Field types must implement `LabelValue`; the error otherwise points at the field. The
/// expansion is an `impl LabelSet` with `NAMES`, `ARITY`, `CARDINALITY` (the product of the
/// fields' cardinalities, when all are fixed), a mixed-radix `cardinality_index`, and
/// `write_values` writing each field in order.
#[proc_macro_derive(LabelSet, attributes(label))]
pub fn derive_label_set(input: TokenStream) -> TokenStream {
    match syn::parse::<syn::DeriveInput>(input) {
        Ok(input) => derive::label_set(input).into(),
        Err(e) => e.to_compile_error().into(),
    }
}

/// Derives `LabelValue` for an enum without fields: each variant is one value, rendered in
/// snake_case by default (`#[label(rename_all = "kebab-case")]` on the enum, `#[label(rename =
/// "..")]` on a variant).
///
/// ```
/// use promtrack::LabelValue;
///
/// #[derive(LabelValue)]
/// #[label(rename_all = "kebab-case")]
/// enum Tier { FreeTrial, Paid, #[label(rename = "vip")] Enterprise }
///
/// assert_eq!(<Tier as LabelValue>::CARDINALITY, Some(3));
/// assert_eq!(Tier::Paid.cardinality_index(), 1);
/// ```
///
/// Cases: `snake_case`, `kebab-case`, `SCREAMING_SNAKE_CASE`, `lowercase`, `UPPERCASE`,
/// `camelCase`, `PascalCase`. The expansion is an `impl LabelValue` with `CARDINALITY =
/// Some(variants)`, `cardinality_index` (the variant's position) and `write_value` (its text).
#[proc_macro_derive(LabelValue, attributes(label))]
pub fn derive_label_value(input: TokenStream) -> TokenStream {
    match syn::parse::<syn::DeriveInput>(input) {
        Ok(input) => derive::label_value(input).into(),
        Err(e) => e.to_compile_error().into(),
    }
}

/// Declares standalone metric families (not tied to a function), registered with the default
/// registry at start-up like the attributes' — with the same compile-time checks.
///
/// ```
/// use promtrack::{Counter, Family, Gauge, Histogram, LabelSet, LabelValue};
///
/// #[derive(LabelValue)]
/// enum Queue { Email, Billing }
///
/// #[derive(LabelSet)]
/// struct Job { queue: Queue }
///
/// promtrack::family! {
///     /// Jobs run, by queue.
///     pub static JOBS: Family<Job, Counter> = ("doc_family_jobs_total", "Jobs run.");
///     static BACKLOG: Family<[&str; 1], Gauge> =
///         ("doc_family_backlog", "Jobs waiting.", label_names = ["queue"], mode = "livesum");
///     static BATCH: Family<(), Histogram> =
///         ("doc_family_batch_seconds", "Batch time.", buckets = [0.1, 1.0, 10.0]);
/// }
///
/// JOBS.with(&Job { queue: Queue::Email }).inc();
/// BACKLOG.with(&["email"]).set(3.0);
/// BATCH.observe(0.4);
/// assert_eq!(JOBS.with(&Job { queue: Queue::Email }).get(), 1.0);
/// ```
///
/// Each `static NAME: Family<Labels, Metric> = ("name", "help", options..);` becomes a
/// `static NAME: promtrack::LazyFamily<Labels, Metric>`, which dereferences to the
/// `Family<Labels, Metric>` and is listed at link time for registration. Options: `buckets`
/// (histograms), `mode` (gauges; default `all` as for `Family::new`), `label_names = [..]`
/// (for array label sets; a derived set names its own labels), `crate = path`.
#[proc_macro]
pub fn family(input: TokenStream) -> TokenStream {
    family::family(input.into()).into()
}
