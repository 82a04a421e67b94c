//! The borrowed form `#[derive(LabelSet)]` generates for a struct with string fields (`JobRef`
//! for `Job`): it finds the owned set's series (the same series, not an equal one), a miss
//! creates the series the owned set then finds, and only structs with a `String` or `Cow<str>`
//! field get one. A hit by any borrowed form allocates nothing; a miss allocates.

use std::borrow::Cow;

use promtrack::expose::{Format, encode_to_string};
use promtrack::{Counter, Family, LabelSet, LabelValue, Registry};

#[derive(LabelValue, Clone, Copy)]
enum Priority {
    Low,
    High,
}

#[derive(LabelSet)]
struct Job {
    queue: String,
    priority: Priority,
}

/// Every kind of field, in an order that mixes them, one renamed.
#[derive(LabelSet)]
pub struct Task {
    /// The worker pool.
    pub pool: std::string::String,
    attempt: u16,
    #[label(rename = "type")]
    kind: Cow<'static, str>,
    urgent: bool,
    priority: Priority,
}

#[derive(LabelSet)]
#[label(borrowed = "ShardKey")]
struct Shard {
    region: String,
    index: u8,
}

#[derive(LabelSet)]
struct Tagged<T: LabelValue> {
    name: String,
    tag: T,
}

// No string field, lifetime parameters, or `borrowed = false`: no borrowed form, so these
// names are free (each would be a duplicate definition otherwise).
#[derive(LabelSet)]
struct Plain {
    priority: Priority,
    retried: bool,
}
#[allow(dead_code)]
struct PlainRef;

#[derive(LabelSet)]
struct Request<'a> {
    path: Cow<'a, str>,
}
#[allow(dead_code)]
struct RequestRef;

#[derive(LabelSet)]
#[label(borrowed = false)]
struct Named {
    name: String,
}
#[allow(dead_code)]
struct NamedRef;

fn registered<L: LabelSet>(family: Family<L, Counter>) -> (Registry, Family<L, Counter>) {
    let registry = Registry::new();
    registry.register(&family).expect("registers");
    (registry, family)
}

#[test]
fn the_borrowed_form_finds_the_owned_series() {
    let (_registry, jobs) = registered(Family::<Job, Counter>::new("jobs_total", "Jobs."));
    let owned = jobs.with(&Job {
        queue: "email".to_owned(),
        priority: Priority::High,
    });
    let queue = String::from("email");
    let borrowed = jobs.with(&JobRef {
        queue: &queue,
        priority: Priority::High,
    });
    assert!(std::ptr::eq(owned, borrowed));
    let other = jobs.with(&JobRef {
        queue: &queue,
        priority: Priority::Low,
    });
    assert!(!std::ptr::eq(owned, other));
}

#[test]
fn a_miss_by_the_borrowed_form_creates_the_owned_series() {
    let (registry, tasks) = registered(Family::<Task, Counter>::new("tasks_total", "Tasks."));
    let pool = String::from("batch");
    let created = tasks.with(&TaskRef {
        pool: &pool,
        attempt: 3,
        kind: "resize",
        urgent: false,
        priority: Priority::Low,
    });
    created.inc();
    let text = encode_to_string(&registry, Format::Text);
    assert!(
        text.contains(
            "tasks_total{pool=\"batch\",attempt=\"3\",type=\"resize\",urgent=\"false\",priority=\"low\"} 1\n"
        ),
        "{text}"
    );
    let found = tasks.with(&Task {
        pool: "batch".into(),
        attempt: 3,
        kind: Cow::Borrowed("resize"),
        urgent: false,
        priority: Priority::Low,
    });
    assert!(std::ptr::eq(created, found));
    assert_eq!(found.get(), 1.0);
}

#[test]
fn a_renamed_borrowed_form_and_a_generic_one_find_their_series() {
    let (_r, shards) = registered(Family::<Shard, Counter>::new("shards_total", "Shards."));
    let by_ref = shards.with(&ShardKey {
        region: "eu",
        index: 2,
    });
    let owned = shards.with(&Shard {
        region: "eu".into(),
        index: 2,
    });
    assert!(std::ptr::eq(by_ref, owned));

    let (_r, tagged) = registered(Family::<Tagged<bool>, Counter>::new("tags_total", "Tags."));
    let by_ref = tagged.with(&TaggedRef {
        name: "a",
        tag: true,
    });
    let owned = tagged.with(&Tagged {
        name: "a".into(),
        tag: true,
    });
    assert!(std::ptr::eq(by_ref, owned));
}

promtrack::family! {
    static STATIC_JOBS: Family<Job, Counter> = ("static_jobs_total", "Jobs.");
}

/// What a handler writes: a request's `&str` on a `static` family, and the series it gets back
/// lives as long as the family.
fn count(queue: &str) -> &'static Counter {
    let series = STATIC_JOBS.with(&JobRef {
        queue,
        priority: Priority::Low,
    });
    series.inc();
    series
}

#[test]
fn a_static_family_takes_a_request_s_values_and_keeps_its_series_static() {
    let first = count(&format!("q{}", 1));
    let second = count(&String::from("q1"));
    assert!(std::ptr::eq(first, second));
    assert_eq!(first.get(), 2.0);
    // The types without a borrowed form still query themselves.
    let (_r, plain) = registered(Family::<Plain, Counter>::new("plain_total", "Plain."));
    plain
        .with(&Plain {
            priority: Priority::High,
            retried: true,
        })
        .inc();
    let (_r, requests) = registered(Family::<Request<'static>, Counter>::new("req_total", "R."));
    let path = String::from("/users");
    requests
        .with(&Request {
            path: Cow::Borrowed(&path),
        })
        .inc();
    let (_r, named) = registered(Family::<Named, Counter>::new("named_total", "Named."));
    named.with(&Named { name: "n".into() }).inc();
}

/// Counts the allocations of the calling thread (the tests of this file run on several threads),
/// for [`hits_allocate_nothing_and_a_miss_allocates`].
struct CountingAlloc;

thread_local! {
    static ALLOCATIONS: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

// SAFETY: every call is forwarded to the system allocator unchanged; the count is a
// const-initialised thread-local, which allocates nothing.
unsafe impl std::alloc::GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: std::alloc::Layout) -> *mut u8 {
        ALLOCATIONS.with(|n| n.set(n.get() + 1));
        // SAFETY: the caller's contract, forwarded.
        unsafe { std::alloc::System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: std::alloc::Layout) {
        // SAFETY: the caller's contract, forwarded.
        unsafe { std::alloc::System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: std::alloc::Layout, size: usize) -> *mut u8 {
        ALLOCATIONS.with(|n| n.set(n.get() + 1));
        // SAFETY: the caller's contract, forwarded.
        unsafe { std::alloc::System.realloc(ptr, layout, size) }
    }
}

#[global_allocator]
static GLOBAL: CountingAlloc = CountingAlloc;

/// Allocations `f` makes on this thread.
fn allocations(f: impl FnOnce()) -> usize {
    let before = ALLOCATIONS.with(std::cell::Cell::get);
    f();
    ALLOCATIONS.with(std::cell::Cell::get) - before
}

promtrack::family! {
    static STATIC_ROUTES: Family<[String; 3], Counter> =
        ("static_routes_total", "Routes.", label_names = ["method", "route", "status"]);
}

/// The lookup's hit path is inlined into its caller (`Family::with`): whatever the query's form,
/// a hit writes its key on the stack and allocates nothing, and a miss still creates the
/// series (an allocation), found afterwards by every form.
#[test]
fn hits_allocate_nothing_and_a_miss_allocates() {
    let (method, status) = (String::from("GET"), String::from("200"));
    let route = format!("/api/v1/users/{}", 7);
    let created = allocations(|| STATIC_ROUTES.with(&[&*method, &*route, &*status]).inc());
    assert!(created >= 1, "a miss creates the series' record");
    let hits = allocations(|| {
        for _ in 0..100 {
            STATIC_ROUTES.with(&[&*method, &*route, &*status]).inc();
            STATIC_ROUTES.with(&[&method, &route, &status]).inc();
            STATIC_ROUTES
                .with(&[
                    Cow::Borrowed(&*method),
                    Cow::Borrowed(&*route),
                    Cow::Borrowed(&*status),
                ])
                .inc();
            STATIC_ROUTES.with(&[&*method, &*route, &*status][..]).inc();
        }
    });
    assert_eq!(hits, 0, "a hit allocates nothing");
    assert_eq!(
        STATIC_ROUTES.with(&[&*method, &*route, &*status]).get(),
        401.0
    );

    let (_r, jobs) = registered(Family::<Job, Counter>::new("alloc_jobs_total", "Jobs."));
    let queue = String::from("email");
    let query = JobRef {
        queue: &queue,
        priority: Priority::High,
    };
    assert!(allocations(|| jobs.with(&query).inc()) >= 1);
    assert_eq!(allocations(|| jobs.with(&query).inc()), 0);
    assert_eq!(jobs.with(&query).get(), 2.0);
}
