//! Behaviour of the handler attributes, read back from the default registry's exposition: what
//! each records on return, early return, `?`, panic and cancellation; label sources; stacking;
//! exclusions. Each test uses metric names of its own (tests share the default registry).

use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use promtrack as metrics;
use promtrack::__private::{Exclusion, RequestContext};

/// The default registry's exposition.
fn scrape() -> String {
    metrics::expose::encode_to_string(metrics::default_registry(), metrics::expose::Format::Text)
}

/// The value of the sample written exactly as `series` (name and labels), if present.
fn value(series: &str) -> Option<f64> {
    let text = scrape();
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .map(|v| v.parse().expect("a number"))
}

/// A future that is pending once, then ready.
fn yield_once() -> impl Future<Output = ()> {
    let mut yielded = false;
    std::future::poll_fn(move |cx| {
        if yielded {
            Poll::Ready(())
        } else {
            yielded = true;
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    })
}

/// Polls `fut` once with a no-op waker.
fn poll_once<F: Future>(fut: std::pin::Pin<&mut F>) -> Poll<F::Output> {
    fut.poll(&mut Context::from_waker(Waker::noop()))
}

fn block_on<F: Future>(fut: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap()
        .block_on(fut)
}

// ---- counter ------------------------------------------------------------------------------

#[metrics::counter("t_sync_calls_total", "Calls.", labels(source = "db"))]
fn sync_counted(fail: bool) -> Result<u32, String> {
    if fail {
        return Err("early".into());
    }
    let parsed: u32 = "7".parse().map_err(|_| "parse".to_string())?;
    Ok(parsed)
}

#[test]
fn counter_counts_returns_early_returns_and_errors() {
    assert_eq!(value(r#"t_sync_calls_total{source="db"}"#), Some(0.0));
    assert_eq!(sync_counted(false), Ok(7));
    assert_eq!(sync_counted(true), Err("early".into()));
    assert_eq!(value(r#"t_sync_calls_total{source="db"}"#), Some(2.0));
}

#[metrics::counter("t_question_total", "Calls.")]
fn question_mark(s: &str) -> Result<u32, std::num::ParseIntError> {
    let n: u32 = s.parse()?;
    Ok(n * 2)
}

#[test]
fn counter_counts_calls_that_fail_through_question_mark() {
    assert_eq!(question_mark("21"), Ok(42));
    assert!(question_mark("x").is_err());
    assert_eq!(value("t_question_total"), Some(2.0));
}

#[metrics::counter("t_panics_total", "Calls.")]
fn panicking(panic: bool) -> u32 {
    if panic {
        panic!("boom");
    }
    1
}

#[test]
fn counter_counts_a_call_that_panics() {
    assert!(catch_unwind(|| panicking(true)).is_err());
    assert_eq!(panicking(false), 1);
    assert_eq!(value("t_panics_total"), Some(2.0));
}

#[metrics::counter("t_outcome_total", "Calls.",
                   labels(ok = |ret: &Result<u32, String>| ret.is_ok(), source = "db"))]
fn with_outcome(fail: bool, panic: bool) -> Result<u32, String> {
    if panic {
        panic!("boom");
    }
    if fail { Err("no".into()) } else { Ok(1) }
}

#[test]
fn return_value_labels_see_the_result_and_panics_record_nothing() {
    with_outcome(false, false).unwrap();
    with_outcome(false, false).unwrap();
    with_outcome(true, false).unwrap_err();
    assert!(catch_unwind(|| with_outcome(false, true)).is_err());
    assert_eq!(
        value(r#"t_outcome_total{ok="true",source="db"}"#),
        Some(2.0)
    );
    assert_eq!(
        value(r#"t_outcome_total{ok="false",source="db"}"#),
        Some(1.0)
    );
}

#[metrics::counter("t_async_total", "Calls.", labels(kind = "a"))]
async fn async_counted(wait: bool) -> u32 {
    if wait {
        yield_once().await;
    }
    3
}

#[test]
fn async_counter_counts_completions_not_cancellations() {
    assert_eq!(block_on(async_counted(true)), 3);
    {
        let mut fut = pin!(async_counted(true));
        assert!(poll_once(fut.as_mut()).is_pending());
        // Dropped here, before completion: a client that hung up.
    }
    assert_eq!(value(r#"t_async_total{kind="a"}"#), Some(1.0));
}

#[metrics::counter("t_async_panic_total", "Calls.")]
async fn async_panicking() -> u32 {
    yield_once().await;
    panic!("boom")
}

#[test]
fn async_counter_counts_a_panic() {
    let mut fut = pin!(async_panicking());
    assert!(poll_once(fut.as_mut()).is_pending());
    assert!(catch_unwind(AssertUnwindSafe(|| poll_once(fut.as_mut()))).is_err());
    assert_eq!(value("t_async_panic_total"), Some(1.0));
}

// ---- histogram and summary -----------------------------------------------------------------

#[metrics::histogram("t_sleep_seconds", "Sleeps.", buckets = [0.001, 0.05, 10.0])]
fn sleeper(ms: u64) {
    std::thread::sleep(Duration::from_millis(ms));
}

#[test]
fn histogram_observes_the_duration_in_seconds() {
    sleeper(20);
    assert_eq!(value("t_sleep_seconds_count"), Some(1.0));
    let sum = value("t_sleep_seconds_sum").unwrap();
    assert!((0.02..1.0).contains(&sum), "{sum}");
    assert_eq!(value(r#"t_sleep_seconds_bucket{le="0.001"}"#), Some(0.0));
    assert_eq!(value(r#"t_sleep_seconds_bucket{le="10"}"#), Some(1.0));
}

const LATENCY: &[f64] = &[0.01, 0.1];

#[metrics::histogram("t_async_seconds", "Async time.", buckets = LATENCY, labels(op = "sleep"))]
async fn async_timed(ms: u64) -> u64 {
    tokio::time::sleep(Duration::from_millis(ms)).await;
    ms
}

#[test]
fn async_histogram_times_until_the_future_completes_and_skips_cancelled_ones() {
    assert_eq!(block_on(async_timed(30)), 30);
    block_on(async {
        // Cancelled by the timeout: observes nothing.
        let _ = tokio::time::timeout(Duration::from_millis(5), async_timed(5_000)).await;
    });
    assert_eq!(value(r#"t_async_seconds_count{op="sleep"}"#), Some(1.0));
    let sum = value(r#"t_async_seconds_sum{op="sleep"}"#).unwrap();
    assert!((0.03..2.0).contains(&sum), "{sum}");
    assert_eq!(
        value(r#"t_async_seconds_bucket{op="sleep",le="0.01"}"#),
        Some(0.0)
    );
}

#[metrics::histogram("t_panic_seconds", "Time.")]
fn timed_panic() {
    std::thread::sleep(Duration::from_millis(10));
    panic!("boom");
}

#[test]
fn histogram_observes_the_time_until_a_panic() {
    assert!(catch_unwind(timed_panic).is_err());
    assert_eq!(value("t_panic_seconds_count"), Some(1.0));
    assert!(value("t_panic_seconds_sum").unwrap() >= 0.01);
}

#[metrics::summary("t_summary_seconds", "Time.", labels(status = |ret: &u16| *ret))]
async fn summarised(status: u16) -> u16 {
    status
}

#[test]
fn summary_observes_durations_with_return_value_labels() {
    block_on(summarised(200));
    block_on(summarised(404));
    block_on(summarised(404));
    assert_eq!(value(r#"t_summary_seconds_count{status="404"}"#), Some(2.0));
    assert_eq!(value(r#"t_summary_seconds_count{status="200"}"#), Some(1.0));
}

// ---- gauge ---------------------------------------------------------------------------------

#[metrics::gauge("t_in_progress", "Calls running.")]
fn in_progress(check: impl FnOnce()) {
    check();
}

#[test]
fn gauge_is_up_during_the_call_and_down_after_even_on_panic() {
    in_progress(|| assert_eq!(value("t_in_progress"), Some(1.0)));
    assert_eq!(value("t_in_progress"), Some(0.0));
    assert!(catch_unwind(|| in_progress(|| panic!("boom"))).is_err());
    assert_eq!(value("t_in_progress"), Some(0.0));
}

#[metrics::gauge("t_async_in_progress", "Calls running.", labels(queue = queue), mode = "livesum")]
async fn async_in_progress(queue: String) -> String {
    yield_once().await;
    queue // moved out: the label took it by reference
}

#[test]
fn async_gauge_goes_down_when_the_future_is_dropped() {
    let series = r#"t_async_in_progress{queue="email"}"#;
    {
        let mut fut = pin!(async_in_progress("email".into()));
        assert!(poll_once(fut.as_mut()).is_pending());
        assert_eq!(value(series), Some(1.0));
    }
    assert_eq!(value(series), Some(0.0));
    assert_eq!(block_on(async_in_progress("email".into())), "email");
    assert_eq!(value(series), Some(0.0));
}

// ---- label sources -------------------------------------------------------------------------

fn tier_of(id: &u64) -> &'static str {
    if *id < 100 { "gold" } else { "basic" }
}

#[derive(metrics::LabelValue, Clone, Copy)]
enum Region {
    EuWest,
    UsEast,
}

struct Order {
    region: Region,
    items: Vec<String>,
}

#[metrics::counter("t_labels_total", "Calls.",
                   labels(r#type = "user", tier = tier_of(&id), region = order.region,
                          name = name, big = order.items.len() > 1,
                          found = |ret: &Option<usize>| ret.is_some()))]
fn labelled(id: u64, name: String, order: Order) -> Option<usize> {
    // Both are moved here: label expressions only borrowed them.
    let owned: Vec<String> = order.items;
    let _consumed: String = name;
    (id < 1000).then_some(owned.len())
}

#[test]
fn labels_come_from_literals_arguments_and_the_return_value() {
    let order = || Order {
        region: Region::EuWest,
        items: vec!["a".into(), "b".into()],
    };
    labelled(7, "ada".into(), order());
    labelled(
        5000,
        "bob".into(),
        Order {
            region: Region::UsEast,
            items: vec![],
        },
    );
    assert_eq!(
        value(
            r#"t_labels_total{type="user",tier="gold",region="eu_west",name="ada",big="true",found="true"}"#
        ),
        Some(1.0)
    );
    assert_eq!(
        value(
            r#"t_labels_total{type="user",tier="basic",region="us_east",name="bob",big="false",found="false"}"#
        ),
        Some(1.0)
    );
}

// ---- stacking, methods, generics -----------------------------------------------------------

#[metrics::gauge("t_stack_in_progress", "Running.")]
#[metrics::counter("t_stack_total", "Calls.", labels(ok = |r: &Result<(), ()>| r.is_ok()))]
#[metrics::histogram("t_stack_seconds", "Time.")]
async fn stacked(ok: bool) -> Result<(), ()> {
    assert_eq!(value("t_stack_in_progress"), Some(1.0));
    yield_once().await;
    if ok { Ok(()) } else { Err(()) }
}

#[test]
fn stacked_attributes_each_record() {
    block_on(stacked(true)).unwrap();
    block_on(stacked(false)).unwrap_err();
    assert_eq!(value(r#"t_stack_total{ok="true"}"#), Some(1.0));
    assert_eq!(value(r#"t_stack_total{ok="false"}"#), Some(1.0));
    assert_eq!(value("t_stack_seconds_count"), Some(2.0));
    assert_eq!(value("t_stack_in_progress"), Some(0.0));
}

struct Service {
    name: String,
}

impl Service {
    #[metrics::counter("t_method_total", "Calls.", labels(service = self.name))]
    fn by_ref(&self) -> &str {
        &self.name
    }

    #[metrics::counter("t_method_total", "Calls.", labels(service = self.name))]
    async fn by_arc(self: Arc<Self>) -> usize {
        yield_once().await;
        self.name.len()
    }

    #[metrics::histogram("t_generic_seconds", "Time.")]
    fn generic<T>(&self, value: T) -> impl std::fmt::Debug
    where
        T: Clone + std::fmt::Debug + Send,
    {
        value.clone()
    }
}

#[test]
fn methods_generics_and_shared_declarations() {
    let service = Arc::new(Service {
        name: "users".into(),
    });
    assert_eq!(service.by_ref(), "users");
    assert_eq!(block_on(service.clone().by_arc()), 5);
    // Two sites with one declaration share the family and its series.
    assert_eq!(value(r#"t_method_total{service="users"}"#), Some(2.0));
    assert_eq!(format!("{:?}", service.generic(3u8)), "3");
    assert_eq!(format!("{:?}", service.generic("x")), "\"x\"");
    assert_eq!(value("t_generic_seconds_count"), Some(2.0));
}

// ---- exclusions ----------------------------------------------------------------------------

#[metrics::gauge("t_excluded_in_progress", "Running.")]
#[metrics::exclude_all_metrics]
#[metrics::counter("t_excluded_total", "Calls.")]
async fn excluded_handler() -> Exclusion {
    metrics::__private::current_exclusion()
}

#[metrics::do_not_track]
#[metrics::counter("t_not_tracked_total", "Calls.")]
async fn not_tracked() -> Exclusion {
    metrics::__private::current_exclusion()
}

#[test]
fn exclusion_marks_silence_attributes_in_any_order_inside_a_request_only() {
    block_on(async {
        let ctx = RequestContext::new(Exclusion::None);
        // The mark is below the gauge, yet applies before it.
        assert_eq!(ctx.scope(excluded_handler()).await, Exclusion::All);
        assert_eq!(ctx.exclusion(), Exclusion::All);
        let ctx = RequestContext::new(Exclusion::None);
        assert_eq!(ctx.scope(not_tracked()).await, Exclusion::Defaults);
        // Outside a request (a unit test calling the handler), marks do nothing.
        assert_eq!(excluded_handler().await, Exclusion::None);
    });
    assert_eq!(
        value("t_excluded_total"),
        Some(1.0),
        "only the call outside a request"
    );
    assert_eq!(value("t_excluded_in_progress"), Some(0.0));
    assert_eq!(
        value("t_not_tracked_total"),
        Some(1.0),
        "do_not_track keeps the handler's own metrics"
    );
}

// ---- derived label sets and family! --------------------------------------------------------

#[derive(metrics::LabelValue, Clone, Copy, Debug)]
#[label(rename_all = "kebab-case")]
enum Queue {
    BulkEmail,
    #[label(rename = "pay")]
    Billing,
}

#[derive(metrics::LabelSet)]
struct Job {
    queue: Queue,
    #[label(rename = "retry")]
    retried: bool,
}

#[derive(metrics::LabelSet)]
struct Request<'a> {
    r#type: &'a str,
    queue: Queue,
}

metrics::family! {
    /// Jobs run.
    static JOBS: Family<Job, Counter> = ("t_jobs_total", "Jobs run.");
    static REQUESTS: Family<Request<'static>, Counter> = ("t_requests_total", "Requests.");
    static BACKLOG: Family<[&str; 1], Gauge> = ("t_backlog", "Waiting.", label_names = ["queue"]);
}

use metrics::{Counter, Family, Gauge, LabelSet, LabelValue};

#[test]
fn derived_label_sets_have_fixed_cardinality_and_render_their_names() {
    assert_eq!(<Queue as LabelValue>::CARDINALITY, Some(2));
    assert_eq!(<Job as LabelSet>::CARDINALITY, Some(4));
    assert_eq!(<Request<'_> as LabelSet>::CARDINALITY, None);
    assert_eq!(<Job as LabelSet>::NAMES, ["queue", "retry"]);
    // The mixed-radix index gives each combination its own slot.
    let indices: Vec<usize> = [
        (Queue::BulkEmail, false),
        (Queue::BulkEmail, true),
        (Queue::Billing, false),
        (Queue::Billing, true),
    ]
    .into_iter()
    .map(|(queue, retried)| Job { queue, retried }.cardinality_index())
    .collect();
    assert_eq!(indices, [0, 1, 2, 3]);

    JOBS.with(&Job {
        queue: Queue::Billing,
        retried: true,
    })
    .inc();
    let series = JOBS.with(&Job {
        queue: Queue::Billing,
        retried: true,
    });
    assert!(std::ptr::eq(
        series,
        JOBS.with(&Job {
            queue: Queue::Billing,
            retried: true
        })
    ));
    REQUESTS
        .with(&Request {
            r#type: "read",
            queue: Queue::BulkEmail,
        })
        .inc();
    BACKLOG.with(&["email"]).set(4.0);
    assert_eq!(
        value(r#"t_jobs_total{queue="pay",retry="true"}"#),
        Some(1.0)
    );
    assert_eq!(
        value(r#"t_requests_total{type="read",queue="bulk-email"}"#),
        Some(1.0)
    );
    assert_eq!(value(r#"t_backlog{queue="email"}"#), Some(4.0));
}

#[test]
fn declarations_agree() {
    metrics::check_declarations().unwrap();
}
