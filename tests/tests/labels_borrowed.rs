//! The borrowed form `#[derive(LabelSet)]` generates for a struct with string fields (`JobRef`
//! for `Job`): it finds the owned set's series (the same series, not an equal one), a miss
//! creates the series the owned set then finds, and only structs with a `String` or `Cow<str>`
//! field get one.

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
